"""`tinydrift bench drift`: how well the device's drift monitor detects what matters, and how
quietly it watches what does not, on the very integers the firmware computes (the twin).

1. Pools. Fresh espeak-ng clips of the deployment population (the calibration set's
   synthesis parameters, other clips), of harmless populations the calibration never saw
   (controls) and of harmful ones; transforms of the deployment clips (gain, band limits,
   noise, reverberation, sensor faults). Each pool goes through the front end and the int8
   model (the generated C, bit-exact with TFLite Micro) once and is cached.
2. The shipped monitor (the model folder's config, its own ARL0 target): the empirical ARL0
   on every control population, and per scenario streams of deployment inferences followed
   by drifted ones: detection rate, median and p90 delay, false alarms before the change,
   the first alarm's type against the expected one, the ATC accuracy estimate against the
   true accuracy, and the accuracy the drift costs.
3. The comparison at one lower ARL0 (so the host-side detectors can be calibrated in
   seconds): the monitor recalibrated for it on a calibration pool, and each baseline
   calibrated on the same pool, all run on the same detection streams.

A camera model (an image input) runs the same three parts on leaf populations and camera
scenarios (tinydrift.data.camera_scenarios) instead of espeak-ng ones.

Nothing here is tuned on the benchmark's streams: calibration uses its own pool (another
seed), and the shipped config comes from `tinydrift export`.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from tinydrift.atomic import write_text
from tinydrift.errors import TinydriftError
from tinydrift.data.scenarios import SCENARIOS, Scenario
from tinydrift.monitor.accuracy_estimate import (CAPPED_BASES, HARMLESS_POINTS, IMPACT, UNCLEAR, ClassMix,
                                                 accuracy_estimate)
from tinydrift.monitor.calibrate import SeverityLines
from tinydrift.monitor.config import ALARM_DATA_DRIFT, ALARM_NAMES, jsonable
from tinydrift.pipeline.drift_compare import compare_detectors
from tinydrift.pipeline.export import load_exported
from tinydrift.pipeline.drift_pools import (SEVERITY_READ_AFTER, BenchSettings, CameraPoolMaker, Pool, PoolMaker,
                                            make_streams, run_monitor, zlib_name)


def type_name(word: int) -> str:
    names = [name for bit, name in ALARM_NAMES.items() if word & bit]
    return "+".join(names) if names else "none"


def host_estimates(run: dict, prior: np.ndarray) -> list:
    """Per stream, the accuracy estimate the host shows at the stream's end, over its last
    answers (ESTIMATE_WINDOW of them, or all of a shorter stream), against the class mix of
    its answers before its first alarm's change point."""
    n = run["recent_answers"]
    return [accuracy_estimate(confident.sum() / n, confident, n, ClassMix.heard(heard, prior), int(alarms))
            for confident, alarms, heard in zip(run["recent_confident"], run["alarms_after"], run["heard_before"])]


