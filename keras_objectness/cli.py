"""The `keras-objectness` command line, over `keras_objectness.workflows`.

    keras-objectness run                      # the main job, bundled data
    keras-objectness run --data voc/2007 --data-dir ~/tensorflow_datasets \\
        --detection-classes person,car,dog
    keras-objectness run --coco-json labels.json --images-dir photos/ \\
        --detection-classes boxed
    keras-objectness add-classes --detector detector.keras \\
        --images new_classes/ --output detector_grown.keras
    keras-objectness train-classifier | train-proposer | adapt | detect |
        evaluate | export | add-classes --help

Exit codes: 0 success, 2 bad arguments or data (a one-line message, no
stack trace), 1 anything unexpected.
"""

import argparse
import dataclasses
import json
import os
import sys

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2


class _Formatter(
    argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter
):
    pass


# === Flags ===


def _add_data_flags(parser):
    group = parser.add_argument_group("data")
    group.add_argument(
        "--data",
        default="silhouette_scenes/workflow",
        help="TFDS dataset name with optional config (the bundled "
        "'silhouette_scenes' whose 'workflow' config holds only the splits "
        "this command reads, 'voc/2007', 'coco/2017', ...), prepared in "
        "--data-dir",
    )
    group.add_argument(
        "--data-dir", default="runs/tfds", help="TFDS data folder"
    )
    group.add_argument(
        "--splits",
        nargs="*",
        default=(),
        metavar="ROLE=SPLIT",
        help="split names per role (classification_train, "
        "classification_validation, detection_train, test), overriding "
        "the dataset's defaults",
    )
    group.add_argument(
        "--coco-json",
        default=None,
        help="a COCO-format annotation file (instead of --data); with "
        "--images-dir. Its images are split into training and test "
        "scenes by --test-fraction",
    )
    group.add_argument(
        "--images-dir", default=None, help="image folder of --coco-json"
    )
    group.add_argument(
        "--test-fraction",
        type=float,
        default=0.2,
        help="share of the --coco-json images held out for testing",
    )
    group.add_argument(
        "--detection-classes",
        default=None,
        help="classes whose boxes are used (B), as comma-separated names "
        "or ids, or 'boxed' (every class with a box in the training "
        "scenes); default: the dataset's own split (silhouette_scenes)",
    )
    group.add_argument(
        "--max-train-examples",
        type=int,
        default=None,
        help="cap on every training split (None: all)",
    )


def _add_config_flags(parser, names):
    """Adds `--name` flags for the `WorkflowConfig` fields in `names`."""
    from keras_objectness.workflows.config import WorkflowConfig

    fields = {field.name: field for field in dataclasses.fields(WorkflowConfig)}
    helps = _field_helps()
    group = parser.add_argument_group("workflow")
    for name in names:
        field = fields[name]
        flag = "--" + name.replace("_", "-")
        default = field.default
        if isinstance(default, bool):
            group.add_argument(
                flag,
                action=argparse.BooleanOptionalAction,
                default=default,
                help=helps.get(name, ""),
            )
            continue
        kind = {int: int, float: float, str: str}.get(type(default), str)
        if name in ("max_test_images",):
            kind = int
        group.add_argument(
            flag,
            type=kind,
            default=default,
            choices=_choices().get(name),
            help=helps.get(name, ""),
        )


def _choices():
    from keras_objectness.workflows.config import PROPOSAL_SOURCES
    from keras_objectness.workflows.finetuning import DETECTORS
    from keras_objectness.workflows.finetuning import METHODS
    from keras_objectness.workflows.precision import PRECISIONS

    return {
        "proposal_source": PROPOSAL_SOURCES,
        "method": ("auto", *METHODS),
        "mixed_precision": tuple(PRECISIONS),
        "region_features": tuple(DETECTORS),
    }


