"""What the drift benchmark runs on: pools of inferences (a population or a drifted version
of one, through the front end and the int8 model once, cached), streams drawn from them by
speaker, and the monitor's twin run over those streams as the firmware app runs it. A camera
model's pools (CameraPoolMaker) hold procedural leaves instead, drawn by plant."""

from __future__ import annotations

import hashlib
import json
import zipfile
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from tinydrift.data.clipset import ClipSet
from tinydrift.data.scenarios import DEPLOYMENT, Population, Scenario, synthesize_population
from tinydrift.errors import TinydriftError
from tinydrift.monitor.calibrate import SeverityLines
from tinydrift.monitor.calibrate_feedback import LABEL_SHARE
from tinydrift.monitor.config import (ALARM_CONFIDENCE_DRIFT, ALARM_DATA_DRIFT, ALARM_TYPES_MASK, ONE_Q12, ONE_Q16,
                                     SCORE_MEAN, MonitorConfig)
from tinydrift.app import SENSOR_BLOCK
from tinydrift.monitor.twin import MonitorTwin, block_window_energies, sensed_energy, sensor_stats, window_summary

ESTIMATE_WINDOW = 500  # the last inferences of a stream the host's accuracy estimate reads
# When the bench reads an alarm's severity line: the estimate right at the alarm reflects the
# stretch that set it off (the worst of a harmless voice too); this many inferences later it
# reflects the new population.
SEVERITY_READ_AFTER = 64
BLOCKS_PER_CLIP = 16000 // SENSOR_BLOCK
CACHE_VERSION = 1


@dataclass(frozen=True)
class BenchSettings:
    quick: bool = True
    clips_per_class: int = 25  # per pool
    calibration_clips_per_class: int = 170  # the monitor's reference needs >= 2,000 clips
    # The false-alarm check on an unseen population needs many more clips than the device
    # commissions on (300): on a pool not much larger, the monitored stream replays the very
    # clips the device learned from, and reads 4-9 times quieter than the population is
    # (measured on `test`: 111 k with all 2,400 clips, 400 k-1 M on 300 of them).
    control_clips_per_class: int = 100
    n_streams: int = 100
    before: int = 500  # deployment inferences before the change
    after: int = 1000  # drifted inferences after it (the window a detection must fall in)
    arl_inferences: int = 2_000_000  # per control population, shipped monitor
    compare_arl0: float = 2_000
    compare_streams: int = 30
    # The most inferences one speaker (a plant, for a camera) holds in a row in a stream:
    # None takes each speaker's clips as the pool holds them (~10 in a mixed population's
    # pool, ~43 in a one-voice one); N takes at most N of them, without repeating a clip
    # (repeats would skew the class mix a real speaker keeps).
    speaker_run: int | None = None
    seed: int = 11

    @staticmethod
    def make(quick: bool, n_classes: int = 12, speaker_run: int | None = None) -> "BenchSettings":
        """The settings for a model of n_classes: pools hold as many inputs in all as the
        keyword model's 12 classes do (a camera model's 5 classes get 12/5 per class)."""
        scale = 12 / n_classes
        per_class = {"clips_per_class": 25, "calibration_clips_per_class": 170, "control_clips_per_class": 100}
        other = {}
        if not quick:
            per_class.update(clips_per_class=60, control_clips_per_class=200)
            other = dict(n_streams=200, after=1500, arl_inferences=10_000_000, compare_arl0=5_000, compare_streams=60)
        return BenchSettings(quick=quick, **{k: int(round(v * scale)) for k, v in per_class.items()}, **other,
                             speaker_run=speaker_run)


