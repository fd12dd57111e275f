"""Scale out: the tf.distribute strategy and the mixed-precision policy that the flags choose.

    python train.py --strategy auto           # several GPUs: mirrored; TF_CONFIG with a cluster: multiworker
    python train.py --precision mixed_bfloat16

Strategies (TensorFlow's own engine, no other launcher):
- default: one device, the one TensorFlow picks.
- mirrored: `MirroredStrategy` over every visible GPU, or every logical CPU when there is no
  GPU (that is how the tests run it on two logical CPUs).
- multiworker: `MultiWorkerMirroredStrategy`; every worker runs the same command with its own
  `TF_CONFIG` (cluster addresses, its own task type and index).
- auto: multiworker when TF_CONFIG names more than one task, else mirrored when there are
  several GPUs, else default.

In every strategy `--batch-size` is the global batch: each of N replicas gets batch/N
samples and the gradients are averaged, so one step is the step of one device on the whole
batch, and the same learning rates apply (docs/training.md, "More devices, more machines").
"""
import json
import os
import tempfile

import config
from multilabel.compat import keras, tf

def cluster_size():
    """Number of tasks in the cluster that TF_CONFIG describes (0 without TF_CONFIG)."""
    try:
        cluster = json.loads(os.environ.get('TF_CONFIG') or '{}').get('cluster', {})
    except json.JSONDecodeError as error:
        raise config.InputError(f'TF_CONFIG is not valid JSON ({error})') from None
    return sum(len(tasks) for name, tasks in cluster.items() if name in ('chief', 'worker'))


def make_strategy(name='auto'):
    """The tf.distribute strategy called `name` (see the module docstring).

    Call it first, before other TensorFlow work: MultiWorkerMirroredStrategy must set up its
    collective ops before the runtime starts.
    """
    gpus = tf.config.list_physical_devices('GPU')
    for gpu in gpus:
        tf.config.experimental.set_memory_growth(gpu, True)  # share the GPU with other processes
    if name == 'auto':
        name = 'multiworker' if cluster_size() > 1 else 'mirrored' if len(gpus) > 1 else 'default'
    if name == 'multiworker':
        if not cluster_size():
            raise config.InputError('--strategy multiworker needs TF_CONFIG naming the cluster and this task, e.g. '
                                    '{"cluster": {"worker": ["host1:port", "host2:port"]}, '
                                    '"task": {"type": "worker", "index": 0}}')
        return tf.distribute.MultiWorkerMirroredStrategy()
    if name == 'mirrored':
        devices = [d.name for d in tf.config.list_logical_devices('GPU' if gpus else 'CPU')]
        return tf.distribute.MirroredStrategy(devices)
    return tf.distribute.get_strategy()


def describe_strategy(strategy):
    """The devices and how they share the work, in the words of the training log:
    'devices: 1 (CPU), no distribution', 'devices: 2 (CPU:0, CPU:1), mirrored: ...'."""
    shared = 'each computes its share of every batch, the gradients are averaged'
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return f'devices: {strategy.num_replicas_in_sync} on {cluster_size()} workers, multiworker: {shared}'
    if isinstance(strategy, tf.distribute.MirroredStrategy):
        names = ', '.join(device.split('device:')[-1] for device in strategy.extended.worker_devices)
        return f'devices: {strategy.num_replicas_in_sync} ({names}), mirrored: {shared}'
    return f'devices: 1 ({"GPU" if tf.config.list_logical_devices("GPU") else "CPU"}), no distribution'


PRECISION_WORDS = {
    'float32': 'float32 (float32 compute and weights)',
    'mixed_float16': 'mixed_float16 (float16 compute, float32 weights, loss scaling)',
    'mixed_bfloat16': 'mixed_bfloat16 (bfloat16 compute, float32 weights)',
}


def is_chief(strategy):
    """Whether this process writes the run's files: always, except on non-chief workers."""
    return strategy.extended.should_checkpoint


def output_dir(weights_dir, strategy):
    """Where this process writes: `weights_dir` on the chief, a fresh temporary folder elsewhere.

    Under MultiWorkerMirroredStrategy every worker must take part in saving (a checkpoint of
    distributed variables may need collective ops), but two writers on one folder would
    clobber each other, so only the chief writes to the real one; the caller removes the
    temporary folder at the end.
    """
    return weights_dir if is_chief(strategy) else tempfile.mkdtemp(prefix='worker-weights-')


def set_precision(name):
    """Keras' global dtype policy; returns the policy set (`auto` resolved). Variables stay float32;
    the mixed policies compute in float16 / bfloat16. The head (model.py) and the loss stay float32
    under every policy. mixed_float16 is for GPUs (Keras then wraps the optimizer for loss
    scaling); on CPUs, mixed_bfloat16 pays off only with AVX512-BF16 or AMX: elsewhere bfloat16 is
    emulated and slower than float32, so `auto` takes it only where the hardware computes it."""
    from multilabel import inference
    if name == 'auto':
        name = 'mixed_bfloat16' if inference.bfloat16_hardware() else 'float32'
    keras.mixed_precision.set_global_policy(name)
    return name


def describe_precision(requested, policy):
    """The run's 'precision: ...' line: the policy, why auto chose it, and a note when bfloat16 is
    emulated on this machine."""
    from multilabel import inference
    line = f'precision: {PRECISION_WORDS[policy]}'
    hardware = inference.bfloat16_hardware()
    if requested == 'auto':
        return line + f' (auto: {hardware or "no AVX512-BF16, AMX or bfloat16 GPU here"})'
    if policy == 'mixed_bfloat16' and not hardware:
        return line + ('; note: this machine has no AVX512-BF16, AMX or bfloat16 GPU, so bfloat16 is emulated and '
                       'slower than float32 (--precision auto chooses for the machine)')
    return line
