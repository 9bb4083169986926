"""Grow a trained detector's vocabulary from image labels alone.

A detector made by LSDA serves the classes it was built with. New classes
arrive later with tagged images and no boxes. `add_classes` gives them
detectors without retraining anything the existing classes use:

1. The network's penultimate features (the `BackgroundHead`'s input) of
   the new images are computed once, with every weight frozen.
2. One classifier column per new class is fitted on those features: a
   multinomial logistic regression over the existing classes' classifier
   columns `W^c` (the head's snapshot, frozen) plus the new columns (the
   only parameters), with an L2 penalty (`fit_class_columns`). Fitting
   against the frozen `W^c` logits puts the new columns in `W^c`'s own
   space and gauge (a softmax is unchanged by adding one vector to every
   column, so only a fit against the existing columns fixes where a new
   column sits among them); that is the space in which LSDA compares
   classes. The problem is convex, runs full batch from zeros and is
   therefore deterministic: the same inputs give the same columns.
3. Each new column gets a detection column the way LSDA adapts a
   held-out class (`keras_objectness.adaptation.adapted_weights`): its
   classifier column plus the mean fine-tuning offset `W^d_n - W^c_n` of
   its `knn` nearest detection classes `n` in B, neighbours found among
   B's snapshot columns.
4. A new network is assembled: the same backbone (copied by default) and
   a `BackgroundHead` with `K + n` classes, whose first `K` kernel
   columns, biases, background column and snapshot are the old ones
   unchanged, the new classes' columns at ids `K .. K + n - 1`, and the
   background last (id `K + n`).

What stays identical: every weight the old classes use, so the LSDA
detection scores `(w_i.x + b_i) - (w_bg.x + b_bg)` of the old classes
(the head's `"scores"` mode, what `detect_on_proposals` and
`region_detector` rank) and their logits are the same numbers (bit for
bit on the CPU kernels this package is tested on; the matrix product is
the same per-column dot product). The head's softmax over `K + n + 1`
units (`"probabilities"` mode) does change: the new classes take part of
the mass. Detections can differ only where a cap on detections per image
(`max_detections`) is filled and new-class detections now take places.
"""

import numbers
import warnings

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from keras_objectness import _checks
from keras_objectness.adaptation import adapted_weights
from keras_objectness.adaptation import find_background_head
from keras_objectness.adaptation import validate_knn
from keras_objectness.adaptation import validate_weighting
from keras_objectness.layers.background_head import BackgroundHead
from keras_objectness.models.detection_network import copy_model

ADAPTATIONS = ("knn", "none")


