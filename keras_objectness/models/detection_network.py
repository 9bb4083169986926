"""The LSDA detection network: a classifier's backbone and a background head."""

import keras
import numpy as np

from keras_objectness.layers.background_head import BackgroundHead

# Layers that are the identity at inference: the walk from the output to
# the class layer passes through them.
_IDENTITY_AT_INFERENCE = (
    keras.layers.Dropout,
    keras.layers.SpatialDropout1D,
    keras.layers.SpatialDropout2D,
    keras.layers.SpatialDropout3D,
    keras.layers.GaussianNoise,
    keras.layers.GaussianDropout,
    keras.layers.AlphaDropout,
    keras.layers.ActivityRegularization,
    keras.layers.Identity,
)
_GLOBAL_AVERAGE_POOLING = (
    keras.layers.GlobalAveragePooling1D,
    keras.layers.GlobalAveragePooling2D,
    keras.layers.GlobalAveragePooling3D,
)


def detection_network(
    classifier,
    detection_classes,
    output_mode="probabilities",
    output_layer_name=None,
    background_initializer="zeros",
    train_detection_classes=True,
    copy_classifier=True,
    mask_heldout_classes=True,
    name="detector",
):
    """Turns a trained image classifier into a `K + 1`-way detection network.

    The classifier's class layer (the layer `W^c` that holds one weight
    vector per class) is replaced by a `keras_objectness.layers.BackgroundHead`
    with one more unit, the background (index `K`, last). The head's class
    columns and biases start as copies of the class layer's kernel and
    bias; its background column starts from `background_initializer`.
    Everything before the class layer (the backbone) is kept.

    **Which classifiers.** A functional `keras.Model` or a built
    `keras.Sequential` with one output, e.g. from
    `keras_objectness.models.image_classifier` or `keras.applications`
    (`include_top=True`). The class layer is found from the graph: starting
    at the output, the walk passes through layers that only change the form
    of the class scores (`Activation`, `Softmax`, `Dropout` and the other
    layers that are the identity at inference, a `Flatten` or `Reshape` that
    only drops or adds axes of size 1, a global average pooling) and stops
    at the first `Dense` or `Conv2D` with a 1x1 kernel. A 1x1 `Conv2D` (as
    in MobileNetV3) is used as the `Dense` it equals: its kernel
    `(1, 1, F, K)` becomes `(F, K)` and its input, a 1x1 map, is flattened;
    a class layer applied at every position and followed by global average
    pooling gets its input pooled instead (averaging commutes with the
    linear layer). The class logits of the detection network are therefore
    the classifier's own logits. `output_layer_name` overrides the walk.

    **Activation.** The classifier's output must be a softmax over the `K`
    classes (as the `Dense` activation or a following `Softmax`/
    `Activation` layer) or the plain logits. LSDA's background unit joins
    the softmax over classes, so a sigmoid output (independent per-class
    probabilities) is refused: its logits were not trained to compete and
    no exact conversion to a softmax exists; retrain the output layer with
    a softmax first.

    **Copy or share.** With `copy_classifier=True` (the default) the network
    is built on a clone of the classifier (`keras.models.clone_model`) with
    its weights copied, so fine-tuning the detection network leaves the
    classifier untouched. With `copy_classifier=False` the network reuses
    the classifier's layer objects: it starts from, and fine-tuning
    changes, the classifier's own backbone weights (no second copy in
    memory). Call this function under a `tf.distribute.Strategy` scope to
    create the copy there.

    The head gets the class layer's dtype policy: `image_classifier`
    keeps its output layer in float32 under mixed precision, and so does
    the head. The snapshot of `W^c` is not taken here: train with
    `keras_objectness.callbacks.DetectorAdapter` (or call the head's
    `take_snapshot()` before fine-tuning).

    Args:
        classifier: `keras.Model`. A trained functional classifier or a built
            `keras.Sequential` whose output is a softmax over `K` classes
            or the `K` logits.
        detection_classes: sorted collection of class ids B, or a
            `keras_objectness.ClassSplit` with `num_classes` equal to the
            class layer's units.
        output_mode: `"probabilities"`, `"logits"` or `"scores"`; see
            `BackgroundHead`. Defaults to `"probabilities"`.
        output_layer_name: str or `None`. Name of the class layer, a `Dense`
            or a 1x1 `Conv2D`. `None` finds it from the graph (see above).
            Defaults to `None`.
        background_initializer: initializer of the background kernel
            column. Defaults to `"zeros"`.
        train_detection_classes: bool. Passed to the head: if `False`, the
            class columns of B get no gradient and only the background unit
            of the output layer learns. Defaults to `True`.
        copy_classifier: bool. If `True`, build on a copy of the classifier
            (layers cloned, weights copied) so that training the network
            never changes `classifier`; if `False`, share the classifier's
            layers and weights. Defaults to `True`.
        mask_heldout_classes: bool. Passed to the head: if `True` (LSDA),
            the held-out classes' logits are masked in training; `False`
            for losses that mask per example, such as
            `keras_objectness.losses.JointDetectionLoss`. Defaults to
            `True`.
        name: str. Model name; the head is named
            `f"{name}_background_head"`. Defaults to `"detector"`.

    Returns:
        A functional `keras.Model` from the classifier's inputs to float32
        `(batch, K + 1)` (or `(batch, K)` scores).

    Example:

    ```python
    classifier = keras.applications.MobileNetV3Small(
        input_shape=(32, 32, 3), weights=None, classes=10
    )
    # ... train the classifier ...
    detector = detection_network(classifier, detection_classes=(0, 1, 2))
    detector.output.shape  # (None, 11): 10 classes, background last
    ```

    References:
        - [Hoffman et al., 2014. LSDA: Large Scale Detection through
          Adaptation](https://arxiv.org/abs/1407.5035), section 3.2.
    """
    # === Config ===
    graph = _functional_graph(classifier, fresh_input=False)
    if not isinstance(copy_classifier, (bool, np.bool_)):
        raise ValueError(
            "`copy_classifier` must be a bool. Received: "
            f"copy_classifier={copy_classifier!r}"
        )
    if not isinstance(name, str) or not name:
        raise ValueError(
            f"`name` must be a non-empty string. Received: name={name!r}"
        )
    # Analyse the user's graph first (errors name its layers), then repeat
    # on the copy, whose layers have the same names and structure.
    _class_layer(graph, output_layer_name)
    if copy_classifier:
        classifier = copy_model(classifier)
    graph = _functional_graph(classifier, fresh_input=True)
    layer, features, pooling = _class_layer(graph, output_layer_name)
    kernel, bias = _class_weights(layer)
    units = kernel.shape[1]

    # === Layers ===
    head = BackgroundHead(
        units,
        detection_classes,
        output_mode=output_mode,
        background_initializer=background_initializer,
        train_detection_classes=train_detection_classes,
        mask_heldout_classes=mask_heldout_classes,
        dtype=layer.dtype_policy,
        name=f"{name}_background_head",
    )
    if pooling is not None:
        to_features = type(pooling)(
            data_format=pooling.data_format,
            dtype=layer.dtype_policy,
            name=f"{name}_features",
        )
    elif len(features.shape) > 2:
        to_features = keras.layers.Flatten(
            dtype=layer.dtype_policy, name=f"{name}_features"
        )
    else:
        to_features = None

    # === Functional Model ===
    # The graph's own feature tensor: the new model reuses every layer
    # before the class layer.
    if to_features is not None:
        features = to_features(features)
    outputs = head(features)
    _initialize_head(head, kernel, bias)
    return keras.Model(graph.input, outputs, name=name)


