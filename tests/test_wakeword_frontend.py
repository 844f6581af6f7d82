"""The 10 ms-step streaming front end of microWakeWord's models: the device's C against the
host twin (TF's op) over long espeak-ng streams with resets, the twin against
pymicro-features, and the int8 input against pymicro-wakeword's own preprocessing."""

from __future__ import annotations

import ctypes
import json
import shutil
from fractions import Fraction

import numpy as np
import pytest

from tinydrift import firmware
from tinydrift.codegen import frontend_tables as ft
from tinydrift.data.synth import coloured_noise, speak
from tinydrift.errors import TinydriftError
from tinydrift.frontend import NUM_CHANNELS, SAMPLE_RATE, WAKEWORD_STEP_MS, frames_in, stream_uint16, uint16_to_int8
from tinydrift.target.host_frontend import NativeFrontend, build_frontend_library
from tinydrift.wakeword.config import load_wakeword
from tinydrift.wakeword.stream import input_blocks, stream_input_blocks

pytest.importorskip("pymicro_wakeword", reason="the wakeword extra is not installed (scripts/setup.sh)")
from pymicro_features import MicroFrontend  # noqa: E402
from pymicro_wakeword import MicroWakeWord, MicroWakeWordFeatures  # noqa: E402

HOP = SAMPLE_RATE * WAKEWORD_STEP_MS // 1000  # 160
# pymicro-features returns each uint16 output v as the float v * 0.0390625 (= v / 25.6).
PYMICRO_FEATURE_SCALE = 0.0390625

SENTENCES = [
    "okay nabu, turn on the kitchen lights",
    "hey jarvis, what is the weather like today",
    "alexa, play some music in the living room",
    "hey mycroft, set a timer for ten minutes",
    "the quick brown fox jumps over the lazy dog",
    "could you read me the news from this morning",
]
VOICES = ["en+m1", "en+f2", "en-us+m3", "en+f4", "en-gb+m7", "en-us+f1"]


