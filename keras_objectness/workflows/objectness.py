"""Class-generic objectness: a classifier's backbone learns where objects are.

The recipe of arXiv 1312.6885 on `silhouette_scenes`: an AlexNet-style
backbone, started from random weights or from a classifier pretrained on
the classification examples of every class, learns a softmax over a
discretised box space from the boxes of the trained classes B only (the
held-out protocol) or of all classes; it is scored by the area under the
precision-recall curve on scenes of held-out classes. `run_objectness` is
one such training end to end, `objectness_grid` the paper's four trainings
plus its last experiment (a classifier started from the objectness
network), and each step is a function of its own.

The data source must have the splits of `silhouette_scenes`:
`classification_train`, `classification_validation`, `detection_train`,
`detection_train_all`, `validation_heldout`, `test_heldout` and
`test_trained`.
"""

import json
import os
import shutil
import time

import keras
import numpy as np
import tensorflow as tf

from keras_objectness import callbacks as callbacks_lib
from keras_objectness import data
from keras_objectness import evaluation
from keras_objectness import models
from keras_objectness import training
from keras_objectness.box_space import BoxSpace
from keras_objectness.workflows import classifiers
from keras_objectness.workflows import progress
from keras_objectness.workflows.proposals import SILHOUETTE_BOX_SPACE

# Box sets an objectness detector can be trained with, and their splits.
BOX_SPLITS = {"trained": "detection_train", "all": "detection_train_all"}
INITS = ("pretrained", "random")
DEFAULT_FEATURE_LAYER = f"{classifiers.BACKBONE}_lrn5"


def objectness_box_space():
    """The `BoxSpace` of the objectness detectors on `silhouette_scenes`.

    A 12x12 grid of centres, 7 scales from 9 % to 72 % of the side and 7
    aspect ratios from 0.25 to 2 (narrow digits), as
    `keras_objectness.workflows.proposals.SILHOUETTE_BOX_SPACE`.
    """
    return BoxSpace(**SILHOUETTE_BOX_SPACE)


def load_split(source, split, max_examples=None):
    """One split of a data source, by its name.

    Args:
        source: a `keras_objectness.workflows.DataSource` (e.g. a
            `TfdsSource`).
        split: str. A split of the source, e.g. `"test_heldout"`.
        max_examples: optional int. Keep only the first examples.

    Returns:
        A `tf.data.Dataset` of TFDS-style examples.
    """
    if split not in source.split_names:
        raise ValueError(
            f"`split` must be a split of {source.description} "
            f"({', '.join(sorted(source.split_names))}). "
            f"Received: split={split!r}"
        )
    dataset = source._load(split)
    return dataset.take(max_examples) if max_examples else dataset


def objectness_backbone(image_size=64, dropout_rate=0.2):
    """A new AlexNet-style backbone of the `"alexnet_small"` preset.

    Args:
        image_size: int. Input side, 32 or 64.
        dropout_rate: float. Dropout after fc6 and fc7.
    """
    if image_size not in (32, 64):
        raise ValueError(
            "`image_size` must be 32 or 64 for the 'alexnet_small' preset. "
            f"Received: image_size={image_size!r}"
        )
    preset = dict(models.ALEXNET_PRESETS[f"alexnet_small_{image_size}"])
    return models.alexnet_backbone(
        **preset, dropout_rate=dropout_rate, name=classifiers.BACKBONE
    )


