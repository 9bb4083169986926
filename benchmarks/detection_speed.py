"""Per-crop (R-CNN) against shared-feature (Fast R-CNN) detection.

One small AlexNet detector (a classifier trained on the image labels of
all 20 classes of `silhouette_scenes`, fine-tuned on B's boxes with
`--method`, LSDA by default, trained once and kept under `--model-dir`)
is scored on the test split (`test_mixed`) by both paths, side by side
in one process: every proposal cropped and run through the whole
network, or the trunk once per image and the proposals pooled from its
conv features
(`keras_objectness.models.shared_feature_detector`). For 100 and 1,000
proposals per image: images per second of each (warm, same images) and
held-out (A) / trained (B) mAP of each; the shared path at native scale
and on an image pyramid; optionally (`--svd-rank`) the shared path with
fc6 and fc7 factored by truncated SVD
(`keras_objectness.models.truncated_svd_dense`, Fast R-CNN's speed-up of
the per-region layers), and (`--finetune-shared`) the shared rows
scored by a second detector fine-tuned through the pooled features (as
Fast R-CNN is) instead of the per-crop one.

    python -m benchmarks.detection_speed --help
    python -m benchmarks.detection_speed --quick   # a smoke run

Writes `--output-dir/detection_speed.json` (default `benchmarks/results`).
With `--image-size S` the test scenes are resized to `S` px and the rows
go under `"{S}px"` in that file, next to the native-size rows already
there.
The 1,000-proposal sets are selective search boxes with the rows it
leaves empty filled by sliding windows.
"""

import argparse
import json
import os
import sys
import time

import keras
import numpy as np

import keras_objectness as ko
from keras_objectness.workflows import finetuning
from keras_objectness.workflows import scoring


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    add = parser.add_argument
    add("--data-dir", default="runs/tfds", help="TFDS data folder")
    add("--config", default="default", help="silhouette_scenes config")
    add("--model-dir", default="runs/detection_speed", help="model cache")
    add("--output-dir", default=os.path.join("benchmarks", "results"))
    add("--results-name", default="detection_speed", help="JSON file name")
    add("--seed", type=int, default=0)
    add("--classifier-epochs", type=int, default=8)
    add("--finetune-epochs", type=int, default=2)
    add("--test-images", type=int, default=300, help="images for mAP")
    add("--speed-images", type=int, default=40, help="images timed")
    add("--proposals", type=int, nargs="+", default=[100, 1000])
    add("--pyramid", type=float, nargs="+", default=[0.75, 1.0, 1.5])
    add(
        "--svd-rank",
        type=int,
        nargs="*",
        default=(),
        help="ranks of a truncated SVD of fc6/fc7 (rows shared_svd{rank})",
    )
    add(
        "--image-size",
        type=int,
        default=None,
        help="resize the test scenes (rows under '{size}px'); native if unset",
    )
    add(
        "--finetune-shared",
        action="store_true",
        help="also fine-tune a detector through the pooled features; the "
        "shared rows then score with it",
    )
    add(
        "--method",
        default="lsda",
        choices=("auto", *finetuning.METHODS),
        help="adaptation method of both fine-tunings (auto: the main job's)",
    )
    add("--quick", action="store_true", help="tiny smoke run")
    args = parser.parse_args(argv)
    if args.quick:
        args.classifier_epochs, args.finetune_epochs = 1, 1
        args.test_images, args.speed_images = 10, 4
        args.model_dir = os.path.join(args.model_dir, "quick")
    return args


def main(argv=None):
    args = parse_args(argv)
    log = ko.workflows.StageLog()
    source = ko.workflows.TfdsSource(
        f"silhouette_scenes/{args.config}", args.data_dir
    )
    source.prepare()
    split = source.class_split()
    out, table = _results(args)
    with log.stage("classifier and per-crop detector (cached)"):
        network = _detector(args, source, split, "per_crop")
    with log.stage("test scenes"):
        images, truth = ko.workflows.test_arrays(
            source, args.test_images, image_size=args.image_size
        )
    table["num_test_images"] = int(len(images))
    pooled = network
    if args.finetune_shared:
        with log.stage("shared-feature detector (cached)"):
            pooled = _detector(args, source, split, "shared")
    variants = [("per_crop", network, None), ("shared", pooled, (1.0,))]
    for rank in args.svd_rank:
        # fc6 and fc7 (the head is never factored), scored at native scale.
        fast = ko.models.truncated_svd_dense(pooled, rank)
        variants.append((f"shared_svd{rank}", fast, (1.0,)))
    variants.append(("shared_pyramid", pooled, tuple(args.pyramid)))
    shared = [kind for kind, _, _ in variants[1:]]
    for count in args.proposals:
        with log.stage(f"{count} proposals"):
            boxes = _proposals(images, count)
        row = table["proposals"][str(count)] = {}
        speed = slice(0, min(args.speed_images, len(images)))
        for kind, model, scales in variants:
            options = _options(kind, scales)
            # The first call builds and compiles the scorer (cached per
            # network for later calls) and, first in the process, sets up
            # the kernels: timed apart.
            row[f"{kind}_first_call_seconds"] = round(
                _seconds(model, images[:2], boxes[:2], options), 2
            )
            with log.stage(f"{count} proposals: {kind} speed"):
                # What is left per call (chunking, NMS set-up): a 2-image
                # call gives it, and the difference the steady rate.
                small = _seconds(model, images[:2], boxes[:2], options)
                seconds = _seconds(model, images[speed], boxes[speed], options)
            row[f"{kind}_images_per_second"] = round(speed.stop / seconds, 2)
            if speed.stop > 2 and seconds > small:
                row[f"{kind}_steady_images_per_second"] = round(
                    (speed.stop - 2) / (seconds - small), 2
                )
            with log.stage(f"{count} proposals: {kind} mAP"):
                found = _detect(model, images, boxes, options)
                result = ko.workflows.evaluate_detections(found, truth, split)
            row[f"{kind}_heldout_map"] = result["map_heldout"]
            row[f"{kind}_trained_map"] = result["map_trained"]
            _write(args, out, table, log)
        for kind in shared:
            for rate in ("", "steady_"):
                key = f"{rate}images_per_second"
                if f"per_crop_{key}" in row and f"{kind}_{key}" in row:
                    row[f"{kind}_{rate}speedup"] = round(
                        row[f"{kind}_{key}"] / row[f"per_crop_{key}"], 2
                    )
        _write(args, out, table, log)
        print(count, json.dumps(row))
    print(f"wrote {_write(args, out, table, log)}")


