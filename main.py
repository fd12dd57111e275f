"""One entry point for the suite:

    python main.py recipe   FILE --out DIR [flags]
    python main.py pretrain [flags]
    python main.py train    [flags]
    python main.py evaluate [flags]
    python main.py predict  [flags] "文本"
    python main.py stats    --input FILE [flags]
    python main.py audit    --input FILE [flags]
    python main.py suggest  --input FILE -n N --out FILE [flags]
    python main.py plot     [flags]
    python main.py export   [flags]
    python main.py serve    [flags]

Each sub-command runs the `main` of its module (train.py at the root, multilabel/serve.py in the
package, as COMMANDS says); its usage line and errors name it as it was run (`main.py train`).
"""
import argparse
import importlib

import config

COMMANDS = {
    'recipe': 'pretraining (if the recipe has it), fine-tuning and evaluation of a configs/ file, resumable (multilabel/recipe.py)',
    'pretrain': 'masked-language-model pretraining on your texts, official checkpoint layout (pretrain.py)',
    'train': 'fine-tune RoFormer-v2 on a labelled file (train.py)',
    'evaluate': 'exact match and per-label report on a labelled file (evaluate.py)',
    'predict': 'labels of texts (predict.py)',
    'stats': 'data report of a labelled file (multilabel/stats.py)',
    'audit': 'likely mislabelled lines, conflicting near-duplicates, too-rare labels (multilabel/audit.py)',
    'suggest': "unlabelled texts to label next, in the data format with the model's labels (multilabel/suggest.py)",
    'plot': 'training curves, evaluation figures, model diagram as PNG (multilabel/plot.py)',
    'export': 'TensorFlow SavedModel that decides the labels in the graph (multilabel/export.py)',
    'serve': 'HTTP JSON server and a page to try the model (multilabel/serve.py)',
}

# The commands that live in the package; the others are the scripts at the root.
MODULES = {name: 'multilabel.' + name for name in ('recipe', 'stats', 'audit', 'suggest', 'plot', 'export', 'serve')}


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
        return importlib.import_module(MODULES.get(args.command, args.command)).main(args.args)


if __name__ == '__main__':
    config.run_main(main)
