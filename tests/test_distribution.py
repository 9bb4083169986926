"""`fit` under MirroredStrategy matches a single device."""

import keras
import numpy as np
import tensorflow as tf

from keras_objectness import BoxSpace
from keras_objectness.data import objectness_dataset
from keras_objectness.models import ALEXNET_PRESETS
from keras_objectness.models import alexnet_backbone
from keras_objectness.models import objectness_detector
from tests.data.voc_fixture import voc_dataset

SPACE = BoxSpace(grid_shape=(4, 4), scales=(0.2, 0.4, 0.8))
# Different reduction orders across replicas: float32 round-off only.
TOLERANCE = 1e-5


def _train(strategy):
    keras.utils.set_random_seed(0)
    with strategy.scope():
        # No dropout: replicas would draw different masks.
        backbone = alexnet_backbone(
            **ALEXNET_PRESETS["alexnet_small_32"], dropout_rate=0.0
        )
        model = objectness_detector(backbone, SPACE)
        model.compile(
            keras.optimizers.SGD(0.05, momentum=0.9),
            keras.losses.CategoricalCrossentropy(),
        )
    # The fixture's three images with objects, twice: global batch 2.
    dataset = objectness_dataset(
        voc_dataset().repeat(2), SPACE, 32, batch_size=2, num_classes=20
    )
    model.fit(dataset, epochs=2, verbose=0)
    return [keras.ops.convert_to_numpy(w) for w in model.weights]


def test_two_replicas_match_one_device():
    # Reduce on one device rather than with collectives: another test in
    # this process trains under its own MirroredStrategy, and TensorFlow's
    # collective instance keys of two strategies collide.
    strategy = tf.distribute.MirroredStrategy(
        ["/cpu:0", "/cpu:1"],
        cross_device_ops=tf.distribute.ReductionToOneDevice(),
    )
    assert strategy.num_replicas_in_sync == 2
    mirrored = _train(strategy)
    single = _train(tf.distribute.OneDeviceStrategy("/cpu:0"))
    initial = _initial_weights()
    moved = 0
    for a, b, start in zip(mirrored, single, initial):
        np.testing.assert_allclose(a, b, atol=TOLERANCE, rtol=TOLERANCE)
        moved += not np.allclose(a, start)
    # Training really happened: most weights moved from their start.
    assert moved > len(initial) // 2


def _initial_weights():
    keras.utils.set_random_seed(0)
    backbone = alexnet_backbone(
        **ALEXNET_PRESETS["alexnet_small_32"], dropout_rate=0.0
    )
    model = objectness_detector(backbone, SPACE)
    return [keras.ops.convert_to_numpy(w) for w in model.weights]
