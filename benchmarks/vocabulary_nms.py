"""Time and peak memory of per-class NMS over up to 100,000 classes.

Runs `keras_objectness.layers.RegionDetections` on random region boxes and
scores for each class count x region count, with its default (each region's
`max_detections` best classes enter NMS, which gives the same detections)
and with every class entering NMS, each case in a fresh Python process.
Peak memory is the rise of the process' resident-set high-water mark over
the inputs, as in `benchmarks.adapt_scale`; the time is that of the second
call (the first one builds the ops).

    python -m benchmarks.vocabulary_nms --help
    python -m benchmarks.vocabulary_nms

Writes `benchmarks/results/vocabulary_nms.json`.
"""

import argparse
import json
import os
import sys
import time

from benchmarks.adapt_scale import machine
from benchmarks.adapt_scale import memory_kb
from benchmarks.adapt_scale import run_in_child


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--classes", default="1000,10000,100000")
    parser.add_argument("--regions", default="100,1000")
    parser.add_argument("--max-detections", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--timeout", type=float, default=600, help="seconds per case"
    )
    parser.add_argument(
        "--output",
        default=os.path.join("benchmarks", "results", "vocabulary_nms.json"),
    )
    parser.add_argument("--case", help=argparse.SUPPRESS)  # child process
    return parser.parse_args(argv)


def run_case(case):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import ctypes

    import keras
    import numpy as np

    import keras_objectness as ko

    rng = np.random.default_rng(case["seed"])
    regions, classes = case["regions"], case["classes"]
    corners = rng.uniform(0.0, 0.7, size=(1, regions, 2))
    boxes = np.concatenate(
        [corners, corners + rng.uniform(0.05, 0.3, size=(1, regions, 2))], -1
    ).astype("float32")
    scores = rng.standard_normal((1, regions, classes), dtype=np.float32)
    boxes, scores = keras.ops.convert_to_tensor(boxes), scores
    scores = keras.ops.convert_to_tensor(scores)
    layer = ko.layers.RegionDetections(
        case["max_detections"],
        max_classes_per_region=classes if case["every_class"] else None,
    )
    layer(boxes[:, :2], scores[:, :2])  # builds the ops on a slice
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    with open("/proc/self/clear_refs", "w") as file:
        file.write("5")  # resets VmHWM to the current resident set
    before = memory_kb("VmRSS")
    start = time.perf_counter()
    detections = layer(boxes, scores)
    keras.ops.convert_to_numpy(detections["boxes"])
    seconds = time.perf_counter() - start
    return {
        "seconds": seconds,
        "peak_rise_bytes": (memory_kb("VmHWM") - before) * 1024,
        "scores_bytes": 4 * regions * classes,
        "num_detections": int(detections["num_detections"][0]),
        "classes_found": sorted(
            int(c)
            for c in keras.ops.convert_to_numpy(detections["classes"])[0]
            if c >= 0
        ),
    }


def main(argv=None):
    args = parse_args(argv)
    if args.case:
        print(json.dumps(run_case(json.loads(args.case))))
        return 0
    results = {
        "command": "python -m benchmarks.vocabulary_nms "
        + " ".join(argv or []),
        "machine": machine(),
        "seed": args.seed,
        "load_average_before": os.getloadavg(),
        "cases": [],
    }
    for classes in (int(x) for x in args.classes.split(",")):
        for regions in (int(x) for x in args.regions.split(",")):
            pair = {}
            for every_class in (False, True):
                case = {
                    "classes": classes,
                    "regions": regions,
                    "every_class": every_class,
                    "max_detections": args.max_detections,
                    "seed": args.seed,
                }
                label = f"K={classes} regions={regions} every={every_class}"
                print(f"running {label} ...", flush=True)
                outcome = run_in_child(
                    "benchmarks.vocabulary_nms", json.dumps(case), args.timeout
                )
                outcome.update(case)
                pair[every_class] = outcome
                print(
                    "  "
                    + (
                        outcome.get("error", "")[-300:]
                        or f"{outcome['seconds']:.2f} s, peak +"
                        f"{outcome['peak_rise_bytes'] / 2**20:.0f} MiB"
                    ),
                    flush=True,
                )
            if all("error" not in pair[key] for key in pair):
                pair[False]["same_classes_as_every_class"] = (
                    pair[False]["classes_found"] == pair[True]["classes_found"]
                )
            results["cases"].extend(pair.values())
    results["load_average_after"] = os.getloadavg()
    os.makedirs(os.path.dirname(args.output) or ".", exist_ok=True)
    with open(args.output, "w") as file:
        json.dump(results, file, indent=2)
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
