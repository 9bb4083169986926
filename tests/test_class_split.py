import json

import numpy as np
import pytest
import tensorflow as tf

from keras_objectness.class_split import ClassSplit
from tests.test_case import TestCase


class TestClassSplit(TestCase):
    def test_sorts_and_complements(self):
        split = ClassSplit(6, detection_classes=[4, 0, 2])
        assert split.detection_classes == (0, 2, 4)
        assert split.heldout_classes == (1, 3, 5)
        assert split.num_classes == 6
        assert split.class_names is None
        assert split.detection_class_names is None
        np.testing.assert_array_equal(
            split.detection_mask, [True, False, True, False, True, False]
        )

    def test_names_follow_the_split(self):
        split = ClassSplit(3, (2,), class_names=("a", "b", "c"))
        assert split.detection_class_names == ("c",)
        assert split.heldout_class_names == ("a", "b")

    def test_oracle_split_has_no_heldout_class(self):
        split = ClassSplit(3, (0, 1, 2))
        assert split.heldout_classes == ()
        assert not split.is_heldout_class(np.arange(3)).any()

    def test_numpy_lookup_with_padding_and_out_of_range(self):
        split = ClassSplit(4, (1, 3))
        labels = np.array([[0, 1, -1], [3, 2, 4]], dtype=np.int32)
        np.testing.assert_array_equal(
            split.is_detection_class(labels),
            [[False, True, False], [True, False, False]],
        )
        np.testing.assert_array_equal(
            split.is_heldout_class(labels),
            [[True, False, False], [False, True, False]],
        )

    def test_python_inputs(self):
        split = ClassSplit(4, (1, 3))
        assert split.is_detection_class(3) == np.True_
        assert split.is_detection_class([]).shape == (0,)
        np.testing.assert_array_equal(
            split.is_heldout_class([0, 1]), [True, False]
        )

    def test_tf_eager_graph_ragged_and_dataset(self):
        split = ClassSplit(4, (1, 3))
        labels = tf.constant([0, 1, 2, 3, -1], dtype=tf.int64)
        expected = [False, True, False, True, False]
        eager = split.is_detection_class(labels)
        assert isinstance(eager, tf.Tensor)
        np.testing.assert_array_equal(eager.numpy(), expected)

        graph = tf.function(split.is_detection_class)(labels)
        np.testing.assert_array_equal(graph.numpy(), expected)

        ragged = tf.ragged.constant([[0, 1], [3]], dtype=tf.int32)
        result = split.is_detection_class(ragged)
        assert isinstance(result, tf.RaggedTensor)
        assert result.to_list() == [[False, True], [True]]

        dataset = tf.data.Dataset.from_tensor_slices(labels).map(
            split.is_heldout_class
        )
        assert [bool(x) for x in dataset] == [
            True,
            False,
            True,
            False,
            False,
        ]

    def test_float_labels_are_rejected(self):
        split = ClassSplit(4, (1,))
        with pytest.raises(ValueError, match="labels"):
            split.is_detection_class(np.array([1.0]))
        with pytest.raises(ValueError, match="labels"):
            split.is_detection_class(tf.constant([1.0]))

    def test_config_round_trip(self):
        split = ClassSplit(3, (2, 0), class_names=("a", "b", "c"))
        config = self.assert_config_has_every_argument(split)
        config = json.loads(json.dumps(config))
        rebuilt = ClassSplit.from_config(config)
        assert rebuilt == split
        assert hash(rebuilt) == hash(split)
        assert rebuilt.get_config() == split.get_config()
        assert ClassSplit(3, (0,)) != split

    def test_immutable(self):
        split = ClassSplit(3, (0,))
        with pytest.raises(AttributeError):
            split.detection_classes = (1,)
        with pytest.raises(AttributeError):
            split.anything = 1
        with pytest.raises(ValueError):
            split.detection_mask[0] = False
        assert split.detection_classes == (0,)

    @pytest.mark.parametrize(
        "detection_classes",
        [(), (0, 0), (-1,), (5,), (1.0,), (True,), "01", 3, None],
    )
    def test_bad_detection_classes(self, detection_classes):
        with pytest.raises(
            ValueError, match="`detection_classes` must be .*Received: "
        ):
            ClassSplit(5, detection_classes)

    @pytest.mark.parametrize("num_classes", [0, -2, 2.0, True, "3"])
    def test_bad_num_classes(self, num_classes):
        with pytest.raises(ValueError, match="Received: num_classes="):
            ClassSplit(num_classes, (0,))

    @pytest.mark.parametrize(
        "class_names", [("a",), ("a", "a"), ("a", ""), "ab", ("a", 1)]
    )
    def test_bad_class_names(self, class_names):
        with pytest.raises(ValueError, match="Received: class_names="):
            ClassSplit(2, (0,), class_names=class_names)
