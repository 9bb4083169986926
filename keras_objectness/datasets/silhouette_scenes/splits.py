"""The held-out protocol of silhouette_scenes: class splits, pools, splits.

Every class's instances are cut once (per `seed`) into disjoint *pools*;
each dataset split draws its objects from one pool and its backgrounds from
one photo group, so no object instance and no photo is shared between the
train, validation and test groups. The pools do not depend on the class
split, so changing the class split never moves an instance between pools.

`SceneGenerator.example(split, index)` makes one example from a random
generator seeded by `(seed, split name, index)`: examples are independent
of generation order and the same arguments give the same bytes.
"""

import collections
import re
import zlib

import numpy as np

from keras_objectness.class_split import ClassSplit
from keras_objectness.datasets.silhouette_scenes import scenes
from keras_objectness.datasets.silhouette_scenes import sources

# Digits 0-4 and five animals (bear, cat, dog, giraffe, sheep) have boxes.
DEFAULT_DETECTION_CLASSES = (0, 1, 2, 3, 4, 10, 12, 14, 16, 18)

# Fractions of each class's instances. Instances of held-out classes in
# the `detection_train` pool are used only by `detection_train_all` (so
# that the pools do not depend on the class split).
POOL_FRACTIONS = (
    ("classification_train", 0.50),
    ("classification_validation", 0.05),
    ("detection_train", 0.20),
    ("validation", 0.10),
    ("test", 0.075),
    ("test_mixed", 0.075),
)

SplitSpec = collections.namedtuple(
    "SplitSpec", ["kind", "pool", "classes", "backgrounds"]
)
SplitSpec.__doc__ = """How one split is made.

Fields:
    kind: `"classification"` (one large object, classes balanced) or
        `"detection"` (a scene of several objects).
    pool: the instance pool its objects come from.
    classes: `"all"`, `"detection"` (B only), `"heldout"` (A only) or
        `"mixed"` (at least one of each).
    backgrounds: the photo group (`sources.BACKGROUND_GROUPS`).
"""

SPLITS = {
    "classification_train": SplitSpec(
        "classification", "classification_train", "all", "train"
    ),
    "classification_validation": SplitSpec(
        "classification", "classification_validation", "all", "validation"
    ),
    "detection_train": SplitSpec(
        "detection", "detection_train", "detection", "train"
    ),
    # The same training pool with every class's boxes: the alternative
    # training set of the "all boxes" and oracle experiments. It shares its
    # pool with `detection_train` and with no evaluation split.
    "detection_train_all": SplitSpec(
        "detection", "detection_train", "all", "train"
    ),
    "validation_trained": SplitSpec(
        "detection", "validation", "detection", "validation"
    ),
    "validation_heldout": SplitSpec(
        "detection", "validation", "heldout", "validation"
    ),
    "test_trained": SplitSpec("detection", "test", "detection", "test"),
    "test_heldout": SplitSpec("detection", "test", "heldout", "test"),
    "test_mixed": SplitSpec("detection", "test_mixed", "mixed", "test"),
}
SPLIT_NAMES = tuple(SPLITS)

DEFAULT_SPLIT_SIZES = (
    ("classification_train", 6000),
    ("classification_validation", 500),
    ("detection_train", 4000),
    ("detection_train_all", 4000),
    ("validation_trained", 300),
    ("validation_heldout", 300),
    ("test_trained", 600),
    ("test_heldout", 600),
    ("test_mixed", 600),
)
TINY_SPLIT_SIZES = tuple((name, 24) for name in SPLIT_NAMES)
# What `keras-objectness run` reads: an example depends only on the seed,
# its split and its index, so these are the default config's examples.
WORKFLOW_SPLITS = (
    "classification_train",
    "classification_validation",
    "detection_train",
    # Its scenes with objects of A lend their image labels (never their
    # boxes) to `method="joint_image_regions"`.
    "detection_train_all",
    "test_mixed",
)
WORKFLOW_SPLIT_SIZES = tuple(
    (name, count)
    for name, count in DEFAULT_SPLIT_SIZES
    if name in WORKFLOW_SPLITS
)

