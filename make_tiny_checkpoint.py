"""Write a tiny RoFormer-v2 checkpoint in the official release's format, for tests and demos.

    python make_tiny_checkpoint.py pretrained/tiny --texts data/sample-train.txt

The folder gets bert_config.json, vocab.txt and bert_model.ckpt.{index,data-00000-of-00001,meta}
with the official variable names (bert/embeddings/word_embeddings, ...), so it loads through
exactly the code path of the official small and base checkpoints. The official weights
cannot be downloaded on every machine; this lets that path be tested anywhere.
"""
import argparse
import json
import os

import path

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
        with open(text_file, encoding='utf-8-sig') as f:
            for line in f:
                for character in line.rstrip('\r\n').partition(' ')[2].lower():
                    if not character.isspace():
                        characters[character] = True
    return SPECIAL_TOKENS + list(characters)


def make_tiny_checkpoint(folder, text_files, hidden_size=32, layers=2, heads=2, seed=0):
    """Write the checkpoint folder; returns {variable name: value} as written."""
    import compat
    import model as model_lib
    os.makedirs(folder, exist_ok=True)
    vocab = character_vocab(text_files)
    with open(os.path.join(folder, path.VOCAB_NAME), 'w', encoding='utf-8') as f:
        f.write('\n'.join(vocab) + '\n')
    config_path = os.path.join(folder, path.CONFIG_NAME)
    with open(config_path, 'w', encoding='utf-8') as f:
        json.dump(tiny_config(len(vocab), hidden_size, layers, heads), f, indent=2)
    compat.keras.utils.set_random_seed(seed)
    values = model_lib.checkpoint_values(model_lib.build_encoder(config_path))
    compat.write_checkpoint(values, os.path.join(folder, path.CHECKPOINT_NAME))
    return values


def main(argv=None):
    parser = argparse.ArgumentParser(description='Write a tiny RoFormer-v2 checkpoint in the official format.')
    parser.add_argument('folder', help='output folder, e.g. pretrained/tiny')
    parser.add_argument('--texts', nargs='+', default=[path.SAMPLE_TRAIN, path.SAMPLE_TEST],
                        help='data files whose characters make the vocabulary (default: the bundled sample)')
    parser.add_argument('--hidden-size', type=int, default=32)
    parser.add_argument('--layers', type=int, default=2)
    parser.add_argument('--heads', type=int, default=2)
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args(argv)
    values = make_tiny_checkpoint(args.folder, args.texts, args.hidden_size, args.layers, args.heads, args.seed)
    print(f'{args.folder}: {len(values)} variables, {sum(v.size for v in values.values())} parameters')


if __name__ == '__main__':
    main()
