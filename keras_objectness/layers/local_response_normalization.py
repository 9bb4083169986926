"""Cross-channel local response normalisation (Krizhevsky et al., 2012)."""

import math
import numbers

import keras
import numpy as np
from keras import ops

_LOW_PRECISION_DTYPES = ("float16", "bfloat16")


@keras.saving.register_keras_serializable(package="keras_objectness")
class LocalResponseNormalization(keras.layers.Layer):
    """Normalises each activation by the energy of its neighbouring channels.

    For an activation `a[..., c]` at channel `c` the layer returns

    ```
    a[..., c] / (bias + alpha * sum(a[..., j] ** 2)) ** beta
    ```

    where `j` runs over the channels `c - depth_radius ... c + depth_radius`
    that exist (the window is cut off at the first and last channel). This
    is the "response normalisation" of AlexNet: neighbouring feature maps at
    the same position compete, which the class-generic objectness network
    applies after its first, second and fifth convolutions.

    The arguments follow `tf.nn.local_response_normalization` exactly (same
    names, same meaning) and the symbols of Krizhevsky et al.: `depth_radius`
    is `n / 2` rounded down, `bias` is `k`, and `alpha`, `beta` are the
    paper's. The defaults are the paper's values (`n=5, k=2, alpha=1e-4,
    beta=0.75`), not TensorFlow's (`5, 1.0, 1.0, 0.5`).

    Caffe's `LRN` layer counts differently: its `local_size` is the full
    window width and it divides its `alpha` by `local_size`. Hence
    `local_size = 2 * depth_radius + 1` and
    `alpha = caffe_alpha / local_size`; Caffe's `k` is `bias`.
    `LocalResponseNormalization.from_caffe` does this conversion.

    The window sum is one `keras.ops.matmul` of the squared activations with
    a banded 0/1 matrix over the channels (`C * C` multiply-adds per position,
    independent of `depth_radius`), so the layer runs on every backend and
    is differentiable everywhere.

    Mixed precision: with a `float16` or `bfloat16` compute dtype the layer
    does its arithmetic in `float32` and casts the result back to the compute
    dtype. See the comment in `call` for why.

    Args:
        depth_radius: int. Half-width of the channel window; the window
            holds `2 * depth_radius + 1` channels. `0` normalises each
            channel by itself only. Defaults to `2`.
        bias: float. Positive offset `k` added before the power, which
            keeps the divisor away from zero. Defaults to `2.0`.
        alpha: float. Non-negative scale of the sum of squares (per squared
            activation, not divided by the window width). Defaults to
            `1e-4`.
        beta: float. Non-negative exponent of the divisor. Defaults to
            `0.75`.
        data_format: string. `"channels_last"` or `"channels_first"`: which
            axis holds the channels. `None` uses
            `keras.config.image_data_format()`. Defaults to `None`.
        **kwargs: Base layer keyword arguments, such as `name` and `dtype`.

    Call arguments:
        inputs: A float tensor of rank at least 2 whose channel axis (last
            or second, per `data_format`) has a known size.

    Returns:
        A tensor of the same shape as `inputs`, in the layer's compute dtype.

    Example:

    ```python
    import numpy as np
    from keras_objectness.layers import LocalResponseNormalization

    layer = LocalResponseNormalization(depth_radius=2)
    features = np.random.rand(2, 13, 13, 96).astype("float32")
    normalised = layer(features)  # shape (2, 13, 13, 96)
    ```

    References:
        - [Krizhevsky et al., 2012. ImageNet Classification with Deep
          Convolutional Neural Networks](
          https://papers.nips.cc/paper/4824), section 3.3.
        - [`tf.nn.local_response_normalization`](
          https://www.tensorflow.org/api_docs/python/tf/nn/local_response_normalization)
    """

    def __init__(
        self,
        depth_radius=2,
        bias=2.0,
        alpha=1e-4,
        beta=0.75,
        data_format=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if (
            isinstance(depth_radius, bool)
            or not isinstance(depth_radius, numbers.Integral)
            or depth_radius < 0
        ):
            raise ValueError(
                "`depth_radius` must be a non-negative integer. "
                f"Received: depth_radius={depth_radius}"
            )
        if not _is_real(bias) or bias <= 0:
            raise ValueError(
                "`bias` must be a positive finite number. "
                f"Received: bias={bias}"
            )
        if not _is_real(alpha) or alpha < 0:
            raise ValueError(
                "`alpha` must be a non-negative finite number. "
                f"Received: alpha={alpha}"
            )
        if not _is_real(beta) or beta < 0:
            raise ValueError(
                "`beta` must be a non-negative finite number. "
                f"Received: beta={beta}"
            )
        if data_format is None:
            data_format = keras.config.image_data_format()
        if data_format not in ("channels_last", "channels_first"):
            raise ValueError(
                "`data_format` must be 'channels_last', 'channels_first' or "
                f"None. Received: data_format={data_format}"
            )
        self.depth_radius = int(depth_radius)
        self.bias = float(bias)
        self.alpha = float(alpha)
        self.beta = float(beta)
        self.data_format = data_format
        self.supports_masking = True

    @classmethod
    def from_caffe(cls, local_size, alpha, beta, k=1.0, **kwargs):
        """Builds the layer from the parameters of a Caffe `LRN` layer.

        Args:
            local_size: int. Caffe's odd window width (`2 * depth_radius +
                1`).
            alpha: float. Caffe's `alpha`, which Caffe divides by
                `local_size`.
            beta: float. Caffe's `beta`.
            k: float. Caffe's `k`, our `bias`. Defaults to `1.0` as in
                Caffe.
            **kwargs: Passed on to the constructor (`name`, `dtype`, ...).

        Returns:
            A `LocalResponseNormalization` computing the same function.
        """
        if (
            isinstance(local_size, bool)
            or not isinstance(local_size, numbers.Integral)
            or local_size < 1
            or local_size % 2 == 0
        ):
            raise ValueError(
                "`local_size` must be a positive odd integer. "
                f"Received: local_size={local_size}"
            )
        return cls(
            depth_radius=(local_size - 1) // 2,
            bias=k,
            alpha=alpha / local_size,
            beta=beta,
            **kwargs,
        )

    def build(self, input_shape):
        if len(input_shape) < 2:
            raise ValueError(
                "`LocalResponseNormalization` expects inputs of rank >= 2. "
                f"Received: input_shape={input_shape}"
            )
        if input_shape[self._channel_axis(len(input_shape))] is None:
            raise ValueError(
                "The channel axis of the inputs must have a known size. "
                f"Received: input_shape={input_shape}"
            )
        self.built = True

    def call(self, inputs):
        # The arithmetic runs in float32 under mixed precision, and the
        # result is cast back to the compute dtype, because squares of
        # ordinary activations overflow float16 (any |a| > 256 gives inf and
        # the output collapses to 0), and float16/bfloat16 sums of squares
        # and powers lose precision. Casting inside, rather than
        # forcing a float32 dtype policy on the layer, keeps the layer's
        # output in the policy's compute dtype like its neighbours', costs
        # two casts of one activation tensor, and leaves `dtype` in the
        # config as the user set it.
        x = inputs
        if self.compute_dtype in _LOW_PRECISION_DTYPES:
            x = ops.cast(x, "float32")
        energy = ops.square(x)
        if self.depth_radius > 0:
            energy = self._channel_window_sum(energy)
        outputs = x * _inverse_power(self.bias + self.alpha * energy, self.beta)
        return ops.cast(outputs, self.compute_dtype)

    def _channel_window_sum(self, squares):
        # One matrix product with a banded 0/1 matrix (C x C) sums each
        # channel's window. On a CPU it beats 2r+1 shifted slices, whose
        # gradient pads every slice back to full size: forward and backward
        # of a (32, 55, 55, 96) input took 0.26 s against 1.4 s, and 0.49 s
        # for tf.nn.local_response_normalization (beta 0.75, 2-core CPU).
        rank = len(squares.shape)
        axis = self._channel_axis(rank)
        channels = squares.shape[axis]
        index = np.arange(channels)
        band = np.abs(index[:, None] - index[None, :]) <= self.depth_radius
        band = ops.cast(
            ops.convert_to_tensor(band.astype("float32")), squares.dtype
        )
        if axis != rank - 1:
            squares = ops.moveaxis(squares, axis, -1)
        shape = ops.shape(squares)
        sums = ops.matmul(ops.reshape(squares, (-1, channels)), band)
        sums = ops.reshape(sums, shape)
        if axis != rank - 1:
            sums = ops.moveaxis(sums, -1, axis)
        return sums

    def _channel_axis(self, rank):
        return rank - 1 if self.data_format == "channels_last" else 1

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "depth_radius": self.depth_radius,
                "bias": self.bias,
                "alpha": self.alpha,
                "beta": self.beta,
                "data_format": self.data_format,
            }
        )
        return config


def _inverse_power(base, exponent):
    """`base ** -exponent`, with cheap square roots for the usual exponents.

    `ops.power` goes through `exp` and `log`, forward and backward; the
    exponents of AlexNet (0.75), TensorFlow (0.5) and 1 need only `rsqrt`.
    """
    if exponent == 0.5:
        return ops.rsqrt(base)
    if exponent == 0.75:
        inverse_root = ops.rsqrt(base)
        return inverse_root * ops.sqrt(inverse_root)
    if exponent == 1.0:
        return 1.0 / base
    return ops.power(base, -exponent)


def _is_real(value):
    return (
        isinstance(value, numbers.Real)
        and not isinstance(value, bool)
        and math.isfinite(value)
    )
