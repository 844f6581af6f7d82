"""river's KSWIN (Kolmogorov-Smirnov windowing, Raab et al. 2020) on the entropy stream.

KSWIN needs no reference: it keeps the last `window_size` entropies and, at every update once
the window is full, compares its last `stat_size` values with `stat_size` values drawn at
random from the older part (two-sample KS test, scipy, exact p-value), declaring drift when
p <= alpha and the KS distance exceeds 0.1. It is two-sided and rank-based (no
standardization needed). threshold = -log10(alpha): larger means fewer alarms.

Defaults differ from river's (100 and 30): with stat_size 30 the KS distance moves in steps
of 1/30 and each step changes the p-value ~2.5x, too coarse to calibrate an ARL0; with
window_size 300, stat_size 100 the steps are 1/100 (~1.5-2x) and the test sees a smaller shift.

The update path is river's KSWIN with one substitution: its random draws. river draws with
random.Random(seed).sample, one call per test; here the k-th call after a reset returns row
k mod 4096 of a table of random subsets made once with numpy from the seed. Which random
subsets are drawn does not change the test; what this buys is a scanner: the statistic of a
run depends only on the stream and the number of updates since the reset, so the scanner
replays the same draws for any restart, computes the KS distances vectorized (from the
stream's ranks, one integer sort per test) and reads the p-values from a table of scipy's
exact p-value for each possible distance. It matches river's update loop exactly
(tests/test_baselines.py); reproducing Python's own random.sample instead would cost ~50 us a
test and memory for every test of the longest run.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
from scipy import stats

from tinydrift.errors import TinydriftError
from tinydrift.monitor.baselines.base import ChunkedScanner, Detector, import_river_drift

DRAW_PERIOD = 4096  # random subsets in the table; test k uses row k mod DRAW_PERIOD
_BATCH = 4096  # rows of the scanner's [rows, 2 * stat_size] sort at a time (memory)

_DRAWS: dict[tuple[int, int, int], np.ndarray] = {}
_P_TABLES: dict[int, np.ndarray] = {}


class KSWIN(Detector):
    """river.drift.KSWIN on entropy; threshold = -log10(alpha)."""

    name = "kswin"
    input = "entropy"
    threshold_range = (0.01, 30.0)

    def __init__(
        self,
        reference=None,
        threshold: float = -math.log10(0.005),
        *,
        window_size: int = 300,
        stat_size: int = 100,
        seed: int = 0,
    ) -> None:
        """`reference` is accepted for a uniform factory signature and not used."""
        super().__init__(threshold)
        if not 0 < stat_size < window_size:
            raise TinydriftError(f"kswin: need 0 < stat_size < window_size, got {stat_size}, {window_size}")
        if window_size - stat_size < stat_size:
            raise TinydriftError(f"kswin: river draws stat_size={stat_size} of the window's first "
                                 f"{window_size - stat_size}: need window_size >= 2 * stat_size")
        self._drift = import_river_drift()
        self.window_size, self.stat_size, self.seed = int(window_size), int(stat_size), int(seed)
        self.draws = draws(self.seed, self.window_size - self.stat_size, self.stat_size)
        self.reset()

    @property
    def alpha(self) -> float:
        return 10.0 ** -self.threshold

    def _reset(self) -> None:
        river = self._drift.KSWIN(alpha=self.alpha, window_size=self.window_size, stat_size=self.stat_size, seed=self.seed)
        if not hasattr(river, "_rng"):
            raise TinydriftError("kswin: this river's KSWIN keeps no _rng to draw from: pin river as in requirements.lock")
        river._rng = _TableSampler(self.draws)
        self._river = river

    def _update(self, x) -> bool:
        self._river.update(x)
        return self._river.drift_detected

    def state_floats(self) -> int:
        # the window; the update count; a small generator's state for the draws (2); the
        # critical distance for alpha
        return self.window_size + 1 + 2 + 1

    def ops_per_update(self) -> int:
        r = self.stat_size
        # draw r indices (~5 ops each), sort the 2r values, one pass of +-1 sums and max
        return 5 * r + math.ceil(2 * r * math.log2(2 * r)) + 4 * r + 2

    def scanner(self, stream: np.ndarray) -> _KswinScanner:
        return _KswinScanner(self, stream)


def draws(seed: int, population: int, size: int) -> np.ndarray:
    """[DRAW_PERIOD, size]: what the 1st, 2nd, ... test after a reset draws; each row `size`
    distinct indices of range(population), in random order."""
    key = (seed, population, size)
    if key not in _DRAWS:
        keys = np.random.default_rng(seed).random((DRAW_PERIOD, population))
        _DRAWS[key] = np.argsort(keys, axis=1)[:, :size]
    return _DRAWS[key]


class _TableSampler:
    """Stands in for river's random.Random(seed) in its KSWIN: the only call river makes,
    `sample(range(population), size)`, returns the next row of the table."""

    def __init__(self, table: np.ndarray) -> None:
        self.table, self.calls = table, 0

    def sample(self, population, size: int) -> list[int]:
        row = self.table[self.calls % len(self.table)]
        if size != len(row) or int(row.max()) >= len(population):
            raise TinydriftError(f"kswin: river asked for {size} of {len(population)}; the table has another shape")
        self.calls += 1
        return row.tolist()


def p_table(stat_size: int) -> np.ndarray:
    """scipy's two-sided two-sample KS p-value (method "auto", as river calls it) for two
    samples of stat_size whose KS distance is k / stat_size, k = 0..stat_size."""
    table = _P_TABLES.get(stat_size)
    if table is None:
        base = np.arange(stat_size, dtype=np.float64)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", category=RuntimeWarning)  # as river: exact -> asymp
            # samples base and base + k - 1/2 are k / n apart in KS distance
            table = np.array([1.0] + [stats.ks_2samp(base, base + k - 0.5, method="auto").pvalue
                                      for k in range(1, stat_size + 1)])
        _P_TABLES[stat_size] = table
    return table


def ks_counts(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """n * KS distance between rows of a and b, both [rows, n] of integer ranks (equal ranks
    are ties; ties handled as scipy does)."""
    # One sort of keys 2 * rank + (1 for b): sorting floats with their labels would need an
    # argsort, ~5x slower than a sort.
    keys = np.concatenate([2 * a, 2 * b + 1], axis=1)
    keys.sort(axis=1)
    walk = np.abs(np.cumsum(1 - 2 * (keys & 1), axis=1))
    # the empirical CDFs are compared after the last of each run of equal values
    walk[:, :-1] *= (keys[:, 1:] >> 1) != (keys[:, :-1] >> 1)
    return walk.max(axis=1)


class _KswinScanner(ChunkedScanner):
    def __init__(self, detector: KSWIN, stream: np.ndarray) -> None:
        super().__init__(len(stream))
        self.window_size, self.stat_size, self.draws = detector.window_size, detector.stat_size, detector.draws
        # KS distances depend only on the order: dense ranks (equal values, equal ranks)
        _, ranks = np.unique(stream, return_inverse=True)
        self.ranks = ranks.astype(np.int32 if 2 * len(stream) + 2 < 2**31 else np.int64)
        r = self.stat_size
        k = np.arange(r + 1)
        # river: p <= alpha and distance > 0.1; a distance of 0.1 or less never alarms
        self.p_of_count = np.where(k / r > 0.1, p_table(r), 1.0)

    def exceeds(self, statistic: np.ndarray, threshold: float) -> np.ndarray:
        return statistic <= 10.0 ** -threshold  # the same alpha as KSWIN.alpha

    def statistic(self, start: int, lo: int, hi: int) -> np.ndarray:
        ws, r = self.window_size, self.stat_size
        out = np.ones(hi - lo)  # p-values; 1 where no test yet
        first_test = start + ws - 1  # the first test is at the ws-th update
        first = max(lo, first_test)
        if first >= hi:
            return out
        tests = np.arange(first, hi)
        recent = np.arange(ws - r, ws)
        for b in range(0, len(tests), _BATCH):
            t = tests[b:b + _BATCH]
            base = (t - ws + 1)[:, None]
            older = self.ranks[base + self.draws[(t - first_test) % len(self.draws)]]
            latest = self.ranks[base + recent]
            out[t - lo] = self.p_of_count[ks_counts(older, latest)]
        return out
