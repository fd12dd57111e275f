"""The masked language model of pretrain.py: dynamic masking, the MLM model, its optimizer,
and writing its encoder as an official-layout checkpoint.

Masking (Devlin et al., 2019): each batch draws `mask_rate` of its maskable tokens (not
[PAD]/[CLS]/[SEP] or any other [bracketed] token); of those 80% become [MASK], 10% a random
ordinary token, 10% stay. With `mask_span` N > 1 the chosen tokens come in runs of 1 to N
consecutive ones (lengths weighted N, N-1, ..., 1: MacBERT's n-gram masking for N = 4), as
many span starts drawn as make about `mask_rate` of the tokens. With `whole_words` a word is
the unit (Chinese BERT-wwm, Cui et al., 2019): each word is chosen with probability
`mask_rate`, all its tokens together; the word boundaries travel with the token ids, a token
that continues the word before it being stored negated (`mark_words`). The draw is a pure
function of (seed, batch number), so a resumed run masks exactly as an unbroken one would.
"""
import os
import shutil
import tempfile

import numpy as np
import scipy.optimize
from tqdm import tqdm

import config
from multilabel import compat
import loader
import model as model_lib
from multilabel.compat import keras, tf

HISTORY_COLUMNS = ('epoch', 'loss', 'masked_acc', 'val_loss', 'val_masked_acc', 'lr')


class Masker:
    """Token-id batches -> ((masked ids, segment ids), targets); a target is 0 where nothing is predicted."""

    def __init__(self, tokenizer, vocab_size, mask_rate, mask_span=1, whole_words=False):
        tokens = [tokenizer.id_to_token(i) for i in range(vocab_size)]
        special = np.array([t.startswith('[') and t.endswith(']') for t in tokens])
        self.maskable = tf.constant(~special)
        self.replacements = tf.constant(np.flatnonzero(~special), tf.int32)  # random tokens are ordinary ones
        self.mask_id = tokenizer._token_mask_id
        self.mask_rate, self.mask_span, self.whole_words = mask_rate, mask_span, whole_words
        weights = np.arange(mask_span, 0, -1)
        weights = weights / weights.sum()  # P(length 1), ..., P(length N)
        shorter = np.cumsum(weights)[:-1]  # P(length <= k), k = 1 .. N-1
        self.span_cumulative = tf.constant(shorter, tf.float32)
        # Spans overlap: a token stays unmasked only if no start k tokens before it has a length > k.
        reaches = 1 - np.concatenate([[0], shorter])  # P(length > k), k = 0 .. N-1
        self.span_start_rate = scipy.optimize.brentq(lambda rate: 1 - np.prod(1 - rate * reaches) - mask_rate, 0, 1)

    def choose(self, token_ids, seed, continues=None):
        """The positions to predict: single tokens, whole words, or spans of up to mask_span tokens
        (maskable ones only)."""
        shape, maskable = tf.shape(token_ids), tf.gather(self.maskable, token_ids)
        if self.whole_words:  # every token takes the draw of its word's first token
            draw = tf.random.stateless_uniform(shape, seed)
            word = tf.cumsum(tf.cast(~continues, tf.int32), axis=1) - 1  # the word's number in its row
            return maskable & (tf.gather(draw, word, batch_dims=1) < self.mask_rate)
        if self.mask_span == 1:
            return maskable & (tf.random.stateless_uniform(shape, seed) < self.mask_rate)
        start_seed, length_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
        starts = maskable & (tf.random.stateless_uniform(shape, start_seed) < self.span_start_rate)
        draw = tf.random.stateless_uniform(shape, length_seed)
        lengths = 1 + tf.reduce_sum(tf.cast(draw[..., None] >= self.span_cumulative, tf.int32), -1)
        chosen = tf.zeros_like(starts)
        for offset in range(self.mask_span):  # a start covers `length` tokens from itself on
            covers = starts & (lengths > offset)
            chosen |= tf.pad(covers, [[0, 0], [offset, 0]])[:, :shape[1]]
        return chosen & maskable

    def mask(self, token_ids, seed):
        """token_ids [batch, length] int32 (negated where a word continues), seed [2] int64 -> (masked ids, targets)."""
        choose, action, pick = tf.unstack(tf.random.experimental.stateless_split(seed, 3))
        continues, token_ids = token_ids < 0, tf.abs(token_ids)
        shape = tf.shape(token_ids)
        chosen = self.choose(token_ids, choose, continues)
        roll = tf.random.stateless_uniform(shape, action)
        random_tokens = tf.gather(self.replacements, tf.random.stateless_uniform(
            shape, pick, maxval=tf.size(self.replacements), dtype=tf.int32))
        masked = tf.where(chosen & (roll < 0.8), self.mask_id, token_ids)
        masked = tf.where(chosen & (roll >= 0.8) & (roll < 0.9), random_tokens, masked)
        return masked, tf.where(chosen, token_ids, 0)

    def batches(self, token_ids, batch_size, seed, shuffle=False, first_epoch=0, epochs=1, group_by_length=0):
        """loader.make_dataset's batches (padded to their own length), masked; batch n uses seed (seed, n)."""
        steps = loader.batches_per_epoch(len(token_ids), batch_size)
        no_targets = np.zeros((len(token_ids), 0), 'float32')
        data = loader.make_dataset(token_ids, no_targets, batch_size, shuffle=shuffle, seed=seed,
                                   first_epoch=first_epoch, epochs=epochs, group_by_length=group_by_length)

        def mask(number, batch):
            (ids, segments), _ = batch
            masked, targets = self.mask(ids, tf.stack([tf.constant(seed, tf.int64), number]))
            return (masked, segments), targets
        return data.enumerate(start=first_epoch * steps).map(mask).prefetch(tf.data.AUTOTUNE)


