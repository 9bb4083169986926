"""models."""

from keras_objectness.models.alexnet_backbone import ALEXNET_PRESETS
from keras_objectness.models.alexnet_backbone import alexnet_backbone
from keras_objectness.models.image_classifier import image_classifier

__all__ = [
    "ALEXNET_PRESETS",
    "alexnet_backbone",
    "image_classifier",
]
