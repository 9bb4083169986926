"""Stage announcements, timings and progress bars of the workflows."""

import sys
import time

import keras


class StageLog:
    """Announces each stage on one line and keeps its wall time.

    Args:
        verbose: bool. Print the announcements. Defaults to `True`.
        stream: where to print. Defaults to `sys.stdout`.

    Example:

    ```python
    log = StageLog()
    with log.stage("classifier"):
        ...  # prints "[    0 s] classifier ..." and, after, its time
    log.seconds  # {"classifier": 12.3}
    ```
    """

    def __init__(self, verbose=True, stream=None):
        self.verbose = verbose
        self.stream = stream or sys.stdout
        self.start = time.time()
        self.seconds = {}

    def say(self, message):
        if self.verbose:
            print(
                f"[{time.time() - self.start:5.0f} s] {message}",
                file=self.stream,
                flush=True,
            )

    def stage(self, name):
        return _Stage(self, name)

    @property
    def total_seconds(self):
        return round(time.time() - self.start, 1)


class _Stage:
    def __init__(self, log, name):
        self.log = log
        self.name = name

    def __enter__(self):
        self.began = time.time()
        self.log.say(f"{self.name} ...")
        return self

    def __exit__(self, *exc_info):
        seconds = round(time.time() - self.began, 1)
        self.log.seconds[self.name] = seconds
        if exc_info[0] is None:
            self.log.say(f"{self.name}: done in {seconds:.0f} s")
        return False


def progress_bar(total, verbose=True, unit="images"):
    """A `keras.utils.Progbar` for loops over `total` items, or `None`."""
    if not verbose or not total:
        return None
    # Off a terminal, one summary line at the end instead of redraws.
    return keras.utils.Progbar(
        total, unit_name=unit, verbose=1 if sys.stdout.isatty() else 2
    )


def keras_verbosity(verbose):
    """Keras' `verbose` for a training: 2 (a line per epoch) off a TTY."""
    if verbose == 1 and not sys.stdout.isatty():
        return 2
    return verbose
