"""Argument checks shared by the package's public entry points.

Each rule is written once here, with one message form (Keras' "`name`
must be ... Received: name=..."). Layers, pipelines and training import
these; `keras_objectness.layers.nms` holds the NMS arguments' rule.
"""

def check_positive_int(name, value):
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(
            f"`{name}` must be a positive integer. Received: {name}={value!r}"
        )


def check_rank(name, shape, ranks, expected):
    """Raises unless `len(shape)` is in `ranks`; `expected` describes it."""
    if len(shape) not in ranks:
        raise ValueError(
            f"`{name}` must have shape {expected}. "
            f"Received: {name}.shape={tuple(shape)}"
        )


def check_same_sizes(name, shape, other_name, other_shape, axes, meaning):
    """Raises when static sizes of two shapes differ along `axes`.

    `axes` pairs an axis of `shape` with one of `other_shape`; unknown
    (`None`) sizes are not compared.
    """
    for axis, other_axis in axes:
        size, other = shape[axis], other_shape[other_axis]
        if size is not None and other is not None and size != other:
            raise ValueError(
                f"`{name}` and `{other_name}` must agree on {meaning}. "
                f"Received: {name}.shape={tuple(shape)}, "
                f"{other_name}.shape={tuple(other_shape)}"
            )


def is_number(value):
    """A real Python number (bools are not)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)
