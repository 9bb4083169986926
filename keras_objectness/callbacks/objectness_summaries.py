"""Class-generic objectness evaluation and its TensorBoard summaries.

`evaluate_objectness` runs a detector on a small validation set, decodes
class-generic detections with a `BoxBinDecoder`, scores them with
`keras_objectness.evaluation.DetectionEvaluator` and draws a few scenes.
`write_objectness_summaries` writes its result as TensorBoard scalars, a
precision-recall curve for the `pr_curves` plugin and images. The
`ObjectnessTensorBoard` callback calls both; a training script can call them
without the callback.

Tags written (all under the `objectness/` section):

* `objectness/auc`, `objectness/average_precision` and
  `objectness/recall_at_{max_detections}`: scalars.
* `objectness/pr_curve/pr_curves`: the precision-recall curve, a float32
  tensor `(6, num_thresholds)` with the `pr_curves` plugin's rows: true
  positives, false positives, true negatives, false negatives, precision,
  recall.
* `objectness/detections`: uint8 images with the ground truth drawn in
  `GROUND_TRUTH_COLOR` and the detections on top in `DETECTION_COLOR`.

The precision-recall curve. Whether a detection is a true positive is
decided by matching it to the ground truth (IoU, one detection per object).
TensorBoard's `pr_curve.summary.pb` takes one label per prediction, so it
would know nothing of the objects that no detection found and would report
recall among the detections instead of among the objects. The counts are
therefore built from the matched detections and written with `raw_data_pb`:
at threshold `t_i` (`i = 0 .. num_thresholds - 1`), `TP_i` and `FP_i` count
the matched and unmatched detections with confidence `>= t_i`,
`FN_i = G - TP_i` counts the objects not found (`G` the number of
ground-truth boxes to find), `TN_i = 0` (a detector has no true negatives),
and, with TensorBoard's own formulas,
`precision_i = TP_i / max(1e-7, TP_i + FP_i)` (0 where nothing is detected)
and `recall_i = TP_i / G`. Every point is therefore a point of the exact
curve of `DetectionEvaluator`, the one at the lowest detection confidence
`>= t_i`. Matching follows the evaluator's rules (`match_iou_threshold`,
`method`, `ground_truth_classes`, `other_ground_truth`); detections that
matching ignores are left out, as the evaluator leaves them out.

The plugin labels threshold `i` as `i / (num_thresholds - 1)`. With
`pr_curve_thresholds="absolute"`, `t_i` is that value. Box-bin
probabilities are small (a softmax over hundreds of bins) and would all fall
below the first few such thresholds, so the default, `"range"`, spreads the
thresholds evenly over the confidences of the evaluation,
`t_i = c_min + i / (num_thresholds - 1) * (c_max - c_min)`: the plugin's
threshold axis then reads as a fraction of that range, its first point
holds every detection and its last the most confident ones. The actual
`t_i` are in the result (`result["pr_curve"]["thresholds"]`).
"""

import keras
import numpy as np
import tensorflow as tf
from tensorboard.plugins.pr_curve import summary as pr_curve_summary

from keras_objectness import _checks
from keras_objectness.evaluation import DetectionEvaluator
from keras_objectness.evaluation import match_detections
from keras_objectness.layers.box_bin_decoder import BoxBinDecoder
from keras_objectness.layers.box_bin_softmax import BoxBinSoftmax

DETECTION_COLOR = (255, 0, 0)
GROUND_TRUTH_COLOR = (0, 255, 0)
PR_CURVE_THRESHOLDS = ("range", "absolute")
TAG_PREFIX = "objectness"

# TensorBoard's guard against dividing by zero (`pr_curve.summary`).
_MINIMUM_COUNT = 1e-7


