"""Box-format helpers shared by `BoxSpace`, the layers and the pipelines.

Inside the package boxes are relative `yxyx` (TFDS's convention). Public
functions accept any Keras box format and convert at the boundary with
`keras.utils.bounding_boxes.convert_format`.

The data rule for bad boxes, used everywhere in the package:

* In eager code (a direct call on concrete arrays) a box that is NaN,
  inverted (max < min) or outside the image raises a `ValueError`. A box
  with zero area (max == min, not inverted) is dropped (treated like
  padding), as in graphs: it marks no place in the image.
* Inside compiled graphs (`tf.data`, `fit`, `predict`), where raising is not
  possible, boxes are clipped to the image and boxes that are non-finite or
  have no area after clipping are dropped (treated like padding).
* Boxes must be real numbers: strings or other non-numeric dtypes raise a
  `TypeError` (eager and graph alike, from the static dtype).
"""

import sys

import keras
import numpy as np

from keras_objectness._ops import ops

# Slack for coordinates a hair outside the image from float round-off.
_EDGE_TOLERANCE = 1e-4


def check_real_dtype(x, name="boxes"):
    """Raises a `TypeError` unless `x`'s dtype is a real number type.

    Runs on the raw input (array, tensor or nested list), before any
    conversion: JAX refuses to convert strings with an error of its own.
    """
    dtype = getattr(x, "dtype", None)
    if dtype is None:
        dtype = np.asarray(x).dtype
    try:
        dtype = keras.backend.standardize_dtype(dtype)
    except ValueError:  # Strings, objects: not a Keras dtype at all.
        dtype = str(getattr(dtype, "name", dtype))
    if not ("float" in dtype or "int" in dtype):
        raise TypeError(
            f"`{name}` must hold real numbers (a float or int array). "
            f"Received: {name}.dtype={dtype}"
        )


def check_finite(x, name):
    """Raises a `ValueError` for NaN or infinite values; eager values only.

    Does nothing inside graphs, so compiled code pays nothing for it.
    """
    if not is_eager(x):
        return
    values = ops.convert_to_numpy(x)
    bad = ~np.isfinite(values)
    if np.any(bad):
        raise ValueError(
            f"`{name}` must be finite. Received: {name} with "
            f"{int(np.sum(bad))} NaN or infinite values"
        )


def check_boxes_shape(boxes, name="boxes"):
    shape = ops.shape(boxes)
    if len(shape) not in (1, 2, 3) or shape[-1] != 4:
        raise ValueError(
            f"`{name}` must have shape `(..., 4)` with 1 to 3 dimensions "
            f"(box, boxes per image, batch). Received: {name}.shape={shape}"
        )


def to_rel_yxyx(boxes, bounding_box_format, image_shape=None):
    """Converts boxes to relative `yxyx` float32."""
    boxes = ops.cast(boxes, "float32")
    if bounding_box_format == "rel_yxyx":
        return boxes
    height, width = image_shape if image_shape is not None else (1, 1)
    return keras.utils.bounding_boxes.convert_format(
        boxes, bounding_box_format, "rel_yxyx", height=height, width=width
    )


def from_rel_yxyx(boxes, bounding_box_format, image_shape=None):
    """Converts relative `yxyx` boxes to `bounding_box_format`."""
    if bounding_box_format == "rel_yxyx":
        return boxes
    height, width = image_shape if image_shape is not None else (1, 1)
    return keras.utils.bounding_boxes.convert_format(
        boxes, "rel_yxyx", bounding_box_format, height=height, width=width
    )


def is_eager(x):
    """True when `x` is a concrete value we can inspect and raise on."""
    if "tensorflow" in sys.modules:
        import tensorflow as tf

        if not tf.executing_eagerly():
            return False
    if keras.backend.backend() == "jax":
        import jax

        return not isinstance(x, jax.core.Tracer)
    return True


def padding_mask(boxes, classes=None):
    """Valid-box mask from keras-cv's dense padding convention.

    A row is padding when its class is `-1` or, without classes, when all
    four coordinates are `-1`.
    """
    if classes is not None:
        return ops.greater_equal(classes, 0)
    return ops.logical_not(ops.all(ops.equal(boxes, -1.0), axis=-1))


def check_rel_yxyx(boxes, valid, name="boxes"):
    """Raises a `ValueError` for bad valid boxes; eager values only."""
    boxes = np.asarray(ops.convert_to_numpy(boxes), dtype=np.float64)
    valid = np.asarray(ops.convert_to_numpy(valid), dtype=bool)
    boxes = boxes[np.broadcast_to(valid, boxes.shape[:-1])]
    if boxes.size == 0:
        return
    if not np.all(np.isfinite(boxes)):
        raise ValueError(
            f"`{name}` holds NaN or infinite coordinates in a non-padding "
            f"box. Received: {name} with {np.sum(~np.isfinite(boxes))} "
            "non-finite values"
        )
    inverted = (boxes[:, 2] < boxes[:, 0]) | (boxes[:, 3] < boxes[:, 1])
    if np.any(inverted):
        raise ValueError(
            f"`{name}` holds inverted boxes (max < min). Received: "
            f"{boxes[inverted][0].tolist()} (as relative yxyx)"
        )
    outside = (boxes < -_EDGE_TOLERANCE) | (boxes > 1 + _EDGE_TOLERANCE)
    if np.any(outside):
        row = boxes[np.any(outside, axis=-1)][0]
        raise ValueError(
            f"`{name}` holds boxes outside the image. Received: "
            f"{row.tolist()} (as relative yxyx, expected within [0, 1])"
        )


def sanitize_rel_yxyx(boxes, valid):
    """Clips boxes to the image and drops non-finite or empty ones.

    Returns:
        `(boxes, valid)`: boxes with no NaN left, and the updated mask.
    """
    finite = ops.all(ops.isfinite(boxes), axis=-1)
    boxes = ops.where(finite[..., None], boxes, ops.zeros_like(boxes))
    boxes = ops.clip(boxes, 0.0, 1.0)
    has_area = ops.logical_and(
        ops.greater(boxes[..., 2], boxes[..., 0]),
        ops.greater(boxes[..., 3], boxes[..., 1]),
    )
    valid = ops.logical_and(ops.logical_and(valid, finite), has_area)
    return boxes, valid


def prepare_boxes(boxes, classes, bounding_box_format, image_shape, name):
    """Boundary handling used by every box-consuming entry point.

    Converts to relative `yxyx`, finds padding, then validates (eager) or
    sanitises (graph) according to the module's rule.
    """
    check_real_dtype(boxes, name)
    check_boxes_shape(boxes, name)
    boxes = ops.convert_to_tensor(boxes)
    valid = padding_mask(boxes, classes)
    boxes = to_rel_yxyx(boxes, bounding_box_format, image_shape)
    if is_eager(boxes):
        check_rel_yxyx(boxes, valid, name)
    return sanitize_rel_yxyx(boxes, valid)
