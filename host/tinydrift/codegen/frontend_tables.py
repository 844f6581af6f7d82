"""The device front end's init tables, built by TensorFlow's own library and emitted as C.

The microfrontend lib computes its window, filterbank, PCAN and FFT tables at init, in
floating point. The sdist's copy of that init code uses single precision (cosf, log1pf)
where TensorFlow's op uses double, and the M4 compiler fuses multiply-adds: as shipped it
disagrees with the host front end on some features. So the tables are not computed on the
device at all: this module loads TensorFlow's `_audio_microfrontend_op.so` with ctypes,
fills a FrontendConfig with the host front end's parameters (read from
frontend/features.py), calls its FrontendPopulateState, reads the tables out of the state
and writes them into td_frontend_tables.h. The device then needs no init code, no heap and
no floating point, and its tables are TensorFlow's to the bit.

The ctypes structures below mirror the microfrontend lib's headers (frontend.h,
frontend_util.h and the headers they include; kissfft's kiss_fft_state and kiss_fftr_state);
tests/test_frontend_tables.py checks every offset against the extracted headers.
"""

from __future__ import annotations

import ast
import ctypes
import importlib.metadata
import importlib.util
import inspect
import string
import textwrap
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tinydrift import atomic, firmware
from tinydrift.errors import TinydriftError

FRONTEND_C_DIR = firmware.stage_dir("frontend")
TEMPLATE = FRONTEND_C_DIR / "td_frontend_tables.h.in"
DEFAULT_HEADER = FRONTEND_C_DIR / "td_frontend_tables.h"

# Keyword arguments of the op that are post-processing the C front end does not do: the
# generator refuses any other value.
_OP_ONLY_DEFAULTS = {
    "left_context": 0,
    "right_context": 0,
    "frame_stride": 1,
    "zero_padding": False,
    "out_scale": 1,
}
_REQUIRED = [
    "sample_rate", "window_size", "window_step", "num_channels", "upper_band_limit",
    "lower_band_limit", "smoothing_bits", "even_smoothing", "odd_smoothing",
    "min_signal_remaining", "enable_pcan", "pcan_strength", "pcan_offset", "gain_bits",
    "enable_log", "scale_shift",
]

# Parameters no table depends on: the header leaves them out, so one header serves every
# build of the front end (td_frontend.h sets the step, TD_FRONTEND_STEP_MS).
_NOT_IN_TABLES = ("window_step",)

# kissfft (kiss_fft.h / _kiss_fft_guts.h): MAXFACTORS 32.
KISS_MAXFACTORS = 32
# pcan_gain_control_util.h: 4 * kWideDynamicFunctionBits - 3.
PCAN_GAIN_LUT_SIZE = 4 * 32 - 3


# --- ctypes mirrors of the microfrontend lib's structs -------------------------------------

c_int16_p = ctypes.POINTER(ctypes.c_int16)


class WindowConfig(ctypes.Structure):
    _fields_ = [("size_ms", ctypes.c_size_t), ("step_size_ms", ctypes.c_size_t)]


class FilterbankConfig(ctypes.Structure):
    _fields_ = [
        ("num_channels", ctypes.c_int),
        ("upper_band_limit", ctypes.c_float),
        ("lower_band_limit", ctypes.c_float),
        ("output_scale_shift", ctypes.c_int),
    ]


class NoiseReductionConfig(ctypes.Structure):
    _fields_ = [
        ("smoothing_bits", ctypes.c_int),
        ("even_smoothing", ctypes.c_float),
        ("odd_smoothing", ctypes.c_float),
        ("min_signal_remaining", ctypes.c_float),
    ]


class PcanGainControlConfig(ctypes.Structure):
    _fields_ = [
        ("enable_pcan", ctypes.c_int),
        ("strength", ctypes.c_float),
        ("offset", ctypes.c_float),
        ("gain_bits", ctypes.c_int),
    ]


