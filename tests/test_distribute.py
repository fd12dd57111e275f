"""FGM, EMA and layered learning rates under tf.distribute.MirroredStrategy on two logical CPUs
give the same step as one device (a fresh process: logical devices must be set before TensorFlow starts)."""
import subprocess
import sys
import textwrap

from conftest import ROOT

SCRIPT = textwrap.dedent('''
    import os, sys
    sys.path.insert(0, {root!r})
    import compat
    from compat import tf, keras
    import numpy as np
    import config, model as model_lib, path

    cpu = tf.config.list_physical_devices('CPU')[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    pretrained = {pretrained!r}
    settings = path.read_json(os.path.join(pretrained, path.CONFIG_NAME))
    settings.update(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)  # same forward pass everywhere
    config_path = os.path.join({tmp!r}, 'config.json')
    path.write_json(config_path, settings)

    rng = np.random.default_rng(0)
    token_ids = rng.integers(5, 200, size=(8, 12)).astype('int32')
    targets = rng.integers(0, 2, size=(8, 3)).astype('float32')
    data = tf.data.Dataset.from_tensors(((token_ids, np.zeros_like(token_ids)), targets))
    cfg = config.Config(encoder_lr=1e-3, head_lr=1e-2, ema_momentum=0.9)

    def train(strategy):
        with strategy.scope():
            keras.utils.set_random_seed(0)
            classifier = model_lib.build_classifier(config_path, 3, model_lib.find_checkpoint(pretrained),
                                                    dropout=0.0, fgm_epsilon=0.5)
            model_lib.compile_for_training(classifier, cfg)
        classifier.fit(data.repeat(3), epochs=1, verbose=0)
        weights = [v.numpy() for v in classifier.trainable_variables]
        classifier.optimizer.apply_ema_weights()
        ema = [v.numpy() for v in classifier.trainable_variables]
        return weights, ema

    one_weights, one_ema = train(tf.distribute.get_strategy())
    strategy = tf.distribute.MirroredStrategy(['/cpu:0', '/cpu:1'])
    assert strategy.num_replicas_in_sync == 2
    two_weights, two_ema = train(strategy)
    for a, b in zip(one_weights + one_ema, two_weights + two_ema):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
    print('SAME')
''')


def test_mirrored_training_matches_one_device(tiny_pretrained, tmp_path):
    script = SCRIPT.format(root=ROOT, pretrained=tiny_pretrained, tmp=str(tmp_path))
    result = subprocess.run([sys.executable, '-c', script], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().endswith('SAME')
