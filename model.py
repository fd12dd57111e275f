"""Model: RoFormer-v2 encoder + sigmoid head, the optimizer (layered learning rates, Adam,
EMA), FGM adversarial training and R-Drop in an eager `train_step` that works under tf.distribute.
"""
import os
import sys

import h5py
import numpy as np

from multilabel import compat
from multilabel.compat import keras, tf
from bert4keras.backend import multilabel_categorical_crossentropy
from bert4keras.models import build_transformer_model

import config
import path

HEAD_PREFIX = 'Head-'  # every head layer's name starts with this; the optimizer keys its learning rate on it
ADVERSARIAL_LAYER = 'Embedding-Token'


class CheckpointError(config.InputError):
    """A pretrained folder whose checkpoint cannot be used."""


def find_checkpoint(pretrained_dir):
    """The checkpoint prefix in `pretrained_dir`, or None when the folder has no weights.

    A partial checkpoint (an .index without its data, or data without the .index) is an
    error, not a silent random initialisation.
    """
    prefix = os.path.join(pretrained_dir, path.CHECKPOINT_NAME)
    has_index = os.path.exists(prefix + '.index')
    has_data = any(name.startswith(path.CHECKPOINT_NAME + '.data-') for name in os.listdir(pretrained_dir))
    if has_index and has_data:
        return prefix
    if has_index or has_data:
        missing = 'data (.data-00000-of-00001)' if has_index else 'index (.index)'
        raise CheckpointError(f'{prefix}: the checkpoint {missing} file is missing; '
                              're-download or remove the partial checkpoint')
    return None


def check_pretrained(pretrained_dir):
    """Stop early, with the reason, when a pretrained folder's config and vocabulary do not fit."""
    config_path = os.path.join(pretrained_dir, path.CONFIG_NAME)
    vocab_path = os.path.join(pretrained_dir, path.VOCAB_NAME)
    for needed in (config_path, vocab_path):
        if not os.path.exists(needed):
            raise CheckpointError(f'{needed}: missing; a pretrained folder needs {path.CONFIG_NAME} and {path.VOCAB_NAME}')
    vocab_size = path.read_json(config_path).get('vocab_size')
    with open(vocab_path, encoding='utf-8') as f:
        tokens = sum(1 for _ in f)
    if tokens != vocab_size:
        raise CheckpointError(f'{vocab_path}: {tokens} tokens, but {config_path} says vocab_size {vocab_size}; '
                              'the vocabulary belongs to another model')


def warn_random_init(pretrained_dir):
    bar = '!' * 78
    print(f'\n{bar}\n!! No pretrained checkpoint in {pretrained_dir}\n'
          f'!! ({path.CHECKPOINT_NAME}.index + .data-*): the encoder starts from RANDOM weights.\n'
          f'!! Expect far lower accuracy than fine-tuning. README.md says where to get the\n'
          f'!! official RoFormer-v2 checkpoints. From random weights these settings learned in\n'
          f'!! the runs of BENCHMARKS.md (higher encoder rates stayed at the label prior):\n'
          f'!!   --encoder-lr 1e-4 --head-lr 1e-3 --ema-momentum 0.99 --fgm-epsilon 0 --maxlen 128\n{bar}\n',
          file=sys.stderr)


def build_encoder(config, checkpoint=None, dropout=None, **options):
    """The bert4keras RoFormer-v2 Transformer (its .model is the Keras encoder) of `config`, a
    bert_config.json path or its dict; `dropout`, if given, replaces its hidden and attention
    dropout rates; `options` go to bert4keras (a generator's prefix and shared layers)."""
    config_path, settings = (config, {}) if isinstance(config, str) else (None, config)
    rates = {} if dropout is None else {'dropout_rate': dropout, 'attention_dropout_rate': dropout}
    return build_transformer_model(config_path, checkpoint, model='roformer_v2', return_keras_model=False,
                                   **{**settings, **rates, **options})


