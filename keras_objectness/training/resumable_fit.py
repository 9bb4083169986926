"""`resumable_fit`: Keras training that resumes at any step, on any strategy.

Why not `model.fit` itself (Keras 3.15, TensorFlow 2.21):

* Under `tf.distribute.MultiWorkerMirroredStrategy`, `fit` fails while it
  builds the model from a distributed batch and again when it averages
  scalar metrics across workers (keras-team/keras#20585).
* `keras.callbacks.BackupAndRestore` resumes at the start of the epoch it
  was killed in, redoes that epoch's finished steps and does not restore the
  position of the input pipeline.

This loop is `fit` without those two gaps, and nothing else: each step runs
the compiled model's own `train_step` under `strategy.run` (the loss,
optimizer, loss scaling and metrics are the ones `compile` set up), Keras
callbacks (History, progress bar, TensorBoard, `DetectorAdapter`, ...) get
the same calls in the same order, and a `tf.train.Checkpoint` holds the
weights, optimizer slots, metric accumulators, step counter and the
`tf.data` iterator, so a run killed at any step continues as if it had
never stopped.
"""

import json
import os

import keras
import tensorflow as tf

from keras_objectness import _checks
from keras_objectness.training.cluster import worker_id


def resumable_fit(
    model,
    dataset,
    epochs=1,
    steps_per_epoch=None,
    callbacks=None,
    backup_dir=None,
    save_freq="epoch",
    delete_checkpoint=True,
    validation_data=None,
    validation_freq=1,
    verbose="auto",
):
    """Trains a compiled Keras model like `fit`, resuming at the exact step.

    TensorFlow backend only (a `ValueError` names it under other backends).
    The model must have been built and compiled under the strategy it trains
    with (`model.distribute_strategy`), as for `fit`. The dataset yields
    global batches (`(x, y)` or `(x, y, sample_weight)`); it is repeated and
    split among the replicas as `strategy.experimental_distribute_dataset`
    splits it with data sharding: every worker reads the dataset and keeps
    its rows of each global batch, so the replicas of one step together see
    exactly the global batch one device would.

    With `backup_dir`, every worker checkpoints its weights, optimizer,
    metric state, step and input-pipeline position to
    `backup_dir/worker-{task id}` every `save_freq` steps and at each epoch
    end, and a new call with the same arguments resumes from there: with op
    determinism on (`tf.config.experimental.enable_op_determinism()`), the
    final weights, optimizer state and history are bit-identical to an
    uninterrupted run. `backup_dir` must outlive the process (a persistent
    or shared disk); each worker only reads and writes its own folder.

    Args:
        model: a compiled `keras.Model`.
        dataset: a `tf.data.Dataset` of global batches. Its shuffling must be
            seeded for resumed runs to match uninterrupted ones.
        epochs: int. Number of epochs to train (0: build only, as `fit`).
        steps_per_epoch: optional int. Steps per epoch; defaults to the
            number of batches in the dataset (counted with one pass over it
            where filters hide it), which must then be finite.
        callbacks: optional list of `keras.callbacks.Callback`. Do not add
            `BackupAndRestore`: `backup_dir` replaces it.
        backup_dir: optional str. Folder for the resume checkpoints; no
            checkpoints without it.
        save_freq: `"epoch"` or int. Also checkpoint every `save_freq`
            steps (needs `backup_dir`).
        delete_checkpoint: bool. Remove this worker's checkpoints when
            training ends, as `BackupAndRestore` does, so that the next call
            starts afresh.
        validation_data: optional `tf.data.Dataset` of batches, evaluated
            in full at the end of every `validation_freq`-th epoch with the
            model's `test_step`; its results join the epoch's logs with a
            `val_` prefix, as in `fit`.
        validation_freq: int. Validate every this many epochs.
        verbose: `"auto"`, 0, 1 or 2, as for `fit`.

    Returns:
        The `keras.callbacks.History` of every epoch, including those run
        before a restart.

    Example:

    ```python
    strategy = tf.distribute.MultiWorkerMirroredStrategy()  # reads TF_CONFIG
    with strategy.scope():
        model = keras_objectness.models.objectness_detector(backbone, space)
        model.compile("adam", keras.losses.CategoricalCrossentropy())
    history = resumable_fit(
        model, dataset, epochs=8, backup_dir="gs://bucket/run/backup",
        save_freq=100, callbacks=[keras.callbacks.TensorBoard("logs")],
    )
    ```
    """
    if keras.backend.backend() != "tensorflow":
        raise ValueError(
            "`resumable_fit` needs the TensorFlow backend (it checkpoints "
            "through `tf.train.Checkpoint` and trains under a "
            "`tf.distribute` strategy); use `model.fit` with "
            "`keras.callbacks.BackupAndRestore` on other backends, or set "
            "`KERAS_BACKEND=tensorflow`. Received: "
            f"keras.backend.backend()={keras.backend.backend()!r}"
        )
    steps_per_epoch = _check_arguments(
        model,
        dataset,
        epochs,
        steps_per_epoch,
        callbacks,
        backup_dir,
        save_freq,
        validation_data,
        validation_freq,
    )
    strategy = model.distribute_strategy
    with strategy.scope():
        _build(model, dataset)
    # The input position must be checkpointed, and tf.distribute's own
    # distributed iterators cannot be: each worker iterates the dataset
    # locally, keeps its rows of every global batch and hands each local
    # replica its share.
    iterator = iter(_worker_rows(dataset.repeat(), strategy))
    train_batch = _distributed(model.train_step, model, strategy)

    # Takes the batch inside the graph: no host round trip per step.
    @tf.function
    def train_function(iterator):
        return train_batch(next(iterator))

    test_function = _distributed(model.test_step, model, strategy)

    step = tf.Variable(0, dtype="int64", trainable=False, name="step")
    history = keras.callbacks.History()
    manager = None
    past_epochs = []
    if backup_dir is not None:
        checkpoint = tf.train.Checkpoint(
            model=model,
            optimizer=model.optimizer,
            metrics=[v for metric in model.metrics for v in metric.variables],
            iterator=iterator,
            step=step,
        )
        folder = os.path.join(backup_dir, f"worker-{worker_id(strategy)}")
        resume_path = _agreed_checkpoint(folder, strategy)
        # Two kept: a worker killed while saving may lack the newest one.
        manager = tf.train.CheckpointManager(checkpoint, folder, max_to_keep=2)
        if resume_path is not None:
            checkpoint.restore(resume_path).assert_consumed()
            past_epochs = _read_history(folder)
    initial_step = int(step.numpy())
    initial_epoch, first_batch = divmod(initial_step, steps_per_epoch)
    past_epochs = past_epochs[:initial_epoch]

    callbacks = keras.callbacks.CallbackList(
        [history, *(callbacks or [])],
        add_progbar=verbose != 0,
        verbose=1 if verbose == "auto" else verbose,
        epochs=epochs,
        steps=steps_per_epoch,
        model=model,
    )
    model.stop_training = False
    callbacks.on_train_begin()
    for epoch, logs in enumerate(past_epochs):
        history.epoch.append(epoch)
        for key, value in logs.items():
            history.history.setdefault(key, []).append(value)

    epoch_logs = past_epochs[-1] if past_epochs else {}
    for epoch in range(initial_epoch, epochs):
        if first_batch == 0:
            # Resumed mid-epoch, the metric accumulators come from the
            # checkpoint instead.
            model.reset_metrics()
        callbacks.on_epoch_begin(epoch)
        logs = {}
        for batch in range(first_batch, steps_per_epoch):
            callbacks.on_train_batch_begin(batch)
            logs = _python(train_function(iterator))
            step.assign_add(1)
            callbacks.on_train_batch_end(batch, logs)
            at_epoch_end = batch == steps_per_epoch - 1
            if (
                manager is not None
                and save_freq != "epoch"
                and not at_epoch_end
                and int(step.numpy()) % save_freq == 0
            ):
                manager.save(checkpoint_number=step)
            if model.stop_training:
                break
        first_batch = 0
        epoch_logs = dict(logs)
        if validation_data is not None and (epoch + 1) % validation_freq == 0:
            model.reset_metrics()
            for batch in _worker_rows(validation_data, strategy):
                logs = _python(test_function(batch))
            epoch_logs.update({f"val_{k}": v for k, v in logs.items()})
        callbacks.on_epoch_end(epoch, epoch_logs)
        if manager is not None:
            past_epochs.append(epoch_logs)
            # The history first: a checkpoint never lacks its epochs' logs.
            _write_history(manager.directory, past_epochs)
            manager.save(checkpoint_number=step)
        if model.stop_training:
            break

    if epochs > initial_epoch:
        model.optimizer.finalize_variable_values(model.trainable_variables)
    callbacks.on_train_end(epoch_logs)
    if (
        manager is not None
        and delete_checkpoint
        and tf.io.gfile.exists(manager.directory)
    ):
        tf.io.gfile.rmtree(manager.directory)
    model.history = history
    return history


