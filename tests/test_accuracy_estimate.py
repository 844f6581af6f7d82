"""The host's label-free accuracy estimate (tinydrift.monitor.accuracy_estimate): ATC as the
device computes it, less the confident answers beyond their classes' reference shares once
the input moved, withheld under a sensor fault."""

from __future__ import annotations

import numpy as np

from tinydrift.monitor.accuracy_estimate import CAPPED, accuracy_estimate, confident_excess
from tinydrift.monitor.config import (ALARM_CONFIDENCE_DRIFT, ALARM_DATA_DRIFT, ALARM_LABEL_SHIFT,
                                      ALARM_SENSOR_FAULT)

UNIFORM = np.full(5, 0.2)


def test_every_confident_answer_on_one_class_of_five_leaves_a_fifth():
    # a dead camera: black frames all classed 'wilt' with confidence, whatever the plant
    dead = accuracy_estimate(1.0, np.array([0, 0, 0, 500, 0]), 500, UNIFORM, alarms=ALARM_DATA_DRIFT)
    assert dead.basis == CAPPED and 0.2 <= dead.value < 0.25


def test_the_reference_mix_itself_takes_nothing_off_even_in_a_short_window():
    rng = np.random.default_rng(0)
    for n, share in ((60, 0.95), (500, 0.95), (60, 0.6)):
        # n answers of the reference mix, `share` of them confident: a class's confident share
        # passes its prior by chance (0.08 summed over five classes at n = 60, share 0.95);
        # what is left of it after the correction is under a third, or half a point
        answers = rng.multinomial(n, UNIFORM, size=4000)
        confident = rng.binomial(answers, share)
        raw = np.maximum(confident / n - UNIFORM, 0).sum(axis=1)
        excess = confident_excess(confident, n, UNIFORM)
        assert np.mean(excess) < max(0.35 * np.mean(raw), 0.005), (n, share, np.mean(raw), np.mean(excess))
        assert np.median(excess) == 0


def test_confident_answers_piled_on_one_class_come_off_atc_once_the_input_moved():
    piled = np.array([60, 60, 60, 300, 20])  # 500 answers, all confident: class 3 took 200 beyond its 100
    quiet = accuracy_estimate(1.0, piled, 500, UNIFORM, alarms=0)
    assert (quiet.value, quiet.basis) == (1.0, "ATC")
    for alarm in (ALARM_DATA_DRIFT, ALARM_CONFIDENCE_DRIFT):
        moved = accuracy_estimate(1.0, piled, 500, UNIFORM, alarms=alarm)
        assert moved.basis == CAPPED and 0.6 <= moved.value < 0.65
    # answers that pile on a class without confidence are already wrong to ATC: nothing more comes off
    unsure = accuracy_estimate(0.80, np.array([80, 80, 80, 80, 80]), 500, UNIFORM, alarms=ALARM_DATA_DRIFT)
    assert (unsure.value, unsure.basis) == (0.80, "ATC")


def test_a_label_shift_alone_keeps_atc():
    # five times more of one class: the mix moved, the inputs did not
    shifted = accuracy_estimate(0.97, np.array([300, 50, 50, 50, 50]), 500, UNIFORM, alarms=ALARM_LABEL_SHIFT)
    assert (shifted.value, shifted.basis) == (0.97, "ATC")


def test_without_the_reference_mix_or_any_answer_the_estimate_is_atc():
    assert accuracy_estimate(0.9, None, 0, UNIFORM, alarms=ALARM_DATA_DRIFT).basis == "ATC"
    assert accuracy_estimate(0.9, np.array([0, 0, 0, 9, 0]), 9, None, alarms=ALARM_DATA_DRIFT).value == 0.9
    assert accuracy_estimate(0.9, np.zeros(5), 0, UNIFORM, alarms=ALARM_DATA_DRIFT).value == 0.9


def test_a_sensor_fault_withholds_the_estimate():
    withheld = accuracy_estimate(1.0, np.array([0, 0, 0, 500, 0]), 500, UNIFORM,
                                 alarms=ALARM_SENSOR_FAULT | ALARM_DATA_DRIFT)
    assert withheld.value is None
    assert "withheld" in withheld.text() and "sensor fault" in withheld.text()
