"""Fast R-CNN's truncated SVD of fully connected layers."""

import keras
import numpy as np

from keras_objectness.layers.background_head import BackgroundHead
from keras_objectness.models.detection_network import copy_model


def truncated_svd_dense(network, rank, layer_names=None):
    """A copy of a model with Dense layers factored by truncated SVD.

    Each chosen `keras.layers.Dense` with kernel `W` (`d_in x d_out`) is
    replaced by two plain Dense layers from `W = U S V^T`: `{name}_svd`
    (`d_in x rank`, kernel `U_r S_r`, no bias, linear) followed by a layer
    that keeps the original name (`rank x d_out`, kernel `V_r^T`, the
    original bias and activation). Per input row the multiply-adds go from
    `d_in d_out` to `rank (d_in + d_out)`, a saving only for
    `rank < d_in d_out / (d_in + d_out)`; the approximation error of the
    kernel is the Frobenius norm of the dropped singular values, the
    smallest possible at that rank (Eckart-Young).

    Fast R-CNN applies this to fc6 and fc7, which run once per region in
    the shared-feature detector
    (`keras_objectness.models.shared_feature_detector`): there they, not
    the convolutions, dominate the cost at 1,000 proposals per image.

    The input model is left untouched: the result holds copies of its
    weights (the other layers are clones). Only standard Keras layers are
    added, so the result saves to `.keras` and loads with
    `safe_mode=True`. The `BackgroundHead` of a detection network is not a
    `Dense` and is never factored: its `K + 1` columns, snapshot and
    adaptation stay as they are. Nested functional models (a classifier's
    backbone) keep their structure; a `Dense` inside a nested
    `keras.Sequential` cannot be rebuilt and is refused.

    Args:
        network: a functional `keras.Model` or a built `keras.Sequential`,
            e.g. a detection network from
            `keras_objectness.models.detection_network`.
        rank: int. Singular values kept per layer, `1 <= rank <
            min(d_in, d_out)` for every chosen layer.
        layer_names: optional tuple of names of `Dense` layers (searched
            through nested models). Defaults to every `Dense` layer.

    Returns:
        A new functional `keras.Model` with the same inputs and outputs.

    Example:

    ```python
    fast = truncated_svd_dense(network, 256, ("alexnet_fc6", "alexnet_fc7"))
    scorer = shared_feature_detector(fast, (128, 128, 3), 1000)
    ```

    References:
        - [Girshick, 2015. Fast R-CNN](https://arxiv.org/abs/1504.08083),
          section 3.1.
    """
    # === Config ===
    if isinstance(network, keras.Sequential):
        if getattr(network, "_functional", None) is None:
            raise ValueError(
                "`network` must be a built `keras.Sequential`: start it with "
                "`keras.Input(shape)`. Received: unbuilt "
                f"network={network.name!r}"
            )
        network = keras.Model(
            network.inputs, network.outputs, name=network.name
        )
    if not isinstance(network, keras.Model) or not hasattr(network, "outputs"):
        raise ValueError(
            "`network` must be a functional `keras.Model` or a built "
            f"`keras.Sequential`. Received: network={network!r}"
        )
    if (
        not isinstance(rank, (int, np.integer))
        or isinstance(rank, bool)
        or rank < 1
    ):
        raise ValueError(
            f"`rank` must be a positive integer. Received: rank={rank!r}"
        )
    rank = int(rank)
    chosen = _chosen_layers(network, layer_names)
    for layer in chosen:
        if layer.quantization_mode is not None:
            raise ValueError(
                "`layer_names` must name float Dense layers; quantized "
                f"kernels cannot be factored. Received: layer {layer.name!r}"
                f" quantized as {layer.quantization_mode!r}"
            )
        d_in, d_out = layer.kernel.shape
        if rank >= min(d_in, d_out):
            raise ValueError(
                "`rank` must be below min(d_in, d_out) of every chosen "
                "layer (at that rank nothing is truncated and the two "
                f"factors cost more than the layer). Received: rank={rank} "
                f"for layer {layer.name!r} with a {d_in} x {d_out} kernel. "
                "Pass `layer_names` to choose fewer layers."
            )

    # === Layers ===
    # Factor on a weight-holding copy, so the new model shares nothing
    # with `network`; the other layers of the copy are reused as they are.
    names = {layer.name for layer in chosen}
    copy = copy_model(
        network, "network", "Pass a functional model of built-in layers."
    )
    factors = {}
    for layer in _dense_layers(copy):
        if layer.name in names:
            factors[id(layer)] = _factor(layer, rank)

    called = set()

    def call_function(layer, *args, **kwargs):
        if id(layer) not in factors:
            return layer(*args, **kwargs)
        called.add(layer.name)
        first, second = factors[id(layer)]
        return second(first(*args, **kwargs))

    # === Functional Model ===
    # The copy's layers are reused (identity clone); only the chosen calls
    # change. `recursive` rebuilds nested functional models the same way.
    model = keras.models.clone_model(
        copy,
        clone_function=lambda layer: layer,
        call_function=call_function,
        recursive=True,
    )
    missing = sorted(names - called)
    if missing:
        raise ValueError(
            "`layer_names` must name Dense layers of the functional graph; "
            "a Dense inside a nested `keras.Sequential` cannot be rebuilt. "
            f"Received: layer_names with {missing} (not rebuilt)"
        )
    return model


