import keras
import numpy as np
from keras import ops

from keras_objectness.class_split import ClassSplit

_OUTPUT_MODES = ("probabilities", "logits", "scores")


def large_negative(dtype):
    """A finite, very negative number that `dtype` can hold.

    Masked logits take this value so that their softmax probability is
    exactly zero while sums and products with them stay finite (a `-inf`
    would turn `0 * -inf` in a cross-entropy into NaN). float16 cannot hold
    `-1e9`, so it gets `-3e4` (its largest finite value is 65504).

    Args:
        dtype: a float dtype name or object.

    Returns:
        A Python float.
    """
    if keras.backend.standardize_dtype(dtype) == "float16":
        return -3e4
    return -1e9


@keras.saving.register_keras_serializable(package="keras_objectness")
class BackgroundHead(keras.layers.Layer):
    """A `K + 1`-way output layer: `K` object classes plus background.

    The detection output layer of LSDA. Column `i < K` of the kernel holds
    class `i`; the last column (index `K`) is the background class. The
    class columns normally start as a copy of a trained classifier's output
    layer `W^c` (`initialize_from_classifier`); detection fine-tuning then
    trains the columns of the detection classes B and the background only.

    While training (`training=True`), the logits of the held-out classes A
    (every class not in `detection_classes`) are replaced by a large
    negative number before the softmax, so those classes take no
    probability mass and their kernel columns and biases get exactly zero
    gradient. The mask is applied to float32 logits with a dtype-aware
    value (`large_negative`), never `-inf`. Training labels must therefore
    be classes of B or the background index `K`. (An optimizer's own
    weight decay would still shrink A's columns; `adapt_classifier`
    rebuilds them from the snapshot, so the adapted result does not depend
    on it.) At inference no class is masked.

    With `mask_heldout_classes=False` the layer masks nothing, in training
    or not: joint fine-tuning trains detection examples (B and background)
    and classification examples (all `K` classes) in the same batches, and
    its loss, `keras_objectness.losses.JointDetectionLoss`, masks A's
    logits per example instead. A's columns then learn from the
    classification examples.

    With `train_detection_classes=False` the columns and biases of B are
    frozen as well: the layer reads them through `stop_gradient`, so only
    the background column and bias receive a gradient (the paper's
    "fcbgrnd" rows of Table 1, where the output layer of B is not
    adapted). Everything before the head still trains unless frozen
    separately.

    The layer also keeps, as non-trainable weights, a snapshot of the class
    columns taken before fine-tuning (`take_snapshot`): the `W^c` that
    `keras_objectness.adapt_classifier` needs. Being weights, the snapshot
    and its `snapshot_taken` flag are written to `.keras` files and
    checkpoints and restored by `keras.callbacks.BackupAndRestore`.

    The matrix product runs in the layer's compute dtype; logits are then
    cast to float32 and the softmax and scores are computed in float32.

    Args:
        num_classes: int. Number of object classes `K`, NOT counting the
            background. At least 1. The layer has `K + 1` output units.
        detection_classes: sorted collection of distinct ints in
            `[0, num_classes)`, or a `keras_objectness.ClassSplit`. The
            classes B trained with box labels (all classes is allowed: an
            "oracle" split). Stored as a sorted tuple.
        output_mode: str. `"probabilities"`: softmax over the `K + 1` units;
            `"logits"`: the `K + 1` logits; `"scores"`: the `K` LSDA
            detection scores `(w_i.x + b_i) - (w_bg.x + b_bg)`, each class
            logit minus the background logit. Defaults to
            `"probabilities"`.
        kernel_initializer: initializer of the `K` class columns of the
            kernel. Defaults to `"glorot_uniform"`.
        bias_initializer: initializer of the `K + 1` biases (background
            included). Defaults to `"zeros"`.
        background_initializer: initializer of the background column of the
            kernel. Defaults to `"zeros"`.
        train_detection_classes: bool. If `False`, the class columns and
            biases of B get no gradient and only the background unit
            learns. Defaults to `True`.
        mask_heldout_classes: bool. If `True`, the logits of the held-out
            classes A are masked while training; if `False`, they never
            are (for a loss that masks per example, such as
            `keras_objectness.losses.JointDetectionLoss`). Defaults to
            `True`.
        class_names: `None` or a sequence of `num_classes` distinct
            non-empty strings, the names of the classes in id order
            (background not included). Stored as a tuple and in the
            config, so the names travel with a saved model. `None` takes
            the names of a `ClassSplit` passed as `detection_classes`, if
            it has any. Defaults to `None`.
        **kwargs: standard `keras.layers.Layer` arguments.

    Call arguments:
        inputs: float tensor `(batch, features)`.
        training: bool. If true and `mask_heldout_classes` is true, the
            logits of classes outside `detection_classes` are masked out.
        output_mode: optional str overriding the layer's `output_mode` for
            this call, e.g. `"scores"` to score regions with a head trained
            on probabilities (the weights are the same).

    Returns:
        float32 tensor `(batch, num_classes + 1)` (probabilities or logits,
        background last) or `(batch, num_classes)` (scores).

    Example:

    ```python
    head = keras_objectness.layers.BackgroundHead(5, detection_classes=(0, 3))
    probabilities = head(np.ones((2, 16), "float32"))  # shape (2, 6)
    head.take_snapshot()  # W^c: kernel[:, :5] and bias[:5]
    head.has_snapshot  # True
    ```

    References:
        - [Hoffman et al., 2014. LSDA: Large Scale Detection through
          Adaptation](https://arxiv.org/abs/1407.5035), section 3.2 (the
          background class, fine-tuning on B) and 3.3 (detection scores).
    """

    def __init__(
        self,
        num_classes,
        detection_classes,
        output_mode="probabilities",
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        background_initializer="zeros",
        train_detection_classes=True,
        mask_heldout_classes=True,
        class_names=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if isinstance(detection_classes, ClassSplit):
            if class_names is None:
                class_names = detection_classes.class_names
            if detection_classes.num_classes != num_classes:
                raise ValueError(
                    "A `ClassSplit` passed as `detection_classes` must have "
                    "`num_classes` classes. Received: "
                    f"num_classes={num_classes}, "
                    f"detection_classes={detection_classes!r}"
                )
            detection_classes = detection_classes.detection_classes
        # ClassSplit checks num_classes, the ids (and sorts them) and the
        # names.
        split = ClassSplit(num_classes, detection_classes, class_names)
        if output_mode not in _OUTPUT_MODES:
            raise ValueError(
                f"`output_mode` must be one of {_OUTPUT_MODES}. "
                f"Received: output_mode={output_mode!r}"
            )
        if not isinstance(train_detection_classes, (bool, np.bool_)):
            raise ValueError(
                "`train_detection_classes` must be a bool. Received: "
                f"train_detection_classes={train_detection_classes!r}"
            )
        if not isinstance(mask_heldout_classes, (bool, np.bool_)):
            raise ValueError(
                "`mask_heldout_classes` must be a bool. Received: "
                f"mask_heldout_classes={mask_heldout_classes!r}"
            )
        self.num_classes = split.num_classes
        self.detection_classes = split.detection_classes
        self.class_names = split.class_names
        self.output_mode = output_mode
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.background_initializer = keras.initializers.get(
            background_initializer
        )
        self.train_detection_classes = bool(train_detection_classes)
        self.mask_heldout_classes = bool(mask_heldout_classes)
        # Units kept by the training mask: B and the background.
        keep = np.zeros((self.num_classes + 1,), dtype=bool)
        keep[list(self.detection_classes)] = True
        keep[self.num_classes] = True
        self._training_keep = keep

    @property
    def heldout_classes(self):
        """Sorted tuple of the held-out classes A (not in B)."""
        return tuple(int(i) for i in np.flatnonzero(~self._training_keep[:-1]))

    def build(self, input_shape):
        if len(input_shape) != 2 or input_shape[-1] is None:
            raise ValueError(
                "`BackgroundHead` needs inputs `(batch, features)` with a "
                f"known number of features. Received: input_shape="
                f"{input_shape}"
            )
        features = int(input_shape[-1])
        k = self.num_classes

        def kernel_initializer(shape, dtype=None):
            return ops.concatenate(
                [
                    self.kernel_initializer((features, k), dtype=dtype),
                    self.background_initializer((features, 1), dtype=dtype),
                ],
                axis=1,
            )

        self.kernel = self.add_weight(
            name="kernel",
            shape=(features, k + 1),
            initializer=kernel_initializer,
        )
        self.bias = self.add_weight(
            name="bias", shape=(k + 1,), initializer=self.bias_initializer
        )
        self.classification_kernel = self.add_weight(
            name="classification_kernel",
            shape=(features, k),
            initializer="zeros",
            trainable=False,
        )
        self.classification_bias = self.add_weight(
            name="classification_bias",
            shape=(k,),
            initializer="zeros",
            trainable=False,
        )
        self.snapshot_taken = self.add_weight(
            name="snapshot_taken",
            shape=(),
            initializer="zeros",
            dtype="int32",
            trainable=False,
        )

    def call(self, inputs, training=None, output_mode=None):
        output_mode = self._resolve_output_mode(output_mode)
        # Tensors, not the variables: JAX refuses variables as arguments of
        # its array functions (`where` below).
        kernel = ops.convert_to_tensor(self.kernel)
        bias = ops.convert_to_tensor(self.bias)
        if not self.train_detection_classes:
            # Same values; only the background unit passes gradients.
            background = ops.convert_to_tensor(
                np.arange(self.num_classes + 1) == self.num_classes
            )
            kernel = ops.where(background, kernel, ops.stop_gradient(kernel))
            bias = ops.where(background, bias, ops.stop_gradient(bias))
        logits = ops.matmul(inputs, kernel) + bias
        logits = ops.cast(logits, "float32")
        if training and self.mask_heldout_classes:
            keep = ops.convert_to_tensor(self._training_keep)
            logits = ops.where(
                keep, logits, ops.cast(large_negative(logits.dtype), "float32")
            )
        if output_mode == "logits":
            return logits
        if output_mode == "scores":
            return logits[:, : self.num_classes] - logits[:, self.num_classes :]
        return ops.softmax(logits, axis=-1)

    def _resolve_output_mode(self, output_mode):
        if output_mode is None:
            return self.output_mode
        if output_mode not in _OUTPUT_MODES:
            raise ValueError(
                f"`output_mode` must be one of {_OUTPUT_MODES}. "
                f"Received: output_mode={output_mode!r}"
            )
        return output_mode

    @property
    def has_snapshot(self):
        """bool. Whether `take_snapshot` has run (the flag weight is set)."""
        return self.built and bool(
            ops.convert_to_numpy(self.snapshot_taken) != 0
        )

    def take_snapshot(self):
        """Copies the current class columns into the snapshot weights.

        Stores `kernel[:, :num_classes]` in `classification_kernel`,
        `bias[:num_classes]` in `classification_bias`, and sets the
        `snapshot_taken` flag. Call it once, before detection fine-tuning
        (`keras_objectness.callbacks.DetectorAdapter` does). Calling it again
        overwrites the snapshot.
        """
        self._check_built("take_snapshot")
        k = self.num_classes
        self.classification_kernel.assign(self.kernel[:, :k])
        self.classification_bias.assign(self.bias[:k])
        self.snapshot_taken.assign(1)

    def initialize_from_classifier(self, dense_layer):
        """Copies a classifier's output layer into the class columns.

        The background column and bias keep their values; the snapshot is
        not taken (see `take_snapshot`).

        Args:
            dense_layer: a built `keras.layers.Dense` with `num_classes`
                units and as many inputs as this layer: the classification
                layer `W^c`. Without a bias, the class biases become zero.
        """
        self._check_built("initialize_from_classifier")
        if not isinstance(dense_layer, keras.layers.Dense) or not (
            dense_layer.built
        ):
            raise ValueError(
                "`dense_layer` must be a built `keras.layers.Dense`. "
                f"Received: dense_layer={dense_layer!r}"
            )
        expected = tuple(self.classification_kernel.shape)
        if tuple(dense_layer.kernel.shape) != expected:
            raise ValueError(
                f"`dense_layer` must have a kernel of shape {expected} "
                "(features, num_classes). Received: dense_layer with kernel "
                f"shape {tuple(dense_layer.kernel.shape)}"
            )
        k = self.num_classes
        kernel = ops.convert_to_numpy(self.kernel).copy()
        bias = ops.convert_to_numpy(self.bias).copy()
        kernel[:, :k] = ops.convert_to_numpy(dense_layer.kernel)
        bias[:k] = (
            ops.convert_to_numpy(dense_layer.bias)
            if dense_layer.use_bias
            else 0.0
        )
        self.kernel.assign(kernel)
        self.bias.assign(bias)

    def _check_built(self, method):
        if not self.built:
            raise ValueError(
                f"`BackgroundHead.{method}()` needs a built layer: call the "
                "layer on its inputs (or `build`) first. "
                f"Received: unbuilt layer {self.name!r}"
            )

    def compute_output_shape(self, input_shape, output_mode=None):
        if self._resolve_output_mode(output_mode) == "scores":
            return (input_shape[0], self.num_classes)
        return (input_shape[0], self.num_classes + 1)

    def compute_output_spec(self, inputs, training=None, output_mode=None):
        return keras.KerasTensor(
            self.compute_output_shape(inputs.shape, output_mode),
            dtype="float32",
        )

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_classes": self.num_classes,
                "detection_classes": self.detection_classes,
                "output_mode": self.output_mode,
                "kernel_initializer": keras.initializers.serialize(
                    self.kernel_initializer
                ),
                "bias_initializer": keras.initializers.serialize(
                    self.bias_initializer
                ),
                "background_initializer": keras.initializers.serialize(
                    self.background_initializer
                ),
                "train_detection_classes": self.train_detection_classes,
                "mask_heldout_classes": self.mask_heldout_classes,
                "class_names": self.class_names,
            }
        )
        return config
