import collections

import numpy as np
import pytest
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from keras_objectness.evaluation import DetectionEvaluator
from tests.evaluation.batching import pad_detections
from tests.evaluation.batching import pad_ground_truth

A = [0.0, 0.0, 0.3, 0.3]
B = [0.5, 0.5, 0.9, 0.9]
C = [0.0, 0.6, 0.3, 0.9]
NOWHERE = [0.6, 0.0, 0.9, 0.2]  # overlaps none of A, B, C

Split = collections.namedtuple(
    "Split", ["num_classes", "detection_classes", "heldout_classes"]
)


def _evaluate(ground_truth, detections, **kwargs):
    evaluator = DetectionEvaluator(**kwargs)
    evaluator.update_state(
        pad_ground_truth(ground_truth),
        pad_detections(
            detections, with_classes=kwargs.get("num_classes") is not None
        ),
    )
    return evaluator.result()


@pytest.mark.parametrize("method", ["voc", "coco"])
def test_perfect_detections_give_ap_one(method):
    ground_truth = [([A, B], [0, 1]), ([C], [2])]
    detections = [([B, A], [1, 0], [0.8, 0.9]), ([C], [2], [0.7])]
    result = _evaluate(ground_truth, detections, num_classes=3, method=method)
    np.testing.assert_array_equal(result["average_precision"], [1, 1, 1])
    assert result["mean_average_precision"] == 1.0
    np.testing.assert_array_equal(result["num_ground_truth"], [1, 1, 1])
    np.testing.assert_array_equal(result["num_detections"], [1, 1, 1])
    assert result["num_images"] == 2
    assert "mean_average_precision_trained" not in result


def test_one_duplicate_gives_known_precision():
    # Class 0 has two objects; detections: TP on A, duplicate on A, TP on B.
    ground_truth = [([A, B], [0, 0])]
    detections = [([A, A, B], [0, 0, 0], [0.9, 0.8, 0.7])]
    result = _evaluate(ground_truth, detections, num_classes=1)
    np.testing.assert_allclose(result["precision"][0], [1.0, 0.5, 2 / 3])
    np.testing.assert_allclose(result["recall"][0], [0.5, 0.5, 1.0])
    np.testing.assert_allclose(
        result["average_precision"][0], 0.5 * 1 + 0.5 * 2 / 3
    )


def test_classes_without_ground_truth_are_left_out_of_the_mean():
    # Class 1: objects, no detection -> AP 0 (counts). Class 2: a detection
    # but no object -> no AP (NaN, left out). Class 3: nothing -> NaN.
    ground_truth = [([A, B], [0, 1])]
    detections = [([A, C], [0, 2], [0.9, 0.8])]
    result = _evaluate(ground_truth, detections, num_classes=4)
    ap = result["average_precision"]
    assert ap[0] == 1.0 and ap[1] == 0.0
    assert np.isnan(ap[2]) and np.isnan(ap[3])
    assert result["mean_average_precision"] == 0.5
    assert result["precision"][2].shape == (0,)
    np.testing.assert_array_equal(result["num_detections"], [1, 0, 1, 0])


@pytest.mark.parametrize(
    "split",
    [(0, 2), Split(4, (0, 2), (1, 3))],
    ids=["tuple", "split_object"],
)
def test_trained_and_heldout_means(split):
    ground_truth = [([A, B, C], [0, 1, 2]), ([A, B], [3, 1])]
    # Class 0: AP 1. Class 1: found in image 0 only (AP 0.5). Class 2:
    # found (AP 1). Class 3: FP ranked above the TP (AP 0.5).
    detections = [
        ([A, B, C, NOWHERE], [0, 1, 2, 3], [0.9, 0.8, 0.85, 0.95]),
        ([A], [3], [0.5]),
    ]
    result = _evaluate(
        ground_truth, detections, num_classes=4, detection_classes=split
    )
    np.testing.assert_allclose(result["average_precision"], [1, 0.5, 1, 0.5])
    np.testing.assert_allclose(result["mean_average_precision"], 0.75)
    np.testing.assert_allclose(result["mean_average_precision_trained"], 1.0)
    np.testing.assert_allclose(result["mean_average_precision_heldout"], 0.5)


