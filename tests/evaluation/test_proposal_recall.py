import numpy as np
import pytest

from keras_objectness.evaluation import proposal_recall

PAD = [-1.0, -1.0, -1.0, -1.0]


def _ground_truth(ignore=None):
    ground_truth = {
        "boxes": np.array(
            [
                [[0.0, 0.0, 0.5, 0.5], [0.5, 0.5, 1.0, 1.0], PAD],
                [[0.1, 0.1, 0.4, 0.9], PAD, PAD],
            ]
        ),
        "classes": np.array([[3, 7, -1], [1, -1, -1]]),
    }
    if ignore is not None:
        ground_truth["ignore"] = np.array(ignore)
    return ground_truth


PROPOSALS = np.array(
    [
        [[0.0, 0.0, 0.5, 0.45], [0.0, 0.0, 0.1, 0.1], PAD],
        [[0.1, 0.1, 0.4, 0.9], [0.1, 0.1, 0.4, 0.85], PAD],
    ]
)


def test_share_of_covered_boxes():
    # Image 0: the first box covered (IoU 0.9), the second not; image 1:
    # covered twice, counted once.
    assert proposal_recall(PROPOSALS, _ground_truth()) == pytest.approx(2 / 3)
    assert proposal_recall(
        PROPOSALS, _ground_truth(), iou_threshold=0.95
    ) == pytest.approx(1 / 3)


def test_ignored_boxes_are_not_counted():
    ignore = [[False, True, False], [False, False, False]]
    assert proposal_recall(PROPOSALS, _ground_truth(ignore)) == 1.0


def test_padding_and_dicts():
    # A padding proposal on the uncovered box changes nothing.
    padded = PROPOSALS.copy()
    padded[0, 2] = PAD
    assert proposal_recall(padded, _ground_truth()) == pytest.approx(2 / 3)
    detections = {"boxes": PROPOSALS, "num_detections": np.array([1, 0])}
    assert proposal_recall(detections, _ground_truth()) == pytest.approx(1 / 3)
    # Absolute boxes: the same answer.
    scale = np.array([100.0, 200.0, 100.0, 200.0])
    gt = _ground_truth()
    absolute = {
        **gt,
        "boxes": np.where(gt["boxes"] >= 0, gt["boxes"] * scale, -1),
    }
    proposals = np.where(PROPOSALS >= 0, PROPOSALS * scale, -1)
    assert proposal_recall(
        proposals, absolute, bounding_box_format="yxyx"
    ) == pytest.approx(2 / 3)


def test_nothing_to_find_is_nan():
    ignore = [[True, True, False], [True, False, False]]
    assert np.isnan(proposal_recall(PROPOSALS, _ground_truth(ignore)))


def test_bad_arguments():
    with pytest.raises(ValueError, match="`iou_threshold`"):
        proposal_recall(PROPOSALS, _ground_truth(), iou_threshold=0.0)
    with pytest.raises(ValueError, match="`proposals` must have rank 3"):
        proposal_recall(PROPOSALS[0], _ground_truth())
    with pytest.raises(ValueError, match="same batch size"):
        proposal_recall(PROPOSALS[:1], _ground_truth())
