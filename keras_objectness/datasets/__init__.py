"""TFDS datasets of keras_objectness.

Importing this package registers the TFDS name `"silhouette_scenes"`.
"""

from keras_objectness.datasets import silhouette_scenes
from keras_objectness.datasets.silhouette_scenes import SilhouetteScenes
from keras_objectness.datasets.silhouette_scenes import SilhouetteScenesConfig
from keras_objectness.datasets.silhouette_scenes import default_class_split
from keras_objectness.datasets.silhouette_scenes import get_class_split

__all__ = [
    "SilhouetteScenes",
    "SilhouetteScenesConfig",
    "default_class_split",
    "get_class_split",
    "silhouette_scenes",
]
