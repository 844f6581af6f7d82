"""`tinydrift wakeword check | detect | export` on okay_nabu: the summary states the model's
figures, detect prints the twin's wake events for espeak-ng speech (one per "okay nabu"),
export writes the C the streaming app builds. Bad input: tests/test_hostile_cli.py."""

from __future__ import annotations

import re
import wave

import pytest
from click.testing import CliRunner

from test_app_stream import GAP, spoken
from tinydrift.app import expected_detections
from tinydrift.cli.main import main
from tinydrift.codegen.model_c import plan_model
from tinydrift.wakeword.config import load_wakeword
from tinydrift.wakeword.export import model_digest, model_id

pytest.importorskip("pymicro_wakeword", reason="the wakeword extra is not installed (scripts/setup.sh)")


def write_wav(path, data: bytes) -> None:
    """16 kHz mono 16-bit PCM samples as a WAV file."""
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(data)


def run(*args: str) -> str:
    result = CliRunner().invoke(main, ["wakeword", *args])
    assert result.exit_code == 0 and result.exception is None, result.output
    return result.output


def test_check_summarizes_what_the_device_needs():
    model = load_wakeword("okay_nabu")
    plan = plan_model(model.model, "okay_nabu")
    out = run("check", "okay_nabu")
    assert out.startswith('okay_nabu: "Okay Nabu"')
    assert "mean of 5 probabilities above 0.85 (uint8 216/255)" in out
    assert "3 frames of 10 ms per inference, 33.3 inferences per second" in out
    assert (f"arena {plan.arena_bytes:,} + state {plan.state_bytes:,} = {plan.arena_bytes + plan.state_bytes:,} "
            "bytes; the config's TFLite Micro arena: 37,000 bytes") in out
    assert f"{plan.macs:,} multiply-accumulates per inference" in out


def test_detect_prints_the_twins_wake_events(tmp_path):
    """The first two phrases ("okay nabu" and another; the whole speech is played to the app
    in tests/test_app_stream.py), so TFLite Micro runs over 7 s of audio, not 17."""
    model = load_wakeword("okay_nabu")
    pcm, spans = spoken("en", "m1")
    spans = spans[:2]
    pcm = pcm[:spans[-1][2] + GAP]
    path = tmp_path / "speech.wav"
    write_wav(path, pcm.tobytes())
    out = run("detect", "okay_nabu", str(path))
    printed = [float(t) for t in re.findall(r"wake at (\d+\.\d\d) s", out)]
    wakes = [f.stream_position for f in expected_detections([pcm], model, model_id(model)) if f.wake]
    assert printed == [round(at / 16000, 2) for at in wakes]
    assert [text for text, _, _ in spans] == ["okay nabu", "turn on the kitchen light"] and len(printed) == 1
    ends = [end for text, _, end in spans if text == "okay nabu"]
    assert all(0 <= at * 16000 - end <= 8000 for at, end in zip(printed, ends)), (printed, ends)
    assert f"{path}: 1 wake in {len(pcm) / 16000:.1f} s" in out
    # the window mean in the cutoff's own units, uint8 (printed /256 against a cutoff x 255,
    # a wake read 0.84 under a cutoff of 0.85: trial 17)
    assert "mean of 5 uint8 probabilities above 216 (the config's 0.85 x 255, rounded down)" in out, out
    (mean,) = [int(m) for m in re.findall(r"window mean (\d+), rounded down", out)]
    assert mean >= 216


def test_detect_warns_of_a_recording_too_short_to_hear(tmp_path):
    path = tmp_path / "click.wav"
    write_wav(path, bytes(200))
    result = CliRunner().invoke(main, ["wakeword", "detect", "okay_nabu", str(path)])
    assert result.exit_code == 0 and "(0 inferences" in result.stdout
    assert f"warning: {path} is shorter than the model's first input (50 ms of audio)" in result.stderr


