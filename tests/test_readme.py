"""The docs a newcomer reads: the README stays short and says how to run a command after
`make demo`, where the demo's model is and what its vocabulary holds wherever its predictions
are shown; docs/design.md lists which files each command writes and refuses to touch; every
relative link of the README and of docs/ leads to a file (and a heading) that exists."""
import glob
import os
import re

import main
from conftest import ROOT

README_LINES = 250


def read(name):
    with open(os.path.join(ROOT, name), encoding='utf-8') as f:
        return f.read()


def section(text, title):
    """From the heading `title` to the next heading of any level."""
    start = text.index(title)
    following = re.search(r'^#+ ', text[start + len(title):], re.M)
    return text[start:start + len(title) + (following.start() if following else len(text))]


def test_the_readme_is_short():
    lines = read('README.md').count('\n')
    assert lines <= README_LINES, f'README.md has {lines} lines; move detail to a docs/ page'


def test_the_quick_start_says_how_to_run_the_commands_and_where_the_demo_model_is():
    quick = section(read('README.md'), '## Quick start')
    assert '. .venv/bin/activate' in quick and '.venv/bin/python predict.py' in quick
    assert 'weights/demo' in quick and '--weights weights/demo' in quick
    assert '[UNK]' in quick and 'emoji' in quick


def test_wherever_the_demo_predicts_its_vocabulary_is_said():
    for name, shown in (('README.md', 'the model of `make demo`'),
                        ('docs/serving.md', 'the model of `make demo`'),
                        ('docs/serving.md', 'The picture is `python docs/screenshot.py')):
        text = read(name)
        assert shown in text, (name, shown)
        around = text[text.index(shown):text.index(shown) + 400]
        assert '[UNK]' in around, (name, around)


def test_the_docs_list_what_each_command_writes_and_refuses_to_touch():
    table = section(read('docs/design.md'), '## Which files each command writes, and what it refuses to touch')
    rows = [line for line in table.splitlines() if line.startswith('| `')]
    named = ' '.join(row.split('|')[1] for row in rows)
    for command in main.COMMANDS:
        module = main.MODULES.get(command, command).replace('.', '/')
        assert f'`{module}.py`' in named, command
    assert '`make demo`' in named and '`docs/screenshot.py`' in named


def documents():
    return ['README.md', 'weights/README.md'] + sorted(
        os.path.relpath(name, ROOT) for name in glob.glob(os.path.join(ROOT, 'docs', '*.md')))


# [text](target) and ![alt](target), outside code; <img src="target">.
MARKDOWN_LINK = re.compile(r'!?\[[^\]]*\]\(([^)\s]+)\)')
HTML_SOURCE = re.compile(r'<img [^>]*src="([^"]+)"')


def without_code(text):
    return re.sub(r'`[^`\n]*`', '', without_code_blocks(text))


def without_code_blocks(text):
    return re.sub(r'^```.*?^```', '', text, flags=re.M | re.S)


def anchors(text):
    """GitHub's ids of a page's headings: lower case, punctuation dropped, spaces as hyphens;
    a repeated heading gets -1, -2, ..."""
    found, seen = set(), {}
    for heading in re.findall(r'^#+ (.+)$', without_code_blocks(text), re.M):
        slug = re.sub(r'[^\w\- ]', '', heading.strip().lower()).replace(' ', '-')
        found.add(f'{slug}-{seen[slug]}' if slug in seen else slug)
        seen[slug] = seen.get(slug, 0) + 1
    return found


def links(text):
    prose = without_code(text)
    return MARKDOWN_LINK.findall(prose) + HTML_SOURCE.findall(prose)


def test_every_relative_link_of_the_docs_leads_somewhere():
    broken = []
    for name in documents():
        text = read(name)
        for target in links(text):
            if re.match(r'[a-z]+:', target):  # https:, mailto:
                continue
            file_part, _, anchor = target.partition('#')
            linked = os.path.normpath(os.path.join(os.path.dirname(name), file_part)) if file_part else name
            if not os.path.exists(os.path.join(ROOT, linked)):
                broken.append(f'{name}: {target} (no {linked})')
            elif anchor and linked.endswith('.md') and anchor not in anchors(read(linked)):
                broken.append(f'{name}: {target} (no heading #{anchor} in {linked})')
    assert not broken, broken


def test_the_link_check_sees_links_and_headings():
    text = '# A title / 标题\n\nSee [x](docs/x.md#a-b), ![p](p.png) and <img src="q.png" width="1">.\n' \
           '```\n[not](a link)\n```\n'
    assert links(text) == ['docs/x.md#a-b', 'p.png', 'q.png']
    assert anchors(text) == {'a-title--标题'}
    assert links(read('README.md')), 'the README links its docs/ pages'
