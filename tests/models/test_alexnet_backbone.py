import keras
import numpy as np
import pytest

from keras_objectness.layers import LocalResponseNormalization
from keras_objectness.models import ALEXNET_PRESETS
from keras_objectness.models import alexnet_backbone


def _expected_params(conv_kernels, dense_kernels):
    """Weights plus biases of conv (kh, kw, in, out) and dense (in, out)."""
    total = 0
    for kh, kw, cin, cout in conv_kernels:
        total += kh * kw * cin * cout + cout
    for cin, cout in dense_kernels:
        total += cin * cout + cout
    return total


# The paper's single-tower AlexNet at 224x224: pool5 gives 6x6x256.
PAPER_CONVS = [
    (11, 11, 3, 96),
    (5, 5, 96, 256),
    (3, 3, 256, 384),
    (3, 3, 384, 384),
    (3, 3, 384, 256),
]
PAPER_DENSES = [(6 * 6 * 256, 4096), (4096, 4096)]

# The 64x64 preset: width 0.25, conv1 5x5/2, pool5 gives 3x3x64.
SMALL_CONVS = [
    (5, 5, 3, 24),
    (5, 5, 24, 64),
    (3, 3, 64, 96),
    (3, 3, 96, 96),
    (3, 3, 96, 64),
]
SMALL_DENSES = [(3 * 3 * 64, 1024), (1024, 1024)]


@pytest.fixture(scope="module")
def paper_backbone():
    return alexnet_backbone()


@pytest.fixture(scope="module")
def small_backbone():
    return alexnet_backbone(**ALEXNET_PRESETS["alexnet_small_64"])


def _kernel_shapes(model):
    return [
        tuple(layer.kernel.shape)
        for layer in model.layers
        if isinstance(layer, (keras.layers.Conv2D, keras.layers.Dense))
    ]


def test_paper_parameter_count(paper_backbone):
    expected = _expected_params(PAPER_CONVS, PAPER_DENSES)
    assert expected == 58_281_344
    assert paper_backbone.count_params() == expected
    assert _kernel_shapes(paper_backbone) == PAPER_CONVS + PAPER_DENSES
    # With AlexNet's 1000-way classifier: the well-known ~62.4M.
    with_classifier = expected + _expected_params([], [(4096, 1000)])
    assert with_classifier == 62_378_344


def test_paper_layer_names_and_shapes(paper_backbone):
    shapes = {
        layer.name: tuple(layer.output.shape[1:])
        for layer in paper_backbone.layers
    }
    assert list(shapes) == [
        "alexnet_images",
        "alexnet_rescaling",
        "alexnet_conv1_pad",
        "alexnet_conv1",
        "alexnet_lrn1",
        "alexnet_pool1",
        "alexnet_conv2",
        "alexnet_lrn2",
        "alexnet_pool2",
        "alexnet_conv3",
        "alexnet_conv4",
        "alexnet_conv5",
        "alexnet_lrn5",
        "alexnet_pool5",
        "alexnet_flatten",
        "alexnet_fc6",
        "alexnet_fc6_dropout",
        "alexnet_fc7",
        "alexnet_fc7_dropout",
    ]
    assert shapes["alexnet_conv1"] == (55, 55, 96)
    assert shapes["alexnet_pool1"] == (27, 27, 96)
    assert shapes["alexnet_conv2"] == (27, 27, 256)
    assert shapes["alexnet_pool2"] == (13, 13, 256)
    assert shapes["alexnet_conv4"] == (13, 13, 384)
    assert shapes["alexnet_pool5"] == (6, 6, 256)
    assert shapes["alexnet_fc7_dropout"] == (4096,)
    assert paper_backbone.name == "alexnet"
    conv1 = paper_backbone.get_layer("alexnet_conv1")
    assert conv1.strides == (4, 4)
    assert conv1.activation is keras.activations.relu
    assert paper_backbone.get_layer("alexnet_fc6").activation is (
        keras.activations.relu
    )
    assert paper_backbone.get_layer("alexnet_fc6_dropout").rate == 0.5
    lrn = paper_backbone.get_layer("alexnet_lrn2")
    assert (lrn.depth_radius, lrn.bias, lrn.alpha, lrn.beta) == (
        2,
        2.0,
        1e-4,
        0.75,
    )


