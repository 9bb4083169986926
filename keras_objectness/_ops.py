"""`keras.ops` that also work inside `tf.data`, whatever the Keras backend.

The box math shared by the layers and the pipelines (`BoxSpace.encode`,
`GaussianBoxTargets`, `RegionCrops`, the box-format helpers) is written once
in `keras.ops`. A `tf.data` map traces its function into a TensorFlow graph,
where `keras.ops` of the JAX or PyTorch backend cannot run (`Cannot convert
a symbolic tf.Tensor to a numpy array`). Modules that are used by both import
`ops` from here instead of `keras`: each attribute lookup gives the
`keras.ops` function, except inside a TensorFlow graph under another
backend, where it gives the TensorFlow backend's implementation of the same
function, the very code `keras.ops` runs under `KERAS_BACKEND=tensorflow`.
So a pipeline gives the same values under every backend.

This is the rule Keras applies to its own preprocessing layers (its
`TFDataLayer` and bounding-box converters switch to the TensorFlow backend
inside `tf.data` graphs).
"""

import sys

import keras

_TF_MODULES = None


def in_tf_graph():
    """True while TensorFlow traces a graph (`tf.data`, `tf.function`)."""
    if "tensorflow" not in sys.modules:
        return False
    import tensorflow as tf

    return not tf.executing_eagerly()


def use_tensorflow_ops():
    """True when `ops` must give TensorFlow implementations right now."""
    return keras.backend.backend() != "tensorflow" and in_tf_graph()


def _tf_modules():
    global _TF_MODULES
    if _TF_MODULES is None:
        # The TensorFlow backend's op modules, in `keras.ops`' lookup order.
        # They import without switching the global backend.
        from keras.src.backend.tensorflow import core
        from keras.src.backend.tensorflow import image
        from keras.src.backend.tensorflow import linalg
        from keras.src.backend.tensorflow import math
        from keras.src.backend.tensorflow import nn
        from keras.src.backend.tensorflow import numpy

        _TF_MODULES = (numpy, nn, core, math, image, linalg)
    return _TF_MODULES


def tensorflow_op(name):
    """The TensorFlow backend's implementation of `keras.ops.<name>`."""
    for module in _tf_modules():
        function = getattr(module, name, None)
        if callable(function):
            return function
    raise AttributeError(
        f"keras_objectness._ops has no TensorFlow implementation of "
        f"`keras.ops.{name}`"
    )


class _Ops:
    """`keras.ops`, or its TensorFlow backend inside foreign tf graphs."""

    def __getattr__(self, name):
        if use_tensorflow_ops():
            return tensorflow_op(name)
        return getattr(keras.ops, name)


ops = _Ops()
