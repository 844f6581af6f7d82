"""The monitor's integer helpers (firmware: src/monitor/td_monitor_fixed.h), on numpy int64.

numpy's `>>` on signed integers is an arithmetic shift (floor), which is exactly the
portable `td_asr_*` of the C; every C expression keeps its values inside int64 here too.
"""

from __future__ import annotations

import numpy as np

INT32_MIN = -(2**31)
INT32_MAX = 2**31 - 1
UINT32_MAX = 2**32 - 1


def round_shift(x, s: int):
    """floor(x / 2^s + 1/2) (td_round_shift_s32/s64)."""
    if s == 0:
        return x
    return (x + (1 << (s - 1))) >> s


def ewma_step(value, target, shift: int):
    """td_ewma_step: value + round((target - value) / 2^shift)."""
    return value + round_shift(target - value, shift)


def div_round(a, b):
    """a / b rounded half up for b > 0 (td_div_round_s64): floor((2a + b) / 2b)."""
    return (2 * np.asarray(a, dtype=np.int64) + b) // (2 * np.asarray(b, dtype=np.int64))


def clamp(x, low, high):
    """np.clip's result for integers, without its per-call overhead (the twin calls it a few
    times per inference, on small arrays)."""
    return np.minimum(np.maximum(x, low), high)


def sat32(x):
    return clamp(x, INT32_MIN, INT32_MAX)


def isqrt(x):
    """floor(sqrt(x)) for 0 <= x < 2^52, elementwise and exact (td_isqrt_u32)."""
    x = np.asarray(x, dtype=np.int64)
    r = np.floor(np.sqrt(x.astype(np.float64))).astype(np.int64)
    r = np.where(r * r > x, r - 1, r)
    r = np.where((r + 1) * (r + 1) <= x, r + 1, r)
    return r
