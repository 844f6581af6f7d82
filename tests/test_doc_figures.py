"""Figures in the docs are checked against what measures or defines them, so a doc cannot
drift from the code.

- The model card (models/kws/README.md) is `tinydrift export`'s rendering of the
  reference.json beside it, and export's own measurements in that JSON are consistent.
  models/plant/README.md (not exported yet) is written by hand, with markers.
- A figure written by hand carries an invisible marker right after it,
  `<!-- figure: SOURCE KEY -->`: SOURCE is a JSON file in the repository (a benchmark's stored
  output, e.g. docs/figures/bench_device.json from `tinydrift bench device --json`, or a
  model's reference.json) or `code` (CODE_FIGURES below); KEY is a dotted path into it. The
  number before the marker, with its unit (%, k, M, KB), must round to that value.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from functools import cache
from pathlib import Path

import pytest

from tinydrift import firmware
from tinydrift.codegen.monitor_header import config_hash
from tinydrift.data.labels import LABELS
from tinydrift.fleet import envelope
from tinydrift.link import protocol
from tinydrift.modeldir import ModelDir, model_hash
from tinydrift.monitor.accuracy_estimate import MIN_ANSWERS
from tinydrift.monitor.config import MonitorConfig
from tinydrift.pipeline import demo
from tinydrift.pipeline.export import model_card

REPO = firmware.REPO_ROOT
MODEL = ModelDir(REPO / "models" / "kws")
PLANT_MODEL = ModelDir(REPO / "models" / "plant")
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md")), PLANT_MODEL.model_card]
ARL0_PROMISE = (0.5, 2.0)  # empirical ARL0 within x0.5 to x2 of the target (`tinydrift drift check-arl`)
LINK_BYTES_PER_S = 115_200 // 10  # a UART at 115,200 baud, 8N1

MARKER = re.compile(r"<!-- figure: (\S+) (\S+) -->")
# The number right before a marker, with its unit: "4.18 M", "932 B", "1.9 %", "20,400", and
# a negative one with the minus sign "−1.0" (U+2212: a hyphen before a number is a range's).
NUMBER = re.compile(r"(−?\d[\d,]*(?:\.\d+)?)\s*(%|k|M|KB|B)?\s*$")
UNIT_SCALE = {None: 1, "%": 0.01, "k": 1e3, "M": 1e6, "KB": 1e3, "B": 1}


def _wire_bytes(frame) -> int:
    return len(protocol.encode(frame))


def _inference_wire_bytes() -> int:
    return _wire_bytes(protocol.typical_inference(1, 1, bytes(protocol.MODEL_ID_BYTES), random.Random(0)))


def _kws_clips() -> int:
    from tinydrift.data.synth import KwsConfig

    return sum(KwsConfig().clips_per_class.values()) * len(LABELS)


def _wakeword_ram_bytes(name: str) -> int:
    """Arena and state of the generated C for one of pymicro-wakeword's models."""
    from tinydrift.codegen.model_c import plan_model
    from tinydrift.wakeword.config import load_wakeword

    plan = plan_model(load_wakeword(name).model, name)
    return plan.arena_bytes + plan.state_bytes


def _wakeword_tensor_arena(name: str) -> int:
    from tinydrift.wakeword.config import load_wakeword

    return load_wakeword(name).tensor_arena_size


def _wakeword_full_invocations() -> int:
    from test_wakeword_models import FULL_INVOCATIONS

    return FULL_INVOCATIONS


@cache
def _plant_plan():
    from tinydrift.codegen.model_c import plan_model

    return plan_model(PLANT_MODEL.read_int8(), "plant")


def _plant_images() -> int:
    from tinydrift.data.labels import PLANT_LABELS
    from tinydrift.data.leaves import PlantConfig

    return sum(PlantConfig().images_per_class.values()) * len(PLANT_LABELS)


def _bench_settings(quick: bool):
    from tinydrift.pipeline.drift_pools import BenchSettings

    return BenchSettings.make(quick)


