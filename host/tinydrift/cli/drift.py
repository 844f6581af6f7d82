"""`tinydrift drift ...`: the monitor on its own: calibrate it, emit its header, check its
ARL0 and its C against the twin, count its cost on the emulated Cortex-M4."""

from __future__ import annotations

import json
import time
from pathlib import Path

import click
import numpy as np

from tinydrift.atomic import all_or_nothing, write_text
from tinydrift.cli.common import progress_bars
from tinydrift.cli.params import (C_NAME_PARAM, COUNT, OUTPUT_FOLDER, SEED, TARGET_ARL0, FiniteFloat,
                                  commission_option, header_file, input_file, input_path,
                                  speaker_run_option)
from tinydrift.errors import TinydriftError
from tinydrift.monitor.calibrate import ARL0_BAND
from tinydrift.monitor.config import MonitorConfig, jsonable


def _load_config(path: Path) -> MonitorConfig:
    """A monitor config JSON, or a file that holds one as `monitor_config` (a model folder's
    reference.json, a wake-word folder's monitor.json)."""
    try:
        data = json.loads(Path(path).read_text())
        if isinstance(data, dict) and "monitor_config" in data:
            if not isinstance(data["monitor_config"], dict):
                raise TinydriftError("its monitor_config is not a JSON object")
            data = data["monitor_config"]
        elif isinstance(data, dict) and "abi_version" not in data:
            # a reference.json without its monitor once read as a config of 21 unknown fields
            raise TinydriftError("it holds no monitor config (no monitor_config object, and no config's fields)")
        return MonitorConfig.from_dict(data).validate()
    except (OSError, ValueError, TinydriftError) as e:
        raise TinydriftError(f"cannot use the monitor config {path}: {e} (make one with `tinydrift drift calibrate`, "
                             "or give a model folder's reference.json or monitor.json)") from e


# What a clip set without probs needs, for the commands that cannot run a model themselves.
PROBS_ELSEWHERE = ("save the model's probs with the features (for a model folder, `tinydrift export` does all of this, "
                   "and `drift heldout --model` runs one)")


