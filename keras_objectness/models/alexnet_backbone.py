"""The AlexNet-style backbone: images to the 4096-d fc7 feature vector."""

import math
import numbers
import types

import keras

from keras_objectness.layers.local_response_normalization import (
    LocalResponseNormalization,
)

# Filters of conv1..conv5 and units of fc6/fc7 at width 1.0 (single tower,
# Krizhevsky et al. 2012 with the two GPU halves merged).
_CONV_FILTERS = (96, 256, 384, 384, 256)
_DENSE_UNITS = 4096
# Kernel sizes of conv2..conv5; conv1 is an argument. These layers have
# stride 1 and "same" padding, so they keep the spatial size.
_LATER_KERNEL_SIZES = (5, 3, 3, 3)
# Overlapping max pooling (3x3 windows, stride 2, no padding).
_POOL_SIZE = 3
_POOL_STRIDES = 2
_DATA_FORMAT = "channels_last"

ALEXNET_PRESETS = types.MappingProxyType(
    {
        # The paper's network: 224x224 input, conv1 11x11 stride 4. The
        # padding of 2 gives the paper's 55x55 conv1 maps (as 227x227 inputs
        # without padding do in Caffe) and 6x6x256 conv5 features.
        "alexnet_224": types.MappingProxyType(
            {
                "input_shape": (224, 224, 3),
                "width_multiplier": 1.0,
                "conv1_kernel_size": 11,
                "conv1_strides": 4,
                "conv1_padding": 2,
            }
        ),
        # 64x64 crops at a quarter of the width: conv1 5x5 stride 2 gives
        # 32x32 maps and 3x3x64 conv5 features, fc6/fc7 of 1024 units.
        "alexnet_small_64": types.MappingProxyType(
            {
                "input_shape": (64, 64, 3),
                "width_multiplier": 0.25,
                "conv1_kernel_size": 5,
                "conv1_strides": 2,
                "conv1_padding": 2,
            }
        ),
        # 32x32 crops at a quarter of the width: conv1 5x5 stride 1, then
        # the same 32 -> 15 -> 7 -> 3 pyramid as the 64x64 preset.
        "alexnet_small_32": types.MappingProxyType(
            {
                "input_shape": (32, 32, 3),
                "width_multiplier": 0.25,
                "conv1_kernel_size": 5,
                "conv1_strides": 1,
                "conv1_padding": 2,
            }
        ),
    }
)