# Figures the code defines: cheap to compute, named as the docs' markers name them.
CODE_FIGURES = {
    "protocol.version": lambda: protocol.VERSION,
    "protocol.max_payload": lambda: protocol.MAX_PAYLOAD,
    "protocol.min_packet": lambda: protocol.MIN_PACKET,
    "protocol.max_packet": lambda: protocol.MAX_PACKET,
    "protocol.max_wire": lambda: protocol.MAX_WIRE,
    "protocol.max_line": lambda: protocol.MAX_LINE,
    "protocol.audio_max_samples": lambda: protocol.AUDIO_MAX_SAMPLES,
    "protocol.inference_wire_bytes": _inference_wire_bytes,
    "protocol.inference_frames_per_s_at_115200": lambda: LINK_BYTES_PER_S // _inference_wire_bytes(),
    "demo.in_domain": lambda: demo.DemoConfig().in_domain,
    "demo.shifted": lambda: demo.DemoConfig().shifted,
    "demo.epochs": lambda: demo.DEMO_EPOCHS,
    "demo.train_clips": lambda: demo.DEMO_CLIPS_PER_CLASS["train"] * len(LABELS),
    "demo.ref_clips": lambda: demo.DEMO_CLIPS_PER_CLASS["ref"] * len(LABELS),
    "data.kws_clips": _kws_clips,
    "fleet.envelope_bytes": lambda: envelope.HEAD_BYTES,
    "fleet.heartbeat_message_bytes": lambda: envelope.HEAD_BYTES + protocol.MIN_PACKET
    + protocol.PAYLOAD_BYTES[protocol.FrameType.HEARTBEAT],
    "data.plant_images": _plant_images,
    "plant.macs": lambda: _plant_plan().macs,
    "plant.arena_bytes": lambda: _plant_plan().arena_bytes,
    "drift_bench.quick.arl_inferences": lambda: _bench_settings(True).arl_inferences,
    "drift_bench.full.arl_inferences": lambda: _bench_settings(False).arl_inferences,
    "drift_bench.quick.compare_arl0": lambda: _bench_settings(True).compare_arl0,
    "drift_bench.full.compare_arl0": lambda: _bench_settings(False).compare_arl0,
    "drift_bench.before": lambda: _bench_settings(False).before,
    "drift_bench.calibration_clips": lambda: _bench_settings(False).calibration_clips_per_class * len(LABELS),
    "drift_bench.quick.control_clips": lambda: _bench_settings(True).control_clips_per_class * len(LABELS),
    "drift_bench.full.control_clips": lambda: _bench_settings(False).control_clips_per_class * len(LABELS),
    "export.commission_n": lambda: MODEL.monitor_config()["commission_n"],
    "accuracy_estimate.min_answers": lambda: MIN_ANSWERS,
    "wakeword.full_invocations": _wakeword_full_invocations,
    "wakeword.okay_nabu_ram_bytes": lambda: _wakeword_ram_bytes("okay_nabu"),
    "wakeword.okay_nabu_config_arena_bytes": lambda: _wakeword_tensor_arena("okay_nabu"),
}


@cache
def _json(source: str) -> dict:
    return json.loads((REPO / source).read_text())


def _lookup(source: str, key: str):
    if source == "code":
        return CODE_FIGURES[key]()
    value = _json(source)
    for part in key.split("."):
        value = value[int(part)] if isinstance(value, list) else value[part]  # "ops.2.cycles", "ci95.1": a list's item
    return value


def _markers():
    for doc in DOCS:
        text = doc.read_text()
        for match in MARKER.finditer(text):
            line = text.count("\n", 0, match.start()) + 1
            before = text[max(0, match.start() - 80): match.start()]
            yield pytest.param(doc, before, *match.groups(), id=f"{doc.name}:{line}:{match.group(2)}")


def _rounds_to(written: str, unit: str | None, value: float) -> bool:
    decimals = len(written.split(".")[1]) if "." in written else 0
    return round(value / UNIT_SCALE[unit], decimals) == float(written.replace(",", "").replace("−", "-"))


@pytest.mark.parametrize("doc, before, source, key", list(_markers()))
def test_marked_figure_equals_its_source(doc, before, source, key):
    found = NUMBER.search(before)
    assert found, f"{doc.name}: no number before the marker for {source} {key}"
    value = _lookup(source, key)
    written, unit = found.groups()
    assert _rounds_to(written, unit, value), f"{doc.name} says {written} {unit or ''} where {source} {key} is {value}"


def test_docs_have_markers_and_every_source_is_known():
    markers = list(_markers())
    assert len(markers) >= 20, "the docs' figures lost their markers"
    for param in markers:
        _doc, _before, source, key = param.values
        assert source == "code" or (REPO / source).is_file(), source
        assert source != "code" or key in CODE_FIGURES, key


def test_stored_device_bench_is_a_whole_run_on_the_committed_model():
    """docs/figures/bench_device.json is `tinydrift bench device --json` as it is now, run on
    models/kws: every key the bench writes, its checks passed, the model's sizes."""
    from tinydrift.target.bench import BENCH_KEYS

    figures = _json("docs/figures/bench_device.json")
    reference = MODEL.reference()
    assert set(figures) == set(BENCH_KEYS), "rerun: tinydrift bench device --json | python -m json.tool"
    assert all(figures["checks"].values())
    assert (figures["macs"], figures["arena_bytes"], figures["tflm_arena_bytes"]) == (
        reference["macs"], reference["arena_bytes"], reference["tflm_arena"]["total"])


