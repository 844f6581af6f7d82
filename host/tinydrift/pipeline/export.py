"""`tinydrift export`: everything the firmware includes for one model, and its JSON twin.

Reference statistics are measured THROUGH THE INT8 MODEL (TFLite Micro) on the held-out
`ref` split; the monitor's levels are calibrated on it for one shared false-alarm budget;
the empirical ARL0 and the detection of a shift are checked on `test` and a drifted split,
which calibration never saw. The input summary follows the model's input: the keyword
models' [49, 40] features give td_summarize_frames and their window's audio its loudness
(td_summarize_level), a camera model's [H, W, 3] image td_summarize_image; the shift is the accent split for the former, a smudged lens (the
`test` images blurred) for the latter. One hash over the model and the monitor config ties the
headers, the JSON and the device's HELLO frame together.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from tinydrift.app import SENSOR_BLOCK
from tinydrift.atomic import all_or_nothing, check_writable, write_text
from tinydrift.data.clipset import ClipSet
from tinydrift.data.labels import LABELS
from tinydrift.errors import TinydriftError
from tinydrift.modeldir import ID_BYTES, ModelDir, model_hash
from tinydrift.monitor.calibrate import ARL0_BAND, DEFAULT_COMMISSION, DEFAULT_DATA_SESSION, FleetBudget
from tinydrift.monitor.config import CENTRE_COMMISSION_SHIFT, ONE_Q12, MonitorConfig, jsonable
from tinydrift.monitor.reference import MIN_REFERENCE_SAMPLES
from tinydrift.quiet import held_back
from tinydrift.model.evaluate import check_fits, summarize
from tinydrift.model.quantize import INPUT_SHAPE, describe, is_image_input, load_int8
from tinydrift.model.runtimes import run_litert, run_tflm, tflm_arena_report

def arl0_check_said(arl0: dict, target_arl0: float) -> str | None:
    """What the export says of its ARL0 check (measure_arl0's result): a warning outside the
    band the calibration holds to, a note where the check is short of the target beyond its
    counting error, else nothing."""
    if arl0["ratio_to_target"] < 1 / ARL0_BAND:
        return (f"warning: the check reads ARL0 {arl0['arl0']:,.0f}, x{arl0['ratio_to_target']:.2g} the target "
                f"{target_arl0:,.0f}: this monitor will false-alarm more often than asked; give reference data of the "
                "deployment's own kind (more groups, more samples) and export again")
    low, high = arl0["ci95"]
    if high < target_arl0:
        return (f"note: the check reads ARL0 {arl0['arl0']:,.0f} (95 % interval {low:,.0f} to {high:,.0f}), under the "
                f"target {target_arl0:,.0f} though within the x{1 / ARL0_BAND:g} band the calibration holds to: about "
                f"{1 / arl0['ratio_to_target']:.2g} times the false alarms asked for; more reference data of the "
                "deployment's own kind narrows that")
    return None


def load_exported(model_dir: Path) -> tuple[ModelDir, bytes, MonitorConfig]:
    """A folder this export completed, checked whole before long work starts: its headers,
    reference.json, the int8 model (parsed) and the monitor config."""
    from tinydrift.codegen.tflite_graph import read_tflite

    folder = ModelDir(model_dir).require_exported()
    model = folder.read_int8()
    read_tflite(model, str(folder.int8_model))
    return folder, model, MonitorConfig.of_model(folder)


# The camera summary's grid: 3x3 blocks x 3 colours + 9 = 36 values, under the 40 the
# project's monitor state is sized for (<= 1 KB), and fine enough to see a shadow or a
# lamp that lights one side of the frame.
IMAGE_SUMMARY_GRID = 3
# How strongly the export's camera check smudges the lens: a Gaussian blur of this many
# pixels (at 48x48, leaf spots of a few pixels fade into the leaf).
SMUDGE_SIGMA = 1.5
MIN_IMAGE_REFERENCE = 1000
# A camera's sensor health per frame (td_sensor_image_update), in the config's sensor fields:
# saturated when 3/4 of the values sit at a rail (|pixel - 128| >= 127); flat (dead, black or
# white) when the values' variance is at most 4 (sd 2 levels: a live scene's is in the
# hundreds); stuck when none of 32 probed values moved at all since the previous frame (bit
# for bit: a live sensor's noise moves some of them, see td_sensor_image.c); each a fault
# after 10 frames in a row. No DC offset: a dark or bright scene is not a fault. A camera that
# fails on and off (td_sensor_intermittent.c): 8 frames' worth over an eighth past the share of
# dead frames (flat or repeated; a frame is one block) commissioning saw, so a lone run of 9 black frames (7.9 of
# it) stays below; one black frame in five is found after a median 105.5 (quick camera bench).
CAMERA_SENSOR = {"clip_level": 127, "clip_rate_q16": 3 * 65536 // 4, "dc_level": 0, "stuck_variance": 0,
                 "silence_variance": 4, "persist_blocks": np.array([10, 0, 10, 10], np.uint16),
                 "clip_drift_q16": 0,  # a frame is one block: light clipping is a microphone's rule
                 "dropout_margin": 4096 // 8, "dropout_limit": 8 * 4096}
# A user's reference folder: this share of its groups (speakers; images) is held out as
# `test` for the export's ARL0 and detection checks, which calibration never sees.
FOLDER_TEST_SHARE = 0.3
NOISE_SNR_DB = 10  # the shift a user's recordings are checked against


def is_own_data(data_dir: Path) -> bool:
    """A folder of the user's own recordings or images, not a set `tinydrift data` made (its
    ref.npz is the split the monitor is calibrated on)."""
    return data_dir.is_dir() and not (data_dir / "ref.npz").is_file()


@dataclass(frozen=True)
class ModelInput:
    """What the model's input decides for the export: the summary the device computes, the
    data set type, and the shifted split the detection check uses."""

    kind: str  # "audio" or "image"
    shape: tuple  # the model's input shape, batch first
    shift: str  # the drifted split the detection check streams after `test`
    shift_title: str
    # The plant set's `ref` holds 1,500 images of ~190 plants, fewer than the 2,000 clips the
    # keyword reference asks for; the bootstrap over whole plants still sees every one.
    min_reference: int = MIN_REFERENCE_SAMPLES

    @property
    def is_image(self) -> bool:
        return self.kind == "image"

    def summarize(self, inputs) -> np.ndarray:
        """The device's input summary of a ClipSet or ImageSet (td_app_infer's)."""
        from tinydrift.monitor.twin import summarize_image, window_energies, window_summary

        if self.is_image:
            return summarize_image(inputs.features, IMAGE_SUMMARY_GRID)
        return window_summary(inputs.features, window_energies(inputs.audio, SENSOR_BLOCK))

    def load_splits(self, data_dir: Path, n_classes: int,
                    label_names: tuple[str, ...] | None = None) -> tuple["ModelInput", dict]:
        """(this plan, its shift named after the data; ref, test and the shifted split, as the
        data set type of this input), from the splits `tinydrift data` writes, or from a
        folder of the user's own reference data (an image folder's class folders named by
        `label_names`, the model's classes in its output order, when known)."""
        data_dir = Path(data_dir)
        if is_own_data(data_dir):
            made = sorted(p.name for p in data_dir.glob("*.npz"))
            if made:  # a set `tinydrift data` wrote, or began to: not a folder of recordings
                raise TinydriftError(f"{data_dir}: holds {', '.join(made)} but no ref.npz, the split the monitor is "
                                     "calibrated on: build the set again with `tinydrift data`")
            return self._folder_splits(data_dir, n_classes, label_names)
        if not self.is_image:
            return self, {s: ClipSet.load(data_dir / f"{s}.npz") for s in ("ref", "test", self.shift)}
        from tinydrift.data.imageset import ImageSet

        splits = {s: ImageSet.load(data_dir / f"{s}.npz") for s in ("ref", "test")}
        return self, self._with_shift(splits)

    def _with_shift(self, splits: dict) -> dict:
        """The detection check's shifted split from `test`: the same images through a smudged
        lens, or the same clips under white noise at SNR 10 dB (a user's recordings have no
        accent split)."""
        if self.is_image:
            from tinydrift.data.camera_scenarios import smudged

            return {**splits, self.shift: smudged(splits["test"], SMUDGE_SIGMA)}
        from tinydrift.data.scenarios import white_noise

        test = splits["test"]
        noisy = ClipSet(audio=white_noise(test.audio, np.random.default_rng(0), NOISE_SNR_DB), labels=test.labels,
                        domain=dict(test.domain))
        return {**splits, self.shift: noisy}

    def _folder_splits(self, folder: Path, n_classes: int,
                       label_names: tuple[str, ...] | None = None) -> tuple["ModelInput", dict]:
        """A user's reference data (a PlantVillage-style image folder, or Speech Commands-style
        WAV folders of the keyword model's classes), split into ref and test by group (a
        recording's speaker; each image its own), after checking its classes are the model's."""
        if self.is_image:
            from tinydrift.data.imagefolder import load_image_folder

            data = load_image_folder(folder, label_names, size=self.shape[1:3])
            what = "class folders"
        else:
            from tinydrift.data.wavfolder import load_speech_commands

            data = load_speech_commands(folder)
            what = "keyword classes (the Speech Commands layout maps other words to _unknown_)"
        if len(data.label_names) != n_classes:
            remedy = ("a keyword model's outputs are these 12 classes, in this order" if not self.is_image else
                      f"give one sub-folder per class ({', '.join(label_names)})" if label_names else
                      "give one sub-folder per output class, named in the order of the model's outputs when sorted "
                      "(or name the classes in output order: `tinydrift adopt` the .tflite again with "
                      "--labels A,B,...)")
            raise TinydriftError(f"{folder}: {len(data.label_names)} {what} ({', '.join(data.label_names)}), "
                                 f"but the model has {n_classes} outputs: {remedy}")
        missing = [name for k, name in enumerate(data.label_names) if not np.any(data.labels == k)]
        if self.is_image and missing:  # classes named by --labels, some without a folder (trial 18)
            raise TinydriftError(f"{folder}: no images of {', '.join(missing)}, but the model has {n_classes} outputs: "
                                 f"give one sub-folder per class ({', '.join(data.label_names)})")
        present = np.unique(data.labels)
        if len(present) < 2:
            only = data.label_names[int(present[0])] if len(present) else "none"
            hint = ("" if self.is_image else
                    f": word folders other than the model's keywords ({', '.join(data.label_names[2:])}) count as "
                    "_unknown_, and the match is case-sensitive")
            raise TinydriftError(f"{folder}: every {'image' if self.is_image else 'clip'} is of one class ({only}); "
                                 f"the monitor's class mix and error rate are calibrated on the model's classes{hint}")
        groups = np.unique(data.domain["group"])
        if len(groups) < 2:
            whose = "one image" if self.is_image else "one speaker (files named SPEAKER_nohash_N.wav)"
            raise TinydriftError(f"{folder}: every recording is {whose}; the export holds whole speakers out "
                                 f"({FOLDER_TEST_SHARE:.0%}) to check the calibration on voices it never heard: give "
                                 "recordings of two or more speakers")
        n_test = min(max(1, int(round(FOLDER_TEST_SHARE * len(groups)))), len(groups) - 1)
        held_out = np.random.default_rng(0).permutation(groups)[:n_test]
        in_test = np.isin(data.domain["group"], held_out)
        splits = {"ref": data.select(~in_test), "test": data.select(in_test)}
        if self.is_image:
            return self, self._with_shift(splits)
        noisy = replace(self, shift="noisy", shift_title=f"White noise at SNR {NOISE_SNR_DB} dB (`test`, then the "
                                                            "same clips with noise)")
        return noisy, noisy._with_shift(splits)


    def reference_shortfall(self, data_dir: Path, splits: dict) -> str | None:
        """Why the `ref` split is too small for the monitor's reference statistics, and what
        to give instead (a larger built-in set, or more of the user's own data); None if not."""
        held = len(splits["ref"])
        if held >= self.min_reference:
            return None
        need = f"the monitor's reference statistics need at least {self.min_reference}"
        if (Path(data_dir) / "ref.npz").is_file():
            more = ("`tinydrift data plant --images-per-class N`" if self.is_image
                    else "`tinydrift data kws --clips-per-class N`")
            return f"{data_dir}: ref.npz holds {held}; {need}: build the set again with more ({more})"
        enough = int(np.ceil(self.min_reference / (1 - FOLDER_TEST_SHARE)))  # the folder's test share held out
        return (f"{data_dir}: {held + len(splits['test'])} {'images' if self.is_image else 'clips'}, {held} of them "
                f"for the reference; {need}: give about {enough} or more")


