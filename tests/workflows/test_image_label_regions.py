"""Image-label region training: the classifier's boxes for image labels."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_objectness import ClassSplit
from keras_objectness import workflows
from keras_objectness.adaptation import find_background_head
from keras_objectness.data.regions import pairwise_iou
from keras_objectness.workflows import finetuning
from tests.lsda_helpers import DETECTION_CLASSES
from tests.lsda_helpers import HELDOUT_CLASSES
from tests.lsda_helpers import NUM_CLASSES
from tests.lsda_helpers import tiny_classifier

pytestmark = pytest.mark.tensorflow_only  # tf.data scenes and training

RED_BOX = (0.0, 0.0, 0.5, 0.5)
GREEN_BOX = (0.5, 0.5, 1.0, 1.0)
WINDOWS = np.array(
    [(0.0, 0.0, 1.0, 1.0), RED_BOX, GREEN_BOX, (0.0, 0.5, 0.5, 1.0)],
    "float32",
)


def _colour_classifier():
    """Softmax over (red, green, blue) of a crop's mean colour."""
    crops = keras.Input((8, 8, 3))
    x = keras.layers.GlobalAveragePooling2D()(crops)
    logits = keras.layers.Dense(3, use_bias=False, name="colour")(x)
    model = keras.Model(crops, keras.layers.Softmax()(logits))
    model.get_layer("colour").set_weights([0.2 * np.eye(3, dtype="float32")])
    return model


def _two_colour_scenes(labels):
    image = np.zeros((2, 32, 32, 3), "uint8")
    image[:, :16, :16, 0] = 255  # red top left
    image[:, 16:, 16:, 1] = 255  # green bottom right
    # Deliberately wrong boxes: only the labels may be read.
    wrong = np.tile(np.array([[0.4, 0.4, 0.6, 0.6]], "float32"), (2, 2, 1))
    return tf.data.Dataset.from_tensor_slices(
        {
            "image": image,
            "objects": {"bbox": wrong, "label": np.array(labels, "int64")},
        }
    )


def test_each_label_gets_the_window_the_classifier_scores_highest():
    scenes = _two_colour_scenes([[0, 1], [1, 1]])
    boxes, labels, scores = workflows.image_label_boxes(
        _colour_classifier(), scenes, 3, windows=WINDOWS, context_padding=0.0
    )
    assert boxes.shape == (2, 16, 4) and labels.shape == (2, 16)
    assert labels[0, :2].tolist() == [0, 1]
    np.testing.assert_allclose(boxes[0, :2], [RED_BOX, GREEN_BOX])
    # A repeated label is placed once; the rest is padding.
    assert labels[1].tolist() == [1] + [-1] * 15
    np.testing.assert_allclose(boxes[1, 0], GREEN_BOX)
    assert np.all(boxes[1, 1:] == -1.0)
    assert scores[0, 0] > 0.9 and scores[1, 1] == -1.0


def test_selective_search_candidates_are_each_scenes_own_proposals():
    from keras_objectness import data

    scenes = _two_colour_scenes([[0, 1], [1, 1]])
    boxes, labels, _ = workflows.image_label_boxes(
        _colour_classifier(), scenes, 3, windows="selective_search",
        context_padding=0.0, num_proposals=20,
    )  # fmt: skip
    image = next(iter(scenes))["image"].numpy()
    proposals = data.selective_search_proposals(image[None], 20)[0]
    for row, truth in zip(boxes[0, :2], (RED_BOX, GREEN_BOX)):
        # One of the scene's proposals, on the square of the label.
        assert np.any(np.all(np.isclose(proposals, row), axis=-1))
        assert _iou(row, truth) >= 0.5
    assert labels[0, :2].tolist() == [0, 1]


def _iou(a, b):
    top, left = max(a[0], b[0]), max(a[1], b[1])
    bottom, right = min(a[2], b[2]), min(a[3], b[3])
    inter = max(bottom - top, 0) * max(right - left, 0)
    area = lambda z: (z[2] - z[0]) * (z[3] - z[1])  # noqa: E731
    return inter / (area(a) + area(b) - inter)


