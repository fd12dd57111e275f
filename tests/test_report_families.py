"""The evaluation report's per-parent summary and calibration figures, and the reliability diagram."""
import contextlib
import csv
import io
import os

import numpy as np
import pytest

from multilabel import calibration
import evaluate
import path
from multilabel import plot
from multilabel import report as report_lib

LABELS = ['人生-死亡', '人生-结婚', '司法行为-拘捕', '其他']


def test_parents_are_the_part_before_the_first_dash():
    assert [report_lib.parent(label) for label in LABELS] == ['人生', '人生', '司法行为', '其他']
    assert report_lib.parent('财经/交易-涨停-次日') == '财经/交易'


def test_the_parent_summary_by_hand():
    targets = np.array([[1, 0, 0, 0],    # 人生 only, right
                        [1, 1, 0, 0],    # 人生 only, one of two found
                        [0, 0, 1, 0],    # 司法行为 only, wrong label predicted beside it
                        [1, 0, 1, 0],    # two parents: in no parent's exact match
                        [0, 0, 0, 1]])   # 其他 only, missed
    predictions = np.array([[1, 0, 0, 0],
                            [1, 0, 0, 0],
                            [0, 1, 1, 0],
                            [1, 0, 1, 0],
                            [1, 0, 0, 0]])
    rows = {row['parent']: row for row in report_lib.parent_summary(LABELS, targets, predictions)}
    assert list(rows) == ['人生', '司法行为', '其他']
    life = rows['人生']  # 人生 columns: 4 true, 5 predicted, 3 hits
    assert (life['labels'], life['support'], life['texts']) == (2, 4, 2)
    assert life['precision'] == pytest.approx(3 / 5) and life['recall'] == pytest.approx(3 / 4)
    assert life['f1'] == pytest.approx(2 * (3 / 5) * (3 / 4) / (3 / 5 + 3 / 4))
    assert life['exact_match'] == 0.5
    law = rows['司法行为']
    assert (law['precision'], law['recall'], law['support'], law['texts'], law['exact_match']) == (1, 1, 2, 1, 0)
    other = rows['其他']
    assert (other['precision'], other['recall'], other['f1'], other['texts'], other['exact_match']) == (0, 0, 0, 1, 0)
    none = report_lib.parent_summary(LABELS, targets[:1], predictions[:1])
    assert [row['exact_match'] for row in none] == [1.0, None, None]  # no text of its own


@pytest.fixture(scope='module')
def report_dir(trained, tmp_path_factory):
    weights, _ = trained
    folder = str(tmp_path_factory.mktemp('report'))
    with contextlib.redirect_stdout(io.StringIO()):
        evaluate.main(['--weights', weights, '--report-dir', folder, '--threshold', '0.5', '--precision', 'float32'])
    return folder


def test_evaluate_writes_parents_and_calibration_beside_the_old_keys(report_dir):
    report = path.read_json(os.path.join(report_dir, path.REPORT_NAME))
    assert {'samples', 'threshold', 'top1_fallback', 'exact_match', 'labels', 'averages', 'threshold_curve',
            'confused_pairs', 'parents', 'calibration'} == set(report)
    labels = [row['label'] for row in report['labels']]
    assert [row['parent'] for row in report['parents']] == list(dict.fromkeys(map(report_lib.parent, labels)))
    assert sum(row['labels'] for row in report['parents']) == len(labels)
    assert sum(row['support'] for row in report['parents']) == report['averages']['micro avg']['support']
    with open(os.path.join(report_dir, report_lib.PARENTS_CSV_NAME), newline='', encoding='utf-8') as f:
        rows = list(csv.DictReader(f))
    assert [row['parent'] for row in rows] == [row['parent'] for row in report['parents']]
    assert list(rows[0]) == list(report_lib.PARENT_COLUMNS)
    figures = report['calibration']
    assert figures['pairs'] == report['samples'] * len(labels)
    assert sum(row['count'] for row in figures['reliability']) == figures['pairs']
    assert 0 <= figures['ece'] <= 1 and 0 <= figures['ece_above_floor'] <= 1
    assert figures['ece'] == pytest.approx(calibration.ece_of_table(figures['reliability']))


def test_the_reliability_diagram_is_drawn_from_the_report(report_dir, tmp_path):
    from PIL import Image
    report = path.read_json(os.path.join(report_dir, path.REPORT_NAME))
    png = plot.plot_reliability(report, str(tmp_path / 'reliability.png'))
    with Image.open(png) as image:
        assert image.format == 'PNG' and image.size[0] >= 600
        assert len(image.convert('L').getcolors(maxcolors=256 * 256)) > 10  # something is drawn
    del report['calibration']
    path.write_json(str(tmp_path / 'old' / path.REPORT_NAME), report)
    with contextlib.redirect_stdout(io.StringIO()):
        written = plot.main(['--weights', str(tmp_path / 'old'), '--out', str(tmp_path / 'plots')])
    assert 'reliability.png' not in map(os.path.basename, written)  # an older report: no diagram, no error
