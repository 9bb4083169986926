import keras
import numpy as np
import pytest
import tensorflow as tf
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from keras_objectness import BoxSpace
from keras_objectness.layers import GaussianBoxTargets
from tests.test_case import TestCase

SPACE = BoxSpace(
    grid_shape=(8, 8), scales=(0.2, 0.4, 0.8), aspect_ratios=(0.5, 1.0, 2.0)
)


def padded_boxes(max_boxes=4, batch=3):
    """Batches of valid relative boxes with random class -1 padding."""
    # Corners on a 2**-20 grid: a side is 0 or a normal float. A subnormal
    # side would have area on one backend and none on another (XLA on the
    # CPU flushes subnormals to zero).
    corner = st.integers(0, 2**20).map(lambda step: step / 2**20)
    boxes = hnp.arrays("float32", (batch, max_boxes, 4), elements=corner).map(
        _order_corners
    )
    classes = hnp.arrays(
        "int32", (batch, max_boxes), elements=st.integers(-1, 5)
    )
    return st.tuples(boxes, classes)


def _order_corners(boxes):
    y = np.sort(boxes[..., 0::2], axis=-1)
    x = np.sort(boxes[..., 1::2], axis=-1)
    return np.stack([y[..., 0], x[..., 0], y[..., 1], x[..., 1]], axis=-1)


def _has_area(boxes):
    return (boxes[..., 2] > boxes[..., 0]) & (boxes[..., 3] > boxes[..., 1])


