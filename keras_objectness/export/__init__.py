"""Serving artefacts: SavedModels with resizing and NMS inside."""

from keras_objectness.export.export_detector import export_detector

__all__ = [
    "export_detector",
]