def test_scenes_of_different_sizes_are_scored_each_at_its_own_size():
    small = _two_colour_scenes([[0, 1], [0, 1]]).take(1)
    large = tf.data.Dataset.from_tensor_slices(
        {
            "image": np.zeros((1, 48, 40, 3), "uint8"),
            "objects": {
                "bbox": np.zeros((1, 1, 4), "float32"),
                "label": np.array([[2]], "int64"),
            },
        }
    )
    boxes, labels, _ = workflows.image_label_boxes(
        _colour_classifier(),
        small.concatenate(large),
        3,
        windows=WINDOWS,
        context_padding=0.0,
    )
    assert labels[:, :2].tolist() == [[0, 1], [2, -1]]
    np.testing.assert_allclose(boxes[0, :2], [RED_BOX, GREEN_BOX])


def test_image_label_scenes_carry_the_found_boxes():
    scenes = _two_colour_scenes([[0, 1], [1, 1]])
    boxes, labels, _ = workflows.image_label_boxes(
        _colour_classifier(), scenes, 3, windows=WINDOWS, context_padding=0.0
    )
    found = list(workflows.image_label_scenes(scenes, boxes, labels))
    assert found[0]["objects"]["label"].numpy().tolist() == [0, 1]
    np.testing.assert_allclose(found[1]["objects"]["bbox"].numpy(), [GREEN_BOX])
    assert found[1]["image"].shape == (32, 32, 3)


def test_bad_windows_and_empty_scenes_are_refused():
    scenes = _two_colour_scenes([[0, 1], [1, 1]])
    with pytest.raises(ValueError, match="`windows`"):
        workflows.image_label_boxes(
            _colour_classifier(), scenes, 3, windows=np.zeros((4, 3))
        )
    with pytest.raises(ValueError, match="`scenes`"):
        workflows.image_label_boxes(
            _colour_classifier(), scenes.take(0), 3, windows=WINDOWS
        )
    with pytest.raises(ValueError, match="'selective_search'"):
        workflows.image_label_boxes(
            _colour_classifier(), scenes, 3, windows="edge_boxes"
        )
    with pytest.raises(ValueError, match="`num_proposals`"):
        workflows.image_label_boxes(
            _colour_classifier(), scenes, 3, windows="selective_search",
            num_proposals=0,
        )  # fmt: skip


@pytest.mark.parametrize("label", [-1, 3, 7])
def test_labels_without_a_classifier_column_are_refused(label):
    scenes = _two_colour_scenes([[0, 1], [1, label]])
    with pytest.raises(ValueError, match=r"Scene 1 has labels \[" + str(label)):
        workflows.image_label_boxes(
            _colour_classifier(), scenes, 3, windows=WINDOWS
        )


def test_num_classes_must_match_the_classifier():
    scenes = _two_colour_scenes([[0, 1], [1, 1]])
    with pytest.raises(ValueError, match="output size"):
        workflows.image_label_boxes(
            _colour_classifier(), scenes, 4, windows=WINDOWS
        )
    with pytest.raises(TypeError, match="`num_classes`"):
        workflows.image_label_boxes(
            _colour_classifier(), scenes, 3.0, windows=WINDOWS
        )


def _scenes(labels, seed):
    rng = np.random.default_rng(seed)
    count = len(labels)
    images = rng.integers(0, 256, (count, 24, 24, 3)).astype("uint8")
    boxes = np.tile(
        np.array([[0.1, 0.1, 0.6, 0.6], [0.4, 0.4, 0.9, 0.9]], "float32"),
        (count, 1, 1),
    )
    return tf.data.Dataset.from_tensor_slices(
        {
            "image": images,
            "objects": {"bbox": boxes, "label": np.array(labels, "int64")},
        }
    )


def _inputs():
    b_scenes = _scenes([list(DETECTION_CLASSES[:2])] * 6, seed=0)
    a_scenes = _scenes([list(HELDOUT_CLASSES[:2])] * 6, seed=1)
    images = np.random.default_rng(2).normal(size=(12, 8, 8, 3))
    classification = tf.data.Dataset.from_tensor_slices(
        {
            "image": images.astype("float32"),
            "objects": {
                "bbox": np.tile([[[0.0, 0.0, 1.0, 1.0]]], (12, 1, 1)).astype(
                    "float32"
                ),
                "label": (np.arange(12) % NUM_CLASSES)[:, None],
            },
        }
    )
    return b_scenes, a_scenes, classification


def _found(scenes):
    boxes, labels, _ = workflows.image_label_boxes(
        tiny_classifier(), scenes, NUM_CLASSES, windows=256
    )
    return finetuning.image_label_regions.image_label_scenes(
        scenes, boxes, labels
    )


