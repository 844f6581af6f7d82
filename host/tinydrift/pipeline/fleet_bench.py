"""`tinydrift bench fleet`: simulated devices (`tinydrift fleet simulate`, the gateway's
outbox and publisher) through a private mosquitto and two `tinydrift collect` into a private
PostgreSQL, each its own process, as a fleet runs them. Figures, counted in the database
against what the devices sent:

- steady: frames lost and duplicated, end-to-end latency (from the frame entering the
  gateway's outbox, its received_at, to the collector's insert, stored_at), frames/s
  sustained, CPU seconds of the gateway and the collectors per 1,000 devices per minute;
- faults: the same run with the broker restarted and a collector killed mid-run: lost and
  duplicated (0 and 0 is the promise), latency across the outage;
- heartbeats: MQTT payload bytes per device and hour with every INFERENCE frame against
  heartbeats only, from what was stored.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

from tinydrift.atomic import write_text
from tinydrift.errors import TinydriftError
from tinydrift.fleet import envelope as E
from tinydrift.fleet.services import TinydriftProcess, collector_process, private_services
from tinydrift.link import protocol as P
from tinydrift.pipeline.fleet_sim import DEFAULT_CACHE, DEFAULT_SCENARIOS, fleet_pools

STORE_STALL_S = 60.0  # after the devices stop: the store may take its time, but not stand still this long
OUTAGE_S = 3.0  # how long the broker stays down, and the killed collector away


@dataclass(frozen=True)
class FleetBenchSettings:
    quick: bool = True
    devices: int = 1000
    rate: float = 1.0  # inferences (INFERENCE frames) a second on each device
    seconds: float = 45.0  # each of the steady and the fault run
    heartbeat_every: int = 100
    heartbeat_rate: float = 10.0  # the heartbeat-only run: inferences a second, so heartbeats come in seconds
    heartbeat_seconds: float = 20.0
    collectors: int = 2
    seed: int = 0

    @staticmethod
    def make(quick: bool) -> "FleetBenchSettings":
        return FleetBenchSettings() if quick else FleetBenchSettings(quick=False, seconds=600.0, heartbeat_seconds=60.0)


def run_fleet_bench(model_dir: Path, settings: FleetBenchSettings, out_dir: Path, *, cache: Path = DEFAULT_CACHE,
                    log: Callable[[str], None] = print) -> dict:
    started = time.monotonic()
    fleet_pools(model_dir, DEFAULT_SCENARIOS, "control", cache, log)  # built once here, not in the timed runs
    logs = Path(out_dir) / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    result = {"settings": asdict(settings), "date": dt.date.today().isoformat(), "cpus": os.cpu_count()}
    with private_services() as (broker, database):
        log(f"broker {broker.url}, database on port {database.port}")
        result["steady"] = _run(broker, database, "steady", settings, model_dir, logs, log, per_inference=True,
                                rate=settings.rate, seconds=settings.seconds)
        result["faults"] = _run(broker, database, "faults", settings, model_dir, logs, log, per_inference=True,
                                rate=settings.rate, seconds=settings.seconds, faults=True)
        beats = _run(broker, database, "heartbeats", settings, model_dir, logs, log, per_inference=False,
                     rate=settings.heartbeat_rate, seconds=settings.heartbeat_seconds)
    result["heartbeats"] = _heartbeat_figures(result["steady"], beats, settings)
    result["heartbeat_run"] = beats
    result["seconds"] = round(time.monotonic() - started, 1)
    return result


def _run(broker, database, phase: str, settings: FleetBenchSettings, model_dir: Path, logs: Path, log, *,
         per_inference: bool, rate: float, seconds: float, faults: bool = False) -> dict:
    import psycopg

    fleet = f"bench-{phase}-{os.getpid()}"  # fresh: the broker keeps earlier collectors' sessions and shares
    dsn = database.new_database(fleet.replace("-", "_"))
    folder = logs / phase
    folder.mkdir(parents=True, exist_ok=True)
    collectors = [collector_process(broker.url, dsn, fleet, f"{fleet}-c{k + 1}", folder)
                  for k in range(settings.collectors)]
    summary_file = folder / "simulate.json"
    args = ["fleet", "simulate", "--broker", broker.url, "--fleet", fleet, "--devices", str(settings.devices),
            "--rate", f"{rate:g}", "--duration", f"{seconds:g}", "--heartbeat-every", str(settings.heartbeat_every),
            "--model-dir", str(model_dir), "--seed", str(settings.seed), "--summary", str(summary_file),
            "--outbox", str(folder / "outbox.sqlite"), "--progress-interval", "5"]
    simulate = TinydriftProcess(args + (["--per-inference"] if per_inference else []), folder / "simulate.log")
    events = []
    try:
        for c in collectors:
            c.start()
        _wait(lambda: all("subscribed to $share/" in c.text() for c in collectors), 30,
              lambda: "collectors did not subscribe: " + " | ".join(c.text()[-500:] for c in collectors))
        log(f"{phase}: {settings.devices} devices x {rate:g} inferences/s for {seconds:g} s"
            + (" (every INFERENCE frame)" if per_inference else f" (a heartbeat every {settings.heartbeat_every})")
            + (": the broker restarted and a collector killed mid-run" if faults else ""))
        collector_cpu_before = [c.cpu_seconds() for c in collectors]  # their start-up is not the fleet's load
        simulate.start()
        began = time.monotonic()
        if faults:
            _sleep_until(began + seconds / 3, simulate)
            broker.stop()  # SIGTERM: mosquitto saves its sessions and queues, as on a restart
            events.append(f"broker stopped at {time.monotonic() - began:.1f} s")
            time.sleep(OUTAGE_S)
            broker.start()
            events.append(f"broker back at {time.monotonic() - began:.1f} s")
            _sleep_until(began + 2 * seconds / 3, simulate)
            collectors[-1].kill()  # SIGKILL mid-batch: what it had not committed comes back to it
            events.append(f"collector {collectors[-1].args[-1]} killed at {time.monotonic() - began:.1f} s")
            time.sleep(OUTAGE_S)
            collectors[-1].start()
            events.append(f"collector back at {time.monotonic() - began:.1f} s")
            log(f"{phase}: " + "; ".join(events))
        while simulate.process.poll() is None:
            simulate.cpu_seconds()  # keep its CPU figure fresh until it exits
            time.sleep(0.5)
        if simulate.process.returncode != 0 or not summary_file.exists():
            raise TinydriftError(f"fleet simulate failed ({phase}, exit {simulate.process.returncode}): "
                                 f"{simulate.text()[-800:]}")
        sent = json.loads(summary_file.read_text())
        with psycopg.connect(dsn, autocommit=True) as conn:
            count = lambda: conn.execute("SELECT count(*) FROM frames").fetchone()[0]  # noqa: E731
            drained_s = _drain(count, sent["frames"], STORE_STALL_S)
            time.sleep(1.0)  # a copy arriving late would show now
            figures = _store_figures(conn, sent)
        collector_cpu = [round(c.cpu_seconds() - before, 2) for c, before in zip(collectors, collector_cpu_before)]
    finally:
        simulate.stop()
        for c in collectors:
            c.stop()
    minutes_k = settings.devices / 1000 * seconds / 60
    gateway_cpu = sent["process_cpu_s"] - sent["startup_cpu_s"] - sent["simulate_cpu_s"]
    figures.update({
        "devices": settings.devices, "rate": rate, "seconds": seconds, "per_inference": per_inference,
        "inferences": sent["inferences"], "sent": sent["frames"], "sent_by_type": sent["by_type"],
        "payload_bytes": sent["payload_bytes"], "wire_bytes": sent["wire_bytes"],
        "cpu_s": {"simulate_process": sent["process_cpu_s"], "simulate_startup": sent["startup_cpu_s"],
                  "simulation": sent["simulate_cpu_s"],
                  "gateway": round(gateway_cpu, 2), "collectors": collector_cpu},
        "cpu_s_per_1000_devices_minute": {"gateway": round(gateway_cpu / minutes_k, 3),
                                          "collectors": round(sum(collector_cpu) / minutes_k, 3),
                                          "simulation": round(sent["simulate_cpu_s"] / minutes_k, 3)},
        "behind_s": sent["behind_s"], "events": events, "drain_s": round(drained_s, 1),
    })
    log(f"{phase}: sent {sent['frames']}, stored {figures['distinct']} (lost {figures['lost']}, duplicated "
        f"{figures['duplicated']}), latency p50 {figures['latency_ms']['p50']:.0f} ms, p99 "
        f"{figures['latency_ms']['p99']:.0f} ms, {figures['frames_per_s']:.0f} frames/s, the last stored "
        f"{figures['drain_s']:.1f} s after the devices stopped")
    return figures


def _store_figures(conn, sent: dict) -> dict:
    """Lost and duplicated frames against what each device sent, latency, throughput."""
    rows, distinct = conn.execute("SELECT count(*), count(DISTINCT (device_id, boot_count, seq)) FROM frames").fetchone()
    per_device = {d: (n, top) for d, n, top in conn.execute(
        "SELECT device_id, count(DISTINCT seq), max(seq) FROM frames GROUP BY device_id")}
    # a device's frames are its seqs 0 .. sent-1: anything short of that is lost
    lost = sum(max(0, e["frames"] - per_device.get(e["device_id"], (0, -1))[0]) for e in sent["per_device"])
    beyond = sum(1 for e in sent["per_device"] if per_device.get(e["device_id"], (0, -1))[1] >= e["frames"])
    p50, p99, worst, first, last = conn.execute(
        "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY lag), percentile_cont(0.99) WITHIN GROUP (ORDER BY lag), "
        "max(lag), min(received_at), max(stored_at) FROM (SELECT received_at, stored_at, "
        "extract(epoch FROM stored_at - received_at) * 1000 AS lag FROM frames) AS f").fetchone()
    span = (last - first).total_seconds()
    by_type = {t: float(b) for t, b in conn.execute("SELECT type, avg(octet_length(raw)) FROM frames GROUP BY type")}
    return {"stored_rows": rows, "distinct": distinct, "lost": lost, "duplicated": rows - distinct,
            "unexpected": beyond,
            "latency_ms": {"p50": round(float(p50), 1), "p99": round(float(p99), 1), "max": round(float(worst), 1)},
            "frames_per_s": round(distinct / span, 1) if span > 0 else None, "packet_bytes_by_type": by_type}


def _heartbeat_figures(steady: dict, beats: dict, settings: FleetBenchSettings) -> dict:
    """MQTT payload bytes per device and hour at `rate` inferences a second: every INFERENCE
    frame and the device's default heartbeat every `heartbeat_every` inferences, against the
    heartbeats alone; from the frames' sizes as stored (packet + envelope), HELLO left out
    (once a boot)."""
    inference = steady["packet_bytes_by_type"][int(P.FrameType.INFERENCE)] + E.HEAD_BYTES
    heartbeat = beats["packet_bytes_by_type"][int(P.FrameType.HEARTBEAT)] + E.HEAD_BYTES
    inferences = 3600 * settings.rate
    heartbeats = inferences / settings.heartbeat_every
    every = inferences * inference + heartbeats * heartbeat
    only = heartbeats * heartbeat
    return {"heartbeat_every": settings.heartbeat_every, "inferences_per_s": settings.rate,
            "payload_bytes": {"INFERENCE": inference, "HEARTBEAT": heartbeat},
            "bytes_per_device_hour": {"per_inference": round(every), "heartbeat_only": round(only)},
            "ratio": round(every / only, 1)}


def _wait(ready: Callable[[], bool], timeout: float, why: Callable[[], str]) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        if time.monotonic() > deadline:
            raise TinydriftError(why())
        time.sleep(0.1)


def _drain(count: Callable[[], int], target: int, stall_s: float) -> float:
    """Waits until `count()` reaches `target` and returns the seconds it took. A slow store
    (collectors behind a loaded machine) is waited for as long as it makes progress; one
    that stores nothing for `stall_s` is an error naming how far it got."""
    started = time.monotonic()
    last, last_change = count(), started
    while last < target:
        time.sleep(0.5)
        now, stored = time.monotonic(), count()
        if stored > last:
            last, last_change = stored, now
        elif now - last_change > stall_s:
            raise TinydriftError(f"{stored} of {target} frames stored; none more in the last {stall_s:g} s "
                                 f"({now - started:.0f} s after the devices stopped)")
    return time.monotonic() - started


def _sleep_until(when: float, simulate: TinydriftProcess) -> None:
    while time.monotonic() < when and simulate.process.poll() is None:
        simulate.cpu_seconds()
        time.sleep(0.2)


def markdown(result: dict) -> str:
    s = result["settings"]
    lines = [f"# Fleet benchmark ({'quick' if s['quick'] else 'full'}), {result['date']}, {result['cpus']} CPUs", "",
             f"{s['devices']:,} simulated devices (`tinydrift fleet simulate`, one process: the devices and the "
             f"gateway's outbox and publisher) -> mosquitto -> {s['collectors']} `tinydrift collect` -> PostgreSQL, "
             "each its own process. Latency: from the frame entering the outbox to its row's insert.", "",
             "| run | devices x rate x s | frames sent | lost | duplicated | latency p50 / p99 / max | frames/s "
             "| CPU s per 1,000 devices per minute: gateway / collectors | all stored, s after the devices stopped |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name in ("steady", "faults", "heartbeat_run"):
        r = result[name]
        lines.append(f"| {name} | {r['devices']:,} x {r['rate']:g}/s x {r['seconds']:g} | {r['sent']:,} | {r['lost']} "
                     f"| {r['duplicated']} | {r['latency_ms']['p50']:,.0f} / {r['latency_ms']['p99']:,.0f} / "
                     f"{r['latency_ms']['max']:,.0f} ms | {r['frames_per_s']:,.0f} "
                     f"| {r['cpu_s_per_1000_devices_minute']['gateway']:.2f} / "
                     f"{r['cpu_s_per_1000_devices_minute']['collectors']:.2f} | {r['drain_s']:g} |")
    if result["faults"]["events"]:
        lines += ["", "Faults: " + "; ".join(result["faults"]["events"]) + "."]
    h = result["heartbeats"]
    lines += ["", f"MQTT payload bytes per device and hour at {h['inferences_per_s']:g} inference/s: every INFERENCE "
                  f"frame ({h['payload_bytes']['INFERENCE']:g} B each) and a heartbeat every {h['heartbeat_every']} "
                  f"inferences {h['bytes_per_device_hour']['per_inference']:,}; the heartbeats alone "
                  f"({h['payload_bytes']['HEARTBEAT']:g} B each) {h['bytes_per_device_hour']['heartbeat_only']:,} "
                  f"({h['ratio']:g} times less).",
              "", f"Took {result['seconds']:.0f} s."]
    return "\n".join(lines) + "\n"


def write_outputs(result: dict, out_dir: Path) -> list[Path]:
    paths = [Path(out_dir) / "fleet_bench.json", Path(out_dir) / "fleet_bench.md"]
    write_text(paths[0], json.dumps(result, indent=1, sort_keys=True) + "\n")
    write_text(paths[1], markdown(result))
    return paths
