"""Loaders for real recordings: the Speech Commands folder layout and FSDD.

Both give a ClipSet of 1 s, 16 kHz int16 clips in the 12-class convention. A WAV of another
sample rate is refused unless the loader knows its rate (FSDD: 8 kHz, resampled ×2).
"""

from __future__ import annotations

import csv
import io
import re
import struct
import wave
from pathlib import Path

import numpy as np

from tinydrift.errors import TinydriftError
from tinydrift.frontend import CLIP_SAMPLES, SAMPLE_RATE
from tinydrift.data.clipset import ClipSet, fit_to_clip
from tinydrift.data.labels import LABELS, label_index

FSDD_RATE = 8000
FSDD_NAME = re.compile(r"[0-9]_[^_]+_[0-9]+")  # DIGIT_SPEAKER_INDEX, as recordings/ names them
FSDD_DIGITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


def write_wav(path: Path, pcm: np.ndarray, rate: int = SAMPLE_RATE) -> None:
    """int16 samples as a mono 16-bit WAV file: what read_wav reads back."""
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(np.asarray(pcm, dtype="<i2").tobytes())


def wav_files(folder: Path, pattern: str = "*") -> list[Path]:
    """The WAV files of `folder` whose names match `pattern` (a glob without the suffix,
    "**/*" for every sub-folder), .wav or .WAV alike (recorders write either), sorted; hidden
    files and folders left out (macOS copies leave a "._name.wav" of metadata beside each)."""
    folder = Path(folder)
    return sorted(p for p in folder.glob(pattern) if p.suffix.lower() == ".wav" and p.is_file()
                  and not any(part.startswith(".") for part in p.relative_to(folder).parts))


def word_folders_note(*sets: ClipSet) -> str | None:
    """What Speech Commands word folders became, where the model's 12 classes do not name them
    all: "(word folders counted as _unknown_, ...: lights 500, music 500; no clips of up, down)".
    None for sets of other sources (`tinydrift data kws`, FSDD)."""
    sets = [s for s in sets if "word" in s.domain and "speech_commands" in set(s.domain.get("source", ()))]
    if not sets:
        return None
    names, counts = np.unique(np.concatenate([s.domain["word"] for s in sets]), return_counts=True)
    unknown = [f"{w} {n}" for w, n in zip(names, counts) if label_index(str(w)) == 1 and w != "_unknown_"]
    labels = np.concatenate([s.labels for s in sets])
    missing = [label for k, label in enumerate(LABELS) if not np.any(labels == k)]
    parts = ([f"word folders counted as _unknown_, not among the model's classes: {', '.join(unknown)}"] if unknown
             else []) + ([f"no clips of {', '.join(missing)}"] if missing else [])
    return f"({'; '.join(parts)})" if parts else None


WAVE_FORMAT_EXTENSIBLE = 0xFFFE
# What the wave module's "unknown format" means, in words a user can act on.
WAVE_FORMATS = {"unknown format: 3": "its samples are floating point",
                "unknown format: 6": "its samples are A-law", "unknown format: 7": "its samples are mu-law",
                "unknown format: 2": "its samples are ADPCM-compressed", "unknown format: 85": "it is MP3 in a WAV"}


