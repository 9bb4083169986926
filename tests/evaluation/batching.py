"""Builds padded keras-cv style batch dicts from per-image lists."""

import numpy as np


def pad_ground_truth(images, num_boxes=None, dtype=np.float32):
    """`images`: list of `(boxes (M, 4), classes (M,))` per image."""
    num_boxes = num_boxes or max([len(c) for _, c in images] + [1])
    boxes = -np.ones((len(images), num_boxes, 4), dtype=dtype)
    classes = -np.ones((len(images), num_boxes), dtype=np.int32)
    for i, (image_boxes, image_classes) in enumerate(images):
        boxes[i, : len(image_classes)] = np.reshape(image_boxes, (-1, 4))
        classes[i, : len(image_classes)] = image_classes
    return {"boxes": boxes, "classes": classes}


def pad_detections(
    images, max_detections=None, with_classes=True, dtype=np.float32
):
    """`images`: list of `(boxes (N, 4), classes (N,) or None, scores (N,))`.

    Padding rows are all -1 (boxes, classes and confidence), as keras-cv
    writes them.
    """
    max_detections = max_detections or max([len(s) for _, _, s in images] + [1])
    batch = len(images)
    boxes = -np.ones((batch, max_detections, 4), dtype=dtype)
    classes = -np.ones((batch, max_detections), dtype=np.int32)
    confidence = -np.ones((batch, max_detections), dtype=dtype)
    for i, (image_boxes, image_classes, scores) in enumerate(images):
        n = len(scores)
        boxes[i, :n] = np.reshape(image_boxes, (-1, 4))
        confidence[i, :n] = scores
        if image_classes is not None:
            classes[i, :n] = image_classes
    result = {"boxes": boxes, "confidence": confidence}
    if with_classes:
        result["classes"] = classes
    return result
