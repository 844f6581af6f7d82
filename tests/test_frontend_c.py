"""The device front end (C, built for this host) against the host front end (TF's op).

Bit-exact on every value of every clip: synthetic signals that stress each stage (noise at
many levels, tones, chirps, silence, clipping), espeak-ng speech, and real recordings from
../shared/data (skipped when that folder is absent). Also: streaming equals whole-clip.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from scipy import signal
from scipy.io import wavfile

from tinydrift import firmware
from tinydrift.target.host_frontend import NativeFrontend
from tinydrift.frontend.features import (
    CLIP_SAMPLES,
    NUM_CHANNELS,
    NUM_FRAMES,
    SAMPLE_RATE,
    frontend_uint16,
    uint16_to_int8,
)
from tinydrift.firmware import REPO_ROOT

SHARED_DATA = REPO_ROOT.parent / "shared" / "data"
FSDD = SHARED_DATA / "fsdd" / "recordings"
SPEECH_COMMANDS = SHARED_DATA / "speech_commands_v0.01_subset"

WORDS = ["yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go",
         "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]


@pytest.fixture(scope="module")
def frontend() -> NativeFrontend:
    return NativeFrontend()


def to_int16(x) -> np.ndarray:
    return np.clip(np.round(x), -32768, 32767).astype(np.int16)


def fit_clip(x: np.ndarray, offset: int = 0) -> np.ndarray:
    """Place `x` at `offset` in a 1 s clip, zero-padded or trimmed."""
    clip = np.zeros(CLIP_SAMPLES, np.int16)
    x = np.asarray(x, np.int16)[: CLIP_SAMPLES - offset]
    clip[offset:offset + len(x)] = x
    return clip


def noise_clips() -> list[np.ndarray]:
    rng = np.random.default_rng(1234)
    clips = []
    # Every octave of level from 1 LSB to beyond full scale, Gaussian and uniform.
    for level in [0.5, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192,
                  16384, 32768, 65536]:
        clips.append(to_int16(rng.normal(0, level, CLIP_SAMPLES)))
        clips.append(to_int16(rng.uniform(-level, level, CLIP_SAMPLES)))
    # Noise whose level jumps and decays: exercises noise reduction and PCAN adaptation.
    envelope = np.repeat(rng.uniform(0, 1, 16) ** 3 * 20000, CLIP_SAMPLES // 16)
    clips.append(to_int16(rng.normal(0, 1, CLIP_SAMPLES) * envelope))
    clips.append(to_int16(rng.normal(0, 1, CLIP_SAMPLES) * 8000 * np.exp(-np.arange(CLIP_SAMPLES) / 3000)))
    # Coloured noise: brown (low channels) and differentiated (high channels).
    white = rng.normal(0, 1, CLIP_SAMPLES + 1)
    brown = np.cumsum(white)[1:]
    clips.append(to_int16((brown - brown.mean()) / brown.std() * 3000))
    clips.append(to_int16(np.diff(white) * 3000))
    return clips


def tone_clips() -> list[np.ndarray]:
    t = np.arange(CLIP_SAMPLES) / SAMPLE_RATE
    clips = []
    for freq in [50, 125, 440, 1000, 2500, 4000, 7000, 7500, 7999]:
        for amplitude in [3, 300, 30000]:
            clips.append(to_int16(amplitude * np.sin(2 * np.pi * freq * t + freq)))
    # A chord with a DC offset.
    clips.append(to_int16(2000 + 3000 * (np.sin(2 * np.pi * 300 * t) + np.sin(2 * np.pi * 3300 * t))))
    for amplitude in [100, 10000, 32767]:
        clips.append(to_int16(amplitude * signal.chirp(t, 20, 1.0, 8000, method="linear")))
        clips.append(to_int16(amplitude * signal.chirp(t, 50, 1.0, 7900, method="logarithmic")))
        clips.append(to_int16(amplitude * signal.chirp(t, 7900, 1.0, 100, method="quadratic")))
    return clips


def edge_clips() -> list[np.ndarray]:
    t = np.arange(CLIP_SAMPLES) / SAMPLE_RATE
    n = np.arange(CLIP_SAMPLES)
    clips = [
        np.zeros(CLIP_SAMPLES, np.int16),  # silence
        np.full(CLIP_SAMPLES, 1, np.int16),
        np.full(CLIP_SAMPLES, -1, np.int16),
        np.full(CLIP_SAMPLES, 32767, np.int16),  # DC at full scale
        np.full(CLIP_SAMPLES, -32768, np.int16),
        np.where(n % 2 == 0, 32767, -32768).astype(np.int16),  # Nyquist at full scale
        np.where((n // 20) % 2 == 0, 32767, -32768).astype(np.int16),  # 400 Hz square, clipped
        to_int16(100000 * np.sin(2 * np.pi * 250 * t)),  # hard-clipped sine
        to_int16(np.clip(60000 * signal.chirp(t, 100, 1.0, 6000), -32768, 32767)),
        np.where(n % 1000 == 0, 32767, 0).astype(np.int16),  # clicks
        np.where(n % 321 == 0, -32768, 0).astype(np.int16),
    ]
    # Silence, then a full-scale burst, then silence: the window's max tracking and the
    # FFT's input shift jump from 15 to 0 and back.
    burst = np.zeros(CLIP_SAMPLES, np.int16)
    burst[7000:7400] = np.where(np.arange(400) % 7 < 3, 32767, -32768)
    clips.append(burst)
    # Random full-scale values: the window multiply reaches -32768 * 4096 >> 12.
    rng = np.random.default_rng(99)
    clips.append(rng.choice(np.array([-32768, 32767], np.int16), CLIP_SAMPLES))
    return clips


def read_streaming_wav(data: bytes) -> tuple[int, np.ndarray]:
    """espeak-ng's --stdout WAV: 16-bit mono with placeholder chunk sizes (it streams)."""
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise ValueError("not a WAV stream")
    rate = int.from_bytes(data[24:28], "little")
    start = data.index(b"data") + 8
    pcm = np.frombuffer(data[start:start + (len(data) - start) // 2 * 2], dtype="<i2")
    return rate, pcm


def espeak_clips() -> list[np.ndarray]:
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng not installed (scripts/setup.sh installs it)")
    clips = []
    for i, word in enumerate(WORDS):
        voice = ["en-us", "en-us+f3", "en-gb", "en-us+m7"][i % 4]
        out = subprocess.run(["espeak-ng", "-v", voice, "-s", str(140 + 10 * (i % 5)), "--stdout", word],
                             capture_output=True, check=True).stdout
        rate, pcm = read_streaming_wav(out)
        assert rate == 22050
        speech = signal.resample_poly(pcm.astype(np.float64), 320, 441)
        for gain in [1.0, 0.05, 3.0]:  # quiet, as synthesized, and clipped
            clips.append(fit_clip(to_int16(speech * gain), offset=(i * 997) % 4000))
    return clips


def wav_clip(path: Path) -> np.ndarray:
    rate, pcm = wavfile.read(path)
    if pcm.ndim > 1:
        pcm = pcm[:, 0]
    if rate == 8000:
        pcm = to_int16(signal.resample_poly(pcm.astype(np.float64), 2, 1))
    elif rate != SAMPLE_RATE:
        raise AssertionError(f"{path}: unexpected rate {rate}")
    return fit_clip(pcm)


def fsdd_clips() -> list[np.ndarray]:
    if not FSDD.is_dir():
        pytest.skip(f"{FSDD} absent")
    files = sorted(FSDD.glob("*.wav"))
    return [wav_clip(f) for f in files[::10]]  # 300 of 3,000: every digit and speaker


def speech_commands_clips() -> list[np.ndarray]:
    if not SPEECH_COMMANDS.is_dir():
        pytest.skip(f"{SPEECH_COMMANDS} absent")
    return [wav_clip(f) for f in sorted(SPEECH_COMMANDS.glob("*/*.wav"))]


CLIP_SETS = {
    "noise": noise_clips,
    "tones_and_chirps": tone_clips,
    "silence_and_clipping": edge_clips,
    "espeak_speech": espeak_clips,
    "fsdd": fsdd_clips,
    "speech_commands": speech_commands_clips,
}


def compare(frontend: NativeFrontend, clips: list[np.ndarray]) -> dict:
    """Count the values where the C front end differs from the host's (uint16 and int8)."""
    raw_mismatches = int8_mismatches = 0
    for clip in clips:
        expected_raw = frontend_uint16(clip)
        got_raw = frontend.process_clip_raw(clip)
        got_int8 = frontend.process_clip(clip)
        raw_mismatches += int(np.count_nonzero(got_raw != expected_raw))
        int8_mismatches += int(np.count_nonzero(got_int8 != uint16_to_int8(expected_raw)))
    return {"clips": len(clips), "values": len(clips) * NUM_FRAMES * NUM_CHANNELS,
            "uint16_mismatches": raw_mismatches, "int8_mismatches": int8_mismatches}


@pytest.mark.parametrize("clip_set", list(CLIP_SETS))
def test_c_frontend_is_bit_exact_with_host(frontend, clip_set):
    clips = CLIP_SETS[clip_set]()
    result = compare(frontend, clips)
    print(f"{clip_set}: {result}")
    assert result["clips"] >= 10
    assert result["uint16_mismatches"] == 0 and result["int8_mismatches"] == 0, result


def test_clip_sets_reach_the_whole_output_range(frontend):
    """The synthetic sets are not trivially easy: they span the front end's outputs."""
    clips = noise_clips() + tone_clips() + edge_clips()
    raw = np.stack([frontend.process_clip_raw(c) for c in clips])
    features = uint16_to_int8(raw)
    assert raw.min() == 0 and raw.max() >= 600
    assert features.min() == -128 and features.max() == 127
    # Most channels see both low and high values somewhere.
    assert np.mean(raw.max(axis=(0, 1)) > 400) > 0.9


def test_int8_map_matches_host_on_every_uint16(frontend):
    values = np.arange(65536, dtype=np.uint16)
    assert np.array_equal(frontend.raw_to_int8(values), uint16_to_int8(values))


def stream(frontend: NativeFrontend, pcm: np.ndarray, raw: bool = False) -> np.ndarray:
    """Feed `pcm` hop by hop from a reset, as the device does; one row per frame."""
    frontend.reset()
    frames, position = [], 0
    while position + frontend.hop_samples() <= len(pcm):
        hop = frontend.hop_samples()
        chunk = pcm[position:position + hop]
        frames.append(frontend.process_hop_raw(chunk) if raw else frontend.process_hop(chunk))
        position += hop
    return np.stack(frames)


def test_streaming_equals_whole_clip(frontend):
    clips = noise_clips()[::3] + tone_clips()[::4] + edge_clips()
    for clip in clips:
        assert np.array_equal(stream(frontend, clip, raw=True), frontend.process_clip_raw(clip))
        assert np.array_equal(stream(frontend, clip), frontend.process_clip(clip))


def test_streaming_hop_sizes_and_refusals(frontend):
    rng = np.random.default_rng(5)
    pcm = to_int16(rng.normal(0, 2000, 3 * CLIP_SAMPLES))
    frontend.reset()
    assert frontend.hop_samples() == 480
    first = frontend.process_hop(pcm[:480])
    assert frontend.hop_samples() == 320
    # A wrong hop is refused and changes nothing.
    status = frontend.lib.td_frontend_process_hop(frontend._state, pcm[480:800], 319, np.zeros(40, np.int8))
    assert status == -2
    assert frontend.hop_samples() == 320
    second = frontend.process_hop(pcm[480:800])
    frontend.reset()
    assert np.array_equal(frontend.process_hop(pcm[:480]), first)
    assert np.array_equal(frontend.process_hop(pcm[480:800]), second)


def test_long_stream_starts_like_its_first_clip(frontend):
    """3 s streamed: frames 0..48 are the first clip's; later frames keep the noise
    estimate (the device's overlapping windows reuse them), so they are not per-clip."""
    rng = np.random.default_rng(6)
    pcm = to_int16(rng.normal(0, 1, 3 * CLIP_SAMPLES) * np.repeat([300, 3000, 30], CLIP_SAMPLES))
    frames = stream(frontend, pcm, raw=True)
    assert len(frames) == 1 + (len(pcm) - 480) // 320
    assert np.array_equal(frames[:NUM_FRAMES], frontend_uint16(pcm[:CLIP_SAMPLES]))


def test_two_instances_are_independent(frontend):
    """The FFT scratch is shared by design; no state may leak between instances."""
    other = NativeFrontend(library=None)
    rng = np.random.default_rng(7)
    a, b = to_int16(rng.normal(0, 500, CLIP_SAMPLES)), to_int16(rng.normal(0, 9000, CLIP_SAMPLES))
    frontend.reset()
    other.reset()
    frames_a, frames_b, position = [], [], 0
    while position + frontend.hop_samples() <= CLIP_SAMPLES:
        hop = frontend.hop_samples()
        frames_a.append(frontend.process_hop_raw(a[position:position + hop]))
        frames_b.append(other.process_hop_raw(b[position:position + hop]))
        position += hop
    assert np.array_equal(np.stack(frames_a), frontend_uint16(a))
    assert np.array_equal(np.stack(frames_b), frontend_uint16(b))


SANITIZED_DRIVER = r"""
/* Runs the front end over N clips from argv[1] (int16) and writes, per clip, the whole-clip
 * and the hop-by-hop uint16 output to argv[2], under AddressSanitizer and UBSan. */
#include <stdio.h>
#include <stdlib.h>
#include "td_frontend.h"

static td_frontend_t frontend;
static int16_t pcm[TD_FRONTEND_CLIP_SAMPLES];
static uint16_t clip_raw[TD_FRONTEND_FEATURES];
static uint16_t hop_raw[TD_FRONTEND_FEATURES];

int main(int argc, char **argv) {
  FILE *in, *out;
  if (argc != 3 || (in = fopen(argv[1], "rb")) == NULL || (out = fopen(argv[2], "wb")) == NULL) {
    return 2;
  }
  while (fread(pcm, sizeof(pcm[0]), TD_FRONTEND_CLIP_SAMPLES, in) == TD_FRONTEND_CLIP_SAMPLES) {
    size_t position = 0, frame = 0;
    if (td_frontend_process_clip_raw(&frontend, pcm, clip_raw) != TD_FRONTEND_OK) return 3;
    td_frontend_reset(&frontend);
    while (frame < TD_FRONTEND_NUM_FRAMES) {
      size_t hop = td_frontend_hop_samples(&frontend);
      if (td_frontend_process_hop_raw(&frontend, pcm + position, hop,
                                      hop_raw + frame * TD_FRONTEND_NUM_CHANNELS) != TD_FRONTEND_OK) {
        return 4;
      }
      position += hop;
      ++frame;
    }
    fwrite(clip_raw, sizeof(clip_raw[0]), TD_FRONTEND_FEATURES, out);
    fwrite(hop_raw, sizeof(hop_raw[0]), TD_FRONTEND_FEATURES, out);
  }
  fclose(in);
  return fclose(out) == 0 ? 0 : 5;
}
"""


def test_sanitized_build_is_clean_and_exact(tmp_path):
    """ASan + UBSan (fatal on any report) over the hardest synthetic clips, whole and streamed."""
    from tinydrift import firmware
    from tinydrift.firmware import compile_host

    sources, include_dirs, defines = firmware.frontend_build_inputs()
    driver = tmp_path / "td_frontend_sanitized.c"
    driver.write_text(SANITIZED_DRIVER)
    exe = firmware.compile_host([driver, *sources], shared=False, sanitize=True, optimize="-O1",
                    include_dirs=include_dirs, defines=defines)
    clips = np.stack(edge_clips() + noise_clips()[::4] + tone_clips()[::6])
    clips.tofile(tmp_path / "clips.bin")
    proc = subprocess.run([str(exe), str(tmp_path / "clips.bin"), str(tmp_path / "features.bin")],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = np.fromfile(tmp_path / "features.bin", np.uint16).reshape(len(clips), 2, NUM_FRAMES, NUM_CHANNELS)
    for clip, (whole, streamed) in zip(clips, got):
        expected = frontend_uint16(clip)
        assert np.array_equal(whole, expected)
        assert np.array_equal(streamed, expected)
