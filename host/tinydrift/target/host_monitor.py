"""The firmware's drift monitor built for this host with a given config (ctypes), so the
twin can be checked against the very C the device runs."""

from __future__ import annotations

import ctypes
from pathlib import Path

import numpy as np

from tinydrift import firmware
from tinydrift.atomic import write_text
from tinydrift.monitor.config import MonitorConfig
from tinydrift.codegen.monitor_header import config_hash, emit_monitor_config_h
from tinydrift.monitor.twin import EVENT_IMAGE_SENSOR, EVENT_SENSOR, ROW_WIDTH, image_summary_length

MONITOR_SRC = firmware.stage_dir("monitor")
SHIM_DIR = firmware.TEST_DIR / "monitor"  # the C harnesses: host library, fuzz target, M4 bench
HOST_CONFIG_NAME = "host"


def monitor_sources(monitor_dir: Path = MONITOR_SRC) -> list[Path]:
    """The monitor's C sources, in a stable order."""
    return sorted(Path(monitor_dir).glob("*.c"))


def write_config_header(config: MonitorConfig, name: str = HOST_CONFIG_NAME) -> Path:
    """Write the generated header under build/host/, in a folder named by its content, and
    return that folder (for -I)."""
    folder = firmware.HOST_BUILD_DIR / "monitor_config" / f"{name}-{config_hash(config)[:16]}"
    header = folder / f"td_monitor_config_{name}.h"
    if not header.exists():
        write_text(header, emit_monitor_config_h(config, name))
    return folder


def build_flags(config: MonitorConfig, name: str = HOST_CONFIG_NAME) -> dict:
    """include_dirs and defines for compiling a shim against `config`."""
    folder = write_config_header(config, name)
    return {
        "include_dirs": [MONITOR_SRC, firmware.LIB_SRC, folder],  # LIB_SRC: td_dsp.h
        "defines": {
            "TD_MONITOR_CONFIG_HEADER": f'"td_monitor_config_{name}.h"',
            "TD_MONITOR_CONFIG_VAR": f"td_monitor_config_{name}",
        },
    }


def header_flags(header: Path) -> dict:
    """include_dirs and defines for compiling a shim against an existing config header
    named td_monitor_config_<name>.h, whose config variable has the same name."""
    name = header.stem
    if not name.startswith("td_monitor_config_"):
        raise ValueError(f"{header}: a monitor config header is named td_monitor_config_<name>.h")
    return {
        "include_dirs": [MONITOR_SRC, firmware.LIB_SRC, header.resolve().parent],
        "defines": {"TD_MONITOR_CONFIG_HEADER": f'"{header.name}"', "TD_MONITOR_CONFIG_VAR": name},
    }


def _sized(config: MonitorConfig, flags: dict) -> dict:
    """The state sized for this config, as the firmware build sizes it."""
    sizes = {"TD_MONITOR_MAX_SUMMARY": str(config.n_summary), "TD_MONITOR_MAX_CLASSES": str(config.n_classes)}
    return {**flags, "defines": {**flags["defines"], **sizes}}


