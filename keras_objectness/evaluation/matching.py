"""Greedy matching of detections to ground-truth boxes in one image.

Two greedy rules are offered; both visit detections from the highest
confidence down and let each ground-truth box be matched at most once:

* `matching="voc"` (the PASCAL VOC devkit rule): a detection looks only at
  the ground-truth box it overlaps most. If that IoU is `>= iou_threshold`
  and the box is still free, the detection is a true positive and takes it;
  if the box is already taken the detection is a false positive (a
  duplicate), even when another free box also overlaps it enough.
* `matching="coco"` (the pycocotools rule): a detection takes the free
  ground-truth box of highest IoU among those with IoU `>= iou_threshold`.

Ties in confidence are broken by the box coordinates and then the class, so
the result never depends on the order in which detections are listed.

Ground-truth boxes can be marked as *ignored* (for example objects of
classes left out of an evaluation). A detection that is not a true positive
but overlaps an ignored box by `>= iou_threshold` (under the VOC rule: whose
most-overlapping box is ignored) is flagged `ignored`: it counts neither as a
true nor as a false positive. Ignored boxes may absorb any number of
detections and never count as objects to find. This is the VOC devkit's
rule for "difficult" objects. COCO crowd regions (`ground_truth_crowd`) are
ignored boxes whose overlap with a detection is measured as pycocotools
does for `iscrowd`: the share of the detection's area inside the region
(intersection over the detection's area), not IoU.

With classes given, a detection can only match boxes of its own class; with
`None`, matching is class-generic.
"""

import numpy as np

from keras_objectness import _checks
from keras_objectness.evaluation import _inputs

MATCHING_RULES = ("voc", "coco")


def iou_yxyx(boxes1, boxes2):
    """IoU matrix `[len(boxes1), len(boxes2)]` of `yxyx` corner boxes.

    Boxes of zero area have IoU 0 with everything (no division by zero).
    """
    boxes1 = np.asarray(boxes1, dtype=np.float64)
    boxes2 = np.asarray(boxes2, dtype=np.float64)
    top = np.maximum(boxes1[:, None, 0], boxes2[None, :, 0])
    left = np.maximum(boxes1[:, None, 1], boxes2[None, :, 1])
    bottom = np.minimum(boxes1[:, None, 2], boxes2[None, :, 2])
    right = np.minimum(boxes1[:, None, 3], boxes2[None, :, 3])
    intersection = np.clip(bottom - top, 0, None) * np.clip(
        right - left, 0, None
    )
    area1 = np.clip(boxes1[:, 2] - boxes1[:, 0], 0, None) * np.clip(
        boxes1[:, 3] - boxes1[:, 1], 0, None
    )
    area2 = np.clip(boxes2[:, 2] - boxes2[:, 0], 0, None) * np.clip(
        boxes2[:, 3] - boxes2[:, 1], 0, None
    )
    union = area1[:, None] + area2[None, :] - intersection
    safe_union = np.where(union > 0, union, 1.0)
    return np.where(union > 0, intersection / safe_union, 0.0)


def detection_order(confidence, corners, classes=None):
    """Indices that sort detections by descending confidence.

    Ties are broken by the `yxyx` corners, then the class, so that the order
    is a function of the detections' values only.
    """
    keys = [corners[:, 3], corners[:, 2], corners[:, 1], corners[:, 0]]
    if classes is not None:
        keys.insert(0, classes)
    return np.lexsort(keys + [-np.asarray(confidence, dtype=np.float64)])


def intersection_over_first(boxes1, boxes2):
    """`[len(boxes1), len(boxes2)]` share of each `boxes1` area inside each
    `boxes2` box (`yxyx` corners); 0 for boxes of zero area."""
    boxes1 = np.asarray(boxes1, dtype=np.float64)
    boxes2 = np.asarray(boxes2, dtype=np.float64)
    top = np.maximum(boxes1[:, None, 0], boxes2[None, :, 0])
    left = np.maximum(boxes1[:, None, 1], boxes2[None, :, 1])
    bottom = np.minimum(boxes1[:, None, 2], boxes2[None, :, 2])
    right = np.minimum(boxes1[:, None, 3], boxes2[None, :, 3])
    intersection = np.clip(bottom - top, 0, None) * np.clip(
        right - left, 0, None
    )
    area = np.clip(boxes1[:, 2] - boxes1[:, 0], 0, None) * np.clip(
        boxes1[:, 3] - boxes1[:, 1], 0, None
    )
    safe_area = np.where(area > 0, area, 1.0)[:, None]
    return np.where(area[:, None] > 0, intersection / safe_area, 0.0)