def summarize_detection(s: Scenario, run: dict, before: int, deployment: Pool, drifted: Pool,
                        prior: np.ndarray) -> dict:
    first, word = run["first"], run["word"]
    false_alarm = (first > 0) & (first <= before)
    detected = first > before
    delays = first[detected] - before
    expected_bit = next((bit for bit, name in ALARM_NAMES.items() if name == s.expected), 0)
    right_type = detected & ((word & expected_bit) != 0) if expected_bit else np.zeros_like(detected)
    # in the class mix the streams were drawn in (a label shift's, a room's own)
    before_acc = deployment.accuracy_in(s.room_weights)
    after_acc = drifted.accuracy_in(s.mix_after)
    drop = before_acc - after_acc
    # the expected type at any time after the change (another type may have fired first)
    expected_index = next((i for i, (bit, name) in enumerate(ALARM_NAMES.items()) if name == s.expected), None)
    typed = None
    if expected_index is not None:
        at = run["by_type"][:, expected_index]
        hit = at > before
        typed = {"detected": round(float(hit.mean()), 4),
                 "median_delay": float(np.median(at[hit] - before)) if hit.any() else None}
    return {
        "family": s.family,
        "expected_alarm": s.expected,
        "accuracy_before": round(before_acc, 4),
        "accuracy_after": round(after_acc, 4),
        "accuracy_drop": round(drop, 4),
        "streams": int(len(first)),
        "false_alarm_before_change": round(float(false_alarm.mean()), 4),
        "detected": round(float(detected.mean()), 4),
        "median_delay": float(np.median(delays)) if delays.size else None,
        "p90_delay": float(np.percentile(delays, 90)) if delays.size else None,
        "alarm_type_correct": round(float(right_type.sum() / max(1, detected.sum())), 4) if expected_bit else None,
        "alarm_types": {type_name(w): int(np.sum(detected & (word == w))) for w in np.unique(word[detected])},
        "expected_type": typed,
        "sensor_fault_share": round(float(run["sensor_fault"].mean()), 4),
        "data_z": _data_z(run, detected),
        "data_drift_seen_in_inputs": _seen_in_inputs(run, detected),
        "atc_estimate_after": round(float(np.mean(run["atc_after"])), 4),
        "atc_error_after": round(float(np.mean(run["atc_after"]) - after_acc), 4),
        **_estimate_figures(host_estimates(run, prior), after_acc),
        "severity": severity_figures(list(run["first_impact"][detected]), list(run["first_truth"][detected]),
                                     list(run["first_verdict"][detected])),
    }


def severity_figures(impacts: list, truth: list, verdicts: list) -> dict:
    """What the severity lines of some alarms read SEVERITY_READ_AFTER inferences after each
    (points the estimate moved since the change point; None: withheld under a sensor fault;
    NaN: not read): the median, and the share that reads harmful, an estimated loss of
    HARMLESS_POINTS or more that the line calls an impact (`verdicts`, beyond what its
    answers could give by chance; a withheld estimate counts as harmful: it is not called
    harmless), and the share it calls too few answers to tell. `truth`: what the true
    accuracy did over the same stretches (SeverityLines.truth), the same figures."""
    read = [(i, v) for i, v in zip(impacts, verdicts) if i is None or not np.isnan(i)]
    shown = np.array([i for i, _ in read if i is not None], dtype=np.float64)
    true = np.array([t for i, t in zip(impacts, truth) if (i is None or not np.isnan(i)) and not np.isnan(t)])
    harmful = sum(i is None or (v == IMPACT and i <= -HARMLESS_POINTS) for i, v in read)
    unclear = sum(v == UNCLEAR for _, v in read)
    harmless = len(read) - harmful - unclear  # a gain the line calls an impact is no loss either
    return {"read_after": SEVERITY_READ_AFTER, "lines": len(read), "harmful": harmful,
            "harmful_share": round(harmful / len(read), 4) if read else None,
            "unclear_share": round(unclear / len(read), 4) if read else None,
            "harmless_share": round(harmless / len(read), 4) if read else None,
            "median_points": round(float(np.median(shown)), 2) if shown.size else None,
            "true_loss_share": round(float(np.mean(true <= -HARMLESS_POINTS)), 4) if true.size else None,
            "true_median_points": round(float(np.median(true)), 2) if true.size else None}


def _data_z(run: dict, detected: np.ndarray) -> dict:
    """The data score's z (sigma) at the first alarm (median, p90 over detections) against its
    own no-drift p99 on the same streams before the change: above it, the inputs had moved
    when the alarm came; within it, no input statistic could have named the change data drift
    without calling the device's own no-drift stretches so too."""
    at = run["data_z_first"][detected]
    calm = run["no_drift_data_z"]
    return {"at_first_alarm_median": round(float(np.median(at)), 2) if at.size else None,
            "at_first_alarm_p90": round(float(np.percentile(at, 90)), 2) if at.size else None,
            "no_drift_p99": round(float(np.percentile(calm, 99)), 2) if calm.size else None}


def _seen_in_inputs(run: dict, detected: np.ndarray) -> float | None:
    """Of the detections whose first alarm named DATA_DRIFT, the share where the inputs showed
    it themselves (an input score or sensor health latched it, or an input score was at its
    warning level, or enough components had moved), not only the model's confidence."""
    named = detected & ((run["word"] & ALARM_DATA_DRIFT) != 0)
    return round(float(run["data_seen"][named].mean()), 4) if named.any() else None


