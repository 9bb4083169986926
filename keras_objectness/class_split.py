"""The split of classes into trained (B) and held-out (A) detection classes."""

import numbers

import numpy as np


class ClassSplit:
    """Which classes have box labels (B) and which are held out (A).

    The transfer protocol trains a classifier on all `num_classes` classes
    but gives box labels only for the detection classes B; the remaining
    held-out classes A are evaluated as detectors without ever having had a
    box. One `ClassSplit` object is meant to feed data pipelines, heads,
    evaluation and reports alike, so that no script re-derives the split.

    The object is immutable and hashable. Class ids are integers in
    `[0, num_classes)`; negative ids (the `-1` that marks padded boxes) and
    ids out of range belong to neither group.

    Args:
        num_classes: int. Number of object classes, not counting background.
            At least 1.
        detection_classes: iterable of ints. The classes B that have box
            labels; distinct ids in `[0, num_classes)`, at least one. Stored
            sorted as a tuple. All classes may be detection classes (an
            "oracle" split with no held-out class).
        class_names: optional sequence of `num_classes` distinct, non-empty
            strings. Defaults to `None`.

    Example:

    ```python
    split = ClassSplit(4, detection_classes=(2, 0))
    split.detection_classes  # (0, 2)
    split.heldout_classes  # (1, 3)
    split.is_detection_class(np.array([0, 1, -1]))  # [True, False, False]
    ClassSplit.from_config(split.get_config()) == split  # True
    ```
    """

    __slots__ = (
        "_num_classes",
        "_detection_classes",
        "_heldout_classes",
        "_class_names",
        "_detection_table",
    )

    def __init__(self, num_classes, detection_classes, class_names=None):
        num_classes = _validate_num_classes(num_classes)
        detection_classes = _validate_detection_classes(
            detection_classes, num_classes
        )
        class_names = _validate_class_names(class_names, num_classes)
        table = np.zeros((num_classes,), dtype=bool)
        table[list(detection_classes)] = True
        table.setflags(write=False)
        heldout = tuple(int(i) for i in np.flatnonzero(~table))
        object.__setattr__(self, "_num_classes", num_classes)
        object.__setattr__(self, "_detection_classes", detection_classes)
        object.__setattr__(self, "_heldout_classes", heldout)
        object.__setattr__(self, "_class_names", class_names)
        object.__setattr__(self, "_detection_table", table)

    def __setattr__(self, name, value):
        raise AttributeError(
            f"`ClassSplit` is immutable; cannot set `{name}`. Build a new "
            "`ClassSplit` instead."
        )

    def __delattr__(self, name):
        raise AttributeError(
            f"`ClassSplit` is immutable; cannot delete `{name}`."
        )

    @property
    def num_classes(self):
        """int. Number of object classes (background not counted)."""
        return self._num_classes

    @property
    def detection_classes(self):
        """Sorted tuple of the class ids B that have box labels."""
        return self._detection_classes

    @property
    def heldout_classes(self):
        """Sorted tuple of the class ids A held out from box training."""
        return self._heldout_classes

    @property
    def class_names(self):
        """Tuple of `num_classes` names, or `None`."""
        return self._class_names

    @property
    def detection_class_names(self):
        """Names of the detection classes B, or `None` without names."""
        return self._names_of(self._detection_classes)

    @property
    def heldout_class_names(self):
        """Names of the held-out classes A, or `None` without names."""
        return self._names_of(self._heldout_classes)

    @property
    def detection_mask(self):
        """Read-only boolean numpy array of shape `(num_classes,)`.

        Entry `i` is `True` where class `i` is a detection class.
        """
        return self._detection_table

    def is_detection_class(self, labels):
        """Whether each label is a detection class (B).

        Args:
            labels: integer class ids of any shape: a Python int or list, a
                numpy array, a TensorFlow tensor (dense or ragged, eager or
                inside `tf.function`/`tf.data`) or a backend tensor.

        Returns:
            Booleans of the same shape and kind (numpy for Python and numpy
            input, a `tf` tensor for `tf` input). Padding (`-1`) and ids
            outside `[0, num_classes)` give `False`.
        """
        return _lookup(self._detection_table, labels)

    def is_heldout_class(self, labels):
        """Whether each label is a held-out class (A).

        Args:
            labels: integer class ids, as for `is_detection_class`.

        Returns:
            Booleans of the same shape and kind as `labels`. Padding (`-1`)
            and ids outside `[0, num_classes)` give `False`.
        """
        return _lookup(~self._detection_table, labels)

    def get_config(self):
        """Returns a JSON-serialisable dict of the constructor arguments."""
        return {
            "num_classes": self._num_classes,
            "detection_classes": list(self._detection_classes),
            "class_names": (
                None if self._class_names is None else list(self._class_names)
            ),
        }

    @classmethod
    def from_config(cls, config):
        """Rebuilds a `ClassSplit` from `get_config()` output."""
        return cls(**config)

    def _names_of(self, ids):
        if self._class_names is None:
            return None
        return tuple(self._class_names[i] for i in ids)

    def _key(self):
        return (self._num_classes, self._detection_classes, self._class_names)

    def __eq__(self, other):
        if not isinstance(other, ClassSplit):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self):
        return hash(self._key())

    def __repr__(self):
        return (
            f"ClassSplit(num_classes={self._num_classes}, "
            f"detection_classes={self._detection_classes}, "
            f"heldout_classes={self._heldout_classes})"
        )


