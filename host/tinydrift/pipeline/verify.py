"""`tinydrift verify`: the C a model export ships, run on this host, against its references.

Three stages, each compared element by element on the same inputs (a camera model's:
model, image summary and monitor, below):

- front end: the device front end's C (NativeFrontend) against the host front end
  (features_int8) on real or synthesized 1 s clips;
- model: MODEL_DIR/include/td_model_<name>.c, the generated C the firmware compiles, against
  TFLite Micro (run_tflm) on the clips' features and on random int8 inputs;
- monitor: the C monitor with MODEL_DIR/include/td_monitor_config_<name>.h compiled in,
  against the Python twin (MonitorTwin) with reference.json's monitor_config, on one
  event stream (inferences of those inputs, label feedback, sensor blocks, resets) that
  runs in domain, then drifts so the alarms fire.

A camera model has no front end: its stages are the model (the generated C against TFLite
Micro on images and random int8 inputs), the image summary (td_summarize_image's C against
the twin's summarize_image on the same images) and the monitor (as above, on the summaries
of those images and the model's outputs).

A user runs it after generating code for a new model: any mismatch is a bug in the
generator, the kernels or a stale header, and the exit code says so.
"""

from __future__ import annotations

import ctypes
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from tinydrift import atomic, firmware
from tinydrift.data.clipset import ClipSet
from tinydrift.data.wakeword_audio import FSDD_FOLDER, SPEECH_COMMANDS_FOLDER
from tinydrift.errors import TinydriftError
from tinydrift.modeldir import ModelDir
from tinydrift.frontend.features import CLIP_SAMPLES, features_int8

DEFAULT_SAMPLES = 64
DEFAULT_CLIP_SET = Path("build/data/kws/test.npz")
DEFAULT_IMAGE_SET = Path("build/data/plant/test.npz")
SHARED_DATA = Path("shared/data")
STAGES = ("frontend", "exports", "model", "monitor")
IMAGE_STAGES = ("exports", "model", "summary", "monitor")  # a camera model's, in the device's order


@dataclass
class StageResult:
    """One stage's comparison: how many inputs (clips, model inputs or monitor events),
    how many values were compared and how many of them differ, and where first."""

    inputs: int
    mismatches: int
    elements: int
    mismatching_inputs: int = 0
    first_mismatch: str = ""
    note: str = ""

    @property
    def ok(self) -> bool:
        return self.mismatches == 0


@dataclass
class Clips:
    pcm: np.ndarray  # int16 [N, CLIP_SAMPLES]
    labels: np.ndarray  # int [N], -1 where unknown
    source: str


@dataclass
class VerifyReport:
    model_dir: str
    name: str
    source: str
    stages: dict[str, StageResult] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return all(stage.ok for stage in self.stages.values())

    def to_dict(self) -> dict:
        return {
            "model_dir": self.model_dir,
            "name": self.name,
            "source": self.source,
            "ok": self.ok,
            "stages": {name: asdict(stage) for name, stage in self.stages.items()},
        }


# -- inputs ----------------------------------------------------------------------------------


def _candidates(default_name: Path) -> list[Path]:
    """The path relative to the working directory, then to the repository."""
    return [default_name, firmware.REPO_ROOT / default_name]


def shared_data_dirs() -> list[Path]:
    """Where ../shared/data (the real recordings) may be: beside the working directory or the repository."""
    return [Path("..") / SHARED_DATA, firmware.REPO_ROOT.parent / SHARED_DATA]


def shared_data_folder(name: str) -> Path | None:
    """../shared/data/NAME where it is (the first of shared_data_dirs holding it), else None."""
    return next((d / name for d in shared_data_dirs() if (d / name).is_dir()), None)


def _pick(n_total: int, n: int, rng: np.random.Generator) -> np.ndarray:
    return np.sort(rng.choice(n_total, size=min(n, n_total), replace=False))