def match_image(
    ground_truth_corners,
    detection_corners,
    confidence,
    ground_truth_classes=None,
    detection_classes=None,
    iou_threshold=0.5,
    matching="voc",
    ground_truth_ignore=None,
    ground_truth_crowd=None,
):
    """Matching on already checked `yxyx` arrays (no argument checks).

    Returns `(true_positive, ignored, ground_truth_index, iou)` where `iou`
    is the full `[num_detections, num_ground_truth]` IoU matrix (for crowd
    columns: the overlap used, intersection over the detection's area).
    """
    num_detections = len(detection_corners)
    num_ground_truth = len(ground_truth_corners)
    iou = iou_yxyx(detection_corners, ground_truth_corners)
    if ground_truth_crowd is not None and np.any(ground_truth_crowd):
        ground_truth_crowd = np.asarray(ground_truth_crowd, dtype=bool)
        share = intersection_over_first(
            detection_corners, ground_truth_corners[ground_truth_crowd]
        )
        iou[:, ground_truth_crowd] = share
        if ground_truth_ignore is None:
            ground_truth_ignore = ground_truth_crowd
        else:
            ground_truth_ignore = (
                np.asarray(ground_truth_ignore, bool) | ground_truth_crowd
            )
    true_positive = np.zeros(num_detections, dtype=bool)
    ignored = np.zeros(num_detections, dtype=bool)
    ground_truth_index = np.full(num_detections, -1, dtype=np.int64)
    if num_detections == 0 or num_ground_truth == 0:
        return true_positive, ignored, ground_truth_index, iou
    if ground_truth_ignore is None:
        ground_truth_ignore = np.zeros(num_ground_truth, dtype=bool)
    # -1 marks pairs that may never match (different classes).
    candidate_iou = iou
    if ground_truth_classes is not None and detection_classes is not None:
        same_class = detection_classes[:, None] == ground_truth_classes[None, :]
        candidate_iou = np.where(same_class, iou, -1.0)
    taken = np.zeros(num_ground_truth, dtype=bool)
    order = detection_order(confidence, detection_corners, detection_classes)
    for d in order:
        row = candidate_iou[d]
        if matching == "voc":
            j = int(np.argmax(row))
            if row[j] < iou_threshold:
                continue
            if ground_truth_ignore[j]:
                ignored[d] = True
            elif not taken[j]:
                taken[j] = True
                true_positive[d] = True
                ground_truth_index[d] = j
        else:
            free = np.where(taken | ground_truth_ignore, -1.0, row)
            j = int(np.argmax(free))
            if free[j] >= iou_threshold:
                taken[j] = True
                true_positive[d] = True
                ground_truth_index[d] = j
            elif np.any(row[ground_truth_ignore] >= iou_threshold):
                ignored[d] = True
    return true_positive, ignored, ground_truth_index, iou


def compute_iou(
    boxes1, boxes2, bounding_box_format="rel_yxyx", image_shape=None
):
    """Intersection over union of every pair of boxes.

    Args:
        boxes1: array-like of shape `(N, 4)`.
        boxes2: array-like of shape `(M, 4)`, same format as `boxes1`.
        bounding_box_format: str. A Keras box format name, such as
            `"rel_yxyx"` or `"xywh"`. Defaults to `"rel_yxyx"`.
        image_shape: optional `(height, width)`. Only used to normalise
            absolute boxes; IoU does not depend on it. Defaults to `None`.

    Returns:
        float64 array of shape `(N, M)`. A pair whose union is empty has
        IoU 0.

    Example:

    ```python
    compute_iou([[0, 0, 2, 2]], [[1, 0, 3, 2]], bounding_box_format="xyxy")
    # array([[0.33333333]])
    ```
    """
    _checks.check_bounding_box_format(bounding_box_format)
    image_shape = _checks.check_image_shape(image_shape, integers=False)
    corners = []
    for name, boxes in (("boxes1", boxes1), ("boxes2", boxes2)):
        array = _inputs.to_array(boxes, name, 2)
        if array.shape[-1] != 4:
            raise ValueError(
                f"`{name}` must have shape (num_boxes, 4). "
                f"Received: {name} with shape {array.shape}"
            )
        corners.append(
            _inputs.boxes_to_yxyx(array, bounding_box_format, image_shape)
        )
        if not np.all(np.isfinite(corners[-1])):
            raise ValueError(f"`{name}` must not contain NaN or inf.")
    return iou_yxyx(*corners)


