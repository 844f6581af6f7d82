"""The error-rate test's calibrated levels (tinydrift.monitor.calibrate_feedback): the level
chosen is the lowest that holds its false-alarm budget, holds it on label streams
calibration never saw, and a raised error rate is still found."""

from __future__ import annotations

import numpy as np
import pytest

from tinydrift.errors import TinydriftError
from tinydrift.monitor.calibrate_feedback import (calibrate_error_rate, error_rate_arl0, label_errors,
                                                  measure_error_rate_arl0)
from tinydrift.monitor.config import ALARM_ERROR_RATE
from tinydrift.monitor.synthetic import random_config

TARGET = 10_000


def labelled_population(seed: int, n_groups: int = 200, per_group: int = 8, error_rate: float = 0.025):
    """(predicted, labels, groups): some groups (plants) much harder than others, as in the
    plant model's held-out leaves, so errors come in groups."""
    rng = np.random.default_rng(seed)
    groups = np.repeat(np.arange(n_groups), per_group)
    hardness = rng.gamma(0.5, error_rate / 0.5, n_groups)  # mean error_rate, skewed
    wrong = rng.random(len(groups)) < np.minimum(hardness[groups], 1.0)
    labels = rng.integers(0, 5, len(groups))
    predicted = np.where(wrong, (labels + 1) % 5, labels)
    return predicted, labels, groups


@pytest.fixture(scope="module")
def calibrated():
    config = random_config(np.random.default_rng(0), n_summary=4, n_classes=5)
    predicted, labels, groups = labelled_population(1)
    return config, calibrate_error_rate(config, predicted, labels, groups, target_arl0=TARGET, max_streams=100)


def test_the_lowest_level_that_holds_the_budget_holds_it_on_unseen_streams(calibrated):
    config, (tuned, report) = calibrated
    predicted, labels, groups = labelled_population(2)  # another draw of the population
    held_out = measure_error_rate_arl0(tuned, predicted, labels, groups, n_inferences=40 * TARGET)
    assert report["drift_q8"] == tuned.ddm_drift_q8 and tuned.ddm_warning_q8 == tuned.ddm_drift_q8 - 256
    assert report["levels"][f"{tuned.ddm_drift_q8 / 256:g}"]["arl0_inferences"] >= TARGET
    assert held_out["arl0_inferences"] >= 0.6 * TARGET, held_out  # ~40 alarms: +-30 % at 2 sd
    lower = [m for level, m in report["levels"].items() if float(level) * 256 < tuned.ddm_drift_q8]
    assert lower and all(m["arl0_inferences"] < TARGET for m in lower), report["levels"]


def test_a_raised_error_rate_is_still_found(calibrated):
    _, (tuned, _) = calibrated
    rng = np.random.default_rng(3)
    before = rng.random((200, 50)) < 0.025
    after = rng.random((200, 100)) < 0.125  # 10 more errors in 100, as the pale-spot drift
    run = error_rate_arl0(tuned, np.concatenate([before, after], axis=1))
    assert run["alarms"] > 0.5 * 200, run


def test_label_streams_thin_whole_group_streams():
    predicted, labels, groups = labelled_population(4)
    wrong = label_errors(predicted, labels, groups, 50, 400, np.random.default_rng(0))
    assert wrong.shape == (50, 400) and wrong.dtype == bool
    assert 0.005 < wrong.mean() < 0.06
    with pytest.raises(TinydriftError, match="label share"):
        label_errors(predicted, labels, groups, 5, 10, np.random.default_rng(0), label_share=0.0)


def test_arl0_counts_each_alarm_and_resets_the_stream(calibrated):
    config, _ = calibrated
    always_wrong = np.zeros((3, 200), bool)
    always_wrong[:, 100:] = True
    run = error_rate_arl0(config, always_wrong)
    assert run["labels"] == 600 and run["alarms"] >= 3
    assert ALARM_ERROR_RATE == 1 << 3



def test_the_delay_bound_is_the_bernoulli_cusums_at_the_budget():
    from tinydrift.monitor.calibrate_feedback import error_rate_delay_bound

    bound = error_rate_delay_bound(0.03, 0.12, arl0_inferences=10_000, label_share=0.1)
    kl = 0.12 * np.log(0.12 / 0.03) + 0.88 * np.log(0.88 / 0.97)  # nats a label
    assert abs(bound["kl_per_label"] - kl) < 1e-12
    assert abs(bound["lorden_asymptotic_labels"] - np.log(1_000) / kl) < 1e-9
    assert 1_000 <= bound["cusum_arl0_labels"] <= 1_100  # the lowest threshold that holds the budget
    # the same CUSUM simulated: its run lengths before and after agree with the chain's
    rng = np.random.default_rng(0)
    up, down = np.log(0.12 / 0.03), np.log(0.88 / 0.97)

    def run_lengths(rate, streams, steps):
        s, first = np.zeros(streams), np.zeros(streams, np.int64)
        for t in range(1, steps + 1):
            s = np.maximum(0.0, s + np.where(rng.random(streams) < rate, up, down))
            first[(s >= bound["cusum_threshold_nats"]) & (first == 0)] = t
        return first

    after = run_lengths(0.12, 4000, 400)
    assert (after > 0).all() and abs(after.mean() / bound["mean_delay_labels"] - 1) < 0.05
    assert abs(np.median(after) - bound["median_delay_labels"]) <= 2
    assert abs(np.mean(after <= 20) - bound["share_found_within"]) < 0.03  # 200 inferences at 1 in 10
    before = run_lengths(0.03, 1000, 4000)
    arl0 = (np.where(before > 0, before, 4000)).sum() / max(1, (before > 0).sum())
    assert abs(arl0 / bound["cusum_arl0_labels"] - 1) < 0.2
    # every label back: far sooner, though the budget counted in labels grows tenfold
    every = error_rate_delay_bound(0.03, 0.12, arl0_inferences=10_000, label_share=1.0)
    assert every["mean_delay_inferences"] < bound["mean_delay_inferences"] / 4
    with pytest.raises(TinydriftError, match="error rate before 0"):
        error_rate_delay_bound(0.0, 0.12, arl0_inferences=100_000)
    with pytest.raises(TinydriftError, match="not above"):
        error_rate_delay_bound(0.12, 0.03, arl0_inferences=100_000)
