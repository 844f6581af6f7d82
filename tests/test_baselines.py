"""The baseline drift detectors (tinydrift.monitor.baselines) on synthetic data, fixed seeds.

- calibrated on 100,000 no-drift inferences, each keeps its ARL0 on 100,000 fresh ones
  (within x0.5-x2 of the target) and sees an obvious shift soon after it starts;
- each scanner (the vectorized path calibration uses) gives the update loop's run lengths;
- calibrate_threshold moves the right way with the target and refuses what it cannot do;
- the KS distance and p-value are scipy's, MEWMA, Hotelling and MMD compute their formulas;
- river's detectors need river, and say how to get it.

river-based detectors are skipped when river (tinydrift[bench]) is not installed.
"""

from __future__ import annotations

import importlib.util
import math
import sys

import numpy as np
import pytest
from scipy import stats

from tinydrift.errors import TinydriftError
from tinydrift.monitor.baselines import (
    BASELINES,
    INPUT_OF,
    AlwaysFire,
    NeverFire,
    calibrate_threshold,
    count_alarms,
    empirical_arl0,
    run_length,
)
from tinydrift.monitor.baselines.ks_window import ks_distance, ks_pvalue

HAVE_RIVER = importlib.util.find_spec("river") is not None
RIVER_BASED = {"page_hinkley", "adwin", "kswin"}
needs_river = pytest.mark.skipif(not HAVE_RIVER, reason="river is not installed (tinydrift[bench])")

CLASSES, CHANNELS = 12, 40
# A summary with correlated channels (8 shared factors): MEWMA's whitening matters.
MIX = np.random.default_rng(123).normal(size=(CHANNELS, 8)) * 0.8
CHANNEL_SD = np.sqrt((MIX**2).sum(axis=1) + 1)


def synthetic(kind: str, n: int, rng: np.random.Generator, drift: bool = False) -> np.ndarray:
    """n observations of one kind; drift: an obvious shift of the mean (entropy +1 sd,
    confidence -1 sd, probabilities less peaked, summary +0.5 sd on 10 of 40 channels)."""
    if kind == "entropy":  # gamma(4, 0.2): mean 0.8, sd 0.4, skewed
        return rng.gamma(4.0, 0.2, size=n) + (0.4 if drift else 0.0)
    if kind == "confidence":  # beta(8, 2): mean 0.8, sd 0.12
        return rng.beta(8.0, 2.0, size=n) - (0.12 if drift else 0.0)
    if kind == "probs":
        logits = rng.normal(size=(n, CLASSES))
        logits[np.arange(n), rng.integers(0, CLASSES, n)] += 2.0 if drift else 3.0
        e = np.exp(logits - logits.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)
    x = rng.normal(size=(n, 8)) @ MIX.T + rng.normal(size=(n, CHANNELS))
    if drift:
        x[:, :10] += 0.5 * CHANNEL_SD[:10]
    return x


# name: target ARL0. ADWIN's false-alarm rate is bounded by its delta < 1: ARL0 500 would
# need delta > 1, outside its theory, so it is checked at 2,000.
TARGETS = {
    "page_hinkley": 500,
    "adwin": 2000,
    "kswin": 500,
    "ks_confidence": 500,
    "ks_probs": 500,
    "mewma": 500,
    "hotelling": 500,
    "mmd": 500,
}


def param(name):
    if name == "mmd":  # 8-12 s: its quadratic kernel sums; its scanner test stays in the default tier
        return pytest.param(name, marks=pytest.mark.slow)
    return pytest.param(name, marks=needs_river) if name in RIVER_BASED else name


DETECTORS = [param(name) for name in TARGETS]


