"""The n-gram side (multilabel/ngram.py): hashing, the TF-IDF + SVM fit, its margins in NumPy and in
the served graph, the choice of beta, and the blended Keras model."""
import os
import re

import numpy as np
import pytest

import config
from conftest import ROOT
from multilabel import ngram
from test_model import tiny_classifier

SPECIALS = [0, 2, 3]  # padding, [CLS], [SEP] of these tests


def texts_of_ids(rng, count, vocab=40, longest=20):
    """Token-id lists [CLS] ... [SEP] of ordinary ids 4..vocab-1, some with repeated n-grams, one empty."""
    texts = [[2, 3]]
    for _ in range(count - 1):
        body = list(rng.integers(4, vocab, rng.integers(1, longest)))
        if rng.random() < 0.3:
            body = body + body[:3]  # the same 1-3-grams twice
        texts.append([2] + body + [3])
    return texts


def padded(texts):
    width = max(len(t) for t in texts)
    return np.array([t + [0] * (width - len(t)) for t in texts], 'int32')


def random_side(rng, labels=4):
    return {'idf': rng.uniform(1, 5, ngram.BUCKETS).astype('float32'),
            'coef': rng.normal(0, 1, (ngram.BUCKETS, labels)).astype('float32'),
            'intercept': rng.normal(0, 0.3, labels).astype('float32')}


def test_buckets_skip_special_tokens_and_stay_in_range():
    buckets = ngram.bucket_ids([2, 5, 6, 7, 3, 0, 0], SPECIALS)
    assert len(buckets) == 3 + 2 + 1  # 5, 6, 7; 5-6, 6-7; 5-6-7
    assert ((buckets >= 0) & (buckets < ngram.BUCKETS)).all()
    assert len(set(buckets.tolist())) == 6
    assert len(ngram.bucket_ids([2, 3], SPECIALS)) == 0
    # the same n-grams hash alike wherever they stand
    assert set(ngram.bucket_ids([2, 5, 6, 3], SPECIALS)) <= set(ngram.bucket_ids([2, 9, 5, 6, 9, 3], SPECIALS))


def test_margins_are_scikit_learns_tfidf_and_svm():
    from sklearn.feature_extraction.text import TfidfTransformer
    from sklearn.svm import LinearSVC
    rng = np.random.default_rng(0)
    texts = texts_of_ids(rng, 60)
    targets = (rng.random((60, 3)) < 0.4).astype('float32')
    side = ngram.fit(texts, targets, SPECIALS)
    features = TfidfTransformer(sublinear_tf=True).fit_transform(ngram.counts(texts, SPECIALS))
    expected = np.stack([LinearSVC(random_state=0).fit(features, targets[:, j]).decision_function(features)
                         for j in range(3)], axis=1)
    np.testing.assert_allclose(ngram.margins(side, texts, SPECIALS), expected, atol=1e-5)


def test_a_label_the_training_lines_never_vary_gets_their_answer():
    rng = np.random.default_rng(1)
    texts = texts_of_ids(rng, 20)
    targets = np.zeros((20, 2), 'float32')
    targets[::2, 1] = 1
    side = ngram.fit(texts, targets, SPECIALS)
    assert side['intercept'][0] == -1 and not side['coef'][:, 0].any()
    np.testing.assert_allclose(ngram.margins(side, texts, SPECIALS)[:, 0], -1)


def test_the_graph_computes_the_numpy_margins():
    rng = np.random.default_rng(2)
    texts = texts_of_ids(rng, 30)
    side = random_side(rng)
    layer = ngram._layers()[1](side, 0.5, SPECIALS)
    graph = layer(padded(texts)).numpy()
    np.testing.assert_allclose(graph, 0.5 * ngram.margins(side, texts, SPECIALS), rtol=1e-4, atol=1e-4)
    # an empty text has the intercept alone
    np.testing.assert_allclose(graph[0], 0.5 * side['intercept'], atol=1e-6)


def test_the_fitted_side_learns_the_n_grams_of_its_labels():
    rng = np.random.default_rng(3)
    targets = (rng.random((400, 2)) < 0.4).astype('float32')
    texts = []
    for row in targets:  # a keyword per label (5, 6) among other words (10..29), anywhere in the text
        body = list(rng.integers(10, 30, rng.integers(3, 10))) + [5] * int(row[0]) + [6] * int(row[1])
        texts.append([2] + list(rng.permutation(body)) + [3])
    side = ngram.fit(texts[:300], targets[:300], SPECIALS)
    from multilabel import inference
    decided = inference.decide(ngram.margins(side, texts[300:], SPECIALS), 0.0, top1_fallback=False)
    held_out_exact = (decided == targets[300:]).all(axis=1).mean()
    prior = max((targets[300:] == row).all(axis=1).mean() for row in np.unique(targets[:300], axis=0))
    assert held_out_exact > prior + 0.1 and held_out_exact > 0.8


