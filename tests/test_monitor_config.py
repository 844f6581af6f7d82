"""A hand-edited monitor config's arrays are refused in one line that says what they hold,
in JSON's words (once numpy's: "got str128 values")."""

from __future__ import annotations

import json

import pytest

from tinydrift.errors import TinydriftError
from tinydrift.firmware import REPO_ROOT
from tinydrift.monitor.config import ABI_VERSION, MonitorConfig


@pytest.mark.parametrize("ref_mean, says", [
    (["a", "b"], "got text values"),
    ([True, False], "got true/false values"),
    ([1, None], "got mixed or null values"),
    ("zero", "got text values"),
])
def test_an_array_of_other_values_is_named_by_what_it_holds(ref_mean, says):
    config = json.loads((REPO_ROOT / "models" / "kws" / "reference.json").read_text())["monitor_config"]
    with pytest.raises(TinydriftError) as error:
        MonitorConfig.from_dict({**config, "ref_mean": ref_mean})
    assert str(error.value) == f"monitor config: ref_mean must hold integers, {says}"


def test_a_config_without_a_field_its_version_writes_is_refused():
    """score_drift deleted once read as its default, 2^30 (a drift level never reached), and
    the monitor never latched a data or confidence alarm."""
    config = json.loads((REPO_ROOT / "models" / "kws" / "reference.json").read_text())["monitor_config"]
    del config["score_drift"]
    with pytest.raises(TinydriftError) as error:
        MonitorConfig.from_dict(config)
    assert str(error.value) == "monitor config: missing fields ['score_drift']"


@pytest.mark.parametrize("version, added", [
    (4, ("score_limit", "clip_drift_q16", "clip_drift_blocks", "attribute_moved", "score_spread_ref", "score_spread_centre",
         "centre_n")),
    (5, ("clip_drift_q16", "clip_drift_blocks", "attribute_moved", "score_spread_ref", "score_spread_centre", "centre_n")),
    (6, ("score_spread_ref", "score_spread_centre", "centre_n")),
    (7, ("centre_n",))])
def test_an_older_config_reads_without_the_fields_added_since(version, added):
    config = json.loads((REPO_ROOT / "models" / "kws" / "reference.json").read_text())["monitor_config"]
    old = {k: v for k, v in config.items() if k not in added and k != "metadata"}
    read = MonitorConfig.from_dict({**old, "abi_version": version}).validate()
    # as that version ran: no score limits (version 4), no light clipping, no attribution
    # (before 6), no long-run spread (before 7), centres fixed at commissioning (before 8)
    assert (read.clip_drift_q16, read.attribute_moved) == ((config["clip_drift_q16"], 3) if version > 5 else (0, 0))
    assert read.score_limit.tolist() == (config["score_limit"] if version > 4 else [0] * 5)
    assert read.score_spread_ref.tolist() == (config["score_spread_ref"] if version > 6 else [0] * 5)
    assert read.centre_n == 0 and config["centre_n"] > 0


def test_a_config_from_before_the_quiet_level_reads_with_its_limit_off():
    """ABI 10 had no quiet level: such a config (a wake-word monitor.json calibrated then, say)
    reads with the limit off, and is written back as this version's."""
    config = json.loads((REPO_ROOT / "models" / "kws" / "reference.json").read_text())["monitor_config"]
    assert config["quiet_limit"] > 0
    old = {k: v for k, v in config.items() if k not in ("quiet_component", "quiet_limit", "ddm_reference_q16")}
    read = MonitorConfig.from_dict({**old, "abi_version": 10}).validate()
    assert (read.quiet_component, read.quiet_limit) == (0, 0)
    assert read.to_dict()["abi_version"] == ABI_VERSION
    with pytest.raises(TinydriftError, match=r"missing fields \['quiet_component', 'quiet_limit'\]"):
        MonitorConfig.from_dict({**old, "abi_version": 11})


def test_a_config_from_before_the_error_rate_start_reads_with_none():
    """ABI 11 had no reference error rate for the error-rate test: such a config reads with it
    0 (the test starts from no best, as it did), and one of this version must carry it."""
    config = json.loads((REPO_ROOT / "models" / "kws" / "reference.json").read_text())["monitor_config"]
    assert config["ddm_reference_q16"] > 0
    old = {k: v for k, v in config.items() if k != "ddm_reference_q16"}
    assert MonitorConfig.from_dict({**old, "abi_version": 11}).validate().ddm_reference_q16 == 0
    with pytest.raises(TinydriftError, match=r"missing fields \['ddm_reference_q16'\]"):
        MonitorConfig.from_dict({**old, "abi_version": ABI_VERSION})


def test_a_config_from_before_the_class_loudness_offsets_reads_with_none():
    """ABI 12 had no loudness offset per predicted class: such a config reads with none (the
    loudness as it was), and one of this version must say whether it has them."""
    config = json.loads((REPO_ROOT / "models" / "kws" / "reference.json").read_text())["monitor_config"]
    old = {k: v for k, v in config.items() if k != "loudness_class_offset"}
    assert MonitorConfig.from_dict({**old, "abi_version": 12}).validate().loudness_class_offset is None
    with pytest.raises(TinydriftError, match=r"missing fields \['loudness_class_offset'\]"):
        MonitorConfig.from_dict({**old, "abi_version": ABI_VERSION})