def synthesized_clips(n: int, rng: np.random.Generator) -> np.ndarray:
    """Noise, tones, chirps, silence and clipped signals: int16 [n, CLIP_SAMPLES]. They
    exercise the front end's whole range when no recorded speech is at hand."""
    t = np.arange(CLIP_SAMPLES) / 16000.0
    clips = np.zeros((n, CLIP_SAMPLES), dtype=np.int16)
    for i in range(n):
        kind = i % 5
        level = 10.0 ** rng.uniform(1.0, 4.3)  # from 70 dB below full scale to 7 dB below
        if kind == 0:
            x = rng.normal(0.0, level, CLIP_SAMPLES)
        elif kind == 1:
            x = level * np.sin(2 * np.pi * rng.uniform(60, 7800) * t + rng.uniform(0, 2 * np.pi))
        elif kind == 2:
            f0, f1 = rng.uniform(100, 7000, 2)
            x = level * np.sin(2 * np.pi * (f0 * t + (f1 - f0) * t * t / 2))
        elif kind == 3:
            x = rng.normal(0.0, rng.uniform(0.0, 3.0), CLIP_SAMPLES)  # near silence
        else:
            # Overdriven: a tone up to 3x full scale, clipped.
            x = rng.uniform(1.2, 3.0) * 32767 * np.sin(2 * np.pi * rng.uniform(100, 2000) * t) + rng.normal(0, 300, CLIP_SAMPLES)
        clips[i] = np.clip(np.round(x), -32768, 32767).astype(np.int16)
    return clips


def load_clips(data: Path | None, n: int, rng: np.random.Generator) -> Clips:
    """n clips from `data` (a clip set .npz or a WAV folder), else from the default clip
    set, else from the shared real recordings, else synthesized."""
    from tinydrift.data.wavfolder import load_any

    if data is not None:
        data = Path(data)
        clips = ClipSet.load(data) if data.suffix == ".npz" else load_any(data)
        source = f"clip set {data}" if data.suffix == ".npz" else f"recordings in {data}"
    else:
        clips, source = None, ""
        for path in _candidates(DEFAULT_CLIP_SET):
            if path.is_file():
                clips, source = ClipSet.load(path), f"clip set {path}"
                break
        if clips is None:
            found = next((f for f in map(shared_data_folder, (SPEECH_COMMANDS_FOLDER, FSDD_FOLDER)) if f is not None), None)
            if found is not None:
                clips, source = load_any(found), f"real recordings in {found}"
        if clips is None:
            return Clips(synthesized_clips(n, rng), np.full(n, -1), f"{n} synthesized clips (noise, tones, chirps, silence, clipping): no clip set or recordings found")
    if len(clips) == 0:
        raise TinydriftError(f"{data}: no clips")
    rows = _pick(len(clips), n, rng)
    return Clips(clips.audio[rows], clips.labels[rows].astype(np.int64), f"{len(rows)} clips of {len(clips)} from {source}")