def _estimate_figures(estimates: list, after_acc: float) -> dict:
    shown = [e.value for e in estimates if e.value is not None]
    mean = float(np.mean(shown)) if shown else None
    return {"estimate_after": round(mean, 4) if shown else None,
            "estimate_error_after": round(mean - after_acc, 4) if shown else None,
            "estimate_withheld_share": round(1 - len(shown) / max(1, len(estimates)), 4),
            "estimate_capped_share": round(sum(e.basis in CAPPED_BASES for e in estimates) / max(1, len(estimates)), 4)}


# ---------------------------------------------------------------------------- the whole bench

@dataclass
class BenchResult:
    settings: dict
    model: str
    arl0_target: float
    arl0_empirical: float | None = None  # pooled over the unseen populations
    controls: dict = field(default_factory=dict)
    scenarios: dict = field(default_factory=dict)
    comparison: dict = field(default_factory=dict)
    targets: dict = field(default_factory=dict)
    skipped: dict = field(default_factory=dict)  # scenario -> why it could not run here
    seconds: float = 0.0

    def to_json(self) -> dict:
        return asdict(self)


def run_drift_bench(model_dir: Path, settings: BenchSettings, *, cache: Path, log=print,
                    baselines: bool = True, only: tuple[str, ...] | None = None, workers: int = 1) -> BenchResult:
    """The whole benchmark; `only` restricts it to the named scenarios and controls. Every
    pool is made (or loaded) first, in this process; the measurements then run across
    `workers` forked processes, a population or scenario each (the figures do not depend on
    how many: every stream set is drawn from the scenario's own seed)."""
    from tinydrift.data.parallel import map_items
    from tinydrift.monitor.calibrate import calibrated_block_length
    from tinydrift.monitor.calibrate_feedback import LABEL_SHARE

    start = time.perf_counter()
    folder, model, config = load_exported(model_dir)
    target = float(config.metadata.get("calibration", {}).get("target_arl0", 100_000))
    block_length = calibrated_block_length(config, "calibration")
    scenarios, scenario_kind, maker_kind = bench_kind(model, folder.labels, folder.path)
    maker = maker_kind(model, config, cache, settings, log)
    deployment = maker.deployment()
    result = BenchResult(settings=asdict(settings), model=str(folder.path), arl0_target=target)

    chosen = [s for s in scenarios if only is None or s.name in only]
    for s in chosen:
        why = maker.missing(s)
        if why is not None:
            result.skipped[s.name] = why
            log(f"{s.name}: left out ({why})")
    chosen = [s for s in chosen if s.name not in result.skipped]
    scenarios = [s for s in scenarios if s.name not in result.skipped]
    # transforms of the audio are scenarios, even where harmless; the others are populations
    controls = [s for s in chosen if s.family == "control" and s.transform is None]
    detections = [s for s in chosen if not (s.family == "control" and s.transform is None)]
    populations = [*controls, scenario_kind("deployment", "control", None)]
    control_pools = [(s.name, maker.control_pool(s)) for s in populations]
    drifted_pools = [(s, maker.scenario_pool(s)) for s in detections]

    # 1. The false-alarm rate where no alarm is right: populations calibration never saw.
    def control(item: tuple) -> dict:
        name, pool = item
        row = control_figures(config, pool, settings, block_length, target, seed=zlib_name(name))
        arl0 = "none" if row["arl0"] is None else f"{row['arl0']:,.0f}"
        log(f"control {name}: accuracy {pool.accuracy:.3f}, ARL0 {arl0} ({row['alarms']} alarms in "
            f"{row['inferences']:,} inferences); with labels for {LABEL_SHARE:.0%} of them, ERROR_RATE "
            f"{row['error_rate_alarms']} times")
        return row

    for (name, _), row in zip(control_pools, map_items(control, control_pools, workers)):
        result.controls[name] = row
    unseen = [c for n, c in result.controls.items() if n != "deployment"]
    alarms = sum(c["alarms"] for c in unseen)
    result.arl0_empirical = (sum(c["inferences"] for c in unseen) / alarms) if alarms else None

    # 2. Detection by the shipped monitor.
    prior = config.prior_q16 / np.sum(config.prior_q16)

    def detection(item: tuple) -> dict:
        s, drifted = item
        streams = make_streams(s, deployment, drifted, settings, settings.n_streams, block_length, settings.seed)
        r = summarize_detection(s, run_monitor(config, streams, deployment, drifted), settings.before, deployment,
                                drifted, prior)
        log(f"{s.name}: accuracy {r['accuracy_before']:.3f} -> {r['accuracy_after']:.3f}, detected "
            f"{r['detected']:.0%}, median delay {r['median_delay']}, types {r['alarm_types']}")
        return r

    for s, row in zip(detections, map_items(detection, drifted_pools, workers)):
        result.scenarios[s.name] = row

    # 3. The comparison at one ARL0 with the host-side baselines.
    if baselines:
        result.comparison = compare_detectors(maker, deployment, settings, block_length, log=log, only=only,
                                              scenarios=scenarios, workers=workers)
        for name, row in result.comparison.get("scenarios", {}).items():
            if name in result.scenarios:
                result.scenarios[name]["best_baseline"] = row.get("best_baseline")
                result.scenarios[name]["best_baseline_median_delay"] = row.get("best_baseline_median_delay")
                result.scenarios[name]["best_quiet_baseline"] = row.get("best_quiet_baseline")
                result.scenarios[name]["best_quiet_baseline_median_delay"] = row.get("best_quiet_baseline_median_delay")
                result.scenarios[name]["compare_median_delay"] = row["detectors"]["tinydrift"]["median_delay"]
    result.targets = check_targets(result)
    result.seconds = round(time.perf_counter() - start, 1)
    return result


