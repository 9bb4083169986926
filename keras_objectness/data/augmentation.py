"""Box-aware augmentation for `tf.data` pipelines."""

import tensorflow as tf


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
