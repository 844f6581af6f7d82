#!/usr/bin/env python3
"""Issue 9, alarm typing: would a drift score on the keyword model's pooled features (the
64 values its last fully-connected layer reads) type accent, pitch, babble, reverb and
white-noise drifts DATA_DRIFT before CONFIDENCE_DRIFT latches? A host-only prototype: no
firmware changes; the generated model C (bit-exact with TFLite Micro) with the pooled tensor
copied out after AVERAGE_POOL_2D, and the monitor's own twin and calibration.

    PYTHONPATH=host .venv/bin/python scripts/probe_embedding_typing.py STEP [ARGS] --work DIR

Steps (results in DIR; the bench pools of `tinydrift bench drift --quick` under
build/bench/drift/pools are reused, the pooled ones cached in DIR/pools):
  calibrate NAME OPTIONS  export's calibration (ref split, ARL0 target in OPTIONS) on the
                          pooled features ("source": "pooled") or the input summary
                          ("input"); OPTIONS also go to build_config (e.g. enabled_scores,
                          whiten, mean_shift); checked on the test split
  bench NAME              the quick bench (no baselines) with the pooled features as THE
                          input summary
  combo NAME_A NAME_B     a sixth score, emulated: the monitor A on the input summary beside
                          the monitor B on the pooled features (its DATA_DRIFT only), one
                          alarm = the first of either, both reset on either
  separation              per pool, the mean shift from the ref split (RMS over channels of
                          the standardized mean) for the input summary and pooled features
  collect OUT NAME...     the bench, combos, calibrations and separation above in one JSON
                          (docs/figures/embedding_typing_probe.json)
Measured and written down in docs/drift-bench.md ("The model's pooled features").
"""
from __future__ import annotations

import ctypes
import json
import re
import shutil
import argparse
import sys
from pathlib import Path

import numpy as np

from tinydrift import atomic, firmware
from tinydrift.codegen.model_c import generate_model_c, plan_model

EXP = Path("build/probe_embedding")  # --work
BENCH_POOLS = Path("build/bench/drift/pools")
DATA = Path("build/data/kws")
MODEL = Path("models/kws")
POOLED = 64


