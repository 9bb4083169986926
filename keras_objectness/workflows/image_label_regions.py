"""Boxes for scenes that carry only image-level labels.

YOLO9000 trains a detector on classification images by applying each
image label at the box the model scores highest for it; Detic applies it
at the largest proposal. Here the classifier itself picks the box: among
class-generic candidates of a scene (fixed sliding windows, or the scene's
own selective-search proposals), the one whose crop it scores highest for
the label. Proposals fit objects far better than a fixed grid: on
`silhouette_scenes` with a classifier at 34 % top-1, the chosen box hits
(IoU >= 0.5) an object of the label for 38 % of the labels of A among 100
selective-search proposals, against 14 % among 256 sliding windows.
Those boxes then train the classes A without box labels as regions,
against the background, like B's boxes do, which is what the methods
`"joint_image_regions"` (sliding windows) and `"joint_image_proposals"`
(proposals) of `finetune_detector` do with them.
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
    num_proposals=100,
):
    """The classifier's best window for each image label of each scene.

    Args:
        classifier: a K-class classifier from square crops to softmax
            probabilities (the one fine-tuning starts from), or a
            detection network with `K + 1` outputs, background last (its
            probability of a label then competes with the background).
        scenes: `tf.data.Dataset` of TFDS detection examples, in a fixed
            order. Only their labels are read (`objects/label`); their
            boxes are never used.
        num_classes: int. `K`.
        windows: the candidate boxes: an int (that many of
            `keras_objectness.workflows.sliding_windows`), float32 `(W, 4)`
            relative yxyx boxes shared by every scene,
            `"selective_search"` (each scene's own `num_proposals`
            selective-search proposals), or a list with each scene's own
            `(W_i, 4)` boxes (e.g. from `scene_proposals`, to score the
            same proposals with several models).
        num_proposals: int. Proposals per scene for
            `windows="selective_search"`. Defaults to `100`.
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
    per_scene = None
    if isinstance(windows, str):
        if windows != "selective_search":
            raise ValueError(
                "`windows` must be an int, `(W, 4)` boxes, a list of each "
                f"scene's boxes or 'selective_search'. Received: "
                f"windows={windows!r}"
            )
        _checks.check_positive_int("num_proposals", num_proposals)
    elif isinstance(windows, (list, tuple)):
        per_scene = [
            _scene_windows(index, w) for index, w in enumerate(windows)
        ]
    else:
        windows = _fixed_windows(windows)
    if not _checks.is_integer(num_classes):
        raise TypeError(
            f"`num_classes` must be an int. Received: {num_classes!r}"
        )
    outputs = classifier.outputs[0].shape[-1]
    if outputs is not None and outputs not in (num_classes, num_classes + 1):
        raise ValueError(
            f"`num_classes` ({num_classes}) must equal the classifier's "
            f"output size ({outputs}), or that size minus the background "
            "of a detection network."
        )
    crop_size = int(classifier.inputs[0].shape[1])
    boxes, labels, scores = [], [], []
    # The bar needs a count: shown when the dataset knows its length.
    bar = progress.progress_bar(max(int(scenes.cardinality()), 0), verbose)
    chunk = []

    def _candidates_of(index, image):
        if per_scene is not None:
            return per_scene[index]
        if isinstance(windows, str):
            return _scene_candidates(image, num_proposals)
        return windows

    def flush():
        # One image at a time: scenes may differ in size, and so may their
        # candidates.
        candidates = [_candidates_of(index, image) for index, image, _ in chunk]
        crops = tf.concat(
            [
                data.crop_regions(
                    image[None],
                    boxes_of_scene[None],
                    crop_size,
                    context_padding,
                )[0]
                for (_, image, _), boxes_of_scene in zip(chunk, candidates)
            ],
            axis=0,
        )
        probabilities = classifier.predict(crops, batch_size=256, verbose=0)
        offsets = np.cumsum([0] + [len(c) for c in candidates])
        for index, (_, _, scene_labels) in enumerate(chunk):
            scene = probabilities[offsets[index] : offsets[index + 1]]
            found = np.full((max_labels, 4), -1.0, "float32")
            ids = np.full((max_labels,), -1, "int32")
            best = np.full((max_labels,), -1.0, "float32")
            for row, label in enumerate(scene_labels[:max_labels]):
                window = int(np.argmax(scene[:, label]))
                found[row], ids[row] = candidates[index][window], label
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
        if per_scene is not None and index >= len(per_scene):
            raise ValueError(
                f"`windows` must hold the boxes of every scene. Received: "
                f"{len(per_scene)} lists of boxes for more scenes."
            )
        chunk.append((index, example["image"], scene_labels.astype("int32")))
        if len(chunk) == scenes_per_chunk:
            flush()
    if chunk:
        flush()
    if not boxes:
        raise ValueError("`scenes` must hold at least one scene.")
    if per_scene is not None and len(per_scene) != len(boxes):
        raise ValueError(
            f"`windows` must hold the boxes of every scene. Received: "
            f"{len(per_scene)} lists of boxes for {len(boxes)} scenes."
        )
    return np.stack(boxes), np.stack(labels), np.stack(scores)


