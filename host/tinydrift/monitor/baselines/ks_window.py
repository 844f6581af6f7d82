"""Black-box shift detection (Rabanser, Guennemann & Lipton 2019, "Failing loudly"): a
two-sample Kolmogorov-Smirnov test of the last `window` model outputs against a reference
sample of in-distribution outputs, repeated every `every` inferences (window / 4 by default).

- input "confidence": one KS test of the max-probability values;
- input "probs": one KS test per class probability, combined with a Bonferroni correction
  (p = min(1, C * min_c p_c)), as in the paper's BBSDs.

The p-value is scipy's asymptotic one (`ks_2samp(..., method="asymp")`: kstwo with the
effective size n*m/(n+m)); the exact method would cost far more for a window against a
reference of thousands. threshold = -log10(p): alarm when -log10(p) > threshold.

The KS distance of a window against the sorted reference is computed here (sort the window,
two binary searches in the reference); it equals scipy's ks_2samp statistic bit for bit
(tests/test_baselines.py). The update path and the scanner call the same function.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats

from tinydrift.errors import TinydriftError
from tinydrift.monitor.baselines.base import Detector, WindowScanner

# Windows per vectorized batch in the scanner (memory: batch * window * classes floats).
_BATCH_FLOATS = 2_000_000


def ks_distance(windows: np.ndarray, reference_sorted: np.ndarray) -> np.ndarray:
    """Two-sample KS distance of each row of `windows` [..., n] against one sorted reference
    [m] (ties handled as scipy does)."""
    n, m = windows.shape[-1], len(reference_sorted)
    w = np.sort(windows, axis=-1)
    i = np.arange(1, n + 1, dtype=np.float64)
    at = np.searchsorted(reference_sorted, w, side="right") / m  # F_ref(x)
    before = np.searchsorted(reference_sorted, w, side="left") / m  # F_ref(x-)
    above = (i / n - at).max(axis=-1)  # F_win(x) - F_ref(x), right after each window value
    below = (before - (i - 1) / n).max(axis=-1)  # F_ref(x-) - F_win(x-)
    return np.maximum(np.maximum(above, below), 0.0)


def ks_pvalue(distance: np.ndarray, n: int, m: int) -> np.ndarray:
    """scipy's asymptotic two-sided p-value of ks_2samp for sample sizes n and m."""
    big, small = max(float(n), float(m)), min(float(n), float(m))
    en = big * small / (big + small)
    return np.clip(stats.kstwo.sf(distance, np.round(en)), 0.0, 1.0)


class _PValues:
    """ks_pvalue for fixed sizes, kept per distance: scipy's kstwo.sf costs ~0.2 ms a value
    and a window's distance takes few distinct values (multiples of 1/lcm(n, m))."""

    def __init__(self, n: int, m: int) -> None:
        self.n, self.m = n, m
        self._known: dict[float, float] = {}

    def __call__(self, distance: np.ndarray) -> np.ndarray:
        unique, inverse = np.unique(distance, return_inverse=True)
        new = [d for d in unique.tolist() if d not in self._known]
        if new:
            self._known.update(zip(new, ks_pvalue(np.array(new), self.n, self.m).tolist()))
        known = self._known
        return np.array([known[d] for d in unique.tolist()])[inverse.reshape(distance.shape)]


class KSWindow(Detector):
    """KS test of a sliding window of outputs against a reference sample, every `every`
    inferences; threshold = -log10(p), Bonferroni over classes for "probs"."""

    threshold_range = (0.01, 50.0)

    def __init__(
        self,
        reference,
        threshold: float = 3.0,
        *,
        input: str = "confidence",
        window: int = 200,
        every: int | None = None,
    ) -> None:
        super().__init__(threshold)
        if input not in ("confidence", "probs"):
            raise TinydriftError(f"ks_window: input must be 'confidence' or 'probs', got {input!r}")
        self.input = input
        self.name = "ks_confidence" if input == "confidence" else "ks_probs"
        ref = np.asarray(reference, dtype=np.float64)
        if ref.ndim != (1 if input == "confidence" else 2) or len(ref) < 10:
            raise TinydriftError(f"{self.name}: reference must be [N] confidences or [N, C] probabilities "
                                 f"with N >= 10, got shape {ref.shape}")
        # [classes, N], each row sorted; one row for confidence
        self.reference = np.sort(ref[None, :] if ref.ndim == 1 else ref.T, axis=1)
        self.window = int(window)
        self.every = int(every) if every is not None else max(1, self.window // 4)
        if self.window < 2 or self.every < 1:
            raise TinydriftError(f"{self.name}: need window >= 2 and every >= 1, got {self.window}, {self.every}")
        self._pvalues = _PValues(self.window, self.reference.shape[1])
        self.reset()

    @property
    def classes(self) -> int:
        return self.reference.shape[0]

    def statistic(self, windows: np.ndarray) -> np.ndarray:
        """-log10(p) of windows [k, window] (confidence) or [k, window, C] (probs)."""
        if windows.ndim == 2:
            windows = windows[:, :, None]
        distance = np.stack([ks_distance(windows[:, :, c], self.reference[c]) for c in range(self.classes)], axis=1)
        # the p-value falls with the distance (same sizes for every class): the smallest
        # p-value is the largest distance's
        p = self._pvalues(distance.max(axis=1))
        p = np.minimum(1.0, self.classes * p)  # Bonferroni; C = 1 for confidence
        with np.errstate(divide="ignore"):
            return -np.log10(p)

    def _reset(self) -> None:
        shape = (self.window,) if self.input == "confidence" else (self.window, self.classes)
        self._buffer = np.zeros(shape)
        self._seen = 0

    def _update(self, x) -> bool:
        self._buffer[self._seen % self.window] = x
        self._seen += 1
        if self._seen < self.window or (self._seen - self.window) % self.every:
            return False
        return bool(self.statistic(self._buffer[None])[0] > self.threshold)

    def state_floats(self) -> int:
        # the window and the sorted reference, per class; the update count
        return self.classes * (self.window + self.reference.shape[1]) + 1

    def ops_per_update(self) -> int:
        n, m = self.window, self.reference.shape[1]
        # per test and class: sort the window, two binary searches per value, two
        # differences and maxima per value, the p-value (~50); spread over `every` updates
        per_test = self.classes * (n * math.log2(n) + 2 * n * math.log2(m) + 4 * n + 50)
        return 1 + math.ceil(per_test / self.every)

    def scanner(self, stream: np.ndarray) -> _KsScanner:
        return _KsScanner(self, stream)


class _KsScanner(WindowScanner):
    def __init__(self, detector: KSWindow, stream: np.ndarray) -> None:
        super().__init__(len(stream), detector.window, detector.every)
        self.detector, self.x = detector, stream

    def values(self, ts: np.ndarray) -> np.ndarray:
        out = np.empty(len(ts))
        batch = max(1, _BATCH_FLOATS // (self.window * self.detector.classes))
        offsets = np.arange(-self.window + 1, 1)
        for lo in range(0, len(ts), batch):
            t = ts[lo:lo + batch]
            out[lo:lo + batch] = self.detector.statistic(self.x[t[:, None] + offsets])
        return out