class LogScaleConfig(ctypes.Structure):
    _fields_ = [("enable_log", ctypes.c_int), ("scale_shift", ctypes.c_int)]


class FrontendConfig(ctypes.Structure):
    _fields_ = [
        ("window", WindowConfig),
        ("filterbank", FilterbankConfig),
        ("noise_reduction", NoiseReductionConfig),
        ("pcan_gain_control", PcanGainControlConfig),
        ("log_scale", LogScaleConfig),
    ]


class WindowState(ctypes.Structure):
    _fields_ = [
        ("size", ctypes.c_size_t),
        ("coefficients", c_int16_p),
        ("step", ctypes.c_size_t),
        ("input", c_int16_p),
        ("input_used", ctypes.c_size_t),
        ("output", c_int16_p),
        ("max_abs_output_value", ctypes.c_int16),
    ]


class FftState(ctypes.Structure):
    _fields_ = [
        ("input", c_int16_p),
        ("output", ctypes.c_void_p),
        ("fft_size", ctypes.c_size_t),
        ("input_size", ctypes.c_size_t),
        ("scratch", ctypes.c_void_p),
        ("scratch_size", ctypes.c_size_t),
    ]


class FilterbankState(ctypes.Structure):
    _fields_ = [
        ("num_channels", ctypes.c_int),
        ("start_index", ctypes.c_int),
        ("end_index", ctypes.c_int),
        ("channel_frequency_starts", c_int16_p),
        ("channel_weight_starts", c_int16_p),
        ("channel_widths", c_int16_p),
        ("weights", c_int16_p),
        ("unweights", c_int16_p),
        ("work", ctypes.POINTER(ctypes.c_uint64)),
    ]


class NoiseReductionState(ctypes.Structure):
    _fields_ = [
        ("smoothing_bits", ctypes.c_int),
        ("even_smoothing", ctypes.c_uint16),
        ("odd_smoothing", ctypes.c_uint16),
        ("min_signal_remaining", ctypes.c_uint16),
        ("num_channels", ctypes.c_int),
        ("estimate", ctypes.POINTER(ctypes.c_uint32)),
    ]


class PcanGainControlState(ctypes.Structure):
    _fields_ = [
        ("enable_pcan", ctypes.c_int),
        ("noise_estimate", ctypes.POINTER(ctypes.c_uint32)),
        ("num_channels", ctypes.c_int),
        ("gain_lut", c_int16_p),
        ("snr_shift", ctypes.c_int32),
    ]


class LogScaleState(ctypes.Structure):
    _fields_ = [("enable_log", ctypes.c_int), ("scale_shift", ctypes.c_int)]


class FrontendState(ctypes.Structure):
    _fields_ = [
        ("window", WindowState),
        ("fft", FftState),
        ("filterbank", FilterbankState),
        ("noise_reduction", NoiseReductionState),
        ("pcan_gain_control", PcanGainControlState),
        ("log_scale", LogScaleState),
    ]


class KissFftrState(ctypes.Structure):
    """kiss_fftr.c's private `struct kiss_fftr_state` (FftState.scratch points to one)."""

    _fields_ = [
        ("substate", ctypes.c_void_p),
        ("tmpbuf", ctypes.c_void_p),
        ("super_twiddles", ctypes.c_void_p),
    ]


class KissFftStateHead(ctypes.Structure):
    """`struct kiss_fft_state` up to its twiddles, which kissfft allocates past its end."""

    _fields_ = [
        ("nfft", ctypes.c_int),
        ("inverse", ctypes.c_int),
        ("factors", ctypes.c_int * (2 * KISS_MAXFACTORS)),
    ]


# --- the parameters of the host front end ---------------------------------------------------


