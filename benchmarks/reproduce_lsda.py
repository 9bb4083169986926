"""Reproduce the LSDA ablation (its Table 1) on silhouette_scenes.

One 20-class image classifier and one set of proposals per test image are
made once; every row of the table then fine-tunes a fresh copy of the
classifier, as a detection network with a background unit, on region crops
of the 10 trained classes B, training only the layers the row names:

- "No adapt": the classifier's softmax on the proposals, no background.
- "fcbgrnd": only the background unit of the output layer (backbone and
  the output columns of B frozen: `train_detection_classes=False`).
- "fc6", "fc7": those hidden layers as well; "fcB": the output columns of
  B as well; "layers1-7": the whole backbone.
- "Avg NN": the last network with its held-out output columns moved by the
  average change of the k nearest classes of B (`adapt_classifier`).
- "Oracle": the full fine-tune with the boxes of all 20 classes.
- "Ours: METHOD": not in the paper: the full fine-tune with the package's
  adaptation method (`--method`, by default what `method="auto"` picks
  for this data) instead of the paper's masked head and kNN offsets, with
  every other setting of the "layers1-7" row.

Rows without output-layer adaptation score the held-out classes A with the
classifier's own columns `W^c` (the masked head never moves them). mAP is
VOC AP at IoU 0.5 on `test_mixed` (every scene holds classes of both A and
B), per-class NMS 0.3.

Proposals: 100 per test image from OpenCV selective search by default (the
paper's source); the objectness detector of `keras_objectness.workflows`
(trained on the boxes of B) and fixed sliding windows are the other
`--proposal-source` choices, and the recall of all three is reported.

Every step is a function of `keras_objectness.workflows` (the recipe that
`keras-objectness run` runs), called here with the settings of the run
that wrote `benchmarks/results/lsda.json`, passed explicitly.

To fit the 2-core budget, convolution features are computed once per
distinct set of convolution weights: the crops of all proposals are cut
once, the 6 rows whose convolutions stay frozen train fc6/fc7/the head on
cached conv5 features of the training regions (the region pipeline draws
the same seeded regions every epoch, so this is the same training), and
every row scores cached conv5 features with its own fc6, fc7 and head
before the same per-class NMS as `region_detector`. The JSON records a
check of this path against `workflows.detect_on_proposals` (the same
crops, scores and NMS as `region_detector`, over the whole network) on a
few images.

    python -m benchmarks.reproduce_lsda --help
    python -m benchmarks.reproduce_lsda --data-dir runs/tfds

Writes to `--output-dir` (default `benchmarks/results`, file stem
`--results-name`, default `lsda`): `lsda.json` (every
row beside the paper's numbers, the shape checks, classifier accuracy,
proposal recall, timings, the command and the machine), `lsda_errors.png`
(false positives on held-out classes, classifier vs adapted network, as
the paper's Figure 5) and `lsda_gallery.png` (detections of the classifier,
top, and of the adapted network, bottom: B green, A orange).
"""

import argparse
import dataclasses
import hashlib
import json
import os
import sys
import time

import keras
import numpy as np
from keras import ops

import keras_objectness as ko
from keras_objectness import workflows
from keras_objectness.adaptation import find_background_head
from keras_objectness.workflows.classifiers import BACKBONE
from keras_objectness.workflows.lsda import machine
from keras_objectness.workflows.proposals import SILHOUETTE_BOX_SPACE

FC6 = f"{BACKBONE}_fc6"
FC7 = f"{BACKBONE}_fc7"
NO_ADAPT = "No adapt (classification network)"
FULL = "fcbgrnd,layers1-7,fcB"
KNN5 = "fcbgrnd,layers1-7,fcB + Avg NN (k=5)"
KNN_ALL = "fcbgrnd,layers1-7,fcB + Avg NN (k=all of B)"
ORACLE = "Oracle: full detection network"
OURS = "Ours: {method} (fcbgrnd,layers1-7,fcB)"

# Fine-tuned rows: (name, backbone layers trained or None for all, whether
# the output columns of B train).
FINETUNED_ROWS = (
    ("fcbgrnd", (), False),
    ("fcbgrnd,fc6", (FC6,), False),
    ("fcbgrnd,fc7", (FC7,), False),
    ("fcbgrnd,fcB", (), True),
    ("fcbgrnd,fc6,fc7", (FC6, FC7), False),
    ("fcbgrnd,fc6,fc7,fcB", (FC6, FC7), True),
)

