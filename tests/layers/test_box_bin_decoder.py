import keras
import numpy as np
import pytest

from keras_objectness import BoxSpace
from keras_objectness.layers import BoxBinDecoder
from keras_objectness.layers import GaussianBoxTargets
from tests.test_case import TestCase

SPACE = BoxSpace(
    grid_shape=(8, 8), scales=(0.2, 0.4, 0.8), aspect_ratios=(0.5, 1.0, 2.0)
)


def _bin(y, x, scale, aspect):
    return int(np.ravel_multi_index((y, x, scale, aspect), SPACE.bins_shape))


class TestBoxBinDecoder(TestCase):
    def test_recovers_the_boxes_of_two_objects(self):
        bins = [_bin(1, 1, 0, 1), _bin(6, 5, 1, 2)]
        boxes = keras.ops.convert_to_numpy(SPACE.decode(np.array(bins)))
        targets = GaussianBoxTargets(SPACE)(boxes[None])
        detections = BoxBinDecoder(SPACE, max_detections=2)(targets)
        found = keras.ops.convert_to_numpy(detections["boxes"])[0]
        # Highest-confidence first; order among two equal peaks is free.
        found = found[np.lexsort(found.T[::-1])]
        expected = np.clip(boxes[np.lexsort(boxes.T[::-1])], 0, 1)
        np.testing.assert_allclose(found, expected, atol=1e-6)
        assert int(detections["num_detections"][0]) == 2

    def test_suppresses_overlapping_neighbours(self):
        probabilities = np.zeros((1, SPACE.num_bins), "float32")
        probabilities[0, _bin(4, 4, 2, 1)] = 0.5
        probabilities[0, _bin(4, 5, 2, 1)] = 0.3  # IoU about 0.8 with it
        probabilities[0, _bin(0, 7, 0, 1)] = 0.2  # far away
        detections = BoxBinDecoder(SPACE, max_detections=5)(probabilities)
        confidence = keras.ops.convert_to_numpy(detections["confidence"])[0]
        np.testing.assert_allclose(confidence, [0.5, 0.2, -1, -1, -1])
        boxes = keras.ops.convert_to_numpy(detections["boxes"])[0]
        assert np.all(boxes[2:] == -1)
        kept = BoxBinDecoder(SPACE, max_detections=5, iou_threshold=0.95)(
            probabilities
        )
        assert int(kept["num_detections"][0]) == 3

    def test_output_format_and_padding(self):
        probabilities = np.zeros((2, SPACE.num_bins), "float32")
        probabilities[0, _bin(2, 3, 1, 1)] = 1.0
        decoder = BoxBinDecoder(
            SPACE,
            max_detections=3,
            bounding_box_format="xyxy",
            image_shape=(50, 100),
        )
        detections = decoder(probabilities)
        boxes = keras.ops.convert_to_numpy(detections["boxes"])
        rel = keras.ops.convert_to_numpy(
            SPACE.decode(np.array(_bin(2, 3, 1, 1)))
        )
        np.testing.assert_allclose(
            boxes[0, 0], rel[[1, 0, 3, 2]] * [100, 50, 100, 50], atol=1e-4
        )
        assert np.all(boxes[1] == -1)
        np.testing.assert_array_equal(detections["num_detections"], [1, 0])

    def test_from_logits(self):
        logits = np.random.default_rng(0).normal(size=(2, SPACE.num_bins))
        logits = logits.astype("float32")
        a = BoxBinDecoder(SPACE, from_logits=True)(logits)
        b = BoxBinDecoder(SPACE)(keras.ops.softmax(logits))
        self.assertAllClose(a["boxes"], b["boxes"])
        self.assertAllClose(a["confidence"], b["confidence"])

    def test_serialization(self):
        probabilities = keras.ops.convert_to_numpy(
            keras.ops.softmax(
                np.random.default_rng(1).normal(size=(2, SPACE.num_bins))
            )
        ).astype("float32")
        layer = BoxBinDecoder(
            SPACE,
            max_detections=4,
            iou_threshold=0.4,
            confidence_threshold=0.001,
            max_candidates=50,
            from_logits=False,
            bounding_box_format="rel_xyxy",
        )
        self.run_serialization_test(layer, [probabilities])

    @pytest.mark.parametrize(
        "kwargs, argument",
        [
            ({"max_detections": 0}, "max_detections"),
            ({"max_candidates": 2.5}, "max_candidates"),
            ({"iou_threshold": 0.0}, "iou_threshold"),
            ({"iou_threshold": 1.5}, "iou_threshold"),
            ({"confidence_threshold": 1.0}, "confidence_threshold"),
            ({"bounding_box_format": "ltrb"}, "bounding_box_format"),
            ({"bounding_box_format": "xywh"}, "image_shape"),
        ],
    )
    def test_bad_arguments(self, kwargs, argument):
        with pytest.raises(ValueError, match=f"`{argument}`"):
            BoxBinDecoder(SPACE, **kwargs)

    def test_wrong_number_of_bins(self):
        with pytest.raises(ValueError, match="one value per box bin"):
            BoxBinDecoder(SPACE)(np.zeros((1, 10), "float32"))
