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

    def _detections(self, layer, boxes, scores):
        detections = layer(boxes, scores)
        return {
            key: keras.ops.convert_to_numpy(value)
            for key, value in detections.items()
        }

    def test_default_top_classes_equal_every_class(self):
        # At the default (max_detections classes per region) the result is
        # that of NMS over every class, though most candidates are left out.
        rng = np.random.default_rng(1)
        corners = rng.uniform(0.0, 0.6, size=(2, 30, 2))
        sizes = rng.uniform(0.1, 0.4, size=(2, 30, 2))
        boxes = np.concatenate([corners, corners + sizes], -1)
        scores = rng.normal(size=(2, 30, 40)).astype("float32")
        top = self._detections(
            RegionDetections(max_detections=6, iou_threshold=0.5),
            boxes.astype("float32"),
            scores,
        )
        every = self._detections(
            RegionDetections(
                max_detections=6, iou_threshold=0.5, max_classes_per_region=40
            ),
            boxes.astype("float32"),
            scores,
        )
        for key in every:
            np.testing.assert_allclose(top[key], every[key], atol=1e-6)
        assert top["num_detections"].tolist() == [6, 6]

    def test_only_top_classes_of_a_region_are_candidates(self):
        boxes = np.array([[A, FAR]], "float32")
        probabilities = np.array([[[0.6, 0.9, 0.7], [0.2, 0.1, 0.3]]])
        detections = self._detections(
            RegionDetections(max_detections=10, max_classes_per_region=1),
            boxes,
            _logit(probabilities).astype("float32"),
        )
        assert detections["num_detections"].tolist() == [2]
        assert detections["classes"][0, :2].tolist() == [1, 2]
        np.testing.assert_allclose(
            detections["confidence"][0, :2], [0.9, 0.3], atol=1e-6
        )

    def test_large_vocabulary_keeps_exact_classes_and_boxes(self):
        # 100,000 classes: classes and small boxes come back exactly (the
        # old one-row class moves of 2 * class lost 0.016 of the image).
        num_classes = 100_000
        boxes = np.array([[A, [0.3, 0.7, 0.3004, 0.7004], FAR]], "float32")
        scores = np.full((1, 3, num_classes), -10.0, "float32")
        winners = [99_999, 31_622, 7]
        for region, class_id in enumerate(winners):
            scores[0, region, class_id] = 5.0
        detections = self._detections(
            RegionDetections(max_detections=3, confidence_threshold=0.5),
            boxes,
            scores,
        )
        assert detections["num_detections"].tolist() == [3]
        assert sorted(detections["classes"][0].tolist()) == sorted(winners)
        order = np.argsort(detections["classes"][0])
        expected = boxes[0][np.argsort(winners)]
        np.testing.assert_allclose(
            detections["boxes"][0][order], expected, atol=1e-4
        )

    @pytest.mark.skipif(
        keras.backend.backend() != "tensorflow",
        reason="the per-class kernel is TensorFlow's",
    )
    def test_tensorflow_per_class_kernel_equals_the_tiled_nms(
        self, monkeypatch
    ):
        import tensorflow as tf

        rng = np.random.default_rng(7)
        corners = rng.uniform(0.0, 0.6, (3, 300, 2))
        boxes = np.concatenate(
            [corners, corners + rng.uniform(0.05, 0.4, (3, 300, 2))], -1
        ).astype("float32")
        boxes[:, -20:] = -1.0  # padding regions
        scores = rng.normal(size=(3, 300, 7)).astype("float32")
        scores[1, 5, 2] = np.nan  # confidence 0 in a graph: never kept

        def detect(per_class, **kwargs):
            layer = RegionDetections(max_detections=40, **kwargs)
            if not per_class:
                monkeypatch.setattr(
                    layer, "_per_class_nms_applies", lambda num_classes: False
                )
            found = tf.function(layer)(boxes, scores)
            return {k: keras.ops.convert_to_numpy(v) for k, v in found.items()}

        for kwargs in ({}, {"confidence_threshold": 0.8, "iou_threshold": 0.5}):
            fast, tiled = detect(True, **kwargs), detect(False, **kwargs)
            np.testing.assert_array_equal(
                fast["num_detections"], tiled["num_detections"]
            )
            for image, count in enumerate(fast["num_detections"]):
                rows = [
                    {
                        (int(c), round(float(p), 5), _key(b))
                        for b, c, p in zip(
                            found["boxes"][image][:count],
                            found["classes"][image][:count],
                            found["confidence"][image][:count],
                        )
                    }
                    for found in (fast, tiled)
                ]
                assert rows[0] == rows[1]
                assert (fast["classes"][image][count:] == -1).all()
                assert (fast["confidence"][image][count:] == -1).all()
            assert (np.diff(fast["confidence"], axis=1)[:, :10] <= 0).all()
        assert detect(True)["num_detections"].max() == 40

    def test_serialization(self):
        boxes = np.array([[A, FAR, PAD]] * 2, "float32")
        scores = np.random.default_rng(0).normal(size=(2, 3, 4))
        self.run_serialization_test(
            RegionDetections(
                max_detections=5,
                iou_threshold=0.4,
                confidence_threshold=0.1,
                max_classes_per_region=2,
            ),
            [boxes, scores.astype("float32")],
        )

    @pytest.mark.parametrize(
        "kwargs, argument",
        [
            ({"max_detections": 0}, "max_detections"),
            ({"iou_threshold": 0.0}, "iou_threshold"),
            ({"confidence_threshold": 1.0}, "confidence_threshold"),
            ({"max_classes_per_region": 0}, "max_classes_per_region"),
            ({"max_classes_per_region": 2.5}, "max_classes_per_region"),
        ],
    )
    def test_bad_arguments(self, kwargs, argument):
        with pytest.raises(ValueError, match=f"`{argument}`"):
            RegionDetections(**kwargs)
