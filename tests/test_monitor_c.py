"""The firmware's drift monitor (C) against its Python twin: the same integers on every
event of many long streams, under sanitizers, under a fuzzer, and on the Cortex-M4."""

from __future__ import annotations

import dataclasses
import functools
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from tinydrift import firmware
from tinydrift.monitor import config as cfgmod
from tinydrift.monitor import synthetic
from tinydrift.target.host_monitor import MONITOR_SRC, SHIM_DIR, CMonitor, build_flags, monitor_sources
from tinydrift.codegen.monitor_header import emit_monitor_config_h
from tinydrift.monitor.twin import (INFERENCE_FIELDS, ROW_WIDTH, MonitorTwin, image_summary_length, result_rows, run_events,
                                    summarize_frames, summarize_image)

HEADER = (MONITOR_SRC / "td_monitor.h").read_text()


def header_define(name: str) -> int:
    match = re.search(rf"#define {name} \(?([0-9xA-Fa-fu< ]+?)\)?\s*(/\*|$)", HEADER, re.M)
    assert match, name
    return int(eval(match.group(1).replace("u", "")))  # noqa: S307 - our own header


def test_python_constants_match_the_header():
    for py, c in [
        (cfgmod.ABI_VERSION, "TD_MONITOR_ABI_VERSION"),
        (cfgmod.MAX_SUMMARY, "TD_MONITOR_MAX_SUMMARY"),
        (cfgmod.MAX_CLASSES, "TD_MONITOR_MAX_CLASSES"),
        (cfgmod.Z_FRAC_BITS, "TD_Z_FRAC_BITS"),
        (cfgmod.EWMA_EXTRA_BITS, "TD_EWMA_EXTRA_BITS"),
        (cfgmod.PROB_FRAC_BITS, "TD_PROB_FRAC_BITS"),
        (cfgmod.CHANNEL_Z_MAX, "TD_CHANNEL_Z_MAX"),
        (cfgmod.SCORE_Z_MAX, "TD_SCORE_Z_MAX"),
        (cfgmod.CUSUM_MAX, "TD_CUSUM_MAX"),
        (cfgmod.SUMMARY_FRAC_BITS, "TD_SUMMARY_FRAC_BITS"),
        (cfgmod.SENSOR_MAX_BLOCK, "TD_SENSOR_MAX_BLOCK"),
        (cfgmod.ALARM_DATA_DRIFT, "TD_ALARM_DATA_DRIFT"),
        (cfgmod.ALARM_SENSOR_FAULT, "TD_ALARM_SENSOR_FAULT"),
        (cfgmod.WARNING_SHIFT, "TD_WARNING_SHIFT"),
        (cfgmod.SENSOR_STUCK, "TD_SENSOR_STUCK"),
        (cfgmod.SENSOR_FAULT_SHIFT, "TD_SENSOR_FAULT_SHIFT"),
        (cfgmod.MAX_COMMISSION, "TD_MONITOR_MAX_COMMISSION"),
        (cfgmod.COMMISSION_MIN_VAR_Q12, "TD_COMMISSION_MIN_VAR_Q12"),
        (cfgmod.SPREAD_BLOCK_SHIFT, "TD_SPREAD_BLOCK_SHIFT"),
        (cfgmod.SPREAD_PRIOR_BLOCKS, "TD_SPREAD_PRIOR_BLOCKS"),
        (cfgmod.CENTRE_COMMISSION_SHIFT, "TD_CENTRE_COMMISSION_SHIFT"),
        (cfgmod.COMMISSION_DEAD_BITS, "TD_COMMISSION_DEAD_BITS"),
        (cfgmod.SENSOR_INPUT_MAX_BLOCKS, "TD_SENSOR_INPUT_MAX_BLOCKS"),
    ]:
        assert py == header_define(c), c


def compare(c_rows: np.ndarray, twin_rows: np.ndarray, events: np.ndarray) -> None:
    bad = np.nonzero((c_rows != twin_rows).any(axis=1))[0]
    if bad.size:
        i = bad[0]
        cols = np.nonzero(c_rows[i] != twin_rows[i])[0]
        pytest.fail(f"{bad.size} of {len(events)} events differ; first: event {i} {events[i].tolist()} columns {cols.tolist()}: C {c_rows[i, cols].tolist()} twin {twin_rows[i, cols].tolist()}")


STREAM_SHAPES = [(40, 12), (64, 16), (1, 1), (13, 2), (40, 12), (33, 5), (64, 16), (7, 3)]  # (n_summary, n_classes)
ALARM_COLUMN = INFERENCE_FIELDS.index("alarms")
# Stream 0 latches every alarm type: a C monitor that never raises one of them differs from the twin there.
ALL_ALARMS_SEED = 0


@functools.lru_cache(maxsize=2)
def seeded_stream(seed: int) -> tuple:
    """A random config and a mixed event stream of 2,500 inferences, with the twin's rows."""
    rng = np.random.default_rng(100 + seed)
    n_summary, n_classes = STREAM_SHAPES[seed]
    config = synthetic.random_config(rng, n_summary, n_classes, extreme=seed % 2 == 1)
    events, summaries, probs, pcm = synthetic.random_events(rng, config, 2500)
    return config, (events, summaries, probs, pcm), run_events(config, events, summaries, probs, pcm)


def check_c_agrees_with_twin(seed: int, monitor_dir: Path = MONITOR_SRC) -> np.ndarray:
    """The C monitor (from monitor_dir) on stream `seed` gives the twin's rows; returns them."""
    config, stream, twin_rows = seeded_stream(seed)
    c_rows = CMonitor(config, monitor_dir=monitor_dir).run_events(*stream)
    compare(c_rows, twin_rows, stream[0])
    return c_rows


@pytest.mark.parametrize("seed", range(len(STREAM_SHAPES)))
def test_c_and_twin_agree_on_every_event(seed):
    """Mixed event streams (inferences in realistic, full-range, constant, alternating and
    rail segments; label feedback; PCM blocks of every kind; resets) on random configs,
    half of them drawn across the whole accepted range of every field."""
    c_rows = check_c_agrees_with_twin(seed)
    # The streams exercised the decision paths, not only the arithmetic.
    kinds = c_rows[:, 0]
    assert (kinds == 0).sum() == 2500 and (kinds == 1).any() and (kinds == 2).any()
    if seed == ALL_ALARMS_SEED:
        latched = np.bitwise_or.reduce(c_rows[:, ALARM_COLUMN]) & cfgmod.ALARM_TYPES_MASK
        assert latched == cfgmod.ALARM_TYPES_MASK, cfgmod.alarm_names(int(latched))


@pytest.mark.parametrize("commission_n", [0, 50])
def test_c_and_twin_agree_while_the_spread_is_learned(commission_n):
    """The long-run spread on streams that never alarm, in runs of a few hundred inferences
    each drawn around its own level (a speaker who holds the device for a while), with
    resets between: the learned spread widens, the gain falls below one, the C gives the
    twin's z on every event, and a reset keeps what was learned."""
    from tinydrift.monitor.twin import EVENT_INFERENCE, EVENT_RESET

    rng = np.random.default_rng(41)
    config = synthetic.random_config(rng, 40, 12).replace(
        score_warning=np.full(cfgmod.SCORE_COUNT, cfgmod.CUSUM_MAX), score_drift=np.full(cfgmod.SCORE_COUNT, cfgmod.CUSUM_MAX),
        score_limit=np.zeros(cfgmod.SCORE_COUNT), score_spread_ref=[0, 300, 200, 400, 100],
        score_spread_centre=[0, -500, -2000, 700, 30], commission_n=commission_n).validate()
    _, summaries, probs, _ = synthetic.random_events(rng, config, 6000, feedback_rate=0, sensor_rate=0, reset_rate=0)
    runs = np.repeat(rng.integers(0, 6000, 30), 200)  # 30 runs of 200 inferences, each one inference repeated
    jitter = rng.integers(0, 6000, runs.size)
    rows = np.where(rng.random(runs.size) < 0.5, runs, jitter)
    events = np.array([(EVENT_INFERENCE, r, 0) for r in rows], dtype=np.int64)
    events = np.insert(events, [2000, 4000], [(EVENT_RESET, 0, 0)], axis=0)
    c_rows = CMonitor(config).run_events(events, summaries, probs)
    compare(c_rows, run_events(config, events, summaries, probs), events)
    twin = MonitorTwin(config)
    for kind, a, _ in events:
        if kind == EVENT_INFERENCE:
            twin.update(summaries[a][None], probs[a][None])
        else:
            learned = twin.spread.copy(), twin.spread_gain.copy()
            twin.reset()
            assert np.array_equal(twin.spread, learned[0]) and np.array_equal(twin.spread_gain, learned[1])
            assert twin.spread_n[0] == 0 and twin.spread_have_last[0] == 0
    gain = twin.spread_gain[0]
    assert gain[0] == cfgmod.ONE_Q12  # spread off: z as it was
    assert np.all(gain[2:] < cfgmod.ONE_Q12), gain  # wider than the calibration's: drawn in
    assert twin.spread_blocks[0] == cfgmod.SPREAD_PRIOR_BLOCKS


