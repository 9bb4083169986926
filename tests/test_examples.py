"""The example scripts run end to end on the tiny dataset config."""

import json
import os

from examples import detect_all_classes
from tests import subprocess_helpers
from tests.test_case import large


@large
def test_detect_all_classes_runs_end_to_end(tmp_path):
    output_dir = tmp_path / "detect"
    results = detect_all_classes.main(
        [
            "--config=tiny",
            f"--data-dir={tmp_path / 'tfds'}",
            f"--output-dir={output_dir}",
            "--quick",
        ]
    )
    for row in ("no_adaptation", "adapted"):
        for key in ("map_trained", "map_heldout", "map_all"):
            value = results[row][key]
            assert value is None or 0.0 <= value <= 100.0, (row, key)
        assert len(results[row]["average_precision"]) == 20
    assert 0.0 <= results["proposal_recall"] <= 1.0
    assert 0.0 <= results["classifier_accuracy"] <= 1.0
    assert results["num_test_images"] == 8
    # --quick reaches the workflow's settings.
    assert results["config"]["classifier_epochs"] == 1
    assert results["config"]["proposals"] == 10
    assert results["config"]["output_dir"] == str(output_dir)
    assert results["command"] == (
        "python -m examples.detect_all_classes --config=tiny "
        f"--data-dir={tmp_path / 'tfds'} --output-dir={output_dir} --quick"
    )
    with open(output_dir / "results.json") as file:
        assert json.load(file)["adapted"] == results["adapted"]
    for name in ("gallery.png", "classifier.keras", "detector.keras"):
        assert os.path.getsize(output_dir / name) > 0, name


@large
def test_train_objectness_on_two_workers(tmp_path):
    """The script unchanged, one process per worker with its TF_CONFIG."""
    ports = subprocess_helpers.free_ports(2)
    workers = [
        subprocess_helpers.start_python(
            [
                "-m",
                "examples.train_objectness",
                "--strategy=multi_worker",
                "--config=tiny",
                f"--data-dir={tmp_path / 'tfds'}",
                f"--output-dir={tmp_path / f'out{index}'}",
                "--epochs=2",
                "--pretrain-epochs=1",
                "--batch-size=8",
                "--image-size=32",
                "--save-freq=2",
                "--verbose=0",
            ],
            subprocess_helpers.worker_tf_config(ports, index),
        )
        for index in range(2)
    ]
    subprocess_helpers.wait_all(workers, "two train_objectness workers", 600)
    # Only the chief writes results; every worker's backups are gone.
    with open(tmp_path / "out0" / "results.json") as file:
        results = json.load(file)
    assert results["replicas"] == 2
    assert len(results["loss"]) == 2
    assert os.path.exists(tmp_path / "out0" / "objectness.keras")
    assert not os.path.exists(tmp_path / "out1" / "results.json")
    # The chief's TensorBoard logs: Keras' scalars and our PR curves.
    events = [
        name
        for _, _, names in os.walk(tmp_path / "out0" / "logs")
        for name in names
        if name.startswith("events.out.tfevents")
    ]
    assert len(events) >= 2, events
    for index in range(2):
        backup = tmp_path / f"out{index}" / "backup" / "objectness"
        assert not os.path.exists(backup / f"worker-{index}")
