"""Quiet TensorFlow start-up for the `keras-objectness` command line.

TensorFlow's C++ runtime prints a dozen lines while it loads (oneDNN,
CUDA and CPU-feature notices, some of them tagged `E0000` or `I0000`),
before its own log level can be read. For a person at the command line they
bury the first line that matters, so when this process *is* the command
line (the `keras-objectness` script or `python -m keras_objectness`), the
package loads TensorFlow once with the standard error stream pointed at
`/dev/null`, and sets `TF_CPP_MIN_LOG_LEVEL=3` unless it is already set.
Library users importing the package see no change. Set
`KERAS_OBJECTNESS_TF_LOGS=1` to keep TensorFlow's logs.
"""

import os
import sys


def _is_command_line():
    argv = list(getattr(sys, "orig_argv", ()) or ())
    if argv and os.path.basename(argv[0]) == "keras-objectness":
        return True
    if sys.argv and os.path.basename(sys.argv[0]) == "keras-objectness":
        return True
    for index, arg in enumerate(argv[:-1]):
        if arg == "-m":
            return argv[index + 1].split(".")[0] == "keras_objectness"
    return False


def _load_tensorflow_quietly():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    try:
        saved = os.dup(2)
    except OSError:
        import tensorflow  # noqa: F401

        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        sys.stderr.flush()
        os.dup2(devnull, 2)
        import tensorflow  # noqa: F401
        import tensorflow_datasets  # noqa: F401
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
    import absl.logging

    absl.logging.set_verbosity(absl.logging.ERROR)


if (
    _is_command_line()
    and os.environ.get("KERAS_OBJECTNESS_TF_LOGS") != "1"
    and "tensorflow" not in sys.modules
):
    _load_tensorflow_quietly()