def test_region_batches_hold_regions_of_heldout_classes():
    b_scenes, a_scenes, _ = _inputs()
    batches = finetuning.region_batches(
        b_scenes, DETECTION_CLASSES, NUM_CLASSES, crop_size=8, batch_size=8
    )
    mixed = finetuning._with_image_label_regions(
        batches,
        _found(a_scenes),
        NUM_CLASSES,
        crop_size=8,
        batch_size=8,
        regions_per_image=4,
        fraction=0.5,
        flip=False,
        seed=0,
    )
    labels = np.concatenate([y.numpy() for _, y in mixed])
    heldout = np.isin(labels, HELDOUT_CLASSES)
    # Regions on the found boxes of A, and only positives of them: every
    # background row still comes from the scenes of B.
    assert heldout.any()
    assert np.isin(labels[~heldout], DETECTION_CLASSES + (NUM_CLASSES,)).all()
    assert np.isin(labels[heldout], HELDOUT_CLASSES[:2]).all()


def _shared_batches(b_scenes):
    return finetuning.image_region_batches(
        b_scenes,
        DETECTION_CLASSES,
        NUM_CLASSES,
        16,
        images_per_batch=4,
        regions_per_image=4,
        flip=False,
    )


def test_shared_batches_hold_image_label_regions_of_positives_only():
    b_scenes, a_scenes, _ = _inputs()
    mixed = finetuning._with_shared_image_label_regions(
        _shared_batches(b_scenes),
        _found(a_scenes),
        NUM_CLASSES,
        image_size=16,
        images_per_batch=4,
        regions_per_image=4,
        fraction=0.5,
        flip=False,
        seed=0,
    )
    for (images, regions), labels, weights in mixed:
        assert images.shape[1:] == (16, 16, 3) and regions.shape[1:] == (4, 4)
        labels, weights = labels.numpy(), weights.numpy()
        # Two scenes of B, then two image-labelled scenes of A.
        assert labels.shape == weights.shape == (4, 4)
        assert np.isin(labels[:2], DETECTION_CLASSES + (NUM_CLASSES,)).all()
        trained = labels[2:][weights[2:] > 0]
        assert trained.size and np.isin(trained, HELDOUT_CLASSES[:2]).all()


def _best_iou(regions, boxes):
    """Best IoU of each yxyx region `(R, 4)` with any of `boxes` `(M, 4)`."""
    iou = pairwise_iou(regions.astype("float32"), boxes.astype("float32"))
    return np.asarray(iou).max(-1)


def test_shared_batches_min_background_iou_weights_touching_background():
    b_scenes, _, _ = _inputs()
    scene_boxes = np.array([[0.1, 0.1, 0.6, 0.6], [0.4, 0.4, 0.9, 0.9]])

    def trained_background_ious(**kwargs):
        batches = finetuning.image_region_batches(
            b_scenes, DETECTION_CLASSES, NUM_CLASSES, 16,
            images_per_batch=6, regions_per_image=16, flip=False, **kwargs,
        )  # fmt: skip
        (_, regions), labels, weights = next(iter(batches))
        background = (labels.numpy() == NUM_CLASSES) & (weights.numpy() > 0)
        return _best_iou(regions.numpy()[background], scene_boxes)

    assert (trained_background_ious() < 0.1).any()
    touching = trained_background_ious(min_background_iou=0.1)
    assert touching.size and (touching >= 0.1 - 1e-6).all()
    with pytest.raises(ValueError, match="`min_background_iou`"):
        finetuning.image_region_batches(
            b_scenes, DETECTION_CLASSES, NUM_CLASSES, 16,
            min_background_iou=0.7,
        )  # fmt: skip


