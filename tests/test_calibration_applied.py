"""The temperature fitted at the end of training reaches every place scores leave the model:
model.json, predict's Classifier, the exported graph and evaluate's report."""
import contextlib
import io
import os
import re
import shutil

import numpy as np
import pytest

from multilabel import calibration
import path

TEXTS = ['青岛地铁施工段坍塌致3人遇难', '某汽车品牌宣布召回两万辆新车', '中国女排3比1击败日本队']


@pytest.fixture(scope='module')
def classifier(trained):
    import predict
    return predict.Classifier(trained[0])


def test_training_fits_a_temperature_on_validation_and_saves_it(trained):
    weights, output = trained
    temperature = path.read_json(os.path.join(weights, path.META_NAME))['temperature']
    assert isinstance(temperature, float) and temperature > 0 and temperature != 1
    assert 'calibration (temperature): validation ECE ' in output and f'T {temperature:.3f}' in output


def test_the_classifier_answers_with_the_calibrated_scores(classifier):
    raw = classifier.raw_scores(TEXTS)
    scores = classifier.scores(TEXTS)
    assert np.allclose(scores, calibration.apply(raw, classifier.temperature), atol=1e-6)
    assert not np.allclose(scores, raw, atol=1e-4)
    # one temperature keeps logit 0 at 0.5: the decision at threshold 0.5 is the raw scores' one
    assert ((scores > 0.5) == (raw > 0.5)).all()


def test_a_folder_written_before_calibration_scores_as_before(trained, tmp_path):
    import predict
    old = str(tmp_path / 'old')
    shutil.copytree(trained[0], old, ignore=shutil.ignore_patterns('resume', 'tensorboard', '.lock'))
    meta = path.read_json(os.path.join(old, path.META_NAME))
    del meta['temperature']
    path.write_json(os.path.join(old, path.META_NAME), meta)
    classifier = predict.Classifier(old)
    assert classifier.temperature == 1.0
    assert np.array_equal(classifier.scores(TEXTS), classifier.raw_scores(TEXTS))


def test_temperatures_naming_other_labels_are_one_line_naming_the_file(trained, tmp_path):
    import config
    import predict
    bad = str(tmp_path / 'bad')
    shutil.copytree(trained[0], bad, ignore=shutil.ignore_patterns('resume', 'tensorboard', '.lock'))
    meta = path.read_json(os.path.join(bad, path.META_NAME))
    meta['temperature'] = {'no such label': 2.0}
    path.write_json(os.path.join(bad, path.META_NAME), meta)
    with pytest.raises(config.InputError, match=r'model\.json: temperature: '):
        predict.Classifier(bad)


@pytest.mark.parametrize('temperature', [1.7, np.array([0.5, 1.0, 3.0])])
def test_the_graph_applies_the_temperature_as_numpy_does(temperature):
    import tensorflow as tf
    scores = np.array([[0.0, 0.3, 1.0], [1e-30, 0.5, 0.999999]], dtype='float32')
    graph = calibration.apply_graph(tf.constant(scores), temperature).numpy()
    assert graph.dtype == np.float32
    assert np.allclose(graph, calibration.apply(scores, temperature), atol=1e-7)


def test_evaluate_says_the_ece_before_and_after_the_temperature(trained, tmp_path):
    import evaluate
    output = io.StringIO()
    with contextlib.redirect_stdout(output):
        evaluate.main(['--weights', trained[0], '--report-dir', str(tmp_path)])
    line = next(l for l in output.getvalue().splitlines() if l.startswith('expected calibration error: '))
    after, before = (float(x) for x in re.findall(r'\d\.\d{4}', line))
    assert 0 <= after <= 1 and 0 <= before <= 1 and after != before
    assert path.read_json(str(tmp_path / 'report.json'))['calibration']['ece'] == pytest.approx(after, abs=1e-4)


def test_the_calibration_bench_compares_none_one_and_per_label_temperatures(trained, tmp_path, sample_corpus):
    import json
    from conftest import run_script
    data = sample_corpus
    out = tmp_path / 'calibration.json'
    result = run_script(os.path.join('bench', 'calibrate.py'), '--weights', trained[0], '--data', str(data),
                        '--out', str(out))
    assert result.returncode == 0, result.stderr[-3000:]
    written = json.loads(out.read_text())
    rows = written['calibrations']
    assert set(rows) == {'none', 'temperature', 'per_label'} and written['test_samples'] == 90
    assert rows['none']['temperature'] == 1.0
    # the fitted temperature is the one training saved: same validation split, same logits
    saved = path.read_json(os.path.join(trained[0], path.META_NAME))['temperature']
    assert rows['temperature']['temperature'] == pytest.approx(saved, rel=1e-3)
    assert rows['temperature']['test_exact_match'] == rows['none']['test_exact_match']  # 0.5 decisions kept
    assert written['command'].startswith('python bench/calibrate.py') and 'none' in result.stdout
