"""Nothing a command did not write is deleted or replaced: export refuses folders that are not
its own earlier exports and replaces its own only once the new one is whole; train and pretrain
refuse a folder with a finished model unless --resume or --overwrite; `make demo` writes its own
folder; docs/screenshot.py leaves the tracked picture alone unless told."""
import hashlib
import os
import shutil
import subprocess
import sys

import pytest

import path
from conftest import ROOT, run_script


def snapshot(folder):
    """{relative path: sha256} of every file below `folder`."""
    found = {}
    for parent, _, names in os.walk(folder):
        for name in names:
            full = os.path.join(parent, name)
            with open(full, 'rb') as f:
                found[os.path.relpath(full, folder)] = hashlib.sha256(f.read()).hexdigest()
    return found


def run(script, *flags, cwd=ROOT):
    return run_script(script, *flags, cwd=cwd)


def assert_refused(result, *words):
    assert result.returncode == 1, result.stderr[-3000:]
    assert 'Traceback' not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith('error: '), result.stderr
    for word in words:
        assert word in last, last


@pytest.fixture
def user_weights(trained, tmp_path):
    """A copy of the trained model in tmp_path/project/weights, with a user's own file in it and beside it."""
    project = tmp_path / 'project'
    weights = project / 'weights'
    shutil.copytree(trained[0], weights)
    (weights / 'notes.md').write_text('my notes')
    (project / 'thesis.tex').write_text('mine')
    return project, weights


@pytest.mark.parametrize('out', ['weights', '.', 'weights/resume', 'weights/plots'])
def test_export_refuses_the_weights_folder_what_holds_it_and_what_is_in_it(user_weights, out):
    project, weights = user_weights
    (weights / path.PLOTS_DIR).mkdir(exist_ok=True)
    before = snapshot(project)
    result = run(os.path.join(ROOT, 'main.py'), 'export', '--weights', 'weights', '--out', out, cwd=project)
    assert_refused(result, '--out')
    assert snapshot(project) == before, 'a refused export touched files'


def test_export_refuses_a_folder_that_is_not_an_earlier_export(user_weights, tmp_path):
    _, weights = user_weights
    mine = tmp_path / 'mine'
    mine.mkdir()
    (mine / 'data.csv').write_text('1,2\n')
    result = run('main.py', 'export', '--weights', str(weights), '--out', str(mine))
    assert_refused(result, str(mine), 'not an export')
    assert snapshot(mine) == {'data.csv': hashlib.sha256(b'1,2\n').hexdigest()}
    # A file where the folder would go is not replaced either.
    file = tmp_path / 'file'
    file.write_text('x')
    assert_refused(run('main.py', 'export', '--weights', str(weights), '--out', str(file)), str(file))
    assert file.read_text() == 'x'


def test_export_marks_its_folder_replaces_only_its_own_and_a_failed_export_keeps_the_old(user_weights, tmp_path,
                                                                                          monkeypatch):
    from multilabel import export
    _, weights = user_weights
    out = tmp_path / 'exports' / 'model'
    export.main(['--weights', str(weights), '--out', str(out), '--precision', 'float32'])
    assert path.read_json(str(out / path.META_NAME))['export']
    first = snapshot(out)
    export.main(['--weights', str(weights), '--out', str(out), '--precision', 'float32'])  # its own: replaced
    second = snapshot(out)
    assert set(second) == set(first)

    from multilabel.compat import tf

    def broken(*args, **kwargs):
        raise RuntimeError('disk full')
    monkeypatch.setattr(tf.saved_model, 'save', broken)
    with pytest.raises(RuntimeError, match='disk full'):
        export.main(['--weights', str(weights), '--out', str(out), '--precision', 'float32'])
    assert snapshot(out) == second
    assert os.listdir(out.parent) == ['model'], 'a failed export left its temporary folder'
    # The default place, WEIGHTS/saved_model, is fine.
    monkeypatch.undo()
    export.main(['--weights', str(weights), '--precision', 'float32'])
    assert os.path.exists(weights / path.SAVED_MODEL_DIR / 'saved_model.pb')
    assert (weights / 'notes.md').read_text() == 'my notes'


