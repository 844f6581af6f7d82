"""`tinydrift demo` end to end on tiny settings: every step runs for real (espeak-ng data,
training, int8, export, PlatformIO, QEMU, capture, report, the twin check), on few clips
and one epoch, so it proves the pipeline, not the detection (tests/test_app_qemu.py does
that with the project's model)."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from tinydrift.cli.main import TinydriftGroup
from tinydrift.target import emulator, platformio
from tinydrift.cli.pipeline import demo_command
from tinydrift.pipeline.demo import DemoConfig, run_demo
from tinydrift.target.flash import build_dir_for
from tinydrift.errors import TinydriftError
from tinydrift.firmware import REPO_ROOT

pytestmark = [
    pytest.mark.skipif(shutil.which(emulator.QEMU) is None or platformio.pio_executable() is None
                       or shutil.which("espeak-ng") is None,
                       reason="needs qemu-system-arm, PlatformIO and espeak-ng (scripts/setup.sh)"),
]

# The export refuses reference statistics from under 2,000 clips: ref stays at 167.
TINY = {"train": 150, "val": 15, "ref": 167, "test": 4, "accent": 4}
MODEL_DIR = REPO_ROOT / "models" / "kws"


def test_demo_with_the_project_model_runs_firmware_capture_check_and_report(tmp_path, request):
    """--model models/kws --data DIR: no training; QEMU, capture, the twin check and the report.
    --clean first deletes what an earlier run left in OUT and its firmware build."""
    data = REPO_ROOT / "build" / "data" / "kws"
    if not (data / "accent.npz").exists():
        data = REPO_ROOT / "build" / "test_data" / "app_qemu"
        from tinydrift.data.synth import KwsConfig, build_kws

        build_kws(data, KwsConfig(seed=0, clips_per_class={"train": 1, "val": 1, "ref": 1, "test": 15, "accent": 30}))
    stale_build = build_dir_for(tmp_path / "demo" / "model" / "include")
    request.addfinalizer(lambda: shutil.rmtree(stale_build, ignore_errors=True))  # it lives in firmware/.pio
    leftovers = [tmp_path / "demo" / "capture.db", tmp_path / "demo" / "model" / "demo_stamp.json",
                 stale_build / "firmware.elf"]
    for path in leftovers:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("from an earlier run")
    group = TinydriftGroup()
    group.add_command(demo_command)
    result = CliRunner().invoke(group, ["demo", "--out", str(tmp_path / "demo"), "--model", str(MODEL_DIR),
                                        "--data", str(data), "--in-domain", "24", "--shifted", "24", "--clean"])
    assert result.exit_code == 0, result.output
    assert not (tmp_path / "demo" / "model").exists() and not stale_build.exists()
    assert f"report: {tmp_path / 'demo' / 'report' / 'index.html'}" in result.output
    assert "48 inferences on the emulated Cortex-M4: clips 1-24 in-domain, from 25 accent-shifted" in result.output
    assert "device vs host twin: bit-exact on every inference" in result.output
    assert (tmp_path / "demo" / "report" / "index.html").is_file()
    summary = json.loads((tmp_path / "demo" / "summary.json").read_text())
    assert summary["inferences"] == 48 and summary["mismatches"] == 0
    # the stream's truth travels beside the capture and the report marks it
    truth = json.loads((tmp_path / "demo" / "truth.json").read_text())
    assert truth["shift_index"] == 25 and len(truth["labels"]) == 48
    page = (tmp_path / "demo" / "report" / "index.html").read_text()
    assert "<th>true shift</th><td>inference 25</td>" in page and "accuracy after the shift" in page
    # 24 in-domain inferences are far too few for the calibrated false-alarm rate to ring
    assert summary["first_alarm"] is None or summary["first_alarm"] > 24


# What TensorFlow, its converter and LiteRT print on their own when nobody holds them back.
THIRD_PARTY_LOG = re.compile(r"TensorSpec|Saved artifact|fully_quantize|XNNPACK|oneDNN|tensorflow/|"
                             r"^[IWE]\d{4} |UserWarning", re.MULTILINE)


@pytest.mark.slow
def test_tiny_demo_runs_every_step_and_matches_the_twin(tmp_path, capfd):
    bars = []

    def factory(description, total):
        bars.append([description, total, 0])
        bar = bars[-1]

        def advance(n=1):
            bar[2] += n
        return advance

    config = DemoConfig(out_dir=tmp_path / "demo", epochs=6, clips_per_class=dict(TINY), in_domain=20, shifted=16)
    try:
        result = run_demo(config, progress_factory=factory, log=lambda message: None)
        # a second run finds data and model cached and only replays
        again = run_demo(DemoConfig(out_dir=tmp_path / "demo", epochs=6, clips_per_class=dict(TINY), in_domain=20,
                                    shifted=16, verify=False), progress_factory=factory, log=lambda m: None)
    finally:
        shutil.rmtree(build_dir_for(tmp_path / "demo" / "model" / "include"), ignore_errors=True)
    assert result.inferences == 36 and result.shift_index == 21
    assert result.mismatches == 0
    assert result.report.is_file() and (result.report.parent / "scores.png").is_file()
    assert set(result.seconds) >= {"data", "train", "quantize", "export", "firmware", "emulator", "verify", "report"}
    descriptions = [b[0] for b in bars]
    for step in ("synthesizing train", "training (epochs)", "quantizing to int8", "firmware (PlatformIO)",
                 "emulated Cortex-M4", "checking against the twin", "report"):
        assert step in descriptions
    assert all(done == total for _, total, done in bars), bars  # every bar completes
    assert "model (cached)" in descriptions and "train" not in again.seconds
    assert again.first_alarm == result.first_alarm and again.mismatches is None
    summary = json.loads((tmp_path / "demo" / "summary.json").read_text())
    assert summary["inferences"] == 36 and summary["shift_index"] == 21
    lines = "\n".join(result.lines())
    assert f"report: {result.report}" in lines and "device vs host twin: bit-exact on every inference" in lines
    assert re.search(r"drift detected|no drift alarm|FALSE ALARM", lines)
    # training, conversion and export printed nothing of their own (issue: quiet by default)
    printed = "".join(capfd.readouterr())
    assert not THIRD_PARTY_LOG.search(printed), THIRD_PARTY_LOG.search(printed).group(0)


def test_demo_refuses_bad_settings_before_doing_anything(tmp_path):
    with pytest.raises(TinydriftError, match="--in-domain and --shifted"):
        run_demo(DemoConfig(out_dir=tmp_path, in_domain=0))
    with pytest.raises(TinydriftError, match=r"missing test.npz, accent.npz; build it with `tinydrift data kws"):
        run_demo(DemoConfig(out_dir=tmp_path, model_dir=REPO_ROOT / "models" / "kws", data_dir=tmp_path))
    with pytest.raises(TinydriftError, match=r"reference.json not found"):  # before any data is made
        run_demo(DemoConfig(out_dir=tmp_path, model_dir=tmp_path))
    with pytest.raises(TinydriftError, match=r"no images in class sub-folders"):  # a camera model's own images
        run_demo(DemoConfig(out_dir=tmp_path / "out", model_dir=REPO_ROOT / "models" / "plant", data_dir=tmp_path))
    group = TinydriftGroup()
    group.add_command(demo_command)
    result = CliRunner().invoke(group, ["demo", "--out", str(tmp_path / "x"), "--epochs", "0"])
    assert result.exit_code == 2 and "Invalid value for '--epochs': 0 is not in the range 1<=x<=" in result.output


def test_cached_demo_model_is_keyed_on_the_code_that_made_it(tmp_path):
    """A demo model cached under an earlier calibration must not be reported as this one's."""
    from pathlib import Path

    import tinydrift
    from tinydrift.pipeline.demo import model_code_digest

    package = Path(tinydrift.__file__).resolve().parent
    copy = tmp_path / "tinydrift"
    for part in ("model", "monitor", "codegen", "frontend"):
        shutil.copytree(package / part, copy / part)
    (copy / "pipeline").mkdir()
    shutil.copy(package / "pipeline" / "export.py", copy / "pipeline" / "export.py")
    assert model_code_digest(copy) == model_code_digest(package)
    calibrate = copy / "monitor" / "calibrate.py"
    calibrate.write_text(calibrate.read_text() + "\n# another calibration\n")
    assert model_code_digest(copy) != model_code_digest(package)


