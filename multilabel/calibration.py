"""Calibration of the sigmoid scores: a temperature fitted on held-out logits, and how honest
the scores are (expected calibration error and the reliability table).

    from multilabel import calibration
    logits = inference.model_logits(classifier.model, token_ids)         # exact logits of the Keras model
    temperature = calibration.fit_temperature(logits, targets)           # one number; per_label=True: one per label
    scores = calibration.apply(classifier.scores(texts), temperature)    # calibrated scores
    calibration.summary(scores, targets)                                 # {'ece': ..., 'reliability': [...], ...}
    thresholds = inference.retune_thresholds(scores, targets, temperature, default=0.5)

Temperature scaling (Guo et al. 2017) divides every logit by T and fits T by minimising the
binary cross-entropy of sigmoid(logit / T) over all (text, label) pairs of the validation
split. T > 1 softens an over-confident model, T < 1 sharpens an under-confident one. With
`per_label`, each label gets its own T, fitted on its own column (a label with few positives
gets a noisy T: whether that pays is for a measurement to say).

The decision rule stays inference.decide (multilabel/inference.py, which also scores the logits). A single temperature is a monotone map that keeps
logit 0 at score 0.5: with threshold 0.5 every label's decision is unchanged, and so is the
top-1 fallback's argmax, hence exact match. At another threshold t a label now passes where
logit > T * logit(t): the effective threshold moves, so thresholds are re-tuned after
calibration (`inference.retune_thresholds`). Per-label temperatures keep each label's 0.5 decision
but may change which label the top-1 fallback picks.

Expected calibration error, the headline figure (`ece`): the sigmoid scores of all
(text, label) pairs in BINS equal-width bins of [0, 1]; per bin the gap between the mean
score and the fraction of pairs that are true labels; the gaps averaged, weighted by the
bins' shares of the pairs. Over all pairs because that is what a user thresholding any
score relies on, and because the pairs stay the same before and after calibration, so the
two figures compare. Its weakness: with dozens of labels nearly all pairs are negatives
scored near 0, which fill the first bin with a near-zero gap and dilute the figure to a
small number that moves little. So the summary also gives `ece_above_floor`, the same sum
over the pairs scored at FLOOR (the first bin's upper edge) or more, normalised by their own
count: the calibration of the scores anyone would read as confidence. The reliability
table (per bin: range, count, mean score, fraction true) shows both at once.
"""
import numpy as np
from scipy.optimize import minimize_scalar
from scipy.special import expit, log_expit, logit

BINS = 10            # equal-width bins of 0.1, the steps readers think of thresholds in
FLOOR = 1.0 / BINS   # ece_above_floor: pairs scored from the first bin's upper edge on
LOG_T_BOUNDS = (-4.0, 4.0)  # T between e^-4 and e^4: wider than any temperature a model needs
# float32 scores saturate: the largest below 1 is 1 - 2^-24 (logit 16.6), the smallest normal
# above 0 is 2^-126. logits_of clips to them, so a score of exactly 0 or 1 gives a finite logit.
SCORE_RANGE = (float(np.finfo(np.float32).tiny), float(np.nextafter(np.float32(1), np.float32(0))))


def logits_of(scores):
    """Sigmoid scores -> logits, in float64. Scores of float32 engines lose logits above ~16.6
    (they round to 1); `model_logits` has the exact ones where the Keras model is at hand."""
    return logit(np.clip(np.asarray(scores, dtype='float64'), *SCORE_RANGE))


def scale_logits(logits, temperature):
    """logits / T; `temperature` one number or one per label (the last axis)."""
    return np.asarray(logits, dtype='float64') / np.asarray(temperature, dtype='float64')


def apply(scores, temperature):
    """Calibrated scores: sigmoid(logit(scores) / T). T = 1 returns the scores unchanged."""
    if np.all(np.asarray(temperature) == 1):
        return np.asarray(scores)
    return expit(scale_logits(logits_of(scores), temperature)).astype(np.asarray(scores).dtype)


def apply_graph(scores, temperature):
    """`apply` in TensorFlow ops, for the exported graph: the same clip, logit and division."""
    import tensorflow as tf  # only the export needs it; the rest of this module is NumPy, quick to import
    if np.all(np.asarray(temperature) == 1):
        return scores
    clipped = tf.clip_by_value(tf.cast(scores, tf.float64), *SCORE_RANGE)
    logits = (tf.math.log(clipped) - tf.math.log1p(-clipped)) / tf.constant(temperature, tf.float64)
    return tf.cast(tf.sigmoid(logits), scores.dtype)


