import keras
from keras import ops

from keras_objectness import _checks
from keras_objectness.layers.region_crops import crop_and_resize


@keras.saving.register_keras_serializable(package="keras_objectness")
class RegionPooling(keras.layers.Layer):
    """RoIAlign-style pooling of regions on a feature map.

    Each region (relative yxyx on the feature map) is divided into
    `pool_size` x `pool_size` bins; every bin is the average of
    `sampling_ratio` x `sampling_ratio` bilinear samples spread evenly
    inside it (no quantisation of the region or the bins). Samples outside
    the map read zeros, like the region crops of the per-crop path. The
    sampling is the package's `crop_and_resize` at
    `pool_size * sampling_ratio` points per side followed by a block
    average, so a region `[0, 0, 1, 1]` with `sampling_ratio=1` and
    `pool_size` equal to the map's side gives the map back. Backend-neutral
    (`keras.ops`).

    This is the step of Fast R-CNN and SPP-net that lets the convolutional
    trunk run once per image: the dense layers then see, for every
    proposal, a fixed-size map pooled from the shared features.

    Args:
        pool_size: int. Side of the pooled maps (the spatial size the
            following dense layers expect).
        sampling_ratio: int. Bilinear samples per bin and side, averaged.
            Defaults to `2`.
        **kwargs: standard `keras.layers.Layer` arguments.

    Call arguments:
        features: `(batch, height, width, channels)` float feature map.
        regions: `(batch, num_regions, 4)` relative yxyx boxes on the map.

    Returns:
        `(batch, num_regions, pool_size, pool_size, channels)` in the
        layer's compute dtype (float32 by default).

    Example:

    ```python
    import numpy as np
    from keras_objectness.layers import RegionPooling

    features = np.random.rand(2, 15, 15, 64).astype("float32")
    regions = np.array([[[0.1, 0.1, 0.5, 0.6]] * 3] * 2, "float32")
    pooled = RegionPooling(3)(features, regions)  # (2, 3, 3, 3, 64)
    ```

    References:
        - [He et al., 2017. Mask R-CNN](https://arxiv.org/abs/1703.06870)
          (RoIAlign).
        - [Girshick, 2015. Fast R-CNN](https://arxiv.org/abs/1504.08083).
    """

    def __init__(self, pool_size, sampling_ratio=2, **kwargs):
        super().__init__(**kwargs)
        _checks.check_positive_int("pool_size", pool_size)
        _checks.check_positive_int("sampling_ratio", sampling_ratio)
        self.pool_size = pool_size
        self.sampling_ratio = sampling_ratio
        self.built = True

    def call(self, features, regions):
        self._check_shapes(features.shape, regions.shape)
        size = self.pool_size * self.sampling_ratio
        samples = crop_and_resize(features, regions, size)
        if self.sampling_ratio > 1:
            # The block average as a pooling over all regions folded into
            # the batch: 12x faster on TensorFlow than a mean over two
            # axes of a 7-D view, with the same values.
            shape = ops.shape(samples)
            n = self.sampling_ratio
            folded = ops.reshape(samples, (-1, size, size, shape[-1]))
            pooled = ops.average_pool(folded, n, n, padding="valid")
            samples = ops.reshape(
                pooled,
                (
                    shape[0],
                    shape[1],
                    self.pool_size,
                    self.pool_size,
                    shape[-1],
                ),
            )
        return ops.cast(samples, self.compute_dtype)

    def compute_output_shape(self, features_shape, regions_shape):
        return (
            features_shape[0],
            regions_shape[1],
            self.pool_size,
            self.pool_size,
            features_shape[-1],
        )

    def compute_output_spec(self, features, regions):
        self._check_shapes(features.shape, regions.shape)
        return keras.KerasTensor(
            self.compute_output_shape(features.shape, regions.shape),
            dtype=self.compute_dtype,
        )

    def _check_shapes(self, features_shape, regions_shape):
        _checks.check_rank(
            "features",
            features_shape,
            (4,),
            "`(batch, height, width, channels)`",
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
            "features",
            features_shape,
            "regions",
            regions_shape,
            [(0, 0)],
            "the batch size",
        )

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "pool_size": self.pool_size,
                "sampling_ratio": self.sampling_ratio,
            }
        )
        return config
