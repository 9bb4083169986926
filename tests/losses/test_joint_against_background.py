"""`JointDetectionLoss(classification_against_background=True)`."""

import numpy as np
import pytest

from keras_objectness.losses import JointDetectionLoss
from keras_objectness.losses import encode_classification_labels
from tests.gradients import gradients


def _probabilities():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(3, 5)).astype("float32")
    return np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)


def test_classification_examples_compete_with_the_background():
    p = _probabilities()
    labels = encode_classification_labels(np.array([2, 0, 3]), num_classes=4)
    against = JointDetectionLoss(
        4, (0, 1), classification_against_background=True, reduction=None
    )
    without = JointDetectionLoss(4, (0, 1), reduction=None)
    # Plain cross entropy over all K + 1 outputs ...
    np.testing.assert_allclose(
        against(labels, p), -np.log(p[np.arange(3), [2, 0, 3]]), rtol=1e-5
    )
    # ... against the one renormalised over the K classes.
    expected = -np.log(p[np.arange(3), [2, 0, 3]] / (1.0 - p[:, 4]))
    np.testing.assert_allclose(without(labels, p), expected, rtol=1e-5)


def test_background_gets_a_gradient_only_when_asked():
    logits = np.zeros((1, 5), "float32")
    labels = encode_classification_labels(np.array([2]), num_classes=4)
    for flag, moves in ((False, False), (True, True)):
        loss = JointDetectionLoss(
            4, (0, 1), from_logits=True, classification_against_background=flag
        )
        _, (gradient,) = gradients(lambda z: loss(labels, z), [logits])
        assert (abs(gradient[0, 4]) > 1e-6) == moves


def test_flag_is_validated_and_serialised():
    with pytest.raises(ValueError, match="classification_against_background"):
        JointDetectionLoss(4, (0, 1), classification_against_background="yes")
    loss = JointDetectionLoss(4, (0, 1), classification_against_background=True)
    config = loss.get_config()
    assert config["classification_against_background"] is True
    assert JointDetectionLoss.from_config(config).get_config() == config