@pytest.mark.parametrize("change, says", [
    ({"score_spread_ref": [0, 0, -1, 241650, 0]}, "score_spread_ref not in 0..2^28"),
    ({"score_spread_ref": [0, 0, (1 << 28) + 1, 241650, 0]}, "score_spread_ref not in 0..2^28"),
    ({"score_spread_centre": [0, 0, 65537, -2413, 0]}, "score_spread_centre not in -65536..65536"),
    ({"score_spread_centre": [0, 0, -65537, -2413, 0]}, "score_spread_centre not in -65536..65536"),
    ({"score_spread_ref": [0, 0, 181416, 241650]}, "score_spread_ref must be a vector of 5 integers, got shape (4,)"),
    ({"centre_n": -1}, "centre_n not in 0..65535"),
    ({"centre_n": 65536}, "centre_n not in 0..65535"),
    ({"loudness_limit": -1}, "loudness_limit not in 0..2^30"),
    ({"loudness_limit": (1 << 30) + 1}, "loudness_limit not in 0..2^30"),
    ({"loudness_limit": 4000, "loudness_component": 42}, "loudness_component not a summary value"),
    ({"quiet_limit": -1}, "quiet_limit not in 0..2^30"),
    ({"quiet_limit": 4000, "quiet_component": 42}, "quiet_component not a summary value"),
    ({"loudness_k": -1}, "loudness_k not in 0..32767"),
    ({"loudness_k": 32768}, "loudness_k not in 0..32767"),
    ({"loudness_class_offset": [0] * 11 + [-32768]}, "loudness_class_offset not in -32767..32767"),
    ({"loudness_class_offset": [0] * 11}, "loudness_class_offset must be a vector of 12 integers (as many as prior_q16 "
                                          "holds: the two must agree, one of them was edited), got shape (11,)"),
])
def test_a_hand_edited_spread_is_refused_by_its_name(change, says):
    """The long-run spread (ABI 7), the centres' weight (ABI 8), the loudness limit (ABI 9,
    a CUSUM since 10) and the quiet limit (ABI 11): a user editing reference.json
    finds the field the error names."""
    config = json.loads((REPO_ROOT / "models" / "kws" / "reference.json").read_text())["monitor_config"]
    with pytest.raises(TinydriftError) as error:
        MonitorConfig.from_dict({**config, **change}).validate()
    assert str(error.value) == f"monitor config: {says}"


def test_a_version_8_config_reads_with_the_loudness_limit_off():
    config = json.loads((REPO_ROOT / "models" / "kws" / "reference.json").read_text())["monitor_config"]
    old = {k: v for k, v in config.items() if k not in ("loudness_component", "loudness_k", "loudness_limit")}
    read = MonitorConfig.from_dict({**old, "abi_version": 8}).validate()
    assert read.loudness_limit == 0


def test_a_version_9_config_reads_with_its_ewma_limit_off():
    """Version 9's loudness limit was a level for an EWMA (0.64 sd on models/kws): as a CUSUM
    level it would alarm within an inference or two, so it reads as off, and the shift that
    EWMA had is dropped."""
    config = json.loads((REPO_ROOT / "models" / "kws" / "reference.json").read_text())["monitor_config"]
    old = {k: v for k, v in config.items() if k != "loudness_k"}
    read = MonitorConfig.from_dict({**old, "abi_version": 9, "loudness_shift": 7, "loudness_limit": 2624}).validate()
    assert read.loudness_limit == 0 and read.loudness_k == MonitorConfig.__dataclass_fields__["loudness_k"].default == 2048
    assert read.loudness_component == config["loudness_component"] == 40


def test_a_version_7_config_without_the_spread_is_refused():
    config = json.loads((REPO_ROOT / "models" / "kws" / "reference.json").read_text())["monitor_config"]
    old = {k: v for k, v in config.items() if k not in ("score_spread_ref", "score_spread_centre")}
    with pytest.raises(TinydriftError) as error:
        MonitorConfig.from_dict({**old, "abi_version": 7})
    assert str(error.value) == "monitor config: missing fields ['score_spread_ref', 'score_spread_centre']"


def test_a_config_from_before_the_held_share_test_reads_with_it_off():
    """ABI 13 had no test of a sensor that fails on and off: such a config (a wake-word
    monitor.json calibrated then) reads with it off, not with a microphone's defaults."""
    config = json.loads((REPO_ROOT / "models" / "kws" / "reference.json").read_text())["monitor_config"]
    assert config["dropout_limit"] > 0
    old = {k: v for k, v in config.items() if k not in ("dropout_margin", "dropout_limit")}
    assert MonitorConfig.from_dict({**old, "abi_version": 13}).validate().dropout_limit == 0
    with pytest.raises(TinydriftError, match=r"missing fields \['dropout_margin', 'dropout_limit'\]"):
        MonitorConfig.from_dict({**old, "abi_version": ABI_VERSION})
