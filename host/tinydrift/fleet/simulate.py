"""Simulated devices: the frames a board sends, made on the host.

`SimulatedFleet` runs many devices at once on real per-clip model outputs (pools of the
drift bench: summaries and int8 outputs of espeak-ng clips, drifted or not): one MonitorTwin
advances every device, bit-exact with the firmware's monitor, and each device's
HeartbeatTwin makes its heartbeats, so its frames are those the device would send.
`SimulatedDevices` paces them in real time into the gateway's outbox (a source of
gateway.forward), where serial ports' frames enter.

`SimulatedDevice` is a single board with made-up quiet values, for the transport's tests:
A device boots with a HELLO naming it (device id, boot count, model hash), then sends one
INFERENCE frame per inference with the values a quiet device sends (protocol's
typical_inference) and, every `heartbeat_interval` inferences, the HEARTBEAT that the app's
twin (HeartbeatTwin) computes from them: what a real board would send after those frames.
"""

from __future__ import annotations

import random
import resource
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Protocol

import numpy as np

from tinydrift.app import SENSOR_BLOCK, Expected, HeartbeatTwin
from tinydrift.errors import TinydriftError
from tinydrift.fleet import envelope as E
from tinydrift.fleet import mqtt
from tinydrift.fleet.gateway import Feed, GatewayStats, GatewaySummary, forward
from tinydrift.fleet.outbox import Outbox
from tinydrift.link import protocol as P
from tinydrift.logbook.store import StoreFull
from tinydrift.monitor.config import ALARM_TYPES_MASK, SCORE_COUNT, Z_FRAC_BITS, MonitorConfig, alarm_names
from tinydrift.monitor.streams import bootstrap_indices
from tinydrift.monitor.twin import MonitorTwin

SCORE_FRAC_BITS = 12
N_SCORES_IN_USE = 5
WARNING = (8 << SCORE_FRAC_BITS,) * N_SCORES_IN_USE + (0,) * (P.N_SCORES - N_SCORES_IN_USE)
DRIFT = (16 << SCORE_FRAC_BITS,) * N_SCORES_IN_USE + (0,) * (P.N_SCORES - N_SCORES_IN_USE)
FW_VERSION = (0, 1, 0)  # the firmware app's TD_APP_FW_MAJOR, _MINOR, _PATCH (td_app.h)


@dataclass
class SimulatedDevice:
    device_id: int
    boot_count: int = 1
    model_hash: bytes = bytes(range(32))
    heartbeat_interval: int = 10
    heartbeat_only: bool = False
    seed: int = 0
    seq: int = 0
    inferences: int = 0
    _rng: random.Random = field(init=False, repr=False)
    _twin: HeartbeatTwin = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)
        self._twin = HeartbeatTwin(DRIFT, self.heartbeat_interval)

    def _next_seq(self) -> int:
        seq, self.seq = self.seq, (self.seq + 1) & 0xFFFFFFFF
        return seq

    def boot(self) -> list[P.Frame]:
        """Power on (again): seq and the monitor start over, and the HELLO says who it is."""
        self.seq, self.inferences = 0, 0
        self._twin.reset()
        return [P.Hello(self._next_seq(), self.model_hash, 0, 1, 0, 412, 12, 40, SCORE_FRAC_BITS,
                        N_SCORES_IN_USE, WARNING, DRIFT, self.device_id, self.boot_count)]

    def infer(self) -> list[P.Frame]:
        """The frames one inference makes the device send."""
        self.inferences += 1
        frame = P.typical_inference(0, self.inferences, self.model_hash[:P.MODEL_ID_BYTES], self._rng)
        out: list[P.Frame] = []
        if not self.heartbeat_only:
            frame.seq = self._next_seq()
            out.append(frame)
        beat = self._twin.add(frame)
        if beat is not None:
            beat.seq, beat.uptime_ms = self._next_seq(), self.inferences * 1000
            out.append(beat)
        return out

    def run(self, inferences: int) -> list[P.Frame]:
        """A boot and `inferences` inferences."""
        frames = self.boot()
        for _ in range(inferences):
            frames += self.infer()
        return frames


# ---------------------------------------------------------------------------- a whole fleet

class SamplePool(Protocol):
    """Inferences as a device sees them, one row per clip (pipeline.drift_pools.Pool)."""

    name: str
    summaries: np.ndarray  # int16 [N, n_summary]: the monitor's input summary
    probs: np.ndarray  # int8 [N, n_classes]: the model's output
    groups: np.ndarray  # speaker of each clip
    sensor: np.ndarray  # int64 [N, blocks, 3]: per 320-sample block, sum, sum of squares, clipped


