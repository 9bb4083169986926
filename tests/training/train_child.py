"""A short training run with `resumable_fit`, as a child process.

Run by `test_multi_worker.py`: on one machine, or as one worker of a
cluster described by `TF_CONFIG` (then under MultiWorkerMirroredStrategy).

* `--model objectness`: a tiny objectness detector on the VOC-layout
  fixture, for comparing two workers with one process.
* `--model lsda`: a tiny LSDA detection network fine-tuned with
  `DetectorAdapter`, on shuffled region data (so the input position
  matters), checkpointing every `SAVE_FREQ` steps.

With `--pause-at-step N` the run writes `--marker` after its N-th step and
waits to be killed. Otherwise it trains to the end (resuming from
`--backup-dir` if a backup is there) and writes `--result` (a `.npz` of the
weights, the optimizer's variables, the loss history and the first step it
ran).
"""

import argparse
import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from keras_objectness import BoxSpace  # noqa: E402
from keras_objectness.callbacks import DetectorAdapter  # noqa: E402
from keras_objectness.data import objectness_dataset  # noqa: E402
from keras_objectness.models import ALEXNET_PRESETS  # noqa: E402
from keras_objectness.models import alexnet_backbone  # noqa: E402
from keras_objectness.models import detection_network  # noqa: E402
from keras_objectness.models import objectness_detector  # noqa: E402
from keras_objectness.training import resumable_fit  # noqa: E402
from tests.data.voc_fixture import voc_dataset  # noqa: E402
from tests.lsda_helpers import DETECTION_CLASSES  # noqa: E402
from tests.lsda_helpers import region_data  # noqa: E402
from tests.lsda_helpers import tiny_classifier  # noqa: E402

EPOCHS = 3
STEPS_PER_EPOCH = 8  # lsda: 32 regions, global batch 4
SAVE_FREQ = 3


class PauseAtStep(keras.callbacks.Callback):
    """Announces the end of step `step` (counted from 1), then hangs."""

    def __init__(self, step, marker):
        super().__init__()
        self.step = step
        self.marker = marker

    def on_train_batch_end(self, batch, logs=None):
        if int(self.model.optimizer.iterations.numpy()) == self.step:
            with open(self.marker, "w") as file:
                file.write(f"step {self.step}\n")
            time.sleep(600)
            sys.exit("was not killed")


class FirstStep(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.first_step = None

    def on_train_batch_begin(self, batch, logs=None):
        if self.first_step is None:
            self.first_step = int(self.model.optimizer.iterations.numpy())


def objectness_run():
    space = BoxSpace(grid_shape=(4, 4), scales=(0.2, 0.4, 0.8))
    # No dropout: replicas would draw different masks than one device.
    backbone = alexnet_backbone(
        **ALEXNET_PRESETS["alexnet_small_32"], dropout_rate=0.0
    )
    model = objectness_detector(backbone, space)
    model.compile(
        keras.optimizers.SGD(0.05, momentum=0.9),
        keras.losses.CategoricalCrossentropy(),
    )
    # The fixture's three images with objects, four times: 3 global batches
    # of 4, shuffled.
    dataset = objectness_dataset(
        voc_dataset().repeat(4),
        space,
        32,
        batch_size=4,
        num_classes=20,
        shuffle_buffer=12,
        seed=1,
    )
    return model, dataset, dict(epochs=2, steps_per_epoch=3), []


def lsda_run():
    classifier = tiny_classifier()
    model = detection_network(classifier, DETECTION_CLASSES)
    model.compile(
        keras.optimizers.Adam(0.01), "sparse_categorical_crossentropy"
    )
    images, labels = region_data(count=STEPS_PER_EPOCH * 4)
    dataset = (
        tf.data.Dataset.from_tensor_slices((images, labels))
        .shuffle(32, seed=3)
        .batch(4)
    )
    arguments = dict(epochs=EPOCHS, save_freq=SAVE_FREQ)
    return model, dataset, arguments, [DetectorAdapter(knn=2)]


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", choices=("objectness", "lsda"))
    parser.add_argument("--backup-dir", required=True)
    parser.add_argument("--result", required=True)
    parser.add_argument("--pause-at-step", type=int)
    parser.add_argument("--marker")
    args = parser.parse_args()

    tf.config.experimental.enable_op_determinism()
    tf.config.threading.set_inter_op_parallelism_threads(1)
    tf.config.threading.set_intra_op_parallelism_threads(1)
    keras.utils.set_random_seed(0)
    if "TF_CONFIG" in os.environ:
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
    else:
        strategy = tf.distribute.get_strategy()
    with strategy.scope():
        run = objectness_run if args.model == "objectness" else lsda_run
        model, dataset, arguments, callbacks = run()
    first_step = FirstStep()
    callbacks.append(first_step)
    if args.pause_at_step:
        callbacks.append(PauseAtStep(args.pause_at_step, args.marker))
    history = resumable_fit(
        model,
        dataset,
        callbacks=callbacks,
        backup_dir=args.backup_dir,
        verbose=0,
        **arguments,
    )
    np.savez(
        args.result,
        first_step=first_step.first_step,
        history=json.dumps(history.history),
        weights=np.concatenate(
            [np.ravel(keras.ops.convert_to_numpy(w)) for w in model.weights]
        ),
        optimizer=np.concatenate(
            [
                np.ravel(keras.ops.convert_to_numpy(v))
                for v in model.optimizer.variables
            ]
        ),
        **{
            name: keras.ops.convert_to_numpy(getattr(head, name))
            for head in [_head(model)]
            if head is not None
            for name in ("classification_kernel", "classification_bias")
        },
    )


def _head(model):
    for layer in model.layers:
        if hasattr(layer, "classification_kernel"):
            return layer
    return None


if __name__ == "__main__":
    main()