def jieba_segmenter():
    """jieba as a word_starts function: text -> the character offsets where its words start
    (Latin words and numbers are one word each)."""
    try:
        import jieba
    except ImportError:
        raise config.InputError('--whole-word-masking needs the jieba package: pip install jieba==0.42.1') from None
    jieba.setLogLevel(60)  # not the "Building prefix dict" lines on every run
    return lambda text: {start for _, start, _ in jieba.tokenize(text)}


def mark_words(tokenizer, texts, maxlen, word_starts=None, progress=False):
    """Texts -> the token-id lists loader.encode_texts gives, each token that continues the word
    before it negated ([PAD] is 0, so no id is lost). word_starts(text): the character offsets
    where its words start; jieba's words when None."""
    word_starts = word_starts or jieba_segmenter()
    marked = []
    for text in tqdm(texts, desc='words', unit=' texts', leave=False, disable=not progress or len(texts) < 2000):
        tokens = tokenizer.tokenize(text, maxlen=maxlen)
        starts, previous_char = word_starts(text), None
        try:
            token_chars = tokenizer.rematch(text, tokens)
        except ValueError:  # a text bert4keras cannot map back to its tokens: they are masked one by one
            token_chars = [[]] * len(tokens)
        ids = []
        for token_id, chars in zip(tokenizer.tokens_to_ids(tokens), token_chars):
            # a word piece of a Latin word continues it as well: its first character starts no word
            continues = bool(chars) and previous_char is not None and chars[0] not in starts
            ids.append(-token_id if continues else token_id)
            previous_char = chars[-1] if chars else None  # [CLS], [UNK]: what follows starts a word
        marked.append(ids)
    return marked