def _field_helps():
    from keras_objectness.workflows.config import WorkflowConfig

    helps = {}
    lines = (WorkflowConfig.__doc__ or "").splitlines()
    current = None
    for line in lines:
        stripped = line.strip()
        if stripped.endswith(":") and " " not in stripped:
            continue
        if ": " in stripped and stripped.split(": ")[0].isidentifier():
            current, text = stripped.split(": ", 1)
            helps[current] = text
        elif current and stripped:
            helps[current] += " " + stripped
        elif not stripped:
            current = None
    return {
        key: value.replace("`", "")
        .replace('"', "")
        .rstrip(".")
        .replace("%", "%%")
        for key, value in helps.items()
    }


RUN_FIELDS = (
    "output_dir",
    "classifier",
    "crop_size",
    "classifier_epochs",
    "classifier_min_crop",
    "dropout_rate",
    "learning_rate",
    "proposal_source",
    "proposals",
    "proposer_epochs",
    "proposer_image_size",
    "proposal_iou",
    "method",
    "knn",
    "image_label_scenes",
    "finetune_epochs",
    "finetune_learning_rate",
    "frozen_layers",
    "regions_per_image",
    "positive_fraction",
    "flip",
    "iou_threshold",
    "max_test_images",
    "gallery_images",
    "batch_size",
    "seed",
    "save_freq",
    "backup_dir",
    "verbose",
    "region_features",
    "mixed_precision",
)