def control_figures(config, pool: Pool, settings: BenchSettings, block_length: int, target: float, seed: int) -> dict:
    """One unseen population's row: the shipped monitor's false alarms on its no-drift
    streams (as the device runs: latch, reset, commissioning), what their severity lines
    read, and the error-rate test's with labels back for some inferences."""
    from tinydrift.monitor.calibrate import measure_arl0
    from tinydrift.monitor.calibrate_feedback import measure_error_rate_arl0

    arl = measure_arl0(config, pool.summaries, pool.probs, pool.groups, n_inferences=settings.arl_inferences,
                       block_length=settings.speaker_run or "calibration", severity_after=SEVERITY_READ_AFTER,
                       correct=pool.probs.argmax(1) == pool.labels, seed=seed)
    severity = severity_figures(arl["alarm_impacts"], arl["alarm_truth"], arl["alarm_verdicts"])
    harmful = severity["harmful"] / severity["lines"] * arl["alarms"] if severity["lines"] else 0.0
    errors = measure_error_rate_arl0(config, pool.probs.argmax(1), pool.labels, pool.groups,
                                     n_inferences=settings.arl_inferences, block_length=block_length, seed=seed)
    per_speaker = np.unique(pool.groups, return_counts=True)[1]
    run = np.minimum(per_speaker, settings.speaker_run or per_speaker.max()).mean()
    return {"accuracy": round(pool.accuracy, 4), "arl0": arl["arl0"] if arl["alarms"] else None,
            "speaker_run": round(float(run), 1),
            "alarms": arl["alarms"],
            "ratio_to_target": round(arl["arl0"] / target, 4) if arl["alarms"] else None,
            "by_type": arl.get("by_type"), "inferences": arl["inferences"],
            # false alarms whose severity line reads harmful, and the ARL0 of those alone:
            # the ones a reader would act on
            "severity": severity,
            "harmful_ratio_to_target": (round(arl["inferences"] / harmful / target, 4) if harmful else None),
            "error_rate_arl0": errors["arl0_inferences"] if errors["alarms"] else None,
            "error_rate_alarms": errors["alarms"]}


