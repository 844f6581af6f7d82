"""The error-rate test's levels (td_monitor_feedback.c) for a false-alarm budget.

DDM's textbook levels (drift at 3 standard deviations over the best error rate seen, warning
at 2, from the 30th label) ignore how often labels come back and how accurate the model is:
on the plant model (2.5-2.7 % errors, labels for 1 inference in 10) they raised a false
ERROR_RATE every 21,000-36,000 inferences, 3-5 times as often as the monitor's whole budget
(ARL0 100,000) allows, mostly soon after a reset, while few labels set the best error rate.
Here the drift level is the lowest whose false alarms on no-drift label streams stay within
the budget, measured with the twin itself: inferences by block bootstrap over whole groups
(a plant's or a speaker's errors come together), each labelled with probability
`label_share`, run from a reset to the first ERROR_RATE, then reset again, as a device is.
The warning level stays one standard deviation under the drift level (it only dates the
change).
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np

from tinydrift.errors import TinydriftError
from tinydrift.monitor.config import ALARM_ERROR_RATE, MonitorConfig
from tinydrift.monitor.streams import bootstrap_indices
from tinydrift.monitor.twin import MonitorTwin

# Labels come back for about one inference in ten (a user confirming some of the device's
# calls): the share the budget is converted with, and the drift bench's.
LABEL_SHARE = 0.10
# Candidate drift levels, standard deviations over the best error rate (Q8, steps of 1/4).
DRIFT_LEVELS_Q8 = tuple(range(2 * 256, 6 * 256 + 1, 64))
WARNING_BELOW_Q8 = 256
# The most labels the error-rate calibration simulates (memory grows with them: a fleet's
# ARL0 of tens of millions would otherwise ask for hundreds of millions).
MAX_LABELS = 5_000_000


def label_errors(predicted: np.ndarray, labels: np.ndarray, groups: np.ndarray, n_streams: int, n_labels: int,
                 rng: np.random.Generator, label_share: float = LABEL_SHARE,
                 block_length: int | None = None) -> np.ndarray:
    """bool [n_streams, n_labels]: whether each labelled inference was wrong, the labelled
    ones a `label_share` thinning of block-bootstrap streams over whole groups."""
    if not 0 < label_share <= 1:
        raise TinydriftError(f"label share {label_share} is not in (0, 1]")
    gaps = rng.geometric(label_share, (n_streams, n_labels))
    positions = np.cumsum(gaps, axis=1) - 1
    indices = bootstrap_indices(groups, n_streams, int(positions.max()) + 1, rng, block_length=block_length)
    rows = np.take_along_axis(indices, positions, axis=1)
    return np.asarray(predicted)[rows] != np.asarray(labels)[rows]


def error_rate_arl0(config: MonitorConfig, wrong: np.ndarray, label_share: float = LABEL_SHARE) -> dict:
    """False ERROR_RATE alarms of `config` on the no-drift label streams `wrong` [B, L], each
    stream reset after an alarm: the average run in labels, and in inferences at label_share."""
    n_streams, n_labels = wrong.shape
    twin = MonitorTwin(config, n_streams)
    # the test counts disagreements only: a wrong call is fed as (0, 1), a right one as (0, 0)
    predicted = np.zeros(n_streams, np.int64)
    alarms = 0
    for step in range(n_labels):
        twin.label_feedback(predicted, wrong[:, step].astype(np.int64))
        fired = (twin.alarms & ALARM_ERROR_RATE) != 0
        if fired.any():
            alarms += int(fired.sum())
            twin.reset(fired)
    total = n_streams * n_labels
    arl0_labels = total / alarms if alarms else math.inf
    return {"alarms": alarms, "labels": total, "arl0_labels": arl0_labels,
            "arl0_inferences": arl0_labels / label_share, "label_share": label_share}


def calibrate_error_rate(config: MonitorConfig, predicted: np.ndarray, labels: np.ndarray, groups: np.ndarray, *,
                         target_arl0: float, label_share: float = LABEL_SHARE, max_streams: int = 400,
                         seed: int = 7) -> tuple[MonitorConfig, dict]:
    """`config` with the lowest drift level of DRIFT_LEVELS_Q8 whose false ERROR_RATE alarms
    on no-drift streams of these labelled samples come at most once in target_arl0
    inferences (at label_share), and what each level measured. The streams hold about
    50 x the target in inferences (about 50 alarms at the level chosen: +-15 %), at most
    MAX_LABELS labels (a large fleet's target: the level is then the lowest that raised no
    more alarms than that target allows, within what was simulated); the highest level
    when none holds."""
    if config.n_classes < 2:
        raise TinydriftError("the error-rate test needs at least two classes")
    # streams of at least 1,000 labels (each start is a reset: long next to the DDM's settling)
    total = min(50 * target_arl0 * label_share, MAX_LABELS)
    n_streams = int(min(max_streams, max(20, math.ceil(total / 1000))))
    n_labels = max(1000, int(total / n_streams))
    wrong = label_errors(predicted, labels, groups, n_streams, n_labels, np.random.default_rng(seed), label_share)
    measured = {}
    chosen = DRIFT_LEVELS_Q8[-1]
    for level in DRIFT_LEVELS_Q8:
        trial = replace(config, ddm_drift_q8=level, ddm_warning_q8=level - WARNING_BELOW_Q8)
        measured[level] = error_rate_arl0(trial, wrong, label_share)
        if measured[level]["arl0_inferences"] >= target_arl0:
            chosen = level
            break
    config = replace(config, ddm_drift_q8=chosen, ddm_warning_q8=chosen - WARNING_BELOW_Q8)
    report = {"label_share": label_share, "target_arl0": target_arl0, "streams": n_streams, "labels_per_stream": n_labels,
              "error_rate": float(np.mean(np.asarray(predicted) != np.asarray(labels))),
              "min_labels": config.ddm_min_labels, "warning_q8": config.ddm_warning_q8, "drift_q8": chosen,
              "levels": {f"{lv / 256:g}": {"alarms": m["alarms"], "arl0_inferences": _rounded(m["arl0_inferences"])}
                         for lv, m in measured.items()}}
    return config, report


def _rounded(run_length: float) -> int | None:
    """A run length for the report: None where no alarm came (an error-free sample)."""
    return round(run_length) if math.isfinite(run_length) else None


def measure_error_rate_arl0(config: MonitorConfig, predicted: np.ndarray, labels: np.ndarray, groups: np.ndarray, *,
                            n_inferences: int, label_share: float = LABEL_SHARE, max_streams: int = 400,
                            block_length: int | None = None, seed: int = 1) -> dict:
    """The shipped error-rate test's false alarms on samples calibration did not see:
    n_inferences of no-drift streams, labels back for label_share of them, in streams of
    1,000 labels or more as calibration draws them (each stream's start is a reset, and
    the test is loudest soon after one: shorter streams would read it louder than it is)."""
    total = n_inferences * label_share
    n_streams = int(min(max_streams, max(1, total // 1000)))
    n_labels = max(1, int(round(total / n_streams)))
    wrong = label_errors(predicted, labels, groups, n_streams, n_labels, np.random.default_rng(seed), label_share,
                         block_length)
    return error_rate_arl0(config, wrong, label_share)



def error_rate_delay_bound(error_before: float, error_after: float, arl0_inferences: float,
                           label_share: float = LABEL_SHARE, within_inferences: int = 200) -> dict:
    """What any label-fed test can do against a move of the error rate from error_before to
    error_after, labels back for label_share of the inferences, false alarms at most once in
    arl0_inferences. The Bernoulli CUSUM on the labels' log-likelihood ratio is the optimal
    test for that (Moustakides 1986: least worst-case mean delay at a given ARL0), so its
    delays, started from zero (its worst case), are what no test can beat: computed exactly
    on its Markov chain (the ratio's steps in units of 1/3 of the step a right answer takes),
    the threshold the lowest whose ARL0 in labels holds arl0_inferences x label_share. Also
    the KL divergence of one label after the change from before (nats) and Lorden's
    asymptotic log(ARL0) / KL, which at this budget overstates the delay (large steps
    overshoot the threshold). Labels are taken as independent: errors that come in runs (a
    plant's) carry less, so real streams do worse."""
    for name, rate in (("error rate before", error_before), ("error rate after", error_after)):
        if not 0 < rate < 1:
            raise TinydriftError(f"{name} {rate} is not in (0, 1): the bound needs both outcomes possible")
    if error_after <= error_before:
        raise TinydriftError(f"error rate after ({error_after}) is not above before ({error_before}): nothing to find")
    if not 0 < label_share <= 1:
        raise TinydriftError(f"label share {label_share} is not in (0, 1]")
    p, q = error_after, error_before
    kl = p * math.log(p / q) + (1 - p) * math.log((1 - p) / (1 - q))
    arl0_labels = arl0_inferences * label_share
    up_llr, down_llr = math.log(p / q), math.log((1 - p) / (1 - q))
    unit = -down_llr / 3  # a right answer takes the sum 3 units down, a wrong one `up` units up
    up = max(1, round(up_llr / unit))

    def chain(h: int, rate: float) -> np.ndarray:
        """Transitions among the transient sums 0..h-1 (a sum reaching h alarms)."""
        m = np.zeros((h, h))
        for i in range(h):
            m[i, max(0, i - 3)] += 1 - rate
            if i + up < h:
                m[i, i + up] += rate
        return m

    def run_length(h: int, rate: float) -> float:
        return float(np.linalg.solve(np.eye(h) - chain(h, rate), np.ones(h))[0])

    h = up
    while run_length(h, q) < arl0_labels:
        h = h * 2
    low, high = h // 2, h
    while high - low > 1:
        mid = (low + high) // 2
        low, high = (mid, high) if run_length(mid, q) < arl0_labels else (low, mid)
    h = high
    # the delay's distribution after the change, from a zero sum
    m = chain(h, p)
    state = np.zeros(h)
    state[0] = 1.0
    within = round(within_inferences * label_share)
    median_labels, alive_at_within, labels = None, 1.0, 0
    while median_labels is None or labels < within:
        labels += 1
        state = state @ m
        alive = float(state.sum())
        if labels == within:
            alive_at_within = alive
        if median_labels is None and alive <= 0.5:
            median_labels = labels
    mean_labels = run_length(h, p)
    return {"error_before": error_before, "error_after": error_after, "kl_per_label": kl,
            "arl0_labels": arl0_labels, "lorden_asymptotic_labels": math.log(arl0_labels) / kl,
            "cusum_threshold_nats": h * unit, "cusum_arl0_labels": run_length(h, q),
            "mean_delay_labels": mean_labels, "mean_delay_inferences": mean_labels / label_share,
            "median_delay_labels": median_labels, "median_delay_inferences": median_labels / label_share,
            "within_inferences": within_inferences, "share_found_within": 1.0 - alive_at_within}