def alexnet_backbone(
    input_shape=(224, 224, 3),
    width_multiplier=1.0,
    conv1_kernel_size=11,
    conv1_strides=4,
    conv1_padding=2,
    normalized_convs=(1, 2, 5),
    dropout_rate=0.5,
    input_scale=1.0 / 127.5,
    input_offset=-1.0,
    kernel_initializer="he_normal",
    name="alexnet",
):
    """Builds the AlexNet-style feature extractor of the objectness papers.

    Five convolutions and two fully connected layers, each followed by a
    ReLU. Cross-channel `LocalResponseNormalization` and 3x3/stride-2 max
    pooling follow conv1, conv2 and conv5, as in the class-generic
    objectness network; dropout follows fc6 and fc7. The model maps images
    to the fc7 feature vector (4096 values at width 1.0), the input of the
    classifier and box heads.

    At the defaults this is the single-tower AlexNet of Krizhevsky et al.
    on 224x224 images: conv1 11x11/4 with 96 filters, conv2 5x5 with 256,
    conv3 and conv4 3x3 with 384, conv5 3x3 with 256, fc6 and fc7 with 4096
    units; 58,281,344 parameters (62,378,344 with a 1000-way classifier).
    One deliberate difference: Krizhevsky et al. normalise only after conv1
    and conv2; pass `normalized_convs=(1, 2)` for that.

    For small images, shrink conv1's kernel and stride (the later layers are
    resolution-independent) and the width; `ALEXNET_PRESETS` holds settings
    for 224x224, 64x64 and 32x32 inputs. The spatial size must survive the
    three pools: a ValueError names `input_shape` when it does not.

    Layer names are stable: `{name}_rescaling`, `{name}_conv1_pad` (only
    when `conv1_padding > 0`), `{name}_conv{i}` (i = 1..5),
    `{name}_lrn{i}` (i in `normalized_convs`), `{name}_pool{1,2,5}`,
    `{name}_flatten`, `{name}_fc6`, `{name}_fc6_dropout`, `{name}_fc7`,
    `{name}_fc7_dropout`. The convolutions and dense layers carry their ReLU.

    Args:
        input_shape: tuple of 3 ints. `(height, width, channels)` of the
            images (channels last). Defaults to `(224, 224, 3)`.
        width_multiplier: float. Positive factor on every filter count and
            on the fc6/fc7 units (rounded, at least 1). Defaults to `1.0`.
        conv1_kernel_size: int. Side of conv1's square kernel. Defaults to
            `11`.
        conv1_strides: int. Stride of conv1. Defaults to `4`.
        conv1_padding: int. Zeros added on each side of the image before
            conv1 (which itself pads nothing). Defaults to `2`.
        normalized_convs: tuple of ints in 1..5. The convolutions followed
            by `LocalResponseNormalization` (depth radius 2, bias 2,
            alpha 1e-4, beta 0.75 as in the paper). The pools always follow
            conv1, conv2 and conv5. Defaults to `(1, 2, 5)`.
        dropout_rate: float in `[0, 1)`. Dropout rate after fc6 and fc7
            (active only in training). Defaults to `0.5`.
        input_scale: float. The `Rescaling` layer's scale; with the
            default offset it maps uint8 pixel values 0..255 to -1..1
            (zero-centred inputs keep the deep ReLU stack trainable), so
            `tf.data` can feed uint8 images. Defaults to `1 / 127.5`.
        input_offset: float. The `Rescaling` layer's offset, added after
            scaling. Defaults to `-1.0`.
        kernel_initializer: initializer of the convolution and dense
            kernels. Defaults to `"he_normal"`: with Keras' default
            (Glorot uniform) the activations shrink about tenfold by fc7 at
            initialisation and, measured on `silhouette_scenes`, Adam at
            1e-3 kills every conv5 unit within an epoch.
        name: string. Name of the model and prefix of its layers. Defaults
            to `"alexnet"`.

    Returns:
        A functional `keras.Model` from images of shape
        `(batch, *input_shape)` (any real dtype; uint8 is cast) to features
        of shape `(batch, fc_units)`, where `fc_units` is
        `round(4096 * width_multiplier)`.

    Example:

    ```python
    import numpy as np
    from keras_objectness.models import ALEXNET_PRESETS
    from keras_objectness.models import alexnet_backbone

    backbone = alexnet_backbone(**ALEXNET_PRESETS["alexnet_small_64"])
    images = np.random.randint(0, 256, (2, 64, 64, 3), dtype="uint8")
    features = backbone(images)  # shape (2, 1024)
    ```

    References:
        - [Krizhevsky et al., 2012. ImageNet Classification with Deep
          Convolutional Neural Networks](https://papers.nips.cc/paper/4824)
        - Class-generic objectness paper, section 3.1 (the network).
    """
    # === Config ===
    _check_input_shape(input_shape)
    if not _is_real(width_multiplier) or width_multiplier <= 0:
        raise ValueError(
            "`width_multiplier` must be a positive number. "
            f"Received: width_multiplier={width_multiplier}"
        )
    _check_int("conv1_kernel_size", conv1_kernel_size, minimum=1)
    _check_int("conv1_strides", conv1_strides, minimum=1)
    _check_int("conv1_padding", conv1_padding, minimum=0)
    if not isinstance(normalized_convs, (tuple, list)) or any(
        isinstance(i, bool) or i not in (1, 2, 3, 4, 5)
        for i in normalized_convs
    ):
        raise ValueError(
            "`normalized_convs` must be a tuple of convolution indices in "
            f"1..5. Received: normalized_convs={normalized_convs}"
        )
    normalized_convs = tuple(sorted(set(normalized_convs)))
    if not _is_real(dropout_rate) or not 0 <= dropout_rate < 1:
        raise ValueError(
            "`dropout_rate` must be a number in [0, 1). "
            f"Received: dropout_rate={dropout_rate}"
        )
    if not _is_real(input_scale) or not _is_real(input_offset):
        raise ValueError(
            "`input_scale` and `input_offset` must be finite numbers. "
            f"Received: input_scale={input_scale}, "
            f"input_offset={input_offset}"
        )
    if not isinstance(name, str) or not name:
        raise ValueError(
            f"`name` must be a non-empty string. Received: name={name}"
        )
    _check_spatial_size(
        input_shape, conv1_kernel_size, conv1_strides, conv1_padding
    )
    filters = [_scaled(f, width_multiplier) for f in _CONV_FILTERS]
    dense_units = _scaled(_DENSE_UNITS, width_multiplier)
    kernel_sizes = (conv1_kernel_size,) + _LATER_KERNEL_SIZES
    strides = (conv1_strides, 1, 1, 1, 1)

    # === Layers ===
    rescaling = keras.layers.Rescaling(
        scale=input_scale, offset=input_offset, name=f"{name}_rescaling"
    )
    conv1_pad = None
    if conv1_padding > 0:
        conv1_pad = keras.layers.ZeroPadding2D(
            padding=conv1_padding,
            data_format=_DATA_FORMAT,
            name=f"{name}_conv1_pad",
        )
    convs = {}
    lrns = {}
    pools = {}
    for i in range(1, 6):
        convs[i] = keras.layers.Conv2D(
            filters=filters[i - 1],
            kernel_size=kernel_sizes[i - 1],
            strides=strides[i - 1],
            padding="valid" if i == 1 else "same",
            activation="relu",
            kernel_initializer=kernel_initializer,
            data_format=_DATA_FORMAT,
            name=f"{name}_conv{i}",
        )
        if i in normalized_convs:
            lrns[i] = LocalResponseNormalization(
                depth_radius=2,
                bias=2.0,
                alpha=1e-4,
                beta=0.75,
                data_format=_DATA_FORMAT,
                name=f"{name}_lrn{i}",
            )
        if i in (1, 2, 5):
            pools[i] = keras.layers.MaxPooling2D(
                pool_size=_POOL_SIZE,
                strides=_POOL_STRIDES,
                padding="valid",
                data_format=_DATA_FORMAT,
                name=f"{name}_pool{i}",
            )
    flatten = keras.layers.Flatten(
        data_format=_DATA_FORMAT, name=f"{name}_flatten"
    )
    dense_layers = []
    for i in (6, 7):
        dense_layers.append(
            (
                keras.layers.Dense(
                    dense_units,
                    activation="relu",
                    kernel_initializer=kernel_initializer,
                    name=f"{name}_fc{i}",
                ),
                keras.layers.Dropout(
                    dropout_rate, name=f"{name}_fc{i}_dropout"
                ),
            )
        )

    # === Functional Model ===
    inputs = keras.Input(shape=tuple(input_shape), name=f"{name}_images")
    x = rescaling(inputs)
    if conv1_pad is not None:
        x = conv1_pad(x)
    for i in range(1, 6):
        x = convs[i](x)
        if i in lrns:
            x = lrns[i](x)
        if i in pools:
            x = pools[i](x)
    x = flatten(x)
    for dense, dropout in dense_layers:
        x = dropout(dense(x))
    return keras.Model(inputs=inputs, outputs=x, name=name)


