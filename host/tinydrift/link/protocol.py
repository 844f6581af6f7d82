"""The serial protocol on the host: the twin of firmware/lib/tinydrift/src/protocol/.

docs/protocol.md is the specification. In short: each frame travels as
``0x00, COBS(packet), 0x00`` with ``packet = sync(0) version type seq payload crc32``; the
sync byte makes every frame's COBS run start with 0x01, so a run (bytes between two 0x00)
starting with any other byte is text. Layouts are fixed, little-endian.

The parser works on whole runs with bytes operations (split on 0x00, COBS by block, CRC by
zlib) rather than a Python loop per byte: see `bench_parse`.
"""

from __future__ import annotations

import random
import re
import struct
import time
import zlib
from dataclasses import dataclass, field
from enum import IntEnum
from typing import ClassVar, Union

from tinydrift.monitor.config import ALARM_NAMES as MONITOR_ALARM_NAMES
from tinydrift.monitor.config import SCORE_NAMES as MONITOR_SCORE_NAMES
from tinydrift.monitor.config import WARNING_SHIFT, alarm_names  # noqa: F401 (the frames' alarm word)

VERSION = 5
# Read as well: version 4 differs in STATUS, which did not end with the device's HELLO (60
# bytes); version 3 also in HELLO, which had no device_id and boot_count (108 bytes), and had
# no HEARTBEAT or CONFIG; version 2 also in STATUS, which had no labels and label_errors (52
# bytes); version 1 also in INFERENCE, which had no alarm_index (68 bytes).
VERSION_4 = 4
VERSION_3 = 3
# Commands (host -> device, types from 0x80) go as the newest version whose layouts they all
# still have, so a device on protocol 4 takes them from a newer host (an upgraded tinydrift
# talking to a board not yet reflashed); a device's frames go as VERSION.
COMMAND_VERSION = VERSION_4
VERSION_2 = 2
VERSION_1 = 1
N_SCORES = 8
MODEL_HASH_BYTES = 32
MODEL_ID_BYTES = 8
AUDIO_MAX_SAMPLES = 256
IMAGE_MAX_BYTES = 508  # IMAGE: pixel bytes per frame (its 12-byte header + these = AUDIO's largest payload)
TRACE_SUMMARY = 64  # TRACE: summary slots (the monitor's maximum channels)
TRACE_OUTPUTS = 16  # TRACE: model output slots
HEARTBEAT_CLASSES = 12  # HEARTBEAT: class shares (classes beyond are not reported)
ALARM_TYPES = 5  # HEARTBEAT: latch delays and CUSUM maxima, one per alarm type / score slot
NOT_LATCHED = 0xFFFF  # HEARTBEAT.latch_delay of a type that has not latched
HEADER_BYTES = 7
CRC_BYTES = 4
MIN_PACKET = HEADER_BYTES + CRC_BYTES
MAX_PAYLOAD = 8 + 2 * AUDIO_MAX_SAMPLES
MAX_PACKET = HEADER_BYTES + MAX_PAYLOAD + CRC_BYTES
MAX_WIRE = MAX_PACKET + MAX_PACKET // 254 + 3
CRC32_RESIDUE = 0x2144DF1C  # zlib.crc32(message + crc32(message) as 4 LE bytes)

# Score slots: the drift monitor's CUSUMs in td_monitor.h order (Q12), then spare slots.
SCORE_NAMES = MONITOR_SCORE_NAMES + tuple(f"slot{i}" for i in range(len(MONITOR_SCORE_NAMES), N_SCORES))
# alarm_bits: latched alarms by type in bits 0-4, live warnings of the same type in bits 8-12
# (the monitor's alarm word, unchanged; alarm_names() reads it).
ALARM_NAMES = tuple(MONITOR_ALARM_NAMES.values())
AUDIO_FLAG_START = 0x0001
AUDIO_FLAG_END = 0x0002
IMAGE_FLAG_START = 0x0001  # first chunk of an image: byte_offset is 0
IMAGE_FLAG_END = 0x0002  # last chunk: the image is whole, the device runs inference
CONFIG_FLAG_HEARTBEAT_ONLY = 0x0001  # no INFERENCE or TRACE frames, heartbeats only
DETECTION_FLAG_WAKE = 0x01  # DETECTION: the window's mean passed the cutoff, a detection
DETECTION_FLAG_COOLING = 0x02  # DETECTION: after a detection or a stream's start, detections held off

TEXT_BYTES = bytes([0x09, 0x0A, 0x0D, *range(0x20, 0x7F)])
_NON_TEXT = re.compile(rb"[^\t\n\r\x20-\x7e]")
MAX_LINE = 4096  # a text line longer than this is cut, so a stream without "\n" stays bounded


class FrameType(IntEnum):
    HELLO = 0x01
    INFERENCE = 0x02
    STATUS = 0x03
    ACK = 0x04
    BYE = 0x05
    TRACE = 0x06
    HEARTBEAT = 0x07
    DETECTION = 0x08
    RESET = 0x81
    LABEL = 0x82
    AUDIO = 0x83
    STATUS_REQUEST = 0x84
    CONFIG = 0x85
    IMAGE = 0x86


