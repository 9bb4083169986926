import keras
from keras import ops

from keras_objectness import _checks
from keras_objectness import box_utils
from keras_objectness.layers import nms


@keras.saving.register_keras_serializable(package="keras_objectness")
class RegionDetections(keras.layers.Layer):
    """Per-class non-max suppression over scored regions.

    The last step of R-CNN-style detection: every region has one score per
    class (LSDA's `w_i . x - w_bg . x`); padding regions (four `-1`
    coordinates) are dropped, scores become confidences in `(0, 1)` with a
    sigmoid (order-preserving: the sigmoid of `w_i . x - w_bg . x` is the
    probability of class `i` against background alone), and keras-cv's
    `NonMaxSuppression` keeps the best boxes of each class.

    Eager calls raise a `ValueError` for NaN or infinite scores or box
    coordinates of a region that is not padding; inside graphs (`predict`)
    a region with a non-finite coordinate is treated like padding and a
    non-finite score gets confidence 0: neither is ever detected.

    Args:
        max_detections: int. Detections kept per image. Defaults to `100`.
        iou_threshold: float in `(0, 1]`. Per-class NMS overlap. Defaults
            to `0.3`.
        confidence_threshold: float in `[0, 1)`. Detections at or below are
            dropped. Defaults to `0.0`.
        **kwargs: standard `keras.layers.Layer` arguments.

    Call arguments:
        boxes: `(batch, num_regions, 4)` relative yxyx region boxes,
            padding rows all `-1`.
        scores: `(batch, num_regions, num_classes)` class scores.

    Returns:
        dict: `"boxes"` `(batch, max_detections, 4)`, `"classes"` and
        `"confidence"` `(batch, max_detections)`, padded with `-1`, and
        `"num_detections"` `(batch,)`.
    """

    def __init__(
        self,
        max_detections=100,
        iou_threshold=0.3,
        confidence_threshold=0.0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        nms.check_nms_arguments(
            max_detections, iou_threshold, confidence_threshold
        )
        self.max_detections = max_detections
        self.iou_threshold = float(iou_threshold)
        self.confidence_threshold = float(confidence_threshold)
        self._nms = nms.non_max_suppression(
            max_detections, iou_threshold, confidence_threshold
        )
        self.built = True

    def call(self, boxes, scores):
        self._check_shapes(boxes.shape, scores.shape)
        boxes = ops.cast(boxes, "float32")
        scores = ops.cast(scores, "float32")
        num_regions, num_classes = ops.shape(scores)[1], ops.shape(scores)[2]
        valid = ops.logical_not(ops.all(ops.equal(boxes, -1.0), axis=-1))
        finite_boxes = ops.all(ops.isfinite(boxes), axis=-1)
        finite_scores = ops.isfinite(scores)
        if box_utils.is_eager(boxes):
            finite = ops.logical_and(
                finite_boxes, ops.all(finite_scores, axis=-1)
            )
            bad = ops.convert_to_numpy(
                ops.logical_and(valid, ops.logical_not(finite))
            )
            if bad.any():
                raise ValueError(
                    "`boxes` and `scores` must be finite in every region "
                    "that is not padding. Received: "
                    f"{int(bad.sum())} regions with NaN or infinite values"
                )
        valid = ops.logical_and(valid, finite_boxes)
        # A non-finite score gets confidence 0: never kept.
        confidence = ops.where(
            finite_scores,
            ops.sigmoid(ops.where(finite_scores, scores, 0.0)),
            0.0,
        )
        # Padding regions get confidence 0: below any threshold, never kept.
        confidence = ops.where(valid[..., None], confidence, 0.0)
        boxes = ops.where(valid[..., None], ops.clip(boxes, 0.0, 1.0), 0.0)
        # keras-cv's NMS is class-agnostic. Per-class NMS in one call: each
        # (region, class) candidate is moved by 2 * class along both axes,
        # so boxes of different classes never overlap; the move also tells
        # the class back.
        offsets = 2.0 * ops.cast(ops.arange(num_classes), "float32")
        candidates = boxes[:, :, None, :] + offsets[None, None, :, None]
        candidates = ops.reshape(candidates, (-1, num_regions * num_classes, 4))
        confidence = ops.reshape(confidence, (-1, num_regions * num_classes, 1))
        detections = self._nms(candidates, confidence)
        kept = ops.greater_equal(detections["classes"], 0)
        classes = ops.floor(detections["boxes"][..., 0] / 2.0 + 0.25)
        boxes = detections["boxes"] - 2.0 * classes[..., None]
        return {
            "boxes": ops.where(kept[..., None], boxes, -1.0),
            "classes": ops.where(kept, ops.cast(classes, "int32"), -1),
            "confidence": detections["confidence"],
            "num_detections": detections["num_detections"],
        }

    def _check_shapes(self, boxes_shape, scores_shape):
        _checks.check_rank(
            "boxes", boxes_shape, (3,), "`(batch, num_regions, 4)`"
        )
        _checks.check_rank(
            "scores", scores_shape, (3,), "`(batch, num_regions, num_classes)`"
        )
        if boxes_shape[-1] != 4:
            raise ValueError(
                "`boxes` must have shape `(batch, num_regions, 4)`. "
                f"Received: boxes.shape={boxes_shape}"
            )
        _checks.check_same_sizes(
            "boxes",
            boxes_shape,
            "scores",
            scores_shape,
            [(0, 0), (1, 1)],
            "the batch size and the number of regions",
        )

    def compute_output_spec(self, boxes, scores):
        self._check_shapes(boxes.shape, scores.shape)
        batch = boxes.shape[0]
        detections = (batch, self.max_detections)
        return {
            "boxes": keras.KerasTensor((*detections, 4), dtype="float32"),
            "classes": keras.KerasTensor(detections, dtype="int32"),
            "confidence": keras.KerasTensor(detections, dtype="float32"),
            "num_detections": keras.KerasTensor((batch,), dtype="int32"),
        }

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "max_detections": self.max_detections,
                "iou_threshold": self.iou_threshold,
                "confidence_threshold": self.confidence_threshold,
            }
        )
        return config
