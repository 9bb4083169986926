import keras

from keras_objectness import _checks
from keras_objectness import box_utils
from keras_objectness._ops import in_tf_graph
from keras_objectness._ops import ops
from keras_objectness._ops import use_tensorflow_ops


def crop_and_resize(images, regions, crop_size):
    """Bilinear crops of relative yxyx regions.

    Output pixel centres are spread evenly inside the region (a region
    `[0, 1]` reproduces a plain resize), and samples outside the image read
    zeros, fading linearly over the outer pixel as bilinear weights do.

    Two implementations give these values. In `keras.ops` (every backend,
    XLA included), a crop is two matrix products, `rows @ image @
    columns^T`, where `rows` holds for each output row the bilinear
    (triangle) weights of the image rows at the sampled position; both are
    batched over all regions at once. Where TensorFlow runs the ops outside
    XLA (the TensorFlow backend, `tf.data` under any backend),
    `tf.image.crop_and_resize` computes the same samples on a one-pixel
    zero border (its corner convention, boxes converted), about 8x faster
    than the products at RoI-pooling sizes: it reads 4 pixels per sample
    where the products read whole rows. XLA has no kernel for it.

    Args:
        images: `(batch, height, width, channels)` float tensor.
        regions: `(batch, num_regions, 4)` relative yxyx float tensor.
        crop_size: int. Side of the square crops.

    Returns:
        float32 `(batch, num_regions, crop_size, crop_size, channels)`.
    """
    images = ops.cast(images, "float32")
    regions = ops.cast(regions, "float32")
    if _tensorflow_kernel_available():
        return _tensorflow_crop_and_resize(images, regions, crop_size)
    batch, height, width, channels = ops.shape(images)
    num_regions = ops.shape(regions)[1]
    y0, x0, y1, x1 = ops.unstack(regions, num=4, axis=-1)
    rows = _interpolation_weights(y0, y1, height, crop_size)
    columns = _interpolation_weights(x0, x1, width, crop_size)
    # (b, r*s, h) @ (b, h, w*c): every region's sampled rows at once.
    partial = ops.matmul(
        ops.reshape(rows, (batch, num_regions * crop_size, height)),
        ops.reshape(images, (batch, height, width * channels)),
    )
    # -> (b*r, w, s*c), so that one more product samples the columns.
    partial = ops.reshape(
        partial, (batch * num_regions, crop_size, width, channels)
    )
    partial = ops.reshape(
        ops.transpose(partial, (0, 2, 1, 3)),
        (batch * num_regions, width, crop_size * channels),
    )
    crops = ops.matmul(
        ops.reshape(columns, (batch * num_regions, crop_size, width)),
        partial,
    )  # (b*r, t, s*c)
    crops = ops.reshape(
        crops, (batch, num_regions, crop_size, crop_size, channels)
    )
    return ops.transpose(crops, (0, 1, 3, 2, 4))


def _tensorflow_kernel_available():
    """True where `ops` are TensorFlow ops that XLA does not compile."""
    if not (keras.backend.backend() == "tensorflow" or use_tensorflow_ops()):
        return False
    if not in_tf_graph():
        return True
    try:
        from tensorflow.python.framework import ops as tf_framework_ops
        from tensorflow.python.ops import control_flow_util
    except ImportError:  # pragma: no cover - private path moved
        return False
    graph = tf_framework_ops.get_default_graph()
    return not control_flow_util.GraphOrParentsInXlaContext(graph)


def _tensorflow_crop_and_resize(images, regions, crop_size):
    import tensorflow as tf

    shape = tf.shape(images)
    height = tf.cast(shape[1], tf.float32)
    width = tf.cast(shape[2], tf.float32)
    # One zero pixel around the image: samples between the border pixel
    # and the outside then fade to zero as the bilinear weights do.
    bordered = tf.pad(images, [[0, 0], [1, 1], [1, 1], [0, 0]])
    y0, x0, y1, x1 = tf.unstack(regions, num=4, axis=-1)

    def corners(start, end, size):
        # Pixel index (plus the border) of the first and last samples, as
        # fractions of the bordered image's last index, `size + 1`.
        extent = (end - start) * size
        first = start * size + 0.5 * extent / crop_size - 0.5 + 1.0
        last = first + (crop_size - 1) * extent / crop_size
        return first / (size + 1.0), last / (size + 1.0)

    top, bottom = corners(y0, y1, height)
    left, right = corners(x0, x1, width)
    boxes = tf.reshape(tf.stack([top, left, bottom, right], axis=-1), (-1, 4))
    num_regions = tf.shape(regions)[1]
    box_indices = tf.repeat(tf.range(shape[0]), num_regions)
    crops = tf.image.crop_and_resize(
        bordered,
        boxes,
        box_indices,
        (crop_size, crop_size),
        extrapolation_value=0.0,
    )
    return tf.reshape(
        crops,
        tf.concat(
            [[shape[0], num_regions, crop_size, crop_size], shape[3:]], 0
        ),
    )


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
