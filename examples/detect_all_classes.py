"""Detect all 20 classes of silhouette_scenes with boxes for only 10 (LSDA).

The detector adaptation of LSDA (Hoffman et al., 2014) end to end, on the
offline `silhouette_scenes` dataset:

1. build the dataset (TFDS, offline) into `--data-dir`;
2. train an image classifier on the classification examples of all 20
   classes (32x32 images with one large object each, close to what a region
   crop with context looks like);
3. train a class-generic objectness detector on the boxes of the 10 trained
   classes B only (64x64 images) and decode it into proposals;
4. turn a copy of the classifier into a 21-way detection network (a
   background unit added) and fine-tune it on region crops labelled with
   the classes of B or background, with `DetectorAdapter`, which moves the
   output layer of the 10 held-out classes A at the end;
5. detect all 20 classes in the test scenes with `region_detector` and
   report mAP over B and A beside the unadapted classifier (its softmax
   scores on the same proposals).

    python -m examples.detect_all_classes --help
    python -m examples.detect_all_classes --data-dir runs/tfds

Training runs under a `tf.distribute` strategy (`--strategy`; one device by
default, `multi_worker` for one process per machine with its `TF_CONFIG`)
and checkpoints every `--save-freq` steps under `--backup-dir`: a killed
run started again with the same flags continues each training where it
stopped.

Writes to `--output-dir` (default `runs/detect`): `results.json` (mAP over
B, A and all classes, per-class AP, proposal recall, classifier accuracy,
timings, the command) and `gallery.png` (detections on test scenes, classes
of B in green and of A in orange). `benchmarks/reproduce_lsda.py` runs the
paper's whole Table 1 with the functions of this file.
"""

import argparse
import json
import os
import platform
import sys
import time

import keras
import numpy as np
import tensorflow as tf
from keras import ops

import keras_objectness as ko
import keras_objectness.datasets  # noqa: F401  (registers the builder)
from examples import train_objectness

BACKBONE = "alexnet"
# `detection_network` names its head after the model ("detector").
HEAD = "detector_background_head"
PROPOSAL_SOURCES = ("objectness", "selective_search", "sliding")
# Colours of the gallery: trained classes B, held-out classes A.
TRAINED_COLOR = (40, 200, 40)
HELDOUT_COLOR = (255, 140, 0)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--data-dir", default="runs/tfds")
    parser.add_argument(
        "--config", default="default", help="dataset config (tiny: tests)"
    )
    parser.add_argument("--output-dir", default="runs/detect")
    parser.add_argument(
        "--classifier-epochs",
        type=int,
        default=16,
        help="epochs of the 20-class image classifier",
    )
    parser.add_argument(
        "--proposer-epochs",
        type=int,
        default=16,
        help="epochs of the objectness detector that makes proposals",
    )
    parser.add_argument(
        "--finetune-epochs",
        type=int,
        default=3,
        help="epochs of detection fine-tuning on region crops of B",
    )
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument(
        "--learning-rate",
        type=float,
        default=1e-3,
        help="Adam rate of the classifier and the objectness detector",
    )
    parser.add_argument(
        "--finetune-learning-rate",
        type=float,
        default=1e-4,
        help="Adam rate of detection fine-tuning",
    )
    parser.add_argument(
        "--regions-per-image",
        type=int,
        default=8,
        help="region crops sampled per training scene and epoch",
    )
    parser.add_argument(
        "--positive-fraction",
        type=float,
        default=0.25,
        help="largest share of object regions among them",
    )
    parser.add_argument(
        "--proposals",
        type=int,
        default=100,
        help="proposals scored per test image",
    )
    parser.add_argument(
        "--proposal-source",
        choices=PROPOSAL_SOURCES,
        default="objectness",
        help="the objectness detector's boxes, OpenCV selective search (the "
        "paper's source) or fixed sliding windows",
    )
    parser.add_argument(
        "--proposal-iou",
        type=float,
        default=0.5,
        help="non-max suppression overlap among objectness proposals",
    )
    parser.add_argument(
        "--knn",
        default="5",
        help="neighbours in B averaged for each held-out class, or 'all'",
    )
    parser.add_argument("--test-split", default="test_mixed")
    parser.add_argument(
        "--max-test-images", type=int, default=None, help="default: all"
    )
    parser.add_argument(
        "--max-train-examples",
        type=int,
        default=None,
        help="cap on every training split (default: all)",
    )
    parser.add_argument("--gallery-images", type=int, default=8)
    parser.add_argument(
        "--strategy",
        choices=("default", "mirrored", "multi_worker"),
        default="default",
        help="tf.distribute strategy of the three trainings",
    )
    parser.add_argument(
        "--backup-dir",
        default=None,
        help="resume checkpoints (default: OUTPUT_DIR/backup)",
    )
    parser.add_argument(
        "--save-freq",
        type=int,
        default=50,
        help="checkpoint every this many steps (and at every epoch end)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--verbose", type=int, default=2)
    args = parser.parse_args(argv)
    args.knn = args.knn if args.knn == "all" else int(args.knn)
    return args


