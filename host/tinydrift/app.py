"""The firmware app's twin (firmware/lib/tinydrift/src/app): what the device must log for a
stream of audio, computed on the host, and the check of a device's frames against it; for a
streaming build (a wake-word model) the DETECTION frames (`expected_detections`); for a
camera build, per image (`expected_image_inferences`).

`expected_inferences` computes, per window, the host front end's int8 features (reset per
window, as td_app does), TFLite Micro's output, the summary, sensor health on the window's
new samples, and the monitor twin's scores, in the same order as the device. The device
must match it bit for bit (tests/test_app_qemu.py, the demo).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable, Sequence

import numpy as np

from tinydrift.frontend import CLIP_SAMPLES, SAMPLE_RATE, WAKEWORD_STEP_MS
from tinydrift.frontend.features import WINDOW_MS
from tinydrift.link import protocol as P

SENSOR_BLOCK = 320  # td_app: sensor health on the new samples, one 20 ms step at a time
DEFAULT_STRIDE = CLIP_SAMPLES


@dataclass
class Window:
    samples: np.ndarray  # int16 [16000]
    fresh: np.ndarray  # the samples sensor health sees for this window
    window_end: int  # samples of the stream up to this window's end (TRACE.window_end)


def windows_of(stream: np.ndarray, stride: int = DEFAULT_STRIDE, *, clip: bool = False) -> list[Window]:
    """td_app's windows over one stream: one per `stride` samples once 16,000 have arrived.
    A replayed clip (`clip=True`) shorter than a window gets one window, padded with zeros;
    a continuous stream's short tail gets none."""
    if not 1 <= stride <= CLIP_SAMPLES:
        raise ValueError(f"stride {stride} not in 1..{CLIP_SAMPLES}")
    stream = np.asarray(stream, dtype=np.int16)
    n = len(stream)
    out = []
    end = CLIP_SAMPLES
    while end <= n:
        fresh_from = 0 if end == CLIP_SAMPLES else end - stride
        out.append(Window(stream[end - CLIP_SAMPLES:end], stream[fresh_from:end], end))
        end += stride
    if clip and not out and n > 0:
        padded = np.zeros(CLIP_SAMPLES, dtype=np.int16)
        padded[:n] = stream
        out.append(Window(padded, stream, n))
    return out


@dataclass
class Expected:
    """Per inference, what the device must log: INFERENCE fields and the TRACE payload."""

    summaries: np.ndarray  # int16 [N, n_summary]
    outputs: np.ndarray  # int8 [N, n_classes]
    window_end: np.ndarray  # [N]
    inference_index: np.ndarray  # [N] (the monitor's t)
    predicted: np.ndarray
    confidence: np.ndarray
    alarm_bits: np.ndarray
    entropy: np.ndarray
    atc: np.ndarray
    moved_channels: np.ndarray  # uint64 as Python ints (object array)
    change_index: np.ndarray
    alarm_index: np.ndarray
    cusum: np.ndarray  # [N, 5] Q12

    def __len__(self) -> int:
        return len(self.summaries)

    def inference_frame(self, i: int, model_id: bytes) -> P.Inference:
        """The INFERENCE frame (without seq) the device must send for inference i."""
        scores = tuple(int(v) for v in self.cusum[i]) + (0,) * (P.N_SCORES - self.cusum.shape[1])
        return P.Inference(0, int(self.inference_index[i]), model_id, int(self.predicted[i]),
                           int(self.confidence[i]), int(self.alarm_bits[i]), int(self.entropy[i]),
                           int(self.atc[i]), int(self.moved_channels[i]), int(self.change_index[i]), scores,
                           int(self.alarm_index[i]))