def evaluate_objectness(
    model,
    images,
    y_true,
    max_detections=10,
    iou_threshold=0.5,
    match_iou_threshold=0.5,
    bounding_box_format="rel_yxyx",
    method="voc",
    ground_truth_classes=None,
    other_ground_truth="ignore",
    num_thresholds=201,
    pr_curve_thresholds="range",
    num_images=3,
    max_drawn_detections=3,
    batch_size=32,
):
    """Evaluates class-generic detections of a model on a validation set.

    The model is either a detector ending in a `BoxBinSoftmax` head (such
    as `objectness_detector`), whose output is decoded by a new
    `BoxBinDecoder(max_detections, iou_threshold)`, or an inference model
    with a `BoxBinDecoder` inside (such as `objectness_inference_model`),
    whose own decoder is used (then `max_detections` and `iou_threshold`
    are those of that decoder). See the module docstring for the
    precision-recall curve.

    Args:
        model: `keras.Model`, a box-bin detector or an inference model.
        images: array `(num_images, height, width, channels)` as the model
            takes it (numpy or tensor). Float images in `[0, 1]` or
            `[0, 255]`, or integers, for drawing.
        y_true: dict with `"boxes"` `(num_images, num_boxes, 4)` in
            `bounding_box_format`, padded with `-1` rows, and optionally
            `"classes"` `(num_images, num_boxes)`, padded with `-1`
            (without it a box is an object unless all four numbers are
            `-1`).
        max_detections: int. Detections kept per image. Defaults to `10`.
        iou_threshold: float in `(0, 1]`. IoU of the decoder's non-max
            suppression. Defaults to `0.5`.
        match_iou_threshold: float in `(0, 1]`. A detection finds an object
            when their IoU is `>=` this. Defaults to `0.5`.
        bounding_box_format: str. Keras format of the ground-truth boxes
            and of the detections. Defaults to `"rel_yxyx"`.
        method: `"voc"` or `"coco"`: matching rule and AP of
            `DetectionEvaluator`. Defaults to `"voc"`.
        ground_truth_classes: optional sequence of class ids. Only boxes of
            these classes are objects to find (e.g. the held-out classes).
            Defaults to `None` (all boxes).
        other_ground_truth: `"ignore"`, `"background"` or `"skip_image"`:
            what happens to boxes of other classes, as in
            `DetectionEvaluator`. Defaults to `"ignore"`.
        num_thresholds: int >= 2. Points of the logged precision-recall
            curve. Defaults to `201` (TensorBoard's default).
        pr_curve_thresholds: `"range"` or `"absolute"`: thresholds spread
            evenly from the lowest to the highest confidence, or over
            `[0, 1]`. Defaults to `"range"`.
        num_images: int >= 0. The first this many images are drawn.
            Defaults to `3`.
        max_drawn_detections: int >= 0. Most confident detections drawn per
            image. Defaults to `3`.
        batch_size: int. Batch size of `model.predict`. Defaults to `32`.

    Returns:
        dict with the class-generic result of `DetectionEvaluator`
        (`"auc"`, `"average_precision"`, `"precision"`, `"recall"`,
        `"thresholds"`, `"num_ground_truth"`, `"num_detections"`,
        `"num_images"`) and
        `"recall_at_max_detections"`: float, recall with every detection
        (NaN without ground truth);
        `"max_detections"`: int;
        `"detections"`: the decoder's dict as numpy arrays;
        `"pr_curve"`: dict of float64 arrays `(num_thresholds,)`
        `"true_positive_counts"`, `"false_positive_counts"`,
        `"true_negative_counts"`, `"false_negative_counts"`,
        `"precision"`, `"recall"` and `"thresholds"` (in confidence units);
        `"drawn_images"`: uint8 `(min(num_images, N), height, width, 3)`.

    Example:

    ```python
    images, boxes = keras_objectness.data.single_object_images(16)
    result = evaluate_objectness(
        detector, images, {"boxes": boxes[:, None]}, max_detections=5
    )
    result["auc"], result["drawn_images"].shape
    ```
    """
    images, y_true = check_validation_data(images, y_true)
    check_evaluation_arguments(
        max_detections=max_detections,
        iou_threshold=iou_threshold,
        match_iou_threshold=match_iou_threshold,
        bounding_box_format=bounding_box_format,
        method=method,
        ground_truth_classes=ground_truth_classes,
        other_ground_truth=other_ground_truth,
        num_thresholds=num_thresholds,
        pr_curve_thresholds=pr_curve_thresholds,
        num_images=num_images,
        max_drawn_detections=max_drawn_detections,
        batch_size=batch_size,
    )
    image_shape = tuple(images.shape[1:3])
    evaluator = DetectionEvaluator(
        iou_threshold=match_iou_threshold,
        bounding_box_format=bounding_box_format,
        image_shape=image_shape,
        method=method,
        ground_truth_classes=ground_truth_classes,
        other_ground_truth=other_ground_truth,
    )
    decoder = _decoder(
        model, max_detections, iou_threshold, bounding_box_format, image_shape
    )
    outputs = _predict(model, images, batch_size)
    if decoder is not None:
        outputs = decoder(outputs)
    detections = {
        key: keras.ops.convert_to_numpy(outputs[key])
        for key in ("boxes", "confidence", "num_detections")
    }
    evaluator.update_state(y_true, detections)
    result = evaluator.result()
    true_positive, confidence, num_ground_truth = _matched_detections(
        evaluator, y_true, detections
    )
    recall = result["recall"]
    if result["num_ground_truth"] == 0:
        recall_at_max = float("nan")
    else:
        recall_at_max = float(recall[-1]) if len(recall) else 0.0
    result.update(
        {
            "recall_at_max_detections": recall_at_max,
            "max_detections": int(detections["boxes"].shape[1]),
            "detections": detections,
            "pr_curve": pr_curve_data(
                true_positive,
                confidence,
                num_ground_truth,
                num_thresholds,
                pr_curve_thresholds,
            ),
            "drawn_images": draw_detections(
                images[:num_images],
                {key: y_true[key][:num_images] for key in y_true},
                {key: detections[key][:num_images] for key in detections},
                bounding_box_format,
                max_drawn_detections,
            ),
        }
    )
    return result