@dataclass
class Pool:
    """One population's inferences as the device sees them."""

    name: str
    summaries: np.ndarray  # int16 [N, C]
    probs: np.ndarray  # int8 [N, K]
    labels: np.ndarray  # int [N]
    groups: np.ndarray  # speaker ids [N]
    # int64 [N, blocks, 3]: sum, sum of squares, clipped count per 320-sample block; a camera's
    # [N, 1, 3 + probes]: its frame's image_sensor_stats
    sensor: np.ndarray
    conditions: np.ndarray | None = None  # [N, blocks]: the sensor conditions under one config
    frame_values: int = 0  # a camera's: values in a frame (height x width x 3)

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def accuracy(self) -> float:
        return float(np.mean(self.probs.argmax(1) == self.labels))

    def accuracy_in(self, class_weights: tuple | None) -> float:
        """The accuracy on streams drawn in that class mix (group_streams'; None: the pool's own)."""
        if class_weights is None:
            return self.accuracy
        w = np.asarray(class_weights, float)[self.labels]
        return float(np.sum(w * (self.probs.argmax(1) == self.labels)) / max(w.sum(), 1e-12))

    def save(self, path: Path) -> None:
        from tinydrift.atomic import atomic_path

        with atomic_path(path) as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, **{k: v for k, v in asdict(self).items() if k not in ("name", "conditions")})

    @staticmethod
    def load(name: str, path: Path) -> "Pool":
        with np.load(path) as z:
            frame_values = int(z["frame_values"]) if "frame_values" in z.files else 0
            return Pool(name, *(z[k] for k in ("summaries", "probs", "labels", "groups", "sensor")),
                        frame_values=frame_values)


def load_cached(path: Path, load, log):
    """What `load(path)` reads from the bench's own cache, or None when it is not there or
    cannot be read (a run killed while writing it, a disk that damaged it): then it is made
    again, and the user is not sent to rebuild a data set they never gave."""
    if not path.is_file():
        return None
    try:
        return load(path)
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, TinydriftError) as exc:
        log(f"cached {path.name} could not be read ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__}): "
            "making it again")
        path.unlink(missing_ok=True)
        return None


