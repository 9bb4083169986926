"""The workflow's building blocks on hand-made tensors and tiny models."""

import gc
import os
import weakref

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_objectness import ClassSplit
from keras_objectness import adapt_classifier
from keras_objectness import data
from keras_objectness import workflows
from keras_objectness.adaptation import find_background_head
from keras_objectness.models import detection_network
from keras_objectness.models import region_detector
from keras_objectness.workflows import data_source
from keras_objectness.workflows import gallery
from tests.lsda_helpers import DETECTION_CLASSES
from tests.lsda_helpers import NUM_CLASSES
from tests.lsda_helpers import region_data
from tests.lsda_helpers import tiny_classifier

# === WorkflowConfig ===


@pytest.mark.parametrize(
    "field, value",
    [
        ("batch_size", 0),
        ("batch_size", 2.5),
        ("crop_size", True),
        ("classifier_epochs", -1),
        ("proposals", "100"),
        ("positive_fraction", 1.5),
        ("iou_threshold", -0.1),
        ("learning_rate", 0.0),
        ("proposal_source", "edge_boxes"),
        ("method", "magic"),
        ("knn", 0),
        ("knn", "some"),
        ("image_label_scenes", 0),
        ("verbose", 3),
        ("flip", "yes"),
        ("max_test_images", 0),
    ],
)
def test_config_rejects_bad_values_by_name(field, value):
    with pytest.raises(ValueError, match=f"`{field}`"):
        workflows.WorkflowConfig(**{field: value})


def test_config_reads_knn_from_the_command_line_form():
    assert workflows.WorkflowConfig(knn="3").knn == 3
    assert workflows.WorkflowConfig(knn="all").knn == "all"
    assert workflows.WorkflowConfig().to_dict()["method"] == "auto"


class _Splits(workflows.DataSource):
    def __init__(self, names):
        super().__init__({role: role for role in data_source.ROLES})
        self._names = names

    @property
    def split_names(self):
        return self._names


def test_auto_method_reads_image_labels_where_the_data_has_such_scenes():
    config = workflows.WorkflowConfig()
    with_scenes = _Splits(("detection_train", "image_label_scenes", "test"))
    without = _Splits(("detection_train", "test"))
    assert config.for_source(with_scenes).method == "joint_image_refined"
    assert config.for_source(without).method == "joint"
    # A named method is kept as it is; the config itself is not changed.
    lsda = workflows.WorkflowConfig(method="lsda")
    assert lsda.for_source(with_scenes).method == "lsda"
    assert config.method == "auto"
    with pytest.raises(ValueError, match="'auto'"):
        workflows.WorkflowConfig(method="magic")
    # Every method fine-tunes through pooled features too.
    assert workflows.WorkflowConfig(region_features="shared").method == "auto"


# === object_crops ===


def _scenes():
    """Two 40x40 scenes: a red square (class 1), a crowd box, a tiny box."""
    image = np.zeros((40, 40, 3), "uint8")
    image[10:30, 10:30] = (255, 0, 0)
    boxes = np.array(
        [
            [0.25, 0.25, 0.75, 0.75],
            [0.0, 0.0, 0.5, 0.5],
            [0.9, 0.9, 0.95, 0.95],
        ],
        "float32",
    )
    return tf.data.Dataset.from_tensor_slices(
        {
            "image": np.stack([image, image]),
            "objects": {
                "bbox": np.stack([boxes, boxes]),
                "label": np.array([[1, 2, 3], [1, 2, 3]], "int64"),
                "is_crowd": np.array([[False, True, False]] * 2),
            },
        }
    )


def test_object_crops_cut_each_kept_object_with_its_label():
    crops = list(data.object_crops(_scenes(), crop_size=8, context_padding=0))
    # The crowd box and the 2-pixel box are skipped in both scenes.
    assert len(crops) == 2
    for crop in crops:
        assert crop["image"].shape == (8, 8, 3)
        assert crop["image"].dtype == tf.uint8
        np.testing.assert_array_equal(crop["objects"]["label"], [1])
        # The crop is the red square alone.
        assert np.all(crop["image"].numpy()[..., 0] > 200)
        assert np.all(crop["image"].numpy()[..., 1] < 50)


