import warnings

import numpy as np
import pytest
import tensorflow as tf

from keras_objectness import BoxSpace
from keras_objectness import data
from keras_objectness.box_space import _iou_yxyx
from keras_objectness.data import crop_regions
from keras_objectness.data import detection_examples
from keras_objectness.data import pipelines
from keras_objectness.data import sample_regions
from keras_objectness.layers import region_crops
from tests.data.voc_fixture import EXAMPLES
from tests.data.voc_fixture import boxes_of
from tests.data.voc_fixture import voc_dataset

SPACE = BoxSpace(grid_shape=(8, 8))
NUM_CLASSES = 20


def _bright_box(image):
    """Tight relative yxyx box of the drawn (bright) pixels."""
    mask = np.asarray(image).max(-1) >= 150
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    height, width = mask.shape
    return np.array(
        [rows[0] / height, cols[0] / width, (rows[-1] + 1) / height,
         (cols[-1] + 1) / width]
    )  # fmt: skip


class TestDetectionExamples:
    def test_voc_layout_to_padded_dicts(self):
        examples = list(detection_examples(voc_dataset(), NUM_CLASSES, 4))
        assert len(examples) == len(EXAMPLES)
        for index, example in enumerate(examples):
            classes = example["bounding_boxes"]["classes"].numpy()
            boxes = example["bounding_boxes"]["boxes"].numpy()
            expected = boxes_of(index)
            assert np.sum(classes >= 0) == len(expected)
            assert np.all(boxes[classes < 0] == -1)
            # Largest object first; every fixture object is found.
            for label, box in expected:
                row = np.flatnonzero(
                    np.all(np.isclose(boxes, box, atol=1e-6), -1)
                )
                assert row.size == 1 and classes[row[0]] == label
            areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
            valid = areas[classes >= 0]
            assert np.all(np.diff(valid) <= 0)

    def test_keep_classes_drops_other_objects(self):
        examples = list(
            detection_examples(voc_dataset(), NUM_CLASSES, 4, keep_classes=[14])
        )
        classes = np.stack([e["bounding_boxes"]["classes"] for e in examples])
        assert set(np.unique(classes)) == {-1, 14}
        dropped = detection_examples(
            voc_dataset(), NUM_CLASSES, 4, keep_classes=[14], drop_empty=True
        )
        assert len(list(dropped)) == 2

    def test_corrupt_images_are_skipped_or_raise(self):
        skipped = detection_examples(
            voc_dataset(corrupt_index=1, skip_decoding=True), NUM_CLASSES
        )
        assert len(list(skipped)) == len(EXAMPLES) - 1
        strict = detection_examples(
            voc_dataset(corrupt_index=1, skip_decoding=True),
            NUM_CLASSES,
            skip_corrupt_images=False,
        )
        with pytest.raises(tf.errors.InvalidArgumentError):
            list(strict)

    def test_labels_outside_the_class_list_raise(self):
        examples = detection_examples(voc_dataset(), num_classes=10)
        with pytest.raises(tf.errors.InvalidArgumentError, match="num_classes"):
            list(examples)

    @pytest.mark.parametrize(
        "kwargs, argument",
        [
            ({"num_classes": 0}, "num_classes"),
            ({"num_classes": 20, "max_boxes": 0}, "max_boxes"),
            ({"num_classes": 20, "keep_classes": [20]}, "keep_classes"),
            ({"num_classes": 20, "keep_classes": []}, "keep_classes"),
        ],
    )
    def test_bad_arguments(self, kwargs, argument):
        with pytest.raises(ValueError, match=f"`{argument}`"):
            detection_examples(voc_dataset(), **kwargs)


