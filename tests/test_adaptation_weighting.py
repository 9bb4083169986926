"""Chunked adaptation and similarity-weighted neighbour offsets."""

import keras
import numpy as np
import pytest
from keras import ops

import keras_objectness
from keras_objectness.adaptation import adapted_weights
from keras_objectness.adaptation import automatic_chunk_size
from tests.test_adaptation import B_C
from tests.test_adaptation import B_D
from tests.test_adaptation import W_C
from tests.test_adaptation import W_D
from tests.test_adaptation import B
from tests.test_adaptation import _head_model

W_C32, W_D32, B_D32 = (x.astype("float32") for x in (W_C, W_D, B_D))


def _numpy(pair):
    return tuple(ops.convert_to_numpy(x) for x in pair)


def _random_case(seed, features=6, num_classes=31, b_ids=None):
    rng = np.random.default_rng(seed)
    w_c = rng.normal(size=(features, num_classes)).astype("float32")
    b_c = rng.normal(size=(num_classes,)).astype("float32")
    w_d = w_c + rng.normal(size=w_c.shape).astype("float32")
    b_d = b_c + rng.normal(size=b_c.shape).astype("float32")
    if b_ids is None:
        b_ids = np.sort(rng.choice(num_classes, 9, replace=False))
    return w_c, b_c, w_d, b_d, tuple(int(i) for i in b_ids)


def _old_adapted_weights(w_c, b_c, w_d, b_d, b_ids, knn):
    """The unchunked implementation this module replaced (uniform only)."""
    w_c, b_c, w_d, b_d = (
        ops.cast(ops.convert_to_tensor(x), "float32")
        for x in (w_c, b_c, w_d, b_d)
    )
    num_classes = int(w_c.shape[1])
    b_ids = np.asarray(b_ids, "int32")
    a_ids = np.setdiff1d(np.arange(num_classes), b_ids).astype("int32")
    w_c_full = ops.concatenate([w_c, b_c[None, :]], axis=0)
    w_d_full = ops.concatenate([w_d, b_d[None, :]], axis=0)
    offsets = ops.take(w_d_full - w_c_full, b_ids, axis=1)
    w_c_a = ops.take(w_c_full, a_ids, axis=1)
    if knn == "all":
        adapted_a = w_c_a + ops.mean(offsets, axis=1, keepdims=True)
    else:
        norms = ops.sqrt(ops.sum(ops.square(w_c), axis=0, keepdims=True))
        unit = w_c / ops.maximum(norms, keras.config.epsilon())
        unit_a = ops.take(unit, a_ids, axis=1)
        unit_b = ops.take(unit, b_ids, axis=1)
        half = 0.5 * ops.sum(ops.square(unit_b), axis=0, keepdims=True)
        similarity = ops.matmul(
            ops.transpose(
                ops.concatenate([unit_a, ops.ones_like(unit_a[:1])], axis=0)
            ),
            ops.concatenate([unit_b, -half], axis=0),
        )
        _, neighbours = ops.top_k(similarity, k=knn, sorted=True)
        gathered = ops.take(ops.transpose(offsets), neighbours, axis=0)
        adapted_a = w_c_a + ops.transpose(ops.mean(gathered, axis=1))
    full = np.zeros((w_c.shape[0] + 1, num_classes), "float32")
    full[:, b_ids] = ops.convert_to_numpy(ops.take(w_d_full, b_ids, axis=1))
    full[:, a_ids] = ops.convert_to_numpy(adapted_a)
    return full[:-1], full[-1]


def _softmax(x, temperature):
    e = np.exp((x - np.max(x)) / temperature)
    return e / e.sum()


def _cosine(u, v):
    return float(u @ v / np.linalg.norm(u) / np.linalg.norm(v))


