"""LSDA output-layer adaptation: move held-out class weights like B's moved.

After detection fine-tuning, the output columns of the detection classes B
have moved from the classifier's `W^c` to the detector's `W^d`; the
held-out classes A had no box labels and did not move. The adaptation moves
each held-out class by the average change of its nearest detection
classes, where "nearest" compares the classifier's own (L2-normalised)
weight vectors.
"""

import numbers

import keras
import numpy as np
from keras import ops

from keras_objectness.layers.background_head import BackgroundHead


def adapted_weights(
    classification_kernel,
    classification_bias,
    detection_kernel,
    detection_bias,
    detection_classes,
    knn=5,
):
    """The adapted class weights `W^d` for all `K` classes.

    For a detection class `i` in B the result is the fine-tuned
    `detection_kernel[:, i]` (and bias). For a held-out class `j` (not in
    B) it is

        W^c_j + mean over n in N(j) of (W^d_n - W^c_n)

    where `N(j)` are the `knn` classes of B whose classification columns are
    closest to `W^c_j` in Euclidean distance after each column is scaled to
    unit L2 norm (all of B for `knn="all"`). Kernel columns and biases move
    by the offsets of the same neighbours. Ties in distance go to the lower
    class id.

    The computation is vectorised: one `(|A|, features) x (features, |B|)`
    matrix product ranks the distances, then `ops.top_k` and one gather. The
    `(|A|, |B|)` float32 matrix takes `4 * |A| * |B|` bytes (400 MB for
    10,000 x 10,000 classes).

    Args:
        classification_kernel: float array `(features, K)`. The classifier
            output layer `W^c` (one column per class).
        classification_bias: float array `(K,)`.
        detection_kernel: float array `(features, K)`. The class columns of
            the fine-tuned detection layer `W^d` (background excluded).
        detection_bias: float array `(K,)`.
        detection_classes: sorted collection of distinct class ids B: at
            least one, and not all `K` classes.
        knn: int in `[1, |B|]`, or `"all"` to average the offsets of all of
            B (the paper's equation 1). Defaults to `5`.

    Returns:
        A tuple `(kernel, bias)` of float32 tensors of shapes
        `(features, K)` and `(K,)`.

    Example:

    ```python
    kernel, bias = adapted_weights(
        w_c, b_c, w_d, b_d, detection_classes=(0, 2, 5), knn=2
    )
    ```

    References:
        - [Hoffman et al., 2014. LSDA: Large Scale Detection through
          Adaptation](https://arxiv.org/abs/1407.5035), section 3.2,
          equations 1 and 2.
    """
    w_c = ops.cast(ops.convert_to_tensor(classification_kernel), "float32")
    b_c = ops.cast(ops.convert_to_tensor(classification_bias), "float32")
    w_d = ops.cast(ops.convert_to_tensor(detection_kernel), "float32")
    b_d = ops.cast(ops.convert_to_tensor(detection_bias), "float32")
    if len(w_c.shape) != 2:
        raise ValueError(
            "`classification_kernel` must have shape (features, K). "
            f"Received: classification_kernel.shape={tuple(w_c.shape)}"
        )
    features, num_classes = (int(d) for d in w_c.shape)
    for name, value, shape in (
        ("classification_bias", b_c, (num_classes,)),
        ("detection_kernel", w_d, (features, num_classes)),
        ("detection_bias", b_d, (num_classes,)),
    ):
        if tuple(value.shape) != shape:
            raise ValueError(
                f"`{name}` must have shape {shape} to match "
                "`classification_kernel`. "
                f"Received: {name}.shape={tuple(value.shape)}"
            )
    b_ids, a_ids = _split_ids(detection_classes, num_classes)
    knn = validate_knn(knn, len(b_ids))

    # Offsets of the detection classes, bias as one more row: (F + 1, |B|).
    w_c_full = ops.concatenate([w_c, b_c[None, :]], axis=0)
    w_d_full = ops.concatenate([w_d, b_d[None, :]], axis=0)
    offsets = ops.take(w_d_full - w_c_full, b_ids, axis=1)
    w_c_a = ops.take(w_c_full, a_ids, axis=1)

    if knn == "all":
        mean_offset = ops.mean(offsets, axis=1, keepdims=True)
        adapted_a = w_c_a + mean_offset
    else:
        unit = _unit_columns(w_c)
        unit_a = ops.take(unit, a_ids, axis=1)
        unit_b = ops.take(unit, b_ids, axis=1)
        # For a fixed class a of A, |a - b|^2 = |a|^2 + |b|^2 - 2 a.b ranks
        # the classes b of B in the same order as the descending
        # a.b - |b|^2 / 2 (norms are 1, or 0 for an all-zero column). A row
        # of ones under `unit_a` and of -|b|^2 / 2 under `unit_b` make that
        # one matrix product of shape (|A|, |B|).
        half_norms = 0.5 * ops.sum(ops.square(unit_b), axis=0, keepdims=True)
        similarity = ops.matmul(
            ops.transpose(
                ops.concatenate([unit_a, ops.ones_like(unit_a[:1])], axis=0)
            ),
            ops.concatenate([unit_b, -half_norms], axis=0),
        )
        _, neighbours = ops.top_k(similarity, k=knn, sorted=True)
        # (|A|, knn, F + 1) -> mean over the neighbours -> (F + 1, |A|).
        gathered = ops.take(ops.transpose(offsets), neighbours, axis=0)
        adapted_a = w_c_a + ops.transpose(ops.mean(gathered, axis=1))

    w_d_b = ops.take(w_d_full, b_ids, axis=1)
    full = _merge_columns(w_d_b, adapted_a, b_ids, a_ids)
    return full[:features], full[features]