def test_small_preset_parameter_count_and_forward(small_backbone):
    expected = _expected_params(SMALL_CONVS, SMALL_DENSES)
    assert expected == 1_874_528
    assert small_backbone.count_params() == expected
    assert _kernel_shapes(small_backbone) == SMALL_CONVS + SMALL_DENSES
    images = np.random.default_rng(0).integers(0, 256, (2, 64, 64, 3))
    features = small_backbone.predict(images.astype("uint8"), verbose=0)
    assert features.shape == (2, 1024)
    assert np.all(np.isfinite(features)) and np.all(features >= 0)


def test_uint8_images_are_rescaled(small_backbone):
    images = np.random.default_rng(1).integers(0, 256, (2, 64, 64, 3))
    from_uint8 = small_backbone(images.astype("uint8"), training=False)
    from_float = small_backbone(images.astype("float32"), training=False)
    np.testing.assert_allclose(from_uint8, from_float, rtol=1e-6)
    rescaling = small_backbone.get_layer("alexnet_rescaling")
    assert rescaling.scale == pytest.approx(1 / 127.5)
    assert rescaling.offset == pytest.approx(-1.0)


def test_activations_do_not_vanish_at_initialisation():
    # With Glorot-uniform kernels the fc7 spread was 4 % of conv1's and the
    # network died under Adam; He initialisation keeps it trainable.
    keras.utils.set_random_seed(0)
    backbone = alexnet_backbone(**ALEXNET_PRESETS["alexnet_small_64"])
    images = np.random.default_rng(2).integers(0, 256, (16, 64, 64, 3))
    spread = {}
    for name in ("alexnet_conv1", "alexnet_fc7"):
        probe = keras.Model(backbone.inputs, backbone.get_layer(name).output)
        spread[name] = float(np.std(probe(images.astype("uint8"))))
    assert spread["alexnet_fc7"] > 0.2 * spread["alexnet_conv1"]


def test_dropout_only_in_training(small_backbone):
    images = np.full((1, 64, 64, 3), 128, "uint8")
    first = small_backbone(images, training=False)
    again = small_backbone(images, training=False)
    dropped = small_backbone(images, training=True)
    np.testing.assert_array_equal(first, again)
    assert not np.allclose(first, dropped)


def test_small_32_preset_and_options():
    model = alexnet_backbone(
        **ALEXNET_PRESETS["alexnet_small_32"],
        normalized_convs=(1, 2),
        dropout_rate=0.0,
        name="tiny",
    )
    names = [layer.name for layer in model.layers]
    assert "tiny_lrn1" in names and "tiny_lrn2" in names
    assert "tiny_lrn5" not in names
    assert model.get_layer("tiny_pool5").output.shape[1:] == (3, 3, 64)
    assert model.output.shape == (None, 1024)
    lrns = [
        layer
        for layer in model.layers
        if isinstance(layer, LocalResponseNormalization)
    ]
    assert len(lrns) == 2
    images = np.full((1, 32, 32, 3), 200, "uint8")
    np.testing.assert_array_equal(
        model(images, training=True), model(images, training=False)
    )


def test_width_multiplier_and_no_padding():
    model = alexnet_backbone(
        input_shape=(67, 67, 1),
        width_multiplier=0.5,
        conv1_kernel_size=3,
        conv1_strides=2,
        conv1_padding=0,
    )
    assert "alexnet_conv1_pad" not in [layer.name for layer in model.layers]
    filters = [model.get_layer(f"alexnet_conv{i}").filters for i in range(1, 6)]
    assert filters == [48, 128, 192, 192, 128]
    # 67 -> conv1 33 -> pool 16 -> pool 7 -> pool 3.
    assert model.get_layer("alexnet_pool5").output.shape[1:] == (3, 3, 128)
    assert model.output.shape == (None, 2048)


@pytest.mark.parametrize(
    "kwargs, argument",
    [
        ({"width_multiplier": 0}, "width_multiplier"),
        ({"width_multiplier": -0.5}, "width_multiplier"),
        ({"input_shape": (32, 32, 3)}, "input_shape"),
        ({"input_shape": (224, 224)}, "input_shape"),
        ({"input_shape": (None, 224, 3)}, "input_shape"),
        ({"conv1_strides": 0}, "conv1_strides"),
        ({"conv1_kernel_size": 2.5}, "conv1_kernel_size"),
        ({"conv1_padding": -1}, "conv1_padding"),
        ({"dropout_rate": 1.0}, "dropout_rate"),
        ({"normalized_convs": (0, 1)}, "normalized_convs"),
        ({"name": ""}, "name"),
    ],
)
def test_invalid_arguments(kwargs, argument):
    with pytest.raises(ValueError) as error:
        alexnet_backbone(**kwargs)
    message = str(error.value)
    assert f"`{argument}`" in message
    assert f"Received: {argument}=" in message
