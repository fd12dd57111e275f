"""The run machinery (multilabel/run.py): one line per epoch off a terminal, the Evaluator's order (EMA
weights scored and saved, training weights in the resume snapshot), a time budget that covers the whole run
across resumes, litter of killed runs removed at the next start, one run per folder with a lock that dies
with its process."""
import contextlib
import io
import os
import re
import signal
import subprocess
import sys

import numpy as np

import path
from multilabel import history, run
from multilabel.compat import keras, tf
from conftest import ROOT, run_script

HOLD_LOCK = ('import sys, time\n'
             'from multilabel import run\n'
             'with run.lock(sys.argv[1]):\n'
             '    print("locked", flush=True)\n'
             '    time.sleep(900)\n')  # killed by the test once the three commands were refused


def test_off_a_terminal_training_prints_one_clean_line_per_epoch(trained):
    _, output = trained  # stdout captured into a StringIO: not a terminal
    assert '\r' not in output and '\x1b' not in output  # no bar redrawn in place
    epochs = [line for line in output.splitlines() if line.startswith('Epoch ')]
    assert len(epochs) == 3
    for number, line in enumerate(epochs, 1):
        assert re.fullmatch(rf'Epoch {number}/3 - \d+s - loss: \d\.\d{{4}} - acc: \d\.\d{{4}} best acc: \d\.\d{{4}}', line)
    assert output.count('acc:') == 2 * 3  # the acc line is the epoch's line, never a separate one


def tiny_model():
    model = keras.Sequential([keras.layers.Dense(1, input_shape=(2,))])
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss='mse')
    return model


def fit_tiny(out, model, epochs, resume, time_budget=None, ema=None, evaluate=None, save_best=None, extra=(),
             budget_decay=None):
    """A Run of `model` on 4 steps per epoch of a fixed regression, as train.py and pretrain.py use it."""
    x = np.arange(16, dtype='float32').reshape(8, 2) / 16
    data = tf.data.Dataset.from_tensor_slices((x, x.sum(axis=1, keepdims=True))).batch(2).repeat()
    tiny_run = run.Run(str(out), {'data': 'tiny'}, {'model': model}, resume, ('epoch', 'loss', 'val'), metric='val')
    if tiny_run.finished(epochs, patience=5, time_budget=time_budget):
        return tiny_run
    evaluate = evaluate or (lambda m: (0.5, {'val': 0.5}))
    callbacks = tiny_run.callbacks(epochs, 4, evaluate, save_best or (lambda first: None), 5, time_budget, ema,
                                   budget_decay)
    model.fit(data, epochs=epochs, initial_epoch=tiny_run.epoch, steps_per_epoch=4, verbose=0,
              callbacks=callbacks + list(extra))
    return tiny_run


class ZeroAverage:
    """Stands in for AdamEMA: its average of the weights is all zeros."""

    def __init__(self, model):
        self.model, self.events = model, []

    def apply_ema_weights(self):
        self.events.append('ema in')
        self.training = self.model.get_weights()
        self.model.set_weights([np.zeros_like(w) for w in self.training])

    def reset_old_weights(self):
        self.events.append('ema out')
        self.model.set_weights(self.training)


def test_the_evaluator_scores_and_saves_the_average_and_snapshots_the_training_weights(tmp_path):
    model = tiny_model()
    ema = ZeroAverage(model)
    scores = iter([0.3, 0.5, 0.4])  # epoch 2 is the best, epoch 3 counts one epoch without improvement

    def evaluate(m):
        ema.events.append('score')
        assert not any(w.any() for w in m.get_weights())  # the average is in place
        return (score := next(scores)), {'val': score}

    def save_best(first):
        ema.events.append(f'save first={first}')
        assert not any(w.any() for w in model.get_weights())

    output = io.StringIO()
    with contextlib.redirect_stdout(output):
        tiny_run = fit_tiny(tmp_path, model, 3, False, ema=ema, evaluate=evaluate, save_best=save_best)
    assert ema.events == ['ema in', 'score', 'save first=True', 'ema out',
                          'ema in', 'score', 'save first=False', 'ema out',
                          'ema in', 'score', 'ema out']
    assert tiny_run.state['best'] == 0.5 and tiny_run.state['wait'] == 1 and tiny_run.epoch == 3
    assert [row['val'] for row in history.read_history(str(tmp_path / path.HISTORY_NAME))] == [0.3, 0.5, 0.4]
    lines = [line for line in output.getvalue().splitlines() if line.startswith('Epoch ')]
    assert re.fullmatch(r'Epoch 3/3 - \d+s - loss: \d+\.\d{4} - val: 0\.4000 best val: 0\.5000', lines[-1])

    trained = model.get_weights()  # the training weights came back after the last epoch
    assert all(w.any() for w in trained)
    resumed = tiny_model()
    with contextlib.redirect_stdout(io.StringIO()):
        run.Run(str(tmp_path), {'data': 'tiny'}, {'model': resumed}, True, ('epoch', 'loss', 'val'), metric='val')
    for restored, expected in zip(resumed.get_weights(), trained):  # the snapshot holds them, not the average
        np.testing.assert_array_equal(restored, expected)