class TestPipelines:
    def test_objectness_dataset(self):
        dataset = pipelines.objectness_dataset(
            voc_dataset(), SPACE, image_size=32, batch_size=8,
            num_classes=NUM_CLASSES,
        )  # fmt: skip
        images, targets = next(iter(dataset))
        # The image without objects is dropped.
        assert images.shape == (3, 32, 32, 3) and images.dtype == tf.uint8
        assert targets.shape == (3, SPACE.num_bins)
        np.testing.assert_allclose(targets.numpy().sum(-1), 1.0, atol=1e-5)

    def test_flip_moves_boxes_with_the_image(self):
        plain = next(
            iter(
                pipelines.keras_cv_dataset(
                    voc_dataset(), 64, 4, NUM_CLASSES, max_boxes=4
                )
            )
        )
        flipped = []
        for seed in range(6):
            batch = next(
                iter(
                    pipelines.keras_cv_dataset(
                        voc_dataset(), image_size=64, batch_size=4,
                        num_classes=NUM_CLASSES, max_boxes=4, augment=True,
                        seed=seed,
                    )
                )
            )  # fmt: skip
            for index in (0, 1):
                # Every object box must track its drawn rectangle.
                image = batch["images"][index].numpy()
                boxes = batch["bounding_boxes"]["boxes"][index].numpy()
                if index == 1:
                    np.testing.assert_allclose(
                        _bright_box(image), boxes[0], atol=2 / 64
                    )
                before = plain["bounding_boxes"]["boxes"][index].numpy()
                flipped.append(not np.allclose(boxes, before))
            # Padding rows stay padding.
            assert np.all(batch["bounding_boxes"]["boxes"][2] == -1)
        assert any(flipped) and not all(flipped)

    def test_same_seed_same_batches(self):
        def batches(seed):
            dataset = pipelines.objectness_dataset(
                voc_dataset(), SPACE, 32, 2, NUM_CLASSES,
                shuffle_buffer=4, augment=True, seed=seed,
            )  # fmt: skip
            return [t.numpy() for _, t in dataset]

        first, again = batches(5), batches(5)
        for a, b in zip(first, again):
            np.testing.assert_array_equal(a, b)

    def test_classification_dataset_takes_largest_object(self):
        dataset = pipelines.classification_dataset(
            voc_dataset(), image_size=32, batch_size=8, num_classes=NUM_CLASSES
        )
        images, labels = next(iter(dataset))
        assert images.shape == (3, 32, 32, 3)
        np.testing.assert_array_equal(labels.numpy(), [14, 7, 14])

    def test_region_dataset_labels_and_background(self):
        dataset = pipelines.region_dataset(
            voc_dataset(), crop_size=24, batch_size=64,
            num_classes=NUM_CLASSES, regions_per_image=16,
            positive_fraction=0.5, keep_classes=[14, 11],
        )  # fmt: skip
        crops, labels = next(iter(dataset))
        assert crops.shape == (64, 24, 24, 3) and crops.dtype == tf.uint8
        labels = labels.numpy()
        assert set(np.unique(labels)) <= {11, 14, NUM_CLASSES}
        # Image 0 has two kept objects: half its regions are positives.
        assert np.sum(labels[:16] != NUM_CLASSES) == 8
        # Image 1's object (class 7) is not kept: all background.
        assert np.all(labels[16:32] == NUM_CLASSES)

    def test_min_background_iou_keeps_background_that_touches_an_object(
        self,
    ):
        # One white object on black: a region touching it (IoU >= 0.1) has
        # white pixels in its crop; one far from it is all black.
        image = np.zeros((64, 64, 3), "uint8")
        image[24:40, 24:40] = 255
        scene = tf.data.Dataset.from_tensors(
            {
                "image": image,
                "objects": {
                    "bbox": np.array([[0.375, 0.375, 0.625, 0.625]], "float32"),
                    "label": np.array([3], "int64"),
                },
            }
        ).repeat(8)

        def background_crops(**kwargs):
            dataset = pipelines.region_dataset(
                scene, crop_size=16, batch_size=1000, num_classes=NUM_CLASSES,
                regions_per_image=16, positive_fraction=0.25,
                context_padding=0.0, seed=3, **kwargs,
            )  # fmt: skip
            crops, labels = next(iter(dataset))
            return crops.numpy()[labels.numpy() == NUM_CLASSES]

        everything = background_crops()
        touching = background_crops(min_background_iou=0.1)
        assert (everything.max(axis=(1, 2, 3)) == 0).any()
        assert len(touching) > 0
        assert (touching.max(axis=(1, 2, 3)) > 0).all()
        assert len(touching) < len(everything)

    @pytest.mark.parametrize("value", [0.5, -0.1, True, "0.1", None])
    def test_min_background_iou_is_checked(self, value):
        with pytest.raises(ValueError, match="`min_background_iou` must be"):
            pipelines.region_dataset(
                voc_dataset(), 16, 4, NUM_CLASSES, min_background_iou=value
            )

    def test_distribute_datasets_from_function(self):
        strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])

        def dataset_fn(input_context):
            return pipelines.objectness_dataset(
                voc_dataset(), SPACE, 32, batch_size=2,
                num_classes=NUM_CLASSES, input_context=input_context,
            )  # fmt: skip

        dataset = strategy.distribute_datasets_from_function(dataset_fn)
        images, targets = next(iter(dataset))
        per_replica = strategy.experimental_local_results(targets)
        assert len(per_replica) == 2
        assert all(t.shape[0] == 1 for t in per_replica)

    @pytest.mark.parametrize(
        "kwargs, argument",
        [
            ({"batch_size": 0}, "batch_size"),
            ({"image_size": -3}, "image_size"),
            ({"regions_per_image": 0}, "regions_per_image"),
            ({"positive_fraction": 1.5}, "positive_fraction"),
            ({"crop_size": 0}, "crop_size"),
        ],
    )
    def test_bad_arguments(self, kwargs, argument):
        if "image_size" in kwargs:
            call = pipelines.objectness_dataset
            arguments = {"box_space": SPACE, "image_size": 32}
        else:
            call = pipelines.region_dataset
            arguments = {"crop_size": 16}
        arguments.update(batch_size=4, num_classes=NUM_CLASSES)
        arguments.update(kwargs)
        with pytest.raises(ValueError, match=f"`{argument}`"):
            call(voc_dataset(), **arguments)


