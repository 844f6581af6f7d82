"""Audio into the device, and what the device must answer: `tinydrift replay` and the app's twin.

Replaying: each clip (a WAV file, a row of a clip set) travels as AUDIO frames of up to 256
samples, START on the first and END on the last; the device assembles 1 s windows and
answers every frame with ACK after whatever it caused (an END or a completed window runs
an inference first). `Replayer` keeps at most `window` frames unacknowledged and starts a
clip only once the previous clip's END is acknowledged, so a device busy with an
inference is never sent more than it has room for; a gap reported by the device (ACK
result 1, the expected offset in `detail`) or a missing ACK makes it resend from there.

The twin: `expected_inferences` computes, on the host, what the firmware app
(firmware/lib/tinydrift/src/app) computes for the same audio: per window, the host front
end's int8 features (reset per window, as td_app does), TFLite Micro's output, the
summary, sensor health on the window's new samples, and the monitor twin's scores, in the
same order. The device must match it bit for bit (tests/test_app_qemu.py).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np

from ..errors import TinydriftError
from ..features import CLIP_SAMPLES
from . import protocol as P

SENSOR_BLOCK = 320  # td_app: sensor health on the new samples, one 20 ms step at a time
DEFAULT_STRIDE = CLIP_SAMPLES
ACK_OK, ACK_AUDIO_GAP, ACK_UNKNOWN_INFERENCE, ACK_BAD_LABEL, ACK_NOT_A_COMMAND = range(5)
ACK_RESULTS = {ACK_OK: "accepted", ACK_AUDIO_GAP: "AUDIO gap", ACK_UNKNOWN_INFERENCE: "unknown inference",
               ACK_BAD_LABEL: "label outside the model's classes", ACK_NOT_A_COMMAND: "not a command"}


# ---------------------------------------------------------------------------- sources

@dataclass
class ReplaySource:
    """Clips to replay: int16 PCM at 16 kHz, any length each, with a name (and a label if known)."""

    clips: list[np.ndarray]
    names: list[str]
    labels: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.clips)

    @property
    def samples(self) -> int:
        return int(sum(len(c) for c in self.clips))


def load_source(path: str | Path, limit: int | None = None) -> ReplaySource:
    """A clip set made by `tinydrift data kws` (.npz: one clip per row) or a folder of 16 kHz
    16-bit WAV files (searched recursively, in sorted order: one clip per file)."""
    from ..data.clipset import ClipSet
    from ..data.wavfolder import read_wav
    from ..features import SAMPLE_RATE

    path = Path(path)
    if path.is_file() and path.suffix == ".npz":
        clips = ClipSet.load(path)
        n = len(clips) if limit is None else min(limit, len(clips))
        return ReplaySource([clips.audio[i] for i in range(n)], [f"{path.name}[{i}]" for i in range(n)],
                            clips.labels[:n].astype(np.int64))
    if path.is_dir():
        files = sorted(path.rglob("*.wav"))
        if not files:
            raise TinydriftError(f"{path}: no .wav files in it (give a folder of 16 kHz WAV files or a .npz clip set)")
        files = files[:limit] if limit is not None else files
        return ReplaySource([read_wav(f, SAMPLE_RATE) for f in files], [str(f.relative_to(path)) for f in files])
    raise TinydriftError(f"{path}: not a folder of WAV files nor a .npz clip set made by `tinydrift data kws`")


def write_pcm(clips: Iterable[np.ndarray], path: str | Path) -> Path:
    """Concatenate clips into a raw PCM file (16-bit little-endian): the emulated board's
    microphone file. With 16,000-sample clips and the default stride, window k is clip k."""
    from ..atomic import atomic_path

    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            for clip in clips:
                f.write(np.asarray(clip, dtype="<i2").tobytes())
    return Path(path)


# ---------------------------------------------------------------------------- the app's twin

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
    cusum: np.ndarray  # [N, 5] Q12

    def __len__(self) -> int:
        return len(self.summaries)

    def inference_frame(self, i: int, model_id: bytes) -> P.Inference:
        """The INFERENCE frame (without seq) the device must send for inference i."""
        scores = tuple(int(v) for v in self.cusum[i]) + (0,) * (P.N_SCORES - self.cusum.shape[1])
        return P.Inference(0, int(self.inference_index[i]), model_id, int(self.predicted[i]),
                           int(self.confidence[i]), int(self.alarm_bits[i]), int(self.entropy[i]),
                           int(self.atc[i]), int(self.moved_channels[i]), int(self.change_index[i]), scores)


def expected_inferences(streams: Sequence[np.ndarray], model: bytes, config, *, stride: int = DEFAULT_STRIDE,
                        clips: bool = True, progress: Callable[[int], None] | None = None,
                        features: np.ndarray | None = None) -> Expected:
    """What the firmware app logs for `streams` played in order, the monitor running on from
    one to the next: each a replayed clip (`clips=True`: AUDIO frames START..END) or one
    continuous stream (`clips=False`: the microphone, the emulated board's audio file).

    `features` may give the int8 features of every window (e.g. cached ones, computed by the
    same front end); by default they are computed here with features_int8, reset per window."""
    from ..drift.twin import MonitorTwin, summarize_frames
    from ..features import features_int8
    from ..model.runtimes import run_tflm

    windows = [w for s in streams for w in windows_of(s, stride, clip=clips)]
    n = len(windows)
    if features is None:
        features = np.zeros((n, 49, 40), np.int8)
        for i, w in enumerate(windows):
            features[i] = features_int8(w.samples)
    elif len(features) != n:
        raise ValueError(f"{len(features)} feature sets for {n} windows")
    outputs = run_tflm(model, features) if n else np.zeros((0, config.n_classes), np.int8)
    summaries = summarize_frames(features)
    twin = MonitorTwin(config, 1)
    keys = ("t", "predicted", "confidence", "alarms", "entropy_q16", "atc_accuracy_q16", "change_time")
    rows = {k: np.zeros(n, np.int64) for k in keys}
    cusum = np.zeros((n, 5), np.int64)
    moved = np.zeros(n, dtype=object)
    for i, w in enumerate(windows):
        for start in range(0, len(w.fresh), SENSOR_BLOCK):
            twin.sensor_update(w.fresh[None, start:start + SENSOR_BLOCK])
        result = twin.update(summaries[i:i + 1], outputs[i:i + 1])
        for key in keys:
            rows[key][i] = int(np.asarray(result[key])[0])
        cusum[i] = np.asarray(result["cusum"])[0]
        words = [int(v) for v in np.asarray(result["moved"])[0]]
        moved[i] = sum(word << (32 * k) for k, word in enumerate(words[:2]))
        if progress:
            progress(1)
    return Expected(
        summaries=summaries, outputs=outputs, window_end=np.array([w.window_end for w in windows], np.int64),
        inference_index=rows["t"], predicted=rows["predicted"], confidence=rows["confidence"],
        alarm_bits=rows["alarms"] & 0xFFFF, entropy=rows["entropy_q16"], atc=rows["atc_accuracy_q16"],
        moved_channels=moved, change_index=rows["change_time"], cusum=cusum,
    )


# ---------------------------------------------------------------------------- replaying

def audio_chunks(clip: np.ndarray, chunk: int = P.AUDIO_MAX_SAMPLES) -> list[tuple[int, np.ndarray, int]]:
    """(sample_offset, samples, flags) of the AUDIO frames that carry one clip."""
    clip = np.asarray(clip, dtype=np.int16)
    if not 1 <= chunk <= P.AUDIO_MAX_SAMPLES:
        raise ValueError(f"chunk {chunk} not in 1..{P.AUDIO_MAX_SAMPLES}")
    offsets = list(range(0, max(len(clip), 1), chunk))
    out = []
    for k, offset in enumerate(offsets):
        flags = (P.AUDIO_FLAG_START if k == 0 else 0) | (P.AUDIO_FLAG_END if k == len(offsets) - 1 else 0)
        out.append((offset, clip[offset:offset + chunk], flags))
    return out


@dataclass
class ReplayStats:
    clips: int = 0
    samples: int = 0
    frames_sent: int = 0
    resent: int = 0
    gaps: int = 0  # ACKs reporting an AUDIO gap
    timeouts: int = 0  # ACKs that never came (frames resent)
    inferences: int = 0
    frames_received: int = 0
    corrupt: int = 0
    seconds: float = 0.0
    first_alarm: tuple[int, int] | None = None  # (inference_index, alarm bits) of the first latched alarm
    received: list = field(default_factory=list, repr=False)  # every item parsed, when kept

    def line(self) -> str:
        rate = self.samples / 16000 / self.seconds if self.seconds > 0 else 0.0
        alarm = "no alarm"
        if self.first_alarm is not None:
            alarm = f"first alarm {'+'.join(P.alarm_names(self.first_alarm[1] & 0xFF))} at inference {self.first_alarm[0]}"
        return (f"replayed {self.clips} clips ({self.samples / 16000:.1f} s of audio, {rate:.2f}x real time) in "
                f"{self.seconds:.1f} s: {self.inferences} inferences, {alarm}; {self.frames_sent} AUDIO frames, "
                f"{self.resent} resent ({self.gaps} gaps, {self.timeouts} timeouts), {self.corrupt} corrupt frames received")


class Replayer:
    """Streams clips over an open port (anything with write(), and read() honouring a timeout:
    pyserial ports, capture.open_port) with flow control, parsing what comes back.

    `on_items(items)` receives every parsed item (frames, text lines, corrupt runs) as they
    arrive, e.g. to store them; `keep` also collects them in ReplayStats.received."""

    def __init__(self, port, *, window: int = 4, chunk: int = P.AUDIO_MAX_SAMPLES, ack_timeout: float = 10.0,
                 on_items: Callable[[list], None] | None = None, keep: bool = False, first_seq: int = 0):
        if window < 1:
            raise TinydriftError(f"--window must be at least 1 frame, got {window}")
        self.port = port
        self.window = window
        self.chunk = chunk
        self.ack_timeout = ack_timeout
        self.on_items = on_items
        self.keep = keep
        self.seq = first_seq
        self.parser = P.StreamParser()
        self.stats = ReplayStats()
        self._acks: dict[int, P.Ack] = {}

    # -- link

    def _send(self, frame: P.Frame) -> int:
        frame.seq = self.seq
        self.seq = (self.seq + 1) & 0xFFFFFFFF
        self.port.write(P.encode(frame))
        return frame.seq

    def _poll(self) -> None:
        """Read what has arrived (waiting up to the port's timeout) and act on it."""
        from .capture import read_available

        data = read_available(self.port)
        if not data:
            return
        items = self.parser.feed(data)
        for item in items:
            kind = type(item)
            if kind is P.Ack:
                self._acks[item.command_seq] = item
            elif kind is P.Inference:
                self.stats.inferences += 1
                latched = item.alarm_bits & 0xFF
                if latched and self.stats.first_alarm is None:
                    self.stats.first_alarm = (item.inference_index, item.alarm_bits)
            elif kind is P.Corrupt:
                self.stats.corrupt += 1
            if kind not in (P.TextLine, P.Corrupt):
                self.stats.frames_received += 1
        if self.keep:
            self.stats.received.extend(items)
        if self.on_items is not None:
            self.on_items(items)

    def command(self, frame: P.Frame, timeout: float | None = None) -> P.Ack:
        """Send one command (RESET, LABEL, STATUS_REQUEST) and wait for its ACK."""
        seq = self._send(frame)
        deadline = time.monotonic() + (self.ack_timeout if timeout is None else timeout)
        while seq not in self._acks:
            if time.monotonic() > deadline:
                raise TinydriftError(f"no ACK for {frame.TYPE.name} within {self.ack_timeout:g} s: is the "
                                     "tinydrift app running on the device?")
            self._poll()
        return self._acks.pop(seq)

    # -- clips

    def replay_clip(self, clip: np.ndarray) -> None:
        chunks = audio_chunks(clip, self.chunk)
        by_offset = {offset: k for k, (offset, _, _) in enumerate(chunks)}
        in_flight: dict[int, int] = {}  # seq -> chunk index
        next_chunk = 0
        done = False
        last_progress = time.monotonic()
        while not done:
            while next_chunk < len(chunks) and len(in_flight) < self.window:
                offset, samples, flags = chunks[next_chunk]
                seq = self._send(P.Audio(0, offset, flags, tuple(int(s) for s in samples)))
                in_flight[seq] = next_chunk
                self.stats.frames_sent += 1
                next_chunk += 1
            self._poll()
            for seq in [s for s in in_flight if s in self._acks]:
                ack = self._acks.pop(seq)
                index = in_flight.pop(seq, None)
                last_progress = time.monotonic()
                if ack.result == ACK_OK:
                    if index == len(chunks) - 1:
                        done = True
                    continue
                if ack.result != ACK_AUDIO_GAP:
                    raise TinydriftError(f"the device refused an AUDIO frame: {ACK_RESULTS.get(ack.result, ack.result)}")
                # Go back to where the device is; later frames in flight will be refused too.
                self.stats.gaps += 1
                resume = by_offset.get(ack.detail)
                if resume is None:
                    raise TinydriftError(f"the device asked for sample {ack.detail}, not a chunk boundary of this clip")
                self.stats.resent += next_chunk - resume
                for stale in list(in_flight):
                    self._acks.pop(stale, None)
                in_flight.clear()
                next_chunk = resume
                break
            if in_flight and time.monotonic() - last_progress > self.ack_timeout:
                self.stats.timeouts += 1
                resume = min(in_flight.values())
                self.stats.resent += next_chunk - resume
                in_flight.clear()
                next_chunk = resume
                last_progress = time.monotonic()
                if self.stats.timeouts > 3 * max(1, self.stats.clips + 1):
                    raise TinydriftError("the device stopped acknowledging AUDIO frames: is the tinydrift app "
                                         "running, and the port the device's?")
        self.stats.clips += 1
        self.stats.samples += len(clip)

    def replay(self, clips: Sequence[np.ndarray], progress: Callable[[int], None] | None = None) -> ReplayStats:
        started = time.monotonic()
        for clip in clips:
            self.replay_clip(clip)
            if progress is not None:
                progress(1)
        self.stats.seconds = time.monotonic() - started
        return self.stats

    def drain(self, seconds: float = 0.2) -> None:
        """Keep reading for `seconds` (frames the device sends after the last ACK)."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self._poll()


class DatabaseSink:
    """Stores replay's received items in a capture database (same schema as `capture`)."""

    def __init__(self, db_path: str | Path, port_url: str, expected_hash: bytes | None = None):
        from .capture import LinkTracker
        from .store import CaptureStore

        self.store = CaptureStore(db_path)
        self.session = self.store.start_session(port_url, expected_hash.hex() if expected_hash else None,
                                                "model-dir" if expected_hash else None)
        self.tracker = LinkTracker(expected_hash, "model-dir" if expected_hash else None)
        self.counters = dict.fromkeys(("frames", "inference_frames", "lost", "corrupt", "foreign", "text_lines",
                                       "restarts", "reopens", "bytes"), 0)

    def __call__(self, items: list) -> None:
        from .store import frame_row

        now = time.time()
        frames, texts, corrupts, events = [], [], [], []
        for item in items:
            kind = type(item)
            if kind is P.TextLine:
                texts.append((self.session, now, item.text))
            elif kind is P.Corrupt:
                corrupts.append((self.session, now, item.error.name, item.run))
            else:
                foreign = self.tracker.observe(item, now, self.session, events)
                frames.append(frame_row(self.session, now, item, foreign))
                self.counters["inference_frames"] += kind is P.Inference
        self.counters["frames"] += len(frames)
        self.counters["text_lines"] += len(texts)
        self.counters["corrupt"] += len(corrupts)
        self.counters.update(lost=self.tracker.lost, restarts=self.tracker.restarts, foreign=self.tracker.foreign)
        if any(e[2] == "model" for e in events):
            self.store.set_expected(self.session, self.tracker.expected_hash.hex(), self.tracker.expected_from)
        self.store.commit(self.session, frames, texts, corrupts, events, self.counters)

    def close(self, reason: str) -> None:
        self.store.end_session(self.session, reason)
        self.store.close()


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
                                        "entropy", "atc", "moved_channels", "change_index", "scores")
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
