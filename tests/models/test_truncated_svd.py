import os
import tempfile

import keras
import numpy as np
import pytest

from keras_objectness.adaptation import find_background_head
from keras_objectness.models import detection_network
from keras_objectness.models import shared_feature_detector
from keras_objectness.models import truncated_svd_dense

NUM_CLASSES = 4
DETECTION_CLASSES = (0, 1)


def _network():
    # A backbone nested in the classifier, as the AlexNet preset builds it.
    keras.utils.set_random_seed(0)
    images = keras.Input((8, 8, 3))
    x = keras.layers.Rescaling(1 / 255.0)(images)
    x = keras.layers.Conv2D(4, 3, activation="relu", name="conv")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.Dense(12, activation="relu", name="fc6")(x)
    x = keras.layers.Dense(10, activation="relu", name="fc7")(x)
    backbone = keras.Model(images, x, name="backbone")
    inputs = keras.Input((8, 8, 3))
    outputs = keras.layers.Dense(
        NUM_CLASSES, activation="softmax", name="predictions"
    )(backbone(inputs))
    classifier = keras.Model(inputs, outputs)
    return detection_network(classifier, DETECTION_CLASSES)


def _images(count=3):
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (count, 8, 8, 3)).astype("float32")


def _kernels(model):
    backbone = model.get_layer("backbone")
    return {
        layer.name: tuple(layer.kernel.shape)
        for layer in backbone.layers
        if isinstance(layer, keras.layers.Dense)
    }


def test_layers_are_replaced_by_two_dense_factors():
    network = _network()
    fast = truncated_svd_dense(network, 3)
    assert _kernels(fast) == {
        "fc6_svd": (144, 3),
        "fc6": (3, 12),
        "fc7_svd": (12, 3),
        "fc7": (3, 10),
    }
    backbone = fast.get_layer("backbone")
    assert backbone.get_layer("fc6_svd").use_bias is False
    assert backbone.get_layer("fc6_svd").activation.__name__ == "linear"
    assert backbone.get_layer("fc7").activation.__name__ == "relu"
    # The input model keeps its own layers and weights.
    assert _kernels(network) == {"fc6": (144, 12), "fc7": (12, 10)}
    assert fast.count_params() == network.count_params() - (
        144 * 12 + 12 * 10 - 3 * (144 + 12) - 3 * (12 + 10)
    )


def test_a_kernel_of_rank_r_is_reproduced_at_rank_r():
    # A kernel that truly has rank 3: the factors keep all of it.
    network = _network()
    fc7 = network.get_layer("backbone").get_layer("fc7")
    rng = np.random.default_rng(2)
    low = rng.normal(size=(12, 3)) @ rng.normal(size=(3, 10)) * 0.1
    fc7.kernel.assign(low.astype("float32"))
    images = _images()
    fast = truncated_svd_dense(network, 3, layer_names=("fc7",))
    np.testing.assert_allclose(
        fast.predict(images, verbose=0),
        network.predict(images, verbose=0),
        atol=1e-5,
        rtol=0,
    )


def test_error_is_the_dropped_singular_values_and_falls_with_rank():
    # A linear layer on the identity rows gives the kernel itself; the
    # error of rank r is the norm of the singular values after the r-th.
    keras.utils.set_random_seed(1)
    inputs = keras.Input((9,))
    outputs = keras.layers.Dense(7, name="dense")(inputs)
    model = keras.Model(inputs, outputs)
    kernel = keras.ops.convert_to_numpy(model.get_layer("dense").kernel)
    singular = np.linalg.svd(kernel, compute_uv=False)
    eye = np.eye(9, dtype="float32")
    expected = model.predict(eye, verbose=0)
    errors = []
    for rank in range(1, 7):
        fast = truncated_svd_dense(model, rank)
        error = np.linalg.norm(fast.predict(eye, verbose=0) - expected)
        np.testing.assert_allclose(
            error, np.sqrt(np.sum(singular[rank:] ** 2)), rtol=1e-4
        )
        errors.append(error)
    assert all(b < a for a, b in zip(errors, errors[1:]))


