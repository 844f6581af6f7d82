"""`tinydrift verify`: the C a model export ships, run on this host, against its references.

Three stages, each compared element by element on the same inputs:

- front end: the device front end's C (NativeFrontend) against the host front end
  (features_int8) on real or synthesized 1 s clips;
- model: MODEL_DIR/include/td_model_<name>.c, the generated C the firmware compiles, against
  TFLite Micro (run_tflm) on the clips' features and on random int8 inputs;
- monitor: the C monitor with MODEL_DIR/include/td_monitor_config_<name>.h compiled in,
  against the Python twin (MonitorTwin) with reference.json's monitor_config, on one
  event stream (inferences of those inputs, label feedback, sensor blocks, resets) that
  runs in domain, then drifts so the alarms fire.

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
from tinydrift.errors import TinydriftError
from tinydrift.modeldir import ModelDir
from tinydrift.frontend.features import CLIP_SAMPLES, features_int8

DEFAULT_SAMPLES = 64
DEFAULT_CLIP_SET = Path("build/data/kws/test.npz")
SHARED_DATA = Path("shared/data")
SPEECH_COMMANDS = "speech_commands_v0.01_subset"
FSDD = "fsdd"
STAGES = ("frontend", "model", "monitor")


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


def _shared_data_dirs() -> list[Path]:
    return [Path("..") / SHARED_DATA, firmware.REPO_ROOT.parent / SHARED_DATA]


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
            for folder in _shared_data_dirs():
                for sub in (SPEECH_COMMANDS, FSDD):
                    if (folder / sub).is_dir():
                        clips, source = load_any(folder / sub), f"real recordings in {folder / sub}"
                        break
                if clips is not None:
                    break
        if clips is None:
            return Clips(synthesized_clips(n, rng), np.full(n, -1), f"{n} synthesized clips (noise, tones, chirps, silence, clipping): no clip set or recordings found")
    if len(clips) == 0:
        raise TinydriftError(f"{data}: no clips")
    rows = _pick(len(clips), n, rng)
    return Clips(clips.audio[rows], clips.labels[rows].astype(np.int64), f"{len(rows)} clips of {len(clips)} from {source}")


def random_model_inputs(n: int, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """n random int8 inputs: uniform, plus the extremes (all -128, all 0, all 127) that
    reach the saturation paths."""
    inputs = rng.integers(-128, 128, size=(max(n, 3), *shape), dtype=np.int16).astype(np.int8)
    inputs[0], inputs[1], inputs[2] = -128, 0, 127
    return inputs[:n] if n >= 3 else inputs[:0]


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
                 frontend_library: Path | None = None) -> VerifyReport:
    """Run the three stages on `samples` clips (and `random_inputs` random model inputs,
    default as many) and return their comparison. frontend_library: a host build of the
    front end C other than the firmware's (e.g. a port under test)."""
    from tinydrift.target.host_frontend import NativeFrontend
    from tinydrift.codegen.model_c import plan_model
    from tinydrift.target.host_model import run_generated_model
    from tinydrift.target.host_monitor import CMonitor
    from tinydrift.monitor.config import ALARM_TYPES_MASK, MonitorConfig, alarm_names
    from tinydrift.monitor.twin import INFERENCE_FIELDS, run_events, summarize_frames
    from tinydrift.model.quantize import IMAGE_INPUT_SHAPE, load_int8
    from tinydrift.model.runtimes import run_tflm

    folder = ModelDir(model_dir).require()
    model_dir = folder.path
    reference_path = folder.reference_json
    try:
        config = MonitorConfig.of_model(folder)
    except (ValueError, KeyError, TypeError) as e:
        raise TinydriftError(f"{reference_path}: cannot read the monitor config ({e}); run `tinydrift export`") from e
    name = folder.c_name()
    tflite, tflite_path = load_int8(model_dir)
    if tuple(plan_model(tflite, name).input.shape) == IMAGE_INPUT_SHAPE:
        raise TinydriftError(f"{tflite_path}: a camera model; verify replays the keyword pipeline (microphone front "
                             "end, model, monitor): check a camera model's C with `tinydrift model-c --check`")
    if samples < 1:
        raise TinydriftError("--samples must be at least 1")
    rng = np.random.default_rng(seed)
    clips = load_clips(data, samples, rng)
    report = VerifyReport(str(model_dir), name, clips.source)

    # Front end: device C against the host front end, clip by clip.
    frontend = NativeFrontend(frontend_library)
    host_features = np.stack([features_int8(pcm) for pcm in clips.pcm])
    c_features = np.stack([frontend.process_clip(pcm) for pcm in clips.pcm])
    report.stages["frontend"] = compare("frontend", c_features, host_features, "clip")

    # Model: the shipped generated C against TFLite Micro on the same int8 inputs.
    plan = plan_model(tflite, name)
    shape = tuple(plan.input.shape[1:])
    n_random = samples if random_inputs is None else int(random_inputs)
    inputs = np.concatenate([host_features.reshape(len(host_features), *shape), random_model_inputs(n_random, shape, rng)])
    shipped = build_shipped_model(model_dir, name, tflite)
    ours = shipped.run(inputs) if shipped is not None else run_generated_model(tflite, inputs)
    expected = run_tflm(tflite, inputs)
    report.stages["model"] = compare("model", ours, expected, "model input")
    report.stages["model"].note = (
        f"{len(clips.pcm)} clip features + {n_random} random int8 inputs; "
        + (f"C from {folder.include}" if shipped is not None else "no shipped C: generated from the .tflite")
    )

    # Monitor: the shipped header's C against the twin on reference.json's config, from
    # the per-frame summary (td_summarize_frames) to every field of every event's result.
    frames = inputs.reshape(len(inputs), plan.input.shape[1], -1)
    if frames.shape[2] != config.n_summary:
        raise TinydriftError(f"{reference_path}: the monitor expects {config.n_summary} summary channels, the model input has {frames.shape[2]}")
    header = folder.monitor_config_header(name)
    monitor = CMonitor(config, header=header if header.is_file() else None)
    summaries = summarize_frames(frames)
    summary_check = compare("summary", monitor.summarize(frames), summaries, "model input")
    events, pcm = monitor_events(len(clips.pcm), n_random, clips.labels, expected.argmax(1), rng, length=stream_length,
                                 settle=config.commission_n + 100)
    c_rows = monitor.run_events(events, summaries, expected, pcm)
    twin_rows = run_events(config, events, summaries, expected, pcm)
    rows_check = compare("monitor", c_rows, twin_rows, "event", columns=INFERENCE_FIELDS)
    latched = int(np.bitwise_or.reduce(twin_rows[events[:, 0] == 0, INFERENCE_FIELDS.index("alarms")] & ALARM_TYPES_MASK))
    report.stages["monitor"] = StageResult(
        inputs=len(events),
        mismatches=summary_check.mismatches + rows_check.mismatches,
        elements=summary_check.elements + rows_check.elements,
        mismatching_inputs=rows_check.mismatching_inputs + summary_check.mismatching_inputs,
        first_mismatch=rows_check.first_mismatch or summary_check.first_mismatch,
        note=(f"{int((events[:, 0] == 0).sum())} inferences in {len(events)} events (+ {len(frames)} frame summaries); "
              f"alarms latched: {', '.join(alarm_names(latched)) or 'none'}; C built with "
              + (str(header) if header.is_file() else "a header emitted from reference.json")),
    )
    return report


def format_report(report: VerifyReport) -> str:
    lines = [f"verify {report.model_dir} (model {report.name})", f"inputs: {report.source}"]
    for stage in STAGES:
        r = report.stages.get(stage)
        if r is None:
            continue
        status = "ok" if r.ok else "MISMATCH"
        lines.append(f"  {stage:<9} {r.inputs:>6} inputs  {r.mismatches:>8} of {r.elements:,} elements differ"
                     f" ({r.mismatching_inputs} inputs)  {status}")
        if r.note:
            lines.append(f"            {r.note}")
        if r.first_mismatch:
            lines.append(f"            first: {r.first_mismatch}")
    lines.append("all stages bit-exact" if report.ok else "MISMATCH: the C differs from its reference")
    return "\n".join(lines)
