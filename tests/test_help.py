"""Help and names: every flag of every command has help that is true for that command, a
command run through main.py names itself `main.py VERB`, `main.py --help` lists one verb a line,
and training names its devices and precision in the words users know."""
import importlib
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
        if action.dest == 'help':
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
