"""The n-gram side of a model: TF-IDF over a text's token 1-3-grams and one linear SVM per label
(the TF-IDF + LinearSVC model a practitioner would otherwise use), added to the transformer's
logits with a weight chosen on the validation split, inside the one Keras model every command
loads.

    python train.py --ngram-blend ...      # fitted after the last epoch: WEIGHTS/ngram.npz

The two make different mistakes: the SVM reads which n-grams a text holds, the transformer reads
them in context. Both cross their decision point at 0 (sigmoid 0.5, the SVM's margin 0), so
`logit + beta * margin > 0`, with the top-1 fallback, is one decision rule for every beta, and
beta 0 is the transformer alone. The SVM is fitted on the training split; beta is the value of
BETAS with the highest validation exact match (inference.blend_weight; a tie goes to the smaller
beta). The model folder keeps the side (multilabel/model_folder.py).

The features come from the token ids the transformer reads, so no second tokenizer is served:
each 1-, 2- and 3-gram of ordinary tokens (not padding, [CLS] or [SEP]) is hashed into BUCKETS
buckets with integer arithmetic that stays below 2**31, so NumPy (fitting) and TensorFlow (the
served graph: predict, evaluate, serve, export, int8) hash alike. A text's vector is scikit-learn's
TfidfTransformer(sublinear_tf=True) of its bucket counts: tf 1 + ln(count), the smoothed idf, unit
length. The TF-IDF over the raw text's character n-grams (bench/blend.py --side tfidf) reads the
whole text, past maxlen, and needs the text beside the token ids; this side is the one that fits
inside the model. BENCHMARKS.md measures both.

scikit-learn takes a second to import and the layer needs TensorFlow: both are imported inside
the functions, so train.py --help answers at once.
"""
import functools

import numpy as np

import config

ORDERS = (1, 2, 3)
BUCKETS = 2 ** 18
MULTIPLIER = 8191  # (BUCKETS - 1) * MULTIPLIER + MAX_TOKEN_ID + 1 < 2**31: no int32 overflow
MAX_TOKEN_ID = 2 ** 16 - 1
BETAS = (0.0, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 16.0, 24.0, 32.0, 48.0, 64.0)


def special_ids(tokenizer):
    """The ids that are never part of an n-gram: padding, [CLS], [SEP]."""
    return sorted({0, tokenizer._token_start_id, tokenizer._token_end_id})


def check_vocabulary(vocab_size):
    if vocab_size - 1 > MAX_TOKEN_ID:
        raise config.InputError(f'--ngram-blend: the vocabulary has {vocab_size} tokens; its n-gram hashing takes '
                                f'at most {MAX_TOKEN_ID + 1}')


def bucket_ids(token_ids, specials):
    """One text's token ids -> the bucket of each of its n-grams (NumPy; `NgramMargin` in the graph)."""
    ids = np.asarray(token_ids, 'int64')
    ordinary = ~np.isin(ids, specials)
    found = []
    for order in ORDERS:
        count = len(ids) - order + 1
        if count <= 0:
            continue
        hashed = np.full(count, order, 'int64')
        kept = np.ones(count, bool)
        for offset in range(order):
            hashed = (hashed * MULTIPLIER + ids[offset:offset + count] + 1) % BUCKETS
            kept &= ordinary[offset:offset + count]
        found.append(hashed[kept])
    return np.concatenate(found) if found else np.zeros(0, 'int64')


def counts(token_id_lists, specials):
    """Sparse [texts, BUCKETS] n-gram counts."""
    import scipy.sparse
    buckets = [bucket_ids(ids, specials) for ids in token_id_lists]
    rows = np.repeat(np.arange(len(buckets)), [len(b) for b in buckets])
    columns = np.concatenate(buckets) if buckets else np.zeros(0, 'int64')
    return scipy.sparse.csr_matrix((np.ones(len(columns), 'float64'), (rows, columns)),
                                   shape=(len(buckets), BUCKETS))  # duplicates add up


def fit(token_id_lists, targets, specials, seed=0):
    """The side fitted on encoded training texts and their multi-hot targets:
    {'idf': [BUCKETS], 'coef': [BUCKETS, labels], 'intercept': [labels]}, float32. A label
    without both classes in `targets` gets no weights and a margin of +1 or -1 (what its lines say)."""
    from sklearn.feature_extraction.text import TfidfTransformer
    from sklearn.svm import LinearSVC
    tfidf = TfidfTransformer(sublinear_tf=True)
    features = tfidf.fit_transform(counts(token_id_lists, specials))
    labels = targets.shape[1]
    coef = np.zeros((BUCKETS, labels), 'float32')
    intercept = np.zeros(labels, 'float32')
    for label in range(labels):
        column = targets[:, label]
        if column.min() == column.max():
            intercept[label] = 1.0 if column.min() > 0 else -1.0
            continue
        svm = LinearSVC(random_state=seed).fit(features, column)
        coef[:, label], intercept[label] = svm.coef_[0], svm.intercept_[0]
    return {'idf': tfidf.idf_.astype('float32'), 'coef': coef, 'intercept': intercept}


