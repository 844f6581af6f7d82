"""`tinydrift export` for the camera model: the image input summary, reference statistics
and thresholds calibrated on drawn leaves, and a monitor that stays quiet on the leaves it
was calibrated for and alarms when the lens is smudged."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from click.testing import CliRunner

from helpers_tflite import tflite_models
from tinydrift.cli import main
from tinydrift.data.camera_scenarios import smudged
from tinydrift.data.imageset import ImageSet
from tinydrift.data.leaves import PlantConfig, generate_split
from tinydrift.model.runtimes import run_tflm
from tinydrift.modeldir import INT8_MODEL, ModelDir
from tinydrift.monitor.config import ALARM_DATA_DRIFT, MonitorConfig
from tinydrift.monitor.streams import bootstrap_indices
from tinydrift.monitor.twin import MonitorTwin, image_summary_length, run_events, summarize_image
from tinydrift.pipeline.export import IMAGE_SUMMARY_GRID, SMUDGE_SIGMA, export
from tinydrift.target.host_monitor import CMonitor

from conftest import REPO_ROOT

PLANT_MODEL = ModelDir(REPO_ROOT / "models" / "plant")
# 25 leaves a class for ref, 20 for test, each also flipped and turned (8 views, as training
# augments): the 1,000 reference images an image export needs from 125 drawn leaves.
QUICK_DATA = PlantConfig(seed=21, images_per_class={"ref": 25, "test": 20})
TARGET_ARL0 = 5_000  # small, so the export's ARL0 check (100 x the target) stays quick


def eight_views(images: ImageSet) -> ImageSet:
    """Each image in its 8 flips and quarter turns. A view of a plant counts as a plant of its
    own (group), so calibration resamples as many groups as a set 8 times larger holds."""
    views = [np.rot90(images.images, k, axes=(1, 2)) for k in range(4)]
    views += [v[:, :, ::-1] for v in views]
    domain = {k: np.tile(v, 8) for k, v in images.domain.items()}
    domain["group"] = domain["group"] * 8 + np.repeat(np.arange(8), len(images))
    return ImageSet(images=np.ascontiguousarray(np.concatenate(views)), labels=np.tile(images.labels, 8),
                    label_names=images.label_names, domain=domain)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("leaves")
    splits = {s: eight_views(generate_split(QUICK_DATA, s, workers=2)) for s in ("ref", "test")}
    for split, images in splits.items():
        images.save(data_dir / f"{split}.npz")
    model_dir = tmp_path_factory.mktemp("plant")
    shutil.copy(PLANT_MODEL.int8_model, model_dir / INT8_MODEL)
    reference = export(model_dir, data_dir, name="plant", target_arl0=TARGET_ARL0, simulated_inferences=300_000,
                       log=lambda _: None)
    return ModelDir(model_dir), reference, splits["test"]


def test_export_writes_the_image_monitor(exported):
    folder, reference, _ = exported
    folder.require_exported()
    config = MonitorConfig.of_model(folder)
    assert config.n_summary == image_summary_length(IMAGE_SUMMARY_GRID) == 36
    assert config.n_classes == 5 and reference["labels"][0] == "healthy"
    assert reference["input_summary"] == {"kind": "image", "grid": 3, "length": 36}
    header = folder.reference_header("plant").read_text()
    assert "#define TD_PLANT_SUMMARY_GRID 3" in header and "#define TD_PLANT_IMAGE_HEIGHT 48" in header
    card = folder.model_card.read_text()
    assert "td_summarize_image" in card and "Smudged lens" in card
    # The export's own check on held-out leaves: the smudge is found in nearly every stream.
    assert reference["smudged_detection"]["detection_rate"] >= 0.9
    assert reference["accuracy"]["test"]["tflm"]["accuracy"] > reference["accuracy"]["smudged"]["tflm"]["accuracy"]
    # The camera's sensor levels: no drawn leaf reads as a flat or saturated frame, and none
    # repeats the one before it.
    assert (config.clip_level, config.stuck_variance, config.silence_variance) == (127, 0, 4)
    twin = MonitorTwin(config, 1)
    _, _, test = exported
    flags = [int(twin.sensor_image_update(frame[None])["flags"][0]) for frame in test.features[:300]]
    assert not any(flags), sorted(set(flags))
    # The shipped header, compiled with the monitor's C, gives the twin's state size budget.
    assert CMonitor(config, header=folder.monitor_config_header("plant")).state_size <= 1024


def test_exported_monitor_is_quiet_then_alarms_on_a_smudged_lens(exported):
    """Streams of whole plants' leaves: no alarm while commissioning, and afterwards false
    alarms at about the calibrated rate; then the same leaves blurred, and every stream that
    was quiet alarms within a few dozen inferences. The C built from the shipped header
    agrees with the twin on one such stream."""
    folder, _, test = exported
    config = MonitorConfig.of_model(folder)
    model = folder.read_int8()
    blurred = smudged(test, SMUDGE_SIGMA)
    sets = [(summarize_image(s.features, IMAGE_SUMMARY_GRID), run_tflm(model, s.features)) for s in (test, blurred)]
    rng = np.random.default_rng(4)
    n_streams, before, after = 16, 600, 300
    order = [bootstrap_indices(test.domain["group"], n_streams, length, rng) for length in (before, after)]
    twin = MonitorTwin(config, n_streams)
    alarms = np.zeros((before + after, n_streams), dtype=np.int64)
    for t in range(before + after):
        phase, step = (0, t) if t < before else (1, t - before)
        picked = order[phase][:, step]
        alarms[t] = twin.update(sets[phase][0][picked], sets[phase][1][picked], full=False)["alarms"]
    assert not alarms[:config.commission_n].any()
    quiet = alarms[before - 1] == 0
    # 16 streams x 300 inferences after commissioning at ARL0 5,000: ~1 false alarm expected.
    assert quiet.sum() >= n_streams - 4, alarms[before - 1]
    assert np.all(alarms[-1][quiet] != 0), "a smudged lens went unnoticed"
    # The input summary sees it too (its crispness), not only the outputs' confidence.
    assert np.mean((alarms[-1][quiet] & ALARM_DATA_DRIFT) != 0) >= 0.75, alarms[-1]
    delays = np.argmax(alarms[before:, quiet] != 0, axis=0) + 1
    assert np.median(delays) < 100, delays

    stream = np.concatenate([order[0][0], order[1][0] + len(test)])
    summaries = np.concatenate([sets[0][0], sets[1][0]])
    probs = np.concatenate([sets[0][1], sets[1][1]])
    events = np.stack([np.zeros(len(stream)), stream, np.zeros(len(stream))], axis=1).astype(np.int32)
    c_rows = CMonitor(config, header=folder.monitor_config_header("plant")).run_events(events, summaries, probs)
    assert np.array_equal(c_rows, run_events(config, events, summaries, probs))


@pytest.mark.parametrize("channels", [pytest.param(1, marks=pytest.mark.slow), 4])
def test_export_refuses_an_image_model_that_is_not_rgb(tmp_path, channels):
    spec = {"kind": "dense", "input_shape": [48, 48, channels], "flatten": True, "units": 5,
            "activation": "softmax", "use_bias": True, "seed": channels}
    (tmp_path / INT8_MODEL).write_bytes(tflite_models([spec])[0])
    result = CliRunner().invoke(main, ["export", "--model", str(tmp_path), "--data", str(tmp_path)])
    assert result.exit_code != 0 and "Traceback" not in result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and f"{channels} channel" in lines[0] and "a pixel, not RGB" in lines[0], result.output
    assert not (tmp_path / "reference.json").exists() and not (tmp_path / "include").exists()
