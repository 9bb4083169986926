"""Batched `tf.data` pipelines from any TFDS detection dataset.

Each function takes a `tf.data.Dataset` of TFDS example dicts (`image`,
`objects/bbox`, `objects/label`: our `silhouette_scenes`, or `voc`/`coco`
loaded from a user's disk) and returns a shuffled (optional), augmented
(optional), batched and prefetched dataset ready for `fit`:

* `objectness_dataset`: `(images, box-bin targets)` for `BoxBinSoftmax`.
* `classification_dataset`: `(images, class)`, the class of the largest
  object, for image-level training.
* `region_dataset`: `(region crops, class or background)` for detection
  fine-tuning.
* `keras_cv_dataset`: `{"images", "bounding_boxes": {"boxes", "classes"}}`
  for keras-cv and other tools.

All take `input_context`, so they can feed
`strategy.distribute_datasets_from_function`: the input is sharded per
input pipeline and batched per replica.

Ignored ground truth (`objects/is_crowd` in COCO, `objects/is_difficult` in
VOC; `"ignore"` in `standardize_example`) follows the official evaluation
rules, where such a box is neither an object to find nor background:

* `objectness_dataset`: ignored boxes get no target mass; images whose
  only boxes are ignored are dropped. (A softmax target cannot leave bins
  out, so bins on an ignored box are pushed down like any unannotated
  place.)
* `classification_dataset`: the label is the class of the largest box that
  is not ignored; images without one are dropped.
* `region_dataset`: no region takes an ignored box's class, and regions
  lying mostly on an ignored box are not drawn as background either (see
  `keras_objectness.data.sample_regions`).
* `keras_cv_dataset`: ignored boxes are kept, flagged in
  `bounding_boxes["ignore"]`, which `keras_objectness.evaluation` reads.

Construction-time checks (a look at the first
`keras_objectness.data.examples.INSPECTED_EXAMPLES` = 64 examples, made
eagerly when the pipeline is built; `check_annotations=False` skips it):
`objectness_dataset`, `classification_dataset` and `region_dataset` raise a
`ValueError` when none of them has an object (a split without annotations,
such as COCO's `test`); every pipeline warns (`UserWarning`) when one of
them has more objects than `max_boxes`. Examples past the first 64 are not
seen: count a whole dataset with `keras_objectness.data.annotation_summary`.

Example:

```python
def dataset_fn(input_context):
    raw = tfds.load("silhouette_scenes", split="detection_train",
                    data_dir=folder)
    return objectness_dataset(raw, box_space, image_size=64,
                              batch_size=64, input_context=input_context)

dataset = strategy.distribute_datasets_from_function(dataset_fn)
```
"""

import tensorflow as tf

from keras_objectness import _checks
from keras_objectness import box_space as box_space_lib
from keras_objectness.data import augmentation
from keras_objectness.data import examples as examples_lib
from keras_objectness.data import regions as regions_lib
from keras_objectness.layers import region_crops
from keras_objectness.layers.gaussian_box_targets import GaussianBoxTargets


