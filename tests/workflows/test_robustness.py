"""`summarize_runs`: the robustness benchmark's means and ratios."""

import math

import pytest

from keras_objectness.workflows import robustness


def _result(heldout, trained=50.0):
    return {"map_heldout": heldout, "map_trained": trained}


def _runs():
    seed0 = {
        "no_adaptation": _result(10.0),
        "oracle": _result(20.0),
        "joint": _result(15.0),
        "lsda": _result(8.0),
    }
    seed1 = {
        "no_adaptation": _result(12.0),
        "oracle": _result(22.0),
        "joint": _result(19.5),
        # Measured in a later run of this seed: its own baseline and oracle.
        "image_regions": {
            **_result(16.0),
            "same_run": {
                "no_adaptation": {"map_heldout": 11.0},
                "oracle": {"map_heldout": 21.0},
            },
        },
    }
    return [seed0, seed1]


def test_ratios_and_means_over_seeds():
    summary = robustness.summarize_runs(_runs())
    joint = summary["ratios"]["joint"]
    assert joint["gap_closed"]["values"] == [0.5, 0.75]
    assert joint["gap_closed"]["mean"] == 0.625
    assert joint["gap_closed"]["min"] == 0.5
    assert joint["vs_no_adaptation"]["values"] == [1.5, 1.625]
    assert joint["vs_oracle"]["values"] == [0.75, round(19.5 / 22, 4)]
    assert summary["heldout_map"]["joint"]["mean"] == 17.25
    assert summary["never_below_baseline"]["joint"] is True


def test_a_method_missing_from_a_seed_counts_over_the_seeds_it_has():
    summary = robustness.summarize_runs(_runs())
    lsda = summary["ratios"]["lsda"]
    assert lsda["gap_closed"]["values"] == [-0.2, None]
    assert lsda["gap_closed"]["mean"] == -0.2
    assert summary["heldout_map"]["lsda"]["values"] == [8.0, None]
    assert summary["never_below_baseline"]["lsda"] is False


def test_a_later_run_is_compared_with_its_own_baseline_and_oracle():
    summary = robustness.summarize_runs(_runs())
    ratios = summary["ratios"]["image_regions"]
    # Against the seed's first baseline and oracle (12, 22) it would be 0.4.
    assert ratios["gap_closed"]["values"] == [None, 0.5]
    assert ratios["vs_oracle"]["values"] == [None, round(16 / 21, 4)]
    assert ratios["vs_no_adaptation"]["values"] == [None, round(16 / 11, 4)]
    # The shared baseline's own numbers are unchanged.
    assert summary["heldout_map"]["no_adaptation"]["values"] == [10.0, 12.0]


def test_trained_map_falls_back_to_the_seeds_baseline():
    # `same_run` above holds no trained mAP: the seed's own counts.
    summary = robustness.summarize_runs(_runs(), "map_trained")
    assert summary["map_trained"]["image_regions"]["values"] == [None, 50.0]
    assert summary["ratios"]["image_regions"]["vs_oracle"]["values"] == [
        None,
        1.0,
    ]


def test_no_gap_gives_nan_not_a_division_by_zero():
    assert math.isnan(robustness.gap_closed(5.0, 10.0, 10.0))
    runs = [
        {
            "no_adaptation": _result(10.0),
            "oracle": _result(10.0),
            "joint": _result(12.0),
        }
    ]
    summary = robustness.summarize_runs(runs)
    assert summary["ratios"]["joint"]["gap_closed"]["values"] == [None]


def test_bar_checks_each_condition():
    summary = robustness.summarize_runs(_runs())
    # joint: gap closed 0.5 and 0.75, 15/20 and 19.5/22 (mean 0.82) of
    # the oracle.
    joint = robustness.bar_checks(summary, "joint")
    assert joint["gap_closed"] == 0.625
    assert joint["gap_closed_at_least_0.5"]
    assert joint["never_below_baseline"]
    assert joint["vs_oracle_at_least_0.75"]
    assert joint["meets_bar"]
    # lsda falls below the classifier alone: the bar fails on that alone.
    lsda = robustness.bar_checks(summary, "lsda", min_gap_closed=-1.0)
    assert lsda["gap_closed_at_least_-1.0"]
    assert not lsda["never_below_baseline"]
    assert not lsda["meets_bar"]
    stricter = robustness.bar_checks(summary, "joint", min_vs_oracle=0.85)
    assert not stricter["vs_oracle_at_least_0.85"]
    assert not stricter["meets_bar"]


def test_bar_checks_without_any_gap_fails_the_gap_condition():
    runs = [
        {
            "no_adaptation": _result(10.0),
            "oracle": _result(10.0),
            "joint": _result(12.0),
        }
    ]
    bar = robustness.bar_checks(robustness.summarize_runs(runs), "joint")
    assert bar["gap_closed"] is None
    assert not bar["gap_closed_at_least_0.5"]
    assert not bar["meets_bar"]


def test_bar_checks_of_an_unknown_method_names_the_argument():
    summary = robustness.summarize_runs(_runs())
    with pytest.raises(ValueError, match="`method` must be"):
        robustness.bar_checks(summary, "magic")
