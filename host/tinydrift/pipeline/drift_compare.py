"""The device's monitor beside host-side detectors, at one false-alarm rate, on one set of
streams (the comparison part of `tinydrift bench drift`).

Every detector is calibrated the same way: no-drift streams drawn by speaker from a
calibration pool (the deployment population, clips the scenarios never use), the threshold
set so that its empirical ARL0 meets the target. The monitor is recalibrated for that target
with the export's own calibration (commissioning included), and then, like the baselines,
set on those streams: its calibration models long runs of one speaker and lands above the
target on them (measured on models/kws at 2,000: 5,333, DATA_DRIFT never firing), so one
factor on every score's gain is bisected until its empirical ARL0, run as the device runs
(latched alarm, reset, commissioning again), meets the target. The baselines get their
reference sample from the same pool. Then all of them run, at those settings, on the
populations the calibration never saw (the bench's controls: the false-alarm rate a
deployment meets, which a threshold set on one population does not promise), and on the
same detection streams.
"""

from __future__ import annotations

import dataclasses
import math
import time

import numpy as np

from tinydrift.data.scenarios import SCENARIOS
from tinydrift.errors import TinydriftError

SENSOR_FIELDS = ("clip_level", "clip_rate_q16", "dc_level", "stuck_variance", "silence_variance", "persist_blocks",
                 "clip_drift_q16", "clip_drift_blocks", "dropout_margin", "dropout_limit")
# The thresholds' search range per detector (calibrate_threshold bisects geometrically).
SEARCH = {
    "page_hinkley": (0.5, 2000.0),
    "adwin": (0.3, 60.0),
    "kswin": (0.3, 60.0),
    "ks_confidence": (0.3, 80.0),
    "ks_probs": (0.3, 80.0),
    "mewma": (1.0, 1e5),
    "hotelling": (1.0, 1e5),
    "mmd": (1e-6, 50.0),
}
DEFAULT_DETECTORS = ("page_hinkley", "adwin", "kswin", "ks_confidence", "mewma", "hotelling", "mmd")
PROB_SCALE = 1.0 / 256


def observations(pool, kind: str) -> np.ndarray:
    """What a baseline reads per inference, from the device's int8 outputs and summary."""
    if kind == "summary":
        return pool.summaries.astype(np.float64) / 128.0
    p = (pool.probs.astype(np.float64) + 128.0) * PROB_SCALE
    if kind == "probs":
        return p
    if kind == "confidence":
        return p.max(axis=1)
    if kind == "entropy":
        with np.errstate(divide="ignore", invalid="ignore"):
            return -np.where(p > 0, p * np.log(p), 0.0).sum(axis=1)
    raise TinydriftError(f"unknown observation {kind!r}")


