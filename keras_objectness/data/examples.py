"""From TFDS detection examples to padded keras-cv style dicts.

Works on any TFDS dataset with the standard detection features: `image`
(uint8 `(height, width, 3)`, decoded or, with
`decoders={"image": tfds.decode.SkipDecoding()}`, still encoded bytes),
`objects/bbox` (relative yxyx) and `objects/label` — our
`silhouette_scenes`, `voc`, `coco` and others.

Data rules, applied inside the `tf.data` graph:

* Corrupt image bytes: with encoded images, examples whose bytes do not
  decode are skipped (`skip_corrupt_images=True`, with a logged warning) or
  raise `InvalidArgumentError` when iterated.
* Labels outside `[0, num_classes)` raise `InvalidArgumentError` naming
  `num_classes` when iterated: such a label means the dataset and the model
  disagree, which no silent rule can fix.
* Boxes are clipped to the image; boxes without area are dropped.
* Objects of classes outside `keep_classes` are dropped (the held-out
  protocol: detection training sees boxes of the classes in B only).
* Images left with no box keep an all-padding row set; pipelines that need
  a box drop them (`drop_empty=True`).
"""

import numbers

import tensorflow as tf


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
            (largest objects kept first). Defaults to `16`.
        keep_classes: optional sequence of class ids whose objects are kept.
            Defaults to `None` (all).

    Returns:
        dict: `"images"` uint8 `(height, width, 3)`; `"bounding_boxes"`
        with `"boxes"` float32 `(max_boxes, 4)` relative yxyx and
        `"classes"` int32 `(max_boxes,)`, both padded with `-1`.
    """
    image = _decode_image(example["image"])
    boxes = tf.cast(example["objects"]["bbox"], tf.float32)
    labels = tf.cast(example["objects"]["label"], tf.int32)
    check = tf.debugging.assert_less(
        labels,
        num_classes,
        message=f"an object label is >= `num_classes` ({num_classes})",
    )
    with tf.control_dependencies([check]):
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
    # Largest first, so truncation to `max_boxes` drops the smallest.
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    order = tf.argsort(area, direction="DESCENDING", stable=True)
    boxes = tf.gather(boxes, order)[:max_boxes]
    labels = tf.gather(labels, order)[:max_boxes]
    padding = max_boxes - tf.shape(labels)[0]
    boxes = tf.pad(boxes, [[0, padding], [0, 0]], constant_values=-1.0)
    labels = tf.pad(labels, [[0, padding]], constant_values=-1)
    return {
        "images": image,
        "bounding_boxes": {
            "boxes": tf.ensure_shape(boxes, (max_boxes, 4)),
            "classes": tf.ensure_shape(labels, (max_boxes,)),
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
        drop_empty: bool. Drop images with no kept box. Defaults to `False`.
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
    _check_common(num_classes, max_boxes, keep_classes)
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
    if drop_empty:
        dataset = dataset.filter(
            lambda example: example["bounding_boxes"]["classes"][0] >= 0
        )
    return dataset


def _decode_image(image):
    if image.dtype == tf.string:
        image = tf.io.decode_image(image, channels=3, expand_animations=False)
    image = tf.ensure_shape(image, (None, None, 3))
    return tf.cast(image, tf.uint8)


def _with_decoded_image(example):
    example = dict(example)
    example["image"] = _decode_image(example["image"])
    return example


def _has_encoded_images(dataset):
    return dataset.element_spec["image"].dtype == tf.string


def _check_common(num_classes, max_boxes, keep_classes):
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
