"""The serial link from the host's side: open any pyserial URL without losing what waits,
read exactly what has arrived, and keep the books of the device's sequence numbers.

The port is any pyserial URL: /dev/ttyACM0, a pty path, socket://127.0.0.1:PORT (QEMU's
-serial tcp). Capture, replay and the demo all open and read it through here.
"""

from __future__ import annotations

import array
import fcntl
import re
import termios
import time
from typing import Callable

import serial

from tinydrift.errors import TinydriftError
from tinydrift.link import protocol as P

READ_SIZE = 1 << 16


# The fastest a device can send frames (the smallest frame, back to back, on the fastest
# link: QEMU's socket) and a floor for frames that arrive in one read. A sequence number
# further ahead than this allows cannot be frames lost on the way.
MAX_FRAMES_PER_S = 20_000
MIN_PLAUSIBLE_GAP = 1024


def plausible_gap(seconds: float) -> int:
    """The most frames a device could have sent in `seconds`."""
    return MIN_PLAUSIBLE_GAP + int(MAX_FRAMES_PER_S * max(0.0, seconds))


class LinkTracker:
    """Sequence and model bookkeeping of the device → host stream.

    A gap in the device's sequence counts as lost frames when the link could have carried
    that many since the last frame. A larger jump, or a step back that is not a HELLO with
    sequence 0, is held as a suspect until the next frame decides: if that one follows it,
    the device started a new run (a restart: the frames of the new run before the suspect
    are lost when the link could have carried them); if it follows the old run, the suspect's
    sequence number was bogus and nothing was lost. A capture that picks up where an earlier
    one of the same device stopped (`resume`) counts the frames sent in between as lost."""

    def __init__(self, expected_hash: bytes | None, expected_from: str | None) -> None:
        self.expected_hash = expected_hash  # 32 bytes, or 8 when only a model_id is known
        self.expected_from = expected_from
        self.named = expected_hash is not None  # the caller named the model (not learnt from the device)
        self.last_seq: int | None = None
        self.last_at: float | None = None
        self.lost = 0
        self.restarts = 0
        self.foreign = 0
        self.matched = 0  # frames that named the expected model
        self.first_foreign: bytes | None = None  # the identity the first foreign frame named
        self._resumed = False
        self._suspect: tuple[int, int, str] | None = None  # (seq, frames it would mean lost, why)

    def resume(self, last_seq: int, last_at: float) -> None:
        """Continue the sequence of an earlier capture session of the same device run."""
        self.last_seq, self.last_at, self._resumed = last_seq, last_at, True

    def observe(self, frame: P.Frame, now: float, session_id: int, events: list) -> bool:
        """Update counters for one device frame; return True if it is from a foreign model."""
        self._follow_sequence(frame, now, session_id, events)
        return self._check_model(frame, now, session_id, events)

    def _follow_sequence(self, frame: P.Frame, now: float, session_id: int, events: list) -> None:
        seq, last = frame.seq, self.last_seq
        if self._suspect is not None:
            suspect, lost, why = self._suspect
            self._suspect = None
            # A frame that follows both (a duplicate of the last one was the suspect) keeps the old run.
            if seq == (suspect + 1) & 0xFFFFFFFF and seq != (last + 1) & 0xFFFFFFFF:
                self.restarts += 1
                self.lost += lost
                events.append((session_id, now, "restart", suspect, lost, f"{why}, and the next frame followed it"))
                last = suspect
            else:
                events.append((session_id, now, "bogus_seq", suspect, 0,
                               f"{why}, but the next frame ({seq}) did not follow it: a corrupt sequence "
                               "number, no frames lost"))
        if frame.TYPE is P.FrameType.HELLO and seq == 0:
            if last is not None:
                self.restarts += 1
                events.append((session_id, now, "restart", seq, 0, "HELLO with seq 0"))
        elif last is not None:
            gap = (seq - last - 1) & 0xFFFFFFFF
            limit = plausible_gap(now - self.last_at)
            since = "since the last capture session" if self._resumed else "since the last frame"
            if 0 < gap <= limit:
                self.lost += gap
                events.append((session_id, now, "gap", (last + 1) & 0xFFFFFFFF, gap,
                               "between capture sessions" if self._resumed else None))
            elif gap >= 1 << 31:
                # A step back: a restart whose HELLO (and frames 0 .. seq-1) did not arrive?
                self._suspect = (seq, seq if seq <= limit else 0, f"seq went back from {last} to {seq}")
                return
            elif gap > limit:
                self._suspect = (seq, 0, f"seq jumped from {last} to {seq}, more than the {limit} frames "
                                         f"the link could carry {since}")
                return
        self.last_seq, self.last_at, self._resumed = seq, now, False

    def _check_model(self, frame: P.Frame, now: float, session_id: int, events: list) -> bool:
        seq = frame.seq
        if frame.TYPE in (P.FrameType.INFERENCE, P.FrameType.DETECTION):
            ident, source = frame.model_id, frame.TYPE.name.lower()
        elif frame.TYPE in (P.FrameType.HELLO, P.FrameType.STATUS):
            ident, source = frame.model_hash, frame.TYPE.name.lower()
        else:
            return False
        expected = self.expected_hash
        if expected is None or (len(expected) < len(ident) and ident.startswith(expected)):
            # First identity seen, or the full hash behind a model_id adopted earlier.
            self.expected_hash, self.expected_from = ident, source
            events.append((session_id, now, "model", seq, None, f"{ident.hex()} from {source}"))
            return False
        n = min(len(expected), len(ident))
        if ident[:n] != expected[:n]:
            self.foreign += 1
            self.first_foreign = self.first_foreign or ident
            return True
        self.matched += 1
        return False

    def wrong_model(self, what: str) -> str | None:
        """Why this link is not worth following, or None: the model the caller named (`what`,
        e.g. its folder) was never seen, and the device has only named another one. A device
        reflashed halfway through is not refused: its frames stay counted as foreign."""
        if not self.named or self.matched or self.first_foreign is None:
            return None
        remedy = ("capture into another --db" if self.expected_from == "database" else
                  "give the model folder the device was flashed with, or omit --model-dir")
        return (f"the device runs model {self.first_foreign.hex()[:16]}, but {what} is model "
                f"{self.expected_hash.hex()[:16]}: {remedy}")