def write_objectness_summaries(result, step, writer=None):
    """Writes a result of `evaluate_objectness` as TensorBoard summaries.

    Writes the scalars, the precision-recall curve (skipped when there is
    no ground truth to find) and the drawn images listed in the module
    docstring.

    Args:
        result: dict returned by `evaluate_objectness`.
        step: int. The summary step (the callback uses the epoch).
        writer: optional `tf.summary.SummaryWriter`. Defaults to `None`:
            the default writer (inside `with writer.as_default():`).

    Example:

    ```python
    writer = tf.summary.create_file_writer("logs/validation_detection")
    write_objectness_summaries(result, step=0, writer=writer)
    ```
    """
    if writer is not None:
        with writer.as_default():
            write_objectness_summaries(result, step)
        writer.flush()
        return
    step = int(step)
    recall_tag = f"recall_at_{result['max_detections']}"
    for key, tag in (
        ("auc", "auc"),
        ("average_precision", "average_precision"),
        ("recall_at_max_detections", recall_tag),
    ):
        tf.summary.scalar(f"{TAG_PREFIX}/{tag}", result[key], step=step)
    if result["num_ground_truth"] > 0:
        curve = result["pr_curve"]
        summary = pr_curve_summary.raw_data_pb(
            f"{TAG_PREFIX}/pr_curve",
            true_positive_counts=curve["true_positive_counts"],
            false_positive_counts=curve["false_positive_counts"],
            true_negative_counts=curve["true_negative_counts"],
            false_negative_counts=curve["false_negative_counts"],
            precision=curve["precision"],
            recall=curve["recall"],
            num_thresholds=len(curve["precision"]),
            description=(
                "Class-generic detections matched to the ground truth; "
                "thresholds on the detection confidence."
            ),
        )
        tf.summary.experimental.write_raw_pb(
            summary.SerializeToString(), step=step
        )
    drawn = result["drawn_images"]
    if len(drawn):
        tf.summary.image(
            f"{TAG_PREFIX}/detections",
            drawn,
            step=step,
            max_outputs=len(drawn),
            description=(
                f"Ground truth in RGB {GROUND_TRUTH_COLOR}, detections in "
                f"RGB {DETECTION_COLOR}."
            ),
        )