def model_input(shape: tuple) -> ModelInput:
    """The export's plan for a device model's input (load_int8 accepts no other shapes)."""
    if is_image_input(shape):
        return ModelInput("image", shape, "smudged", f"Smudged lens (`test`, then the same images blurred by "
                                                     f"sigma {SMUDGE_SIGMA} px)", min_reference=MIN_IMAGE_REFERENCE)
    return ModelInput("audio", INPUT_SHAPE, "accent", "Accent shift (`test` then `accent`)")


def _through_model(model: bytes, clips: ClipSet, progress_factory, label: str) -> np.ndarray:
    advance = progress_factory(f"features {label}", len(clips)) if progress_factory and clips.features is None else None
    features = clips.ensure_features(progress=advance)
    advance = progress_factory(f"TFLite Micro {label}", len(clips)) if progress_factory else None
    return run_tflm(model, features, progress=advance)


def _samples(source: ModelInput, clips: ClipSet, probs: np.ndarray) -> dict:
    return {"summaries": source.summarize(clips), "probs": probs, "groups": clips.domain["group"],
            "labels": clips.labels.astype(np.int64)}


# The export's ARL0 check: 100 x the target (~100 expected alarms, a counting error of ~10 %),
# at most this many inferences (a minute or two on 2 cores): a larger target is checked on
# fewer expected alarms (20 at ARL0 1,000,000), no longer for hours.
ARL0_CHECK_MAX = 20_000_000