# === Data ===


def prepare_dataset(args):
    """Builds `silhouette_scenes` into `args.data_dir` (offline, once).

    Returns:
        The dataset's `tfds.core.DatasetInfo`.
    """
    _, info = load_split(args, "test_mixed")
    return info


def load_split(args, split):
    """One split as a `tf.data.Dataset` of TFDS examples, and the info.

    Training splits are capped at `args.max_train_examples`.
    """
    dataset, info = train_objectness.load_split(args, split)
    if args.max_train_examples and split == "detection_train_all":
        dataset = dataset.take(args.max_train_examples)
    return dataset, info


def test_examples(args, split, max_images=None):
    """The images and ground truth of a test split, as numpy arrays.

    Returns:
        `(images, ground_truth)`: uint8 `(N, size, size, 3)` and a dict of
        `"boxes"` (relative yxyx) and `"classes"`, padded with `-1`.
    """
    dataset, info = load_split(args, split)
    if max_images:
        dataset = dataset.take(max_images)
    size = info.features["image"].shape[0]
    num_classes = info.features["objects"]["label"].num_classes
    images, boxes, classes = [], [], []
    for batch in ko.data.keras_cv_dataset(dataset, size, 256, num_classes):
        images.append(batch["images"].numpy())
        boxes.append(batch["bounding_boxes"]["boxes"].numpy())
        classes.append(batch["bounding_boxes"]["classes"].numpy())
    return np.concatenate(images), {
        "boxes": np.concatenate(boxes),
        "classes": np.concatenate(classes),
    }


# === Models ===


def build_backbone(image_size):
    """The AlexNet-style backbone preset for `image_size` (32 or 64).

    Dropout after fc6 and fc7 is 0.2 rather than the preset's 0.5: in a
    10-epoch probe of the classifier it reached the same validation
    accuracy (0.35 vs 0.34) with a lower training loss.
    """
    preset = dict(ko.models.ALEXNET_PRESETS[f"alexnet_small_{image_size}"])
    return ko.models.alexnet_backbone(**preset, dropout_rate=0.2, name=BACKBONE)