@pytest.mark.parametrize("detector", ["per_crop", "shared"])
def test_image_label_negatives_train_background_of_image_label_scenes(
    detector,
):
    b_scenes, a_scenes, _ = _inputs()
    arguments = dict(fraction=0.5, flip=False, seed=0, min_background_iou=0.1)
    if detector == "shared":
        mixed = finetuning._with_shared_image_label_regions(
            _shared_batches(b_scenes), _found(a_scenes), NUM_CLASSES,
            image_size=16, images_per_batch=4, regions_per_image=4,
            **arguments,
        )  # fmt: skip
        # Two scenes of B, then two image-labelled scenes of A.
        rows = [
            labels.numpy()[2:][weights.numpy()[2:] > 0]
            for _, labels, weights in mixed
        ]
    else:
        batches = finetuning.region_batches(
            b_scenes, DETECTION_CLASSES, NUM_CLASSES, crop_size=8,
            batch_size=8,
        )  # fmt: skip
        mixed = finetuning._with_image_label_regions(
            batches, _found(a_scenes), NUM_CLASSES, crop_size=8,
            batch_size=8, regions_per_image=4, **arguments,
        )  # fmt: skip
        # Each batch's last 4 rows come from the image-labelled scenes.
        rows = [labels.numpy()[-4:] for _, labels in mixed]
    rows = np.concatenate(rows)
    assert (rows == NUM_CLASSES).any()
    assert np.isin(rows[rows < NUM_CLASSES], HELDOUT_CLASSES[:2]).all()
    assert (rows < NUM_CLASSES).any()


def test_shared_batches_hold_classification_images_as_one_region():
    b_scenes, _, classification = _inputs()
    mixed = finetuning._with_shared_classification_images(
        _shared_batches(b_scenes),
        classification,
        NUM_CLASSES,
        image_size=16,
        images_per_batch=4,
        regions_per_image=4,
        fraction=0.25,
        flip=False,
        seed=0,
    )
    (images, regions), labels, weights = next(iter(mixed))
    assert images.shape == (4, 16, 16, 3) and images.dtype == tf.uint8
    # The last image: its whole frame, its encoded label, one row trained.
    np.testing.assert_allclose(regions[-1], np.tile([[0, 0, 1, 1]], (4, 1)))
    assert (labels.numpy()[-1] > NUM_CLASSES).all()
    np.testing.assert_array_equal(weights.numpy()[-1], [1, 0, 0, 0])
    assert (labels.numpy()[:-1] <= NUM_CLASSES).all()


@pytest.mark.parametrize(
    "method, detector",
    [
        ("joint_image_regions", "per_crop"),
        ("joint_image_proposals", "per_crop"),
        ("joint_image_proposals", "shared"),
        ("joint_image_negatives", "per_crop"),
        ("joint_image_negatives", "shared"),
    ],
)
def test_finetune_trains_heldout_columns_against_background(method, detector):
    b_scenes, a_scenes, classification = _inputs()
    classifier = tiny_classifier()
    before = [w.copy() for w in classifier.get_weights()]
    split = ClassSplit(NUM_CLASSES, DETECTION_CLASSES)
    network = workflows.finetune_detector(
        classifier,
        b_scenes,
        split,
        method=method,
        epochs=1,
        learning_rate=1e-2,
        # Shared: 3 images a batch, one of them a classification image.
        batch_size=12 if detector == "shared" else 8,
        regions_per_image=4,
        classification_examples=classification,
        image_label_scenes=a_scenes,
        verbose=0,
        detector=detector,
        image_size=16,
    )
    head = find_background_head(network)
    kernel = keras.ops.convert_to_numpy(head.kernel)
    snapshot = keras.ops.convert_to_numpy(head.classification_kernel)
    moved = np.abs(kernel[:, :NUM_CLASSES] - snapshot).max(axis=0)
    assert (moved[list(HELDOUT_CLASSES)] > 1e-6).all()
    for old, new in zip(before, classifier.get_weights()):
        np.testing.assert_array_equal(old, new)


