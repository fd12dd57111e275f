"""Pictures of what the model learned, drawn to PNG files without a display.

    python main.py plot                    # weights/history.csv and weights/report.json -> weights/plots/*.png
    python main.py plot --diagram          # also the model diagram (needs Graphviz's `dot`)
    python main.py plot --weights W --report-dir R --out docs

Draws whatever its inputs exist for:

    training.png        loss, validation exact match and learning rates per epoch (history.csv, from train.py)
    f1_by_label.png     F1 of every label, sorted by support (report.json, from evaluate.py)
    threshold.png       micro precision, recall, F1 and exact match against the threshold (report.json)
    confused_pairs.png  the most frequent (true label missed, other label predicted) pairs (report.json)
    reliability.png     fraction of true labels against the score, per score bin, and the bins' counts
                        (report.json's calibration table, when there is one)
    model.png           keras.utils.plot_model of the classifier, only with --diagram

Chinese labels need a font with their glyphs; `cjk_font` finds one among the installed fonts
(`make setup` installs fonts-wqy-microhei on Debian) and warns when none has them.
"""
import functools
import os
import shutil
import sys

import matplotlib
import pandas as pd
from fontTools.ttLib import TTFont
from matplotlib import font_manager
from matplotlib.figure import Figure

import config
import path
from multilabel import model_folder

DPI = 100


@functools.lru_cache(maxsize=None)
def font_glyphs(font_file, index=0):
    """{code point: glyph name} of a font file (face `index` of a .ttc)."""
    with TTFont(font_file, fontNumber=index, lazy=True) as font:
        return dict(font.getBestCmap() or {})


def has_glyphs(font_file, text, index=0):
    """Whether the font draws every character of `text` with a glyph of its own.

    "Of its own": a fallback font such as matplotlib's bundled Last Resort maps whole Unicode
    blocks to one box glyph; it covers the characters but shows boxes.
    """
    needed = {ord(c) for c in text if not c.isspace()}
    glyphs = font_glyphs(font_file, index)
    return needed <= glyphs.keys() and len({glyphs[c] for c in needed}) == len(needed)


def cjk_font(text):
    """The matplotlib FontEntry of an installed font with a glyph for every character of `text`, or None.

    A font installed after matplotlib built its font cache is not in the cache, so the system's
    font folders are searched as well.
    """
    characters = ''.join(sorted(set(text)))
    default = os.path.realpath(font_manager.findfont(font_manager.FontProperties()))

    def covering(entries):
        # matplotlib's default font when it is enough, then regular faces (bold or italic look odd on axes).
        order = sorted(entries, key=lambda e: (os.path.realpath(e.fname) != default, e.style != 'normal',
                                               e.weight != 400, e.name))
        for entry in order:
            if has_glyphs(entry.fname, characters, getattr(entry, 'index', 0)):
                return entry
        return None

    entry = covering(font_manager.fontManager.ttflist)
    if entry is None:
        known = {e.fname for e in font_manager.fontManager.ttflist}
        for font_file in font_manager.findSystemFonts():
            if font_file not in known:
                try:
                    font_manager.fontManager.addfont(font_file)
                except (RuntimeError, OSError, ValueError):  # a font file FreeType cannot read
                    pass
        entry = covering(font_manager.fontManager.ttflist)
    return entry


def use_font_for(texts):
    """Make matplotlib draw `texts` with a font that has their glyphs; warn when there is none."""
    text = ''.join(texts)
    entry = cjk_font(text)
    if entry is None:
        print('warning: no installed font has the glyphs of the labels, so they will show as boxes; install a '
              'CJK font (Debian/Ubuntu: apt-get install fonts-wqy-microhei, or run `make setup` as root)',
              file=sys.stderr)
        return None
    # The chosen font first; matplotlib falls back glyph by glyph to the rest.
    matplotlib.rcParams['font.family'] = 'sans-serif'
    matplotlib.rcParams['font.sans-serif'] = [entry.name] + [name for name in matplotlib.rcParams['font.sans-serif']
                                                             if name != entry.name]
    return entry


def save(figure, png_path):
    figure.tight_layout()
    path.atomic_write(png_path, lambda temporary: figure.savefig(temporary, format='png', dpi=DPI))
    print(f'wrote {png_path}')
    return png_path


def figure(width, height):
    # A bare Figure renders with Agg and needs no display and no pyplot state.
    return Figure(figsize=(width, height))


