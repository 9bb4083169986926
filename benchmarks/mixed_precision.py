"""Mixed bfloat16 against float32: training and inference speed, accuracy.

Speed: for each AlexNet preset (32, 64 and 224 px inputs) a float32 and a
`mixed_bfloat16` classifier are built in one process and timed in
alternating rounds on the same random batches, so the ratio is measured
side by side on a shared machine. Accuracy: the main job's classifier
(`alexnet_small`, 32 px crops of `silhouette_scenes`) trained for a few
epochs under each policy with the same seed.

    python -m benchmarks.mixed_precision --help
    python -m benchmarks.mixed_precision

Writes `benchmarks/results/mixed_precision.json`.
"""

import argparse
import json
import os
import sys
import time

import keras
import numpy as np
import tensorflow as tf

import keras_objectness as ko

PRESETS = ("alexnet_small_32", "alexnet_small_64", "alexnet_224")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--presets", default=",".join(PRESETS))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--accuracy-epochs",
        type=int,
        default=4,
        help="classifier epochs per policy (0: skip the accuracy part)",
    )
    parser.add_argument("--data-dir", default="runs/tfds")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--output",
        default=os.path.join("benchmarks", "results", "mixed_precision.json"),
    )
    return parser.parse_args(argv)


def _classifier(preset, precision):
    with ko.workflows.precision_policy(precision):
        backbone = ko.models.alexnet_backbone(
            **dict(ko.models.ALEXNET_PRESETS[preset]), name="alexnet"
        )
        model = ko.models.image_classifier(backbone, 20)
    model.compile(
        keras.optimizers.Adam(1e-3),
        keras.losses.SparseCategoricalCrossentropy(),
    )
    return model


def _speed(preset, rounds, seed):
    side = ko.models.ALEXNET_PRESETS[preset]["input_shape"][0]
    batch = 64 if side <= 64 else 32
    steps = 20 if side <= 64 else 3
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (batch * steps, side, side, 3), "uint8")
    labels = rng.integers(0, 20, (batch * steps,))
    dataset = tf.data.Dataset.from_tensor_slices((images, labels))
    dataset = dataset.batch(batch).cache()
    models = {p: _classifier(preset, p) for p in ("float32", "bfloat16")}
    for model in models.values():  # compiled and warm before timing
        model.fit(dataset.take(1), shuffle=False, verbose=0)
        model.predict(images[:batch], batch_size=batch, verbose=0)
    seconds = {p: {"train": [], "predict": []} for p in models}
    for _ in range(rounds):
        for precision, model in models.items():
            start = time.perf_counter()
            model.fit(dataset, shuffle=False, verbose=0)
            seconds[precision]["train"].append(time.perf_counter() - start)
            start = time.perf_counter()
            model.predict(images, batch_size=batch, verbose=0)
            seconds[precision]["predict"].append(time.perf_counter() - start)
    row = {"image_side": side, "batch_size": batch, "images": len(images)}
    for precision, times in seconds.items():
        for kind, values in times.items():
            # The best round: the one least disturbed by other processes.
            row[f"{precision}_{kind}_images_per_second"] = round(
                len(images) / min(values), 1
            )
    for kind in ("train", "predict"):
        row[f"bfloat16_over_float32_{kind}"] = round(
            row[f"bfloat16_{kind}_images_per_second"]
            / row[f"float32_{kind}_images_per_second"],
            3,
        )
    return row


def _accuracy(args):
    source = ko.workflows.TfdsSource(
        "silhouette_scenes", data_dir=args.data_dir
    )
    source.prepare()
    rows = {}
    for precision in ("float32", "bfloat16"):
        config = ko.workflows.WorkflowConfig(
            classifier_epochs=args.accuracy_epochs,
            mixed_precision=precision,
            seed=args.seed,
            verbose=0,
        )
        keras.utils.set_random_seed(args.seed)
        start = time.perf_counter()
        _, accuracy = ko.workflows.classifier_from_config(
            source, source.num_classes, config
        )
        rows[precision] = {
            "validation_top1": round(float(accuracy), 4),
            "seconds": round(time.perf_counter() - start, 1),
        }
    return {"epochs": args.accuracy_epochs, "policies": rows}


def main(argv=None):
    args = parse_args(argv)
    results = {
        "command": "python -m benchmarks.mixed_precision "
        + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": ko.workflows.lsda.machine(),
        "seed": args.seed,
        "speed": {},
    }
    for preset in args.presets.split(","):
        results["speed"][preset] = _speed(preset, args.rounds, args.seed)
        print(preset, json.dumps(results["speed"][preset]), flush=True)
    if args.accuracy_epochs:
        results["accuracy"] = _accuracy(args)
        print("accuracy", json.dumps(results["accuracy"]), flush=True)
    os.makedirs(os.path.dirname(args.output) or ".", exist_ok=True)
    with open(args.output, "w") as file:
        json.dump(results, file, indent=2)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