@pytest.mark.parametrize("detector", ["per_crop", "shared"])
def test_every_batch_holds_fixed_shares_of_both_image_label_kinds(
    detector, monkeypatch
):
    # Image-label regions are mixed into B's regions, classification
    # examples into the result: each kind must keep its count in every
    # batch, not only on average.
    b_scenes, a_scenes, classification = _inputs()
    b_scenes = b_scenes.repeat(4)
    captured = {}

    def capture(model, batches, **kwargs):
        captured["batches"] = batches

    monkeypatch.setattr(finetuning.training, "resumable_fit", capture)
    workflows.finetune_detector(
        tiny_classifier(),
        b_scenes,
        ClassSplit(NUM_CLASSES, DETECTION_CLASSES),
        method="joint_image_regions",
        batch_size=16 if detector == "shared" else 8,
        regions_per_image=4,
        classification_fraction=0.25,
        image_region_fraction=0.5,
        classification_examples=classification,
        image_label_scenes=a_scenes,
        verbose=0,
        detector=detector,
        image_size=16,
    )
    counts = []
    for batch in captured["batches"]:
        labels = batch[1].numpy()
        if detector == "shared":
            # One row per image says its kind (an image-labelled scene's
            # rows off its found boxes keep a background label).
            weights = batch[2].numpy()
            kinds = [
                "classification"
                if (row > NUM_CLASSES).all()
                else "image_label"
                if np.isin(row[w > 0], HELDOUT_CLASSES).any()
                else "b"
                for row, w in zip(labels, weights)
            ]
            counts.append(
                (kinds.count("image_label"), kinds.count("classification"))
            )
        else:
            counts.append(
                (
                    int(np.isin(labels, HELDOUT_CLASSES).sum()),
                    int((labels > NUM_CLASSES).sum()),
                )
            )
    assert len(counts) > 2
    # Per crop: 8 = 2 classification + 6 regions, 3 of them image-label;
    # shared: 4 images = 1 classification + 3, 2 of them image-label.
    expected = (2, 1) if detector == "shared" else (3, 2)
    assert set(counts) == {expected}


def test_shared_image_label_finetune_needs_two_region_images_a_batch():
    b_scenes, a_scenes, classification = _inputs()
    with pytest.raises(ValueError, match="at least 2"):
        workflows.finetune_detector(
            tiny_classifier(),
            b_scenes,
            ClassSplit(NUM_CLASSES, DETECTION_CLASSES),
            method="joint_image_regions",
            batch_size=8,
            regions_per_image=4,
            classification_examples=classification,
            image_label_scenes=a_scenes,
            detector="shared",
        )


def test_shared_joint_finetune_needs_two_images_a_batch():
    b_scenes, _, classification = _inputs()
    with pytest.raises(ValueError, match="`batch_size` >= 2"):
        workflows.finetune_detector(
            tiny_classifier(),
            b_scenes,
            ClassSplit(NUM_CLASSES, DETECTION_CLASSES),
            method="joint",
            batch_size=4,
            regions_per_image=4,
            classification_examples=classification,
            detector="shared",
        )


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({}, "image_label_scenes"),
        (
            {"image_label_scenes": "scenes", "image_region_fraction": 1.0},
            "image_region_fraction",
        ),
    ],
)
def test_finetune_refuses_missing_or_bad_image_label_arguments(kwargs, match):
    b_scenes, _, classification = _inputs()
    with pytest.raises(ValueError, match=match):
        workflows.finetune_detector(
            tiny_classifier(),
            b_scenes,
            ClassSplit(NUM_CLASSES, DETECTION_CLASSES),
            method="joint_image_regions",
            classification_examples=classification,
            **kwargs,
        )


def _red_scoring_models():
    """A classifier whose label 0 grows with a crop's red, and a detection
    network with its columns and a background that grows faster."""
    crops = keras.Input((8, 8, 3))
    red = keras.layers.GlobalAveragePooling2D()(crops)
    logits = keras.layers.Dense(
        4,
        use_bias=False,
        kernel_initializer=keras.initializers.Constant(
            [[0.01, 0, 0, 0.05], [0, 0, 0, 0], [0, 0, 0, 0]]
        ),
    )(red)
    detector = keras.Model(crops, keras.layers.Softmax()(logits))
    classifier = keras.Model(
        crops, keras.layers.Softmax()(keras.layers.Identity()(logits[:, :3]))
    )
    return classifier, detector


def test_a_detection_network_picks_against_its_background():
    scenes = _two_colour_scenes([[0], [0]])
    classifier, detector = _red_scoring_models()
    by_classifier, _, _ = workflows.image_label_boxes(
        classifier, scenes, 3, windows=WINDOWS
    )
    by_detector, labels, _ = workflows.image_label_boxes(
        detector, scenes, 3, windows=WINDOWS
    )
    np.testing.assert_array_equal(labels[:, 0], [0, 0])
    # The reddest window for the classifier; for the detector, red is
    # background, so label 0 is likeliest where there is no red at all.
    np.testing.assert_allclose(by_classifier[:, 0], [RED_BOX, RED_BOX])
    assert all(
        tuple(box) in {GREEN_BOX, (0.0, 0.5, 0.5, 1.0)}
        for box in by_detector[:, 0].tolist()
    )
    with pytest.raises(ValueError, match="minus the background"):
        workflows.image_label_boxes(detector, scenes, 2, windows=WINDOWS)