@pytest.mark.parametrize("knn", [1, 3, 9, "all"])
def test_uniform_equals_the_unchunked_formula(knn):
    for seed in (0, 1):
        w_c, b_c, w_d, b_d, b_ids = _random_case(seed, 33, 120)
        kernel, bias = _numpy(
            adapted_weights(w_c, b_c, w_d, b_d, b_ids, knn=knn)
        )
        old_kernel, old_bias = _old_adapted_weights(
            w_c, b_c, w_d, b_d, b_ids, knn
        )
        if knn == "all":
            # The mean over B is reduced along another axis: rounding only.
            np.testing.assert_allclose(kernel, old_kernel, atol=1e-6)
            np.testing.assert_allclose(bias, old_bias, atol=1e-6)
        else:
            np.testing.assert_array_equal(kernel, old_kernel)
            np.testing.assert_array_equal(bias, old_bias)


# B spread out, B in one block (chunks of B only, of A only, and mixed
# chunks with few or many B), and B at both ends.
_SPLITS = {
    "random": None,
    "block": tuple(range(8, 20)),
    "ends": (0, 1, 2, 27, 28, 29, 30),
}


@pytest.mark.parametrize("split", sorted(_SPLITS))
@pytest.mark.parametrize(
    "knn,weighting",
    [(1, "uniform"), (4, "uniform"), ("all", "uniform"), (4, "similarity")]
    + [("all", "similarity")],
)
def test_chunked_equals_unchunked(split, knn, weighting):
    w_c, b_c, w_d, b_d, b_ids = _random_case(3, b_ids=_SPLITS[split])
    args = (w_c, b_c, w_d, b_d, b_ids)
    whole = _numpy(
        adapted_weights(*args, knn=knn, weighting=weighting, chunk_size=10_000)
    )
    # 31 classes: 1, 2, 4, 7, 10 and 30 do not divide it.
    for chunk_size in (1, 2, 4, 7, 10, 16, 30, 31):
        kernel, bias = _numpy(
            adapted_weights(
                *args, knn=knn, weighting=weighting, chunk_size=chunk_size
            )
        )
        np.testing.assert_allclose(kernel, whole[0], atol=1e-6)
        np.testing.assert_allclose(bias, whole[1], atol=1e-6)
        # The columns of B are W^d, exactly.
        np.testing.assert_array_equal(kernel[:, list(b_ids)], w_d[:, b_ids])
        np.testing.assert_array_equal(bias[list(b_ids)], b_d[list(b_ids)])


def test_large_knn_runs_over_groups_of_neighbours():
    # knn above the 16 slots gathered at once: sums over several groups.
    w_c, b_c, w_d, b_d, b_ids = _random_case(
        4, num_classes=60, b_ids=range(0, 60, 2)
    )
    for weighting in ("uniform", "similarity"):
        grouped = _numpy(
            adapted_weights(
                w_c, b_c, w_d, b_d, b_ids, knn=30, weighting=weighting
            )
        )
        every = _numpy(
            adapted_weights(
                w_c, b_c, w_d, b_d, b_ids, knn="all", weighting=weighting
            )
        )
        np.testing.assert_allclose(grouped[0], every[0], atol=1e-5)
        np.testing.assert_allclose(grouped[1], every[1], atol=1e-5)


