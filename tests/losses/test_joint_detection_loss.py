import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_objectness.class_split import ClassSplit
from keras_objectness.layers import BackgroundHead
from keras_objectness.losses import JointDetectionLoss
from keras_objectness.losses import encode_classification_labels
from tests.gradients import compiled
from tests.gradients import gradients
from tests.gradients import variable_gradients
from tests.test_case import TestCase

K = 5
B = (0, 3)
A = [1, 2, 4]
BG = K


def _logits(count, seed=0, scale=2.0):
    rng = np.random.default_rng(seed)
    return (scale * rng.normal(size=(count, K + 1))).astype("float32")


def _softmax(z):
    z = z.astype("float64")
    z = z - z.max(-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(-1, keepdims=True)


def _expected(logits, labels, weight=1.0):
    """Hand-made joint cross entropy, float64."""
    logits = logits.astype("float64")
    out = []
    for z, y in zip(logits, labels):
        if y > K:
            kept, target = list(range(K)), y - K - 1
            factor = weight
        else:
            kept, target = list(B) + [BG], y
            factor = 1.0
        log_norm = np.log(np.exp(z[kept] - z[kept].max()).sum()) + z[kept].max()
        out.append(factor * (log_norm - z[target]))
    return np.array(out)


# Two regions of B, a background region, three classification examples.
LABELS = np.array([0, 3, BG, 6, 7, 10])


def _loss(**kwargs):
    return JointDetectionLoss(K, B, reduction="none", **kwargs)


def _gradient(loss, y_true, y_pred):
    _, (grad,) = gradients(lambda y: keras.ops.sum(loss(y_true, y)), [y_pred])
    return grad


class TestEncoding:
    def test_encode(self):
        assert encode_classification_labels(0, K) == K + 1
        assert encode_classification_labels(4, K) == 2 * K
        np.testing.assert_array_equal(
            encode_classification_labels([0, 2, 4], K), [6, 8, 10]
        )
        encoded = encode_classification_labels(
            np.array([1, 3], "int64"), num_classes=K
        )
        assert encoded.dtype == np.int64
        np.testing.assert_array_equal(encoded, [7, 9])
        loss = JointDetectionLoss(K, B)
        np.testing.assert_array_equal(
            loss.encode_classification_labels(np.array([1])), [7]
        )
        # Tensors (here inside a tf.data map) are encoded, not checked.
        dataset = tf.data.Dataset.from_tensor_slices(
            np.array([0, 4], "int32")
        ).map(lambda y: encode_classification_labels(y, K))
        assert [int(y) for y in dataset] == [6, 10]

    def test_bad_labels(self):
        for labels in (-1, K, [0, K], np.array([-2]), 1.0, [0.5], True):
            with pytest.raises(ValueError, match="`labels`"):
                encode_classification_labels(labels, K)
        for num_classes in (0, -1, 2.0, True, None):
            with pytest.raises(ValueError, match="`num_classes`"):
                encode_classification_labels(0, num_classes)


class TestJointDetectionLoss(TestCase):
    def test_equals_hand_computed_cross_entropies(self):
        logits = _logits(len(LABELS), seed=1)
        expected = _expected(logits, LABELS)
        from_logits = _loss(from_logits=True)(LABELS, logits)
        self.assertAllClose(from_logits, expected, atol=1e-5, rtol=1e-5)
        probabilities = _softmax(logits).astype("float32")
        from_probabilities = _loss()(LABELS, probabilities)
        self.assertAllClose(from_probabilities, expected, atol=1e-5, rtol=1e-5)
        # The renormalised classification term: -log p_y + log(1 - p_bg).
        p = probabilities.astype("float64")
        for row in (3, 4, 5):
            y = LABELS[row] - K - 1
            assert np.isclose(
                keras.ops.convert_to_numpy(from_probabilities)[row],
                -np.log(p[row, y]) + np.log(1 - p[row, BG]),
                atol=1e-5,
            )
        # The default reduction is the mean over the batch.
        mean = JointDetectionLoss(K, B, from_logits=True)(LABELS, logits)
        assert keras.ops.shape(mean) == ()
        self.assertAllClose(mean, expected.mean(), atol=1e-5, rtol=1e-5)

    def test_classification_weight(self):
        logits = _logits(len(LABELS), seed=2)
        weighted = _loss(from_logits=True, classification_weight=0.25)(
            LABELS, logits
        )
        self.assertAllClose(
            weighted, _expected(logits, LABELS, weight=0.25), atol=1e-5
        )
        nothing = _loss(from_logits=True, classification_weight=0)(
            LABELS, logits
        )
        np.testing.assert_array_equal(
            keras.ops.convert_to_numpy(nothing)[3:], 0.0
        )

    def test_sample_weights(self):
        logits = _logits(len(LABELS), seed=3)
        weights = np.array([1.0, 0.0, 2.0, 0.5, 0.0, 3.0], "float32")
        per_example = _expected(logits, LABELS)
        loss = JointDetectionLoss(K, B, from_logits=True)
        value = loss(LABELS, logits, sample_weight=weights)
        self.assertAllClose(
            value, (weights * per_example).sum() / len(LABELS), atol=1e-5
        )
        summed = JointDetectionLoss(K, B, from_logits=True, reduction="sum")(
            LABELS, logits, sample_weight=weights
        )
        self.assertAllClose(summed, (weights * per_example).sum(), atol=1e-4)

    def test_regions_of_images_are_rows_alike(self):
        # (images, regions, K + 1), as Fast R-CNN training gives: each
        # region's loss is its row's, weights per region.
        logits = _logits(len(LABELS), seed=5)
        weights = np.array([1.0, 0.0, 2.0, 0.5, 0.0, 3.0], "float32")
        per_example = _expected(logits, LABELS)
        loss = JointDetectionLoss(K, B, from_logits=True, reduction=None)
        per_region = loss(LABELS.reshape(2, 3), logits.reshape(2, 3, K + 1))
        assert tuple(per_region.shape) == (2, 3)
        self.assertAllClose(per_region, per_example.reshape(2, 3), atol=1e-5)
        mean = JointDetectionLoss(K, B, from_logits=True)(
            LABELS.reshape(2, 3, 1),
            logits.reshape(2, 3, K + 1),
            sample_weight=weights.reshape(2, 3),
        )
        self.assertAllClose(
            mean, (weights * per_example).sum() / len(LABELS), atol=1e-5
        )

    def test_mixed_batch_is_the_sum_of_its_parts(self):
        logits = _logits(len(LABELS), seed=4)
        loss = JointDetectionLoss(K, B, from_logits=True, reduction="sum")
        whole = loss(LABELS, logits)
        detection = loss(LABELS[:3], logits[:3])
        classification = loss(LABELS[3:], logits[3:])
        self.assertAllClose(whole, detection + classification, atol=1e-5)

    @pytest.mark.parametrize("from_logits", [True, False])
    def test_what_moves_and_what_must_not(self, from_logits):
        logits = _logits(len(LABELS), seed=5)
        y_pred = logits if from_logits else _softmax(logits).astype("float32")
        grad = _gradient(_loss(from_logits=from_logits), LABELS, y_pred)
        if from_logits:
            # Detection rows: nothing reaches A; classification rows:
            # nothing reaches the background. Exactly.
            np.testing.assert_array_equal(grad[:3][:, A], 0.0)
            np.testing.assert_array_equal(grad[3:, BG], 0.0)
            # The rest does get a gradient: softmax minus one-hot.
            expected = np.zeros_like(grad)
            for row, (z, y) in enumerate(zip(logits, LABELS)):
                kept = list(range(K)) if y > K else list(B) + [BG]
                target = y - K - 1 if y > K else y
                expected[row, kept] = _softmax(z[kept][None])[0]
                expected[row, target] -= 1
            np.testing.assert_allclose(grad, expected, atol=1e-6)
        else:
            # Through the softmax that made the probabilities, the gradient
            # to the logits of the masked outputs is zero up to rounding.
            _, (logit_grad,) = gradients(
                lambda z: keras.ops.sum(
                    _loss()(LABELS, keras.ops.softmax(z, axis=-1))
                ),
                [logits],
            )
            np.testing.assert_allclose(logit_grad[:3][:, A], 0.0, atol=1e-6)
            np.testing.assert_allclose(logit_grad[3:, BG], 0.0, atol=1e-6)
            assert np.abs(logit_grad[:3][:, list(B) + [BG]]).max() > 0.01
            assert np.abs(logit_grad[3:, :K]).max() > 0.01

    def test_head_columns_with_logits(self):
        # Through a BackgroundHead that does not mask: detection examples
        # give A's kernel columns and biases exactly zero gradient,
        # classification examples give the background exactly zero.
        rng = np.random.default_rng(6)
        x = rng.normal(size=(len(LABELS), 4)).astype("float32")
        head = BackgroundHead(
            K,
            B,
            output_mode="logits",
            bias_initializer="random_normal",
            background_initializer="random_normal",
            mask_heldout_classes=False,
        )
        head.build((None, 4))
        loss = JointDetectionLoss(K, B, from_logits=True)

        def head_gradients(rows):
            return variable_gradients(
                lambda: loss(LABELS[rows], head(x[rows], training=True)),
                [head.kernel, head.bias],
            )

        kernel, bias = head_gradients(slice(0, 3))
        np.testing.assert_array_equal(kernel[:, A], 0.0)
        np.testing.assert_array_equal(bias[A], 0.0)
        assert np.all(np.abs(kernel[:, list(B) + [BG]]).max(0) > 0)
        kernel, bias = head_gradients(slice(3, None))
        np.testing.assert_array_equal(kernel[:, BG], 0.0)
        assert bias[BG] == 0.0
        # Classes 1, 4 and 0 (A, A, B) are classification targets here.
        assert np.all(np.abs(kernel[:, [0, 1, 4]]).max(0) > 0)

    def test_fit_steps(self):
        # One `fit` step (compiled graph) per kind of batch.
        rng = np.random.default_rng(7)
        x = rng.normal(size=(3, 4)).astype("float32")
        inputs = keras.Input((4,))
        hidden = keras.layers.Dense(6, activation="tanh")(inputs)
        head = BackgroundHead(
            K,
            B,
            output_mode="logits",
            bias_initializer="random_normal",
            background_initializer="random_normal",
            mask_heldout_classes=False,
        )
        model = keras.Model(inputs, head(hidden))
        model.compile(
            keras.optimizers.SGD(0.5),
            JointDetectionLoss(K, B, from_logits=True),
        )
        before = [w.numpy() for w in head.trainable_weights]
        model.fit(x, LABELS[:3], batch_size=3, epochs=1, verbose=0)
        kernel, bias = [w.numpy() for w in head.trainable_weights]
        np.testing.assert_array_equal(kernel[:, A], before[0][:, A])
        np.testing.assert_array_equal(bias[A], before[1][A])
        assert not np.allclose(kernel[:, BG], before[0][:, BG])
        before = kernel, bias
        model.fit(x, LABELS[3:], batch_size=3, epochs=1, verbose=0)
        kernel, bias = [w.numpy() for w in head.trainable_weights]
        np.testing.assert_array_equal(kernel[:, BG], before[0][:, BG])
        assert bias[BG] == before[1][BG]
        for column in (0, 1, 4):
            assert not np.allclose(kernel[:, column], before[0][:, column])

    def test_label_shapes_and_dtypes(self):
        logits = _logits(len(LABELS), seed=8)
        expected = _expected(logits, LABELS)
        loss = _loss(from_logits=True)
        for y_true in (
            LABELS.astype("int64"),
            LABELS[:, None].astype("int32"),
            LABELS.astype("float32"),
            tf.constant(LABELS[:, None], tf.int64),
        ):
            self.assertAllClose(loss(y_true, logits), expected, atol=1e-5)
        # float16 and bfloat16 predictions: float32 arithmetic and output.
        for dtype in ("float16", "bfloat16"):
            value = loss(LABELS, keras.ops.cast(logits, dtype))
            assert keras.backend.standardize_dtype(value.dtype) == "float32"
            self.assertAllClose(value, expected, atol=0.05, rtol=0.02)

    def test_extreme_inputs_stay_finite(self):
        # Background probability near 1: 1 - p_bg would cancel in float32.
        p = np.full((2, K + 1), 1e-9, "float64")
        p[:, BG] = 1 - K * 1e-9
        p[1, 2] = 3e-9
        p /= p.sum(-1, keepdims=True)
        labels = encode_classification_labels(np.array([2, 2]), K)
        value = keras.ops.convert_to_numpy(_loss()(labels, p.astype("float32")))
        expected = -np.log(p[:, 2]) + np.log(p[:, :K].sum(-1))
        np.testing.assert_allclose(value, expected, rtol=1e-4)
        # ... and a gradient that favours the target among the classes.
        grad = _gradient(_loss(), labels, p.astype("float32"))
        assert np.all(grad[:, 2] < 0)
        assert np.all(grad[:, [0, 1, 3, 4]] > 0)
        np.testing.assert_array_equal(grad[:, BG], 0.0)
        # Huge logits, all kinds of example.
        logits = _logits(len(LABELS), seed=9, scale=1e4)
        value = _loss(from_logits=True)(LABELS, logits)
        assert np.all(np.isfinite(keras.ops.convert_to_numpy(value)))
        # Zero probabilities: clipped, finite.
        zeros = np.zeros((len(LABELS), K + 1), "float32")
        zeros[:, 0] = 1.0
        value = _loss()(LABELS, zeros)
        assert np.all(np.isfinite(keras.ops.convert_to_numpy(value)))

    def test_invalid_labels_raise_in_eager_mode(self):
        logits = _logits(3, seed=10)
        loss = JointDetectionLoss(K, B, from_logits=True)
        for bad in (1, 4, -1, 2 * K + 1):  # A as detection, out of range
            labels = np.array([0, bad, BG])
            with pytest.raises(ValueError, match=rf"invalid labels \[{bad}\]"):
                loss(labels, logits)
        with pytest.raises(ValueError, match="`y_true`"):
            loss(np.array([1, 2, 12]), logits)

    def test_invalid_labels_in_graphs_are_nan_without_gradient(self):
        logits = _logits(4, seed=11)
        labels = np.array([0, 2, 7, 11], "int32")  # A detection; too large
        loss = _loss(from_logits=True)
        # Compiled (`tf.function`, `jax.jit`): the labels cannot be read.
        total, (grad,) = gradients(
            lambda y_true, y_pred: keras.ops.mean(loss(y_true, y_pred)),
            [labels, logits],
            compiled=True,
            wrt=(1,),
        )
        values = compiled(loss)(labels, logits)
        assert np.isnan(values[[1, 3]]).all()
        np.testing.assert_allclose(
            values[[0, 2]],
            _expected(logits[[0, 2]], [0, 7]),
            atol=1e-5,
        )
        assert np.isnan(total)
        assert np.all(np.isfinite(grad))
        np.testing.assert_array_equal(grad[[1, 3]], 0.0)
        assert np.abs(grad[[0, 2]]).max() > 0

    def test_oracle_split(self):
        # B = all classes: detection examples use all K + 1 outputs.
        logits = _logits(2, seed=12)
        loss = JointDetectionLoss(K, tuple(range(K)), from_logits=True)
        assert loss.heldout_classes == ()
        value = keras.ops.convert_to_numpy(
            keras.ops.cast(
                JointDetectionLoss(
                    K, tuple(range(K)), from_logits=True, reduction="none"
                )(np.array([1, BG]), logits),
                "float64",
            )
        )
        z = logits.astype("float64")
        expected = np.log(np.exp(z).sum(-1)) - z[[0, 1], [1, BG]]
        np.testing.assert_allclose(value, expected, atol=1e-5)

    def test_accepts_a_class_split(self):
        loss = JointDetectionLoss(K, ClassSplit(K, (3, 0)))
        assert loss.detection_classes == B
        assert loss.heldout_classes == tuple(A)
        assert JointDetectionLoss(K, [3, 0]).detection_classes == B
        with pytest.raises(ValueError, match="ClassSplit"):
            JointDetectionLoss(K + 1, ClassSplit(K, B))

    def test_serialization(self, tmp_path):
        loss = JointDetectionLoss(
            K,
            B,
            classification_weight=0.5,
            from_logits=True,
            reduction="sum",
            name="joint",
        )
        config = self.assert_config_has_every_argument(loss)
        assert config["detection_classes"] == B
        assert config["classification_weight"] == 0.5
        assert config["from_logits"] is True
        assert config["dtype"] == "float32"
        rebuilt = JointDetectionLoss.from_config(config)
        assert rebuilt.get_config() == config
        restored = keras.losses.deserialize(keras.losses.serialize(loss))
        assert isinstance(restored, JointDetectionLoss)
        assert restored.get_config() == config
        logits = _logits(len(LABELS), seed=13)
        self.assertAllClose(
            restored(LABELS, logits), loss(LABELS, logits), atol=1e-6
        )
        # Inside a compiled model's `.keras` file, loaded with safe_mode.
        inputs = keras.Input((4,))
        head = BackgroundHead(K, B, output_mode="logits", name="head")
        model = keras.Model(inputs, head(inputs))
        model.compile("sgd", loss)
        path = tmp_path / "model.keras"
        model.save(path)
        loaded = keras.saving.load_model(path, safe_mode=True)
        assert isinstance(loaded.loss, JointDetectionLoss)
        assert loaded.loss.get_config() == config

    def test_bad_arguments(self):
        for num_classes in (0, -1, 2.0, True, None):
            with pytest.raises(ValueError, match="`num_classes`"):
                JointDetectionLoss(num_classes, (0,))
        for classes in ((), (0, 5), (-1,), (1, 1), 3, None):
            with pytest.raises(ValueError, match="`detection_classes`"):
                JointDetectionLoss(K, classes)
        for weight in (-0.1, float("nan"), float("inf"), True, "1", None):
            with pytest.raises(ValueError, match="`classification_weight`"):
                JointDetectionLoss(K, B, classification_weight=weight)
        for value in (0, 1, "yes", None):
            with pytest.raises(ValueError, match="`from_logits`"):
                JointDetectionLoss(K, B, from_logits=value)
        with pytest.raises(ValueError):
            JointDetectionLoss(K, B, reduction="average")
        loss = JointDetectionLoss(K, B)
        with pytest.raises(ValueError, match=r"`y_pred` must have shape"):
            loss(LABELS, np.zeros((len(LABELS), K), "float32"))
        # Region outputs (batch, regions, K + 1) need one label per region.
        with pytest.raises(ValueError, match="`y_true` must hold one label"):
            loss(LABELS, np.zeros((len(LABELS), 2, K + 1), "float32"))
        with pytest.raises(ValueError, match="`y_true` must hold one label"):
            loss(
                np.zeros((len(LABELS), 2), "int32"),
                np.zeros((len(LABELS), K + 1), "float32"),
            )
