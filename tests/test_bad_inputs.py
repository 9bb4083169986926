"""Bad inputs across the public API: a clear error, or a stated rule.

Each row of `ERRORS` is a call that must raise the given exception type
with a message naming the argument (Keras' "`arg` must be ... Received:"
form). Each row of `RULES` is a call whose result must follow the rule
its docstring states (graph-mode handling of bad data, mostly). The cases
come from issue 14's list of cryptic errors and silent results.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_objectness import BoxSpace
from keras_objectness import adapt_classifier
from keras_objectness import layers
from keras_objectness.data import pipelines
from keras_objectness.models import detection_network
from keras_objectness.training import resumable_fit
from tests.gradients import compiled

SPACE = BoxSpace(
    grid_shape=(4, 4), scales=(0.25, 0.5, 0.9), aspect_ratios=(0.5, 1.0, 2.0)
)
NUM_BINS = SPACE.num_bins  # 144
BOX = [0.1, 0.2, 0.5, 0.6]


def _scenes(height=16, width=16, channels=3, labels=(0, 1), count=3, spec=True):
    """A tiny TFDS-like detection dataset (`spec=False`: channels unknown)."""
    boxes = np.array([BOX, [0.3, 0.3, 0.9, 0.8]], "float32")[: len(labels)]

    def generate():
        for _ in range(count):
            yield {
                "image": np.full((height, width, channels), 200, np.uint8),
                "objects": {
                    "bbox": boxes,
                    "label": np.array(labels, np.int64),
                },
            }

    signature = {
        "image": tf.TensorSpec(
            (None, None, channels if spec else None), tf.uint8
        ),
        "objects": {
            "bbox": tf.TensorSpec((None, 4), tf.float32),
            "label": tf.TensorSpec((None,), tf.int64),
        },
    }
    return tf.data.Dataset.from_generator(generate, output_signature=signature)


def _objectness(dataset, **kwargs):
    return pipelines.objectness_dataset(
        dataset, SPACE, image_size=8, batch_size=2, num_classes=2, **kwargs
    )


def _regions(dataset, **kwargs):
    return pipelines.region_dataset(
        dataset, crop_size=4, batch_size=4, num_classes=2, **kwargs
    )


def _graph(function, *args):
    """Runs `function` compiled (`tf.function` or `jax.jit`); numpy out."""
    return compiled(function)(*args)


def _softmax_on_other_width():
    head = layers.BoxBinSoftmax(SPACE)
    head(np.zeros((1, 8), "float32"))
    return head(np.zeros((1, 9), "float32"))


def _targets_in_functional_model():
    boxes = keras.Input((2, 4))
    classes = keras.Input((3,), dtype="int32")
    return layers.GaussianBoxTargets(SPACE)(boxes, classes)


def _classifier_model(loss="sparse_categorical_crossentropy"):
    inputs = keras.Input((4,))
    outputs = keras.layers.Dense(3, activation="softmax")(inputs)
    model = keras.Model(inputs, outputs)
    model.compile("sgd", loss)
    return model


def _fit(model, *arrays):
    dataset = tf.data.Dataset.from_tensor_slices(arrays).batch(4)
    return resumable_fit(model, dataset, verbose=0)


def _adapt_without_snapshot():
    inputs = keras.Input((4,))
    outputs = keras.layers.Dense(3, activation="softmax", name="cls")(inputs)
    detector = detection_network(keras.Model(inputs, outputs), (0, 1))
    # knn=5 > |B| = 2: the missing snapshot must still be what is reported.
    return adapt_classifier(detector, knn=5)


def _sigmoid_classifier():
    inputs = keras.Input((4,))
    outputs = keras.layers.Dense(3, activation="sigmoid", name="cls")(inputs)
    return detection_network(keras.Model(inputs, outputs), (0, 1))


NAN_ROW = np.full((1, NUM_BINS), np.nan, "float32")
IMAGES = np.ones((1, 16, 16, 3), "float32")
WHOLE = np.array([[[0.0, 0.0, 1.0, 1.0]]], "float32")

# (id, call, exception type, text the message must hold)
ERRORS = [
    # BoxSpace arguments.
    (
        "aspect_ratios_string",
        lambda: BoxSpace(aspect_ratios="12"),
        ValueError,
        "Received: aspect_ratios='12'",
    ),
    (
        "aspect_ratios_empty",
        lambda: BoxSpace(aspect_ratios=()),
        ValueError,
        "Received: aspect_ratios=()",
    ),
    (
        "image_shape_fraction",
        lambda: BoxSpace(bounding_box_format="xyxy", image_shape=(32.7, 10)),
        ValueError,
        "`image_shape` must be",
    ),
    # BoxSpace.encode / decode.
    (
        "encode_strings",
        lambda: SPACE.encode(np.array([["a", "b", "c", "d"]])),
        TypeError,
        "`boxes` must hold real numbers",
    ),
    (
        "encode_nan",
        lambda: SPACE.encode(np.array([[np.nan, 0, 0.5, 0.5]], "float32")),
        ValueError,
        "`boxes` must be finite",
    ),
    (
        "encode_inverted",
        lambda: SPACE.encode(np.array([[0.5, 0.5, 0.1, 0.1]], "float32")),
        ValueError,
        "not inverted",
    ),
    (
        "decode_out_of_range_eager",
        lambda: SPACE.decode(np.array([999])),
        ValueError,
        "`bin_indices` must be in [0, 144)",
    ),
    # GaussianBoxTargets.
    (
        "targets_classes_shape",
        lambda: layers.GaussianBoxTargets(SPACE)(
            np.zeros((1, 2, 4), "float32") + [0, 0, 0.5, 0.5],
            np.zeros((1, 3), "int32"),
        ),
        ValueError,
        "`boxes` and `classes` must agree",
    ),
    (
        "targets_classes_shape_functional",
        _targets_in_functional_model,
        ValueError,
        "`boxes` and `classes` must agree",
    ),
    (
        "targets_classes_broadcast",
        lambda: layers.GaussianBoxTargets(SPACE)(
            np.zeros((2, 1, 4), "float32") + [0, 0, 0.5, 0.5],
            np.zeros((1, 1), "int32"),
        ),
        ValueError,
        "no broadcasting",
    ),
    (
        "targets_tiny_sigma",
        lambda: layers.GaussianBoxTargets(SPACE, center_sigma=1e-20),
        ValueError,
        "Received: center_sigma=1e-20",
    ),
    # BoxBinSoftmax.
    (
        "softmax_feature_count",
        _softmax_on_other_width,
        ValueError,
        "`inputs` must have the 8 features",
    ),
    (
        "softmax_nan_eager",
        lambda: layers.BoxBinSoftmax(SPACE)(np.full((1, 8), np.nan, "f4")),
        ValueError,
        "`inputs` must be finite",
    ),
    # BoxBinDecoder.
    (
        "decoder_unbatched",
        lambda: layers.BoxBinDecoder(SPACE)(NAN_ROW[0] * 0 + 1 / NUM_BINS),
        ValueError,
        "`inputs` must hold one value per box bin",
    ),
    (
        "decoder_nan_eager",
        lambda: layers.BoxBinDecoder(SPACE)(NAN_ROW),
        ValueError,
        "`inputs` must be finite",
    ),
    # RegionCrops.
    (
        "crops_regions_last_axis_3",
        lambda: layers.RegionCrops(4)(IMAGES, np.zeros((1, 2, 3), "f4")),
        ValueError,
        "`regions` must have shape",
    ),
    (
        "crops_regions_rank_2",
        lambda: layers.RegionCrops(4)(IMAGES, WHOLE[0]),
        ValueError,
        "`regions` must have shape",
    ),
    (
        "crops_batch_sizes",
        lambda: layers.RegionCrops(4)(np.ones((2, 16, 16, 3), "f4"), WHOLE),
        ValueError,
        "`images` and `regions` must agree on the batch size",
    ),
    (
        "crops_unbatched_image",
        lambda: layers.RegionCrops(4)(IMAGES[0], WHOLE),
        ValueError,
        "`images` must have shape",
    ),
    (
        "crops_nan_image_eager",
        lambda: layers.RegionCrops(4)(IMAGES * np.nan, WHOLE),
        ValueError,
        "`images` must be finite",
    ),
    (
        "crops_nan_region_eager",
        lambda: layers.RegionCrops(4)(IMAGES, WHOLE * np.nan),
        ValueError,
        "`regions` must be finite",
    ),
    (
        "crops_inverted_region_eager",
        lambda: layers.RegionCrops(4)(IMAGES, WHOLE[..., ::-1]),
        ValueError,
        "max >= min",
    ),
    # RegionDetections.
    (
        "detections_regions_disagree",
        lambda: layers.RegionDetections()(
            np.zeros((1, 4, 4), "float32") + [0, 0, 0.5, 0.5],
            np.zeros((1, 5, 3), "float32"),
        ),
        ValueError,
        "`boxes` and `scores` must agree",
    ),
    (
        "detections_nan_score_eager",
        lambda: layers.RegionDetections()(
            np.array([[BOX]], "float32"),
            np.array([[[np.nan, 1.0]]], "float32"),
        ),
        ValueError,
        "`boxes` and `scores` must be finite",
    ),
    # Pipelines.
    (
        "objectness_numpy",
        lambda: _objectness(np.zeros((2, 8, 8, 3), np.uint8)),
        TypeError,
        "`dataset` must be a `tf.data.Dataset`",
    ),
    (
        "objectness_without_objects",
        lambda: _objectness(
            tf.data.Dataset.from_tensor_slices(
                {"image": np.zeros((2, 8, 8, 3), np.uint8)}
            )
        ),
        ValueError,
        "`dataset` must yield TFDS detection examples",
    ),
    (
        "objectness_four_channels",
        lambda: _objectness(_scenes(channels=4)),
        ValueError,
        "`dataset`'s `image` must be",
    ),
    (
        "objectness_label_minus_3",
        lambda: list(_objectness(_scenes(labels=(0, -3)))),
        tf.errors.InvalidArgumentError,
        "`num_classes`",
    ),
    (
        "region_positive_fraction_string",
        lambda: _regions(_scenes(), positive_fraction="half"),
        ValueError,
        "Received: positive_fraction='half'",
    ),
    # Training and adaptation.
    (
        "resumable_fit_x_only",
        lambda: _fit(_classifier_model(), np.zeros((8, 4), "float32")),
        ValueError,
        "`dataset` must yield `(x, y)`",
    ),
    (
        "resumable_fit_y_width",
        lambda: _fit(
            _classifier_model("categorical_crossentropy"),
            np.zeros((8, 4), "float32"),
            np.zeros((8, 5), "float32"),
        ),
        ValueError,
        "`dataset`'s targets `y`",
    ),
    (
        "adapt_without_snapshot_hides_no_knn",
        _adapt_without_snapshot,
        ValueError,
        "no snapshot",
    ),
    (
        "detection_network_sigmoid",
        _sigmoid_classifier,
        ValueError,
        "`classifier` must output a softmax",
    ),
]


def _case(row):
    # resumable_fit trains under tf.distribute: under other backends its
    # first error names the backend (the test below).
    marks = (
        pytest.mark.tensorflow_only if row[0].startswith("resumable") else ()
    )
    return pytest.param(*row[1:], id=row[0], marks=marks)


@pytest.mark.parametrize("call, error, text", [_case(row) for row in ERRORS])
def test_bad_input_raises_a_clear_error(call, error, text):
    with pytest.raises(error) as info:
        call()
    assert text in str(info.value)


@pytest.mark.skipif(
    keras.backend.backend() == "tensorflow", reason="other backends only"
)
def test_resumable_fit_names_the_backend_it_needs():
    with pytest.raises(ValueError) as info:
        _fit(_classifier_model(), np.zeros((8, 4), "float32"))
    message = str(info.value)
    assert "needs the TensorFlow backend" in message
    assert f"backend()={keras.backend.backend()!r}" in message


def _zero_area_box_is_dropped():
    targets = layers.GaussianBoxTargets(SPACE)(
        np.array([[[0.2, 0.2, 0.2, 0.5], BOX]], "float32")
    )
    alone = layers.GaussianBoxTargets(SPACE)(np.array([[BOX]], "float32"))
    return np.allclose(targets, alone, atol=1e-7)


def _encode_in_graph_marks_bad_boxes():
    boxes = np.array([BOX, [np.nan, 0, 0.5, 0.5], [0.5, 0.5, 0.1, 0.1]], "f4")
    coordinates, bins = _graph(lambda b: SPACE.encode(b), boxes)
    _, expected = SPACE.encode(boxes[:1])
    return (
        bins.tolist() == [int(expected[0]), -1, -1]
        and np.all(np.isnan(coordinates[1:]))
        and np.all(np.isfinite(coordinates[0]))
    )


def _decode_in_graph_gives_nan_boxes():
    boxes = _graph(lambda b: SPACE.decode(b), np.array([0, 999, -1]))
    return np.all(np.isfinite(boxes[0])) and np.all(np.isnan(boxes[1:]))


def _softmax_passes_nan_in_graph():
    head = layers.BoxBinSoftmax(SPACE)
    head(np.zeros((1, 8), "float32"))
    row = np.zeros((2, 8), "float32")
    row[1, 0] = np.nan
    out = _graph(head, row)
    return np.all(np.isnan(out[1])) and np.isclose(out[0].sum(), 1.0)


def _decoder_ignores_nan_bins_in_graph():
    probabilities = np.full((1, NUM_BINS), 0.5 / (NUM_BINS - 1), "float32")
    probabilities[0, 7] = 0.5
    probabilities[0, 3] = np.nan
    decoder = layers.BoxBinDecoder(SPACE, max_detections=3)
    detections = _graph(decoder, probabilities)
    expected = SPACE.decode(np.array([7]), clip=True)
    return (
        int(detections["num_detections"][0]) == 3
        and np.all(np.isfinite(detections["confidence"]))
        and np.allclose(detections["boxes"][0, 0], expected[0])
    )


def _crops_of_bad_regions_are_zero_in_graph():
    regions = np.array(
        [[[0.0, 0.0, 1.0, 1.0], [np.nan, 0, 1, 1], [1.0, 1.0, 0.0, 0.0]]],
        "float32",
    )
    crops = _graph(layers.RegionCrops(4), IMAGES, regions)
    return np.allclose(crops[0, 0], 1.0) and np.all(crops[0, 1:] == 0.0)


def _detections_drop_nan_scores_in_graph():
    boxes = np.array([[BOX, [0.5, 0.5, 0.9, 0.9]]], "float32")
    scores = np.array([[[np.nan, 2.0], [1.0, 1.0]]], "float32")
    detections = _graph(layers.RegionDetections(), boxes, scores)
    count = int(detections["num_detections"][0])
    classes = detections["classes"][0, :count]
    found = detections["boxes"][0, :count]
    confidence = detections["confidence"][0, :count]
    # Three finite scores survive; (region 0, class 0), NaN, never does.
    return (
        count == 3
        and np.all(np.isfinite(confidence))
        and np.allclose(found[classes == 0], [[0.5, 0.5, 0.9, 0.9]])
    )


def _zero_size_images_are_dropped():
    empty = _scenes(height=0, width=0)
    good = _scenes(count=1)
    dataset = empty.concatenate(good).concatenate(empty)
    batches = list(_objectness(dataset, check_annotations=False))
    crops = list(_regions(empty.concatenate(good), check_annotations=False))
    labels = np.concatenate([b[1].numpy() for b in crops])
    images = np.concatenate([b[0].numpy() for b in crops])
    # One image survives; its crops come from that image (never black).
    return (
        sum(len(b[0]) for b in batches) == 1
        and len(labels) == 16
        and np.all(images.reshape(16, -1).max(axis=-1) == 200)
    )


def _grayscale_images_become_rgb():
    for spec in (True, False):
        dataset = _scenes(channels=1, spec=spec)
        images, _ = next(iter(_objectness(dataset)))
        if images.shape[-1] != 3 or not np.all(images.numpy() == 200):
            return False
    return True


def _padding_label_minus_1_is_dropped():
    _, targets = next(iter(_objectness(_scenes(labels=(0, -1)))))
    _, expected = next(iter(_objectness(_scenes(labels=(0,)))))
    return np.allclose(targets, expected, atol=1e-7)


# (id, call returning True when the documented rule holds)
RULES = [
    ("targets_zero_area_box_dropped_eager", _zero_area_box_is_dropped),
    ("encode_graph_bin_minus_1", _encode_in_graph_marks_bad_boxes),
    ("decode_graph_out_of_range_nan", _decode_in_graph_gives_nan_boxes),
    ("softmax_graph_nan_through", _softmax_passes_nan_in_graph),
    ("decoder_graph_nan_never_detected", _decoder_ignores_nan_bins_in_graph),
    ("crops_graph_bad_regions_zero", _crops_of_bad_regions_are_zero_in_graph),
    ("detections_graph_nan_dropped", _detections_drop_nan_scores_in_graph),
    ("pipelines_drop_zero_size_images", _zero_size_images_are_dropped),
    ("pipelines_grayscale_to_rgb", _grayscale_images_become_rgb),
    ("objectness_label_minus_1_padding", _padding_label_minus_1_is_dropped),
]


@pytest.mark.parametrize(
    "rule", [row[1] for row in RULES], ids=[row[0] for row in RULES]
)
def test_bad_data_follows_the_documented_rule(rule):
    assert rule()
