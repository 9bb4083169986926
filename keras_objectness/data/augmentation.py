"""Box-aware augmentation for `tf.data` pipelines."""

import tensorflow as tf


def random_flip_left_right(example, seed):
    """Flips an image and its boxes horizontally with probability 1/2.

    Args:
        example: dict from `standardize_example`: `"images"` and
            `"bounding_boxes"` with relative yxyx `"boxes"` (padding rows
            are left untouched).
        seed: int tensor of shape `(2,)`, a stateless random seed.

    Returns:
        The example, flipped or not.
    """
    flip = tf.random.stateless_uniform((), seed) < 0.5
    image = example["images"]
    boxes = example["bounding_boxes"]["boxes"]
    valid = example["bounding_boxes"]["classes"] >= 0
    y0, x0, y1, x1 = tf.unstack(boxes, axis=-1)
    flipped = tf.stack([y0, 1.0 - x1, y1, 1.0 - x0], axis=-1)
    flipped = tf.where(valid[:, None], flipped, boxes)
    return {
        **example,
        "images": tf.cond(
            flip, lambda: tf.image.flip_left_right(image), lambda: image
        ),
        "bounding_boxes": {
            **example["bounding_boxes"],
            "boxes": tf.where(flip, flipped, boxes),
        },
    }