def objectness_dataset(
    dataset,
    box_space,
    image_size,
    batch_size,
    num_classes,
    max_boxes=16,
    keep_classes=None,
    center_sigma=0.5,
    scale_sigma=0.5,
    aspect_ratio_sigma=0.5,
    shuffle_buffer=None,
    augment=False,
    seed=0,
    input_context=None,
    check_annotations=True,
):
    """`(images, targets)` batches for class-generic objectness training.

    Images without any kept box to find are dropped (their target would be
    empty); ignored boxes (crowd, difficult) get no target mass.

    Args:
        dataset: `tf.data.Dataset` of TFDS detection examples.
        box_space: `keras_objectness.BoxSpace` of the model's head.
        image_size: int. Images are resized to `(image_size, image_size)`.
        batch_size: int. Global batch size (divided among replicas when
            `input_context` is given).
        num_classes: int. Number of object classes in the dataset.
        max_boxes: int. Objects per image considered; more are dropped
            (ignored ones, then the smallest), with a warning when the
            construction-time look sees it happen. Defaults to `16`.
        keep_classes: optional class ids whose boxes are used (the classes
            in B); others are ignored. Defaults to `None` (all).
        center_sigma, scale_sigma, aspect_ratio_sigma: widths of the
            Gaussian targets, in bins. Default to `0.5`.
        shuffle_buffer: optional int. Shuffle with this buffer. Defaults to
            `None` (no shuffling).
        augment: bool. Random horizontal flips that move the boxes.
            Defaults to `False`.
        seed: int. Seed of shuffling and augmentation. Defaults to `0`.
        input_context: optional `tf.distribute.InputContext`.
        check_annotations: bool. Look at the first 64 examples when
            building the pipeline: raise a `ValueError` if none has an
            object, warn if one has more than `max_boxes`. Defaults to
            `True`.

    Returns:
        `tf.data.Dataset` of `(uint8 images (batch, size, size, 3),
        float32 targets (batch, num_bins))`.
    """
    targets = GaussianBoxTargets(
        box_space_lib.get(box_space),
        center_sigma=center_sigma,
        scale_sigma=scale_sigma,
        aspect_ratio_sigma=aspect_ratio_sigma,
        bounding_box_format="rel_yxyx",
    )
    dataset, batch_size = _prepare(
        dataset,
        image_size,
        batch_size,
        num_classes,
        max_boxes,
        keep_classes,
        shuffle_buffer,
        augment,
        seed,
        input_context,
        drop_empty=True,
        check_annotations=check_annotations,
    )
    dataset = dataset.map(
        lambda example: (
            example["images"],
            targets.compute_targets(
                example["bounding_boxes"]["boxes"],
                _found_classes(example["bounding_boxes"]),
            ),
        ),
        num_parallel_calls=tf.data.AUTOTUNE,
    )
    return _prefetch(dataset)


def classification_dataset(
    dataset,
    image_size,
    batch_size,
    num_classes,
    keep_classes=None,
    shuffle_buffer=None,
    augment=False,
    seed=0,
    input_context=None,
    check_annotations=True,
):
    """`(images, labels)` batches with the class of each image's largest
    object: the image-level label of classification examples.

    Ignored objects (crowd, difficult) do not give the label; images with
    no other object are dropped.

    Args:
        dataset: `tf.data.Dataset` of TFDS detection examples.
        image_size: int. Images are resized to `(image_size, image_size)`.
        batch_size: int. Global batch size.
        num_classes: int. Number of classes in the dataset.
        keep_classes: optional class ids to keep; objects of other classes
            are ignored when choosing the label. Defaults to `None`.
        shuffle_buffer, augment, seed, input_context, check_annotations:
            as in `objectness_dataset` (no `max_boxes` warning: one object
            per image is all this pipeline reads).

    Returns:
        `tf.data.Dataset` of `(uint8 images, int32 labels (batch,))`.
    """
    dataset, batch_size = _prepare(
        dataset,
        image_size,
        batch_size,
        num_classes,
        1,
        keep_classes,
        shuffle_buffer,
        augment,
        seed,
        input_context,
        drop_empty=True,
        check_annotations=check_annotations,
        warn_max_boxes=False,
    )
    dataset = dataset.map(
        lambda example: (
            example["images"],
            example["bounding_boxes"]["classes"][:, 0],
        ),
        num_parallel_calls=tf.data.AUTOTUNE,
    )
    return _prefetch(dataset)


