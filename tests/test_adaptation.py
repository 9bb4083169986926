import time

import keras
import numpy as np
import pytest

import keras_objectness
from keras_objectness.adaptation import adapted_weights
from keras_objectness.layers import BackgroundHead

# A hand-made case: 2 features, 5 classes, B = (0, 2, 4), A = (1, 3).
# Classification columns W^c (one column per class):
#   c0 = (10, 0)  c1 = (1, 1.5)  c2 = (0, 1)  c3 = (-2, -1)  c4 = (-1, 0)
# After L2 normalisation c0 -> (1, 0) and c1 -> (0.5547, 0.8321), so the
# distances from c1 to c2, c0, c4 are 0.580, 0.943, 1.763: neighbours of
# class 1 are 2 then 0. (Without normalisation c4, at 2.5, would come before
# c0, at 9.12.) From c3 -> (-0.894, -0.447) the distances to c4, c2, c0 are
# 0.459, 1.701, 1.945: neighbours of class 3 are 4 then 2.
W_C = np.array([[10.0, 1.0, 0.0, -2.0, -1.0], [0.0, 1.5, 1.0, -1.0, 0.0]])
B_C = np.array([0.1, 0.2, 0.3, 0.4, 0.5])
# Fine-tuned B columns: offsets d0 = (1, 0), d2 = (0, 2), d4 = (3, 3) and
# bias offsets 0.5, -1, 2. The A columns hold values the adaptation must
# ignore (it starts from W^c).
W_D = np.array([[11.0, 100.0, 0.0, 100.0, 2.0], [0.0, 100.0, 3.0, 100.0, 3.0]])
B_D = np.array([0.6, 100.0, -0.7, 100.0, 2.5])
B = (0, 2, 4)


def _adapt(knn):
    kernel, bias = adapted_weights(W_C, B_C, W_D, B_D, B, knn=knn)
    return keras.ops.convert_to_numpy(kernel), keras.ops.convert_to_numpy(bias)


def test_k1_by_hand():
    kernel, bias = _adapt(1)
    # class 1 + d2 = (1, 3.5), 0.2 - 1; class 3 + d4 = (1, 2), 0.4 + 2.
    np.testing.assert_allclose(
        kernel, [[11, 1, 0, 1, 2], [0, 3.5, 3, 2, 3]], atol=1e-6
    )
    np.testing.assert_allclose(bias, [0.6, -0.8, -0.7, 2.4, 2.5], atol=1e-6)


def test_k2_by_hand():
    kernel, bias = _adapt(2)
    # class 1 + (d2 + d0) / 2 = (1, 1.5) + (0.5, 1); 0.2 + (-1 + 0.5) / 2.
    # class 3 + (d4 + d2) / 2 = (-2, -1) + (1.5, 2.5); 0.4 + (2 - 1) / 2.
    np.testing.assert_allclose(
        kernel, [[11, 1.5, 0, -0.5, 2], [0, 2.5, 3, 1.5, 3]], atol=1e-6
    )
    np.testing.assert_allclose(bias, [0.6, -0.05, -0.7, 0.9, 2.5], atol=1e-6)


def test_all_by_hand():
    kernel, bias = _adapt("all")
    # Mean offset (4/3, 5/3), bias 0.5, for both held-out classes.
    np.testing.assert_allclose(
        kernel,
        [[11, 7 / 3, 0, -2 / 3, 2], [0, 19 / 6, 3, 2 / 3, 3]],
        atol=1e-6,
    )
    np.testing.assert_allclose(bias, [0.6, 0.7, -0.7, 0.9, 2.5], atol=1e-6)


def test_k_equal_to_b_is_the_average():
    np.testing.assert_allclose(_adapt(3)[0], _adapt("all")[0], atol=1e-6)
    np.testing.assert_allclose(_adapt(3)[1], _adapt("all")[1], atol=1e-6)


