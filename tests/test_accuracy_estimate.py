"""The host's label-free accuracy estimate (tinydrift.monitor.accuracy_estimate): ATC as the
device computes it, less the confident answers beyond their classes' shares before the change
(what the device heard, else the reference's) once the input moved, withheld under a sensor
fault."""

from __future__ import annotations

import numpy as np

from tinydrift.monitor.accuracy_estimate import CAPPED, CAPPED_REFERENCE, MIN_ANSWERS, ClassMix, accuracy_estimate, confident_excess
from tinydrift.monitor.config import (ALARM_CONFIDENCE_DRIFT, ALARM_DATA_DRIFT, ALARM_LABEL_SHIFT,
                                      ALARM_SENSOR_FAULT)

UNIFORM = ClassMix(np.full(5, 0.2))  # the reference's mix


def test_every_confident_answer_on_one_class_of_five_leaves_a_fifth():
    # a dead camera: black frames all classed 'wilt' with confidence, whatever the plant
    dead = accuracy_estimate(1.0, np.array([0, 0, 0, 500, 0]), 500, UNIFORM, alarms=ALARM_DATA_DRIFT)
    assert dead.basis == CAPPED_REFERENCE and 0.2 <= dead.value < 0.25


def test_the_reference_mix_itself_takes_nothing_off_even_in_a_short_window():
    rng = np.random.default_rng(0)
    for n, share in ((60, 0.95), (500, 0.95), (60, 0.6)):
        # n answers of the reference mix, `share` of them confident: a class's confident share
        # passes its prior by chance (0.08 summed over five classes at n = 60, share 0.95);
        # what is left of it after the correction is under a third, or half a point
        answers = rng.multinomial(n, UNIFORM.share, size=4000)
        confident = rng.binomial(answers, share)
        raw = np.maximum(confident / n - UNIFORM.share, 0).sum(axis=1)
        excess = confident_excess(confident, n, UNIFORM)
        assert np.mean(excess) < max(0.35 * np.mean(raw), 0.005), (n, share, np.mean(raw), np.mean(excess))
        assert np.median(excess) == 0


def test_confident_answers_piled_on_one_class_come_off_atc_once_the_input_moved():
    piled = np.array([60, 60, 60, 300, 20])  # 500 answers, all confident: class 3 took 200 beyond its 100
    quiet = accuracy_estimate(1.0, piled, 500, UNIFORM, alarms=0)
    assert (quiet.value, quiet.basis) == (1.0, "ATC")
    for alarm in (ALARM_DATA_DRIFT, ALARM_CONFIDENCE_DRIFT):
        moved = accuracy_estimate(1.0, piled, 500, UNIFORM, alarms=alarm)
        assert moved.basis == CAPPED_REFERENCE and 0.6 <= moved.value < 0.65
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


def test_against_the_mix_heard_before_the_change_a_deployment_s_own_mix_is_no_loss():
    """No deployment hears the training mix: a keyword spotter hears mostly fillers. Against
    the reference mix, a filler-heavy room's confident fillers read as wrong answers once the
    input moved; against the mix the device heard before the change, only what moved since."""
    rng = np.random.default_rng(5)
    room = np.array([0.6, 0.1, 0.1, 0.1, 0.1])  # class 0 (fillers) six times the others
    heard = ClassMix.heard(rng.choice(5, size=300, p=room), UNIFORM.share)
    assert heard.n == 300 and abs(heard.share[0] - 0.6) < 0.1
    confident = np.array([285, 48, 47, 48, 47])  # 500 answers after a harmless change, 95 % confident
    against_reference = accuracy_estimate(0.95, confident, 500, UNIFORM, alarms=ALARM_DATA_DRIFT)
    against_heard = accuracy_estimate(0.95, confident, 500, heard, alarms=ALARM_DATA_DRIFT)
    assert against_reference.value < 0.6 and against_reference.basis == CAPPED_REFERENCE
    assert against_heard.value > 0.93
    # answers piled on a class the room rarely heard still come off, named as read against the heard mix
    piled = accuracy_estimate(0.95, np.array([150, 250, 17, 16, 17]), 500, heard, alarms=ALARM_DATA_DRIFT)
    assert piled.basis == CAPPED and 0.5 < piled.value < 0.62
    # on answers of the heard mix, what its own sampling noise and the window's read by chance
    # mostly does not come off (as for the reference mix above)
    for n_heard in (40, 300):
        raw, excess = [], []
        for _ in range(2000):
            confident = rng.binomial(rng.multinomial(200, room), 0.95)
            mix = ClassMix.heard(rng.choice(5, size=n_heard, p=room), UNIFORM.share)
            raw.append(np.maximum(confident / 200 - mix.share, 0).sum())
            excess.append(confident_excess(confident, 200, mix))
        assert np.median(excess) == 0 and np.mean(excess) < 0.35 * np.mean(raw), (n_heard, np.mean(excess))
    # too few answers before the change: the reference's mix stands in
    assert ClassMix.heard(np.zeros(MIN_ANSWERS - 1, int), UNIFORM.share).n is None
    assert ClassMix.heard(np.zeros(10, int), None) is None
