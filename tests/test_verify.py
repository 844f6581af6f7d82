"""`tinydrift verify`: bit-exact on the reference model, and a mismatch counted in the right
stage, with a non-zero exit code, when one stage's C or config is deliberately broken."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from tinydrift import firmware
from tinydrift.pipeline import verify as verify_mod
from tinydrift.cli.pipeline import verify
from tinydrift.monitor.config import MonitorConfig
from tinydrift.pipeline.verify import STAGES, verify_model

MODEL = firmware.REPO_ROOT / "models" / "kws"
CLIPS = firmware.REPO_ROOT / "build" / "data" / "kws" / "test.npz"
SAMPLES = 12

pytestmark = pytest.mark.skipif(not (MODEL / "reference.json").is_file(), reason="models/kws not exported")


def copy_model(tmp_path: Path) -> Path:
    """The files verify reads, in a scratch model folder that a test may break."""
    out = tmp_path / "kws"
    (out / "include").mkdir(parents=True)
    for name in ("reference.json", "model_int8.tflite"):
        shutil.copy(MODEL / name, out / name)
    for header in (MODEL / "include").iterdir():
        shutil.copy(header, out / "include" / header.name)
    return out


def run_cli(*args) -> tuple[int, dict]:
    result = CliRunner().invoke(verify, [*map(str, args), "--json", "--samples", str(SAMPLES)])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result.exit_code, json.loads(result.output)


def only_stage_fails(report: dict, broken: str) -> None:
    """`broken` and the exports stage fail (an edited file is no longer what export writes),
    every other stage passes."""
    for stage in STAGES:
        counts = report["stages"][stage]
        assert counts["inputs"] > 0
        if stage in (broken, "exports"):
            assert counts["mismatches"] > 0, (stage, counts)
            assert counts["first_mismatch"], counts
        else:
            assert counts["mismatches"] == 0, (stage, counts)


def test_reference_model_is_bit_exact_in_every_stage():
    code, report = run_cli(MODEL)
    assert code == 0, report
    assert report["ok"] is True
    stages = report["stages"]
    assert stages["frontend"]["inputs"] == SAMPLES
    assert stages["frontend"]["elements"] == SAMPLES * 49 * 40
    assert stages["model"]["inputs"] == 2 * SAMPLES  # the clips' features and random inputs
    assert stages["model"]["elements"] == 2 * SAMPLES * 12
    assert stages["monitor"]["inputs"] > 3000  # inferences, feedback, sensor blocks, resets
    # The stream reached every alarm type, so the decision paths were compared too.
    for alarm in ("DATA_DRIFT", "CONFIDENCE_DRIFT", "LABEL_SHIFT", "ERROR_RATE", "SENSOR_FAULT"):
        assert alarm in stages["monitor"]["note"]
    assert all(s["mismatches"] == 0 for s in stages.values())
    if CLIPS.is_file():
        assert "test.npz" in report["source"]


def test_text_output_names_every_stage_and_the_input_source():
    result = CliRunner().invoke(verify, [str(MODEL), "--samples", "4", "--seed", "3"])
    assert result.exit_code == 0, result.output
    for stage in STAGES:
        assert re.search(rf"{stage}\s+\d+ inputs\s+0 of", result.output), result.output
    assert "inputs:" in result.output and "all stages bit-exact" in result.output


@pytest.mark.parametrize("samples", [1, 2])
def test_fewer_samples_than_the_three_extreme_inputs_verify_too(samples):
    """--samples 1 and 2 (which --samples allows) once ended in an IndexError: no random input
    was run through the model, while the monitor's stream drew on as many as --samples."""
    result = CliRunner().invoke(verify, [str(MODEL), "--samples", str(samples), "--json"])
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["stages"]["model"]["inputs"] == 2 * samples


def test_patched_model_c_is_caught_in_the_model_stage(tmp_path):
    model = copy_model(tmp_path)
    source = model / "include" / "td_model_kws.c"
    text = source.read_text()
    # The classifier's first bias: a wrong weight in the generated C.
    match = re.search(r"(static const int32_t op10_bias\[12\] = \{\s*)(-?\d+)", text)
    assert match
    patched = text[: match.start(2)] + str(int(match.group(2)) + 4000) + text[match.end(2):]
    source.write_text(patched)
    code, report = run_cli(model)
    assert code != 0
    assert report["ok"] is False
    only_stage_fails(report, "model")