def _load_samples(path: Path, model: bytes | None = None,
                  probs_from: str = "give --model MODEL_DIR, whose model makes the probs") -> dict:
    """summaries int16 [N, C] (or features int8 [N, frames, C], summarized as the device
    does), probs int8 [N, K], groups [N], optional labels [N]. A clip set (`tinydrift data`)
    serves too when `model` is given: its features go through TFLite Micro for the probs."""
    import zipfile

    from tinydrift.data.npzfile import npz_problem, read_arrays
    from tinydrift.app import SENSOR_BLOCK
    from tinydrift.monitor.twin import summarize_image, window_energies, window_loudness, window_quiet, window_summary
    from tinydrift.pipeline.export import IMAGE_SUMMARY_GRID

    try:
        data = read_arrays(path)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise TinydriftError(f"cannot read {path}: {npz_problem(path, e)}") from None
    if "groups" not in data and "meta_group" in data:  # a ClipSet
        data["groups"] = data["meta_group"]
    if "images" in data and "features" not in data:  # an ImageSet (`tinydrift data plant`): its images as int8
        from tinydrift.data.imageset import ImageSet

        images = ImageSet.load(path)
        # without plant identities (a set of one's own), each image is its own group, as a folder's
        groups = images.domain.get("group", np.arange(len(images), dtype=np.int64))
        data = {"features": images.features, "labels": images.labels, "groups": groups}
    if "features" in data and np.ndim(data["features"]) == 4 and np.shape(data["features"])[-1] == 1:
        data["features"] = data["features"][..., 0]  # the keyword model's input shape [N, frames, channels, 1]
    if "features" in data:
        _check_features(path, data["features"])
    if "probs" not in data and "features" in data and model is not None:
        from tinydrift.model.quantize import input_shape
        from tinydrift.model.runtimes import run_tflm

        shape = input_shape(model)
        if data["features"][0].size != int(np.prod(shape[1:])):
            raise TinydriftError(f"{path}: features of {'x'.join(map(str, data['features'].shape[1:]))}, and the model "
                                 f"takes {'x'.join(map(str, shape[1:]))}: give the model these samples were made for")
        data["probs"] = run_tflm(model, data["features"].astype(np.int8))
    if "summaries" not in data and "features" in data:
        features = data["features"].astype(np.int8)
        if features.ndim == 4:
            data["summaries"] = summarize_image(features, IMAGE_SUMMARY_GRID)
        elif "audio" in data:
            data["summaries"] = window_summary(features, window_energies(data["audio"], SENSOR_BLOCK))
            data["loudness_component"] = window_loudness(data["summaries"])
            data["quiet_component"] = window_quiet(data["summaries"])
    # features without audio lack the loudness: said below, once probs and groups are there
    missing = [k for k in ("summaries", "probs", "groups") if k not in data
               and not (k == "summaries" and "features" in data)]
    if "audio" in data and "features" not in data and "summaries" not in data:
        # "lacks summaries, probs" named what the monitor reads, not the step that makes them
        raise TinydriftError(f"{path}: a clip set of audio without the front end's features, from which the "
                             "summaries and probs are made: give a set `tinydrift data kws` made (it computes them)")
    if missing:
        hint = (f" (a clip or image set of `tinydrift data`: {probs_from})"
                if missing == ["probs"] and "features" in data else "")
        raise TinydriftError(f"{path} lacks {missing}: save summaries (or features), probs, groups and optionally "
                             f"labels{hint}")
    if "summaries" not in data:
        raise TinydriftError(f"{path}: features without the clips' audio, whose loudness and quiet level are the device "
                             "summary's last values: save the audio beside them (`tinydrift data kws` does), or the "
                             "summaries")
    _check_shapes(path, data)
    _check_values(path, data)
    data["summaries"] = data["summaries"].astype(np.int16)
    data["probs"] = data["probs"].astype(np.int8)
    return data


def _check_features(path: Path, features: np.ndarray) -> None:
    """The model's int8 inputs, as the front end gives them (a camera's pixels minus 128): the
    cast to int8 below once wrapped int16 values and made floats of -1..1 zeros without a
    word (then "every summary value is the same"), and a set of none was an IndexError."""
    expected = ("expected the model's int8 inputs (-128..127: the front end's features, or a camera's pixels minus "
                "128) as [N, frames, channels] (a trailing 1, as the model's input has, is dropped) or [N, height, "
                "width, 3]")
    if features.ndim < 3 or features.ndim > 4 or (features.ndim == 4 and features.shape[-1] != 3) or len(features) == 0:
        raise TinydriftError(f"{path}: features {features.shape}; {expected}, N >= 1")
    kind = features.dtype.kind
    if kind not in "iuf" or (kind == "f" and not np.all(np.isfinite(features))):
        raise TinydriftError(f"{path}: features of {features.dtype} that are not all finite numbers; {expected}")
    low, high = features.min(), features.max()
    if low < -128 or high > 127 or (kind == "f" and not np.array_equal(features, np.round(features))):
        raise TinydriftError(f"{path}: features of {features.dtype} from {low:.4g} to {high:.4g}; {expected}")


def _check_shapes(path: Path, data: dict) -> None:
    """One row per sample in every array, numbers in summaries and probs: what the monitor's
    twin indexes and broadcasts without asking."""
    n = len(data["groups"]) if np.ndim(data["groups"]) == 1 else -1
    problems = [f"{key} {np.shape(data[key])}" for key, ndim in (("summaries", 2), ("probs", 2), ("groups", 1), ("labels", 1))
                if key in data and (np.ndim(data[key]) != ndim or len(data[key]) != n)]
    problems += [f"{key} of {data[key].dtype}" for key in ("summaries", "probs") if data[key].dtype.kind not in "iuf"]
    if n < 1 or problems:
        raise TinydriftError(f"{path}: {', '.join(problems) or 'no samples'}; expected summaries [N, C], probs [N, K], "
                             "groups [N] and labels [N] with the same N >= 1")


