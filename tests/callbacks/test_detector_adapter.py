import os
import signal
import time

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_objectness.adaptation import adapted_weights
from keras_objectness.callbacks import DetectorAdapter
from keras_objectness.models import detection_network
from tests import subprocess_helpers
from tests.lsda_helpers import DETECTION_CLASSES
from tests.lsda_helpers import HELDOUT_CLASSES
from tests.lsda_helpers import NUM_CLASSES
from tests.lsda_helpers import head_weights
from tests.lsda_helpers import region_data
from tests.lsda_helpers import tiny_classifier
from tests.test_case import large

A = list(HELDOUT_CLASSES)
B = list(DETECTION_CLASSES)
CHILD = os.path.join(os.path.dirname(__file__), "detector_adapter_child.py")


def _detector():
    detector = detection_network(tiny_classifier(), DETECTION_CLASSES)
    detector.compile(
        optimizer=keras.optimizers.Adam(0.05),
        loss="sparse_categorical_crossentropy",
    )
    return detector, detector.get_layer("detector_background_head")


def _expected_adaptation(weights, knn, **kwargs):
    kernel, bias = adapted_weights(
        weights["classification_kernel"],
        weights["classification_bias"],
        weights["kernel"][:, :NUM_CLASSES],
        weights["bias"][:NUM_CLASSES],
        DETECTION_CLASSES,
        knn=knn,
        **kwargs,
    )
    return keras.ops.convert_to_numpy(kernel), keras.ops.convert_to_numpy(bias)


def test_snapshots_at_begin_and_adapts_at_end():
    detector, head = _detector()
    before = head_weights(head)
    images, labels = region_data(count=16)
    detector.fit(
        images,
        labels,
        batch_size=8,
        epochs=2,
        verbose=0,
        callbacks=[DetectorAdapter(knn=2)],
    )
    after = head_weights(head)
    assert after["snapshot_taken"] == 1
    np.testing.assert_array_equal(
        after["classification_kernel"], before["kernel"][:, :NUM_CLASSES]
    )
    np.testing.assert_array_equal(
        after["classification_bias"], before["bias"][:NUM_CLASSES]
    )
    # B trained; A was adapted from the snapshot and B's offsets.
    assert not np.allclose(after["kernel"][:, B], before["kernel"][:, B])
    kernel, bias = _expected_adaptation(after, knn=2)
    np.testing.assert_allclose(after["kernel"][:, :NUM_CLASSES], kernel, 1e-6)
    np.testing.assert_allclose(after["bias"][:NUM_CLASSES], bias, 1e-6)
    assert not np.allclose(after["kernel"][:, A], before["kernel"][:, A])


def test_passes_the_similarity_weighting():
    detector, head = _detector()
    before = head_weights(head)
    images, labels = region_data(count=16)
    adapter = DetectorAdapter(knn=2, weighting="similarity", temperature=0.5)
    assert (adapter.weighting, adapter.temperature) == ("similarity", 0.5)
    detector.fit(images, labels, batch_size=8, verbose=0, callbacks=[adapter])
    after = head_weights(head)
    kernel, bias = _expected_adaptation(
        after, knn=2, weighting="similarity", temperature=0.5
    )
    np.testing.assert_allclose(after["kernel"][:, :NUM_CLASSES], kernel, 1e-6)
    np.testing.assert_allclose(after["bias"][:NUM_CLASSES], bias, 1e-6)
    uniform, _ = _expected_adaptation(after, knn=2)
    assert not np.allclose(kernel[:, A], uniform[:, A])
    # The background column is only trained, never adapted.
    assert not np.allclose(
        after["kernel"][:, NUM_CLASSES], before["kernel"][:, NUM_CLASSES]
    )


def test_existing_snapshot_is_kept_across_fits():
    detector, head = _detector()
    images, labels = region_data(count=16)
    fit_args = dict(x=images, y=labels, batch_size=8, verbose=0)
    detector.fit(epochs=1, callbacks=[DetectorAdapter(knn="all")], **fit_args)
    first = head_weights(head)
    detector.fit(epochs=1, callbacks=[DetectorAdapter(knn="all")], **fit_args)
    second = head_weights(head)
    np.testing.assert_array_equal(
        second["classification_kernel"], first["classification_kernel"]
    )
    assert not np.allclose(second["kernel"][:, B], first["kernel"][:, B])
    kernel, _ = _expected_adaptation(second, knn="all")
    np.testing.assert_allclose(second["kernel"][:, :NUM_CLASSES], kernel, 1e-6)


def test_without_output_layer_adaptation_a_is_w_c():
    detector, head = _detector()
    before = head_weights(head)
    images, labels = region_data(count=16)
    detector.fit(
        images,
        labels,
        batch_size=8,
        verbose=0,
        callbacks=[DetectorAdapter(adapt_output_layer=False)],
    )
    after = head_weights(head)
    np.testing.assert_array_equal(after["kernel"][:, A], before["kernel"][:, A])
    np.testing.assert_array_equal(after["bias"][A], before["bias"][A])