CLASSIFICATION_SCALE_RANGE = (0.55, 0.9)
DETECTION_SCALE_RANGE = (0.12, 0.7)
MIN_IMAGE_SIZE = 32
MAX_OBJECTS = 8
_MAX_EXAMPLE_ATTEMPTS = 100
_RANDOM_SPLIT = re.compile(r"random_(\d+)\Z")


def class_split_names():
    """Names accepted by `get_class_split`.

    Returns:
        A tuple of names; `"random_<k>"` stands for any non-negative `k`.

    Example:

    ```python
    class_split_names()  # ("default", "digits_trained", ...)
    ```
    """
    return ("default", "digits_trained", "animals_trained", "random_<k>")


def get_class_split(name="default"):
    """The `ClassSplit` of silhouette_scenes called `name`.

    - `"default"`: B = digits 0-4 + bear, cat, dog, giraffe, sheep.
    - `"digits_trained"`: B = the ten digits, A = the ten animals.
    - `"animals_trained"`: B = the ten animals, A = the ten digits.
    - `"random_<k>"`: five digits and five animals drawn with seed `k`.

    Args:
        name: str. One of `class_split_names()`. Defaults to `"default"`.

    Returns:
        A `keras_objectness.class_split.ClassSplit` over the 20 classes,
        with `sources.CLASS_NAMES`.

    Example:

    ```python
    get_class_split("default").heldout_classes
    ```
    """
    if name == "default":
        detection = DEFAULT_DETECTION_CLASSES
    elif name == "digits_trained":
        detection = tuple(range(10))
    elif name == "animals_trained":
        detection = tuple(range(10, 20))
    elif isinstance(name, str) and _RANDOM_SPLIT.match(name):
        rng = np.random.default_rng(int(name.split("_")[1]))
        digits = rng.permutation(10)[:5]
        animals = rng.permutation(10)[:5] + 10
        detection = tuple(int(i) for i in np.concatenate([digits, animals]))
    else:
        raise ValueError(
            f"`class_split` must be one of {class_split_names()}. "
            f"Received: class_split={name!r}"
        )
    return ClassSplit(
        sources.NUM_CLASSES, detection, class_names=sources.CLASS_NAMES
    )


def default_class_split():
    """The default 10/10 class split, digits and animals in both halves.

    Returns:
        `get_class_split("default")`: B = `(0, 1, 2, 3, 4, 10, 12, 14, 16,
        18)` (digits 0-4, bear, cat, dog, giraffe, sheep) and A = the rest.

    Example:

    ```python
    split = default_class_split()
    split.is_detection_class([0, 5, 10, 11])  # [True, False, True, False]
    ```
    """
    return get_class_split("default")


def instance_pools(labels, seed):
    """Cuts every class's instances into the disjoint pools.

    Args:
        labels: int array `(num_instances,)` of class ids.
        seed: int. Seeds the per-class shuffles.

    Returns:
        A dict `pool name -> tuple of num_classes int64 arrays`, the
        instance indices of each class in that pool (sorted).

    Example:

    ```python
    pools = instance_pools(np.repeat(np.arange(3), 40), seed=0)
    pools["test"][2]  # three instances of class 2
    ```
    """
    labels = np.asarray(labels)
    num_classes = int(labels.max()) + 1
    bounds = np.cumsum([0.0] + [f for _, f in POOL_FRACTIONS])
    pools = {name: [] for name, _ in POOL_FRACTIONS}
    for label in range(num_classes):
        members = np.flatnonzero(labels == label)
        rng = np.random.default_rng([seed, 1, label])
        members = members[rng.permutation(len(members))]
        cuts = np.rint(bounds * len(members)).astype(int)
        for k, (name, _) in enumerate(POOL_FRACTIONS):
            part = np.sort(members[cuts[k] : cuts[k + 1]]).astype(np.int64)
            part.setflags(write=False)
            pools[name].append(part)
    return {name: tuple(parts) for name, parts in pools.items()}


