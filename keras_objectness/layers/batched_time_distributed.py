import copy

import keras
from keras import ops
from keras import tree


@keras.saving.register_keras_serializable(package="keras_objectness")
class BatchedTimeDistributed(keras.layers.TimeDistributed):
    """Applies a layer to every time step in one call, time folded into batch.

    Keras' `TimeDistributed` unrolls a Python loop over a static time axis:
    on 100 region crops it traces 100 copies of the wrapped network, and
    the first `predict` of a detector spends most of its time building that
    graph. This wrapper reshapes `(batch, steps, ...)` to
    `(batch * steps, ...)`, calls the layer once and reshapes back, so the
    graph holds the layer once whatever the number of steps. The result is
    the same for any layer that treats batch rows independently (no batch
    statistics: `BatchNormalization` in training mode would see
    `batch * steps` rows). Masks are not supported.

    Args:
        layer: `keras.layers.Layer` (or model) applied to each step.
        **kwargs: standard `keras.layers.Layer` arguments.

    Call arguments:
        inputs: tensor `(batch, steps, ...)`.
        training: optional bool, passed to the layer if it takes one.

    Returns:
        The layer's output(s) with the `(batch, steps)` axes in front.

    Example:

    ```python
    crops = keras.Input((100, 32, 32, 3))
    scores = BatchedTimeDistributed(scoring_network)(crops)
    ```
    """

    def call(self, inputs, training=None):
        shape = ops.shape(inputs)
        batch, steps = shape[0], shape[1]
        folded = ops.reshape(inputs, (-1, *shape[2:]))
        kwargs = {}
        if self.layer._call_has_training_arg:
            kwargs["training"] = training
        outputs = self.layer(folded, **kwargs)
        return tree.map_structure(
            lambda x: ops.reshape(x, (batch, steps, *ops.shape(x)[1:])),
            outputs,
        )

    @classmethod
    def from_config(cls, config, custom_objects=None):
        # Keras' `Wrapper.from_config` pops keys from the (nested) dicts
        # it is given; work on a copy so the caller's config stays whole.
        return super().from_config(copy.deepcopy(config), custom_objects)
