"""The device front end (firmware/lib/tinydrift/src/frontend) built for this host.

`NativeFrontend` runs the very C the device runs, through ctypes, so pytest and the
toolchain can compare it with the host front end (tinydrift.frontend).
"""

from __future__ import annotations

import ctypes
from pathlib import Path

import numpy as np

from tinydrift.errors import TinydriftError
from tinydrift.frontend.features import CLIP_SAMPLES, NUM_CHANNELS, STEP_MS, frames_in
from tinydrift import firmware


def build_frontend_library(*, sanitize: bool = False, optimize: str = "-O2", step_ms: int | None = None) -> Path:
    """A shared library of our C and the extracted microfrontend C (cached by content);
    `step_ms` as in firmware.frontend_build_inputs."""
    sources, include_dirs, defines = firmware.frontend_build_inputs(step_ms)
    return firmware.compile_host(sources, include_dirs=include_dirs, defines=defines, sanitize=sanitize,
                     optimize=optimize)


class NativeFrontend:
    """One td_frontend_t in the host build of the device front end, built for a frame step
    of `step_ms` (td_frontend.h's default, 20 ms, unless given)."""

    def __init__(self, library: Path | None = None, step_ms: int | None = None):
        self.step_ms = STEP_MS if step_ms is None else step_ms
        self.num_frames = frames_in(CLIP_SAMPLES, self.step_ms)
        self.lib = ctypes.CDLL(str(library or build_frontend_library(step_ms=step_ms)))
        lib = self.lib
        p = ctypes.c_void_p
        i16p = np.ctypeslib.ndpointer(np.int16, flags="C_CONTIGUOUS")
        u16p = np.ctypeslib.ndpointer(np.uint16, flags="C_CONTIGUOUS")
        i8p = np.ctypeslib.ndpointer(np.int8, flags="C_CONTIGUOUS")
        for name in ("td_frontend_state_bytes", "td_frontend_scratch_bytes", "td_frontend_table_bytes"):
            getattr(lib, name).argtypes = []
            getattr(lib, name).restype = ctypes.c_size_t
        lib.td_frontend_reset.argtypes = [p]
        lib.td_frontend_reset.restype = None
        lib.td_frontend_hop_samples.argtypes = [p]
        lib.td_frontend_hop_samples.restype = ctypes.c_size_t
        lib.td_frontend_process_hop_raw.argtypes = [p, i16p, ctypes.c_size_t, u16p]
        lib.td_frontend_process_hop.argtypes = [p, i16p, ctypes.c_size_t, i8p]
        lib.td_frontend_process_clip_raw.argtypes = [p, i16p, u16p]
        lib.td_frontend_process_clip.argtypes = [p, i16p, i8p]
        for name in ("td_frontend_process_hop_raw", "td_frontend_process_hop",
                     "td_frontend_process_clip_raw", "td_frontend_process_clip"):
            getattr(lib, name).restype = ctypes.c_int
        lib.td_frontend_raw_to_int8.argtypes = [u16p, i8p, ctypes.c_size_t]
        lib.td_frontend_raw_to_int8.restype = None
        self.state_bytes = lib.td_frontend_state_bytes()
        self.scratch_bytes = lib.td_frontend_scratch_bytes()
        self.table_bytes = lib.td_frontend_table_bytes()
        # Zeroed, malloc-aligned storage for one td_frontend_t.
        self._state = ctypes.create_string_buffer(self.state_bytes)
        self.reset()

    def reset(self) -> None:
        self.lib.td_frontend_reset(self._state)

    def hop_samples(self) -> int:
        return self.lib.td_frontend_hop_samples(self._state)

    def _check(self, status: int, what: str) -> None:
        if status != 0:
            raise TinydriftError(f"td_frontend_{what} returned {status}")

    @staticmethod
    def _pcm(samples, length: int | None = None) -> np.ndarray:
        pcm = np.ascontiguousarray(samples, dtype=np.int16)
        if length is not None and pcm.shape != (length,):
            raise ValueError(f"expected {length} int16 samples, got {pcm.shape}")
        return pcm

    def process_hop_raw(self, samples) -> np.ndarray:
        pcm = self._pcm(samples)
        raw = np.zeros(NUM_CHANNELS, np.uint16)
        self._check(self.lib.td_frontend_process_hop_raw(self._state, pcm, len(pcm), raw), "process_hop_raw")
        return raw

    def process_hop(self, samples) -> np.ndarray:
        pcm = self._pcm(samples)
        frame = np.zeros(NUM_CHANNELS, np.int8)
        self._check(self.lib.td_frontend_process_hop(self._state, pcm, len(pcm), frame), "process_hop")
        return frame

    def process_stream_raw(self, pcm) -> np.ndarray:
        """Feed `pcm` hop by hop from the current state, as the device does: [frames, 40]
        uint16. Samples too few for the next hop are left unread (no frame yet)."""
        pcm = self._pcm(pcm)
        frames = []
        position = 0
        while position + self.hop_samples() <= len(pcm):
            hop = self.hop_samples()
            frames.append(self.process_hop_raw(pcm[position:position + hop]))
            position += hop
        return np.array(frames, np.uint16).reshape(len(frames), NUM_CHANNELS)

    def process_clip_raw(self, pcm) -> np.ndarray:
        raw = np.zeros((self.num_frames, NUM_CHANNELS), np.uint16)
        self._check(self.lib.td_frontend_process_clip_raw(self._state, self._pcm(pcm, CLIP_SAMPLES), raw),
                    "process_clip_raw")
        return raw

    def process_clip(self, pcm) -> np.ndarray:
        features = np.zeros((self.num_frames, NUM_CHANNELS), np.int8)
        self._check(self.lib.td_frontend_process_clip(self._state, self._pcm(pcm, CLIP_SAMPLES), features),
                    "process_clip")
        return features

    def raw_to_int8(self, raw) -> np.ndarray:
        raw = np.ascontiguousarray(raw, dtype=np.uint16)
        out = np.zeros(raw.shape, np.int8)
        self.lib.td_frontend_raw_to_int8(raw.ravel(), out.reshape(-1), raw.size)
        return out
