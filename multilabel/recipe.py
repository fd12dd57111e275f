"""Run a recipe end to end: pretraining, fine-tuning and evaluation from one file of configs/.

    python main.py recipe configs/demo.toml --out weights/demo
    python main.py recipe configs/self-pretrained.toml --out weights/self-pretrained \\
        --input ../shared/data/multi-classification-train.txt --test ../shared/data/multi-classification-test.txt
    python main.py recipe configs/self-pretrained.toml --out weights/few-labels --input mine.txt --set train.head=cls
    python main.py recipe --help

A recipe is a TOML file with one section per command, each key one of its flags with
underscores (config.py, `--config`). The stages, each the command's own `main`:

1. [pretrain], if the recipe has it: pretrain.py into OUT-pretrained, on the fine-tuning
   file without the validation split train.py holds out (the same file, share and seed),
   unless the section names its own input;
2. [train]: train.py into OUT, from OUT-pretrained when there is one;
3. evaluate.py of OUT on the test file, with the flags of the optional [evaluate] section.

--out names both folders and --input replaces the training file of both training stages,
--test the test file, --seed the seed of both (the validation split and the initialisation).
--set SECTION.KEY=VALUE changes one key of the file for this run, as if the file said it
(`--set train.head=cls`; VALUE is read as TOML, or as a string when it is not), without a copy of it.
Every section is checked against its command's flags before anything runs: a bad key or value
is one line naming the file and the key.

Resumable: run the same command again after an interruption (kill -9 included). OUT/recipe.json
records the flags of each stage and whether it returned, so a finished stage is skipped and a
cut one continues with --resume (with what is left of its time budget: the resume state counts
the minutes already trained). A stage whose settings changed since it ran (an edited recipe,
another --set) is refused in one line, nothing replaced: --overwrite trains it again from
scratch, with every started stage after it. The folders must be new or empty, or those of an
earlier run of a recipe.
"""
import argparse
import os
import shlex
import time
import tomllib

import config
import evaluate
import path
import pretrain
import train

# in OUT: {stage: {'flags': [...], 'finished': bool, 'seconds': wall seconds of the run that finished it}}
RECORD_NAME = 'recipe.json'
FINISHED = {'pretrain': (path.CHECKPOINT_NAME + '.index',), 'train': (path.WEIGHTS_NAME, path.META_NAME)}


def parse_args(argv=None):
    parser = config.ArgumentParser(description='Run a recipe (configs/*.toml): pretraining if it has one, '
                                               'fine-tuning, evaluation; run it again to resume or skip what finished.')
    parser.add_argument('recipe', metavar='FILE', help='recipe file, e.g. configs/self-pretrained.toml')
    parser.add_argument('--out', required=True, type=config.folder, metavar='DIR',
                        help='folder of the trained model; the pretrained checkpoint goes into DIR-pretrained')
    parser.add_argument('--data', metavar='DIR',
                        help='folder holding multi-classification-train.txt and multi-classification-test.txt '
                             '(e.g. ../shared/data): --input and --test from it')
    parser.add_argument('--input', metavar='FILE',
                        help="labelled training file of pretraining and fine-tuning (default: the recipe's [train] "
                             'input, else data/multi-classification-train.txt if present, else the bundled sample)')
    parser.add_argument('--test', metavar='FILE',
                        help="labelled file the model is evaluated on (default: the recipe's [evaluate] input, else "
                             'data/multi-classification-test.txt if present, else the bundled sample)')
    parser.add_argument('--seed', type=int, metavar='N',
                        help="seed of both training stages: the validation split, the masking, the head's "
                             "initialisation (default: the recipe's, else each command's default)")
    parser.add_argument('--overwrite', action='store_true',
                        help='train again from scratch a stage whose settings changed since it ran (an edited '
                             'recipe, another --set), replacing what it trained; without it such a stage is refused')
    parser.add_argument('--set', action='append', default=[], metavar='SECTION.KEY=VALUE',
                        help="one key of the recipe for this run, as if the file said it: train.head=cls, "
                             "pretrain.time_budget=60 (VALUE read as TOML, else as a string); repeat for more")
    args = parser.parse_args(argv)
    if args.data and not os.path.isdir(args.data):
        args.input = args.input or args.data  # --data FILE: the training file, as recipes read it before --input
    elif args.data:
        args.input = args.input or path.corpus_train(args.data)
        args.test = args.test or path.corpus_test(args.data)
    del args.data
    return args