def test_object_crops_context_and_class_filter():
    padded = next(
        iter(data.object_crops(_scenes(), crop_size=16, context_padding=0.5))
    )
    # Half the box's size on each side: the black border shows.
    assert padded["image"].numpy()[0, 0, 0] < 50
    assert padded["image"].numpy()[8, 8, 0] > 200
    kept = list(data.object_crops(_scenes(), crop_size=8, keep_classes=(2, 3)))
    assert kept == []


def test_object_crops_feed_classification_dataset():
    crops = data.object_crops(_scenes(), crop_size=8)
    images, labels = next(
        iter(data.classification_dataset(crops, 8, 2, num_classes=4))
    )
    assert images.shape == (2, 8, 8, 3)
    np.testing.assert_array_equal(labels, [1, 1])


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"crop_size": 0}, "crop_size"),
        ({"crop_size": 8, "context_padding": -1}, "context_padding"),
        ({"crop_size": 8, "min_object_size": -2}, "min_object_size"),
    ],
)
def test_object_crops_bad_arguments(kwargs, name):
    with pytest.raises(ValueError, match=name):
        data.object_crops(_scenes(), **kwargs)


def test_object_crops_needs_detection_examples():
    with pytest.raises(ValueError, match="`dataset`"):
        data.object_crops(np.zeros((2, 8, 8, 3)), crop_size=8)


# === Proposals ===


def test_sliding_windows_are_valid_boxes_padded_to_count():
    windows = workflows.sliding_windows(500)
    assert windows.shape == (500, 4)
    real = windows[~np.all(windows == -1, axis=-1)]
    assert 0 < len(real) <= 500
    assert np.all(real[:, 2] > real[:, 0]) and np.all(real[:, 3] > real[:, 1])
    assert real.min() >= 0.0 and real.max() <= 1.0 + 1e-6
    few = workflows.sliding_windows(3)
    assert few.shape == (3, 4) and np.all(few >= 0)


def test_make_proposals_sources():
    images = np.zeros((2, 32, 32, 3), "uint8")
    sliding = workflows.make_proposals(images, "sliding", 7)
    assert sliding.shape == (2, 7, 4)
    with pytest.raises(ValueError, match="`source`"):
        workflows.make_proposals(images, "edge_boxes", 7)
    with pytest.raises(ValueError, match="`proposer`"):
        workflows.make_proposals(images, "objectness", 7)


# === Scoring ===


def _adapted_network():
    keras.utils.set_random_seed(0)
    network = detection_network(tiny_classifier(), DETECTION_CLASSES)
    find_background_head(network).take_snapshot()
    network.compile("adam", "sparse_categorical_crossentropy")
    network.fit(*region_data(), epochs=2, verbose=0)
    return adapt_classifier(network, knn=2)


def _images_and_proposals(count=5, per_image=6):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (count, 24, 24, 3)).astype("uint8")
    corners = rng.uniform(0.0, 0.5, (count, per_image, 2))
    sizes = rng.uniform(0.2, 0.5, (count, per_image, 2))
    proposals = np.concatenate([corners, corners + sizes], -1)
    proposals[:, -1] = -1.0  # one padded proposal per image
    return images, proposals.astype("float32")


def test_detect_on_proposals_equals_region_detector():
    network = _adapted_network()
    images, proposals = _images_and_proposals()
    reference = region_detector(
        network, image_shape=(24, 24, 3), max_proposals=proposals.shape[1]
    ).predict([images, proposals], verbose=0)
    # Chunks that do not divide the images.
    found = workflows.detect_on_proposals(
        network, images, proposals, images_per_chunk=2, verbose=False
    )
    np.testing.assert_array_equal(found["classes"], reference["classes"])
    np.testing.assert_array_equal(
        found["num_detections"], reference["num_detections"]
    )
    np.testing.assert_allclose(
        found["confidence"], reference["confidence"], atol=1e-5
    )
    np.testing.assert_allclose(found["boxes"], reference["boxes"], atol=1e-6)


