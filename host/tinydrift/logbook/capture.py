"""Capture the device's log into SQLite: every frame, text line and corrupt run, committed
per read, with lost, corrupt and foreign-model frames counted (docs/protocol.md §4, §5).

The port is any pyserial URL: /dev/ttyACM0, a pty path, socket://127.0.0.1:PORT (QEMU's
-serial tcp). A port that disappears is reopened with backoff until `reconnect_timeout`.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import serial

from tinydrift.errors import TinydriftError
from tinydrift.modeldir import ModelDir
from tinydrift.link import protocol as P
from tinydrift.link.port import LinkTracker, open_port, read_available
from tinydrift.logbook.store import CaptureStore, frame_row

logger = logging.getLogger("tinydrift.capture")



@dataclass
class CaptureStats:
    frames: int = 0
    inference_frames: int = 0
    lost: int = 0
    corrupt: int = 0
    foreign: int = 0
    text_lines: int = 0
    restarts: int = 0
    reopens: int = 0
    bytes: int = 0
    last_seq: int | None = None
    last_inference_index: int | None = None


@dataclass
class CaptureSummary:
    db_path: Path
    port: str
    session_id: int
    duration_s: float
    end_reason: str
    stats: CaptureStats = field(default_factory=CaptureStats)

    def line(self) -> str:
        s = self.stats
        return (f"captured {s.frames} frames ({s.inference_frames} inferences) in {self.duration_s:.1f} s: "
                f"{s.lost} lost, {s.corrupt} corrupt, {s.foreign} foreign, {s.text_lines} text lines, "
                f"{s.reopens} reopens; stopped: {self.end_reason}; db {self.db_path}")


def capture(
    port_url: str,
    db_path: str | Path,
    *,
    model_dir: str | Path | None = None,
    expected_hash: bytes | None = None,
    duration: float | None = None,
    max_frames: int | None = None,
    baudrate: int = 115200,
    reconnect_timeout: float | None = 10.0,
    request_status: bool = True,
    durable: bool = False,
    stop_on_bye: bool = True,
    progress: Callable[[CaptureStats], None] | None = None,
    progress_interval: float = 1.0,
    stop_event: threading.Event | None = None,
    log: Callable[[str], None] | None = None,
    read_timeout: float = 0.02,
) -> CaptureSummary:
    """Capture until Ctrl-C/SIGTERM, `duration` seconds, `max_frames` valid frames, a BYE frame
    (the device exiting), `stop_event`, or a lost port not back within `reconnect_timeout`
    seconds (None: wait forever; 0: do not reopen)."""
    log = log or logger.info
    expected_from = None
    if model_dir is not None:
        expected_hash, expected_from = ModelDir(model_dir).require().model_hash, "model-dir"
    elif expected_hash is not None:
        expected_from = "argument"

    port = open_port(port_url, baudrate, read_timeout)
    try:
        store = CaptureStore(db_path, durable=durable)
    except TinydriftError:
        port.close()
        raise
    session = store.start_session(port_url, expected_hash.hex() if expected_hash else None, expected_from)
    parser = P.StreamParser()
    tracker = LinkTracker(expected_hash, expected_from)
    stats = CaptureStats()
    host_seq = 0
    stop_reason: list[str] = []
    started = time.monotonic()

    def request(sp: serial.SerialBase) -> None:
        nonlocal host_seq
        if not request_status:
            return
        try:
            sp.write(P.encode(P.StatusRequest(seq=host_seq)))
            host_seq += 1
        except (serial.SerialException, OSError) as exc:
            log(f"could not send STATUS_REQUEST: {exc}")

    # Ctrl-C and SIGTERM end the loop after the current commit instead of interrupting it.
    previous_handlers = {}
    if threading.current_thread() is threading.main_thread():
        def on_signal(signum, _frame):
            if stop_reason:  # a second Ctrl-C: give up at once
                raise KeyboardInterrupt
            stop_reason.append("interrupted" if signum == signal.SIGINT else "terminated")
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous_handlers[sig] = signal.signal(sig, on_signal)

    store.commit(session, [], [], [], [(session, time.time(), "open", None, None, port_url)], _counters(stats))
    request(port)
    last_progress = 0.0
    try:
        while not stop_reason:
            if stop_event is not None and stop_event.is_set():
                stop_reason.append("stopped")
                break
            if duration is not None and time.monotonic() - started >= duration:
                stop_reason.append(f"duration {duration:g} s")
                break
            try:
                data = read_available(port)
            except (serial.SerialException, OSError) as exc:
                port = _reopen(port, port_url, baudrate, read_timeout, reconnect_timeout, exc, store,
                               session, stats, log, stop_reason, stop_event)
                if port is None:
                    if not stop_reason:
                        stop_reason.append("port lost")
                    break
                stats.reopens += 1
                request(port)
                continue
            if not data:
                continue
            now = time.time()
            frames, texts, corrupts, events = [], [], [], []
            for item in parser.feed(data):
                kind = type(item)
                if kind is P.TextLine:
                    texts.append((session, now, item.text))
                elif kind is P.Corrupt:
                    corrupts.append((session, now, item.error.name, item.run))
                else:
                    foreign = False
                    if item.TYPE < 0x80:  # host -> device frames (a loopback) have their own seq
                        foreign = tracker.observe(item, now, session, events)
                    frames.append(frame_row(session, now, item, foreign))
                    if item.TYPE is P.FrameType.INFERENCE:
                        stats.inference_frames += 1
                        stats.last_inference_index = item.inference_index
                    elif item.TYPE is P.FrameType.BYE:
                        events.append((session, now, "bye", item.seq, item.exit_code, None))
                        if stop_on_bye:
                            stop_reason.append(f"device exit (code {item.exit_code})")
                    if max_frames is not None and stats.frames + len(frames) >= max_frames and not stop_reason:
                        stop_reason.append(f"{max_frames} frames")
            stats.frames += len(frames)
            stats.text_lines += len(texts)
            stats.corrupt += len(corrupts)
            stats.bytes += len(data)
            stats.lost, stats.restarts, stats.foreign = tracker.lost, tracker.restarts, tracker.foreign
            stats.last_seq = tracker.last_seq
            if events and tracker.expected_from and any(e[2] == "model" for e in events):
                store.set_expected(session, tracker.expected_hash.hex(), tracker.expected_from)
            store.commit(session, frames, texts, corrupts, events, _counters(stats))
            if progress is not None and time.monotonic() - last_progress >= progress_interval:
                progress(stats)
                last_progress = time.monotonic()
    finally:
        for sig, handler in previous_handlers.items():
            signal.signal(sig, handler)
        reason = stop_reason[0] if stop_reason else "error"
        leftovers = parser.flush()
        if leftovers:
            stats.text_lines += len(leftovers)
            store.commit(session, [], [(session, time.time(), t.text) for t in leftovers], [], [],
                         _counters(stats))
        store.commit(session, [], [], [], [(session, time.time(), "stop", None, None, reason)], _counters(stats))
        store.end_session(session, reason)
        store.close()
        if port is not None:
            try:
                port.close()
            except (serial.SerialException, OSError):
                pass
    if progress is not None:
        progress(stats)
    return CaptureSummary(Path(db_path), port_url, session, time.monotonic() - started, reason, stats)


def _counters(stats: CaptureStats) -> dict[str, int]:
    d = asdict(stats)
    return {k: d[k] for k in ("frames", "inference_frames", "lost", "corrupt", "foreign", "text_lines",
                              "restarts", "reopens", "bytes")}


def _reopen(port, url, baudrate, read_timeout, reconnect_timeout, exc, store, session, stats, log,
            stop_reason, stop_event):
    """Close a failed port and open it again with exponential backoff (50 ms doubling to 1 s).
    Returns the new port, or None when the timeout passes or a stop is requested."""
    try:
        port.close()
    except (serial.SerialException, OSError):
        pass
    lost_at = time.monotonic()
    log(f"port {url} lost ({exc}); reopening" + (f" for up to {reconnect_timeout:g} s" if reconnect_timeout is not None else ""))
    store.commit(session, [], [], [], [(session, time.time(), "port_lost", None, None, str(exc))], _counters(stats))
    delay, attempts = 0.05, 0
    while not stop_reason and not (stop_event is not None and stop_event.is_set()):
        waited = time.monotonic() - lost_at
        if reconnect_timeout is not None and waited >= reconnect_timeout:
            log(f"port {url} did not come back within {reconnect_timeout:g} s; stopping")
            return None
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
        store.commit(session, [], [], [], [(session, time.time(), "reopen", None, attempts, f"{took:.3f} s")],
                     _counters(stats))
        return new_port
    return None


class DatabaseSink:
    """Stores replay's received items in a capture database (same schema as `capture`)."""

    def __init__(self, db_path: str | Path, port_url: str, expected_hash: bytes | None = None):
        self.store = CaptureStore(db_path)
        self.session = self.store.start_session(port_url, expected_hash.hex() if expected_hash else None,
                                                "model-dir" if expected_hash else None)
        self.tracker = LinkTracker(expected_hash, "model-dir" if expected_hash else None)
        self.counters = dict.fromkeys(("frames", "inference_frames", "lost", "corrupt", "foreign", "text_lines",
                                       "restarts", "reopens", "bytes"), 0)

    def __call__(self, items: list) -> None:
        now = time.time()
        frames, texts, corrupts, events = [], [], [], []
        for item in items:
            kind = type(item)
            if kind is P.TextLine:
                texts.append((self.session, now, item.text))
            elif kind is P.Corrupt:
                corrupts.append((self.session, now, item.error.name, item.run))
            else:
                foreign = self.tracker.observe(item, now, self.session, events)
                frames.append(frame_row(self.session, now, item, foreign))
                self.counters["inference_frames"] += kind is P.Inference
        self.counters["frames"] += len(frames)
        self.counters["text_lines"] += len(texts)
        self.counters["corrupt"] += len(corrupts)
        self.counters.update(lost=self.tracker.lost, restarts=self.tracker.restarts, foreign=self.tracker.foreign)
        if any(e[2] == "model" for e in events):
            self.store.set_expected(self.session, self.tracker.expected_hash.hex(), self.tracker.expected_from)
        self.store.commit(self.session, frames, texts, corrupts, events, self.counters)

    def close(self, reason: str) -> None:
        self.store.end_session(self.session, reason)
        self.store.close()
