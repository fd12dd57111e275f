"""Mixed precision (--precision): the encoder computes in bfloat16 / float16, the head and the
loss stay float32, a training step moves the weights as a float32 step does (under float16
through Keras' loss scaling, which the FGM train_step must undo), and EMA still works."""
import numpy as np
import pytest

import config
import model as model_lib
from multilabel import scale
from multilabel.compat import keras
from test_model import batch, config_without_dropout, tiny_classifier  # noqa: F401  (fixture)


@pytest.fixture
def policy(request):
    scale.set_precision(request.param)
    yield request.param
    scale.set_precision('float32')  # the policy is global: leave the other tests in float32


def head_step(tiny_pretrained, config_path):
    """Change of the head's kernel in one SGD step with FGM; the model's output dtype."""
    classifier = tiny_classifier(tiny_pretrained, fgm_epsilon=0.5, config_path=config_path)
    classifier.compile(loss='binary_crossentropy', optimizer=keras.optimizers.SGD(learning_rate=0.1))
    kernel = classifier.get_layer(model_lib.HEAD_PREFIX + 'Dense').kernel
    before = kernel.numpy()
    classifier.train_on_batch(*batch())
    return kernel.numpy() - before, classifier


@pytest.mark.parametrize('policy', ['mixed_bfloat16', 'mixed_float16'], indirect=True)
def test_a_mixed_precision_step_moves_the_weights_as_float32_does(tiny_pretrained, config_without_dropout, policy):
    mixed, classifier = head_step(tiny_pretrained, config_without_dropout)
    compute = policy.removeprefix('mixed_')
    assert classifier.get_layer('Embedding-Token').compute_dtype == compute
    assert classifier.get_layer(model_lib.HEAD_PREFIX + 'Dense').compute_dtype == 'float32'
    assert classifier.output.dtype == 'float32'
    assert (policy == 'mixed_float16') == hasattr(classifier.optimizer, 'get_scaled_loss')
    scale.set_precision('float32')
    full, _ = head_step(tiny_pretrained, config_without_dropout)
    cosine = (mixed * full).sum() / np.linalg.norm(mixed) / np.linalg.norm(full)
    assert cosine > 0.99 and 0.9 < np.linalg.norm(mixed) / np.linalg.norm(full) < 1.1  # same step, unscaled


@pytest.mark.parametrize('policy', ['mixed_bfloat16', 'mixed_float16'], indirect=True)
def test_mixed_precision_trains_with_ema_and_fgm(tiny_pretrained, policy):
    classifier = tiny_classifier(tiny_pretrained, fgm_epsilon=0.5)
    model_lib.compile_for_training(classifier, config.Config(encoder_lr=1e-3, head_lr=1e-2, ema_momentum=0.9))
    history = classifier.fit(*batch(), epochs=3, verbose=0)
    assert np.isfinite(history.history['loss']).all()
    optimizer = model_lib.ema_optimizer(classifier)
    trained = [v.numpy() for v in classifier.trainable_variables]
    optimizer.apply_ema_weights()
    averaged = [v.numpy() for v in classifier.trainable_variables]
    optimizer.reset_old_weights()
    assert all(np.isfinite(w).all() for w in averaged)
    assert not all(np.allclose(a, b) for a, b in zip(trained, averaged))
    np.testing.assert_array_equal(classifier.trainable_variables[0].numpy(), trained[0])


@pytest.mark.parametrize('hardware, policy', [(None, 'float32'), ('CPU with avx512_bf16', 'mixed_bfloat16')])
def test_auto_takes_bfloat16_only_where_the_hardware_computes_it(monkeypatch, hardware, policy):
    from multilabel import inference
    monkeypatch.setattr(inference, 'bfloat16_hardware', lambda: hardware)
    try:
        assert scale.set_precision('auto') == policy
        assert keras.mixed_precision.global_policy().name == policy
        line = scale.describe_precision('auto', policy)
        assert line.startswith(f'precision: {policy} ') and '(auto: ' in line
        assert (hardware or 'no AVX512-BF16') in line
    finally:
        scale.set_precision('float32')


def test_bfloat16_asked_for_on_a_machine_that_emulates_it_is_said_to_be_slow(monkeypatch):
    from multilabel import inference
    monkeypatch.setattr(inference, 'bfloat16_hardware', lambda: None)
    assert 'emulated and slower than float32' in scale.describe_precision('mixed_bfloat16', 'mixed_bfloat16')
    assert 'note' not in scale.describe_precision('float32', 'float32')
    monkeypatch.setattr(inference, 'bfloat16_hardware', lambda: 'CPU with amx_bf16')
    assert 'note' not in scale.describe_precision('mixed_bfloat16', 'mixed_bfloat16')
