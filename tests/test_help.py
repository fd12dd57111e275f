"""Help and names: every flag of every command has help that is true for that command, a
command run through main.py names itself `main.py VERB`, `main.py --help` lists one verb a line,
training names its devices and precision in the words users know, and a concept has one flag
name in every command (docs/design.md's "Flags" table), a renamed flag's older name still
parsing as it without being shown."""
import argparse
import importlib
import os
import re
import subprocess
import sys

import pytest

import config
import main
from conftest import ROOT

COMMANDS = [*main.COMMANDS, 'main', 'tools.make_tiny_checkpoint']  # python loader.py --stats is stats'


class Captured(Exception):
    """Raised instead of parsing: carries the parser a command built."""


def parser_of(command, monkeypatch):
    def capture(self, args=None, namespace=None):
        raise Captured(self)
    monkeypatch.setattr(config.ArgumentParser, 'parse_known_args', capture)
    with pytest.raises(Captured) as captured:
        importlib.import_module(main.MODULES.get(command, command)).main([])
    return captured.value.args[0]


def helps(parser):
    """{flag or argument: help text without its default}, for every option but --help."""
    found = {}
    for action in parser._actions:
        if action.dest == 'help' or action.help == argparse.SUPPRESS:  # not in --help: an older spelling
            continue
        name = action.option_strings[-1] if action.option_strings else action.dest
        found[name] = (action.help or '').replace('(default: %(default)s)', '').strip()
    return found


@pytest.mark.parametrize('command', COMMANDS)
def test_every_flag_of_every_command_has_help(command, monkeypatch):
    for flag, text in helps(parser_of(command, monkeypatch)).items():
        assert len(text.split()) >= 2, f'{command} {flag}: {text!r}'


def test_the_help_is_true_for_its_command(monkeypatch):
    pretrain = helps(parser_of('pretrain', monkeypatch))
    assert 'masked-token accuracy' in pretrain['--patience'] and 'exact match' not in pretrain['--patience']
    assert 'devices' not in pretrain['--batch-size']
    for command in ('predict', 'evaluate'):
        assert helps(parser_of(command, monkeypatch))['--batch-size'] == 'texts scored per batch'
    serve = helps(parser_of('serve', monkeypatch))
    assert 'port' in serve['--port'] and '413' in serve['--max-body-bytes']