def validate_generator_arguments(
    image_size, min_objects, max_objects, class_split, seed, split_sizes=None
):
    """Checks the arguments of `SceneGenerator` (and the builder config).

    Args:
        image_size: int >= 32.
        min_objects: int >= 1.
        max_objects: int, `min_objects <= max_objects <= 8`.
        class_split: a name for `get_class_split` or a `ClassSplit` over
            20 classes with at least one held-out class.
        seed: non-negative int.
        split_sizes: optional pairs `(split name, count >= 1)`.

    Returns:
        The `ClassSplit`.

    Raises:
        ValueError: naming the first bad argument.

    Example:

    ```python
    validate_generator_arguments(64, 1, 4, "default", 0)
    ```
    """
    for name, value, minimum in (
        ("image_size", image_size, MIN_IMAGE_SIZE),
        ("min_objects", min_objects, 1),
        ("max_objects", max_objects, 1),
        ("seed", seed, 0),
    ):
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, np.integer))
            or value < minimum
        ):
            raise ValueError(
                f"`{name}` must be an integer >= {minimum}. "
                f"Received: {name}={value!r}"
            )
    if not min_objects <= max_objects <= MAX_OBJECTS:
        raise ValueError(
            f"`max_objects` must be in [min_objects, {MAX_OBJECTS}]. "
            f"Received: min_objects={min_objects}, max_objects={max_objects}"
        )
    if isinstance(class_split, ClassSplit):
        split = class_split
        if split.num_classes != sources.NUM_CLASSES or not (
            split.heldout_classes
        ):
            raise ValueError(
                "`class_split` must cover 20 classes and hold out at least "
                f"one. Received: class_split={class_split!r}"
            )
    else:
        split = get_class_split(class_split)
    if split_sizes is not None:
        _validate_split_sizes(split_sizes)
    return split


def _validate_split_sizes(split_sizes):
    message = (
        f"`split_sizes` must be (name, count) pairs with names in "
        f"{SPLIT_NAMES}, each at most once, and counts >= 1. "
        f"Received: split_sizes={split_sizes!r}"
    )
    try:
        pairs = [(name, count) for name, count in split_sizes]
    except (TypeError, ValueError):
        raise ValueError(message) from None
    names = [name for name, _ in pairs]
    if (
        not pairs
        or len(set(names)) != len(names)
        or any(name not in SPLITS for name in names)
        or any(
            isinstance(c, bool) or not isinstance(c, (int, np.integer)) or c < 1
            for _, c in pairs
        )
    ):
        raise ValueError(message)


