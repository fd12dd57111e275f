"""New labels on a trained model (train.py --from-model) against retraining on everything.

    python bench/incremental.py --pretrained bench/weights/l4h256_rtd_90min_fgm-pretrained --new-labels 10 \
        --budget-old 20 --budget-new 8 --budget-all 20 -- --maxlen 128 --batch-size 32 ...

A seeded draw of --new-labels labels plays the labels a news desk adds later. Three
fine-tunings from the same pretrained checkpoint, each under its own time budget:
1. old: on the training lines that carry none of the new labels;
2. grown: `train.py --from-model old` on the lines that carry a new label, plus a seeded
   --replay share of the old lines (without them the old labels fade);
3. all: on every training line, as a user without --from-model would.
Each is scored on the whole test file: exact match and micro F1 over all labels, micro F1 over
the old labels (old -> grown is what the old labels lost or gained), micro F1 over the new
labels. Everything after `--` goes to train.py. Writes bench/results/incremental.json.
"""
import argparse
import os
import random
import sys
import time

from sklearn.metrics import f1_score

# The modules that start TensorFlow (loader, model, train...) are imported inside the functions
# that use them, so --help answers at once.
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [ROOT, os.path.dirname(os.path.abspath(__file__))]

import accuracy  # noqa: E402  (beside this script)
import benchlib  # noqa: E402
import config  # noqa: E402
import path  # noqa: E402
from multilabel import inference  # noqa: E402

RESULTS = os.path.join(ROOT, 'bench', 'results', 'incremental.json')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--data', default=benchlib.SHARED_DATA, help='folder with the real corpus (default: %(default)s)')
    parser.add_argument('--pretrained', required=True, help='pretrained checkpoint folder all three start from')
    parser.add_argument('--new-labels', type=int, default=10, help='labels added later (default: %(default)s)')
    parser.add_argument('--replay', type=float, default=0.2, help='share of the old lines mixed into the new '
                                                                  'training file (default: %(default)s)')
    parser.add_argument('--budget-old', type=float, default=20, help='minutes of the old model (default: %(default)s)')
    parser.add_argument('--budget-new', type=float, default=8, help='minutes of --from-model (default: %(default)s)')
    parser.add_argument('--budget-all', type=float, default=20, help='minutes of the retraining (default: %(default)s)')
    parser.add_argument('--seed', type=int, default=42, help='seed of the label draw and the replay share')
    parser.add_argument('--max-test', type=int, help='score only the first N test lines (smoke runs)')
    parser.add_argument('--work', default=os.path.join(ROOT, 'bench', 'weights', 'incremental'),
                        help='folder for the three models and their training files (default: %(default)s)')
    parser.add_argument('--out', default=RESULTS, help='JSON results file (default: %(default)s)')
    parser.add_argument('train_flags', nargs=argparse.REMAINDER, help='-- then flags for train.py')
    args = parser.parse_args(argv)
    args.train_flags = [flag for flag in args.train_flags if flag != '--']
    return args


def write_samples(file_name, samples):
    def write(temporary):
        with open(temporary, 'w', encoding='utf-8') as f:
            f.writelines('|'.join(s.labels) + ' ' + s.text + '\n' for s in samples)
    path.atomic_write(file_name, write)
    return file_name


def fine_tune(flags, budget):
    """train.py with `flags` under `budget` minutes -> (wall seconds, CPU seconds, validation best)."""
    import train
    start, cpu = time.perf_counter(), accuracy.cpu_seconds()
    best = train.main(flags + ['--time-budget', str(budget)])
    return round(time.perf_counter() - start, 1), round(accuracy.cpu_seconds() - cpu, 1), round(float(best), 4)


def score(weights, test_samples, labels, old, new):
    """Exact match and micro F1 over all labels, over the old ones and over the new ones."""
    import loader
    classifier = inference.Classifier(weights)
    own = classifier.labels
    predicted = accuracy.widen(classifier.predict_batch([s.text for s in test_samples])[0], own, labels)
    targets = loader.multi_hot(test_samples, labels).astype('int32')
    columns = {'old': [labels.index(l) for l in old], 'new': [labels.index(l) for l in new]}
    row = {'exact_match': round(float((predicted == targets).all(axis=1).mean()), 4),
           'micro_f1': round(float(f1_score(targets, predicted, average='micro', zero_division=0)), 4)}
    for part, index in columns.items():
        row[f'{part}_labels_micro_f1'] = round(float(f1_score(targets[:, index], predicted[:, index],
                                                               average='micro', zero_division=0)), 4)
    return row


def main(argv=None):
    args = parse_args(argv)
    import loader
    train_file = path.corpus_train(args.data)
    test_file = path.corpus_test(args.data)
    samples = loader.read_samples(train_file)
    test_samples = loader.read_samples(test_file)[:args.max_test]
    labels = loader.label_list(samples)
    new = sorted(random.Random(args.seed).sample(labels, args.new_labels))
    old = [label for label in labels if label not in new]
    old_lines = [s for s in samples if not set(s.labels) & set(new)]
    new_lines = [s for s in samples if set(s.labels) & set(new)]
    replay = random.Random(args.seed).sample(old_lines, round(args.replay * len(old_lines)))
    os.makedirs(args.work, exist_ok=True)
    files = {'old': write_samples(os.path.join(args.work, 'old.txt'), old_lines),
             'grown': write_samples(os.path.join(args.work, 'new-and-replay.txt'), new_lines + replay),
             'all': train_file}
    folders = {name: os.path.join(args.work, name) for name in files}
    starts = {'old': ['--pretrained', args.pretrained], 'grown': ['--from-model', folders['old']],
              'all': ['--pretrained', args.pretrained]}
    budgets = {'old': args.budget_old, 'grown': args.budget_new, 'all': args.budget_all}
    lines = {'old': len(old_lines), 'grown': len(new_lines) + len(replay), 'all': len(samples)}

    rows = {}
    for name in ('old', 'grown', 'all'):
        flags = starts[name] + ['--train', files[name], '--weights', folders[name], '--overwrite'] + args.train_flags
        wall, cpu, best = fine_tune(flags, budgets[name])
        rows[name] = {'training_lines': lines[name], 'budget_minutes': budgets[name], 'wall_seconds': wall,
                      'cpu_seconds': cpu, 'best_validation_exact_match': best,
                      'load_average_1_5_15_after': [round(x, 2) for x in os.getloadavg()],
                      **score(folders[name], test_samples, labels, old, new)}
    results = {**benchlib.provenance('bench/incremental.py', argv), 'new_labels': new,
               'old_label_count': len(old), 'replay_share': args.replay, 'test_samples': len(test_samples),
               'train_flags': args.train_flags, 'pretrained': os.path.relpath(args.pretrained, ROOT), 'models': rows}
    path.write_json(args.out, results)

    print(f'\n{"model":<8}{"lines":>7}{"wall s":>8}{"exact":>8}{"micro":>8}{"old F1":>8}{"new F1":>8}')
    for name, row in rows.items():
        print(f'{name:<8}{row["training_lines"]:>7}{row["wall_seconds"]:>8.0f}{row["exact_match"]:>8.4f}'
              f'{row["micro_f1"]:>8.4f}{row["old_labels_micro_f1"]:>8.4f}{row["new_labels_micro_f1"]:>8.4f}')
    print(f'new labels: {", ".join(new)}\nwritten: {args.out}')
    return results


if __name__ == '__main__':
    config.run_main(main)
