"""The LSDA workflow end to end: classifier in, all-class detector out."""

import json
import os
import platform

import keras
import numpy as np
import tensorflow as tf

from keras_objectness import data
from keras_objectness import evaluation
from keras_objectness import training
from keras_objectness.adaptation import validate_knn
from keras_objectness.workflows import classifiers
from keras_objectness.workflows import finetuning
from keras_objectness.workflows import gallery
from keras_objectness.workflows import proposals as proposals_lib
from keras_objectness.workflows import scoring
from keras_objectness.workflows.config import WorkflowConfig
from keras_objectness.workflows.precision import precision_policy
from keras_objectness.workflows.progress import StageLog

# Side that test images of datasets with images of varying size are
# resized to (relative boxes do not change).
DEFAULT_TEST_IMAGE_SIZE = 128


def make_strategy(name="default"):
    """`"default"`, `"mirrored"` (all local devices) or `"multi_worker"`."""
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi_worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    if name != "default":
        raise ValueError(
            "`strategy` must be 'default', 'mirrored' or 'multi_worker'. "
            f"Received: strategy={name!r}"
        )
    return tf.distribute.get_strategy()


def classification_examples(source, role, crop_size):
    """Image-labelled examples of all classes for a classification role.

    The source's own classification split where it has one; otherwise
    crops of the annotated objects of the detection training scenes
    (`"classification_train"`) or of the validation or test scenes
    (`"classification_validation"`).
    """
    if source.has_role(role):
        return source.load(role)
    scenes = "detection_train" if role == "classification_train" else "test"
    if role == "classification_validation" and source.has_role(
        "classification_validation"
    ):
        scenes = "classification_validation"
    return data.object_crops(source.load(scenes), crop_size)


def test_arrays(source, max_images=None, image_size=None, max_boxes=32):
    """The test scenes as numpy arrays.

    Returns:
        `(images, ground_truth)`: uint8 `(N, S, S, 3)` and a dict of
        `"boxes"` (relative yxyx), `"classes"` and `"ignore"` (crowd or
        difficult boxes), padded with `-1` (`False`).
    """
    dataset = source.load("test", max_examples=max_images)
    size = image_size or source.image_size("test") or DEFAULT_TEST_IMAGE_SIZE
    images, truth = [], {}
    for batch in data.keras_cv_dataset(
        dataset, size, 128, source.num_classes, max_boxes=max_boxes
    ):
        images.append(batch["images"].numpy())
        for key, value in batch["bounding_boxes"].items():
            truth.setdefault(key, []).append(value.numpy())
    if not images:
        raise ValueError(f"{source.description} has no test images.")
    return np.concatenate(images), {
        key: np.concatenate(value) for key, value in truth.items()
    }


def run_lsda(
    source,
    class_split=None,
    config=None,
    strategy=None,
    log=None,
    command=None,
):
    """Classifier, proposals, fine-tuning, detection and evaluation.

    1. A K-class classifier (`config.classifier`), trained on
       image-labelled examples of every class unless it came trained.
    2. Class-generic proposals for the test scenes (selective search by
       default; an objectness detector trained on B's boxes with
       `proposal_source="objectness"`), and their recall.
    3. The unadapted baseline: the classifier's softmax on the proposals.
    4. A copy of the classifier fine-tuned into a detector on B's boxes
       with the adaptation `config.method`, evaluated on the same
       proposals.
    5. `results.json`, `gallery.png`, `classifier.keras` and
       `detector.keras` in `config.output_dir` (the chief only).

    Args:
        source: a `keras_objectness.workflows.DataSource`.
        class_split: a `ClassSplit`, or `None` for the source's default.
        config: a `WorkflowConfig`. Defaults to `WorkflowConfig()`.
        strategy: optional `tf.distribute.Strategy` of the trainings.
        log: optional `StageLog`.
        command: optional str recorded in the results.

    Returns:
        The results dict (also written as `results.json`), or `None` on
        workers other than the chief.
    """
    config = config or WorkflowConfig()
    with precision_policy(config.mixed_precision):
        return _run_lsda(source, class_split, config, strategy, log, command)


