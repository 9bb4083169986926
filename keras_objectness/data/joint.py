"""Batches that mix region crops and classification images (joint training).

Joint fine-tuning trains a detection network on two streams at once: region
crops of the detection classes B and the background (as `region_dataset`
makes), and image-labelled examples of all `K` classes (as
`classification_dataset` makes). `joint_dataset` mixes the two into single
batches with the labels that `keras_objectness.losses.JointDetectionLoss`
reads: detection labels as they are (`[0, K]`, background `K`), and
classification labels shifted to `[K + 1, 2K]`.
"""

import numbers

import numpy as np
import tensorflow as tf

from keras_objectness import _checks
from keras_objectness.class_split import ClassSplit
from keras_objectness.losses import joint_detection_loss

_MIXING = ("fixed", "sample")


def classification_examples_per_batch(batch_size, classification_fraction):
    """Classification examples in each batch of `joint_dataset` with
    `mixing="fixed"` (per replica): `round(fraction * batch_size)`.

    Callers that fill the rest of each batch (the region slots) count
    from this one number, so the two shares can never disagree.
    """
    return int(round(classification_fraction * batch_size))


def joint_dataset(
    region_examples,
    classification_examples,
    num_classes,
    batch_size,
    classification_fraction=0.25,
    mixing="fixed",
    detection_classes=None,
    repeat_classification=True,
    shuffle_buffer=None,
    drop_remainder=False,
    seed=0,
    input_context=None,
):
    """Mixed `(images, labels)` batches of regions and classification images.

    Both inputs hold `(image, label)` pairs, batched (e.g. the output of
    `region_dataset` and `classification_dataset`, which are unbatched
    here) or not, with images of the same shape and dtype (build the
    classification images with `image_size` equal to the regions'
    `crop_size`). Region labels are detection labels: a class of B or the
    background `num_classes`, and pass through unchanged. Classification
    labels are classes in `[0, num_classes)` and come out encoded as
    `label + num_classes + 1` (`keras_objectness.losses.
    encode_classification_labels`), so `JointDetectionLoss` tells the two
    kinds apart.

    Mixing:

    * `"fixed"`: every batch holds `round(classification_fraction *
      batch_size)` classification examples after the region examples; the
      share never varies. The last batch may be smaller when the regions
      run out (unless `drop_remainder`), with the same classification
      count.
    * `"sample"`: each example is drawn from the classification stream with
      probability `classification_fraction`
      (`tf.data.Dataset.sample_from_datasets`, seeded), so the count per
      batch varies around its mean.

    An epoch ends when the regions run out: the classification stream is
    repeated (`repeat_classification=True`), or the mixture also ends when
    it runs out (`False`).

    Labels are checked as the data flow: a region label outside
    `[0, num_classes]` (or, given `detection_classes`, outside B and the
    background) or a classification label outside `[0, num_classes)` stops
    the iteration with a `tf.errors.InvalidArgumentError` naming the rule.

    Args:
        region_examples: `tf.data.Dataset` of `(image, label)` region
            crops, batched or not, or a tuple `(images, labels)` of arrays.
        classification_examples: the same, for classification examples.
        num_classes: int. Number of object classes `K`, NOT counting the
            background.
        batch_size: int. Global batch size (divided among replicas when
            `input_context` is given; build the two inputs with the same
            `input_context` so each is sharded).
        classification_fraction: float in `[0, 1)`. Share of
            classification examples per batch. Defaults to `0.25`.
        mixing: `"fixed"` or `"sample"`, as above. Defaults to `"fixed"`.
        detection_classes: optional sorted ids of B, or a
            `keras_objectness.ClassSplit`: region labels must then be in B
            or the background. Defaults to `None` (any label in
            `[0, num_classes]`).
        repeat_classification: bool. Repeat the classification examples so
            the regions define the epoch. Defaults to `True`.
        shuffle_buffer: optional int. Shuffle each stream (as single
            examples) with this buffer before mixing. Defaults to `None`.
        drop_remainder: bool. Drop a last batch smaller than `batch_size`.
            Defaults to `False`.
        seed: int. Seed of shuffling and of `"sample"` mixing; the same
            seed gives the same batches. Defaults to `0`.
        input_context: optional `tf.distribute.InputContext`.

    Returns:
        `tf.data.Dataset` of `(images (batch, height, width, channels),
        int32 labels (batch,))`, images in the inputs' dtype.

    Example:

    ```python
    split = ClassSplit(10, detection_classes=(0, 1, 2, 3, 4))
    regions = region_dataset(
        raw, crop_size=32, batch_size=64, num_classes=10,
        keep_classes=split.detection_classes,
    )
    images = classification_dataset(
        raw, image_size=32, batch_size=64, num_classes=10
    )
    train = joint_dataset(
        regions, images, num_classes=10, batch_size=64,
        classification_fraction=0.25, detection_classes=split,
    )
    detector.compile(optimizer, JointDetectionLoss(10, split))
    detector.fit(train)
    ```

    References:
        - [Redmon and Farhadi, 2016. YOLO9000: Better, Faster,
          Stronger](https://arxiv.org/abs/1612.08242), section 3 (joint
          training on detection and classification data).
    """
    _checks.check_positive_int("num_classes", num_classes)
    _checks.check_positive_int("batch_size", batch_size)
    if (
        not isinstance(classification_fraction, numbers.Real)
        or isinstance(classification_fraction, bool)
        or not 0 <= classification_fraction < 1
    ):
        raise ValueError(
            "`classification_fraction` must be a number in [0, 1). "
            f"Received: classification_fraction={classification_fraction!r}"
        )
    if mixing not in _MIXING:
        raise ValueError(
            f"`mixing` must be one of {_MIXING}. Received: mixing={mixing!r}"
        )
    for name, value in (
        ("repeat_classification", repeat_classification),
        ("drop_remainder", drop_remainder),
    ):
        if not isinstance(value, (bool, np.bool_)):
            raise ValueError(
                f"`{name}` must be a bool. Received: {name}={value!r}"
            )
    if shuffle_buffer is not None:
        _checks.check_positive_int("shuffle_buffer", shuffle_buffer)
    if not isinstance(seed, numbers.Integral) or isinstance(seed, bool):
        raise ValueError(f"`seed` must be an integer. Received: seed={seed!r}")
    detection_keep = _detection_keep(detection_classes, num_classes)
    if input_context is not None:
        batch_size = input_context.get_per_replica_batch_size(batch_size)
    classification_count = classification_examples_per_batch(
        batch_size, classification_fraction
    )
    if mixing == "fixed" and classification_fraction > 0:
        if not 0 < classification_count < batch_size:
            raise ValueError(
                "With `mixing='fixed'`, `classification_fraction * "
                "batch_size` (per replica) must round to a count in "
                f"[1, batch_size). Received: classification_fraction="
                f"{classification_fraction!r}, batch_size={batch_size}"
            )

    regions = _unbatched("region_examples", region_examples)
    classification = _unbatched(
        "classification_examples", classification_examples
    )
    region_spec, classification_spec = (
        regions.element_spec[0],
        classification.element_spec[0],
    )
    if region_spec.dtype != classification_spec.dtype or (
        not region_spec.shape.is_compatible_with(classification_spec.shape)
    ):
        raise ValueError(
            "`region_examples` and `classification_examples` must hold "
            "images of the same shape and dtype. Received: region images "
            f"{region_spec.shape} {region_spec.dtype.name}, classification "
            f"images {classification_spec.shape} "
            f"{classification_spec.dtype.name}"
        )

    regions = regions.map(
        lambda image, label: (
            image,
            _checked_region_label(label, num_classes, detection_keep),
        ),
        num_parallel_calls=tf.data.AUTOTUNE,
    )
    classification = classification.map(
        lambda image, label: (
            image,
            _checked_classification_label(label, num_classes),
        ),
        num_parallel_calls=tf.data.AUTOTUNE,
    )
    if shuffle_buffer:
        regions = regions.shuffle(shuffle_buffer, seed=seed)
        classification = classification.shuffle(shuffle_buffer, seed=seed + 1)
    if repeat_classification:
        classification = classification.repeat()

    if classification_fraction == 0:
        dataset = regions.batch(batch_size, drop_remainder=drop_remainder)
    elif mixing == "sample":
        dataset = tf.data.Dataset.sample_from_datasets(
            [regions, classification],
            weights=[1.0 - classification_fraction, classification_fraction],
            seed=seed,
            stop_on_empty_dataset=True,
        ).batch(batch_size, drop_remainder=drop_remainder)
    else:
        dataset = fixed_share_batches(
            regions,
            classification,
            batch_size,
            classification_count,
            drop_remainder=drop_remainder,
        )
    return dataset.prefetch(tf.data.AUTOTUNE)


