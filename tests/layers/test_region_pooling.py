import keras
import numpy as np
import pytest

from keras_objectness.layers import RegionPooling
from keras_objectness.layers.region_crops import crop_and_resize
from tests.test_case import TestCase

# Regions well inside a 12x16 map (no sample reads outside it).
_REGIONS = np.array(
    [[[0.1, 0.2, 0.6, 0.7], [0.3, 0.1, 0.9, 0.5], [0.2, 0.2, 0.4, 0.9]]] * 2,
    "float32",
)


def _linear_map(batch=2, height=12, width=16, channels=3):
    y, x = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
    scales = np.arange(1, channels + 1, dtype="float32")
    base = (2.0 * y + 0.5 * x)[..., None] * scales + 3.0
    return np.broadcast_to(base, (batch, height, width, channels)).astype(
        "float32"
    )


class TestRegionPooling(TestCase):
    def test_constant_map_gives_the_constant(self):
        features = np.full((2, 12, 16, 4), 2.5, "float32")
        pooled = RegionPooling(3, sampling_ratio=2)(features, _REGIONS)
        assert tuple(pooled.shape) == (2, 3, 3, 3, 4)
        self.assertAllClose(pooled, np.full((2, 3, 3, 3, 4), 2.5), atol=1e-5)

    @pytest.mark.parametrize("sampling_ratio", [1, 2, 3])
    def test_linear_map_equals_crop_and_resize(self, sampling_ratio):
        # On a linear map, bilinear sampling is exact and the average of a
        # bin's samples is its centre value: crop_and_resize at pool_size.
        features = _linear_map()
        pooled = RegionPooling(4, sampling_ratio)(features, _REGIONS)
        expected = crop_and_resize(features, _REGIONS, 4)
        self.assertAllClose(pooled, expected, atol=1e-4, rtol=1e-5)

    def test_bins_average_their_samples(self):
        rng = np.random.default_rng(0)
        features = rng.random((1, 10, 10, 2)).astype("float32")
        regions = _REGIONS[:1]
        pooled = np.asarray(RegionPooling(2, 3)(features, regions))
        fine = np.asarray(crop_and_resize(features, regions, 6))
        expected = fine.reshape(1, 3, 2, 3, 2, 3, 2).mean(axis=(3, 5))
        np.testing.assert_allclose(pooled, expected, atol=1e-6)
        # Not a plain resize: a non-linear map tells them apart.
        assert not np.allclose(pooled, crop_and_resize(features, regions, 2))

    def test_whole_map_at_its_size_is_the_map(self):
        features = np.random.default_rng(1).random((1, 5, 5, 3))
        regions = np.array([[[0.0, 0.0, 1.0, 1.0]]], "float32")
        pooled = RegionPooling(5, sampling_ratio=1)(
            features.astype("float32"), regions
        )
        self.assertAllClose(pooled[:, 0], features, atol=1e-5)

    def test_symbolic_shape(self):
        features = keras.Input((7, 9, 8))
        regions = keras.Input((20, 4))
        pooled = RegionPooling(3)(features, regions)
        assert tuple(pooled.shape) == (None, 20, 3, 3, 8)

    def test_serialization(self):
        features = np.random.default_rng(2).random((2, 12, 16, 3))
        self.run_serialization_test(
            RegionPooling(3, sampling_ratio=2),
            [features.astype("float32"), _REGIONS],
            atol=1e-5,
        )

    @pytest.mark.parametrize(
        "kwargs, argument",
        [
            ({"pool_size": 0}, "pool_size"),
            ({"pool_size": 2.0}, "pool_size"),
            ({"pool_size": 2, "sampling_ratio": 0}, "sampling_ratio"),
            ({"pool_size": 2, "sampling_ratio": True}, "sampling_ratio"),
        ],
    )
    def test_bad_arguments(self, kwargs, argument):
        with pytest.raises(ValueError, match=f"`{argument}`"):
            RegionPooling(**kwargs)

    @pytest.mark.parametrize(
        "features_shape, regions_shape, argument",
        [
            ((2, 12, 16), (2, 3, 4), "features"),
            ((2, 12, 16, 3), (2, 4), "regions"),
            ((2, 12, 16, 3), (2, 3, 3), "regions"),
            ((2, 12, 16, 3), (3, 3, 4), "features"),
        ],
    )
    def test_bad_inputs(self, features_shape, regions_shape, argument):
        with pytest.raises(ValueError, match=f"`{argument}`"):
            RegionPooling(2)(
                np.zeros(features_shape, "float32"),
                np.zeros(regions_shape, "float32"),
            )
