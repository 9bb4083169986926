"""Non-max suppression: the keras-cv layer the decoders use, and its
arguments' rule."""

from keras_objectness._checks import check_positive_int
from keras_objectness._checks import is_number


def check_nms_arguments(max_detections, iou_threshold, confidence_threshold):
    check_positive_int("max_detections", max_detections)
    if not is_number(iou_threshold) or not 0 < iou_threshold <= 1:
        raise ValueError(
            "`iou_threshold` must be in (0, 1]. "
            f"Received: iou_threshold={iou_threshold!r}"
        )
    if not is_number(confidence_threshold) or not (
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
