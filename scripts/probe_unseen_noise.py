#!/usr/bin/env python3
"""Issue 9, upstream changes the drift bench never had: noises of other colours, hum, tones,
music, coarser samples, another speed. How soon does the shipped keyword monitor report
them, with its quiet-level limit and without it (the same config, quiet_limit 0)? None of
these took part in choosing or calibrating anything: the limit's level comes from the
export's `ref` split alone.

    PYTHONPATH=host .venv/bin/python scripts/probe_unseen_noise.py --work DIR [--model-dir models/kws]

The quick bench's streams (100 of 500 deployment inferences, then 1,000 changed ones), its
pools cached in DIR/pools (the deployment pool is the bench's: copy a bench's OUT/pools
there to skip making it). Writes DIR/unseen_noise_probe.json
(docs/figures/unseen_noise_probe.json): per change, the accuracy it costs, and for each
monitor the share of streams that alarmed after the change, the median delay and the alarm
types; beside them the fastest of the bench's baselines at its lower ARL0.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import numpy as np
from scipy.signal import butter, lfilter, resample, sosfilt

import tinydrift.pipeline.drift_bench as bench
from tinydrift import atomic
from tinydrift.data import scenarios as sc
from tinydrift.frontend import SAMPLE_RATE
from tinydrift.pipeline.drift_pools import BenchSettings


def _mixed(pcm, noise, snr_db):
    """pcm with `noise` added at snr_db below each clip's own level."""
    x = pcm.astype(np.float64)
    return sc._to_int16(x + noise / sc._rms(noise) * sc._rms(x) * 10 ** (-snr_db / 20))


def coloured(exponent):
    """Noise whose power falls as 1 / f^exponent (1: pink, 2: brown)."""
    def transform(pcm, rng, snr_db):
        n = pcm.shape[-1]
        spectrum = np.fft.rfft(rng.standard_normal(pcm.shape), axis=-1)
        f = np.fft.rfftfreq(n, 1 / SAMPLE_RATE)
        f[0] = f[1]
        return _mixed(pcm, np.fft.irfft(spectrum * f ** (-exponent / 2), n, axis=-1), snr_db)
    return transform


def filtered_noise(kind, hz):
    def transform(pcm, rng, snr_db):
        sos = butter(4, hz, kind, fs=SAMPLE_RATE, output="sos")
        return _mixed(pcm, sosfilt(sos, rng.standard_normal(pcm.shape), axis=-1), snr_db)
    return transform


def hum(pcm, rng, snr_db):
    """Mains hum: 50 Hz and its harmonics."""
    t = np.arange(pcm.shape[-1]) / SAMPLE_RATE
    phase = rng.uniform(0, 2 * np.pi, (len(pcm), 1))
    return _mixed(pcm, sum(np.sin(2 * np.pi * 50 * k * t + k * phase) / k for k in range(1, 6)), snr_db)


def beep(pcm, rng, snr_db):
    t = np.arange(pcm.shape[-1]) / SAMPLE_RATE
    return _mixed(pcm, np.sin(2 * np.pi * 1000 * t + rng.uniform(0, 2 * np.pi, (len(pcm), 1))), snr_db)


def music(pcm, rng, snr_db):
    """Three sustained notes per clip, swelling at 2 Hz."""
    t = np.arange(pcm.shape[-1]) / SAMPLE_RATE
    notes = 220 * 2 ** (rng.integers(0, 24, (len(pcm), 3)) / 12)
    return _mixed(pcm, sum(np.sin(2 * np.pi * notes[:, i:i + 1] * t) * (1 + 0.5 * np.sin(2 * np.pi * 2 * t + i))
                           for i in range(3)), snr_db)


def bursts(pcm, rng, snr_db):
    """White noise in half of the clips (a machine going on and off)."""
    on = rng.random((len(pcm), 1)) < 0.5
    return np.where(on, _mixed(pcm, rng.standard_normal(pcm.shape), snr_db), pcm).astype(np.int16)


def fewer_bits(pcm, rng, bits):
    step = 1 << (16 - int(bits))
    return (np.floor_divide(pcm.astype(np.int32), step) * step).astype(np.int16)


