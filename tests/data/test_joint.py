import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_objectness.class_split import ClassSplit
from keras_objectness.data import fixed_share_batches
from keras_objectness.data import joint_dataset
from keras_objectness.data import pipelines
from keras_objectness.data.joint import classification_examples_per_batch
from keras_objectness.losses import JointDetectionLoss
from tests.data.voc_fixture import voc_dataset
from tests.test_case import large

K = 4
B = (0, 2)


def _regions(count=24, seed=0):
    """Unbatched regions: label in B or background; pixel 0 = 1 marks them."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 255, (count, 6, 6, 3)).astype("uint8")
    images[:, 0, 0, 0] = 1
    labels = np.array(B + (K,), "int32")[np.arange(count) % 3]
    # Pixel (0, 1) holds the index, to check order and coverage.
    images[:, 0, 1, 0] = np.arange(count)
    return images, labels


def _classification(count=10, seed=1):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 255, (count, 6, 6, 3)).astype("uint8")
    images[:, 0, 0, 0] = 2
    images[:, 0, 1, 0] = np.arange(count)
    return images, (np.arange(count) % K).astype("int64")


def _batches(dataset):
    return [(x.numpy(), y.numpy()) for x, y in dataset]


class TestJointDataset:
    def test_fixed_mixing(self):
        regions, classification = _regions(), _classification()
        dataset = joint_dataset(
            regions,
            classification,
            num_classes=K,
            batch_size=8,
            classification_fraction=0.25,
        )
        images_spec, labels_spec = dataset.element_spec
        assert images_spec.shape.as_list() == [None, 6, 6, 3]
        assert images_spec.dtype == tf.uint8
        assert labels_spec.dtype == tf.int32
        batches = _batches(dataset)
        # 24 regions at 6 per batch: 4 batches of 6 regions + 2 images.
        assert len(batches) == 4
        seen_regions, seen_images = [], []
        for images, labels in batches:
            assert images.shape == (8, 6, 6, 3)
            kind = images[:, 0, 0, 0]
            np.testing.assert_array_equal(kind, [1] * 6 + [2] * 2)
            index = images[:, 0, 1, 0].astype(int)
            np.testing.assert_array_equal(labels[:6], regions[1][index[:6]])
            # Classification labels are encoded: class + K + 1.
            np.testing.assert_array_equal(
                labels[6:], classification[1][index[6:]] + K + 1
            )
            seen_regions += index[:6].tolist()
            seen_images += index[6:].tolist()
        # Each region once, in order (no shuffling); the 10 classification
        # images are repeated to fill the 8 slots... in order as well.
        assert seen_regions == list(range(24))
        assert seen_images == list(range(8))

    @pytest.mark.parametrize("batch_size,fraction", [(8, 0.25), (10, 0.3)])
    def test_classification_count_is_the_shared_helper(
        self, batch_size, fraction
    ):
        # `finetune_detector` sizes its region slots from the helper: the
        # count it returns must be the one the batches hold.
        dataset = joint_dataset(
            _regions(),
            _classification(),
            num_classes=K,
            batch_size=batch_size,
            classification_fraction=fraction,
        )
        images, _ = next(iter(dataset))
        held = int(np.sum(images.numpy()[:, 0, 0, 0] == 2))
        assert held == classification_examples_per_batch(batch_size, fraction)

    def test_batched_inputs_are_unbatched(self):
        regions, classification = _regions(), _classification()
        batched = joint_dataset(
            tf.data.Dataset.from_tensor_slices(regions).batch(5),
            tf.data.Dataset.from_tensor_slices(classification).batch(3),
            num_classes=K,
            batch_size=8,
        )
        unbatched = joint_dataset(
            tf.data.Dataset.from_tensor_slices(regions),
            classification,
            num_classes=K,
            batch_size=8,
        )
        for (a, y), (b, z) in zip(_batches(batched), _batches(unbatched)):
            np.testing.assert_array_equal(a, b)
            np.testing.assert_array_equal(y, z)

    def test_last_batch_and_no_repeat(self):
        regions, classification = _regions(count=20), _classification()
        batches = _batches(
            joint_dataset(regions, classification, K, batch_size=8)
        )
        assert [len(y) for _, y in batches] == [8, 8, 8, 4]
        assert np.sum(batches[-1][1] > K) == 2
        dropped = _batches(
            joint_dataset(
                regions, classification, K, batch_size=8, drop_remainder=True
            )
        )
        assert [len(y) for _, y in dropped] == [8, 8, 8]
        # Without repetition the 10 images last for 5 batches of 2.
        stop = _batches(
            joint_dataset(
                _regions(count=60),
                classification,
                K,
                batch_size=8,
                repeat_classification=False,
            )
        )
        assert len(stop) == 5

    def test_sample_mixing_is_seeded(self):
        def labels(seed):
            dataset = joint_dataset(
                _regions(count=300),
                _classification(),
                K,
                batch_size=50,
                classification_fraction=0.3,
                mixing="sample",
                seed=seed,
            )
            return np.concatenate([y for _, y in _batches(dataset)])

        first, again, other = labels(0), labels(0), labels(1)
        np.testing.assert_array_equal(first, again)
        assert not np.array_equal(first, other)
        # All 300 regions, then the stream stops; about 30 % are images.
        assert np.sum(first <= K) == 300
        share = np.mean(first > K)
        assert 0.2 < share < 0.4, share
        assert set(np.unique(first[first > K]) - (K + 1)) <= set(range(K))

    def test_shuffle_is_seeded(self):
        def order(seed):
            dataset = joint_dataset(
                _regions(),
                _classification(),
                K,
                batch_size=8,
                shuffle_buffer=32,
                seed=seed,
            )
            return np.concatenate([x[:, 0, 1, 0] for x, _ in _batches(dataset)])

        first = order(3)
        np.testing.assert_array_equal(first, order(3))
        assert not np.array_equal(first, order(4))
        regions = first.reshape(4, 8)[:, :6].ravel()
        assert sorted(regions.tolist()) == list(range(24))
        assert regions.tolist() != list(range(24))

    def test_no_classification(self):
        batches = _batches(
            joint_dataset(
                _regions(),
                _classification(),
                K,
                batch_size=8,
                classification_fraction=0,
            )
        )
        assert [len(y) for _, y in batches] == [8, 8, 8]
        assert all(np.all(y <= K) for _, y in batches)

    @large
    def test_from_the_pipelines_into_the_loss(self):
        regions = pipelines.region_dataset(
            voc_dataset(), crop_size=16, batch_size=16, num_classes=20,
            regions_per_image=8, keep_classes=[14, 11],
        )  # fmt: skip
        images = pipelines.classification_dataset(
            voc_dataset(), image_size=16, batch_size=2, num_classes=20
        )
        split = ClassSplit(20, (11, 14))
        dataset = joint_dataset(
            regions,
            images,
            num_classes=20,
            batch_size=8,
            classification_fraction=0.25,
            detection_classes=split,
        )
        batches = _batches(dataset)
        region_labels = np.concatenate([y for _, y in _batches(regions)])
        # 6 regions per batch until they run out, 2 images in every batch.
        assert len(batches) == -(-len(region_labels) // 6)
        assert all(np.sum(y > 20) == 2 for _, y in batches)
        labels = np.concatenate([y for _, y in batches])
        np.testing.assert_array_equal(labels[labels <= 20], region_labels)
        assert set(labels[labels <= 20]) <= {11, 14, 20}
        # Image labels 14, 7, 14 (largest objects), encoded.
        np.testing.assert_array_equal(labels[labels > 20][:3] - 21, [14, 7, 14])
        loss = JointDetectionLoss(20, split)
        value = loss(labels[:8], np.full((8, 21), 1 / 21, "float32"))
        assert np.isfinite(keras.ops.convert_to_numpy(value))

    def test_invalid_labels_stop_the_iteration(self):
        images, labels = _regions()
        labels = labels.copy()
        labels[4] = 1  # a class of A given as a region label
        with pytest.raises(tf.errors.InvalidArgumentError, match="Region"):
            _batches(
                joint_dataset(
                    (images, labels),
                    _classification(),
                    K,
                    batch_size=8,
                    detection_classes=B,
                )
            )
        # Without `detection_classes`, any label in [0, K] passes.
        assert len(_batches(joint_dataset((images, labels), _classification(),
                                          K, batch_size=8))) == 4  # fmt: skip
        labels[4] = K + 1
        with pytest.raises(tf.errors.InvalidArgumentError, match="Region"):
            _batches(joint_dataset((images, labels), _classification(), K, 8))
        images, classes = _classification()
        classes = classes.copy()
        classes[1] = K
        with pytest.raises(
            tf.errors.InvalidArgumentError, match="Classification"
        ):
            _batches(joint_dataset(_regions(), (images, classes), K, 8))

    @pytest.mark.parametrize(
        "kwargs, argument",
        [
            ({"num_classes": 0}, "num_classes"),
            ({"batch_size": 0}, "batch_size"),
            ({"classification_fraction": 1.0}, "classification_fraction"),
            ({"classification_fraction": -0.1}, "classification_fraction"),
            ({"classification_fraction": True}, "classification_fraction"),
            ({"classification_fraction": 0.01}, "classification_fraction"),
            ({"mixing": "random"}, "mixing"),
            ({"repeat_classification": 1}, "repeat_classification"),
            ({"drop_remainder": None}, "drop_remainder"),
            ({"shuffle_buffer": 0}, "shuffle_buffer"),
            ({"seed": 1.5}, "seed"),
            ({"detection_classes": (0, K)}, "detection_classes"),
            ({"detection_classes": ClassSplit(K + 1, B)}, "ClassSplit"),
        ],
    )
    def test_bad_arguments(self, kwargs, argument):
        arguments = dict(num_classes=K, batch_size=8)
        arguments.update(kwargs)
        with pytest.raises(ValueError, match=argument):
            joint_dataset(_regions(), _classification(), **arguments)

    def test_bad_inputs(self):
        regions, classification = _regions(), _classification()
        with pytest.raises(ValueError, match="`region_examples`"):
            joint_dataset(regions[0], classification, K, 8)
        with pytest.raises(ValueError, match="same shape and dtype"):
            joint_dataset(
                regions, (classification[0][:, :4], classification[1]), K, 8
            )
        with pytest.raises(ValueError, match="same shape and dtype"):
            joint_dataset(
                regions,
                (classification[0].astype("float32"), classification[1]),
                K,
                8,
            )
        with pytest.raises(ValueError, match="`classification_examples`"):
            joint_dataset(
                regions,
                tf.data.Dataset.from_tensor_slices(
                    classification + (np.ones(10),)
                ),
                K,
                8,
            )
        with pytest.raises(ValueError, match="scalar labels"):
            joint_dataset(
                regions, (classification[0], classification[1][:, None]), K, 8
            )
        with pytest.raises(ValueError, match="integer labels"):
            joint_dataset(
                regions,
                (classification[0], classification[1].astype("float32")),
                K,
                8,
            )


class TestFixedShareBatches:
    def _streams(self):
        first = tf.data.Dataset.from_tensor_slices(
            (np.arange(10, dtype="float32")[:, None], np.zeros(10, "int32"))
        )
        second = tf.data.Dataset.from_tensor_slices(
            (100 + np.arange(3, dtype="float32")[:, None], np.ones(3, "int32"))
        )
        return first, second.repeat()

    def test_each_batch_ends_with_the_fixed_count_of_the_second_stream(self):
        first, second = self._streams()
        batches = _batches(fixed_share_batches(first, second, 4, 1))
        # 10 of the first at 3 per batch: 4 batches, the last with one.
        assert [labels.tolist() for _, labels in batches] == [
            [0, 0, 0, 1],
            [0, 0, 0, 1],
            [0, 0, 0, 1],
            [0, 1],
        ]
        assert [x[-1, 0] for x, _ in batches] == [100, 101, 102, 100]
        assert np.concatenate([x[:-1, 0] for x, _ in batches]).tolist() == list(
            range(10)
        )

    def test_drop_remainder_drops_the_short_last_batch(self):
        first, second = self._streams()
        batches = _batches(
            fixed_share_batches(first, second, 4, 1, drop_remainder=True)
        )
        assert len(batches) == 3

    @pytest.mark.parametrize("count", [0, 4, 1.5, True])
    def test_bad_second_count_is_refused(self, count):
        first, second = self._streams()
        with pytest.raises(ValueError, match="`second_count`"):
            fixed_share_batches(first, second, 4, count)