class ProtocolError(IntEnum):
    """Why a run was rejected; values equal the C `td_proto_result_t` errors."""

    OVERFLOW = -1
    COBS = -2
    SHORT = -3
    CRC = -4
    VERSION = -5
    TYPE = -6
    LENGTH = -7
    GARBAGE = -8


# ---------------------------------------------------------------------------- frame types

@dataclass(slots=True)
class Hello:
    seq: int
    model_hash: bytes
    fw_major: int
    fw_minor: int
    fw_patch: int
    state_bytes: int
    n_classes: int
    n_channels: int
    score_frac_bits: int
    n_scores: int
    warning_thresholds: tuple[int, ...]
    drift_thresholds: tuple[int, ...]
    # names the board among others, and counts its boots; 0: unknown to the device, None: a
    # version 1-3 frame, which did not carry them
    device_id: int | None = 0
    boot_count: int | None = 0
    raw: bytes = field(default=b"", repr=False, compare=False)
    TYPE: ClassVar[FrameType] = FrameType.HELLO

    @property
    def fw_version(self) -> str:
        return f"{self.fw_major}.{self.fw_minor}.{self.fw_patch}"

    @property
    def device_text(self) -> str:
        """Which board and which boot, as the views show it; said plainly where unknown."""
        if self.device_id is None:
            return "unknown (its firmware speaks protocol 1-3, whose HELLO has no device id)"
        boot = f"boot {self.boot_count}" if self.boot_count else "boot count unknown"
        if not self.device_id:
            return f"no id (its port defines no td_port_device_id), {boot}"
        return f"{self.device_id:016x}, {boot}"


@dataclass(slots=True)
class Inference:
    seq: int
    inference_index: int
    model_id: bytes
    predicted_class: int
    confidence: int  # top probability in 1/256
    alarm_bits: int
    entropy: int  # Q16 nats
    atc: int  # label-free accuracy estimate, Q16
    moved_channels: int
    change_index: int  # 0: no estimate
    scores: tuple[int, ...]
    alarm_index: int | None = 0  # inference of the first latched alarm, 0: none; None: a version 1 frame
    raw: bytes = field(default=b"", repr=False, compare=False)
    TYPE: ClassVar[FrameType] = FrameType.INFERENCE


@dataclass(slots=True)
class Status:
    seq: int
    uptime_ms: int
    state_bytes: int
    inferences: int
    rx_frames: int
    rx_errors: int
    model_hash: bytes
    # label feedback the monitor took since reset, and how many disagreed with the prediction;
    # None: a version 1 or 2 frame, which did not carry them
    labels: int | None = 0
    label_errors: int | None = 0
    # the HELLO the device would send now, so a host that connects after its boot knows the
    # firmware, thresholds and device id; None: a version 1-4 frame, which did not carry it
    hello: Hello | None = None
    raw: bytes = field(default=b"", repr=False, compare=False)
    TYPE: ClassVar[FrameType] = FrameType.STATUS


@dataclass(slots=True)
class Ack:
    seq: int
    command_seq: int
    detail: int
    command_type: int
    result: int
    raw: bytes = field(default=b"", repr=False, compare=False)
    TYPE: ClassVar[FrameType] = FrameType.ACK


@dataclass(slots=True)
class Bye:
    seq: int
    exit_code: int
    inferences: int
    raw: bytes = field(default=b"", repr=False, compare=False)
    TYPE: ClassVar[FrameType] = FrameType.BYE


@dataclass(slots=True)
class Trace:
    """What one inference computed (debug/verification frame, docs/protocol.md §3)."""

    seq: int
    inference_index: int
    n_summary: int
    n_outputs: int
    window_end: int  # samples of the current stream up to this window's end
    cycles_frontend: int
    cycles_model: int
    cycles_sensor: int
    cycles_monitor: int
    summary: tuple[int, ...]  # TRACE_SUMMARY int16 slots, the first n_summary in use
    outputs: tuple[int, ...]  # TRACE_OUTPUTS int8 slots, the first n_outputs in use
    raw: bytes = field(default=b"", repr=False, compare=False)
    TYPE: ClassVar[FrameType] = FrameType.TRACE

    @property
    def summary_used(self) -> tuple[int, ...]:
        return self.summary[: self.n_summary]

    @property
    def outputs_used(self) -> tuple[int, ...]:
        return self.outputs[: self.n_outputs]


@dataclass(slots=True)
class Heartbeat:
    """A compact drift summary of the inferences since the previous heartbeat (its window);
    docs/protocol.md §3 gives every field's units."""

    seq: int
    inference_index: int  # the monitor's t at the window's last inference
    uptime_ms: int
    alarm_index: int  # inference of the first latched alarm, 0: none
    change_index: int  # its estimated change point, 0: none
    moved_channels: int  # at the window's last inference
    alarm_bits: int  # at the window's last inference
    window: int  # inferences summarized
    latch_delay: tuple[int, ...]  # per alarm type: latched at alarm_index + this; NOT_LATCHED
    cusum_max: tuple[int, ...]  # per score slot 0-4: the window's maximum, 256 = its drift level
    mean_entropy: int  # Q12 nats
    atc: int  # the last label-free accuracy estimate, 1/256
    mean_confidence: int  # 1/256
    class_share: tuple[int, ...]  # predictions per class over the window, 255 = all
    raw: bytes = field(default=b"", repr=False, compare=False)
    TYPE: ClassVar[FrameType] = FrameType.HEARTBEAT


