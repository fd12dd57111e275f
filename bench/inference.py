"""Inference paths side by side on the real test texts: float32, bfloat16, int8 and the raw-text
export, each checked against float32 and timed in this one process.

    python bench/inference.py --weights bench/weights/small-len64      # ../shared/data test file
    python bench/inference.py --weights weights --test data/sample-test.txt --repeats 1 --out /tmp/inference.json

Rows (bench/results/inference.json):
- float32, bfloat16, int8: inference.Classifier with that --precision; the time is the model on
  the texts' token ids (inference.predict_scores: batches of --batch-size, length-bucketed), the
  tokenizer not included, as in bench/speed.py.
- text_export: multilabel/export.py's SavedModel (`text` signature, in the precision auto picks here),
  loaded back and fed the raw strings in batches of --batch-size; its time includes the
  in-graph tokenization.
Each row: sentences_per_second (best of --repeats passes, the paths' passes interleaved so a
load that comes and goes on a shared machine slows them alike), ratio_to_float32,
agreement_with_float32 (share of texts whose predicted label set equals float32's),
exact_match (against the true labels). The roofline of each precision is the best GFLOP/s of
its own matrix multiply on [--matmul-size]^2 matrices: TensorFlow's float32 and bfloat16
matmul, and TFLite's dynamic-range int8 fully-connected op for int8; each row's achieved
GFLOP/s (the model's FLOPs on the actual tokens, bench/speed.py) is set against it.
"""
import argparse
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

# The modules that start TensorFlow (loader, model, train...) are imported inside the functions
# that use them, so --help answers at once.
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import benchlib  # noqa: E402  (beside this script)
import config  # noqa: E402
import path  # noqa: E402
from multilabel import export  # noqa: E402
from multilabel import inference  # noqa: E402

RESULTS = os.path.join(ROOT, 'bench', 'results', 'inference.json')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--weights', default=path.WEIGHTS_DIR, help='trained model folder (default: %(default)s)')
    parser.add_argument('--test', default=benchlib.DEFAULT_TEST,
                        help='labelled file (default: %(default)s)')
    parser.add_argument('--repeats', type=int, default=3, help='timed passes per path (default: %(default)s)')
    parser.add_argument('--matmul-size', type=int, default=2048, help='(default: %(default)s)')
    parser.add_argument('--out', default=RESULTS, help='JSON results (default: %(default)s)')
    config.add_flags(parser, 'batch_size')
    return parser.parse_args(argv)


def matmul_rooflines(size):
    """{precision: best GFLOP/s of its own matmul on [size, size] matrices}."""
    import tensorflow as tf
    a = np.random.default_rng(0).standard_normal((size, size), dtype=np.float32)
    flops = 2 * size ** 3
    rates = {}
    for precision, dtype in (('float32', tf.float32), ('bfloat16', tf.bfloat16)):
        x = tf.constant(a, dtype)
        rates[precision] = flops / benchlib.best_seconds(lambda: tf.matmul(x, x).numpy(), 5) / 1e9

    # int8: x @ W with W a constant, converted as the int8 path is (dynamic-range quantization).
    class MatMul(tf.Module):
        def __init__(self):
            super().__init__()
            self.w = tf.constant(a)

        @tf.function(input_signature=[tf.TensorSpec([size, size], tf.float32)])
        def __call__(self, x):
            return tf.matmul(x, self.w)

    module = MatMul()
    converter = tf.lite.TFLiteConverter.from_concrete_functions([module.__call__.get_concrete_function()], module)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    interpreter = tf.lite.Interpreter(model_content=converter.convert(), num_threads=os.cpu_count())
    interpreter.allocate_tensors()
    index = interpreter.get_input_details()[0]['index']

    def run():
        interpreter.set_tensor(index, a)
        interpreter.invoke()
    rates['int8'] = flops / benchlib.best_seconds(run, 5) / 1e9
    return rates


