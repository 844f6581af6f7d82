"""The one small interface every baseline detector sits behind, and what the benchmark does
with it: a run length from a reset, the empirical ARL0 over no-drift streams, and the
threshold that meets a target ARL0.

A detector reads ONE observation per inference, named by `Detector.input`:

    "entropy"     float, nats, of the class probabilities
    "confidence"  float, the largest class probability
    "probs"       float vector [C], the class probabilities
    "summary"     float vector [D], the input summary (40 channels)

`update(x)` returns True the first time drift is declared and keeps returning True until
`reset()` (the alarm is latched, as the device's monitor latches its alarm until the host
resets it). `threshold` is the one knob calibration sets; larger means fewer alarms.

Cost, so the benchmark can print it beside the device monitor's (~700 bytes, ~6k
instructions per inference):

- `state_floats()`: the scalars the detector holds between updates, its mutable state AND
  the reference constants it reads at run time (reference statistics or a stored reference
  sample): what a device would have to keep, 4 bytes each. Counters and indices count as
  one float each. Counted at the detector's configured sizes.
- `ops_per_update()`: arithmetic per inference: add, subtract, multiply, divide, compare,
  exp, log and sqrt count one each (a multiply-add is two); sorting n numbers counts
  n*log2(n) and a binary search over n counts log2(n); work done only every k-th update
  (a periodic test) is divided by k. Python and bookkeeping overhead is not counted. An
  order of magnitude, not an instruction count.

Fast path. Calibration runs a detector over hundreds of thousands of inferences once per
bisection step. A detector whose statistic does not depend on its threshold (only the
comparison does) may return a `Scanner` from `scanner(stream)`: a precomputation over the
stream, built once, that finds the first alarm of a run restarted at any position for any
threshold, vectorized over time. `count_alarms` and `calibrate_threshold` use it when there
is one; `run_length` only when asked (`fast=True`): by default it is the definition, reset
and then `update` one observation at a time. tests/test_baselines.py checks that both give
the same run lengths.
"""

from __future__ import annotations

import abc
import math
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from tinydrift.errors import TinydriftError

INPUTS = ("entropy", "confidence", "probs", "summary")
SCALAR_INPUTS = ("entropy", "confidence")

# A scanner keeps the statistic of runs it has computed (bisection asks for the same
# restarts again); past this many floats the memo is dropped and rebuilt.
_MEMO_FLOATS = 4_000_000


class Detector(abc.ABC):
    """One drift detector over one observation stream (see the module docstring).

    Subclasses set `name` and `input`, implement `_reset`, `_update`, `state_floats` and
    `ops_per_update`, and call `reset()` at the end of their constructor. `threshold` may be
    changed between runs; it takes effect at the next `reset()` at the latest (the river-based
    detectors hand it to river there; the others read it at every test).
    """

    name: str = ""
    input: str = ""
    # Where calibrate_threshold should search for this detector's threshold (a hint).
    threshold_range: tuple[float, float] = (1e-3, 1e3)

    def __init__(self, threshold: float) -> None:
        self.threshold = float(threshold)
        self._alarmed = False

    def reset(self) -> None:
        """Forget everything seen since the last reset (the reference is kept)."""
        self._alarmed = False
        self._reset()

    def update(self, x: Any) -> bool:
        """Feed one observation; True from the first declared drift until `reset()`."""
        if self._alarmed:
            return True
        self._alarmed = bool(self._update(x))
        return self._alarmed

    @abc.abstractmethod
    def _reset(self) -> None: ...

    @abc.abstractmethod
    def _update(self, x: Any) -> bool: ...

    @abc.abstractmethod
    def state_floats(self) -> int:
        """Scalars held between updates: mutable state plus the reference constants read."""

    @abc.abstractmethod
    def ops_per_update(self) -> int:
        """Arithmetic operations per inference (see the module docstring for the rules)."""

    def scanner(self, stream: np.ndarray) -> Scanner | None:
        """A threshold-free precomputation over `stream` (validated, float64) that finds first
        alarms fast, or None when the detector has none (then the update loop is used)."""
        return None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, input={self.input!r}, threshold={self.threshold:.6g})"


class Scanner(abc.ABC):
    """What a detector precomputes over one stream, independent of the threshold."""

    def __init__(self, length: int) -> None:
        self.length = int(length)

    @abc.abstractmethod
    def first_alarm(self, start: int, threshold: float) -> int | None:
        """0-based stream position of the first alarm of a run reset just before position
        `start` (so its first observation is stream[start]), or None if the stream ends first."""