def test_the_package_class_split_is_accepted():
    class_split = pytest.importorskip("keras_objectness.class_split")
    split = class_split.ClassSplit(4, detection_classes=(2, 0))
    evaluator = DetectionEvaluator(detection_classes=split)
    assert evaluator.num_classes == 4
    assert evaluator.detection_classes == (0, 2)
    assert evaluator.heldout_classes == (1, 3)


def test_class_generic_evaluation():
    ground_truth = [([A, B], [0, 1]), ([C], [2])]
    # Image 0: TP, FP. Image 1: TP. Padding rows are all -1.
    detections = [([A, NOWHERE], None, [0.9, 0.8]), ([C], None, [0.7])]
    result = _evaluate(ground_truth, detections)
    np.testing.assert_allclose(result["precision"], [1.0, 0.5, 2 / 3])
    np.testing.assert_allclose(result["recall"], [1 / 3, 1 / 3, 2 / 3])
    np.testing.assert_allclose(result["average_precision"], 1 / 3 + 2 / 9)
    assert result["auc"] == result["average_precision"]
    assert result["num_ground_truth"] == 3
    assert result["num_detections"] == 3


def test_class_generic_uses_num_detections_and_ignores_classes():
    y_true = pad_ground_truth([([A, B], [0, 1])])
    y_pred = pad_detections([([A, B, C], [5, 6, 7], [0.9, 0.8, 0.7])])
    y_pred["num_detections"] = np.array([2])
    evaluator = DetectionEvaluator()
    evaluator.update_state(y_true, y_pred)
    result = evaluator.result()
    assert result["num_detections"] == 2
    assert result["average_precision"] == 1.0


@pytest.mark.parametrize(
    "rule, expected_ap, expected_counts",
    [
        # Detection on the class-1 object is not counted at all.
        ("ignore", 1.0, (2, 2, 2)),
        # Class-1 box dropped: that detection is a FP ranked first; the
        # envelope then reads 2/3 at both recall steps.
        ("background", 2 / 3, (2, 3, 2)),
        # Only image 1 (all of class 0) is evaluated.
        ("skip_image", 1.0, (1, 1, 1)),
    ],
)
def test_generic_evaluation_on_chosen_classes(
    rule, expected_ap, expected_counts
):
    ground_truth = [([A, B], [0, 1]), ([C], [0]), (np.zeros((0, 4)), [])]
    detections = [
        ([B, A], None, [0.95, 0.9]),
        ([C], None, [0.7]),
        ([NOWHERE], None, [0.1]),
    ]
    result = _evaluate(
        ground_truth,
        detections,
        ground_truth_classes=(0,),
        other_ground_truth=rule,
    )
    # The third image, with no object, adds a low FP unless skipped.
    num_ground_truth, num_detections, num_images = expected_counts
    if rule != "skip_image":
        num_detections += 1
        num_images += 1
    np.testing.assert_allclose(result["average_precision"], expected_ap)
    assert result["num_ground_truth"] == num_ground_truth
    assert result["num_detections"] == num_detections
    assert result["num_images"] == num_images


def test_batches_accumulate_and_reset():
    ground_truth = [([A, B], [0, 1]), ([C], [1]), ([B], [0])]
    detections = [
        ([A, C], [0, 1], [0.9, 0.4]),
        ([C, NOWHERE], [1, 0], [0.6, 0.7]),
        ([B], [1], [0.3]),
    ]
    whole = _evaluate(ground_truth, detections, num_classes=2)
    evaluator = DetectionEvaluator(num_classes=2)
    for i in range(3):
        evaluator.update_state(
            pad_ground_truth(ground_truth[i : i + 1], num_boxes=3),
            pad_detections(detections[i : i + 1], max_detections=4),
        )
    parts = evaluator.result()
    np.testing.assert_array_equal(
        parts["average_precision"], whole["average_precision"]
    )
    for key in ("precision", "recall"):
        for a, b in zip(parts[key], whole[key]):
            np.testing.assert_array_equal(a, b)
    evaluator.reset_state()
    empty = evaluator.result()
    assert np.all(np.isnan(empty["average_precision"]))
    assert empty["num_images"] == 0


