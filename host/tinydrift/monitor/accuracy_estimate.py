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

The mix the excess is read against is the one the device heard before the change (its
answers' classes up to the estimated change point), not the training set's: no deployment
hears the training mix (a keyword spotter hears mostly fillers and silence), and against the
reference mix every class a deployment hears more often reads as confident wrong answers (on
the quick keyword bench's filler room, five times the fillers before and after noise at 0 dB:
0.73 against a true 0.83, where the reference mix read 0.66; in the reference mix the two
read within a point of each other). Where fewer than MIN_ANSWERS answers came before the
change, the reference mix stands in.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.special import erfc

from tinydrift.monitor.config import ALARM_CONFIDENCE_DRIFT, ALARM_DATA_DRIFT, ALARM_SENSOR_FAULT

INPUT_MOVED = ALARM_DATA_DRIFT | ALARM_CONFIDENCE_DRIFT
CAPPED = "ATC less confident answers beyond the class mix heard before the change"
CAPPED_REFERENCE = "ATC less confident answers beyond the reference class mix"
CAPPED_BASES = (CAPPED, CAPPED_REFERENCE)

# Below this many points, an alarm's estimated accuracy impact is within what the estimate
# wanders on its own: the shift is reported as harmless so far.
HARMLESS_POINTS = 2.0
# What a severity line calls the change its estimate shows (impact_verdict).
HARMLESS = "harmless so far"
UNCLEAR = "too few answers to tell from none yet"
IMPACT = "estimated impact"
# Fewer answers than this since an alarm are too few to estimate over (on a 90 % model the
# share of confident ones wanders by 6 points on 32 answers, 27 on one, which reads 0 or
# 100 %): a severity line then shows the device's running ATC, and says so. The bench reads
# its lines later (pipeline.drift_pools.SEVERITY_READ_AFTER).
MIN_ANSWERS = 32


@dataclass(frozen=True)
class ClassMix:
    """What the class-mix excess is read against: the classes of the device's answers before
    the change, counted on `n` answers (their sampling noise goes into the chance term), or
    the reference's class frequencies (n None: taken as exact)."""

    share: np.ndarray
    n: int | None = None

    @staticmethod
    def heard(predicted_before: np.ndarray, prior: np.ndarray | None) -> "ClassMix | None":
        """The mix of the answers `predicted_before` (their predicted classes), as many
        classes as `prior` has; the reference's (`prior`) where fewer than MIN_ANSWERS came."""
        if prior is None:
            return None
        predicted_before = np.asarray(predicted_before, dtype=np.int64)
        predicted_before = predicted_before[(predicted_before >= 0) & (predicted_before < len(prior))]
        if len(predicted_before) < MIN_ANSWERS:
            return ClassMix(np.asarray(prior, dtype=np.float64))
        counts = np.bincount(predicted_before, minlength=len(prior))
        return ClassMix(counts / counts.sum(), int(counts.sum()))

    @property
    def capped_basis(self) -> str:
        return CAPPED_REFERENCE if self.n is None else CAPPED


@dataclass(frozen=True)
class AccuracyEstimate:
    value: float | None  # None: withheld
    basis: str  # "ATC", CAPPED (the class mix took some off) or "withheld: sensor fault"

    def text(self) -> str:
        if self.value is None:
            return f"accuracy estimate {self.basis}"
        return f"estimated accuracy {100 * self.value:.1f} % ({self.basis})"


def confident_excess(confident: np.ndarray, n: np.ndarray | int, mix: ClassMix) -> np.ndarray:
    """The share of `n` answers that were confident (ATC counts them right) in a class beyond
    that class's share of `mix`, less what it reads on `n` answers of that mix itself (each
    class's confident count drawn as a binomial of the window's confident share times its
    share of the mix, in the normal approximation; a mix counted on mix.n answers adds its
    own binomial noise). `confident` [..., K]: the confident answers per class."""
    confident = np.asarray(confident, dtype=np.float64)
    prior = np.asarray(mix.share, dtype=np.float64)
    prior = prior / prior.sum()
    n = np.maximum(np.asarray(n, dtype=np.float64), 1.0)[..., None]
    share = confident / n
    excess = np.maximum(share - prior, 0.0).sum(axis=-1)
    # by chance: E[max(0, X - p)] for X - p ~ N(a p - p, a p (1 - a p) / n + p (1 - p) / n_mix),
    # a the confident share
    mean = share.sum(axis=-1, keepdims=True) * prior
    variance = np.maximum(mean * (1 - mean), 1e-12) / n
    if mix.n is not None:
        variance = variance + prior * (1 - prior) / max(mix.n, 1)
    sd = np.sqrt(variance)
    d = (prior - mean) / sd
    density, upper_tail = np.exp(-0.5 * d * d) / math.sqrt(2 * math.pi), 0.5 * erfc(d / math.sqrt(2))
    chance = (sd * density - (prior - mean) * upper_tail).sum(axis=-1)
    return np.maximum(excess - chance, 0.0)


def accuracy_estimate(atc: float, confident: np.ndarray | None, n: int, mix: ClassMix | None,
                      alarms: int) -> AccuracyEstimate:
    """The estimate for one device: `atc` its ATC figure (0..1); `confident` the confident
    answers per class (confidence at or over the ATC level) among `n` answers since the change
    (or a recent window); `mix` the class mix before the change (ClassMix.heard; either None:
    ATC only); `alarms` its latched alarm bits."""
    if alarms & ALARM_SENSOR_FAULT:
        return AccuracyEstimate(None, "withheld: sensor fault")
    if alarms & INPUT_MOVED and confident is not None and mix is not None and n > 0:
        excess = float(confident_excess(confident, n, mix))
        if excess > 0:
            return AccuracyEstimate(max(0.0, float(atc) - excess), mix.capped_basis)
    return AccuracyEstimate(float(atc), "ATC")


def sampling_half_width(accuracy: float, answers: int) -> float:
    """The 95 % half-width, in points, that `answers` answers alone give an accuracy estimate
    (binomial; at least that of one answer in `answers`, so 0 or 100 % is not read as exact)."""
    p = min(max(float(accuracy), 0.0), 1.0)
    return 196.0 * math.sqrt(max(p * (1.0 - p), 1.0 / answers) / answers)


def impact_verdict(points: float, half_width: float | None) -> str:
    """What an alarm's estimated accuracy change of `points` is called: HARMLESS under
    HARMLESS_POINTS; UNCLEAR where the answers it rests on could give that much with nothing
    changed (|points| within `half_width`, their 95 % sampling error; None: the device's
    running ATC, whose error is not known here); IMPACT otherwise. On 64 answers a harmless
    change reads a few points either way: called an impact, the bench's quieter room read as a
    loss in 40 % of its streams, its true accuracy 3 points up."""
    if abs(points) < HARMLESS_POINTS:
        return HARMLESS
    if half_width is not None and abs(points) <= half_width:
        return UNCLEAR
    return IMPACT


def estimate_since_alarm(running_atc: float, confident: np.ndarray | None, answers: int,
                         mix: ClassMix | None, alarms: int) -> AccuracyEstimate:
    """A severity line's "now": over the `answers` since the alarm, the share of confident
    ones (`confident`: their count per class) as the ATC figure, less the class-mix excess;
    the device's running ATC instead while fewer than MIN_ANSWERS have come or the confident
    answers are not known (no ATC level). The report (logbook.store.alarm_severity) and the
    bench (monitor.calibrate.SeverityLines) both read it so."""
    if confident is None or answers < MIN_ANSWERS:
        return accuracy_estimate(running_atc, None, 0, None, alarms)
    return accuracy_estimate(float(np.sum(confident)) / answers, confident, answers, mix, alarms)
