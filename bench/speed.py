"""Speed on the real test texts with the small architecture (the weights do not change speed,
so random ones serve):

(a) inference sentences/second: one text at a time with `model.predict` (the old way),
    batched in file order with Keras' `predict_on_batch`, and batched with length bucketing
    through one graph for every shape (inference.predict_scores, what predict.py, evaluate.py
    and multilabel/serve.py do);
(b) the share of the machine's float32 matrix-multiply roofline those batched predictions
    reach: the model's FLOPs on the actual token counts / time / the best GFLOP/s of
    TensorFlow's matmul (oneDNN) and numpy's on large square matrices, measured here;
(c) training step time at batch 32, with and without FGM, run eagerly, as a graph
    (tf.function, Keras' default) and with XLA (jit_compile=True) where it compiles.

    python bench/speed.py                       # ../shared/data test texts, small architecture
    python bench/speed.py --texts 64 --single 8 --steps 2 --train-len 16 --out /tmp/speed.json  # smoke run

Every ratio is taken against a baseline measured in the same process. Results:
bench/results/speed.json.
"""
import argparse
import os
import sys
import time

import numpy as np

# The modules that start TensorFlow (loader, model, train...) are imported inside the functions
# that use them, so --help answers at once.
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import benchlib  # noqa: E402  (beside this script)
import config  # noqa: E402
import path  # noqa: E402
from multilabel import inference  # noqa: E402

RESULTS = os.path.join(ROOT, 'bench', 'results', 'speed.json')
NUM_LABELS = 65


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--test', default=benchlib.DEFAULT_TEST,
                        help='labelled file whose texts are predicted (default: %(default)s)')
    parser.add_argument('--pretrained', default=path.pretrained_dir('small'),
                        help='architecture and vocab to measure (default: %(default)s)')
    parser.add_argument('--texts', type=int, help='use only the first N texts (default: all)')
    parser.add_argument('--single', type=int, default=200, help='texts predicted one at a time (default: %(default)s)')
    parser.add_argument('--steps', type=int, default=10, help='timed training steps per variant (default: %(default)s)')
    parser.add_argument('--train-len', type=int, default=128, help='tokens per training row (default: %(default)s)')
    parser.add_argument('--matmul-size', type=int, default=4096)
    parser.add_argument('--out', default=RESULTS, help='JSON results file (default: %(default)s)')
    config.add_flags(parser, 'maxlen', 'batch_size')
    return parser.parse_args(argv)


def matmul_gflops(size):
    """Best float32 GFLOP/s of TensorFlow's and numpy's matmul on [size, size] matrices."""
    import tensorflow as tf
    a = np.random.default_rng(0).standard_normal((size, size), dtype=np.float32)
    flops = 2 * size ** 3
    ta = tf.constant(a)
    rates = {'tensorflow': flops / benchlib.best_seconds(lambda: tf.matmul(ta, ta).numpy(), 5) / 1e9,
             'numpy': flops / benchlib.best_seconds(lambda: a @ a, 5) / 1e9}
    return rates


def encoder_flops(model, lengths):
    """Multiply-add FLOPs of a forward pass over texts of `lengths` tokens, padding excluded:
    2 per weight of every matmul kernel per token, plus the attention products (QK^T and
    attention x V: 4 T^2 H per layer). Trainable kernels only: an n-gram side's table
    (train.py --ngram-blend) is fixed and read by gathers, a few per token, not multiplied."""
    kernels = [w for w in model.trainable_weights if len(w.shape) == 2 and 'Embedding' not in w.name]
    per_token = 2 * sum(int(np.prod(w.shape)) for w in kernels)
    attention_layers = sum(1 for layer in model.layers if type(layer).__name__ == 'MultiHeadAttention')
    hidden = model.get_layer('Embedding-Token').output_dim
    lengths = np.asarray(lengths, dtype='float64')
    return float(per_token * lengths.sum() + 4 * hidden * attention_layers * (lengths ** 2).sum())


def inference_rates(args, classifier, token_ids):
    import loader
    single = token_ids[:args.single]
    seconds_single = benchlib.best_seconds(
        lambda: [classifier.predict(loader.pad_batch([ids]), verbose=0) for ids in single], 1)
    seconds_batched = benchlib.best_seconds(lambda: inference.predict_scores(classifier, token_ids, args.batch_size), 2)
    unsorted = lambda: [classifier.predict_on_batch(loader.pad_batch(token_ids[i:i + args.batch_size]))  # noqa: E731
                        for i in range(0, len(token_ids), args.batch_size)]
    seconds_unsorted = benchlib.best_seconds(unsorted, 2)
    return {'one_at_a_time_model_predict': len(single) / seconds_single,
            'batched_in_file_order': len(token_ids) / seconds_unsorted,
            'batched_length_bucketed': len(token_ids) / seconds_batched}, seconds_batched


