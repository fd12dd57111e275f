"""Write a tiny RoFormer-v2 checkpoint in the official release's format, for tests and demos.

    python tools/make_tiny_checkpoint.py pretrained/tiny --texts data/sample-train.txt

The folder gets bert_config.json, vocab.txt and bert_model.ckpt.{index,data-00000-of-00001,meta}
with the official variable names (bert/embeddings/word_embeddings, ...), so it loads through
exactly the code path of the official small and base checkpoints. The official weights
cannot be downloaded on every machine; this lets that path be tested anywhere.
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # run as a script from tools/

import config  # noqa: E402
import path  # noqa: E402
import loader  # noqa: E402
import model as model_lib  # noqa: E402
from multilabel import compat  # noqa: E402

SPECIAL_TOKENS = ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]']


def tiny_config(vocab_size, hidden_size=32, layers=2, heads=2):
    return {
        'hidden_act': 'relu',
        'hidden_size': hidden_size,
        'hidden_dropout_prob': 0.1,
        'attention_probs_dropout_prob': 0.1,
        'intermediate_size': hidden_size * 2,
        'num_attention_heads': heads,
        'num_hidden_layers': layers,
        'type_vocab_size': 2,
        'vocab_size': vocab_size,
    }


def character_vocab(text_files):
    """Special tokens + every character of the texts (labels excluded), in first-seen order."""
    characters = {}
    for text_file in text_files:
        for _, line in loader.decoded_lines(text_file):  # a missing or non-UTF-8 file: one line, file:line
            for character in line.partition(' ')[2].lower():
                if not character.isspace():
                    characters[character] = True
    return SPECIAL_TOKENS + list(characters)


def make_tiny_checkpoint(folder, text_files, hidden_size=32, layers=2, heads=2, seed=0):
    """Write the checkpoint folder, whole or not at all; returns {variable name: value} as written."""
    vocab = character_vocab(text_files)
    values = {}

    def write(temporary):
        with open(os.path.join(temporary, path.VOCAB_NAME), 'w', encoding='utf-8') as f:
            f.write('\n'.join(vocab) + '\n')
        config_path = os.path.join(temporary, path.CONFIG_NAME)
        with open(config_path, 'w', encoding='utf-8') as f:
            json.dump(tiny_config(len(vocab), hidden_size, layers, heads), f, indent=2)
        compat.keras.utils.set_random_seed(seed)
        values.update(model_lib.checkpoint_values(model_lib.build_encoder(config_path)))
        compat.write_checkpoint(values, os.path.join(temporary, path.CHECKPOINT_NAME))
    path.atomic_write_folder(folder, write)  # an interrupted run leaves no half checkpoint for make to trust
    return values


def main(argv=None):
    parser = config.ArgumentParser(description='Write a tiny RoFormer-v2 checkpoint in the official format.')
    parser.add_argument('folder', help='output folder, e.g. pretrained/tiny')
    parser.add_argument('--texts', nargs='+', default=[path.SAMPLE_TRAIN, path.SAMPLE_TEST],
                        help='data files whose characters make the vocabulary (default: the bundled sample)')
    parser.add_argument('--hidden-size', type=config.limited(int, 'hidden'), default=32,
                        help='hidden size; the feed-forward size is 2x (default: %(default)s)')
    parser.add_argument('--layers', type=config.limited(int, 'layers'), default=2,
                        help='encoder layers (default: %(default)s)')
    parser.add_argument('--heads', type=config.limited(int, 'heads'), default=2,
                        help='attention heads; they must divide --hidden-size (default: %(default)s)')
    parser.add_argument('--seed', type=int, default=0, help='random seed of the weights (default: %(default)s)')
    args = parser.parse_args(argv)
    if os.path.isdir(args.folder) and os.listdir(args.folder):
        raise config.InputError(f'{args.folder}: not empty; the tiny checkpoint goes into a new or empty folder')
    values = make_tiny_checkpoint(args.folder, args.texts, args.hidden_size, args.layers, args.heads, args.seed)
    print(f'{args.folder}: {len(values)} variables, {sum(v.size for v in values.values())} parameters')


if __name__ == '__main__':
    config.run_main(main)
