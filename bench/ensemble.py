"""Several fine-tuned RoFormer-v2 models as one: the mean of their logits, decided at 0 (sigmoid 0.5)
with the top-1 fallback, scored on the test file.

    python bench/ensemble.py --weights bench/weights/l4h256_mlm_90min_fgm_seed42 bench/weights/l4h256_mlm_90min_fgm_seed7

Nothing is chosen: the rule is fixed before any text is read, so no validation split is needed,
which matters because models trained with different seeds hold out different validation lines
(each one's validation is another one's training data). The members must share their labels.
The row counts every member's seconds (their bench/accuracy.py rows, by folder name) and records
each member's own test figures beside the ensemble's; it goes into bench/results/accuracy.json.
"""
import argparse
import os
import sys

import numpy as np

# The modules that start TensorFlow (loader, model, train...) are imported inside the functions
# that use them, so --help answers at once.
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [ROOT, os.path.dirname(os.path.abspath(__file__))]

import accuracy  # noqa: E402  (beside this script)
import benchlib  # noqa: E402
import config  # noqa: E402
import path  # noqa: E402
from multilabel import inference  # noqa: E402


def served_logits(scores):
    """The logits of a member's served (calibrated) scores, which float32 saturates near +-16."""
    clipped = np.clip(scores.astype('float64'), 1e-7, 1 - 1e-7)
    return np.log(clipped) - np.log1p(-clipped)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--weights', nargs='+', required=True, help="trained model folders (bench/accuracy.py rows')")
    parser.add_argument('--name', help='system name in the results (default: the rows joined by "+")')
    parser.add_argument('--data', default=benchlib.SHARED_DATA, help='folder with the real corpus (default: %(default)s)')
    parser.add_argument('--max-test', type=int, help='score only the first N test lines (smoke runs)')
    parser.add_argument('--out', default=accuracy.RESULTS, help='JSON results file (default: %(default)s)')
    args = parser.parse_args(argv)
    args.rows = [os.path.basename(os.path.normpath(folder)) for folder in args.weights]
    args.name = args.name or 'ensemble:' + '+'.join(args.rows)
    return args


def main(argv=None):
    args = parse_args(argv)
    import loader
    results = path.read_json(args.out) if os.path.exists(args.out) else {'systems': {}}
    missing = [row for row in args.rows if row not in results['systems']]
    if missing:
        raise config.InputError(f'--weights: no row {", ".join(missing)} in {args.out} (run bench/accuracy.py first)')
    test_samples = loader.read_samples(path.corpus_test(args.data))[:args.max_test]
    texts = [s.text for s in test_samples]
    members, logits = {}, []
    for folder, row in zip(args.weights, args.rows):
        classifier = inference.Classifier(folder)
        if logits and classifier.labels != labels:
            raise config.InputError(f'--weights {folder}: its labels differ from {args.weights[0]}\'s')
        labels = classifier.labels
        targets = loader.multi_hot(test_samples, labels)
        logits.append(served_logits(classifier.scores(texts)))
        members[row] = accuracy.scores_of(targets, inference.decide(logits[-1], 0.0), 0)['exact_match']
    seconds = sum(results['systems'][row]['train_seconds'] for row in args.rows)
    row = accuracy.scores_of(targets, inference.decide(np.mean(logits, axis=0), 0.0), seconds)
    row.update(members=args.rows, member_test_exact_match=members,
               weights=[os.path.relpath(folder, ROOT) for folder in args.weights], test_samples=len(test_samples),
               **benchlib.provenance('bench/ensemble.py', argv))
    results['systems'][args.name] = row
    path.write_json(args.out, results)

    print(f'{"system":<44}{"test exact":>12}')
    for name, exact in members.items():
        print(f'{name:<44}{exact:>12.4f}')
    print(f'{"mean of the logits":<44}{row["exact_match"]:>12.4f}  (micro {row["micro_f1"]:.4f}, macro '
          f'{row["macro_f1"]:.4f}, samples {row["samples_f1"]:.4f}); written: {args.out}')
    return row


if __name__ == '__main__':
    config.run_main(main)
