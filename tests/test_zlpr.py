"""--loss zlpr: Su's multi-label categorical cross-entropy on the logits under the sigmoid head."""
import contextlib
import io
import os
import re

import numpy as np
import pytest

import config
import model as model_lib
import path
import predict
from multilabel.compat import keras, tf
from multilabel import inference


def zlpr_by_hand(targets, logits):
    """log(1 + sum_neg e^s) + log(1 + sum_pos e^-s) per row, averaged over the rows."""
    rows = []
    for y, s in zip(targets, logits):
        negatives = sum(np.exp(v) for v, t in zip(s, y) if t == 0)
        positives = sum(np.exp(-v) for v, t in zip(s, y) if t == 1)
        rows.append(np.log(1 + negatives) + np.log(1 + positives))
    return np.mean(rows)


def test_zlpr_is_the_formula_worked_by_hand():
    targets = np.array([[1, 0, 1, 0], [0, 1, 0, 0], [0, 0, 0, 0]], dtype='float32')
    logits = np.array([[2.0, -1.0, 0.5, 1.0], [-3.0, 0.2, 4.0, -0.5], [-1.0, -2.0, 0.0, 1.0]], dtype='float32')
    # Row 1 by hand: log(1 + e^-1 + e^1) + log(1 + e^-2 + e^-0.5) = 1.4076 + 0.5549.
    assert zlpr_by_hand(targets[:1], logits[:1]) == pytest.approx(1.9625, abs=1e-4)
    probabilities = keras.activations.sigmoid(tf.constant(logits))  # what the Dense(sigmoid) head gives
    loss = model_lib.build_loss('zlpr')(targets, probabilities)
    assert float(loss) == pytest.approx(zlpr_by_hand(targets, logits), rel=1e-5)


def test_zlpr_reads_the_logits_not_an_inverse_sigmoid():
    # sigmoid(+-30) is exactly 1.0 / 1e-13 in float32: an inverse sigmoid would give inf or a clipped value.
    targets = np.array([[0.0, 1.0]], dtype='float32')
    logits = np.array([[30.0, -30.0]], dtype='float32')
    loss = model_lib.build_loss('zlpr')(targets, keras.activations.sigmoid(tf.constant(logits)))
    assert float(loss) == pytest.approx(zlpr_by_hand(targets, logits), rel=1e-5)  # about 60
    with pytest.raises(ValueError, match='sigmoid'):
        model_lib.build_loss('zlpr')(targets, tf.constant([[0.5, 0.5]]))


@pytest.mark.parametrize('precision', ['float32', 'mixed_bfloat16'])
def test_zlpr_trains_with_fgm_and_its_decision_is_sigmoid_over_one_half(tiny_pretrained, precision):
    from multilabel import scale
    scale.set_precision(precision)
    try:
        keras.utils.set_random_seed(0)
        classifier = model_lib.build_classifier(os.path.join(tiny_pretrained, path.CONFIG_NAME), 4,
                                                model_lib.find_checkpoint(tiny_pretrained), dropout=0.0,
                                                fgm_epsilon=0.5)
        model_lib.compile_for_training(classifier, config.Config(loss='zlpr', encoder_lr=1e-3, head_lr=1e-2))
        rng = np.random.default_rng(0)
        token_ids = rng.integers(5, 100, size=(8, 12)).astype('int32')
        targets = rng.integers(0, 2, size=(8, 4)).astype('float32')
        inputs = [token_ids, np.zeros_like(token_ids)]
        def label_accuracy():  # the decision rule of predict.py on the sigmoid scores
            scores = classifier.predict_on_batch(inputs)
            assert scores.min() >= 0 and scores.max() <= 1
            return (inference.decide(scores, 0.5, top1_fallback=False) == targets).mean()

        before = label_accuracy()
        first = classifier.train_on_batch(inputs, targets)
        for _ in range(30):
            last = classifier.train_on_batch(inputs, targets)
        assert np.isfinite(first) and last < 0.6 * first
        assert label_accuracy() > before
    finally:
        scale.set_precision('float32')


def test_train_with_zlpr_saves_a_model_that_predict_loads(tiny_pretrained, tmp_path):
    import train
    output = io.StringIO()
    with contextlib.redirect_stdout(output):
        train.main(['--pretrained', tiny_pretrained, '--weights', str(tmp_path), '--epochs', '2',
                    '--maxlen', '32', '--batch-size', '16', '--encoder-lr', '1e-3', '--head-lr', '1e-2',
                    '--loss', 'zlpr'])
    assert len(re.findall(r' acc: \d\.\d{4} best acc: ', output.getvalue())) == 2
    one_hot, labels, scores = predict.Classifier(str(tmp_path)).predict_batch(['青岛地铁施工段坍塌致3人遇难'])
    assert one_hot.sum() >= 1 and ((scores >= 0) & (scores <= 1)).all()
