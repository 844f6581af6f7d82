"""Held-out checks of a calibration method: calibrate on one sample, measure the ARL0 on
another, in both directions and over random splits of the pooled data.

One held-out check is one draw: which few atypical speakers each finite set holds moves
the measured ARL0 far more than the check's own Poisson error. Over several splits the
geometric mean of measured / target says whether the method is centred, and the spread
of log(measured / target) how far a single check may land from the target.

    result = heldout_arl0(ref, test, target_arl0=100_000, splits=4)
    result["geometric_mean_ratio"], result["log_sd"], result["pairs"]
"""

from __future__ import annotations

import math
import time

import numpy as np

from tinydrift.monitor.calibrate import DEFAULT_COMMISSION, calibrate_monitor, measure_arl0
from tinydrift.monitor.evaluate import measure_detection

SAMPLE_KEYS = ("summaries", "probs", "groups", "labels")


def split_within_groups(data: dict, rng: np.random.Generator, share: float = 0.5) -> tuple[dict, dict]:
    """Two disjoint samples of the same speakers: each group's samples dealt at random,
    `share` to the first (the way `ref` and `test` hold different clips of the same
    held-out speakers)."""
    groups = np.asarray(data["groups"])
    first = np.zeros(len(groups), dtype=bool)
    for g in np.unique(groups):
        rows = rng.permutation(np.flatnonzero(groups == g))
        n = int(math.floor(share * len(rows) + rng.random()))
        first[rows[:n]] = True
    pick = lambda mask: {k: np.asarray(data[k])[mask] for k in SAMPLE_KEYS if k in data}  # noqa: E731
    return pick(first), pick(~first)


def heldout_arl0(
    ref: dict,
    test: dict,
    *,
    target_arl0: float = 100_000,
    splits: int = 4,
    check_inferences: int | None = None,
    drifted: dict | None = None,
    seed: int = 0,
    commission_n: int = DEFAULT_COMMISSION,
    speaker_run: int | None = None,
    **calibration,
) -> dict:
    """Calibrate on ref (as an export does: calibrate_monitor) and check on test, the reverse,
    and `splits` random halves of the pooled samples (ref + test dealt within groups). Each sample dict holds summaries,
    probs, groups and labels. check_inferences defaults to 100 x the target (about 100
    alarms: a Poisson error of 10 % on each check). With `drifted`, the detection of the
    change from the check sample to it is measured for the two directional pairs."""
    check_inferences = int(check_inferences or 100 * target_arl0)
    pooled = {k: np.concatenate([ref[k], test[k]]) for k in SAMPLE_KEYS if k in ref and k in test}
    rng = np.random.default_rng(seed)
    pairs = [("ref->test", ref, test), ("test->ref", test, ref)]
    for s in range(splits):
        a, b = split_within_groups(pooled, rng)
        pairs.append((f"split{s}", a, b))
    rows = []
    for name, a, b in pairs:
        start = time.perf_counter()
        config, report = calibrate_monitor(a["summaries"], a["probs"], a["groups"], a.get("labels"),
                                           target_arl0=target_arl0, commission_n=commission_n, speaker_run=speaker_run,
                                           seed=seed, **calibration)
        check = measure_arl0(config, b["summaries"], b["probs"], b["groups"], n_inferences=check_inferences, seed=seed + 7)
        row = {
            "pair": name,
            "calibration_samples": int(len(a["groups"])),
            "check_samples": int(len(b["groups"])),
            "arl0": check["arl0"],
            "ratio": check["arl0"] / target_arl0,
            "alarms": check["alarms"],
            "by_type": check["by_type"],
        }
        if drifted is not None and not name.startswith("split"):
            detection = measure_detection(config, b, drifted, seed=seed + 2)
            row["detection_rate"] = detection["detection_rate"]
            row["median_delay"] = detection["median_delay"]
        row["seconds"] = round(time.perf_counter() - start, 1)
        rows.append(row)
    logs = np.log([max(r["ratio"], 1e-9) for r in rows])
    return {
        "target_arl0": float(target_arl0),
        "calibration": {"commission_n": commission_n, "speaker_run": speaker_run, **calibration},
        "pairs": rows,
        "geometric_mean_ratio": float(np.exp(logs.mean())),
        "log_sd": float(logs.std(ddof=1)) if len(logs) > 1 else float("nan"),
        "within_20_percent": int(np.sum(np.abs(np.array([r["ratio"] for r in rows]) - 1) <= 0.2)),
    }
