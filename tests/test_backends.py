"""The same box math in `keras.ops` and inside `tf.data`, on every backend.

Under `KERAS_BACKEND=jax` the eager calls below run JAX and the
`tf.function` / `tf.data` calls run the TensorFlow implementations that
`keras_objectness._ops` gives inside TensorFlow graphs: they must agree.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_objectness import BoxSpace
from keras_objectness import _ops
from keras_objectness.data import regions as regions_lib
from keras_objectness.layers import GaussianBoxTargets
from keras_objectness.layers import region_crops

SPACE = BoxSpace(grid_shape=(4, 4), scales=(0.25, 0.5), aspect_ratios=(1, 2))


def _boxes():
    rng = np.random.default_rng(0)
    low = rng.uniform(0.0, 0.5, (3, 5, 2))
    high = low + rng.uniform(0.05, 0.5, (3, 5, 2))
    return np.concatenate([low, high], -1).astype("float32")


def test_inside_tf_graphs_ops_are_tensorflows_under_other_backends():
    @tf.function
    def graph():
        return _ops.use_tensorflow_ops()

    assert not _ops.use_tensorflow_ops()
    assert bool(graph()) == (keras.backend.backend() != "tensorflow")


def test_encode_is_the_same_eager_and_in_tf_graphs():
    boxes = _boxes()
    coordinates, bins = SPACE.encode(boxes)
    graph_coordinates, graph_bins = tf.function(SPACE.encode)(
        tf.constant(boxes)
    )
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(bins), graph_bins.numpy()
    )
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(coordinates),
        graph_coordinates.numpy(),
        rtol=0,
        atol=1e-6,
    )


def test_targets_are_the_same_from_the_layer_and_in_tf_data():
    boxes = _boxes()
    classes = np.array([[0, 1, -1, 2, 0]] * 3, "int32")
    layer = GaussianBoxTargets(SPACE, bounding_box_format="rel_yxyx")
    eager = keras.ops.convert_to_numpy(layer(boxes, classes))
    dataset = tf.data.Dataset.from_tensors((boxes, classes)).map(
        layer.compute_targets
    )
    in_data = next(iter(dataset)).numpy()
    np.testing.assert_allclose(eager, in_data, rtol=0, atol=1e-6)
    np.testing.assert_allclose(in_data.sum(-1), 1.0, atol=1e-5)


def test_crops_are_the_same_from_the_layer_and_in_tf_data():
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (3, 12, 16, 3)).astype("float32")
    regions = _boxes()
    eager = keras.ops.convert_to_numpy(
        region_crops.RegionCrops(5, context_padding=0.1)(images, regions)
    )
    dataset = tf.data.Dataset.from_tensors((images, regions)).map(
        lambda i, r: region_crops.crop_and_resize(
            i, region_crops.pad_regions(r, 0.1), 5
        )
    )
    np.testing.assert_allclose(
        # float32 einsums of two libraries: equal to float32 round-off.
        eager,
        next(iter(dataset)).numpy(),
        rtol=1e-5,
        atol=1e-3,
    )


def test_pairwise_iou_matches_keras_compute_iou():
    a, b = _boxes()[0], _boxes()[1]
    expected = keras.ops.convert_to_numpy(
        keras.utils.bounding_boxes.compute_iou(a, b, bounding_box_format="yxyx")
    )
    ours = regions_lib.pairwise_iou(tf.constant(a), tf.constant(b)).numpy()
    np.testing.assert_allclose(ours, expected, rtol=0, atol=1e-7)


@pytest.mark.skipif(
    keras.backend.backend() == "tensorflow", reason="other backends only"
)
def test_resumable_fit_names_the_tensorflow_backend():
    from keras_objectness.training import resumable_fit

    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile("sgd", "mse")
    dataset = tf.data.Dataset.from_tensors((np.ones((4, 2)), np.ones((4, 1))))
    with pytest.raises(ValueError, match="TensorFlow backend"):
        resumable_fit(model, dataset, epochs=1)


@pytest.mark.skipif(keras.backend.backend() != "jax", reason="JAX only")
def test_decode_out_of_range_under_jax_jit_follows_the_stated_rule():
    import jax

    # Eager calls raise; under jit the docstring's rule: NaN boxes for bins
    # outside [0, num_bins), the others decoded normally.
    with pytest.raises(ValueError, match="bin_indices"):
        SPACE.decode(np.array([SPACE.num_bins], "int32"))
    boxes = np.asarray(
        jax.jit(SPACE.decode)(np.array([0, SPACE.num_bins, -1], "int32"))
    )
    assert np.all(np.isfinite(boxes[0]))
    assert np.all(np.isnan(boxes[1:]))