def _functional_graph(classifier, fresh_input):
    """The functional graph of a functional or built Sequential model.

    With `fresh_input`, a Sequential's layers are called once more, on an
    input of any batch size (a Sequential built by a call on data has that
    batch size fixed); without, its own graph is returned (to inspect it).
    """
    if isinstance(classifier, keras.Sequential):
        if getattr(classifier, "_functional", None) is None:
            raise ValueError(
                "`classifier` must be a built `keras.Sequential`: start it "
                "with `keras.Input(shape)` or call `build(input_shape)`. "
                f"Received: unbuilt classifier={classifier.name!r}"
            )
        graph = classifier._functional
    else:
        graph = classifier
    if isinstance(classifier, keras.Sequential) and fresh_input:
        source = classifier.inputs[0]
        images = keras.Input(
            source.shape[1:],
            dtype=source.dtype,
            name=f"{classifier.name}_input",
        )
        outputs = images
        for layer in classifier.layers:
            outputs = layer(outputs)
        graph = keras.Model(images, outputs, name=classifier.name)
    if (
        not isinstance(graph, keras.Model)
        or not hasattr(graph, "inputs")
        or not hasattr(graph, "outputs")
    ):
        raise ValueError(
            "`classifier` must be a functional `keras.Model` or a built "
            f"`keras.Sequential`. Received: classifier={classifier!r}"
        )
    if len(graph.outputs) != 1:
        raise ValueError(
            "`classifier` must have exactly one output, its class scores. "
            f"Received: classifier with {len(graph.outputs)} outputs"
        )
    return graph