def pooled_runner(tflite: bytes):
    header, source = generate_model_c(tflite, "emb", preserve_input=True)
    m = re.search(r"td_avg_pool_s8\(&(op\d+)_params, \(arena \+ \d+\), \(arena \+ (\d+)\)\);", source)
    assert m, "no AVERAGE_POOL_2D"
    source = source.replace(m.group(0), m.group(0) + f"\n    memcpy(td_emb_pooled, arena + {m.group(2)}, {POOLED});")
    source = source.replace("static int8_t arena[", f"int8_t td_emb_pooled[{POOLED}];\nstatic int8_t arena[", 1)
    if "#include <string.h>" not in source:
        source = "#include <string.h>\n" + source
    out = EXP / "c"
    atomic.write_text(out / "td_model_emb.h", header)
    atomic.write_text(out / "td_model_emb.c", source)
    atomic.write_text(out / "run_emb.c", """#include <string.h>
#include "td_model_emb.h"
extern int8_t td_emb_pooled[64];
int td_emb_run_pooled(int count, const int8_t *in, int8_t *out, int8_t *pooled);
int td_emb_run_pooled(int count, const int8_t *in, int8_t *out, int8_t *pooled) {
    for (int i = 0; i < count; ++i) {
        memcpy(td_emb_input(), in + (size_t)i * TD_EMB_INPUT_SIZE, TD_EMB_INPUT_SIZE);
        if (td_emb_invoke() != 0) return 1;
        memcpy(out + (size_t)i * TD_EMB_OUTPUT_SIZE, td_emb_output(), TD_EMB_OUTPUT_SIZE);
        memcpy(pooled + (size_t)i * 64, td_emb_pooled, 64);
    }
    return 0;
}
""")
    lib = firmware.compile_host([out / "td_model_emb.c", out / "run_emb.c"] + firmware.stage_sources("kernels"),
                                include_dirs=[*firmware.include_dirs(), out], optimize="-O3")
    lib = ctypes.CDLL(str(lib))

    def run(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x = np.ascontiguousarray(np.asarray(features, np.int8).reshape(len(features), -1))
        probs = np.zeros((len(x), 12), np.int8)
        pooled = np.zeros((len(x), POOLED), np.int8)
        p = ctypes.POINTER(ctypes.c_int8)
        assert lib.td_emb_run_pooled(len(x), x.ctypes.data_as(p), probs.ctypes.data_as(p), pooled.ctypes.data_as(p)) == 0
        return probs, pooled
    return run


def embed_summary(pooled: np.ndarray) -> np.ndarray:
    return (pooled.astype(np.int16) << 7).astype(np.int16)


def patch_pools(run):
    """PoolMaker.pool computing pooled summaries (same clips, same probs)."""
    from tinydrift.pipeline import drift_pools
    from tinydrift.pipeline.drift_pools import Pool, sensor_stats

    def pool(self, name, clips, cache_name):
        path = self.cache / f"pool-{cache_name}.npz"
        if path.is_file():
            return Pool.load(name, path)
        clips = clips()
        features = clips.ensure_features()
        probs, pooled = run(features)
        p = Pool(name, embed_summary(pooled), probs, clips.labels.astype(np.int64),
                 np.asarray(clips.domain["group"], dtype=np.int64), sensor_stats(clips.audio, int(self.config.clip_level)))
        p.save(path)
        return p
    drift_pools.PoolMaker.pool = pool


def calibrate(run, out_dir: Path, source="pooled", target=100_000, **options):
    from tinydrift.data.clipset import ClipSet
    from tinydrift.monitor.calibrate import calibrate_thresholds, measure_arl0
    from tinydrift.monitor.config import MonitorConfig, jsonable
    from tinydrift.modeldir import ModelDir
    from tinydrift.pipeline.export import DEFAULT_DATA_SESSION

    shipped = MonitorConfig.of_model(ModelDir(MODEL))
    data = {}
    for split in ("ref", "test"):
        clips = ClipSet.load(DATA / f"{split}.npz")
        probs, pooled = run(clips.features)
        from tinydrift.monitor.twin import summarize_frames
        summary = embed_summary(pooled) if source == "pooled" else summarize_frames(clips.features)
        data[split] = dict(summaries=summary, probs=probs, groups=np.asarray(clips.domain["group"], np.int64),
                           labels=clips.labels.astype(np.int64))
    ref = data["ref"]
    config, report = calibrate_thresholds(ref["summaries"], ref["probs"], ref["groups"], ref["labels"],
                                          target_arl0=target, winsorize_sigma=(None, None, 2.0, 2.0, None),
                                          commission_n=shipped.commission_n, data_session_length=DEFAULT_DATA_SESSION,
                                          min_samples=2000, **options)
    # label feedback and sensor health as shipped (they read neither summary)
    keep = {f: getattr(shipped, f) for f in ("ddm_min_labels", "ddm_warning_q8", "ddm_drift_q8", "clip_level",
                                             "clip_rate_q16", "dc_level", "stuck_variance", "silence_variance",
                                             "persist_blocks", "clip_drift_q16", "clip_drift_blocks")
            if hasattr(shipped, f)}
    config = config.replace(**keep).validate()
    test = data["test"]
    arl = measure_arl0(config, test["summaries"], test["probs"], test["groups"], n_inferences=3_000_000)
    print("test-split ARL0", {k: arl[k] for k in ("arl0", "alarms", "by_type")}, flush=True)
    if out_dir.exists():
        shutil.rmtree(out_dir)
    shutil.copytree(MODEL, out_dir)
    reference = json.loads((out_dir / "reference.json").read_text())
    reference["monitor_config"] = jsonable(config.to_dict())
    if source == "pooled":
        reference["input_summary"] = {"kind": "pooled", "length": POOLED}
    (out_dir / "reference.json").write_text(json.dumps(reference, indent=1))
    return config, report, arl


def bench(model_dir: Path, cache: Path, out: Path):
    from tinydrift.pipeline.drift_bench import bench_settings, run_drift_bench, write_outputs
    settings = bench_settings(model_dir, True)
    result = run_drift_bench(model_dir, settings, cache=cache, baselines=False)
    write_outputs(result, out)
    return result


# ---------------------------------------------------------------- a sixth score, emulated
# The shipped monitor (A, input summary) beside a mean-score-only monitor on the pooled
# features (B); one alarm = the first of either, both reset on either (as one device would).

def joint_arl0(configs, pools, n_inferences, seed, block_length):
    import math
    from tinydrift.monitor.calibrate import calibrated_block_length
    from tinydrift.monitor.streams import bootstrap_indices
    from tinydrift.monitor.twin import MonitorTwin
    from tinydrift.monitor.config import ALARM_TYPES_MASK
    length = min(10_000, n_inferences)
    n_streams = max(1, int(math.ceil(n_inferences / length)))
    rng = np.random.default_rng(seed)
    indices = bootstrap_indices(pools[0].groups, n_streams, length, rng,
                                block_length=calibrated_block_length(configs[0], block_length))
    twins = [MonitorTwin(c, n_streams) for c in configs]
    prepared = [t.per_sample(p.summaries, p.probs) for t, p in zip(twins, pools)]
    by = np.zeros((len(configs), 5), np.int64)
    alarms = 0
    for s in range(length):
        rows = indices[:, s]
        words = [t.update(None, None, full=False, sample={k: v[rows] for k, v in pr.items()})["alarms"] & ALARM_TYPES_MASK
                 for t, pr in zip(twins, prepared)]
        fired = np.zeros(n_streams, bool)
        for w in words:
            fired |= w != 0
        if fired.any():
            alarms += int(fired.sum())
            for i, w in enumerate(words):
                for bit in range(5):
                    by[i, bit] += int(np.sum(((w >> bit) & 1)[fired]))
            for t in twins:
                t.reset(fired)
    total = n_streams * length
    return {"arl0": total / alarms if alarms else None, "alarms": alarms, "inferences": total,
            "by_type_input": by[0].tolist(), "by_type_embedding": by[1].tolist()}


def combo(name_a: str, name_b: str, out: Path):
    from tinydrift.data.scenarios import SCENARIOS, Scenario
    from tinydrift.monitor.calibrate import calibrated_block_length
    from tinydrift.pipeline.drift_bench import bench_settings, summarize_detection
    from tinydrift.pipeline.drift_pools import PoolMaker, make_streams, run_monitor, zlib_name
    from tinydrift.pipeline.export import load_exported

    dirs = [EXP / name_a, EXP / name_b]
    loaded = [load_exported(d) for d in dirs]
    configs = [c for _, _, c in loaded]
    model = loaded[0][1]
    settings = bench_settings(dirs[0], True)
    block_length = calibrated_block_length(configs[0], "calibration")
    import tinydrift.pipeline.drift_pools as dp
    original_pool = dp.PoolMaker.pool
    makers = [PoolMaker(model, configs[0], BENCH_POOLS, settings, print)]
    patch_pools(pooled_runner(model))
    makers.append(PoolMaker(model, configs[1], EXP / "pools", settings, print))
    # maker 0 must keep the input-summary pools: bind the original method to it
    makers[0].pool = original_pool.__get__(makers[0])
    result = {"controls": {}, "scenarios": {}}
    for s in [s for s in SCENARIOS if s.family == "control" and s.transform is None] + [Scenario("deployment", "control", None)]:
        pools = [m.control_pool(s) for m in makers]
        result["controls"][s.name] = joint_arl0(configs, pools, settings.arl_inferences, zlib_name(s.name), "calibration")
        print("control", s.name, result["controls"][s.name], flush=True)
    deps = [m.deployment() for m in makers]
    for s in SCENARIOS:
        if s.family == "control" and s.transform is None:
            continue
        drifted = [m.scenario_pool(s) for m in makers]
        streams = make_streams(s, deps[0], drifted[0], settings, settings.n_streams, block_length, settings.seed)
        runs = [run_monitor(c, streams, d, p) for c, d, p in zip(configs, deps, drifted)]
        a, b = runs
        b_first = b["by_type"][:, 0]
        use_b = (b_first > 0) & ((a["first"] == 0) | (b_first < a["first"]))
        tie = (b_first > 0) & (b_first == a["first"])
        first = np.where(use_b, b_first, a["first"])
        word = np.where(use_b, 1, a["word"] | np.where(tie, 1, 0))
        by_type = a["by_type"].copy()
        by_type[:, 0] = np.where((by_type[:, 0] == 0) | ((b_first > 0) & (b_first < by_type[:, 0])), b_first, by_type[:, 0])
        joint = dict(a, first=first, word=word, by_type=by_type)
        r = summarize_detection(s, joint, settings.before, deps[0], drifted[0])
        r["input_only"] = summarize_detection(s, a, settings.before, deps[0], drifted[0])["median_delay"]
        r["embedding_data_drift"] = {"detected": float((b_first > settings.before).mean()),
                                     "median_delay": float(np.median(b_first[b_first > settings.before] - settings.before))
                                     if (b_first > settings.before).any() else None,
                                     "false_alarm_before": float(((b_first > 0) & (b_first <= settings.before)).mean())}
        result["scenarios"][s.name] = r
        print(f"{s.name}: det {r['detected']:.2f} median {r['median_delay']} (input-only monitor {r['input_only']}) "
              f"type right {r['alarm_type_correct']} {r['alarm_types']} emb {r['embedding_data_drift']}", flush=True)
    typed = [r["alarm_type_correct"] for r in result["scenarios"].values() if r["alarm_type_correct"] is not None and r["detected"] > 0]
    result["alarm_type_correct_mean"] = float(np.mean(typed))
    print("type right mean", result["alarm_type_correct_mean"])
    out.write_text(json.dumps(result, indent=1, default=str))


def pool_dir(root: Path) -> Path:
    """The one model-keyed folder of pools under a bench cache."""
    if not root.is_dir():
        raise SystemExit(f"{root}: no bench pools; run `tinydrift bench drift --quick` first")
    found = [p for p in root.iterdir() if p.is_dir() and p.name != "populations"]
    if len(found) != 1:
        raise SystemExit(f"{root}: expected one folder of pools, found {len(found)}")
    return found[0]


def separation(run) -> dict:
    """Per pool, (mean shift, median single-speaker mean shift) for both summaries, in
    reference standard deviations: RMS over channels of the standardized pool mean."""
    import glob
    import os
    from tinydrift.data.clipset import ClipSet
    from tinydrift.monitor.twin import summarize_frames
    ref = ClipSet.load(DATA / "ref.npz")
    _, pooled = run(ref.features)
    refs = {"input": summarize_frames(ref.features).astype(float), "pooled": embed_summary(pooled).astype(float)}
    stats = {k: (v.mean(0), np.maximum(v.std(0), 1.0)) for k, v in refs.items()}
    dirs = {"input": str(pool_dir(BENCH_POOLS)), "pooled": str(pool_dir(EXP / "pools"))}
    rows = {}
    for kind, d in dirs.items():
        mu, sd = stats[kind]
        for path in sorted(glob.glob(d + "/pool-*.npz")):
            name = os.path.basename(path)[5:-4]
            z = np.load(path)
            x = (z["summaries"] - mu) / sd
            shift = float(np.sqrt(np.mean(x.mean(0) ** 2)))
            g = z["groups"]
            per_speaker = [np.sqrt(np.mean(x[g == s].mean(0) ** 2)) for s in np.unique(g) if (g == s).sum() >= 10]
            rows.setdefault(name, {})[kind] = (shift, float(np.median(per_speaker)) if per_speaker else float("nan"))
    print(f"{'pool':38s} {'input shift':>11s} {'(1 speaker)':>11s} {'pooled shift':>12s} {'(1 speaker)':>11s}")
    for name, r in rows.items():
        if "input" in r and "pooled" in r:
            print(f"{name:38s} {r['input'][0]:11.2f} {r['input'][1]:11.2f} {r['pooled'][0]:12.2f} {r['pooled'][1]:11.2f}")
    return rows


def collect(out: Path, names: list[str]) -> None:
    """One JSON of what the steps wrote: per scenario the median delay, the share of
    detections typed right and the types; per control the ARL0 and its alarms by type."""
    def scenario_rows(scenarios: dict, extra=()) -> dict:
        return {n: {"median_delay": r["median_delay"], "detected": r["detected"],
                    "alarm_type_correct": r["alarm_type_correct"], "alarm_types": r["alarm_types"],
                    **{k: r[k] for k in extra if k in r}} for n, r in scenarios.items()}

    result = {"separation": json.loads((EXP / "separation.json").read_text()), "calibrations": {}, "runs": {}}
    for name in names:
        calibration = EXP / f"{name}.calibration.json"
        if calibration.is_file():
            c = json.loads(calibration.read_text())
            mean = c["report"]["scores"]["mean"]
            result["calibrations"][name] = {"target_arl0": c["report"]["target_arl0"],
                                            "mean_drift_sigma": mean["drift_sigma"], "mean_limit_sigma": mean["limit_sigma"],
                                            "test_split_arl0": c["arl0_test"]["arl0"], "test_split_alarms": c["arl0_test"]["alarms"],
                                            "test_split_inferences": c["arl0_test"]["inferences"]}
        bench_json = EXP / f"bench-{name}" / "drift_bench.json"
        if bench_json.is_file():
            b = json.loads(bench_json.read_text())
            result["runs"][name] = {"alarm_type_correct_mean": b["targets"]["alarm_type_correct_mean"],
                                    "controls": {n: {"arl0": c["arl0"], "by_type": c["by_type"]} for n, c in b["controls"].items()},
                                    "scenarios": scenario_rows(b["scenarios"])}
    for combo_json in sorted(EXP.glob("combo-*.json")):
        c = json.loads(combo_json.read_text())
        result["runs"][combo_json.stem] = {"alarm_type_correct_mean": c["alarm_type_correct_mean"], "controls": c["controls"],
                                           "scenarios": scenario_rows(c["scenarios"], ("input_only", "embedding_data_drift"))}
    from tinydrift.monitor.config import jsonable
    out.write_text(json.dumps(jsonable(result), indent=1) + "\n")


def main() -> None:
    global EXP
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("step", choices=("check", "calibrate", "bench", "combo", "separation", "collect"))
    parser.add_argument("args", nargs="*")
    parser.add_argument("--work", type=Path, default=EXP)
    options = parser.parse_args()
    EXP = options.work
    pool_dir(BENCH_POOLS)
    (EXP / "pools").mkdir(parents=True, exist_ok=True)
    if not (EXP / "pools" / "populations").exists():  # the synthesized audio, shared
        (EXP / "pools" / "populations").symlink_to((BENCH_POOLS / "populations").resolve())
    tflite = (MODEL / "model_int8.tflite").read_bytes()
    run = pooled_runner(tflite)
    step, args = options.step, options.args
    if step == "check":  # the copied-out model still gives the bench pools' outputs
        from tinydrift.pipeline.drift_pools import Pool
        pools = pool_dir(BENCH_POOLS)
        deployment = sorted((BENCH_POOLS / "populations").glob("deployment-25-*.npz"))[0]
        from tinydrift.data.clipset import ClipSet
        probs, pooled = run(ClipSet.load(deployment).features)
        same = np.array_equal(probs, Pool.load("deployment", pools / "pool-deployment-25.npz").probs)
        print("outputs equal to the bench pool's:", same, "pooled range", pooled.min(), pooled.max())
    elif step == "calibrate":
        config_options = json.loads(args[1]) if len(args) > 1 else {}
        _, report, arl = calibrate(run, EXP / args[0], **config_options)
        (EXP / f"{args[0]}.calibration.json").write_text(json.dumps({"report": report, "arl0_test": arl}, default=str, indent=1))
    elif step == "combo":
        combo(args[0], args[1], EXP / f"combo-{args[0]}-{args[1]}.json")
    elif step == "bench":
        patch_pools(run)
        bench(EXP / args[0], EXP / "pools", EXP / f"bench-{args[0]}")
    elif step == "separation":
        rows = separation(run)
        (EXP / "separation.json").write_text(json.dumps(rows, indent=1))
    elif step == "collect":
        collect(Path(args[0]), args[1:])


if __name__ == "__main__":
    main()