def test_a_resumed_run_gets_only_what_is_left_of_its_time_budget(tmp_path, monkeypatch):
    now = [0.0]
    monkeypatch.setattr(run, 'clock', lambda: now[0])
    step = keras.callbacks.LambdaCallback(on_train_batch_begin=lambda batch, logs: now.__setitem__(0, now[0] + 10))
    with contextlib.redirect_stdout(io.StringIO()):  # 10 s a step, 4 steps an epoch, a budget of 1 minute
        fit_tiny(tmp_path, tiny_model(), 1, False, time_budget=1, extra=[step])  # killed after epoch 1
    state_path = str(tmp_path / path.RESUME_DIR / path.RESUME_STATE_NAME)
    assert path.read_json(state_path)['elapsed'] == 40

    now[0] = 5000.0  # a new process: its clock starts anywhere
    output = io.StringIO()
    with contextlib.redirect_stdout(output):
        tiny_run = fit_tiny(tmp_path, tiny_model(), 10, True, time_budget=1, extra=[step])
    # 20 s were left: the third step of epoch 2 goes past them (a fresh budget would have run into epoch 3).
    assert 'time budget of 1 minutes reached' in output.getvalue()
    assert tiny_run.epoch == 2 and path.read_json(state_path)['elapsed'] == 70
    assert tiny_run.finished(10, 5, time_budget=1)  # resumed once more, it has nothing left to do
    assert not tiny_run.finished(10, 5, time_budget=2) and not tiny_run.finished(10, 5)


def test_budget_decay_gets_the_share_of_the_budget_spent_before_every_step_across_a_resume(tmp_path, monkeypatch):
    now, spent = [0.0], []
    monkeypatch.setattr(run, 'clock', lambda: now[0])
    step = keras.callbacks.LambdaCallback(on_train_batch_begin=lambda batch, logs: now.__setitem__(0, now[0] + 10))
    with contextlib.redirect_stdout(io.StringIO()):  # 10 s a step, 4 steps an epoch, a budget of 1 minute
        fit_tiny(tmp_path, tiny_model(), 1, False, time_budget=1, extra=[step], budget_decay=spent.append)
        assert spent == [0, 10 / 60, 20 / 60, 30 / 60]  # read before each step, which then takes its 10 s
        now[0] = 5000.0  # a new process: its clock starts anywhere
        fit_tiny(tmp_path, tiny_model(), 10, True, time_budget=1, extra=[step], budget_decay=spent.append)
    assert spent[4:] == [40 / 60, 50 / 60, 1.0]  # on from the 40 s spent; the step past the budget ends the run
    with contextlib.redirect_stdout(io.StringIO()):  # without a budget there is nothing to decay over
        callbacks = run.Run(str(tmp_path / 'other'), {'data': 'tiny'}, {'model': tiny_model()}, False,
                            ('epoch', 'loss', 'val')).callbacks(1, 4, None, None, 5, budget_decay=spent.append)
    assert not [c for c in callbacks if isinstance(c, run.BudgetDecay)]


def test_a_resume_state_without_elapsed_seconds_resumes_from_zero(tmp_path, monkeypatch):
    with contextlib.redirect_stdout(io.StringIO()):
        fit_tiny(tmp_path, tiny_model(), 1, False)
    state_path = str(tmp_path / path.RESUME_DIR / path.RESUME_STATE_NAME)
    state = path.read_json(state_path)
    del state['elapsed']  # written before the field existed
    path.write_json(state_path, state)
    monkeypatch.setattr(run, 'clock', lambda: 100.0)
    with contextlib.redirect_stdout(io.StringIO()):
        resumed = run.Run(str(tmp_path), {'data': 'tiny'}, {'model': tiny_model()}, True, ('epoch', 'loss', 'val'))
    assert resumed.epoch == 1 and resumed.elapsed() == 0 and not resumed.finished(10, 5, time_budget=1)


def test_train_py_resumed_after_its_time_budget_ran_out_trains_no_more(tiny_pretrained, tmp_path):
    import train
    command = ['--pretrained', tiny_pretrained, '--weights', str(tmp_path), '--epochs', '3', '--max-samples', '40',
               '--maxlen', '32', '--batch-size', '8', '--time-budget', '0.0001']
    with contextlib.redirect_stdout(io.StringIO()):
        train.main(command)
    output = io.StringIO()
    with contextlib.redirect_stdout(output):
        train.main(command + ['--resume'])
    assert 'resumed after epoch 1' in output.getvalue() and 'this run had already finished' in output.getvalue()
    assert 'Epoch 2/3' not in output.getvalue()
    assert path.read_json(str(tmp_path / path.RESUME_DIR / path.RESUME_STATE_NAME))['epoch'] == 1


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
            second = run_script(*command)
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