def region_dataset(
    dataset,
    crop_size,
    batch_size,
    num_classes,
    regions_per_image=16,
    positive_fraction=0.25,
    context_padding=0.1,
    max_boxes=16,
    keep_classes=None,
    shuffle_buffer=None,
    augment=False,
    seed=0,
    input_context=None,
    check_annotations=True,
    min_background_iou=0.0,
):
    """`(crops, labels)` batches of labelled regions for fine-tuning.

    Regions with IoU >= 0.5 to a kept object take its class; the others take
    the background class `num_classes` (so labels run over
    `num_classes + 1` values). Objects of classes outside `keep_classes`
    are not boxes at all for this purpose: regions on them count as
    background, as they would in a detection set labelled only for B.
    Ignored objects (crowd, difficult) are neither: no region takes their
    class and regions mostly on them are not drawn (so an image may give
    fewer than `regions_per_image` regions).

    Args:
        dataset: `tf.data.Dataset` of TFDS detection examples.
        crop_size: int. Side of the square crops.
        batch_size: int. Global batch size, in regions.
        num_classes: int. Number of object classes (background excluded).
        regions_per_image: int. Regions sampled per image. Defaults to 16.
        positive_fraction: float in `[0, 1]`. Largest share of object
            regions per image. Defaults to `0.25`.
        context_padding: float. Context added on each side of a region.
            Defaults to `0.1`.
        max_boxes, keep_classes, shuffle_buffer, augment, seed,
        input_context, check_annotations: as in `objectness_dataset`.
        min_background_iou: float in `[0, 0.5)`. Background regions whose
            best IoU with a kept object is below this are not drawn, so
            only those that touch an object remain (Fast R-CNN's
            negatives overlap an object by 0.1 to 0.5): for scenes where
            a region far from every box may hold an unboxed object.
            Defaults to `0.0` (every background region).

    Returns:
        `tf.data.Dataset` of `(uint8 crops (batch, crop, crop, 3),
        int32 labels (batch,))`.
    """
    _checks.check_positive_int("regions_per_image", regions_per_image)
    _checks.check_min_background_iou(min_background_iou)
    if (
        not isinstance(positive_fraction, (int, float))
        or isinstance(positive_fraction, bool)
        or not 0 <= positive_fraction <= 1
    ):
        raise ValueError(
            "`positive_fraction` must be in [0, 1]. "
            f"Received: positive_fraction={positive_fraction!r}"
        )
    region_crops.check_crop_arguments(crop_size, context_padding)
    dataset, batch_size = _prepare(
        dataset,
        None,
        batch_size,
        num_classes,
        max_boxes,
        keep_classes,
        None,
        augment,
        seed,
        input_context,
        drop_empty=False,
        batch=False,
        check_annotations=check_annotations,
    )
    seeds = tf.data.Dataset.random(seed=seed + 1).batch(2)

    def crops(example, region_seed):
        boxes = example["bounding_boxes"]["boxes"]
        regions, labels, _ = regions_lib.sample_regions(
            boxes,
            example["bounding_boxes"]["classes"],
            regions_per_image,
            background_class=num_classes,
            positive_fraction=positive_fraction,
            seed=region_seed,
            ignore=example["bounding_boxes"]["ignore"],
            min_background_iou=min_background_iou,
        )
        # Rows with label -1: nothing could be drawn (all on ignored boxes,
        # or background too far from every object).
        drawn = labels >= 0
        regions = tf.boolean_mask(regions, drawn)
        labels = tf.boolean_mask(labels, drawn)
        images = regions_lib.crop_regions(
            example["images"][None], regions[None], crop_size, context_padding
        )[0]
        return tf.data.Dataset.from_tensor_slices((images, labels))

    dataset = tf.data.Dataset.zip((dataset, seeds)).flat_map(crops)
    if shuffle_buffer:
        dataset = dataset.shuffle(shuffle_buffer, seed=seed)
    return _prefetch(dataset.batch(batch_size))


