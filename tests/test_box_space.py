import keras
import numpy as np
import pytest
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from keras_objectness import BoxSpace
from keras_objectness import _checks
from keras_objectness import box_utils
from keras_objectness.box_space import _iou_yxyx

SPACES = {
    "default": BoxSpace(),
    "coarse": BoxSpace(
        grid_shape=(8, 8), scales=(0.3, 0.42, 0.6), aspect_ratios=(0.6, 1, 1.6)
    ),
    "uneven": BoxSpace(
        grid_shape=(5, 11), scales=(0.2, 0.3, 0.7), aspect_ratios=(0.5, 3.0)
    ),
    "single": BoxSpace(grid_shape=(4, 4), scales=(0.5,), aspect_ratios=(1,)),
}
REPORTS = {
    name: space.quantization_report(2000) for name, space in SPACES.items()
}


def in_range_boxes(space):
    """Boxes whose centre, scale and aspect ratio lie in the space's range."""
    unit = st.floats(0.0, 1.0)
    return st.lists(
        st.tuples(unit, unit, unit, unit), min_size=1, max_size=32
    ).map(lambda rows: _boxes(space, np.asarray(rows)))


def _boxes(space, u):
    log_scale = np.log(space.scales[0]) + u[:, 2] * np.log(
        space.scales[-1] / space.scales[0]
    )
    log_aspect = np.log(space.aspect_ratios[0]) + u[:, 3] * np.log(
        space.aspect_ratios[-1] / space.aspect_ratios[0]
    )
    scale, aspect = np.exp(log_scale), np.exp(log_aspect)
    half_h, half_w = scale / np.sqrt(aspect) / 2, scale * np.sqrt(aspect) / 2
    return np.stack(
        [
            u[:, 0] - half_h,
            u[:, 1] - half_w,
            u[:, 0] + half_h,
            u[:, 1] + half_w,
        ],
        axis=-1,
    )


class TestQuantization:
    @pytest.mark.parametrize("name", sorted(SPACES))
    @settings(max_examples=60, deadline=None)
    @given(data=st.data())
    def test_nearest_bin_iou_at_least_reported_worst_case(self, name, data):
        space = SPACES[name]
        boxes = data.draw(in_range_boxes(space))
        _, bins = space.encode(boxes.astype("float32"))
        decoded = keras.ops.convert_to_numpy(space.decode(bins))
        iou = _iou_yxyx(boxes, decoded)
        # float32 encoding of the box vs float64 IoU: allow round-off only.
        assert iou.min() >= REPORTS[name]["worst_case_iou"] - 1e-5

    @pytest.mark.parametrize("name", sorted(SPACES))
    def test_worst_case_is_tight_against_sampling(self, name):
        space, report = SPACES[name], REPORTS[name]
        boxes = space.sample_boxes(np.random.default_rng(3), 100_000)
        _, bins = space.encode(boxes)
        iou = _iou_yxyx(boxes, keras.ops.convert_to_numpy(space.decode(bins)))
        assert report["worst_case_iou"] <= iou.min() + 1e-5
        # A bound far below anything reachable would be useless.
        assert iou.min() - report["worst_case_iou"] < 0.05
        assert 0 < report["worst_case_iou"] < report["mean_iou"] <= 1

    def test_finer_space_has_better_worst_case(self):
        coarse = BoxSpace(grid_shape=(8, 8)).quantization_report(100)
        fine = BoxSpace(grid_shape=(32, 32)).quantization_report(100)
        assert fine["worst_case_iou"] > coarse["worst_case_iou"]


