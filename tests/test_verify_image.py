"""`tinydrift verify` for a camera model: the generated model C against TFLite Micro, the
image summary's C against the twin, the monitor's C against the twin, each on its own, and
a broken stage named as that stage."""

from __future__ import annotations

import json
import shutil

from click.testing import CliRunner

from tinydrift.cli.pipeline import verify
from tinydrift.pipeline.verify import IMAGE_STAGES, verify_model
from tinydrift.target.host_monitor import MONITOR_SRC

from conftest import REPO_ROOT

PLANT = REPO_ROOT / "models" / "plant"


def test_camera_model_is_bit_exact_in_every_image_stage():
    result = CliRunner().invoke(verify, [str(PLANT), "--json", "--samples", "8"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert list(report["stages"]) == list(IMAGE_STAGES)
    stages = report["stages"]
    assert stages["model"]["inputs"] == 16 and stages["model"]["elements"] == 16 * 5
    assert stages["summary"]["inputs"] == 16 and stages["summary"]["elements"] == 16 * 36
    assert stages["monitor"]["inputs"] > 3000
    assert all(s["mismatches"] == 0 for s in stages.values()), stages


def test_broken_image_summary_c_is_named_as_the_summary_stage(tmp_path):
    """td_summarize_image rounding its block means down instead of half up: only the summary
    stage differs (the model runs before it, the monitor stage reads the twin's summaries)."""
    broken = tmp_path / "monitor"
    shutil.copytree(MONITOR_SRC, broken)
    source = broken / "td_summarize_image.c"
    text = source.read_text()
    rounding = "sum * (1 << TD_SUMMARY_FRAC_BITS) + count / 2, count)"
    assert rounding in text
    source.write_text(text.replace(rounding, "sum * (1 << TD_SUMMARY_FRAC_BITS), count)"))
    report = verify_model(PLANT, samples=6, monitor_dir=broken).to_dict()
    assert report["ok"] is False
    assert report["stages"]["summary"]["mismatches"] > 0 and report["stages"]["summary"]["first_mismatch"]
    assert report["stages"]["model"]["mismatches"] == 0 and report["stages"]["monitor"]["mismatches"] == 0
