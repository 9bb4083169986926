"""From TFDS detection examples to padded keras-cv style dicts.

Works on any TFDS dataset with the standard detection features: `image`
(uint8 `(height, width, 3)`, decoded or, with
`decoders={"image": tfds.decode.SkipDecoding()}`, still encoded bytes),
`objects/bbox` (relative yxyx) and `objects/label` — our
`silhouette_scenes`, `voc`, `coco`, `coco_json_dataset` and others.

Data rules, applied inside the `tf.data` graph:

* Corrupt image bytes: with encoded images, examples whose bytes do not
  decode are skipped (`skip_corrupt_images=True`, with a logged warning) or
  raise `InvalidArgumentError` when iterated.
* Labels outside `[0, num_classes)` raise `InvalidArgumentError` naming
  `num_classes` when iterated: such a label means the dataset and the model
  disagree, which no silent rule can fix. The one exception is `-1`,
  keras-cv's padding label: such rows are dropped like padding.
* Images with zero height or width are dropped (nothing to crop or find).
  Images with one channel (grayscale) are repeated to three; other channel
  counts raise a `ValueError` when the pipeline is built, if the dataset's
  element spec tells them.
* Boxes are clipped to the image; boxes without area are dropped.
* Objects of classes outside `keep_classes` are dropped (the held-out
  protocol: detection training sees boxes of the classes in B only).
* Objects flagged `objects/is_crowd` (COCO) or `objects/is_difficult`
  (VOC), when the dataset has those features, are kept with
  `"ignore": True`: the official protocols neither count them as objects
  to find nor count detections on them as errors, and the pipelines keep
  them out of training targets (see `keras_objectness.data.pipelines`).
* At most `max_boxes` objects are kept per image: the objects to find
  (not ignored) first, each group largest first. Truncation cannot warn
  from inside the graph without a stateful op (which would break
  `tf.data` iterator checkpoints); `annotation_summary` counts objects
  instead, and the pipelines run it on the first examples when they are
  built and warn when `max_boxes` is too small.
* Images left with no box to find keep an all-padding row set (ignored
  boxes aside); pipelines that need a box drop them (`drop_empty=True`).
"""

import numbers
import warnings

import tensorflow as tf

# Flags of `objects` that mark ground truth to ignore (TFDS feature names).
IGNORE_FEATURES = ("is_crowd", "is_difficult")


