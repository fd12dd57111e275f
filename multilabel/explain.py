"""Which characters of a text raised a label's score: per-character attributions, the top
spans, and a check that they are faithful.

    from multilabel import explain
    explain.explain(classifier, text)                    # the decided labels, by occlusion
    explain.explain(classifier, text, [3], 'integrated_gradients', top_k=3)
    # -> [{'label': ..., 'index': 3, 'score': 0.91,
    #      'attributions': [one float per character of text],
    #      'spans': [{'start': 4, 'end': 5, 'text': '塌', 'weight': 0.42}, ...]}]
    explain.faithfulness(classifier, texts, k=5)         # mean score drop curves, see below

Methods (METHODS), all on the tokens the model sees (the first maxlen, as truncation keeps):
- occlusion: each token in turn replaced by [MASK]; its weight is the drop of the label's
  score. Only forward passes, batched, so it runs on any engine (float32, bfloat16, int8).
- gradient_x_input: the gradient of the label's logit with respect to each token's embedding,
  dotted with that embedding: one forward and backward pass.
- integrated_gradients (Sundararajan et al. 2017): the same gradient averaged along the path
  from a zero token embedding to the real one (STEPS midpoints); the weights then add up to
  the logit's change from that baseline, so a saturated sigmoid hides nothing.
The gradient methods read the logit (the sigmoid's input), not the score: near 0 or 1 the
score's gradient vanishes while the evidence does not. They scale each position's output of
the Embedding-Token layer by a factor alpha and take d logit / d alpha (alpha = 1:
gradient x input; alpha from 0 to 1: integrated gradients), [CLS] and [SEP] left at 1.
Their weights are in logit units, occlusion's in score units; within one answer they rank.

Alignment: the tokenizer lower-cases, strips accents, drops spaces and maps unknown
characters to [UNK]; its rematch maps each token back to the characters of the ORIGINAL
text it came from. A token's weight goes to each of its characters (a Latin word or a number
is one token: its characters share one weight); a character no token covers (a space, the
part beyond maxlen) weighs 0. Spans are Python string offsets (code points: an emoji is one
character; JavaScript must index with Array.from(text)), end exclusive, the top_k tokens of
positive weight, highest first.

Faithfulness: for each text and each label the model decides for it, remove (delete) its
top-k explaining tokens for k = 1..K, and, as the baseline, k random tokens (seeded); the
curves are the mean drops of the label's score. Deleting, not masking: occlusion's own
[MASK] perturbation would favour it. A text of fewer than k tokens loses all of them.

TensorFlow and model.py are imported inside the gradient functions that need them: predict.py
and serve import this module, and their --help must not wait for TensorFlow to start.
"""
import contextlib
import time
import weakref

import numpy as np

from multilabel import calibration
from multilabel import inference

METHODS = ('occlusion', 'gradient_x_input', 'integrated_gradients')
ANSWERED = 'integrated_gradients'  # what predict --explain, serve and the page show: the most faithful
                                   # beyond the first character on the real test file (bench/faithfulness.py)
STEPS = 20   # integrated gradients: midpoints of the path from the zero embedding
TOP_K = 5
TOKEN_LAYER = 'Embedding-Token'


def encode(classifier, text):
    """(token ids with [CLS] and [SEP], the original characters of each text token): the first
    maxlen tokens, the ids loader.encode_texts gives."""
    tokenizer = classifier.tokenizer
    tokens = tokenizer.tokenize(text, maxlen=classifier.maxlen)
    characters = tokenizer.rematch(text, tokens)[1:-1]
    return tokenizer.tokens_to_ids(tokens), [sorted(set(c)) for c in characters]


def occlusion(classifier, token_ids_list, labels_list, batch_size=64):
    """Per text, [tokens without [CLS]/[SEP], its labels] score drops when each token is [MASK]."""
    mask = classifier.tokenizer.token_to_id('[MASK]')
    rows = []
    for ids in token_ids_list:
        rows.append(ids)
        for position in range(1, len(ids) - 1):
            rows.append(ids[:position] + [mask] + ids[position + 1:])
    # in the scores the model answers with (the temperature applied), as explain() reports them
    scores = calibration.apply(inference.predict_scores(classifier.engine, rows, batch_size),
                               classifier.temperature)
    weights, start = [], 0
    for ids, labels in zip(token_ids_list, labels_list):
        block = scores[start:start + len(ids) - 1]  # the text, then its tokens masked one by one
        weights.append(block[0, labels][None, :] - block[1:][:, labels])
        start += len(ids) - 1
    return weights


