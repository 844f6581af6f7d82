"""The emulated board: tinydrift's firmware on QEMU's mps2-an386 (Cortex-M4F).

The console UART is a TCP server on 127.0.0.1 that QEMU opens with `wait=on`: the board
does not start before the host is connected, so no byte of the boot output is lost, and
QEMU's UART pushes back on the host's writes while the firmware is not reading, so no
input is lost either. The host talks to it through pyserial's `socket://` URL, the same
code that opens /dev/ttyACM0 on a real board. The firmware ends through semihosting
(SYS_EXIT_EXTENDED) and QEMU exits with its code. One pyserial trap: when the peer closes
the socket in the middle of a read(), pyserial raises and drops what that call had
gathered, so read up to a known last line before the firmware exits (or use `run`).

With `icount_shift=0` QEMU counts instructions instead of following the host's clock:
every instruction takes 1 ns of emulated time, so timing no longer depends on the host's
load (boot output is identical to the cycle run after run) and SysTick, which counts the
25 MHz processor clock, advances one cycle per 40 instructions. The firmware's
td_port_cycles() is then an instruction counter: see `instructions_from_cycles`.
"""

from __future__ import annotations

import contextlib
import os
import re
import select
import shutil
import socket
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from tinydrift.child import tied_to_this_process
from tinydrift.errors import TinydriftError
from tinydrift.target import platformio

QEMU = "qemu-system-arm"
MACHINE = "mps2-an386"
SYSCLK_HZ = 25_000_000
# Emulated nanoseconds per SysTick cycle at 25 MHz: the instructions per cycle at shift 0.
NANOSECONDS_PER_CYCLE = 1_000_000_000 // SYSCLK_HZ

_LISTENING = re.compile(rb"waiting for connection on: disconnected:tcp:127\.0\.0\.1:(\d+),server")
STARTUP_TIMEOUT_S = 10.0


def instructions_from_cycles(cycles: int, icount_shift: int = 0) -> int:
    """Instructions executed in `cycles` of td_port_cycles() under `-icount shift=N`.

    Each instruction lasts 2**N ns of emulated time and one cycle 40 ns, so the count is
    exact to within one cycle (40 instructions at shift 0)."""
    return cycles * NANOSECONDS_PER_CYCLE >> icount_shift


# The port's own check (src/echo/): echoes bytes, ESC commands for counters, spins, faults.
ECHO_ENV = "mps2_an386_echo"


def build_firmware(env_name: str = platformio.EMULATED_ENV) -> Path:
    """Build the emulated board's firmware with PlatformIO (offline) and return its ELF:
    the tinydrift app by default, the echo app with `ECHO_ENV`.

    pio is the one build path: an unchanged tree rebuilds in about a second, and the
    flags are those a user gets from `pio run -e mps2_an386`."""
    return platformio.build(env_name)


def semihosting_config(arguments: Sequence[str] = ()) -> str:
    """The value of QEMU's -semihosting-config: on, and `arguments` as the firmware's command
    line (SYS_GET_CMDLINE), after a first word naming the program. QEMU joins them with
    spaces, so none may hold one; a comma is doubled, as QEMU's option syntax wants."""
    config = "enable=on,target=native"
    if arguments:
        for argument in arguments:
            if any(c.isspace() for c in argument):
                raise TinydriftError(f"semihosting argument {argument!r} holds a space: QEMU would split it")
        config += "".join(f",arg={a.replace(',', ',,')}" for a in ("firmware", *arguments))
    return config


def elf_symbols(elf: Path) -> dict[str, int | None]:
    """An image's symbols and their sizes in bytes (arm-none-eabi-nm -S; None for a symbol
    without one, the first of a repeated name). Raises OSError or subprocess.SubprocessError
    when they cannot be read."""
    out = subprocess.run(["arm-none-eabi-nm", "-S", str(elf)], capture_output=True, text=True, check=True,
                         timeout=60).stdout
    symbols: dict[str, int | None] = {}
    for line in out.splitlines():
        fields = line.split()  # "address size type name", or without the size (or the address)
        if len(fields) >= 2:
            symbols.setdefault(fields[-1], int(fields[1], 16) if len(fields) == 4 else None)
    return symbols


def hears_microphone(elf: Path) -> bool | None:
    """Whether the image's app reads the board's microphone (a keyword or wake-word build),
    from its symbols: a camera build has td_summarize_image and no microphone reader. None
    when its symbols cannot be read (no arm-none-eabi-nm, a stripped image)."""
    try:
        names = elf_symbols(elf)
    except (OSError, subprocess.SubprocessError):
        return None
    if "td_port_mic_read" in names:
        return True
    return False if "td_summarize_image" in names else None