def standardize_example(
    example,
    num_classes,
    max_boxes=16,
    keep_classes=None,
):
    """One TFDS example -> `{"images", "bounding_boxes"}` with padding.

    Args:
        example: dict with `image`, and `objects` holding `bbox` and
            `label`.
        num_classes: int. Number of object classes (without background).
        max_boxes: int. Rows of the padded box tensor; extra objects are cut
            (objects to find before ignored ones, larger before smaller).
            Defaults to `16`.
        keep_classes: optional sequence of class ids whose objects are kept.
            Defaults to `None` (all).

    Returns:
        dict: `"images"` uint8 `(height, width, 3)`; `"bounding_boxes"`
        with `"boxes"` float32 `(max_boxes, 4)` relative yxyx and
        `"classes"` int32 `(max_boxes,)`, both padded with `-1`, and
        `"ignore"` bool `(max_boxes,)`: `True` for objects flagged
        `is_crowd` or `is_difficult` (always `False` for padding and for
        datasets without those features).
    """
    image = _decode_image(example["image"])
    objects = example["objects"]
    boxes = tf.cast(objects["bbox"], tf.float32)
    labels = tf.cast(objects["label"], tf.int32)
    ignore = tf.zeros_like(labels, dtype=tf.bool)
    for feature in IGNORE_FEATURES:
        if feature in objects:
            ignore |= tf.cast(objects[feature], tf.bool)
    checks = [
        tf.debugging.assert_less(
            labels,
            num_classes,
            message=f"an object label is >= `num_classes` ({num_classes})",
        ),
        tf.debugging.assert_greater_equal(
            labels,
            -1,
            message=(
                "an object label is negative: labels must be in "
                f"[0, `num_classes`) = [0, {num_classes}), or -1 for padding"
            ),
        ),
    ]
    with tf.control_dependencies(checks):
        labels = tf.identity(labels)
    boxes = tf.clip_by_value(boxes, 0.0, 1.0)
    keep = (
        (boxes[:, 2] > boxes[:, 0])
        & (boxes[:, 3] > boxes[:, 1])
        & (labels >= 0)
        & tf.reduce_all(tf.math.is_finite(boxes), axis=-1)
    )
    if keep_classes is not None:
        keep &= tf.reduce_any(
            labels[:, None] == tf.constant(keep_classes, tf.int32)[None],
            axis=-1,
        )
    boxes = tf.boolean_mask(boxes, keep)
    labels = tf.boolean_mask(labels, keep)
    ignore = tf.boolean_mask(ignore, keep)
    # Objects to find first, each group largest first, so truncation to
    # `max_boxes` drops ignored boxes, then the smallest objects. Areas are
    # at most 1, so adding 2 to the areas to find sorts them first.
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    key = area + tf.where(ignore, 0.0, 2.0)
    order = tf.argsort(key, direction="DESCENDING", stable=True)
    boxes = tf.gather(boxes, order)[:max_boxes]
    labels = tf.gather(labels, order)[:max_boxes]
    ignore = tf.gather(ignore, order)[:max_boxes]
    padding = max_boxes - tf.shape(labels)[0]
    boxes = tf.pad(boxes, [[0, padding], [0, 0]], constant_values=-1.0)
    labels = tf.pad(labels, [[0, padding]], constant_values=-1)
    ignore = tf.pad(ignore, [[0, padding]], constant_values=False)
    return {
        "images": image,
        "bounding_boxes": {
            "boxes": tf.ensure_shape(boxes, (max_boxes, 4)),
            "classes": tf.ensure_shape(labels, (max_boxes,)),
            "ignore": tf.ensure_shape(ignore, (max_boxes,)),
        },
    }


def detection_examples(
    dataset,
    num_classes,
    max_boxes=16,
    keep_classes=None,
    drop_empty=False,
    skip_corrupt_images=True,
):
    """Maps a TFDS detection dataset to unbatched padded dicts.

    Args:
        dataset: `tf.data.Dataset` of TFDS example dicts.
        num_classes: int. Number of object classes (without background).
        max_boxes: int. Rows of the padded box tensors. Defaults to `16`.
        keep_classes: optional sequence of class ids to keep (e.g. a class
            split's `detection_classes`). Defaults to `None` (all).
        drop_empty: bool. Drop images with no kept box to find (images
            whose only boxes are ignored ones go too). Defaults to `False`.
        skip_corrupt_images: bool. Skip examples whose encoded image does
            not decode. Defaults to `True`.

    Returns:
        `tf.data.Dataset` of `standardize_example` dicts.

    Example:

    ```python
    raw = tfds.load("voc/2007", split="train", data_dir=folder)
    examples = detection_examples(raw, num_classes=20, max_boxes=42)
    ```
    """
    check_common(num_classes, max_boxes, keep_classes)
    check_has_objects(dataset)
    if _has_encoded_images(dataset):
        # Decode in a stage of its own so that `ignore_errors` only ever
        # swallows decoding failures, never label or shape checks.
        dataset = dataset.map(
            _with_decoded_image, num_parallel_calls=tf.data.AUTOTUNE
        )
        if skip_corrupt_images:
            dataset = dataset.ignore_errors(log_warning=True)
    dataset = dataset.map(
        lambda example: standardize_example(
            example, num_classes, max_boxes, keep_classes
        ),
        num_parallel_calls=tf.data.AUTOTUNE,
    )
    dataset = dataset.filter(_has_pixels)
    if drop_empty:
        dataset = dataset.filter(has_box_to_find)
    return dataset


