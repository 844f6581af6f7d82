"""`tinydrift demo`: the whole job on the embedded default, from nothing to drift detected.

data (espeak-ng, `tinydrift data kws`) -> model (train, quantize) -> headers (export) ->
firmware (PlatformIO, the emulated Cortex-M4) -> QEMU hears in-domain clips, then
accent-shifted clips (its microphone is a file of them) -> every frame captured into
SQLite -> report (HTML + PNG); then the device's log is checked against the host twin,
bit for bit, and the run ends by saying where the report is and what was found.

Everything is cached under the output folder: the data set by its configuration, the
model by the data and training settings (a stamp file), the firmware by PlatformIO. The
demo's defaults are sized for about 5 minutes on 2 cores from cold caches (measured
figures: docs/app.md): fewer clips and epochs than `tinydrift data kws` / `train` use, but
reference statistics from over 2,000 held-out clips, enough for a stable reference. `model_dir`
reuses a model made by `tinydrift export` (e.g. models/kws) and skips training.

A camera model (`model_dir` models/plant) runs the same loop on images: fresh procedural
leaves of plants the model never saw (or, with `data_dir`, images drawn from the user's own
class folders), then the same kind of images through a smudged lens,
replayed into QEMU as IMAGE frames (the emulated board has no camera) while every frame the
device answers is stored in the capture database. A keyword model of the user's own
(`tinydrift adopt`) with `data_dir` a folder of WAV word folders hears clips from it, then
the same kind under white noise.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from tinydrift.atomic import try_hold, write_text
from tinydrift.errors import TinydriftError
from tinydrift.modeldir import ModelDir
from tinydrift.link import protocol as P

DEFAULT_OUT = Path("build/demo")
# Clips per class and split: training smaller than `tinydrift data kws`'s 1000, `ref` at 170
# so the reference statistics come from 2,040 clips (at least 2,000).
DEMO_CLIPS_PER_CLASS = {"train": 400, "val": 40, "ref": 170, "test": 60, "accent": 60}
DEMO_EPOCHS = 12
MIN_VAL_ACCURACY = 0.5  # 12 classes: chance is 8 %
DEFAULT_SHIFTED = 600
# A camera model's images cross the emulated UART at 2-4 a second (6,912 bytes each in 14
# IMAGE frames, each ACKed; measured 1.9 under heavy load, 3.7 under light): 100 smudged
# ones are 4 times the median detection delay.
CAMERA_SHIFTED = 100
STAMP = "demo_stamp.json"


@dataclass
class DemoConfig:
    out_dir: Path = DEFAULT_OUT
    data_dir: Path | None = None  # None: out_dir/data, synthesized (and cached) here
    model_dir: Path | None = None  # None: out_dir/model, trained (and cached) here
    epochs: int = DEMO_EPOCHS
    clips_per_class: dict = field(default_factory=lambda: dict(DEMO_CLIPS_PER_CLASS))
    in_domain: int = 300  # inferences before the shift
    shifted: int = DEFAULT_SHIFTED  # inferences after it
    shifted_given: bool = True  # False: a camera model gets CAMERA_SHIFTED instead
    seed: int = 0
    verify: bool = True  # compare the device's log with the host twin


@dataclass
class DemoResult:
    out_dir: Path
    report: Path
    db: Path
    model_dir: Path
    inferences: int
    shift_index: int  # the first inference that heard a shifted clip
    first_alarm: int | None  # inference index of the first latched alarm
    alarm_types: list[str]
    change_index: int | None  # the device's estimate of where the change began
    severity: str | None  # the device's accuracy estimate before the change and now, in words
    accuracy: dict  # TFLite Micro accuracy on the export's test and shift splits (+ split_title when not this stream's)
    mismatches: int | None  # inferences that differ from the host twin (None: not checked)
    seconds: dict[str, float]

    @property
    def delay(self) -> int | None:
        return None if self.first_alarm is None else self.first_alarm - self.shift_index + 1

    @property
    def detected_after_shift(self) -> bool:
        return self.first_alarm is not None and self.first_alarm >= self.shift_index

    shift: str = "accent-shifted"  # what the inferences after the shift heard or saw
    unit: str = "clips"
    stream_accuracy: dict = field(default_factory=dict)  # the device's true accuracy before/after the shift
    commission_n: int = 0  # inferences after a reset the monitor learns its reference on, judging none
    export_median_delay: float | None = None  # where the export checked this stream's kind of shift: its median delay

    def lines(self) -> list[str]:
        total = sum(self.seconds.values())
        steps = ", ".join(f"{k} {v:.0f} s" for k, v in self.seconds.items())
        out = [f"report: {self.report}", f"capture database: {self.db}; model: {self.model_dir}"]
        acc = self.accuracy
        if acc and acc.get("split_title"):
            # the export measured another shift than this stream's: say which
            out.append(f"model accuracy (int8, TFLite Micro) on its export's data: test {100 * acc['test']:.1f} %, "
                       f"{acc['split_title']} {100 * acc['shifted']:.1f} %")
        elif acc:
            out.append(f"model accuracy (int8, TFLite Micro): in-domain {100 * acc['test']:.1f} %, "
                       f"{self.shift} {100 * acc['shifted']:.1f} %")
        if {"before", "after"} <= set(self.stream_accuracy):
            out.append(f"this stream's true accuracy on the device: in-domain {100 * self.stream_accuracy['before']:.1f} %, "
                       f"{self.shift} {100 * self.stream_accuracy['after']:.1f} %")
        out.append(f"{self.inferences} inferences on the emulated Cortex-M4: {self.unit} 1-{self.shift_index - 1} "
                   f"in-domain, from {self.shift_index} {self.shift}")
        if self.first_alarm is None and 0 < self.shift_index <= self.commission_n:
            out.append(f"no drift alarm was raised: the monitor learns its reference on the first {self.commission_n} "
                       f"inferences after a reset and judges none of them, and the shift began at inference "
                       f"{self.shift_index}, among them, so it learned what came after the shift as normal: give "
                       f"--in-domain {self.commission_n} or more")
        elif self.first_alarm is None:
            after = self.inferences - self.shift_index + 1
            hint = ""
            if self.export_median_delay is not None and after < 2 * self.export_median_delay:
                hint = (f" (the export's check found this shift after a median of {self.export_median_delay:.0f} "
                        f"inferences: give --shifted {2 * self.export_median_delay:.0f} or more)")
            out.append(f"no drift alarm was raised in the {after} inferences after the shift{hint}")
        elif self.detected_after_shift:
            change = f", change estimated at inference {self.change_index}" if self.change_index else ""
            judged = self.shift_index - 1 - self.commission_n
            quiet = (f"no alarm in the {judged} judged inferences before it" if judged > 0 else
                     f"none of the in-domain inferences was judged (the monitor learned its reference on them): "
                     f"--in-domain {self.commission_n + 200} checks {200} for false alarms too")
            out.append(f"drift detected: {' + '.join(self.alarm_types)} at inference {self.first_alarm}, "
                       f"{self.delay} inferences after the shift{change}; {quiet}")
            if self.severity:
                out.append(f"severity: {self.severity}")
        else:
            out.append(f"FALSE ALARM before the shift: {' + '.join(self.alarm_types)} at inference {self.first_alarm}")
        if self.mismatches is not None:
            out.append("device vs host twin: " + ("bit-exact on every inference" if self.mismatches == 0
                                                  else f"{self.mismatches} inferences DIFFER"))
        out.append(f"took {total:.0f} s ({steps})")
        return out


class _Steps:
    """Times the steps and gives each a progress bar."""

    def __init__(self, progress_factory, log):
        self.factory = progress_factory
        self.log = log
        self.seconds: dict[str, float] = {}

    def bar(self, description: str, total: int):
        return self.factory(description, total) if self.factory else (lambda n=1: None)

    def run(self, step: str, function, /, *args, **kwargs):
        start = time.monotonic()
        try:
            return function(*args, **kwargs)
        finally:
            self.seconds[step] = self.seconds.get(step, 0.0) + time.monotonic() - start


def _data(config: DemoConfig, steps: _Steps) -> Path:
    from tinydrift.data.synth import SPLITS, KwsConfig, build_kws

    if config.data_dir is not None:
        missing = [s for s in SPLITS if not (config.data_dir / f"{s}.npz").exists()]
        if config.model_dir is not None:
            missing = [s for s in ("test", "accent") if not (config.data_dir / f"{s}.npz").exists()]
        if not missing:
            steps.bar("data (given)", 1)(1)
            return config.data_dir
        raise TinydriftError(f"{config.data_dir}: missing {', '.join(m + '.npz' for m in missing)}; "
                             "build it with `tinydrift data kws --out DIR`, omit --data, or (with --model) give "
                             "WAV word folders (WORD/*.wav)")
    data_dir = config.out_dir / "data"
    build_kws(data_dir, KwsConfig(seed=config.seed, clips_per_class=dict(config.clips_per_class)),
              progress_factory=steps.bar)
    return data_dir


def model_code_digest(package: Path = Path(__file__).resolve().parents[1]) -> str:
    """The code that trains, quantizes, exports and calibrates the model: a cached model made
    by other code (another calibration, say) is made again rather than reported as this one."""
    sources = sorted(p for part in ("model", "monitor", "codegen", "frontend") for p in (package / part).rglob("*.py"))
    digest = hashlib.sha256()
    for source in [*sources, package / "pipeline" / "export.py"]:
        digest.update(source.relative_to(package).as_posix().encode() + b"\0" + source.read_bytes())
    return digest.hexdigest()[:16]


def _model_stamp(config: DemoConfig, data_dir: Path) -> dict:
    manifest = json.loads((data_dir / "manifest.json").read_text()) if (data_dir / "manifest.json").exists() else {}
    return {"data": str(data_dir.resolve()), "data_digest": manifest.get("config_digest"), "epochs": config.epochs,
            "seed": config.seed, "code": model_code_digest()}


def _model(config: DemoConfig, data_dir: Path, steps: _Steps) -> Path:
    """The exported model: given, cached from an earlier run with the same data and
    settings, or trained, quantized and exported now."""
    from tinydrift.pipeline.export import export
    from tinydrift.data.clipset import ClipSet
    from tinydrift.model.quantize import quantize
    from tinydrift.model.train import TrainConfig, train

    if config.model_dir is not None:
        return config.model_dir  # checked whole by run_demo before any work
    model_dir = config.out_dir / "model"
    stamp = _model_stamp(config, data_dir)
    stamp_path = model_dir / STAMP
    if stamp_path.exists() and ModelDir(model_dir).reference_json.exists():
        try:
            if json.loads(stamp_path.read_text()) == stamp:
                steps.bar("model (cached)", 1)(1)
                return model_dir
        except json.JSONDecodeError:
            pass
    stamp_path.unlink(missing_ok=True)
    train_set, val_set = ClipSet.load(data_dir / "train.npz"), ClipSet.load(data_dir / "val.npz")
    _, history = steps.run("train", train, train_set, val_set, model_dir,
                           TrainConfig(seed=config.seed, epochs=config.epochs), progress_factory=steps.bar)
    best = max(h["val_accuracy"] for h in history)
    if best < MIN_VAL_ACCURACY:
        # A model at chance predicts one class: there is nothing for the monitor to calibrate.
        raise TinydriftError(f"the model reached only {100 * best:.0f} % validation accuracy in {config.epochs} "
                             "epochs: train longer (--epochs) or on more clips (--clips-per-class)")
    advance = steps.bar("quantizing to int8", 1)
    steps.run("quantize", quantize, model_dir, train_set.ensure_features())
    advance(1)
    steps.run("export", export, model_dir, data_dir, name="kws", progress_factory=steps.bar, log=steps.log)
    write_text(stamp_path, json.dumps(stamp, indent=1))
    return model_dir


def _stream(config: DemoConfig, data_dir: Path) -> tuple[np.ndarray, np.ndarray, int]:
    """In-domain clips (the `test` split), then accent-shifted ones (`accent`), each shuffled:
    (audio, true labels, number in domain). One clip is one inference of the device."""
    from tinydrift.data.clipset import ClipSet

    test, accent = ClipSet.load(data_dir / "test.npz"), ClipSet.load(data_dir / "accent.npz")
    rng = np.random.default_rng(config.seed)
    n_in, n_shift = min(config.in_domain, len(test)), min(config.shifted, len(accent))
    if n_in < 1 or n_shift < 1:
        raise TinydriftError("the demo needs at least one in-domain and one shifted clip")
    take_in, take_shift = rng.permutation(len(test))[:n_in], rng.permutation(len(accent))[:n_shift]
    clips = np.concatenate([test.audio[take_in], accent.audio[take_shift]])
    labels = np.concatenate([test.labels[take_in], accent.labels[take_shift]]).astype(np.int64)
    return clips, labels, n_in


def _wav_folder_stream(config: DemoConfig) -> tuple[np.ndarray, np.ndarray, int]:
    """Clips from the user's own WAV word folders (`data_dir`, the Speech Commands layout the
    export read), then the same kind under white noise at the SNR the export checked:
    (audio, true labels, number in domain)."""
    from tinydrift.data.scenarios import white_noise
    from tinydrift.data.wavfolder import load_speech_commands
    from tinydrift.pipeline.export import NOISE_SNR_DB

    clips = load_speech_commands(config.data_dir)
    total = config.in_domain + config.shifted
    rng = np.random.default_rng(config.seed)
    order = rng.choice(len(clips), size=total, replace=len(clips) < total)
    audio = clips.audio[order].copy()
    audio[config.in_domain:] = white_noise(audio[config.in_domain:], rng, NOISE_SNR_DB)
    return audio, clips.labels[order].astype(np.int64), config.in_domain


def _is_wav_folder(config: DemoConfig) -> bool:
    """--data with --model of a keyword model: a folder of WAV word folders, not `tinydrift
    data kws` splits."""
    from tinydrift.data.wavfolder import wav_files

    return (config.model_dir is not None and config.data_dir is not None
            and not (Path(config.data_dir) / "test.npz").exists() and bool(wav_files(Path(config.data_dir), "*/*")))


def _run_device(elf: Path, pcm: Path, db: Path, model_dir: Path, total: int, steps: _Steps) -> None:
    from tinydrift.target import emulator
    from tinydrift.logbook.capture import capture

    advance = steps.bar("emulated Cortex-M4", total)
    seen = [0]

    def progress(stats) -> None:
        advance(stats.inference_frames - seen[0])
        seen[0] = stats.inference_frames

    for stale in (db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")):
        stale.unlink(missing_ok=True)
    with emulator.start(elf, semihosting_args=[emulator.audio_file_argument(pcm, pcm.parent)]) as board:
        summary = capture(board.url, db, model_dir=model_dir, reconnect_timeout=0, progress=progress,
                          progress_interval=0.5, log=lambda message: None)
        if summary.end_reason in ("interrupted", "terminated"):  # Ctrl-C (or SIGTERM) reached capture, which stops cleanly
            raise KeyboardInterrupt
        code = board.wait(timeout=30)
    if code != 0 or not summary.end_reason.startswith("device exit"):
        raise TinydriftError(f"the firmware in QEMU ended with code {code} ({summary.end_reason}); see {db}")
    if summary.stats.inference_frames != total or summary.stats.lost or summary.stats.corrupt:
        raise TinydriftError(f"capture got {summary.stats.inference_frames} of {total} inferences "
                             f"({summary.stats.lost} lost, {summary.stats.corrupt} corrupt); see {db}")


def _verify(db: Path, clips: np.ndarray, model_dir: Path, steps: _Steps) -> int:
    """Inferences whose INFERENCE or TRACE frame differs from the host twin's."""
    from tinydrift.monitor.config import MonitorConfig
    from tinydrift.app import compare, expected_inferences

    folder = ModelDir(model_dir)
    expected = expected_inferences([clips.reshape(-1)], folder.read_int8(), MonitorConfig.of_model(folder),
                                   clips=False, progress=steps.bar("checking against the twin", len(clips)))
    return len({p.split(":")[0] for p in compare(_device_frames(db), expected, folder.model_id)})


