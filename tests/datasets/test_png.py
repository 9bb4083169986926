import numpy as np
import pytest
import tensorflow as tf

from keras_objectness.datasets.silhouette_scenes import png
from keras_objectness.datasets.silhouette_scenes import splits


def _tf_png(image):
    return tf.io.encode_png(image).numpy()


@pytest.mark.parametrize("image_size", [32, 64])
def test_scenes_encode_like_tensorflow(image_size):
    # 64 px images are small enough for libpng to shrink the zlib window;
    # 32 px ones shrink it further.
    generator = splits.SceneGenerator(image_size=image_size, seed=3)
    for split in splits.SPLIT_NAMES:
        for index in range(3):
            image = generator.example(split, index)["image"]
            assert png.encode_png(image) == _tf_png(image)


def test_odd_images_encode_like_tensorflow():
    rng = np.random.default_rng(0)
    images = [
        rng.integers(0, 256, (37, 53, 3), dtype=np.uint8),  # no filter wins
        rng.integers(0, 256, (130, 140, 3), dtype=np.uint8),  # many IDATs
        np.zeros((5, 7, 3), np.uint8),  # ties everywhere: first filter
        np.full((2, 2, 3), 255, np.uint8),
        np.tile(np.arange(256, dtype=np.uint8), (9, 1))[..., None].repeat(
            3, axis=-1
        ),  # smooth ramps favour sub/average/Paeth
    ]
    for image in images:
        assert png.encode_png(image) == _tf_png(image)
    stream = png.compress_rows(png.filter_rows(images[1]))
    assert png.assemble_png(stream, (130, 1 + 3 * 140)).count(b"IDAT") > 1


@pytest.mark.parametrize(
    "shape",
    # Filtered sizes around libpng's window thresholds: 14 and 110 bytes
    # (256-byte header), 16,031 and 16,422 bytes (either side of 16 KiB).
    [(2, 2), (5, 7), (41, 130), (42, 130), (3, 85)],
)
def test_window_sizes_encode_like_tensorflow(shape):
    rng = np.random.default_rng(sum(shape))
    image = rng.integers(0, 40, shape + (3,), dtype=np.uint8)
    assert png.encode_png(image) == _tf_png(image)


def test_filter_rows_layout():
    image = np.arange(4 * 5 * 3, dtype=np.uint8).reshape(4, 5, 3)
    rows = png.filter_rows(image)
    assert rows.shape == (4, 1 + 15) and rows.dtype == np.uint8
    assert set(rows[:, 0].tolist()) <= {0, 1, 2, 3, 4}
    # Row 0 of a ramp: "sub" leaves the constant step 3 after the first
    # pixel, cheaper than the raw bytes.
    assert rows[0, 0] == 1
    np.testing.assert_array_equal(rows[0, 4:], 3)


@pytest.mark.parametrize(
    "image",
    [
        np.zeros((8, 8, 3), np.float32),
        np.zeros((8, 8), np.uint8),
        np.zeros((8, 8, 4), np.uint8),
        np.zeros((1, 8, 3), np.uint8),
    ],
)
def test_bad_image(image):
    with pytest.raises(ValueError, match="`image` must be a uint8 array"):
        png.encode_png(image)