def test_absolute_formats_and_tensors_give_the_same_result():
    import keras

    rng = np.random.default_rng(3)
    images = _random_images(rng, num_images=4, num_classes=3)
    ground_truth, detections = images
    y_true = pad_ground_truth(ground_truth, dtype=np.float64)
    y_pred = pad_detections(detections, dtype=np.float64)
    reference = DetectionEvaluator(num_classes=3)
    reference.update_state(y_true, y_pred)

    height, width = 240.0, 320.0

    def to_xywh(boxes):
        y1, x1, y2, x2 = np.moveaxis(boxes, -1, 0)
        xywh = np.stack(
            [x1 * width, y1 * height, (x2 - x1) * width, (y2 - y1) * height],
            axis=-1,
        )
        return np.where(boxes == -1, -1.0, xywh)

    converted = DetectionEvaluator(
        num_classes=3, bounding_box_format="xywh", image_shape=(240, 320, 3)
    )
    converted.update_state(
        {
            "boxes": keras.ops.convert_to_tensor(to_xywh(y_true["boxes"])),
            "classes": keras.ops.convert_to_tensor(y_true["classes"]),
        },
        {
            key: keras.ops.convert_to_tensor(
                to_xywh(value) if key == "boxes" else value
            )
            for key, value in y_pred.items()
        },
    )
    expected = reference.result()["average_precision"]
    np.testing.assert_allclose(
        converted.result()["average_precision"], expected, rtol=1e-9
    )
    assert np.nanmin(expected) < 1.0  # a case with errors in it


def test_nan_in_padding_is_allowed():
    y_true = pad_ground_truth([([A], [0])], num_boxes=2)
    y_true["boxes"][0, 1] = np.nan
    y_pred = pad_detections([([A], [0], [0.9])], max_detections=2)
    y_pred["boxes"][0, 1] = np.nan
    y_pred["confidence"][0, 1] = np.nan
    evaluator = DetectionEvaluator(num_classes=1)
    evaluator.update_state(y_true, y_pred)
    assert evaluator.result()["average_precision"][0] == 1.0


def test_config_round_trip():
    evaluator = DetectionEvaluator(
        detection_classes=Split(5, (1, 3), (0, 2, 4)),
        iou_threshold=0.7,
        bounding_box_format="xyxy",
        image_shape=(100, 200),
        method="coco",
    )
    config = evaluator.get_config()
    assert config["num_classes"] == 5
    assert config["detection_classes"] == (1, 3)
    rebuilt = DetectionEvaluator.from_config(config)
    assert rebuilt.get_config() == config
    assert rebuilt.heldout_classes == (0, 2, 4)


