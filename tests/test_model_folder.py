"""multilabel/model_folder.py owns the trained-model folder: its format version is written, a folder
of another version is refused in one line, a folder written before the version existed still
loads; and the import rules of docs/design.md hold (no circle, training never imports predict.py,
no module imports main.py)."""
import ast
import glob
import os
import shutil
import subprocess
import sys

import pytest

import config
import path
import predict
from conftest import ROOT
from multilabel import model_folder


def copy_of(trained, tmp_path):
    folder = str(tmp_path / 'model')
    shutil.copytree(trained[0], folder, ignore=shutil.ignore_patterns('resume', 'saved_model', '.lock'))
    return folder


def test_training_writes_the_format_and_a_folder_of_another_format_is_refused(trained, tmp_path):
    assert model_folder.read_meta(trained[0])['format'] == model_folder.FORMAT
    folder = copy_of(trained, tmp_path)
    model_folder.update_meta(folder, format=model_folder.NGRAM_FORMAT + 1)  # a format no reader here knows
    with pytest.raises(config.InputError, match=f'format {model_folder.NGRAM_FORMAT + 1}; this version reads format'):
        predict.Classifier(folder)
    result = subprocess.run([sys.executable, 'predict.py', '--weights', folder, '文本'], cwd=ROOT,
                            capture_output=True, text=True, timeout=300)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 1 and len(lines) == 1 and path.META_NAME in lines[0], result.stderr[-2000:]


def test_a_folder_written_before_the_format_was_recorded_still_loads(trained, tmp_path):
    folder = copy_of(trained, tmp_path)
    meta = model_folder.read_meta(folder)
    del meta['format']
    path.write_json(os.path.join(folder, path.META_NAME), meta)
    texts = ['青岛地铁施工段坍塌致3人遇难', '中国队夺冠']
    old, current = predict.Classifier(folder), predict.Classifier(trained[0])
    assert (old.predict_batch(texts)[0] == current.predict_batch(texts)[0]).all()


def module_imports():
    """{module: the project modules it imports anywhere but in its `if __name__ == '__main__'` block}."""
    files = {os.path.relpath(f, ROOT)[:-3].replace(os.sep, '.'): f
             for f in glob.glob(os.path.join(ROOT, '*.py')) + glob.glob(os.path.join(ROOT, 'multilabel', '*.py'))
             if not f.endswith('__init__.py')}
    graph = {}
    for name, file in files.items():
        tree = ast.parse(open(file, encoding='utf-8').read())
        tree.body = [node for node in tree.body if not (isinstance(node, ast.If) and '__main__' in ast.unparse(node.test))]
        found = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module == 'multilabel':
                found.update('multilabel.' + alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module:
                found.add(node.module)
        graph[name] = found & set(files)
    return graph


def test_no_import_circle_and_training_never_imports_a_command():
    graph = module_imports()

    def reaches(start, goal, seen=()):
        return any(step == goal or (step not in seen and reaches(step, goal, (*seen, step))) for step in graph[start])
    assert [name for name in graph if reaches(name, name)] == []
    training = ['train', 'pretrain', 'loader', 'model', 'multilabel.run', 'multilabel.history', 'multilabel.scale',
                'multilabel.mlm', 'multilabel.rtd', 'multilabel.inference', 'multilabel.model_folder']
    assert {name: graph[name] & {'predict', 'evaluate', 'main'} for name in training} == {name: set() for name in training}
    assert [name for name in graph if 'main' in graph[name]] == []
