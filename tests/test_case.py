"""Shared checks for keras_objectness tests.

Every layer test uses `TestCase.run_serialization_test`, which checks that
`get_config` holds every constructor argument, that `from_config` rebuilds an
equivalent layer, and that a `.keras` file written by a model around the layer
loads with `safe_mode=True` and gives the same outputs.
"""

import inspect
import os
import tempfile

import keras
import numpy as np
import pytest


class TestCase:
    def assertAllClose(self, actual, expected, atol=1e-6, rtol=1e-6):
        np.testing.assert_allclose(
            keras.ops.convert_to_numpy(actual),
            keras.ops.convert_to_numpy(expected),
            atol=atol,
            rtol=rtol,
        )

    def assert_config_has_every_argument(self, obj):
        config = obj.get_config()
        signature = inspect.signature(type(obj).__init__)
        missing = [
            name
            for name, parameter in signature.parameters.items()
            if name != "self"
            and parameter.kind
            not in (parameter.VAR_KEYWORD, parameter.VAR_POSITIONAL)
            and name not in config
        ]
        assert not missing, f"get_config() lacks arguments: {missing}"
        return config

    def run_serialization_test(self, layer, inputs, atol=1e-6):
        """Config round trip and `.keras` round trip with equal outputs.

        `inputs` is a list of arrays passed positionally to the layer.
        """
        config = self.assert_config_has_every_argument(layer)
        rebuilt = type(layer).from_config(config)
        assert rebuilt.get_config() == config

        symbolic = [
            keras.Input(shape=np.shape(x)[1:], dtype=_dtype_name(x))
            for x in inputs
        ]
        model = keras.Model(symbolic, layer(*symbolic))
        expected = model(inputs)
        with tempfile.TemporaryDirectory() as folder:
            path = os.path.join(folder, "model.keras")
            model.save(path)
            restored = keras.saving.load_model(path, safe_mode=True)
        actual = restored(inputs)
        keras.tree.map_structure(
            lambda a, e: self.assertAllClose(a, e, atol=atol, rtol=atol),
            actual,
            expected,
        )
        return restored


def _dtype_name(x):
    dtype = keras.backend.standardize_dtype(np.asarray(x).dtype)
    return dtype


large = pytest.mark.large
