"""--long-text chunk: overlapping windows of maxlen tokens, label scores max-pooled per text."""
import contextlib
import io
import json

import numpy as np
import pytest

import config
import evaluate
import loader
import predict
from multilabel.compat import keras
from multilabel import inference


def test_window_starts_follow_the_rule():
    assert loader.window_starts(4, 4, 2) == [0]           # fits: one window, as truncation
    assert loader.window_starts(10, 4, 2) == [0, 2, 4, 6]  # the last window ends on the last token
    assert loader.window_starts(10, 4, 0) == [0, 2, 4, 6]  # 0: half a window
    assert loader.window_starts(5, 4, 3) == [0, 1]
    assert loader.window_starts(9, 4, 4) == [0, 4, 5]


def test_windows_cover_the_text_and_a_short_text_is_its_truncated_encoding(trained):
    classifier = predict.Classifier(trained[0])
    tokenizer, maxlen = classifier.tokenizer, 16
    short, long = '中国队3比1击败日本队', '青岛地铁施工段坍塌致3人遇难，' * 4
    assert len(tokenizer.encode(short)[0]) <= maxlen < len(tokenizer.encode(long)[0])
    windows, owners = loader.encode_windows(tokenizer, [short, long], maxlen, stride=4)
    assert windows[0] == loader.encode_texts(tokenizer, [short], maxlen)[0]
    assert windows[1] == loader.encode_texts(tokenizer, [long], maxlen)[0]  # truncation is the first window
    whole = tokenizer.encode(long)[0]
    tokens = whole[1:-1]
    starts = loader.window_starts(len(tokens), maxlen - 2, 4)
    assert owners.tolist() == [0] + [1] * len(starts)
    for window, start in zip(windows[1:], starts):
        assert window == whole[:1] + tokens[start:start + maxlen - 2] + whole[-1:]
    assert starts[-1] + maxlen - 2 == len(tokens)
    with pytest.raises(config.InputError, match='stride'):
        loader.encode_windows(tokenizer, [long], maxlen, stride=-1)


def evidence_model(classifier, evidence_id, filler_label=1):
    """A stand-in for the encoder with known answers: label 0 scores high on any window holding
    the evidence token, `filler_label` scores a little above the rest everywhere else."""
    labels = len(classifier.labels)
    table = np.full((len(classifier.tokenizer._token_dict), labels), -6.0, dtype='float32')
    table[:, filler_label] = -3.0
    table[evidence_id] = -6.0
    table[evidence_id, 0] = 6.0
    ids = keras.Input((None,), dtype='int32')
    segments = keras.Input((None,), dtype='int32')
    per_token = keras.layers.Embedding(table.shape[0], labels, weights=[table])(ids)
    scores = keras.layers.Activation('sigmoid')(keras.layers.GlobalMaxPooling1D()(per_token))
    return keras.Model([ids, segments], scores)


def test_evidence_past_maxlen_is_found_by_chunk_and_missed_by_truncate(trained):
    filler, evidence = '今天天气很好。' * 20, '塌'  # 140 characters before the only evidence
    results = {}
    for mode in ('truncate', 'chunk'):
        classifier = predict.Classifier(trained[0], long_text=mode)
        classifier.model = classifier.engine = evidence_model(classifier, classifier.tokenizer.token_to_id(evidence))
        one_hot, labels, scores = classifier.predict_batch([filler + evidence, evidence + filler, filler])
        results[mode] = labels, scores
    first, filler_label = classifier.labels[0], classifier.labels[1]
    assert classifier.maxlen < len(filler)
    assert results['truncate'][0] == [[filler_label], [first], [filler_label]]  # evidence past maxlen: missed
    assert results['chunk'][0] == [[first], [first], [filler_label]]            # found in a later window
    assert results['chunk'][1][0, 0] > 0.99 and results['truncate'][1][0, 0] < 0.01


def test_chunk_scores_are_the_max_over_each_texts_windows(trained):
    classifier = predict.Classifier(trained[0], long_text='chunk', stride=7)
    texts = ['青岛地铁施工段坍塌致3人遇难，' * 9, '中国队3比1击败日本队', '某汽车品牌召回两万辆新车。' * 6]
    windows, owners = loader.encode_windows(classifier.tokenizer, texts, classifier.maxlen, 7)
    assert len(windows) > len(texts) + 4
    each = np.vstack([inference.predict_scores(classifier.model, [w]) for w in windows])
    expected = np.vstack([each[owners == i].max(axis=0) for i in range(len(texts))])
    np.testing.assert_allclose(classifier.raw_scores(texts, batch_size=64), expected, atol=1e-5)
    # texts that fit are scored as with truncation
    short = predict.Classifier(trained[0]).scores(texts[1:2])
    np.testing.assert_allclose(classifier.scores(texts[1:2]), short, atol=1e-6)


def test_predict_and_evaluate_take_the_flags(trained, tmp_path):
    weights = trained[0]
    output = io.StringIO()
    with contextlib.redirect_stdout(output):
        predict.main(['--weights', weights, '--json', '--long-text', 'chunk', '--stride', '5',
                      '青岛地铁施工段坍塌致3人遇难，' * 10])
    assert set(json.loads(output.getvalue())) == {'text', 'labels', 'scores'}
    test_file = tmp_path / 'test.txt'
    test_file.write_text('灾害/意外-坍/垮塌 ' + '青岛地铁施工段坍塌致3人遇难，' * 10 + '\n', encoding='utf-8')
    with contextlib.redirect_stdout(io.StringIO()):
        accuracy = evaluate.main(['--weights', weights, '--test', str(test_file), '--report-dir', str(tmp_path),
                                  '--long-text', 'chunk'])
    assert 0.0 <= accuracy <= 1.0
    from multilabel import serve
    args = serve.parse_args(['--long-text', 'chunk', '--stride', '8'])
    assert (args.long_text, args.stride) == ('chunk', 8)
