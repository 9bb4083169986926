"""keras_objectness: detectors for classes that have no box labels."""

# Before TensorFlow loads: quiets its start-up logs under the command line.
from keras_objectness import _startup  # noqa: F401  isort: skip
from keras_objectness import callbacks
from keras_objectness import data
from keras_objectness import evaluation
from keras_objectness import export
from keras_objectness import layers
from keras_objectness import losses
from keras_objectness import models
from keras_objectness import training
from keras_objectness import workflows
from keras_objectness.adaptation import adapt_classifier
from keras_objectness.box_space import BoxSpace
from keras_objectness.class_split import ClassSplit
from keras_objectness.version import __version__
from keras_objectness.workflows.vocabulary import add_classes

__all__ = [
    "BoxSpace",
    "ClassSplit",
    "__version__",
    "adapt_classifier",
    "add_classes",
    "callbacks",
    "data",
    "evaluation",
    "export",
    "layers",
    "losses",
    "models",
    "training",
    "workflows",
]
