"""data."""

from keras_objectness.data.synthetic import single_object_images

__all__ = [
    "single_object_images",
]
