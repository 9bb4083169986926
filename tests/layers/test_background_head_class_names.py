"""`BackgroundHead(class_names=...)`: names travel with the model."""

import keras
import numpy as np
import pytest

from keras_objectness.class_split import ClassSplit
from keras_objectness.layers import BackgroundHead
from tests.test_case import TestCase

K = 4
B = (0, 2)
NAMES = ("cat", "dog", "otter", "heron")


class TestClassNames(TestCase):
    def test_names_in_config_and_keras_file(self):
        x = np.random.default_rng(0).normal(size=(3, 5)).astype("float32")
        layer = BackgroundHead(K, B, class_names=list(NAMES), name="head")
        assert layer.class_names == NAMES
        layer(x)
        assert layer.get_config()["class_names"] == NAMES
        restored = self.run_serialization_test(layer, [x])
        assert restored.get_layer("head").class_names == NAMES

    def test_default_and_class_split_names(self):
        assert BackgroundHead(K, B).class_names is None
        assert BackgroundHead(K, B).get_config()["class_names"] is None
        split = ClassSplit(K, B, class_names=NAMES)
        assert BackgroundHead(K, split).class_names == NAMES
        # An explicit argument wins over the split's names.
        other = ("a", "b", "c", "d")
        assert BackgroundHead(K, split, class_names=other).class_names == other

    def test_configs_without_names_still_load(self):
        config = BackgroundHead(K, B).get_config()
        del config["class_names"]
        assert BackgroundHead.from_config(config).class_names is None

    def test_bad_names(self):
        for names in (("a",), ("a", "a", "b", "c"), "abcd", ("a", "", "b", "c"),
                      ("a", 1, "b", "c"), 4):  # fmt: skip
            with pytest.raises(ValueError, match="`class_names`"):
                BackgroundHead(K, B, class_names=names)

    def test_names_do_not_change_outputs(self):
        x = np.random.default_rng(1).normal(size=(3, 5)).astype("float32")
        init = keras.initializers.RandomNormal(seed=2)
        plain = BackgroundHead(K, B, kernel_initializer=init)
        named = BackgroundHead(K, B, kernel_initializer=init, class_names=NAMES)
        np.testing.assert_array_equal(
            keras.ops.convert_to_numpy(plain(x)),
            keras.ops.convert_to_numpy(named(x)),
        )
