"""A dead or stuck camera caught per frame: td_sensor_image_update (C) against the twin's
sensor_image_update, the same integers on every event, and the conditions where they
belong: a repeated frame is STUCK, a flat frame SILENCE, a saturated one CLIPPING, each a
SENSOR_FAULT once it persists, while a still scene whose sensor noise moves its pixels is
never a stuck camera."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from tinydrift.monitor import config as cfgmod
from tinydrift.monitor import synthetic
from tinydrift.monitor.twin import (EVENT_IMAGE_SENSOR, EVENT_INFERENCE, EVENT_RESET, MonitorTwin, image_summary_length,
                                    run_events)
from tinydrift.target.host_monitor import CMonitor

from test_monitor_c import compare, header_define

HEIGHT, WIDTH = 24, 32
FLAGS_COLUMN, ALARMS_COLUMN = 4, 5


def camera_config(rng: np.random.Generator, tolerance: int = 1):
    """A random monitor config with the camera's sensor levels (as the export writes them)."""
    config = synthetic.random_config(rng, image_summary_length(3), 5)
    return dataclasses.replace(config, clip_level=127, clip_rate_q16=cfgmod.ONE_Q16 * 3 // 4, dc_level=0,
                               stuck_variance=tolerance, silence_variance=4,
                               persist_blocks=np.array([8, 0, 8, 8], np.uint16))


def scene(rng: np.random.Generator) -> np.ndarray:
    """A textured uint8 frame [HEIGHT, WIDTH, 3]."""
    yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH]
    base = 128 + 60 * np.sin(xx / rng.uniform(2, 6))[..., None] * rng.uniform(0.3, 1, 3) + 30 * np.cos(yy / 3)[..., None]
    return np.clip(base, 0, 255)


def with_noise(frame: np.ndarray, rng: np.random.Generator, sd: float) -> np.ndarray:
    return (np.clip(np.rint(frame + rng.normal(0, sd, frame.shape)), 0, 255).astype(np.int16) - 128).astype(np.int8)


def camera_stream(rng: np.random.Generator) -> list[tuple[str, np.ndarray]]:
    """(kind, int8 frame) in order: live frames, a stuck run, a nearly stuck run (one level of
    dither), a still scene with sensor noise, black frames, saturated frames, live again."""
    frames = [("live", with_noise(scene(rng), rng, 3)) for _ in range(12)]
    held = with_noise(scene(rng), rng, 3)
    frames += [("stuck", held) for _ in range(12)]
    # Nearly the same frame: each value the held one's or one level up, so consecutive
    # frames differ by one level at most.
    dither = [("stuck", np.clip(held.astype(np.int16) + rng.integers(0, 2, held.shape), -128, 127).astype(np.int8))
              for _ in range(12)]
    frames += dither
    still = scene(rng)
    frames += [("still", with_noise(still, rng, 1.5)) for _ in range(40)]
    frames += [("dead", np.full((HEIGHT, WIDTH, 3), -128, np.int8)) for _ in range(12)]
    frames += [("saturated", with_noise(np.full((HEIGHT, WIDTH, 3), 255.0), rng, 0.3)) for _ in range(12)]
    frames += [("live", with_noise(scene(rng), rng, 3)) for _ in range(12)]
    return frames


def events_for(frames, n_rows: int, rng: np.random.Generator, resets: bool) -> np.ndarray:
    """Each frame's sensor event, then its inference (the app's order), a reset now and then."""
    n = HEIGHT * WIDTH * 3
    events = []
    for i in range(len(frames)):
        events.append((EVENT_IMAGE_SENSOR, i * n, n))
        events.append((EVENT_INFERENCE, int(rng.integers(0, n_rows)), 0))
        if resets and i % 50 == 49:
            events.append((EVENT_RESET, 0, 0))
    return np.array(events, dtype=np.int32)


@pytest.mark.parametrize("seed", range(4))
def test_c_and_twin_agree_on_every_camera_frame(seed):
    rng = np.random.default_rng(300 + seed)
    config = camera_config(rng, tolerance=seed % 2)
    _, summaries, probs, _ = synthetic.random_events(rng, config, 64, feedback_rate=0, sensor_rate=0, reset_rate=0)
    frames = camera_stream(rng)
    if seed >= 2:  # random frames of every kind, in any order
        frames = [frames[i] for i in rng.permutation(len(frames))]
    pixels = np.stack([f for _, f in frames])
    events = events_for(frames, len(summaries), rng, resets=seed == 3)
    c_rows = CMonitor(config).run_events(events, summaries, probs, frames=pixels)
    compare(c_rows, run_events(config, events, summaries, probs, frames=pixels), events)


def test_conditions_fall_where_the_camera_failed():
    """The ordered stream on the twin (equal to the C above): STUCK on every repeat and,
    with one level of tolerance, on the dithered repeats; never on the still scene whose
    noise (sd 1.5 levels) moves some of the 32 probed values; SILENCE on black frames,
    CLIPPING and SILENCE on saturated ones; a fault, latched as SENSOR_FAULT, after 8."""
    rng = np.random.default_rng(300)
    frames = camera_stream(rng)
    twin = MonitorTwin(camera_config(rng, tolerance=1), 1)
    flags = [int(twin.sensor_image_update(frame[None])["flags"][0]) for _, frame in frames]
    kinds = [kind for kind, _ in frames]
    by_kind = {kind: [f for k, f in zip(kinds, flags) if k == kind] for kind in set(kinds)}
    assert all(f & cfgmod.SENSOR_STUCK for f in by_kind["stuck"][1:]), by_kind["stuck"]
    assert not any(f & cfgmod.SENSOR_STUCK for f in by_kind["still"]), by_kind["still"]
    assert not any(f & cfgmod.SENSOR_STUCK for f in by_kind["live"])
    assert all(f & cfgmod.SENSOR_SILENCE for f in by_kind["dead"])
    assert all(f & cfgmod.SENSOR_CLIPPING and f & cfgmod.SENSOR_SILENCE for f in by_kind["saturated"])
    assert not any(f & (cfgmod.SENSOR_SILENCE | cfgmod.SENSOR_CLIPPING) for f in by_kind["live"] + by_kind["still"])
    fault = cfgmod.SENSOR_STUCK << cfgmod.SENSOR_FAULT_SHIFT
    first_fault = next(i for i, f in enumerate(flags) if f & fault)
    assert kinds[first_fault] == "stuck" and first_fault == kinds.index("stuck") + 8
    assert twin.alarms[0] & cfgmod.ALARM_SENSOR_FAULT


def test_probe_count_matches_the_header():
    assert cfgmod.SENSOR_IMAGE_PROBES == header_define("TD_SENSOR_IMAGE_PROBES")
