"""Input conversion and data checks shared by the evaluation modules.

The argument rules (thresholds, formats, class ids) live in
`keras_objectness._checks`.

Everything here is numpy. Boxes are converted to `yxyx` corners in float64:
relative formats stay relative, absolute formats are divided by
`image_shape` when it is given and otherwise stay in pixels. Intersection
over union does not change when both axes are rescaled, so matching gives the
same answer either way; that is why evaluation, unlike the layers, does not
insist on `image_shape` for absolute formats.

Padding rule for the keras-cv style dicts:

* a ground-truth row is padding when its class is negative (`-1`); an
  optional `"ignore"` entry of the ground-truth dict (bool, same shape as
  `"classes"`) flags rows to ignore (VOC "difficult", COCO crowd), as
  `keras_objectness.data.keras_cv_dataset` writes it;
* a detection row is padding when its index is `>= num_detections` (if the
  dict has `num_detections`), or its class is negative (if the dict has
  `classes`), or, for class-generic dicts without either, when all four box
  coordinates are `-1`.

Rows that are not padding must have finite boxes with `max >= min` on both
axes and a non-NaN confidence; anything else raises a `ValueError`.
"""

import numpy as np


def to_array(value, name, ndim, dtype=np.float64):
    """`np.asarray` with a rank check (works on tensors too)."""
    try:
        array = np.asarray(value)
    except Exception as error:
        raise TypeError(
            f"`{name}` must be array-like. Received: {name} of type "
            f"{type(value).__name__}"
        ) from error
    if array.ndim != ndim:
        raise ValueError(
            f"`{name}` must have rank {ndim}. "
            f"Received: {name} with shape {array.shape}"
        )
    if array.dtype.kind not in "biuf":
        raise TypeError(
            f"`{name}` must hold numbers. Received: {name} with dtype "
            f"{array.dtype}"
        )
    return array.astype(dtype)


def boxes_to_yxyx(boxes, bounding_box_format, image_shape=None):
    """Converts `[..., 4]` boxes to `yxyx` corners (float64).

    Relative formats give relative corners. Absolute formats give pixel
    corners, or relative corners when `image_shape` is given.
    """
    boxes = np.asarray(boxes, dtype=np.float64)
    a, b, c, d = (boxes[..., i] for i in range(4))
    base = bounding_box_format.removeprefix("rel_")
    if base == "yxyx":
        y1, x1, y2, x2 = a, b, c, d
    elif base == "xyxy":
        x1, y1, x2, y2 = a, b, c, d
    elif base == "xywh":
        x1, y1, x2, y2 = a, b, a + c, b + d
    elif base == "center_xywh":
        x1, y1, x2, y2 = a - c / 2, b - d / 2, a + c / 2, b + d / 2
    else:  # center_yxhw
        y1, x1, y2, x2 = a - c / 2, b - d / 2, a + c / 2, b + d / 2
    corners = np.stack([y1, x1, y2, x2], axis=-1)
    if image_shape is not None and not bounding_box_format.startswith("rel_"):
        height, width = image_shape
        corners = corners / np.array([height, width, height, width])
    return corners


def check_boxes(corners, name):
    """Raises on non-finite or inverted `yxyx` corners (valid rows only)."""
    if not np.all(np.isfinite(corners)):
        raise ValueError(
            f"`{name}` must be finite; found NaN or inf in a box that is not "
            f"padding. Received: {name} with {_first_bad(corners)}"
        )
    inverted = (corners[:, 2] < corners[:, 0]) | (corners[:, 3] < corners[:, 1])
    if np.any(inverted):
        row = corners[np.argmax(inverted)]
        raise ValueError(
            f"`{name}` must have max >= min on both axes. Received: a box "
            f"with yxyx corners {row.tolist()}"
        )


def _first_bad(array):
    row = np.argmax(~np.all(np.isfinite(array.reshape(len(array), -1)), -1))
    return f"row {row} = {array[row].tolist()}"


def _get(mapping, key, name):
    if key not in mapping:
        raise ValueError(
            f"`{name}` must have the key {key!r}. Received: {name} with keys "
            f"{sorted(mapping)}"
        )
    return mapping[key]


def _check_dict(value, name):
    if not hasattr(value, "keys") or not hasattr(value, "__getitem__"):
        raise TypeError(
            f"`{name}` must be a dict of arrays. Received: {name} of type "
            f"{type(value).__name__}"
        )


