"""The drift monitor's inputs for a streaming wake-word detector, as td_app_stream.c forms
them, and the monitor calibrated on reference sessions.

The monitor (tinydrift.monitor) is generic over an int16 input summary and an int8
class-probability vector; a binary detector feeds it unchanged:

- summary: td_summarize_frames of each inference's input block (3 int8 frames x 40
  channels), the per-channel mean x 2^7: the device already computes it (app->summary);
- probabilities: the uint8 sigmoid p (scale 1/256) as the 2-class vector [1 - p, p] in
  the monitor's int8 code q = 256 P - 128, i.e. [127 - p, p - 128] (the two sum to 255/256,
  as the keyword model's softmax does). Then confidence = max(p, 1 - p), the entropy score
  is the sigmoid's binary entropy, and the label score's class histogram is the share of
  inferences with p >= 1/2 against the reference's: the wake rate.

What the mapping loses: the wake rate is counted at 1/2, not at the detector's cutoff
(0.85 for okay_nabu) nor after its sliding window and hold-off, so it counts inferences
that lean to the wake word rather than wake events; and there is no score of the mass
just below the cutoff (near misses), which only the confidence and entropy see blurred.
"""

from __future__ import annotations

import numpy as np

from tinydrift.monitor.twin import summarize_frames
from tinydrift.wakeword.config import WakewordModel
from tinydrift.wakeword.stream import stream_input_blocks

WAKE_CLASS = 1


def detector_probs(probability_u8: np.ndarray) -> np.ndarray:
    """int8 [n, 2] monitor probabilities [1 - p, p] of uint8 sigmoid outputs p [n]."""
    p = np.asarray(probability_u8)
    if p.dtype != np.uint8 or p.ndim != 1:
        raise ValueError(f"expected uint8 probabilities [n], got {p.dtype} {p.shape}")
    wide = p.astype(np.int16)
    return np.stack([127 - wide, wide - 128], axis=1).astype(np.int8)


def monitor_inputs(pcm: np.ndarray, model: WakewordModel) -> tuple[np.ndarray, np.ndarray]:
    """Per inference of one stream (a front-end reset at its start): the input summary int16
    [n, 40] and the model's uint8 probability [n], on TFLite Micro (which the generated C
    equals on every invocation, tests/test_wakeword_models.py)."""
    from tinydrift.model.runtimes import run_tflm

    blocks = stream_input_blocks(np.asarray(pcm, np.int16), model.stride)
    if not len(blocks):
        return np.zeros((0, blocks.shape[-1]), np.int16), np.zeros(0, np.uint8)
    return summarize_frames(blocks), run_tflm(model.model, blocks)[:, 0].astype(np.uint8)


def session_samples(sessions: list[np.ndarray], model: WakewordModel, first_group: int = 0) -> dict:
    """The monitor's samples of sessions (each its own stream and group, in stream order):
    summaries, int8 probabilities, the uint8 probability and the group of every inference."""
    parts = [monitor_inputs(pcm, model) for pcm in sessions]
    groups = np.concatenate([np.full(len(s), first_group + i, np.int64) for i, (s, _) in enumerate(parts)])
    probability = np.concatenate([p for _, p in parts])
    return {"summaries": np.concatenate([s for s, _ in parts]), "probs": detector_probs(probability),
            "probability": probability, "groups": groups}