def _agreed_checkpoint(folder, strategy):
    """The newest checkpoint step that every worker has, or None.

    Without one, the folder's leftovers (say, of a run whose other workers
    lost theirs) are removed so that they cannot be picked up later.
    """
    state = tf.train.get_checkpoint_state(folder)
    paths = state.all_model_checkpoint_paths if state else []
    saved = {int(path.rsplit("-", 1)[1]): path for path in paths}
    agreed = _minimum_over_workers(max(saved, default=0), strategy)
    if agreed == 0:
        if tf.io.gfile.exists(folder):
            tf.io.gfile.rmtree(folder)
        return None
    if agreed not in saved:
        raise ValueError(
            f"Cannot resume: the other workers resume at step {agreed}, but "
            f"{folder} has no checkpoint of that step (it has "
            f"{sorted(saved)}). Were the workers' backup folders mixed up?"
        )
    return saved[agreed]


def _minimum_over_workers(value, strategy):
    if strategy.num_replicas_in_sync == _local_replicas(strategy):
        return value
    values = strategy.experimental_distribute_values_from_function(
        lambda context: tf.constant([value], "int64")
    )
    return int(tf.reduce_min(strategy.gather(values, axis=0)))


def _check_arguments(
    model,
    dataset,
    epochs,
    steps_per_epoch,
    callbacks,
    backup_dir,
    save_freq,
    validation_data,
    validation_freq,
):
    if not isinstance(model, keras.Model):
        raise TypeError(
            f"`model` must be a keras.Model. Received: model={model!r}"
        )
    if getattr(model, "optimizer", None) is None:
        raise ValueError(
            "`model` must be compiled (with an optimizer and a loss) before "
            "`resumable_fit`."
        )
    if not isinstance(dataset, tf.data.Dataset):
        raise TypeError(
            "`dataset` must be a tf.data.Dataset of batches. Received: "
            f"dataset={type(dataset).__name__}"
        )
    _check_batches(model, dataset)
    if not isinstance(epochs, int) or isinstance(epochs, bool) or epochs < 0:
        raise ValueError(
            "`epochs` must be a non-negative integer (0 only builds the "
            f"model). Received: epochs={epochs!r}"
        )
    if validation_data is not None and not isinstance(
        validation_data, tf.data.Dataset
    ):
        raise TypeError(
            "`validation_data` must be a tf.data.Dataset of batches or None. "
            f"Received: validation_data={type(validation_data).__name__}"
        )
    _checks.check_positive_int("validation_freq", validation_freq)
    if steps_per_epoch is None:
        cardinality = int(dataset.cardinality())
        if cardinality == tf.data.UNKNOWN_CARDINALITY:
            # Filters hide the length; one pass over the input finds it.
            cardinality = int(dataset.reduce(0, lambda count, _: count + 1))
        if cardinality <= 0:
            raise ValueError(
                "`steps_per_epoch` is required when the dataset is infinite "
                "or empty. Received: steps_per_epoch=None and a dataset of "
                f"cardinality {cardinality}"
            )
        steps_per_epoch = cardinality
    _checks.check_positive_int("steps_per_epoch", steps_per_epoch)
    for callback in callbacks or []:
        if isinstance(callback, keras.callbacks.BackupAndRestore):
            raise ValueError(
                "`callbacks` must not hold a BackupAndRestore: pass "
                "`backup_dir` instead, which also restores the step within "
                "the epoch and the input position."
            )
    if backup_dir is not None and not isinstance(
        backup_dir, (str, os.PathLike)
    ):
        raise TypeError(
            f"`backup_dir` must be a path or None. Received: {backup_dir!r}"
        )
    if save_freq != "epoch":
        _checks.check_positive_int("save_freq", save_freq)
        if backup_dir is None:
            raise ValueError(
                "`save_freq` needs a `backup_dir` to save to. Received: "
                f"save_freq={save_freq}, backup_dir=None"
            )
    return steps_per_epoch


