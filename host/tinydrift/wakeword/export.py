"""A microWakeWord model made into the C the firmware app builds as a streaming detector:
td_model_NAME.{h,c} (the generated engine, its state static) and td_reference_NAME.h (the
hash the device names itself by, the wake word, the detector's cutoff and window), with
detector.json, the header's JSON twin that capture, report and the live view read."""

from __future__ import annotations

from pathlib import Path

from tinydrift.atomic import all_or_nothing, check_writable, write_text
from tinydrift.codegen.model_c import check_name, write_model_c
from tinydrift.codegen.reference_header import DetectorParameters, reference_header
from tinydrift.frontend import NUM_CHANNELS
from tinydrift.modeldir import ID_BYTES, ModelDir, model_hash
from tinydrift.wakeword.config import WakewordModel

INPUT_NOTE = "int8 as ESPHome maps them, (256 v + 333) // 666 - 128"


def detector_parameters(model: WakewordModel) -> DetectorParameters:
    return DetectorParameters(model.probability_cutoff_u8, model.sliding_window_size, model.feature_step_ms)


def model_digest(model: WakewordModel) -> str:
    """SHA-256 over the .tflite and the detector's parameters: HELLO's model_hash."""
    parameters = detector_parameters(model)
    return model_hash(model.model, {"probability_cutoff": parameters.probability_cutoff,
                                    "sliding_window": parameters.sliding_window,
                                    "feature_step_ms": parameters.feature_step_ms})


def model_id(model: WakewordModel) -> bytes:
    """The first bytes of the hash, which every DETECTION frame carries."""
    return bytes.fromhex(model_digest(model))[:ID_BYTES]


def write_device_sources(model: WakewordModel, folder: str | Path, name: str | None = None) -> list[Path]:
    """td_model_NAME.h, td_model_NAME.c and td_reference_NAME.h in the model folder's include/
    (NAME: the model's file name unless given), and detector.json beside it."""
    name = check_name(name or model.name)
    target = ModelDir(folder)
    _refuse_another_export(target, model, name)
    with all_or_nothing():  # a failure part way leaves the folder as it was
        header, source = write_model_c(model.model, name, target.include)
        reference = target.reference_header(name)
        parameters = detector_parameters(model)
        write_text(reference, reference_header(name, model_digest(model), [model.wake_word], model.stride, NUM_CHANNELS,
                                               input_note=INPUT_NOTE, detector=parameters))
        target.write_detector({"name": name, "model_hash": model_digest(model), "wake_word": model.wake_word,
                               "probability_cutoff": parameters.probability_cutoff,
                               "sliding_window": parameters.sliding_window,
                               "feature_step_ms": parameters.feature_step_ms})
    return [header, source, reference, target.detector_json]


def _refuse_another_export(target: ModelDir, model: WakewordModel, name: str) -> None:
    """A folder holds one model's export: a classifier's folder, another detector's (its
    calibration would describe the wrong model) or this one's under another C name (a build
    takes one) is refused; the same export again replaces its files."""
    from tinydrift.errors import TinydriftError

    _refuse_other_models(target, model, "export the wake-word model into a folder of its own",
                         "export into a new folder, or remove that one first")
    others = [n for n in target.exported_names() if n != name]
    if others:
        raise TinydriftError(f"{target.path} holds an export named {others[0]} (include/td_model_{others[0]}.h): export "
                             f"this model with --name {others[0]}, or into a new folder")


def _refuse_other_models(target: ModelDir, model: WakewordModel, if_classifier: str, if_other_detector: str) -> dict | None:
    """One line (ending in what to do) if the folder holds a classifier's export or another
    detector's; else its detector.json, if any."""
    from tinydrift.errors import TinydriftError

    if target.reference_json.is_file():
        raise TinydriftError(f"{target.path} holds a classifier's export (reference.json, `tinydrift export`): "
                             f"{if_classifier}")
    held = target.detector() if target.detector_json.is_file() else None
    if held is not None and held["model_hash"] != model_digest(model):
        raise TinydriftError(f"{target.path} holds the export of another wake-word model or config (\"{held['wake_word']}\""
                             f", hash {held['model_hash'][:12]}): {if_other_detector}")
    calibrated = target.monitor_model_hash()
    if calibrated is not None and calibrated != model_digest(model):
        raise TinydriftError(f"{target.path} holds a monitor calibrated for another wake-word model or config "
                             f"(monitor.json, hash {calibrated[:12]}): {if_other_detector}")
    return held


def check_monitor_folder(model: WakewordModel, folder: str | Path, name: str | None = None) -> None:
    """A monitor goes into its own model's folder: one holding a classifier's export or
    another detector's is refused (the host would read the wrong monitor beside its model,
    the firmware none), as is an export under another C name (the firmware looks for the
    export's). A folder without an export takes it, for one to come."""
    from tinydrift.errors import TinydriftError

    name = check_name(name or model.name)
    target = ModelDir(folder)
    held = _refuse_other_models(target, model, "calibrate into the wake-word model's own folder (`tinydrift wakeword "
                                "export MODEL --out FOLDER`)", f"calibrate into {model.name}'s own folder")
    if held is not None and held["name"] != name:
        raise TinydriftError(f"{target.path} holds {model.name} exported as {held['name']}: give --name {held['name']}, "
                             f"so the firmware finds the monitor beside it")
    check_writable([target.monitor_config_header(name), target.monitor_json])


def write_monitor(model: WakewordModel, config, folder: str | Path, name: str | None = None) -> list[Path]:
    """The calibrated monitor config as include/td_monitor_config_NAME.h and its JSON twin
    monitor.json in the model folder (NAME: the model's file name unless given), checked
    first by check_monitor_folder (which the caller runs before calibrating, too: it also
    checks that both files can be written)."""
    import json

    from tinydrift.codegen.monitor_header import emit_monitor_config_h
    from tinydrift.monitor.config import jsonable

    check_monitor_folder(model, folder, name)
    name = check_name(name or model.name)
    target = ModelDir(folder)
    header = target.monitor_config_header(name)
    twin = target.monitor_json
    with all_or_nothing():  # the header and its JSON twin, or neither
        emit_monitor_config_h(config, header)
        write_text(twin, json.dumps(jsonable({"name": name, "model_hash": model_digest(model),
                                              "monitor_config": config.to_dict()}), indent=2))
    return [header, twin]
