"""read_wav on the WAV layouts recorders write: WAVE_FORMAT_EXTENSIBLE (sox, many recorders
and editors) holds the same 16-bit integer PCM as the plain format and is read the same;
its float or cut forms are refused in one line."""

from __future__ import annotations

import struct
import wave

import numpy as np
import pytest

from tinydrift.data.wavfolder import read_wav
from tinydrift.errors import TinydriftError

PCM_GUID_TAIL = bytes.fromhex("000000001000800000aa00389b71")


def extensible(path, samples: np.ndarray, *, sub_format: int = 1, bits: int = 16, cut: int = 0):
    """A WAVE_FORMAT_EXTENSIBLE file (fmt chunk of 40 bytes, a fact-less data chunk), its data
    `cut` bytes short of what the header announces."""
    data = samples.tobytes()
    block = bits // 8
    fmt = struct.pack("<HHIIHHHHI", 0xFFFE, 1, 16000, 16000 * block, block, bits, 22, bits, 4)
    fmt += struct.pack("<H", sub_format) + PCM_GUID_TAIL
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", len(data)) + data
    path.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body[:len(body) - cut])
    return path


def test_extensible_pcm_reads_as_the_plain_format_does(tmp_path):
    samples = np.random.default_rng(0).integers(-32768, 32768, 4001).astype("<i2")
    plain = tmp_path / "plain.wav"
    with wave.open(str(plain), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(samples.tobytes())
    ext = read_wav(extensible(tmp_path / "ext.wav", samples), 16000)
    assert ext.dtype == np.int16 and np.array_equal(ext, samples) and np.array_equal(ext, read_wav(plain, 16000))


@pytest.mark.parametrize("case, message", [
    ("float", "not a readable WAV file (extensible format with sub-format 3, not integer PCM); convert it to 16-bit"),
    ("cut", "the header announces 4001 frames of 2 bytes but the data holds 7902 bytes"),
    ("bits", "32-bit samples; convert it to 16-bit integer PCM WAV"),
])
def test_extensible_files_it_cannot_read_are_named_in_one_line(tmp_path, case, message):
    samples = np.zeros(4001, "<i2")
    if case == "float":
        path = extensible(tmp_path / "f.wav", np.zeros(4001, "<f4"), sub_format=3, bits=32)
    elif case == "cut":
        path = extensible(tmp_path / "c.wav", samples, cut=100)
    else:
        path = extensible(tmp_path / "b.wav", np.zeros(4001, "<i4"), bits=32)
    with pytest.raises(TinydriftError) as error:
        read_wav(path, 16000)
    assert message in str(error.value) and "\n" not in str(error.value)


@pytest.mark.parametrize("rate, channels, width", [(16000, 1, 1), (16000, 2, 2), (8000, 1, 2), (44100, 2, 4)])
def test_a_wav_it_cannot_take_is_refused_naming_the_layout_it_takes(tmp_path, rate, channels, width):
    """The remedy once was a sox command line: tinydrift does not depend on sox (nor converts
    audio itself), and each line named only the one property that failed, so a stereo 8-bit
    44.1 kHz file took three conversions. Now it names the whole layout, and no tool."""
    path = tmp_path / "in.wav"
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(width)
        w.setframerate(rate)
        w.writeframes(bytes(400 * channels * width))
    for needed_by in (None, "the wake-word front end"):
        with pytest.raises(TinydriftError) as error:
            read_wav(path, 16000, needed_by=needed_by)
        assert "16-bit integer PCM WAV, mono, 16000 Hz" in str(error.value) and "sox" not in str(error.value)


def test_a_wav_the_file_system_refuses_is_not_called_the_wrong_format(tmp_path):
    """A read the file system refused (here a folder named like a WAV; a file without read
    permission alike) was "not a readable WAV file ...; convert it": the wrong remedy."""
    path = tmp_path / "take1.wav"
    path.mkdir()
    with pytest.raises(TinydriftError) as error:
        read_wav(path, 16000)
    assert str(error.value) == f"{path}: cannot be read (Is a directory); make it readable or leave it out"


@pytest.mark.parametrize("announced", [0xFFFFFFFF, 0x7FFFFFFF])
def test_a_wav_written_as_a_stream_is_read_to_its_end(tmp_path, announced):
    """arecord and ffmpeg writing into a pipe leave a placeholder data size (they cannot go
    back to fix it): such a file was "truncated or damaged; record or convert it again"."""
    import struct

    samples = (np.arange(1601) % 200 - 100).astype("<i2")
    fmt = struct.pack("<HHIIHH", 1, 1, 16000, 32000, 2, 16)
    body = (b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", announced)
            + samples.tobytes() + b"\x01")  # and a byte of a frame cut off
    path = tmp_path / "piped.wav"
    path.write_bytes(b"RIFF" + struct.pack("<I", 0xFFFFFFFF) + body)
    assert np.array_equal(read_wav(path, 16000), samples)


@pytest.mark.parametrize("riff_size, data_size", [(0, 0), (0, 3202), (3238, 0)])
def test_a_wav_whose_streaming_writer_left_zero_sizes_is_read_to_its_end(tmp_path, riff_size, data_size):
    """Other writers into a pipe leave the sizes 0, not a placeholder: such a file was "not a
    WAVE file", though it says RIFF/WAVE. A zero data size with no bytes after it is empty."""
    import struct

    samples = (np.arange(1601) % 200 - 100).astype("<i2")
    fmt = struct.pack("<HHIIHH", 1, 1, 16000, 32000, 2, 16)
    head = b"RIFF" + struct.pack("<I", riff_size) + b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data"
    path = tmp_path / "zeros.wav"
    path.write_bytes(head + struct.pack("<I", data_size) + samples.tobytes())
    assert np.array_equal(read_wav(path, 16000), samples)
    path.write_bytes(head + struct.pack("<I", 0))
    with pytest.raises(TinydriftError, match="a WAV file with no samples"):
        read_wav(path, 16000)
