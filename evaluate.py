"""Evaluate a trained model on a labelled file.

    python evaluate.py                                   # bundled sample test file (or data/multi-classification-test.txt)
    python evaluate.py --data ../shared/data             # the full corpus' test file

Prints exact-match accuracy (a sample is right only when its whole predicted label set
equals its true set) and sklearn's per-label classification report with the micro,
macro, weighted and samples averages. Writes the same report, with the micro
precision/recall-vs-threshold curve and the most confused label pairs, to report.json and
report.csv (see multilabel/report.py) for `python main.py plot` to draw, and every wrongly predicted text,
with its line number, true and predicted labels and their scores, to errors.jsonl.
"""
import json
import os
import sys

import numpy as np

import config
import path
from multilabel import calibration
from multilabel import inference


def parse_args(argv=None):
    parser = config.ArgumentParser(description='Exact-match accuracy and per-label report of a trained model.')
    parser.add_argument('--data', metavar='DIR', help='folder holding multi-classification-test.txt (e.g. ../shared/data)')
    parser.add_argument('--input', dest='test', aliases=['--test'], metavar='FILE',
                        help='labelled test file (default: data/multi-classification-test.txt '
                             'if present, else the bundled data/sample-test.txt)')
    config.add_trained_model_flags(parser, path.WEIGHTS_DIR)
    parser.add_argument('--out', dest='report_dir', aliases=['--report-dir'], type=config.folder, metavar='DIR',
                        help=f'folder for {path.REPORT_NAME}, {path.REPORT_CSV_NAME} and {path.ERRORS_NAME} '
                             '(default: the --weights folder)')
    config.add_flags(parser, 'batch_size', helps=config.SCORING_HELP)
    config.add_inference_precision_flag(parser)
    config.add_flags(parser, 'long_text', 'stride')
    args = parser.parse_args(argv)
    args.report_dir = args.report_dir or args.weights
    if args.data and not args.test:
        args.test = path.corpus_test(args.data)
    args.test = args.test or path.default_test_file()
    return args


def evaluate(classifier, samples, batch_size, report_dir=None):
    """(exact-match accuracy, classification report text) of `classifier` on `samples`;
    with `report_dir`, also report.json and report.csv there."""
    import loader  # starts TensorFlow, and scikit-learn takes a second: imported on use, so --help answers at once
    from multilabel import report as report_lib
    from sklearn.metrics import accuracy_score, classification_report
    known = set(classifier.labels)
    unknown = sorted({label for s in samples for label in s.labels if label not in known})
    if unknown:
        print(f'warning: labels unknown to the model are left out of the scores: {", ".join(unknown)}',
              file=sys.stderr)
    targets = loader.multi_hot(samples, classifier.labels).astype('int32')
    predictions, _, scores = classifier.predict_batch([s.text for s in samples], batch_size,
                                                      progress=config.interactive())
    accuracy = accuracy_score(targets, predictions)
    print(calibration_line(scores, targets, classifier.temperature))
    report = classification_report(targets, predictions, target_names=classifier.labels,
                                   digits=4, zero_division=0)
    if report_dir:
        written = report_lib.write(report_dir, report_lib.build(classifier.labels, targets, predictions, scores,
                                                                classifier.threshold, classifier.top1_fallback))
        errors_path = os.path.join(report_dir, path.ERRORS_NAME)
        count = write_errors(errors_path, samples, classifier.labels, targets, predictions, scores)
        print('report: ' + ', '.join([*written, f'{errors_path} ({count} wrong texts)']))
    return accuracy, report


def calibration_line(scores, targets, temperature):
    """The expected calibration error of the scores the model answers with, and of its raw
    scores (the temperature undone) when it has one."""
    line = f'expected calibration error: {calibration.expected_calibration_error(scores, targets):.4f}'
    if np.any(np.asarray(temperature) != 1):
        raw = calibration.apply(scores, 1 / np.asarray(temperature, dtype='float64'))
        line += f' (before the temperature: {calibration.expected_calibration_error(raw, targets):.4f})'
    return line


def write_errors(errors_path, samples, labels, targets, predictions, scores):
    """One JSON line per sample whose predicted label set is not its true one (as exact match
    counts it), in file order: the line number in the file, the text, the true and predicted
    labels, and the scores of both (a missed label's low score, a wrong label's high one).
    Returns how many were written."""
    wrong = np.flatnonzero((targets != predictions).any(axis=1))

    def write(temporary):
        with open(temporary, 'w', encoding='utf-8') as f:
            for i in wrong:
                true = list(samples[i].labels)
                predicted = [labels[j] for j in np.flatnonzero(predictions[i])]
                score = {label: round(float(s), 4) for label, s in zip(labels, scores[i])}
                f.write(json.dumps({
                    'line': int(i) + 1,  # read_samples keeps every line, in order
                    'text': samples[i].text,
                    'true': true,
                    'predicted': predicted,
                    'true_scores': {label: score.get(label) for label in true},  # None: a label the model lacks
                    'predicted_scores': {label: score[label] for label in predicted},
                }, ensure_ascii=False) + '\n')
    path.atomic_write(errors_path, write)
    return len(wrong)


def main(argv=None):
    args = parse_args(argv)
    import loader  # as in evaluate()
    samples = loader.read_samples(args.test)  # a bad file is said before the model loads
    classifier = inference.Classifier(args.weights, args.threshold, args.top1_fallback, args.inference_precision,
                                    long_text=args.long_text, stride=args.stride)
    print(f'data: {args.test}' + (' (bundled sample)' if args.test == path.SAMPLE_TEST else ''))
    print(f'precision: {classifier.precision}')
    accuracy, report = evaluate(classifier, samples, args.batch_size, args.report_dir)
    print(f'exact-match accuracy: {accuracy:.4f} ({len(samples)} samples)')
    print(report)
    return accuracy


if __name__ == '__main__':
    config.run_main(main)
