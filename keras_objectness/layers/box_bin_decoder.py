import keras
from keras import ops

from keras_objectness import _checks
from keras_objectness import box_space as box_space_lib
from keras_objectness import box_utils
from keras_objectness.layers import nms


@keras.saving.register_keras_serializable(package="keras_objectness")
class BoxBinDecoder(keras.layers.Layer):
    """Decodes box-bin probabilities into class-generic detections.

    Takes the `max_candidates` most probable bins, turns them into boxes
    (clipped to the image) and keeps at most `max_detections` of them by
    non-max suppression, using keras-cv's `NonMaxSuppression` layer. A bin's
    confidence is its probability.

    Eager calls raise a `ValueError` for NaN or infinite inputs; inside
    graphs (`predict`, `tf.data`) non-finite probabilities count as zero, so
    those bins are never detected.

    Args:
        box_space: `keras_objectness.BoxSpace` (or its config).
        max_detections: int. Detections kept per image. Defaults to `10`.
        iou_threshold: float in `(0, 1]`. Boxes overlapping a kept box by
            more than this are suppressed. Defaults to `0.5`.
        confidence_threshold: float in `[0, 1)`. Bins at or below this
            probability are dropped. Defaults to `0.0`.
        max_candidates: int. Most probable bins passed to NMS. Defaults to
            `500` (or the number of bins if smaller).
        from_logits: bool. Whether inputs are logits rather than
            probabilities. Defaults to `False`.
        bounding_box_format: optional str. Format of the returned boxes.
            Defaults to `None`: the box space's format.
        image_shape: optional `(height, width)` for absolute formats.
            Defaults to `None`: the box space's.
        **kwargs: standard `keras.layers.Layer` arguments.

    Call arguments:
        inputs: float tensor `(batch, box_space.num_bins)`.

    Returns:
        dict in keras-cv's dense form: `"boxes"` `(batch, max_detections, 4)`,
        `"confidence"` `(batch, max_detections)`, both padded with `-1`, and
        `"num_detections"` `(batch,)`.

    Example:

    ```python
    space = keras_objectness.BoxSpace(grid_shape=(8, 8))
    decoder = keras_objectness.layers.BoxBinDecoder(space, max_detections=5)
    detections = decoder(probabilities)  # from a BoxBinSoftmax head
    ```
    """

    def __init__(
        self,
        box_space,
        max_detections=10,
        iou_threshold=0.5,
        confidence_threshold=0.0,
        max_candidates=500,
        from_logits=False,
        bounding_box_format=None,
        image_shape=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.box_space = box_space_lib.get(box_space)
        nms.check_nms_arguments(
            max_detections, iou_threshold, confidence_threshold
        )
        _checks.check_positive_int("max_candidates", max_candidates)
        self.max_detections = max_detections
        self.iou_threshold = float(iou_threshold)
        self.confidence_threshold = float(confidence_threshold)
        self.max_candidates = max_candidates
        self.from_logits = bool(from_logits)
        self.bounding_box_format = bounding_box_format
        self.image_shape = image_shape
        self._format, self._image_shape = self.box_space._resolve_format(
            bounding_box_format, image_shape
        )
        self._nms = nms.non_max_suppression(
            max_detections, iou_threshold, confidence_threshold
        )
        self.built = True

    def _check_shape(self, shape):
        num_bins = self.box_space.num_bins
        if len(shape) != 2 or shape[-1] != num_bins:
            raise ValueError(
                "`inputs` must hold one value per box bin, shape "
                f"`(batch, {num_bins})` (batched). "
                f"Received: inputs.shape={tuple(shape)}"
            )

    def call(self, inputs):
        self._check_shape(inputs.shape)
        box_utils.check_finite(inputs, "inputs")
        probabilities = ops.cast(inputs, "float32")
        if self.from_logits:
            probabilities = ops.softmax(probabilities, axis=-1)
        probabilities = ops.where(
            ops.isfinite(probabilities), probabilities, 0.0
        )
        candidates = min(self.max_candidates, self.box_space.num_bins)
        scores, bins = ops.top_k(probabilities, k=candidates)
        boxes = self.box_space.decode(bins, "rel_yxyx", clip=True)
        detections = self._nms(boxes, scores[..., None])
        valid = ops.greater_equal(detections["classes"], 0)
        boxes = box_utils.from_rel_yxyx(
            detections["boxes"], self._format, self._image_shape
        )
        boxes = ops.where(valid[..., None], boxes, -1.0)
        return {
            "boxes": boxes,
            "confidence": detections["confidence"],
            "num_detections": detections["num_detections"],
        }

    def compute_output_spec(self, inputs):
        self._check_shape(inputs.shape)
        batch = inputs.shape[0]
        return {
            "boxes": keras.KerasTensor(
                (batch, self.max_detections, 4), dtype="float32"
            ),
            "confidence": keras.KerasTensor(
                (batch, self.max_detections), dtype="float32"
            ),
            "num_detections": keras.KerasTensor((batch,), dtype="int32"),
        }

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "box_space": keras.saving.serialize_keras_object(
                    self.box_space
                ),
                "max_detections": self.max_detections,
                "iou_threshold": self.iou_threshold,
                "confidence_threshold": self.confidence_threshold,
                "max_candidates": self.max_candidates,
                "from_logits": self.from_logits,
                "bounding_box_format": self.bounding_box_format,
                "image_shape": self.image_shape,
            }
        )
        return config
