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
"""
import contextlib
import os

os.environ.setdefault('TF_KERAS', '1')
os.environ.setdefault('TF_USE_LEGACY_KERAS', '1')
# TensorFlow's C++ log says 'failed call to cuInit' on every CPU-only machine; errors still
# reach Python as exceptions. Set TF_CPP_MIN_LOG_LEVEL=0 to see everything.
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')

import tensorflow as tf  # noqa: E402

keras = tf.keras  # tf-keras, because TF_USE_LEGACY_KERAS=1
keras.optimizers.Optimizer = keras.optimizers.legacy.Optimizer  # fix 2

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
        saver = tf.compat.v1.train.Saver(variables)
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
    import bert4keras.backend
    import bert4keras.layers
    saved = bert4keras.backend.align, bert4keras.layers.align
    bert4keras.backend.align = bert4keras.layers.align = _align_with_expand_dims
    try:
        yield
    finally:
        bert4keras.backend.align, bert4keras.layers.align = saved