def fixed_share_batches(
    first, second, batch_size, second_count, drop_remainder=False
):
    """Batches of `first` examples with exactly `second_count` of `second`.

    Each batch holds `batch_size - second_count` examples of `first`, then
    `second_count` of `second`. `first` defines the epoch; repeat `second`
    when it is shorter. The last batch may hold fewer of `first` (unless
    `drop_remainder`), never fewer of `second`.

    Args:
        first: `tf.data.Dataset` of unbatched `(image, label)` pairs, or of
            any nested structure of tensors (e.g. `((image, regions),
            labels, weights)` of whole images).
        second: the same structure, with the same shapes and dtypes.
        batch_size: int. Examples per batch.
        second_count: int in `[1, batch_size)`. Examples of `second` per
            batch.
        drop_remainder: bool. Drop a last batch short of `first` examples.

    Returns:
        `tf.data.Dataset` of `(images, labels)` batches (batches of the
        given structure).
    """
    _checks.check_positive_int("batch_size", batch_size)
    if (
        not _checks.is_integer(second_count)
        or not 0 < second_count < batch_size
    ):
        raise ValueError(
            f"`second_count` must be an int in [1, batch_size={batch_size}). "
            f"Received: second_count={second_count!r}"
        )
    return tf.data.Dataset.zip(
        (
            first.batch(
                batch_size - second_count, drop_remainder=drop_remainder
            ),
            second.batch(second_count, drop_remainder=True),
        )
    ).map(
        lambda first, second: tf.nest.map_structure(
            lambda a, b: tf.concat([a, b], axis=0), first, second
        ),
        num_parallel_calls=tf.data.AUTOTUNE,
    )


