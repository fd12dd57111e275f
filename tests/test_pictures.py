"""What a person looks at: training history, TensorBoard logs, the evaluation report, the figures and the fonts."""
import contextlib
import csv
import glob
import io
import os
import re
import subprocess
import sys
import warnings

import numpy as np
import pytest

import evaluate
from multilabel import history
import path
from multilabel import plot
from multilabel import report as report_lib
from conftest import ROOT

FIGURES = ('training.png', 'f1_by_label.png', 'threshold.png', 'confused_pairs.png', 'reliability.png', 'model.png')


@pytest.fixture(scope='module')
def evaluated(trained, tmp_path_factory):
    """(weights folder, report folder, accuracy evaluate.main returned) on the bundled test file,
    with one threshold for every label (the curve's points are single thresholds)."""
    weights, _ = trained
    report_dir = str(tmp_path_factory.mktemp('report'))
    with contextlib.redirect_stdout(io.StringIO()):
        accuracy = evaluate.main(['--weights', weights, '--report-dir', report_dir, '--threshold', '0.5'])
    return weights, report_dir, accuracy


def sample_labels():
    import loader
    return loader.label_list(loader.read_samples(path.SAMPLE_TRAIN) + loader.read_samples(path.SAMPLE_TEST))


def test_history_has_one_row_per_epoch_with_the_printed_accuracy_and_the_learning_rates(trained):
    weights, output = trained
    rows = history.read_history(os.path.join(weights, path.HISTORY_NAME))
    printed = [float(acc) for acc in re.findall(r' acc: (\d\.\d{4}) best', output, re.M)]
    assert [row['epoch'] for row in rows] == [1, 2, 3]
    assert [round(row['val_exact_match'], 4) for row in rows] == printed
    assert all(np.isfinite(row['loss']) and row['loss'] > 0 for row in rows)
    assert {(row['encoder_lr'], row['head_lr']) for row in rows} == {(1e-3, 1e-2)}  # the fixture's flags


def test_tensorboard_event_files_hold_loss_exact_match_and_learning_rates(trained):
    import tensorflow as tf
    weights, _ = trained
    tags = {}
    for split in ('train', 'validation'):
        files = glob.glob(os.path.join(weights, path.TENSORBOARD_DIR, split, 'events.out.tfevents.*'))
        assert files, split
        tags[split] = {value.tag for f in files for event in tf.compat.v1.train.summary_iterator(f)
                       for value in event.summary.value}
    assert {'epoch_loss', 'epoch_encoder_lr', 'epoch_head_lr'} <= tags['train']
    assert 'epoch_exact_match' in tags['validation']


def test_evaluate_writes_the_report_as_json_and_csv(evaluated):
    weights, report_dir, accuracy = evaluated
    labels = path.read_json(os.path.join(weights, path.LABELS_NAME))
    report = path.read_json(os.path.join(report_dir, path.REPORT_NAME))
    assert report['exact_match'] == pytest.approx(accuracy)
    assert report['samples'] == 90 and report['threshold'] == 0.5 and report['top1_fallback'] is True
    assert [row['label'] for row in report['labels']] == labels
    assert {row['threshold'] for row in report['labels']} == {0.5}
    assert sum(row['support'] for row in report['labels']) == report['averages']['micro avg']['support']
    with open(os.path.join(report_dir, path.REPORT_CSV_NAME), newline='', encoding='utf-8') as f:
        rows = list(csv.DictReader(f))
    assert [row['label'] for row in rows] == labels + list(report_lib.AVERAGES)
    for row, expected in zip(rows, report['labels'] + list(report['averages'].values())):
        assert float(row['f1']) == pytest.approx(expected['f1']) and int(row['support']) == expected['support']
    # The curve at the model's own threshold is the report's micro average and exact match.
    [point] = [p for p in report['threshold_curve'] if p['threshold'] == report['threshold']]
    micro = report['averages']['micro avg']
    assert (point['precision'], point['recall'], point['f1']) == pytest.approx(
        (micro['precision'], micro['recall'], micro['f1']))
    assert point['exact_match'] == pytest.approx(accuracy)
    recalls = [p['recall'] for p in report['threshold_curve']]
    assert recalls == sorted(recalls, reverse=True)  # a higher threshold never finds more labels


def test_the_report_of_a_model_with_tuned_thresholds_gives_each_labels_own(trained, tmp_path):
    weights, _ = trained
    with contextlib.redirect_stdout(io.StringIO()):
        evaluate.main(['--weights', weights, '--report-dir', str(tmp_path)])
    report = path.read_json(str(tmp_path / path.REPORT_NAME))
    tuned = path.read_json(os.path.join(weights, path.THRESHOLDS_NAME))
    assert report['threshold'] == 'per-label'
    assert {row['label']: row['threshold'] for row in report['labels']} == tuned
    with open(tmp_path / path.REPORT_CSV_NAME, newline='', encoding='utf-8') as f:
        assert {row['label']: float(row['threshold']) for row in csv.DictReader(f) if row['threshold']} == tuned


