"""The data audit: `python main.py audit FILE` on a crafted file with known faults."""
import contextlib
import io
import json
import random

import pytest

from multilabel import audit
import config
import loader
import main
import path


def crafted_file(tmp_path):
    """Two labels told apart by their words, with 3 flipped lines, a conflicting
    near-duplicate pair and a label on 2 lines only. Returns (file, flipped lines, pair lines)."""
    rng = random.Random(0)
    sports = ['比赛', '球队', '夺冠', '进球', '联赛', '主场', '教练', '球员']
    fire = ['起火', '火灾', '消防', '烧毁', '浓烟', '灭火', '火势', '着火']
    places = ['北京', '上海', '广州', '深圳', '成都', '武汉', '南京', '杭州', '西安', '重庆']
    lines = []
    for i in range(60):
        words, label = (sports, '竞赛') if i % 2 else (fire, '火灾')
        text = rng.choice(places) + ''.join(rng.sample(words, 4)) + str(i)
        lines.append(f'{label} {text}')
    flipped = [10, 25, 40]  # 1-based line numbers whose label is swapped
    for number in flipped:
        label, text = lines[number - 1].split(' ', 1)
        lines[number - 1] = f'{"火灾" if label == "竞赛" else "竞赛"} {text}'
    lines.append('竞赛 成都球队主场进球夺冠比赛联赛教练球员')    # line 61
    lines.append('火灾 成都球队主场进球夺冠比赛联赛教练球员。')  # line 62: the same text, other label
    lines.append('罕见 上海某地发现罕见现象')                       # lines 63-64: a rare label
    lines.append('罕见 杭州某地又现罕见现象')
    file = tmp_path / 'crafted.txt'
    file.write_text('\n'.join(lines) + '\n', encoding='utf-8')
    return str(file), flipped, [61, 62]


def test_audit_finds_flipped_labels_near_duplicates_and_rare_labels(tmp_path):
    file, flipped, pair = crafted_file(tmp_path)
    output = io.StringIO()
    out = tmp_path / 'audit.json'
    with contextlib.redirect_stdout(output):
        report = main.main(['audit', file, '--folds', '4', '--out', str(out), '--top', '8'])
    assert path.read_json(str(out)) == json.loads(json.dumps(report, ensure_ascii=False))
    ranked = [row['line'] for row in report['flagged']]
    assert set(flipped) <= set(ranked[:8]), ranked  # the flipped lines rank near the top
    for number in flipped:
        row = report['flagged'][ranked.index(number)]
        assert row['reasons'][0] == 'label issue (cleanlab)' and any(r.startswith('doubted: ') for r in row['reasons'])
    for number, other in (pair, pair[::-1]):
        reasons = report['flagged'][ranked.index(number)]['reasons']
        assert any(r.startswith(f'near-duplicate of line {other} (cosine ') for r in reasons)
    assert [row['label'] for row in report['rare_labels']] == ['罕见']
    assert report['rare_labels'][0]['lines'] == 2
    qualities = [row['quality'] for row in report['flagged']]
    assert qualities == sorted(qualities)
    text = output.getvalue()
    assert f'flagged lines: {len(ranked)} (' in text and '罕见: 2 lines' in text
    assert f'... {len(ranked) - 8} more' in text or len(ranked) <= 8


def test_audit_errors_are_one_line(tmp_path):
    bad = tmp_path / 'bad.txt'
    bad.write_text('a text\nno-space-here\n', encoding='utf-8')
    with pytest.raises(config.InputError, match=r'bad.txt:2'):
        audit.main([str(bad)])
    small = tmp_path / 'small.txt'
    small.write_text('a one\nb two\n', encoding='utf-8')
    with pytest.raises(config.InputError, match='fewer than --folds'):
        audit.main([str(small)])


def test_an_existing_out_is_kept_unless_overwrite_and_the_input_never_replaced(tmp_path):
    file, _, _ = crafted_file(tmp_path)
    kept = tmp_path / 'kept.json'
    kept.write_text('mine\n', encoding='utf-8')
    with pytest.raises(config.InputError, match='kept.json: already exists; pass --overwrite'):
        audit.main([file, '--folds', '4', '--out', str(kept)])
    with pytest.raises(config.InputError, match='the --input this run reads; choose another --out'):
        audit.main([file, '--folds', '4', '--out', file, '--overwrite'])
    assert kept.read_text(encoding='utf-8') == 'mine\n' and len(loader.read_samples(file)) > 60
    with contextlib.redirect_stdout(io.StringIO()):
        report = audit.main([file, '--folds', '4', '--out', str(kept), '--overwrite'])
    assert path.read_json(str(kept))['rare_labels'] == report['rare_labels']
