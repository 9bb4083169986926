"""Where a workflow's images come from: a TFDS dataset or a COCO JSON file.

A workflow needs examples in four roles:

- `"classification_train"` / `"classification_validation"`: images with an
  image-level label, for every class (what LSDA's classifier learns from);
- `"detection_train"`: scenes whose boxes of the detection classes B are
  used for fine-tuning and for the proposer;
- `"test"`: annotated scenes the detectors are evaluated on.

Two more are optional: `"oracle_train"` (scenes with the boxes of every
class, for the oracle) and `"image_label_scenes"` (scenes whose labels, and
never their boxes, the `"joint_image_regions"` method reads: those holding
a held-out class).

A dataset with its own classification splits (the bundled
`silhouette_scenes`) gives them directly. Any other detection dataset
(`voc/2007`, `coco/2017`, a COCO JSON) gets its classification examples
from crops of its annotated objects (`keras_objectness.data.object_crops`):
every class's objects, boxes of held-out classes included, serve as
image-labelled examples, while only B's boxes ever reach detection
training.
"""

import os

import numpy as np
import tensorflow as tf

from keras_objectness.class_split import ClassSplit

ROLES = (
    "classification_train",
    "classification_validation",
    "detection_train",
    "oracle_train",
    "image_label_scenes",
    "test",
)

# Split names per role for the datasets we know; other TFDS datasets get
# `_GENERIC_SPLITS`. `oracle_train` (boxes of all classes) is optional.
KNOWN_SPLITS = {
    "silhouette_scenes": {
        "classification_train": "classification_train",
        "classification_validation": "classification_validation",
        "detection_train": "detection_train",
        "oracle_train": "detection_train_all",
        # Its scenes with objects of A (their boxes are never read).
        "image_label_scenes": "detection_train_all",
        "test": "test_mixed",
    },
    "voc": {
        "detection_train": "train",
        "classification_validation": "validation",
        "image_label_scenes": "train",
        "test": "test",
    },
    "coco": {
        "detection_train": "train",
        "classification_validation": "validation",
        "image_label_scenes": "train",
        "test": "validation",
    },
}
_GENERIC_SPLITS = {
    "detection_train": "train",
    "image_label_scenes": "train",
    "test": "test",
}


class DataSource:
    """The examples of one dataset, by role, with its class names.

    Subclasses implement `_load(split)` (a `tf.data.Dataset` of TFDS-style
    detection examples: `"image"` uint8 `(H, W, 3)`, `"objects"` with
    `"bbox"` relative yxyx and `"label"`), `split_names` and
    `class_names`.

    Attributes:
        splits: dict from role to split name.
        max_examples: optional cap on every training role.
    """

    description = "data"

    def __init__(self, splits, max_examples=None):
        unknown = set(splits) - set(ROLES)
        if unknown:
            raise ValueError(
                f"`splits` must map roles in {ROLES} to split names. "
                f"Received: splits={splits!r}"
            )
        if max_examples is not None and (
            not isinstance(max_examples, int) or max_examples < 1
        ):
            raise ValueError(
                "`max_examples` must be a positive integer or None. "
                f"Received: max_examples={max_examples!r}"
            )
        self.splits = dict(splits)
        self.max_examples = max_examples

    @property
    def num_classes(self):
        return len(self.class_names)

    def has_role(self, role):
        return self.splits.get(role) in self.split_names

    def split_name(self, role):
        if role not in ROLES:
            raise ValueError(
                f"`role` must be one of {ROLES}. Received: role={role!r}"
            )
        name = self.splits.get(role)
        if name is None or name not in self.split_names:
            raise ValueError(
                f"{self.description} has no split for the role {role!r} "
                f"(looked for {name!r}; it has {sorted(self.split_names)}). "
                "Name one with `splits={...}` (`--splits role=name` on the "
                "command line)."
            )
        return name

    def load(self, role, max_examples=None):
        """The TFDS-style examples of a role.

        Training roles are capped at `max_examples` (or the source's own
        cap); `"test"` only at an explicit `max_examples`.
        """
        dataset = self._load(self.split_name(role))
        cap = max_examples
        if cap is None and role != "test":
            cap = self.max_examples
        return dataset.take(cap) if cap else dataset

    def has_classification_splits(self):
        return self.has_role("classification_train")

    def image_size(self, role="test"):
        """The static side of a role's images, or `None` if they vary."""
        shape = self.load(role).element_spec["image"].shape
        if shape[0] is not None and shape[0] == shape[1]:
            return int(shape[0])
        return None

    def class_split(self, detection_classes=None):
        """A `ClassSplit` from names, ids, `"boxed"` or the default.

        Args:
            detection_classes: `None` (the dataset's default split, or an
                error where it has none), `"boxed"` (every class with at
                least one box in `"detection_train"`), or a collection of
                class ids or names.

        Returns:
            A `keras_objectness.ClassSplit` with this source's names.
        """
        names = self.class_names
        if detection_classes is None:
            return self.default_class_split()
        if isinstance(detection_classes, str) and detection_classes == "boxed":
            ids = boxed_classes(self.load("detection_train"), len(names))
            return ClassSplit(len(names), ids, class_names=names)
        if isinstance(detection_classes, str):
            detection_classes = [
                part.strip()
                for part in detection_classes.split(",")
                if part.strip()
            ]
        ids = []
        for item in detection_classes:
            ids.append(_class_id(item, names))
        return ClassSplit(len(names), sorted(set(ids)), class_names=names)

    def default_class_split(self):
        raise ValueError(
            f"{self.description} has no default class split: pass "
            "`detection_classes` (names or ids of the classes whose boxes "
            "are used, or 'boxed')."
        )


