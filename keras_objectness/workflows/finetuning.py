"""Step 3 of LSDA: fine-tune a copy of the classifier into a detector.

Every method turns a copy of the classifier into a `K + 1`-way detection
network (`keras_objectness.models.detection_network`, background last)
and fine-tunes it on region crops of the detection scenes, labelled with
the classes of B or the background. They differ in what happens to the
held-out classes A, which have no boxes:

- `"lsda"`: the paper's recipe. A's columns are masked during training;
  at the end `keras_objectness.callbacks.DetectorAdapter` moves each by
  the mean change of its `knn` nearest classes of B.
- `"none"`: the same training, with A's columns left at the classifier's
  `W^c` (the paper's "no output-layer adaptation" rows).
- `"lsda_similarity"`: `"lsda"` with the neighbours' offsets weighted by
  the similarity of their classifier columns (after Tang et al., CVPR
  2016) instead of a flat mean.
- `"joint"`: every batch mixes region crops (B or background) with
  image-labelled examples of all K classes
  (`keras_objectness.data.joint_dataset`), under
  `keras_objectness.losses.JointDetectionLoss`: the detection examples
  train B against the background with A masked, the classification
  examples train all K classes (the background excluded), so the shared
  layers keep serving A and A's columns follow the changing features
  (after YOLO9000's joint training).
- `"joint_background"`: `"joint"` with the classification examples'
  cross entropy over all K + 1 outputs: an image of class `a` also teaches
  that it is no background, the one thing the held-out classes cannot
  learn from region crops.
- `"joint_image_regions"`: `"joint"` plus scenes that carry only image
  labels (`image_label_scenes`): in each, the classifier picks the window
  it scores highest for each label (YOLO9000's rule, with the classifier
  as the judge: `keras_objectness.workflows.image_label_boxes`), and
  regions on those boxes train their class against the background, every
  class a detection class. A's columns then learn from regions of real
  scenes, not only from image-level examples.
- `"joint_image_proposals"`: as `"joint_image_regions"`, the box of each
  label chosen among the scene's own selective-search proposals instead
  of fixed sliding windows (proposals fit objects: the chosen box lands on
  an object of its label far more often, see `image_label_boxes`).
- `"joint_image_refined"`: `"joint_image_proposals"` in two rounds. The
  first round's detector picks each label's box again, its score for the
  label now against the background it learned on B's boxes (an
  objectness the classifier never had; with a weak classifier the picks
  hit an object of their label more often), and a second fine-tune from
  the classifier trains on those boxes. Twice the training.
- `"joint_image_confident"`: `"joint_image_refined"` trained only on the
  most confident half of each class's picks in both rounds
  (`keras_objectness.workflows.most_confident_picks`): a pick's own
  score ranks it, and the better-ranked picks hit an object of their
  label far more often, so fewer wrong boxes teach A's columns.
- `"joint_image_negatives"`: `"joint_image_refined"` whose image-label
  scenes also give background regions, only those that touch a picked
  box (IoU 0.1 to 0.5: a cut or loose crop of the object, Fast R-CNN's
  negatives), half of those scenes' regions. Where B's scenes hold no
  object like A's (another domain), nothing else teaches that a part of
  such an object is no detection.
"""

import io
import os

import keras
import numpy as np
import tensorflow as tf

from keras_objectness import _checks
from keras_objectness import callbacks as callbacks_lib
from keras_objectness import data
from keras_objectness import losses
from keras_objectness import models
from keras_objectness import training
from keras_objectness.adaptation import find_background_head
from keras_objectness.class_split import ClassSplit
from keras_objectness.workflows import image_label_regions
from keras_objectness.workflows import progress

