"""train.py --from-model: a trained model learns new labels without starting over. The old
labels keep their rows and order, a new label starts at its prior, and the result is an
ordinary model folder."""
import os
import subprocess
import sys

import numpy as np
import pytest

import loader
import path
import predict
from conftest import ROOT, run_script
from multilabel import inference

NEW = ('产品行为-召回', '人生-结婚')
FAST = ['--maxlen', '48', '--batch-size', '16', '--encoder-lr', '1e-3', '--head-lr', '1e-2']


def write_samples(file_name, samples):
    with open(file_name, 'w', encoding='utf-8') as f:
        f.writelines('|'.join(s.labels) + ' ' + s.text + '\n' for s in samples)


@pytest.fixture(scope='module')
def old_model(tiny_pretrained, tmp_path_factory):
    """A tiny model trained on the sample without the lines of two labels, and those lines."""
    import train
    folder = tmp_path_factory.mktemp('grow')
    samples = loader.read_samples(path.SAMPLE_TRAIN)
    old = [s for s in samples if not set(s.labels) & set(NEW)]
    write_samples(folder / 'old.txt', old)
    train.main(['--pretrained', tiny_pretrained, '--train', str(folder / 'old.txt'), '--weights',
                str(folder / 'old'), '--epochs', '2', *FAST])
    return str(folder / 'old'), samples


def test_a_grown_model_scores_its_old_labels_as_before_and_new_ones_at_their_prior(old_model):
    import model as model_lib
    weights, samples = old_model
    before = predict.Classifier(weights)
    texts = [s.text for s in samples[:40]]
    labels = before.labels + list(NEW)
    grown = model_lib.build_classifier(os.path.join(weights, path.CONFIG_NAME), len(labels))
    priors = [0.02, 0.3]
    model_lib.load_grown(grown, os.path.join(weights, path.WEIGHTS_NAME), before.labels, labels, priors)
    token_ids = loader.encode_texts(before.tokenizer, texts, before.maxlen)
    scores = inference.predict_scores(grown, token_ids)
    np.testing.assert_allclose(scores[:, :len(before.labels)], before.raw_scores(texts), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(scores[:, len(before.labels):], np.tile(priors, (len(texts), 1)), rtol=1e-5)


def test_train_from_model_appends_the_new_labels_and_learns_them(old_model, tmp_path):
    weights, samples = old_model
    old_labels = path.read_json(os.path.join(weights, path.LABELS_NAME))
    assert not set(NEW) & set(old_labels)
    new_lines = [s for s in samples if set(s.labels) & set(NEW)]
    replay = [s for s in samples if not set(s.labels) & set(NEW)][::3]  # a share of the old lines
    write_samples(tmp_path / 'new.txt', new_lines + replay)
    out = tmp_path / 'grown'
    result = run_script('train.py', '--from-model', weights, '--train', str(tmp_path / 'new.txt'),
                        '--weights', str(out), '--epochs', '6', '--batch-size', '16', '--encoder-lr', '1e-3',
                        '--head-lr', '1e-2')
    assert result.returncode == 0, result.stderr[-3000:]
    assert f'from model {weights}: {len(old_labels)} labels, 2 new: ' in result.stdout
    assert 'RANDOM weights' not in result.stderr
    labels = path.read_json(out / path.LABELS_NAME)
    assert labels == old_labels + sorted(NEW)
    assert path.read_json(out / path.META_NAME)['maxlen'] == 48  # the model's own, not the default
    grown = predict.Classifier(str(out))
    test = [s for s in loader.read_samples(path.SAMPLE_TEST) if set(s.labels) & set(NEW)]
    _, predicted, _ = grown.predict_batch([s.text for s in test])
    hits = sum(bool(set(p) & set(s.labels) & set(NEW)) for p, s in zip(predicted, test))
    assert hits >= len(test) // 2  # the new labels were learned, on texts never trained on


def test_from_model_refuses_a_pretrained_folder_beside_it(old_model, tiny_pretrained, tmp_path):
    weights, _ = old_model
    result = subprocess.run([sys.executable, 'train.py', '--from-model', weights, '--pretrained', tiny_pretrained,
                             '--weights', str(tmp_path / 'x')], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1 and '--from-model takes the architecture' in result.stderr


def test_the_incremental_bench_trains_old_grown_and_all_and_scores_old_and_new_labels(tiny_pretrained, tmp_path,
                                                                                       sample_corpus):
    import json
    data = sample_corpus
    out, work = tmp_path / 'incremental.json', tmp_path / 'work'
    result = run_script(os.path.join('bench', 'incremental.py'), '--data', str(data),
                        '--pretrained', tiny_pretrained, '--new-labels', '3', '--budget-old', '0.05',
                        '--budget-new', '0.05', '--budget-all', '0.05', '--work', str(work), '--out', str(out),
                        '--', '--epochs', '1', '--maxlen', '32', '--batch-size', '16')
    assert result.returncode == 0, result.stderr[-3000:]
    written = json.loads(out.read_text())
    assert len(written['new_labels']) == 3 and written['old_label_count'] == 9
    models = written['models']
    assert set(models) == {'old', 'grown', 'all'}
    assert models['old']['new_labels_micro_f1'] == 0  # it has never seen them
    old_labels = json.loads((work / 'old' / path.LABELS_NAME).read_text())
    grown_labels = json.loads((work / 'grown' / path.LABELS_NAME).read_text())
    assert grown_labels[:len(old_labels)] == old_labels and sorted(grown_labels[len(old_labels):]) == \
        written['new_labels']
    assert models['old']['training_lines'] + models['grown']['training_lines'] > models['all']['training_lines']
    for row in models.values():
        assert 0 <= row['exact_match'] <= 1 and row['wall_seconds'] > 0
