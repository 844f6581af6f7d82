"""Maximum mean discrepancy (Gretton et al. 2012) between a sliding window of the last
`window` input summaries and a reference sample, tested every `every` inferences (window / 4
by default).

Summaries are standardized per channel with the reference mean and standard deviation; the
kernel is an RBF, k(x, y) = exp(-|x - y|^2 / (2 sigma^2)), with sigma the median pairwise
distance within the kernel's reference sample (the median heuristic); that sample is at most
`max_reference` reference summaries drawn at random (seeded). The statistic is the biased
(V-statistic) MMD^2 of the window X [W] against the reference sample Y [M],

    MMD^2 = mean k(X, X) + mean k(Y, Y) - 2 mean k(X, Y)

which is >= 0; alarm when MMD^2 > threshold. Incrementally: each summary's mean kernel
against Y is computed once, when it arrives; the window's own term at each test.

Scanner: the mean kernel against Y for every summary, and the window's pair sum at every
position by a recursion over lags (each pair of summaries less than `window` apart once),
so MMD^2 at every window end costs O(T * (M + W) * D) once, whatever the restarts. Equal to
the update loop up to rounding.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.spatial.distance import cdist, pdist

from tinydrift.errors import TinydriftError
from tinydrift.monitor.baselines.base import Detector, WindowScanner

_CHUNK = 4096  # rows of the [rows, M] kernel against the reference at a time


class MMD(Detector):
    """Sliding-window MMD^2 against a reference sample, RBF kernel, median heuristic."""

    name = "mmd"
    input = "summary"
    threshold_range = (1e-5, 10.0)

    def __init__(
        self,
        reference,
        threshold: float = 0.05,
        *,
        window: int = 200,
        every: int | None = None,
        max_reference: int = 500,
        seed: int = 0,
    ) -> None:
        super().__init__(threshold)
        ref = np.asarray(reference, dtype=np.float64)
        if ref.ndim != 2 or len(ref) < 10:
            raise TinydriftError(f"mmd: reference must be [N, D] summaries with N >= 10, got shape {ref.shape}")
        self.window = int(window)
        self.every = int(every) if every is not None else max(1, self.window // 4)
        if self.window < 2 or self.every < 1:
            raise TinydriftError(f"mmd: need window >= 2 and every >= 1, got {self.window}, {self.every}")
        self.mean = ref.mean(axis=0)
        sd = ref.std(axis=0)
        self.sd = np.where(sd > 0, sd, 1.0)
        z = (ref - self.mean) / self.sd
        if len(z) > max_reference:
            z = z[np.sort(np.random.default_rng(seed).choice(len(z), max_reference, replace=False))]
        self.y = z
        self.y_norms = np.einsum("md,md->m", z, z)
        d2 = np.maximum(self.y_norms[:, None] + self.y_norms[None, :] - 2 * z @ z.T, 0.0)
        np.fill_diagonal(d2, 0.0)
        median = float(np.median(np.sqrt(d2[np.triu_indices(len(z), 1)])))
        self.sigma = median if median > 0 else 1.0
        self.gamma = 1.0 / (2 * self.sigma**2)
        self.ref_term = float(np.exp(-self.gamma * d2).mean())
        self.dim = ref.shape[1]
        self.reset()

    def standardize(self, x: np.ndarray) -> np.ndarray:
        return (x - self.mean) / self.sd

    def kernel_to_reference(self, z: np.ndarray) -> np.ndarray:
        """Mean kernel of each standardized summary [k, D] against the reference sample."""
        out = np.empty(len(z))
        for lo in range(0, len(z), _CHUNK):
            part = z[lo:lo + _CHUNK]
            k = part @ (-2.0 * self.y.T)  # in place from here: the [rows, M] array is the cost
            k += np.einsum("kd,kd->k", part, part)[:, None]
            k += self.y_norms[None, :]
            np.maximum(k, 0.0, out=k)
            k *= -self.gamma
            np.exp(k, out=k)
            out[lo:lo + _CHUNK] = k.mean(axis=1)
        return out

    def mmd2(self, pair_sum: float | np.ndarray, cross_sum: float | np.ndarray) -> float | np.ndarray:
        """MMD^2 from the window's sum of k over its distinct pairs and its sum of mean
        kernels against the reference."""
        w = self.window
        return (w + 2 * pair_sum) / w**2 + self.ref_term - 2 * cross_sum / w

    def _reset(self) -> None:
        self._z = np.zeros((self.window, self.dim))
        self._cross = np.zeros(self.window)
        self._seen = 0

    def _update(self, x) -> bool:
        # scipy's distances here, not BLAS: one summary at a time, BLAS threads cost more
        # than they give (the scanner's big products use BLAS; the same up to rounding)
        z = self.standardize(np.asarray(x, dtype=np.float64))
        slot = self._seen % self.window
        self._z[slot] = z
        self._cross[slot] = float(np.exp(-self.gamma * cdist(z[None], self.y, "sqeuclidean")).mean())
        self._seen += 1
        if self._seen < self.window or (self._seen - self.window) % self.every:
            return False
        pairs = float(np.exp(-self.gamma * pdist(self._z, "sqeuclidean")).sum())
        return bool(self.mmd2(pairs, float(self._cross.sum())) > self.threshold)

    def state_floats(self) -> int:
        m, d, w = len(self.y), self.dim, self.window
        # reference sample and its norms; channel mean and sd; the window and its kernel
        # means; gamma, the reference term, the update count
        return m * d + m + 2 * d + w * d + w + 3

    def ops_per_update(self) -> int:
        m, d, w = len(self.y), self.dim, self.window
        # standardize 2d; against each reference summary: a dot product 2d, the squared
        # distance 3, exp 1, the sum 1; per test: each of w(w-1)/2 pairs 2d + 5, the sums
        # and MMD^2 ~2w; spread over `every` updates
        per_test = w * (w - 1) // 2 * (2 * d + 5) + 2 * w + 10
        return 2 * d + m * (2 * d + 5) + math.ceil(per_test / self.every)

    def scanner(self, stream: np.ndarray) -> _MmdScanner:
        return _MmdScanner(self, stream)


class _MmdScanner(WindowScanner):
    def __init__(self, detector: MMD, stream: np.ndarray) -> None:
        super().__init__(len(stream), detector.window, detector.every)
        if stream.shape[1] != detector.dim:
            raise TinydriftError(f"mmd: summaries of {stream.shape[1]} channels, reference has {detector.dim}")
        w, n = detector.window, len(stream)
        z = detector.standardize(stream)
        norms = np.einsum("td,td->t", z, z)
        # newest[t]: sum of k(x_t, x_j) over the w-1 summaries before t; oldest[i]: the same
        # over the w-1 summaries after i (what leaves the pair sum when i leaves the window)
        newest, oldest = np.zeros(n), np.zeros(n)
        for lag in range(1, min(w, n)):
            d2 = norms[lag:] + norms[:-lag] - 2 * np.einsum("td,td->t", z[lag:], z[:-lag])
            k = np.exp(-detector.gamma * np.maximum(d2, 0.0))
            newest[lag:] += k
            oldest[:-lag] += k
        leaving = np.zeros(n)
        leaving[w:] = oldest[: n - w]
        pair_sum = np.cumsum(newest - leaving)
        cross = np.concatenate([[0.0], np.cumsum(detector.kernel_to_reference(z))])
        t = np.arange(n)
        cross_sum = cross[t + 1] - cross[np.maximum(t + 1 - w, 0)]
        self.stat = np.where(t >= w - 1, detector.mmd2(pair_sum, cross_sum), -np.inf)

    def values(self, ts: np.ndarray) -> np.ndarray:
        return self.stat[ts]
