"""Breakdown of top-ranked false positives into error types.

The LSDA paper (its Figure 5, after the analysis tool of Hoiem et al.) sorts
the false positives of a detector on a set of classes by confidence and
shows, for the top 25, 50, ..., 3200 of them, which fraction is of each
type. The types, checked in this order for each false positive of class `c`:

1. `"localization"`: the detection overlaps a ground-truth box of class `c`
   with IoU `>= localization_iou` (0.1) but was not matched to it: either
   the overlap is below `iou_threshold` (poorly placed box) or the box was
   already taken by a higher-scoring detection (a duplicate).
2. `"confusion"`: otherwise, it overlaps a ground-truth box of any *other*
   class with IoU `>= confusion_iou` (0.1): a (roughly) found object with
   the wrong label. Hoiem et al. split this into similar and other classes;
   the LSDA figure merges them as "Oth", and so do we.
3. `"background"`: everything else, a detection on no object.

True positives come from the VOC greedy per-class matching at
`iou_threshold` (see `keras_objectness.evaluation.matching`). Detections on
ground truth flagged in `y_true["ignore"]` (VOC difficult, COCO crowd) are,
as in `DetectionEvaluator`, no false positives. False
positives of all analysed classes are pooled and ranked by raw confidence
(ties broken by box coordinates), so confidences should be comparable across
classes; when fewer than `N` false positives exist, the top-`N` fractions
use all of them.
"""

import os

import numpy as np

from keras_objectness import _checks
from keras_objectness.evaluation import _inputs
from keras_objectness.evaluation.matching import detection_order
from keras_objectness.evaluation.matching import match_image

ERROR_TYPES = ("localization", "confusion", "background")
DEFAULT_FALSE_POSITIVE_COUNTS = (25, 50, 100, 200, 400, 800, 1600, 3200)

# Labels and colours of the LSDA figure's legend.
_PLOT_LABELS = {"localization": "Loc", "confusion": "Oth", "background": "BG"}
_PLOT_COLORS = {
    "localization": "#4c72b0",
    "confusion": "#55a868",
    "background": "#c44e52",
}


def _check_thresholds(iou_threshold, localization_iou, confusion_iou):
    iou_threshold = _checks.check_fraction("iou_threshold", iou_threshold)
    localization_iou = _checks.check_fraction(
        "localization_iou", localization_iou
    )
    confusion_iou = _checks.check_fraction("confusion_iou", confusion_iou)
    if localization_iou > iou_threshold:
        raise ValueError(
            "`localization_iou` must be <= iou_threshold="
            f"{iou_threshold}. Received: localization_iou={localization_iou}"
        )
    return iou_threshold, localization_iou, confusion_iou


def _classify_image(
    gt_boxes,
    gt_classes,
    gt_ignore,
    boxes,
    classes,
    confidence,
    analysed,
    iou_threshold,
    localization_iou,
    confusion_iou,
):
    """One image: `(keep, error_type)` for its detections.

    `keep` marks the false positives of analysed classes; `error_type` holds
    indices into `ERROR_TYPES` for those.
    """
    true_positive, ignored, _, iou = match_image(
        gt_boxes,
        boxes,
        confidence,
        gt_classes,
        classes,
        iou_threshold,
        "voc",
        gt_ignore,
    )
    keep = ~true_positive & ~ignored
    if analysed is not None:
        keep &= np.isin(classes, analysed)
    if len(gt_boxes) == 0:
        same_iou = other_iou = np.zeros(len(boxes))
    else:
        same = classes[:, None] == gt_classes[None, :]
        same_iou = np.max(np.where(same, iou, 0.0), axis=1)
        other_iou = np.max(np.where(same, 0.0, iou), axis=1)
    error_type = np.full(len(boxes), 2, dtype=np.int64)
    error_type[other_iou >= confusion_iou] = 1
    error_type[same_iou >= localization_iou] = 0
    return keep, error_type[keep]


