"""Selecting detection scenes by the classes they hold."""

import tensorflow as tf


def scenes_of_classes(dataset, classes):
    """Keeps the scenes whose every object belongs to `classes`.

    The held-out protocol in one line for datasets that have boxes for
    every class: fine-tuning on the scenes of B alone means no object of a
    held-out class A appears in training, not even as unlabelled
    background (which would teach the background unit to fire on A).

    Args:
        dataset: `tf.data.Dataset` of TFDS detection examples.
        classes: non-empty collection of class ids.

    Returns:
        The filtered `tf.data.Dataset` (scenes without objects are kept
        out too).

    Example:

    ```python
    b_scenes = scenes_of_classes(raw, split.detection_classes)
    ```
    """
    allowed = _class_ids(classes)

    def only_allowed(example):
        labels = tf.cast(example["objects"]["label"], tf.int64)
        inside = tf.reduce_any(labels[:, None] == allowed[None, :], axis=1)
        return tf.logical_and(tf.size(labels) > 0, tf.reduce_all(inside))

    return dataset.filter(only_allowed)


def scenes_with_classes(dataset, classes):
    """Keeps the scenes with at least one object of `classes`.

    The other side of `scenes_of_classes`: with `classes` the held-out
    classes A, the scenes that fine-tuning on B leaves out, whose image
    labels (not boxes) `method="joint_image_regions"` trains on.

    Args:
        dataset: `tf.data.Dataset` of TFDS detection examples.
        classes: non-empty collection of class ids.

    Returns:
        The filtered `tf.data.Dataset`.

    Example:

    ```python
    a_scenes = scenes_with_classes(raw, split.heldout_classes)
    ```
    """
    wanted = _class_ids(classes)

    def any_wanted(example):
        labels = tf.cast(example["objects"]["label"], tf.int64)
        return tf.reduce_any(labels[:, None] == wanted[None, :])

    return dataset.filter(any_wanted)


def _class_ids(classes):
    try:
        ids = sorted({int(i) for i in classes})
    except (TypeError, ValueError):
        raise ValueError(
            "`classes` must be a collection of integer class ids. "
            f"Received: classes={classes!r}"
        ) from None
    if not ids:
        raise ValueError(
            f"`classes` must not be empty. Received: classes={classes!r}"
        )
    return tf.constant(ids, tf.int64)
