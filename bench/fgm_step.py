"""FGM design benchmark: training-step time of our eager `train_step` FGM against the
bert4keras example's graph-mode FGM, each with and without the adversarial step.

    python bench/fgm_step.py                     # small architecture, batch 32 x 64 tokens
    python bench/fgm_step.py --steps 5 --model-size small --seq-len 32

Each design runs in its own process (graph mode needs `disable_eager_execution()` before
anything is built), on the same random batch shape, with the same optimizer (compat.AdamEMA).
The ratio column is step time / our design's step time without FGM, measured in the same run.
Results: bench/results/fgm_step.json.

Note the two FGM variants differ in what they apply: ours adds the gradients at the clean
and the perturbed embeddings (the usual FGM recipe); the bert4keras example applies only
the gradient at the perturbed embeddings.
"""
import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

# The modules that start TensorFlow (loader, model, train...) are imported inside the functions
# that use them, so --help answers at once.
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import benchlib  # noqa: E402  (beside this script)
import path  # noqa: E402
import config  # noqa: E402

RESULTS = os.path.join(ROOT, 'bench', 'results', 'fgm_step.json')
NUM_LABELS = 65
EPSILON = 0.5


def graph_mode_adversarial_training(model, embedding_name, epsilon):
    """The bert4keras example's FGM (examples/task_iflytek_adversarial_training.py), graph mode only."""
    from bert4keras.backend import K, search_layer
    model._make_train_function()
    old_train_function = model.train_function
    embeddings = search_layer(model.outputs[0], embedding_name).embeddings
    gradients = K.zeros_like(embeddings) + K.gradients(model.total_loss, [embeddings])[0]
    inputs = model._feed_inputs + model._feed_targets + model._feed_sample_weights
    embedding_gradients = K.function(inputs=inputs, outputs=[gradients], name='embedding_gradients')

    def train_function(inputs):
        grads = embedding_gradients(inputs)[0]
        delta = epsilon * grads / (np.sqrt((grads ** 2).sum()) + 1e-8)
        K.set_value(embeddings, K.eval(embeddings) + delta)
        outputs = old_train_function(inputs)
        K.set_value(embeddings, K.eval(embeddings) - delta)
        return outputs

    model.train_function = train_function


def measure(args):
    """Child process: median seconds per training step of one design."""
    from multilabel import compat
    if args.design == 'graph':
        compat.tf.compat.v1.disable_eager_execution()
    import model as model_lib
    compat.keras.utils.set_random_seed(0)
    epsilon = EPSILON if args.fgm and args.design == 'eager' else 0.0
    classifier = model_lib.build_classifier(os.path.join(path.pretrained_dir(args.model_size), path.CONFIG_NAME),
                                            NUM_LABELS, fgm_epsilon=epsilon)
    model_lib.compile_for_training(classifier, config.Config())
    if args.fgm and args.design == 'graph':
        graph_mode_adversarial_training(classifier, model_lib.ADVERSARIAL_LAYER, EPSILON)
    rng = np.random.default_rng(0)
    token_ids = rng.integers(5, 12000, size=(args.batch_size, args.seq_len)).astype('int32')
    targets = (rng.random((args.batch_size, NUM_LABELS)) < 0.03).astype('float32')
    batch = ([token_ids, np.zeros_like(token_ids)], targets)
    seconds = benchlib.median_seconds(lambda: classifier.train_on_batch(*batch), args.steps, args.warmup)
    print(json.dumps({'median_step_seconds': seconds, 'steps': args.steps}))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--model-size', default='small', choices=sorted(path.PRETRAINED_MODELS))
    parser.add_argument('--batch-size', type=int, default=32)
    parser.add_argument('--seq-len', type=int, default=64)
    parser.add_argument('--steps', type=int, default=20)
    parser.add_argument('--warmup', type=int, default=3)
    parser.add_argument('--design', choices=['eager', 'graph'], help=argparse.SUPPRESS)  # child process
    parser.add_argument('--fgm', action='store_true', help=argparse.SUPPRESS)
    parser.add_argument('--output', default=RESULTS, help='JSON results file (default: %(default)s)')
    args = parser.parse_args()
    if args.design:
        return measure(args)

    rows = []
    for design in ('eager', 'graph'):
        for fgm in (False, True):
            command = [sys.executable, __file__, '--design', design, '--model-size', args.model_size,
                       '--batch-size', str(args.batch_size), '--seq-len', str(args.seq_len),
                       '--steps', str(args.steps), '--warmup', str(args.warmup)] + (['--fgm'] if fgm else [])
            result = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
            if result.returncode != 0:
                sys.exit(f'{design} fgm={fgm} failed:\n{result.stderr[-3000:]}')
            measured = json.loads(result.stdout.strip().splitlines()[-1])
            rows.append({'design': design, 'fgm': fgm, **measured})
    baseline = rows[0]['median_step_seconds']
    print(f'{args.model_size}, batch {args.batch_size} x {args.seq_len} tokens, median of {args.steps} steps')
    print(f'{"design":<40}{"FGM":<6}{"s/step":>9}{"ratio":>8}')
    names = {'eager': 'eager train_step (ours, tf.distribute)', 'graph': 'graph mode K.function (bert4keras)'}
    for row in rows:
        row['ratio_to_ours_without_fgm'] = row['median_step_seconds'] / baseline
        print(f'{names[row["design"]]:<40}{"on" if row["fgm"] else "off":<6}'
              f'{row["median_step_seconds"]:>9.3f}{row["ratio_to_ours_without_fgm"]:>8.2f}')
    report = {'command': benchlib.command('bench/fgm_step.py', None), 'date': time.strftime('%Y-%m-%d'),
              'machine': f'{os.cpu_count()} CPU cores', 'model_size': args.model_size,
              'batch_size': args.batch_size, 'seq_len': args.seq_len, 'rows': rows}
    path.write_json(args.output, report)
    print(f'written: {args.output}')


if __name__ == '__main__':
    main()