def test_protocol_headings_state_each_frame_size():
    """docs/protocol.md's title names the version and each frame type's heading its payload."""
    text = (REPO / "docs" / "protocol.md").read_text()
    assert re.search(r"^# tinydrift serial protocol, version (\d+)$", text, re.MULTILINE).group(1) == str(protocol.VERSION)
    headings = dict(re.findall(r"^### ([A-Z_]+) \(0x[0-9a-f]{2}, [^,]+, (\d+(?= bytes)|8 \+ 2·n|12 \+ n)", text, re.MULTILINE))
    sizes = {frame.name: size for frame, size in protocol.PAYLOAD_BYTES.items()}
    assert set(headings) == set(sizes)
    for name, written in headings.items():
        variable = {"AUDIO": f"{sizes[name]} + 2·n", "IMAGE": f"{sizes[name]} + n"}
        assert written == variable.get(name, str(sizes[name])), name


# --------------------------------------------------------------------------- the model card

def test_model_card_is_the_rendering_of_reference_json():
    """Re-exporting rewrites both; a hand edit of either, or a renderer change without a
    re-export, shows here."""
    assert MODEL.model_card.read_text() == model_card(MODEL.reference(), MODEL.training()), (
        "models/kws/README.md is not what `tinydrift export` renders from reference.json")


def test_reference_json_identity_matches_the_model_and_headers():
    reference = MODEL.reference()
    tflite = MODEL.read_int8()
    assert reference["model_hash"] == model_hash(tflite, reference["monitor_config"])
    assert reference["model_id"] == reference["model_hash"][: len(reference["model_id"])]
    assert reference["model_bytes"] == len(tflite) and reference["labels"] == list(LABELS)
    # Each generated header names what it was made from: the headers belong to this JSON.
    name = reference["name"]
    assert f'_MODEL_HASH "{reference["model_hash"]}"' in MODEL.reference_header(name).read_text()
    assert hashlib.sha256(tflite).hexdigest()[:16] in MODEL.model_c(name)[0].read_text()
    assert config_hash(MonitorConfig.of_model(MODEL)) in MODEL.monitor_config_header(name).read_text()


def test_reference_json_sizes_are_the_models():
    from tinydrift.codegen.model_c import plan_model

    reference = MODEL.reference()
    plan = plan_model(MODEL.read_int8(), reference["name"])
    assert (reference["macs"], reference["arena_bytes"]) == (plan.macs, plan.arena_bytes)
    assert list(plan.input.shape) == reference["input"]["shape"]
    arena = reference["tflm_arena"]
    assert arena["total"] == arena["head"] + arena["tail"]


def _accuracies(tree, path=""):
    for key, value in tree.items():
        if isinstance(value, dict):
            yield from _accuracies(value, f"{path}{key}.")
        elif key == "accuracy" or key.endswith("_agreement"):
            yield f"{path}{key}", value


def test_export_accuracy_is_a_share_of_the_clips():
    accuracy = MODEL.reference()["accuracy"]
    shares = dict(_accuracies(accuracy))
    assert {"test.tflm.accuracy", "test.litert.accuracy", "accent.tflm.accuracy", "ref.tflm.accuracy"} <= set(shares)
    assert all(0 <= share <= 1 for share in shares.values()), shares
    for split in ("test", "accent", "ref"):
        result = accuracy[split]["tflm"]
        confusion = result["confusion"]
        assert sum(map(sum, confusion)) == result["n"]
        assert result["accuracy"] == pytest.approx(sum(confusion[i][i] for i in range(len(confusion))) / result["n"])
    # The accent shift costs accuracy: the premise of the demo and of the accent detection.
    assert accuracy["accent"]["tflm"]["accuracy"] < accuracy["test"]["tflm"]["accuracy"]


def test_export_arl0_check_keeps_the_promise():
    reference = MODEL.reference()
    check = reference["arl0_check"]
    assert check["target_arl0"] == reference["calibration"]["target_arl0"]
    assert check["alarms"] > 0 and check["arl0"] == pytest.approx(check["inferences"] / check["alarms"])
    assert check["ratio_to_target"] == pytest.approx(check["arl0"] / check["target_arl0"])
    assert check["ci95"][0] <= check["arl0"] <= check["ci95"][1]
    # every alarm has a type; one may have two (CONFIDENCE_DRIFT naming DATA_DRIFT with it)
    assert check["alarms"] <= sum(check["by_type"].values()) <= 2 * check["alarms"]
    # The levels keep their promise for what calibration simulates (centres fixed at
    # commissioning); the centres refined after it only take false alarms away.
    low, high = ARL0_PROMISE
    fixed = check["fixed_centres"]
    assert low <= fixed["ratio_to_target"] <= high, f"empirical ARL0 x{fixed['ratio_to_target']:.2f} the target"
    assert check["alarms"] <= fixed["alarms"] and low <= check["ratio_to_target"]


def test_export_finds_the_accent_shift():
    detection = MODEL.reference()["accent_detection"]
    assert 0 < detection["streams"] and 0 <= detection["detected"] <= detection["streams"]
    assert detection["detection_rate"] == pytest.approx(detection["detected"] / detection["streams"])
    assert 0 <= detection["false_alarms"] <= detection["streams"]
    assert detection["detection_rate"] >= 0.9 and detection["median_delay"] > 0
