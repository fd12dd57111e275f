"""The machinery every long training run shares (train.py and pretrain.py).

- `lock(folder)`: one run per output folder. A second train, pretrain or export into a
  folder in use stops at start with a one-line error. The lock is an flock on
  FOLDER/.lock: the kernel drops it when its process dies, so kill -9 never leaves a
  stale lock behind.
- `clean_litter(folder)`: what a killed run left (path.atomic_write's hidden temporaries,
  TensorFlow's `resume/ckpt-N_temp/` folders) goes at the next start, under the lock, so
  it is never another live run's file. Finished files are never touched.
- `Run`: the resume state (weights, optimizer slots, step count, best score, early-stopping
  counter, saved after every epoch in FOLDER/resume/ with a fingerprint of the data and
  settings), history.csv, the best file, and the console: a live bar during the epoch
  (only on a terminal), then one line per epoch ending with `acc: 0.9005 best acc: 0.9005`.
- `TimeBudget`: ends training after N minutes; the epoch under way is closed and scored.
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

import config
from multilabel import history as history_lib
import path
from multilabel.compat import keras, tf

# path.atomic_write's and atomic_write_folder's temporaries: '.' + name + random + '.tmp' + extension.
LITTER = re.compile(r'^\..+\.tmp(\.[^.]+)*$')


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


def interactive():
    """Live progress bars only on a terminal: logs, pipes and nohup get one line per epoch."""
    return sys.stderr.isatty()


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
        self.state = {'epoch': 0, 'best': -1.0, 'wait': 0}
        resume_dir = os.path.join(read_dir or out_dir, path.RESUME_DIR)
        resume_state = os.path.join(resume_dir, path.RESUME_STATE_NAME)
        snapshot = tf.train.Checkpoint(**snapshot_objects)
        if resume and os.path.exists(resume_state):
            self.state = path.read_json(resume_state)
            if self.state['run'] != fingerprint:
                raise config.InputError(f'{resume_state} belongs to a run with other data or settings; '
                                        'resume with the same command, or start without --resume')
            snapshot.restore(os.path.join(resume_dir, self.state['checkpoint'])).assert_existing_objects_matched()
            print(f'resumed after epoch {self.state["epoch"]}: best {metric} {self.state["best"]:.4f}, '
                  f'{self.state["wait"]} epochs without improvement')
        elif resume:
            print(f'nothing to resume in {resume_dir}: starting from the beginning')
        # max_to_keep=2: the state may name the older checkpoint.
        self.manager = tf.train.CheckpointManager(snapshot, os.path.join(out_dir, path.RESUME_DIR), max_to_keep=2)
        self.history = history_lib.History(os.path.join(out_dir, path.HISTORY_NAME), self.state['epoch'], columns)

    @property
    def epoch(self):
        return self.state['epoch']

    @property
    def best(self):
        return self.state['best']

    def finished(self, epochs, patience):
        return self.state['wait'] >= patience or self.state['epoch'] >= epochs

    def end_epoch(self, epoch, logs, score, save_best, after_best=None):
        """Book-keeping of a completed epoch (counted from 1); returns True when it was the best.

        save_best(first) writes the best file (first: the run's first save); after_best(),
        if given, runs next, before the resume snapshot. The best file is written before the
        history row, and the row before the state: a run killed in between repeats the
        epoch, which replaces its row.
        """
        improved = score > self.state['best'] or self.keep == 'last'
        if improved:
            save_best(self.state['best'] < 0)
            self.state.update(best=score, wait=0)
        else:
            self.state['wait'] += 1
        if after_best:
            after_best()
        self.history.record(epoch, logs)
        self.state.update(epoch=epoch, checkpoint=os.path.basename(self.manager.save()), run=self.fingerprint)
        path.write_json(os.path.join(self.out_dir, path.RESUME_DIR, path.RESUME_STATE_NAME), self.state)
        return improved

    def callbacks(self, epochs, steps, evaluate, save_best, patience, time_budget=None, after_best=None):
        """Keras callbacks: the progress bar, the end of each epoch, and the time budget if any.

        evaluate(model) -> (score, {column: value}) runs after the bar is closed; its values go
        into history.csv and the logs the callbacks after these see (TensorBoard). Then
        end_epoch(..., save_best, after_best).
        """
        callbacks = [EpochEnd(self, epochs, steps, evaluate, save_best, patience, after_best)]
        if time_budget:
            callbacks.append(TimeBudget(time_budget))
        return callbacks


class EpochEnd(keras.callbacks.Callback):
    """A live bar during the epoch (terminals only), then: score, save, one line."""

    def __init__(self, run, epochs, steps, evaluate, save_best, patience, after_best=None):
        super().__init__()
        self.run, self.epochs, self.steps = run, epochs, steps
        self.evaluate, self.save_best, self.patience, self.after_best = evaluate, save_best, patience, after_best
        self.bar = None

    def on_epoch_begin(self, epoch, logs=None):
        from tqdm import tqdm
        self.started = time.monotonic()
        self.bar = tqdm(total=self.steps, desc=f'Epoch {epoch + 1}/{self.epochs}', unit=' steps', leave=False,
                        disable=not interactive(), dynamic_ncols=True)

    def on_train_batch_end(self, batch, logs=None):
        self.bar.update(1)
        if logs:
            self.bar.set_postfix({k: f'{v:.4f}' for k, v in logs.items()}, refresh=False)

    def on_epoch_end(self, epoch, logs=None):
        logs = logs if logs is not None else {}
        self.bar.close()  # gone before validation's own bar and the epoch's line
        seconds = time.monotonic() - self.started
        score, values = self.evaluate(self.model)
        logs.update(values)
        self.run.end_epoch(epoch + 1, logs, score, self.save_best, self.after_best)
        trained = ' - '.join(f'{k}: {v:.4f}' for k, v in logs.items() if k not in values and k != self.run.metric)
        name = self.run.metric
        kept = 'kept: this epoch' if self.run.keep == 'last' else f'best {name}: {self.run.best:.4f}'
        print(f'Epoch {epoch + 1}/{self.epochs} - {seconds:.0f}s - {trained} - {name}: {score:.4f} {kept}',
              flush=True)
        if self.run.state['wait'] >= self.patience:
            print(f'early stopping: {self.patience} epochs without improvement', flush=True)
            self.model.stop_training = True


class TimeBudget(keras.callbacks.Callback):
    """Ends training once `minutes` have passed; Keras still closes the epoch (so it is scored)."""

    def __init__(self, minutes):
        super().__init__()
        self.minutes = minutes
        self.deadline = time.monotonic() + 60 * minutes

    def on_train_batch_end(self, batch, logs=None):
        if time.monotonic() > self.deadline and not self.model.stop_training:
            from tqdm import tqdm
            tqdm.write(f'time budget of {self.minutes:g} minutes reached: closing this epoch', file=sys.stdout)
            self.model.stop_training = True
