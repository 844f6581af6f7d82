"""Capture the device's log into SQLite: every frame, text line and corrupt run, committed
per read, with lost, corrupt and foreign-model frames counted (docs/protocol.md §4, §5).

The port is any pyserial URL: /dev/ttyACM0, a pty path, socket://127.0.0.1:PORT (QEMU's
-serial tcp). A port that disappears is reopened with backoff until `reconnect_timeout`.
A database that another process holds locked does not stop the capture: what was read
waits in memory (bounded) and is stored when the lock is released. A disk that fills up
stops it cleanly, with the session closed and the frames not stored counted.
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
from tinydrift.link.port import LinkTracker, open_port, read_available, reopen_port
from tinydrift.logbook.store import COUNTERS, CaptureStore, StoreBusy, StoreFull, frame_row

logger = logging.getLogger("tinydrift.capture")

# Queued labels (tinydrift label --db) are looked for this often, and sent again when no ACK
# came this long after sending (the device answers a LABEL within one frame time).
LABEL_POLL_S = 0.25
LABEL_ACK_TIMEOUT_S = 5.0
# A device running the app answers the STATUS_REQUEST sent on connecting at once; this long
# without a byte means the port is someone else's (QEMU serves one client) or the app is not running.
SILENCE_WARNING_S = 5.0
SILENT_PORT = ("is another program holding the port (the emulator serves one client at a time), "
                "or is the device not running the tinydrift app?")


@dataclass
class CaptureStats:
    frames: int = 0
    inference_frames: int = 0
    detection_frames: int = 0  # a streaming detector's
    wakes: int = 0  # DETECTION frames that are wakes
    lost: int = 0
    corrupt: int = 0
    foreign: int = 0
    text_lines: int = 0
    restarts: int = 0
    reopens: int = 0
    bytes: int = 0
    last_seq: int | None = None
    last_inference_index: int | None = None
    waiting: int = 0  # received frames not stored yet (a busy database) or never (a full disk)


@dataclass
class CaptureSummary:
    db_path: Path
    port: str
    session_id: int
    duration_s: float
    end_reason: str
    stats: CaptureStats = field(default_factory=CaptureStats)  # of everything received
    stored: dict[str, int] = field(default_factory=dict)  # the counters of what is in the database
    failed: bool = False  # stopped by a lost port or a database that could not be written
    labels_taken: int = 0  # queued labels sent and taken by the device
    labels_refused: int = 0  # and refused
    labels_restarted: int = 0  # queued labels not sent: a HELLO restarted the device's inference count first
    problem: str | None = None  # why the capture is not what was asked for (a one-line error)
    forgotten: bool = False  # refused for the device's model: nothing of it kept in the database
    discarded: bool = False  # this run's session taken out (another model's device, or nothing heard), and a db it made

    @property
    def not_stored(self) -> int:
        """Frames received but not in the database (it could not take them)."""
        return self.stats.frames - self.stored.get("frames", self.stats.frames)

    def line(self) -> str:
        s = self.stats
        if self.forgotten:
            return (f"received {s.frames} frames in {self.duration_s:.1f} s from a device of another model, none kept: "
                    f"db {self.db_path} is as it was")
        unstored = f"; {self.not_stored} received frames NOT stored" if self.not_stored else ""
        inferences = self.stored.get("inference_frames", s.inference_frames)
        detections = self.stored.get("detection_frames", s.detection_frames)
        wakes = self.stored.get("wakes", s.wakes)
        detected = f", {detections} detections, {wakes} wake{'' if wakes == 1 else 's'}" if detections else ""
        labelled = self.labels_taken + self.labels_refused
        labels = f", {labelled} queued labels sent ({self.labels_refused} refused)" if labelled else ""
        if self.labels_restarted:
            labels += f", {self.labels_restarted} queued labels not sent (queued before the device restarted its count)"
        return (f"captured {s.frames - self.not_stored} frames ({inferences} inferences{detected}) in "
                f"{self.duration_s:.1f} s: {s.lost} lost, {s.corrupt} corrupt, {s.foreign} foreign, "
                f"{s.text_lines} text lines, {s.reopens} reopens{labels}; stopped: {self.end_reason}{unstored}; "
                + (f"nothing stored, db {self.db_path} not written" if self.discarded else f"db {self.db_path}"))


class SessionWriter:
    """One session's rows on their way into the capture store.

    Rows go in with the counters that count them, so the session's counters always equal its
    stored rows. While another process holds the write lock, rows wait in memory (up to
    `max_pending` rows) and go in with the next commit that gets through; `StoreFull` (the
    disk is full) passes to the caller, the rows not stored stay counted in `pending_frames`.
    """

    def __init__(self, store: CaptureStore, session: int, counters: dict[str, int],
                 log: Callable[[str], None], max_pending: int = 1_000_000) -> None:
        self.store, self.session, self.log, self.max_pending = store, session, log, max_pending
        self.pending: tuple[list, list, list, list] = ([], [], [], [])
        self.expected: tuple[str, str] | None = None  # the session's model, once learnt
        self.counters = dict(counters)
        self.stored = dict(counters)
        self.busy_since: float | None = None

    @property
    def pending_rows(self) -> int:
        return sum(len(rows) for rows in self.pending)

    @property
    def pending_frames(self) -> int:
        return len(self.pending[0])

    def add(self, rows: "Rows", counters: dict[str, int]) -> bool:
        """Queue one read's rows and try to store everything queued; True if it went in."""
        for queue, new in zip(self.pending, (rows.frames, rows.texts, rows.corrupts, rows.events)):
            queue.extend(new)
        self.expected = rows.expected or self.expected
        self.counters = dict(counters)
        return self.flush()

    def flush(self) -> bool:
        """Try once (waiting at most the store's busy timeout) to store what is queued."""
        if not self.pending_rows and self.counters == self.stored and self.expected is None:
            return True
        try:
            self.store.commit(self.session, *self.pending, self.counters, self.expected)
        except StoreBusy as exc:
            if self.busy_since is None:
                self.busy_since = time.monotonic()
                self.log(f"database {self.store.path} is busy ({exc}): keeping what arrives in memory until it is free")
            if self.pending_rows > self.max_pending:
                raise StoreFull(f"{self.store.path} stayed locked by another process for "
                                f"{time.monotonic() - self.busy_since:.0f} s while {self.pending_rows} rows waited "
                                "(more than capture keeps in memory): free the database and capture again") from None
            return False
        if self.busy_since is not None:
            self.log(f"database free again after {time.monotonic() - self.busy_since:.1f} s: "
                     f"{self.pending_frames} waiting frames stored")
            self.busy_since = None
        self.pending, self.expected = ([], [], [], []), None
        self.stored = dict(self.counters)
        return True

    def finish(self, reason: str, store_pending: bool = True, patience: float = 30.0) -> str | None:
        """Store what waits (retrying a busy database for up to `patience` s; with
        `store_pending` False, after a full disk, drop it: it stays counted as not stored) and
        close the session with the counters of what is stored. Returns None, or why the
        session could not be closed cleanly."""
        deadline = time.monotonic() + patience
        if not store_pending:
            self.store.release_reserve()
        try:
            if store_pending:
                while not self.flush():
                    if time.monotonic() >= deadline:
                        return f"the database stayed locked; {self.pending_frames} received frames not stored"
            try:
                self.store.end_session(self.session, reason, self.stored)
            except StoreFull:
                # A file that may not grow (FAT's 4 GB, a quota): move the log into the database
                # file, so the closing transaction finds room in an emptied log.
                self.store.checkpoint()
                self.store.end_session(self.session, reason, self.stored)
        except StoreFull as exc:
            return f"{exc}; the session is not marked as ended"
        except StoreBusy:
            return "the database stayed locked; the session is not marked as ended"
        return None


