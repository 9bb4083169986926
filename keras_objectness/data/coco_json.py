"""COCO-format JSON annotations + an image folder as a TFDS-style dataset.

Annotation tools (CVAT, Label Studio, Roboflow, makesense.ai, ...) export
boxes as a COCO "instances" JSON: `images` (`id`, `file_name`, `width`,
`height`), `categories` (`id`, `name`) and `annotations` (`image_id`,
`category_id`, `bbox` as absolute `[x, y, width, height]`, optional
`iscrowd`). `CocoJsonSource` reads such a file with pycocotools and yields
the examples TFDS's `coco` builder would, so every pipeline of
`keras_objectness.data` takes them unchanged:

```
{"image": uint8 (height, width, 3),
 "image/filename": str, "image/id": int64,
 "objects": {"bbox": float32 (num_objects, 4) relative yxyx,
             "label": int64 (num_objects,),
             "is_crowd": bool (num_objects,)}}
```

Data rules:

* Labels are contiguous ids `0 .. num_classes - 1`, one per category in
  the order of the category ids (the order of the official COCO files, and
  so of TFDS's `coco` builder); `class_names` gives their names.
* Boxes are divided by the image size written in the JSON and clipped to
  the image (TFDS's builder refuses boxes past the edge; exports often
  overshoot by a pixel). Boxes without area after clipping are kept here
  and dropped by the pipelines, like any degenerate box.
* Images are decoded in the `tf.data` graph (JPEG, PNG, BMP, GIF); any
  size; grayscale and RGBA images become 3-channel RGB.
* Images without annotations are yielded with empty `objects`.
* Missing image files raise a `ValueError` when the source is built.
"""

import contextlib
import io
import os

import numpy as np
import tensorflow as tf


class CocoJsonSource:
    """A COCO-format annotation file and its image folder.

    Args:
        annotation_file: str. Path of the COCO "instances" JSON.
        image_dir: str. Folder that `images[*].file_name` is relative to.

    Attributes:
        class_names: tuple of str. Category names, index = label.
        category_ids: tuple of int. COCO category id of each label.
        num_classes: int.
        num_images: int.
        num_objects: int. Annotations over all images.
        max_objects: int. Most annotations on one image: a `max_boxes`
            that drops nothing.

    Example:

    ```python
    source = CocoJsonSource("annotations/instances_default.json", "images")
    raw = source.as_dataset()
    batches = keras_objectness.data.keras_cv_dataset(
        raw, 128, 8, source.num_classes, max_boxes=source.max_objects
    )
    ```
    """

    def __init__(self, annotation_file, image_dir):
        for name, value in (
            ("annotation_file", annotation_file),
            ("image_dir", image_dir),
        ):
            if not isinstance(value, (str, os.PathLike)):
                raise TypeError(
                    f"`{name}` must be a path. Received: {name}={value!r}"
                )
        if not os.path.isfile(annotation_file):
            raise ValueError(
                "`annotation_file` must be an existing file. "
                f"Received: annotation_file={str(annotation_file)!r}"
            )
        if not os.path.isdir(image_dir):
            raise ValueError(
                "`image_dir` must be an existing folder. "
                f"Received: image_dir={str(image_dir)!r}"
            )
        self.annotation_file = str(annotation_file)
        self.image_dir = str(image_dir)
        coco = _load(self.annotation_file)
        categories = sorted(coco.dataset.get("categories", []), key=_id)
        if not categories:
            raise ValueError(
                "`annotation_file` must list `categories`. Received: "
                f"annotation_file={self.annotation_file!r} without any"
            )
        self.category_ids = tuple(int(c["id"]) for c in categories)
        self.class_names = tuple(str(c["name"]) for c in categories)
        self.num_classes = len(categories)
        label_of = {cid: i for i, cid in enumerate(self.category_ids)}
        records = []
        missing = []
        for image in sorted(coco.dataset.get("images", []), key=_id):
            path = os.path.join(self.image_dir, image["file_name"])
            if not os.path.isfile(path):
                missing.append(image["file_name"])
                continue
            height, width = float(image["height"]), float(image["width"])
            boxes, labels, crowd = [], [], []
            for annotation in coco.imgToAnns.get(image["id"], []):
                category = annotation["category_id"]
                if category not in label_of:
                    raise ValueError(
                        "`annotation_file` has an annotation of an unknown "
                        f"category. Received: category_id={category} in "
                        f"annotation id={annotation.get('id')}"
                    )
                x, y, w, h = (float(v) for v in annotation["bbox"])
                boxes.append([y / height, x / width, (y + h) / height,
                              (x + w) / width])  # fmt: skip
                labels.append(label_of[category])
                crowd.append(bool(annotation.get("iscrowd", 0)))
            records.append(
                (
                    path,
                    str(image["file_name"]),
                    int(image["id"]),
                    np.clip(
                        np.asarray(boxes, "float32").reshape(-1, 4), 0.0, 1.0
                    ),
                    np.asarray(labels, "int64"),
                    np.asarray(crowd, bool),
                )
            )
        if missing:
            raise ValueError(
                f"`image_dir` must hold every image of `annotation_file`: "
                f"{len(missing)} missing, e.g. {missing[:3]}. Received: "
                f"image_dir={self.image_dir!r}"
            )
        self._records = records
        self.num_images = len(records)
        self.num_objects = int(sum(len(r[4]) for r in records))
        self.max_objects = int(max([len(r[4]) for r in records] + [0]))

    def as_dataset(self, shuffle_files=False, seed=0):
        """The examples as a `tf.data.Dataset` (see the module docstring).

        Args:
            shuffle_files: bool. Shuffle the order of the images (all of
                them, once per epoch). Defaults to `False` (by image id).
            seed: int. Seed of the shuffling. Defaults to `0`.

        Returns:
            `tf.data.Dataset` of TFDS-style example dicts.
        """
        records = self._records
        lengths = np.asarray([len(r[4]) for r in records], "int64")
        paths = [r[0] for r in records]

        def ragged(index, dtype, inner_shape=()):
            values = [r[index] for r in records]
            flat = (
                np.concatenate(values).astype(dtype)
                if values
                else np.zeros((0, *inner_shape), dtype)
            )
            return tf.RaggedTensor.from_row_lengths(
                flat.reshape(-1, *inner_shape), lengths
            )

        dataset = tf.data.Dataset.from_tensor_slices(
            {
                "path": tf.constant(paths, tf.string, shape=(len(paths),)),
                "image/filename": tf.constant(
                    [r[1] for r in records], tf.string, shape=(len(paths),)
                ),
                "image/id": tf.constant(
                    [r[2] for r in records], tf.int64, shape=(len(paths),)
                ),
                "bbox": ragged(3, "float32", (4,)),
                "label": ragged(4, "int64"),
                "is_crowd": ragged(5, bool),
            }
        )
        if shuffle_files and len(records):
            dataset = dataset.shuffle(len(records), seed=seed)
        return dataset.map(_example, num_parallel_calls=tf.data.AUTOTUNE)

    def __repr__(self):
        return (
            f"CocoJsonSource({self.annotation_file!r}, {self.image_dir!r}): "
            f"{self.num_images} images, {self.num_objects} objects, "
            f"{self.num_classes} classes"
        )