def main(argv=None):
    args = parse_args(argv)
    import loader
    import speed  # bench/speed.py: the model's FLOPs on the actual tokens
    import tensorflow as tf
    load_before = os.getloadavg()
    samples = loader.read_samples(args.test)
    texts = [s.text for s in samples]
    classifiers = {p: inference.Classifier(args.weights, precision=p) for p in inference.PRECISIONS}
    base = classifiers['float32']
    targets = loader.multi_hot(samples, base.labels).astype('int32')
    token_ids = loader.encode_texts(base.tokenizer, texts, base.maxlen)
    auto = inference.resolve_precision('auto')

    with tempfile.TemporaryDirectory() as folder:
        export.export(args.weights, folder, auto)
        text_signature = tf.saved_model.load(folder).signatures[export.TEXT_SIGNATURE]
        by_length = np.argsort([len(t) for t in texts], kind='stable')

        def text_scores():
            scores = np.zeros((len(texts), len(base.labels)), dtype='float32')
            for start in range(0, len(texts), args.batch_size):
                rows = by_length[start:start + args.batch_size]
                scores[rows] = text_signature(texts=tf.constant([texts[i] for i in rows]))['probabilities'].numpy()
            return scores

        paths = {p: (lambda c=c: inference.predict_scores(c.engine, token_ids, args.batch_size))
                 for p, c in classifiers.items()}
        paths['text_export'] = text_scores
        scores = {name: run() for name, run in paths.items()}  # warm-up, and the scores compared
        best = {name: float('inf') for name in paths}
        for _ in range(args.repeats):
            for name, run in paths.items():
                start = time.perf_counter()
                run()
                best[name] = min(best[name], time.perf_counter() - start)

    rooflines = matmul_rooflines(args.matmul_size)
    flops = speed.encoder_flops(base.model, [len(ids) for ids in token_ids])
    reference = inference.decide(scores['float32'], base.threshold, base.top1_fallback)
    rows = []
    for name in paths:
        precision = auto if name == 'text_export' else name
        decided = inference.decide(scores[name], base.threshold, base.top1_fallback)
        achieved = flops / best[name] / 1e9
        rows.append({
            'path': name, 'precision': precision,
            'sentences_per_second': round(len(texts) / best[name], 1),
            'ratio_to_float32': round(best['float32'] / best[name], 2),
            'agreement_with_float32': round(float((decided == reference).all(axis=1).mean()), 4),
            'texts_disagreeing': int((decided != reference).any(axis=1).sum()),
            'max_score_difference': round(float(np.abs(scores[name] - scores['float32']).max()), 5),
            'exact_match': round(float((decided == targets).all(axis=1).mean()), 4),
            'achieved_gflops': round(achieved, 1),
            'roofline_fraction': round(achieved / rooflines[precision], 3),
        })
    state = path.resume_state_file(args.weights)
    commit = subprocess.run(['git', 'rev-parse', '--short', 'HEAD'], cwd=ROOT, capture_output=True, text=True).stdout
    result = {
        'command': benchlib.command('bench/inference.py', argv),
        'date': time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime()), 'commit': commit.strip(),
        'machine': benchlib.describe(), 'bfloat16_hardware': inference.bfloat16_hardware(), 'auto_picks': auto,
        'load_average_before_after': [round(load_before[0], 2), round(os.getloadavg()[0], 2)],
        'weights': os.path.relpath(os.path.abspath(args.weights), ROOT),
        'weights_epoch': path.read_json(state)['epoch'] if os.path.exists(state) else None,
        'test_file': os.path.relpath(args.test, ROOT), 'texts': len(texts), 'maxlen': base.maxlen,
        'batch_size': args.batch_size, 'repeats': args.repeats,
        'matmul_roofline_gflops': {k: round(v, 1) for k, v in rooflines.items()},
        'model_gflop_on_actual_tokens': round(flops / 1e9, 2),
        'rows': rows,
    }
    path.write_json(args.out, result)

    print(f'{len(texts)} texts of {result["test_file"]}, {result["machine"]}, load average '
          f'{result["load_average_before_after"]}, auto picks {auto} ({result["bfloat16_hardware"]})')
    print('| path | precision | sentences/s | ratio to float32 | agreement with float32 | exact match | '
          'roofline share |\n| --- | --- | --- | --- | --- | --- | --- |')
    for r in rows:
        print(f'| {r["path"]} | {r["precision"]} | {r["sentences_per_second"]} | {r["ratio_to_float32"]:.2f} | '
              f'{r["agreement_with_float32"]:.4f} ({r["texts_disagreeing"]} differ) | {r["exact_match"]:.4f} | '
              f'{r["roofline_fraction"]:.1%} |')
    print('matmul roofline GFLOP/s: ' + ', '.join(f'{k} {v:.1f}' for k, v in rooflines.items()))
    print(f'written: {args.out}')
    return result


if __name__ == '__main__':
    config.run_main(main)
