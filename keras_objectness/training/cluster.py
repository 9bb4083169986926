"""Who this process is in a `tf.distribute` cluster, and data prepared once."""

import time

import tensorflow as tf
import tensorflow_datasets as tfds


def worker_id(strategy=None):
    """This process's index among the job's training processes, else 0.

    The order is tf.distribute's (the `chief` task first, where there is
    one, then the workers by index), the order of the replicas' ids.

    Args:
        strategy: optional `tf.distribute.Strategy`. Its cluster resolver
            is read, or `TF_CONFIG` without one.
    """
    resolver = _resolver(strategy)
    cluster = resolver.cluster_spec().as_dict()
    if not cluster or resolver.task_type == "chief":
        return 0
    return (resolver.task_id or 0) + ("chief" in cluster)


def is_chief(strategy=None):
    """Whether this process writes the job's shared outputs.

    The `chief` task does, or the first worker where there is none; on a
    single machine the only process does.
    """
    return worker_id(strategy) == 0


def _resolver(strategy):
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None:
        resolver = tf.distribute.cluster_resolver.TFConfigClusterResolver()
    return resolver


def prepare_dataset(
    name, data_dir, strategy=None, timeout=3600, poll_interval=2.0
):
    """A TFDS builder, prepared by the chief while the other workers wait.

    Workers that share a data folder must not all write it at once. The
    chief builds the dataset; every other worker waits until the build is
    complete (TFDS moves only a finished build into place). Workers that do
    not share a disk need a prepared `data_dir` each before they start.

    Args:
        name: str. TFDS name with config, e.g. `"silhouette_scenes/tiny"`.
        data_dir: str. TFDS data folder.
        strategy: optional `tf.distribute.Strategy` (its cluster);
            `TF_CONFIG` without one.
        timeout: seconds a worker waits for the chief before it fails.
        poll_interval: seconds between looks at the data folder.

    Returns:
        The prepared `tfds.core.DatasetBuilder`.
    """
    builder = tfds.builder(name, data_dir=data_dir)
    if is_chief(strategy):
        builder.download_and_prepare()
        return builder
    deadline = time.monotonic() + timeout
    while not tf.io.gfile.exists(builder.data_dir):
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"No dataset appeared at {builder.data_dir} within "
                f"{timeout} s. The chief prepares it; give workers that "
                "share no disk a prepared `data_dir` each."
            )
        time.sleep(poll_interval)
    # A builder made before the build knows no splits: make it again.
    return tfds.builder(name, data_dir=data_dir)