METHODS = {
    "lsda": "masked fine-tuning on B, then A moved by its k nearest "
    "neighbours' mean offset (the paper's recipe)",
    "none": "masked fine-tuning on B; A keeps the classifier's columns",
    "lsda_similarity": "as lsda, neighbours weighted by classifier-column "
    "similarity",
    "joint": "fine-tuning on B's regions and on image labels of all classes "
    "together (classification over the K classes)",
    "joint_background": "as joint, image-labelled examples also trained "
    "against the background",
    "joint_image_regions": "as joint, plus regions of image-labelled scenes "
    "at the classifier's best box for each label, trained as detections",
    "joint_image_proposals": "as joint_image_regions, each label's box "
    "chosen among the scene's selective-search proposals",
    "joint_image_refined": "as joint_image_proposals twice: the second "
    "fine-tune (again from the classifier) trains on the boxes the first "
    "one's detector picks",
    "joint_image_confident": "as joint_image_refined, each round trained "
    "on the most confident half of every class's picks",
    "joint_image_negatives": "as joint_image_refined, regions of the "
    "image-labelled scenes that touch a picked box (IoU 0.1 to 0.5) also "
    "trained as background",
}
# Methods that place image labels on boxes, and the candidate boxes they
# choose from (`image_label_boxes`' `windows`).
IMAGE_LABEL_METHODS = {
    "joint_image_regions": 256,
    "joint_image_proposals": "selective_search",
    "joint_image_refined": "selective_search",
    "joint_image_confident": "selective_search",
    "joint_image_negatives": "selective_search",
}
# Image-label methods that fine-tune more than once, each round on the
# boxes picked by the previous round's detector.
IMAGE_LABEL_ROUNDS = {
    "joint_image_refined": 2,
    "joint_image_confident": 2,
    "joint_image_negatives": 2,
}
# Image-label methods that train on each class's most confident picks
# only, and the share of them they keep (`most_confident_picks`).
IMAGE_LABEL_KEEP = {"joint_image_confident": 0.5}
# Image-label methods that also train background regions of their scenes,
# and the IoU with a picked box such a region needs: one that touches no
# pick may hold an object no label was placed on, so it is not trusted.
# Half of such a scene's regions are then positives (else all are).
IMAGE_LABEL_NEGATIVES = {"joint_image_negatives": 0.1}
JOINT_METHODS = ("joint", "joint_background", *IMAGE_LABEL_METHODS)
DETECTORS = {
    "per_crop": "R-CNN: every region cropped and run through the whole network",
    "shared": "Fast R-CNN: the trunk once per image, regions pooled from "
    "its feature map (`shared_feature_detector`)",
}


def detection_network_copy(
    classifier,
    detection_classes,
    learning_rate=1e-4,
    trainable_layers=None,
    train_detection_classes=True,
    strategy=None,
    loss=None,
    mask_heldout_classes=True,
    name="detector",
):
    """A compiled detection network on a copy of `classifier`.

    The classifier itself is never changed: its layers are cloned and its
    weights copied before `detection_network` replaces the output layer.

    Args:
        classifier: a trained `keras.Model` classifier.
        detection_classes: class ids B, or a `ClassSplit`.
        learning_rate: float. Adam rate of fine-tuning.
        trainable_layers: `None` (train everything) or a collection of
            layer names of the classifier's nested backbone to train; the
            others are frozen.
        train_detection_classes: bool. Whether B's output columns train.
        strategy: optional `tf.distribute.Strategy` to build under.
        loss: optional Keras loss. Defaults to sparse categorical cross
            entropy over the K + 1 outputs.
        mask_heldout_classes: bool. Passed to the `BackgroundHead`.
        name: str. Model name.

    Returns:
        The compiled detection network. Its head has no snapshot yet.
    """
    strategy = strategy or tf.distribute.get_strategy()
    with strategy.scope():
        network = models.detection_network(
            classifier,
            detection_classes,
            train_detection_classes=train_detection_classes,
            copy_classifier=True,
            mask_heldout_classes=mask_heldout_classes,
            name=name,
        )
        if trainable_layers is not None:
            trainable = set(trainable_layers)
            for layer in _backbone_layers(network):
                layer.trainable = layer.name in trainable
        network.compile(
            keras.optimizers.Adam(learning_rate),
            loss or keras.losses.SparseCategoricalCrossentropy(),
        )
    return network


def _backbone_layers(network):
    head = find_background_head(network)
    layers = []
    for layer in network.layers:
        if layer is head:
            continue
        layers.extend(getattr(layer, "layers", None) or [layer])
    return layers


