"""callbacks."""

from keras_objectness.callbacks.objectness_summaries import evaluate_objectness
from keras_objectness.callbacks.objectness_summaries import (
    write_objectness_summaries,
)

__all__ = [
    "evaluate_objectness",
    "write_objectness_summaries",
]
