"""export.py writes a SavedModel that, loaded with tf.saved_model.load in a fresh process,
gives the scores of predict.py."""
import json
import os
import subprocess
import sys
import textwrap

import numpy as np

import loader
import path
import predict
from conftest import ROOT

CLIENT = textwrap.dedent('''
    import json, os, sys
    sys.path.insert(0, {root!r})
    import compat
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


def test_saved_model_scores_equal_predict_in_a_fresh_process(trained, tmp_path):
    weights, _ = trained
    folder = str(tmp_path / 'saved_model')
    result = subprocess.run([sys.executable, 'export.py', '--weights', weights, '--out', folder],
                            cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "signature 'serving_default'" in result.stdout
    for name in ('saved_model.pb', path.LABELS_NAME, path.META_NAME, path.VOCAB_NAME, path.THRESHOLDS_NAME):
        assert os.path.exists(os.path.join(folder, name)), name
    assert path.read_json(os.path.join(folder, path.THRESHOLDS_NAME)) == predict.Classifier(weights).threshold_json()

    texts = [s.text for s in loader.read_samples(path.SAMPLE_TEST)[:30]] + ['地震', '青岛' * 200]
    client = subprocess.run([sys.executable, '-c', CLIENT.format(root=ROOT, folder=folder)], input=json.dumps(texts),
                            capture_output=True, text=True, timeout=300)
    assert client.returncode == 0, client.stderr[-3000:]
    exported = json.loads(client.stdout.strip().splitlines()[-1])
    classifier = predict.Classifier(weights)
    assert exported['labels'] == classifier.labels
    np.testing.assert_allclose(exported['scores'], classifier.scores(texts), rtol=1e-4, atol=1e-5)

