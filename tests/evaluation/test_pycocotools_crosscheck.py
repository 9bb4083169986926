"""`method="coco"` per-class AP against pycocotools' `COCOeval`.

COCOeval is set to one IoU threshold (0.5), one area range covering every
box and a detection cap above the largest count per image, so that its
per-class AP is exactly the quantity `DetectionEvaluator` computes.
Confidences are distinct, since both tools order tied detections
differently. GT ids start at 1 (pycocotools reads id 0 as "unmatched").
"""

import contextlib
import io

import numpy as np
import pytest

from keras_objectness.evaluation import DetectionEvaluator
from tests.evaluation.batching import pad_detections
from tests.evaluation.batching import pad_ground_truth

pycocotools_coco = pytest.importorskip("pycocotools.coco")
pycocotools_cocoeval = pytest.importorskip("pycocotools.cocoeval")

HEIGHT, WIDTH = 240, 320
NUM_CLASSES = 5  # class 4 never has ground truth


def _random_scene(seed, num_images=10):
    """Absolute xywh boxes with many overlaps, duplicates and class mix-ups."""
    rng = np.random.default_rng(seed)
    ground_truth, detections = [], []
    num_detections = 0
    for _ in range(num_images):
        n = int(rng.integers(0, 6))
        xy = rng.uniform(0, [WIDTH - 60, HEIGHT - 60], (n, 2))
        wh = rng.uniform(12, 60, (n, 2))
        # Some objects come in overlapping pairs of the same class, where
        # VOC and COCO matching rules can disagree.
        if n >= 2:
            xy[1] = xy[0] + wh[0] * rng.uniform(0.1, 0.3, 2)
        classes = rng.integers(0, NUM_CLASSES - 1, n)
        if n >= 2 and rng.uniform() < 0.7:
            classes[1] = classes[0]
        gt_boxes = np.concatenate([xy, wh], axis=1)
        ground_truth.append((gt_boxes, classes))

        copies = np.repeat(gt_boxes, 3, axis=0)
        copies[:, :2] += (
            rng.normal(0, 1, copies[:, :2].shape) * copies[:, 2:] * 0.15
        )
        copies[:, 2:] *= rng.uniform(0.7, 1.3, copies[:, 2:].shape)
        copy_classes = np.repeat(classes, 3)
        wrong = rng.uniform(size=len(copy_classes)) < 0.2
        copy_classes[wrong] = rng.integers(0, NUM_CLASSES, wrong.sum())
        m = int(rng.integers(0, 4))
        noise = np.concatenate(
            [
                rng.uniform(0, [WIDTH - 40, HEIGHT - 40], (m, 2)),
                rng.uniform(8, 40, (m, 2)),
            ],
            axis=1,
        )
        boxes = np.concatenate([copies, noise])
        det_classes = np.concatenate(
            [copy_classes, rng.integers(0, NUM_CLASSES, m)]
        )
        detections.append([boxes, det_classes, None])
        num_detections += len(boxes)
    # Distinct confidences, shuffled over all detections.
    scores = rng.permutation(np.linspace(0.01, 0.99, num_detections))
    start = 0
    for entry in detections:
        entry[2] = scores[start : start + len(entry[0])]
        start += len(entry[0])
    return ground_truth, [tuple(entry) for entry in detections]


