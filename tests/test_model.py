"""model.py and multilabel/compat.py: checkpoint format, layered learning rates, the EMA fix, FGM."""
import os
import shutil

import numpy as np
import pytest
import tensorflow as tf

from multilabel import compat
import config
import model as model_lib
import path
from multilabel.compat import keras


def test_checkpoint_round_trip_is_bit_identical(tiny_pretrained, tmp_path):
    prefix = model_lib.find_checkpoint(tiny_pretrained)
    written = {name: tf.train.load_variable(prefix, name) for name, _ in tf.train.list_variables(prefix)}
    assert 'bert/embeddings/word_embeddings' in written
    assert 'bert/encoder/layer_1/intermediate/dense/kernel' in written

    # Loaded through the same path as the official checkpoints...
    encoder = model_lib.build_encoder(os.path.join(tiny_pretrained, path.CONFIG_NAME), prefix)
    loaded = model_lib.checkpoint_values(encoder)
    assert loaded.keys() == written.keys()
    for name in written:
        assert loaded[name].dtype == written[name].dtype
        np.testing.assert_array_equal(loaded[name], written[name], err_msg=name)

    # ...and written again: the same bytes of every variable.
    again = str(tmp_path / 'again' / path.CHECKPOINT_NAME)
    os.makedirs(os.path.dirname(again))
    compat.write_checkpoint(loaded, again)
    for name in written:
        np.testing.assert_array_equal(tf.train.load_variable(again, name), written[name], err_msg=name)


def test_checkpoint_files_are_the_official_ones(tiny_pretrained):
    names = set(os.listdir(tiny_pretrained))
    assert {'bert_config.json', 'vocab.txt', 'bert_model.ckpt.index',
            'bert_model.ckpt.data-00000-of-00001', 'bert_model.ckpt.meta'} <= names


def test_missing_checkpoint_means_random_init_and_partial_is_an_error(tiny_pretrained, tmp_path):
    folder = tmp_path / 'partial'
    folder.mkdir()
    for name in ('bert_config.json', 'vocab.txt'):
        shutil.copy(os.path.join(tiny_pretrained, name), folder)
    assert model_lib.find_checkpoint(str(folder)) is None
    shutil.copy(os.path.join(tiny_pretrained, 'bert_model.ckpt.index'), folder)
    with pytest.raises(model_lib.CheckpointError, match='data'):
        model_lib.find_checkpoint(str(folder))
    os.remove(folder / 'bert_model.ckpt.index')
    shutil.copy(os.path.join(tiny_pretrained, 'bert_model.ckpt.data-00000-of-00001'), folder)
    with pytest.raises(model_lib.CheckpointError, match='index'):
        model_lib.find_checkpoint(str(folder))


def tiny_classifier(tiny_pretrained, fgm_epsilon=0.0, num_labels=3, config_path=None):
    keras.utils.set_random_seed(0)
    return model_lib.build_classifier(config_path or os.path.join(tiny_pretrained, path.CONFIG_NAME), num_labels,
                                      model_lib.find_checkpoint(tiny_pretrained), dropout=0.0,
                                      fgm_epsilon=fgm_epsilon)


