"""multilabel/export.py writes a SavedModel that, loaded with tf.saved_model.load in a fresh process,
gives the scores of predict.py: from token ids, and from raw text (the `text` signature,
tokenized in the graph), texts over maxlen cut or read in windows (--long-text chunk); and the
labels `python predict.py` prints, decided in the graph by the same rule and flags."""
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from multilabel import calibration
import loader
import path
import predict
from conftest import ROOT, SHARED_DATA, run_script
from multilabel import inference
from multilabel import model_folder

CLIENT = textwrap.dedent('''
    import json, os, sys
    sys.path.insert(0, {root!r})
    from multilabel import compat
    import tensorflow as tf
    import loader, path
    folder = {folder!r}
    texts = json.load(sys.stdin)
    meta = path.read_json(os.path.join(folder, path.META_NAME))
    tokenizer = loader.load_tokenizer(os.path.join(folder, path.VOCAB_NAME))
    token_ids, segment_ids = loader.pad_batch(loader.encode_texts(tokenizer, texts, meta['maxlen']))
    serve = tf.saved_model.load(folder).signatures['serving_default']
    scores = serve(token_ids=tf.constant(token_ids), segment_ids=tf.constant(segment_ids))['probabilities']
    print(json.dumps({{'labels': path.read_json(os.path.join(folder, path.LABELS_NAME)),
                      'scores': scores.numpy().tolist()}}))
''')


@pytest.fixture(scope='module')
def exported(trained, tmp_path_factory):
    """(SavedModel folder, multilabel/export.py's output) of the trained tiny model, in float32."""
    folder = str(tmp_path_factory.mktemp('export') / 'saved_model')
    result = run_script('main.py', 'export', '--weights', trained[0], '--out', folder, '--precision', 'float32')
    assert result.returncode == 0, result.stderr[-3000:]
    return folder, result.stdout


def test_saved_model_scores_equal_predict_in_a_fresh_process(trained, exported):
    weights, _ = trained
    folder, stdout = exported
    assert "signatures 'serving_default'" in stdout
    for name in ('saved_model.pb', path.LABELS_NAME, path.META_NAME, path.VOCAB_NAME, path.THRESHOLDS_NAME):
        assert os.path.exists(os.path.join(folder, name)), name
    assert path.read_json(os.path.join(folder, path.THRESHOLDS_NAME)) == predict.Classifier(weights).threshold_json()

    texts = [s.text for s in loader.read_samples(path.SAMPLE_TEST)[:30]] + ['地震', '青岛' * 200]
    client = subprocess.run([sys.executable, '-c', CLIENT.format(root=ROOT, folder=folder)], input=json.dumps(texts),
                            capture_output=True, text=True, timeout=300)
    assert client.returncode == 0, client.stderr[-3000:]
    answer = json.loads(client.stdout.strip().splitlines()[-1])
    classifier = predict.Classifier(weights)
    assert answer['labels'] == classifier.labels
    np.testing.assert_allclose(answer['scores'], classifier.scores(texts), rtol=1e-4, atol=1e-5)



TEXT_CLIENT = textwrap.dedent('''
    import json, sys
    import tensorflow as tf
    texts = json.load(sys.stdin)
    loaded = tf.saved_model.load({folder!r})
    out = loaded.signatures['text'](texts=tf.constant(texts))
    names = loaded.signatures['label_names']()['label_names']
    print(json.dumps({{'scores': out['probabilities'].numpy().tolist(),
                      'predictions': out['predictions'].numpy().tolist(),
                      'labels': [labels.decode() for labels in out['labels'].numpy()],
                      'label_names': [name.decode() for name in names.numpy()]}}, ensure_ascii=False))
''')  # plain TensorFlow: no project code, no bert4keras, as a TF Serving client would be


def read_text(folder, texts):
    """The `text` and `label_names` signatures' answers for `texts`, in a fresh process."""
    client = subprocess.run([sys.executable, '-c', TEXT_CLIENT.format(folder=folder)], input=json.dumps(texts),
                            capture_output=True, text=True, timeout=300, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL='3'))
    assert client.returncode == 0, client.stderr[-3000:]
    return json.loads(client.stdout.strip().splitlines()[-1])


HARD_TEXTS = ['青岛地铁施工段坍塌致3人遇难', 'MiXeD CaSe English 123', 'ＡＢＣ１２３，全角', '😀 emoji\u3000中文',
              'Café\u00a0naïve', '', '青岛' * 200]


def test_text_signature_scores_raw_text_as_predict_does(trained, exported):
    weights, _ = trained
    assert "'text': texts -> probabilities, predictions, labels" in exported[1]
    texts = [s.text for s in loader.read_samples(path.SAMPLE_TEST)[:20]] + HARD_TEXTS
    answer = read_text(exported[0], texts)
    classifier = predict.Classifier(weights)
    assert answer['label_names'] == classifier.labels  # once, not once per row
    np.testing.assert_allclose(answer['scores'], classifier.scores(texts), rtol=1e-4, atol=1e-5)


