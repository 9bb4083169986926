import matplotlib.image
import numpy as np
import pytest

from keras_objectness.evaluation import ERROR_TYPES
from keras_objectness.evaluation import FalsePositiveAnalyzer
from keras_objectness.evaluation import classify_false_positives
from keras_objectness.evaluation import false_positive_breakdown
from keras_objectness.evaluation import plot_false_positive_breakdown
from tests.evaluation.batching import pad_detections
from tests.evaluation.batching import pad_ground_truth

A = [0.0, 0.0, 0.3, 0.3]  # class 0
B = [0.5, 0.5, 0.9, 0.9]  # class 1
C = [0.0, 0.6, 0.3, 0.9]  # class 2

# (box, class, confidence, expected type or None for a true positive)
HAND_CASE = [
    (A, 0, 0.95, None),
    ([0.0, 0.0, 0.3, 0.28], 0, 0.9, "localization"),  # duplicate of A
    ([0.0, 0.0, 0.3, 0.1], 0, 0.85, "localization"),  # IoU 1/3 with A
    (B, 0, 0.8, "confusion"),  # on the class-1 object
    # IoU 0.125 with C (own class) beats IoU 0.29 with A (other class).
    ([0.0, 0.1, 0.3, 0.7], 2, 0.75, "localization"),
    ([0.6, 0.0, 0.9, 0.2], 0, 0.7, "background"),  # on nothing
    ([0.25, 0.25, 0.35, 0.35], 0, 0.6, "background"),  # IoU 0.026 with A
]


def _hand_batch(order=None):
    rows = HAND_CASE if order is None else [HAND_CASE[i] for i in order]
    y_true = pad_ground_truth([([A, B, C], [0, 1, 2])])
    y_pred = pad_detections(
        [
            (
                [r[0] for r in rows],
                [r[1] for r in rows],
                [r[2] for r in rows],
            )
        ]
    )
    return y_true, y_pred


def _expected(classes=None):
    rows = [
        r
        for r in HAND_CASE
        if r[3] is not None and (classes is None or r[1] in classes)
    ]
    return [r[3] for r in rows], [r[2] for r in rows]


def test_hand_built_case_is_classified_as_designed():
    false_positives = classify_false_positives(
        *_hand_batch(order=[6, 3, 0, 5, 1, 4, 2])
    )
    types, scores = _expected()
    np.testing.assert_array_equal(false_positives["error_type"], types)
    np.testing.assert_allclose(false_positives["confidence"], scores)
    np.testing.assert_array_equal(
        false_positives["classes"], [0, 0, 0, 2, 0, 0]
    )
    np.testing.assert_array_equal(false_positives["image_index"], [0] * 6)


@pytest.mark.parametrize("classes", [(0,), (2,), (1,)])
def test_only_the_chosen_classes_are_analysed(classes):
    false_positives = classify_false_positives(*_hand_batch(), classes=classes)
    types, _ = _expected(classes)
    np.testing.assert_array_equal(false_positives["error_type"], types)


def test_thresholds_move_errors_between_types():
    # With localization_iou above 1/3 the poorly placed box is background
    # (it overlaps no other class); the duplicate stays localization.
    false_positives = classify_false_positives(
        *_hand_batch(), localization_iou=0.4
    )
    np.testing.assert_array_equal(
        false_positives["error_type"][:2], ["localization", "background"]
    )


def test_breakdown_of_top_false_positives():
    breakdown = false_positive_breakdown(
        classify_false_positives(*_hand_batch()), counts=(1, 2, 4, 8)
    )
    np.testing.assert_array_equal(breakdown["counts"], [1, 2, 4, 8])
    np.testing.assert_array_equal(breakdown["num_considered"], [1, 2, 4, 6])
    np.testing.assert_allclose(breakdown["localization"], [1, 1, 3 / 4, 3 / 6])
    np.testing.assert_allclose(breakdown["confusion"], [0, 0, 1 / 4, 1 / 6])
    np.testing.assert_allclose(breakdown["background"], [0, 0, 0, 2 / 6])
    assert breakdown["num_false_positives"] == 6
    total = sum(breakdown[name] for name in ERROR_TYPES)
    np.testing.assert_allclose(total, 1.0)


def test_breakdown_sorts_by_confidence_and_handles_no_false_positives():
    breakdown = false_positive_breakdown(
        {
            "error_type": np.array(["background", "confusion"]),
            "confidence": np.array([0.1, 0.9]),
        },
        counts=(1, 2),
    )
    np.testing.assert_allclose(breakdown["confusion"], [1.0, 0.5])
    empty = false_positive_breakdown(
        {"error_type": np.zeros(0, str), "confidence": np.zeros(0)}
    )
    assert empty["num_false_positives"] == 0
    assert np.all(np.isnan(empty["background"]))


