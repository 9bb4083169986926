"""Adding classes to a trained detector from image labels alone.

On the bundled `silhouette_scenes`, the ten classes without boxes in the
default split (A) are held out of everything: a 10-class classifier is
trained on the image labels of B alone and fine-tuned (joint) into a
detector on B's boxes. A's classes are then added with
`keras_objectness.add_classes` from 50, 200 or all of their
classification images (no box, no retraining). Their AP is reported next
to (a) the same classes as box-less classes of the first training (a
20-class classifier fine-tuned the same way) and (b) that classifier's
softmax on the proposals (the classifier-only baseline); B's AP before
and after adding must not move, and B's scores are compared bit for bit.

    python -m benchmarks.add_classes --help
    python -m benchmarks.add_classes --quick   # a smoke run (tiny data)

Writes `--output-dir/add_classes.json` (default `benchmarks/results`).
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


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    add = parser.add_argument
    add("--data-dir", default="runs/tfds", help="TFDS data folder")
    add("--config", default="default", help="silhouette_scenes config")
    add("--output-dir", default=os.path.join("benchmarks", "results"))
    add("--seed", type=int, default=0, help="seed of every training")
    add("--classifier-epochs", type=int, default=8)
    add("--finetune-epochs", type=int, default=2)
    add("--test-images", type=int, default=300)
    add("--proposals", type=int, default=100)
    add("--counts", nargs="+", default=["50", "200", "all"],
        help="classification images per added class")  # fmt: skip
    add("--knn", type=int, default=5, help="neighbours in B")
    add(
        "--cache-dir",
        default=os.path.join("runs", "add_classes"),
        help="trained models are saved here and reused when present",
    )
    add("--reuse-first-training", default=None, metavar="JSON",
        help="take the 20-class rows (classifier alone, A box-less) from "
        "an earlier add_classes.json of the same config and seed")  # fmt: skip
    add("--quick", action="store_true", help="tiny config")
    args = parser.parse_args(argv)
    if args.quick:
        args.config, args.classifier_epochs, args.finetune_epochs = "tiny", 1, 1
        args.test_images, args.proposals, args.counts = 8, 10, ["5", "all"]
    return args


def main(argv=None):
    args = parse_args(argv)
    log = ko.workflows.StageLog()
    source = ko.workflows.TfdsSource(
        f"silhouette_scenes/{args.config}", args.data_dir
    )
    source.prepare()
    split = source.class_split()  # B: 10 classes with boxes, A: 10 without
    b, a = list(split.detection_classes), list(split.heldout_classes)
    command = ["python -m benchmarks.add_classes", *sys.argv[1:]]
    out = {"command": " ".join(command),
           "machine": ko.workflows.lsda.machine(), "seeds": [args.seed],
           "config": vars(args), "class_names": list(split.class_names),
           "detection_classes": b, "added_classes": a}  # fmt: skip
    with log.stage("test scenes and proposals"):
        images, truth = ko.workflows.test_arrays(source, args.test_images)
        boxes = ko.workflows.make_proposals(
            images, "selective_search", args.proposals, verbose=False
        )

    def evaluate(network, ids, **kwargs):
        """AP with the network's class `i` reported as dataset id `ids[i]`."""
        found = dict(ko.workflows.detect_on_proposals(
            network, images, boxes, verbose=False, **kwargs))  # fmt: skip
        table = np.asarray(ids)
        found["classes"] = np.where(
            found["classes"] >= 0, table[np.maximum(found["classes"], 0)], -1
        )
        return ko.workflows.evaluate_detections(found, truth, split)

    train = source.load("classification_train")
    valid = source.load("classification_validation")
    scenes = source.load("detection_train")
    cache = _Cache(args.cache_dir, log)
    if args.reuse_first_training:
        with open(args.reuse_first_training) as file:
            earlier = json.load(file)
        for key in ("classifier_only", "boxless_in_first_training"):
            out[key] = earlier[key]
        top1_20 = earlier["classifier_accuracy"]["20_classes"]
        out["first_training_reused_from"] = {
            "command": earlier["command"],
            "seconds": earlier["seconds"],
        }
    else:
        # (a) and (b): all 20 classes' image labels in the first training.
        keras.utils.set_random_seed(args.seed)
        classifier20, top1_20 = cache.get("classifier20", lambda: _classifier(
            args, train, valid, 20))  # fmt: skip
        with log.stage("classifier-only baseline"):
            out["classifier_only"] = evaluate(classifier20, range(20))
        detector20 = cache.get("detector20", lambda: (_finetune(
            args, classifier20, scenes, train, split), None))[0]  # fmt: skip
        with log.stage("20-class detector (A box-less)"):
            out["boxless_in_first_training"] = evaluate(detector20, range(20))
    # The held-out protocol of this benchmark: A nowhere in training.
    keras.utils.set_random_seed(args.seed)
    train_b, valid_b = _only(train, b), _only(valid, b)
    classifier10, top1_10 = cache.get("classifier10", lambda: _classifier(
        args, train_b, valid_b, 10))  # fmt: skip
    detector10 = cache.get("detector10", lambda: (_finetune(
        args, classifier10, _only(scenes, b), train_b,
        ko.ClassSplit(10, range(10))), None))[0]  # fmt: skip
    with log.stage("10-class detector (A held out)"):
        out["before_adding"] = evaluate(detector10, b)
    out["classifier_accuracy"] = {"20_classes": top1_20, "10_classes": top1_10}
    _write(args, out, log)

    new_images, new_labels = _images_of(train, a, 32)
    names = [split.class_names[i] for i in a]
    out["added"], out["seconds_to_add"] = {}, {}
    # With B's classification images as the contrast the new columns need
    # (the first training had them); without, and without offsets, for
    # comparison.
    variants = [(c, "knn", True) for c in args.counts]
    last = args.counts[-1]
    variants += [(last, "knn", False), (last, "none", True)]
    reference = _images_of(train, b, 32)
    for count, adaptation, with_reference in variants:
        keep = _first(new_labels, None if count == "all" else int(count))
        key = f"{count}/{adaptation}"
        key += "/with_B_images" if with_reference else ""
        with log.stage(f"add {len(a)} classes: {key} ({keep.size} images)"):
            start = time.perf_counter()
            grown = ko.add_classes(
                detector10, (new_images[keep], new_labels[keep]), names,
                existing_class_names=[split.class_names[i] for i in b],
                reference_examples=reference if with_reference else None,
                adaptation=adaptation, knn=args.knn)  # fmt: skip
            seconds = time.perf_counter() - start
            out["seconds_to_add"][key] = round(seconds, 2)
            out["added"][key] = evaluate(grown, b + a)
            out["added"][key]["images_per_class"] = int(keep.size // len(a))
        out.setdefault("columns", {})[key] = _column_stats(grown, len(b))
        if key == f"{last}/knn/with_B_images":
            out["b_scores_identical"] = _same_scores(detector10, grown, images,
                                                     boxes)  # fmt: skip
            with log.stage("B uncapped before/after (no max_detections cap)"):
                cap = dict(max_detections=args.proposals * 20)
                out["b_uncapped"] = {
                    "before": evaluate(detector10, b, **cap),
                    "after": evaluate(grown, b + a, **cap),
                }
        _write(args, out, log)
    print(f"wrote {_write(args, out, log)}")
    _print_table(out, a, b)


class _Cache:
    """Trained models saved in a folder, loaded when already there."""

    def __init__(self, folder, log):
        self.folder, self.log = folder, log

    def get(self, name, train):
        path = os.path.join(self.folder, f"{name}.keras")
        meta = path.replace(".keras", ".json")
        if os.path.exists(path) and os.path.exists(meta):
            with open(meta) as file:
                extra = json.load(file)["extra"]
            return keras.saving.load_model(path, safe_mode=True), extra
        with self.log.stage(f"train {name}"):
            model, extra = train()
        os.makedirs(self.folder, exist_ok=True)
        model.save(path)
        with open(meta, "w") as file:
            json.dump({"extra": extra}, file)
        return model, extra


def _column_stats(network, num_old):
    head = ko.adaptation.find_background_head(network)
    w_c = keras.ops.convert_to_numpy(head.classification_kernel)
    b_c = keras.ops.convert_to_numpy(head.classification_bias)
    norms = np.linalg.norm(w_c, axis=0)
    return {"old_column_norm": round(float(norms[:num_old].mean()), 3),
            "new_column_norm": round(float(norms[num_old:].mean()), 3),
            "old_bias": round(float(b_c[:num_old].mean()), 3),
            "new_bias": round(float(b_c[num_old:].mean()), 3)}  # fmt: skip


def _classifier(args, train, valid, num_classes):
    classifier, _ = ko.workflows.build_classifier(
        "alexnet_small", num_classes, 32
    )
    return ko.workflows.train_classifier(
        classifier, train, valid, num_classes, epochs=args.classifier_epochs,
        seed=args.seed, verbose=0)  # fmt: skip


def _finetune(args, classifier, scenes, images, class_split):
    return ko.workflows.finetune_detector(
        classifier, scenes, class_split, method="joint",
        epochs=args.finetune_epochs, seed=args.seed,
        classification_examples=images, verbose=0)  # fmt: skip


def _only(dataset, classes):
    """Examples whose objects are all of `classes`, labels renumbered."""
    table = np.full((20,), -1, "int64")
    table[classes] = np.arange(len(classes))
    table = tf.constant(table)

    def keep(example):
        return tf.reduce_all(tf.gather(table, example["objects"]["label"]) >= 0)

    def renumber(example):
        example = dict(example)
        objects = dict(example["objects"])
        objects["label"] = tf.gather(table, objects["label"])
        example["objects"] = objects
        return example

    return dataset.filter(keep).map(renumber)


def _images_of(dataset, classes, size):
    """Whole classification images of `classes`; labels index `classes`."""
    images, labels = [], []
    batches = ko.data.classification_dataset(dataset, size, 256, 20)
    for batch, label in batches:
        images.append(batch.numpy())
        labels.append(label.numpy())
    images, labels = np.concatenate(images), np.concatenate(labels)
    table = np.full((20,), -1)
    table[classes] = np.arange(len(classes))
    keep = table[labels] >= 0
    return images[keep], table[labels[keep]]


def _first(labels, count):
    """Indices of the first `count` examples of every class (all: None)."""
    keep = [np.flatnonzero(labels == c)[:count] for c in np.unique(labels)]
    return np.sort(np.concatenate(keep))


def _same_scores(before, after, images, boxes, count=20):
    crops = ko.layers.RegionCrops(32, 0.1)(images[:count], boxes[:count])
    crops = np.reshape(crops, (-1,) + tuple(crops.shape[2:]))
    s0 = ko.workflows.region_scores_model(before).predict(crops, verbose=0)
    s1 = ko.workflows.region_scores_model(after).predict(crops, verbose=0)
    k = s0.shape[1]
    return {"regions": int(len(crops)), "identical": bool(
        np.array_equal(s0, s1[:, :k])),
        "max_abs_difference": float(np.abs(s0 - s1[:, :k]).max())}  # fmt: skip


def _write(args, out, log):
    out["seconds"] = dict(log.seconds)
    os.makedirs(args.output_dir, exist_ok=True)
    path = os.path.join(args.output_dir, "add_classes.json")
    with open(path, "w") as file:
        json.dump(out, file, indent=2)
    return path


def _mean(result, ids):
    values = [result["average_precision"][i] for i in ids]
    values = [v for v in values if v is not None]
    return round(float(np.mean(values)), 2) if values else None


def _print_table(out, a, b):
    print("| detector | images per added class | A mAP | B mAP |")
    print("|---|---|---|---|")
    rows = [
        ("classifier alone (20 classes)", "all", out["classifier_only"]),
        (
            "A box-less in the first training",
            "all",
            out["boxless_in_first_training"],
        ),
        ("before adding (10 classes)", "-", out["before_adding"]),
    ]
    rows += [(f"A added ({key})", str(r["images_per_class"]), r)
             for key, r in out["added"].items()]  # fmt: skip
    for name, count, result in rows:
        print(f"| {name} | {count} | {_mean(result, a)} | {_mean(result, b)} |")


if __name__ == "__main__":
    main()