def _check_batches(model, dataset):
    """Raises when the dataset's element spec cannot train `model`.

    Read from the spec, without iterating: batches must be `(x, y)` or
    `(x, y, sample_weight)` (`x` alone only without a compiled loss), and
    for a single output `y` must be one label per example or one value per
    output unit.
    """
    spec = dataset.element_spec
    has_loss = getattr(model, "loss", None) is not None
    if isinstance(spec, tuple) and len(spec) in (2, 3):
        y_spec = spec[1]
    elif not has_loss:
        return
    else:
        raise ValueError(
            "`dataset` must yield `(x, y)` or `(x, y, sample_weight)` batches "
            "for a model compiled with a loss. "
            f"Received: dataset with elements {spec}"
        )
    outputs = getattr(model, "outputs", None)
    single = outputs is not None and len(outputs) == 1
    if not isinstance(y_spec, tf.TensorSpec) or not single:
        return
    y_shape = tuple(y_spec.shape.as_list()) if y_spec.shape.rank else None
    out_shape = tuple(outputs[0].shape)
    if (
        y_shape is not None
        and len(y_shape) == len(out_shape) >= 2
        and y_shape[-1] not in (None, 1)
        and out_shape[-1] is not None
        and y_shape[-1] != out_shape[-1]
    ):
        raise ValueError(
            "`dataset`'s targets `y` must hold one label per example or one "
            f"value per output unit ({out_shape[-1]}). Received: y of shape "
            f"{y_shape} for a model output of shape {out_shape}"
        )


