"""Calibration that holds on unseen data: stream pools standing for another finite sample,
winsorized per-inference scores, the allowance placed on the data, and a held-out
reference-error model that carries sampling error on both sides."""

from __future__ import annotations

import numpy as np
import pytest

from tinydrift.monitor import synthetic
from tinydrift.monitor.calibrate import calibrate_thresholds, measure_arl0
from tinydrift.monitor.evaluate import measure_detection
from tinydrift.monitor.config import ONE_Q12, SCORE_CONF, SCORE_ENTROPY, SCORE_MEAN, SCORE_Z_MAX
from tinydrift.monitor.streams import bootstrap_indices
from tinydrift.monitor.twin import MonitorTwin
from tinydrift.errors import TinydriftError

WORLD = synthetic.world(seed=77)
TARGET = 2000


def dataset(seed):
    return synthetic.synthetic_dataset(n_groups=60, per_group=40, group_share=0.05, domain=WORLD, seed=seed)


def calibrate(data, **options):
    return calibrate_thresholds(data["summaries"], data["probs"], data["groups"], data["labels"],
                                target_arl0=TARGET, n_inferences=300_000, seed=3, **options)


def test_streams_drawn_from_a_pool_use_only_its_groups_with_its_weights():
    groups = np.repeat(np.arange(10) * 7, 20)  # ids need not be positions
    rng = np.random.default_rng(0)
    pool = np.array([1, 1, 1, 4])  # group id 7 three times as often as id 28
    idx = bootstrap_indices(groups, 50, 400, rng, pool=pool)
    drawn = groups[idx.ravel()]
    assert set(np.unique(drawn)) == {7, 28}
    share = np.mean(drawn == 7)
    assert 0.7 < share < 0.8
    per_stream = bootstrap_indices(groups, 20, 200, rng, pool=pool, population=2)
    assert set(np.unique(groups[per_stream.ravel()])) <= {7, 28}
    with pytest.raises(TinydriftError):
        bootstrap_indices(groups, 1, 10, rng, pool=np.array([10]))


def test_each_group_gives_every_group_its_own_streams_in_turn_and_counts_its_alarms():
    """each_group: stream b hears only group b mod the groups (ids in order), so a set of
    rooms gets equal exposure; measure_arl0 then counts alarms per group, and they add up."""
    groups = np.repeat(np.array([30, 10, 20]), [50, 80, 60])  # ids need not be sorted or positions
    rng = np.random.default_rng(1)
    idx = bootstrap_indices(groups, 7, 100, rng, keep_order=True, population=1, each_group=True)
    assert [set(np.unique(groups[row]).tolist()) for row in idx] == [{10}, {20}, {30}, {10}, {20}, {30}, {10}]
    for bad in ({"population": 2}, {"population": 1, "pool": np.array([0, 1])}):
        with pytest.raises(TinydriftError):
            bootstrap_indices(groups, 3, 10, rng, each_group=True, **bad)
    data = dataset(5)
    config, _ = calibrate_thresholds(data["summaries"], data["probs"], data["groups"], data["labels"], target_arl0=300,
                                     n_inferences=30_000, seed=3)
    result = measure_arl0(config, data["summaries"], data["probs"], data["groups"], n_inferences=120 * 2_000,
                          stream_length=2_000, keep_order=True, population=1, each_group=True)
    assert len(result["group_alarms"]) == 60 and sum(result["group_alarms"]) == result["alarms"] > 0, result
    assert "group_alarms" not in measure_arl0(config, data["summaries"], data["probs"], data["groups"],
                                              n_inferences=2_000, stream_length=2_000)


