"""Keras layers of keras_objectness."""

__all__ = []
