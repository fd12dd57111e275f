"""Faithfulness of the explanation methods on a labelled test file: the mean drop of each
decided label's score when its text loses the top-k characters by each method, against k
random characters (explain.faithfulness).

    python bench/faithfulness.py --weights bench/weights/l4h256_mlm_90min_fgm_seed42                   # ../shared/data test file
    python bench/faithfulness.py --weights weights --test data/sample-test.txt --max-texts 20 --k 3 --out /tmp/e.json

A faithful method's curve lies above the random one; the higher, the better the method names
what the model uses. Each method's attribution seconds are measured in this one process
(the scoring of the removals is shared and not counted). Prints a table; results in
bench/results/faithfulness.json.
"""
import argparse
import os
import sys

# The modules that start TensorFlow (loader, model, train...) are imported inside the functions
# that use them, so --help answers at once.
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import benchlib  # noqa: E402  (beside this script)
import config  # noqa: E402
from multilabel import explain  # noqa: E402
import path  # noqa: E402
from multilabel import inference  # noqa: E402

RESULTS = os.path.join(ROOT, 'bench', 'results', 'faithfulness.json')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--weights', default=path.WEIGHTS_DIR, help='trained model folder (default: %(default)s)')
    parser.add_argument('--test', default=benchlib.DEFAULT_TEST,
                        help='labelled file (default: %(default)s)')
    parser.add_argument('--max-texts', type=int, help='only the first N texts of the file (default: all)')
    parser.add_argument('--k', type=int, default=explain.TOP_K, help='characters removed, 1 to K (default: %(default)s)')
    parser.add_argument('--methods', nargs='+', default=list(explain.METHODS), choices=explain.METHODS,
                        help='(default: all)')
    parser.add_argument('--steps', type=int, default=explain.STEPS,
                        help='integrated gradients: points on the path (default: %(default)s)')
    parser.add_argument('--seed', type=int, default=0, help='the random characters (default: %(default)s)')
    parser.add_argument('--out', default=RESULTS, help='JSON results (default: %(default)s)')
    config.add_flags(parser, 'batch_size')
    args = parser.parse_args(argv)
    if args.k < 1:
        parser.error('--k must be 1 or more')
    return args


def main(argv=None):
    args = parse_args(argv)
    import loader
    texts = [s.text for s in loader.read_samples(args.test)][:args.max_texts]
    classifier = inference.Classifier(args.weights)  # float32: the gradient methods read the Keras model
    print(f'{len(texts)} texts of {args.test}, methods: {", ".join(args.methods)}', flush=True)
    found = explain.faithfulness(classifier, texts, args.methods, args.k, args.seed, args.steps, args.batch_size)
    result = {'weights': os.path.relpath(args.weights, ROOT), 'test': os.path.relpath(args.test, ROOT),
              'texts': len(texts), 'pairs': found['pairs'], 'k': found['k'], 'steps': args.steps, 'seed': args.seed,
              'removal': 'deletion of the top-k tokens (random: k random tokens), scores by inference.predict_scores',
              'curves': found['curves'],
              'attribution_seconds_per_text': {m: round(s / max(len(texts), 1), 4) for m, s in found['seconds'].items()},
              **benchlib.provenance('bench/faithfulness.py', argv)}
    path.write_json(args.out, result)

    print(f'\nmean drop of the decided label\'s score, {found["pairs"]} (text, label) pairs')
    print(f'{"removed":<22}' + ''.join(f'{f"k={k}":>9}' for k in found['k']) + f'{"s/text":>9}')
    for curve, drops in found['curves'].items():
        seconds = result['attribution_seconds_per_text'].get(curve)
        print(f'{curve:<22}' + ''.join(f'{d:>9.4f}' for d in drops) + (f'{seconds:>9.3f}' if seconds is not None else ''))
    print(f'written: {args.out}')
    return result


if __name__ == '__main__':
    config.run_main(main)