def audio_file_argument(path: Path, link_dir: Path) -> str:
    """`audio=PATH` for the emulated board's microphone file."""
    path = Path(path).resolve()
    if not path.is_file():
        raise TinydriftError(f"audio file {path} not found")
    return f"audio={_one_word(path, Path(link_dir) / 'audio.pcm')}"


KEEP_MAGIC = (0x66726474).to_bytes(4, "little")  # what td_app_keep.c's record begins with


def check_keep_file(path: Path) -> Path:
    """`path`, resolved, if it can be the emulated board's keep file: in an existing folder,
    and if it exists, a regular file holding a keep record, a forgotten (all-zero) one or
    nothing yet. Anything else is refused rather than overwritten by the board."""
    if not str(path).strip():
        raise TinydriftError("keep file: an empty path; give the file the board keeps its reference in")
    path = Path(path).resolve()
    if path.is_dir():
        raise TinydriftError(f"keep file {path} is a folder: give a file in it (the board creates the file)")
    if not path.parent.is_dir():
        raise TinydriftError(f"keep file {path}: its folder {path.parent} does not exist; give a file in an existing "
                             "folder (the board creates the file)")
    if path.exists():
        if not path.is_file():
            raise TinydriftError(f"keep file {path} is not a regular file (a pipe or a device): give a file of its own")
        data = path.read_bytes()
        if data[:4] != KEEP_MAGIC and any(data):
            raise TinydriftError(f"keep file {path} holds {len(data):,} bytes that are no board's kept reference, "
                                 "and the board would overwrite them: give a new path, or one an earlier --keep wrote")
    return path


def keep_file_argument(path: Path, link_dir: Path) -> str:
    """`keep=PATH` for the emulated board's storage that outlives a power cycle (what a real
    board keeps in flash: its drift monitor's reference), checked by check_keep_file. The
    board creates the file when it first saves; boot again with the same file for a power
    cycle."""
    return f"keep={_one_word(check_keep_file(path), Path(link_dir) / 'keep.bin')}"


@contextlib.contextmanager
def keep_file_held(path: Path):
    """Holds `path` (created if missing) for one emulated board: two boards on one keep file
    would take each other's reference, as two devices never share a flash page."""
    import fcntl

    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise TinydriftError(f"keep file {path}: another emulated board keeps its reference there now; give "
                                 "each board a file of its own") from None
        yield
    finally:
        os.close(descriptor)


def _one_word(path: Path, link: Path) -> Path:
    """`path`, or where it holds a space, a symbolic link `link` to it: the firmware sees its
    command line split at spaces (`link`'s folder is the caller's, e.g. a temporary one)."""
    if not any(c.isspace() for c in str(path)):
        return path
    link = link.resolve()
    if any(c.isspace() for c in str(link)):
        raise TinydriftError(f"no space-free path to {path}: give a link folder without spaces")
    link.unlink(missing_ok=True)
    link.symlink_to(path)
    return link


def qemu_command(elf: Path, serial: str, *, icount_shift: int | None = None,
                 extra_args: Sequence[str] = (), semihosting_args: Sequence[str] = ()) -> list[str]:
    """The QEMU command line for `elf` with UART0 on the chardev `serial`; `semihosting_args`
    become the firmware's command line (e.g. `audio=PATH`, `stride=8000`, `trace=0`)."""
    qemu = shutil.which(QEMU)
    if qemu is None:
        raise TinydriftError(f"{QEMU} not found: run scripts/setup.sh (it installs qemu-system-arm)")
    command = [
        qemu,
        "-machine", MACHINE,
        "-nographic",
        "-monitor", "none",
        "-semihosting-config", semihosting_config(semihosting_args),
        "-serial", serial,
        "-kernel", str(elf),
    ]  # fmt: skip
    if icount_shift is not None:
        command += ["-icount", f"shift={int(icount_shift)}"]
    return command + list(extra_args)


class StillRunning(TinydriftError):
    """The firmware had not exited when the wait ran out; QEMU was stopped."""