class PoolMaker:
    """Synthesizes, transforms and runs clips through the int8 model; caches each pool."""

    def __init__(self, model: bytes, config: MonitorConfig, cache: Path, settings: BenchSettings, log):
        self.model, self.config, self.settings, self.log = model, config, settings, log
        key = json.dumps({"v": CACHE_VERSION, "model": hashlib.sha256(model).hexdigest(),
                          "clip_level": int(config.clip_level), "seed": settings.seed}, sort_keys=True)
        self.cache = Path(cache) / hashlib.sha256(key.encode()).hexdigest()[:16]
        # the synthesized audio does not depend on the model: shared by every model version
        self.audio_cache = Path(cache) / "populations"
        self._populations: dict[tuple, ClipSet] = {}

    def population(self, population: Population, clips_per_class: int, seed: int) -> ClipSet:
        """The population's inputs, made once and cached in `audio_cache` by what makes them."""
        key = (population, clips_per_class, seed)
        if key not in self._populations:
            spec = hashlib.sha256(repr(self._made_by(population)).encode()).hexdigest()[:12]
            path = self.audio_cache / f"{population.name}-{clips_per_class}-{seed}-{spec}.npz"
            inputs = load_cached(path, self._load, self.log)
            if inputs is None:
                inputs = self._make(population, clips_per_class, seed)
                inputs.save(path)
            self._populations[key] = inputs
        return self._populations[key]

    def _made_by(self, population) -> tuple:
        return population, CACHE_VERSION

    def _load(self, path: Path) -> ClipSet:
        return ClipSet.load(path)

    def _make(self, population: Population, clips_per_class: int, seed: int) -> ClipSet:
        self.log(f"synthesizing {population.name} ({clips_per_class} clips per class)")
        return synthesize_population(population, clips_per_class, seed)

    def pool(self, name: str, clips: Callable[[], ClipSet], cache_name: str) -> Pool:
        """The cached pool, else `clips()` through the model (the audio is only loaded or
        synthesized when the pool is not cached: a cached run starts in a second)."""
        path = self.cache / f"pool-{cache_name}-quiet.npz"  # "-quiet": summaries with the window's loudness and quiet level
        cached = load_cached(path, lambda p: Pool.load(name, p), self.log)
        if cached is not None:
            return cached
        from tinydrift.target.host_model import run_generated_model

        clips = clips()

        features = clips.ensure_features()
        probs = run_generated_model(self.model, features.reshape(len(features), -1))
        sensed = sensor_stats(clips.audio, int(self.config.clip_level), SENSOR_BLOCK)
        energies = block_window_energies(sensed_energy(sensed[..., 0], sensed[..., 1], SENSOR_BLOCK))
        pool = Pool(name, window_summary(features, energies),
                    probs, clips.labels.astype(np.int64), np.asarray(clips.domain["group"], dtype=np.int64), sensed)
        pool.save(path)
        return pool

    min_reference = None  # calibrate_thresholds' own minimum

    def missing(self, s: Scenario) -> str | None:
        """Why the scenario cannot run here (its recordings are not at hand), else None."""
        from tinydrift.pipeline.verify import shared_data_folder

        if s.recordings is not None and shared_data_folder(s.recordings) is None:
            return f"needs ../shared/data/{s.recordings}, which is not here"
        return None

    def scenario_pool(self, s: Scenario) -> Pool:
        per_class = self.settings.clips_per_class
        if s.recordings is not None:
            from tinydrift.data.wavfolder import load_speech_commands
            from tinydrift.pipeline.verify import shared_data_folder

            folder = shared_data_folder(s.recordings)
            return self.pool(s.name, lambda: load_speech_commands(folder),
                             f"{s.name}-{len(list(folder.glob('*/*.wav')))}")

        def base() -> ClipSet:
            return self.population(s.population, per_class, self.settings.seed + 1)

        if s.transform is None and not s.label_map:
            return self.pool(s.name, base, f"{s.population.name}-{per_class}")
        return self.pool(s.name, lambda: s.apply(base(), self.settings.seed + 2), f"{s.name}-{per_class}")

    def control_pool(self, s: Scenario) -> Pool:
        """A large pool of an unseen population (or of the deployment's), for its ARL0."""
        per_class = self.settings.control_clips_per_class
        population = DEPLOYMENT if s.population is None else s.population
        return self.pool(f"{s.name}-control", lambda: self.population(population, per_class, self.settings.seed + 4),
                         f"{s.name}-control-{per_class}")

    def deployment(self) -> Pool:
        per_class = self.settings.clips_per_class
        return self.pool("deployment", lambda: self.population(DEPLOYMENT, per_class, self.settings.seed + 1),
                         f"deployment-{per_class}")

    def calibration(self) -> Pool:
        per_class = self.settings.calibration_clips_per_class
        return self.pool("calibration", lambda: self.population(DEPLOYMENT, per_class, self.settings.seed + 3),
                         f"calibration-{per_class}")


