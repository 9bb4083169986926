"""LSDA output-layer adaptation: move held-out class weights like B's moved.

After detection fine-tuning, the output columns of the detection classes B
have moved from the classifier's `W^c` to the detector's `W^d`; the
held-out classes A had no box labels and did not move. The adaptation moves
each held-out class by the average change of its nearest detection
classes, where "nearest" compares the classifier's own (L2-normalised)
weight vectors.

The work runs over chunks of classes, so its memory stays bounded at any
number of classes: see `adapted_weights`.
"""

import math
import numbers

import keras
import numpy as np
from keras import ops

from keras_objectness.layers.background_head import BackgroundHead

WEIGHTINGS = ("uniform", "similarity")

# Working memory of one chunk of classes (the result is not counted).
_CHUNK_BYTES = 256 * 2**20
# Neighbour slots gathered at once: bounds the (chunk, slots, features)
# gather for a large integer `knn`.
_SLOT_GROUP = 16


def _static_shapes():
    """Whether every chunk must have the same shapes.

    JAX compiles each eager op once per input shape: chunks holding
    different numbers of A and B classes would compile every op anew (35 s
    at 20k classes against 1.4 s warm). There each chunk adapts all its
    rows and keeps B's with a mask; gathering only A's rows, as done under
    TensorFlow, is faster where shapes cost nothing.
    """
    return keras.backend.backend() == "jax"


