"""Simulated fleets on real model outputs (the drift bench's pools of espeak-ng clips through
the int8 model): each device's frames are those the firmware app sends, its never-drifting
devices stay about as quiet as the monitor was calibrated for, its drifting ones alarm.

The pools are built once into build/bench/drift/pools (about 50 s from cold on 2 cores,
shared with `tinydrift bench drift`), then load in a fraction of a second.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from tinydrift.app import HeartbeatTwin
from tinydrift.firmware import REPO_ROOT
from tinydrift.link import protocol as P
from tinydrift.monitor.config import ALARM_DATA_DRIFT, ALARM_SENSOR_FAULT, SCORE_COUNT
from tinydrift.monitor.twin import MonitorTwin
from tinydrift.pipeline.fleet_sim import FleetSettings, make_fleet

MODEL = REPO_ROOT / "models" / "kws"
CACHE = REPO_ROOT / "build" / "bench" / "drift" / "pools"
SCENARIOS = ("gain_down_20db", "white_noise_10db", "dead_microphone")  # no accent: it needs its own synthesis
EXPECTED = {"gain_down_20db": ALARM_DATA_DRIFT, "white_noise_10db": ALARM_DATA_DRIFT,
            "dead_microphone": ALARM_SENSOR_FAULT}


def fleet_of(devices: int, **options):
    settings = FleetSettings(devices=devices, scenarios=SCENARIOS, quiet_pool="deployment", **options)
    return make_fleet(MODEL, settings, cache=CACHE, log=lambda m: None)


def alone(fleet, hello: P.Hello, clips: list[tuple[int, int]]) -> list[P.Frame]:
    """One device's frames computed on its own, as the app does for one board: sensor health
    on the clip's blocks, td_monitor_update, the INFERENCE frame from the result, the
    heartbeat twin; seq counted as the device sends."""
    cfg = fleet.config
    twin = MonitorTwin(cfg, 1)
    beats = HeartbeatTwin(cfg.score_drift, fleet.heartbeat_interval)
    frames: list[P.Frame] = [hello]  # checked field by field in the test
    seq = 1
    for step, (pool_index, row) in enumerate(clips, start=1):
        pool = fleet.pools[pool_index]
        sums = pool.sensor[row][None]  # [1, blocks, 3]
        conditions = twin.sensor_conditions(sums[..., 0], sums[..., 1], sums[..., 2], 320)[2]
        twin.sensor_update_blocks(conditions)  # = one td_sensor_update a block (test_monitor_twin)
        r = {k: np.asarray(v)[0] for k, v in twin.update(pool.summaries[row][None], pool.probs[row][None]).items()}
        moved = int(r["moved"][0]) | int(r["moved"][1]) << 32
        scores = tuple(int(v) for v in r["cusum"]) + (0,) * (P.N_SCORES - SCORE_COUNT)
        inference = P.Inference(seq, int(r["t"]), fleet.model_id, int(r["predicted"]), int(r["confidence"]),
                                int(r["alarms"]) & 0xFFFF, int(r["entropy_q16"]), int(r["atc_accuracy_q16"]), moved,
                                int(r["change_time"]), scores, int(r["alarm_time"]))
        frames.append(inference)
        seq += 1
        beat = beats.add(inference)
        if beat is not None:
            beat.seq, beat.uptime_ms = seq, step * 1000
            seq += 1
            frames.append(beat)
    return frames


def test_each_device_sends_what_the_app_twin_computes_for_it_alone():
    fleet = fleet_of(9, drift_share=2 / 3, onset_within=40, heartbeat_interval=25, per_inference=True)
    sent = fleet.boot()
    heard: list[list[tuple[int, int]]] = [[] for _ in range(fleet.n)]
    for _ in range(420):
        for d, frames in enumerate(fleet.step()):
            sent[d] += frames
        for d, (pool_index, row) in enumerate(zip(*fleet.clips)):
            heard[d].append((int(pool_index), int(row)))
    plan = fleet.plan
    kinds = {plan.scenario_of(d) for d in range(fleet.n)}
    assert kinds == {None, *SCENARIOS}
    for d in range(fleet.n):
        want = alone(fleet, sent[d][0], heard[d])
        assert [P.encode_packet(f) for f in sent[d]] == [P.encode_packet(f) for f in want], f"device {d}"
    beats = [f for frames in sent for f in frames if isinstance(f, P.Heartbeat)]
    assert len(beats) == fleet.n * (420 // 25) and any(b.alarm_bits & 0x1F for b in beats)  # alarms compared too
    h = sent[0][0]
    assert (h.model_hash, h.n_classes, h.n_channels, h.n_scores, h.state_bytes) == \
        (fleet.model_hash, 12, 40, 5, 932)  # 932 B: td_monitor_state_size() on the M4 (bench device)
    assert h.drift_thresholds[:5] == tuple(int(v) for v in fleet.config.score_drift)
    assert len({(f.device_id, f.boot_count) for f, *_ in sent}) == fleet.n
    # every drifting device switched to its scenario's clips at its onset, and only then
    for d in range(fleet.n):
        switched = [t for t, (pool_index, _) in enumerate(heard[d], start=1) if pool_index]
        assert switched == ([] if plan.onset[d] == 0 else list(range(plan.onset[d], 421)))


def test_quiet_devices_stay_quiet_and_drifting_ones_alarm_with_their_type():
    inferences = 1500
    fleet = fleet_of(200, drift_share=0.2, onset_within=400, seed=3)
    fleet.boot()
    for _ in range(inferences):
        fleet.advance()
    plan, latched, at = fleet.plan, fleet.latched(), fleet.alarm_index()
    quiet = ~plan.drifting
    # Quiet devices watch inferences 301-1,500 after commissioning: at the calibrated ARL0,
    # mean alarms = devices x 1,200 / ARL0 (2.1 here); more than 10 would be a 1-in-10^5 tail.
    arl0 = fleet.config.metadata["calibration"]["target_arl0"]
    expected = quiet.sum() * (inferences - fleet.config.commission_n) / arl0
    false_alarms = int((latched[quiet] != 0).sum())
    assert false_alarms <= max(10, math.ceil(5 * expected)), (false_alarms, expected)
    for k, name in enumerate(plan.scenarios):
        devices = np.flatnonzero(plan.scenario == k)
        assert len(devices) >= 13
        assert np.all(latched[devices] & EXPECTED[name]), (name, latched[devices])
        delays = at[devices] - plan.onset[devices]
        assert np.all((delays >= 0) & (delays <= 700)), (name, delays)
