import math

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
    `NonMaxSuppression` keeps the best boxes of each class. On the
    TensorFlow backend, when every class of a region enters NMS anyway
    (at most `max_classes_per_region` classes), TensorFlow's per-class
    kernel (`tf.image.combined_non_max_suppression`) gives the same
    detections many times faster.

    Only each region's `max_classes_per_region` best classes enter NMS, so
    memory grows with regions x that number, not with the vocabulary (at
    100,000 classes and 1,000 regions all candidates would be 10^8 boxes
    per image). At its default, `max_detections`, the result is the same as
    with every class: if class `c` ranks below `max_detections` others in a
    region, each of those classes keeps a detection more confident than
    `(region, c)` (the region's own box or the box that suppressed it), so
    `(region, c)` and whatever it would have suppressed could never be
    among the `max_detections` kept.

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
        max_classes_per_region: optional int. Best classes of each region
            that enter NMS. Defaults to `None`: `max_detections`, which
            gives the same detections as every class would.
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
        max_classes_per_region=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        nms.check_nms_arguments(
            max_detections, iou_threshold, confidence_threshold
        )
        if max_classes_per_region is not None:
            _checks.check_positive_int(
                "max_classes_per_region", max_classes_per_region
            )
        self.max_classes_per_region = max_classes_per_region
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
        if self._per_class_nms_applies(num_classes):
            return self._per_class_nms(boxes, scores, valid, finite_scores)
        # Each region's best classes; a non-finite score ranks last and gets
        # confidence 0, padding regions get confidence 0: never kept.
        ranked_scores, classes = ops.top_k(
            ops.where(finite_scores, scores, float("-inf")),
            self._classes_per_region(num_classes),
        )
        confidence = ops.where(
            ops.logical_and(valid[..., None], ops.isfinite(ranked_scores)),
            ops.sigmoid(ranked_scores),
            0.0,
        )
        boxes = ops.where(valid[..., None], ops.clip(boxes, 0.0, 1.0), 0.0)
        # keras-cv's NMS is class-agnostic. Per-class NMS in one call: each
        # (region, class) candidate moves to its class's own tile of a
        # side x side grid of 2 x 2 tiles, so boxes of different classes
        # never overlap and the tile tells the class back. A grid rather
        # than a row keeps the moves below 2 * sqrt(num_classes), where
        # float32 still resolves boxes to 1e-4 at 100,000 classes.
        side = self._grid_side(num_classes)
        tile_y = ops.cast(classes % side, "float32")
        tile_x = ops.cast(classes // side, "float32")
        moves = 2.0 * ops.stack([tile_y, tile_x, tile_y, tile_x], axis=-1)
        num_candidates = num_regions * ops.shape(classes)[2]
        candidates = ops.reshape(
            boxes[:, :, None, :] + moves, (-1, num_candidates, 4)
        )
        confidence = ops.reshape(confidence, (-1, num_candidates, 1))
        detections = self._nms(candidates, confidence)
        kept = ops.greater_equal(detections["classes"], 0)
        tiles = ops.floor(detections["boxes"][..., :2] / 2.0 + 0.25)
        classes = ops.cast(tiles[..., 1], "int32") * side + ops.cast(
            tiles[..., 0], "int32"
        )
        boxes = detections["boxes"] - 2.0 * ops.concatenate(
            [tiles, tiles], axis=-1
        )
        return {
            "boxes": ops.where(kept[..., None], boxes, -1.0),
            "classes": ops.where(kept, classes, -1),
            "confidence": detections["confidence"],
            "num_detections": detections["num_detections"],
        }

    def _per_class_nms_applies(self, num_classes):
        # TensorFlow's per-class NMS kernel is many times faster on CPU than
        # the class-agnostic one over tiles (a 1,000-region, 20-class image:
        # about 4 against 11-20 ms; 100 regions: 0.3 against 9 ms), and the
        # same detections. It takes every class of every region, so it is
        # used only where the best-classes cut keeps them all anyway.
        return (
            keras.backend.backend() == "tensorflow"
            and isinstance(num_classes, int)
            and self._classes_per_region(num_classes) >= num_classes
        )

    def _per_class_nms(self, boxes, scores, valid, finite_scores):
        import tensorflow as tf

        keep = ops.logical_and(valid[..., None], finite_scores)
        confidence = ops.where(
            keep, ops.sigmoid(ops.where(keep, scores, 0.0)), 0.0
        )
        boxes = ops.where(valid[..., None], ops.clip(boxes, 0.0, 1.0), 0.0)
        found = tf.image.combined_non_max_suppression(
            boxes[:, :, None, :],
            confidence,
            max_output_size_per_class=self.max_detections,
            max_total_size=self.max_detections,
            iou_threshold=self.iou_threshold,
            # Candidates at or below it are dropped, as in keras-cv's NMS.
            score_threshold=self.confidence_threshold,
            pad_per_class=False,
            clip_boxes=False,
        )
        count = found.valid_detections
        kept = ops.arange(self.max_detections)[None, :] < count[:, None]
        return {
            "boxes": ops.where(kept[..., None], found.nmsed_boxes, -1.0),
            "classes": ops.where(
                kept, ops.cast(found.nmsed_classes, "int32"), -1
            ),
            "confidence": ops.where(kept, found.nmsed_scores, -1.0),
            "num_detections": count,
        }

    def _classes_per_region(self, num_classes):
        limit = self.max_classes_per_region or self.max_detections
        if isinstance(num_classes, int):
            return min(limit, num_classes)
        return limit

    @staticmethod
    def _grid_side(num_classes):
        if isinstance(num_classes, int):
            return max(1, math.ceil(math.sqrt(num_classes)))
        return ops.cast(
            ops.ceil(ops.sqrt(ops.cast(num_classes, "float32"))), "int32"
        )

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
                "max_classes_per_region": self.max_classes_per_region,
            }
        )
        return config
