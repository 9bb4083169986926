import keras

from keras_objectness import _checks
from keras_objectness import box_utils
from keras_objectness._ops import ops


def crop_and_resize(images, regions, crop_size):
    """Bilinear crops of relative yxyx regions, written with `keras.ops`.

    A crop is two small matrix products: `rows @ image @ columns^T`, where
    `rows` holds, for each output row, the bilinear (triangle) weights of
    the image rows at the sampled position. Output pixel centres are spread
    evenly inside the region (a region `[0, 1]` reproduces a plain resize),
    and samples outside the image read zeros.

    Args:
        images: `(batch, height, width, channels)` float tensor.
        regions: `(batch, num_regions, 4)` relative yxyx float tensor.
        crop_size: int. Side of the square crops.

    Returns:
        float32 `(batch, num_regions, crop_size, crop_size, channels)`.
    """
    images = ops.cast(images, "float32")
    regions = ops.cast(regions, "float32")
    height, width = ops.shape(images)[1], ops.shape(images)[2]
    y0, x0, y1, x1 = ops.unstack(regions, num=4, axis=-1)
    rows = _interpolation_weights(y0, y1, height, crop_size)
    columns = _interpolation_weights(x0, x1, width, crop_size)
    # (b, r, s, h) x (b, h, w, c) -> (b, r, s, w, c) -> (b, r, s, t, c)
    partial = ops.einsum("brsh,bhwc->brswc", rows, images)
    return ops.einsum("brswc,brtw->brstc", partial, columns)


def _interpolation_weights(start, end, size, crop_size):
    """`(batch, regions, crop_size, size)` bilinear weights along one axis."""
    steps = (ops.arange(crop_size, dtype="float32") + 0.5) / crop_size
    # Sample positions in pixel-index units (pixel i is centred at i).
    size_float = ops.cast(size, "float32")
    positions = (
        start[..., None] * size_float
        + steps * (end - start)[..., None] * size_float
        - 0.5
    )
    pixels = ops.cast(ops.arange(size), "float32")
    return ops.relu(1.0 - ops.abs(positions[..., None] - pixels))


@keras.saving.register_keras_serializable(package="keras_objectness")
class RegionCrops(keras.layers.Layer):
    """Crops image regions with context and resizes them to one size.

    The R-CNN step that turns proposals into classifier inputs: each region
    grows by `context_padding` of its height and width on every side, is
    cut out bilinearly (zeros outside the image) and resized to
    `crop_size` x `crop_size`. Backend-neutral (`keras.ops`); the
    `tf.data` region pipeline uses the same function.

    Bad regions follow the package's box rule: eager calls raise a
    `ValueError` for a NaN or infinite coordinate or an inverted region
    (max < min) and for NaN or infinite image values; inside graphs such
    regions give all-zero crops, like padding rows of `-1` (which cut
    outside the image), and NaN image values pass through to the crops
    that read them. Regions partly or wholly outside the image read zeros
    there.

    Args:
        crop_size: int. Side of the square crops.
        context_padding: float >= 0. Context added on each side, as a
            fraction of the region's size. Defaults to `0.1`.
        **kwargs: standard `keras.layers.Layer` arguments.

    Call arguments:
        images: `(batch, height, width, channels)` images, any real dtype.
        regions: `(batch, num_regions, 4)` relative yxyx boxes.

    Returns:
        float32 `(batch, num_regions, crop_size, crop_size, channels)`,
        in the value range of the images.

    Example:

    ```python
    crops = RegionCrops(32)(images, proposals["boxes"])
    ```
    """

    def __init__(self, crop_size, context_padding=0.1, **kwargs):
        super().__init__(**kwargs)
        check_crop_arguments(crop_size, context_padding)
        self.crop_size = crop_size
        self.context_padding = float(context_padding)
        self.built = True

    def call(self, images, regions):
        self._check_shapes(images.shape, regions.shape)
        regions = ops.cast(regions, "float32")
        finite = ops.all(ops.isfinite(regions), axis=-1)
        ordered = ops.logical_and(
            regions[..., 2] >= regions[..., 0],
            regions[..., 3] >= regions[..., 1],
        )
        valid = ops.logical_and(finite, ordered)
        if box_utils.is_eager(regions):
            box_utils.check_finite(images, "images")
            bad = ops.convert_to_numpy(ops.logical_not(valid))
            if bad.any():
                row = ops.convert_to_numpy(regions)[bad][0]
                raise ValueError(
                    "`regions` must be finite relative yxyx boxes with "
                    f"max >= min. Received: a region {row.tolist()}"
                )
        regions = ops.where(valid[..., None], regions, -1.0)
        return crop_and_resize(
            images, pad_regions(regions, self.context_padding), self.crop_size
        )

    def compute_output_shape(self, images_shape, regions_shape):
        return (
            images_shape[0],
            regions_shape[1],
            self.crop_size,
            self.crop_size,
            images_shape[-1],
        )

    def _check_shapes(self, images_shape, regions_shape):
        _checks.check_rank(
            "images", images_shape, (4,), "`(batch, height, width, channels)`"
        )
        _checks.check_rank(
            "regions", regions_shape, (3,), "`(batch, num_regions, 4)`"
        )
        if regions_shape[-1] != 4:
            raise ValueError(
                "`regions` must have shape `(batch, num_regions, 4)` "
                f"(relative yxyx). Received: regions.shape={regions_shape}"
            )
        _checks.check_same_sizes(
            "images",
            images_shape,
            "regions",
            regions_shape,
            [(0, 0)],
            "the batch size",
        )

    def compute_output_spec(self, images, regions):
        self._check_shapes(images.shape, regions.shape)
        return keras.KerasTensor(
            self.compute_output_shape(images.shape, regions.shape),
            dtype="float32",
        )

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "crop_size": self.crop_size,
                "context_padding": self.context_padding,
            }
        )
        return config


def pad_regions(regions, context_padding):
    """Grows relative yxyx regions by `context_padding` on every side."""
    height = regions[..., 2] - regions[..., 0]
    width = regions[..., 3] - regions[..., 1]
    pad = ops.stack([-height, -width, height, width], axis=-1)
    return regions + pad * context_padding


def check_crop_arguments(crop_size, context_padding):
    _checks.check_positive_int("crop_size", crop_size)
    if (
        not isinstance(context_padding, (int, float))
        or isinstance(context_padding, bool)
        or context_padding < 0
    ):
        raise ValueError(
            "`context_padding` must be a number >= 0. "
            f"Received: context_padding={context_padding!r}"
        )