def _pending_bytes(port: serial.SerialBase) -> int:
    try:
        count = array.array("i", [0])
        fcntl.ioctl(port.fileno(), termios.FIONREAD, count)  # ttys and sockets alike
        return count[0]
    except (AttributeError, OSError, ValueError, serial.SerialException):
        return port.in_waiting


def read_available(port: serial.SerialBase) -> bytes:
    """Wait (up to the port's timeout) for data, then take exactly what has arrived.

    pyserial's socket read() raises on end of file and drops whatever it had already read in
    that call, so a device that sends its last frames and closes would lose them. Asking for
    one byte, then for exactly the bytes pending, keeps every call clear of the end of file:
    it can only show up, alone, on a later call."""
    first = port.read(1)
    if not first:
        return b""
    pending = _pending_bytes(port)
    return first + port.read(min(pending, READ_SIZE)) if pending > 0 else first


def open_port(url: str, baudrate: int = 115200, timeout: float = 0.02) -> serial.SerialBase:
    """Open a pyserial URL without discarding what is already waiting.

    pyserial's open() flushes the input (tcflush for ttys; for socket:// it recv()s and drops
    everything that has arrived), so a device that talks as soon as the host connects - QEMU
    booting on `-serial tcp:...,server=on,wait=on`, a pty fed before the open - would lose its
    first frames. The flush is disabled on the instance before opening."""
    try:
        port = serial.serial_for_url(url, baudrate=baudrate, timeout=timeout, do_not_open=True)
        # posix ttys flush through _reset_input_buffer, sockets through reset_input_buffer
        flushes = [name for name in ("reset_input_buffer", "_reset_input_buffer") if hasattr(type(port), name)]
        for name in flushes:
            setattr(port, name, lambda: None)
        try:
            port.open()
        finally:
            for name in flushes:
                delattr(port, name)
        return port
    except (serial.SerialException, OSError, ValueError) as exc:
        # pyserial says "could not open port URL: [Errno ...] ..." of its own: the URL once
        # came twice in one line
        why = re.sub(r"^(\[Errno \d+\] )?[Cc]ould not open port \S+?:? (?=\[)", "", str(exc))
        why = re.sub(rf": '{re.escape(url)}'$", "", why)
        raise TinydriftError(f"cannot open port {url!r}: {why} (check the device is connected and the "
                             "URL: /dev/ttyACM0, a pty path or socket://HOST:PORT)") from exc


def reopen_port(port, url: str, baudrate: int, read_timeout: float, reconnect_timeout: float | None,
                exc: Exception, log: Callable[[str], None], should_stop: Callable[[], bool]):
    """Close a failed port and open it again with exponential backoff (50 ms doubling to 1 s):
    a USB device that re-enumerates, a pty or socket that comes back. Returns (the new port,
    attempts, seconds taken); the port is None when `reconnect_timeout` seconds pass (None:
    wait for ever) or `should_stop()` says so."""
    try:
        port.close()
    except (serial.SerialException, OSError):
        pass
    lost_at = time.monotonic()
    log(f"port {url} lost ({exc}); reopening" + (f" for up to {reconnect_timeout:g} s" if reconnect_timeout is not None else ""))
    delay, attempts = 0.05, 0
    while not should_stop():
        waited = time.monotonic() - lost_at
        if reconnect_timeout is not None and waited >= reconnect_timeout:
            log(f"port {url} did not come back within {reconnect_timeout:g} s; stopping")
            return None, attempts, waited
        attempts += 1
        try:
            new_port = open_port(url, baudrate, read_timeout)
        except TinydriftError:
            pause = delay if reconnect_timeout is None else min(delay, max(0.0, reconnect_timeout - waited))
            time.sleep(pause)
            delay = min(delay * 2, 1.0)
            continue
        took = time.monotonic() - lost_at
        log(f"port {url} reopened after {took:.2f} s ({attempts} attempts)")
        return new_port, attempts, took
    return None, attempts, time.monotonic() - lost_at
