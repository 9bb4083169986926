"""`silhouette_scenes`: a small offline detection benchmark (see CARD.md).

Importing this package registers the TFDS builder `"silhouette_scenes"`.
"""

from keras_objectness.datasets.silhouette_scenes.builder import SilhouetteScenes
from keras_objectness.datasets.silhouette_scenes.builder import (
    SilhouetteScenesConfig,
)
from keras_objectness.datasets.silhouette_scenes.scenes import Scene
from keras_objectness.datasets.silhouette_scenes.scenes import compose_scene
from keras_objectness.datasets.silhouette_scenes.scenes import crop_background
from keras_objectness.datasets.silhouette_scenes.scenes import mask_to_box
from keras_objectness.datasets.silhouette_scenes.sources import CLASS_NAMES
from keras_objectness.datasets.silhouette_scenes.sources import NUM_CLASSES
from keras_objectness.datasets.silhouette_scenes.sources import load_silhouettes
from keras_objectness.datasets.silhouette_scenes.splits import SPLIT_NAMES
from keras_objectness.datasets.silhouette_scenes.splits import SPLITS
from keras_objectness.datasets.silhouette_scenes.splits import SceneGenerator
from keras_objectness.datasets.silhouette_scenes.splits import class_split_names
from keras_objectness.datasets.silhouette_scenes.splits import (
    default_class_split,
)
from keras_objectness.datasets.silhouette_scenes.splits import get_class_split

__all__ = [
    "CLASS_NAMES",
    "NUM_CLASSES",
    "SPLITS",
    "SPLIT_NAMES",
    "Scene",
    "SceneGenerator",
    "SilhouetteScenes",
    "SilhouetteScenesConfig",
    "class_split_names",
    "compose_scene",
    "crop_background",
    "default_class_split",
    "get_class_split",
    "load_silhouettes",
    "mask_to_box",
]
