"""The evaluation report, built once: exact match, per-label scores, the threshold curve and
the most confused label pairs. evaluate.py writes it as JSON and CSV; plot.py draws it.

    report.json  everything below, for plot.py and other programs
    report.csv   label, precision, recall, f1, support, threshold: one row per label, then the averages

Per-label and averaged scores are sklearn's `classification_report`, the same numbers
evaluate.py prints.
"""
import os

import numpy as np

import path

AVERAGES = ('micro avg', 'macro avg', 'weighted avg', 'samples avg')
THRESHOLDS = np.round(np.linspace(0.02, 0.98, 49), 2)  # the curve's points, 0.5 among them
TOP_PAIRS = 15


def build(labels, targets, predictions, scores, threshold, top1_fallback):
    """The report of multi-hot `predictions` (made from `scores` with `threshold`) against `targets`."""
    from sklearn.metrics import accuracy_score, classification_report
    table = classification_report(targets, predictions, target_names=labels, output_dict=True, zero_division=0)

    def numbers(row):
        return {'precision': float(row['precision']), 'recall': float(row['recall']),
                'f1': float(row['f1-score']), 'support': int(row['support'])}

    per_label = np.broadcast_to(np.asarray(threshold, dtype='float64'), (len(labels),))
    return {
        'samples': int(len(targets)),
        # One number, or 'per-label' when training tuned one per label (each row then has its own).
        'threshold': float(threshold) if np.ndim(threshold) == 0 else 'per-label',
        'top1_fallback': bool(top1_fallback),
        'exact_match': float(accuracy_score(targets, predictions)),
        'labels': [{'label': label, **numbers(table[label]), 'threshold': float(t)}
                   for label, t in zip(labels, per_label)],
        'averages': {name: numbers(table[name]) for name in AVERAGES},
        'threshold_curve': threshold_curve(targets, scores, top1_fallback),
        'confused_pairs': confused_pairs(labels, targets, predictions),
    }


def threshold_curve(targets, scores, top1_fallback):
    """Micro precision, recall, F1 and exact match at each of THRESHOLDS, with the decision rule of predict.py."""
    import predict
    curve = []
    for threshold in THRESHOLDS:
        predictions = predict.decide(scores, threshold, top1_fallback)
        hits = int((predictions & targets).sum())
        precision = hits / max(int(predictions.sum()), 1)
        recall = hits / max(int(targets.sum()), 1)
        curve.append({'threshold': float(threshold), 'precision': precision, 'recall': recall,
                      'f1': 2 * precision * recall / (precision + recall) if hits else 0.0,
                      'exact_match': float((predictions == targets).all(axis=1).mean())})
    return curve


def confused_pairs(labels, targets, predictions, top=TOP_PAIRS):
    """The most frequent (true label missed, wrong label predicted instead) pairs.

    Multi-label has no single confusion matrix; a sample whose true label a is missed while
    label b is wrongly predicted counts once for (a, b), for every such a and b.
    """
    missed = ((targets == 1) & (predictions == 0)).astype('int64')
    wrong = ((predictions == 1) & (targets == 0)).astype('int64')
    counts = missed.T @ wrong  # [true label, predicted label]
    order = np.argsort(-counts, axis=None, kind='stable')[:top]
    pairs = [np.unravel_index(i, counts.shape) for i in order]
    return [{'true': labels[a], 'predicted': labels[b], 'count': int(counts[a, b])}
            for a, b in pairs if counts[a, b] > 0]


def write(folder, report):
    """report.json and report.csv in `folder`; returns their paths."""
    json_path = os.path.join(folder, path.REPORT_NAME)
    csv_path = os.path.join(folder, path.REPORT_CSV_NAME)
    path.write_json(json_path, report)

    def write_csv(temporary):
        import pandas as pd
        averages = [{'label': name, **row} for name, row in report['averages'].items()]  # threshold left empty
        pd.DataFrame(report['labels'] + averages).to_csv(temporary, index=False)
    path.atomic_write(csv_path, write_csv)
    return json_path, csv_path