class CMonitor:
    """One monitor state on the C library, with `config` compiled in."""

    def __init__(self, config: MonitorConfig, *, optimize: str = "-O2", compiler: str = "gcc", header: Path | None = None,
                 monitor_dir: Path = MONITOR_SRC):
        """header: compile this td_monitor_config_<name>.h (e.g. the one a model export
        shipped) instead of one emitted from `config`, which then describes it for the
        argument checks only: `tinydrift verify` compares that header's C with the twin.
        monitor_dir: the monitor's C from another folder (tests build mutated copies)."""
        self.config = config
        flags = _sized(config, build_flags(config) if header is None else header_flags(Path(header)))
        flags["include_dirs"] = [Path(monitor_dir), *flags["include_dirs"][1:]]  # in place of MONITOR_SRC
        path = firmware.compile_host(
            [firmware.test_harness("monitor/td_monitor_host.c"), *monitor_sources(monitor_dir)],
            optimize=optimize,
            compiler=compiler,
            **flags,
        )
        lib = ctypes.CDLL(str(path))
        lib.td_host_state_size.restype = ctypes.c_uint32
        lib.td_host_row_width.restype = ctypes.c_uint32
        lib.td_host_init.argtypes = [ctypes.c_void_p]
        lib.td_host_run.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_uint32] + [ctypes.c_void_p] * 4
        lib.td_host_run_frames.argtypes = lib.td_host_run.argtypes
        lib.td_host_summarize.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_uint32, ctypes.c_uint32, ctypes.c_void_p]
        lib.td_host_summarize_floor.argtypes = [ctypes.c_void_p] + [ctypes.c_uint32] * 4 + [ctypes.c_void_p]
        lib.td_host_summarize_level.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_void_p]
        lib.td_host_slope_energy.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_uint32, ctypes.c_uint32,
                                             ctypes.c_void_p]
        lib.td_host_summarize_tilt.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_uint32, ctypes.c_void_p]
        lib.td_host_summarize_quiet.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_void_p]
        lib.td_host_summarize_image.argtypes = [ctypes.c_void_p] + [ctypes.c_uint32] * 4 + [ctypes.c_void_p]
        self.lib = lib
        lib.td_host_commission_size.restype = ctypes.c_uint32
        self.state_size = int(lib.td_host_state_size())
        self.commission_size = int(lib.td_host_commission_size())
        if int(lib.td_host_row_width()) != ROW_WIDTH:
            raise RuntimeError(f"C row width {lib.td_host_row_width()} != twin row width {ROW_WIDTH}")
        self._state = ctypes.create_string_buffer(self.state_size)
        status = lib.td_host_init(self._state)
        if status != 0:
            raise RuntimeError(f"td_monitor_init refused the config (status {status})")

    def reset(self) -> None:
        self.lib.td_host_init(self._state)

    def state_bytes(self) -> bytes:
        return self._state.raw

    def run_events(self, events, summaries, probs, pcm=None, frames=None) -> np.ndarray:
        """Replay events (see twin.run_events) from the current state: rows [n, ROW_WIDTH].
        Sensor events read `pcm` (int16 blocks), or with `frames` camera frames (int8)."""
        events = np.ascontiguousarray(events, dtype=np.int32)
        summaries = np.ascontiguousarray(summaries, dtype=np.int16)
        probs = np.ascontiguousarray(probs, dtype=np.int8)
        image = frames is not None
        signal = np.ascontiguousarray(frames if image else pcm if pcm is not None else np.zeros(1),
                                      dtype=np.int8 if image else np.int16).reshape(-1)
        self._check_events(events, summaries, probs, signal, EVENT_IMAGE_SENSOR if image else EVENT_SENSOR)
        rows = np.zeros((len(events), ROW_WIDTH), dtype=np.int64)
        run = self.lib.td_host_run_frames if image else self.lib.td_host_run
        status = run(
            self._state, events.ctypes.data, len(events), summaries.ctypes.data, probs.ctypes.data, signal.ctypes.data, rows.ctypes.data
        )
        if status != 0:
            bad = int(np.nonzero(rows[:, 0] == -1)[0][0])
            raise RuntimeError(f"monitor call failed with status {status} at event {bad}: {events[bad].tolist()}")
        return rows

    def _check_events(self, events, summaries, probs, pcm, sensor_kind: int) -> None:
        # Out-of-range indices would make the C read outside the arrays: refuse them here.
        c = self.config
        if events.ndim != 2 or events.shape[1] != 3:
            raise ValueError("events must be int [n, 3]")
        if summaries.ndim != 2 or summaries.shape[1] != c.n_summary or probs.shape != (summaries.shape[0], c.n_classes):
            raise ValueError("summaries [N, n_summary] and probs [N, n_classes] expected")
        inf = events[events[:, 0] == 0]
        if len(inf) and (inf[:, 1].min() < 0 or inf[:, 1].max() >= summaries.shape[0]):
            raise ValueError("inference event row out of range")
        if np.isin(events[:, 0], [EVENT_SENSOR, EVENT_IMAGE_SENSOR]).sum() != (events[:, 0] == sensor_kind).sum():
            raise ValueError("PCM sensor events need pcm, image sensor events frames")
        sen = events[events[:, 0] == sensor_kind]
        if len(sen) and (sen[:, 1].min() < 0 or (sen[:, 1].astype(np.int64) + sen[:, 2]).max() > pcm.shape[0]):
            raise ValueError("sensor event block out of range")

    def summarize(self, features: np.ndarray) -> np.ndarray:
        """td_summarize_frames on int8 [n_clips, n_frames, n_channels]."""
        features = np.ascontiguousarray(features, dtype=np.int8)
        n, frames, channels = features.shape
        out = np.zeros((n, channels), dtype=np.int16)
        status = self.lib.td_host_summarize(features.ctypes.data, n, frames, channels, out.ctypes.data)
        if status != 0:
            raise RuntimeError(f"td_summarize_frames failed with status {status}")
        return out

    def summarize_floor(self, features: np.ndarray, group: int) -> np.ndarray:
        """td_summarize_floor on int8 [n_clips, n_frames, n_channels]."""
        features = np.ascontiguousarray(features, dtype=np.int8)
        n, frames, channels = features.shape
        out = np.zeros((n, max(1, channels // max(1, group))), dtype=np.int16)
        status = self.lib.td_host_summarize_floor(features.ctypes.data, n, frames, channels, group, out.ctypes.data)
        if status != 0:
            raise RuntimeError(f"td_summarize_floor failed with status {status}")
        return out

    @staticmethod
    def _int16_per_value(function, values: np.ndarray, dtype) -> np.ndarray:
        """A host wrapper of the form function(values, n, int16 out[n])."""
        values = np.ascontiguousarray(values, dtype=dtype)
        out = np.zeros(len(values), dtype=np.int16)
        function(values.ctypes.data, len(values), out.ctypes.data)
        return out

    def summarize_level(self, energy: np.ndarray) -> np.ndarray:
        """td_summarize_level on uint64 energies [n]."""
        return self._int16_per_value(self.lib.td_host_summarize_level, energy, np.uint64)

    def slope_energy(self, blocks: np.ndarray, previous: np.ndarray) -> np.ndarray:
        """td_slope_energy on int16 blocks [n, samples], each after its previous sample [n]."""
        blocks = np.ascontiguousarray(blocks, dtype=np.int16)
        previous = np.ascontiguousarray(previous, dtype=np.int16)
        out = np.zeros(len(blocks), dtype=np.uint64)
        self.lib.td_host_slope_energy(blocks.ctypes.data, previous.ctypes.data, len(blocks), blocks.shape[1],
                                      out.ctypes.data)
        return out

    def summarize_tilt(self, slope_energy: np.ndarray, energy: np.ndarray) -> np.ndarray:
        """td_summarize_tilt on uint64 (slope energy, energy) pairs [n]."""
        slope_energy = np.ascontiguousarray(slope_energy, dtype=np.uint64)
        energy = np.ascontiguousarray(energy, dtype=np.uint64)
        out = np.zeros(len(energy), dtype=np.int16)
        self.lib.td_host_summarize_tilt(slope_energy.ctypes.data, energy.ctypes.data, len(energy), out.ctypes.data)
        return out

    def summarize_quiet(self, levels: np.ndarray) -> np.ndarray:
        """td_summarize_quiet over one stream's int16 levels [n], from a reset."""
        return self._int16_per_value(self.lib.td_host_summarize_quiet, levels, np.int16)

    def summarize_image(self, pixels: np.ndarray, grid: int) -> np.ndarray:
        """td_summarize_image on int8 [n_images, height, width, 3]."""
        pixels = np.ascontiguousarray(pixels, dtype=np.int8)
        n, height, width, _ = pixels.shape
        out = np.zeros((n, image_summary_length(grid)), dtype=np.int16)
        status = self.lib.td_host_summarize_image(pixels.ctypes.data, n, height, width, grid, out.ctypes.data)
        if status != 0:
            raise RuntimeError(f"td_summarize_image failed with status {status}")
        return out
