"""Audio and images into the device: `tinydrift replay`.

Replaying: each clip (a WAV file, a row of a clip set) travels as AUDIO frames of up to 256
samples, START on the first and END on the last; the device assembles 1 s windows and
answers every frame with ACK after whatever it caused (an END or a completed window runs
an inference first). Each image (a row of an image set, an image file) travels the same
way as IMAGE frames of up to 508 bytes, to a camera model's build. `Replayer` keeps at
most `window` frames unacknowledged and starts a clip only once the previous clip's END is
acknowledged, so a device busy with an inference is never sent more than it has room for;
a gap reported by the device (ACK result 1, the expected offset in `detail`) or a missing
ACK makes it resend from there.

What the device must answer for that audio is the app's twin's (tinydrift.app).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np

from tinydrift.errors import TinydriftError
from tinydrift.link import protocol as P

(ACK_OK, ACK_AUDIO_GAP, ACK_UNKNOWN_INFERENCE, ACK_BAD_LABEL, ACK_NOT_A_COMMAND, ACK_BAD_CONFIG, ACK_UNSUPPORTED,
 ACK_BAD_IMAGE) = range(8)
ACK_RESULTS = {ACK_OK: "accepted", ACK_AUDIO_GAP: "AUDIO gap", ACK_UNKNOWN_INFERENCE: "unknown inference",
               ACK_BAD_LABEL: "label outside the model's classes", ACK_NOT_A_COMMAND: "not a command",
               ACK_BAD_CONFIG: "heartbeats only, but no heartbeats",
               ACK_UNSUPPORTED: "not for this build (audio to a camera model, an image to an audio model, or "
                                "LABEL/CONFIG to a streaming detector)",
               ACK_BAD_IMAGE: "an image of another shape than the model's"}


# ---------------------------------------------------------------------------- sources

@dataclass
class ReplaySource:
    """Clips to replay: int16 PCM at 16 kHz, any length each, or uint8 images [H, W, C], with
    a name (and a label if known)."""

    clips: list[np.ndarray]
    names: list[str]
    labels: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.clips)

    def shuffled(self, seed: int) -> "ReplaySource":
        """The same clips in an order drawn from `seed`: a folder of class folders mixed, as a
        device in the field meets its classes, not one class after another."""
        order = np.random.default_rng(seed).permutation(len(self.clips))
        return ReplaySource([self.clips[i] for i in order], [self.names[i] for i in order],
                            None if self.labels is None else self.labels[order])

    def one_class_after_another(self) -> bool:
        """Whether the clips come from two or more sub-folders, each sent whole in turn."""
        tops = [name.split("/", 1)[0] for name in self.names if "/" in name]
        return len(set(tops)) > 1 and all(a == b for a, b in zip(sorted(tops, key=tops.index), tops))

    @property
    def samples(self) -> int:
        return int(sum(len(c) for c in self.clips))


def load_source(path: str | Path, limit: int | None = None, fit: tuple[int, int, int] | None = None,
                log: Callable[[str], None] = lambda message: None, audio_model: bool = False) -> ReplaySource:
    """A clip set made by `tinydrift data kws` (.npz: one clip per row), an image set made by
    `tinydrift data plant` (.npz: one image per row), a folder of 16 kHz 16-bit WAV files or
    one of JPEG/PNG images (searched recursively, hidden files and folders left out, in sorted
    order: one clip or image per file), or one such file. Images go as they are (the device checks their size
    against its model's), or with `fit`, a camera model's input (height, width, 3), each read
    and fitted as `tinydrift eval` reads it (centred crop, area-average resize, RGB).
    A folder holding both kinds sends what the model takes (`fit`: images; `audio_model`:
    recordings), saying how many files of the other kind it left out; without a model it
    is refused (which kind the device takes is not known)."""
    from tinydrift.data.clipset import ClipSet
    from tinydrift.data.imagefolder import IMAGE_SUFFIXES, class_files, converted_note, fit_image, read_image
    from tinydrift.data.wavfolder import read_wav, wav_files
    from tinydrift.frontend import SAMPLE_RATE

    path = Path(path)
    said = "images fitted to the model's {} input as `tinydrift eval` reads them (centred crop, resize, RGB)"
    if path.is_file() and path.suffix == ".npz" and _is_image_set(path):
        from tinydrift.data.imageset import ImageSet

        images = ImageSet.load(path)
        n = len(images) if limit is None else min(limit, len(images))
        chosen = [images.images[i] for i in range(n)]
        if fit is not None and any(image.shape != fit for image in chosen):
            log(said.format("x".join(map(str, fit))))
            chosen = [image if image.shape == fit else fit_image(image, fit[:2]) for image in chosen]
        return ReplaySource(chosen, [f"{path.name}[{i}]" for i in range(n)], images.labels[:n].astype(np.int64))
    wavs = wav_files(path, "**/*") if path.is_dir() else []
    listed = class_files(path) if path.is_dir() else []
    image_files = [f for f in listed if f.suffix.lower() in IMAGE_SUFFIXES]
    others = [f for f in listed if f.suffix.lower() not in IMAGE_SUFFIXES and f.suffix.lower() != ".wav"]
    if others:  # eval refuses them; a replay sends what it can, and says what it did not
        log(f"{len(others)} file{'s' if len(others) != 1 else ''} in {path} left out, neither images nor WAV files "
            f"(e.g. {others[0].relative_to(path)})")
    if wavs and image_files:
        if fit is None and not audio_model:
            raise TinydriftError(f"{path} holds both WAV files ({len(wavs)}, e.g. {wavs[0].relative_to(path)}) and "
                                 f"images ({len(image_files)}, e.g. {image_files[0].relative_to(path)}): give --model-dir "
                                 "to send the kind its model takes, or a folder of one kind")
        left, kind = (wavs, "WAV file") if fit is not None else (image_files, "image")
        log(f"{len(left)} {kind}{'s' if len(left) != 1 else ''} in {path} left out: the model takes "
            + ("images" if fit is not None else "recordings"))
    if path.is_dir() and (fit is not None or not wavs):
        files = image_files
        if not files and wavs:
            raise TinydriftError(f"{path}: WAV files and no images, and --model-dir is a camera model: replay images "
                                 "to it (or give the keyword model's folder)")
        if not files:
            raise TinydriftError(f"{path}: no .wav, .jpg or .png files in it (give a folder of 16 kHz WAV files or of "
                                 "images, or a .npz clip or image set)")
        files = files[:limit] if limit is not None else files
        if fit is None:
            return ReplaySource([_read_image_as_is(f) for f in files], [str(f.relative_to(path)) for f in files])
        log(said.format("x".join(map(str, fit))))
        read = [read_image(f, fit[:2]) for f in files]
        note = converted_note(mode for _, _, mode in read)
        if note:
            log(note)
        return ReplaySource([image for image, _, _ in read], [str(f.relative_to(path)) for f in files])
    if path.is_file() and path.suffix.lower() == ".wav":  # one recording, one clip
        if fit is not None:
            raise TinydriftError(f"{path}: a WAV file, and --model-dir is a camera model: replay images to it (or give "
                                 "the keyword model's folder)")
        return ReplaySource([read_wav(path, SAMPLE_RATE)], [path.name])
    if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES:  # one image
        if fit is None:
            return ReplaySource([_read_image_as_is(path)], [path.name])
        log(said.format("x".join(map(str, fit))))
        image, _, mode = read_image(path, fit[:2])
        note = converted_note([mode])
        if note:
            log(note)
        return ReplaySource([image], [path.name])
    if path.is_file() and path.suffix == ".npz":
        clips = ClipSet.load(path)
        n = len(clips) if limit is None else min(limit, len(clips))
        return ReplaySource([clips.audio[i] for i in range(n)], [f"{path.name}[{i}]" for i in range(n)],
                            clips.labels[:n].astype(np.int64))
    if path.is_dir():
        files = wavs
        if not files:
            raise TinydriftError(f"{path}: no .wav files in it (give a folder of 16 kHz WAV files or a .npz clip set)")
        files = files[:limit] if limit is not None else files
        return ReplaySource([read_wav(f, SAMPLE_RATE) for f in files], [str(f.relative_to(path)) for f in files])
    raise TinydriftError(f"{path}: not a WAV file or image, a folder of them, nor a .npz clip set (`tinydrift data kws`) "
                         "or image set (`tinydrift data plant`)")


def _is_image_set(path: Path) -> bool:
    import zipfile

    try:
        with zipfile.ZipFile(path) as z:
            return "images.npy" in z.namelist()
    except (zipfile.BadZipFile, OSError):
        return False  # ClipSet.load names what is wrong with it


def _read_image_as_is(path: Path) -> np.ndarray:
    """uint8 [H, W, C] of an image file, neither resized nor converted (grey stays 1 channel)."""
    from PIL import Image, UnidentifiedImageError

    from tinydrift.data.imagefolder import too_many_pixels

    try:
        with Image.open(path) as image:
            pixels = np.asarray(image)
    except Image.DecompressionBombError:
        raise TinydriftError(too_many_pixels(path)) from None
    except (UnidentifiedImageError, OSError) as exc:
        raise TinydriftError(f"{path}: not a readable JPEG or PNG image ({exc}); remove it or replace it") from None
    if pixels.dtype != np.uint8:
        raise TinydriftError(f"{path}: {pixels.dtype} pixels; the device takes 8-bit images (save it as 8-bit RGB)")
    return pixels[..., None] if pixels.ndim == 2 else pixels


def write_pcm(clips: Iterable[np.ndarray], path: str | Path) -> Path:
    """Concatenate clips into a raw PCM file (16-bit little-endian): the emulated board's
    microphone file. With 16,000-sample clips and the default stride, window k is clip k."""
    from tinydrift.atomic import atomic_path

    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            for clip in clips:
                f.write(np.asarray(clip, dtype="<i2").tobytes())
    return Path(path)


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


def image_chunks(image: np.ndarray, chunk: int = P.IMAGE_MAX_BYTES) -> list[tuple[int, bytes, int]]:
    """(byte_offset, bytes, flags) of the IMAGE frames that carry one image."""
    data = np.ascontiguousarray(image, dtype=np.uint8).tobytes()
    offsets = list(range(0, max(len(data), 1), chunk))
    return [(offset, data[offset:offset + chunk],
             (P.IMAGE_FLAG_START if k == 0 else 0) | (P.IMAGE_FLAG_END if k == len(offsets) - 1 else 0))
            for k, offset in enumerate(offsets)]


@dataclass
class ReplayStats:
    clips: int = 0  # clips and images
    images: int = 0
    samples: int = 0
    frames_sent: int = 0
    resent: int = 0
    gaps: int = 0  # ACKs reporting an AUDIO gap
    timeouts: int = 0  # ACKs that never came (frames resent)
    reconnects: int = 0  # the port was lost and reopened (the clip under way resent)
    inferences: int = 0
    frames_received: int = 0
    corrupt: int = 0
    seconds: float = 0.0
    # (inference index, alarm bits) of the first latched alarm, by the device's own count of
    # its first alarm since a reset, which may precede this replay
    first_alarm: tuple[int, int] | None = None
    wakes: int | None = None  # a streaming detector's DETECTION frames that were wakes (None: no DETECTION came)
    detections: int = 0  # its DETECTION frames (it sends no INFERENCE frames)
    boot_line: str | None = None  # the app's latest boot text line ("tinydrift app board=..."), if one came
    first_inference: int | None = None  # the first inference index this replay heard of
    last_inference: int | None = None  # and the last
    received: list = field(default_factory=list, repr=False)  # every item parsed, when kept

    def line(self) -> str:
        rate = self.samples / 16000 / self.seconds if self.seconds > 0 else 0.0
        alarm = "no alarm"
        if self.first_alarm is not None:
            index, bits = self.first_alarm
            names = "+".join(P.alarm_names(bits & 0xFF))
            alarm = (f"{names} latched since inference {index}, before this replay (--reset starts the monitor afresh)"
                     if self.first_inference is not None and index < self.first_inference
                     else f"first alarm {names} at inference {index}")
        inferences = f"{self.inferences} inference{'' if self.inferences == 1 else 's'}"
        if self.images:
            return (f"replayed {self.images} image{'' if self.images == 1 else 's'} in {self.seconds:.1f} s: "
                    f"{inferences}, {alarm}; {self.frames_sent} IMAGE frames, {self.resent} resent ({self.gaps} gaps, "
                    f"{self.timeouts} timeouts, {self.reconnects} reconnects), {self.corrupt} corrupt frames received")
        wakes = "" if self.wakes is None else f", {self.wakes} wake{'' if self.wakes == 1 else 's'}"
        # a wake-word device answers with DETECTION frames, no INFERENCE frames ("0 inferences")
        heard = f"{self.detections} detections" if self.detections and not self.inferences else inferences
        return (f"replayed {self.clips} clip{'' if self.clips == 1 else 's'} ({self.samples / 16000:.1f} s of audio, "
                f"{rate:.2f}x real time) in {self.seconds:.1f} s: {heard}{wakes}, {alarm}; {self.frames_sent} AUDIO "
                f"frames, {self.resent} resent ({self.gaps} gaps, {self.timeouts} timeouts, {self.reconnects} "
                f"reconnects), {self.corrupt} corrupt frames received")


class NoAnswer(TinydriftError):
    """The device did not acknowledge a command in time."""


class _PortReopened(Exception):
    """The port was lost and opened again: whatever was in flight is gone."""


class _Refused(Exception):
    """The device refused a chunk for another reason than a gap."""

    def __init__(self, ack: P.Ack):
        super().__init__(ack)
        self.ack = ack


class Replayer:
    """Streams clips over an open port (anything with write(), and read() honouring a timeout:
    pyserial ports, capture.open_port) with flow control, parsing what comes back.

    `on_items(items)` receives every parsed item (frames, text lines, corrupt runs) as they
    arrive, e.g. to store them; `keep` also collects them in ReplayStats.received. When the
    port fails, `reopen(port, error)` is asked for a new one (None: give up); the clip under
    way is then sent again from its start (its START flag makes the device begin it anew)."""

    def __init__(self, port, *, window: int = 4, chunk: int = P.AUDIO_MAX_SAMPLES, ack_timeout: float = 10.0,
                 on_items: Callable[[list], None] | None = None, keep: bool = False, first_seq: int = 0,
                 reopen: Callable[[object, Exception], object | None] | None = None):
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
        self.reopen = reopen
        self._acks: dict[int, P.Ack] = {}
        self.device_hash: bytes | None = None  # the model hash of the device's last HELLO or STATUS
        self.statuses: list[P.Status] = []  # the STATUS frames it sent, in order

    # -- link

    def _on_port(self, action):
        """Run `action(port)`; a failed port is reopened (raising _PortReopened) or reported."""
        import serial

        try:
            return action(self.port)
        except (serial.SerialException, OSError) as exc:
            port = self.reopen(self.port, exc) if self.reopen is not None else None
            if port is None:
                raise TinydriftError(f"the device's port failed ({exc}) and did not come back: "
                                     "check the cable or the emulator, then run the command again") from None
            self.port, self.parser = port, P.StreamParser()
            self._acks.clear()
            self.stats.reconnects += 1
            raise _PortReopened() from None

    def send(self, frame: P.Frame, announce: Callable[[int], None] | None = None) -> int:
        """Write one frame with the next seq, and return it; `announce(seq)` runs first (a
        label is marked sent before it can be answered). An ACK it gets is kept until a
        command() of that seq, or among the items."""
        frame.seq = self.seq
        if announce is not None:
            announce(frame.seq)
        self.seq = (self.seq + 1) & 0xFFFFFFFF
        self._on_port(lambda port: port.write(P.encode(frame)))
        return frame.seq

    def _poll(self) -> None:
        """Read what has arrived (waiting up to the port's timeout) and act on it."""
        from tinydrift.link.port import read_available

        data = self._on_port(read_available)
        if not data:
            return
        items = self.parser.feed(data)
        for item in items:
            kind = type(item)
            if kind is P.Ack:
                self._acks[item.command_seq] = item
            elif kind is P.Inference:
                self.stats.inferences += 1
                if self.stats.first_inference is None:
                    self.stats.first_inference = item.inference_index
                self.stats.last_inference = item.inference_index
                latched = item.alarm_bits & 0xFF
                if latched and self.stats.first_alarm is None:
                    self.stats.first_alarm = (item.alarm_index or item.inference_index, item.alarm_bits)
            elif kind is P.Detection:
                self.stats.detections += 1
                self.stats.wakes = (self.stats.wakes or 0) + int(item.wake)
            elif kind is P.Corrupt:
                self.stats.corrupt += 1
            elif kind in (P.Hello, P.Status):
                self.device_hash = item.model_hash
                if kind is P.Status:
                    self.statuses.append(item)
            elif kind is P.TextLine and item.text.startswith("tinydrift app board="):
                self.stats.boot_line = item.text
            if kind not in (P.TextLine, P.Corrupt):
                self.stats.frames_received += 1
        if self.keep:
            self.stats.received.extend(items)
        if self.on_items is not None:
            self.on_items(items)

    def command(self, frame: P.Frame, timeout: float | None = None) -> P.Ack:
        """Send one command (RESET, LABEL, STATUS_REQUEST) and wait for its ACK (sent again
        after a reconnect)."""
        while True:
            try:
                seq = self.send(frame)
                deadline = time.monotonic() + (self.ack_timeout if timeout is None else timeout)
                while seq not in self._acks:
                    if time.monotonic() > deadline:
                        raise NoAnswer(f"no ACK for {frame.TYPE.name} within "
                                       f"{self.ack_timeout if timeout is None else timeout:g} s: is another program "
                                       "(a capture, the emulator's one client) holding its port, or is the "
                                       "tinydrift app not running on the device?")
                    self._poll()
                return self._acks.pop(seq)
            except _PortReopened:
                continue

    def check_device(self, patience: float = 5.0, model_hash: bytes | None = None, named_as: str = "") -> P.Ack:
        """Ask for STATUS until the device acknowledges (a board that resets when its port
        opens boots meanwhile), so that a port nobody answers on fails in seconds, not after
        every clip's ACK timeouts; with `model_hash`, refuse a device that runs another model
        (its STATUS says which)."""
        deadline = time.monotonic() + patience
        while True:
            try:
                ack = self.command(P.StatusRequest(0), timeout=1.0)
                break
            except NoAnswer:
                if time.monotonic() >= deadline:
                    raise NoAnswer(f"the device did not answer within {patience:g} s: is another program holding "
                                   "its port (the emulator serves one client at a time), or is the device not "
                                   "running the tinydrift app?") from None
        if model_hash is not None:
            heard = time.monotonic() + 1.0
            while self.device_hash is None and time.monotonic() < heard:
                self.drain(0.05)
            if self.device_hash is not None and self.device_hash != model_hash:
                raise TinydriftError(f"the device runs model {self.device_hash[:8].hex()}, not {named_as}'s "
                                     f"({model_hash[:8].hex()}): flash it with that model "
                                     "(`tinydrift flash --model ...`), or give the folder of the model it runs")
        return ack

    # -- clips

    def replay_clip(self, clip: np.ndarray) -> None:
        frames = [P.Audio(0, offset, flags, tuple(int(v) for v in samples))
                  for offset, samples, flags in audio_chunks(clip, self.chunk)]
        self._replay_chunks(frames, [f.sample_offset for f in frames], "AUDIO")
        self.stats.clips += 1
        self.stats.samples += len(clip)

    def replay_image(self, image: np.ndarray, name: str = "an image") -> None:
        image = np.asarray(image)
        if image.dtype != np.uint8 or image.ndim != 3 or not all(1 <= d <= 255 for d in image.shape):
            raise TinydriftError(f"{name}: {image.dtype} {'x'.join(map(str, image.shape))}; IMAGE frames carry 8-bit "
                                 "images of height x width x channels, at most 255 pixels a side (resize it to the model's "
                                 "input, or replay with --model-dir MODEL to fit every image as eval does)")
        height, width, channels = image.shape
        frames = [P.Image(0, offset, flags, height, width, channels, data)
                  for offset, data, flags in image_chunks(image)]
        try:
            self._replay_chunks(frames, [f.byte_offset for f in frames], "IMAGE")
        except _Refused as refused:
            if refused.ack.result == ACK_BAD_IMAGE:
                d = refused.ack.detail
                wanted = (d >> 16, (d >> 8) & 0xFF, d & 0xFF)
                fix = ("resize it" if wanted[2] == channels else
                       f"convert it to {wanted[2]} channels (RGB)" if (height, width) == wanted[:2] else
                       f"resize it and convert it to {wanted[2]} channels (RGB)")
                raise TinydriftError(f"the device refused {name}: its model takes {'x'.join(map(str, wanted))} "
                                     f"images, this one is {height}x{width}x{channels}: {fix}, replay with "
                                     "--model-dir MODEL to fit every image as eval does, or replay to the device "
                                     "of its model") from None
            raise TinydriftError(f"the device refused {name}: {ACK_RESULTS.get(refused.ack.result, refused.ack.result)}") \
                from None
        self.stats.clips += 1
        self.stats.images += 1

    def _replay_chunks(self, frames: list, offsets: list[int], kind: str) -> None:
        """Send one clip's or image's frames with flow control (their offsets in `offsets`)."""
        by_offset = {offset: k for k, offset in enumerate(offsets)}
        in_flight: dict[int, int] = {}  # seq -> chunk index
        next_chunk = 0
        done = False
        last_progress = time.monotonic()
        while not done:
            try:
                while next_chunk < len(frames) and len(in_flight) < self.window:
                    seq = self.send(frames[next_chunk])
                    in_flight[seq] = next_chunk
                    self.stats.frames_sent += 1
                    next_chunk += 1
                self._poll()
                for seq in [s for s in in_flight if s in self._acks]:
                    ack = self._acks.pop(seq)
                    index = in_flight.pop(seq, None)
                    last_progress = time.monotonic()
                    if ack.result == ACK_OK:
                        if index == len(frames) - 1:
                            done = True
                        continue
                    if ack.result != ACK_AUDIO_GAP:
                        if kind == "AUDIO":
                            raise TinydriftError(f"the device refused an AUDIO frame: "
                                                 f"{ACK_RESULTS.get(ack.result, ack.result)}")
                        raise _Refused(ack)
                    # Go back to where the device is; later frames in flight will be refused too.
                    self.stats.gaps += 1
                    resume = by_offset.get(ack.detail)
                    if resume is None:
                        raise TinydriftError(f"the device asked for offset {ack.detail}, not a chunk boundary of this "
                                             f"{'clip' if kind == 'AUDIO' else 'image'}")
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
                        raise TinydriftError(f"the device stopped acknowledging {kind} frames: is the tinydrift app "
                                             "running, and the port the device's?")
            except _PortReopened:  # the device may hold part of this clip: start it again
                self.stats.resent += next_chunk
                in_flight.clear()
                next_chunk, last_progress = 0, time.monotonic()

    def replay(self, clips: Sequence[np.ndarray], progress: Callable[[int], None] | None = None,
               names: Sequence[str] | None = None) -> ReplayStats:
        """Clips (1-D int16) and images (3-D uint8, named by `names` in errors), in order."""
        started = time.monotonic()
        for k, clip in enumerate(clips):
            if np.ndim(clip) == 3:
                self.replay_image(clip, names[k] if names is not None else f"image {k}")
            else:
                self.replay_clip(clip)
            if progress is not None:
                progress(1)
        self.stats.seconds = time.monotonic() - started
        return self.stats

    def status(self, patience: float = 2.0) -> P.Status | None:
        """A STATUS the device sends now (STATUS_REQUEST), or None if none came in `patience` s."""
        seen = len(self.statuses)
        self.command(P.StatusRequest(0))
        deadline = time.monotonic() + patience
        while len(self.statuses) == seen and time.monotonic() < deadline:
            self.drain(0.05)
        return self.statuses[-1] if len(self.statuses) > seen else None

    def drain(self, seconds: float = 0.2) -> None:
        """Keep reading for `seconds` (frames the device sends after the last ACK)."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                self._poll()
            except _PortReopened:
                continue