@dataclass(slots=True)
class Detection:
    """One inference of a streaming binary detector (a wake-word model): its probability,
    the sliding window's mean and whether it woke (docs/protocol.md §3)."""

    seq: int
    inference_index: int  # 1 for the first after boot or RESET
    model_id: bytes
    probability: int  # the model's uint8 output, 1/256
    window_mean: int  # the sliding window's mean probability, rounded down
    flags: int  # DETECTION_FLAG_*
    stream_position: int  # samples of the current stream up to this inference's last frame
    raw: bytes = field(default=b"", repr=False, compare=False)

    TYPE: ClassVar[FrameType] = FrameType.DETECTION

    @property
    def wake(self) -> bool:
        return bool(self.flags & DETECTION_FLAG_WAKE)


@dataclass(slots=True)
class Config:
    """Host -> device: how often to send HEARTBEAT, and whether to send only heartbeats."""

    seq: int
    heartbeat_interval: int  # inferences per heartbeat, 0: no heartbeats
    flags: int  # CONFIG_FLAG_*
    raw: bytes = field(default=b"", repr=False, compare=False)
    TYPE: ClassVar[FrameType] = FrameType.CONFIG


@dataclass(slots=True)
class Reset:
    seq: int
    raw: bytes = field(default=b"", repr=False, compare=False)
    TYPE: ClassVar[FrameType] = FrameType.RESET


@dataclass(slots=True)
class Label:
    seq: int
    inference_index: int
    label: int
    raw: bytes = field(default=b"", repr=False, compare=False)
    TYPE: ClassVar[FrameType] = FrameType.LABEL


@dataclass(slots=True)
class Audio:
    seq: int
    sample_offset: int
    flags: int
    samples: tuple[int, ...]
    raw: bytes = field(default=b"", repr=False, compare=False)
    TYPE: ClassVar[FrameType] = FrameType.AUDIO


@dataclass(slots=True)
class Image:
    """A chunk of one camera image (uint8, rows of pixels of `channels` values) to replay."""

    seq: int
    byte_offset: int
    flags: int
    height: int
    width: int
    channels: int
    pixels: bytes
    raw: bytes = field(default=b"", repr=False, compare=False)
    TYPE: ClassVar[FrameType] = FrameType.IMAGE


@dataclass(slots=True)
class StatusRequest:
    seq: int
    raw: bytes = field(default=b"", repr=False, compare=False)
    TYPE: ClassVar[FrameType] = FrameType.STATUS_REQUEST


Frame = Union[Hello, Inference, Status, Ack, Bye, Trace, Heartbeat, Detection, Reset, Label, Audio, StatusRequest,
              Config, Image]


@dataclass(slots=True)
class TextLine:
    """One line of text from the port, without its "\\n" (and "\\r")."""

    text: str


@dataclass(slots=True)
class Corrupt:
    """A run that was neither a valid frame nor clean text; `run` is its wire bytes (capped)."""

    error: ProtocolError
    run: bytes


# ---------------------------------------------------------------------------- layouts

# Payload layouts after the 7-byte header; "<I" in front of each is the header's seq.
_HELLO = struct.Struct("<I32sBBHIBBBB8i8iQI")
_HELLO_BODY = struct.Struct("<32sBBHIBBBB8i8iQI")  # HELLO's payload: also the tail of a STATUS
_HELLO_V3 = struct.Struct("<I32sBBHIBBBB8i8i")
_INFERENCE = struct.Struct("<II8sBBHIIQI8iI")
_INFERENCE_V1 = struct.Struct("<II8sBBHIIQI8i")
_STATUS_V4 = struct.Struct("<I5I32sII")
_STATUS = struct.Struct(_STATUS_V4.format + _HELLO_BODY.format[1:])
_STATUS_V2 = struct.Struct("<I5I32s")
_ACK = struct.Struct("<IIIBB")
_BYE = struct.Struct("<III")
_TRACE = struct.Struct(f"<IIBBHIIIII{TRACE_SUMMARY}h{TRACE_OUTPUTS}b")
_HEARTBEAT = struct.Struct(f"<IIIIIQHH{ALARM_TYPES}H{ALARM_TYPES}HHBB{HEARTBEAT_CLASSES}B")
_DETECTION = struct.Struct("<II8sBBBxI")  # x: a reserved byte, sent as 0
_CONFIG = struct.Struct("<IHH")
_EMPTY = struct.Struct("<I")
_LABEL = struct.Struct("<IIB")
_AUDIO_HEAD = struct.Struct("<IIHH")
_IMAGE_HEAD = struct.Struct("<IIHHBBBx")  # x: a reserved byte, sent as 0
_HEADER = struct.Struct("<BBBI")