def _run_lsda(source, class_split, config, strategy, log, command):
    log = log or StageLog(verbose=config.verbose > 0)
    strategy = strategy or tf.distribute.get_strategy()
    chief = training.is_chief(strategy)
    keras.utils.set_random_seed(config.seed)
    with log.stage("dataset"):
        source.prepare()
        class_split = class_split or source.class_split()
        config = config.for_source(source)
        log.say(
            f"{source.description}: {class_split.num_classes} classes, "
            f"{len(class_split.detection_classes)} with boxes (B), "
            f"{len(class_split.heldout_classes)} without (A)"
        )
    # Again: building a dataset draws from the global generators, and the
    # results must not depend on whether it was built before.
    keras.utils.set_random_seed(config.seed)
    num_classes = class_split.num_classes
    if config.method in ("lsda", "lsda_similarity"):
        # Before hours of training, not after.
        validate_knn(config.knn, len(class_split.detection_classes))

    with log.stage("classifier"):
        classifier, accuracy = classifier_from_config(
            source,
            num_classes,
            config,
            backup_dir=_backup(config, "classifier"),
            strategy=strategy,
        )
        log.say(f"classifier top-1 accuracy {accuracy:.3f} (validation)")

    proposer = None
    if config.proposal_source == "objectness":
        with log.stage("proposer"):
            proposer = proposer_from_config(
                source,
                class_split,
                config,
                backup_dir=_backup(config, "proposer"),
                strategy=strategy,
            )

    if not chief:
        # The other workers only train: fine-tuning is the last training.
        finetune_from_config(
            classifier,
            source,
            class_split,
            config,
            backup_dir=_backup(config, "finetune"),
            strategy=strategy,
        )
        return None

    with log.stage("proposals"):
        images, ground_truth = test_arrays(source, config.max_test_images)
        boxes = proposals_lib.make_proposals(
            images,
            config.proposal_source,
            config.proposals,
            proposer=proposer,
            iou_threshold=config.proposal_iou,
            verbose=config.verbose > 0,
            seed=config.seed,
        )
        recall = evaluation.proposal_recall(boxes, ground_truth)
        log.say(
            f"{config.proposals} {config.proposal_source} proposals on "
            f"{len(images)} test images: recall {recall:.2f} at IoU 0.5"
        )

    detect = dict(
        iou_threshold=config.iou_threshold, verbose=config.verbose > 0
    )
    with log.stage("baseline detection"):
        baseline_detections = scoring.detect_on_proposals(
            classifier, images, boxes, **detect
        )
        baseline = scoring.evaluate_detections(
            baseline_detections, ground_truth, class_split
        )

    with log.stage(f"fine-tuning ({config.method})"):
        network = finetune_from_config(
            classifier,
            source,
            class_split,
            config,
            backup_dir=_backup(config, "finetune"),
            strategy=strategy,
        )

    with log.stage("adapted detection"):
        detections = scoring.detect_on_proposals(
            network, images, boxes, detector=config.region_features, **detect
        )
        adapted = scoring.evaluate_detections(
            detections, ground_truth, class_split
        )

    os.makedirs(config.output_dir, exist_ok=True)
    with log.stage("gallery and models"):
        figure = gallery.draw_gallery(
            images,
            ground_truth,
            [baseline_detections, detections],
            class_split,
            os.path.join(config.output_dir, "gallery.png"),
            titles=["classifier alone", f"adapted ({config.method})"],
            count=config.gallery_images,
        )
        classifier.save(os.path.join(config.output_dir, "classifier.keras"))
        network.save(os.path.join(config.output_dir, "detector.keras"))

    results = {
        "command": command,
        "config": config.to_dict(),
        "data": source.description,
        "machine": machine(),
        "class_names": list(class_split.class_names or ()),
        "detection_classes": list(class_split.detection_classes),
        "classifier_accuracy": accuracy,
        "proposal_recall": recall,
        "num_test_images": int(len(images)),
        "no_adaptation": baseline,
        "adapted": adapted,
        "gallery": figure,
        "seconds": dict(log.seconds),
        "total_seconds": log.total_seconds,
    }
    with open(os.path.join(config.output_dir, "results.json"), "w") as file:
        json.dump(results, file, indent=2)
    return results


