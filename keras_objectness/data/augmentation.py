"""Box-aware augmentation for `tf.data` pipelines."""

import tensorflow as tf

from keras_objectness import _checks


def random_flip_left_right(example, seed):
    """Flips images and their boxes horizontally, each with probability 1/2.

    Works on one example or on a batch (vectorised: one coin per image).

    Args:
        example: dict from `standardize_example`, batched or not:
            `"images"` and `"bounding_boxes"` with relative yxyx `"boxes"`
            (padding rows, class `-1`, are left untouched).
        seed: int tensor of shape `(2,)`, a stateless random seed.

    Returns:
        The example with the chosen images and boxes flipped.
    """
    images = example["images"]
    boxes = example["bounding_boxes"]["boxes"]
    classes = example["bounding_boxes"]["classes"]
    unbatched = images.shape.rank == 3
    if unbatched:
        images, boxes, classes = images[None], boxes[None], classes[None]
    flip = tf.random.stateless_uniform(tf.shape(images)[:1], seed) < 0.5
    images = tf.where(
        flip[:, None, None, None], tf.reverse(images, [2]), images
    )
    y0, x0, y1, x1 = tf.unstack(boxes, axis=-1)
    flipped = tf.stack([y0, 1.0 - x1, y1, 1.0 - x0], axis=-1)
    move = flip[:, None] & (classes >= 0)
    boxes = tf.where(move[..., None], flipped, boxes)
    if unbatched:
        images, boxes = images[0], boxes[0]
    return {
        **example,
        "images": images,
        "bounding_boxes": {**example["bounding_boxes"], "boxes": boxes},
    }


def random_square_crops(dataset, crop_size, min_side=0.75, seed=0):
    """Random square crops of the images of `(images, labels)` batches.

    Each crop covers `min_side` to all of the image's side, anywhere inside
    it, resized to `crop_size`: the shifts and scale changes of a region
    proposal around an object, and more varied training images for a small
    classification set. Stateless: the same seed gives the same crops.

    Args:
        dataset: `tf.data.Dataset` of `(uint8 images (batch, h, w, 3),
            labels)`, e.g. from `classification_dataset`.
        crop_size: int. Side of the crops, in pixels.
        min_side: float in (0, 1]. Smallest crop side, relative.
        seed: int.

    Returns:
        `tf.data.Dataset` of `(uint8 crops (batch, crop_size, crop_size, 3),
        labels)`.

    Example:

    >>> batches = classification_dataset(raw, None, 64, num_classes=20)
    >>> crops = random_square_crops(batches, crop_size=32, seed=1)
    """
    _checks.check_positive_int("crop_size", crop_size)
    if not 0 < min_side <= 1:
        raise ValueError(
            f"`min_side` must be in (0, 1]. Received: min_side={min_side!r}"
        )
    seeds = tf.data.Dataset.random(seed=seed + 7).batch(2)

    def crop(batch, pair_seed):
        images, labels = batch
        count = tf.shape(images)[0]
        side_seed, corner_seed = tf.unstack(
            tf.random.experimental.stateless_split(pair_seed, 2)
        )
        side = tf.random.stateless_uniform((count,), side_seed, min_side, 1.0)
        corner = tf.random.stateless_uniform((count, 2), corner_seed)
        corner *= (1.0 - side)[:, None]
        boxes = tf.concat([corner, corner + side[:, None]], axis=-1)
        crops = tf.image.crop_and_resize(
            tf.cast(images, tf.float32),
            boxes,
            tf.range(count),
            (crop_size, crop_size),
        )
        crops = tf.cast(tf.clip_by_value(tf.round(crops), 0, 255), tf.uint8)
        return crops, labels

    return tf.data.Dataset.zip((dataset, seeds)).map(
        crop, num_parallel_calls=tf.data.AUTOTUNE
    )
