"""One entry point for the suite:

    python main.py recipe   FILE --out DIR [recipe.py flags]
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

Each sub-command runs the same `main` as the script of that name; its usage line and errors
name it as it was run (`main.py train`).
"""
import argparse
import importlib

import config

COMMANDS = {
    'recipe': 'pretraining (if the recipe has it), fine-tuning and evaluation of a configs/ file, resumable (recipe.py)',
    'pretrain': 'masked-language-model pretraining on your texts, official checkpoint layout (pretrain.py)',
    'train': 'fine-tune RoFormer-v2 on a labelled file (train.py)',
    'evaluate': 'exact match and per-label report on a labelled file (evaluate.py)',
    'predict': 'labels of texts (predict.py)',
    'stats': 'data report of a labelled file (stats.py)',
    'audit': 'likely mislabelled lines, conflicting near-duplicates, too-rare labels (audit.py)',
    'suggest': "unlabelled texts to label next, in the data format with the model's labels (suggest.py)",
    'plot': 'training curves, evaluation figures, model diagram as PNG (plot.py)',
    'export': 'TensorFlow SavedModel that decides the labels in the graph (export.py)',
    'serve': 'HTTP JSON server and a page to try the model (serve.py)',
}


def main(argv=None):
    verbs = '\n'.join(f'  {name:<9} {sentence}' for name, sentence in COMMANDS.items())
    parser = config.ArgumentParser(prog='main.py', formatter_class=argparse.RawDescriptionHelpFormatter,
                                   description='Multi-label Chinese text classification with RoFormer-v2.\n\n'
                                               'commands:\n' + verbs,
                                   epilog='Run "python main.py COMMAND --help" for the flags of a command.')
    parser.add_argument('command', choices=COMMANDS, metavar='COMMAND', help='one of the commands above')
    parser.add_argument('args', nargs=argparse.REMAINDER, help='flags of the command')
    args = parser.parse_args(argv)
    with config.program(f'{parser.prog} {args.command}'):
        return importlib.import_module(args.command).main(args.args)


if __name__ == '__main__':
    config.run_main(main)
