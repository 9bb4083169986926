"""Worker identity from TF_CONFIG, and data prepared by the chief only."""

import json

import pytest

import keras_objectness.datasets  # noqa: F401  (registers the builder)
from keras_objectness.training import is_chief
from keras_objectness.training import prepare_dataset
from keras_objectness.training import worker_id


def _tf_config(monkeypatch, task_type, index, chief=False):
    cluster = {"worker": ["127.0.0.1:1", "127.0.0.1:2"]}
    if chief:
        cluster["chief"] = ["127.0.0.1:3"]
    monkeypatch.setenv(
        "TF_CONFIG",
        json.dumps(
            {"cluster": cluster, "task": {"type": task_type, "index": index}}
        ),
    )


def test_one_machine(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    assert worker_id() == 0
    assert is_chief()


def test_workers_only(monkeypatch):
    _tf_config(monkeypatch, "worker", 0)
    assert (worker_id(), is_chief()) == (0, True)
    _tf_config(monkeypatch, "worker", 1)
    assert (worker_id(), is_chief()) == (1, False)


def test_with_a_chief_task(monkeypatch):
    # tf.distribute's replica order: the chief first, then the workers.
    _tf_config(monkeypatch, "chief", 0, chief=True)
    assert (worker_id(), is_chief()) == (0, True)
    _tf_config(monkeypatch, "worker", 0, chief=True)
    assert (worker_id(), is_chief()) == (1, False)
    _tf_config(monkeypatch, "worker", 1, chief=True)
    assert (worker_id(), is_chief()) == (2, False)


def test_other_workers_wait_for_the_chief(monkeypatch, tmp_path):
    _tf_config(monkeypatch, "worker", 1)
    with pytest.raises(TimeoutError, match="The chief prepares it"):
        prepare_dataset(
            "silhouette_scenes/tiny",
            str(tmp_path),
            timeout=0.2,
            poll_interval=0.05,
        )
    # It only waited: nothing was written.
    assert list(tmp_path.iterdir()) == []
