"""river's ADWIN (adaptive windowing, Bifet & Gavalda 2007) on the entropy stream.

Each entropy is standardized with the reference mean and standard deviation (ADWIN's cut
bound has a term that assumes values of order one), then fed to river's `ADWIN`, which
keeps a variable-length window in exponential-histogram buckets and every `clock` updates
looks for a split into two sub-windows whose means differ by more than a bound set by its
confidence `delta`. It is two-sided.

threshold = -log10(delta): larger means a smaller delta, fewer alarms (delta = 10**-threshold;
river's default 0.002 is threshold 2.7). Its statistic is threshold-dependent (the bound
is), so there is no scanner: calibration runs river's update loop once per bisection step
(river's core is Rust: about 1 s per million inferences).
"""

from __future__ import annotations

import math

from tinydrift.monitor.baselines.base import Detector, import_river_drift, location_scale

# The window grows with the run under no drift; costs are counted at this width.
COST_WIDTH = 2000


class ADWIN(Detector):
    """river.drift.ADWIN on standardized entropy; threshold = -log10(delta)."""

    name = "adwin"
    input = "entropy"
    threshold_range = (0.01, 20.0)

    def __init__(
        self,
        reference=None,
        threshold: float = -math.log10(0.002),
        *,
        clock: int = 32,
        max_buckets: int = 5,
        min_window_length: int = 5,
        grace_period: int = 10,
    ) -> None:
        super().__init__(threshold)
        self._drift = import_river_drift()
        self.mean, self.scale = location_scale(reference)
        self.clock, self.max_buckets = int(clock), int(max_buckets)
        self.min_window_length, self.grace_period = int(min_window_length), int(grace_period)
        self.reset()

    @property
    def delta(self) -> float:
        return 10.0 ** -self.threshold

    def _reset(self) -> None:
        self._river = self._drift.ADWIN(
            delta=self.delta,
            clock=self.clock,
            max_buckets=self.max_buckets,
            min_window_length=self.min_window_length,
            grace_period=self.grace_period,
        )

    def _update(self, x) -> bool:
        self._river.update((x - self.mean) / self.scale)
        return self._river.drift_detected

    def _rows(self) -> int:
        # bucket rows of the exponential histogram at COST_WIDTH: sizes 1, 2, 4, ... with at
        # most max_buckets + 1 buckets a row
        return max(1, math.ceil(math.log2(COST_WIDTH / self.max_buckets + 1)))

    def state_floats(self) -> int:
        # each bucket: total and variance; a row: up to max_buckets + 1 buckets and a count;
        # window width, total, variance, the clock counter; reference mean and sd
        return self._rows() * (2 * (self.max_buckets + 1) + 1) + 4 + 2

    def ops_per_update(self) -> int:
        # insert: standardize 2, width/total/variance updates ~8; amortized bucket merges ~6.
        # every `clock` updates, at each bucket boundary (rows * max_buckets of them): two
        # sub-window means and the cut bound (log, sqrt, ~15 ops) and a comparison, ~20
        per_check = self._rows() * self.max_buckets * 20
        return 2 + 8 + 6 + math.ceil(per_check / self.clock)