def test_per_scene_windows_are_each_scenes_own_and_counted():
    scenes = _two_colour_scenes([[0], [1]])
    windows = [WINDOWS[1:2], WINDOWS[2:]]
    boxes, labels, _ = workflows.image_label_boxes(
        _colour_classifier(), scenes, 3, windows=windows
    )
    # Each scene picks among its own windows: scene 0 has only RED_BOX.
    np.testing.assert_allclose(boxes[0, 0], RED_BOX)
    np.testing.assert_allclose(boxes[1, 0], GREEN_BOX)
    np.testing.assert_array_equal(labels[:, 0], [0, 1])
    with pytest.raises(ValueError, match="every scene"):
        workflows.image_label_boxes(
            _colour_classifier(), scenes, 3, windows=windows[:1]
        )
    with pytest.raises(ValueError, match="every scene"):
        workflows.image_label_boxes(
            _colour_classifier(), scenes, 3, windows=windows * 2
        )
    with pytest.raises(ValueError, match=r"\(W, 4\)"):
        workflows.image_label_boxes(
            _colour_classifier(),
            scenes,
            3,
            windows=[WINDOWS[:1], np.zeros((0, 4))],
        )


def test_scene_proposals_are_what_selective_search_scores():
    scenes = _two_colour_scenes([[0], [1]])
    proposals = workflows.scene_proposals(scenes, num_proposals=5)
    assert len(proposals) == 2
    assert all(p.ndim == 2 and p.shape[1] == 4 and len(p) for p in proposals)
    given = workflows.image_label_boxes(
        _colour_classifier(), scenes, 3, windows=proposals
    )
    searched = workflows.image_label_boxes(
        _colour_classifier(),
        scenes,
        3,
        windows="selective_search",
        num_proposals=5,
    )
    for a, b in zip(given, searched):
        np.testing.assert_allclose(a, b)


def _refined_finetune(**kwargs):
    b_scenes, a_scenes, classification = _inputs()
    return workflows.finetune_detector(
        kwargs.pop("classifier", None) or tiny_classifier(),
        b_scenes,
        ClassSplit(NUM_CLASSES, DETECTION_CLASSES),
        method=kwargs.pop("method", "joint_image_refined"),
        epochs=1,
        learning_rate=1e-2,
        batch_size=kwargs.pop("batch_size", 8),
        regions_per_image=4,
        classification_examples=classification,
        image_label_scenes=a_scenes,
        verbose=0,
        **kwargs,
    )


def _recording_pickers(monkeypatch):
    pickers = []
    pick = finetuning.image_label_regions.image_label_boxes

    def recording(picker, *args, **kwargs):
        pickers.append(picker)
        return pick(picker, *args, **kwargs)

    monkeypatch.setattr(
        finetuning.image_label_regions, "image_label_boxes", recording
    )
    return pickers


def test_refined_method_retrains_on_the_first_detectors_boxes(monkeypatch):
    pickers = _recording_pickers(monkeypatch)
    classifier = tiny_classifier()
    network = _refined_finetune(classifier=classifier)
    # Round 1 picks with the classifier, round 2 with round 1's detector
    # (K + 1 outputs), and the result is a second, fresh fine-tune.
    assert len(pickers) == 2 and pickers[0] is classifier
    assert pickers[1].outputs[0].shape[-1] == NUM_CLASSES + 1
    assert pickers[1] is not network
    head = find_background_head(network)
    moved = np.abs(
        keras.ops.convert_to_numpy(head.kernel)[:, :NUM_CLASSES]
        - keras.ops.convert_to_numpy(head.classification_kernel)
    ).max(axis=0)
    assert (moved[list(HELDOUT_CLASSES)] > 1e-6).all()


