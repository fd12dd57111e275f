"""Recipes are files: `main.py recipe FILE` pretrains, fine-tunes and evaluates end to end and beats
the label prior; run again it trains nothing; killed with SIGKILL it continues; a bad key or value
is one line naming the file and the key; flags on the command line override a --config file; the
shipped recipes hold the commands they stand for."""
import collections
import hashlib
import os
import signal
import subprocess
import sys
import time

import pytest

import config
import loader
import path
import pretrain
from multilabel import recipe
import train
from conftest import ROOT

TINY = '''
[pretrain]
init = "{tiny}"
maxlen = 32
batch_size = 16
epochs = 1

[train]
train = "{train}"
maxlen = 32
batch_size = {batch_size}
epochs = {epochs}
encoder_lr = 1e-3
head_lr = 1e-2
ema_momentum = 0.9
fgm_epsilon = 0
{extra}

[evaluate]
test = "{test}"
'''


def write_recipe(folder, tiny, epochs=2, batch_size=16, extra=''):
    file = folder / 'tiny.toml'
    file.write_text(TINY.format(tiny=tiny, train=path.SAMPLE_TRAIN, test=path.SAMPLE_TEST, epochs=epochs,
                                batch_size=batch_size, extra=extra), encoding='utf-8')
    return str(file)


def run_recipe(capsys, *flags):
    accuracy = recipe.main(list(flags))
    return accuracy, capsys.readouterr().out


@pytest.fixture(scope='module')
def cooked(tiny_pretrained, tmp_path_factory):
    """(recipe file, output folder, test exact match, printed output) of one whole run."""
    import contextlib
    import io
    folder = tmp_path_factory.mktemp('recipe')
    file, out = write_recipe(folder, tiny_pretrained), str(folder / 'model')
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        accuracy = recipe.main([file, '--out', out])
    return file, out, accuracy, printed.getvalue()


def label_prior(train_file, test_file):
    """Exact match of giving every test text the training file's most frequent label set."""
    counts = collections.Counter(frozenset(s.labels) for s in loader.read_samples(train_file))
    top = max(counts.values())
    test = [frozenset(s.labels) for s in loader.read_samples(test_file)]
    return max(test.count(labels) for labels, count in counts.items() if count == top) / len(test)


def digest(file):
    return hashlib.sha256(open(file, 'rb').read()).hexdigest()


def test_a_recipe_pretrains_fine_tunes_and_evaluates_beating_the_label_prior(cooked):
    _, out, accuracy, printed = cooked
    assert printed.index('recipe: main.py pretrain ') < printed.index('recipe: main.py train ') \
        < printed.index('recipe: main.py evaluate ')
    assert f'--pretrained {out}-pretrained' in printed  # fine-tuned from what the pretraining wrote
    assert os.path.exists(os.path.join(out + '-pretrained', path.CHECKPOINT_NAME + '.index'))
    assert f'exact-match accuracy: {accuracy:.4f} (90 samples)' in printed
    record = path.read_json(os.path.join(out, recipe.RECORD_NAME))
    assert [record[stage]['finished'] for stage in ('pretrain', 'train')] == [True, True]
    assert all(record[stage]['seconds'] > 0 for stage in ('pretrain', 'train'))  # what each stage cost
    assert accuracy > label_prior(path.SAMPLE_TRAIN, path.SAMPLE_TEST), printed[-2000:]


def test_run_again_it_skips_the_finished_stages(cooked, capsys):
    file, out, accuracy, _ = cooked
    written = [os.path.join(out, path.WEIGHTS_NAME), os.path.join(out + '-pretrained', path.CHECKPOINT_NAME + '.index')]
    before = [(os.stat(f).st_mtime_ns, digest(f)) for f in written]
    again, printed = run_recipe(capsys, file, '--out', out)
    assert 'recipe: pretrain: skipped' in printed and 'recipe: train: skipped' in printed
    assert 'Epoch ' not in printed
    assert [(os.stat(f).st_mtime_ns, digest(f)) for f in written] == before
    assert again == pytest.approx(accuracy)


