"""Make bert4keras 0.11.5 run on TensorFlow 2.21 with tf-keras: import this before TensorFlow.

Every work-around for the stack lives here, once, with the reason beside it:

1. bert4keras only works with Keras 2 (tf-keras). Keras 3 fails at import (RecursionError)
   and later with "'tuple' object has no attribute 'rank'", so TF_KERAS=1 and
   TF_USE_LEGACY_KERAS=1 must be set before TensorFlow is imported.
2. bert4keras' optimizers subclass `keras.optimizers.Optimizer` and use the old (v2)
   optimizer internals (_set_hyper, add_slot, _resource_apply_dense). In tf-keras 2.11+
   that name is the new optimizer, so it is pointed at the legacy class before
   `bert4keras.optimizers` is imported.
3. bert4keras' EMA updates the average twice for sparse gradients (the embedding
   table): its `_resource_apply_sparse` updates the EMA, and so does the dense path
   that bert4keras' Adam routes sparse gradients through. The embeddings' EMA then comes
   out scaled by about (1 + m^t). `AdamEMA` routes sparse gradients through the dense
   path once.
4. `Transformer.save_weights_as_checkpoint` uses TF1's Session/Saver on an empty graph
   and fails under TF2 ("The Session graph is empty"). `write_checkpoint` writes the
   same official-format checkpoint with tf.compat.v1 in a fresh graph.
5. bert4keras' `align` broadcasts the attention mask with `mask[:, None, None, :]`, a
   StridedSlice of booleans with new axes that TFLite's builtin ops cannot run (and the
   pip TensorFlow's TFLite interpreter has no Flex delegate for it). `tflite_friendly_align`
   swaps in the same alignment written with expand_dims while the int8 path traces the model.
6. TensorFlow 2.21 logs through Abseil, and TF_CPP_MIN_LOG_LEVEL reaches Abseil only when a
   global object's constructor in libtensorflow_framework.so.2 calls absl::SetMinLogLevel.
   Two other static initializers of that library (port.cc: "oneDNN custom operations are
   on", cudart_stub.cc: "Could not find cuda drivers") run before it while the library is
   loaded, so they log at Abseil's default level, preceded by Abseil's "All log messages
   before absl::InitializeLog() ..." line; _pywrap_profiler_plugin.so carries its own copy
   of both libraries and prints the three lines again (tensorflow/tensorflow#100442).
   Nothing in Python runs between the loading and those constructors, so `import
   tensorflow` runs with file descriptor 2 read through a pipe that applies
   TF_CPP_MIN_LOG_LEVEL to Abseil's lines, as TensorFlow would have; everything else on
   stderr passes unchanged. After the import TensorFlow applies the level itself, and file
   descriptor 2 is the host's own again: a program that imports predict keeps its stderr.
7. bert4keras' RoPE repeats each sinusoid column twice with `K.repeat_elements`, which TF
   builds as a Split into single columns and a Concat of each twice. OpenVINO 2026.4's
   converter rewrites that pair into an Interpolate with an axis past the tensor's rank and
   fails (SplitConcatPairToInterpolateFusion: "All axes values should less than input rank").
   `openvino_friendly_rope` swaps in the same rotation written with tf.repeat while a model
   is traced for OpenVINO (bench/openvino_compare.py).
"""
import contextlib
import os
import re
import sys
import threading

os.environ.setdefault('TF_KERAS', '1')
os.environ.setdefault('TF_USE_LEGACY_KERAS', '1')
# TensorFlow's C++ log says 'failed call to cuInit' on every CPU-only machine; errors still
# reach Python as exceptions. Set TF_CPP_MIN_LOG_LEVEL=0 to see everything.
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')

# An Abseil log line: severity letter, MMDD, time (before absl::InitializeLog the seconds
# are Unix time: 00:00:1795671955.067129), thread id, file:line] message.
_ABSL_LINE = re.compile(rb'([IWEF])\d{4} [\d:.]+ +\d+ [^ \]]+:\d+\] ')
_ABSL_PREAMBLE = b'WARNING: All log messages before absl::InitializeLog() is called are written to STDERR'


def _shown(line, min_level):
    """Whether an stderr line passes TF_CPP_MIN_LOG_LEVEL (0 INFO, 1 WARNING, 2 ERROR, 3 FATAL)."""
    if line.startswith(_ABSL_PREAMBLE):
        return min_level == 0
    match = _ABSL_LINE.match(line)
    return match is None or 'IWEF'.index(match.group(1).decode()) >= min_level


@contextlib.contextmanager
def _abseil_lines_filtered(min_level):
    """Fix 6: file descriptor 2 goes through a pipe; a thread passes on the lines that
    `_shown` keeps, as they come (so a crash while loading still shows its reason)."""
    try:
        sys.stderr.flush()
        real_stderr = os.dup(2)
    except (OSError, ValueError, AttributeError):  # no stderr to filter
        yield
        return
    read_end, write_end = os.pipe()

    def forward():
        with os.fdopen(read_end, 'rb') as pipe, os.fdopen(real_stderr, 'wb', closefd=False) as out:
            for line in pipe:
                if _shown(line, min_level):
                    out.write(line)
                    out.flush()

    thread = threading.Thread(target=forward, name='stderr-filter', daemon=True)
    thread.start()
    os.dup2(write_end, 2)
    os.close(write_end)
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(real_stderr, 2)  # closes the pipe's last write end: the thread reads to the end
        thread.join()
        os.close(real_stderr)