def pr_curve_data(
    true_positive,
    confidence,
    num_ground_truth,
    num_thresholds=201,
    pr_curve_thresholds="range",
):
    """Counts of the `pr_curves` plugin from matched detections.

    Args:
        true_positive: bool array `(N,)`, one flag per counted detection.
        confidence: float array `(N,)`.
        num_ground_truth: int. Objects to find.
        num_thresholds: int >= 2. Defaults to `201`.
        pr_curve_thresholds: `"range"` or `"absolute"` (module
            docstring). Defaults to `"range"`.

    Returns:
        dict of float64 arrays `(num_thresholds,)`, thresholds increasing:
        `"true_positive_counts"`, `"false_positive_counts"`,
        `"true_negative_counts"` (zeros), `"false_negative_counts"`,
        `"precision"`, `"recall"` and `"thresholds"` (confidence units).

    Example:

    ```python
    data = pr_curve_data([True, False], [0.02, 0.01], 2, num_thresholds=3)
    data["precision"]  # [0.5, 1.0, 1.0]: only 0.02 passes t = 0.015, 0.02
    ```
    """
    true_positive = np.asarray(true_positive, dtype=bool)
    confidence = np.asarray(confidence, dtype=np.float64)
    grid = np.arange(num_thresholds) / (num_thresholds - 1)
    low, high = 0.0, 1.0
    if pr_curve_thresholds == "range" and len(confidence):
        low, high = float(np.min(confidence)), float(np.max(confidence))
    if high > low:
        # Compare with the grid on the plugin's scale, as it labels them.
        passed = ((confidence - low) / (high - low))[None, :] >= grid[:, None]
    else:
        # One distinct confidence: every threshold keeps every detection.
        passed = np.ones((num_thresholds, len(confidence)), bool)
    tp = np.sum(passed & true_positive[None, :], axis=1).astype(np.float64)
    fp = np.sum(passed & ~true_positive[None, :], axis=1).astype(np.float64)
    fn = float(num_ground_truth) - tp
    return {
        "true_positive_counts": tp,
        "false_positive_counts": fp,
        "true_negative_counts": np.zeros(num_thresholds),
        "false_negative_counts": fn,
        "precision": tp / np.maximum(_MINIMUM_COUNT, tp + fp),
        "recall": tp / np.maximum(_MINIMUM_COUNT, float(num_ground_truth)),
        "thresholds": low + grid * (high - low),
    }


