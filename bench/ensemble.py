"""Several fine-tuned RoFormer-v2 models as one: the mean of their logits, decided at 0 (sigmoid 0.5)
with the top-1 fallback, scored on the test file.

    python bench/ensemble.py --weights bench/weights/l4h256_mlm_90min_fgm_seed42 bench/weights/l4h256_mlm_90min_fgm_seed7

Nothing is chosen: the rule is fixed before any text is read, so no validation split is needed,
which matters because models trained with different seeds hold out different validation lines
(each one's validation is another one's training data). The members must share their labels.
The row counts every member's seconds (their bench/accuracy.py rows, by folder name) and records
each member's own test figures beside the ensemble's; it goes into bench/results/accuracy.json.

--soup also scores the members' weights averaged into one model (Wortsman et al., 2022, "Model
soups"): one RoFormer-v2 served, at one model's cost. It means something only for fine-tunings of
one pretrained checkpoint. The soup and the mean of the same transformers' exact logits (without
the folders' n-gram sides or temperatures) go into the row's `soup`, with their validation exact
match beside the members' when the members hold out the same validation split.
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
    parser.add_argument('--soup', action='store_true',
                        help="also score the mean of the members' weights, one model (fine-tunings of one checkpoint)")
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
    members, logits, classifiers = {}, [], []
    for folder, row in zip(args.weights, args.rows):
        classifier = inference.Classifier(folder)
        classifiers.append(classifier)
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
    if args.soup:
        row['soup'] = soup_scores(args.weights, classifiers, test_samples, targets, seconds)
    results['systems'][args.name] = row
    path.write_json(args.out, results)

    print(f'{"system":<44}{"test exact":>12}')
    for name, exact in members.items():
        print(f'{name:<44}{exact:>12.4f}')
    print(f'{"mean of the logits":<44}{row["exact_match"]:>12.4f}  (micro {row["micro_f1"]:.4f}, macro '
          f'{row["macro_f1"]:.4f}, samples {row["samples_f1"]:.4f}); written: {args.out}')
    if args.soup:
        print(f'{"the same transformers, exact logits":<44}{"validation":>12}{"test exact":>12}')
        for name, figures in row['soup'].items():
            if isinstance(figures, dict):
                print(f'{name:<44}{figures.get("validation_exact_match", float("nan")):>12.4f}'
                      f'{figures["exact_match"]:>12.4f}')
    return row


def soup_scores(folders, members, test_samples, test_targets, seconds):
    """The members' transformers (no n-gram side, no temperature) on the test file, and on the
    validation split when all hold out the same one: each alone, the mean of their logits, and
    the mean of their weights loaded into the first one (`members`: the folders' Classifiers)."""
    import loader
    states = [path.read_resume_state(folder)['run'] for folder in folders]
    shared_split = len({(s['train'], s['config']['valid_ratio'], s['config']['seed']) for s in states}) == 1
    valid = benchlib.held_out_split(folders[0])[1] if shared_split else []
    first = members[0]
    splits = {'exact_match': (test_samples, test_targets)}
    if valid:
        splits['validation_exact_match'] = (valid, loader.multi_hot(valid, first.labels))
    encoded = {key: loader.encode_texts(first.tokenizer, [s.text for s in samples], first.maxlen)
               for key, (samples, _) in splits.items()}
    logits = {key: [inference.model_logits(m.transformer, ids) for m in members] for key, ids in encoded.items()}
    try:
        first.transformer.set_weights([np.mean(w, axis=0) for w in zip(*(m.transformer.get_weights() for m in members))])
    except ValueError as error:
        raise config.InputError(f'--soup: the members\' weights differ in shape ({error})') from None
    systems = {os.path.basename(os.path.normpath(f)): {key: member[i] for key, member in logits.items()}
               for i, f in enumerate(folders)}
    systems['mean of the logits'] = {key: np.mean(member, axis=0) for key, member in logits.items()}
    systems['mean of the weights (soup)'] = {key: inference.model_logits(first.transformer, ids)
                                             for key, ids in encoded.items()}
    soup = {'shared_validation_split': shared_split, 'validation_samples': len(valid)}
    for name, by_split in systems.items():
        soup[name] = {key: accuracy.scores_of(splits[key][1], inference.decide(scores, 0.0), 0)['exact_match']
                      for key, scores in by_split.items()}
    soup['mean of the weights (soup)'].update(
        accuracy.scores_of(test_targets, inference.decide(systems['mean of the weights (soup)']['exact_match'], 0.0),
                           seconds))
    return soup


if __name__ == '__main__':
    config.run_main(main)
