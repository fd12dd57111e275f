"""pretrain.py's resume fingerprint is the settings that shape a pretraining run: a field
config.Config gains, or a default it changes, for fine-tuning or inference leaves a pretraining
started before the change resumable; a changed pretraining setting is still refused."""
import dataclasses
import os

import pytest

import config
import path
import pretrain

FAST = ['--maxlen', '32', '--batch-size', '16', '--max-samples', '40']


@pytest.fixture(scope='module')
def one_of_two_epochs(tiny_pretrained, tmp_path_factory):
    """The command of a pretraining that has run 1 epoch (the resumed run asks for 2)."""
    out = str(tmp_path_factory.mktemp('fingerprint') / 'pretrained')
    command = ['--init', tiny_pretrained, '--out', out, *FAST]
    pretrain.main([*command, '--epochs', '1'])
    return out, command


def completed_epochs(out):
    return path.read_json(os.path.join(out, path.RESUME_DIR, path.RESUME_STATE_NAME))['epoch']


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


def test_a_changed_pretraining_setting_is_refused(one_of_two_epochs):
    out, command = one_of_two_epochs
    with pytest.raises(config.InputError, match='belongs to a run with other data or settings'):
        pretrain.main([*command, '--epochs', '2', '--resume', '--mask-rate', '0.2'])
