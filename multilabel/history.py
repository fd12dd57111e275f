"""Training history: `weights/history.csv`, one row per completed epoch.

train.py's columns: epoch, loss (training, with FGM), val_exact_match (EMA weights),
encoder_lr and head_lr (the learning rates the optimizer used in that epoch). Other runs
name their own (pretrain.py: the MLM loss and the held-out masked-token accuracy). A fresh run starts a new file;
`--resume` keeps the rows of the epochs it resumes after, and an epoch run again (killed
before its state was saved) replaces its row, so the file always has one row per epoch.
The whole file is rewritten atomically each epoch: it is never half-written.
"""
import csv

import path

COLUMNS = ('epoch', 'loss', 'val_exact_match', 'encoder_lr', 'head_lr')


def read_history(csv_path):
    """history.csv -> list of {column: number}, in epoch order."""
    with open(csv_path, newline='', encoding='utf-8') as f:
        return [{key: int(value) if key == 'epoch' else float(value) for key, value in row.items()}
                for row in csv.DictReader(f)]




class History:
    """Writes history.csv; `completed_epochs` rows of an earlier run of the same training are kept."""

    def __init__(self, csv_path, completed_epochs=0, columns=COLUMNS):
        self.csv_path = csv_path
        self.columns = tuple(columns)
        self.rows = []
        if completed_epochs:
            try:
                self.rows = [row for row in read_history(csv_path) if row['epoch'] <= completed_epochs]
            except FileNotFoundError:  # a run resumed from a state written before history existed
                pass

    def record(self, epoch, logs):
        """Add (or replace) the row of `epoch` (counted from 1), the columns taken from `logs`, and
        rewrite the file. A column missing from `logs` is written as nan."""
        row = {'epoch': epoch, **{column: logs.get(column, float('nan')) for column in self.columns if column != 'epoch'}}
        self.rows = [r for r in self.rows if r['epoch'] < epoch] + [row]

        def write(temporary):
            with open(temporary, 'w', newline='', encoding='utf-8') as f:
                writer = csv.DictWriter(f, self.columns)
                writer.writeheader()
                writer.writerows(self.rows)
        path.atomic_write(self.csv_path, write)
