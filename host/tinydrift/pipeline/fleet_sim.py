"""A simulated fleet on real model outputs: the drift bench's pools (espeak-ng clips through
the front end and the int8 model once, cached) feed `fleet.simulate.SimulatedFleet`, whose
devices run the exported model's monitor config as the firmware does.

Never-drifting devices hear the deployment population, the one the monitor was calibrated
for; a drifting device hears one scenario's clips (gain, noise, an accent, a dead
microphone, ...) from a random inference after its commissioning on.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from tinydrift.data.scenarios import SCENARIOS, Scenario
from tinydrift.errors import TinydriftError
from tinydrift.fleet.simulate import FleetPlan, SimulatedFleet, plan_fleet
from tinydrift.monitor.calibrate import calibrated_block_length
from tinydrift.pipeline.drift_pools import BenchSettings, Pool, PoolMaker
from tinydrift.pipeline.export import load_exported

DEFAULT_SCENARIOS = ("gain_down_20db", "white_noise_10db", "accent", "dead_microphone")
# control: the deployment population's large fresh pool (1,200 clips), on which the
# calibrated false-alarm rate holds; deployment: the 300 clips the scenarios transform,
# quicker to build, but a device replaying so few clips reads quieter than calibrated.
QUIET_POOLS = ("control", "deployment")
DEFAULT_CACHE = Path("build/bench/drift/pools")  # shared with `tinydrift bench drift`
ONSET_SPAN_WITHOUT_DURATION = 1000  # inferences after commissioning within which drift starts


def fleet_scenarios() -> dict[str, Scenario]:
    """The drifts a simulated device can meet: abrupt changes of what it hears (its
    population, the audio path, the sensor). Label shifts and concept drift need class
    resampling and label feedback, which the simulated devices do not do."""
    return {s.name: s for s in SCENARIOS if s.family in ("data", "upstream", "sensor") and not s.gradual}


def check_scenarios(names: tuple[str, ...]) -> tuple[str, ...]:
    known = fleet_scenarios()
    unknown = [n for n in names if n not in known]
    if unknown:
        raise TinydriftError(f"unknown scenario {unknown[0]!r}: choose from {', '.join(sorted(known))}")
    return names


@dataclass(frozen=True)
class FleetSettings:
    devices: int
    drift_share: float = 0.2
    scenarios: tuple[str, ...] = DEFAULT_SCENARIOS
    heartbeat_interval: int = 100
    per_inference: bool = False
    rate: float = 1.0  # inferences per second on each device
    duration: float | None = None  # seconds of the run, None: open-ended
    quiet_pool: str = "control"
    onset_within: int | None = None  # drift starts within this many inferences after commissioning
    first_id: int = 1
    seed: int = 0

    def onset_range(self, commission_n: int) -> tuple[int, int]:
        if self.onset_within is not None:
            span = self.onset_within
        elif self.duration is not None:
            span = (int(self.duration * self.rate) - commission_n) // 2
        else:
            span = ONSET_SPAN_WITHOUT_DURATION
        return commission_n + 1, commission_n + max(1, span)


def fleet_pools(model_dir: Path, scenarios: tuple[str, ...], quiet_pool: str, cache: Path, log) -> tuple:
    """(folder, config, quiet pool, {scenario: pool}), built once and cached in `cache`."""
    if quiet_pool not in QUIET_POOLS:
        raise TinydriftError(f"quiet pool {quiet_pool!r}: choose {' or '.join(QUIET_POOLS)}")
    check_scenarios(scenarios)
    folder, model, config = load_exported(model_dir)
    maker = PoolMaker(model, config, cache, BenchSettings.make(quick=True), log)
    started = time.perf_counter()
    known = fleet_scenarios()
    quiet: Pool = maker.control_pool(Scenario("deployment", "control", None)) if quiet_pool == "control" \
        else maker.deployment()
    pools = {name: maker.scenario_pool(known[name]) for name in scenarios}
    took = time.perf_counter() - started
    if took > 5:
        log(f"pools built in {took:.0f} s, cached in {maker.cache}")
    return folder, config, quiet, pools


def make_fleet(model_dir: Path, settings: FleetSettings, *, cache: Path = DEFAULT_CACHE, log=print) -> SimulatedFleet:
    """The simulated fleet of `settings` running `model_dir`'s model and monitor config."""
    from tinydrift.target.host_monitor import CMonitor

    folder, config, quiet, pools = fleet_pools(model_dir, settings.scenarios, settings.quiet_pool, cache, log)
    plan: FleetPlan = plan_fleet(settings.devices, list(settings.scenarios), settings.drift_share,
                                 settings.onset_range(config.commission_n), first_id=settings.first_id,
                                 seed=settings.seed)
    return SimulatedFleet(config, folder.model_hash, quiet, pools, plan,
                          heartbeat_interval=settings.heartbeat_interval, per_inference=settings.per_inference,
                          uptime_ms_per_inference=1000.0 / settings.rate,
                          state_bytes=CMonitor(config).state_size,  # td_monitor_state_size(), as HELLO says
                          block_length=calibrated_block_length(config, "calibration"), seed=settings.seed)