PAYLOAD_BYTES = {
    FrameType.HELLO: _HELLO.size - 4,
    FrameType.INFERENCE: _INFERENCE.size - 4,
    FrameType.STATUS: _STATUS.size - 4,
    FrameType.ACK: _ACK.size - 4,
    FrameType.BYE: _BYE.size - 4,
    FrameType.TRACE: _TRACE.size - 4,
    FrameType.HEARTBEAT: _HEARTBEAT.size - 4,
    FrameType.DETECTION: _DETECTION.size - 4,
    FrameType.RESET: 0,
    FrameType.LABEL: _LABEL.size - 4,
    FrameType.AUDIO: _AUDIO_HEAD.size - 4,  # header only; + 2 bytes a sample
    FrameType.STATUS_REQUEST: 0,
    FrameType.CONFIG: _CONFIG.size - 4,
    FrameType.IMAGE: _IMAGE_HEAD.size - 4,  # header only; + 1 byte a pixel value
}
assert PAYLOAD_BYTES[FrameType.HELLO] == 120 and PAYLOAD_BYTES[FrameType.INFERENCE] == 72
assert PAYLOAD_BYTES[FrameType.HEARTBEAT] == 64 and PAYLOAD_BYTES[FrameType.CONFIG] == 4
assert PAYLOAD_BYTES[FrameType.TRACE] == 172 and PAYLOAD_BYTES[FrameType.STATUS] == 60 + 120
assert PAYLOAD_BYTES[FrameType.DETECTION] == 20


def _hello_of(seq: int, v: tuple, raw: bytes = b"") -> Hello:
    """A HELLO from its payload's values (_HELLO_BODY's)."""
    return Hello(seq, *v[:9], v[9:17], v[17:25], v[25], v[26], raw)


def _build_hello(pkt: bytes) -> Hello:
    v = _HELLO.unpack_from(pkt, 3)
    return _hello_of(v[0], v[1:], bytes(pkt))


def _build_hello_v3(pkt: bytes) -> Hello:
    v = _HELLO_V3.unpack_from(pkt, 3)
    return Hello(*v[:10], v[10:18], v[18:26], None, None, bytes(pkt))


def _build_inference(pkt: bytes) -> Inference:
    v = _INFERENCE.unpack_from(pkt, 3)
    return Inference(*v[:10], v[10:18], v[18], bytes(pkt))


def _build_inference_v1(pkt: bytes) -> Inference:
    v = _INFERENCE_V1.unpack_from(pkt, 3)
    return Inference(*v[:10], v[10:18], None, bytes(pkt))


def _build_status(pkt: bytes) -> Status:
    v = _STATUS.unpack_from(pkt, 3)
    return Status(*v[:9], _hello_of(v[0], v[9:]), bytes(pkt))


def _build_status_v4(pkt: bytes) -> Status:
    return Status(*_STATUS_V4.unpack_from(pkt, 3), None, bytes(pkt))


def _build_status_v2(pkt: bytes) -> Status:
    return Status(*_STATUS_V2.unpack_from(pkt, 3), None, None, None, bytes(pkt))


def _build_ack(pkt: bytes) -> Ack:
    return Ack(*_ACK.unpack_from(pkt, 3), bytes(pkt))


def _build_bye(pkt: bytes) -> Bye:
    return Bye(*_BYE.unpack_from(pkt, 3), bytes(pkt))


def _build_trace(pkt: bytes) -> Trace:
    v = _TRACE.unpack_from(pkt, 3)
    # v[4] is the reserved u16, sent as 0 and ignored
    first = 10 + TRACE_SUMMARY
    return Trace(*v[:4], *v[5:10], v[10:first], v[first:first + TRACE_OUTPUTS], bytes(pkt))


def _build_heartbeat(pkt: bytes) -> Heartbeat:
    v = _HEARTBEAT.unpack_from(pkt, 3)
    delays = 8 + ALARM_TYPES
    maxima = delays + ALARM_TYPES
    return Heartbeat(*v[:8], v[8:delays], v[delays:maxima], *v[maxima:maxima + 3], v[maxima + 3:], bytes(pkt))


def _build_detection(pkt: bytes) -> Detection:
    return Detection(*_DETECTION.unpack_from(pkt, 3), bytes(pkt))


def _build_config(pkt: bytes) -> Config:
    return Config(*_CONFIG.unpack_from(pkt, 3), bytes(pkt))


def _build_reset(pkt: bytes) -> Reset:
    return Reset(*_EMPTY.unpack_from(pkt, 3), bytes(pkt))


def _build_status_request(pkt: bytes) -> StatusRequest:
    return StatusRequest(*_EMPTY.unpack_from(pkt, 3), bytes(pkt))


def _build_label(pkt: bytes) -> Label:
    return Label(*_LABEL.unpack_from(pkt, 3), bytes(pkt))


