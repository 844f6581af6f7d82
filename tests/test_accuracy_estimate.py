"""The host's label-free accuracy estimate (tinydrift.monitor.accuracy_estimate): ATC as the
device computes it, bounded by the predicted class mix once the input moved, withheld under a
sensor fault."""

from __future__ import annotations

import numpy as np

from tinydrift.monitor.accuracy_estimate import accuracy_estimate, class_mix_bound
from tinydrift.monitor.config import (ALARM_CONFIDENCE_DRIFT, ALARM_DATA_DRIFT, ALARM_LABEL_SHIFT,
                                      ALARM_SENSOR_FAULT)

UNIFORM = np.full(5, 0.2)


def test_every_answer_on_one_class_of_five_bounds_accuracy_at_a_fifth():
    # a dead camera: black frames all classed 'wilt', whatever the plant
    bound = class_mix_bound(np.array([0, 0, 0, 500, 0]), UNIFORM)
    assert abs(bound - 0.2) < 0.05
    assert bound >= 0.2  # never below what the mix proves


def test_the_reference_mix_itself_bounds_nothing_even_in_a_short_window():
    rng = np.random.default_rng(0)
    draws = rng.multinomial(60, UNIFORM, size=2000)  # 60 inferences a window: TV reads ~0.09 by chance
    bounds = class_mix_bound(draws, UNIFORM)
    assert np.median(bounds) >= 0.99
    assert np.mean(bounds) >= 0.97


def test_the_bound_replaces_atc_only_once_the_input_moved_and_only_when_lower():
    collapsed = np.array([30, 0, 5, 400, 65])
    quiet = accuracy_estimate(0.96, collapsed, UNIFORM, alarms=0)
    assert (quiet.value, quiet.basis) == (0.96, "ATC")
    for alarm in (ALARM_DATA_DRIFT, ALARM_CONFIDENCE_DRIFT):
        moved = accuracy_estimate(0.96, collapsed, UNIFORM, alarms=alarm)
        assert moved.basis == "class mix"
        assert moved.value == float(class_mix_bound(collapsed, UNIFORM)) < 0.5
    balanced = accuracy_estimate(0.80, np.array([100, 101, 99, 100, 100]), UNIFORM, alarms=ALARM_DATA_DRIFT)
    assert (balanced.value, balanced.basis) == (0.80, "ATC")


def test_a_label_shift_alone_keeps_atc():
    # five times more of one class: the mix moved, the inputs did not
    shifted = accuracy_estimate(0.97, np.array([300, 50, 50, 50, 50]), UNIFORM, alarms=ALARM_LABEL_SHIFT)
    assert (shifted.value, shifted.basis) == (0.97, "ATC")


def test_a_sensor_fault_withholds_the_estimate():
    withheld = accuracy_estimate(1.0, np.array([0, 0, 0, 500, 0]), UNIFORM, alarms=ALARM_SENSOR_FAULT | ALARM_DATA_DRIFT)
    assert withheld.value is None
    assert "withheld" in withheld.text() and "sensor fault" in withheld.text()