class LabelSender:
    """The labels `tinydrift label --db` queues in the capture database, sent to the device by
    the session holding its port, and the device's ACK of each recorded: taken, or refused
    (never sent again). A label sent and not answered (a lost port, a timeout, a session that
    ended first) is queued again, up to the store's LABEL_MAX_ATTEMPTS sends. A label queued
    before the device restarted its inference count (a boot, or RESET) is never sent, as its
    index names another inference now: one queued before the device's latest HELLO, or one
    queued before this session began at a count higher than the first the device tells it
    (a restart no session heard)."""

    def __init__(self, store: CaptureStore, session: int, log: Callable[[str], None]) -> None:
        self.store, self.session, self.log = store, session, log
        self.in_flight: dict[int, tuple[int, int, int, float]] = {}  # seq -> (id, inference, label, sent at)
        self.answers: list[tuple[int, int]] = []  # (id, ACK result) not yet stored
        self.unanswered: list[int] = []  # ids to queue again, not yet stored
        self.outdated: list[int] = []  # ids queued before the latest HELLO, not yet stored as such
        self.last_poll = 0.0
        self.taken = self.refused = self.restarted = 0
        self.unanswered += store.labels_left_sent()  # an earlier session's, never answered
        self.hello_at = store.latest_hello_at()
        self._listen_anew()

    def _listen_anew(self) -> None:
        """The device's inference count is unknown until a frame tells it; nothing is sent
        before: a board that boots as the port opens (an emulator, an Arduino reset by DTR)
        says HELLO first, and a STATUS (asked for at the start) tells the count. Labels
        queued before now are checked against the first count told."""
        self.since = time.time()
        self.first_count: int | None = None

    def poll(self, send: Callable[..., int]) -> None:
        """Store what is known, then send what is queued; `send(frame, announce=...)` writes a
        frame, calling `announce(seq)` just before, and returns its seq."""
        now = time.monotonic()
        if now - self.last_poll < LABEL_POLL_S:
            return
        self.last_poll = now
        for seq, (label_id, *_rest, sent_at) in list(self.in_flight.items()):
            if now - sent_at > LABEL_ACK_TIMEOUT_S:
                del self.in_flight[seq]
                self.unanswered.append(label_id)
        if not self._store() or self.first_count is None:
            return
        waiting = {entry[0] for entry in self.in_flight.values()}
        for label_id, queued_at, inference, label in self.store.queued_labels():
            if label_id in waiting:
                continue
            if queued_at < self.hello_at or (queued_at < self.since
                                             and self.first_count < self.store.count_before(queued_at)):
                self.outdated.append(label_id)
                continue
            frame = P.Label(0, inference, label)
            try:
                seq = send(frame, announce=lambda seq, i=label_id: self.store.labels_sent(self.session, [(i, seq)]))
            except (serial.SerialException, OSError):
                self.unanswered.append(label_id)  # marked sent, never went out
                raise
            self.in_flight[seq] = (label_id, inference, label, time.monotonic())

    def heard(self, rows: "Rows") -> None:
        """What one read of the port brought: the device's ACKs of this session's LABEL
        frames, and a HELLO, after which the labels queued before it name inferences of an
        earlier count."""
        if rows.count is not None and self.first_count is None:
            self.first_count = rows.count
        if rows.hello_at is not None:
            self.hello_at = max(self.hello_at, rows.hello_at)
        for ack in rows.acks:
            entry = self.in_flight.pop(ack.command_seq, None) if ack.command_type == P.FrameType.LABEL else None
            if entry is None:
                continue
            label_id, inference, label, _ = entry
            self.answers.append((label_id, ack.result))
            if ack.result == 0:
                self.taken += 1
            else:
                self.refused += 1
                self.log(f"the device refused label {label} for inference {inference} (ACK result {ack.result}); "
                         "marked refused, not sent again")

    def lost(self) -> None:
        """The port went away: what was in flight may never be answered, and a board
        reopened may boot again (a USB port's DTR), so the device is waited for anew."""
        self.unanswered += [entry[0] for entry in self.in_flight.values()]
        self.in_flight.clear()
        self._listen_anew()

    def _store(self) -> bool:
        """Write answers and requeues; False while another process holds the database."""
        try:
            if self.answers:
                self.store.labels_answered(self.answers)
                self.answers = []
            if self.unanswered:
                self.store.labels_unanswered(self.unanswered)
                self.unanswered = []
            if self.outdated:
                self.store.labels_restarted(self.outdated)
                self.restarted += len(self.outdated)
                self.log(f"{len(self.outdated)} queued label{'s' if len(self.outdated) > 1 else ''} not sent: queued "
                         "before the device restarted its inference count (a boot, or RESET: its HELLO came "
                         "after, or it counts fewer inferences now), so their indices name other inferences "
                         "now; marked restarted (queue them again for the new count)")
                self.outdated = []
        except StoreBusy:
            return False
        return True

    def finish(self) -> None:
        self.lost()
        for _ in range(20):  # a busy database: a few tries, then the next session requeues them
            if self._store():
                return
            time.sleep(0.05)


