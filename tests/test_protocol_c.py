"""The C protocol library against its Python twin: the same bytes, both ways, and the same
verdict on every corrupted frame; plus the builds the firmware needs (Cortex-M4, sanitizers,
libFuzzer)."""

from __future__ import annotations

import ctypes
import dataclasses
import random
import zlib
import shutil
import subprocess
from pathlib import Path

import pytest

from tinydrift.link import protocol as P
from tinydrift import firmware

PROTO_DIR = firmware.LIB_SRC / "protocol"
SOURCES = sorted(PROTO_DIR.glob("*.c"))

# Test-side glue: sizes for the ctypes mirror, a whole-stream decode loop (one ctypes call per
# stream instead of per byte) and, for the sanitizer build, a main() reading a stream on stdin.
HARNESS_C = r"""
#include "td_protocol.h"
#include <stdio.h>
#include <stdlib.h>

size_t td_test_sizeof_frame(void) { return sizeof(td_proto_frame_t); }
size_t td_test_sizeof_decoder(void) { return sizeof(td_proto_decoder_t); }

size_t td_test_decode_stream(const uint8_t *data, size_t n, int32_t *results,
                             td_proto_frame_t *frames, size_t max_results) {
    static td_proto_frame_t scratch;
    td_proto_decoder_t dec;
    td_proto_decoder_init(&dec);
    size_t k = 0;
    for (size_t i = 0; i < n; ++i) {
        td_proto_frame_t *slot = k < max_results ? &frames[k] : &scratch;
        td_proto_result_t r = td_proto_decoder_push(&dec, data[i], slot);
        if (r != TD_PROTO_NEED_MORE) {
            if (k < max_results) results[k] = (int32_t)r;
            ++k;
        }
    }
    return k;
}

#ifdef TD_TEST_MAIN
/* stdin: a byte stream. stdout: one line per result; a frame is printed as its re-encoding. */
int main(void) {
    static td_proto_frame_t frame;
    static uint8_t wire[TD_PROTO_MAX_WIRE];
    td_proto_decoder_t dec;
    td_proto_decoder_init(&dec);
    int c;
    while ((c = getchar()) != EOF) {
        td_proto_result_t r = td_proto_decoder_push(&dec, (uint8_t)c, &frame);
        if (r == TD_PROTO_NEED_MORE) continue;
        printf("%d", (int)r);
        if (r == TD_PROTO_FRAME) {
            int32_t n = td_proto_encode(&frame, wire, sizeof wire);
            if (n <= 0) return 2;
            putchar(' ');
            for (int32_t i = 0; i < n; ++i) printf("%02x", wire[i]);
        }
        putchar('\n');
    }
    return 0;
}
#endif
"""