def bench_kind(model: bytes, labels: list[str], where) -> tuple:
    """(scenarios, their Scenario class, the PoolMaker) for the model's input: a keyword
    model's features get the audio scenarios, a camera model's image the camera ones. The
    populations are the built-in sets', so a model of other classes or image size is refused."""
    from tinydrift.data.imageset import IMAGE_SIZE
    from tinydrift.data.labels import LABELS, PLANT_LABELS
    from tinydrift.model.quantize import input_shape
    from tinydrift.pipeline.export import model_input

    shape = input_shape(model)
    image = model_input(shape).is_image
    # a keyword model's input shape is fixed (load_int8); a camera model's image size is its own
    classes, fits = (PLANT_LABELS, shape[1:] == (IMAGE_SIZE, IMAGE_SIZE, 3)) if image else (LABELS, True)
    if tuple(labels) != classes or not fits:
        kind = (f"the plant set's leaves ({IMAGE_SIZE}x{IMAGE_SIZE}, `tinydrift data plant`)" if image
                else "the keyword set's clips (`tinydrift data kws`)")
        raise TinydriftError(f"{where}: the bench draws {kind} of classes {', '.join(classes)}, and this model takes "
                             f"{'x'.join(map(str, shape[1:]))} inputs of classes {', '.join(labels)}: measure it on "
                             "your own data with `tinydrift export --data FOLDER` (its held-out false-alarm and "
                             "shift checks) and `tinydrift demo`")
    if image:
        from tinydrift.data import camera_scenarios

        return camera_scenarios.SCENARIOS, camera_scenarios.CameraScenario, CameraPoolMaker
    return SCENARIOS, Scenario, PoolMaker


def bench_settings(model_dir: Path, quick: bool, speaker_run: int | None = None) -> BenchSettings:
    """BenchSettings sized for the model's class count."""
    from tinydrift.modeldir import ModelDir

    return BenchSettings.make(quick, n_classes=len(ModelDir(model_dir).require_exported().labels),
                              speaker_run=speaker_run)