def flags_of(parser, values):
    """The command-line flags that give `parser` these {dest: value} (a section as recipe_section checked it)."""
    actions = {action.dest: action for action in config.recipe_keys(parser).values()}
    flags = []
    for dest, value in values.items():
        action = actions[dest]
        flag = config.long_flag(action)
        if isinstance(action, argparse.BooleanOptionalAction):
            flags.append(flag if value else '--no-' + flag[2:])
        elif action.nargs == 0:  # a switch (store_true): given when set
            flags += [flag] if value else []
        else:
            spelled = getattr(action, 'shown_as', {})  # as --help spells it (config.add_setting)
            flags += [flag, *(str(spelled.get(item, item)) for item in (value if isinstance(value, list) else [value]))]
    return flags


def plan(args):
    """([(stage, module, flags, folder)] of the training stages, evaluate.py's flags), every section
    of the recipe checked before anything runs."""
    modules = {'pretrain': pretrain, 'train': train, 'evaluate': evaluate}
    recipe = config.read_recipe(args.recipe)
    if 'train' not in recipe:
        raise config.InputError(f'{args.recipe}: no [train] section (a recipe fine-tunes a model)')
    parsers = {name: config.parser_of(module.parse_args) for name, module in modules.items()}
    values = {name: config.recipe_section(parsers[name], args.recipe, name) for name in modules}
    for item in args.set:
        name, key, value = changed_key(parsers, item, recipe)
        values[name][key] = value
    pretraining, training, evaluation = values['pretrain'], values['train'], values['evaluate']
    if args.input:
        training.pop('data', None)
        training['train'] = args.input
    if args.seed is not None:  # over a seed of either section (read_the_training_file only fills a missing one)
        training['seed'] = pretraining['seed'] = args.seed
    if args.test:
        evaluation.pop('data', None)
        evaluation['test'] = args.test
    elif 'data' in training and not {'test', 'data'} & evaluation.keys():
        evaluation['data'] = training['data']  # the test file of the folder the model learned from

    out = os.path.normpath(args.out)
    stages = []
    if 'pretrain' in recipe:
        for key in ('pretrained', 'from_model'):
            if key in training:
                raise config.InputError(f'{args.recipe}: [train] {key}: the recipe fine-tunes what its [pretrain] '
                                        'section writes; drop one of the two')
        read_the_training_file(pretraining, training, args.input)
        pretrained = out + '-pretrained'
        stages.append(('pretrain', pretrain, flags_of(parsers['pretrain'], pretraining) + ['--out', pretrained],
                       pretrained))
        training['pretrained'] = pretrained
    stages.append(('train', train, flags_of(parsers['train'], training) + ['--weights', out], out))
    return stages, flags_of(parsers['evaluate'], evaluation) + ['--weights', out]


def changed_key(parsers, item, recipe):
    """(section, dest, value) of one --set SECTION.KEY=VALUE, checked like a key of the file."""
    where = f'--set {item}'
    name, dot, rest = item.partition('.')
    key, equals, text = rest.partition('=')
    key = key.strip().replace('-', '_')
    if not (dot and equals and key) or name not in parsers:
        raise config.InputError(f'{where}: expected SECTION.KEY=VALUE, SECTION one of {", ".join(parsers)}')
    if name == 'pretrain' and name not in recipe:
        raise config.InputError(f'{where}: the recipe has no [pretrain] section: it fine-tunes a checkpoint it '
                                'does not write')
    try:
        value = tomllib.loads(f'value = {text}')['value']
    except tomllib.TOMLDecodeError:
        value = text  # train.head=cls: a bare word is the string
    return (name, *config.recipe_entry(parsers[name], name, key, value, where))


def read_the_training_file(pretraining, training, data):
    """Pretraining reads the fine-tuning file (--input, else [train]'s) without the split train.py
    validates on, so fine-tuning's early stopping scores texts pretraining never saw: the same
    file, first lines, share and seed. A [pretrain] that names its own input keeps it, but --input
    replaces its labelled file (its plain --texts stay)."""
    inputs = {'train', 'texts', 'data'} & pretraining.keys()
    if data and inputs - {'texts'}:
        pretraining.pop('data', None)
        pretraining['train'] = [data]
    if not inputs:
        if 'train' in training:
            pretraining['train'] = [training['train']]
        elif 'data' in training:
            pretraining['data'] = training['data']
    for key in ('max_samples', 'valid_ratio', 'seed'):
        if key in training:
            pretraining.setdefault(key, training[key])


