"""Users' labels of a wake-word detector's wakes and the error-rate test calibrated for them.

A LABEL frame says whether the wake phrase was said at an inference (1) or not (0); the
device's error-rate test (td_monitor_feedback.c, DDM) counts it wrong when that differs from
whether the detector woke there. Which labels users send decides the errors it sees: with
every wake confirmed or rejected, only false wakes (none, often, in a quiet room); with
every missed phrase reported too, also the misses (a third of the phrases for okay_nabu on
espeak-ng speech). DDM's textbook level (3 standard deviations) false-alarms about once in
1,000-2,500 labels on either, so the level is calibrated per labelling on reference sessions
whose wake phrases' positions are known.
"""

from __future__ import annotations

import numpy as np

from tinydrift.errors import TinydriftError


class TooFewLabels(TinydriftError):
    """The reference sessions hold too few labelled events to calibrate the error-rate test on:
    `found` says how many, the message adds what to do."""

    def __init__(self, found: str, remedy: str) -> None:
        super().__init__(f"{found}: {remedy}")
        self.found = found


ACCEPT_AFTER_S = 1.0  # a WAKE this long after the phrase's end still answers it (the window fills)
# How users label a device's wakes (LABEL frames: 1 the wake phrase was said there, 0 not):
# the error-rate test sees a different stream of errors under each, so it is calibrated for one.
LABEL_MODES = {
    "wakes": "every wake confirmed or rejected",
    "wakes-and-misses": "every wake confirmed or rejected, and every missed wake phrase reported",
}
# The error-rate test's false-alarm budget, in labels: one false ERROR_RATE in 10,000 labels
# (from a reset, resets after each alarm, as calibrate_feedback counts it). At the bench's
# busy sessions (150-210 labels an hour) that is 2-3 days of labelling every event; at a
# household's dozen wakes a day, years.
ERROR_RATE_ARL0_LABELS = 10_000


def wake_spans(wakes: np.ndarray, n_samples: int) -> np.ndarray:
    """[n, 2] sample spans in which a WAKE answers each phrase: its start to 1 s after its end."""
    from tinydrift.frontend import SAMPLE_RATE

    spans = np.asarray(wakes, np.int64).reshape(-1, 2).copy()
    spans[:, 1] = np.minimum(spans[:, 1] + int(ACCEPT_AFTER_S * SAMPLE_RATE), n_samples)
    return spans


def label_events(wake_at: np.ndarray, spans: np.ndarray, mode: str) -> tuple[np.ndarray, np.ndarray]:
    """One stream's labels in time order, as users of `mode` send them: (whether the detector
    woke, whether the phrase was said) per label. A WAKE inside a phrase's span is confirmed
    (1, 1), elsewhere rejected (1, 0); with misses, a phrase no WAKE answered is reported at
    its span's end (0, 1)."""
    if mode not in LABEL_MODES:
        raise ValueError(f"labelling mode {mode!r} is not one of {', '.join(LABEL_MODES)}")
    spans = np.asarray(spans, np.int64).reshape(-1, 2)
    wake_at = np.asarray(wake_at, np.int64)
    inside = (wake_at[:, None] >= spans[None, :, 0]) & (wake_at[:, None] <= spans[None, :, 1])
    times = [wake_at]
    predicted, said = [np.ones(len(wake_at), np.int64)], [inside.any(axis=1).astype(np.int64)]
    if mode == "wakes-and-misses":
        missed = ~inside.any(axis=0)
        times.append(spans[missed, 1])
        predicted.append(np.zeros(int(missed.sum()), np.int64))
        said.append(np.ones(int(missed.sum()), np.int64))
    order = np.argsort(np.concatenate(times), kind="stable")
    return np.concatenate(predicted)[order], np.concatenate(said)[order]


def reference_labels(sessions: list[tuple[np.ndarray, np.ndarray, int]], mode: str) -> dict:
    """The labels users of `mode` would send over reference sessions, each (the stream
    positions of its WAKEs, tinydrift.app.wake_positions; its wake phrases' sample ranges, as
    tinydrift.data.wakeword_audio renders them; its length in samples): predicted and label
    per labelled event, in time order, and the session (group) of each."""
    predicted, labels, groups = [], [], []
    for g, (wake_at, wakes, n_samples) in enumerate(sessions):
        p, y = label_events(wake_at, wake_spans(wakes, n_samples), mode)
        predicted.append(p)
        labels.append(y)
        groups.append(np.full(len(p), g, np.int64))
    return {"mode": mode, "predicted": np.concatenate(predicted), "labels": np.concatenate(labels),
            "groups": np.concatenate(groups), "sessions": len(sessions)}


def _holds(report: dict, target_arl0_labels: float) -> bool:
    """Whether the level calibrate_error_rate chose meets the budget (no alarm at all does)."""
    run = report["levels"][f"{report['drift_q8'] / 256:g}"]["arl0_inferences"]
    return run is None or run >= target_arl0_labels


def _level_for_independent_labels(config, share: float, draws: int, rng: np.random.Generator,
                                  target_arl0_labels: float, seed: int):
    """calibrate_error_rate on `draws` independent labels, each wrong with probability
    `share` and its own group: the level for a device whose errors come at that share."""
    from tinydrift.monitor.calibrate_feedback import calibrate_error_rate

    wrong = rng.random(draws) < share
    return calibrate_error_rate(config, np.zeros(draws, np.int64), wrong.astype(np.int64), np.arange(draws),
                                target_arl0=target_arl0_labels, label_share=1.0, seed=seed)


