"""Keras layers of keras_objectness."""

from keras_objectness.layers.local_response_normalization import (
    LocalResponseNormalization,
)

__all__ = [
    "LocalResponseNormalization",
]
