"""The host front end: the one definition of the model's int8 input."""

import numpy as np
import pytest

from tinydrift.frontend import (
    CLIP_SAMPLES, NUM_CHANNELS, NUM_FRAMES, features_batch, features_int8, frontend_uint16, uint16_to_int8,
)


def test_shape_is_49_by_40():
    assert (NUM_FRAMES, NUM_CHANNELS) == (49, 40)
    pcm = (np.random.default_rng(0).standard_normal(CLIP_SAMPLES) * 2000).astype(np.int16)
    assert frontend_uint16(pcm).shape == (49, 40)
    assert features_int8(pcm).dtype == np.int8


def test_int8_map_is_micro_speech_integer_rule_over_the_whole_uint16_range():
    values = np.arange(65536, dtype=np.int64)
    expected = np.array([min(127, max(-128, (v * 256 + 333) // 666 - 128)) for v in values.tolist()])
    assert np.array_equal(uint16_to_int8(values.astype(np.uint16)).astype(np.int64), expected)


def test_louder_input_gives_larger_features_and_silence_the_floor():
    rng = np.random.default_rng(1)
    quiet = (rng.standard_normal(CLIP_SAMPLES) * 100).astype(np.int16)
    loud = (rng.standard_normal(CLIP_SAMPLES) * 8000).astype(np.int16)
    silent = np.zeros(CLIP_SAMPLES, np.int16)
    assert features_int8(loud).astype(int).mean() > features_int8(quiet).astype(int).mean()
    assert features_int8(silent).max() == -128


def test_batch_equals_single_clips():
    rng = np.random.default_rng(2)
    clips = (rng.standard_normal((5, CLIP_SAMPLES)) * 3000).astype(np.int16)
    batch = features_batch(clips)
    for clip, feats in zip(clips, batch):
        assert np.array_equal(features_int8(clip), feats)


@pytest.mark.parametrize("bad", [np.zeros(100, np.int16), np.zeros(CLIP_SAMPLES, np.float32)])
def test_wrong_input_is_refused(bad):
    with pytest.raises(ValueError, match="expected 16000 int16 samples"):
        features_int8(bad)