def test_the_summary_names_the_split_its_accuracy_comes_from(tmp_path):
    """A model exported on the accent split, streamed a WAV folder under noise: the export's
    figures are labelled as the export's, and the stream's own true accuracy follows."""
    from tinydrift.pipeline.demo import DemoResult

    result = DemoResult(out_dir=tmp_path, report=tmp_path / "index.html", db=tmp_path / "c.db", model_dir=tmp_path,
                        inferences=60, shift_index=31, first_alarm=None, alarm_types=[], change_index=None,
                        severity=None, accuracy={"test": 0.965, "shifted": 0.825, "split_title": "its `accent` split"},
                        mismatches=0, seconds={"emulator": 1.0}, shift="under white noise",
                        stream_accuracy={"before": 0.733, "after": 0.533})
    lines = result.lines()
    assert "model accuracy (int8, TFLite Micro) on its export's data: test 96.5 %, its `accent` split 82.5 %" in lines
    assert "this stream's true accuracy on the device: in-domain 73.3 %, under white noise 53.3 %" in lines


def test_the_summary_says_when_the_shift_fell_among_the_inferences_the_monitor_learns_on(tmp_path):
    """`demo --in-domain 40 --shifted 40` (once demo --help's own example) ended with "no drift
    alarm was raised": the device commissions on its first 300 inferences, shift and all."""
    from tinydrift.pipeline.demo import DemoResult

    common = dict(out_dir=tmp_path, report=tmp_path / "index.html", db=tmp_path / "c.db", model_dir=tmp_path,
                  inferences=80, first_alarm=None, alarm_types=[], change_index=None, severity=None, accuracy={},
                  mismatches=0, seconds={"emulator": 1.0}, commission_n=300)
    lines = DemoResult(shift_index=41, **common).lines()
    assert ("no drift alarm was raised: the monitor learns its reference on the first 300 inferences after a reset "
            "and judges none of them, and the shift began at inference 41, among them, so it learned what came after "
            "the shift as normal: give --in-domain 300 or more") in lines
    assert "no drift alarm was raised in the 100 inferences after the shift" in DemoResult(
        shift_index=301, **{**common, "inferences": 400}).lines()


