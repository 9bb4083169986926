"""The example scripts run end to end on the tiny dataset config."""

import json
import os

from examples import detect_all_classes
from tests.test_case import large


@large
def test_detect_all_classes_runs_end_to_end(tmp_path):
    output_dir = tmp_path / "detect"
    results = detect_all_classes.main(
        [
            "--config=tiny",
            f"--data-dir={tmp_path / 'tfds'}",
            f"--output-dir={output_dir}",
            "--classifier-epochs=1",
            "--proposer-epochs=1",
            "--finetune-epochs=1",
            "--regions-per-image=4",
            "--proposals=10",
            "--max-test-images=8",
            "--gallery-images=2",
            "--verbose=0",
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
    assert results["command"].startswith(
        "python -m examples.detect_all_classes"
    )
    with open(output_dir / "results.json") as file:
        assert json.load(file)["adapted"] == results["adapted"]
    assert os.path.getsize(output_dir / "gallery.png") > 0
