"""The run machinery (multilabel/run.py): one line per epoch off a terminal, litter of killed runs removed at
the next start, one run per folder with a lock that dies with its process."""
import os
import re
import signal
import subprocess
import sys

import path
from multilabel import run
from conftest import ROOT

HOLD_LOCK = ('import sys, time\nfrom multilabel import run\n'
             'with run.lock(sys.argv[1]):\n'
             '    print("locked", flush=True)\n'
             '    time.sleep(120)\n')


def test_off_a_terminal_training_prints_one_clean_line_per_epoch(trained):
    _, output = trained  # stdout captured into a StringIO: not a terminal
    assert '\r' not in output and '\x1b' not in output  # no bar redrawn in place
    epochs = [line for line in output.splitlines() if line.startswith('Epoch ')]
    assert len(epochs) == 3
    for number, line in enumerate(epochs, 1):
        assert re.fullmatch(rf'Epoch {number}/3 - \d+s - loss: \d\.\d{{4}} - acc: \d\.\d{{4}} best acc: \d\.\d{{4}}', line)
    assert output.count('acc:') == 2 * 3  # the acc line is the epoch's line, never a separate one


def test_clean_litter_removes_temporaries_and_keeps_finished_files(tmp_path):
    folder = tmp_path / 'weights'
    (folder / path.RESUME_DIR / 'ckpt-15_temp').mkdir(parents=True)
    (folder / path.RESUME_DIR / 'ckpt-15_temp' / 'part-00000-of-00001.data-00000-of-00001').write_bytes(b'x')
    litter = ['.best_weights.k2j3h4.tmp.h5', '.history.abc.tmp.csv', os.path.join(path.RESUME_DIR, '.state.q1.tmp.json')]
    finished = [path.WEIGHTS_NAME, path.HISTORY_NAME, path.LABELS_NAME, '.user-notes', 'my.tmp.h5',
                os.path.join(path.RESUME_DIR, path.RESUME_STATE_NAME), os.path.join(path.RESUME_DIR, 'ckpt-14.index')]
    for name in litter + finished:
        (folder / name).write_text(name)
    (folder / '.bert_model.ckpt.x7.tmp').mkdir()  # mlm.write_checkpoint's temporary folder
    removed = run.clean_litter(str(folder))
    assert len(removed) == 5
    assert not (folder / path.RESUME_DIR / 'ckpt-15_temp').exists()
    assert not (folder / '.bert_model.ckpt.x7.tmp').exists()
    for name in litter:
        assert not (folder / name).exists(), name
    for name in finished:
        assert (folder / name).read_text() == name, name


def test_a_second_run_into_a_busy_folder_is_refused_and_kill_9_leaves_no_stale_lock(tiny_pretrained, tmp_path):
    weights = str(tmp_path / 'weights')
    holder = subprocess.Popen([sys.executable, '-c', HOLD_LOCK, weights], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == 'locked'
        for command in (['train.py', '--pretrained', tiny_pretrained, '--weights', weights, '--epochs', '1'],
                        ['pretrain.py', '--init', tiny_pretrained, '--out', weights, '--epochs', '1'],
                        ['main.py', 'export', '--weights', weights]):
            second = subprocess.run([sys.executable, *command], cwd=ROOT, capture_output=True, text=True, timeout=120)
            assert second.returncode == 1, command
            assert f'error: {weights}: in use by another run (pid {holder.pid}' in second.stderr, second.stderr[-2000:]
            assert 'Traceback' not in second.stderr
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert os.path.exists(os.path.join(weights, path.LOCK_NAME))  # kill -9: the file stays, its lock does not

    # A new run starts fine, and first removes what an interrupted run left, nothing else.
    import pretrain
    out = tmp_path / 'weights'
    (out / path.RESUME_DIR / 'ckpt-3_temp').mkdir(parents=True)
    (out / '.bert_model.ckpt.ab12.tmp.index').write_text('half')
    (out / 'notes.txt').write_text('mine')
    pretrain.main(['--init', tiny_pretrained, '--out', weights, '--epochs', '1', '--max-samples', '40',
                   '--maxlen', '32', '--batch-size', '16'])
    assert not (out / path.RESUME_DIR / 'ckpt-3_temp').exists()
    assert not (out / '.bert_model.ckpt.ab12.tmp.index').exists()
    assert (out / 'notes.txt').read_text() == 'mine'
    assert (out / (path.CHECKPOINT_NAME + '.index')).exists()
    assert not [name for name in os.listdir(out) if name.startswith('.')]  # the lock file went with the run
