"""Test helper: realistic input streams for the microWakeWord models, cached under
build/test_data/.

espeak-ng speaks the four wake words and other phrases (voices, pitch, speed and level vary;
noise, silence and loud stretches between them); pymicro-features (the micro_speech front
end that pymicro-wakeword feeds its models with: 30 ms windows, 10 ms steps, 40 channels)
turns the audio into features, quantized the way pymicro-wakeword quantizes them. Three
frames make one model input.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
CACHE_DIR = REPO_ROOT / "build" / "test_data" / "wakeword"
SESSIONS_DIR = REPO_ROOT / "build" / "test_data" / "wakeword_sessions"  # espeak-ng reference sessions
HELPER_VERSION = "1"

SAMPLE_RATE = 16000
FRAME_SAMPLES = 160  # 10 ms
FRAMES_PER_INVOKE = 3
CHANNELS = 40
PHRASES = ("okay nabu", "alexa", "hey jarvis", "hey mycroft", "okay", "hey there", "turn on the kitchen light",
           "what time is it", "alex", "nabucco")


def _stream_audio(seconds: float, seed: int) -> np.ndarray:
    """int16 PCM: phrases and gaps of noise or silence until `seconds` are filled."""
    from tinydrift.data.synth import ACCENT_VOICES, ENGLISH_VOICES, espeak_variants, speak

    rng = np.random.default_rng(seed)
    voices, variants = ENGLISH_VOICES + ACCENT_VOICES, espeak_variants()
    parts: list[np.ndarray] = []
    total = 0
    while total < seconds * SAMPLE_RATE:
        gap = rng.normal(0.0, 10 ** rng.uniform(-4.0, -1.5), int(rng.uniform(0.1, 1.2) * SAMPLE_RATE))
        speech = speak(str(rng.choice(PHRASES)), str(rng.choice(voices)), str(rng.choice(variants)),
                       int(rng.integers(20, 80)), int(rng.integers(120, 200)))
        speech = speech * 10 ** rng.uniform(-1.5, 0.3)  # quiet to clipping
        speech = speech + rng.normal(0.0, 10 ** rng.uniform(-4.0, -2.0), speech.size)
        parts += [gap, speech]
        total += gap.size + speech.size
    audio = np.concatenate(parts)[: int(seconds * SAMPLE_RATE)]
    return (np.clip(audio, -1.0, 1.0) * 32767).astype(np.int16)


def _features(pcm: np.ndarray) -> np.ndarray:
    """[frames, 40] float features of pymicro-features' front end, 10 ms apart."""
    from pymicro_features import MicroFrontend

    frontend = MicroFrontend()
    audio = pcm.astype("<i2").tobytes()
    features, position, chunk = [], 0, FRAME_SAMPLES * 2
    while position + chunk <= len(audio):
        result = frontend.process_samples(audio[position : position + chunk])
        position += result.samples_read * 2
        if result.features:
            features.append(result.features)
    return np.asarray(features, dtype=np.float32).reshape(-1, CHANNELS)


def quantize_features(features: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """pymicro-wakeword's quantization (round(f / scale + zero point)), clamped to int8."""
    return np.clip(np.round(features / scale + zero_point), -128, 127).astype(np.int8)


def speech_inputs(invocations: int, seed: int, scale: float, zero_point: int) -> np.ndarray:
    """int8 model inputs [invocations, 3, 40] of spoken wake words and other phrases."""
    seconds = invocations * FRAMES_PER_INVOKE * FRAME_SAMPLES / SAMPLE_RATE + 0.1
    key = hashlib.sha256(json.dumps([seconds, seed, PHRASES, HELPER_VERSION]).encode()).hexdigest()
    path = CACHE_DIR / f"features-{key[:20]}.npy"
    if path.exists():
        features = np.load(path)
    else:
        features = _features(_stream_audio(seconds, seed))
        CACHE_DIR.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp.npy")
        np.save(tmp, features)
        os.replace(tmp, path)
    frames = features[: invocations * FRAMES_PER_INVOKE]
    if len(frames) < invocations * FRAMES_PER_INVOKE:
        raise RuntimeError(f"the front end gave {len(frames)} frames for {invocations} invocations")
    return quantize_features(frames, scale, zero_point).reshape(invocations, FRAMES_PER_INVOKE, CHANNELS)


MONITOR_INPUTS_DIR = REPO_ROOT / "build" / "test_data" / "wakeword_monitor_inputs"
_MONITOR_INPUTS: dict = {}


def session_samples_once(model, sessions: list[np.ndarray], first_group: int = 0) -> dict:
    """tinydrift.wakeword.monitor.session_samples, each session's front end and TFLite Micro
    run once: kept for the test process (the app's monitor in tests/test_app_stream.py and
    the monitor's own tests calibrate on the same first reference sessions) and cached under
    build/test_data beside the sessions' audio, by the model's and the audio's hashes."""
    from tinydrift.wakeword.export import model_digest
    from tinydrift.wakeword.monitor import SUMMARY_FORM, monitor_inputs, session_samples

    digest = hashlib.sha256(f"{model_digest(model)} {SUMMARY_FORM}".encode()).hexdigest()[:16]

    def inputs(pcm: np.ndarray, model):
        key = f"{digest}-{hashlib.sha256(np.ascontiguousarray(pcm).tobytes()).hexdigest()[:24]}"
        if key not in _MONITOR_INPUTS:
            path = MONITOR_INPUTS_DIR / f"{key}.npz"
            if path.exists():
                with np.load(path) as data:
                    _MONITOR_INPUTS[key] = (data["summaries"], data["probability"])
            else:
                _MONITOR_INPUTS[key] = monitor_inputs(pcm, model)
                MONITOR_INPUTS_DIR.mkdir(parents=True, exist_ok=True)
                tmp = path.with_suffix(f".{os.getpid()}.tmp.npz")
                np.savez(tmp, summaries=_MONITOR_INPUTS[key][0], probability=_MONITOR_INPUTS[key][1])
                os.replace(tmp, path)
        return _MONITOR_INPUTS[key]

    return session_samples(sessions, model, first_group, inputs=inputs)


MONITOR_CONFIGS_DIR = REPO_ROOT / "build" / "test_data" / "wakeword_monitor_configs"


def calibrated_once(samples: dict, **options):
    """tinydrift.wakeword.monitor.calibrate_detector's config for `samples`, cached under
    build/test_data by the samples, the options and the calibration's code: for tests that
    need a calibrated config to run a device against its twin, not to check the calibration
    (tests/test_wakeword_monitor.py calibrates afresh)."""
    import inspect

    from tinydrift.monitor import calibrate
    from tinydrift.monitor.config import MonitorConfig, jsonable
    from tinydrift.wakeword import monitor

    digest = hashlib.sha256()
    for key in ("summaries", "probs", "groups"):
        digest.update(np.ascontiguousarray(samples[key]).tobytes())
    digest.update(json.dumps(options, sort_keys=True).encode())
    for module in (calibrate, monitor):
        digest.update(inspect.getsource(module).encode())
    path = MONITOR_CONFIGS_DIR / f"{digest.hexdigest()[:24]}.json"
    if path.exists():
        return MonitorConfig.from_dict(json.loads(path.read_text()))
    config, _ = monitor.calibrate_detector(samples, **options)
    MONITOR_CONFIGS_DIR.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(jsonable(config.to_dict())))
    os.replace(tmp, path)
    return config
