"""Tiny models and data for the LSDA (BackgroundHead / adaptation) tests."""

import keras
import numpy as np

from keras_objectness.models import image_classifier

NUM_CLASSES = 6
DETECTION_CLASSES = (0, 1, 3)
HELDOUT_CLASSES = (2, 4, 5)
FEATURES = 8


def tiny_classifier(
    num_classes=NUM_CLASSES, features=FEATURES, activation="softmax"
):
    """A 2-layer backbone on 8x8x3 images under a `Dense` output layer."""
    images = keras.Input((8, 8, 3), name="tiny_images")
    x = keras.layers.Conv2D(4, 3, activation="relu", name="tiny_conv")(images)
    x = keras.layers.Flatten(name="tiny_flatten")(x)
    x = keras.layers.Dense(features, activation="relu", name="tiny_fc")(x)
    backbone = keras.Model(images, x, name="tiny_backbone")
    return image_classifier(backbone, num_classes, activation=activation)


def region_data(count=32, seed=0, num_classes=NUM_CLASSES):
    """Images with labels of the detection classes B and background only."""
    rng = np.random.default_rng(seed)
    images = rng.normal(size=(count, 8, 8, 3)).astype("float32")
    labels = np.array(DETECTION_CLASSES + (num_classes,), dtype="int32")
    return images, labels[np.arange(count) % labels.size]


def head_weights(head):
    """The head's five weights as numpy arrays, by name."""
    return {
        "kernel": keras.ops.convert_to_numpy(head.kernel),
        "bias": keras.ops.convert_to_numpy(head.bias),
        "classification_kernel": keras.ops.convert_to_numpy(
            head.classification_kernel
        ),
        "classification_bias": keras.ops.convert_to_numpy(
            head.classification_bias
        ),
        "snapshot_taken": keras.ops.convert_to_numpy(head.snapshot_taken),
    }
