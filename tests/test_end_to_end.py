"""train -> evaluate -> predict on the bundled sample with the tiny checkpoint, through the real scripts."""
import contextlib
import io
import json
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest

import config
import evaluate
import path
import predict
from conftest import ROOT, run_script
from multilabel import inference


def test_training_prints_accuracy_each_epoch_and_writes_the_model_files(trained):
    weights, output = trained
    assert 'data: ' + path.SAMPLE_TRAIN + ' (bundled sample)' in output
    lines = re.findall(r' acc: (\d\.\d{4}) best acc: (\d\.\d{4})$', output, re.M)
    assert len(lines) == 3
    best = [float(b) for _, b in lines]
    assert best == sorted(best) and best[-1] == max(float(a) for a, _ in lines)
    for name in (path.WEIGHTS_NAME, path.LABELS_NAME, path.META_NAME, path.CONFIG_NAME, path.VOCAB_NAME):
        assert os.path.getsize(os.path.join(weights, name)) > 0, name
    labels = path.read_json(os.path.join(weights, path.LABELS_NAME))
    assert len(labels) == 12 and labels == sorted(labels)
    assert not [name for name in os.listdir(weights) if name.startswith('.')]  # no temporary file left


def test_training_without_checkpoint_warns_loudly_and_still_trains(tiny_pretrained, tmp_path):
    pretrained = tmp_path / 'no-weights'
    pretrained.mkdir()
    for name in (path.CONFIG_NAME, path.VOCAB_NAME):
        shutil.copy(os.path.join(tiny_pretrained, name), pretrained)
    result = run_script('train.py', '--pretrained', str(pretrained), '--weights', str(tmp_path / 'w'),
                        '--epochs', '1', '--maxlen', '32', '--max-samples', '80')
    assert result.returncode == 0, result.stderr
    assert 'RANDOM weights' in result.stderr
    assert re.search(r' acc: \d\.\d{4} best acc: \d\.\d{4}$', result.stdout, re.M)
    assert os.path.exists(tmp_path / 'w' / path.WEIGHTS_NAME)


def test_evaluate_prints_exact_match_and_the_per_label_report(trained):
    weights, _ = trained
    output = io.StringIO()
    with contextlib.redirect_stdout(output):
        accuracy = evaluate.main(['--weights', weights])
    text = output.getvalue()
    assert f'exact-match accuracy: {accuracy:.4f} (90 samples)' in text
    for row in ('micro avg', 'macro avg', 'weighted avg', 'samples avg', '灾害/意外-坍/垮塌'):
        assert row in text


def test_exact_match_counts_a_sample_only_when_its_whole_label_set_is_right(trained):
    weights, _ = trained
    classifier = predict.Classifier(weights)
    import loader
    samples = loader.read_samples(path.SAMPLE_TEST)
    accuracy, _ = evaluate.evaluate(classifier, samples, 32)
    predicted, label_lists, _ = classifier.predict_batch([s.text for s in samples])
    by_hand = np.mean([set(labels) == set(s.labels) for labels, s in zip(label_lists, samples)])
    assert accuracy == pytest.approx(by_hand)


def test_decide_thresholds_and_falls_back_to_the_best_label():
    scores = np.array([[0.9, 0.6, 0.1], [0.2, 0.3, 0.1], [0.1, 0.1, 0.1]])
    np.testing.assert_array_equal(inference.decide(scores, 0.5), [[1, 1, 0], [0, 1, 0], [1, 0, 0]])
    np.testing.assert_array_equal(inference.decide(scores, 0.5, top1_fallback=False), [[1, 1, 0], [0, 0, 0], [0, 0, 0]])


def test_predict_function_and_batch_agree(trained):
    weights, _ = trained
    classifier = predict.Classifier(weights)
    texts = ['青岛地铁施工段坍塌致3人遇难', '某车企宣布召回两万辆汽车', '']
    one_hot, label_lists, scores = classifier.predict_batch(texts)
    assert one_hot.shape == scores.shape == (3, len(classifier.labels))
    for i, text in enumerate(texts):
        single_one_hot, labels = classifier.predict(text)
        np.testing.assert_array_equal(single_one_hot, one_hot[i])
        assert labels == label_lists[i] == [classifier.labels[j] for j in np.flatnonzero(one_hot[i])]
        assert labels  # top-1 fallback: never empty