def _scaled(units, width_multiplier):
    return max(1, int(round(units * width_multiplier)))


def _check_input_shape(input_shape):
    if (
        not isinstance(input_shape, (tuple, list))
        or len(input_shape) != 3
        or any(
            isinstance(d, bool) or not isinstance(d, numbers.Integral) or d < 1
            for d in input_shape
        )
    ):
        raise ValueError(
            "`input_shape` must be a tuple of 3 positive integers "
            "(height, width, channels). "
            f"Received: input_shape={input_shape}"
        )


def _check_int(argument, value, minimum):
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Integral)
        or value < minimum
    ):
        kind = "positive" if minimum == 1 else "non-negative"
        raise ValueError(
            f"`{argument}` must be a {kind} integer. "
            f"Received: {argument}={value}"
        )


def _check_spatial_size(input_shape, kernel_size, strides, padding):
    """Raises if conv1 and the three pools leave no feature map."""
    for side in input_shape[:2]:
        sizes = []
        size = side + 2 * padding
        size = (size - kernel_size) // strides + 1 if size >= kernel_size else 0
        sizes.append(size)
        for _ in range(3):  # pool1, pool2 and pool5; the convs keep the size
            size = (
                (size - _POOL_SIZE) // _POOL_STRIDES + 1
                if size >= _POOL_SIZE
                else 0
            )
            sizes.append(size)
        if size < 1:
            raise ValueError(
                "`input_shape` is too small for conv1 (kernel "
                f"{kernel_size}, stride {strides}, padding {padding}) and "
                "the three 3x3/2 max pools: a side of "
                f"{side} gives feature maps of {sizes} after conv1, pool1, "
                "pool2 and pool5. Use larger images or a smaller "
                "`conv1_strides`. "
                f"Received: input_shape={input_shape}"
            )


def _is_real(value):
    return (
        isinstance(value, numbers.Real)
        and not isinstance(value, bool)
        and math.isfinite(value)
    )
