"""Boxes for scenes that carry only image-level labels.

YOLO9000 trains a detector on classification images by applying each
image label at the box the model scores highest for it; Detic applies it
at the largest proposal. Here the classifier itself picks the box: among
class-generic windows of a scene, the one whose crop it scores highest for
the label. Those boxes then train the classes A without box labels as
regions, against the background, like B's boxes do, which is what
`method="joint_image_regions"` of `finetune_detector` does with them.
"""

import numpy as np
import tensorflow as tf

from keras_objectness import _checks
from keras_objectness import data
from keras_objectness.workflows import progress
from keras_objectness.workflows.proposals import sliding_windows


def image_label_boxes(
    classifier,
    scenes,
    num_classes,
    windows=256,
    context_padding=0.1,
    max_labels=16,
    scenes_per_chunk=32,
    verbose=False,
):
    """The classifier's best window for each image label of each scene.

    Args:
        classifier: a K-class classifier from square crops to softmax
            probabilities (the one fine-tuning starts from).
        scenes: `tf.data.Dataset` of TFDS detection examples, in a fixed
            order. Only their labels are read (`objects/label`); their
            boxes are never used.
        num_classes: int. `K`.
        windows: int or float32 `(W, 4)` relative yxyx candidate boxes. An
            int takes that many of `keras_objectness.workflows.
            sliding_windows`. Defaults to `256`.
        context_padding: float. Context around each crop, as in training.
            Defaults to `0.1`.
        max_labels: int. Distinct labels kept per scene. Defaults to `16`.
        scenes_per_chunk: int. Scenes scored by one `predict`.
        verbose: bool. Progress bar.

    Returns:
        `(boxes, labels, scores)`: float32 `(N, max_labels, 4)`, int32
        `(N, max_labels)` and float32 `(N, max_labels)` (the classifier's
        probability of the label at the chosen box), padded with `-1`.
    """
    if isinstance(windows, (int, np.integer)) and not isinstance(windows, bool):
        windows = sliding_windows(int(windows))
    windows = np.asarray(windows, "float32")
    if windows.ndim != 2 or windows.shape[-1] != 4:
        raise ValueError(
            "`windows` must be an int or relative yxyx boxes of shape "
            f"(W, 4). Received: windows with shape {windows.shape}"
        )
    windows = windows[~np.all(windows == -1.0, axis=-1)]
    if not _checks.is_integer(num_classes):
        raise TypeError(
            f"`num_classes` must be an int. Received: {num_classes!r}"
        )
    outputs = classifier.outputs[0].shape[-1]
    if outputs is not None and int(num_classes) != outputs:
        raise ValueError(
            f"`num_classes` ({num_classes}) must equal the classifier's "
            f"output size ({outputs})."
        )
    crop_size = int(classifier.inputs[0].shape[1])
    boxes, labels, scores = [], [], []
    # The bar needs a count: shown when the dataset knows its length.
    bar = progress.progress_bar(max(int(scenes.cardinality()), 0), verbose)
    chunk = []

    def flush():
        # One image at a time: scenes may differ in size.
        crops = tf.concat(
            [
                data.crop_regions(
                    image[None], windows[None], crop_size, context_padding
                )[0]
                for image, _ in chunk
            ],
            axis=0,
        )
        probabilities = classifier.predict(crops, batch_size=256, verbose=0)
        probabilities = probabilities.reshape(len(chunk), len(windows), -1)
        for (_, scene_labels), scene in zip(chunk, probabilities):
            found = np.full((max_labels, 4), -1.0, "float32")
            ids = np.full((max_labels,), -1, "int32")
            best = np.full((max_labels,), -1.0, "float32")
            for row, label in enumerate(scene_labels[:max_labels]):
                window = int(np.argmax(scene[:, label]))
                found[row], ids[row] = windows[window], label
                best[row] = scene[window, label]
            boxes.append(found)
            labels.append(ids)
            scores.append(best)
        if bar:
            bar.add(len(chunk))
        chunk.clear()

    for index, example in enumerate(scenes):
        scene_labels = np.unique(example["objects"]["label"].numpy())
        outside = scene_labels[
            (scene_labels < 0) | (scene_labels >= num_classes)
        ]
        if outside.size:
            # A label the classifier has no column for would index past
            # its softmax (or wrap around, for -1): refused, not dropped.
            raise ValueError(
                f"`scenes` labels must lie in [0, {num_classes}). Scene "
                f"{index} has labels {outside.tolist()}."
            )
        chunk.append((example["image"], scene_labels.astype("int32")))
        if len(chunk) == scenes_per_chunk:
            flush()
    if chunk:
        flush()
    if not boxes:
        raise ValueError("`scenes` must hold at least one scene.")
    return np.stack(boxes), np.stack(labels), np.stack(scores)


def image_label_scenes(scenes, boxes, labels):
    """`scenes` with their objects replaced by `boxes` and `labels`.

    Args:
        scenes: the `tf.data.Dataset` given to `image_label_boxes`, in the
            same order.
        boxes, labels: its first two results.

    Returns:
        `tf.data.Dataset` of `{"image", "objects": {"bbox", "label"}}`.
    """
    found = tf.data.Dataset.from_tensor_slices((boxes, labels))

    def replace(example, found):
        scene_boxes, scene_labels = found
        keep = scene_labels >= 0
        return {
            "image": example["image"],
            "objects": {
                "bbox": tf.boolean_mask(scene_boxes, keep),
                "label": tf.cast(tf.boolean_mask(scene_labels, keep), tf.int64),
            },
        }

    return tf.data.Dataset.zip((scenes, found)).map(replace)
