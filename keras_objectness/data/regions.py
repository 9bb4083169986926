"""Regions for detection fine-tuning and for scoring proposals.

R-CNN-style training sees image regions, not whole images: regions that
overlap a ground-truth box by IoU >= 0.5 are labelled with its class, all
others with the background class. `sample_regions` draws such regions
around and away from the ground truth; `crop_regions` cuts them out with
some context and resizes them to the network input.

Ignored ground truth (COCO crowd regions, VOC "difficult" objects) is
neither an object nor background: no region takes its class, and a region
that is not a positive and lies mostly on an ignored box (at least
`ignore_overlap` of the region's area inside it) is not drawn at all.
"""

import tensorflow as tf

from keras_objectness import _checks
from keras_objectness.layers import region_crops

# `keras.backend.epsilon()`'s default, as in Keras' `compute_iou`.
_EPSILON = 1e-7


def sample_regions(
    boxes,
    classes,
    num_regions,
    background_class,
    positive_fraction=0.25,
    positive_iou=0.5,
    seed=(0, 0),
    ignore=None,
    ignore_overlap=0.5,
    min_background_iou=0.0,
):
    """Samples labelled regions of one image.

    Candidates are ground-truth boxes jittered a little (mostly positives),
    jittered a lot (hard negatives that touch an object) and drawn anywhere
    in the image. Each is labelled by its best-overlapping ground truth.
    Up to `positive_fraction` of the returned regions are positives; the
    rest are background.

    Args:
        boxes: float32 `(max_boxes, 4)` relative yxyx, padded with `-1`.
        classes: int32 `(max_boxes,)`, `-1` for padding.
        num_regions: int. Regions returned.
        background_class: int. Label of background regions.
        positive_fraction: float in `[0, 1]`. Largest share of positives.
            Defaults to `0.25`.
        positive_iou: float. IoU at which a region takes an object's class.
            Defaults to `0.5`.
        seed: int tensor `(2,)`: stateless seed.
        ignore: optional bool `(max_boxes,)`, `True` for ground truth to
            ignore (crowd, difficult). Defaults to `None` (none).
        ignore_overlap: float. Share of a region's area inside an ignored
            box from which the region, unless it is a positive, is not
            drawn. Defaults to `0.5`.
        min_background_iou: float in `[0, 0.5)`. Background rows whose
            best IoU is below it get label `-1` (not drawn), so only
            background touching an object remains. Defaults to `0.0`.

    Returns:
        `(regions, labels, ious)`: float32 `(num_regions, 4)` relative yxyx,
        int32 `(num_regions,)`, float32 `(num_regions,)` best IoU. When no
        background region can be drawn (ignored boxes cover the image), the
        rows past the positives have label `-1`: drop them.
    """
    _checks.check_min_background_iou(min_background_iou)
    seeds = tf.random.experimental.stateless_split(seed, 4)
    valid = classes >= 0
    if ignore is None:
        ignore = tf.zeros_like(valid)
    ignore = tf.cast(ignore, tf.bool) & valid
    ignored_boxes = tf.boolean_mask(boxes, ignore)
    valid &= ~ignore
    gt_boxes = tf.boolean_mask(boxes, valid)
    gt_classes = tf.boolean_mask(classes, valid)
    num_gt = tf.shape(gt_classes)[0]
    per_kind = 2 * num_regions

    random_boxes = _random_boxes(per_kind, seeds[0])
    near = _jitter(gt_boxes, per_kind, 0.1, 0.15, seeds[1])
    touching = _jitter(gt_boxes, per_kind, 0.5, 0.5, seeds[2])
    candidates = tf.concat([near, touching, random_boxes], axis=0)
    candidates = tf.clip_by_value(candidates, 0.0, 1.0)
    has_area = (candidates[:, 2] - candidates[:, 0] > 1e-3) & (
        candidates[:, 3] - candidates[:, 1] > 1e-3
    )
    candidates = tf.boolean_mask(candidates, has_area)

    iou = tf.cond(
        num_gt > 0,
        lambda: pairwise_iou(candidates, gt_boxes),
        lambda: tf.zeros((tf.shape(candidates)[0], 1)),
    )
    best_iou = tf.reduce_max(iou, axis=-1)
    best_gt = tf.argmax(iou, axis=-1, output_type=tf.int32)
    positive = (best_iou >= positive_iou) & (num_gt > 0)
    labels = tf.where(
        positive,
        tf.gather(tf.concat([gt_classes, [-1]], 0), best_gt),
        background_class,
    )
    on_ignored = _covered_share(candidates, ignored_boxes) >= ignore_overlap
    drawn = positive | ~on_ignored

    # Shuffle, then take positives up to their share and fill with
    # background; repeat indices if there are too few candidates. Row
    # `num_candidates` is a stand-in with label -1, for when nothing is left.
    num_candidates = tf.shape(candidates)[0]
    candidates = tf.concat([candidates, [[0.0, 0.0, 1.0, 1.0]]], 0)
    labels = tf.concat([labels, [-1]], 0)
    best_iou = tf.concat([best_iou, [0.0]], 0)
    order = tf.random.experimental.stateless_shuffle(
        tf.range(num_candidates), seeds[3]
    )
    order = tf.boolean_mask(order, tf.gather(drawn, order))
    positive_index = tf.boolean_mask(order, tf.gather(positive, order))
    negative_index = tf.boolean_mask(order, ~tf.gather(positive, order))
    wanted = int(round(num_regions * positive_fraction))
    num_positive = tf.minimum(wanted, tf.size(positive_index))
    num_negative = num_regions - num_positive
    # Repeat background regions if too few; the stand-in when none is left.
    fill = tf.concat([negative_index, [num_candidates]], 0)
    size = tf.maximum(tf.size(negative_index), 1)
    negative_index = tf.gather(fill, tf.range(num_negative) % size)
    chosen = tf.concat([positive_index[:num_positive], negative_index], 0)
    labels, best_iou = tf.gather(labels, chosen), tf.gather(best_iou, chosen)
    labels = tf.where(
        (labels == background_class) & (best_iou < min_background_iou),
        -1,
        labels,
    )
    return (
        tf.ensure_shape(tf.gather(candidates, chosen), (num_regions, 4)),
        tf.ensure_shape(labels, (num_regions,)),
        tf.ensure_shape(best_iou, (num_regions,)),
    )


