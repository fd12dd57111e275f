"""Data: read and validate `label1|label2 text` lines, multi-hot labels, token ids, batches.

A line is the labels joined by '|', the first ASCII space, then the text. Only that
first ASCII space splits: texts may hold U+3000 or U+00A0. A malformed line is an error
naming file:line; nothing is skipped silently and nothing malformed is trained on.
"""
import collections
import random

import numpy as np

import config
from multilabel import compat  # noqa: F401  (environment for bert4keras, before TensorFlow)
import tensorflow as tf
from bert4keras.tokenizers import Tokenizer, load_vocab
from sklearn.preprocessing import MultiLabelBinarizer
from tqdm import tqdm

Sample = collections.namedtuple('Sample', 'labels text')


class DataError(config.InputError):
    """A data file that cannot be used, with file:line in the message."""


def parse_line(line, where):
    """One line (without its newline) -> Sample; `where` is 'file:line' for errors."""
    labels_part, space, text = line.partition(' ')
    if not space:
        raise DataError(f'{where}: no ASCII space between labels and text: {line[:60]!r}')
    text = text.strip()
    if not text:
        raise DataError(f'{where}: empty text after the labels {labels_part!r}')
    labels = labels_part.split('|')
    for label in labels:
        if not label.strip():
            raise DataError(f'{where}: empty label in {labels_part!r}')
        if label != label.strip():
            raise DataError(f'{where}: label {label!r} has surrounding whitespace')
    return Sample(tuple(dict.fromkeys(labels)), text)  # de-duplicated, order kept


def decoded_lines(path, stream=None):
    """(line number, line) for each line of a UTF-8 file, without its line end (a BOM dropped);
    with `stream`, its bytes instead, `path` naming it (standard input). DataError for a missing
    file, a folder, or bytes that are not UTF-8 (file:line)."""
    opened = stream is None
    if opened:
        try:
            stream = open(path, 'rb')
        except FileNotFoundError:
            raise DataError(f'{path}: no such file') from None
        except IsADirectoryError:
            raise DataError(f'{path}: a folder, not a file') from None
        except OSError as error:
            raise DataError(f'{path}: cannot be read ({error.strerror})') from None
    try:
        for number, raw in enumerate(stream, 1):
            try:
                line = raw.decode('utf-8-sig' if number == 1 else 'utf-8')
            except UnicodeDecodeError as error:
                raise DataError(f'{path}:{number}: not valid UTF-8 ({error.reason} at byte {error.start}); '
                                'convert the file to UTF-8') from None
            yield number, line.rstrip('\r\n')
    finally:
        if opened:
            stream.close()


def read_lines(path, what='lines'):
    """(file:line, line) for each line of a UTF-8 file, without its line end; DataError for a
    missing file, bytes that are not UTF-8, a blank line, or a file without lines."""
    count = 0
    for number, line in decoded_lines(path):
        where = f'{path}:{number}'
        if not line.strip():
            raise DataError(f'{where}: empty line')
        count += 1
        yield where, line
    if not count:
        raise DataError(f'{path}: no {what} in the file')


def read_samples(path):
    """All samples of a file; DataError on the first bad line, the encoding included."""
    return [parse_line(line, where) for where, line in read_lines(path, 'samples')]


def read_texts(path):
    """The texts of a plain-text file, one per line (pretraining input); DataError names file:line."""
    return [line.strip() for _, line in read_lines(path, 'texts')]


def split_validation(samples, valid_ratio, seed):
    """(train, valid): a fixed-seed random share of the samples held out for early stopping."""
    order = list(range(len(samples)))
    random.Random(seed).shuffle(order)
    valid_count = max(1, int(round(len(samples) * valid_ratio))) if valid_ratio > 0 else 0
    valid = [samples[i] for i in sorted(order[:valid_count])]
    train = [samples[i] for i in sorted(order[valid_count:])]
    return train, valid


def label_list(samples):
    """The sorted set of labels in `samples`: the model's output order."""
    return sorted({label for sample in samples for label in sample.labels})


def multi_hot(samples, labels):
    """Samples -> float32 array [n, len(labels)]; labels outside `labels` are dropped."""
    binarizer = MultiLabelBinarizer(classes=labels)
    known = set(labels)
    return binarizer.fit_transform([[l for l in s.labels if l in known] for s in samples]).astype('float32')


def joined_pairs(token_ids, targets, share, maxlen, seed):
    """(token_ids, targets) of extra training samples: two training texts joined into one, labelled
    with both texts' labels (for soft targets, the chance that either holds: 1 - (1-a)(1-b)).

    Most texts of a corpus like DuEE carry one label, and a model that learns from them tends to
    name one event where a text states two; joined pairs show it texts with two stated events and
    both labelled. About share x len(token_ids) pairs are drawn at random with `seed`; a pair
    longer than maxlen tokens is skipped rather than cut, since a cut would lose the second text.
    """
    rng = np.random.default_rng(seed)
    count = len(token_ids)
    wanted = int(round(count * share))
    pairs = rng.integers(count, size=(4 * wanted, 2)) if count > 1 else np.zeros((0, 2), 'int64')
    fitting = [(a, b) for a, b in pairs if a != b and len(token_ids[a]) + len(token_ids[b]) - 2 <= maxlen]
    fitting = fitting[:wanted]
    joined = [token_ids[a][:-1] + token_ids[b][1:] for a, b in fitting]  # [CLS] a b [SEP]
    first, second = (targets[[pair[i] for pair in fitting]] for i in (0, 1))
    return joined, (1 - (1 - first) * (1 - second)).astype(targets.dtype)


