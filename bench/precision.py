"""Mixed precision on this machine: training speed and accuracy of each --precision.

    python bench/precision.py                                         # float32, mixed_bfloat16, mixed_float16
    python bench/precision.py --precisions float32 mixed_bfloat16 --steps 10 --epochs 20

Speed: median seconds per training step (FGM on, AdamEMA, layered learning rates) and per
prediction batch of the small architecture (L-6/H-384, random weights: only the shapes
matter) at batch 32 x 64 tokens, 65 labels; every policy in this one process, their steps
interleaved; the ratio is to float32's time. Accuracy: train.py itself with --precision on
the bundled sample and a tiny generated checkpoint (make demo's settings, --epochs epochs),
its best validation exact match, then the test exact match of those weights predicted in
float32, as predict.py and multilabel/serve.py do. Prints a table; results in bench/results/precision.json.
"""
import argparse
import contextlib
import datetime
import io
import os
import platform
import sys
import tempfile
import time

import numpy as np

# The modules that start TensorFlow (loader, model, train...) are imported inside the functions
# that use them, so --help answers at once.
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import config  # noqa: E402
import path  # noqa: E402
from multilabel import inference  # noqa: E402
import evaluate  # noqa: E402

RESULTS = os.path.join(ROOT, 'bench', 'results', 'precision.json')
NUM_LABELS = 65
DEMO_FLAGS = ['--batch-size', '16', '--maxlen', '64', '--encoder-lr', '1e-3', '--head-lr', '1e-2',
              '--ema-momentum', '0.99']  # the Makefile's demo settings, for random small weights


def step_times(precisions, steps, batch_size, seq_len):
    """{precision: (median s per training step, median s per prediction batch)}, small architecture.

    The policies' steps alternate (one of each, then again), so a load that comes and goes on
    a shared machine slows them all alike and the ratios stay fair.
    """
    import model as model_lib
    from multilabel import scale
    from multilabel.compat import keras
    rng = np.random.default_rng(0)
    token_ids = rng.integers(5, 10000, size=(batch_size, seq_len)).astype('int32')
    inputs = [token_ids, np.zeros_like(token_ids)]
    targets = (rng.random((batch_size, NUM_LABELS)) < 0.05).astype('float32')
    runs = {}
    for precision in precisions:
        scale.set_precision(precision)  # a layer keeps the policy it was built with
        keras.utils.set_random_seed(0)
        classifier = model_lib.build_classifier(os.path.join(path.pretrained_dir('small'), path.CONFIG_NAME),
                                                NUM_LABELS, fgm_epsilon=config.DEFAULTS.fgm_epsilon)
        model_lib.compile_for_training(classifier, config.DEFAULTS)
        runs[precision] = (lambda c=classifier: c.train_on_batch(inputs, targets),
                           lambda c=classifier: c.predict_on_batch(inputs))
        for run in runs[precision] * 2:  # warm-up: tracing, which must happen under the model's own policy
            run()
    scale.set_precision('float32')
    times = {(precision, kind): [] for precision in precisions for kind in (0, 1)}
    for step in range(steps):
        for precision in precisions:
            for kind in (0, 1):
                start = time.perf_counter()
                runs[precision][kind]()
                times[precision, kind].append(time.perf_counter() - start)
    return {p: (float(np.median(times[p, 0])), float(np.median(times[p, 1]))) for p in precisions}


def accuracy(precision, pretrained, epochs):
    """(best validation exact match, test exact match in float32) of a short train.py run."""
    import loader
    from multilabel import scale
    import train
    with tempfile.TemporaryDirectory() as weights:
        log = io.StringIO()  # the runs' progress bars and per-epoch lines would bury the table
        with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
            valid = train.main(['--pretrained', pretrained, '--weights', weights, '--epochs', str(epochs),
                                '--patience', str(epochs), '--precision', precision, *DEMO_FLAGS])
        scale.set_precision('float32')
        with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
            test, _ = evaluate.evaluate(inference.Classifier(weights), loader.read_samples(path.SAMPLE_TEST), 64)
    return valid, test


def main(argv=None):
    parser = argparse.ArgumentParser(description='Speed and accuracy of each --precision on this machine.')
    parser.add_argument('--precisions', nargs='+', default=list(config.CHOICES['precision']),
                        choices=config.CHOICES['precision'], help='policies to measure, float32 first (default: all)')
    parser.add_argument('--steps', type=int, default=5, help='timed steps per policy (default: %(default)s)')
    parser.add_argument('--batch-size', type=int, default=32, help='(default: %(default)s)')
    parser.add_argument('--seq-len', type=int, default=64, help='tokens per text (default: %(default)s)')
    parser.add_argument('--epochs', type=int, default=15, help='epochs of each accuracy run (default: %(default)s)')
    parser.add_argument('--out', default=RESULTS, help='JSON results (default: %(default)s)')
    args = parser.parse_args(argv)

    from tools import make_tiny_checkpoint
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        pretrained = os.path.join(folder, 'tiny')
        make_tiny_checkpoint.make_tiny_checkpoint(pretrained, [path.SAMPLE_TRAIN, path.SAMPLE_TEST])
        speed = step_times(args.precisions, args.steps, args.batch_size, args.seq_len)
        for precision in args.precisions:
            valid, test = accuracy(precision, pretrained, args.epochs)
            train_s, predict_s = speed[precision]
            rows.append({'precision': precision, 'train_s_per_step': round(train_s, 4),
                         'predict_s_per_batch': round(predict_s, 4), 'valid_exact_match': round(valid, 4),
                         'test_exact_match': round(test, 4)})
            print(f'{precision}: {rows[-1]}', file=sys.stderr)
    base = next((r for r in rows if r['precision'] == 'float32'), rows[0])
    for row in rows:
        row['train_ratio'] = round(row['train_s_per_step'] / base['train_s_per_step'], 2)
        row['predict_ratio'] = round(row['predict_s_per_batch'] / base['predict_s_per_batch'], 2)

    print(f'small architecture, batch {args.batch_size} x {args.seq_len} tokens, FGM on; '
          f'accuracy: tiny model, bundled sample, {args.epochs} epochs')
    print('| precision | train s/step | ratio | predict s/batch | ratio | valid exact match | test exact match |\n'
          '| --- | --- | --- | --- | --- | --- | --- |')
    for r in rows:
        print(f'| {r["precision"]} | {r["train_s_per_step"]:.3f} | {r["train_ratio"]:.2f} | '
              f'{r["predict_s_per_batch"]:.3f} | {r["predict_ratio"]:.2f} | {r["valid_exact_match"]:.4f} | '
              f'{r["test_exact_match"]:.4f} |')
    cpu_flags = open('/proc/cpuinfo').read() if os.path.exists('/proc/cpuinfo') else ''
    path.write_json(args.out, {
        'date': datetime.date.today().isoformat(),
        'machine': f'{platform.machine()}, {os.cpu_count()} CPUs, avx512_bf16: {"avx512_bf16" in cpu_flags}, '
                   f'amx_bf16: {"amx_bf16" in cpu_flags}',
        'speed_model': f'small (L-6/H-384), batch {args.batch_size} x {args.seq_len}, {NUM_LABELS} labels, FGM on',
        'accuracy_model': f'tiny generated checkpoint, bundled sample, {args.epochs} epochs, ' + ' '.join(DEMO_FLAGS),
        'steps': args.steps, 'rows': rows,
    })
    print(f'results: {args.out}')


if __name__ == '__main__':
    config.run_main(main)