def test_monitor_header_altered_on_the_c_side_is_caught(tmp_path):
    model = copy_model(tmp_path)
    header = model / "include" / "td_monitor_config_kws.h"
    text = header.read_text()
    config = MonitorConfig.from_dict(json.loads((model / "reference.json").read_text())["monitor_config"])
    # Move the first channel's reference mean by one unit in the C only.
    first = int(config.ref_mean[0])
    match = re.search(r"_ref_mean\[\d+\] = \{\s*(-?\d+)", text)
    assert match and int(match.group(1)) == first
    header.write_text(text[: match.start(1)] + str(first + 1) + text[match.end(1):])
    code, report = run_cli(model)
    assert code != 0
    only_stage_fails(report, "monitor")


@pytest.mark.slow  # 13 s; the monitor stage's C-side mutation (above) stays in the default tier
def test_monitor_config_altered_on_the_twin_side_is_caught(tmp_path):
    model = copy_model(tmp_path)
    path = model / "reference.json"
    reference = json.loads(path.read_text())
    drift = reference["monitor_config"]["score_drift"]
    drift[0] = max(1, drift[0] // 2)  # the twin's DATA_DRIFT level, not the C's
    path.write_text(json.dumps(reference))
    code, report = run_cli(model)
    assert code != 0
    only_stage_fails(report, "monitor")
    assert "cusum" in report["stages"]["monitor"]["first_mismatch"] or "alarm" in report["stages"]["monitor"]["first_mismatch"]


def test_hand_edited_labels_in_the_reference_header_are_caught_in_the_exports_stage(tmp_path):
    """Swapped class names (or an edited model id) change what the device reports, not what
    it computes: only the comparison with what export writes can see them."""
    model = copy_model(tmp_path)
    header = model / "include" / "td_reference_kws.h"
    text = header.read_text()
    assert '"yes", "no"' in text
    header.write_text(text.replace('"yes", "no"', '"no", "yes"'))
    code, report = run_cli(model)
    assert code != 0 and report["ok"] is False
    exports = report["stages"]["exports"]
    assert exports["mismatches"] == 1 and "td_reference_kws.h line" in exports["first_mismatch"], exports
    assert all(report["stages"][s]["mismatches"] == 0 for s in STAGES if s != "exports")


def test_a_folder_without_its_exports_or_with_another_models_reference_fails(tmp_path):
    model = copy_model(tmp_path)
    shutil.rmtree(model / "include")
    code, report = run_cli(model)
    exports = report["stages"]["exports"]
    assert code != 0 and exports["mismatches"] == 4 and "include/td_model_kws.h: missing" in exports["first_mismatch"]
    assert "no shipped C" in report["stages"]["model"]["note"]  # the generator is still checked
    # reference.json of another export (another name and hash) beside this folder's headers
    model = copy_model(tmp_path / "two")
    path = model / "reference.json"
    reference = json.loads(path.read_text())
    path.write_text(json.dumps({**reference, "name": "kws_other", "model_hash": "00" * 32}))
    code, report = run_cli(model)
    exports = report["stages"]["exports"]
    assert code != 0 and "model_hash is not that of model_int8.tflite" in exports["first_mismatch"], exports
    # another model's headers beside this one's, which flash would refuse to build
    model = copy_model(tmp_path / "three")
    shutil.copy(model / "include" / "td_model_kws.h", model / "include" / "td_model_old.h")
    code, report = run_cli(model)
    exports = report["stages"]["exports"]
    assert code != 0 and "include/td_model_old.h: another export beside this one" in exports["first_mismatch"], exports


def test_a_model_of_another_class_count_put_over_the_export_is_one_line_not_a_traceback(tmp_path):
    """Trial 14 put another adopted model over a folder's .tflite: verify carried on into the
    monitor stage and stopped with a ValueError's traceback; flash names the mismatch in one line."""
    model = copy_model(tmp_path)
    shutil.copy(firmware.REPO_ROOT / "models" / "plant" / "model_int8.tflite", model / "model_int8.tflite")
    from tinydrift.cli.main import main

    result = CliRunner().invoke(main, ["verify", str(model), "--samples", str(SAMPLES)])
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit), result.output
    assert result.output == (f"error: {model / 'model_int8.tflite'}: 5 classes, where reference.json holds a monitor of "
                             f"12 and 12 labels: it is not the model the folder was exported from; run `tinydrift "
                             f"export --model {model}` again\n")


