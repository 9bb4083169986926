"""Detect all 20 classes of silhouette_scenes with boxes for only 10 (LSDA).

The Python form of `keras-objectness run`: the recipe lives in
`keras_objectness.workflows`; a script names the data and the settings
and calls `run_lsda`, which trains a 20-class classifier on image labels,
scores selective-search proposals with it (the unadapted baseline),
fine-tunes a copy into a detector on the boxes of the 10 classes B while
`DetectorAdapter` moves the 10 box-less classes A by their neighbours in
B, and evaluates both on all 20 classes.

    python -m examples.detect_all_classes --data-dir runs/tfds
    python -m examples.detect_all_classes --config tiny --quick  # smoke test

Writes `results.json` (mAP over B, A and all, per-class AP, recall,
accuracy, timings), `gallery.png`, `classifier.keras` and
`detector.keras` to `--output-dir`.
"""

import argparse
import sys

from keras_objectness import workflows

# A run of about a minute that touches every stage.
QUICK = dict(classifier_epochs=1, finetune_epochs=1, regions_per_image=4)
QUICK.update(proposals=10, max_test_images=8, gallery_images=2)


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--data-dir", default="runs/tfds", help="TFDS folder (built once)"
    )
    parser.add_argument(
        "--output-dir", default="runs/detect", help="results and figures"
    )
    parser.add_argument(
        "--config", default="workflow", help="dataset config (tiny: tests)"
    )
    parser.add_argument(
        "--quick", action="store_true", help="tiny epochs and proposals"
    )
    args = parser.parse_args(argv)

    # The bundled dataset, built offline on first use. Any TFDS detection
    # dataset works the same way (`TfdsSource("voc/2007", ...)`).
    source = workflows.TfdsSource(
        f"silhouette_scenes/{args.config}",
        data_dir=args.data_dir,
        max_examples=256 if args.quick else None,
    )
    # Every setting has a default; `keras-objectness run --help` lists them.
    config = workflows.WorkflowConfig(
        output_dir=args.output_dir, **(QUICK if args.quick else {})
    )
    argv = sys.argv[1:] if argv is None else list(argv)
    results = workflows.run_lsda(
        source,
        source.class_split(),  # the dataset's own split into B and A
        config,
        command=" ".join(["python -m examples.detect_all_classes", *argv]),
    )

    for name, key in (
        ("classifier alone", "no_adaptation"),
        ("adapted (LSDA)", "adapted"),
    ):
        row = results[key]  # mAP in percent (None: no boxes of that kind)
        print(
            f"{name:<16} mAP B {row['map_trained']}, A {row['map_heldout']}, "
            f"all {row['map_all']}"
        )
    print(f"wrote {args.output_dir}/results.json and {results['gallery']}")
    return results


if __name__ == "__main__":
    main()
