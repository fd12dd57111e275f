"""Renamed flags break nothing: a recipe of the older keys still reads, a recipe run recorded
with the older names is the same run, and `stats --weights` counts in the model's tokens
against its maxlen."""
import json
import os

import pytest

import config
import path
import train
from multilabel import recipe
from multilabel import stats


def test_a_recipe_of_the_older_keys_still_reads(tmp_path):
    file = tmp_path / 'r.toml'
    file.write_text('[pretrain]\ninit = "p"\ntrain = ["a.txt"]\n[train]\ntrain = "a.txt"\n[evaluate]\ntest = "t.txt"\n'
                    'report_dir = "r"\n', encoding='utf-8')
    stages, evaluation = recipe.plan(recipe.parse_args([str(file), '--out', str(tmp_path / 'out')]))
    (_, _, pretraining, _), (_, _, training, _) = stages
    assert pretraining[:4] == ['--pretrained', 'p', '--input', 'a.txt'] and training[:2] == ['--input', 'a.txt']
    assert evaluation[:4] == ['--input', 't.txt', '--out', 'r']


def test_a_stage_recorded_with_the_older_names_is_the_same_stage():
    assert not recipe.changed_settings(train, ['--train', 'a.txt', '--precision', 'mixed_bfloat16'],
                                       ['--input', 'a.txt', '--precision', 'bfloat16'])
    assert recipe.changed_settings(train, ['--train', 'a.txt'], ['--input', 'b.txt']) == ["--input: 'a.txt' -> 'b.txt'"]
    assert recipe.changed_settings(train, ['--no-such-flag'], ['--input', 'a.txt'])
    assert recipe.changed_settings(train, None, [])


def test_the_recipe_writes_a_precision_as_help_spells_it(tmp_path):
    file = tmp_path / 'r.toml'
    file.write_text('[train]\nprecision = "mixed_bfloat16"\n', encoding='utf-8')
    [(_, _, flags, _)], _ = recipe.plan(recipe.parse_args([str(file), '--out', str(tmp_path / 'out')]))
    assert flags[:2] == ['--precision', 'bfloat16'] and train.parse_args(flags).precision == 'mixed_bfloat16'
    file.write_text('[train]\nprecision = "half"\n', encoding='utf-8')
    with pytest.raises(config.InputError, match="precision: must be one of float32, float16, bfloat16, auto, not 'half'"):
        recipe.plan(recipe.parse_args([str(file), '--out', str(tmp_path / 'out')]))


def test_stats_takes_the_vocabulary_and_maxlen_of_the_model(trained, capsys):
    weights, _ = trained
    maxlen = path.read_json(os.path.join(weights, path.META_NAME))['maxlen']
    report = stats.main(['--input', path.SAMPLE_TRAIN, '--weights', weights, '--json'])
    assert json.loads(capsys.readouterr().out)['lines'] == report['lines']
    assert report['maxlen'] == maxlen
    assert report == stats.main(['--input', path.SAMPLE_TRAIN, '--vocab', os.path.join(weights, path.VOCAB_NAME),
                                 '--maxlen', str(maxlen), '--json'])
    assert maxlen != config.DEFAULTS.maxlen  # so the report above is the model's, not the default's
    assert stats.main(['--input', path.SAMPLE_TRAIN, '--weights', weights, '--maxlen', '30', '--json']) == \
        stats.main(['--input', path.SAMPLE_TRAIN, '--vocab', os.path.join(weights, path.VOCAB_NAME), '--maxlen', '30',
                    '--json'])
    with pytest.raises(config.InputError, match='no trained model here'):
        stats.main(['--input', path.SAMPLE_TRAIN, '--weights', os.path.join(weights, 'missing')])