def plot_training(history, png_path):
    """Loss, validation exact match (best epoch marked) and learning rates per epoch of a
    history.csv table (pandas.read_csv)."""
    fig = figure(13, 3.6)
    loss_axes, match_axes, lr_axes = fig.subplots(1, 3)
    loss_axes.plot(history.epoch, history.loss, marker='.')
    loss_axes.set(title='training loss', xlabel='epoch', ylabel='loss (train.py --loss)')
    best = history.val_exact_match.idxmax()  # the row of the first best epoch, the one saved
    epoch, score = history.epoch[best], history.val_exact_match[best]
    match_axes.plot(history.epoch, history.val_exact_match, marker='.', color='tab:green')
    match_axes.plot([epoch], [score], marker='*', markersize=14, color='tab:red', linestyle='',
                    label=f'best {score:.4f} (epoch {epoch})')
    match_axes.set(title='validation exact match (EMA weights)', xlabel='epoch', ylim=(0, 1.02))
    match_axes.legend(loc='lower right')
    lr_axes.plot(history.epoch, history.encoder_lr, marker='.', label='encoder')
    lr_axes.plot(history.epoch, history.head_lr, marker='.', label='head')
    lr_axes.set(title='learning rate', xlabel='epoch', yscale='log')
    lr_axes.legend()
    for axes in (loss_axes, match_axes, lr_axes):
        axes.grid(alpha=0.3)
        axes.xaxis.get_major_locator().set_params(integer=True)
    return save(fig, png_path)


def plot_f1_by_label(report, png_path):
    """One horizontal bar per label, the most frequent label on top; support in the tick label."""
    rows = sorted(report['labels'], key=lambda row: -row['support'])  # stable: ties keep the label order
    fig = figure(8, 1.2 + 0.32 * len(rows))
    axes = fig.subplots()
    positions = range(len(rows))[::-1]
    axes.barh(positions, [row['f1'] for row in rows], color='tab:blue')
    axes.set_yticks(positions, [f'{row["label"]} (n={row["support"]})' for row in rows])
    for y, row in zip(positions, rows):
        axes.text(row['f1'] + 0.01, y, f'{row["f1"]:.2f}', va='center', fontsize=8)
    micro = report['averages']['micro avg']['f1']
    axes.axvline(micro, color='tab:red', linestyle='--')
    axes.set(xlim=(0, 1.08), xlabel=f'F1 (dashed: micro F1 {micro:.4f})',
             title=f'F1 by label, sorted by support ({report["samples"]} samples, threshold: {report["threshold"]})')
    axes.grid(axis='x', alpha=0.3)
    return save(fig, png_path)


def plot_threshold(report, png_path):
    """Micro precision, recall, F1 and exact match over the threshold; the model's threshold marked."""
    curve = report['threshold_curve']
    thresholds = [point['threshold'] for point in curve]
    fig = figure(7, 4.2)
    axes = fig.subplots()
    for key, style in (('precision', '-'), ('recall', '-'), ('f1', '-'), ('exact_match', '--')):
        axes.plot(thresholds, [point[key] for point in curve], style, label=key.replace('_', ' '))
    if report['threshold'] != 'per-label':  # tuned per-label thresholds have no single point to mark
        axes.axvline(report['threshold'], color='grey', linestyle=':', label=f'threshold {report["threshold"]}')
    rule = 'with top-1 fallback' if report['top1_fallback'] else 'no fallback'
    axes.set(xlabel='threshold', ylabel='score', xlim=(0, 1), ylim=(0, 1.02),
             title=f'micro precision / recall vs threshold ({rule})')
    axes.legend(loc='lower right')
    axes.grid(alpha=0.3)
    return save(fig, png_path)


def plot_confused_pairs(report, png_path):
    """The most frequent (true label missed, other label predicted instead) pairs as bars."""
    pairs = report['confused_pairs']
    fig = figure(8, 1.6 + 0.35 * max(len(pairs), 1))
    axes = fig.subplots()
    if pairs:
        positions = range(len(pairs))[::-1]
        axes.barh(positions, [pair['count'] for pair in pairs], color='tab:orange')
        axes.set_yticks(positions, [f'{pair["true"]} → {pair["predicted"]}' for pair in pairs])
        axes.xaxis.get_major_locator().set_params(integer=True)
    else:
        axes.text(0.5, 0.5, 'no confusions: no sample had a label missed and another predicted',
                  ha='center', va='center', transform=axes.transAxes)
        axes.set_yticks([])
    axes.set(xlabel='samples', title='most confused label pairs (true label missed → label predicted instead)')
    axes.grid(axis='x', alpha=0.3)
    return save(fig, png_path)


