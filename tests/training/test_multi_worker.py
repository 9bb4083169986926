"""Two loopback workers, and runs killed with SIGKILL and resumed.

Every run is a child process (`train_child.py`) with TensorFlow op
determinism on one thread. Tolerances:

* two workers against one process with the same global batch: 1e-6
  (float32 round-off; the all-reduce sums per-worker gradients in another
  order than one device's batch reduction);
* a resumed run against an uninterrupted one, on one machine or on two
  workers: weights, optimizer state and `DetectorAdapter` snapshot exactly
  equal; the logged history exactly on one machine and to 1e-6 on two
  workers (each replica accumulates its share of an epoch's mean loss, and
  a checkpoint keeps only their sum, which the restore splits evenly: the
  same total, summed in another order).
"""

import json
import os
import random
import signal
import time

import numpy as np
import pytest

from tests import subprocess_helpers
from tests.test_case import large

CHILD = os.path.join(os.path.dirname(__file__), "train_child.py")
# Generous: a busy 2-core machine slows start-up (TF import) several-fold.
TIMEOUT = 600
TWO_WORKER_TOLERANCE = 1e-6
# train_child.py's lsda run: 3 epochs of 8 steps, a checkpoint every 3.
EPOCHS, STEPS_PER_EPOCH, SAVE_FREQ = 3, 8, 3


def _start(folder, tag, model, worker=None, cluster=None, pause=None):
    """Starts one child; `worker` (an index) and `cluster` make it a worker."""
    suffix = "" if worker is None else f"_{worker}"
    arguments = [
        CHILD,
        "--model",
        model,
        "--backup-dir",
        os.path.join(folder, f"{tag}_backup"),
        "--result",
        os.path.join(folder, f"{tag}{suffix}.npz"),
    ]
    if pause is not None:
        arguments += [
            "--pause-at-step",
            str(pause),
            "--marker",
            os.path.join(folder, f"{tag}{suffix}.marker"),
        ]
    tf_config = None
    if worker is not None:
        tf_config = subprocess_helpers.worker_tf_config(cluster, worker)
    return subprocess_helpers.start_python(arguments, tf_config)


def _start_workers(folder, tag, model, pause_worker=None, pause=None):
    ports = subprocess_helpers.free_ports(2)
    return [
        _start(
            folder,
            tag,
            model,
            worker=index,
            cluster=ports,
            pause=pause if index == pause_worker else None,
        )
        for index in range(2)
    ]


def _wait(processes, what):
    subprocess_helpers.wait_all(processes, what, TIMEOUT)


def _wait_for_marker(process, marker, processes):
    deadline = time.monotonic() + TIMEOUT
    while not os.path.exists(marker):
        if process.poll() is not None or time.monotonic() > deadline:
            for p in processes:
                p.kill()
            _, stderr = process.communicate()
            stderr = stderr.decode()
            if subprocess_helpers.port_clash(stderr):
                raise subprocess_helpers.PortClash(marker)
            pytest.fail(f"no marker {marker}: {stderr[-3000:]}")
        time.sleep(0.05)


def _kill(process):
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL


def _load(folder, name):
    result = dict(np.load(os.path.join(folder, f"{name}.npz")))
    result["history"] = json.loads(str(result["history"]))
    return result


def _assert_same_run(actual, expected, what, history_tolerance=0.0):
    for name in (
        "weights",
        "optimizer",
        "classification_kernel",
        "classification_bias",
    ):
        np.testing.assert_array_equal(
            actual[name], expected[name], err_msg=f"{what}: {name}"
        )
    assert actual["history"].keys() == expected["history"].keys(), what
    for key, values in expected["history"].items():
        np.testing.assert_allclose(
            actual["history"][key],
            values,
            rtol=history_tolerance,
            atol=0,
            err_msg=f"{what}: history {key}",
        )


def _last_checkpoint(step):
    """The newest checkpoint before `step`: a save step or an epoch end."""
    return max(step - step % SAVE_FREQ, step - step % STEPS_PER_EPOCH)