class TfdsSource(DataSource):
    """A TFDS detection dataset, prepared in `data_dir`.

    Args:
        name: str. TFDS name with optional config and version, e.g.
            `"silhouette_scenes"`, `"voc/2007"`, `"coco/2017"`. Defaults to
            `"silhouette_scenes/workflow"` (the bundled dataset's splits
            that the workflow reads).
        data_dir: str. TFDS data folder. Defaults to `"runs/tfds"`.
        splits: optional dict from role (see `ROLES`) to split name,
            merged over the known defaults of the dataset.
        max_examples: optional cap on every training role.
        strategy: optional `tf.distribute.Strategy`: its chief prepares the
            dataset while the other workers wait.

    Example:

    ```python
    source = TfdsSource("voc/2007", data_dir="~/tensorflow_datasets")
    source.class_split(["person", "car", "dog"])
    ```
    """

    def __init__(
        self,
        name="silhouette_scenes/workflow",
        data_dir="runs/tfds",
        splits=None,
        max_examples=None,
        strategy=None,
    ):
        if not isinstance(name, str) or not name:
            raise ValueError(
                f"`name` must be a TFDS dataset name. Received: name={name!r}"
            )
        family = name.split("/")[0].split(":")[0]
        if family == "silhouette_scenes":
            import keras_objectness.datasets  # noqa: F401  (registers it)
        merged = dict(KNOWN_SPLITS.get(family, _GENERIC_SPLITS))
        merged.update(splits or {})
        super().__init__(merged, max_examples)
        self.name = name
        self.family = family
        self.data_dir = os.path.expanduser(os.fspath(data_dir))
        self.strategy = strategy
        self.description = f"The TFDS dataset {name!r}"
        self._builder = None

    @property
    def builder(self):
        if self._builder is None:
            from keras_objectness.training import cluster

            self._builder = cluster.prepare_dataset(
                self.name, self.data_dir, strategy=self.strategy
            )
        return self._builder

    def prepare(self):
        """Builds the dataset if needed (offline for `silhouette_scenes`)."""
        return self.builder

    @property
    def split_names(self):
        return tuple(self.builder.info.splits.keys())

    @property
    def class_names(self):
        return tuple(self.builder.info.features["objects"]["label"].names)

    def _load(self, split):
        return self.builder.as_dataset(split=split)

    def default_class_split(self):
        if self.family == "silhouette_scenes":
            return self.builder.builder_config.class_split_object
        return super().default_class_split()


