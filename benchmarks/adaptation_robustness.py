"""Adaptation methods over class splits, classifier strengths and seeds.

Every regime pairs a class split of `silhouette_scenes` with a classifier
recipe; every seed trains its own classifier (shared by the regimes that
use the same recipe: a classifier never depends on the class split) and
fine-tunes one detector per method, all scored on the same selective
search proposals of the same `test_mixed` scenes. Detection training
uses the `detection_train_all` scenes whose objects are all of B (no
object of A appears in training, not even as unlabelled background); the
oracle gets as many scenes of the same pool with every class's boxes.

Classifier recipes: `standard` trains on the classification images alone
(what `keras-objectness run` does); `strong` also trains on crops (with
context) of the objects in `detection_train_all`, which look like the
region crops a detector scores. Those crops come from boxes, of A too,
but only as image-labelled examples: no detector sees a box of A.

    python -m benchmarks.adaptation_robustness --help
    python -m benchmarks.adaptation_robustness --quick   # a smoke run

Writes `--output-dir/adaptation_robustness.json` (default
`benchmarks/results`) and a figure of held-out mAP per regime and method.
"""

import argparse
import json
import os
import sys

import keras
import numpy as np
import tensorflow as tf

import keras_objectness as ko
from keras_objectness.datasets import get_class_split