def _trainable_after(classifier, frozen_layers):
    """Names of the backbone layers after the first `frozen_layers`
    layers with weights (`None`: all train)."""
    if (
        isinstance(frozen_layers, bool)
        or not isinstance(frozen_layers, int)
        or frozen_layers < 0
    ):
        raise ValueError(
            "`frozen_layers` must be an integer >= 0. "
            f"Received: frozen_layers={frozen_layers!r}"
        )
    if frozen_layers == 0:
        return None
    layers = []
    for layer in classifier.layers:
        layers.extend(getattr(layer, "layers", None) or [layer])
    weighted = [layer for layer in layers if layer.weights]
    # The last weighted layer is the output layer, replaced by the head.
    if frozen_layers >= len(weighted):
        raise ValueError(
            f"`frozen_layers` must be less than the {len(weighted)} layers "
            "with weights of the classifier (its output layer is replaced "
            f"by the detection head). Received: frozen_layers={frozen_layers}"
        )
    frozen = {layer.name for layer in weighted[:frozen_layers]}
    return [layer.name for layer in layers if layer.name not in frozen]


def region_batches(
    train_examples,
    detection_classes,
    num_classes,
    crop_size=32,
    batch_size=64,
    regions_per_image=8,
    positive_fraction=0.25,
    flip=True,
    seed=0,
):
    """Labelled region crops of the detection scenes, batched.

    Crops on an object of a class in `detection_classes` take its label;
    all others are background (label `num_classes`).
    """
    return data.region_dataset(
        train_examples,
        crop_size=crop_size,
        batch_size=batch_size,
        num_classes=num_classes,
        regions_per_image=regions_per_image,
        positive_fraction=positive_fraction,
        keep_classes=detection_classes,
        shuffle_buffer=4096,
        augment=flip,
        seed=seed,
    )


def image_region_batches(
    train_examples,
    detection_classes,
    num_classes,
    image_size,
    images_per_batch=8,
    regions_per_image=8,
    positive_fraction=0.25,
    flip=True,
    seed=0,
    min_background_iou=0.0,
):
    """Whole images with labelled regions, for fine-tuning through pooling.

    The regions and labels of `region_batches` (the same sampler:
    `keras_objectness.data.sample_regions`, IoU >= 0.5 to an object of
    `detection_classes` takes its class, the rest are background
    `num_classes`), kept with their image instead of cropped: Fast
    R-CNN's mini-batches of a few images and many regions each.
    Background regions whose best IoU is below `min_background_iou` get
    weight 0, as `data.region_dataset` leaves them out.

    Returns:
        `tf.data.Dataset` of `((uint8 images (b, S, S, 3), float32 regions
        (b, R, 4)), int32 labels (b, R), float32 weights (b, R))`; rows
        that could not be drawn have weight 0 (and the background label).
    """
    scenes = data.keras_cv_dataset(
        train_examples,
        image_size,
        images_per_batch,
        num_classes,
        keep_classes=detection_classes,
        shuffle_buffer=1024,
        augment=flip,
        seed=seed,
    ).unbatch()
    _checks.check_min_background_iou(min_background_iou)
    seeds = tf.data.Dataset.random(seed=seed + 1).batch(2)

    def sample(example, region_seed):
        boxes = example["bounding_boxes"]
        regions, labels, _ = data.sample_regions(
            boxes["boxes"],
            boxes["classes"],
            regions_per_image,
            background_class=num_classes,
            positive_fraction=positive_fraction,
            seed=region_seed,
            ignore=boxes["ignore"],
            min_background_iou=min_background_iou,
        )
        weights = tf.cast(labels >= 0, tf.float32)
        # The background is a valid label under every loss (a class
        # could be one that `JointDetectionLoss` refuses as a region).
        labels = tf.where(labels >= 0, labels, num_classes)
        return (example["images"], regions), labels, weights

    dataset = tf.data.Dataset.zip((scenes, seeds)).map(
        sample, num_parallel_calls=tf.data.AUTOTUNE
    )
    return dataset.batch(images_per_batch).prefetch(tf.data.AUTOTUNE)


def shared_training_model(network, image_size, regions_per_image):
    """`network`'s layers as a compiled Fast R-CNN training model.

    Images and regions in, the head's `K + 1` probabilities per region
    out (`shared_feature_detector` with `output_mode=None`), compiled with
    the network's own optimizer settings and loss; it holds the network's
    layer objects, so training it trains `network`.
    """
    model = models.shared_feature_detector(
        network,
        (image_size, image_size, 3),
        regions_per_image,
        output_mode=None,
        name=f"{network.name}_shared",
    )
    optimizer = network.optimizer
    model.compile(
        keras.optimizers.Adam(float(optimizer.learning_rate)),
        network.loss or keras.losses.SparseCategoricalCrossentropy(),
    )
    return model