def compare_detectors(maker, deployment, settings, block_length, *, log=print, detectors=DEFAULT_DETECTORS,
                      only: tuple[str, ...] | None = None, scenarios=SCENARIOS, workers: int = 1) -> dict:
    from tinydrift.data.parallel import map_items
    from tinydrift.monitor.baselines import BASELINES, INPUT_OF, calibrate_threshold, empirical_arl0
    from tinydrift.monitor.calibrate import OUTPUT_WINSORIZE_SIGMA, calibrate_thresholds, measure_arl0
    from tinydrift.pipeline.drift_pools import group_streams, make_streams, run_monitor, zlib_name

    target = float(settings.compare_arl0)
    calibration = maker.calibration()
    rng = np.random.default_rng(settings.seed + 5)
    out = {"arl0": target, "detectors": ["tinydrift"], "scenarios": {}, "cost": {}}

    # The monitor, recalibrated for the common target on the calibration pool.
    start = time.perf_counter()
    shipped = maker.config
    config, _ = calibrate_thresholds(
        calibration.summaries, calibration.probs, calibration.groups, calibration.labels, target_arl0=target,
        n_inferences=max(1_000_000, int(200 * target)), winsorize_sigma=OUTPUT_WINSORIZE_SIGMA,
        commission_n=shipped.commission_n, centre_n=shipped.centre_n, seed=settings.seed,
        loudness_component=shipped.loudness_component if shipped.loudness_limit else None,
        quiet_component=shipped.quiet_component if shipped.quiet_limit else None,
        class_loudness=shipped.loudness_class_offset is not None,
        **({} if maker.min_reference is None else {"min_samples": maker.min_reference}),
        data_session_length=shipped.metadata.get("calibration", {}).get("data_session_length"),
        output_session_length=shipped.metadata.get("calibration", {}).get("output_session_length"))
    # Sensor health is rule-based, not calibrated: the shipped levels (a camera's differ from
    # the microphone defaults calibrate_thresholds starts from).
    config = dataclasses.replace(config, **{f: getattr(shipped, f) for f in SENSOR_FIELDS})
    # Then set, as the baselines are, on no-drift streams of the pool (speakers held as the
    # detection streams hold them), and checked on others.
    n_calib = int(60 * target)
    runs = {"block_length": settings.speaker_run or block_length, "n_inferences": n_calib}
    config, factor = monitor_at_arl0(config, calibration, target, seed=settings.seed, **runs)
    check = measure_arl0(config, calibration.summaries, calibration.probs, calibration.groups, seed=settings.seed + 1,
                         **runs)
    log(f"monitor recalibrated for ARL0 {target:,.0f} and set on the pool's streams (gains x{factor:.3g}), check "
        f"ARL0 {check['arl0']:,.0f} in {time.perf_counter() - start:.0f} s")
    out["cost"]["tinydrift"] = {"input": "summary + outputs", "state": _state_bytes(config),
                                "ops": "see tinydrift bench monitor", "gain_factor": round(factor, 4),
                                "arl0": None if math.isinf(check["arl0"]) else round(check["arl0"])}

    # The baselines: reference from the pool, threshold from its no-drift streams.
    calib_idx = group_streams(calibration, max(1, n_calib // 2000), 2000, rng, block_length,
                             speaker_run=settings.speaker_run).reshape(-1)
    made = {}
    for name in detectors:
        kind = INPUT_OF[name]
        reference = observations(calibration, kind)
        stream = reference[calib_idx]
        lo, hi = SEARCH.get(name, (1e-3, 1e4))
        start = time.perf_counter()
        try:
            threshold = calibrate_threshold(lambda th, n=name, r=reference: BASELINES[n](r, th), [stream], target,
                                            lo=lo, hi=hi)
        except TinydriftError as exc:
            log(f"{name}: not calibrated ({exc})")
            continue
        detector = BASELINES[name](reference, threshold)
        check_idx = group_streams(calibration, max(1, n_calib // 2000), 2000, rng, block_length,
                             speaker_run=settings.speaker_run).reshape(-1)
        arl0 = empirical_arl0(detector, [reference[check_idx]])
        made[name] = (detector, kind)
        out["detectors"].append(name)
        out["cost"][name] = {"input": kind, "state": f"{detector.state_floats():,} floats",
                             "ops": f"~{detector.ops_per_update():,}", "arl0": None if math.isinf(arl0) else round(arl0)}
        log(f"{name}: threshold {threshold:.4g}, check ARL0 {arl0:,.0f} ({time.perf_counter() - start:.0f} s)")

    controls = [s for s in scenarios if s.family == "control" and s.transform is None
                and (only is None or s.name in only)]
    if controls:
        out["controls"] = controls_arl0(config, made, maker, controls, target, runs, rng, settings.speaker_run,
                                        log=log, workers=workers)

    # The same detection streams for everyone.
    chosen = [s for s in scenarios
              if not (s.family == "control" and s.transform is None) and (only is None or s.name in only)]

    def compare(item: tuple) -> dict:
        s, drifted = item
        streams = make_streams(s, deployment, drifted, settings, settings.compare_streams, block_length,
                               settings.seed + zlib_name("compare"))
        row = {"detectors": {}}
        run = run_monitor(config, streams, deployment, drifted)
        row["detectors"]["tinydrift"] = _delays(run["first"], settings.before)
        for name, (detector, kind) in made.items():
            obs = {p.name: observations(p, kind) for p in (deployment, drifted)}
            firsts = []
            for b in range(streams.before.shape[0]):
                seq = _stream_rows(streams, b, deployment, drifted, obs)
                firsts.append(_first_alarm(detector, seq))
            row["detectors"][name] = _delays(np.array(firsts), settings.before)
        baselines = {n: r for n, r in row["detectors"].items() if n != "tinydrift" and r["median_delay"] is not None
                     and r["detected"] >= 0.5}
        best = min(baselines, key=lambda n: baselines[n]["median_delay"]) if baselines else None
        row["best_baseline"] = best
        row["best_baseline_median_delay"] = baselines[best]["median_delay"] if best else None
        # ...and among those no louder than the monitor on the unseen populations (none when unmeasured)
        quiet = {n: r for n, r in baselines.items() if n in out.get("controls", {}).get("quiet", ())}
        best = min(quiet, key=lambda n: quiet[n]["median_delay"]) if quiet else None
        row["best_quiet_baseline"] = best
        row["best_quiet_baseline_median_delay"] = quiet[best]["median_delay"] if best else None
        log(f"compare {s.name}: tinydrift {row['detectors']['tinydrift']['median_delay']}, best baseline "
            f"{row['best_baseline']} {row['best_baseline_median_delay']}, best quiet {best} "
            f"{row['best_quiet_baseline_median_delay']}")
        return row

    pairs = [(s, maker.scenario_pool(s)) for s in chosen]
    for s, row in zip(chosen, map_items(compare, pairs, workers)):
        out["scenarios"][s.name] = row
    return out


# How many times the monitor's false-alarm rate a quiet baseline may reach on any one unseen
# population: the factor the false-alarm target allows each held-out group (x0.5-x2), which
# also covers the Poisson noise of a few dozen alarms.
QUIET_POPULATION_FACTOR = 2


def controls_arl0(config, made: dict, maker, controls, target: float, runs: dict, rng, speaker_run, *,
                  log=print, workers: int = 1) -> dict:
    """Every detector's empirical ARL0 on each unseen population at its comparison setting:
    the monitor as the device runs it (measure_arl0, its commissioning included), the
    baselines with the threshold and reference set on the calibration pool, on streams drawn
    the way their calibration drew its own. A baseline is "quiet" when it raises no more false
    alarms on those populations together than the monitor does, and on none of them more than
    twice as many (QUIET_POPULATION_FACTOR): only then is it as fast at the same false-alarm
    rate where a deployment meets it. Pooling alone lets one population's alarms hide among
    quiet others (measured on the full camera bench: Hotelling's T2 raises all its false
    alarms on side-lit plants, 4.9 times the monitor's there, and none elsewhere)."""
    from tinydrift.data.parallel import map_items
    from tinydrift.monitor.baselines import count_alarms
    from tinydrift.monitor.calibrate import measure_arl0
    from tinydrift.pipeline.drift_pools import group_streams, zlib_name

    start = time.perf_counter()
    # every population's streams drawn here, in order, from the one rng: the same streams
    # however many workers count the alarms on them
    drawn = []
    for s in controls:
        pool = maker.control_pool(s)
        indices = group_streams(pool, max(1, runs["n_inferences"] // 2000), 2000, rng, runs["block_length"],
                                speaker_run=speaker_run).reshape(-1)
        drawn.append((s.name, pool, indices))

    def count(item: tuple) -> dict:
        name, pool, indices = item
        arl = measure_arl0(config, pool.summaries, pool.probs, pool.groups, seed=zlib_name(name), **runs)
        counts = {"tinydrift": (arl["inferences"], arl["alarms"])}
        for detector_name, (detector, kind) in made.items():
            counts[detector_name] = count_alarms(detector, [observations(pool, kind)[indices]])
        return counts

    counted = {name: counts for (name, _, _), counts in zip(drawn, map_items(count, drawn, workers))}
    per_population = {population: {name: round(n / alarms) if alarms else None
                                   for name, (n, alarms) in counts.items()}
                      for population, counts in counted.items()}
    detectors = {}
    for name in ["tinydrift", *made]:
        inferences = sum(c[name][0] for c in counted.values())
        alarms = sum(c[name][1] for c in counted.values())
        arls = [row[name] for row in per_population.values()]
        worst = min((a for a in arls if a is not None), default=None)
        detectors[name] = {"arl0": round(inferences / alarms) if alarms else None, "alarms": int(alarms),
                           "inferences": int(inferences),
                           "worst_ratio": None if worst is None else round(worst / target, 4)}
    quiet = quiet_baselines(counted, list(made))
    log(f"unseen populations at ARL0 {target:,.0f}: " + ", ".join(
        f"{n} {_num(d['arl0'])} (worst x{d['worst_ratio']})" for n, d in detectors.items())
        + f" ({time.perf_counter() - start:.0f} s)")
    return {"populations": per_population, "detectors": detectors, "quiet": quiet}


def quiet_baselines(counted: dict, names: list) -> list:
    """The baselines no louder than the monitor ("tinydrift") on unseen populations, from
    {population: {detector: (inferences, alarms)}}: no more false alarms per inference on
    them together, and on none more than QUIET_POPULATION_FACTOR times the monitor's rate
    there (a population where the monitor raised none counts as one alarm)."""
    def rate(name, rows):
        return sum(r[name][1] for r in rows) / sum(r[name][0] for r in rows)

    rows = list(counted.values())
    ours = rate("tinydrift", rows)
    quiet = []
    for name in names:
        loud = any(r[name][1] > QUIET_POPULATION_FACTOR * max(r["tinydrift"][1], 1) / r["tinydrift"][0] * r[name][0]
                   for r in rows)
        if rate(name, rows) <= ours and not loud:
            quiet.append(name)
    return quiet


def monitor_at_arl0(config, pool, target: float, *, block_length, n_inferences: int, seed: int,
                    stream_length: int = 5_000, lo: float = 0.25, hi: float = 4.0, iterations: int = 7):
    """(config, factor): every score's gain times the largest factor in [lo, hi] whose
    empirical ARL0 on the pool's no-drift streams (measure_arl0: the device's latch, reset
    and commissioning) is still >= target, by geometric bisection on one set of streams
    (7 steps: within 5 % of the factor). One factor keeps the calibrated balance between the
    scores, as one threshold does for a baseline. Streams of `stream_length` run side by side:
    long next to commissioning (300) and settling, short enough to run many at once."""
    from tinydrift.monitor.calibrate import measure_arl0

    def scaled(factor: float):
        gains = np.clip(np.round(config.score_gain_q16.astype(np.float64) * factor), -(1 << 28), 1 << 28)
        return config.replace(score_gain_q16=np.where(gains == 0, np.sign(config.score_gain_q16), gains).astype(np.int64))

    def meets(factor: float) -> bool:
        return measure_arl0(scaled(factor), pool.summaries, pool.probs, pool.groups, block_length=block_length,
                            n_inferences=n_inferences, stream_length=stream_length, seed=seed)["arl0"] >= target

    for _ in range(iterations):
        mid = math.sqrt(lo * hi)
        lo, hi = (mid, hi) if meets(mid) else (lo, mid)
    return scaled(lo), lo


def _state_bytes(config) -> str:
    """The monitor state's size as the C compiler lays it out for this config."""
    from tinydrift.target.host_monitor import CMonitor

    monitor = CMonitor(config)
    return f"{monitor.state_size:,} bytes ({monitor.commission_size:,} of them commissioning)"


def _stream_rows(streams, b, deployment, drifted, obs) -> np.ndarray:
    before = obs[deployment.name][streams.before[b]]
    after_rows = obs[drifted.name][streams.after[b]]
    if streams.mix is not None:
        fallback = obs[deployment.name][streams.before[b][np.arange(streams.after.shape[1]) % streams.before.shape[1]]]
        mask = streams.mix[b] if after_rows.ndim == 1 else streams.mix[b][:, None]
        after_rows = np.where(mask, after_rows, fallback)
    return np.concatenate([before, after_rows])


def _first_alarm(detector, sequence) -> int:
    from tinydrift.monitor.baselines import run_length

    found = run_length(detector, sequence, fast=True)
    return 0 if found is None else int(found)


def _num(value) -> str:
    return "no alarm" if value is None else f"{value:,}"


def _delays(first: np.ndarray, before: int) -> dict:
    first = np.asarray(first)
    detected = first > before
    delays = first[detected] - before
    return {"detected": round(float(detected.mean()), 4),
            "false_alarm_before_change": round(float(((first > 0) & (first <= before)).mean()), 4),
            "median_delay": float(np.median(delays)) if delays.size else None}
