"""A run's resume fingerprint is the settings of the concerns that shape it: fine-tuning (train.py)
data + model + fine-tuning, pretraining (pretrain.py) data + model + pretraining. A field added
to another concern of config.py, or a default changed there, leaves a run started before the
change resumable; a changed setting of its own concerns is still refused."""
import dataclasses
import os

import pytest

import config
import path
import pretrain
import train

FAST = ['--maxlen', '32', '--batch-size', '16', '--max-samples', '40']


@pytest.fixture(scope='module')
def one_of_two_epochs(tiny_pretrained, tmp_path_factory):
    """The command of a pretraining that has run 1 epoch (the resumed run asks for 2)."""
    out = str(tmp_path_factory.mktemp('fingerprint') / 'pretrained')
    command = ['--init', tiny_pretrained, '--out', out, *FAST]
    pretrain.main([*command, '--epochs', '1'])
    return out, command


@pytest.fixture(scope='module')
def fine_tuned_one_of_two_epochs(tiny_pretrained, tmp_path_factory):
    """The command of a fine-tuning that has run 1 epoch (the resumed run asks for 2)."""
    weights = str(tmp_path_factory.mktemp('fingerprint') / 'weights')
    command = ['--pretrained', tiny_pretrained, '--weights', weights, *FAST, '--encoder-lr', '1e-3', '--head-lr', '1e-2']
    train.main([*command, '--epochs', '1'])
    return weights, command


def completed_epochs(out):
    return path.read_json(os.path.join(out, path.RESUME_DIR, path.RESUME_STATE_NAME))['epoch']


def with_a_new_field_in(monkeypatch, *concerns):
    """config.py as a later version with one more field in each of these concern classes."""
    newer = []
    for name in concerns:
        added = dataclasses.make_dataclass(name, [(f'added_to_{name}', float, config.setting(0.1, 'a later setting'))],
                                           bases=(getattr(config, name),))
        monkeypatch.setattr(config, name, added)
        newer.append(added)
    newer_config = dataclasses.make_dataclass('Config', [], bases=(*newer, config.Config))
    monkeypatch.setattr(config, 'Config', newer_config)
    monkeypatch.setattr(config, 'DEFAULTS', newer_config())
    assert all(hasattr(config.DEFAULTS, f'added_to_{name}') for name in concerns)


def test_a_new_fine_tuning_or_inference_setting_leaves_pretraining_resumable(one_of_two_epochs, monkeypatch, capsys):
    out, command = one_of_two_epochs
    newer = dataclasses.make_dataclass('Config', [
        ('label_smoothing', float, dataclasses.field(default=0.1)),       # a fine-tuning field added
        ('encoder_lr', float, dataclasses.field(default=3e-5)),           # a fine-tuning default changed
        ('inference_precision', str, dataclasses.field(default='float32')),  # an inference default changed
    ], bases=(config.Config,))
    monkeypatch.setattr(config, 'Config', newer)
    monkeypatch.setattr(config, 'DEFAULTS', newer())
    pretrain.main([*command, '--epochs', '2', '--resume'])
    assert 'resumed after epoch 1' in capsys.readouterr().out
    assert completed_epochs(out) == 2


def test_a_field_added_to_each_other_concern_leaves_pretraining_resumable(one_of_two_epochs, monkeypatch, capsys):
    out, command = one_of_two_epochs
    with_a_new_field_in(monkeypatch, 'FineTuningSettings', 'InferenceSettings', 'RunSettings')
    epochs = completed_epochs(out) + 1
    pretrain.main([*command, '--epochs', str(epochs), '--resume'])
    assert f'resumed after epoch {epochs - 1}' in capsys.readouterr().out
    assert completed_epochs(out) == epochs


def test_a_changed_pretraining_setting_is_refused(one_of_two_epochs):
    out, command = one_of_two_epochs
    with pytest.raises(config.InputError, match='belongs to a run with other data or settings'):
        pretrain.main([*command, '--epochs', '2', '--resume', '--mask-rate', '0.2'])