def error_rate_line(drift_q8: int, report: dict) -> str:
    """What calibrate_error_rate chose, in a line: its level and the false alarms it measured
    there (none at all on an error-free reference: a camera model right on every leaf)."""
    every = report["levels"].get(f"{drift_q8 / 256:g}", {}).get("arl0_inferences")
    simulated = report["streams"] * report["labels_per_stream"] / report["label_share"]
    rate = f"a false alarm every {every:,} inferences" if every is not None else \
        f"no false alarm in {simulated:,.0f} inferences simulated"
    return (f"error-rate test: ERROR_RATE at {drift_q8 / 256:g} standard deviations, {rate} with labels for "
            f"{100 * report['label_share']:g} % of them")


def export(model_dir: Path, data_dir: Path, *, name: str = "kws", target_arl0: float = 100_000,
           commission_n: int = DEFAULT_COMMISSION, real_data: dict[str, Path] | None = None,
           fleet_budget: FleetBudget | None = None, simulated_inferences: int | None = None,
           speaker_run: int | None = None, progress_factory=None, log=print) -> dict:
    """Write model_dir/include/*.h|c, model_dir/reference.json and model_dir/README.md.
    With a fleet budget, its per-device ARL0 is the target. simulated_inferences: how many
    no-drift inferences the calibration simulates (default: calibrate_thresholds').
    speaker_run: every score calibrated on same-speaker runs of that many inferences
    (default: the input scores on runs of DEFAULT_DATA_SESSION, the outputs on the data's)."""
    from tinydrift.monitor.calibrate import add_fixed_centres, calibrate_monitor, measure_arl0
    from tinydrift.monitor.twin import window_loudness, window_quiet
    from tinydrift.monitor.calibrate_feedback import measure_error_rate_arl0
    from tinydrift.monitor.evaluate import measure_detection
    from tinydrift.codegen.model_c import plan_model, write_model_c
    from tinydrift.codegen.monitor_header import emit_monitor_config_h
    from tinydrift.codegen.reference_header import reference_header

    folder = ModelDir(model_dir).require()
    model_dir = folder.path
    model, model_path = load_int8(model_dir)
    # before minutes of calibration: every file this writes can be written
    check_writable([*folder.generated_files(name), folder.reference_json, folder.model_card])
    info = describe(model)
    source = model_input(tuple(int(d) for d in info["inputs"][0]["shape"]))
    if source.is_image and real_data:
        raise TinydriftError("--real-data reads recordings, and this is an image model: "
                             "measure it on real images with `tinydrift eval MODEL FOLDER`")
    # an image folder's classes are the model's, in its output order (training.json), not sorted
    trained_labels = tuple(folder.training().get("labels") or ()) or None
    n_outputs = int(info["outputs"][0]["shape"][-1])
    if trained_labels and len(trained_labels) != n_outputs:  # before the data is read, and blamed
        raise TinydriftError(f"{folder.training_json}: labels names {len(trained_labels)} classes "
                             f"({', '.join(trained_labels)}), but the model has {n_outputs} outputs: list one class "
                             "name per output, in output order")
    source, splits = source.load_splits(data_dir, int(info["outputs"][0]["shape"][-1]), trained_labels)
    check_fits(model, splits["ref"], data_dir, trained_labels)  # before any work: its kind, image size and classes
    shortfall = source.reference_shortfall(data_dir, splits)
    if shortfall:
        raise TinydriftError(shortfall)
    if source.is_image:
        from tinydrift.data.imagefolder import converted_note

        note = converted_note(np.concatenate([splits[s].domain.get("mode", np.zeros(0, str)) for s in ("ref", "test")]))
    else:
        from tinydrift.data.wavfolder import word_folders_note

        note = word_folders_note(splits["ref"], splits["test"])
    if note:
        log(f"reference {note}")
    from tinydrift.data.wavfolder import load_any

    real_sets = {label: load_any(path) for label, path in (real_data or {}).items()}  # refused now, not after minutes
    labels = list(LABELS) if not source.is_image else list(splits["ref"].label_names)
    probs = {s: _through_model(model, clips, progress_factory, s) for s, clips in splits.items()}
    n_classes = probs["ref"].shape[1]
    ref_accuracy = float(np.mean(probs["ref"].argmax(1) == splits["ref"].labels))
    if n_classes > 2 and ref_accuracy < 2 / n_classes:
        log(f"warning: the model is right on {ref_accuracy:.1%} of the ref split (chance: {1 / n_classes:.0%}): are "
            f"the data's classes the model's, named as it names them ({', '.join(labels)})? An image model adopted "
            "with outputs in another order than its class folders sorted by name: adopt it again with --labels "
            "naming them in output order. A monitor calibrated on it expects that accuracy")
    samples = {s: _samples(source, splits[s], probs[s]) for s in splits}

    if fleet_budget is not None:
        target_arl0 = fleet_budget.per_device_arl0
        log(f"fleet budget: {fleet_budget.line()}")
    log(f"calibrating the monitor for ARL0 {target_arl0:,.0f} on {len(splits['ref'])} ref {'images' if source.is_image else 'clips'} "
        "(a minute or more)")
    start = time.perf_counter()
    # The data score whitens (shrunk ZCA): with the device's own commissioned reference, the
    # sampling noise between populations that once made whitening alarm is learned away, and
    # band-limit shifts are found in about half the inferences (drift bench, quick: 35-38
    # against 69-86 channel by channel).
    config, calibration = calibrate_monitor(
        samples["ref"]["summaries"], samples["ref"]["probs"], samples["ref"]["groups"], samples["ref"]["labels"],
        target_arl0=target_arl0, commission_n=commission_n, speaker_run=speaker_run,
        loudness_component=None if source.is_image else window_loudness(samples["ref"]["summaries"]),
        quiet_component=None if source.is_image else window_quiet(samples["ref"]["summaries"]),
        min_samples=source.min_reference,
        progress_factory=progress_factory,
        **({} if simulated_inferences is None else {"n_inferences": simulated_inferences}))
    if source.is_image:  # a camera's sensor health is per frame
        config = replace(config, **CAMERA_SENSOR)
    log(error_rate_line(config.ddm_drift_q8, calibration["error_rate"]))
    calibration_seconds = time.perf_counter() - start
    checked = int(min(100 * target_arl0, ARL0_CHECK_MAX))
    bound = "" if checked == 100 * target_arl0 else (f" (not 100 x the target: at most {ARL0_CHECK_MAX:,}, "
                                                      "so fewer alarms to count and a wider interval)")
    log(f"checking ARL0 on {checked:,} inferences of the test split (unseen by calibration){bound}, and the "
        f"{source.shift} shift's detection")
    arl0 = measure_arl0(config, samples["test"]["summaries"], samples["test"]["probs"], samples["test"]["groups"],
                        n_inferences=checked, progress=progress_factory("ARL0 check", min(10_000, checked))
                        if progress_factory else None)
    arl0["error_rate"] = measure_error_rate_arl0(config, samples["test"]["probs"].argmax(1), samples["test"]["labels"],
                                                 samples["test"]["groups"], n_inferences=checked)
    # the levels as calibrated, centres fixed at commissioning: the refinement's margin shows
    # against it, and the calibration's own accuracy in it
    fixed = add_fixed_centres(arl0, config, samples["test"]["summaries"], samples["test"]["probs"], samples["test"]["groups"],
                              n_inferences=checked)
    config, arl0, note = keep_the_quieter_centres(config, arl0, fixed)
    if note:
        log(note)
    said = arl0_check_said(arl0, target_arl0)
    if said:
        log(said)
    detection = measure_detection(config, samples["test"], samples[source.shift])
    detection = {k: v for k, v in detection.items() if k not in ("delays", "change_time_errors", "moved_at_alarm")}

    names = tuple(labels)  # a camera model's classes, not the keyword set's
    accuracy = {s: {"tflm": summarize(probs[s].argmax(1), splits[s].labels, probs[s], names)}
                for s in ("test", source.shift, "ref")}
    litert_test = run_litert(model, splits["test"].features)
    accuracy["test"]["litert"] = summarize(litert_test.argmax(1), splits["test"].labels, litert_test, names)
    accuracy["test"]["tflm_litert_argmax_agreement"] = float((litert_test.argmax(1) == probs["test"].argmax(1)).mean())
    accuracy["test"]["float"] = _float_accuracy(model_dir, splits["test"], names)
    for label, clips in real_sets.items():
        out = _through_model(model, clips, progress_factory, label)
        accuracy[label] = {"tflm": summarize(out.argmax(1), clips.labels, out)}

    config_dict = config.to_dict()
    digest = model_hash(model, config_dict)
    plan = plan_model(model, name)
    with all_or_nothing():  # headers, reference.json and the model card together, or none of them
        write_model_c(model, name, folder.include)
        emit_monitor_config_h(config, folder.monitor_config_header(name))
        write_text(folder.reference_header(name),
                   reference_header(name, digest, labels, plan.input.shape[1], plan.input.shape[2],
                                    image_grid=IMAGE_SUMMARY_GRID if source.is_image else None))
        tflm_arena = tflm_arena_report(model)
        reference = {
            "name": name,
            "model_hash": digest,
            "model_id": digest[: 2 * ID_BYTES],
            "model_file": model_path.name,
            "model_bytes": len(model),
            "labels": labels,
            "input": {"shape": list(plan.input.shape), "scale": float(info["inputs"][0]["quantization"][0]),
                      "zero_point": int(info["inputs"][0]["quantization"][1])},
            "output": {"scale": 1.0 / 256, "zero_point": -128},
            "macs": int(plan.macs),
            "arena_bytes": int(plan.arena_bytes),
            "tflm_arena": tflm_arena,
            "input_summary": ({"kind": "image", "grid": IMAGE_SUMMARY_GRID, "length": config.n_summary} if source.is_image
                              else {"kind": "frames", "length": config.n_summary}),
            "reference_clips": len(splits["ref"]),
            "reference_data": {"folder": Path(data_dir).name, "own": is_own_data(Path(data_dir))},
            "monitor_config": config_dict,
            "calibration": {**{k: v for k, v in calibration.items() if k != "combined_curve"},
                            **({"fleet_budget": fleet_budget.as_dict()} if fleet_budget is not None else {})},
            "calibration_seconds": round(calibration_seconds, 1),
            "arl0_check": arl0,
            "shift": {"split": source.shift, "title": source.shift_title},
            f"{source.shift}_detection": detection,
            "accuracy": accuracy,
        }
        folder.write_reference(jsonable(reference))
        folder.write_model_card(model_card(reference, folder.training()))
    folder.remove_exports_except(name)  # last: an interrupted export leaves the old one whole
    return reference


