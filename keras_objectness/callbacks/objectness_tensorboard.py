"""`ObjectnessTensorBoard`: class-generic detection summaries during `fit`."""

import os

import keras
import tensorflow as tf

from keras_objectness import _checks
from keras_objectness.callbacks import objectness_summaries


class ObjectnessTensorBoard(keras.callbacks.Callback):
    """Logs class-generic detection quality to TensorBoard during training.

    Works beside `keras.callbacks.TensorBoard` with the same `log_dir`:
    every `frequency` epochs, and once more at the end of training if the
    last epoch was not logged, it runs the model on a small fixed validation
    set, decodes class-generic detections with a `BoxBinDecoder`, scores
    them with `keras_objectness.evaluation.DetectionEvaluator` and writes
    scalars (AUC, average precision, recall at `max_detections`), a
    precision-recall curve for TensorBoard's `pr_curves` plugin and images
    of the first `num_images` scenes with ground-truth and detected boxes.
    The computation is `evaluate_objectness` and the writing
    `write_objectness_summaries`, which scripts can call without the
    callback; their module docstring lists the tags and how the
    precision-recall curve is built.

    Summaries go to their own run, `os.path.join(log_dir, run_name)`, beside
    the `train` and `validation` runs of `keras.callbacks.TensorBoard`:
    TensorBoard reads the event files of one run directory one after the
    other and stops reading a file once a newer one appears, so two writers
    open at once in the `validation` folder would hide each other's events.
    The step is the 0-based epoch, as for the epoch summaries of
    `keras.callbacks.TensorBoard`. Use two callbacks with different
    `run_name`s to log, e.g., all classes and the held-out classes side by
    side. The callback keeps no training state: it only reads the weights.

    Args:
        log_dir: str. The `log_dir` of `keras.callbacks.TensorBoard`.
        images: array `(num_images, height, width, channels)`, numpy or
            tensor, as the model takes it. Keep it small: it is predicted
            whole at every logged epoch.
        y_true: dict with `"boxes"` `(num_images, num_boxes, 4)` in
            `bounding_box_format`, padded with `-1` rows, and optionally
            `"classes"` `(num_images, num_boxes)`, padded with `-1`.
        frequency: int >= 1. Log after every `frequency`-th epoch. Defaults
            to `1`.
        run_name: str. Name of the run folder under `log_dir`. Defaults to
            `"validation_detection"`.
        max_detections: int. Detections per image. Defaults to `10`.
        iou_threshold: float in `(0, 1]`. IoU of the decoder's non-max
            suppression. Defaults to `0.5`.
        match_iou_threshold: float in `(0, 1]`. IoU at which a detection
            finds an object. Defaults to `0.5`.
        bounding_box_format: str. Format of the `y_true` boxes. Defaults to
            `"rel_yxyx"`.
        method: `"voc"` or `"coco"`, as in `DetectionEvaluator`. Defaults
            to `"voc"`.
        ground_truth_classes: optional class ids. Only boxes of these
            classes are objects to find (e.g. the held-out classes A).
            Defaults to `None` (all boxes).
        other_ground_truth: `"ignore"`, `"background"` or `"skip_image"`,
            as in `DetectionEvaluator`. Defaults to `"ignore"`.
        num_thresholds: int >= 2. Points of the precision-recall curve.
            Defaults to `201`.
        pr_curve_thresholds: `"range"` (thresholds from the lowest to the
            highest confidence) or `"absolute"` (over `[0, 1]`). Defaults
            to `"range"`.
        num_images: int >= 0. Scenes drawn. Defaults to `3`.
        max_drawn_detections: int >= 0. Detections drawn per scene.
            Defaults to `3`.
        batch_size: int. Batch size of the predictions. Defaults to `32`.

    Example:

    ```python
    images, boxes = keras_objectness.data.single_object_images(32, seed=1)
    model.fit(
        train,
        epochs=10,
        callbacks=[
            keras.callbacks.TensorBoard("logs"),
            ObjectnessTensorBoard(
                "logs", images, {"boxes": boxes[:, None]}, frequency=2
            ),
        ],
    )
    ```
    """

    def __init__(
        self,
        log_dir,
        images,
        y_true,
        frequency=1,
        run_name="validation_detection",
        max_detections=10,
        iou_threshold=0.5,
        match_iou_threshold=0.5,
        bounding_box_format="rel_yxyx",
        method="voc",
        ground_truth_classes=None,
        other_ground_truth="ignore",
        num_thresholds=201,
        pr_curve_thresholds="range",
        num_images=3,
        max_drawn_detections=3,
        batch_size=32,
    ):
        super().__init__()
        if not isinstance(log_dir, (str, os.PathLike)):
            raise ValueError(
                f"`log_dir` must be a path. Received: log_dir={log_dir!r}"
            )
        if not isinstance(run_name, str) or not run_name:
            raise ValueError(
                "`run_name` must be a non-empty string. "
                f"Received: run_name={run_name!r}"
            )
        _checks.check_int("frequency", frequency)
        self.log_dir = os.fspath(log_dir)
        self.images, self.y_true = objectness_summaries.check_validation_data(
            images, y_true
        )
        self.frequency = int(frequency)
        self.run_name = run_name
        self.evaluation_kwargs = {
            "max_detections": max_detections,
            "iou_threshold": iou_threshold,
            "match_iou_threshold": match_iou_threshold,
            "bounding_box_format": bounding_box_format,
            "method": method,
            "ground_truth_classes": ground_truth_classes,
            "other_ground_truth": other_ground_truth,
            "num_thresholds": num_thresholds,
            "pr_curve_thresholds": pr_curve_thresholds,
            "num_images": num_images,
            "max_drawn_detections": max_drawn_detections,
            "batch_size": batch_size,
        }
        # Check every argument now rather than after the first epoch: the
        # checks run before the model is needed.
        objectness_summaries.check_evaluation_arguments(
            **self.evaluation_kwargs
        )
        self.last_result = None
        self._writer = None
        self._last_epoch = None
        self._logged_epoch = None

    def evaluate(self):
        """Runs `evaluate_objectness` on the validation set now.

        Returns:
            The result dict of `evaluate_objectness`.
        """
        return objectness_summaries.evaluate_objectness(
            self.model, self.images, self.y_true, **self.evaluation_kwargs
        )

    def _log(self, epoch):
        if self._writer is None:
            self._writer = tf.summary.create_file_writer(
                os.path.join(self.log_dir, self.run_name)
            )
        self.last_result = self.evaluate()
        objectness_summaries.write_objectness_summaries(
            self.last_result, step=epoch, writer=self._writer
        )
        self._logged_epoch = epoch

    def on_train_begin(self, logs=None):
        self._last_epoch = None
        self._logged_epoch = None

    def on_epoch_end(self, epoch, logs=None):
        self._last_epoch = epoch
        if (epoch + 1) % self.frequency == 0:
            self._log(epoch)

    def on_train_end(self, logs=None):
        if self._last_epoch is not None and (
            self._logged_epoch != self._last_epoch
        ):
            self._log(self._last_epoch)
        if self._writer is not None:
            self._writer.close()
            self._writer = None
