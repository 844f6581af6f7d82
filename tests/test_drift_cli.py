"""`tinydrift drift` commands end to end on synthetic samples."""

from __future__ import annotations

import json
import re
import shutil

import numpy as np
import pytest
from click.testing import CliRunner

from tinydrift.monitor import synthetic
from tinydrift.cli.drift import drift
from tinydrift.monitor.config import MonitorConfig
from tinydrift.errors import TinydriftError
from tinydrift.firmware import REPO_ROOT


def invoke(args):
    try:
        return CliRunner().invoke(drift, args, catch_exceptions=False)
    except TinydriftError as e:  # the main group turns these into one line; here, fail loudly
        raise AssertionError(str(e)) from e


def test_calibrate_header_verify_and_check(tmp_path):
    data = synthetic.synthetic_dataset(50, 60, seed=1)
    samples = tmp_path / "ref.npz"
    np.savez(samples, summaries=data["summaries"], probs=data["probs"], groups=data["groups"], labels=data["labels"])
    # --commission 0: at a target of 500, the 300 inferences a device commissions on after each
    # alarm would hide how loud the broken levels below are
    result = invoke(["calibrate", str(samples), "--out", str(tmp_path / "out"), "--target-arl0", "500", "--n-inferences",
                     "150000", "--commission", "0"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)  # the JSON on stdout; what was written is said on stderr
    assert f"wrote {tmp_path / 'out' / 'td_monitor_config_kws.h'} and " in result.stderr
    assert report["target_arl0"] == 500 and set(report["scores"]) == {"mean", "var", "confidence", "entropy", "label"}
    config_json = tmp_path / "out" / "monitor_config_kws.json"
    header = (tmp_path / "out" / "td_monitor_config_kws.h").read_text()
    assert "td_monitor_config_kws" in header
    config = MonitorConfig.from_dict(json.loads(config_json.read_text()))
    assert config.whiten_q12 is not None and config.metadata["calibration"]["target_arl0"] == 500

    result = invoke(["header", str(config_json), str(tmp_path / "again.h")])
    assert result.output.strip() == f"{tmp_path / 'again.h'} (td_monitor_config_again)"
    assert result.exit_code == 0 and (tmp_path / "again.h").read_text().replace("again", "kws").replace("AGAIN", "KWS") == header

    result = invoke(["verify", str(config_json), "--inferences", "1500"])
    assert result.exit_code == 0 and result.output.strip().endswith(", 0 differ")

    other = synthetic.synthetic_dataset(50, 60, seed=2)
    held_out = tmp_path / "held_out.npz"
    np.savez(held_out, summaries=other["summaries"], probs=other["probs"], groups=other["groups"])
    result = invoke(["check-arl", str(config_json), str(held_out), "--n-inferences", "20000"])
    assert result.exit_code == 0, result.output
    checked = json.loads(result.output.split("\nerror")[0])
    assert checked["inferences"] >= 20000
    assert "fixed_centres" not in checked  # no commissioning, so no centres refined after it
    # Centres refined after commissioning: the band holds the levels as they were set, with the
    # centres fixed; the config as it is only has to stay above its lower end.
    refined = json.loads(config_json.read_text()) | {"commission_n": 100, "centre_n": 800}
    refined_json = tmp_path / "refined.json"
    refined_json.write_text(json.dumps(refined))
    result = invoke(["check-arl", str(refined_json), str(held_out), "--n-inferences", "20000"])
    checked = json.loads(result.output.split("\nerror")[0])
    fixed = checked["fixed_centres"]
    assert fixed["inferences"] == checked["inferences"] and fixed["alarms"] >= 0
    judged = 0.5 <= fixed["ratio_to_target"] <= 2 and checked["ratio_to_target"] >= 0.5
    assert (result.exit_code == 0) == judged, result.output
    # The failing path: drift levels cut twentyfold alarm far more often than the target.
    broken = json.loads(config_json.read_text())
    broken["score_drift"] = [max(1, v // 20) for v in broken["score_drift"]]
    broken["score_warning"] = [min(w, d) for w, d in zip(broken["score_warning"], broken["score_drift"])]
    broken_json = tmp_path / "broken.json"
    broken_json.write_text(json.dumps(broken))
    result = invoke(["check-arl", str(broken_json), str(held_out), "--n-inferences", "20000"])
    assert result.exit_code == 1 and "outside x0.5 to x2" in result.output
    # An estimate outside the band whose interval still reaches into it: inconclusive, not a
    # fail (a few more alarms by chance would have passed it).
    seen = None
    for cut in (2, 3, 4):
        loud = json.loads(config_json.read_text())
        loud["score_drift"] = [max(1, v // cut) for v in loud["score_drift"]]
        loud["score_warning"] = [min(w, d) for w, d in zip(loud["score_warning"], loud["score_drift"])]
        loud_json = tmp_path / f"loud{cut}.json"
        loud_json.write_text(json.dumps(loud))
        for n in (1500, 3000, 6000):
            result = invoke(["check-arl", str(loud_json), str(held_out), "--n-inferences", str(n)])
            counted = json.loads(result.output.split("\nerror")[0])
            if counted["ratio_to_target"] < 0.5 and counted["ci95"][1] > 250 and counted["alarms"] > 3:
                seen = counted
                break
        if seen:
            break
    assert seen is not None, "no loud config with an interval reaching into the band"
    assert result.exit_code == 1 and "too few to compare with the target 500" in result.output, result.output
    # Too few inferences for an alarm: inconclusive, not "x inf the target".
    result = invoke(["check-arl", str(config_json), str(held_out), "--n-inferences", "1"])
    assert result.exit_code == 1 and "too few to compare with the target 500" in result.output, result.output
    # ...and its JSON strict: no alarm is a null ARL0, not Infinity, which JSON parsers refuse
    counted = json.loads(result.output.split("\nerror")[0], parse_constant=_not_json)
    assert counted["alarms"] == 0 and counted["arl0"] is None and counted["ratio_to_target"] is None
    # A handful of alarms (one, once, passed as "x2.0"): the interval spans the band on both sides.
    for n in (400, 800, 1500):
        result = invoke(["check-arl", str(config_json), str(held_out), "--n-inferences", str(n)])
        counted = json.loads(result.output.split("\nerror")[0])
        if 1 <= counted["alarms"] <= 3:
            break
    assert 1 <= counted["alarms"] <= 3, counted
    assert result.exit_code == 1 and f"{counted['alarms']} alarms in" in result.output, result.output
    assert "too few to compare with the target 500" in result.output
    assert "warning" not in result.stderr  # 3,000 samples of 50 groups: a check that means something
    # Ten samples replayed over and over read quieter than any population: said, not hidden.
    tiny = tmp_path / "tiny.npz"
    np.savez(tiny, summaries=other["summaries"][:10], probs=other["probs"][:10], groups=other["groups"][:10])
    result = CliRunner().invoke(drift, ["check-arl", str(config_json), str(tiny), "--n-inferences", "20000"])
    assert "warning: 10 samples of 1 group; streams repeat them" in result.stderr, result.stderr


def _not_json(constant: str):
    raise ValueError(f"{constant} is no JSON value")


def test_unreadable_config_is_a_user_error(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    try:
        CliRunner().invoke(drift, ["verify", str(bad)], catch_exceptions=False)
    except TinydriftError as e:
        assert "bad.json" in str(e)
    else:
        raise AssertionError("expected a TinydriftError")


@pytest.mark.slow  # ~13 s (the default tier stood at 21 minutes)
def test_heldout_reports_every_pair(tmp_path):
    paths = []
    for seed in (1, 2):
        data = synthetic.synthetic_dataset(45, 50, seed=seed)
        path = tmp_path / f"s{seed}.npz"
        np.savez(path, summaries=data["summaries"], probs=data["probs"], groups=data["groups"], labels=data["labels"])
        paths.append(str(path))
    result = invoke(["heldout", *paths, "--target-arl0", "500", "--splits", "1", "--n-inferences", "60000"])
    assert result.exit_code == 0, result.output

    def refuse(constant):  # Infinity or NaN: not JSON, which strict readers refuse
        raise AssertionError(f"{constant} in heldout's output")

    report = json.loads(result.stdout, parse_constant=refuse)
    assert [p["pair"] for p in report["pairs"]] == ["ref->test", "test->ref", "split0"]
    assert all(p["alarms"] > 0 and p["ratio"] > 0 for p in report["pairs"])
    assert report["log_sd"] >= 0


@pytest.mark.skipif(shutil.which("arm-none-eabi-gcc") is None or shutil.which("qemu-system-arm") is None,
                    reason="needs arm-none-eabi-gcc and qemu-system-arm")
def test_cost_counts_the_project_monitor_s_instructions_and_state_as_the_readme_states(tmp_path):
    config_json = tmp_path / "monitor_config_kws.json"
    reference = json.loads((REPO_ROOT / "models" / "kws" / "reference.json").read_text())
    config_json.write_text(json.dumps(reference["monitor_config"]))
    result = invoke(["cost", str(config_json)])
    assert result.exit_code == 0, result.output
    cost = json.loads(result.output)
    # the model folder's reference.json serves as it is (its monitor_config), counted the same
    whole = invoke(["cost", str(REPO_ROOT / "models" / "kws" / "reference.json")])
    assert whole.exit_code == 0 and json.loads(whole.output) == cost, whole.output
    assert set(cost) == {"state_bytes", "commission_bytes", "instructions_per_update", "instructions_per_summarize",
                         "instructions_per_summarize_stream", "instructions_per_sensor320", "instructions_per_feedback",
                         "instructions_per_summarize_image48", "config_summary"}
    assert all(cost[k] > 0 for k in cost if k.startswith("instructions_per_"))
    # a keyword spotter's config: its device summarizes 49 frames x 40 channels and the window's loudness
    assert cost["config_summary"] == "summarize"
    # The device bench (whose figures the README quotes) sizes the state for this very configuration.
    bench = json.loads((REPO_ROOT / "docs" / "figures" / "bench_device.json").read_text())
    assert (cost["state_bytes"], cost["commission_bytes"]) == (bench["monitor_state_bytes"],
                                                               bench["monitor_commission_bytes"])


def test_an_image_set_goes_through_the_camera_model_for_heldout(tmp_path):
    """`drift heldout --model` once ran clip sets only: an image set (`tinydrift data plant`)
    lacked summaries and probs. Its images now go through the model and td_summarize_image,
    as the export sends them."""
    from tinydrift.cli.drift import _load_samples
    from tinydrift.data.imageset import ImageSet
    from tinydrift.data.labels import PLANT_LABELS
    from tinydrift.model.quantize import load_int8
    from tinydrift.model.runtimes import run_tflm
    from tinydrift.monitor.twin import summarize_image

    rng = np.random.default_rng(5)
    images = ImageSet(images=rng.integers(0, 256, (10, 48, 48, 3), dtype=np.uint8),
                      labels=np.arange(10, dtype=np.int16) % 5, label_names=PLANT_LABELS,
                      domain={"group": np.repeat(np.arange(5), 2)})
    images.save(tmp_path / "leaves.npz")
    model, _ = load_int8(REPO_ROOT / "models" / "plant")
    samples = _load_samples(tmp_path / "leaves.npz", model)
    assert np.array_equal(samples["summaries"], summarize_image(images.features, 3))
    assert samples["summaries"].shape == (10, 36) and samples["probs"].shape == (10, 5)
    assert np.array_equal(samples["probs"], run_tflm(model, images.features))
    assert samples["groups"].tolist() == np.repeat(np.arange(5), 2).tolist()
    assert samples["labels"].tolist() == images.labels.tolist()


def test_heldout_names_the_set_too_small_and_prints_strict_json(tmp_path):
    """A 40-image TEST was refused as 'need at least 1000, got 40' after REF's work had
    begun, reading as if REF were short; an image set without plant groups was a KeyError;
    a delay never reached printed as Infinity, which strict JSON readers refuse."""
    from tinydrift.cli.drift import _load_samples
    from tinydrift.data.imageset import ImageSet
    from tinydrift.data.labels import PLANT_LABELS
    from tinydrift.model.quantize import load_int8

    rng = np.random.default_rng(6)
    small = tmp_path / "small.npz"
    ImageSet(images=rng.integers(0, 256, (40, 48, 48, 3), dtype=np.uint8), labels=np.arange(40, dtype=np.int16) % 5,
             label_names=PLANT_LABELS, domain={}).save(small)
    model, _ = load_int8(REPO_ROOT / "models" / "plant")
    assert _load_samples(small, model)["groups"].tolist() == list(range(40))  # each image its own group
    with pytest.raises(AssertionError, match=r"small\.npz \(REF\) holds 40 samples; .* at least 1,000"):
        invoke(["heldout", str(small), str(small), "--model", str(REPO_ROOT / "models" / "plant")])
    # what heldout prints its result through
    from tinydrift.monitor.config import jsonable
    assert jsonable({"a": [float("inf"), 1.5], "b": np.float64("nan"), "c": 3}) == {"a": [None, 1.5], "b": None, "c": 3}


def test_heldout_refuses_sets_of_different_shapes(tmp_path):
    """REF of 40 summary values against TEST of 1 was a numpy traceback; a --drifted set of
    another shape was measured anyway, printing a detection rate for nonsense."""
    paths = {}
    for name, channels in (("ref", 40), ("test", 40), ("onechan", 1)):
        data = synthetic.synthetic_dataset(45, 50, seed=len(name))
        paths[name] = tmp_path / f"{name}.npz"
        np.savez(paths[name], summaries=data["summaries"][:, :channels], probs=data["probs"], groups=data["groups"],
                 labels=data["labels"])
    for args in ([paths["ref"], paths["onechan"]], [paths["ref"], paths["test"], "--drifted", paths["onechan"]]):
        with pytest.raises(AssertionError, match=r"the sets differ: REF has 40 summary values and 12 classes, .* 1 "
                                                 r"summary values and 12 classes; give sets of one model's"):
            invoke(["heldout", *map(str, args), "--target-arl0", "500", "--n-inferences", "60000"])


def test_calibrate_refuses_text_labels_one_group_and_writes_both_files_or_neither(tmp_path):
    """Text labels were a numpy traceback and fractional ones passed; one group calibrated
    happily to a rate that held nowhere; a folder in the JSON's place left the header alone."""
    data = synthetic.synthetic_dataset(50, 60, seed=1)
    base = dict(summaries=data["summaries"], probs=data["probs"], groups=data["groups"])
    cases = {"text": dict(base, labels=np.array(["yes"] * len(data["groups"]))),
             "half": dict(base, labels=data["labels"] + 0.5),
             "nan_groups": dict(base, groups=np.where(np.arange(len(data["groups"])) == 3, np.nan, 1.0)),
             "one_group": dict(base, groups=np.zeros(len(data["groups"]), np.int64))}
    said = {"text": "labels of <U3 (yes, yes, yes, ...); labels are class indices 0..11 (whole numbers)",
            "half": "labels are class indices 0..11 (whole numbers)", "nan_groups": "groups hold NaN",
            "one_group": "every sample is of one group"}
    for name, arrays in cases.items():
        np.savez(tmp_path / f"{name}.npz", **arrays)
        with pytest.raises(AssertionError, match=re.escape(said[name])):
            invoke(["calibrate", str(tmp_path / f"{name}.npz"), "--out", str(tmp_path / "out"),
                    "--n-inferences", "150000", "--target-arl0", "500"])
    np.savez(tmp_path / "good.npz", **base, labels=data["labels"])
    (tmp_path / "half_out" / "monitor_config_kws.json").mkdir(parents=True)
    result = CliRunner().invoke(drift, ["calibrate", str(tmp_path / "good.npz"), "--out", str(tmp_path / "half_out"),
                                        "--n-inferences", "150000", "--target-arl0", "500"])
    assert result.exit_code != 0
    assert not (tmp_path / "half_out" / "td_monitor_config_kws.h").exists()


def test_a_per_channel_field_cut_short_names_both_fields():
    """A ref_mean with one value removed was blamed on inv_std_q28, the field left intact."""
    reference = json.loads((REPO_ROOT / "models" / "kws" / "reference.json").read_text())["monitor_config"]
    short = len(reference["ref_mean"]) - 1
    with pytest.raises(TinydriftError, match=rf"inv_std_q28 must be a vector of {short} integers \(as many as ref_mean "
                                             r"holds"):
        MonitorConfig.from_dict({**reference, "ref_mean": reference["ref_mean"][:-1]})


def test_calibrate_makes_the_monitor_export_makes(tmp_path):
    """`drift calibrate` once gave a monitor without commissioning, winsorizing, speaker runs
    or a calibrated error-rate level: the monitor that alarms on every new population."""
    data = synthetic.synthetic_dataset(50, 60, seed=1)
    samples = tmp_path / "ref.npz"
    np.savez(samples, summaries=data["summaries"], probs=data["probs"], groups=data["groups"], labels=data["labels"])
    result = invoke(["calibrate", str(samples), "--out", str(tmp_path / "out"), "--target-arl0", "20000",
                     "--n-inferences", "200000", "--speaker-run", "30"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    config = MonitorConfig.from_dict(json.loads((tmp_path / "out" / "monitor_config_kws.json").read_text()))
    assert config.commission_n == 300
    assert report["data_session_length"] == 30 and report["output_session_length"] == 30
    assert report["scores"]["confidence"]["winsorize_sigma"] == 2.0 and report["scores"]["mean"]["winsorize_sigma"] is None
    # with labels, the error-rate test's level is the budget's, not DDM's textbook 3 sd
    assert report["error_rate"]["target_arl0"] == 20000 and config.ddm_drift_q8 == report["error_rate"]["drift_q8"]


def test_calibrate_gives_a_keyword_summarys_loudness_its_limit(tmp_path):
    """Features saved with their clips' audio are summarized as the app does (the loudness
    last) and the loudness gets its limit; the same inferences given as summaries do not."""
    data = synthetic.synthetic_dataset(50, 60, seed=2)
    rng = np.random.default_rng(5)
    n = len(data["groups"])
    features = rng.integers(-128, 128, (n, 49, 40)).astype(np.int8)
    level = np.exp(rng.normal(0, 0.5, data["groups"].max() + 1))[data["groups"]]  # each speaker's own
    audio = np.clip(rng.normal(0, 1, (n, 640)) * 1500 * level[:, None], -32768, 32767).astype(np.int16)
    common = ["--target-arl0", "20000", "--n-inferences", "200000"]
    with_audio, as_summaries = tmp_path / "clips.npz", tmp_path / "summaries.npz"
    np.savez(with_audio, features=features, audio=audio, probs=data["probs"], groups=data["groups"],
             labels=data["labels"])
    result = invoke(["calibrate", str(with_audio), "--out", str(tmp_path / "a"), *common])
    assert result.exit_code == 0, result.output
    config = MonitorConfig.from_dict(json.loads((tmp_path / "a" / "monitor_config_kws.json").read_text()))
    assert config.n_summary == 42 and config.loudness_component == 40 and config.loudness_limit > 0
    assert config.quiet_component == 41
    np.savez(as_summaries, summaries=data["summaries"], probs=data["probs"], groups=data["groups"],
             labels=data["labels"])
    result = invoke(["calibrate", str(as_summaries), "--out", str(tmp_path / "b"), *common])
    assert result.exit_code == 0, result.output
    assert MonitorConfig.from_dict(json.loads((tmp_path / "b" / "monitor_config_kws.json").read_text())).loudness_limit == 0