def keep_the_quieter_centres(config, refined: dict, fixed: dict) -> tuple[object, dict, str | None]:
    """The config to export and its check, given the check as calibrated (`refined`, the
    confidence and entropy centres learning on after commissioning) and with those centres
    fixed (`fixed`, add_fixed_centres' result; `refined` itself when they are fixed anyway).
    The levels are set for fixed centres; learning on is meant as margin, and is on a model
    whose answers are confident (models/kws: 500,000 against 178,571 fixed). Where it made the
    check fall under the band while the fixed one holds it (a model whose outputs barely move:
    learning only from calm inferences then pulls the centres along, 3,675 against 172,414 on
    one such model), the centres stay fixed: returns that config, its check (the refined one
    kept under "refined_centres") and the line that says so."""
    if fixed is refined or not (refined["ratio_to_target"] < 1 / ARL0_BAND <= fixed["ratio_to_target"]):
        return config, refined, None
    kept = {k: refined[k] for k in ("arl0", "alarms", "inferences", "ci95", "ratio_to_target")}
    check = {**fixed, "error_rate": refined.get("error_rate"), "refined_centres": kept}
    check.pop("fixed_centres", None)
    note = (f"the confidence and entropy centres, learning on after commissioning, made the check louder (ARL0 "
            f"{refined['arl0']:,.0f}, x{refined['ratio_to_target']:.2g} the target) than kept fixed as calibrated "
            f"({fixed['arl0']:,.0f}): exported with them fixed")
    return config.replace(centre_n=0), check, note


