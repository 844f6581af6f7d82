"""TFLite Micro's micro_speech front end, through TensorFlow's audio_microfrontend op.

This is the single definition of the model's input: training, calibration, reference
statistics, evaluation and the firmware's bit-exactness tests all call `features_int8`.

Pipeline per 1 s clip of 16 kHz int16 PCM:
  audio_microfrontend (30 ms window, 20 ms step, 40 channels, noise reduction, PCAN, log)
  -> 49 x 40 uint16 -> integer map to int8 (micro_speech's mapping, value * 256 / 666 - 128).
The int8 features are the model's input tensor as is: `tinydrift quantize` fixes the input
quantization to scale 1, zero point 0, so the device feeds them to the model unchanged.

microWakeWord's streaming models take the same front end with a 10 ms step over an endless
stream (`stream_uint16`): one state from the stream's start, so the noise estimate and PCAN
carry over from frame to frame as on the device. Their int8 input uses the same map
(ESPHome's micro_wake_word applies it on the device); tinydrift.wakeword says how it relates
to the models' input quantization.
"""

from __future__ import annotations

import numpy as np

SAMPLE_RATE = 16000
CLIP_SAMPLES = 16000
WINDOW_MS = 30
STEP_MS = 20
NUM_CHANNELS = 40
NUM_FRAMES = 1 + (CLIP_SAMPLES - SAMPLE_RATE * WINDOW_MS // 1000) // (SAMPLE_RATE * STEP_MS // 1000)  # 49
WAKEWORD_STEP_MS = 10  # microWakeWord's models ("feature_step_size" in their JSON)

# micro_speech maps the front end's uint16 output to int8 with this integer rule; the
# divisor is round(25.6 * 26) from its float training pipeline (value / 25.6 in [0, 26]).
INT8_SCALE_NUM = 256
INT8_SCALE_DEN = 666

_op = None


def _frontend_op():
    global _op
    if _op is None:
        import os

        from tinydrift.quiet import held_back

        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        # TensorFlow's import announces oneDNN through absl whatever the log level, and no
        # step around the data's feature extraction holds it back
        with held_back():
            from tensorflow.lite.experimental.microfrontend.python.ops import audio_microfrontend_op

        _op = audio_microfrontend_op.audio_microfrontend
    return _op


def frames_in(num_samples: int, step_ms: int) -> int:
    """Frames the front end makes from a reset over `num_samples` samples (no padding)."""
    window, step = SAMPLE_RATE * WINDOW_MS // 1000, SAMPLE_RATE * step_ms // 1000
    return 0 if num_samples < window else 1 + (num_samples - window) // step


def frontend_uint16(pcm: np.ndarray) -> np.ndarray:
    """49 x 40 uint16 front-end output for one clip of CLIP_SAMPLES int16 samples."""
    pcm = np.asarray(pcm)
    if pcm.dtype != np.int16 or pcm.shape != (CLIP_SAMPLES,):
        raise ValueError(f"expected {CLIP_SAMPLES} int16 samples, got {pcm.dtype} {pcm.shape}")
    out = microfrontend_uint16(pcm, STEP_MS)
    assert out.shape == (NUM_FRAMES, NUM_CHANNELS), out.shape
    return out


def stream_uint16(pcm: np.ndarray, step_ms: int = WAKEWORD_STEP_MS) -> np.ndarray:
    """[frames, 40] uint16 front-end output of one stream of int16 samples, from one reset.

    The state runs through the whole stream, as on a device that resets once and then feeds
    hop after hop; a stream with resets is the concatenation of its segments' outputs.
    Samples past the last whole window make no frame (they wait for the next hop).
    """
    pcm = np.asarray(pcm)
    if pcm.dtype != np.int16 or pcm.ndim != 1:
        raise ValueError(f"expected a 1-D stream of int16 samples, got {pcm.dtype} {pcm.shape}")
    if frames_in(len(pcm), step_ms) == 0:
        return np.zeros((0, NUM_CHANNELS), np.uint16)
    out = microfrontend_uint16(pcm, step_ms)
    assert out.shape == (frames_in(len(pcm), step_ms), NUM_CHANNELS), out.shape
    return out


def microfrontend_uint16(pcm: np.ndarray, step_ms: int) -> np.ndarray:
    """TF's op over int16 samples with a fresh state: one uint16 row of 40 per frame.

    The one call of the op: the device's tables are generated from its parameters
    (codegen/frontend_tables.py reads them from here), so both front ends agree by design.
    """
    op = _frontend_op()  # first: it imports TensorFlow quietly
    import tensorflow as tf

    return op(
        tf.constant(pcm),
        sample_rate=SAMPLE_RATE,
        window_size=WINDOW_MS,
        window_step=step_ms,
        num_channels=NUM_CHANNELS,
        # The remaining settings are the op's defaults, spelled out because the device
        # configuration is generated from these very values.
        upper_band_limit=7500.0,
        lower_band_limit=125.0,
        smoothing_bits=10,
        even_smoothing=0.025,
        odd_smoothing=0.06,
        min_signal_remaining=0.05,
        enable_pcan=True,
        pcan_strength=0.95,
        pcan_offset=80.0,
        gain_bits=21,
        enable_log=True,
        scale_shift=6,
        left_context=0,
        right_context=0,
        frame_stride=1,
        zero_padding=False,
        out_scale=1,
        out_type=tf.uint16,
    ).numpy()


def uint16_to_int8(values: np.ndarray) -> np.ndarray:
    """micro_speech's integer map from front-end output to the model's int8 input."""
    v = np.asarray(values, dtype=np.int32)
    q = (v * INT8_SCALE_NUM + INT8_SCALE_DEN // 2) // INT8_SCALE_DEN - 128
    return np.clip(q, -128, 127).astype(np.int8)


def stream_int8(pcm: np.ndarray, step_ms: int = WAKEWORD_STEP_MS) -> np.ndarray:
    """[frames, 40] int8: `stream_uint16` through micro_speech's map, frame by frame."""
    return uint16_to_int8(stream_uint16(pcm, step_ms))


def features_int8(pcm: np.ndarray) -> np.ndarray:
    """The model's 49 x 40 int8 input for one clip."""
    return uint16_to_int8(frontend_uint16(pcm))


def features_batch(clips: np.ndarray, progress=None) -> np.ndarray:
    """Features for an [N, CLIP_SAMPLES] int16 array; `progress(n)` is called as clips finish."""
    clips = np.asarray(clips)
    out = np.empty((len(clips), NUM_FRAMES, NUM_CHANNELS), dtype=np.int8)
    for i, clip in enumerate(clips):
        out[i] = features_int8(clip)
        if progress is not None:
            progress(1)
    return out