def host_frontend_parameters(step_ms: int | None = None) -> dict:
    """The keyword arguments frontend/features.py passes to TF's audio_microfrontend op,
    with the step of the kws clips (STEP_MS) unless `step_ms` says otherwise.

    Read from its source rather than restated here, so the device tables cannot drift from
    the host front end: literals are taken as they are, names are looked up in that module
    (the function's own `step_ms` argument is the step).
    """
    from tinydrift.frontend import features as frontend

    tree = ast.parse(inspect.getsource(frontend.microfrontend_uint16))
    calls = [
        node for node in ast.walk(tree)
        if isinstance(node, ast.Call) and {"window_size", "window_step"} <= {k.arg for k in node.keywords}
    ]
    if len(calls) != 1:
        raise TinydriftError(
            f"{frontend.__file__}: expected one audio_microfrontend call in microfrontend_uint16, "
            f"found {len(calls)}; update codegen/frontend_tables.py"
        )
    arguments = {"step_ms": frontend.STEP_MS if step_ms is None else step_ms}
    params = {}
    for keyword in calls[0].keywords:
        value = keyword.value
        if isinstance(value, ast.Constant):
            params[keyword.arg] = value.value
        elif isinstance(value, ast.Name) and value.id in arguments:
            params[keyword.arg] = arguments[value.id]
        elif isinstance(value, ast.Name) and hasattr(frontend, value.id):
            params[keyword.arg] = getattr(frontend, value.id)
        # Anything else (out_type=tf.uint16) is not a table parameter.
    check_parameters(params, source=frontend.__file__)
    return params


def check_parameters(params: dict, source: str = "front end parameters") -> None:
    """Refuse what the device front end cannot do, naming the parameter."""
    missing = [name for name in _REQUIRED if name not in params]
    if missing:
        raise TinydriftError(f"{source}: the audio_microfrontend call does not set {missing}")
    for name, expected in _OP_ONLY_DEFAULTS.items():
        if params.get(name, expected) != expected:
            raise TinydriftError(
                f"{source}: {name}={params[name]!r} is op post-processing the device "
                f"front end does not implement (it supports {name}={expected!r})"
            )
    if not params["enable_pcan"]:
        raise TinydriftError(f"{source}: the device front end is generated with PCAN on (enable_pcan=True)")


# --- TensorFlow's library --------------------------------------------------------------------


def tf_microfrontend_library() -> ctypes.CDLL:
    """TensorFlow's compiled microfrontend lib (loads without importing TensorFlow)."""
    spec = importlib.util.find_spec("tensorflow")
    if spec is None or not spec.submodule_search_locations:
        raise TinydriftError("tensorflow is not installed: run scripts/setup.sh")
    path = (
        Path(spec.submodule_search_locations[0])
        / "lite" / "experimental" / "microfrontend" / "python" / "ops" / "_audio_microfrontend_op.so"
    )
    if not path.exists():
        raise TinydriftError(f"{path}: missing from the TensorFlow install; reinstall tensorflow-cpu")
    from tinydrift.quiet import held_back

    with held_back():  # loading it loads TensorFlow's framework library, which prints absl's and oneDNN's notices
        return microfrontend_library(path, remedy="reinstall tensorflow-cpu")


def microfrontend_library(path: Path, remedy: str) -> ctypes.CDLL:
    """A compiled microfrontend lib exporting FrontendPopulateState (TensorFlow's op, or
    another build of the same C such as pymicro-features' extension, to compare tables)."""
    try:
        lib = ctypes.CDLL(str(path))
    except OSError as exc:
        raise TinydriftError(f"{path}: cannot load ({exc}); {remedy}") from exc
    if not hasattr(lib, "FrontendPopulateState"):
        raise TinydriftError(f"{path}: exports no FrontendPopulateState; {remedy}")
    lib.FrontendPopulateState.argtypes = [
        ctypes.POINTER(FrontendConfig), ctypes.POINTER(FrontendState), ctypes.c_int,
    ]
    lib.FrontendPopulateState.restype = ctypes.c_int
    lib.FrontendFreeStateContents.argtypes = [ctypes.POINTER(FrontendState)]
    lib.FrontendFreeStateContents.restype = None
    return lib