def test_beta_is_the_best_on_validation_and_the_smaller_on_a_tie():
    from multilabel import inference
    targets = np.array([[1, 0], [0, 1], [1, 0], [0, 1]])
    logits = np.array([[2.0, -2.0], [1.0, -1.0], [3.0, -3.0], [-1.0, 1.0]])  # the second text wrong
    helpful = np.array([[0.0, 0.0], [-1.0, 1.0], [0.0, 0.0], [0.0, 0.0]])
    beta, exact = inference.blend_weight(logits, helpful, targets)
    assert exact[0.0] == 0.75 and exact[beta] == 1.0
    assert beta == min(b for b in ngram.BETAS if exact[b] == 1.0) == 1.5  # 1.0 only ties the margin
    assert inference.blend_weight(logits, np.zeros_like(logits), targets)[0] == 0.0


def test_the_blended_model_adds_beta_times_the_margins_to_the_logits(tiny_pretrained):
    from multilabel import inference
    classifier = tiny_classifier(tiny_pretrained, num_labels=4)
    rng = np.random.default_rng(4)
    texts = texts_of_ids(rng, 12, vocab=60)
    side = random_side(rng)
    blended = ngram.blended(classifier, side, 2.0, SPECIALS)
    logits = inference.model_logits(classifier, texts)
    expected = logits + 2.0 * ngram.margins(side, texts, SPECIALS)
    np.testing.assert_allclose(inference.model_logits(blended, texts), expected, rtol=1e-4, atol=1e-4)
    assert len(blended.weights) == len(classifier.weights) + 3  # the side's idf, coef, intercept; the head shared


def test_a_damaged_side_file_is_one_line(tmp_path):
    from multilabel import model_folder
    meta = {'num_labels': 2, 'ngram': {'beta': 1.0, 'buckets': 3}}
    broken = tmp_path / 'ngram.npz'
    broken.write_bytes(b'not a zip')
    with pytest.raises(config.InputError, match='ngram.npz: not an n-gram side'):
        model_folder.read_ngram(str(tmp_path), meta)
    np.savez(str(broken), idf=np.zeros(3), coef=np.zeros((3, 5)), intercept=np.zeros(5))
    with pytest.raises(config.InputError, match='do not fit model.json'):
        model_folder.read_ngram(str(tmp_path), meta)
    np.savez(str(broken), idf=np.zeros(3), coef=np.zeros((3, 2)), intercept=np.zeros(2))
    side, beta = model_folder.read_ngram(str(tmp_path), meta)
    assert beta == 1.0 and side['coef'].shape == (3, 2)


def test_a_vocabulary_the_hashing_cannot_take_is_refused():
    ngram.check_vocabulary(12000)
    with pytest.raises(config.InputError, match='--ngram-blend: the vocabulary has 70000 tokens'):
        ngram.check_vocabulary(70000)
    assert (ngram.BUCKETS - 1) * ngram.MULTIPLIER + ngram.MAX_TOKEN_ID + 1 < 2 ** 31


# The side in a trained model folder: train.py --ngram-blend, and every command that loads the folder.

TEXTS = ['青岛地铁施工段发生坍塌，致3人遇难', '某汽车品牌宣布召回两万辆新车', '中国队夺冠', '公司宣布裁员三百人']


def copy_of(trained, tmp_path):
    import shutil
    folder = str(tmp_path / 'model')
    shutil.copytree(trained[0], folder, ignore=shutil.ignore_patterns('saved_model', '.lock', 'tensorboard'))
    return folder


def sample_side(folder):
    """A side fitted on the bundled sample, as the model folder's tokenizer reads it."""
    import loader
    import path
    from multilabel import model_folder
    tokenizer = loader.load_tokenizer(model_folder.vocab_path(folder))
    samples = loader.read_samples(path.SAMPLE_TRAIN)
    labels = model_folder.read(folder)['labels']
    ids = loader.encode_texts(tokenizer, [s.text for s in samples], model_folder.read_meta(folder)['maxlen'])
    return ngram.fit(ids, loader.multi_hot(samples, labels), ngram.special_ids(tokenizer)), tokenizer


