"""Every adaptation method against the classifier alone and the oracle.

What a method is worth on the held-out classes A is where it lands
between two detectors trained on the same data: the unadapted classifier
(its softmax on the proposals: what one gets without any box) and the
oracle (the same fine-tuning with the boxes of A as well). A ratio to the
baseline alone rewards weak baselines; the share of the gap a method
closes,

    gap_closed = (method - baseline) / (oracle - baseline),

does not.
"""

import numpy as np

from keras_objectness.adaptation import adapt_classifier
from keras_objectness.workflows import finetuning
from keras_objectness.workflows import scoring

# Methods that share one masked fine-tune and differ only in what
# `adapt_classifier` does to A's columns afterwards.
_MASKED_METHODS = ("none", "lsda", "lsda_similarity")


def compare_methods(
    classifier,
    train_scenes,
    oracle_scenes,
    classification_examples,
    class_split,
    images,
    ground_truth,
    proposals,
    methods=("lsda", "joint_background"),
    knn=5,
    log=None,
    image_label_scenes=None,
    **finetune_kwargs,
):
    """Held-out and trained mAP of the baseline, the oracle and `methods`.

    All detectors score the same `proposals` on the same test `images`.
    The masked methods (`"none"`, `"lsda"`, `"lsda_similarity"`) share
    one fine-tune: the adaptation rebuilds A's columns from the head's
    snapshot, so each is computed from the same network.

    Args:
        classifier: the trained classifier (left unchanged).
        train_scenes: detection scenes with boxes of B only.
        oracle_scenes: the same scenes' pool with the boxes of every
            class, for the oracle.
        classification_examples: image-labelled examples of all classes
            (for the joint methods).
        class_split: the `ClassSplit`.
        images, ground_truth, proposals: the test set (see
            `keras_objectness.workflows.test_arrays`).
        methods: names from `keras_objectness.workflows.METHODS`.
        knn: neighbours of the `"lsda"` methods.
        log: optional `StageLog`.
        image_label_scenes: scenes whose labels (never boxes) the
            `"joint_image_regions"` method uses, e.g. those with objects of
            A. Defaults to `None`.
        **finetune_kwargs: passed to `finetune_detector` (epochs,
            learning_rate, batch_size, seed, ...).

    Returns:
        dict from `"no_adaptation"`, `"oracle"` and each method to the
        `evaluate_detections` result.
    """
    unknown = set(methods) - set(finetuning.METHODS)
    if unknown:
        raise ValueError(
            f"`methods` must be names from {tuple(finetuning.METHODS)}. "
            f"Received: methods={methods!r}"
        )

    def stage(name):
        if log is None:
            return _Silent()
        return log.stage(name)

    def evaluate(network):
        found = scoring.detect_on_proposals(
            network, images, proposals, verbose=False
        )
        return scoring.evaluate_detections(found, ground_truth, class_split)

    results = {}
    with stage("no adaptation"):
        results["no_adaptation"] = evaluate(classifier)
    masked = [m for m in methods if m in _MASKED_METHODS]
    if masked:
        with stage("masked fine-tuning"):
            network = finetuning.finetune_detector(
                classifier,
                train_scenes,
                class_split,
                method="none",
                **finetune_kwargs,
            )
        for method in masked:
            with stage(method):
                if method == "none":
                    adapt_classifier(network, adapt_output_layer=False)
                else:
                    adapt_classifier(
                        network,
                        knn=knn,
                        weighting="similarity"
                        if method == "lsda_similarity"
                        else "uniform",
                    )
                results[method] = evaluate(network)
    for method in methods:
        if method in _MASKED_METHODS:
            continue
        with stage(method):
            network = finetuning.finetune_detector(
                classifier,
                train_scenes,
                class_split,
                method=method,
                knn=knn,
                classification_examples=classification_examples,
                image_label_scenes=image_label_scenes,
                **finetune_kwargs,
            )
            results[method] = evaluate(network)
    with stage("oracle"):
        network = finetuning.finetune_detector(
            classifier,
            oracle_scenes,
            class_split,
            oracle=True,
            **finetune_kwargs,
        )
        results["oracle"] = evaluate(network)
    return results


def gap_closed(method, baseline, oracle):
    """`(method - baseline) / (oracle - baseline)`; NaN without a gap."""
    if oracle - baseline <= 1e-9:
        return float("nan")
    return (method - baseline) / (oracle - baseline)


