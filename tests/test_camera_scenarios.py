"""The drift bench's camera scenarios: each transform changes what it names (and what the
device's image summary reads), leaf populations hold only the attributes they select, the
concept drift relabels only the leaves that got the new sign, a stuck camera holds one frame,
and the bench on the plant model finds a smudged lens and a dead camera by their input and
the new sign by label feedback alone."""

from __future__ import annotations

import numpy as np
import pytest

from tinydrift.data import camera_scenarios as cs
from tinydrift.data.imageset import ImageSet, pixels_to_int8
from tinydrift.data.labels import PLANT_LABELS
from tinydrift.errors import TinydriftError
from tinydrift.monitor.twin import summarize_image

GRID = 3
SPREAD, SHARPNESS, CRISPNESS = 27, 30, 33  # offsets of the per-channel terms in the summary


@pytest.fixture(scope="module")
def leaves() -> ImageSet:
    return cs.draw_population(cs.DEPLOYMENT, 8, seed=7, workers=1)


def _summary(images: np.ndarray) -> np.ndarray:
    return summarize_image(pixels_to_int8(images), GRID).astype(np.float64)


def test_leaf_populations_hold_what_they_select(leaves):
    assert np.bincount(leaves.labels, minlength=5).tolist() == [8] * len(PLANT_LABELS)
    bench = cs.draw_population(cs.CONTROLS[1], 3, seed=7, workers=1)
    assert set(bench.domain["background"]) == {"bench"} and np.bincount(bench.labels).tolist() == [3] * 5
    dim = cs.draw_population(cs.LeafPopulation("dim", where=(("brightness", (0.65, 0.8)),)), 2, seed=7, workers=1)
    assert dim.domain["brightness"].min() >= 0.65 and dim.domain["brightness"].max() <= 0.8
    with pytest.raises(TinydriftError, match="keeps 0 leaves"):
        cs.draw_population(cs.LeafPopulation("none", where=(("brightness", (2.0, 3.0)),)), 2, seed=7, workers=1)
    again = cs.draw_population(cs.DEPLOYMENT, 8, seed=7, workers=1)
    assert np.array_equal(again.images, leaves.images), "a population is deterministic from its seed"


def test_camera_transforms_change_what_they_name(leaves):
    rng = np.random.default_rng(0)
    x = leaves.images
    base = _summary(x)
    for sigma in (1.0, 2.0):
        blurred = _summary(cs.smudge(x, rng, sigma))
        assert np.all(blurred[:, SHARPNESS:SHARPNESS + 3] < base[:, SHARPNESS:SHARPNESS + 3])
    assert np.mean(_summary(cs.smudge(x, rng, 3.0))[:, SHARPNESS]) < np.mean(_summary(cs.smudge(x, rng, 1.0))[:, SHARPNESS])
    low = cs.low_resolution(x, rng, 3.0)
    assert low.shape == x.shape and np.mean(_summary(low)[:, CRISPNESS:CRISPNESS + 3]) < np.mean(base[:, CRISPNESS:CRISPNESS + 3])
    assert abs(float(low.mean()) - float(x.mean())) < 2.0, "a coarser sensor keeps the light"
    warm = cs.colour_cast(x, rng, (1.3, 1.0, 0.75)).astype(float).mean(axis=(0, 1, 2))
    plain = x.astype(float).mean(axis=(0, 1, 2))
    assert warm[0] > 1.2 * plain[0] and warm[1] == pytest.approx(plain[1], abs=0.5) and warm[2] < 0.8 * plain[2]
    assert cs.exposure(x, rng, -1.0).astype(float).mean() == pytest.approx(x.astype(float).mean() / 2, rel=0.02)
    noisy = cs.sensor_noise(x, rng, 12.0).astype(float) - x
    inside = (x > 40) & (x < 215)  # away from saturation
    assert noisy[inside].std() == pytest.approx(12.0, rel=0.05)
    err = {q: np.abs(cs.jpeg(x, rng, q).astype(float) - x).mean() for q in (8, 25, 90)}
    assert err[8] > err[25] > err[90] > 0
    assert not cs.dead(x, rng, None).any()
    # blackouts: whole frames black, about the share asked, the rest untouched
    frames = np.repeat(x[:1], 2000, axis=0)
    blinking = cs.TRANSFORMS["blackouts"](frames, rng, 0.2)
    black = ~blinking.reshape(len(frames), -1).any(axis=1)
    assert 0.17 < black.mean() < 0.23 and np.array_equal(blinking[~black], frames[~black])
    # transforms compose: a chain is its steps in order
    steps = (("low_resolution", 2.0), ("exposure", -1.0))
    assert np.array_equal(cs.chain(x, rng, steps), cs.exposure(cs.low_resolution(x, rng, 2.0), rng, -1.0))