def _check_values(path: Path, data: dict) -> None:
    """probs as the device reads them (the int8 softmax output, p = (q + 128) / 256), and
    labels among their classes: a float probability would be cast to 0 and calibrate nothing."""
    probs = data["probs"]
    if probs.dtype.kind == "f" or probs.min() < -128 or probs.max() > 127:
        raise TinydriftError(f"{path}: probs of {probs.dtype} from {probs.min():.4g} to {probs.max():.4g}; expected the "
                             "model's int8 softmax outputs (-128..127, probability (q + 128) / 256), as TFLite Micro "
                             "gives them")
    labels = data.get("labels")
    if labels is not None and len(labels):
        whole = labels.dtype.kind in "iu" or (labels.dtype.kind == "f" and bool(np.all(np.isfinite(labels)))
                                               and bool(np.all(labels == np.round(labels))))
        if not whole:
            shown = ", ".join(map(str, labels[:3].tolist()))
            raise TinydriftError(f"{path}: labels of {labels.dtype} ({shown}, ...); labels are class indices "
                                 f"0..{probs.shape[1] - 1} (whole numbers), in the order of the model's outputs")
        if labels.min() < 0 or labels.max() >= probs.shape[1]:
            raise TinydriftError(f"{path}: labels from {labels.min()} to {labels.max()}, and probs has "
                                 f"{probs.shape[1]} classes: labels are class indices 0..{probs.shape[1] - 1}")
    groups = data["groups"]
    if groups.dtype.kind == "f" and not np.all(np.isfinite(groups)):
        raise TinydriftError(f"{path}: groups hold NaN or infinite values; each sample's group names its speaker "
                             "(or plant): whole numbers or strings")
    summaries = data["summaries"]
    fractional = summaries.dtype.kind == "f" and not np.all(np.isfinite(summaries) & (summaries == np.round(summaries)))
    if fractional or summaries.min() < -32768 or summaries.max() > 32767:
        raise TinydriftError(f"{path}: summaries of {summaries.dtype} from {summaries.min():.4g} to {summaries.max():.4g}; "
                             "expected the device's int16 input summaries (-32768..32767, e.g. a keyword model's "
                             "channel means x 2^7), as the firmware's td_summarize_* give them")
    if summaries.min(axis=0).tolist() == summaries.max(axis=0).tolist():
        raise TinydriftError(f"{path}: every summary value is the same in all {len(summaries)} samples: nothing to "
                             "learn a reference from; give the summaries of real inputs")


def _check_fits(path: Path, data: dict, config: MonitorConfig) -> None:
    summary, classes = data["summaries"].shape[1], data["probs"].shape[1]
    if (summary, classes) != (config.n_summary, config.n_classes):
        raise TinydriftError(f"{path}: {summary} summary channels and {classes} classes, but the config expects "
                             f"{config.n_summary} and {config.n_classes}: give samples of the config's model")


CONFIG_FILE = input_file("monitor config JSON (monitor_config_NAME.json from `tinydrift drift calibrate`, or a model "
                         "folder's reference.json or monitor.json)")
SAMPLES_FILE = input_file("samples file (.npz)")


@click.group("drift")
def drift():
    """The on-device drift monitor: calibrate, emit the C header, check ARL0 (on the
    calibration's own samples or on held-out ones), verify the C against its twin, measure
    its cost on the emulated Cortex-M4."""


