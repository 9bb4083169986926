"""`region_features`: the workflow's shared-feature (Fast R-CNN) path."""

import json

import numpy as np
import pytest

from keras_objectness import cli
from keras_objectness import workflows
from tests.workflows.test_cli import FAST
from tests.workflows.test_cli import TINY
from tests.workflows.test_cli import data_dir  # noqa: F401  (fixture)


def test_config_checks_region_features():
    assert workflows.WorkflowConfig().region_features == "per_crop"
    workflows.WorkflowConfig(region_features="shared", method="lsda")
    workflows.WorkflowConfig(region_features="shared", method="joint")
    with pytest.raises(ValueError, match="region_features"):
        workflows.WorkflowConfig(region_features="pooled")


def test_run_with_shared_features(data_dir, tmp_path):  # noqa: F811
    code = cli.main(
        [
            "run",
            f"--data={TINY}",
            f"--data-dir={data_dir}",
            f"--output-dir={tmp_path}",
            "--method=lsda",
            "--knn=2",
            "--region-features=shared",
            *FAST,
        ]
    )
    assert code == cli.EXIT_OK
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["config"]["region_features"] == "shared"
    for key in ("map_trained", "map_heldout"):
        assert np.isfinite(results["adapted"][key])
    assert (tmp_path / "detector.keras").exists()


def test_run_with_shared_features_and_the_default_method(data_dir, tmp_path):  # noqa: F811
    # The default (image-label) method's batches are whole images too.
    code = cli.main(
        [
            "run",
            f"--data={TINY}",
            f"--data-dir={data_dir}",
            f"--output-dir={tmp_path}",
            "--region-features=shared",
            *FAST,
        ]
    )
    assert code == cli.EXIT_OK
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["config"]["method"] == "joint_image_refined"
    for key in ("map_trained", "map_heldout"):
        assert np.isfinite(results["adapted"][key])
