import zipfile

import keras
import numpy as np
import pytest

from keras_objectness.class_split import ClassSplit
from keras_objectness.layers import BackgroundHead
from keras_objectness.layers.background_head import large_negative
from tests.test_case import TestCase

K = 5
B = (0, 3)
A = [1, 2, 4]


def _features(count=4, features=6, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(count, features)).astype("float32")


def _numpy_logits(layer, x):
    kernel = keras.ops.convert_to_numpy(layer.kernel).astype("float64")
    bias = keras.ops.convert_to_numpy(layer.bias).astype("float64")
    return x.astype("float64") @ kernel + bias


@pytest.fixture
def restore_policy():
    policy = keras.config.dtype_policy()
    yield
    keras.config.set_dtype_policy(policy)


class TestBackgroundHead(TestCase):
    def test_weights_and_shapes(self):
        layer = BackgroundHead(
            K, B, kernel_initializer="ones", background_initializer="zeros"
        )
        y = keras.ops.convert_to_numpy(layer(_features()))
        assert y.shape == (4, K + 1)
        np.testing.assert_allclose(y.sum(-1), 1.0, atol=1e-6)
        assert [w.name for w in layer.trainable_weights] == ["kernel", "bias"]
        assert [tuple(w.shape) for w in layer.trainable_weights] == [
            (6, K + 1),
            (K + 1,),
        ]
        assert [
            (w.name, tuple(w.shape)) for w in layer.non_trainable_weights
        ] == [
            ("classification_kernel", (6, K)),
            ("classification_bias", (K,)),
            ("snapshot_taken", ()),
        ]
        assert layer.count_params() == 6 * (K + 1) + (K + 1) + 6 * K + K + 1
        kernel = keras.ops.convert_to_numpy(layer.kernel)
        # Class columns from kernel_initializer, background (last) column
        # from background_initializer.
        np.testing.assert_array_equal(kernel[:, :K], 1.0)
        np.testing.assert_array_equal(kernel[:, K], 0.0)
        assert layer.detection_classes == B
        assert layer.heldout_classes == tuple(A)
        assert not layer.has_snapshot

    def test_output_modes(self):
        x = _features(seed=1)
        init = keras.initializers.RandomNormal(seed=3)
        layers = {
            mode: BackgroundHead(
                K,
                B,
                output_mode=mode,
                kernel_initializer=init,
                bias_initializer=keras.initializers.RandomNormal(seed=4),
                background_initializer=keras.initializers.RandomNormal(seed=5),
            )
            for mode in ("probabilities", "logits", "scores")
        }
        outputs = {
            mode: keras.ops.convert_to_numpy(layer(x))
            for mode, layer in layers.items()
        }
        logits = _numpy_logits(layers["logits"], x)
        np.testing.assert_allclose(outputs["logits"], logits, atol=1e-5)
        np.testing.assert_allclose(
            outputs["probabilities"],
            keras.ops.softmax(logits.astype("float32")),
            atol=1e-6,
        )
        # LSDA scores: w_i.x + b_i - (w_bg.x + b_bg), for the K classes.
        kernel = keras.ops.convert_to_numpy(layers["scores"].kernel)
        bias = keras.ops.convert_to_numpy(layers["scores"].bias)
        expected = np.stack(
            [
                x @ kernel[:, i] + bias[i] - (x @ kernel[:, K] + bias[K])
                for i in range(K)
            ],
            axis=1,
        )
        assert outputs["scores"].shape == (4, K)
        np.testing.assert_allclose(outputs["scores"], expected, atol=1e-5)
        for mode, layer in layers.items():
            assert layer.compute_output_shape((None, 6)) == (
                (None, K) if mode == "scores" else (None, K + 1)
            )
            symbolic = layer(keras.Input((6,)))
            assert symbolic.shape == (None,) + outputs[mode].shape[1:]
            assert symbolic.dtype == "float32"

    def test_training_masks_held_out_classes(self):
        x = _features(seed=2)
        layer = BackgroundHead(K, B, bias_initializer="ones")
        inference = keras.ops.convert_to_numpy(layer(x, training=False))
        training = keras.ops.convert_to_numpy(layer(x, training=True))
        assert np.all(inference[:, A] > 0)
        np.testing.assert_array_equal(training[:, A], 0.0)
        np.testing.assert_allclose(training.sum(-1), 1.0, atol=1e-6)
        # The softmax over B and background alone.
        keep = list(B) + [K]
        logits = _numpy_logits(layer, x)[:, keep].astype("float32")
        np.testing.assert_allclose(
            training[:, keep], keras.ops.softmax(logits), atol=1e-6
        )
        masked_logits = BackgroundHead(K, B, output_mode="logits")
        masked_logits.build((None, 6))
        masked_logits.set_weights(layer.get_weights())
        logits = keras.ops.convert_to_numpy(masked_logits(x, training=True))
        assert np.all(np.isfinite(logits))
        np.testing.assert_array_equal(logits[:, A], -1e9)

    def test_large_negative_is_dtype_aware(self):
        assert large_negative("float32") == -1e9
        assert large_negative("bfloat16") == -1e9
        value = np.float16(large_negative("float16"))
        assert np.isfinite(value) and value < -1e4

    @pytest.mark.parametrize("policy", [None, "mixed_float16"])
    def test_fit_step_leaves_held_out_columns_unchanged(
        self, policy, restore_policy
    ):
        if policy:
            keras.config.set_dtype_policy(policy)
        features = keras.Input((6,))
        hidden = keras.layers.Dense(8, activation="relu")(features)
        head = BackgroundHead(K, B, bias_initializer="random_normal")
        model = keras.Model(features, head(hidden))
        model.compile(
            optimizer=keras.optimizers.Adam(0.1),
            loss="sparse_categorical_crossentropy",
        )
        if policy:
            assert head.compute_dtype == "float16"
            assert isinstance(
                model.optimizer, keras.optimizers.LossScaleOptimizer
            )
        before = [keras.ops.convert_to_numpy(w) for w in head.weights]
        x = _features(count=8, seed=3)
        y = np.array([0, 3, K, 0, 3, K, 0, 3])  # B and background only
        model.fit(x, y, batch_size=8, epochs=1, verbose=0)
        kernel, bias = (keras.ops.convert_to_numpy(w) for w in head.weights[:2])
        np.testing.assert_array_equal(kernel[:, A], before[0][:, A])
        np.testing.assert_array_equal(bias[A], before[1][A])
        # The columns of B and the background did train.
        for column in B + (K,):
            assert not np.allclose(kernel[:, column], before[0][:, column])
            assert bias[column] != before[1][column]
        # Non-trainable snapshot weights are untouched by training.
        for after, old in zip(head.weights[2:], before[2:]):
            np.testing.assert_array_equal(after, old)

    @pytest.mark.parametrize("policy", [None, "mixed_float16"])
    def test_frozen_detection_classes_train_only_the_background(
        self, policy, restore_policy
    ):
        if policy:
            keras.config.set_dtype_policy(policy)
        features = keras.Input((6,))
        hidden = keras.layers.Dense(8, activation="relu")(features)
        head = BackgroundHead(
            K,
            B,
            bias_initializer="random_normal",
            background_initializer="random_normal",
            train_detection_classes=False,
        )
        model = keras.Model(features, head(hidden))
        model.compile(
            optimizer=keras.optimizers.Adam(0.1),
            loss="sparse_categorical_crossentropy",
        )
        before = [keras.ops.convert_to_numpy(w) for w in head.weights[:2]]
        x = _features(count=8, seed=4)
        # Identical outputs: freezing changes gradients, not values.
        unfrozen = BackgroundHead(K, B)
        unfrozen.build((None, 8))
        unfrozen.set_weights(head.get_weights())
        inner = keras.Model(features, hidden)
        np.testing.assert_array_equal(
            keras.ops.convert_to_numpy(head(inner(x), training=True)),
            keras.ops.convert_to_numpy(unfrozen(inner(x), training=True)),
        )
        y = np.array([0, 3, K, 0, 3, K, 0, 3])
        model.fit(x, y, batch_size=8, epochs=1, verbose=0)
        kernel, bias = (keras.ops.convert_to_numpy(w) for w in head.weights[:2])
        # Every class column (B and A) and bias is exactly unchanged.
        np.testing.assert_array_equal(kernel[:, :K], before[0][:, :K])
        np.testing.assert_array_equal(bias[:K], before[1][:K])
        # The background unit and the layer below it did train.
        assert not np.allclose(kernel[:, K], before[0][:, K])
        assert bias[K] != before[1][K]

    def test_take_snapshot(self):
        layer = BackgroundHead(K, B, bias_initializer="random_normal")
        with pytest.raises(ValueError, match="built"):
            layer.take_snapshot()
        layer(_features())
        kernel = keras.ops.convert_to_numpy(layer.kernel)
        bias = keras.ops.convert_to_numpy(layer.bias)
        layer.take_snapshot()
        assert layer.has_snapshot
        assert keras.ops.convert_to_numpy(layer.snapshot_taken) == 1
        layer.kernel.assign(kernel + 1.0)
        layer.bias.assign(bias + 1.0)
        np.testing.assert_array_equal(
            layer.classification_kernel.numpy(), kernel[:, :K]
        )
        np.testing.assert_array_equal(
            layer.classification_bias.numpy(), bias[:K]
        )

    def test_initialize_from_classifier(self):
        dense = keras.layers.Dense(K, bias_initializer="random_normal")
        dense.build((None, 6))
        layer = BackgroundHead(
            K,
            B,
            bias_initializer="ones",
            background_initializer="ones",
        )
        with pytest.raises(ValueError, match="built"):
            layer.initialize_from_classifier(dense)
        layer.build((None, 6))
        layer.initialize_from_classifier(dense)
        kernel = keras.ops.convert_to_numpy(layer.kernel)
        bias = keras.ops.convert_to_numpy(layer.bias)
        np.testing.assert_array_equal(kernel[:, :K], dense.kernel.numpy())
        np.testing.assert_array_equal(bias[:K], dense.bias.numpy())
        np.testing.assert_array_equal(kernel[:, K], 1.0)
        assert bias[K] == 1.0
        assert not layer.has_snapshot
        no_bias = keras.layers.Dense(K, use_bias=False)
        no_bias.build((None, 6))
        layer.initialize_from_classifier(no_bias)
        np.testing.assert_array_equal(layer.bias.numpy(), [0] * K + [1])
        wrong = keras.layers.Dense(K + 1)
        wrong.build((None, 6))
        with pytest.raises(ValueError, match=r"shape \(6, 5\)"):
            layer.initialize_from_classifier(wrong)
        with pytest.raises(ValueError, match="`dense_layer`"):
            layer.initialize_from_classifier(keras.layers.Dense(K))
        with pytest.raises(ValueError, match="`dense_layer`"):
            layer.initialize_from_classifier(np.zeros((6, K)))

    def test_accepts_a_class_split(self):
        split = ClassSplit(K, (3, 0))
        layer = BackgroundHead(K, split)
        assert layer.detection_classes == B
        assert BackgroundHead(K, [3, 0]).detection_classes == B
        with pytest.raises(ValueError, match="ClassSplit"):
            BackgroundHead(K + 1, split)

    def test_serialization(self):
        x = _features(seed=5)
        layer = BackgroundHead(
            K,
            B,
            output_mode="scores",
            kernel_initializer=keras.initializers.RandomNormal(seed=1),
            bias_initializer=keras.initializers.RandomUniform(seed=2),
            background_initializer=keras.initializers.Constant(0.5),
            train_detection_classes=False,
            name="head",
        )
        layer(x)
        layer.take_snapshot()
        snapshot = [w.numpy() for w in layer.non_trainable_weights]
        layer.kernel.assign(layer.kernel.numpy() * 2.0 - 0.1)
        config = layer.get_config()
        assert config["detection_classes"] == B
        assert config["background_initializer"]["class_name"] == "Constant"
        assert config["bias_initializer"]["class_name"] == "RandomUniform"
        restored = self.run_serialization_test(layer, [x])
        restored_layer = restored.get_layer("head")
        assert restored_layer.has_snapshot
        for actual, expected in zip(
            restored_layer.non_trainable_weights, snapshot
        ):
            np.testing.assert_array_equal(actual.numpy(), expected)
        np.testing.assert_array_equal(
            restored_layer.kernel.numpy(), layer.kernel.numpy()
        )
        assert restored_layer.output_mode == "scores"
        assert restored_layer.detection_classes == B
        assert restored_layer.train_detection_classes is False
        assert BackgroundHead(K, B).get_config()["train_detection_classes"]

    def test_bad_arguments(self):
        for num_classes in (0, -1, 2.0, True, None):
            with pytest.raises(ValueError, match="`num_classes`"):
                BackgroundHead(num_classes, (0,))
        for classes in ((), (0, 5), (-1,), (1, 1), "03", 3, (0.0,), None):
            with pytest.raises(ValueError, match="`detection_classes`"):
                BackgroundHead(K, classes)
        with pytest.raises(ValueError, match="`output_mode`"):
            BackgroundHead(K, B, output_mode="softmax")
        for value in (0, "no", None):
            with pytest.raises(ValueError, match="`train_detection_classes`"):
                BackgroundHead(K, B, train_detection_classes=value)
        with pytest.raises(ValueError, match="input_shape"):
            BackgroundHead(K, B)(np.zeros((2, 3, 4), "float32"))


