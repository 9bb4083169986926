import os
import tempfile

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_objectness.models import ALEXNET_PRESETS
from keras_objectness.models import alexnet_backbone
from keras_objectness.models import image_classifier

SMALL = ALEXNET_PRESETS["alexnet_small_32"]


def _images(count, seed=0, side=32):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (count, side, side, 3)).astype("uint8")


@pytest.fixture
def restore_policy():
    policy = keras.config.dtype_policy()
    yield
    keras.config.set_dtype_policy(policy)


def test_outputs_and_output_layer():
    backbone = alexnet_backbone(**SMALL)
    model = image_classifier(backbone, num_classes=7)
    assert model.name == "classifier"
    assert model.output.shape == (None, 7)
    output_layer = model.get_layer("classifier_predictions")
    assert isinstance(output_layer, keras.layers.Dense)
    assert tuple(output_layer.kernel.shape) == (1024, 7)
    assert model.get_layer("alexnet") is backbone
    assert model.count_params() == 1_874_528 + 1024 * 7 + 7
    probabilities = model.predict(_images(3), verbose=0)
    assert probabilities.shape == (3, 7)
    np.testing.assert_allclose(probabilities.sum(axis=-1), 1.0, rtol=1e-5)


def test_logits_are_the_softmax_inputs():
    backbone = alexnet_backbone(**SMALL)
    probabilities_model = image_classifier(backbone, 5)
    logits_model = image_classifier(backbone, 5, activation=None, name="raw")
    logits_model.get_layer("raw_predictions").set_weights(
        probabilities_model.get_layer("classifier_predictions").get_weights()
    )
    images = _images(4, seed=1)
    logits = logits_model.predict(images, verbose=0)
    probabilities = probabilities_model.predict(images, verbose=0)
    assert not np.allclose(logits.sum(axis=-1), 1.0)
    np.testing.assert_allclose(
        keras.ops.softmax(logits), probabilities, rtol=1e-5, atol=1e-7
    )


def test_keras_round_trip_safe_mode_gives_identical_predictions():
    model = image_classifier(alexnet_backbone(**SMALL), num_classes=4)
    images = _images(3, seed=2)
    expected = model.predict(images, verbose=0)
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "classifier.keras")
        model.save(path)
        restored = keras.saving.load_model(path, safe_mode=True)
    np.testing.assert_array_equal(restored.predict(images, verbose=0), expected)
    assert [layer.name for layer in restored.get_layer("alexnet").layers] == [
        layer.name for layer in model.get_layer("alexnet").layers
    ]
    assert restored.get_layer("classifier_predictions").units == 4


def test_mixed_bfloat16_softmax_is_float32(restore_policy):
    keras.config.set_dtype_policy("mixed_bfloat16")
    backbone = alexnet_backbone(**SMALL)
    model = image_classifier(backbone, num_classes=6)
    assert backbone.get_layer("alexnet_conv2").compute_dtype == "bfloat16"
    output_layer = model.get_layer("classifier_predictions")
    assert output_layer.compute_dtype == "float32"
    outputs = model(_images(2, seed=3), training=False)
    assert keras.backend.standardize_dtype(outputs.dtype) == "float32"
    outputs = keras.ops.convert_to_numpy(outputs)
    assert np.all(np.isfinite(outputs))
    np.testing.assert_allclose(outputs.sum(axis=-1), 1.0, rtol=1e-6)


def test_fit_from_uint8_dataset_updates_weights():
    keras.utils.set_random_seed(0)
    model = image_classifier(alexnet_backbone(**SMALL), num_classes=3)
    model.compile(
        optimizer=keras.optimizers.SGD(0.01),
        loss="sparse_categorical_crossentropy",
    )
    labels = np.arange(16) % 3
    dataset = tf.data.Dataset.from_tensor_slices(
        (_images(16, seed=4), labels)
    ).batch(8)
    conv1 = model.get_layer("alexnet").get_layer("alexnet_conv1")
    before = conv1.kernel.numpy().copy()
    history = model.fit(dataset, epochs=1, shuffle=False, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    assert not np.allclose(conv1.kernel.numpy(), before)


@pytest.mark.parametrize(
    "kwargs, argument",
    [
        ({"num_classes": 0}, "num_classes"),
        ({"num_classes": -3}, "num_classes"),
        ({"num_classes": 2.5}, "num_classes"),
        ({"num_classes": True}, "num_classes"),
        ({"name": ""}, "name"),
    ],
)
def test_invalid_arguments(kwargs, argument):
    backbone = alexnet_backbone(**SMALL)
    arguments = {"num_classes": 3, **kwargs}
    with pytest.raises(ValueError) as error:
        image_classifier(backbone, **arguments)
    assert f"`{argument}`" in str(error.value)
    assert f"Received: {argument}=" in str(error.value)


def test_invalid_backbone():
    with pytest.raises(ValueError, match="`backbone` must be a `keras.Model`"):
        image_classifier(keras.layers.Dense(3), num_classes=3)
    inputs = keras.Input((8, 8, 3))
    spatial = keras.Model(inputs, keras.layers.Conv2D(4, 3)(inputs))
    with pytest.raises(ValueError, match="feature vector"):
        image_classifier(spatial, num_classes=3)
