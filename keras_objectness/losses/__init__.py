"""Losses for training detectors (joint detection + classification)."""

from keras_objectness.losses.joint_detection_loss import JointDetectionLoss
from keras_objectness.losses.joint_detection_loss import (
    encode_classification_labels,
)

__all__ = [
    "JointDetectionLoss",
    "encode_classification_labels",
]