def _float_accuracy(model_dir: Path, clips: ClipSet, names: tuple[str, ...]) -> dict:
    from tinydrift.model.train import as_model_input, load_float_model

    try:
        model = load_float_model(model_dir)
    except TinydriftError:
        return {}
    with held_back():  # tf.data's own warnings
        predicted = model.predict(as_model_input(clips.features), verbose=0, batch_size=256).argmax(1)
    return summarize(predicted, clips.labels, label_names=names)


def _pct(result: dict | None) -> str:
    return f"{100 * result['accuracy']:.1f} %" if result and "accuracy" in result else "n/a"


def _fleet_budget(ref: dict) -> str:
    budget = ref["calibration"].get("fleet_budget")
    if not budget:
        return ""
    return (f"\n- That target is a fleet's budget: {budget['devices']:,} devices x "
            f"{budget['inferences_per_day']:,.0f} inferences a day / {budget['false_alarms_per_day']:g} false alarms "
            "a day across the fleet.")


def model_card(ref: dict, training: dict) -> str:
    """The model folder's README.md, from its reference.json and training.json."""
    acc = ref["accuracy"]
    image = ref.get("input_summary", {}).get("kind") == "image"
    shift = ref.get("shift", {"split": "accent", "title": "Accent shift (`test` then `accent`)"})
    adopted = bool(training.get("adopted_from"))
    own = ref.get("reference_data", {}).get("own", adopted)  # older exports: an adopted model's data was its own
    folder = ref.get("reference_data", {}).get("folder")
    held_out = (f"held-out {'images' if image else 'speakers'} of {f'`{folder}`' if folder else 'the reference data'} "
                "(`test`)" if own else
                "leaves of held-out plants (`test`)" if image else "English voices, held-out variants (`test`)")
    rows = [
        (held_out,
         _pct(acc["test"].get("float")), _pct(acc["test"]["litert"]),
         _pct(acc["test"]["tflm"]), f"{acc['test']['tflm']['mean_entropy']:.3f}"),
        (SHIFT_ROWS.get(shift["split"], shift["title"]), "", "", _pct(acc[shift["split"]]["tflm"]),
         f"{acc[shift['split']]['tflm']['mean_entropy']:.3f}"),
    ]
    for label, title in (("speech_commands", "real Speech Commands clips (300)"), ("fsdd", "FSDD digits, all `_unknown_` (3,000)")):
        if label in acc:
            rows.append((title, "", "", _pct(acc[label]["tflm"]), f"{acc[label]['tflm']['mean_entropy']:.3f}"))
    table = "\n".join(f"| {a} | {b} | {c} | {d} | {e} |" for a, b, c, d, e in rows)
    arl = ref["arl0_check"]
    det = ref[f"{shift['split']}_detection"]
    unit = "images" if image else "clips"
    cfg = training.get("config", {})
    groups = (("images" if image else "speakers (by file name)") if own else
              "plants" if image else "synthetic speakers (voice + variant)")
    trained = "" if adopted else f"""
- Training: {cfg.get('epochs', '?')} epochs, batch {cfg.get('batch_size', '?')}, Adam with cosine decay from
  {cfg.get('learning_rate', '?')}, {'flips and quarter turns' if image else 'SpecAugment-style masks'}; best validation accuracy
  {100 * training.get('best_val_accuracy', float('nan')):.2f} %."""
    return f"""# Model card: {ref['name']}

{_model_intro(ref, training, image)}{trained}

## Accuracy

| {unit} | float | LiteRT int8 | TFLite Micro int8 | mean entropy (nats) |
|---|---|---|---|---|
{table}

TFLite Micro and LiteRT agree on the argmax of {100 * acc['test']['tflm_litert_argmax_agreement']:.2f} % of the test {unit}
(LiteRT's FULLY_CONNECTED rounds once where TFLite Micro rounds twice).

## Sizes

- Model: {ref['model_bytes']:,} bytes of .tflite, {ref['macs']:,} multiply-accumulates per inference.
- Arena: {ref['arena_bytes']:,} bytes for the generated C (input kept for the monitor), against
  {ref['tflm_arena']['total']:,} bytes for TFLite Micro ({ref['tflm_arena']['head']:,} tensors + {ref['tflm_arena']['tail']:,} persistent).

## Drift monitor

- Input summary: {_summary_line(ref, image)}
- Reference statistics through the int8 model on {ref['reference_clips']:,} {_reference_source(own, folder, image)} (`ref`).
- Commissioning: {_commissioning(ref)}{_spread_line(ref)}{_loudness_line(ref)}{_quiet_line(ref)}
- Thresholds calibrated for ARL0 {_fmt(ref['calibration'].get('target_arl0'))} inferences, one budget shared by all scores,
  by block bootstrap over whole {groups} ({ref['calibration_seconds']} s).{_fleet_budget(ref)}
- Empirical ARL0 on no-drift streams of `test` {unit} (unseen by calibration): {_fmt(arl.get('arl0'))} inferences over
  {_fmt(arl.get('inferences'))} inferences ({arl.get('alarms', 'n/a')} alarms; 95 % interval
  {_fmt(arl['ci95'][0])} to {_fmt(arl['ci95'][1])}){_fixed_centres_line(arl)}.{_error_rate_line(ref)}
- {shift['title']}: detected in {100 * det.get('detection_rate', float('nan')):.0f} % of
  {det.get('streams', 'n/a')} streams, median delay {_fmt(det.get('median_delay'))} inferences, after {_fmt(det.get('false_alarms'))} false alarms
  before the change; change-time estimate off by a median {_fmt(det.get('change_time_error_median'))} inferences.

Files: `model_int8.tflite`, `include/` (generated C: model, monitor config, reference),
`reference.json` (the JSON twin the host reads), `training.json`.{_measured_apart(image and not adopted)}
"""


