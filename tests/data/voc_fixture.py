"""A few hand-made examples in the feature layout of TFDS's `voc`.

Written independently of the `silhouette_scenes` builder: the examples are
encoded, serialised and decoded with `tfds.features`, as TFDS does when it
reads a prepared dataset from disk.
"""

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

VOC_CLASSES = (
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat",
    "chair", "cow", "diningtable", "dog", "horse", "motorbike", "person",
    "pottedplant", "sheep", "sofa", "train", "tvmonitor",
)  # fmt: skip


def voc_features():
    label = tfds.features.ClassLabel(names=VOC_CLASSES)
    return tfds.features.FeaturesDict(
        {
            "image": tfds.features.Image(),
            "image/filename": tfds.features.Text(),
            "objects": tfds.features.Sequence(
                {
                    "label": label,
                    "bbox": tfds.features.BBoxFeature(),
                    "pose": tfds.features.ClassLabel(
                        names=["frontal", "rear", "left", "right"]
                    ),
                    "is_truncated": np.bool_,
                    "is_difficult": np.bool_,
                }
            ),
            "labels": tfds.features.Sequence(label),
            "labels_no_difficult": tfds.features.Sequence(label),
        }
    )


# (image height, width, [(label, (ymin, xmin, ymax, xmax) in pixels)])
EXAMPLES = (
    (60, 90, [(14, (10, 20, 50, 50)), (11, (30, 60, 55, 85))]),
    (80, 64, [(7, (8, 4, 40, 30))]),
    (50, 50, []),
    (64, 96, [(2, (5, 70, 25, 94)), (14, (20, 10, 60, 40)),
              (6, (40, 50, 58, 80))]),
)  # fmt: skip


def _example(index, height, width, objects):
    rng = np.random.default_rng(index)
    image = rng.integers(0, 60, (height, width, 3)).astype("uint8")
    records = []
    for label, (y0, x0, y1, x1) in objects:
        image[y0:y1, x0:x1] = 200 + 5 * (label % 10)
        records.append(
            {
                "label": label,
                "bbox": tfds.features.BBox(
                    y0 / height, x0 / width, y1 / height, x1 / width
                ),
                "pose": 0,
                "is_truncated": False,
                "is_difficult": False,
            }
        )
    labels = sorted({label for label, _ in objects})
    return {
        "image": image,
        "image/filename": f"{index:06d}.jpg",
        "objects": records,
        "labels": labels,
        "labels_no_difficult": labels,
    }


def voc_dataset(corrupt_index=None, skip_decoding=False):
    """The fixture as TFDS would yield it.

    Args:
        corrupt_index: optional example whose image bytes are broken.
        skip_decoding: leave images encoded, as with
            `decoders={"image": tfds.decode.SkipDecoding()}`.
    """
    features = voc_features()
    serialized = []
    for index, (height, width, objects) in enumerate(EXAMPLES):
        encoded = features.encode_example(
            _example(index, height, width, objects)
        )
        if index == corrupt_index:
            encoded["image"] = b"\x89PNG not really an image"
        serialized.append(features.serialize_example(encoded))
    decoders = {"image": tfds.decode.SkipDecoding()} if skip_decoding else None
    return tf.data.Dataset.from_tensor_slices(serialized).map(
        lambda record: features.deserialize_example(record, decoders=decoders)
    )


def boxes_of(index):
    height, width, objects = EXAMPLES[index]
    return [
        (label, (y0 / height, x0 / width, y1 / height, x1 / width))
        for label, (y0, x0, y1, x1) in objects
    ]