def _build_audio(pkt: bytes) -> Audio:
    seq, offset, n, flags = _AUDIO_HEAD.unpack_from(pkt, 3)
    samples = struct.unpack_from(f"<{n}h", pkt, HEADER_BYTES + 8)
    return Audio(seq, offset, flags, samples, bytes(pkt))


def _build_image(pkt: bytes) -> Image:
    seq, offset, n, flags, height, width, channels = _IMAGE_HEAD.unpack_from(pkt, 3)
    start = HEADER_BYTES + _IMAGE_HEAD.size - 4
    return Image(seq, offset, flags, height, width, channels, bytes(pkt[start:start + n]), bytes(pkt))


_BUILDERS = {
    FrameType.HELLO: _build_hello,
    FrameType.INFERENCE: _build_inference,
    FrameType.STATUS: _build_status,
    FrameType.ACK: _build_ack,
    FrameType.BYE: _build_bye,
    FrameType.TRACE: _build_trace,
    FrameType.HEARTBEAT: _build_heartbeat,
    FrameType.DETECTION: _build_detection,
    FrameType.RESET: _build_reset,
    FrameType.LABEL: _build_label,
    FrameType.AUDIO: _build_audio,
    FrameType.STATUS_REQUEST: _build_status_request,
    FrameType.CONFIG: _build_config,
    FrameType.IMAGE: _build_image,
}
# Plain-int keys: a dict lookup by the type byte must not go through IntEnum hashing paths.
_BUILDERS_BY_BYTE = {int(k): v for k, v in _BUILDERS.items()}
_PAYLOAD_BY_BYTE = {int(k): v for k, v in PAYLOAD_BYTES.items()}


def _hello_payload(frame: Hello | None) -> bytes:
    """HELLO's payload (a STATUS without a HELLO, from an older version, ends with zeros)."""
    if frame is None:
        return bytes(_HELLO_BODY.size)
    return _HELLO_BODY.pack(frame.model_hash, frame.fw_major, frame.fw_minor, frame.fw_patch,
                            frame.state_bytes, frame.n_classes, frame.n_channels,
                            frame.score_frac_bits, frame.n_scores, *frame.warning_thresholds,
                            *frame.drift_thresholds, frame.device_id or 0, frame.boot_count or 0)


def _payload(frame: Frame) -> bytes:
    t = frame.TYPE
    if t is FrameType.HELLO:
        return _hello_payload(frame)
    if t is FrameType.INFERENCE:
        return _INFERENCE.pack(0, frame.inference_index, frame.model_id, frame.predicted_class,
                               frame.confidence, frame.alarm_bits, frame.entropy, frame.atc,
                               frame.moved_channels, frame.change_index, *frame.scores, frame.alarm_index or 0)[4:]
    if t is FrameType.STATUS:
        return _STATUS_V4.pack(0, frame.uptime_ms, frame.state_bytes, frame.inferences,
                               frame.rx_frames, frame.rx_errors, frame.model_hash, frame.labels or 0,
                               frame.label_errors or 0)[4:] + _hello_payload(frame.hello)
    if t is FrameType.ACK:
        return _ACK.pack(0, frame.command_seq, frame.detail, frame.command_type, frame.result)[4:]
    if t is FrameType.BYE:
        return _BYE.pack(0, frame.exit_code, frame.inferences)[4:]
    if t is FrameType.TRACE:
        return _TRACE.pack(0, frame.inference_index, frame.n_summary, frame.n_outputs, 0, frame.window_end,
                           frame.cycles_frontend, frame.cycles_model, frame.cycles_sensor, frame.cycles_monitor,
                           *frame.summary,
                           *frame.outputs)[4:]
    if t is FrameType.HEARTBEAT:
        return _HEARTBEAT.pack(0, frame.inference_index, frame.uptime_ms, frame.alarm_index, frame.change_index,
                               frame.moved_channels, frame.alarm_bits, frame.window, *frame.latch_delay,
                               *frame.cusum_max, frame.mean_entropy, frame.atc, frame.mean_confidence,
                               *frame.class_share)[4:]
    if t is FrameType.DETECTION:
        return _DETECTION.pack(0, frame.inference_index, frame.model_id, frame.probability, frame.window_mean,
                               frame.flags, frame.stream_position)[4:]
    if t is FrameType.CONFIG:
        return _CONFIG.pack(0, frame.heartbeat_interval, frame.flags)[4:]
    if t is FrameType.LABEL:
        return _LABEL.pack(0, frame.inference_index, frame.label)[4:]
    if t is FrameType.AUDIO:
        n = len(frame.samples)
        if n > AUDIO_MAX_SAMPLES:
            raise ValueError(f"AUDIO frame holds at most {AUDIO_MAX_SAMPLES} samples, got {n}")
        return _AUDIO_HEAD.pack(0, frame.sample_offset, n, frame.flags)[4:] + struct.pack(
            f"<{n}h", *frame.samples)
    if t is FrameType.IMAGE:
        n = len(frame.pixels)
        if n > IMAGE_MAX_BYTES:
            raise ValueError(f"IMAGE frame holds at most {IMAGE_MAX_BYTES} bytes, got {n}")
        return _IMAGE_HEAD.pack(0, frame.byte_offset, n, frame.flags, frame.height, frame.width,
                                frame.channels)[4:] + bytes(frame.pixels)
    return b""  # RESET, STATUS_REQUEST


