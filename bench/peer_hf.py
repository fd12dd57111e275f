"""Our Keras/TensorFlow RoFormer-v2 against the same-size RoFormer of HF transformers (PyTorch,
CPU), on the same batch shapes: training step time (batch 32 x 128 tokens, Adam, no FGM on
either side) and inference sentences/second on the real test texts (the same token ids,
sorted by length, batches of 64).

The peer needs PyTorch and transformers, which the project itself does not; they go in a
separate virtual environment, and this script runs there and calls our side in the
project's .venv:

    python3 -m venv .venv-peer && .venv-peer/bin/pip install -r bench/requirements-peer.txt
    .venv-peer/bin/python bench/peer_hf.py              # writes bench/results/peer_hf.json

HF's RoFormer is the v1 design (biases, LayerNorm with scale and offset, GELU); it is given
the small RoFormer-v2's sizes (6 layers, hidden 384, 6 heads, FFN 1536, vocabulary 12000,
65 labels), so both sides do about the same matrix work.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import benchlib  # noqa: E402  (beside this script)
import path  # noqa: E402  (no TensorFlow: it imports in the peer's environment too)

RESULTS = os.path.join(ROOT, 'bench', 'results', 'peer_hf.json')
NUM_LABELS = 65
TRAIN_SHAPE = (32, 128)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--test', default=benchlib.DEFAULT_TEST,
                        help='labelled file whose texts are predicted (default: %(default)s)')
    parser.add_argument('--pretrained', default=path.pretrained_dir('small'), help='architecture to copy (default: %(default)s)')
    parser.add_argument('--texts', type=int, help='use only the first N texts (default: all)')
    parser.add_argument('--steps', type=int, default=10, help='timed training steps (default: %(default)s)')
    parser.add_argument('--batch-size', type=int, default=64, help='inference batch (default: %(default)s)')
    parser.add_argument('--maxlen', type=int, default=200)
    parser.add_argument('--ours-python', default=os.path.join(ROOT, '.venv', 'bin', 'python'),
                        help="the project's Python, for our side (default: %(default)s)")
    parser.add_argument('--out', default=RESULTS, help='JSON results file (default: %(default)s)')
    parser.add_argument('--ours', metavar='EXCHANGE', help=argparse.SUPPRESS)  # child: our side
    return parser.parse_args(argv)


def length_sorted_batches(token_ids, batch_size):
    """Padded int arrays, texts sorted by length (what inference.predict_scores does)."""
    order = np.argsort([len(ids) for ids in token_ids], kind='stable')
    for start in range(0, len(order), batch_size):
        rows = [token_ids[i] for i in order[start:start + batch_size]]
        batch = np.zeros((len(rows), max(map(len, rows))), dtype='int64')
        for row, ids in zip(batch, rows):
            row[:len(ids)] = ids
        yield batch


def train_batch(vocab_size):
    rng = np.random.default_rng(0)
    token_ids = rng.integers(5, vocab_size, size=TRAIN_SHAPE)
    targets = (rng.random((TRAIN_SHAPE[0], NUM_LABELS)) < 0.03).astype('float32')
    return token_ids, targets


def ours(args):
    """Child process in the project's .venv: encode the texts, time our model, write both."""
    from multilabel import compat  # noqa: F401
    import config
    import loader
    import model as model_lib
    from multilabel import inference
    from multilabel.compat import keras
    texts = [s.text for s in loader.read_samples(args.test)][:args.texts]
    token_ids = loader.encode_texts(loader.load_tokenizer(os.path.join(args.pretrained, path.VOCAB_NAME)),
                                    texts, args.maxlen)
    keras.utils.set_random_seed(0)
    config_path = os.path.join(args.pretrained, path.CONFIG_NAME)
    classifier = model_lib.build_classifier(config_path, NUM_LABELS)
    model_lib.compile_for_training(classifier, config.Config(fgm_epsilon=0.0))
    token_batch, targets = train_batch(path.read_json(config_path)['vocab_size'])
    train = benchlib.median_seconds(lambda: classifier.train_on_batch([token_batch, np.zeros_like(token_batch)], targets),
                           args.steps)
    inference.predict_scores(classifier, token_ids, args.batch_size)  # warm-up: one graph for every shape
    start = time.perf_counter()
    inference.predict_scores(classifier, token_ids, args.batch_size)
    rate = len(token_ids) / (time.perf_counter() - start)
    with open(args.ours, 'w') as f:
        json.dump({'token_ids': [list(map(int, ids)) for ids in token_ids], 'train_step_seconds': train,
                   'sentences_per_second': rate, 'tensorflow': compat.tf.__version__}, f)