def unpack_ground_truth(y_true, bounding_box_format, image_shape):
    """Splits a padded batch dict into per-image `(boxes, classes, ignore)`.

    `ignore` is all `False` when `y_true` has no `"ignore"` entry.
    """
    _check_dict(y_true, "y_true")
    boxes = to_array(_get(y_true, "boxes", "y_true"), 'y_true["boxes"]', 3)
    classes = to_array(
        _get(y_true, "classes", "y_true"), 'y_true["classes"]', 2
    )
    if boxes.shape[-1] != 4 or boxes.shape[:2] != classes.shape:
        raise ValueError(
            '`y_true["boxes"]` must have shape (batch, num_boxes, 4) and '
            '`y_true["classes"]` shape (batch, num_boxes). Received: '
            f"boxes shape {boxes.shape}, classes shape {classes.shape}"
        )
    ignore = np.zeros(classes.shape, dtype=bool)
    if "ignore" in y_true:
        ignore = to_array(y_true["ignore"], 'y_true["ignore"]', 2, bool)
        if ignore.shape != classes.shape:
            raise ValueError(
                '`y_true["ignore"]` must have the shape of `y_true["classes"]`'
                f" {classes.shape}. Received: shape {ignore.shape}"
            )
    corners = boxes_to_yxyx(boxes, bounding_box_format, image_shape)
    images = []
    for image_corners, image_classes, image_ignore in zip(
        corners, classes, ignore
    ):
        if np.any(np.isnan(image_classes)):
            raise ValueError('`y_true["classes"]` must not contain NaN.')
        valid = image_classes >= 0
        image_corners = image_corners[valid]
        check_boxes(image_corners, 'y_true["boxes"]')
        images.append(
            (
                image_corners,
                image_classes[valid].astype(np.int64),
                image_ignore[valid],
            )
        )
    return images


def unpack_detections(y_pred, bounding_box_format, image_shape, need_classes):
    """Splits a padded batch dict into per-image `(boxes, classes, scores)`.

    `classes` is `None` for class-generic dicts (no `"classes"` key).
    """
    _check_dict(y_pred, "y_pred")
    boxes = to_array(_get(y_pred, "boxes", "y_pred"), 'y_pred["boxes"]', 3)
    confidence = to_array(
        _get(y_pred, "confidence", "y_pred"), 'y_pred["confidence"]', 2
    )
    if boxes.shape[-1] != 4 or boxes.shape[:2] != confidence.shape:
        raise ValueError(
            '`y_pred["boxes"]` must have shape (batch, max_detections, 4) and '
            '`y_pred["confidence"]` shape (batch, max_detections). Received: '
            f"boxes shape {boxes.shape}, confidence shape {confidence.shape}"
        )
    batch, max_detections = confidence.shape
    valid = np.ones((batch, max_detections), dtype=bool)
    classes = None
    if "classes" in y_pred:
        classes = to_array(y_pred["classes"], 'y_pred["classes"]', 2)
        if classes.shape != confidence.shape:
            raise ValueError(
                '`y_pred["classes"]` must have the shape of '
                f'`y_pred["confidence"]` {confidence.shape}. Received: '
                f"shape {classes.shape}"
            )
        if np.any(np.isnan(classes)):
            raise ValueError('`y_pred["classes"]` must not contain NaN.')
        valid &= classes >= 0
    elif need_classes:
        raise ValueError(
            '`y_pred` must have the key "classes" for per-class evaluation '
            "(num_classes is set). Received: y_pred with keys "
            f"{sorted(y_pred)}"
        )
    if "num_detections" in y_pred:
        counts = to_array(
            y_pred["num_detections"], 'y_pred["num_detections"]', 1
        )
        if counts.shape != (batch,):
            raise ValueError(
                '`y_pred["num_detections"]` must have shape (batch,) = '
                f"({batch},). Received: shape {counts.shape}"
            )
        valid &= np.arange(max_detections)[None, :] < counts[:, None]
    elif classes is None:
        valid &= ~np.all(boxes == -1, axis=-1)
    corners = boxes_to_yxyx(boxes, bounding_box_format, image_shape)
    images = []
    for i in range(batch):
        keep = valid[i]
        image_corners = corners[i][keep]
        check_boxes(image_corners, 'y_pred["boxes"]')
        scores = confidence[i][keep]
        if np.any(np.isnan(scores)):
            raise ValueError(
                '`y_pred["confidence"]` must not contain NaN in detections '
                "that are not padding."
            )
        image_classes = None
        if classes is not None:
            image_classes = classes[i][keep].astype(np.int64)
        images.append((image_corners, image_classes, scores))
    return images


def check_same_batch(ground_truth, detections):
    if len(ground_truth) != len(detections):
        raise ValueError(
            "`y_true` and `y_pred` must have the same batch size. Received: "
            f"{len(ground_truth)} ground-truth images and {len(detections)} "
            "detection images"
        )
