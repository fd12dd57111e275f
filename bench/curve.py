"""Exact match against training time: rows of bench/results/accuracy.json as a table and a PNG.

    python bench/curve.py --rows curve_30min headline_90min curve_150min --out docs/accuracy_curve.png

Each row's minutes are its train_seconds (pretraining, fine-tuning and anything else the row
counts, wall clock on the machine it names) and its CPU minutes; the TF-IDF peer and, with
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


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--rows', nargs='+', required=True, help='system names in the results, in time order')
    parser.add_argument('--peer', default='tfidf_linearsvc', help='the peer row (default: %(default)s)')
    parser.add_argument('--reference', type=float, help='an exact match reported elsewhere, drawn as a line')
    parser.add_argument('--reference-label', default='official RoFormer-v2 base (reported)',
                        help='its legend text (default: %(default)s)')
    parser.add_argument('--results', default=accuracy.RESULTS, help='results file (default: %(default)s)')
    parser.add_argument('--out', required=True, help='PNG to write')
    return parser.parse_args(argv)


def cpu_minutes(row):
    return (row.get('pretrain_cpu_seconds', 0) + row.get('fine_tune_cpu_seconds', 0)) / 60


def main(argv=None):
    args = parse_args(argv)
    import matplotlib  # here, so the Agg backend (no display) is chosen before pyplot loads
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    systems = path.read_json(args.results)['systems']
    missing = [name for name in args.rows + [args.peer] if name not in systems]
    if missing:
        raise config.InputError(f'{args.results}: no rows {", ".join(missing)}')
    rows = [(name, systems[name]) for name in args.rows]
    print(f'{"system":<34}{"minutes":>9}{"CPU min":>9}{"exact":>8}{"micro":>8}{"macro":>8}')
    for name, row in rows:
        print(f'{name:<34}{row["train_seconds"] / 60:>9.1f}{cpu_minutes(row):>9.1f}{row["exact_match"]:>8.4f}'
              f'{row["micro_f1"]:>8.4f}{row["macro_f1"]:>8.4f}')
    figure, axes = plt.subplots(figsize=(6.4, 4.0), dpi=100)
    axes.plot([row['train_seconds'] / 60 for _, row in rows], [row['exact_match'] for _, row in rows], 'o-',
              label='self-pretrained RoFormer-v2 (this recipe)')
    for (name, row) in rows:
        axes.annotate(f'{row["exact_match"]:.4f}', (row['train_seconds'] / 60, row['exact_match']),
                      textcoords='offset points', xytext=(0, 7), ha='center', fontsize=8)
    axes.axhline(systems[args.peer]['exact_match'], color='grey', linestyle='--', label='TF-IDF + LinearSVC')
    if args.reference:
        axes.axhline(args.reference, color='tab:green', linestyle=':', label=args.reference_label)
    axes.set_xlabel('training minutes on 2 CPU cores (pretraining + fine-tuning)')
    axes.set_ylabel('test exact match')
    axes.grid(alpha=0.3)
    axes.legend(loc='lower right', fontsize=8)
    figure.tight_layout()
    path.atomic_write(args.out, lambda temporary: figure.savefig(temporary))
    print(f'written: {args.out}')


if __name__ == '__main__':
    config.run_main(main)
