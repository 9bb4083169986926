import numbers

import keras
import numpy as np

from keras_objectness import adaptation


class DetectorAdapter(keras.callbacks.Callback):
    """Snapshots `W^c` when fine-tuning starts and adapts A when it ends.

    Use it in the `fit` that fine-tunes a detection model (one holding a
    `keras_objectness.layers.BackgroundHead`, e.g. from
    `keras_objectness.models.detection_network`) on the detection classes
    B:

    - `on_train_begin`: if the head has no snapshot yet (its
      `snapshot_taken` weight is 0), copies the current class columns into
      the snapshot (`BackgroundHead.take_snapshot`). An existing snapshot
      is never overwritten.
    - `on_train_end`: calls `keras_objectness.adapt_classifier(model, knn,
      adapt_output_layer, weighting, temperature)`, which rewrites the
      held-out columns in place.

    The callback keeps no state of its own: the snapshot and its flag are
    weights of the head, so checkpoints carry them and a run resumed by
    `keras.callbacks.BackupAndRestore` keeps the snapshot of the first
    start, in either callback order. With `BackupAndRestore` first, the
    restored flag is already set and this callback does nothing at the
    start. With this callback first, it snapshots the freshly built model,
    and `BackupAndRestore` then restores the saved snapshot and flag over
    it.

    Args:
        knn: int (at least 1, at most the number of detection classes) or
            `"all"`. Neighbours averaged by `adapt_classifier`. Defaults to
            `5`.
        adapt_output_layer: bool. Passed to `adapt_classifier`: if `False`,
            the held-out columns are set back to `W^c`. Defaults to `True`.
        weighting: str, `"uniform"` (the mean of the neighbours' offsets,
            as in the paper) or `"similarity"` (a softmax over the
            neighbours' cosine similarities to the held-out class). Passed
            to `adapt_classifier`. Defaults to `"uniform"`.
        temperature: positive float. Softmax temperature of
            `weighting="similarity"`. Defaults to `0.1`.

    Example:

    ```python
    detector = keras_objectness.models.detection_network(
        classifier, detection_classes=split
    )
    detector.compile(
        optimizer="sgd", loss="sparse_categorical_crossentropy"
    )
    detector.fit(
        regions,
        epochs=3,
        callbacks=[
            keras.callbacks.BackupAndRestore("backup"),
            keras_objectness.callbacks.DetectorAdapter(knn=5),
        ],
    )
    ```

    References:
        - [Hoffman et al., 2014. LSDA: Large Scale Detection through
          Adaptation](https://arxiv.org/abs/1407.5035), section 3.2.
    """

    def __init__(
        self,
        knn=5,
        adapt_output_layer=True,
        weighting="uniform",
        temperature=0.1,
    ):
        super().__init__()
        # The upper bound (the number of detection classes) needs the
        # model; `on_train_begin` checks it before any training step.
        if isinstance(knn, str):
            valid = knn == "all"
        else:
            valid = _is_int(knn) and knn >= 1
        if not valid:
            raise ValueError(
                "`knn` must be 'all' or a positive integer. "
                f"Received: knn={knn!r}"
            )
        if not isinstance(adapt_output_layer, (bool, np.bool_)):
            raise ValueError(
                "`adapt_output_layer` must be a bool. "
                f"Received: adapt_output_layer={adapt_output_layer!r}"
            )
        adaptation.validate_weighting(weighting, temperature)
        self.knn = knn
        self.adapt_output_layer = bool(adapt_output_layer)
        self.weighting = weighting
        self.temperature = temperature

    def on_train_begin(self, logs=None):
        head = adaptation.find_background_head(self.model)
        # Fail before training, not after it.
        adaptation.check_adaptable(head, self.knn, self.adapt_output_layer)
        if not head.has_snapshot:
            head.take_snapshot()

    def on_train_end(self, logs=None):
        adaptation.adapt_classifier(
            self.model,
            knn=self.knn,
            adapt_output_layer=self.adapt_output_layer,
            weighting=self.weighting,
            temperature=self.temperature,
        )


def _is_int(value):
    return isinstance(value, numbers.Integral) and not isinstance(
        value, (bool, np.bool_)
    )
