"""The benchmark scripts keep working: each runs on a tiny slice and writes well-formed results."""
import json
import os
import shlex
import shutil
import subprocess
import sys

import pytest

import path
from conftest import ROOT, run_script


def run_bench(script, *flags):
    result = run_script(os.path.join('bench', script), *flags)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def test_accuracy_bench_scores_ours_and_the_peer_on_the_same_test_file(tiny_pretrained, tmp_path, sample_corpus):
    data = sample_corpus
    out = tmp_path / 'accuracy.json'
    stdout = run_bench('accuracy.py', '--data', str(data), '--pretrained', tiny_pretrained, '--budget', '0.02',
                       '--name', 'tiny', '--weights', str(tmp_path / 'weights'), '--out', str(out),
                       '--', '--epochs', '1', '--maxlen', '32', '--batch-size', '16')
    systems = json.loads(out.read_text())['systems']
    assert set(systems) == {'tfidf_linearsvc', 'tiny'}
    for name, row in systems.items():
        assert row['test_samples'] == 90 and row['command'].startswith('python bench/accuracy.py')
        for metric in ('exact_match', 'micro_f1', 'macro_f1', 'samples_f1'):
            assert 0.0 <= row[metric] <= 1.0, (name, metric)
        assert row['train_seconds'] > 0
        assert name in stdout
    assert systems['tfidf_linearsvc']['exact_match'] > 0.3  # the peer learns the sample in a blink
    assert systems['tiny']['init'] == 'checkpoint' and systems['tiny']['epochs_completed'] == 1
    assert [row['epoch'] for row in systems['tiny']['history']] == [1]  # the run's history.csv, kept in the JSON
    assert len(systems['tiny']['decision_rules']) == 3
    assert len(systems['tiny']['git_commit']) >= 7
    assert 'teachers' not in systems['tiny']  # learnt from the labels alone

    # The blend of the same model with the peer: beta chosen on validation, beta 0 being the model alone.
    stdout = run_bench('blend.py', '--weights', str(tmp_path / 'weights'), '--row', 'tiny', '--data', str(data),
                       '--out', str(out))
    blend = json.loads(out.read_text())['systems']['tiny+tfidf']
    assert blend['validation_exact_match_by_beta']['0.0'] <= blend['best_validation_exact_match']
    assert blend['best_validation_exact_match'] == max(blend['validation_exact_match_by_beta'].values())
    assert blend['train_seconds'] == pytest.approx(systems['tiny']['train_seconds'] + blend['peer_seconds'], abs=0.01)
    assert 0.0 <= blend['exact_match'] <= 1.0 and '<- chosen' in stdout
    assert blend['side_alone_exact_match'] == systems['tfidf_linearsvc']['exact_match']  # the side alone is the peer
    assert 0.0 <= blend['side_alone_validation_exact_match'] <= 1.0 and 'the side alone' in stdout
    # The validation texts with one label and those with several, apart: together, the whole split of 36.
    several, parts = blend['validation_texts_with_several_labels'], blend['validation_exact_match_by_label_count']
    assert 0 < several < 36 and 'with several' in stdout
    for system, whole in (('alone', blend['validation_exact_match_by_beta']['0.0']),
                          ('blend', blend['best_validation_exact_match'])):
        mixed = (parts[system]['one_label'] * (36 - several) + parts[system]['several_labels'] * several) / 36
        assert mixed == pytest.approx(whole, abs=1e-3), system
    # train.py --ngram-blend's side, on the token n-grams: the same rule
    run_bench('blend.py', '--weights', str(tmp_path / 'weights'), '--row', 'tiny', '--data', str(data),
              '--out', str(out), '--side', 'ngram')
    side = json.loads(out.read_text())['systems']['tiny+ngram']
    assert side['side'] == 'ngram' and blend['side'] == 'tfidf'
    assert side['best_validation_exact_match'] == max(side['validation_exact_match_by_beta'].values())
    assert side['validation_exact_match_by_beta']['0.0'] == blend['validation_exact_match_by_beta']['0.0']

    # An ensemble of the model with itself decides as the model alone, and counts its seconds twice.
    os.symlink(tmp_path / 'weights', tmp_path / 'tiny')
    stdout = run_bench('ensemble.py', '--weights', str(tmp_path / 'tiny'), str(tmp_path / 'tiny'), '--data', str(data),
                       '--out', str(out), '--soup')
    ensemble = json.loads(out.read_text())['systems']['ensemble:tiny+tiny']
    assert ensemble['exact_match'] == ensemble['member_test_exact_match']['tiny'] == systems['tiny']['exact_match']
    assert ensemble['train_seconds'] == pytest.approx(2 * systems['tiny']['train_seconds'], abs=0.01)
    assert 'mean of the logits' in stdout
    # The mean of one model's weights with themselves is that model, on test and on the shared validation split.
    soup = ensemble['soup']
    assert soup['shared_validation_split'] and soup['validation_samples'] == 36  # the 10% train.py held out
    assert soup['mean of the weights (soup)']['exact_match'] == soup['mean of the logits']['exact_match'] \
        == soup['tiny']['exact_match']
    assert soup['mean of the weights (soup)']['validation_exact_match'] == soup['tiny']['validation_exact_match']
    assert soup['mean of the weights (soup)']['train_seconds'] == ensemble['train_seconds']
    assert 'mean of the weights (soup)' in stdout

    # The curve of rows against their training minutes: a table and a PNG.
    stdout = run_bench('curve.py', '--rows', 'tiny', 'tiny+tfidf', '--results', str(out), '--reference', '0.93',
                       '--out', str(tmp_path / 'curve.png'))
    assert (tmp_path / 'curve.png').read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
    assert [line.split()[0] for line in stdout.splitlines()[1:3]] == ['tiny', 'tiny+tfidf']
    # Two recipes as two lines, each named; a --label without its --rows is a one-line error.
    stdout = run_bench('curve.py', '--rows', 'tiny', '--label', 'one', '--rows', 'tiny+tfidf', '--label', 'two',
                       '--results', str(out), '--out', str(tmp_path / 'two.png'))
    assert [line.split()[0] for line in stdout.splitlines()[1:3]] == ['tiny', 'tiny+tfidf']
    assert (tmp_path / 'two.png').read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
    refused = run_script(os.path.join('bench', 'curve.py'), '--rows', 'tiny', '--label', 'one', '--label', 'two',
                         '--results', str(out), '--out', str(tmp_path / 'three.png'))
    assert refused.returncode == 2 and '--label: 2 given for 1 --rows lines' in refused.stderr.splitlines()[-1]
    assert not (tmp_path / 'three.png').exists()