def _detection_keep(detection_classes, num_classes):
    """Boolean table over `[0, num_classes]` of valid region labels."""
    keep = np.ones((num_classes + 1,), dtype=bool)
    if detection_classes is None:
        return keep
    if isinstance(detection_classes, ClassSplit):
        if detection_classes.num_classes != num_classes:
            raise ValueError(
                "A `ClassSplit` passed as `detection_classes` must have "
                "`num_classes` classes. Received: "
                f"num_classes={num_classes}, "
                f"detection_classes={detection_classes!r}"
            )
        detection_classes = detection_classes.detection_classes
    split = ClassSplit(num_classes, detection_classes)
    keep[:] = False
    keep[list(split.detection_classes)] = True
    keep[num_classes] = True
    return keep


def _unbatched(name, examples):
    """`examples` as a dataset of single `(image, label)` pairs."""
    if isinstance(examples, tuple) and len(examples) == 2:
        examples = tf.data.Dataset.from_tensor_slices(examples)
    if not isinstance(examples, tf.data.Dataset):
        raise ValueError(
            f"`{name}` must be a `tf.data.Dataset` of `(image, label)` "
            "pairs or a tuple `(images, labels)` of arrays. "
            f"Received: {name}={examples!r}"
        )
    spec = examples.element_spec
    if not isinstance(spec, tuple) or len(spec) != 2:
        raise ValueError(
            f"`{name}` must yield `(image, label)` pairs. Received: {name} "
            f"with element_spec={spec}"
        )
    image_rank, label_rank = spec[0].shape.rank, spec[1].shape.rank
    if image_rank == 4 and label_rank == 1:
        examples = examples.unbatch()
    elif not (image_rank == 3 and label_rank == 0):
        raise ValueError(
            f"`{name}` must yield images `(height, width, channels)` with "
            "scalar labels, or batches of them. Received: "
            f"{name} with element_spec={spec}"
        )
    if not spec[1].dtype.is_integer:
        raise ValueError(
            f"`{name}` must have integer labels. Received: {name} with "
            f"label dtype {spec[1].dtype.name}"
        )
    return examples


def _checked_region_label(label, num_classes, detection_keep):
    label = tf.cast(label, tf.int32)
    in_range = tf.logical_and(label >= 0, label <= num_classes)
    valid = tf.logical_and(
        in_range,
        tf.gather(
            tf.constant(detection_keep), tf.clip_by_value(label, 0, num_classes)
        ),
    )
    check = tf.debugging.Assert(
        valid,
        [
            "Region labels must be classes of `detection_classes` or the "
            f"background {num_classes}. Received: label",
            label,
        ],
    )
    with tf.control_dependencies([check]):
        return tf.identity(label)


def _checked_classification_label(label, num_classes):
    label = tf.cast(label, tf.int32)
    check = tf.debugging.Assert(
        tf.logical_and(label >= 0, label < num_classes),
        [
            f"Classification labels must be classes in [0, {num_classes}). "
            "Received: label",
            label,
        ],
    )
    with tf.control_dependencies([check]):
        return joint_detection_loss.encode_classification_labels(
            label, num_classes
        )