def checkpoint_values(encoder):
    """{official checkpoint variable name: numpy value} of a bert4keras Transformer."""
    values = {}
    for layer_name, names in encoder.variable_mapping().items():
        if layer_name in encoder.layers:
            for name, weight in zip(names, encoder.layers[layer_name].trainable_weights):
                values[name] = weight.numpy()
    return values


class AdversarialModel(keras.Model):
    """A Keras model whose training step adds FGM (Miyato et al., 2017) and R-Drop (Liang et al., 2021).

    FGM, each step: gradient of the loss; a step of size `fgm_epsilon` along the normalised
    gradient of the token-embedding table; the gradient of the loss there; the table put
    back; both gradients applied. The gradient is all-reduced before the step, so every
    replica moves its copy of the table identically under tf.distribute.

    R-Drop: each loss is taken over two passes of the batch with other dropout masks, the mean
    of their losses plus `rdrop_alpha` times their disagreement (`rdrop_divergence`).
    """
    fgm_epsilon = 0.0
    rdrop_alpha = 0.0

    def train_step(self, data):
        inputs, targets = data
        variables = self.trainable_variables
        predictions, gradients = self._gradients(inputs, targets, variables)

        if self.fgm_epsilon > 0:
            embeddings = self.get_layer(ADVERSARIAL_LAYER).embeddings
            index = next(i for i, v in enumerate(variables) if v is embeddings)
            replica = tf.distribute.get_replica_context()
            gradient = replica.all_reduce('sum', gradients[index])
            norm = tf.norm(gradient)
            # An overflowed float16 step (skipped by loss scaling) must not leave NaN in the table.
            delta = tf.where(tf.math.is_finite(norm), self.fgm_epsilon * gradient / (norm + 1e-8), 0.0)
            _add_on_every_replica(embeddings, delta)
            _, adversarial_gradients = self._gradients(inputs, targets, variables)
            _add_on_every_replica(embeddings, -delta)
            gradients = [g + a for g, a in zip(gradients, adversarial_gradients)]

        self.optimizer.apply_gradients(zip(gradients, variables))
        return self.compute_metrics(inputs, targets, predictions, None)

    def _gradients(self, inputs, targets, variables):
        """(predictions, dense gradients of the loss). Under mixed_float16 Keras wraps the
        optimizer in a LossScaleOptimizer: the loss is scaled up before the gradient, so small
        float16 gradients do not flush to zero, and the gradients are scaled back after."""
        scaling = hasattr(self.optimizer, 'get_scaled_loss')
        with tf.GradientTape() as tape:
            predictions = self(inputs, training=True)
            loss = self.compute_loss(inputs, targets, predictions)
            if self.rdrop_alpha > 0:
                twin = self(inputs, training=True)
                loss = ((loss + self.compute_loss(inputs, targets, twin)) / 2
                        + self.rdrop_alpha * rdrop_divergence(predictions, twin))
            if scaling:
                loss = self.optimizer.get_scaled_loss(loss)
        gradients = [_dense(g) for g in tape.gradient(loss, variables)]
        if scaling:
            gradients = self.optimizer.get_unscaled_gradients(gradients)
        return predictions, gradients


def rdrop_divergence(p, q):
    """R-Drop's term for sigmoid scores: the symmetric KL divergence between the two passes'
    Bernoulli distributions of each label, (KL(p||q) + KL(q||p)) / 2 = (p - q)(logit p - logit q) / 2,
    averaged over labels and texts as the binary cross-entropy is, and divided among the replicas
    as Keras divides the compiled loss under tf.distribute."""
    p, q = (tf.clip_by_value(tf.cast(x, tf.float32), 1e-7, 1 - 1e-7) for x in (p, q))
    logit = lambda x: tf.math.log(x) - tf.math.log1p(-x)
    divergence = tf.reduce_mean((p - q) * (logit(p) - logit(q))) / 2
    return divergence / tf.distribute.get_replica_context().num_replicas_in_sync