class ChunkedScanner(Scanner):
    """A scanner from `statistic(start, lo, hi)`: the detector's statistic at positions
    lo..hi-1 of a run reset just before position `start` (-inf where it does not test), an
    alarm where `exceeds(statistic, threshold)`. A run is computed in chunks, each as long as
    all before it, until the first alarm; the computed runs are kept, since bisection
    restarts at the same positions again and again."""

    first_chunk = 256

    def __init__(self, length: int) -> None:
        super().__init__(length)
        self._memo: dict[int, np.ndarray] = {}
        self._memo_floats = 0

    @abc.abstractmethod
    def statistic(self, start: int, lo: int, hi: int) -> np.ndarray: ...

    def exceeds(self, statistic: np.ndarray, threshold: float) -> np.ndarray:
        return statistic > threshold

    def _extend(self, start: int, stat: np.ndarray | None) -> np.ndarray:
        have = 0 if stat is None else len(stat)
        hi = min(self.length, start + have + max(self.first_chunk, have))
        new = self.statistic(start, start + have, hi)
        stat = new if stat is None else np.concatenate([stat, new])
        if self._memo_floats + len(new) > _MEMO_FLOATS:
            self._memo.clear()
            self._memo_floats = have = 0
        self._memo[start] = stat
        self._memo_floats += len(stat) - have
        return stat

    def first_alarm(self, start: int, threshold: float) -> int | None:
        stat = self._memo.get(start)
        searched = 0
        while start + searched < self.length:
            if stat is None or len(stat) <= searched:
                stat = self._extend(start, stat)
            hits = np.flatnonzero(self.exceeds(stat[searched:], threshold))
            if hits.size:
                return start + searched + int(hits[0])
            searched = len(stat)
        return None


class WindowScanner(Scanner):
    """A scanner for tests on a sliding window: the statistic at stream position t depends
    only on the last `window` observations up to t, and a run reset before `start` tests at
    t = start + window - 1 and then every `every` positions. `values(ts)` computes the
    statistic at window ends `ts` (vectorized); computed values are kept."""

    def __init__(self, length: int, window: int, every: int) -> None:
        super().__init__(length)
        self.window = int(window)
        self.every = int(every)
        self._cache = np.full(self.length, np.nan)

    @abc.abstractmethod
    def values(self, ts: np.ndarray) -> np.ndarray: ...

    def exceeds(self, statistic: np.ndarray, threshold: float) -> np.ndarray:
        return statistic > threshold

    def _at(self, ts: np.ndarray) -> np.ndarray:
        out = self._cache[ts]
        missing = np.isnan(out)
        if missing.any():
            computed = np.asarray(self.values(ts[missing]), dtype=np.float64)
            # A NaN statistic would never be cached; -inf never alarms, as the update path.
            computed = np.where(np.isnan(computed), -np.inf, computed)
            self._cache[ts[missing]] = computed
            out[missing] = computed
        return out

    def first_alarm(self, start: int, threshold: float) -> int | None:
        t = start + self.window - 1
        count = 64
        while t < self.length:
            ts = np.arange(t, min(self.length, t + count * self.every), self.every)
            hits = np.flatnonzero(self.exceeds(self._at(ts), threshold))
            if hits.size:
                return int(ts[hits[0]])
            t = int(ts[-1]) + self.every
            count *= 4
        return None


def import_river_drift():
    """river.drift, imported only when a river-based detector is made."""
    try:
        from river import drift
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise TinydriftError(
            f"the river-based baseline detectors need river ({err}): install tinydrift[bench]"
        ) from None
    return drift


def location_scale(reference) -> tuple[float, float]:
    """Mean and standard deviation of a scalar reference sample (0, 1 without one)."""
    if reference is None:
        return 0.0, 1.0
    ref = np.asarray(reference, dtype=np.float64).ravel()
    if ref.size < 2:
        raise TinydriftError(f"reference: need at least 2 in-distribution values, got {ref.size}")
    sd = float(ref.std())
    return float(ref.mean()), (sd if sd > 0 else 1.0)


def as_stream(detector: Detector, stream: Any) -> np.ndarray:
    """One stream as float64, checked against the detector's input: [T] for a scalar input,
    [T, D] for a vector input."""
    array = np.asarray(stream, dtype=np.float64)
    want = 1 if detector.input in SCALAR_INPUTS else 2
    if array.ndim != want:
        shape = "[T]" if want == 1 else "[T, D]"
        raise TinydriftError(
            f"{detector.name}: a stream of {detector.input!r} must be an array {shape}, got shape {array.shape}"
        )
    return array


def concatenate(detector: Detector, streams: Iterable[Any]) -> np.ndarray:
    """No-drift streams one after another, as one stream (see `count_alarms`)."""
    if isinstance(streams, np.ndarray) and streams.ndim == (1 if detector.input in SCALAR_INPUTS else 2):
        raise TinydriftError(
            f"{detector.name}: pass a list of streams (or an array [B, T{'' if detector.input in SCALAR_INPUTS else ', D'}]), "
            f"not one stream of shape {streams.shape}: wrap it in a list"
        )
    parts = [as_stream(detector, s) for s in streams]
    if not parts or sum(len(p) for p in parts) == 0:
        raise TinydriftError(f"{detector.name}: no no-drift inferences to run on")
    return parts[0] if len(parts) == 1 else np.concatenate(parts)


def _observations(stream: np.ndarray):
    # Python floats for scalar streams: a detector's update runs fastest on them.
    return stream.tolist() if stream.ndim == 1 else stream


