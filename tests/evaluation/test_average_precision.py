import numpy as np
import pytest
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from keras_objectness.evaluation import average_precision
from keras_objectness.evaluation import precision_recall_auc
from keras_objectness.evaluation import precision_recall_curve


def test_known_precision_recall_values():
    precision, recall, thresholds = precision_recall_curve(
        [True, False, True], [0.9, 0.8, 0.7], num_ground_truth=4
    )
    np.testing.assert_allclose(precision, [1.0, 0.5, 2.0 / 3.0])
    np.testing.assert_allclose(recall, [0.25, 0.25, 0.5])
    np.testing.assert_allclose(thresholds, [0.9, 0.8, 0.7])


def test_curve_sorts_by_confidence():
    precision, recall, thresholds = precision_recall_curve(
        [True, True, False], [0.1, 0.9, 0.5], num_ground_truth=2
    )
    np.testing.assert_allclose(thresholds, [0.9, 0.5, 0.1])
    np.testing.assert_allclose(precision, [1.0, 0.5, 2.0 / 3.0])
    np.testing.assert_allclose(recall, [0.5, 0.5, 1.0])


def test_tied_detections_enter_the_curve_together():
    precision, recall, thresholds = precision_recall_curve(
        [False, True, True], [0.7, 0.7, 0.2], num_ground_truth=2
    )
    np.testing.assert_allclose(thresholds, [0.7, 0.2])
    np.testing.assert_allclose(precision, [0.5, 2.0 / 3.0])
    np.testing.assert_allclose(recall, [0.5, 1.0])


def test_hand_computed_voc_and_coco_ap():
    # [TP, FP, TP] with 3 objects: precision (1, 1/2, 2/3), recall
    # (1/3, 1/3, 2/3). Envelope: 1 up to recall 1/3, 2/3 up to 2/3, then 0.
    precision, recall, _ = precision_recall_curve(
        [True, False, True], [0.9, 0.8, 0.7], num_ground_truth=3
    )
    voc = average_precision(precision, recall, method="voc")
    np.testing.assert_allclose(voc, 1 / 3 * 1 + 1 / 3 * 2 / 3)
    # 101 recall thresholds: 0..0.33 (34 of them) read 1, 0.34..0.66 (33)
    # read 2/3, 0.67..1 (34) read 0.
    coco = average_precision(precision, recall, method="coco")
    np.testing.assert_allclose(coco, (34 + 33 * 2 / 3) / 101)
    assert precision_recall_auc(precision, recall) == voc


def test_voc_ap_uses_the_envelope_not_the_raw_curve():
    # Precision rises after a FP: the envelope lifts the first step.
    # [TP, FP, TP, TP], 4 objects -> precision (1, .5, .667, .75).
    precision, recall, _ = precision_recall_curve(
        [True, False, True, True], [4, 3, 2, 1], num_ground_truth=4
    )
    expected = 0.25 * 1 + 0.25 * 0.75 + 0.25 * 0.75
    np.testing.assert_allclose(average_precision(precision, recall), expected)


@pytest.mark.parametrize("method", ["voc", "coco"])
def test_perfect_and_empty(method):
    precision, recall, _ = precision_recall_curve(
        [True] * 5, np.linspace(1, 0.5, 5), num_ground_truth=5
    )
    assert average_precision(precision, recall, method=method) == 1.0
    precision, recall, _ = precision_recall_curve([], [], num_ground_truth=3)
    assert average_precision(precision, recall, method=method) == 0.0
    # Half the objects found, all detections right.
    precision, recall, _ = precision_recall_curve(
        [True, True], [0.9, 0.8], num_ground_truth=4
    )
    expected = 0.5 if method == "voc" else 51 / 101
    np.testing.assert_allclose(
        average_precision(precision, recall, method=method), expected
    )


@st.composite
def matched_detections(draw):
    n = draw(st.integers(0, 30))
    true_positive = draw(st.lists(st.booleans(), min_size=n, max_size=n))
    # Few distinct values so that ties happen often.
    confidence = draw(
        st.lists(
            st.sampled_from([0.0, 0.1, 0.25, 0.5, 0.75, 1.0, 3.0]),
            min_size=n,
            max_size=n,
        )
    )
    missed = draw(st.integers(0 if any(true_positive) else 1, 5))
    return (
        np.array(true_positive, dtype=bool),
        np.array(confidence),
        int(sum(true_positive)) + missed,
    )


def _ap(true_positive, confidence, num_ground_truth, method):
    precision, recall, _ = precision_recall_curve(
        true_positive, confidence, num_ground_truth
    )
    return average_precision(precision, recall, method=method)


@settings(max_examples=60, deadline=None)
@given(matched_detections(), st.sampled_from(["voc", "coco"]))
def test_ap_is_in_unit_interval(data, method):
    ap = _ap(*data, method)
    assert 0.0 <= ap <= 1.0


@settings(max_examples=60, deadline=None)
@given(matched_detections(), st.sampled_from(["voc", "coco"]), st.randoms())
def test_ap_does_not_depend_on_order(data, method, random):
    true_positive, confidence, num_ground_truth = data
    order = list(range(len(confidence)))
    random.shuffle(order)
    expected = _ap(true_positive, confidence, num_ground_truth, method)
    shuffled = _ap(
        true_positive[order], confidence[order], num_ground_truth, method
    )
    assert shuffled == expected


@settings(max_examples=60, deadline=None)
@given(
    matched_detections(),
    st.sampled_from(["voc", "coco"]),
    st.floats(-1.0, 4.0),
)
def test_an_extra_false_positive_never_raises_ap(data, method, score):
    true_positive, confidence, num_ground_truth = data
    before = _ap(true_positive, confidence, num_ground_truth, method)
    after = _ap(
        np.append(true_positive, False),
        np.append(confidence, score),
        num_ground_truth,
        method,
    )
    assert after <= before + 1e-12


@settings(max_examples=40, deadline=None)
@given(matched_detections())
def test_coco_ap_approximates_voc_ap(data):
    # The 101-point rule samples the same envelope the area integrates.
    voc = _ap(*data, "voc")
    coco = _ap(*data, "coco")
    # For a non-increasing envelope the two differ by at most 1/100.
    assert abs(voc - coco) <= 0.01 + 1e-12


@pytest.mark.parametrize(
    "args, message",
    [
        (([True], [0.5], 0), "Received: num_ground_truth=0"),
        (([True, True], [0.5, 0.4], 1), "Received: num_ground_truth=1"),
        (([True], [0.5], 1.0), "Received: num_ground_truth=1.0"),
        (([True], [0.5, 0.4], 2), "same length"),
        (([True], [np.nan], 2), "NaN"),
        (([[True]], [[0.5]], 2), "rank 1"),
    ],
)
def test_curve_bad_arguments(args, message):
    with pytest.raises(ValueError) as info:
        precision_recall_curve(*args)
    assert message in str(info.value)


@pytest.mark.parametrize(
    "args, kwargs, message",
    [
        (([1.0], [1.0]), {"method": "11point"}, "Received: method='11point'"),
        (([1.0, 0.5], [0.5]), {}, "same length"),
        (([1.5], [0.5]), {}, "`precision` values must be in [0, 1]"),
        (([np.nan], [0.5]), {}, "`precision` values must be in [0, 1]"),
        (([1.0, 1.0], [0.5, 0.25]), {}, "non-decreasing"),
    ],
)
def test_ap_bad_arguments(args, kwargs, message):
    with pytest.raises(ValueError) as info:
        average_precision(*args, **kwargs)
    assert message in str(info.value)