@drift.command("calibrate")
@click.argument("samples", type=SAMPLES_FILE)
@click.option("--out", type=OUTPUT_FOLDER, required=True, help="Folder for the header and the JSON config.")
@click.option("--name", type=C_NAME_PARAM, default="kws", show_default=True, help="Config name: td_monitor_config_<name>.")
@click.option("--target-arl0", type=TARGET_ARL0, default=100_000, show_default=True, help="Inferences between false alarms, all scores together.")
@click.option("--n-inferences", type=COUNT, default=8_000_000, show_default=True, help="No-drift inferences simulated for the levels.")
@click.option("--stream-groups", type=COUNT, default=None, help="Groups (speakers) per simulated stream; default all.")
@commission_option
@speaker_run_option
@click.option("--no-whiten", is_flag=True, help="Standardize channels one by one (no decorrelation).")
@click.option("--seed", type=SEED, default=0, show_default=True)
def calibrate_cmd(samples: Path, out: Path, name: str, target_arl0: float, n_inferences: int, stream_groups: int | None,
                  commission_n: int, speaker_run: int | None, no_whiten: bool, seed: int):
    """Reference statistics and calibrated levels from held-out in-domain SAMPLES (.npz with
    summaries or features, probs, groups, labels) of the int8 model: the monitor `tinydrift
    export` makes for a model folder, from samples you made yourself.

    SAMPLES holds, for N inferences: summaries int16 [N, C] as the device forms them (or the
    int8 features [N, frames, C], summarized here), probs int8 [N, K] (the model's softmax
    output on TFLite Micro, probability (q + 128) / 256), groups [N] (the speaker or place
    each came from: calibration resamples whole groups) and labels [N] (class indices, for
    the error-rate test's level; without them it keeps DDM's textbook levels).

    A keyword spotter's features saved with their clips' audio (as `tinydrift data kws`
    does) are summarized as the app does, the window's loudness last, and that value gets
    the limit of its own that finds a microphone turned down or up; summaries given as they
    are get no such limit.

    \b
    Examples:
      tinydrift drift calibrate ref.npz --out include/
      tinydrift drift calibrate ref.npz --out include/ --speaker-run 45 --target-arl0 1e6
    """
    from tinydrift.monitor.calibrate import TooFewSimulated, calibrate_monitor
    from tinydrift.codegen.monitor_header import emit_monitor_config_h

    data = _load_samples(samples, probs_from=PROBS_ELSEWHERE)
    n_groups = len(np.unique(data["groups"]))
    if n_groups < 2:
        raise TinydriftError(f"{samples}: every sample is of one group; calibration resamples whole groups (speakers "
                             "or plants) to hold the false-alarm rate on ones it never saw: give samples of many "
                             "groups (tens, for a rate that holds)")
    if stream_groups is not None and stream_groups > n_groups:
        raise TinydriftError(f"--stream-groups {stream_groups}: the samples hold {n_groups} groups; draw each "
                             f"stream from at most that many")
    try:
        with progress_bars() as bars:  # on stderr: stdout is the report's JSON
            config, report = calibrate_monitor(
                data["summaries"], data["probs"], data["groups"], data.get("labels"), target_arl0=target_arl0,
                commission_n=commission_n, speaker_run=speaker_run, n_inferences=n_inferences,
                loudness_component=data.get("loudness_component"), quiet_component=data.get("quiet_component"),
                stream_groups=stream_groups, seed=seed, whiten=not no_whiten, progress_factory=bars)
    except TooFewSimulated as e:
        raise TinydriftError(f"{e}: raise --n-inferences (now {n_inferences:,}) or lower --target-arl0") from None
    written = (out / f"td_monitor_config_{name}.h", out / f"monitor_config_{name}.json")
    with all_or_nothing():  # the header and its JSON twin together, or neither
        emit_monitor_config_h(config, written[0])
        write_text(written[1], json.dumps(config.to_dict(), indent=1))
    click.echo(json.dumps(jsonable({k: v for k, v in report.items() if k != "combined_curve"}), indent=1))
    click.echo(f"wrote {written[0]} and {written[1]}", err=True)


