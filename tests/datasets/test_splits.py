import itertools

import numpy as np
import pytest

from keras_objectness.class_split import ClassSplit
from keras_objectness.datasets import silhouette_scenes
from keras_objectness.datasets.silhouette_scenes import sources
from keras_objectness.datasets.silhouette_scenes import splits

EXAMPLES_PER_SPLIT = 40


@pytest.fixture(scope="module")
def generator():
    return splits.SceneGenerator(image_size=48, seed=0)


@pytest.fixture(scope="module")
def examples(generator):
    return {
        split: [generator.example(split, i) for i in range(EXAMPLES_PER_SPLIT)]
        for split in splits.SPLIT_NAMES
    }


def _labels(split_examples):
    return np.concatenate([e["objects"]["label"] for e in split_examples])


def test_default_class_split_mixes_digits_and_animals():
    split = silhouette_scenes.default_class_split()
    assert isinstance(split, ClassSplit)
    assert split.num_classes == 20
    assert split.class_names == sources.CLASS_NAMES
    for group in (split.detection_classes, split.heldout_classes):
        assert len(group) == 10
        assert sum(c < 10 for c in group) == 5  # five digits, five animals
    assert split.detection_classes == (0, 1, 2, 3, 4, 10, 12, 14, 16, 18)


def test_named_class_splits():
    assert splits.get_class_split("digits_trained").heldout_classes == tuple(
        range(10, 20)
    )
    assert splits.get_class_split("animals_trained").heldout_classes == tuple(
        range(10)
    )
    random_1 = splits.get_class_split("random_1")
    assert random_1 == splits.get_class_split("random_1")
    assert random_1 != splits.get_class_split("random_2")
    assert sum(c < 10 for c in random_1.detection_classes) == 5
    with pytest.raises(ValueError, match="Received: class_split='bogus'"):
        splits.get_class_split("bogus")


def test_pools_are_disjoint_and_cover_the_fractions():
    labels = sources.load_silhouettes().labels
    pools = splits.instance_pools(labels, seed=0)
    seen = np.concatenate([np.concatenate(p) for p in pools.values()])
    assert len(seen) == len(labels) == len(np.unique(seen))
    for label in (0, 15):
        size = int((labels == label).sum())
        for name, fraction in splits.POOL_FRACTIONS:
            part = pools[name][label]
            assert np.all(labels[part] == label)
            assert abs(len(part) - fraction * size) <= 1
    assert not np.array_equal(
        splits.instance_pools(labels, seed=1)["test"][3], pools["test"][3]
    )


def test_split_classes_follow_the_protocol(examples):
    split = silhouette_scenes.default_class_split()
    for name in ("detection_train", "validation_trained", "test_trained"):
        assert split.is_detection_class(_labels(examples[name])).all()
    for name in ("validation_heldout", "test_heldout"):
        assert split.is_heldout_class(_labels(examples[name])).all()
    for example in examples["test_mixed"]:
        is_b = split.is_detection_class(example["objects"]["label"])
        assert is_b.any() and not is_b.all()
    for name in ("classification_train", "classification_validation"):
        labels = _labels(examples[name])
        assert len(labels) == EXAMPLES_PER_SPLIT  # one object per image
        # Classes are balanced: example i shows class i % 20.
        np.testing.assert_array_equal(labels, np.arange(len(labels)) % 20)
    for name, split_examples in examples.items():
        for example in split_examples:
            np.testing.assert_array_equal(
                example["labels"], np.unique(example["objects"]["label"])
            )
            count = len(example["objects"]["label"])
            if splits.SPLITS[name].kind == "detection":
                assert 1 <= count <= 4


