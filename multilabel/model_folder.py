"""The trained-model folder: the one module that writes and reads its files (names in path.py).

    best_weights.h5   the Keras weights (HDF5, by layer name), written by train.py's best epoch
    bert_config.json  the encoder's architecture, copied from the pretrained checkpoint
    vocab.txt         its vocabulary, copied; model.json holds its SHA-256
    labels.json       the label names, in the order of the model's outputs
    model.json        the metadata: format, num_labels, maxlen, threshold, top1_fallback,
                      dropout, head, pretrained, vocab_sha256, temperature (after calibration)
    thresholds.json   optional: {label: threshold} tuned on the validation split
    ngram.npz         optional (train.py --ngram-blend): the n-gram side (multilabel/ngram.py); model.json
                      then says its beta under "ngram" and has format 2

`FORMAT` is the version of this layout, written into model.json; a folder with an n-gram side is
`NGRAM_FORMAT`, so a version that cannot blend refuses it instead of serving the transformer alone.
A folder of another version is refused in one line instead of being half read. Folders written before the version was recorded
have exactly this layout (their temperature is 1 when they predate calibration): they read as 1.
An export (multilabel/export.py) copies labels, vocab, thresholds and the metadata beside its
SavedModel through `copy_for_export`.
"""
import hashlib
import os
import shutil

import numpy as np

import config
import path

FORMAT = 1
NGRAM_FORMAT = 2
NEEDED = (path.META_NAME, path.LABELS_NAME, path.WEIGHTS_NAME, path.CONFIG_NAME, path.VOCAB_NAME)


def weights_path(folder):
    return os.path.join(folder, path.WEIGHTS_NAME)


def config_path(folder):
    return os.path.join(folder, path.CONFIG_NAME)


def vocab_path(folder):
    return os.path.join(folder, path.VOCAB_NAME)


def vocab_hash(vocab_file):
    with open(vocab_file, 'rb') as f:
        return hashlib.sha256(f.read()).hexdigest()


def write(folder, cfg, labels, pretrained_dir):
    """Everything but the weights, at the start of training: config and vocab copied from
    `pretrained_dir`, labels, metadata; an earlier model's thresholds.json and ngram.npz go (the run
    makes its own)."""
    os.makedirs(folder, exist_ok=True)
    for name in (path.THRESHOLDS_NAME, path.NGRAM_NAME):
        if os.path.exists(os.path.join(folder, name)):
            os.remove(os.path.join(folder, name))
    for name in (path.CONFIG_NAME, path.VOCAB_NAME):
        path.atomic_write(os.path.join(folder, name),
                          lambda temporary, name=name: shutil.copyfile(os.path.join(pretrained_dir, name), temporary))
    path.write_json(os.path.join(folder, path.LABELS_NAME), labels)  # JSON, never pickle
    path.write_json(os.path.join(folder, path.META_NAME), {
        'format': FORMAT,
        'num_labels': len(labels),
        'maxlen': cfg.maxlen,
        'threshold': cfg.threshold,
        'top1_fallback': cfg.top1_fallback,
        'dropout': cfg.dropout,
        'head': cfg.head,
        'pretrained': os.path.basename(os.path.normpath(pretrained_dir)),
        'vocab_sha256': vocab_hash(vocab_path(pretrained_dir)),
    })


def save_weights(folder, model):
    """The Keras model's weights as the folder's best_weights.h5, written whole or not at all."""
    path.atomic_write(weights_path(folder), model.save_weights)


def update_meta(folder, **fields):
    """model.json with `fields` set (the temperature at the end of training)."""
    meta_file = os.path.join(folder, path.META_NAME)
    path.write_json(meta_file, {**path.read_json(meta_file), **fields})


def write_ngram(folder, side, beta):
    """The n-gram side {'idf', 'coef', 'intercept'} (multilabel/ngram.py) and its beta; beta 0
    removes it (the transformer alone)."""
    side_file = os.path.join(folder, path.NGRAM_NAME)
    meta_file = os.path.join(folder, path.META_NAME)
    meta = path.read_json(meta_file)
    if beta:
        path.atomic_write(side_file, lambda temporary: np.savez_compressed(temporary, **side))
        meta.update(format=NGRAM_FORMAT, ngram={'beta': beta, 'buckets': len(side['idf'])})
    else:
        meta.pop('ngram', None)
        meta['format'] = FORMAT
        if os.path.exists(side_file):
            os.remove(side_file)
    path.write_json(meta_file, meta)