def _dense(gradient):
    # Embedding gradients arrive as IndexedSlices; two of them cannot be added.
    return tf.convert_to_tensor(gradient) if isinstance(gradient, tf.IndexedSlices) else gradient


def _add_on_every_replica(variable, delta):
    """variable += delta on every replica's copy (`delta` is the same on all of them)."""
    def update(strategy, variable, delta):
        strategy.extended.update(variable, lambda v, d: v.assign_add(d), args=(delta,))
    tf.distribute.get_replica_context().merge_call(update, args=(variable, delta))


def build_classifier(config_path, num_labels, checkpoint=None, dropout=0.1, fgm_epsilon=0.0, head='cls',
                     rdrop_alpha=0.0, encoder_dropout=None):
    """RoFormer-v2 -> head -> Dense(num_labels, sigmoid).

    head 'cls': the [CLS] vector -> dropout. head 'cnn': the seed project's head, the [CLS]
    vector beside three Conv1D branches over the token vectors -> dropout 0.2 -> Dense 256.
    encoder_dropout: the encoder's dropout rate, if not its config file's.
    """
    encoder = build_encoder(config_path, checkpoint, encoder_dropout)
    sequence = encoder.model.output
    cls_vector = keras.layers.Lambda(lambda x: x[:, 0], name=HEAD_PREFIX + 'CLS')(sequence)
    if head == 'cnn':
        features = _seed_cnn_features(sequence, cls_vector, token_ids=encoder.model.inputs[0])
    else:
        features = keras.layers.Dropout(dropout, name=HEAD_PREFIX + 'Dropout')(cls_vector)
    # The output layer stays float32 under mixed precision: sigmoid + the loss need the range.
    probabilities = keras.layers.Dense(num_labels, activation='sigmoid', dtype='float32',
                                       name=HEAD_PREFIX + 'Dense')(features)
    model = AdversarialModel(encoder.model.inputs, probabilities, name='roformer_v2_multilabel')
    model.fgm_epsilon, model.rdrop_alpha = fgm_epsilon, rdrop_alpha
    return model


def _seed_cnn_features(sequence, cls_vector, token_ids):
    """[CLS] + max-pooled Conv1D(256, kernel 3/4/5) features -> dropout 0.2 -> Dense 256 ReLU.

    Padding never counts: its vectors are zeroed before the convolutions (as the zero
    padding of a shorter batch would be) and its positions never win the max.
    """
    # expand_dims, not [:, :, None]: the int8 (TFLite) converter cannot slice a bool tensor.
    is_padding = keras.layers.Lambda(lambda ids: tf.expand_dims(tf.equal(ids, 0), -1),
                                     name=HEAD_PREFIX + 'PaddingMask')(token_ids)
    sequence = keras.layers.Lambda(lambda args: tf.where(args[1], tf.zeros_like(args[0]), args[0]),
                                   name=HEAD_PREFIX + 'ZeroPadding')([sequence, is_padding])
    pooled = [cls_vector]
    for kernel in (3, 4, 5):
        convolved = keras.layers.Conv1D(256, kernel, padding='same', activation='relu',
                                        name=f'{HEAD_PREFIX}Conv{kernel}')(sequence)
        # ReLU outputs are >= 0, so -1 at padding positions never wins the max.
        pooled.append(keras.layers.Lambda(
            lambda args: tf.reduce_max(tf.where(args[1], -tf.ones_like(args[0]), args[0]), axis=1),
            name=f'{HEAD_PREFIX}MaxPool{kernel}')([convolved, is_padding]))
    features = keras.layers.Concatenate(name=HEAD_PREFIX + 'Concatenate')(pooled)
    features = keras.layers.Dropout(0.2, name=HEAD_PREFIX + 'Dropout')(features)
    return keras.layers.Dense(256, activation='relu', name=HEAD_PREFIX + 'Hidden')(features)