def test_a_finished_model_survives_a_second_training_without_overwrite(trained, tiny_pretrained, tmp_path):
    weights = tmp_path / 'weights'
    shutil.copytree(trained[0], weights)
    before = snapshot(weights)
    train = ['train.py', '--pretrained', tiny_pretrained, '--weights', str(weights), '--epochs', '1',
             '--max-samples', '40', '--maxlen', '32']
    result = run(*train)
    assert_refused(result, str(weights), '--overwrite', '--resume')
    assert snapshot(weights) == before
    assert 'data:' not in result.stdout  # refused before the data was read
    result = run(*train, '--overwrite')
    assert result.returncode == 0, result.stderr[-3000:]
    assert snapshot(weights)[path.WEIGHTS_NAME] != before[path.WEIGHTS_NAME]
    assert_refused(run(*train, '--overwrite', '--resume'), '--overwrite', '--resume')


def test_a_finished_checkpoint_survives_a_second_pretraining_without_overwrite(tiny_pretrained, tmp_path):
    out = tmp_path / 'pretrained'
    shutil.copytree(tiny_pretrained, out)
    before = snapshot(out)
    pretrain = ['pretrain.py', '--init', tiny_pretrained, '--out', str(out), '--epochs', '1', '--max-samples', '40',
                '--maxlen', '32', '--batch-size', '16']
    result = run(*pretrain)
    assert_refused(result, str(out), '--overwrite', '--resume')
    assert snapshot(out) == before
    result = run(*pretrain, '--overwrite')
    assert result.returncode == 0, result.stderr[-3000:]


def test_a_run_never_trains_into_the_folder_it_learns_from(trained, tiny_pretrained, tmp_path):
    """--overwrite replaces an output, never an input: growing a model in its own folder, distilling
    a teacher into itself or pretraining over the starting checkpoint would lose what it reads."""
    import config
    import pretrain
    import train
    weights, checkpoint = tmp_path / 'weights', tmp_path / 'pretrained'
    shutil.copytree(trained[0], weights)
    shutil.copytree(tiny_pretrained, checkpoint)
    before = snapshot(weights), snapshot(checkpoint)
    common = ['--epochs', '1', '--max-samples', '40', '--maxlen', '32', '--overwrite']
    for flags, out, read_flag in ((['--from-model', str(weights)], weights, '--from-model'),
                                  (['--pretrained', str(checkpoint)], checkpoint, '--pretrained'),
                                  (['--pretrained', tiny_pretrained, '--teacher', 'tfidf', str(weights)], weights,
                                   '--teacher')):
        with pytest.raises(config.InputError, match=f"^--weights {out}: the {read_flag} this run reads"):
            train.main([*flags, '--weights', str(out), *common])
    with pytest.raises(config.InputError, match=f'^--out {checkpoint}: the --pretrained this run reads'):
        pretrain.main(['--pretrained', str(checkpoint), '--out', str(checkpoint), *common])
    assert (snapshot(weights), snapshot(checkpoint)) == before


def test_make_demo_writes_its_own_folder_and_can_run_twice():
    result = subprocess.run(['make', '-n', 'demo'], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    commands = [line for line in result.stdout.splitlines() if 'main.py ' in line]
    train, *others = commands
    assert ' train ' in train and '--weights weights/demo' in train and '--overwrite' in train
    assert [line.split('main.py ')[1].split()[0] for line in others] == ['evaluate', 'plot', 'predict']
    assert all('--weights weights/demo' in line for line in others), others


def test_the_screenshot_script_does_not_overwrite_the_tracked_picture_by_default():
    sys.path.insert(0, os.path.join(ROOT, 'docs'))
    import screenshot
    assert screenshot.parse_args(['--weights', 'w']).out is None  # a new temporary file
    assert screenshot.parse_args(['--out', 'docs/page.png']).out == 'docs/page.png'
