import keras
import numpy as np

from keras_objectness.layers import BatchedTimeDistributed
from tests.graph_ops import op_counts
from tests.test_case import TestCase


def _network():
    keras.utils.set_random_seed(0)
    images = keras.Input((6, 6, 3))
    x = keras.layers.Conv2D(4, 3, activation="relu", name="conv")(images)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dropout(0.5)(x)
    return keras.Model(images, keras.layers.Dense(5)(x), name="net")


def _steps(count=7):
    rng = np.random.default_rng(0)
    return rng.normal(size=(2, count, 6, 6, 3)).astype("float32")


class TestBatchedTimeDistributed(TestCase):
    def test_matches_time_distributed(self):
        network = _network()
        steps = _steps()
        expected = keras.layers.TimeDistributed(network)(steps)
        actual = BatchedTimeDistributed(network)(steps)
        assert tuple(actual.shape) == (2, 7, 5)
        self.assertAllClose(actual, expected, atol=1e-5, rtol=1e-5)

    def test_graph_holds_the_layer_once(self):
        # TimeDistributed traces one copy of the network per step; the
        # batched wrapper one copy whatever the number of steps.
        layer = BatchedTimeDistributed(_network())
        counts = op_counts(layer.call, [(None, 50, 6, 6, 3)])
        assert counts["conv"] == 1
        assert counts["matmul"] == 1

    def test_symbolic_shape_and_training_argument(self):
        layer = BatchedTimeDistributed(_network())
        outputs = layer(keras.Input((None, 6, 6, 3)))
        assert tuple(outputs.shape) == (None, None, 5)
        steps = _steps(3)
        # Dropout is passed `training`: inference is deterministic.
        self.assertAllClose(layer(steps), layer(steps, training=False))
        assert not np.allclose(
            np.asarray(layer(steps, training=True)), np.asarray(layer(steps))
        )

    def test_serialization(self):
        self.run_serialization_test(
            BatchedTimeDistributed(_network()), [_steps(3)], atol=1e-5
        )
