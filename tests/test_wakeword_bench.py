"""`tinydrift bench wakeword`: the counting of false rejects and false accepts, the sessions'
transforms, one real espeak-ng session through TFLite Micro, the generated C and the app's
decision rule, the quick bench end to end (slow tier), and the stored figures the README
quotes (docs/figures/wakeword_bench.json) whole and consistent."""

from __future__ import annotations

import json
from pathlib import Path
import math

import numpy as np
import pytest

from tinydrift.pipeline.wakeword_bench import (
    ACCEPT_AFTER_S,
    SCENARIOS,
    WakewordBenchSettings,
    check_detection_fits,
    compare_generated_c,
    count_session,
    rates,
    run_sessions,
)

from tinydrift.errors import TinydriftError

from helpers_wakeword import REPO_ROOT

FIGURES = REPO_ROOT / "docs" / "figures" / "wakeword_bench.json"
RATE = 16000


def test_a_wake_answers_its_phrase_until_a_second_after_its_end_and_any_other_is_a_false_accept():
    wakes = np.array([[RATE, 2 * RATE], [10 * RATE, 11 * RATE]])
    wake_at = np.array([2 * RATE + RATE // 2,  # half a second after the first phrase: accepted
                        5 * RATE,  # nothing said: a false accept
                        11 * RATE + int(ACCEPT_AFTER_S * RATE) + 1])  # too late for the second: a false accept
    counts = count_session(wake_at, wakes, 20 * RATE)
    assert counts == {"wakes": 2, "accepted": 1, "false_accepts": 2,
                      "background_seconds": pytest.approx(20 - 2 * (1 + ACCEPT_AFTER_S))}


def test_rates_give_the_field_s_units_with_exact_intervals():
    counts = [{"wakes": 50, "accepted": 45, "false_accepts": 1, "background_seconds": 1800.0},
              {"wakes": 50, "accepted": 45, "false_accepts": 2, "background_seconds": 1800.0}]
    r = rates(counts)
    assert r["false_rejects_per_100"] == 10.0 and r["false_accepts_per_hour"] == 3.0 and r["hours"] == 1.0
    # Clopper-Pearson for 10 of 100 and the exact Poisson interval for 3 events
    assert r["false_rejects_per_100_ci95"] == [4.9, 17.62]
    assert r["false_accepts_per_hour_ci95"] == [0.619, 8.767]
    quiet = rates([{"wakes": 10, "accepted": 10, "false_accepts": 0, "background_seconds": 3600.0}])
    assert quiet["false_accepts_per_hour"] == 0 and quiet["false_accepts_per_hour_ci95"] == [0.0, 3.689]
    assert quiet["false_rejects_per_100_ci95"][0] == 0.0


def test_every_scenario_changes_long_sessions_and_keeps_their_shape():
    """The drift bench's transforms on [sessions, samples] of minutes, not 1 s clips."""
    rng = np.random.default_rng(0)
    sessions = (rng.standard_normal((3, 5 * RATE)) * 3000).astype(np.int16)
    for s in SCENARIOS:
        if s.voices is not None:
            continue  # other voices are other sessions, not a transform
        changed = s.apply(sessions, seed=1)
        assert changed.shape == sessions.shape and changed.dtype == np.int16, s.name
        assert not np.array_equal(changed, sessions), s.name
    assert not SCENARIOS[-1].steps and SCENARIOS[-1].voices, "accent: other languages' voices"
    assert all("." not in s.name for s in SCENARIOS), "figures are read by dotted paths"


def test_recorded_utterances_are_laid_out_like_phrases_without_their_phones_offsets_or_padding():
    """render_recorded_session: the clips said whole, in random order, over a faint room noise;
    a clip's DC offset (two Speech Commands speakers' phones: a fifth of their peak) and its
    zero padding do not come along, or the session would change microphone with every word."""
    from tinydrift.data.wakeword_audio import render_recorded_session

    speech = (np.sin((np.arange(8000) + 3) / 7.0) * 8000).astype(np.int16)  # no zero at either end
    offset = np.concatenate([np.zeros(4000), speech + 3000.0, np.zeros(4000)]).astype(np.int16)
    pcm = render_recorded_session([speech], 60, seed=5)
    assert pcm.dtype == np.int16 and len(pcm) == 60 * RATE
    # the same words through a phone with an offset, padded: the same session
    assert np.array_equal(render_recorded_session([offset], 60, seed=5), pcm)
    loud = np.abs(pcm.astype(np.int64)) > 1000
    assert 0.2 < loud.mean() < 0.8, "utterances with pauses between them"
    assert not np.array_equal(pcm, render_recorded_session([speech], 60, seed=6)), "the seed draws the room"