class TestEncodeDecode:
    @pytest.mark.parametrize("name", sorted(SPACES))
    def test_every_bin_box_encodes_to_itself(self, name):
        space = SPACES[name]
        bins = np.arange(space.num_bins, dtype="int32")
        boxes = space.decode(bins)
        coordinates, nearest = space.encode(boxes)
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(nearest), bins)
        coordinates = keras.ops.convert_to_numpy(coordinates)
        np.testing.assert_allclose(
            coordinates, np.round(coordinates), atol=1e-4
        )

    def test_bin_order_is_y_x_scale_aspect(self):
        space = SPACES["uneven"]
        grid_y, grid_x, num_scales, num_aspects = space.bins_shape
        index = np.ravel_multi_index((2, 7, 1, 0), space.bins_shape)
        box = keras.ops.convert_to_numpy(space.decode(np.int32(index)))
        assert np.isclose((box[0] + box[2]) / 2, 2.5 / grid_y)
        assert np.isclose((box[1] + box[3]) / 2, 7.5 / grid_x)
        height, width = box[2] - box[0], box[3] - box[1]
        assert np.isclose(np.sqrt(height * width), space.scales[1])
        assert np.isclose(width / height, space.aspect_ratios[0])

    def test_continuous_coordinates_between_bins(self):
        space = BoxSpace(
            grid_shape=(4, 4), scales=(0.2, 0.4), aspect_ratios=(1,)
        )
        # Centre halfway between x bins 1 and 2, scale at the log midpoint.
        scale = np.sqrt(0.2 * 0.4)
        box = np.array(
            [
                [
                    0.5 - scale / 2,
                    0.5 - scale / 2,
                    0.5 + scale / 2,
                    0.5 + scale / 2,
                ]
            ],
            "float32",
        )
        coordinates, _ = space.encode(box)
        np.testing.assert_allclose(
            keras.ops.convert_to_numpy(coordinates)[0],
            [1.5, 1.5, 0.5, 0.0],
            atol=1e-5,
        )

    def test_batched_shapes(self):
        space = SPACES["coarse"]
        boxes = np.tile(np.array([0.1, 0.1, 0.5, 0.6], "float32"), (2, 3, 1))
        coordinates, bins = space.encode(boxes)
        assert tuple(coordinates.shape) == (2, 3, 4)
        assert tuple(bins.shape) == (2, 3)
        assert tuple(space.decode(bins).shape) == (2, 3, 4)

    @pytest.mark.parametrize(
        "bounding_box_format", _checks.BOUNDING_BOX_FORMATS
    )
    def test_every_keras_format_gives_the_same_bins(self, bounding_box_format):
        space = SPACES["default"]
        image_shape = (60, 80)
        rel = space.sample_boxes(np.random.default_rng(0), 50)
        converted = box_utils.from_rel_yxyx(
            rel, bounding_box_format, image_shape
        )
        _, expected = space.encode(rel)
        _, bins = space.encode(
            converted, bounding_box_format, image_shape=image_shape
        )
        np.testing.assert_array_equal(
            keras.ops.convert_to_numpy(bins),
            keras.ops.convert_to_numpy(expected),
        )
        decoded = space.decode(bins, bounding_box_format, image_shape)
        back = box_utils.to_rel_yxyx(decoded, bounding_box_format, image_shape)
        np.testing.assert_allclose(
            keras.ops.convert_to_numpy(back),
            keras.ops.convert_to_numpy(space.decode(expected)),
            atol=1e-5,
        )

    def test_space_with_absolute_format(self):
        space = BoxSpace(bounding_box_format="xyxy", image_shape=(100, 200))
        _, bins = space.encode([[20.0, 10.0, 120.0, 60.0]])
        _, expected = SPACES["default"].encode([[0.1, 0.1, 0.6, 0.6]])
        assert int(bins[0]) == int(expected[0])

    def test_decode_clip(self):
        space = SPACES["default"]
        boxes = keras.ops.convert_to_numpy(
            space.decode(np.arange(space.num_bins), clip=True)
        )
        assert boxes.min() >= 0 and boxes.max() <= 1


class TestConfig:
    def test_round_trip(self):
        space = SPACES["uneven"]
        rebuilt = BoxSpace.from_config(space.get_config())
        assert rebuilt == space
        assert rebuilt.num_bins == space.num_bins == 5 * 11 * 3 * 2
        restored = keras.saving.deserialize_keras_object(
            keras.saving.serialize_keras_object(space)
        )
        assert restored == space

    def test_default_space_is_sensible(self):
        report = REPORTS["default"]
        assert report["fraction_iou_at_least_0.5"] > 0.95


class TestBadInput:
    @pytest.mark.parametrize(
        "kwargs, argument",
        [
            ({"grid_shape": (0, 8)}, "grid_shape"),
            ({"grid_shape": (8,)}, "grid_shape"),
            ({"grid_shape": (8.5, 8)}, "grid_shape"),
            ({"grid_shape": "8x8"}, "grid_shape"),
            ({"scales": (0.5, 0.2)}, "scales"),
            ({"scales": (-0.1, 0.2)}, "scales"),
            ({"scales": (0.5, 1.5)}, "scales"),
            ({"scales": ()}, "scales"),
            ({"aspect_ratios": (0.0, 1.0)}, "aspect_ratios"),
            ({"aspect_ratios": (1.0, 1.0)}, "aspect_ratios"),
            ({"aspect_ratios": (float("nan"),)}, "aspect_ratios"),
            ({"bounding_box_format": "cxcywh"}, "bounding_box_format"),
            ({"bounding_box_format": "xyxy"}, "image_shape"),
            (
                {"bounding_box_format": "xyxy", "image_shape": (0, 10)},
                "image_shape",
            ),
        ],
    )
    def test_constructor_arguments(self, kwargs, argument):
        with pytest.raises(ValueError, match=f"`{argument}`"):
            BoxSpace(**kwargs)

    def test_boxes_of_wrong_shape(self):
        with pytest.raises(ValueError, match="`boxes` must have shape"):
            SPACES["default"].encode(np.zeros((3, 5), "float32"))

    def test_decode_rejects_floats_and_out_of_range(self):
        space = SPACES["coarse"]
        with pytest.raises(TypeError, match="`bin_indices`"):
            space.decode(np.array([1.0]))
        with pytest.raises(ValueError, match="`bin_indices` must be in"):
            space.decode(np.array([space.num_bins]))
        with pytest.raises(ValueError, match="`bin_indices` must be in"):
            space.decode(np.array([-1]))

    def test_unknown_format_in_call(self):
        with pytest.raises(ValueError, match="`bounding_box_format`"):
            SPACES["default"].encode([[0, 0, 1, 1]], "ltrb")