def test_the_background_head_keeps_its_contract():
    network = _network()
    fast = truncated_svd_dense(network, 4)
    head = find_background_head(fast)
    assert head.name == find_background_head(network).name
    assert fast.output.shape == (None, NUM_CLASSES + 1)
    with pytest.raises(ValueError, match="layer_names.*BackgroundHead"):
        truncated_svd_dense(network, 2, layer_names=(head.name,))


def test_the_shared_feature_detector_runs_on_the_factored_network():
    network = _network()
    fast = truncated_svd_dense(network, 3)
    scorer = shared_feature_detector(fast, (16, 16, 3), 2)
    regions = np.array([[[0.0, 0.0, 0.5, 0.5], [0.2, 0.3, 0.9, 1.0]]] * 2)
    scores = scorer.predict(
        [_images(2).repeat(2, 1).repeat(2, 2), regions], verbose=0
    )
    assert scores.shape == (2, 2, NUM_CLASSES)
    assert np.all(np.isfinite(scores))


def test_keras_round_trip_in_safe_mode():
    network = _network()
    fast = truncated_svd_dense(network, 2)
    images = _images()
    expected = fast.predict(images, verbose=0)
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "fast.keras")
        fast.save(path)
        restored = keras.saving.load_model(path, safe_mode=True)
    np.testing.assert_allclose(
        restored.predict(images, verbose=0), expected, atol=1e-6
    )
    assert _kernels(restored) == _kernels(fast)


def test_a_sequential_model_is_factored():
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((6,)), keras.layers.Dense(5, name="dense")]
    )
    fast = truncated_svd_dense(model, 2)
    assert [layer.name for layer in fast.layers[1:]] == ["dense_svd", "dense"]


@pytest.mark.parametrize("rank", [0, -1, 2.0, True, "3", None])
def test_bad_rank_is_refused(rank):
    with pytest.raises(ValueError, match="`rank` must be a positive"):
        truncated_svd_dense(_network(), rank)


def test_rank_must_truncate_every_chosen_layer():
    network = _network()
    # fc7 is 12 x 10: rank 10 keeps everything.
    with pytest.raises(ValueError, match="`rank`.*'fc7'.*12 x 10"):
        truncated_svd_dense(network, 10)
    fast = truncated_svd_dense(network, 10, layer_names=("fc6",))
    assert _kernels(fast)["fc6_svd"] == (144, 10)


@pytest.mark.parametrize(
    "layer_names, message",
    [
        ("fc6", "non-empty tuple"),
        ((), "non-empty tuple"),
        (("fc6", 3), "non-empty tuple"),
        (("fc6", "fc6"), "repeat"),
        (("nothing",), "'nothing' in layer_names"),
        (("conv",), r"'conv' \(Conv2D\)"),
    ],
)
def test_bad_layer_names_are_refused(layer_names, message):
    with pytest.raises(ValueError, match=f"`layer_names`.*{message}"):
        truncated_svd_dense(_network(), 2, layer_names=layer_names)


def test_a_dense_inside_a_nested_sequential_is_refused():
    inner = keras.Sequential(
        [keras.Input((6,)), keras.layers.Dense(5, name="inner_dense")],
        name="inner",
    )
    inputs = keras.Input((6,))
    model = keras.Model(
        inputs, keras.layers.Dense(4, name="out")(inner(inputs))
    )
    with pytest.raises(ValueError, match="`layer_names`.*Sequential"):
        truncated_svd_dense(model, 2, layer_names=("inner_dense",))


def test_a_model_without_dense_layers_is_refused():
    inputs = keras.Input((4, 4, 3))
    model = keras.Model(inputs, keras.layers.Conv2D(2, 1)(inputs))
    with pytest.raises(ValueError, match="`network` must contain a Dense"):
        truncated_svd_dense(model, 1)
    with pytest.raises(ValueError, match="`network` must be"):
        truncated_svd_dense("model", 1)


def test_the_input_network_is_untouched_by_the_copy():
    # Under JAX a jitted predict donates its weight buffers: shared array
    # objects would leave the input network with deleted weights.
    network = _network()
    images = _images()
    before = network.predict(images, verbose=0)
    fast = truncated_svd_dense(network, 2)
    fast.predict(images, verbose=0)
    fast.get_layer("backbone").get_layer("fc6").bias.assign(np.ones(12))
    np.testing.assert_array_equal(network.predict(images, verbose=0), before)
