"""The objectness workflow on a hand-made in-memory source and 32 px nets."""

import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_objectness import BoxSpace
from keras_objectness import ClassSplit
from keras_objectness import workflows
from keras_objectness.workflows.proposals import SILHOUETTE_BOX_SPACE
from tests.test_case import large

NUM_CLASSES = 4
DETECTION_CLASSES = (0, 1)
SPLITS = (
    "classification_train",
    "classification_validation",
    "detection_train",
    "detection_train_all",
    "validation_heldout",
    "test_heldout",
    "test_trained",
)
SMALL = dict(image_size=32, batch_size=4, verbose=0)


def _scenes(count, labels, seed=0):
    """`count` 32x32 scenes, one bright rectangle each, labels in turn."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 60, (count, 32, 32, 3)).astype("uint8")
    boxes = np.zeros((count, 1, 4), "float32")
    for index in range(count):
        y, x = rng.integers(0, 14, 2)
        h, w = rng.integers(10, 18, 2)
        images[index, y : y + h, x : x + w] = 250
        boxes[index, 0] = (y / 32, x / 32, (y + h) / 32, (x + w) / 32)
    label = np.array([labels[i % len(labels)] for i in range(count)])
    return tf.data.Dataset.from_tensor_slices(
        {
            "image": images,
            "objects": {"bbox": boxes, "label": label[:, None]},
        }
    )


class MemorySource(workflows.DataSource):
    """The splits of `silhouette_scenes`, eight scenes each, in memory."""

    description = "memory"

    def __init__(self):
        super().__init__({})
        self.loaded = []

    split_names = SPLITS
    class_names = tuple(f"class{i}" for i in range(NUM_CLASSES))

    def prepare(self):
        return self

    def _load(self, split):
        self.loaded.append(split)
        labels = range(NUM_CLASSES)
        if split in ("detection_train", "test_trained"):
            labels = DETECTION_CLASSES
        if split in ("validation_heldout", "test_heldout"):
            labels = (2, 3)
        return _scenes(8, tuple(labels), seed=SPLITS.index(split))

    def default_class_split(self):
        return ClassSplit(
            NUM_CLASSES, DETECTION_CLASSES, class_names=self.class_names
        )


@pytest.fixture(scope="module")
def source():
    return MemorySource()


@pytest.fixture(scope="module")
def classifier(source):
    keras.utils.set_random_seed(0)
    model, history = workflows.pretrain_classifier(
        workflows.load_split(source, "classification_train"),
        workflows.load_split(source, "classification_validation"),
        NUM_CLASSES,
        epochs=1,
        **SMALL,
    )
    return model, history


def test_box_space_is_the_silhouette_space():
    space = workflows.objectness_box_space()
    assert isinstance(space, BoxSpace)
    assert space.num_bins == 12 * 12 * 7 * 7
    assert space.get_config() == BoxSpace(**SILHOUETTE_BOX_SPACE).get_config()


def test_load_split_caps_and_names_the_known_splits(source):
    assert len(list(workflows.load_split(source, "test_heldout"))) == 8
    assert len(list(workflows.load_split(source, "detection_train", 3))) == 3
    with pytest.raises(ValueError, match="`split`.*test_heldout"):
        workflows.load_split(source, "test_mixed")


def test_backbone_rejects_sizes_without_a_preset():
    with pytest.raises(ValueError, match="`image_size`"):
        workflows.objectness_backbone(image_size=48)
    backbone = workflows.objectness_backbone(32, dropout_rate=0.0)
    assert backbone.name == "alexnet"
    assert tuple(backbone.inputs[0].shape[1:]) == (32, 32, 3)


def test_run_objectness_rejects_bad_choices(source, tmp_path):
    with pytest.raises(ValueError, match="`init`"):
        workflows.run_objectness(source, init="imagenet")
    with pytest.raises(ValueError, match="`boxes`"):
        workflows.run_objectness(source, boxes="some")


def test_train_classifier_rejects_a_bad_top_k(source):
    model, _ = workflows.build_classifier("alexnet_small", NUM_CLASSES, 32)
    for top_k in (0, 2.0, True):
        with pytest.raises(ValueError, match="`top_k`"):
            workflows.train_classifier(
                model, None, None, NUM_CLASSES, 1, top_k=top_k
            )


@large
def test_pretrain_classifier_tracks_top5(classifier):
    model, history = classifier
    assert model.outputs[0].shape[-1] == NUM_CLASSES
    for key in ("loss", "val_accuracy", "val_top5_accuracy"):
        assert len(history.history[key]) == 1, key
    # Four classes: the top five always hold the true one.
    assert history.history["val_top5_accuracy"][-1] == 1.0
    assert 0.0 <= history.history["val_accuracy"][-1] <= 1.0


def test_pretrain_without_epochs_gives_an_empty_history(source):
    model, history = workflows.pretrain_classifier(
        workflows.load_split(source, "classification_train"),
        workflows.load_split(source, "classification_validation"),
        NUM_CLASSES,
        epochs=0,
        **SMALL,
    )
    assert history.history == {}
    assert model.compiled


@large
def test_objectness_on_the_classifier_backbone_then_back(classifier, source):
    model, _ = classifier
    before = model.get_layer("alexnet").get_layer("alexnet_conv1")
    before = [w.copy() for w in before.get_weights()]
    detector, history = workflows.train_objectness(
        workflows.load_split(source, "detection_train"),
        NUM_CLASSES,
        epochs=1,
        classifier=model,
        keep_classes=DETECTION_CLASSES,
        **SMALL,
    )
    assert detector.outputs[0].shape[-1] == 12 * 12 * 7 * 7
    assert len(history.history["loss"]) == 1
    assert np.isfinite(history.history["loss"][0])
    # The detector trains the classifier's own backbone.
    conv1 = detector.get_layer("alexnet_features").get_layer("alexnet_conv1")
    shared = model.get_layer("alexnet").get_layer("alexnet_conv1")
    np.testing.assert_array_equal(
        conv1.get_weights()[0], shared.get_weights()[0]
    )
    assert not np.array_equal(conv1.get_weights()[0], before[0])

    # The last experiment: a new classifier starts from those layers.
    new = workflows.classifier_from_detector(detector, NUM_CLASSES, 32)
    copied = new.get_layer("alexnet").get_layer("alexnet_conv5")
    trained = detector.get_layer("alexnet_features").get_layer("alexnet_conv5")
    np.testing.assert_array_equal(
        copied.get_weights()[0], trained.get_weights()[0]
    )
    # fc6 is behind the detector's conv5 feature layer: fresh weights.
    fresh = new.get_layer("alexnet").get_layer("alexnet_fc6").get_weights()
    old = model.get_layer("alexnet").get_layer("alexnet_fc6").get_weights()
    assert not np.array_equal(fresh[0], old[0])

    result = workflows.evaluate_objectness(
        detector, workflows.load_split(source, "test_heldout"), NUM_CLASSES
    )
    assert result["num_ground_truth"] == 8
    assert 0.0 <= result["auc"] <= 1.0


def test_classifier_from_detector_needs_an_alexnet_detector():
    inputs = keras.Input((4,))
    other = keras.Model(inputs, keras.layers.Dense(2)(inputs))
    with pytest.raises(ValueError, match="`detector`"):
        workflows.classifier_from_detector(other, NUM_CLASSES, 32)


def test_validation_arrays_are_numpy_and_padded(source):
    images, y_true = workflows.validation_arrays(
        workflows.load_split(source, "validation_heldout"),
        32,
        NUM_CLASSES,
        count=5,
    )
    assert images.shape == (5, 32, 32, 3) and images.dtype == np.uint8
    assert y_true["boxes"].shape[:2] == y_true["classes"].shape
    assert set(np.unique(y_true["classes"])) <= {-1, 2, 3}
    assert (y_true["classes"] >= 0).sum() == 5


@large
def test_figures_are_written(source, tmp_path):
    keras.utils.set_random_seed(1)
    detector, _ = workflows.train_objectness(
        workflows.load_split(source, "detection_train_all"),
        NUM_CLASSES,
        epochs=0,
        **SMALL,
    )
    gallery = tmp_path / "gallery.png"
    workflows.draw_objectness_gallery(
        detector,
        workflows.load_split(source, "test_heldout"),
        NUM_CLASSES,
        str(gallery),
        count=2,
        image_size=64,
    )
    curves = tmp_path / "pr.png"
    workflows.plot_precision_recall(
        {"a/b": (np.array([1.0, 0.5]), np.array([0.0, 1.0]))}, str(curves)
    )
    for path in (gallery, curves):
        with open(path, "rb") as file:
            assert file.read(8) == b"\x89PNG\r\n\x1a\n"


@large
def test_run_objectness_writes_results_and_model(source, tmp_path):
    output = tmp_path / "run"
    results = workflows.run_objectness(
        source,
        init="random",
        boxes="all",
        epochs=1,
        max_train_examples=6,
        output_dir=str(output),
        save_freq=1,
        command="test",
        arguments={"a": 1},
        **SMALL,
    )
    assert results["command"] == "test" and results["arguments"] == {"a": 1}
    assert results["replicas"] == 1
    assert len(results["loss"]) == 1
    for split in ("test_heldout", "test_trained"):
        assert 0.0 <= results[split]["auc"] <= 1.0
        assert results[split]["num_ground_truth"] == 8
    with open(output / "results.json") as file:
        assert json.load(file) == results
    loaded = keras.saving.load_model(output / "objectness.keras")
    assert loaded.outputs[0].shape[-1] == 12 * 12 * 7 * 7
    # TensorBoard logs; the finished training's backup is gone.
    assert any(
        name.startswith("events.out.tfevents")
        for _, _, names in os.walk(output / "logs")
        for name in names
    )
    assert not os.path.exists(output / "backup" / "objectness" / "worker-0")
