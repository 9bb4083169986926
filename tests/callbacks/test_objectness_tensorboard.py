"""ObjectnessTensorBoard and evaluate_objectness, read back from event files."""

import glob
import os

import keras
import numpy as np
import pytest
import tensorflow as tf
from tensorboard.plugins.pr_curve import metadata as pr_curve_metadata

from keras_objectness import BoxSpace
from keras_objectness.callbacks import ObjectnessTensorBoard
from keras_objectness.callbacks import evaluate_objectness
from keras_objectness.callbacks.objectness_summaries import DETECTION_COLOR
from keras_objectness.callbacks.objectness_summaries import GROUND_TRUTH_COLOR
from keras_objectness.callbacks.objectness_summaries import pr_curve_data
from keras_objectness.data import single_object_images
from keras_objectness.evaluation import DetectionEvaluator
from keras_objectness.layers import BoxBinDecoder
from keras_objectness.layers import BoxBinSoftmax
from keras_objectness.layers import GaussianBoxTargets
from keras_objectness.models import objectness_inference_model
from tests.test_case import large

SIZE = 16
SPACE = BoxSpace(
    grid_shape=(4, 4), scales=(0.3, 0.42, 0.6), aspect_ratios=(0.6, 1, 1.6)
)
NUM_THRESHOLDS = 11
MAX_DETECTIONS = 5


def tiny_detector():
    inputs = keras.Input((SIZE, SIZE, 3), dtype="uint8")
    x = keras.layers.Rescaling(1 / 255.0)(inputs)
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(x)
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(x)
    x = keras.layers.MaxPooling2D()(x)
    return keras.Model(inputs, BoxBinSoftmax(SPACE)(x))


def validation_set(num_images=8, seed=2):
    """Images and one object per image, plus one padding row."""
    images, boxes = single_object_images(num_images, SIZE, seed=seed)
    padding = -np.ones((num_images, 1, 4), "float32")
    y_true = {
        "boxes": np.concatenate([boxes[:, None], padding], axis=1),
        "classes": np.tile(np.array([[0, -1]], "int32"), (num_images, 1)),
    }
    return images, y_true


def read_run(folder):
    """`{tag: [(step, value)]}` and `{tag: plugin name}` of a run folder."""
    values, plugins = {}, {}
    files = sorted(glob.glob(os.path.join(folder, "events.out.tfevents.*")))
    assert files, f"no event file in {folder}"
    for path in files:
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                plugin = value.metadata.plugin_data.plugin_name
                if plugin:
                    plugins[value.tag] = plugin
                    if plugin == "pr_curves":
                        content = value.metadata.plugin_data.content
                        plugins[value.tag + ":metadata"] = (
                            pr_curve_metadata.parse_plugin_metadata(content)
                        )
                if value.HasField("tensor"):
                    array = tf.make_ndarray(value.tensor)
                else:
                    array = np.float32(value.simple_value)
                values.setdefault(value.tag, []).append((event.step, array))
    return values, plugins