def crop_regions(images, regions, crop_size, context_padding=0.1):
    """Crops regions with context and resizes them to `crop_size`.

    The `tf.data` face of `keras_objectness.layers.RegionCrops` (the same
    function): each region grows by `context_padding` of its height and
    width on every side; parts outside the image read zeros.

    Args:
        images: `(batch, height, width, 3)` images (any real dtype).
        regions: float32 `(batch, num_regions, 4)` relative yxyx.
        crop_size: int. Side of the square crops.
        context_padding: float >= 0. Context added on each side, as a
            fraction of the region's size. Defaults to `0.1`.

    Returns:
        uint8 `(batch, num_regions, crop_size, crop_size, 3)`.
    """
    region_crops.check_crop_arguments(crop_size, context_padding)
    regions = tf.cast(regions, tf.float32)
    crops = region_crops.crop_and_resize(
        images,
        region_crops.pad_regions(regions, float(context_padding)),
        crop_size,
    )
    return tf.cast(tf.clip_by_value(tf.round(crops), 0, 255), tf.uint8)


def pairwise_iou(boxes1, boxes2):
    """IoU `(N, M)` of yxyx boxes `(N, 4)` and `(M, 4)`, in TensorFlow ops.

    The values of `keras.utils.bounding_boxes.compute_iou(...,
    bounding_box_format="yxyx")` (same formula and order of operations),
    written in TensorFlow so that `tf.data` maps run under every Keras
    backend.
    """
    y_min1, x_min1, y_max1, x_max1 = tf.split(boxes1, 4, axis=-1)
    y_min2, x_min2, y_max2, x_max2 = tf.split(boxes2, 4, axis=-1)
    height = tf.maximum(
        0.0,
        tf.minimum(y_max1, tf.transpose(y_max2))
        - tf.maximum(y_min1, tf.transpose(y_min2)),
    )
    width = tf.maximum(
        0.0,
        tf.minimum(x_max1, tf.transpose(x_max2))
        - tf.maximum(x_min1, tf.transpose(x_min2)),
    )
    intersection = height * width
    area1 = tf.squeeze((y_max1 - y_min1) * (x_max1 - x_min1), axis=-1)
    area2 = tf.squeeze((y_max2 - y_min2) * (x_max2 - x_min2), axis=-1)
    union = area1[:, None] + area2[None, :] - intersection
    return intersection / (union + _EPSILON)


