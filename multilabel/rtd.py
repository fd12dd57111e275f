"""Replaced-token detection (ELECTRA, Clark et al., ICLR 2020): pretrain.py --objective rtd.

A small generator, a narrower RoFormer-v2 of the same depth that shares the discriminator's
token (and segment) embedding tables, is trained as a masked language model on the masked
positions. Its samples replace those tokens, and the discriminator, the RoFormer-v2 that is
written as the checkpoint, learns for every token whether it was replaced. The task has a
target at every position, not at the 15% an MLM predicts, which is why it learns more per
step, the most for small models and small budgets (the ELECTRA paper's tables).

loss = generator MLM loss + rtd_weight x discriminator loss (binary cross-entropy over the
real tokens); the generator is not trained through its samples (they are drawn, with the
logits held constant), as in ELECTRA. Sampling never proposes a special token ([PAD],
[CLS], [MASK], ...), and a sample equal to the original token counts as not replaced.
"""

from multilabel.compat import keras, tf
import model as model_lib

HISTORY_COLUMNS = ('epoch', 'loss', 'masked_acc', 'rtd_loss', 'rtd_acc', 'replaced_recall',
                   'val_loss', 'val_masked_acc', 'val_rtd_loss', 'val_rtd_acc', 'val_replaced_recall', 'lr')
GENERATOR_PREFIX = 'Generator-'
SHARED_LAYERS = ('Embedding-Token', 'Embedding-Segment')  # the tables ELECTRA shares between the two