@drift.command("header")
@click.argument("config_json", type=CONFIG_FILE)
@click.argument("header", type=header_file())
def header_cmd(config_json: Path, header: Path):
    """Write the C header (td_monitor_config_<stem>) of a JSON monitor config. The stem's
    characters other than ASCII letters, digits and '_' become '_' (leading and trailing ones
    dropped): the line printed names the C symbol."""
    from tinydrift.codegen.monitor_header import c_identifier, emit_monitor_config_h

    emit_monitor_config_h(_load_config(config_json), header)
    symbol = c_identifier(header.stem.removeprefix("td_monitor_config_"))
    click.echo(f"{header} (td_monitor_config_{symbol})")


@drift.command("check-arl")
@click.argument("config_json", type=CONFIG_FILE)
@click.argument("samples", type=SAMPLES_FILE)
@click.option("--n-inferences", type=COUNT, default=None, help="Default: 30 x the target ARL0.")
@click.option("--within", "factor", type=FiniteFloat(min=1.0, min_open=True), default=ARL0_BAND, show_default=True,
              help="Pass when the empirical ARL0 is between target / FACTOR and target x FACTOR.")
def check_arl_cmd(config_json: Path, samples: Path, n_inferences: int | None, factor: float):
    """Empirical ARL0 on no-drift SAMPLES calibration did not see; exit 1 when it is off the
    target by more than a factor (default: within x0.5 to x2, the project's promise).

    A config whose confidence and entropy centres go on learning after commissioning
    (centre_n > 0, as `tinydrift export` makes them) is quieter than its levels were set
    for: it is also run with the centres fixed, as calibrated ("fixed_centres" in the JSON),
    and that run is held to the band; the config as it is, only to its lower end. Too few
    alarms to tell (the 95 % interval spanning the band, or reaching into it from outside)
    exits 1 too: raise --n-inferences.

    \b
    Example:
      tinydrift drift check-arl out/monitor_config_kws.json held_out.npz --within 2
    """
    from tinydrift.monitor.calibrate import add_fixed_centres, measure_arl0

    data, config = _load_samples(samples, probs_from=PROBS_ELSEWHERE), _load_config(config_json)
    _check_fits(samples, data, config)
    n_groups = len(np.unique(data["groups"]))
    if len(data["groups"]) < max(2 * config.commission_n, 1000) or n_groups < 10:
        # streams then replay the clips a device commissioned on: quieter than its population
        groups = f"{n_groups} group{'' if n_groups == 1 else 's'}"
        click.secho(f"warning: {len(data['groups']):,} samples of {groups}; streams repeat them, so the ARL0 reads "
                    "quieter than the population's: check on the held-out data's thousands of samples from tens of "
                    "groups", fg="yellow", err=True)
    result = measure_arl0(config, data["summaries"], data["probs"], data["groups"], n_inferences=n_inferences)
    judged = add_fixed_centres(result, config, data["summaries"], data["probs"], data["groups"],
                               n_inferences=n_inferences)
    click.echo(json.dumps(jsonable(result), indent=1))  # strict JSON: an ARL0 with no alarm is null
    if result["ratio_to_target"] < 1 / factor <= judged["ratio_to_target"]:
        click.secho(f"error: empirical ARL0 {result['arl0']:,.0f} is x{result['ratio_to_target']:.3g} the target "
                    f"{result['target_arl0']:,.0f}, under x{1 / factor:.3g}: the refined centres made it louder",
                    fg="red", err=True)
        raise SystemExit(1)
    result = judged
    fixed = " with the centres fixed, as calibrated," if config.centre_n else ""
    ratio = result["ratio_to_target"]
    target, (low, high) = result["target_arl0"], result["ci95"]
    # No alarm, with the interval's floor still inside the band; a handful, with the interval
    # spanning the band on both sides; or an estimate outside the band whose interval reaches
    # into it: a pass (or a fail) would say nothing.
    outside = not 1 / factor <= ratio <= factor
    if low < target * factor and (result["alarms"] == 0 or (low < target / factor and high > target * factor)
                                  or (outside and high > target / factor)):
        counted = (f"no alarm in {result['inferences']:,} inferences: ARL0 above {low:,.0f}" if not result["alarms"] else
                   f"{result['alarms']} alarms in {result['inferences']:,} inferences: ARL0 between {low:,.0f} and "
                   f"{high:,.0f}")
        click.secho(f"error: {counted} (95 %), too few to compare with the target {target:,.0f}; raise "
                    "--n-inferences (default 30 x the target)", fg="red", err=True)
        raise SystemExit(1)
    if outside:
        click.secho(f"error: empirical ARL0{fixed} {result['arl0']:,.0f} is x{ratio:.3g} the target "
                    f"{result['target_arl0']:,.0f}, outside x{1 / factor:.3g} to x{factor:.3g}", fg="red", err=True)
        raise SystemExit(1)