def pretrain_classifier(
    train_examples,
    validation_examples,
    num_classes,
    epochs,
    image_size=64,
    dropout_rate=0.2,
    min_crop=0.75,
    batch_size=64,
    learning_rate=1e-3,
    seed=0,
    initial_classifier=None,
    backup_dir=None,
    save_freq=50,
    verbose=2,
    strategy=None,
):
    """Trains a K-class classifier, tracking top-1 and top-5 accuracy.

    `keras_objectness.workflows.train_classifier` on the `"alexnet_small"`
    preset (random crops of at least `min_crop` of the side, flips).

    Args:
        train_examples, validation_examples: `tf.data.Dataset`s of
            TFDS-style examples with image-level labels.
        num_classes: int. K.
        epochs: int. Epochs (0: compile only).
        image_size: int. Input side, 32 or 64. Defaults to 64.
        dropout_rate: float. Dropout after fc6 and fc7. Defaults to 0.2.
        min_crop: float. Smallest relative side of the random crops; 0
            trains on whole images. Defaults to 0.75.
        batch_size, learning_rate, seed, save_freq, verbose: as named.
        initial_classifier: optional classifier to continue from (built
            under `strategy`), e.g. from `classifier_from_detector`; a new
            one is built otherwise.
        backup_dir: optional resume-checkpoint folder of this training.
        strategy: optional `tf.distribute.Strategy`.

    Returns:
        `(classifier, history)`: the `keras.callbacks.History` has
        `val_accuracy` and `val_top5_accuracy` per epoch (empty for
        `epochs=0`).
    """
    strategy = strategy or tf.distribute.get_strategy()
    classifier = initial_classifier
    if classifier is None:
        with strategy.scope():
            classifier, _ = classifiers.build_classifier(
                "alexnet_small", num_classes, image_size, dropout_rate
            )
    classifier, _ = classifiers.train_classifier(
        classifier,
        train_examples,
        validation_examples,
        num_classes,
        epochs,
        batch_size=batch_size,
        learning_rate=learning_rate,
        min_crop=min_crop,
        seed=seed,
        backup_dir=backup_dir,
        save_freq=save_freq,
        verbose=verbose,
        strategy=strategy,
        top_k=5,
    )
    history = classifier.history if epochs else keras.callbacks.History()
    return classifier, history


def classifier_from_detector(
    detector, num_classes, image_size=64, dropout_rate=0.2, strategy=None
):
    """A new classifier whose backbone starts from an objectness detector.

    Backbone layers are matched by name: the detector shares the
    backbone's layer names up to its feature layer; later layers (fc6,
    fc7 behind a conv feature layer) and the class layer keep their fresh
    weights.

    Args:
        detector: a model from `keras_objectness.models.objectness_detector`
            on an `"alexnet_small"` backbone.
        num_classes: int. K.
        image_size, dropout_rate: of the new classifier.
        strategy: optional `tf.distribute.Strategy` to build it under.

    Returns:
        An uncompiled `keras.Model` (train it with `pretrain_classifier`'s
        `initial_classifier`).
    """
    strategy = strategy or tf.distribute.get_strategy()
    with strategy.scope():
        classifier, _ = classifiers.build_classifier(
            "alexnet_small", num_classes, image_size, dropout_rate
        )
    backbone = classifier.get_layer(classifiers.BACKBONE)
    names = {layer.name for layer in backbone.layers}
    source = _detector_backbone(detector)
    for layer in source.layers:
        if layer.weights and layer.name in names:
            backbone.get_layer(layer.name).set_weights(layer.get_weights())
    return classifier


def _detector_backbone(detector):
    for name in (f"{classifiers.BACKBONE}_features", classifiers.BACKBONE):
        try:
            return detector.get_layer(name)
        except ValueError:
            continue
    raise ValueError(
        "`detector` must be an objectness detector on an 'alexnet' "
        "backbone (a layer 'alexnet_features' or 'alexnet'). Received: "
        f"detector with layers {[layer.name for layer in detector.layers]}"
    )


