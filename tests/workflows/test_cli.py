"""`keras-objectness` end to end on the tiny bundled dataset."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from keras_objectness import cli
from keras_objectness import workflows
from tests.test_case import large

TINY = "silhouette_scenes/tiny"
FAST = [
    "--classifier-epochs=1",
    "--finetune-epochs=1",
    "--regions-per-image=4",
    "--proposals=10",
    "--max-test-images=6",
    "--gallery-images=2",
    "--batch-size=16",
    "--verbose=0",
]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tfds")
    workflows.TfdsSource(TINY, folder).prepare()
    return str(folder)


@pytest.fixture(scope="module")
def finished_run(data_dir, tmp_path_factory):
    output = tmp_path_factory.mktemp("run")
    argv = [
        "run",
        f"--data={TINY}",
        f"--data-dir={data_dir}",
        f"--output-dir={output}",
        *FAST,
    ]
    assert cli.main(argv) == cli.EXIT_OK
    return output, argv


def test_help_of_every_command_shows_defaults(capsys):
    parser = cli.build_parser()
    for command in (
        "run",
        "train-classifier",
        "train-proposer",
        "adapt",
        "detect",
        "evaluate",
        "export",
    ):
        with pytest.raises(SystemExit) as exit_info:
            parser.parse_args([command, "--help"])
        assert exit_info.value.code == 0
        text = capsys.readouterr().out
        assert "(default:" in text, command
    parser.parse_args(["run", "--method", "lsda"])
    with pytest.raises(SystemExit):
        parser.parse_args(["run", "--method", "magic"])


@large
def test_run_writes_results_gallery_and_models(finished_run):
    output, argv = finished_run
    with open(output / "results.json") as file:
        results = json.load(file)
    assert results["command"] == " ".join(["keras-objectness", *argv])
    assert results["num_test_images"] == 6
    assert results["config"]["method"] == "joint_image_refined"
    for row in ("no_adaptation", "adapted"):
        assert len(results[row]["average_precision"]) == 20
        for key in ("map_trained", "map_heldout", "map_all"):
            value = results[row][key]
            assert value is None or 0.0 <= value <= 100.0
    assert 0.0 <= results["proposal_recall"] <= 1.0
    assert set(results["seconds"]) >= {"classifier", "proposals"}
    assert os.path.getsize(output / "gallery.png") > 10_000
    detector = keras.saving.load_model(
        output / "detector.keras", safe_mode=True
    )
    assert detector.output.shape[-1] == 21


@large
def test_detect_and_evaluate_a_saved_detector(
    finished_run, data_dir, tmp_path, capsys
):
    output, _ = finished_run
    folder = tmp_path / "images"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for index in range(2):
        keras.utils.save_img(
            folder / f"{index}.png",
            rng.integers(0, 256, (40 + 8 * index, 48, 3)).astype("uint8"),
        )
    detected = tmp_path / "detected"
    code = cli.main(
        [
            "detect",
            f"--detector={output / 'detector.keras'}",
            f"--output-dir={detected}",
            "--proposals=5",
            "--min-confidence=0",
            "--image-size=32",
            str(folder),
        ]
    )
    assert code == cli.EXIT_OK
    with open(detected / "detections.json") as file:
        records = json.load(file)
    assert [os.path.basename(r["image"]) for r in records] == ["0.png", "1.png"]
    for record in records:
        assert record["detections"]
        for detection in record["detections"]:
            assert 0 <= detection["class"] < 20
            assert len(detection["box_rel_yxyx"]) == 4
            assert detection["class_name"]
    assert os.path.exists(detected / "detections_000.png")

    evaluated = tmp_path / "evaluated"
    code = cli.main(
        [
            "evaluate",
            f"--detector={output / 'detector.keras'}",
            f"--data={TINY}",
            f"--data-dir={data_dir}",
            f"--output-dir={evaluated}",
            "--proposal-source=sliding",
            "--proposals=20",
            "--max-test-images=4",
        ]
    )
    assert code == cli.EXIT_OK
    with open(evaluated / "evaluation.json") as file:
        result = json.load(file)
    assert result["num_test_images"] == 4
    assert len(result["average_precision"]) == 20
    assert "mAP (%)" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--detection-classes=0,1,unicorn"], "unicorn"),
        (["--detection-classes=0,99"], "detection_classes"),
        (["--splits", "test"], "ROLE=SPLIT"),
        (["--splits", "test=nope"], "nope"),
        (["--classifier=NoSuchNet"], "keras.applications"),
        (["--classifier=missing.keras"], "does not exist"),
        (["--crop-size=48"], "crop_size"),
        (["--coco-json=a.json"], "--images-dir"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(data_dir, argv, message, capsys):
    code = cli.main(
        [
            "run",
            f"--data={TINY}",
            f"--data-dir={data_dir}",
            "--output-dir=unused",
            *FAST,
            *argv,
        ]
    )
    assert code == cli.EXIT_USAGE
    error = capsys.readouterr().err.strip()
    assert message in error
    assert "Traceback" not in error


def test_unknown_dataset_is_a_clear_error(tmp_path, capsys):
    code = cli.main(
        ["run", "--data=no_such_dataset", f"--data-dir={tmp_path}", *FAST]
    )
    assert code == cli.EXIT_USAGE
    assert "no_such_dataset" in capsys.readouterr().err


def test_class_split_by_names_ids_and_boxed(data_dir):
    source = workflows.TfdsSource(TINY, data_dir)
    default = source.class_split()
    assert len(default.detection_classes) == 10
    names = source.class_names
    by_name = source.class_split([names[3], names[1]])
    assert by_name.detection_classes == (1, 3)
    assert source.class_split("1, 3").detection_classes == (1, 3)
    boxed = source.class_split("boxed")
    # detection_train holds only the default split's classes B.
    assert set(boxed.detection_classes) <= set(default.detection_classes)
    assert boxed.class_names == tuple(names)


def test_missing_role_names_the_split(data_dir):
    source = workflows.TfdsSource(TINY, data_dir, splits={"test": "nope"})
    with pytest.raises(ValueError, match="'nope'"):
        source.load("test")
    with pytest.raises(ValueError, match="`splits`"):
        workflows.TfdsSource(TINY, data_dir, splits={"training": "x"})


@large
def test_command_line_starts_without_tensorflow_noise():
    result = subprocess.run(
        [sys.executable, "-m", "keras_objectness", "--help"],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": ""},
    )
    assert result.returncode == 0
    assert "keras-objectness" in result.stdout
    assert "I0000" not in result.stderr and "E0000" not in result.stderr
    assert "absl" not in result.stderr


@pytest.mark.parametrize("method", ["none", "joint", "joint_background"])
@large
def test_finetune_methods_move_what_they_should(data_dir, method):
    from keras_objectness.adaptation import find_background_head

    source = workflows.TfdsSource(TINY, data_dir)
    split = source.class_split()
    classifier, _ = workflows.build_classifier("alexnet_small", 20, 32)
    before = [w.copy() for w in classifier.get_weights()]
    network = workflows.finetune_detector(
        classifier,
        source.load("detection_train"),
        split,
        method=method,
        epochs=1,
        learning_rate=1e-3,
        batch_size=8,
        regions_per_image=4,
        classification_examples=workflows.classification_examples(
            source, "classification_train", 32
        ),
        verbose=0,
    )
    head = find_background_head(network)
    # The class names travel with the detector.
    assert split.class_names and list(head.class_names) == list(
        split.class_names
    )
    heldout = list(split.heldout_classes)
    kernel = keras.ops.convert_to_numpy(head.kernel)
    snapshot = keras.ops.convert_to_numpy(head.classification_kernel)
    moved = np.abs(kernel[:, heldout] - snapshot[:, heldout]).max()
    if method == "none":
        # Masked training: A keeps the classifier's columns exactly.
        assert moved == 0.0
    else:
        # Joint training: A's columns learn from the image labels.
        assert moved > 1e-6
    for old, new in zip(before, classifier.get_weights()):
        np.testing.assert_array_equal(old, new)
    loss = network.evaluate(
        *next(
            iter(
                workflows.region_batches(
                    source.load("detection_train"),
                    split.detection_classes,
                    20,
                    batch_size=8,
                )
            )
        ),
        verbose=0,
    )
    assert np.isfinite(loss)


@large
def test_joint_image_regions_from_a_config_reads_the_scenes_of_a(
    data_dir, monkeypatch
):
    from keras_objectness.adaptation import find_background_head
    from keras_objectness.workflows import image_label_regions
    from keras_objectness.workflows import lsda

    seen = []
    real_boxes = image_label_regions.image_label_boxes

    def spy(classifier, scenes, num_classes, **kwargs):
        seen.extend(
            example["objects"]["label"].numpy().tolist() for example in scenes
        )
        return real_boxes(classifier, scenes, num_classes, **kwargs)

    monkeypatch.setattr(image_label_regions, "image_label_boxes", spy)

    source = workflows.TfdsSource(TINY, data_dir)
    # The bundled data's scenes with every class; only their labels count.
    assert source.split_name("image_label_scenes") == "detection_train_all"
    split = source.class_split()
    classifier, _ = workflows.build_classifier("alexnet_small", 20, 32)
    config = workflows.WorkflowConfig(
        method="joint_image_regions",
        finetune_epochs=1,
        batch_size=8,
        regions_per_image=4,
        verbose=0,
    )
    network = lsda.finetune_from_config(classifier, source, split, config)
    heldout = list(split.heldout_classes)
    # Every scene whose labels were read holds a class of A.
    assert seen and all(set(labels) & set(heldout) for labels in seen)
    head = find_background_head(network)
    kernel = keras.ops.convert_to_numpy(head.kernel)[:, heldout]
    snapshot = keras.ops.convert_to_numpy(head.classification_kernel)
    assert np.abs(kernel - snapshot[:, heldout]).max() > 1e-6


def test_joint_methods_need_image_labels(data_dir):
    source = workflows.TfdsSource(TINY, data_dir)
    classifier, _ = workflows.build_classifier("alexnet_small", 20, 32)
    with pytest.raises(ValueError, match="classification_examples"):
        workflows.finetune_detector(
            classifier,
            source.load("detection_train"),
            source.class_split(),
            method="joint",
        )


@large
def test_export_serves_names_from_the_run(finished_run, tmp_path):
    import tensorflow as tf

    output, _ = finished_run
    code = cli.main(
        [
            "export",
            f"--detector={output / 'detector.keras'}",
            f"--output={tmp_path / 'served'}",
            "--image-size=32",
            "--proposals=4",
        ]
    )
    assert code == cli.EXIT_OK
    served = tf.saved_model.load(str(tmp_path / "served"))
    images = np.zeros((2, 40, 50, 3), "uint8")
    proposals = np.tile(np.array([0.1, 0.1, 0.6, 0.6], "float32"), (2, 4, 1))
    found = served.serve(images, proposals)
    with open(output / "results.json") as file:
        names = json.load(file)["class_names"]
    count = int(found["num_detections"][0])
    assert count > 0
    classes = found["classes"].numpy()[0, :count]
    labels = [v.decode() for v in found["class_names"].numpy()[0, :count]]
    assert labels == [names[c] for c in classes]


def test_export_refuses_mismatched_names(finished_run, tmp_path, capsys):
    output, _ = finished_run
    code = cli.main(
        [
            "export",
            f"--detector={output / 'detector.keras'}",
            f"--output={tmp_path / 'served'}",
            "--class-names=a,b",
        ]
    )
    assert code == cli.EXIT_USAGE
    assert "--class-names" in capsys.readouterr().err