@dataclass(frozen=True)
class FleetPlan:
    """Who the devices are and what happens to each: most never drift; a drifting one
    hears scenario `scenario[d]` from inference `onset[d]` on."""

    device_ids: tuple[int, ...]
    boot_counts: tuple[int, ...]
    scenarios: tuple[str, ...]  # the scenario names, in the order `scenario` indexes them
    scenario: np.ndarray  # int [D]: index into scenarios, -1: never drifts
    onset: np.ndarray  # int [D]: the first inference index of the drifted clips, 0: never

    @property
    def drifting(self) -> np.ndarray:
        return self.scenario >= 0

    def scenario_of(self, d: int) -> str | None:
        return self.scenarios[self.scenario[d]] if self.scenario[d] >= 0 else None


def plan_fleet(n_devices: int, scenarios: list[str], drift_share: float, onset_range: tuple[int, int], *,
               first_id: int = 1, seed: int = 0) -> FleetPlan:
    """round(drift_share x n_devices) devices, picked at random, each get one of `scenarios`
    (in turn, so each scenario has its share) at an inference index drawn uniformly from
    `onset_range`; each device its own boot count (1-40)."""
    rng = np.random.default_rng([seed, 0xF1EE7])
    n_drifting = int(round(drift_share * n_devices)) if scenarios else 0
    scenario = np.full(n_devices, -1, dtype=np.int64)
    chosen = rng.permutation(n_devices)[:n_drifting]
    scenario[chosen] = np.arange(n_drifting) % max(1, len(scenarios))
    low, high = onset_range
    onset = np.where(scenario >= 0, rng.integers(low, high + 1, n_devices), 0)
    boots = rng.integers(1, 41, n_devices)
    return FleetPlan(tuple(range(first_id, first_id + n_devices)), tuple(int(b) for b in boots), tuple(scenarios),
                     scenario, onset)