class Emulator:
    """A QEMU process waiting for (or serving) one serial connection at `url`."""

    def __init__(self, process: subprocess.Popen, port: int, elf: Path):
        self.process = process
        self.port = port
        self.url = f"socket://127.0.0.1:{port}"
        self.elf = elf
        self._stderr = bytearray()
        self._stderr_reader = threading.Thread(target=self._drain_stderr, daemon=True)
        self._stderr_reader.start()

    def _drain_stderr(self) -> None:
        assert self.process.stderr is not None
        descriptor = self.process.stderr.fileno()
        for chunk in iter(lambda: os.read(descriptor, 4096), b""):
            self._stderr += chunk

    @property
    def stderr(self) -> str:
        return self._stderr.decode(errors="replace")

    def open_serial(self, timeout: float = 1.0):
        """Connect to the console; the board starts running at this moment."""
        import serial  # pyserial; imported here so `tinydrift --help` stays fast

        return serial.serial_for_url(self.url, timeout=timeout)

    def wait(self, timeout: float | None) -> int:
        """Wait for the firmware to exit (None: for ever); returns its exit code. Kills QEMU
        on timeout (StillRunning)."""
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.close()
            raise StillRunning(
                f"the firmware {self.elf} did not exit within {timeout:.3g} s in QEMU"
            ) from None

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def __enter__(self) -> "Emulator":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def start(elf: Path | None = None, *, icount_shift: int | None = None,
          extra_args: Sequence[str] = (), semihosting_args: Sequence[str] = ()) -> Emulator:
    """Start QEMU with the console as a TCP server on a free 127.0.0.1 port (wait=on).

    Builds the firmware first when no `elf` is given. The board starts when the first
    client connects (`Emulator.open_serial()` or any pyserial client of `Emulator.url`).
    QEMU picks the port itself (port 0) and reports it, so parallel runs never collide."""
    elf = Path(elf) if elf is not None else build_firmware()
    if not elf.is_file():
        raise TinydriftError(f"firmware image {elf} not found: build it with `pio run -e mps2_an386`")
    command = qemu_command(elf, "tcp:127.0.0.1:0,server=on,wait=on", icount_shift=icount_shift,
                           extra_args=extra_args, semihosting_args=semihosting_args)
    process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, **tied_to_this_process())
    # QEMU announces the port it listens on, on stderr, before waiting for the client.
    announced = bytearray()
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    assert process.stderr is not None
    descriptor = process.stderr.fileno()
    while (match := _LISTENING.search(announced)) is None:
        left = deadline - time.monotonic()
        ready = left > 0 and select.select([descriptor], [], [], left)[0]
        chunk = os.read(descriptor, 4096) if ready else b""
        if not chunk:
            process.kill()
            process.wait()
            raise TinydriftError(
                f"QEMU did not start for {elf}: {announced.decode(errors='replace').strip()}"
            )
        announced += chunk
    return Emulator(process, int(match.group(1)), elf)


@dataclass
class RunResult:
    exit_code: int
    output: bytes
    seconds: float

    @property
    def lines(self) -> list[str]:
        return self.output.decode(errors="replace").splitlines()


def run(elf: Path | None = None, *, send: bytes = b"", icount_shift: int | None = None,
        timeout: float = 30.0, chunk_size: int = 4096,
        semihosting_args: Sequence[str] = (), extra_args: Sequence[str] = ()) -> RunResult:
    """Boot the firmware, send `send` while collecting its output, wait for it to exit.

    Reading and writing run concurrently: the link pushes back in both directions, so a
    writer that stopped reading could stall the firmware and then itself. The output is
    read from a plain socket, to the last byte before QEMU closes it (pyserial's
    socket:// read() discards what it had gathered when the peer closes mid-call)."""
    started = time.monotonic()
    with start(elf, icount_shift=icount_shift, extra_args=extra_args, semihosting_args=semihosting_args) as emulator:
        link = socket.create_connection(("127.0.0.1", emulator.port), timeout=STARTUP_TIMEOUT_S)
        link.settimeout(None)
        output = bytearray()

        def collect() -> None:
            # A reset (QEMU killed, or exiting with input it never read) ends the output.
            with contextlib.suppress(OSError):
                for data in iter(lambda: link.recv(65536), b""):
                    output.extend(data)

        def feed() -> None:
            for offset in range(0, len(send), chunk_size):
                try:
                    link.sendall(send[offset:offset + chunk_size])
                except OSError:
                    return  # the firmware exited before taking everything: its choice

        reader = threading.Thread(target=collect, daemon=True)
        writer = threading.Thread(target=feed, daemon=True)
        reader.start()
        writer.start()
        try:
            # A firmware that stops reading blocks the writer, never this wait: on timeout
            # QEMU is killed, the socket closes and both threads end.
            code = emulator.wait(max(0.0, timeout - (time.monotonic() - started)))
            reader.join(timeout=5.0)
        finally:
            link.close()
        return RunResult(code, bytes(output), time.monotonic() - started)