def expected_model(store: CaptureStore, expected_hash: bytes | None, expected_from: str | None,
                   named_as: str) -> tuple[bytes | None, str | None, str]:
    """The model a capture into `store` expects, where that came from, and how to name it: a
    database holds one model's captures, so without a model named by the caller it is the
    one the database holds (another model's device is then refused as foreign), and a model
    named that is not the database's is refused at once (TinydriftError)."""
    held = store.captured_model()
    if held is None:
        return expected_hash, expected_from, named_as
    if expected_hash is None:
        return held, "database", f"the model {store.path} holds"
    if held[:len(expected_hash)] != expected_hash[:len(held)]:
        raise TinydriftError(f"{store.path} holds captures of model {held.hex()[:16]}, and {named_as} is model "
                             f"{expected_hash.hex()[:16]}: capture into another --db")
    return expected_hash, expected_from, named_as


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
    named_as = str(model_dir) if model_dir is not None else "the expected model"
    if model_dir is not None:
        expected_hash, expected_from = ModelDir(model_dir).require().model_hash, "model-dir"
    elif expected_hash is not None:
        expected_from = "argument"

    # The database first: opening the port starts an emulated board, whose run a database
    # refused after it would lose.
    store = CaptureStore(db_path, durable=durable)
    try:
        expected_hash, expected_from, named_as = expected_model(store, expected_hash, expected_from, named_as)
        port = open_port(port_url, baudrate, read_timeout)
    except BaseException:
        store.discard()
        raise
    tracker = LinkTracker(expected_hash, expected_from)
    earlier = store.last_device_frame(port_url)
    if earlier is not None and (expected_hash is None or earlier[2] is None
                                or earlier[2].startswith(expected_hash.hex()[:16])):
        # The same port and model: most likely the same device run, whose sequence goes on.
        tracker.resume(earlier[0], earlier[1])
    session = store.start_session(port_url, expected_hash.hex() if expected_hash else None, expected_from)
    parser = P.StreamParser()
    stats = CaptureStats()
    writer = SessionWriter(store, session, _counters(stats), log)
    labels = LabelSender(store, session, log)
    host_seq = 0
    stop_reason: list[str] = []
    failed = store_full = False
    refusal: str | None = None  # why what came is not what was asked for
    foreign_device = False  # refused for running another model: the session is forgotten
    started = time.monotonic()
    silence_warned = False

    def next_seq() -> int:
        """The session's host -> device sequence number, one per frame sent."""
        nonlocal host_seq
        seq, host_seq = host_seq, (host_seq + 1) & 0xFFFFFFFF
        return seq

    def request(sp: serial.SerialBase) -> None:
        if not request_status:
            return
        try:
            sp.write(P.encode(P.StatusRequest(seq=next_seq())))
        except (serial.SerialException, OSError) as exc:
            log(f"could not send STATUS_REQUEST: {exc}")

    def send(frame, announce) -> int:
        """One host -> device frame with the session's next seq; `announce(seq)` runs first
        (a label is marked sent before it can be answered)."""
        frame.seq = next_seq()
        announce(frame.seq)
        port.write(P.encode(frame))
        return frame.seq

    # Ctrl-C and SIGTERM end the loop after the current commit instead of interrupting it.
    previous_handlers = {}
    if threading.current_thread() is threading.main_thread():
        def on_signal(signum, _frame):
            if stop_reason:  # a second Ctrl-C: give up at once
                raise KeyboardInterrupt
            stop_reason.append("interrupted" if signum == signal.SIGINT else "terminated")
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous_handlers[sig] = signal.signal(sig, on_signal)

    def event(kind: str, count=None, detail=None) -> None:
        writer.add(Rows(events=[(session, time.time(), kind, None, count, detail)]), _counters(stats))

    last_progress = 0.0
    try:
        event("open", detail=port_url)
        request(port)
        while not stop_reason:
            if stop_event is not None and stop_event.is_set():
                stop_reason.append("stopped")
                break
            if duration is not None and time.monotonic() - started >= duration:
                stop_reason.append(f"duration {duration:g} s")
                break
            try:
                labels.poll(send)
                data = read_available(port)
            except StoreBusy:
                continue
            except (serial.SerialException, OSError) as exc:
                labels.lost()
                event("port_lost", detail=str(exc))
                port, attempts, took = reopen_port(port, port_url, baudrate, read_timeout, reconnect_timeout, exc,
                                                   log, lambda: bool(stop_reason) or (stop_event is not None
                                                                                      and stop_event.is_set()))
                if port is None:
                    if not stop_reason:
                        stop_reason.append("port lost")
                        failed = True
                    break
                stats.reopens += 1
                event("reopen", count=attempts, detail=f"{took:.3f} s")
                request(port)
                continue
            if not data:
                writer.flush()  # whatever waits for a busy database
                if not stats.bytes and not silence_warned and time.monotonic() - started >= SILENCE_WARNING_S:
                    log(f"still listening: nothing from {port_url} in its first {SILENCE_WARNING_S:g} s. "
                        f"{SILENT_PORT[0].upper()}{SILENT_PORT[1:]}")
                    silence_warned = True
                continue
            rows = Rows.parse(parser.feed(data), session, time.time(), tracker, stats)
            labels.heard(rows)
            stats.bytes += len(data)
            if rows.bye is not None and stop_on_bye:
                stop_reason.append(f"device exit (code {rows.bye})")
            if max_frames is not None and stats.frames >= max_frames and not stop_reason:
                stop_reason.append(f"{max_frames} frames")
            writer.add(rows, _counters(stats))
            if (wrong := tracker.wrong_model(named_as)) is not None:
                stop_reason.append("another model on the port")
                refusal, failed, foreign_device = wrong, True, True
            if progress is not None and time.monotonic() - last_progress >= progress_interval:
                stats.waiting = writer.pending_frames
                progress(stats)
                last_progress = time.monotonic()
    except StoreFull as exc:
        stop_reason.insert(0, str(exc))
        failed = store_full = True
    finally:
        for sig, handler in previous_handlers.items():
            signal.signal(sig, handler)
        reason = stop_reason[0] if stop_reason else "error"
        leftovers = parser.flush()
        if leftovers:
            stats.text_lines += len(leftovers)
            writer.pending[1].extend((session, time.time(), t.text) for t in leftovers)
        writer.counters = _counters(stats)
        if not store_full:
            try:
                labels.finish()
            except TinydriftError as exc:  # the next session queues them again
                log(f"could not store the state of the labels sent: {exc}")
        problem = writer.finish(reason, store_pending=not store_full)
        if problem is not None:
            log(f"capture could not close its session cleanly: {problem}")
            failed = True
        # a database this run made and that nothing reached is not kept either: an empty
        # session in a new file, beside the error saying nothing came (or that the port was
        # lost before a byte came), is only clutter
        silent_new = store.created and not stats.bytes and problem is None
        removed = _close(store, session if (foreign_device and problem is None) or silent_new else None, log)
        forgotten = removed and foreign_device
        if port is not None:
            try:
                port.close()
            except (serial.SerialException, OSError):
                pass
    if progress is not None:
        stats.waiting = writer.pending_frames
        progress(stats)
    took = time.monotonic() - started
    if refusal is None and not stats.bytes and not failed:
        refusal = f"nothing received from {port_url} in {took:.1f} s: {SILENT_PORT}"
    return CaptureSummary(Path(db_path), port_url, session, took, reason, stats,
                          stored=writer.stored, failed=failed, labels_taken=labels.taken,
                          labels_refused=labels.refused, labels_restarted=labels.restarted, problem=refusal,
                          forgotten=forgotten, discarded=removed)



