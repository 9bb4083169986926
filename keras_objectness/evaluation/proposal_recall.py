"""Recall of a set of region proposals: the share of objects they cover."""

import numpy as np

from keras_objectness import _checks
from keras_objectness.evaluation import _inputs
from keras_objectness.evaluation.matching import iou_yxyx


def proposal_recall(
    proposals,
    ground_truth,
    iou_threshold=0.5,
    bounding_box_format="rel_yxyx",
    image_shape=None,
):
    """Share of ground-truth boxes that some proposal covers.

    A ground-truth box is covered when at least one proposal of its image
    overlaps it with IoU `>= iou_threshold`. Proposals are class-generic
    and any number of them may cover the same box (this is the recall of a
    proposal method, not of a detector: no matching, no confidence).
    Ground truth flagged in `ground_truth["ignore"]` (VOC difficult, COCO
    crowd) is not counted.

    Args:
        proposals: float array-like `(batch, num_proposals, 4)`, rows of all
            `-1` being padding; or a detections dict with `"boxes"` (and
            optionally `"num_detections"` or `"classes"`, which then mark
            padding as in `DetectionEvaluator`).
        ground_truth: dict with `"boxes"` `(batch, num_boxes, 4)`,
            `"classes"` `(batch, num_boxes)` padded with class -1, and
            optionally `"ignore"` (bool `(batch, num_boxes)`).
        iou_threshold: float in (0, 1]. Defaults to `0.5`.
        bounding_box_format: str. Keras box format of both inputs. Defaults
            to `"rel_yxyx"`.
        image_shape: optional `(height, width)`; only used to normalise
            absolute boxes. Defaults to `None`.

    Returns:
        float in `[0, 1]`; NaN when there is no ground-truth box to cover.

    Example:

    ```python
    proposals = np.array([[[0.0, 0.0, 0.5, 0.5], [-1, -1, -1, -1]]])
    ground_truth = {"boxes": np.array([[[0.0, 0.0, 0.5, 0.45],
                                        [0.5, 0.5, 1.0, 1.0]]]),
                    "classes": np.array([[3, 7]])}
    proposal_recall(proposals, ground_truth)  # 0.5
    ```
    """
    iou_threshold = _checks.check_fraction("iou_threshold", iou_threshold)
    _checks.check_bounding_box_format(bounding_box_format)
    shape = _checks.check_image_shape(image_shape, integers=False)
    if not hasattr(proposals, "keys"):
        boxes = _inputs.to_array(proposals, "proposals", 3)
        proposals = {"boxes": boxes, "confidence": np.zeros(boxes.shape[:2])}
    elif "confidence" not in proposals:
        boxes = _inputs.to_array(proposals["boxes"], 'proposals["boxes"]', 3)
        proposals = {**proposals, "confidence": np.zeros(boxes.shape[:2])}
    images = _inputs.unpack_ground_truth(
        ground_truth, bounding_box_format, shape
    )
    detections = _inputs.unpack_detections(
        proposals, bounding_box_format, shape, need_classes=False
    )
    _inputs.check_same_batch(images, detections)
    found = total = 0
    for (gt_boxes, _, ignore), (boxes, _, _) in zip(images, detections):
        gt_boxes = gt_boxes[~ignore]
        total += len(gt_boxes)
        if len(gt_boxes) and len(boxes):
            best = iou_yxyx(gt_boxes, boxes).max(axis=1)
            found += int(np.count_nonzero(best >= iou_threshold))
    return found / total if total else float("nan")