def load_grown(classifier, weights_path, old_labels, labels, priors):
    """Load a trained model's weights into `classifier`, whose head has rows for `labels`: the
    old labels first, in their order, then the new ones.

    Every layer but the output takes the saved weights as they are; the output layer keeps its
    old rows and starts each new label at its prior (weights 0, bias the logit of `priors`, its
    share in the new training data), so a new label is first predicted as rarely as it occurs
    instead of at random.
    """
    if list(labels[:len(old_labels)]) != list(old_labels):
        raise ValueError('the new labels must follow the old ones, in their order')
    classifier.load_weights(weights_path, by_name=True, skip_mismatch=True)  # all but a grown head
    with h5py.File(weights_path, 'r') as saved:
        group = saved[HEAD_PREFIX + 'Dense']
        kernel, bias = (np.asarray(group[name]) for name in group.attrs['weight_names'])
    new = len(labels) - len(old_labels)
    priors = np.clip(np.asarray(priors, dtype='float64'), 1e-4, 1 - 1e-4)
    classifier.get_layer(HEAD_PREFIX + 'Dense').set_weights([
        np.concatenate([kernel, np.zeros((kernel.shape[0], new), kernel.dtype)], axis=1),
        np.concatenate([bias, np.log(priors / (1 - priors)).astype(bias.dtype)])])


def ema_optimizer(model):
    """The AdamEMA of a compiled model, also when Keras wrapped it for loss scaling (mixed_float16)."""
    return getattr(model.optimizer, 'inner_optimizer', model.optimizer)


def build_optimizer(cfg):
    """Adam + EMA; the encoder learns at cfg.encoder_lr, the head at cfg.head_lr."""
    return compat.AdamEMA(
        learning_rate=cfg.encoder_lr,
        ema_momentum=cfg.ema_momentum,
        paramwise_lr_schedule={HEAD_PREFIX: cfg.head_lr / cfg.encoder_lr},
    )


def build_loss(name, pos_weights=None):
    """Binary cross-entropy, the seed's binary focal loss (alpha 0.25 on positives, gamma 2), or ZLPR.

    `pos_weights` (one number per label) multiplies each label's positive term of bce/focal.
    """
    if name == 'zlpr':
        if pos_weights is not None:
            raise config.InputError('--pos-weight is for the binary losses (bce, focal), not zlpr')
        return ZLPRLoss()
    if pos_weights is not None:
        return PositiveWeightedLoss(name, pos_weights)
    if name == 'focal':
        return keras.losses.BinaryFocalCrossentropy(apply_class_balancing=True, alpha=0.25, gamma=2.0)
    return keras.losses.BinaryCrossentropy()


class PositiveWeightedLoss(keras.losses.Loss):
    """bce or focal, with the loss of each label's positives multiplied by that label's weight
    (as `pos_weight` of PyTorch's BCEWithLogitsLoss): a rare label's few positives then pull
    as hard as a frequent label's many. Weights of 1 give the plain Keras losses."""

    def __init__(self, loss, pos_weights, name=None):
        super().__init__(name=name or f'{loss}_pos_weighted')
        self.loss = loss
        self.pos_weights = tf.constant(pos_weights, tf.float32)

    def call(self, y_true, y_pred):
        y_true = tf.cast(y_true, y_pred.dtype)
        if self.loss == 'focal':
            elementwise = keras.backend.binary_focal_crossentropy(y_true, y_pred, apply_class_balancing=True,
                                                                  alpha=0.25, gamma=2.0)
        else:  # both read the logits tf-keras' sigmoid keeps on its output
            elementwise = keras.backend.binary_crossentropy(y_true, y_pred)
        return tf.reduce_mean(elementwise * (1 + (self.pos_weights - 1) * y_true), axis=-1)


def budget_decay(optimizer, cfg):
    """--budget-decay's rule for build_optimizer's optimizer: the encoder's rate (the head's is a
    multiple of it) times the share of the time budget left."""
    return lambda spent: keras.backend.set_value(optimizer.learning_rate, cfg.encoder_lr * (1 - spent))


