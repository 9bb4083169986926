"""Model builders: AlexNet-style backbone, heads and detectors."""

from keras_objectness.models.alexnet_backbone import ALEXNET_PRESETS
from keras_objectness.models.alexnet_backbone import alexnet_backbone
from keras_objectness.models.detection_network import detection_network
from keras_objectness.models.image_classifier import image_classifier
from keras_objectness.models.objectness_detector import objectness_detector
from keras_objectness.models.objectness_detector import (
    objectness_inference_model,
)
from keras_objectness.models.region_detector import region_detector
from keras_objectness.models.shared_feature_detector import (
    shared_feature_detector,
)
from keras_objectness.models.truncated_svd import truncated_svd_dense

__all__ = [
    "ALEXNET_PRESETS",
    "alexnet_backbone",
    "detection_network",
    "image_classifier",
    "objectness_detector",
    "objectness_inference_model",
    "region_detector",
    "shared_feature_detector",
    "truncated_svd_dense",
]
