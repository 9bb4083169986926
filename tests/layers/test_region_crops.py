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


def _reference_crops(images, regions, crop_size):
    """Triangle-weight bilinear samples, pixel by pixel in numpy."""
    batch, height, width, channels = images.shape
    out = np.zeros((batch, regions.shape[1], crop_size, crop_size, channels))
    steps = (np.arange(crop_size) + 0.5) / crop_size
    for b in range(batch):
        for r, (y0, x0, y1, x1) in enumerate(regions[b]):
            ys = y0 * height + steps * (y1 - y0) * height - 0.5
            xs = x0 * width + steps * (x1 - x0) * width - 0.5
            rows = np.maximum(1 - np.abs(ys[:, None] - np.arange(height)), 0)
            cols = np.maximum(1 - np.abs(xs[:, None] - np.arange(width)), 0)
            out[b, r] = np.einsum("sh,hwc,tw->stc", rows, images[b], cols)
    return out


@pytest.mark.parametrize("crop_size", [1, 6, 32])
def test_every_implementation_gives_the_same_samples(crop_size):
    import keras
    import tensorflow as tf

    from keras_objectness.layers.region_crops import crop_and_resize

    rng = np.random.default_rng(crop_size)
    images = rng.integers(0, 256, (2, 15, 11, 3)).astype("float32")
    # Regions partly outside the image, inside it, and padding rows of -1:
    # the fade to zero over the outer pixel must agree too.
    low = rng.random((2, 6, 2)) * 1.4 - 0.4
    regions = np.concatenate([low, low + rng.random((2, 6, 2)) * 0.8], -1)
    regions = regions.astype("float32")
    regions[0, 0] = -1.0
    reference = _reference_crops(images, regions, crop_size)
    results = {
        "eager": crop_and_resize(images, regions, crop_size),
        # The TensorFlow kernel on the TensorFlow backend and in tf.data.
        "tf.function": tf.function(crop_and_resize)(images, regions, crop_size),
        # XLA has no CropAndResize kernel: the matrix products run there.
        "xla": tf.function(crop_and_resize, jit_compile=True)(
            images, regions, crop_size
        ),
    }
    for name, crops in results.items():
        np.testing.assert_allclose(
            keras.ops.convert_to_numpy(crops),
            reference,
            atol=2e-3,
            rtol=1e-5,
            err_msg=name,
        )
