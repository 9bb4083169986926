"""Keras layers of keras_objectness."""

from keras_objectness.layers.background_head import BackgroundHead
from keras_objectness.layers.batched_time_distributed import (
    BatchedTimeDistributed,
)
from keras_objectness.layers.box_bin_decoder import BoxBinDecoder
from keras_objectness.layers.box_bin_softmax import BoxBinSoftmax
from keras_objectness.layers.gaussian_box_targets import GaussianBoxTargets
from keras_objectness.layers.local_response_normalization import (
    LocalResponseNormalization,
)
from keras_objectness.layers.region_crops import RegionCrops
from keras_objectness.layers.region_detections import RegionDetections
from keras_objectness.layers.region_pooling import RegionPooling

__all__ = [
    "BackgroundHead",
    "BatchedTimeDistributed",
    "BoxBinDecoder",
    "BoxBinSoftmax",
    "GaussianBoxTargets",
    "LocalResponseNormalization",
    "RegionCrops",
    "RegionDetections",
    "RegionPooling",
]
