"""Argument checks and the NMS shared by the package's layers."""


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


def check_nms_arguments(max_detections, iou_threshold, confidence_threshold):
    check_positive_int("max_detections", max_detections)
    if not _is_number(iou_threshold) or not 0 < iou_threshold <= 1:
        raise ValueError(
            "`iou_threshold` must be in (0, 1]. "
            f"Received: iou_threshold={iou_threshold!r}"
        )
    if not _is_number(confidence_threshold) or not (
        0 <= confidence_threshold < 1
    ):
        raise ValueError(
            "`confidence_threshold` must be in [0, 1). "
            f"Received: confidence_threshold={confidence_threshold!r}"
        )


def non_max_suppression(max_detections, iou_threshold, confidence_threshold):
    """keras-cv's (class-agnostic) NMS layer on `yxyx` boxes.

    Relative yxyx numbers are fine: IoU does not change when the axes are
    scaled, so no image size is needed.
    """
    # Imported here: keras-cv is only needed once a decoding layer exists.
    import keras_cv

    return keras_cv.layers.NonMaxSuppression(
        bounding_box_format="yxyx",
        from_logits=False,
        iou_threshold=float(iou_threshold),
        confidence_threshold=float(confidence_threshold),
        max_detections=max_detections,
    )


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)
