"""Fine-tunes a tiny detection network with `DetectorAdapter` and
`BackupAndRestore`; run as a child process by `test_detector_adapter.py`.

With `--crash-marker PATH`, the run writes PATH in the middle of its second
epoch and then waits to be killed. Otherwise it trains to the end (resuming
from `--backup-dir` if a backup is there) and saves the head's weights, the
classifier's W^c and the first epoch it ran to `--result` (a `.npz`).
"""

import argparse
import os
import sys
import time

os.environ["TF_DETERMINISTIC_OPS"] = "1"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from keras_objectness.callbacks import DetectorAdapter  # noqa: E402
from keras_objectness.models import detection_network  # noqa: E402
from tests.lsda_helpers import DETECTION_CLASSES  # noqa: E402
from tests.lsda_helpers import head_weights  # noqa: E402
from tests.lsda_helpers import region_data  # noqa: E402
from tests.lsda_helpers import tiny_classifier  # noqa: E402

EPOCHS = 3
BATCH_SIZE = 4
COUNT = 32  # 8 batches per epoch
CRASH_EPOCH = 1  # zero-based: the second epoch
CRASH_BATCH = 3
KNN = 2


class CrashMidEpoch(keras.callbacks.Callback):
    """Announces the middle of an epoch, then hangs until killed."""

    def __init__(self, marker):
        super().__init__()
        self.marker = marker
        self.epoch = None

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self.epoch == CRASH_EPOCH and batch == CRASH_BATCH:
            with open(self.marker, "w") as f:
                f.write(f"epoch {self.epoch} batch {batch}\n")
            time.sleep(600)
            sys.exit("was not killed")


class FirstEpoch(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.first_epoch = None

    def on_epoch_begin(self, epoch, logs=None):
        if self.first_epoch is None:
            self.first_epoch = epoch


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--backup-dir", required=True)
    parser.add_argument(
        "--order", choices=("adapter_first", "backup_first"), required=True
    )
    parser.add_argument("--crash-marker")
    parser.add_argument("--result")
    args = parser.parse_args()

    tf.config.experimental.enable_op_determinism()
    tf.config.threading.set_inter_op_parallelism_threads(1)
    tf.config.threading.set_intra_op_parallelism_threads(1)
    keras.utils.set_random_seed(0)

    classifier = tiny_classifier()
    dense = classifier.get_layer("classifier_predictions")
    classification = (dense.kernel.numpy(), dense.bias.numpy())
    detector = detection_network(classifier, DETECTION_CLASSES)
    detector.compile(
        optimizer=keras.optimizers.Adam(0.01),
        loss="sparse_categorical_crossentropy",
    )
    images, labels = region_data(count=COUNT)

    adapter = DetectorAdapter(knn=KNN)
    backup = keras.callbacks.BackupAndRestore(args.backup_dir)
    first_epoch = FirstEpoch()
    callbacks = (
        [adapter, backup]
        if args.order == "adapter_first"
        else [backup, adapter]
    )
    callbacks.append(first_epoch)
    if args.crash_marker:
        callbacks.append(CrashMidEpoch(args.crash_marker))
    detector.fit(
        images,
        labels,
        batch_size=BATCH_SIZE,
        epochs=EPOCHS,
        shuffle=False,
        verbose=0,
        callbacks=callbacks,
    )
    head = detector.get_layer("detector_background_head")
    np.savez(
        args.result,
        first_epoch=first_epoch.first_epoch,
        classifier_kernel=classification[0],
        classifier_bias=classification[1],
        **head_weights(head),
    )


if __name__ == "__main__":
    main()