def _random_images(rng, num_images, num_classes, max_objects=4):
    ground_truth, detections = [], []
    for _ in range(num_images):
        n = rng.integers(0, max_objects + 1)
        corner = rng.uniform(0.0, 0.6, (n, 2))
        size = rng.uniform(0.05, 0.4, (n, 2))
        boxes = np.concatenate([corner, corner + size], axis=1)
        classes = rng.integers(0, num_classes, n)
        ground_truth.append((boxes, classes))
        # Jittered copies of the objects (some good, some poor) plus noise.
        copies = np.repeat(boxes, 2, axis=0) + rng.normal(0, 0.04, (2 * n, 4))
        noise_corner = rng.uniform(0.0, 0.7, (3, 2))
        noise = np.concatenate([noise_corner, noise_corner + 0.2], axis=1)
        det = np.concatenate([copies, noise])
        det[:, 2:] = np.maximum(det[:, 2:], det[:, :2])
        det_classes = np.concatenate(
            [np.repeat(classes, 2), rng.integers(0, num_classes, 3)]
        )
        flip = rng.uniform(size=len(det_classes)) < 0.2
        det_classes[flip] = rng.integers(0, num_classes, flip.sum())
        detections.append((det, det_classes, rng.uniform(size=len(det))))
    return ground_truth, detections


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    method=st.sampled_from(["voc", "coco"]),
    num_classes=st.sampled_from([None, 3]),
)
def test_result_does_not_depend_on_order(seed, method, num_classes):
    rng = np.random.default_rng(seed)
    ground_truth, detections = _random_images(rng, 5, 3)
    # Coarse confidences so that ties (within and across images) happen.
    detections = [(b, c, np.round(s, 1)) for b, c, s in detections]
    kwargs = dict(num_classes=num_classes, method=method)
    expected = _evaluate(ground_truth, detections, **kwargs)
    order = rng.permutation(5)
    shuffled_det = []
    for i in order:
        boxes, classes, scores = detections[i]
        inner = rng.permutation(len(scores))
        shuffled_det.append((boxes[inner], classes[inner], scores[inner]))
    shuffled_gt = []
    for i in order:
        boxes, classes = ground_truth[i]
        inner = rng.permutation(len(classes))
        shuffled_gt.append((boxes[inner], classes[inner]))
    result = _evaluate(shuffled_gt, shuffled_det, **kwargs)
    np.testing.assert_array_equal(
        result["average_precision"], expected["average_precision"]
    )


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    method=st.sampled_from(["voc", "coco"]),
    num_classes=st.sampled_from([None, 3]),
    image=st.integers(0, 4),
)
def test_a_low_zero_iou_false_positive_never_raises_ap(
    seed, method, num_classes, image
):
    rng = np.random.default_rng(seed)
    ground_truth, detections = _random_images(rng, 5, 3)
    kwargs = dict(num_classes=num_classes, method=method)
    before = _evaluate(ground_truth, detections, **kwargs)
    # Every object lies in [0, 1.0]^2; this box is outside all of them.
    boxes, classes, scores = detections[image]
    lowest = min(s.min() for _, _, s in detections if len(s)) - 0.5
    detections[image] = (
        np.concatenate([boxes, [[1.5, 1.5, 1.8, 1.8]]]),
        np.append(classes, rng.integers(0, 3)),
        np.append(scores, lowest),
    )
    after = _evaluate(ground_truth, detections, **kwargs)
    ap_before = np.atleast_1d(before["average_precision"])
    ap_after = np.atleast_1d(after["average_precision"])
    defined = ~np.isnan(ap_before)
    # Summation order differs between the two curves: float round-off only.
    assert np.all(ap_after[defined] <= ap_before[defined] + 1e-9)
    assert 0 <= np.nanmin(np.append(ap_after, 0.0))
    assert np.nanmax(np.append(ap_after, 1.0)) <= 1.0


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (
            {"iou_threshold": 1.5},
            "`iou_threshold` must be in (0, 1]. Received: iou_threshold=1.5",
        ),
        ({"iou_threshold": -0.1}, "Received: iou_threshold=-0.1"),
        ({"method": "11point"}, "Received: method='11point'"),
        ({"bounding_box_format": "xy"}, "Received: bounding_box_format='xy'"),
        ({"image_shape": (10,)}, "Received: image_shape=(10,)"),
        ({"num_classes": 0}, "Received: num_classes=0"),
        ({"num_classes": 2.0}, "Received: num_classes=2.0"),
        ({"detection_classes": (0, 1)}, "needs `num_classes`"),
        (
            {"num_classes": 3, "detection_classes": (0, 3)},
            "Received: detection_classes=(0, 3)",
        ),
        (
            {"num_classes": 3, "detection_classes": Split(4, (0,), (1, 2, 3))},
            "Received: num_classes=3",
        ),
        (
            {"detection_classes": Split(4, (0,), (1, 2))},
            "heldout_classes=(1, 2)",
        ),
        (
            {"num_classes": 3, "ground_truth_classes": (0,)},
            "class-generic",
        ),
        ({"ground_truth_classes": (-1,)}, "ground_truth_classes=(-1,)"),
        ({"other_ground_truth": "drop"}, "other_ground_truth='drop'"),
    ],
)
def test_bad_constructor_arguments(kwargs, message):
    with pytest.raises(ValueError) as info:
        DetectionEvaluator(**kwargs)
    assert message in str(info.value)