class CameraPoolMaker(PoolMaker):
    """PoolMaker's interface for a camera model: procedural leaf populations, camera
    transforms of their pixels, td_summarize_image's twin as the input summary, and what
    the camera's sensor health reads of each frame (image_sensor_stats)."""

    def __init__(self, model: bytes, config: MonitorConfig, cache: Path, settings: BenchSettings, log):
        super().__init__(model, config, cache, settings, log)
        from tinydrift.pipeline.export import MIN_IMAGE_REFERENCE

        self.audio_cache = Path(cache) / "leaves"
        self.min_reference = MIN_IMAGE_REFERENCE

    def _made_by(self, population) -> tuple:
        from tinydrift.data.leaves import GENERATOR_VERSION

        return population, GENERATOR_VERSION, CACHE_VERSION

    def _load(self, path: Path):
        from tinydrift.data.imageset import ImageSet

        return ImageSet.load(path)

    def _make(self, population, clips_per_class: int, seed: int):
        from tinydrift.data.camera_scenarios import draw_population

        self.log(f"drawing leaves: {population.name} ({clips_per_class} per class)")
        return draw_population(population, clips_per_class, seed)

    def pool(self, name: str, images, cache_name: str) -> Pool:
        path = self.cache / f"pool-{cache_name}-frames.npz"  # "-frames": pools with the frames' sensor stats
        cached = load_cached(path, lambda p: Pool.load(name, p), self.log)
        if cached is not None:
            return cached
        from tinydrift.model.quantize import input_shape
        from tinydrift.monitor.twin import image_sensor_stats
        from tinydrift.pipeline.export import model_input
        from tinydrift.target.host_model import run_generated_model

        source = model_input(input_shape(self.model))
        features = images.features
        probs = run_generated_model(self.model, features.reshape(len(features), -1))
        sensed = image_sensor_stats(features, int(self.config.clip_level))[:, None, :]
        pool = Pool(name, source.summarize(images), probs, images.labels.astype(np.int64),
                    np.asarray(images.domain["group"], dtype=np.int64), sensed, frame_values=features[0].size)
        pool.save(path)
        return pool

    def scenario_pool(self, s: Scenario) -> Pool:
        per_class = self.settings.clips_per_class
        base = self.population(s.population, per_class, self.settings.seed + 1)
        if s.transform is None and s.new_sign is None:
            return self.pool(s.name, base, f"{s.population.name}-{per_class}")
        return self.pool(s.name, s.apply(base, self.settings.seed + 2), f"{s.name}-{per_class}")

    def control_pool(self, s: Scenario) -> Pool:
        per_class = self.settings.control_clips_per_class
        images = self.population(s.population, per_class, self.settings.seed + 4)
        return self.pool(f"{s.name}-control", images, f"{s.name}-control-{per_class}")

    def deployment(self) -> Pool:
        from tinydrift.data.camera_scenarios import DEPLOYMENT as LEAF_DEPLOYMENT

        per_class = self.settings.clips_per_class
        return self.pool("deployment", self.population(LEAF_DEPLOYMENT, per_class, self.settings.seed + 1),
                         f"deployment-{per_class}")

    def calibration(self) -> Pool:
        from tinydrift.data.camera_scenarios import DEPLOYMENT as LEAF_DEPLOYMENT

        per_class = self.settings.calibration_clips_per_class
        images = self.population(LEAF_DEPLOYMENT, per_class, self.settings.seed + 3)
        return self.pool("calibration", images, f"calibration-{per_class}")


# ---------------------------------------------------------------------------- streams

def group_streams(pool: Pool, n_streams: int, length: int, rng: np.random.Generator, block_length: int | None,
                  class_weights: tuple | None = None, speaker_run: int | None = None) -> np.ndarray:
    """[n_streams, length] indices into the pool: whole speakers drawn with replacement
    (calibration's block bootstrap), at most `speaker_run` clips of each; with
    class_weights, clips resampled to that class mix."""
    from tinydrift.monitor.streams import bootstrap_indices

    if class_weights is None:
        return bootstrap_indices(pool.groups, n_streams, length, rng, block_length=speaker_run or block_length)
    w = np.asarray(class_weights, float)[pool.labels]
    if w.sum() <= 0:
        raise TinydriftError("a label-shift scenario removed every class")
    return rng.choice(len(pool), size=(n_streams, length), p=w / w.sum()).astype(np.int32)


@dataclass
class StreamSet:
    """Detection streams: `before` deployment inferences, then the scenario's."""

    before: np.ndarray  # indices into the deployment pool [B, before]
    after: np.ndarray  # indices into the scenario pool [B, after]
    mix: np.ndarray | None  # bool [B, after]: True = drifted (gradual onsets), None = all drifted
    feedback: np.ndarray  # bool [B, before + after]: label feedback after this inference