def test_the_summary_says_how_many_inferences_were_judged_and_how_long_the_shift_takes(tmp_path):
    """The own-recordings demo ended "no drift alarm was raised" with no hint that the export
    had found that shift after a median of 290 inferences (the stream held 200 after it), and
    a detection read "no alarm before it" when every in-domain inference had been learned on,
    none judged (new-user trial 9)."""
    from tinydrift.pipeline.demo import DemoResult

    common = dict(out_dir=tmp_path, report=tmp_path / "index.html", db=tmp_path / "c.db", model_dir=tmp_path,
                  alarm_types=["DATA_DRIFT"], change_index=None, severity=None, accuracy={}, mismatches=0,
                  seconds={"emulator": 1.0}, commission_n=300)
    quiet = DemoResult(inferences=600, shift_index=401, first_alarm=None, export_median_delay=290.5, **common)
    assert ("no drift alarm was raised in the 200 inferences after the shift (the export's check found this shift "
            "after a median of 290 inferences: give --shifted 581 or more)") in quiet.lines()
    learned = DemoResult(inferences=900, shift_index=301, first_alarm=320, **common).lines()
    assert ("drift detected: DATA_DRIFT at inference 320, 20 inferences after the shift; none of the in-domain "
            "inferences was judged (the monitor learned its reference on them): --in-domain 500 checks 200 for "
            "false alarms too") in learned
    judged = DemoResult(inferences=900, shift_index=501, first_alarm=520, **common).lines()
    assert any(line.endswith("; no alarm in the 200 judged inferences before it") for line in judged), judged


@pytest.mark.slow  # 97 s measured on 2 shared cores: 360 images through the emulated UART
def test_camera_demo_finds_the_smudged_lens_on_the_device_bit_exactly(tmp_path):
    """models/plant in QEMU: 300 fresh leaves (the device commissions on them), then 60
    through a smudged lens, as IMAGE frames; the device's log equals the twin's and its
    first alarm comes after the smudge, with DATA_DRIFT among its types."""
    result = run_demo(DemoConfig(out_dir=tmp_path / "demo", model_dir=REPO_ROOT / "models" / "plant",
                                 in_domain=300, shifted=60), log=lambda m: None)
    assert result.inferences == 360 and result.mismatches == 0
    assert result.detected_after_shift and "DATA_DRIFT" in result.alarm_types and result.delay <= 60
    lines = "\n".join(result.lines())
    assert "images 1-300 in-domain, from 301 through a smudged lens" in lines
    assert "model accuracy (int8, TFLite Micro): in-domain 96.7 %, through a smudged lens 43.9 %" in lines