def _image_stream(config: DemoConfig, model_dir: Path) -> tuple[np.ndarray, np.ndarray, int]:
    """Fresh leaves (plants the model never saw), or images from the user's class folders
    (`data_dir`), then the same kind through a smudged lens: (uint8 images, true labels,
    number in domain)."""
    from tinydrift.data.camera_scenarios import DEPLOYMENT, draw_population, smudged
    from tinydrift.data.labels import PLANT_LABELS
    from tinydrift.pipeline.export import SMUDGE_SIGMA

    total = config.in_domain + config.shifted
    rng = np.random.default_rng(config.seed)
    if config.data_dir is not None:
        from tinydrift.data.imagefolder import load_image_folder

        reference = ModelDir(model_dir).reference()
        labels = tuple(reference["labels"])
        images = load_image_folder(config.data_dir, labels, size=tuple(reference["input"]["shape"][1:3]))
        missing = [name for k, name in enumerate(labels) if not np.any(images.labels == k)]
        if missing:  # as export refuses it: the monitor's reference holds every class
            raise TinydriftError(f"{config.data_dir}: no images of {', '.join(missing)}, but the model has "
                                 f"{len(labels)} outputs: give one sub-folder per class ({', '.join(labels)})")
        order = rng.choice(len(images), size=total, replace=len(images) < total)
    else:
        per_class = -(-total // len(PLANT_LABELS))
        images = draw_population(DEPLOYMENT, per_class, seed=1000 + config.seed)
        order = rng.permutation(len(images))[:total]
    chosen = images.select(order)
    pixels = chosen.images.copy()
    pixels[config.in_domain:] = smudged(chosen.select(np.arange(config.in_domain, total)), SMUDGE_SIGMA).images
    return pixels, chosen.labels.astype(np.int64), config.in_domain


def _replay_images(elf: Path, images: np.ndarray, db: Path, model_dir: Path, steps: _Steps) -> None:
    """The images into QEMU as IMAGE frames, every frame the device answers into `db`."""
    from tinydrift.link.port import open_port
    from tinydrift.link.replay import Replayer
    from tinydrift.logbook.capture import DatabaseSink
    from tinydrift.target import emulator

    for stale in (db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")):
        stale.unlink(missing_ok=True)
    with emulator.start(elf) as board:
        port = open_port(board.url, timeout=0.05)
        sink = DatabaseSink(db, board.url, ModelDir(model_dir).model_hash)
        try:
            replayer = Replayer(port, window=4, on_items=sink)
            stats = replayer.replay(list(images), progress=steps.bar("emulated Cortex-M4", len(images)))
            replayer.drain(0.3)
        finally:
            port.close()
            sink.close("demo done")
    if stats.inferences != len(images) or stats.corrupt:
        raise TinydriftError(f"the device answered {stats.inferences} of {len(images)} images "
                             f"({stats.corrupt} corrupt frames); see {db}")


def _device_frames(db: Path) -> list:
    from tinydrift.app import device_inferences
    from tinydrift.logbook.store import open_db

    conn = open_db(db)
    raws = conn.execute("SELECT raw FROM frames WHERE type IN (?, ?) ORDER BY id",
                        (int(P.FrameType.INFERENCE), int(P.FrameType.TRACE))).fetchall()
    conn.close()
    return device_inferences(P.parse_packet(r[0]) for r in raws)


def _verify_images(db: Path, images: np.ndarray, model_dir: Path, steps: _Steps) -> int:
    """Images whose INFERENCE or TRACE frame differs from the host twin's."""
    from tinydrift.app import compare, expected_image_inferences
    from tinydrift.monitor.config import MonitorConfig

    folder = ModelDir(model_dir)
    expected = expected_image_inferences(images, folder.read_int8(), MonitorConfig.of_model(folder),
                                         folder.reference()["input_summary"]["grid"],
                                         progress=steps.bar("checking against the twin", len(images)))
    return len({p.split(":")[0] for p in compare(_device_frames(db), expected, folder.model_id)})


def run_demo(config: DemoConfig, progress_factory=None, log: Callable[[str], None] = print) -> DemoResult:
    if config.in_domain < 1 or config.shifted < 1:
        raise TinydriftError("--in-domain and --shifted must be at least 1")
    if config.epochs < 1:
        raise TinydriftError(f"--epochs must be at least 1, got {config.epochs}")
    if config.model_dir is not None:
        from tinydrift.pipeline.export import load_exported
        from tinydrift.target.flash import check_model_dir

        load_exported(config.model_dir)  # before minutes of data synthesis, not after
        check_model_dir(config.model_dir)  # and what the firmware's build would refuse (an older export's header)
    camera = config.model_dir is not None and ModelDir(config.model_dir).is_camera
    if camera and not config.shifted_given:
        config.shifted = CAMERA_SHIFTED
    with _held_out_folder(Path(config.out_dir)) as out:
        config.out_dir = out
        try:
            return _run_in(out, config, camera, progress_factory, log)
        except BaseException:
            _remove_run_outputs(out)
            raise


# What one run writes into the demo's folder; its data, model and firmware are caches of their
# own (stamped), kept for the next run.
RUN_OUTPUTS = ("truth.json", "stream.pcm", "capture.db", "capture.db-wal", "capture.db-shm", "summary.json", "report")


def _remove_run_outputs(out: Path) -> None:
    """A run that failed or was interrupted leaves no part of its result (an interrupted one
    left its capture, stream and truth, which read as a run's), nor an earlier run's, which
    it had begun to replace."""
    for name in RUN_OUTPUTS:
        path = out / name
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


@contextlib.contextmanager
def _held_out_folder(out: Path) -> Iterator[Path]:
    """The demo's folder, held by this run until it ends: two demos into one --out wrote one
    capture database and one summary between them. One this run made and leaves empty (a
    refused run) is removed again."""
    made = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    held = os.open(out, os.O_RDONLY)
    try:
        if not try_hold(held):
            raise TinydriftError(f"another demo is writing {out} now: give this one its own --out, or wait for it")
        yield out
    except BaseException:
        if made and not any(out.iterdir()):
            out.rmdir()
        raise
    finally:
        os.close(held)


def _run_in(out: Path, config: DemoConfig, camera: bool, progress_factory, log: Callable[[str], None]) -> DemoResult:
    """The demo's steps, into `out`."""
    from tinydrift.link.replay import write_pcm
    from tinydrift.logbook.report import Truth, write_report

    steps = _Steps(progress_factory, log)
    db = out / "capture.db"

    if camera:
        model_dir = config.model_dir
        inputs, labels, n_in = steps.run("data", _image_stream, config, model_dir)  # a bad folder before the build
        elf = steps.run("firmware", _build, model_dir, steps)
    elif _is_wav_folder(config):
        model_dir = config.model_dir
        inputs, labels, n_in = steps.run("data", _wav_folder_stream, config)  # a bad folder before the build
        elf = steps.run("firmware", _build, model_dir, steps)
    else:
        data_dir = steps.run("data", _data, config, steps)
        model_dir = _model(config, data_dir, steps)
        elf = steps.run("firmware", _build, model_dir, steps)
        inputs, labels, n_in = _stream(config, data_dir)
    truth = Truth(shift_index=n_in + 1, labels=labels)
    write_text(out / "truth.json", truth.to_json())
    if camera:
        steps.run("emulator", _replay_images, elf, inputs, db, model_dir, steps)
        mismatches = steps.run("verify", _verify_images, db, inputs, model_dir, steps) if config.verify else None
    else:
        pcm = write_pcm(inputs, out / "stream.pcm")
        steps.run("emulator", _run_device, elf, pcm, db, model_dir, len(inputs), steps)
        mismatches = steps.run("verify", _verify, db, inputs, model_dir, steps) if config.verify else None
    advance = steps.bar("report", 1)
    report = steps.run("report", write_report, db, out / "report", model_dir, truth)
    advance(1)

    first = report.summary  # the first alarm as the device reported it (alarm_index)
    reference = ModelDir(model_dir).reference()
    tflm = reference.get("accuracy", {})
    shift = reference.get("shift", {}).get("split", "accent")
    accuracy = ({"test": tflm["test"]["tflm"]["accuracy"], "shifted": tflm[shift]["tflm"]["accuracy"]}
                if "test" in tflm and shift in tflm else {})
    # what the stream's second part heard or saw: the export's split of that name, and its words
    streamed, heard = (("smudged", "through a smudged lens") if camera else ("noisy", "under white noise")
                       if _is_wav_folder(config) else ("accent", "accent-shifted"))
    if accuracy and shift != streamed:  # e.g. exported on the accent split, streamed a WAV folder under noise
        accuracy["split_title"] = f"its `{shift}` split"
    result = DemoResult(
        out_dir=out, report=report.out_dir / "index.html", db=db, model_dir=model_dir,
        inferences=report.inference_frames, shift_index=n_in + 1,
        first_alarm=first.first_alarm[0] if first.first_alarm else None,
        alarm_types=first.first_alarm[1] if first.first_alarm else [],
        change_index=first.first_change, severity=report.severities[0].impact() if report.severities else None,
        accuracy=accuracy, mismatches=mismatches,
        seconds=steps.seconds,
        shift=heard, unit="images" if camera else "clips", stream_accuracy=report.true_accuracy,
        commission_n=int(reference.get("monitor_config", {}).get("commission_n", 0)),
        export_median_delay=(reference.get(f"{shift}_detection", {}).get("median_delay") if shift == streamed else None))
    write_text(out / "summary.json", json.dumps({**{k: v for k, v in asdict(result).items()
                                                   if k not in ("out_dir", "report", "db", "model_dir")},
                                                 "report": str(result.report), "delay": result.delay}, indent=1))
    return result


def _build(model_dir: Path, steps: _Steps) -> Path:
    from tinydrift.target.flash import flash
    from tinydrift.target.platformio import EMULATED_ENV

    advance = steps.bar("firmware (PlatformIO)", 1)
    elf = flash(EMULATED_ENV, model_dir, build_only=True).elf
    advance(1)
    return elf


def clean(out_dir: Path) -> None:
    """Forget everything the demo cached for `out_dir`, its firmware build included (the
    next run starts cold)."""
    from tinydrift.target.flash import build_dir_for

    build_dir = build_dir_for(Path(out_dir) / "model" / "include")
    if build_dir is not None and build_dir.exists():
        shutil.rmtree(build_dir)
    if Path(out_dir).exists():
        shutil.rmtree(out_dir)