try:
    _min_log_level = int(os.environ['TF_CPP_MIN_LOG_LEVEL'])
except ValueError:
    _min_log_level = 0  # what TensorFlow makes of a value that is not a number
with _abseil_lines_filtered(_min_log_level):
    import tensorflow as tf  # noqa: E402

keras = tf.keras  # tf-keras, because TF_USE_LEGACY_KERAS=1
keras.optimizers.Optimizer = keras.optimizers.legacy.Optimizer  # fix 2

import bert4keras.backend  # noqa: E402
import bert4keras.layers  # noqa: E402
from bert4keras.optimizers import (  # noqa: E402
    Adam,
    extend_with_exponential_moving_average,
    extend_with_parameter_wise_lr,
)

_AdamEMAWithLayerRates = extend_with_parameter_wise_lr(
    extend_with_exponential_moving_average(Adam)
)


class AdamEMA(_AdamEMAWithLayerRates):
    """Adam + EMA of the weights + per-parameter learning-rate multipliers (bert4keras).

    `paramwise_lr_schedule={'Head-': 20}` multiplies the step of every variable whose
    name contains 'Head-' by 20; `apply_ema_weights()` / `reset_old_weights()` swap the
    averaged weights in and out.
    """

    def _resource_apply_sparse(self, grad, var, indices):
        # Fix 3: one dense update, so the EMA is updated exactly once per step.
        dense_grad = tf.convert_to_tensor(tf.IndexedSlices(grad, indices, tf.shape(var)))
        return self._resource_apply_dense(dense_grad, var)


def write_checkpoint(named_values, prefix):
    """Write {official variable name: numpy array} as a TF1 checkpoint at `prefix`.

    Produces prefix.index, prefix.data-00000-of-00001 and prefix.meta, the files of the
    official RoFormer-v2 releases, readable by tf.train.load_variable and bert4keras.
    Values are fed through placeholders so the .meta graph stays small.
    """
    with tf.Graph().as_default():
        variables, feeds, assigns = [], {}, []
        for name, value in named_values.items():
            variable = tf.compat.v1.get_variable(name, shape=value.shape, dtype=value.dtype,
                                                 initializer=tf.compat.v1.zeros_initializer())
            placeholder = tf.compat.v1.placeholder(value.dtype, value.shape)
            assigns.append(variable.assign(placeholder))
            feeds[placeholder] = value
            variables.append(variable)
        saver = tf.compat.v1.train.Saver(variables, save_relative_paths=True)  # the folder may be renamed after
        with tf.compat.v1.Session() as session:
            session.run(assigns, feed_dict=feeds)
            saver.save(session, prefix)


def _align_with_expand_dims(tensor, axes, ndim=None):
    """bert4keras.backend.align (fix 5): dimension i of `tensor` becomes dimension axes[i] of an
    `ndim`-dimensional tensor, the other dimensions of size 1."""
    ndim = ndim or max(axes) + 1
    kept = sorted(axis % ndim for axis in axes)
    for axis in range(ndim):
        if axis not in kept:
            tensor = tf.expand_dims(tensor, axis)
    return tensor


@contextlib.contextmanager
def tflite_friendly_align():
    """Fix 5: inside the block, models traced use `_align_with_expand_dims` (same values)."""
    saved = bert4keras.backend.align, bert4keras.layers.align
    bert4keras.backend.align = bert4keras.layers.align = _align_with_expand_dims
    try:
        yield
    finally:
        bert4keras.backend.align, bert4keras.layers.align = saved


def _rope_with_tf_repeat(sinusoidal, *tensors):
    """bert4keras.backend.apply_rotary_position_embeddings (fix 7), the same values."""
    ndim = len(tensors[0].shape)
    sinusoidal = bert4keras.backend.align(sinusoidal, [0, 1, -1], ndim)
    cos_pos = tf.repeat(sinusoidal[..., 1::2], 2, axis=-1)
    sin_pos = tf.repeat(sinusoidal[..., ::2], 2, axis=-1)
    outputs = []
    for tensor in tensors:
        rotated = tf.reshape(tf.stack([-tensor[..., 1::2], tensor[..., ::2]], ndim), tf.shape(tensor))
        outputs.append(tensor * cos_pos + rotated * sin_pos)
    return outputs[0] if len(outputs) == 1 else outputs


@contextlib.contextmanager
def openvino_friendly_rope():
    """Fix 7: inside the block, models traced rotate with `_rope_with_tf_repeat` (same values)."""
    saved = bert4keras.backend.apply_rotary_position_embeddings, bert4keras.layers.apply_rotary_position_embeddings
    bert4keras.backend.apply_rotary_position_embeddings = _rope_with_tf_repeat
    bert4keras.layers.apply_rotary_position_embeddings = _rope_with_tf_repeat
    try:
        yield
    finally:
        bert4keras.backend.apply_rotary_position_embeddings, bert4keras.layers.apply_rotary_position_embeddings = saved