def most_confident_picks(labels, scores, keep_fraction):
    """Each class's most confident picks; the others dropped.

    A pick's score ranks it among the picks of its class: on
    `silhouette_scenes` (digits of B, animals of A, seed 0), the better
    half of A's picks by the classifier's score hit an object of their
    label 39 % of the time against 29 % for all, and 54 % against 38 % by
    a fine-tuned detector's. Ranking within a class, not over all picks,
    keeps every class: scores of easy and hard classes differ widely.

    Args:
        labels: int `(N, L)` labels of the picks, `-1` for padding (the
            second result of `image_label_boxes`).
        scores: float `(N, L)` their scores (its third result).
        keep_fraction: float in `(0, 1]`. Share of each class's picks
            kept, rounded up (so at least one).

    Returns:
        int32 `(N, L)` labels with the dropped picks set to `-1`, which
        `image_label_scenes` leaves out.

    Example:

    ```python
    boxes, labels, scores = image_label_boxes(classifier, scenes, 20)
    labels = most_confident_picks(labels, scores, 0.5)
    found = image_label_scenes(scenes, boxes, labels)
    ```
    """
    labels = np.asarray(labels)
    scores = np.asarray(scores)
    if labels.shape != scores.shape or labels.ndim != 2:
        raise ValueError(
            "`labels` and `scores` must share one shape (N, L). Received: "
            f"labels.shape={labels.shape}, scores.shape={scores.shape}"
        )
    keep_fraction = _checks.check_fraction("keep_fraction", keep_fraction)
    if not np.all(np.isfinite(scores[labels >= 0])):
        raise ValueError("`scores` of the picks must be finite.")
    kept = np.full(labels.shape, -1, "int32")
    flat_labels, flat_scores = labels.reshape(-1), scores.reshape(-1)
    flat_kept = kept.reshape(-1)
    for label in np.unique(flat_labels[flat_labels >= 0]):
        picks = np.flatnonzero(flat_labels == label)
        count = int(np.ceil(keep_fraction * len(picks)))
        # Stable: ties keep scene order, so the result is deterministic.
        best = picks[np.argsort(-flat_scores[picks], kind="stable")[:count]]
        flat_kept[best] = label
    return kept


def scene_proposals(scenes, num_proposals=100, verbose=False):
    """Each scene's own selective-search proposals, for `image_label_boxes`.

    Args:
        scenes: `tf.data.Dataset` of TFDS detection examples.
        num_proposals: int. Proposals per scene. Defaults to `100`.
        verbose: bool. Progress bar.

    Returns:
        A list with one float32 `(W_i, 4)` array of relative yxyx boxes
        per scene (the whole image where a scene yields none).
    """
    _checks.check_positive_int("num_proposals", num_proposals)
    bar = progress.progress_bar(max(int(scenes.cardinality()), 0), verbose)
    found = []
    for example in scenes:
        found.append(_scene_candidates(example["image"], num_proposals))
        if bar:
            bar.add(1)
    return found


def _scene_windows(index, windows):
    boxes = np.asarray(windows, "float32")
    if boxes.ndim != 2 or boxes.shape[-1] != 4 or not len(boxes):
        raise ValueError(
            "A list of `windows` must hold each scene's relative yxyx boxes "
            f"of shape (W, 4), W >= 1. Received: shape {boxes.shape} for "
            f"scene {index}"
        )
    return boxes


def _fixed_windows(windows):
    if _checks.is_integer(windows):
        windows = sliding_windows(int(windows))
    windows = np.asarray(windows, "float32")
    if windows.ndim != 2 or windows.shape[-1] != 4:
        raise ValueError(
            "`windows` must be an int, relative yxyx boxes of shape (W, 4) "
            f"or 'selective_search'. Received: windows with shape "
            f"{windows.shape}"
        )
    return windows[~np.all(windows == -1.0, axis=-1)]


def _scene_candidates(image, count):
    """The scene's own proposals; the whole image if it yields none."""
    image = np.asarray(image)
    if image.dtype != np.uint8:
        image = np.clip(np.round(image), 0, 255).astype("uint8")
    found = data.selective_search_proposals(image[None], count)[0]
    found = found[~np.all(found == -1.0, axis=-1)]
    if not len(found):
        return np.array([[0.0, 0.0, 1.0, 1.0]], "float32")
    return found


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
