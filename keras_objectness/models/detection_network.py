"""The LSDA detection network: a classifier's backbone and a background head."""

import keras

from keras_objectness.layers.background_head import BackgroundHead


def detection_network(
    classifier,
    detection_classes,
    output_mode="probabilities",
    output_layer_name=None,
    background_initializer="zeros",
    train_detection_classes=True,
    name="detector",
):
    """Turns a trained image classifier into a `K + 1`-way detection network.

    The classifier's output `Dense` (the layer `W^c`) is replaced by a
    `keras_objectness.layers.BackgroundHead` with one more unit, the
    background (index `K`, last). The head's class columns and biases start
    as copies of the `Dense` kernel and bias; its background column starts
    from `background_initializer`. Everything before the output layer (the
    backbone) is the classifier's own layer objects, so the detection
    network starts from, and fine-tuning changes, the classifier's backbone
    weights. Build from a copy (`keras.models.clone_model` plus
    `set_weights`) to keep the classifier itself unchanged.

    The head gets the `Dense` layer's dtype policy: `image_classifier`
    keeps its output layer in float32 under mixed precision, and so does
    the head. The snapshot of `W^c` is not taken here: train with
    `keras_objectness.callbacks.DetectorAdapter` (or call the head's
    `take_snapshot()` before fine-tuning).

    Args:
        classifier: `keras.Model`. A trained functional classifier, e.g. from
            `keras_objectness.models.image_classifier`, whose output layer
            is a `Dense` with one unit per class.
        detection_classes: sorted collection of class ids B, or a
            `keras_objectness.ClassSplit` with `num_classes` equal to the
            `Dense` units.
        output_mode: `"probabilities"`, `"logits"` or `"scores"`; see
            `BackgroundHead`. Defaults to `"probabilities"`.
        output_layer_name: str or `None`. Name of the classifier's output
            `Dense`. `None` picks the single `Dense` whose name ends with
            `"_predictions"` (the name `image_classifier` gives it).
            Defaults to `None`.
        background_initializer: initializer of the background kernel
            column. Defaults to `"zeros"`.
        train_detection_classes: bool. Passed to the head: if `False`, the
            class columns of B get no gradient and only the background unit
            of the output layer learns. Defaults to `True`.
        name: str. Model name; the head is named
            `f"{name}_background_head"`. Defaults to `"detector"`.

    Returns:
        A functional `keras.Model` from the classifier's inputs to float32
        `(batch, K + 1)` (or `(batch, K)` scores).

    Example:

    ```python
    from keras_objectness.models import ALEXNET_PRESETS
    from keras_objectness.models import alexnet_backbone
    from keras_objectness.models import detection_network
    from keras_objectness.models import image_classifier

    backbone = alexnet_backbone(**ALEXNET_PRESETS["alexnet_small_64"])
    classifier = image_classifier(backbone, num_classes=10)
    # ... train the classifier ...
    detector = detection_network(classifier, detection_classes=(0, 1, 2))
    detector.output.shape  # (None, 11): 10 classes, background last
    ```

    References:
        - [Hoffman et al., 2014. LSDA: Large Scale Detection through
          Adaptation](https://arxiv.org/abs/1407.5035), section 3.2.
    """
    # === Config ===
    if not isinstance(classifier, keras.Model) or not hasattr(
        classifier, "inputs"
    ):
        raise ValueError(
            "`classifier` must be a functional `keras.Model`. "
            f"Received: classifier={classifier!r}"
        )
    dense = _output_dense(classifier, output_layer_name)
    if not isinstance(name, str) or not name:
        raise ValueError(
            f"`name` must be a non-empty string. Received: name={name!r}"
        )

    # === Layers ===
    head = BackgroundHead(
        dense.units,
        detection_classes,
        output_mode=output_mode,
        background_initializer=background_initializer,
        train_detection_classes=train_detection_classes,
        dtype=dense.dtype_policy,
        name=f"{name}_background_head",
    )

    # === Functional Model ===
    # The classifier's own feature tensor: the new graph reuses every layer
    # before the output layer.
    outputs = head(_features_of(classifier, dense))
    head.initialize_from_classifier(dense)
    return keras.Model(classifier.inputs, outputs, name=name)


def _output_dense(classifier, output_layer_name):
    if output_layer_name is None:
        candidates = [
            layer
            for layer in classifier.layers
            if isinstance(layer, keras.layers.Dense)
            and layer.name.endswith("_predictions")
        ]
        if len(candidates) != 1:
            raise ValueError(
                "`classifier` must have exactly one `Dense` layer named "
                "'*_predictions' (as `image_classifier` builds), or pass "
                "`output_layer_name`. Received: classifier with layers "
                f"{[layer.name for layer in classifier.layers]}"
            )
        dense = candidates[0]
    else:
        try:
            dense = classifier.get_layer(output_layer_name)
        except ValueError:
            raise ValueError(
                "`output_layer_name` must name a layer of `classifier`. "
                f"Received: output_layer_name={output_layer_name!r}"
            ) from None
        if not isinstance(dense, keras.layers.Dense):
            raise ValueError(
                "`output_layer_name` must name a `keras.layers.Dense`. "
                f"Received: output_layer_name={output_layer_name!r} "
                f"({type(dense).__name__})"
            )
    return dense


def _features_of(classifier, dense):
    """The input tensor of `dense` in the classifier's own graph.

    A layer keeps the nodes of every graph it was called in; the one that
    belongs to `classifier` is the node listed in the model's node keys
    (Keras' functional bookkeeping, `make_node_key`).
    """
    own_nodes = getattr(classifier, "_nodes", ())
    inputs = [
        node.input_tensors
        for index, node in enumerate(dense._inbound_nodes)
        if f"{id(dense)}_ib-{index}" in own_nodes
    ]
    if len(inputs) != 1 or len(inputs[0]) != 1:
        raise ValueError(
            "The classifier's output `Dense` must be called exactly once, on "
            "one feature tensor, in the graph of `classifier`. Received: "
            f"layer {dense.name!r} with {len(inputs)} calls in the classifier"
        )
    return inputs[0][0]