def load_tokenizer(vocab_path):
    # RoFormer-v2 char vocabularies are lower-case.
    return Tokenizer(load_vocab(vocab_path), do_lower_case=True)


def encode_texts(tokenizer, texts, maxlen, progress=False):
    """Texts -> list of token-id lists ([CLS] ... [SEP], at most maxlen long)."""
    texts = tqdm(texts, desc='tokenize', unit=' texts', leave=False, disable=not progress or len(texts) < 2000)
    return [tokenizer.encode(text, maxlen=maxlen)[0] for text in texts]


def window_stride(window, stride):
    """Tokens between the starts of two windows of `window` tokens: `stride`, or half a window
    when it is 0. The one rule of every window reader (multilabel/graph_tokenizer.py's too)."""
    return stride or max(1, window // 2)  # max: a 1-token window (maxlen 3) would otherwise never move


def window_starts(token_count, window, stride):
    """Where the windows of a text of `token_count` tokens start ([CLS] and [SEP] not counted).

    One window when the text fits (the same as truncation); else a window every
    `window_stride` tokens and a last one that ends on the text's last token, so every token
    is seen.
    """
    if token_count <= window:
        return [0]
    return list(range(0, token_count - window, window_stride(window, stride))) + [token_count - window]


def encode_windows(tokenizer, texts, maxlen, stride=0, progress=False):
    """Texts -> (token-id lists of every window, index of the text each window belongs to).

    Each text is tokenized whole, [CLS] c1 .. cn [SEP]; a window is [CLS] + c[s:s + maxlen - 2]
    + [SEP] for each start s of `window_starts`. A text that fits gives exactly the ids of
    `encode_texts`. A text's windows are consecutive, in order.
    """
    if stride < 0:
        raise config.InputError(f'--stride {stride}: must be 0 (half a window) or more')
    window = maxlen - 2
    windows, owners = [], []
    texts = tqdm(texts, desc='tokenize', unit=' texts', leave=False, disable=not progress or len(texts) < 2000)
    for index, text in enumerate(texts):
        ids = tokenizer.encode(text)[0]
        cls, tokens, sep = ids[:1], ids[1:-1], ids[-1:]
        for start in window_starts(len(tokens), window, stride):
            windows.append(cls + tokens[start:start + window] + sep)
            owners.append(index)
    return windows, np.array(owners, dtype='int64')


def make_dataset(token_ids, targets, batch_size, shuffle=False, seed=0, first_epoch=0, epochs=1, group_by_length=0):
    """tf.data batches ((token_ids, segment_ids), targets), padded to each batch's longest text.

    Epochs first_epoch .. epochs-1 follow each other; with `shuffle`, epoch e's order is a
    pure function of (seed, e), so a resumed run sees the same data order as an unbroken one.
    With `shuffle` and group_by_length=G > 0, each run of G * batch_size shuffled texts is
    sorted by length and cut into batches, and the batches are shuffled: a batch holds texts
    of about one length, so it pads (and computes) little, with the same number of batches.
    """
    all_ids = tf.ragged.constant(token_ids, dtype=tf.int32)
    all_targets = tf.constant(targets, tf.float32)
    lengths = tf.constant([len(ids) for ids in token_ids], tf.int32)
    count, window = len(token_ids), batch_size * group_by_length
    full_windows, full_batches = (count // window) * window if window else 0, (count // batch_size) * batch_size

    def by_length(order):
        return tf.gather(order, tf.argsort(tf.gather(lengths, order), stable=True))

    def grouped(order, epoch_seed):
        windows = tf.reshape(order[:full_windows], [-1, window])
        order = tf.concat([tf.reshape(tf.map_fn(by_length, windows), [-1]), by_length(order[full_windows:])], 0)
        batches = tf.reshape(order[:full_batches], [-1, batch_size])
        batches = tf.random.experimental.stateless_shuffle(
            batches, seed=tf.random.experimental.stateless_fold_in(epoch_seed, 1))
        return tf.concat([tf.reshape(batches, [-1]), order[full_batches:]], 0)  # the short batch stays last

    def one_epoch(epoch):
        order = tf.range(count)
        if shuffle:
            epoch_seed = tf.stack([tf.constant(seed, tf.int64), epoch])
            order = tf.random.experimental.stateless_shuffle(order, seed=epoch_seed)
            if group_by_length:
                order = grouped(order, epoch_seed)
        rows = tf.data.Dataset.from_tensor_slices(order).map(lambda i: (all_ids[i], all_targets[i]))
        return rows.ragged_batch(batch_size)

    dataset = tf.data.Dataset.range(first_epoch, epochs).flat_map(one_epoch)
    dataset = dataset.map(lambda ids, y: _with_segments(ids.to_tensor(), y))
    return dataset.prefetch(tf.data.AUTOTUNE)


def batches_per_epoch(sample_count, batch_size):
    return -(-sample_count // batch_size)


def _with_segments(token_ids, targets):
    return (token_ids, tf.zeros_like(token_ids)), targets


def pad_batch(token_ids):
    """A list of token-id lists -> [token_ids, segment_ids] numpy arrays, padded with 0."""
    length = max(len(ids) for ids in token_ids)
    padded = np.zeros((len(token_ids), length), dtype='int32')
    for row, ids in enumerate(token_ids):
        padded[row, :len(ids)] = ids
    return [padded, np.zeros_like(padded)]


if __name__ == '__main__':  # `python loader.py --stats FILE [flags]`: the older spelling of `python main.py stats`
    import sys
    import main
    argv = sys.argv[1:]
    if argv[:1] == ['--stats']:
        argv = argv[1:]
    config.run_main(lambda: main.main(['stats', *argv]))