def _has_pixels(example):
    shape = tf.shape(example["images"])
    return (shape[0] > 0) & (shape[1] > 0)


def has_box_to_find(example):
    """Whether a `standardize_example` dict has a box that is not ignored.

    Boxes to find come first, so the first row tells.
    """
    boxes = example["bounding_boxes"]
    return (boxes["classes"][0] >= 0) & ~boxes["ignore"][0]


def annotation_summary(dataset, num_examples=None, keep_classes=None):
    """Counts the objects of the first examples of a TFDS detection dataset.

    Runs eagerly over the dataset (decoding its images, unless the dataset
    was loaded with `decoders={"image": tfds.decode.SkipDecoding()}`), so
    keep `num_examples` small on large datasets.

    Args:
        dataset: `tf.data.Dataset` of TFDS detection examples.
        num_examples: optional int. Examples to look at. Defaults to `None`
            (all of them).
        keep_classes: optional class ids; objects of other classes are not
            counted. Defaults to `None` (all).

    Returns:
        dict with `"num_examples"` (examples seen), `"num_annotated"`
        (examples with at least one counted object), `"num_objects"`,
        `"num_ignored"` (objects flagged `is_crowd` or `is_difficult`) and
        `"max_objects"` (most counted objects in one example).

    Example:

    ```python
    summary = annotation_summary(tfds.load("voc/2007", split="test"))
    examples = detection_examples(raw, 20, max_boxes=summary["max_objects"])
    ```
    """
    check_has_objects(dataset)
    if num_examples is not None and (
        not _is_int(num_examples) or num_examples < 1
    ):
        raise ValueError(
            "`num_examples` must be a positive integer or None. "
            f"Received: num_examples={num_examples!r}"
        )
    keep = None
    if keep_classes is not None:
        keep = tf.constant(tuple(keep_classes), tf.int64)

    def counts(example):
        objects = example["objects"]
        labels = tf.cast(objects["label"], tf.int64)
        counted = tf.ones_like(labels, dtype=tf.bool)
        if keep is not None:
            counted = tf.reduce_any(labels[:, None] == keep[None], axis=-1)
        ignore = tf.zeros_like(counted)
        for feature in IGNORE_FEATURES:
            if feature in objects:
                ignore |= tf.cast(objects[feature], tf.bool)
        return (
            tf.math.count_nonzero(counted),
            tf.math.count_nonzero(counted & ignore),
        )

    if num_examples is not None:
        dataset = dataset.take(num_examples)
    seen = annotated = total = ignored = most = 0
    for count, ignored_count in dataset.map(counts).as_numpy_iterator():
        seen += 1
        annotated += int(count > 0)
        total += int(count)
        ignored += int(ignored_count)
        most = max(most, int(count))
    return {
        "num_examples": seen,
        "num_annotated": annotated,
        "num_objects": total,
        "num_ignored": ignored,
        "max_objects": most,
    }


def check_has_objects(dataset, name="dataset"):
    """Raises unless examples have `image`, `objects/bbox` and
    `objects/label` (read from the element spec, without iterating).

    A `TypeError` for anything but a `tf.data.Dataset`; a `ValueError` for
    missing features or an image that is not `(height, width, 1 or 3)`
    (or encoded bytes).
    """
    if not isinstance(dataset, tf.data.Dataset):
        raise TypeError(
            f"`{name}` must be a `tf.data.Dataset` of TFDS detection "
            "examples (e.g. from `tfds.load`). "
            f"Received: {name} of type {type(dataset).__name__}"
        )
    spec = dataset.element_spec
    objects = spec.get("objects") if isinstance(spec, dict) else None
    if (
        not isinstance(spec, dict)
        or "image" not in spec
        or not isinstance(objects, dict)
        or "bbox" not in objects
        or "label" not in objects
    ):
        keys = sorted(spec) if isinstance(spec, dict) else spec
        raise ValueError(
            f"`{name}` must yield TFDS detection examples with `image`, "
            "`objects/bbox` and `objects/label` (a split without box "
            "annotations cannot be used here). Received: elements with "
            f"keys {keys}"
        )
    image = spec["image"]
    shape = getattr(image, "shape", None)
    if getattr(image, "dtype", None) == tf.string:
        return
    if (
        shape is None
        or shape.rank not in (None, 3)
        or (shape.rank == 3 and shape[-1] not in (None, 1, 3))
    ):
        raise ValueError(
            f"`{name}`'s `image` must be `(height, width, 3)` (RGB) or "
            "`(height, width, 1)` (grayscale, repeated to RGB), or encoded "
            f"bytes. Received: image spec {image}"
        )


