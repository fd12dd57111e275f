"""bench/long_text.py and bench/imbalance.py run on a tiny slice and write well-formed results."""
import json
import os
import shutil

import path
from conftest import run_script


def run_bench(script, *flags):
    result = run_script(os.path.join('bench', script), *flags)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def sample_as_corpus(tmp_path):
    data = tmp_path / 'data'
    data.mkdir()  # the bundled sample under the real corpus' file names
    shutil.copy(path.SAMPLE_TRAIN, data / os.path.basename(path.CORPUS_TRAIN))
    shutil.copy(path.SAMPLE_TEST, data / os.path.basename(path.CORPUS_TEST))
    return str(data)


def test_long_text_bench_chooses_the_stride_on_validation_and_times_both_modes(trained, tmp_path):
    out = tmp_path / 'long_text.json'
    stdout = run_bench('long_text.py', '--weights', trained[0], '--data', sample_as_corpus(tmp_path),
                       '--strides', '4', '0', '--repeats', '1', '--out', str(out))
    result = json.loads(out.read_text())
    window = result['maxlen'] - 2
    assert set(result['validation']) == {'truncate', 'chunk stride 4', f'chunk stride {window // 2}'}
    assert result['chosen_stride'] in (4, window // 2)
    assert set(result['test']) == {'truncate', f'chunk stride {result["chosen_stride"]}'}
    assert result['test_samples'] == 90 and result['test_windows'] >= 90
    assert all(rate > 0 for rate in result['sentences_per_second'].values())
    assert result['command'].startswith('python bench/long_text.py') and result['git_commit']
    assert 'chunk costs' in stdout


def test_imbalance_bench_reports_the_rarest_labels(trained, tmp_path):
    out = tmp_path / 'imbalance.json'
    stdout = run_bench('imbalance.py', '--baseline', trained[0], '--weighted', trained[0],
                       '--data', sample_as_corpus(tmp_path), '--out', str(out))
    result = json.loads(out.read_text())
    assert len(result['rarest_labels']) == 12  # the sample has 12 labels, fewer than 15
    for system in result['systems'].values():
        for split in ('validation', 'test'):
            assert 0.0 <= system[split]['macro_f1'] <= 1.0
            assert set(system[split]['rarest_f1']) == set(result['rarest_labels'])
    assert result['pos_weight_wins_on_validation'] is False  # the same model twice never wins
    assert 'does not win on validation' in stdout