def test_detect_takes_a_folder_of_recordings(tmp_path):
    """A folder was refused ("give a 16 kHz mono 16-bit WAV file"): its WAVs are the streams,
    its sub-folders' too (recordings kept a folder a day), as replay takes them."""
    folder = tmp_path / "days"
    (folder / "tuesday").mkdir(parents=True)
    for name in ("b.wav", "a.WAV", "tuesday/c.wav"):
        write_wav(folder / name, bytes(16000))
    (folder / "notes.txt").write_text("not audio")
    out = run("detect", "okay_nabu", str(folder))
    assert [line.split(":")[0] for line in out.splitlines()[1:]] == [
        str(folder / "a.WAV"), str(folder / "b.wav"), str(folder / "tuesday" / "c.wav")]


def test_export_writes_the_streaming_apps_c(tmp_path):
    out = run("export", "okay_nabu", "--out", str(tmp_path / "m"), "--name", "nabu")
    include = tmp_path / "m" / "include"
    assert sorted(p.name for p in include.iterdir()) == ["td_model_nabu.c", "td_model_nabu.h", "td_reference_nabu.h"]
    assert "#define TD_NABU_STREAMING 1" in (include / "td_model_nabu.h").read_text()
    reference = (include / "td_reference_nabu.h").read_text()
    for line in ("#define TD_NABU_PROBABILITY_CUTOFF 216", "#define TD_NABU_SLIDING_WINDOW 5",
                 '"Okay Nabu"', f'#define TD_NABU_MODEL_HASH "{model_digest(load_wakeword("okay_nabu"))}"'):
        assert line in reference
    assert out.splitlines()[-1] == f"model hash {model_digest(load_wakeword('okay_nabu'))}"


def test_export_into_a_folder_of_another_export_is_refused(tmp_path):
    """Once both exited 0, leaving two models' headers (a build takes one) or a classifier's
    reference.json beside a detector's files (capture and report then read the classifier)."""
    import shutil

    from tinydrift.firmware import REPO_ROOT

    folder = tmp_path / "m"
    run("export", "okay_nabu", "--out", str(folder))
    before = sorted(p.name for p in (folder / "include").iterdir())
    run("export", "okay_nabu", "--out", str(folder))  # the same export again: replaced
    for args, message in (
            (("alexa",), f"error: {folder} holds the export of another wake-word model or config (\"Okay Nabu\", hash "),
            (("okay_nabu", "--name", "nabu"), f"error: {folder} holds an export named okay_nabu "
                                              "(include/td_model_okay_nabu.h): export this model with --name okay_nabu")):
        result = CliRunner().invoke(main, ["wakeword", "export", *args, "--out", str(folder)])
        assert result.exit_code == 1 and result.output.startswith(message), result.output
        assert sorted(p.name for p in (folder / "include").iterdir()) == before
    classifier = tmp_path / "kws"
    shutil.copytree(REPO_ROOT / "models" / "kws", classifier)
    result = CliRunner().invoke(main, ["wakeword", "export", "okay_nabu", "--out", str(classifier)])
    assert result.exit_code == 1 and "holds a classifier's export (reference.json" in result.output
    assert not (classifier / "detector.json").exists()


