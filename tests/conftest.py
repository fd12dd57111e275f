"""Shared fixtures: a tiny generated RoFormer-v2 checkpoint and one short training run on it."""
import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

# `make test` runs two workers on a two-core machine, and many tests start TensorFlow in a
# subprocess: one thread per TensorFlow process (inherited by the subprocesses) keeps them from
# fighting over the cores, which costs more than it gains on models this small.
for variable in ('TF_NUM_INTRAOP_THREADS', 'TF_NUM_INTEROP_THREADS', 'OMP_NUM_THREADS'):
    os.environ.setdefault(variable, '1')

from multilabel import compat  # noqa: E402,F401  (tf-keras must be chosen before any test imports TensorFlow)

SHARED_DATA = os.path.join(ROOT, '..', 'shared', 'data')


@pytest.fixture
def ticking_clock(monkeypatch):
    """Runs (multilabel/run.py) read a clock that moves half a second at each reading, about a
    second a training step: a time budget then holds the same steps on a busy machine as on an idle one."""
    from multilabel import run
    ticks = iter(range(10 ** 6))
    monkeypatch.setattr(run, 'clock', lambda: 0.5 * next(ticks))


def run_script(script, *flags, cwd=ROOT, input=None):
    """`python SCRIPT FLAGS` run inside this process: its exit status and what it printed, as
    subprocess.run(..., capture_output=True, text=True) gives them, without a second start of
    TensorFlow (4-6 CPU seconds each). Tests of what only a process shows (kill -9, TensorFlow's
    own log lines on file descriptor 2, a pipe, a port) start one instead."""
    import contextlib
    import io
    import runpy
    import subprocess
    import traceback
    from multilabel.compat import keras
    script_path = os.path.join(ROOT, script)
    stdout, stderr = io.StringIO(), io.StringIO()
    saved_argv, saved_path, saved_cwd, saved_stdin = sys.argv, list(sys.path), os.getcwd(), sys.stdin
    sys.argv = [script, *flags]
    sys.stdin = io.TextIOWrapper(io.BytesIO((input or '').encode('utf-8')), encoding='utf-8')
    sys.path.insert(0, os.path.dirname(script_path))  # as python puts the script's folder first
    os.chdir(cwd)
    returncode = 0
    try:
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            try:
                runpy.run_path(script_path, run_name='__main__')
            except SystemExit as end:
                if isinstance(end.code, str):
                    print(end.code, file=sys.stderr)
                returncode = end.code if isinstance(end.code, int) else (0 if end.code is None else 1)
            except Exception:  # noqa: BLE001  (a crashed script: status 1 and its traceback, as python gives)
                traceback.print_exc()
                returncode = 1
    finally:
        sys.argv, sys.path[:], sys.stdin = saved_argv, saved_path, saved_stdin
        os.chdir(saved_cwd)
        keras.mixed_precision.set_global_policy('float32')
        keras.backend.clear_session()
    return subprocess.CompletedProcess([sys.executable, script, *flags], returncode, stdout.getvalue(),
                                       stderr.getvalue())


@pytest.fixture(scope='session')
def tiny_pretrained(tmp_path_factory):
    """A folder with bert_config.json, vocab.txt and bert_model.ckpt.* (official format)."""
    from tools import make_tiny_checkpoint
    folder = str(tmp_path_factory.mktemp('pretrained') / 'tiny')
    make_tiny_checkpoint.make_tiny_checkpoint(folder, [make_tiny_checkpoint.path.SAMPLE_TRAIN,
                                                       make_tiny_checkpoint.path.SAMPLE_TEST])
    return folder


@pytest.fixture(scope='session')
def trained(tiny_pretrained, tmp_path_factory):
    """(weights folder, printed output) of a 3-epoch run of train.main on the bundled sample, with TensorBoard logs."""
    import contextlib
    import io
    import train
    weights = str(tmp_path_factory.mktemp('weights'))
    output = io.StringIO()
    with contextlib.redirect_stdout(output):
        train.main(['--pretrained', tiny_pretrained, '--weights', weights, '--epochs', '3',
                    '--maxlen', '48', '--batch-size', '16', '--encoder-lr', '1e-3', '--head-lr', '1e-2',
                    '--tensorboard', '--tune-thresholds'])
    return weights, output.getvalue()


@pytest.fixture
def sample_corpus(tmp_path):
    """A folder holding the bundled sample under the real corpus' file names, for the bench
    scripts that read `--data FOLDER`."""
    import shutil
    import path
    data = tmp_path / 'data'
    data.mkdir()
    shutil.copy(path.SAMPLE_TRAIN, data / os.path.basename(path.CORPUS_TRAIN))
    shutil.copy(path.SAMPLE_TEST, data / os.path.basename(path.CORPUS_TEST))
    return data


@pytest.fixture(scope='session', autouse=True)
def tracked_results_untouched():
    """`make test` must not rewrite the measured results in bench/results/: benchmarks run by
    tests write to temporary folders."""
    import glob
    import hashlib

    def digests():
        return {name: hashlib.sha256(open(name, 'rb').read()).hexdigest()
                for name in glob.glob(os.path.join(ROOT, 'bench', 'results', '*.json'))}
    before = digests()
    yield
    assert digests() == before, 'a test rewrote a file in bench/results/'
