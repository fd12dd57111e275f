"""train.py --teacher: the training targets become the labels mixed with the teachers' scores
(multilabel/teacher.py), and the run is otherwise an ordinary, resumable fine-tuning."""
import os

import numpy as np
import pytest

import config
import loader
import path
import train
from multilabel import model_folder
from multilabel import teacher as teacher_lib

FAST = ['--maxlen', '32', '--batch-size', '16', '--max-samples', '80', '--encoder-lr', '1e-3', '--head-lr', '1e-2']


def test_soft_targets_mix_the_labels_with_the_teachers_sigmoid():
    targets = np.array([[1, 0], [0, 1]], 'float32')
    logits = np.array([[0.0, 0.0], [np.log(3), -np.log(3)]])
    np.testing.assert_allclose(teacher_lib.soft_targets(targets, logits, 0.5), [[0.75, 0.25], [0.375, 0.625]])
    np.testing.assert_allclose(teacher_lib.soft_targets(targets, logits, 1.0), [[0.5, 0.5], [0.75, 0.25]])


def test_out_of_fold_margins_are_those_of_texts_the_svm_has_not_seen():
    """Fitted on all lines, the SVM gets its own training lines right; out of fold it is as
    unsure as on new texts, which is what makes its margins worth learning from."""
    samples = loader.read_samples(path.SAMPLE_TRAIN)
    labels = loader.label_list(samples)
    texts, targets = [s.text for s in samples], loader.multi_hot(samples, labels)
    in_sample = teacher_lib.tfidf_pipeline().fit(texts, targets).decision_function(texts)
    out_of_fold = teacher_lib.out_of_fold_margins(texts, targets)
    assert out_of_fold.shape == targets.shape
    exact = lambda margins: (((margins > 0) == (targets > 0)).all(axis=1)).mean()
    assert exact(in_sample) > 0.95
    assert exact(out_of_fold) < exact(in_sample) - 0.1
    assert exact(out_of_fold) > 1 / len(labels)  # still a model: far above guessing
    positives = targets > 0
    assert out_of_fold[positives].mean() < in_sample[positives].mean()
    np.testing.assert_array_equal(out_of_fold, teacher_lib.out_of_fold_margins(texts, targets))  # seeded


def test_train_learns_from_a_model_and_tfidf_and_resumes_only_with_the_same_teachers(trained, tiny_pretrained,
                                                                                   tmp_path, monkeypatch, capsys):
    teacher_folder, _ = trained
    learned = []
    make_dataset = loader.make_dataset
    monkeypatch.setattr(loader, 'make_dataset', lambda ids, targets, *a, **k: learned.append(targets)
                        or make_dataset(ids, targets, *a, **k))
    weights = str(tmp_path / 'student')
    command = ['--pretrained', tiny_pretrained, '--weights', weights, *FAST, '--teacher', teacher_folder, 'tfidf']
    train.main([*command, '--epochs', '1'])
    assert 'teachers: ' in capsys.readouterr().out

    targets = learned[0]
    samples = loader.read_samples(path.default_train_file())[:80]
    train_samples, _ = loader.split_validation(samples, config.DEFAULTS.valid_ratio, config.DEFAULTS.seed)
    hard = loader.multi_hot(train_samples, loader.label_list(samples))
    assert targets.shape == hard.shape
    assert ((targets > 0) & (targets < 1)).all()  # every target carries the teachers' half
    assert (np.abs(targets - hard) <= 0.5 + 1e-6).all()  # and the labels' half
    assert ((targets > 0.5) == (hard > 0)).mean() > 0.9  # the teachers mostly agree with the labels

    state = path.read_json(os.path.join(weights, path.RESUME_DIR, path.RESUME_STATE_NAME))
    assert state['run']['teachers'] == {'teachers': [os.path.abspath(teacher_folder), 'tfidf'],
                                        'teacher_weight': 0.5, 'tfidf_beta': 8.0}
    assert model_folder.read(weights)['labels'] == loader.label_list(samples)  # an ordinary model folder
    with pytest.raises(config.InputError, match='belongs to a run with other data or settings'):
        train.main([*command, '--epochs', '2', '--resume', '--teacher-weight', '0.3'])
    train.main([*command, '--epochs', '2', '--resume'])
    assert path.read_json(os.path.join(weights, path.RESUME_DIR, path.RESUME_STATE_NAME))['epoch'] == 2


@pytest.mark.parametrize('teachers, flags, message', [
    (['tfidf', 'tfidf'], [], 'tfidf is given twice'),
    (['tfidf'], ['--loss', 'zlpr'], 'zlpr does not take'),
    (['no-such-folder'], [], 'no-such-folder'),
])
def test_train_refuses_teachers_it_cannot_learn_from(tiny_pretrained, tmp_path, teachers, flags, message):
    weights = tmp_path / 'student'
    with pytest.raises(config.InputError, match=message):
        train.main(['--pretrained', tiny_pretrained, '--weights', str(weights), *FAST, '--teacher', *teachers,
                    *flags])
    assert not (weights / path.WEIGHTS_NAME).exists()


def test_train_refuses_a_teacher_without_one_of_the_labels(trained, tiny_pretrained, tmp_path):
    data = tmp_path / 'new-label.txt'
    lines = open(path.SAMPLE_TRAIN, encoding='utf-8').read().splitlines()[:60]
    data.write_text('\n'.join(lines + ['新标签 一条带着新标签的句子'] * 5) + '\n', encoding='utf-8')
    with pytest.raises(config.InputError, match='has no label 新标签'):
        train.main(['--pretrained', tiny_pretrained, '--weights', str(tmp_path / 'student'), *FAST,
                    '--input', str(data), '--teacher', trained[0]])
