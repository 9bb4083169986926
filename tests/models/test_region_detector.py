import os
import tempfile

import keras
import numpy as np
import pytest

from keras_objectness import BoxSpace
from keras_objectness import adapt_classifier
from keras_objectness.adaptation import find_background_head
from keras_objectness.models import ALEXNET_PRESETS
from keras_objectness.models import alexnet_backbone
from keras_objectness.models import detection_network
from keras_objectness.models import objectness_detector
from keras_objectness.models import region_detector
from tests.lsda_helpers import DETECTION_CLASSES
from tests.lsda_helpers import NUM_CLASSES
from tests.lsda_helpers import region_data
from tests.lsda_helpers import tiny_classifier


def _adapted_network():
    keras.utils.set_random_seed(0)
    network = detection_network(tiny_classifier(), DETECTION_CLASSES)
    find_background_head(network).take_snapshot()
    network.compile("adam", "sparse_categorical_crossentropy")
    network.fit(*region_data(), epochs=2, verbose=0)
    return adapt_classifier(network, knn=2)


def _proposer():
    space = BoxSpace(grid_shape=(4, 4), scales=(0.3, 0.6))
    return objectness_detector(
        alexnet_backbone(**ALEXNET_PRESETS["alexnet_small_32"]), space
    )


def _images(count=2, size=32):
    rng = np.random.default_rng(3)
    return rng.integers(0, 256, (count, size, size, 3)).astype("uint8")


def test_detects_every_class_and_round_trips():
    detector = region_detector(
        _adapted_network(), proposer=_proposer(), max_proposals=6,
        max_detections=40,
    )  # fmt: skip
    images = _images()
    detections = detector.predict(images, verbose=0)
    count = detections["num_detections"]
    # Six proposals, each scored for all six classes, NMS per class.
    assert np.all(count > 6)
    classes = np.concatenate(
        [c[:n] for c, n in zip(detections["classes"], count)]
    )
    assert set(np.unique(classes)) == set(range(NUM_CLASSES))
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "detector.keras")
        detector.save(path)
        restored = keras.saving.load_model(path, safe_mode=True)
    again = restored.predict(images, verbose=0)
    for key, value in detections.items():
        np.testing.assert_array_equal(again[key], value)


def test_confidence_is_sigmoid_of_lsda_score():
    network = _adapted_network()
    proposals = np.array([[[0.0, 0.0, 1.0, 1.0]] + [[-1.0] * 4] * 3], "float32")
    detector = region_detector(
        network, image_shape=(8, 8, 3), max_proposals=4,
        context_padding=0.0, max_detections=NUM_CLASSES,
    )  # fmt: skip
    images = np.random.default_rng(0).normal(size=(1, 8, 8, 3))
    images = images.astype("float32")
    detections = detector.predict([images, proposals], verbose=0)
    assert detections["num_detections"][0] == NUM_CLASSES
    # A whole-image crop at the network's size is the image itself.
    head = find_background_head(network)
    features = keras.Model(network.inputs, head.input)(images)
    logits = keras.ops.convert_to_numpy(
        keras.ops.matmul(features, head.kernel) + head.bias
    )[0]
    scores = logits[:NUM_CLASSES] - logits[NUM_CLASSES]
    expected = 1 / (1 + np.exp(-scores))
    order = np.argsort(detections["classes"][0])
    np.testing.assert_allclose(
        detections["confidence"][0][order], expected, rtol=1e-4, atol=1e-5
    )


def test_needs_image_shape_without_proposer():
    with pytest.raises(ValueError, match="`image_shape`"):
        region_detector(_adapted_network())


def test_crop_size_comes_from_the_network_input():
    # A Sequential classifier's network: crops take its 8x8 input size.
    classifier = keras.Sequential(
        [
            keras.Input((8, 8, 3)),
            keras.layers.Flatten(),
            keras.layers.Dense(NUM_CLASSES, activation="softmax"),
        ]
    )
    network = detection_network(classifier, DETECTION_CLASSES)
    detector = region_detector(network, image_shape=(16, 16, 3))
    assert detector.get_layer("region_detector_crops").crop_size == 8
    # Unknown or non-square inputs cannot give the crop size.
    for shape in ((None, None, 3), (8, 6, 3)):
        images = keras.Input(shape)
        pooled = keras.layers.GlobalAveragePooling2D()(images)
        classifier = keras.Model(images, keras.layers.Dense(3)(pooled))
        network = detection_network(classifier, (0,))
        with pytest.raises(ValueError, match="`detection_network` must take"):
            region_detector(network, image_shape=(16, 16, 3))