class TestFromBoxes:
    def _boxes(self, seed=0, count=400):
        """Tall pedestrians (aspect 0.25-0.45) and wide cars (1.5-3)."""
        rng = np.random.default_rng(seed)
        aspect = np.concatenate(
            [
                rng.uniform(0.25, 0.45, count // 2),
                rng.uniform(1.5, 3.0, count // 2),
            ]
        )
        scale = rng.uniform(0.1, 0.4, count)
        height, width = scale / np.sqrt(aspect), scale * np.sqrt(aspect)
        cy = rng.uniform(height / 2, 1 - height / 2)
        cx = rng.uniform(width / 2, 1 - width / 2)
        return np.stack(
            [cy - height / 2, cx - width / 2, cy + height / 2, cx + width / 2],
            axis=-1,
        )

    def test_fitted_space_reaches_the_data(self):
        boxes = self._boxes()
        fitted = BoxSpace.from_boxes(
            boxes, grid_shape=(16, 16), num_scales=5, num_aspect_ratios=5
        )
        assert len(fitted.scales) == 5 and len(fitted.aspect_ratios) == 5
        assert fitted.aspect_ratios[0] < 0.5 < 1.5 < fitted.aspect_ratios[-1]
        assert 0.1 < fitted.scales[0] < fitted.scales[-1] < 0.4
        default = BoxSpace(grid_shape=(16, 16)).coverage_report(boxes)
        report = fitted.coverage_report(boxes)
        assert report["num_boxes"] == len(boxes)
        assert report["fraction_in_range"] > default["fraction_in_range"]
        assert report["mean_nearest_iou"] > default["mean_nearest_iou"]
        assert (
            report["fraction_iou_at_least_0.7"]
            > default["fraction_iou_at_least_0.7"]
        )
        assert report["mean_best_iou"] >= report["mean_nearest_iou"] - 1e-6
        assert 0.0 <= report["fraction_iou_at_least_0.7"] <= 1.0
        assert (
            report["fraction_iou_at_least_0.7"]
            <= report["fraction_iou_at_least_0.5"]
        )

    def test_padding_formats_and_identical_boxes(self):
        boxes = self._boxes(count=40)
        padded = np.concatenate([boxes, -np.ones((5, 4))])[None]
        fitted = BoxSpace.from_boxes(padded, num_scales=3, num_aspect_ratios=3)
        assert fitted == BoxSpace.from_boxes(
            boxes, num_scales=3, num_aspect_ratios=3
        )
        absolute = BoxSpace.from_boxes(
            boxes[:, [1, 0, 3, 2]] * [200, 100, 200, 100],
            bounding_box_format="xyxy",
            image_shape=(100, 200),
            num_scales=3,
            num_aspect_ratios=3,
        )
        np.testing.assert_allclose(absolute.scales, fitted.scales, rtol=1e-4)
        assert absolute.bounding_box_format == "xyxy"
        # One box repeated: values spread 1% apart, scales at most 1.
        whole = BoxSpace.from_boxes(
            [[0.0, 0.0, 1.0, 1.0]] * 10, num_scales=3, num_aspect_ratios=2
        )
        assert whole.scales[-1] == 1.0
        np.testing.assert_allclose(
            np.diff(np.log(whole.scales)), np.log(1.01), rtol=1e-3
        )
        assert whole.aspect_ratios[1] > whole.aspect_ratios[0]

    @pytest.mark.parametrize(
        "kwargs, message",
        [
            ({"num_scales": 0}, "`num_scales` must be a positive"),
            ({"num_aspect_ratios": 1.5}, "`num_aspect_ratios` must be"),
            ({"bounding_box_format": "xyxy"}, "`image_shape` is required"),
        ],
    )
    def test_bad_arguments(self, kwargs, message):
        with pytest.raises(ValueError, match=message):
            BoxSpace.from_boxes(self._boxes(count=10), **kwargs)

    def test_no_boxes_raise(self):
        with pytest.raises(ValueError, match="at least one box"):
            BoxSpace.from_boxes(-np.ones((3, 4)))
        with pytest.raises(ValueError, match="shape \\(..., 4\\)"):
            BoxSpace().coverage_report(np.zeros((3, 3)))
        with pytest.raises(ValueError, match="at least one box"):
            BoxSpace().coverage_report(np.zeros((3, 4)))