def test_winsorized_scores_are_capped_by_the_device_clip_and_centred_by_the_allowance():
    data = dataset(1)
    plain, _ = calibrate(data)
    capped, report = calibrate(data, winsorize_sigma=(None, None, 1.5, 1.5, None))
    # Gain stretched by 16 / 1.5 (SCORE_Z_MAX is 16 in Q12), so the clip sits at 1.5 sd.
    stretch = (SCORE_Z_MAX / ONE_Q12) / 1.5
    for i in (SCORE_CONF, SCORE_ENTROPY):
        assert capped.score_gain_q16[i] / plain.score_gain_q16[i] == pytest.approx(stretch, rel=0.05)
        assert report["scores"][["mean", "var", "confidence", "entropy", "label"][i]]["winsorize_sigma"] == 1.5
    assert capped.score_gain_q16[SCORE_MEAN] == pytest.approx(plain.score_gain_q16[SCORE_MEAN], rel=0.05)
    # The twin's z of a very unconfident inference is at the clip: capped at 1.5 sd.
    twin = MonitorTwin(capped, 1)
    worst = np.full((1, capped.n_classes), -128, dtype=np.int8)
    worst[0, :2] = [-1, -2]  # max probability about 1/2
    z = twin.update(data["summaries"][:1], worst)["z"][0]
    assert z[SCORE_CONF] == SCORE_Z_MAX
    # Winsorized z has a positive no-drift mean (the cap trims the drop side only), which
    # the allowance absorbs: k above the plain score's k_sigma * ONE_Q12 in these units.
    k_units = capped.score_k[SCORE_CONF] / stretch
    assert k_units > 0.0 and capped.score_k[SCORE_CONF] > 0


def test_scores_constant_on_the_reference_are_turned_off_and_named():
    """A wake-word model that never fires on its reference: confidence, entropy and class mix
    never move, their CUSUMs have no excursion to place a level by, and calibration once
    failed asking for more simulated inferences, which could not help."""
    from tinydrift.monitor.config import SCORE_LABEL

    data = dataset(1)
    never_fires = np.full_like(data["probs"], -128)
    never_fires[:, 0] = 127
    config, report = calibrate_thresholds(data["summaries"], never_fires, data["groups"], None, target_arl0=TARGET,
                                          n_inferences=300_000, seed=3)
    assert report["idle_scores"] == ["confidence", "entropy", "label"]
    assert [(config.enabled_scores >> i) & 1 for i in (SCORE_MEAN, SCORE_CONF, SCORE_ENTROPY, SCORE_LABEL)] == [1, 0, 0, 0]
    assert set(report["scores"]) == {"mean", "var"}
    # the input scores still meet the budget on their own
    check = measure_arl0(config, data["summaries"], never_fires, data["groups"], n_inferences=100_000)
    assert check["by_type"]["CONFIDENCE_DRIFT"] == check["by_type"]["LABEL_SHIFT"] == 0
    constant = np.zeros_like(data["summaries"])
    with pytest.raises(TinydriftError, match="every score stays constant on the reference"):
        calibrate_thresholds(constant, never_fires, data["groups"], None, target_arl0=TARGET, n_inferences=300_000)


def test_winsorize_needs_one_value_per_score():
    with pytest.raises(TinydriftError, match="winsorize_sigma"):
        calibrate(dataset(1), winsorize_sigma=(2.0, 2.0))


@pytest.mark.slow  # 12-20 s of calibration; export uses the bootstrap, whose held-out check is test_drift_calibration's
def test_holdout_reference_error_is_more_conservative_than_bootstrap():
    """Streams from another resample add the check sample's own sampling error: the
    levels rise (never fall much) and unseen streams alarm less often."""
    data, unseen = dataset(1), dataset(9)
    boot, _ = calibrate(data, replicates=8)
    hold, report = calibrate(data, replicates=8, reference_error="holdout")
    assert report["reference_error"] == "holdout" and report["replicates"] == 8
    assert np.all(hold.score_drift >= 0.9 * boot.score_drift)
    a_boot = measure_arl0(boot, unseen["summaries"], unseen["probs"], unseen["groups"], n_inferences=60 * TARGET)
    a_hold = measure_arl0(hold, unseen["summaries"], unseen["probs"], unseen["groups"], n_inferences=60 * TARGET)
    assert a_hold["arl0"] >= a_boot["arl0"]


