"""What to label next: uncertainty, the diversity term, and `python main.py suggest`."""
import subprocess
import sys

import numpy as np
import pytest

from multilabel import audit
import loader
import path
import predict
from multilabel import suggest
from conftest import ROOT, run_script


def test_uncertainty_is_the_probability_that_the_decided_set_is_wrong():
    scores = np.array([[0.9, 0.1], [0.5, 0.0], [0.6, 0.7]])
    doubt, decided = suggest.uncertainty(scores, 0.5, top1_fallback=True)
    assert decided.tolist() == [[1, 0], [1, 0], [1, 1]]  # row 2: no score passes, the fallback takes label 0
    assert doubt == pytest.approx([1 - 0.9 * 0.9, 1 - 0.5 * 1.0, 1 - 0.6 * 0.7])
    doubt, _ = suggest.uncertainty(scores, np.array([0.5, 0.75]), top1_fallback=True)
    assert doubt[2] == pytest.approx(1 - 0.6 * 0.3)  # a per-label threshold: label 1 not decided


def test_near_duplicates_are_not_both_chosen_with_diversity_on():
    texts = ['青岛地铁施工段坍塌致3人遇难', '青岛地铁施工段坍塌致3人遇难。', '新股东岳智造上市次日继续涨停']
    features = audit.vectorizer().fit_transform(texts)
    doubt = np.array([0.9, 0.89, 0.5])
    assert suggest.select(doubt, features, 2, diversity=1.0) == [0, 2]
    assert suggest.select(doubt, features, 2, diversity=0) == [0, 1]  # uncertainty alone
    assert suggest.select(doubt, features, 10, diversity=1.0) == [0, 2, 1]  # every text once


@pytest.fixture(scope='module')
def unlabelled(tmp_path_factory):
    """The bundled test file's texts, and five copies of one text, each changed by a character."""
    texts = [s.text for s in loader.read_samples(path.SAMPLE_TEST)][:40]
    texts += [texts[0][:-1] + mark for mark in '。！？…；']
    texts_path = tmp_path_factory.mktemp('unlabelled') / 'texts.txt'
    texts_path.write_text(''.join(text + '\n' for text in texts), encoding='utf-8')
    return str(texts_path), texts


def test_suggest_writes_the_top_n_as_data_lines_with_the_models_labels(trained, unlabelled, tmp_path):
    weights, _ = trained
    texts_path, texts = unlabelled
    out = tmp_path / 'to-label.txt'
    ranked = suggest.main(['--weights', weights, '--texts', texts_path, '-n', '10', '--out', str(out),
                           '--precision', 'float32'])
    samples = loader.read_samples(str(out))
    assert [s.text for s in samples] == [row['text'] for row in ranked] and len(samples) == 10
    classifier = predict.Classifier(weights)
    _, decided, _ = classifier.predict_batch([s.text for s in samples])
    assert [list(s.labels) for s in samples] == decided  # the decision rule's labels, pre-filled
    assert len({row['index'] for row in ranked}) == 10
    near_duplicates = {0} | set(range(40, 45))
    assert len(near_duplicates & {row['index'] for row in ranked}) <= 1


def test_n_larger_than_the_input_suggests_every_text_once(trained, unlabelled, tmp_path):
    weights, _ = trained
    texts_path, texts = unlabelled
    out = tmp_path / 'all.txt'
    suggest.main(['--weights', weights, '--texts', texts_path, '-n', '1000', '--out', str(out), '--diversity', '0',
                  '--precision', 'float32'])
    samples = loader.read_samples(str(out))
    assert sorted(s.text for s in samples) == sorted(texts)
    classifier = predict.Classifier(weights)
    doubt, _ = suggest.uncertainty(classifier.scores([s.text for s in samples]), classifier.threshold,
                                   classifier.top1_fallback)
    assert list(doubt) == sorted(doubt, reverse=True)  # diversity 0: by uncertainty alone