def _build(model, dataset):
    """Creates the model's, loss's, metrics' and optimizer's state.

    `fit` does this from a distributed batch, which is what fails under
    MultiWorkerMirroredStrategy; one local batch is enough, and running the
    compiled loss and metrics once (then resetting them) builds them
    through public methods.
    """
    if model.optimizer.built and all(m.built for m in model.metrics):
        return
    batch = next(iter(dataset.take(1)))
    x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(batch)
    y_pred = model(x, training=False)
    model.compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight)
    model.compute_metrics(x, y, y_pred, sample_weight=sample_weight)
    model.reset_metrics()
    model.optimizer.build(model.trainable_variables)


def _worker_rows(dataset, strategy):
    """This worker's rows of each global batch (all of them on one worker)."""
    local_replicas = _local_replicas(strategy)
    workers = strategy.num_replicas_in_sync // local_replicas
    if workers == 1:
        return dataset
    index = worker_id(strategy)
    return dataset.map(
        lambda *batch: _rows(batch, index, workers),
        num_parallel_calls=tf.data.AUTOTUNE,
    )


def _local_replicas(strategy):
    try:
        return len(strategy.extended.worker_devices)
    except RuntimeError:  # The default strategy: one replica.
        return 1


def _rows(batch, index, parts):
    """Part `index` of `parts` near-equal slices along the batch axis."""
    size = tf.shape(tf.nest.flatten(batch)[0])[0]
    start = index * size // parts
    stop = (index + 1) * size // parts
    batch = tf.nest.map_structure(lambda t: t[start:stop], batch)
    return batch[0] if len(batch) == 1 else batch


def _distributed(step_function, model, strategy):
    """A `tf.function` running `step_function` on every replica's rows."""
    if model.jit_compile:
        step_function = tf.function(step_function, jit_compile=True)
    local_replicas = _local_replicas(strategy)
    first_replica = worker_id(strategy) * local_replicas

    @tf.function(reduce_retracing=True)
    @tf.autograph.experimental.do_not_convert  # No Python control flow.
    def function(batch):
        per_replica = strategy.experimental_distribute_values_from_function(
            lambda context: _rows(
                (batch,),
                context.replica_id_in_sync_group - first_replica,
                local_replicas,
            )
        )
        logs = strategy.run(step_function, args=(per_replica,))
        # Each replica reports the running metric values; average them as
        # `fit` does.
        return {
            name: strategy.reduce("MEAN", value, axis=None)
            for name, value in logs.items()
        }

    return function


def _python(logs):
    return {name: float(value) for name, value in logs.items()}


def _history_path(folder):
    return os.path.join(folder, "history.json")


def _write_history(folder, epochs):
    path = _history_path(folder)
    tf.io.gfile.makedirs(folder)
    with tf.io.gfile.GFile(path + ".tmp", "w") as file:
        json.dump(epochs, file)
    tf.io.gfile.rename(path + ".tmp", path, overwrite=True)


def _read_history(folder):
    path = _history_path(folder)
    if not tf.io.gfile.exists(path):
        return []
    with tf.io.gfile.GFile(path) as file:
        return json.load(file)
