import keras
import numpy as np
import pytest

from keras_objectness.layers import RegionDetections
from tests.test_case import TestCase

A = [0.1, 0.1, 0.5, 0.5]
A_SHIFTED = [0.12, 0.12, 0.52, 0.52]  # IoU with A about 0.82
FAR = [0.6, 0.6, 0.9, 0.9]
PAD = [-1.0, -1.0, -1.0, -1.0]


def _key(box):
    return tuple(round(float(v), 2) for v in box)


def _logit(p):
    return np.log(p / (1 - p))


class TestRegionDetections(TestCase):
    def test_nms_is_per_class(self):
        boxes = np.array([[A, A_SHIFTED, FAR, PAD]], "float32")
        probabilities = np.array(
            [[[0.9, 0.2], [0.7, 0.8], [0.3, 0.1], [0.99, 0.99]]]
        )
        detections = RegionDetections(max_detections=10, iou_threshold=0.5)(
            boxes, _logit(probabilities).astype("float32")
        )
        count = int(detections["num_detections"][0])
        found = {
            (_key(b), int(c), round(float(p), 3))
            for b, c, p in zip(
                keras.ops.convert_to_numpy(detections["boxes"])[0][:count],
                keras.ops.convert_to_numpy(detections["classes"])[0][:count],
                keras.ops.convert_to_numpy(detections["confidence"])[0][:count],
            )
        }
        expected = {
            (_key(A), 0, 0.9),
            (_key(A_SHIFTED), 1, 0.8),
            (_key(FAR), 0, 0.3),
            (_key(FAR), 1, 0.1),
        }
        # Class 0 suppresses A_SHIFTED, class 1 suppresses A; the padding
        # row is never detected despite its scores.
        assert found == expected
        classes = keras.ops.convert_to_numpy(detections["classes"])[0]
        assert np.all(classes[count:] == -1)

    def test_serialization(self):
        boxes = np.array([[A, FAR, PAD]] * 2, "float32")
        scores = np.random.default_rng(0).normal(size=(2, 3, 4))
        self.run_serialization_test(
            RegionDetections(
                max_detections=5, iou_threshold=0.4, confidence_threshold=0.1
            ),
            [boxes, scores.astype("float32")],
        )

    @pytest.mark.parametrize(
        "kwargs, argument",
        [
            ({"max_detections": 0}, "max_detections"),
            ({"iou_threshold": 0.0}, "iou_threshold"),
            ({"confidence_threshold": 1.0}, "confidence_threshold"),
        ],
    )
    def test_bad_arguments(self, kwargs, argument):
        with pytest.raises(ValueError, match=f"`{argument}`"):
            RegionDetections(**kwargs)