def completed_epochs(folder):
    state_file = os.path.join(folder, path.RESUME_DIR, path.RESUME_STATE_NAME)
    return path.read_json(state_file)['epoch'] if os.path.exists(state_file) else 0


def test_killed_in_fine_tuning_it_skips_the_pretraining_and_resumes(tiny_pretrained, tmp_path, capsys):
    epochs = 4
    file = write_recipe(tmp_path, tiny_pretrained, epochs, batch_size=4, extra='max_samples = 120\npatience = 50')
    out = str(tmp_path / 'model')
    first = subprocess.Popen([sys.executable, 'main.py', 'recipe', file, '--out', out], cwd=ROOT,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 600
    while completed_epochs(out) < 1 and time.time() < deadline and first.poll() is None:
        time.sleep(0.05)
    assert first.poll() is None, 'the recipe ended before it could be killed'
    first.send_signal(signal.SIGKILL)
    first.wait()
    killed_at = completed_epochs(out)
    assert 1 <= killed_at < epochs

    _, printed = run_recipe(capsys, file, '--out', out)
    assert 'recipe: pretrain: skipped' in printed
    assert '--resume' in printed and f'resumed after epoch {killed_at}' in printed
    assert completed_epochs(out) == epochs
    assert 'exact-match accuracy: ' in printed


def test_a_stage_whose_settings_changed_is_refused_unless_overwrite(tiny_pretrained, tmp_path, capsys):
    """Run again with another --set (or an edited file), a finished stage would be trained again:
    refused in one line naming its folder and the setting, nothing replaced; --overwrite retrains."""
    file = write_recipe(tmp_path, tiny_pretrained, epochs=1, extra='max_samples = 120')
    out = str(tmp_path / 'model')
    run_recipe(capsys, file, '--out', out)
    written = [os.path.join(out, path.WEIGHTS_NAME), os.path.join(out, recipe.RECORD_NAME),
               os.path.join(out + '-pretrained', path.CHECKPOINT_NAME + '.index')]
    before = [(os.stat(f).st_mtime_ns, digest(f)) for f in written]
    for item, folder in (('train.epochs=2', out), ('pretrain.epochs=2', out + '-pretrained')):
        with pytest.raises(SystemExit) as refused:
            config.run_main(lambda: recipe.main([file, '--out', out, '--set', item]))
        message = refused.value.code
        assert message.startswith(f'error: {folder}: [') and '\n' not in message, message
        assert '--epochs: 1 -> 2' in message and '--overwrite' in message, message
    assert [(os.stat(f).st_mtime_ns, digest(f)) for f in written] == before

    _, printed = run_recipe(capsys, file, '--out', out, '--set', 'train.epochs=2', '--overwrite')
    assert 'recipe: pretrain: skipped' in printed
    assert 'recipe: main.py train ' in printed and printed.split('recipe: main.py train ')[1].split('\n')[0].endswith(
        '--overwrite')
    assert 'Epoch 2/2' in printed and os.stat(written[0]).st_mtime_ns != before[0][0]  # written again
    flags = path.read_json(written[1])['train']['flags']
    assert flags[flags.index('--epochs') + 1] == '2'
    _, printed = run_recipe(capsys, file, '--out', out, '--set', 'train.epochs=2')  # as it ran now: nothing to train
    assert 'recipe: train: skipped' in printed and 'Epoch ' not in printed


def recipe_error(tmp_path, text, *flags):
    """The one line `main.py recipe` ends with for a recipe file holding `text`."""
    file = tmp_path / 'bad.toml'
    file.write_text(text, encoding='utf-8')
    with pytest.raises(SystemExit) as exit:
        config.run_main(lambda: recipe.main([str(file), '--out', str(tmp_path / 'out'), *flags]))
    assert isinstance(exit.value.code, str) and '\n' not in exit.value.code
    assert exit.value.code.startswith(f'error: {file}: '), exit.value.code
    assert not os.path.exists(tmp_path / 'out')  # refused before anything ran
    return exit.value.code


BAD = [
    ('[train]\nencoder_lr = 1e-4\nno_such_flag = 1\n', '[train] no_such_flag: train.py has no flag --no-such-flag'),
    ('[train]\nepochs = "2"\n', "[train] epochs: must be a whole number, not '2'"),
    ('[train]\nepochs = 1.5\n', '[train] epochs: must be a whole number, not 1.5'),
    ('[train]\nepochs = 0\n', '[train] epochs: must be at least 1, not 0'),
    ('[train]\nloss = "hinge"\n', "[train] loss: must be one of bce, focal, zlpr, not 'hinge'"),
    ('[train]\ntune_thresholds = "yes"\n', "[train] tune_thresholds: must be true or false, not 'yes'"),
    ('[train]\nencoder_lr = true\n', '[train] encoder_lr: must be a number, not True'),
    ('[pretrain]\nmask_rate = 1.5\n[train]\n', '[pretrain] mask_rate: must be more than 0 and less than 1, not 1.5'),
    ('[pretrain]\ntexts = 3\n[train]\n', '[pretrain] texts: must be a list, not 3'),
    ('[evaluate]\nprecision = "fast"\n[train]\n', "[evaluate] precision: must be one of auto, float32, bfloat16, int8"),
    ('[pretrain]\nepochs = 1\n[train]\npretrained = "x"\n', '[train] pretrained: the recipe fine-tunes what its'),
    ('[fine_tune]\nepochs = 1\n', 'fine_tune: not a section of a recipe'),
    ('[train]\nepochs = \n', 'not valid TOML'),
    ('epochs = 1\n', 'epochs: not a section of a recipe'),
    ('', 'no [train] section'),
]


@pytest.mark.parametrize('text, message', BAD, ids=[message for _, message in BAD])
def test_a_bad_key_or_value_is_one_line_naming_the_file_and_the_key(tmp_path, text, message):
    assert message in recipe_error(tmp_path, text)


def test_a_missing_recipe_and_a_foreign_folder_are_one_line(tmp_path):
    missing = str(tmp_path / 'missing.toml')
    with pytest.raises(SystemExit, match=f'^error: {missing}: no such file$'):
        config.run_main(lambda: recipe.main([missing, '--out', str(tmp_path / 'out')]))
    (tmp_path / 'r.toml').write_text('[train]\nepochs = 1\n', encoding='utf-8')
    (tmp_path / 'theirs').mkdir()
    (tmp_path / 'theirs' / 'notes.txt').write_text('not a recipe\n', encoding='utf-8')
    with pytest.raises(SystemExit, match='theirs: not empty, and not from an earlier run of a recipe'):
        config.run_main(lambda: recipe.main([str(tmp_path / 'r.toml'), '--out', str(tmp_path / 'theirs')]))


def test_the_script_says_it_on_stderr_in_one_line_and_exits_1(tmp_path):
    file = tmp_path / 'bad.toml'
    file.write_text('[train]\nencoder_lr = 1e-4\nlearning_rate = 1\n', encoding='utf-8')
    result = subprocess.run([sys.executable, 'main.py', 'recipe', str(file), '--out', str(tmp_path / 'out')],
                            cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 1
    assert result.stderr.strip() == f'error: {file}: [train] learning_rate: train.py has no flag --learning-rate'


def test_flags_on_the_command_line_override_the_config_file(tmp_path):
    file = tmp_path / 'r.toml'
    file.write_text('[pretrain]\nmaxlen = 48\nmask_rate = 0.2\ntrain = ["a.txt", "b.txt"]\n'
                    '[train]\nepochs = 7\nencoder_lr = 1e-4\ntune_thresholds = true\nloss = "zlpr"\n', encoding='utf-8')
    parser = config.ArgumentParser(prog='train.py')  # train.py's flags, as its parse_args adds them
    config.add_flags(parser, 'epochs', 'encoder_lr', 'head_lr', 'tune_thresholds', 'loss')
    config.add_config_flag(parser, 'train')
    args = parser.parse_args(['--config', str(file), '--epochs', '1', '--no-tune-thresholds'])
    assert (args.epochs, args.encoder_lr, args.tune_thresholds, args.loss, args.head_lr) == \
        (1, 1e-4, False, 'zlpr', config.DEFAULTS.head_lr)
    assert parser.parse_args([]).epochs == config.DEFAULTS.epochs  # the file changed one parse, not the parser
    # pretrain.py has the flag: the file over its own defaults, the command line over the file.
    args = pretrain.parse_args(['--config', str(file), '--mask-rate', '0.3'])
    assert (args.maxlen, args.mask_rate, args.train) == (48, 0.3, ['a.txt', 'b.txt'])
    file.write_text('[pretrain]\nmask_rate = "high"\n', encoding='utf-8')
    with pytest.raises(config.InputError, match=r"\[pretrain\] mask_rate: must be a number, not 'high'"):
        pretrain.parse_args(['--config', str(file)])


def stage_flags(name, out):
    stages, evaluation = recipe.plan(recipe.parse_args([os.path.join(ROOT, 'configs', name), '--out', out]))
    return {stage: flags for stage, _, flags, _ in stages}, evaluation


def test_set_changes_one_key_of_the_recipe_for_this_run(tmp_path):
    out = str(tmp_path / 'few-labels')
    file = os.path.join(ROOT, 'configs', 'self-pretrained.toml')
    stages, _ = recipe.plan(recipe.parse_args([file, '--out', out, '--set', 'train.head=cls',
                                               '--set', 'train.encoder-lr=3e-4', '--set', 'pretrain.time_budget=60']))
    changed = {stage: flags for stage, _, flags, _ in stages}
    plain, _ = stage_flags('self-pretrained.toml', out)
    args, before = train.parse_args(changed['train']), train.parse_args(plain['train'])
    assert (args.head, args.encoder_lr, before.head, before.encoder_lr) == ('cls', 3e-4, 'cnn', 1e-4)
    assert vars(args) == {**vars(before), 'head': 'cls', 'encoder_lr': 3e-4}  # nothing else moved
    assert pretrain.parse_args(changed['pretrain']).time_budget == 60
    assert pretrain.parse_args(plain['pretrain']).time_budget == 44


BAD_SET = [
    ('self-pretrained.toml', 'head=cls', '--set head=cls: expected SECTION.KEY=VALUE, SECTION one of pretrain, train, '
                                         'evaluate'),
    ('self-pretrained.toml', 'fine_tune.head=cls', '--set fine_tune.head=cls: expected SECTION.KEY=VALUE'),
    ('self-pretrained.toml', 'train.head', '--set train.head: expected SECTION.KEY=VALUE'),
    ('self-pretrained.toml', 'train.hed=cls', '--set train.hed=cls: train.py has no flag --hed'),
    ('self-pretrained.toml', 'train.head=rnn', "--set train.head=rnn: must be one of cls, cnn, not 'rnn'"),
    ('self-pretrained.toml', 'train.epochs=many', "--set train.epochs=many: must be a whole number, not 'many'"),
    ('demo.toml', 'pretrain.epochs=3', '--set pretrain.epochs=3: the recipe has no [pretrain] section'),
]


@pytest.mark.parametrize('name, item, message', BAD_SET, ids=[item for _, item, _ in BAD_SET])
def test_a_bad_set_is_one_line_naming_it(tmp_path, name, item, message):
    args = recipe.parse_args([os.path.join(ROOT, 'configs', name), '--out', str(tmp_path / 'out'), '--set', item])
    with pytest.raises(config.InputError) as error:
        recipe.plan(args)
    assert str(error.value).startswith(message) and '\n' not in str(error.value)
    assert not (tmp_path / 'out').exists()


def test_the_shipped_recipes_are_the_commands_they_stand_for():
    stages, evaluation = stage_flags('demo.toml', 'weights/demo')
    args = train.parse_args(stages['train'])  # the flags `make demo` trained with before it named the file
    assert (args.pretrained, args.epochs, args.patience, args.batch_size, args.maxlen, args.encoder_lr,
            args.head_lr, args.ema_momentum, args.weights) == \
        ('pretrained/tiny', 40, 8, 16, 64, 1e-3, 1e-2, 0.99, 'weights/demo')
    assert list(stages) == ['train'] and evaluation == ['--weights', 'weights/demo']

    stages, _ = stage_flags('random-init.toml', 'weights/random-init')
    args = train.parse_args(stages['train'])
    assert (args.model_size, args.maxlen, args.batch_size, args.encoder_lr, args.head_lr, args.ema_momentum,
            args.fgm_epsilon, args.time_budget) == ('small', 128, 32, 1e-4, 1e-3, 0.99, 0, 60)

    stages, evaluation = stage_flags('self-pretrained.toml', 'weights/self')
    args = pretrain.parse_args(stages['pretrain'])
    assert (args.layers, args.hidden, args.heads, args.maxlen, args.batch_size, args.mlm_lr, args.epochs,
            args.time_budget, args.budget_decay, args.precision, args.group_by_length, args.objective,
            args.whole_word_masking) == (4, 256, 4, 128, 64, 1e-3, 40, 44, False, 'auto', 50, 'mlm', True)
    assert args.train == ['data/multi-classification-train.txt'] and args.out == 'weights/self-pretrained'
    args = train.parse_args(stages['train'])
    assert (args.maxlen, args.batch_size, args.encoder_lr, args.head_lr, args.ema_momentum, args.epochs,
            args.patience, args.precision, args.group_by_length, args.fgm_epsilon, args.time_budget, args.budget_decay,
            args.ngram_blend) == (128, 32, 1e-4, 1e-3, 0.99, 50, 5, 'auto', 50, 0.5, 35, False, True)
    assert (args.train, args.pretrained) == ('data/multi-classification-train.txt', 'weights/self-pretrained')
    assert args.head == 'cnn'
    assert evaluation == ['--input', 'data/multi-classification-test.txt', '--weights', 'weights/self']


def test_pretraining_reads_the_fine_tuning_file_with_its_split(tmp_path):
    file = tmp_path / 'r.toml'
    file.write_text('[pretrain]\nepochs = 1\n[train]\ndata = "corpus"\nseed = 7\nvalid_ratio = 0.2\n', encoding='utf-8')
    out = str(tmp_path / 'model')
    stages, evaluation = recipe.plan(recipe.parse_args([str(file), '--out', out]))
    (_, _, pretraining, _), (_, _, training, _) = stages
    args = pretrain.parse_args(pretraining)
    assert (args.train, args.seed, args.valid_ratio) == ([os.path.join('corpus', 'multi-classification-train.txt')],
                                                          7, 0.2)
    assert train.parse_args(training).pretrained == out + '-pretrained'
    assert evaluation[:2] == ['--data', 'corpus']  # its test file, not the bundled sample
    stages, _ = recipe.plan(recipe.parse_args([str(file), '--out', out, '--seed', '3']))  # another run of it
    (_, _, pretraining, _), (_, _, training, _) = stages
    assert pretrain.parse_args(pretraining).seed == 3 and train.parse_args(training).seed == 3
    stages, evaluation = recipe.plan(recipe.parse_args([str(file), '--out', out, '--data', 'd.txt', '--test', 't.txt']))
    (_, _, pretraining, _), (_, _, training, _) = stages
    assert pretrain.parse_args(pretraining).train == ['d.txt'] and train.parse_args(training).train == 'd.txt'
    assert evaluation == ['--input', 't.txt', '--weights', out]
    corpus = tmp_path / 'corpus'
    corpus.mkdir()
    stages, evaluation = recipe.plan(recipe.parse_args([str(file), '--out', out, '--data', str(corpus)]))
    (_, _, pretraining, _), (_, _, training, _) = stages
    assert train.parse_args(training).train == str(corpus / 'multi-classification-train.txt')
    assert pretrain.parse_args(pretraining).train == [str(corpus / 'multi-classification-train.txt')]
    assert evaluation == ['--input', str(corpus / 'multi-classification-test.txt'), '--weights', out]