@drift.command("heldout")
@click.argument("ref", type=SAMPLES_FILE)
@click.argument("test", type=SAMPLES_FILE)
@click.option("--model", type=input_path("model folder or .tflite file"), default=None,
              help="int8 model (folder or .tflite) to run clip or image sets (`tinydrift data kws` or `plant`) "
                   "through when they hold no probs.")
@click.option("--drifted", type=SAMPLES_FILE, default=None,
              help="Drifted samples: also measure detection for the two directional pairs.")
@click.option("--target-arl0", type=TARGET_ARL0, default=100_000, show_default=True)
@click.option("--splits", type=click.IntRange(0, 1000), default=4, show_default=True, help="Random splits of ref + test within speakers.")
@click.option("--n-inferences", type=COUNT, default=None, help="Simulated per calibration (default: calibrate's).")
@commission_option
@speaker_run_option
@click.option("--seed", type=SEED, default=0, show_default=True)
def heldout_cmd(ref: Path, test: Path, model: Path | None, drifted: Path | None, target_arl0: float, splits: int,
                n_inferences: int | None, commission_n: int, speaker_run: int | None, seed: int):
    """How the calibration holds on unseen data: calibrate on REF as `tinydrift export` does
    and check the ARL0 on TEST, the reverse, and random splits of both (same speakers or plants, other clips or
    images); prints each pair's measured / target and their geometric mean and log spread,
    as JSON.

    REF and TEST are .npz sets: samples (summaries, probs, groups, labels), or clip or image
    sets made by `tinydrift data kws` / `tinydrift data plant` with --model to run them
    through. Each is calibrated on in turn: each needs the export's minimum of samples
    (2,000 clips, 1,000 images).

    \b
    Example:
      tinydrift drift heldout build/data/plant/ref.npz build/data/plant/test.npz --model models/plant
    """
    from tinydrift.monitor.calibrate import DEFAULT_SIMULATED, TooFewSimulated, require_simulated
    from tinydrift.monitor.heldout import heldout_arl0
    from tinydrift.monitor.reference import MIN_REFERENCE_SAMPLES

    try:
        require_simulated(n_inferences or DEFAULT_SIMULATED, target_arl0)  # before the model runs on the sets
    except TooFewSimulated as e:
        raise TinydriftError(f"{e}: raise --n-inferences or lower --target-arl0") from None
    tflite = None
    if model is not None:
        from tinydrift.model.quantize import load_int8

        tflite, _ = load_int8(model)
    options = {} if n_inferences is None else {"n_inferences": n_inferences}
    samples = {"REF": _load_samples(ref, tflite), "TEST": _load_samples(test, tflite)}
    minimum = MIN_REFERENCE_SAMPLES
    if np.ndim(samples["REF"].get("features")) == 4:  # images: the reference an export calibrates a camera model on
        from tinydrift.pipeline.export import MIN_IMAGE_REFERENCE

        minimum = options["min_samples"] = MIN_IMAGE_REFERENCE
    if drifted is not None:
        samples["--drifted"] = _load_samples(drifted, tflite)
    shapes = {name: (d["summaries"].shape[1], d["probs"].shape[1]) for name, d in samples.items()}
    if len(set(shapes.values())) > 1:
        raise TinydriftError("the sets differ: " + ", ".join(f"{name} has {c} summary values and {k} classes"
                                                             for name, (c, k) in shapes.items())
                             + "; give sets of one model's inputs and outputs")
    # each is calibrated on in turn: say which is too small before minutes of work
    for name, path in (("REF", ref), ("TEST", test)):
        if len(samples[name]["groups"]) < minimum:
            raise TinydriftError(f"{path} ({name}) holds {len(samples[name]['groups'])} samples; the monitor is "
                                 f"calibrated on each of REF and TEST in turn, which needs at least {minimum:,}: "
                                 "give larger sets")
    result = heldout_arl0(samples["REF"], samples["TEST"], target_arl0=target_arl0, splits=splits,
                          drifted=samples.get("--drifted"), seed=seed, commission_n=commission_n,
                          speaker_run=speaker_run, loudness_component=samples["REF"].get("loudness_component"),
                          quiet_component=samples["REF"].get("quiet_component"), **options)
    click.echo(json.dumps(jsonable(result), indent=1))  # strict JSON: an ARL0 or delay never reached is null