def train_classifier(args, num_classes, crop_size=32, strategy=None):
    """Trains the 20-class classifier on the classification examples.

    Returns:
        `(classifier, validation accuracy)`.
    """
    strategy = strategy or tf.distribute.get_strategy()
    train, _ = load_split(args, "classification_train")
    validation, _ = load_split(args, "classification_validation")
    # Decoded once and kept in memory (about 300 MB at 128x128).
    train = train.cache()
    with strategy.scope():
        classifier = ko.models.image_classifier(
            build_backbone(crop_size), num_classes
        )
        classifier.compile(
            keras.optimizers.Adam(args.learning_rate),
            keras.losses.SparseCategoricalCrossentropy(),
            metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
        )
    data = dict(
        image_size=crop_size,
        batch_size=args.batch_size,
        num_classes=num_classes,
    )
    validation = ko.data.classification_dataset(validation, **data)
    train = train_objectness.cropped_classification_batches(
        train,
        crop_size,
        min_side=0.75,
        seed=args.seed,
        batch_size=args.batch_size,
        num_classes=num_classes,
    )
    history = ko.training.resumable_fit(
        classifier,
        train,
        validation_data=validation,
        epochs=args.classifier_epochs,
        backup_dir=train_objectness.backup_dir(args, "classifier"),
        save_freq=args.save_freq,
        verbose=args.verbose,
    )
    # Validated after the last epoch: the final weights' accuracy.
    return classifier, float(history.history["val_accuracy"][-1])


def train_proposer(args, num_classes, image_size=64, strategy=None):
    """Trains the class-generic objectness detector on the boxes of B.

    Returns:
        The objectness detector (`objectness_detector`).
    """
    strategy = strategy or tf.distribute.get_strategy()
    train, _ = load_split(args, "detection_train")
    train = train.cache()
    class_split = ko.datasets.default_class_split()
    space = train_objectness.box_space()
    with strategy.scope():
        detector = ko.models.objectness_detector(
            build_backbone(image_size), space
        )
        detector.compile(
            keras.optimizers.Adam(args.learning_rate),
            keras.losses.CategoricalCrossentropy(),
        )
    ko.training.resumable_fit(
        detector,
        ko.data.objectness_dataset(
            train,
            space,
            image_size,
            args.batch_size,
            num_classes,
            keep_classes=class_split.detection_classes,
            shuffle_buffer=2048,
            augment=True,
            seed=args.seed,
        ),
        epochs=args.proposer_epochs,
        backup_dir=train_objectness.backup_dir(args, "proposer"),
        save_freq=args.save_freq,
        verbose=args.verbose,
    )
    return detector


def finetune(
    args,
    classifier,
    class_split,
    trainable_layers=None,
    train_detection_classes=True,
    boxes="trained",
    callbacks=(),
    epochs=None,
    strategy=None,
):
    """Fine-tunes a copy of the classifier into a detection network.

    The classifier itself is left unchanged (its layers are cloned and its
    weights copied). The copy's output layer becomes a `BackgroundHead`
    over B (or over all classes with `boxes="all"`, the oracle), trained on
    region crops of the detection scenes: crops on an object of a kept
    class take its label, all others the background.

    Args:
        trainable_layers: `None` to train every backbone layer, or a
            collection of backbone layer names (e.g. `("alexnet_fc6",)`)
            to train only those; the others are frozen.
        train_detection_classes: bool. Whether the output columns of B
            train (`BackgroundHead(train_detection_classes=...)`); the
            background unit always does.
        boxes: `"trained"` (the boxes of B, `detection_train`) or `"all"`
            (the boxes of all classes, `detection_train_all`).
        callbacks: `fit` callbacks. Without a `DetectorAdapter` among them
            the head's snapshot of `W^c` is taken here.
        epochs: optional int overriding `args.finetune_epochs`.
        strategy: optional `tf.distribute.Strategy` to train under.

    Returns:
        The fine-tuned detection network.
    """
    network = detection_network_copy(
        args,
        classifier,
        class_split,
        trainable_layers,
        train_detection_classes,
        boxes,
        callbacks,
        strategy,
    )
    # One folder per configuration: a restarted benchmark must not resume
    # one row's fine-tuning from another's checkpoint.
    layers = "all" if trainable_layers is None else "-".join(trainable_layers)
    name = f"finetune_{boxes}_{layers}_{int(train_detection_classes)}"
    ko.training.resumable_fit(
        network,
        region_examples(args, class_split, boxes, _crop_size(classifier)),
        epochs=args.finetune_epochs if epochs is None else epochs,
        callbacks=list(callbacks),
        backup_dir=train_objectness.backup_dir(args, name),
        save_freq=args.save_freq,
        verbose=args.verbose,
    )
    return network