def speed(pcm, rng, factor):
    """Played faster or slower (another sample rate taken for 16 kHz), cut to length or, when
    faster, made up to it by the clip's own end played backwards (not digital silence)."""
    n = pcm.shape[-1]
    y = resample(pcm.astype(np.float64), int(round(n / factor)), axis=-1)
    if y.shape[-1] < n:
        y = np.pad(y, ((0, 0), (0, n - y.shape[-1])), mode="reflect")
    return sc._to_int16(y[:, :n])


def peak(pcm, rng, db):
    """A resonant microphone: +db at 3 kHz (RBJ peaking EQ, Q 1)."""
    a, w0 = 10 ** (db / 40), 2 * np.pi * 3000 / SAMPLE_RATE
    alpha = np.sin(w0) / 2
    num = [1 + alpha * a, -2 * np.cos(w0), 1 - alpha * a]
    den = [1 + alpha / a, -2 * np.cos(w0), 1 - alpha / a]
    return sc._to_int16(lfilter(num, den, pcm.astype(np.float64), axis=-1))


TRANSFORMS = {"pink": coloured(1.0), "brown": coloured(2.0), "fan": filtered_noise("lowpass", 800),
              "band": filtered_noise("bandpass", [1000, 4000]), "hum": hum, "beep": beep, "music": music,
              "bursts": bursts, "bits": fewer_bits, "speed": speed, "peak": peak}
CHANGES = [sc.Scenario(name, "upstream", "DATA_DRIFT", transform=kind, severity=level) for name, kind, level in (
    ("pink_noise_20db", "pink", 20.0), ("pink_noise_10db", "pink", 10.0), ("pink_noise_0db", "pink", 0.0),
    ("brown_noise_10db", "brown", 10.0), ("brown_noise_5db", "brown", 5.0),
    ("fan_noise_10db", "fan", 10.0), ("fan_noise_0db", "fan", 0.0), ("band_noise_1k_4k_10db", "band", 10.0),
    ("hum_50hz_10db", "hum", 10.0), ("beep_1khz_10db", "beep", 10.0), ("music_10db", "music", 10.0),
    ("noise_bursts_5db", "bursts", 5.0), ("samples_8_bits", "bits", 8), ("speed_x0_9", "speed", 0.9),
    ("speed_x1_1", "speed", 1.1), ("resonance_3khz_10db", "peak", 10.0))]


def run(model_dir: Path, work: Path, quiet_limit: int | None, baselines: bool):
    """The quick bench on CHANGES, with the folder's config (quiet_limit None) or with its
    quiet limit set to this."""
    load = bench.load_exported

    def exported(path):
        folder, model, config = load(path)
        return folder, model, config if quiet_limit is None else dataclasses.replace(config, quiet_limit=quiet_limit)

    bench.load_exported = exported
    try:
        return bench.run_drift_bench(model_dir, BenchSettings.make(True), cache=work / "pools", log=print,
                                     baselines=baselines, only=tuple(s.name for s in CHANGES))
    finally:
        bench.load_exported = load


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--model-dir", type=Path, default=Path("models/kws"))
    args = parser.parse_args()
    sc.TRANSFORMS.update(TRANSFORMS)
    bench.SCENARIOS = tuple(bench.SCENARIOS) + tuple(CHANGES)
    shipped = run(args.model_dir, args.work, None, baselines=True)
    without = run(args.model_dir, args.work, 0, baselines=False)

    def outcome(row):
        return {"detected": row["detected"], "median_delay": row["median_delay"], "alarm_types": row["alarm_types"]}

    result = {"model": str(args.model_dir), "settings": shipped.settings, "scenarios": {
        name: {"accuracy_drop": row["accuracy_drop"], "with_quiet_limit": outcome(row),
               "without_quiet_limit": outcome(without.scenarios[name]), "best_baseline": row["best_baseline"],
               "best_baseline_median_delay": row["best_baseline_median_delay"]}
        for name, row in shipped.scenarios.items()}}
    path = args.work / "unseen_noise_probe.json"
    atomic.write_text(path, json.dumps(result, indent=1))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