class Case:
    """One detector's data (reference, calibration and fresh streams) and threshold."""

    def __init__(self, name: str) -> None:
        self.name, self.kind, self.target = name, INPUT_OF[name], TARGETS[name]
        rng = np.random.default_rng(sum(map(ord, name)))
        self.rng = rng
        self.reference = synthetic(self.kind, 2000, rng)
        self.calibration = [synthetic(self.kind, 10_000, rng) for _ in range(10)]
        self.fresh = [synthetic(self.kind, 10_000, rng) for _ in range(10)]
        lo, hi = self.make(1.0).threshold_range
        self.threshold = calibrate_threshold(self.make, self.calibration, self.target, lo=lo, hi=hi)

    def make(self, threshold: float):
        return BASELINES[self.name](self.reference, threshold)


@pytest.fixture(scope="module")
def cases():
    made: dict[str, Case] = {}

    def get(name: str) -> Case:
        if name not in made:
            made[name] = Case(name)
        return made[name]

    return get


@pytest.mark.parametrize("name", DETECTORS)
def test_calibrated_detector_keeps_its_arl0_on_fresh_streams(cases, name):
    case = cases(name)
    detector = case.make(case.threshold)
    fresh = empirical_arl0(detector, case.fresh)
    assert 0.5 * case.target <= fresh <= 2 * case.target, f"{name}: ARL0 {fresh:.0f} on fresh streams, target {case.target}"


@pytest.mark.parametrize("name", DETECTORS)
def test_calibrated_detector_sees_an_obvious_shift_soon(cases, name):
    """400 in-distribution inferences (the detectors that compare the stream with its own
    past need them), then a shift: of the streams without a false alarm before it, the
    median delay is short, far below the no-drift run length (the target ARL0)."""
    case = cases(name)
    detector = case.make(case.threshold)
    change, after = 400, 600
    rng = np.random.default_rng(7)
    delays = []
    for _ in range(40):
        stream = np.concatenate([synthetic(case.kind, change, rng), synthetic(case.kind, after, rng, drift=True)])
        alarm = run_length(detector, stream, fast=True)
        if alarm is None:
            delays.append(after + 1)
        elif alarm > change:
            delays.append(alarm - change)
    assert len(delays) >= 10, f"{name}: {40 - len(delays)} of 40 streams alarmed before the change"
    median = float(np.median(delays))
    # window tests: tested every 50, with 200 in the window; the others react in tens
    assert median <= 150, f"{name}: median delay {median:.0f} after an obvious shift"
    assert np.mean(np.array(delays) <= after) >= 0.9, f"{name}: missed the shift in {sorted(delays)}"


@pytest.mark.parametrize("name", DETECTORS)
def test_scanner_gives_the_update_loops_run_lengths(cases, name):
    """The vectorized path calibration uses against the definition (reset, update one at a
    time), at a threshold low enough to alarm several times a stream."""
    case = cases(name)
    detector = case.make(case.threshold * (0.8 if name != "mmd" else 0.9))
    rng = np.random.default_rng(11)
    mixed = [synthetic(case.kind, 700, rng), synthetic(case.kind, 700, rng, drift=True)]
    streams = [synthetic(case.kind, 1500, rng) for _ in range(3)] + [np.concatenate(mixed)]
    loop = [run_length(detector, s) for s in streams]
    fast = [run_length(detector, s, fast=True) for s in streams]
    assert loop == fast
    assert any(r is not None for r in loop)
    if name != "kswin":  # river's KSWIN runs a scipy test per update: too slow for 20,000
        assert count_alarms(detector, case.fresh[:2], exact=True) == count_alarms(detector, case.fresh[:2])


def test_trivial_detectors_are_the_floor_and_the_ceiling():
    stream = np.random.default_rng(0).gamma(4.0, 0.2, size=1000)
    assert run_length(NeverFire(), stream) is None
    assert run_length(AlwaysFire(), stream) == 1
    assert run_length(NeverFire(), stream, fast=True) is None
    assert run_length(AlwaysFire(), stream, fast=True) == 1
    assert empirical_arl0(AlwaysFire(), [stream]) == 1.0
    assert empirical_arl0(NeverFire(), [stream]) == math.inf
    assert count_alarms(AlwaysFire(input="summary"), [np.zeros((50, CHANNELS))], exact=True) == (50, 50)
    for detector in (AlwaysFire(), NeverFire()):
        assert detector.state_floats() == 0 and detector.ops_per_update() == 0