def test_analyzer_accumulates_over_batches():
    y_true, y_pred = _hand_batch()
    second_true = pad_ground_truth([([B], [1]), ([A], [0])])
    second_pred = pad_detections(
        [([A], [1], [0.99]), ([[0.0, 0.0, 0.3, 0.2]], [0], [0.5])]
    )
    analyzer = FalsePositiveAnalyzer(counts=(2, 4, 8, 16))
    analyzer.update_state(y_true, y_pred)
    analyzer.update_state(second_true, second_pred)
    result = analyzer.result()
    pooled = result["false_positives"]
    # Image 1: a class-1 box on A, far from the class-1 object B, is
    # background. Image 2: IoU 2/3 with A, a true positive (not listed).
    assert pooled["confidence"][0] == pytest.approx(0.99)
    assert pooled["error_type"][0] == "background"
    assert pooled["image_index"][0] == 1
    assert result["num_false_positives"] == 7
    np.testing.assert_array_equal(result["num_considered"], [2, 4, 7, 7])
    analyzer.reset_state()
    assert analyzer.result()["num_false_positives"] == 0


def test_plot_writes_a_png(tmp_path):
    breakdown = false_positive_breakdown(
        classify_false_positives(*_hand_batch()), counts=(1, 2, 4, 8)
    )
    path = plot_false_positive_breakdown(
        breakdown, tmp_path / "figures" / "fp.png", title="Held-out"
    )
    with open(path, "rb") as file:
        assert file.read(8) == b"\x89PNG\r\n\x1a\n"
    assert matplotlib.image.imread(path).shape == (320, 400, 4)


def test_plot_colours_follow_the_fractions(tmp_path):
    # All background: the middle of the axes is the background colour.
    counts = np.array([25, 50, 100, 200])
    breakdown = {
        "counts": counts,
        "localization": np.zeros(4),
        "confusion": np.zeros(4),
        "background": np.ones(4),
    }
    path = plot_false_positive_breakdown(breakdown, tmp_path / "bg.png")
    pixel = matplotlib.image.imread(path)[150, 230, :3]
    np.testing.assert_allclose(
        pixel, [196 / 255, 78 / 255, 82 / 255], atol=0.02
    )


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"iou_threshold": 1.5}, "Received: iou_threshold=1.5"),
        ({"localization_iou": 0.6}, "Received: localization_iou=0.6"),
        ({"confusion_iou": 0}, "Received: confusion_iou=0"),
        ({"classes": (0, -2)}, "Received: classes=(0, -2)"),
        ({"bounding_box_format": "yx"}, "Received: bounding_box_format='yx'"),
    ],
)
def test_bad_arguments_raise(kwargs, message):
    with pytest.raises(ValueError) as info:
        classify_false_positives(*_hand_batch(), **kwargs)
    assert message in str(info.value)
    with pytest.raises(ValueError) as info:
        FalsePositiveAnalyzer(**kwargs)
    assert message in str(info.value)


@pytest.mark.parametrize(
    "counts", [(), (0, 10), (50, 25), (1.5, 3), None, (True, 2)]
)
def test_bad_counts_raise(counts):
    with pytest.raises(ValueError, match="`counts` must be"):
        FalsePositiveAnalyzer(counts=counts)


def test_bad_breakdown_inputs_raise(tmp_path):
    with pytest.raises(ValueError, match="must be in"):
        false_positive_breakdown(
            {"error_type": np.array(["loc"]), "confidence": np.array([1.0])}
        )
    with pytest.raises(ValueError, match="same length"):
        false_positive_breakdown(
            {"error_type": np.array(["background"]), "confidence": [1.0, 2.0]}
        )
    with pytest.raises(ValueError, match="'error_type'"):
        false_positive_breakdown({"confidence": np.array([1.0])})
    with pytest.raises(ValueError, match="`breakdown` must be a dict"):
        plot_false_positive_breakdown({"counts": [1]}, tmp_path / "x.png")


def test_error_analysis_needs_classes_and_same_batch():
    y_true, y_pred = _hand_batch()
    del y_pred["classes"]
    with pytest.raises(ValueError, match='key "classes"'):
        classify_false_positives(y_true, y_pred)
    y_true, y_pred = _hand_batch()
    y_true = pad_ground_truth([([A], [0]), ([B], [1])])
    with pytest.raises(ValueError, match="same batch size"):
        classify_false_positives(y_true, y_pred)


def test_detections_on_ignored_ground_truth_are_no_false_positives():
    y_true = pad_ground_truth([([A, B], [0, 1])])
    duplicate = [0.5, 0.5, 0.9, 0.88]
    y_pred = pad_detections([([B, duplicate], [1, 1], [0.9, 0.8])])
    plain = classify_false_positives(y_true, y_pred)
    np.testing.assert_array_equal(plain["error_type"], ["localization"])
    y_true["ignore"] = np.array([[False, True]])
    flagged = classify_false_positives(y_true, y_pred)
    # B is ignored now: detections on it are neither matched nor errors.
    assert len(flagged["confidence"]) == 0
