"""The floor and the ceiling of the comparison: a detector that fires at the first inference
(delay 1, ARL0 1) and one that never fires (no false alarm, no detection). Neither reads its
observation nor its threshold."""

from __future__ import annotations

import numpy as np

from tinydrift.errors import TinydriftError
from tinydrift.monitor.baselines.base import INPUTS, ChunkedScanner, Detector


class _Trivial(Detector):
    fires = False

    def __init__(self, reference=None, threshold: float = 1.0, *, input: str = "entropy") -> None:
        """`reference` and `threshold` are accepted for a uniform factory signature; `input`
        only says which stream the benchmark should feed."""
        super().__init__(threshold)
        if input not in INPUTS:
            raise TinydriftError(f"{self.name}: input must be one of {INPUTS}, got {input!r}")
        self.input = input
        self.reset()

    def _reset(self) -> None:
        pass

    def _update(self, x) -> bool:
        return self.fires

    def state_floats(self) -> int:
        return 0

    def ops_per_update(self) -> int:
        return 0

    def scanner(self, stream: np.ndarray) -> _ConstantScanner:
        return _ConstantScanner(len(stream), self.fires)


class AlwaysFire(_Trivial):
    name = "always_fire"
    fires = True


class NeverFire(_Trivial):
    name = "never_fire"
    fires = False


class _ConstantScanner(ChunkedScanner):
    def __init__(self, length: int, fires: bool) -> None:
        super().__init__(length)
        self.fires = fires

    def statistic(self, start: int, lo: int, hi: int) -> np.ndarray:
        return np.full(hi - lo, np.inf if self.fires else -np.inf)
