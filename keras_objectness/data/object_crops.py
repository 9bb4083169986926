"""Crops of annotated objects as image-labelled classification examples."""

import tensorflow as tf

from keras_objectness import _checks
from keras_objectness.data import regions

# Flags under `objects` that mark boxes the official protocols ignore.
IGNORE_FLAGS = ("is_crowd", "is_difficult")


def object_crops(
    dataset,
    crop_size,
    context_padding=0.1,
    keep_classes=None,
    min_object_size=4,
):
    """One classification example per annotated object of a detection set.

    Each object is cut with `context_padding` of its size as context on
    every side (the way `RegionCrops` cuts proposals, so the classifier
    sees what region crops will look like), resized to
    `(crop_size, crop_size)` and given the object's label. The result has
    the layout of a TFDS classification example, so
    `keras_objectness.data.classification_dataset` takes it unchanged: an
    `"image"` and `"objects"` holding one whole-image box and its label.

    Crowd (`objects/is_crowd`, COCO) and difficult (`objects/is_difficult`,
    VOC) objects are skipped, and so are objects whose shorter side is
    under `min_object_size` pixels.

    Args:
        dataset: `tf.data.Dataset` of TFDS detection examples (`"image"`
            uint8 `(H, W, 3)` or `(H, W, 1)`, `"objects"` with `"bbox"`
            relative yxyx and `"label"`).
        crop_size: int. Side of the crops in pixels.
        context_padding: float >= 0. Context added on each side, as a
            fraction of the box's height and width. Defaults to `0.1`.
        keep_classes: optional collection of class ids; objects of other
            classes are skipped. Defaults to `None` (all).
        min_object_size: int. Smallest box side, in image pixels, that
            makes a crop. Defaults to `4`.

    Returns:
        `tf.data.Dataset` of `{"image": uint8 (crop_size, crop_size, 3),
        "objects": {"bbox": float32 (1, 4), "label": int64 (1,)}}`.

    Example:

    ```python
    raw = tfds.load("voc/2007", split="train")
    crops = object_crops(raw, crop_size=32)
    batches = classification_dataset(crops, 32, 64, num_classes=20)
    ```
    """
    _checks.check_positive_int("crop_size", crop_size)
    if not isinstance(context_padding, (int, float)) or context_padding < 0:
        raise ValueError(
            "`context_padding` must be a number >= 0. "
            f"Received: context_padding={context_padding!r}"
        )
    if not isinstance(min_object_size, (int, float)) or min_object_size < 0:
        raise ValueError(
            "`min_object_size` must be a number >= 0. "
            f"Received: min_object_size={min_object_size!r}"
        )
    spec = getattr(dataset, "element_spec", None)
    if (
        not isinstance(spec, dict)
        or "image" not in spec
        or "objects" not in spec
        or "bbox" not in spec["objects"]
        or "label" not in spec["objects"]
    ):
        raise ValueError(
            "`dataset` must be a tf.data.Dataset of detection examples with "
            "'image' and 'objects' ('bbox', 'label'). Received: element_spec="
            f"{spec!r}"
        )
    keep = None
    if keep_classes is not None:
        keep = tf.constant(sorted(int(i) for i in keep_classes), tf.int64)
    flags = [name for name in IGNORE_FLAGS if name in spec["objects"]]

    def crops_of(example):
        image = example["image"]
        if image.shape[-1] == 1:
            image = tf.image.grayscale_to_rgb(image)
        objects = example["objects"]
        boxes = tf.reshape(tf.cast(objects["bbox"], tf.float32), (-1, 4))
        labels = tf.cast(objects["label"], tf.int64)
        size = tf.cast(tf.shape(image)[:2], tf.float32)
        height = (boxes[:, 2] - boxes[:, 0]) * size[0]
        width = (boxes[:, 3] - boxes[:, 1]) * size[1]
        valid = tf.minimum(height, width) >= float(min_object_size)
        for name in flags:
            valid &= tf.logical_not(tf.cast(objects[name], tf.bool))
        if keep is not None:
            valid &= tf.reduce_any(labels[:, None] == keep[None, :], axis=1)
        boxes = tf.boolean_mask(boxes, valid)
        labels = tf.boolean_mask(labels, valid)
        # The cut of `RegionCrops`: what region crops will look like.
        crops = regions.crop_regions(
            image[None], boxes[None], crop_size, context_padding
        )[0]
        return tf.data.Dataset.from_tensor_slices((crops, labels))

    def as_example(crop, label):
        return {
            "image": tf.ensure_shape(crop, (crop_size, crop_size, 3)),
            "objects": {
                "bbox": tf.constant([[0.0, 0.0, 1.0, 1.0]], tf.float32),
                "label": label[None],
            },
        }

    return dataset.flat_map(crops_of).map(
        as_example, num_parallel_calls=tf.data.AUTOTUNE
    )
