import keras
import numpy as np
import pytest

from keras_objectness import BoxSpace
from keras_objectness.layers import BoxBinSoftmax
from tests.test_case import TestCase

SPACE = BoxSpace(grid_shape=(4, 4), scales=(0.3, 0.6), aspect_ratios=(1.0,))


class TestBoxBinSoftmax(TestCase):
    def test_vector_input_gives_distribution(self):
        x = np.random.default_rng(0).normal(size=(3, 10)).astype("float32")
        layer = BoxBinSoftmax(SPACE)
        y = keras.ops.convert_to_numpy(layer(x))
        assert y.shape == (3, SPACE.num_bins)
        np.testing.assert_allclose(y.sum(-1), 1.0, atol=1e-6)
        assert layer.count_params() == 10 * SPACE.num_bins + SPACE.num_bins

    def test_feature_map_is_flattened(self):
        x = np.random.default_rng(0).normal(size=(2, 3, 3, 4)).astype("float32")
        layer = BoxBinSoftmax(SPACE)
        y = layer(x)
        assert tuple(y.shape) == (2, SPACE.num_bins)
        assert tuple(layer.kernel.shape) == (36, SPACE.num_bins)
        flat = BoxBinSoftmax(SPACE)
        flat.build((None, 36))
        flat.set_weights(layer.get_weights())
        self.assertAllClose(flat(x.reshape(2, -1)), y)

    def test_logits_match_softmax(self):
        x = np.random.default_rng(1).normal(size=(2, 5)).astype("float32")
        probabilities = BoxBinSoftmax(SPACE, kernel_initializer="ones")(x)
        logits = BoxBinSoftmax(
            SPACE, activation=None, kernel_initializer="ones"
        )(x)
        self.assertAllClose(keras.ops.softmax(logits), probabilities)

    @pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
    def test_softmax_in_float32_under_mixed_precision(self, policy):
        space = BoxSpace()  # 8960 bins: float16 alone would underflow
        x = 30 * np.random.default_rng(2).normal(size=(2, 64)).astype("float32")
        previous = keras.config.dtype_policy()
        keras.config.set_dtype_policy(policy)
        try:
            layer = BoxBinSoftmax(space)
            y = layer(x)
        finally:
            keras.config.set_dtype_policy(previous)
        assert keras.backend.standardize_dtype(y.dtype) == "float32"
        y = keras.ops.convert_to_numpy(y)
        assert np.all(np.isfinite(y))
        np.testing.assert_allclose(y.sum(-1), 1.0, atol=1e-5)

    def test_serialization(self):
        x = np.random.default_rng(3).normal(size=(2, 2, 2, 3)).astype("float32")
        layer = BoxBinSoftmax(
            SPACE,
            activation=None,
            kernel_initializer=keras.initializers.RandomNormal(seed=1),
            bias_initializer="ones",
            kernel_regularizer="l2",
            bias_regularizer=keras.regularizers.L1(0.1),
        )
        restored = self.run_serialization_test(layer, [x])
        restored_layer = restored.layers[-1]
        assert isinstance(
            restored_layer.bias_regularizer, keras.regularizers.L1
        )
        assert restored_layer.box_space == SPACE

    def test_bad_arguments(self):
        with pytest.raises(ValueError, match="`activation`"):
            BoxBinSoftmax(SPACE, activation="sigmoid")
        with pytest.raises(TypeError, match="`box_space`"):
            BoxBinSoftmax(16)
        with pytest.raises(ValueError, match="input_shape"):
            BoxBinSoftmax(SPACE)(np.zeros((3,), "float32"))
