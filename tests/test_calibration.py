"""Temperature scaling, the expected calibration error and the reliability table."""
import numpy as np
import pytest

from multilabel import calibration
import path
import predict
from multilabel import inference


def synthetic(n=4000, labels=5, sharpness=1.0, seed=0):
    """(logits, targets): each pair true with probability p; the logits say sharpness x logit(p)."""
    rng = np.random.default_rng(seed)
    p = rng.beta(0.5, 0.5, size=(n, labels))
    targets = (rng.random((n, labels)) < p).astype('int32')
    return sharpness * calibration.logits_of(p), targets


def test_an_over_confident_model_gets_a_temperature_above_1_and_a_lower_ece_after():
    logits, targets = synthetic(sharpness=3.0)
    temperature = calibration.fit_temperature(logits, targets)
    assert temperature == pytest.approx(3.0, rel=0.1)
    scores = calibration.apply(1 / (1 + np.exp(-logits)), temperature)
    before = calibration.expected_calibration_error(1 / (1 + np.exp(-logits)), targets)
    after = calibration.expected_calibration_error(scores, targets)
    assert before > 0.1 and after < 0.03 and after < before / 4


def test_an_under_confident_model_gets_a_temperature_below_1():
    logits, targets = synthetic(sharpness=0.5)
    assert calibration.fit_temperature(logits, targets) == pytest.approx(0.5, rel=0.1)


def test_per_label_temperatures_follow_each_labels_own_sharpness():
    logits, targets = synthetic(labels=3)
    logits = logits * np.array([1.0, 2.0, 4.0])
    targets[:, 2] = 0  # no positive: nothing to fit, T stays 1
    temperatures = calibration.fit_temperature(logits, targets, per_label=True)
    assert temperatures.shape == (3,)
    assert temperatures[:2] == pytest.approx([1.0, 2.0], rel=0.1)
    assert temperatures[2] == 1.0


def test_temperature_1_leaves_scores_unchanged():
    scores = np.array([[0.0, 0.2, 0.5], [0.999, 1.0, 1e-9]], dtype='float32')
    assert np.array_equal(calibration.apply(scores, 1.0), scores)
    assert np.array_equal(calibration.apply(scores, np.ones(3)), scores)


def test_apply_divides_the_logits():
    scores = np.array([[0.1, 0.5, 0.9]])
    calibrated = calibration.apply(scores, 2.0)
    assert calibration.logits_of(calibrated) == pytest.approx(calibration.logits_of(scores) / 2)
    assert calibrated[0, 1] == 0.5  # logit 0 stays at 0.5
    assert np.isfinite(calibration.logits_of(np.array([0.0, 1.0]))).all()  # saturated float32 scores


def test_a_perfectly_calibrated_score_set_has_an_ece_near_0():
    rng = np.random.default_rng(1)
    scores = rng.random((20000, 10))
    targets = (rng.random(scores.shape) < scores).astype('int32')
    assert calibration.expected_calibration_error(scores, targets) < 0.01
    assert calibration.summary(scores, targets)['ece_above_floor'] < 0.01


def test_ece_and_the_reliability_table_by_hand():
    scores = np.array([[0.05, 0.05, 0.95, 0.95], [0.35, 0.35, 1.0, 0.0]])
    targets = np.array([[0, 0, 1, 0], [1, 0, 1, 0]])
    table = calibration.reliability(scores, targets)
    assert len(table) == calibration.BINS and sum(row['count'] for row in table) == 8
    first, fourth, last = table[0], table[3], table[-1]
    assert (first['low'], first['high'], first['count']) == (0.0, 0.1, 3)
    assert first['mean_score'] == pytest.approx(0.1 / 3) and first['fraction_true'] == 0
    assert fourth['count'] == 2 and fourth['fraction_true'] == 0.5
    assert last['count'] == 3 and last['mean_score'] == pytest.approx(2.9 / 3)  # 1.0 is in the last bin
    assert last['fraction_true'] == pytest.approx(2 / 3)
    assert table[5]['count'] == 0 and table[5]['mean_score'] is None
    gaps = 3 * (0.1 / 3) + 2 * abs(0.35 - 0.5) + 3 * abs(2.9 / 3 - 2 / 3)
    assert calibration.expected_calibration_error(scores, targets) == pytest.approx(gaps / 8)
    summary = calibration.summary(scores, targets)
    assert summary['ece_above_floor'] == pytest.approx((gaps - 0.1) / 5)  # the first bin's 3 pairs left out
    assert summary['pairs'] == 8 and summary['reliability'] == table


def test_a_single_temperature_keeps_the_decision_at_threshold_0_5():
    rng = np.random.default_rng(2)
    scores = 1 / (1 + np.exp(-rng.normal(0, 4, size=(500, 8))))
    targets = (rng.random(scores.shape) < 0.2).astype('int32')
    for temperature in (0.3, 1.7, 5.0):
        calibrated = calibration.apply(scores, temperature)
        for fallback in (True, False):
            before = inference.decide(scores, 0.5, fallback)
            after = inference.decide(calibrated, 0.5, fallback)
            assert np.array_equal(before, after)
            assert (before == targets).all(axis=1).mean() == (after == targets).all(axis=1).mean()


def test_thresholds_are_retuned_by_predicts_own_tuning_on_the_calibrated_scores():
    logits, targets = synthetic(n=600, labels=4, sharpness=3.0)
    scores = 1 / (1 + np.exp(-logits))
    retuned = inference.retune_thresholds(scores, targets, 2.5, default=0.5)
    expected = inference.tune_thresholds(calibration.apply(scores, 2.5), targets, 0.5)
    assert np.array_equal(retuned, expected)


def test_temperatures_as_json_and_back():
    assert calibration.from_json(calibration.as_json(1.5, ['a', 'b']), ['a', 'b']) == 1.5
    value = calibration.as_json(np.array([1.5, 2.0]), ['a', 'b'])
    assert value == {'a': 1.5, 'b': 2.0}
    assert list(calibration.from_json(value, ['b', 'a'])) == [2.0, 1.5]
    with pytest.raises(ValueError):
        calibration.from_json(value, ['a', 'c'])


def test_model_logits_are_the_logits_under_the_trained_models_scores(trained):
    import loader
    weights, _ = trained
    classifier = predict.Classifier(weights)
    texts = [s.text for s in loader.read_samples(path.SAMPLE_TEST)][:20]
    token_ids = loader.encode_texts(classifier.tokenizer, texts, classifier.maxlen, progress=False)
    logits = inference.model_logits(classifier.model, token_ids)
    assert logits.shape == (20, len(classifier.labels))
    assert 1 / (1 + np.exp(-logits)) == pytest.approx(classifier.raw_scores(texts), abs=1e-6)