def add_classes(
    detector_network,
    examples,
    class_names,
    existing_class_names=None,
    reference_examples=None,
    adaptation="knn",
    knn=5,
    weighting="uniform",
    temperature=0.1,
    steps=300,
    learning_rate=0.01,
    l2=1e-3,
    batch_size=256,
    copy_network=True,
):
    """Adds classes to a trained detection network from image labels.

    The new classes' classifier columns are fitted on the network's frozen
    penultimate features against the existing classes' classifier columns
    `W^c` (`fit_class_columns`), then given detection columns with LSDA's
    neighbour offsets, and appended to the `BackgroundHead` (kernel, bias
    and snapshot). The existing classes keep their ids, weights and
    detection scores exactly (see the module docstring for what is and is
    not identical); the background moves to the last id, `K + n`.

    Args:
        detector_network: `keras.Model` whose output is its
            `BackgroundHead`'s (e.g. from `detection_network` or
            `finetune_detector`, or loaded from a `.keras` file), with the
            head's snapshot taken (fine-tuning does it).
        examples: the new classes' image-labelled examples: a tuple
            `(images, labels)` of arrays, or a `tf.data.Dataset` of
            `(image, label)` pairs (batched or not). Images have the
            network's input shape (e.g. `(32, 32, 3)`, uint8-valued);
            labels are ints in `[0, len(class_names))` indexing
            `class_names`. Every new class needs at least one example.
        class_names: sequence of distinct non-empty strings, the names of
            the new classes (none may already name a class of the head).
        existing_class_names: `None` or `K` names of the existing classes,
            for a head that stores none (a detector saved before heads
            kept names). `None` uses the head's own names, else `"0"` ..
            `str(K - 1)`. Defaults to `None`.
        reference_examples: optional `(images, labels)` or dataset of
            image-labelled examples of existing classes (labels are their
            ids in `[0, K)`). They train nothing of the old classes; they
            only show the new columns what they must not fire on. Strongly
            recommended: fitted on positives alone, a new column also
            grows along what all images share and fires on other objects
            (on `silhouette_scenes`, 10 classes added from 50 images each:
            4.7 mAP alone, 18.8 with the classification images of the
            existing classes; `benchmarks/add_classes.py`). Defaults to
            `None`.
        adaptation: `"knn"` (LSDA's neighbour offsets) or `"none"` (the
            classifier column serves as the detection column). Defaults to
            `"knn"`.
        knn: int in `[1, |B|]` or `"all"`: neighbours in B. Defaults to
            `5`.
        weighting, temperature: of the neighbour offsets, as in
            `keras_objectness.adapt_classifier`. Default to `"uniform"` and
            `0.1`.
        steps: int. Full-batch optimisation steps of the column fit.
            Defaults to `300`.
        learning_rate: float. Adam rate of the column fit (cosine-decayed
            to zero over `steps`). Defaults to `0.01`.
        l2: float >= 0. L2 penalty on the new kernel columns. Defaults to
            `1e-3`.
        batch_size: int. Images per batch of the feature pass. Defaults to
            `256`.
        copy_network: bool. If `True`, the result is built on a copy of the
            network (its weights copied), so training one never changes the
            other; if `False`, it shares the backbone's layers and weights
            with `detector_network`. `detector_network` itself is never
            changed. Defaults to `True`.

    Returns:
        A new `keras.Model` with `K + n` classes plus background, the same
        inputs, output mode, class split B and name; its head's
        `class_names` are the old names followed by `class_names`.

    Example:

    ```python
    detector = keras.saving.load_model("detector.keras", safe_mode=True)
    grown = keras_objectness.add_classes(
        detector, (crops, labels), class_names=("otter", "heron")
    )
    grown.save("detector_grown.keras")
    ```

    References:
        - [Hoffman et al., 2014. LSDA: Large Scale Detection through
          Adaptation](https://arxiv.org/abs/1407.5035), section 3.2 (the
          neighbour offsets).
    """
    head, features_tensor = _head_and_features(detector_network)
    k = head.num_classes
    old_names = _existing_names(head, existing_class_names)
    new_names = _new_names(class_names, old_names)
    n = len(new_names)
    if adaptation not in ADAPTATIONS:
        raise ValueError(
            f"`adaptation` must be one of {ADAPTATIONS}. "
            f"Received: adaptation={adaptation!r}"
        )
    b_ids = np.asarray(head.detection_classes, "int32")
    if adaptation == "knn":
        knn = validate_knn(knn, len(b_ids))
        validate_weighting(weighting, temperature)
    _checks.check_positive_int("batch_size", batch_size)
    if not isinstance(copy_network, (bool, np.bool_)):
        raise ValueError(
            "`copy_network` must be a bool. "
            f"Received: copy_network={copy_network!r}"
        )
    input_shape = tuple(detector_network.inputs[0].shape[1:])
    images, labels = _example_arrays(examples, "examples", input_shape)
    _check_labels(labels, n, "examples", names=new_names)
    if reference_examples is None:
        warnings.warn(
            "add_classes without `reference_examples`: the new columns "
            "see no images of the existing classes and tend to fire on "
            "every object (4.7 against 18.8 mAP in benchmarks/add_classes)."
            " Pass image-labelled examples of existing classes.",
            stacklevel=2,
        )
    else:
        ref_images, ref_labels = _example_arrays(
            reference_examples, "reference_examples", input_shape
        )
        _check_labels(ref_labels, k, "reference_examples")

    inputs = detector_network.inputs
    feature_model = keras.Model(
        inputs[0] if len(inputs) == 1 else inputs,
        features_tensor,
        name="features",
    )
    features = _features(feature_model, images, batch_size)
    targets = labels.astype("int32") + k
    if reference_examples is not None:
        features = np.concatenate(
            [features, _features(feature_model, ref_images, batch_size)]
        )
        targets = np.concatenate([targets, ref_labels.astype("int32")])
    w_c = ops.convert_to_numpy(ops.cast(head.classification_kernel, "float32"))
    b_c = ops.convert_to_numpy(ops.cast(head.classification_bias, "float32"))
    new_kernel, new_bias, _ = fit_class_columns(
        features,
        targets,
        w_c,
        b_c,
        num_new_classes=n,
        steps=steps,
        learning_rate=learning_rate,
        l2=l2,
    )
    kernel = ops.convert_to_numpy(ops.cast(head.kernel, "float32"))
    bias = ops.convert_to_numpy(ops.cast(head.bias, "float32"))
    if adaptation == "knn":
        detection_kernel, detection_bias = new_class_detection_columns(
            w_c[:, b_ids],
            b_c[b_ids],
            kernel[:, b_ids],
            bias[b_ids],
            new_kernel,
            new_bias,
            knn=knn,
            weighting=weighting,
            temperature=temperature,
        )
    else:
        detection_kernel, detection_bias = new_kernel, new_bias

    if copy_network:
        network = copy_model(
            detector_network,
            "detector_network",
            "Pass `copy_network=False`.",
        )
        head, features_tensor = _head_and_features(network)
    else:
        network = detector_network
    config = head.get_config()
    config.update(num_classes=k + n, class_names=old_names + new_names)
    grown_head = BackgroundHead.from_config(config)
    outputs = grown_head(features_tensor)
    _assign(
        grown_head,
        head,
        (detection_kernel, detection_bias),
        (new_kernel, new_bias),
    )
    return keras.Model(network.inputs, outputs, name=network.name)