FUZZ_C = r"""
/* libFuzzer target: any byte stream through the decoder; every frame it accepts must survive
 * encode -> decode unchanged, field by field (docs/protocol.md §9), and re-encode to the same
 * bytes; the encoder must accept it. A frame of the current version must also re-encode to
 * the very packet received, so a field that the parser and the encoder both drop is caught
 * too (only TRACE's reserved u16 and DETECTION's and IMAGE's reserved byte may differ: they are ignored and
 * sent as 0). */
#include "td_protocol.h"
#include <stdlib.h>
#include <string.h>

#define SAME(field) (a->field == b->field)
#define SAME_ARRAY(field) (memcmp(a->field, b->field, sizeof a->field) == 0)

static int td_hellos_equal(const td_proto_hello_t *a, const td_proto_hello_t *b) {
    return SAME_ARRAY(model_hash) && SAME(fw_major) && SAME(fw_minor) && SAME(fw_patch) &&
           SAME(state_bytes) && SAME(n_classes) && SAME(n_channels) && SAME(score_frac_bits) &&
           SAME(n_scores) && SAME_ARRAY(warning_threshold) && SAME_ARRAY(drift_threshold) &&
           SAME(device_id) && SAME(boot_count);
}

/* Field by field: the union's bytes beyond the frame's type are leftovers and may differ. */
static int td_frames_equal(const td_proto_frame_t *x, const td_proto_frame_t *y) {
    if (x->type != y->type || x->seq != y->seq) return 0;
    switch (x->type) {
    case TD_FRAME_HELLO:
        return td_hellos_equal(&x->body.hello, &y->body.hello);
    case TD_FRAME_INFERENCE: {
        const td_proto_inference_t *a = &x->body.inference, *b = &y->body.inference;
        return SAME(inference_index) && SAME_ARRAY(model_id) && SAME(predicted_class) && SAME(confidence) &&
               SAME(alarm_bits) && SAME(entropy) && SAME(atc) && SAME(moved_channels) && SAME(change_index) &&
               SAME_ARRAY(scores) && SAME(alarm_index);
    }
    case TD_FRAME_STATUS: {
        const td_proto_status_t *a = &x->body.status, *b = &y->body.status;
        return SAME(uptime_ms) && SAME(state_bytes) && SAME(inferences) && SAME(rx_frames) && SAME(rx_errors) &&
               SAME_ARRAY(model_hash) && SAME(labels) && SAME(label_errors) &&
               td_hellos_equal(&a->hello, &b->hello);
    }
    case TD_FRAME_ACK: {
        const td_proto_ack_t *a = &x->body.ack, *b = &y->body.ack;
        return SAME(command_seq) && SAME(detail) && SAME(command_type) && SAME(result);
    }
    case TD_FRAME_BYE: {
        const td_proto_bye_t *a = &x->body.bye, *b = &y->body.bye;
        return SAME(exit_code) && SAME(inferences);
    }
    case TD_FRAME_TRACE: {
        const td_proto_trace_t *a = &x->body.trace, *b = &y->body.trace;
        return SAME(inference_index) && SAME(n_summary) && SAME(n_outputs) && SAME(window_end) &&
               SAME(cycles_frontend) && SAME(cycles_model) && SAME(cycles_sensor) && SAME(cycles_monitor) &&
               SAME_ARRAY(summary) && SAME_ARRAY(outputs);
    }
    case TD_FRAME_HEARTBEAT: {
        const td_proto_heartbeat_t *a = &x->body.heartbeat, *b = &y->body.heartbeat;
        return SAME(inference_index) && SAME(uptime_ms) && SAME(alarm_index) && SAME(change_index) &&
               SAME(moved_channels) && SAME(alarm_bits) && SAME(window) && SAME_ARRAY(latch_delay) &&
               SAME_ARRAY(cusum_max) && SAME(mean_entropy) && SAME(atc) && SAME(mean_confidence) &&
               SAME_ARRAY(class_share);
    }
    case TD_FRAME_DETECTION: {
        const td_proto_detection_t *a = &x->body.detection, *b = &y->body.detection;
        return SAME(inference_index) && SAME_ARRAY(model_id) && SAME(probability) && SAME(window_mean) &&
               SAME(flags) && SAME(stream_position);
    }
    case TD_FRAME_LABEL: {
        const td_proto_label_t *a = &x->body.label, *b = &y->body.label;
        return SAME(inference_index) && SAME(label);
    }
    case TD_FRAME_CONFIG: {
        const td_proto_config_t *a = &x->body.config, *b = &y->body.config;
        return SAME(heartbeat_interval) && SAME(flags);
    }
    case TD_FRAME_AUDIO: {
        const td_proto_audio_t *a = &x->body.audio, *b = &y->body.audio;
        return SAME(sample_offset) && SAME(n_samples) && SAME(flags) &&
               memcmp(a->samples, b->samples, sizeof a->samples[0] * a->n_samples) == 0;
    }
    case TD_FRAME_IMAGE: {
        const td_proto_image_t *a = &x->body.image, *b = &y->body.image;
        return SAME(byte_offset) && SAME(n_bytes) && SAME(flags) && SAME(height) && SAME(width) &&
               SAME(channels) && memcmp(a->pixels, b->pixels, a->n_bytes) == 0;
    }
    default: /* RESET, STATUS_REQUEST: no payload */
        return 1;
    }
}

/* The packet a decoder holds when the 0x00 ending a run arrives: push() keeps its bytes. */
static uint16_t td_push_keeping_length(td_proto_decoder_t *dec, uint8_t byte, td_proto_frame_t *frame,
                                       td_proto_result_t *result) {
    const uint16_t length = dec->length;
    *result = td_proto_decoder_push(dec, byte, frame);
    return length;
}

static int td_same_packet(const uint8_t *a, uint16_t a_length, const uint8_t *b, uint16_t b_length) {
    if (a_length != b_length) return 0;
    /* The reserved bytes: TRACE's u16 at payload offset 6, DETECTION's u8 at 15, IMAGE's u8 at 11. */
    size_t reserved = (size_t)a_length, reserved_bytes = 0;
    if (a[2] == TD_FRAME_TRACE) {
        reserved = TD_PROTO_HEADER_BYTES + 6u;
        reserved_bytes = 2u;
    } else if (a[2] == TD_FRAME_DETECTION) {
        reserved = TD_PROTO_HEADER_BYTES + 15u;
        reserved_bytes = 1u;
    } else if (a[2] == TD_FRAME_IMAGE) {
        reserved = TD_PROTO_HEADER_BYTES + 11u;
        reserved_bytes = 1u;
    }
    for (size_t k = 0; k + TD_PROTO_CRC_BYTES < a_length; ++k) {
        if ((k < reserved || k >= reserved + reserved_bytes) && a[k] != b[k]) return 0;
    }
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static td_proto_frame_t frame, again;
    static uint8_t wire[TD_PROTO_MAX_WIRE], rewire[TD_PROTO_MAX_WIRE];
    td_proto_decoder_t dec, dec2;
    td_proto_result_t result;
    td_proto_decoder_init(&dec);
    for (size_t i = 0; i < size; ++i) {
        const uint16_t received = td_push_keeping_length(&dec, data[i], &frame, &result);
        if (result != TD_PROTO_FRAME) continue;
        int32_t n = td_proto_encode(&frame, wire, sizeof wire);
        if (n <= 0 || (size_t)n > TD_PROTO_MAX_WIRE) abort();
        /* A field the decoder forgot to fill would keep this pattern and differ. */
        memset(&again, 0xA5, sizeof again);
        td_proto_decoder_init(&dec2);
        int frames = 0;
        uint16_t sent = 0;
        for (int32_t j = 0; j < n; ++j) {
            const uint16_t length = td_push_keeping_length(&dec2, wire[j], &again, &result);
            if (result == TD_PROTO_FRAME) ++frames, sent = length;
            else if (result != TD_PROTO_NEED_MORE) abort();
        }
        if (frames != 1 || !td_frames_equal(&frame, &again)) abort();
        if (dec.packet[1] == TD_PROTO_VERSION_OF(dec.packet[2]) &&
            !td_same_packet(dec.packet, received, dec2.packet, sent)) abort();
        if (td_proto_encode(&again, rewire, sizeof rewire) != n || memcmp(wire, rewire, (size_t)n) != 0) abort();
    }
    return 0;
}
"""