def _covered_share(regions, boxes):
    """Per region, the largest share of its area inside one of `boxes`."""
    top = tf.maximum(regions[:, None, 0], boxes[None, :, 0])
    left = tf.maximum(regions[:, None, 1], boxes[None, :, 1])
    bottom = tf.minimum(regions[:, None, 2], boxes[None, :, 2])
    right = tf.minimum(regions[:, None, 3], boxes[None, :, 3])
    inside = tf.maximum(bottom - top, 0.0) * tf.maximum(right - left, 0.0)
    area = (regions[:, 2] - regions[:, 0]) * (regions[:, 3] - regions[:, 1])
    share = inside / tf.maximum(area, 1e-12)[:, None]
    return tf.reduce_max(
        tf.concat([share, tf.zeros_like(share[:, :1])], axis=1), axis=1
    )


def _random_boxes(count, seed):
    values = tf.random.stateless_uniform((count, 4), seed)
    center_y, center_x = values[:, 0], values[:, 1]
    scale = tf.exp(tf.math.log(0.08) + values[:, 2] * tf.math.log(0.9 / 0.08))
    aspect = tf.exp((values[:, 3] - 0.5) * 2.0 * tf.math.log(2.0))
    half_height = 0.5 * scale / tf.sqrt(aspect)
    half_width = 0.5 * scale * tf.sqrt(aspect)
    return tf.stack(
        [
            center_y - half_height,
            center_x - half_width,
            center_y + half_height,
            center_x + half_width,
        ],
        axis=-1,
    )


def _jitter(gt_boxes, count, shift, log_scale, seed):
    """`count` boxes, each a random ground truth moved and rescaled."""
    num_gt = tf.shape(gt_boxes)[0]
    seeds = tf.random.experimental.stateless_split(seed, 2)
    pick = tf.random.stateless_uniform(
        (count,), seeds[0], 0, tf.maximum(num_gt, 1), dtype=tf.int32
    )
    base = tf.gather(
        tf.concat([gt_boxes, tf.constant([[0.25, 0.25, 0.75, 0.75]])], 0),
        tf.where(num_gt > 0, pick, num_gt),
    )
    noise = tf.random.stateless_uniform((count, 4), seeds[1], -1.0, 1.0)
    height = base[:, 2] - base[:, 0]
    width = base[:, 3] - base[:, 1]
    center_y = (base[:, 0] + base[:, 2]) / 2 + noise[:, 0] * shift * height
    center_x = (base[:, 1] + base[:, 3]) / 2 + noise[:, 1] * shift * width
    height = height * tf.exp(noise[:, 2] * log_scale)
    width = width * tf.exp(noise[:, 3] * log_scale)
    return tf.stack(
        [
            center_y - height / 2,
            center_x - width / 2,
            center_y + height / 2,
            center_x + width / 2,
        ],
        axis=-1,
    )