def make_streams(s: Scenario, deployment: Pool, drifted: Pool, settings: BenchSettings, n_streams: int,
                 block_length: int | None, seed: int) -> StreamSet:
    rng = np.random.default_rng([seed, zlib_name(s.name)])
    before = group_streams(deployment, n_streams, settings.before, rng, block_length, s.room_weights,
                           speaker_run=settings.speaker_run)
    after = group_streams(drifted, n_streams, settings.after, rng, block_length, s.mix_after,
                          speaker_run=settings.speaker_run)
    if s.hold:  # a stuck input: the first drifted one, over and over
        after = np.repeat(after[:, :1], settings.after, axis=1)
    mix = None
    if s.gradual:
        share = np.minimum(1.0, np.arange(1, settings.after + 1) / s.gradual)
        mix = rng.random((n_streams, settings.after)) < share
    feedback = np.zeros((n_streams, settings.before + settings.after), bool)
    if s.family == "concept":
        feedback = rng.random(feedback.shape) < LABEL_SHARE  # the share the error-rate test is calibrated for
    return StreamSet(before, after, mix, feedback)


def zlib_name(name: str) -> int:
    return zlib.crc32(name.encode())


def rows_at(streams: StreamSet, step: int, deployment: Pool, drifted: Pool, alt: np.ndarray | None = None):
    """(pool, indices) per stream at one step; gradual onsets mix both pools."""
    n_before = streams.before.shape[1]
    if step < n_before:
        return [(deployment, streams.before[:, step])]
    k = step - n_before
    if streams.mix is None:
        return [(drifted, streams.after[:, k])]
    return [(drifted, np.where(streams.mix[:, k], streams.after[:, k], -1)),
            (deployment, np.where(streams.mix[:, k], -1, streams.before[:, k % n_before]))]


def gather(parts, field_name: str):
    """One array [B, ...] from (pool, indices with -1 = not from this pool) parts."""
    out = None
    for pool, idx in parts:
        values = getattr(pool, field_name)
        take = values[np.maximum(idx, 0)]
        if out is None:
            out = take.copy()
        else:
            use = idx >= 0
            out[use] = take[use]
    return out


# ---------------------------------------------------------------------------- the monitor