class SimulatedFleet:
    """Every device of a plan, each running the firmware app on its own stream of real
    per-clip model outputs: one MonitorTwin advances all of them by one inference per
    `step()` (sensor health on the clip's blocks, then td_monitor_update, as td_app does),
    and each device's HeartbeatTwin makes its heartbeats. The frames are those the devices
    send: HELLO at boot, then per inference its INFERENCE (unless heartbeat-only) and,
    every `heartbeat_interval` inferences, a HEARTBEAT; each with the device's own seq.

    A device's stream draws whole speakers from its pool, as calibration and the drift
    bench do (`block_length`: at most that many clips of one speaker in a row); a drifting
    device draws from its scenario's pool from its onset on."""

    CHUNK = 256  # stream indices drawn this many inferences ahead

    def __init__(self, config: MonitorConfig, model_hash: bytes, quiet: SamplePool,
                 scenario_pools: dict[str, SamplePool], plan: FleetPlan, *, heartbeat_interval: int = 100,
                 per_inference: bool = True, uptime_ms_per_inference: float = 1000.0, state_bytes: int = 0,
                 block_length: int | None = None, seed: int = 0) -> None:
        missing = [name for name in plan.scenarios if name not in scenario_pools]
        if missing:
            raise ValueError(f"no pool for scenario(s) {', '.join(missing)}")
        if heartbeat_interval == 0 and not per_inference:
            raise ValueError("heartbeat-only devices with no heartbeats would send nothing")
        self.config, self.plan = config, plan
        self.model_hash, self.model_id = bytes(model_hash), bytes(model_hash[:P.MODEL_ID_BYTES])
        self.per_inference, self.heartbeat_interval = per_inference, heartbeat_interval
        self.uptime_ms_per_inference, self.state_bytes = uptime_ms_per_inference, state_bytes
        self.block_length = block_length
        self.n = len(plan.device_ids)
        self.twin = MonitorTwin(config, self.n)
        self.pools = [quiet] + [scenario_pools[name] for name in plan.scenarios]
        # each pool's sensor conditions per clip and block, under this config (what td_sensor_update sees)
        self.conditions = [self.twin.sensor_conditions(p.sensor[..., 0], p.sensor[..., 1], p.sensor[..., 2],
                                                       SENSOR_BLOCK)[2] for p in self.pools]
        # devices drawing from each pool: every device from the quiet one, until its onset
        self.members = [np.arange(self.n)] + [np.flatnonzero(plan.scenario == k) for k in range(len(plan.scenarios))]
        self.heartbeats = [HeartbeatTwin(config.score_drift, heartbeat_interval) for _ in range(self.n)]
        self.seq = [0] * self.n
        self.inferences = 0
        self._rng = np.random.default_rng([seed, 0x57E4])
        self._indices: list[np.ndarray] = []

    # -- frames --------------------------------------------------------------------------

    def _next_seq(self, d: int) -> int:
        seq, self.seq[d] = self.seq[d], (self.seq[d] + 1) & 0xFFFFFFFF
        return seq

    def boot(self) -> list[list[P.Frame]]:
        """Every device's HELLO (td_app_send_hello), seq 0."""
        cfg = self.config
        pad = (0,) * (P.N_SCORES - SCORE_COUNT)
        warning = tuple(int(v) for v in cfg.score_warning) + pad
        drift = tuple(int(v) for v in cfg.score_drift) + pad
        return [[P.Hello(self._next_seq(d), self.model_hash, FW_VERSION[0], FW_VERSION[1], FW_VERSION[2],
                         self.state_bytes, cfg.n_classes, cfg.n_summary, Z_FRAC_BITS, SCORE_COUNT, warning, drift,
                         self.plan.device_ids[d], self.plan.boot_counts[d])]
                for d in range(self.n)]

    def step(self) -> list[list[P.Frame]]:
        """One inference on every device; each device's frames, in the order it sends them."""
        inferences = self.advance()
        out: list[list[P.Frame]] = []
        for d in range(self.n):
            frame = inferences.inference_frame(d, self.model_id)
            frames = []
            if self.per_inference:
                frame.seq = self._next_seq(d)
                frames.append(frame)
            beat = self.heartbeats[d].add(frame)
            if beat is not None:
                beat.seq = self._next_seq(d)
                beat.uptime_ms = int(self.inferences * self.uptime_ms_per_inference) & 0xFFFFFFFF
                frames.append(beat)
            out.append(frames)
        return out

    # -- the monitor -------------------------------------------------------------------

    def advance(self) -> Expected:
        """One inference on every device: what each device's INFERENCE frame reports."""
        self.inferences += 1
        t = self.inferences
        k = (t - 1) % self.CHUNK
        if k == 0:
            self._indices = [self._draw(pool, len(members)) for pool, members in zip(self.pools, self.members)]
        rows = self._indices[0][:, k].copy()
        summaries = self.pools[0].summaries[rows]
        probs = self.pools[0].probs[rows]
        conditions = self.conditions[0][rows]
        pool_of = np.zeros(self.n, dtype=np.int64)
        for p in range(1, len(self.pools)):
            members = self.members[p]
            now = self.plan.onset[members] <= t
            if not now.any():
                continue
            who, which = members[now], self._indices[p][now, k]
            summaries[who] = self.pools[p].summaries[which]
            probs[who] = self.pools[p].probs[which]
            conditions[who] = self.conditions[p][which]
            pool_of[who], rows[who] = p, which
        self.clips = (pool_of, rows)  # what each device heard: index into self.pools, row in that pool
        self.twin.sensor_update_blocks(conditions)
        r = self.twin.update(summaries, probs)
        moved = r["moved"].astype(np.uint64)
        moved_channels = moved[:, 0] | (moved[:, 1] << np.uint64(32)) if moved.shape[1] > 1 else moved[:, 0]
        return Expected(summaries=summaries, outputs=probs, window_end=np.zeros(self.n, np.int64),
                        inference_index=r["t"], predicted=r["predicted"], confidence=r["confidence"],
                        alarm_bits=r["alarms"] & 0xFFFF, entropy=r["entropy_q16"], atc=r["atc_accuracy_q16"],
                        moved_channels=moved_channels, change_index=r["change_time"], alarm_index=r["alarm_time"],
                        cusum=r["cusum"])

    def _draw(self, pool: SamplePool, n_streams: int) -> np.ndarray:
        if n_streams == 0:
            return np.zeros((0, self.CHUNK), dtype=np.int64)
        return bootstrap_indices(pool.groups, n_streams, self.CHUNK, self._rng, block_length=self.block_length)

    def latched(self) -> np.ndarray:
        """Each device's latched alarm types (bits 0-4 of the alarm word)."""
        return self.twin.alarms & ALARM_TYPES_MASK

    def alarm_index(self) -> np.ndarray:
        """Each device's inference index at its first latched alarm, 0: none."""
        return self.twin.alarm_time.copy()


# ---------------------------------------------------------------------------- into the gateway

RELEASE_EVERY_S = 0.02  # devices are spread over each inference period in slots this long


