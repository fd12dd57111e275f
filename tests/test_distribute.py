"""FGM, EMA and layered learning rates under tf.distribute give the same training as one device:
MirroredStrategy on two logical CPUs (a fresh process: logical devices must be set before
TensorFlow starts), and MultiWorkerMirroredStrategy with two worker processes on 127.0.0.1."""
import glob
import json
import os
import shutil
import socket
import subprocess
import sys
import textwrap

import numpy as np

import path
from conftest import ROOT, run_script

SCRIPT = textwrap.dedent('''
    import os, sys
    sys.path.insert(0, {root!r})
    from multilabel import compat
    from multilabel.compat import tf, keras
    import numpy as np
    import config, model as model_lib, path
    from multilabel import scale

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
    strategy = scale.make_strategy('mirrored')  # no GPU: every logical CPU
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


def free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(('127.0.0.1', 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def checkpoint_values(weights):
    """{variable: value} of the resume checkpoint train.py left in `weights`: model and optimizer (EMA too)."""
    import tensorflow as tf
    reader = tf.train.load_checkpoint(os.path.join(weights, path.RESUME_DIR))
    return {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()
            if 'OPTIMIZER_SLOT' in name or name.startswith('model/')}


def test_multiworker_training_matches_one_device_and_only_the_chief_writes(tiny_pretrained, tmp_path):
    pretrained = tmp_path / 'tiny'
    shutil.copytree(tiny_pretrained, pretrained)
    settings = path.read_json(pretrained / path.CONFIG_NAME)
    settings.update(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)  # same forward pass everywhere
    path.write_json(str(pretrained / path.CONFIG_NAME), settings)
    flags = ['--pretrained', str(pretrained), '--epochs', '2', '--max-samples', '40', '--valid-ratio', '0.2',
             '--batch-size', '16', '--maxlen', '32', '--dropout', '0', '--encoder-lr', '1e-3', '--head-lr', '1e-2',
             '--ema-momentum', '0.9', '--fgm-epsilon', '0.5']
    cluster = {'worker': [f'127.0.0.1:{port}' for port in free_ports(2)]}
    workers = []
    for index in range(2):
        temporary = tmp_path / f'tmp{index}'
        temporary.mkdir()
        env = dict(os.environ, TMPDIR=str(temporary),
                   TF_CONFIG=json.dumps({'cluster': cluster, 'task': {'type': 'worker', 'index': index}}))
        workers.append(subprocess.Popen([sys.executable, 'train.py', *flags, '--weights', str(tmp_path / 'two')],
                                        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    one = run_script('train.py', *flags, '--weights', str(tmp_path / 'one'), '--strategy', 'default')
    outputs = [worker.communicate(timeout=300)[0] for worker in workers]
    assert one.returncode == 0, one.stderr[-3000:]
    for worker, output in zip(workers, outputs):
        assert worker.returncode == 0, output[-3000:]
        assert 'devices: 2 on 2 workers, multiworker: ' in output

    one_values, two_values = checkpoint_values(tmp_path / 'one'), checkpoint_values(tmp_path / 'two')
    assert one_values.keys() == two_values.keys() and len(one_values) > 30
    for name in one_values:
        np.testing.assert_allclose(one_values[name], two_values[name], rtol=1e-4, atol=1e-6, err_msg=name)
    assert sorted(os.listdir(tmp_path / 'two')) == sorted(os.listdir(tmp_path / 'one'))
    # The chief wrote the real folder; the other worker wrote to a temporary one and removed it.
    assert not glob.glob(str(tmp_path / 'tmp0' / '*'))
    assert not glob.glob(str(tmp_path / 'tmp1' / 'worker-weights-*'))
