"""Multivariate EWMA chart (Lowry, Woodall, Champ & Rigdon 1992) on the input summary, and
Hotelling's T^2 on single summaries as its lambda = 1 case.

The summary x_t [D] is whitened with the reference mean mu and covariance Sigma:
u_t = L^-1 (x_t - mu), with L the Cholesky factor of Sigma (a ridge of 1e-6 of the mean
variance keeps it invertible), so u has identity covariance in distribution. Then

    Z_t = lambda u_t + (1 - lambda) Z_{t-1},  Z_0 = 0 (at every reset)
    T2_t = Z_t' Sigma_Z^-1 Z_t,  Sigma_Z = lambda / (2 - lambda) I  (the asymptotic one)

and an alarm when T2_t > h (the threshold). lambda = 1 gives Hotelling's T^2 = |u_t|^2.
With the asymptotic Sigma_Z the first updates after a reset are less likely to alarm than
later ones (Z has not reached its stationary spread yet).

Scanner: u for the whole stream once, and the EWMA of the whole stream once (lfilter); a run
reset before position p has Z^(p)_t = Z_t - (1 - lambda)^(t - p + 1) Z_{p-1}, so every
restart costs only its own T2 values. Equal to the update loop up to rounding.
"""

from __future__ import annotations

import numpy as np
from scipy.signal import lfilter

from tinydrift.errors import TinydriftError
from tinydrift.monitor.baselines.base import ChunkedScanner, Detector

RIDGE = 1e-6


def whitening(reference) -> tuple[np.ndarray, np.ndarray]:
    """(mean [D], W [D, D] lower triangular) with W (x - mean) of identity covariance over
    the reference [N, D]."""
    ref = np.asarray(reference, dtype=np.float64)
    if ref.ndim != 2 or len(ref) < ref.shape[1] + 2:
        raise TinydriftError(f"reference: need [N, D] summaries with N > D + 1, got shape {ref.shape}")
    mean = ref.mean(axis=0)
    cov = np.cov(ref, rowvar=False).reshape(ref.shape[1], ref.shape[1])
    cov = cov + RIDGE * max(float(np.trace(cov)) / len(cov), 1e-300) * np.eye(len(cov))
    lower = np.linalg.cholesky(cov)
    return mean, np.linalg.solve(lower, np.eye(len(cov)))  # L^-1, lower triangular


class MEWMA(Detector):
    """MEWMA T^2 on whitened summaries; threshold h on T^2. lam=1: Hotelling's T^2."""

    input = "summary"
    threshold_range = (0.1, 10_000.0)

    def __init__(self, reference, threshold: float = 60.0, *, lam: float = 0.05, name: str | None = None) -> None:
        super().__init__(threshold)
        if not 0 < lam <= 1:
            raise TinydriftError(f"mewma: lambda must be in (0, 1], got {lam}")
        self.lam = float(lam)
        self.name = name or ("hotelling" if self.lam == 1 else "mewma")
        self.mean, self.white = whitening(reference)
        self.dim = len(self.mean)
        self.scale = (2 - self.lam) / self.lam  # Sigma_Z^-1 = scale * I
        self.reset()

    def _reset(self) -> None:
        self._z = np.zeros(self.dim)

    def _update(self, x) -> bool:
        u = self.white @ (np.asarray(x, dtype=np.float64) - self.mean)
        self._z = self.lam * u + (1 - self.lam) * self._z
        return bool(self.scale * float(self._z @ self._z) > self.threshold)

    def state_floats(self) -> int:
        d = self.dim
        # mean, the triangular whitening matrix, Z (not kept for Hotelling)
        return d + d * (d + 1) // 2 + (d if self.lam < 1 else 0)

    def ops_per_update(self) -> int:
        d = self.dim
        # subtract the mean d; triangular matrix-vector d(d+1) (multiply-adds); the EWMA 3d;
        # the squared norm 2d, the scale and the comparison 2
        return d + d * (d + 1) + (3 * d if self.lam < 1 else 0) + 2 * d + 2

    def scanner(self, stream: np.ndarray) -> _MewmaScanner:
        return _MewmaScanner(self, stream)


class _MewmaScanner(ChunkedScanner):
    def __init__(self, detector: MEWMA, stream: np.ndarray) -> None:
        super().__init__(len(stream))
        if stream.shape[1] != detector.dim:
            raise TinydriftError(f"{detector.name}: summaries of {stream.shape[1]} channels, reference has {detector.dim}")
        self.lam, self.scale = detector.lam, detector.scale
        u = (stream - detector.mean) @ detector.white.T
        self.z = u if self.lam == 1 else lfilter([self.lam], [1.0, -(1 - self.lam)], u, axis=0)

    def statistic(self, start: int, lo: int, hi: int) -> np.ndarray:
        z = self.z[lo:hi]
        if start > 0 and self.lam < 1:
            decay = (1 - self.lam) ** np.arange(lo - start + 1, hi - start + 1, dtype=np.float64)
            z = z - decay[:, None] * self.z[start - 1]
        return self.scale * np.einsum("td,td->t", z, z)
