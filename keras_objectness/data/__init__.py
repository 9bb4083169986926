"""Input pipelines: TFDS detection examples to batches for `fit`."""

from keras_objectness.data import pipelines
from keras_objectness.data.augmentation import random_flip_left_right
from keras_objectness.data.augmentation import random_square_crops
from keras_objectness.data.coco_json import CocoJsonSource
from keras_objectness.data.coco_json import coco_json_dataset
from keras_objectness.data.examples import annotation_summary
from keras_objectness.data.examples import detection_examples
from keras_objectness.data.examples import standardize_example
from keras_objectness.data.joint import fixed_share_batches
from keras_objectness.data.joint import joint_dataset
from keras_objectness.data.object_crops import object_crops
from keras_objectness.data.pipelines import classification_dataset
from keras_objectness.data.pipelines import keras_cv_dataset
from keras_objectness.data.pipelines import objectness_dataset
from keras_objectness.data.pipelines import region_dataset
from keras_objectness.data.proposals import selective_search_proposals
from keras_objectness.data.regions import crop_regions
from keras_objectness.data.regions import sample_regions
from keras_objectness.data.scene_filters import scenes_of_classes
from keras_objectness.data.scene_filters import scenes_with_classes
from keras_objectness.data.synthetic import single_object_images

__all__ = [
    "CocoJsonSource",
    "annotation_summary",
    "classification_dataset",
    "coco_json_dataset",
    "crop_regions",
    "detection_examples",
    "fixed_share_batches",
    "joint_dataset",
    "keras_cv_dataset",
    "object_crops",
    "objectness_dataset",
    "pipelines",
    "random_flip_left_right",
    "random_square_crops",
    "region_dataset",
    "sample_regions",
    "scenes_of_classes",
    "scenes_with_classes",
    "selective_search_proposals",
    "single_object_images",
    "standardize_example",
]
