"""The CLI's parameter types: every option value is checked here, before a command starts
work, and refused in one click usage line naming the option, the value and the remedy.

Paths: existing inputs (a file, a folder, either), outputs (a file or a folder that can be
written: its nearest existing ancestor is a writable folder), a firmware image (ELF) and
raw PCM audio. Numbers: integer and finite float ranges (NaN and infinities refused).
Serial URLs: pyserial's schemes, with HOST:PORT checked where the scheme has one.
"""

from __future__ import annotations

import math
import os
import re
import struct
import tempfile
from pathlib import Path
from typing import Callable

import click

from tinydrift.data.npzfile import is_zip
from tinydrift.errors import TinydriftError
from tinydrift.fleet.envelope import check_fleet_name
from tinydrift.fleet.mqtt import COLLECTOR_PREFIX_MAX_BYTES, BrokerUrl, check_client_id
from tinydrift.modeldir import C_NAME

ELF_MAGIC = b"\x7fELF"
PCM_SAMPLE_BYTES = 2  # 16-bit little-endian mono: the emulated board's microphone file
# pyserial's URL handlers (serial/urlhandler/protocol_*.py)
SERIAL_SCHEMES = ("socket", "rfc2217", "loop", "spy", "hwgrep", "alt", "cp2110")
HOST_PORT_SCHEMES = ("socket", "rfc2217")
SERIAL_FORMS = "socket://HOST:PORT, rfc2217://HOST:PORT, or a device path such as /dev/ttyACM0"


_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")


class _PathType(click.ParamType):
    """A path checked by `problem(path) -> reason or None`; the reason becomes the usage error."""

    def __init__(self, name: str, problem: Callable[[Path], str | None]) -> None:
        self.name = name
        self._problem = problem

    def convert(self, value, param, ctx) -> Path:
        if isinstance(value, str) and not value.strip():
            self.fail("an empty path names nothing: give the path (. for this folder)", param, ctx)
        if isinstance(value, str) and _URL.match(value):
            from tinydrift.fleet.store import shown_database

            # Path() would fold the // and name a file that is not there
            fleet = (" (a fleet's PostgreSQL database is shown by `tinydrift fleet serve --db URL`)"
                     if value.lower().startswith(("postgresql:", "postgres:")) else "")
            self.fail(f"{shown_database(value)!r} is a URL, not a path: give a {self.name} on this machine{fleet}",
                      param, ctx)
        path = Path(value)
        reason = self._problem(path)
        if reason:
            self.fail(f"{str(path)!r} {reason}", param, ctx)
        return path


def _missing(path: Path, what: str) -> str | None:
    if not path.exists():
        return f"does not exist: give an existing {what}"
    return None


def _unreadable(path: Path) -> str | None:
    if not os.access(path, os.R_OK):
        return "cannot be read (permissions): make it readable or give another"
    return None


def _input_file(what: str, content: Callable[[Path], str | None] | None = None):
    def problem(path: Path) -> str | None:
        if reason := _missing(path, what):
            return reason
        if path.is_dir():
            return f"is a folder: give a {what}"
        if not path.is_file():
            return f"is not a regular file (a device or a pipe): give a {what}"
        return _unreadable(path) or (content(path) if content else None)

    return problem


def _input_folder(what: str):
    def problem(path: Path) -> str | None:
        if reason := _missing(path, what):
            return reason
        if not path.is_dir():
            return f"is a file, not a folder: give a {what}"
        return _unreadable(path)

    return problem


def _input_file_or_folder(what: str):
    def problem(path: Path) -> str | None:
        if reason := _missing(path, what):
            return reason
        if not (path.is_dir() or path.is_file()):
            return f"is not a regular file nor a folder: give a {what}"
        return _unreadable(path)

    return problem


def _cannot_create(path: Path) -> str | None:
    """Why `path` cannot be made: its nearest existing ancestor must be a writable folder
    (folders below it are made on the way). Unlike atomic.check_writable, which must leave
    the folders of an export it refuses untouched, this tries a folder there: the path is new,
    so its ancestor changes anyway, and only trying shows root that /proc takes nothing."""
    for ancestor in path.absolute().parents:
        if ancestor.exists():
            if not ancestor.is_dir():
                return f"cannot be created: {ancestor} is a file, not a folder; choose another path"
            if not os.access(ancestor, os.W_OK | os.X_OK):
                return f"cannot be created: {ancestor} is not writable; choose another path"
            try:  # access() says yes to root everywhere, /proc included: try it
                os.rmdir(tempfile.mkdtemp(prefix=".tinydrift-probe-", dir=ancestor))
            except OSError as e:
                return f"cannot be created: nothing can be made in {ancestor} ({e.strerror}); choose another path"
            return None
    return None


