"""Imbalance on the real corpus: a model trained without and one trained with --pos-weight.

    python bench/imbalance.py --baseline bench/weights/small-len64 --weighted bench/weights/small-len64-posweight

Both folders come from the same train.py command (same split, epochs and settings) but for
--pos-weight. Each is scored on the validation split train.py held out (where the choice is
made: --pos-weight would become the default only if it raised validation exact match without
lowering validation macro-F1) and on the test file: exact match, micro and macro F1, and the
per-label F1 of the 15 labels rarest in the training split. Prints a table; results in
bench/results/imbalance.json.
"""
import argparse
import collections
import os
import sys

from sklearn.metrics import f1_score

# The modules that start TensorFlow (loader, model, train...) are imported inside the functions
# that use them, so --help answers at once.
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import benchlib  # noqa: E402  (beside this script)
import config  # noqa: E402
import path  # noqa: E402
from multilabel import inference  # noqa: E402

RESULTS = os.path.join(ROOT, 'bench', 'results', 'imbalance.json')
RAREST = 15


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--baseline', required=True, help='model folder trained without --pos-weight')
    parser.add_argument('--weighted', required=True, help='model folder trained with --pos-weight')
    parser.add_argument('--data', default=benchlib.SHARED_DATA, help='folder with multi-classification-{train,test}.txt '
                                                            '(default: %(default)s)')
    parser.add_argument('--max-samples', type=int, help='first N lines of each evaluated file only (smoke runs)')
    parser.add_argument('--out', default=RESULTS, help='JSON results file (default: %(default)s)')
    config.add_flags(parser, 'batch_size')
    return parser.parse_args(argv)


def scores_of(classifier, samples, rare, batch_size):
    import loader
    targets = loader.multi_hot(samples, classifier.labels).astype('int32')
    predictions, _, _ = classifier.predict_batch([s.text for s in samples], batch_size)
    per_label = dict(zip(classifier.labels, f1_score(targets, predictions, average=None, zero_division=0)))
    return {'exact_match': round(float((targets == predictions).all(axis=1).mean()), 4),
            'micro_f1': round(float(f1_score(targets, predictions, average='micro', zero_division=0)), 4),
            'macro_f1': round(float(f1_score(targets, predictions, average='macro', zero_division=0)), 4),
            'rarest_mean_f1': round(float(sum(per_label[label] for label in rare) / len(rare)), 4),
            'rarest_f1': {label: round(float(per_label[label]), 4) for label in rare}}


def main(argv=None):
    args = parse_args(argv)
    import loader
    cfg = config.Config()  # train.py's default validation split
    train_file = path.corpus_train(args.data)
    test_file = path.corpus_test(args.data)
    train, valid = loader.split_validation(loader.read_samples(train_file), cfg.valid_ratio, cfg.seed)
    splits = {'validation': valid[:args.max_samples], 'test': loader.read_samples(test_file)[:args.max_samples]}
    counts = collections.Counter(label for s in train for label in s.labels)
    rare = sorted(counts, key=lambda label: (counts[label], label))[:RAREST]
    support = {name: collections.Counter(label for s in samples for label in s.labels) for name, samples in splits.items()}

    systems = {}
    for name, weights in (('without', args.baseline), ('with --pos-weight', args.weighted)):
        classifier = inference.Classifier(weights)
        state = path.read_resume_state(weights)
        systems[name] = {'weights': weights, 'pos_weight': state['run']['config'].get('pos_weight', 'none'),
                         'epochs': state['epoch'],
                         **{split: scores_of(classifier, samples, rare, args.batch_size)
                            for split, samples in splits.items()}}
    base, weighted = systems['without']['validation'], systems['with --pos-weight']['validation']
    wins = weighted['exact_match'] > base['exact_match'] and weighted['macro_f1'] >= base['macro_f1']
    lines = {label: {split: support[split][label] for split in splits} for label in rare}
    result = {'systems': systems, 'rarest_labels': {label: {'train': counts[label], **lines[label]} for label in rare},
              'pos_weight_wins_on_validation': wins, **benchlib.provenance('bench/imbalance.py', argv)}
    path.write_json(args.out, result)

    print(f'\n{"":<20}' + ''.join(f'{name:>22}' for name in systems))
    for split in splits:
        for metric in ('exact_match', 'micro_f1', 'macro_f1', 'rarest_mean_f1'):
            print(f'{split[:5] + " " + metric:<20}' + ''.join(f'{s[split][metric]:>22.4f}' for s in systems.values()))
    print(f'\ntest F1 of the {RAREST} rarest labels (training lines / test lines):')
    for label in rare:
        name = f'{label} ({counts[label]}/{support["test"][label]})'
        print(f'{name:<32}' + ''.join(f'{s["test"]["rarest_f1"][label]:>10.4f}' for s in systems.values()))
    print(f'\n--pos-weight {"wins" if wins else "does not win"} on validation '
          f'(exact match {base["exact_match"]:.4f} -> {weighted["exact_match"]:.4f}, '
          f'macro F1 {base["macro_f1"]:.4f} -> {weighted["macro_f1"]:.4f}); written: {args.out}')
    return result


if __name__ == '__main__':
    config.run_main(main)
