"""Explanations: per-character attributions aligned to the original text, and their faithfulness."""
import json
import os

import numpy as np
import pytest

from multilabel import calibration
from multilabel import explain
import loader
import path
import predict
from conftest import ROOT, run_script
from multilabel import inference

TEXT = '青岛Metro地铁😀坍塌 ABC致3人遇难'  # upper-case Latin words, an emoji, a space


@pytest.fixture(scope='module')
def classifier(trained):
    weights, _ = trained
    return predict.Classifier(weights)


def test_tokens_map_back_to_the_original_characters(classifier):
    ids, characters = explain.encode(classifier, TEXT)
    assert len(ids) == len(characters) + 2  # [CLS] and [SEP] map to no character
    assert [''.join(TEXT[i] for i in chars) for chars in characters] == [
        '青', '岛', 'Metro', '地', '铁', '😀', '坍', '塌', 'ABC', '致', '3', '人', '遇', '难']
    assert ids == loader.encode_texts(classifier.tokenizer, [TEXT], classifier.maxlen, progress=False)[0]


@pytest.mark.parametrize('method', explain.METHODS)
def test_every_method_gives_one_attribution_per_character_and_spans_of_the_original_text(classifier, method):
    label = int(np.argmax(classifier.scores([TEXT])[0]))
    [answer] = explain.explain(classifier, TEXT, [label], method, top_k=20)
    assert answer['label'] == classifier.labels[label] and answer['index'] == label
    assert answer['score'] == pytest.approx(classifier.scores([TEXT])[0, label], abs=1e-5)
    attributions = answer['attributions']
    assert len(attributions) == len(TEXT) and all(np.isfinite(attributions))
    assert attributions[TEXT.index(' ')] == 0  # no token covers the space
    metro = attributions[TEXT.index('M'):TEXT.index('M') + 5]
    assert len(set(metro)) == 1  # one token, one weight for its characters
    assert answer['spans'], 'no character raised the score'
    for span in answer['spans']:
        assert TEXT[span['start']:span['end']] == span['text'] and span['weight'] > 0
        assert attributions[span['start']] == pytest.approx(span['weight'])
    weights = [span['weight'] for span in answer['spans']]
    assert weights == sorted(weights, reverse=True)
    assert len(answer['spans']) == sum(1 for chars in explain.encode(classifier, TEXT)[1]
                                       if attributions[chars[0]] > 0)  # every positive token, top_k 20


def test_the_default_labels_are_the_decided_ones(classifier):
    one_hot, _ = classifier.predict(TEXT)
    answers = explain.explain(classifier, TEXT)
    assert [a['index'] for a in answers] == list(np.flatnonzero(one_hot))
    assert all(len(a['spans']) <= explain.TOP_K for a in answers)


def test_masking_occlusions_top_character_lowers_the_score_by_its_weight(classifier):
    label = int(np.argmax(classifier.scores([TEXT])[0]))
    [answer] = explain.explain(classifier, TEXT, [label], 'occlusion')
    top = answer['spans'][0]
    ids, characters = explain.encode(classifier, TEXT)
    position = 1 + next(i for i, chars in enumerate(characters) if chars[0] == top['start'])
    masked = ids[:position] + [classifier.tokenizer.token_to_id('[MASK]')] + ids[position + 1:]
    score = calibration.apply(inference.predict_scores(classifier.engine, [masked]), classifier.temperature)[0, label]
    assert score < answer['score']
    assert answer['score'] - score == pytest.approx(top['weight'], abs=1e-5)


def test_integrated_gradients_add_up_to_the_logits_change_from_the_zero_embedding(classifier):
    ids, _ = explain.encode(classifier, TEXT)
    label = int(np.argmax(classifier.scores([TEXT])[0]))
    weights = explain.gradient_attributions(classifier, ids, [label], 'integrated_gradients', steps=64)
    alpha = np.ones((2, len(ids)), dtype='float32')
    alpha[1, 1:-1] = 0  # the baseline: every text token's embedding zero
    logits, _ = explain._gradient_function(classifier.model)(np.array([ids, ids], dtype='int32'), alpha, label)
    change = float(logits[0] - logits[1])
    assert abs(change) > 1e-4
    assert weights.sum() == pytest.approx(change, rel=0.05, abs=1e-5)


