"""One loss for detection and classification examples in the same batch."""

import numbers

import keras
import numpy as np
from keras import ops

from keras_objectness import _checks
from keras_objectness.class_split import ClassSplit
from keras_objectness.layers.background_head import large_negative

# Smallest probability taken into a log: tiny enough to keep the ratios of
# small probabilities, large enough that 1 / p times a loss scale of 2**15
# stays finite in float32.
_PROBABILITY_FLOOR = 1e-30


def encode_classification_labels(labels, num_classes):
    """Marks class labels as classification examples for `JointDetectionLoss`.

    A classification example of class `c` (an image labelled with its class
    only, no box) is written `c + num_classes + 1`, so that its label does
    not collide with the detection labels `[0, num_classes]` (a class of B,
    or the background `num_classes`). The encoding is plain integer
    addition and works on Python ints, numpy arrays and tensors of any
    backend, including TensorFlow tensors inside a `tf.data` map.

    Args:
        labels: int or integer array/tensor of class ids in
            `[0, num_classes)`. Concrete values (Python ints, lists, numpy
            arrays) are checked; tensors are not.
        num_classes: int. Number of object classes `K`, not counting the
            background.

    Returns:
        `labels + num_classes + 1`, of the input's type (a list becomes a
        numpy array).

    Example:

    ```python
    encode_classification_labels(np.array([0, 4]), num_classes=5)  # [6, 10]
    ```
    """
    num_classes = _check_num_classes(num_classes)
    if isinstance(labels, (numbers.Number, list, tuple, np.ndarray)):
        values = np.asarray(labels)
        if not np.issubdtype(values.dtype, np.integer):
            raise ValueError(
                "`labels` must be integer class ids. "
                f"Received: labels={labels!r}"
            )
        if values.size and (values.min() < 0 or values.max() >= num_classes):
            raise ValueError(
                f"`labels` must be class ids in [0, {num_classes}). "
                f"Received: labels={labels!r}"
            )
        if isinstance(labels, (list, tuple)):
            labels = values
    return labels + (num_classes + 1)