def encode_packet(frame: Frame) -> bytes:
    """The packet (before COBS): sync, version, type, seq, payload, CRC-32 little-endian."""
    version = COMMAND_VERSION if frame.TYPE >= 0x80 else VERSION
    body = _HEADER.pack(0, version, frame.TYPE, frame.seq) + _payload(frame)
    return body + zlib.crc32(body).to_bytes(4, "little")


def encode(frame: Frame) -> bytes:
    """Wire bytes of one frame: 0x00, COBS(packet), 0x00."""
    return b"\x00" + cobs_encode(encode_packet(frame)) + b"\x00"


# ---------------------------------------------------------------------------- COBS

_CODE = [bytes([i]) for i in range(256)]


def cobs_encode(data: bytes) -> bytes:
    """COBS as in the C encoder: a block of 254 data bytes gets code 0xFF and, at the very end
    of the data, no empty block after it."""
    segments = data.split(b"\x00")
    out = []
    last = len(segments) - 1
    for i, seg in enumerate(segments):
        n = len(seg)
        if n < 254:
            out.append(_CODE[n + 1])
            out.append(seg)
            continue
        start = 0
        while n - start >= 254:
            out.append(b"\xff")
            out.append(seg[start:start + 254])
            start += 254
        rest = seg[start:]
        if rest or i != last:
            out.append(_CODE[len(rest) + 1])
            out.append(rest)
    return b"".join(out)


def _cobs_decode_fast(run: bytes) -> bytearray | None:
    """Decode a run whose blocks all end in a zero (no 0xFF code): code bytes become the zeros.
    Returns None for anything else, which the exact decoder then classifies."""
    n = len(run)
    if n - 1 > MAX_PACKET:
        return None
    buf = bytearray(run)
    i = buf[0]
    if i == 0xFF:
        return None
    while i < n:
        code = buf[i]
        if code == 0xFF:
            return None
        buf[i] = 0
        i += code
    if i != n:
        return None
    del buf[0]  # O(1) for a bytearray
    return buf


def cobs_decode(run: bytes) -> bytes | ProtocolError:
    """Decode one COBS run exactly as the C decoder does, including its error precedence:
    more than MAX_PACKET decoded bytes is OVERFLOW, a run ending inside a block is COBS."""
    out = bytearray()
    n = len(run)
    i = 0
    zero_pending = False
    while i < n:
        code = run[i]
        if zero_pending:
            out.append(0)
        out += run[i + 1:i + code]
        zero_pending = code != 0xFF
        if i + code > n:
            return ProtocolError.OVERFLOW if len(out) > MAX_PACKET else ProtocolError.COBS
        i += code
    if len(out) > MAX_PACKET:
        return ProtocolError.OVERFLOW
    return bytes(out)


# ---------------------------------------------------------------------------- decoding

def parse_packet(pkt: bytes) -> Frame | ProtocolError:
    """Validate a decoded packet (length, CRC, version, type, payload length, in that order,
    as the C parser) and build its dataclass."""
    n = len(pkt)
    if n < MIN_PACKET:
        return ProtocolError.SHORT
    if n > MAX_PACKET:
        return ProtocolError.OVERFLOW
    if zlib.crc32(pkt) != CRC32_RESIDUE:
        return ProtocolError.CRC
    version = pkt[1]
    if not VERSION_1 <= version <= VERSION:
        return ProtocolError.VERSION
    t = pkt[2]
    expected = _PAYLOAD_BY_BYTE.get(t)
    if expected is None:
        return ProtocolError.TYPE
    if version == VERSION_1 and t == FrameType.INFERENCE:
        if n - MIN_PACKET != _INFERENCE_V1.size - 4:
            return ProtocolError.LENGTH
        return _build_inference_v1(pkt)
    if version < VERSION and t == FrameType.STATUS:
        old = _STATUS_V2 if version < VERSION_3 else _STATUS_V4
        if n - MIN_PACKET != old.size - 4:
            return ProtocolError.LENGTH
        return (_build_status_v2 if version < VERSION_3 else _build_status_v4)(pkt)
    if version < VERSION_4 and t == FrameType.HELLO:
        if n - MIN_PACKET != _HELLO_V3.size - 4:
            return ProtocolError.LENGTH
        return _build_hello_v3(pkt)
    payload = n - MIN_PACKET
    if t == FrameType.AUDIO:
        if payload < expected:
            return ProtocolError.LENGTH
        samples = pkt[HEADER_BYTES + 4] | (pkt[HEADER_BYTES + 5] << 8)
        if samples > AUDIO_MAX_SAMPLES or payload != expected + 2 * samples:
            return ProtocolError.LENGTH
    elif t == FrameType.IMAGE:
        if payload < expected:
            return ProtocolError.LENGTH
        count = pkt[HEADER_BYTES + 4] | (pkt[HEADER_BYTES + 5] << 8)
        if count > IMAGE_MAX_BYTES or payload != expected + count:
            return ProtocolError.LENGTH
    elif payload != expected:
        return ProtocolError.LENGTH
    return _BUILDERS_BY_BYTE[t](pkt)