def expected_inferences(streams: Sequence[np.ndarray], model: bytes, config, *, stride: int = DEFAULT_STRIDE,
                        clips: bool = True, progress: Callable[[int], None] | None = None,
                        features: np.ndarray | None = None, twin=None) -> Expected:
    """What the firmware app logs for `streams` played in order, the monitor running on from
    one to the next: each a replayed clip (`clips=True`: AUDIO frames START..END) or one
    continuous stream (`clips=False`: the microphone, the emulated board's audio file).

    `features` may give the int8 features of every window (e.g. cached ones, computed by the
    same front end); by default they are computed here with features_int8, reset per window.
    `twin` (a MonitorTwin of one stream) is the monitor to run on, e.g. one that took back a
    kept reference; by default a fresh one."""
    from tinydrift.monitor.twin import window_energies, window_summary
    from tinydrift.frontend import features_int8
    from tinydrift.model.runtimes import run_tflm

    windows = [w for s in streams for w in windows_of(s, stride, clip=clips)]
    n = len(windows)
    if features is None:
        features = np.zeros((n, 49, 40), np.int8)
        for i, w in enumerate(windows):
            features[i] = features_int8(w.samples)
    elif len(features) != n:
        raise ValueError(f"{len(features)} feature sets for {n} windows")
    outputs = run_tflm(model, features) if n else np.zeros((0, config.n_classes), np.int8)
    sensed = [[w.fresh[start:start + SENSOR_BLOCK] for start in range(0, len(w.fresh), SENSOR_BLOCK)] for w in windows]
    energies = np.array([window_energies(w.fresh[None], SENSOR_BLOCK)[0] for w in windows], np.int64).reshape(-1, 2)
    return _monitored(config, window_summary(features, energies), outputs, np.array([w.window_end for w in windows], np.int64),
                      sensed, progress, twin)


def expected_image_inferences(images: np.ndarray, model: bytes, config, grid: int, *, first_image: int = 1,
                              progress: Callable[[int], None] | None = None) -> Expected:
    """What a camera build logs for `images` (uint8 [N, H, W, 3], from its camera or IMAGE
    frames), the monitor running on from one to the next: each image minus 128 is the model's
    input (TFLite Micro), td_summarize_image on a grid x grid split its summary, sensor health
    on the frame (td_sensor_image_update) before the monitor update. TRACE.window_end counts
    images since boot: `first_image` is this one's number."""
    from tinydrift.data.imageset import pixels_to_int8
    from tinydrift.model.runtimes import run_tflm
    from tinydrift.monitor.twin import summarize_image

    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim != 4:
        raise ValueError(f"expected uint8 images [N, H, W, C], got {images.dtype} {images.shape}")
    features = pixels_to_int8(images)
    n = len(images)
    outputs = run_tflm(model, features) if n else np.zeros((0, config.n_classes), np.int8)
    return _monitored(config, summarize_image(features, grid), outputs, np.arange(first_image, first_image + n),
                      [[frame] for frame in features], progress)


def _monitored(config, summaries: np.ndarray, outputs: np.ndarray, window_end: np.ndarray, sensed: list,
               progress, twin=None) -> Expected:
    """The monitor twin (`twin`, else a fresh one) over inferences in the app's order: sensor
    health on each one's blocks (`sensed[i]`: int16 PCM blocks, or a camera's int8 frame),
    then the monitor update."""
    from tinydrift.monitor.twin import MonitorTwin

    n = len(summaries)
    twin = MonitorTwin(config, 1) if twin is None else twin
    results = []
    for i in range(n):
        for block in sensed[i]:
            if block.dtype == np.int8:
                twin.sensor_image_update(block[None])
            else:
                twin.sensor_update(block[None, :])
        results.append(twin.update(summaries[i:i + 1], outputs[i:i + 1]))
        if progress:
            progress(1)
    return _expected(results, summaries, outputs, window_end)


def _expected(results: list[dict], summaries: np.ndarray, outputs: np.ndarray, window_end) -> Expected:
    """Expected from the monitor twin's result of each inference (one stream each)."""
    n = len(results)
    keys = ("t", "predicted", "confidence", "alarms", "entropy_q16", "atc_accuracy_q16", "change_time", "alarm_time")
    rows = {key: np.array([int(np.asarray(r[key])[0]) for r in results], np.int64).reshape(n) for key in keys}
    cusum = np.array([np.asarray(r["cusum"])[0] for r in results], np.int64).reshape(n, 5)
    moved = np.zeros(n, dtype=object)
    for i, r in enumerate(results):
        words = [int(v) for v in np.asarray(r["moved"])[0]]
        moved[i] = sum(word << (32 * k) for k, word in enumerate(words[:2]))
    return Expected(
        summaries=summaries, outputs=outputs, window_end=np.asarray(window_end, np.int64),
        inference_index=rows["t"], predicted=rows["predicted"], confidence=rows["confidence"],
        alarm_bits=rows["alarms"] & 0xFFFF, entropy=rows["entropy_q16"], atc=rows["atc_accuracy_q16"],
        moved_channels=moved, change_index=rows["change_time"], alarm_index=rows["alarm_time"], cusum=cusum,
    )