def classifier_from_config(
    source, num_classes, config, epochs=None, backup_dir=None, strategy=None
):
    """Builds `config.classifier` and trains it on the source's images.

    Args:
        source: a `DataSource`.
        num_classes: int. K.
        config: a `WorkflowConfig`.
        epochs: optional int. Defaults to 0 for a classifier that came
            trained (a `.keras` file), else `config.classifier_epochs`.
        backup_dir: optional resume-checkpoint folder.
        strategy: optional `tf.distribute.Strategy`.

    Returns:
        `(classifier, validation top-1 accuracy)`.
    """
    with precision_policy(config.mixed_precision):
        classifier, trained = classifiers.build_classifier(
            config.classifier,
            num_classes,
            config.crop_size,
            config.dropout_rate,
        )
    if epochs is None:
        epochs = 0 if trained else config.classifier_epochs
    crop_size = int(classifier.inputs[0].shape[1])
    return classifiers.train_classifier(
        classifier,
        classification_examples(source, "classification_train", crop_size),
        classification_examples(source, "classification_validation", crop_size),
        num_classes,
        epochs=epochs,
        batch_size=config.batch_size,
        learning_rate=config.learning_rate,
        min_crop=config.classifier_min_crop,
        flip=config.flip,
        seed=config.seed,
        backup_dir=backup_dir,
        save_freq=config.save_freq,
        verbose=config.verbose,
        strategy=strategy,
    )


def proposer_from_config(
    source, class_split, config, backup_dir=None, strategy=None
):
    """The objectness proposer of `config`, trained on the boxes of B."""
    return proposals_lib.train_proposer(
        source.load("detection_train"),
        class_split.num_classes,
        class_split.detection_classes,
        epochs=config.proposer_epochs,
        image_size=config.proposer_image_size,
        batch_size=config.batch_size,
        learning_rate=config.learning_rate,
        flip=config.flip,
        seed=config.seed,
        backup_dir=backup_dir,
        save_freq=config.save_freq,
        verbose=config.verbose,
        strategy=strategy,
    )


def finetune_from_config(
    classifier, source, class_split, config, backup_dir=None, strategy=None
):
    """A copy of `classifier` fine-tuned with `config.method`."""
    config = config.for_source(source)
    crop_size = int(classifier.inputs[0].shape[1])
    image_label_scenes = None
    if config.method in finetuning.IMAGE_LABEL_METHODS:
        # Labels only: `image_label_boxes` never reads these scenes' boxes.
        image_label_scenes = data.scenes_with_classes(
            source.load("image_label_scenes"), class_split.heldout_classes
        ).take(config.image_label_scenes)
    with precision_policy(config.mixed_precision):
        return finetuning.finetune_detector(
            classifier,
            source.load("detection_train"),
            class_split,
            method=config.method,
            knn=config.knn,
            epochs=config.finetune_epochs,
            learning_rate=config.finetune_learning_rate,
            frozen_layers=config.frozen_layers,
            batch_size=config.batch_size,
            regions_per_image=config.regions_per_image,
            positive_fraction=config.positive_fraction,
            flip=config.flip,
            seed=config.seed,
            classification_examples=classification_examples(
                source, "classification_train", crop_size
            ),
            backup_dir=backup_dir,
            save_freq=config.save_freq,
            verbose=config.verbose,
            strategy=strategy,
            detector=config.region_features,
            image_size=_scene_side(source, config),
            image_label_scenes=image_label_scenes,
        )


def _scene_side(source, config):
    """Side of the whole training scenes of shared-feature fine-tuning."""
    if config.region_features != "shared":
        return DEFAULT_TEST_IMAGE_SIZE  # not read by per-crop training
    side = source.image_size("detection_train")
    return side or DEFAULT_TEST_IMAGE_SIZE


def _backup(config, name):
    root = config.backup_dir or os.path.join(config.output_dir, "backup")
    return os.path.join(root, name)


def machine():
    """A short description of this machine, for results files."""
    return (
        f"{platform.machine()}, {os.cpu_count()} CPU cores, "
        f"{platform.system()} {platform.release()}, Python "
        f"{platform.python_version()}, TensorFlow {tf.__version__}, "
        f"Keras {keras.__version__}"
    )
