"""Step 2 of LSDA: class-generic region proposals for every image."""

import keras
import numpy as np
import tensorflow as tf

from keras_objectness import data
from keras_objectness import models
from keras_objectness import training
from keras_objectness.box_space import BoxSpace
from keras_objectness.workflows import progress
from keras_objectness.workflows.classifiers import BACKBONE

# The box space the proposer used on `silhouette_scenes` before spaces
# could be fitted (objects 9-64 % of the side, aspect ratios 0.25-2).
SILHOUETTE_BOX_SPACE = dict(
    grid_shape=(12, 12),
    scales=(0.09, 0.127, 0.18, 0.255, 0.36, 0.51, 0.72),
    aspect_ratios=(0.25, 0.354, 0.5, 0.707, 1.0, 1.414, 2.0),
)


def proposer_box_space(train_examples=None, max_examples=2000):
    """The proposer's `BoxSpace`, fitted to the training boxes if possible.

    With `BoxSpace.from_boxes` available and training examples given, the
    scales and aspect ratios follow the first `max_examples` scenes'
    boxes; otherwise the fixed space of `SILHOUETTE_BOX_SPACE`.
    """
    fit = getattr(BoxSpace, "from_boxes", None)
    if fit is None or train_examples is None:
        return BoxSpace(**SILHOUETTE_BOX_SPACE)
    boxes = [
        example["objects"]["bbox"].numpy()
        for example in train_examples.take(max_examples)
    ]
    boxes = np.concatenate([b.reshape(-1, 4) for b in boxes])
    return fit(boxes, grid_shape=(12, 12), num_scales=7, num_aspect_ratios=7)


def train_proposer(
    train_examples,
    num_classes,
    detection_classes,
    epochs,
    image_size=64,
    box_space=None,
    batch_size=64,
    learning_rate=1e-3,
    flip=True,
    seed=0,
    backup_dir=None,
    save_freq=50,
    verbose=2,
    strategy=None,
):
    """Trains a class-generic objectness detector on the boxes of B.

    Objects of classes outside `detection_classes` are dropped from the
    targets: the proposer never sees a box of a held-out class.

    Returns:
        The trained `objectness_detector`.
    """
    strategy = strategy or tf.distribute.get_strategy()
    space = box_space or proposer_box_space(train_examples)
    if image_size not in (32, 64):
        raise ValueError(
            "`image_size` must be 32 or 64 for the built-in proposer. "
            f"Received: image_size={image_size!r}"
        )
    with strategy.scope():
        preset = dict(models.ALEXNET_PRESETS[f"alexnet_small_{image_size}"])
        backbone = models.alexnet_backbone(**preset, name=BACKBONE)
        detector = models.objectness_detector(
            backbone, space, feature_layer=f"{BACKBONE}_lrn5"
        )
        detector.compile(
            keras.optimizers.Adam(learning_rate),
            keras.losses.CategoricalCrossentropy(),
        )
    batches = data.objectness_dataset(
        train_examples.cache(),
        space,
        image_size,
        batch_size,
        num_classes,
        keep_classes=detection_classes,
        shuffle_buffer=2048,
        augment=flip,
        seed=seed,
    )
    training.resumable_fit(
        detector,
        batches,
        epochs=epochs,
        backup_dir=backup_dir,
        save_freq=save_freq if backup_dir is not None else "epoch",
        verbose=progress.keras_verbosity(verbose),
    )
    return detector


def objectness_proposals(proposer, images, count, iou_threshold=0.5):
    """The objectness detector's `count` best boxes per image.

    Returns:
        float32 `(N, count, 4)` relative yxyx, padded with `-1`.
    """
    size = int(proposer.inputs[0].shape[1])
    inference = models.objectness_inference_model(
        proposer,
        max_detections=count,
        iou_threshold=iou_threshold,
        max_candidates=max(2000, count),
    )
    boxes = []
    for start in range(0, len(images), 64):
        batch = tf.image.resize(images[start : start + 64], (size, size))
        batch = tf.cast(tf.clip_by_value(tf.round(batch), 0, 255), tf.uint8)
        boxes.append(np.asarray(inference(batch)["boxes"], "float32"))
    return np.concatenate(boxes)


def sliding_windows(count):
    """`count` fixed windows tiling the image at several scales and shapes.

    Square, tall and wide windows at sides from 0.8 down to 0.15 of the
    image, each scale on a grid whose step is half the window side, the
    coarsest scales first.

    Returns:
        float32 `(count, 4)` relative yxyx (padded with `-1` if the tiling
        has fewer windows).
    """
    windows = []
    for side in (0.8, 0.6, 0.45, 0.33, 0.25, 0.19, 0.15):
        for aspect in (1.0, 0.5, 2.0):
            height = min(side / np.sqrt(aspect), 1.0)
            width = min(side * np.sqrt(aspect), 1.0)
            for y in _positions(height):
                for x in _positions(width):
                    windows.append((y, x, y + height, x + width))
    windows = np.array(windows[:count], dtype="float32").reshape(-1, 4)
    padding = np.full((count - len(windows), 4), -1.0, dtype="float32")
    return np.concatenate([windows, padding])


def _positions(size):
    steps = max(int(np.ceil((1.0 - size) / (size / 2))), 0)
    return np.linspace(0.0, 1.0 - size, steps + 1)


def make_proposals(
    images,
    source,
    count,
    proposer=None,
    iou_threshold=0.5,
    verbose=True,
    seed=0,
):
    """`count` class-generic proposals per image.

    Args:
        images: uint8 `(N, H, W, 3)`.
        source: `"selective_search"`, `"objectness"` (needs `proposer`) or
            `"sliding"`.
        count: int. Proposals per image.
        proposer: the objectness detector, for `"objectness"`.
        iou_threshold: NMS overlap among objectness proposals.
        verbose: bool. A progress bar for selective search.
        seed: int. Seed of selective search's tie-breaking ranking (the
            same seed gives the same proposals).

    Returns:
        float32 `(N, count, 4)` relative yxyx, padded with `-1`.
    """
    if source == "sliding":
        windows = sliding_windows(count)
        return np.broadcast_to(windows, (len(images),) + windows.shape).copy()
    if source == "objectness":
        if proposer is None:
            raise ValueError(
                "`proposer` is required for proposal_source='objectness'."
            )
        return objectness_proposals(proposer, images, count, iou_threshold)
    if source != "selective_search":
        raise ValueError(
            "`source` must be 'selective_search', 'objectness' or "
            f"'sliding'. Received: source={source!r}"
        )
    bar = progress.progress_bar(len(images), verbose)
    chunks = []
    for start in range(0, len(images), 25):
        chunk = images[start : start + 25]
        chunks.append(data.selective_search_proposals(chunk, count, seed=seed))
        if bar:
            bar.add(len(chunk))
    return np.concatenate(chunks)