class SceneGenerator:
    """Makes silhouette_scenes examples, one at a time and on demand.

    Sources (silhouettes and photos) load lazily on the first example, so
    construction is cheap and validates every argument.

    Args:
        image_size: int. Side of the square RGB images, at least 32.
            Defaults to `128`.
        min_objects: int. Fewest objects in a detection scene (mixed
            scenes have at least two). Defaults to `1`.
        max_objects: int. Most objects, at most 8. Defaults to `4`.
        class_split: str or `ClassSplit`. See `get_class_split`. Defaults
            to `"default"`.
        seed: int. Seeds the instance pools and every example. Defaults to
            `0`.

    Example:

    ```python
    generator = SceneGenerator(image_size=64)
    example = generator.example("test_heldout", 0)
    example["objects"]["bbox"]  # relative yxyx
    ```
    """

    def __init__(
        self,
        image_size=128,
        min_objects=1,
        max_objects=4,
        class_split="default",
        seed=0,
    ):
        self.class_split = validate_generator_arguments(
            image_size, min_objects, max_objects, class_split, seed
        )
        self.image_size = int(image_size)
        self.min_objects = int(min_objects)
        self.max_objects = int(max_objects)
        self.seed = int(seed)
        self._silhouettes = None
        self._pools = None
        self._orders = {}

    def _load(self):
        if self._silhouettes is None:
            self._silhouettes = sources.load_silhouettes()
            self._pools = instance_pools(self._silhouettes.labels, self.seed)

    @property
    def pools(self):
        """The instance pools (see `instance_pools`)."""
        self._load()
        return self._pools

    def example_rng(self, split, index):
        """The random generator of example `index` of `split`."""
        return np.random.default_rng(
            [self.seed, zlib.crc32(split.encode("utf-8")), int(index)]
        )

    def example(self, split, index):
        """Makes example `index` of `split`.

        Args:
            split: str. One of `SPLIT_NAMES`.
            index: int >= 0.

        Returns:
            A dict in the dataset's feature layout, as numpy: `image`
            (uint8 `(s, s, 3)`), `image/id` (str), `background` (str),
            `objects` (`bbox` float32 `(n, 4)` relative yxyx, `label` and
            `instance_id` int64 `(n,)`) and `labels` (sorted distinct
            object labels).
        """
        scene, name, labels, ids = self.scene(split, index)
        return {
            "image": scene.image,
            "image/id": f"{split}/{int(index):06d}",
            "background": name,
            "objects": {
                "bbox": scene.boxes,
                "label": labels,
                "instance_id": ids,
            },
            "labels": np.unique(labels).astype(np.int64),
        }

    def scene(self, split, index):
        """Like `example`, but returns the full `scenes.Scene`.

        Args:
            split: str. One of `SPLIT_NAMES`.
            index: int >= 0.

        Returns:
            A tuple `(scene, background_name, labels, instance_ids)`, the
            last two int64 arrays aligned with `scene.boxes`.
        """
        if split not in SPLITS:
            raise ValueError(
                f"`split` must be one of {SPLIT_NAMES}. Received: "
                f"split={split!r}"
            )
        if (
            isinstance(index, bool)
            or not isinstance(index, (int, np.integer))
            or index < 0
        ):
            raise ValueError(
                f"`index` must be an integer >= 0. Received: index={index!r}"
            )
        self._load()
        spec = SPLITS[split]
        rng = self.example_rng(split, index)
        photos = sources.load_backgrounds(spec.backgrounds, 2 * self.image_size)
        for _ in range(_MAX_EXAMPLE_ATTEMPTS):
            ids = self._draw_instances(split, spec, index, rng)
            name, photo = photos[int(rng.integers(len(photos)))]
            background = scenes.crop_background(photo, self.image_size, rng)
            scene = scenes.compose_scene(
                background,
                [self._silhouettes.images[i] for i in ids],
                rng,
                scale_range=(
                    CLASSIFICATION_SCALE_RANGE
                    if spec.kind == "classification"
                    else DETECTION_SCALE_RANGE
                ),
            )
            ids = ids[scene.indices]
            labels = self._silhouettes.labels[ids].astype(np.int64)
            if self._acceptable(spec, labels):
                return scene, name, labels, ids
        raise RuntimeError(
            f"Could not compose example {index} of {split!r} in "
            f"{_MAX_EXAMPLE_ATTEMPTS} attempts; try fewer objects or a "
            "larger image_size."
        )

    def _draw_instances(self, split, spec, index, rng):
        pool = self._pools[spec.pool]
        if spec.kind == "classification":
            # Example i shows class i % 20; successive examples of a class
            # walk through a seeded shuffle of its pool, so every instance
            # is used before any repeats.
            label = int(index) % sources.NUM_CLASSES
            order = self._pool_order(split, label)
            turn = int(index) // sources.NUM_CLASSES
            return np.array([order[turn % len(order)]], dtype=np.int64)
        classes = self._draw_classes(spec, rng)
        return np.array([rng.choice(pool[c]) for c in classes], np.int64)

    def _pool_order(self, split, label):
        key = (split, label)
        if key not in self._orders:
            rng = np.random.default_rng(
                [self.seed, 2, zlib.crc32(split.encode("utf-8")), label]
            )
            pool = self._pools[SPLITS[split].pool][label]
            self._orders[key] = pool[rng.permutation(len(pool))]
        return self._orders[key]

    def _draw_classes(self, spec, rng):
        split = self.class_split
        count = int(rng.integers(self.min_objects, self.max_objects + 1))
        if spec.classes == "mixed":
            count = max(count, 2)
            classes = [
                rng.choice(split.heldout_classes),
                rng.choice(split.detection_classes),
            ] + list(rng.integers(0, sources.NUM_CLASSES, size=count - 2))
            return [int(c) for c in rng.permutation(classes)]
        allowed = {
            "all": tuple(range(sources.NUM_CLASSES)),
            "detection": split.detection_classes,
            "heldout": split.heldout_classes,
        }[spec.classes]
        return [int(c) for c in rng.choice(allowed, size=count)]

    def _acceptable(self, spec, labels):
        if spec.kind == "classification":
            return len(labels) == 1
        if spec.classes == "mixed":
            detection = self.class_split.is_detection_class(labels)
            return (
                len(labels) >= self.min_objects
                and detection.any()
                and not detection.all()
            )
        return len(labels) >= self.min_objects