def check_targets(result: BenchResult) -> dict:
    """The product's promises, each met or missed by how much."""
    ratios = [c["ratio_to_target"] for c in result.controls.values() if c["ratio_to_target"] is not None]
    no_alarm = [n for n, c in result.controls.items() if not c["alarms"]]
    worst = min(ratios) if ratios else None
    costly = {n: r for n, r in result.scenarios.items() if r["accuracy_drop"] >= 0.05 and r["family"] != "concept"}
    missed = [n for n, r in costly.items() if r["detected"] < 0.9 or (r["median_delay"] or 1e9) > 200]
    upstream = {n: r for n, r in result.scenarios.items() if r["family"] == "upstream"}
    upstream_missed = [n for n, r in upstream.items() if not r["expected_type"] or r["expected_type"]["detected"] < 0.9
                       or (r["expected_type"]["median_delay"] or 1e9) > 200]
    typed = [r["alarm_type_correct"] for r in result.scenarios.values() if r["alarm_type_correct"] is not None
             and r["detected"] > 0]
    # At the comparison's common ARL0: ours against the fastest baseline, where both detect.
    versus_best = {n: round(r["compare_median_delay"] / r["best_baseline_median_delay"], 2) for n, r in costly.items()
                   if r.get("compare_median_delay") and r.get("best_baseline_median_delay")}
    # ...and against the fastest of those no louder than the monitor on the unseen populations
    versus_quiet = {n: round(r["compare_median_delay"] / r["best_quiet_baseline_median_delay"], 2)
                    for n, r in costly.items()
                    if r.get("compare_median_delay") and r.get("best_quiet_baseline_median_delay")}
    # ATC reads confidence: it cannot see a dead sensor or relabelled classes
    atc = [abs(r["atc_error_after"]) for r in result.scenarios.values() if r["family"] not in ("sensor", "concept")]
    # the host's estimate: withheld under a sensor fault, so only where it is shown
    shown = [abs(r["estimate_error_after"]) for r in result.scenarios.values()
             if r["family"] != "concept" and r.get("estimate_error_after") is not None]
    return {
        "arl0_controls_worst_ratio": worst,
        "arl0_controls_without_alarm": no_alarm,
        # Too loud (under x0.5) breaks the promise; too quiet (over x2) costs detection
        # speed. With few alarms in a check the upper side is a loose estimate.
        "arl0_every_control_within_0.5_2": bool(ratios) and not no_alarm and all(0.5 <= r <= 2 for r in ratios),
        "arl0_controls_under_half_target": sorted(n for n, c in result.controls.items()
                                                  if c["ratio_to_target"] is not None and c["ratio_to_target"] < 0.5),
        "arl0_controls_over_twice_target": sorted(n for n, c in result.controls.items()
                                                  if not c["alarms"] or c["ratio_to_target"] > 2),
        "costly_scenarios": sorted(costly),
        "costly_missed_or_late": sorted(missed),
        "costly_slower_than_1.5x_best_baseline": {n: v for n, v in sorted(versus_best.items()) if v > 1.5},
        "costly_slower_than_1.5x_best_quiet_baseline": {n: v for n, v in sorted(versus_quiet.items()) if v > 1.5},
        "upstream_missed_late_or_mistyped": sorted(upstream_missed),
        "alarm_type_correct_mean": round(float(np.mean(typed)), 4) if typed else None,
        # The severity line as a reader's filter: of the unseen populations' false alarms, the
        # ARL0 of those it reads harmful; of the costly scenarios' detections, the share it
        # reads harmless (what the filter would throw away).
        "harmful_false_alarm_worst_ratio": min((c["harmful_ratio_to_target"] for n, c in result.controls.items()
                                                if n != "deployment" and c.get("harmful_ratio_to_target")), default=None),
        "costly_read_harmless_share": {n: r["severity"]["harmless_share"] for n, r in sorted(costly.items())
                                       if r.get("severity", {}).get("harmless_share") is not None},
        # Where DATA_DRIFT was named mostly from the model's confidence: the share the inputs
        # showed themselves, and whether they were beyond their own no-drift range (z over
        # its p99) when the first alarm came.
        "data_drift_mostly_seen_by_the_model_only": {
            n: {"seen_in_inputs": r["data_drift_seen_in_inputs"],
                "data_z_at_first_alarm_median": r["data_z"]["at_first_alarm_median"],
                "no_drift_p99": r["data_z"]["no_drift_p99"]}
            for n, r in sorted(result.scenarios.items())
            if r.get("expected_alarm") == "DATA_DRIFT" and r.get("data_drift_seen_in_inputs") is not None
            and r["data_drift_seen_in_inputs"] < 0.5 and r.get("data_z")},
        "atc_abs_error_max": round(float(np.max(atc)), 4) if atc else None,
        "atc_within_5_points": bool(atc) and max(atc) <= 0.05,
        "estimate_abs_error_max": round(float(np.max(shown)), 4) if shown else None,
        "estimate_within_5_points": bool(shown) and max(shown) <= 0.05,
        "quiet_microphone_sensor_fault_share": result.scenarios.get("quiet_but_working_microphone", {}).get("sensor_fault_share"),
        "sensor_faults_immediate": all((r["median_delay"] or 1e9) <= 10 for r in result.scenarios.values()
                                       if r["family"] == "sensor"),
        "concept_drift_by_error_rate": {n: r["expected_type"] for n, r in result.scenarios.items() if r["family"] == "concept"},
        # what any detector fed the same labels could do at the same budget
        "concept_drift_delay_bound": {n: _delay_bound(r, result.arl0_target) for n, r in result.scenarios.items()
                                      if r["family"] == "concept"},
    }


def _delay_bound(r: dict, arl0: float) -> dict:
    from tinydrift.monitor.calibrate_feedback import LABEL_SHARE, error_rate_delay_bound

    if r["accuracy_after"] >= r["accuracy_before"]:
        return {}
    bound = error_rate_delay_bound(1 - r["accuracy_before"], 1 - r["accuracy_after"], arl0, LABEL_SHARE)
    return {"label_share": LABEL_SHARE, "kl_per_label": round(bound["kl_per_label"], 4),
            "lorden_asymptotic_inferences": round(bound["lorden_asymptotic_labels"] / LABEL_SHARE),
            "optimal_mean_delay_inferences": round(bound["mean_delay_inferences"]),
            "optimal_median_delay_inferences": round(bound["median_delay_inferences"]),
            "optimal_share_within_200": round(bound["share_found_within"], 4)}