@pytest.mark.slow  # ~14 s (the default tier stood at 21 minutes)
def test_checks_draw_streams_the_way_calibration_did():
    """measure_arl0 and measure_detection default to the session cap (block_length)
    calibration simulated: the levels hold for that stream model, not another."""
    data, unseen = dataset(1), dataset(9)
    config, report = calibrate(data, block_length=5)
    assert report["block_length"] == 5 and config.metadata["calibration"]["block_length"] == 5
    args = (config, unseen["summaries"], unseen["probs"], unseen["groups"])
    default = measure_arl0(*args, n_inferences=20 * TARGET)
    explicit = measure_arl0(*args, n_inferences=20 * TARGET, block_length=5)
    whole_groups = measure_arl0(*args, n_inferences=20 * TARGET, block_length=None)
    assert default["alarms"] == explicit["alarms"]
    assert default["alarms"] != whole_groups["alarms"]
    before = {k: unseen[k] for k in ("summaries", "probs", "groups")}
    a = measure_detection(config, before, before, n_streams=20, change_at=200, max_delay=200)
    b = measure_detection(config, before, before, n_streams=20, change_at=200, max_delay=200, block_length=5)
    assert a["false_alarms"] == b["false_alarms"] and np.array_equal(a["delays"], b["delays"])


@pytest.mark.slow  # ~21 s
def test_heldout_check_runs_both_directions_and_splits_of_the_same_speakers():
    from tinydrift.monitor.heldout import heldout_arl0, split_within_groups

    ref, test = dataset(1), dataset(2)
    a, b = split_within_groups(ref, np.random.default_rng(0))
    assert len(a["groups"]) + len(b["groups"]) == len(ref["groups"])
    assert set(np.unique(a["groups"])) == set(np.unique(b["groups"]))  # same speakers, other clips
    result = heldout_arl0(ref, test, target_arl0=TARGET, splits=1, check_inferences=15 * TARGET,
                          n_inferences=80_000, replicates=4, min_samples=1000)
    assert [p["pair"] for p in result["pairs"]] == ["ref->test", "test->ref", "split0"]
    ratios = np.array([p["ratio"] for p in result["pairs"]])
    assert np.all(ratios > 0) and np.all(np.isfinite(ratios))
    assert result["geometric_mean_ratio"] == pytest.approx(float(np.exp(np.log(ratios).mean())))
    assert result["pairs"][2]["calibration_samples"] < len(ref["groups"]) + len(test["groups"])


def test_arl0_counts_sensor_health_when_given_the_blocks_conditions():
    """measure_arl0 with sensor_conditions runs sensor health before each update as the app
    does: a device whose microphone reads stuck for whole speakers (a muted headset) raises
    SENSOR_FAULT alarms there, and none when the conditions are left out; rows that do not
    match the samples are refused in one line."""
    from tinydrift.monitor.config import CUSUM_MAX, SCORE_COUNT, SENSOR_STUCK
    from tinydrift.monitor.reference import build_config, reference_stats

    data = dataset(1)
    config = build_config(reference_stats(data["summaries"], data["probs"])).replace(
        score_drift=np.full(SCORE_COUNT, CUSUM_MAX), score_warning=np.full(SCORE_COUNT, CUSUM_MAX),
        score_limit=np.zeros(SCORE_COUNT, np.int64), persist_blocks=np.array([50, 50, 250, 0], np.uint16))
    conditions = np.zeros((len(data["groups"]), 50), dtype=np.int64)
    conditions[data["groups"] % 10 == 0] = SENSOR_STUCK  # every block of one speaker in ten
    args = (config, data["summaries"], data["probs"], data["groups"])
    quiet = measure_arl0(*args, n_inferences=4000, stream_length=200, block_length=None)
    sensed = measure_arl0(*args, n_inferences=4000, stream_length=200, block_length=None,
                          sensor_conditions=conditions)
    assert quiet["alarms"] == 0
    assert sensed["alarms"] > 0 and sensed["by_type"]["SENSOR_FAULT"] == sensed["alarms"]
    with pytest.raises(TinydriftError, match="sensor_conditions has 3 rows"):
        measure_arl0(*args, n_inferences=1000, sensor_conditions=conditions[:3])