def adapt_classifier(model, knn=5, adapt_output_layer=True):
    """Adapts the held-out classes of a detection model, in place.

    Finds the model's `BackgroundHead` (also inside nested models) and
    overwrites the kernel columns and biases of its held-out classes A
    (classes not in `detection_classes`) with `adapted_weights`, computed
    from the head's snapshot `W^c` and its current (fine-tuned) columns of
    B. The columns of B and the background column are left as they are.

    The result depends only on the snapshot and B's columns, never on A's
    current columns, so calling it again gives the same weights (it is
    idempotent), and further fine-tuning followed by another call adapts
    afresh.

    Args:
        model: `keras.Model` (or a `BackgroundHead`) holding exactly one
            built `BackgroundHead` whose snapshot was taken
            (`BackgroundHead.take_snapshot`, done by
            `keras_objectness.callbacks.DetectorAdapter`).
        knn: int in `[1, |B|]`, or `"all"` for the average offset over all
            of B. Ignored without `adapt_output_layer`. Defaults to `5`.
        adapt_output_layer: bool. If `False`, the held-out columns are set
            back to the snapshot `W^c_A` without any offset: the fine-tuned
            hidden layers with the classifier's output layer for A (the
            paper's "no output-layer adaptation" variant). Defaults to
            `True`.

    Returns:
        `model`, whose head weights were assigned in place.

    Example:

    ```python
    detector = keras_objectness.models.detection_network(
        classifier, detection_classes=(0, 1, 2)
    )
    detector.compile(...)
    detector.fit(
        regions,
        callbacks=[keras_objectness.callbacks.DetectorAdapter(knn=5)],
    )
    # or by hand, after head.take_snapshot() and fit:
    keras_objectness.adapt_classifier(detector, knn=5)
    ```

    References:
        - [Hoffman et al., 2014. LSDA: Large Scale Detection through
          Adaptation](https://arxiv.org/abs/1407.5035), section 3.2.
    """
    if not isinstance(adapt_output_layer, (bool, np.bool_)):
        raise ValueError(
            "`adapt_output_layer` must be a bool. "
            f"Received: adapt_output_layer={adapt_output_layer!r}"
        )
    head = find_background_head(model)
    check_adaptable(head, knn, adapt_output_layer)
    if not head.has_snapshot:
        raise ValueError(
            "The `BackgroundHead` has no snapshot of the classifier weights "
            "W^c: call `take_snapshot()` before fine-tuning, or train with "
            "the `keras_objectness.callbacks.DetectorAdapter` callback. "
            f"Received: head {head.name!r} with snapshot_taken=0"
        )
    k = head.num_classes
    kernel = head.kernel
    bias = head.bias
    if adapt_output_layer:
        class_kernel, class_bias = adapted_weights(
            head.classification_kernel,
            head.classification_bias,
            kernel[:, :k],
            bias[:k],
            head.detection_classes,
            knn=knn,
        )
    else:
        b_ids, a_ids = _split_ids(head.detection_classes, k)
        class_kernel = _merge_columns(
            ops.take(kernel[:, :k], b_ids, axis=1),
            ops.take(head.classification_kernel, a_ids, axis=1),
            b_ids,
            a_ids,
        )
        class_bias = _merge_columns(
            ops.take(bias[:k], b_ids, axis=0)[None, :],
            ops.take(head.classification_bias, a_ids, axis=0)[None, :],
            b_ids,
            a_ids,
        )[0]
    kernel.assign(
        ops.concatenate(
            [ops.cast(class_kernel, kernel.dtype), kernel[:, k:]], axis=1
        )
    )
    bias.assign(
        ops.concatenate([ops.cast(class_bias, bias.dtype), bias[k:]], axis=0)
    )
    return model