@pytest.mark.parametrize("name", [param("page_hinkley"), "mewma", "ks_confidence"])
def test_calibrated_threshold_grows_with_the_target(cases, name):
    case = cases(name)
    lo, hi = case.make(1.0).threshold_range
    # (the window tests cannot go below ~250: no test before 200 inferences)
    targets = (300, case.target, 1500)
    thresholds = [calibrate_threshold(case.make, case.calibration, target, lo=lo, hi=hi) for target in targets]
    assert thresholds[0] < thresholds[1] < thresholds[2]
    assert thresholds[1] == case.threshold  # deterministic
    arl0 = [empirical_arl0(case.make(h), case.calibration) for h in thresholds]
    assert all(a >= target for a, target in zip(arl0, targets))  # calibrate_threshold's promise
    assert arl0[0] < arl0[1] < arl0[2]


@needs_river
def test_calibration_without_a_scanner_moves_with_the_target():
    """ADWIN (no scanner: river's update loop at every bisection step)."""
    rng = np.random.default_rng(5)
    reference = synthetic("entropy", 2000, rng)
    streams = [synthetic("entropy", 10_000, rng) for _ in range(5)]

    def make(h):
        return BASELINES["adwin"](reference, h)

    assert make(1.0).scanner(streams[0]) is None
    # (delta < 1 keeps ADWIN's ARL0 above ~1,200 here)
    low, high = (calibrate_threshold(make, streams, target, lo=0.01, hi=20, iterations=10) for target in (1500, 3000))
    assert low < high
    assert empirical_arl0(make(low), streams) >= 1500 and empirical_arl0(make(high), streams) >= 3000


def test_calibration_refuses_what_it_cannot_measure():
    rng = np.random.default_rng(3)
    reference = synthetic("summary", 2000, rng)
    streams = [synthetic("summary", 5000, rng) for _ in range(4)]

    def make(h):
        return BASELINES["hotelling"](reference, h)

    with pytest.raises(TinydriftError, match="raise hi"):
        calibrate_threshold(make, streams, 1000, lo=1.0, hi=10.0)  # T^2 of 40 channels is ~40
    with pytest.raises(TinydriftError, match="lower lo"):
        calibrate_threshold(make, streams, 1000, lo=500.0, hi=1000.0)
    with pytest.raises(TinydriftError, match="cannot measure"):
        calibrate_threshold(make, streams, 5000, lo=1.0, hi=1000.0)
    with pytest.raises(TinydriftError, match="wrap it in a list"):
        calibrate_threshold(make, streams[0], 100, lo=1.0, hi=1000.0)
    with pytest.raises(TinydriftError, match=r"\[T, D\]"):
        run_length(make(80.0), np.zeros(100))


def test_ks_distance_and_pvalue_are_scipys():
    rng = np.random.default_rng(9)
    reference = np.sort(np.round(rng.beta(8, 2, size=1500), 2))  # rounded: many ties
    windows = np.round(rng.beta(7, 2, size=(40, 200)), 2)
    windows[:5] = rng.beta(8, 2, size=(5, 200))
    distance = ks_distance(windows, reference)
    pvalue = ks_pvalue(distance, 200, len(reference))
    for window, d, p in zip(windows, distance, pvalue):
        expected = stats.ks_2samp(window, reference, method="asymp")
        assert d == expected.statistic  # bit for bit
        assert p == pytest.approx(expected.pvalue, rel=1e-12, abs=1e-300)