def test_demo_fails_when_the_device_and_its_twin_disagree(tmp_path, monkeypatch):
    """demo printed "1 inferences DIFFER" and exited 0: a script could not tell a run whose
    bit-exact check failed from a good one."""
    from tinydrift.cli import main
    from tinydrift.pipeline import demo
    from tinydrift.pipeline.demo import DemoResult

    def run(config, **_):
        return DemoResult(out_dir=config.out_dir, report=config.out_dir / "index.html", db=config.out_dir / "capture.db",
                          model_dir=tmp_path, inferences=45, shift_index=41, first_alarm=None, alarm_types=[],
                          change_index=None, severity=None, accuracy={}, mismatches=1, seconds={"emulator": 1.0})

    monkeypatch.setattr(demo, "run_demo", run)  # the check's outcome is what is under test, not the run
    result = CliRunner().invoke(main, ["demo", "--out", str(tmp_path / "out"), "--in-domain", "40", "--shifted", "5"])
    assert result.exit_code == 1, result.output
    assert "device vs host twin: 1 inferences DIFFER" in result.output
    assert "differs from the host twin's on 1 inferences" in result.output.strip().splitlines()[-1]


def test_a_demo_into_a_folder_another_demo_writes_is_refused_and_a_refused_one_leaves_no_folder(tmp_path):
    """Two demos into one --out wrote one capture database and one summary between them (one
    printed 45 inferences, the summary said 50); a demo refused for its data left an empty
    --out folder behind."""
    import fcntl
    import os

    from tinydrift.cli import main
    from conftest import REPO_ROOT

    busy = tmp_path / "busy"
    busy.mkdir()
    held = os.open(busy, os.O_RDONLY)
    fcntl.flock(held, fcntl.LOCK_EX)
    try:
        result = CliRunner().invoke(main, ["demo", "--model", str(REPO_ROOT / "models" / "kws"), "--out", str(busy),
                                           "--in-domain", "40", "--shifted", "5"])
    finally:
        os.close(held)
    assert result.exit_code == 1 and f"another demo is writing {busy} now" in result.output, result.output
    (tmp_path / "empty").mkdir()
    fresh = tmp_path / "fresh"
    result = CliRunner().invoke(main, ["demo", "--model", str(REPO_ROOT / "models" / "kws"), "--data",
                                       str(tmp_path / "empty"), "--out", str(fresh)])
    assert result.exit_code == 1 and not fresh.exists(), result.output


def test_ctrl_c_while_the_device_runs_says_interrupted_and_leaves_no_part_of_the_run(tmp_path):
    """Ctrl-C in the emulator step ended "error: the firmware in QEMU ended with code 0
    (interrupted)", exit 1, and left capture.db, stream.pcm and truth.json (new-user trial 9).
    A demo of the project's model on a WAV word folder, stopped once its stream is written."""
    import signal
    import subprocess
    import sys
    import time

    import numpy as np

    from conftest import write_wav

    executable = Path(sys.executable).with_name("tinydrift")
    if not executable.exists():
        pytest.skip(f"{executable} is not installed (pip install -e .)")
    rng = np.random.default_rng(0)
    for word in ("yes", "no", "stop"):
        for k in range(8):
            write_wav(tmp_path / "words" / word / f"s{k}_nohash_0.wav", rng.normal(0, 3000, 16000).astype(np.int16))
    out = tmp_path / "demo"
    demo = subprocess.Popen([str(executable), "demo", "--model", str(MODEL_DIR), "--data", str(tmp_path / "words"),
                             "--in-domain", "400", "--shifted", "400", "--out", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + 600  # a firmware build of the model, if none is cached
    while not (out / "stream.pcm").exists() and demo.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(1.5)  # QEMU boots and the capture runs
    demo.send_signal(signal.SIGINT)
    stdout, err = demo.communicate(timeout=120)
    assert demo.returncode == 130 and "Traceback" not in err and "error" not in err, stdout + err
    assert err.strip().splitlines()[-1].endswith("interrupted"), err
    left = sorted(p.name for p in out.iterdir()) if out.exists() else []
    assert not set(left) & {"truth.json", "stream.pcm", "capture.db", "summary.json", "report"}, left
