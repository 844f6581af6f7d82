"""Simulated fleets on real model outputs (the drift bench's pools of espeak-ng clips through
the int8 model): each device's frames are those the firmware app sends, its never-drifting
devices stay about as quiet as the monitor was calibrated for, its drifting ones alarm.

The pools are built once into build/bench/drift/pools (about 50 s from cold on 2 cores,
shared with `tinydrift bench drift`), then load in a fraction of a second.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

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


def fleet_of(devices: int, scenarios=SCENARIOS, **options):
    settings = FleetSettings(devices=devices, scenarios=scenarios, quiet_pool="deployment", **options)
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
    # the state size HELLO gives is the M4's td_monitor_state_size() as `bench device` measured it
    on_device = json.loads((REPO_ROOT / "docs" / "figures" / "bench_device.json").read_text())["monitor_state_bytes"]
    assert (h.model_hash, h.n_classes, h.n_channels, h.n_scores, h.state_bytes) == \
        (fleet.model_hash, 12, 42, 5, on_device)
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


# ---------------------------------------------------------------------------- the whole path

@pytest.mark.slow  # 17-20 s; test_fleet_path takes devices through the same path in the default tier
def test_simulated_fleet_through_gateway_broker_and_two_collectors_into_postgresql(fleet_services, fleet_dsn,
                                                                                  tmp_path):
    """50 devices, 40 inferences a second each for 12 s, every INFERENCE and a HEARTBEAT
    every 40: every frame stored once, byte for byte what the devices made, and the
    drifting devices' alarms in the database."""
    psycopg = pytest.importorskip("psycopg")
    from tinydrift.fleet.services import TinydriftProcess, collector_process
    from tinydrift.link.protocol import parse_packet

    broker, _ = fleet_services
    fleet_name = "simulated-path"
    collectors = [collector_process(broker.url, fleet_dsn, fleet_name, name, tmp_path).start() for name in ("c1", "c2")]
    deadline = time.monotonic() + 30
    while not all("subscribed to $share/" in c.text() for c in collectors):
        assert time.monotonic() < deadline, "\n".join(c.text()[-1000:] for c in collectors)
        time.sleep(0.05)
    options = dict(rate=40, duration=12, drift_share=0.2, onset_within=20, per_inference=True,
                   heartbeat_interval=40, seed=5)
    summary_file = tmp_path / "summary.json"
    args = ["fleet", "simulate", "--broker", broker.url, "--fleet", fleet_name, "--devices", "50", "--rate", "40",
            "--duration", "12", "--drift-share", "0.2", "--drift-within", "20", "--per-inference",
            "--heartbeat-every", "40", "--seed", "5", "--quiet-pool", "deployment", "--summary", str(summary_file),
            "--outbox", str(tmp_path / "outbox.sqlite"), "--progress-interval", "1"]
    for name in SCENARIOS[::2]:  # gain and a dead microphone
        args += ["--scenario", name]
    simulate = TinydriftProcess(args, tmp_path / "simulate.log").start()
    assert simulate.process.wait(90) == 0, simulate.text()[-3000:]
    summary = json.loads(summary_file.read_text())
    total = summary["frames"]
    assert summary["inferences"] == 480 and summary["left_in_outbox"] == 0 and summary["acknowledged"] == total
    assert summary["by_type"] == {"HELLO": 50, "INFERENCE": 50 * 480, "HEARTBEAT": 50 * 12}

    deadline = time.monotonic() + 30
    with psycopg.connect(fleet_dsn, autocommit=True) as conn:
        while conn.execute("SELECT count(*) FROM frames").fetchone()[0] < total and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(0.3)  # a copy arriving late would show now
        rows = conn.execute("SELECT device_id, boot_count, seq, raw FROM frames ORDER BY device_id, seq").fetchall()
        latest = dict(conn.execute("SELECT DISTINCT ON (device_id) device_id, alarm_bits FROM frames "
                                   "WHERE type IN (2, 7) ORDER BY device_id, seq DESC").fetchall())
    assert len(rows) == len({(d, b, s) for d, b, s, _ in rows}) == total  # 0 lost, 0 duplicated
    assert all(c.stop() == 0 for c in collectors)

    # The same fleet made again here: the database holds exactly its frames, byte for byte.
    fleet = fleet_of(50, scenarios=SCENARIOS[::2], **options)
    made = fleet.boot()
    for _ in range(480):
        for d, frames in enumerate(fleet.step()):
            made[d] += frames
    plan = fleet.plan
    want = sorted((plan.device_ids[d], plan.boot_counts[d], f.seq, P.encode_packet(f))
                  for d in range(fleet.n) for f in made[d])
    assert [(d, b, s, bytes(r)) for d, b, s, r in rows] == want
    assert isinstance(parse_packet(bytes(rows[0][3])), P.Hello)

    # Each device's last word in the store is its monitor's: the drifting ones alarmed with their type.
    for entry in summary["per_device"]:
        word = latest[entry["device_id"]] & 0x1F
        assert word == (fleet.latched()[entry["device_id"] - 1])
        if entry["scenario"] is not None:
            assert word & EXPECTED[entry["scenario"]], entry
    assert sum(v["alarmed"] for v in summary["drifting"].values()) == 10


