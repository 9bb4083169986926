"""The real TFDS `voc/2007` and `coco/2017` builders and a COCO-JSON export,
prepared offline from tiny raw files (`tests.data.raw_fixtures`), through
every pipeline and the evaluator."""

import warnings

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from keras_objectness import BoxSpace
from keras_objectness import data
from keras_objectness.evaluation import DetectionEvaluator
from keras_objectness.evaluation import proposal_recall
from tests.data import raw_fixtures

SPACE = BoxSpace(grid_shape=(4, 4))


@pytest.fixture(scope="module")
def voc(tmp_path_factory):
    root = tmp_path_factory.mktemp("voc")
    raw = raw_fixtures.write_voc2007(root / "raw")
    return raw_fixtures.prepare_builder("voc/2007", raw, root / "tfds")


@pytest.fixture(scope="module")
def coco(tmp_path_factory):
    root = tmp_path_factory.mktemp("coco")
    raw = raw_fixtures.write_coco2017(root / "raw")
    return raw_fixtures.prepare_builder("coco/2017", raw, root / "tfds")


@pytest.fixture(scope="module")
def coco_json(tmp_path_factory):
    return raw_fixtures.write_coco_json(tmp_path_factory.mktemp("json"))


def _by_size(expected):
    """Expected images keyed by (height, width) (TFDS shuffles the order)."""
    return {(h, w): objects for h, w, objects in expected}


def _standardized(raw, num_classes, max_boxes=8):
    """Per image `(height, width)`: sorted `(label, box, ignore)` rows."""
    result = {}
    for example in raw:
        out = data.standardize_example(example, num_classes, max_boxes)
        boxes = out["bounding_boxes"]
        classes = boxes["classes"].numpy()
        rows = [
            (int(c), tuple(float(v) for v in b), bool(i))
            for c, b, i in zip(
                classes, boxes["boxes"].numpy(), boxes["ignore"].numpy()
            )
            if c >= 0
        ]
        result[tuple(out["images"].shape[:2])] = rows
    return result


def _assert_same_objects(got, expected):
    """Same `(label, box, ignore)` rows, in any order, boxes to 1e-5."""

    def key(row):
        return (row[0], row[2], tuple(np.round(row[1], 2)))

    got, expected = sorted(got, key=key), sorted(expected, key=key)
    assert [(r[0], r[2]) for r in got] == [(r[0], r[2]) for r in expected]
    np.testing.assert_allclose(
        np.reshape([r[1] for r in got], (-1, 4)),
        np.reshape([r[1] for r in expected], (-1, 4)),
        atol=1e-5,
    )


def _check_all_pipelines(raw, num_classes, ignored_classes, found_classes):
    """Every pipeline runs; classes only ever ignored never become labels."""
    images, targets = next(
        iter(data.objectness_dataset(raw, SPACE, 32, 8, num_classes))
    )
    assert images.shape[1:] == (32, 32, 3) and images.dtype == tf.uint8
    np.testing.assert_allclose(targets.numpy().sum(-1), 1.0, atol=1e-5)

    _, labels = next(iter(data.classification_dataset(raw, 32, 8, num_classes)))
    assert not set(labels.numpy()) & set(ignored_classes)

    crops, labels = next(
        iter(
            data.region_dataset(
                raw, 16, 256, num_classes, regions_per_image=16,
                positive_fraction=0.5,
            )
        )
    )  # fmt: skip
    assert crops.shape[1:] == (16, 16, 3)
    labels = set(labels.numpy())
    assert num_classes in labels  # background
    assert set(found_classes) <= labels
    assert not labels & set(ignored_classes)

    batch = next(iter(data.keras_cv_dataset(raw, 32, 8, num_classes, 8)))
    boxes = batch["bounding_boxes"]
    assert boxes["ignore"].dtype == tf.bool
    assert boxes["ignore"].shape == boxes["classes"].shape
    assert np.any(boxes["ignore"].numpy())


def _perfect_detections(bounding_boxes):
    """Every ground-truth box (ignored ones too) detected exactly."""
    classes = bounding_boxes["classes"].numpy()
    return {
        "boxes": bounding_boxes["boxes"].numpy(),
        "classes": classes,
        "confidence": np.where(classes >= 0, 0.9, -1.0),
    }


