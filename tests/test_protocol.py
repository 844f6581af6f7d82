"""The host protocol on its own: COBS, the frame/text rule, typed errors, chunking, speed."""

from __future__ import annotations

import random
import re
import struct
import zlib

import pytest

from tinydrift.link import protocol as P
from tinydrift.firmware import REPO_ROOT


def _items(stream: bytes, sizes) -> list:
    parser = P.StreamParser()
    out, offset = [], 0
    for size in sizes:
        out += parser.feed(stream[offset:offset + size])
        offset += size
        if offset >= len(stream):
            break
    out += parser.feed(stream[offset:])
    return out


def _mixed_stream(rng: random.Random, n: int) -> tuple[bytes, list]:
    """Frames, text lines (some split around frames) and corrupt frames, with the items a
    parser must return for them."""
    pieces, expected = [], []
    for i in range(n):
        roll = rng.random()
        if roll < 0.6:
            frame = P.random_frame(rng)
            pieces.append(P.encode(frame))
            expected.append(frame)
        elif roll < 0.8:
            line = "".join(rng.choice("abc XYZ:=.0123\t") for _ in range(rng.randrange(0, 60)))
            pieces.append(line.encode() + rng.choice([b"\n", b"\r\n"]))
            expected.append(P.TextLine(line))
        elif roll < 0.9:
            # A line interrupted by a frame continues after it.
            frame = P.random_frame(rng)
            pieces += [b"before ", P.encode(frame), b"after\n"]
            expected += [frame, P.TextLine("before after")]
        else:
            wire = bytearray(P.encode(P.random_frame(rng)))
            wire[rng.randrange(2, len(wire) - 1)] ^= 0x40  # never a 0x00 here: CRC or COBS error
            if 0 in wire[1:-1]:
                continue
            pieces.append(bytes(wire))
            expected.append("corrupt")
    return b"".join(pieces), expected


def _normalise(items):
    return ["corrupt" if isinstance(it, P.Corrupt) else it for it in items]


def test_any_chunking_gives_the_same_items():
    rng = random.Random(21)
    stream, expected = _mixed_stream(rng, 1500)
    whole = _normalise(_items(stream, [len(stream)]))
    assert whole == expected
    assert _normalise(_items(stream, [1] * len(stream))) == expected
    for _ in range(5):
        sizes = [rng.randrange(1, 700) for _ in range(len(stream))]
        assert _normalise(_items(stream, sizes)) == expected


def test_text_line_arrives_before_the_next_frame():
    parser = P.StreamParser()
    assert parser.feed(b"boot: model ok\r\nhalf") == [P.TextLine("boot: model ok")]
    assert parser.feed(b" a line\n") == [P.TextLine("half a line")]
    assert parser.flush() == []
    parser.feed(b"no newline at the end")
    assert parser.flush() == [P.TextLine("no newline at the end")]


def test_binary_bytes_outside_frames_are_counted_corrupt():
    parser = P.StreamParser()
    items = parser.feed(b"ok line\n\x00\x02\x03garbage\x00good\n")
    assert items == [P.TextLine("ok line"), P.Corrupt(P.ProtocolError.GARBAGE, b""), P.TextLine("good")]
    assert parser.corrupt == 1 and parser.corrupt_by_error == {P.ProtocolError.GARBAGE: 1}


def _wire_from_packet(body: bytes) -> bytes:
    packet = body + zlib.crc32(body).to_bytes(4, "little")
    return b"\x00" + P.cobs_encode(packet) + b"\x00"


@pytest.mark.parametrize("body, error", [
    (struct.pack("<BBBI", 0, P.VERSION + 1, P.FrameType.RESET, 7), P.ProtocolError.VERSION),
    (struct.pack("<BBBI", 0, 1, 0x42, 7), P.ProtocolError.TYPE),
    (struct.pack("<BBBI", 0, 1, P.FrameType.RESET, 7) + b"\x01", P.ProtocolError.LENGTH),
    (struct.pack("<BBBI", 0, 1, P.FrameType.INFERENCE, 7) + bytes(63), P.ProtocolError.LENGTH),
    (struct.pack("<BBBIIHH", 0, 1, P.FrameType.AUDIO, 7, 0, 3, 0) + bytes(4), P.ProtocolError.LENGTH),
    (struct.pack("<BBBIIHH", 0, 1, P.FrameType.AUDIO, 7, 0, 257, 0) + bytes(500), P.ProtocolError.LENGTH),
    (b"\x00\x01\x81", P.ProtocolError.SHORT),
])
def test_typed_errors_with_a_valid_crc(body, error):
    parser = P.StreamParser()
    items = parser.feed(_wire_from_packet(body))
    assert [type(it) for it in items] == [P.Corrupt] and items[0].error == error


def test_crc_and_cobs_errors():
    wire = bytearray(P.encode(P.Reset(seq=5)))
    wire[-3] ^= 0x01
    assert P.StreamParser().feed(bytes(wire))[0].error == P.ProtocolError.CRC
    truncated = P.encode(P.Reset(seq=5))[:-4] + b"\x00"
    assert P.StreamParser().feed(truncated)[0].error in (P.ProtocolError.COBS, P.ProtocolError.CRC)
    assert P.cobs_decode(b"\x05\x01\x02") == P.ProtocolError.COBS


