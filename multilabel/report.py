"""The evaluation report, built once: exact match, per-label scores, the threshold curve and
the most confused label pairs. evaluate.py writes it as JSON and CSV; multilabel/plot.py draws it.

    report.json          everything below, for multilabel/plot.py and other programs
    report.csv           label, precision, recall, f1, support, threshold: one row per label, then the averages
    report_parents.csv   parent, labels, precision, recall, f1, support, texts, exact_match: one row per parent

Per-label and averaged scores are sklearn's `classification_report`, the same numbers
evaluate.py prints.

`parents`: the labels grouped by family, the part of a label before its first '-' (人生 for
人生-死亡; a label without '-' is its own parent): per parent the micro precision, recall, F1
and support over its labels, and the exact match of the texts whose true labels all belong
to it (`texts` of them; null exact match when there are none). In a CSV of its own, since
report.csv's rows are labels. `calibration`: calibration.summary of the scores (the ECE,
the ECE above the first bin, the reliability table multilabel/plot.py draws).
"""
import os

import numpy as np
import pandas as pd
from sklearn.metrics import accuracy_score, classification_report, precision_recall_fscore_support

from multilabel import calibration
from multilabel import inference
import path

AVERAGES = ('micro avg', 'macro avg', 'weighted avg', 'samples avg')
THRESHOLDS = np.round(np.linspace(0.02, 0.98, 49), 2)  # the curve's points, 0.5 among them
TOP_PAIRS = 15
PARENTS_CSV_NAME = 'report_parents.csv'  # beside report.csv
PARENT_COLUMNS = ('parent', 'labels', 'precision', 'recall', 'f1', 'support', 'texts', 'exact_match')


def build(labels, targets, predictions, scores, threshold, top1_fallback):
    """The report of multi-hot `predictions` (made from `scores` with `threshold`) against `targets`."""
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
        'parents': parent_summary(labels, targets, predictions),
        'calibration': calibration.summary(scores, targets),
    }


def parent(label):
    """The family of a label: the part before its first '-', or the whole label."""
    return label.partition('-')[0]


def parent_summary(labels, targets, predictions):
    """Per parent, in label order: micro precision/recall/F1 and support over its labels, and
    exact match of the texts whose true labels are all its own."""
    targets, predictions = np.asarray(targets), np.asarray(predictions)
    families = {}
    for column, label in enumerate(labels):
        families.setdefault(parent(label), []).append(column)
    rows = []
    for name, columns in families.items():
        # Micro over its labels is binary over their flattened (text, label) pairs (and stays
        # right for a parent of one label, which sklearn would take for a two-class problem).
        precision, recall, f1, _ = precision_recall_fscore_support(
            targets[:, columns].ravel(), predictions[:, columns].ravel(), average='binary', zero_division=0)
        others = np.setdiff1d(np.arange(len(labels)), columns)
        own = targets[:, columns].any(axis=1) & ~targets[:, others].any(axis=1)
        exact = (predictions[own] == targets[own]).all(axis=1)
        rows.append({'parent': name, 'labels': len(columns), 'precision': float(precision), 'recall': float(recall),
                     'f1': float(f1), 'support': int(targets[:, columns].sum()), 'texts': int(own.sum()),
                     'exact_match': float(exact.mean()) if own.any() else None})
    return rows


def threshold_curve(targets, scores, top1_fallback):
    """Micro precision, recall, F1 and exact match at each of THRESHOLDS, with the decision rule of predict.py."""
    curve = []
    for threshold in THRESHOLDS:
        predictions = inference.decide(scores, threshold, top1_fallback)
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
    """report.json, report.csv and report_parents.csv in `folder`; returns their paths."""
    json_path = os.path.join(folder, path.REPORT_NAME)
    csv_path = os.path.join(folder, path.REPORT_CSV_NAME)
    path.write_json(json_path, report)

    def write_csv(temporary):
        averages = [{'label': name, **row} for name, row in report['averages'].items()]  # threshold left empty
        pd.DataFrame(report['labels'] + averages).to_csv(temporary, index=False)
    path.atomic_write(csv_path, write_csv)
    parents_path = os.path.join(folder, PARENTS_CSV_NAME)
    path.atomic_write(parents_path, lambda temporary: write_parents_csv(report, temporary))
    return json_path, csv_path, parents_path


def write_parents_csv(report, csv_path):
    pd.DataFrame(report['parents'], columns=PARENT_COLUMNS).to_csv(csv_path, index=False)