def test_recorded_sessions_are_one_speaker_or_many_and_name_themselves(fsdd_dir, speech_commands_dir):
    from tinydrift.data.wakeword_audio import (RECORDED_MANY_VOICES, RECORDED_PER_SPEAKER, recorded_sessions)

    sessions = recorded_sessions(fsdd_dir.parent, 10, seed=1)
    names = [name for name, _ in sessions]
    speakers = {name.split("-")[1] for name in names if name.startswith("fsdd-")}
    assert len(names) == len(speakers) * RECORDED_PER_SPEAKER + RECORDED_MANY_VOICES and len(speakers) == 6
    assert all(pcm.dtype == np.int16 and len(pcm) == 10 * RATE for _, pcm in sessions)
    assert len(set(names)) == len(names)
    # a room heard longer: its session, then its clips in another order over the same noise
    rooms = recorded_sessions(fsdd_dir.parent, 10, seed=1, takes=2)
    assert [name for name, _ in rooms] == names
    for (_, room), (_, first) in zip(rooms, sessions):
        assert len(room) == 20 * RATE and np.array_equal(room[:10 * RATE], first)
        assert 0.1 < np.mean(room[:10 * RATE] == room[10 * RATE:]) < 0.9


def test_recorded_sessions_need_one_of_the_two_folders(tmp_path):
    from tinydrift.data.wakeword_audio import recorded_sessions
    from tinydrift.errors import TinydriftError

    with pytest.raises(TinydriftError, match="neither fsdd/ nor speech_commands_v0.01_subset/ inside"):
        recorded_sessions(tmp_path, 10, seed=1)


@pytest.fixture(scope="module")
def okay_nabu():
    pytest.importorskip("pymicro_wakeword", reason="the wakeword extra is not installed (scripts/setup.sh)")
    pytest.importorskip("tflite_micro", reason="TFLite Micro's Python interpreter is not installed")
    from tinydrift.wakeword.config import load_wakeword

    return load_wakeword("okay_nabu")