def copy_model(
    model,
    argument="classifier",
    alternative="Pass `copy_classifier=False` to share its layers.",
):
    """A clone of `model` holding copies of its weights.

    `argument` and `alternative` word the error of a model whose clone
    does not have the same weights (a subclassed model, for instance).
    """
    copy = keras.models.clone_model(model)
    source, target = model.weights, copy.weights
    if len(source) != len(target) or any(
        tuple(s.shape) != tuple(t.shape) for s, t in zip(source, target)
    ):
        raise ValueError(
            f"`{argument}` could not be copied: its clone has different "
            f"weights. {alternative} Received: {argument}={model.name!r}"
        )
    for s, t in zip(source, target):
        # A copy of the value: under JAX `assign` keeps the array object
        # itself, and a jitted call on one model that donates its buffers
        # would delete the other model's weights.
        t.assign(np.array(keras.ops.convert_to_numpy(s)))
    return copy


def _producer(tensor):
    """`(layer, node)` that computed a symbolic tensor."""
    history = tensor._keras_history
    layer = history.operation
    return layer, layer._inbound_nodes[history.node_index]


def _graph_nodes(graph):
    """Every `(layer, node)` of the graph reachable from its outputs."""
    seen, found, stack = set(), [], list(graph.outputs)
    while stack:
        layer, node = _producer(stack.pop())
        if id(node) in seen:
            continue
        seen.add(id(node))
        found.append((layer, node))
        stack.extend(node.input_tensors)
    return found


def _is_class_layer(layer):
    if isinstance(layer, keras.layers.Dense):
        return True
    return (
        isinstance(layer, keras.layers.Conv2D)
        and tuple(layer.kernel_size) == (1, 1)
        and layer.groups == 1
    )


def _channel_axis(layer):
    if isinstance(layer, keras.layers.Conv2D):
        if layer.data_format == "channels_first":
            return 1
    return -1


def _softmax_over_classes(shape, axis):
    """Whether a softmax over `axis` of `shape` (batch first) sees all K."""
    if not isinstance(axis, int) or axis % len(shape) == 0:
        return False
    axis = axis % len(shape)
    return all(size == 1 for i, size in enumerate(shape) if i not in (0, axis))


def _walk_from_output(graph):
    """Walks back from the output through layers that keep class scores.

    Returns `(layer, node, path)`: the first layer that is not passed
    through (the class layer if the graph has one), its node, and the
    `(layer, output tensor)` pairs passed, from the output backwards.
    """
    tensor = graph.outputs[0]
    path = []
    while True:
        layer, node = _producer(tensor)
        if _is_class_layer(layer) or len(node.input_tensors) != 1:
            return layer, node, path
        inputs = node.input_tensors[0]
        passes = isinstance(
            layer,
            _IDENTITY_AT_INFERENCE
            + _GLOBAL_AVERAGE_POOLING
            + (keras.layers.Activation, keras.layers.Softmax),
        )
        if isinstance(layer, (keras.layers.Flatten, keras.layers.Reshape)):
            # Only dropping or adding axes of size 1 keeps the classes.
            passes = [d for d in inputs.shape[1:] if d != 1] == [
                d for d in tensor.shape[1:] if d != 1
            ]
        if not passes:
            return layer, node, path
        path.append((layer, tensor))
        tensor = inputs


def _class_layer(graph, output_layer_name):
    """`(layer, features, pooling)` of the graph's class layer.

    `features` is the class layer's input tensor in `graph`; `pooling` is
    the global average pooling layer that follows the class layer, if any
    (its input then needs the same pooling), else `None`.
    """
    last, node, path = _walk_from_output(graph)
    if output_layer_name is None:
        if not _is_class_layer(last):
            raise ValueError(
                "`classifier` must end in a class layer: a "
                "`keras.layers.Dense` or a 1x1 `keras.layers.Conv2D` with one "
                "unit per class, followed only by activations, dropout, "
                "flattening or global average pooling. Pass "
                "`output_layer_name` to name it. Received: classifier whose "
                "output comes from "
                f"{_describe([last] + [step for step, _ in path[::-1]])}"
            )
        layer = last
    else:
        layer = _named_class_layer(graph, output_layer_name)
        if layer is not last:
            # A class layer elsewhere: only its own activation matters.
            node, path = _single_node(graph, layer), []
    if _single_node(graph, layer) is not node or len(node.input_tensors) != 1:
        raise ValueError(
            "The classifier's class layer must be called on one feature "
            f"tensor. Received: layer {layer.name!r}"
        )
    pooling = _check_activations(layer, node, path)
    features = node.input_tensors[0]
    spatial = _spatial_shape(features.shape, _channel_axis(layer))
    if pooling is None and any(size != 1 for size in spatial):
        raise ValueError(
            "The classifier's class layer must see a 1x1 feature map (or be "
            "followed by global average pooling). Received: layer "
            f"{layer.name!r} with input shape {tuple(features.shape)}"
        )
    return layer, features, pooling