_gradient_functions = weakref.WeakKeyDictionary()


@contextlib.contextmanager
def scaled_token_embeddings(model, alpha):
    """Inside the block, the model's Embedding-Token outputs come multiplied by the tensor alpha [b, n]."""
    import tensorflow as tf
    layer = model.get_layer(TOKEN_LAYER)
    original = layer.call

    def call(inputs, *args, **kwargs):
        embeddings = original(inputs, *args, **kwargs)
        return embeddings * tf.cast(alpha, embeddings.dtype)[:, :, None]
    layer.call = call
    try:
        yield
    finally:
        del layer.call  # the class's own call again


def _gradient_function(model):
    """tf.function (token_ids [b, n], alpha [b, n], label) -> (logits [b], d logit / d alpha [b, n]).
    The layer is patched only while the function traces, so the model's other calls never see alpha."""
    if model not in _gradient_functions:
        import model as model_lib
        import tensorflow as tf
        spec = tf.TensorSpec([None, None], tf.int32)

        @tf.function(input_signature=[spec, tf.TensorSpec([None, None], tf.float32), tf.TensorSpec([], tf.int32)])
        def gradients(token_ids, alpha, label):
            with tf.GradientTape() as tape:
                tape.watch(alpha)
                with scaled_token_embeddings(model, alpha):
                    probabilities = model([token_ids, tf.zeros_like(token_ids)], training=False)
                logits = tf.cast(model_lib.sigmoid_logits(probabilities)[:, label], tf.float32)
            return logits, tape.gradient(logits, alpha)
        _gradient_functions[model] = gradients
    return _gradient_functions[model]


def gradient_attributions(classifier, token_ids, labels, method, steps=STEPS):
    """[tokens without [CLS]/[SEP], labels] gradient x input or integrated gradients of the logits."""
    function = _gradient_function(classifier.model)
    if method == 'gradient_x_input':
        alphas = np.ones(1, dtype='float32')
    else:
        alphas = ((np.arange(steps) + 0.5) / steps).astype('float32')
    alpha = np.repeat(alphas[:, None], len(token_ids), axis=1)
    alpha[:, 0] = alpha[:, -1] = 1  # [CLS] and [SEP] stay
    ids = np.tile(np.asarray(token_ids, dtype='int32'), (len(alphas), 1))
    with inference.dtype_policy(inference.POLICIES[classifier.precision]):  # traced under the model's own policy
        columns = [function(ids, alpha, int(label))[1].numpy().mean(axis=0)[1:-1] for label in labels]
    return np.stack(columns, axis=1) if columns else np.zeros((len(token_ids) - 2, 0))


def token_attributions(classifier, token_ids_list, labels_list, method, steps=STEPS, batch_size=64):
    """Per text, an array [tokens without [CLS]/[SEP], its labels] of `method`'s weights."""
    if method == 'occlusion':
        return occlusion(classifier, token_ids_list, labels_list, batch_size)
    if method not in METHODS:
        raise ValueError(f'unknown explanation method {method!r}: choose one of {", ".join(METHODS)}')
    return [gradient_attributions(classifier, ids, labels, method, steps)
            for ids, labels in zip(token_ids_list, labels_list)]


def spread(text, characters, weights, top_k):
    """Token weights -> (one weight per character of `text`, the top_k positive tokens as spans)."""
    attributions = np.zeros(len(text))
    for chars, weight in zip(characters, weights):
        attributions[chars] = weight
    spans = []
    for token in np.argsort(-np.asarray(weights), kind='stable')[:top_k]:
        if weights[token] > 0 and characters[token]:
            start, end = characters[token][0], characters[token][-1] + 1
            spans.append({'start': start, 'end': end, 'text': text[start:end], 'weight': float(weights[token])})
    return [float(a) for a in attributions], spans


