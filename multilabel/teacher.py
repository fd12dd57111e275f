"""Distillation targets: what a student learns when train.py is given --teacher.

A teacher is a trained model folder, or `tfidf`: character 1-3-gram TF-IDF + one-vs-rest
LinearSVC, the model a practitioner would otherwise use, whose mistakes differ from a
transformer's. The teachers' view of a training text is one logit per label: the mean of the
model folders' logits plus --tfidf-beta times the SVM's margin (both cross their decision point
at 0, so the sum is a blend of the two, bench/blend.py's rule). The student's target is

    (1 - teacher_weight) * the text's labels + teacher_weight * sigmoid(the teachers' logit)

and binary cross-entropy takes soft targets as they are.

A model scores its own training texts with a confidence it has not earned there. The TF-IDF
teacher is fitted out of fold (each fifth of the training lines scored by a model fitted on the
other four fifths), so its margins on a training text are the ones it would give a new text;
the model folders' are not, unless their own training lines differ from the student's.

scikit-learn takes a second to import and the model folders start TensorFlow: both are imported
inside the functions, so train.py --help answers at once.
"""
import os

import numpy as np

import config
from multilabel import audit
from multilabel import calibration

TFIDF = 'tfidf'
FOLDS = 5


def tfidf_pipeline(seed=0):
    """The TF-IDF teacher (and bench/accuracy.py's peer), unfitted: the audit's TF-IDF over
    character 1-3-grams + one-vs-rest LinearSVC."""
    from sklearn.multiclass import OneVsRestClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.svm import LinearSVC
    return make_pipeline(audit.vectorizer(), OneVsRestClassifier(LinearSVC(random_state=seed)))


def out_of_fold_margins(texts, targets, seed=0, folds=FOLDS):
    """The TF-IDF teacher's margins [n, labels] for `texts`, each fold's from a model that did
    not see it. A label absent from a fold's training part gets a constant margin there."""
    import warnings
    from sklearn.model_selection import KFold, cross_val_predict
    with warnings.catch_warnings():  # 'Label N is present in all training examples': the constant margin above
        warnings.simplefilter('ignore', UserWarning)
        return cross_val_predict(tfidf_pipeline(seed), list(texts), targets, method='decision_function',
                                 cv=KFold(min(folds, len(texts)), shuffle=True, random_state=seed))


def check_teachers(teachers):
    """--teacher values: `tfidf` at most once, every other one a model folder."""
    from multilabel import model_folder
    if teachers.count(TFIDF) > 1:
        raise config.InputError(f'--teacher: {TFIDF} is given twice')
    for folder in teachers:
        if folder != TFIDF:
            model_folder.read(folder, '--teacher')  # a one-line error for a folder that is not a trained model


def model_logits(folder, texts, labels):
    """A model folder's calibrated logits [n, labels] for `texts`, its columns in `labels`' order."""
    from multilabel import inference
    classifier = inference.Classifier(folder)
    missing = [label for label in labels if label not in classifier.labels]
    if missing:
        raise config.InputError(f'--teacher {folder}: it has no label {", ".join(missing[:3])}'
                                + (f' and {len(missing) - 3} more' if len(missing) > 3 else ''))
    columns = [classifier.labels.index(label) for label in labels]
    return calibration.logits_of(classifier.scores(texts))[:, columns]


def teacher_logits(teachers, texts, targets, labels, tfidf_beta, seed=0):
    """The teachers' logit [n, labels] of each training text (see the module's docstring)."""
    folders = [teacher for teacher in teachers if teacher != TFIDF]
    logits = np.zeros(targets.shape, 'float64')
    if folders:
        logits += np.mean([model_logits(folder, texts, labels) for folder in folders], axis=0)
    if TFIDF in teachers:
        logits += tfidf_beta * out_of_fold_margins(texts, targets, seed)
    return logits


def soft_targets(targets, logits, teacher_weight):
    """(1 - teacher_weight) * targets + teacher_weight * sigmoid(logits), as float32."""
    return ((1 - teacher_weight) * targets + teacher_weight * calibration.expit(logits)).astype('float32')


def describe(teachers):
    return ', '.join(TFIDF + ' (out of fold)' if t == TFIDF else os.path.normpath(t) for t in teachers)