@keras.saving.register_keras_serializable(package="keras_objectness")
class JointDetectionLoss(keras.losses.Loss):
    """Cross entropy for joint detection + classification fine-tuning.

    Joint fine-tuning trains a `K + 1`-way detection network (the output of
    `keras_objectness.layers.BackgroundHead`, background last) on two kinds
    of examples in every batch, as YOLO9000 trains on detection and
    classification data together:

    * Detection examples (region crops) of the detection classes B or the
      background. Their cross entropy is over B and the background only:
      the held-out classes A (every class not in `detection_classes`) are
      masked, so A's outputs get exactly zero gradient from them.
    * Classification examples (image-labelled) of any of the `K` classes.
      Their cross entropy is over the `K` object classes, the background
      excluded and the rest renormalised: with probabilities `p`,
      `-log p_y + log(1 - p_background)`. The background output gets
      exactly zero gradient from them (unless
      `classification_against_background`, which keeps the background in
      their softmax). Their loss is multiplied by `classification_weight`.

    So the layers shared by both keep serving A while the detector learns
    B against the background, and A's output columns follow the changing
    features. Use it with a head built with `mask_heldout_classes=False`
    (the loss masks per example; a head that masks A in training would
    hide A from the classification examples too).

    Labels (`y_true`, integers of shape `(batch,)` or `(batch, 1)`; floats
    holding integers are accepted):

    * `y` in B, or `y == num_classes`: a detection example of class `y`
      (`num_classes` is the background).
    * `y` in `[num_classes + 1, 2 * num_classes]`: a classification example
      of class `y - (num_classes + 1)`; make them with
      `encode_classification_labels`.

    Any other label (negative, above `2 * num_classes`, or a class of A
    given as a detection label) is invalid. When `y_true` holds concrete
    values (eager calls) the loss raises a `ValueError`. Inside a compiled
    graph (`fit`, `tf.function`, `jax.jit`) values cannot be checked: an
    invalid example's loss is NaN, so the reported loss turns NaN (stop
    with `keras.callbacks.TerminateOnNaN`), and it adds nothing to the
    gradient (the valid examples still train). This holds for a sample
    weight of 0 as well: give padded rows a valid label.

    Arithmetic is float32 whatever the dtype of `y_pred`. Masked logits take
    `keras_objectness.layers.background_head.large_negative`, never `-inf`.
    With `from_logits=False`, probabilities are clipped to `[1e-30, 1]`
    before the log, far below Keras' `epsilon()` (whose clip would flatten
    every probability under `1e-7` and stop their gradient), and the
    renormalising sums are taken over the kept probabilities themselves,
    never as `1 - p`: a classification example that the detector calls
    background with probability `1 - 1e-9` still gets the right loss and a
    gradient. With probabilities the masked
    outputs still take part in the softmax that made them, so their
    gradient is zero only up to float32 rounding; train on logits
    (`BackgroundHead(..., output_mode="logits")` with `from_logits=True`)
    for exact zeros.

    Args:
        num_classes: int. Number of object classes `K`, NOT counting the
            background. `y_pred` has `K + 1` columns.
        detection_classes: sorted collection of distinct ints in
            `[0, num_classes)`, or a `keras_objectness.ClassSplit` with
            `num_classes` classes. The classes B with box labels. Stored as
            a sorted tuple.
        classification_weight: float >= 0. Factor of the classification
            examples' loss. Defaults to `1.0`.
        from_logits: bool. Whether `y_pred` holds logits (`True`) or
            probabilities (`False`). Defaults to `False`.
        classification_against_background: bool. If `True`, the
            classification examples' cross entropy runs over all `K + 1`
            outputs, background included: an image-labelled example of
            class `c` then also teaches that it is no background, which is
            what held-out classes need to stand out from the background
            (their columns see no region crop). Defaults to `False`.
        reduction: as in `keras.losses.Loss`. Defaults to
            `"sum_over_batch_size"`.
        name: str. Defaults to `"joint_detection_loss"`.
        dtype: dtype of the loss value, as in `keras.losses.Loss`. Defaults
            to `None` (`keras.config.floatx()`).

    Call arguments:
        y_true: integer labels `(batch,)` or `(batch, 1)`, encoded as above;
            `(batch, regions)` with region outputs.
        y_pred: float `(batch, num_classes + 1)`, background last, or
            `(batch, regions, num_classes + 1)`: the regions of whole images
            (`shared_feature_detector` training), each a row as above.
        sample_weight: optional float `(batch,)` (or `(batch, regions)`).

    Returns:
        The reduced loss (a scalar with the default reduction).

    Example:

    ```python
    loss = JointDetectionLoss(num_classes=5, detection_classes=(0, 3))
    y_true = np.array(
        [0, 5, encode_classification_labels(2, num_classes=5)]
    )  # a B region, a background region, an image of class 2
    y_pred = np.full((3, 6), 1 / 6, "float32")
    loss(y_true, y_pred)
    ```

    References:
        - [Hoffman et al., 2014. LSDA: Large Scale Detection through
          Adaptation](https://arxiv.org/abs/1407.5035), section 3.2.
        - [Redmon and Farhadi, 2016. YOLO9000: Better, Faster,
          Stronger](https://arxiv.org/abs/1612.08242), section 3 (joint
          training on detection and classification data).
    """

    def __init__(
        self,
        num_classes,
        detection_classes,
        classification_weight=1.0,
        from_logits=False,
        classification_against_background=False,
        reduction="sum_over_batch_size",
        name="joint_detection_loss",
        dtype=None,
    ):
        num_classes = _check_num_classes(num_classes)
        if isinstance(detection_classes, ClassSplit):
            if detection_classes.num_classes != num_classes:
                raise ValueError(
                    "A `ClassSplit` passed as `detection_classes` must have "
                    "`num_classes` classes. Received: "
                    f"num_classes={num_classes}, "
                    f"detection_classes={detection_classes!r}"
                )
            detection_classes = detection_classes.detection_classes
        split = ClassSplit(num_classes, detection_classes)
        if (
            not isinstance(classification_weight, numbers.Real)
            or isinstance(classification_weight, bool)
            or not np.isfinite(classification_weight)
            or classification_weight < 0
        ):
            raise ValueError(
                "`classification_weight` must be a finite number >= 0. "
                f"Received: classification_weight={classification_weight!r}"
            )
        if not isinstance(from_logits, (bool, np.bool_)):
            raise ValueError(
                "`from_logits` must be a bool. "
                f"Received: from_logits={from_logits!r}"
            )
        if not isinstance(classification_against_background, (bool, np.bool_)):
            raise ValueError(
                "`classification_against_background` must be a bool. "
                "Received: classification_against_background="
                f"{classification_against_background!r}"
            )
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.num_classes = num_classes
        self.detection_classes = split.detection_classes
        self.classification_weight = float(classification_weight)
        self.from_logits = bool(from_logits)
        self.classification_against_background = bool(
            classification_against_background
        )
        # Which of the K + 1 outputs each kind of example keeps.
        detection_keep = np.zeros((num_classes + 1,), dtype=bool)
        detection_keep[list(self.detection_classes)] = True
        detection_keep[num_classes] = True
        self._detection_keep = detection_keep
        # A label is valid as a detection label if the output is kept.
        valid = np.concatenate([detection_keep, np.ones((num_classes,), bool)])
        self._valid_labels = valid

    @property
    def heldout_classes(self):
        """Sorted tuple of the held-out classes A (not in B)."""
        return tuple(int(i) for i in np.flatnonzero(~self._detection_keep[:-1]))

    def encode_classification_labels(self, labels):
        """`encode_classification_labels(labels, self.num_classes)`."""
        return encode_classification_labels(labels, self.num_classes)

    def call(self, y_true, y_pred):
        k = self.num_classes
        y_pred = ops.cast(y_pred, "float32")
        if len(y_pred.shape) < 2 or y_pred.shape[-1] != k + 1:
            raise ValueError(
                f"`y_pred` must have shape (batch, {k + 1}) or (batch, "
                f"regions, {k + 1}) (num_classes plus the background). "
                f"Received: y_pred with shape {tuple(y_pred.shape)}"
            )
        labels = ops.convert_to_tensor(y_true)
        rows = len(y_pred.shape) - 1
        if len(labels.shape) == rows + 1 and labels.shape[-1] == 1:
            labels = ops.squeeze(labels, axis=-1)
        if len(labels.shape) != rows:
            raise ValueError(
                "`y_true` must hold one label per row of `y_pred`, shape "
                f"{tuple(y_pred.shape[:-1])} or {tuple(y_pred.shape[:-1])} "
                f"+ (1,). Received: y_true with shape {tuple(labels.shape)}"
            )
        # Per region of whole images (Fast R-CNN batches): every row alike.
        row_shape = ops.shape(labels)
        losses = self._row_losses(
            ops.reshape(labels, (-1,)), ops.reshape(y_pred, (-1, k + 1))
        )
        return ops.reshape(losses, row_shape)

    def _row_losses(self, labels, y_pred):
        k = self.num_classes
        if not keras.backend.is_int_dtype(labels.dtype):
            labels = ops.round(labels)
        labels = ops.cast(labels, "int32")
        self._check_concrete_labels(labels)

        is_classification = labels > k
        targets = ops.where(is_classification, labels - (k + 1), labels)
        # Every example's kept outputs: B and background for detection
        # examples, the K classes for classification examples.
        classification_keep = np.arange(k + 1) < k
        if self.classification_against_background:
            classification_keep = np.ones((k + 1,), bool)
        keep = ops.where(
            is_classification[:, None],
            ops.convert_to_tensor(classification_keep)[None],
            ops.convert_to_tensor(self._detection_keep)[None],
        )
        if self.from_logits:
            logits = y_pred
        else:
            logits = ops.log(ops.clip(y_pred, _PROBABILITY_FLOOR, 1.0))
        logits = ops.where(keep, logits, large_negative("float32"))
        log_probabilities = logits - ops.logsumexp(
            logits, axis=-1, keepdims=True
        )
        # The clip keeps targets of other rows and invalid labels in range
        # for one_hot; invalid examples are replaced below.
        one_hot = ops.one_hot(ops.clip(targets, 0, k), k + 1)
        losses = -ops.sum(one_hot * log_probabilities, axis=-1)
        losses = ops.where(
            is_classification, self.classification_weight * losses, losses
        )
        valid = ops.take(
            ops.convert_to_tensor(self._valid_labels),
            ops.clip(labels, 0, 2 * k),
        )
        valid = ops.logical_and(
            valid, ops.logical_and(labels >= 0, labels <= 2 * k)
        )
        return ops.where(valid, losses, float("nan"))

    def _check_concrete_labels(self, labels):
        values = _concrete_numpy(labels)
        if values is None:
            return
        k = self.num_classes
        _checks.check_labels(
            "y_true",
            values,
            self._valid_labels,
            "detection labels (a class of "
            f"`detection_classes`={self.detection_classes} or the "
            f"background {k}) or encoded classification labels in "
            f"[{k + 1}, {2 * k}] (see `encode_classification_labels`)",
        )

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_classes": self.num_classes,
                "detection_classes": self.detection_classes,
                "classification_weight": self.classification_weight,
                "from_logits": self.from_logits,
                "classification_against_background": (
                    self.classification_against_background
                ),
                "dtype": self._dtype_policy.name,
            }
        )
        return config


def _check_num_classes(num_classes):
    return _checks.check_positive_int("num_classes", num_classes)


def _concrete_numpy(x):
    """`x` as a numpy array, or `None` inside a traced graph."""
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        if not tf.executing_eagerly() or not hasattr(x, "numpy"):
            return None
    elif backend == "jax":
        import jax

        try:
            return np.asarray(x)
        except (
            jax.errors.TracerArrayConversionError,
            jax.errors.ConcretizationTypeError,
        ):
            return None
    return np.asarray(ops.convert_to_numpy(x))