def synthesized_images(n: int, height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """uint8 [n, height, width, 3]: smooth gradients, noise, flat frames (black, grey,
    saturated) and hard edges, so every summary term and the model's saturating paths are
    reached when no image set is at hand."""
    yy, xx = np.mgrid[0:height, 0:width] / max(height, width)
    images = np.zeros((n, height, width, 3), dtype=np.float64)
    for i in range(n):
        kind = i % 4
        if kind == 0:
            images[i] = 255 * (rng.uniform(0, 1, 3) * xx[..., None] + rng.uniform(0, 1, 3) * yy[..., None]) / 2
        elif kind == 1:
            images[i] = rng.uniform(0, 255, (height, width, 3))
        elif kind == 2:
            images[i] = rng.choice([0.0, 128.0, 255.0])
        else:
            images[i] = np.where((xx > rng.uniform(0.2, 0.8))[..., None], rng.uniform(0, 255, 3), rng.uniform(0, 255, 3))
    return np.clip(np.rint(images), 0, 255).astype(np.uint8)


def load_images(data: Path | None, n: int, shape: tuple[int, int], labels: tuple[str, ...],
                rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, str]:
    """(uint8 images [n, H, W, 3], labels or -1, where from): from `data` (an image set
    .npz or class folders), else the default plant set when it fits the model, else
    synthesized."""
    from tinydrift.data.imagefolder import load_image_folder
    from tinydrift.data.imageset import ImageSet

    images, source = None, ""
    if data is not None:
        data = Path(data)
        images = ImageSet.load(data) if data.suffix == ".npz" else load_image_folder(data, labels, size=shape)
        source = f"image set {data}" if data.suffix == ".npz" else f"images in {data}"
    else:
        for path in _candidates(DEFAULT_IMAGE_SET):
            if path.is_file():
                images, source = ImageSet.load(path), f"image set {path}"
                break
    if images is not None and images.images.shape[1:3] != tuple(shape):
        if data is not None:
            raise TinydriftError(f"{data}: images {list(images.images.shape[1:3])}, the model takes {list(shape)}: "
                                 "give an image set of the model's size, or image class folders")
        images = None
    if images is None:
        return (synthesized_images(n, *shape, rng), np.full(n, -1),
                f"{n} synthesized images (gradients, noise, flat frames, edges): no image set found")
    if len(images) == 0:
        raise TinydriftError(f"{data}: no images")
    rows = _pick(len(images), n, rng)
    return images.images[rows], images.labels[rows].astype(np.int64), f"{len(rows)} images of {len(images)} from {source}"


def random_model_inputs(n: int, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """n random int8 inputs: uniform, plus the extremes (all -128, all 0, all 127) that
    reach the saturation paths."""
    inputs = rng.integers(-128, 128, size=(max(n, 3), *shape), dtype=np.int16).astype(np.int8)
    inputs[0], inputs[1], inputs[2] = -128, 0, 127
    return inputs[:n]  # fewer than 3: the first extremes (none once, while the monitor stream drew on n)


# -- comparisons -----------------------------------------------------------------------------


def compare(name: str, got: np.ndarray, expected: np.ndarray, what: str = "input", columns=None) -> StageResult:
    """Element-by-element comparison of [N, ...] arrays."""
    got, expected = np.asarray(got), np.asarray(expected)
    if got.shape != expected.shape:
        return StageResult(len(expected), int(expected.size), int(expected.size), len(expected),
                           f"{name}: shape {got.shape} vs {expected.shape}")
    differ = got.reshape(len(got), -1) != expected.reshape(len(expected), -1)
    per_input = differ.sum(axis=1)
    first = ""
    if per_input.any():
        i = int(np.flatnonzero(per_input)[0])
        cols = np.flatnonzero(differ[i])[:6]
        labels = [str(c) if columns is None else columns[c] for c in cols]
        g, e = got.reshape(len(got), -1)[i, cols], expected.reshape(len(expected), -1)[i, cols]
        first = f"{what} {i}, at {', '.join(labels)}: C {g.tolist()} vs reference {e.tolist()}"
    return StageResult(len(expected), int(differ.sum()), int(differ.size), int((per_input > 0).sum()), first)


def build_shipped_model(model_dir: Path, name: str, tflite_bytes: bytes):
    """The generated model C as shipped in model_dir/include, built for this host with the
    batch harness of codegen.model_runner (None if the export wrote no C)."""
    from tinydrift.codegen.model_c import plan_model
    from tinydrift.target.host_model import HostModel, _batch_harness

    include = ModelDir(model_dir).include
    _, source = ModelDir(model_dir).model_c(name)
    if not source.is_file():
        return None
    harness = firmware.HOST_BUILD_DIR / "verify" / name / f"run_batch_{name}.c"
    text = _batch_harness(name)
    if not harness.is_file() or harness.read_text() != text:
        atomic.write_text(harness, text)
    library = firmware.compile_host([source, harness, *firmware.stage_sources("kernels")], include_dirs=[*firmware.include_dirs(), include], optimize="-O3")
    plan = plan_model(tflite_bytes, name)
    return HostModel(ctypes.CDLL(str(library)), name, plan.input.num_elements, plan.output.num_elements)


def monitor_events(n_clips: int, n_random: int, labels: np.ndarray, predicted: np.ndarray, rng: np.random.Generator,
                   *, length: int, settle: int = 200) -> tuple[np.ndarray, np.ndarray]:
    """An event stream over sample rows 0..n_clips-1 (in domain) and n_clips.. (random
    inputs): in-domain inferences with label feedback and sensor blocks, a reset, then a
    drifted stretch (random inputs mixed in, silent and stuck blocks) so that alarms latch.
    After each reset the first `settle` inferences stay in domain (a commissioning monitor
    learns its reference from them). Returns events [n, 3] and the PCM the sensor events read."""
    from tinydrift.monitor.twin import EVENT_FEEDBACK, EVENT_INFERENCE, EVENT_RESET, EVENT_SENSOR

    block = 320  # 20 ms at 16 kHz, the front end's hop
    pcm_parts, events = [], []
    offset = 0

    def sensor(samples: np.ndarray) -> None:
        nonlocal offset
        pcm_parts.append(samples.astype(np.int16))
        events.append((EVENT_SENSOR, offset, len(samples)))
        offset += len(samples)

    half = length // 2
    cycle = settle + 400
    n_classes = int(predicted.max()) + 1 if len(predicted) else 1
    for t in range(length):
        drifted = t >= half and n_random > 0
        if t == half or (drifted and (t - half) % cycle == cycle - 1):
            events.append((EVENT_RESET, 0, 0))
        # After each reset the monitor first sees in-domain inferences (the DDM learns a
        # low error rate), then half of them drift.
        if drifted and (t - half) % cycle >= settle and rng.random() < 0.5:
            row = n_clips + int(rng.integers(0, n_random))
        else:
            row = int(rng.integers(0, n_clips)) if n_clips else n_clips + int(rng.integers(0, n_random))
        events.append((EVENT_INFERENCE, row, 0))
        if row < n_clips and labels[row] >= 0 and rng.random() < 0.3:
            events.append((EVENT_FEEDBACK, int(predicted[row]), int(labels[row])))
        elif row >= n_clips and rng.random() < 0.3:
            # Feedback that the drifted predictions are wrong: the error-rate test fires.
            events.append((EVENT_FEEDBACK, int(predicted[row]), int((predicted[row] + 1) % max(n_classes, 2))))
        if t % 8 == 0:
            if not drifted:
                sensor(rng.normal(0, 1000, block))
            elif (t - half) < 8 * 64:
                for _ in range(5):  # stuck (zero variance) long enough to fault: 320 blocks
                    sensor(np.full(block, 7, dtype=np.int16))
            else:
                sensor(np.clip(rng.normal(0, 20000, block), -32768, 32767))  # clipping
    pcm = np.concatenate(pcm_parts) if pcm_parts else np.zeros(1, np.int16)
    return np.array(events, dtype=np.int32), pcm


# -- the check -------------------------------------------------------------------------------


def verify_model(model_dir: Path, *, samples: int = DEFAULT_SAMPLES, data: Path | None = None,
                 random_inputs: int | None = None, stream_length: int = 3000, seed: int = 0,
                 frontend_library: Path | None = None, monitor_dir: Path | None = None) -> VerifyReport:
    """Run the three stages on `samples` clips or images (and `random_inputs` random model
    inputs, default as many) and return their comparison. frontend_library: a host build of
    the front end C other than the firmware's (e.g. a port under test); monitor_dir: the
    monitor's C (summaries included) from another folder."""
    from tinydrift.target.host_frontend import NativeFrontend
    from tinydrift.codegen.model_c import plan_model
    from tinydrift.monitor.config import MonitorConfig
    from tinydrift.app import SENSOR_BLOCK
    from tinydrift.monitor.twin import window_energies, window_summary
    from tinydrift.model.quantize import is_image_input, load_int8
    from tinydrift.target.host_monitor import MONITOR_SRC, CMonitor

    folder = ModelDir(model_dir).require()
    if folder.detector_json.is_file() and not folder.reference_json.is_file():
        raise folder.not_a_classifier()  # before it asks for a monitor a detector's folder need not have
    model_dir = folder.path
    reference_path = folder.reference_json
    try:
        config = MonitorConfig.of_model(folder)
    except (ValueError, KeyError, TypeError) as e:
        raise TinydriftError(f"{reference_path}: cannot read the monitor config ({e}); run `tinydrift export`") from e
    name = folder.c_name()
    tflite, _ = load_int8(model_dir)
    if samples < 1:
        raise TinydriftError("--samples must be at least 1")
    rng = np.random.default_rng(seed)
    plan = plan_model(tflite, name)
    shape = tuple(plan.input.shape[1:])
    classes = int(np.prod(plan.output.shape[1:]))
    if classes != config.n_classes or len(folder.labels) != classes:
        # the stages below would feed this model's answers to a monitor of another class count
        raise TinydriftError(f"{folder.int8_model}: {classes} classes, where {reference_path.name} holds a monitor of "
                             f"{config.n_classes} and {len(folder.labels)} labels: it is not the model the folder was "
                             f"exported from; run `tinydrift export --model {model_dir}` again")
    n_random = samples if random_inputs is None else int(random_inputs)
    header = folder.monitor_config_header(name)
    try:
        monitor = CMonitor(config, header=header if header.is_file() else None, monitor_dir=monitor_dir or MONITOR_SRC)
    except TinydriftError as e:
        if not header.is_file() or not str(e).startswith("C build failed"):
            raise
        # Another model's header, or one edited until it no longer compiles: the exports
        # stage names it; the monitor stage checks the C on a header emitted from the config.
        header = None
        monitor = CMonitor(config, header=None, monitor_dir=monitor_dir or MONITOR_SRC)

    if is_image_input(tuple(plan.input.shape)):
        from tinydrift.data.imageset import pixels_to_int8
        from tinydrift.monitor.twin import image_summary_length, summarize_image

        grid = int(folder.reference().get("input_summary", {}).get("grid", 0))
        if not grid or image_summary_length(grid) != config.n_summary:
            raise TinydriftError(f"{reference_path}: the monitor expects {config.n_summary} summary values, not an "
                                 "image summary's; run `tinydrift export` again")
        images, labels, source = load_images(data, samples, shape[:2], tuple(folder.labels), rng)
        report = VerifyReport(str(model_dir), name, source)
        real = pixels_to_int8(images)
        what = f"{len(real)} images"
    else:
        clips = load_clips(data, samples, rng)
        report = VerifyReport(str(model_dir), name, clips.source)
        # Front end: device C against the host front end, clip by clip.
        frontend = NativeFrontend(frontend_library)
        real = np.stack([features_int8(pcm) for pcm in clips.pcm])
        c_features = np.stack([frontend.process_clip(pcm) for pcm in clips.pcm])
        report.stages["frontend"] = compare("frontend", c_features, real, "clip")
        labels = clips.labels
        what = f"{len(clips.pcm)} clip features"
        # each clip played as one window: its loudness and quiet level; a random input gets random ones
        energy = np.concatenate([window_energies(clips.pcm, SENSOR_BLOCK),
                                 rng.integers(0, 1 << 40, (n_random, 2))])

    # The folder's exports: what this version generates from its .tflite and reference.json.
    report.stages["exports"] = exports_stage(folder, name, tflite, config, tuple(plan.input.shape))

    # Model: the shipped generated C against TFLite Micro on the same int8 inputs.
    inputs = np.concatenate([real.reshape(len(real), *shape), random_model_inputs(n_random, shape, rng)])
    expected = _model_stage(report, folder, name, tflite, inputs, f"{what} + {n_random} random int8 inputs")

    # The input summary: the device's C against the twin, from the model's int8 input.
    if is_image_input(tuple(plan.input.shape)):
        summaries = summarize_image(inputs, grid)
        report.stages["summary"] = compare("summary", monitor.summarize_image(inputs, grid), summaries, "image")
        report.stages["summary"].note = f"td_summarize_image on a {grid}x{grid} grid: {config.n_summary} values an image"
        summary_check = None
    else:
        frames = inputs.reshape(len(inputs), plan.input.shape[1], -1)
        if frames.shape[2] + 2 != config.n_summary:
            raise TinydriftError(f"{reference_path}: the monitor expects {config.n_summary} summary values, and a "
                                 f"keyword window gives {frames.shape[2] + 2} (its channel means, loudness and quiet "
                                 "level); run `tinydrift export` again")
        summaries = window_summary(frames, energy)
        c_summaries = np.concatenate([monitor.summarize(frames), monitor.summarize_level(energy[:, 0])[:, None],
                                      monitor.summarize_level(energy[:, 1])[:, None]], axis=1)
        summary_check = compare("summary", c_summaries, summaries, "model input")
    report.stages["monitor"] = _monitor_stage(monitor, config, summaries, expected, labels, n_random, rng,
                                              stream_length, summary_check, header)
    return report


def exports_stage(folder: ModelDir, name: str, tflite: bytes, config, input_shape: tuple) -> StageResult:
    """The folder's include/ files against what export would write from its .tflite and
    reference.json now, byte for byte, and reference.json's model_hash against the two: a
    header edited by hand (labels, the model's id, a threshold), exports of another model, or
    none, are each one mismatching file. Stages below build what they can regardless."""
    from tinydrift.codegen.model_c import generate_model_c
    from tinydrift.codegen.monitor_header import emit_monitor_config_h, header_abi
    from tinydrift.codegen.reference_header import reference_header
    from tinydrift.model.quantize import is_image_input
    from tinydrift.monitor.config import ABI_VERSION

    reference = folder.reference()
    grid = reference.get("input_summary", {}).get("grid") if is_image_input(input_shape) else None
    model_h, model_c = generate_model_c(tflite, name)
    expected = {
        folder.model_c(name)[0]: model_h,
        folder.model_c(name)[1]: model_c,
        folder.monitor_config_header(name): emit_monitor_config_h(config, name),
        folder.reference_header(name): reference_header(name, reference["model_hash"], list(reference["labels"]),
                                                        input_shape[1], input_shape[2], image_grid=grid),
    }
    problems = [f"{folder.include.name}/td_model_{other}.h: another export beside this one (a build takes one)"
                for other in folder.exported_names() if other != name]
    if not folder.exported_from(tflite):
        problems.append(f"{folder.reference_json.name}: model_hash is not that of {folder.int8_model.name} with "
                        "this monitor config (files of two exports)")
    for path, text in expected.items():
        where = f"{folder.include.name}/{path.name}"
        if not path.is_file():
            problems.append(f"{where}: missing")
            continue
        shipped, wanted = path.read_text(errors="replace").splitlines(), text.splitlines()
        abi = header_abi(path) if path == folder.monitor_config_header(name) else None
        if abi is not None and abi != ABI_VERSION:  # an older export's: its first differing line is only the hash
            problems.append(f"{where}: generated for the drift monitor's ABI version {abi}, this firmware's is {ABI_VERSION}")
        elif shipped != wanted:
            line = next((i for i, (a, b) in enumerate(zip(shipped, wanted)) if a != b), min(len(shipped), len(wanted)))
            got, generated = (lines[line].strip() if line < len(lines) else "(end of file)" for lines in (shipped, wanted))
            problems.append(f"{where} line {line + 1}: {got!r}, generated {generated!r}")
    return StageResult(len(expected) + 1, len(problems), len(expected) + 1, len(problems),
                       "; ".join(problems[:2]) + (f" (+{len(problems) - 2} more)" if len(problems) > 2 else ""),
                       note=(f"include/ and reference.json as `tinydrift export` writes them from {folder.int8_model.name}"
                             if not problems else f"run `tinydrift export --model {folder.path}` again"))


def _model_stage(report: VerifyReport, folder: ModelDir, name: str, tflite: bytes, inputs: np.ndarray,
                 what: str) -> np.ndarray:
    """The model stage into `report`; TFLite Micro's outputs, which the monitor stage reads."""
    from tinydrift.model.runtimes import run_tflm
    from tinydrift.target.host_model import run_generated_model

    shipped = build_shipped_model(folder.path, name, tflite)
    ours = shipped.run(inputs) if shipped is not None else run_generated_model(tflite, inputs)
    expected = run_tflm(tflite, inputs)
    report.stages["model"] = compare("model", ours, expected, "model input")
    report.stages["model"].note = (
        f"{what}; " + (f"C from {folder.include}" if shipped is not None else "no shipped C: generated from the .tflite"))
    return expected


def _monitor_stage(monitor, config, summaries: np.ndarray, expected: np.ndarray, labels: np.ndarray, n_random: int,
                   rng: np.random.Generator, stream_length: int, summary_check: StageResult | None,
                   header: Path | None) -> StageResult:
    """The shipped header's C (None: one emitted from the config) against the twin on
    reference.json's config, every field of every event's result (and the frame summaries,
    when `summary_check` carries them)."""
    from tinydrift.monitor.config import ALARM_TYPES_MASK, alarm_names
    from tinydrift.monitor.twin import INFERENCE_FIELDS, run_events

    n_real = len(labels)
    events, pcm = monitor_events(n_real, n_random, labels, expected.argmax(1), rng, length=stream_length,
                                 settle=config.commission_n + 100)
    c_rows = monitor.run_events(events, summaries, expected, pcm)
    twin_rows = run_events(config, events, summaries, expected, pcm)
    rows_check = compare("monitor", c_rows, twin_rows, "event", columns=INFERENCE_FIELDS)
    latched = int(np.bitwise_or.reduce(twin_rows[events[:, 0] == 0, INFERENCE_FIELDS.index("alarms")] & ALARM_TYPES_MASK))
    extra = summary_check or StageResult(0, 0, 0)
    summarized = f" (+ {extra.inputs} frame summaries)" if summary_check is not None else ""
    return StageResult(
        inputs=len(events),
        mismatches=extra.mismatches + rows_check.mismatches,
        elements=extra.elements + rows_check.elements,
        mismatching_inputs=rows_check.mismatching_inputs + extra.mismatching_inputs,
        first_mismatch=rows_check.first_mismatch or extra.first_mismatch,
        note=(f"{int((events[:, 0] == 0).sum())} inferences in {len(events)} events{summarized}; "
              f"alarms latched: {', '.join(alarm_names(latched)) or 'none'}; C built with "
              + (str(header) if header is not None and header.is_file() else "a header emitted from reference.json")),
    )


def format_report(report: VerifyReport) -> str:
    lines = [f"verify {report.model_dir} (model {report.name})", f"inputs: {report.source}"]
    for stage, r in report.stages.items():
        status = "ok" if r.ok else "MISMATCH"
        lines.append(f"  {stage:<9} {r.inputs:>6} inputs  {r.mismatches:>8} of {r.elements:,} elements differ"
                     f" ({r.mismatching_inputs} inputs)  {status}")
        if r.note:
            lines.append(f"            {r.note}")
        if r.first_mismatch:
            lines.append(f"            first: {r.first_mismatch}")
    lines.append("all stages bit-exact" if report.ok else "MISMATCH: the C differs from its reference")
    return "\n".join(lines)
