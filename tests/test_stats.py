"""The data report: `python loader.py --stats FILE`, `python main.py stats FILE`, `python main.py stats FILE`."""
import json
import os
import subprocess
import sys

import numpy as np

import loader
import path
from multilabel import stats
from conftest import ROOT, run_script

VOCAB = os.path.join(path.pretrained_dir('small'), path.VOCAB_NAME)

CRAFTED = [
    'a|x 一样的句子',    # 1
    'b 另一句',          # 2
    'a|x 一样的句子',    # 3: repeats 1
    'a|b 另一句',        # 4: the text of 2 with other labels
    'c 第三句话',        # 5
    'x|a 一样的句子',    # 6: the label set of 1 in another order: repeats 1
]


def test_report_of_the_bundled_sample_adds_up():
    samples = loader.read_samples(path.SAMPLE_TRAIN)
    tokenizer = loader.load_tokenizer(VOCAB)
    report = stats.data_stats(samples, tokenizer, maxlen=24, progress=False)
    assert report['lines'] == len(samples)
    assert report['labels'] == len(loader.label_list(samples))
    assert sum(report['label_frequencies'].values()) == sum(len(s.labels) for s in samples)
    counts = list(report['label_frequencies'].values())
    assert counts == sorted(counts, reverse=True)
    assert sum(report['labels_per_line'].values()) == len(samples)
    for unit in ('characters', 'tokens'):
        values = list(report[unit].values())
        assert values == sorted(values)
    assert report['characters']['max'] == max(len(s.text) for s in samples)
    lengths = [len(tokenizer.encode(s.text)[0]) for s in samples]
    assert report['tokens']['max'] == max(lengths)
    assert report['longer_than_maxlen'] == sum(n > 24 for n in lengths) > 0
    assert report['tokens']['p50'] == int(np.ceil(np.median(lengths)))


def test_repeated_lines_and_conflicting_labels_are_found(tmp_path):
    crafted = tmp_path / 'crafted.txt'
    crafted.write_text('\n'.join(CRAFTED) + '\n', encoding='utf-8')
    report = stats.data_stats(loader.read_samples(str(crafted)), loader.load_tokenizer(VOCAB), maxlen=6,
                              progress=False)
    assert report['repeated_lines'] == 2
    assert [group['lines'] for group in report['repeated']] == [[1, 3, 6]]
    assert report['conflicting'] == [{'text': '另一句', 'lines': {2: 'b', 4: 'a|b'}}]
    assert report['labels_per_line'] == {1: 2, 2: 4}
    assert report['label_frequencies'] == {'a': 4, 'x': 3, 'b': 2, 'c': 1}


def test_loader_and_main_print_the_report(tmp_path):
    crafted = tmp_path / 'crafted.txt'
    crafted.write_text('\n'.join(CRAFTED) + '\n', encoding='utf-8')
    result = run_script('loader.py', '--stats', str(crafted), '--maxlen', '6')
    assert result.returncode == 0, result.stderr[-3000:]
    text = result.stdout
    assert f'{crafted}: 6 lines, 4 labels' in text
    assert 'lines 1, 3, 6: a|x 一样的句子' in text
    assert 'texts with different label sets on different lines: 1' in text
    assert 'line 4: a|b' in text
    assert 'longer than maxlen 6 tokens' in text

    result = run_script('main.py', 'stats', path.SAMPLE_TEST, '--json')
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout)
    assert report['lines'] == len(loader.read_samples(path.SAMPLE_TEST))
    assert report['maxlen'] == 200  # config's default


def test_a_missing_file_is_one_line_error():
    result = subprocess.run([sys.executable, 'main.py', 'stats', 'no/such/file.txt'], cwd=ROOT,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == 'error: no/such/file.txt: no such file'