def detection_network_copy(
    args,
    classifier,
    class_split,
    trainable_layers=None,
    train_detection_classes=True,
    boxes="trained",
    callbacks=(),
    strategy=None,
):
    """A compiled detection network on a copy of the classifier.

    Arguments as in `finetune`; nothing is trained here.
    """
    strategy = strategy or tf.distribute.get_strategy()
    if boxes not in ("trained", "all"):
        raise ValueError(
            f"`boxes` must be 'trained' or 'all'. Received: boxes={boxes!r}"
        )
    with strategy.scope():
        copy = keras.models.clone_model(classifier)
        copy.set_weights(classifier.get_weights())
        network = ko.models.detection_network(
            copy,
            _detection_classes(class_split, boxes),
            train_detection_classes=train_detection_classes,
        )
        if trainable_layers is not None:
            for layer in network.get_layer(BACKBONE).layers:
                layer.trainable = layer.name in trainable_layers
        network.compile(
            keras.optimizers.Adam(args.finetune_learning_rate),
            keras.losses.SparseCategoricalCrossentropy(),
        )
    if not any(isinstance(c, ko.callbacks.DetectorAdapter) for c in callbacks):
        network.get_layer(HEAD).take_snapshot()
    return network


def region_examples(args, class_split, boxes="trained", crop_size=32):
    """Labelled region crops of the detection training scenes, batched.

    `boxes="trained"`: the scenes of `detection_train`, labels B or
    background; `"all"`: `detection_train_all`, any class or background.
    """
    split = "detection_train" if boxes == "trained" else "detection_train_all"
    train, _ = load_split(args, split)
    return ko.data.region_dataset(
        train,
        crop_size=crop_size,
        batch_size=args.batch_size,
        num_classes=class_split.num_classes,
        regions_per_image=args.regions_per_image,
        positive_fraction=args.positive_fraction,
        keep_classes=(
            class_split.detection_classes if boxes == "trained" else None
        ),
        shuffle_buffer=4096,
        augment=True,
        seed=args.seed,
    )


def _detection_classes(class_split, boxes):
    if boxes == "trained":
        return class_split.detection_classes
    return tuple(range(class_split.num_classes))


def _crop_size(classifier):
    return int(classifier.inputs[0].shape[1])


# === Proposals ===


def objectness_proposals(args, proposer, images):
    """The objectness detector's `args.proposals` best boxes per image.

    Returns:
        float32 `(N, args.proposals, 4)` relative yxyx, padded with `-1`.
    """
    size = int(proposer.inputs[0].shape[1])
    inference = ko.models.objectness_inference_model(
        proposer,
        max_detections=args.proposals,
        iou_threshold=args.proposal_iou,
        max_candidates=max(2000, args.proposals),
    )
    resized = tf.image.resize(images, (size, size))
    resized = tf.cast(tf.clip_by_value(tf.round(resized), 0, 255), tf.uint8)
    boxes = inference.predict(resized, batch_size=64, verbose=0)["boxes"]
    return np.asarray(boxes, dtype="float32")


