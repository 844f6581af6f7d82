"""river's Page-Hinkley test on the entropy stream, two-sided by default.

Each entropy is first standardized with the reference mean and standard deviation (so
river's `delta`, the allowed drift of the mean, is in reference standard deviations, and the
same settings suit any model); then river's `PageHinkley(mode="both")` runs on it: the
running mean since the reset, the cumulative deviations from it with forgetting `alpha`,
an alarm when either the upward or the downward excursion exceeds the threshold (river's
`threshold`, lambda). `mode="up"` watches increases only (entropy rising: the model getting
less sure).

The statistic does not depend on the threshold, so the scanner recomputes river's
recursion vectorized over time (lfilter, running min/max); it matches river's update loop
up to rounding.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.signal import lfilter

from tinydrift.errors import TinydriftError
from tinydrift.monitor.baselines.base import ChunkedScanner, Detector, import_river_drift, location_scale

MODES = ("both", "up", "down")


class PageHinkley(Detector):
    """river.drift.PageHinkley on standardized entropy (see the module docstring)."""

    name = "page_hinkley"
    input = "entropy"
    threshold_range = (0.1, 1000.0)

    def __init__(
        self,
        reference=None,
        threshold: float = 50.0,
        *,
        delta: float = 0.005,
        alpha: float = 1 - 0.0001,
        min_instances: int = 30,
        mode: str = "both",
    ) -> None:
        super().__init__(threshold)
        if mode not in MODES:
            raise TinydriftError(f"page_hinkley: mode must be one of {MODES}, got {mode!r}")
        self._drift = import_river_drift()
        self.mean, self.scale = location_scale(reference)
        self.delta, self.alpha, self.min_instances, self.mode = float(delta), float(alpha), int(min_instances), mode
        self.reset()

    def _reset(self) -> None:
        self._river = self._drift.PageHinkley(
            min_instances=self.min_instances, delta=self.delta, threshold=self.threshold, alpha=self.alpha, mode=self.mode
        )

    def _update(self, x) -> bool:
        self._river.update((x - self.mean) / self.scale)
        return self._river.drift_detected

    def state_floats(self) -> int:
        # reference mean and sd; river's running mean and count, two sums, their min and max
        return 2 + 6

    def ops_per_update(self) -> int:
        # standardize 2; mean update 4; deviation 1; two forgetting sums 3 each; min, max 2;
        # two excursions 2, two comparisons and the instance check 3
        return 2 + 4 + 1 + 6 + 2 + 2 + 3

    def scanner(self, stream: np.ndarray) -> _PageHinkleyScanner:
        return _PageHinkleyScanner(self, (stream - self.mean) / self.scale)


class _PageHinkleyScanner(ChunkedScanner):
    def __init__(self, detector: PageHinkley, z: np.ndarray) -> None:
        super().__init__(len(z))
        self.z = z
        self.delta, self.alpha, self.min_instances, self.mode = detector.delta, detector.alpha, detector.min_instances, detector.mode

    def statistic(self, start: int, lo: int, hi: int) -> np.ndarray:
        # a recursion from the reset: recomputed from `start` (cheap), the tail returned
        x = self.z[start:hi]
        k = np.arange(1, len(x) + 1, dtype=np.float64)
        dev = x - np.cumsum(x) / k
        a = [1.0, -self.alpha]
        stat = np.full(len(x), -math.inf)
        if self.mode in ("both", "up"):
            s_inc = lfilter([1.0], a, dev - self.delta)
            stat = np.maximum(stat, s_inc - np.minimum.accumulate(s_inc))
        if self.mode in ("both", "down"):
            s_dec = lfilter([1.0], a, dev + self.delta)
            stat = np.maximum(stat, np.maximum(np.maximum.accumulate(s_dec), -1.0) - s_dec)
        stat[: self.min_instances - 1] = -math.inf
        return stat[lo - start:]
