"""The label-free accuracy estimate a reader of the device's log is shown, from the device's
ATC figure, the predicted classes of the inferences since the change and the latched alarms.

ATC (Garg et al. 2022) counts the inferences whose confidence clears a threshold learned on
in-domain data. It reads the model's confidence, and under input drift the confidence stops
meaning what it meant on the reference (measured on the camera bench's pools: a blurred leaf,
a noisy or a black frame is classed with 0.8-1.0 confidence and 20-50 % accuracy; average
confidence, DoC, ATC on entropy and per-class thresholds miss by as much). What confident
wrong answers cannot hide is where they go: the model's predicted classes pile onto one or
two. If the true class mix is the reference's, the error rate is at least the total
variation distance between the predicted mix and it, so 1 - that distance bounds the
accuracy from above. That assumption (no label shift) is only taken once the input itself
moved (DATA_DRIFT or CONFIDENCE_DRIFT latched); a moved class mix alone is a label shift,
where ATC stays right. While SENSOR_FAULT is latched nothing is estimated: the frames are
not the scene's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from tinydrift.monitor.config import ALARM_CONFIDENCE_DRIFT, ALARM_DATA_DRIFT, ALARM_SENSOR_FAULT

INPUT_MOVED = ALARM_DATA_DRIFT | ALARM_CONFIDENCE_DRIFT

# Below this many points, an alarm's estimated accuracy impact is within what the estimate
# wanders on its own: the shift is reported as harmless so far.
HARMLESS_POINTS = 2.0


@dataclass(frozen=True)
class AccuracyEstimate:
    value: float | None  # None: withheld
    basis: str  # "ATC", "class mix" (the bound was lower) or "withheld: sensor fault"

    def text(self) -> str:
        if self.value is None:
            return f"accuracy estimate {self.basis}"
        return f"estimated accuracy {100 * self.value:.1f} % ({self.basis})"


def class_mix_bound(counts: np.ndarray, prior: np.ndarray) -> np.ndarray:
    """Upper bound on accuracy from predicted-class counts [..., K] against the reference's
    class frequencies [K]: 1 - (TV - what TV reads on n draws of the prior itself), the
    subtraction so that a short window does not read as a moved mix (the normal
    approximation of E|f - p| = sqrt(2 p (1 - p) / (pi n)) per class)."""
    counts = np.asarray(counts, dtype=np.float64)
    prior = np.asarray(prior, dtype=np.float64)
    prior = prior / prior.sum()
    n = np.maximum(counts.sum(axis=-1), 1.0)
    freq = counts / n[..., None]
    tv = 0.5 * np.abs(freq - prior).sum(axis=-1)
    null = np.sqrt(prior * (1 - prior)).sum() / np.sqrt(2 * math.pi * n)
    return 1.0 - np.clip(tv - null, 0.0, 1.0)


def accuracy_estimate(atc: float, counts: np.ndarray | None, prior: np.ndarray | None, alarms: int) -> AccuracyEstimate:
    """The estimate for one device: `atc` its ATC figure (0..1), `counts` its predicted
    classes since the change (or a recent window), `prior` the reference's class
    frequencies (None: ATC only), `alarms` its latched alarm bits."""
    if alarms & ALARM_SENSOR_FAULT:
        return AccuracyEstimate(None, "withheld: sensor fault")
    if alarms & INPUT_MOVED and counts is not None and prior is not None and np.sum(counts) > 0:
        bound = float(class_mix_bound(counts, prior))
        if bound < atc:
            return AccuracyEstimate(bound, "class mix")
    return AccuracyEstimate(float(atc), "ATC")