def test_accuracy_bench_pretrain_row_on_a_labelled_share(tiny_pretrained, tmp_path):
    data = tmp_path / 'data'
    data.mkdir()
    shutil.copy(path.SAMPLE_TRAIN, data / os.path.basename(path.CORPUS_TRAIN))
    shutil.copy(path.SAMPLE_TEST, data / os.path.basename(path.CORPUS_TEST))
    out = tmp_path / 'accuracy.json'
    run_bench('accuracy.py', '--data', str(data), '--budget', '5', '--name', 'tiny_pretrain', '--labelled-fraction', '0.5',
              '--pretrain', f'--init {tiny_pretrained} --epochs 1 --max-samples 60 --maxlen 32 --batch-size 16',
              '--weights', str(tmp_path / 'weights' / 'tiny_pretrain'), '--out', str(out),
              '--', '--epochs', '1', '--maxlen', '32', '--batch-size', '16', '--teacher', 'tfidf')
    systems = json.loads(out.read_text())['systems']
    assert set(systems) == {'tfidf_linearsvc_50pct', 'tiny_pretrain'}
    row = systems['tiny_pretrain']
    assert row['train_samples'] == systems['tfidf_linearsvc_50pct']['train_samples'] == 164  # 10% of 182 validate
    assert row['init'] == 'checkpoint' and row['pretrain_epochs'] == 1
    assert [r['epoch'] for r in row['pretrain_history']] == [1] and [r['epoch'] for r in row['history']] == [1]
    assert row['train_seconds'] == pytest.approx(row['pretrain_seconds'] + row['fine_tune_seconds'], abs=0.01)
    assert row['pretrain_cpu_seconds'] > 0 and len(row['load_average_1_5_15_after']) == 3
    assert 0.0 <= row['exact_match'] <= 1.0
    assert row['teachers'] == {'teachers': ['tfidf'], 'teacher_weight': 0.5, 'tfidf_beta': 8.0}  # a distilled row
    # the recorded command pastes into a shell: --pretrain's flags stay one argument
    assert f'--init {tiny_pretrained} --epochs 1 --max-samples 60 --maxlen 32 --batch-size 16' in shlex.split(row['command'])