def run_monitor(config: MonitorConfig, streams: StreamSet, deployment: Pool, drifted: Pool) -> dict:
    """The twin over the streams, as the app runs it per window: sensor health on the
    window's 50 blocks, the monitor update, label feedback where it comes back."""
    b = streams.before.shape[0]
    n_before = streams.before.shape[1]
    total = n_before + streams.after.shape[1]
    twin = MonitorTwin(config, b)
    camera = deployment.sensor.shape[2] > 3  # each inference's frame, not PCM blocks
    sensed = deployment.sensor.shape[1] > 0
    if not camera:
        for pool in (deployment, drifted):
            pool.conditions = twin.sensor_conditions(pool.sensor[..., 0], pool.sensor[..., 1], pool.sensor[..., 2], SENSOR_BLOCK)[2]
    first = np.zeros(b, dtype=np.int64)
    first_word = np.zeros(b, dtype=np.int64)
    by_type = np.zeros((b, 5), dtype=np.int64)  # when each alarm type latched (0: never)
    sensor_fault_any = np.zeros(b, bool)
    atc_before = np.zeros(b)
    # the confident answers per class a reader of the log has for the host's estimate: the stream's last ones
    recent_confident = np.zeros((b, config.n_classes), dtype=np.int64)
    recent_from = total - ESTIMATE_WINDOW
    # The data score's z (its EWMA T^2, standardized) at the first alarm, and on the last
    # no-drift inferences after commissioning and the EWMA's settling: whether the inputs
    # had moved beyond their own no-drift range when the alarm came.
    data_z_first = np.zeros(b, dtype=np.int64)
    # Whether DATA_DRIFT, when it latched, had the inputs' own evidence (an input score or
    # sensor health, an input score at its warning level, enough moved components) or was
    # named from the outputs alone: CONFIDENCE_DRIFT that the class mix did not explain.
    data_seen = np.zeros(b, bool)
    settled_from = min(n_before - 50, int(config.commission_n) + (4 << int(config.mean_shift)))
    no_drift_z = []
    lines = SeverityLines(twin, total, SEVERITY_READ_AFTER)
    first_change = np.zeros(b, dtype=np.int64)  # the step the first alarm's estimated change began at
    for step in range(total):
        parts = rows_at(streams, step, deployment, drifted)
        if camera:  # the frame's values: the probes hold the previous frame of the stream
            twin.sensor_image_update_stats(gather(parts, "sensor")[:, 0], deployment.frame_values)
        elif sensed:
            twin.sensor_update_blocks(gather(parts, "conditions"))
        probs = gather(parts, "probs")
        data_z = twin.update(gather(parts, "summaries"), probs, full=False)["z"][:, SCORE_MEAN]
        if settled_from <= step < n_before:
            no_drift_z.append(data_z.copy())
        if step >= recent_from:
            sure = probs.max(1).astype(np.int64) + 128 >= config.atc_threshold
            np.add.at(recent_confident, (np.flatnonzero(sure), probs.argmax(1)[sure]), 1)
        if streams.feedback[:, step].any():
            twin.label_feedback(probs.argmax(1), gather(parts, "labels"), streams=streams.feedback[:, step])
        word = twin.live_alarms() & ALARM_TYPES_MASK
        data_now = (by_type[:, 0] == 0) & ((word & ALARM_DATA_DRIFT) != 0)
        if data_now.any():
            with_confidence = (by_type[:, 1] == 0) & ((word & ALARM_CONFIDENCE_DRIFT) != 0)
            moved = np.unpackbits(twin.moved_at_alarm.astype(np.uint32).view(np.uint8), axis=-1).sum(axis=-1)
            limit = int(config.score_limit[SCORE_MEAN])
            evidence = (((twin.warnings & ALARM_DATA_DRIFT) != 0) | ((limit > 0) & (data_z >= limit))
                        | ((config.attribute_moved > 0) & (moved >= config.attribute_moved)))
            data_seen = np.where(data_now, ~with_confidence | evidence, data_seen)
        new = (first == 0) & (word != 0)
        lines.step(step, probs.argmax(1), probs.max(1).astype(np.int64) + 128, new,
                   probs.argmax(1) == gather(parts, "labels"))
        first_change[new] = lines.change[new]
        first[new] = step + 1
        first_word[new] = word[new]
        data_z_first[new] = data_z[new]
        for bit in range(5):
            by_type[:, bit] = np.where((by_type[:, bit] == 0) & ((word >> bit) & 1 == 1), step + 1, by_type[:, bit])
        sensor_fault_any |= (word & 0x10) != 0
        if step == n_before - 1:
            atc_before = twin.atc_ewma / ONE_Q16
    return {"first": first, "word": first_word, "by_type": by_type, "sensor_fault": sensor_fault_any,
            "atc_before": atc_before, "atc_after": twin.atc_ewma / ONE_Q16,
            "recent_confident": recent_confident, "recent_answers": min(total, ESTIMATE_WINDOW),
            # the answers before the first alarm's change point: the class mix the host's estimate reads against
            "heard_before": [lines.predicted[i, :first_change[i]] for i in range(b)],
            "alarms_after": twin.alarms & ALARM_TYPES_MASK,
            "first_impact": _first_lines(lines, lines.impacts, b), "first_truth": _first_lines(lines, lines.truth, b),
            "first_verdict": _first_lines(lines, lines.verdicts, b),
            "data_z_first": data_z_first / ONE_Q12, "data_seen": data_seen,
            "no_drift_data_z": np.concatenate(no_drift_z) / ONE_Q12 if no_drift_z else np.zeros(0)}


def _first_lines(lines: SeverityLines, values: list, n_streams: int) -> np.ndarray:
    """Per stream, its first alarm's entry of `values` (lines.impacts, .truth or .verdicts), read
    SEVERITY_READ_AFTER inferences after it (NaN: no alarm, or read too late; None: withheld)."""
    out = np.full(n_streams, np.nan, dtype=object)
    for (stream, _), value in zip(lines.read, values):
        out[stream] = value
    return out