def decode_run(run: bytes) -> Frame | ProtocolError:
    """Decode one frame run (the bytes between two 0x00, starting with 0x01)."""
    pkt = _cobs_decode_fast(run)
    if pkt is None:
        pkt = cobs_decode(run)
        if type(pkt) is ProtocolError:
            return pkt
    return parse_packet(pkt)


def decode(wire: bytes) -> Frame:
    """Decode the wire bytes of exactly one frame; raise ValueError if they are not one."""
    runs = [r for r in wire.split(b"\x00") if r]
    if len(runs) != 1 or runs[0][0] != 0x01:
        raise ValueError("expected the wire bytes of exactly one frame")
    result = decode_run(runs[0])
    if type(result) is ProtocolError:
        raise ValueError(f"corrupt frame: {result.name}")
    return result


class StreamParser:
    """Cuts a byte stream into frames, text lines and corrupt runs.

    feed() takes bytes as they arrive (any chunking) and returns the complete items in order.
    Text lines are returned as soon as their "\\n" arrives. Counters: `frames`, `corrupt`
    (with `corrupt_by_error`), `text_lines`, `bytes_in`.
    """

    def __init__(self) -> None:
        self.frames = 0
        self.corrupt = 0
        self.corrupt_by_error: dict[ProtocolError, int] = {}
        self.text_lines = 0
        self.bytes_in = 0
        self._mode = 0  # current run: 0 none yet, 1 frame, 2 text
        self._frame_run = bytearray()
        self._frame_overflow = False
        self._text_garbage = False
        self._line = bytearray()

    # -- public

    def feed(self, data: bytes) -> list[Frame | TextLine | Corrupt]:
        out: list = []
        self.bytes_in += len(data)
        parts = data.split(b"\x00")
        self._continue_run(parts[0], len(parts) > 1, out)
        if len(parts) > 1:
            complete = self._complete_run
            for run in parts[1:-1]:
                if run:
                    complete(run, out)
            self._continue_run(parts[-1], False, out)
        return out

    def flush(self) -> list[TextLine]:
        """At the end of a stream: return a text line left without its "\\n"."""
        out: list = []
        if self._line:
            self._emit_line(bytes(self._line), out)
            self._line.clear()
        return out

    # -- runs

    def _complete_run(self, run: bytes, out: list) -> None:
        if run[0] == 0x01:
            result = decode_run(run)
            if type(result) is ProtocolError:
                self._count_corrupt(result, run, out)
            else:
                self.frames += 1
                out.append(result)
        else:
            self._text(run, out)
            self._end_text_run(out)

    def _continue_run(self, part: bytes, ends: bool, out: list) -> None:
        if self._mode == 0 and part:
            if not ends:
                self._mode = 1 if part[0] == 0x01 else 2
            else:
                self._complete_run(part, out)
                return
        if self._mode == 1:
            if not self._frame_overflow:
                self._frame_run += part
                # Far past any valid frame: stop storing, the run is an overflow however it ends.
                if len(self._frame_run) > 4 * MAX_WIRE:
                    self._frame_overflow = True
                    self._frame_run = self._frame_run[:MAX_WIRE]
            if ends:
                run = bytes(self._frame_run)
                if self._frame_overflow:
                    self._count_corrupt(ProtocolError.OVERFLOW, run, out)
                else:
                    self._complete_run(run, out)
                self._frame_run.clear()
                self._frame_overflow = False
                self._mode = 0
        elif self._mode == 2:
            self._text(part, out)
            if ends:
                self._end_text_run(out)
                self._mode = 0

    def _count_corrupt(self, error: ProtocolError, run: bytes, out: list) -> None:
        self.corrupt += 1
        self.corrupt_by_error[error] = self.corrupt_by_error.get(error, 0) + 1
        out.append(Corrupt(error, bytes(run[:MAX_WIRE])))

    # -- text

    def _text(self, data: bytes, out: list) -> None:
        if self._text_garbage or not data:
            return
        bad = _NON_TEXT.search(data)
        if bad is not None:
            # Devices never send such bytes as text: this run is a damaged frame. The clean
            # text before the first bad byte stands.
            data = data[:bad.start()]
            self._text_garbage = True
        if b"\n" not in data:
            self._line += data
        else:
            lines = data.split(b"\n")
            self._line += lines[0]
            self._emit_line(bytes(self._line), out)
            for line in lines[1:-1]:
                self._emit_line(line, out)
            self._line = bytearray(lines[-1])
        if len(self._line) > MAX_LINE:
            self._emit_line(bytes(self._line), out)
            self._line.clear()

    def _end_text_run(self, out: list) -> None:
        if self._text_garbage:
            self._count_corrupt(ProtocolError.GARBAGE, b"", out)
            self._text_garbage = False

    def _emit_line(self, line: bytes, out: list) -> None:
        if line.endswith(b"\r"):
            line = line[:-1]
        self.text_lines += 1
        out.append(TextLine(line.decode("ascii")))


