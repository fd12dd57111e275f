"""The machinery every long training run shares (train.py and pretrain.py).

- `lock(folder)`: one run per output folder. A second train, pretrain or export into a
  folder in use stops at start with a one-line error. The lock is an flock on
  FOLDER/.lock: the kernel drops it when its process dies, so kill -9 never leaves a
  stale lock behind.
- `clean_litter(folder)`: what a killed run left (path.atomic_write's hidden temporaries,
  TensorFlow's `resume/ckpt-N_temp/` folders) goes at the next start, under the lock, so
  it is never another live run's file. Finished files are never touched.
- `Run`: the resume state (weights, optimizer slots, step count, best score, early-stopping
  counter, seconds trained, saved after every epoch in FOLDER/resume/ with a fingerprint of
  the data and settings) and history.csv.
- `Evaluator`: the end of each epoch, one callback for train.py and pretrain.py (each gives
  it how to score and what to save): EMA weights in, score, best file, early stopping,
  history row, training weights back, resume snapshot, and the epoch's line ending with
  `acc: 0.9005 best acc: 0.9005`. `ProgressBar`: a live bar during the epoch, on a terminal only.
- `TimeBudget`: ends training after N minutes of the whole run, across resumes; the epoch
  under way is closed and scored. `BudgetDecay` (--budget-decay) lowers the learning rate
  with the share of those minutes spent, to 0 at their end.
- `refuse_finished_output`: a run does not start in a folder that holds a finished model
  unless it resumes that run (--resume) or is told to replace it (--overwrite).
"""
import contextlib
import fcntl
import os
import re
import shutil
import sys
import time

from tqdm import tqdm

import config
from multilabel import history as history_lib
import path
from multilabel.compat import keras, tf

# path.atomic_write's and atomic_write_folder's temporaries: '.' + name + random + '.tmp' + extension.
LITTER = re.compile(r'^\..+\.tmp(\.[^.]+)*$')

clock = time.monotonic  # seconds; a module name, so a test can run a run on its own clock


def refuse_finished_output(folder, finished_names, resume, overwrite):
    """config.InputError when `folder` holds any of `finished_names` (a finished model) and
    neither `resume` nor `overwrite` is set; call it before anything is read or written."""
    if resume and overwrite:
        raise config.InputError('--resume and --overwrite: choose one (continue the run in the folder, or replace it)')
    found = [name for name in finished_names if os.path.exists(os.path.join(folder, name))]
    if found and not (resume or overwrite):
        raise config.InputError(f'{folder}: holds a finished model ({", ".join(found)}); --resume continues its run, '
                                '--overwrite replaces it, or choose another output folder')


@contextlib.contextmanager
def lock(folder):
    """Hold FOLDER/.lock for the `with` block; config.InputError when another process holds it."""
    os.makedirs(folder, exist_ok=True)
    lock_path = os.path.join(folder, path.LOCK_NAME)
    while True:
        handle = open(lock_path, 'a+', encoding='utf-8')
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            owner = handle.read().strip() or 'another process'
            handle.close()
            raise config.InputError(f'{folder}: in use by another run ({owner}); wait for it to end '
                                    'or choose another folder') from None
        try:  # the holder before us may have removed the file between our open and our lock
            if os.stat(lock_path).st_ino == os.fstat(handle.fileno()).st_ino:
                break
        except FileNotFoundError:
            pass
        handle.close()
    handle.truncate(0)
    handle.write(f'pid {os.getpid()}: {" ".join(sys.argv)}\n'[:300])
    handle.flush()
    try:
        yield
    finally:
        with contextlib.suppress(FileNotFoundError):  # gone with its folder (a worker's temporary output)
            os.remove(lock_path)  # still locked while removed, so no other run can hold this file
        handle.close()


def clean_litter(folder, only=None):
    """Remove what an interrupted run left in `folder` and its resume/ folder; returns the paths removed.

    Call it under `lock(folder)`: then no temporary can belong to a live run. With `only`, a
    name in `folder`: just that name's temporaries (multilabel/export.py's, in a folder it does not own).
    """
    removed = []
    resume_dir = os.path.join(folder, path.RESUME_DIR)
    for parent in (folder,) if only else (folder, resume_dir):
        if not os.path.isdir(parent):
            continue
        for name in sorted(os.listdir(parent)):
            full = os.path.join(parent, name)
            tensorflow_temporary = parent == resume_dir and name.endswith('_temp') and os.path.isdir(full)
            if only and not name.startswith(f'.{only}.'):
                continue
            if LITTER.match(name) or tensorflow_temporary:
                shutil.rmtree(full) if os.path.isdir(full) else os.remove(full)
                removed.append(full)
    if removed:
        print(f'removed what an interrupted run left: {", ".join(os.path.relpath(r, folder) for r in removed)}')
    return removed