def draw_detections(
    images,
    y_true,
    detections,
    bounding_box_format="rel_yxyx",
    max_drawn_detections=3,
):
    """Draws ground truth and the most confident detections on images.

    Ground truth is drawn in `GROUND_TRUTH_COLOR`, then detections on top in
    `DETECTION_COLOR`, with `keras.visualization.draw_bounding_boxes`;
    lines are `max(1, min(height, width) // 100)` pixels wide.

    Args:
        images: array `(N, height, width, channels)`, 1 or 3 channels.
        y_true: dict with `"boxes"` `(N, num_boxes, 4)` and `"classes"`
            `(N, num_boxes)` padded with `-1`.
        detections: dict with `"boxes"`, `"confidence"` and optionally
            `"num_detections"`, as a `BoxBinDecoder` returns them.
        bounding_box_format: str. Format of both sets of boxes. Defaults to
            `"rel_yxyx"`.
        max_drawn_detections: int. Detections drawn per image. Defaults to
            `3`.

    Returns:
        uint8 array `(N, height, width, 3)`.
    """
    images = np.asarray(images)
    if images.shape[-1] == 1:
        images = np.repeat(images, 3, axis=-1)
    if len(images) == 0:
        return np.zeros(images.shape[:3] + (3,), np.uint8)
    thickness = max(1, min(images.shape[1:3]) // 100)
    drawn = keras.visualization.draw_bounding_boxes(
        images,
        {
            "boxes": np.asarray(y_true["boxes"], "float32"),
            "labels": np.asarray(y_true["classes"]).astype("int32"),
        },
        bounding_box_format,
        color=GROUND_TRUTH_COLOR,
        line_thickness=thickness,
    )
    boxes = np.asarray(detections["boxes"], "float32")
    confidence = np.asarray(detections["confidence"], "float32")
    valid = np.ones(confidence.shape, bool)
    if "num_detections" in detections:
        counts = np.asarray(detections["num_detections"])
        valid &= np.arange(confidence.shape[1])[None, :] < counts[:, None]
    valid &= ~np.all(boxes == -1, axis=-1)
    # Keep the most confident valid detections of each image.
    order = np.argsort(np.where(valid, -confidence, np.inf), axis=1)
    order = order[:, :max_drawn_detections]
    labels = np.where(np.take_along_axis(valid, order, axis=1), 0, -1)
    if order.shape[1] == 0:
        return drawn
    return keras.visualization.draw_bounding_boxes(
        drawn,
        {
            "boxes": np.take_along_axis(boxes, order[..., None], axis=1),
            "labels": labels.astype("int32"),
        },
        bounding_box_format,
        color=DETECTION_COLOR,
        line_thickness=thickness,
    )


def check_validation_data(images, y_true):
    """Checks and converts a validation set to numpy.

    Args:
        images: array-like `(N, height, width, channels)`.
        y_true: dict with `"boxes"` `(N, num_boxes, 4)` and optionally
            `"classes"` `(N, num_boxes)`.

    Returns:
        `(images, y_true)`: numpy images and a new dict of float32 boxes
        and int32 classes (made from the padding rows when absent).
    """
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] not in (1, 3):
        raise ValueError(
            "`images` must have shape (num_images, height, width, channels) "
            f"with 1 or 3 channels. Received: images.shape={images.shape}"
        )
    if not hasattr(y_true, "keys") or "boxes" not in y_true:
        raise ValueError(
            '`y_true` must be a dict with "boxes" (and optionally '
            f'"classes"). Received: y_true={_describe(y_true)}'
        )
    boxes = np.asarray(y_true["boxes"], dtype="float32")
    if boxes.ndim != 3 or boxes.shape[-1] != 4:
        raise ValueError(
            '`y_true["boxes"]` must have shape (num_images, num_boxes, 4), '
            "padded with -1 rows. "
            f'Received: y_true["boxes"].shape={boxes.shape}'
        )
    if "classes" in y_true:
        classes = np.asarray(y_true["classes"])
        if classes.shape != boxes.shape[:2]:
            raise ValueError(
                '`y_true["classes"]` must have shape (num_images, num_boxes) '
                f"= {boxes.shape[:2]}. "
                f'Received: y_true["classes"].shape={classes.shape}'
            )
    else:
        classes = np.where(np.all(boxes == -1, axis=-1), -1, 0)
    if len(boxes) != len(images):
        raise ValueError(
            "`images` and `y_true` must hold the same number of images. "
            f"Received: images.shape={images.shape}, "
            f'y_true["boxes"].shape={boxes.shape}'
        )
    if len(images) == 0:
        raise ValueError(
            "`images` must hold at least one image. "
            f"Received: images.shape={images.shape}"
        )
    return images, {"boxes": boxes, "classes": classes.astype("int32")}


def check_evaluation_arguments(
    max_detections,
    iou_threshold,
    match_iou_threshold,
    bounding_box_format,
    method,
    ground_truth_classes,
    other_ground_truth,
    num_thresholds,
    pr_curve_thresholds,
    num_images,
    max_drawn_detections,
    batch_size,
):
    """Raises `ValueError` for a bad argument of `evaluate_objectness`.

    Args:
        max_detections, iou_threshold, match_iou_threshold,
        bounding_box_format, method, ground_truth_classes,
        other_ground_truth, num_thresholds, pr_curve_thresholds,
        num_images, max_drawn_detections, batch_size: as in
        `evaluate_objectness`.
    """
    _checks.check_int("max_detections", max_detections)
    _checks.check_int("batch_size", batch_size)
    _checks.check_int("num_thresholds", num_thresholds, minimum=2)
    _checks.check_int("num_images", num_images, minimum=0)
    _checks.check_int("max_drawn_detections", max_drawn_detections, 0)
    _checks.check_fraction("iou_threshold", iou_threshold)
    _checks.check_choice(
        "pr_curve_thresholds", pr_curve_thresholds, PR_CURVE_THRESHOLDS
    )
    # The evaluator checks its own arguments (IoU, method, classes, format).
    DetectionEvaluator(
        iou_threshold=match_iou_threshold,
        bounding_box_format=bounding_box_format,
        method=method,
        ground_truth_classes=ground_truth_classes,
        other_ground_truth=other_ground_truth,
    )


