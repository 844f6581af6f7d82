"""Detection on drift scenarios: no-drift inferences, then drifted ones, on the twin."""

from __future__ import annotations

import time

import numpy as np

from tinydrift.monitor.config import ALARM_NAMES, ALARM_TYPES_MASK, MonitorConfig
from tinydrift.monitor.streams import bootstrap_indices
from tinydrift.monitor.twin import MonitorTwin


def measure_detection(
    config: MonitorConfig,
    before: dict,
    after: dict,
    *,
    change_at: int = 1000,
    max_delay: int = 5000,
    n_streams: int = 200,
    keep_order: bool = False,
    block_length: int | str | None = "calibration",
    indices: tuple[np.ndarray, np.ndarray] | None = None,
    seed: int = 2,
) -> dict:
    """Run n_streams streams of `change_at` no-drift inferences (bootstrap of `before`)
    followed by up to `max_delay` drifted ones (bootstrap of `after`); each data set is a
    dict with summaries, probs and groups, and optionally sensor_conditions [n, blocks]: the
    condition bits of the sensor blocks before each inference (MonitorTwin.sensor_conditions),
    given to sensor health before the update as the app does. Reports, over streams, the first latched alarm:
    detection rate, delays (inferences after the change; 1 = the first drifted inference),
    false alarms before the change, the change-time estimate's error, and alarm types.
    indices: the streams' rows of `before` [n, change_at] and of `after` [n, max_delay],
    instead of bootstrap draws (e.g. one recording, then the same one drifted)."""
    from tinydrift.monitor.calibrate import calibrated_block_length

    rng = np.random.default_rng(seed)
    block_length = calibrated_block_length(config, block_length)
    if indices is None:
        pre = bootstrap_indices(before["groups"], n_streams, change_at, rng, keep_order=keep_order, block_length=block_length)
        post = bootstrap_indices(after["groups"], n_streams, max_delay, rng, keep_order=keep_order, block_length=block_length)
    else:
        pre, post = indices
        n_streams, change_at, max_delay = pre.shape[0], pre.shape[1], post.shape[1]
    twin = MonitorTwin(config, n_streams)
    prepared = [twin.per_sample(d["summaries"], d["probs"]) for d in (before, after)]
    first_alarm = np.zeros(n_streams, dtype=np.int64)
    change_estimate = np.zeros(n_streams, dtype=np.int64)
    word = np.zeros(n_streams, dtype=np.int64)
    moved = np.zeros((n_streams, 2), dtype=np.int64)
    start = time.perf_counter()
    for s in range(change_at + max_delay):
        which, rows = (0, pre[:, s]) if s < change_at else (1, post[:, s - change_at])
        sensed = (before, after)[which].get("sensor_conditions")
        if sensed is not None:
            twin.sensor_update_blocks(sensed[rows])
        r = twin.update(None, None, full=False, sample={key: value[rows] for key, value in prepared[which].items()})
        new = (first_alarm == 0) & ((r["alarms"] & ALARM_TYPES_MASK) != 0)
        if new.any():
            first_alarm[new] = twin.alarm_time[new]
            change_estimate[new] = twin.change_time[new]
            word[new] = twin.alarms[new]
            moved[new] = twin.moved_at_alarm[new]
        if s >= change_at and np.all(first_alarm > 0):
            break
    seconds = time.perf_counter() - start
    false_alarm = (first_alarm > 0) & (first_alarm <= change_at)
    detected = first_alarm > change_at
    delays = first_alarm[detected] - change_at
    errors = change_estimate[detected] - (change_at + 1)
    types = {name: int(np.sum(detected & ((word & bit) != 0))) for bit, name in ALARM_NAMES.items()}
    return {
        "streams": n_streams,
        "false_alarms": int(false_alarm.sum()),
        "detected": int(detected.sum()),
        "detection_rate": float(detected.mean()),
        "median_delay": float(np.median(delays)) if delays.size else float("inf"),
        "delays": delays,
        "change_time_error_median": float(np.median(errors)) if errors.size else float("nan"),
        "change_time_errors": errors,
        "types": types,
        "moved_at_alarm": moved[detected],
        "seconds": seconds,
    }