def _close(store: CaptureStore, forget: int | None, log: Callable[[str], None]) -> bool:
    """Close the store; with `forget`, a session refused for its device's model or one that
    heard nothing, remove it first (and the database, if this run created it). True if it
    was removed."""
    if forget is None:
        store.close()
        return False
    try:
        store.forget_session(forget)
    except TinydriftError as exc:
        log(f"could not remove the refused session {forget}: {exc}")
        store.close()
        return False
    store.discard()
    return True


def _counters(stats: CaptureStats) -> dict[str, int]:
    d = asdict(stats)
    return {k: d[k] for k in COUNTERS}


@dataclass
class Rows:
    """The capture store's rows for what one read of the port brought."""

    frames: list = field(default_factory=list)
    texts: list = field(default_factory=list)
    corrupts: list = field(default_factory=list)
    events: list = field(default_factory=list)
    expected: tuple[str, str] | None = None  # (hash, source) when this read taught the model
    bye: int | None = None  # the exit code of a BYE frame among them
    acks: list = field(default_factory=list)  # the device's ACK frames among them
    hello_at: float | None = None  # when read, if a HELLO was among them
    count: int | None = None  # the device's inference count, if a frame among them told it (a HELLO: 0)

    @classmethod
    def parse(cls, items, session: int, now: float, tracker: LinkTracker, stats: CaptureStats) -> "Rows":
        """Rows of parsed items; `tracker` and `stats` count them."""
        rows = cls()
        for item in items:
            kind = type(item)
            if kind is P.TextLine:
                rows.texts.append((session, now, item.text))
            elif kind is P.Corrupt:
                rows.corrupts.append((session, now, item.error.name, item.run))
            else:
                foreign = False
                if item.TYPE < 0x80:  # host -> device frames (a loopback) have their own seq
                    foreign = tracker.observe(item, now, session, rows.events)
                rows.frames.append(frame_row(session, now, item, foreign))
                if item.TYPE is P.FrameType.INFERENCE:
                    stats.inference_frames += 1
                    stats.last_inference_index = item.inference_index
                elif item.TYPE is P.FrameType.DETECTION:
                    stats.detection_frames += 1
                    stats.wakes += item.wake
                elif item.TYPE is P.FrameType.ACK:
                    rows.acks.append(item)
                elif item.TYPE is P.FrameType.HELLO:
                    rows.hello_at, rows.count = now, 0
                if item.TYPE in (P.FrameType.INFERENCE, P.FrameType.DETECTION, P.FrameType.HEARTBEAT):
                    rows.count = item.inference_index
                elif item.TYPE is P.FrameType.STATUS:
                    rows.count = item.inferences
                elif item.TYPE is P.FrameType.BYE:
                    rows.events.append((session, now, "bye", item.seq, item.exit_code, None))
                    rows.bye = item.exit_code if rows.bye is None else rows.bye
        if tracker.expected_from and any(e[2] == "model" for e in rows.events):
            rows.expected = (tracker.expected_hash.hex(), tracker.expected_from)
        stats.frames += len(rows.frames)
        stats.text_lines += len(rows.texts)
        stats.corrupt += len(rows.corrupts)
        stats.lost, stats.restarts, stats.foreign = tracker.lost, tracker.restarts, tracker.foreign
        stats.last_seq = tracker.last_seq
        return rows


