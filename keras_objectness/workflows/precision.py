"""Mixed precision for the workflow's trainings and detection."""

import contextlib

import keras

# The workflow's names -> Keras dtype policies. Variables stay float32 in
# every policy; the package's layers keep their numerically delicate parts
# (local response normalisation, softmaxes, box coordinates) in float32.
PRECISIONS = {
    "float32": "float32",
    "bfloat16": "mixed_bfloat16",
    "float16": "mixed_float16",
}


def check_precision(mixed_precision):
    """Raises a `ValueError` unless `mixed_precision` is a known name."""
    if not isinstance(mixed_precision, str) or (
        mixed_precision not in PRECISIONS
    ):
        raise ValueError(
            f"`mixed_precision` must be one of {tuple(PRECISIONS)}. "
            f"Received: mixed_precision={mixed_precision!r}"
        )


@contextlib.contextmanager
def precision_policy(mixed_precision):
    """Builds models inside the block under a mixed-precision policy.

    Keras' dtype policy is global: the previous one comes back when the
    block ends, also on an exception. Models loaded from `.keras` files
    keep the policies they were saved with.

    Args:
        mixed_precision: `"float32"`, `"bfloat16"` (`mixed_bfloat16`) or
            `"float16"` (`mixed_float16`).

    Example:

    ```python
    with precision_policy("bfloat16"):
        classifier, _ = build_classifier("alexnet_small", 20)
    ```
    """
    check_precision(mixed_precision)
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(PRECISIONS[mixed_precision])
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)
