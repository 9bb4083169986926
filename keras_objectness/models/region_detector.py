"""LSDA detection: proposals, region crops, class scores, per-class NMS."""

import keras

from keras_objectness.adaptation import find_background_head
from keras_objectness.layers.batched_time_distributed import (
    BatchedTimeDistributed,
)
from keras_objectness.layers.box_bin_softmax import BoxBinSoftmax
from keras_objectness.layers.region_crops import RegionCrops
from keras_objectness.layers.region_detections import RegionDetections
from keras_objectness.models.objectness_detector import (
    objectness_inference_model,
)
from keras_objectness.models.shared_feature_detector import (
    shared_feature_detector,
)


def region_detector(
    detection_network,
    proposer=None,
    image_shape=None,
    max_proposals=100,
    proposal_iou_threshold=0.5,
    context_padding=0.1,
    iou_threshold=0.3,
    max_detections=100,
    name="region_detector",
    detector="per_crop",
    image_scales=(1.0,),
):
    """Builds the one-call detector of every class, boxes or not.

    Images go through the class-generic `proposer` (an objectness detector;
    its `BoxBinDecoder` keeps `max_proposals` boxes), each proposal is
    cropped with context and resized to the detection network's input,
    scored for every class with the paper's `w_i . x - w_bg . x` (the
    network's `BackgroundHead` in `"scores"` mode, same weights), and
    per-class non-max suppression keeps the best detections.

    Without a `proposer` the model takes proposals as a second input (for
    example selective search boxes from
    `keras_objectness.data.selective_search_proposals`), padded with `-1`.

    Args:
        detection_network: `keras.Model` from crops to a `BackgroundHead`
            output, e.g. from `keras_objectness.models.detection_network`
            after fine-tuning (and `adapt_classifier`). Its input shape
            `(size, size, channels)` must be known and square: proposals
            are cropped and resized to `size` x `size`.
        proposer: optional objectness model (`objectness_detector`, or its
            `objectness_inference_model`). Defaults to `None`.
        image_shape: `(height, width, channels)` of the input images.
            Defaults to the proposer's input shape (required without one).
        max_proposals: int. Proposals per image. Defaults to `100`.
        proposal_iou_threshold: float. NMS overlap among proposals.
            Defaults to `0.5`.
        context_padding: float. Context around each crop, as in training.
            Defaults to `0.1`.
        iou_threshold: float. Per-class NMS overlap. Defaults to `0.3`.
        max_detections: int. Detections per image. Defaults to `100`.
        name: str. Model name. Defaults to `"region_detector"`.
        detector: `"per_crop"` (each proposal cropped and run through the
            whole network, R-CNN) or `"shared"` (the trunk once per image,
            proposals pooled from its feature map:
            `keras_objectness.models.shared_feature_detector`, Fast
            R-CNN). Defaults to `"per_crop"`.
        image_scales: tuple of floats. Pyramid levels of the `"shared"`
            path. Defaults to `(1.0,)`.

    Returns:
        A functional `keras.Model` from images (and, without a proposer,
        proposals) to `{"boxes", "classes", "confidence",
        "num_detections"}` (relative yxyx, padded with `-1`).

    Example:

    ```python
    detector = region_detector(adapted_network, proposer=objectness)
    detections = detector.predict(images)
    ```

    References:
        - [Hoffman et al., 2014. LSDA: Large Scale Detection through
          Adaptation](https://arxiv.org/abs/1407.5035), section 3.3.
    """
    if detector not in ("per_crop", "shared"):
        raise ValueError(
            "`detector` must be 'per_crop' or 'shared'. "
            f"Received: detector={detector!r}"
        )
    head = find_background_head(detection_network)
    crop_shape = tuple(detection_network.inputs[0].shape[1:])
    if (
        len(crop_shape) != 3
        or crop_shape[0] is None
        or crop_shape[0] != crop_shape[1]
    ):
        raise ValueError(
            "`detection_network` must take square images of a known size, "
            "`(size, size, channels)`: the crops it scores are that size. "
            f"Received: detection_network with input shape {crop_shape}"
        )
    if proposer is not None:
        proposer_shape = proposer.inputs[0].shape[1:]
        image_shape = tuple(image_shape or proposer_shape)
    elif image_shape is None:
        raise ValueError(
            "`image_shape` is required when no `proposer` is given. "
            f"Received: image_shape={image_shape}"
        )
    images = keras.Input(image_shape, name=f"{name}_images")
    if proposer is not None:
        proposer = _inference(proposer, max_proposals, proposal_iou_threshold)
        proposer_input = images
        if tuple(proposer_shape[:2]) != tuple(image_shape[:2]):
            proposer_input = keras.layers.Resizing(
                *proposer_shape[:2], name=f"{name}_proposer_resizing"
            )(images)
        boxes = proposer(proposer_input)["boxes"]
        inputs = images
    else:
        boxes = keras.Input((max_proposals, 4), name=f"{name}_proposals")
        inputs = [images, boxes]
    if detector == "shared":
        scores = shared_feature_detector(
            detection_network,
            tuple(image_shape),
            int(boxes.shape[1]),
            context_padding=context_padding,
            image_scales=tuple(image_scales),
            name=f"{name}_shared",
        )([images, boxes])
    else:
        crops = RegionCrops(
            crop_shape[0], context_padding, name=f"{name}_crops"
        )(images, boxes)
        # One call of the network on all crops (a TimeDistributed would
        # trace one copy of it per proposal).
        scores = BatchedTimeDistributed(
            _scoring_model(detection_network, head), name=f"{name}_scores"
        )(crops)
    detections = RegionDetections(
        max_detections, iou_threshold, name=f"{name}_detections"
    )(boxes, scores)
    return keras.Model(inputs, detections, name=name)


def _inference(proposer, max_proposals, proposal_iou_threshold):
    if any(isinstance(layer, BoxBinSoftmax) for layer in proposer.layers):
        return objectness_inference_model(
            proposer,
            max_detections=max_proposals,
            iou_threshold=proposal_iou_threshold,
        )
    return proposer


def _scoring_model(detection_network, head):
    """The detection network with its head in `"scores"` mode."""
    features = head.input
    scores = head(features, output_mode="scores")
    return keras.Model(
        detection_network.inputs,
        scores,
        name=f"{detection_network.name}_scores",
    )
