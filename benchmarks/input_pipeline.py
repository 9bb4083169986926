"""Is the input pipeline fast enough to keep the model busy?

Measures, on `silhouette_scenes`, the examples per second that each
`keras_objectness.data` pipeline delivers on its own, and the training-step
rate of the AlexNet-style model that consumes it (on tensors already in
memory). The pipeline must deliver at least 3x what the model consumes.
Then it trains once from the pipeline and once from memory, to show the
combined effect when both share the CPU.

    python -m benchmarks.input_pipeline --help
    python -m benchmarks.input_pipeline --data-dir runs/tfds

Writes `benchmarks/results/input_pipeline.json` and `input_pipeline.png`.
"""

import argparse
import json
import os
import platform
import sys
import time

import keras
import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

import keras_objectness as ko
import keras_objectness.datasets  # noqa: F401  (registers the builder)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default="runs/tfds")
    parser.add_argument("--config", default="default")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--crop-size", type=int, default=32)
    parser.add_argument("--batches", type=int, default=40)
    parser.add_argument(
        "--output-dir", default=os.path.join("benchmarks", "results")
    )
    return parser.parse_args(argv)


def examples_per_second(dataset, batches, count):
    """Examples/s of a batched dataset, after one warm-up batch."""
    iterator = iter(dataset.repeat())
    next(iterator)
    start = time.perf_counter()
    seen = 0
    for _ in range(batches):
        seen += count(next(iterator))
    return seen / (time.perf_counter() - start)


def training_rate(model, inputs, targets, loss, batches):
    """Training examples/s of `model` on tensors already in memory."""
    model.compile(keras.optimizers.SGD(0.01), loss)
    model.train_on_batch(inputs, targets)
    start = time.perf_counter()
    for _ in range(batches):
        model.train_on_batch(inputs, targets)
    return batches * len(inputs) / (time.perf_counter() - start)


class EpochTimer(keras.callbacks.Callback):
    """Adds each epoch's wall time to the history as `seconds`."""

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        logs["seconds"] = time.perf_counter() - self._start


def main(argv=None):
    args = parse_args(argv)
    os.makedirs(args.output_dir, exist_ok=True)
    name = f"silhouette_scenes/{args.config}"
    builder = tfds.builder(name, data_dir=args.data_dir)
    start = time.perf_counter()
    builder.download_and_prepare()
    print(f"dataset ready in {time.perf_counter() - start:.0f} s")

    def raw(split):
        return tfds.load(name, split=split, data_dir=args.data_dir)

    num_classes = builder.info.features["objects"]["label"].num_classes
    class_split = ko.datasets.default_class_split()
    box_space = ko.BoxSpace(grid_shape=(8, 8))
    size, crop, batch = args.image_size, args.crop_size, args.batch_size
    pipelines = {
        "objectness": ko.data.objectness_dataset(
            raw("detection_train").repeat(), box_space, size, batch,
            num_classes, shuffle_buffer=512, augment=True,
        ),
        "classification": ko.data.classification_dataset(
            raw("classification_train").repeat(), size, batch, num_classes,
            shuffle_buffer=512, augment=True,
        ),
        "regions": ko.data.region_dataset(
            raw("detection_train").repeat(), crop, batch, num_classes,
            keep_classes=class_split.detection_classes,
            shuffle_buffer=512, augment=True,
        ),
        "keras_cv": ko.data.keras_cv_dataset(
            raw("detection_train").repeat(), size, batch, num_classes,
            augment=True,
        ),
    }  # fmt: skip

    def count(batch_data):
        first = batch_data[0] if isinstance(batch_data, tuple) else None
        if first is None:
            first = batch_data["images"]
        return int(first.shape[0])

    small = ko.models.ALEXNET_PRESETS[f"alexnet_small_{size}"]
    crops = ko.models.ALEXNET_PRESETS[f"alexnet_small_{crop}"]
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (batch, size, size, 3)).astype("uint8")
    crop_images = rng.integers(0, 256, (batch, crop, crop, 3)).astype("uint8")
    soft = keras.ops.softmax(rng.normal(size=(batch, box_space.num_bins)))
    labels = rng.integers(0, num_classes, batch)
    models = {
        "objectness": (
            ko.models.objectness_detector(
                ko.models.alexnet_backbone(**small), box_space
            ),
            images, soft, "categorical_crossentropy",
        ),
        "classification": (
            ko.models.image_classifier(
                ko.models.alexnet_backbone(**small), num_classes
            ),
            images, labels, "sparse_categorical_crossentropy",
        ),
        "regions": (
            ko.models.image_classifier(
                ko.models.alexnet_backbone(**crops), num_classes + 1
            ),
            crop_images, labels, "sparse_categorical_crossentropy",
        ),
    }  # fmt: skip

    results = {
        "command": " ".join(
            ["python -m benchmarks.input_pipeline", *sys.argv[1:]]
        ),
        "arguments": vars(args),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "pipelines": {},
    }
    for key, dataset in pipelines.items():
        rate = examples_per_second(dataset, args.batches, count)
        entry = {"pipeline_examples_per_second": round(rate, 1)}
        if key in models:
            model, inputs, targets, loss = models[key]
            step = training_rate(model, inputs, targets, loss, 10)
            entry["model_training_examples_per_second"] = round(step, 1)
            entry["ratio"] = round(rate / step, 2)
            entry["pipeline_is_not_the_bottleneck"] = rate >= 3 * step
        results["pipelines"][key] = entry
        print(key, entry)

    # Both at once: fit from the pipeline vs from memory, same model.
    model, inputs, targets, loss = models["objectness"]
    memory = tf.data.Dataset.from_tensors((inputs, targets)).repeat()
    rates = {}
    for key, dataset in (
        ("from_pipeline", pipelines["objectness"]),
        ("from_memory", memory),
    ):
        # Two epochs: the first warms up (tracing, shuffle buffer).
        history = model.fit(
            dataset,
            steps_per_epoch=args.batches,
            epochs=2,
            verbose=0,
            callbacks=[EpochTimer()],
        )
        rates[key] = args.batches * batch / history.history["seconds"][-1]
    from_pipeline, from_memory = rates["from_pipeline"], rates["from_memory"]
    results["objectness_fit_examples_per_second"] = {
        "from_pipeline": round(from_pipeline, 1),
        "from_memory": round(from_memory, 1),
    }
    print(results["objectness_fit_examples_per_second"])

    path = os.path.join(args.output_dir, "input_pipeline.json")
    with open(path, "w") as file:
        json.dump(results, file, indent=2)
    plot(results, os.path.join(args.output_dir, "input_pipeline.png"))
    print(f"wrote {path}")
    return results


def plot(results, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [k for k, v in results["pipelines"].items() if "ratio" in v]
    pipeline = [
        results["pipelines"][k]["pipeline_examples_per_second"] for k in names
    ]
    model = [
        results["pipelines"][k]["model_training_examples_per_second"]
        for k in names
    ]
    x = np.arange(len(names))
    figure, axis = plt.subplots(figsize=(6, 3.5))
    axis.bar(x - 0.2, pipeline, 0.4, label="input pipeline alone")
    axis.bar(x + 0.2, model, 0.4, label="model training step")
    axis.set_xticks(x, names)
    axis.set_ylabel("examples / s")
    axis.set_yscale("log")
    axis.legend()
    axis.set_title(results["machine"])
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


if __name__ == "__main__":
    main()