def test_no_instance_or_photo_crosses_splits(examples, generator):
    ids = {
        name: set(
            np.concatenate([e["objects"]["instance_id"] for e in exs]).tolist()
        )
        for name, exs in examples.items()
    }
    # Only the two alternative detection training sets share a pool.
    shared = {"detection_train", "detection_train_all"}
    for a, b in itertools.combinations(ids, 2):
        if {a, b} != shared:
            assert not ids[a] & ids[b], (a, b)
    assert ids["detection_train"] & ids["detection_train_all"]
    # Each split's instances come from its own pool.
    silhouettes = sources.load_silhouettes()
    for name, found in ids.items():
        pool = np.concatenate(generator.pools[splits.SPLITS[name].pool])
        assert found <= set(pool.tolist())
        assert all(silhouettes.instance_ids[i] == i for i in list(found)[:10])
    groups = sources.BACKGROUND_GROUPS
    for a, b in itertools.combinations(groups, 2):
        assert not set(groups[a]) & set(groups[b])
    for name, split_examples in examples.items():
        group = groups[splits.SPLITS[name].backgrounds]
        assert {e["background"] for e in split_examples} <= set(group)
    used = {e["background"] for e in examples["test_heldout"]}
    assert len(used) > 1


def test_same_seed_same_bytes_in_any_order():
    first = splits.SceneGenerator(image_size=48, seed=7)
    second = splits.SceneGenerator(image_size=48, seed=7)
    other = splits.SceneGenerator(image_size=48, seed=8)
    order = [("test_mixed", 3), ("detection_train", 5), ("test_mixed", 0)]
    made = {key: first.example(*key) for key in order}
    for key in reversed(order):
        again = second.example(*key)
        expected = made[key]
        assert again["image"].tobytes() == expected["image"].tobytes()
        assert (
            again["objects"]["bbox"].tobytes()
            == expected["objects"]["bbox"].tobytes()
        )
        np.testing.assert_array_equal(
            again["objects"]["instance_id"], expected["objects"]["instance_id"]
        )
        assert again["background"] == expected["background"]
        changed = other.example(*key)
        assert changed["image"].tobytes() != expected["image"].tobytes()


@pytest.mark.parametrize(
    "kwargs, argument",
    [
        ({"image_size": 16}, "image_size"),
        ({"image_size": 64.0}, "image_size"),
        ({"min_objects": 0}, "min_objects"),
        ({"min_objects": 3, "max_objects": 2}, "max_objects"),
        ({"max_objects": 9}, "max_objects"),
        ({"class_split": "bogus"}, "class_split"),
        ({"class_split": ClassSplit(20, tuple(range(20)))}, "class_split"),
        ({"class_split": ClassSplit(10, (0,))}, "class_split"),
        ({"seed": -1}, "seed"),
    ],
)
def test_bad_generator_arguments(kwargs, argument):
    pattern = f"`{argument}` must .*Received: .*{argument}="
    with pytest.raises(ValueError, match=pattern):
        splits.SceneGenerator(**kwargs)


def test_bad_example_arguments(generator):
    with pytest.raises(ValueError, match="Received: split='train'"):
        generator.example("train", 0)
    with pytest.raises(ValueError, match="Received: index=-1"):
        generator.example("test_mixed", -1)


def test_custom_class_split_object(generator):
    custom = ClassSplit(20, (5, 6, 7), class_names=sources.CLASS_NAMES)
    generator = splits.SceneGenerator(image_size=48, class_split=custom)
    labels = np.concatenate(
        [
            generator.example("detection_train", i)["objects"]["label"]
            for i in range(10)
        ]
    )
    assert set(labels.tolist()) <= {5, 6, 7}


def test_classification_walks_through_the_whole_pool(generator):
    label = 3  # a digit: 25 instances in the classification_validation pool
    pool = generator.pools["classification_validation"][label]
    assert len(pool) == 25
    used = [
        int(
            generator.example("classification_validation", label + 20 * k)[
                "objects"
            ]["instance_id"][0]
        )
        for k in range(26)
    ]
    assert sorted(used[:25]) == sorted(pool.tolist())
    assert used[25] == used[0]
