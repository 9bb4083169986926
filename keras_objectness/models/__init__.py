"""models."""

from keras_objectness.models.alexnet_backbone import ALEXNET_PRESETS
from keras_objectness.models.alexnet_backbone import alexnet_backbone

__all__ = [
    "ALEXNET_PRESETS",
    "alexnet_backbone",
]