def theirs(args, token_ids, vocab_size):
    import torch  # in the peer's venv only (bench/requirements-peer.txt), not the project's
    import transformers
    torch.manual_seed(0)
    settings = path.read_json(os.path.join(args.pretrained, path.CONFIG_NAME))
    peer_config = transformers.RoFormerConfig(
        vocab_size=vocab_size, hidden_size=settings['hidden_size'], num_hidden_layers=settings['num_hidden_layers'],
        num_attention_heads=settings['num_attention_heads'], intermediate_size=settings['intermediate_size'],
        max_position_embeddings=max(512, args.maxlen), num_labels=NUM_LABELS,
        problem_type='multi_label_classification')
    model = transformers.RoFormerForSequenceClassification(peer_config)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    token_batch, targets = train_batch(vocab_size)
    token_batch, targets = torch.tensor(token_batch), torch.tensor(targets)

    def step():
        model.train()
        optimizer.zero_grad()
        model(input_ids=token_batch, labels=targets).loss.backward()
        optimizer.step()

    train = benchlib.median_seconds(step, args.steps)
    model.eval()
    batches = [torch.tensor(b) for b in length_sorted_batches(token_ids, args.batch_size)]

    def predict_all():
        with torch.inference_mode():
            for batch in batches:
                torch.sigmoid(model(input_ids=batch, attention_mask=(batch > 0).long()).logits)

    predict_all()  # warm-up
    start = time.perf_counter()
    predict_all()
    rate = len(token_ids) / (time.perf_counter() - start)
    return {'train_step_seconds': train, 'sentences_per_second': rate, 'torch': torch.__version__,
            'transformers': transformers.__version__, 'threads': torch.get_num_threads()}


def main(argv=None):
    args = parse_args(argv)
    if args.ours:
        return ours(args)
    with tempfile.TemporaryDirectory() as folder:
        exchange = os.path.join(folder, 'ours.json')
        command = [args.ours_python, os.path.abspath(__file__), '--ours', exchange, '--test', args.test,
                   '--pretrained', args.pretrained, '--steps', str(args.steps), '--batch-size', str(args.batch_size),
                   '--maxlen', str(args.maxlen)] + (['--texts', str(args.texts)] if args.texts else [])
        subprocess.run(command, check=True, cwd=ROOT)
        our = json.load(open(exchange))
    vocab_size = path.read_json(os.path.join(args.pretrained, path.CONFIG_NAME))['vocab_size']
    their = theirs(args, our.pop('token_ids'), vocab_size)
    result = {'command': benchlib.command('bench/peer_hf.py', argv),
              'date': time.strftime('%Y-%m-%d'), 'machine': benchlib.describe(),
              'test_file': os.path.relpath(args.test, ROOT), 'train_shape': list(TRAIN_SHAPE),
              'inference_batch': args.batch_size, 'ours': our, 'hf_transformers': their,
              'train_step_ratio_ours_to_theirs': our['train_step_seconds'] / their['train_step_seconds'],
              'inference_rate_ratio_ours_to_theirs': our['sentences_per_second'] / their['sentences_per_second']}
    path.write_json(args.out, result)
    print(f'{"":<34}{"train s/step":>13}{"sentences/s":>13}')
    print(f'{"ours (tf.keras + bert4keras)":<34}{our["train_step_seconds"]:>13.3f}{our["sentences_per_second"]:>13.1f}')
    print(f'{"HF transformers RoFormer (torch)":<34}{their["train_step_seconds"]:>13.3f}'
          f'{their["sentences_per_second"]:>13.1f}')
    print(f'{"ratio ours / theirs":<34}{result["train_step_ratio_ours_to_theirs"]:>13.2f}'
          f'{result["inference_rate_ratio_ours_to_theirs"]:>13.2f}')
    print(f'written: {args.out}')


if __name__ == '__main__':
    main()