def test_similarity_weights_by_hand():
    # Class 1's two nearest classes of B are 2, then 0 (see
    # test_adaptation.py); its cosines to them are 0.832 and 0.555.
    temperature = 0.25
    kernel, bias = _numpy(
        adapted_weights(
            W_C,
            B_C,
            W_D,
            B_D,
            B,
            knn=2,
            weighting="similarity",
            temperature=temperature,
        )
    )
    cosines = [_cosine(W_C[:, 1], W_C[:, n]) for n in (2, 0)]
    np.testing.assert_allclose(cosines, [0.83205, 0.5547], atol=1e-5)
    w2, w0 = _softmax(np.array(cosines), temperature)
    assert w2 > 0.5 > w0  # the closer neighbour counts more
    d2, d0 = W_D[:, 2] - W_C[:, 2], W_D[:, 0] - W_C[:, 0]
    np.testing.assert_allclose(
        kernel[:, 1], W_C[:, 1] + w2 * d2 + w0 * d0, atol=1e-6
    )
    np.testing.assert_allclose(
        bias[1],
        B_C[1] + w2 * (B_D[2] - B_C[2]) + w0 * (B_D[0] - B_C[0]),
        atol=1e-6,
    )
    # Class 3: neighbours 4 then 2.
    cosines = [_cosine(W_C[:, 3], W_C[:, n]) for n in (4, 2)]
    w4, w2 = _softmax(np.array(cosines), temperature)
    np.testing.assert_allclose(
        kernel[:, 3],
        W_C[:, 3] + w4 * (W_D[:, 4] - W_C[:, 4]) + w2 * d2,
        atol=1e-6,
    )
    # B is W^d.
    np.testing.assert_array_equal(kernel[:, list(B)], W_D32[:, list(B)])
    np.testing.assert_array_equal(bias[list(B)], B_D32[list(B)])


def test_similarity_over_all_of_b_by_hand():
    temperature = 0.5
    kernel, bias = _numpy(
        adapted_weights(
            W_C,
            B_C,
            W_D,
            B_D,
            B,
            knn="all",
            weighting="similarity",
            temperature=temperature,
        )
    )
    for j in (1, 3):
        cosines = np.array([_cosine(W_C[:, j], W_C[:, n]) for n in B])
        weights = _softmax(cosines, temperature)
        offsets = W_D[:, list(B)] - W_C[:, list(B)]
        np.testing.assert_allclose(
            kernel[:, j], W_C[:, j] + offsets @ weights, atol=1e-6
        )
        bias_offsets = B_D[list(B)] - B_C[list(B)]
        np.testing.assert_allclose(
            bias[j], B_C[j] + bias_offsets @ weights, atol=1e-6
        )


@pytest.mark.parametrize("knn", [2, 9, "all"])
def test_similarity_weights_sum_to_one(knn):
    # Every class of B moved by the same offset: any weights that sum to
    # one move A by exactly that offset too.
    w_c, b_c, _, _, b_ids = _random_case(5)
    shift = np.linspace(-1, 1, w_c.shape[0]).astype("float32")
    w_d, b_d = w_c + shift[:, None], b_c + 0.5
    kernel, bias = _numpy(
        adapted_weights(
            w_c, b_c, w_d, b_d, b_ids, knn=knn, weighting="similarity"
        )
    )
    np.testing.assert_allclose(kernel, w_c + shift[:, None], atol=1e-5)
    np.testing.assert_allclose(bias, b_c + 0.5, atol=1e-5)


def test_temperature_limits():
    w_c, b_c, w_d, b_d, b_ids = _random_case(6)
    args = (w_c, b_c, w_d, b_d, b_ids)

    def similarity(knn, temperature):
        return _numpy(
            adapted_weights(
                *args, knn=knn, weighting="similarity", temperature=temperature
            )
        )

    # Hot: the uniform mean. Cold: the nearest neighbour alone.
    uniform = _numpy(adapted_weights(*args, knn=4))
    np.testing.assert_allclose(similarity(4, 1e6)[0], uniform[0], atol=1e-5)
    nearest = _numpy(adapted_weights(*args, knn=1))
    np.testing.assert_allclose(similarity(4, 1e-4)[0], nearest[0], atol=1e-5)
    # In between it is neither.
    middle = similarity(4, 0.1)[0]
    assert not np.allclose(middle, uniform[0], atol=1e-3)
    assert not np.allclose(middle, nearest[0], atol=1e-3)