def test_a_blended_folder_scores_the_transformer_plus_beta_times_the_margins(trained, tmp_path, monkeypatch):
    import loader
    import predict
    from multilabel import calibration
    from multilabel import inference
    from multilabel import model_folder
    folder = copy_of(trained, tmp_path)
    side, tokenizer = sample_side(folder)
    model_folder.write_ngram(folder, side, 2.0)
    meta = model_folder.read_meta(folder)
    assert meta['format'] == model_folder.NGRAM_FORMAT and meta['ngram']['beta'] == 2.0
    alone, blended = predict.Classifier(trained[0]), predict.Classifier(folder)
    ids = loader.encode_texts(tokenizer, TEXTS, alone.maxlen)
    expected = calibration.expit(inference.model_logits(alone.model, ids)
                                 + 2.0 * ngram.margins(side, ids, ngram.special_ids(tokenizer)))
    np.testing.assert_allclose(blended.raw_scores(TEXTS), expected, rtol=1e-4, atol=1e-5)
    # `transformer` is the model without its side (what bench/blend.py blends a side with)
    np.testing.assert_allclose(inference.model_logits(blended.transformer, ids), inference.model_logits(alone.model, ids),
                               rtol=1e-6, atol=1e-6)
    assert blended.transformer is not blended.model and alone.transformer is alone.model
    # bench/speed.py counts the transformer's matmuls, not the side's table as if it were one
    monkeypatch.syspath_prepend(os.path.join(ROOT, 'bench'))
    import speed
    assert speed.encoder_flops(blended.model, [7, 20]) == speed.encoder_flops(alone.model, [7, 20]) > 0
    # int8 converts the blended graph with TFLite's builtin ops and decides as float32 does on most labels
    int8 = predict.Classifier(folder, precision='int8')
    assert (int8.predict_batch(TEXTS)[0] == blended.predict_batch(TEXTS)[0]).mean() > 0.9
    # beta 0 takes the side away again: the folder is the transformer alone, in format 1
    model_folder.write_ngram(folder, None, 0)
    assert not os.path.exists(os.path.join(folder, 'ngram.npz'))
    assert model_folder.read_meta(folder)['format'] == model_folder.FORMAT
    np.testing.assert_allclose(predict.Classifier(folder).raw_scores(TEXTS), alone.raw_scores(TEXTS), rtol=1e-6)


def test_the_export_of_a_blended_folder_decides_as_predict_does(trained, tmp_path):
    import predict
    from multilabel import export
    from multilabel import model_folder
    from multilabel.compat import tf
    folder = copy_of(trained, tmp_path)
    model_folder.write_ngram(folder, sample_side(folder)[0], 4.0)
    out = str(tmp_path / 'exported')
    export.export(folder, out)
    served = tf.saved_model.load(out).signatures[export.TEXT_SIGNATURE](texts=tf.constant(TEXTS))
    classifier = predict.Classifier(folder)
    one_hot, _, scores = classifier.predict_batch(TEXTS)
    np.testing.assert_allclose(served['probabilities'].numpy(), scores, rtol=1e-4, atol=1e-5)
    assert (served['predictions'].numpy() == one_hot).all()


def test_a_side_file_missing_from_a_blended_folder_is_one_line(trained, tmp_path):
    import predict
    from multilabel import model_folder
    folder = copy_of(trained, tmp_path)
    model_folder.write_ngram(folder, sample_side(folder)[0], 1.0)
    os.remove(os.path.join(folder, 'ngram.npz'))
    with pytest.raises(config.InputError, match='blends an n-gram side but ngram.npz is missing'):
        predict.Classifier(folder)


def test_train_ngram_blend_fits_the_side_on_a_finished_run_and_a_run_without_it_drops_it(trained, tiny_pretrained,
                                                                                         tmp_path, capsys):
    import train
    from multilabel import model_folder
    folder = copy_of(trained, tmp_path)
    command = ['--pretrained', tiny_pretrained, '--weights', folder, '--epochs', '3', '--maxlen', '48',
               '--batch-size', '16', '--encoder-lr', '1e-3', '--head-lr', '1e-2', '--tune-thresholds', '--resume']
    train.main(command + ['--ngram-blend'])
    printed = capsys.readouterr().out
    assert 'this run had already finished' in printed
    beta, alone, chosen = map(float, re.search(r'^n-gram side: beta (\S+) \(validation exact match (\S+) alone '
                                               r'-> ([0-9.]+)\)', printed, re.MULTILINE).groups())
    assert chosen >= alone
    meta = model_folder.read_meta(folder)
    assert meta.get('ngram', {}).get('beta', 0.0) == beta
    assert os.path.exists(os.path.join(folder, 'ngram.npz')) == (beta > 0)
    train.main(command)
    assert 'ngram' not in model_folder.read_meta(folder) and not os.path.exists(os.path.join(folder, 'ngram.npz'))
