"""Child Python processes for tests that kill, resume or cluster training.

Children run from the repository root with it on `PYTHONPATH` (so they
import this checkout), print nothing to stdout and keep stderr for the
failure message.
"""

import json
import os
import socket
import subprocess
import sys
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_ports(count):
    """`count` distinct TCP ports that are free on 127.0.0.1 right now."""
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def worker_tf_config(ports, index):
    """The `TF_CONFIG` of worker `index` in a local cluster on `ports`."""
    return json.dumps(
        {
            "cluster": {"worker": [f"127.0.0.1:{p}" for p in ports]},
            "task": {"type": "worker", "index": index},
        }
    )


def start_python(arguments, tf_config=None, **environment):
    """Starts `python *arguments`; `tf_config=None` clears `TF_CONFIG`."""
    env = dict(os.environ, PYTHONPATH=ROOT, **environment)
    env.pop("TF_CONFIG", None)
    if tf_config is not None:
        env["TF_CONFIG"] = tf_config
    return subprocess.Popen(
        [sys.executable, *arguments],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def wait_all(processes, what, timeout):
    """Waits for every process; fails the test (killing them all) if one
    fails or the whole group takes longer than `timeout` seconds."""
    deadline = time.monotonic() + timeout
    errors = []
    for process in processes:
        try:
            _, stderr = process.communicate(
                timeout=max(deadline - time.monotonic(), 1)
            )
        except subprocess.TimeoutExpired:
            for p in processes:
                p.kill()
            pytest.fail(f"{what}: timed out after {timeout} s")
        if process.returncode != 0:
            errors.append(stderr.decode()[-3000:])
    assert not errors, f"{what} failed:\n" + "\n".join(errors)