def train_objectness(
    train_examples,
    num_classes,
    epochs,
    classifier=None,
    keep_classes=None,
    box_space=None,
    image_size=64,
    feature_layer=DEFAULT_FEATURE_LAYER,
    dropout_rate=0.2,
    batch_size=64,
    learning_rate=1e-3,
    seed=0,
    log_dir=None,
    log_examples=None,
    callbacks=(),
    backup_dir=None,
    save_freq=50,
    verbose=2,
    strategy=None,
):
    """Trains an objectness detector, optionally on a classifier's backbone.

    Args:
        train_examples: `tf.data.Dataset` of TFDS-style detection scenes.
        num_classes: int. Number of classes of their labels.
        epochs: int. Training epochs.
        classifier: optional classifier from `pretrain_classifier`: the
            detector shares (and trains) its `"alexnet"` backbone. A new
            backbone from random weights otherwise.
        keep_classes: optional class ids whose boxes are targets (B, for
            the held-out protocol); `None` uses every box.
        box_space: the head's `BoxSpace`. Defaults to
            `objectness_box_space()`.
        image_size: int. Input side (32 or 64 for a new backbone).
        feature_layer: backbone layer feeding the box-bin head;
            `"fc7"` (or `None`) for the backbone's output. Defaults to
            `"alexnet_lrn5"` (the conv5 maps).
        dropout_rate: float. Dropout of a new backbone.
        batch_size, learning_rate, seed, save_freq, verbose: as named.
        log_dir: optional TensorBoard folder, written by the chief only:
            Keras' scalars and, with `log_examples`, AUC, PR curves and
            drawn detections four times over the training.
        log_examples: optional `tf.data.Dataset` of scenes (e.g. of
            held-out classes): its first 64 are drawn and scored.
        callbacks: more `keras.callbacks.Callback`s.
        backup_dir: optional resume-checkpoint folder of this training.
        strategy: optional `tf.distribute.Strategy`.

    Returns:
        `(detector, history)`.
    """
    strategy = strategy or tf.distribute.get_strategy()
    space = box_space or objectness_box_space()
    if feature_layer == "fc7":
        feature_layer = None
    with strategy.scope():
        if classifier is not None:
            backbone = classifier.get_layer(classifiers.BACKBONE)
        else:
            backbone = objectness_backbone(image_size, dropout_rate)
        detector = models.objectness_detector(
            backbone, space, feature_layer=feature_layer
        )
        detector.compile(
            keras.optimizers.Adam(learning_rate),
            keras.losses.CategoricalCrossentropy(),
        )
    batches = data.objectness_dataset(
        train_examples,
        space,
        image_size,
        batch_size,
        num_classes,
        keep_classes=keep_classes,
        shuffle_buffer=2048,
        augment=True,
        seed=seed,
    )
    callbacks = list(callbacks)
    if log_dir is not None and training.is_chief(strategy):
        callbacks.append(keras.callbacks.TensorBoard(log_dir))
        if log_examples is not None:
            images, y_true = validation_arrays(
                log_examples, image_size, num_classes
            )
            callbacks.append(
                callbacks_lib.ObjectnessTensorBoard(
                    log_dir, images, y_true, frequency=max(epochs // 4, 1)
                )
            )
    history = training.resumable_fit(
        detector,
        batches,
        epochs=epochs,
        callbacks=callbacks,
        backup_dir=backup_dir,
        save_freq=save_freq if backup_dir is not None else "epoch",
        verbose=progress.keras_verbosity(verbose),
    )
    return detector, history


def validation_arrays(examples, image_size, num_classes, count=64):
    """The first `count` scenes as arrays, e.g. for TensorBoard.

    Returns:
        `(images, y_true)`: uint8 `(count, S, S, 3)` and a dict of numpy
        arrays `"boxes"` (relative yxyx), `"classes"` and `"ignore"`,
        padded with `-1` (`False`).
    """
    batch = next(
        iter(data.keras_cv_dataset(examples, image_size, count, num_classes))
    )
    return batch["images"].numpy(), {
        key: value.numpy() for key, value in batch["bounding_boxes"].items()
    }


def evaluate_objectness(
    detector,
    test_examples,
    num_classes,
    max_detections=10,
    iou_threshold=0.4,
    batch_size=128,
):
    """Class-generic AP/AUC of `detector` on test scenes at IoU 0.5.

    Args:
        detector: an objectness detector.
        test_examples: `tf.data.Dataset` of TFDS-style scenes, resized to
            the detector's input.
        num_classes: int. Number of classes of their labels.
        max_detections: int. Boxes kept per image.
        iou_threshold: float. Non-max suppression overlap among them.
        batch_size: int. Scenes per inference batch.

    Returns:
        The `keras_objectness.evaluation.DetectionEvaluator` result dict
        (`"auc"`, `"precision"`, `"recall"`, `"num_ground_truth"`, ...).
    """
    image_size = int(detector.inputs[0].shape[1])
    inference = models.objectness_inference_model(
        detector, max_detections=max_detections, iou_threshold=iou_threshold
    )
    evaluator = evaluation.DetectionEvaluator()
    for batch in data.keras_cv_dataset(
        test_examples, image_size, batch_size, num_classes
    ):
        detections = inference.predict_on_batch(batch["images"])
        evaluator.update_state(batch["bounding_boxes"], detections)
    return evaluator.result()


def run_objectness(
    source,
    init="pretrained",
    boxes="trained",
    epochs=8,
    pretrain_epochs=20,
    pretrained_classifier=None,
    image_size=64,
    feature_layer=DEFAULT_FEATURE_LAYER,
    dropout_rate=0.2,
    pretrain_min_crop=0.75,
    batch_size=64,
    learning_rate=1e-3,
    max_train_examples=None,
    seed=0,
    output_dir="runs/objectness",
    backup_dir=None,
    save_freq=50,
    verbose=2,
    strategy=None,
    command=None,
    arguments=None,
    log=None,
):
    """Trains one objectness detector end to end and scores it.

    1. With `init="pretrained"`, a classifier (`pretrained_classifier`, a
       `.keras` path, or one trained by `pretrain_classifier`).
    2. `train_objectness` on its backbone (or from random weights), with
       TensorBoard logs in `output_dir/logs` on held-out validation scenes.
    3. AUC on `test_heldout` and `test_trained`; `objectness.keras` and
       `results.json` in `output_dir` (the chief only).

    Every training keeps resume checkpoints under `backup_dir` (default
    `output_dir/backup`): a killed run called again continues.

    Args:
        source: a `keras_objectness.workflows.DataSource` with the splits
            of `silhouette_scenes`.
        init: `"pretrained"` or `"random"`.
        boxes: `"trained"` (boxes of B only) or `"all"`.
        epochs, pretrain_epochs: epochs of the detector and classifier.
        pretrained_classifier: optional `.keras` classifier to start from.
        image_size, feature_layer, dropout_rate, batch_size,
            learning_rate, seed, save_freq, verbose: as in
            `train_objectness`.
        pretrain_min_crop: the classifier's `min_crop`.
        max_train_examples: optional cap on every training split.
        output_dir, backup_dir: folders of the outputs and checkpoints.
        strategy: optional `tf.distribute.Strategy`.
        command, arguments: recorded in the results as given.
        log: optional `StageLog`.

    Returns:
        The results dict (also `results.json`), or `None` on workers
        other than the chief.
    """
    if init not in INITS:
        raise ValueError(
            f"`init` must be one of {INITS}. Received: init={init!r}"
        )
    if boxes not in BOX_SPLITS:
        raise ValueError(
            f"`boxes` must be one of {tuple(BOX_SPLITS)}. "
            f"Received: boxes={boxes!r}"
        )
    strategy = strategy or tf.distribute.get_strategy()
    log = log or progress.StageLog(verbose=verbose > 0)
    keras.utils.set_random_seed(seed)
    source.prepare()
    num_classes = source.num_classes
    backup_root = backup_dir or os.path.join(output_dir, "backup")
    train = dict(
        batch_size=batch_size,
        learning_rate=learning_rate,
        seed=seed,
        save_freq=save_freq,
        verbose=verbose,
        strategy=strategy,
    )

    def split(name):
        cap = max_train_examples if name.endswith("train") else None
        return load_split(source, name, cap)

    start = time.time()
    classifier = None
    if pretrained_classifier:
        with strategy.scope():
            classifier, _ = classifiers.build_classifier(
                pretrained_classifier, num_classes
            )
    elif init == "pretrained":
        with log.stage("classifier"):
            classifier, _ = pretrain_classifier(
                split("classification_train"),
                split("classification_validation"),
                num_classes,
                pretrain_epochs,
                image_size=image_size,
                dropout_rate=dropout_rate,
                min_crop=pretrain_min_crop,
                backup_dir=os.path.join(backup_root, "classifier"),
                **train,
            )
    keep = None
    if boxes == "trained":
        keep = source.class_split().detection_classes
    with log.stage("objectness"):
        detector, history = train_objectness(
            split(BOX_SPLITS[boxes]),
            num_classes,
            epochs,
            classifier=classifier,
            keep_classes=keep,
            image_size=image_size,
            feature_layer=feature_layer,
            dropout_rate=dropout_rate,
            log_dir=os.path.join(output_dir, "logs"),
            log_examples=split("validation_heldout"),
            backup_dir=os.path.join(backup_root, "objectness"),
            **train,
        )
    if not training.is_chief(strategy):
        return None
    results = {
        "command": command,
        "arguments": arguments,
        "replicas": strategy.num_replicas_in_sync,
        "loss": [float(v) for v in history.history["loss"]],
        "seconds": round(time.time() - start, 1),
    }
    for name in ("test_heldout", "test_trained"):
        result = evaluate_objectness(detector, split(name), num_classes)
        results[name] = {
            "auc": float(result["auc"]),
            "num_ground_truth": int(result["num_ground_truth"]),
        }
        log.say(f"{name}: AUC {results[name]['auc']:.3f}")
    os.makedirs(output_dir, exist_ok=True)
    detector.save(os.path.join(output_dir, "objectness.keras"))
    with open(os.path.join(output_dir, "results.json"), "w") as file:
        json.dump(results, file, indent=2)
    return results


def objectness_grid(
    source,
    seed=0,
    epochs=10,
    pretrain_epochs=20,
    pretrain_min_crop=0.75,
    dropout_rate=0.2,
    image_size=64,
    work_dir="runs/reproduce_objectness",
    strategy=None,
    verbose=0,
    log=None,
):
    """One seed of the paper's grid, and its classifier experiment.

    A classifier is pretrained once; then four objectness detectors
    (`init` pretrained or random x `boxes` trained or all), each from the
    same seed, are trained and scored on `test_heldout` and
    `test_trained`. Last, a classifier started from the random/all-boxes
    detector is trained with the pretraining's recipe and compared with
    the pretraining itself (top-1 and top-5 validation error).

    Args:
        source: a `DataSource` with the splits of `silhouette_scenes`.
        seed: int. Seed of every training.
        epochs, pretrain_epochs: epochs of the detectors and classifiers.
        pretrain_min_crop, dropout_rate, image_size: the recipe.
        work_dir: folder of the trainings' TensorBoard logs and resume
            checkpoints; each training's subfolder is emptied first, so no
            earlier run resumes.
        strategy: optional `tf.distribute.Strategy`.
        verbose: Keras verbosity of the trainings.
        log: optional `StageLog`.

    Returns:
        `(results, curves, detectors)`: a dict with
        `"{init}/{boxes}_boxes"` entries (`heldout_auc`, `trained_auc`,
        `final_loss`, `seconds`) and `"classification"` (`"scratch"` and
        `"objectness"`, each `top1_error` and `top5_error`); the held-out
        `(precision, recall)` per entry; and a copy of each detector.
    """
    strategy = strategy or tf.distribute.get_strategy()
    log = log or progress.StageLog()
    source.prepare()
    num_classes = source.num_classes
    detection_classes = source.class_split().detection_classes
    recipe = dict(
        image_size=image_size,
        dropout_rate=dropout_rate,
        min_crop=pretrain_min_crop,
        seed=seed,
        verbose=verbose,
        strategy=strategy,
    )
    classification_splits = (
        load_split(source, "classification_train"),
        load_split(source, "classification_validation"),
    )
    keras.utils.set_random_seed(seed)
    with log.stage(f"seed {seed}: classifier"):
        pretrained, pretrain_history = pretrain_classifier(
            *classification_splits,
            num_classes,
            pretrain_epochs,
            backup_dir=_fresh(work_dir, f"classifier_{seed}", "backup"),
            **recipe,
        )
    pretrained_weights = pretrained.get_weights()

    results, curves, detectors = {}, {}, {}
    for init in INITS:
        for boxes in BOX_SPLITS:
            key = f"{init}/{boxes}_boxes"
            keras.utils.set_random_seed(seed)
            classifier = None
            if init == "pretrained":
                pretrained.set_weights(pretrained_weights)
                classifier = pretrained
            folder = _fresh(work_dir, f"{init}_{boxes}_{seed}")
            start = time.time()
            with log.stage(f"seed {seed}: {key}"):
                detector, history = train_objectness(
                    load_split(source, BOX_SPLITS[boxes]),
                    num_classes,
                    epochs,
                    classifier=classifier,
                    keep_classes=(
                        detection_classes if boxes == "trained" else None
                    ),
                    image_size=image_size,
                    dropout_rate=dropout_rate,
                    seed=seed,
                    log_dir=os.path.join(folder, "logs"),
                    log_examples=load_split(source, "validation_heldout"),
                    backup_dir=os.path.join(folder, "backup"),
                    verbose=verbose,
                    strategy=strategy,
                )
                heldout = evaluate_objectness(
                    detector, load_split(source, "test_heldout"), num_classes
                )
                trained = evaluate_objectness(
                    detector, load_split(source, "test_trained"), num_classes
                )
            results[key] = {
                "heldout_auc": float(heldout["auc"]),
                "trained_auc": float(trained["auc"]),
                "final_loss": float(history.history["loss"][-1]),
                "seconds": round(time.time() - start, 1),
            }
            curves[key] = (heldout["precision"], heldout["recall"])
            detectors[key] = keras.models.clone_model(detector)
            detectors[key].set_weights(detector.get_weights())
            log.say(f"seed {seed}: {key}: {results[key]}")

    # The paper's last experiment: a classifier starting from a network
    # trained only for objectness (random init, all boxes). From scratch
    # is the pretraining above: same seed, same recipe.
    keras.utils.set_random_seed(seed)
    with log.stage(f"seed {seed}: classifier from objectness"):
        classifier = classifier_from_detector(
            detectors["random/all_boxes"],
            num_classes,
            image_size,
            dropout_rate,
            strategy=strategy,
        )
        _, history = pretrain_classifier(
            *classification_splits,
            num_classes,
            pretrain_epochs,
            initial_classifier=classifier,
            backup_dir=_fresh(
                work_dir, f"classifier_from_objectness_{seed}", "backup"
            ),
            **recipe,
        )
    results["classification"] = {
        init: _errors(run)
        for init, run in (
            ("scratch", pretrain_history),
            ("objectness", history),
        )
    }
    log.say(f"seed {seed}: classification {results['classification']}")
    return results, curves, detectors


def _fresh(work_dir, name, *subfolder):
    """An emptied folder of one training: no earlier backup resumes."""
    folder = os.path.join(work_dir, name)
    shutil.rmtree(folder, ignore_errors=True)
    return os.path.join(folder, *subfolder)


def _errors(history):
    return {
        "top1_error": 1 - float(history.history["val_accuracy"][-1]),
        "top5_error": 1 - float(history.history["val_top5_accuracy"][-1]),
    }


def plot_precision_recall(curves, path, title="held-out classes, IoU >= 0.5"):
    """Draws precision-recall curves into one PNG.

    Args:
        curves: dict from a label to `(precision, recall)` arrays.
        path: str. The PNG to write.
        title: str. The figure's title.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(5, 4))
    FigureCanvasAgg(figure)
    axis = figure.subplots()
    for key, (precision, recall) in curves.items():
        axis.plot(recall, precision, label=key.replace("_", " "))
    axis.set_xlabel("recall")
    axis.set_ylabel("precision")
    axis.set_xlim(0, 1)
    axis.set_ylim(0, 1)
    axis.set_title(title)
    axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)


def draw_objectness_gallery(
    detector,
    test_examples,
    num_classes,
    path,
    count=4,
    image_size=128,
    max_images=64,
):
    """Correct and incorrect top detections, `count` of each, in one PNG.

    The detector's best box per scene (blue) is drawn over the true boxes
    (green); a detection is correct at IoU >= 0.5 with any of them.

    Args:
        detector: an objectness detector.
        test_examples: `tf.data.Dataset` of TFDS-style scenes (e.g. of
            held-out classes).
        num_classes: int. Number of classes of their labels.
        path: str. The PNG to write.
        count: int. Images per row (correct above, incorrect below).
        image_size: int. Side the scenes are drawn at.
        max_images: int. Scenes searched for the two kinds.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    batch = next(
        iter(
            data.keras_cv_dataset(
                test_examples, image_size, max_images, num_classes
            )
        )
    )
    side = int(detector.inputs[0].shape[1])
    inference = models.objectness_inference_model(detector, max_detections=1)
    small = keras.ops.image.resize(batch["images"], (side, side))
    top = inference.predict_on_batch(keras.ops.cast(small, "uint8"))["boxes"]
    truth = batch["bounding_boxes"]
    iou = [
        evaluation.compute_iou(
            top[i], truth["boxes"][i][truth["classes"][i] >= 0]
        ).max(initial=0.0)
        for i in range(len(top))
    ]
    correct = [i for i, v in enumerate(iou) if v >= 0.5][:count]
    wrong = [i for i, v in enumerate(iou) if v < 0.5][:count]
    chosen = correct + wrong
    drawn = keras.visualization.draw_bounding_boxes(
        np.asarray(batch["images"])[chosen],
        {
            "boxes": truth["boxes"].numpy()[chosen],
            "labels": truth["classes"].numpy()[chosen],
        },
        "rel_yxyx",
        color=(0, 200, 0),
    )
    drawn = keras.visualization.draw_bounding_boxes(
        drawn,
        {"boxes": top[chosen], "labels": np.zeros((len(chosen), 1), "int32")},
        "rel_yxyx",
        color=(40, 90, 255),
    )
    figure = Figure(figsize=(2.6 * count, 5.6))
    FigureCanvasAgg(figure)
    axes = figure.subplots(2, count, squeeze=False)
    for axis in axes.flat:
        axis.axis("off")
    for axis, image, index in zip(axes.flat, np.asarray(drawn), chosen):
        axis.imshow(image)
        axis.set_title(
            ("correct" if iou[index] >= 0.5 else "incorrect")
            + f" (IoU {iou[index]:.2f})",
            fontsize=9,
        )
    figure.suptitle("held-out classes: true boxes green, top detection blue")
    figure.tight_layout()
    figure.savefig(path, dpi=90)