def _reference(w_c, b_c, w_d, b_d, b_ids, knn):
    """A plain loop over the held-out classes, straight from the paper."""
    kernel, bias = w_d.copy(), b_d.copy()
    unit = w_c / np.linalg.norm(w_c, axis=0, keepdims=True)
    b_ids = np.asarray(b_ids)
    for j in sorted(set(range(w_c.shape[1])) - set(b_ids.tolist())):
        distances = np.linalg.norm(unit[:, b_ids] - unit[:, [j]], axis=0)
        near = b_ids[np.argsort(distances, kind="stable")[:knn]]
        kernel[:, j] = w_c[:, j] + np.mean(w_d[:, near] - w_c[:, near], 1)
        bias[j] = b_c[j] + np.mean(b_d[near] - b_c[near])
    return kernel, bias


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_a_loop_over_classes(seed):
    rng = np.random.default_rng(seed)
    features, num_classes = 7, 30
    w_c = rng.normal(size=(features, num_classes))
    b_c = rng.normal(size=(num_classes,))
    w_d = w_c + rng.normal(size=w_c.shape)
    b_d = b_c + rng.normal(size=b_c.shape)
    b_ids = np.sort(rng.choice(num_classes, 11, replace=False))
    for knn in (1, 4, 11):
        kernel, bias = adapted_weights(
            w_c, b_c, w_d, b_d, tuple(b_ids.tolist()), knn=knn
        )
        expected_kernel, expected_bias = _reference(
            w_c, b_c, w_d, b_d, b_ids, knn
        )
        np.testing.assert_allclose(kernel, expected_kernel, atol=1e-5)
        np.testing.assert_allclose(bias, expected_bias, atol=1e-5)


def test_fast_at_twenty_thousand_classes():
    rng = np.random.default_rng(0)
    features, num_classes = 256, 20_000
    w_c = rng.normal(size=(features, num_classes)).astype("float32")
    b_c = rng.normal(size=(num_classes,)).astype("float32")
    w_d = w_c + rng.normal(size=w_c.shape).astype("float32")
    b_d = b_c + 1.0
    b_ids = np.sort(rng.choice(num_classes, 10_000, replace=False))
    start = time.perf_counter()
    kernel, bias = adapted_weights(w_c, b_c, w_d, b_d, b_ids.tolist(), knn=5)
    kernel = keras.ops.convert_to_numpy(kernel)
    seconds = time.perf_counter() - start
    # About 3 s on 2 busy cores; a loop over 10,000 classes takes minutes.
    assert seconds < 20, seconds
    # Spot-check three held-out classes against the paper's formula.
    a_ids = np.setdiff1d(np.arange(num_classes), b_ids)
    unit = w_c / np.linalg.norm(w_c, axis=0, keepdims=True)
    for j in a_ids[[0, 4321, -1]]:
        distances = np.linalg.norm(unit[:, b_ids] - unit[:, [j]], axis=0)
        near = b_ids[np.argsort(distances)[:5]]
        expected = w_c[:, j] + np.mean(w_d[:, near] - w_c[:, near], axis=1)
        np.testing.assert_allclose(kernel[:, j], expected, atol=1e-4)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(bias)[a_ids], b_c[a_ids] + 1.0, atol=1e-5
    )
    np.testing.assert_array_equal(kernel[:, b_ids], w_d[:, b_ids])


def test_adapted_weights_bad_arguments():
    with pytest.raises(ValueError, match="`detection_classes`"):
        adapted_weights(W_C, B_C, W_D, B_D, (), knn=1)
    with pytest.raises(ValueError, match="`detection_classes`"):
        adapted_weights(W_C, B_C, W_D, B_D, (0, 1, 2, 3, 4), knn=1)
    with pytest.raises(ValueError, match="`detection_classes`"):
        adapted_weights(W_C, B_C, W_D, B_D, (0, 5), knn=1)
    with pytest.raises(ValueError, match="`detection_classes`"):
        adapted_weights(W_C, B_C, W_D, B_D, (0, 0, 2), knn=1)
    with pytest.raises(ValueError, match="`detection_classes`"):
        adapted_weights(W_C, B_C, W_D, B_D, (0.0, 2.0), knn=1)
    for knn in (0, 4, -1, True, 2.0, "two", None):
        with pytest.raises(ValueError, match="`knn` must be"):
            adapted_weights(W_C, B_C, W_D, B_D, B, knn=knn)
    with pytest.raises(ValueError, match="`detection_bias`"):
        adapted_weights(W_C, B_C, W_D, B_D[:4], B, knn=1)
    with pytest.raises(ValueError, match="`detection_kernel`"):
        adapted_weights(W_C, B_C, W_D[:1], B_D, B, knn=1)
    with pytest.raises(ValueError, match="`classification_kernel`"):
        adapted_weights(W_C[0], B_C, W_D, B_D, B, knn=1)