@dataclass
class SimulationCounts:
    """What the simulated devices sent (what entered the outbox), per device and in all."""

    sent: list[int]  # frames per device: its seqs 0 .. sent-1
    by_type: dict[str, int] = field(default_factory=dict)
    inferences: int = 0  # inferences every device made
    payload_bytes: int = 0  # MQTT payloads (envelope + packet)
    wire_bytes: int = 0  # what the frames take on a serial link (COBS-framed)
    startup_cpu_s: float = 0.0  # the process's CPU before the devices started (imports, pools)
    simulate_cpu_s: float = 0.0  # this source's thread: the monitor twin and frame making
    behind_s: float = 0.0  # the most a release came late (the simulation could not keep up)

    @property
    def frames(self) -> int:
        return sum(self.sent)


class SimulatedDevices(threading.Thread):
    """A gateway source (gateway.forward): the fleet's frames in real time, `rate`
    inferences a second on every device, into the outbox as the port readers put theirs:
    in envelopes naming the device, stamped when they enter. Devices are spread over each
    inference period, so the outbox sees a steady flow rather than one burst a period."""

    def __init__(self, fleet: SimulatedFleet, feed: Feed, *, rate: float, inferences: int | None = None) -> None:
        super().__init__(name="simulated devices", daemon=True)
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.fleet, self.feed, self.rate, self.limit = fleet, feed, rate, inferences
        self.counts = SimulationCounts([0] * fleet.n, startup_cpu_s=_process_cpu_s())
        self.failure: str | None = None
        self._identities = [E.Identity(fleet.plan.device_ids[d], fleet.plan.boot_counts[d], fleet.model_id)
                            for d in range(fleet.n)]
        self._said_behind = False

    def run(self) -> None:
        fleet, stop = self.fleet, self.feed.stop
        period = 1.0 / self.rate
        slots = max(1, min(fleet.n, int(period / RELEASE_EVERY_S)))
        start = time.monotonic()
        try:
            frames = fleet.boot()
            step = 0
            while not stop.is_set():
                base = start + step * period
                for j in range(slots):
                    late = time.monotonic() - (base + j * period / slots)
                    if late < 0:
                        if stop.wait(-late):
                            return
                    elif late > self.counts.behind_s:
                        self.counts.behind_s = late
                        if late > max(1.0, 2 * period) and not self._said_behind:
                            self._said_behind = True
                            self.feed.log(f"the simulation runs {late:.1f} s behind its schedule: "
                                          "fewer devices or a lower --rate")
                    self._put(range(j, fleet.n, slots), frames)
                if self.limit is not None and step >= self.limit:
                    return
                began = time.thread_time()
                frames = fleet.step()
                self.counts.simulate_cpu_s += time.thread_time() - began
                self.counts.inferences = step = step + 1
        except StoreFull as exc:
            self.failure = f"{exc}: frames made after it are not kept"
        except Exception as exc:  # a thread's error would otherwise end the run as a success
            self.failure = f"the simulation stopped: {type(exc).__name__}: {exc}"
        finally:
            self.feed.wake.set()

    def _put(self, devices: range, frames: list[list[P.Frame]]) -> None:
        received_us = int(time.time() * 1e6)
        messages = []
        c = self.counts
        for d in devices:
            who = self._identities[d]
            for frame in frames[d]:
                packet = P.encode_packet(frame)
                payload = E.pack(who, received_us, packet)
                messages.append((E.topic(self.feed.fleet, who.device_id, frame.TYPE), payload))
                name = frame.TYPE.name
                c.by_type[name] = c.by_type.get(name, 0) + 1
                c.payload_bytes += len(payload)
                c.wire_bytes += len(P.cobs_encode(packet)) + 2
            c.sent[d] += len(frames[d])
        self.feed.put(messages)


@dataclass
class SimulationSummary:
    gateway: GatewaySummary
    counts: SimulationCounts
    latched: np.ndarray  # per device, its latched alarm types at the end
    alarm_index: np.ndarray  # per device, its first alarm's inference index (0: none)