def training_steps(args, config_path):
    """Seconds per training step of each (FGM, execution) variant on one batch of 32 full rows."""
    import model as model_lib
    from multilabel.compat import keras
    rng = np.random.default_rng(0)
    token_ids = rng.integers(5, path.read_json(config_path)['vocab_size'], size=(32, args.train_len)).astype('int32')
    targets = (rng.random((32, NUM_LABELS)) < 0.03).astype('float32')
    batch = ([token_ids, np.zeros_like(token_ids)], targets)
    rows = []
    for fgm in (0.0, config.DEFAULTS.fgm_epsilon):
        for execution in ('eager', 'graph', 'xla'):
            keras.utils.set_random_seed(0)
            classifier = model_lib.build_classifier(config_path, NUM_LABELS, fgm_epsilon=fgm)
            classifier.compile(loss=model_lib.build_loss('bce'), optimizer=model_lib.build_optimizer(config.DEFAULTS),
                               run_eagerly=execution == 'eager', jit_compile=execution == 'xla')
            row = {'fgm': fgm > 0, 'execution': execution}
            try:
                row['seconds_per_step'] = benchlib.median_seconds(lambda: classifier.train_on_batch(*batch),
                                                                  args.steps)
            except Exception as error:  # XLA cannot compile every op; say which, keep the other rows
                row['error'] = f'{type(error).__name__}: {str(error).splitlines()[0][:200]}'
            rows.append(row)
            print(row, flush=True)
    baseline = next(r['seconds_per_step'] for r in rows if not r['fgm'] and r['execution'] == 'graph')
    for row in rows:
        if 'seconds_per_step' in row:
            row['ratio_to_graph_without_fgm'] = row['seconds_per_step'] / baseline
    return rows


def main(argv=None):
    args = parse_args(argv)
    import loader
    import model as model_lib
    from multilabel.compat import keras
    pretrained = args.pretrained
    config_path = os.path.join(pretrained, path.CONFIG_NAME)
    texts = [s.text for s in loader.read_samples(args.test)][:args.texts]
    token_ids = loader.encode_texts(loader.load_tokenizer(os.path.join(pretrained, path.VOCAB_NAME)),
                                    texts, args.maxlen)
    keras.utils.set_random_seed(0)
    classifier = model_lib.build_classifier(config_path, NUM_LABELS)

    rates, seconds_batched = inference_rates(args, classifier, token_ids)
    gflops = matmul_gflops(args.matmul_size)
    peak = max(gflops.values())
    flops = encoder_flops(classifier, [len(ids) for ids in token_ids])
    achieved = flops / seconds_batched / 1e9
    steps = training_steps(args, config_path)

    result = {'command': benchlib.command('bench/speed.py', argv),
              'date': time.strftime('%Y-%m-%d'), 'machine': benchlib.describe(),
              'test_file': os.path.relpath(args.test, ROOT), 'texts': len(texts), 'maxlen': args.maxlen,
              'batch_size': args.batch_size, 'pretrained': os.path.relpath(pretrained, ROOT),
              'sentences_per_second': {k: round(v, 2) for k, v in rates.items()},
              'batched_speedup_over_one_at_a_time': round(rates['batched_length_bucketed']
                                                          / rates['one_at_a_time_model_predict'], 2),
              'matmul_gflops': {k: round(v, 1) for k, v in gflops.items()},
              'model_gflop_on_actual_tokens': round(flops / 1e9, 2),
              'achieved_gflops': round(achieved, 1),
              'roofline_fraction': round(achieved / peak, 3),
              'training_steps_batch_32': steps}
    path.write_json(args.out, result)

    print(f'\n{os.path.basename(pretrained)}, {len(texts)} texts of {os.path.relpath(args.test, ROOT)}, maxlen {args.maxlen}')
    print(f'{"inference":<40}{"sentences/s":>12}')
    for name, rate in rates.items():
        print(f'{name:<40}{rate:>12.1f}')
    print(f'matmul roofline: {peak:.1f} GFLOP/s (tensorflow {gflops["tensorflow"]:.1f}, numpy {gflops["numpy"]:.1f}); '
          f'batched prediction reaches {achieved:.1f} GFLOP/s = {achieved / peak:.1%} of it')
    print(f'\n{"training step, batch 32 x " + str(args.train_len):<34}{"FGM":<6}{"s/step":>9}{"ratio":>8}')
    for row in steps:
        measured = (f'{row["seconds_per_step"]:>9.3f}{row["ratio_to_graph_without_fgm"]:>8.2f}'
                    if 'seconds_per_step' in row else f'  failed: {row["error"]}')
        print(f'{row["execution"]:<34}{"on" if row["fgm"] else "off":<6}{measured}')
    print(f'written: {args.out}')
    return result


if __name__ == '__main__':
    config.run_main(main)
