"""Child Python processes for tests that kill, resume or cluster training.

Children run from the repository root with it on `PYTHONPATH` (so they
import this checkout), print nothing to stdout and keep stderr for the
failure message.
"""

import json
import os
import random
import socket
import subprocess
import sys
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _ephemeral_range():
    """The kernel's range for outgoing connections' local ports."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as file:
            low, high = (int(v) for v in file.read().split())
        return low, high
    except (OSError, ValueError):
        return 32768, 60999


def _bindable(port):
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_ports(count, rng=None):
    """`count` distinct TCP ports that are free on 127.0.0.1 right now.

    Drawn at random outside the kernel's ephemeral range: ports the OS
    hands out itself (`bind(0)`, outgoing connections of other processes on
    a busy machine) can be taken again between this call and the moment a
    child binds them; ports below that range are only ever taken on
    purpose. Each candidate is checked by binding it.
    """
    rng = rng or random.Random()
    low, high = _ephemeral_range()
    if low > 20000 + count:
        candidates = range(20000, low)
    else:
        candidates = range(high + 1, 65536)
    ports = []
    for _ in range(1000):
        port = rng.choice(candidates)
        if port not in ports and _bindable(port):
            ports.append(port)
            if len(ports) == count:
                return ports
    raise RuntimeError(f"no {count} free ports in {candidates}")


# Messages of a worker whose port was taken after `free_ports` checked it.
PORT_CLASH = ("Address already in use", "Failed to add port")


def port_clash(stderr):
    """True when a child's stderr says its port was taken."""
    return any(message in stderr for message in PORT_CLASH)


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
    if any(port_clash(error) for error in errors):
        raise PortClash(f"{what}: a port was taken")
    assert not errors, f"{what} failed:\n" + "\n".join(errors)


class PortClash(Exception):
    """A worker could not bind its port: rerun the group on new ports."""


def retry_on_port_clash(run, attempts=3):
    """Calls `run()` (which starts and waits for a worker group) again on a
    port clash, up to `attempts` times."""
    for attempt in range(attempts):
        try:
            return run()
        except PortClash:
            if attempt == attempts - 1:
                raise