REGIMES = {
    "default": ("default", "standard"),
    "digits_trained": ("digits_trained", "standard"),
    "random_split": ("random_1", "standard"),
    "strong_classifier": ("default", "strong"),
}
METHODS = (
    "none",
    "lsda",
    "lsda_similarity",
    "joint",
    "joint_background",
    "joint_image_regions",
    "joint_image_proposals",
    "joint_image_refined",
    "joint_image_confident",
    "joint_image_negatives",
)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    add = parser.add_argument
    add("--data-dir", default="runs/tfds", help="TFDS data folder")
    add("--config", default="default", help="silhouette_scenes config")
    add("--output-dir", default=os.path.join("benchmarks", "results"))
    add("--regimes", nargs="+", default=list(REGIMES), choices=list(REGIMES))
    add("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    add("--default-method", default="joint_image_refined", choices=METHODS)
    add("--seeds", nargs="+", type=int, default=[0, 1, 2])
    add("--classifier-epochs", type=int, default=8)
    add("--strong-classifier-epochs", type=int, default=24)
    add("--finetune-epochs", type=int, default=3)
    add("--train-scenes", type=int, default=4000, help="pool scanned for B")
    add("--test-images", type=int, default=300)
    add("--proposals", type=int, default=100)
    add(
        "--merge",
        action="store_true",
        help="add this run's methods and seeds to the existing JSON (the "
        "baseline and oracle stay those already there)",
    )
    add(
        "--summarize-only",
        action="store_true",
        help="train nothing: rewrite the JSON's summaries and the figure "
        "from its runs",
    )
    add(
        "--merge-from",
        nargs="+",
        default=[],
        metavar="JSON",
        help="with --merge or --summarize-only: also add the runs of these "
        "JSON files (written by runs that could not share one file, e.g. "
        "two at once), as --merge adds a run's own",
    )
    add("--quick", action="store_true", help="tiny config, one seed")
    args = parser.parse_args(argv)
    if args.quick:
        args.config, args.seeds = "tiny", args.seeds[:1]
        args.classifier_epochs = args.strong_classifier_epochs = 1
        args.finetune_epochs, args.test_images, args.proposals = 1, 8, 10
    return args


def main(argv=None):
    args = parse_args(argv)
    log = ko.workflows.StageLog()
    if args.summarize_only:
        args.merge, args.regimes = True, []
        runs, accuracy, seeds, epochs = _previous(args, log)
        print(f"wrote {_write(args, runs, accuracy, seeds, epochs, log)}")
        return
    name = f"silhouette_scenes/{args.config}"
    source = ko.workflows.TfdsSource(name, args.data_dir)
    test = ko.workflows.TfdsSource(
        name, args.data_dir, splits={"test": "test_mixed"}
    )
    with log.stage("test scenes and proposals"):
        images, truth = ko.workflows.test_arrays(test, args.test_images)
        proposals = ko.workflows.make_proposals(
            images, "selective_search", args.proposals, verbose=False
        )
    pool = ko.workflows.load_split(source, "detection_train_all").take(
        args.train_scenes
    )
    # Both at 64 px: the classifier trains on random 32 px crops of them.
    photos = _labelled(source.load("classification_train"), 64)
    crops = _labelled(ko.data.object_crops(pool, 64), 64)
    images_of = {"standard": photos, "strong": photos.concatenate(crops)}
    runs, accuracy, seeds, epochs = _previous(args, log)
    epochs.update(
        {r: _classifier_epochs(args, REGIMES[r][1]) for r in args.regimes}
    )
    for seed in args.seeds:
        classifiers = {}
        for recipe in sorted({REGIMES[r][1] for r in args.regimes}):
            with log.stage(f"seed {seed}: {recipe} classifier"):
                classifiers[recipe] = _train_classifier(
                    args, source, images_of[recipe], recipe, seed
                )
        for regime in args.regimes:
            split_name, recipe = REGIMES[regime]
            split = get_class_split(split_name)
            classifier, top1 = classifiers[recipe]
            train = ko.data.scenes_of_classes(pool, split.detection_classes)
            count = sum(1 for _ in train)
            # As many scenes with objects of A, for their image labels only.
            labelled = ko.data.scenes_with_classes(
                pool, split.heldout_classes
            ).take(count)
            with log.stage(f"seed {seed}: {regime} ({count} B scenes)"):
                result = ko.workflows.robustness.compare_methods(
                    classifier, train, pool.take(count), images_of[recipe],
                    split, images, truth, proposals, methods=args.methods,
                    image_label_scenes=labelled,
                    epochs=args.finetune_epochs, seed=seed, verbose=0,
                )  # fmt: skip
            log.say(_line(regime, seed, result, args.methods))
            _add_run(runs, accuracy, seeds, regime, seed, result, top1, log)
            _write(args, runs, accuracy, seeds, epochs, log)
    path = _write(args, runs, accuracy, seeds, epochs, log)
    print(f"wrote {path}")


def _previous(args, log):
    """Runs, accuracies and seeds per regime: empty, or with `--merge` those
    of the JSON already written. A regime of this run whose classifier was
    trained for another number of epochs starts afresh: its baseline and
    oracle would not belong to this run's methods."""
    runs = {regime: [] for regime in REGIMES}
    accuracy = {regime: [] for regime in REGIMES}
    seeds = {regime: [] for regime in REGIMES}
    epochs = {}
    path = os.path.join(args.output_dir, "adaptation_robustness.json")
    args.previous_commands = []
    if args.merge and os.path.exists(path):
        with open(path) as file:
            previous = json.load(file)
        args.previous_commands = previous.get("previous_commands", []) + [
            previous["command"]
        ]
        for regime, old in previous["regimes"].items():
            wanted = _classifier_epochs(args, REGIMES[regime][1])
            trained = old.get("classifier_epochs", "unrecorded")
            if regime in args.regimes and trained != wanted:
                log.say(
                    f"  {regime}: the previous runs' classifier trained "
                    f"{trained} epochs, this run's {wanted}: previous runs "
                    "dropped"
                )
                continue
            epochs[regime] = trained
            runs[regime] = old["runs"]
            accuracy[regime] = old["classifier_top1_values"]
            seeds[regime] = old["seeds"]
    for other in args.merge_from if args.merge else ():
        with open(other) as file:
            previous = json.load(file)
        args.previous_commands.append(previous["command"])
        for regime, old in previous["regimes"].items():
            trained = old.get("classifier_epochs", "unrecorded")
            if runs[regime] and epochs.get(regime) != trained:
                log.say(
                    f"  {regime} of {other}: classifier trained {trained} "
                    f"epochs, the runs here {epochs.get(regime)}: not merged"
                )
                continue
            epochs.setdefault(regime, trained)
            for seed, result, top1 in zip(
                old["seeds"], old["runs"], old["classifier_top1_values"]
            ):
                _add_run(runs, accuracy, seeds, regime, seed, result, top1, log)
    return runs, accuracy, seeds, epochs


def _add_run(runs, accuracy, seeds, regime, seed, result, top1, log):
    if seed not in seeds[regime]:
        runs[regime].append(result)
        accuracy[regime].append(top1)
        seeds[regime].append(seed)
        return
    # A seed already measured: its baseline and oracle stay, the methods
    # of this run join them, each with the baseline and oracle trained
    # beside it (retraining a seed is not bit-exact; the ratios use those,
    # and the log says how far the two runs differ).
    old = runs[regime][seeds[regime].index(seed)]
    for name in ("no_adaptation", "oracle"):
        log.say(
            f"  merge check {regime} seed {seed} {name}: held-out mAP "
            f"{old[name]['map_heldout']:.2f} before, "
            f"{result[name]['map_heldout']:.2f} now"
        )
    same_run = {
        name: {key: result[name][key] for key in ("map_heldout", "map_trained")}
        for name in ("no_adaptation", "oracle")
    }
    for name, value in result.items():
        if name not in ("no_adaptation", "oracle"):
            old[name] = {**value, "same_run": same_run}


def _labelled(dataset, size):
    """Image-labelled examples in one layout: image at `size`, objects."""

    def layout(example):
        image = tf.image.resize(example["image"], (size, size))
        image = tf.cast(tf.clip_by_value(tf.round(image), 0, 255), tf.uint8)
        objects = example["objects"]
        return {
            "image": image,
            "objects": {"bbox": objects["bbox"], "label": objects["label"]},
        }

    return dataset.map(layout, num_parallel_calls=tf.data.AUTOTUNE)


def _train_classifier(args, source, train_images, recipe, seed):
    keras.utils.set_random_seed(seed)
    classifier, _ = ko.workflows.build_classifier("alexnet_small", 20, 32)
    epochs = _classifier_epochs(args, recipe)
    # Top-1 on crops of held-out scenes' objects: what region crops are.
    validation = ko.data.object_crops(
        ko.workflows.load_split(source, "validation_trained").concatenate(
            ko.workflows.load_split(source, "validation_heldout")
        ),
        32,
    )
    return ko.workflows.train_classifier(
        classifier, train_images, validation, 20, epochs=epochs, seed=seed,
        verbose=0,
    )  # fmt: skip


def _classifier_epochs(args, recipe):
    if recipe == "strong":
        return args.strong_classifier_epochs
    return args.classifier_epochs


def _line(regime, seed, result, methods):
    cells = ", ".join(
        f"{m} {result[m]['map_heldout']:.1f}"
        for m in ("no_adaptation", *methods, "oracle")
    )
    return f"{regime} seed {seed}: held-out mAP {cells}"


def _write(args, runs, accuracy, seeds, epochs, log):
    regimes = {}
    for regime, results in runs.items():
        if not results:
            continue
        split = get_class_split(REGIMES[regime][0])
        summary = ko.workflows.robustness.summarize_runs(results)
        trained = ko.workflows.robustness.summarize_runs(results, "map_trained")
        regimes[regime] = {
            "class_split": REGIMES[regime][0],
            "detection_classes": list(split.detection_classes),
            "classifier": REGIMES[regime][1],
            "classifier_epochs": epochs[regime],
            "classifier_top1": round(float(np.mean(accuracy[regime])), 4),
            "classifier_top1_values": [round(a, 4) for a in accuracy[regime]],
            "seeds": seeds[regime],
            **summary,
            "trained_map": trained["map_trained"],
        }
        if args.default_method in summary["ratios"]:
            bar = ko.workflows.robustness.bar_checks(
                summary, args.default_method
            )
            if REGIMES[regime][1] == "strong":
                bar["classifier_top1_at_least_0.85"] = bool(
                    np.mean(accuracy[regime]) >= 0.85
                )
            regimes[regime]["default_method_bar"] = bar
        regimes[regime]["runs"] = results
    report = {
        "command": " ".join(
            ["python -m benchmarks.adaptation_robustness", *sys.argv[1:]]
        ),
        "previous_commands": args.previous_commands,
        "machine": ko.workflows.lsda.machine(),
        "default_method": args.default_method,
        "arguments": vars(args),
        "seconds": dict(log.seconds),
        "total_seconds": log.total_seconds,
        "regimes": regimes,
    }
    os.makedirs(args.output_dir, exist_ok=True)
    path = os.path.join(args.output_dir, "adaptation_robustness.json")
    with open(path, "w") as file:
        json.dump(report, file, indent=2)
    ko.workflows.robustness.plot_regimes(
        regimes, ("no_adaptation", *_measured(regimes), "oracle"),
        os.path.join(args.output_dir, "adaptation_robustness.png"),
    )  # fmt: skip
    return path


def _measured(regimes):
    """Methods of any regime, in `METHODS` order."""
    found = {name for regime in regimes.values() for name in regime["ratios"]}
    return [name for name in METHODS if name in found]


if __name__ == "__main__":
    main()
