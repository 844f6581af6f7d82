"""The fleet's false-alarm budget: D devices x R inferences a day / F false alarms a day is
each device's ARL0, and export calibrates for it and records it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from tinydrift.cli.main import main
from tinydrift.errors import TinydriftError
from tinydrift.monitor.calibrate import FleetBudget

REPO_ROOT = Path(__file__).resolve().parents[1]


def test_per_device_arl0_is_devices_times_inferences_over_false_alarms():
    budget = FleetBudget(5000, 86_400, 10)
    assert budget.per_device_arl0 == 43_200_000
    # the fleet's false alarms a day at that ARL0 come back to the budget
    assert budget.devices * budget.inferences_per_day / budget.per_device_arl0 == 10
    assert budget.line() == ("5,000 devices x 86,400 inferences a day / 10 false alarms a day = "
                             "ARL0 43,200,000 per device")
    assert FleetBudget(1, 100, 10).per_device_arl0 == 10
    with pytest.raises(TinydriftError, match="allow fewer false alarms"):
        FleetBudget(1, 100, 11)
    with pytest.raises(TinydriftError, match="at least one device"):
        FleetBudget(0, 100, 1)


@pytest.mark.parametrize("args, says", [
    (["--fleet-size", "10"], "together"),
    (["--fleet-false-alarms-per-day", "1"], "together"),
    (["--fleet-size", "10", "--fleet-false-alarms-per-day", "1", "--target-arl0", "1000"], "not both"),
    (["--fleet-size", "1", "--fleet-false-alarms-per-day", "100", "--inferences-per-day", "100"],
     "allow fewer false alarms"),
])
def test_export_refuses_a_half_or_conflicting_budget_in_one_line(tmp_path, args, says):
    result = CliRunner().invoke(main, ["export", "--model", str(tmp_path), "--data", str(tmp_path), *args])
    assert result.exit_code != 0, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception  # no traceback
    errors = [line for line in result.output.splitlines() if line.lower().startswith("error")]
    assert len(errors) == 1 and says in errors[0], result.output


def test_a_budget_beyond_what_calibration_can_simulate_is_refused_before_any_work(tmp_path):
    """The help's own example of 5,000 devices once ran the model and calibration for minutes,
    then failed with "simulate more inferences" (which export had no option for); with more
    levels than it could place it met its target only at x0.066."""
    import time

    started = time.monotonic()
    result = CliRunner().invoke(main, ["export", "--model", str(REPO_ROOT / "models" / "kws"), "--data", str(tmp_path),
                                       "--fleet-size", "5000", "--fleet-false-alarms-per-day", "10"])
    assert result.exit_code == 1 and time.monotonic() - started < 10
    assert result.output.strip().splitlines() == [
        "error: ARL0 43,200,000 needs at least 345,600,000 simulated inferences (8 per inference of the target) and "
        "8,000,000 were asked for (8,000,000 took 2 minutes and 2.3 GB of memory on 2 cores): raise --simulated or "
        "lower the fleet's ARL0 (fewer devices, more false alarms a day)"]


def test_calibration_refuses_fewer_simulated_inferences_than_the_target_needs():
    from tinydrift.monitor.calibrate import TooFewSimulated, calibrate_thresholds

    with pytest.raises(TooFewSimulated, match="ARL0 100,000 needs at least 800,000 simulated inferences"):
        calibrate_thresholds(np.zeros((10, 4)), np.full((10, 2), 0.5), np.arange(10), target_arl0=100_000,
                             n_inferences=799_999)


def test_export_help_shows_the_arithmetic():
    text = CliRunner().invoke(main, ["export", "--help"]).output
    assert "ARL0 = D x R / F" in text and "= ARL0 43,200,000" in text
    # how much of a user's own data the reference needs, as the export's refusal computes it
    from tinydrift.pipeline.export import FOLDER_TEST_SHARE, model_input
    from tinydrift.model.quantize import INPUT_SHAPE

    flat = " ".join(text.split())
    for shape, what in ((INPUT_SHAPE, "recordings"), ((1, 48, 48, 3), "images")):
        need = model_input(shape).min_reference
        assert f"{need:,} {'clips' if what == 'recordings' else 'images'}" in flat
        assert f"about {round(need / (1 - FOLDER_TEST_SHARE), -1):,.0f} {what}" in flat


@pytest.mark.slow  # a real export: calibration and its ARL0 check (~2 min)
def test_export_calibrates_for_the_fleet_budget_and_records_it(tmp_path):
    from tinydrift.data.synth import KwsConfig, build_kws

    data = tmp_path / "data"
    build_kws(data, KwsConfig(seed=3, clips_per_class={"train": 1, "val": 1, "ref": 170, "test": 15, "accent": 15}))
    model = tmp_path / "kws"
    model.mkdir()
    shutil.copy(REPO_ROOT / "models" / "kws" / "model_int8.tflite", model)
    # 20 devices x 500 inferences a day / 5 false alarms a day: ARL0 2,000 per device
    result = CliRunner().invoke(main, ["export", "--model", str(model), "--data", str(data), "--fleet-size", "20",
                                       "--inferences-per-day", "500", "--fleet-false-alarms-per-day", "5"])
    assert result.exit_code == 0, result.output
    calibration = json.loads((model / "reference.json").read_text())["calibration"]
    assert calibration["target_arl0"] == 2000
    assert calibration["fleet_budget"] == {"devices": 20, "inferences_per_day": 500, "false_alarms_per_day": 5,
                                           "per_device_arl0": 2000}
    card = (model / "README.md").read_text()
    assert "calibrated for ARL0 2,000 inferences" in card and "20 devices x 500 inferences a day" in card