class TestRegions:
    def test_positive_regions_overlap_their_object(self):
        boxes = np.full((4, 4), -1.0, "float32")
        boxes[:2] = [[0.1, 0.1, 0.5, 0.4], [0.5, 0.5, 0.9, 0.95]]
        classes = np.array([3, 7, -1, -1], "int32")
        regions, labels, ious = sample_regions(
            boxes, classes, 64, background_class=20, positive_fraction=0.25,
            seed=tf.constant([1, 2]),
        )  # fmt: skip
        regions, labels, ious = regions.numpy(), labels.numpy(), ious.numpy()
        positive = labels != 20
        assert positive.sum() == 16
        assert np.all(ious[positive] >= 0.5) and np.all(ious[~positive] < 0.5)
        for label, box in ((3, boxes[0]), (7, boxes[1])):
            mine = labels == label
            assert np.all(_iou_yxyx(regions[mine], box[None]) >= 0.5)
        # Some background regions touch an object: hard negatives.
        assert np.any((ious > 0.1) & ~positive)

    def test_image_without_objects_gives_background(self):
        boxes = np.full((2, 4), -1.0, "float32")
        _, labels, _ = sample_regions(
            boxes, np.array([-1, -1], "int32"), 8, background_class=5,
            seed=tf.constant([0, 1]),
        )  # fmt: skip
        assert np.all(labels.numpy() == 5)

    def test_crop_with_and_without_context(self):
        image = np.zeros((1, 40, 40, 3), "uint8")
        image[0, 10:30, 10:30] = 255
        region = np.array([[[0.25, 0.25, 0.75, 0.75]]], "float32")
        tight = crop_regions(image, region, 8, context_padding=0.0).numpy()
        assert tight.shape == (1, 1, 8, 8, 3) and tight.dtype == np.uint8
        assert np.all(tight == 255)
        context = crop_regions(image, region, 16, context_padding=0.25)
        context = context.numpy()[0, 0]
        assert np.all(context[0] == 0) and np.all(context[8, 8] == 255)
        # The object spans 2/3 of the padded region: 10 or 11 of 16 rows.
        assert np.sum(context[:, 8, 0] == 255) in (10, 11)

    def test_crop_matches_tf_crop_and_resize(self):
        rng = np.random.default_rng(0)
        images = rng.integers(0, 256, (2, 30, 50, 3)).astype("float32")
        # (low, high) pairs for y and x, kept off the border: TF returns its
        # extrapolation value for the outer half pixel, we interpolate.
        corners = np.sort(rng.random((2, 5, 2, 2)), axis=2)
        regions = (0.1 + 0.8 * corners.reshape(2, 5, 4)).astype("float32")
        ours = np.asarray(region_crops.crop_and_resize(images, regions, 7))
        # The same sampling points in crop_and_resize's corner convention.
        size = np.array([30, 50, 30, 50], "float32")
        extent = (regions[..., 2:] - regions[..., :2]) * size[:2]
        first = regions[..., :2] * size[:2] + 0.5 * extent / 7 - 0.5
        last = regions[..., :2] * size[:2] + 6.5 * extent / 7 - 0.5
        boxes = np.concatenate([first, last], -1) / (size - 1)
        reference = tf.image.crop_and_resize(
            images, boxes.reshape(-1, 4), np.repeat([0, 1], 5), (7, 7)
        ).numpy()
        np.testing.assert_allclose(
            ours.reshape(-1, 7, 7, 3), reference, atol=1e-3, rtol=1e-5
        )