def _good_batch():
    y_true = pad_ground_truth([([A], [0]), ([B], [1])])
    y_pred = pad_detections([([A], [0], [0.9]), ([B], [1], [0.8])])
    return y_true, y_pred


def _set(batch_part, key, value):
    changed = dict(batch_part)
    if value is None:
        del changed[key]
    else:
        changed[key] = value
    return changed


@pytest.mark.parametrize(
    "which, key, value, error, message",
    [
        ("true", "boxes", None, ValueError, "must have the key 'boxes'"),
        ("pred", "confidence", None, ValueError, "key 'confidence'"),
        ("pred", "classes", None, ValueError, 'key "classes"'),
        ("true", "boxes", np.zeros((2, 1, 3)), ValueError, "(2, 1, 3)"),
        ("true", "boxes", np.zeros((1, 4)), ValueError, "rank 3"),
        ("pred", "confidence", np.zeros((2, 2)), ValueError, "(2, 2)"),
        ("pred", "classes", np.zeros((2, 3)), ValueError, "(2, 3)"),
        ("pred", "num_detections", np.ones(3), ValueError, "(batch,)"),
        (
            "pred",
            "boxes",
            np.full((2, 1, 4), np.nan),
            ValueError,
            "must be finite",
        ),
        (
            "pred",
            "confidence",
            np.array([[0.9], [np.nan]]),
            ValueError,
            "must not contain NaN",
        ),
        (
            "true",
            "boxes",
            np.array([[[0.5, 0.5, 0.2, 0.9]], [B]]),
            ValueError,
            "max >= min",
        ),
        ("pred", "classes", np.array([[0], [7]]), ValueError, "class 7"),
        ("true", "classes", np.array([[0], [2]]), ValueError, "class 2"),
        ("pred", "boxes", np.array([[["a"] * 4]] * 2), TypeError, "numbers"),
    ],
)
def test_bad_batches_raise_and_store_nothing(which, key, value, error, message):
    y_true, y_pred = _good_batch()
    if which == "true":
        y_true = _set(y_true, key, value)
    else:
        y_pred = _set(y_pred, key, value)
    evaluator = DetectionEvaluator(num_classes=2)
    with pytest.raises(error) as info:
        evaluator.update_state(y_true, y_pred)
    assert message in str(info.value)
    assert evaluator.result()["num_images"] == 0


def test_mismatched_batch_sizes_raise():
    y_true, y_pred = _good_batch()
    y_true = {key: value[:1] for key, value in y_true.items()}
    with pytest.raises(ValueError, match="same batch size"):
        DetectionEvaluator(num_classes=2).update_state(y_true, y_pred)


def test_non_dict_inputs_raise_type_error():
    y_true, y_pred = _good_batch()
    with pytest.raises(TypeError, match="`y_true` must be a dict"):
        DetectionEvaluator().update_state([1, 2], y_pred)
    with pytest.raises(TypeError, match="`y_pred` must be a dict"):
        DetectionEvaluator().update_state(y_true, np.zeros((2, 4)))


