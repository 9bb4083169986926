import os
import tempfile

import keras
import numpy as np
import pytest

from keras_objectness import BoxSpace
from keras_objectness.models import ALEXNET_PRESETS
from keras_objectness.models import alexnet_backbone
from keras_objectness.models import image_classifier
from keras_objectness.models import objectness_detector
from keras_objectness.models import objectness_inference_model

SPACE = BoxSpace(grid_shape=(4, 4), scales=(0.3, 0.6), aspect_ratios=(1.0,))


def _backbone():
    return alexnet_backbone(**ALEXNET_PRESETS["alexnet_small_32"])


def test_head_parameters_and_output():
    backbone = _backbone()
    detector = objectness_detector(backbone, SPACE)
    features = backbone.outputs[0].shape[-1]
    head = detector.get_layer("objectness_box_bins")
    assert head.count_params() == (features + 1) * SPACE.num_bins
    assert detector.count_params() == (
        backbone.count_params() + head.count_params()
    )
    images = np.random.default_rng(0).integers(0, 256, (2, 32, 32, 3))
    probabilities = keras.ops.convert_to_numpy(detector(images.astype("uint8")))
    np.testing.assert_allclose(probabilities.sum(-1), 1.0, atol=1e-5)


def test_shares_a_pretrained_classifier_backbone():
    backbone = _backbone()
    classifier = image_classifier(backbone, num_classes=5)
    detector = objectness_detector(classifier.get_layer(backbone.name), SPACE)
    shared = detector.get_layer(backbone.name)
    assert shared is classifier.get_layer(backbone.name)


def test_saves_and_loads_with_identical_predictions():
    detector = objectness_detector(_backbone(), SPACE)
    inference = objectness_inference_model(detector, max_detections=3)
    images = np.random.default_rng(1).integers(0, 256, (3, 32, 32, 3))
    images = images.astype("uint8")
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "detector.keras")
        detector.save(path)
        restored = keras.saving.load_model(path, safe_mode=True)
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(detector.predict(images, verbose=0)),
        keras.ops.convert_to_numpy(restored.predict(images, verbose=0)),
    )
    expected = inference.predict(images, verbose=0)
    actual = objectness_inference_model(restored, max_detections=3).predict(
        images, verbose=0
    )
    for key in ("boxes", "confidence", "num_detections"):
        np.testing.assert_array_equal(actual[key], expected[key])
    assert expected["boxes"].shape == (3, 3, 4)


def test_logits_detector_decodes_like_softmax():
    backbone = _backbone()
    logits = objectness_detector(backbone, SPACE, activation=None)
    images = np.random.default_rng(2).integers(0, 256, (2, 32, 32, 3))
    detections = objectness_inference_model(logits).predict(
        images.astype("uint8"), verbose=0
    )
    assert np.all(detections["confidence"][:, 0] > 0)
    assert np.all(detections["confidence"] <= 1)


def test_feature_layer_shares_the_backbone():
    backbone = _backbone()
    detector = objectness_detector(
        backbone, SPACE, feature_layer="alexnet_lrn5"
    )
    conv5 = backbone.get_layer("alexnet_conv5")
    features = detector.get_layer("alexnet_features")
    assert features.get_layer("alexnet_conv5") is conv5
    head = detector.get_layer("objectness_box_bins")
    map_size = int(np.prod(backbone.get_layer("alexnet_lrn5").output.shape[1:]))
    assert head.count_params() == (map_size + 1) * SPACE.num_bins
    # Only the layers up to conv5 belong to the detector.
    assert "alexnet_fc6" not in [layer.name for layer in features.layers]


def test_bad_arguments():
    with pytest.raises(ValueError, match="`backbone`"):
        objectness_detector("alexnet", SPACE)
    with pytest.raises(TypeError, match="`box_space`"):
        objectness_detector(_backbone(), None)
    with pytest.raises(ValueError, match="`feature_layer`"):
        objectness_detector(_backbone(), SPACE, feature_layer="conv9")
    with pytest.raises(ValueError, match="`detector`"):
        objectness_inference_model(image_classifier(_backbone(), 3))