def test_random_square_crops():
    from keras_objectness.data import random_square_crops

    # A horizontal ramp: a crop's mean tells where it was cut.
    ramp = np.tile(np.linspace(0, 255, 40, dtype="float32"), (40, 1))
    images = np.repeat(ramp[None, :, :, None], 3, axis=-1).astype("uint8")
    images = np.repeat(images, 16, axis=0)
    labels = np.arange(16, dtype="int32")
    batches = tf.data.Dataset.from_tensor_slices((images, labels)).batch(8)
    first = list(random_square_crops(batches, 10, min_side=0.5, seed=3))
    again = list(random_square_crops(batches, 10, min_side=0.5, seed=3))
    other = list(random_square_crops(batches, 10, min_side=0.5, seed=4))
    crops = np.concatenate([c.numpy() for c, _ in first])
    assert crops.shape == (16, 10, 10, 3) and crops.dtype == np.uint8
    np.testing.assert_array_equal(
        np.concatenate([y.numpy() for _, y in first]), labels
    )
    np.testing.assert_array_equal(
        crops, np.concatenate([c.numpy() for c, _ in again])
    )
    assert not np.array_equal(
        crops, np.concatenate([c.numpy() for c, _ in other])
    )
    # Crops differ from one another (random places and sizes) and each
    # spans at least half the ramp's range (min_side=0.5).
    assert len({round(float(c.mean()), 2) for c in crops}) > 8
    spans = crops[..., 0].max(axis=(1, 2)).astype(int) - crops[..., 0].min(
        axis=(1, 2)
    )
    assert spans.min() >= 0.5 * 255 * 0.8


def test_random_square_crops_bad_arguments():
    from keras_objectness.data import random_square_crops

    dataset = tf.data.Dataset.from_tensor_slices(
        (np.zeros((2, 8, 8, 3), "uint8"), np.zeros(2, "int32"))
    ).batch(2)
    with pytest.raises(ValueError, match="`crop_size` must be a positive"):
        random_square_crops(dataset, 0)
    with pytest.raises(ValueError, match="`min_side` must be in"):
        random_square_crops(dataset, 4, min_side=1.5)