class TestIgnoredGroundTruth:
    """VOC difficult / COCO crowd boxes flagged in `y_true["ignore"]`."""

    def _batch(self, ignore):
        y_true = pad_ground_truth([([A, B, C], [0, 0, 1])])
        y_true["ignore"] = np.array([ignore])
        return y_true

    @pytest.mark.parametrize("method", ["voc", "coco"])
    def test_flagged_boxes_are_neither_found_nor_false_positives(self, method):
        # A found; B (flagged) detected with a high score; C (flagged) not.
        y_pred = pad_detections([([B, A, NOWHERE], [0, 0, 1], [0.9, 0.8, 0.7])])
        evaluator = DetectionEvaluator(num_classes=2, method=method)
        evaluator.update_state(self._batch([False, True, True]), y_pred)
        result = evaluator.result()
        np.testing.assert_array_equal(result["num_ground_truth"], [1, 0])
        # The B detection is left out, so class 0 keeps precision 1.
        assert result["average_precision"][0] == 1.0
        np.testing.assert_array_equal(result["num_detections"], [1, 1])
        # Without the flags B counts and NOWHERE's class has an object.
        plain = DetectionEvaluator(num_classes=2, method=method)
        plain.update_state(self._batch([False, False, False]), y_pred)
        np.testing.assert_array_equal(
            plain.result()["num_ground_truth"], [2, 1]
        )

    def test_class_generic_mode_reads_the_flags(self):
        y_pred = pad_detections(
            [([B, A], None, [0.9, 0.8])], with_classes=False
        )
        evaluator = DetectionEvaluator()
        evaluator.update_state(self._batch([False, True, False]), y_pred)
        result = evaluator.result()
        assert result["num_ground_truth"] == 2
        assert result["num_detections"] == 1
        assert result["precision"][0] == 1.0

    def test_crowd_overlap_is_the_share_of_the_detection(self):
        # A small detection inside a big flagged box: IoU 0.0625, but all
        # of it lies inside the box.
        big = [0.0, 0.0, 0.8, 0.8]
        y_true = pad_ground_truth([([big, B], [0, 0])])
        y_true["ignore"] = np.array([[True, False]])
        y_pred = pad_detections(
            [([[0.1, 0.1, 0.3, 0.3], B], [0, 0], [0.9, 0.8])]
        )
        results = {}
        for overlap in ("iou", "detection_area"):
            evaluator = DetectionEvaluator(
                num_classes=1, method="coco", ignored_overlap=overlap
            )
            evaluator.update_state(y_true, y_pred)
            results[overlap] = evaluator.result()
        assert results["detection_area"]["average_precision"][0] == 1.0
        assert results["detection_area"]["num_detections"][0] == 1
        # Measured by IoU the small box is a false positive.
        assert results["iou"]["num_detections"][0] == 2
        assert results["iou"]["average_precision"][0] < 1.0
        # `None` picks the rule by method.
        default = DetectionEvaluator(num_classes=1, method="coco")
        default.update_state(y_true, y_pred)
        assert default.result()["num_detections"][0] == 1
        voc = DetectionEvaluator(num_classes=1, method="voc")
        voc.update_state(y_true, y_pred)
        assert voc.result()["num_detections"][0] == 2

    def test_bad_flags_raise(self):
        y_true = pad_ground_truth([([A, B], [0, 0])])
        y_true["ignore"] = np.array([[True, False, False]])
        y_pred = pad_detections([([A], [0], [0.9])])
        with pytest.raises(ValueError, match='`y_true\\["ignore"\\]`'):
            DetectionEvaluator(num_classes=1).update_state(y_true, y_pred)
        with pytest.raises(ValueError, match="`ignored_overlap`"):
            DetectionEvaluator(ignored_overlap="area")

    def test_config_keeps_ignored_overlap(self):
        evaluator = DetectionEvaluator(ignored_overlap="detection_area")
        config = evaluator.get_config()
        assert config["ignored_overlap"] == "detection_area"
        assert DetectionEvaluator.from_config(config).get_config() == config
