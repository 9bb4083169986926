import os
import tempfile

import keras
import numpy as np
import pytest

import keras_objectness
from keras_objectness.class_split import ClassSplit
from keras_objectness.layers import BackgroundHead
from keras_objectness.models import detection_network
from tests.lsda_helpers import DETECTION_CLASSES
from tests.lsda_helpers import FEATURES
from tests.lsda_helpers import NUM_CLASSES
from tests.lsda_helpers import region_data
from tests.lsda_helpers import tiny_classifier


@pytest.fixture
def restore_policy():
    policy = keras.config.dtype_policy()
    yield
    keras.config.set_dtype_policy(policy)


def test_head_starts_from_the_classifier():
    classifier = tiny_classifier(activation=None)
    dense = classifier.get_layer("classifier_predictions")
    dense.bias.assign(np.linspace(-1, 1, NUM_CLASSES).astype("float32"))
    detector = detection_network(
        classifier, DETECTION_CLASSES, output_mode="logits"
    )
    head = detector.get_layer("detector_background_head")
    assert isinstance(head, BackgroundHead)
    assert head.num_classes == NUM_CLASSES
    assert head.detection_classes == DETECTION_CLASSES
    assert detector.name == "detector"
    assert detector.output.shape == (None, NUM_CLASSES + 1)
    # The backbone is the classifier's own layer object.
    assert detector.get_layer("tiny_backbone") is classifier.get_layer(
        "tiny_backbone"
    )
    # New weights: the background column and bias, the snapshot and flag.
    assert detector.count_params() == (
        classifier.count_params()
        + FEATURES
        + 1
        + FEATURES * NUM_CLASSES
        + NUM_CLASSES
        + 1
    )
    kernel = head.kernel.numpy()
    np.testing.assert_array_equal(kernel[:, :NUM_CLASSES], dense.kernel.numpy())
    np.testing.assert_array_equal(kernel[:, NUM_CLASSES], 0.0)
    np.testing.assert_array_equal(head.bias.numpy()[:-1], dense.bias.numpy())
    assert not head.has_snapshot
    # Before fine-tuning the class logits are the classifier's logits.
    images, _ = region_data(count=4)
    logits = detector.predict(images, verbose=0)
    np.testing.assert_allclose(
        logits[:, :NUM_CLASSES], classifier.predict(images, verbose=0), 1e-6
    )
    np.testing.assert_array_equal(logits[:, NUM_CLASSES], 0.0)


def test_shares_backbone_weights_with_the_classifier():
    classifier = tiny_classifier()
    detector = detection_network(classifier, ClassSplit(NUM_CLASSES, (0, 4)))
    conv = classifier.get_layer("tiny_backbone").get_layer("tiny_conv")
    conv.kernel.assign(conv.kernel.numpy() + 1.0)
    shared = detector.get_layer("tiny_backbone").get_layer("tiny_conv")
    np.testing.assert_array_equal(shared.kernel.numpy(), conv.kernel.numpy())


def test_scores_output_and_custom_output_layer():
    images = keras.Input((5,))
    hidden = keras.layers.Dense(4, name="fc7")(images)
    classifier = keras.Model(
        images, keras.layers.Dense(3, name="fc8")(hidden), name="net"
    )
    detector = detection_network(
        classifier,
        (1,),
        output_mode="scores",
        output_layer_name="fc8",
        background_initializer="ones",
        name="det",
    )
    head = detector.get_layer("det_background_head")
    np.testing.assert_array_equal(head.kernel.numpy()[:, 3], 1.0)
    x = np.random.default_rng(0).normal(size=(2, 5)).astype("float32")
    features = x @ detector.get_layer("fc7").kernel.numpy()
    features += detector.get_layer("fc7").bias.numpy()
    logits = features @ head.kernel.numpy() + head.bias.numpy()
    np.testing.assert_allclose(
        detector.predict(x, verbose=0),
        logits[:, :3] - logits[:, 3:],
        atol=1e-5,
    )