class TestIgnoredBoxesAndChecks:
    def test_ignored_boxes_are_neither_positives_nor_background(self):
        boxes = np.full((3, 4), -1.0, "float32")
        boxes[:2] = [[0.0, 0.0, 0.6, 0.6], [0.6, 0.6, 0.95, 0.95]]
        classes = np.array([3, 7, -1], "int32")
        regions, labels, _ = sample_regions(
            boxes, classes, 64, background_class=20, positive_fraction=0.25,
            seed=tf.constant([5, 6]), ignore=np.array([True, False, False]),
        )  # fmt: skip
        regions, labels = regions.numpy(), labels.numpy()
        assert 3 not in labels and np.sum(labels == 7) == 16
        share = _inside_share(regions, boxes[0])
        assert np.all(share[labels == 20] < 0.5)
        # Without the flag, class 3 is a positive.
        _, plain, _ = sample_regions(
            boxes, classes, 64, background_class=20, seed=tf.constant([5, 6])
        )
        assert 3 in plain.numpy()

    def test_an_image_covered_by_ignored_boxes_gives_no_background(self):
        boxes = np.array([[0.0, 0.0, 1.0, 1.0]], "float32")
        _, labels, _ = sample_regions(
            boxes, np.array([2], "int32"), 8, background_class=5,
            seed=tf.constant([0, 1]), ignore=np.array([True]),
        )  # fmt: skip
        np.testing.assert_array_equal(labels.numpy(), [-1] * 8)

    def test_annotation_summary(self):
        summary = data.annotation_summary(voc_dataset())
        assert summary == {
            "num_examples": 4, "num_annotated": 3, "num_objects": 6,
            "num_ignored": 0, "max_objects": 3,
        }  # fmt: skip
        assert data.annotation_summary(voc_dataset(), 2)["num_examples"] == 2
        only = data.annotation_summary(voc_dataset(), keep_classes=[14])
        assert only["num_annotated"] == 2 and only["max_objects"] == 1
        with pytest.raises(ValueError, match="`num_examples`"):
            data.annotation_summary(voc_dataset(), 0)

    def test_a_split_without_annotations_raises(self):
        empty = voc_dataset().skip(2).take(1)  # the image without objects
        for call, arguments in (
            (pipelines.region_dataset, (16, 4, NUM_CLASSES)),
            (pipelines.objectness_dataset, (SPACE, 32, 4, NUM_CLASSES)),
            (pipelines.classification_dataset, (32, 4, NUM_CLASSES)),
        ):
            with pytest.raises(ValueError, match="box annotations"):
                call(empty, *arguments)
        # The look can be switched off; keras_cv_dataset never needs boxes.
        pipelines.region_dataset(
            empty, 16, 4, NUM_CLASSES, check_annotations=False
        )
        pipelines.keras_cv_dataset(empty, 32, 4, NUM_CLASSES)
        with pytest.raises(ValueError, match="`check_annotations`"):
            pipelines.keras_cv_dataset(
                empty, 32, 4, NUM_CLASSES, check_annotations=1
            )

    def test_a_dataset_without_objects_raises_from_its_spec(self):
        images = tf.data.Dataset.from_tensors(
            {"image": tf.zeros((8, 8, 3), tf.uint8)}
        )
        with pytest.raises(ValueError, match="`objects/bbox`"):
            pipelines.region_dataset(images, 16, 4, NUM_CLASSES)
        with pytest.raises(ValueError, match="`objects/bbox`"):
            detection_examples(images, NUM_CLASSES)

    def test_max_boxes_warning(self):
        with pytest.warns(UserWarning, match="`max_boxes=2` is below the 3"):
            pipelines.region_dataset(
                voc_dataset(), 16, 4, NUM_CLASSES, max_boxes=2
            )
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            pipelines.region_dataset(
                voc_dataset(), 16, 4, NUM_CLASSES, max_boxes=3
            )
            pipelines.keras_cv_dataset(
                voc_dataset(), 32, 4, NUM_CLASSES, max_boxes=1,
                check_annotations=False,
            )  # fmt: skip


def _inside_share(regions, box):
    top = np.maximum(regions[:, 0], box[0])
    left = np.maximum(regions[:, 1], box[1])
    bottom = np.minimum(regions[:, 2], box[2])
    right = np.minimum(regions[:, 3], box[3])
    inside = np.clip(bottom - top, 0, None) * np.clip(right - left, 0, None)
    area = (regions[:, 2] - regions[:, 0]) * (regions[:, 3] - regions[:, 1])
    return inside / area