def test_the_models_own_scores_are_untouched_by_the_gradient_methods(classifier):
    before = classifier.scores([TEXT])
    explain.explain(classifier, TEXT, [0], 'integrated_gradients')
    assert 'call' not in vars(classifier.model.get_layer(explain.TOKEN_LAYER))
    assert np.array_equal(classifier.scores([TEXT]), before)


def test_the_gradient_methods_work_on_a_bfloat16_model(trained):
    weights, _ = trained
    classifier = predict.Classifier(weights, precision='bfloat16')
    for method in ('gradient_x_input', 'integrated_gradients'):
        [answer] = explain.explain(classifier, TEXT, [0], method)
        assert len(answer['attributions']) == len(TEXT) and np.isfinite(answer['attributions']).all()
        assert any(answer['attributions'])


def test_an_unknown_method_is_refused(classifier):
    with pytest.raises(ValueError, match='unknown explanation method'):
        explain.explain(classifier, TEXT, [0], 'attention')


def test_faithfulness_curves_are_deterministic_for_a_seed(classifier):
    texts = [s.text for s in loader.read_samples(path.SAMPLE_TEST)][:12]
    first = explain.faithfulness(classifier, texts, ('occlusion', 'gradient_x_input'), k=3, seed=7)
    again = explain.faithfulness(classifier, texts, ('occlusion', 'gradient_x_input'), k=3, seed=7)
    assert first['curves'] == again['curves']
    assert first['k'] == [1, 2, 3] and first['pairs'] >= len(texts)  # at least one decided label each
    assert set(first['curves']) == {'random', 'occlusion', 'gradient_x_input'} == {'random', *first['seconds']}
    assert all(len(curve) == 3 and all(np.isfinite(curve)) for curve in first['curves'].values())
    other = explain.faithfulness(classifier, texts, ('occlusion',), k=3, seed=8)['curves']
    assert other['occlusion'] == first['curves']['occlusion'] and other['random'] != first['curves']['random']
    # Removing the tokens whose masking lowers the score most lowers it more than removing
    # one at random, on average, also on this barely trained model.
    assert first['curves']['occlusion'][0] > first['curves']['random'][0]


def test_without_deletes_the_given_text_tokens():
    assert explain.without([2, 10, 11, 12, 3], [0, 2]) == [2, 11, 3]


def test_the_faithfulness_bench_writes_both_curves_per_method(trained, tmp_path):
    weights, _ = trained
    out = tmp_path / 'faithfulness.json'
    result = run_script(os.path.join('bench', 'faithfulness.py'), '--weights', weights, '--test', path.SAMPLE_TEST,
                        '--max-texts', '8', '--k', '2', '--steps', '4', '--out', str(out))
    assert result.returncode == 0, result.stderr[-3000:]
    written = json.loads(out.read_text())
    assert written['texts'] == 8 and written['k'] == [1, 2]
    assert set(written['curves']) == {'random', *explain.METHODS}
    assert written['command'].startswith('python bench/faithfulness.py') and written['git_commit']
    assert written['test'] == os.path.relpath(path.SAMPLE_TEST, ROOT) and not os.path.isabs(written['weights'])
    for method in explain.METHODS:
        assert method in result.stdout


def test_predict_explain_gives_each_predicted_label_its_spans_in_json_and_after_a_tab(trained, capsys):
    import predict
    text = '青岛地铁施工段坍塌致3人遇难'
    predict.main(['--weights', trained[0], '--json', '--explain', text])
    answer = json.loads(capsys.readouterr().out)
    assert set(answer['explanations']) == set(answer['labels']) and answer['labels']
    assert any(answer['explanations'].values())
    for spans in answer['explanations'].values():
        assert all(text[s['start']:s['end']] == s['text'] and s['weight'] > 0 for s in spans)
        assert [s['weight'] for s in spans] == sorted((s['weight'] for s in spans), reverse=True)
    predict.main(['--weights', trained[0], '--explain', text])
    labels, why = capsys.readouterr().out.rstrip('\n').split('\t')
    assert labels.split('|') == answer['labels']
    assert why == '; '.join(f'{label}: ' + ' '.join(s['text'] for s in answer['explanations'][label])
                            for label in answer['labels'])


def test_explanations_score_what_the_classifier_answers(classifier):
    text = '某汽车品牌宣布召回两万辆新车'
    scores = classifier.scores([text])[0]
    for found in explain.explain(classifier, text):
        assert found['score'] == pytest.approx(float(scores[found['index']]), abs=1e-5)