# ---------------------------------------------------------------------------- test data

def random_frame(rng: random.Random, frame_type: FrameType | None = None, seq: int | None = None) -> Frame:
    """A frame of the given (or a random) type with random field values over their full
    ranges, for round-trip tests, benchmarks and simulated devices."""
    t = frame_type if frame_type is not None else rng.choice(list(FrameType))
    seq = rng.getrandbits(32) if seq is None else seq

    def u(bits: int) -> int:
        return rng.getrandbits(bits)

    def i32() -> int:
        return rng.getrandbits(32) - (1 << 31)

    def scores() -> tuple[int, ...]:
        return tuple(i32() for _ in range(N_SCORES))

    if t is FrameType.HELLO:
        return Hello(seq, rng.randbytes(32), u(8), u(8), u(16), u(32), u(8), u(8), u(8), u(8),
                     scores(), scores(), u(64), u(32))
    if t is FrameType.INFERENCE:
        return Inference(seq, u(32), rng.randbytes(8), u(8), u(8), u(16), u(32), u(32), u(64),
                         u(32), scores(), u(32))
    if t is FrameType.STATUS:
        return Status(seq, u(32), u(32), u(32), u(32), u(32), rng.randbytes(32), u(32), u(32),
                      random_frame(rng, FrameType.HELLO, seq))
    if t is FrameType.ACK:
        return Ack(seq, u(32), u(32), u(8), u(8))
    if t is FrameType.BYE:
        return Bye(seq, u(32), u(32))
    if t is FrameType.TRACE:
        return Trace(seq, u(32), u(8), u(8), u(32), u(32), u(32), u(32), u(32),
                     tuple(rng.randrange(-32768, 32768) for _ in range(TRACE_SUMMARY)),
                     tuple(rng.randrange(-128, 128) for _ in range(TRACE_OUTPUTS)))
    if t is FrameType.HEARTBEAT:
        return Heartbeat(seq, u(32), u(32), u(32), u(32), u(64), u(16), u(16),
                         tuple(u(16) for _ in range(ALARM_TYPES)), tuple(u(16) for _ in range(ALARM_TYPES)),
                         u(16), u(8), u(8), tuple(u(8) for _ in range(HEARTBEAT_CLASSES)))
    if t is FrameType.DETECTION:
        return Detection(seq, u(32), rng.randbytes(8), u(8), u(8), u(8), u(32))
    if t is FrameType.CONFIG:
        return Config(seq, u(16), u(16))
    if t is FrameType.RESET:
        return Reset(seq)
    if t is FrameType.LABEL:
        return Label(seq, u(32), u(8))
    if t is FrameType.AUDIO:
        n = rng.choice([0, 1, rng.randrange(AUDIO_MAX_SAMPLES + 1), AUDIO_MAX_SAMPLES])
        # Half the clips are non-zero PCM so COBS's 254-byte blocks (code 0xFF) are exercised.
        if rng.random() < 0.5:
            samples = tuple(rng.choice([-1, 1]) * rng.randrange(257, 32767) for _ in range(n))
        else:
            samples = tuple(rng.randrange(-32768, 32768) for _ in range(n))
        return Audio(seq, u(32), u(16), samples)
    if t is FrameType.IMAGE:
        n = rng.choice([0, 1, rng.randrange(IMAGE_MAX_BYTES + 1), IMAGE_MAX_BYTES])
        return Image(seq, u(32), u(16), u(8), u(8), u(8), rng.randbytes(n))
    return StatusRequest(seq)


def typical_inference(seq: int, index: int, model_id: bytes, rng: random.Random) -> Inference:
    """An INFERENCE frame with values as a quiet device sends them (small scores, no alarm)."""
    scores = tuple(rng.randrange(0, 3 << 12) if k < 5 else 0 for k in range(N_SCORES))
    return Inference(seq, index, model_id, rng.randrange(12), rng.randrange(128, 256), 0,
                     rng.randrange(0, 2 << 16), rng.randrange(50000, 65536), 0, 0, scores)


def bench_parse(n: int = 200_000, chunk: int = 4096) -> float:
    """Parse `n` typical INFERENCE frames (with a text line every 100 frames) fed in
    `chunk`-byte reads, as capture does; return frames per second."""
    rng = random.Random(1)
    model_id = rng.randbytes(8)
    pieces = []
    for i in range(n):
        pieces.append(encode(typical_inference(i, i, model_id, rng)))
        if i % 100 == 0:
            pieces.append(f"log: inference {i}\n".encode())
    stream = b"".join(pieces)
    parser = StreamParser()
    start = time.perf_counter()
    for offset in range(0, len(stream), chunk):
        parser.feed(stream[offset:offset + chunk])
    elapsed = time.perf_counter() - start
    if parser.frames != n or parser.corrupt:
        raise AssertionError(f"benchmark stream misparsed: {parser.frames} frames, {parser.corrupt} corrupt")
    return n / elapsed