def _dense_layers(model):
    """Every layer of `model`, through nested models, that is a Dense."""
    found, seen, stack = [], set(), [model]
    while stack:
        layer = stack.pop()
        if id(layer) in seen:
            continue
        seen.add(id(layer))
        if isinstance(layer, keras.layers.Dense):
            found.append(layer)
        stack.extend(reversed(getattr(layer, "layers", ()) or ()))
    return found


def _all_layers(model):
    found, stack = [], [model]
    while stack:
        layer = stack.pop()
        found.append(layer)
        stack.extend(getattr(layer, "layers", ()) or ())
    return found


def _chosen_layers(network, layer_names):
    dense = _dense_layers(network)
    if layer_names is None:
        if not dense:
            raise ValueError(
                "`network` must contain a Dense layer to factor. Received: "
                f"network={network.name!r} without Dense layers"
            )
        return dense
    if (
        not isinstance(layer_names, (tuple, list))
        or not layer_names
        or not all(isinstance(n, str) for n in layer_names)
    ):
        raise ValueError(
            "`layer_names` must be None or a non-empty tuple of layer "
            f"names. Received: layer_names={layer_names!r}"
        )
    if len(set(layer_names)) != len(layer_names):
        raise ValueError(
            "`layer_names` must not repeat a name. Received: "
            f"layer_names={layer_names!r}"
        )
    by_name = {layer.name: layer for layer in dense}
    chosen = []
    for name in layer_names:
        if name in by_name:
            chosen.append(by_name[name])
            continue
        other = [layer for layer in _all_layers(network) if layer.name == name]
        if other and isinstance(other[0], BackgroundHead):
            raise ValueError(
                "`layer_names` must not name the `BackgroundHead`: its "
                "K + 1 columns, snapshot and adaptation must stay one "
                f"layer. Received: layer_names={layer_names!r}"
            )
        kind = f" ({type(other[0]).__name__})" if other else ""
        raise ValueError(
            "`layer_names` must name Dense layers of `network`. Received: "
            f"{name!r}{kind} in layer_names={layer_names!r}; Dense layers: "
            f"{sorted(by_name)}"
        )
    return chosen


def _factor(layer, rank):
    """The two Dense layers `(d_in x rank, rank x d_out)` replacing one."""
    kernel = keras.ops.convert_to_numpy(layer.kernel).astype("float64")
    # W = U S V^T; keeping the top `rank` values is the best approximation.
    u, s, vt = np.linalg.svd(kernel, full_matrices=False)
    dtype = layer.kernel.dtype
    first = keras.layers.Dense(
        rank,
        use_bias=False,
        dtype=layer.dtype_policy,
        trainable=layer.trainable,
        name=f"{layer.name}_svd",
    )
    second = keras.layers.Dense(
        kernel.shape[1],
        activation=layer.activation,
        use_bias=layer.use_bias,
        dtype=layer.dtype_policy,
        trainable=layer.trainable,
        name=layer.name,
    )
    first.build((None, kernel.shape[0]))
    second.build((None, rank))
    first.kernel.assign((u[:, :rank] * s[:rank]).astype(dtype))
    second.kernel.assign(vt[:rank].astype(dtype))
    if layer.use_bias:
        second.bias.assign(np.array(keras.ops.convert_to_numpy(layer.bias)))
    return first, second
