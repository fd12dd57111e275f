"""One entry point for the suite:

    python main.py pretrain [pretrain.py flags]
    python main.py train    [train.py flags]
    python main.py evaluate [evaluate.py flags]
    python main.py predict  [predict.py flags] "文本"
    python main.py stats    FILE [stats.py flags]
    python main.py audit    FILE [audit.py flags]
    python main.py suggest  --texts FILE -n N --out FILE [suggest.py flags]
    python main.py plot     [plot.py flags]
    python main.py export   [export.py flags]
    python main.py serve    [serve.py flags]

Each sub-command runs the same `main` as the script of that name.
"""
import argparse
import importlib

import config

COMMANDS = {
    'pretrain': 'masked-language-model pretraining on your texts, official checkpoint layout (pretrain.py)',
    'train': 'fine-tune RoFormer-v2 (train.py)',
    'evaluate': 'exact match and per-label report (evaluate.py)',
    'predict': 'labels of texts (predict.py)',
    'stats': 'data report of a labelled file (stats.py)',
    'audit': 'likely mislabelled lines, conflicting near-duplicates, too-rare labels (audit.py)',
    'suggest': "unlabelled texts to label next, in the data format with the model's labels (suggest.py)",
    'plot': 'training curves, evaluation figures, model diagram as PNG (plot.py)',
    'export': 'TensorFlow SavedModel with a serving signature (export.py)',
    'serve': 'HTTP JSON server (serve.py)',
}


def main(argv=None):
    parser = argparse.ArgumentParser(description='Multi-label Chinese text classification with RoFormer-v2.',
                                     epilog='Run "python main.py COMMAND --help" for the flags of a command.')
    parser.add_argument('command', choices=COMMANDS, help='; '.join(f'{k}: {v}' for k, v in COMMANDS.items()))
    parser.add_argument('args', nargs=argparse.REMAINDER, help='flags of the command')
    args = parser.parse_args(argv)
    return importlib.import_module(args.command).main(args.args)


if __name__ == '__main__':
    config.run_main(main)