@drift.command("verify")
@click.argument("config_json", type=CONFIG_FILE)
@click.option("--inferences", type=click.IntRange(1, 1_000_000), default=20_000, show_default=True,
              help="Random inferences in the stream (up to 1,000,000; each comes with its sensor blocks).")
@click.option("--seed", type=SEED, default=0, show_default=True)
def verify_cmd(config_json: Path, inferences: int, seed: int):
    """Run the firmware's C (built for this host) and the twin on the same random event
    stream with this config; exit 1 on any difference."""
    from tinydrift.monitor import synthetic
    from tinydrift.target.host_monitor import CMonitor
    from tinydrift.monitor.twin import run_events

    config = _load_config(config_json)
    events, summaries, probs, pcm = synthetic.random_events(np.random.default_rng(seed), config, inferences)
    started = time.perf_counter()
    click.echo(f"{len(events)} events through the C monitor...", err=True)
    c_rows = CMonitor(config).run_events(events, summaries, probs, pcm)
    click.echo(f"...through the twin (the C took {time.perf_counter() - started:.0f} s)...", err=True)
    bad = int(np.sum((c_rows != run_events(config, events, summaries, probs, pcm)).any(axis=1)))
    click.echo(f"{len(events)} events, {bad} differ")
    if bad:
        raise SystemExit(1)


@drift.command("cost")
@click.argument("config_json", type=CONFIG_FILE)
def cost_cmd(config_json: Path):
    """Instructions per monitor call on the emulated Cortex-M4 (QEMU -icount), and the
    monitor's state in bytes, for one config: a model folder's reference.json, a wake-word
    folder's monitor.json, or `tinydrift drift calibrate`'s monitor_config_NAME.json. The
    figures are per call of td_monitor_update, sensor health on one 320-sample block and
    label feedback, for that config; the state is sized for it as the firmware build sizes
    it. Each app's input summary is measured too: `summarize` (a keyword spotter's means of
    49 frames x 40 channels), `summarize_stream` (a wake-word detector's: 3 frames' means,
    their at-floor counts, their samples' loudness and tilt, the quiet level) and
    `summarize_image48` (a camera's, one 48x48 RGB image on a 3x3 grid; it scales with the
    pixels). `config_summary` names the one that gives this config's summary; an inference
    costs that plus the update.

    \b
    Examples:
      tinydrift drift cost models/kws/reference.json
      tinydrift drift cost build/drift/monitor_config_kws.json
    """
    from tinydrift.target.monitor_cost import measure_cost

    click.echo(json.dumps(measure_cost(_load_config(config_json)), indent=1))
