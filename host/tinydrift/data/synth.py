"""A keyword-spotting set synthesized with espeak-ng, deterministic from a seed.

Every clip varies voice and variant, pitch, speed, level, time offset and background noise,
and records them as its domain. The training domain is English voices; the same voice
settings speaking through other languages' voices form the accent-shift split, the first
drift scenario. Voice variants are partitioned between splits, so the held-out splits hear
voice settings that training never heard.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import zlib
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from tinydrift.atomic import write_text
from tinydrift.errors import TinydriftError
from tinydrift.frontend import CLIP_SAMPLES, SAMPLE_RATE
from tinydrift.data.clipset import ClipSet, fit_to_clip
from tinydrift.data.parallel import render_all
from tinydrift.data.sets import MANIFEST, split_paths
from tinydrift.data.labels import KEYWORDS, LABELS, SILENCE, UNKNOWN, UNKNOWN_WORDS

# Bump when the synthesis changes, so cached sets are rebuilt.
GENERATOR_VERSION = 2

ENGLISH_VOICES = (
    "en-gb", "en-us", "en-gb-scotland", "en-gb-x-gbclan", "en-gb-x-rp", "en-gb-x-gbcwmd", "en-029",
    "en-us-nyc",
)
# Measured: these languages' voices read English keywords with real accents
# (70-84 % accuracy for a first model); ru, hi and fr mostly fall back to English rules.
ACCENT_VOICES = ("es", "sv", "nl", "tr", "pl", "de", "it")
# Whispered variants carry no voicing at all; a keyword spotter is not expected to hear them.
EXCLUDED_VARIANTS = {"whisper", "whisperf"}

SPLITS = ("train", "val", "ref", "test", "accent")
# Share of voice variants each part hears. `ref` (reference statistics, calibration), `test`
# (accuracy, the false-alarm check) and `accent` all draw from the held-out variants: ref and
# test are two samples of one deployment population, so the monitor must stay quiet between
# them. With disjoint variants (14 each) they were two populations: the test split alone
# raised data-drift alarms every ~2,000 inferences.
VARIANT_SHARES = {"train": 0.64, "val": 0.08, "heldout": 0.28}
HELDOUT_SPLITS = ("ref", "test", "accent")

ESPEAK_RATE = 22050


@dataclass(frozen=True)
class KwsConfig:
    """What `tinydrift data kws` builds; its hash names the cache."""

    seed: int = 0
    clips_per_class: dict = field(
        default_factory=lambda: {"train": 1000, "val": 100, "ref": 200, "test": 200, "accent": 200}
    )
    snr_db: tuple = (5.0, 30.0)
    peak_dbfs: tuple = (-26.0, -3.0)
    pitch: tuple = (25, 75)
    speed_wpm: tuple = (120, 200)

    def digest(self) -> str:
        blob = json.dumps({"v": GENERATOR_VERSION, **asdict(self)}, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


def require_espeak() -> str:
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise TinydriftError("espeak-ng not found: run scripts/setup.sh (or `apt-get install espeak-ng`)")
    return exe


def espeak_variants() -> list[str]:
    """The voice variants this espeak-ng knows, minus those excluded above, sorted."""
    out = subprocess.run([require_espeak(), "--voices=variant"], capture_output=True, text=True, check=True)
    names = []
    for line in out.stdout.splitlines()[1:]:
        parts = line.split()
        if len(parts) >= 5 and parts[4].startswith("!v/"):
            name = parts[4][3:]
            if name not in EXCLUDED_VARIANTS and " " not in name:
                names.append(name)
    if not names:
        raise TinydriftError("espeak-ng lists no voice variants: reinstall espeak-ng-data")
    return sorted(set(names))


def split_variants(variants: list[str]) -> dict[str, list[str]]:
    """Partition variants between splits by a stable hash of their names."""
    order = sorted(variants, key=lambda v: zlib.crc32(v.encode()))
    out, start = {}, 0
    for i, (split, share) in enumerate(VARIANT_SHARES.items()):
        end = len(order) if i == len(VARIANT_SHARES) - 1 else start + max(1, round(share * len(order)))
        out[split] = order[start:end]
        start = end
    for split in HELDOUT_SPLITS:
        out[split] = out["heldout"]
    del out["heldout"]
    return out


@dataclass(frozen=True)
class ClipSpec:
    word: str
    label: int
    voice: str
    variant: str
    pitch: int
    speed: int
    peak_dbfs: float
    noise: str
    snr_db: float
    offset_frac: float
    noise_seed: int


def plan_split(config: KwsConfig, split: str, variants: list[str]) -> list[ClipSpec]:
    rng = np.random.default_rng([config.seed, SPLITS.index(split)])
    voices = ACCENT_VOICES if split == "accent" else ENGLISH_VOICES
    specs = []
    for label, name in enumerate(LABELS):
        for _ in range(config.clips_per_class[split]):
            if name == UNKNOWN:
                word = str(rng.choice(UNKNOWN_WORDS))
            else:
                word = name
            specs.append(
                ClipSpec(
                    word=word,
                    label=label,
                    voice=str(rng.choice(voices)),
                    variant=str(rng.choice(variants)),
                    pitch=int(rng.integers(config.pitch[0], config.pitch[1] + 1)),
                    speed=int(rng.integers(config.speed_wpm[0], config.speed_wpm[1] + 1)),
                    peak_dbfs=float(rng.uniform(*config.peak_dbfs)),
                    noise=str(rng.choice(("white", "pink", "brown"))),
                    snr_db=float(rng.uniform(*config.snr_db)),
                    offset_frac=float(rng.uniform()),
                    noise_seed=int(rng.integers(2**31)),
                )
            )
    order = rng.permutation(len(specs))
    return [specs[i] for i in order]


def speak(word: str, voice: str, variant: str, pitch: int, speed: int) -> np.ndarray:
    """espeak-ng's rendering of `word`, resampled to 16 kHz float in [-1, 1], silence trimmed."""
    from scipy.signal import resample_poly

    proc = subprocess.run(
        [require_espeak(), "-v", f"{voice}+{variant}", "-p", str(pitch), "-s", str(speed), "--stdout", word],
        capture_output=True,
        check=False,
    )
    if proc.returncode != 0 or len(proc.stdout) <= 44:
        raise TinydriftError(f"espeak-ng failed for voice {voice}+{variant}: {proc.stderr.decode().strip()}")
    # espeak-ng streams a WAV whose header has no valid length: the samples follow its 44 bytes.
    pcm = np.frombuffer(proc.stdout[44:], dtype="<i2").astype(np.float64) / 32768.0
    audio = resample_poly(pcm, SAMPLE_RATE // 50, ESPEAK_RATE // 50)  # 320/441
    loud = np.flatnonzero(np.abs(audio) > 0.01 * max(np.abs(audio).max(), 1e-9))
    return audio[loud[0]:loud[-1] + 1] if len(loud) else audio


def coloured_noise(kind: str, n: int, rng: np.random.Generator) -> np.ndarray:
    """Unit-RMS noise with a white (flat), pink (1/f) or brown (1/f^2) power spectrum."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    f = np.arange(len(spectrum), dtype=np.float64)
    f[0] = 1.0
    exponent = {"white": 0.0, "pink": 0.5, "brown": 1.0}[kind]
    noise = np.fft.irfft(spectrum / f**exponent, n)
    return noise / (np.sqrt(np.mean(noise**2)) + 1e-12)


def render(spec: ClipSpec) -> np.ndarray:
    """One 1 s int16 clip for a spec: speech placed at its offset, scaled, noise mixed in."""
    rng = np.random.default_rng(spec.noise_seed)
    noise = coloured_noise(spec.noise, CLIP_SAMPLES, rng)
    peak = 10 ** (spec.peak_dbfs / 20)
    if spec.word == SILENCE:
        # Background only: its level spans quiet rooms to the level of quiet speech.
        mix = noise * peak * 10 ** (-(spec.snr_db + 10) / 20)
    else:
        speech = speak(spec.word, spec.voice, spec.variant, spec.pitch, spec.speed)
        speech = speech[:CLIP_SAMPLES]
        speech = speech / (np.abs(speech).max() + 1e-12) * peak
        offset = int(spec.offset_frac * (CLIP_SAMPLES - len(speech)))
        placed = np.zeros(CLIP_SAMPLES)
        placed[offset:offset + len(speech)] = speech
        speech_rms = np.sqrt(np.mean(speech**2))
        mix = placed + noise * speech_rms * 10 ** (-spec.snr_db / 20)
    return fit_to_clip(np.clip(np.round(mix * 32767), -32768, 32767).astype(np.int16))


def _render_chunk(specs: list[ClipSpec]) -> np.ndarray:
    return np.stack([render(s) for s in specs])


def synthesize(specs: list[ClipSpec], workers: int, progress=None) -> np.ndarray:
    out = render_all(_render_chunk, specs, workers, progress)
    return np.concatenate(out) if out else np.zeros((0, CLIP_SAMPLES), np.int16)


def domain_columns(specs: list[ClipSpec], split: str) -> dict[str, np.ndarray]:
    cols = {
        "word": np.array([s.word for s in specs]),
        "voice": np.array([s.voice for s in specs]),
        "language": np.array([s.voice.split("-")[0] for s in specs]),
        "variant": np.array([s.variant for s in specs]),
        "pitch": np.array([s.pitch for s in specs], dtype=np.int16),
        "speed": np.array([s.speed for s in specs], dtype=np.int16),
        "peak_dbfs": np.array([s.peak_dbfs for s in specs], dtype=np.float32),
        "noise": np.array([s.noise for s in specs]),
        "snr_db": np.array([s.snr_db for s in specs], dtype=np.float32),
        "split": np.array([split] * len(specs)),
    }
    # A group is one synthetic speaker: voice and variant. Calibration resamples whole groups.
    speakers = [f"{s.voice}+{s.variant}" for s in specs]
    cols["speaker"] = np.array(speakers)
    cols["group"] = np.array([zlib.crc32(s.encode()) & 0x7FFFFFFF for s in speakers], dtype=np.int64)
    return cols


def build_kws(out_dir: str | Path, config: KwsConfig = KwsConfig(), workers: int | None = None,
              progress_factory=None) -> dict[str, Path]:
    """Build (or reuse from cache) every split into `out_dir/<split>.npz`; return their paths.

    `progress_factory(description, total)` returns a callable advanced by clip counts.
    """
    out_dir = Path(out_dir)
    digest = config.digest()
    paths, built = split_paths(out_dir, SPLITS, digest)
    if built:
        return paths
    require_espeak()
    workers = workers or os.cpu_count() or 1
    variants = split_variants(espeak_variants())
    counts = {}
    for split in SPLITS:
        specs = plan_split(config, split, variants[split])
        advance = progress_factory(f"synthesizing {split}", len(specs)) if progress_factory else None
        audio = synthesize(specs, workers, advance)
        clips = ClipSet(audio=audio, labels=np.array([s.label for s in specs], dtype=np.int16),
                        domain=domain_columns(specs, split))
        advance = progress_factory(f"features {split}", len(specs)) if progress_factory else None
        clips.ensure_features(progress=advance)
        clips.save(paths[split])
        counts[split] = len(clips)
    manifest = {
        "kind": "kws-espeak-ng",
        "config_digest": digest,
        "config": asdict(config),
        "generator_version": GENERATOR_VERSION,
        "labels": list(LABELS),
        "clips": counts,
        "variants": variants,
        "english_voices": list(ENGLISH_VOICES),
        "accent_voices": list(ACCENT_VOICES),
    }
    write_text(out_dir / MANIFEST, json.dumps(manifest, indent=2))
    return paths
