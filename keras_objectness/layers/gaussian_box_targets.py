import math

import keras

from keras_objectness import _checks
from keras_objectness import _ops
from keras_objectness import box_space as box_space_lib
from keras_objectness import box_utils
from keras_objectness._ops import ops

# Narrower Gaussians are one-hot in float32 anyway; much narrower ones
# overflow `(distance / sigma) ** 2` and give NaN targets.
MIN_SIGMA = 1e-3


@keras.saving.register_keras_serializable(package="keras_objectness")
class GaussianBoxTargets(keras.layers.Layer):
    """Soft targets over a `BoxSpace` from padded ground-truth boxes.

    Each valid box contributes a Gaussian in continuous bin coordinates
    (centred on the box itself, not on its nearest bin), normalised to unit
    mass over the bins; the image's target is the mean over its boxes, so it
    sums to one. Train against it with
    `keras.losses.CategoricalCrossentropy`, which accepts soft targets.

    Padding follows keras-cv's dense convention: a row whose class is `-1`
    (or, without `classes`, whose four coordinates are `-1`) is ignored.
    Bad boxes follow the package rule (`keras_objectness.box_utils`): eager
    calls raise a `ValueError` for NaN, inverted or outside boxes; inside
    graphs such as `tf.data` maps boxes are clipped to the image and NaN,
    inverted or empty boxes are dropped. A box with zero area (max == min)
    is dropped in eager calls too, like padding. `classes` must have the
    shape of `boxes` without its last axis (no broadcasting).

    An image without any valid box gets an all-zero target. Its
    cross-entropy is exactly zero, so such images carry no weight in
    training without further work; `ops.sum(targets, -1) > 0` tells them
    apart.

    The computation runs in float32 whatever the dtype policy, and the
    output is float32.

    Args:
        box_space: `keras_objectness.BoxSpace` (or its config). The space
            whose bins the targets cover.
        center_sigma: float >= 0.001. Standard deviation along y and x, in
            bins (narrower Gaussians are one-hot already and overflow
            float32). Defaults to `0.5`.
        scale_sigma: float >= 0.001. Standard deviation along the scale
            axis, in bins. Defaults to `0.5`.
        aspect_ratio_sigma: float >= 0.001. Standard deviation along the
            aspect-ratio axis, in bins. Defaults to `0.5`.
        bounding_box_format: optional str. Format of the input boxes.
            Defaults to `None`: the box space's format.
        image_shape: optional `(height, width)` for absolute formats.
            Defaults to `None`: the box space's.
        **kwargs: standard `keras.layers.Layer` arguments.

    Call arguments:
        boxes: float tensor `(batch, max_boxes, 4)`, or `(max_boxes, 4)` for
            one image (e.g. in a `tf.data` map before batching).
        classes: optional int tensor `(batch, max_boxes)`; `-1` marks
            padding.

    Returns:
        float32 tensor `(batch, box_space.num_bins)` (or `(num_bins,)`).

    Example:

    ```python
    space = keras_objectness.BoxSpace(grid_shape=(8, 8))
    targets = keras_objectness.layers.GaussianBoxTargets(space)
    y = targets([[[0.1, 0.2, 0.5, 0.6], [-1, -1, -1, -1]]], [[3, -1]])
    # y.shape == (1, space.num_bins); ops.sum(y) == 1
    ```
    """

    def __init__(
        self,
        box_space,
        center_sigma=0.5,
        scale_sigma=0.5,
        aspect_ratio_sigma=0.5,
        bounding_box_format=None,
        image_shape=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.box_space = box_space_lib.get(box_space)
        for name, value in (
            ("center_sigma", center_sigma),
            ("scale_sigma", scale_sigma),
            ("aspect_ratio_sigma", aspect_ratio_sigma),
        ):
            if not _is_positive_number(value) or value < MIN_SIGMA:
                raise ValueError(
                    f"`{name}` must be a number >= {MIN_SIGMA} (a width in "
                    f"bins). Received: {name}={value!r}"
                )
        self.center_sigma = float(center_sigma)
        self.scale_sigma = float(scale_sigma)
        self.aspect_ratio_sigma = float(aspect_ratio_sigma)
        self.bounding_box_format = bounding_box_format
        self.image_shape = image_shape
        self._format, self._image_shape = self.box_space._resolve_format(
            bounding_box_format, image_shape
        )
        self.built = True

    def __call__(self, *args, **kwargs):
        # Inside tf.data under another backend, Keras' layer machinery
        # cannot take TensorFlow tensors: compute directly (same values).
        if _ops.use_tensorflow_ops():
            return self.compute_targets(*args, **kwargs)
        return super().__call__(*args, **kwargs)

    def call(self, boxes, classes=None):
        return self.compute_targets(boxes, classes)

    def compute_targets(self, boxes, classes=None):
        """The layer's computation without Keras' layer machinery.

        Gives what calling the layer gives. It also runs inside `tf.data`
        maps under every Keras backend (the pipelines use it there), where
        calling the layer itself fails outside the TensorFlow backend.

        Args:
            boxes: `(batch, max_boxes, 4)` or `(max_boxes, 4)` boxes.
            classes: optional int classes of the same leading shape.

        Returns:
            float32 targets `(batch, num_bins)` or `(num_bins,)`.
        """
        if classes is not None:
            classes = ops.convert_to_tensor(classes)
        self._check_shapes(ops.shape(boxes), classes)
        boxes, valid = box_utils.prepare_boxes(
            boxes, classes, self._format, self._image_shape, name="boxes"
        )
        unbatched = len(ops.shape(boxes)) == 2
        if unbatched:
            boxes, valid = boxes[None], valid[None]
        coordinates = self.box_space.continuous_coordinates(boxes)
        sigmas = (
            self.center_sigma,
            self.center_sigma,
            self.scale_sigma,
            self.aspect_ratio_sigma,
        )
        # The 4-D Gaussian is separable: per box, a softmax along each axis
        # gives the unit-mass Gaussian as an outer product. The softmax keeps
        # boxes far outside the space finite instead of underflowing to 0/0.
        factors = []
        for axis, (centers, sigma) in enumerate(
            zip(self.box_space.bin_centers(), sigmas)
        ):
            distance = (centers - coordinates[..., axis : axis + 1]) / sigma
            factors.append(ops.softmax(-0.5 * ops.square(distance), axis=-1))
        weights = ops.cast(valid, "float32")
        count = ops.sum(weights, axis=-1, keepdims=True)
        weights = weights / ops.maximum(count, 1.0)
        targets = ops.einsum("bm,bmy,bmx,bms,bma->byxsa", weights, *factors)
        targets = ops.reshape(targets, (-1, self.box_space.num_bins))
        return targets[0] if unbatched else targets

    def compute_output_shape(self, boxes_shape, classes_shape=None):
        return (*boxes_shape[:-2], self.box_space.num_bins)

    def _check_shapes(self, boxes_shape, classes):
        _checks.check_rank(
            "boxes",
            boxes_shape,
            (2, 3),
            "`(batch, max_boxes, 4)` or `(max_boxes, 4)`",
        )
        if classes is None:
            return
        classes_shape = tuple(classes.shape)
        if len(classes_shape) != len(boxes_shape) - 1:
            raise ValueError(
                "`classes` must have the shape of `boxes` without its last "
                f"axis. Received: boxes.shape={tuple(boxes_shape)}, "
                f"classes.shape={classes_shape}"
            )
        _checks.check_same_sizes(
            "boxes",
            tuple(boxes_shape),
            "classes",
            classes_shape,
            [(i, i) for i in range(len(classes_shape))],
            "the batch size and the number of boxes (no broadcasting)",
        )

    def compute_output_spec(self, boxes, classes=None):
        self._check_shapes(tuple(boxes.shape), classes)
        shape = self.compute_output_shape(boxes.shape)
        return keras.KerasTensor(shape, dtype="float32")

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "box_space": keras.saving.serialize_keras_object(
                    self.box_space
                ),
                "center_sigma": self.center_sigma,
                "scale_sigma": self.scale_sigma,
                "aspect_ratio_sigma": self.aspect_ratio_sigma,
                "bounding_box_format": self.bounding_box_format,
                "image_shape": self.image_shape,
            }
        )
        return config


def _is_positive_number(value):
    return (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value > 0
    )