def match_detections(
    ground_truth_boxes,
    detection_boxes,
    detection_confidence,
    ground_truth_classes=None,
    detection_classes=None,
    iou_threshold=0.5,
    matching="voc",
    ground_truth_ignore=None,
    bounding_box_format="rel_yxyx",
    image_shape=None,
    ground_truth_crowd=None,
):
    """Greedily matches one image's detections to its ground truth.

    See the module docstring for the two rules. Inputs are unpadded: every
    row is a real box.

    Args:
        ground_truth_boxes: array-like `(M, 4)`.
        detection_boxes: array-like `(N, 4)`.
        detection_confidence: array-like `(N,)`. Higher is more confident.
        ground_truth_classes: optional int array-like `(M,)`. Give it
            together with `detection_classes` for per-class matching; leave
            both `None` for class-generic matching. Defaults to `None`.
        detection_classes: optional int array-like `(N,)`. Defaults to
            `None`.
        iou_threshold: float in (0, 1]. A match needs IoU `>=` this.
            Defaults to `0.5`.
        matching: `"voc"` or `"coco"`. Defaults to `"voc"`.
        ground_truth_ignore: optional bool array-like `(M,)` marking boxes
            that are neither to be found nor to be penalised. Defaults to
            `None` (nothing ignored).
        bounding_box_format: str. Keras box format of both box arrays.
            Defaults to `"rel_yxyx"`.
        image_shape: optional `(height, width)`; only used to normalise
            absolute boxes. Defaults to `None`.
        ground_truth_crowd: optional bool array-like `(M,)` marking COCO
            crowd regions: ignored like `ground_truth_ignore`, with the
            overlap measured as the share of the detection inside the
            region (pycocotools' `iscrowd` rule). Defaults to `None`.

    Returns:
        A dict of arrays aligned with the detections as given:
        `"true_positive"` (bool `(N,)`), `"ignored"` (bool `(N,)`) and
        `"ground_truth_index"` (int64 `(N,)`, the matched row of the ground
        truth or -1).

    Example:

    ```python
    result = match_detections(
        ground_truth_boxes=[[0.0, 0.0, 0.5, 0.5]],
        detection_boxes=[[0.0, 0.0, 0.5, 0.5], [0.0, 0.0, 0.5, 0.45]],
        detection_confidence=[0.6, 0.9],
    )
    result["true_positive"]  # array([False,  True]): the 0.9 box came first
    ```
    """
    iou_threshold = _checks.check_fraction("iou_threshold", iou_threshold)
    _checks.check_choice("matching", matching, MATCHING_RULES)
    _checks.check_bounding_box_format(bounding_box_format)
    image_shape = _checks.check_image_shape(image_shape, integers=False)
    if (ground_truth_classes is None) != (detection_classes is None):
        raise ValueError(
            "`ground_truth_classes` and `detection_classes` must be given "
            "together (per-class matching) or both be None (class-generic). "
            f"Received: ground_truth_classes is "
            f"{'None' if ground_truth_classes is None else 'set'}, "
            f"detection_classes is "
            f"{'None' if detection_classes is None else 'set'}"
        )
    gt = _inputs.to_array(ground_truth_boxes, "ground_truth_boxes", 2)
    det = _inputs.to_array(detection_boxes, "detection_boxes", 2)
    confidence = _inputs.to_array(
        detection_confidence, "detection_confidence", 1
    )
    for name, array in (("ground_truth_boxes", gt), ("detection_boxes", det)):
        if array.shape[-1] != 4:
            raise ValueError(
                f"`{name}` must have shape (num_boxes, 4). "
                f"Received: {name} with shape {array.shape}"
            )
    if len(confidence) != len(det):
        raise ValueError(
            "`detection_confidence` must have one entry per detection box. "
            f"Received: {len(confidence)} confidences for {len(det)} boxes"
        )
    if np.any(np.isnan(confidence)):
        raise ValueError("`detection_confidence` must not contain NaN.")
    gt = _inputs.boxes_to_yxyx(gt, bounding_box_format, image_shape)
    det = _inputs.boxes_to_yxyx(det, bounding_box_format, image_shape)
    _inputs.check_boxes(gt, "ground_truth_boxes")
    _inputs.check_boxes(det, "detection_boxes")
    gt_classes = det_classes = None
    if ground_truth_classes is not None:
        gt_classes = _inputs.to_array(
            ground_truth_classes, "ground_truth_classes", 1, np.int64
        )
        det_classes = _inputs.to_array(
            detection_classes, "detection_classes", 1, np.int64
        )
        if len(gt_classes) != len(gt) or len(det_classes) != len(det):
            raise ValueError(
                "`ground_truth_classes` and `detection_classes` must have "
                "one entry per box. Received: "
                f"{len(gt_classes)} classes for {len(gt)} ground-truth "
                f"boxes, {len(det_classes)} for {len(det)} detections"
            )
    flags = {}
    for name, value in (
        ("ground_truth_ignore", ground_truth_ignore),
        ("ground_truth_crowd", ground_truth_crowd),
    ):
        flags[name] = None
        if value is not None:
            flags[name] = _inputs.to_array(value, name, 1, bool)
            if len(flags[name]) != len(gt):
                raise ValueError(
                    f"`{name}` must have one entry per ground-truth box. "
                    f"Received: {len(flags[name])} entries for {len(gt)} "
                    "boxes"
                )
    true_positive, ignored, index, _ = match_image(
        gt,
        det,
        confidence,
        gt_classes,
        det_classes,
        iou_threshold,
        matching,
        flags["ground_truth_ignore"],
        flags["ground_truth_crowd"],
    )
    return {
        "true_positive": true_positive,
        "ignored": ignored,
        "ground_truth_index": index,
    }