def _write_source(name: str, text: str) -> Path:
    path = firmware.HOST_BUILD_DIR / "test-src" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists() or path.read_text() != text:
        path.write_text(text)
    return path


# ---------------------------------------------------------------------------- ctypes mirror

u8, u16, u32, u64, i16, i32 = (ctypes.c_uint8, ctypes.c_uint16, ctypes.c_uint32,
                               ctypes.c_uint64, ctypes.c_int16, ctypes.c_int32)


class CHello(ctypes.Structure):
    _fields_ = [("model_hash", u8 * 32), ("fw_major", u8), ("fw_minor", u8), ("fw_patch", u16),
                ("state_bytes", u32), ("n_classes", u8), ("n_channels", u8),
                ("score_frac_bits", u8), ("n_scores", u8), ("warning_thresholds", i32 * 8),
                ("drift_thresholds", i32 * 8), ("device_id", u64), ("boot_count", u32)]


class CInference(ctypes.Structure):
    _fields_ = [("inference_index", u32), ("model_id", u8 * 8), ("predicted_class", u8),
                ("confidence", u8), ("alarm_bits", u16), ("entropy", u32), ("atc", u32),
                ("moved_channels", u64), ("change_index", u32), ("scores", i32 * 8), ("alarm_index", u32)]


class CStatus(ctypes.Structure):
    _fields_ = [("uptime_ms", u32), ("state_bytes", u32), ("inferences", u32),
                ("rx_frames", u32), ("rx_errors", u32), ("model_hash", u8 * 32), ("labels", u32),
                ("label_errors", u32), ("hello", CHello)]


class CAck(ctypes.Structure):
    _fields_ = [("command_seq", u32), ("detail", u32), ("command_type", u8), ("result", u8)]


class CBye(ctypes.Structure):
    _fields_ = [("exit_code", u32), ("inferences", u32)]


class CTrace(ctypes.Structure):
    _fields_ = [("inference_index", u32), ("n_summary", u8), ("n_outputs", u8), ("window_end", u32),
                ("cycles_frontend", u32), ("cycles_model", u32), ("cycles_sensor", u32), ("cycles_monitor", u32),
                ("summary", i16 * P.TRACE_SUMMARY), ("outputs", ctypes.c_int8 * P.TRACE_OUTPUTS)]


class CHeartbeat(ctypes.Structure):
    _fields_ = [("inference_index", u32), ("uptime_ms", u32), ("alarm_index", u32), ("change_index", u32),
                ("moved_channels", u64), ("alarm_bits", u16), ("window", u16), ("latch_delay", u16 * P.ALARM_TYPES),
                ("cusum_max", u16 * P.ALARM_TYPES), ("mean_entropy", u16), ("atc", u8), ("mean_confidence", u8),
                ("class_share", u8 * P.HEARTBEAT_CLASSES)]