def test_overlong_run_is_one_overflow_and_memory_stays_bounded():
    parser = P.StreamParser()
    for _ in range(100):
        parser.feed(b"\x01" + b"\x07" * 10_000 if _ == 0 else b"\x07" * 10_000)
        assert len(parser._frame_run) <= 4 * P.MAX_WIRE + 10_000
    items = parser.feed(b"\x00" + P.encode(P.Reset(seq=1)))
    assert [getattr(it, "error", None) for it in items] == [P.ProtocolError.OVERFLOW, None]
    assert parser.frames == 1 and parser.corrupt == 1


def test_cobs_round_trip_on_awkward_lengths():
    rng = random.Random(22)
    cases = [b"", b"\x00", b"\x00\x00", bytes(range(1, 255)), bytes(range(1, 256)),
             bytes(range(0, 256)), b"\x01" * 508, b"\x01" * 509, b"\x01" * 254 + b"\x00"]
    cases += [bytes(rng.choice([0, 1, rng.randrange(256)]) for _ in range(rng.randrange(600)))
              for _ in range(500)]
    for data in cases:
        encoded = P.cobs_encode(data)
        assert 0 not in encoded
        assert len(encoded) <= len(data) + 1 + len(data) // 254
        if len(data) <= P.MAX_PACKET:
            assert P.cobs_decode(encoded) == data


def test_every_frame_run_starts_with_0x01_and_holds_a_non_text_byte():
    rng = random.Random(23)
    for _ in range(3000):
        frame = P.random_frame(rng)
        run = P.encode(frame)[1:-1]
        # marker, then the version byte (not a text byte): a command's the oldest it may be
        assert run[0] == 0x01 and run[2] == (P.COMMAND_VERSION if frame.TYPE >= 0x80 else P.VERSION)


def test_commands_go_as_protocol_4_so_a_board_not_yet_reflashed_takes_them():
    """A tinydrift upgraded to protocol 5 sent its commands as version 5, which a board still
    on protocol 4 refuses (VERSION): replay said "the device did not answer within 5 s". No
    command's layout changed in version 5, so they go as version 4."""
    assert P.COMMAND_VERSION == P.VERSION_4 < P.VERSION
    rng = random.Random(29)
    for t in [t for t in P.FrameType if t >= 0x80]:
        frame = P.random_frame(rng, t)
        packet = P.encode_packet(frame)
        assert packet[1] == 4 and P.decode(P.encode(frame)) == frame


def test_example_in_the_spec_is_what_the_encoder_writes():
    """docs/protocol.md shows one INFERENCE frame byte by byte; it must stay true."""
    text = (REPO_ROOT / "docs" / "protocol.md").read_text()
    block = re.search(r"<!-- example-inference -->\s*```\s*(.*?)```", text, re.S).group(1)
    wire_rows = block.split("wire")[1].splitlines()[1:]  # the rows under the "wire" line
    wire = bytes.fromhex("".join(wire_rows).replace(" ", ""))
    frame = P.decode(wire)
    assert frame == P.Inference(seq=258, inference_index=1000, model_id=bytes.fromhex("0123456789abcdef"),
                                predicted_class=3, confidence=230, alarm_bits=0x0101,
                                entropy=20000, atc=60000, moved_channels=(1 << 5) | (1 << 39),
                                change_index=940, scores=(5 << 12, 4096, 0, 0, 0, 0, 0, -2), alarm_index=962)
    assert P.encode(frame) == wire


def test_parse_rate_at_least_50k_frames_per_second():
    rate = max(P.bench_parse(30_000) for _ in range(2))
    assert rate >= 50_000, f"{rate:.0f} frames/s"


def test_names_match_the_drift_monitor():
    from tinydrift.monitor import config as monitor

    assert P.SCORE_NAMES[:monitor.SCORE_COUNT] == monitor.SCORE_NAMES
    assert P.WARNING_SHIFT == monitor.WARNING_SHIFT
    for bit, name in monitor.ALARM_NAMES.items():
        assert P.ALARM_NAMES[bit.bit_length() - 1] == name
    assert P.alarm_names(0x0101 | 0x0400) == monitor.alarm_names(0x0101 | 0x0400)


def test_a_hello_names_its_device_or_says_why_it_cannot():
    """The live view showed no device row, and the report none at all, when the id was 0 (the
    emulated board, or a port without td_port_device_id): a reader could not tell a device
    without an id from a view that does not show one."""
    said = P.Hello(0, bytes(32), 1, 2, 3, 412, 12, 40, 12, 5, (1,) * 5, (2,) * 5)
    assert said.device_text == "no id (its port defines no td_port_device_id), boot count unknown"
    said.device_id, said.boot_count = 0x1234ABCD, 7
    assert said.device_text == "000000001234abcd, boot 7"
    said.device_id, said.boot_count = None, None  # a protocol 1-3 HELLO
    assert "protocol 1-3" in said.device_text and "no device id" in said.device_text
