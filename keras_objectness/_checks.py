"""Argument checks shared by the package's public entry points.

Each rule is written once here, with one message form (Keras' "`name`
must be ... Received: name=..."). Layers, pipelines, evaluation, callbacks
and training import these; `keras_objectness.layers.nms` holds the NMS
arguments' rule. Every check takes the argument's name first, then its
value.
"""

import math
import numbers

import numpy as np

# The formats `keras.utils.bounding_boxes.convert_format` understands.
BOUNDING_BOX_FORMATS = (
    "xyxy",
    "yxyx",
    "xywh",
    "center_xywh",
    "center_yxhw",
    "rel_xyxy",
    "rel_yxyx",
    "rel_xywh",
    "rel_center_xywh",
)


def is_number(value):
    """A real Python or numpy number (bools are not)."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def is_integer(value):
    """A Python or numpy integer (bools are not)."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def check_int(name, value, minimum=1, allow_none=False):
    """Raises unless `value` is an integer >= `minimum` (or `None`).

    Returns:
        `value` as a Python int, or `None`.
    """
    if value is None and allow_none:
        return None
    if not is_integer(value) or value < minimum:
        what = (
            "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        )
        if allow_none:
            what += " or None"
        raise ValueError(f"`{name}` must be {what}. Received: {name}={value!r}")
    return int(value)


def check_positive_int(name, value):
    """`check_int(name, value, minimum=1)`."""
    return check_int(name, value, minimum=1)


def check_fraction(name, value, low_inclusive=False):
    """Raises unless `value` is a real number in (0, 1] (or [0, 1]).

    Returns:
        `value` as a Python float.
    """
    interval = "[0, 1]" if low_inclusive else "(0, 1]"
    ok = is_number(value)
    if ok:
        low_ok = value >= 0.0 if low_inclusive else value > 0.0
        ok = low_ok and value <= 1.0
    if not ok:
        raise ValueError(
            f"`{name}` must be in {interval}. Received: {name}={value!r}"
        )
    return float(value)


def check_min_background_iou(value):
    """Raises unless `value` (`min_background_iou`) is in [0, 0.5).

    Regions at IoU >= 0.5 to an object are positives, so a floor on the
    IoU of background regions lies below it.
    """
    if not is_number(value) or not 0.0 <= value < 0.5:
        raise ValueError(
            "`min_background_iou` must be in [0, 0.5) (regions at IoU >= "
            f"0.5 are positives). Received: min_background_iou={value!r}"
        )
    return float(value)


def check_choice(name, value, choices):
    """Raises unless `value` is one of the strings `choices`."""
    if not isinstance(value, str) or value not in choices:
        raise ValueError(
            f"`{name}` must be one of {choices}. Received: {name}={value!r}"
        )
    return value


def check_bounding_box_format(value, name="bounding_box_format"):
    """`check_choice` over `BOUNDING_BOX_FORMATS`."""
    return check_choice(name, value, BOUNDING_BOX_FORMATS)


def check_image_shape(image_shape, bounding_box_format=None, integers=True):
    """Checks an `image_shape` argument; returns `(height, width)` or `None`.

    Two uses share this rule. Box layers and `BoxSpace` (`integers=True`)
    need pixel counts, and need them for absolute formats (pass
    `bounding_box_format`); extra entries after `(height, width)` are
    ignored. Evaluation (`integers=False`) only rescales both axes, which
    leaves IoU unchanged, so `image_shape` stays optional and positive
    float sizes of `(height, width)` or `(height, width, channels)` are
    fine.

    Returns:
        `None`, or `(height, width)`: ints with `integers=True`, else floats.
    """
    if image_shape is None:
        if bounding_box_format is not None and not (
            bounding_box_format.startswith("rel_")
        ):
            raise ValueError(
                "`image_shape` is required for the absolute box format "
                f"{bounding_box_format!r}: pass `image_shape=(height, width)`. "
                f"Received: image_shape={image_shape}"
            )
        return None
    try:
        dims = tuple(image_shape)
        if integers:
            ok = len(dims) >= 2 and all(
                _is_positive_integral(v) for v in dims[:2]
            )
        else:
            ok = 2 <= len(dims) <= 3 and all(
                _is_positive_size(v) for v in dims[:2]
            )
    except TypeError:
        ok = False
    if not ok:
        expected = (
            "`(height, width)` with positive integers"
            if integers
            else "`(height, width)` or `(height, width, channels)` with "
            "positive sizes"
        )
        raise ValueError(
            f"`image_shape` must be {expected}. "
            f"Received: image_shape={image_shape}"
        )
    cast = int if integers else float
    return cast(float(dims[0])), cast(float(dims[1]))


def _is_positive_size(value):
    """A number (or a scalar array holding one) above zero; not a string."""
    if isinstance(value, (bool, str, bytes)):
        return False
    try:
        return float(value) > 0
    except (TypeError, ValueError):
        return False


def _is_positive_integral(value):
    """An int (or a float or scalar array holding one) above zero."""
    if not _is_positive_size(value):
        return False
    as_float = float(value)
    return math.isfinite(as_float) and as_float.is_integer()


def check_class_ids(name, class_ids, num_classes=None):
    """Raises unless `class_ids` is a sequence of ints in `[0, num_classes)`.

    Returns:
        `class_ids` as a sorted tuple of distinct ints.
    """
    try:
        values = tuple(class_ids)
    except TypeError:
        values = None
    ok = values is not None and all(
        is_integer(v) and v >= 0 and (num_classes is None or v < num_classes)
        for v in values
    )
    if not ok:
        limit = "" if num_classes is None else f" below {num_classes}"
        raise ValueError(
            f"`{name}` must be a sequence of non-negative integers{limit}. "
            f"Received: {name}={class_ids}"
        )
    return tuple(sorted({int(v) for v in values}))


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


def check_labels(name, labels, valid, expected):
    """Raises unless every concrete label is a valid index of `valid`.

    Args:
        name: the argument's name, e.g. `"y_true"`.
        labels: integer numpy array of labels.
        valid: bool numpy array; `valid[label]` says whether `label` is
            allowed. Labels below 0 or past its end are invalid.
        expected: str. The allowed labels, in words, for the message.
    """
    labels = np.asarray(labels)
    invalid = (labels < 0) | (labels >= len(valid))
    in_range = ~invalid
    invalid[in_range] = ~valid[labels[in_range]]
    if invalid.any():
        raise ValueError(
            f"`{name}` must hold {expected}. Received: {name} with invalid "
            f"labels {sorted(set(labels[invalid].tolist()))}"
        )