def coco_json_dataset(
    annotation_file, image_dir, shuffle_files=False, seed=0, with_info=False
):
    """A COCO-format JSON + image folder as a `tf.data.Dataset`.

    The dataset yields the examples of TFDS's `coco` builder (see
    `keras_objectness.data.coco_json`), so it feeds every pipeline of
    `keras_objectness.data`; crowd annotations become ignored ground truth.

    Args:
        annotation_file: str. Path of the COCO "instances" JSON.
        image_dir: str. Folder of the images (`file_name` is relative to
            it).
        shuffle_files: bool. Shuffle the images. Defaults to `False`.
        seed: int. Seed of the shuffling. Defaults to `0`.
        with_info: bool. Also return the `CocoJsonSource` (class names,
            `num_classes`, `max_objects`), as `tfds.load(..., with_info=True)`
            returns the dataset info. Defaults to `False`.

    Returns:
        `tf.data.Dataset`, or `(dataset, CocoJsonSource)` with `with_info`.

    Example:

    ```python
    raw, source = coco_json_dataset("labels.json", "images", with_info=True)
    batches = keras_objectness.data.region_dataset(
        raw, crop_size=64, batch_size=32, num_classes=source.num_classes
    )
    ```
    """
    source = CocoJsonSource(annotation_file, image_dir)
    dataset = source.as_dataset(shuffle_files=shuffle_files, seed=seed)
    return (dataset, source) if with_info else dataset


def _id(record):
    return record["id"]


def _load(annotation_file):
    from pycocotools.coco import COCO

    # pycocotools prints progress; keep the caller's output clean.
    with contextlib.redirect_stdout(io.StringIO()):
        try:
            return COCO(annotation_file)
        except (ValueError, KeyError, TypeError) as error:
            raise ValueError(
                "`annotation_file` must be a COCO-format JSON. Received: "
                f"annotation_file={annotation_file!r} ({error})"
            ) from error


def _example(record):
    image = tf.io.decode_image(
        tf.io.read_file(record["path"]), channels=3, expand_animations=False
    )
    return {
        "image": tf.ensure_shape(image, (None, None, 3)),
        "image/filename": record["image/filename"],
        "image/id": record["image/id"],
        "objects": {
            "bbox": tf.reshape(record["bbox"], (-1, 4)),
            "label": record["label"],
            "is_crowd": record["is_crowd"],
        },
    }