class CDetection(ctypes.Structure):
    _fields_ = [("inference_index", u32), ("model_id", u8 * 8), ("probability", u8), ("window_mean", u8),
                ("flags", u8), ("stream_position", u32)]


class CConfig(ctypes.Structure):
    _fields_ = [("heartbeat_interval", u16), ("flags", u16)]


class CLabel(ctypes.Structure):
    _fields_ = [("inference_index", u32), ("label", u8)]


class CAudio(ctypes.Structure):
    _fields_ = [("sample_offset", u32), ("n_samples", u16), ("flags", u16),
                ("samples", i16 * P.AUDIO_MAX_SAMPLES)]


class CImage(ctypes.Structure):
    _fields_ = [("byte_offset", u32), ("n_bytes", u16), ("flags", u16), ("height", u8), ("width", u8),
                ("channels", u8), ("pixels", u8 * P.IMAGE_MAX_BYTES)]


class CBody(ctypes.Union):
    _fields_ = [("hello", CHello), ("inference", CInference), ("status", CStatus),
                ("ack", CAck), ("bye", CBye), ("trace", CTrace), ("heartbeat", CHeartbeat), ("detection", CDetection),
                ("label", CLabel),
                ("audio", CAudio), ("config", CConfig), ("image", CImage)]


class CFrame(ctypes.Structure):
    _fields_ = [("type", u8), ("seq", u32), ("body", CBody)]


_BODY_FIELD = {P.FrameType.HELLO: "hello", P.FrameType.INFERENCE: "inference",
               P.FrameType.STATUS: "status", P.FrameType.ACK: "ack", P.FrameType.BYE: "bye",
               P.FrameType.TRACE: "trace", P.FrameType.HEARTBEAT: "heartbeat",
               P.FrameType.DETECTION: "detection", P.FrameType.LABEL: "label",
               P.FrameType.AUDIO: "audio", P.FrameType.CONFIG: "config", P.FrameType.IMAGE: "image"}
_PY_CLASS = {cls.TYPE: cls for cls in (P.Hello, P.Inference, P.Status, P.Ack, P.Bye, P.Trace, P.Heartbeat, P.Detection, P.Reset,
                                       P.Label, P.Audio, P.StatusRequest, P.Config, P.Image)}


def to_c(frame: P.Frame) -> CFrame:
    c = CFrame()
    c.type = frame.TYPE
    c.seq = frame.seq
    name = _BODY_FIELD.get(frame.TYPE)
    if name is None:
        return c
    _fill(getattr(c.body, name), frame)
    return c


def _fill(body: ctypes.Structure, frame) -> None:
    for fname, ftype in body._fields_:
        if fname == "n_samples":
            body.n_samples = len(frame.samples)
            continue
        if fname == "n_bytes":
            body.n_bytes = len(frame.pixels)
            continue
        value = getattr(frame, fname)
        if issubclass(ftype, ctypes.Structure):  # STATUS's HELLO
            _fill(getattr(body, fname), value)
        elif issubclass(ftype, ctypes.Array):
            getattr(body, fname)[: len(value)] = list(value)
        else:
            setattr(body, fname, value)


def from_c(c: CFrame) -> P.Frame:
    t = P.FrameType(c.type)
    name = _BODY_FIELD.get(t)
    if name is None:
        return _PY_CLASS[t](c.seq)
    body = getattr(c.body, name)
    values = _read(body, c.seq)
    if t is P.FrameType.AUDIO:
        values["samples"] = values["samples"][: body.n_samples]
    if t is P.FrameType.IMAGE:
        values["pixels"] = bytes(values["pixels"][: body.n_bytes])
    return _PY_CLASS[t](seq=c.seq, **values)


def _read(body: ctypes.Structure, seq: int) -> dict:
    values = {}
    for fname, ftype in body._fields_:
        if fname in ("n_samples", "n_bytes"):
            continue
        value = getattr(body, fname)
        if issubclass(ftype, ctypes.Structure):  # STATUS's HELLO, with the STATUS's seq
            value = P.Hello(seq=seq, **_read(value, seq))
        elif issubclass(ftype, ctypes.Array):
            value = bytes(value) if fname in ("model_hash", "model_id") else tuple(value)
        values[fname] = value
    return values