def fit_class_columns(
    features,
    labels,
    classification_kernel,
    classification_bias,
    num_new_classes,
    steps=300,
    learning_rate=0.01,
    l2=1e-3,
):
    """Fits new classifier columns beside frozen ones (softmax regression).

    Minimises, over the new columns `C (features, n)` and biases `c (n,)`
    only,

        mean_i CE(softmax([x_i W^c + b^c, x_i C + c]), y_i) + l2/2 |C|^2

    where the `K` existing columns `W^c, b^c` stay fixed and labels `y_i`
    in `[K, K + n)` are new classes (labels in `[0, K)`, examples of
    existing classes, only push the new columns down). The objective is
    convex; it is minimised full batch from zeros with Adam under a cosine
    decay, with the gradient written out
    (`X^T (softmax - onehot) / N + l2 C`), so the result depends on the
    inputs alone.

    Args:
        features: float array `(N, F)`.
        labels: int array `(N,)` in `[0, K + n)`.
        classification_kernel: float array `(F, K)`, the frozen columns.
        classification_bias: float array `(K,)`.
        num_new_classes: int `n >= 1`.
        steps, learning_rate, l2: as in `add_classes`.

    Returns:
        `(kernel, bias, loss)`: float32 numpy arrays `(F, n)` and `(n,)`,
        and the final value of the objective (a float).
    """
    _checks.check_positive_int("steps", steps)
    _checks.check_positive_int("num_new_classes", num_new_classes)
    for name, value in (("learning_rate", learning_rate), ("l2", l2)):
        if (
            isinstance(value, (bool, np.bool_))
            or not isinstance(value, numbers.Real)
            or not np.isfinite(value)
            or value < 0
            or (name == "learning_rate" and value == 0)
        ):
            raise ValueError(
                f"`{name}` must be a finite number "
                f"{'> 0' if name == 'learning_rate' else '>= 0'}. "
                f"Received: {name}={value!r}"
            )
    x = ops.convert_to_tensor(np.asarray(features, "float32"))
    w_c = ops.convert_to_tensor(np.asarray(classification_kernel, "float32"))
    b_c = ops.convert_to_tensor(np.asarray(classification_bias, "float32"))
    count, width = (int(d) for d in x.shape)
    k, n = int(w_c.shape[1]), int(num_new_classes)
    labels = np.asarray(labels).astype("int64")
    onehot = np.zeros((count, n), "float32")
    new = labels >= k
    onehot[np.flatnonzero(new), labels[new] - k] = 1.0
    onehot = ops.convert_to_tensor(onehot)
    old_logits = ops.matmul(x, w_c) + b_c
    params = [ops.zeros((width, n)), ops.zeros((n,))]
    moments = [[ops.zeros_like(p), ops.zeros_like(p)] for p in params]
    beta1, beta2, epsilon = 0.9, 0.999, 1e-8
    for step in range(1, int(steps) + 1):
        kernel, bias = params
        logits = ops.concatenate(
            [old_logits, ops.matmul(x, kernel) + bias], axis=1
        )
        probabilities = ops.softmax(logits, axis=-1)
        error = probabilities[:, k:] - onehot
        grads = [
            ops.matmul(ops.transpose(x), error) / count + l2 * kernel,
            ops.mean(error, axis=0),
        ]
        rate = learning_rate * 0.5 * (1.0 + np.cos(np.pi * (step - 1) / steps))
        for i, (param, grad) in enumerate(zip(params, grads)):
            m, v = moments[i]
            m = beta1 * m + (1.0 - beta1) * grad
            v = beta2 * v + (1.0 - beta2) * ops.square(grad)
            moments[i] = [m, v]
            m_hat = m / (1.0 - beta1**step)
            v_hat = v / (1.0 - beta2**step)
            params[i] = param - rate * m_hat / (ops.sqrt(v_hat) + epsilon)
    kernel, bias = params
    logits = ops.concatenate([old_logits, ops.matmul(x, kernel) + bias], 1)
    log_p = ops.log_softmax(logits, axis=-1)
    picked = ops.take_along_axis(
        log_p, ops.convert_to_tensor(labels[:, None].astype("int32")), 1
    )
    loss = -ops.mean(picked) + 0.5 * l2 * ops.sum(ops.square(kernel))
    return (
        ops.convert_to_numpy(kernel).astype("float32"),
        ops.convert_to_numpy(bias).astype("float32"),
        float(ops.convert_to_numpy(loss)),
    )


