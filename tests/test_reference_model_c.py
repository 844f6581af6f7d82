"""The committed reference model's generated C equals TFLite Micro on over 1,000 inputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tinydrift.target.host_model import run_generated_model
from tinydrift.frontend import CLIP_SAMPLES, features_int8
from tinydrift.model.runtimes import run_tflm

from conftest import FSDD, REPO_ROOT, SPEECH_COMMANDS

MODEL = REPO_ROOT / "models" / "kws" / "model_int8.tflite"


def real_features(limit_fsdd: int = 300) -> np.ndarray:
    """Features of the real recordings beside the repo (none when they are absent)."""
    from tinydrift.data.wavfolder import load_fsdd, load_speech_commands

    clips = []
    if SPEECH_COMMANDS.exists():
        clips.append(load_speech_commands(SPEECH_COMMANDS).audio)
    if FSDD.exists():
        clips.append(load_fsdd(FSDD).audio[::10][:limit_fsdd])
    if not clips:
        return np.zeros((0, 49, 40), np.int8)
    return np.stack([features_int8(c) for c in np.concatenate(clips)])


def synthetic_features(n: int, rng: np.random.Generator) -> np.ndarray:
    """Noise at levels from near silence to clipping, through the real front end."""
    levels = np.geomspace(3, 30000, n)
    pcm = np.clip(rng.standard_normal((n, CLIP_SAMPLES)) * levels[:, None], -32768, 32767).astype(np.int16)
    return np.stack([features_int8(p) for p in pcm])


@pytest.mark.slow  # 22 s; test_model_codegen checks 1,000 inputs of the project model in the default tier
@pytest.mark.skipif(not MODEL.is_file(), reason="models/kws has no int8 model")
def test_reference_model_c_equals_tflite_micro_on_real_and_random_inputs():
    model = MODEL.read_bytes()
    rng = np.random.default_rng(2026)
    real = real_features()
    inputs = np.concatenate([
        real,
        synthetic_features(1000 - 500 - len(real) if len(real) < 500 else 50, rng),
        rng.integers(-128, 128, (498, 49, 40), dtype=np.int16).astype(np.int8),
        np.full((1, 49, 40), -128, np.int8),
        np.full((1, 49, 40), 127, np.int8),
    ])
    assert len(inputs) >= 1000
    ours = run_generated_model(model, inputs)
    expected = run_tflm(model, inputs)
    assert ours.shape == expected.shape == (len(inputs), 12)
    mismatches = int((ours != expected).sum())
    assert mismatches == 0, f"{mismatches} of {expected.size} output values differ"
    # The inputs exercise the model: most of them give an output vector of their own.
    assert len({row.tobytes() for row in expected}) > len(inputs) // 2