def margins(side, token_id_lists, specials):
    """The SVM margins [texts, labels] of encoded texts, in float64 (the graph computes the same in float32)."""
    from sklearn.preprocessing import normalize
    features = counts(token_id_lists, specials)
    features.data = 1 + np.log(features.data)
    features = normalize(features.multiply(side['idf'].astype('float64')).tocsr())
    return features @ side['coef'].astype('float64') + side['intercept'].astype('float64')


def blended(model, side, beta, specials):
    """A Keras model with `model`'s inputs whose output is sigmoid(its logits + beta * the side's margins)."""
    import model as model_lib
    from multilabel.compat import keras
    DenseLogits, NgramMargin = _layers()
    dense = model.get_layer(model_lib.HEAD_PREFIX + 'Dense')
    logits = DenseLogits(dense, name='ngram_head_logits')(dense.input)
    margin = NgramMargin(side, beta, specials, name='ngram_margin')(model.inputs[0])
    output = keras.layers.Activation('sigmoid', dtype='float32', name='ngram_blend')(logits + margin)
    return keras.Model(model.inputs, output, name=model.name + '_ngram')


@functools.cache
def _layers():
    """(DenseLogits, NgramMargin): Keras layers, so defined once TensorFlow is imported."""
    from multilabel.compat import keras, tf

    class DenseLogits(keras.layers.Layer):
        """The head's Dense layer without its sigmoid (its own weights, shared)."""

        def __init__(self, dense, **kwargs):
            super().__init__(dtype='float32', **kwargs)
            self.dense = dense

        def call(self, features):
            return tf.matmul(tf.cast(features, tf.float32), self.dense.kernel) + self.dense.bias

    class NgramMargin(keras.layers.Layer):
        """token_ids [batch, length] -> beta * the SVM's margins [batch, labels], as `margins` computes
        them: an n-gram's weight is carried by its occurrences in equal shares, so no op beyond
        TFLite's builtins is needed."""

        def __init__(self, side, beta, specials, **kwargs):
            super().__init__(dtype='float32', trainable=False, **kwargs)
            self.specials = list(specials)
            labels = len(side['intercept'])
            self.idf = self.add_weight('idf', (BUCKETS,), trainable=False, initializer='zeros')
            self.coef = self.add_weight('coef', (BUCKETS, labels), trainable=False, initializer='zeros')
            self.intercept = self.add_weight('intercept', (labels,), trainable=False, initializer='zeros')
            self.idf.assign(side['idf'])
            self.coef.assign(side['coef'] * np.float32(beta))
            self.intercept.assign(side['intercept'] * np.float32(beta))

        def call(self, token_ids):
            ids = tf.cast(token_ids, tf.int32)
            ordinary = tf.ones_like(ids, tf.float32)
            for special in self.specials:
                ordinary *= tf.cast(tf.not_equal(ids, special), tf.float32)
            length = tf.shape(ids)[1]
            hashes, kept = [], []
            for order in ORDERS:
                count = tf.maximum(length - order + 1, 0)
                hashed = tf.fill([tf.shape(ids)[0], count], order)
                keep = tf.ones([tf.shape(ids)[0], count], tf.float32)
                for offset in range(order):
                    hashed = tf.math.floormod(hashed * MULTIPLIER + ids[:, offset:offset + count] + 1, BUCKETS)
                    keep *= ordinary[:, offset:offset + count]
                hashes.append(hashed)
                kept.append(keep)
            hashes, kept = tf.concat(hashes, axis=1), tf.concat(kept, axis=1)
            same = (tf.cast(tf.equal(tf.expand_dims(hashes, 2), tf.expand_dims(hashes, 1)), tf.float32)
                    * tf.expand_dims(kept, 1))  # expand_dims, not [:, None]: TFLite has no new-axis slice
            occurrences = tf.maximum(tf.reduce_sum(same, axis=2), 1.0)
            weights = kept * (1 + tf.math.log(occurrences)) * tf.gather(self.idf, hashes)
            norm = tf.sqrt(tf.reduce_sum(weights * weights / occurrences, axis=1, keepdims=True))
            shares = weights / occurrences / tf.maximum(norm, 1e-12)
            return tf.einsum('bn,bnl->bl', shares, tf.gather(self.coef, hashes)) + self.intercept

    return DenseLogits, NgramMargin