def test_accuracy_bench_refuses_a_stage_restart_flag_before_anything_runs(tmp_path, sample_corpus):
    # Each stage gets --resume or --overwrite from accuracy.py; --resume among train.py's flags would reach
    # train.py beside --overwrite and stop the row only after its whole pretraining had been replaced.
    weights = tmp_path / 'weights' / 'row'
    common = ['--data', str(sample_corpus), '--name', 'row', '--weights', str(weights), '--out', str(tmp_path / 'a.json')]
    for flags in (['--pretrain', '--epochs 1', '--', '--resume'], ['--pretrain', '--epochs 1 --overwrite']):
        result = run_script(os.path.join('bench', 'accuracy.py'), *common, *flags)
        assert result.returncode == 2 and "is bench/accuracy.py's own: give --resume before --" in result.stderr
        assert not weights.parent.exists()


def test_accuracy_bench_resume_keeps_a_finished_pretraining_and_times_the_trained_minutes(tiny_pretrained, tmp_path,
                                                                                       sample_corpus):
    # A row cut after its pretraining (here: the fine-tuning stage refuses a flag), then finished with --resume.
    weights, out = tmp_path / 'weights' / 'cut', tmp_path / 'accuracy.json'
    common = ['--data', str(sample_corpus), '--budget', '5', '--name', 'cut', '--weights', str(weights), '--out', str(out),
              '--pretrain', f'--init {tiny_pretrained} --epochs 1 --max-samples 60 --maxlen 32 --batch-size 16']
    cut = run_script(os.path.join('bench', 'accuracy.py'), *common, '--', '--epochs', '1', '--maxlen', '-3')
    assert cut.returncode != 0 and not out.exists()
    checkpoint = weights.parent / 'cut-pretrained' / (path.CHECKPOINT_NAME + '.index')
    written = checkpoint.stat().st_mtime_ns
    stdout = run_bench('accuracy.py', *common, '--resume', '--', '--epochs', '1', '--maxlen', '32', '--batch-size', '16')
    assert 'this run had already finished' in stdout and checkpoint.stat().st_mtime_ns == written  # not pretrained again
    row = json.loads(out.read_text())['systems']['cut']
    state = path.read_json(str(weights.parent / 'cut-pretrained' / path.RESUME_DIR / path.RESUME_STATE_NAME))
    assert row['resumed'] and row['pretrain_seconds'] == state['elapsed'] and row['pretrain_epochs'] == 1
    # the continued pretraining's CPU seconds died with the cut process; the fine-tuning ran whole in this one
    assert 'pretrain_cpu_seconds' not in row and row['fine_tune_cpu_seconds'] > 0
    assert row['fine_tune_seconds'] == pytest.approx(
        path.read_json(str(weights / path.RESUME_DIR / path.RESUME_STATE_NAME))['elapsed'], abs=0.01)
    assert row['epochs_completed'] == 1 and 0.0 <= row['exact_match'] <= 1.0