def generator_config(bert_config, size):
    """The generator's bert_config: the discriminator's depth and vocabulary, `size` times its width
    (heads of 64 dimensions, at least one), reading the discriminator's embeddings through a
    projection (Embedding-Mapping) from their width to its own."""
    hidden = max(16, int(round(bert_config['hidden_size'] * size)))
    heads = max(1, hidden // 64)
    while hidden % heads:
        heads -= 1
    return {**bert_config, 'hidden_size': hidden, 'intermediate_size': 4 * hidden, 'num_attention_heads': heads,
            'embedding_size': bert_config['hidden_size']}


class ReplacedTokenDetection(keras.Model):
    """Generator + discriminator; `call` is the discriminator encoder (what fine-tuning keeps)."""

    def __init__(self, discriminator, generator, maskable, dropout, rtd_weight, seed):
        super().__init__(name='roformer_v2_rtd')
        self.discriminator, self.generator = discriminator, generator
        width = discriminator.output_shape[-1]
        embedding_width = discriminator.get_layer('Embedding-Token').output_dim
        # Generator head: back to the embedding width, then the transposed, tied token table.
        self.generator_head = keras.layers.Dense(embedding_width, activation='gelu', name='Generator-MLM-Dense')
        self.generator_norm = keras.layers.LayerNormalization(name='Generator-MLM-Norm')
        self.head_dropout = keras.layers.Dropout(dropout)
        # Discriminator head, as ELECTRA's: a hidden layer, then one logit per token.
        self.rtd_dense = keras.layers.Dense(width, activation='gelu', name='RTD-Dense')
        self.rtd_logit = keras.layers.Dense(1, name='RTD-Logit')
        # Built here rather than by the first step, so the optimizer's variables can be made before it.
        self.generator_head.build((None, generator.output_shape[-1]))
        self.generator_norm.build((None, embedding_width))
        self.rtd_dense.build((None, width))
        self.rtd_logit.build((None, width))
        self.maskable = maskable  # [vocab] bool: the tokens a sample may propose
        self.rtd_weight = rtd_weight
        self.seed = seed
        self.trackers = {name: keras.metrics.Mean(name=name) for name in
                         ('loss', 'masked_acc', 'rtd_loss', 'rtd_acc', 'replaced_recall')}

    def call(self, inputs, training=False):
        return self.discriminator(inputs, training=training)

    def _objective(self, data, training):
        (masked_ids, segments), targets = data
        positions = tf.where(targets > 0)
        original = tf.gather_nd(targets, positions)
        hidden = self.generator([masked_ids, segments], training=training)
        hidden = tf.gather_nd(hidden, positions)
        hidden = self.head_dropout(self.generator_norm(self.generator_head(hidden)), training=training)
        table = self.discriminator.get_layer('Embedding-Token')
        logits = tf.cast(table(hidden, mode='dense'), tf.float32)
        generator_loss = tf.reduce_mean(
            keras.losses.sparse_categorical_crossentropy(original, logits, from_logits=True))
        masked_correct = tf.cast(tf.equal(tf.argmax(logits, -1, output_type=tf.int32), original), tf.float32)

        # Draw the replacements from the generator's distribution over ordinary tokens.
        proposal = tf.where(self.maskable[tf.newaxis], tf.stop_gradient(logits), -1e9)
        step_seed = tf.stack([tf.constant(self.seed, tf.int64), tf.cast(self.optimizer.iterations, tf.int64)])
        if not training:  # the same draws at every evaluation of the same epoch's weights
            step_seed = tf.constant([self.seed, -1], tf.int64)
        sampled = tf.squeeze(tf.random.stateless_categorical(proposal, 1, step_seed, dtype=tf.int32), -1)
        restored = tf.where(targets > 0, targets, masked_ids)  # the original text
        corrupted = tf.tensor_scatter_nd_update(restored, positions, sampled)
        replaced = tf.cast(tf.not_equal(corrupted, restored), tf.float32)

        sequence = self.discriminator([corrupted, segments], training=training)
        rtd_logits = tf.cast(tf.squeeze(self.rtd_logit(self.rtd_dense(sequence)), -1), tf.float32)
        real = tf.cast(restored > 0, tf.float32)  # not padding
        token_losses = tf.nn.sigmoid_cross_entropy_with_logits(labels=replaced, logits=rtd_logits)
        rtd_loss = tf.reduce_sum(token_losses * real) / tf.reduce_sum(real)
        said_replaced = tf.cast(rtd_logits > 0, tf.float32)
        rtd_correct = tf.reduce_sum(tf.cast(tf.equal(said_replaced, replaced), tf.float32) * real) / tf.reduce_sum(real)
        caught = tf.reduce_sum(said_replaced * replaced) / tf.maximum(tf.reduce_sum(replaced), 1.0)
        loss = generator_loss + self.rtd_weight * rtd_loss
        return loss, {'masked_acc': tf.reduce_mean(masked_correct), 'rtd_loss': rtd_loss,
                      'rtd_acc': rtd_correct, 'replaced_recall': caught}

    def _track(self, loss, values):
        self.trackers['loss'].update_state(loss)
        for name, value in values.items():
            self.trackers[name].update_state(value)
        return {name: tracker.result() for name, tracker in self.trackers.items()}

    def train_step(self, data):
        with tf.GradientTape() as tape:
            loss, values = self._objective(data, training=True)
        variables = self.trainable_variables
        self.optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
        return self._track(loss, values)

    def test_step(self, data):
        return self._track(*self._objective(data, training=False))

    @property
    def metrics(self):
        return list(self.trackers.values())


def build(bert_config, checkpoint, cfg, maskable):
    """(discriminator Transformer, uncompiled ReplacedTokenDetection) of a bert_config.json dict.

    `checkpoint` (--init) initialises the discriminator; the generator starts from random weights.
    """
    discriminator = model_lib.build_encoder(bert_config, checkpoint, cfg.mlm_dropout)
    shared = {GENERATOR_PREFIX + name: discriminator.layers[name] for name in SHARED_LAYERS
              if name in discriminator.layers}
    generator = model_lib.build_encoder(generator_config(bert_config, cfg.generator_size), None, cfg.mlm_dropout,
                                        prefix=GENERATOR_PREFIX, layers=shared)
    model = ReplacedTokenDetection(discriminator.model, generator.model, maskable,
                                   cfg.mlm_dropout, cfg.rtd_weight, cfg.seed)
    return discriminator, model