def _not_writable(path: Path) -> str | None:
    if not os.access(path, os.W_OK):
        return "is not writable: choose another path"
    return None


def _output_file(path: Path) -> str | None:
    if path.is_dir():
        return "is a folder: give a file name"
    if path.exists():
        # An atomic write replaces the path: never a device (/dev/null) or a pipe.
        return "is not a regular file: give a file name" if not path.is_file() else _not_writable(path)
    return _cannot_create(path)


def _output_folder(path: Path) -> str | None:
    if path.exists():
        return "is a file, not a folder: give a folder" if not path.is_dir() else _not_writable(path)
    return _cannot_create(path)


def _output_set(path: Path) -> str | None:
    """A set written as one .npz file, or as a new (or empty) folder of class folders."""
    if path.suffix == ".npz":
        return _output_file(path)
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        return "already exists and is not an empty folder: give a new folder (or a .npz file)"
    return _output_folder(path)


EM_ARM = 40  # the ELF header's e_machine of 32-bit ARM, Cortex-M's


ELF32_HEADER = struct.Struct("<16sHHIIIIIHHHHHH")
ELF32_PROGRAM_HEADER = struct.Struct("<IIIIIIII")
PT_LOAD = 1


def _not_elf(path: Path) -> str | None:
    with open(path, "rb") as f:
        data = f.read()
    if data[:len(ELF_MAGIC)] != ELF_MAGIC:
        return "is not an ELF firmware image: give the firmware.elf that `pio run` builds"
    if len(data) < 20 or data[4] != 1 or data[5] != 1 or int.from_bytes(data[18:20], "little") != EM_ARM:
        return ("is an ELF image for another CPU (not 32-bit little-endian ARM): give the firmware.elf that `pio run` "
                "builds for a Cortex-M board")
    return _cut_elf(data)


def _cut_elf(data: bytes) -> str | None:
    """Why a 32-bit ARM ELF image cannot be loaded whole: a copy cut short loses the code its
    program headers point at, and the emulated CPU then locks up as if the firmware were at
    fault."""
    cut = "is cut short (its program headers point past its end): copy or build the firmware.elf again"
    if len(data) < ELF32_HEADER.size:
        return cut
    fields = ELF32_HEADER.unpack_from(data)
    phoff, phentsize, phnum = fields[5], fields[9], fields[10]
    if phentsize < ELF32_PROGRAM_HEADER.size or phoff + phnum * phentsize > len(data):
        return cut
    for k in range(phnum):
        kind, offset, _vaddr, _paddr, filesz = ELF32_PROGRAM_HEADER.unpack_from(data, phoff + k * phentsize)[:5]
        if kind == PT_LOAD and offset + filesz > len(data):
            return cut
    return None