class TestVoc2007:
    def test_difficult_objects_are_ignored(self, voc):
        for split in ("train", "validation", "test"):
            got = _standardized(voc.as_dataset(split=split), 20)
            name = "val" if split == "validation" else split
            expected = _by_size(raw_fixtures.VOC2007[name])
            assert got.keys() == expected.keys()
            for size, objects in expected.items():
                _assert_same_objects(got[size], objects)

    def test_every_pipeline(self, voc):
        # Train: person and car are objects, the dog is difficult.
        _check_all_pipelines(
            voc.as_dataset(split="train"), 20, ignored_classes=[11],
            found_classes=[14, 6],
        )  # fmt: skip

    def test_evaluation_ignores_difficult(self, voc):
        evaluator = DetectionEvaluator(num_classes=20)
        batches = data.keras_cv_dataset(voc.as_dataset(split="test"), 64, 8, 20)
        for batch in batches:
            ground_truth = batch["bounding_boxes"]
            evaluator.update_state(
                ground_truth, _perfect_detections(ground_truth)
            )
            recall = proposal_recall(ground_truth["boxes"], ground_truth)
        result = evaluator.result()
        ap = result["average_precision"]
        # Person and horse found; the difficult bird is no object to find,
        # and detecting it is no false positive.
        assert ap[14] == 1.0 and ap[12] == 1.0 and np.isnan(ap[2])
        assert result["num_ground_truth"][2] == 0
        assert result["num_detections"][2] == 0
        assert result["mean_average_precision"] == 1.0
        assert recall == 1.0

    def test_max_boxes_warning(self, voc):
        raw = voc.as_dataset(split="train")
        with pytest.warns(UserWarning, match="max_boxes=1"):
            data.keras_cv_dataset(raw, 32, 2, 20, max_boxes=1)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            data.keras_cv_dataset(raw, 32, 2, 20, max_boxes=2)
            # One object per image is all it reads: no warning.
            data.classification_dataset(raw, 32, 2, 20)
        summary = data.annotation_summary(raw)
        assert summary == {
            "num_examples": 2, "num_annotated": 2, "num_objects": 3,
            "num_ignored": 1, "max_objects": 2,
        }  # fmt: skip


class TestCoco2017:
    def test_crowd_objects_are_ignored(self, coco):
        for split in ("train", "validation"):
            got = _standardized(coco.as_dataset(split=split), 80)
            expected = _by_size(raw_fixtures.COCO2017[split])
            assert got.keys() == expected.keys()
            for size, objects in expected.items():
                _assert_same_objects(got[size], objects)

    def test_every_pipeline(self, coco):
        # Train: a person, a crowd of people, a dog, a car.
        _check_all_pipelines(
            coco.as_dataset(split="train"), 80, ignored_classes=[],
            found_classes=[0, 16, 2],
        )  # fmt: skip

    def test_crowd_regions_are_not_background(self, coco):
        raw = coco.as_dataset(split="train")
        examples = data.detection_examples(raw, 80, max_boxes=4)
        crowd = None
        for example in examples:
            ignore = example["bounding_boxes"]["ignore"].numpy()
            if ignore.any():
                crowd = example["bounding_boxes"]["boxes"].numpy()[ignore][0]
        assert crowd is not None
        regions, labels, _ = data.sample_regions(
            np.array([crowd], "float32"),
            np.array([0], "int32"),
            64,
            background_class=80,
            seed=tf.constant([3, 4]),
            ignore=np.array([True]),
        )
        share = _inside_share(regions.numpy(), crowd)
        labels = labels.numpy()
        drawn = labels >= 0
        assert np.all(labels[drawn] == 80)
        assert np.all(share[drawn] < 0.5)

    def test_unannotated_split_raises(self, coco):
        raw = coco.as_dataset(split="test")
        with pytest.raises(ValueError, match="box annotations"):
            data.region_dataset(raw, 16, 8, 80)
        with pytest.raises(ValueError, match="box annotations"):
            data.objectness_dataset(raw, SPACE, 32, 8, 80)
        with pytest.raises(ValueError, match="box annotations"):
            data.classification_dataset(raw, 32, 8, 80)
        # Inference on it is fine: all rows padding.
        batch = next(iter(data.keras_cv_dataset(raw, 32, 8, 80)))
        assert batch["images"].shape[0] == 2
        assert np.all(batch["bounding_boxes"]["classes"].numpy() == -1)

    def test_evaluation_ignores_crowd(self, coco):
        evaluator = DetectionEvaluator(num_classes=80, method="coco")
        raw = coco.as_dataset(split="validation")
        for batch in data.keras_cv_dataset(raw, 64, 8, 80):
            ground_truth = batch["bounding_boxes"]
            detections = _perfect_detections(ground_truth)
            evaluator.update_state(ground_truth, detections)
        result = evaluator.result()
        # Cat and bottle found; the crowd of people is nothing to find and
        # detecting it is no false positive.
        assert result["average_precision"][15] == 1.0
        assert result["average_precision"][39] == 1.0
        assert np.isnan(result["average_precision"][0])
        assert result["num_detections"][0] == 0


