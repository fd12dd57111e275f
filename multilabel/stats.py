"""Data report: what a labelled file holds, before training on it.

    python main.py stats --input data/sample-train.txt       # also: python loader.py --stats FILE
    python main.py stats --input ../shared/data/multi-classification-train.txt --maxlen 128
    python main.py stats --input FILE --weights weights      # that model's tokens and maxlen
    python main.py stats --input FILE --json                 # the same numbers as one JSON object

Label frequencies, labels per line, text length percentiles in characters and in tokens
([CLS] and [SEP] included, the unit of --maxlen), the lines longer than maxlen (training
truncates them) and duplicates: lines repeating an earlier line, and texts that appear
with different label sets (contradictory training signal).
"""
import collections
import json
import os

import numpy as np
import pandas as pd
from tqdm import tqdm

import config
import path
from multilabel import model_folder

PERCENTILES = (50, 90, 95, 99, 100)
SHOWN_DUPLICATES = 5  # groups printed of each kind; --json has them all


def data_stats(samples, tokenizer, maxlen, progress=False):
    """The report of `samples` (line i+1 is samples[i]) as a dict of plain numbers and lists."""
    label_counts = collections.Counter(label for s in samples for label in s.labels)
    per_line = collections.Counter(len(s.labels) for s in samples)
    characters = np.array([len(s.text) for s in samples])
    # Shown only when tokenizing takes more than a couple of seconds (large files).
    texts = tqdm([s.text for s in samples], desc='tokenize', unit=' lines', leave=False, delay=2, disable=not progress)
    tokens = np.array([len(tokenizer.encode(text)[0]) for text in texts])

    table = pd.DataFrame({'line': range(1, len(samples) + 1), 'text': [s.text for s in samples],
                          'labels': ['|'.join(s.labels) for s in samples],  # as written on the line
                          'label_set': ['|'.join(sorted(s.labels)) for s in samples]})  # order does not matter
    same = table[table.duplicated(['text', 'label_set'], keep=False)]
    repeated = [{'lines': group.line.tolist(), 'labels': group.labels.iloc[0], 'text': text}
                for (text, _), group in same.groupby(['text', 'label_set'], sort=False)]
    differing = table[table.groupby('text').label_set.transform('nunique') > 1]
    conflicting = [{'text': text, 'lines': dict(zip(group.line.tolist(), group.labels))}
                   for text, group in differing.groupby('text', sort=False)]
    return {
        'lines': len(samples),
        'labels': len(label_counts),
        'label_frequencies': dict(label_counts.most_common()),
        'labels_per_line': {n: per_line[n] for n in sorted(per_line)},
        'characters': percentiles(characters),
        'tokens': percentiles(tokens),
        'maxlen': maxlen,
        'longer_than_maxlen': int((tokens > maxlen).sum()),
        'repeated_lines': sum(len(group['lines']) - 1 for group in repeated),
        'repeated': repeated,
        'conflicting': conflicting,
    }


def percentiles(values):
    return {f'p{p}' if p < 100 else 'max': int(np.ceil(np.percentile(values, p))) for p in PERCENTILES}


def format_stats(stats, name):
    """The report as the text `python main.py stats` prints."""
    lines = stats['lines']

    def share(count):
        return f'{count:>6} {100 * count / lines:5.1f}%'

    def inline(count):
        return f'{count} ({100 * count / lines:.1f}%)'

    out = [f'{name}: {lines} lines, {stats["labels"]} labels', '', 'label frequencies (lines with the label):']
    out += [f'  {share(count)}  {label}' for label, count in stats['label_frequencies'].items()]
    out += ['', 'labels per line:']
    out += [f'  {share(count)}  {n} label{"s" if n > 1 else ""}' for n, count in stats['labels_per_line'].items()]
    out += ['', 'text length   ' + ''.join(f'{key:>7}' for key in stats['characters'])]
    for unit in ('characters', 'tokens'):
        out.append(f'  {unit:<12}' + ''.join(f'{value:>7}' for value in stats[unit].values()))
    out += ['  (tokens count [CLS] and [SEP], like --maxlen)', '',
            f'longer than maxlen {stats["maxlen"]} tokens (truncated in training): '
            f'{inline(stats["longer_than_maxlen"])}',
            f'repeated lines (same labels and text as an earlier line): {inline(stats["repeated_lines"])}']
    for group in stats['repeated'][:SHOWN_DUPLICATES]:
        out.append(f'  lines {", ".join(map(str, group["lines"]))}: {group["labels"]} {group["text"]}')
    out.append(f'texts with different label sets on different lines: {len(stats["conflicting"])}')
    for group in stats['conflicting'][:SHOWN_DUPLICATES]:
        out.append(f'  {group["text"]}')
        out += [f'    line {number}: {labels}' for number, labels in group['lines'].items()]
    return '\n'.join(out)


def parse_args(argv=None):
    parser = config.ArgumentParser(description='Data report of a labelled file: labels, lengths, duplicates.')
    config.add_input_file_flag(parser)
    parser.add_argument('--weights', type=config.folder, metavar='DIR',
                        help="a trained model folder: lengths in its vocabulary's tokens, against its maxlen")
    vocab = os.path.join(path.pretrained_dir(config.DEFAULTS.model_size), path.VOCAB_NAME)
    parser.add_argument('--vocab', help=f'vocabulary for the token lengths (default: that of --weights, else {vocab})')
    parser.add_argument('--json', action='store_true', help='print the report as one JSON object')
    config.add_flags(parser, 'maxlen')
    parser.set_defaults(maxlen=None)  # the --weights model's own, else config's
    args = parser.parse_args(argv)
    config.take_input_file(parser, args)
    if not args.vocab:
        args.vocab = os.path.join(args.weights, path.VOCAB_NAME) if args.weights else vocab
    return args


def main(argv=None):
    args = parse_args(argv)
    import loader  # bert4keras' tokenizer module starts TensorFlow: imported on use, so --help answers at once
    if args.weights and args.maxlen is None:
        args.maxlen = model_folder.read(args.weights)['maxlen']
    args.maxlen = args.maxlen or config.DEFAULTS.maxlen
    if not os.path.isfile(args.vocab):
        raise config.InputError(f'{args.vocab}: no such vocabulary file')
    stats = data_stats(loader.read_samples(args.file), loader.load_tokenizer(args.vocab), args.maxlen,
                       progress=config.interactive())
    print(json.dumps(stats, ensure_ascii=False, indent=1) if args.json else format_stats(stats, args.file))
    return stats


if __name__ == '__main__':
    config.run_main(main)