def _array(pointer, count: int, ctype) -> np.ndarray:
    if not pointer or count < 0:
        raise TinydriftError("TensorFlow's FrontendPopulateState left a table unset")
    address = ctypes.cast(pointer, ctypes.c_void_p).value
    return np.array((ctype * count).from_address(address), copy=True)


@dataclass
class FrontendTables:
    """Everything FrontendPopulateState computes, as the device needs it."""

    params: dict
    tensorflow_version: str
    sample_rate: int
    window_size: int
    window_step: int
    window_coefficients: np.ndarray  # int16[window_size]
    fft_size: int
    kiss_nfft: int  # complex FFT size inside kiss_fftr: fft_size / 2
    kiss_factors: np.ndarray  # int32[2 * KISS_MAXFACTORS]
    kiss_twiddles: np.ndarray  # int16[kiss_nfft, 2]
    kiss_super_twiddles: np.ndarray  # int16[kiss_nfft / 2, 2]
    num_channels: int
    filterbank_start_index: int
    filterbank_end_index: int
    channel_frequency_starts: np.ndarray  # int16[num_channels + 1]
    channel_weight_starts: np.ndarray
    channel_widths: np.ndarray
    weights: np.ndarray  # int16[num_weights]
    unweights: np.ndarray
    noise_smoothing_bits: int
    noise_even_smoothing: int
    noise_odd_smoothing: int
    noise_min_signal_remaining: int
    pcan_enable: int
    pcan_snr_shift: int
    pcan_gain_lut: np.ndarray  # int16[PCAN_GAIN_LUT_SIZE]
    log_enable: int
    log_scale_shift: int

    def flash_bytes(self) -> dict[str, int]:
        """Bytes of each const table on the device (kiss_fft_state's header included)."""
        kiss_head = ctypes.sizeof(KissFftStateHead)
        return {
            "window_coefficients": self.window_coefficients.nbytes,
            "fft_state": kiss_head + self.kiss_twiddles.nbytes,
            "fft_super_twiddles": self.kiss_super_twiddles.nbytes,
            "filterbank_indices": 3 * self.channel_widths.nbytes,
            "filterbank_weights": self.weights.nbytes + self.unweights.nbytes,
            "pcan_gain_lut": self.pcan_gain_lut.nbytes,
        }


def build_config(params: dict) -> FrontendConfig:
    config = FrontendConfig()
    config.window.size_ms = int(params["window_size"])
    config.window.step_size_ms = int(params["window_step"])
    config.filterbank.num_channels = int(params["num_channels"])
    config.filterbank.upper_band_limit = float(params["upper_band_limit"])
    config.filterbank.lower_band_limit = float(params["lower_band_limit"])
    config.noise_reduction.smoothing_bits = int(params["smoothing_bits"])
    config.noise_reduction.even_smoothing = float(params["even_smoothing"])
    config.noise_reduction.odd_smoothing = float(params["odd_smoothing"])
    config.noise_reduction.min_signal_remaining = float(params["min_signal_remaining"])
    config.pcan_gain_control.enable_pcan = int(bool(params["enable_pcan"]))
    config.pcan_gain_control.strength = float(params["pcan_strength"])
    config.pcan_gain_control.offset = float(params["pcan_offset"])
    config.pcan_gain_control.gain_bits = int(params["gain_bits"])
    config.log_scale.enable_log = int(bool(params["enable_log"]))
    config.log_scale.scale_shift = int(params["scale_shift"])
    return config


def _pcan_lut_without_padding(lut: np.ndarray) -> np.ndarray:
    """The gain LUT with its never-read slots zeroed.

    PcanGainControlPopulateState fills 3 of every 4 entries from index 2 on (y0, a1, a2 of
    each interval) in malloc'ed memory; WideDynamicFunction never reads the fourth, which
    holds whatever the heap held. Zero it so the header is reproducible.
    """
    lut = lut.copy()
    lut[5::4] = 0
    return lut