def adapted_weights(
    classification_kernel,
    classification_bias,
    detection_kernel,
    detection_bias,
    detection_classes,
    knn=5,
    weighting="uniform",
    temperature=0.1,
    chunk_size=None,
):
    """The adapted class weights `W^d` for all `K` classes.

    For a detection class `i` in B the result is the fine-tuned
    `detection_kernel[:, i]` (and bias). For a held-out class `j` (not in
    B) it is

        W^c_j + sum over n in N(j) of w_jn (W^d_n - W^c_n)

    where `N(j)` are the `knn` classes of B whose classification columns are
    closest to `W^c_j` in Euclidean distance after each column is scaled to
    unit L2 norm (all of B for `knn="all"`), and the weights `w_jn` sum to
    one over `N(j)`:

    - `weighting="uniform"`: `w_jn = 1 / |N(j)|`, the plain mean (the
      paper's equations 1 and 2).
    - `weighting="similarity"`: `w_jn = softmax over n in N(j) of
      (cos(W^c_j, W^c_n) / temperature)`, with `cos` the cosine similarity
      of the two classification columns (0 for an all-zero column). Closer
      neighbours count more; a large `temperature` tends to the uniform
      mean, a small one to the single nearest neighbour (after Tang et al.,
      2016, who weight the transferred offsets by class similarity).

    Kernel columns and biases move by the offsets of the same neighbours,
    with the same weights. Ties in distance go to the lower class id.

    Memory and speed: the classes are processed in chunks of `chunk_size`
    consecutive class ids. For each chunk, one `(chunk, features) x
    (features, |B|)` matrix product ranks the distances, `ops.top_k` picks
    the neighbours and one gather of their rows of the `(|B|, features +
    1)` offset matrix gives the weighted mean (for `knn="all"` with
    similarity weights, a `(chunk, |B|) x (|B|, features + 1)` product).
    Besides the result, the extra memory is the offset and unit-column
    matrices of B (`2 * 4 * |B| * (features + 1)` bytes, none of them for
    `knn="all"` with uniform weights besides the offsets) and one chunk's
    working set (about 256 MB with the automatic chunk size); the final
    concatenation of the chunks briefly holds the result twice. The time is
    dominated by the ranking product, `2 * |A| * |B| * features` floating
    point operations.

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
        weighting: str, one of `"uniform"` or `"similarity"` (see above).
            Defaults to `"uniform"`.
        temperature: positive float. Softmax temperature of
            `weighting="similarity"`; ignored for `"uniform"`. Defaults to
            `0.1`.
        chunk_size: positive int or `None`. Number of consecutive classes
            processed at a time. `None` picks it from the number of
            features and of detection classes so that one chunk needs
            about 256 MB. The result does not depend on it (up to float
            rounding in the ranking product). Defaults to `None`.

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
        - [Tang et al., 2016. Large Scale Semi-supervised Object Detection
          using Visual and Semantic Knowledge Transfer](
          https://arxiv.org/abs/1801.03145), CVPR 2016 (similarity-weighted
          transfer).
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
    b_ids, _ = _split_ids(detection_classes, num_classes)
    knn = validate_knn(knn, len(b_ids))
    validate_weighting(weighting, temperature)
    chunk_size = _validate_chunk_size(chunk_size)
    kernels, biases = _adapted_columns(
        w_c, b_c, w_d, b_d, b_ids, knn, weighting, temperature, chunk_size
    )
    return _concatenate(kernels, axis=1), _concatenate(biases, axis=0)


def adapt_classifier(
    model,
    knn=5,
    adapt_output_layer=True,
    weighting="uniform",
    temperature=0.1,
    chunk_size=None,
):
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

    The new `(features, K + 1)` kernel is built once from chunks (see
    `adapted_weights`) and assigned whole; no copy of the snapshot or of
    the current kernel is made, so the peak extra memory is about twice
    the kernel (the chunks and their concatenation) and, after the call,
    nothing beyond the head's own weights.

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
        weighting: str, `"uniform"` (the paper's mean of the neighbours'
            offsets) or `"similarity"` (a softmax over the neighbours'
            cosine similarities to the held-out class; see
            `adapted_weights`). Defaults to `"uniform"`.
        temperature: positive float. Softmax temperature of
            `weighting="similarity"`. Defaults to `0.1`.
        chunk_size: positive int or `None` (automatic). Classes processed
            at a time; see `adapted_weights`. Defaults to `None`.

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
    validate_weighting(weighting, temperature)
    chunk_size = _validate_chunk_size(chunk_size)
    head = find_background_head(model)
    # The missing snapshot first: it is the real problem whatever `knn` is.
    if not head.has_snapshot:
        raise ValueError(
            "The `BackgroundHead` has no snapshot of the classifier weights "
            "W^c: call `take_snapshot()` before fine-tuning, or train with "
            "the `keras_objectness.callbacks.DetectorAdapter` callback. "
            f"Received: head {head.name!r} with snapshot_taken=0"
        )
    check_adaptable(head, knn, adapt_output_layer)
    k = head.num_classes
    b_ids, _ = _split_ids(head.detection_classes, k)
    knn = validate_knn(knn, len(b_ids)) if adapt_output_layer else None
    # Reads alias the variables' buffers (no copies); columns past `k` (the
    # background) are never read by `_adapted_columns`.
    kernels, biases = _adapted_columns(
        ops.cast(head.classification_kernel, "float32"),
        ops.cast(head.classification_bias, "float32"),
        ops.cast(head.kernel, "float32"),
        ops.cast(head.bias, "float32"),
        b_ids,
        knn,
        weighting,
        temperature,
        chunk_size,
        num_classes=k,
    )
    kernel, bias = head.kernel, head.bias
    kernels.append(ops.cast(kernel[:, k:], "float32"))
    biases.append(ops.cast(bias[k:], "float32"))
    new_kernel = ops.cast(_concatenate(kernels, axis=1), kernel.dtype)
    del kernels
    new_bias = ops.cast(_concatenate(biases, axis=0), bias.dtype)
    # With no other reference to the old value, the assignment reuses the
    # variable's buffer. Writing the chunks into the variable by slices
    # would save the second copy, but a TensorFlow variable written by a
    # slice assignment copies its whole buffer on every later read, for
    # good (measured: a 10-column read of a 4096 x 20k kernel went from
    # 0.3 to 32 ms, dense assignments do not undo it), which would slow
    # every forward pass of the adapted detector.
    kernel.assign(new_kernel)
    del new_kernel
    bias.assign(new_bias)
    return model


def validate_weighting(weighting, temperature):
    """Raises a `ValueError` unless `weighting` and `temperature` are valid."""
    if not isinstance(weighting, str) or weighting not in WEIGHTINGS:
        raise ValueError(
            f"`weighting` must be one of {WEIGHTINGS}. "
            f"Received: weighting={weighting!r}"
        )
    if (
        isinstance(temperature, (bool, np.bool_))
        or not isinstance(temperature, numbers.Real)
        or not math.isfinite(temperature)
        or temperature <= 0
    ):
        raise ValueError(
            "`temperature` must be a positive finite number. "
            f"Received: temperature={temperature!r}"
        )


def _validate_chunk_size(chunk_size):
    if chunk_size is None:
        return None
    if (
        isinstance(chunk_size, (bool, np.bool_))
        or not isinstance(chunk_size, numbers.Integral)
        or chunk_size < 1
    ):
        raise ValueError(
            "`chunk_size` must be a positive integer or None. "
            f"Received: chunk_size={chunk_size!r}"
        )
    return int(chunk_size)


def automatic_chunk_size(
    features, num_detection_classes, knn="all", num_classes=None
):
    """Classes per chunk so that one chunk's working set is about 256 MB.

    Counts, per class of a chunk, float32 copies of its kernel column
    (slices, the unit column, transposes), its row of distances to B and,
    for an integer `knn`, its gathered neighbour offsets. With
    `num_classes`, the working set is also kept below the size of the
    `(features, num_classes)` kernel (but not below 16 MB).

    Args:
        features: int. Rows of the kernel.
        num_detection_classes: int. `|B|`.
        knn: int or `"all"`.
        num_classes: int or `None`. `K`.

    Returns:
        A positive int.
    """
    per_class = 6 * features + 3 * num_detection_classes
    if knn != "all":
        per_class += 2 * min(knn, _SLOT_GROUP) * (features + 1)
    budget = _CHUNK_BYTES
    if num_classes is not None:
        budget = min(budget, max(4 * features * num_classes, 2**24))
    return max(1, budget // (4 * per_class))


def _concatenate(pieces, axis):
    return pieces[0] if len(pieces) == 1 else ops.concatenate(pieces, axis)


def _adapted_columns(
    w_c,
    b_c,
    w_d,
    b_d,
    b_ids,
    knn,
    weighting,
    temperature,
    chunk_size,
    num_classes=None,
):
    """The adapted class columns, as lists of pieces in class order.

    `w_d` and `b_d` may hold more than `num_classes` columns (a head's
    background); only the first `num_classes` are read. `knn=None` puts
    `W^c` back in the held-out columns without any offset.

    Each chunk works on rows (one per class, the transposed columns):
    gathering and merging rows is several times faster than gathering
    columns.

    Returns:
        Two lists: kernel pieces `(features, chunk)` and bias pieces
        `(chunk,)`, whose concatenations are the `(features, K)` kernel
        and `(K,)` bias.
    """
    features = int(w_c.shape[0])
    if num_classes is None:
        num_classes = int(w_c.shape[1])
    is_b = np.zeros((num_classes,), dtype=bool)
    is_b[b_ids] = True
    if chunk_size is None:
        chunk_size = automatic_chunk_size(
            features, b_ids.size, knn or "all", num_classes
        )
    chunks = [
        (start, min(start + chunk_size, num_classes))
        for start in range(0, num_classes, chunk_size)
    ]

    neighbours = None
    if knn is not None:
        neighbours = _DetectionOffsets(
            w_c, b_c, w_d, b_d, is_b, chunks, knn, weighting, temperature
        )
    if _static_shapes():
        return _adapted_columns_masked(
            w_c, b_c, w_d, b_d, is_b, chunks, neighbours
        )
    kernels, biases = [], []
    for start, stop in chunks:
        size = stop - start
        local_b = np.flatnonzero(is_b[start:stop]).astype("int32")
        local_a = np.flatnonzero(~is_b[start:stop]).astype("int32")
        if not local_a.size:
            kernels.append(_columns(w_d, start, stop, local_b))
            biases.append(_columns(b_d, start, stop, local_b))
            continue
        # With few classes of B in the chunk, adapting every row and
        # dropping B's costs less than gathering the rows of A.
        every_row = _is_few(local_b.size, size)
        rows_a = ops.transpose(w_c[:, start:stop])
        bias_a = b_c[start:stop]
        if not every_row:
            rows_a = ops.take(rows_a, local_a, axis=0)
            bias_a = ops.take(bias_a, local_a, axis=0)
        if neighbours is not None:
            rows_a, bias_a = neighbours.adapt(rows_a, bias_a)
        if not local_b.size:
            kernels.append(ops.transpose(rows_a))
            biases.append(bias_a)
            continue
        rows_b = _rows(w_d, start, stop, local_b)
        bias_b = _columns(b_d, start, stop, local_b)
        order = np.empty((size,), dtype="int32")
        order[local_a] = local_a if every_row else np.arange(local_a.size)
        order[local_b] = int(rows_a.shape[0]) + np.arange(local_b.size)
        rows = ops.take(ops.concatenate([rows_a, rows_b], axis=0), order, 0)
        kernels.append(ops.transpose(rows))
        biases.append(
            ops.take(ops.concatenate([bias_a, bias_b], axis=0), order, 0)
        )
    return kernels, biases


def _adapted_columns_masked(w_c, b_c, w_d, b_d, is_b, chunks, neighbours):
    """`_adapted_columns` with the same shapes in every full chunk."""
    kernels, biases = [], []
    for start, stop in chunks:
        mask = ops.convert_to_tensor(is_b[start:stop])
        rows = ops.transpose(w_c[:, start:stop])
        bias = b_c[start:stop]
        if neighbours is not None:
            rows, bias = neighbours.adapt(rows, bias)
        rows_d = ops.transpose(w_d[:, start:stop])
        kernels.append(ops.transpose(ops.where(mask[:, None], rows_d, rows)))
        biases.append(ops.where(mask, b_d[start:stop], bias))
    return kernels, biases


def _is_few(count, size):
    return 8 * count <= size


def _columns(values, start, stop, local_ids):
    """Columns `start + local_ids` of a kernel (2-D) or bias (1-D)."""
    if local_ids.size == stop - start:
        return values[..., start:stop]
    return ops.take(values, start + local_ids, axis=-1)


def _rows(kernel, start, stop, local_ids):
    """`(len(local_ids), features)`: kernel columns `start + local_ids`."""
    if _is_few(local_ids.size, stop - start) or _static_shapes():
        # A column gather costs about as much per element as a transpose
        # (and, for static shapes' ranges over all classes, needs no
        # transposed copy of the whole kernel).
        return ops.transpose(ops.take(kernel, start + local_ids, axis=1))
    rows = ops.transpose(kernel[:, start:stop])
    if local_ids.size == stop - start:
        return rows
    return ops.take(rows, local_ids, axis=0)


class _DetectionOffsets:
    """The offsets `W^d - W^c` of B, and the weighted neighbour means.

    Holds the `(|B|, features + 1)` offset rows (bias last) and, unless
    `knn="all"` with uniform weights, the `(features, |B|)` unit columns of
    `W^c_B` with their halved squared norms, all built chunk by chunk.
    """

    def __init__(
        self, w_c, b_c, w_d, b_d, is_b, chunks, knn, weighting, temperature
    ):
        self.knn = knn
        self.weighting = weighting
        self.temperature = temperature
        self.features = int(w_c.shape[0])
        needs_distances = not (knn == "all" and weighting == "uniform")
        offsets, units = [], []
        for ids, (start, stop) in self._groups(is_b, chunks):
            rows_c = _rows(w_c, start, stop, ids)
            rows_d = _rows(w_d, start, stop, ids)
            bias_c = _columns(b_c, start, stop, ids)
            bias_d = _columns(b_d, start, stop, ids)
            offsets.append(
                ops.concatenate(
                    [rows_d - rows_c, (bias_d - bias_c)[:, None]], axis=1
                )
            )
            del rows_d
            if needs_distances:
                units.append(ops.transpose(_unit_rows(rows_c)))
        self.offsets = _concatenate(offsets, axis=0)
        del offsets
        if knn == "all" and weighting == "uniform":
            self.mean_offset = ops.mean(self.offsets, axis=0)
            self.offsets = None
        else:
            self.unit_b = _concatenate(units, axis=1)
            del units
            # For a fixed class a of A, |a - b|^2 = |a|^2 + |b|^2 - 2 a.b
            # ranks the classes b of B in the same order as the descending
            # a.b - |b|^2 / 2 (norms are 1, or 0 for an all-zero column).
            self.half_norms = 0.5 * ops.sum(
                ops.square(self.unit_b), axis=0, keepdims=True
            )

    @staticmethod
    def _groups(is_b, chunks):
        """`(local ids, (start, stop))` pieces covering B in class order.

        Per chunk of class ids; with static shapes, runs of B ids of one
        chunk's length instead (the same gather shape each time).
        """
        if not _static_shapes():
            for start, stop in chunks:
                local_b = np.flatnonzero(is_b[start:stop]).astype("int32")
                if local_b.size:
                    yield local_b, (start, stop)
            return
        b_ids = np.flatnonzero(is_b).astype("int32")
        size = chunks[0][1] - chunks[0][0]
        for first in range(0, b_ids.size, size):
            # `_rows`/`_columns` of the whole range at offset 0 gather
            # exactly these columns.
            yield b_ids[first : first + size], (0, is_b.size)

    def adapt(self, rows_a, bias_a):
        """Adds the weighted neighbour offsets to held-out rows."""
        if self.offsets is None:
            mean = self.mean_offset
            return (
                rows_a + mean[None, : self.features],
                bias_a + mean[self.features],
            )
        # (chunk, |B|) cosine similarities of the unit columns.
        cosines = ops.matmul(_unit_rows(rows_a), self.unit_b)
        if self.knn == "all":
            weights = ops.softmax(cosines / self.temperature, axis=-1)
            mean = ops.matmul(weights, self.offsets)
        else:
            _, neighbours = ops.top_k(
                cosines - self.half_norms, k=self.knn, sorted=True
            )
            weights = None
            if self.weighting == "similarity":
                weights = ops.softmax(
                    ops.take_along_axis(cosines, neighbours, axis=1)
                    / self.temperature,
                    axis=-1,
                )
            del cosines
            mean = self._neighbour_mean(neighbours, weights)
        return rows_a + mean[:, : self.features], bias_a + mean[:, -1]

    def _neighbour_mean(self, neighbours, weights):
        """(chunk, features + 1) weighted mean of the neighbours' offsets."""
        total = None
        for first in range(0, self.knn, _SLOT_GROUP):
            slots = neighbours[:, first : first + _SLOT_GROUP]
            # (chunk, slots, features + 1).
            gathered = ops.take(self.offsets, slots, axis=0)
            if weights is None:
                if self.knn <= _SLOT_GROUP:
                    return ops.mean(gathered, axis=1)
                part = ops.sum(gathered, axis=1)
            else:
                part = ops.einsum(
                    "cs,csf->cf",
                    weights[:, first : first + _SLOT_GROUP],
                    gathered,
                )
            total = part if total is None else total + part
        if weights is None:
            total = total / self.knn
        return total


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


def _unit_rows(rows):
    norms = ops.sqrt(ops.sum(ops.square(rows), axis=1, keepdims=True))
    return rows / ops.maximum(norms, keras.config.epsilon())