def new_class_detection_columns(
    classification_kernel_b,
    classification_bias_b,
    detection_kernel_b,
    detection_bias_b,
    new_kernel,
    new_bias,
    knn=5,
    weighting="uniform",
    temperature=0.1,
):
    """LSDA detection columns of new classes from B's fine-tuning offsets.

    Each new classifier column `c` becomes `c + sum_n w_n (W^d_n - W^c_n)`
    over its `knn` nearest classes `n` of B (L2-normalised classifier
    columns, `keras_objectness.adaptation.adapted_weights`).

    Args:
        classification_kernel_b, classification_bias_b: `W^c` of B,
            `(F, |B|)` and `(|B|,)` (the snapshot's columns of B).
        detection_kernel_b, detection_bias_b: `W^d` of B (the head's
            current columns of B).
        new_kernel, new_bias: the new classifier columns `(F, n)`, `(n,)`.
        knn, weighting, temperature: as in `adapted_weights`.

    Returns:
        `(kernel, bias)`: float32 numpy arrays `(F, n)` and `(n,)`.
    """
    b = int(np.shape(classification_bias_b)[0])
    kernel, bias = adapted_weights(
        np.concatenate([classification_kernel_b, new_kernel], axis=1),
        np.concatenate([classification_bias_b, new_bias]),
        np.concatenate([detection_kernel_b, new_kernel], axis=1),
        np.concatenate([detection_bias_b, new_bias]),
        detection_classes=tuple(range(b)),
        knn=knn,
        weighting=weighting,
        temperature=temperature,
    )
    return (
        ops.convert_to_numpy(kernel)[:, b:].astype("float32"),
        ops.convert_to_numpy(bias)[b:].astype("float32"),
    )