def binary_cross_entropy(logits, targets):
    """Mean binary cross-entropy of sigmoid(logits) against 0/1 targets, stable for any logit."""
    targets = np.asarray(targets, dtype='float64')
    return float(-np.mean(targets * log_expit(logits) + (1 - targets) * log_expit(-logits)))


def _fit_one(logits, targets):
    result = minimize_scalar(lambda log_t: binary_cross_entropy(logits / np.exp(log_t), targets),
                             bounds=LOG_T_BOUNDS, method='bounded', options={'xatol': 1e-5})
    return float(np.exp(result.x))


def fit_temperature(logits, targets, per_label=False):
    """The temperature minimising the binary cross-entropy of sigmoid(logits / T) on (logits,
    targets) [n, labels]: one float, or with `per_label` an array of one per label. A label
    with no positive or no negative (nothing to calibrate against) keeps T = 1."""
    logits, targets = np.asarray(logits, dtype='float64'), np.asarray(targets)
    if not per_label:
        return _fit_one(logits.ravel(), targets.ravel())
    temperatures = np.ones(logits.shape[1])
    for label in range(logits.shape[1]):
        column = targets[:, label]
        if 0 < column.sum() < len(column):
            temperatures[label] = _fit_one(logits[:, label], column)
    return temperatures


def reliability(scores, targets, bins=BINS):
    """Per equal-width bin of [0, 1]: {low, high, count, mean_score, fraction_true} over all
    (text, label) pairs; an empty bin has None for its mean score and fraction true. A score
    of exactly 1 belongs to the last bin."""
    scores = np.asarray(scores, dtype='float64').ravel()
    targets = np.asarray(targets, dtype='float64').ravel()
    which = np.minimum((scores * bins).astype('int64'), bins - 1)
    counts = np.bincount(which, minlength=bins)
    score_sums = np.bincount(which, weights=scores, minlength=bins)
    true_sums = np.bincount(which, weights=targets, minlength=bins)
    table = []
    for b in range(bins):
        filled = counts[b] > 0
        table.append({'low': round(b / bins, 6), 'high': round((b + 1) / bins, 6), 'count': int(counts[b]),
                      'mean_score': float(score_sums[b] / counts[b]) if filled else None,
                      'fraction_true': float(true_sums[b] / counts[b]) if filled else None})
    return table


def ece_of_table(table, floor=0.0):
    """Expected calibration error of a reliability table, over the bins starting at `floor` or
    above: sum of count x |mean score - fraction true| / their count (0 for no pairs)."""
    rows = [row for row in table if row['count'] and row['low'] >= floor - 1e-9]
    total = sum(row['count'] for row in rows)
    if not total:
        return 0.0
    return float(sum(row['count'] * abs(row['mean_score'] - row['fraction_true']) for row in rows) / total)


def expected_calibration_error(scores, targets, bins=BINS):
    """The headline ECE: equal-width bins over all (text, label) pairs (see the module's notes)."""
    return ece_of_table(reliability(scores, targets, bins))


def summary(scores, targets, bins=BINS):
    """The calibration figures of a report: ece, ece_above_floor (pairs scored FLOOR or more)
    and the reliability table."""
    table = reliability(scores, targets, bins)
    floor = 1.0 / bins
    return {'ece': ece_of_table(table), 'ece_above_floor': ece_of_table(table, floor), 'floor': floor,
            'bins': bins, 'pairs': int(np.size(scores)), 'reliability': table}


def as_json(temperature, labels):
    """The temperature as JSON: one number, or {label: T} when fitted per label."""
    if np.ndim(temperature) == 0:
        return float(temperature)
    return {label: float(t) for label, t in zip(labels, temperature)}


def from_json(value, labels):
    """as_json's value back: a float, or an array in `labels` order (ValueError when its labels differ)."""
    if isinstance(value, dict):
        if sorted(value) != sorted(labels):
            raise ValueError('the temperatures name other labels than the model')
        return np.array([value[label] for label in labels], dtype='float64')
    return float(value)