def _is_int(value):
    return isinstance(value, numbers.Integral) and not isinstance(
        value, (bool, np.bool_)
    )


def _validate_num_classes(num_classes):
    if not _is_int(num_classes) or num_classes < 1:
        raise ValueError(
            "`num_classes` must be a positive integer. "
            f"Received: num_classes={num_classes!r}"
        )
    return int(num_classes)


def _validate_detection_classes(detection_classes, num_classes):
    message = (
        "`detection_classes` must be a non-empty collection of distinct "
        f"integer class ids in [0, {num_classes}). "
        f"Received: detection_classes={detection_classes!r}"
    )
    if isinstance(detection_classes, (str, bytes)) or _is_int(
        detection_classes
    ):
        raise ValueError(message)
    try:
        ids = list(detection_classes)
    except TypeError:
        raise ValueError(message) from None
    if not ids or not all(_is_int(i) for i in ids):
        raise ValueError(message)
    ids = [int(i) for i in ids]
    if len(set(ids)) != len(ids) or min(ids) < 0 or max(ids) >= num_classes:
        raise ValueError(message)
    return tuple(sorted(ids))


def _validate_class_names(class_names, num_classes):
    if class_names is None:
        return None
    message = (
        f"`class_names` must be None or a sequence of {num_classes} "
        "distinct non-empty strings. "
        f"Received: class_names={class_names!r}"
    )
    if isinstance(class_names, (str, bytes)):
        raise ValueError(message)
    try:
        names = tuple(class_names)
    except TypeError:
        raise ValueError(message) from None
    if (
        len(names) != num_classes
        or not all(isinstance(n, str) and n for n in names)
        or len(set(names)) != len(names)
    ):
        raise ValueError(message)
    return names


def _is_tf_tensor(value):
    module = type(value).__module__ or ""
    return module.startswith("tensorflow")


def _lookup(table, labels):
    """`table[labels]`, `False` where a label is out of range."""
    if _is_tf_tensor(labels):
        return _lookup_tf(table, labels)
    if isinstance(labels, (numbers.Number, list, tuple, np.ndarray)):
        return _lookup_numpy(table, labels)
    return _lookup_keras(table, labels)


def _check_integer_dtype(is_integer, dtype):
    if not is_integer:
        raise ValueError(
            "`labels` must hold integer class ids. "
            f"Received: labels with dtype={dtype}"
        )


def _lookup_numpy(table, labels):
    labels = np.asarray(labels)
    if labels.size == 0 and labels.dtype == np.float64:
        labels = labels.astype(np.int64)  # an empty Python list
    _check_integer_dtype(np.issubdtype(labels.dtype, np.integer), labels.dtype)
    n = table.shape[0]
    valid = (labels >= 0) & (labels < n)
    return valid & table[np.clip(labels, 0, n - 1)]


def _lookup_tf(table, labels):
    import tensorflow as tf

    if isinstance(labels, tf.RaggedTensor):
        return tf.ragged.map_flat_values(
            lambda values: _lookup_tf(table, values), labels
        )
    labels = tf.convert_to_tensor(labels)
    _check_integer_dtype(labels.dtype.is_integer, labels.dtype.name)
    labels = tf.cast(labels, tf.int64)
    n = table.shape[0]
    valid = tf.logical_and(labels >= 0, labels < n)
    found = tf.gather(tf.constant(table), tf.clip_by_value(labels, 0, n - 1))
    return tf.logical_and(valid, found)


def _lookup_keras(table, labels):
    from keras import ops

    labels = ops.convert_to_tensor(labels)
    _check_integer_dtype("int" in str(labels.dtype), labels.dtype)
    labels = ops.cast(labels, "int32")
    n = table.shape[0]
    valid = ops.logical_and(labels >= 0, labels < n)
    found = ops.take(
        ops.convert_to_tensor(table), ops.clip(labels, 0, n - 1), axis=0
    )
    return ops.logical_and(valid, found)