@pytest.fixture(scope="module")
def lib():
    harness = _write_source("td_proto_harness.c", HARNESS_C)
    path = firmware.compile_host([*SOURCES, harness], include_dirs=[PROTO_DIR])
    lib = ctypes.CDLL(str(path))
    lib.td_proto_encode.restype = ctypes.c_int32
    lib.td_proto_encode.argtypes = [ctypes.POINTER(CFrame), ctypes.c_char_p, ctypes.c_size_t]
    lib.td_crc32_update.restype = ctypes.c_uint32
    lib.td_crc32_update.argtypes = [ctypes.c_uint32, ctypes.c_char_p, ctypes.c_size_t]
    lib.td_test_sizeof_frame.restype = ctypes.c_size_t
    lib.td_test_sizeof_decoder.restype = ctypes.c_size_t
    lib.td_test_decode_stream.restype = ctypes.c_size_t
    lib.td_test_decode_stream.argtypes = [ctypes.c_char_p, ctypes.c_size_t,
                                          ctypes.POINTER(ctypes.c_int32), ctypes.POINTER(CFrame),
                                          ctypes.c_size_t]
    return lib


def c_encode(lib, frame: P.Frame) -> bytes:
    buf = ctypes.create_string_buffer(P.MAX_WIRE)
    n = lib.td_proto_encode(ctypes.byref(to_c(frame)), buf, P.MAX_WIRE)
    assert n > 0, f"C encoder refused {frame!r}: {n}"
    return buf.raw[:n]


def c_decode_stream(lib, stream: bytes, max_results: int):
    results = (ctypes.c_int32 * max_results)()
    frames = (CFrame * max_results)()
    k = lib.td_test_decode_stream(stream, len(stream), results, frames, max_results)
    assert k <= max_results
    return [(results[i], from_c(frames[i]) if results[i] == 1 else None) for i in range(k)]


def py_decode_stream(stream: bytes, chunk: int = 97):
    """Python verdicts in the C decoder's terms: 1 frame, 2 text run, negative errors."""
    parser = P.StreamParser()
    items = []
    for offset in range(0, len(stream), chunk):
        items += parser.feed(stream[offset:offset + chunk])
    return parser, items


# ---------------------------------------------------------------------------- tests

def test_ctypes_mirror_matches_c_layout(lib):
    assert lib.td_test_sizeof_frame() == ctypes.sizeof(CFrame)
    # the decoder is its packet buffer plus a few bytes of state: that is all the RAM it needs
    assert P.MAX_PACKET < lib.td_test_sizeof_decoder() <= P.MAX_PACKET + 8


def test_crc32_matches_zlib(lib):
    import zlib
    rng = random.Random(5)
    for n in [0, 1, 2, 3, 4, 7, 64, 531, *[rng.randrange(600) for _ in range(200)]]:
        data = rng.randbytes(n)
        assert lib.td_crc32_update(0, data, n) == zlib.crc32(data)
        split = rng.randrange(n + 1)
        assert lib.td_crc32_update(lib.td_crc32_update(0, data[:split], split), data[split:], n - split) == zlib.crc32(data)


def test_c_encode_equals_python_encode_and_python_decodes_it(lib):
    rng = random.Random(11)
    n_frames = 6000
    mismatches = 0
    for i in range(n_frames):
        frame = P.random_frame(rng, P.FrameType(list(P.FrameType)[i % len(P.FrameType)]))
        wire = c_encode(lib, frame)
        if wire != P.encode(frame) or P.decode(wire) != frame:
            mismatches += 1
    assert mismatches == 0


def test_python_encode_c_decodes_every_frame(lib):
    rng = random.Random(12)
    frames = [P.random_frame(rng) for _ in range(6000)]
    stream = b"".join(P.encode(f) for f in frames)
    decoded = c_decode_stream(lib, stream, len(frames) + 10)
    assert [code for code, _ in decoded] == [1] * len(frames)
    assert [f for _, f in decoded] == frames


def test_version_1_inference_frames_read_alike_in_c_and_python(lib):
    """A device on protocol 1 sent INFERENCE without alarm_index (68 bytes): both sides read
    it, Python marking the field unknown (None), C as 0; every other field is the same."""
    rng = random.Random(15)
    for _ in range(300):
        frame = P.random_frame(rng, P.FrameType.INFERENCE)
        v2 = P.encode_packet(frame)
        body = bytearray(v2[:-8])  # without alarm_index and the CRC
        body[1] = P.VERSION_1
        wire = b"\x00" + P.cobs_encode(bytes(body) + zlib.crc32(bytes(body)).to_bytes(4, "little")) + b"\x00"
        [(code, c_frame)] = c_decode_stream(lib, wire, 4)
        py_frame = P.decode(wire)
        assert code == 1 and py_frame.alarm_index is None and c_frame.alarm_index == 0
        py_frame.alarm_index = frame.alarm_index
        c_frame.alarm_index = frame.alarm_index
        assert py_frame == frame == c_frame
    # a version 1 INFERENCE of the version 2 length, and the reverse, are LENGTH errors alike
    for version, extra in ((P.VERSION_1, 4), (P.VERSION, -4)):
        body = bytearray(P.encode_packet(frame)[:-4])
        body[1] = version
        body = bytes(body[:len(body) - 4]) if extra < 0 else bytes(body)
        wire = b"\x00" + P.cobs_encode(body + zlib.crc32(body).to_bytes(4, "little")) + b"\x00"
        [(code, _)] = c_decode_stream(lib, wire, 4)
        assert code == int(P.ProtocolError.LENGTH) and P.StreamParser().feed(wire)[0].error == P.ProtocolError.LENGTH


