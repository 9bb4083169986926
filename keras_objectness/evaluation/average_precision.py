"""Precision-recall curves and average precision from matched detections.

The curve. Detections pooled over many images are ranked by descending
confidence. At each distinct confidence `t`, with `TP(t)` and `FP(t)` the
true and false positives scoring `>= t`,

    precision(t) = TP(t) / (TP(t) + FP(t)),   recall(t) = TP(t) / G,

where `G` is the number of ground-truth boxes to find. Detections with equal
confidence enter the curve together, so the curve (and every AP below) does
not depend on the order in which tied detections are listed. Without ties
this is the per-detection curve of the VOC devkit and pycocotools.

Average precision. Let `p_interp(r) = max {precision(t) : recall(t) >= r}`
(0 when no point reaches recall `r`), the upper envelope of the curve.

* `method="voc"`: the VOC 2010+ *all-point interpolated* AP, the exact area
  under the envelope, `sum_i (r_i - r_{i-1}) * p_interp(r_i)` over the
  distinct recall values `r_1 < r_2 < ...` of the curve with `r_0 = 0`.
* `method="coco"`: the pycocotools *101-point interpolated* AP, the mean of
  `p_interp(r)` over `r = 0, 0.01, ..., 1`.

The class-generic objectness paper reports the "AUC" of its precision-recall
curve without spelling out the integration rule; `precision_recall_auc`
defines it as the all-point interpolated area, i.e. the same number as
`method="voc"`.

Both are 0 when there are no detections, and undefined (the curve needs
`G >= 1`) when there is nothing to find.
"""

import numpy as np

from keras_objectness import _checks
from keras_objectness.evaluation import _inputs

AP_METHODS = ("voc", "coco")

# pycocotools' recall thresholds (`Params.recThrs`), built the same way so
# the floating-point values agree bit for bit.
COCO_RECALL_THRESHOLDS = np.linspace(
    0.0, 1.0, int(np.round((1.0 - 0.0) / 0.01)) + 1, endpoint=True
)


def precision_recall_curve(true_positive, confidence, num_ground_truth):
    """Precision and recall at every distinct confidence threshold.

    Args:
        true_positive: bool array-like `(N,)`, one flag per detection
            (pooled over images), as given by `match_detections`. Leave out
            detections that matching flagged as ignored.
        confidence: float array-like `(N,)`.
        num_ground_truth: int >= 1. Number of ground-truth boxes to find
            (ignored boxes not counted).

    Returns:
        Tuple `(precision, recall, thresholds)` of float64 arrays of equal
        length, one entry per distinct confidence, ordered from the highest
        threshold (lowest recall) down. Empty when `N == 0`.

    Example:

    ```python
    precision, recall, thresholds = precision_recall_curve(
        [True, False, True], [0.9, 0.8, 0.7], num_ground_truth=4
    )
    # precision [1.0, 0.5, 0.667], recall [0.25, 0.25, 0.5]
    ```
    """
    true_positive = _inputs.to_array(true_positive, "true_positive", 1, bool)
    confidence = _inputs.to_array(confidence, "confidence", 1)
    if len(true_positive) != len(confidence):
        raise ValueError(
            "`true_positive` and `confidence` must have the same length. "
            f"Received: lengths {len(true_positive)} and {len(confidence)}"
        )
    if np.any(np.isnan(confidence)):
        raise ValueError("`confidence` must not contain NaN.")
    num_true = int(np.count_nonzero(true_positive))
    if (
        isinstance(num_ground_truth, bool)
        or not isinstance(num_ground_truth, int | np.integer)
        or num_ground_truth < max(1, num_true)
    ):
        raise ValueError(
            "`num_ground_truth` must be an integer >= 1 and >= the number "
            f"of true positives ({num_true}). "
            f"Received: num_ground_truth={num_ground_truth}"
        )
    order = np.argsort(-confidence, kind="mergesort")
    scores = confidence[order]
    true_sum = np.cumsum(true_positive[order]).astype(np.float64)
    false_sum = np.cumsum(~true_positive[order]).astype(np.float64)
    # The last detection of every run of equal confidence.
    last = np.append(scores[1:] != scores[:-1], True) if len(scores) else []
    true_sum, false_sum = true_sum[last], false_sum[last]
    precision = true_sum / (true_sum + false_sum)
    recall = true_sum / float(num_ground_truth)
    return precision, recall, scores[last]


def _check_curve(precision, recall):
    precision = _inputs.to_array(precision, "precision", 1)
    recall = _inputs.to_array(recall, "recall", 1)
    if len(precision) != len(recall):
        raise ValueError(
            "`precision` and `recall` must have the same length. "
            f"Received: lengths {len(precision)} and {len(recall)}"
        )
    for name, array in (("precision", precision), ("recall", recall)):
        if not np.all((array >= 0) & (array <= 1)):
            raise ValueError(
                f"`{name}` values must be in [0, 1] (no NaN). "
                f"Received: {name}={array}"
            )
    if np.any(np.diff(recall) < 0):
        raise ValueError(
            "`recall` must be non-decreasing (curve ordered from the "
            f"highest threshold down). Received: recall={recall}"
        )
    return precision, recall


def average_precision(precision, recall, method="voc"):
    """Average precision of a precision-recall curve.

    With `p_interp(r)` the best precision at recall `>= r` (0 past the last
    point): `"voc"` is the all-point interpolated area
    `sum_i (r_i - r_{i-1}) * p_interp(r_i)` over the curve's distinct
    recalls (`r_0 = 0`), as in the VOC 2010+ devkit; `"coco"` is the mean of
    `p_interp(r)` over the 101 recalls `0, 0.01, ..., 1`, as in pycocotools.

    Args:
        precision: array-like `(K,)`, as from `precision_recall_curve`.
        recall: array-like `(K,)`, non-decreasing.
        method: `"voc"` (all-point interpolated area) or `"coco"`
            (101-point interpolated). Defaults to `"voc"`.

    Returns:
        float in [0, 1].

    Example:

    ```python
    average_precision([1.0, 0.5, 2 / 3], [0.25, 0.25, 0.5])
    # 0.25 * 1.0 + 0.25 * (2 / 3) = 0.41667
    ```
    """
    _checks.check_choice("method", method, AP_METHODS)
    precision, recall = _check_curve(precision, recall)
    # Upper envelope: the best precision at this recall or any higher one.
    envelope = np.maximum.accumulate(precision[::-1])[::-1]
    if method == "coco":
        index = np.searchsorted(recall, COCO_RECALL_THRESHOLDS, side="left")
        reached = index < len(recall)
        values = np.zeros(len(COCO_RECALL_THRESHOLDS))
        values[reached] = envelope[index[reached]]
        return float(np.mean(values))
    # Points where recall grows carry the width of that recall step.
    steps = np.diff(np.concatenate([[0.0], recall]))
    return float(np.sum(steps * envelope))


def precision_recall_auc(precision, recall):
    """Area under the precision-recall curve, as the objectness paper uses.

    Defined as the all-point interpolated area under the curve's upper
    envelope, which equals `average_precision(..., method="voc")`.

    Args:
        precision: array-like `(K,)`, as from `precision_recall_curve`.
        recall: array-like `(K,)`, non-decreasing.

    Returns:
        float in [0, 1].

    Example:

    ```python
    precision_recall_auc([1.0, 0.5], [0.5, 0.5])  # 0.5
    ```
    """
    return average_precision(precision, recall, method="voc")