def _reference_source(own: bool, folder: str | None, image: bool) -> str:
    unit = "images" if image else "clips"
    if not own:
        return f"held-out in-domain {unit}"
    return f"{unit} of the user's own reference data" + (f" (`{folder}`)" if folder else "")


def _error_rate_line(ref: dict) -> str:
    calibrated, check = ref["calibration"].get("error_rate"), ref["arl0_check"].get("error_rate")
    if not calibrated or not check:
        return ""
    return (f"\n- Error rate on label feedback: ERROR_RATE at {calibrated['drift_q8'] / 256:g} standard deviations over the best "
            f"error rate (warning at {calibrated['warning_q8'] / 256:g}) from the {calibrated['min_labels']}th label, the best "
            f"starting where the reference's {100 * calibrated['error_rate']:.1f} % puts it (labels that begin after a "
            f"drift are judged against it), the lowest "
            f"level that holds the ARL0 with labels for {100 * calibrated['label_share']:g} % of inferences; on `test`: "
            f"{check['alarms']} false alarms in {_fmt(check['labels'] / check['label_share'])} inferences.")


# The shifted split's row in the model card's accuracy table (a user's data: the shift's title).
SHIFT_ROWS = {
    "accent": "same variants through other languages' voices (`accent`)",
    "smudged": "the same images through a smudged lens (`test` blurred)",
}