def _zero(value) -> bool:
    """C's reading of a field an older frame lacks: 0, or a HELLO of zeros (STATUS's)."""
    if isinstance(value, P.Hello):
        zeros = (0,) * P.N_SCORES
        return value == P.Hello(value.seq, bytes(P.MODEL_HASH_BYTES), 0, 0, 0, 0, 0, 0, 0, 0, zeros, zeros, 0, 0)
    return value == 0


def _older_frames_read_alike(lib, frame_type, rng, old_versions, cut: int, fields: tuple[str, ...]) -> None:
    """Frames of `old_versions`, `cut` bytes shorter (without the later `fields`): C and
    Python both read them, Python marking the fields unknown (None), C as 0; the short frame
    marked with the current version, or the full one marked with the newest old version, is
    a LENGTH error alike."""

    def wire_of(frame, version: int, cut: int) -> bytes:
        body = bytearray(P.encode_packet(frame)[:-4 - cut])
        body[1] = version
        return b"\x00" + P.cobs_encode(bytes(body) + zlib.crc32(bytes(body)).to_bytes(4, "little")) + b"\x00"

    for version in old_versions:
        for _ in range(100):
            frame = P.random_frame(rng, frame_type)
            [(code, c_frame)] = c_decode_stream(lib, wire_of(frame, version, cut), 4)
            py_frame = P.decode(wire_of(frame, version, cut))
            assert code == 1 and all(getattr(py_frame, f) is None for f in fields)
            assert all(_zero(getattr(c_frame, f)) for f in fields)
            for decoded in (py_frame, c_frame):
                for f in fields:
                    setattr(decoded, f, getattr(frame, f))
            assert py_frame == frame == c_frame
    for version, length_cut in ((P.VERSION, cut), (old_versions[-1], 0)):
        wire = wire_of(frame, version, length_cut)
        [(code, _)] = c_decode_stream(lib, wire, 4)
        assert code == int(P.ProtocolError.LENGTH) and P.StreamParser().feed(wire)[0].error == P.ProtocolError.LENGTH


def test_version_1_and_2_status_frames_read_alike_in_c_and_python(lib):
    """Devices on protocols 1 and 2 sent STATUS without labels, label_errors and the HELLO
    (52 bytes)."""
    _older_frames_read_alike(lib, P.FrameType.STATUS, random.Random(17), (P.VERSION_1, P.VERSION_2),
                             8 + P.PAYLOAD_BYTES[P.FrameType.HELLO], ("labels", "label_errors", "hello"))


def test_version_3_and_4_status_frames_read_alike_in_c_and_python(lib):
    """Devices on protocols 3 and 4 sent STATUS without the HELLO at its end (60 bytes)."""
    _older_frames_read_alike(lib, P.FrameType.STATUS, random.Random(18), (P.VERSION_3, P.VERSION_4),
                             P.PAYLOAD_BYTES[P.FrameType.HELLO], ("hello",))


def test_version_3_hello_frames_read_alike_in_c_and_python(lib):
    """Devices on protocols 1-3 sent HELLO without device_id and boot_count (108 bytes)."""
    _older_frames_read_alike(lib, P.FrameType.HELLO, random.Random(19), (P.VERSION_1, P.VERSION_2, P.VERSION_3), 12,
                             ("device_id", "boot_count"))