def _named_class_layer(graph, output_layer_name):
    try:
        layer = graph.get_layer(output_layer_name)
    except ValueError:
        raise ValueError(
            "`output_layer_name` must name a layer of `classifier`. "
            f"Received: output_layer_name={output_layer_name!r}"
        ) from None
    if not _is_class_layer(layer):
        raise ValueError(
            "`output_layer_name` must name the class layer: a "
            "`keras.layers.Dense` or a `keras.layers.Conv2D` with a 1x1 "
            f"kernel. Received: output_layer_name={output_layer_name!r} "
            f"({type(layer).__name__})"
        )
    return layer


def _single_node(graph, layer):
    """The one node of `layer` in `graph`, or a `ValueError`."""
    nodes = [node for owner, node in _graph_nodes(graph) if owner is layer]
    if len(nodes) != 1:
        raise ValueError(
            "The classifier's class layer must be called exactly once, on "
            "one feature tensor, in the graph of `classifier`. Received: "
            f"layer {layer.name!r} with {len(nodes)} calls in the classifier"
        )
    return nodes[0]


def _spatial_shape(shape, channel_axis):
    axes = range(1, len(shape))
    channel_axis = channel_axis % len(shape)
    return tuple(shape[i] for i in axes if i != channel_axis)


def _activation_name(function):
    return getattr(function, "__name__", repr(function))


def _check_activations(layer, node, path):
    """Checks the output is a softmax or logits; returns the pooling layer.

    Walks forward from the class layer (its own activation first) through
    `path` (given from the output backwards).
    """
    steps = [(layer, node.outputs[0])]
    steps += path[::-1]
    pooling, softmaxes = None, 0
    for step, output in steps:
        if isinstance(step, _GLOBAL_AVERAGE_POOLING):
            # Averaging commutes only with the linear class layer.
            if pooling is not None or softmaxes:
                raise ValueError(
                    "The classifier must pool its class logits before any "
                    "softmax, and only once. Received: pooling layer "
                    f"{step.name!r} after the class layer {layer.name!r}"
                )
            if isinstance(layer, keras.layers.Conv2D) and tuple(
                layer.strides
            ) != (1, 1):
                raise ValueError(
                    "A pooled 1x1 `Conv2D` class layer must have strides 1. "
                    f"Received: layer {layer.name!r} with strides "
                    f"{layer.strides}"
                )
            if (step.data_format == "channels_first") != (
                _channel_axis(layer) == 1
            ):
                raise ValueError(
                    "The pooling after the class layer must use the class "
                    "layer's channel axis. Received: pooling layer "
                    f"{step.name!r} with data_format={step.data_format!r}"
                )
            pooling = step
            continue
        if isinstance(step, keras.layers.Softmax):
            activation, axis = "softmax", step.axis
        elif hasattr(step, "activation") and step.activation is not None:
            activation, axis = _activation_name(step.activation), -1
        else:
            continue
        if activation == "linear":
            continue
        if activation == "sigmoid":
            raise ValueError(
                "`classifier` must output a softmax over its classes (or "
                "logits), not a sigmoid: LSDA adds the background as one "
                "more unit of a softmax, and independent per-class sigmoid "
                "scores have no exact softmax equivalent. Retrain the class "
                "layer with a softmax. Received: sigmoid in layer "
                f"{step.name!r}"
            )
        if activation != "softmax":
            raise ValueError(
                "`classifier` must output a softmax over its classes or "
                f"logits. Received: activation {activation!r} in layer "
                f"{step.name!r} after the class layer"
            )
        if not _softmax_over_classes(tuple(output.shape), axis):
            raise ValueError(
                "The classifier's softmax must run over the class axis. "
                f"Received: softmax in layer {step.name!r} on shape "
                f"{tuple(output.shape)}"
            )
        softmaxes += 1
        if softmaxes > 1:
            raise ValueError(
                "`classifier` must apply one softmax to its class logits. "
                f"Received: a second softmax in layer {step.name!r}"
            )
    return pooling


def _describe(layers):
    return " -> ".join(
        f"{layer.name} ({type(layer).__name__})" for layer in layers
    )


def _class_weights(layer):
    """The class layer's `(F, K)` kernel and `(K,)` bias as numpy arrays."""
    kernel = keras.ops.convert_to_numpy(layer.kernel)
    kernel = kernel.reshape(kernel.shape[-2], kernel.shape[-1])
    if layer.use_bias:
        bias = keras.ops.convert_to_numpy(layer.bias)
    else:
        bias = np.zeros((kernel.shape[1],), kernel.dtype)
    return kernel, bias


def _initialize_head(head, kernel, bias):
    """Copies `W^c` into the head's class columns (background kept)."""
    units = kernel.shape[1]
    head_kernel = keras.ops.convert_to_numpy(head.kernel).copy()
    head_bias = keras.ops.convert_to_numpy(head.bias).copy()
    head_kernel[:, :units] = kernel
    head_bias[:units] = bias
    head.kernel.assign(head_kernel)
    head.bias.assign(head_bias)