def read_ngram(folder, meta):
    """(side, beta) of a folder blended with an n-gram side, else None; one line naming the file
    when the side is missing or damaged."""
    if 'ngram' not in meta:
        return None
    side_file = os.path.join(folder, path.NGRAM_NAME)
    if not os.path.exists(side_file):
        raise config.InputError(f'{folder}: {path.META_NAME} blends an n-gram side but {path.NGRAM_NAME} is missing; '
                                'copy the whole folder')
    try:
        with np.load(side_file, allow_pickle=False) as saved:
            side = {name: saved[name] for name in ('idf', 'coef', 'intercept')}
    except (OSError, KeyError, ValueError) as error:
        raise config.InputError(f'{side_file}: not an n-gram side written by train.py --ngram-blend ({error})') from None
    if (side['idf'].shape != (meta['ngram']['buckets'],) or len(side['intercept']) != meta['num_labels']
            or side['coef'].shape != (len(side['idf']), meta['num_labels'])):
        raise config.InputError(f'{side_file}: its arrays do not fit {path.META_NAME} ({meta["ngram"]["buckets"]} '
                                f'buckets, {meta["num_labels"]} labels); the file is damaged or from another run')
    return side, meta['ngram']['beta']


def write_thresholds(folder, labels, thresholds):
    path.write_json(os.path.join(folder, path.THRESHOLDS_NAME), dict(zip(labels, map(float, thresholds))))


def read_meta(folder):
    """model.json as it is, unchecked (an export's, or a model folder's before it is complete)."""
    return path.read_json(os.path.join(folder, path.META_NAME))


def read(folder, flag='--weights'):
    """The folder's metadata with its 'labels', checked: every file there, this format, labels and
    vocabulary those of the training run. config.InputError in one line otherwise, whose hint names
    `flag`, the flag that gave the folder."""
    missing = [name for name in NEEDED if not os.path.exists(os.path.join(folder, name))]
    if missing:
        raise config.InputError(f'{folder}: no trained model here (missing {", ".join(missing)}); '
                                f'run train.py first or pass {flag}')
    meta_file = os.path.join(folder, path.META_NAME)
    meta = path.read_json(meta_file)
    if meta.get('format', 1) not in (FORMAT, NGRAM_FORMAT):
        raise config.InputError(f'{meta_file}: a model folder of format {meta.get("format")!r}; this version '
                                f'reads formats {FORMAT} and {NGRAM_FORMAT} (train it again, or use the version '
                                'that wrote it)')
    meta['labels'] = path.read_json(os.path.join(folder, path.LABELS_NAME))
    if len(meta['labels']) != meta['num_labels']:
        raise config.InputError(f'{folder}: {path.LABELS_NAME} has {len(meta["labels"])} labels but the model '
                                f'was trained with {meta["num_labels"]}; the files come from different runs')
    if vocab_hash(vocab_path(folder)) != meta['vocab_sha256']:
        raise config.InputError(f'{folder}: {path.VOCAB_NAME} is not the vocabulary the model was trained with')
    return meta


def read_thresholds(folder, labels):
    """The per-label thresholds tuned at training, in `labels` order, or None when there are none."""
    thresholds_file = os.path.join(folder, path.THRESHOLDS_NAME)
    if not os.path.exists(thresholds_file):
        return None
    tuned = path.read_json(thresholds_file)
    if sorted(tuned) != sorted(labels):
        raise config.InputError(f'{thresholds_file}: its labels differ from {path.LABELS_NAME}; '
                                'the files come from different runs')
    return np.array([tuned[label] for label in labels])


def read_labels(folder):
    """The label names alone (the model diagram needs no more)."""
    return path.read_json(os.path.join(folder, path.LABELS_NAME))


def copy_for_export(folder, out, meta, per_label):
    """Beside an exported SavedModel in `out`: labels, vocab, the thresholds when the export decides
    per label, and `meta` as model.json, last (its export mark says the folder is whole)."""
    for name in [path.LABELS_NAME, path.VOCAB_NAME] + ([path.THRESHOLDS_NAME] if per_label else []):
        shutil.copyfile(os.path.join(folder, name), os.path.join(out, name))
    path.write_json(os.path.join(out, path.META_NAME), meta)
