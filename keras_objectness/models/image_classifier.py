"""An image classifier: a backbone followed by one `Dense` output layer."""

import numbers

import keras

_LOW_PRECISION_DTYPES = ("float16", "bfloat16")


def image_classifier(
    backbone,
    num_classes,
    activation="softmax",
    name="classifier",
):
    """Puts a `num_classes`-way `Dense` output layer on a feature backbone.

    The output layer, named `f"{name}_predictions"`, is the classification
    layer `W^c` of the LSDA detector adaptation: its kernel has one column
    per class, and the adaptation later finds it by that name. The backbone
    is nested as one layer (named after the backbone), so
    `model.get_layer(backbone.name)` returns it and its own layer names
    stay unchanged.

    Under a mixed precision policy the output layer computes in float32 (its
    `dtype` is set to `"float32"`), so the logits and the softmax are exact
    float32 values whatever the backbone computes in.

    Args:
        backbone: `keras.Model`. A model with one input (the images) and one
            rank-2 output (the feature vector), e.g. `alexnet_backbone()`.
        num_classes: int. Number of classes, without background. At least 1.
        activation: string, callable or `None`. Activation of the output
            layer: `"softmax"` for class probabilities, `None` for logits
            (use `from_logits=True` in the loss). Defaults to `"softmax"`.
        name: string. Name of the model; the output layer is named
            `f"{name}_predictions"`. Defaults to `"classifier"`.

    Returns:
        A functional `keras.Model` from the backbone's inputs to outputs of
        shape `(batch, num_classes)`, in float32 under mixed precision.

    Example:

    ```python
    import numpy as np
    from keras_objectness.models import ALEXNET_PRESETS
    from keras_objectness.models import alexnet_backbone
    from keras_objectness.models import image_classifier

    backbone = alexnet_backbone(**ALEXNET_PRESETS["alexnet_small_64"])
    classifier = image_classifier(backbone, num_classes=10)
    images = np.random.randint(0, 256, (2, 64, 64, 3), dtype="uint8")
    probabilities = classifier(images)  # shape (2, 10), rows sum to 1
    output_layer = classifier.get_layer("classifier_predictions")
    ```

    References:
        - [Hoffman et al., 2014. LSDA: Large Scale Detection through
          Adaptation](https://arxiv.org/abs/1407.5035), the classifier
          layer `W^c` that the detector adaptation starts from.
    """
    # === Config ===
    if not isinstance(backbone, keras.Model):
        raise ValueError(
            "`backbone` must be a `keras.Model`. "
            f"Received: backbone={backbone!r}"
        )
    if len(backbone.inputs) != 1 or len(backbone.outputs) != 1:
        raise ValueError(
            "`backbone` must have exactly one input and one output. "
            f"Received: backbone with {len(backbone.inputs)} inputs and "
            f"{len(backbone.outputs)} outputs"
        )
    feature_shape = backbone.outputs[0].shape
    if len(feature_shape) != 2 or feature_shape[-1] is None:
        raise ValueError(
            "`backbone` must output a feature vector of shape (batch, "
            f"features). Received: backbone output shape={feature_shape}"
        )
    if (
        isinstance(num_classes, bool)
        or not isinstance(num_classes, numbers.Integral)
        or num_classes < 1
    ):
        raise ValueError(
            "`num_classes` must be a positive integer. "
            f"Received: num_classes={num_classes}"
        )
    if not isinstance(name, str) or not name:
        raise ValueError(
            f"`name` must be a non-empty string. Received: name={name}"
        )
    output_dtype = None
    if keras.config.dtype_policy().compute_dtype in _LOW_PRECISION_DTYPES:
        output_dtype = "float32"

    # === Layers ===
    predictions = keras.layers.Dense(
        int(num_classes),
        activation=activation,
        dtype=output_dtype,
        name=f"{name}_predictions",
    )

    # === Functional Model ===
    backbone_input = backbone.inputs[0]
    inputs = keras.Input(
        shape=backbone_input.shape[1:],
        dtype=backbone_input.dtype,
        name=f"{name}_images",
    )
    outputs = predictions(backbone(inputs))
    return keras.Model(inputs=inputs, outputs=outputs, name=name)