def _decoder(
    model, max_detections, iou_threshold, bounding_box_format, image_shape
):
    """A new decoder for a detector, or `None` for an inference model."""
    if not isinstance(model, keras.Model):
        raise ValueError(
            "`model` must be a `keras.Model`. "
            f"Received: model of type {type(model).__name__}"
        )
    decoders = [x for x in model.layers if isinstance(x, BoxBinDecoder)]
    heads = [x for x in model.layers if isinstance(x, BoxBinSoftmax)]
    if len(decoders) == 1:
        layer = decoders[0]
        layer_format = (
            layer.bounding_box_format or layer.box_space.bounding_box_format
        )
        if layer_format != bounding_box_format:
            raise ValueError(
                "`bounding_box_format` must be the format of the model's "
                f"`BoxBinDecoder` ({layer_format!r}). "
                f"Received: bounding_box_format={bounding_box_format!r}"
            )
        return None
    if len(heads) != 1 or decoders or len(model.outputs) != 1:
        raise ValueError(
            "`model` must end in one `BoxBinSoftmax` head or hold one "
            "`BoxBinDecoder`. Received: model="
            f"{model.name!r} with {len(heads)} BoxBinSoftmax and "
            f"{len(decoders)} BoxBinDecoder layers"
        )
    head = heads[0]
    absolute = not bounding_box_format.startswith("rel_")
    return BoxBinDecoder(
        head.box_space,
        max_detections=max_detections,
        iou_threshold=iou_threshold,
        from_logits=head.activation is None,
        bounding_box_format=bounding_box_format,
        image_shape=image_shape if absolute else None,
    )


def _matched_detections(evaluator, y_true, detections):
    """Per-detection outcomes under the evaluator's matching rules.

    Returns `(true_positive, confidence, num_ground_truth)` of the counted
    (not ignored) detections pooled over the evaluated images.
    """
    chosen_classes = evaluator.ground_truth_classes
    true_positive, confidence = [], []
    num_ground_truth = 0
    for i in range(len(y_true["boxes"])):
        valid = y_true["classes"][i] >= 0
        gt_boxes = y_true["boxes"][i][valid]
        gt_classes = y_true["classes"][i][valid]
        count = int(detections["num_detections"][i])
        det_boxes = detections["boxes"][i][:count]
        det_confidence = detections["confidence"][i][:count]
        ignore = np.zeros(len(gt_boxes), bool)
        if chosen_classes is not None:
            chosen = np.isin(gt_classes, chosen_classes)
            if evaluator.other_ground_truth == "skip_image":
                if len(gt_classes) == 0 or not np.all(chosen):
                    continue
            elif evaluator.other_ground_truth == "background":
                gt_boxes, ignore = gt_boxes[chosen], ignore[chosen]
            else:
                ignore = ~chosen
        matched = match_detections(
            gt_boxes,
            det_boxes,
            det_confidence,
            iou_threshold=evaluator.iou_threshold,
            matching=evaluator.method,
            ground_truth_ignore=ignore,
            bounding_box_format=evaluator.bounding_box_format,
            image_shape=evaluator.image_shape,
        )
        keep = ~matched["ignored"]
        true_positive.append(matched["true_positive"][keep])
        confidence.append(det_confidence[keep])
        num_ground_truth += int(np.count_nonzero(~ignore))
    true_positive = np.concatenate(true_positive + [np.zeros(0, bool)])
    confidence = np.concatenate(confidence + [np.zeros(0)])
    return true_positive, confidence, num_ground_truth


def _describe(value):
    if hasattr(value, "keys"):
        return f"dict with keys {sorted(value)}"
    return f"{type(value).__name__}"


def _predict(model, images, batch_size):
    """`model.predict` without a distribution strategy.

    Called eagerly, the model reads its own variables on this process only;
    `predict` under MultiWorkerMirroredStrategy would gather across workers
    and hang unless every worker called it too.
    """
    parts = [
        keras.tree.map_structure(
            keras.ops.convert_to_numpy,
            model(images[start : start + batch_size], training=False),
        )
        for start in range(0, len(images), batch_size)
    ]
    return keras.tree.map_structure(
        lambda *arrays: np.concatenate(arrays), *parts
    )