def _random_mid_epoch_step(rng):
    """A step that is neither an epoch end nor a checkpoint step."""
    candidates = [
        step
        for step in range(2, EPOCHS * STEPS_PER_EPOCH)
        if step % STEPS_PER_EPOCH and step % SAVE_FREQ
    ]
    return rng.choice(candidates)


@large
def test_two_workers_match_one_process(tmp_path):
    folder = str(tmp_path)

    def run():
        workers = _start_workers(folder, "two", "objectness")
        single = _start(folder, "one", "objectness")
        _wait([*workers, single], "objectness training")

    subprocess_helpers.retry_on_port_clash(run)
    first, second = _load(folder, "two_0"), _load(folder, "two_1")
    one = _load(folder, "one")
    # Both workers hold the same weights, bit for bit.
    np.testing.assert_array_equal(first["weights"], second["weights"])
    np.testing.assert_allclose(
        first["weights"],
        one["weights"],
        atol=TWO_WORKER_TOLERANCE,
        rtol=TWO_WORKER_TOLERANCE,
    )
    np.testing.assert_allclose(
        first["history"]["loss"],
        one["history"]["loss"],
        rtol=TWO_WORKER_TOLERANCE,
    )
    # Training moved the weights: the comparison is not of two fresh models.
    assert first["history"]["loss"][1] < first["history"]["loss"][0]


@large
def test_killed_at_a_random_step_resumes_exactly(tmp_path):
    folder = str(tmp_path)
    rng = random.Random()
    step = _random_mid_epoch_step(rng)
    reference = _start(folder, "reference", "lsda")
    crashing = _start(folder, "resumed", "lsda", pause=step)
    _wait_for_marker(
        crashing, os.path.join(folder, "resumed.marker"), [reference, crashing]
    )
    _kill(crashing)
    assert not os.path.exists(os.path.join(folder, "resumed.npz"))
    resumed = _start(folder, "resumed", "lsda")
    _wait([reference, resumed], f"runs killed at step {step}")

    expected = _load(folder, "reference")
    actual = _load(folder, "resumed")
    # Resumed from the last checkpoint before the kill, mid-epoch.
    assert actual["first_step"] == _last_checkpoint(step), step
    assert expected["first_step"] == 0
    assert len(expected["history"]["loss"]) == EPOCHS
    _assert_same_run(actual, expected, f"killed at step {step}")


@large
def test_one_of_two_workers_killed_and_job_restarted(tmp_path):
    folder = str(tmp_path)
    rng = random.Random()
    step = _random_mid_epoch_step(rng)
    subprocess_helpers.retry_on_port_clash(
        lambda: _wait(
            _start_workers(folder, "reference", "lsda"),
            "uninterrupted two-worker run",
        )
    )

    def crash():
        crashing = _start_workers(
            folder, "resumed", "lsda", pause_worker=1, pause=step
        )
        try:
            _wait_for_marker(
                crashing[1], os.path.join(folder, "resumed_1.marker"), crashing
            )
        except subprocess_helpers.PortClash:
            for process in crashing:
                process.kill()
                process.wait()
            raise
        return crashing

    crashing = subprocess_helpers.retry_on_port_clash(crash)
    # Worker 1 dies; worker 0 is stuck in the next step's all-reduce, and
    # the job restarts both, as a cluster scheduler would.
    _kill(crashing[1])
    _kill(crashing[0])
    subprocess_helpers.retry_on_port_clash(
        lambda: _wait(
            _start_workers(folder, "resumed", "lsda"),
            f"two-worker run killed at step {step}",
        )
    )

    for worker in range(2):
        expected = _load(folder, f"reference_{worker}")
        actual = _load(folder, f"resumed_{worker}")
        assert actual["first_step"] == _last_checkpoint(step), step
        _assert_same_run(
            actual,
            expected,
            f"worker {worker}, step {step}",
            history_tolerance=TWO_WORKER_TOLERANCE,
        )
    np.testing.assert_array_equal(
        _load(folder, "resumed_0")["weights"],
        _load(folder, "resumed_1")["weights"],
    )
