import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_objectness.layers import LocalResponseNormalization
from tests.gradients import gradients
from tests.test_case import TestCase


def _numpy_lrn(x, depth_radius, bias, alpha, beta):
    """The paper's formula, channels last, window clipped at the ends."""
    channels = x.shape[-1]
    out = np.empty_like(x, dtype="float64")
    for c in range(channels):
        low = max(0, c - depth_radius)
        high = min(channels, c + depth_radius + 1)
        energy = np.sum(x[..., low:high].astype("float64") ** 2, axis=-1)
        out[..., c] = x[..., c] / (bias + alpha * energy) ** beta
    return out


@pytest.fixture
def restore_policy():
    policy = keras.config.dtype_policy()
    yield
    keras.config.set_dtype_policy(policy)


class TestLocalResponseNormalization(TestCase):
    @pytest.mark.parametrize(
        "depth_radius, bias, alpha, beta",
        [
            (2, 2.0, 1e-4, 0.75),  # Krizhevsky et al.
            (5, 1.0, 1.0, 0.5),  # tf.nn defaults
            (0, 1.0, 0.3, 0.6),
            (3, 0.5, 0.05, 1.3),
            (40, 1.5, 0.01, 1.0),  # window wider than the channels
        ],
    )
    def test_matches_tf_nn_local_response_normalization(
        self, depth_radius, bias, alpha, beta
    ):
        rng = np.random.default_rng(depth_radius)
        x = (rng.normal(size=(3, 7, 5, 19)) * 4).astype("float32")
        layer = LocalResponseNormalization(depth_radius, bias, alpha, beta)
        expected = tf.nn.local_response_normalization(
            x, depth_radius=depth_radius, bias=bias, alpha=alpha, beta=beta
        )
        self.assertAllClose(layer(x), expected, atol=1e-6, rtol=1e-5)
        reference = _numpy_lrn(x, depth_radius, bias, alpha, beta)
        self.assertAllClose(layer(x), reference, atol=1e-6, rtol=1e-5)

    def test_gradient_matches_tf_nn(self):
        rng = np.random.default_rng(1)
        x = rng.normal(size=(2, 4, 4, 11)).astype("float32")
        layer = LocalResponseNormalization(2, 1.0, 0.2, 0.75)
        upstream = rng.normal(size=(2, 4, 4, 11)).astype("float32")
        _, (ours,) = gradients(
            lambda v: keras.ops.sum(layer(v) * upstream), [x]
        )
        # The reference is TensorFlow's op, whatever the Keras backend.
        reference = tf.constant(x)
        with tf.GradientTape() as tape:
            tape.watch(reference)
            theirs = tf.reduce_sum(
                tf.nn.local_response_normalization(reference, 2, 1.0, 0.2, 0.75)
                * upstream
            )
        self.assertAllClose(ours, tape.gradient(theirs, reference), atol=1e-5)

    def test_from_caffe_divides_alpha_by_local_size(self):
        layer = LocalResponseNormalization.from_caffe(
            local_size=5, alpha=1e-3, beta=0.75, k=2.0, name="caffe_lrn"
        )
        assert layer.depth_radius == 2
        assert layer.bias == 2.0
        assert layer.alpha == pytest.approx(2e-4)
        assert layer.beta == 0.75
        assert layer.name == "caffe_lrn"
        x = np.random.default_rng(2).normal(size=(2, 3, 3, 8)) * 30
        caffe = _numpy_lrn(x, 2, 2.0, 1e-3 / 5, 0.75)
        self.assertAllClose(layer(x.astype("float32")), caffe, rtol=1e-5)
        with pytest.raises(ValueError, match="local_size=4"):
            LocalResponseNormalization.from_caffe(4, 1e-4, 0.75)

    def test_channels_first_equals_transposed_channels_last(self):
        x = np.random.default_rng(3).normal(size=(2, 6, 5, 4)) * 3
        x = x.astype("float32")
        last = LocalResponseNormalization(2, 1.0, 0.5, 0.75)(x)
        first = LocalResponseNormalization(
            2, 1.0, 0.5, 0.75, data_format="channels_first"
        )(np.transpose(x, (0, 3, 1, 2)))
        self.assertAllClose(np.transpose(first, (0, 2, 3, 1)), last)

    def test_output_shape_and_symbolic_call(self):
        layer = LocalResponseNormalization()
        assert layer.compute_output_shape((None, 13, 13, 96)) == (
            None,
            13,
            13,
            96,
        )
        symbolic = layer(keras.Input((None, 7, 96)))
        assert tuple(symbolic.shape) == (None, None, 7, 96)
        with pytest.raises(ValueError, match="channel axis"):
            LocalResponseNormalization()(keras.Input((5, 5, None)))

    @pytest.mark.parametrize(
        "policy, rtol", [("mixed_float16", 2e-3), ("mixed_bfloat16", 1e-2)]
    )
    def test_mixed_precision_is_finite_and_matches_float32(
        self, policy, rtol, restore_policy
    ):
        # Activations up to ~600: their squares overflow float16, so a
        # float16 computation would return zeros instead of these values.
        rng = np.random.default_rng(4)
        x = (rng.uniform(0, 600, size=(2, 5, 5, 32))).astype("float32")
        keras.config.set_dtype_policy(policy)
        layer = LocalResponseNormalization()
        assert layer.compute_dtype == policy.split("_")[1]
        outputs = layer(x)
        assert keras.backend.standardize_dtype(outputs.dtype) == (
            layer.compute_dtype
        )
        outputs = keras.ops.convert_to_numpy(outputs).astype("float32")
        assert np.all(np.isfinite(outputs))
        # Reference: float32 on the same (rounded) inputs the layer saw.
        rounded = keras.ops.convert_to_numpy(
            keras.ops.cast(keras.ops.cast(x, layer.compute_dtype), "float32")
        )
        reference = _numpy_lrn(rounded, 2, 2.0, 1e-4, 0.75)
        np.testing.assert_allclose(outputs, reference, rtol=rtol, atol=1e-3)
        # Not vacuous: some squares exceed float16's largest value.
        assert np.square(x).max() > np.finfo("float16").max

    def test_serialization(self):
        layer = LocalResponseNormalization(
            depth_radius=3,
            bias=1.5,
            alpha=0.01,
            beta=0.6,
            data_format="channels_last",
            name="lrn",
        )
        x = np.random.default_rng(5).normal(size=(2, 4, 4, 10)) * 5
        self.run_serialization_test(layer, [x.astype("float32")])
        config = layer.get_config()
        assert config["depth_radius"] == 3
        assert config["bias"] == 1.5
        assert config["alpha"] == 0.01
        assert config["beta"] == 0.6
        assert config["data_format"] == "channels_last"

    @pytest.mark.parametrize(
        "kwargs, message",
        [
            (
                {"depth_radius": -1},
                "`depth_radius` must be a non-negative integer. "
                "Received: depth_radius=-1",
            ),
            ({"depth_radius": 1.5}, "Received: depth_radius=1.5"),
            ({"depth_radius": True}, "Received: depth_radius=True"),
            ({"bias": 0.0}, "Received: bias=0.0"),
            ({"bias": float("nan")}, "Received: bias=nan"),
            ({"alpha": -1e-4}, "Received: alpha=-0.0001"),
            ({"beta": -0.5}, "Received: beta=-0.5"),
            ({"beta": "0.75"}, "Received: beta=0.75"),
            ({"data_format": "NHWC"}, "Received: data_format=NHWC"),
        ],
    )
    def test_invalid_arguments(self, kwargs, message):
        with pytest.raises(ValueError) as error:
            LocalResponseNormalization(**kwargs)
        assert message in str(error.value)