def learning_rates(optimizer):
    """(encoder, head) learning rate of build_optimizer's optimizer, as it stands now."""
    encoder = float(keras.backend.get_value(optimizer.learning_rate))
    head = encoder * optimizer.paramwise_lr_schedule.get(HEAD_PREFIX, 1.0)
    return float(f'{encoder:.7g}'), float(f'{head:.7g}')  # float32: 7 significant digits, not 4.9999998e-05


def positive_weights(setting, labels, targets, cap):
    """The per-label positive weights of `--pos-weight` (None for 'none'), in `labels` order.

    auto: sqrt(count of the most frequent label / count of this label), at most `cap`. The
    most frequent label keeps 1 and rarer ones count more, in the square-root inverse
    frequency of LVIS' repeat-factor sampling (Gupta et al. 2019). The textbook
    negatives/positives ratio is 5 to 450 on the real corpus, so any cap would flatten it
    to one number for nearly every label: a lower threshold for all, not help for the rare.
    """
    if setting == 'none':
        return None
    if setting == 'auto':
        counts = np.maximum(np.asarray(targets).sum(axis=0), 1)
        return np.minimum(cap, np.sqrt(counts.max() / counts)).astype('float32')
    if not os.path.isfile(setting):
        raise config.InputError(f'--pos-weight {setting}: not none, auto, or an existing JSON file')
    try:
        given = path.read_json(setting)
    except ValueError as error:
        raise config.InputError(f'{setting}: not valid JSON ({error})') from None
    if not isinstance(given, dict):
        raise config.InputError(f'{setting}: expected a JSON object {{label: weight}}')
    unknown = sorted(set(given) - set(labels))
    if unknown:
        raise config.InputError(f'{setting}: labels not in the training file: {", ".join(unknown[:5])}')
    for label, weight in given.items():
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not 0 < weight < float('inf'):
            raise config.InputError(f'{setting}: the weight of {label!r} must be a positive number, not {weight!r}')
    return np.array([given.get(label, 1.0) for label in labels], dtype='float32')


class ZLPRLoss(keras.losses.Loss):
    """ZLPR, the multi-label loss of the bert4keras world (Su 2020, kexue.fm/archives/7359):
    log(1 + sum over negatives of e^s) + log(1 + sum over positives of e^-s), s the logits.

    It ranks every positive label above 0 and every negative one below, in one softmax-like
    term per sample instead of one yes/no question per label, which suits many labels and
    imbalance. Its decision is s > 0, i.e. sigmoid(s) > 0.5: the model keeps its sigmoid
    output, and the saved model, predict, evaluate, export and serve work unchanged.
    """

    def __init__(self, name='zlpr'):
        super().__init__(name=name)

    def call(self, y_true, y_pred):
        return multilabel_categorical_crossentropy(tf.cast(y_true, y_pred.dtype), sigmoid_logits(y_pred))


def sigmoid_logits(probabilities):
    """The logits under a sigmoid output, exactly: tf-keras' sigmoid keeps its input on the
    output tensor (`_keras_logits`, as its own cross-entropy uses); an inverse sigmoid of
    float32 scores would saturate at |logit| > ~17 and lose precision well before."""
    logits = getattr(probabilities, '_keras_logits', None)
    if logits is None:
        raise ValueError('the ZLPR loss needs the output of a sigmoid activation (tf-keras keeps its logits on it)')
    return logits


def compile_for_training(model, cfg, pos_weights=None):
    # Sigmoid + a binary loss: each label is its own yes/no question.
    model.compile(loss=build_loss(cfg.loss, pos_weights), optimizer=build_optimizer(cfg))
    # The optimizer's variables (Adam's moments, the EMA, the step count) are made now: made by the
    # first training step, they would make Keras trace that step a second time, as long again.
    ema_optimizer(model)._create_all_weights(model.trainable_variables)
    return model
