"""Long texts on the real corpus: --long-text truncate against chunk, accuracy and cost.

    python bench/long_text.py --weights bench/weights/small-len64          # a model trained at maxlen 64
    python bench/long_text.py --weights W --strides 8 16 31 62 --repeats 3

The stride is chosen on the validation split that train.py held out (same ratio and seed),
never on the test file: every --strides value (0 = half a window) is scored there, and the
one with the best exact match (ties: the larger stride, fewer windows) is then compared
with truncation on the test file. Speed: sentences per second of both modes over the test
file in this one process, their runs interleaved so a load that comes and goes slows both
alike; the ratio is the figure to read. Prints a table; results in bench/results/long_text.json.
"""
import argparse
import os
import sys
import time

import numpy as np
from sklearn.metrics import f1_score

# The modules that start TensorFlow (loader, model, train...) are imported inside the functions
# that use them, so --help answers at once.
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import benchlib  # noqa: E402  (beside this script)
import config  # noqa: E402
import path  # noqa: E402
from multilabel import inference  # noqa: E402

RESULTS = os.path.join(ROOT, 'bench', 'results', 'long_text.json')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--weights', required=True, help='trained model folder')
    parser.add_argument('--data', default=benchlib.SHARED_DATA, help='folder with multi-classification-{train,test}.txt '
                                                            '(default: %(default)s)')
    parser.add_argument('--strides', type=int, nargs='+', default=[8, 16, 0, 48],
                        help='strides tried on the validation split (default: %(default)s)')
    parser.add_argument('--repeats', type=int, default=2, help='timed passes over the test file per mode '
                                                               '(default: %(default)s)')
    parser.add_argument('--max-samples', type=int, help='first N lines of each file only (smoke runs)')
    parser.add_argument('--out', default=RESULTS, help='JSON results file (default: %(default)s)')
    config.add_flags(parser, 'batch_size')
    return parser.parse_args(argv)


def scores_of(targets, predictions, overflow):
    exact = (targets == predictions).all(axis=1)
    return {'exact_match': round(float(exact.mean()), 4),
            'exact_match_of_overflowing_texts': round(float(exact[overflow].mean()), 4) if overflow.any() else None,
            'micro_f1': round(float(f1_score(targets, predictions, average='micro', zero_division=0)), 4),
            'macro_f1': round(float(f1_score(targets, predictions, average='macro', zero_division=0)), 4)}


def main(argv=None):
    args = parse_args(argv)
    import loader
    cfg = config.Config()  # train.py's default validation split
    train_file = path.corpus_train(args.data)
    test_file = path.corpus_test(args.data)
    _, valid = loader.split_validation(loader.read_samples(train_file), cfg.valid_ratio, cfg.seed)
    test = loader.read_samples(test_file)[:args.max_samples]
    valid = valid[:args.max_samples]
    classifier = inference.Classifier(args.weights)
    window = classifier.maxlen - 2

    def evaluate(samples, mode, stride=0):
        classifier.long_text, classifier.stride = mode, stride
        targets = loader.multi_hot(samples, classifier.labels).astype('int32')
        tokens = [len(classifier.tokenizer.encode(s.text)[0]) for s in samples]
        overflow = np.array(tokens) > classifier.maxlen
        predictions, _, _ = classifier.predict_batch([s.text for s in samples], args.batch_size)
        return scores_of(targets, predictions, overflow), float(overflow.mean())

    validation = {'truncate': evaluate(valid, 'truncate')[0]}
    for stride in args.strides:
        validation[f'chunk stride {stride or window // 2}'] = evaluate(valid, 'chunk', stride)[0]
        print(f'validation, stride {stride or window // 2}: {validation[f"chunk stride {stride or window // 2}"]}',
              flush=True)
    best = max(args.strides, key=lambda s: (validation[f'chunk stride {s or window // 2}']['exact_match'],
                                            s or window // 2))
    best_stride = best or window // 2

    truncate, overflow_share = evaluate(test, 'truncate')
    chunk, _ = evaluate(test, 'chunk', best_stride)
    windows, _ = loader.encode_windows(classifier.tokenizer, [s.text for s in test], classifier.maxlen, best_stride,
                                       progress=False)

    texts = [s.text for s in test]
    seconds = {'truncate': [], 'chunk': []}
    for _ in range(args.repeats):  # interleaved: truncate, chunk, truncate, chunk...
        for mode in seconds:
            classifier.long_text, classifier.stride = mode, best_stride
            start = time.perf_counter()
            classifier.scores(texts, args.batch_size)
            seconds[mode].append(time.perf_counter() - start)
    speed = {mode: round(len(texts) / min(times), 1) for mode, times in seconds.items()}

    result = {
        'weights': args.weights, 'maxlen': classifier.maxlen, 'batch_size': args.batch_size,
        'validation_samples': len(valid), 'test_samples': len(test),
        'test_share_over_maxlen': round(overflow_share, 4), 'test_windows': len(windows),
        'validation': validation, 'chosen_stride': best_stride,
        'test': {'truncate': truncate, f'chunk stride {best_stride}': chunk},
        'sentences_per_second': speed, 'chunk_over_truncate_time': round(speed['truncate'] / speed['chunk'], 3),
        **benchlib.provenance('bench/long_text.py', argv),
    }
    path.write_json(args.out, result)

    print(f'\nmaxlen {classifier.maxlen}: {100 * overflow_share:.1f}% of the {len(test)} test texts are longer; '
          f'{len(windows)} windows at stride {best_stride} (chosen on {len(valid)} validation texts)')
    print(f'{"split":<11}{"mode":<18}{"exact":>7}{"exact>maxlen":>13}{"micro":>7}{"macro":>7}{"sent/s":>8}')
    for split, rows in (('validation', validation), ('test', result['test'])):
        for mode, r in rows.items():
            rate = speed['truncate' if mode == 'truncate' else 'chunk'] if split == 'test' else None
            over = r['exact_match_of_overflowing_texts']
            over = '-' if over is None else f'{over:.4f}'  # no text over maxlen
            print(f'{split:<11}{mode:<18}{r["exact_match"]:>7.4f}{over:>13}'
                  f'{r["micro_f1"]:>7.4f}{r["macro_f1"]:>7.4f}{"" if rate is None else f"{rate:.1f}":>8}')
    print(f'chunk costs {result["chunk_over_truncate_time"]:.2f}x the time of truncate; written: {args.out}')
    return result


if __name__ == '__main__':
    config.run_main(main)