def test_the_new_sign_relabels_only_the_leaves_it_marks(leaves):
    s = next(s for s in cs.SCENARIOS if s.name == "pale_spots_now_leaf_spot")
    drifted = s.apply(leaves, seed=3)
    marked = cs.selected(leaves, s.new_sign.where) & (leaves.labels == 0)
    assert marked.any() and not marked.all()
    assert np.all(drifted.labels[marked] == PLANT_LABELS.index("leaf_spot"))
    assert np.array_equal(drifted.labels[~marked], leaves.labels[~marked])
    changed = np.any(drifted.images != leaves.images, axis=-1)
    assert not changed[~marked].any(), "only the marked leaves carry the sign"
    # a few small spots: a few percent of a marked leaf's pixels, brighter than before
    share = changed[marked].mean(axis=(1, 2))
    assert np.all((share > 0.003) & (share < 0.06))
    assert drifted.images[marked].astype(float).mean() > leaves.images[marked].astype(float).mean()


def test_a_stuck_camera_holds_one_frame_per_stream():
    from tinydrift.pipeline.drift_pools import BenchSettings, Pool, make_streams

    n = 40
    pool = Pool("p", np.zeros((n, 36), np.int16), np.zeros((n, 5), np.int8), np.arange(n) % 5,
                np.arange(n) // 4, np.zeros((n, 0, 3), np.int64))
    settings = BenchSettings(before=20, after=30)
    stuck = next(s for s in cs.SCENARIOS if s.name == "stuck_camera")
    streams = make_streams(stuck, pool, pool, settings, 6, None, 1)
    assert np.all(streams.after == streams.after[:, :1]) and len(set(streams.after[:, 0])) > 1
    moving = make_streams(cs.SCENARIOS[0], pool, pool, settings, 6, None, 1)
    assert not np.all(moving.after == moving.after[:, :1])


def test_a_camera_model_gets_the_camera_scenarios():
    from tinydrift.pipeline.drift_bench import bench_kind, bench_settings
    from tinydrift.pipeline.drift_pools import CameraPoolMaker

    from tinydrift.data.labels import PLANT_LABELS
    from tinydrift.errors import TinydriftError

    model = open("models/plant/model_int8.tflite", "rb").read()
    scenarios, kind, maker = bench_kind(model, list(PLANT_LABELS), "models/plant")
    assert scenarios is cs.SCENARIOS and kind is cs.CameraScenario and maker is CameraPoolMaker
    # the bench draws the plant set's leaves: a camera model of other classes cannot be measured on them
    with pytest.raises(TinydriftError, match="the bench draws the plant set's leaves"):
        bench_kind(model, ["cat", "dog", "bird", "fish", "frog"], "models/pets")
    names = {s.name for s in scenarios}
    assert {"lens_smudge_2px", "low_resolution_x2", "warm_cast", "underexposed_1stop", "sensor_noise_25", "jpeg_q8",
            "dead_camera", "stuck_camera", "pale_spots_now_leaf_spot"} <= names
    assert {s.family for s in scenarios if s.expected is None} == {"control"}
    # the camera model's 5 classes get pools as large as the keyword model's 12
    quick = bench_settings("models/plant", True)
    assert quick.clips_per_class * 5 == 300 and quick.control_clips_per_class == 240


@pytest.mark.slow  # 75 s measured on 2 loaded cores: draws ~3,200 leaves, runs the plant model's C on them
def test_bench_finds_a_smudged_lens_and_a_dead_camera_and_the_new_sign_only_by_labels(tmp_path):
    from tinydrift.pipeline.drift_bench import BenchSettings, run_drift_bench, write_outputs

    settings = BenchSettings(clips_per_class=60, control_clips_per_class=120, calibration_clips_per_class=300,
                             n_streams=30, arl_inferences=200_000, compare_arl0=500, compare_streams=6)
    result = run_drift_bench("models/plant", settings, cache=tmp_path / "pools", log=lambda m: None, baselines=False,
                             only=("lens_smudge_2px", "dead_camera", "pale_spots_now_leaf_spot", "bench_background"))
    smudge, dead, concept = (result.scenarios[n] for n in ("lens_smudge_2px", "dead_camera", "pale_spots_now_leaf_spot"))
    for row in (smudge, dead):
        assert row["accuracy_drop"] >= 0.05
        assert row["detected"] >= 0.9 and row["median_delay"] <= 200 and row["alarm_type_correct"] >= 0.8
        assert row["false_alarm_before_change"] <= 0.1
    # A dead camera is a sensor fault on its tenth black frame (the config's persistence).
    assert dead["median_delay"] == 10 and dead["alarm_type_correct"] == 1.0
    assert concept["accuracy_drop"] >= 0.05 and concept["detected"] >= 0.3
    assert set(concept["alarm_types"]) == {"ERROR_RATE"}, "only label feedback may see a moved boundary"
    assert set(result.controls) == {"bench_background", "deployment"}
    assert result.controls["bench_background"]["inferences"] == 200_000
    json_path, md_path = write_outputs(result, tmp_path)
    assert "| pale_spots_now_leaf_spot | ERROR_RATE |" in md_path.read_text()