def _results(args):
    """`(out, table)`: the JSON to write and the dict that gets the rows.

    Native size: a fresh file. `--image-size S`: the existing file (if
    any) with its rows kept, and this run's rows under `"{S}px"`.
    """
    table = {"command": " ".join(["python -m benchmarks.detection_speed",
                                  *sys.argv[1:]]),
             "machine": ko.workflows.lsda.machine(), "seeds": [args.seed],
             "config": vars(args), "proposals": {}}  # fmt: skip
    if args.image_size is None:
        return table, table
    out = {}
    path = _path(args)
    if os.path.exists(path):
        with open(path) as file:
            out = json.load(file)
    out[f"{args.image_size}px"] = table
    return out, table


def _options(kind, scales=(1.0,)):
    if kind == "per_crop":
        return {"detector": "per_crop"}
    return {"detector": "shared", "image_scales": scales}


def _detect(network, images, boxes, options):
    return scoring.detect_on_proposals(
        network, images, boxes, verbose=False, **options
    )


def _seconds(network, images, boxes, options):
    start = time.perf_counter()
    _detect(network, images, boxes, options)
    return time.perf_counter() - start


def _proposals(images, count):
    boxes = ko.workflows.make_proposals(
        images, "selective_search", count, verbose=False
    )
    windows = ko.workflows.sliding_windows(count)
    for row in boxes:
        empty = np.flatnonzero(row[:, 0] < 0)
        row[empty] = windows[: len(empty)]
    return boxes


def _detector(args, source, split, detector):
    os.makedirs(args.model_dir, exist_ok=True)
    # Cached per method ("lsda" keeps the name of the earlier runs' file).
    method = "" if args.method == "lsda" else f"{args.method}_"
    path = os.path.join(args.model_dir, f"detector_{method}{detector}.keras")
    if os.path.exists(path):
        return keras.saving.load_model(path)
    classifier_path = os.path.join(args.model_dir, "classifier.keras")
    if os.path.exists(classifier_path):
        classifier = keras.saving.load_model(classifier_path)
    else:
        keras.utils.set_random_seed(args.seed)
        classifier, _ = ko.workflows.build_classifier(
            "alexnet_small", split.num_classes, 32
        )
        classifier, _ = ko.workflows.train_classifier(
            classifier,
            source.load("classification_train"),
            source.load("classification_validation"),
            split.num_classes,
            epochs=args.classifier_epochs,
            seed=args.seed,
            verbose=0,
        )
        classifier.save(classifier_path)
    keras.utils.set_random_seed(args.seed)
    # The main job's fine-tuning, with this benchmark's method and epochs.
    config = ko.workflows.WorkflowConfig(
        method=args.method, finetune_epochs=args.finetune_epochs,
        frozen_layers=0, seed=args.seed, verbose=0, region_features=detector,
        regions_per_image=16 if detector == "shared" else 8,
    )  # fmt: skip
    network = ko.workflows.finetune_from_config(
        classifier, source, split, config,
        backup_dir=os.path.join(args.model_dir, f"backup_{detector}"),
    )  # fmt: skip
    network.save(path)
    return network


def _path(args):
    return os.path.join(args.output_dir, f"{args.results_name}.json")


def _write(args, out, table, log):
    os.makedirs(args.output_dir, exist_ok=True)
    table["seconds"] = dict(log.seconds)
    path = _path(args)
    with open(path, "w") as file:
        json.dump(out, file, indent=2)
    return path


if __name__ == "__main__":
    main()
