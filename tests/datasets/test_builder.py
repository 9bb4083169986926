import pathlib
import socket

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

import keras_objectness.datasets  # noqa: F401  registers the builder
from keras_objectness.datasets import silhouette_scenes
from keras_objectness.datasets.silhouette_scenes import (
    builder as builder_module,
)
from keras_objectness.datasets.silhouette_scenes import png
from keras_objectness.datasets.silhouette_scenes import sources
from keras_objectness.datasets.silhouette_scenes import splits
from keras_objectness.workflows.data_source import KNOWN_SPLITS

TINY_COUNT = dict(splits.TINY_SPLIT_SIZES)


def _no_network(*args, **kwargs):
    raise OSError("network access is not allowed in this test")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """Builds the tiny config with Python's network access cut off."""
    data_dir = tmp_path_factory.mktemp("tfds")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(socket.socket, "connect", _no_network)
        patch.setattr(socket, "getaddrinfo", _no_network)
        builder = tfds.builder("silhouette_scenes/tiny", data_dir=data_dir)
        builder.download_and_prepare()
        loaded = {
            split: list(
                tfds.as_numpy(
                    tfds.load(
                        "silhouette_scenes/tiny",
                        split=split,
                        data_dir=data_dir,
                        download=False,
                    )
                )
            )
            for split in splits.SPLIT_NAMES
        }
    return builder, loaded


def test_registered_under_its_name():
    assert "silhouette_scenes" in tfds.list_builders()
    builder_cls = tfds.builder_cls("silhouette_scenes")
    assert builder_cls is silhouette_scenes.SilhouetteScenes
    assert [c.name for c in builder_cls.BUILDER_CONFIGS] == [
        "default",
        "workflow",
        "tiny",
    ]


def test_info_and_counts(tiny):
    builder, loaded = tiny
    info = builder.info
    assert info.features["image"].shape == (64, 64, 3)
    assert info.features["objects"]["label"].names == list(sources.CLASS_NAMES)
    assert info.features["labels"].feature.num_classes == 20
    assert set(info.splits) == set(splits.SPLIT_NAMES)
    for split in splits.SPLIT_NAMES:
        assert info.splits[split].num_examples == TINY_COUNT[split]
        assert len(loaded[split]) == TINY_COUNT[split]


def test_examples_read_back(tiny):
    _, loaded = tiny
    class_split = silhouette_scenes.default_class_split()
    for split, examples in loaded.items():
        ids = set()
        for example in examples:
            assert example["image"].shape == (64, 64, 3)
            assert example["image"].dtype == np.uint8
            boxes = example["objects"]["bbox"]
            labels = example["objects"]["label"]
            assert boxes.dtype == np.float32 and boxes.shape[1:] == (4,)
            assert len(boxes) == len(labels) >= 1
            assert np.all((boxes >= 0) & (boxes <= 1))
            assert np.all(boxes[:, 2] > boxes[:, 0])
            assert np.all(boxes[:, 3] > boxes[:, 1])
            assert example["objects"]["instance_id"].dtype == np.int64
            np.testing.assert_array_equal(
                np.sort(example["labels"]), np.unique(labels)
            )
            group = sources.BACKGROUND_GROUPS[splits.SPLITS[split].backgrounds]
            assert example["background"].decode() in group
            ids.add(example["image/id"].decode())
        assert ids == {f"{split}/{i:06d}" for i in range(TINY_COUNT[split])}
    detection = np.concatenate(
        [e["objects"]["label"] for e in loaded["detection_train"]]
    )
    heldout = np.concatenate(
        [e["objects"]["label"] for e in loaded["test_heldout"]]
    )
    assert class_split.is_detection_class(detection).all()
    assert class_split.is_heldout_class(heldout).all()
    every = np.concatenate(
        [e["objects"]["label"] for e in loaded["detection_train_all"]]
    )
    assert class_split.is_detection_class(every).any()
    assert class_split.is_heldout_class(every).any()


def test_no_instance_crosses_splits_on_disk(tiny):
    _, loaded = tiny
    owner = {}
    for split, examples in loaded.items():
        # Splits sharing a pool are alternatives (the two detection training
        # sets); no instance may cross from one pool to another.
        pool = splits.SPLITS[split].pool
        for example in examples:
            for instance in example["objects"]["instance_id"].tolist():
                assert owner.setdefault(instance, pool) == pool


def test_disk_holds_the_generator_bytes(tiny):
    builder, loaded = tiny
    config = builder.builder_config
    generator = splits.SceneGenerator(
        image_size=config.image_size, seed=config.seed
    )
    for split in ("test_mixed", "classification_train"):
        for example in loaded[split][:3]:
            index = int(example["image/id"].decode().split("/")[1])
            expected = generator.example(split, index)
            np.testing.assert_array_equal(example["image"], expected["image"])
            np.testing.assert_array_equal(
                example["objects"]["bbox"], expected["objects"]["bbox"]
            )