def changed_settings(module, earlier, flags):
    """The settings of its command that `flags` change against the flags a stage ran with before,
    as "--flag: before -> now" ([] when none): a flag renamed since then (its older name still an
    alias) is the same flag."""
    if earlier == flags:
        return []
    if earlier is None:
        return ['no record of its flags']
    parser = config.parser_of(module.parse_args)
    try:
        before = vars(parser.parse_args(earlier))
    except config.InputError:  # a flag the command no longer has
        return [f'flags it no longer has ({shlex.join(earlier)})']
    now = vars(parser.parse_args(flags))
    flag = {action.dest: config.long_flag(action) for action in parser._actions if action.option_strings}
    return [f'{flag.get(dest, dest)}: {before.get(dest)!r} -> {value!r}' for dest, value in now.items()
            if before.get(dest) != value]


def read_record(out, folders):
    """The record of an earlier run of a recipe into `out`; {} for new or empty folders, which
    are the only others a recipe starts in (it never resumes or replaces a run it did not start)."""
    record_path = os.path.join(out, RECORD_NAME)
    if os.path.exists(record_path):
        return path.read_json(record_path)
    for folder in folders:
        if os.path.exists(folder) and (not os.path.isdir(folder) or os.listdir(folder)):
            raise config.InputError(f'{folder}: not empty, and not from an earlier run of a recipe ({record_path} '
                                    'is missing); choose another --out')
    return {}


def decide(stages, record, overwrite):
    """What each stage does, 'skip', 'resume', 'overwrite' or 'start', all decided before anything
    runs. A stage that ran with other settings (an edited recipe, another --set) and left a
    checkpoint or a resume state is trained again only with --overwrite, and so is every started
    stage after one that runs again: without it the recipe refuses in one line, nothing replaced."""
    actions, runs = [], False  # runs: a stage before this one trains, so this one's input changes
    for stage, module, flags, folder in stages:
        earlier = record.get(stage, {})
        finished = all(os.path.exists(os.path.join(folder, name)) for name in FINISHED[stage])
        started = finished or os.path.exists(path.resume_state_file(folder))
        changes = ['an earlier stage trains again'] if runs else changed_settings(module, earlier.get('flags'), flags)
        if not changes and earlier.get('finished') and finished:
            action = 'skip'
        elif not started:
            action = 'start'
        elif not changes:
            action = 'resume'
        elif overwrite:
            action = 'overwrite'
        else:
            raise config.InputError(f'{folder}: [{stage}] ran with other settings ({"; ".join(changes)}); run the '
                                    'command it ran with to resume it, or add --overwrite to train it again')
        actions.append(action)
        runs = runs or action != 'skip'
    return actions


def main(argv=None):
    args = parse_args(argv)
    stages, evaluation = plan(args)
    out = os.path.normpath(args.out)
    record_path = os.path.join(out, RECORD_NAME)
    record = read_record(out, [folder for *_, folder in stages])
    for (stage, module, flags, folder), action in zip(stages, decide(stages, record, args.overwrite)):
        if action == 'skip':
            print(f'recipe: {stage}: skipped, finished in {folder}', flush=True)
            continue
        extra = {'resume': ['--resume'], 'overwrite': ['--overwrite'], 'start': []}[action]
        print(f'recipe: main.py {stage} {shlex.join(flags + extra)}', flush=True)
        record[stage] = {'flags': flags, 'finished': False}
        path.write_json(record_path, record)  # before the stage: the folders are this recipe's from now on
        start = time.perf_counter()
        module.main(flags + extra)
        record[stage].update(finished=True, seconds=round(time.perf_counter() - start, 1))
        path.write_json(record_path, record)
    # Evaluation writes only its report: it runs every time, so every run ends with the scores.
    print(f'recipe: main.py evaluate {shlex.join(evaluation)}', flush=True)
    return evaluate.main(evaluation)


if __name__ == '__main__':
    config.run_main(main)
