"""Steps 4 and 5 of LSDA: score proposals with a network, then evaluate."""

import weakref

import keras
import numpy as np
from keras import ops

from keras_objectness import evaluation
from keras_objectness import models
from keras_objectness.adaptation import find_background_head
from keras_objectness.layers.region_crops import RegionCrops
from keras_objectness.layers.region_detections import RegionDetections
from keras_objectness.workflows import progress

# Scoring models already built (and compiled by their first `predict`),
# per network: building and compiling one costs about a second, most of a
# shared-feature call on a few images. A scorer shares the network's
# layers and variables (it sees adapted weights) but holds no reference to
# the network, so an entry goes with its network.
_SCORERS = weakref.WeakKeyDictionary()


def _cached_scorer(network, key, build):
    scorers = _SCORERS.setdefault(network, {})
    if key not in scorers:
        scorers[key] = build()
    return scorers[key]


def region_scores_model(network):
    """A model from region crops to one score per class (no background).

    A detection network (one holding a `BackgroundHead`) gives the LSDA
    scores `w_i . x - w_bg . x` (the head in `"scores"` mode, same
    weights). A plain classifier, the unadapted baseline, gives
    `log(p / (1 - p))` of its softmax `p`, whose sigmoid (what
    `RegionDetections` reports as confidence) is `p` itself.
    """
    try:
        head = find_background_head(network)
    except ValueError:
        head = None
    if head is not None:
        scores = head(head.input, output_mode="scores")
        return keras.Model(network.inputs, scores, name="region_scores")
    probabilities = ops.clip(network.outputs[0], 1e-7, 1.0 - 1e-7)
    scores = ops.log(probabilities) - ops.log1p(-probabilities)
    return keras.Model(network.inputs, scores, name="classifier_scores")


def detect_on_proposals(
    network,
    images,
    proposals,
    context_padding=0.1,
    iou_threshold=0.3,
    max_detections=100,
    images_per_chunk=50,
    verbose=True,
    detector="per_crop",
    image_scales=(1.0,),
):
    """All-class detections of `network` on fixed proposals.

    The same computation as `keras_objectness.models.region_detector`
    (the same `RegionCrops`, scores and `RegionDetections`), run in chunks
    of images with one `predict` over each chunk's crops, which keeps
    memory bounded and compiles the network once.

    Args:
        network: a detection network (with a `BackgroundHead`) or a plain
            classifier (the unadapted baseline), from crops to classes.
        images: uint8 `(N, H, W, 3)`.
        proposals: float32 `(N, P, 4)` relative yxyx, padded with `-1`.
        context_padding, iou_threshold, max_detections: as in
            `region_detector`.
        images_per_chunk: int. Images cropped and scored at a time.
        verbose: bool. A progress bar over the images.
        detector: `"per_crop"` (every proposal cropped and scored by the
            whole network, R-CNN) or `"shared"` (the trunk once per image
            and the proposals pooled from its features,
            `keras_objectness.models.shared_feature_detector`; needs a
            detection network). Defaults to `"per_crop"`.
        image_scales: tuple of floats. Pyramid levels of the `"shared"`
            path. Defaults to `(1.0,)`.

    Returns:
        dict of numpy arrays `"boxes"`, `"classes"`, `"confidence"`,
        `"num_detections"`.
    """
    images = np.asarray(images)
    proposals = np.asarray(proposals, "float32")
    if images.ndim != 4 or proposals.ndim != 3 or len(images) != len(proposals):
        raise ValueError(
            "`images` must be (N, H, W, 3) and `proposals` (N, P, 4) with "
            f"the same N. Received: images.shape={images.shape}, "
            f"proposals.shape={proposals.shape}"
        )
    if detector not in ("per_crop", "shared"):
        raise ValueError(
            "`detector` must be 'per_crop' or 'shared'. "
            f"Received: detector={detector!r}"
        )
    if detector == "shared":
        return _detect_shared(
            network,
            images,
            proposals,
            context_padding,
            iou_threshold,
            max_detections,
            images_per_chunk,
            verbose,
            image_scales,
        )
    scorer = _cached_scorer(
        network, ("per_crop",), lambda: region_scores_model(network)
    )
    crop_size = int(network.inputs[0].shape[1])
    cropper = RegionCrops(crop_size, context_padding)
    nms = RegionDetections(max_detections, iou_threshold)
    per_image = proposals.shape[1]
    outputs = []
    bar = progress.progress_bar(len(images), verbose)
    for start in range(0, len(images), images_per_chunk):
        chunk = slice(start, start + images_per_chunk)
        crops = ops.convert_to_numpy(cropper(images[chunk], proposals[chunk]))
        count = len(crops)
        flat = crops.reshape((count * per_image,) + crops.shape[2:])
        scores = scorer.predict(flat, batch_size=1000, verbose=0)
        scores = scores.reshape((count, per_image, -1))
        found = nms(proposals[chunk], scores)
        outputs.append({k: ops.convert_to_numpy(v) for k, v in found.items()})
        if bar:
            bar.add(count)
    return {
        key: np.concatenate([output[key] for output in outputs])
        for key in outputs[0]
    }


