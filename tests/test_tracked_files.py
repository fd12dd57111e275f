"""Tracked docs and results speak of the project: no folder of the machine a figure was measured
on. Results name models, data and outputs relative to the repository; docs may show system
paths (/usr/bin/chromium, /proc/cpuinfo) and, in a usage line, an output file under /tmp."""
import os
import re
import subprocess

from conftest import ROOT

# An absolute path: a slash at the start of a word, two or more components.
ABSOLUTE = re.compile(r'(?<![\w.~:/-])/([A-Za-z0-9._-]+)/[A-Za-z0-9._-]')
SYSTEM = {'usr', 'etc', 'proc', 'sys', 'dev', 'bin', 'lib', 'opt', 'var', 'srv', 'mnt'}  # the OS's, or a deployment's


def tracked(*patterns):
    listed = subprocess.run(['git', 'ls-files', *patterns], cwd=ROOT, capture_output=True, text=True, check=True)
    return listed.stdout.split()


def machine_paths(name, allowed):
    text = open(os.path.join(ROOT, name), encoding='utf-8').read()
    return [f'{name}:{text.count(chr(10), 0, m.start()) + 1}: {m.group(0)}'
            for m in ABSOLUTE.finditer(text) if m.group(1) not in allowed]


def test_docs_and_code_name_no_folder_of_a_machine():
    found = [hit for name in tracked('*.md', '*.py', '*.html', '*.toml', 'Makefile')
             for hit in machine_paths(name, SYSTEM | {'tmp'})]
    assert not found, found


def test_results_name_files_relative_to_the_repository():
    found = [hit for name in tracked('bench/results/*.json') for hit in machine_paths(name, SYSTEM)]
    assert not found, found