def test_confused_pairs_count_a_missed_true_label_against_each_wrong_prediction():
    labels = ['a', 'b', 'c']
    targets = np.array([[1, 0, 0], [1, 0, 0], [1, 1, 0], [0, 0, 1]])
    predictions = np.array([[0, 1, 0], [0, 1, 1], [1, 0, 1], [0, 0, 1]])
    pairs = report_lib.confused_pairs(labels, targets, predictions)
    # a->b twice (rows 0, 1), a->c once (row 1), b->c once (row 2); row 3 is right.
    assert pairs == [{'true': 'a', 'predicted': 'b', 'count': 2}, {'true': 'a', 'predicted': 'c', 'count': 1},
                     {'true': 'b', 'predicted': 'c', 'count': 1}]
    assert report_lib.confused_pairs(labels, targets, targets) == []


def test_a_font_with_every_label_glyph_is_found():
    from fontTools.ttLib import TTFont
    from matplotlib.ft2font import FT2Font
    text = ''.join(sample_labels())
    entry = plot.cjk_font(text)
    assert entry is not None, 'no CJK font: run `make setup` as root (apt-get install fonts-wqy-microhei)'
    index = getattr(entry, 'index', 0)
    with TTFont(entry.fname, fontNumber=index) as font:
        cmap = font.getBestCmap()
    characters = set(text)
    assert all(ord(c) in cmap for c in characters)
    assert len({cmap[ord(c)] for c in characters}) == len(characters)  # a glyph each, not one box for all
    face = FT2Font(entry.fname, face_index=index)
    assert all(face.get_char_index(ord(c)) for c in characters)  # FreeType, as matplotlib draws, agrees


def test_a_box_only_fallback_font_is_not_taken_for_the_labels():
    import matplotlib
    last_resort = os.path.join(matplotlib.get_data_path(), 'fonts', 'ttf', 'LastResortHE-Regular.ttf')
    if not os.path.exists(last_resort):
        pytest.skip('this matplotlib ships no Last Resort font')
    cmap = plot.font_glyphs(last_resort)
    assert ord('死') in cmap and ord('亡') in cmap  # it "covers" the characters ...
    assert not plot.has_glyphs(last_resort, '死亡')  # ... with one box glyph


def draw_labels(labels):
    """Draw the labels as tick labels; the warnings matplotlib gave."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        figure = plot.figure(4, 4)
        axes = figure.subplots()
        axes.barh(range(len(labels)), range(len(labels)))
        axes.set_yticks(range(len(labels)), labels)
        figure.savefig(io.BytesIO(), format='png')
    return [str(w.message) for w in caught]


def test_labels_drawn_with_the_chosen_font_miss_no_glyph(monkeypatch):
    import matplotlib
    labels = sample_labels()
    monkeypatch.setitem(matplotlib.rcParams, 'font.sans-serif', ['DejaVu Sans'])
    assert any('missing from font' in message for message in draw_labels(labels))  # the check below can fail
    assert plot.use_font_for(labels) is not None
    assert not [message for message in draw_labels(labels) if 'missing from font' in message]


def test_plot_draws_every_figure_as_a_png(evaluated, tmp_path):
    from PIL import Image
    weights, report_dir, _ = evaluated
    out = tmp_path / 'plots'
    result = subprocess.run([sys.executable, 'main.py', 'plot', '--weights', weights, '--report-dir', report_dir,
                             '--out', str(out), '--diagram'], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert 'missing from font' not in result.stderr
    assert sorted(os.listdir(out)) == sorted(FIGURES)  # no temporary file left
    for name in FIGURES:
        with Image.open(out / name) as image:
            image.verify()  # a whole PNG
        with Image.open(out / name) as image:
            assert image.format == 'PNG'
            width, height = image.size
            assert 300 <= width <= 4000 and 200 <= height <= 6000, (name, image.size)
            colours = image.convert('L').getcolors(maxcolors=256 * 256)
            assert len(colours) > 10, name  # something is drawn, not a blank canvas


def test_plot_with_nothing_to_draw_says_what_to_run(tmp_path):
    result = subprocess.run([sys.executable, 'main.py', 'plot', '--weights', str(tmp_path)], cwd=ROOT,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert 'nothing to draw: run train.py and evaluate.py first' in result.stderr