@pytest.mark.parametrize(
    "kwargs, argument",
    [
        ({"image_size": 8}, "image_size"),
        ({"min_objects": 2, "max_objects": 1}, "max_objects"),
        ({"class_split": "halves"}, "class_split"),
        ({"split_sizes": (("train", 5),)}, "split_sizes"),
        ({"split_sizes": (("test_mixed", 0),)}, "split_sizes"),
    ],
)
def test_bad_config(kwargs, argument):
    with pytest.raises(ValueError, match=f"`{argument}` must"):
        silhouette_scenes.SilhouetteScenesConfig(name="bad", **kwargs)


def _build_files(data_dir, config=None):
    """Builds `config` (the tiny one by default); returns its record files."""
    builder = (
        tfds.builder("silhouette_scenes/tiny", data_dir=data_dir)
        if config is None
        else silhouette_scenes.SilhouetteScenes(
            config=config, data_dir=data_dir
        )
    )
    builder.download_and_prepare()
    files = sorted(pathlib.Path(builder.data_dir).glob("*.tfrecord*"))
    return {path.name: path.read_bytes() for path in files}


def test_threaded_build_writes_the_serial_bytes(tmp_path):
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(builder_module.WORKERS_ENV, "1")
        serial = _build_files(tmp_path / "serial")
        patch.setenv(builder_module.WORKERS_ENV, "3")
        threaded = _build_files(tmp_path / "threaded")
    assert len(serial) == len(splits.SPLIT_NAMES)
    assert serial.keys() == threaded.keys()
    for name in serial:
        assert serial[name] == threaded[name], name
    # The records hold the PNG that TensorFlow writes for the generator's
    # image, in both paths.
    generator = splits.SceneGenerator(image_size=64, seed=0)
    for split in splits.SPLIT_NAMES:
        (name,) = [n for n in threaded if f"-{split}.tfrecord" in n]
        for index in (0, 5, 23):
            image = generator.example(split, index)["image"]
            assert tf.io.encode_png(image).numpy() in threaded[name]


def test_encoder_mismatch_falls_back_to_tensorflow(tmp_path):
    config = silhouette_scenes.SilhouetteScenesConfig(
        name="fallback",
        image_size=32,
        split_sizes=(("test_mixed", 7), ("classification_train", 3)),
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(builder_module.WORKERS_ENV, "1")
        serial = _build_files(tmp_path / "serial", config)
        patch.setenv(builder_module.WORKERS_ENV, "2")
        calls = []

        def broken(image):
            calls.append(image)
            return b"not the bytes TensorFlow writes"

        patch.setattr(png, "encode_png", broken)
        patch.setattr(png, "png_from_rows", broken)
        fallback = _build_files(tmp_path / "fallback", config)
    assert len(calls) == 2  # one check per split, then TensorFlow
    assert serial == fallback


@pytest.mark.parametrize("value", ["0", "-2", "two", "1.5"])
def test_bad_worker_count(value):
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(builder_module.WORKERS_ENV, value)
        with pytest.raises(
            ValueError, match="`SILHOUETTE_SCENES_WORKERS` must be an integer"
        ):
            builder_module.num_workers()


def test_worker_count():
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(builder_module.WORKERS_ENV, " 3 ")
        assert builder_module.num_workers() == 3
        patch.delenv(builder_module.WORKERS_ENV)
        assert 2 <= builder_module.num_workers() <= 4


def test_workflow_config_is_the_default_splits_that_the_workflow_reads():
    configs = {
        config.name: config
        for config in silhouette_scenes.SilhouetteScenes.BUILDER_CONFIGS
    }
    default, workflow = configs["default"], configs["workflow"]
    # Every role of the workflow but the optional oracle (boxes of all
    # classes), with the default config's counts.
    roles = dict(KNOWN_SPLITS["silhouette_scenes"])
    roles.pop("oracle_train")
    assert dict(workflow.split_sizes) == {
        name: count
        for name, count in default.split_sizes
        if name in roles.values()
    }
    for field in ("image_size", "min_objects", "max_objects", "seed"):
        assert getattr(workflow, field) == getattr(default, field)
    assert workflow.class_split == default.class_split


def test_a_config_with_fewer_splits_writes_the_same_records(tmp_path):
    every = _build_files(tmp_path / "every")
    config = silhouette_scenes.SilhouetteScenesConfig(
        name="fewer",
        image_size=64,
        split_sizes=tuple(
            (name, count)
            for name, count in splits.TINY_SPLIT_SIZES
            if name in ("test_mixed", "detection_train")
        ),
    )
    fewer = _build_files(tmp_path / "fewer", config)
    assert len(fewer) == 2
    for name, records in fewer.items():
        split = name.split("-")[1].split(".tfrecord")[0]
        (same,) = [n for n in every if f"-{split}.tfrecord" in n]
        assert records == every[same], split