def test_heartbeat_and_config_fields_at_their_extremes_alike_in_c_and_python(lib):
    """Every HEARTBEAT and CONFIG field at 0, at its maximum and at random values: C and
    Python write the same bytes and each reads the other's (the random frames of the tests
    above cover them too; this pins the edges of the packed fields)."""
    rng = random.Random(23)
    widths = {"moved_channels": 64, "alarm_bits": 16, "window": 16, "latch_delay": 16, "cusum_max": 16,
              "mean_entropy": 16, "atc": 8, "mean_confidence": 8, "class_share": 8, "heartbeat_interval": 16,
              "flags": 16}

    def edge(frame: P.Frame, top: bool) -> P.Frame:
        for f in dataclasses.fields(frame):
            if f.name not in ("seq", "raw"):
                value = (1 << widths.get(f.name, 32)) - 1 if top else 0
                old = getattr(frame, f.name)
                setattr(frame, f.name, tuple(value for _ in old) if isinstance(old, tuple) else value)
        return frame

    frames = [P.random_frame(rng, t) for _ in range(200) for t in (P.FrameType.HEARTBEAT, P.FrameType.CONFIG)]
    frames += [edge(P.random_frame(rng, t), top) for top in (False, True)
               for t in (P.FrameType.HEARTBEAT, P.FrameType.CONFIG)]
    stream = b"".join(P.encode(f) for f in frames)
    assert b"".join(c_encode(lib, f) for f in frames) == stream
    assert [f for _, f in c_decode_stream(lib, stream, len(frames) + 2)] == frames
    assert all(len(P.encode_packet(f)) == P.MIN_PACKET + P.PAYLOAD_BYTES[f.TYPE] for f in frames)
    assert P.PAYLOAD_BYTES[P.FrameType.HEARTBEAT] <= 64  # one BLE / LoRaWAN / cellular message


def _corrupt(run: bytes, rng: random.Random) -> bytes:
    """One random corruption of a frame's COBS run (the delimiters are left alone)."""
    b = bytearray(run)
    kind = rng.randrange(8)
    if kind == 0:  # one bit
        pos = rng.randrange(len(b))
        b[pos] ^= 1 << rng.randrange(8)
    elif kind == 1:  # several bits anywhere
        for _ in range(rng.randrange(2, 9)):
            pos = rng.randrange(len(b))
            b[pos] ^= 1 << rng.randrange(8)
    elif kind == 2:  # one byte replaced (0x00 included: a delimiter appears mid-frame)
        b[rng.randrange(len(b))] = rng.randrange(256)
    elif kind == 3:  # cut short
        del b[rng.randrange(1, len(b)):]
    elif kind == 4:  # a byte lost
        del b[rng.randrange(len(b))]
    elif kind == 5:  # a byte added
        b.insert(rng.randrange(len(b) + 1), rng.randrange(256))
    elif kind == 6:  # burst of noise
        pos = rng.randrange(len(b))
        for j in range(pos, min(len(b), pos + rng.randrange(1, 9))):
            b[j] = rng.randrange(256)
    else:  # the frame marker itself
        b[0] = rng.randrange(256)
    return bytes(b)


def test_corrupt_frames_all_detected_identically_by_c_and_python(lib):
    rng = random.Random(13)
    segments = []  # (wire bytes, original frame or None if corrupted)
    n_corrupt = 0
    while n_corrupt < 5000:
        frame = P.random_frame(rng)
        run = P.encode(frame)[1:-1]
        if rng.random() < 0.3:
            segments.append((b"\x00" + run + b"\x00", frame))
            continue
        bad = _corrupt(run, rng)
        if bad.strip(b"\x00") == run:  # unchanged, or only an extra delimiter beside it
            continue
        segments.append((b"\x00" + bad + b"\x00", None))
        n_corrupt += 1
    stream = b"".join(w for w, _ in segments)

    c_results = c_decode_stream(lib, stream, 4 * len(segments))
    parser, items = py_decode_stream(stream)

    # Same verdicts, in order: C's result codes and Python's items line up one to one
    # (Python reports text as lines, so compare non-text results; a text run's lines are
    # checked below).
    py_codes = [1 if not isinstance(it, (P.Corrupt, P.TextLine)) else int(it.error)
                for it in items if not isinstance(it, P.TextLine)]
    c_codes = [code for code, _ in c_results if code != 2]
    assert c_codes == py_codes
    assert [f for code, f in c_results if code == 1] == [it for it in items
                                                        if not isinstance(it, (P.Corrupt, P.TextLine))]

    # Each segment on its own: an intact frame comes back equal; a corrupted one gives no
    # frame and at least one error.
    undetected = accepted = 0
    for wire, original in segments:
        verdicts = [code for code, _ in c_decode_stream(lib, wire, 8)]
        if original is not None:
            assert verdicts == [1]
            continue
        accepted += verdicts.count(1)
        undetected += not any(code < 0 for code in verdicts)
    assert (accepted, undetected) == (0, 0)
    intact = sum(1 for _, f in segments if f is not None)
    assert parser.frames == intact
    assert parser.corrupt >= n_corrupt
    assert parser.corrupt == sum(1 for code in c_codes if code < 0)


def test_text_runs_agree_with_c(lib):
    rng = random.Random(14)
    pieces = []
    for i in range(500):
        pieces.append(P.encode(P.random_frame(rng, seq=i)))
        pieces.append(f"line {i}: {rng.random():.6f}\r\n".encode() * rng.randrange(0, 3))
    stream = b"".join(pieces)
    c_codes = [code for code, _ in c_decode_stream(lib, stream, 2000)]
    parser, items = py_decode_stream(stream, chunk=13)
    assert c_codes.count(1) == parser.frames == 500
    assert all(code in (1, 2) for code in c_codes)
    assert parser.corrupt == 0


