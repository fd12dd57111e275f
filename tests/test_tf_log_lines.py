"""compat.py fix 6: TensorFlow's C++ start-up lines stay off stderr unless TF_CPP_MIN_LOG_LEVEL asks for them."""
import os
import re
import subprocess
import sys

import pytest

import compat
from conftest import ROOT

# The lines TensorFlow 2.21 prints while its libraries load, before TF_CPP_MIN_LOG_LEVEL reaches Abseil.
START_UP_LINES = re.compile(r'absl::InitializeLog|port\.cc:\d+\] oneDNN|cudart_stub\.cc:\d+\]|^[IWEF]\d{4} ', re.M)


def run(arguments, **env):
    environment = {key: value for key, value in os.environ.items() if key != 'TF_CPP_MIN_LOG_LEVEL'}
    environment.update(env)
    return subprocess.run([sys.executable, *arguments], cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env=environment)


def test_a_script_that_loads_a_model_prints_no_tensorflow_start_up_line(trained):
    weights, _ = trained
    result = run(['predict.py', '--weights', weights, '青岛地铁施工段坍塌致3人遇难'])
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip()  # the labels
    assert not START_UP_LINES.search(result.stderr), result.stderr


def test_the_lines_are_still_there_when_the_log_level_asks_for_them():
    # TF_CPP_MIN_LOG_LEVEL=0 shows TensorFlow's INFO lines: the filter applies the variable, it does
    # not swallow stderr (and this test's pattern does find the lines when they are printed).
    code = 'import compat, sys; print("after the import", file=sys.stderr)'
    shown = run(['-c', code], TF_CPP_MIN_LOG_LEVEL='0')
    assert shown.returncode == 0, shown.stderr
    assert 'absl::InitializeLog' in shown.stderr and re.search(r'^I\d{4} .*port\.cc:\d+\] oneDNN', shown.stderr, re.M)
    assert shown.stderr.rstrip().endswith('after the import')
    quiet = run(['-c', code])
    assert quiet.returncode == 0 and quiet.stderr == 'after the import\n', quiet.stderr


@pytest.mark.parametrize('line, level, shown', [
    (b'WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n', 0, True),
    (b'WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n', 1, False),
    (b'I0000 00:00:1795671955.067129    4300 port.cc:153] oneDNN custom operations are on.\n', 0, True),
    (b'I0000 00:00:1795671955.067129    4300 port.cc:153] oneDNN custom operations are on.\n', 1, False),
    (b'W1126 05:45:54.067129    4300 some_file.cc:12] a warning\n', 1, True),
    (b'W1126 05:45:54.067129    4300 some_file.cc:12] a warning\n', 2, False),
    (b'E0000 00:00:1795672025.813877    5781 cuda_platform.cc:52] failed call to cuInit\n', 2, True),
    (b'E0000 00:00:1795672025.813877    5781 cuda_platform.cc:52] failed call to cuInit\n', 3, False),
    (b'F0000 00:00:1795672025.813877    5781 x.cc:1] fatal\n', 3, True),
    (b'Traceback (most recent call last):\n', 3, True),  # anything else passes
    (b'I am not a log line\n', 3, True),
])
def test_which_lines_pass(line, level, shown):
    assert compat._shown(line, level) == shown
