import numpy as np
import pytest

from keras_objectness.evaluation import compute_iou
from keras_objectness.evaluation import match_detections

# One box in every format: x 10..30, y 20..60 in a 100 (h) x 200 (w) image.
SAME_BOX = {
    "xyxy": [10, 20, 30, 60],
    "yxyx": [20, 10, 60, 30],
    "xywh": [10, 20, 20, 40],
    "center_xywh": [20, 40, 20, 40],
    "center_yxhw": [40, 20, 40, 20],
    "rel_xyxy": [0.05, 0.2, 0.15, 0.6],
    "rel_yxyx": [0.2, 0.05, 0.6, 0.15],
    "rel_xywh": [0.05, 0.2, 0.1, 0.4],
    "rel_center_xywh": [0.1, 0.4, 0.1, 0.4],
}
# The same box shifted right by 10 px (x 20..40): IoU = 20*40/(60*40) = 1/3.
SHIFTED = {
    "xyxy": [20, 20, 40, 60],
    "yxyx": [20, 20, 60, 40],
    "xywh": [20, 20, 20, 40],
    "center_xywh": [30, 40, 20, 40],
    "center_yxhw": [40, 30, 40, 20],
    "rel_xyxy": [0.1, 0.2, 0.2, 0.6],
    "rel_yxyx": [0.2, 0.1, 0.6, 0.2],
    "rel_xywh": [0.1, 0.2, 0.1, 0.4],
    "rel_center_xywh": [0.15, 0.4, 0.1, 0.4],
}


@pytest.mark.parametrize("bounding_box_format", sorted(SAME_BOX))
def test_iou_is_the_same_in_every_format(bounding_box_format):
    iou = compute_iou(
        [SAME_BOX[bounding_box_format]],
        [SAME_BOX[bounding_box_format], SHIFTED[bounding_box_format]],
        bounding_box_format=bounding_box_format,
        image_shape=(100, 200),
    )
    np.testing.assert_allclose(iou, [[1.0, 1.0 / 3.0]], rtol=1e-12)


def test_iou_without_image_shape_equals_normalised_iou():
    boxes1 = np.array([[10.0, 20.0, 50.0, 80.0], [0.0, 0.0, 5.0, 5.0]])
    boxes2 = np.array([[15.0, 25.0, 60.0, 70.0]])
    pixels = compute_iou(boxes1, boxes2, bounding_box_format="yxyx")
    normalised = compute_iou(
        boxes1, boxes2, bounding_box_format="yxyx", image_shape=(90, 120)
    )
    np.testing.assert_allclose(pixels, normalised, rtol=1e-12)
    # Intersection 35 x 45, union 40*60 + 45*45 - 35*45.
    expected = 35 * 45 / (40 * 60 + 45 * 45 - 35 * 45)
    np.testing.assert_allclose(pixels[0, 0], expected, rtol=1e-12)
    assert pixels[1, 0] == 0.0


def test_zero_area_boxes_have_zero_iou():
    iou = compute_iou([[0.2, 0.2, 0.2, 0.2]], [[0.2, 0.2, 0.2, 0.2]])
    assert iou[0, 0] == 0.0
    assert compute_iou(np.zeros((0, 4)), [[0, 0, 1, 1]]).shape == (0, 1)


def test_best_detection_wins_and_duplicate_is_false_positive():
    result = match_detections(
        ground_truth_boxes=[[0.0, 0.0, 0.5, 0.5]],
        detection_boxes=[[0.0, 0.0, 0.5, 0.5], [0.0, 0.0, 0.5, 0.45]],
        detection_confidence=[0.6, 0.9],
    )
    # Higher confidence goes first even with a slightly worse box.
    np.testing.assert_array_equal(result["true_positive"], [False, True])
    np.testing.assert_array_equal(result["ground_truth_index"], [-1, 0])
    np.testing.assert_array_equal(result["ignored"], [False, False])


def test_threshold_is_inclusive():
    # IoU of these two boxes is exactly 0.5 in binary floating point.
    gt = [[0.0, 0.0, 1.0, 1.0]]
    det = [[0.0, 0.0, 1.0, 0.5]]
    exact = match_detections(gt, det, [1.0], iou_threshold=0.5)
    assert exact["true_positive"][0]
    above = match_detections(gt, det, [1.0], iou_threshold=0.5 + 1e-9)
    assert not above["true_positive"][0]


def test_voc_and_coco_rules_differ_on_a_taken_best_box():
    # GT a = x 0..10, GT b = x 2..12 (same rows). The first detection takes
    # a; the second overlaps a most (IoU 0.90) but also b (IoU 0.74).
    gt = [[0, 0, 10, 10], [0, 2, 10, 12]]
    det = [[0, 0, 10, 10], [0, 0.5, 10, 10.5]]
    iou = compute_iou(det, gt, bounding_box_format="yxyx")
    assert iou[1, 0] > iou[1, 1] >= 0.5
    kwargs = dict(
        ground_truth_boxes=gt,
        detection_boxes=det,
        detection_confidence=[0.9, 0.8],
        bounding_box_format="yxyx",
    )
    voc = match_detections(matching="voc", **kwargs)
    coco = match_detections(matching="coco", **kwargs)
    np.testing.assert_array_equal(voc["true_positive"], [True, False])
    np.testing.assert_array_equal(coco["true_positive"], [True, True])
    np.testing.assert_array_equal(coco["ground_truth_index"], [0, 1])


def test_per_class_matching_needs_the_same_class():
    box = [[0.1, 0.1, 0.4, 0.4]]
    other = match_detections(box, box, [0.9], [3], [2])
    same = match_detections(box, box, [0.9], [3], [3])
    generic = match_detections(box, box, [0.9])
    assert not other["true_positive"][0]
    assert same["true_positive"][0]
    assert generic["true_positive"][0]


