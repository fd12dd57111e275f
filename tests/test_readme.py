"""The README's first minutes: how to run a command after `make demo`, where the demo's model is,
what its vocabulary holds wherever its predictions are shown, and which files each command
writes and refuses to touch."""
import os
import re

import main
from conftest import ROOT

with open(os.path.join(ROOT, 'README.md'), encoding='utf-8') as f:
    README = f.read()


def section(title):
    start = README.index(title)
    following = re.search(r'^##+ ', README[start + len(title):], re.M)
    return README[start:start + len(title) + (following.start() if following else len(README))]


def test_the_quick_start_says_how_to_run_the_commands_and_where_the_demo_model_is():
    quick = section('## Quick start')
    assert '. .venv/bin/activate' in quick and '.venv/bin/python predict.py' in quick
    assert 'weights/demo' in quick and '--weights weights/demo' in quick
    assert '[UNK]' in quick and 'emoji' in quick


def test_wherever_the_demo_predicts_its_vocabulary_is_said():
    for shown in ('the model of `make demo`', 'The picture is `python docs/screenshot.py'):
        around = README[README.index(shown):README.index(shown) + 400]
        assert '[UNK]' in around, around


def test_the_readme_lists_what_each_command_writes_and_refuses_to_touch():
    table = section('### Which files each command writes, and what it refuses to touch')
    rows = [line for line in table.splitlines() if line.startswith('| `')]
    named = ' '.join(row.split('|')[1] for row in rows)
    for command in main.COMMANDS:
        assert f'`{command}.py`' in named, command
    assert '`make demo`' in named and '`docs/screenshot.py`' in named