class MaskedLanguageModel(keras.Model):
    """The encoder + bert4keras' RoFormer-v2 MLM head (dropout, then Embedding-Token in 'dense'
    mode: the transposed, tied token table), on the masked positions only."""

    def __init__(self, encoder, dropout):
        super().__init__(name='roformer_v2_mlm')
        self.encoder = encoder
        self.head_dropout = keras.layers.Dropout(dropout)
        self.loss_tracker = keras.metrics.Mean(name='loss')
        self.accuracy_tracker = keras.metrics.Mean(name='masked_acc')

    def call(self, inputs, training=False):
        return self.encoder(inputs, training=training)

    def _scores(self, data, training):
        inputs, targets = data
        hidden = self.encoder(inputs, training=training)
        positions = tf.where(targets > 0)
        hidden = self.head_dropout(tf.gather_nd(hidden, positions), training=training)
        logits = tf.cast(self.encoder.get_layer('Embedding-Token')(hidden, mode='dense'), tf.float32)
        targets = tf.gather_nd(targets, positions)
        loss = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(targets, logits, from_logits=True))
        correct = tf.cast(tf.equal(tf.argmax(logits, -1, output_type=tf.int32), targets), tf.float32)
        return loss, correct

    def _track(self, loss, correct):
        count = tf.cast(tf.size(correct), tf.float32)
        self.loss_tracker.update_state(loss, sample_weight=count)  # means over masked tokens, not batches
        self.accuracy_tracker.update_state(tf.reduce_mean(correct), sample_weight=count)
        return {m.name: m.result() for m in self.metrics}

    def train_step(self, data):
        with tf.GradientTape() as tape:
            loss, correct = self._scores(data, training=True)
        variables = self.trainable_variables
        self.optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
        return self._track(loss, correct)

    def test_step(self, data):
        return self._track(*self._scores(data, training=False))

    @property
    def metrics(self):
        return [self.loss_tracker, self.accuracy_tracker]


class WarmupLinearDecay(keras.optimizers.schedules.LearningRateSchedule):
    """0 -> peak over `warmup_steps`, then linearly down to 0 at `total_steps`.

    `budget_spent` (0 to 1, set by --budget-decay's callback) moves the schedule on to that
    share of `total_steps` when the time budget is further along than the step count, so the
    warm-up and the decay fit the budget whatever number of steps the machine makes in it."""

    def __init__(self, peak, warmup_steps, total_steps):
        self.peak, self.warmup_steps, self.total_steps = peak, max(1, warmup_steps), max(1, total_steps)
        self.budget_spent = tf.Variable(0.0, trainable=False, name='budget_spent')

    def __call__(self, step):
        step = tf.maximum(tf.cast(step, tf.float32), self.budget_spent * self.total_steps)
        rising = self.peak * step / self.warmup_steps
        falling = self.peak * tf.maximum(0.0, (self.total_steps - step) / max(1, self.total_steps - self.warmup_steps))
        return tf.where(step < self.warmup_steps, rising, falling)

    def get_config(self):
        return {'peak': self.peak, 'warmup_steps': self.warmup_steps, 'total_steps': self.total_steps}


def build(bert_config, checkpoint, cfg):
    """(bert4keras Transformer, uncompiled MaskedLanguageModel) of a bert_config.json dict."""
    transformer = model_lib.build_encoder(bert_config, checkpoint, cfg.mlm_dropout)
    return transformer, MaskedLanguageModel(transformer.model, cfg.mlm_dropout)


def compile_pretraining(model, cfg, total_steps):
    """AdamW with a linear warm-up and decay to 0 at `total_steps` (MLM and RTD alike)."""
    model.schedule = schedule = WarmupLinearDecay(cfg.mlm_lr, int(cfg.warmup * total_steps), total_steps)
    # Gradient clipping: a random-init Transformer's early steps can be large.
    model.compile(optimizer=keras.optimizers.AdamW(schedule, weight_decay=cfg.weight_decay, beta_2=0.98,
                                                   global_clipnorm=1.0))
    # The optimizer's variables made now: made by the first training step, they would make Keras
    # trace that step a second time, as long again.
    model.optimizer.build(model.trainable_variables)
    return model


def write_checkpoint(transformer, prefix):
    """The encoder's weights as an official-layout checkpoint at `prefix` (.index, .data-*, .meta).

    Written in a hidden temporary folder beside it, then renamed into place, the index last:
    a run killed mid-write leaves the previous checkpoint whole, and the temporary folder is
    the litter run.clean_litter removes at the next start.
    """
    folder, name = os.path.split(prefix)
    temporary = tempfile.mkdtemp(prefix=f'.{name}.', suffix='.tmp', dir=folder)
    try:
        compat.write_checkpoint(model_lib.checkpoint_values(transformer), os.path.join(temporary, name))
        for part in sorted(os.listdir(temporary), key=lambda p: p.endswith('.index')):
            if part.startswith(name + '.'):
                os.replace(os.path.join(temporary, part), os.path.join(folder, part))
    finally:
        shutil.rmtree(temporary, ignore_errors=True)
