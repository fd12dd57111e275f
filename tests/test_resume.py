"""Nothing lost: a training run killed with SIGKILL mid-run resumes where it stopped; saves are atomic."""
import os
import signal
import subprocess
import sys
import time

import h5py
import pytest

from multilabel import history
import path
from conftest import ROOT, run_script

EPOCHS = 5


def train_command(pretrained, weights, *extra):
    return [sys.executable, 'train.py', '--pretrained', pretrained, '--weights', weights, '--epochs', str(EPOCHS),
            '--patience', '50', '--maxlen', '48', '--batch-size', '4', '--encoder-lr', '1e-3', '--head-lr', '1e-2',
            *extra]


def completed_epochs(weights):
    state_file = os.path.join(weights, path.RESUME_DIR, path.RESUME_STATE_NAME)
    return path.read_json(state_file)['epoch'] if os.path.exists(state_file) else 0


def assert_best_weights_intact(weights):
    with h5py.File(os.path.join(weights, path.WEIGHTS_NAME), 'r') as f:  # opens: not half-written
        assert 'Head-Dense' in f


def test_killed_run_resumes_from_its_last_epoch(tiny_pretrained, tmp_path):
    weights = str(tmp_path / 'weights')
    run = subprocess.Popen(train_command(tiny_pretrained, weights), cwd=ROOT,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while completed_epochs(weights) < 2 and time.time() < deadline and run.poll() is None:
        time.sleep(0.05)
    time.sleep(0.3)  # into the next epoch
    assert run.poll() is None, 'training ended before it could be killed'
    run.send_signal(signal.SIGKILL)
    run.wait()
    killed_at = completed_epochs(weights)
    assert 2 <= killed_at < EPOCHS
    assert_best_weights_intact(weights)

    result = run_script(*train_command(tiny_pretrained, weights, '--resume')[1:])
    assert result.returncode == 0, result.stderr[-3000:]
    assert f'resumed after epoch {killed_at}' in result.stdout
    assert f'Epoch {killed_at + 1}/{EPOCHS}' in result.stdout
    assert f'Epoch {killed_at}/{EPOCHS}' not in result.stdout
    assert result.stdout.count('best acc:') == EPOCHS - killed_at
    assert completed_epochs(weights) == EPOCHS
    assert_best_weights_intact(weights)
    # The history keeps the killed run's rows and has each epoch once, however the kill fell.
    rows = history.read_history(os.path.join(weights, path.HISTORY_NAME))
    assert [row['epoch'] for row in rows] == list(range(1, EPOCHS + 1))


def test_resume_refuses_a_run_with_other_settings(tiny_pretrained, tmp_path):
    weights = str(tmp_path / 'weights')
    first = run_script(*train_command(tiny_pretrained, weights, '--epochs', '1', '--max-samples', '40')[1:])
    assert first.returncode == 0, first.stderr[-3000:]
    other = run_script(*train_command(tiny_pretrained, weights, '--epochs', '2', '--max-samples', '40',
                                      '--maxlen', '40', '--resume')[1:])
    assert other.returncode != 0
    assert 'belongs to a run with other data or settings' in other.stderr


def test_an_interrupted_save_leaves_the_previous_file_intact(tmp_path):
    target = tmp_path / 'labels.json'
    path.write_json(str(target), ['a', 'b'])

    def crash_midway(temporary):
        with open(temporary, 'w') as f:
            f.write('["half')
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        path.atomic_write(str(target), crash_midway)
    assert path.read_json(str(target)) == ['a', 'b']
    assert os.listdir(tmp_path) == ['labels.json']  # the temporary file is cleaned up