def test_sensor_sums_per_inference_leave_sensor_health_where_the_app_s_hops_leave_it():
    """The bench's sensor input (hop_sensor_stats, sensor_conditions; one update per
    inference) against the app's order (tinydrift.app.expected_stream_inferences: one
    td_sensor_update per front-end hop, the first a whole window) over a stream that goes
    dead, stuck, DC-offset and clipping: the same conditions, runs, flags and latches, and
    the same loudness and tilt (stream_loudness against each hop's variance x samples and
    slope energy after the hop before it, as td_app_stream.c sums them)."""
    from tinydrift.app import stream_end
    from tinydrift.monitor.config import ALARM_SENSOR_FAULT, MonitorConfig
    from tinydrift.monitor.twin import MonitorTwin
    from tinydrift.monitor.twin import slope_energy, summarize_level, summarize_tilt
    from tinydrift.pipeline.wakeword_bench import sensor_conditions
    from tinydrift.wakeword.monitor import hop_sensor_stats, stream_loudness

    rng = np.random.default_rng(0)
    second = RATE

    def noise(seconds: float, level: float = 800.0) -> np.ndarray:
        return rng.normal(0, level, int(seconds * second))

    pcm = np.concatenate([noise(1.5), np.zeros(second), noise(1), np.full(second, 1200.0), noise(1) + 6000,
                          noise(1, 20000), noise(0.5)])
    pcm = np.clip(pcm, -32768, 32767).astype(np.int16)
    config = MonitorConfig(ref_mean=np.zeros(40, np.int16), inv_std_q28=np.full(40, 1 << 18),
                           prior_q16=np.full(2, 1 << 15), inv_prior_q8=np.full(2, 512), enabled_scores=0,
                           clip_level=30000, persist_blocks=np.array([40, 40, 40, 0]),
                           dropout_limit=0).validate()  # off, as the wake-word monitor has it (its inferences 30 ms apart)
    stride, n = 3, (len(pcm) // 160 - 2) // 3  # whole blocks of 3 frames: 160 (3 n + 2) samples
    assert stream_end(n - 1, stride) <= len(pcm) < stream_end(n, stride)
    hops = hop_sensor_stats(pcm, n, stride, int(config.clip_level))
    conditions = sensor_conditions(config, hops, np.zeros(n, np.int64))
    app, bench = MonitorTwin(config, 1), MonitorTwin(config, 1)
    summary, probs = np.zeros((1, 40), np.int16), np.array([[127, -128]], np.int8)
    latched, energy, slope = [], [], []
    for k in range(n):
        energy.append(0)
        slope.append(0)
        for frame in range(stride * k, stride * (k + 1)):
            start = 0 if frame == 0 else 480 + 160 * (frame - 1)
            hop = pcm[None, start:480 + 160 * frame]
            energy[-1] += int(app.sensor_update(hop)["variance"][0]) * hop.shape[1]
            slope[-1] += int(slope_energy(hop, pcm[max(start - 1, 0)][None])[0])
        bench.sensor_update_blocks(conditions[k:k + 1])
        for twin in (app, bench):
            twin.update(summary, probs)
        assert (bench.sensor_flags, bench.live_alarms()) == (app.sensor_flags, app.live_alarms()), k
        assert np.array_equal(bench.sensor_run, app.sensor_run) and np.array_equal(bench.sensor_run_start, app.sensor_run_start)
        latched.append(int(bench.live_alarms()[0]) & ALARM_SENSOR_FAULT)
    levels, tilts, quiet = stream_loudness(hops).T
    assert np.array_equal(levels, summarize_level(np.array(energy)))
    assert np.array_equal(tilts, summarize_tilt(np.array(slope), np.array(energy)))
    # white noise's differences carry twice its energy: a tilt of one octave (128), within the
    # two levels' approximation; silence has neither
    assert abs(int(tilts[1]) - 128) <= 24 and tilts[60] == 0, (tilts[1], tilts[60])
    # the quiet level is the lowest of the last 16 levels (of all so far before the 16th)
    assert np.array_equal(quiet, [levels[max(0, k - 15):k + 1].min() for k in range(n)])
    # silence reads 0; noise at 800 about log2(480 x 800^2) = 28.2 (an inference after the first: 480 new samples)
    assert levels[60] == 0 and 27.9 < levels[1] / 128 < 28.3, (levels[60], levels[1])
    # the dead microphone from 1.5 s latches once 40 of its hops (10 ms each) have come
    assert stream_end(latched.index(ALARM_SENSOR_FAULT), stride) / RATE == pytest.approx(1.5 + 40 * 0.01, abs=0.03)


def _detector_config(**fields):
    from tinydrift.monitor.config import MonitorConfig

    return MonitorConfig(ref_mean=np.zeros(40, np.int16), inv_std_q28=np.full(40, 1 << 18),
                         prior_q16=np.full(2, 1 << 15), inv_prior_q8=np.full(2, 512), enabled_scores=0,
                         **fields).validate()


def test_labels_of_wakes_tell_a_rising_false_wake_rate_from_the_usual_one():
    """The error-rate test on simulated labels: where no label was wrong before, the first
    few wrong ones after ddm_min_labels latch ERROR_RATE; where a third of them always were
    (the in-domain misses, reported), a rise to 60 % is caught in most streams while an
    unchanged rate seldom is."""
    from tinydrift.pipeline.wakeword_bench import labels_to_error_rate

    config = _detector_config()
    rising = labels_to_error_rate(config, 0.0, 0.2, streams=100)
    assert (rising["false_alarms_before"], rising["detected"]) == (0, 100) and rising["median_labels"] <= 15, rising
    same = labels_to_error_rate(config, 0.32, 0.32, streams=100, max_after=300)
    worse = labels_to_error_rate(config, 0.32, 0.6, streams=100, max_after=300)
    assert worse["detection_rate"] >= 0.8 and same["detection_rate"] <= 0.2, (worse, same)
    assert worse["median_labels"] < 150, worse


def test_a_scenario_s_labels_are_its_wakes_and_if_reported_its_misses():
    from tinydrift.pipeline.wakeword_bench import label_error_share

    r = {"wakes": 100, "false_rejects": 30, "false_accepts": 10, "hours": 2.0}
    assert label_error_share(r, misses_reported=False) == (40.0, 10 / 80)
    assert label_error_share(r, misses_reported=True) == (55.0, 40 / 110)


def test_detection_plays_each_room_s_first_take():
    """The held-out rooms' run is one stream a room (all its takes, heard as one recording);
    detection plays the first takes, whose changed versions the scenarios' runs hold."""
    from tinydrift.pipeline.wakeword_bench import first_takes

    rooms = np.repeat(np.arange(3), 8)  # 3 rooms x 2 takes of 4 inferences, room by room
    run = {"groups": rooms, "summaries": np.arange(24)[:, None], "probs": np.arange(24)[:, None] * 2,
           "sensor": np.arange(24)[:, None, None]}
    first = first_takes(run, 4)
    assert first["groups"].tolist() == [0] * 4 + [1] * 4 + [2] * 4
    assert first["summaries"][:, 0].tolist() == [*range(0, 4), *range(8, 12), *range(16, 20)]
    assert first["sensor"].shape == (12, 1, 1)


def test_a_held_out_room_is_one_recording_and_its_first_take_runs_as_if_alone(okay_nabu):
    """A device hears its room without a break: a held-out room's takes are one stream over
    one noise (a take of its own began from a reset front end, whose empty noise estimate
    set off false alarms a few inferences in), and that stream's first rows are the first
    take's own."""
    from tinydrift.frontend import WAKEWORD_STEP_MS
    from tinydrift.frontend.features import frames_in
    from tinydrift.pipeline.wakeword_bench import first_takes, held_out_sessions

    settings = WakewordBenchSettings(heldout_sessions=2, reference_seconds=10.0)
    cache = REPO_ROOT / "build" / "test_data"
    audio, wakes, take_samples = held_out_sessions(okay_nabu, settings, cache, 2, takes=2)
    alone, alone_wakes, _ = held_out_sessions(okay_nabu, settings, cache, 2, takes=1)
    assert audio.shape == (2, 2 * take_samples) and np.array_equal(audio[:, :take_samples], alone)
    for room, first in zip(wakes, alone_wakes):
        assert np.array_equal(room[room[:, 1] <= take_samples], first) and (room[:, 1] <= 2 * take_samples).all()
    # the takes say other things over the room's one noise (a draw of its own per take put a
    # brown-noise room's audible noise up to 21 dB apart): where neither speaks, equal samples
    for room in audio:
        assert 0.1 < np.mean(room[:take_samples] == room[take_samples:]) < 0.9
    rooms = run_sessions(okay_nabu, audio, wakes, clip_level=32000)["monitor"]
    takes = run_sessions(okay_nabu, alone, alone_wakes, clip_level=32000)["monitor"]
    assert np.unique(rooms["groups"]).tolist() == [0, 1]
    first = first_takes(rooms, frames_in(take_samples, WAKEWORD_STEP_MS) // okay_nabu.stride)
    for key in ("summaries", "probs", "sensor", "groups"):
        assert np.array_equal(first[key], takes[key]), key


def test_detection_streams_never_loop_a_session():
    """A looped session would replay what the monitor commissioned on; the bench refuses
    settings whose change and delay do not fit its shortest held-out session."""
    settings = WakewordBenchSettings()
    run = {"groups": np.repeat([0, 1], [settings.change_at + settings.max_delay, 9000])}
    check_detection_fits(run, settings)
    longer = WakewordBenchSettings(max_delay=settings.max_delay + 1)
    with pytest.raises(TinydriftError, match=f"exceed the {settings.change_at + settings.max_delay} inferences"):
        check_detection_fits(run, longer)


def test_sensor_health_alone_counts_its_false_alarms_over_sessions_played_in_order():
    """Two sessions of sensor sums: a quiet one, and one whose microphone goes dead for 20
    inferences (60 hops, more than the 40 a fault needs, fewer than two faults' 80): one
    SENSOR_FAULT, then a reset; for 50 inferences (150 hops), three, a reset after each."""
    from tinydrift.pipeline.wakeword_bench import sensor_false_alarms

    config = _detector_config(clip_level=30000, persist_blocks=np.array([40, 40, 40, 0]))
    n, step = 200, 160
    hops = np.zeros((2 * n, 3, 3), np.int64)
    hops[:, :, 1] = step * 800 ** 2  # sums of squares: noise at 800
    hops[0, 0, 1] = hops[n, 0, 1] = 3 * step * 800 ** 2  # each session's first hop is a whole window
    groups = np.repeat([0, 1], n)
    for dead, faults in ((20, 1), (50, 3)):
        sums = hops.copy()
        sums[n + 20:n + 20 + dead, :, 1] = 0
        assert sensor_false_alarms(config, {"sensor": sums, "groups": groups}) == \
            {"alarms": faults, "inferences": 2 * n, "sessions": 2}


@pytest.mark.slow  # ~30 s on 2 loaded cores (TensorFlow's import, the generated C's build); the quick bench covers it too
def test_a_real_session_is_counted_and_the_generated_c_equals_tflite_micro_on_it(okay_nabu):
    """One 40 s espeak-ng session saying "okay nabu" often: most phrases accepted, no wake
    elsewhere, and the generated C's probabilities equal TFLite Micro's at every step."""
    from tinydrift.data.wakeword_audio import cached_sessions, plan_sessions

    (pcm, wakes), = cached_sessions(plan_sessions(okay_nabu.wake_word, 1, 40, wake_rate=0.4, seed=3),
                                    REPO_ROOT / "build" / "test_data" / "wakeword_sessions")
    run = run_sessions(okay_nabu, pcm[None, :], [wakes], clip_level=32000)  # with the monitor's inputs
    r = rates(run["counts"])
    assert r["wakes"] == len(wakes) >= 3 and r["false_rejects"] <= 0.25 * r["wakes"], r
    assert r["false_accepts"] == 0 and 0 < r["hours"] < 40 / 3600, r
    steps = len(run["probability"][0])
    assert run["monitor"]["summaries"].shape == (steps, 63) and run["monitor"]["probs"].shape == (steps, 2)
    assert compare_generated_c({"okay_nabu": okay_nabu}, {"okay_nabu": run}) == {
        "okay_nabu": {"steps": steps, "mismatches": 0}}


@pytest.mark.slow  # measured: ~270 s on 2 loaded cores with the label-feedback reference (12 sessions of 3 min) uncached, ~90 s cached
def test_quick_bench_on_okay_nabu_gives_every_figure_and_sees_the_broken_microphones(okay_nabu, tmp_path):
    from click.testing import CliRunner

    from tinydrift.cli.main import main

    result = CliRunner().invoke(main, ["bench", "wakeword", "--quick", "--model", "okay_nabu", "--json",
                                       "--out", str(REPO_ROOT / "build" / "bench" / "wakeword_quick")])
    assert result.exit_code == 0 and result.exception is None, result.output
    data = json.loads(result.output)
    check_figures(data, ["okay_nabu"])
    m = data["models"]["okay_nabu"]
    assert m["mismatches"] == 0 and m["steps"] >= 15_000
    assert m["in_domain"]["false_rejects_per_100"] < 50
    assert m["scenarios"]["dead_microphone"]["false_rejects_per_100"] == 100.0
    assert m["scenarios"]["white_noise_0db"]["false_rejects"] > m["in_domain"]["false_rejects"]
    # sensor health hears the sessions' audio: each broken microphone is a SENSOR_FAULT
    for name in ("dead_microphone", "stuck_microphone", "dc_offset", "clipping_30db"):
        fault = data["monitor"]["scenarios"][name]
        assert fault["detection_rate"] == 1.0 and "SENSOR_FAULT" in fault["alarm_types"], (name, fault)
    assert data["monitor"]["scenarios"]["cheap_mic_lowpass_2k"]["detection_rate"] >= 0.75


def check_figures(data: dict, models: list[str]) -> None:
    """Every model and scenario present, and each rate what its counts say."""
    assert sorted(data["models"]) == sorted(models)
    names = {s.name for s in SCENARIOS}
    for name, m in data["models"].items():
        assert {"steps", "mismatches", "wake_word", "probability_cutoff", "in_domain"} <= set(m), name
        assert set(m["scenarios"]) == names, name
        for where, r in {"in_domain": m["in_domain"], **m["scenarios"]}.items():
            assert r["wakes"] > 0 and 0 <= r["false_rejects"] <= r["wakes"], (name, where)
            assert r["false_rejects_per_100"] == pytest.approx(100 * r["false_rejects"] / r["wakes"], abs=0.01)
            assert r["hours"] > 0
            assert r["false_accepts_per_hour"] == pytest.approx(r["false_accepts"] / r["hours"], rel=1e-3, abs=1e-3)
            low, high = r["false_rejects_per_100_ci95"]
            assert low <= r["false_rejects_per_100"] <= high, (name, where)
            low, high = r["false_accepts_per_hour_ci95"]
            assert low <= r["false_accepts_per_hour"] <= high and high > 0, (name, where)
    monitor = data["monitor"]
    if monitor is not None:
        assert monitor["model"] in data["models"]
        assert set(monitor["scenarios"]) == names
        voices = {s.name for s in SCENARIOS if s.voices is not None}
        for name, d in monitor["scenarios"].items():
            assert 0 <= d["detected"] <= d["streams"] and d["detection_rate"] == pytest.approx(d["detected"] / d["streams"], abs=1e-4)
            # every change but other voices is detected on the held-out sessions, one stream each
            if name not in voices:
                assert d["streams"] == data["settings"]["heldout_sessions"], name
            assert (d["median_delay"] is None) == (d["detected"] == 0)
        arl0 = monitor["in_domain_arl0"]
        assert arl0["inferences"] >= 30 * monitor["target_arl0"] * 0.99
        held = monitor["held_out_arl0"]  # sessions as long as the reference's, never calibrated on
        assert held["inferences"] >= 30 * monitor["target_arl0"] * 0.99 and held["sessions"] > 0
        # a room is heard in takes of its own talk, never one take replayed (a replayed take
        # counted its dense-talk stretches again and again as the room's false alarms)
        assert held["takes"] == data["settings"]["heldout_takes"]
        assert held["session_seconds"] == data["settings"]["reference_seconds"] * held["takes"]
        assert held["alarms_on_a_stretch_heard_again"] is None or 0 <= held["alarms_on_a_stretch_heard_again"] <= 1
        # every session its own streams, equally many: the per-session counts add up to the total
        assert len(held["session_alarms"]) == held["sessions"] and sum(held["session_alarms"]) == held["alarms"]
        assert held["inferences"] == held["inferences_per_session"] * held["sessions"]
        assert held["sessions_without_alarm"] == held["session_alarms"].count(0)
        assert held["worst_session_alarms"] == max(held["session_alarms"])
        recorded = monitor.get("recorded_speech")  # with ../shared/data: its real voices, measured alike
        if recorded is not None:
            assert recorded["sessions"] == len(recorded["session_names"]) == len(recorded["session_alarms"])
            assert sum(recorded["session_alarms"]) == recorded["alarms"] and recorded["hours"] > 0
            assert recorded["inferences"] == recorded["inferences_per_session"] * recorded["sessions"]
            assert set(recorded["scenarios"]) == {s.name for s in SCENARIOS if s.voices is None}
            assert all(d["streams"] == recorded["sessions"] for d in recorded["scenarios"].values())
        # rooms shown above the x0.5-x2 band: beyond the 95th percentile of twice the budget's count
        twice = held["inferences_per_session"] / (monitor["target_arl0"] / 2)
        assert held["over_twice_budget_above_alarms"] >= twice
        assert held["sessions_over_twice_budget"] == sum(a > held["over_twice_budget_above_alarms"] for a in held["session_alarms"])
        if held["alarms"]:
            assert held["arl0"] == pytest.approx(held["inferences"] / held["alarms"], rel=1e-3)
            assert held["ci95"][0] <= held["arl0"] <= held["ci95"][1]
        sensor = monitor["in_domain_sensor"]
        assert 0 <= sensor["alarms"] and sensor["inferences"] > 0 and sensor["sessions"] > 0
        for users in ("wakes_only", "wakes_and_misses"):
            feedback = monitor["label_feedback"][users]
            assert set(feedback["scenarios"]) == names and feedback["false_wakes_added_per_hour"]
            for r in [*feedback["scenarios"].values(), *feedback["false_wakes_added_per_hour"].values()]:
                assert 0 <= r["detected"] + r["false_alarms_before"] <= r["streams"]
                assert (r["median_labels"] is None) == (r["detected"] == 0)
        assert arl0["arl0"] is None or math.isclose(arl0["arl0"], arl0["inferences"] / arl0["alarms"], rel_tol=1e-3)


def test_the_stored_figures_are_whole():
    """docs/figures/wakeword_bench.json, from `tinydrift bench wakeword --json` (the full
    settings), which the README quotes: all four models, every scenario, consistent."""
    data = json.loads(FIGURES.read_text())
    check_figures(data, ["alexa", "hey_jarvis", "hey_mycroft", "okay_nabu"])
    assert data["settings"] == json.loads(json.dumps(WakewordBenchSettings().__dict__)), "stored with the full settings"
    assert data["date"] and data["monitor"]["model"] == "okay_nabu"
    for m in data["models"].values():
        assert m["mismatches"] == 0 and m["steps"] >= 10_000
        assert m["in_domain"]["hours"] >= 0.5


def test_the_stored_table_is_the_rendering_of_the_stored_figures():
    from tinydrift.pipeline.wakeword_bench import WakewordBenchResult, markdown

    data = json.loads(FIGURES.read_text())
    result = WakewordBenchResult(settings=WakewordBenchSettings(**data["settings"]), models=data["models"],
                                 monitor=data["monitor"], seconds=data["seconds"], date=data["date"])
    assert FIGURES.with_suffix(".md").read_text() == markdown(result)


@pytest.mark.slow  # measured: ~25 s with the monitor's calibration cached (build/bench/wakeword), ~8 min without
def test_wakeword_demo_runs_the_loop_in_qemu_bit_exact_and_finds_the_changed_microphone(okay_nabu, tmp_path):
    import shutil

    from click.testing import CliRunner

    from tinydrift.cli.main import main

    if shutil.which("qemu-system-arm") is None:
        pytest.skip("QEMU is not installed (scripts/setup.sh)")
    result = CliRunner().invoke(main, ["wakeword", "demo", "okay_nabu", "--out", str(tmp_path / "demo")])
    assert result.exit_code == 0 and result.exception is None, result.output
    summary = json.loads((tmp_path / "demo" / "summary.json").read_text())
    assert summary["mismatched_frames"] == 0 and summary["inferences"] == 4999
    assert summary["false_alarms_before"] == 0
    assert summary["first_alarm_after"] == "DATA_DRIFT" and summary["delay_seconds"] < 30, summary
    assert "first alarm after the change: DATA_DRIFT" in result.output
    # the wakes beside the phrases said, so they read as false rejects or not (trial 17)
    assert 0 < summary["said_before"] and summary["wakes_before"] <= summary["said_before"] + 1, summary
    assert f"({summary['said_before']} wake phrase" in result.output and f"({summary['said_after']} said)" in result.output


def test_the_phrases_said_are_counted_in_a_looped_stretch():
    from tinydrift.pipeline.wakeword_demo import said_in

    spans = np.array([[10, 20], [90, 99]])  # a session of 100 samples
    assert said_in(spans, 100, 0, 100) == 2
    assert said_in(spans, 100, 0, 250) == 5  # 10-20, 90-99, 110-120, 190-199, 210-220
    assert said_in(spans, 100, 95, 30) == 1  # from 95: 90-99 is cut, 10-20 is at 15-25
    assert said_in(spans, 100, 0, 15) == 0


@pytest.mark.slow  # as the demo's test: ~20 s with the monitor's calibration cached
def test_a_wakeword_demo_cut_short_leaves_nothing_behind(okay_nabu, tmp_path, monkeypatch):
    """Ctrl-C while QEMU ran left model/ and a 4.8 MB microphone.pcm in the demo's folder,
    without a summary.json. What it made now goes, and the microphone's file lives in a
    temporary folder."""
    import tinydrift.target.emulator
    from tinydrift.pipeline.wakeword_demo import run_wakeword_demo

    played = []

    def interrupted(elf, semihosting_args=(), **kwargs):
        played.append(semihosting_args[0].split("=", 1)[1])
        raise KeyboardInterrupt

    monkeypatch.setattr(tinydrift.target.emulator, "run", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_wakeword_demo("okay_nabu", tmp_path / "demo", log=lambda m: None)
    assert not (tmp_path / "demo").exists() and played and not Path(played[0]).exists()
    (tmp_path / "kept").mkdir()  # a folder of the user's: kept, only what the demo made in it goes
    (tmp_path / "kept" / "notes.txt").write_text("mine")
    with pytest.raises(KeyboardInterrupt):
        run_wakeword_demo("okay_nabu", tmp_path / "kept", log=lambda m: None)
    assert [p.name for p in (tmp_path / "kept").iterdir()] == ["notes.txt"]


def test_label_feedback_only_refuses_a_file_that_is_no_bench_result_in_one_line(tmp_path):
    from click.testing import CliRunner

    from tinydrift.cli.main import main

    stored = tmp_path / "wakeword_bench.json"
    stored.write_text(json.dumps({"models": {}, "monitor": None}))
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["bench", "wakeword", "--label-feedback-only", str(stored), "--out", str(out)])
    lines = result.output.strip().splitlines()
    assert result.exit_code == 1 and len(lines) == 1, result.output
    assert "not a result of tinydrift bench wakeword with a monitored model" in lines[0]
    assert not out.exists() or not any(out.rglob("*")), "nothing written"


def test_the_stored_label_feedback_run_is_the_bench_s_and_its_table_its_rendering():
    """docs/figures/wakeword_label_feedback.json (--label-feedback-only on the stored bench):
    its calibrated half is the stored bench's label feedback, its levels meet the budget, and
    the .md beside it renders it."""
    from tinydrift.pipeline.wakeword_bench import label_feedback_markdown

    stored = FIGURES.with_name("wakeword_label_feedback.json")
    run = json.loads(stored.read_text())
    assert run["after"] == json.loads(FIGURES.read_text())["monitor"]["label_feedback"]
    for users, calibration in run["calibration"].items():
        assert calibration["budget_met"] and run["after"][users]["drift_sd"] == calibration["drift_q8"] / 256
        assert run["before"][users]["drift_sd"] == 3
    assert stored.with_suffix(".md").read_text() == label_feedback_markdown(run)


def test_a_recorded_run_is_cached_under_what_it_depends_on():
    """The recorded sessions' runs are kept like the espeak-ng ones: under a key that moves
    with the recordings' samples, the change, the seed and the clip level."""
    from tinydrift.pipeline.wakeword_bench import SCENARIOS, WakewordBenchSettings, recorded_run_key
    from tinydrift.wakeword.config import load_wakeword

    model = load_wakeword("okay_nabu")
    settings = WakewordBenchSettings()
    audio = np.zeros((2, 16000), np.int16)
    key = recorded_run_key(model, None, audio, settings, 30000)
    assert key == recorded_run_key(model, None, audio.copy(), settings, 30000)
    moved = audio.copy()
    moved[1, 5] = 1
    others = {recorded_run_key(model, None, moved, settings, 30000),
              recorded_run_key(model, SCENARIOS[0], audio, settings, 30000),
              recorded_run_key(model, None, audio, WakewordBenchSettings(seed=8), 30000),
              recorded_run_key(model, None, audio, settings, 20000)}
    assert key not in others and len(others) == 4


def test_a_cached_run_that_cannot_be_read_is_computed_again(tmp_path):
    """A run file cut by an interrupted bench stopped every later bench with numpy's error."""
    from tinydrift.pipeline.wakeword_bench import cached_run

    computed = {"counts": [{"wakes": 1}]}
    path = tmp_path / "runs" / "r.npz"
    assert cached_run(path, lambda: computed) == computed
    assert cached_run(path, lambda: pytest.fail("computed again although cached")) == computed
    path.write_bytes(path.read_bytes()[:100])
    said = []
    assert cached_run(path, lambda: computed, said.append) == computed
    assert said and "could not be read" in said[0] and cached_run(path, None) == computed


def test_calibrating_the_monitor_shows_each_step_s_progress(okay_nabu, tmp_path):
    """The demo's calibration printed one line, then nothing for two minutes while it
    synthesized its sessions, ran the model over them and simulated: each now has a bar."""
    from tinydrift.pipeline.wakeword_bench import calibrated_monitor

    bars = []

    def factory(description, total):
        bars.append([description, total, 0])
        bar = bars[-1]
        return lambda n=1: bar.__setitem__(2, bar[2] + n)

    settings = WakewordBenchSettings.make(True)
    calibrated_monitor(okay_nabu, settings, tmp_path, 2, lambda m: None, factory)
    assert [b[0] for b in bars[:2]] == ["synthesizing sessions", "front end and model"], bars
    assert bars[0][1] == bars[1][1] == settings.reference_sessions and all(b[2] == b[1] for b in bars), bars
    assert len(bars) >= 3  # and the simulation's


def test_a_quick_bench_does_not_overwrite_the_full_one(monkeypatch, tmp_path):
    """`bench wakeword --quick` wrote into build/bench/wakeword, over a full run's figures
    (35-53 minutes of them; new-user trial 13): by default each has its own folder."""
    from click.testing import CliRunner

    from tinydrift.cli.main import main
    from tinydrift.pipeline import wakeword_bench

    used = []

    def stop_at_the_cache(models, settings, *, cache, **_):
        used.append(cache)
        raise KeyboardInterrupt

    monkeypatch.setattr(wakeword_bench, "run_wakeword_bench", stop_at_the_cache)
    monkeypatch.chdir(tmp_path)
    for flags in (["--quick"], []):
        CliRunner().invoke(main, ["bench", "wakeword", "--model", "okay_nabu", *flags])
    assert [str(p) for p in used] == ["build/bench/wakeword_quick", "build/bench/wakeword"], used