def test_another_models_monitor_header_is_an_exports_mismatch_not_a_compiler_dump(tmp_path):
    """The plant model's monitor header in the keyword folder does not compile with the
    keyword name: verify once stopped with gcc's 20 lines, before the exports stage it
    promises."""
    from tinydrift.firmware import REPO_ROOT

    model = copy_model(tmp_path)
    shutil.copy(REPO_ROOT / "models" / "plant" / "include" / "td_monitor_config_plant.h",
                model / "include" / "td_monitor_config_kws.h")
    code, report = run_cli(model)
    exports = report["stages"]["exports"]
    assert code != 0 and exports["mismatches"] == 1 and "td_monitor_config_kws.h line" in exports["first_mismatch"]
    assert report["stages"]["monitor"]["mismatches"] == 0
    assert report["stages"]["monitor"]["note"].endswith("C built with a header emitted from reference.json")


def test_a_monitor_header_of_an_older_abi_is_named_as_such(tmp_path):
    """A folder exported before the monitor's ABI changed: its header's first differing line
    is the config hash, which said nothing of why."""
    model = copy_model(tmp_path)
    header = model / "include" / "td_monitor_config_kws.h"
    header.write_text(re.sub(r"(?m)^#if TD_MONITOR_ABI_VERSION != \d+$", "#if TD_MONITOR_ABI_VERSION != 6",
                             header.read_text()))
    code, report = run_cli(model)
    exports = report["stages"]["exports"]
    assert code != 0 and exports["mismatches"] == 1, exports
    assert "td_monitor_config_kws.h: generated for the drift monitor's ABI version 6" in exports["first_mismatch"]
    assert exports["note"].startswith("run `tinydrift export --model")


def test_broken_front_end_c_is_caught_in_the_front_end_stage(tmp_path):
    sources, include_dirs, defines = firmware.frontend_build_inputs()
    ours = {s.name for s in firmware.stage_sources("frontend")}
    copied = []
    for src in sources:
        if src.name in ours:
            shutil.copy(src, tmp_path / src.name)
            copied.append(tmp_path / src.name)
    int8_map = tmp_path / "td_frontend_int8.c"
    text = int8_map.read_text()
    assert "#define TD_FRONTEND_INT8_SCALE_DEN 666" in text
    int8_map.write_text(text.replace("#define TD_FRONTEND_INT8_SCALE_DEN 666", "#define TD_FRONTEND_INT8_SCALE_DEN 667"))
    library = firmware.compile_host(
        copied + [s for s in sources if s.name not in ours], include_dirs=[tmp_path, *include_dirs], defines=defines
    )
    report = verify_model(MODEL, samples=6, frontend_library=library).to_dict()
    assert report["ok"] is False
    assert report["stages"]["frontend"]["mismatches"] > 0
    assert report["stages"]["model"]["mismatches"] == 0  # the model runs on the host features
    assert report["stages"]["monitor"]["mismatches"] == 0


def test_without_clip_sets_it_synthesizes_and_says_so(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(verify_mod, "DEFAULT_CLIP_SET", Path("no/such/set.npz"))
    monkeypatch.setattr(verify_mod, "SHARED_DATA", Path("no/such/folder"))
    report = verify_model(MODEL, samples=10, stream_length=1200)
    assert "synthesized" in report.source
    assert report.ok, verify_mod.format_report(report)
    assert report.stages["frontend"].inputs == 10


def test_synthesized_clips_span_silence_to_clipping():
    clips = verify_mod.synthesized_clips(20, np.random.default_rng(0))
    assert clips.shape == (20, 16000) and clips.dtype == np.int16
    peaks = np.abs(clips.astype(np.int32)).max(axis=1)
    assert peaks.min() < 20 and peaks.max() >= 32767


def test_missing_reference_is_a_user_error(tmp_path):
    (tmp_path / "empty").mkdir()
    result = CliRunner().invoke(verify, [str(tmp_path / "empty")])
    assert result.exit_code != 0
    assert "reference.json" in str(result.exception)


def test_real_recordings_from_a_wav_folder():
    folder = firmware.REPO_ROOT.parent / "shared" / "data" / "speech_commands_v0.01_subset"
    if not folder.is_dir():
        pytest.skip("../shared/data not present")
    code, report = run_cli(MODEL, "--data", folder)
    assert code == 0, report
    assert "recordings in" in report["source"] and report["stages"]["frontend"]["inputs"] == SAMPLES
