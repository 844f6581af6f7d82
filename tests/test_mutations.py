"""Tests that can fail: each case breaks one thing in a copy of firmware/ (under
build/mutants/, never the real tree), builds the copy as the suite builds the real one, and
runs a named check against both builds: the check must fail on the mutant and pass on the
original.

Mutation (file)                                          Check that catches it
-------------------------------------------------------  -------------------------------------------------
DATA_DRIFT never latches (monitor/td_monitor_decide.c)   test_monitor_c.check_c_agrees_with_twin, stream 0
CONFIDENCE_DRIFT never latches (td_monitor_decide.c)     same
LABEL_SHIFT never latches (td_monitor_decide.c)          same
ERROR_RATE never latches (monitor/td_monitor_feedback.c) same
SENSOR_FAULT never latches (monitor/td_sensor.c)         same
LABEL ignored: td_monitor_label_feedback not called      test_app_host.check_labels_latch_error_rate
  (app/td_app_commands.c)                                  (STATUS.labels stays 0, no ERROR_RATE)
a kernel skips writes: the optimized FULLY_CONNECTED     test_kernels_optimized.run_host_check (the
  writes the first of each pair of batch rows only         kernel checker, outputs poisoned per case)
  (kernels/optimized/td_fully_connected_s8_m4.c)

Stream 0 of test_monitor_c latches all five alarm types, so a monitor that never raises one
differs from the twin there. All of it takes about 20 s from a clean build folder, so it
runs in the default tier. The copies stay in build/mutants/ and their builds in build/host/
(named by content), so a second run reuses them.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from test_app_host import build_app, check_labels_latch_error_rate, clips, reference  # noqa: F401 (fixtures)
from test_kernels_optimized import parse_check, run_host_check
from test_monitor_c import ALL_ALARMS_SEED, check_c_agrees_with_twin
from tinydrift import firmware

MUTANTS_DIR = firmware.BUILD_ROOT / "mutants"
MONITOR = Path("lib/tinydrift/src/monitor")
# td_monitor_decide: a score past its drift level (or its limit) latches its alarm type, unless
# latched already.
SCORE_LATCH = "(state->alarms & alarm) == 0) {"


def mutant(name: str, relative_path: Path | str, original: str, replacement: str) -> Path:
    """A fresh copy of firmware/ with `original` (once in relative_path) replaced."""
    copy = MUTANTS_DIR / name
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(firmware.FIRMWARE_DIR, copy, ignore=shutil.ignore_patterns(".pio"))  # not PlatformIO's builds
    path = copy / relative_path
    text = path.read_text()
    assert text.count(original) == 1, f"{relative_path}: the code this mutation breaks has changed; update it"
    path.write_text(text.replace(original, replacement))
    return copy


def score_never_latches(alarm: str) -> tuple:
    return MONITOR / "td_monitor_decide.c", SCORE_LATCH, SCORE_LATCH.replace(") {", f" && alarm != {alarm}) {{")


MONITOR_MUTATIONS = {
    "data_drift_never_latches": score_never_latches("TD_ALARM_DATA_DRIFT"),
    "confidence_drift_never_latches": score_never_latches("TD_ALARM_CONFIDENCE_DRIFT"),
    "label_shift_never_latches": score_never_latches("TD_ALARM_LABEL_SHIFT"),
    "error_rate_never_latches": (MONITOR / "td_monitor_feedback.c",
                                 "td_monitor_latch(state, TD_ALARM_ERROR_RATE, state->ddm_warning_time);", ";"),
    "sensor_fault_never_latches": (MONITOR / "td_sensor.c",
                                   "td_monitor_latch_at(state, TD_ALARM_SENSOR_FAULT, now, state->sensor_run_start[c]);", ";"),
}


@pytest.mark.parametrize("name", sorted(MONITOR_MUTATIONS))
def test_c_monitor_that_never_raises_an_alarm_type_differs_from_the_twin(name):
    broken = mutant(name, *MONITOR_MUTATIONS[name])
    with pytest.raises(pytest.fail.Exception, match="events differ"):
        check_c_agrees_with_twin(ALL_ALARMS_SEED, broken / MONITOR)
    check_c_agrees_with_twin(ALL_ALARMS_SEED)


def test_app_that_ignores_labels_fails_the_label_feedback_check(clips, reference):  # noqa: F811
    _, config, _ = reference
    broken = mutant("label_feedback_ignored", "lib/tinydrift/src/app/td_app_commands.c",
                    "td_monitor_label_feedback(&app->monitor, td_app_monitor_config(), predicted, label, 0);",
                    "(void)predicted; (void)label;")
    with pytest.raises(AssertionError, match="did not count the labels"):
        check_labels_latch_error_rate(build_app(firmware_dir=broken), clips, config)
    check_labels_latch_error_rate(build_app(), clips, config)


@pytest.mark.slow  # 16 s: builds and runs the kernel checker on a mutated kernel
def test_kernel_that_skips_writes_fails_the_kernel_checker():
    broken = mutant("fully_connected_skips_rows", "lib/tinydrift/src/kernels/optimized/td_fully_connected_s8_m4.c",
                    "const int32_t columns = batch + 1 < params->batches ? 2 : 1;", "const int32_t columns = 1;")
    cases = 300  # enough: two thirds of the cases have two batch rows or more
    proc = run_host_check(broken, cases)
    assert proc.returncode == 1 and parse_check(proc.stdout)["fully_connected"][1] > 0, proc.stdout
    proc = run_host_check(cases=cases)
    assert proc.returncode == 0 and all(m == 0 for _, m, *_ in parse_check(proc.stdout).values()), proc.stdout