def markdown(result: BenchResult) -> str:
    lines = [f"# Drift benchmark ({'quick' if result.settings['quick'] else 'full'}), model {result.model}", "",
             f"Shipped monitor, ARL0 target {result.arl0_target:,.0f} inferences; empirical on the unseen "
             f"populations together: " + (f"{result.arl0_empirical:,.0f}" if result.arl0_empirical else "no alarm") + ".", "",
             "## No-drift populations the calibration never saw", "",
             "| population | accuracy | inputs a speaker (plant) holds in a row | empirical ARL0 | alarms | x target "
             "| ERROR_RATE's own ARL0, labels for 10 % |",
             "|---|---|---|---|---|---|---|"]
    for name, c in result.controls.items():
        ratio = f"{c['ratio_to_target']:.3f}" if c["ratio_to_target"] is not None else f"> {c['inferences'] / result.arl0_target:.0f}"
        arl0 = f"{c['arl0']:,.0f}" if c["arl0"] is not None else f"> {c['inferences']:,}"
        errors = c.get("error_rate_arl0")
        errors = f"{errors:,.0f} ({c['error_rate_alarms']} alarms)" if errors is not None else "no alarm"
        lines.append(f"| {name} | {c['accuracy']:.3f} | {c['speaker_run']:g} | {arl0} | {c['alarms']} | {ratio} | {errors} |")
    lines += ["", "## Scenarios", "",
              *([f"Left out here: {', '.join(f'{n} ({why})' for n, why in result.skipped.items())}.", ""]
                if result.skipped else []),
              "| scenario | expected | accuracy before -> after | detected | median / p90 delay "
              "| at the comparison's ARL0: ours / best baseline / best no louder on unseen populations "
              "| false alarm before | first alarm of the expected type | expected type: detected, median delay "
              "| ATC after (true) | host estimate after (withheld) | sensor fault |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, r in result.scenarios.items():
        lines.append(
            f"| {name} | {r['expected_alarm'] or 'none'} | {r['accuracy_before']:.3f} -> {r['accuracy_after']:.3f} "
            f"| {r['detected']:.0%} | {_num(r['median_delay'])} / {_num(r['p90_delay'])} | {_num(r.get('compare_median_delay'))} / "
            f"{_num(r.get('best_baseline_median_delay'))} ({r.get('best_baseline') or '-'}) / "
            f"{_num(r.get('best_quiet_baseline_median_delay'))} ({r.get('best_quiet_baseline') or '-'}) "
            f"| {r['false_alarm_before_change']:.0%} "
            f"| {'' if r['alarm_type_correct'] is None else format(r['alarm_type_correct'], '.0%')} "
            f"| {'' if not r['expected_type'] else format(r['expected_type']['detected'], '.0%') + ', ' + str(r['expected_type']['median_delay'])} "
            f"| {r['atc_estimate_after']:.3f} ({r['accuracy_after']:.3f}) | {_num(r.get('estimate_after'))} "
            f"({r.get('estimate_withheld_share', 0):.0%}) | {r['sensor_fault_share']:.0%} |")
    rows = [(n, r["data_z"]) for n, r in result.scenarios.items()
            if r.get("data_z") and r["data_z"]["at_first_alarm_median"] is not None and r["family"] in ("data", "upstream")]
    if rows:
        lines += ["", "## The inputs when the first alarm came", "",
                  "The data score's z (sigma) at each stream's first alarm, against its own 99th percentile on the same "
                  "streams before the change: within it, the inputs looked as they do without drift. Of the first "
                  "alarms naming DATA_DRIFT, the share the inputs showed themselves (the rest: named from the model's "
                  "confidence, which the class mix did not explain).", "",
                  "| scenario | z at the first alarm: median / p90 | no-drift p99 | DATA_DRIFT seen in the inputs |",
                  "|---|---|---|---|"]
        lines += [f"| {n} | {z['at_first_alarm_median']} / {z['at_first_alarm_p90']} | {z['no_drift_p99']} "
                  f"| {_share(result.scenarios[n].get('data_drift_seen_in_inputs'))} |" for n, z in rows]
    lines += _severity_markdown(result)
    if result.comparison:
        lines += ["", f"## At equal ARL0 ({result.comparison['arl0']:,.0f}): median delay per detector", ""]
        names = result.comparison["detectors"]
        lines.append("| scenario | " + " | ".join(names) + " |")
        lines.append("|---|" + "---|" * len(names))
        for scen, row in result.comparison["scenarios"].items():
            cells = []
            for d in names:
                cell = row["detectors"].get(d, {})
                cells.append(f"{cell.get('median_delay')} ({cell.get('detected', 0):.0%})")
            lines.append(f"| {scen} | " + " | ".join(cells) + " |")
        unseen = result.comparison.get("controls", {}).get("detectors", {})
        lines += ["", "| detector | input | empirical ARL0 on the calibration pool | on the unseen populations: "
                  "together, the worst one x the target | state (floats/bytes) | ops per inference |",
                  "|---|---|---|---|---|---|"]
        for d, info in result.comparison["cost"].items():
            u = unseen.get(d)
            cell = "-" if u is None else f"{_num(u['arl0'])}, x{u['worst_ratio']}"
            lines.append(f"| {d} | {info['input']} | {info.get('arl0')} | {cell} | {info['state']} | {info['ops']} |")
    lines += ["", "## Targets", "", "```", json.dumps(result.targets, indent=1), "```", ""]
    return "\n".join(lines)


def _severity_markdown(result: BenchResult) -> list[str]:
    """Each alarm's severity line, read SEVERITY_READ_AFTER inferences after it: on the
    controls, how many false alarms it calls harmful; on the scenarios, how many detections."""
    rows = [(n, c) for n, c in result.controls.items() if c.get("severity", {}).get("lines")]
    rows += [(n, r) for n, r in result.scenarios.items() if r.get("severity", {}).get("lines")]
    if not rows:
        return []
    out = ["", f"## The severity line, {SEVERITY_READ_AFTER} inferences after each alarm", "",
           f"The estimated accuracy then against the device's just before its estimated change point; harmful: a "
           f"loss of {HARMLESS_POINTS:g} points or more that the line calls an impact (beyond the 95 % sampling error "
           f"of the answers since the alarm), or withheld under a sensor fault; too few to tell: a change of "
           f"{HARMLESS_POINTS:g} points or more within that error. Beside it the true "
           f"accuracy over the inferences after the alarm against the {SeverityLines.TRUTH_BEFORE} before the change "
           f"point. On a population that must not alarm, the lines of its false alarms and the ARL0 of those read "
           f"harmful (x the target); on a scenario, of each stream's first detection.", "",
           "| population or scenario | lines read | read harmful | too few to tell | median points "
           "| true accuracy: fell 2 points or more | median points | harmful false alarms' ARL0 x target |",
           "|---|---|---|---|---|---|---|---|"]
    for name, r in rows:
        line = r["severity"]
        if name in result.controls:
            ratio = r.get("harmful_ratio_to_target")
            ratio = format(ratio, ".3f") if ratio is not None else f"> {r['inferences'] / result.arl0_target:.0f}"
        else:
            ratio = ""
        out.append(f"| {name} | {line['lines']} | {_share(line['harmful_share'])} | {_share(line['unclear_share'])} "
                   f"| {_points(line['median_points'])} "
                   f"| {_share(line['true_loss_share'])} | {_points(line['true_median_points'])} | {ratio} |")
    return out


def _num(value) -> str:
    return "-" if value is None else f"{value:.0f}"


def _points(value) -> str:
    return "-" if value is None else f"{value:+.1f}"


def _share(value) -> str:
    return "-" if value is None else f"{value:.0%}"


def write_outputs(result: BenchResult, out_dir: Path) -> list[Path]:
    out_dir = Path(out_dir)
    paths = [out_dir / "drift_bench.json", out_dir / "drift_bench.md"]
    write_text(paths[0], json.dumps(jsonable(result.to_json()), indent=1))
    write_text(paths[1], markdown(result))
    return paths