def test_refined_method_resumes_after_its_finished_round(monkeypatch, tmp_path):
    fit = finetuning.training.resumable_fit
    calls = []

    def interrupted_in_round_two(*args, **kwargs):
        calls.append(kwargs["backup_dir"])
        if len(calls) == 2:
            raise KeyboardInterrupt
        return fit(*args, **kwargs)

    monkeypatch.setattr(
        finetuning.training, "resumable_fit", interrupted_in_round_two
    )
    with pytest.raises(KeyboardInterrupt):
        _refined_finetune(backup_dir=str(tmp_path))
    saved = list(tmp_path.glob("worker-*/round-2-boxes.npz"))
    assert len(saved) == 1
    assert calls == [str(tmp_path / "round-1"), str(tmp_path / "round-2")]
    # Resumed: round 1 is not trained again nor are boxes picked again.
    calls.clear()
    monkeypatch.setattr(finetuning.training, "resumable_fit", fit)
    pickers = _recording_pickers(monkeypatch)
    monkeypatch.setattr(
        finetuning.training,
        "resumable_fit",
        lambda *args, **kwargs: (
            calls.append(kwargs["backup_dir"]) or fit(*args, **kwargs)
        ),
    )
    _refined_finetune(backup_dir=str(tmp_path))
    assert calls == [str(tmp_path / "round-2")] and not pickers
    assert not list(tmp_path.glob("worker-*/round-2-boxes.npz"))


def test_most_confident_picks_keep_the_best_share_of_each_class():
    labels = np.array([[0, 1, -1], [0, 1, 2], [0, -1, -1], [1, 0, -1]])
    scores = np.array(
        [[0.9, 0.2, -1.0], [0.1, 0.8, 0.3], [0.5, -1.0, -1.0], [0.4, 0.7, -1]]
    )
    kept = workflows.most_confident_picks(labels, scores, 0.5)
    # Class 0 (4 picks: 0.9, 0.1, 0.5, 0.7) keeps 2: 0.9 and 0.7; class 1
    # (0.2, 0.8, 0.4) keeps ceil(1.5) = 2: 0.8 and 0.4; class 2 its one.
    np.testing.assert_array_equal(
        kept, [[0, -1, -1], [-1, 1, 2], [-1, -1, -1], [1, 0, -1]]
    )
    assert kept.dtype == np.int32
    np.testing.assert_array_equal(
        workflows.most_confident_picks(labels, scores, 1.0), labels
    )


@pytest.mark.parametrize(
    "labels,scores,keep,match",
    [
        (np.zeros((2, 3)), np.zeros((2, 2)), 0.5, "share one shape"),
        (np.zeros((3,)), np.zeros((3,)), 0.5, "share one shape"),
        (np.zeros((2, 3)), np.zeros((2, 3)), 0.0, "keep_fraction"),
        (np.zeros((2, 3)), np.zeros((2, 3)), 1.5, "keep_fraction"),
        (np.zeros((2, 3)), np.zeros((2, 3)), True, "keep_fraction"),
        (np.zeros((1, 1)), np.full((1, 1), np.nan), 0.5, "finite"),
    ],
)
def test_most_confident_picks_refuse_bad_input(labels, scores, keep, match):
    with pytest.raises(ValueError, match=match):
        workflows.most_confident_picks(labels, scores, keep)


@pytest.mark.parametrize("detector", ["per_crop", "shared"])
def test_confident_method_trains_each_round_on_the_best_half(
    monkeypatch, detector
):
    picked, trained_on = [], []
    pick = finetuning.image_label_regions.image_label_boxes
    scenes_of = finetuning.image_label_regions.image_label_scenes

    def recording_pick(*args, **kwargs):
        picked.append(pick(*args, **kwargs))
        return picked[-1]

    def recording_scenes(scenes, boxes, labels):
        trained_on.append(np.array(labels))
        return scenes_of(scenes, boxes, labels)

    monkeypatch.setattr(
        finetuning.image_label_regions, "image_label_boxes", recording_pick
    )
    monkeypatch.setattr(
        finetuning.image_label_regions, "image_label_scenes", recording_scenes
    )
    network = _refined_finetune(
        method="joint_image_confident",
        detector=detector,
        image_size=32,
        # The shared detector needs 2 region images beside a classification
        # image in each batch.
        batch_size=8 if detector == "per_crop" else 16,
    )
    assert len(picked) == len(trained_on) == 2
    for (_, labels, scores), kept in zip(picked, trained_on):
        # Some picks dropped, each kept one unchanged, and every class of
        # the picks still trained on.
        assert (kept >= 0).sum() < (labels >= 0).sum()
        np.testing.assert_array_equal(kept[kept >= 0], labels[kept >= 0])
        assert set(kept[kept >= 0]) == set(labels[labels >= 0])
        for label in set(labels[labels >= 0].tolist()):
            dropped = scores[(labels == label) & (kept < 0)]
            if dropped.size:
                assert scores[kept == label].min() >= dropped.max()
    assert network.outputs[0].shape[-1] == NUM_CLASSES + 1