def calibrate_label_feedback(config, reference: dict, *, target_arl0_labels: float = ERROR_RATE_ARL0_LABELS,
                             seed: int = 7):
    """`config` with the error-rate test's drift level (td_monitor_feedback.c's DDM) for users
    who label as `reference` was (reference_labels): the lowest level whose false ERROR_RATE
    come at most once in target_arl0_labels on two kinds of no-drift label streams, and the
    report. (a) The reference's own labels, resampled by whole sessions (a talker the model
    misses is missed all session long): tinydrift.monitor.calibrate_feedback with every
    event labelled. (b) Independent labels wrong at the upper end of the 95 % interval of
    the reference's error share: a reference with few errors (none, often, when only wakes
    are labelled) bounds the share a device will meet, and DDM false-alarms most at low
    shares (at 3 standard deviations about once in 2,000-3,000 labels at 0.5-10 % errors,
    once in 7,000 at 32 %), so an error-free reference alone would pass its lowest level.
    `budget_met` is false when even the highest level (6) false-alarms more often."""
    from dataclasses import replace

    from scipy.stats import beta

    from tinydrift.errors import TinydriftError
    from tinydrift.monitor.calibrate_feedback import calibrate_error_rate

    predicted, labels, groups = reference["predicted"], reference["labels"], reference["groups"]
    n, errors = len(labels), int(np.count_nonzero(predicted != labels))
    if n < 30 or len(np.unique(groups)) < 2:
        raise TooFewLabels(f"the reference sessions hold {n} labelled events in {len(np.unique(groups))} sessions; "
                           "calibrating the error-rate test needs 30 or more in several sessions",
                           "give more or longer sessions with the wake phrase in them")
    upper = float(beta.ppf(0.975, errors + 1, n - errors))
    resampled, from_sessions = calibrate_error_rate(config, predicted, labels, groups, target_arl0=target_arl0_labels,
                                                    label_share=1.0, seed=seed)
    bounded, at_bound = _level_for_independent_labels(config, upper, max(20_000, int(20 / upper)),
                                                      np.random.default_rng([seed, 1]), target_arl0_labels, seed)
    chosen = replace(config, ddm_drift_q8=max(resampled.ddm_drift_q8, bounded.ddm_drift_q8),
                     ddm_warning_q8=max(resampled.ddm_warning_q8, bounded.ddm_warning_q8))

    def levels(report: dict) -> dict:
        return {level: {"alarms": m["alarms"], "arl0_labels": m["arl0_inferences"]} for level, m in report["levels"].items()}

    report = {"mode": reference["mode"], "labelling": LABEL_MODES[reference["mode"]],
              "target_arl0_labels": target_arl0_labels, "sessions": reference["sessions"], "labels": n,
              "errors": errors, "error_share": errors / n, "error_share_upper95": upper,
              "budget_met": _holds(from_sessions, target_arl0_labels) and _holds(at_bound, target_arl0_labels),
              "min_labels": chosen.ddm_min_labels, "drift_q8": chosen.ddm_drift_q8,
              "warning_q8": chosen.ddm_warning_q8,
              "sessions_resampled": {"drift_q8": resampled.ddm_drift_q8, "streams": from_sessions["streams"],
                                     "labels_per_stream": from_sessions["labels_per_stream"],
                                     "levels": levels(from_sessions)},
              "share_bound": {"drift_q8": bounded.ddm_drift_q8, "streams": at_bound["streams"],
                              "labels_per_stream": at_bound["labels_per_stream"], "levels": levels(at_bound)}}
    return replace(chosen, metadata=dict(chosen.metadata, label_feedback=report)), report


# Error shares an unlabelled reference's device may meet: false wakes alone (a few in a
# hundred wakes) up to reported misses (a third of the labels); DDM false-alarms most at a
# few per cent.
ANY_SHARES = (0.005, 0.02, 0.05, 0.15, 0.35)


def calibrate_label_feedback_any_share(config, *, target_arl0_labels: float = ERROR_RATE_ARL0_LABELS,
                                       shares: tuple[float, ...] = ANY_SHARES, seed: int = 7):
    """`config` with the error-rate test's drift level for a reference whose wake phrases'
    positions are unknown (WAV recordings), so whose labels' errors cannot be counted: the
    lowest level that holds target_arl0_labels on independent labels at every one of
    `shares`, and the report (each share's level)."""
    from dataclasses import replace

    per_share, met = {}, True
    for i, share in enumerate(shares):
        level, report = _level_for_independent_labels(config, share, 20_000, np.random.default_rng([seed, 2, i]),
                                                      target_arl0_labels, seed)
        met = met and _holds(report, target_arl0_labels)
        per_share[f"{share:g}"] = level.ddm_drift_q8
    drift = max(per_share.values())
    report = {"mode": None, "labelling": "any (the reference's wake phrases are not known)",
              "target_arl0_labels": target_arl0_labels, "budget_met": met, "min_labels": config.ddm_min_labels,
              "drift_q8": drift, "warning_q8": drift - 256, "drift_q8_by_share": per_share}
    chosen = replace(config, ddm_drift_q8=drift, ddm_warning_q8=drift - 256)
    return replace(chosen, metadata=dict(chosen.metadata, label_feedback=report)), report