def plot_reliability(report, png_path):
    """Reliability diagram of report.json's calibration table: per score bin, the fraction of
    (text, label) pairs that are true labels against the bin's mean score (the diagonal is a
    calibrated model), and beside it the pairs per bin on a log scale (most are near 0)."""
    calibration = report['calibration']
    rows = [row for row in calibration['reliability'] if row['count']]
    fig = figure(11, 4.4)
    diagram_axes, count_axes = fig.subplots(1, 2, gridspec_kw={'width_ratios': [3, 2]})
    lows = [row['low'] for row in rows]
    widths = [row['high'] - row['low'] for row in rows]
    diagram_axes.bar(lows, [row['fraction_true'] for row in rows], width=widths, align='edge', alpha=0.35,
                     edgecolor='tab:blue', label='fraction true, per bin')
    diagram_axes.plot([row['mean_score'] for row in rows], [row['fraction_true'] for row in rows], marker='o',
                      color='tab:blue', label='at the bin\'s mean score')
    diagram_axes.plot([0, 1], [0, 1], linestyle='--', color='grey', label='calibrated')
    diagram_axes.set(xlim=(0, 1), ylim=(0, 1.02), xlabel='sigmoid score', ylabel='fraction of true labels',
                     title=f'reliability: ECE {calibration["ece"]:.4f}, '
                           f'{calibration["ece_above_floor"]:.4f} over scores >= {calibration["floor"]:g}')
    diagram_axes.legend(loc='upper left')
    count_axes.bar(lows, [row['count'] for row in rows], width=widths, align='edge', color='tab:grey')
    count_axes.set(xlim=(0, 1), yscale='log', xlabel='sigmoid score',
                   title=f'(text, label) pairs per bin ({calibration["pairs"]} in all)')
    for axes in (diagram_axes, count_axes):
        axes.grid(alpha=0.3)
    return save(fig, png_path)


def plot_diagram(weights_dir, png_path):
    """keras.utils.plot_model of the classifier of a weights folder (built from its config; no weights needed)."""
    if shutil.which('dot') is None:
        raise config.InputError("the model diagram needs Graphviz's `dot` (Debian/Ubuntu: apt-get install graphviz, "
                                'or run `make setup` as root)')
    import model as model_lib  # only the diagram needs TensorFlow: the curves draw without starting it
    from multilabel.compat import keras
    labels = model_folder.read_labels(weights_dir)
    classifier = model_lib.build_classifier(model_folder.config_path(weights_dir), len(labels))
    path.atomic_write(png_path, lambda temporary: keras.utils.plot_model(
        classifier, to_file=temporary, show_shapes=True, show_layer_names=True, dpi=60))
    print(f'wrote {png_path}')
    return png_path


def parse_args(argv=None):
    parser = config.ArgumentParser(description='Draw training curves, evaluation figures and the model diagram.')
    parser.add_argument('--weights', default=path.WEIGHTS_DIR, type=config.folder,
                        help=f'trained model folder with {path.HISTORY_NAME} (default: %(default)s)')
    parser.add_argument('--report-dir', type=config.folder, help=f'folder with evaluate.py\'s {path.REPORT_NAME} (default: --weights)')
    parser.add_argument('--out', type=config.folder, help=f'folder for the PNG files (default: WEIGHTS/{path.PLOTS_DIR})')
    parser.add_argument('--diagram', action='store_true', help='also draw the model diagram (needs graphviz)')
    args = parser.parse_args(argv)
    args.report_dir = args.report_dir or args.weights
    args.out = args.out or os.path.join(args.weights, path.PLOTS_DIR)
    return args


def main(argv=None):
    args = parse_args(argv)
    history_path = os.path.join(args.weights, path.HISTORY_NAME)
    report_path = os.path.join(args.report_dir, path.REPORT_NAME)
    written = []
    if os.path.exists(history_path):
        written.append(plot_training(pd.read_csv(history_path), os.path.join(args.out, 'training.png')))
    else:
        print(f'no {history_path} (train.py writes it): no training curves', file=sys.stderr)
    if os.path.exists(report_path):
        report = path.read_json(report_path)
        use_font_for([row['label'] for row in report['labels']])
        written.append(plot_f1_by_label(report, os.path.join(args.out, 'f1_by_label.png')))
        written.append(plot_threshold(report, os.path.join(args.out, 'threshold.png')))
        written.append(plot_confused_pairs(report, os.path.join(args.out, 'confused_pairs.png')))
        if 'calibration' in report:  # a report written before it had the table has no diagram
            written.append(plot_reliability(report, os.path.join(args.out, 'reliability.png')))
    else:
        print(f'no {report_path} (evaluate.py writes it): no evaluation figures', file=sys.stderr)
    if args.diagram:
        written.append(plot_diagram(args.weights, os.path.join(args.out, 'model.png')))
    if not written:
        raise config.InputError('nothing to draw: run train.py and evaluate.py first, or pass --weights/--report-dir')
    return written


if __name__ == '__main__':
    config.run_main(main)
