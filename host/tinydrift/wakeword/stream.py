"""An audio stream made into a microWakeWord model's int8 input, as the device makes it.

    16 kHz int16 PCM ─► front end, 10 ms step, one state for the whole stream
        ─► uint16 frames [n, 40] ─► int8 frames (v * 256 + 333) // 666 - 128, saturated
        ─► blocks of `stride` (3) consecutive frames, not overlapping: one inference each

The int8 map is ESPHome's micro_wake_word's (and micro_speech's, td_frontend_raw_to_int8:
the device already has it). The models' input tensor says what it stands for: real
features v / 25.6 quantized with scale s = 26/255 (0.10196078, as float32) and zero point
-128, i.e. round(v / (25.6 s)) - 128 = round(255 v / 665.6) - 128, which pymicro-wakeword
computes in floating point. The device's 256/666 is 0.33 % steeper: for v in 0..666 it
gives one more on 282 of the 667 values (v = 30 is the first) and the same on the rest;
above, it saturates at 127 where pymicro-wakeword's unsaturated cast wraps (v = 667 -> -128).
tests/test_wakeword_frontend.py measures both on the same audio.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tinydrift.data.wavfolder import read_wav
from tinydrift.frontend import NUM_CHANNELS, SAMPLE_RATE, WAKEWORD_STEP_MS, stream_int8
from tinydrift.wakeword.config import STRIDE


def read_stream_wav(path: str | Path) -> np.ndarray:
    """The int16 samples of a 16 kHz mono 16-bit WAV file, or one line saying what it is instead."""
    return read_wav(Path(path), SAMPLE_RATE, needed_by="the wake-word front end")


def input_blocks(frames_int8: np.ndarray, stride: int = STRIDE) -> np.ndarray:
    """[n // stride, stride, 40] int8: consecutive frames grouped as the model's inputs; a
    last incomplete block waits for more audio, so it is left out."""
    frames = np.asarray(frames_int8)
    if frames.dtype != np.int8 or frames.ndim != 2 or frames.shape[1] != NUM_CHANNELS:
        raise ValueError(f"expected int8 frames [n, {NUM_CHANNELS}], got {frames.dtype} {frames.shape}")
    blocks = len(frames) // stride
    return frames[:blocks * stride].reshape(blocks, stride, NUM_CHANNELS)


def stream_input_blocks(pcm: np.ndarray, stride: int = STRIDE) -> np.ndarray:
    """The model's int8 inputs for a stream of int16 samples from one front-end reset."""
    return input_blocks(stream_int8(pcm, WAKEWORD_STEP_MS), stride)