def test_calibrate_into_a_folder_of_another_export_is_refused_before_any_synthesis(tmp_path, monkeypatch):
    """Once calibrate wrote alexa's monitor.json beside okay_nabu's export (which capture and
    report then read) or into a classifier's folder, exit 0, after minutes of work."""
    import shutil

    from tinydrift.firmware import REPO_ROOT
    from tinydrift.wakeword import monitor

    def no_synthesis(*args, **kwargs):
        raise AssertionError("reference sessions made before the folder was checked")

    monkeypatch.setattr(monitor, "reference_sessions", no_synthesis)

    folder = tmp_path / "m"
    run("export", "okay_nabu", "--out", str(folder))
    classifier = tmp_path / "kws"
    shutil.copytree(REPO_ROOT / "models" / "kws", classifier)
    for args, message in (
            (("alexa", "--out", str(folder)),
             f"error: {folder} holds the export of another wake-word model or config (\"Okay Nabu\", hash "),
            (("okay_nabu", "--out", str(folder), "--name", "nabu"),
             f"error: {folder} holds okay_nabu exported as okay_nabu: give --name okay_nabu"),
            (("okay_nabu", "--out", str(classifier)), f"error: {classifier} holds a classifier's export (reference.json")):
        result = CliRunner().invoke(main, ["wakeword", "calibrate", *args, "--workers", "1"])
        assert result.exit_code == 1 and result.output.startswith(message), result.output
    assert not (folder / "monitor.json").exists() and not (classifier / "monitor.json").exists()
    assert not list((folder / "include").glob("td_monitor_config_*"))


def test_an_export_that_fails_part_way_leaves_no_file_of_it(tmp_path):
    """Once a folder where detector.json goes left the model's C written beside it, exit 1,
    naming a hidden temporary file."""
    folder = tmp_path / "m"
    (folder / "detector.json").mkdir(parents=True)
    result = CliRunner().invoke(main, ["wakeword", "export", "okay_nabu", "--out", str(folder)])
    assert result.exit_code == 1
    assert result.output.startswith(f"error: {folder / 'detector.json'}: is a folder where a file is to be written"), result.output
    assert sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*")) == ["detector.json"]


def test_calibrate_whose_files_cannot_be_written_is_refused_before_any_synthesis(tmp_path, monkeypatch):
    """Once calibrate found out only after minutes of synthesis and simulation that its
    include/ was a file or monitor.json a folder."""
    from tinydrift.wakeword import monitor

    def no_synthesis(*args, **kwargs):
        raise AssertionError("reference sessions made before the files were checked")

    monkeypatch.setattr(monitor, "reference_sessions", no_synthesis)
    include_a_file, json_a_folder = tmp_path / "a", tmp_path / "b"
    include_a_file.mkdir()
    (include_a_file / "include").write_text("")
    (json_a_folder / "monitor.json").mkdir(parents=True)
    for folder, message in ((include_a_file, f"error: {include_a_file / 'include'}: is a file where a folder goes"),
                            (json_a_folder, f"error: {json_a_folder / 'monitor.json'}: is a folder where a file is to be written"),
                            (tmp_path / "c" / "d", None)):
        result = CliRunner().invoke(main, ["wakeword", "calibrate", "okay_nabu", "--out", str(folder), "--workers", "1"])
        assert result.exit_code == 1, result.output
        if message is None:  # writable: refused only by the synthesis stand-in, and the probe left no folder
            assert isinstance(result.exception, AssertionError) and not (tmp_path / "c").exists()
        else:
            assert result.output.startswith(message), result.output
    assert sorted(p.name for p in include_a_file.iterdir()) == ["include"]


def test_a_monitor_calibrated_for_another_model_is_refused_by_export_and_by_its_readers(tmp_path):
    """Once `calibrate okay_nabu` then `export alexa` into one folder both exited 0, and report
    read okay_nabu's monitor beside alexa's model."""
    import json

    from tinydrift.modeldir import ModelDir

    folder = tmp_path / "m"
    run("export", "okay_nabu", "--out", str(folder))
    (folder / "monitor.json").write_text(json.dumps({"name": "okay_nabu", "model_hash": "ab" * 32,
                                                     "monitor_config": {}}))
    result = CliRunner().invoke(main, ["wakeword", "export", "okay_nabu", "--out", str(folder)])
    assert result.exit_code == 1, result.output
    assert result.output.startswith(f"error: {folder} holds a monitor calibrated for another wake-word model or config "
                                    "(monitor.json, hash abababababab)"), result.output
    with pytest.raises(Exception, match=r"monitor.json was calibrated for another model \(hash abababababab\) than the "
                                        r"one exported here"):
        ModelDir(folder).monitor_config()