def find_background_head(model):
    """The one `BackgroundHead` of a model, searched through nested models.

    Args:
        model: a `keras.Model`, a `keras.layers.Layer` or a
            `BackgroundHead`.

    Returns:
        The `BackgroundHead` layer.

    Raises:
        ValueError: if there is none, or more than one.
    """
    heads = []
    seen = set()
    stack = [model]
    while stack:
        layer = stack.pop()
        if id(layer) in seen:
            continue
        seen.add(id(layer))
        if isinstance(layer, BackgroundHead):
            heads.append(layer)
        stack.extend(getattr(layer, "layers", ()) or ())
    if len(heads) != 1:
        raise ValueError(
            "`model` must contain exactly one `BackgroundHead` (e.g. a "
            "model from `keras_objectness.models.detection_network`). "
            f"Received: model {getattr(model, 'name', model)!r} with "
            f"{len(heads)} BackgroundHead layers"
        )
    if not heads[0].built:
        raise ValueError(
            "The `BackgroundHead` must be built (called on inputs) before "
            f"adaptation. Received: unbuilt head {heads[0].name!r}"
        )
    return heads[0]


def check_adaptable(head, knn, adapt_output_layer=True):
    """Raises if `head`'s class split or `knn` cannot be adapted."""
    if len(head.detection_classes) == head.num_classes:
        raise ValueError(
            "There is no held-out class to adapt: `detection_classes` holds "
            f"all {head.num_classes} classes. Received: "
            f"detection_classes={head.detection_classes}"
        )
    if adapt_output_layer:
        validate_knn(knn, len(head.detection_classes))


def validate_knn(knn, num_detection_classes):
    """Returns `knn` as an int or `"all"`, or raises a `ValueError`."""
    if isinstance(knn, str) and knn == "all":
        return knn
    if (
        isinstance(knn, (bool, np.bool_))
        or not isinstance(knn, numbers.Integral)
        or not 1 <= knn <= num_detection_classes
    ):
        raise ValueError(
            "`knn` must be 'all' or an integer between 1 and the number of "
            f"detection classes ({num_detection_classes}). "
            f"Received: knn={knn!r}"
        )
    return int(knn)


def _split_ids(detection_classes, num_classes):
    """Sorted int32 arrays of B and A, validated."""
    message = (
        "`detection_classes` must be a non-empty collection of distinct "
        f"integer class ids in [0, {num_classes}) that leaves at least one "
        f"held-out class. Received: detection_classes={detection_classes!r}"
    )
    try:
        ids = np.asarray(detection_classes)
    except (TypeError, ValueError):
        raise ValueError(message) from None
    if (
        ids.ndim != 1
        or ids.size == 0
        or not np.issubdtype(ids.dtype, np.integer)
        or np.unique(ids).size != ids.size
        or ids.min() < 0
        or ids.max() >= num_classes
        or ids.size == num_classes
    ):
        raise ValueError(message)
    is_b = np.zeros((num_classes,), dtype=bool)
    is_b[ids] = True
    return (
        np.flatnonzero(is_b).astype("int32"),
        np.flatnonzero(~is_b).astype("int32"),
    )


def _unit_columns(kernel):
    norms = ops.sqrt(ops.sum(ops.square(kernel), axis=0, keepdims=True))
    return kernel / ops.maximum(norms, keras.config.epsilon())


def _merge_columns(b_columns, a_columns, b_ids, a_ids):
    """Columns of B and A put back into class order with one gather."""
    order = np.empty((b_ids.size + a_ids.size,), dtype="int32")
    order[b_ids] = np.arange(b_ids.size, dtype="int32")
    order[a_ids] = b_ids.size + np.arange(a_ids.size, dtype="int32")
    return ops.take(
        ops.concatenate([b_columns, a_columns], axis=1), order, axis=1
    )
