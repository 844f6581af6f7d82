"""The audio front end on the host: same arithmetic as the device (see features.py); the firmware stage it twins is firmware/lib/tinydrift/src/frontend."""

from tinydrift.frontend.features import (
    CLIP_SAMPLES,
    NUM_CHANNELS,
    NUM_FRAMES,
    SAMPLE_RATE,
    WAKEWORD_STEP_MS,
    frames_in,
    frontend_uint16,
    stream_int8,
    stream_uint16,
    features_int8,
    features_batch,
    uint16_to_int8,
)

__all__ = [
    "CLIP_SAMPLES",
    "NUM_CHANNELS",
    "NUM_FRAMES",
    "SAMPLE_RATE",
    "WAKEWORD_STEP_MS",
    "frames_in",
    "frontend_uint16",
    "stream_int8",
    "stream_uint16",
    "features_int8",
    "features_batch",
    "uint16_to_int8",
]
