"""Our fine-tuned RoFormer-v2 and the TF-IDF peer together: the transformer's logits plus
beta times the peer's SVM margins, beta chosen on the validation split, scored on the test file.

    python bench/blend.py --weights bench/weights/l4h256_rtd_90min_fgm --name l4h256_rtd_90min_fgm+tfidf
    python bench/blend.py --weights bench/weights/NAME --side ngram     # what train.py --ngram-blend serves

--side tfidf (the default) is the peer itself, character 1-3-grams of the raw text; --side ngram
is train.py --ngram-blend's side (multilabel/ngram.py): the same TF-IDF + SVM over the token
1-3-grams the model reads, blended with the model's exact logits, as train.py fits it.

The two make different mistakes: the peer reads character n-grams, the transformer reads
context. Both scores cross their decision point at 0 (sigmoid 0.5, the SVM's margin 0), so
logit + beta * margin > 0, with the top-1 fallback, is one decision rule for any beta: beta 0
is the transformer alone: its exact logits, without the temperature and without the folder's
own n-gram side (train.py --ngram-blend), so both sides join the same scores. The peer is
fitted on the training split train.py trained on (its validation split held out), beta is the
grid value with the highest validation exact match, and only then is the test file read. The row, with the peer's seconds added to the
transformer's and the side's own exact match beside the blend's, goes into
bench/results/accuracy.json.
"""
import argparse
import os
import sys
import time

# The modules that start TensorFlow (loader, model, train...) are imported inside the functions
# that use them, so --help answers at once.
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [ROOT, os.path.dirname(os.path.abspath(__file__))]

import accuracy  # noqa: E402  (beside this script)
import benchlib  # noqa: E402
import config  # noqa: E402
import path  # noqa: E402
from multilabel import inference  # noqa: E402
from multilabel import ngram  # noqa: E402
from multilabel import teacher as teacher_lib  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--weights', required=True, help='trained model folder (a bench/accuracy.py row\'s)')
    parser.add_argument('--row', help='the bench/accuracy.py row of the model, whose seconds are counted '
                                      '(default: the folder\'s name, as bench/accuracy.py names it)')
    parser.add_argument('--side', choices=('tfidf', 'ngram'), default='tfidf',
                        help='tfidf: the peer on the raw text; ngram: train.py --ngram-blend\'s side (default: %(default)s)')
    parser.add_argument('--name', help='system name in the results (default: ROW+SIDE)')
    parser.add_argument('--data', default=benchlib.SHARED_DATA, help='folder with the real corpus (default: %(default)s)')
    parser.add_argument('--max-test', type=int, help='score only the first N test lines (smoke runs)')
    parser.add_argument('--out', default=accuracy.RESULTS, help='JSON results file (default: %(default)s)')
    args = parser.parse_args(argv)
    args.row = args.row or os.path.basename(os.path.normpath(args.weights))
    args.name = args.name or f'{args.row}+{args.side}'
    return args


def main(argv=None):
    args = parse_args(argv)
    import loader
    settings = path.read_resume_state(args.weights)['run']['config']
    train_samples, valid_samples = benchlib.held_out_split(args.weights)
    test_samples = loader.read_samples(path.corpus_test(args.data))[:args.max_test]
    classifier = inference.Classifier(args.weights)
    labels = classifier.labels

    encoded = lambda samples: loader.encode_texts(classifier.tokenizer, [s.text for s in samples], classifier.maxlen)
    start = time.perf_counter()
    if args.side == 'tfidf':
        peer = teacher_lib.tfidf_pipeline()
        peer.fit([s.text for s in train_samples], loader.multi_hot(train_samples, labels))
    else:
        specials = ngram.special_ids(classifier.tokenizer)
        side = ngram.fit(encoded(train_samples), loader.multi_hot(train_samples, labels), specials, settings['seed'])
    peer_seconds = time.perf_counter() - start

    def both_scores(samples):
        ids = encoded(samples)
        margins = (peer.decision_function([s.text for s in samples]) if args.side == 'tfidf'
                   else ngram.margins(side, ids, specials))
        return inference.model_logits(classifier.transformer, ids), margins, loader.multi_hot(samples, labels)

    valid_logits, valid_margins, valid_targets = both_scores(valid_samples)
    beta, exact = inference.blend_weight(valid_logits, valid_margins, valid_targets)
    test_logits, test_margins, test_targets = both_scores(test_samples)

    # Most texts carry one label; a text with several is where a model tends to name one too few.
    several = valid_targets.sum(axis=1) > 1
    several_count = int(several.sum())

    def exact_on(scores, texts):
        return accuracy.scores_of(valid_targets[texts], inference.decide(scores[texts], 0.0), 0.0)['exact_match']

    by_label_count = {system: {'one_label': exact_on(scores, ~several),
                               'several_labels': exact_on(scores, several) if several_count else None}
                      for system, scores in (('alone', valid_logits), ('blend', valid_logits + beta * valid_margins))}

    results = path.read_json(args.out) if os.path.exists(args.out) else {'systems': {}}
    if args.row not in results['systems']:
        raise config.InputError(f'--row {args.row}: no such system in {args.out}')
    seconds = results['systems'][args.row]['train_seconds'] + peer_seconds
    row = accuracy.scores_of(test_targets, inference.decide(test_logits + beta * test_margins, 0.0), seconds)
    side_alone = {split: accuracy.scores_of(targets, inference.decide(margins, 0.0), 0.0)['exact_match']
                  for split, margins, targets in (('validation', valid_margins, valid_targets),
                                                  ('test', test_margins, test_targets))}
    row.update(side=args.side, beta=beta, validation_exact_match_by_beta={str(b): round(e, 4) for b, e in exact.items()},
               best_validation_exact_match=round(exact[beta], 4), peer_seconds=round(peer_seconds, 3),
               side_alone_validation_exact_match=side_alone['validation'], side_alone_exact_match=side_alone['test'],
               validation_exact_match_by_label_count=by_label_count, validation_texts_with_several_labels=several_count,
               weights=os.path.relpath(args.weights, ROOT), test_samples=len(test_samples),
               **benchlib.provenance('bench/blend.py', argv))
    results['systems'][args.name] = row
    path.write_json(args.out, results)

    print(f'{"beta":>6}{"validation exact":>18}')
    for b in ngram.BETAS:
        print(f'{b:>6g}{exact[b]:>18.4f}' + ('  <- chosen' if b == beta else ''))
    print(f'the side alone: validation exact {side_alone["validation"]:.4f}, test exact {side_alone["test"]:.4f}')
    for system, split in by_label_count.items():
        print(f'validation exact, {system}: {split["one_label"]:.4f} on the texts with one label, '
              f'{split["several_labels"]} on the {several_count} with several')
    print(f'\ntest, beta {beta:g}: exact {row["exact_match"]:.4f}, micro {row["micro_f1"]:.4f}, '
          f'macro {row["macro_f1"]:.4f}, samples {row["samples_f1"]:.4f}; written: {args.out}')
    return row


if __name__ == '__main__':
    config.run_main(main)