def test_classifier_scores_are_the_softmax_as_confidence():
    classifier = tiny_classifier()
    images, proposals = _images_and_proposals(count=2)
    found = workflows.detect_on_proposals(
        classifier, images, proposals, iou_threshold=1.0, verbose=False
    )
    crops = keras.ops.convert_to_numpy(
        workflows.scoring.RegionCrops(8, 0.1)(images, proposals)
    )
    probabilities = classifier.predict(crops.reshape(-1, 8, 8, 3), verbose=0)
    best = probabilities.reshape(2, proposals.shape[1], -1)[:, :-1].max()
    np.testing.assert_allclose(found["confidence"].max(), best, atol=1e-5)
    assert set(np.unique(found["classes"])) <= set(range(-1, NUM_CLASSES))


@pytest.mark.parametrize("detector", ["per_crop", "shared"])
def test_a_network_is_scored_by_one_cached_scorer_that_sees_new_weights(
    detector,
):
    network = _adapted_network()
    images, proposals = _images_and_proposals(count=3)
    scorers = workflows.scoring._SCORERS
    first = workflows.detect_on_proposals(
        network, images, proposals, verbose=False, detector=detector
    )
    built = dict(scorers[network])
    assert len(built) == 1
    # Re-adapting changes the head's variables in place: the cached scorer
    # must score with them, as a fresh one does.
    adapt_classifier(network, knn=1)
    again = workflows.detect_on_proposals(
        network, images, proposals, verbose=False, detector=detector
    )
    assert scorers[network] == built
    assert not np.array_equal(first["confidence"], again["confidence"])
    scorers.pop(network)
    fresh = workflows.detect_on_proposals(
        network, images, proposals, verbose=False, detector=detector
    )
    for key in fresh:
        np.testing.assert_allclose(again[key], fresh[key], atol=1e-6)
    # Another image size needs another shared scorer; per crop, it doesn't.
    workflows.detect_on_proposals(
        network,
        np.pad(images, ((0, 0), (0, 8), (0, 8), (0, 0))),
        proposals,
        verbose=False,
        detector=detector,
    )
    assert len(scorers[network]) == (2 if detector == "shared" else 1)


def test_cached_scorers_go_with_their_network():
    network = _adapted_network()
    images, proposals = _images_and_proposals(count=2)
    workflows.detect_on_proposals(network, images, proposals, verbose=False)
    alive = weakref.ref(network)
    del network
    gc.collect()
    assert alive() is None


def test_detect_on_proposals_shape_errors():
    network = tiny_classifier()
    images, proposals = _images_and_proposals(count=2)
    with pytest.raises(ValueError, match="`proposals`"):
        workflows.detect_on_proposals(network, images, proposals[:1])


def test_detection_network_copy_leaves_the_classifier_alone():
    classifier = tiny_classifier()
    before = [w.copy() for w in classifier.get_weights()]
    network = workflows.detection_network_copy(
        classifier, DETECTION_CLASSES, learning_rate=1e-2
    )
    network.fit(*region_data(), epochs=2, verbose=0)
    for old, new in zip(before, classifier.get_weights()):
        np.testing.assert_array_equal(old, new)
    assert network.output.shape[-1] == NUM_CLASSES + 1


# === Gallery ===


def test_gallery_writes_a_picture_with_every_row(tmp_path):
    images, proposals = _images_and_proposals(count=3)
    split = ClassSplit(NUM_CLASSES, DETECTION_CLASSES)
    truth = {
        "boxes": proposals[:, :2],
        "classes": np.array([[0, 2], [1, -1], [5, 3]]),
    }
    found = {
        "boxes": proposals,
        "classes": np.tile(np.arange(6) % NUM_CLASSES, (3, 1)),
        "confidence": np.linspace(0.2, 0.9, 18).reshape(3, 6),
    }
    path = workflows.draw_gallery(
        images, truth, [found, found], split, tmp_path / "g.png", count=3
    )
    picture = keras.utils.img_to_array(keras.utils.load_img(path))
    # Three panels of 200 px side by side, three rows.
    assert picture.shape[1] == 600
    assert picture.shape[0] > 3 * 200
    assert os.path.getsize(path) > 10_000


def test_gallery_labels_never_overlap():
    placed = []

    class Axes:
        texts = []

        def text(self, *args, **kwargs):
            self.texts.append(args)

    axes = Axes()
    box = (0.1, 0.1, 0.6, 0.6)
    first = gallery._draw_label(axes, box, 100, 100, "cat 0.9", "red", placed)
    second = gallery._draw_label(axes, box, 100, 100, "dog 0.8", "red", placed)
    third = gallery._draw_label(axes, box, 100, 100, "cow 0.7", "red", placed)
    # Top edge, then bottom edge, then no room: the label is left out.
    assert (first, second, third) == (True, True, False)
    assert len(axes.texts) == 2
    for i, a in enumerate(placed):
        for b in placed[i + 1 :]:
            assert not gallery._overlap(a, b)