def test_c_and_twin_agree_while_the_centres_are_refined():
    """After commissioning, the confidence and entropy centres learn from calm inferences only:
    on runs of inferences around their own levels, with warnings that come and go and a reset,
    the C gives the twin's raw scores, z and alarms on every event; the
    centres stop at their weight, stand still while their score warns, and move toward what
    the device hears."""
    from tinydrift.monitor.twin import EVENT_INFERENCE, EVENT_RESET

    rng = np.random.default_rng(43)
    config = synthetic.random_config(rng, 40, 12).replace(
        commission_n=50, centre_n=900, score_spread_ref=np.zeros(cfgmod.SCORE_COUNT), score_limit=np.zeros(cfgmod.SCORE_COUNT))
    _, summaries, probs, _ = synthetic.random_events(rng, config, 6000, feedback_rate=0, sensor_rate=0, reset_rate=0)
    rows = np.repeat(rng.integers(0, 6000, 40), 150)  # 40 runs of one inference, 150 long
    rows = np.where(rng.random(rows.size) < 0.5, rows, rng.integers(0, 6000, rows.size))
    twin = MonitorTwin(config)
    raw = np.array([twin.update(summaries[r][None], probs[r][None])["raw"][0] for r in rows[:1000]])
    # a warning level the scores' CUSUMs reach now and then; no alarm (it would stop the learning)
    spread = np.abs(raw[200:, 2:4] - np.median(raw[200:, 2:4], axis=0)).mean(axis=0)
    gain = np.clip(np.round(4096 * 65536 / np.maximum(spread, 1)), 1, 1 << 28).astype(np.int64)
    config = config.replace(score_offset=[*config.score_offset[:2], *np.median(raw[200:, 2:4], axis=0).astype(int), 0],
                            score_gain_q16=[*config.score_gain_q16[:2], -gain[0], gain[1], config.score_gain_q16[4]],
                            score_k=[*config.score_k[:2], 4096, 4096, config.score_k[4]],
                            score_warning=[*config.score_warning[:2], 6 * 4096, 6 * 4096, config.score_warning[4]],
                            score_drift=[*config.score_drift[:2], cfgmod.CUSUM_MAX, cfgmod.CUSUM_MAX,
                                         config.score_drift[4]]).validate()
    events = np.array([(EVENT_INFERENCE, r, 0) for r in rows], dtype=np.int64)
    events = np.insert(events, [3000], [(EVENT_RESET, 0, 0)], axis=0)
    c_rows = CMonitor(config).run_events(events, summaries, probs)
    compare(c_rows, run_events(config, events, summaries, probs), events)

    twin = MonitorTwin(config)
    weights, warned_still, moved = [], 0, 0
    for kind, a, _ in events:
        if kind != EVENT_INFERENCE:
            twin.reset()
            continue
        before = twin.comm_confidence[0], twin.comm_centre_weight[0].copy()
        twin.update(summaries[a][None], probs[a][None])
        if twin.commission_count[0] == config.commission_n and before[1][0] > 0:
            calm = twin.cusum[0, 2] < config.score_warning[2] and not twin.alarms[0] & cfgmod.ALARM_CONFIDENCE_DRIFT
            changed = twin.comm_centre_weight[0, 0] != before[1][0]
            assert changed == (calm and before[1][0] < config.centre_n)
            warned_still += not calm
            moved += changed and twin.comm_confidence[0] != before[0]
        weights.append(twin.comm_centre_weight[0].copy())
    assert warned_still > 100 and moved > 100, (warned_still, moved)  # both ways exercised
    assert np.max(weights) == config.centre_n


@pytest.mark.parametrize("extreme", [False, True])
def test_vectorized_twin_matches_c_on_long_streams(extreme):
    """32 independent streams of 6,000 inferences each through the batched twin (the path
    calibration uses) against the C run stream by stream: 192,000 inferences a config."""
    rng = np.random.default_rng(7 if extreme else 8)
    config = synthetic.random_config(rng, 40, 12, extreme=extreme)
    n_streams, length = 32, 6000
    _, summaries, probs, _ = synthetic.random_events(rng, config, n_streams * length, feedback_rate=0, sensor_rate=0, reset_rate=0)
    summaries = summaries.reshape(n_streams, length, -1)
    probs = probs.reshape(n_streams, length, -1)
    twin = MonitorTwin(config, n_streams)
    twin_rows = np.zeros((n_streams, length, ROW_WIDTH), dtype=np.int64)
    for t in range(length):
        twin_rows[:, t] = result_rows(twin.update(summaries[:, t], probs[:, t]))
    monitor = CMonitor(config)
    events = np.stack([np.zeros(length), np.arange(length), np.zeros(length)], axis=1).astype(np.int32)
    for b in range(n_streams):
        monitor.reset()
        compare(monitor.run_events(events, summaries[b], probs[b]), twin_rows[b], events)
    # The CUSUMs moved (columns 12-16) and, on the realistic config, drift levels were hit.
    assert (twin_rows[:, :, 12:17] > 0).any()
    if not extreme:
        assert ((twin_rows[:, -1, ALARM_COLUMN] & cfgmod.ALARM_TYPES_MASK) != 0).any()


def test_summarize_frames_matches_and_rounds_half_up():
    rng = np.random.default_rng(3)
    features = rng.integers(-128, 128, (300, 49, 40)).astype(np.int8)
    features[0] = -128
    features[1] = 127
    features[2, :, :] = np.where(np.arange(49)[:, None] % 2 == 0, -128, 127)
    config = synthetic.random_config(rng, 40, 12)
    got = CMonitor(config).summarize(features)
    want = summarize_frames(features)
    assert np.array_equal(got, want)
    assert np.all(want[0] == -128 * 128) and np.all(want[1] == 127 * 128)
    # Exact rule on a hand case: mean (-1 + 0) / 2 = -0.5 -> -64 after * 128, no rounding.
    assert summarize_frames(np.array([[-1], [0]], np.int8))[0] == -64
    # 1/3 * 128 = 42.67 -> 43; -1/3 * 128 = -42.67 -> -43.
    assert summarize_frames(np.array([[1], [0], [0]], np.int8))[0] == 43
    assert summarize_frames(np.array([[-1], [0], [0]], np.int8))[0] == -43


def test_summarize_floor_matches_and_counts_exactly():
    """td_summarize_floor against its twin on random features (mostly at the floor, as a
    quiet front end gives, and none), on the streaming block's shape and others, and the
    limits it refuses: a group that does not divide the channels, more values than an int16
    count x 2^7 holds."""
    from tinydrift.monitor.twin import summarize_floor

    rng = np.random.default_rng(4)
    monitor = CMonitor(synthetic.random_config(rng, 40, 12))
    for frames, channels, group in [(3, 40, 2), (3, 40, 1), (49, 40, 5), (1, 7, 7), (85, 6, 3), (255, 1, 1)]:
        features = rng.integers(-128, 128, (200, frames, channels)).astype(np.int8)
        quiet = rng.random(features.shape) < rng.random((200, 1, 1))  # 0-100 % of each block at the floor
        features = np.where(quiet, -128, features).astype(np.int8)
        features[0] = -128
        features[1] = -127  # one above the floor counts nothing
        want = summarize_floor(features, group)
        assert np.array_equal(monitor.summarize_floor(features, group), want), (frames, channels, group)
        assert np.all(want[0] == frames * group * 128) and np.all(want[1] == 0)
    hand = np.array([[-128, 5, -128, -128], [0, -128, -128, 3], [-128, -128, 1, -128]], np.int8)
    assert summarize_floor(hand, 2).tolist() == [4 * 128, 4 * 128]
    for frames, channels, group in [(3, 40, 3), (128, 2, 2), (3, 40, 0)]:
        with pytest.raises(ValueError):
            summarize_floor(np.zeros((frames, channels), np.int8), group)
        with pytest.raises(RuntimeError, match="status -3"):
            monitor.summarize_floor(np.zeros((1, frames, channels), np.int8), group)


def test_summarize_level_matches_and_is_log2_within_a_tenth():
    """td_summarize_level against its twin on every power of two and its neighbours, random
    energies over the whole range and beyond its saturation; Mitchell's approximation is
    exact at powers of two, within 0.1 octave of log2 elsewhere and never decreasing."""
    from tinydrift.monitor.twin import SUMMARY_LEVEL_MAX_ENERGY, summarize_level

    rng = np.random.default_rng(5)
    monitor = CMonitor(synthetic.random_config(rng, 40, 12))
    powers = np.array([1 << k for k in range(63)], np.uint64)
    energy = np.concatenate([np.arange(300, dtype=np.uint64), powers - 1, powers, powers + 1,
                             rng.integers(0, 1 << 50, 5000, dtype=np.uint64),
                             (2.0 ** rng.uniform(0, 48, 5000)).astype(np.uint64)])
    want = summarize_level(np.minimum(energy, SUMMARY_LEVEL_MAX_ENERGY).astype(np.int64))
    assert np.array_equal(monitor.summarize_level(energy), want)
    assert summarize_level(np.array([0, 1, 3, (1 << 20) - 1, 1 << 48, 1 << 60])).tolist() == [
        0, 128, 256, 20 * 128, 48 * 128, 48 * 128]
    inside = np.sort(energy[energy < SUMMARY_LEVEL_MAX_ENERGY]).astype(np.int64)
    level = summarize_level(inside)
    assert np.all(np.diff(level.astype(np.int64)) >= 0)
    error = level / 128 - np.log2(inside.astype(np.float64) + 1)
    assert error.max() <= 1e-9 and error.min() > -0.1  # Mitchell 0.086, the 7-bit fraction 0.008
    with pytest.raises(ValueError):
        summarize_level(np.array([-1]))


