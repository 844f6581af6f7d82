"""One device frame as an MQTT message: its topic and its payload (the envelope).

A device frame names neither its board nor its boot: only HELLO does. The gateway adds what
it learnt from the device's latest HELLO, so that every message stands alone:

    topic    tinydrift/<fleet>/<device_id, 16 hex digits>/<frame type, lower case>
    payload  u8 ENVELOPE_VERSION, u64 device_id, u32 boot_count, u8[8] model_id,
             u64 received_us (when the gateway read the frame, Unix microseconds),
             then the frame's packet (sync ... CRC, docs/protocol.md §1) as received

29 bytes of envelope, little-endian. (device_id, boot_count, seq) names one frame of one run
of one board; received_us is stamped once, when the frame enters the gateway's outbox, so
every copy of a frame (a re-send after a broker outage or a gateway restart) is the same
message byte for byte.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass

from tinydrift.errors import TinydriftError
from tinydrift.link import protocol as P

ENVELOPE_VERSION = 1
TOPIC_ROOT = "tinydrift"
_HEAD = struct.Struct("<BQI8sQ")
HEAD_BYTES = _HEAD.size
assert HEAD_BYTES == 29


@dataclass(frozen=True, slots=True)
class Identity:
    """What the device's latest HELLO said: 0 and zero bytes when nothing is known."""

    device_id: int = 0
    boot_count: int = 0
    model_id: bytes = bytes(P.MODEL_ID_BYTES)

    @classmethod
    def of_hello(cls, hello: P.Hello) -> "Identity":
        return cls(hello.device_id or 0, hello.boot_count or 0, hello.model_hash[:P.MODEL_ID_BYTES])


FLEET_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")


def check_fleet_name(fleet: str, what: str = "fleet name") -> str:
    """A fleet (or collector group) name: one MQTT topic level, also a shared subscription's
    group and a dashboard's label, so plain letters, digits, '-' and '_' (spaces, dots or
    slashes would need quoting somewhere along the way)."""
    if not FLEET_NAME.fullmatch(fleet or ""):
        raise TinydriftError(f"{what} {fleet!r}: use 1-64 letters, digits, '-' or '_' (it is an MQTT topic level)")
    return fleet


def topic(fleet: str, device_id: int, frame_type: int) -> str:
    try:
        name = P.FrameType(frame_type).name.lower()
    except ValueError:
        name = f"type{frame_type:02x}"
    return f"{TOPIC_ROOT}/{fleet}/{device_id:016x}/{name}"


def subscription(fleet: str) -> str:
    """Every frame topic of one fleet."""
    return f"{TOPIC_ROOT}/{fleet}/+/+"


# The last microsecond a store's timestamps can hold (9999-12-31 23:59:59.999999 UTC): a
# stamp beyond it is no gateway's clock, and would stop whatever stores it.
MAX_RECEIVED_US = 253_402_300_799_999_999


def pack(identity: Identity, received_us: int, packet: bytes) -> bytes:
    return _HEAD.pack(ENVELOPE_VERSION, identity.device_id, identity.boot_count, identity.model_id,
                      received_us) + packet


@dataclass(slots=True)
class Envelope:
    identity: Identity
    received_us: int
    frame: P.Frame


def unpack(payload: bytes) -> Envelope:
    """The envelope and its decoded frame; ValueError (saying what is wrong) if it is not one."""
    if len(payload) < HEAD_BYTES + P.MIN_PACKET:
        raise ValueError(f"{len(payload)} bytes, shorter than an envelope and the smallest frame")
    version, device_id, boot_count, model_id, received_us = _HEAD.unpack_from(payload)
    if version != ENVELOPE_VERSION:
        raise ValueError(f"envelope version {version}, this tinydrift reads {ENVELOPE_VERSION}")
    if received_us > MAX_RECEIVED_US:
        raise ValueError(f"received_us {received_us} is past the year 9999: no gateway's clock")
    frame = P.parse_packet(payload[HEAD_BYTES:])
    if isinstance(frame, P.ProtocolError):
        raise ValueError(f"the frame inside is corrupt ({frame.name})")
    return Envelope(Identity(device_id, boot_count, model_id), received_us, frame)