def speech_stream(seconds: float, seed: int) -> np.ndarray:
    """Real-ish audio: espeak-ng sentences at levels from quiet to clipping, gaps of
    silence, coloured background noise whose level changes every few seconds (the noise
    estimate must follow it), and a stretch of loud noise alone."""
    rng = np.random.default_rng(seed)
    total = int(seconds * SAMPLE_RATE)
    speech = np.zeros(total)
    position = int(0.3 * SAMPLE_RATE)
    while position < total:
        voice = VOICES[rng.integers(len(VOICES))].split("+")
        words = speak(SENTENCES[rng.integers(len(SENTENCES))], voice[0], voice[1],
                      int(rng.integers(20, 80)), int(rng.integers(130, 190)))
        words = words / (np.abs(words).max() + 1e-12) * 10 ** (rng.uniform(-40, 3) / 20)
        length = min(len(words), total - position)
        speech[position:position + length] = words[:length]
        position += length + int(rng.uniform(0.1, 2.0) * SAMPLE_RATE)
    noise = np.zeros(total)
    for start in range(0, total, 4 * SAMPLE_RATE):
        end = min(start + 4 * SAMPLE_RATE, total)
        kind = ["white", "pink", "brown"][rng.integers(3)]
        noise[start:end] = coloured_noise(kind, end - start, rng) * 10 ** (rng.uniform(-75, -30) / 20)
    loud = slice(total // 2, total // 2 + 2 * SAMPLE_RATE)
    speech[loud] = 0
    noise[loud] *= 10 ** (20 / 20)
    return np.clip(np.round((speech + noise) * 32767), -32768, 32767).astype(np.int16)


@pytest.fixture(scope="module")
def stream() -> np.ndarray:
    return speech_stream(105, seed=14)


@pytest.fixture(scope="module")
def native() -> NativeFrontend:
    return NativeFrontend(step_ms=WAKEWORD_STEP_MS)


def pymicro_raw(pcm: np.ndarray, chunk_samples: int = 1000) -> np.ndarray:
    """pymicro-wakeword's features of `pcm` (fed in chunks as a microphone would), turned
    back into the front end's uint16 output, which v * 0.0390625 in float32 keeps exactly."""
    features = MicroWakeWordFeatures()
    frames = []
    for start in range(0, len(pcm), chunk_samples):
        frames += [np.asarray(f).reshape(NUM_CHANNELS) for f in features.process_streaming(
            pcm[start:start + chunk_samples].tobytes())]
    values = np.array(frames)
    raw = np.round(values / PYMICRO_FEATURE_SCALE)
    assert np.array_equal((raw * np.float32(PYMICRO_FEATURE_SCALE)).astype(np.float32), values.astype(np.float32))
    return raw.astype(np.uint16)


def test_c_streams_bit_exact_with_host_over_10k_frames_with_resets(native, stream):
    """Reset at arbitrary sample positions (one segment shorter than a window, one ending
    mid-hop): per segment, the C fed hop by hop equals TF's op over the whole segment."""
    cuts = [0, 123_457, 123_457 + 300, 600_001, 1_100_000, 1_400_017, len(stream)]
    frames = 0
    for start, end in zip(cuts[:-1], cuts[1:]):
        segment = stream[start:end]
        native.reset()
        device = native.process_stream_raw(segment)
        host = stream_uint16(segment)
        assert device.shape == host.shape == (frames_in(len(segment), WAKEWORD_STEP_MS), NUM_CHANNELS)
        assert np.array_equal(device, host), f"segment {start}:{end}"
        frames += len(host)
    assert frames >= 10_000
    # The whole range of the output is exercised, loud and quiet.
    everything = stream_uint16(stream)
    assert everything.min() == 0 and everything.max() > 600


def test_c_int8_frames_equal_the_host_input_blocks(native, stream):
    segment = stream[:30 * SAMPLE_RATE]
    native.reset()
    frames, position = [], 0
    while position + native.hop_samples() <= len(segment):
        hop = native.hop_samples()
        frames.append(native.process_hop(segment[position:position + hop]))
        position += hop
    assert np.array_equal(input_blocks(np.array(frames)), stream_input_blocks(segment))


def test_state_carries_across_the_stream(native, stream):
    """The noise estimate and PCAN run on from the stream's start: 20 s in, the frames
    differ from those of a front end reset there, and the C agrees with the twin on both."""
    at = 20 * SAMPLE_RATE
    part = stream[at:at + 5 * SAMPLE_RATE]
    whole = stream_uint16(stream[:at + 5 * SAMPLE_RATE])
    continued = whole[at // HOP:]  # the frames whose windows lie in `part`
    fresh = stream_uint16(part)
    assert continued.shape == fresh.shape
    print(f"20 s into the stream, {np.mean(continued != fresh):.0%} of 5 s of frames differ from a fresh start's")
    assert np.mean(continued != fresh) > 0.05
    native.reset()
    assert np.array_equal(native.process_stream_raw(stream[:at + 5 * SAMPLE_RATE])[at // HOP:], continued)
    native.reset()
    assert np.array_equal(native.process_stream_raw(part), fresh)


def test_step_is_a_build_setting():
    """The 20 ms build (the kws models') and the 10 ms build differ only in the step: the
    same tables serve both, and a clip gives 49 and 98 frames."""
    assert ft.render_header(ft.compute_tables(ft.host_frontend_parameters(WAKEWORD_STEP_MS))) == \
        ft.DEFAULT_HEADER.read_text()
    clip = speech_stream(1, seed=3)
    kws, wake = NativeFrontend(), NativeFrontend(step_ms=WAKEWORD_STEP_MS)
    assert kws.state_bytes == wake.state_bytes
    assert kws.process_clip_raw(clip).shape == (49, NUM_CHANNELS)
    wake_clip = wake.process_clip_raw(clip)
    assert wake_clip.shape == (98, NUM_CHANNELS)
    assert np.array_equal(wake_clip, stream_uint16(clip))
    wake.reset()
    assert wake.hop_samples() == 480
    wake.process_hop_raw(clip[:480])
    assert wake.hop_samples() == HOP


def test_a_step_the_window_cannot_cover_does_not_build():
    with pytest.raises(TinydriftError, match="TD_FRONTEND_STEP_MS must be 1 to 30"):
        build_frontend_library(step_ms=40)


def test_host_matches_pymicro_features_but_for_its_tables(stream):
    """pymicro-features runs the same per-frame C, but fills its tables at init in single
    precision where TF's op (the host twin, the device's tables, microWakeWord's training)
    uses double: one window coefficient and three filterbank weights differ by one. That
    alone moves about 0.1 % of the values (0.0975 % here); everything else is equal."""
    segment = stream[:60 * SAMPLE_RATE]
    host = stream_uint16(segment)
    reference = pymicro_raw(segment)
    assert reference.shape == host.shape
    differ = np.mean(reference != host)
    assert 0 < differ < 0.002, differ
    print(f"pymicro-features vs TF's op: {differ:.4%} of {host.size} values differ")


def _pymicro_features_tables() -> ft.FrontendTables:
    import micro_features_cpp

    library = ft.microfrontend_library(micro_features_cpp.__file__, remedy="reinstall pymicro-features")
    return ft.compute_tables(ft.host_frontend_parameters(WAKEWORD_STEP_MS), library=library)


def test_device_c_with_pymicro_features_tables_equals_it_bit_for_bit(tmp_path, stream):
    """The whole difference is in the tables: the device's C built with the tables
    pymicro-features' own init computes gives its output to the bit."""
    theirs, ours = _pymicro_features_tables(), ft.compute_tables()
    changed = {name for name in ("window_coefficients", "weights", "unweights", "pcan_gain_lut", "kiss_twiddles",
                                 "kiss_super_twiddles", "channel_frequency_starts", "channel_widths")
               if not np.array_equal(getattr(theirs, name), getattr(ours, name))}
    assert changed == {"window_coefficients", "weights", "unweights"}
    assert np.count_nonzero(theirs.window_coefficients != ours.window_coefficients) == 1
    assert np.count_nonzero(theirs.weights != ours.weights) == 3

    folder = tmp_path / "frontend"
    shutil.copytree(firmware.stage_dir("frontend"), folder)
    (folder / "td_frontend_tables.h").write_text(ft.render_header(theirs))
    sources, include_dirs, defines = firmware.frontend_build_inputs(WAKEWORD_STEP_MS)
    own = {p.name for p in firmware.stage_sources("frontend")}
    sources = [folder / p.name if p.name in own else p for p in sources]
    include_dirs = [folder, *include_dirs[1:]]
    library = firmware.compile_host(sources, tmp_path / "frontend_pymicro.so", include_dirs=include_dirs,
                                    defines=defines)
    device = NativeFrontend(library, step_ms=WAKEWORD_STEP_MS)
    segment = stream[:60 * SAMPLE_RATE]
    assert np.array_equal(device.process_stream_raw(segment), pymicro_raw(segment))


def test_pymicro_features_resets_like_the_device(native, stream):
    """Its reset, like td_frontend_reset, starts the noise estimate over."""
    frontend = MicroFrontend()
    segment = stream[:3 * SAMPLE_RATE]
    first = [frontend.process_samples(segment[i:i + HOP].tobytes()).features for i in range(0, 480, HOP)]
    frontend.reset()
    again = [frontend.process_samples(segment[i:i + HOP].tobytes()).features for i in range(0, 480, HOP)]
    assert first == again and len(first[-1]) == NUM_CHANNELS and not first[0]


def _exact_input(raw: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """What the input tensor's quantization means for front-end output v: real v / 25.6,
    quantized as round(real / scale) + zero_point, in exact rationals (half to even)."""
    values = np.unique(raw)
    table = {int(v): round(Fraction(int(v) * 10, 256) / Fraction(scale)) + zero_point for v in values}
    return np.vectorize(table.__getitem__)(raw.astype(np.int64))


def test_int8_input_against_pymicro_wakeword(stream):
    """pymicro-wakeword quantizes features with the input tensor's scale and zero point
    (exactly round(v / 25.6 / s) + z); the device, as ESPHome, uses (256 v + 333) // 666 - 128,
    which gives one more wherever the two roundings part (8 % of the values of speech)."""
    model = load_wakeword("okay_nabu")
    assert (model.input_scale, model.input_zero_point) == (np.float32(26 / 255), -128)
    segment = stream[:60 * SAMPLE_RATE]
    raw = pymicro_raw(segment)
    wakeword = MicroWakeWord.from_config(model.config_path)
    tensors = []
    for index, frame in enumerate(raw):
        wakeword.process_streaming_prob((frame * PYMICRO_FEATURE_SCALE).reshape(1, 1, NUM_CHANNELS))
        if index % model.stride == model.stride - 1:
            block = np.empty((model.stride, NUM_CHANNELS), np.int8)
            wakeword.lib.TfLiteTensorCopyToBuffer(wakeword.input_tensor, block.ctypes.data_as(ctypes.c_void_p),
                                                  block.nbytes)
            tensors.append(block)
    theirs = np.array(tensors)
    assert raw.max() <= 666  # above, pymicro-wakeword's cast to int8 wraps
    blocks_raw = raw[:len(theirs) * model.stride].reshape(theirs.shape)
    assert np.array_equal(theirs, _exact_input(blocks_raw, model.input_scale, model.input_zero_point))

    device = input_blocks(uint16_to_int8(raw), model.stride)
    assert device.shape == theirs.shape
    step = device.astype(int) - theirs
    assert set(np.unique(step)) <= {0, 1}
    one_more = _exact_input(np.arange(667), model.input_scale, model.input_zero_point) != \
        uint16_to_int8(np.arange(667, dtype=np.uint16))
    assert np.count_nonzero(one_more) == 282 and np.flatnonzero(one_more)[0] == 30
    assert np.array_equal(step == 1, one_more[blocks_raw])
    print(f"device int8 input one above pymicro-wakeword's on {np.mean(step):.2%} of {step.size} values")


def test_every_published_model_takes_these_blocks():
    for name in ("alexa", "hey_jarvis", "hey_mycroft", "okay_nabu"):
        model = load_wakeword(name)
        assert (model.stride, model.feature_step_ms) == (3, WAKEWORD_STEP_MS)
        assert (model.input_scale, model.input_zero_point) == (np.float32(26 / 255), -128)
        assert (model.output_scale, model.output_zero_point) == (1 / 256, 0)
        assert 0 < model.probability_cutoff <= 1 and model.sliding_window_size >= 1


@pytest.mark.skipif(shutil.which("arm-none-eabi-gcc") is None or shutil.which("qemu-system-arm") is None,
                    reason="arm-none-eabi-gcc or qemu-system-arm not installed")
def test_cortex_m4_streams_bit_exact_at_the_cost_of_the_20ms_build():
    """On the emulated Cortex-M4 the 10 ms build gives the host's frames (checksum over
    every frame of a 2 s stream), and a frame costs what a 20 ms build's frame costs: the
    shorter step doubles the frames per second, not the work per frame."""
    from click.testing import CliRunner

    from tinydrift.cli.main import main
    from tinydrift.target.bench import run_frontend_stream_bench

    result = CliRunner().invoke(main, ["bench", "frontend-stream", "--step-ms", "10", "--json"])
    assert result.exit_code == 0, result.output
    wake = json.loads(result.output)
    kws = run_frontend_stream_bench(20)
    assert all(wake["checks"].values()) and all(kws["checks"].values())
    assert (wake["frames"], kws["frames"]) == (198, 99)
    assert abs(wake["instructions_per_frame"] / kws["instructions_per_frame"] - 1) < 0.02
    assert wake["first_frame_instructions"] <= wake["max_frame_instructions"] * 1.05
    print(f"Cortex-M4, 10 ms step: {wake['instructions_per_frame']:,.0f} instructions per frame "
          f"(largest {wake['max_frame_instructions']:,}), {wake['stack_used_bytes']} B of stack")