# ---------------------------------------------------------------------------- checking a device

def device_inferences(items: Iterable) -> list[tuple[P.Inference, P.Trace | None]]:
    """The INFERENCE frames among parsed items, each with the TRACE frame that follows it."""
    pairs: list[list] = []
    for item in items:
        if type(item) is P.Inference:
            pairs.append([item, None])
        elif type(item) is P.Trace and pairs and pairs[-1][1] is None \
                and pairs[-1][0].inference_index == item.inference_index:
            pairs[-1][1] = item
    return [(a, b) for a, b in pairs]


def compare(device: Sequence[tuple[P.Inference, P.Trace | None]], expected: Expected, model_id: bytes) -> list[str]:
    """Every difference between what the device logged and the twin, one line each (empty:
    bit-exact). Checks the INFERENCE frame field by field and, from TRACE, the summary, the
    model output and the window's position."""
    problems = []
    if len(device) != len(expected):
        problems.append(f"the device logged {len(device)} inferences, the twin expects {len(expected)}")
    for i, (inference, trace) in enumerate(device[:len(expected)]):
        want = expected.inference_frame(i, model_id)
        want.seq = inference.seq
        if inference != want:
            fields = [name for name in ("inference_index", "model_id", "predicted_class", "confidence", "alarm_bits",
                                        "entropy", "atc", "moved_channels", "change_index", "scores",
                                        "alarm_index")
                      if getattr(inference, name) != getattr(want, name)]
            problems.append(f"inference {i}: INFERENCE differs in {', '.join(fields)}")
        if trace is None:
            problems.append(f"inference {i}: no TRACE frame")
            continue
        if trace.summary_used != tuple(int(v) for v in expected.summaries[i]):
            problems.append(f"inference {i}: summary differs")
        if trace.outputs_used != tuple(int(v) for v in expected.outputs[i]):
            problems.append(f"inference {i}: model output differs")
        if trace.window_end != int(expected.window_end[i]):
            problems.append(f"inference {i}: window ends at {trace.window_end}, expected {int(expected.window_end[i])}")
    return problems


# ---------------------------------------------------------------------------- heartbeats