def _model_intro(ref: dict, training: dict, image: bool) -> str:
    cfg = training.get("config", {})
    hash_line = f"- Hash: `{ref['model_hash']}` (device id `{ref['model_id']}`)"
    if training.get("adopted_from"):
        shape = ref["input"]["shape"]
        what = f"{shape[1]}x{shape[2]} RGB images" if image else "49x40 micro_speech features"
        return f"""A classifier trained elsewhere ({len(ref['labels'])} classes: {', '.join(ref['labels'])}) for {what},
full int8, adopted from `{training['adopted_from']}` with `tinydrift adopt`, with the drift monitor's
reference statistics and calibrated thresholds from the user's own reference data (`tinydrift export --data`).

{hash_line}
- Input quantization: scale {ref['input']['scale']:.6g}, zero point {ref['input']['zero_point']}; the device feeds
  {'pixels minus 128' if image else "the front end's int8 features"} into it unchanged."""
    if image:
        height, width = ref["input"]["shape"][1:3]
        return f"""A DS-CNN plant-disease classifier ({len(ref['labels'])} classes: {', '.join(ref['labels'])}) for {height}x{width} RGB
images, full int8 for TFLite Micro, with the drift monitor's reference statistics and
calibrated thresholds. Made by `tinydrift data plant`, `train`, `quantize` and `export`.

{hash_line}
- Data: drawn leaves (`tinydrift data plant`, seed {cfg.get('seed', 0)}), {training.get('train_clips', '?')} training
  images, {training.get('val_clips', '?')} validation images; held-out splits show plants training never saw."""
    return f"""A DS-CNN keyword spotter ({len(ref['labels'])} classes: {', '.join(ref['labels'])}) for 49x40 micro_speech
features, full int8 for TFLite Micro, with the drift monitor's reference statistics and
calibrated thresholds. Made by `tinydrift data kws`, `train`, `quantize` and `export`.

{hash_line}
- Data: espeak-ng synthesis (`tinydrift data kws`, seed {cfg.get('seed', 0)}), {training.get('train_clips', '?')} training
  clips of English voices, {training.get('val_clips', '?')} validation clips; held-out splits hear voice variants
  training never heard."""


def _measured_apart(image: bool) -> str:
    if not image:
        return ""
    return ("\n\nMeasured apart from the export (`scripts/plant_model.sh`, `tests/test_plant_model.py`): accuracy on the "
            "same leaves as a PlantVillage-layout folder of JPEGs (`docs/figures/plant_eval_folder.json`) and the cost "
            "of an inference on the emulated Cortex-M4.")