def build_parser():
    """The argument parser of `keras-objectness` and its subcommands."""
    parser = argparse.ArgumentParser(
        prog="keras-objectness",
        description="Turn image classifiers into object detectors for "
        "classes without box labels (LSDA, arXiv 1407.5035; class-generic "
        "objectness, arXiv 1312.6885).",
        formatter_class=_Formatter,
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True

    run = commands.add_parser(
        "run",
        help="the whole recipe: classifier, proposals, fine-tuning with "
        "adaptation, detection and evaluation (the main job)",
        formatter_class=_Formatter,
        description="Train a classifier on image labels of every class, "
        "fine-tune a copy into a detector on the classes with boxes, adapt "
        "the classes without, and report mAP over both next to the "
        "classifier alone. Writes results.json, gallery.png, "
        "classifier.keras and detector.keras to --output-dir.",
    )
    _add_data_flags(run)
    _add_config_flags(run, RUN_FIELDS)
    run.add_argument(
        "--strategy",
        choices=("default", "mirrored", "multi_worker"),
        default="default",
        help="tf.distribute strategy of the trainings (multi_worker reads "
        "TF_CONFIG)",
    )
    run.set_defaults(handler=_run)

    classifier = commands.add_parser(
        "train-classifier",
        help="train a K-class image classifier and save it as .keras",
        formatter_class=_Formatter,
    )
    _add_data_flags(classifier)
    _add_config_flags(
        classifier,
        (
            "output_dir",
            "classifier",
            "crop_size",
            "classifier_epochs",
            "classifier_min_crop",
            "dropout_rate",
            "learning_rate",
            "flip",
            "batch_size",
            "seed",
            "verbose",
            "mixed_precision",
        ),
    )
    classifier.set_defaults(handler=_train_classifier)

    proposer = commands.add_parser(
        "train-proposer",
        help="train a class-generic objectness detector on the boxes of B",
        formatter_class=_Formatter,
    )
    _add_data_flags(proposer)
    _add_config_flags(
        proposer,
        (
            "output_dir",
            "proposer_epochs",
            "proposer_image_size",
            "learning_rate",
            "flip",
            "batch_size",
            "seed",
            "verbose",
        ),
    )
    proposer.set_defaults(handler=_train_proposer)

    adapt = commands.add_parser(
        "adapt",
        help="fine-tune a trained classifier into an all-class detector",
        formatter_class=_Formatter,
    )
    adapt.add_argument(
        "--classifier-file",
        required=True,
        help="the trained classifier (.keras), e.g. from train-classifier",
    )
    _add_data_flags(adapt)
    _add_config_flags(
        adapt,
        (
            "output_dir",
            "method",
            "knn",
            "image_label_scenes",
            "finetune_epochs",
            "finetune_learning_rate",
            "frozen_layers",
            "regions_per_image",
            "positive_fraction",
            "flip",
            "batch_size",
            "seed",
            "verbose",
            "region_features",
            "mixed_precision",
        ),
    )
    adapt.set_defaults(handler=_adapt)

    detect = commands.add_parser(
        "detect",
        help="detect every class in image files; writes JSON and drawings",
        formatter_class=_Formatter,
    )
    detect.add_argument(
        "--detector", required=True, help="a detection network (.keras)"
    )
    detect.add_argument(
        "images", nargs="+", help="image files or folders of images"
    )
    detect.add_argument(
        "--output-dir", default="runs/detections", help="where to write"
    )
    detect.add_argument(
        "--proposals", type=int, default=100, help="proposals per image"
    )
    detect.add_argument(
        "--proposer",
        default=None,
        help="an objectness detector (.keras) for proposals; default: "
        "selective search",
    )
    detect.add_argument(
        "--min-confidence",
        type=float,
        default=0.5,
        help="detections below are left out of the JSON and drawings",
    )
    detect.add_argument(
        "--image-size",
        type=int,
        default=128,
        help="images are resized to this side before detection",
    )
    _add_class_names_flag(detect)
    detect.set_defaults(handler=_detect)

    evaluate = commands.add_parser(
        "evaluate",
        help="mAP of a detector over B, A and all classes on test scenes",
        formatter_class=_Formatter,
    )
    evaluate.add_argument(
        "--detector", required=True, help="a detection network (.keras)"
    )
    _add_data_flags(evaluate)
    _add_config_flags(
        evaluate,
        (
            "output_dir",
            "proposal_source",
            "proposals",
            "iou_threshold",
            "max_test_images",
            "verbose",
        ),
    )
    evaluate.add_argument(
        "--proposer",
        default=None,
        help="an objectness detector (.keras) for proposal_source 'objectness'",
    )
    evaluate.set_defaults(handler=_evaluate)

    export = commands.add_parser(
        "export",
        help="write a detector as a SavedModel (uint8 images in, detections "
        "out, NMS inside) that serves with TensorFlow alone",
        formatter_class=_Formatter,
    )
    export.add_argument(
        "--detector", required=True, help="a detection network (.keras)"
    )
    export.add_argument("--output", required=True, help="SavedModel folder")
    export.add_argument(
        "--proposer",
        default=None,
        help="an objectness detector (.keras) built into the file; without "
        "one the SavedModel takes proposals as a second input",
    )
    export.add_argument(
        "--image-size",
        type=int,
        default=128,
        help="side the detector resizes images to",
    )
    export.add_argument(
        "--proposals", type=int, default=100, help="proposals per image"
    )
    _add_class_names_flag(export)
    export.set_defaults(handler=_export)

    grow = commands.add_parser(
        "add-classes",
        help="add classes to a trained detector from image labels alone "
        "(no boxes, no retraining; the existing classes' scores stay the "
        "same)",
        formatter_class=_Formatter,
        description="Fit one classifier column per new class on the "
        "detector's frozen features against its existing classifier "
        "columns, give each a detection column with LSDA's neighbour "
        "offsets, and write a detector with the new classes appended "
        "(ids after the existing ones, background last) and their names "
        "stored in the model.",
    )
    grow.add_argument(
        "--detector", required=True, help="a detection network (.keras)"
    )
    grow.add_argument(
        "--images",
        required=True,
        metavar="DIR_PER_CLASS",
        help="a folder with one subfolder per new class (the subfolder's "
        "name is the class name) holding its image files; images are "
        "resized whole to the detector's input side",
    )
    grow.add_argument(
        "--output", required=True, help="the grown detector (.keras)"
    )
    grow.add_argument(
        "--max-images-per-class",
        type=int,
        default=None,
        help="use at most this many images of each class, in file-name "
        "order (None: all)",
    )
    grow.add_argument(
        "--adaptation",
        choices=("knn", "none"),
        default="knn",
        help="detection columns: the classifier column plus the mean "
        "fine-tuning offset of its --knn nearest boxed classes (knn), or "
        "the classifier column itself (none)",
    )
    grow.add_argument(
        "--knn", default="5", help="neighbours among the boxed classes, or all"
    )
    grow.add_argument(
        "--steps", type=int, default=300, help="steps of the column fit"
    )
    grow.add_argument(
        "--learning-rate",
        type=float,
        default=0.01,
        help="Adam rate of the column fit",
    )
    grow.add_argument(
        "--l2", type=float, default=1e-3, help="L2 penalty on new columns"
    )
    grow.add_argument(
        "--reference-images",
        default=None,
        metavar="DIR_PER_CLASS",
        help="optional folder with one subfolder per EXISTING class (named "
        "as the detector names it) holding some of its images: they show "
        "the new columns what not to fire on (recommended; nothing of the "
        "existing classes changes)",
    )
    _add_class_names_flag(grow)
    grow.set_defaults(handler=_add_classes)
    return parser


def _add_class_names_flag(parser):
    parser.add_argument(
        "--class-names",
        default=None,
        help="comma-separated names of the detector's classes; default: "
        "those stored in the detector, else those of the results.json "
        "beside --detector (as `run` writes), else class ids",
    )


# === Handlers ===


def _config(args):
    from keras_objectness.workflows.config import WorkflowConfig

    names = {field.name for field in dataclasses.fields(WorkflowConfig)}
    values = {key: value for key, value in vars(args).items() if key in names}
    return WorkflowConfig(**values)


def _source(args):
    from keras_objectness import workflows

    splits = {}
    for item in args.splits or ():
        role, sep, name = item.partition("=")
        if not sep or not role or not name:
            raise ValueError(
                f"`--splits` takes ROLE=SPLIT pairs. Received: {item!r}"
            )
        splits[role] = name
    if args.coco_json:
        if not args.images_dir:
            raise ValueError("`--coco-json` needs `--images-dir`.")
        return workflows.CocoDataSource(
            args.coco_json,
            args.images_dir,
            test_fraction=args.test_fraction,
            max_examples=args.max_train_examples,
        )
    return workflows.TfdsSource(
        args.data,
        args.data_dir,
        splits=splits or None,
        max_examples=args.max_train_examples,
    )


def _class_split(args, source):
    source.prepare()
    return source.class_split(args.detection_classes)


def _command_line(argv):
    return " ".join(["keras-objectness", *argv])


def _run(args, argv):
    from keras_objectness import workflows

    config = _config(args)
    strategy = workflows.make_strategy(args.strategy)
    source = _source(args)
    class_split = _class_split(args, source)
    results = workflows.run_lsda(
        source,
        class_split,
        config,
        strategy=strategy,
        command=_command_line(argv),
    )
    if results is None:
        return EXIT_OK
    _print_table(results, config)
    print(
        f"wrote {os.path.join(config.output_dir, 'results.json')} and "
        f"{results['gallery']}"
    )
    return EXIT_OK


def _print_table(results, config):
    print(f"{'mAP (%)':<34}{'B':>7}{'A':>7}{'all':>7}")
    for name, key in (
        ("classifier alone", "no_adaptation"),
        (f"adapted ({results['config']['method']})", "adapted"),
    ):
        row = results[key]
        print(
            f"{name:<34}{_fmt(row['map_trained'])}{_fmt(row['map_heldout'])}"
            f"{_fmt(row['map_all'])}"
        )
    print(
        f"classifier accuracy {results['classifier_accuracy']:.2f}, "
        f"proposal recall {results['proposal_recall']:.2f}, "
        f"{results['total_seconds'] / 60:.1f} min"
    )


def _fmt(value):
    return f"{'-':>7}" if value is None else f"{value:7.1f}"


def _train_classifier(args, argv):
    from keras_objectness import workflows

    config = _config(args)
    source = _source(args)
    log = workflows.StageLog(verbose=config.verbose > 0)
    with log.stage("dataset"):
        source.prepare()
    with log.stage("classifier"):
        classifier, accuracy = workflows.classifier_from_config(
            source,
            source.num_classes,
            config,
            epochs=config.classifier_epochs,
        )
    os.makedirs(config.output_dir, exist_ok=True)
    path = os.path.join(config.output_dir, "classifier.keras")
    classifier.save(path)
    print(f"validation top-1 accuracy {accuracy:.3f}; wrote {path}")
    return EXIT_OK


def _train_proposer(args, argv):
    from keras_objectness import workflows

    config = _config(args)
    source = _source(args)
    class_split = _class_split(args, source)
    log = workflows.StageLog(verbose=config.verbose > 0)
    with log.stage("proposer"):
        proposer = workflows.proposer_from_config(source, class_split, config)
    os.makedirs(config.output_dir, exist_ok=True)
    path = os.path.join(config.output_dir, "proposer.keras")
    proposer.save(path)
    print(f"wrote {path}")
    return EXIT_OK


def _adapt(args, argv):
    from keras_objectness import workflows

    config = _config(args)
    source = _source(args)
    class_split = _class_split(args, source)
    classifier = _load_model(args.classifier_file, "--classifier-file")
    if classifier.outputs[0].shape[-1] != source.num_classes:
        raise ValueError(
            f"`--classifier-file` must have {source.num_classes} outputs (one "
            f"per class of the data). Received: {args.classifier_file!r} with "
            f"{classifier.outputs[0].shape[-1]}"
        )
    config = config.for_source(source)
    log = workflows.StageLog(verbose=config.verbose > 0)
    with log.stage(f"fine-tuning ({config.method})"):
        network = workflows.finetune_from_config(
            classifier, source, class_split, config
        )
    os.makedirs(config.output_dir, exist_ok=True)
    path = os.path.join(config.output_dir, "detector.keras")
    network.save(path)
    print(f"wrote {path}")
    return EXIT_OK


def _load_model(path, flag):
    import keras

    if not os.path.isfile(path):
        raise ValueError(f"`{flag}` must be a .keras file. Received: {path!r}")
    return keras.saving.load_model(path)


def _image_files(paths):
    extensions = (".jpg", ".jpeg", ".png", ".bmp", ".gif")
    files = []
    for path in paths:
        if os.path.isdir(path):
            files.extend(
                os.path.join(path, name)
                for name in sorted(os.listdir(path))
                if name.lower().endswith(extensions)
            )
        elif os.path.isfile(path):
            files.append(path)
        else:
            raise ValueError(
                f"`images` must be image files or folders. Received: {path!r}"
            )
    if not files:
        raise ValueError(f"No image files found in {list(paths)}.")
    return files


def _read_images(files, size):
    import numpy as np
    import tensorflow as tf

    images = []
    for path in files:
        try:
            image = tf.io.decode_image(
                tf.io.read_file(path), channels=3, expand_animations=False
            )
        except tf.errors.InvalidArgumentError:
            raise ValueError(f"Cannot decode the image {path!r}.") from None
        image = tf.image.resize(image, (size, size))
        images.append(
            tf.cast(tf.clip_by_value(tf.round(image), 0, 255), tf.uint8)
        )
    return np.stack([image.numpy() for image in images])


def _class_names_for(args, network):
    """`--class-names`, the model's own names, `run`'s results.json's, or
    the ids."""
    from keras_objectness.adaptation import find_background_head

    head = find_background_head(network)
    count = head.num_classes
    names = None
    if args.class_names:
        names = [name.strip() for name in args.class_names.split(",")]
    elif head.class_names is not None:
        names = list(head.class_names)
    else:
        results = os.path.join(
            os.path.dirname(os.path.abspath(args.detector)), "results.json"
        )
        if os.path.isfile(results):
            with open(results) as file:
                names = json.load(file).get("class_names") or None
    if names is None:
        return [str(i) for i in range(count)]
    if len(names) != count:
        raise ValueError(
            f"`--class-names` must name the detector's {count} classes. "
            f"Received: {len(names)} names"
        )
    return names


def _detect(args, argv):
    import numpy as np

    from keras_objectness import workflows
    from keras_objectness.adaptation import find_background_head

    network = _load_model(args.detector, "--detector")
    head = find_background_head(network)
    files = _image_files(args.images)
    images = _read_images(files, args.image_size)
    proposer = (
        _load_model(args.proposer, "--proposer") if args.proposer else None
    )
    boxes = workflows.make_proposals(
        images,
        "objectness" if proposer is not None else "selective_search",
        args.proposals,
        proposer=proposer,
    )
    found = workflows.detect_on_proposals(network, images, boxes)
    names = _class_names_for(args, network)
    os.makedirs(args.output_dir, exist_ok=True)
    records = []
    for index, path in enumerate(files):
        keep = (found["classes"][index] >= 0) & (
            found["confidence"][index] >= args.min_confidence
        )
        records.append(
            {
                "image": path,
                "detections": [
                    {
                        "box_rel_yxyx": [
                            round(float(v), 5) for v in found["boxes"][index][i]
                        ],
                        "class": int(found["classes"][index][i]),
                        "class_name": names[int(found["classes"][index][i])],
                        "confidence": float(found["confidence"][index][i]),
                    }
                    for i in np.flatnonzero(keep)
                ],
            }
        )
    split = _split_of_head(head, names)
    empty = {
        "boxes": np.full((len(files), 1, 4), -1.0, "float32"),
        "classes": np.full((len(files), 1), -1),
    }
    for start in range(0, len(files), 6):
        part = slice(start, start + 6)
        workflows.draw_gallery(
            images[part],
            {key: value[part] for key, value in empty.items()},
            {key: value[part] for key, value in found.items()},
            split,
            os.path.join(args.output_dir, f"detections_{start // 6:03d}.png"),
            titles=["detections"],
            count=6,
            min_confidence=args.min_confidence,
        )
    path = os.path.join(args.output_dir, "detections.json")
    with open(path, "w") as file:
        json.dump(records, file, indent=2)
    total = sum(len(record["detections"]) for record in records)
    print(f"{total} detections in {len(files)} images; wrote {path}")
    return EXIT_OK


def _split_of_head(head, names):
    from keras_objectness.class_split import ClassSplit

    return ClassSplit(head.num_classes, head.detection_classes, names)


def _evaluate(args, argv):
    from keras_objectness import evaluation
    from keras_objectness import workflows

    config = _config(args)
    source = _source(args)
    class_split = _class_split(args, source)
    network = _load_model(args.detector, "--detector")
    proposer = (
        _load_model(args.proposer, "--proposer") if args.proposer else None
    )
    images, ground_truth = workflows.test_arrays(source, config.max_test_images)
    boxes = workflows.make_proposals(
        images, config.proposal_source, config.proposals, proposer=proposer
    )
    found = workflows.detect_on_proposals(
        network, images, boxes, iou_threshold=config.iou_threshold
    )
    result = workflows.evaluate_detections(found, ground_truth, class_split)
    result["proposal_recall"] = evaluation.proposal_recall(boxes, ground_truth)
    result["num_test_images"] = int(len(images))
    os.makedirs(config.output_dir, exist_ok=True)
    path = os.path.join(config.output_dir, "evaluation.json")
    with open(path, "w") as file:
        json.dump(result, file, indent=2)
    print(
        f"mAP (%): B {_fmt(result['map_trained']).strip()}, "
        f"A {_fmt(result['map_heldout']).strip()}, "
        f"all {_fmt(result['map_all']).strip()}; wrote {path}"
    )
    return EXIT_OK


def _export(args, argv):
    from keras_objectness import export
    from keras_objectness import models

    network = _load_model(args.detector, "--detector")
    proposer = (
        _load_model(args.proposer, "--proposer") if args.proposer else None
    )
    detector = models.region_detector(
        network,
        proposer=proposer,
        image_shape=(args.image_size, args.image_size, 3),
        max_proposals=args.proposals,
    )
    path = export.export_detector(
        detector, args.output, class_names=_class_names_for(args, network)
    )
    inputs = "images" if proposer is not None else "images and proposals"
    print(f"wrote {path} (serve: {inputs} in, detections out)")
    return EXIT_OK


def _add_classes(args, argv):
    import time

    import numpy as np

    from keras_objectness import workflows

    if not args.output.endswith(".keras"):
        raise ValueError(
            f"`--output` must end in .keras. Received: {args.output!r}"
        )
    cap = args.max_images_per_class
    if cap is not None and cap < 1:
        raise ValueError(
            "`--max-images-per-class` must be a positive integer. "
            f"Received: {cap}"
        )
    network = _load_model(args.detector, "--detector")
    side = int(network.inputs[0].shape[1])
    names, images, labels = _class_folders(args.images, "--images", side, cap)
    existing = _class_names_for(args, network)
    reference = None
    if args.reference_images:
        ref_names, ref_images, ref_labels = _class_folders(
            args.reference_images, "--reference-images", side, cap
        )
        unknown = [name for name in ref_names if name not in existing]
        if unknown:
            raise ValueError(
                "`--reference-images` subfolders must be named after the "
                f"detector's classes ({', '.join(existing[:30])}). "
                f"Received: {', '.join(unknown)}"
            )
        ids = np.asarray([existing.index(name) for name in ref_names])
        reference = (ref_images, ids[ref_labels].astype("int32"))
    knn = int(args.knn) if args.knn.isdigit() else args.knn
    start = time.perf_counter()
    grown = workflows.add_classes(
        network,
        (images, labels),
        names,
        existing_class_names=existing,
        reference_examples=reference,
        adaptation=args.adaptation,
        knn=knn,
        steps=args.steps,
        learning_rate=args.learning_rate,
        l2=args.l2,
    )
    seconds = time.perf_counter() - start
    folder = os.path.dirname(os.path.abspath(args.output))
    os.makedirs(folder, exist_ok=True)
    grown.save(args.output)
    contrast = "" if reference is None else f" (+{len(reference[1])} reference)"
    print(
        f"added {len(names)} classes ({', '.join(names)}) from "
        f"{len(labels)} images{contrast} in {seconds:.1f} s: "
        f"{len(existing)} -> {len(existing) + len(names)} classes; wrote "
        f"{args.output}"
    )
    return EXIT_OK


def _class_folders(root, flag, side, cap):
    """`(names, images, labels)` of a folder with one subfolder per class."""
    import numpy as np

    if not os.path.isdir(root):
        raise ValueError(
            f"`{flag}` must be a folder with one subfolder per class. "
            f"Received: {root!r}"
        )
    names = sorted(
        entry
        for entry in os.listdir(root)
        if os.path.isdir(os.path.join(root, entry))
    )
    if not names:
        raise ValueError(
            f"`{flag}` must hold one subfolder per class. "
            f"Received: {root!r} with no subfolders"
        )
    images, labels = [], []
    for label, name in enumerate(names):
        folder = os.path.join(root, name)
        try:
            files = _image_files([folder])
        except ValueError:
            raise ValueError(
                f"`{flag}`: the class folder {folder!r} holds no image "
                "files (.jpg, .jpeg, .png, .bmp, .gif)."
            ) from None
        files = files[:cap] if cap else files
        images.append(_read_images(files, side))
        labels += [label] * len(files)
    return names, np.concatenate(images), np.asarray(labels, "int32")


# === Entry point ===


def main(argv=None):
    """Runs `keras-objectness`; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    if not sys.stdout.isatty():
        # TFDS's per-split bars redraw with carriage returns: noise in logs.
        import tensorflow_datasets as tfds

        tfds.disable_progress_bar()
    try:
        return args.handler(args, argv)
    except (ValueError, TypeError, FileNotFoundError) as error:
        if os.environ.get("KERAS_OBJECTNESS_DEBUG") == "1":
            raise
        print(
            f"keras-objectness {args.command}: error: {error}", file=sys.stderr
        )
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
