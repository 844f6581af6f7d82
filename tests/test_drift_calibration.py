"""Reference statistics, config round trips, ARL0 calibration checked on unseen streams,
and detection of synthetic drift: data shift (with the channels that moved), confidence
drift, label shift."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tinydrift.monitor import config as cfgmod
from tinydrift.monitor import synthetic
from tinydrift.monitor.calibrate import calibrate_thresholds, measure_arl0, restart_alarm_counts, cusum_level_for_arl
from tinydrift.monitor.config import ONE_Q12, MonitorConfig
from tinydrift.monitor.evaluate import measure_detection
from tinydrift.codegen.monitor_header import config_hash, emit_monitor_config_h
from tinydrift.monitor.reference import build_config, output_features, reference_stats
from tinydrift.errors import TinydriftError

TARGET = 2000
WORLD = synthetic.world(seed=77)
SHAPE = dict(n_groups=100, per_group=40, group_share=0.05)


def dataset(seed, **drift):
    return synthetic.synthetic_dataset(**SHAPE, domain=WORLD, seed=seed, **drift)


@pytest.fixture(scope="module")
def calibration():
    data = dataset(1)
    config, report = calibrate_thresholds(
        data["summaries"], data["probs"], data["groups"], data["labels"],
        target_arl0=TARGET, n_inferences=600_000, stream_groups=100, seed=3,
    )
    return data, config, report


@pytest.fixture(scope="module")
def strict():
    """Levels for ARL0 50,000 (extrapolated from 600,000 simulated inferences), for the
    detection tests: drift must show at a realistic false-alarm rate."""
    data = dataset(1)
    config, report = calibrate_thresholds(
        data["summaries"], data["probs"], data["groups"], data["labels"],
        target_arl0=50_000, n_inferences=600_000, stream_groups=100, seed=3,
    )
    return config


def test_reference_stats_match_a_direct_computation():
    data = dataset(2)
    stats = reference_stats(data["summaries"], data["probs"], data["labels"])
    x = data["summaries"].astype(np.float64)
    assert np.allclose(stats["summary_mean"], x.mean(0)) and np.allclose(stats["summary_std"], x.std(0, ddof=1))
    p = (data["probs"].astype(np.float64) + 128) / 256
    assert stats["confidence_mean"] == pytest.approx(p.max(1).mean())
    with np.errstate(divide="ignore", invalid="ignore"):
        h = -np.where(p > 0, p * np.log(p), 0).sum(1)
    assert stats["entropy_mean"] == pytest.approx(h.mean(), abs=2e-4)  # table rounding only
    assert stats["accuracy"] == pytest.approx(np.mean(output_features(data["probs"])["predicted"] == data["labels"]))
    assert sum(stats["class_prior"]) == pytest.approx(1.0)
    # ATC: the share of source samples at or above the threshold is the source accuracy.
    assert stats["atc_share"] == pytest.approx(stats["accuracy"], abs=0.02)


def test_reference_stats_need_enough_samples():
    data = dataset(2)
    with pytest.raises(TinydriftError, match="at least 2000"):
        reference_stats(data["summaries"][:1999], data["probs"][:1999])


def test_config_round_trips_through_json_and_header():
    data = dataset(2)
    config = build_config(reference_stats(data["summaries"], data["probs"], data["labels"]), metadata={"summary": "mean of 49x40 int8 features x 128"})
    restored = MonitorConfig.from_dict(json.loads(json.dumps(config.to_dict())))
    assert restored.to_dict() == config.to_dict() and config_hash(restored) == config_hash(config)
    text = emit_monitor_config_h(config, "kws")
    assert "static const td_monitor_config_t td_monitor_config_kws = {" in text
    assert config_hash(config) in text
    assert ", ".join(str(v) for v in config.entropy_q16[:12]) in text
    with pytest.raises(TinydriftError, match="gains"):
        config.replace(score_gain_q16=[1 << 29, 0, 0, 0, 0]).validate()
    with pytest.raises(TinydriftError, match="ABI"):
        MonitorConfig.from_dict({**config.to_dict(), "abi_version": 99})
    with pytest.raises(TinydriftError, match="n_summary"):
        build_config({**reference_stats(data["summaries"], data["probs"]), "summary_mean": [0.0] * 65, "summary_std": [1.0] * 65, "summary_corr": np.eye(65)})


def test_calibrated_arl0_holds_on_unseen_streams(calibration):
    """The false-alarm target on synthetic data: the combined alarm's ARL0, measured as the device
    runs (latched alarm, reset) on 150 x ARL0 inferences of speakers calibration never saw, each
    stream drawn from 100 groups as calibration drew them. With the mean score's limit (the
    default) within 20 % (measured 1,935 for 2,000); the CUSUMs alone within 30 % (1,508).
    The limit is placed and counted as it fires on the device, re-armed only once z is back
    at its mean: counting every rise counted 1.6x its alarms and left the result at 2,830."""
    _, config, report = calibration
    assert report["target_arl0"] == TARGET and set(report["scores"]) == set(cfgmod.SCORE_NAMES)
    data, unseen = dataset(1), dataset(9)
    cusums, _ = calibrate_thresholds(data["summaries"], data["probs"], data["groups"], data["labels"],
                                     target_arl0=TARGET, n_inferences=600_000, stream_groups=100, seed=3,
                                     peak_arl_multiple=(None,) * cfgmod.SCORE_COUNT)
    for name, calibrated, (low, high) in (("with the limit", config, (0.8, 1.2)), ("CUSUMs alone", cusums, (0.7, 1.3))):
        result = measure_arl0(calibrated, unseen["summaries"], unseen["probs"], unseen["groups"],
                              n_inferences=150 * TARGET, stream_length=10_000, population=100)
        print(f"{name}: ARL0 target {TARGET}, measured {result['arl0']:.0f} ({result['alarms']} alarms, 95% CI "
              f"{result['ci95'][0]:.0f}-{result['ci95'][1]:.0f}), {result['by_type']}")
        assert result["inferences"] >= 150 * TARGET
        assert low * TARGET <= result["arl0"] <= high * TARGET, name


@pytest.mark.slow  # 10-15 s; the block bootstrap's held-out ARL0 stays in the default tier (above)
def test_iid_resampling_would_overstate_arl0(calibration):
    """A known trap: calibrating as if inferences were independent (every
    sample its own group) sets levels too low for streams that stay with one speaker."""
    data, config, _ = calibration
    naive, _ = calibrate_thresholds(
        data["summaries"], data["probs"], np.arange(len(data["groups"])), data["labels"],
        target_arl0=TARGET, n_inferences=300_000, seed=3,
    )
    unseen = dataset(9)
    honest = measure_arl0(config, unseen["summaries"], unseen["probs"], unseen["groups"], n_inferences=40 * TARGET, stream_length=10_000)
    fooled = measure_arl0(naive, unseen["summaries"], unseen["probs"], unseen["groups"], n_inferences=40 * TARGET, stream_length=10_000)
    assert fooled["arl0"] < 0.6 * honest["arl0"]


def test_no_alarm_on_modest_no_drift_streams(calibration):
    _, config, _ = calibration
    base = dataset(5)
    result = measure_detection(config, base, base, change_at=300, max_delay=1, n_streams=40)
    # 40 x 300 inferences at ARL0 2000 would expect ~6 alarms were ARL0 the mean time from
    # any point; from reset, the monitor starts at the reference and stays quiet.
    assert result["false_alarms"] <= 2


def bits(words: np.ndarray) -> set[int]:
    mask = int(words[0]) | int(words[1]) << 32
    return {i for i in range(64) if mask >> i & 1}


def test_shift_of_some_channels_is_detected_with_the_channels_that_moved(strict):
    config = strict
    shifted = [5, 6, 7, 8, 20, 21, 22, 23]
    move = np.zeros(40)
    move[shifted] = 1.0
    result = measure_detection(config, dataset(5), dataset(6, channel_shift=move), change_at=1000, max_delay=2000, n_streams=40)
    print(f"1 sigma on 8 channels: median delay {result['median_delay']}, change-time error {result['change_time_error_median']}")
    assert result["false_alarms"] <= 2 and result["detection_rate"] >= 0.85
    assert result["types"]["DATA_DRIFT"] >= 0.9 * result["detected"]
    assert result["median_delay"] <= 200
    assert abs(result["change_time_error_median"]) <= 60
    recalls, extras = [], []
    for words in result["moved_at_alarm"]:
        moved = bits(words)
        recalls.append(len(moved & set(shifted)) / len(shifted))
        extras.append(len(moved - set(shifted)))
    # The mean score's limit latches as soon as the shift shows in the EWMA, when a median 5 of
    # the 8 moved channels have passed their own level (6 of 8 with the CUSUM alone): an
    # earlier alarm names fewer of the channels, none wrongly.
    assert np.median(recalls) >= 0.6 and np.median(extras) <= 1


def test_a_loudness_limit_finds_one_moved_value_sooner_than_the_mean_score():
    """One summary value (the last, as a keyword summary's loudness) moves by 1.5 sigma: the
    mean score, a sum over all 40 components, needs the CUSUM to climb; the level calibrated
    for that component's own two-sided CUSUM latches DATA_DRIFT sooner, without false alarms
    before the change, and dates it by that CUSUM's excursion."""
    data = dataset(1)
    common = dict(target_arl0=50_000, n_inferences=600_000, stream_groups=100, seed=3)
    without, _ = calibrate_thresholds(data["summaries"], data["probs"], data["groups"], data["labels"], **common)
    loud, report = calibrate_thresholds(data["summaries"], data["probs"], data["groups"], data["labels"],
                                        loudness_component=39, **common)
    assert without.loudness_limit == 0 and report["loudness"]["component"] == 39
    assert 0 < loud.loudness_limit == report["loudness"]["limit_q12"]
    move = np.zeros(40)
    move[39] = -1.5
    delays = {}
    for name, config in (("without", without), ("loud", loud)):
        result = measure_detection(config, dataset(5), dataset(6, channel_shift=move), change_at=1000, max_delay=2000,
                                   n_streams=40)
        assert result["false_alarms"] <= 2 and result["types"]["DATA_DRIFT"] >= 0.9 * result["detected"]
        delays[name] = (result["detection_rate"], result["median_delay"], result["change_time_error_median"])
    print(f"one value 1.5 sigma down: (detected, median delay, change-time error) {delays}")
    assert delays["loud"][0] >= 0.9 and delays["loud"][1] < 0.6 * (delays["without"][1] or 2000)
    assert abs(delays["loud"][2]) <= 10


@pytest.mark.parametrize("arl", [500, 5_000, 50_000])
def test_the_loudness_level_holds_its_run_length_on_fresh_streams(arl):
    """The two-sided CUSUM's level read off one set of no-drift z paths (white, and AR(1)
    as a speaker's level held over a run) alarms about once per `arl` inferences on another
    set, with restarts as after the host's reset; levels past what was simulated are
    extrapolated along the tail, so the set is kept short of the largest run length."""
    rng = np.random.default_rng(arl)
    k = cfgmod.ONE_Q12 // 2

    def paths(rho):
        noise = rng.normal(0, 1, (200, 6_000))
        z = np.empty_like(noise)
        z[:, 0] = noise[:, 0]
        for t in range(1, noise.shape[1]):
            z[:, t] = rho * z[:, t - 1] + np.sqrt(1 - rho * rho) * noise[:, t]
        return np.round(z * cfgmod.ONE_Q12).astype(np.int64)

    for rho in (0.0, 0.8):
        level, method = cusum_level_for_arl(paths(rho), k, 200 * 6_000, arl)
        fresh = paths(rho)
        alarms = restart_alarm_counts(np.stack([fresh, -fresh], axis=-1), np.array([k, k]),
                                      np.array([[level], [level]]), joint=True)[0]
        print(f"rho {rho}, ARL {arl}: level {level / cfgmod.ONE_Q12:.1f} ({method}), {alarms} alarms on fresh paths")
        assert 0 < level and 0.6 < fresh.size / arl / max(alarms, 1) < 1.6


def test_subtle_shift_over_all_channels_is_detected(strict):
    """0.16 sigma per channel on average, none above 0.5 sigma: invisible channel by
    channel, visible in the aggregate over channels and inferences."""
    config = strict
    rng = np.random.default_rng(4)
    move = rng.uniform(0.02, 0.3, 40) * rng.choice([-1, 1], 40)
    move *= 0.16 / np.abs(move).mean()
    assert np.abs(move).max() < 0.5
    result = measure_detection(config, dataset(5), dataset(6, channel_shift=move), change_at=1000, max_delay=4000, n_streams=40)
    print(f"0.16 sigma on 40 channels: detected {result['detection_rate']:.2f}, median delay {result['median_delay']}")
    assert result["false_alarms"] <= 2 and result["detection_rate"] >= 0.85
    assert result["types"]["DATA_DRIFT"] >= 0.8 * result["detected"]
    assert result["median_delay"] <= 400


def test_confidence_drift_is_detected_and_atc_falls(strict):
    config = strict
    after = dataset(6, accuracy=0.80, sharpness=0.8)
    result = measure_detection(config, dataset(5), after, change_at=1000, max_delay=2000, n_streams=40)
    print(f"accuracy 93 -> 80 %: median delay {result['median_delay']}, change-time error {result['change_time_error_median']}")
    assert result["detection_rate"] >= 0.85 and result["types"]["CONFIDENCE_DRIFT"] >= 0.9 * result["detected"]
    assert result["median_delay"] <= 200 and abs(result["change_time_error_median"]) <= 60
    # The label-free accuracy estimate follows the accuracy down.
    from tinydrift.monitor.twin import MonitorTwin

    twin = MonitorTwin(config, 1)
    for data in (dataset(5), after):
        for i in range(1500):
            r = twin.update(data["summaries"][i : i + 1], data["probs"][i : i + 1])
        estimate = r["atc_accuracy_q16"][0] / 65536
        assert abs(estimate - np.mean(data["predicted"] == data["labels"])) < 0.08


def test_label_shift_is_detected(strict):
    config = strict
    prior = WORLD["class_prior"].copy()
    prior[[0, 1, 2]] *= 3  # three classes three times as frequent
    result = measure_detection(config, dataset(5), dataset(6, class_prior=prior / prior.sum()), change_at=1000, max_delay=3000, n_streams=40)
    print(f"label shift: median delay {result['median_delay']}")
    assert result["detection_rate"] >= 0.85 and result["types"]["LABEL_SHIFT"] >= 0.8 * result["detected"]
    assert result["median_delay"] <= 400


def test_sessions_draw_one_speaker_at_a_time_with_replacement():
    from tinydrift.monitor.streams import bootstrap_indices

    groups = np.repeat(np.arange(30), 4)  # 30 speakers, 4 clips each
    rng = np.random.default_rng(5)
    idx = bootstrap_indices(groups, 6, 200, rng, session_length=25)
    runs = groups[idx].reshape(6 * 200 // 25, 25)  # 200 = 8 sessions of 25 per stream
    assert (runs == runs[:, :1]).all()  # every session one speaker, longer than its 4 clips
    assert len(np.unique(runs[:, 0])) > 10


@pytest.mark.slow  # ~20 s; the output scores' long-run test below keeps the property in the default tier
def test_calibrating_for_long_same_speaker_runs_quiets_them():
    """A data set of few clips a speaker, and a deployment whose speakers each talk 60
    inferences in a row: calibrated for runs of 30, the monitor raises fewer false alarms on
    that deployment than calibrated on the data set's short runs."""
    few = synthetic.synthetic_dataset(n_groups=500, per_group=5, group_share=0.3, domain=WORLD, seed=1)
    long_runs = synthetic.synthetic_dataset(n_groups=40, per_group=60, group_share=0.3, domain=WORLD, seed=2)
    common = dict(target_arl0=TARGET, n_inferences=600_000, seed=3)
    usual, _ = calibrate_thresholds(few["summaries"], few["probs"], few["groups"], few["labels"], **common)
    held, report = calibrate_thresholds(few["summaries"], few["probs"], few["groups"], few["labels"],
                                        data_session_length=30, **common)
    assert report["data_session_length"] == 30

    def arl0(config):
        return measure_arl0(config, long_runs["summaries"], long_runs["probs"], long_runs["groups"],
                            n_inferences=300_000, seed=4)["arl0"]

    assert arl0(held) > 2 * arl0(usual)


def _speakers_of_two_difficulties(n_groups: int, per_group: int, seed: int) -> dict:
    """Half the speakers are ones the model finds harder (less confident, less accurate):
    a long run of one of them lowers the confidence for as long as it lasts."""
    easy = synthetic.synthetic_dataset(n_groups=n_groups, per_group=per_group, group_share=0.3, domain=WORLD, seed=seed)
    hard = synthetic.synthetic_dataset(n_groups=n_groups, per_group=per_group, group_share=0.3, domain=WORLD,
                                       seed=seed + 100, accuracy=0.85, sharpness=0.6)
    hard["groups"] = hard["groups"] + n_groups
    return {key: np.concatenate([easy[key], hard[key]]) for key in easy}


@pytest.mark.slow  # 11-30 s of calibration; the input-score twin of it stays in the default tier
def test_calibrating_the_output_scores_for_long_runs_quiets_hard_speakers_too():
    """Calibrated for runs of 30 on the input scores only, a deployment of 60-inference runs
    of easy and hard speakers alarms on the hard ones' confidence; with the output scores
    calibrated on such runs too it raises fewer false alarms. Both without the long-run spread
    the device learns, which quiets the first config as much by itself (checked last)."""
    few = _speakers_of_two_difficulties(250, 5, seed=1)
    long_runs = _speakers_of_two_difficulties(20, 60, seed=2)
    common = dict(target_arl0=TARGET, n_inferences=300_000, seed=3, data_session_length=30, spread_scores=())
    inputs_only, _ = calibrate_thresholds(few["summaries"], few["probs"], few["groups"], few["labels"], **common)
    both, report = calibrate_thresholds(few["summaries"], few["probs"], few["groups"], few["labels"],
                                        output_session_length=30, **common)
    assert report["output_session_length"] == 30 and report["data_session_length"] == 30

    def arl0(config):
        return measure_arl0(config, long_runs["summaries"], long_runs["probs"], long_runs["groups"],
                            n_inferences=150_000, seed=4)

    quiet, loud = arl0(both), arl0(inputs_only)
    print(f"ARL0 on 60-inference runs: outputs calibrated for runs {quiet['arl0']:,.0f} "
          f"({quiet['by_type']}), inputs only {loud['arl0']:,.0f} ({loud['by_type']})")
    assert loud["by_type"]["CONFIDENCE_DRIFT"] > 0
    assert quiet["arl0"] > 1.5 * loud["arl0"]
    # the device's own long-run spread reaches the same without calibrating for the runs
    from tinydrift.monitor.calibrate import DEFAULT_SPREAD_SCORES

    learned, _ = calibrate_thresholds(few["summaries"], few["probs"], few["groups"], few["labels"],
                                      **{**common, "spread_scores": DEFAULT_SPREAD_SCORES})
    assert arl0(learned)["arl0"] > 1.5 * loud["arl0"]


def test_the_error_rate_line_says_when_no_false_alarm_came_at_all():
    """export from an image folder at a low target once ended in a TypeError: on an error-free
    reference the chosen level raised no alarm, and its run length is None."""
    import json

    import numpy as np

    from tinydrift.firmware import REPO_ROOT
    from tinydrift.monitor.calibrate_feedback import calibrate_error_rate
    from tinydrift.monitor.config import MonitorConfig
    from tinydrift.pipeline.export import error_rate_line

    config = MonitorConfig.from_dict(json.loads((REPO_ROOT / "models/kws/reference.json").read_text())["monitor_config"])
    right = np.zeros(2000, np.int64)
    chosen, report = calibrate_error_rate(config, right, right, np.arange(2000) % 50, target_arl0=1000)
    assert error_rate_line(chosen.ddm_drift_q8, report) == (
        "error-rate test: ERROR_RATE at 2 standard deviations, no false alarm in 200,000 inferences simulated with "
        "labels for 10 % of them")
    wrong = np.arange(2000) % 3 == 0
    chosen, report = calibrate_error_rate(config, wrong.astype(np.int64), np.zeros(2000, np.int64), np.arange(2000) % 50,
                                          target_arl0=1000)
    assert "a false alarm every " in error_rate_line(chosen.ddm_drift_q8, report)


def test_the_same_data_calibrates_to_the_same_config_and_model_hash():
    """An export of the same model and data gave a new model hash each time: the calibration's
    wall-clock seconds sat in the config the hash covers, so a re-export no longer matched the
    boards already flashed with it. The report still says how long it took."""
    from tinydrift.modeldir import model_hash

    data = dataset(11)
    runs = [calibrate_thresholds(data["summaries"], data["probs"], data["groups"], data["labels"], target_arl0=500,
                                 n_inferences=60_000, seed=3) for _ in range(2)]
    (first, report), (second, _) = runs
    assert first.to_dict() == second.to_dict() and report["seconds"] > 0
    assert "seconds" not in first.metadata["calibration"]
    assert model_hash(b"model", first.to_dict()) == model_hash(b"model", second.to_dict())


def test_class_loudness_offsets_take_the_predicted_class_s_loudness_off_and_a_class_mix_no_longer_moves_it():
    """A silent clip is quieter than a word: with the loudness read against all inferences
    alike, a stream with more silence read as a quieter microphone, and the class-explained
    spread hid small gain changes. With class_loudness, each predicted class's mean z of the
    loudness component comes off it (the twin here, the C in test_monitor_c's random configs)."""
    from tinydrift.monitor.twin import MonitorTwin

    data = dataset(5)
    summaries, probs = data["summaries"].copy(), data["probs"]
    predicted = output_features(probs)["predicted"]
    quiet_class = int(np.bincount(predicted).argmax())
    spread = summaries[:, 0].astype(np.float64).std()
    summaries[predicted == quiet_class, 0] -= np.int16(round(2 * spread))  # that class: 2 sd quieter
    stats = reference_stats(summaries, probs, data["labels"])
    plain = build_config(stats, loudness_component=0)
    by_class = build_config(stats, loudness_component=0, class_loudness=True)
    assert plain.loudness_class_offset is None
    offset = by_class.loudness_class_offset
    assert offset[quiet_class] < -ONE_Q12 and np.all(np.abs(np.delete(offset, quiet_class)) < ONE_Q12 // 2), offset

    def loudness_z(config, rows):
        return MonitorTwin(config, 1).per_sample(summaries[rows], probs[rows])["z"][:, 0] / ONE_Q12

    everything = np.arange(len(predicted))
    more_of_it = np.concatenate([everything, *[np.flatnonzero(predicted == quiet_class)] * 4])  # that class x5
    assert loudness_z(by_class, everything).std() < 0.8 * loudness_z(plain, everything).std()
    moved_plain = loudness_z(plain, more_of_it).mean() - loudness_z(plain, everything).mean()
    moved_by_class = loudness_z(by_class, more_of_it).mean() - loudness_z(by_class, everything).mean()
    assert moved_plain < -0.3 and abs(moved_by_class) < 0.1, (moved_plain, moved_by_class)


def test_the_export_says_when_its_arl0_check_falls_short_of_the_target():
    """A check of 57,143 (95 % interval 49,277-66,653) against 100,000 went by without a word
    (new-user trial 12): within the x0.5 band, so no warning, but short beyond counting error."""
    from tinydrift.pipeline.export import arl0_check_said

    short = {"arl0": 57_143, "ratio_to_target": 0.571, "ci95": (49_277, 66_653)}
    note = arl0_check_said(short, 100_000)
    assert note.startswith("note: the check reads ARL0 57,143 (95 % interval 49,277 to 66,653), under the target "
                           "100,000") and "1.8 times the false alarms asked for" in note, note
    far = {"arl0": 40_000, "ratio_to_target": 0.4, "ci95": (35_000, 46_000)}
    assert arl0_check_said(far, 100_000).startswith("warning: the check reads ARL0 40,000, x0.4 the target")
    within = {"arl0": 93_000, "ratio_to_target": 0.93, "ci95": (80_000, 108_000)}
    assert arl0_check_said(within, 100_000) is None