def test_simulated_hello_names_the_firmware_apps_version():
    import re

    from tinydrift import firmware
    from tinydrift.fleet.simulate import FW_VERSION

    header = (firmware.stage_dir("app") / "td_app.h").read_text()
    defined = tuple(int(re.search(rf"#define TD_APP_FW_{part} (\d+)u", header).group(1))
                    for part in ("MAJOR", "MINOR", "PATCH"))
    assert FW_VERSION == defined


def test_simulate_against_a_broker_never_reached_exits_1_and_keeps_the_frames(tmp_path):
    """Once it exited 0 having sent nothing (the frames were kept all the same)."""
    import socket

    from click.testing import CliRunner

    from tinydrift.cli.main import main

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    outbox = tmp_path / "outbox.sqlite"
    result = CliRunner().invoke(main, ["fleet", "simulate", "--devices", "2", "--broker", f"mqtt://127.0.0.1:{port}",
                                       "--duration", "2", "--model-dir", str(REPO_ROOT / "models" / "kws"),
                                       "--quiet-pool", "deployment", "--outbox", str(outbox)])
    assert result.exit_code == 1, result.output
    assert result.output.strip().splitlines()[-1] == (
        f"error: the broker at mqtt://127.0.0.1:{port} took none of the 2 frames (is it running, and the URL right?); "
        f"they wait in {outbox}")
    import sqlite3

    assert sqlite3.connect(outbox).execute("SELECT COUNT(*) FROM outbox").fetchone()[0] == 2


def test_simulate_with_no_collector_on_its_fleet_says_so_not_that_the_broker_is_unreachable(tmp_path, monkeypatch):
    """The broker answered every frame "no matching subscribers", and the last line still
    asked whether it was running and its URL right."""
    import functools
    import shutil

    from click.testing import CliRunner

    from tinydrift.cli.main import main
    from tinydrift.fleet import simulate
    from tinydrift.fleet.services import Broker

    if shutil.which("mosquitto") is None and not Path("/usr/sbin/mosquitto").exists():
        pytest.skip("mosquitto is not installed (scripts/setup.sh)")
    monkeypatch.setattr(simulate, "run_simulation", functools.partial(simulate.run_simulation, drain_timeout=2.0))
    broker = Broker.create()
    broker.start()
    try:
        outbox = tmp_path / "outbox.sqlite"
        result = CliRunner().invoke(main, ["fleet", "simulate", "--devices", "2", "--broker", broker.url, "--duration",
                                           "1", "--fleet", "lab", "--model-dir", str(REPO_ROOT / "models" / "kws"),
                                           "--quiet-pool", "deployment", "--outbox", str(outbox)])
    finally:
        broker.remove()
    assert result.exit_code == 1, result.output
    assert result.output.strip().splitlines()[-1] == (
        f"error: no collector subscribes to fleet 'lab' at {broker.url}, so none of the 2 frames was delivered; they "
        f"wait in {outbox}: start `tinydrift collect --broker {broker.url} --db URL --fleet lab` first")


def test_simulate_refuses_a_camera_model_in_one_line(tmp_path):
    from click.testing import CliRunner

    from tinydrift.cli.main import main

    plant = REPO_ROOT / "models" / "plant"
    result = CliRunner().invoke(main, ["fleet", "simulate", "--devices", "2", "--broker", "mqtt://127.0.0.1:1",
                                       "--duration", "1", "--model-dir", str(plant)])
    assert result.exit_code == 1 and result.output.strip() == (
        f"error: {plant} is a camera model; fleet simulate runs keyword models (espeak-ng clips through the front "
        "end): give one, e.g. models/kws"), result.output


def test_simulate_refuses_device_ids_past_the_largest_before_any_work(tmp_path):
    """--first-id 2^64-1 with 3 devices once crashed the simulation thread on the second id
    and still exited 0; the range is checked up front."""
    from click.testing import CliRunner

    from tinydrift.cli.main import main

    result = CliRunner().invoke(main, ["fleet", "simulate", "--devices", "3", "--first-id", str(2**64 - 1),
                                       "--broker", "mqtt://127.0.0.1:1", "--duration", "1",
                                       "--model-dir", str(REPO_ROOT / "models" / "kws"), "--outbox", str(tmp_path / "o.sqlite")])
    assert result.exit_code == 2, result.output
    assert "past the largest id (2^64-1): give at most 18446744073709551613" in result.output
    assert "Traceback" not in result.output and not (tmp_path / "o.sqlite").exists()


def test_simulate_refuses_scenarios_no_device_would_meet():
    from click.testing import CliRunner

    from tinydrift.cli.main import main

    result = CliRunner().invoke(main, ["fleet", "simulate", "--devices", "3", "--drift-share", "0", "--scenario",
                                       "accent", "--broker", "mqtt://127.0.0.1:1", "--model-dir",
                                       str(REPO_ROOT / "models" / "kws")])
    assert result.exit_code == 2 and "--drift-share 0: no device drifts, so no device would meet accent" in result.output