def test_under_mirrored_strategy():
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    with strategy.scope():
        detector, head = _detector()
    before = head_weights(head)
    images, labels = region_data(count=16)
    detector.fit(
        images,
        labels,
        batch_size=8,
        verbose=0,
        callbacks=[DetectorAdapter(knn=1)],
    )
    after = head_weights(head)
    np.testing.assert_array_equal(
        after["classification_kernel"], before["kernel"][:, :NUM_CLASSES]
    )
    kernel, _ = _expected_adaptation(after, knn=1)
    np.testing.assert_allclose(after["kernel"][:, :NUM_CLASSES], kernel, 1e-6)
    # Every replica holds the same adapted kernel.
    replicas = head.kernel.value.values
    assert len(replicas) == 2
    np.testing.assert_array_equal(replicas[0].numpy(), replicas[1].numpy())


def test_errors():
    for knn in (0, -2, 1.0, True, "most", None):
        with pytest.raises(ValueError, match="`knn`"):
            DetectorAdapter(knn=knn)
    with pytest.raises(ValueError, match="`adapt_output_layer`"):
        DetectorAdapter(adapt_output_layer=1)
    for weighting in ("mean", None):
        with pytest.raises(ValueError, match="`weighting`"):
            DetectorAdapter(weighting=weighting)
    for temperature in (0, -1.0, "hot"):
        with pytest.raises(ValueError, match="`temperature`"):
            DetectorAdapter(weighting="similarity", temperature=temperature)
    images, labels = region_data(count=8)
    detector, head = _detector()
    before = head_weights(head)
    # knn larger than |B| = 3 fails at train begin, before any step.
    with pytest.raises(ValueError, match="`knn`"):
        detector.fit(
            images, labels, verbose=0, callbacks=[DetectorAdapter(knn=4)]
        )
    for name, value in head_weights(head).items():
        np.testing.assert_array_equal(value, before[name])
    classifier = tiny_classifier()
    classifier.compile(loss="sparse_categorical_crossentropy")
    with pytest.raises(ValueError, match="`BackgroundHead`"):
        classifier.fit(
            images, labels % 6, verbose=0, callbacks=[DetectorAdapter()]
        )
    oracle = detection_network(tiny_classifier(), range(NUM_CLASSES))
    oracle.compile(loss="sparse_categorical_crossentropy")
    with pytest.raises(ValueError, match="no held-out class"):
        oracle.fit(images, labels, verbose=0, callbacks=[DetectorAdapter(1)])


def _child(folder, tag, order, crash):
    arguments = [
        CHILD,
        "--backup-dir",
        os.path.join(folder, f"{tag}_backup"),
        "--order",
        order,
        "--result",
        os.path.join(folder, f"{tag}.npz"),
    ]
    if crash:
        arguments += ["--crash-marker", os.path.join(folder, f"{tag}.marker")]
    return subprocess_helpers.start_python(arguments, TF_DETERMINISTIC_OPS="1")


def _wait(process, what, timeout=120):
    subprocess_helpers.wait_all([process], what, timeout)


@large
def test_killed_and_resumed_run_equals_uninterrupted_run(tmp_path):
    """SIGKILL in the middle of epoch 2, resume with BackupAndRestore.

    Both callback orders: `[DetectorAdapter, BackupAndRestore]` (the adapter
    snapshots the fresh model, the backup then restores the saved snapshot
    over it) and `[BackupAndRestore, DetectorAdapter]` (the restored flag
    stops the adapter from snapshotting fine-tuned weights). With op
    determinism on one thread, the weights must be exactly equal.
    """
    folder = str(tmp_path)
    orders = ("adapter_first", "backup_first")
    reference = _child(folder, "reference", "adapter_first", crash=False)
    crashing = {
        order: _child(folder, order, order, crash=True) for order in orders
    }
    resumed = {}
    deadline = time.monotonic() + 120
    while len(resumed) < len(orders):
        assert time.monotonic() < deadline, "no child reached the marker"
        for order, process in crashing.items():
            marker = os.path.join(folder, f"{order}.marker")
            if order in resumed:
                continue
            if process.poll() is not None:
                _, stderr = process.communicate()
                pytest.fail(f"{order} ended early: {stderr.decode()[-3000:]}")
            if os.path.exists(marker):
                process.send_signal(signal.SIGKILL)
                process.wait()
                assert process.returncode == -signal.SIGKILL
                assert not os.path.exists(os.path.join(folder, f"{order}.npz"))
                resumed[order] = _child(folder, order, order, crash=False)
        time.sleep(0.05)
    _wait(reference, "uninterrupted run")
    for order, process in resumed.items():
        _wait(process, f"resumed run ({order})")

    expected = dict(np.load(os.path.join(folder, "reference.npz")))
    assert expected["first_epoch"] == 0
    # The snapshot is the classifier's W^c; fine-tuning moved B.
    np.testing.assert_array_equal(
        expected["classification_kernel"], expected["classifier_kernel"]
    )
    np.testing.assert_array_equal(
        expected["classification_bias"], expected["classifier_bias"]
    )
    assert not np.allclose(
        expected["kernel"][:, B], expected["classifier_kernel"][:, B]
    )
    for order in orders:
        actual = dict(np.load(os.path.join(folder, f"{order}.npz")))
        # The run restarted from the backup of epoch 1, not from scratch.
        assert actual["first_epoch"] == 1, order
        for name in (
            "classification_kernel",
            "classification_bias",
            "snapshot_taken",
            "kernel",
            "bias",
        ):
            np.testing.assert_array_equal(
                actual[name], expected[name], err_msg=f"{order}: {name}"
            )
