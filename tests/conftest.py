import os

# Quiet TensorFlow's C++ start-up chatter before anything imports it.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import tensorflow as tf  # noqa: E402

# Two logical CPU devices, so MirroredStrategy tests have two replicas. This
# must happen before TensorFlow initialises its runtime.
_cpus = tf.config.list_physical_devices("CPU")
tf.config.set_logical_device_configuration(
    _cpus[0],
    [tf.config.LogicalDeviceConfiguration()] * 2,
)

import keras  # noqa: E402
import pytest  # noqa: E402

# Tests of TensorFlow-only machinery (tf.distribute, resumable_fit,
# SavedModel export, TFDS builders, TensorBoard summaries, the workflows and
# CLI that train through resumable_fit, subprocess children). They are marked
# `tensorflow_only` and skipped under other Keras backends; CI runs the rest
# a second time with `KERAS_BACKEND=jax python -m pytest -m "not
# tensorflow_only"`.
TENSORFLOW_ONLY = (
    "tests/training/",
    "tests/export/",
    "tests/datasets/",
    "tests/callbacks/",
    "tests/workflows/",
    "tests/data/test_real_builders.py",
    "tests/test_distribution.py",
    "tests/test_examples.py",
    "tests/test_learning.py",
)


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "tensorflow_only: needs the TensorFlow backend (skipped under others)",
    )


def pytest_collection_modifyitems(config, items):
    root = str(config.rootpath)
    tensorflow = keras.backend.backend() == "tensorflow"
    skip = pytest.mark.skip(reason="needs KERAS_BACKEND=tensorflow")
    for item in items:
        path = str(item.path)[len(root) + 1 :].replace("\\", "/")
        if path.startswith(TENSORFLOW_ONLY):
            item.add_marker("tensorflow_only")
        if not tensorflow and "tensorflow_only" in item.keywords:
            item.add_marker(skip)