def _inside_share(regions, box):
    top = np.maximum(regions[:, 0], box[0])
    left = np.maximum(regions[:, 1], box[1])
    bottom = np.minimum(regions[:, 2], box[2])
    right = np.minimum(regions[:, 3], box[3])
    inside = np.clip(bottom - top, 0, None) * np.clip(right - left, 0, None)
    area = (regions[:, 2] - regions[:, 0]) * (regions[:, 3] - regions[:, 1])
    return inside / area


class TestCocoJson:
    def test_source(self, coco_json):
        annotation_file, image_dir = coco_json
        raw, source = data.coco_json_dataset(
            annotation_file, image_dir, with_info=True
        )
        assert source.class_names == raw_fixtures.JSON_CLASSES
        assert source.category_ids == (3, 7, 12)
        assert source.num_classes == 3 and source.num_images == 3
        assert source.num_objects == 4 and source.max_objects == 3
        examples = list(tfds.as_numpy(raw))
        # In image-id order: 2 (grayscale PNG), 5 (JPEG), 9 (RGBA PNG).
        assert [e["image/id"] for e in examples] == [2, 5, 9]
        assert [e["image"].shape for e in examples] == [
            (50, 40, 3), (60, 90, 3), (32, 48, 3),
        ]  # fmt: skip
        gray = examples[0]["image"]
        np.testing.assert_array_equal(gray[..., 0], gray[..., 2])
        for example, (height, width, objects) in zip(
            examples, raw_fixtures.COCO_JSON
        ):
            assert example["image"].dtype == np.uint8
            objects_out = example["objects"]
            assert objects_out["bbox"].dtype == np.float32
            assert objects_out["label"].dtype == np.int64
            np.testing.assert_allclose(
                objects_out["bbox"],
                np.reshape([box for _, box, _ in objects], (-1, 4)),
                atol=1e-6,
            )
            np.testing.assert_array_equal(
                objects_out["label"], [label for label, _, _ in objects]
            )
            np.testing.assert_array_equal(
                objects_out["is_crowd"], [crowd for _, _, crowd in objects]
            )
        # The cat past the right edge is clipped to it.
        assert examples[1]["objects"]["bbox"][2, 3] == 1.0

    def test_every_pipeline(self, coco_json):
        raw = data.coco_json_dataset(*coco_json)
        # Dog and cats are objects; the bird only appears as a crowd.
        _check_all_pipelines(raw, 3, ignored_classes=[2], found_classes=[0, 1])

    def test_shuffle_files(self, coco_json):
        ids = [
            [int(e["image/id"]) for e in data.coco_json_dataset(
                *coco_json, shuffle_files=True, seed=seed
            )]
            for seed in range(6)
        ]  # fmt: skip
        assert all(sorted(i) == [2, 5, 9] for i in ids)
        assert len({tuple(i) for i in ids}) > 1

    def test_bad_inputs(self, coco_json, tmp_path):
        annotation_file, image_dir = coco_json
        with pytest.raises(ValueError, match="`image_dir` must hold"):
            data.coco_json_dataset(annotation_file, str(tmp_path))
        with pytest.raises(ValueError, match="`annotation_file` must be an"):
            data.coco_json_dataset(str(tmp_path / "none.json"), image_dir)
        with pytest.raises(ValueError, match="`image_dir` must be an"):
            data.coco_json_dataset(annotation_file, str(tmp_path / "none"))
        with pytest.raises(TypeError, match="`annotation_file` must be a"):
            data.CocoJsonSource(3, image_dir)
        bad = tmp_path / "bad.json"
        bad.write_text('{"images": [], "annotations": [], "categories": []}')
        with pytest.raises(ValueError, match="`categories`"):
            data.CocoJsonSource(str(bad), image_dir)
        unknown = tmp_path / "unknown.json"
        unknown.write_text(
            '{"images": [{"id": 1, "file_name": "a.jpg", "height": 60, '
            '"width": 90}], "categories": [{"id": 1, "name": "x"}], '
            '"annotations": [{"id": 1, "image_id": 1, "category_id": 5, '
            '"bbox": [0, 0, 5, 5], "iscrowd": 0}]}'
        )
        with pytest.raises(ValueError, match="unknown category"):
            data.CocoJsonSource(str(unknown), image_dir)