def run_length(detector: Detector, stream: Any, *, fast: bool = False) -> int | None:
    """Reset the detector, feed `stream` ([T] or [T, D]) one observation at a time and return
    the 1-based index of the first alarm, or None if it never fires.

    `fast`: the same answer (up to rounding) from the detector's scanner when it has one,
    without touching the detector's state; much faster on long streams (river's KSWIN runs
    a scipy KS test per update, ~0.5 ms)."""
    array = as_stream(detector, stream)
    scanner = detector.scanner(array) if fast else None
    if scanner is not None:
        alarm = scanner.first_alarm(0, detector.threshold)
        return None if alarm is None else alarm + 1
    detector.reset()
    for index, x in enumerate(_observations(array), start=1):
        if detector.update(x):
            return index
    return None


def _count_scanner(scanner: Scanner, threshold: float, limit: float = math.inf) -> int:
    """Alarms over the scanner's stream, restarting after each; stops once past `limit`."""
    alarms, position = 0, 0
    while position < scanner.length and alarms <= limit:
        alarm = scanner.first_alarm(position, threshold)
        if alarm is None:
            break
        alarms += 1
        position = alarm + 1
    return alarms


def _count_loop(detector: Detector, stream: np.ndarray, limit: float = math.inf) -> int:
    """Alarms of the update loop over `stream`, restarting after each; stops once past `limit`."""
    alarms = 0
    detector.reset()
    update, reset = detector.update, detector.reset
    for x in _observations(stream):
        if update(x):
            alarms += 1
            if alarms > limit:
                break
            reset()
    return alarms


def count_alarms(detector: Detector, streams: Iterable[Any], *, exact: bool = False) -> tuple[int, int]:
    """(inferences, false alarms) of `detector` over no-drift `streams`.

    The streams are concatenated: the detector starts from a reset, restarts (reset) after
    each alarm, and a run that reaches the end of one stream goes on into the next one, so
    short streams add no warm-ups. The run cut by the end of the last stream counts its
    inferences and no alarm. `exact` forces the update loop instead of the detector's scanner.
    """
    stream = concatenate(detector, streams)
    scanner = None if exact else detector.scanner(stream)
    alarms = _count_scanner(scanner, detector.threshold) if scanner is not None else _count_loop(detector, stream)
    return len(stream), alarms


def empirical_arl0(detector: Detector, streams: Iterable[Any], *, exact: bool = False) -> float:
    """Average run length to false alarm: inferences / alarms over no-drift streams (as
    `count_alarms` runs them); inf if there was no alarm."""
    inferences, alarms = count_alarms(detector, streams, exact=exact)
    return inferences / alarms if alarms else math.inf


def calibrate_threshold(
    make_detector: Callable[[float], Detector],
    streams: Iterable[Any],
    target_arl0: float,
    *,
    lo: float,
    hi: float,
    iterations: int = 20,
) -> float:
    """The threshold whose empirical ARL0 over the no-drift `streams` is closest to
    `target_arl0` while not below it: geometric bisection on [lo, hi].

    `make_detector(threshold)` must differ only in its threshold (the scanner is built once,
    from the first detector made). ARL0 is measured as `count_alarms` does (streams
    concatenated, restart after each alarm). Raises TinydriftError when [lo, hi] does not
    bracket the target or when the streams are too short to measure it (fewer than 10 times
    the target in inferences). Returns the upper end of the final bracket: a threshold whose
    measured ARL0 is >= target.
    """
    if not (0 < lo < hi) or not math.isfinite(hi):
        raise TinydriftError(f"calibrate_threshold: need 0 < lo < hi, got lo={lo}, hi={hi}")
    if target_arl0 <= 1:
        raise TinydriftError(f"calibrate_threshold: target ARL0 must be > 1, got {target_arl0}")
    probe = make_detector(math.sqrt(lo * hi))
    stream = concatenate(probe, streams)
    n = len(stream)
    if n < 10 * target_arl0:
        raise TinydriftError(
            f"{probe.name}: {n} no-drift inferences cannot measure an ARL0 of {target_arl0:g} "
            f"(need at least {int(10 * target_arl0)}; 50x or more for a stable threshold)"
        )
    scanner = probe.scanner(stream)

    def arl0(threshold: float, limit: float = math.inf) -> float:
        # With a limit, counting stops once the ARL0 is certainly below n / limit.
        if scanner is not None:
            alarms = _count_scanner(scanner, threshold, limit)
        else:
            alarms = _count_loop(make_detector(threshold), stream, limit)
        return n / alarms if alarms else math.inf

    def meets(threshold: float) -> bool:
        return arl0(threshold, limit=n / target_arl0) >= target_arl0

    if not meets(hi):
        at_hi = arl0(hi)
        raise TinydriftError(
            f"{probe.name}: ARL0 at the largest threshold tried ({hi:g}) is {at_hi:.0f}, below the target "
            f"{target_arl0:g}: raise hi"
        )
    if meets(lo):
        at_lo = arl0(lo)
        raise TinydriftError(
            f"{probe.name}: ARL0 at the smallest threshold tried ({lo:g}) is already {at_lo:.0f} >= the target "
            f"{target_arl0:g}: lower lo"
        )
    for _ in range(iterations):
        mid = math.sqrt(lo * hi)
        if meets(mid):
            hi = mid
        else:
            lo = mid
    return hi