@pytest.mark.parametrize("matching", ["voc", "coco"])
def test_detections_on_ignored_boxes_are_ignored(matching):
    gt = [[0.0, 0.0, 0.3, 0.3], [0.5, 0.5, 0.9, 0.9]]
    det = [[0.0, 0.0, 0.3, 0.3], [0.5, 0.5, 0.9, 0.9], [0.5, 0.5, 0.9, 0.88]]
    result = match_detections(
        gt,
        det,
        [0.5, 0.9, 0.8],
        matching=matching,
        ground_truth_ignore=[False, True],
    )
    np.testing.assert_array_equal(result["true_positive"], [True, False, False])
    # An ignored box absorbs any number of detections.
    np.testing.assert_array_equal(result["ignored"], [False, True, True])


def test_result_does_not_depend_on_detection_order_even_with_ties():
    rng = np.random.default_rng(0)
    gt = rng.uniform(0, 0.5, (6, 2))
    gt = np.concatenate([gt, gt + rng.uniform(0.1, 0.5, (6, 2))], axis=1)
    det = np.repeat(gt, 3, axis=0) + rng.normal(0, 0.03, (18, 4))
    det[:, 2:] = np.maximum(det[:, 2:], det[:, :2])
    confidence = rng.choice([0.2, 0.5, 0.9], size=18)  # many ties
    reference = match_detections(gt, det, confidence)
    for _ in range(5):
        order = rng.permutation(18)
        shuffled = match_detections(gt, det[order], confidence[order])
        for key in ("true_positive", "ground_truth_index"):
            np.testing.assert_array_equal(shuffled[key], reference[key][order])
    assert 0 < reference["true_positive"].sum() < 18


def test_empty_inputs():
    result = match_detections(np.zeros((0, 4)), [[0, 0, 1, 1]], [0.3])
    np.testing.assert_array_equal(result["true_positive"], [False])
    result = match_detections([[0, 0, 1, 1]], np.zeros((0, 4)), [])
    assert result["true_positive"].shape == (0,)


GOOD = dict(
    ground_truth_boxes=[[0.0, 0.0, 0.5, 0.5]],
    detection_boxes=[[0.0, 0.0, 0.5, 0.5]],
    detection_confidence=[0.9],
)


@pytest.mark.parametrize(
    "change, error, message",
    [
        (
            {"iou_threshold": 1.5},
            ValueError,
            "`iou_threshold` must be in (0, 1]. Received: iou_threshold=1.5",
        ),
        ({"iou_threshold": 0.0}, ValueError, "Received: iou_threshold=0.0"),
        ({"iou_threshold": True}, ValueError, "Received: iou_threshold=True"),
        ({"matching": "iou"}, ValueError, "Received: matching='iou'"),
        (
            {"bounding_box_format": "xyzw"},
            ValueError,
            "Received: bounding_box_format='xyzw'",
        ),
        ({"image_shape": (0, 10)}, ValueError, "Received: image_shape="),
        ({"detection_boxes": [[0, 0, 1]]}, ValueError, "shape (1, 3)"),
        ({"detection_boxes": [0, 0, 1, 1]}, ValueError, "must have rank 2"),
        ({"detection_confidence": [0.9, 0.1]}, ValueError, "2 confidences"),
        ({"detection_confidence": [np.nan]}, ValueError, "NaN"),
        ({"detection_boxes": [[0, np.nan, 1, 1]]}, ValueError, "finite"),
        ({"ground_truth_boxes": [[0.5, 0, 0.2, 1]]}, ValueError, "max >= min"),
        ({"detection_classes": [1]}, ValueError, "given together"),
        ({"detection_boxes": [["a", "b", "c", "d"]]}, TypeError, "numbers"),
        ({"ground_truth_ignore": [True, False]}, ValueError, "one entry"),
    ],
)
def test_bad_arguments_raise(change, error, message):
    with pytest.raises(error) as info:
        match_detections(**{**GOOD, **change})
    assert message in str(info.value)


def test_compute_iou_bad_arguments():
    with pytest.raises(ValueError, match="shape"):
        compute_iou([[0, 0, 1]], [[0, 0, 1, 1]])
    with pytest.raises(ValueError, match="NaN"):
        compute_iou([[0, 0, np.nan, 1]], [[0, 0, 1, 1]])
    with pytest.raises(ValueError, match="bounding_box_format='XYXY'"):
        compute_iou([[0, 0, 1, 1]], [[0, 0, 1, 1]], bounding_box_format="XYXY")


def test_crowd_regions_absorb_detections_inside_them():
    crowd = [0.0, 0.0, 0.8, 0.8]
    inside = [0.1, 0.1, 0.3, 0.3]  # IoU 0.0625 with the crowd box
    result = match_detections(
        [crowd, [0.85, 0.85, 1.0, 1.0]],
        [inside, [0.85, 0.85, 1.0, 1.0], [0.5, 0.5, 0.95, 0.95]],
        [0.9, 0.8, 0.7],
        ground_truth_crowd=[True, False],
        matching="coco",
    )
    np.testing.assert_array_equal(result["true_positive"], [0, 1, 0])
    # The last box is 0.3^2/0.45^2 = 44% inside the crowd region: an error.
    np.testing.assert_array_equal(result["ignored"], [1, 0, 0])
    plain = match_detections(
        [crowd], [inside], [0.9], ground_truth_ignore=[True], matching="coco"
    )
    assert not plain["ignored"][0]
    with pytest.raises(ValueError, match="`ground_truth_crowd` must have one"):
        match_detections([crowd], [inside], [0.9], ground_truth_crowd=[1, 0])
