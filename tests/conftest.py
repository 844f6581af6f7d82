"""Shared fixtures: the real recordings beside the repo, and a small synthetic set."""

from __future__ import annotations

import os
import signal
import wave
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# A suite started as a background job of a non-interactive shell (`scripts/test.sh &`, nohup)
# has SIGINT ignored, and every command a test starts would inherit that: each test that
# interrupts one would fail, the command going on. Python's own handler instead, as in a
# foreground run.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"
SPEECH_COMMANDS = SHARED_DATA / "speech_commands_v0.01_subset"
FSDD = SHARED_DATA / "fsdd"


def write_wav(path: Path, samples: np.ndarray) -> None:
    """A 16 kHz 16-bit WAV file, its folders made as needed: mono, or of samples [n, channels]."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1 if samples.ndim == 1 else samples.shape[1])
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(samples.astype("<i2").tobytes())


def require_shared(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"{path} is absent (real recordings live in ../shared/data)")
    return path


@pytest.fixture(scope="session")
def speech_commands_dir() -> Path:
    return require_shared(SPEECH_COMMANDS)


@pytest.fixture(scope="session")
def fsdd_dir() -> Path:
    return require_shared(FSDD)


SMALL_CONFIG_PER_CLASS = {"train": 150, "val": 20, "ref": 20, "test": 20, "accent": 20}
# Clips to play to the app when the default data set is not built: a few hundred espeak-ng
# clips, made once and cached in build/test_data (test_app_qemu makes a larger set there).
APP_CLIPS = REPO_ROOT / "build" / "test_data" / "app_qemu"
APP_CLIPS_PER_CLASS = {"train": 1, "val": 1, "ref": 1, "test": 15, "accent": 30}


@pytest.fixture(scope="session")
def app_clips():
    """split -> its clips to play to the app: the default data set's (`tinydrift data kws`)
    if built, else a small synthesized one (any already there: 180 clips a split or more)."""
    from tinydrift.data.clipset import ClipSet
    from tinydrift.data.synth import KwsConfig, build_kws

    def load(split: str) -> ClipSet:
        path = REPO_ROOT / "build" / "data" / "kws" / f"{split}.npz"
        if not path.exists():
            path = APP_CLIPS / f"{split}.npz"
        if not path.exists():
            path = build_kws(APP_CLIPS, KwsConfig(seed=0, clips_per_class=APP_CLIPS_PER_CLASS))[split]
        return ClipSet.load(path)

    return load


@pytest.fixture(scope="session")
def small_kws(tmp_path_factory) -> Path:
    """A small espeak-ng set (all five splits), built once per test session."""
    from tinydrift.data.synth import KwsConfig, build_kws

    out = tmp_path_factory.mktemp("kws")
    build_kws(out, KwsConfig(seed=7, clips_per_class=SMALL_CONFIG_PER_CLASS))
    return out


@pytest.fixture(scope="session")
def fleet_services():
    """A private mosquitto and PostgreSQL (Debian's), started once for the fleet tests and
    stopped at the end; skipped, with the reason, where they are not installed."""
    from tinydrift.fleet.services import missing_binaries, private_services

    if (missing := missing_binaries()) is not None:
        pytest.skip(missing)
    pytest.importorskip("psycopg")
    pytest.importorskip("paho.mqtt")
    with private_services() as (broker, database):
        yield broker, database


@pytest.fixture
def fleet_dsn(fleet_services, request) -> str:
    """A database of the test's own on the private PostgreSQL."""
    return fleet_services[1].new_database(request.node.name.lower()[:50])