class TestMaskHeldoutClasses(TestCase):
    def test_unmasked_training_matches_inference(self):
        x = _features(seed=6)
        layer = BackgroundHead(
            K, B, bias_initializer="ones", mask_heldout_classes=False
        )
        assert layer.mask_heldout_classes is False
        inference = keras.ops.convert_to_numpy(layer(x, training=False))
        training = keras.ops.convert_to_numpy(layer(x, training=True))
        np.testing.assert_array_equal(training, inference)
        assert np.all(training[:, A] > 0)
        # The default still masks A in training.
        masked = BackgroundHead(K, B)
        masked.build((None, 6))
        masked.set_weights(layer.get_weights())
        assert masked.mask_heldout_classes is True
        masked_training = keras.ops.convert_to_numpy(masked(x, training=True))
        np.testing.assert_array_equal(masked_training[:, A], 0.0)

    def test_unmasked_fit_trains_held_out_columns(self):
        features = keras.Input((6,))
        head = BackgroundHead(
            K, B, bias_initializer="random_normal", mask_heldout_classes=False
        )
        model = keras.Model(features, head(features))
        model.compile(
            optimizer=keras.optimizers.Adam(0.1),
            loss="sparse_categorical_crossentropy",
        )
        before = [keras.ops.convert_to_numpy(w) for w in head.weights[:2]]
        x = _features(count=8, seed=7)
        y = np.array([0, 3, K, 0, 3, K, 0, 3])  # B and background only
        model.fit(x, y, batch_size=8, epochs=1, verbose=0)
        kernel, bias = (keras.ops.convert_to_numpy(w) for w in head.weights[:2])
        # Unmasked, A takes probability mass and so gets a gradient.
        for column in A:
            assert not np.allclose(kernel[:, column], before[0][:, column])
            assert bias[column] != before[1][column]

    def test_serialization(self):
        x = _features(seed=8)
        layer = BackgroundHead(
            K,
            B,
            bias_initializer="random_normal",
            mask_heldout_classes=False,
            name="head",
        )
        layer(x)
        config = layer.get_config()
        assert config["mask_heldout_classes"] is False
        restored = self.run_serialization_test(layer, [x])
        assert restored.get_layer("head").mask_heldout_classes is False
        assert BackgroundHead(K, B).get_config()["mask_heldout_classes"]

    def test_files_without_the_argument_still_load(self, tmp_path):
        # A config (and a `.keras` file) written before the argument existed
        # has no "mask_heldout_classes" key: it loads with the old masking.
        config = BackgroundHead(K, B).get_config()
        del config["mask_heldout_classes"]
        assert BackgroundHead.from_config(config).mask_heldout_classes
        x = _features(seed=9)
        inputs = keras.Input((6,))
        head = BackgroundHead(K, B, bias_initializer="ones", name="head")
        model = keras.Model(inputs, head(inputs))
        path = tmp_path / "model.keras"
        model.save(path)
        old_path = tmp_path / "old.keras"
        with (
            zipfile.ZipFile(path) as source,
            zipfile.ZipFile(old_path, "w") as target,
        ):
            for item in source.infolist():
                data = source.read(item.filename)
                if item.filename == "config.json":
                    text = data.decode("utf-8")
                    assert text.count('"mask_heldout_classes": true') == 1
                    text = text.replace(', "mask_heldout_classes": true', "")
                    assert "mask_heldout_classes" not in text
                    data = text.encode("utf-8")
                target.writestr(item, data)
        restored = keras.saving.load_model(old_path, safe_mode=True)
        restored_head = restored.get_layer("head")
        assert restored_head.mask_heldout_classes is True
        np.testing.assert_array_equal(
            keras.ops.convert_to_numpy(restored_head(x, training=True))[:, A],
            0.0,
        )
        np.testing.assert_allclose(
            keras.ops.convert_to_numpy(restored(x)),
            keras.ops.convert_to_numpy(model(x)),
            atol=1e-6,
        )

    def test_bad_argument(self):
        for value in (0, 1, "no", None, np.array([True])):
            with pytest.raises(ValueError, match="`mask_heldout_classes`"):
                BackgroundHead(K, B, mask_heldout_classes=value)