def test_accuracy_bench_runs_a_recipe_end_to_end_and_scores_what_it_wrote(tiny_pretrained, tmp_path, sample_corpus):
    recipe_file = tmp_path / 'tiny.toml'
    recipe_file.write_text(f'[pretrain]\ninit = "{tiny_pretrained}"\nmaxlen = 32\nbatch_size = 16\nepochs = 1\n'
                           '[train]\nmaxlen = 32\nbatch_size = 16\nepochs = 1\n', encoding='utf-8')
    out, weights = tmp_path / 'accuracy.json', tmp_path / 'weights' / 'tiny_recipe'
    stdout = run_bench('accuracy.py', '--data', str(sample_corpus), '--recipe', str(recipe_file), '--name', 'tiny_recipe',
                       '--weights', str(weights), '--out', str(out), '--seed', '3')
    assert 'recipe: main.py pretrain ' in stdout and 'recipe: main.py evaluate ' in stdout  # the recipe's own stages
    row = json.loads(out.read_text())['systems']['tiny_recipe']
    assert row['test_samples'] == 90 and 0.0 <= row['exact_match'] <= 1.0 and len(row['decision_rules']) == 3
    assert row['pretrain_epochs'] == 1 and row['epochs_completed'] == 1 and row['pretrained_dir'].endswith('-pretrained')
    recorded = path.read_json(str(weights / 'recipe.json'))['train']['flags']
    assert row['train_flags'] == [os.path.relpath(f, ROOT) if os.path.isabs(f) else f for f in recorded]
    assert not any(os.path.isabs(flag) for flag in row['train_flags'] + row['pretrain_flags'])  # no machine's paths
    assert 0 < row['pretrain_seconds'] + row['fine_tune_seconds'] <= row['train_seconds']  # the evaluation is counted
    assert row['recipe_cpu_seconds'] > 0 and row['command'].startswith('python bench/accuracy.py')
    assert row['train_flags'][row['train_flags'].index('--seed') + 1] == '3' == \
        row['pretrain_flags'][row['pretrain_flags'].index('--seed') + 1]  # --seed reaches both stages
    refused = subprocess.run([sys.executable, os.path.join('bench', 'accuracy.py'), '--recipe', str(recipe_file),
                              '--', '--epochs', '1'], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert refused.returncode == 2 and 'flags for train.py cannot be combined' in refused.stderr.splitlines()[-1]
    refused = subprocess.run([sys.executable, os.path.join('bench', 'accuracy.py'), '--seed', '3'],
                             cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert refused.returncode == 2 and "--seed is the recipe's" in refused.stderr.splitlines()[-1]


def test_speed_bench_reports_rates_roofline_share_and_training_steps(tiny_pretrained, tmp_path):
    out = tmp_path / 'speed.json'
    run_bench('speed.py', '--test', path.SAMPLE_TEST, '--pretrained', tiny_pretrained, '--texts', '40',
              '--single', '4', '--steps', '1', '--train-len', '16', '--matmul-size', '256', '--out', str(out))
    result = json.loads(out.read_text())
    assert result['texts'] == 40
    assert all(rate > 0 for rate in result['sentences_per_second'].values())
    assert 0 < result['roofline_fraction'] <= 1
    steps = result['training_steps_batch_32']
    assert {(row['fgm'], row['execution']) for row in steps} == {
        (fgm, execution) for fgm in (False, True) for execution in ('eager', 'graph', 'xla')}
    assert all(row.get('seconds_per_step', 1) > 0 for row in steps)


def test_sides_bench_reads_the_linear_side_five_ways_on_validation(sample_corpus, tmp_path):
    out = tmp_path / 'sides.json'
    stdout = run_bench('sides.py', '--data', str(sample_corpus), '--out', str(out))
    results = json.loads(out.read_text())
    variants = list(results['variants'].values())
    assert len(variants) == 5 and all(0.0 <= row['validation_exact_match'] <= 1.0 for row in variants)
    assert variants[0]['validation_exact_match'] > 0.3  # the peer learns the sample in a blink
    # no sample text reaches maxlen: cutting it changes nothing, for characters as for tokens
    assert results['share_of_texts_over_126_characters'] == 0.0
    assert variants[1]['validation_exact_match'] == variants[0]['validation_exact_match']
    assert variants[3]['validation_exact_match'] == variants[2]['validation_exact_match']
    assert 0.0 <= results['unknown_token_share'] < 0.01 and results['validation_samples'] == 36
    assert '(the peer)' in stdout and results['command'].startswith('python bench/sides.py')