def head_class_names(network):
    """The class names a detection network's head stores, or `None`."""
    names = find_background_head(network).class_names
    return None if names is None else list(names)


# === Helpers ===


def _head_and_features(network):
    """`(head, feature tensor)`: the network must end in its head."""
    head = find_background_head(network)
    if not isinstance(network, keras.Model) or len(network.outputs) != 1:
        raise ValueError(
            "`detector_network` must be a functional `keras.Model` with one "
            "output, its `BackgroundHead`'s. "
            f"Received: detector_network={network!r}"
        )
    history = network.outputs[0]._keras_history
    if history.operation is not head:
        raise ValueError(
            "`detector_network`'s output must be its `BackgroundHead`'s "
            "output (as `detection_network` builds it). Received: output "
            f"from layer {history.operation.name!r}"
        )
    node = head._inbound_nodes[history.node_index]
    if not head.has_snapshot:
        raise ValueError(
            "`detector_network`'s `BackgroundHead` has no snapshot of the "
            "classifier columns W^c, which new columns are fitted against: "
            "fine-tune it with `finetune_detector` (or call "
            "`take_snapshot()` before fine-tuning). "
            f"Received: head {head.name!r} with snapshot_taken=0"
        )
    return head, node.input_tensors[0]


def _existing_names(head, existing_class_names):
    k = head.num_classes
    if existing_class_names is None:
        if head.class_names is not None:
            return tuple(head.class_names)
        return tuple(str(i) for i in range(k))
    names = _string_tuple(existing_class_names, "existing_class_names")
    if len(names) != k or len(set(names)) != k:
        raise ValueError(
            f"`existing_class_names` must be {k} distinct names, one per "
            "class of the detector. "
            f"Received: existing_class_names={existing_class_names!r}"
        )
    if head.class_names is not None and names != tuple(head.class_names):
        raise ValueError(
            "`existing_class_names` must match the names the detector's "
            f"head stores ({list(head.class_names)}). "
            f"Received: existing_class_names={list(names)}"
        )
    return names


def _new_names(class_names, old_names):
    names = _string_tuple(class_names, "class_names")
    if not names:
        raise ValueError(
            "`class_names` must name at least one new class. "
            f"Received: class_names={class_names!r}"
        )
    if len(set(names)) != len(names):
        raise ValueError(
            "`class_names` must be distinct. "
            f"Received: class_names={list(names)}"
        )
    taken = [name for name in names if name in old_names]
    if taken:
        raise ValueError(
            "`class_names` must be new: the detector already has "
            f"{', '.join(repr(t) for t in taken)}. "
            f"Received: class_names={list(names)}"
        )
    return names


def _string_tuple(values, argument):
    message = (
        f"`{argument}` must be a sequence of non-empty strings. "
        f"Received: {argument}={values!r}"
    )
    if isinstance(values, (str, bytes)):
        raise ValueError(message)
    try:
        names = tuple(values)
    except TypeError:
        raise ValueError(message) from None
    if not all(isinstance(name, str) and name for name in names):
        raise ValueError(message)
    return names


