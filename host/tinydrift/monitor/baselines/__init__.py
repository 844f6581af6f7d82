"""Host-side baseline drift detectors the drift benchmark compares the device's monitor
with, each calibrated to the same false-alarm rate (ARL0, in inferences). One detector a
file, behind one small interface (`base.Detector`, as river's detectors are):
`reset()`, `update(x) -> bool`, `threshold`, `state_floats()`, `ops_per_update()`; and
`base.run_length`, `base.empirical_arl0`, `base.calibrate_threshold` to run and calibrate
any of them.

    name           input       reference it keeps                 threshold        state floats  ops/inference
    page_hinkley   entropy     mean, sd (standardizes)            PH lambda (sd)              8             20
    adwin          entropy     mean, sd (standardizes)            -log10(delta)           ~120            ~45
    kswin          entropy     none: the stream's own past        -log10(alpha)             304         ~2,400
    ks_confidence  confidence  N confidences, sorted              -log10(p)               2,201           ~140
    ks_probs       probs       N x C probabilities, sorted        -log10(C p_min)        26,401         ~1,600
    mewma          summary     mean, whitening (covariance)       T^2                       900         ~1,900
    hotelling      summary     mean, whitening (covariance)       T^2                       860         ~1,800
    mmd            summary     500 summaries, channel mean, sd    MMD^2                 ~28,800        ~76,000
    always_fire    any         none                               none                        0              0
    never_fire     any         none                               none                        0              0

Costs at the defaults, with N = 2,000 reference outputs, C = 12 classes, D = 40 channels:
adwin at a window of 2,000 inferences; kswin window 300, 100 recent against 100 drawn;
ks_* a window of 200 tested every 50; mewma lambda 0.05 (hotelling is lambda 1); mmd a
window of 200 tested every 50 against 500 reference summaries. How they are counted: base's
docstring; for a configured detector, its `state_floats()` and `ops_per_update()`. The
device's monitor, for comparison: ~700 bytes, ~6k instructions per inference. None is
one-sided by default: page_hinkley and adwin see the entropy rise or fall, the KS tests are
two-sided, T^2 and MMD^2 any direction (page_hinkley has mode="up" for rises only).

`BASELINES[name](reference, threshold, **options)` makes a detector; `INPUT_OF[name]` says
which observation (and so which reference sample) it needs before it is made. river
(`tinydrift[bench]`) is imported only when a river-based detector is made.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from tinydrift.monitor.baselines.adwin import ADWIN
from tinydrift.monitor.baselines.base import (
    Detector,
    Scanner,
    calibrate_threshold,
    count_alarms,
    empirical_arl0,
    run_length,
)
from tinydrift.monitor.baselines.ks_window import KSWindow
from tinydrift.monitor.baselines.kswin import KSWIN
from tinydrift.monitor.baselines.mewma import MEWMA
from tinydrift.monitor.baselines.mmd import MMD
from tinydrift.monitor.baselines.page_hinkley import PageHinkley
from tinydrift.monitor.baselines.trivial import AlwaysFire, NeverFire

BASELINES: dict[str, Callable[..., Detector]] = {
    "page_hinkley": PageHinkley,
    "adwin": ADWIN,
    "kswin": KSWIN,
    "ks_confidence": partial(KSWindow, input="confidence"),
    "ks_probs": partial(KSWindow, input="probs"),
    "mewma": MEWMA,
    "hotelling": partial(MEWMA, lam=1.0),
    "mmd": MMD,
    "always_fire": AlwaysFire,
    "never_fire": NeverFire,
}

INPUT_OF: dict[str, str] = {
    "page_hinkley": "entropy",
    "adwin": "entropy",
    "kswin": "entropy",
    "ks_confidence": "confidence",
    "ks_probs": "probs",
    "mewma": "summary",
    "hotelling": "summary",
    "mmd": "summary",
    "always_fire": "entropy",
    "never_fire": "entropy",
}

__all__ = [
    "ADWIN",
    "BASELINES",
    "INPUT_OF",
    "KSWIN",
    "MEWMA",
    "MMD",
    "AlwaysFire",
    "Detector",
    "KSWindow",
    "NeverFire",
    "PageHinkley",
    "Scanner",
    "calibrate_threshold",
    "count_alarms",
    "empirical_arl0",
    "run_length",
]
