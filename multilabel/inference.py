"""The inference library under predict.py, evaluate.py, serve, export, suggest and the benches:

- the decision rule (`decide`, and `decide_graph`, the same as TensorFlow ops for an export):
  the single place that turns scores into label sets (threshold, one number or one per label,
  then the top-1 fallback), so training, evaluation, prediction and the exported graph decide
  the same way; `tune_thresholds` fits the per-label thresholds to that rule;
- scoring (`predict_scores`: length-sorted batches through one graph for every shape);
- the precision engines (float32, bfloat16, int8 through TFLite) and `resolve_precision`;
- `Classifier`: a trained model folder (multilabel/model_folder.py) loaded once, scoring in the
  chosen precision, windows for long texts, calibrated scores, decided labels.

TensorFlow, bert4keras and the loader are imported inside the functions that need them:
predict.py imports this module and its --help must not wait for TensorFlow to start.
"""
import contextlib
import os
import weakref

import numpy as np
from tqdm import tqdm

import config
from multilabel import calibration
from multilabel import model_folder
from multilabel import ngram
import path


def decide(scores, threshold, top1_fallback=True):
    """Scores [n, labels] -> multi-hot int array: every label whose score passes `threshold`
    (one number, or one per label); with `top1_fallback`, the best label (the first, on a tie)
    for a row where none passes. Compared in float64, so `decide_graph` decides alike to the
    last bit (NumPy alone would compare float32 scores with a float32 copy of one threshold but
    with the float64 values of a per-label array)."""
    one_hot = (np.asarray(scores, 'float64') > np.asarray(threshold, 'float64')).astype('int32')
    if top1_fallback and len(scores):
        empty = one_hot.sum(axis=1) == 0
        one_hot[empty, scores[empty].argmax(axis=1)] = 1
    return one_hot


def decide_graph(scores, threshold, top1_fallback=True):
    """`decide` as TensorFlow ops, for an exported graph: int32 multi-hot [batch, labels] of the
    float32 `scores` [batch, labels]; the same comparison and the same tie rule."""
    import tensorflow as tf
    passed = tf.cast(scores, tf.float64) > tf.constant(threshold, tf.float64)
    if top1_fallback:
        best = tf.equal(scores, tf.reduce_max(scores, axis=1, keepdims=True))
        first_best = best & tf.equal(tf.cumsum(tf.cast(best, tf.int32), axis=1), 1)  # argmax's first on a tie
        passed = passed | (first_best & ~tf.reduce_any(passed, axis=1, keepdims=True))
    return tf.cast(passed, tf.int32)


def blend_weight(logits, margins, targets, threshold_logit=0.0, top1_fallback=True):
    """(beta, {beta: exact match}) of `logits + beta * margins` over ngram.BETAS on held-out texts:
    the beta that decides best, the smaller on a tie (beta 0: the logits alone)."""
    exact = {beta: float((decide(logits + beta * margins, threshold_logit, top1_fallback) == targets).all(axis=1).mean())
             for beta in ngram.BETAS}
    return max(ngram.BETAS, key=lambda b: (exact[b], -b)), exact


THRESHOLD_GRID = np.round(np.arange(0.05, 0.96, 0.05), 2)


def tune_thresholds(scores, targets, default, top1_fallback=True, min_positives=3, passes=2):
    """One threshold per label, fitted to exact-match accuracy on (scores, targets).

    Coordinate ascent: label by label, the grid value that most raises exact match given the
    others; a value moves only on a strict gain, so the result is never worse than `default`
    on these samples. Labels with fewer than `min_positives` positives keep `default`: a
    handful of samples would only be memorised. (Per-label F1 was tried first: on a model
    that has not learned a label yet it lowers the threshold until that label floods every
    prediction.)
    """
    thresholds = np.full(scores.shape[1], default, dtype='float64')
    tunable = np.flatnonzero(targets.sum(axis=0) >= min_positives)

    def exact_match(candidate):
        return (decide(scores, candidate, top1_fallback) == targets).all(axis=1).mean()

    best = exact_match(thresholds)
    for _ in range(passes):
        for label in tunable:
            for value in THRESHOLD_GRID:
                candidate = thresholds.copy()
                candidate[label] = value
                accuracy = exact_match(candidate)
                if accuracy > best:
                    thresholds, best = candidate, accuracy
    return thresholds