def test_automatic_chunk_size():
    # About 256 MB per chunk: fewer classes with more features or more B.
    assert automatic_chunk_size(4096, 1000, 5) < automatic_chunk_size(
        1024, 1000, 5
    )
    assert automatic_chunk_size(4096, 50_000, 5) < automatic_chunk_size(
        4096, 1000, 5
    )
    per_class = 4 * (6 * 4096 + 3 * 1000 + 2 * 5 * 4097)
    assert automatic_chunk_size(4096, 1000, 5) == 2**28 // per_class
    assert automatic_chunk_size(10**9, 10**9, 5) == 1
    # Below the kernel's size for a small kernel, down to 16 MB.
    assert automatic_chunk_size(4096, 1000, 5, num_classes=100_000) == (
        automatic_chunk_size(4096, 1000, 5)
    )
    assert automatic_chunk_size(256, 100, "all", num_classes=2000) == (
        2**24 // (4 * (6 * 256 + 3 * 100))
    )


def test_adapt_classifier_similarity_and_chunks():
    model, head = _head_model()
    keras_objectness.adapt_classifier(
        model, knn=2, weighting="similarity", temperature=0.25, chunk_size=2
    )
    kernel = ops.convert_to_numpy(head.kernel)
    bias = ops.convert_to_numpy(head.bias)
    expected_kernel, expected_bias = _numpy(
        adapted_weights(
            W_C,
            B_C,
            W_D,
            B_D,
            B,
            knn=2,
            weighting="similarity",
            temperature=0.25,
        )
    )
    np.testing.assert_allclose(kernel[:, :5], expected_kernel, atol=1e-6)
    np.testing.assert_allclose(bias[:5], expected_bias, atol=1e-6)
    # B and the background are untouched.
    np.testing.assert_array_equal(kernel[:, list(B)], W_D32[:, list(B)])
    np.testing.assert_array_equal(kernel[:, 5], [0.25, -0.5])
    assert bias[5] == 0.75
    # Uniform again, recomputed from the snapshot.
    for chunk_size in (1, 3, None):
        keras_objectness.adapt_classifier(model, knn=2, chunk_size=chunk_size)
        np.testing.assert_allclose(
            ops.convert_to_numpy(head.kernel)[:, :5],
            _numpy(adapted_weights(W_C, B_C, W_D, B_D, B, knn=2))[0],
            atol=1e-6,
        )
    # Without output-layer adaptation A is W^c, in any chunking.
    keras_objectness.adapt_classifier(
        model, adapt_output_layer=False, chunk_size=2
    )
    kernel = ops.convert_to_numpy(head.kernel)
    np.testing.assert_array_equal(kernel[:, [1, 3]], W_C32[:, [1, 3]])
    np.testing.assert_array_equal(kernel[:, list(B)], W_D32[:, list(B)])


def test_bad_weighting_temperature_and_chunk_size():
    args = (W_C, B_C, W_D, B_D, B)
    model, head = _head_model()
    for bad in ("mean", "Uniform", None, 1):
        with pytest.raises(ValueError, match="`weighting` must be one of"):
            adapted_weights(*args, knn=2, weighting=bad)
        with pytest.raises(ValueError, match="`weighting` must be one of"):
            keras_objectness.adapt_classifier(model, weighting=bad)
    for bad in (0, -1.0, float("inf"), float("nan"), True, "0.1", None):
        with pytest.raises(ValueError, match="`temperature` must be"):
            adapted_weights(*args, knn=2, temperature=bad)
        with pytest.raises(ValueError, match="`temperature` must be"):
            keras_objectness.adapt_classifier(model, temperature=bad)
    for bad in (0, -3, 2.0, True, "4"):
        with pytest.raises(ValueError, match="`chunk_size` must be"):
            adapted_weights(*args, knn=2, chunk_size=bad)
        with pytest.raises(ValueError, match="`chunk_size` must be"):
            keras_objectness.adapt_classifier(model, chunk_size=bad)
    # Failed calls left the weights alone.
    np.testing.assert_array_equal(head.kernel.numpy()[:, :5], W_D)