def test_decoder_under_address_and_undefined_sanitizers():
    harness = _write_source("td_proto_harness.c", HARNESS_C)
    exe = firmware.compile_host([*SOURCES, harness], include_dirs=[PROTO_DIR], shared=False, sanitize=True,
                    defines={"TD_TEST_MAIN": 1}, optimize="-O1")
    rng = random.Random(15)
    pieces, expected = [], []
    for i in range(1500):
        frame = P.random_frame(rng)
        run = P.encode(frame)[1:-1]
        if i % 3 == 0:
            run = _corrupt(run, rng)
        pieces.append(b"\x00" + run + b"\x00")
    pieces.append(bytes(rng.randrange(256) for _ in range(20000)))  # raw noise
    pieces.append(b"\x01" + b"\x05" * 3000 + b"\x00")  # a run far longer than any frame
    stream = b"".join(pieces)
    proc = subprocess.run([str(exe)], input=stream, capture_output=True, timeout=60)
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]
    assert b"runtime error" not in proc.stderr and b"AddressSanitizer" not in proc.stderr
    lines = proc.stdout.decode().splitlines()
    parser, items = py_decode_stream(stream)
    py = []
    for it in items:
        if isinstance(it, P.Corrupt):
            py.append(str(int(it.error)))
        elif not isinstance(it, P.TextLine):
            py.append("1 " + P.encode(it).hex())
    assert [ln for ln in lines if ln != "2"] == py
    assert "-1" in lines  # the overlong run was reported as an overflow


ARM_FLAGS = ["-std=c99", "-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16",
             "-O2", "-Wall", "-Wextra", "-Werror", "-Wshadow", "-Wstrict-prototypes", "-Wconversion"]


@pytest.mark.skipif(shutil.which("arm-none-eabi-gcc") is None, reason="arm-none-eabi-gcc not installed")
def test_builds_warning_free_for_cortex_m4(tmp_path):
    for src in SOURCES:
        out = tmp_path / (src.stem + ".o")
        proc = subprocess.run(["arm-none-eabi-gcc", *ARM_FLAGS, "-c", str(src), "-o", str(out)],
                              capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
        assert out.stat().st_size > 0


def _libfuzzer_available(tmp_path: Path) -> bool:
    if shutil.which("clang") is None:
        return False
    probe = tmp_path / "probe.c"
    probe.write_text("#include <stdint.h>\n#include <stddef.h>\n"
                     "int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) { (void)d; (void)n; return 0; }\n")
    proc = subprocess.run(["clang", "-fsanitize=fuzzer,address,undefined", str(probe), "-o",
                           str(tmp_path / "probe")], capture_output=True)
    return proc.returncode == 0


def test_libfuzzer_decoder_few_seconds(tmp_path):
    if not _libfuzzer_available(tmp_path):
        pytest.skip("clang with libFuzzer runtime not available (Debian: libclang-rt-14-dev)")
    target = _write_source("td_proto_fuzz.c", FUZZ_C)
    exe = firmware.compile_host([*SOURCES, target], include_dirs=[PROTO_DIR], shared=False, compiler="clang",
                    optimize="-O1", extra_flags=["-g", "-fsanitize=fuzzer,address,undefined",
                                                 "-fno-sanitize-recover=all"])
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    rng = random.Random(16)
    for i, t in enumerate(P.FrameType):
        (corpus / f"seed{i}").write_bytes(P.encode(P.random_frame(rng, t)) + b"log line\n")
    # and a frame of an older version, whose shorter layout the parser reads too
    hello = bytearray(P.encode_packet(P.random_frame(rng, P.FrameType.HELLO))[:-16])
    hello[1] = P.VERSION_3
    hello += zlib.crc32(bytes(hello)).to_bytes(4, "little")
    (corpus / "seed_hello_v3").write_bytes(b"\x00" + P.cobs_encode(bytes(hello)) + b"\x00")
    # ASan's allocator and libFuzzer's corpus passed 2 GB of RSS within 4 s on a loaded CI
    # machine: the default limit stopped a healthy run as "out-of-memory".
    proc = subprocess.run([str(exe), "-max_total_time=4", "-max_len=2048", "-print_final_stats=1",
                           "-rss_limit_mb=8192", str(corpus)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs = [ln for ln in proc.stderr.splitlines() if ln.startswith("stat::number_of_executed_units")]
    assert runs and int(runs[0].split(":")[-1]) > 10_000
