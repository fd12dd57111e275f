"""Training speed of --group-by-length and --precision mixed_bfloat16 on the real corpus.

    python bench/batching.py --data ../shared/data
    python bench/batching.py --data ../shared/data --max-samples 4000 --groups 0 50 --precisions float32

For each (precision, group) pair: one epoch of pretrain.py (MLM) and one epoch of train.py
(fine-tuning, FGM off) on the first --max-samples training lines, 4 layers / hidden 256, at
maxlen 128; the epoch's seconds from the run's console line, and the share of the batches'
token positions that are padding (from loader.make_dataset itself). The runs follow each
other in this one script, so their ratios are fair on one machine. Prints a table; results
in bench/results/batching.json.
"""
import argparse
import json
import os
import re
import subprocess
import sys
import tempfile

# The modules that start TensorFlow (loader, model, train...) are imported inside the functions
# that use them, so --help answers at once.
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import benchlib  # noqa: E402
import config  # noqa: E402
import path  # noqa: E402

RESULTS = os.path.join(ROOT, 'bench', 'results', 'batching.json')
ARCHITECTURE = ['--layers', '4', '--hidden', '256', '--heads', '4']
EPOCH_LINE = re.compile(r'^Epoch 1/1 - (\d+)s', re.M)


def corpus_token_ids(train_file, max_samples, maxlen):
    """Token ids of the first `max_samples` training texts, as train.py and pretrain.py encode them."""
    import loader
    samples = loader.read_samples(train_file)[:max_samples]
    tokenizer = loader.load_tokenizer(os.path.join(path.pretrained_dir('small'), path.VOCAB_NAME))
    return loader.encode_texts(tokenizer, [s.text for s in samples], maxlen, progress=False)


def padding_share(token_ids, batch_size, group):
    """Share of the padded token positions of one shuffled epoch that are padding."""
    import loader
    batches = loader.make_dataset(token_ids, [[0.0]] * len(token_ids), batch_size, shuffle=True,
                                  seed=config.DEFAULTS.seed, group_by_length=group)
    padded = sum(int(ids.shape[0] * ids.shape[1]) for (ids, _), _ in batches)
    return 1 - sum(map(len, token_ids)) / padded


def epoch_seconds(command):
    """Run one epoch (`command` + flags) and return the seconds of its console line."""
    result = subprocess.run([sys.executable] + command, cwd=ROOT, capture_output=True, text=True,
                            env=dict(os.environ, PYTHONUNBUFFERED='1'))
    found = EPOCH_LINE.search(result.stdout)
    if result.returncode or not found:
        sys.exit(f'{" ".join(command)} failed:\n{result.stdout[-2000:]}{result.stderr[-2000:]}')
    return int(found.group(1))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--data', default=os.path.join(ROOT, '..', 'shared', 'data'),
                        help='folder of multi-classification-train.txt (default: %(default)s)')
    parser.add_argument('--max-samples', type=int, default=4000, help='training lines used (default: %(default)s)')
    parser.add_argument('--maxlen', type=int, default=128, help='(default: %(default)s)')
    parser.add_argument('--groups', type=int, nargs='+', default=[0, 50],
                        help='--group-by-length values (default: %(default)s)')
    parser.add_argument('--precisions', nargs='+', default=['float32', 'mixed_bfloat16'],
                        choices=config.CHOICES['precision'], help='(default: %(default)s)')
    parser.add_argument('--out', default=RESULTS, help='results JSON (default: %(default)s)')
    args = parser.parse_args(argv)
    train_file = path.corpus_train(args.data)
    if not os.path.exists(train_file):
        sys.exit(f'{train_file}: not found (the real corpus; see --data)')

    token_ids = corpus_token_ids(train_file, args.max_samples, args.maxlen)  # encoded once, for the padding shares
    rows = []
    with tempfile.TemporaryDirectory() as work:
        for precision in args.precisions:
            for group in args.groups:
                common = ['--max-samples', str(args.max_samples), '--maxlen', str(args.maxlen), '--epochs', '1',
                          '--precision', precision, '--group-by-length', str(group)]
                pretrained = os.path.join(work, f'mlm-{precision}-{group}')
                mlm = epoch_seconds(['pretrain.py', '--train', train_file, '--out', pretrained, '--batch-size', '64']
                                    + ARCHITECTURE + common)
                fine = epoch_seconds(['train.py', '--train', train_file, '--pretrained', pretrained,
                                      '--weights', os.path.join(work, f'fine-{precision}-{group}'),
                                      '--batch-size', '32', '--fgm-epsilon', '0'] + common)
                rows.append({'precision': precision, 'group_by_length': group,
                             'mlm_epoch_seconds': mlm, 'fine_tune_epoch_seconds': fine,
                             'mlm_padding_share': round(padding_share(token_ids, 64, group), 4),
                             'fine_tune_padding_share': round(padding_share(token_ids, 32, group), 4)})
    base = rows[0]
    for row in rows:
        row['mlm_speedup'] = round(base['mlm_epoch_seconds'] / row['mlm_epoch_seconds'], 2)
        row['fine_tune_speedup'] = round(base['fine_tune_epoch_seconds'] / row['fine_tune_epoch_seconds'], 2)

    print(f'{"precision":<16}{"group":>6}{"MLM s":>8}{"x":>6}{"pad":>7}{"fine s":>8}{"x":>6}{"pad":>7}')
    for r in rows:
        print(f'{r["precision"]:<16}{r["group_by_length"]:>6}{r["mlm_epoch_seconds"]:>8}{r["mlm_speedup"]:>6}'
              f'{r["mlm_padding_share"]:>7.1%}{r["fine_tune_epoch_seconds"]:>8}{r["fine_tune_speedup"]:>6}'
              f'{r["fine_tune_padding_share"]:>7.1%}')
    results = dict(benchlib.provenance('bench/batching.py', argv), max_samples=args.max_samples,
                   maxlen=args.maxlen, architecture='4 layers, hidden 256, 4 heads (official vocabulary)',
                   rows=rows)
    with open(args.out, 'w') as f:
        json.dump(results, f, indent=2, ensure_ascii=False)
        f.write('\n')
    print(f'results: {args.out}')


if __name__ == '__main__':
    main()