class Run:
    """The files of one training run in `out_dir`, and its state across epochs and resumes.

    fingerprint: what must not change on --resume (data, labels, settings).
    snapshot_objects: what a resumed run restores ({'model': ..., 'optimizer': ...}).
    columns: history.csv's columns; `metric`: the name of the score that picks the best file.
    read_dir: where the resume state is read (train.py's non-chief workers write elsewhere).
    keep: 'best' saves the epoch of the highest score; 'last' saves every epoch (the score is
    only recorded, and nothing stops early).
    """

    def __init__(self, out_dir, fingerprint, snapshot_objects, resume, columns, metric='acc', read_dir=None,
                 keep='best'):
        self.out_dir = out_dir
        self.fingerprint = fingerprint
        self.metric = metric
        self.keep = keep
        self.state = {'epoch': 0, 'best': -1.0, 'wait': 0, 'elapsed': 0.0}
        resume_dir = os.path.join(read_dir or out_dir, path.RESUME_DIR)
        resume_state = path.resume_state_file(read_dir or out_dir)
        snapshot = tf.train.Checkpoint(**snapshot_objects)
        if resume and os.path.exists(resume_state):
            self.state = {'elapsed': 0.0, **path.read_json(resume_state)}  # a state of before 'elapsed': 0
            if self.state['run'] != fingerprint:
                raise config.InputError(f'{resume_state} belongs to a run with other data or settings; '
                                        'resume with the same command, or start without --resume')
            snapshot.restore(os.path.join(resume_dir, self.state['checkpoint'])).assert_existing_objects_matched()
            print(f'resumed after epoch {self.state["epoch"]}: best {metric} {self.state["best"]:.4f}, '
                  f'{self.state["wait"]} epochs without improvement')
        elif resume:
            print(f'nothing to resume in {resume_dir}: starting from the beginning')
        # The clock goes on from the seconds the earlier parts of the run trained, so a time
        # budget covers the whole run, across resumes.
        self.clock_started = clock() - self.state['elapsed']
        # max_to_keep=2: the state may name the older checkpoint.
        self.manager = tf.train.CheckpointManager(snapshot, os.path.join(out_dir, path.RESUME_DIR), max_to_keep=2)
        self.history = history_lib.History(os.path.join(out_dir, path.HISTORY_NAME), self.state['epoch'], columns)

    @property
    def epoch(self):
        return self.state['epoch']

    @property
    def best(self):
        return self.state['best']

    def elapsed(self):
        """Seconds of this run so far, its parts before each resume included."""
        return clock() - self.clock_started

    def finished(self, epochs, patience, time_budget=None):
        """Whether a resumed run has nothing left to do: epochs, patience or the minutes of `time_budget` spent."""
        spent = time_budget is not None and self.state['elapsed'] >= 60 * time_budget
        return self.state['wait'] >= patience or self.state['epoch'] >= epochs or spent

    def save_state(self, epoch):
        """The resume snapshot after `epoch` (counted from 1): the objects' variables, then the state naming them."""
        self.state.update(epoch=epoch, elapsed=round(self.elapsed(), 3),
                          checkpoint=os.path.basename(self.manager.save()), run=self.fingerprint)
        path.write_json(path.resume_state_file(self.out_dir), self.state)

    def callbacks(self, epochs, steps, evaluate, save_best, patience, time_budget=None, ema=None, budget_decay=None):
        """Keras callbacks: the progress bar, the Evaluator, the time budget if any, and with it
        `budget_decay(spent)`, if given, before every step (BudgetDecay).

        Put them first in fit's list: the callbacks after them see the Evaluator's values in
        the epoch's logs (TensorBoard).
        """
        callbacks = [ProgressBar(epochs, steps), Evaluator(self, epochs, evaluate, save_best, patience, ema)]
        if time_budget:
            callbacks.append(TimeBudget(time_budget, self))
            if budget_decay:
                callbacks.append(BudgetDecay(time_budget, self, budget_decay))
        return callbacks