def sliding_windows(count):
    """`count` fixed windows tiling the image at several scales and shapes.

    Square, tall and wide windows at sides from 0.15 to 0.8 of the image,
    each scale laid on a grid whose step is half the window side, cut to
    the `count` windows of the coarsest scales first.

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
    windows = np.array(windows[:count], dtype="float32")
    padding = np.full((count - len(windows), 4), -1.0, dtype="float32")
    return np.concatenate([windows, padding])


def _positions(size):
    steps = max(int(np.ceil((1.0 - size) / (size / 2))), 0)
    return np.linspace(0.0, 1.0 - size, steps + 1)


def make_proposals(args, proposer, images, source=None):
    """`args.proposals` proposals per image from `source`.

    Args:
        proposer: the objectness detector (only for `"objectness"`).
        source: one of `PROPOSAL_SOURCES`. Defaults to
            `args.proposal_source`.

    Returns:
        float32 `(N, args.proposals, 4)` relative yxyx, padded with `-1`.
    """
    source = source or args.proposal_source
    if source == "sliding":
        windows = sliding_windows(args.proposals)
        return np.broadcast_to(windows, (len(images),) + windows.shape).copy()
    if source == "selective_search":
        return ko.data.selective_search_proposals(
            images, max_proposals=args.proposals
        )
    return objectness_proposals(args, proposer, images)


def proposal_recall(proposals, ground_truth, iou_threshold=0.5):
    """Share of ground-truth boxes covered by a proposal at `iou_threshold`.

    Returns:
        float in `[0, 1]`.
    """
    found, total = 0, 0
    for boxes, gt_boxes, gt_classes in zip(
        proposals, ground_truth["boxes"], ground_truth["classes"]
    ):
        gt_boxes = gt_boxes[gt_classes >= 0]
        boxes = boxes[~np.all(boxes == -1.0, axis=-1)]
        total += len(gt_boxes)
        if len(gt_boxes) and len(boxes):
            iou = ko.evaluation.compute_iou(gt_boxes, boxes)
            found += int(np.sum(iou.max(axis=1) >= iou_threshold))
    return found / max(total, 1)


# === Detection and evaluation ===


def classifier_detector(
    classifier, image_shape, max_proposals, iou_threshold=0.3
):
    """The unadapted baseline: the classifier's softmax on every proposal.

    No background class and no fine-tuning: each proposal is cropped as
    `region_detector` does (context 0.1), the classifier gives its 20
    softmax probabilities, and each probability `p` becomes the score
    `log(p / (1 - p))`, whose sigmoid (what `RegionDetections` reports as
    confidence) is `p` itself. Per-class NMS as in `region_detector`.

    Returns:
        A functional `keras.Model` from `[images, proposals]` to the
        detections dict of `region_detector`.
    """
    images = keras.Input(image_shape, name="images")
    proposals = keras.Input((max_proposals, 4), name="proposals")
    crops = ko.layers.RegionCrops(_crop_size(classifier), 0.1)(
        images, proposals
    )
    probabilities = keras.layers.TimeDistributed(classifier)(crops)
    probabilities = ops.clip(probabilities, 1e-7, 1.0 - 1e-7)
    scores = ops.log(probabilities) - ops.log1p(-probabilities)
    detections = ko.layers.RegionDetections(100, iou_threshold)(
        proposals, scores
    )
    return keras.Model([images, proposals], detections, name="no_adapt")


def detect(network, images, proposals, batch_size=16):
    """All-class detections of a detection network on fixed proposals.

    Args:
        network: a detection network (with a `BackgroundHead`), or a model
            from `classifier_detector` (taking `[images, proposals]`).

    Returns:
        dict of numpy arrays: `"boxes"`, `"classes"`, `"confidence"`,
        `"num_detections"`.
    """
    if ko.layers.BackgroundHead in {type(layer) for layer in network.layers}:
        network = ko.models.region_detector(
            network,
            image_shape=images.shape[1:],
            max_proposals=proposals.shape[1],
            iou_threshold=0.3,
        )
    outputs = network.predict(
        [images, proposals], batch_size=batch_size, verbose=0
    )
    return {key: np.asarray(value) for key, value in outputs.items()}


def evaluate(detections, ground_truth, class_split):
    """VOC AP at IoU 0.5 per class, and mAP over B, A and all classes.

    Returns:
        dict: `"map_trained"`, `"map_heldout"`, `"map_all"` (percent) and
        `"average_precision"` (percent per class, `None` without boxes).
    """
    evaluator = ko.evaluation.DetectionEvaluator(
        num_classes=class_split.num_classes, detection_classes=class_split
    )
    evaluator.update_state(ground_truth, detections)
    result = evaluator.result()
    return {
        "map_trained": _percent(result["mean_average_precision_trained"]),
        "map_heldout": _percent(result["mean_average_precision_heldout"]),
        "map_all": _percent(result["mean_average_precision"]),
        "average_precision": [
            _percent(value) for value in result["average_precision"]
        ],
    }


def _percent(value):
    value = float(value)
    return None if np.isnan(value) else round(100.0 * value, 2)


def draw_gallery(
    images,
    detections,
    class_split,
    path,
    count=8,
    titles=None,
    per_image=4,
    min_confidence=0.5,
    scale=3,
):
    """Draws detections on `count` images: B in green, A in orange.

    The `per_image` best detections above `min_confidence` are drawn with
    their class names by `keras.visualization.draw_bounding_boxes`, one
    row of images per detections dict, under an optional title.

    Args:
        images: uint8 `(N, height, width, 3)`.
        detections: a detections dict, or a list of them (one row each).
        class_split: the `ClassSplit` (colours and class names).
        path: where to write the PNG.
        titles: optional list of row titles.

    Returns:
        The path written, as a str.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if isinstance(detections, dict):
        detections = [detections]
    titles = titles or [None] * len(detections)
    names = dict(enumerate(class_names(class_split)))
    big = np.repeat(np.repeat(images[:count], scale, 1), scale, 2)
    # One image pixel per figure pixel; 30 px for each title, 24 for the
    # legend at the bottom.
    width, height = big.shape[2] * len(big), big.shape[1]
    total = len(detections) * (height + 30) + 24
    figure = Figure(figsize=(width / 100, total / 100), dpi=100)
    FigureCanvasAgg(figure)
    for row, (found, title) in enumerate(zip(detections, titles)):
        boxes = found["boxes"][:count]
        classes = found["classes"][:count]
        confidence = found["confidence"][:count]
        rank = np.argsort(-confidence, axis=1, kind="stable")
        keep = np.zeros(classes.shape, dtype=bool)
        np.put_along_axis(keep, rank[:, :per_image], True, axis=1)
        keep &= (confidence > min_confidence) & (classes >= 0)
        trained = np.isin(classes, class_split.detection_classes)
        drawn = big
        for selected, color in (
            (keep & trained, TRAINED_COLOR),
            (keep & ~trained, HELDOUT_COLOR),
        ):
            drawn = keras.visualization.draw_bounding_boxes(
                drawn,
                {
                    "boxes": np.where(selected[..., None], boxes, -1.0),
                    "labels": np.where(selected, classes, -1),
                },
                bounding_box_format="rel_yxyx",
                class_mapping=names,
                color=color,
                line_thickness=2,
                font_scale=0.5,
            )
        strip = np.concatenate(list(np.asarray(drawn, "uint8")), axis=1)
        top = total - row * (height + 30) - 30
        axes = figure.add_axes(
            (0.0, (top - height) / total, 1.0, height / total)
        )
        axes.imshow(strip)
        axes.set_axis_off()
        if title:
            axes.set_title(title, fontsize=10)
    figure.text(
        0.5,
        4 / total,
        "green: trained classes B (boxes in training); "
        "orange: held-out classes A (no boxes)",
        ha="center",
        va="bottom",
        fontsize=9,
    )
    folder = os.path.dirname(os.fspath(path))
    if folder:
        os.makedirs(folder, exist_ok=True)
    figure.savefig(path, format="png")
    return os.fspath(path)


