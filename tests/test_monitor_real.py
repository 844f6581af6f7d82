"""The monitor on real speech: Speech Commands clips through the project's front end, their
per-channel summaries computed by the C and by the twin, and the monitor run on streams
of them (speaker by speaker) with a config built from them, C against twin."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import pytest

from tinydrift.monitor import synthetic
from tinydrift.target.host_monitor import CMonitor
from tinydrift.monitor.reference import build_config, reference_stats
from tinydrift.monitor.twin import run_events, summarize_frames

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "speech_commands_v0.01_subset"


def load_clips():
    files = sorted(DATA.glob("*/*.wav"))
    if len(files) < 100:
        pytest.skip(f"real speech not found in {DATA}")
    from tinydrift.frontend.features import CLIP_SAMPLES, features_int8

    features, speakers = [], []
    for path in files:
        with wave.open(str(path)) as w:
            pcm = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)
        pcm = np.pad(pcm, (0, max(0, CLIP_SAMPLES - len(pcm))))[:CLIP_SAMPLES]
        features.append(features_int8(pcm))
        speakers.append(path.name.split("_")[0])
    return np.stack(features), np.unique(speakers, return_inverse=True)[1]


def test_real_speech_summaries_and_streams_are_bit_exact():
    features, speakers = load_clips()
    rng = np.random.default_rng(0)
    summaries = summarize_frames(features)
    # Outputs of a model that does not exist yet: softmax-like int8 vectors.
    probs = synthetic.softmax_like_probs(rng, len(summaries), 12)
    # Few clips: the reference here is for the arithmetic, not a calibrated monitor.
    config = build_config(reference_stats(summaries, probs, min_samples=0), whiten=True)
    config = config.replace(
        score_offset=[int(4096 * 40 / 63), 2000, 200, 40000, 500],
        score_gain_q16=[30000, 30000, -400000, 8000, 30000],
        score_warning=[40000] * 5,
        score_drift=[200000] * 5,
        moved_mean_level=3000,
        moved_var_level=6000,
    )
    monitor = CMonitor(config)
    assert np.array_equal(monitor.summarize(features), summaries)
    assert np.abs(summaries).max() <= 128 * 128
    # Streams of whole speakers, as a device would hear them, several passes.
    order = np.concatenate([np.flatnonzero(speakers == s) for s in rng.permutation(speakers.max() + 1) for _ in range(3)])
    order = np.concatenate([order, rng.permutation(len(summaries))])
    events = np.stack([np.zeros(len(order)), order, np.zeros(len(order))], axis=1).astype(np.int64)
    c_rows = monitor.run_events(events, summaries, probs)
    twin_rows = run_events(config, events, summaries, probs)
    assert np.array_equal(c_rows, twin_rows), int(np.sum((c_rows != twin_rows).any(axis=1)))
    assert (c_rows[:, 12:17] > 0).any()  # the CUSUMs moved on real inputs