def keras_cv_dataset(
    dataset,
    image_size,
    batch_size,
    num_classes,
    max_boxes=16,
    keep_classes=None,
    shuffle_buffer=None,
    augment=False,
    seed=0,
    input_context=None,
    check_annotations=True,
):
    """Batched keras-cv style dicts.

    Works on splits without annotations too (all rows padding), e.g. for
    inference; `check_annotations` only warns about `max_boxes` here.

    Returns:
        `tf.data.Dataset` of `{"images": uint8 (batch, size, size, 3),
        "bounding_boxes": {"boxes": (batch, max_boxes, 4) relative yxyx,
        "classes": (batch, max_boxes), "ignore": bool (batch, max_boxes)}}`,
        padded with `-1` (`False` for `"ignore"`). Arguments as in
        `objectness_dataset`.
    """
    dataset, batch_size = _prepare(
        dataset,
        image_size,
        batch_size,
        num_classes,
        max_boxes,
        keep_classes,
        shuffle_buffer,
        augment,
        seed,
        input_context,
        drop_empty=False,
        check_annotations=check_annotations,
        need_boxes=False,
    )
    return _prefetch(dataset)


def _prepare(
    dataset,
    image_size,
    batch_size,
    num_classes,
    max_boxes,
    keep_classes,
    shuffle_buffer,
    augment,
    seed,
    input_context,
    drop_empty,
    batch=True,
    check_annotations=True,
    need_boxes=True,
    warn_max_boxes=True,
):
    """Shared front of every pipeline.

    Only decoding and padding run per example; resizing (when all images
    share a static size), flips and everything after run on whole batches,
    which is several times faster on a CPU.
    """
    _checks.check_positive_int("batch_size", batch_size)
    if image_size is not None:
        _checks.check_positive_int("image_size", image_size)
    examples_lib.check_has_objects(dataset)
    if not isinstance(check_annotations, bool):
        raise ValueError(
            "`check_annotations` must be a bool. "
            f"Received: check_annotations={check_annotations!r}"
        )
    # Argument checks before the look at the data.
    examples_lib.check_common(num_classes, max_boxes, keep_classes)
    if check_annotations:
        examples_lib.check_annotations(
            dataset,
            max_boxes if warn_max_boxes else float("inf"),
            keep_classes=keep_classes,
            need_boxes=need_boxes,
            stacklevel=4,
        )
    if input_context is not None:
        dataset = dataset.shard(
            input_context.num_input_pipelines, input_context.input_pipeline_id
        )
        batch_size = input_context.get_per_replica_batch_size(batch_size)
    dataset = examples_lib.detection_examples(
        dataset,
        num_classes,
        max_boxes=max_boxes,
        keep_classes=keep_classes,
        drop_empty=drop_empty,
    )
    static_size = dataset.element_spec["images"].shape[:2]
    resize_batches = image_size is not None and static_size.is_fully_defined()
    if image_size is not None and (not resize_batches or not batch):
        dataset = dataset.map(
            lambda example: _resize(example, image_size),
            num_parallel_calls=tf.data.AUTOTUNE,
        )
    if shuffle_buffer:
        dataset = dataset.shuffle(shuffle_buffer, seed=seed)
    if batch:
        dataset = dataset.batch(batch_size, num_parallel_calls=tf.data.AUTOTUNE)
        if resize_batches:
            dataset = dataset.map(
                lambda example: _resize(example, image_size),
                num_parallel_calls=tf.data.AUTOTUNE,
            )
    if augment:
        seeds = tf.data.Dataset.random(seed=seed).batch(2)
        dataset = tf.data.Dataset.zip((dataset, seeds)).map(
            augmentation.random_flip_left_right,
            num_parallel_calls=tf.data.AUTOTUNE,
        )
    return dataset, batch_size


def _found_classes(bounding_boxes):
    """Classes with ignored boxes marked as padding (`-1`)."""
    return tf.where(bounding_boxes["ignore"], -1, bounding_boxes["classes"])


def _resize(example, image_size):
    # Relative boxes are unchanged by resizing the whole image.
    images = example["images"]
    if images.shape[-3:-1] == (image_size, image_size):
        return example
    images = tf.image.resize(images, (image_size, image_size))
    images = tf.cast(tf.clip_by_value(tf.round(images), 0, 255), tf.uint8)
    return {**example, "images": images}


def _prefetch(dataset):
    return dataset.prefetch(tf.data.AUTOTUNE)