def predict_py(weights, texts, tmp_path, *flags):
    """The lines `python predict.py --file` prints for `texts`: the label names joined by '|'."""
    texts_file = tmp_path / 'texts.txt'
    texts_file.write_text(''.join(text + '\n' for text in texts), encoding='utf-8')
    result = run_script('predict.py', '--weights', weights, '--file', str(texts_file), '--precision', 'float32',
                        *flags)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout.split('\n')[:-1]


def assert_decides_as_predict_py(folder, weights, texts, tmp_path, *flags):
    answer = read_text(folder, texts)
    lines = predict_py(weights, texts, tmp_path, *flags)
    assert answer['labels'] == lines
    assert ['|'.join(np.array(answer['label_names'])[np.flatnonzero(row)]) for row in answer['predictions']] == lines


def test_text_signature_decides_the_labels_as_predict_py_does(trained, exported, tmp_path):
    # The trained model has per-label thresholds (thresholds.json) and the top-1 fallback.
    weights, _ = trained
    texts = [s.text for s in loader.read_samples(path.SAMPLE_TEST)] + HARD_TEXTS
    assert isinstance(predict.Classifier(weights).threshold_json(), dict)
    assert_decides_as_predict_py(exported[0], weights, texts, tmp_path)


def test_the_threshold_and_fallback_flags_reach_the_export(trained, tmp_path):
    weights, _ = trained
    folder = str(tmp_path / 'decided')
    flags = ['--threshold', '0.3', '--no-top1-fallback']
    result = run_script('main.py', 'export', '--weights', weights, '--out', folder, '--precision', 'float32', *flags)
    assert result.returncode == 0, result.stderr[-3000:]
    assert 'threshold 0.3, top-1 fallback off' in result.stdout
    meta = path.read_json(os.path.join(folder, path.META_NAME))
    assert (meta['threshold'], meta['top1_fallback']) == (0.3, False)
    assert not os.path.exists(os.path.join(folder, path.THRESHOLDS_NAME))  # one threshold for every label
    texts = [s.text for s in loader.read_samples(path.SAMPLE_TEST)] + HARD_TEXTS
    assert_decides_as_predict_py(folder, weights, texts, tmp_path, *flags)


REAL_WEIGHTS = os.path.join(ROOT, 'weights')


@pytest.mark.skipif(not os.path.isdir(SHARED_DATA), reason='the real corpus (../shared/data) is not here')
def test_on_every_real_test_text_the_export_decides_as_predict_py(tmp_path):
    try:
        model_folder.read(REAL_WEIGHTS)
    except ValueError:
        pytest.skip(f'no model trained on the real corpus in {REAL_WEIGHTS}')
    folder = str(tmp_path / 'real')
    result = run_script('main.py', 'export', '--weights', REAL_WEIGHTS, '--out', folder, '--precision', 'float32')
    assert result.returncode == 0, result.stderr[-3000:]
    texts = [s.text for s in loader.read_samples(os.path.join(SHARED_DATA, 'multi-classification-test.txt'))]
    assert_decides_as_predict_py(folder, REAL_WEIGHTS, texts, tmp_path)


def test_text_signature_chunks_long_texts_and_max_pools_windows(trained, tmp_path):
    weights, _ = trained
    texts = ['青岛地铁施工段坍塌致3人遇难', '某汽车品牌宣布召回两万辆新车。' * 12, '地震' * 100 + '消防员赶到现场']
    folder = str(tmp_path / 'chunked')
    result = run_script('main.py', 'export', '--weights', weights, '--out', folder, '--precision', 'float32',
                        '--long-text', 'chunk', '--stride', '10')
    assert result.returncode == 0, result.stderr[-3000:]
    assert '(chunk, stride 10;' in result.stdout
    answer = read_text(folder, texts)
    assert path.read_json(str(tmp_path / 'chunked' / path.META_NAME))['long_text'] == 'chunk'
    classifier = predict.Classifier(weights)
    window = classifier.maxlen - 2
    expected = []
    for text in texts:  # config.py's rule in plain Python on bert4keras' ids
        content = classifier.tokenizer.encode(text)[0][1:-1]
        n = len(content)
        starts = [0] if n <= window else list(range(0, n - window, 10)) + [n - window]
        tokenizer = classifier.tokenizer
        windows = [[tokenizer._token_start_id] + content[s:s + window] + [tokenizer._token_end_id] for s in starts]
        expected.append(inference.predict_scores(classifier.model, windows).max(axis=0))
    expected = calibration.apply(np.array(expected), classifier.temperature)  # the graph answers calibrated scores
    np.testing.assert_allclose(answer['scores'], expected, rtol=1e-4, atol=1e-5)
    assert len(classifier.tokenizer.encode(texts[2])[0]) > classifier.maxlen  # the long texts are really long
