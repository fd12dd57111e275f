"""Training history: `weights/history.csv`, one row per completed epoch.

Columns: epoch, loss (training, with FGM), val_exact_match (EMA weights), encoder_lr and
head_lr (the learning rates the optimizer used in that epoch). A fresh run starts a new file;
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


def learning_rates(optimizer):
    """(encoder, head) learning rate of model.build_optimizer's optimizer, as it stands now."""
    import model as model_lib
    from compat import keras
    encoder = float(keras.backend.get_value(optimizer.learning_rate))
    head = encoder * optimizer.paramwise_lr_schedule.get(model_lib.HEAD_PREFIX, 1.0)
    return float(f'{encoder:.7g}'), float(f'{head:.7g}')  # float32: 7 significant digits, not 4.9999998e-05


class History:
    """Writes history.csv; `completed_epochs` rows of an earlier run of the same training are kept."""

    def __init__(self, csv_path, completed_epochs=0):
        self.csv_path = csv_path
        self.rows = []
        if completed_epochs:
            try:
                self.rows = [row for row in read_history(csv_path) if row['epoch'] <= completed_epochs]
            except FileNotFoundError:  # a run resumed from a state written before history existed
                pass

    def record(self, epoch, logs, optimizer):
        """Add (or replace) the row of `epoch` (counted from 1) and rewrite the file.

        The learning rates also go into `logs`, so TensorBoard and the progress bar show them.
        """
        encoder_lr, head_lr = learning_rates(optimizer)
        logs.update(encoder_lr=encoder_lr, head_lr=head_lr)
        row = {'epoch': epoch, 'loss': logs.get('loss', float('nan')),
               'val_exact_match': logs.get('val_exact_match', float('nan')),
               'encoder_lr': encoder_lr, 'head_lr': head_lr}
        self.rows = [r for r in self.rows if r['epoch'] < epoch] + [row]

        def write(temporary):
            with open(temporary, 'w', newline='', encoding='utf-8') as f:
                writer = csv.DictWriter(f, COLUMNS)
                writer.writeheader()
                writer.writerows(self.rows)
        path.atomic_write(self.csv_path, write)
