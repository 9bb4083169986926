"""Reproduce the class-generic objectness experiments on silhouette_scenes.

The paper's grid: a detector initialised from a pretrained classifier or
from random weights, trained with the boxes of the trained classes only
(held-out protocol) or with all boxes, evaluated on test scenes that hold
only held-out classes (AUC of the precision-recall curve, IoU >= 0.5). And
its last experiment: a classifier initialised from the objectness-trained
network vs from scratch (top-1 and top-5 error). The recipe is
`keras_objectness.workflows.objectness_grid`.

    python -m benchmarks.reproduce_objectness --help
    python -m benchmarks.reproduce_objectness --data-dir runs/tfds

Writes `benchmarks/results/objectness.json`, `objectness_pr.png` (the four
precision-recall curves) and `objectness_gallery.png` (correct and
incorrect detections on held-out classes).
"""

import argparse
import inspect
import json
import os
import platform
import sys
import time

import numpy as np

from keras_objectness import workflows

PAPER = {
    ("pretrained", "trained"): 0.475,
    ("random", "trained"): 0.448,
    ("pretrained", "all"): 0.545,
    ("random", "all"): 0.498,
}
# The classifier recipe's defaults are the workflow's own.
RECIPE = inspect.signature(workflows.objectness_grid).parameters


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    add = parser.add_argument
    add("--data-dir", default="runs/tfds", help="TFDS data folder")
    add("--config", default="default", help="silhouette_scenes config")
    add("--epochs", type=int, default=10, help="objectness epochs")
    add(
        "--pretrain-epochs",
        type=int,
        default=RECIPE["pretrain_epochs"].default,
        help="classifier epochs",
    )
    add(
        "--pretrain-min-crop",
        type=float,
        default=RECIPE["pretrain_min_crop"].default,
        help="pretrain on random crops of at least this side; 0 for whole "
        "images",
    )
    add(
        "--dropout-rate",
        type=float,
        default=RECIPE["dropout_rate"].default,
        help="the classifier's dropout after fc6 and fc7",
    )
    add("--seeds", type=int, nargs="+", default=[0], help="seeds to run")
    add(
        "--output-dir",
        default=os.path.join("benchmarks", "results"),
        help="folder of the JSON and figures",
    )
    return parser.parse_args(argv)


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


def main(argv=None):
    args = parse_args(argv)
    os.makedirs(args.output_dir, exist_ok=True)
    start = time.time()
    strategy = workflows.make_strategy("mirrored")
    source = workflows.TfdsSource(
        f"silhouette_scenes/{args.config}", args.data_dir, strategy=strategy
    )
    per_seed, curves, detectors = [], None, None
    for seed in args.seeds:
        results, seed_curves, seed_detectors = workflows.objectness_grid(
            source,
            seed=seed,
            epochs=args.epochs,
            pretrain_epochs=args.pretrain_epochs,
            pretrain_min_crop=args.pretrain_min_crop,
            dropout_rate=args.dropout_rate,
            # Emptied per training: no backup of an earlier run resumes.
            work_dir=os.path.join("runs", "reproduce_objectness", args.config),
            strategy=strategy,
        )
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
    workflows.plot_precision_recall(
        curves, os.path.join(args.output_dir, "objectness_pr.png")
    )
    workflows.draw_objectness_gallery(
        detectors["pretrained/trained_boxes"],
        workflows.load_split(source, "test_heldout"),
        source.num_classes,
        os.path.join(args.output_dir, "objectness_gallery.png"),
    )
    print(json.dumps(summary, indent=2))
    print(f"wrote {path} in {report['minutes']} minutes")
    return report


if __name__ == "__main__":
    main()
