"""--pos-weight: per-label weights of the positives in the bce/focal loss."""
import contextlib
import io
import json

import numpy as np
import pytest

import config
import model as model_lib
import path
from multilabel.compat import keras, tf


def test_auto_weights_are_capped_square_root_inverse_frequencies():
    targets = np.zeros((400, 3), dtype='float32')
    targets[:400, 0] = 1  # the most frequent label: weight 1
    targets[:100, 1] = 1  # 4x rarer: sqrt(4) = 2
    targets[:1, 2] = 1    # 400x rarer: sqrt(400) = 20, capped at 10
    weights = model_lib.positive_weights('auto', ['a', 'b', 'c'], targets, cap=10.0)
    np.testing.assert_allclose(weights, [1.0, 2.0, 10.0])
    assert model_lib.positive_weights('none', ['a'], targets[:, :1], 10.0) is None


def test_weighted_bce_is_the_formula_and_weights_of_one_change_nothing():
    y = np.array([[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]], dtype='float32')
    logits = np.array([[0.5, -1.0, -2.0], [1.5, 0.3, -0.2]], dtype='float32')
    p = 1 / (1 + np.exp(-logits.astype('float64')))
    w = np.array([3.0, 1.0, 2.0])
    by_hand = np.mean(-(w * y * np.log(p) + (1 - y) * np.log(1 - p)))
    scores = keras.activations.sigmoid(tf.constant(logits))
    assert float(model_lib.build_loss('bce', w)(y, scores)) == pytest.approx(by_hand, rel=1e-5)
    ones = np.ones(3)
    for name in ('bce', 'focal'):
        assert float(model_lib.build_loss(name, ones)(y, scores)) == pytest.approx(
            float(model_lib.build_loss(name)(y, scores)), rel=1e-5)
    # focal: only the positives' terms grow, by their weights.
    focal = keras.backend.binary_focal_crossentropy(y, scores, apply_class_balancing=True, alpha=0.25, gamma=2.0)
    expected = np.mean(focal.numpy() * np.where(y == 1, w, 1.0))
    assert float(model_lib.build_loss('focal', w)(y, scores)) == pytest.approx(expected, rel=1e-5)


def test_a_weights_file_is_read_and_checked(tmp_path):
    good = tmp_path / 'weights.json'
    good.write_text(json.dumps({'b': 4, 'a': 0.5}))
    np.testing.assert_allclose(model_lib.positive_weights(str(good), ['a', 'b', 'c'], None, 10.0), [0.5, 4.0, 1.0])
    for content, message in [({'x': 2}, 'not in the training file'), ({'a': -1}, 'positive number'),
                             ({'a': 'high'}, 'positive number'), ([1, 2], 'JSON object')]:
        bad = tmp_path / 'bad.json'
        bad.write_text(json.dumps(content))
        with pytest.raises(config.InputError, match=message):
            model_lib.positive_weights(str(bad), ['a', 'b', 'c'], None, 10.0)
    with pytest.raises(config.InputError, match='not none, auto'):
        model_lib.positive_weights('often', ['a'], None, 10.0)
    with pytest.raises(config.InputError, match='not zlpr'):
        model_lib.build_loss('zlpr', np.ones(3))


def test_train_with_auto_weights_saves_them(tiny_pretrained, tmp_path):
    import train
    output = io.StringIO()
    with contextlib.redirect_stdout(output):
        train.main(['--pretrained', tiny_pretrained, '--weights', str(tmp_path), '--epochs', '1',
                    '--maxlen', '32', '--batch-size', '16', '--pos-weight', 'auto', '--loss', 'focal'])
    saved = path.read_json(str(tmp_path / path.POS_WEIGHTS_NAME))
    assert sorted(saved) == path.read_json(str(tmp_path / path.LABELS_NAME))
    assert min(saved.values()) == 1.0 and 1.0 < max(saved.values()) <= config.DEFAULTS.pos_weight_cap
    assert 'positive weights (auto): 1.00 to' in output.getvalue()
    history = (tmp_path / path.HISTORY_NAME).read_text().splitlines()
    assert len(history) == 2 and 'nan' not in history[1]