def is_wav(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(4) == b"RIFF"


# The first bytes of files that are surely no raw PCM, and what they are (three bytes or more:
# a recording's first samples match one by chance about once in 16 million).
_FORMATS = ((b"\x89PNG\r\n\x1a\n", "a PNG image"), (b"\xff\xd8\xff", "a JPEG image"), (b"\x7fELF", "an ELF program"),
            (b"SQLite format 3\x00", "an SQLite database"), (b"\x1f\x8b\x08", "a gzip archive"),
            (b"ID3", "an MP3 file"), (b"fLaC", "a FLAC file"), (b"OggS", "an Ogg file"))


_TEXT_BYTES = frozenset(range(0x20, 0x7F)) | {0x09, 0x0A, 0x0D}


def _known_format(path: Path) -> str | None:
    try:
        with open(path, "rb") as f:
            head = f.read(4096)
    except OSError:
        return None
    if head[4:8] == b"TFL3":
        return "a TFLite model"
    if len(head) >= 256 and all(b in _TEXT_BYTES for b in head) and len(set(head)) >= 16:
        # 16-bit samples whose every byte is printable, over 128 samples and not one value
        # held (a stuck sensor's file may be all "AAAA"), are not a recording
        return "a text file"
    return next((name for magic, name in _FORMATS if head.startswith(magic)), None)


def _not_pcm(path: Path) -> str | None:
    if is_wav(path):
        return None  # its reader checks its format
    if is_zip(path):  # a clip set: its archive would be played as noise
        return "is a .npz archive, not audio: play a clip set with `tinydrift replay`"
    kind = _known_format(path)
    if kind in ("an MP3 file", "a FLAC file", "an Ogg file"):  # compressed audio: it would be played as noise
        return (f"is {kind}, compressed audio the board's microphone file cannot hold: convert it to a 16 kHz mono "
                "16-bit WAV (e.g. `ffmpeg -i FILE -ar 16000 -ac 1 -sample_fmt s16 out.wav`)")
    if kind is not None:  # it too would be played as noise
        return f"is {kind}, not audio: give raw 16 kHz 16-bit PCM or a 16 kHz mono 16-bit WAV"
    if path.suffix.lower() == ".wav":  # a damaged WAV would be played as noise
        return ("is named .wav but is no WAV file (no RIFF header): give a 16 kHz mono 16-bit WAV, or raw "
                "little-endian int16 PCM under another name (e.g. .raw)")
    size = path.stat().st_size
    if size == 0:
        return "is empty: give raw 16 kHz 16-bit PCM audio"
    if size % PCM_SAMPLE_BYTES:
        return (f"holds {size} bytes, not a whole number of 16-bit samples: it is truncated or not raw "
                "16-bit PCM")
    return None


def input_file(what: str = "file") -> click.ParamType:
    return _PathType("file", _input_file(what))


def input_folder(what: str = "folder") -> click.ParamType:
    return _PathType("folder", _input_folder(what))


def input_path(what: str = "file or folder") -> click.ParamType:
    return _PathType("path", _input_file_or_folder(what))


OUTPUT_FILE = _PathType("file", _output_file)
ANY_FILE = _PathType("file", lambda path: None)  # checked where it is used (monitor's --db: read, or made)
OUTPUT_FOLDER = _PathType("folder", _output_folder)
OUTPUT_SET = _PathType("path", _output_set)
FIRMWARE_IMAGE = _PathType("elf", _input_file("firmware image (.elf)", _not_elf))
PCM_FILE = _PathType("file", _input_file("raw PCM or WAV audio file", _not_pcm))
MODEL_FOLDER = input_folder("model folder made by `tinydrift export` (e.g. models/kws; a microWakeWord "
                            "model such as okay_nabu: see `tinydrift wakeword --help`)")
DATA_FOLDER = input_folder("data set folder made by `tinydrift data kws` or `tinydrift data plant`")
# export and demo also take a user's own reference data
OWN_DATA_FOLDER = input_folder("data set folder made by `tinydrift data kws` or `tinydrift data plant`, or of your own "
                               "class folders (CLASS/*.jpg|png, sub-folders read too; WORD/*.wav)")


def header_file(stdout: bool = False) -> click.ParamType:
    """A C header to write (`-`: standard output, where `stdout`): its name must end in .h,
    for a slip of the hand (`-o run.db`) once replaced a capture database by C."""
    def problem(path: Path) -> str | None:
        if stdout and str(path) == "-":
            return None
        if path.suffix != ".h":
            return "is no C header's name: give one ending in .h"
        return _output_file(path)

    return _PathType("file", problem)


class FiniteFloat(click.FloatRange):
    """click.FloatRange that also refuses NaN and infinities (NaN passes every comparison)."""

    name = "number"

    def convert(self, value, param, ctx):
        number = click.FLOAT.convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return super().convert(number, param, ctx)

    def _describe_range(self) -> str:
        # click's own shows an unbounded range as "x<=None"
        return super()._describe_range() if self.min is not None or self.max is not None else "any finite number"


class SerialUrl(click.ParamType):
    """A pyserial URL or a device path. A path is not required to exist yet: a board that is
    being plugged in is the capture's to wait for."""

    name = "url"

    def convert(self, value, param, ctx) -> str:
        value = str(value).strip()
        if not value:
            self.fail(f"empty: give {SERIAL_FORMS}", param, ctx)
        if "://" not in value:
            return value
        scheme, _, rest = value.partition("://")
        if scheme.lower() not in SERIAL_SCHEMES:
            self.fail(f"{value!r}: unknown scheme {scheme!r}; give {SERIAL_FORMS}", param, ctx)
        if scheme.lower() in HOST_PORT_SCHEMES:
            host, _, port = rest.split("?", 1)[0].rpartition(":")
            if not host or not port.isdigit() or not 1 <= int(port) <= 65535:
                self.fail(f"{value!r}: expected {scheme}://HOST:PORT with PORT in 1..65535", param, ctx)
        return value


class CName(click.ParamType):
    """A model's C name: it becomes td_<name>_invoke() and file names, so nothing else passes."""

    name = "name"

    # the longest file named after it, td_monitor_config_NAME.h, within a file name's 255 bytes
    # while it is written (atomic.py's temporary name: .NAME.XXXXXXXX.tmp)
    MAX_LENGTH = 255 - len(".td_monitor_config_.h.XXXXXXXX.tmp")

    def convert(self, value, param, ctx) -> str:
        if not C_NAME.fullmatch(str(value)):
            self.fail(f"{value!r} is not usable in C names: use lower-case letters, digits and '_', "
                      "starting with a letter", param, ctx)
        if len(str(value)) > self.MAX_LENGTH:  # once "File name too long" at the first write, its folder left made
            self.fail(f"a name of {len(str(value)):,} characters ({str(value)[:16]}...) is too long for the file names "
                      f"made from it (td_monitor_config_NAME.h): give at most {self.MAX_LENGTH}", param, ctx)
        return str(value)


class _Checked(click.ParamType):
    """A value the library's own check accepts; its TinydriftError becomes the usage error."""

    def __init__(self, name: str, check: Callable[[str], object]) -> None:
        self.name = name
        self._check = check

    def convert(self, value, param, ctx) -> str:
        try:
            self._check(str(value))
        except TinydriftError as exc:
            self.fail(str(exc), param, ctx)
        return str(value)


def _database_url(value: str) -> None:
    from urllib.parse import urlsplit

    parts = urlsplit(value)
    try:
        port = parts.port  # raises on a port that is not a number in 0..65535
    except ValueError:
        port = 0
    if (parts.scheme not in ("postgresql", "postgres") or not parts.hostname or not parts.path.strip("/")
            or port == 0):
        from tinydrift.fleet.store import shown_database

        raise TinydriftError(f"{shown_database(value)!r} is not a PostgreSQL URL: give "
                             "postgresql://USER@HOST[:PORT]/DATABASE "
                             "(PORT 1-65535)")


def _wakeword_change(value: str) -> None:
    from tinydrift.pipeline.wakeword_demo import microphone_change

    microphone_change(value)


SERIAL_URL = SerialUrl()
C_NAME_PARAM = CName()
BROKER_URL = _Checked("url", lambda v: BrokerUrl.parse(v))
DATABASE_URL = _Checked("url", _database_url)
FLEET_NAME = _Checked("name", check_fleet_name)
GROUP_NAME = _Checked("name", lambda value: check_fleet_name(value, "group name"))  # a shared subscription's
CLIENT_ID = _Checked("id", check_client_id)
COLLECTOR_NAME = _Checked("name", lambda v: check_client_id(v, "collector name", COLLECTOR_PREFIX_MAX_BYTES))
WAKEWORD_CHANGE = _Checked("scenario", _wakeword_change)
# clips, epochs, frames, inferences...; at most 10^12, beyond which numpy's sizes overflow
# (a ValueError, not the MemoryError the CLI words) long before anything would run
COUNT = click.IntRange(min=1, max=10**12)
SEED = click.IntRange(min=0)  # numpy's generators refuse negative seeds
SECONDS = FiniteFloat(min=0, min_open=True)
BAUD = click.IntRange(min=1)
# Inferences between false alarms: below 10 calibration has nothing to hold; 10^12 are 950
# years at 30 ms an inference.
TARGET_ARL0 = FiniteFloat(min=10, max=1e12)


def commission_option(f):
    """--commission, as `export`, `drift calibrate` and `drift heldout` take it."""
    from tinydrift.monitor.calibrate import DEFAULT_COMMISSION

    return click.option("--commission", "commission_n", type=click.IntRange(0, 1024), default=DEFAULT_COMMISSION,
                        show_default=True,
                        help="Inferences after each reset in which the device learns its own population's reference "
                             "before judging change against it; 0 judges against the training reference.")(f)


def speaker_run_option(f):
    """--speaker-run, as `export`, `drift calibrate` and `drift heldout` take it."""
    from tinydrift.monitor.calibrate import DEFAULT_DATA_SESSION

    return click.option("--speaker-run", type=click.IntRange(1, 10_000), default=None, metavar="N",
                        help="Inferences one speaker holds in a row where the device is deployed: every score is "
                             f"calibrated on such runs. Default: the input scores on runs of {DEFAULT_DATA_SESSION}, "
                             "the output scores on the groups as the samples hold them.")(f)