def _summary_line(ref: dict, image: bool) -> str:
    n = len(ref["monitor_config"]["ref_mean"])
    if image:
        grid = ref["input_summary"]["grid"]
        return (f"`td_summarize_image` on a {grid}x{grid} grid: per colour channel, each block's mean, the image's "
                f"standard deviation and its mean absolute neighbour difference (sharpness), x 2^7, and its crispness "
                f"(second over first differences, Q12): {n} int16 values.")
    return (f"`td_summarize_frames`: the per-channel mean of the 49x40 features over frames, then the loudness of the "
            f"window's audio and of its quietest 20 ms block (`td_summarize_level`, log2 of their energy, which the "
            f"front end's gain control divides out of the features): {n} int16 values x 2^7.")


def _commissioning(ref: dict) -> str:
    n = ref["monitor_config"].get("commission_n", 0)
    if not n:
        return "off; every score is judged against the training reference above."
    components = ("mean and spread of each decorrelated input component" if ref["monitor_config"].get("whiten_q12")
                  is not None else "per-channel mean and spread")
    centre_n = ref["monitor_config"].get("centre_n", 0)
    refined = (f"; the confidence and entropy means go on learning from calm inferences until they weigh {centre_n:,} "
               f"(each of the first {n} weighing {1 << CENTRE_COMMISSION_SHIFT}), which the thresholds leave as margin"
               if centre_n else "")
    return (f"after each reset the device learns its own population's reference from its first {n} inferences "
            f"({components}, mean confidence and entropy, class frequencies) and judges later "
            f"inferences against it{refined}; the training reference stays for the z standardization, the "
            "decorrelation matrix and the ATC estimate.")


def _fixed_centres_line(arl: dict) -> str:
    """The same check with the confidence and entropy centres fixed at commissioning, as the
    levels were set: what the calibration promised, before the refinement's margin."""
    fixed = arl.get("fixed_centres")
    refined = arl.get("refined_centres")
    if refined:
        return (f"; with the centres learning on after commissioning it read {_fmt(refined.get('arl0'))} "
                f"({refined.get('alarms')} alarms), so they stay fixed at commissioning, as the levels were set")
    if not fixed:
        return ""
    return (f"; with the centres fixed at commissioning, as the levels were set, {_fmt(fixed.get('arl0'))} "
            f"({fixed.get('alarms')} alarms)")


def _spread_line(ref: dict) -> str:
    """The long-run spread the device learns, for the scores that have one (ABI 7 on)."""
    spread = ref["monitor_config"].get("score_spread_ref") or []
    names = [name for name, value in zip(("mean", "var", "confidence", "entropy", "label"), spread) if value]
    if not names:
        return ""
    return (f"\n- Long-run spread: the device learns how far the {' and '.join(names)} scores move from one "
            "block of 64 inferences to the next and, where that is wider than on the calibration's streams, judges "
            "their increments against its own spread (never sharper than calibrated); a reset keeps it.")


def _loudness_line(ref: dict) -> str:
    """The loudness limit, where the summary has a loudness value (ABI 10 on)."""
    config = ref["monitor_config"]
    if not config.get("loudness_limit") or "loudness_k" not in config:
        return ""
    loudness = ref["calibration"].get("loudness") or {}
    return (f"\n- Loudness limit: DATA_DRIFT at once when a two-sided CUSUM of the loudness value (summary value "
            f"{config['loudness_component']}; allowance {config['loudness_k'] / ONE_Q12:.2f} standard deviations "
            f"from the device's commissioned mean) reaches {config['loudness_limit'] / ONE_Q12:.1f} of those deviations, "
            f"a level that alone false-alarms once per {_fmt(loudness.get('arl_multiple'))} target ARL0s on the input "
            "scores' same-speaker runs: a microphone turned down moves this value only." + _class_loudness(ref))


def _class_loudness(ref: dict) -> str:
    """The loudness offsets per predicted class, where the config has them (ABI 13 on)."""
    offset = ref["monitor_config"].get("loudness_class_offset")
    if not offset:
        return ""
    labels = ref.get("labels") or [str(k) for k in range(len(offset))]
    low, high = int(np.argmin(offset)), int(np.argmax(offset))
    return (f" Each inference's loudness is read against its predicted class's own: from {offset[low] / ONE_Q12:+.2f} "
            f"standard deviations ({labels[low]}) to {offset[high] / ONE_Q12:+.2f} ({labels[high]}), taken off before "
            "anything reads it, so a stream with more of one class is not a louder or quieter microphone.")


def _quiet_line(ref: dict) -> str:
    """The quiet limit, where the summary has a quiet level (ABI 11 on)."""
    config = ref["monitor_config"]
    if not config.get("quiet_limit"):
        return ""
    quiet = ref["calibration"].get("quiet") or {}
    return (f"\n- Quiet limit: DATA_DRIFT at once when an upward CUSUM of the quiet level (summary value "
            f"{config['quiet_component']}, the loudness of the window's quietest block; the same allowance) reaches "
            f"{config['quiet_limit'] / ONE_Q12:.1f} deviations, a level that alone false-alarms once per "
            f"{_fmt(quiet.get('arl_multiple'))} target ARL0s on the same runs: noise filling the pauses between words "
            "moves this value, whatever its colour.")


def _fmt(value) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:,.0f}" if value >= 100 else f"{value:.3g}"
    return f"{value:,}" if isinstance(value, int) else str(value)