def test_calibrate_that_cannot_place_its_levels_names_the_reference_as_well_as_simulated(tmp_path, monkeypatch):
    """Too few CUSUM excursions after simulating: raising --simulated may not help when the
    reference's scores barely vary (a trial's 14 sessions of 61 s, or speechless WAVs), so
    the error says that too; what runs is said before the wait."""
    import numpy as np

    from tinydrift.monitor.calibrate import TooFewSimulated
    from tinydrift.wakeword import monitor

    monkeypatch.setattr(monitor, "reference_sessions", lambda *a, **k: ([np.zeros(4800, np.int16)] * 2, None))
    monkeypatch.setattr(monitor, "check_session_lengths", lambda *a, **k: None)  # short, to be quick

    def too_few(*args, **kwargs):
        raise TooFewSimulated("calibration saw only 6 CUSUM excursions: simulate more inferences")

    monkeypatch.setattr(monitor, "calibrate_detector", too_few)
    result = CliRunner().invoke(main, ["wakeword", "calibrate", "okay_nabu", "--out", str(tmp_path / "m"),
                                       "--simulated", "800000", "--target-arl0", "100000"])
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert lines[0] == "reference: synthesizing 40 espeak-ng sessions of 180 s"
    assert lines[1] == f"{'front end and model':<24} 2/2"  # its progress bar, off a terminal
    assert lines[2].startswith("calibrating: 800,000 simulated inferences on ")
    assert lines[-1] == ("error: calibration saw only 6 CUSUM excursions: simulate more inferences: raise --simulated "
                         "(now 800,000) or lower --target-arl0 (now 100,000); if that does not help, the reference is "
                         "too little or too uniform (few or short sessions, recordings without speech): give more or "
                         "longer sessions")
    assert not (tmp_path / "m" / "monitor.json").exists()


def test_calibrate_on_too_few_wake_phrases_sets_the_error_rate_test_for_any_share_and_says_so(tmp_path, monkeypatch):
    """`--sessions 3 --seconds 61` once failed after minutes of synthesis and simulation:
    too few labelled events to calibrate the error-rate test for how users label."""
    import numpy as np

    from test_wakeword_labels import _detector_config
    from tinydrift.wakeword import export, monitor

    monkeypatch.setattr(monitor, "reference_sessions",
                        lambda *a, **k: ([np.zeros(4800, np.int16)] * 2, [np.zeros((0, 2), np.int64)] * 2))
    monkeypatch.setattr(monitor, "check_session_lengths", lambda *a, **k: None)  # short, to be quick
    monkeypatch.setattr(monitor, "calibrate_detector", lambda *a, **k: (_detector_config(), {"seconds": 0}))
    written = []
    monkeypatch.setattr(export, "write_monitor", lambda model, config, *a: written.append(config) or [])
    result = CliRunner().invoke(main, ["wakeword", "calibrate", "okay_nabu", "--out", str(tmp_path / "m"),
                                       "--sessions", "3", "--seconds", "61"])
    assert result.exit_code == 0, result.output
    assert ("warning: the reference sessions hold 0 labelled events in 0 sessions; calibrating the error-rate test "
            "needs 30 or more in several sessions: it is set for any error share instead") in result.output
    assert "error-rate test for any error share of 0.5-35 %; ERROR_RATE at" in result.output
    assert len(written) == 1 and written[0].ddm_drift_q8 > 0


def test_detect_without_the_twins_runtimes_says_what_to_install(tmp_path, monkeypatch):
    """A gateway install (no [train] extra) has neither TensorFlow's front end op nor TFLite Micro."""
    import importlib.util

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "tflite_micro" else find_spec(name, *a))
    wav = tmp_path / "a.wav"
    write_wav(wav, bytes(3200))
    result = CliRunner().invoke(main, ["wakeword", "detect", "okay_nabu", str(wav)])
    assert result.exit_code == 1 and result.output.strip().splitlines() == [
        "error: detect runs the device's twin on tflite_micro, which this install lacks: "
        "pip install 'tinydrift[train,wakeword]'"]