def predict_scores(model, token_ids, batch_size=64, progress=False):
    """Sigmoid scores for encoded texts, in their order.

    Texts are sorted by length before batching, so a batch pads to about its own length
    instead of the longest text in the data (much less work on mixed lengths).
    """
    import loader
    order = np.argsort([len(ids) for ids in token_ids], kind='stable')
    scores = np.zeros((len(token_ids), model.output_shape[-1]), dtype='float32')
    starts = range(0, len(order), batch_size)
    from multilabel.compat import keras
    score = _scoring_function(model) if isinstance(model, keras.Model) else model  # else an engine: Int8Model...
    for start in tqdm(starts, desc='predict', unit=' batches', leave=False, disable=not progress):
        rows = order[start:start + batch_size]
        scores[rows] = np.asarray(score(*loader.pad_batch([token_ids[i] for i in rows])))
    return scores


_scoring_functions = weakref.WeakKeyDictionary()


def _scoring_function(model):
    """The model's inference as one graph for every batch size and length. Keras'
    predict_on_batch traces a new graph for each new input shape, a pause of a tenth of a
    second or more that a server would otherwise meet at every new batch shape."""
    if model not in _scoring_functions:
        import tensorflow as tf
        spec = tf.TensorSpec([None, None], tf.int32)
        _scoring_functions[model] = tf.function(lambda ids, segments: model([ids, segments], training=False),
                                                input_signature=[spec, spec])
    return _scoring_functions[model]


def retune_thresholds(scores, targets, temperature, default, top1_fallback=True):
    """Per-label thresholds fitted to exact match on the calibrated `scores` (the same
    tuning on sigmoid(logit / T)): after calibration a threshold other than 0.5 means another
    logit, so thresholds tuned before no longer apply."""
    return tune_thresholds(calibration.apply(scores, temperature), targets, default, top1_fallback)


class LogitEngine:
    """A Keras classifier called like the engines, (token_ids, segment_ids) -> its
    logits (the input of its sigmoid, which tf-keras keeps on the output), so the same
    batching gives exact logits."""

    def __init__(self, model):
        import model as model_lib
        import tensorflow as tf
        self.output_shape = model.output_shape
        spec = tf.TensorSpec([None, None], tf.int32)
        self.function = tf.function(
            lambda ids, segments: model_lib.sigmoid_logits(model([ids, segments], training=False)),
            input_signature=[spec, spec])

    def __call__(self, token_ids, segment_ids):
        return self.function(token_ids, segment_ids)


def model_logits(model, token_ids, batch_size=64):
    """Logits [n, labels] of a Keras classifier for encoded texts (loader.encode_texts)."""
    return predict_scores(LogitEngine(model), token_ids, batch_size)


PRECISIONS = ('float32', 'bfloat16', 'int8')
# Keras' dtype policy of each precision (int8 is converted to TFLite from the float32 model).
POLICIES = {'float32': 'float32', 'bfloat16': 'mixed_bfloat16', 'int8': 'float32'}


def bfloat16_hardware():
    """Why this machine computes bfloat16 natively, or None: a CPU with AVX512-BF16 or AMX, or
    a GPU of compute capability 8.0 or more (Ampere on). Elsewhere bfloat16 is emulated and
    slower than float32."""
    import tensorflow as tf
    for gpu in tf.config.list_physical_devices('GPU'):
        capability = tf.config.experimental.get_device_details(gpu).get('compute_capability') or (0, 0)
        if tuple(capability) >= (8, 0):
            return f'GPU of compute capability {capability[0]}.{capability[1]}'
    if os.path.exists('/proc/cpuinfo'):
        with open('/proc/cpuinfo') as f:
            flags = next((line.split(':', 1)[1].split() for line in f if line.startswith('flags')), [])
        found = [flag for flag in ('avx512_bf16', 'amx_bf16') if flag in flags]
        if found:
            return 'CPU with ' + ' and '.join(found)
    return None


