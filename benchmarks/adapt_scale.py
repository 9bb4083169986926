"""Time and peak memory of the LSDA adaptation at up to 100,000 classes.

Runs `keras_objectness.adaptation.adapted_weights` (and, with
`--functions`, `keras_objectness.adapt_classifier` on a `BackgroundHead`)
on random weights for each combination of class count x features, number
of detection classes |B| and `knn`, each case in a fresh Python process.
Peak memory is the rise of the process' resident-set high-water mark
(VmHWM, reset through /proc/self/clear_refs after the inputs are built), so
it sees TensorFlow's allocations, which tracemalloc does not. Each result
is spot-checked against the paper's formula in float64.

    python -m benchmarks.adapt_scale --help
    python -m benchmarks.adapt_scale

Writes `benchmarks/results/adapt_scale.json`.
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import time

DEFAULT_SIZES = ("20000x1024", "100000x1024", "100000x4096")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--sizes",
        default=",".join(DEFAULT_SIZES),
        help="comma-separated CLASSESxFEATURES",
    )
    parser.add_argument(
        "--detection-classes",
        default="1000,50000",
        help="comma-separated |B|; one at or above the class count is "
        "replaced by half the classes",
    )
    parser.add_argument("--knn", default="5,all", help="comma-separated")
    parser.add_argument(
        "--weighting", default="uniform", choices=("uniform", "similarity")
    )
    parser.add_argument(
        "--functions",
        default="adapted_weights",
        help="comma-separated: adapted_weights, adapt_classifier",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--timeout", type=float, default=1800, help="seconds per case"
    )
    parser.add_argument(
        "--output",
        default=os.path.join("benchmarks", "results", "adapt_scale.json"),
    )
    parser.add_argument("--case", help=argparse.SUPPRESS)  # child process
    return parser.parse_args(argv)


def memory_kb(field):
    with open("/proc/self/status") as file:
        for line in file:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return None


def run_case(case):
    """Runs one case in this process; returns its measurements."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras
    import numpy as np

    import keras_objectness as ko
    from keras_objectness.adaptation import adapted_weights

    num_classes, features = case["classes"], case["features"]
    knn = case["knn"]
    keras.utils.set_random_seed(case["seed"])
    rng = np.random.default_rng(case["seed"])
    b_ids = np.sort(rng.choice(num_classes, case["detection"], replace=False))
    # Built in numpy, so that TensorFlow's allocator holds no freed
    # temporaries that the adaptation could reuse unseen.
    w_c, b_c, w_d, b_d = (
        keras.ops.convert_to_tensor(x)
        for x in inputs(rng, features, num_classes)
    )
    # Warm up the ops on a slice, so the timing excludes first-call costs.
    few = b_ids[b_ids < 500]
    adapted_weights(
        w_c[:, :500],
        b_c[:500],
        w_d[:, :500],
        b_d[:500],
        few,
        knn=knn if knn == "all" else min(knn, few.size),
        weighting=case["weighting"],
    )
    head = None
    if case["function"] == "adapt_classifier":
        head = ko.layers.BackgroundHead(num_classes, tuple(b_ids.tolist()))
        head.build((None, features))
        background = keras.ops.zeros((features, 1))
        head.kernel.assign(keras.ops.concatenate([w_c, background], axis=1))
        head.take_snapshot()
        head.kernel.assign(keras.ops.concatenate([w_d, background], axis=1))
        head.bias.assign(keras.ops.concatenate([b_d, keras.ops.ones((1,))]))
        head.classification_bias.assign(b_c)
        # The head holds its own copies: only they stay.
        w_c = w_d = background = None
    # Hand freed heap pages back to the system, so that the rise below
    # counts new pages instead of reused ones.
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass
    with open("/proc/self/clear_refs", "w") as file:
        file.write("5")  # resets VmHWM to the current resident set
    before = memory_kb("VmRSS")
    start = time.perf_counter()
    if head is None:
        kernel, bias = adapted_weights(
            w_c, b_c, w_d, b_d, b_ids, knn=knn, weighting=case["weighting"]
        )
    else:
        ko.adapt_classifier(head, knn=knn, weighting=case["weighting"])
        kernel = head.kernel
    seconds = time.perf_counter() - start
    peak = memory_kb("VmHWM")
    after = memory_kb("VmRSS")
    result = {
        "seconds": seconds,
        "peak_rise_bytes": (peak - before) * 1024,
        "resident_rise_after_bytes": (after - before) * 1024,
        "kernel_bytes": 4 * features * num_classes,
    }
    result["peak_rise_over_kernel"] = (
        result["peak_rise_bytes"] / result["kernel_bytes"]
    )
    result["max_error_vs_formula"] = spot_check(
        head, w_c, w_d, kernel, b_ids, knn, case
    )
    return result


