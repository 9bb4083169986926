"""Can a bfloat16 product rank the nearest classes of B exactly?

The LSDA adaptation's time at 100,000 classes is the ranking product of
the held-out classes' unit columns with B's. A bfloat16 product runs about
twice as fast here; this measures whether it picks the same `knn`
neighbours as float32, and whether a screen could *certify* its choice:
a class's neighbour set is certain when the gap between its k-th and
(k+1)-th bfloat16 similarity exceeds twice the worst-case error of a
bfloat16 cosine (inputs rounded to 8 significant bits, `3 * 2**-8`, plus
float32 accumulation, `features * 2**-24`).

Random unit columns (what `benchmarks.adapt_scale` uses), several seeds:

    python -m benchmarks.bf16_ranking

Writes `benchmarks/results/bf16_ranking.json`.
"""

import argparse
import json
import os
import sys

import keras
import numpy as np

from benchmarks.adapt_scale import machine


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--features", default="1024,4096")
    parser.add_argument("--detection-classes", type=int, default=1000)
    parser.add_argument("--heldout-classes", type=int, default=2000)
    parser.add_argument("--knn", type=int, default=5)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument(
        "--output",
        default=os.path.join("benchmarks", "results", "bf16_ranking.json"),
    )
    return parser.parse_args(argv)


def unit_rows(rng, count, features):
    rows = rng.standard_normal((count, features)).astype("float32")
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def measure(features, detection, heldout, knn, seed):
    rng = np.random.default_rng(seed)
    b, a = (
        unit_rows(rng, detection, features),
        unit_rows(rng, heldout, features),
    )
    exact = a.astype("float64") @ b.T.astype("float64")
    low = keras.ops.convert_to_numpy(
        keras.ops.cast(
            keras.ops.matmul(
                keras.ops.cast(a, "bfloat16"), keras.ops.cast(b.T, "bfloat16")
            ),
            "float32",
        )
    ).astype("float64")
    error = np.abs(low - exact)
    bound = 3 * 2.0**-8 + features * 2.0**-24
    ordered = -np.sort(-low, axis=1)
    gap = ordered[:, knn - 1] - ordered[:, knn]
    exact_sets = np.argsort(-exact, axis=1)[:, :knn]
    low_sets = np.argsort(-low, axis=1)[:, :knn]
    same = np.mean([set(x) == set(y) for x, y in zip(exact_sets, low_sets)])
    return {
        "features": features,
        "seed": seed,
        "max_cosine_error": float(error.max()),
        "median_cosine_error": float(np.median(error)),
        "worst_case_error_bound": bound,
        "median_gap_knn_to_next": float(np.median(gap)),
        "share_certified_by_bound": float(np.mean(gap > 2 * bound)),
        "share_same_neighbours_as_exact": float(same),
    }


def main(argv=None):
    args = parse_args(argv)
    cases = [
        measure(
            int(features),
            args.detection_classes,
            args.heldout_classes,
            args.knn,
            int(seed),
        )  # fmt: skip
        for features in args.features.split(",")
        for seed in args.seeds.split(",")
    ]
    for case in cases:
        print(
            f"d={case['features']} seed {case['seed']}: same neighbours "
            f"{case['share_same_neighbours_as_exact']:.3f}, certified "
            f"{case['share_certified_by_bound']:.3f} (max error "
            f"{case['max_cosine_error']:.1e}, bound "
            f"{case['worst_case_error_bound']:.1e}, median gap "
            f"{case['median_gap_knn_to_next']:.1e})"
        )
    report = {
        "command": " ".join(
            ["python -m benchmarks.bf16_ranking", *sys.argv[1:]]
        ),
        "machine": machine(),
        "backend": keras.backend.backend(),
        "arguments": vars(args),
        "cases": cases,
    }
    os.makedirs(os.path.dirname(args.output), exist_ok=True)
    with open(args.output, "w") as file:
        json.dump(report, file, indent=2)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