@pytest.fixture
def config_without_dropout(tiny_pretrained, tmp_path):
    """The tiny config with the encoder's dropout off, so two forward passes agree."""
    settings = path.read_json(os.path.join(tiny_pretrained, path.CONFIG_NAME))
    settings.update(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    config_path = str(tmp_path / path.CONFIG_NAME)
    path.write_json(config_path, settings)
    return config_path


def batch(seed=0, size=8, length=12, num_labels=3):
    rng = np.random.default_rng(seed)
    token_ids = rng.integers(5, 200, size=(size, length)).astype('int32')
    targets = rng.integers(0, 2, size=(size, num_labels)).astype('float32')
    return [token_ids, np.zeros_like(token_ids)], targets


def test_layered_learning_rates_move_encoder_and_head_by_their_own_rate(tiny_pretrained):
    cfg = config.Config(encoder_lr=1e-4, head_lr=1e-2, fgm_epsilon=0.0)
    classifier = model_lib.compile_for_training(tiny_classifier(tiny_pretrained), cfg)
    before = {v.name: v.numpy() for v in classifier.trainable_variables}
    classifier.train_on_batch(*batch())
    # Adam's first step moves each weight by about lr * |g| / (|g| + eps): at most lr.
    largest_step = {v.name: np.abs(v.numpy() - before[v.name]).max() for v in classifier.trainable_variables}
    head = {name: step for name, step in largest_step.items() if name.startswith(model_lib.HEAD_PREFIX)}
    encoder = {name: step for name, step in largest_step.items() if name not in head}
    assert head and len(encoder) > 10
    for name, step in head.items():
        assert 0.9 * cfg.head_lr < step <= 1.0001 * cfg.head_lr, name
    for name, step in encoder.items():
        assert 0.9 * cfg.encoder_lr < step <= 1.0001 * cfg.encoder_lr, name


def ema_after_steps(optimizer_class, steps=5):
    """EMA slots of an embedding-style (sparse gradient) and a dense variable given the same gradients."""
    start = np.arange(12, dtype='float32').reshape(4, 3) / 10
    sparse_variable, dense_variable = tf.Variable(start, name='table'), tf.Variable(start, name='kernel')
    optimizer = optimizer_class(learning_rate=0.1, ema_momentum=0.9)
    rng = np.random.default_rng(0)
    for _ in range(steps):
        gradient = rng.normal(size=(4, 3)).astype('float32')
        optimizer.apply_gradients([
            (tf.IndexedSlices(tf.constant(gradient), tf.range(4), tf.constant([4, 3])), sparse_variable),
            (tf.constant(gradient), dense_variable),
        ])
    np.testing.assert_allclose(sparse_variable.numpy(), dense_variable.numpy(), rtol=1e-6)
    return optimizer.get_slot(sparse_variable, 'ema').numpy(), optimizer.get_slot(dense_variable, 'ema').numpy()


def test_budget_decay_scales_the_encoder_and_head_rates_by_the_share_of_the_budget_left():
    cfg = config.Config(encoder_lr=1e-4, head_lr=1e-3)
    optimizer = model_lib.build_optimizer(cfg)
    model_lib.budget_decay(optimizer, cfg)(0.25)
    assert model_lib.learning_rates(optimizer) == (7.5e-05, 7.5e-04)
    model_lib.budget_decay(optimizer, cfg)(1.0)
    assert model_lib.learning_rates(optimizer) == (0.0, 0.0)


def test_train_py_with_budget_decay_lowers_the_rate_epoch_by_epoch(tiny_pretrained, tmp_path, ticking_clock):
    import contextlib
    import io
    import train
    from multilabel import history
    with contextlib.redirect_stdout(io.StringIO()):
        train.main(['--pretrained', tiny_pretrained, '--weights', str(tmp_path), '--epochs', '3', '--max-samples', '40',
                    '--maxlen', '32', '--batch-size', '8', '--encoder-lr', '1e-4', '--head-lr', '1e-3',
                    '--time-budget', '5', '--budget-decay'])
    rates = [row['encoder_lr'] for row in history.read_history(str(tmp_path / path.HISTORY_NAME))]
    assert len(rates) == 3 and 1e-4 > rates[0] > rates[1] > rates[2] > 0.9e-4  # the seconds of 5 minutes spent
    assert [row['head_lr'] for row in history.read_history(str(tmp_path / path.HISTORY_NAME))] == \
        pytest.approx([10 * rate for rate in rates])


def test_ema_of_an_embedding_equals_ema_of_a_dense_weight():
    sparse_ema, dense_ema = ema_after_steps(compat.AdamEMA)
    np.testing.assert_allclose(sparse_ema, dense_ema, rtol=1e-6)


def test_unpatched_bert4keras_ema_double_counts_sparse_gradients():
    # The reason for compat.AdamEMA: without it the embedding EMA is off.
    sparse_ema, dense_ema = ema_after_steps(compat._AdamEMAWithLayerRates)
    assert not np.allclose(sparse_ema, dense_ema, rtol=1e-3)


def test_fgm_leaves_embeddings_unperturbed_after_a_step(tiny_pretrained):
    classifier = tiny_classifier(tiny_pretrained, fgm_epsilon=5.0)
    classifier.compile(loss='binary_crossentropy', optimizer=keras.optimizers.SGD(learning_rate=0.0))
    embeddings = classifier.get_layer(model_lib.ADVERSARIAL_LAYER).embeddings
    before = embeddings.numpy()
    classifier.train_on_batch(*batch())
    np.testing.assert_allclose(embeddings.numpy(), before, atol=1e-6)


def test_fgm_adds_the_gradient_at_the_perturbed_embeddings(tiny_pretrained, config_without_dropout):
    def step_change(fgm_epsilon):
        classifier = tiny_classifier(tiny_pretrained, fgm_epsilon, config_path=config_without_dropout)
        classifier.compile(loss='binary_crossentropy', optimizer=keras.optimizers.SGD(learning_rate=1.0))
        before = classifier.get_layer(model_lib.HEAD_PREFIX + 'Dense').kernel.numpy()
        classifier.train_on_batch(*batch())
        return before - classifier.get_layer(model_lib.HEAD_PREFIX + 'Dense').kernel.numpy()

    plain, zero_step, adversarial = step_change(0.0), step_change(1e-12), step_change(5.0)
    # A vanishing perturbation doubles the plain gradient; a real one changes it.
    np.testing.assert_allclose(zero_step, 2 * plain, rtol=1e-4, atol=1e-7)
    assert not np.allclose(adversarial, 2 * plain, rtol=1e-3, atol=1e-6)


def test_rdrop_divergence_is_the_symmetric_bernoulli_kl_averaged_and_zero_for_equal_passes():
    rng = np.random.default_rng(0)
    p, q = rng.uniform(0.01, 0.99, size=(2, 4, 3))
    kl = lambda a, b: a * np.log(a / b) + (1 - a) * np.log((1 - a) / (1 - b))
    expected = np.mean((kl(p, q) + kl(q, p)) / 2)
    assert float(model_lib.rdrop_divergence(tf.constant(p), tf.constant(q))) == pytest.approx(expected, rel=1e-5)
    assert float(model_lib.rdrop_divergence(tf.constant(p), tf.constant(p))) == 0.0


def test_rdrop_steps_as_the_plain_loss_when_the_passes_agree(tiny_pretrained, config_without_dropout):
    def step_change(rdrop_alpha):
        classifier = tiny_classifier(tiny_pretrained, config_path=config_without_dropout)
        classifier.rdrop_alpha = rdrop_alpha
        classifier.compile(loss='binary_crossentropy', optimizer=keras.optimizers.SGD(learning_rate=1.0))
        before = classifier.get_layer(model_lib.HEAD_PREFIX + 'Dense').kernel.numpy()
        classifier.train_on_batch(*batch())
        return before - classifier.get_layer(model_lib.HEAD_PREFIX + 'Dense').kernel.numpy()

    # Without dropout both passes are the same: the mean of two equal losses, and no disagreement.
    np.testing.assert_allclose(step_change(5.0), step_change(0.0), rtol=1e-5, atol=1e-8)


def test_rdrop_trains_the_two_dropout_passes_to_agree(tiny_pretrained):
    inputs, targets = batch(size=16)

    def disagreement_after_training(rdrop_alpha):
        classifier = tiny_classifier(tiny_pretrained)  # the encoder's own dropout is on
        classifier.rdrop_alpha = rdrop_alpha
        classifier.compile(loss='binary_crossentropy', optimizer=keras.optimizers.Adam(learning_rate=1e-3))
        for _ in range(15):
            classifier.train_on_batch(inputs, targets)
        keras.utils.set_random_seed(1)
        return np.mean([float(model_lib.rdrop_divergence(classifier(inputs, training=True),
                                                         classifier(inputs, training=True))) for _ in range(5)])

    assert disagreement_after_training(50.0) < 0.5 * disagreement_after_training(0.0)


def test_openvino_friendly_rope_rotates_exactly_as_bert4keras():
    import bert4keras.backend
    rng = np.random.default_rng(0)
    sinusoidal = tf.constant(rng.standard_normal((2, 7, 8)), tf.float32)  # [batch, length, head size]
    query, key = (tf.constant(rng.standard_normal((2, 7, 3, 8)), tf.float32) for _ in range(2))
    expected = bert4keras.backend.apply_rotary_position_embeddings(sinusoidal, query, key)
    with compat.openvino_friendly_rope():
        import bert4keras.layers
        got = bert4keras.layers.apply_rotary_position_embeddings(sinusoidal, query, key)
    for a, b in zip(expected, got):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert bert4keras.layers.apply_rotary_position_embeddings is bert4keras.backend.apply_rotary_position_embeddings


def encoder_dropout_rates(classifier):
    return {layer.rate for layer in classifier.layers
            if isinstance(layer, keras.layers.Dropout) and not layer.name.startswith(model_lib.HEAD_PREFIX)}


def test_encoder_dropout_replaces_the_config_files_rates(tiny_pretrained):
    config_path = os.path.join(tiny_pretrained, path.CONFIG_NAME)
    assert path.read_json(config_path)['hidden_dropout_prob'] == 0.1
    assert encoder_dropout_rates(model_lib.build_classifier(config_path, 3)) == {0.1}
    assert encoder_dropout_rates(model_lib.build_classifier(config_path, 3, encoder_dropout=0.3)) == {0.3}
    # The head keeps its own rate.
    head = model_lib.build_classifier(config_path, 3, dropout=0.2, encoder_dropout=0.3).get_layer(
        model_lib.HEAD_PREFIX + 'Dropout')
    assert head.rate == 0.2


def test_the_encoder_dropout_flag_is_checked():
    import train
    assert config.from_args(train.parse_args(['--encoder-dropout', '0.2'])).encoder_dropout == 0.2
    assert config.from_args(train.parse_args([])).encoder_dropout is None
    with pytest.raises(config.InputError, match='--encoder-dropout: must be at least 0 and less than 1'):
        train.parse_args(['--encoder-dropout', '1'])
