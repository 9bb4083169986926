"""Gradients under the active Keras backend, for backend-neutral tests.

`tf.GradientTape` sees nothing a JAX-backed layer computes, so the tests
that check which weights or outputs get a gradient go through these:
a tape under TensorFlow, `jax.grad` under JAX (variables are swapped for
traced values with `keras.StatelessScope`).
"""

import keras
import numpy as np


def gradients(function, values, compiled=False, wrt=None):
    """Gradients of a scalar `function(*values)` with respect to `values`.

    Args:
        function: callable returning a scalar tensor.
        values: list of arrays.
        compiled: bool. Run in the backend's graph mode (`tf.function`,
            `jax.jit`), where values cannot be inspected.
        wrt: indices of the float `values` to differentiate; `None` for
            all.

    Returns:
        `(value, grads)`: the function's value and one numpy array per
        differentiated input.
    """
    backend = keras.backend.backend()
    values = [np.asarray(v) for v in values]
    wrt = tuple(range(len(values))) if wrt is None else tuple(wrt)
    if backend == "tensorflow":
        import tensorflow as tf

        def run(*tensors):
            watched = [tensors[i] for i in wrt]
            with tf.GradientTape() as tape:
                for tensor in watched:
                    tape.watch(tensor)
                value = function(*tensors)
            return value, tape.gradient(value, watched)

        if compiled:
            run = tf.function(run)
        value, grads = run(*[tf.constant(v) for v in values])
        return value.numpy(), [g.numpy() for g in grads]
    if backend == "jax":
        import jax

        run = jax.value_and_grad(function, argnums=wrt)
        if compiled:
            run = jax.jit(run)
        value, grads = run(*values)
        return np.asarray(value), [np.asarray(g) for g in grads]
    raise NotImplementedError(f"No gradients under {backend!r}")


def compiled(function):
    """`function` in the backend's graph mode; outputs come back as numpy."""
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        run = tf.function(function)
    elif backend == "jax":
        import jax

        run = jax.jit(function)
    else:
        raise NotImplementedError(f"No graph mode under {backend!r}")
    return lambda *values: keras.tree.map_structure(
        keras.ops.convert_to_numpy, run(*values)
    )


def variable_gradients(function, variables):
    """Gradients of a scalar `function()` with respect to Keras variables.

    Returns:
        One numpy array per variable.
    """
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        with tf.GradientTape() as tape:
            value = function()
        return [g.numpy() for g in tape.gradient(value, variables)]
    if backend == "jax":
        import jax

        def stateless(values):
            mapping = list(zip(variables, values))
            with keras.StatelessScope(state_mapping=mapping):
                return function()

        grads = jax.grad(stateless)([v.value for v in variables])
        return [np.asarray(g) for g in grads]
    raise NotImplementedError(f"No gradients under {backend!r}")