def _example_arrays(examples, argument, input_shape):
    """`(images, labels)` numpy arrays from a tuple or a dataset."""
    if isinstance(examples, tf.data.Dataset):
        spec = examples.element_spec
        if not (isinstance(spec, tuple) and len(spec) == 2):
            raise ValueError(
                f"`{argument}` must be a dataset of `(image, label)` pairs. "
                f"Received: element_spec={spec}"
            )
        batched = len(spec[0].shape) == len(input_shape) + 1
        images, labels = [], []
        for image, label in examples:
            images.append(np.asarray(image))
            labels.append(np.asarray(label))
        if not images:
            raise ValueError(
                f"`{argument}` must not be empty. Received: an empty dataset"
            )
        if batched:
            images, labels = np.concatenate(images), np.concatenate(labels)
        else:
            images, labels = np.stack(images), np.stack(labels)
    elif isinstance(examples, (tuple, list)) and len(examples) == 2:
        images, labels = np.asarray(examples[0]), np.asarray(examples[1])
    else:
        raise ValueError(
            f"`{argument}` must be a tuple `(images, labels)` of arrays or a "
            "`tf.data.Dataset` of `(image, label)` pairs. "
            f"Received: {argument} of type {type(examples).__name__}"
        )
    expected = tuple(d for d in input_shape)
    if images.ndim != len(expected) + 1 or any(
        e is not None and e != a for e, a in zip(expected, images.shape[1:])
    ):
        raise ValueError(
            f"`{argument}` images must have the network's input shape "
            f"(N,) + {expected}. Received: images of shape {images.shape}"
        )
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels.reshape(-1)
    if labels.ndim != 1 or len(labels) != len(images):
        raise ValueError(
            f"`{argument}` must have one label per image. Received: "
            f"{len(images)} images and labels of shape {labels.shape}"
        )
    if len(images) == 0:
        raise ValueError(f"`{argument}` must not be empty. Received: 0 images")
    if not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(
            f"`{argument}` labels must be integers. "
            f"Received: labels of dtype {labels.dtype}"
        )
    return images, labels


def _check_labels(labels, count, argument, names=None):
    bad = (labels < 0) | (labels >= count)
    if bad.any():
        what = "`class_names`" if names is not None else "the detector"
        raise ValueError(
            f"`{argument}` labels must be in [0, {count}) (one id per class "
            f"of {what}). Received: labels {sorted(set(labels[bad].tolist()))}"
        )
    if names is not None:
        found = np.bincount(labels, minlength=count)
        empty = [names[i] for i in np.flatnonzero(found == 0)]
        if empty:
            raise ValueError(
                f"`{argument}` must hold at least one image of every class of "
                "`class_names`. Received: no images of "
                f"{', '.join(repr(e) for e in empty)}"
            )


def _features(feature_model, images, batch_size):
    outputs = []
    for start in range(0, len(images), batch_size):
        batch = images[start : start + batch_size]
        outputs.append(
            ops.convert_to_numpy(
                ops.cast(feature_model(batch, training=False), "float32")
            )
        )
    return np.concatenate(outputs)


def _assign(grown, head, detection, classification):
    """Old weights into the grown head, new columns before background."""
    detection_kernel, detection_bias = detection
    new_kernel, new_bias = classification
    k = head.num_classes
    kernel = ops.convert_to_numpy(head.kernel)
    bias = ops.convert_to_numpy(head.bias)
    dtype = kernel.dtype
    grown.kernel.assign(
        np.concatenate(
            [kernel[:, :k], detection_kernel.astype(dtype), kernel[:, k:]], 1
        )
    )
    grown.bias.assign(
        np.concatenate([bias[:k], detection_bias.astype(dtype), bias[k:]])
    )
    w_c = ops.convert_to_numpy(head.classification_kernel)
    b_c = ops.convert_to_numpy(head.classification_bias)
    grown.classification_kernel.assign(
        np.concatenate([w_c, new_kernel.astype(w_c.dtype)], 1)
    )
    grown.classification_bias.assign(
        np.concatenate([b_c, new_bias.astype(b_c.dtype)])
    )
    grown.snapshot_taken.assign(ops.convert_to_numpy(head.snapshot_taken))