def _kiss_factors_without_padding(factors: np.ndarray) -> np.ndarray:
    """kissfft's (radix, stride) pairs, zero after the pair whose stride is 1.

    kf_factor writes pairs until the stride reaches 1 and kf_work stops there; the rest of
    the array is malloc'ed memory never written nor read. Zero it for a reproducible header.
    """
    factors = factors.copy()
    strides = factors[1::2]
    last = int(np.argmax(strides == 1)) if np.any(strides == 1) else None
    if last is None:
        raise TinydriftError("TensorFlow's kissfft factors never reach stride 1: layout mismatch")
    factors[2 * last + 2:] = 0
    return factors


def compute_tables(params: dict | None = None, library: ctypes.CDLL | None = None) -> FrontendTables:
    """Run TensorFlow's FrontendPopulateState (or `library`'s) for `params` and copy its tables out."""
    params = dict(host_frontend_parameters() if params is None else params)
    check_parameters(params)
    lib = tf_microfrontend_library() if library is None else library
    config = build_config(params)
    state = FrontendState()
    sample_rate = int(params["sample_rate"])
    if not lib.FrontendPopulateState(ctypes.byref(config), ctypes.byref(state), sample_rate):
        raise TinydriftError(f"TensorFlow's FrontendPopulateState rejected the parameters {params}")
    try:
        window, fft, bank = state.window, state.fft, state.filterbank
        noise, pcan, log = state.noise_reduction, state.pcan_gain_control, state.log_scale
        fftr = KissFftrState.from_address(fft.scratch)
        head = KissFftStateHead.from_address(fftr.substate)
        nfft = head.nfft
        if head.inverse != 0 or nfft != fft.fft_size // 2:
            raise TinydriftError(
                f"TensorFlow's kissfft state has nfft={nfft}, inverse={head.inverse} for an FFT of "
                f"{fft.fft_size}: its layout differs from kissfft's; update KissFftStateHead"
            )
        twiddle_address = fftr.substate + ctypes.sizeof(KissFftStateHead)
        channels = bank.num_channels
        widths = _array(bank.channel_widths, channels + 1, ctypes.c_int16)
        weight_starts = _array(bank.channel_weight_starts, channels + 1, ctypes.c_int16)
        num_weights = int((weight_starts.astype(np.int64) + widths).max())
        tables = FrontendTables(
            params=params,
            tensorflow_version=_tensorflow_version(),
            sample_rate=sample_rate,
            window_size=window.size,
            window_step=window.step,
            window_coefficients=_array(window.coefficients, window.size, ctypes.c_int16),
            fft_size=fft.fft_size,
            kiss_nfft=nfft,
            kiss_factors=_kiss_factors_without_padding(np.array(head.factors, dtype=np.int32)),
            kiss_twiddles=_array(twiddle_address, 2 * nfft, ctypes.c_int16).reshape(nfft, 2),
            kiss_super_twiddles=_array(fftr.super_twiddles, nfft, ctypes.c_int16).reshape(nfft // 2, 2),
            num_channels=channels,
            filterbank_start_index=bank.start_index,
            filterbank_end_index=bank.end_index,
            channel_frequency_starts=_array(bank.channel_frequency_starts, channels + 1, ctypes.c_int16),
            channel_weight_starts=weight_starts,
            channel_widths=widths,
            weights=_array(bank.weights, num_weights, ctypes.c_int16),
            unweights=_array(bank.unweights, num_weights, ctypes.c_int16),
            noise_smoothing_bits=noise.smoothing_bits,
            noise_even_smoothing=noise.even_smoothing,
            noise_odd_smoothing=noise.odd_smoothing,
            noise_min_signal_remaining=noise.min_signal_remaining,
            pcan_enable=pcan.enable_pcan,
            pcan_snr_shift=pcan.snr_shift,
            pcan_gain_lut=_pcan_lut_without_padding(_array(pcan.gain_lut, PCAN_GAIN_LUT_SIZE, ctypes.c_int16)),
            log_enable=log.enable_log,
            log_scale_shift=log.scale_shift,
        )
    finally:
        lib.FrontendFreeStateContents(ctypes.byref(state))
    return tables


def _tensorflow_version() -> str:
    for dist in ("tensorflow-cpu", "tensorflow"):
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    return "unknown"


# --- the header ------------------------------------------------------------------------------


def _c_list(values, per_line: int = 12, indent: str = "    ") -> str:
    """A brace-free, comma-separated C initializer body, one macro continuation per line."""
    items = [str(int(v)) for v in np.asarray(values).ravel()]
    lines = [", ".join(items[i:i + per_line]) for i in range(0, len(items), per_line)]
    return (", \\\n" + indent).join(lines)


def _c_pairs(pairs, per_line: int = 6, indent: str = "    ") -> str:
    items = [f"{{{int(r)}, {int(i)}}}" for r, i in np.asarray(pairs)]
    lines = [", ".join(items[i:i + per_line]) for i in range(0, len(items), per_line)]
    return (", \\\n" + indent).join(lines)


def render_header(tables: FrontendTables, template: Path = TEMPLATE) -> str:
    """The generated header's text: `template` with the tables filled in."""
    t = tables
    params = "\n *   ".join(
        textwrap.wrap(", ".join(f"{k}={v!r}" for k, v in sorted(t.params.items()) if k not in _NOT_IN_TABLES),
                      width=84)
    )
    values = {
        "tensorflow_version": t.tensorflow_version,
        "parameters": params,
        "sample_rate": t.sample_rate,
        "window_size": t.window_size,
        "fft_size": t.fft_size,
        "kiss_nfft": t.kiss_nfft,
        "num_channels": t.num_channels,
        "filterbank_start_index": t.filterbank_start_index,
        "filterbank_end_index": t.filterbank_end_index,
        "num_weights": len(t.weights),
        "noise_smoothing_bits": t.noise_smoothing_bits,
        "noise_even_smoothing": t.noise_even_smoothing,
        "noise_odd_smoothing": t.noise_odd_smoothing,
        "noise_min_signal_remaining": t.noise_min_signal_remaining,
        "pcan_enable": t.pcan_enable,
        "pcan_snr_shift": t.pcan_snr_shift,
        "pcan_gain_lut_size": len(t.pcan_gain_lut),
        "log_enable": t.log_enable,
        "log_scale_shift": t.log_scale_shift,
        "flash_bytes": sum(t.flash_bytes().values()),
        "window_coefficients": _c_list(t.window_coefficients),
        "kiss_factors": _c_list(t.kiss_factors),
        "kiss_first_twiddle": _c_pairs(t.kiss_twiddles[:1]),
        "kiss_other_twiddles": _c_pairs(t.kiss_twiddles[1:]),
        "kiss_super_twiddles": _c_pairs(t.kiss_super_twiddles),
        "channel_frequency_starts": _c_list(t.channel_frequency_starts),
        "channel_weight_starts": _c_list(t.channel_weight_starts),
        "channel_widths": _c_list(t.channel_widths),
        "weights": _c_list(t.weights),
        "unweights": _c_list(t.unweights),
        "pcan_gain_lut": _c_list(t.pcan_gain_lut),
    }
    try:
        return string.Template(Path(template).read_text()).substitute(values)
    except (KeyError, ValueError) as exc:
        raise TinydriftError(f"{template}: bad placeholder {exc}; it must match render_header") from exc


def write_header(path: Path = DEFAULT_HEADER, tables: FrontendTables | None = None) -> FrontendTables:
    """Generate the tables from the host front end's parameters and write the header atomically."""
    tables = compute_tables() if tables is None else tables
    atomic.write_text(path, render_header(tables))
    return tables
