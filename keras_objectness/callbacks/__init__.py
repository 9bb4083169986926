"""callbacks."""

from keras_objectness.callbacks.detector_adapter import DetectorAdapter
from keras_objectness.callbacks.objectness_summaries import evaluate_objectness
from keras_objectness.callbacks.objectness_summaries import (
    write_objectness_summaries,
)
from keras_objectness.callbacks.objectness_tensorboard import (
    ObjectnessTensorBoard,
)

__all__ = [
    "DetectorAdapter",
    "ObjectnessTensorBoard",
    "evaluate_objectness",
    "write_objectness_summaries",
]