def inputs(rng, features, num_classes):
    """Random float32 W^c, b^c, W^d = W^c + noise, b^d = b^c + noise."""
    import numpy as np

    w_c = rng.standard_normal((features, num_classes), dtype=np.float32)
    w_d = rng.standard_normal((features, num_classes), dtype=np.float32)
    w_d *= 0.1
    w_d += w_c
    b_c = rng.standard_normal(num_classes, dtype=np.float32)
    b_d = b_c + 0.1 * rng.standard_normal(num_classes, dtype=np.float32)
    return w_c, b_c, w_d, b_d


def spot_check(head, w_c, w_d, kernel, b_ids, knn, case):
    """Largest deviation from the paper's formula (float64) on 3 classes."""
    import keras
    import numpy as np

    if head is not None:
        # B's columns are the fine-tuned ones; only A's were rewritten.
        w_c = head.classification_kernel
        w_d = head.kernel
    w_c = keras.ops.convert_to_numpy(w_c).astype("float64")
    kernel = keras.ops.convert_to_numpy(kernel)
    a_ids = np.setdiff1d(np.arange(case["classes"]), b_ids)
    error = 0.0
    d_b = keras.ops.convert_to_numpy(keras.ops.take(w_d, b_ids, axis=1))
    error = max(error, float(np.abs(kernel[:, b_ids] - d_b).max()))
    offsets = d_b - w_c[:, b_ids]
    unit_b = w_c[:, b_ids] / np.linalg.norm(w_c[:, b_ids], axis=0)
    for j in a_ids[[0, len(a_ids) // 2, -1]]:
        cosines = unit_b.T @ (w_c[:, j] / np.linalg.norm(w_c[:, j]))
        if knn == "all":
            near = np.arange(b_ids.size)
        else:
            near = np.argsort(-cosines, kind="stable")[:knn]
        if case["weighting"] == "uniform":
            weights = np.full(near.size, 1.0 / near.size)
        else:
            logits = cosines[near] / 0.1
            weights = np.exp(logits - logits.max())
            weights /= weights.sum()
        expected = w_c[:, j] + offsets[:, near] @ weights
        error = max(error, float(np.abs(kernel[:, j] - expected).max()))
    return error


def machine():
    model = platform.processor()
    try:
        with open("/proc/cpuinfo") as file:
            for line in file:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    memory = None
    try:
        with open("/proc/meminfo") as file:
            memory = int(file.readline().split()[1]) * 1024
    except OSError:
        pass
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "memory_bytes": memory,
        "platform": platform.platform(),
        "python": platform.python_version(),
    }


def run_in_child(module, case, timeout):
    """`python -m module --case case` in a fresh process: the JSON of its
    last output line, or `{"error": ...}`."""
    try:
        child = subprocess.run(
            [sys.executable, "-m", module, "--case", case],
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout} s"}
    if child.returncode:
        return {"error": child.stderr[-2000:]}
    return json.loads(child.stdout.strip().splitlines()[-1])


def cases(args):
    for function in args.functions.split(","):
        for size in args.sizes.split(","):
            classes, features = (int(x) for x in size.lower().split("x"))
            for detection in args.detection_classes.split(","):
                detection = int(detection)
                if detection >= classes:
                    detection = classes // 2
                for knn in args.knn.split(","):
                    yield {
                        "function": function,
                        "classes": classes,
                        "features": features,
                        "detection": detection,
                        "knn": knn if knn == "all" else int(knn),
                        "weighting": args.weighting,
                        "seed": args.seed,
                    }


def main(argv=None):
    args = parse_args(argv)
    if args.case:
        print(json.dumps(run_case(json.loads(args.case))))
        return 0
    import keras

    import keras_objectness as ko

    results = {
        "command": "python -m benchmarks.adapt_scale " + " ".join(argv or []),
        "machine": machine(),
        "versions": {"keras": keras.__version__, "package": ko.__version__},
        "backend": keras.backend.backend(),
        "seed": args.seed,
        "load_average_before": os.getloadavg(),
        "cases": [],
    }
    seen = set()
    for case in cases(args):
        key = json.dumps(case, sort_keys=True)
        if key in seen:
            continue
        seen.add(key)
        label = (
            f"{case['function']} K={case['classes']} d={case['features']} "
            f"|B|={case['detection']} knn={case['knn']}"
        )
        print(f"running {label} ...", flush=True)
        load = os.getloadavg()
        outcome = run_in_child("benchmarks.adapt_scale", key, args.timeout)
        outcome.update(case, load_average_before=load)
        results["cases"].append(outcome)
        if "error" in outcome:
            print(f"  failed: {outcome['error'][-300:]}", flush=True)
        else:
            print(
                f"  {outcome['seconds']:.2f} s, peak +"
                f"{outcome['peak_rise_bytes'] / 2**30:.2f} GiB "
                f"({outcome['peak_rise_over_kernel']:.2f} x kernel), "
                f"max error {outcome['max_error_vs_formula']:.1e}",
                flush=True,
            )
    results["load_average_after"] = os.getloadavg()
    os.makedirs(os.path.dirname(args.output) or ".", exist_ok=True)
    with open(args.output, "w") as file:
        json.dump(results, file, indent=2)
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