def decided_labels(classifier, scores):
    """The label indices the decision rule gives each row of scores."""
    return [list(np.flatnonzero(row)) for row in inference.decide(scores, classifier.threshold,
                                                                 classifier.top1_fallback)]


def explain(classifier, text, label_indices=None, method='occlusion', top_k=TOP_K, steps=STEPS):
    """For each label (default: the labels decided for `text`): {label, index, score,
    attributions (one per character of text), spans (the top_k, see the module's notes)}."""
    token_ids, characters = encode(classifier, text)
    score = calibration.apply(inference.predict_scores(classifier.engine, [token_ids]),  # the answered scores
                              classifier.temperature)[0]
    labels = decided_labels(classifier, score[None])[0] if label_indices is None else list(label_indices)
    weights = token_attributions(classifier, [token_ids], [labels], method, steps)[0]
    answer = []
    for column, label in enumerate(labels):
        attributions, spans = spread(text, characters, weights[:, column], top_k)
        answer.append({'label': classifier.labels[label], 'index': int(label), 'score': float(score[label]),
                       'attributions': attributions, 'spans': spans})
    return answer


def without(token_ids, positions):
    """The ids with the text tokens at `positions` (0 = the first after [CLS]) deleted."""
    drop = {p + 1 for p in positions}
    return [t for i, t in enumerate(token_ids) if i not in drop]


def faithfulness(classifier, texts, methods=METHODS, k=TOP_K, seed=0, steps=STEPS, batch_size=64):
    """Mean drop of the decided labels' scores when each text loses its top 1..k tokens by each
    method, and k random ones: {'k': [1..k], 'pairs': (text, label) pairs, 'curves': {'random':
    [k drops], method: [k drops], ...}, 'seconds': {method: seconds its attributions took}}."""
    encoded = [encode(classifier, text) for text in texts]
    token_ids_list = [ids for ids, _ in encoded]
    base = inference.predict_scores(classifier.engine, token_ids_list, batch_size)
    labels_list = decided_labels(classifier, base)
    rng = np.random.default_rng(seed)
    orders = {'random': [[rng.permutation(len(ids) - 2) for _ in labels]
                         for ids, labels in zip(token_ids_list, labels_list)]}
    seconds = {}
    for method in methods:
        start = time.perf_counter()
        weights = token_attributions(classifier, token_ids_list, labels_list, method, steps, batch_size)
        seconds[method] = time.perf_counter() - start
        orders[method] = [[np.argsort(-w[:, column], kind='stable') for column in range(w.shape[1])]
                          for w in weights]
    drops = {}
    for curve, per_text in orders.items():
        # Each curve's removals are scored in a pass of their own: a text's score shifts in the last
        # digits with the padding of its batch, and so a curve must not depend on the other methods asked.
        rows, owners = [], []
        for text, (ids, labels) in enumerate(zip(token_ids_list, labels_list)):
            for column, order in enumerate(per_text[text]):
                for removed in range(1, k + 1):
                    rows.append(without(ids, order[:removed]))
                    owners.append((text, labels[column], removed))
        scores = inference.predict_scores(classifier.engine, rows, batch_size) if rows else np.zeros((0, 0))
        drops[curve] = np.zeros(k)
        for (text, label, removed), row in zip(owners, scores):
            drops[curve][removed - 1] += base[text, label] - row[label]
    pairs = sum(len(labels) for labels in labels_list)
    return {'k': list(range(1, k + 1)), 'pairs': pairs,
            'curves': {curve: [float(d / max(pairs, 1)) for d in drops[curve]] for curve in orders},
            'seconds': seconds}


def explained_spans(classifier, text, labels=None):
    """{label: its top spans, [{start, end, text, weight}] in string offsets} for `labels` (the
    names the caller has decided for `text`; None: decided here), by ANSWERED: what predict.py
    --explain, serve and the page show."""
    indices = None if labels is None else [classifier.labels.index(label) for label in labels]
    return {found['label']: found['spans'] for found in explain(classifier, text, indices, ANSWERED)}
