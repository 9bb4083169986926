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
"""

import keras
import tensorflow as tf

from keras_objectness import callbacks as callbacks_lib
from keras_objectness import data
from keras_objectness import models
from keras_objectness import training
from keras_objectness.adaptation import find_background_head
from keras_objectness.workflows import progress

METHODS = {
    "lsda": "masked fine-tuning on B, then A moved by its k nearest "
    "neighbours' mean offset (the paper's recipe)",
    "none": "masked fine-tuning on B; A keeps the classifier's columns",
}


def detection_network_copy(
    classifier,
    detection_classes,
    learning_rate=1e-4,
    trainable_layers=None,
    train_detection_classes=True,
    strategy=None,
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
        name: str. Model name.

    Returns:
        The compiled detection network. Its head has no snapshot yet.
    """
    strategy = strategy or tf.distribute.get_strategy()
    with strategy.scope():
        copy = keras.models.clone_model(classifier)
        copy.set_weights(classifier.get_weights())
        network = models.detection_network(
            copy,
            detection_classes,
            train_detection_classes=train_detection_classes,
            name=name,
        )
        if trainable_layers is not None:
            trainable = set(trainable_layers)
            for layer in _backbone_layers(network):
                layer.trainable = layer.name in trainable
        network.compile(
            keras.optimizers.Adam(learning_rate),
            keras.losses.SparseCategoricalCrossentropy(),
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


def finetune_detector(
    classifier,
    train_examples,
    class_split,
    method="lsda",
    knn=5,
    epochs=4,
    learning_rate=1e-4,
    batch_size=64,
    regions_per_image=8,
    positive_fraction=0.25,
    flip=True,
    seed=0,
    classification_examples=None,
    oracle=False,
    backup_dir=None,
    save_freq=50,
    verbose=2,
    strategy=None,
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
        regions_per_image, positive_fraction, flip: of the region crops.
        classification_examples: image-labelled examples of all classes,
            for methods that train on them.
        oracle: bool. Use the boxes of every class (the upper bound that
            the methods are measured against); `method` is then ignored.
        backup_dir: resume checkpoints of this training.
        strategy: optional `tf.distribute.Strategy`.

    Returns:
        The fine-tuned (and adapted) detection network.
    """
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
    network = detection_network_copy(
        classifier,
        detection_classes,
        learning_rate=learning_rate,
        strategy=strategy,
    )
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
    if oracle:
        fit_callbacks = []
        find_background_head(network).take_snapshot()
    elif method == "lsda":
        fit_callbacks = [callbacks_lib.DetectorAdapter(knn=knn)]
    else:
        fit_callbacks = [
            callbacks_lib.DetectorAdapter(adapt_output_layer=False)
        ]
    training.resumable_fit(
        network,
        batches,
        epochs=epochs,
        callbacks=fit_callbacks,
        backup_dir=backup_dir,
        save_freq=save_freq,
        verbose=progress.keras_verbosity(verbose),
    )
    return network
