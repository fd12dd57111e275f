"""multilabel/compat.py fix 6: TensorFlow's C++ start-up lines stay off stderr unless TF_CPP_MIN_LOG_LEVEL asks for them,
and a program that imports the library keeps its own stderr."""
import os
import re
import subprocess
import sys

import pytest

from multilabel import compat
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
    # not swallow stderr (and this test's pattern does find the lines when they are printed). Which INFO
    # lines appear depends on the CPU (oneDNN's is printed only where oneDNN is on by default: AVX512_VNNI,
    # AVX512_BF16 or AMX), so any INFO line from a C++ file counts.
    code = 'from multilabel import compat; import sys; print("after the import", file=sys.stderr)'
    shown = run(['-c', code], TF_CPP_MIN_LOG_LEVEL='0')
    assert shown.returncode == 0, shown.stderr
    assert 'absl::InitializeLog' in shown.stderr and re.search(r'^I\d{4} .*\.cc:\d+\] ', shown.stderr, re.M)
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


HOST_PROGRAM = '''
import os, sys, threading
sys.path.insert(0, sys.argv[1])
given = os.fstat(2)
from predict import predict  # noqa: F401
from multilabel import compat  # noqa: F401  (imports TensorFlow through the filter)
now = os.fstat(2)
os.write(2, b'os.write after the import\\n')
print('sys.stderr after the import', file=sys.stderr, flush=True)
filtering = [thread.name for thread in threading.enumerate() if thread.name == 'stderr-filter']
print(given.st_dev == now.st_dev and given.st_ino == now.st_ino and not filtering, os.readlink('/proc/self/fd/2'))
'''


def test_a_program_importing_predict_keeps_its_own_stderr(tmp_path):
    # The filter holds file descriptor 2 only while TensorFlow is imported: afterwards the host's
    # writes, raw or through sys.stderr, go straight to the file it was given, not through a pipe.
    log = tmp_path / 'host-stderr.txt'
    with open(log, 'w') as stderr:
        result = subprocess.run([sys.executable, '-c', HOST_PROGRAM, ROOT], cwd=tmp_path, stdout=subprocess.PIPE,
                                stderr=stderr, text=True, timeout=300)
    assert result.returncode == 0, log.read_text()
    same, target = result.stdout.split()
    assert same == 'True' and os.path.samefile(target, log), result.stdout
    assert log.read_text() == 'os.write after the import\nsys.stderr after the import\n'
