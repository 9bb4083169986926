"""Step 1 of LSDA: an image classifier over all K classes."""

import os

import keras
import tensorflow as tf

from keras_objectness import data
from keras_objectness import models
from keras_objectness import training
from keras_objectness.workflows import progress

# The built-in backbone's name: fine-tuning code finds its layers by it.
BACKBONE = "alexnet"


def build_classifier(spec, num_classes, crop_size=32, dropout_rate=0.2):
    """A classifier from a preset name, a `.keras` file or an application.

    Args:
        spec: `"alexnet_small"` (the AlexNet-style preset for `crop_size`
            32 or 64), a path to a saved `.keras` classifier, or the name
            of a `keras.applications` model such as `"MobileNetV3Small"`
            or `"ResNet50"` (built with `weights=None`: nothing is
            downloaded).
        num_classes: int. Number of classes K.
        crop_size: int. Input side of a new classifier.
        dropout_rate: float. Dropout after fc6 and fc7 of the preset.

    Returns:
        `(classifier, is_trained)`: a `keras.Model` from uint8-valued
        images `(crop_size, crop_size, 3)` to K class probabilities, and
        whether it came trained (a `.keras` file).
    """
    if not isinstance(spec, str) or not spec:
        raise ValueError(
            "`classifier` must be 'alexnet_small', a .keras path or a "
            f"keras.applications name. Received: classifier={spec!r}"
        )
    if spec.endswith(".keras"):
        if not os.path.exists(spec):
            raise ValueError(
                f"`classifier` names a .keras file that does not exist. "
                f"Received: classifier={spec!r}"
            )
        model = keras.saving.load_model(spec)
        outputs = model.outputs[0].shape[-1]
        if outputs != num_classes:
            raise ValueError(
                f"`classifier` must have one output per class ({num_classes}"
                f" classes in the data). Received: {spec!r} with {outputs} "
                "outputs"
            )
        return model, True
    if spec == "alexnet_small":
        if crop_size not in (32, 64):
            raise ValueError(
                "`crop_size` must be 32 or 64 for the 'alexnet_small' preset. "
                f"Received: crop_size={crop_size!r}"
            )
        preset = dict(models.ALEXNET_PRESETS[f"alexnet_small_{crop_size}"])
        backbone = models.alexnet_backbone(
            **preset, dropout_rate=dropout_rate, name=BACKBONE
        )
        return models.image_classifier(backbone, num_classes), False
    application = getattr(keras.applications, spec, None)
    if not callable(application):
        raise ValueError(
            "`classifier` must be 'alexnet_small', a .keras path or the "
            "name of a keras.applications model (e.g. 'MobileNetV3Small', "
            f"'ResNet50', 'EfficientNetB0'). Received: classifier={spec!r}"
        )
    model = application(
        weights=None,
        input_shape=(crop_size, crop_size, 3),
        classes=num_classes,
    )
    return model, False


def train_classifier(
    classifier,
    train_examples,
    validation_examples,
    num_classes,
    epochs,
    batch_size=64,
    learning_rate=1e-3,
    min_crop=0.75,
    flip=True,
    seed=0,
    backup_dir=None,
    save_freq=50,
    verbose=2,
    strategy=None,
    top_k=None,
):
    """Trains `classifier` on image-labelled examples of all classes.

    Training images are shuffled, optionally flipped, and cut into random
    square crops covering at least `min_crop` of their side (resized to
    the classifier's input), which keeps a small classifier from
    overfitting; validation images are resized whole. Training runs
    through `keras_objectness.training.resumable_fit`, so it resumes from
    `backup_dir` after a kill and runs under any `tf.distribute` strategy.

    Args:
        classifier: `keras.Model` from images to K probabilities, built (and
            to be compiled) under `strategy`'s scope.
        train_examples, validation_examples: `tf.data.Dataset`s of
            TFDS-style examples (`"image"`, `"objects"`); each image's
            label is the class of its largest object.
        num_classes: int. K.
        epochs: int. Epochs; 0 only compiles and validates.
        batch_size, learning_rate, seed, save_freq, verbose: as named.
        min_crop: float in `[0, 1]`; 0 trains on whole images.
        flip: bool. Random left-right flips.
        backup_dir: resume checkpoints of this training.
        strategy: optional `tf.distribute.Strategy`.
        top_k: optional int. Also track top-`top_k` accuracy (as
            `f"top{top_k}_accuracy"`, `"val_..."` on the validation
            examples). `classifier.history` holds the training's
            `keras.callbacks.History` when `epochs > 0`.

    Returns:
        `(classifier, top-1 accuracy on the validation examples)`.
    """
    if top_k is not None and (
        isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1
    ):
        raise ValueError(
            "`top_k` must be a positive integer or None. "
            f"Received: top_k={top_k!r}"
        )
    strategy = strategy or tf.distribute.get_strategy()
    crop_size = int(classifier.inputs[0].shape[1])
    with strategy.scope():
        # Metrics hold variables: made under the strategy too.
        metrics = [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]
        if top_k is not None:
            metrics.append(
                keras.metrics.SparseTopKCategoricalAccuracy(
                    top_k, name=f"top{top_k}_accuracy"
                )
            )
        classifier.compile(
            keras.optimizers.Adam(learning_rate),
            keras.losses.SparseCategoricalCrossentropy(),
            metrics=metrics,
        )
    validation = data.classification_dataset(
        validation_examples,
        image_size=crop_size,
        batch_size=batch_size,
        num_classes=num_classes,
    )
    if epochs == 0:
        return classifier, _accuracy(classifier, validation)
    # Decoded once and kept in memory: the dataset is read every epoch.
    train_examples = train_examples.cache()
    if min_crop:
        full_size = int(train_examples.element_spec["image"].shape[0] or 0)
        batches = data.classification_dataset(
            train_examples,
            image_size=full_size or 2 * crop_size,
            batch_size=batch_size,
            num_classes=num_classes,
            shuffle_buffer=2048,
            augment=flip,
            seed=seed,
        )
        batches = data.random_square_crops(
            batches, crop_size, min_side=min_crop, seed=seed
        )
    else:
        batches = data.classification_dataset(
            train_examples,
            image_size=crop_size,
            batch_size=batch_size,
            num_classes=num_classes,
            shuffle_buffer=2048,
            augment=flip,
            seed=seed,
        )
    history = training.resumable_fit(
        classifier,
        batches,
        validation_data=validation,
        epochs=epochs,
        backup_dir=backup_dir,
        # Step checkpoints need a folder: without one, none at all.
        save_freq=save_freq if backup_dir is not None else "epoch",
        verbose=progress.keras_verbosity(verbose),
    )
    # Validated after the last epoch: the final weights' accuracy.
    return classifier, float(history.history["val_accuracy"][-1])


def _accuracy(classifier, validation):
    correct, total = 0, 0
    for images, labels in validation:
        predicted = tf.argmax(classifier(images, training=False), axis=-1)
        correct += int(
            tf.reduce_sum(
                tf.cast(predicted == tf.cast(labels, predicted.dtype), tf.int32)
            )
        )
        total += int(tf.shape(labels)[0])
    return correct / max(total, 1)