# Table 1 of the paper (ILSVRC2013 val2, 100 trained + 100 held-out
# categories): mAP over B ("trained"), A ("held-out") and all, in percent.
# Its "k=100" row averages all of B, our "k=all of B" (10 classes).
PAPER = {
    NO_ADAPT: (12.63, 10.31, 11.90),
    "fcbgrnd": (14.93, 12.22, 13.60),
    "fcbgrnd,fc6": (24.72, 13.72, 19.20),
    "fcbgrnd,fc7": (23.41, 14.57, 19.00),
    "fcbgrnd,fcB": (18.04, 11.74, 14.90),
    "fcbgrnd,fc6,fc7": (25.78, 14.20, 20.00),
    "fcbgrnd,fc6,fc7,fcB": (26.33, 14.42, 20.40),
    FULL: (27.81, 15.85, 21.83),
    KNN5: (28.12, 15.97, 22.05),
    KNN_ALL: (27.91, 15.96, 21.94),
    ORACLE: (29.72, 26.25, 28.00),
}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--data-dir", default="runs/tfds")
    parser.add_argument("--config", default="default")
    parser.add_argument(
        "--output-dir", default=os.path.join("benchmarks", "results")
    )
    parser.add_argument("--classifier-epochs", type=int, default=16)
    parser.add_argument("--proposer-epochs", type=int, default=16)
    parser.add_argument("--finetune-epochs", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--finetune-learning-rate", type=float, default=1e-4)
    parser.add_argument("--regions-per-image", type=int, default=8)
    parser.add_argument("--positive-fraction", type=float, default=0.25)
    parser.add_argument("--proposals", type=int, default=100)
    parser.add_argument(
        "--proposal-source",
        choices=workflows.PROPOSAL_SOURCES,
        default="selective_search",
        help="proposals scored by every row; the recall of all sources is "
        "reported for the first test split",
    )
    parser.add_argument("--proposal-iou", type=float, default=0.5)
    parser.add_argument(
        "--test-splits",
        nargs="+",
        default=["test_mixed", "test_heldout", "test_trained"],
        help="test splits evaluated; the first one drives the table, the "
        "checks and the figures",
    )
    parser.add_argument(
        "--results-name",
        default="lsda",
        help="stem of the files written: NAME.json, NAME_errors.png, "
        "NAME_gallery.png",
    )
    parser.add_argument("--max-test-images", type=int, default=None)
    parser.add_argument("--max-train-examples", type=int, default=None)
    parser.add_argument(
        "--backup-dir",
        default=os.path.join("runs", "reproduce_lsda", "backup"),
        help="resume checkpoints of the trainings (removed when each ends): "
        "a killed run started again with the same flags continues",
    )
    parser.add_argument(
        "--method",
        choices=("auto",) + tuple(workflows.METHODS),
        default="auto",
        help="adaptation method of the 'Ours' row (not in the paper); auto: "
        "the main job's default for this data",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--verbose", type=int, choices=(0, 1, 2), default=0)
    return parser.parse_args(argv)


def recipe(args):
    """The workflow settings of this run, every one of them explicit.

    The flags' defaults and the constants here are those of the run that
    wrote `benchmarks/results/lsda.json`; `WorkflowConfig` checks them
    and the JSON records them. As `keras-objectness run` settings they
    give the table's "No adapt" and "Avg NN (k=5)" rows.
    """
    return workflows.WorkflowConfig(
        output_dir=args.output_dir,
        seed=args.seed,
        batch_size=args.batch_size,
        classifier="alexnet_small",
        crop_size=32,
        classifier_epochs=args.classifier_epochs,
        classifier_min_crop=0.75,
        dropout_rate=0.2,
        learning_rate=args.learning_rate,
        proposal_source=args.proposal_source,
        proposals=args.proposals,
        proposer_epochs=args.proposer_epochs,
        proposer_image_size=64,
        proposal_iou=args.proposal_iou,
        method="lsda",
        knn=5,
        finetune_epochs=args.finetune_epochs,
        finetune_learning_rate=args.finetune_learning_rate,
        regions_per_image=args.regions_per_image,
        positive_fraction=args.positive_fraction,
        flip=True,
        iou_threshold=0.3,
        max_test_images=args.max_test_images,
        gallery_images=6,
        save_freq=50,
        backup_dir=args.backup_dir,
        verbose=args.verbose,
    )


def training_options(config, name, learning_rate):
    """The keyword arguments every workflow training takes."""
    return dict(
        batch_size=config.batch_size,
        learning_rate=learning_rate,
        flip=config.flip,
        seed=config.seed,
        # One folder per training: a restarted benchmark must not resume
        # one training from another's checkpoint.
        backup_dir=os.path.join(config.backup_dir, name),
        save_freq=config.save_freq,
        verbose=config.verbose,
    )


class Timer:
    """Prints each step with the time since the start; keeps the laps."""

    def __init__(self):
        self.start = self.last = time.time()
        self.laps = {}

    def lap(self, name):
        now = time.time()
        self.laps[name] = round(now - self.last, 1)
        print(
            f"[{now - self.start:6.0f} s] {name}: {self.laps[name]} s",
            flush=True,
        )
        self.last = now

    @property
    def total(self):
        return round(time.time() - self.start, 1)


def run(args):
    config = recipe(args)
    timer = Timer()
    keras.utils.set_random_seed(config.seed)
    dataset = f"silhouette_scenes/{args.config}"
    source = workflows.TfdsSource(
        dataset, args.data_dir, max_examples=args.max_train_examples
    )
    source.prepare()
    num_classes = source.num_classes
    class_split = source.class_split()
    timer.lap("dataset")

    classifier, _ = workflows.build_classifier(
        config.classifier, num_classes, config.crop_size, config.dropout_rate
    )
    classifier, accuracy = workflows.train_classifier(
        classifier,
        workflows.classification_examples(
            source, "classification_train", config.crop_size
        ),
        workflows.classification_examples(
            source, "classification_validation", config.crop_size
        ),
        num_classes,
        epochs=config.classifier_epochs,
        min_crop=config.classifier_min_crop,
        **training_options(config, "classifier", config.learning_rate),
    )
    print(f"classifier top-1 accuracy: {accuracy:.3f}")
    timer.lap("classifier")
    # The objectness proposer is trained (boxes of B only) in every run,
    # so its recall is reported whichever source the rows use.
    proposer = workflows.train_proposer(
        source.load("detection_train"),
        num_classes,
        class_split.detection_classes,
        epochs=config.proposer_epochs,
        image_size=config.proposer_image_size,
        box_space=ko.BoxSpace(**SILHOUETTE_BOX_SPACE),
        **training_options(config, "proposer", config.learning_rate),
    )
    timer.lap("proposer")

    tests, recalls = {}, {}
    for split in args.test_splits:
        images, ground_truth = workflows.test_arrays(
            workflows.TfdsSource(
                dataset, args.data_dir, splits={"test": split}
            ),
            config.max_test_images,
        )
        kinds = (
            workflows.PROPOSAL_SOURCES
            if split == args.test_splits[0]
            else (config.proposal_source,)
        )
        for kind in kinds:
            candidates = workflows.make_proposals(
                images,
                kind,
                config.proposals,
                proposer,
                config.proposal_iou,
                verbose=config.verbose > 0,
            )
            recall = ko.evaluation.proposal_recall(candidates, ground_truth)
            recalls.setdefault(split, {})[kind] = round(recall, 4)
            print(
                f"{split}: {len(images)} images, {config.proposals} {kind} "
                f"proposals each: recall {recall:.3f} at IoU 0.5",
                flush=True,
            )
            if kind == config.proposal_source:
                proposals = candidates
        tests[split] = RegionCache(
            images, ground_truth, proposals, recalls[split], config.crop_size
        )
    timer.lap("proposals and test crops")

    rows, detections = {}, {}

    def score(name, network):
        rows[name] = {}
        for split, test in tests.items():
            found = test.detect(network)
            rows[name][split] = workflows.evaluate_detections(
                found, test.ground_truth, class_split
            )
            if split == args.test_splits[0]:
                detections[name] = found
        print(_format_row(name, rows[name][args.test_splits[0]]), flush=True)
        timer.lap(name)

    score(NO_ADAPT, classifier)

    # Rows whose convolutions stay frozen train fc6/fc7/the head on cached
    # conv features of one epoch of region crops (see `train_top`).
    crops, labels = region_arrays(config, source, class_split)
    classifier_trunk = trunk_model(classifier)
    features = classifier_trunk.predict(crops, batch_size=512, verbose=0)
    timer.lap(f"cached {len(labels)} training regions")
    for name, layers, train_b in FINETUNED_ROWS:
        keras.utils.set_random_seed(config.seed)
        adapter = ko.callbacks.DetectorAdapter(adapt_output_layer=False)
        network = workflows.detection_network_copy(
            classifier,
            class_split.detection_classes,
            learning_rate=config.finetune_learning_rate,
            trainable_layers=layers,
            train_detection_classes=train_b,
        )
        train_top(config, network, features, labels, [adapter])
        if weights_key(trunk_model(network)) != weights_key(classifier_trunk):
            raise RuntimeError(f"The convolutions of row {name!r} moved.")
        score(name, network)

    finetune = dict(
        epochs=config.finetune_epochs,
        regions_per_image=config.regions_per_image,
        positive_fraction=config.positive_fraction,
    )
    keras.utils.set_random_seed(config.seed)
    # "none": B trained with A masked, A left at W^c (no adaptation yet).
    network = workflows.finetune_detector(
        classifier,
        source.load("detection_train"),
        class_split,
        method="none",
        **finetune,
        **training_options(
            config, "finetune_trained", config.finetune_learning_rate
        ),
    )
    timer.lap(f"fine-tuning {FULL}")
    check = tests[args.test_splits[0]].check_against_whole_network(network)
    score(FULL, network)
    # The output-layer adaptation works from the head's snapshot W^c and
    # B's fine-tuned columns only, so the same network adapts twice.
    ko.adapt_classifier(network, knn=5)
    score(KNN5, network)
    ko.adapt_classifier(network, knn="all")
    score(KNN_ALL, network)
    keras.utils.set_random_seed(config.seed)
    oracle = workflows.finetune_detector(
        classifier,
        source.load("oracle_train"),
        class_split,
        oracle=True,
        **finetune,
        **training_options(
            config, "finetune_oracle", config.finetune_learning_rate
        ),
    )
    timer.lap(f"fine-tuning {ORACLE}")
    score(ORACLE, oracle)

    # Everything of the layers1-7 row but the method; `finetune_from_config`
    # is the main job's own fine-tuning.
    ours = dataclasses.replace(
        config, method=args.method, frozen_layers=0
    ).for_source(source)
    keras.utils.set_random_seed(config.seed)
    network = workflows.finetune_from_config(
        classifier,
        source,
        class_split,
        ours,
        backup_dir=os.path.join(config.backup_dir, "finetune_ours"),
    )
    ours_row = OURS.format(method=ours.method)
    timer.lap(f"fine-tuning {ours_row}")
    score(ours_row, network)

    figures = _figures(args, tests, detections, class_split)
    timer.lap("figures")
    return {
        "classifier_accuracy": accuracy,
        "class_split": class_split,
        "tests": tests,
        "rows": rows,
        "figures": figures,
        "scoring_check": check,
        "config": config,
        "timer": timer,
    }


# === Cached scoring ===


def trunk_model(network):
    """The backbone's convolutional part: crops to conv5 features."""
    backbone = network.get_layer(BACKBONE)
    return keras.Model(
        backbone.inputs,
        backbone.get_layer(f"{BACKBONE}_flatten").output,
    )


def top_layers(network):
    """fc6, its dropout, fc7, its dropout: conv5 features to fc7."""
    backbone = network.get_layer(BACKBONE)
    return [
        backbone.get_layer(f"{BACKBONE}_{name}")
        for name in ("fc6", "fc6_dropout", "fc7", "fc7_dropout")
    ]


def _output_layer(network):
    try:
        return find_background_head(network)
    except ValueError:
        return network.get_layer("classifier_predictions")


def top_scores(network, features, batch_size=4096):
    """Per-class scores of cached conv5 features, as `region_detector`.

    A detection network gives its head's `w_i . x - w_bg . x`; the bare
    classifier gives `log(p / (1 - p))` of its softmax `p`, as
    `workflows.region_scores_model` does. Layers are
    called eagerly, so no new graph node is added to them.
    """
    layers = top_layers(network)
    output = _output_layer(network)
    scores = []
    for start in range(0, len(features), batch_size):
        x = ops.convert_to_tensor(features[start : start + batch_size])
        for layer in layers:
            x = layer(x, training=False)
        if isinstance(output, ko.layers.BackgroundHead):
            x = output(x, output_mode="scores")
        else:
            p = ops.clip(output(x), 1e-7, 1.0 - 1e-7)
            x = ops.log(p) - ops.log1p(-p)
        scores.append(ops.convert_to_numpy(x))
    return np.concatenate(scores)


def weights_key(model):
    digest = hashlib.sha1()
    for weight in model.weights:
        digest.update(np.ascontiguousarray(ops.convert_to_numpy(weight)))
    return digest.hexdigest()


class RegionCache:
    """One test split's proposals, crops and conv features by weights.

    Scoring every row with `region_detector` would crop the 600 x 100
    proposals and run the whole network for each of the 11 rows. The
    crops here are cut once with the same `RegionCrops` layer, conv5
    features are computed once per distinct set of convolution weights
    (the classifier's serve 7 rows), and only fc6, fc7 and the output
    layer run per row, followed by the same `RegionDetections`.
    `check_against_region_detector` compares both paths.
    """

    def __init__(self, images, ground_truth, proposals, recalls, crop_size):
        self.images = images
        self.ground_truth = ground_truth
        self.proposals = proposals
        self.recalls = recalls
        cropper = ko.layers.RegionCrops(crop_size, 0.1)
        crops = [
            ops.convert_to_numpy(
                cropper(images[i : i + 50], proposals[i : i + 50])
            )
            for i in range(0, len(images), 50)
        ]
        self.crops = np.concatenate(crops).reshape(
            (-1, crop_size, crop_size, 3)
        )
        self._features = {}

    def features(self, network):
        trunk = trunk_model(network)
        key = weights_key(trunk)
        if key not in self._features:
            # Two feature sets at most: the classifier's and the latest.
            if len(self._features) == 2:
                self._features.pop(list(self._features)[1])
            self._features[key] = trunk.predict(
                self.crops, batch_size=512, verbose=0
            )
        return self._features[key]

    def detect(self, network, count=None):
        count = len(self.images) if count is None else count
        per_image = self.proposals.shape[1]
        features = self.features(network)[: count * per_image]
        scores = top_scores(network, features)
        scores = scores.reshape((count, per_image, -1))
        nms = ko.layers.RegionDetections(100, 0.3)
        proposals = self.proposals[:count]
        outputs = [
            nms(proposals[i : i + 100], scores[i : i + 100])
            for i in range(0, count, 100)
        ]
        return {
            key: np.concatenate([ops.convert_to_numpy(o[key]) for o in outputs])
            for key in outputs[0]
        }

    def check_against_whole_network(self, network, count=8):
        """Largest confidence difference to the whole network's detections.

        The reference is `workflows.detect_on_proposals`: the same crops,
        scores and NMS as `region_detector`, through the whole network.
        """
        count = min(count, len(self.images))
        reference = workflows.detect_on_proposals(
            network,
            self.images[:count],
            self.proposals[:count],
            iou_threshold=0.3,
            verbose=False,
        )
        cached = self.detect(network, count)
        return {
            "images": count,
            "max_confidence_difference": float(
                np.max(np.abs(reference["confidence"] - cached["confidence"]))
            ),
            "same_classes": bool(
                np.array_equal(reference["classes"], cached["classes"])
            ),
        }


def region_arrays(config, source, class_split):
    """One epoch of labelled training regions of B as numpy arrays.

    `region_dataset` draws the same regions (seeded) in every epoch and
    only reshuffles their order, so one epoch of crops is the whole
    training set of a fine-tuning run.
    """
    crops, labels = [], []
    batches = workflows.region_batches(
        source.load("detection_train"),
        class_split.detection_classes,
        class_split.num_classes,
        crop_size=config.crop_size,
        batch_size=config.batch_size,
        regions_per_image=config.regions_per_image,
        positive_fraction=config.positive_fraction,
        flip=config.flip,
        seed=config.seed,
    )
    for x, y in batches:
        crops.append(x.numpy())
        labels.append(y.numpy())
    return np.concatenate(crops), np.concatenate(labels)


def train_top(config, network, features, labels, callbacks):
    """Fine-tunes fc6, fc7 and the head of `network` on conv5 features.

    For rows whose convolutions are frozen this is the same training as
    `network.fit` on the crops (same layers, dropout, loss, optimizer and
    `DetectorAdapter`), without recomputing the frozen convolutions.
    """
    inputs = keras.Input(features.shape[1:])
    x = inputs
    for layer in top_layers(network):
        x = layer(x)
    top = keras.Model(inputs, find_background_head(network)(x))
    top.compile(
        keras.optimizers.Adam(config.finetune_learning_rate),
        keras.losses.SparseCategoricalCrossentropy(),
    )
    top.fit(
        features,
        labels,
        batch_size=config.batch_size,
        epochs=config.finetune_epochs,
        shuffle=True,
        callbacks=list(callbacks),
        verbose=config.verbose,
    )


def _figures(args, tests, detections, class_split):
    test = tests[args.test_splits[0]]
    images, ground_truth = test.images, test.ground_truth
    breakdowns = {}
    for name in (NO_ADAPT, KNN5):
        analyzer = ko.evaluation.FalsePositiveAnalyzer(
            classes=class_split.heldout_classes
        )
        analyzer.update_state(ground_truth, detections[name])
        breakdowns[name] = analyzer.result()
    errors = plot_error_panels(
        [breakdowns[NO_ADAPT], breakdowns[KNN5]],
        [
            "(a) Classification network",
            "(b) Adapted network (LSDA, k=5)",
        ],
        os.path.join(args.output_dir, f"{args.results_name}_errors.png"),
    )
    gallery = workflows.draw_gallery(
        images,
        ground_truth,
        [detections[NO_ADAPT], detections[KNN5]],
        class_split,
        os.path.join(args.output_dir, f"{args.results_name}_gallery.png"),
        count=6,
        titles=["(a) classification network", "(b) adapted network, k=5"],
    )
    return {
        "errors": errors,
        "gallery": gallery,
        "false_positives_heldout": {
            name: {
                "counts": breakdown["counts"].tolist(),
                **{
                    kind: np.round(breakdown[kind], 4).tolist()
                    for kind in ko.evaluation.ERROR_TYPES
                },
                "num_false_positives": breakdown["num_false_positives"],
            }
            for name, breakdown in breakdowns.items()
        },
    }


def plot_error_panels(breakdowns, titles, path):
    """Two stacked-area panels of false-positive types (LSDA Figure 5)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    labels = {"localization": "Loc", "confusion": "Oth", "background": "BG"}
    colors = {
        "localization": "#4c72b0",
        "confusion": "#55a868",
        "background": "#c44e52",
    }
    figure = Figure(figsize=(8.0, 3.2), dpi=100)
    FigureCanvasAgg(figure)
    for index, (breakdown, title) in enumerate(zip(breakdowns, titles)):
        axes = figure.add_subplot(1, len(breakdowns), index + 1)
        counts = np.asarray(breakdown["counts"], dtype="float64")
        axes.stackplot(
            counts,
            *[
                100.0 * np.nan_to_num(np.asarray(breakdown[kind], "float64"))
                for kind in ko.evaluation.ERROR_TYPES
            ],
            labels=[labels[kind] for kind in ko.evaluation.ERROR_TYPES],
            colors=[colors[kind] for kind in ko.evaluation.ERROR_TYPES],
        )
        axes.set_xscale("log", base=2)
        axes.set_xticks(counts)
        axes.set_xticklabels([str(int(n)) for n in counts], fontsize=7)
        axes.set_xlim(counts[0], counts[-1])
        axes.set_ylim(0, 100)
        axes.set_xlabel("total false positives")
        axes.set_ylabel("percentage of each type")
        axes.set_title(f"{title}\nheld-out classes", fontsize=9)
        axes.legend(loc="lower left", fontsize=7)
    figure.tight_layout()
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    figure.savefig(path, format="png")
    return path


def _format_row(name, result):
    return (
        f"{name:<52} {result['map_trained']:>7.2f} "
        f"{result['map_heldout']:>7.2f} {result['map_all']:>7.2f}"
    )


def _gap_closed(adapted, baseline, oracle):
    return round(workflows.robustness.gap_closed(adapted, baseline, oracle), 3)


def shape_checks(rows, split):
    """The paper's qualitative claims, checked on one test split.

    Beside them, the held-out gap closed and share of the oracle of the
    "Ours" row (issue 11's measures).
    """
    baseline = rows[NO_ADAPT][split]["map_heldout"]
    adapted = rows[KNN5][split]["map_heldout"]
    oracle = rows[ORACLE][split]["map_heldout"]
    gain = adapted / baseline if baseline else float("inf")
    share = adapted / oracle if oracle else float("nan")
    ours = {
        name: {
            "gap_closed": _gap_closed(
                result[split]["map_heldout"], baseline, oracle
            ),
            "over_oracle_heldout": round(
                result[split]["map_heldout"] / oracle, 3
            )
            if oracle
            else float("nan"),
        }
        for name, result in rows.items()
        if name.startswith("Ours:")
    }
    return {
        "adapted_gap_closed_heldout": _gap_closed(adapted, baseline, oracle),
        "ours": ours,
        "adapted_over_no_adaptation_heldout": round(gain, 3),
        "adapted_heldout_at_least_1.5x_no_adaptation": bool(gain >= 1.5),
        "adapted_over_oracle_heldout": round(share, 3),
        "adapted_heldout_at_least_0.6x_oracle": bool(share >= 0.6),
        "paper": {
            "adapted_over_no_adaptation_heldout": round(15.97 / 10.31, 3),
            "adapted_over_oracle_heldout": round(15.97 / 26.25, 3),
            "adapted_gap_closed_heldout": _gap_closed(15.97, 10.31, 26.25),
        },
    }


def main(argv=None):
    args = parse_args(argv)
    print(f"machine: {machine()}")
    outcome = run(args)
    rows = outcome["rows"]
    class_split = outcome["class_split"]
    split = args.test_splits[0]
    table = []
    print(f"\n{'mAP (%) on ' + split:<52} {'B':>7} {'A':>7} {'all':>7}")
    for name, result in rows.items():
        paper = PAPER.get(name)  # None for our rows
        if paper is not None:
            paper = dict(zip(("trained", "heldout", "all"), paper))
        table.append(
            {
                "row": name,
                **{
                    test: {
                        key: value[key]
                        for key in (
                            "map_trained",
                            "map_heldout",
                            "map_all",
                            "average_precision",
                        )
                    }
                    for test, value in result.items()
                },
                "paper": paper,
            }
        )
        in_paper = "   (not in the paper)"
        if paper is not None:
            in_paper = (
                f"   paper {paper['trained']:5.2f} {paper['heldout']:5.2f} "
                f"{paper['all']:5.2f}"
            )
        print(_format_row(name, result[split]) + in_paper)
    checks = shape_checks(rows, split)
    print("shape checks:", json.dumps(checks))
    timer = outcome["timer"]
    results = {
        "command": " ".join(
            ["python -m benchmarks.reproduce_lsda"]
            + (sys.argv[1:] if argv is None else list(argv))
        ),
        "machine": machine(),
        "arguments": vars(args),
        # The workflow settings (the example's arguments before the
        # workflow moved into the library), as `WorkflowConfig` fields.
        "example_arguments": outcome["config"].to_dict(),
        "metric": "VOC all-point AP at IoU 0.5, per-class NMS 0.3, percent",
        "class_names": list(class_split.class_names),
        "detection_classes": list(class_split.detection_classes),
        "classifier_accuracy": round(outcome["classifier_accuracy"], 4),
        "proposals": {
            "per_image": args.proposals,
            "source_used_by_rows": args.proposal_source,
            "num_images": {
                split: int(len(test.images))
                for split, test in outcome["tests"].items()
            },
            "recall_at_iou_0.5": {
                split: test.recalls for split, test in outcome["tests"].items()
            },
        },
        "scoring_check": outcome["scoring_check"],
        "rows": table,
        "shape_checks": checks,
        "figures": outcome["figures"],
        "seconds": timer.laps,
        "total_seconds": timer.total,
    }
    os.makedirs(args.output_dir, exist_ok=True)
    path = os.path.join(args.output_dir, f"{args.results_name}.json")
    with open(path, "w") as file:
        json.dump(results, file, indent=2)
    print(f"wrote {path} in {timer.total:.0f} s")
    return results


if __name__ == "__main__":
    main()
