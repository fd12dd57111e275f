"""Bench scripts and the suite's modules keep apart: tests put bench/ on sys.path, where a
script named like a module would be imported in the module's place."""
import glob
import os

from conftest import ROOT


def test_no_bench_script_is_named_like_a_module_of_the_suite():
    modules = {os.path.basename(name) for name in glob.glob(os.path.join(ROOT, '*.py'))}
    scripts = {os.path.basename(name) for name in glob.glob(os.path.join(ROOT, 'bench', '*.py'))}
    assert not modules & scripts