def _pycocotools_ap(ground_truth, detections, crowd=None):
    dataset = {
        "images": [
            {"id": i + 1, "height": HEIGHT, "width": WIDTH}
            for i in range(len(ground_truth))
        ],
        "categories": [{"id": c + 1, "name": str(c)} for c in range(5)],
        "annotations": [],
    }
    for i, (boxes, classes) in enumerate(ground_truth):
        flags = np.zeros(len(classes), bool) if crowd is None else crowd[i]
        for box, c, flag in zip(boxes, classes, flags):
            dataset["annotations"].append(
                {
                    "id": len(dataset["annotations"]) + 1,
                    "image_id": i + 1,
                    "category_id": int(c) + 1,
                    "bbox": [float(v) for v in box],
                    "area": float(box[2] * box[3]),
                    "iscrowd": int(flag),
                }
            )
    results = [
        {
            "image_id": i + 1,
            "category_id": int(c) + 1,
            "bbox": [float(v) for v in box],
            "score": float(s),
        }
        for i, (boxes, classes, scores) in enumerate(detections)
        for box, c, s in zip(boxes, classes, scores)
    ]
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = pycocotools_coco.COCO()
        coco_gt.dataset = dataset
        coco_gt.createIndex()
        coco_dt = coco_gt.loadRes(results)
        coco_eval = pycocotools_cocoeval.COCOeval(coco_gt, coco_dt, "bbox")
        coco_eval.params.iouThrs = np.array([0.5])
        coco_eval.params.areaRng = [[0.0, 1e10]]
        coco_eval.params.areaRngLbl = ["all"]
        coco_eval.params.maxDets = [1000]
        coco_eval.evaluate()
        coco_eval.accumulate()
    # precision: [iou, recall threshold, class, area range, max dets].
    precision = coco_eval.eval["precision"][0, :, :, 0, 0]
    return np.array(
        [np.mean(p) if np.all(p > -1) else np.nan for p in precision.T]
    )


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_coco_method_equals_pycocotools(seed):
    ground_truth, detections = _random_scene(seed)
    expected = _pycocotools_ap(ground_truth, detections)
    evaluator = DetectionEvaluator(
        num_classes=NUM_CLASSES,
        bounding_box_format="xywh",
        image_shape=(HEIGHT, WIDTH),
        method="coco",
    )
    # Two batches, to exercise accumulation as well.
    for part in (slice(0, 4), slice(4, None)):
        evaluator.update_state(
            pad_ground_truth(ground_truth[part], dtype=np.float64),
            pad_detections(detections[part], dtype=np.float64),
        )
    result = evaluator.result()["average_precision"]
    np.testing.assert_array_equal(np.isnan(result), np.isnan(expected))
    np.testing.assert_allclose(result, expected, atol=1e-6, equal_nan=True)
    # The scene is hard enough to be a real check.
    assert np.isnan(expected[-1])
    assert np.nanmin(expected) < 0.9
    assert np.nanmax(expected) > 0.0


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_crowd_regions_equal_pycocotools(seed):
    """Crowd ground truth: not counted, and detections on it (overlap as
    the share of the detection inside it) left out, as in COCOeval."""
    ground_truth, detections = _random_scene(seed + 10)
    rng = np.random.default_rng(seed)
    crowd = [rng.uniform(size=len(c)) < 0.35 for _, c in ground_truth]
    expected = _pycocotools_ap(ground_truth, detections, crowd)
    padded = pad_ground_truth(ground_truth, dtype=np.float64)
    ignore = np.zeros(padded["classes"].shape, bool)
    for i, flags in enumerate(crowd):
        ignore[i, : len(flags)] = flags
    evaluator = DetectionEvaluator(
        num_classes=NUM_CLASSES,
        bounding_box_format="xywh",
        image_shape=(HEIGHT, WIDTH),
        method="coco",
    )
    evaluator.update_state(
        {**padded, "ignore": ignore},
        pad_detections(detections, dtype=np.float64),
    )
    result = evaluator.result()
    np.testing.assert_allclose(
        result["average_precision"], expected, atol=1e-6, equal_nan=True
    )
    # Crowd made a difference: without the flags the numbers change.
    plain = DetectionEvaluator(
        num_classes=NUM_CLASSES,
        bounding_box_format="xywh",
        image_shape=(HEIGHT, WIDTH),
        method="coco",
    )
    plain.update_state(padded, pad_detections(detections, dtype=np.float64))
    assert not np.allclose(
        plain.result()["average_precision"], expected, equal_nan=True
    )
    assert sum(map(np.sum, crowd)) > 0