class HeartbeatTwin:
    """td_app_heartbeat.c on the host: fed the INFERENCE frames a device sent (or the twin's),
    in order, it returns each HEARTBEAT frame the device must send after them (seq and
    uptime_ms 0: the device's own). `interval` may change between inferences, as CONFIG
    changes it; reset() is RESET."""

    def __init__(self, drift_thresholds: Sequence[int], interval: int = 100):
        self.drift = tuple(int(v) for v in drift_thresholds[:P.ALARM_TYPES])
        self.interval = interval
        self.reset()

    def reset(self) -> None:
        self.latched_at = [0] * P.ALARM_TYPES
        self.clear_window()

    def clear_window(self) -> None:
        self.window: list[P.Inference] = []

    def add(self, inference: P.Inference) -> P.Heartbeat | None:
        for k in range(P.ALARM_TYPES):
            if inference.alarm_bits >> k & 1 and not self.latched_at[k]:
                self.latched_at[k] = inference.inference_index
        if self.interval == 0:
            return None
        self.window.append(inference)
        if len(self.window) < self.interval:
            return None
        heartbeat = self._summary()
        self.clear_window()
        return heartbeat

    def _summary(self) -> P.Heartbeat:
        last, n = self.window[-1], len(self.window)
        first = last.alarm_index or 0

        def delay(at: int) -> int:
            return P.NOT_LATCHED if at == 0 else min(max(at - first, 0), P.NOT_LATCHED - 1)

        def drift_units(score: int, drift: int) -> int:
            return 0 if score <= 0 or drift <= 0 else min((score << 8) // drift, 0xFFFF)

        maxima = [max(0, *(f.scores[k] for f in self.window)) for k in range(P.ALARM_TYPES)]
        counts = [sum(f.predicted_class == c for f in self.window) for c in range(P.HEARTBEAT_CLASSES)]
        return P.Heartbeat(
            0, last.inference_index, 0, first, last.change_index, last.moved_channels, last.alarm_bits, n,
            tuple(delay(at) for at in self.latched_at),
            tuple(drift_units(m, d) for m, d in zip(maxima, self.drift)),
            min((sum(f.entropy for f in self.window) // n) >> 4, 0xFFFF), min(last.atc >> 8, 255),
            sum(f.confidence for f in self.window) // n,
            tuple((255 * c + n // 2) // n for c in counts))


# ---------------------------------------------------------------------------- streaming detectors

COOLING_FRAMES = 100  # td_app.h TD_APP_COOLING_FRAMES: ESPHome's hold-off, in 10 ms frames


def detect(probabilities: np.ndarray, cutoff: int, window: int, stride: int) -> tuple[np.ndarray, np.ndarray]:
    """td_app_stream.c's decision over one stream's uint8 probabilities (one per inference of
    `stride` frames): per inference, the sliding window's mean (rounded down) and the
    DETECTION flags (WAKE, COOLING), as ESPHome's micro_wake_word decides: a detection when
    the window's sum exceeds cutoff x window and it is not cooling; a detection empties the
    window and starts cooling again, as the stream's start does; each frame whose latest
    probability is below the cutoff brings the cooling a frame closer to its end."""
    ring = [0] * window
    latest, cooling = 0, -COOLING_FRAMES
    means = np.zeros(len(probabilities), np.int64)
    flags = np.zeros(len(probabilities), np.int64)
    for i, probability in enumerate(int(p) for p in probabilities):
        for _ in range(stride - 1):  # the frames before the one that completes the input
            if ring[latest] < cutoff:
                cooling = min(cooling + 1, 0)
        latest = (latest + 1) % window
        ring[latest] = probability
        if probability < cutoff:
            cooling = min(cooling + 1, 0)
        total = sum(ring)
        means[i] = total // window
        flags[i] = P.DETECTION_FLAG_COOLING if cooling < 0 else 0
        if cooling >= 0 and total > cutoff * window:
            flags[i] |= P.DETECTION_FLAG_WAKE
            ring = [0] * window
            cooling = -COOLING_FRAMES
    return means, flags


def expected_detections(streams: Sequence[np.ndarray], model, model_id: bytes, *, first_index: int = 1,
                        trace: bool = True) -> list[P.Detection]:
    """The DETECTION frames (seq 0) a streaming build of `model` (a tinydrift.wakeword
    WakewordModel) sends for `streams` played in order, each a stream of its own (a replayed
    clip, or the microphone from boot): the front end and the model's state start afresh
    with each; the inference index runs on from `first_index`. TFLite Micro stands for the
    generated C, which equals it on every invocation (tests/test_wakeword_models.py).
    Without `trace` the device sends only the detections."""
    from tinydrift.model.runtimes import run_tflm
    from tinydrift.wakeword.stream import stream_input_blocks

    frames: list[P.Detection] = []
    index = first_index
    for stream in streams:
        blocks = stream_input_blocks(np.asarray(stream, np.int16), model.stride)
        if not len(blocks):
            continue
        probabilities = run_tflm(model.model, blocks)[:, 0]
        means, flags = detect(probabilities, model.probability_cutoff_u8, model.sliding_window_size, model.stride)
        for k, (probability, mean, flag) in enumerate(zip(probabilities, means, flags)):
            if trace or flag & P.DETECTION_FLAG_WAKE:
                frames.append(P.Detection(0, index + k, model_id, int(probability), int(mean), int(flag),
                                          stream_end(k, model.stride)))
        index += len(blocks)
    return frames


WAKE_HISTORY = 8  # td_app.h TD_APP_WAKE_HISTORY: the latest wakes a LABEL can name


def woke_at(wakes: Sequence[int], index: int, inferences: int) -> int | None:
    """td_app_stream_woke_at: whether the detector woke at inference `index` (1 or 0), given
    the indices of its wakes since RESET in order and its inferences so far; None (the
    device answers "unknown inference") when it is not yet made or older than the latest
    WAKE_HISTORY wakes."""
    if index == 0 or index > inferences:
        return None
    kept = wakes[-WAKE_HISTORY:]
    if index in kept:
        return 1
    if len(wakes) <= WAKE_HISTORY or index > kept[0]:
        return 0
    return None


def expected_stream_inferences(streams: Sequence[np.ndarray], model, config,
                               labels: dict[int, Sequence[tuple[int, int]]] | None = None) -> Expected:
    """The INFERENCE frames a streaming build of `model` with the monitor `config` (`tinydrift
    wakeword calibrate`) sends for `streams` played in order, each a stream of its own, the
    monitor running on from one to the next: sensor health on each front-end hop's new
    samples (the first frame's whole window, then one step each, the frames of a stream's
    unfinished last block included), and per inference the summary of its frames and new
    samples' loudness and tilt, the quiet level and the probability p as [1 - p, p]
    (tinydrift.wakeword.monitor.detector_probs).

    labels: after inference i (the device's index, from 1), the LABEL frames the host sent
    then, each (the inference it names, 1 if the wake word was said there, else 0): the
    monitor's error-rate test takes each against whether the detector woke there (woke_at);
    one the device cannot place is refused by it and skipped here."""
    from tinydrift.frontend.features import frames_in
    from tinydrift.model.runtimes import run_tflm
    from tinydrift.monitor.twin import MonitorTwin
    from tinydrift.wakeword.monitor import detector_probs, hop_sensor_stats, stream_loudness, stream_summary
    from tinydrift.wakeword.stream import stream_input_blocks

    window, step = SAMPLE_RATE * WINDOW_MS // 1000, SAMPLE_RATE * model.feature_step_ms // 1000
    twin = MonitorTwin(config, 1)
    results, summaries, outputs, ends, wakes = [], [], [], [], []
    for stream in streams:
        stream = np.asarray(stream, np.int16)
        blocks = stream_input_blocks(stream, model.stride)
        probability = run_tflm(model.model, blocks)[:, 0].astype(np.uint8) if len(blocks) else None
        probs = detector_probs(probability) if len(blocks) else None
        stream_summaries = stream_summary(blocks, stream_loudness(hop_sensor_stats(stream, len(blocks), model.stride))) \
            if len(blocks) else None
        flags = detect(probability, model.probability_cutoff_u8, model.sliding_window_size, model.stride)[1] \
            if len(blocks) else None
        for frame in range(frames_in(len(stream), model.feature_step_ms)):
            first = 0 if frame == 0 else window + step * (frame - 1)
            twin.sensor_update(stream[None, first:window + step * frame])
            if frame % model.stride == model.stride - 1:
                k = frame // model.stride
                results.append(twin.update(stream_summaries[k:k + 1], probs[k:k + 1]))
                summaries.append(stream_summaries[k])
                outputs.append(probs[k])
                ends.append(stream_end(k, model.stride))
                if flags[k] & P.DETECTION_FLAG_WAKE:
                    wakes.append(len(results))
                for named, label in (labels or {}).get(len(results), ()):
                    woke = woke_at(wakes, named, len(results))
                    if woke is not None and 0 <= label < config.n_classes:
                        twin.label_feedback(woke, label)
    return _expected(results, np.array(summaries, np.int16).reshape(-1, config.n_summary),
                     np.array(outputs, np.int8).reshape(-1, 2), ends)


def wake_positions(probabilities: np.ndarray, model) -> np.ndarray:
    """Stream positions (samples) of the WAKEs `detect` makes on one stream's uint8
    probabilities under `model`'s cutoff, window and stride (a WakewordModel)."""
    _, flags = detect(probabilities, model.probability_cutoff_u8, model.sliding_window_size, model.stride)
    return np.array([stream_end(k, model.stride) for k in np.flatnonzero(flags & P.DETECTION_FLAG_WAKE)], np.int64)


def stream_end(inference: int, stride: int) -> int:
    """Samples of a stream up to inference `inference`'s last frame: the front end's first
    frame takes a whole 30 ms window, each later one a 10 ms step."""
    window, step = SAMPLE_RATE * WINDOW_MS // 1000, SAMPLE_RATE * WAKEWORD_STEP_MS // 1000
    return window + step * ((inference + 1) * stride - 1)