def _head_model():
    """Features -> BackgroundHead with the hand-made weights, snapshot set."""
    head = BackgroundHead(5, B, name="head")
    features = keras.Input((2,))
    model = keras.Model(features, head(features))
    head.kernel.assign(
        np.concatenate([W_C, [[0.25], [-0.5]]], axis=1).astype("float32")
    )
    head.bias.assign(np.append(B_C, 0.75).astype("float32"))
    head.take_snapshot()
    head.kernel.assign(
        np.concatenate([W_D, [[0.25], [-0.5]]], axis=1).astype("float32")
    )
    head.bias.assign(np.append(B_D, 0.75).astype("float32"))
    return model, head


def test_adapt_classifier_in_place_and_idempotent():
    model, head = _head_model()
    assert keras_objectness.adapt_classifier(model, knn=2) is model
    kernel = keras.ops.convert_to_numpy(head.kernel)
    bias = keras.ops.convert_to_numpy(head.bias)
    expected_kernel, expected_bias = _adapt(2)
    np.testing.assert_allclose(kernel[:, :5], expected_kernel, atol=1e-6)
    np.testing.assert_allclose(bias[:5], expected_bias, atol=1e-6)
    # The background column and bias are untouched.
    np.testing.assert_array_equal(kernel[:, 5], [0.25, -0.5])
    assert bias[5] == 0.75
    # Recomputed from the snapshot: a second call changes nothing.
    keras_objectness.adapt_classifier(model, knn=2)
    np.testing.assert_array_equal(head.kernel.numpy(), kernel)
    np.testing.assert_array_equal(head.bias.numpy(), bias)
    # ...and a different k recomputes from W^c, not from the adapted values.
    keras_objectness.adapt_classifier(model, knn=1)
    np.testing.assert_allclose(head.kernel.numpy()[:, :5], _adapt(1)[0])


def test_adapt_classifier_without_output_layer_adaptation():
    model, head = _head_model()
    keras_objectness.adapt_classifier(model, knn=2)
    keras_objectness.adapt_classifier(model, adapt_output_layer=False)
    kernel = keras.ops.convert_to_numpy(head.kernel)
    bias = keras.ops.convert_to_numpy(head.bias)
    expected_kernel = W_D.copy()
    expected_kernel[:, [1, 3]] = W_C[:, [1, 3]]
    np.testing.assert_allclose(kernel[:, :5], expected_kernel, atol=1e-6)
    np.testing.assert_allclose(
        bias, [0.6, 0.2, -0.7, 0.4, 2.5, 0.75], atol=1e-6
    )


def test_adapt_classifier_finds_the_head_in_nested_models():
    inner, head = _head_model()
    features = keras.Input((2,))
    outer = keras.Model(features, keras.layers.Identity()(inner(features)))
    keras_objectness.adapt_classifier(outer, knn="all")
    np.testing.assert_allclose(
        head.kernel.numpy()[:, :5], _adapt("all")[0], atol=1e-6
    )


def test_adapt_classifier_errors():
    model, head = _head_model()
    features = keras.Input((2,))
    plain = keras.Model(features, keras.layers.Dense(3)(features))
    with pytest.raises(ValueError, match="exactly one `BackgroundHead`"):
        keras_objectness.adapt_classifier(plain)
    two = keras.Model(
        features,
        [model(features), BackgroundHead(5, B, name="other")(features)],
    )
    with pytest.raises(ValueError, match="exactly one `BackgroundHead`"):
        keras_objectness.adapt_classifier(two)
    with pytest.raises(ValueError, match="must be built"):
        keras_objectness.adapt_classifier(BackgroundHead(5, B))
    for knn in (0, 4, "nearest", 1.5, False):
        with pytest.raises(ValueError, match="`knn` must be"):
            keras_objectness.adapt_classifier(model, knn=knn)
    with pytest.raises(ValueError, match="`adapt_output_layer`"):
        keras_objectness.adapt_classifier(model, adapt_output_layer="no")
    oracle = BackgroundHead(5, (0, 1, 2, 3, 4))
    oracle(np.zeros((1, 2), "float32"))
    oracle.take_snapshot()
    with pytest.raises(ValueError, match="no held-out class"):
        keras_objectness.adapt_classifier(oracle, knn=1)
    fresh = BackgroundHead(5, B)
    fresh(np.zeros((1, 2), "float32"))
    with pytest.raises(ValueError, match="no snapshot"):
        keras_objectness.adapt_classifier(fresh, knn=1)
    # Failed calls left the weights alone.
    np.testing.assert_array_equal(head.kernel.numpy()[:, :5], W_D)