# === scenes_of_classes ===


def _labelled_only(labels):
    """Scenes that hold nothing but object labels."""
    return tf.data.Dataset.from_generator(
        lambda: (
            {"objects": {"label": np.array(row, "int64")}} for row in labels
        ),
        output_signature={
            "objects": {"label": tf.TensorSpec((None,), tf.int64)}
        },
    )


def test_scenes_of_classes_keeps_scenes_with_only_those_classes():
    dataset = _labelled_only([[0, 1], [0, 2], [1, 1], []])
    kept = [
        list(example["objects"]["label"].numpy())
        for example in data.scenes_of_classes(dataset, (0, 1))
    ]
    assert kept == [[0, 1], [1, 1]]
    with pytest.raises(ValueError, match="`classes`"):
        data.scenes_of_classes(dataset, ())
    with pytest.raises(ValueError, match="`classes`"):
        data.scenes_of_classes(dataset, ("a",))


def test_scenes_with_classes_keeps_scenes_with_any_of_them():
    dataset = _labelled_only([[0, 1], [0, 2], [1, 1], []])
    kept = [
        list(example["objects"]["label"].numpy())
        for example in data.scenes_with_classes(dataset, (2, 5))
    ]
    assert kept == [[0, 2]]
    with pytest.raises(ValueError, match="`classes`"):
        data.scenes_with_classes(dataset, ())


# === Frozen layers in fine-tuning ===


def _labelled_scenes(count=4):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (count, 24, 24, 3)).astype("uint8")
    boxes = np.tile(
        np.array([[0.1, 0.1, 0.6, 0.6], [0.4, 0.4, 0.9, 0.9]], "float32"),
        (count, 1, 1),
    )
    labels = np.tile(np.array(DETECTION_CLASSES[:2], "int64"), (count, 1))
    return tf.data.Dataset.from_tensor_slices(
        {"image": images, "objects": {"bbox": boxes, "label": labels}}
    )


def _changed(before, after):
    return [
        not np.array_equal(
            keras.ops.convert_to_numpy(old), keras.ops.convert_to_numpy(new)
        )
        for old, new in zip(before.weights, after.weights)
    ]


@pytest.mark.tensorflow_only  # the region pipeline is tf.data
@pytest.mark.parametrize("frozen_layers", [0, 1])
def test_finetune_detector_keeps_frozen_layers(frozen_layers):
    classifier = tiny_classifier()
    network = workflows.finetune_detector(
        classifier,
        _labelled_scenes(),
        ClassSplit(NUM_CLASSES, DETECTION_CLASSES),
        method="none",
        epochs=2,
        learning_rate=1e-2,
        frozen_layers=frozen_layers,
        batch_size=8,
        regions_per_image=4,
        verbose=0,
    )
    original = classifier.get_layer("tiny_backbone")
    tuned = network.get_layer("tiny_backbone")
    conv_changed = _changed(
        original.get_layer("tiny_conv"), tuned.get_layer("tiny_conv")
    )
    fc_changed = _changed(
        original.get_layer("tiny_fc"), tuned.get_layer("tiny_fc")
    )
    assert any(fc_changed)
    assert any(conv_changed) == (frozen_layers == 0)


@pytest.mark.parametrize("frozen_layers", [-1, 1.5, True, 3])
def test_finetune_detector_rejects_bad_frozen_layers(frozen_layers):
    # tiny_classifier's layers with weights are conv, fc and the output
    # layer, which the head replaces: at most 2 can stay frozen.
    with pytest.raises(ValueError, match="`frozen_layers`"):
        workflows.finetuning._trainable_after(tiny_classifier(), frozen_layers)


def test_config_checks_frozen_layers():
    with pytest.raises(ValueError, match="`frozen_layers`"):
        workflows.WorkflowConfig(frozen_layers=-1)
    assert workflows.WorkflowConfig(frozen_layers=2).frozen_layers == 2