def expected_pr_rows(result, confidences, thresholds):
    """The plugin's six rows, derived from DetectionEvaluator's curve.

    `confidences` are all counted detections (for the false positives);
    precision and recall come from the evaluator's exact curve, at the
    lowest distinct confidence at or above each threshold.
    """
    grid = np.arange(thresholds) / (thresholds - 1)
    top, low = result["thresholds"][0], result["thresholds"][-1]
    num_ground_truth = result["num_ground_truth"]
    rows = np.zeros((6, thresholds))
    for i, g in enumerate(grid):
        above = (result["thresholds"] - low) / (top - low) >= g
        if np.any(above):
            j = np.flatnonzero(above)[-1]
            rows[4, i] = result["precision"][j]
            rows[5, i] = result["recall"][j]
        rows[0, i] = np.round(rows[5, i] * num_ground_truth)
        passed = (confidences - low) / (top - low) >= g
        rows[1, i] = np.count_nonzero(passed) - rows[0, i]
        rows[3, i] = num_ground_truth - rows[0, i]
    return rows


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny detector trained 3 epochs with both TensorBoard callbacks."""
    keras.utils.set_random_seed(0)
    log_dir = str(tmp_path_factory.mktemp("logs"))
    images, boxes = single_object_images(64, SIZE, seed=1)
    targets = keras.ops.convert_to_numpy(
        GaussianBoxTargets(SPACE)(boxes[:, None])
    )
    val_images, y_true = validation_set()
    model = tiny_detector()
    model.compile(
        keras.optimizers.Adam(2e-3), keras.losses.CategoricalCrossentropy()
    )
    callback = ObjectnessTensorBoard(
        log_dir,
        val_images,
        y_true,
        frequency=2,
        max_detections=MAX_DETECTIONS,
        num_thresholds=NUM_THRESHOLDS,
        num_images=2,
    )
    model.fit(
        images,
        targets,
        batch_size=16,
        epochs=3,
        verbose=0,
        callbacks=[keras.callbacks.TensorBoard(log_dir), callback],
    )
    return model, log_dir, val_images, y_true, callback


@large
def test_keras_tensorboard_scalars_beside_ours(trained):
    _, log_dir, _, _, _ = trained
    assert sorted(os.listdir(log_dir)) == ["train", "validation_detection"]
    train, _ = read_run(os.path.join(log_dir, "train"))
    assert [step for step, _ in train["epoch_loss"]] == [0, 1, 2]
    assert all(np.isfinite(loss) for _, loss in train["epoch_loss"])
    ours, plugins = read_run(os.path.join(log_dir, "validation_detection"))
    for tag in (
        "objectness/auc",
        "objectness/average_precision",
        f"objectness/recall_at_{MAX_DETECTIONS}",
    ):
        assert plugins[tag] == "scalars"
        # frequency=2 over 3 epochs: epoch 1, then the last one at the end.
        assert [step for step, _ in ours[tag]] == [1, 2]


@large
def test_logged_values_match_detection_evaluator(trained):
    model, log_dir, val_images, y_true, callback = trained
    # An independent path: predict, decode, evaluate.
    decoder = BoxBinDecoder(SPACE, max_detections=MAX_DETECTIONS)
    detections = decoder(model.predict(val_images, verbose=0))
    detections = {
        k: keras.ops.convert_to_numpy(v) for k, v in detections.items()
    }
    evaluator = DetectionEvaluator(iou_threshold=0.5)
    evaluator.update_state(y_true, detections)
    result = evaluator.result()
    assert result["num_detections"] == len(val_images) * MAX_DETECTIONS
    assert result["num_ground_truth"] == len(val_images)

    ours, plugins = read_run(os.path.join(log_dir, "validation_detection"))
    (_, auc), *_ = ours["objectness/auc"][1:]
    np.testing.assert_allclose(auc, result["auc"], rtol=1e-6)
    (_, recall), *_ = ours[f"objectness/recall_at_{MAX_DETECTIONS}"][1:]
    np.testing.assert_allclose(recall, result["recall"][-1], rtol=1e-6)
    assert callback.last_result["auc"] == pytest.approx(result["auc"])

    tag = "objectness/pr_curve/pr_curves"
    assert plugins[tag] == "pr_curves"
    assert plugins[tag + ":metadata"].num_thresholds == NUM_THRESHOLDS
    assert [step for step, _ in ours[tag]] == [1, 2]
    step, rows = ours[tag][-1]
    assert rows.shape == (6, NUM_THRESHOLDS)
    confidences = detections["confidence"].reshape(-1)
    expected = expected_pr_rows(result, confidences, NUM_THRESHOLDS)
    np.testing.assert_array_equal(rows[[0, 1, 2, 3]], expected[[0, 1, 2, 3]])
    np.testing.assert_allclose(rows[4:], expected[4:], atol=1e-6)
    # The curve is not trivial: all detections at the lowest threshold, the
    # single most confident one at the highest.
    assert rows[0, 0] + rows[1, 0] == len(confidences)
    assert rows[0, -1] + rows[1, -1] == 1


@large
def test_images_show_predicted_and_true_boxes(trained):
    model, log_dir, val_images, y_true, _ = trained
    ours, plugins = read_run(os.path.join(log_dir, "validation_detection"))
    tag = "objectness/detections"
    assert plugins[tag] == "images"
    assert [step for step, _ in ours[tag]] == [1, 2]
    _, encoded = ours[tag][-1]
    # TensorBoard's image tensor: width, height, then one PNG per image.
    assert encoded[:2].tolist() == [str(SIZE).encode()] * 2
    drawn = np.stack([tf.io.decode_png(png).numpy() for png in encoded[2:]])
    assert drawn.shape == (2, SIZE, SIZE, 3)
    red = np.all(drawn == DETECTION_COLOR, axis=-1)
    green = np.all(drawn == GROUND_TRUTH_COLOR, axis=-1)
    for colour in (DETECTION_COLOR, GROUND_TRUTH_COLOR):
        assert not np.any(np.all(val_images[:2] == colour, axis=-1))
    assert red.any(axis=(1, 2)).all() and green.any(axis=(1, 2)).all()
    # The top detection's top-left corner is drawn in the detection colour.
    decoder = BoxBinDecoder(SPACE, max_detections=1)
    top = keras.ops.convert_to_numpy(
        decoder(model.predict(val_images[:2], verbose=0))["boxes"][:, 0]
    )
    corners = np.clip((top[:, :2] * SIZE).astype(int), 0, SIZE - 1)
    for image, (y, x) in zip(red, corners):
        assert image[y, x]


def test_pr_curve_data_by_hand():
    true_positive = [True, False, True]
    confidence = [0.9, 0.5, 0.2]
    absolute = pr_curve_data(true_positive, confidence, 4, 3, "absolute")
    np.testing.assert_allclose(absolute["precision"], [2 / 3, 0.5, 0.0])
    np.testing.assert_allclose(absolute["recall"], [0.5, 0.25, 0.0])
    np.testing.assert_array_equal(absolute["false_positive_counts"], [1, 1, 0])
    np.testing.assert_array_equal(absolute["false_negative_counts"], [2, 3, 4])
    spread = pr_curve_data(true_positive, confidence, 4, 3, "range")
    # Thresholds 0.2, 0.55 and 0.9: the top detection alone passes 0.55.
    np.testing.assert_allclose(spread["thresholds"], [0.2, 0.55, 0.9])
    np.testing.assert_allclose(spread["precision"], [2 / 3, 1.0, 1.0])
    np.testing.assert_allclose(spread["recall"], [0.5, 0.25, 0.25])
    np.testing.assert_array_equal(spread["true_negative_counts"], [0, 0, 0])
    # One distinct confidence: every threshold keeps every detection.
    same = pr_curve_data([True, False], [0.3, 0.3], 2, 3, "range")
    np.testing.assert_allclose(same["precision"], [0.5, 0.5, 0.5])


@pytest.fixture(scope="module")
def untrained():
    keras.utils.set_random_seed(1)
    return tiny_detector()


@pytest.mark.parametrize("other", ["ignore", "background", "skip_image"])
def test_held_out_classes_match_the_evaluator(untrained, other):
    images, y_true = validation_set(num_images=6, seed=3)
    first = evaluate_objectness(untrained, images, y_true, max_detections=4)
    # Class 1 is the object; class 0 sits exactly on the top detection of
    # the first four images, so it is found for sure.
    boxes = y_true["boxes"].copy()
    classes = y_true["classes"].copy()
    boxes[:, 1] = boxes[:, 0]
    boxes[:4, 0] = first["detections"]["boxes"][:4, 0]
    classes[:, 1] = 1
    classes[:, 0] = np.where(np.arange(6) < 4, 0, -1)
    result = evaluate_objectness(
        untrained,
        images,
        {"boxes": boxes, "classes": classes},
        max_detections=4,
        ground_truth_classes=(1,),
        other_ground_truth=other,
        num_thresholds=NUM_THRESHOLDS,
    )
    curve = result["pr_curve"]
    counted = curve["true_positive_counts"][0]
    counted += curve["false_positive_counts"][0]
    assert counted == result["num_detections"]
    assert curve["true_positive_counts"][0] == np.round(
        result["recall"][-1] * result["num_ground_truth"]
    )
    expected = {"ignore": (6, 20), "background": (6, 24)}.get(other, (2, 8))
    assert (result["num_images"], result["num_ground_truth"]) == (
        expected[0],
        expected[0],
    )
    if other == "ignore":
        # The four detections on class-0 boxes count neither way.
        assert result["num_detections"] == 24 - 4
    else:
        assert result["num_detections"] == expected[1]
    grid = np.arange(NUM_THRESHOLDS) / (NUM_THRESHOLDS - 1)
    for i, g in enumerate(grid):
        low, top = result["thresholds"][[-1, 0]]
        above = (result["thresholds"] - low) / (top - low) >= g
        j = np.flatnonzero(above)[-1]
        assert curve["precision"][i] == pytest.approx(result["precision"][j])
        assert curve["recall"][i] == pytest.approx(result["recall"][j])


def test_inference_model_gives_the_same_result(untrained):
    images, y_true = validation_set(num_images=4)
    direct = evaluate_objectness(untrained, images, y_true, max_detections=3)
    inference = objectness_inference_model(untrained, max_detections=3)
    wrapped = evaluate_objectness(inference, images, y_true)
    assert wrapped["max_detections"] == 3
    assert wrapped["auc"] == pytest.approx(direct["auc"])
    np.testing.assert_allclose(
        wrapped["detections"]["boxes"], direct["detections"]["boxes"]
    )
    np.testing.assert_array_equal(
        wrapped["drawn_images"], direct["drawn_images"]
    )


def test_bad_arguments_raise(untrained, tmp_path):
    images, y_true = validation_set(num_images=4)
    log_dir = str(tmp_path)
    with pytest.raises(ValueError, match="`frequency`"):
        ObjectnessTensorBoard(log_dir, images, y_true, frequency=0)
    with pytest.raises(ValueError, match="`images` and `y_true`"):
        ObjectnessTensorBoard(log_dir, images[:3], y_true)
    with pytest.raises(ValueError, match=r'`y_true\["boxes"\]`'):
        ObjectnessTensorBoard(log_dir, images, {"boxes": y_true["boxes"][:, 0]})
    with pytest.raises(ValueError, match=r'`y_true\["boxes"\]`'):
        ObjectnessTensorBoard(
            log_dir, images, {"boxes": y_true["boxes"][..., :3]}
        )
    with pytest.raises(ValueError, match=r'`y_true\["classes"\]`'):
        ObjectnessTensorBoard(
            log_dir,
            images,
            {"boxes": y_true["boxes"], "classes": y_true["classes"][:, :1]},
        )
    with pytest.raises(ValueError, match="`images`"):
        ObjectnessTensorBoard(log_dir, images[0], y_true)
    with pytest.raises(ValueError, match="`max_detections`"):
        ObjectnessTensorBoard(log_dir, images, y_true, max_detections=0)
    with pytest.raises(ValueError, match="`pr_curve_thresholds`"):
        ObjectnessTensorBoard(log_dir, images, y_true, pr_curve_thresholds="x")
    with pytest.raises(ValueError, match="`iou_threshold`"):
        ObjectnessTensorBoard(log_dir, images, y_true, match_iou_threshold=0)
    plain = keras.Sequential(
        [keras.Input((SIZE, SIZE, 3)), keras.layers.Dense(2)]
    )
    with pytest.raises(ValueError, match="`model`"):
        evaluate_objectness(plain, images, y_true)
