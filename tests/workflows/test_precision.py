import keras
import numpy as np
import pytest

from keras_objectness import workflows


def test_policy_applies_inside_the_block_and_is_restored():
    before = keras.config.dtype_policy().name
    with workflows.precision_policy("bfloat16"):
        assert keras.config.dtype_policy().name == "mixed_bfloat16"
        classifier, _ = workflows.build_classifier("alexnet_small", 4)
    assert keras.config.dtype_policy().name == before
    compute_dtypes = {layer.compute_dtype for layer in classifier.layers}
    assert "bfloat16" in compute_dtypes
    probabilities = classifier(np.zeros((2, 32, 32, 3), "uint8"))
    # The output layer stays float32: exact softmax for scoring.
    assert keras.backend.standardize_dtype(probabilities.dtype) == "float32"
    np.testing.assert_allclose(np.sum(probabilities, axis=-1), 1.0, rtol=1e-5)


def test_policy_is_restored_after_an_exception():
    before = keras.config.dtype_policy().name
    with pytest.raises(RuntimeError):
        with workflows.precision_policy("float16"):
            raise RuntimeError("inside")
    assert keras.config.dtype_policy().name == before


@pytest.mark.parametrize("value", ["mixed_bfloat16", "bf16", 16, None])
def test_unknown_precision_is_refused(value):
    with pytest.raises(ValueError, match="mixed_precision"):
        with workflows.precision_policy(value):
            pass
    with pytest.raises(ValueError, match="mixed_precision"):
        workflows.WorkflowConfig(mixed_precision=value)


def test_config_default_is_float32():
    assert workflows.WorkflowConfig().mixed_precision == "float32"
    assert set(workflows.PRECISIONS) == {"float32", "bfloat16", "float16"}