def _read_extensible(raw: bytes) -> tuple[int, int, int, int, bytes, bytes]:
    """What wave.open gives (rate, sample width, channels, frames, their bytes, the bytes past
    the last whole frame) for the bytes of a WAVE_FORMAT_EXTENSIBLE file of integer PCM (sox and
    many recorders write those; Python's wave module reads them from 3.12 only). wave.Error if
    its sub-format is not integer PCM."""
    if raw[:4] != b"RIFF" or raw[8:12] != b"WAVE":
        raise wave.Error("not a RIFF WAVE file")
    chunks, at = {}, 12
    while at + 8 <= len(raw):
        name, size = raw[at:at + 4], struct.unpack("<I", raw[at + 4:at + 8])[0]
        chunks.setdefault(name, (size, raw[at + 8:at + 8 + size]))
        at += 8 + size + (size & 1)
    fmt = chunks.get(b"fmt ", (0, b""))[1]
    if len(fmt) < 40 or b"data" not in chunks:
        raise EOFError("no whole format or data chunk")
    _, channels, rate, _, block, bits = struct.unpack("<HHIIHH", fmt[:16])
    sub_format = struct.unpack("<H", fmt[24:26])[0]
    if sub_format != 1 or channels < 1 or block != channels * ((bits + 7) // 8):
        raise wave.Error(f"extensible format with sub-format {sub_format}, not integer PCM")
    announced, data = chunks[b"data"]  # a cut file holds less than its header announces
    whole = min(len(data), announced) // block * block
    return rate, block // channels, channels, announced // block, data[:whole], data[whole:]


def wav_layout(rate: int) -> str:
    """The one WAV layout read_wav takes, as its refusals name it: in full, so one conversion
    serves, and with no tool's command line (tinydrift converts no audio and depends on no
    converter; any audio editor or converter writes this)."""
    return f"16-bit integer PCM WAV, mono, {rate} Hz"


# A data chunk announced this large (2 GiB, 18 hours at 16 kHz) is a streaming writer's
# placeholder (0xFFFFFFFF, or 0x7FFFFFFF-ish), not a size.
STREAMED_DATA_SIZE = 0x7FFF0000


def _zero_sizes_as_streamed(path: Path) -> bytes | None:
    """The file's bytes with a RIFF or data size of 0 made the streaming placeholder, where a
    writer into a pipe left zeros for sizes it could not come back to fix (the data runs to the
    file's end); None for any other file (read as it is)."""
    with open(path, "rb") as f:
        head = f.read(1 << 16)  # the header's chunks come first; the rest is read only to patch
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return None
        zeros, at = ([4] if struct.unpack("<I", head[4:8])[0] == 0 else []), 12
        while at + 8 <= len(head):
            name, size = head[at:at + 4], struct.unpack("<I", head[at + 4:at + 8])[0]
            if name == b"data":
                zeros += [at + 4] if size == 0 and len(head) > at + 8 else []
                break
            at += 8 + size + (size & 1)
        if not zeros:
            return None
        raw = bytearray(head + f.read())
    for at in zeros:
        raw[at:at + 4] = b"\xff\xff\xff\xff"
    return bytes(raw)


def read_wav(path: Path, expected_rate: int, *, needed_by: str | None = None) -> np.ndarray:
    """Mono 16-bit PCM samples of a WAV file at `expected_rate`, or a TinydriftError saying why not.

    A device hears one microphone, so a file of several channels is refused rather than
    read as one of them (which one, or their mix, is the user's choice). With `needed_by`
    (what reads the samples, e.g. "the wake-word front end"), anything but mono 16-bit PCM at
    `expected_rate` is refused in one line that says what the file is and what `needed_by` needs.
    """
    try:
        raw = _zero_sizes_as_streamed(path)
        source = str(path) if raw is None else io.BytesIO(raw)
        try:
            with wave.open(source, "rb") as w:
                rate, width, channels, n = w.getframerate(), w.getsampwidth(), w.getnchannels(), w.getnframes()
                data = w.readframes(n)
                # whatever the data chunk holds past its last whole frame: a cut or padded file
                partial_frame = w.readframes(1)
        except wave.Error as e:
            if f"unknown format: {WAVE_FORMAT_EXTENSIBLE}" not in str(e):
                raise
            rate, width, channels, n, data, partial_frame = _read_extensible(raw or Path(path).read_bytes())
    except EOFError:
        raise TinydriftError(f"{path}: empty or truncated: the file ends inside its WAV header; "
                             "record or convert it again") from None
    except OSError as e:  # the file system's refusal (permissions, a folder by that name), not the file's format
        raise TinydriftError(f"{path}: cannot be read ({e.strerror or e}); make it readable or leave it out") from None
    except wave.Error as e:
        # wave reads integer PCM only: float (format 3) or compressed WAVs land here
        what = WAVE_FORMATS.get(str(e), str(e))
        raise TinydriftError(f"{path}: not a readable WAV file ({what}); convert it to {wav_layout(expected_rate)}") from None
    frame_bytes = width * channels
    held = len(data) + len(partial_frame)
    if n * frame_bytes >= STREAMED_DATA_SIZE and held < n * frame_bytes:
        # written as a stream (arecord, ffmpeg into a pipe): the header's size is a placeholder
        # no one came back to fix, and the data is what the file holds, in whole frames
        n = held // frame_bytes
        data, partial_frame = (data + partial_frame)[:n * frame_bytes], b""
    if len(data) != n * frame_bytes or partial_frame:
        shape = ("not a whole number of frames" if held % frame_bytes else
                 f"{held // frame_bytes} frames, {'fewer' if held < n * frame_bytes else 'more'} than announced")
        raise TinydriftError(f"{path}: the header announces {n} frames of {frame_bytes} bytes but the data holds "
                             f"{held} bytes, {shape}: the file is truncated or damaged; record or convert it again")
    if n == 0:
        raise TinydriftError(f"{path}: a WAV file with no samples; remove it or record it again")
    if needed_by is not None and (rate, channels, width) != (expected_rate, 1, 2):
        layout = {1: "mono", 2: "stereo"}.get(channels, f"{channels}-channel")
        raise TinydriftError(f"{path} is {rate} Hz {layout} {8 * width}-bit; {needed_by} needs "
                             f"{wav_layout(expected_rate)}: convert it")
    if channels != 1:
        raise TinydriftError(f"{path}: {channels} channels; tinydrift reads mono, as a device's one microphone hears: "
                             f"convert it to {wav_layout(expected_rate)}, its channels mixed down or the one you mean kept")
    if width != 2:
        raise TinydriftError(f"{path}: {8 * width}-bit samples; convert it to {wav_layout(expected_rate)}")
    if rate != expected_rate:
        raise TinydriftError(f"{path}: {rate} Hz; convert it to {wav_layout(expected_rate)}")
    return np.frombuffer(data, dtype="<i2").copy()


def centre_in_clip(samples: np.ndarray) -> np.ndarray:
    """Pad a short recording symmetrically to 1 s, or keep the middle second of a long one."""
    return fit_to_clip(samples, (CLIP_SAMPLES - len(samples)) // 2)


def load_speech_commands(folder: str | Path) -> ClipSet:
    """A Speech Commands folder: one sub-folder per word; other words become `_unknown_`.

    `_background_noise_` is skipped (it holds long noise recordings, not clips).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise TinydriftError(f"{folder}: no such folder")
    files = [p for p in wav_files(folder, "*/*") if not p.parent.name.startswith("_background")]
    if not files:
        raise TinydriftError(f"{folder}: no WAV files in word sub-folders (expected the Speech Commands layout WORD/*.wav)")
    audio, labels, words, speakers, lengths, unreadable = [], [], [], [], [], []
    for path in files:
        try:
            samples = read_wav(path, SAMPLE_RATE)
        except TinydriftError as e:  # every bad file in one message, not one per run
            unreadable.append(str(e).replace(str(path), str(path.relative_to(folder)), 1))
            continue
        lengths.append(len(samples))
        audio.append(centre_in_clip(samples))
        word = path.parent.name
        labels.append(label_index(word))
        words.append(word)
        speakers.append(path.name.split("_nohash_")[0])
    if len(unreadable) == 1:
        raise TinydriftError(f"{folder}/{unreadable[0]}")
    if unreadable:
        shown = "; ".join(unreadable[:3]) + (f"; and {len(unreadable) - 3} more" if len(unreadable) > 3 else "")
        raise TinydriftError(f"{folder}: {len(unreadable)} of {len(files)} WAV files cannot be used: {shown}")
    domain = _real_domain(words, speakers, ["speech_commands"] * len(files), ["unknown"] * len(files))
    domain["samples"] = np.array(lengths, dtype=np.int64)  # before padding or cutting to 1 s
    return ClipSet(audio=np.stack(audio), labels=np.array(labels, dtype=np.int16), domain=domain)


def load_fsdd(folder: str | Path) -> ClipSet:
    """FSDD (`recordings/{digit}_{speaker}_{index}.wav`, 8 kHz): resampled to 16 kHz, padded to 1 s.

    Digits are not keywords, so every clip is `_unknown_`; the speaker's accent comes from
    `speakers.csv` when present.
    """
    from scipy.signal import resample_poly

    folder = Path(folder)
    recordings = folder / "recordings" if (folder / "recordings").is_dir() else folder
    files = wav_files(recordings, "*_*_*")
    if not files:
        raise TinydriftError(f"{folder}: no FSDD recordings (expected recordings/DIGIT_SPEAKER_INDEX.wav)")
    stray = [p.name for p in files if not FSDD_NAME.fullmatch(p.stem)]
    if stray:
        raise TinydriftError(f"{recordings}: {', '.join(stray[:3])}{' ...' if len(stray) > 3 else ''} do not follow "
                             "FSDD's DIGIT_SPEAKER_INDEX.wav (digit 0-9, e.g. 3_jackson_12.wav): move them out")
    accents = _accents(folder / "speakers.csv")
    audio, words, speakers = [], [], []
    for path in files:
        digit, speaker, _ = path.stem.split("_", 2)
        pcm = read_wav(path, FSDD_RATE).astype(np.float64)
        up = np.clip(np.round(resample_poly(pcm, SAMPLE_RATE // FSDD_RATE, 1)), -32768, 32767).astype(np.int16)
        audio.append(centre_in_clip(up))
        words.append(FSDD_DIGITS[int(digit)])
        speakers.append(speaker)
    return ClipSet(
        audio=np.stack(audio),
        labels=np.array([label_index(w) for w in words], dtype=np.int16),
        domain=_real_domain(words, speakers, ["fsdd"] * len(files), [accents.get(s, "unknown") for s in speakers]),
    )


def _accents(speakers_csv: Path) -> dict[str, str]:
    """speaker -> accent from FSDD's speakers.csv (columns speaker, accent), {} without the file."""
    if not speakers_csv.exists():
        return {}
    try:
        with open(speakers_csv, newline="") as f:
            rows = list(csv.DictReader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise TinydriftError(f"{speakers_csv}: not a readable CSV file ({e}); fix or remove it") from e
    if rows and not {"speaker", "accent"} <= set(rows[0]):
        raise TinydriftError(f"{speakers_csv}: expected the columns speaker and accent, found "
                             f"{', '.join(map(str, rows[0]))}; fix or remove it")
    return {row["speaker"]: row["accent"] for row in rows}


def _real_domain(words, speakers, source, accent) -> dict[str, np.ndarray]:
    import zlib

    return {
        "word": np.array(words),
        "speaker": np.array(speakers),
        "source": np.array(source),
        "accent": np.array(accent),
        "group": np.array([zlib.crc32(s.encode()) & 0x7FFFFFFF for s in speakers], dtype=np.int64),
    }


def load_any(path: str | Path) -> ClipSet:
    """A clip set from a tinydrift .npz, a Speech Commands folder or an FSDD folder."""
    path = Path(path)
    if path.suffix == ".npz":
        return ClipSet.load(path)
    if not path.exists():
        raise TinydriftError(f"{path}: no such file or folder")
    if path.is_file():
        raise TinydriftError(f"{path}: a single file; give the folder of word folders it is in (WORD/*.wav: the "
                             "folder names are the labels), an FSDD folder or a clip set (.npz)")
    if (path / "recordings").is_dir() or (path.is_dir() and bool(wav_files(path, "[0-9]_*_*"))):
        return load_fsdd(path)
    return load_speech_commands(path)