def class_names(class_split):
    """The split's class names, or the class ids as strings."""
    names = getattr(class_split, "class_names", None)
    if names:
        return list(names)
    return [str(i) for i in range(class_split.num_classes)]


def machine():
    """A short description of this machine, for results files."""
    return (
        f"{platform.machine()}, {os.cpu_count()} CPU cores, "
        f"{platform.system()} {platform.release()}, Python "
        f"{platform.python_version()}, TensorFlow {tf.__version__}, "
        f"Keras {keras.__version__}"
    )


def format_row(name, result, width=36):
    """One table line: the row name and mAP over B, A and all classes."""
    return (
        f"{name:<{width}} {result['map_trained']:>7.2f} "
        f"{result['map_heldout']:>7.2f} {result['map_all']:>7.2f}"
    )


def main(argv=None):
    args = parse_args(argv)
    keras.utils.set_random_seed(args.seed)
    # Before any other TensorFlow work: MultiWorkerMirroredStrategy must
    # set up collectives first.
    strategy = train_objectness.make_strategy(args.strategy)
    chief = ko.training.is_chief(strategy)
    if chief:
        os.makedirs(args.output_dir, exist_ok=True)
    timings = {}
    start = time.time()

    def lap(name, since):
        timings[name] = round(time.time() - since, 1)
        print(f"[{time.time() - start:6.0f} s] {name}: {timings[name]} s")
        return time.time()

    step = time.time()
    info = prepare_dataset(args)
    num_classes = info.features["objects"]["label"].num_classes
    class_split = ko.datasets.default_class_split()
    step = lap("dataset", step)
    classifier, accuracy = train_classifier(
        args, num_classes, strategy=strategy
    )
    print(f"classifier top-1 accuracy (classification_validation): {accuracy}")
    step = lap("classifier", step)
    proposer = None
    if args.proposal_source == "objectness":
        proposer = train_proposer(args, num_classes, strategy=strategy)
        step = lap("proposer", step)
    if not chief:
        # The other workers only train: fine-tuning is the last training.
        finetune(
            args,
            classifier,
            class_split,
            callbacks=[ko.callbacks.DetectorAdapter(knn=args.knn)],
            strategy=strategy,
        )
        return None
    images, ground_truth = test_examples(
        args, args.test_split, args.max_test_images
    )
    proposals = make_proposals(args, proposer, images)
    recall = proposal_recall(proposals, ground_truth)
    print(
        f"{args.proposals} {args.proposal_source} proposals per image on "
        f"{len(images)} {args.test_split} images: recall {recall:.3f} at "
        "IoU 0.5"
    )
    step = lap("proposals", step)
    baseline_detections = detect(
        classifier_detector(classifier, images.shape[1:], args.proposals),
        images,
        proposals,
    )
    baseline = evaluate(baseline_detections, ground_truth, class_split)
    step = lap("baseline detection", step)
    network = finetune(
        args,
        classifier,
        class_split,
        callbacks=[ko.callbacks.DetectorAdapter(knn=args.knn)],
        strategy=strategy,
    )
    step = lap("fine-tuning", step)
    detections = detect(network, images, proposals)
    adapted = evaluate(detections, ground_truth, class_split)
    step = lap("adapted detection", step)
    gallery = draw_gallery(
        images,
        [baseline_detections, detections],
        class_split,
        os.path.join(args.output_dir, "gallery.png"),
        count=args.gallery_images,
        titles=["classifier, no adaptation", f"adapted (LSDA, k={args.knn})"],
    )
    print(f"{'mAP (%)':<36} {'B':>7} {'A':>7} {'all':>7}")
    print(format_row("classifier, no adaptation", baseline))
    print(format_row(f"adapted (LSDA, k={args.knn})", adapted))
    results = {
        "command": " ".join(
            ["python -m examples.detect_all_classes", *sys.argv[1:]]
        )
        if argv is None
        else " ".join(["python -m examples.detect_all_classes", *argv]),
        "arguments": vars(args),
        "machine": machine(),
        "classifier_accuracy": accuracy,
        "proposal_recall": recall,
        "num_test_images": int(len(images)),
        "no_adaptation": baseline,
        "adapted": adapted,
        "class_names": class_names(class_split),
        "detection_classes": list(class_split.detection_classes),
        "gallery": gallery,
        "seconds": timings,
        "total_seconds": round(time.time() - start, 1),
    }
    with open(os.path.join(args.output_dir, "results.json"), "w") as file:
        json.dump(results, file, indent=2)
    print(f"wrote {args.output_dir}/results.json and {gallery}")
    return results


if __name__ == "__main__":
    main()
