"""Exact match against training time: rows of bench/results/accuracy.json as a table and a PNG.

    python bench/curve.py --rows curve_30min headline_90min curve_150min --out docs/accuracy_curve.png
    python bench/curve.py --rows a_90 a_150 --label "recipe A" --rows b_30 b_90 --label "recipe B" --out c.png

Each --rows draws one line, named by the --label in the same place. Each row's minutes are its
train_seconds (pretraining, fine-tuning and anything else the row counts, wall clock on the
machine it names) and its CPU minutes; the TF-IDF peer and, with
--reference, a figure reported elsewhere are drawn as horizontal lines.
"""
import argparse
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [ROOT, os.path.dirname(os.path.abspath(__file__))]

import accuracy  # noqa: E402  (beside this script)
import config  # noqa: E402
import path  # noqa: E402


DEFAULT_LABEL = 'self-pretrained RoFormer-v2 (this recipe)'


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--rows', nargs='+', action='append', required=True,
                        help='system names in the results, in time order: one line of the plot (repeat for more lines)')
    parser.add_argument('--label', action='append', default=[],
                        help='the legend text of each --rows line, in order (default: "' + DEFAULT_LABEL + '")')
    parser.add_argument('--peer', default='tfidf_linearsvc', help='the peer row (default: %(default)s)')
    parser.add_argument('--reference', type=float, help='an exact match reported elsewhere, drawn as a line')
    parser.add_argument('--reference-label', default='official RoFormer-v2 base (reported)',
                        help='its legend text (default: %(default)s)')
    parser.add_argument('--results', default=accuracy.RESULTS, help='results file (default: %(default)s)')
    parser.add_argument('--out', required=True, help='PNG to write')
    args = parser.parse_args(argv)
    if len(args.label) > len(args.rows):
        parser.error(f'--label: {len(args.label)} given for {len(args.rows)} --rows lines')
    args.label += [DEFAULT_LABEL] * (len(args.rows) - len(args.label))
    return args


def cpu_minutes(row):
    """The row's CPU minutes, or None when a stage's CPU seconds were not recorded (a reused
    pretraining, or a stage continued from a cut run)."""
    if any(f'{stage}_seconds' in row and f'{stage}_cpu_seconds' not in row for stage in ('pretrain', 'fine_tune')):
        return None
    return (row.get('pretrain_cpu_seconds', 0) + row.get('fine_tune_cpu_seconds', 0)) / 60


def main(argv=None):
    args = parse_args(argv)
    import matplotlib  # here, so the Agg backend (no display) is chosen before pyplot loads
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    systems = path.read_json(args.results)['systems']
    names = [name for line in args.rows for name in line]
    missing = [name for name in names + [args.peer] if name not in systems]
    if missing:
        raise config.InputError(f'{args.results}: no rows {", ".join(missing)}')
    print(f'{"system":<34}{"minutes":>9}{"CPU min":>9}{"exact":>8}{"micro":>8}{"macro":>8}')
    for name in names:
        row = systems[name]
        cpu = cpu_minutes(row)
        print(f'{name:<34}{row["train_seconds"] / 60:>9.1f}{"-" if cpu is None else f"{cpu:.1f}":>9}{row["exact_match"]:>8.4f}'
              f'{row["micro_f1"]:>8.4f}{row["macro_f1"]:>8.4f}')
    figure, axes = plt.subplots(figsize=(6.4, 4.0), dpi=100)
    points = [(row['train_seconds'] / 60, row['exact_match']) for line in args.rows for row in map(systems.get, line)]
    for line, label in zip(args.rows, args.label):
        rows = [systems[name] for name in line]
        minutes = [row['train_seconds'] / 60 for row in rows]
        exact = [row['exact_match'] for row in rows]
        axes.plot(minutes, exact, 'o-', label=label)
        for x, y in zip(minutes, exact):
            # A point with a higher one close above it takes its figure below, so the two do not overlap.
            below = any(abs(x - px) < 6 and 0 < py - y < 0.004 for px, py in points)
            axes.annotate(f'{y:.4f}', (x, y), textcoords='offset points', xytext=(0, -13 if below else 7),
                          ha='center', fontsize=8)
    axes.axhline(systems[args.peer]['exact_match'], color='grey', linestyle='--', label='TF-IDF + LinearSVC')
    if args.reference:
        axes.axhline(args.reference, color='tab:green', linestyle=':', label=args.reference_label)
    axes.set_xlabel('training minutes on 2 CPU cores (pretraining + fine-tuning)')
    axes.set_ylabel('test exact match')
    axes.grid(alpha=0.3)
    axes.legend(loc='best', fontsize=8)
    figure.tight_layout()
    path.atomic_write(args.out, lambda temporary: figure.savefig(temporary))
    print(f'written: {args.out}')


if __name__ == '__main__':
    config.run_main(main)
