"""The class-generic objectness detector: a backbone and a box-bin head."""

import keras

from keras_objectness import box_space as box_space_lib
from keras_objectness.layers.box_bin_decoder import BoxBinDecoder
from keras_objectness.layers.box_bin_softmax import BoxBinSoftmax


def objectness_detector(
    backbone,
    box_space,
    activation="softmax",
    feature_layer=None,
    name="objectness",
):
    """Puts a `BoxBinSoftmax` head on a feature backbone.

    The model maps images to a distribution over the bins of `box_space`;
    train it with `keras.losses.CategoricalCrossentropy` against
    `GaussianBoxTargets`, and turn its output into boxes with
    `objectness_inference_model` (or a `BoxBinDecoder`). The backbone is
    nested as one layer (`f"{backbone.name}_features"` when
    `feature_layer` cuts it), so a backbone pretrained inside an
    `image_classifier` can be shared: build the detector on
    `classifier.get_layer(backbone.name)` to start from its weights.

    Args:
        backbone: `keras.Model` from images to a feature vector or map, e.g.
            `keras_objectness.models.alexnet_backbone()`.
        box_space: `keras_objectness.BoxSpace`. The space of the head.
        activation: `"softmax"` or `None` (logits). Defaults to
            `"softmax"`.
        feature_layer: optional name of a backbone layer whose output feeds
            the head (a feature map is flattened), e.g. `"alexnet_lrn5"`
            for the conv5 maps. Defaults to `None`: the backbone's output
            (fc7), as in the paper. On small data and short budgets the
            head on fc7 can stay stuck at the location prior (see the
            README); the conv5 maps keep the spatial layout and learn fast.
        name: str. Model name; the head is named `f"{name}_box_bins"`.
            Defaults to `"objectness"`.

    Returns:
        A functional `keras.Model` from images to float32
        `(batch, box_space.num_bins)`.

    Example:

    ```python
    from keras_objectness import BoxSpace
    from keras_objectness.models import ALEXNET_PRESETS
    from keras_objectness.models import alexnet_backbone
    from keras_objectness.models import objectness_detector

    backbone = alexnet_backbone(**ALEXNET_PRESETS["alexnet_small_64"])
    detector = objectness_detector(backbone, BoxSpace(grid_shape=(8, 8)))
    ```

    References:
        - [Huval, Coates and Ng, 2013. Deep learning for class-generic
          object detection](https://arxiv.org/abs/1312.6885), section 3.2.
    """
    if not isinstance(backbone, keras.Model) or len(backbone.inputs) != 1:
        raise ValueError(
            "`backbone` must be a `keras.Model` with one image input. "
            f"Received: backbone={backbone!r}"
        )
    box_space = box_space_lib.get(box_space)
    if feature_layer is not None:
        names = [layer.name for layer in backbone.layers]
        if feature_layer not in names:
            raise ValueError(
                f"`feature_layer` must name a layer of the backbone "
                f"{backbone.name!r}. Received: feature_layer="
                f"{feature_layer!r}"
            )
        # Shares the backbone's layers (and weights) up to that layer.
        backbone = keras.Model(
            backbone.inputs,
            backbone.get_layer(feature_layer).output,
            name=f"{backbone.name}_features",
        )
    images = keras.Input(
        backbone.inputs[0].shape[1:],
        dtype=backbone.inputs[0].dtype,
        name=f"{name}_images",
    )
    features = backbone(images)
    outputs = BoxBinSoftmax(
        box_space, activation=activation, name=f"{name}_box_bins"
    )(features)
    return keras.Model(images, outputs, name=name)


def objectness_inference_model(detector, **decoder_kwargs):
    """Wraps a trained detector so that it returns decoded boxes.

    Args:
        detector: a model from `objectness_detector`.
        **decoder_kwargs: arguments of `keras_objectness.layers.BoxBinDecoder`
            (e.g. `max_detections`, `iou_threshold`,
            `bounding_box_format`).

    Returns:
        A functional `keras.Model` from images to the decoder's dict
        `{"boxes", "confidence", "num_detections"}`.
    """
    head = _box_bin_head(detector)
    decoder = BoxBinDecoder(
        head.box_space,
        from_logits=head.activation is None,
        name=f"{detector.name}_decoder",
        **decoder_kwargs,
    )
    # One input tensor, not a list of one: `model.export` then gives a
    # `serve` endpoint that takes the images themselves.
    return keras.Model(
        detector.inputs[0],
        decoder(detector.outputs[0]),
        name=f"{detector.name}_inference",
    )


def _box_bin_head(detector):
    heads = [
        layer for layer in detector.layers if isinstance(layer, BoxBinSoftmax)
    ]
    if len(heads) != 1 or len(detector.outputs) != 1:
        raise ValueError(
            "`detector` must be a model with one `BoxBinSoftmax` output, "
            "as built by `objectness_detector`. "
            f"Received: detector={detector.name!r} with {len(heads)} "
            "BoxBinSoftmax layers"
        )
    return heads[0]