def finetune_detector(
    classifier,
    train_examples,
    class_split,
    method="lsda",
    knn=5,
    epochs=4,
    learning_rate=1e-4,
    frozen_layers=0,
    batch_size=64,
    regions_per_image=8,
    positive_fraction=0.25,
    flip=True,
    seed=0,
    classification_examples=None,
    classification_fraction=0.25,
    classification_weight=1.0,
    oracle=False,
    backup_dir=None,
    save_freq=50,
    verbose=2,
    strategy=None,
    detector="per_crop",
    image_size=128,
    image_label_scenes=None,
    image_region_fraction=0.25,
):
    """Fine-tunes a copy of `classifier` into an all-class detector.

    Args:
        classifier: the trained K-class classifier (left unchanged).
        train_examples: `tf.data.Dataset` of detection scenes (TFDS-style).
        class_split: the `ClassSplit` (B: classes whose boxes are used).
        method: one of `METHODS`. Defaults to `"lsda"`.
        knn: int or `"all"`, for `"lsda"`. Defaults to `5`.
        epochs, learning_rate, batch_size, seed, save_freq, verbose: as
            named.
        frozen_layers: int. The first this many layers with weights of
            the classifier (graph order) are not fine-tuned: early
            filters are generic (Fast R-CNN keeps them), and their
            gradients are the costliest to compute. Defaults to `0`.
        regions_per_image, positive_fraction, flip: of the region crops.
        classification_examples: TFDS-style image-labelled examples of all
            classes, for the `"joint"` methods.
        classification_fraction: float. Share of each joint batch that is
            image-labelled examples.
        classification_weight: float. Factor of their loss.
        oracle: bool. Use the boxes of every class (the upper bound that
            the methods are measured against); `method` is then ignored.
        backup_dir: resume checkpoints of this training. The methods of
            `IMAGE_LABEL_ROUNDS` checkpoint each round under
            `backup_dir/round-N` and keep a finished round's picked boxes,
            so an interrupted run resumes in the round it stopped in.
        strategy: optional `tf.distribute.Strategy`.
        detector: `"per_crop"` (train on region crops, R-CNN) or
            `"shared"` (train through `shared_feature_detector` on whole
            images of `image_size`, Fast R-CNN: `batch_size //
            regions_per_image` images a batch). The returned network is
            the same kind of detection network either way. Defaults to
            `"per_crop"`.
        image_size: int. Side of the training scenes for `"shared"`.
            Defaults to `128`.
        image_label_scenes: TFDS-style detection scenes of which only the
            labels are used (their boxes never are), for the image-label
            methods (`IMAGE_LABEL_METHODS`); typically the scenes with
            objects of A, boxes withheld.
        image_region_fraction: float in `(0, 1)`. Share of the region
            examples that come from `image_label_scenes`. Defaults to
            `0.25`.

    Returns:
        The fine-tuned (and adapted) detection network.
    """
    if detector not in DETECTORS:
        raise ValueError(
            f"`detector` must be one of {tuple(DETECTORS)}. "
            f"Received: detector={detector!r}"
        )
    if method not in METHODS:
        raise ValueError(
            f"`method` must be one of {tuple(METHODS)}. "
            f"Received: method={method!r}"
        )
    num_classes = class_split.num_classes
    crop_size = int(classifier.inputs[0].shape[1])
    detection_classes = (
        tuple(range(num_classes)) if oracle else class_split.detection_classes
    )
    joint = method in JOINT_METHODS and not oracle
    images_per_batch = max(1, batch_size // regions_per_image)
    if joint and detector == "shared" and images_per_batch < 2:
        raise ValueError(
            f"`method={method!r}` with `detector='shared'` mixes whole "
            "images of two kinds into each batch and needs `batch_size` >= "
            f"2 * `regions_per_image`. Received: batch_size={batch_size}, "
            f"regions_per_image={regions_per_image}"
        )
    image_regions = method in IMAGE_LABEL_METHODS and not oracle
    if image_regions:
        if image_label_scenes is None:
            raise ValueError(
                f"`method={method!r}` trains on scenes with image "
                "labels: pass `image_label_scenes`."
            )
        if not 0 < image_region_fraction < 1:
            raise ValueError(
                "`image_region_fraction` must be in (0, 1). Received: "
                f"image_region_fraction={image_region_fraction!r}"
            )
    loss = None
    if joint:
        if classification_examples is None:
            raise ValueError(
                f"`method={method!r}` trains on image-labelled examples: "
                "pass `classification_examples`."
            )
        loss = losses.JointDetectionLoss(
            num_classes,
            # Regions of every class are trained once A has boxes of its own.
            tuple(range(num_classes)) if image_regions else detection_classes,
            classification_weight=classification_weight,
            classification_against_background=method == "joint_background",
        )
    # Examples per batch that hold B's regions (or images) once the
    # classification examples have their fixed share: the image-label
    # regions take a fixed share of these, so both shares stay fixed.
    if detector == "shared":
        region_slots = images_per_batch
        if joint:
            region_slots -= _share_count(
                images_per_batch, classification_fraction
            )
    else:
        region_slots = batch_size
        if joint:
            region_slots -= data.joint.classification_examples_per_batch(
                batch_size, classification_fraction
            )
    if image_regions and region_slots < 2:
        raise ValueError(
            f"`method={method!r}` mixes regions of two kinds into the "
            "examples of each batch left by the classification examples, "
            "and needs at least 2 of them. Received: "
            f"batch_size={batch_size}, regions_per_image={regions_per_image}"
            f", classification_fraction={classification_fraction}"
        )

    def training_batches(found_scenes):
        """The batches of one round; `found_scenes` carry the picked boxes
        of the image labels (`None` without image-label methods)."""
        if detector == "shared":
            batches = image_region_batches(
                train_examples,
                detection_classes,
                num_classes,
                image_size,
                images_per_batch=images_per_batch,
                regions_per_image=regions_per_image,
                positive_fraction=positive_fraction,
                flip=flip,
                seed=seed,
            )
        else:
            batches = region_batches(
                train_examples,
                detection_classes,
                num_classes,
                crop_size=crop_size,
                batch_size=batch_size,
                regions_per_image=regions_per_image,
                positive_fraction=positive_fraction,
                flip=flip,
                seed=seed,
            )
        if image_regions and detector == "shared":
            batches = _with_shared_image_label_regions(
                batches,
                found_scenes,
                num_classes,
                image_size,
                region_slots,
                regions_per_image,
                image_region_fraction,
                flip,
                seed,
                IMAGE_LABEL_NEGATIVES.get(method),
            )
        elif image_regions:
            batches = _with_image_label_regions(
                batches,
                found_scenes,
                num_classes,
                crop_size,
                region_slots,
                regions_per_image,
                image_region_fraction,
                flip,
                seed,
                IMAGE_LABEL_NEGATIVES.get(method),
            )
        if detector == "shared" and joint:
            return _with_shared_classification_images(
                batches,
                classification_examples,
                num_classes,
                image_size,
                images_per_batch,
                regions_per_image,
                classification_fraction,
                flip,
                seed,
            )
        if joint:
            images = data.classification_dataset(
                classification_examples,
                image_size=crop_size,
                batch_size=batch_size,
                num_classes=num_classes,
                shuffle_buffer=2048,
                augment=flip,
                seed=seed,
            )
            return data.joint_dataset(
                batches,
                images,
                num_classes,
                batch_size,
                classification_fraction=classification_fraction,
                detection_classes=None if image_regions else detection_classes,
                seed=seed,
            )
        return batches

    def fit_round(found_scenes, round_backup_dir):
        """A fresh copy of the classifier, fine-tuned on one round's data."""
        network = detection_network_copy(
            classifier,
            # Names travel with the head, so a saved detector reports them.
            ClassSplit(
                num_classes,
                detection_classes,
                class_names=getattr(class_split, "class_names", None),
            ),
            learning_rate=learning_rate,
            strategy=strategy,
            loss=loss,
            mask_heldout_classes=not joint,
            trainable_layers=_trainable_after(classifier, frozen_layers),
        )
        head = find_background_head(network)
        if oracle:
            fit_callbacks = []
            head.take_snapshot()
        elif method in ("lsda", "lsda_similarity"):
            weighting = (
                "similarity" if method == "lsda_similarity" else "uniform"
            )
            fit_callbacks = [
                callbacks_lib.DetectorAdapter(knn=knn, weighting=weighting)
            ]
        elif joint:
            # A's columns learned with the features: nothing to move. The
            # snapshot keeps W^c for `adapt_classifier` all the same.
            fit_callbacks = []
            head.take_snapshot()
        else:
            fit_callbacks = [
                callbacks_lib.DetectorAdapter(adapt_output_layer=False)
            ]
        trained = network
        if detector == "shared":
            with (strategy or tf.distribute.get_strategy()).scope():
                trained = shared_training_model(
                    network, image_size, regions_per_image
                )
        training.resumable_fit(
            trained,
            training_batches(found_scenes),
            epochs=epochs,
            callbacks=fit_callbacks,
            backup_dir=round_backup_dir,
            save_freq=save_freq if round_backup_dir is not None else "epoch",
            verbose=progress.keras_verbosity(verbose),
        )
        return network

    if not image_regions:
        return fit_round(None, backup_dir)
    candidates = IMAGE_LABEL_METHODS[method]
    if candidates == "selective_search":
        # Computed once: every round picks among the same proposals.
        candidates = image_label_regions.scene_proposals(
            image_label_scenes, verbose=verbose
        )

    def pick(picker):
        boxes, labels, scores = image_label_regions.image_label_boxes(
            picker,
            image_label_scenes,
            num_classes,
            windows=candidates,
            verbose=verbose,
        )
        if method in IMAGE_LABEL_KEEP:
            labels = image_label_regions.most_confident_picks(
                labels, scores, IMAGE_LABEL_KEEP[method]
            )
        return boxes, labels

    rounds = IMAGE_LABEL_ROUNDS.get(method, 1)
    first_round, picks = 0, None
    if backup_dir is not None and rounds > 1:
        first_round, picks = _saved_picks(backup_dir, rounds, strategy)
    for round_index in range(first_round, rounds):
        if picks is None:
            picks = pick(classifier)
        round_backup_dir = backup_dir
        if backup_dir is not None and rounds > 1:
            round_backup_dir = os.path.join(
                backup_dir, f"round-{round_index + 1}"
            )
        network = fit_round(
            image_label_regions.image_label_scenes(image_label_scenes, *picks),
            round_backup_dir,
        )
        if round_index + 1 < rounds:
            # The next round picks with the detector just trained: its
            # score for a label competes with the background it learned
            # from B's boxes, which the classifier never saw.
            picks = pick(network)
            if backup_dir is not None:
                _save_picks(backup_dir, round_index + 2, picks, strategy)
    if backup_dir is not None and rounds > 1:
        # Finished: a later call starts afresh, as `resumable_fit` does.
        for round_number in range(2, rounds + 1):
            path = _picks_path(backup_dir, round_number, strategy)
            if tf.io.gfile.exists(path):
                tf.io.gfile.remove(path)
    return network


def _picks_path(backup_dir, round_number, strategy):
    # One file per worker: each writes its own, none reads another's.
    worker = training.worker_id(strategy)
    return os.path.join(
        backup_dir, f"worker-{worker}", f"round-{round_number}-boxes.npz"
    )


def _save_picks(backup_dir, round_number, picks, strategy):
    path = _picks_path(backup_dir, round_number, strategy)
    tf.io.gfile.makedirs(os.path.dirname(path))
    buffer = io.BytesIO()
    np.savez(buffer, boxes=picks[0], labels=picks[1])
    with tf.io.gfile.GFile(path, "wb") as file:
        file.write(buffer.getvalue())


def _saved_picks(backup_dir, rounds, strategy):
    """`(first round to train, its boxes or None)` after an interruption:
    a finished round left the boxes the next one trains on."""
    for round_number in range(rounds, 1, -1):
        path = _picks_path(backup_dir, round_number, strategy)
        if tf.io.gfile.exists(path):
            with tf.io.gfile.GFile(path, "rb") as file:
                saved = np.load(io.BytesIO(file.read()))
                return round_number - 1, (saved["boxes"], saved["labels"])
    return 0, None


def _share_count(batch_size, fraction):
    """Examples of a stream mixed into each batch by `_mix_in`."""
    return min(batch_size - 1, max(1, round(fraction * batch_size)))


def _mix_in(batches, stream, batch_size, fraction):
    """`batches` with a fixed, nonzero share of each made of `stream`.

    The examples of `batches` define the epoch; `stream` repeats.
    """
    count = _share_count(batch_size, fraction)
    mixed = data.fixed_share_batches(
        batches.unbatch(), stream.repeat(), batch_size, count
    )
    return mixed.prefetch(tf.data.AUTOTUNE)


def _with_shared_image_label_regions(
    batches,
    found_scenes,
    num_classes,
    image_size,
    images_per_batch,
    regions_per_image,
    fraction,
    flip,
    seed,
    min_background_iou=None,
):
    """Whole-image `batches` of B, a `fraction` of their images replaced
    by image-labelled scenes with regions on their found boxes
    (`found_scenes`, from `image_label_regions.image_label_scenes`).

    As `_with_image_label_regions`, only positives train unless
    `min_background_iou` is given: a region of such a scene that falls on
    none of the found boxes gets weight 0 (or, with it, one that touches
    none of them by that IoU).
    """
    labelled = image_region_batches(
        found_scenes,
        tuple(range(num_classes)),
        num_classes,
        image_size,
        images_per_batch=images_per_batch,
        regions_per_image=regions_per_image,
        positive_fraction=1.0 if min_background_iou is None else 0.5,
        flip=flip,
        seed=seed + 1,
        min_background_iou=min_background_iou or 0.0,
    ).unbatch()

    def positives_only(inputs, region_labels, weights):
        keep = tf.cast(region_labels < num_classes, weights.dtype)
        return inputs, region_labels, weights * keep

    if min_background_iou is None:
        labelled = labelled.map(positives_only)
    labelled = labelled.filter(
        lambda inputs, region_labels, weights: tf.reduce_sum(weights) > 0
    )
    return _mix_in(batches, labelled, images_per_batch, fraction)


def _with_shared_classification_images(
    batches,
    classification_examples,
    num_classes,
    image_size,
    images_per_batch,
    regions_per_image,
    fraction,
    flip,
    seed,
):
    """Whole-image `batches` with a `fraction` of their images replaced by
    image-labelled examples, each one region over the whole image with
    its encoded classification label (`JointDetectionLoss`)."""
    images = data.classification_dataset(
        classification_examples,
        image_size=image_size,
        batch_size=images_per_batch,
        num_classes=num_classes,
        shuffle_buffer=2048,
        augment=flip,
        seed=seed,
    ).unbatch()
    whole_image = tf.constant([[0.0, 0.0, 1.0, 1.0]])

    def as_regions(image, label):
        regions = tf.tile(whole_image, (regions_per_image, 1))
        # Only the first row trains: one example per image, as per crop.
        weights = tf.one_hot(0, regions_per_image, dtype=tf.float32)
        encoded = losses.encode_classification_labels(label, num_classes)
        region_labels = tf.fill(
            (regions_per_image,), tf.cast(encoded, tf.int32)
        )
        return (image, regions), region_labels, weights

    return _mix_in(batches, images.map(as_regions), images_per_batch, fraction)


def _with_image_label_regions(
    batches,
    found_scenes,
    num_classes,
    crop_size,
    batch_size,
    regions_per_image,
    fraction,
    flip,
    seed,
    min_background_iou=None,
):
    """`batches` of B's regions, a `fraction` of them replaced by regions
    on the found boxes of the image labels (`found_scenes`, from
    `image_label_regions.image_label_scenes`); with `min_background_iou`,
    half of these are background regions touching a found box by at
    least that IoU."""
    # Positives only by default: a scene's other regions may hold objects
    # that no image label was placed on, so they are not trusted as
    # background; those that touch a found box mostly cut an object.
    labelled = data.region_dataset(
        found_scenes,
        crop_size=crop_size,
        batch_size=batch_size,
        num_classes=num_classes,
        regions_per_image=regions_per_image,
        positive_fraction=1.0 if min_background_iou is None else 0.5,
        shuffle_buffer=4096,
        augment=flip,
        seed=seed + 1,
        check_annotations=False,
        min_background_iou=min_background_iou or 0.0,
    ).unbatch()
    if min_background_iou is None:
        labelled = labelled.filter(lambda crop, label: label < num_classes)
    return _mix_in(batches, labelled, batch_size, fraction)