def test_an_existing_output_is_kept_unless_overwrite(trained, unlabelled, tmp_path):
    weights, _ = trained
    texts_path, _ = unlabelled
    out = tmp_path / 'kept.txt'
    out.write_text('mine\n', encoding='utf-8')
    with pytest.raises(suggest.config.InputError, match='already exists; pass --overwrite'):
        suggest.main(['--weights', weights, '--texts', texts_path, '-n', '3', '--out', str(out)])
    assert out.read_text(encoding='utf-8') == 'mine\n'
    suggest.main(['--weights', weights, '--texts', texts_path, '-n', '3', '--out', str(out), '--overwrite'])
    assert len(loader.read_samples(str(out))) == 3
    pool = open(texts_path, encoding='utf-8').read()
    with pytest.raises(suggest.config.InputError, match='the --input this run reads; choose another --out'):
        suggest.main(['--weights', weights, '--texts', texts_path, '-n', '3', '--out', texts_path, '--overwrite'])
    assert open(texts_path, encoding='utf-8').read() == pool


def run_suggest(*flags):
    return subprocess.run([sys.executable, 'main.py', 'suggest', *flags], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)


def test_a_bad_texts_file_is_one_line_naming_file_and_line(tmp_path):
    bad = tmp_path / 'bad.txt'
    bad.write_text('第一行\n\n第三行\n', encoding='utf-8')
    result = run_suggest('--texts', str(bad), '-n', '2', '--out', str(tmp_path / 'out.txt'))
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == f'error: {bad}:2: empty line'
    assert not (tmp_path / 'out.txt').exists()
    missing = run_suggest('--texts', str(tmp_path / 'none.txt'), '-n', '2', '--out', str(tmp_path / 'out.txt'))
    assert missing.returncode == 1 and missing.stderr.strip().endswith('none.txt: no such file')


def test_bad_flags_are_refused_before_any_work(tmp_path):
    result = run_suggest('--texts', 'x.txt', '-n', '0', '--out', str(tmp_path / 'out.txt'))
    assert result.returncode == 1 and '-n must be 1 or more' in result.stderr
    assert run_suggest('--help').returncode == 0


def test_the_active_learning_bench_gives_the_curves_of_both_arms(tiny_pretrained, tmp_path, sample_corpus):
    import json
    import os
    data = sample_corpus
    out, weights = tmp_path / 'active_learning.json', tmp_path / 'weights'
    result = run_script(os.path.join('bench', 'active_learning.py'), '--data', str(data),
                        '--pretrained', tiny_pretrained, '--budget', '0.05', '--max-test', '30',
                        '--weights', str(weights), '--out', str(out),
                        '--', '--epochs', '1', '--maxlen', '32', '--batch-size', '16')
    assert result.returncode == 0, result.stderr[-3000:]
    written = json.loads(out.read_text())
    assert written['train_lines'] == 365 and written['lines_per_step'] == 36 and written['test_samples'] == 30
    assert written['command'].startswith('python bench/active_learning.py') and written['git_commit']
    arms = written['arms']
    assert set(arms) == {'suggest', 'random'} and arms['suggest'][0] == arms['random'][0]  # one start model
    for points in arms.values():
        assert [p['labelled_lines'] for p in points] == [36, 72, 108]
        assert all(0 <= p['exact_match'] <= 1 and p['fine_tune_cpu_seconds'] > 0 for p in points)
        assert all(p['epochs_completed'] == 1 for p in points)
    assert all(p['rank_seconds'] > 0 for p in arms['suggest'][1:])
    texts = {name: {s.text for s in loader.read_samples(str(weights / f'labelled-{name}.txt'))}
             for name in ('start-10pct', 'suggest-20pct', 'suggest-30pct', 'random-20pct', 'random-30pct')}
    assert texts['start-10pct'] < texts['suggest-20pct'] < texts['suggest-30pct']
    assert texts['start-10pct'] < texts['random-20pct'] < texts['random-30pct']
    assert texts['suggest-20pct'] != texts['random-20pct']
    assert '29.6%' in result.stdout  # 108 of 365 lines
