"""Options that push accuracy up: per-label thresholds, the seed's CNN head, focal loss, time budget."""
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
from multilabel.compat import keras
from multilabel import inference


def test_tuned_thresholds_raise_exact_match_and_never_lower_it():
    rng = np.random.default_rng(0)
    targets = np.zeros((200, 3), dtype='int32')
    targets[:100, 0] = 1
    targets[100:, 1] = 1
    targets[:2, 2] = 1  # too rare to tune
    scores = rng.uniform(0.0, 0.2, size=(200, 3))
    scores[:100, 0] = rng.uniform(0.3, 0.4, size=100)  # label 0 separates at 0.2-0.3, not at 0.5
    scores[100:, 1] = rng.uniform(0.6, 0.9, size=100)  # label 1 is already right at 0.5
    thresholds = inference.tune_thresholds(scores, targets, default=0.5, top1_fallback=False)
    assert 0.2 <= thresholds[0] < 0.3
    assert thresholds[1] == 0.5 and thresholds[2] == 0.5
    assert (inference.decide(scores, thresholds, top1_fallback=False)[:, :2] == targets[:, :2]).all()

    # An uninformative label: lowering its threshold would flood the predictions, so it stays.
    noise = rng.uniform(0.0, 0.3, size=(200, 1))
    noisy_targets = np.hstack([targets[:, :2], rng.integers(0, 2, size=(200, 1))])
    tuned = inference.tune_thresholds(np.hstack([scores[:, :2], noise]), noisy_targets, 0.5)
    before = (inference.decide(np.hstack([scores[:, :2], noise]), 0.5) == noisy_targets).all(axis=1).mean()
    after = (inference.decide(np.hstack([scores[:, :2], noise]), tuned) == noisy_targets).all(axis=1).mean()
    assert after >= before


def test_decide_takes_one_threshold_per_label():
    scores = np.array([[0.3, 0.3], [0.6, 0.6]])
    np.testing.assert_array_equal(inference.decide(scores, np.array([0.2, 0.5]), top1_fallback=False),
                                  [[1, 0], [1, 1]])


def test_training_tunes_thresholds_that_evaluate_and_predict_use_unless_a_threshold_is_given(trained):
    weights, output = trained
    tuned = path.read_json(os.path.join(weights, path.THRESHOLDS_NAME))
    labels = path.read_json(os.path.join(weights, path.LABELS_NAME))
    assert sorted(tuned) == sorted(labels)
    assert set(tuned.values()) <= set(inference.THRESHOLD_GRID.tolist()) | {config.DEFAULTS.threshold}
    assert re.search(r'^per-label thresholds: .* \(validation acc \d\.\d{4} with them\)$', output, re.M)
    np.testing.assert_array_equal(predict.Classifier(weights).threshold, [tuned[label] for label in labels])
    assert predict.Classifier(weights, threshold=0.5).threshold == 0.5


def test_thresholds_of_other_labels_are_refused(trained, tmp_path):
    import shutil
    copy = tmp_path / 'weights'
    shutil.copytree(trained[0], copy, ignore=shutil.ignore_patterns('resume'))
    path.write_json(str(copy / path.THRESHOLDS_NAME), {'not-a-label': 0.5})
    with pytest.raises(config.InputError, match='different runs'):
        predict.Classifier(str(copy))


def test_cnn_head_ignores_padding_and_trains(tiny_pretrained):
    keras.utils.set_random_seed(0)
    classifier = model_lib.build_classifier(os.path.join(tiny_pretrained, path.CONFIG_NAME), 4,
                                            model_lib.find_checkpoint(tiny_pretrained), head='cnn')
    names = [layer.name for layer in classifier.layers]
    assert {'Head-Conv3', 'Head-Conv4', 'Head-Conv5', 'Head-Hidden', 'Head-Dense'} <= set(names)
    assert classifier.get_layer('Head-Dropout').rate == 0.2
    token_ids = np.array([[2, 10, 11, 12, 13, 3]], dtype='int32')
    padded = np.pad(token_ids, ((0, 0), (0, 10)))
    short = classifier.predict_on_batch([token_ids, np.zeros_like(token_ids)])
    long = classifier.predict_on_batch([padded, np.zeros_like(padded)])
    # The encoder masks padding; the max pooling must too, or the longer row would differ.
    np.testing.assert_allclose(short, long, atol=1e-5)

    model_lib.compile_for_training(classifier, config.Config(loss='focal', fgm_epsilon=0.5))
    rng = np.random.default_rng(0)
    batch_ids = rng.integers(5, 100, size=(8, 12)).astype('int32')
    targets = rng.integers(0, 2, size=(8, 4)).astype('float32')
    first = classifier.train_on_batch([batch_ids, np.zeros_like(batch_ids)], targets)
    for _ in range(5):
        last = classifier.train_on_batch([batch_ids, np.zeros_like(batch_ids)], targets)
    assert np.isfinite(first) and last < first


def test_focal_loss_is_the_binary_focal_formula():
    y = np.array([[1.0, 0.0, 1.0, 0.0]], dtype='float32')
    p = np.array([[0.9, 0.2, 0.3, 0.7]], dtype='float32')
    p_true = np.where(y == 1, p, 1 - p)
    alpha = np.where(y == 1, 0.25, 0.75)
    by_hand = np.mean(-alpha * (1 - p_true) ** 2 * np.log(p_true))
    assert float(model_lib.build_loss('focal')(y, p)) == pytest.approx(by_hand, rel=1e-4)
    assert float(model_lib.build_loss('bce')(y, p)) == pytest.approx(np.mean(-np.log(p_true)), rel=1e-4)


def test_time_budget_closes_the_epoch_under_way_and_keeps_the_best_weights(tiny_pretrained, tmp_path):
    import train
    output = io.StringIO()
    with contextlib.redirect_stdout(output):
        train.main(['--pretrained', tiny_pretrained, '--weights', str(tmp_path), '--epochs', '5',
                    '--maxlen', '32', '--batch-size', '8', '--time-budget', '0.0001', '--head', 'cnn'])
    text = output.getvalue()
    assert 'time budget of 0.0001 minutes reached' in text
    assert len(re.findall(r' acc: .* best acc: ', text)) == 1  # the interrupted epoch was still validated
    assert path.read_json(str(tmp_path / path.RESUME_DIR / path.RESUME_STATE_NAME))['epoch'] == 1
    assert path.read_json(str(tmp_path / path.META_NAME))['head'] == 'cnn'
    classifier = predict.Classifier(str(tmp_path))  # rebuilds the CNN head from model.json
    assert classifier.model.get_layer('Head-Conv5') is not None
    # The served precisions take the CNN head too: the int8 converter has no bool slicing.
    texts = ['青岛地铁施工段坍塌致3人遇难', '短', '青岛' * 40]
    int8 = predict.Classifier(str(tmp_path), precision='int8')
    np.testing.assert_allclose(int8.scores(texts), classifier.scores(texts), atol=0.05)
