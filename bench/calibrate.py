"""Calibration of a trained model on the real corpus: the temperature (one, or one per label)
fitted on the validation split train.py held out, then expected calibration error and exact
match on the test file before and after, at the model's threshold and with per-label
thresholds tuned on the calibrated validation scores.

    python bench/calibrate.py --weights bench/weights/l4h256_mlm_90min_fgm_seed42

This is what train.py now does at the end of every run (multilabel/calibration.py); the script measures it
on a model trained before, from the model's own validation split (its seed and ratio, as
recorded in its resume state). Prints a table; results in bench/results/calibration.json.
"""
import os
import sys

from sklearn.metrics import accuracy_score

# The modules that start TensorFlow (loader, model, train...) are imported inside the functions
# that use them, so --help answers at once.
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [ROOT, os.path.dirname(os.path.abspath(__file__))]

import accuracy  # noqa: E402  (beside this script)
import benchlib  # noqa: E402
import config  # noqa: E402
import path  # noqa: E402
from multilabel import calibration  # noqa: E402
from multilabel import inference  # noqa: E402

RESULTS = os.path.join(ROOT, 'bench', 'results', 'calibration.json')


def parse_args(argv=None):
    parser = config.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--weights', required=True, help='trained model folder with its resume state')
    parser.add_argument('--data', default=benchlib.SHARED_DATA, help='folder with the real corpus (default: %(default)s)')
    parser.add_argument('--out', default=RESULTS, help='JSON results file (default: %(default)s)')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    import loader
    state = path.read_resume_state(args.weights)
    settings = state['run']['config']
    classifier = inference.Classifier(args.weights, precision='float32')
    classifier.temperature = 1.0  # measured here from the raw scores, whatever the folder holds
    train = loader.read_samples(path.corpus_train(args.data))
    _, valid = loader.split_validation(train, settings['valid_ratio'], settings['seed'])
    test = loader.read_samples(path.corpus_test(args.data))
    ids = {name: loader.encode_texts(classifier.tokenizer, [s.text for s in samples], classifier.maxlen, False)
           for name, samples in (('valid', valid), ('test', test))}
    targets = {'valid': loader.multi_hot(valid, classifier.labels).astype('int32'),
               'test': loader.multi_hot(test, classifier.labels).astype('int32')}
    logits = {name: inference.model_logits(classifier.model, ids[name]) for name in ids}
    raw = {name: calibration.expit(logits[name]) for name in logits}
    fallback, threshold = classifier.top1_fallback, classifier.meta['threshold']

    rows = {}
    for name, per_label in (('none', None), ('temperature', False), ('per_label', True)):
        temperature = 1.0 if per_label is None else calibration.fit_temperature(logits['valid'], targets['valid'],
                                                                                per_label)
        valid_scores, test_scores = (calibration.apply(raw[split], temperature) for split in ('valid', 'test'))
        tuned = inference.tune_thresholds(valid_scores, targets['valid'], threshold, fallback)
        figures = calibration.summary(test_scores, targets['test'])
        rows[name] = {
            'temperature': calibration.as_json(temperature, classifier.labels) if per_label is not True else
            {'min': round(float(temperature.min()), 4), 'median': round(float(sorted(temperature)[len(temperature) // 2]), 4),
             'max': round(float(temperature.max()), 4)},
            'test_ece': round(figures['ece'], 5), 'test_ece_above_floor': round(figures['ece_above_floor'], 5),
            'test_exact_match': round(float(accuracy_score(targets['test'], inference.decide(test_scores, threshold,
                                                                                          fallback))), 4),
            'valid_exact_match_tuned_thresholds': round(float(accuracy_score(
                targets['valid'], inference.decide(valid_scores, tuned, fallback))), 4),
            'test_exact_match_tuned_thresholds': round(float(accuracy_score(
                targets['test'], inference.decide(test_scores, tuned, fallback))), 4),
            'test_reliability': figures['reliability']}
    result = {'weights': os.path.relpath(args.weights, ROOT), 'valid_samples': len(valid), 'test_samples': len(test),
              'threshold': threshold, 'top1_fallback': fallback, 'calibrations': rows,
              **benchlib.provenance('bench/calibrate.py', argv)}
    path.write_json(args.out, result)
    print(f'{"calibration":<13}{"test ECE":>10}{"ECE>=0.1":>10}{"test EM":>9}{"tuned: valid":>14}{"test":>7}')
    for name, row in rows.items():
        print(f'{name:<13}{row["test_ece"]:>10.4f}{row["test_ece_above_floor"]:>10.4f}{row["test_exact_match"]:>9.4f}'
              f'{row["valid_exact_match_tuned_thresholds"]:>14.4f}{row["test_exact_match_tuned_thresholds"]:>7.4f}')
    print(f'written: {args.out}')
    return result


if __name__ == '__main__':
    config.run_main(main)