def classify_false_positives(
    y_true,
    y_pred,
    classes=None,
    iou_threshold=0.5,
    localization_iou=0.1,
    confusion_iou=0.1,
    bounding_box_format="rel_yxyx",
    image_shape=None,
):
    """Finds the false positives of a batch and labels their error type.

    Args:
        y_true: dict with `"boxes"` `(batch, num_boxes, 4)` and `"classes"`
            `(batch, num_boxes)`, padded with class -1, and optionally
            `"ignore"` (bool, ground truth to ignore).
        y_pred: dict with `"boxes"`, `"classes"`, `"confidence"` and
            optionally `"num_detections"`, padded with -1.
        classes: optional sequence of class ids whose detections are
            analysed (for example the held-out classes). Ground truth of
            every class still counts for the "confusion" type. Defaults to
            `None` (all classes).
        iou_threshold: float in (0, 1]. IoU needed for a true positive.
            Defaults to `0.5`.
        localization_iou: float in (0, iou_threshold]. Least IoU with a box
            of the same class for a "localization" error. Defaults to `0.1`.
        confusion_iou: float in (0, 1]. Least IoU with a box of another
            class for a "confusion" error. Defaults to `0.1`.
        bounding_box_format: str. Keras box format of both dicts. Defaults
            to `"rel_yxyx"`.
        image_shape: optional `(height, width)`; only used to normalise
            absolute boxes. Defaults to `None`.

    Returns:
        A dict of arrays with one entry per false positive, sorted by
        descending confidence: `"confidence"` (float64), `"classes"`
        (int64), `"error_type"` (str, one of `ERROR_TYPES`) and
        `"image_index"` (int64, the image's row in the batch).

    Example:

    ```python
    y_true = {"boxes": np.array([[[0.0, 0.0, 0.4, 0.4]]]),
              "classes": np.array([[1]])}
    y_pred = {"boxes": np.array([[[0.0, 0.0, 0.4, 0.1]]]),
              "classes": np.array([[1]]),
              "confidence": np.array([[0.9]])}
    classify_false_positives(y_true, y_pred)["error_type"]
    # array(['localization'], dtype='<U12'): IoU 0.25 is in [0.1, 0.5)
    ```
    """
    thresholds = _check_thresholds(
        iou_threshold, localization_iou, confusion_iou
    )
    _checks.check_bounding_box_format(bounding_box_format)
    shape = _checks.check_image_shape(image_shape, integers=False)
    analysed = None
    if classes is not None:
        analysed = np.array(_checks.check_class_ids("classes", classes))
    return _classify_batch(
        y_true, y_pred, analysed, thresholds, bounding_box_format, shape
    )


def _classify_batch(
    y_true, y_pred, analysed, thresholds, bounding_box_format, image_shape
):
    ground_truth = _inputs.unpack_ground_truth(
        y_true, bounding_box_format, image_shape
    )
    detections = _inputs.unpack_detections(
        y_pred, bounding_box_format, image_shape, need_classes=True
    )
    _inputs.check_same_batch(ground_truth, detections)
    parts = {key: [] for key in ("confidence", "classes", "error", "image")}
    boxes_kept = []
    for index, (gt, (boxes, classes, scores)) in enumerate(
        zip(ground_truth, detections)
    ):
        keep, error = _classify_image(
            *gt, boxes, classes, scores, analysed, *thresholds
        )
        parts["confidence"].append(scores[keep])
        parts["classes"].append(classes[keep])
        parts["error"].append(error)
        parts["image"].append(np.full(len(error), index, dtype=np.int64))
        boxes_kept.append(boxes[keep])
    return _sorted_false_positives(
        {
            "confidence": _concat(parts["confidence"], np.float64),
            "classes": _concat(parts["classes"], np.int64),
            "error_type": np.array(ERROR_TYPES)[
                _concat(parts["error"], np.int64)
            ],
            "image_index": _concat(parts["image"], np.int64),
        },
        np.concatenate(boxes_kept + [np.zeros((0, 4))]),
    )


def _concat(arrays, dtype):
    return np.concatenate([np.zeros(0, dtype)] + list(arrays)).astype(dtype)


def _sorted_false_positives(false_positives, boxes):
    order = detection_order(
        false_positives["confidence"], boxes, false_positives["classes"]
    )
    return {key: value[order] for key, value in false_positives.items()}