def test_demo_help_lists_every_change_it_takes():
    """--change's help names each scenario the demo can play (the bench's, but the voices)."""
    from tinydrift.pipeline.wakeword_bench import SCENARIOS

    result = CliRunner().invoke(main, ["wakeword", "demo", "--help"], terminal_width=10_000)
    assert result.exit_code == 0
    listed = set(re.findall(r"[a-z0-9_]+", result.output))
    assert {s.name for s in SCENARIOS if s.voices is None} <= listed


def test_ctrl_c_exits_with_the_shells_code_not_a_failures(monkeypatch):
    """Once click's "Aborted!" and exit 1, which a script cannot tell from a failure."""
    import tinydrift.wakeword.config as config

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(config, "load_wakeword", interrupted)
    result = CliRunner().invoke(main, ["wakeword", "check", "okay_nabu"])
    assert result.exit_code == 130 and result.output.strip() == "interrupted", result.output


def test_tensorflow_s_import_lines_are_held_back(tmp_path):
    """TensorFlow prints lines when first imported (oneDNN's notice, absl's warning) that its
    log level does not reach; detect once showed them twice on every run."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    executable = Path(sys.executable).with_name("tinydrift")
    if not executable.exists():
        pytest.skip(f"{executable} is not installed (pip install -e .)")
    wav = tmp_path / "quiet.wav"
    write_wav(wav, bytes(32000))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TF_", "TINYDRIFT_"))}
    run = subprocess.run([str(executable), "wakeword", "detect", "okay_nabu", str(wav)], capture_output=True,
                         text=True, env=env, timeout=300)
    assert run.returncode == 0, run.stderr
    assert not re.search(r"oneDNN|absl|port\.cc|cpu_feature_guard", run.stderr), run.stderr


def test_replay_takes_a_wake_word_folder_as_the_device_s_model(tmp_path):
    """replay --model-dir of a wake-word export once failed with "model_int8.tflite not found:
    make it with 'tinydrift quantize'": it read every folder as a classifier's."""
    from tinydrift.cli.device import _camera_input

    run("export", "okay_nabu", "--out", str(tmp_path / "okay_nabu"))
    assert _camera_input(tmp_path / "okay_nabu") is None  # audio: nothing to fit


def test_detect_says_why_a_phrase_in_a_streams_first_second_woke_nothing(tmp_path):
    """A clip of just "okay nabu" (about a second) printed "0 wakes ... highest probability
    0.99" and nothing more: a stream's first second is held off, as on the device after a
    reset, and only --help said so."""
    pcm, spans = spoken("en", "m1")
    _, start, end = spans[0]
    path = tmp_path / "phrase.wav"
    write_wav(path, pcm[start:end + 800].tobytes())
    result = CliRunner().invoke(main, ["wakeword", "detect", "okay_nabu", str(path)])
    assert result.exit_code == 0 and f"{path}: 0 wakes" in result.stdout, result.output
    assert "within the stream's first second, when detections are held off" in result.stderr, result.output


def test_calibrate_says_its_budget_in_audio_time_too():
    """100,000 inferences read as rare, but a wake-word model infers every 30 ms: 50 minutes."""
    from tinydrift.cli.wakeword import audio_time
    from tinydrift.wakeword.monitor import INFERENCE_SECONDS, TARGET_ARL0

    assert audio_time(TARGET_ARL0 * INFERENCE_SECONDS) == "50 minutes"
    assert [audio_time(n * INFERENCE_SECONDS) for n in (1_000_000, 100_000_000, 1_000)] == ["8.3 hours", "35 days", "30 s"]
