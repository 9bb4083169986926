"""`DetectionEvaluator`: AP and mAP accumulated over batches of images."""

import numpy as np

from keras_objectness import _checks
from keras_objectness.evaluation import _inputs
from keras_objectness.evaluation.average_precision import AP_METHODS
from keras_objectness.evaluation.average_precision import average_precision
from keras_objectness.evaluation.average_precision import precision_recall_curve
from keras_objectness.evaluation.matching import match_image

OTHER_GROUND_TRUTH_RULES = ("ignore", "background", "skip_image")
IGNORED_OVERLAPS = ("iou", "detection_area")


class DetectionEvaluator:
    """Accumulates matched detections over batches and reports AP.

    Two modes:

    * **Class-generic** (`num_classes=None`): detections are boxes with a
      confidence and no class (a `"classes"` entry, if present, only marks
      padding). Every ground-truth box is an object to find, whatever its
      class. The result holds one precision-recall curve, its AP and its
      AUC. `ground_truth_classes` restricts the objects to find to some
      classes, as the objectness paper does when it scores a detector on
      held-out classes only; `other_ground_truth` says what happens to the
      other boxes.
    * **Per-class** (`num_classes` set): detections carry a class id in
      `[0, num_classes)` and match only boxes of that class. The result
      holds one AP per class, the mean over all classes, and, with
      `detection_classes`, the means over the trained classes B and over
      the held-out classes A.

    Matching and AP follow `method`: `"voc"` uses the VOC devkit matching
    rule and the all-point interpolated AP; `"coco"` uses the pycocotools
    matching rule and the 101-point interpolated AP (with a single IoU
    threshold, all box sizes and no cap on detections per image, this is
    what `COCOeval` reports for one IoU threshold). See
    `keras_objectness.evaluation.average_precision` and
    `keras_objectness.evaluation.matching` for the definitions.

    Ignored ground truth: `y_true` may carry `"ignore"` (bool, the shape of
    `"classes"`), as `keras_objectness.data.keras_cv_dataset` writes it from
    VOC's `is_difficult` and COCO's `is_crowd`. A flagged box is never an
    object to find (not counted in `num_ground_truth`), and a detection
    that matches no other box but overlaps a flagged one of its class (VOC
    rule: whose most-overlapping box is flagged) is left out, neither true
    nor false positive. That is the VOC devkit's rule for difficult objects
    and pycocotools' for crowd regions; with `method="coco"` the overlap
    with a flagged box is, as in pycocotools, the share of the detection
    inside it rather than IoU (`ignored_overlap`).

    A class with no ground-truth box in the evaluated images has no AP
    (NaN in `"average_precision"`) and is left out of every mean; a class
    with boxes but no detections has AP 0 and counts. A mean over no class
    is NaN.

    Args:
        num_classes: int or `None`. Number of object classes (background
            not counted). `None` selects class-generic evaluation. Defaults
            to `None`.
        detection_classes: the trained classes B, as a sequence of class ids
            or an object with `detection_classes` and `heldout_classes`
            attributes (such as a `ClassSplit`); the held-out classes A are
            the rest of `range(num_classes)`. Needs `num_classes` (taken
            from the object's `num_classes` attribute when not given).
            Defaults to `None` (no split).
        iou_threshold: float in (0, 1]. A detection matches a box when their
            IoU is `>=` this. Defaults to `0.5`.
        bounding_box_format: str. Keras box format of both `y_true` and
            `y_pred` boxes. Defaults to `"rel_yxyx"`.
        image_shape: optional `(height, width)`, used to normalise absolute
            boxes. IoU is unchanged by the normalisation, so it may be left
            `None`. Defaults to `None`.
        method: `"voc"` or `"coco"`. Defaults to `"voc"`.
        ground_truth_classes: optional sequence of class ids (class-generic
            mode only). Only ground-truth boxes of these classes are objects
            to find. Defaults to `None` (all boxes).
        other_ground_truth: what to do with ground-truth boxes of other
            classes when `ground_truth_classes` is set. `"ignore"`: a
            detection on such a box (IoU `>= iou_threshold`, and no match
            with a box to find) counts neither way, since finding an object
            is not an error of an objectness detector. `"background"`: the
            boxes are dropped, so detections on them are false positives.
            `"skip_image"`: only images whose ground truth is non-empty and
            entirely of `ground_truth_classes` are evaluated (the paper's
            held-out validation set); other images are skipped entirely.
            Defaults to `"ignore"`.
        ignored_overlap: how a detection's overlap with a box flagged in
            `y_true["ignore"]` is measured: `"iou"` (VOC difficult objects)
            or `"detection_area"`, intersection over the detection's area
            (COCO crowd regions). Defaults to `None`: `"iou"` for
            `method="voc"`, `"detection_area"` for `method="coco"`.

    Call arguments of `update_state(y_true, y_pred)`:
        y_true: dict with `"boxes"` `(batch, num_boxes, 4)` and `"classes"`
            `(batch, num_boxes)`, padded with class -1, and optionally
            `"ignore"` (bool `(batch, num_boxes)`, ground truth to ignore).
            Numpy arrays or tensors.
        y_pred: dict with `"boxes"` `(batch, max_detections, 4)`,
            `"confidence"` `(batch, max_detections)`, `"classes"` (needed in
            per-class mode) and optionally `"num_detections"` `(batch,)`,
            padded with -1 (see `_inputs` for the exact padding rule).

    Returns (of `result()`):
        Class-generic mode, a dict with `"average_precision"` (float, by
        `method`), `"auc"` (float, all-point interpolated area),
        `"precision"`, `"recall"`, `"thresholds"` (float64 arrays, the
        curve), `"num_ground_truth"`, `"num_detections"` (ints; detections
        flagged ignored are not counted) and `"num_images"`.
        Per-class mode, a dict with `"average_precision"` (float64
        `(num_classes,)`, NaN for classes without ground truth),
        `"mean_average_precision"`, and with a split
        `"mean_average_precision_trained"` (over B) and
        `"mean_average_precision_heldout"` (over A); `"precision"`,
        `"recall"`, `"thresholds"` (tuples of one array per class, empty for
        classes without ground truth); `"num_ground_truth"`,
        `"num_detections"` (int64 `(num_classes,)`) and `"num_images"`.
        AP values are NaN where undefined (no ground truth).

    Example:

    ```python
    evaluator = DetectionEvaluator(num_classes=3, detection_classes=(0, 1))
    y_true = {"boxes": np.array([[[0.1, 0.1, 0.5, 0.5]]]),
              "classes": np.array([[2]])}
    y_pred = {"boxes": np.array([[[0.1, 0.1, 0.5, 0.5]]]),
              "classes": np.array([[2]]),
              "confidence": np.array([[0.9]])}
    evaluator.update_state(y_true, y_pred)
    evaluator.result()["mean_average_precision_heldout"]  # 1.0
    ```

    References:
        - Everingham et al., "The PASCAL Visual Object Classes Challenge"
          (devkit, VOC 2010+ AP).
        - Lin et al., "Microsoft COCO: Common Objects in Context"
          (pycocotools AP).
    """

    def __init__(
        self,
        num_classes=None,
        detection_classes=None,
        iou_threshold=0.5,
        bounding_box_format="rel_yxyx",
        image_shape=None,
        method="voc",
        ground_truth_classes=None,
        other_ground_truth="ignore",
        ignored_overlap=None,
    ):
        split_classes = None
        if detection_classes is not None and hasattr(
            detection_classes, "heldout_classes"
        ):
            split_classes = detection_classes
            split_num_classes = getattr(split_classes, "num_classes", None)
            if num_classes is None:
                num_classes = split_num_classes
            elif (
                split_num_classes is not None
                and split_num_classes != num_classes
            ):
                raise ValueError(
                    "`num_classes` must agree with the class split's "
                    f"num_classes={split_num_classes}. "
                    f"Received: num_classes={num_classes}"
                )
            detection_classes = split_classes.detection_classes
        self.num_classes = _checks.check_int(
            "num_classes", num_classes, allow_none=True
        )
        if detection_classes is not None:
            if self.num_classes is None:
                raise ValueError(
                    "`detection_classes` needs `num_classes` (per-class "
                    "evaluation). Received: num_classes=None, "
                    f"detection_classes={detection_classes}"
                )
            detection_classes = _checks.check_class_ids(
                "detection_classes", detection_classes, self.num_classes
            )
        self.detection_classes = detection_classes
        self.heldout_classes = None
        if detection_classes is not None:
            self.heldout_classes = tuple(
                c for c in range(self.num_classes) if c not in detection_classes
            )
            if (
                split_classes is not None
                and tuple(split_classes.heldout_classes) != self.heldout_classes
            ):
                raise ValueError(
                    "The class split's `heldout_classes` must be the classes "
                    "of range(num_classes) not in `detection_classes`. "
                    f"Received: heldout_classes="
                    f"{tuple(split_classes.heldout_classes)}"
                )
        self.iou_threshold = _checks.check_fraction(
            "iou_threshold", iou_threshold
        )
        self.bounding_box_format = _checks.check_bounding_box_format(
            bounding_box_format
        )
        self.image_shape = image_shape
        self._image_shape = _checks.check_image_shape(
            image_shape, integers=False
        )
        self.method = _checks.check_choice("method", method, AP_METHODS)
        if ground_truth_classes is not None:
            if self.num_classes is not None:
                raise ValueError(
                    "`ground_truth_classes` is for class-generic evaluation "
                    "(num_classes=None); per-class results already come per "
                    f"class. Received: num_classes={self.num_classes}, "
                    f"ground_truth_classes={ground_truth_classes}"
                )
            ground_truth_classes = _checks.check_class_ids(
                "ground_truth_classes", ground_truth_classes
            )
        self.ground_truth_classes = ground_truth_classes
        self.other_ground_truth = _checks.check_choice(
            "other_ground_truth", other_ground_truth, OTHER_GROUND_TRUTH_RULES
        )
        if ignored_overlap is not None:
            _checks.check_choice(
                "ignored_overlap", ignored_overlap, IGNORED_OVERLAPS
            )
        self.ignored_overlap = ignored_overlap
        self._crowd_overlap = (
            ignored_overlap == "detection_area"
            if ignored_overlap is not None
            else self.method == "coco"
        )
        self.reset_state()

    def reset_state(self):
        """Forgets every image seen so far."""
        self._true_positive = []
        self._confidence = []
        self._classes = []
        size = 1 if self.num_classes is None else self.num_classes
        self._num_ground_truth = np.zeros(size, dtype=np.int64)
        self._num_images = 0

    def update_state(self, y_true, y_pred):
        """Matches one batch of detections and stores the outcome.

        Args:
            y_true: padded ground-truth dict (see the class docstring).
            y_pred: padded detection dict (see the class docstring).
        """
        per_class = self.num_classes is not None
        ground_truth = _inputs.unpack_ground_truth(
            y_true, self.bounding_box_format, self._image_shape
        )
        detections = _inputs.unpack_detections(
            y_pred, self.bounding_box_format, self._image_shape, per_class
        )
        _inputs.check_same_batch(ground_truth, detections)
        if per_class:
            for name, classes in (
                ('y_true["classes"]', [c for _, c, _ in ground_truth]),
                ('y_pred["classes"]', [c for _, c, _ in detections]),
            ):
                classes = np.concatenate(classes + [np.zeros(0, np.int64)])
                if np.any(classes >= self.num_classes):
                    raise ValueError(
                        f"`{name}` must be below num_classes="
                        f"{self.num_classes} (or -1 for padding). "
                        f"Received: class {int(classes.max())}"
                    )
        # Check the whole batch before storing any of it.
        outcomes = [
            self._match(gt, det) for gt, det in zip(ground_truth, detections)
        ]
        for outcome in outcomes:
            if outcome is None:
                continue
            true_positive, confidence, classes, num_ground_truth = outcome
            self._true_positive.append(true_positive)
            self._confidence.append(confidence)
            self._classes.append(classes)
            self._num_ground_truth += num_ground_truth
            self._num_images += 1

    def _match(self, ground_truth, detections):
        """One image: returns the counted detections' outcome, or `None`."""
        gt_boxes, gt_classes, flagged = ground_truth
        boxes, classes, confidence = detections
        ignore = np.zeros(len(gt_boxes), dtype=bool)
        if self.num_classes is None:
            if self.ground_truth_classes is not None:
                chosen = np.isin(gt_classes, self.ground_truth_classes)
                if self.other_ground_truth == "skip_image":
                    if len(gt_classes) == 0 or not np.all(chosen):
                        return None
                elif self.other_ground_truth == "background":
                    gt_boxes = gt_boxes[chosen]
                    ignore = ignore[chosen]
                    flagged = flagged[chosen]
                else:
                    ignore = ~chosen
            match_gt_classes = match_det_classes = None
            classes = np.zeros(len(boxes), dtype=np.int64)
            num_ground_truth = np.array([np.count_nonzero(~ignore & ~flagged)])
        else:
            match_gt_classes, match_det_classes = gt_classes, classes
            num_ground_truth = np.bincount(
                gt_classes[~flagged], minlength=self.num_classes
            )
        crowd = None
        if self._crowd_overlap:
            crowd = flagged
        else:
            ignore = ignore | flagged
        true_positive, ignored, _, _ = match_image(
            gt_boxes,
            boxes,
            confidence,
            match_gt_classes,
            match_det_classes,
            self.iou_threshold,
            self.method,
            ignore,
            crowd,
        )
        keep = ~ignored
        return (
            true_positive[keep],
            confidence[keep],
            classes[keep],
            num_ground_truth,
        )

    def _curve(self, true_positive, confidence, num_ground_truth):
        if num_ground_truth == 0:
            empty = np.zeros(0)
            return np.nan, np.nan, (empty, empty, empty)
        curve = precision_recall_curve(
            true_positive, confidence, int(num_ground_truth)
        )
        ap = average_precision(curve[0], curve[1], method=self.method)
        auc = average_precision(curve[0], curve[1], method="voc")
        return ap, auc, curve

    def result(self):
        """Returns the AP results for every image seen since the reset.

        Returns:
            A dict; see the class docstring for its keys.
        """
        if self._confidence:
            true_positive = np.concatenate(self._true_positive)
            confidence = np.concatenate(self._confidence)
            classes = np.concatenate(self._classes)
        else:
            true_positive = np.zeros(0, dtype=bool)
            confidence = np.zeros(0)
            classes = np.zeros(0, dtype=np.int64)
        if self.num_classes is None:
            ap, auc, (precision, recall, thresholds) = self._curve(
                true_positive, confidence, self._num_ground_truth[0]
            )
            return {
                "average_precision": ap,
                "auc": auc,
                "precision": precision,
                "recall": recall,
                "thresholds": thresholds,
                "num_ground_truth": int(self._num_ground_truth[0]),
                "num_detections": int(len(confidence)),
                "num_images": self._num_images,
            }
        aps = np.full(self.num_classes, np.nan)
        curves = []
        for c in range(self.num_classes):
            mine = classes == c
            ap, _, curve = self._curve(
                true_positive[mine],
                confidence[mine],
                self._num_ground_truth[c],
            )
            aps[c] = ap
            curves.append(curve)
        result = {
            "average_precision": aps,
            "mean_average_precision": _mean(aps),
        }
        if self.detection_classes is not None:
            result["mean_average_precision_trained"] = _mean(
                aps[list(self.detection_classes)]
            )
            result["mean_average_precision_heldout"] = _mean(
                aps[list(self.heldout_classes)]
            )
        result.update(
            {
                "precision": tuple(c[0] for c in curves),
                "recall": tuple(c[1] for c in curves),
                "thresholds": tuple(c[2] for c in curves),
                "num_ground_truth": self._num_ground_truth.copy(),
                "num_detections": np.bincount(
                    classes, minlength=self.num_classes
                ).astype(np.int64),
                "num_images": self._num_images,
            }
        )
        return result

    def get_config(self):
        """Constructor arguments, for reports and `from_config`."""
        return {
            "num_classes": self.num_classes,
            "detection_classes": self.detection_classes,
            "iou_threshold": self.iou_threshold,
            "bounding_box_format": self.bounding_box_format,
            "image_shape": None
            if self.image_shape is None
            else tuple(self.image_shape),
            "method": self.method,
            "ground_truth_classes": self.ground_truth_classes,
            "other_ground_truth": self.other_ground_truth,
            "ignored_overlap": self.ignored_overlap,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def _mean(values):
    """Mean over the defined (non-NaN) values; NaN when there are none."""
    defined = values[~np.isnan(values)]
    return float(np.mean(defined)) if len(defined) else float("nan")