class DatabaseSink:
    """Stores replay's received items in a capture database (same schema and rules as `capture`)."""

    def __init__(self, db_path: str | Path, port_url: str, expected_hash: bytes | None = None,
                 log: Callable[[str], None] | None = None, named_as: str = "the expected model",
                 send_labels: Callable[..., int] | None = None):
        store = CaptureStore(db_path)
        try:
            expected_hash, expected_from, named_as = expected_model(store, expected_hash,
                                                                    "model-dir" if expected_hash else None, named_as)
        except BaseException:
            store.discard()
            raise
        self.named_as = named_as  # where expected_hash came from, for the error naming it
        self.session = store.start_session(port_url, expected_hash.hex() if expected_hash else None, expected_from)
        self.tracker = LinkTracker(expected_hash, expected_from)
        self.stats = CaptureStats()
        self.writer = SessionWriter(store, self.session, _counters(self.stats), log or logger.info)
        self.foreign_device = False  # refused for another model: close() forgets the session
        # With `send_labels` (Replayer.send), the labels `tinydrift label --db` queues go to the
        # device as capture sends them: this run holds its port.
        self.send_labels = send_labels
        self.labels = LabelSender(store, self.session, log or logger.info) if send_labels is not None else None

    @staticmethod
    def check(db_path: str | Path, expected_hash: bytes | None, named_as: str) -> None:
        """What constructing one would refuse (a database that cannot be written, or holds
        another model's captures), before the port is opened: opening it starts an emulated
        board, whose run a refusal after it would lose. Leaves no new file behind."""
        store = CaptureStore(db_path)
        try:
            store.hold_alone()
            expected_model(store, expected_hash, "model-dir" if expected_hash else None, named_as)
        finally:
            store.discard()

    def __call__(self, items: list) -> None:
        """Store what arrived; TinydriftError once the device shows it runs another model
        than the one named (close() then forgets the session)."""
        rows = Rows.parse(items, self.session, time.time(), self.tracker, self.stats)
        self.writer.add(rows, _counters(self.stats))
        if (wrong := self.tracker.wrong_model(self.named_as)) is not None:
            self.foreign_device = True
            raise TinydriftError(wrong)
        if self.labels is not None:
            self.labels.heard(rows)
            try:
                self.labels.poll(self.send_labels)
            except StoreBusy:
                pass  # the next read tries again

    def close(self, reason: str) -> str | None:
        """Close the session; returns None, or why it could not be closed cleanly."""
        problem = "not closed"
        try:
            if self.labels is not None:
                self.labels.finish()
            problem = self.writer.finish(reason)
            return problem
        finally:
            # a session refused for its model, or one that heard nothing and failed (a port that
            # never answered: the database once kept an empty "error" session), is forgotten.
            # Heard is what came parsed: replay hands over items, not bytes (counting bytes,
            # which it never does, forgot every replay that ended on a lost port).
            heard = self.stats.frames or self.stats.text_lines or self.stats.corrupt
            forget = self.foreign_device or (reason == "error" and not heard)
            _close(self.writer.store, self.session if forget and problem is None else None, logger.info)