class ProgressBar(keras.callbacks.Callback):
    """A live bar during the epoch, on terminals only; closed before validation's own bar and the epoch's line."""

    def __init__(self, epochs, steps):
        super().__init__()
        self.epochs, self.steps = epochs, steps

    def on_epoch_begin(self, epoch, logs=None):
        self.bar = tqdm(total=self.steps, desc=f'Epoch {epoch + 1}/{self.epochs}', unit=' steps', leave=False,
                        disable=not config.interactive(), dynamic_ncols=True)

    def on_train_batch_end(self, batch, logs=None):
        self.bar.update(1)
        if logs:
            self.bar.set_postfix({k: f'{v:.4f}' for k, v in logs.items()}, refresh=False)

    def on_epoch_end(self, epoch, logs=None):
        self.bar.close()


class Evaluator(keras.callbacks.Callback):
    """The end of every epoch, as in bert4keras' examples: EMA weights in, score, save the best,
    early-stopping count, history row, training weights back, resume snapshot, one line.

    evaluate(model) -> (score, {column: value}): the values go into history.csv and the logs.
    save_best(first) writes the best file (first: the run's first save).
    ema: the AdamEMA optimizer whose averaged weights are scored and saved, or None.
    """

    def __init__(self, run, epochs, evaluate, save_best, patience, ema=None):
        super().__init__()
        self.run, self.epochs, self.evaluate, self.save_best, self.patience, self.ema = \
            run, epochs, evaluate, save_best, patience, ema

    def on_epoch_begin(self, epoch, logs=None):
        self.started = clock()

    def on_epoch_end(self, epoch, logs=None):
        seconds = clock() - self.started  # the training of the epoch, not its validation
        logs = logs if logs is not None else {}
        state = self.run.state
        if self.ema:
            self.ema.apply_ema_weights()
        score, values = self.evaluate(self.model)
        logs.update(values)
        # The best file before the history row, the row before the state: a run killed in
        # between repeats the epoch, which replaces its row.
        if score > state['best'] or self.run.keep == 'last':
            self.save_best(state['best'] < 0)
            state.update(best=score, wait=0)
        else:
            state['wait'] += 1
        self.run.history.record(epoch + 1, logs)
        if self.ema:
            self.ema.reset_old_weights()  # the resume snapshot holds the training weights
        self.run.save_state(epoch + 1)
        trained = ' - '.join(f'{k}: {v:.4f}' for k, v in logs.items() if k not in values and k != self.run.metric)
        name = self.run.metric
        kept = 'kept: this epoch' if self.run.keep == 'last' else f'best {name}: {state["best"]:.4f}'
        print(f'Epoch {epoch + 1}/{self.epochs} - {seconds:.0f}s - {trained} - {name}: {score:.4f} {kept}',
              flush=True)
        if state['wait'] >= self.patience:
            print(f'early stopping: {self.patience} epochs without improvement', flush=True)
            self.model.stop_training = True


class TimeBudget(keras.callbacks.Callback):
    """Ends training once `minutes` of the run have passed (its parts before a resume included);
    Keras still closes the epoch, so it is scored."""

    def __init__(self, minutes, run):
        super().__init__()
        self.minutes, self.run = minutes, run

    def on_train_batch_end(self, batch, logs=None):
        if self.run.elapsed() > 60 * self.minutes and not self.model.stop_training:
            tqdm.write(f'time budget of {self.minutes:g} minutes reached: closing this epoch', file=sys.stdout)
            self.model.stop_training = True


class BudgetDecay(keras.callbacks.Callback):
    """--budget-decay: before every step, `follow(spent)` gets the share of the time budget spent
    so far (0 to 1, the parts before a resume included) and sets the learning rate from it, so
    a run the clock ends finishes at a rate of 0, as a schedule planned over its steps would."""

    def __init__(self, minutes, run, follow):
        super().__init__()
        self.minutes, self.run, self.follow = minutes, run, follow

    def on_train_batch_begin(self, batch, logs=None):
        self.follow(min(1.0, self.run.elapsed() / (60 * self.minutes)))