def resolve_precision(precision):
    """The precision that `precision` means here: `auto` is bfloat16 where the hardware computes it
    natively, else float32. auto may only pick a path whose labels agree with float32's on at least
    99.5% of the real test texts (bench/inference.py measures it; BENCHMARKS.md has the figure).
    int8 is opt-in: auto never picks it."""
    if precision == 'auto':
        return 'bfloat16' if bfloat16_hardware() else 'float32'
    if precision not in PRECISIONS:
        raise config.InputError(f'--precision {precision}: choose one of auto, {", ".join(PRECISIONS)}')
    return precision


@contextlib.contextmanager
def dtype_policy(name):
    """Keras' global dtype policy set to `name` inside the block. A model must be built and its
    graph traced under its policy (bert4keras' attention mixes dtypes otherwise)."""
    from multilabel.compat import keras
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(name)
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(previous)


def int8_model(model):
    """The Keras `model` as a TFLite model with dynamic-range int8 quantization (TensorFlow's own
    converter): the weights of every matrix multiply stored in int8, the activations quantized
    per batch at run time, no calibration data. Builtin TFLite ops only (multilabel/compat.py, fix 5).
    Inputs token_ids and segment_ids, output the scores, as the SavedModel's serving_default."""
    from multilabel import compat
    import tensorflow as tf
    spec = [tf.TensorSpec([None, None], tf.int32, name='token_ids'),
            tf.TensorSpec([None, None], tf.int32, name='segment_ids')]
    function = tf.function(lambda token_ids, segment_ids: model([token_ids, segment_ids], training=False),
                           input_signature=spec)
    with compat.tflite_friendly_align():
        concrete = function.get_concrete_function()
    converter = tf.lite.TFLiteConverter.from_concrete_functions([concrete], model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    return converter.convert()


class Int8Model:
    """A Keras model run in int8 by the TFLite interpreter; called like the scoring function:
    (token_ids, segment_ids) -> scores. Not thread-safe: one caller at a time (multilabel/serve.py scores
    on one worker thread)."""

    def __init__(self, model):
        import tensorflow as tf
        self.output_shape = model.output_shape
        self.interpreter = tf.lite.Interpreter(model_content=int8_model(model), num_threads=os.cpu_count())
        details = self.interpreter.get_input_details()
        self.inputs = [next(d['index'] for d in details if name in d['name']) for name in ('token_ids', 'segment_ids')]
        self.output = self.interpreter.get_output_details()[0]['index']
        self.shape = None

    def __call__(self, token_ids, segment_ids):
        if token_ids.shape != self.shape:  # the interpreter's buffers are sized per input shape
            for index in self.inputs:
                self.interpreter.resize_tensor_input(index, token_ids.shape)
            self.interpreter.allocate_tensors()
            self.shape = token_ids.shape
        for index, value in zip(self.inputs, (token_ids, segment_ids)):
            self.interpreter.set_tensor(index, value)
        self.interpreter.invoke()
        return self.interpreter.get_tensor(self.output).copy()


class Classifier:
    """A trained model loaded once from a weights folder (multilabel/model_folder.py), computing
    in `precision` (auto, float32, bfloat16 or int8; `self.precision` says which one auto chose).
    `self.model` is the Keras model (with the folder's n-gram side, if it has one; `self.transformer`
    is the model without it); `self.engine` scores: the model, or its int8 TFLite copy."""

    def __init__(self, weights_dir=path.WEIGHTS_DIR, threshold=None, top1_fallback=None, precision='float32',
                 long_text=config.DEFAULTS.long_text, stride=config.DEFAULTS.stride):
        import loader
        import model as model_lib
        self.meta = model_folder.read(weights_dir)
        self.labels = self.meta['labels']
        self.maxlen = self.meta['maxlen']
        # An explicit --threshold wins; else the per-label thresholds tuned at training, if any.
        if threshold is None:
            threshold = model_folder.read_thresholds(weights_dir, self.labels)
        self.threshold = self.meta['threshold'] if threshold is None else threshold
        self.top1_fallback = self.meta['top1_fallback'] if top1_fallback is None else top1_fallback
        # Fitted at the end of training (multilabel/calibration.py); a folder written before has none: T = 1.
        try:
            self.temperature = calibration.from_json(self.meta.get('temperature', 1.0), self.labels)
        except ValueError as error:
            raise config.InputError(f'{os.path.join(weights_dir, path.META_NAME)}: temperature: {error}')
        if long_text not in config.CHOICES['long_text']:
            raise config.InputError(f'long_text {long_text!r}: not one of {", ".join(config.CHOICES["long_text"])}')
        self.long_text, self.stride = long_text, stride  # texts over maxlen tokens: truncate, or chunk
        self.tokenizer = loader.load_tokenizer(model_folder.vocab_path(weights_dir))
        self.precision = resolve_precision(precision)
        with dtype_policy(POLICIES[self.precision]):
            self.model = model_lib.build_classifier(
                model_folder.config_path(weights_dir), len(self.labels), dropout=self.meta['dropout'],
                head=self.meta.get('head', 'cls'))
            try:
                self.model.load_weights(model_folder.weights_path(weights_dir))
            except ValueError as error:  # Keras' shape errors, said in the user's terms
                raise config.InputError(f'{weights_dir}: {path.WEIGHTS_NAME} does not fit {path.CONFIG_NAME} and '
                                        f'{path.LABELS_NAME} ({len(self.labels)} labels); the files come from '
                                        f'different runs ({error})') from None
            self.transformer = self.model  # the RoFormer-v2 classifier, without an n-gram side
            blend = model_folder.read_ngram(weights_dir, self.meta)
            if blend:  # train.py --ngram-blend: the n-gram side inside the one model every command scores with
                self.model = ngram.blended(self.model, *blend, ngram.special_ids(self.tokenizer))
            _scoring_function(self.model).get_concrete_function()  # traced under the model's policy
        self.engine = Int8Model(self.model) if self.precision == 'int8' else self.model

    def threshold_json(self):
        """The decision threshold as JSON: one number, or {label: threshold} when tuned per label."""
        if np.ndim(self.threshold) == 0:
            return float(self.threshold)
        return {label: float(t) for label, t in zip(self.labels, self.threshold)}

    def scores(self, texts, batch_size=64, progress=False):
        """Texts -> calibrated scores [n, labels], the ones every decision and answer uses."""
        return calibration.apply(self.raw_scores(texts, batch_size, progress), self.temperature)

    def raw_scores(self, texts, batch_size=64, progress=False):
        """The model's sigmoid scores before the temperature."""
        import loader
        if self.long_text == 'chunk':
            return self.window_scores(texts, batch_size, progress)
        token_ids = loader.encode_texts(self.tokenizer, texts, self.maxlen, progress=progress)
        return predict_scores(self.engine, token_ids, batch_size, progress=progress)

    def window_scores(self, texts, batch_size=64, progress=False):
        """--long-text chunk: every text cut into overlapping windows of maxlen tokens; the
        windows of all the texts are scored together (sorted by length, batched), and each
        label's score of a text is its highest over the text's windows: a label is there when
        any part of the text shows it."""
        import loader
        windows, owners = loader.encode_windows(self.tokenizer, texts, self.maxlen, self.stride, progress=progress)
        scores = predict_scores(self.engine, windows, batch_size, progress=progress)
        first_windows = np.flatnonzero(np.r_[True, owners[1:] != owners[:-1]])  # every text has one or more
        return np.maximum.reduceat(scores, first_windows, axis=0) if len(texts) else scores

    def predict_batch(self, texts, batch_size=64, progress=False):
        """Texts -> (multi-hot array [n, labels], list of label lists, scores [n, labels])."""
        scores = self.scores(texts, batch_size, progress)
        one_hot = decide(scores, self.threshold, self.top1_fallback)
        return one_hot, [[self.labels[i] for i in np.flatnonzero(row)] for row in one_hot], scores

    def predict(self, text):
        """One text -> (multi-hot vector, list of labels)."""
        one_hot, labels, _ = self.predict_batch([text])
        return one_hot[0], labels[0]
