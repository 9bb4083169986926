import math

import keras
from keras import ops

from keras_objectness import box_space as box_space_lib
from keras_objectness import box_utils


@keras.saving.register_keras_serializable(package="keras_objectness")
class BoxBinSoftmax(keras.layers.Layer):
    """A dense layer with a softmax over the bins of a `BoxSpace`.

    The class-generic objectness output: one unit per box bin, normalised
    over all bins, so the network states where in the image (and at which
    scale and aspect ratio) objects are. A feature map input is flattened
    first. The matrix product runs in the layer's compute dtype; the softmax
    always runs in float32 and the output is float32, because the
    probabilities of thousands of bins are too small for float16.

    Inputs must have the feature count the layer was built on. Eager calls
    raise a `ValueError` for NaN or infinite inputs; inside graphs (`fit`,
    `predict`) they pass through, as in `keras.layers.Dense`, and give NaN
    outputs.

    Args:
        box_space: `keras_objectness.BoxSpace` (or its config).
        activation: `"softmax"` for probabilities or `None` for logits (to
            train with `CategoricalCrossentropy(from_logits=True)`).
            Defaults to `"softmax"`.
        kernel_initializer: initializer of the kernel. Defaults to
            `"glorot_uniform"`.
        bias_initializer: initializer of the bias. Defaults to `"zeros"`.
        kernel_regularizer: optional regularizer of the kernel.
        bias_regularizer: optional regularizer of the bias.
        **kwargs: standard `keras.layers.Layer` arguments.

    Call arguments:
        inputs: float tensor `(batch, features)` or a feature map
            `(batch, height, width, channels)`.

    Returns:
        float32 tensor `(batch, box_space.num_bins)`: probabilities summing
        to one, or logits.

    Example:

    ```python
    space = keras_objectness.BoxSpace(grid_shape=(8, 8))
    head = keras_objectness.layers.BoxBinSoftmax(space)
    probabilities = head(np.zeros((2, 128)))  # shape (2, space.num_bins)
    ```

    References:
        - [Huval, Coates and Ng, 2013. Deep learning for class-generic
          object detection](https://arxiv.org/abs/1312.6885), section 3.2.
    """

    def __init__(
        self,
        box_space,
        activation="softmax",
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        kernel_regularizer=None,
        bias_regularizer=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.box_space = box_space_lib.get(box_space)
        if activation not in ("softmax", None):
            raise ValueError(
                "`activation` must be 'softmax' or None (logits). "
                f"Received: activation={activation!r}"
            )
        self.activation = activation
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self.bias_regularizer = keras.regularizers.get(bias_regularizer)

    def build(self, input_shape):
        if len(input_shape) < 2 or any(d is None for d in input_shape[1:]):
            raise ValueError(
                "`BoxBinSoftmax` needs inputs `(batch, features)` or a "
                "feature map with known static sizes. "
                f"Received: input_shape={input_shape}"
            )
        features = math.prod(input_shape[1:])
        self.kernel = self.add_weight(
            name="kernel",
            shape=(features, self.box_space.num_bins),
            initializer=self.kernel_initializer,
            regularizer=self.kernel_regularizer,
        )
        self.bias = self.add_weight(
            name="bias",
            shape=(self.box_space.num_bins,),
            initializer=self.bias_initializer,
            regularizer=self.bias_regularizer,
        )

    def call(self, inputs):
        shape = tuple(inputs.shape)
        if len(shape) < 2:
            raise ValueError(
                "`inputs` must have shape `(batch, features)` or be a "
                f"feature map. Received: inputs.shape={shape}"
            )
        features = self.kernel.shape[0]
        if all(d is not None for d in shape[1:]) and (
            math.prod(shape[1:]) != features
        ):
            raise ValueError(
                f"`inputs` must have the {features} features per example "
                "that the layer was built on. "
                f"Received: inputs.shape={shape}"
            )
        box_utils.check_finite(inputs, "inputs")
        if len(inputs.shape) > 2:
            inputs = ops.reshape(inputs, (ops.shape(inputs)[0], -1))
        logits = ops.matmul(inputs, self.kernel) + self.bias
        logits = ops.cast(logits, "float32")
        if self.activation is None:
            return logits
        return ops.softmax(logits, axis=-1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.box_space.num_bins)

    def compute_output_spec(self, inputs):
        return keras.KerasTensor(
            self.compute_output_shape(inputs.shape), dtype="float32"
        )

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "box_space": keras.saving.serialize_keras_object(
                    self.box_space
                ),
                "activation": self.activation,
                "kernel_initializer": keras.initializers.serialize(
                    self.kernel_initializer
                ),
                "bias_initializer": keras.initializers.serialize(
                    self.bias_initializer
                ),
                "kernel_regularizer": keras.regularizers.serialize(
                    self.kernel_regularizer
                ),
                "bias_regularizer": keras.regularizers.serialize(
                    self.bias_regularizer
                ),
            }
        )
        return config
