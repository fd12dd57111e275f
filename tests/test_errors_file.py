"""evaluate.py's errors.jsonl: every wrongly predicted text with its line, labels and scores."""
import contextlib
import io
import json

import numpy as np

import evaluate
import loader
import path
import predict


def test_errors_jsonl_lists_exactly_the_wrong_texts_with_their_lines_and_scores(trained, tmp_path):
    weights = trained[0]
    output = io.StringIO()
    with contextlib.redirect_stdout(output):
        accuracy = evaluate.main(['--weights', weights, '--report-dir', str(tmp_path), '--precision', 'float32'])
    samples = loader.read_samples(path.SAMPLE_TEST)
    rows = [json.loads(line) for line in (tmp_path / path.ERRORS_NAME).read_text(encoding='utf-8').splitlines()]
    assert len(rows) == round((1 - accuracy) * len(samples)) > 0
    assert f'({len(rows)} wrong texts)' in output.getvalue()

    classifier = predict.Classifier(weights)
    _, label_lists, scores = classifier.predict_batch([s.text for s in samples])
    assert [r['line'] for r in rows] == sorted(r['line'] for r in rows)
    for row in rows:
        i = row['line'] - 1
        assert row['text'] == samples[i].text and row['true'] == list(samples[i].labels)
        assert row['predicted'] == label_lists[i] and set(row['true']) != set(row['predicted'])
        for label, score in {**row['true_scores'], **row['predicted_scores']}.items():
            assert score == round(float(scores[i][classifier.labels.index(label)]), 4)
    right = set(range(len(samples))) - {r['line'] - 1 for r in rows}
    assert all(set(label_lists[i]) == set(samples[i].labels) for i in right)


def test_errors_of_crafted_predictions_name_a_label_the_model_lacks(tmp_path):
    samples = [loader.Sample(('a',), 'one'), loader.Sample(('b', 'z'), 'two'), loader.Sample(('a',), 'three')]
    labels = ['a', 'b']
    targets = loader.multi_hot(samples, labels).astype('int32')
    predictions = np.array([[1, 0], [1, 1], [1, 0]], dtype='int32')
    scores = np.array([[0.9, 0.1], [0.7, 0.8], [0.6, 0.2]])
    errors_path = str(tmp_path / path.ERRORS_NAME)
    assert evaluate.write_errors(errors_path, samples, labels, targets, predictions, scores) == 1
    (row,) = [json.loads(line) for line in open(errors_path, encoding='utf-8')]
    assert row == {'line': 2, 'text': 'two', 'true': ['b', 'z'], 'predicted': ['a', 'b'],
                   'true_scores': {'b': 0.8, 'z': None}, 'predicted_scores': {'a': 0.7, 'b': 0.8}}