def boxed_classes(dataset, num_classes):
    """The sorted ids of the classes with a usable box in `dataset`.

    Crowd (`is_crowd`) and difficult (`is_difficult`) boxes do not count:
    training never uses them as positives.
    """
    flags = [
        name
        for name in ("is_crowd", "is_difficult")
        if name in dataset.element_spec["objects"]
    ]

    def usable_labels(example):
        objects = example["objects"]
        keep = tf.ones_like(objects["label"], tf.bool)
        for name in flags:
            keep &= tf.logical_not(tf.cast(objects[name], tf.bool))
        return tf.boolean_mask(objects["label"], keep)

    seen = np.zeros((num_classes,), dtype=bool)
    labels = dataset.map(usable_labels, num_parallel_calls=tf.data.AUTOTUNE)
    for batch in labels.ragged_batch(1024):
        values = batch.flat_values.numpy()
        seen[values[(values >= 0) & (values < num_classes)]] = True
    ids = tuple(int(i) for i in np.flatnonzero(seen))
    if not ids:
        raise ValueError(
            "`detection_classes='boxed'` needs boxes in the detection "
            "training split, and it has none."
        )
    return ids


def _class_id(item, names):
    if isinstance(item, (int, np.integer)) and not isinstance(item, bool):
        return int(item)
    if isinstance(item, str) and item.isdigit():
        return int(item)
    if isinstance(item, str) and item in names:
        return names.index(item)
    raise ValueError(
        "`detection_classes` must hold class ids or names of the dataset "
        f"({', '.join(names[:30])}{', ...' if len(names) > 30 else ''}). "
        f"Received: {item!r}"
    )


class CocoDataSource(DataSource):
    """A COCO-format JSON file and its image folder, as a workflow source.

    What annotation tools export: `keras_objectness.data.coco_json_dataset`
    reads it. Its images are split once, by a seeded draw, into training
    scenes (`"detection_train"`) and test scenes (`"test"`); the
    classification roles are crops of the annotated objects of each
    (`keras_objectness.data.object_crops`).

    Args:
        annotation_file: path of the COCO-format JSON.
        image_dir: folder holding its images (`file_name` relative to it).
        test_fraction: float in `(0, 1)`. Share of images held out for
            testing. Defaults to `0.2`.
        seed: int. Seed of the split. Defaults to `0`.
        max_examples: optional cap on every training role.

    Example:

    ```python
    source = CocoDataSource("labels.json", "photos/")
    split = source.class_split("boxed")
    ```
    """

    def __init__(
        self,
        annotation_file,
        image_dir,
        test_fraction=0.2,
        seed=0,
        max_examples=None,
    ):
        from keras_objectness.data import coco_json

        if (
            isinstance(test_fraction, bool)
            or not isinstance(test_fraction, (int, float))
            or not 0.0 < test_fraction < 1.0
        ):
            raise ValueError(
                "`test_fraction` must be a number in (0, 1). "
                f"Received: test_fraction={test_fraction!r}"
            )
        super().__init__(
            {
                "detection_train": "train",
                "image_label_scenes": "train",
                "test": "test",
            },
            max_examples,
        )
        self.reader = coco_json.CocoJsonSource(annotation_file, image_dir)
        count = self.reader.num_images
        if count < 2:
            raise ValueError(
                "`annotation_file` must list at least 2 images (some to "
                f"train on, some to test). Received: {count} image(s) in "
                f"{annotation_file!r}"
            )
        rng = np.random.default_rng(seed)
        test = np.zeros((count,), dtype=bool)
        num_test = min(max(int(round(test_fraction * count)), 1), count - 1)
        test[rng.permutation(count)[:num_test]] = True
        self._is_test = tf.constant(test)
        self.description = f"The COCO JSON {os.fspath(annotation_file)!r}"

    def prepare(self):
        return self

    @property
    def split_names(self):
        return ("train", "test")

    @property
    def class_names(self):
        return tuple(self.reader.class_names)

    def _load(self, split):
        want_test = split == "test"
        table = self._is_test
        dataset = self.reader.as_dataset().enumerate()
        dataset = dataset.filter(
            lambda index, example: tf.equal(table[index], want_test)
        )
        return dataset.map(lambda index, example: example)