@pytest.mark.parametrize('verb', ['train', 'audit', 'export'])
def test_a_command_run_through_main_names_itself(verb):
    result = subprocess.run([sys.executable, 'main.py', verb, '--help'], cwd=ROOT, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0 and result.stdout.startswith(f'usage: main.py {verb} '), result.stdout[:300]
    wrong = subprocess.run([sys.executable, 'main.py', verb, '--no-such-flag'], cwd=ROOT, capture_output=True,
                           text=True, timeout=120)
    assert wrong.returncode == 1 and f'(see main.py {verb} --help)' in wrong.stderr, wrong.stderr


def test_no_command_starts_tensorflow_before_its_flags_are_read():
    # The reason the modules that start TensorFlow are imported inside functions: --help is instant.
    modules = [main.MODULES.get(command, command) for command in main.COMMANDS]
    code = (f'import sys\nfor name in {modules!r}:\n    __import__(name)\n'
            "print(sorted(m for m in ('tensorflow', 'keras', 'bert4keras') if m in sys.modules))")
    result = subprocess.run([sys.executable, '-c', code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == '[]', result.stdout


def test_main_help_lists_each_verb_on_its_own_line():
    result = subprocess.run([sys.executable, 'main.py', '--help'], cwd=ROOT, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0
    for verb, sentence in main.COMMANDS.items():
        assert re.search(rf'^  {verb} +{re.escape(sentence)}$', result.stdout, re.M), (verb, result.stdout)


def test_training_names_its_devices_and_precision_in_words(trained):
    _, output = trained
    assert 'devices: 1 (CPU), no distribution' in output, output
    assert 'precision: float32 (' in output and 'Strategy' not in output


def flags_table():
    """[(flag, commands, {command: [older names]})] of docs/design.md's "Flags" table."""
    text = open(os.path.join(ROOT, 'docs', 'design.md'), encoding='utf-8').read()
    table = text[text.index('## Flags'):].split('\n\n')[2]
    rows = []
    for line in table.splitlines()[2:]:
        _, flag, commands, older = [cell.strip() for cell in line.strip('|').split('|')]
        older_names = {}
        for name in re.findall(r'`(\w+) (\S+)`', older):
            older_names.setdefault(name[0], []).append(name[1])
        rows.append((flag.strip('`').split()[0], commands.split(', '), older_names))
    return rows


def module_of(command):
    return importlib.import_module(main.MODULES.get(command, command))


def shown_flags(command):
    return {flag for action in config.parser_of(module_of(command).parse_args)._actions
            for flag in action.option_strings}


REQUIRED = {'suggest': ['-n', '1', '--out', 'o.txt'], 'recipe': ['r.toml', '--out', 'o']}  # besides the flag


def test_a_concept_has_one_flag_name_in_every_command():
    rows = flags_table()
    assert len(rows) >= 8 and {'--input', '--weights', '--pretrained', '--out', '--precision'} <= {r[0] for r in rows}
    for flag, commands, _ in rows:
        for command in commands:
            assert flag in shown_flags(command), (command, flag)
    # No command shows an older name of a concept, unless that name is the command's own flag for another.
    current = {(command, flag) for flag, commands, _ in rows for command in commands}
    older = {name for _, _, names in rows for spellings in names.values() for name in spellings if name.startswith('--')}
    for command in main.COMMANDS:
        for name in older & shown_flags(command):
            assert (command, name) in current, f'{command} shows {name}, an older name'


def test_the_older_names_still_parse_as_the_flag_but_are_not_shown():
    checked = 0
    for flag, _, older_names in flags_table():
        for command, names in older_names.items():
            if flag == '--precision':
                continue  # older values, not names: test_precision_reads_the_same_way_everywhere
            module = module_of(command)
            for name in names:
                assert name not in shown_flags(command), (command, name)
                old = [name, 'x.txt'] if name.startswith('--') else ['x.txt']
                assert vars(module.parse_args(REQUIRED.get(command, []) + old)) == \
                    vars(module.parse_args(REQUIRED.get(command, []) + [flag, 'x.txt'])), (command, name)
                checked += 1
    assert checked >= 9


def test_precision_reads_the_same_way_everywhere(monkeypatch):
    import evaluate
    import pretrain
    import train
    for module in (train, pretrain):
        for given, policy in (('float32', 'float32'), ('float16', 'mixed_float16'), ('bfloat16', 'mixed_bfloat16'),
                              ('mixed_float16', 'mixed_float16'), ('mixed_bfloat16', 'mixed_bfloat16'),
                              ('auto', 'auto')):
            assert module.parse_args(['--precision', given]).precision == policy
    assert evaluate.parse_args(['--precision', 'mixed_bfloat16']).inference_precision == 'bfloat16'
    assert evaluate.parse_args(['--precision', 'int8']).inference_precision == 'int8'
    shown = {command: next(action.metavar for action in config.parser_of(module_of(command).parse_args)._actions
                           if '--precision' in action.option_strings) for command in ('train', 'pretrain', 'evaluate')}
    assert shown == {'train': '{float32,float16,bfloat16,auto}', 'pretrain': '{float32,float16,bfloat16,auto}',
                     'evaluate': '{auto,float32,bfloat16,int8}'}
    with pytest.raises(config.InputError, match="--precision: must be one of float32, float16, bfloat16, auto, not 'half'"):
        train.parse_args(['--precision', 'half'])
    with pytest.raises(config.InputError, match="--precision: must be one of auto, float32, bfloat16, int8, not 'x'"):
        evaluate.parse_args(['--precision', 'x'])