def test_slope_energy_and_tilt_match_on_random_tones_and_rails():
    """td_slope_energy and td_summarize_tilt against their twins on random blocks (white
    noise, full-scale rails and alternation, silence, odd lengths, each after a random
    previous sample) and on sines: the tilt falls with a tone's frequency as the first
    difference's gain 4 sin^2(pi f / rate) does, so a band limit lowers it."""
    from tinydrift.monitor.twin import slope_energy, summarize_tilt

    rng = np.random.default_rng(8)
    monitor = CMonitor(synthetic.random_config(rng, 40, 12))
    for length in (1, 7, 160, 480):
        blocks = np.concatenate([rng.integers(-32768, 32768, (200, length)),
                                 np.full((3, length), 32767), np.full((3, length), -32768), np.zeros((3, length)),
                                 np.tile(np.array([32767, -32768]), length)[None, :length].repeat(3, axis=0)]).astype(np.int16)
        previous = np.concatenate([rng.integers(-32768, 32768, 200), [-32768, 32767, 0],
                                   [1, -1, 100], [0, 0, 0], [-32768, 32767, 5]]).astype(np.int16)
        want = slope_energy(blocks, previous)
        assert np.array_equal(monitor.slope_energy(blocks, previous), want.astype(np.uint64)), length
        energy = (blocks.astype(np.int64) ** 2).sum(axis=1)
        assert np.array_equal(monitor.summarize_tilt(want.astype(np.uint64), energy.astype(np.uint64)),
                              summarize_tilt(want, energy))
    assert slope_energy(np.array([[32767, -32768]], np.int16), np.array([-32768], np.int16))[0] == 2 * 65535 ** 2
    t = np.arange(480)
    tones = np.stack([np.round(8000 * np.sin(2 * np.pi * f * t / 16000)) for f in (250, 1000, 4000)]).astype(np.int16)
    slope = slope_energy(tones, tones[:, 0])
    tilt = summarize_tilt(slope, (tones.astype(np.int64) ** 2).sum(axis=1)) / 128
    gain = np.log2(4 * np.sin(np.pi * np.array([250, 1000, 4000]) / 16000) ** 2)  # -6.0, -2.0, +1.0 octaves
    assert np.all(np.abs(tilt - gain) < 0.2), (tilt, gain)


def test_summarize_quiet_matches_and_is_the_lowest_of_the_last_sixteen_levels():
    """td_summarize_quiet against its twin over streams shorter and far longer than its span
    (random levels, a staircase down and up, a constant, the int16 rails): each value is the
    lowest of the last 16 levels, or of all so far in a stream's first 15."""
    from tinydrift.monitor.twin import SUMMARY_QUIET_SPAN, summarize_quiet

    rng = np.random.default_rng(9)
    monitor = CMonitor(synthetic.random_config(rng, 40, 12))
    streams = [rng.integers(0, 6144, n) for n in (1, 5, 16, 17, 1000)]
    streams += [np.r_[np.arange(40, 0, -1), np.arange(40)] * 100, np.full(50, 77), rng.choice([-32768, 32767], 200)]
    for levels in streams:
        levels = np.asarray(levels, np.int16)
        want = summarize_quiet(levels)
        assert np.array_equal(monitor.summarize_quiet(levels), want)
        assert want.tolist() == [int(levels[max(0, k - SUMMARY_QUIET_SPAN + 1):k + 1].min()) for k in range(len(levels))]
    assert SUMMARY_QUIET_SPAN == 16