def false_positive_breakdown(
    false_positives, counts=DEFAULT_FALSE_POSITIVE_COUNTS
):
    """Fraction of each error type among the top-`N` false positives.

    Args:
        false_positives: dict with `"error_type"` and `"confidence"` arrays,
            as returned by `classify_false_positives` (any order).
        counts: increasing sequence of positive ints `N`. Defaults to
            `(25, 50, 100, 200, 400, 800, 1600, 3200)` as in the LSDA paper.

    Returns:
        A dict: `"counts"` (int64 `(C,)`), `"num_considered"` (int64 `(C,)`,
        `min(N, number of false positives)`), one float64 `(C,)` array of
        fractions per name in `ERROR_TYPES` (they sum to 1; NaN when there
        are no false positives) and `"num_false_positives"` (int).

    Example:

    ```python
    false_positive_breakdown(
        {"error_type": np.array(["background", "localization"]),
         "confidence": np.array([0.9, 0.8])},
        counts=(1, 2),
    )["background"]  # array([1. , 0.5])
    ```
    """
    counts_tuple = tuple(counts) if counts is not None else ()
    if (
        not counts_tuple
        or not all(
            isinstance(n, int | np.integer) and not isinstance(n, bool)
            for n in counts_tuple
        )
        or min(counts_tuple) < 1
        or any(b <= a for a, b in zip(counts_tuple, counts_tuple[1:]))
    ):
        raise ValueError(
            "`counts` must be a non-empty increasing sequence of positive "
            f"integers. Received: counts={counts}"
        )
    if not hasattr(false_positives, "keys") or not {
        "error_type",
        "confidence",
    } <= set(false_positives.keys()):
        raise ValueError(
            "`false_positives` must be a dict with 'error_type' and "
            "'confidence' arrays (from `classify_false_positives`). "
            f"Received: {type(false_positives).__name__}"
        )
    error_type = np.asarray(false_positives["error_type"])
    confidence = _inputs.to_array(
        false_positives["confidence"], 'false_positives["confidence"]', 1
    )
    if error_type.shape != confidence.shape:
        raise ValueError(
            "`false_positives` arrays must have the same length. Received: "
            f"error_type shape {error_type.shape}, confidence shape "
            f"{confidence.shape}"
        )
    unknown = set(error_type.tolist()) - set(ERROR_TYPES)
    if unknown:
        raise ValueError(
            f"`error_type` values must be in {ERROR_TYPES}. "
            f"Received: {sorted(unknown)}"
        )
    ranked = error_type[np.argsort(-confidence, kind="mergesort")]
    counts_array = np.array(counts_tuple, dtype=np.int64)
    considered = np.minimum(counts_array, len(ranked))
    result = {"counts": counts_array, "num_considered": considered}
    for name in ERROR_TYPES:
        running = np.concatenate([[0], np.cumsum(ranked == name)])
        with np.errstate(invalid="ignore", divide="ignore"):
            result[name] = running[considered] / considered.astype(np.float64)
    result["num_false_positives"] = int(len(ranked))
    return result