class TestGaussianBoxTargets(TestCase):
    @settings(max_examples=40, deadline=None)
    @given(data=padded_boxes())
    def test_targets_are_distributions(self, data):
        boxes, classes = data
        targets = keras.ops.convert_to_numpy(
            GaussianBoxTargets(SPACE)(boxes, classes)
        )
        assert targets.shape == (3, SPACE.num_bins)
        assert np.all(np.isfinite(targets)) and np.all(targets >= 0)
        has_box = np.any((classes >= 0) & _has_area(boxes), axis=-1)
        np.testing.assert_allclose(
            targets.sum(-1), has_box.astype(float), atol=1e-5
        )

    @pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
    def test_no_nan_under_mixed_precision(self, policy):
        rng = np.random.default_rng(0)
        boxes = _order_corners(rng.random((4, 6, 4)).astype("float32"))
        # Tiny and out-of-range boxes stress the normalisation.
        boxes[0, 0] = [0.5, 0.5, 0.5001, 0.5001]
        boxes[1, 0] = [0.0, 0.0, 1.0, 1.0]
        classes = rng.integers(-1, 3, (4, 6)).astype("int32")
        classes[:, 0] = 1
        previous = keras.config.dtype_policy()
        keras.config.set_dtype_policy(policy)
        try:
            layer = GaussianBoxTargets(SPACE)
            targets = keras.ops.convert_to_numpy(layer(boxes, classes))
        finally:
            keras.config.set_dtype_policy(previous)
        assert targets.dtype == np.float32
        assert np.all(np.isfinite(targets))
        np.testing.assert_allclose(targets.sum(-1), 1.0, atol=1e-5)

    def test_box_on_a_bin_peaks_at_that_bin(self):
        index = np.ravel_multi_index((3, 5, 1, 2), SPACE.bins_shape)
        box = keras.ops.convert_to_numpy(SPACE.decode(np.int32(index)))
        targets = keras.ops.convert_to_numpy(
            GaussianBoxTargets(SPACE)(box[None, None], np.array([[0]]))
        )
        assert targets[0].argmax() == index
        # Separable unit Gaussians: the peak is the product of 1-D peaks.
        assert targets[0, index] > 0.25

    def test_gaussian_centred_on_continuous_coordinates(self):
        # Centre exactly between x bins 3 and 4: their masses must match.
        height = 0.4 / np.sqrt(1.0)
        box = np.array(
            [
                [
                    [
                        0.5 - height / 2,
                        0.5 - height / 2,
                        0.5 + height / 2,
                        0.5 + height / 2,
                    ]
                ]
            ],
            "float32",
        )
        targets = keras.ops.convert_to_numpy(GaussianBoxTargets(SPACE)(box))
        grid = targets.reshape(SPACE.bins_shape)
        mass_x = grid.sum(axis=(0, 2, 3))
        assert np.isclose(mass_x[3], mass_x[4], rtol=1e-5)
        assert mass_x[3] > mass_x[2] > mass_x[1]

    def test_sigma_controls_spread(self):
        box = np.array([[[0.3, 0.3, 0.7, 0.7]]], "float32")
        narrow = GaussianBoxTargets(SPACE, center_sigma=0.3)(box)
        wide = GaussianBoxTargets(SPACE, center_sigma=2.0)(box)
        assert float(keras.ops.max(narrow)) > float(keras.ops.max(wide))

    def test_each_box_weighs_the_same(self):
        boxes = np.array(
            [[[0.05, 0.05, 0.25, 0.25], [0.5, 0.5, 0.9, 0.9]]], "float32"
        )
        both = keras.ops.convert_to_numpy(GaussianBoxTargets(SPACE)(boxes))
        first = keras.ops.convert_to_numpy(
            GaussianBoxTargets(SPACE)(boxes[:, :1])
        )
        second = keras.ops.convert_to_numpy(
            GaussianBoxTargets(SPACE)(boxes[:, 1:])
        )
        np.testing.assert_allclose(both, (first + second) / 2, atol=1e-7)

    def test_padding_without_classes_and_empty_image(self):
        boxes = np.full((2, 3, 4), -1.0, "float32")
        boxes[0, 1] = [0.1, 0.1, 0.4, 0.5]
        targets = keras.ops.convert_to_numpy(GaussianBoxTargets(SPACE)(boxes))
        np.testing.assert_allclose(targets.sum(-1), [1.0, 0.0], atol=1e-6)
        # Zero targets cost nothing: the empty image carries no weight.
        loss = keras.losses.CategoricalCrossentropy(reduction=None)(
            targets, np.full_like(targets, 1.0 / SPACE.num_bins)
        )
        assert float(loss[1]) == 0.0 and float(loss[0]) > 0

    def test_absolute_format_matches_relative(self):
        rel = np.array([[[0.1, 0.2, 0.5, 0.9]]], "float32")
        xyxy = np.array([[[40.0, 10.0, 180.0, 50.0]]], "float32")
        expected = GaussianBoxTargets(SPACE)(rel)
        actual = GaussianBoxTargets(
            SPACE, bounding_box_format="xyxy", image_shape=(100, 200)
        )(xyxy)
        self.assertAllClose(actual, expected, atol=1e-6)

    def test_unbatched_call_matches_batched(self):
        boxes = np.array([[0.1, 0.2, 0.5, 0.9], [-1, -1, -1, -1]], "float32")
        layer = GaussianBoxTargets(SPACE)
        self.assertAllClose(layer(boxes), layer(boxes[None])[0])

    def test_in_tf_data_graph_applies_clip_and_drop_rule(self):
        layer = GaussianBoxTargets(SPACE)
        good = [0.2, 0.2, 0.6, 0.5]
        boxes = np.array(
            [
                [good, [np.nan, 0.1, 0.3, 0.3], [0.6, 0.6, 0.2, 0.9]],
                [[-0.2, 0.3, 0.6, 1.4], [-1] * 4, [-1] * 4],
                [[1.2, 1.2, 1.5, 1.5], [-1] * 4, [-1] * 4],
            ],
            "float32",
        )
        dataset = tf.data.Dataset.from_tensor_slices(boxes).map(layer)
        targets = np.stack([t.numpy() for t in dataset])
        assert np.all(np.isfinite(targets))
        # NaN and inverted boxes are dropped: only the good box remains.
        self.assertAllClose(
            targets[0], layer(np.array([[good]], "float32"))[0], atol=1e-7
        )
        # A box partly outside is clipped to the image.
        self.assertAllClose(
            targets[1],
            layer(np.array([[[0.0, 0.3, 0.6, 1.0]]], "float32"))[0],
            atol=1e-7,
        )
        # A box entirely outside has no area after clipping: empty image.
        assert targets[2].sum() == 0.0

    def test_inside_a_model_and_serialization(self):
        boxes = np.array(
            [[[0.1, 0.2, 0.5, 0.9], [0.3, 0.3, 0.4, 0.4]]], "float32"
        )
        classes = np.array([[2, -1]], "int32")
        layer = GaussianBoxTargets(
            SPACE, center_sigma=0.8, scale_sigma=0.4, aspect_ratio_sigma=0.6
        )
        self.run_serialization_test(layer, [boxes, classes])

    @pytest.mark.parametrize(
        "boxes, message",
        [
            ([[[np.nan, 0.1, 0.3, 0.3]]], "NaN"),
            ([[[0.6, 0.1, 0.3, 0.3]]], "inverted"),
            ([[[0.1, 0.1, 0.3, 1.3]]], "outside the image"),
            ([[[-0.2, 0.1, 0.3, 0.3]]], "outside the image"),
            ([[[0.1, 0.1, 0.3]]], "must have shape"),
            (np.zeros((1, 1, 1, 4)), "must have shape"),
        ],
    )
    def test_bad_boxes_raise_in_eager_mode(self, boxes, message):
        with pytest.raises(ValueError, match=message):
            GaussianBoxTargets(SPACE)(np.asarray(boxes, "float32"))

    def test_padding_rows_are_not_validated(self):
        boxes = np.array([[[0.1, 0.1, 0.3, 0.3], [np.nan] * 4]], "float32")
        targets = GaussianBoxTargets(SPACE)(boxes, np.array([[0, -1]]))
        assert np.isclose(float(keras.ops.sum(targets)), 1.0, atol=1e-6)

    @pytest.mark.parametrize(
        "kwargs, argument",
        [
            ({"center_sigma": 0}, "center_sigma"),
            ({"scale_sigma": -1.0}, "scale_sigma"),
            ({"aspect_ratio_sigma": float("inf")}, "aspect_ratio_sigma"),
            ({"aspect_ratio_sigma": "wide"}, "aspect_ratio_sigma"),
            ({"bounding_box_format": "ltrb"}, "bounding_box_format"),
            ({"bounding_box_format": "xyxy"}, "image_shape"),
        ],
    )
    def test_bad_constructor_arguments(self, kwargs, argument):
        with pytest.raises(ValueError, match=f"`{argument}`"):
            GaussianBoxTargets(SPACE, **kwargs)

    def test_box_space_must_be_a_box_space(self):
        with pytest.raises(TypeError, match="`box_space`"):
            GaussianBoxTargets((8, 8))
