"""Counts the convolutions and matrix products in a traced function.

The tracing tests ask how many copies of a network a compiled function
holds. Each backend has its own graph: a `tf.function` concrete graph
under TensorFlow, a jaxpr (sub-jaxprs of `jit`, loops and conditionals
included) under JAX.
"""

import collections

import keras
import numpy as np

# Backend op names for the counted kinds.
_TENSORFLOW = {"Conv2D": "conv", "MatMul": "matmul"}
_JAX = {"conv_general_dilated": "conv", "dot_general": "matmul"}


def op_counts(function, shapes):
    """Traces `function` on float32 inputs of `shapes`.

    Args:
        function: callable taking one positional tensor per shape.
        shapes: list of shapes; `None` sizes (TensorFlow) are traced as
            unknown, or as 2 under JAX, which traces concrete shapes.

    Returns:
        `collections.Counter` with the keys `"conv"` and `"matmul"`.
    """
    backend = keras.backend.backend()
    counts = collections.Counter(conv=0, matmul=0)
    if backend == "tensorflow":
        import tensorflow as tf

        specs = [tf.TensorSpec(shape) for shape in shapes]
        graph = tf.function(function).get_concrete_function(*specs).graph
        for op in graph.get_operations():
            if op.type in _TENSORFLOW:
                counts[_TENSORFLOW[op.type]] += 1
        return counts
    if backend == "jax":
        import jax

        arrays = [
            np.zeros([2 if s is None else s for s in shape], "float32")
            for shape in shapes
        ]
        _count_jaxpr(jax.make_jaxpr(function)(*arrays).jaxpr, counts)
        return counts
    raise NotImplementedError(f"No graph to inspect under {backend!r}")


def _count_jaxpr(jaxpr, counts):
    from jax.extend import core

    for equation in jaxpr.eqns:
        name = equation.primitive.name
        if name in _JAX:
            counts[_JAX[name]] += 1
        for param in equation.params.values():
            for sub in param if isinstance(param, (list, tuple)) else [param]:
                if isinstance(sub, core.ClosedJaxpr):
                    _count_jaxpr(sub.jaxpr, counts)
                elif isinstance(sub, core.Jaxpr):
                    _count_jaxpr(sub, counts)