def run_simulation(fleet: SimulatedFleet, broker_url: str, outbox_path: str | Path, *, rate: float,
                   duration: float | None = None, fleet_name: str = "default", client_id: str | None = None,
                   stop_event: threading.Event | None = None, log: Callable[[str], None] | None = None,
                   progress: Callable[[GatewayStats, int, SimulationCounts], None] | None = None,
                   progress_interval: float = 5.0, drain_timeout: float = 60.0) -> SimulationSummary:
    """The fleet's devices through the gateway's outbox and publisher to the broker, for
    `duration` s of device time (None: until Ctrl-C/SIGTERM or `stop_event`), then up to
    `drain_timeout` s for the broker to take what is left."""
    E.check_fleet_name(fleet_name)
    broker = mqtt.BrokerUrl.parse(broker_url)
    mqtt.check_tls(broker)
    outbox = Outbox(outbox_path)
    inferences = None if duration is None else max(0, int(round(duration * rate)))
    sources: list[SimulatedDevices] = []

    def devices(feed: Feed) -> list[SimulatedDevices]:
        sources.append(SimulatedDevices(fleet, feed, rate=rate, inferences=inferences))
        return sources

    report = None if progress is None else (lambda stats, waiting: progress(stats, waiting, sources[0].counts))
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        raise TinydriftError(f"{mqtt.FLEET_EXTRA}: threadpoolctl is missing") from None
    # The twin's whitening is one small matrix product a step: OpenBLAS's helper threads would
    # spin between steps (1,000 devices: 5.8 s of CPU per 100 steps instead of 1.2).
    with threadpool_limits(1, user_api="blas"):
        summary = forward(devices, outbox, broker, fleet=fleet_name, client_id=client_id, stop_event=stop_event,
                          log=log, progress=report, progress_interval=progress_interval, ended="the simulation ended",
                          drain_timeout=drain_timeout)
    return SimulationSummary(summary, sources[0].counts, fleet.latched(), fleet.alarm_index())


def describe(fleet: SimulatedFleet, summary: SimulationSummary) -> dict:
    """What was sent and what the devices found, as JSON, with a one-line account."""
    counts, plan, gateway = summary.counts, fleet.plan, summary.gateway
    latched, at = summary.latched, summary.alarm_index
    quiet = ~plan.drifting
    watched = max(0, counts.inferences - fleet.config.commission_n)
    drifting = {}
    for k, name in enumerate(plan.scenarios):
        devices = np.flatnonzero(plan.scenario == k)
        begun = devices[plan.onset[devices] <= counts.inferences]
        alarmed = begun[latched[begun] != 0]
        delays = at[alarmed] - plan.onset[alarmed]
        types: dict[str, int] = {}
        for word in latched[alarmed]:
            key = "+".join(alarm_names(int(word))) or "none"
            types[key] = types.get(key, 0) + 1
        drifting[name] = {"devices": int(len(devices)), "drift_begun": int(len(begun)), "alarmed": int(len(alarmed)),
                          "alarmed_before_onset": int(np.sum(delays < 0)),
                          "median_delay": float(np.median(delays)) if len(delays) else None, "alarm_types": types}
    quiet_alarmed = int(np.sum(latched[quiet] != 0))
    per_device = [{"device_id": plan.device_ids[d], "boot_count": plan.boot_counts[d], "frames": counts.sent[d],
                   "scenario": plan.scenario_of(d), "onset": int(plan.onset[d]),
                   "latched": alarm_names(int(latched[d])), "alarm_index": int(at[d])} for d in range(fleet.n)]
    begun = sum(v["drift_begun"] for v in drifting.values())
    line = (f"simulated {fleet.n} devices x {counts.inferences} inferences: {counts.frames} frames "
            f"({', '.join(f'{v} {k}' for k, v in sorted(counts.by_type.items()))}) into the outbox, the broker "
            f"acknowledged {gateway.stats.published} sends ({gateway.left_in_outbox} frames left) in "
            f"{gateway.duration_s:.1f} s{gateway.repeats()}; "
            f"{int(quiet.sum())} never-drifting devices: {quiet_alarmed} latched an alarm in {watched} inferences "
            f"after commissioning; {int(plan.drifting.sum())} drifting ({begun} begun): "
            f"{sum(v['alarmed'] for v in drifting.values())} alarmed")
    return {"devices": fleet.n, "inferences": counts.inferences, "frames": counts.frames, "by_type": counts.by_type,
            "payload_bytes": counts.payload_bytes, "wire_bytes": counts.wire_bytes,
            "acknowledged": gateway.stats.published, "left_in_outbox": gateway.left_in_outbox,
            "duration_s": round(gateway.duration_s, 3), "end_reason": gateway.end_reason,
            "startup_cpu_s": round(counts.startup_cpu_s, 3), "simulate_cpu_s": round(counts.simulate_cpu_s, 3),
            "process_cpu_s": round(_process_cpu_s(), 3),
            "behind_s": round(counts.behind_s, 3),
            "commission_n": int(fleet.config.commission_n),
            "quiet": {"devices": int(quiet.sum()), "alarmed": quiet_alarmed, "watched_inferences": watched},
            "drifting": drifting, "per_device": per_device, "line": line}


def _process_cpu_s() -> float:
    """User and system CPU of this whole process so far (simulation, gateway, paho)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime
