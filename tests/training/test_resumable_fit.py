"""`resumable_fit` in one process: like `fit`, resumable, strict on input."""

import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_objectness.training import is_chief
from keras_objectness.training import resumable_fit
from keras_objectness.training import worker_id


def _model(strategy=None):
    keras.utils.set_random_seed(0)
    with (strategy or tf.distribute.get_strategy()).scope():
        inputs = keras.Input((6,))
        x = keras.layers.Dense(8, activation="relu")(inputs)
        outputs = keras.layers.Dense(3, activation="softmax")(x)
        model = keras.Model(inputs, outputs)
        model.compile(
            keras.optimizers.Adam(0.01),
            "sparse_categorical_crossentropy",
            metrics=["accuracy"],
        )
    return model


def _dataset(count=24, batch_size=4):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(count, 6)).astype("float32")
    y = (x[:, 0] > 0).astype("int32") + (x[:, 1] > 1).astype("int32")
    return tf.data.Dataset.from_tensor_slices((x, y)).batch(batch_size)


def _weights(model):
    return [keras.ops.convert_to_numpy(w) for w in model.weights]


def test_matches_fit_on_one_device():
    validation = _dataset(count=10, batch_size=4)  # a partial last batch
    expected = _model()
    fit_history = expected.fit(
        _dataset(), epochs=3, validation_data=validation, verbose=0
    )
    actual = _model()
    history = resumable_fit(
        actual, _dataset(), epochs=3, validation_data=validation, verbose=0
    )
    # The same train_step on the same batches; fit may compile with XLA.
    for a, b in zip(_weights(actual), _weights(expected)):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)
    assert history.history.keys() == fit_history.history.keys()
    assert set(history.history) == {
        "loss",
        "accuracy",
        "val_loss",
        "val_accuracy",
    }
    for key, values in fit_history.history.items():
        np.testing.assert_allclose(history.history[key], values, rtol=1e-6)
    assert actual.history is history
    assert int(actual.optimizer.iterations.numpy()) == 3 * 6


def test_two_replicas_match_one_device():
    # ReductionToOneDevice: collective keys of two strategies in one process
    # collide.
    strategy = tf.distribute.MirroredStrategy(
        ["/cpu:0", "/cpu:1"],
        cross_device_ops=tf.distribute.ReductionToOneDevice(),
    )
    mirrored = _model(strategy)
    resumable_fit(mirrored, _dataset(), epochs=2, verbose=0)
    single = _model()
    resumable_fit(single, _dataset(), epochs=2, verbose=0)
    for a, b in zip(_weights(mirrored), _weights(single)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
    assert not np.allclose(_weights(single)[0], _weights(_model())[0])


def test_counts_the_steps_of_a_filtered_dataset():
    dataset = _dataset().unbatch().filter(lambda x, y: y < 2).batch(4)
    assert dataset.cardinality() == tf.data.UNKNOWN_CARDINALITY
    batches = sum(1 for _ in dataset)
    model = _model()
    resumable_fit(model, dataset, epochs=2, verbose=0)
    assert int(model.optimizer.iterations.numpy()) == 2 * batches


class _Crash(keras.callbacks.Callback):
    def __init__(self, step):
        super().__init__()
        self.step = step

    def on_train_batch_end(self, batch, logs=None):
        if int(self.model.optimizer.iterations.numpy()) == self.step:
            raise RuntimeError("crash")


def test_resumes_mid_epoch_with_shuffled_input(tmp_path):
    """A crash at step 10 of 18 (epoch 2 of 3), resumed from step 8."""
    backup = str(tmp_path / "backup")

    def dataset():
        # A new object per run, as in a new process: iterators of one
        # seeded shuffle draw new orders.
        return _dataset().unbatch().shuffle(24, seed=1).batch(4)

    expected = _model()
    expected_history = resumable_fit(expected, dataset(), epochs=3, verbose=0)

    crashed = _model()
    with pytest.raises(RuntimeError, match="crash"):
        resumable_fit(
            crashed,
            dataset(),
            epochs=3,
            backup_dir=backup,
            save_freq=4,
            callbacks=[_Crash(10)],
            verbose=0,
        )
    folder = os.path.join(backup, "worker-0")
    with open(os.path.join(folder, "history.json")) as file:
        assert len(json.load(file)) == 1  # epoch 1 finished before the crash
    resumed = _model()
    seen = []
    history = resumable_fit(
        resumed,
        dataset(),
        epochs=3,
        backup_dir=backup,
        save_freq=4,
        callbacks=[
            keras.callbacks.LambdaCallback(
                on_train_batch_begin=lambda batch, logs: seen.append(batch)
            )
        ],
        verbose=0,
    )
    # Steps 9..18: batches 2..5 of epoch 2 and all of epoch 3.
    assert seen == [2, 3, 4, 5, 0, 1, 2, 3, 4, 5]
    for a, b in zip(_weights(resumed), _weights(expected)):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(resumed.optimizer.variables, expected.optimizer.variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert history.history == expected_history.history
    assert history.epoch == [0, 1, 2]
    # Finished: the backup is gone, so the next call starts afresh.
    assert not os.path.exists(folder)


def test_zero_epochs_only_builds(tmp_path):
    model = _model()
    history = resumable_fit(
        model, _dataset(), epochs=0, backup_dir=str(tmp_path), verbose=0
    )
    assert history.history == {}
    assert model.optimizer.built
    assert int(model.optimizer.iterations.numpy()) == 0


def test_single_machine_worker_identity():
    assert worker_id() == 0
    assert is_chief()


def test_bad_arguments_raise(tmp_path):
    model = _model()
    with pytest.raises(TypeError, match="`model` must be a keras.Model"):
        resumable_fit("model", _dataset())
    with pytest.raises(ValueError, match="must be compiled"):
        resumable_fit(keras.Sequential([keras.layers.Dense(1)]), _dataset())
    with pytest.raises(TypeError, match="`dataset` must be a tf.data"):
        resumable_fit(model, np.zeros((4, 6)))
    with pytest.raises(TypeError, match="`validation_data` must be a tf"):
        resumable_fit(model, _dataset(), validation_data=(1, 2))
    with pytest.raises(ValueError, match="`validation_freq` must be a pos"):
        resumable_fit(model, _dataset(), validation_freq=0)
    with pytest.raises(ValueError, match="`epochs` must be a non-negative"):
        resumable_fit(model, _dataset(), epochs=-1)
    with pytest.raises(ValueError, match="`steps_per_epoch` is required"):
        resumable_fit(model, _dataset().repeat())
    with pytest.raises(ValueError, match="`steps_per_epoch` must be a pos"):
        resumable_fit(model, _dataset(), steps_per_epoch=0)
    with pytest.raises(ValueError, match="`save_freq` needs a `backup_dir`"):
        resumable_fit(model, _dataset(), save_freq=5)
    with pytest.raises(ValueError, match="`save_freq` must be a positive"):
        resumable_fit(model, _dataset(), backup_dir=str(tmp_path), save_freq=0)
    with pytest.raises(TypeError, match="`backup_dir` must be a path"):
        resumable_fit(model, _dataset(), backup_dir=3)
    backup = keras.callbacks.BackupAndRestore(str(tmp_path))
    with pytest.raises(ValueError, match="must not hold a BackupAndRestore"):
        resumable_fit(model, _dataset(), callbacks=[backup])
    # Nothing trained on the way.
    assert int(model.optimizer.iterations.numpy()) == 0