def test_a_field_added_to_each_other_concern_leaves_fine_tuning_resumable(fine_tuned_one_of_two_epochs, monkeypatch,
                                                                          capsys):
    weights, command = fine_tuned_one_of_two_epochs
    with_a_new_field_in(monkeypatch, 'PretrainingSettings', 'InferenceSettings', 'RunSettings')
    train.main([*command, '--epochs', '2', '--resume'])
    assert 'resumed after epoch 1' in capsys.readouterr().out
    assert completed_epochs(weights) == 2


def test_a_changed_fine_tuning_setting_is_refused(fine_tuned_one_of_two_epochs):
    weights, command = fine_tuned_one_of_two_epochs
    with pytest.raises(config.InputError, match='belongs to a run with other data or settings'):
        train.main([*command, '--epochs', '3', '--resume', '--encoder-lr', '2e-3'])


def test_the_concerns_of_a_run_are_its_fingerprint():
    """Every setting belongs to one concern, and each run's fingerprint is exactly its concerns' fields."""
    concerns = (config.DataSettings, config.ModelSettings, config.FineTuningSettings, config.LaterFineTuningSettings,
                config.DistillationSettings, config.PretrainingSettings, config.LaterPretrainingSettings,
                config.InferenceSettings, config.RunSettings)
    names = [item.name for concern in concerns for item in dataclasses.fields(concern)]
    assert sorted(names) == sorted(item.name for item in dataclasses.fields(config.Config))
    assert len(names) == len(set(names))
    cfg = config.Config()
    assert set(config.settings_of(cfg, 'fine-tuning')) == {
        'model_size', 'maxlen', 'batch_size', 'encoder_lr', 'head_lr', 'ema_momentum', 'fgm_epsilon', 'threshold',
        'top1_fallback', 'valid_ratio', 'dropout', 'head', 'loss', 'pos_weight', 'pos_weight_cap', 'tune_thresholds',
        'group_by_length', 'seed', 'precision'}  # the fingerprint of the runs started before the concerns existed
    assert config.settings_of(config.Config(rdrop_alpha=0.5), 'fine-tuning')['rdrop_alpha'] == 0.5  # only when on
    assert 'rdrop_alpha' not in config.settings_of(config.Config(rdrop_alpha=0.5), 'pretraining')
    assert config.settings_of(config.Config(joined_share=0.2), 'fine-tuning')['joined_share'] == 0.2
    assert config.settings_of(config.Config(encoder_dropout=0.2), 'fine-tuning')['encoder_dropout'] == 0.2
    assert set(config.settings_of(cfg, 'pretraining')) == {
        'model_size', 'maxlen', 'batch_size', 'mlm_lr', 'warmup', 'weight_decay', 'mask_rate', 'mlm_dropout',
        'objective', 'generator_size', 'rtd_weight', 'valid_ratio', 'group_by_length', 'seed', 'precision'}
    assert config.settings_of(config.Config(mask_span=4), 'pretraining')['mask_span'] == 4  # only when on
    assert 'mask_span' not in config.settings_of(config.Config(mask_span=4), 'fine-tuning')
    assert config.settings_of(config.Config(whole_word_masking=True), 'pretraining')['whole_word_masking'] is True


def test_precision_auto_is_kept_as_the_policy_it_chose(tiny_pretrained, tmp_path, monkeypatch):
    """A run started with --precision auto resumes on the same machine: its fingerprint holds the
    policy auto chose there, not the word auto."""
    from multilabel import inference
    monkeypatch.setattr(inference, 'bfloat16_hardware', lambda: None)
    weights = str(tmp_path / 'weights')
    command = ['--pretrained', tiny_pretrained, '--weights', weights, *FAST, '--precision', 'auto']
    train.main([*command, '--epochs', '1'])
    state = path.read_json(os.path.join(weights, path.RESUME_DIR, path.RESUME_STATE_NAME))
    assert state['run']['config']['precision'] == 'float32'
    train.main([*command, '--epochs', '2', '--resume'])
    assert completed_epochs(weights) == 2
