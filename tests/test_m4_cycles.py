"""The Cortex-M4 cycle estimate (tinydrift.target.m4_cycles) against loops counted by hand
from the TRM's timing table (firmware/test/m4/cycle_check_main.c), and its replay of QEMU's
execution log against QEMU's own instruction count (-icount) on the MLPerf DS-CNN."""

from __future__ import annotations

import re

import pytest

from test_kernels_optimized import needs_arm
from tinydrift import firmware
from tinydrift.target import emulator
from tinydrift.target.m4_cycles import M4Timing, estimate_cycles, fetch_misses, trace_run

WORDS = 10


@pytest.fixture(scope="module")
def cycle_check_elf():
    units = [firmware.Unit(firmware.test_harness("m4/cycle_check_main.c"), {"TD_CYCLE_CHECK_WORDS": WORDS})]
    return firmware.build_arm_image("cycle_check", units, [])


@needs_arm
def test_hand_counted_loops(cycle_check_elf):
    result = emulator.run(cycle_check_elf, timeout=30)
    text = result.output.decode(errors="replace")
    a = [(i + 1) * 0x00010003 for i in range(WORDS)]
    b = [(i + 2) * 0x00020001 for i in range(WORDS)]
    dot = sum((x & 0xFFFF) * (y & 0xFFFF) + (x >> 16) * (y >> 16) for x, y in zip(a, b))
    assert f"td_cycle_check dot={dot} mix=1000" in text, text

    dot_trace = trace_run(cycle_check_elf, "td_cycle_check_dot")
    mix_trace = trace_run(cycle_check_elf, "td_cycle_check_mix")
    assert dot_trace.instructions == 4 + 5 * WORDS and mix_trace.instructions == 9
    for refill in (1, 2, 3):
        for divide in (2, 12):
            timing = M4Timing(refill=refill, divide=divide)
            n, P = WORDS, refill
            assert estimate_cycles(dot_trace, timing).cycles == 11 + 5 * n + (n - 1) * (1 + P) + P
            assert estimate_cycles(mix_trace, timing).cycles == 21 + divide + P
    estimate = estimate_cycles(dot_trace)
    assert [estimate.cycles_at(P) for P in (1, 3)] == [11 + 5 * WORDS + (WORDS - 1) * (1 + P) + P for P in (1, 3)]
    mix = estimate.mix
    assert mix["branch_taken"] == WORDS - 1 and mix["branch_not_taken"] == 1 and mix["load"] == 2 * WORDS
    # The loop's lines are fetched once into a cache that holds them all; one line of
    # cache misses again whenever the loop crosses from one line to the other.
    lines = {ins.address // 32 for block, _ in dot_trace.blocks for ins in block}
    assert fetch_misses(dot_trace) == len(lines)
    assert fetch_misses(dot_trace, cache_bytes=32) > len(lines) or len(lines) == 1


@pytest.mark.slow  # ~20 s; the hand-counted loops keep the cycle model checked in the default tier
@needs_arm
def test_replayed_log_executes_what_icount_counts():
    """The instructions the replay finds in one invoke of the MLPerf DS-CNN equal QEMU's
    -icount count of the same invoke (to its 40-instruction resolution, plus the timer
    reads around the call)."""
    from tinydrift.model.mlperf_dscnn import mlperf_dscnn_int8, mlperf_inputs
    from tinydrift.target.bench import build_model_check

    elf, _ = build_model_check(mlperf_dscnn_int8(), mlperf_inputs(1, seed=7))
    counted = emulator.run(elf, icount_shift=0, timeout=120).output.decode(errors="replace")
    icount = emulator.instructions_from_cycles(int(re.search(r"cycles=(\d+)", counted).group(1)))
    trace = trace_run(elf, "td_opt_invoke")
    assert abs(trace.instructions - icount) <= 200, (trace.instructions, icount)
    estimate = estimate_cycles(trace)
    kernels = [segment.function for segment in estimate.segments]
    assert kernels[:3] == ["td_conv_widened_s8_m4", "td_depthwise_conv_s8_m4", "td_conv_widened_s8_m4"]
    assert kernels[-3:] == ["td_fully_connected_s8_m4", "td_softmax_s8", "td_opt_invoke (self)"]
    assert sum(segment.cycles for segment in estimate.segments) == estimate.cycles
    assert estimate.instructions < estimate.cycles < 2 * estimate.instructions
