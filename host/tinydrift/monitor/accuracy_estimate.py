"""The label-free accuracy estimate a reader of the device's log is shown, from an ATC figure
(the share of confident answers over a window of inferences, or the device's running one),
the confident answers per class of that window and the latched alarms.

ATC (Garg et al. 2022) counts the inferences whose confidence clears a threshold learned on
in-domain data. It reads the model's confidence, and under input drift the confidence stops
meaning what it meant on the reference (measured on the camera bench's pools: a blurred leaf,
a noisy or a black frame is classed with 0.8-1.0 confidence and 20-50 % accuracy; average
confidence, DoC, ATC on entropy and per-class thresholds miss by as much). What confident
wrong answers cannot hide is where they go: the model's predicted classes pile onto one or
two. If the true class mix is the reference's, a class cannot be right more often than it
occurs, so the confident answers given to a class beyond its share of the reference mix are
wrong, though ATC counts them right: the estimate is ATC less that excess (less what the
excess reads by chance on a window of that many answers, so a short window does not read as
a loss). That assumption (no label shift) is only taken once the input itself moved
(DATA_DRIFT or CONFIDENCE_DRIFT latched); a moved class mix alone is a label shift, where ATC
stays right. While SENSOR_FAULT is latched nothing is estimated: the frames are not the
scene's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.special import erfc

from tinydrift.monitor.config import ALARM_CONFIDENCE_DRIFT, ALARM_DATA_DRIFT, ALARM_SENSOR_FAULT

INPUT_MOVED = ALARM_DATA_DRIFT | ALARM_CONFIDENCE_DRIFT
CAPPED = "ATC less confident answers beyond the reference class mix"

# Below this many points, an alarm's estimated accuracy impact is within what the estimate
# wanders on its own: the shift is reported as harmless so far.
HARMLESS_POINTS = 2.0
# Fewer answers than this since an alarm are too few to estimate over (on a 90 % model the
# share of confident ones wanders by 6 points on 32 answers, 27 on one, which reads 0 or
# 100 %): a severity line then shows the device's running ATC, and says so. The bench reads
# its lines later (pipeline.drift_pools.SEVERITY_READ_AFTER).
MIN_ANSWERS = 32


@dataclass(frozen=True)
class AccuracyEstimate:
    value: float | None  # None: withheld
    basis: str  # "ATC", CAPPED (the class mix took some off) or "withheld: sensor fault"

    def text(self) -> str:
        if self.value is None:
            return f"accuracy estimate {self.basis}"
        return f"estimated accuracy {100 * self.value:.1f} % ({self.basis})"


def confident_excess(confident: np.ndarray, n: np.ndarray | int, prior: np.ndarray) -> np.ndarray:
    """The share of `n` answers that were confident (ATC counts them right) in a class beyond
    that class's share of the reference mix, less what it reads on `n` answers of the
    reference mix itself (each class's confident count drawn as a binomial of the window's
    confident share times its prior, in the normal approximation). `confident` [..., K]:
    the confident answers per class; `prior` [K]: the reference's class frequencies."""
    confident = np.asarray(confident, dtype=np.float64)
    prior = np.asarray(prior, dtype=np.float64)
    prior = prior / prior.sum()
    n = np.maximum(np.asarray(n, dtype=np.float64), 1.0)[..., None]
    share = confident / n
    excess = np.maximum(share - prior, 0.0).sum(axis=-1)
    # by chance: E[max(0, X - p)] for X ~ N(a p, a p (1 - a p) / n), a the confident share
    mean = share.sum(axis=-1, keepdims=True) * prior
    sd = np.sqrt(np.maximum(mean * (1 - mean), 1e-12) / n)
    d = (prior - mean) / sd
    density, upper_tail = np.exp(-0.5 * d * d) / math.sqrt(2 * math.pi), 0.5 * erfc(d / math.sqrt(2))
    chance = (sd * density - (prior - mean) * upper_tail).sum(axis=-1)
    return np.maximum(excess - chance, 0.0)


def accuracy_estimate(atc: float, confident: np.ndarray | None, n: int, prior: np.ndarray | None,
                      alarms: int) -> AccuracyEstimate:
    """The estimate for one device: `atc` its ATC figure (0..1); `confident` the confident
    answers per class (confidence at or over the ATC level) among `n` answers since the change
    (or a recent window); `prior` the reference's class frequencies (either None: ATC only);
    `alarms` its latched alarm bits."""
    if alarms & ALARM_SENSOR_FAULT:
        return AccuracyEstimate(None, "withheld: sensor fault")
    if alarms & INPUT_MOVED and confident is not None and prior is not None and n > 0:
        excess = float(confident_excess(confident, n, prior))
        if excess > 0:
            return AccuracyEstimate(max(0.0, float(atc) - excess), CAPPED)
    return AccuracyEstimate(float(atc), "ATC")


def estimate_since_alarm(running_atc: float, confident: np.ndarray | None, answers: int,
                         prior: np.ndarray | None, alarms: int) -> AccuracyEstimate:
    """A severity line's "now": over the `answers` since the alarm, the share of confident
    ones (`confident`: their count per class) as the ATC figure, less the class-mix excess;
    the device's running ATC instead while fewer than MIN_ANSWERS have come or the confident
    answers are not known (no ATC level). The report (logbook.store.alarm_severity) and the
    bench (monitor.calibrate.SeverityLines) both read it so."""
    if confident is None or answers < MIN_ANSWERS:
        return accuracy_estimate(running_atc, None, 0, None, alarms)
    return accuracy_estimate(float(np.sum(confident)) / answers, confident, answers, prior, alarms)
