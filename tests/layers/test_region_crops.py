import numpy as np
import pytest

from keras_objectness.layers import RegionCrops
from tests.test_case import TestCase


class TestRegionCrops(TestCase):
    def test_aligned_region_equals_slicing(self):
        rng = np.random.default_rng(0)
        images = rng.integers(0, 256, (2, 16, 24, 3)).astype("float32")
        # Rows 4..12 and columns 6..14: an 8x8 block of pixels. A crop of 8
        # samples exactly their centres.
        regions = np.array(
            [[[4 / 16, 6 / 24, 12 / 16, 14 / 24]]] * 2, "float32"
        )
        crops = np.asarray(RegionCrops(8, context_padding=0.0)(images, regions))
        assert crops.shape == (2, 1, 8, 8, 3)
        np.testing.assert_allclose(
            crops[:, 0], images[:, 4:12, 6:14], atol=1e-3
        )

    def test_whole_image_is_a_resize_and_context_reads_zeros(self):
        images = np.ones((1, 10, 10, 1), "float32")
        crops = np.asarray(
            RegionCrops(10, context_padding=0.5)(
                images, np.array([[[0.0, 0.0, 1.0, 1.0]]], "float32")
            )
        )[0, 0, :, :, 0]
        # The padded region is twice the image: the outer quarter is zeros.
        assert np.all(crops[:2] == 0) and np.all(crops[:, -2:] == 0)
        np.testing.assert_allclose(crops[3:7, 3:7], 1.0)

    def test_serialization(self):
        images = np.random.default_rng(1).random((2, 12, 12, 3))
        regions = np.array(
            [[[0.1, 0.2, 0.6, 0.9], [0.0, 0.0, 1.0, 1.0]]] * 2, "float32"
        )
        self.run_serialization_test(
            RegionCrops(5, context_padding=0.2),
            [images.astype("float32"), regions],
        )

    @pytest.mark.parametrize(
        "kwargs, argument",
        [
            ({"crop_size": 0}, "crop_size"),
            ({"crop_size": 4.0}, "crop_size"),
            ({"crop_size": 4, "context_padding": -0.1}, "context_padding"),
        ],
    )
    def test_bad_arguments(self, kwargs, argument):
        with pytest.raises(ValueError, match=f"`{argument}`"):
            RegionCrops(**kwargs)
