"""Clear errors for bad files; predict survives anything a user types; no pickle is ever loaded."""
import itertools
import os
import pickle
import shutil
import subprocess
import sys

import numpy as np
import pytest

import evaluate
import model as model_lib
import path
import predict
from conftest import ROOT


@pytest.mark.parametrize('script, flags, message', [
    ('train.py', ['--train', 'no/such/file.txt'], 'no/such/file.txt: no such file'),
    ('evaluate.py', ['--weights', 'no/such/folder'], 'no trained model here'),
    ('train.py', ['--from-model', 'no/such/folder'], 'run train.py first or pass --from-model'),
    ('train.py', ['--teacher', 'no/such/folder'], 'run train.py first or pass --teacher'),
    ('predict.py', ['--weights', 'no/such/folder', '文本'], 'run train.py first or pass --weights'),
    ('predict.py', ['--weights', 'no/such/folder', '文本'], 'no trained model here'),
    ('main.py', ['export', '--weights', 'no/such/folder'], 'no trained model here'),
    ('main.py', ['serve', '--weights', 'no/such/folder'], 'no trained model here'),
    ('train.py', ['--strategy', 'multiworker'], 'needs TF_CONFIG'),
])
def test_scripts_report_bad_input_in_one_line(script, flags, message):
    result = subprocess.run([sys.executable, script, *flags], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith('error: ')
    assert message in result.stderr and 'Traceback' not in result.stderr
    assert not os.path.exists(os.path.join(ROOT, 'no')), 'a refused command left a folder behind'


def test_a_vocabulary_that_does_not_fit_the_config_is_refused(tiny_pretrained, tmp_path):
    folder = tmp_path / 'mixed'
    shutil.copytree(tiny_pretrained, folder)
    shutil.copy(os.path.join(path.pretrained_dir('small'), path.VOCAB_NAME), folder)
    with pytest.raises(model_lib.CheckpointError, match='vocab_size'):
        model_lib.check_pretrained(str(folder))
    model_lib.check_pretrained(tiny_pretrained)  # the real pair passes


def test_weights_from_another_run_are_refused_with_a_clear_message(trained, tiny_pretrained, tmp_path):
    weights, _ = trained
    other = tmp_path / 'other'
    shutil.copytree(weights, other)
    labels = path.read_json(str(other / path.LABELS_NAME))[:-1]
    path.write_json(str(other / path.LABELS_NAME), labels)
    meta = path.read_json(str(other / path.META_NAME))
    path.write_json(str(other / path.META_NAME), dict(meta, num_labels=len(labels)))
    with pytest.raises(ValueError, match='different runs'):
        predict.Classifier(str(other))
    meta_only = tmp_path / 'meta-only'
    shutil.copytree(weights, meta_only)
    path.write_json(str(meta_only / path.META_NAME), dict(meta, num_labels=meta['num_labels'] + 1))
    with pytest.raises(ValueError, match='different runs'):
        predict.Classifier(str(meta_only))


def test_unknown_test_labels_are_reported_and_the_rest_evaluated(trained, tmp_path, capsys):
    weights, _ = trained
    test_file = tmp_path / 'test.txt'
    test_file.write_text('人生-死亡|新标签 某人去世\n灾害/意外-车祸 两车相撞\n', encoding='utf-8')
    accuracy = evaluate.main(['--weights', weights, '--test', str(test_file)])
    captured = capsys.readouterr()
    assert 'labels unknown to the model are left out of the scores: 新标签' in captured.err
    assert f'exact-match accuracy: {accuracy:.4f} (2 samples)' in captured.out


@pytest.mark.parametrize('text', ['', '   \u3000', '测' * 100_000, '😀🔥 地震了😱', 'Apple releases a new phone',
                                  '臺灣颱風造成嚴重災害', '\x00\x07\x1b[31m控制字符\r', '\ufffd'])
def test_predict_survives_anything_a_user_types(trained, text):
    weights, _ = trained
    classifier = predict.Classifier(weights)
    one_hot, labels = classifier.predict(text)
    assert one_hot.shape == (len(classifier.labels),)
    assert labels == [classifier.labels[i] for i in np.flatnonzero(one_hot)]


def test_predict_streams_its_input(trained):
    endless = (f'第{i}条新闻' for i in itertools.count())
    first = next(predict.read_chunks(endless, 3))
    assert first == ['第0条新闻', '第1条新闻', '第2条新闻']  # read without exhausting the input


def test_empty_text_gets_a_note(trained, capsys):
    weights, _ = trained
    predict.main(['--weights', weights, ''])
    assert 'note: empty text' in capsys.readouterr().err


def test_no_pickle_is_loaded(trained, monkeypatch):
    weights, _ = trained

    def refuse(*args, **kwargs):
        raise AssertionError('pickle was loaded')

    monkeypatch.setattr(pickle, 'load', refuse)
    monkeypatch.setattr(pickle, 'loads', refuse)
    monkeypatch.setattr(pickle, 'Unpickler', refuse)
    classifier = predict.Classifier(weights)
    assert classifier.predict('青岛地铁施工段坍塌致3人遇难')[1]