class FalsePositiveAnalyzer:
    """Accumulates false positives over batches and breaks them down.

    The streaming form of `classify_false_positives` followed by
    `false_positive_breakdown`; see the module docstring for the error
    types.

    Args:
        classes: optional sequence of analysed class ids (for example a
            `ClassSplit`'s `heldout_classes`). Defaults to `None` (all).
        iou_threshold: float in (0, 1]. Defaults to `0.5`.
        localization_iou: float in (0, iou_threshold]. Defaults to `0.1`.
        confusion_iou: float in (0, 1]. Defaults to `0.1`.
        bounding_box_format: str. Defaults to `"rel_yxyx"`.
        image_shape: optional `(height, width)`. Defaults to `None`.
        counts: the top-`N` sizes. Defaults to
            `DEFAULT_FALSE_POSITIVE_COUNTS`.

    Call arguments of `update_state(y_true, y_pred)`: as for
    `classify_false_positives`.

    Returns (of `result()`):
        The dict of `false_positive_breakdown`, plus `"false_positives"`
        (the dict of `classify_false_positives` over every image seen, with
        `"image_index"` counting images since the last reset).

    Example:

    ```python
    analyzer = FalsePositiveAnalyzer(classes=(2, 3), counts=(25, 50))
    analyzer.update_state(y_true, y_pred)  # once per batch
    plot_false_positive_breakdown(analyzer.result(), "fp_heldout.png")
    ```

    References:
        - Hoffman et al., "LSDA: Large Scale Detection through Adaptation",
          NIPS 2014, Figure 5.
        - Hoiem et al., "Diagnosing Error in Object Detectors", ECCV 2012.
    """

    def __init__(
        self,
        classes=None,
        iou_threshold=0.5,
        localization_iou=0.1,
        confusion_iou=0.1,
        bounding_box_format="rel_yxyx",
        image_shape=None,
        counts=DEFAULT_FALSE_POSITIVE_COUNTS,
    ):
        self._thresholds = _check_thresholds(
            iou_threshold, localization_iou, confusion_iou
        )
        self.iou_threshold, self.localization_iou, self.confusion_iou = (
            self._thresholds
        )
        self.classes = None
        if classes is not None:
            self.classes = _checks.check_class_ids("classes", classes)
        self.bounding_box_format = _checks.check_bounding_box_format(
            bounding_box_format
        )
        self.image_shape = image_shape
        self._image_shape = _checks.check_image_shape(
            image_shape, integers=False
        )
        # Validates `counts` now rather than at the first `result()`.
        false_positive_breakdown(
            {"error_type": np.zeros(0, str), "confidence": np.zeros(0)},
            counts,
        )
        self.counts = tuple(int(n) for n in counts)
        self.reset_state()

    def reset_state(self):
        """Forgets every image seen so far."""
        self._batches = []
        self._num_images = 0

    def update_state(self, y_true, y_pred):
        """Classifies the false positives of one batch and stores them."""
        analysed = None if self.classes is None else np.array(self.classes)
        batch = _classify_batch(
            y_true,
            y_pred,
            analysed,
            self._thresholds,
            self.bounding_box_format,
            self._image_shape,
        )
        num_images = len(np.asarray(y_true["classes"]))
        batch["image_index"] = batch["image_index"] + self._num_images
        self._batches.append(batch)
        self._num_images += num_images

    def result(self):
        """Returns the breakdown over every image seen since the reset."""
        keys = ("confidence", "classes", "error_type", "image_index")
        if self._batches:
            pooled = {
                key: np.concatenate([b[key] for b in self._batches])
                for key in keys
            }
        else:
            pooled = {
                "confidence": np.zeros(0),
                "classes": np.zeros(0, np.int64),
                "error_type": np.zeros(0, "<U12"),
                "image_index": np.zeros(0, np.int64),
            }
        order = np.lexsort((pooled["classes"], -pooled["confidence"]))
        pooled = {key: value[order] for key, value in pooled.items()}
        result = false_positive_breakdown(pooled, self.counts)
        result["false_positives"] = pooled
        return result


def plot_false_positive_breakdown(breakdown, path, title=None):
    """Draws the stacked-area error breakdown (LSDA Figure 5) to a PNG.

    The x axis is the number of top-ranked false positives (log scale), the
    y axis the percentage of each error type, stacked to 100.

    Args:
        breakdown: dict from `false_positive_breakdown` or
            `FalsePositiveAnalyzer.result()`.
        path: str or path-like. Where to write the PNG; missing parent
            folders are created.
        title: optional str. Defaults to `None`.

    Returns:
        The path written, as a str.

    Example:

    ```python
    plot_false_positive_breakdown(analyzer.result(), "fp.png", "Held-out")
    ```
    """
    # Figure + Agg canvas directly: no pyplot state, no backend switching.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    needed = ("counts",) + ERROR_TYPES
    if not hasattr(breakdown, "keys") or not set(needed) <= set(breakdown):
        raise ValueError(
            f"`breakdown` must be a dict with keys {needed} (from "
            "`false_positive_breakdown`). Received: "
            f"{sorted(breakdown) if hasattr(breakdown, 'keys') else breakdown}"
        )
    counts = np.asarray(breakdown["counts"], dtype=np.float64)
    fractions = [
        np.nan_to_num(np.asarray(breakdown[name], dtype=np.float64))
        for name in ERROR_TYPES
    ]
    path = os.fspath(path)
    folder = os.path.dirname(path)
    if folder:
        os.makedirs(folder, exist_ok=True)
    figure = Figure(figsize=(4.0, 3.2), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot(1, 1, 1)
    axes.stackplot(
        counts,
        *[100.0 * f for f in fractions],
        labels=[_PLOT_LABELS[name] for name in ERROR_TYPES],
        colors=[_PLOT_COLORS[name] for name in ERROR_TYPES],
    )
    axes.set_xscale("log", base=2)
    axes.set_xticks(counts)
    axes.set_xticklabels([str(int(n)) for n in counts], fontsize=7)
    axes.set_xlim(counts[0], counts[-1] if len(counts) > 1 else counts[0] + 1)
    axes.set_ylim(0, 100)
    axes.set_xlabel("total false positives")
    axes.set_ylabel("percentage of each type")
    axes.legend(loc="lower left", fontsize=7)
    if title:
        axes.set_title(title)
    figure.tight_layout()
    figure.savefig(path, format="png")
    return path