def test_summarize_image_matches_on_random_and_drawn_images():
    """td_summarize_image against its twin on random images (uniform, rails, checkerboards,
    odd sizes that split unevenly into blocks) and on drawn leaves, blurred and not."""
    from tinydrift.data.imageset import pixels_to_int8
    from tinydrift.data.leaves import PlantConfig, generate_split

    rng = np.random.default_rng(5)
    config = synthetic.random_config(rng, image_summary_length(3), 5)
    monitor = CMonitor(config)
    for height, width, grid in [(48, 48, 3), (48, 48, 2), (7, 5, 3), (1, 2, 1), (13, 29, 4), (255, 257, 1)]:
        images = rng.integers(-128, 128, (40, height, width, 3)).astype(np.int8)
        images[0] = -128
        images[1] = 127
        images[2] = np.where((np.arange(height)[:, None] + np.arange(width)) % 2 == 0, -128, 127)[..., None]
        images[3] = (images[3] // 16).astype(np.int8)  # low contrast
        want = summarize_image(images, grid)
        assert want.shape == (40, image_summary_length(grid))
        assert np.array_equal(monitor.summarize_image(images, grid), want), (height, width, grid)
        blocks = 3 * grid * grid
        assert np.all(want[0, :blocks] == -128 * 128) and np.all(want[1, :blocks] == 127 * 128)
        assert np.all(want[0, blocks:] == 0)  # a flat image: no spread, no edges
        if height * width > 2:
            assert np.all(want[2, blocks + 3:blocks + 6] > 200 * 128)  # the checkerboard: every neighbour 255 apart
    leaves = pixels_to_int8(generate_split(PlantConfig(images_per_class={"ref": 8}), "ref").images)
    blurred = ((leaves[:, :-2, :-2].astype(np.int16) + leaves[:, 1:-1, 1:-1] + leaves[:, 2:, 2:]) // 3).astype(np.int8)
    for images in (leaves, blurred):
        assert np.array_equal(monitor.summarize_image(images, 3), summarize_image(images, 3))
    # Sharpness and crispness (the last 6 values) are what a blur lowers.
    assert np.all(summarize_image(blurred, 3)[:, -6:] < summarize_image(leaves, 3)[:, -6:])
    # Exact rules on hand cases: a 1x2 image of (-1, 0): mean -64 (no rounding), std 0.5 -> 64,
    # neighbour difference 1 -> 128, no second difference -> crispness 0. A row (0, 2, 0):
    # first differences 2 + 2, second |0 - 4 + 0| = 4 -> 4 / 4 = 1 -> 4096 in Q12.
    pair = np.array([[[[-1, -1, -1], [0, 0, 0]]]], np.int8)
    assert summarize_image(pair, 1)[0].tolist() == [-64] * 3 + [64] * 3 + [128] * 3 + [0] * 3
    spike = np.array([[[[0] * 3, [2] * 3, [0] * 3]]], np.int8)
    assert summarize_image(spike, 1)[0, -3:].tolist() == [4096] * 3
    assert np.array_equal(monitor.summarize_image(spike, 1), summarize_image(spike, 1))


def test_state_size_fits_the_budget():
    """The state is sized to the config as the firmware build sizes it: for the keyword
    model's 42 summary values (40 channel means, the loudness and the quiet level) and 12
    classes, <= 1 KB of RAM with the commissioning reference."""
    project = CMonitor(synthetic.random_config(np.random.default_rng(0), 42, 12))
    assert project.state_size <= 1024
    # count, per channel, conf/entropy, per class, the two centres' weights
    assert project.commission_size == 4 + 4 * (2 * 42 + 2 + 12) + 2 * 2
    camera = CMonitor(synthetic.random_config(np.random.default_rng(0), image_summary_length(3), 5))
    assert camera.state_size <= 1024  # the plant model: 36 image summary values, 5 classes
    capacity = CMonitor(synthetic.random_config(np.random.default_rng(0), 64, 16))
    assert project.state_size < capacity.state_size
    print(f"monitor state: {project.state_size} bytes (42 ch, 12 classes) of which commissioning "
          f"{project.commission_size}; {capacity.state_size} bytes (64 ch, 16 classes) of which {capacity.commission_size}")


def test_an_inference_whose_every_sensor_block_is_flagged_enters_no_score():
    """Two inferences fed only stuck blocks (a blink shorter than a fault), inserted
    mid-stream, are answered, and the running displays follow their answers, but no score
    moves: every score and CUSUM afterwards is what the stream without them gives. One sound
    block before an inference's sound one and it counts as usual."""
    rng = np.random.default_rng(31)
    config = synthetic.random_config(rng, 40, 12)
    n = 700
    _, summaries, probs, _ = synthetic.random_events(rng, config, n, feedback_rate=0, sensor_rate=0, reset_rate=0)
    sound = np.clip(rng.normal(0, 2000, 320), -32000, 32000).astype(np.int16)
    stuck = np.zeros(320, np.int16)
    pcm = np.concatenate([sound, stuck])
    SOUND, STUCK = (2, 0, 320), (2, 320, 320)
    plain = [e for row in range(n) for e in (SOUND, (0, row, 0))]
    blink_at, blink = 500, [(STUCK, (0, row, 0)) for row in (3, 4)]  # any rows: they must not count
    blinked = [e for row in range(n) for e in ((*(e for b in blink for e in b),) if row == blink_at else ())
               + (SOUND, (0, row, 0))]
    mixed = [e for row in range(n) for e in ((STUCK, SOUND) if row == blink_at else (SOUND,)) + ((0, row, 0),)]
    columns = [i for i, name in enumerate(INFERENCE_FIELDS)
               if name.split("_")[0] in ("raw", "z", "cusum", "alarms", "predicted")]
    display = [INFERENCE_FIELDS.index(name) for name in ("confidence_ewma_q16", "entropy_ewma_q16", "atc_accuracy_q16")]

    def inference_rows(events):
        events = np.array(events)
        c_rows = CMonitor(config).run_events(events, summaries, probs, pcm)
        compare(c_rows, run_events(config, events, summaries, probs, pcm), events)
        return c_rows[events[:, 0] == 0]

    plain_rows, blinked_rows = inference_rows(plain), inference_rows(blinked)
    held = blinked_rows[blink_at:blink_at + 2]
    assert (held[:, [INFERENCE_FIELDS.index(f"raw_{i}") for i in range(5)]] == 0).all()
    assert (held[:, [INFERENCE_FIELDS.index(f"z_{i}") for i in range(5)]] == 0).all()
    assert (held[:, INFERENCE_FIELDS.index("predicted")] == np.argmax(probs[[3, 4]], axis=1)).all()
    assert (plain_rows[blink_at:, 1] != 0).any()  # the scores are live where the blink falls
    assert not np.array_equal(held[:, display], blinked_rows[blink_at - 1:blink_at + 1, display])
    assert np.array_equal(np.delete(blinked_rows, np.s_[blink_at:blink_at + 2], axis=0)[:, columns],
                          plain_rows[:, columns])
    # a stuck block before the sound one: the inference counts as it does without it
    assert np.array_equal(inference_rows(mixed)[:, columns + display], plain_rows[:, columns + display])


def test_reset_returns_to_the_initial_state():
    rng = np.random.default_rng(11)
    # The long-run spread is what a reset keeps (td_monitor_reset): with none configured,
    # every byte of the state returns.
    config = dataclasses.replace(synthetic.random_config(rng, 40, 12),
                                 score_spread_ref=np.zeros(cfgmod.SCORE_COUNT, np.int32))
    events, summaries, probs, pcm = synthetic.random_events(rng, config, 500, reset_rate=0)
    monitor = CMonitor(config)
    fresh = monitor.state_bytes()
    monitor.run_events(events, summaries, probs, pcm)
    assert monitor.state_bytes() != fresh
    monitor.run_events(np.array([[3, 0, 0]]), summaries, probs)
    assert monitor.state_bytes() == fresh


def test_c_refuses_bad_arguments():
    rng = np.random.default_rng(12)
    config = synthetic.random_config(rng, 40, 12)
    monitor = CMonitor(config)
    summaries = np.zeros((1, 40), np.int16)
    probs = np.zeros((1, 12), np.int8)
    for bad in ([1, 12, 0], [1, -1, 0], [1, 0, 12]):
        with pytest.raises(RuntimeError, match="status -3"):
            monitor.run_events(np.array([bad]), summaries, probs)


def test_under_address_and_undefined_behaviour_sanitizers(tmp_path):
    """A standalone build with -fsanitize=address,undefined replays a long mixed stream
    on an extreme config; it must finish clean and agree with the twin."""
    rng = np.random.default_rng(21)
    config = synthetic.random_config(rng, 64, 16, extreme=True)
    flags = build_flags(config)
    exe = firmware.compile_host(
        [SHIM_DIR / "td_monitor_host_main.c", SHIM_DIR / "td_monitor_host.c", *monitor_sources()],
        shared=False,
        sanitize=True,
        optimize="-O1",
        **flags,
    )
    events, summaries, probs, pcm = synthetic.random_events(rng, config, 4000)
    files = {}
    for name, arr, dtype in [("events", events, np.int32), ("summaries", summaries, np.int16), ("probs", probs, np.int8), ("pcm", pcm, np.int16)]:
        files[name] = tmp_path / f"{name}.bin"
        np.ascontiguousarray(arr, dtype=dtype).tofile(files[name])
    out = tmp_path / "rows.bin"
    proc = subprocess.run([str(exe), *(str(files[n]) for n in ("events", "summaries", "probs", "pcm")), str(out)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "runtime error" not in proc.stderr and "AddressSanitizer" not in proc.stderr
    rows = np.fromfile(out, dtype=np.int64).reshape(len(events), ROW_WIDTH)
    compare(rows, run_events(config, events, summaries, probs, pcm), events)


def test_summarize_image_under_sanitizers(tmp_path):
    """td_summarize_image under -fsanitize=address,undefined, each image in a buffer of its
    exact size: the edge loops read nothing past the image, and the results are the twin's."""
    exe = firmware.compile_host([SHIM_DIR / "td_monitor_host_main.c", SHIM_DIR / "td_monitor_host.c", *monitor_sources()],
                                shared=False, sanitize=True, optimize="-O1",
                                **build_flags(synthetic.random_config(np.random.default_rng(0), 40, 12)))
    rng = np.random.default_rng(9)
    for height, width, grid in [(48, 48, 3), (1, 2, 1), (2, 1, 1), (3, 3, 3), (7, 5, 2)]:
        images = rng.integers(-128, 128, (20, height, width, 3)).astype(np.int8)
        images[0], images[1] = -128, 127
        images.tofile(tmp_path / "pixels.bin")
        proc = subprocess.run([str(exe), "image", str(height), str(width), str(grid), str(tmp_path / "pixels.bin"),
                               str(tmp_path / "out.bin")], capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0 and "runtime error" not in proc.stderr, proc.stderr
        got = np.fromfile(tmp_path / "out.bin", dtype=np.int16).reshape(len(images), -1)
        assert np.array_equal(got, summarize_image(images, grid)), (height, width, grid)


def _clang_has_libfuzzer(tmp_path) -> bool:
    if shutil.which("clang") is None:
        return False
    src = tmp_path / "probe.c"
    src.write_text("#include <stdint.h>\n#include <stddef.h>\nint LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) { (void)d; (void)n; return 0; }\n")
    proc = subprocess.run(["clang", "-fsanitize=fuzzer", str(src), "-o", str(tmp_path / "probe")], capture_output=True)
    return proc.returncode == 0


@pytest.mark.parametrize("extreme", [False, True])
def test_fuzz_update_feedback_and_sensor(tmp_path, extreme):
    """libFuzzer drives update, label feedback (in and out of range), sensor blocks and
    resets for a few seconds; the target aborts on any broken invariant."""
    if not _clang_has_libfuzzer(tmp_path):
        pytest.skip("clang with libFuzzer not available")
    config = synthetic.random_config(np.random.default_rng(31 + extreme), 40, 12, extreme=extreme)
    exe = firmware.compile_host(
        [SHIM_DIR / "td_monitor_fuzz.c", *monitor_sources()],
        shared=False,
        compiler="clang",
        optimize="-O1",
        extra_flags=["-fsanitize=fuzzer,address,undefined", "-fno-sanitize-recover=all"],
        **build_flags(config),
    )
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    proc = subprocess.run([str(exe), "-max_total_time=3", "-seed=1", "-rss_limit_mb=8192", str(corpus)], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs = re.search(r"Done (\d+) runs", proc.stderr)
    assert runs and int(runs.group(1)) > 1000, proc.stderr[-2000:]


ARM_FLAGS = ["-std=c99", "-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16", "-O2", "-Wall", "-Wextra", "-Werror", "-Wshadow", "-Wstrict-prototypes"]


def _code_holding_a_state(folder: Path, seed: int, name: str, body: str) -> Path:
    """folder/name: C holding a monitor state (`state`), with a random config of 40 values and
    12 classes generated beside it as td_monitor_config_kws.h, then `body`."""
    emit_monitor_config_h(synthetic.random_config(np.random.default_rng(seed), 40, 12),
                          folder / "td_monitor_config_kws.h")
    source = folder / name
    source.write_text('#include "td_monitor_config_kws.h"\nstatic td_monitor_state_t state;\n' + body)
    return source


def test_builds_for_cortex_m4(tmp_path):
    if shutil.which("arm-none-eabi-gcc") is None:
        pytest.skip("arm-none-eabi-gcc not installed")
    app = _code_holding_a_state(
        tmp_path, 41, "app.c",
        "int td_app_step(const int16_t *s, const int8_t *p, td_monitor_result_t *r);\n"
        "int td_app_step(const int16_t *s, const int8_t *p, td_monitor_result_t *r)\n"
        "{\n    if (state.t == 0 && td_monitor_init(&state, &td_monitor_config_kws) != 0) {\n        return -1;\n    }\n"
        "    return td_monitor_update(&state, &td_monitor_config_kws, s, p, r);\n}\n"
    )
    objects = []
    for src in [*monitor_sources(), app]:
        obj = tmp_path / (src.stem + ".o")
        proc = subprocess.run(["arm-none-eabi-gcc", *ARM_FLAGS, f"-I{MONITOR_SRC}", f"-I{firmware.LIB_SRC}", f"-I{tmp_path}", "-c", str(src), "-o", str(obj)], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
        objects.append(obj)
    size = subprocess.run(["arm-none-eabi-size", "-t", *map(str, objects)], capture_output=True, text=True)
    total = size.stdout.strip().splitlines()[-1].split()
    text, data, bss = (int(x) for x in total[:3])
    # No RAM beyond the state the app declares (state is the app's bss), no data.
    assert data == 0
    print(f"Cortex-M4 -O2: monitor code+config {text} bytes flash, state {bss} bytes RAM")


def test_a_state_of_another_build_is_refused_at_init(tmp_path):
    """The library built with the default capacities, the code holding the state with the
    project model's (42 values, 12 classes): init refuses it with TD_MONITOR_ERR_BUILD rather
    than writing 1,408 bytes into a 1,024-byte state. Built alike, it initializes."""
    caller = _code_holding_a_state(
        tmp_path, 43, "caller.c", "int main(void)\n{\n    return -td_monitor_init(&state, &td_monitor_config_kws);\n}\n")
    statuses = {}
    for caller_sizes in ("42/12", "64/16"):
        objects = []
        for src, sizes in [(src, "64/16") for src in monitor_sources()] + [(caller, caller_sizes)]:
            summary, classes = sizes.split("/")
            obj = tmp_path / f"{src.stem}-{summary}.o"
            proc = subprocess.run(["gcc", "-std=c99", "-O1", f"-I{MONITOR_SRC}", f"-I{firmware.LIB_SRC}",
                                   f"-I{tmp_path}",
                                   f"-DTD_MONITOR_MAX_SUMMARY={summary}", f"-DTD_MONITOR_MAX_CLASSES={classes}",
                                   "-c", str(src), "-o", str(obj)], capture_output=True, text=True)
            assert proc.returncode == 0, proc.stderr
            objects.append(obj)
        exe = tmp_path / f"caller-{caller_sizes.replace('/', '-')}"
        proc = subprocess.run(["gcc", *map(str, objects), "-o", str(exe)], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
        statuses[caller_sizes] = -subprocess.run([str(exe)]).returncode
    assert "#define TD_MONITOR_ERR_BUILD (-4)" in HEADER
    assert statuses == {"42/12": -4, "64/16": 0}


NEVER_INITIALIZED = r"""
#include <stdlib.h>
#include <string.h>
static int16_t summary[40];
static int8_t probs[12];
static int16_t pcm[320];
static int8_t pixels[96];
static td_monitor_state_t copy, junk;
static const td_monitor_config_t *const cfg = &td_monitor_config_kws;

static int every_entry(td_monitor_state_t *s)
{
    td_sensor_image_t camera;
    td_sensor_image_reset(&camera);
    if (td_monitor_update(s, cfg, summary, probs, 0) != TD_MONITOR_ERR_STATE) return 1;
    if (td_monitor_label_feedback(s, cfg, 0, 1, 0) != TD_MONITOR_ERR_STATE) return 2;
    if (td_sensor_update(s, cfg, pcm, 320, 0) != TD_MONITOR_ERR_STATE) return 3;
    if (td_sensor_image_update(s, cfg, &camera, pixels, 96, 0) != TD_MONITOR_ERR_STATE) return 4;
    if (td_monitor_commission_restore(s, cfg, &s->commission) != TD_MONITOR_ERR_STATE) return 5;
    return 0;
}

int main(void)
{
    uint32_t i, k;
    int refused = 0;
    /* zeroed, as static storage starts: refused everywhere, and left as it was */
    memcpy(&copy, &state, sizeof state);
    if (every_entry(&state) != 0) return 10 + every_entry(&state);
    if (memcmp(&copy, &state, sizeof state) != 0) return 20;
    /* a reset alone does not make one */
    td_monitor_reset(&state, cfg);
    if (td_monitor_update(&state, cfg, summary, probs, 0) != TD_MONITOR_ERR_STATE) return 21;
    /* initialized: every entry takes it, through many spread blocks, a reset and a restore */
    if (td_monitor_init(&state, cfg) != TD_MONITOR_OK) return 22;
    for (i = 0; i < 2000; ++i) {
        summary[i % 40] = (int16_t)(i * 37 % 200 - 100);
        probs[i % 12] = (int8_t)(i * 11 % 256 - 128);
        pcm[i % 320] = (int16_t)(i * 97 % 2000 - 1000);
        if (td_sensor_update(&state, cfg, pcm, 320, 0) != TD_MONITOR_OK) return 23;
        if (td_monitor_update(&state, cfg, summary, probs, 0) != TD_MONITOR_OK) return 24;
        if (i % 10 == 0 && td_monitor_label_feedback(&state, cfg, 0, (int32_t)(i % 12), 0) != TD_MONITOR_OK) return 25;
        if (i == 1500) td_monitor_reset(&state, cfg);
    }
    /* stack garbage: random bytes, as an uninitialized local holds */
    srand(7);
    for (k = 0; k < 2000; ++k) {
        unsigned char *b = (unsigned char *)&junk;
        for (i = 0; i < sizeof junk; ++i) b[i] = (unsigned char)(rand() >> 7);
        refused += td_monitor_update(&junk, cfg, summary, probs, 0) == TD_MONITOR_ERR_STATE;
    }
    return refused == 2000 ? 0 : 30;
}
"""


def test_a_state_never_initialized_is_refused_by_every_entry_not_run_silently(tmp_path):
    """A caller that forgets td_monitor_init holds a zeroed (static) or garbage (stack) state,
    and td_monitor_update returned OK on it, running on a variance reference, spread gains and
    displays of zero. Every entry that updates a state now refuses one that init has not marked
    (TD_MONITOR_ERR_STATE) and leaves it as it was; a reset alone does not mark it; an
    initialized state passes through thousands of updates, spread blocks and a reset."""
    caller = _code_holding_a_state(tmp_path, 44, "caller.c", NEVER_INITIALIZED)
    exe = tmp_path / "caller"
    proc = subprocess.run(["gcc", "-std=c99", "-O1", "-Wall", "-Werror", f"-I{MONITOR_SRC}", f"-I{firmware.LIB_SRC}",
                           f"-I{tmp_path}", *map(str, monitor_sources()), str(caller), "-o", str(exe)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "#define TD_MONITOR_ERR_STATE (-5)" in HEADER
    assert subprocess.run([str(exe)]).returncode == 0


def test_a_score_limit_latches_at_once_where_the_cusum_would_not_yet():
    """A large shift of the input summary: with the mean score's limit, DATA_DRIFT latches
    when one z reaches it, in C and twin alike; without it, the same CUSUM (its drift level
    out of reach here) never latches; nor does the limit while the microphone reads stuck
    (a sensor fault under way, which sensor health is to name)."""
    from tinydrift.monitor.twin import EVENT_INFERENCE, EVENT_SENSOR

    rng = np.random.default_rng(21)
    base = synthetic.random_config(rng, 40, 12).replace(commission_n=0, enabled_scores=1 << cfgmod.SCORE_MEAN,
                                                        loudness_limit=0, quiet_limit=0)
    std = (1 << 28) / base.inv_std_q28.astype(np.float64)
    n, change = 400, 200
    summaries = base.ref_mean + rng.normal(0, 1, (n, 40)) * std
    summaries[change:] += 6 * std  # six reference deviations on every channel
    summaries = np.clip(np.round(summaries), -32768, 32767).astype(np.int16)
    probs = np.full((n, 12), -128, dtype=np.int8)
    probs[:, 0] = 127
    inferences = np.stack([np.full(n, EVENT_INFERENCE), np.arange(n), np.zeros(n)], axis=1)
    # the same, each inference after the change preceded by a block of digital zeros
    pcm = np.zeros(320, dtype=np.int16)
    stuck = np.concatenate([inferences[:change], *([[EVENT_SENSOR, 0, 320], row] for row in inferences[change:])])
    unreachable = np.full(cfgmod.SCORE_COUNT, cfgmod.CUSUM_MAX)
    time_column = INFERENCE_FIELDS.index("alarm_time")
    latched_at, data_drift = {}, {}
    for name, limit, events in (("none", 0, inferences), ("limit", cfgmod.SCORE_Z_MAX // 2, inferences),
                                ("limit, stuck", cfgmod.SCORE_Z_MAX // 2, stuck)):
        config = base.replace(score_drift=unreachable, score_warning=unreachable, stuck_variance=4,
                              persist_blocks=np.array([50, 50, 250, 0]), score_limit=np.array([limit, 0, 0, 0, 0]))
        events = np.asarray(events, dtype=np.int32)
        twin_rows = run_events(config, events, summaries, probs, pcm)
        compare(CMonitor(config).run_events(events, summaries, probs, pcm), twin_rows, events)
        inference_rows = twin_rows[events[:, 0] == EVENT_INFERENCE]
        latched_at[name] = int(inference_rows[-1, time_column])
        data_drift[name] = bool(inference_rows[-1, ALARM_COLUMN] & cfgmod.ALARM_DATA_DRIFT)
    assert latched_at["none"] == 0 and not data_drift["none"]
    assert change < latched_at["limit"] < n and data_drift["limit"]
    # every inference a dropout: whatever sensor health latches (this config's test of
    # dropouts, SENSOR_FAULT), the limit latches no DATA_DRIFT
    assert not data_drift["limit, stuck"]


def test_the_loudness_limit_latches_a_quieter_microphone_that_the_mean_score_does_not_see():
    """Only the loudness (the summary's last value) moves, by three reference deviations:
    with its limit, DATA_DRIFT latches once that component's CUSUM reaches it, in C and twin
    alike, dated by that CUSUM's excursion; without the limit the mean score (its levels
    out of reach) never latches, nor does the limit while the microphone reads stuck or
    clips in a share of blocks that light clipping counts (sensor health's to name)."""
    from tinydrift.monitor.twin import EVENT_INFERENCE, EVENT_SENSOR

    rng = np.random.default_rng(22)
    c = 41
    base = synthetic.random_config(rng, c, 12).replace(commission_n=0, enabled_scores=1 << cfgmod.SCORE_MEAN,
                                                       score_limit=np.zeros(cfgmod.SCORE_COUNT), loudness_component=c - 1,
                                                       quiet_limit=0)
    std = (1 << 28) / base.inv_std_q28.astype(np.float64)
    n, change = 400, 200
    summaries = base.ref_mean + rng.normal(0, 1, (n, c)) * std
    summaries[change:, c - 1] -= 3 * std[c - 1]
    summaries = np.clip(np.round(summaries), -32768, 32767).astype(np.int16)
    probs = np.full((n, 12), -128, dtype=np.int8)
    probs[:, 0] = 127
    inferences = np.stack([np.full(n, EVENT_INFERENCE), np.arange(n), np.zeros(n)], axis=1)
    # a block of digital zeros (stuck) at 0, a clipping one at 320
    pcm = np.concatenate([np.zeros(320), np.tile([32767, -32768], 160)]).astype(np.int16)
    stuck = np.concatenate([inferences[:change], *([[EVENT_SENSOR, 0, 320], row] for row in inferences[change:])])
    clipping = np.concatenate([inferences[:change], *([*[[EVENT_SENSOR, 320, 320]] * 50, row]  # the app's 50 blocks
                                                      for row in inferences[change:])])
    unreachable = np.full(cfgmod.SCORE_COUNT, cfgmod.CUSUM_MAX)
    columns = [INFERENCE_FIELDS.index(name) for name in ("alarm_time", "change_time", "alarms")]
    seen = {}
    level = 20 << 12  # 20 reference deviations
    for name, limit, events in (("none", 0, inferences), ("limit", level, inferences),
                                ("limit, stuck", level, stuck), ("limit, clipping", level, clipping)):
        # clipping never a fault here, and light clipping's own alarm out of reach
        config = base.replace(score_drift=unreachable, score_warning=unreachable, stuck_variance=4,
                              persist_blocks=np.array([0, 50, 250, 0]), clip_level=32767, clip_rate_q16=655,
                              clip_drift_q16=655, clip_drift_blocks=65535, loudness_limit=limit, whiten_q12=None)
        events = np.asarray(events, dtype=np.int32)
        twin_rows = run_events(config, events, summaries, probs, pcm)
        compare(CMonitor(config).run_events(events, summaries, probs, pcm), twin_rows, events)
        seen[name] = tuple(int(v) for v in twin_rows[events[:, 0] == EVENT_INFERENCE][-1, columns])
    assert seen["none"][0] == 0 and seen["limit, clipping"][0] == 0
    # every inference a dropout: this config's test of dropouts may latch SENSOR_FAULT, the
    # limit no DATA_DRIFT
    assert not seen["limit, stuck"][2] & cfgmod.ALARM_DATA_DRIFT
    alarm_time, change_time, alarms = seen["limit"]
    # 2.5 deviations a step past the allowance: about 8 inferences, and dated by the
    # downward side's excursion, which began at the change give or take the noise
    assert change < alarm_time < change + 30 and change - 10 <= change_time <= change + 2
    assert alarms & cfgmod.ALARM_DATA_DRIFT


def sensor_only_config(rng: np.random.Generator, *, commission_n: int, persist_blocks: list[int],
                       dropout_limit: int) -> cfgmod.MonitorConfig:
    """A random config whose only alarms are sensor health's: no score, no light clipping,
    the test of a sensor that fails on and off at an eighth over the commissioning share."""
    return synthetic.random_config(rng, 12, 4).replace(
        commission_n=commission_n, enabled_scores=0, loudness_limit=0, quiet_limit=0,
        score_limit=np.zeros(cfgmod.SCORE_COUNT), stuck_variance=0, persist_blocks=np.array(persist_blocks),
        dc_level=2000, silence_variance=100, clip_level=32767, clip_rate_q16=cfgmod.ONE_Q16 // 100,
        clip_drift_q16=0, dropout_margin=cfgmod.ONE_Q12 // 8, dropout_limit=dropout_limit)


def dropout_events(kinds: np.ndarray) -> np.ndarray:
    """One inference a step, after one sensor block: noise (pcm[320:640]) where `kinds` is 0,
    digital zeros (pcm[0:320], stuck: a dropout) where 1, the rail (pcm[640:960], clipping: held
    but no dropout) where 2. Every flagged run ends before it persists into a fault of its own."""
    from tinydrift.monitor.twin import EVENT_INFERENCE, EVENT_SENSOR

    events = []
    for i, kind in enumerate(kinds):
        events += [[EVENT_SENSOR, (320, 0, 640)[kind], 320], [EVENT_INFERENCE, i, 0]]
    return np.asarray(events, dtype=np.int32)


def test_a_sensor_that_fails_on_and_off_is_a_sensor_fault_above_the_share_commissioning_lost():
    """Dropouts (inferences whose every sensor block lost the signal) in runs far too short to
    persist into a fault: a device with 10 % of them while commissioning stays quiet at 10 %
    (and at a blink of 3 in 100) for 1,500 inferences; at 40 % (two of every five, dead for a
    stretch and back) SENSOR_FAULT latches within 100, dated near the change, in C and twin
    alike. One with none while commissioning latches at 25 %, one commissioned at 30 % does
    not; inferences clipped whole are held out of the scores but are no dropouts (saturation
    still carries the signal): 40 % of them latch nothing; with dropout_limit 0 nothing does."""
    from tinydrift.monitor.twin import EVENT_INFERENCE

    rng = np.random.default_rng(23)
    base = sensor_only_config(rng, commission_n=50, persist_blocks=[20, 50, 20, 0], dropout_limit=8 << 12)
    pcm = np.concatenate([np.zeros(320), rng.normal(0, 1000, 320), np.tile([32767, -32768], 160)])
    pcm = pcm.round().astype(np.int16)
    n = 2000
    summaries = np.repeat(base.ref_mean[None], n, axis=0)
    probs = np.full((n, 4), -128, dtype=np.int8)
    probs[:, 0] = 127
    columns = [INFERENCE_FIELDS.index(name) for name in ("alarm_time", "change_time", "alarms")]

    def last(config, kinds):
        events = dropout_events(kinds)
        twin_rows = run_events(config, events, summaries, probs, pcm)
        compare(CMonitor(config).run_events(events, summaries, probs, pcm), twin_rows, events)
        return tuple(int(v) for v in twin_rows[events[:, 0] == EVENT_INFERENCE][-1, columns])

    def every(n_lost, period, length, kind=1):
        return np.where(np.arange(length) % period < n_lost, kind, 0)

    change = 1500
    steady = every(1, 10, n)  # 10 %, alone
    failing = np.concatenate([steady[:change], every(2, 5, n - change)])
    assert last(base, steady[:change]) == (0, 0, 0)
    assert last(base, np.concatenate([steady[:100], every(3, 100, change - 100)]))[2] == 0
    alarm_time, change_time, alarms = last(base, failing)  # latched, its CUSUM still warning
    assert alarms == cfgmod.ALARM_SENSOR_FAULT | cfgmod.ALARM_SENSOR_FAULT << cfgmod.WARNING_SHIFT
    assert change < alarm_time < change + 100
    assert change - 20 <= change_time <= change + 5
    assert last(base.replace(dropout_limit=0), failing)[2] == 0
    assert last(base, np.concatenate([steady[:change], every(2, 5, n - change, kind=2)]))[2] == 0

    # the share learned: none while commissioning, then 25 % (one in four); or 30 % from the start
    quarter = np.concatenate([np.zeros(200, int), every(1, 4, change - 200)])
    assert last(base, quarter)[2] & cfgmod.ALARM_TYPES_MASK == cfgmod.ALARM_SENSOR_FAULT
    assert last(base, every(3, 10, change))[2] == 0


def dead_block_events(kinds: np.ndarray, blocks_per_inference: int) -> np.ndarray:
    """A block timeline, `blocks_per_inference` sensor blocks then an inference: noise
    (pcm[320:640]) where `kinds` is 0, digital zeros (pcm[0:320], stuck) where 1 (or True),
    noise 3,000 levels up (pcm[640:960], an offset block, as loud speech gives) where 2."""
    from tinydrift.monitor.twin import EVENT_INFERENCE, EVENT_SENSOR

    events = []
    for i, inference in enumerate(np.asarray(kinds, int).reshape(-1, blocks_per_inference)):
        events += [[EVENT_SENSOR, (320, 0, 640)[kind], 320] for kind in inference] + [[EVENT_INFERENCE, i, 0]]
    return np.asarray(events, dtype=np.int32)


def test_dead_time_counts_wherever_it_falls_against_the_inference_windows():
    """The app's 50 blocks an inference; dead stretches far too short for the stuck fault
    (200 blocks), none ever covering a whole inference: a second dead of every three and 0.9 s
    of every second, both shifted half a second, and half of every second straddling two
    windows, latch SENSOR_FAULT soon after the change, in C and twin alike; a device whose
    pauses read dead for up to 30 blocks of every 50 since commissioning stays quiet, and so
    does one whose blocks read as offset half of every second (loud speech: the signal is
    there). An inference fed 300 blocks (its counters halve past 255) counts as half dead if
    half are."""
    from tinydrift.monitor.twin import EVENT_INFERENCE

    rng = np.random.default_rng(29)
    base = sensor_only_config(rng, commission_n=20, persist_blocks=[50, 50, 200, 0], dropout_limit=4 << 12)
    noise = rng.normal(0, 1000, 320)
    pcm = np.concatenate([np.zeros(320), noise, noise + 3000]).round().astype(np.int16)
    n, change, per = 100, 60, 50
    summaries = np.repeat(base.ref_mean[None], n, axis=0)
    probs = np.full((n, 4), -128, dtype=np.int8)
    probs[:, 0] = 127
    columns = [INFERENCE_FIELDS.index(name) for name in ("alarm_time", "change_time", "alarms")]

    def last(dead, blocks_per_inference=per):
        events = dead_block_events(dead, blocks_per_inference)
        twin_rows = run_events(base, events, summaries, probs, pcm)
        compare(CMonitor(base).run_events(events, summaries, probs, pcm), twin_rows, events)
        alarm_time, change_time, alarms = twin_rows[events[:, 0] == EVENT_INFERENCE][-1, columns]
        return int(alarm_time), int(change_time), int(alarms) & ((1 << cfgmod.WARNING_SHIFT) - 1)  # latched only

    block = np.arange(n * per)

    def failing(dead_after):
        return np.where(block >= change * per, dead_after, False)

    for name, pattern in (("1 s of every 3, shifted 0.5 s", (block - 25) % 150 < 50),
                          ("0.9 s of every second, shifted 0.5 s", (block - 25) % 50 < 45),
                          ("0.5 s of every second, straddling", (block - 12) % 50 < 25)):
        dead = failing(pattern)
        assert not dead.reshape(n, per).all(axis=1).any(), name  # no inference wholly dead
        alarm_time, change_time, alarms = last(dead)
        assert alarms == cfgmod.ALARM_SENSOR_FAULT and change < alarm_time <= change + 30, name
        assert change - 2 <= change_time <= change + 3, name
    assert last(np.zeros(n * per, bool)) == (0, 0, 0)
    # offset blocks, half of every second, are no dead time (the offset fault needs 50 in a row)
    assert last(failing((block - 12) % 50 < 25) * 2) == (0, 0, 0)
    pauses = np.concatenate([block[k * per:(k + 1) * per] % per < d for k, d in enumerate(rng.integers(0, 31, n))])
    assert last(pauses)[2] == 0
    # 300 blocks an inference, 75 dead and 75 sound by turns: half dead
    long = np.arange(n // 2 * 300)
    alarm_time, _, alarms = last(np.where(long >= 30 * 300, long % 150 < 75, False), 300)
    assert alarms == cfgmod.ALARM_SENSOR_FAULT and 30 < alarm_time <= 30 + 15


def test_the_sensor_warning_comes_half_way_to_a_fault_not_at_one_flagged_block():
    """Loud speech reads as offset in one 20 ms block now and then: the SENSOR_FAULT warning
    came with every such block that ended an inference, about 0.4 % of a healthy
    microphone's inferences (trial 23). It now comes once a condition has lasted half the
    blocks that make it a fault (an offset of 25 blocks where 50 latch), or once the CUSUM of
    dead time is half way to its limit, and goes when the condition ends; C and twin alike on
    every event."""
    from tinydrift.monitor.twin import EVENT_INFERENCE

    rng = np.random.default_rng(31)
    base = sensor_only_config(rng, commission_n=20, persist_blocks=[50, 50, 200, 0], dropout_limit=4 << 12)
    noise = rng.normal(0, 1000, 320)
    pcm = np.concatenate([np.zeros(320), noise, noise + 3000]).round().astype(np.int16)
    n, per = 100, 50
    summaries = np.repeat(base.ref_mean[None], n, axis=0)
    probs = np.full((n, 4), -128, dtype=np.int8)
    probs[:, 0] = 127
    column = INFERENCE_FIELDS.index("alarms")
    warning = cfgmod.ALARM_SENSOR_FAULT << cfgmod.WARNING_SHIFT

    def alarm_words(kinds):
        events = dead_block_events(kinds, per)
        twin_rows = run_events(base, events, summaries, probs, pcm)
        compare(CMonitor(base).run_events(events, summaries, probs, pcm), twin_rows, events)
        return twin_rows[events[:, 0] == EVENT_INFERENCE][:, column].astype(np.int64)

    block = np.arange(n * per)
    # one offset block ending every other inference, and a few more anywhere
    lone = np.where((block % (2 * per) == 2 * per - 1) | (rng.random(n * per) < 0.01), 2, 0)
    assert not (alarm_words(lone) & (warning | cfgmod.ALARM_TYPES_MASK)).any()
    # offset runs ending each inference: 24 blocks warn of nothing, 25 do, until sound returns
    for run, warned in ((24, False), (25, True)):
        words = alarm_words(np.where(block % per >= per - run, 2, 0))
        assert ((words & warning) != 0).all() == warned and not (words & cfgmod.ALARM_TYPES_MASK).any(), run
    words = alarm_words(np.where((block >= 41 * per - 30) & (block < 41 * per), 2, 0))
    assert (words[40] & warning) and not (np.delete(words, 40) & warning).any()
    # half of every second dead from inference 60: the warning comes before the fault
    words = alarm_words(np.where(block >= 60 * per, block % per < 25, 0))
    warned = int(np.argmax((words & warning) != 0))
    latched = int(np.argmax((words & cfgmod.ALARM_SENSOR_FAULT) != 0))
    assert 60 < warned < latched and not (words[:60] & warning).any()


def test_the_quiet_limit_latches_noise_filling_the_pauses_and_not_a_quieter_room():
    """Only the quiet level (the summary's last value) moves, by three reference deviations:
    up (noise filling the pauses), its upward CUSUM latches DATA_DRIFT at its limit, in C and
    twin alike, dated by that CUSUM's excursion; down (a quieter room) it does not, nor while
    the microphone reads stuck; without the limit nothing latches."""
    from tinydrift.monitor.twin import EVENT_INFERENCE, EVENT_SENSOR

    rng = np.random.default_rng(23)
    c = 42
    base = synthetic.random_config(rng, c, 12).replace(
        commission_n=0, enabled_scores=1 << cfgmod.SCORE_MEAN, score_limit=np.zeros(cfgmod.SCORE_COUNT),
        loudness_component=c - 2, loudness_limit=0, quiet_component=c - 1, whiten_q12=None)
    std = (1 << 28) / base.inv_std_q28.astype(np.float64)
    n, change = 400, 200
    noise = rng.normal(0, 1, (n, c))
    probs = np.full((n, 12), -128, dtype=np.int8)
    probs[:, 0] = 127
    inferences = np.stack([np.full(n, EVENT_INFERENCE), np.arange(n), np.zeros(n)], axis=1)
    pcm = np.zeros(320, np.int16)  # a block of digital zeros: stuck
    stuck = np.concatenate([inferences[:change], *([[EVENT_SENSOR, 0, 320], row] for row in inferences[change:])])
    unreachable = np.full(cfgmod.SCORE_COUNT, cfgmod.CUSUM_MAX)
    columns = [INFERENCE_FIELDS.index(name) for name in ("alarm_time", "change_time", "alarms")]
    seen = {}
    level = 20 << 12  # 20 reference deviations
    for name, limit, step, events in (("none", 0, 3, inferences), ("limit, up", level, 3, inferences),
                                      ("limit, down", level, -3, inferences), ("limit, up, stuck", level, 3, stuck)):
        summaries = base.ref_mean + noise * std
        summaries[change:, c - 1] += step * std[c - 1]
        summaries = np.clip(np.round(summaries), -32768, 32767).astype(np.int16)
        config = base.replace(score_drift=unreachable, score_warning=unreachable, stuck_variance=0,
                              persist_blocks=np.array([0, 0, 250, 0]), clip_drift_q16=0, quiet_limit=limit)
        events = np.asarray(events, dtype=np.int32)
        twin_rows = run_events(config, events, summaries, probs, pcm)
        compare(CMonitor(config).run_events(events, summaries, probs, pcm), twin_rows, events)
        seen[name] = tuple(int(v) for v in twin_rows[events[:, 0] == EVENT_INFERENCE][-1, columns])
    assert seen["none"][0] == 0 and seen["limit, down"][0] == 0 and seen["limit, up, stuck"][0] == 0
    alarm_time, change_time, alarms = seen["limit, up"]
    # 2.5 deviations a step past the allowance: about 8 inferences, dated near the change
    assert change < alarm_time < change + 30 and change - 10 <= change_time <= change + 2
    assert alarms & cfgmod.ALARM_DATA_DRIFT


@pytest.mark.parametrize("stuck_variance", [0, 4])
def test_stuck_is_judged_on_the_exact_variance_in_c_as_in_the_twin(stuck_variance):
    """A working microphone in a quiet room moves by a level or so: its floored variance is
    0, its exact one is not, so it is silent, not stuck; a constant block (a dead or stuck
    microphone) is stuck. Above 0, a block whose exact variance equals the level is stuck and
    one whose variance floors to it is not."""
    from tinydrift.monitor.twin import EVENT_SENSOR

    blocks = {"constant": np.full(320, 17), "one sample off": np.r_[np.full(319, 17), 18],
              "alternating 0/1": np.tile([0, 1], 160), "alternating -2/2": np.tile([-2, 2], 160),
              "-2/2 and a 3": np.r_[np.tile([-2, 2], 159), -2, 3]}
    stuck = {0: {"constant"}, 4: {"constant", "one sample off", "alternating 0/1", "alternating -2/2"}}[stuck_variance]
    config = synthetic.random_config(np.random.default_rng(3), 40, 12).replace(
        stuck_variance=stuck_variance, silence_variance=100, dc_level=0, clip_drift_q16=0,
        persist_blocks=np.array([50, 50, 250, 0], np.uint16))
    pcm = np.concatenate(list(blocks.values())).astype(np.int16)
    events = np.array([[EVENT_SENSOR, 320 * k, 320] for k in range(len(blocks))], dtype=np.int32)
    no_inference = np.zeros((0, 40), np.int16), np.zeros((0, 12), np.int8)
    twin_rows = run_events(config, events, *no_inference, pcm)
    compare(CMonitor(config).run_events(events, *no_inference, pcm), twin_rows, events)
    twin = MonitorTwin(config)
    flags = {name: int(twin.sensor_update(block.astype(np.int16)[None])["flags"][0]) for name, block in blocks.items()}
    assert {name for name, f in flags.items() if f & cfgmod.SENSOR_STUCK} == stuck
    assert all(f & cfgmod.SENSOR_SILENCE for name, f in flags.items() if name not in stuck)


@pytest.mark.parametrize("dc_level", [2000, 0])
def test_a_block_held_away_from_zero_is_an_offset_fault_after_the_offset_persistence(dc_level):
    """A quiet working microphone rests at exact zero through its pauses, so a stuck block
    waits the long stuck persistence; one held at a value farther from zero than a silent
    block's spread (value^2 > silence_variance) is all offset, whatever dc_level says, and
    is a fault after the offset persistence. C and twin alike; dc_level 0 turns it off."""
    from tinydrift.monitor.twin import EVENT_SENSOR

    config = synthetic.random_config(np.random.default_rng(4), 40, 12).replace(
        stuck_variance=0, silence_variance=100, dc_level=dc_level, clip_drift_q16=0,
        persist_blocks=np.array([50, 5, 20, 0], np.uint16))
    no_inference = np.zeros((0, 40), np.int16), np.zeros((0, 12), np.int8)
    faults = {}
    for value in (0, 10, -10, 11, -11, 1200, -32768):
        pcm = np.full(320 * 25, value, np.int16)
        events = np.array([[EVENT_SENSOR, 320 * k, 320] for k in range(25)], dtype=np.int32)
        twin_rows = run_events(config, events, *no_inference, pcm)
        compare(CMonitor(config).run_events(events, *no_inference, pcm), twin_rows, events)
        twin = MonitorTwin(config)
        for k in range(25):
            flags = int(twin.sensor_update(pcm[None, :320])["flags"][0])
            if twin.alarms[0] & cfgmod.ALARM_SENSOR_FAULT:
                faults[value] = (k + 1, flags >> cfgmod.SENSOR_FAULT_SHIFT)
                break
    stuck_only = (20, cfgmod.SENSOR_STUCK)
    held = (5, cfgmod.SENSOR_DC_OFFSET) if dc_level else stuck_only
    assert faults == {0: stuck_only, 10: stuck_only, -10: stuck_only, 11: held, -11: held, 1200: held,
                      -32768: held}


@pytest.mark.parametrize("clipping_every, expected", [(10, "DATA_DRIFT"), (400, None), (1, "SENSOR_FAULT")])
def test_light_clipping_is_data_drift_and_hard_clipping_a_sensor_fault(clipping_every, expected):
    """A microphone whose gain clips one block in 10 (a few loud samples each) latches
    DATA_DRIFT once the EWMA of clipping blocks has held its 1 % level for clip_drift_blocks,
    C and twin alike; one block in 400 (about the share of real recordings) never reaches the
    level; every block clipping is the CLIPPING fault, and no DATA_DRIFT after it."""
    alarms = _latched_under_clipping(np.random.default_rng(5), lambda k: k % clipping_every == 0)
    assert alarms == (0 if expected is None else getattr(cfgmod, f"ALARM_{expected}"))


def test_a_burst_of_clipping_that_has_passed_is_no_light_clipping():
    """Every other block clipping for 100 blocks (a shout, a knock), then none: the EWMA of
    clipping blocks stays above its 1 % level for hundreds of blocks after the burst, and
    latched DATA_DRIFT then, on clean audio (trial 21: at 40 s after 4.5 s of clipping).
    Light clipping latches only at a block that clips; the same share kept up latches."""
    rng = np.random.default_rng(6)
    assert _latched_under_clipping(rng, lambda k: 500 <= k < 600 and k % 2 == 0) == 0
    assert _latched_under_clipping(rng, lambda k: k >= 500 and k % 2 == 0) == cfgmod.ALARM_DATA_DRIFT


def _latched_under_clipping(rng: np.random.Generator, clipping) -> int:
    """The alarms latched (C and twin alike) after 40 inferences of 50 noise blocks each, the
    blocks k where clipping(k) holds having 8 of their 320 samples at the rail (2.5 %, a
    clipping block), on a config whose light clipping latches after 100 blocks at 1 %."""
    from tinydrift.monitor.twin import EVENT_INFERENCE, EVENT_SENSOR

    config = synthetic.random_config(rng, 40, 12).replace(
        enabled_scores=0, clip_drift_q16=cfgmod.ONE_Q16 // 100, clip_drift_blocks=100, clip_level=32767,
        clip_rate_q16=cfgmod.ONE_Q16 // 100, persist_blocks=np.array([50, 50, 250, 0], np.uint16),
        stuck_variance=0, silence_variance=0, dc_level=0)
    n_inferences, blocks = 40, 50
    pcm = rng.normal(0, 3000, (n_inferences * blocks, 320)).astype(np.int16)
    pcm[[k for k in range(len(pcm)) if clipping(k)], :8] = 32767
    summaries = np.repeat(config.ref_mean[None], n_inferences, axis=0).astype(np.int16)
    probs = np.full((n_inferences, 12), -128, dtype=np.int8)
    probs[:, 0] = 127
    events = []
    for i in range(n_inferences):
        events += [[EVENT_SENSOR, (i * blocks + k) * 320, 320] for k in range(blocks)] + [[EVENT_INFERENCE, i, 0]]
    events = np.asarray(events, dtype=np.int32)
    twin_rows = run_events(config, events, summaries, probs, pcm.reshape(-1))
    compare(CMonitor(config).run_events(events, summaries, probs, pcm.reshape(-1)), twin_rows, events)
    return int(twin_rows[events[:, 0] == EVENT_INFERENCE][-1][ALARM_COLUMN]) & 0xFF


@pytest.mark.parametrize("class_mix, attribute_moved, names_data_drift",
                         [("latches", 0, False), ("latches", 3, True), ("warns", 0, True), ("off", 0, True)])
def test_confidence_drift_names_data_drift_in_c_as_in_the_twin(class_mix, attribute_moved, names_data_drift):
    """Confidence falls while every input channel moves two reference deviations (the input
    score's own levels out of reach). With LABEL_SHIFT latched (one class predicted
    throughout), the C, like the twin, latches DATA_DRIFT beside CONFIDENCE_DRIFT only on the
    moved channels' evidence (attribute_moved 3; with 0, not at all); with the class mix only
    at its warning level, or its score off, the confidence drop alone names DATA_DRIFT."""
    from tinydrift.monitor.twin import EVENT_INFERENCE

    rng = np.random.default_rng(22)
    base = synthetic.random_config(rng, 40, 12).replace(commission_n=0, whiten_q12=None, mean_shift=2,
                                                                   loudness_limit=0, quiet_limit=0)
    std = (1 << 28) / base.inv_std_q28.astype(np.float64)
    n, change = 400, 200
    summaries = base.ref_mean + rng.normal(0, 1, (n, 40)) * std
    summaries[change:] += 2 * std
    summaries = np.clip(np.round(summaries), -32768, 32767).astype(np.int16)
    probs = np.full((n, 12), -128, dtype=np.int8)
    probs[:, 0] = np.where(np.arange(n) < change, 127, 0)  # confidence from 1 to about 1/2
    unreachable = np.full(cfgmod.SCORE_COUNT, cfgmod.CUSUM_MAX)
    conf, label = cfgmod.SCORE_CONF, cfgmod.SCORE_LABEL
    score = np.arange(cfgmod.SCORE_COUNT)
    config = base.replace(
        enabled_scores=(1 << cfgmod.SCORE_MEAN) | (1 << conf) | (int(class_mix != "off") << label),
        score_warning=np.where(score == label, 1, unreachable),  # the class mix warns once it leaves zero
        score_drift=np.where(score == conf, 8 * 4096,
                             np.where((score == label) & (class_mix == "latches"), 1, cfgmod.CUSUM_MAX)),
        score_offset=np.where(score == conf, 255, np.where(score == label, 0, base.score_offset)),
        score_gain_q16=np.where(score == conf, -(1 << 28) // 64, np.where(score == label, 1 << 16, base.score_gain_q16)),
        score_k=np.where(score == conf, 1024, np.where(score == label, 0, base.score_k)),
        score_limit=np.zeros(cfgmod.SCORE_COUNT, np.int64), moved_mean_level=2048, attribute_moved=attribute_moved)
    events = np.stack([np.full(n, EVENT_INFERENCE), np.arange(n), np.zeros(n)], axis=1).astype(np.int32)
    twin_rows = run_events(config, events, summaries, probs, np.zeros(1, np.int16))
    compare(CMonitor(config).run_events(events, summaries, probs, np.zeros(1, np.int16)), twin_rows, events)
    alarms = int(twin_rows[-1, INFERENCE_FIELDS.index("alarms")]) & cfgmod.ALARM_TYPES_MASK
    assert alarms & cfgmod.ALARM_CONFIDENCE_DRIFT
    assert bool(alarms & cfgmod.ALARM_LABEL_SHIFT) == (class_mix == "latches")
    assert bool(alarms & cfgmod.ALARM_DATA_DRIFT) == names_data_drift