# Examples that the pipelines look at when they are built.
INSPECTED_EXAMPLES = 64


def check_annotations(
    dataset, max_boxes, keep_classes=None, need_boxes=True, stacklevel=3
):
    """The pipelines' construction-time look at the first examples.

    Raises a `ValueError` when `need_boxes` and none of the first
    `INSPECTED_EXAMPLES` examples has an object (e.g. COCO's `test` split,
    whose `objects` are all empty); warns (`UserWarning`) when one of them
    has more objects than `max_boxes`. Only runs eagerly (it iterates the
    dataset); inside a `tf.function` it does nothing.
    """
    if not tf.executing_eagerly():
        return None
    summary = annotation_summary(
        dataset, INSPECTED_EXAMPLES, keep_classes=keep_classes
    )
    if need_boxes and summary["num_examples"] and not summary["num_annotated"]:
        raise ValueError(
            "`dataset` must have box annotations: none of its first "
            f"{summary['num_examples']} examples has an object"
            + ("" if keep_classes is None else " of `keep_classes`")
            + " (a split without annotations, such as COCO's `test`?). "
            "Received: a dataset with empty `objects`"
        )
    if summary["max_objects"] > max_boxes:
        warnings.warn(
            f"`max_boxes={max_boxes}` is below the {summary['max_objects']} "
            f"objects of one of the first {summary['num_examples']} "
            "examples: objects past `max_boxes` (ignored ones first, then "
            "the smallest) are dropped. Raise `max_boxes`, or count the "
            "whole dataset with "
            "`keras_objectness.data.annotation_summary(dataset)`.",
            UserWarning,
            stacklevel=stacklevel,
        )
    return summary


def _decode_image(image):
    if image.dtype == tf.string:
        image = tf.io.decode_image(image, channels=3, expand_animations=False)
    channels = image.shape[-1]
    if channels == 1:
        image = tf.image.grayscale_to_rgb(image)
    elif channels is None:
        image = tf.cond(
            tf.shape(image)[-1] == 1,
            lambda: tf.image.grayscale_to_rgb(image),
            lambda: image,
        )
    image = tf.ensure_shape(image, (None, None, 3))
    return tf.cast(image, tf.uint8)


def _with_decoded_image(example):
    example = dict(example)
    example["image"] = _decode_image(example["image"])
    return example


def _has_encoded_images(dataset):
    return dataset.element_spec["image"].dtype == tf.string


def check_common(num_classes, max_boxes, keep_classes):
    if not _is_int(num_classes) or num_classes < 1:
        raise ValueError(
            "`num_classes` must be a positive integer. "
            f"Received: num_classes={num_classes!r}"
        )
    if not _is_int(max_boxes) or max_boxes < 1:
        raise ValueError(
            "`max_boxes` must be a positive integer. "
            f"Received: max_boxes={max_boxes!r}"
        )
    if keep_classes is not None:
        keep = tuple(keep_classes)
        if not keep or not all(
            _is_int(c) and 0 <= c < num_classes for c in keep
        ):
            raise ValueError(
                "`keep_classes` must be a non-empty sequence of class ids in "
                f"[0, {num_classes}). Received: keep_classes={keep_classes!r}"
            )


def _is_int(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)
