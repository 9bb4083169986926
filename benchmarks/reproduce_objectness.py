"""Reproduce the class-generic objectness experiments on silhouette_scenes.

The paper's grid: a detector initialised from a pretrained classifier or
from random weights, trained with the boxes of the trained classes only
(held-out protocol) or with all boxes, evaluated on test scenes that hold
only held-out classes (AUC of the precision-recall curve, IoU >= 0.5). And
its last experiment: a classifier initialised from the objectness-trained
network vs from scratch (top-1 and top-5 error).

    python -m benchmarks.reproduce_objectness --help
    python -m benchmarks.reproduce_objectness --data-dir runs/tfds

Writes `benchmarks/results/objectness.json`, `objectness_pr.png` (the four
precision-recall curves) and `objectness_gallery.png` (correct and
incorrect detections on held-out classes).
"""

import argparse
import json
import os
import platform
import shutil
import sys
import time

import keras
import numpy as np

import keras_objectness as ko
from examples import train_objectness

PAPER = {
    ("pretrained", "trained"): 0.475,
    ("random", "trained"): 0.448,
    ("pretrained", "all"): 0.545,
    ("random", "all"): 0.498,
}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default="runs/tfds")
    parser.add_argument("--config", default="default")
    parser.add_argument("--epochs", type=int, default=10)
    # The classifier recipe is examples.train_objectness's: these flags
    # forward it, with its defaults.
    training = train_objectness.parse_args([])
    parser.add_argument(
        "--pretrain-epochs", type=int, default=training.pretrain_epochs
    )
    parser.add_argument(
        "--pretrain-min-crop",
        type=float,
        default=training.pretrain_min_crop,
        help="pretrain on random crops of at least this side; 0 for whole "
        "images",
    )
    parser.add_argument(
        "--dropout-rate",
        type=float,
        default=training.dropout_rate,
        help="the classifier's dropout after fc6 and fc7",
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument(
        "--output-dir", default=os.path.join("benchmarks", "results")
    )
    return parser.parse_args(argv)


def run_seed(args, seed):
    """One seed of the whole grid; returns its results and PR curves."""
    strategy = train_objectness.make_strategy("mirrored")
    options = train_objectness.parse_args(
        [
            f"--data-dir={args.data_dir}",
            f"--config={args.config}",
            f"--epochs={args.epochs}",
            f"--pretrain-epochs={args.pretrain_epochs}",
            f"--pretrain-min-crop={args.pretrain_min_crop}",
            f"--dropout-rate={args.dropout_rate}",
            f"--seed={seed}",
            "--verbose=0",
        ]
    )
    _, info = train_objectness.load_split(options, "test_heldout")
    num_classes = info.features["objects"]["label"].num_classes
    keras.utils.set_random_seed(seed)
    start = time.time()
    # Its own folder, so that no backup of an earlier run resumes.
    options.output_dir = _fresh_folder(args, f"classifier_{seed}")
    pretrained, pretrain_history = train_objectness.pretrain_classifier(
        options, strategy, num_classes
    )
    pretrained_weights = pretrained.get_weights()
    print(f"[seed {seed}] classifier pretrained in {time.time() - start:.0f} s")

    results, curves, detectors = {}, {}, {}
    for init in ("pretrained", "random"):
        for boxes in ("trained", "all"):
            keras.utils.set_random_seed(seed)
            options.boxes = boxes
            options.output_dir = _fresh_folder(args, f"{init}_{boxes}_{seed}")
            classifier = None
            if init == "pretrained":
                pretrained.set_weights(pretrained_weights)
                classifier = pretrained
            start = time.time()
            detector, history = train_objectness.train_objectness(
                options, strategy, classifier
            )
            heldout = train_objectness.evaluate_objectness(
                options, detector, "test_heldout"
            )
            trained = train_objectness.evaluate_objectness(
                options, detector, "test_trained"
            )
            key = f"{init}/{boxes}_boxes"
            results[key] = {
                "heldout_auc": float(heldout["auc"]),
                "trained_auc": float(trained["auc"]),
                "final_loss": float(history.history["loss"][-1]),
                "seconds": round(time.time() - start, 1),
            }
            curves[key] = (heldout["precision"], heldout["recall"])
            detectors[key] = keras.models.clone_model(detector)
            detectors[key].set_weights(detector.get_weights())
            print(f"[seed {seed}] {key}: {results[key]}")

    # The paper's last experiment: a classifier starting from a network
    # trained only for objectness (random init, all boxes).
    source = detectors["random/all_boxes"]
    options.output_dir = _fresh_folder(
        args, f"classifier_from_objectness_{seed}"
    )
    classification = {}
    for init in ("scratch", "objectness"):
        keras.utils.set_random_seed(seed)
        # From scratch is the pretraining above: same seed, same recipe.
        history = (
            pretrain_history
            if init == "scratch"
            else _classifier_from(options, strategy, num_classes, source)[1]
        )
        classification[init] = {
            "top1_error": 1 - float(history.history["val_accuracy"][-1]),
            "top5_error": 1 - float(history.history["val_top5_accuracy"][-1]),
        }
        print(f"[seed {seed}] classifier from {init}: {classification[init]}")
    results["classification"] = classification
    return results, curves, detectors


def _fresh_folder(args, name):
    """An emptied output folder for one training of the grid: every
    training starts fresh, no backup of an earlier run resumes."""
    folder = os.path.join(
        "runs", "reproduce_objectness", f"{args.config}_{name}"
    )
    shutil.rmtree(folder, ignore_errors=True)
    return folder


def _classifier_from(options, strategy, num_classes, source):
    """A classifier whose backbone starts from `source`'s layers.

    Layers are matched by name: the detector shares the backbone's layer
    names up to its feature layer; later layers keep their fresh weights.
    """
    classifier, _ = train_objectness.pretrain_classifier(
        options, strategy, num_classes, epochs=0
    )
    backbone = classifier.get_layer("alexnet")
    names = {layer.name for layer in backbone.layers}
    for layer in source.get_layer("alexnet_features").layers:
        if layer.weights and layer.name in names:
            backbone.get_layer(layer.name).set_weights(layer.get_weights())
    return train_objectness.pretrain_classifier(
        options, strategy, num_classes, initial_classifier=classifier
    )


def summarise(per_seed):
    keys = [k for k in per_seed[0] if k != "classification"]
    summary = {}
    for key in keys:
        summary[key] = {}
        for metric in ("heldout_auc", "trained_auc"):
            values = np.array([seed[key][metric] for seed in per_seed])
            summary[key][metric] = {
                "mean": float(values.mean()),
                "std": float(values.std()),
                "values": values.tolist(),
            }
    summary["classification"] = {
        init: {
            metric: float(
                np.mean([s["classification"][init][metric] for s in per_seed])
            )
            for metric in ("top1_error", "top5_error")
        }
        for init in ("scratch", "objectness")
    }
    auc = {k: summary[k]["heldout_auc"]["mean"] for k in keys}
    summary["shape"] = {
        "pretrained_beats_random_on_heldout": auc["pretrained/trained_boxes"]
        > auc["random/trained_boxes"],
        "all_boxes_beats_heldout_protocol": auc["pretrained/all_boxes"]
        > auc["pretrained/trained_boxes"]
        and auc["random/all_boxes"] > auc["random/trained_boxes"],
        "heldout_over_all_boxes": auc["pretrained/trained_boxes"]
        / auc["pretrained/all_boxes"],
        "paper_heldout_over_all_boxes": PAPER[("pretrained", "trained")]
        / PAPER[("pretrained", "all")],
    }
    return summary


def plot_curves(curves, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(5, 4))
    for key, (precision, recall) in curves.items():
        axis.plot(recall, precision, label=key.replace("_", " "))
    axis.set_xlabel("recall")
    axis.set_ylabel("precision")
    axis.set_xlim(0, 1)
    axis.set_ylim(0, 1)
    axis.set_title("held-out classes, IoU >= 0.5")
    axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def plot_gallery(args, detector, path, count=4):
    """Correct and incorrect top detections on held-out test scenes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    options = train_objectness.parse_args(
        [f"--data-dir={args.data_dir}", f"--config={args.config}"]
    )
    dataset, info = train_objectness.load_split(options, "test_heldout")
    num_classes = info.features["objects"]["label"].num_classes
    batch = next(iter(ko.data.keras_cv_dataset(dataset, 128, 64, num_classes)))
    inference = ko.models.objectness_inference_model(detector, max_detections=1)
    small = keras.ops.image.resize(batch["images"], (64, 64))
    top = inference.predict_on_batch(keras.ops.cast(small, "uint8"))["boxes"]
    truth = batch["bounding_boxes"]
    iou = [
        ko.evaluation.compute_iou(
            top[i], truth["boxes"][i][truth["classes"][i] >= 0]
        ).max(initial=0.0)
        for i in range(len(top))
    ]
    correct = [i for i, v in enumerate(iou) if v >= 0.5][:count]
    wrong = [i for i, v in enumerate(iou) if v < 0.5][:count]
    chosen = correct + wrong
    images = np.asarray(batch["images"])[chosen]
    drawn = keras.visualization.draw_bounding_boxes(
        images,
        {
            "boxes": truth["boxes"].numpy()[chosen],
            "labels": truth["classes"].numpy()[chosen],
        },
        "rel_yxyx",
        color=(0, 200, 0),
    )
    drawn = keras.visualization.draw_bounding_boxes(
        drawn,
        {"boxes": top[chosen], "labels": np.zeros((len(chosen), 1), "int32")},
        "rel_yxyx",
        color=(40, 90, 255),
    )
    figure, axes = plt.subplots(2, count, figsize=(2.6 * count, 5.6))
    for axis, image, index in zip(axes.flat, np.asarray(drawn), chosen):
        axis.imshow(image)
        axis.set_title(
            ("correct" if iou[index] >= 0.5 else "incorrect")
            + f" (IoU {iou[index]:.2f})",
            fontsize=9,
        )
        axis.axis("off")
    figure.suptitle("held-out classes: true boxes green, top detection blue")
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)


def main(argv=None):
    args = parse_args(argv)
    os.makedirs(args.output_dir, exist_ok=True)
    start = time.time()
    per_seed, curves, detectors = [], None, None
    for seed in args.seeds:
        results, seed_curves, seed_detectors = run_seed(args, seed)
        per_seed.append(results)
        if curves is None:
            curves, detectors = seed_curves, seed_detectors
    summary = summarise(per_seed)
    report = {
        "command": " ".join(
            ["python -m benchmarks.reproduce_objectness", *sys.argv[1:]]
        ),
        "arguments": vars(args),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "minutes": round((time.time() - start) / 60, 1),
        "paper_auc": {f"{i}/{b}_boxes": v for (i, b), v in PAPER.items()},
        "summary": summary,
        "per_seed": per_seed,
    }
    path = os.path.join(args.output_dir, "objectness.json")
    with open(path, "w") as file:
        json.dump(report, file, indent=2)
    plot_curves(curves, os.path.join(args.output_dir, "objectness_pr.png"))
    plot_gallery(
        args,
        detectors["pretrained/trained_boxes"],
        os.path.join(args.output_dir, "objectness_gallery.png"),
    )
    print(json.dumps(summary, indent=2))
    print(f"wrote {path} in {report['minutes']} minutes")
    return report


if __name__ == "__main__":
    main()