def shared_scores_model(network, image_shape, num_regions, **kwargs):
    """`shared_feature_detector` in `"scores"` mode, with a clear error.

    A plain classifier (the unadapted baseline) has no `BackgroundHead`
    and is scored per crop only.
    """
    try:
        find_background_head(network)
    except ValueError:
        raise ValueError(
            "`detector='shared'` needs a detection network (one holding a "
            "`BackgroundHead`); score a plain classifier with "
            f"`detector='per_crop'`. Received: network={network.name!r}"
        ) from None
    return models.shared_feature_detector(
        network, tuple(image_shape), num_regions, **kwargs
    )


def _detect_shared(
    network,
    images,
    proposals,
    context_padding,
    iou_threshold,
    max_detections,
    images_per_chunk,
    verbose,
    image_scales,
):
    key = (
        "shared",
        images.shape[1:],
        proposals.shape[1],
        float(context_padding),
        tuple(float(scale) for scale in image_scales),
    )
    scorer = _cached_scorer(
        network,
        key,
        lambda: shared_scores_model(
            network,
            images.shape[1:],
            proposals.shape[1],
            context_padding=context_padding,
            image_scales=tuple(image_scales),
        ),
    )
    nms = RegionDetections(max_detections, iou_threshold)
    outputs = []
    bar = progress.progress_bar(len(images), verbose)
    for start in range(0, len(images), images_per_chunk):
        chunk = slice(start, start + images_per_chunk)
        scores = scorer.predict(
            [images[chunk], proposals[chunk]], batch_size=8, verbose=0
        )
        found = nms(proposals[chunk], scores)
        outputs.append({k: ops.convert_to_numpy(v) for k, v in found.items()})
        if bar:
            bar.add(len(scores))
    return {
        key: np.concatenate([output[key] for output in outputs])
        for key in outputs[0]
    }


def evaluate_detections(detections, ground_truth, class_split):
    """VOC AP at IoU 0.5 per class, and mAP over B, A and all classes.

    Args:
        detections: a detections dict (`"boxes"`, `"classes"`,
            `"confidence"`).
        ground_truth: dict with `"boxes"` and `"classes"` (padded with
            `-1`), and optionally an ignore flag per box.
        class_split: the `ClassSplit`.

    Returns:
        dict: `"map_trained"`, `"map_heldout"`, `"map_all"` (percent) and
        `"average_precision"` (percent per class, `None` without boxes).
    """
    evaluator = evaluation.DetectionEvaluator(
        num_classes=class_split.num_classes, detection_classes=class_split
    )
    evaluator.update_state(ground_truth, detections)
    result = evaluator.result()
    return {
        "map_trained": _percent(result["mean_average_precision_trained"]),
        "map_heldout": _percent(result["mean_average_precision_heldout"]),
        "map_all": _percent(result["mean_average_precision"]),
        "average_precision": [
            _percent(value) for value in result["average_precision"]
        ],
    }


def _percent(value):
    value = float(value)
    return None if np.isnan(value) else round(100.0 * value, 2)