def test_ks_probs_uses_bonferroni_over_classes():
    rng = np.random.default_rng(4)
    reference = synthetic("probs", 2000, rng)
    detector = BASELINES["ks_probs"](reference, 2.0)
    window = synthetic("probs", 200, rng, drift=True)
    smallest = min(stats.ks_2samp(window[:, c], reference[:, c], method="asymp").pvalue for c in range(CLASSES))
    expected = -math.log10(min(1.0, CLASSES * smallest))
    assert detector.statistic(window[None])[0] == pytest.approx(expected, rel=1e-9)


def test_mewma_is_lowry_and_hotelling_is_its_lambda_one():
    rng = np.random.default_rng(8)
    reference = synthetic("summary", 4000, rng)
    hotelling = BASELINES["hotelling"](reference, 1e9)
    mean, cov = reference.mean(axis=0), np.cov(reference, rowvar=False)
    x = synthetic("summary", 50, rng)
    direct = np.einsum("td,de,te->t", x - mean, np.linalg.inv(cov), x - mean)
    t2 = []
    for row in x:
        hotelling.reset()
        hotelling.update(row)
        t2.append(hotelling.scale * float(hotelling._z @ hotelling._z))
    np.testing.assert_allclose(t2, direct, rtol=1e-4)  # the ridge is 1e-6 of the mean variance

    lam = 0.05
    mewma = BASELINES["mewma"](reference, 1e9, lam=lam)
    z = np.zeros(CHANNELS)
    whitened = (x - mean) @ np.linalg.inv(np.linalg.cholesky(cov)).T
    for row, u in zip(x, whitened):
        mewma.update(row)
        z = lam * u + (1 - lam) * z
    assert (2 - lam) / lam * float(z @ z) == pytest.approx(mewma.scale * float(mewma._z @ mewma._z), rel=1e-4)


def test_mmd_is_the_v_statistic_against_the_reference_sample():
    rng = np.random.default_rng(6)
    reference = synthetic("summary", 800, rng)
    detector = BASELINES["mmd"](reference, 1e9, window=40, max_reference=300)
    window = synthetic("summary", 40, rng, drift=True)
    for row in window:
        detector.update(row)
    x, y = detector.standardize(window), detector.y

    def gram(a, b):
        return np.exp(-((a[:, None, :] - b[None, :, :]) ** 2).sum(axis=-1) * detector.gamma)

    expected = gram(x, x).mean() + gram(y, y).mean() - 2 * gram(x, y).mean()
    pairs = np.triu(gram(x, x), 1).sum()
    assert detector.mmd2(pairs, detector._cross.sum()) == pytest.approx(expected, rel=1e-9)
    distances = np.sqrt(((y[:, None] - y[None]) ** 2).sum(axis=-1))[np.triu_indices(len(y), 1)]
    assert detector.sigma == pytest.approx(np.median(distances), rel=1e-9)
    assert expected > 0


def test_every_baseline_is_made_from_the_registry():
    rng = np.random.default_rng(2)
    for name, factory in BASELINES.items():
        if name in RIVER_BASED and not HAVE_RIVER:
            continue
        kind = INPUT_OF[name]
        detector = factory(synthetic(kind, 500, rng), 1.0)
        assert detector.name == name and detector.input == kind and detector.threshold == 1.0
        assert isinstance(detector.state_floats(), int) and isinstance(detector.ops_per_update(), int)
        if name not in ("always_fire", "never_fire"):
            assert detector.state_floats() > 0 and detector.ops_per_update() > 0
        stream = synthetic(kind, 300, rng)
        detector.reset()
        assert all(isinstance(detector.update(x), bool) for x in (stream.tolist() if stream.ndim == 1 else stream))


def test_river_detectors_say_how_to_get_river(monkeypatch):
    monkeypatch.setitem(sys.modules, "river", None)  # import river -> ImportError
    for name in sorted(RIVER_BASED):
        with pytest.raises(TinydriftError, match=r"tinydrift\[bench\]"):
            BASELINES[name](np.ones(10), 1.0)