def test_frozen_detection_classes_pass_through():
    classifier = tiny_classifier()
    detector = detection_network(
        classifier, DETECTION_CLASSES, train_detection_classes=False
    )
    head = detector.get_layer("detector_background_head")
    assert head.train_detection_classes is False
    before = head.kernel.numpy().copy()
    detector.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    images, labels = region_data(count=16)
    detector.fit(images, labels, batch_size=8, epochs=1, verbose=0)
    kernel = head.kernel.numpy()
    np.testing.assert_array_equal(
        kernel[:, :NUM_CLASSES], before[:, :NUM_CLASSES]
    )
    assert not np.allclose(kernel[:, NUM_CLASSES], before[:, NUM_CLASSES])
    assert (
        detection_network(tiny_classifier(), DETECTION_CLASSES)
        .get_layer("detector_background_head")
        .train_detection_classes
    )


def test_head_follows_the_classifier_dtype_policy(restore_policy):
    keras.config.set_dtype_policy("mixed_bfloat16")
    detector = detection_network(tiny_classifier(), DETECTION_CLASSES)
    head = detector.get_layer("detector_background_head")
    assert head.compute_dtype == "float32"
    assert (
        detector.get_layer("tiny_backbone").get_layer("tiny_conv").compute_dtype
        == "bfloat16"
    )


def test_adapted_detector_saves_and_loads_identically():
    classifier = tiny_classifier()
    detector = detection_network(classifier, DETECTION_CLASSES)
    head = detector.get_layer("detector_background_head")
    head.take_snapshot()
    detector.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    images, labels = region_data(count=16)
    detector.fit(images, labels, batch_size=8, epochs=1, verbose=0)
    keras_objectness.adapt_classifier(detector, knn=2)
    expected = detector.predict(images, verbose=0)
    weights = [w.numpy() for w in head.weights]
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "detector.keras")
        detector.save(path)
        restored = keras.saving.load_model(path, safe_mode=True)
    np.testing.assert_array_equal(restored.predict(images, verbose=0), expected)
    restored_head = restored.get_layer("detector_background_head")
    assert restored_head.has_snapshot
    for actual, wanted in zip(restored_head.weights, weights):
        np.testing.assert_array_equal(actual.numpy(), wanted)
    # The restored model adapts to the same weights (from its snapshot).
    keras_objectness.adapt_classifier(restored, knn=2)
    np.testing.assert_array_equal(restored_head.kernel.numpy(), weights[0])


def test_bad_arguments():
    classifier = tiny_classifier()
    with pytest.raises(ValueError, match="`classifier`"):
        detection_network("classifier", DETECTION_CLASSES)
    with pytest.raises(ValueError, match="`detection_classes`"):
        detection_network(classifier, (0, NUM_CLASSES))
    with pytest.raises(ValueError, match="`output_mode`"):
        detection_network(classifier, DETECTION_CLASSES, output_mode="probs")
    with pytest.raises(ValueError, match="`output_layer_name` must name a"):
        detection_network(classifier, (0,), output_layer_name="missing")
    with pytest.raises(ValueError, match="`keras.layers.Dense`"):
        detection_network(classifier, (0,), output_layer_name="tiny_backbone")
    with pytest.raises(ValueError, match="`name`"):
        detection_network(classifier, (0,), name="")
    images = keras.Input((5,))
    unnamed = keras.Model(images, keras.layers.Dense(3, name="fc8")(images))
    with pytest.raises(ValueError, match="_predictions"):
        detection_network(unnamed, (0,))
    # A Dense called twice in the classifier's graph is ambiguous.
    shared = keras.layers.Dense(5, name="shared_predictions")
    twice = keras.Model(images, shared(shared(images)))
    with pytest.raises(ValueError, match="called exactly once"):
        detection_network(twice, (0,))


def test_uses_the_classifier_node_of_a_reused_output_layer():
    fc8 = keras.layers.Dense(3, name="fc8_predictions")
    elsewhere = keras.Input((4,), name="elsewhere")
    keras.Model(elsewhere, fc8(elsewhere))  # fc8's first node: another graph
    images = keras.Input((5,))
    classifier = keras.Model(
        images, fc8(keras.layers.Dense(4, name="fc7")(images))
    )
    detector = detection_network(classifier, (0, 2))
    assert detector.inputs[0] is classifier.inputs[0]
    x = np.zeros((2, 5), "float32")
    assert detector.predict(x, verbose=0).shape == (2, 4)