def summarize_runs(runs, key="map_heldout"):
    """Means, spreads and ratios over seeds, in the benchmark's JSON shape.

    A detector missing from some runs (a method measured on fewer seeds)
    counts as NaN there: its means and ratios are over the seeds it has.
    A method result holding `"same_run"` (`{"no_adaptation": ...,
    "oracle": ...}`: the baseline and oracle trained beside it, when it
    was measured in a later run than the seed's own) has its ratios taken
    against those: retraining a seed is not bit-exact.

    Args:
        runs: list (one per seed) of `compare_methods` results.
        key: the mAP compared. Defaults to `"map_heldout"` (A).

    Returns:
        dict: `"heldout_map"` (mean and std per detector) and `"ratios"`
        (per method: `"vs_no_adaptation"`, `"vs_oracle"`, `"gap_closed"`,
        each with `"mean"`, `"min"` and the per-seed `"values"`), plus
        `"never_below_baseline"` per method.
    """
    names = list(dict.fromkeys(name for run in runs for name in run))
    values = {
        name: np.array(
            [_value(run[name][key]) if name in run else np.nan for run in runs]
        )
        for name in names
    }
    summary = {
        "heldout_map" if key == "map_heldout" else key: {
            name: {
                "mean": _round(_nan_reduce(np.mean, v)),
                "std": _round(_nan_reduce(np.std, v)),
                "values": [_round(x) for x in v],
            }
            for name, v in values.items()
        },
        "ratios": {},
        "never_below_baseline": {},
    }
    for name in names:
        if name in ("no_adaptation", "oracle"):
            continue
        method = values[name]
        baseline, oracle = (
            np.array([_reference(run, name, detector, key) for run in runs])
            for detector in ("no_adaptation", "oracle")
        )
        ratios = {
            "vs_no_adaptation": method / np.maximum(baseline, 1e-9),
            "vs_oracle": method / np.maximum(oracle, 1e-9),
            "gap_closed": np.array(
                [
                    gap_closed(m, b, o)
                    for m, b, o in zip(method, baseline, oracle)
                ]
            ),
        }
        summary["ratios"][name] = {
            ratio: {
                "mean": _round(_nan_reduce(np.nanmean, v)),
                "min": _round(_nan_reduce(np.nanmin, v)),
                "values": [_round(x) for x in v],
            }
            for ratio, v in ratios.items()
        }
        measured = np.isfinite(method)
        summary["never_below_baseline"][name] = bool(
            np.all(method[measured] >= baseline[measured])
        )
    return summary


def bar_checks(summary, method, min_gap_closed=0.5, min_vs_oracle=0.75):
    """Whether `method` meets a bar over a regime's seeds.

    The bar of the robustness benchmark: on average over the seeds the
    method closes at least `min_gap_closed` of the gap from the classifier
    alone to the oracle, reaches at least `min_vs_oracle` of the oracle,
    and is below the classifier alone in no seed. A seed without a gap
    (the oracle no better than the classifier alone) has no gap closed
    and does not count in its mean.

    Args:
        summary: a `summarize_runs` result.
        method: the method checked.
        min_gap_closed: float. Defaults to `0.5`.
        min_vs_oracle: float. Defaults to `0.75`.

    Returns:
        dict with the method, the two means, a bool per condition and
        `"meets_bar"` (all three).
    """
    if method not in summary["ratios"]:
        raise ValueError(
            "`method` must be a method of `summary`, one of "
            f"{tuple(summary['ratios'])}. Received: method={method!r}"
        )
    ratios = summary["ratios"][method]
    gap, share = ratios["gap_closed"]["mean"], ratios["vs_oracle"]["mean"]
    checks = {
        f"gap_closed_at_least_{min_gap_closed}": gap is not None
        and gap >= min_gap_closed,
        "never_below_baseline": summary["never_below_baseline"][method],
        f"vs_oracle_at_least_{min_vs_oracle}": share is not None
        and share >= min_vs_oracle,
    }
    return {
        "method": method,
        "gap_closed": gap,
        "vs_oracle": share,
        **checks,
        "meets_bar": all(checks.values()),
    }


def _reference(run, name, detector, key):
    """The `detector`'s `key` that method `name` of `run` compares with."""
    same_run = (run.get(name, {}).get("same_run") or {}).get(detector, {})
    return _value(same_run[key] if key in same_run else run[detector][key])


def _nan_reduce(reduce, values):
    values = np.asarray(values, dtype="float64")
    if not np.any(np.isfinite(values)):
        return float("nan")
    return reduce(values[np.isfinite(values)])


def _value(value):
    return float("nan") if value is None else float(value)


def _round(value):
    value = float(value)
    return None if np.isnan(value) else round(value, 4)


class _Silent:
    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        return False


def plot_regimes(regimes, names, path):
    """Held-out mAP (mean and spread over seeds) per regime and detector.

    Args:
        regimes: the benchmark's `"regimes"` dict (`summarize_runs`
            output plus `"classifier_top1"` per regime).
        names: detectors to draw, in order (baseline first, oracle last).
        path: the PNG to write.

    Returns:
        The path written.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(max(6, 2.6 * len(regimes)), 4.2), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot(1, 1, 1)
    width = 0.8 / len(names)
    colors = _colors(len(names))
    for index, name in enumerate(names):
        means, spreads = [], []
        for regime in regimes.values():
            cell = regime["heldout_map"].get(name, {})
            means.append(cell.get("mean") or 0.0)
            spreads.append(cell.get("std") or 0.0)
        positions = np.arange(len(regimes)) + (index - len(names) / 2) * width
        axes.bar(
            positions + width / 2,
            means,
            width,
            yerr=spreads,
            label=name,
            color=colors[index],
            capsize=2,
        )
    axes.set_xticks(np.arange(len(regimes)))
    axes.set_xticklabels(
        [
            f"{name}\n(classifier top-1 {regime['classifier_top1']:.2f})"
            for name, regime in regimes.items()
        ],
        fontsize=9,
    )
    axes.set_ylabel("held-out (A) mAP, %")
    axes.legend(fontsize=8, ncol=3, loc="upper left")
    axes.grid(axis="y", alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, format="png")
    return path


def _colors(count):
    from matplotlib import colormaps

    cmap = colormaps["tab10"]
    return [cmap(i % 10) for i in range(count)]