def test_module_level_predict_loads_the_model_once(trained, monkeypatch):
    weights, _ = trained
    monkeypatch.setattr(path, 'WEIGHTS_DIR', weights)
    monkeypatch.setattr(predict, '_default_classifier', None)
    one_hot, labels = predict.predict('青岛地铁施工段坍塌致3人遇难')
    first = predict._default_classifier
    predict.predict('中国队夺冠')
    assert predict._default_classifier is first
    assert one_hot.sum() == len(labels) >= 1


def test_predict_cli_prints_labels_and_json_scores(trained, tmp_path):
    weights, _ = trained
    labels = path.read_json(os.path.join(weights, path.LABELS_NAME))
    texts = tmp_path / 'texts.txt'
    texts.write_text('青岛地铁施工段坍塌致3人遇难\n某车企宣布召回两万辆汽车\n', encoding='utf-8')
    result = run_script('predict.py', '--weights', weights, '青岛地铁施工段坍塌致3人遇难')
    assert result.returncode == 0, result.stderr
    [line] = result.stdout.splitlines()
    assert line and all(label in labels for label in line.split('|'))

    result = run_script('main.py', 'predict', '--weights', weights, '--json', '--file', '-',
                        input=texts.read_text(encoding='utf-8'))
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [row['text'] for row in rows] == ['青岛地铁施工段坍塌致3人遇难', '某车企宣布召回两万辆汽车']
    for row in rows:
        assert set(row['scores']) == set(labels)
        assert all(0.0 <= score <= 1.0 for score in row['scores'].values())
        assert row['labels'] and set(row['labels']) <= set(labels)


def test_a_mismatched_vocabulary_is_refused(trained, tmp_path):
    weights, _ = trained
    copy = tmp_path / 'copy'
    shutil.copytree(weights, copy)
    with open(copy / path.VOCAB_NAME, 'a', encoding='utf-8') as f:
        f.write('extra\n')
    with pytest.raises(ValueError, match='not the vocabulary'):
        predict.Classifier(str(copy))


def test_missing_weights_folder_says_to_train_first(tmp_path):
    with pytest.raises(config.InputError, match='run train.py first'):
        predict.Classifier(str(tmp_path))


@pytest.mark.parametrize('script', ['train.py', 'evaluate.py', 'predict.py', 'main.py', 'tools/make_tiny_checkpoint.py',
                                    'main.py plot', 'main.py stats', 'loader.py', 'main.py export', 'main.py serve',
                                    'bench/precision.py', 'bench/serve_load.py', 'bench/accuracy.py',
                                    'bench/speed.py', 'bench/fgm_step.py'])
def test_every_script_has_help(script):
    result = subprocess.run([sys.executable, *script.split(), '--help'], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and 'usage:' in result.stdout


def test_joined_pairs_join_the_batches_and_training_runs(tiny_pretrained, tmp_path):
    flags = ('--pretrained', tiny_pretrained, '--epochs', '1', '--maxlen', '48', '--max-samples', '80')
    result = run_script('train.py', *flags, '--weights', str(tmp_path / 'w'), '--joined-share', '0.5')
    assert result.returncode == 0, result.stderr
    joined = int(re.search(r'^joined pairs: (\d+) extra training samples', result.stdout, re.M).group(1))
    assert 20 <= joined <= 40  # half of the 72 training lines, less the pairs longer than 48 tokens
    assert os.path.exists(tmp_path / 'w' / path.WEIGHTS_NAME)
    bad = run_script('train.py', *flags, '--weights', str(tmp_path / 'bad'), '--joined-share', '-1')
    assert bad.returncode != 0 and '--joined-share' in bad.stderr and not os.path.exists(tmp_path / 'bad')
