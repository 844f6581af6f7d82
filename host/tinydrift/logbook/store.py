"""The capture database (SQLite, WAL): schema, writer and readers. docs/protocol.md §5.

One transaction per read from the port: a killed capture keeps every frame it had parsed,
and readers (monitor, report) can follow a capture that is still running.
"""

from __future__ import annotations

import atexit
import os
import shutil
import sqlite3
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from tinydrift.atomic import try_hold
from tinydrift.errors import TinydriftError
from tinydrift.modeldir import ModelDir
from tinydrift.monitor.accuracy_estimate import (MIN_ANSWERS, ClassMix, estimate_since_alarm, impact_verdict,
                                                 sampling_half_width)
from tinydrift.monitor.config import MAX_COMMISSION
from tinydrift.link import protocol as P

SCHEMA_VERSION = 4  # 2: frames.alarm_index (protocol version 2); 3: sessions.detection_frames, wakes; 4: labels
N_SCORES = P.N_SCORES
SCORE_COLUMNS = tuple(f"score{i}" for i in range(N_SCORES))
INFERENCE_COLUMNS = ("inference_index", "predicted_class", "confidence", "alarm_bits", "entropy",
                     "atc", "moved_channels", "change_index", "alarm_index", *SCORE_COLUMNS)
FRAME_COLUMNS = ("session_id", "received_at", "seq", "type", "foreign_model", "raw", "model",
                 *INFERENCE_COLUMNS)
# Session counters; "foreign" is an SQL keyword, so these names are always quoted.
COUNTERS = ("frames", "inference_frames", "lost", "corrupt", "foreign", "text_lines", "restarts",
            "reopens", "bytes", "detection_frames", "wakes")
SCHEMA_2_COUNTERS = COUNTERS[:9]

# Labels for the device queued by `tinydrift label --db`, which the capture session holding
# the port sends (schema 4).
LABELS_SCHEMA = """
CREATE TABLE IF NOT EXISTS labels (
    id INTEGER PRIMARY KEY,
    queued_at REAL NOT NULL,
    inference_index INTEGER NOT NULL,
    label INTEGER NOT NULL,
    state TEXT NOT NULL DEFAULT 'queued',
    attempts INTEGER NOT NULL DEFAULT 0,
    session_id INTEGER REFERENCES sessions(id),
    sent_at REAL,
    command_seq INTEGER,
    answered_at REAL,
    result INTEGER
);
CREATE INDEX IF NOT EXISTS labels_by_state ON labels(state, id);"""

SCHEMA = f"""
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS sessions (
    id INTEGER PRIMARY KEY,
    started_at REAL NOT NULL,
    ended_at REAL,
    port TEXT NOT NULL,
    expected_hash TEXT,
    expected_from TEXT,
    end_reason TEXT,
    {", ".join(f'"{c}" INTEGER NOT NULL DEFAULT 0' for c in COUNTERS)}
);
CREATE TABLE IF NOT EXISTS frames (
    id INTEGER PRIMARY KEY,
    session_id INTEGER NOT NULL REFERENCES sessions(id),
    received_at REAL NOT NULL,
    seq INTEGER NOT NULL,
    type INTEGER NOT NULL,
    foreign_model INTEGER NOT NULL DEFAULT 0,
    raw BLOB NOT NULL,
    model TEXT,
    {", ".join(f"{c} INTEGER" for c in INFERENCE_COLUMNS)}
);
CREATE INDEX IF NOT EXISTS frames_by_type ON frames(type, id);
CREATE TABLE IF NOT EXISTS text_lines (
    id INTEGER PRIMARY KEY,
    session_id INTEGER NOT NULL REFERENCES sessions(id),
    received_at REAL NOT NULL,
    line TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS corrupt (
    id INTEGER PRIMARY KEY,
    session_id INTEGER NOT NULL REFERENCES sessions(id),
    received_at REAL NOT NULL,
    error TEXT NOT NULL,
    run BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY,
    session_id INTEGER NOT NULL REFERENCES sessions(id),
    at REAL NOT NULL,
    kind TEXT NOT NULL,
    seq INTEGER,
    count INTEGER,
    detail TEXT
);
{LABELS_SCHEMA}"""
# A label's way through capture (labels.state): queued by `tinydrift label --db`, sent by the
# capture session holding the port, then taken or refused as the device's ACK says; a label
# the device never answers is sent again by later reads, at most LABEL_MAX_ATTEMPTS times. A
# label still waiting when a HELLO comes in is never sent ("restarted"): the device restarts
# its inference count with each HELLO (a boot, or RESET), so the index names another
# inference now.
# Frames that tell the device's inference count: a HELLO restarts it at 0.
_COUNTING = tuple(int(t) for t in (P.FrameType.HELLO, P.FrameType.INFERENCE, P.FrameType.DETECTION,
                                   P.FrameType.HEARTBEAT, P.FrameType.STATUS))
LABEL_STATES = ("queued", "sent", "taken", "refused", "unanswered", "restarted")
LABEL_MAX_ATTEMPTS = 3

# SQLite's primary result codes (the low byte of an extended code).
_SQLITE_BUSY, _SQLITE_LOCKED, _SQLITE_READONLY, _SQLITE_IOERR, _SQLITE_CORRUPT, _SQLITE_FULL, _SQLITE_CANTOPEN = 5, 6, 8, 10, 11, 13, 14
# Space capture sets aside beside the database and frees when the disk fills up, so that it
# can still close its session (a few pages of the write-ahead log).
RESERVE_BYTES = 256 * 1024
# How long one commit waits for another process's write lock before capture goes back to
# reading the port (and keeps what it read in memory): short, so the device is never left
# unread for long.
BUSY_WAIT_MS = 100
# Setting up (schema, a new session) waits longer: nothing is read yet that could pile up.
OPEN_WAIT_MS = 30_000


class StoreBusy(Exception):
    """Another process holds the database's write lock; nothing was written, try again."""


class StoreFull(TinydriftError):
    """The database cannot grow (disk full, file size limit, I/O error); nothing of the
    failed transaction was written."""


def _is_busy(exc: BaseException) -> bool:
    """Whether an error is SQLite's: another connection holds the lock."""
    return isinstance(exc, sqlite3.Error) and getattr(exc, "sqlite_errorcode", 0) & 0xFF in (_SQLITE_BUSY, _SQLITE_LOCKED)


def sqlite_write_error(path: Path, exc: sqlite3.Error) -> Exception:
    """StoreBusy or StoreFull for a failed write to `path` (the capture store's, the gateway outbox's)."""
    if _is_busy(exc):
        return StoreBusy(str(exc))
    code = getattr(exc, "sqlite_errorcode", 0) & 0xFF
    cause = {_SQLITE_FULL: "the disk is full",
             _SQLITE_IOERR: f"{exc} (the disk is full, or failing)"}.get(code, str(exc))
    return StoreFull(f"cannot write to {path}: {cause}")


_INSERT_FRAME = f"INSERT INTO frames ({', '.join(FRAME_COLUMNS)}) VALUES ({', '.join('?' * len(FRAME_COLUMNS))})"
_NO_INFERENCE = (None,) * len(INFERENCE_COLUMNS)
_QUOTED_COUNTERS = ", ".join(f'"{c}"' for c in COUNTERS)
_UPDATE_COUNTERS = "UPDATE sessions SET " + ", ".join(f'"{c}"=?' for c in COUNTERS) + " WHERE id=?"


def to_int64(value: int) -> int:
    """A uint64 as SQLite's signed INTEGER (bit 63 becomes the sign)."""
    return value - (1 << 64) if value >= 1 << 63 else value


def from_int64(value: int) -> int:
    return value + (1 << 64) if value < 0 else value


def frame_row(session_id: int, received_at: float, frame: P.Frame, foreign: bool) -> tuple:
    """The `frames` row of one decoded frame."""
    if frame.TYPE is P.FrameType.INFERENCE:
        f = frame
        return (session_id, received_at, f.seq, 2, int(foreign), f.raw, f.model_id.hex(),
                f.inference_index, f.predicted_class, f.confidence, f.alarm_bits, f.entropy, f.atc,
                to_int64(f.moved_channels), f.change_index, f.alarm_index, *f.scores)
    model = getattr(frame, "model_hash", None)
    if model is None:
        model = getattr(frame, "model_id", None)  # DETECTION names its model as INFERENCE does
    return (session_id, received_at, frame.seq, int(frame.TYPE), int(foreign), frame.raw,
            model.hex() if model is not None else None, *_NO_INFERENCE)


class CaptureStore:
    """Writer side: one connection, explicit transactions."""

    def __init__(self, path: str | Path, durable: bool = False) -> None:
        self.path = Path(path)
        self.reserve = self.path.with_name(self.path.name + "-reserve")
        self.created = not self.path.exists()  # discard() removes only a database this opened anew
        self.made_folders = [p for p in self.path.parents if not p.exists()]  # deepest first, as discard() goes
        self._held: int | None = None  # the descriptor whose lock keeps other session writers out
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.conn = sqlite3.connect(str(self.path), isolation_level=None)
            self.conn.execute(f"PRAGMA busy_timeout={OPEN_WAIT_MS}")
            self._refuse_other_databases()
            problem = damage(self.conn)
            if problem is not None:
                self.conn.close()
                raise damaged(f"capture database {self.path}", self.path, problem)
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
            self.conn.executescript(SCHEMA)
            self.conn.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
            version = self.conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0]
            if version in ("1", "2", "3"):
                version = self._upgrade(version)
        except (sqlite3.Error, OSError) as exc:
            if _is_busy(exc):
                raise self._stayed_locked() from exc
            raise TinydriftError(f"cannot write capture database {self.path}: {exc} (choose another --db)") from exc
        if version != str(SCHEMA_VERSION):
            raise TinydriftError(f"{self.path} has capture schema {version}, this tinydrift writes {SCHEMA_VERSION}: use a new --db")
        try:
            self.reserve.write_bytes(bytes(RESERVE_BYTES))
        except OSError:
            self.release_reserve()  # a disk already too full for it: capture will say so soon enough

    def _stayed_locked(self) -> TinydriftError:
        return TinydriftError(f"capture database {self.path} stayed locked by another program for "
                              f"{OPEN_WAIT_MS // 1000} s: close that program, or choose another --db")

    def release_reserve(self) -> None:
        """Give back the space set aside: on a full disk, it lets the session be closed."""
        self.reserve.unlink(missing_ok=True)

    def _refuse_other_databases(self) -> None:
        """An SQLite file that holds tables but no capture schema belongs to something else:
        adding our tables to it (and switching it to WAL) would change a file we do not own."""
        tables = {r[0] for r in self.conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if tables and not (tables >= {"meta", "sessions", "frames"}):
            self.conn.close()
            shown = ", ".join(sorted(tables)[:5]) + (", ..." if len(tables) > 5 else "")
            raise TinydriftError(f"{self.path} is an SQLite database of something else (tables {shown}), "
                                 "not a tinydrift capture: choose another --db")

    def _upgrade(self, version: str) -> str:
        """Schema 1 -> 2: frames gain alarm_index (NULL for the frames already stored: version 1
        devices did not send it). 2 -> 3: sessions gain detection_frames and wakes, counted
        from the DETECTION frames each session already stored. 3 -> 4: the labels table
        (SCHEMA creates it; nothing to fill)."""
        c = self.conn
        c.execute("BEGIN IMMEDIATE")
        try:
            if "alarm_index" not in _columns(c, "frames"):
                c.execute("ALTER TABLE frames ADD COLUMN alarm_index INTEGER")
            for counter in COUNTERS[len(SCHEMA_2_COUNTERS):]:
                if counter not in _columns(c, "sessions"):
                    c.execute(f'ALTER TABLE sessions ADD COLUMN "{counter}" INTEGER NOT NULL DEFAULT 0')
            counts: dict[int, list[int]] = {}
            for session, raw in c.execute("SELECT session_id, raw FROM frames WHERE type=?",
                                          (int(P.FrameType.DETECTION),)):
                seen = counts.setdefault(session, [0, 0])
                seen[0] += 1
                seen[1] += P.parse_packet(raw).wake
            c.executemany('UPDATE sessions SET "detection_frames"=?, "wakes"=? WHERE id=?',
                          [(n, wakes, session) for session, (n, wakes) in counts.items()])
            c.execute("UPDATE meta SET value=? WHERE key='schema_version'", (str(SCHEMA_VERSION),))
            c.execute("COMMIT")
        except BaseException:
            c.execute("ROLLBACK")
            raise
        return str(SCHEMA_VERSION)

    def hold_alone(self) -> None:
        """Hold the database for one session writer (a capture or a replay) until close():
        two devices captured into one database at once mixed their sessions, and the labels
        queued in it went to whichever capture looked first. TinydriftError if another holds it."""
        if self._held is not None:
            return
        fd = os.open(self.path, os.O_RDONLY)
        if not try_hold(fd):  # beside SQLite's own locks, which are fcntl's
            os.close(fd)
            raise TinydriftError(f"another capture or replay is writing {self.path} now: a capture database takes one "
                                 "device at a time (the labels queued in it go to the device it holds); give this "
                                 "one its own --db, or stop the other first")
        self._held = fd

    def start_session(self, port: str, expected_hash: str | None, expected_from: str | None) -> int:
        """A new session's id (the database held alone until close()); from here on a busy
        database is waited for only briefly."""
        self.hold_alone()
        try:
            cur = self.conn.execute(
                "INSERT INTO sessions (started_at, port, expected_hash, expected_from) VALUES (?, ?, ?, ?)",
                (time.time(), port, expected_hash, expected_from))
        except sqlite3.Error as exc:
            raise (self._stayed_locked() if _is_busy(exc) else sqlite_write_error(self.path, exc)) from exc
        self.conn.execute(f"PRAGMA busy_timeout={BUSY_WAIT_MS}")
        return int(cur.lastrowid)

    def commit(self, session_id: int, frames: list[tuple], texts: list[tuple], corrupts: list[tuple],
               events: list[tuple], counters: dict[str, int], expected: tuple[str, str] | None = None) -> None:
        """Everything parsed from one read, the session's counters and (when it was learnt) its
        expected model hash and where it came from, in one transaction: the counters always
        equal the rows stored. Raises StoreBusy (nothing written, try again) or StoreFull
        (nothing written, the database cannot grow)."""
        c = self.conn
        try:
            c.execute("BEGIN IMMEDIATE")  # take the write lock first: a busy database fails here
        except sqlite3.Error as exc:
            raise sqlite_write_error(self.path, exc) from exc
        try:
            if frames:
                c.executemany(_INSERT_FRAME, frames)
            if texts:
                c.executemany("INSERT INTO text_lines (session_id, received_at, line) VALUES (?, ?, ?)", texts)
            if corrupts:
                c.executemany("INSERT INTO corrupt (session_id, received_at, error, run) VALUES (?, ?, ?, ?)", corrupts)
            if events:
                c.executemany("INSERT INTO events (session_id, at, kind, seq, count, detail) VALUES (?, ?, ?, ?, ?, ?)", events)
            c.execute(_UPDATE_COUNTERS,
                      (*[counters[k] for k in COUNTERS], session_id))
            if expected is not None:
                c.execute("UPDATE sessions SET expected_hash=?, expected_from=? WHERE id=?", (*expected, session_id))
            c.execute("COMMIT")
        except BaseException as exc:
            if c.in_transaction:
                c.execute("ROLLBACK")
            if isinstance(exc, sqlite3.Error):
                raise sqlite_write_error(self.path, exc) from exc
            raise

    def last_device_frame(self, port: str) -> tuple[int, float, str | None] | None:
        """(seq, received_at, expected hash) of the last device frame that the latest earlier
        session on `port` stored: where a new capture of the same device run picks up."""
        row = self.conn.execute(
            "SELECT f.seq, f.received_at, s.expected_hash FROM frames f JOIN sessions s ON s.id = f.session_id "
            "WHERE f.type < 128 AND s.port = ? ORDER BY f.id DESC LIMIT 1", (port,)).fetchone()
        return (int(row[0]), float(row[1]), row[2]) if row else None

    def end_session(self, session_id: int, reason: str, counters: dict[str, int]) -> None:
        """The stop event, the final counters and the end reason, in one small transaction
        (so it fits where a larger batch did not, e.g. on a disk that just filled up)."""
        c = self.conn
        try:
            c.execute("BEGIN IMMEDIATE")
            c.execute("INSERT INTO events (session_id, at, kind, seq, count, detail) VALUES (?, ?, 'stop', NULL, NULL, ?)",
                      (session_id, time.time(), reason))
            c.execute(_UPDATE_COUNTERS, (*[counters[k] for k in COUNTERS], session_id))
            c.execute("UPDATE sessions SET ended_at=?, end_reason=? WHERE id=?", (time.time(), reason, session_id))
            c.execute("COMMIT")
        except sqlite3.Error as exc:
            if c.in_transaction:
                c.execute("ROLLBACK")
            raise sqlite_write_error(self.path, exc) from exc

    # -- labels queued by `tinydrift label --db` (queue_label), sent by the capture session

    def _label_write(self, sql: str, rows: list[tuple]) -> None:
        """One small transaction on the labels table; StoreBusy or StoreFull as commit."""
        c = self.conn
        try:
            c.execute("BEGIN IMMEDIATE")
            c.executemany(sql, rows)
            c.execute("COMMIT")
        except sqlite3.Error as exc:
            if c.in_transaction:
                c.execute("ROLLBACK")
            raise sqlite_write_error(self.path, exc) from exc

    def queued_labels(self, limit: int = 16) -> list[tuple[int, float, int, int]]:
        """(id, queued at, inference index, label) of the labels waiting to be sent, oldest first."""
        return [tuple(r) for r in self.conn.execute(
            "SELECT id, queued_at, inference_index, label FROM labels WHERE state='queued' ORDER BY id LIMIT ?",
            (limit,))]

    def latest_hello_at(self) -> float:
        """When the newest HELLO stored was received (0: none): the device's inference count
        restarted then."""
        row = self.conn.execute("SELECT received_at FROM frames WHERE type=? ORDER BY id DESC LIMIT 1",
                                (int(P.FrameType.HELLO),)).fetchone()
        return row[0] if row else 0.0

    def count_before(self, at: float) -> int:
        """The device's inference count as the database knew it at `at` (0: nothing known):
        the index in the last frame received by then that tells it (a HELLO restarts it)."""
        row = self.conn.execute("SELECT raw FROM frames WHERE received_at <= ? AND type IN (?, ?, ?, ?, ?) "
                                "ORDER BY id DESC LIMIT 1", (at, *_COUNTING)).fetchone()
        if row is None:
            return 0
        frame = P.parse_packet(row[0])
        if isinstance(frame, P.Hello):
            return 0
        return frame.inferences if isinstance(frame, P.Status) else frame.inference_index

    def labels_restarted(self, label_ids: list[int]) -> None:
        """Queued labels whose inference count the device restarted before they were sent."""
        self._label_write("UPDATE labels SET state='restarted', answered_at=? WHERE id=? AND state='queued'",
                          [(time.time(), i) for i in label_ids])

    def labels_sent(self, session_id: int, sent: list[tuple[int, int]]) -> None:
        """Mark (label id, LABEL frame's seq) as sent by this session, before they go out."""
        self._label_write("UPDATE labels SET state='sent', attempts=attempts+1, session_id=?, sent_at=?, "
                          "command_seq=? WHERE id=?", [(session_id, time.time(), seq, i) for i, seq in sent])

    def labels_answered(self, answers: list[tuple[int, int]]) -> None:
        """(label id, ACK result): taken (0) or refused (anything else: not sent again)."""
        self._label_write("UPDATE labels SET state=CASE WHEN ?=0 THEN 'taken' ELSE 'refused' END, answered_at=?, "
                          "result=? WHERE id=?", [(result, time.time(), result, i) for i, result in answers])

    def labels_unanswered(self, label_ids: list[int]) -> None:
        """Sent labels no ACK answered (a lost port, a timeout, a session that ended first):
        queued again, or given up after LABEL_MAX_ATTEMPTS sends."""
        self._label_write(f"UPDATE labels SET state=CASE WHEN attempts >= {LABEL_MAX_ATTEMPTS} THEN 'unanswered' "
                          "ELSE 'queued' END WHERE id=? AND state='sent'", [(i,) for i in label_ids])

    def labels_left_sent(self) -> list[int]:
        """Labels an earlier session sent and never saw answered (it was killed or stopped)."""
        return [r[0] for r in self.conn.execute("SELECT id FROM labels WHERE state='sent' ORDER BY id")]

    def checkpoint(self) -> None:
        """Copy the write-ahead log into the database file and empty it."""
        try:
            self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
        except sqlite3.Error as exc:
            raise sqlite_write_error(self.path, exc) from exc

    def close(self) -> None:
        self.conn.close()
        self.release_reserve()
        if self._held is not None:
            os.close(self._held)  # the lock goes with it
            self._held = None

    def forget_session(self, session_id: int) -> None:
        """Remove a session and everything it stored (labels it sent stay, as requeued): a
        capture refused because its device runs another model than the database's, or than the
        one named, leaves the database as it found it. What such a device sent belongs in
        another --db; counted here, it made the report's loss count one of two devices' seqs."""
        c = self.conn
        try:
            c.execute("BEGIN IMMEDIATE")
            try:
                for table in ("frames", "text_lines", "corrupt", "events"):
                    c.execute(f"DELETE FROM {table} WHERE session_id=?", (session_id,))
                c.execute("UPDATE labels SET session_id=NULL WHERE session_id=?", (session_id,))
                c.execute("DELETE FROM sessions WHERE id=?", (session_id,))
                c.execute("COMMIT")
            except BaseException:
                c.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            raise sqlite_write_error(self.path, exc) from exc

    def discard(self) -> None:
        """Close, and remove the database if this store created it and nothing was written
        (or it was all forgotten): a capture that could not start, or was refused, leaves no
        file behind."""
        self.close()
        if self.created:
            for suffix in ("", "-wal", "-shm"):
                self.path.with_name(self.path.name + suffix).unlink(missing_ok=True)
            for folder in self.made_folders:  # and the folders made for it (while empty)
                try:
                    folder.rmdir()
                except OSError:
                    break

    def captured_model(self) -> bytes | None:
        """The model the latest earlier session captured (its hash, or the model id it was
        known by), None for a new database: a database holds one model's captures."""
        row = self.conn.execute("SELECT expected_hash FROM sessions WHERE expected_hash IS NOT NULL "
                                "ORDER BY id DESC LIMIT 1").fetchone()
        return bytes.fromhex(row[0]) if row else None


# ---------------------------------------------------------------------------- readers

def open_db(path: str | Path) -> sqlite3.Connection:
    """Open a capture database for reading; TinydriftError if it is missing, not one, or
    damaged. Works on read-only media too (see `_connect_read_only`)."""
    path = Path(path)
    if not path.is_file():
        raise TinydriftError(f"capture database {path} not found: run `tinydrift capture --db {path}` first")
    conn = None
    try:
        conn = _connect_read_only(path)
        conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        conn.execute("SELECT id FROM frames LIMIT 1").fetchall()
        problem = damage(conn)
    except sqlite3.DatabaseError as exc:
        if conn is not None:
            conn.close()  # closed, what it made beside the file goes too
        if not is_corrupt(exc):
            raise TinydriftError(f"{path} is not a tinydrift capture database ({exc}): "
                                 "give the file written by `tinydrift capture --db`") from exc
        problem = str(exc)
    if problem is not None:
        if conn is not None:
            conn.close()
        raise damaged(f"capture database {path}", path, problem)
    return conn


def damaged(what: str, path: str | Path, problem: str) -> TinydriftError:
    """The one line for an SQLite file of ours that is damaged: what is readable can be saved."""
    problem = " ".join(problem.replace("***", "").split())  # quick_check's report spans lines
    return TinydriftError(f"{what} is damaged ({problem}): the sqlite3 shell's `.recover` saves what is readable "
                          f"(sqlite3 {path} .recover | sqlite3 recovered.db)")


def is_corrupt(exc: BaseException) -> bool:
    """Whether an SQLite error says the file is damaged (not busy, missing or unwritable)."""
    return getattr(exc, "sqlite_errorcode", 0) & 0xFF == _SQLITE_CORRUPT


def damage(conn: sqlite3.Connection) -> str | None:
    """What SQLite's quick check finds wrong with an open database (None: nothing). A damaged
    page would otherwise surface later, as a traceback halfway through the work."""
    try:
        problem = conn.execute("PRAGMA quick_check(1)").fetchone()[0]
    except sqlite3.DatabaseError as exc:
        if not is_corrupt(exc):
            raise
        problem = str(exc)
    return None if problem == "ok" else problem


def capture_ready(path: str | Path) -> bool:
    """Whether a capture has made `path` a capture database yet: SQLite creates the file
    when capture connects, a moment before its tables exist, and a reader opening it in
    between would take it for something else."""
    path = Path(path)
    if not path.is_file():
        return False
    try:
        conn = sqlite3.connect(sqlite_uri(path, "mode=ro"), uri=True)
        try:
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            return tables >= {"meta", "sessions", "frames"} and conn.execute(
                "SELECT 1 FROM meta WHERE key='schema_version'").fetchone() is not None
        finally:
            conn.close()
    except sqlite3.Error:
        return False


def queue_label(db_path: str | Path, inference_index: int, label: int, patience: float = 5.0) -> int:
    """Queue a label for the device in a capture database, for the capture session holding
    its port to send (now, or when the next one starts); returns its id. Waits up to
    `patience` s for a running capture's write lock."""
    path = Path(db_path)
    if not path.is_file():
        raise TinydriftError(f"capture database {path} not found: labels queue in the database a `tinydrift capture "
                             f"--db` writes; give that file, or --port to send to a device no capture holds")
    try:
        conn = sqlite3.connect(str(path), isolation_level=None, timeout=patience)
        try:
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            if not tables >= {"meta", "sessions", "frames"}:
                raise TinydriftError(f"{path} is not a tinydrift capture database: give the file written by "
                                     "`tinydrift capture --db`")
            version = conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
            if version is None or int(version[0]) > SCHEMA_VERSION:
                raise TinydriftError(f"{path} has capture schema {version[0] if version else '?'}, newer than this "
                                     f"tinydrift's {SCHEMA_VERSION}: queue the label with the tinydrift that captures")
            hello = device_hello(conn)
            if runs_no_monitor(hello):
                # a wake-word build without a monitor answers every LABEL with result 6
                raise TinydriftError(f"the device in {path} runs no drift monitor (its HELLO says {hello.n_classes} class "
                                     "and no monitor state), so it refuses every label: build it with a calibrated "
                                     "monitor (`tinydrift wakeword calibrate`, then export and flash)")
            if hello is not None and hello.n_classes >= 2 and not 0 <= label < hello.n_classes:
                raise TinydriftError(f"label {label}: the device in {path} has {hello.n_classes} classes (0.."
                                     f"{hello.n_classes - 1}); give one of them (a wake-word device: 1 said, 0 not said)")
            conn.execute("BEGIN IMMEDIATE")
            for statement in filter(str.strip, LABELS_SCHEMA.split(";")):
                conn.execute(statement)
            # The device takes the first label of an inference and answers a second one as it
            # did the first: a second was once said "taken" and ignored. The same index before
            # the device's latest restart of its count (a HELLO) named another inference.
            earlier = conn.execute(
                "SELECT label, state FROM labels WHERE inference_index=? AND state IN ('queued', 'sent', 'taken') "
                "AND queued_at >= (SELECT COALESCE(MAX(received_at), 0) FROM frames WHERE type=?) ORDER BY id LIMIT 1",
                (inference_index, int(P.FrameType.HELLO))).fetchone()
            if earlier is not None:
                raise TinydriftError(f"inference {inference_index} already has label {earlier[0]} ({earlier[1]}) in "
                                     f"{path}: the device counts only the first label of an inference; nothing queued")
            cur = conn.execute("INSERT INTO labels (queued_at, inference_index, label) VALUES (?, ?, ?)",
                               (time.time(), inference_index, label))
            conn.execute("COMMIT")
            return int(cur.lastrowid)
        finally:
            conn.close()
    except sqlite3.OperationalError as exc:
        if "locked" not in str(exc) and "busy" not in str(exc):
            raise TinydriftError(f"cannot queue the label in {path}: {exc}; give the file `tinydrift capture --db` "
                                 "writes") from None
        # the right file, held: "give the file capture writes" sent the user looking for another
        raise TinydriftError(f"cannot queue the label in {path}: another process held its write lock for {patience:g} s "
                             "(a capture holds it for well under a second); try again, or stop the program that holds "
                             "it") from None
    except sqlite3.Error as exc:
        raise TinydriftError(f"cannot queue the label in {path}: {exc}; give the file `tinydrift capture --db` writes") from None


def held_by_a_session(db_path: str | Path) -> bool:
    """Whether a capture or replay holds the database now (CaptureStore.hold_alone): then it
    sends the labels queued there. A session row left open by a killed capture does not."""
    fd = os.open(db_path, os.O_RDONLY)
    try:
        return not try_hold(fd, shared=True)
    finally:
        os.close(fd)  # and with it the lock tried


def read_labels(conn: sqlite3.Connection, label_id: int | None = None) -> list[dict]:
    """Every label queued in a capture database (or the one `label_id`), in queue order, with
    its state (LABEL_STATES)."""
    if "labels" not in {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}:
        return []
    columns = ("id", "queued_at", "inference_index", "label", "state", "attempts", "session_id", "sent_at",
               "command_seq", "answered_at", "result")
    where, args = ("", ()) if label_id is None else (" WHERE id=?", (label_id,))
    return [dict(zip(columns, row)) for row in conn.execute(f"SELECT {', '.join(columns)} FROM labels{where} ORDER BY id",
                                                             args)]


def archive(db_path: str | Path, out_path: str | Path) -> DbSummary:
    """Copy a capture database, with whatever its -wal file still holds (after a killed
    capture), into one self-contained file (rollback journal, no -wal or -shm needed) to
    send or keep. The source is only read; `out_path` appears complete or not at all."""
    from tinydrift import atomic

    db_path, out_path = Path(db_path), Path(out_path)
    exists = TinydriftError(f"{out_path} already exists: give a new file name for the archive")
    if out_path.exists():  # before reading anything; the link below refuses one made meanwhile
        raise exists
    companions = [db_path.with_name(db_path.name + suffix) for suffix in ("-wal", "-shm", "-journal")]
    if os.path.abspath(out_path) in {os.path.abspath(p) for p in companions}:
        # opening the capture makes that file: "already exists" blamed the user for it
        raise TinydriftError(f"{out_path} is a file SQLite keeps beside {db_path.name}: give the archive another name")
    source = open_db(db_path)
    try:
        with atomic.atomic_path(out_path, new_only=True) as tmp:  # two archives to one name: the second is refused
            copy = sqlite3.connect(tmp)
            try:
                source.backup(copy)
                copy.execute("PRAGMA journal_mode=DELETE")
                # the copy's own counts: a capture writing meanwhile has moved the source's on
                summary = read_summary(copy)
            finally:
                copy.close()
        return summary
    except FileExistsError:
        raise exists from None
    except (sqlite3.Error, OSError) as exc:
        raise TinydriftError(f"cannot write the archive {out_path}: {exc}") from exc
    finally:
        source.close()


def sqlite_uri(path: str | Path, query: str) -> str:
    """An SQLite file: URI of a path with `query`: a name holding '#', '?' or '%' must be
    percent-encoded, or SQLite reads it as the URI's fragment or query and opens another file."""
    from urllib.parse import quote

    return f"file:{quote(os.fsencode(Path(path)))}?{query}"


class _ReadOnlyConnection(sqlite3.Connection):
    """A read-only connection of `_connect_read_only`; `made`: the -wal and -shm files that
    were not beside `database` when it opened, removed when it closes if nothing holds them."""

    database: Path | None = None
    made: tuple[Path, ...] = ()

    def close(self) -> None:
        super().close()
        made, self.made = self.made, ()
        if self.database is not None and any(p.exists() for p in made):
            _remove_unheld(self.database, made)


# Removes the files named after the database (argv[1]) if SQLite's EXCLUSIVE lock on it can be
# had: a write lock on its pending, reserved and shared bytes (from 2^30 on, 512 of them),
# granted only while no connection of any process holds the database (a connection in WAL
# mode holds its shared bytes as long as it is open), and keeping new ones out meanwhile,
# as SQLite does when its last connection deletes the -wal and -shm. A -wal is removed only
# if empty: a reader never writes one.
_REMOVE_UNHELD = """
import fcntl, os, sys
fd = os.open(sys.argv[1], os.O_RDWR)
try:
    fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 512, 1 << 30)
except OSError:
    sys.exit(0)
for name in sys.argv[2:]:
    try:
        if not name.endswith("-wal") or os.path.getsize(name) == 0:
            os.unlink(name)
    except FileNotFoundError:
        pass
"""


def _remove_unheld(database: Path, made: tuple[Path, ...]) -> None:
    """Remove the files a read-only connection made beside `database` (now closed), unless a
    connection holds the database: a capture that began meanwhile uses them. Checked and done
    in a child process: POSIX record locks belong to a process, and closing the file this one
    locked would drop the locks SQLite holds for any other connection of ours to it. Where
    that cannot be done (no write access to the file to lock it, no POSIX locks), they stay."""
    import subprocess
    import sys

    if os.name != "posix" or not os.access(database, os.W_OK):
        return
    try:
        subprocess.run([sys.executable, "-I", "-S", "-c", _REMOVE_UNHELD, os.fspath(database), *map(os.fspath, made)],
                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30,
                       check=False)
    except (OSError, subprocess.SubprocessError):
        pass  # the files stay, as they did before


def _connect_read_only(path: Path) -> sqlite3.Connection:
    """A read-only connection. A WAL database needs its -shm file, which SQLite cannot create
    on read-only media or in a folder this user may not write (another user's captures):
    there, a database without pending WAL content is opened as immutable,
    and one with it is read from a copy of both files in a temporary folder. A database no
    writer holds (no -wal file) is opened read-write but query-only where it may be: a
    read-only connection would leave the -wal and -shm files it makes behind, and the last
    connection to close a read-write one removes them."""
    wal = path.with_name(path.name + "-wal")
    if not wal.exists() and os.access(path, os.W_OK) and os.access(path.parent, os.W_OK):
        conn = sqlite3.connect(sqlite_uri(path, "mode=rw"), uri=True)
        conn.execute("PRAGMA query_only=1")
        return conn
    # Read-only, SQLite makes a -shm file (and a -wal if there was none) that it never removes:
    # closing the connection removes those it made, once no connection holds the database.
    absent = tuple(p for p in (wal, path.with_name(path.name + "-shm")) if not p.exists())
    conn = None
    try:
        conn = sqlite3.connect(sqlite_uri(path, "mode=ro"), uri=True, factory=_ReadOnlyConnection)
        conn.database, conn.made = path, absent
        conn.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchall()
        return conn
    except sqlite3.OperationalError as exc:
        if conn is not None:
            conn.close()
        # CANTOPEN on read-only media; READONLY where the folder is only not ours to write
        if (getattr(exc, "sqlite_errorcode", 0) & 0xFF not in (_SQLITE_CANTOPEN, _SQLITE_READONLY)
                or os.access(path.parent, os.W_OK)):
            raise
    if not wal.exists() or wal.stat().st_size == 0:
        return sqlite3.connect(sqlite_uri(path, "mode=ro&immutable=1"), uri=True)
    copy = Path(tempfile.mkdtemp(prefix="tinydrift-db-"))
    atexit.register(shutil.rmtree, copy, ignore_errors=True)
    shutil.copyfile(path, copy / path.name)
    shutil.copyfile(wal, copy / wal.name)
    return sqlite3.connect(sqlite_uri(copy / path.name, "mode=ro"), uri=True)


@dataclass
class DbSummary:
    sessions: int
    frames: int
    inference_frames: int
    lost: int
    corrupt: int
    foreign: int
    text_lines: int
    restarts: int
    reopens: int
    expected_hash: str | None
    ports: list[str]
    end_reasons: list[str | None]
    first_alarm: tuple[int, list[str]] | None  # (inference index, alarm names)
    first_change: int | None = None  # the device's estimate of where that alarm's change began
    detection_frames: int = 0  # a streaming detector's DETECTION frames
    wakes: int = 0  # those of them that are wakes


def _columns(conn: sqlite3.Connection, table: str) -> set[str]:
    return {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}


def _inference_select(conn: sqlite3.Connection, columns=INFERENCE_COLUMNS) -> str:
    """Frame columns for a SELECT; a schema 1 database (read-only, not upgraded) has no
    alarm_index and reads as NULL."""
    have = _columns(conn, "frames")
    return ", ".join(c if c in have else f"NULL AS {c}" for c in columns)


def read_summary(conn: sqlite3.Connection) -> DbSummary:
    have = _columns(conn, "sessions")  # a schema 2 database (read-only, not upgraded) counts no detections
    counters = ", ".join(f'"{c}"' if c in have else f'0 AS "{c}"' for c in COUNTERS)
    rows = conn.execute(f"SELECT {counters}, expected_hash, port, end_reason FROM sessions ORDER BY id").fetchall()
    totals = {k: sum(r[i] for r in rows) for i, k in enumerate(COUNTERS)}
    expected = next((r[len(COUNTERS)] for r in reversed(rows) if r[len(COUNTERS)]), None)
    alarm = conn.execute(f"SELECT {_inference_select(conn, ('inference_index', 'alarm_bits', 'alarm_index', 'change_index'))} "
                         "FROM frames WHERE type=2 AND foreign_model=0 AND (alarm_bits & 31) != 0 ORDER BY id LIMIT 1").fetchone()
    # Where the device said when its first alarm latched (protocol 2), that; else the first
    # frame seen with an alarm, which is later when frames were lost.
    first_alarm = (alarm[2] or alarm[0], P.alarm_names(alarm[1] & 0x1F)) if alarm else None
    first_change = (alarm[3] or None) if alarm else None
    return DbSummary(len(rows), totals["frames"], totals["inference_frames"], totals["lost"],
                     totals["corrupt"], totals["foreign"], totals["text_lines"], totals["restarts"],
                     totals["reopens"], expected, [r[len(COUNTERS) + 1] for r in rows],
                     [r[len(COUNTERS) + 2] for r in rows], first_alarm, first_change, totals["detection_frames"],
                     totals["wakes"])


def read_inferences(conn: sqlite3.Connection, include_foreign: bool = False) -> dict[str, np.ndarray]:
    """INFERENCE columns as arrays, in arrival order (scores as an [n, 8] array)."""
    where = "type=2" + ("" if include_foreign else " AND foreign_model=0")
    rows = conn.execute(f"SELECT id, seq, received_at, {_inference_select(conn)} FROM frames "
                        f"WHERE {where} ORDER BY id").fetchall()
    names = ("id", "seq", "received_at", *INFERENCE_COLUMNS)
    if not rows:
        out = {n: np.zeros(0, np.int64) for n in names}
        out["scores"] = np.zeros((0, N_SCORES), np.int64)
        return out
    try:
        table = np.array([[0 if v is None else v for v in r] for r in rows], dtype=np.float64)
    except (TypeError, ValueError) as exc:  # a column edited by hand: capture writes numbers only
        raise TinydriftError(f"an INFERENCE row of the database holds a value that is not a number ({exc}): it was "
                             "changed outside tinydrift; use the capture as it was written (or `tinydrift archive` "
                             "a copy before editing one)") from None
    out = {n: table[:, i] for i, n in enumerate(names)}
    for n in names:
        if n != "received_at":
            out[n] = out[n].astype(np.int64)
    first_score = names.index("score0")
    out["scores"] = table[:, first_score:first_score + N_SCORES].astype(np.int64)
    return out


DETECTION_FIELDS = ("inference_index", "probability", "window_mean", "flags", "stream_position")


def read_detections(conn: sqlite3.Connection, include_foreign: bool = False) -> dict[str, np.ndarray]:
    """A streaming detector's DETECTION frames as arrays in arrival order (id, seq,
    received_at and the frame's fields, decoded from the stored packet); `wake` marks the
    detections."""
    where = "type=?" + ("" if include_foreign else " AND foreign_model=0")
    rows = conn.execute(f"SELECT id, seq, received_at, raw FROM frames WHERE {where} ORDER BY id",
                        (int(P.FrameType.DETECTION),)).fetchall()
    frames = [P.parse_packet(r[3]) for r in rows]
    out = {"id": np.array([r[0] for r in rows], np.int64), "seq": np.array([r[1] for r in rows], np.int64),
           "received_at": np.array([r[2] for r in rows], np.float64)}
    for name in DETECTION_FIELDS:
        out[name] = np.array([getattr(f, name) for f in frames], np.int64)
    out["wake"] = (out["flags"] & P.DETECTION_FLAG_WAKE) != 0
    return out


@dataclass(frozen=True)
class WakesAround:
    """A streaming detector's wakes (a wake-word model's) before an alarm's change point and
    since the alarm: what its severity line shows instead of an accuracy. Nearly all such a
    model's inferences are "not said", so its share of confident ones barely moves when every
    wake is missed (trial 17: noise at 0 dB lost all three wakes after the change and read
    "harmless so far: -1.0 points", a harmless gain "estimated impact: -2.2")."""

    before: int
    before_inferences: int
    since: int
    since_inferences: int

    def text(self) -> str:
        from tinydrift.wakeword.monitor import INFERENCE_SECONDS

        def part(wakes: int, inferences: int, where: str) -> str:
            minutes = inferences * INFERENCE_SECONDS / 60
            rate = f" ({wakes / minutes:.1f} a minute)" if minutes >= 1 else ""
            return f"{wakes} wake{'' if wakes == 1 else 's'} in the {minutes:.1f} min {where}{rate}"

        return (f"{part(self.before, self.before_inferences, 'before the change point')}, "
                f"{part(self.since, self.since_inferences, 'since the alarm')}; no accuracy is estimated for a "
                "wake-word detector (a missed wake barely moves the share of its confident inferences, nearly all "
                "'not said'): compare the wakes with what was said, or label them (`tinydrift label`)")


def wakes_around(wake_index: np.ndarray, first: int, change: int | None, alarm_at: int, last: int) -> WakesAround:
    """WakesAround of one run whose inferences go from `first` to `last`, its wakes at the
    inference indices `wake_index` (the run's DETECTION frames that are wakes)."""
    wake_index = np.asarray(wake_index, np.int64)
    change = change or first
    return WakesAround(int(np.sum((wake_index >= first) & (wake_index < change))), max(0, change - first),
                       int(np.sum((wake_index > alarm_at) & (wake_index <= last))), max(0, last - alarm_at))


@dataclass(frozen=True)
class LabelsSince:
    """The labels the device took at inferences from `since` on, against its answers there:
    what an ERROR_RATE alarm rests on. The label-free estimate cannot see it: a label whose
    meaning moved (concept drift) leaves the inputs and the model's confidence as they were."""

    since: int
    taken: int
    wrong: int

    def text(self, accuracy_before: float | None) -> str:
        where = f"the labels taken from inference {self.since} on"
        if not self.taken:
            return (f"no label in this capture from inference {self.since} on (labels sent with `label --port` are not "
                    "stored); the label-free estimate cannot see a change of what the labels mean")
        right = 1.0 - self.wrong / self.taken
        before = ("" if accuracy_before is None else
                  f", where the label-free estimate, which a change of what the labels mean does not move, read "
                  f"{100 * accuracy_before:.1f} % before")
        return (f"{where}: {self.wrong} of {self.taken} disagreed with the model (accuracy on them {100 * right:.1f} % "
                f"± {sampling_half_width(right, self.taken):.1f}){before}")


def label_runs(labels: list[dict], data: dict[str, np.ndarray]) -> list[tuple[int, int] | None]:
    """Per label (read_labels rows), the run of the device's inference count it was taken in
    (1-based, run_starts; by when the device answered it) and the device's answer at its
    inference there (read_inferences `data`); None where it was not taken or that
    inference's frame is not in the capture."""
    index = data["inference_index"]
    bounds = [*run_starts(index), len(index)]
    runs = []
    for start, end in zip(bounds[:-1], bounds[1:]):
        until = float(data["received_at"][end]) if end < len(index) else float("inf")
        runs.append((float(data["received_at"][start]), until,
                     dict(zip(index[start:end].tolist(), data["predicted_class"][start:end].tolist()))))
    out = []
    for row in labels:
        found = None
        if row["state"] == "taken" and row["answered_at"] is not None:
            for run, (after, until, predicted) in enumerate(runs, 1):
                answer = predicted.get(int(row["inference_index"]))
                if after <= row["answered_at"] < until and answer is not None:
                    found = (run, answer)
        out.append(found)
    return out


def labels_since(labels: list[dict], runs: list[tuple[int, int] | None], run: int, since: int) -> LabelsSince:
    """LabelsSince over the `labels` taken in `run` (label_runs gives each one's) for
    inferences from `since` on."""
    mine = [(int(row["label"]), found[1]) for row, found in zip(labels, runs)
            if found is not None and found[0] == run and row["inference_index"] >= since]
    return LabelsSince(since, len(mine), sum(label != answer for label, answer in mine))


@dataclass
class AlarmSeverity:
    """One latched alarm type and what it costs, as the label-free accuracy estimate saw it
    (tinydrift.monitor.accuracy_estimate): the device's ATC just before the estimated change
    point, and the estimate at the latest frame (None: withheld under a sensor fault)."""

    name: str
    latched_at: int  # inference index of the first frame that carried it
    change_index: int | None  # where the device estimates the change began
    accuracy_before: float | None  # the estimate on the last frame before the change point
    accuracy_now: float | None  # the estimate on the latest frame
    basis: str = "ATC"  # what accuracy_now rests on
    answers: int = 0  # the answers since the alarm accuracy_now is over (0: it is the device's running ATC)
    too_few: int | None = None  # given the model folder, the answers since the alarm when too few to estimate over
    ran: int = 0  # the inferences the device ran since the alarm (more than `answers` when frames were lost)
    run: int = 1  # which run of the device's inference count (run_starts) it latched in
    since: int | None = None  # the first alarm's inference index, `answers` counted after it (None: this one's)
    wakes: WakesAround | None = None  # a streaming detector's: its wakes, shown instead of an accuracy
    labels: LabelsSince | None = None  # an ERROR_RATE alarm's: the labels since the change point

    @property
    def impact_points(self) -> float | None:
        if self.accuracy_before is None or self.accuracy_now is None:
            return None
        return 100.0 * (self.accuracy_now - self.accuracy_before)

    def basis_text(self) -> str:
        """What the figure now is: the device's running ATC (which still carries the stretch
        that set the alarm off), or the estimate over the answers since the alarm."""
        # A later alarm is read from the first one's (one change point): say so, or each line
        # seems to repeat the first alarm's figures as its own.
        alarm = ("the alarm" if self.since in (None, self.latched_at)
                 else f"the first alarm (inference {self.since})")
        if self.answers:
            received = f" received of {self.ran}" if self.ran > self.answers else ""
            return (f"{self.basis}{',' if self.basis != 'ATC' else ''} over the {self.answers} answers{received} "
                    f"since {alarm}")
        if self.too_few == 0:
            return f"the device's running ATC: no answer since {alarm} yet"
        if self.too_few is not None:
            return (f"the device's running ATC: only {self.too_few} answer{'' if self.too_few == 1 else 's'} since "
                    f"{alarm}, too few to estimate over")
        return "the device's running ATC"

    def impact(self) -> str:
        """The change point and the accuracy estimate before it and now, in words."""
        change = f" (change point ~inference {self.change_index})" if self.change_index else ""
        if self.wakes is not None:
            return f"{self.wakes.text()}{change}"
        if self.labels is not None:
            return self.labels.text(self.accuracy_before)
        if self.accuracy_now is None:
            # what a faulty sensor gives (silence, a constant, a black frame), all the time or on
            # and off, says nothing of the scene
            return (f"accuracy estimate {self.basis}, the sensor's input is dead, stuck or failing on and off, and "
                    f"what it gives while it fails tells nothing of the scene{change}")
        now = f"{100 * self.accuracy_now:.1f} % now"
        if self.impact_points is None:
            at = f" (~inference {self.change_index})" if self.change_index else ""
            return (f"estimated accuracy {now} ({self.basis_text()}); no frame from before the change point{at} "
                    "arrived to compare with")
        error = f" ± {self.half_width:.1f}" if self.half_width is not None else ""
        return (f"estimated accuracy {100 * self.accuracy_before:.1f} % before the change{change}, "
                f"{now} ({self.basis_text()}; {self.verdict}: {self.impact_points:+.1f}{error} points)")

    @property
    def half_width(self) -> float | None:
        """The 95 % half-width, in points, that the answers since the alarm alone give the
        estimate now; None for the device's running ATC."""
        if not self.answers or self.accuracy_now is None:
            return None
        return sampling_half_width(self.accuracy_now, self.answers)

    @property
    def verdict(self) -> str | None:
        """What the estimated change is called (accuracy_estimate.impact_verdict); None where
        there is no change to name (withheld, nothing from before the change point, or a
        streaming detector's, which shows its wakes instead)."""
        if self.impact_points is None or self.wakes is not None or self.labels is not None:
            return None
        return impact_verdict(self.impact_points, self.half_width)

    def line(self) -> str:
        return f"{self.name} latched at inference {self.latched_at}; {self.impact()}"


def alarm_severity(data: dict[str, np.ndarray], prior: np.ndarray | None = None,
                   atc_threshold: int | None = None, detections: dict[str, np.ndarray] | None = None,
                   labels: list[dict] | None = None) -> list[AlarmSeverity]:
    """Every alarm type latched in `read_inferences` output, in the order they latched, with
    the estimated accuracy before the change point and now (severity from impact). The
    device estimates one change point, the first alarm's; later alarms are measured from it
    too (the accuracy before anything changed). Now is the device's running ATC; given the
    monitor's ATC level (`atc_threshold`), the share of confident answers since the first
    alarm instead, once MIN_ANSWERS have arrived: the running figure still carries the
    stretch that set the alarm off, which was picked for its low confidence. Given the
    reference's class frequencies (`prior`) too, the confident answers of that stretch beyond
    their classes' shares in what the run heard before the change point come off it
    (accuracy_estimate; the reference's shares where the run heard too little before it).

    Each run of the device (its inference index starts again after a reset or a restart,
    which clear its alarms) is read on its own, its now at its own last frame: an alarm of a
    run that ended is not measured by the frames of the next (a SENSOR_FAULT reset away once
    read "harmless so far" from the repaired microphone's frames, and its own faulty frames
    counted as answers since a later run's alarm).

    A streaming detector's (`detections`, read_detections of the same capture, holding any
    frame): its wakes before the change point and since the alarm instead (WakesAround),
    each run's its DETECTION frames stored after the previous run's last INFERENCE frame and
    before the next run's first.

    An ERROR_RATE alarm's line, given the capture's `labels` (read_labels), gives the labels
    the run's device took from the change point on against its answers (LabelsSince)
    instead: what the alarm rests on, and what the label-free estimate cannot see."""
    bounds = [*run_starts(data["inference_index"]), len(data["inference_index"])]
    detector = detections is not None and len(detections["id"]) > 0
    taken_in = label_runs(labels, data) if labels else []
    found = []
    for run, (start, end) in enumerate(zip(bounds[:-1], bounds[1:]), 1):
        part = {k: v[start:end] for k, v in data.items()}
        for a in _run_severity(part, prior, atc_threshold):
            if labels is not None and a.name == "ERROR_RATE":
                a = replace(a, labels=labels_since(labels, taken_in, run, a.change_index or a.latched_at))
            if detector:
                lo = data["id"][start - 1] if run > 1 else -np.inf
                hi = data["id"][end] if end < len(data["id"]) else np.inf
                ours = (detections["id"] > lo) & (detections["id"] < hi) & detections["wake"]
                a = replace(a, wakes=wakes_around(detections["inference_index"][ours], int(part["inference_index"][0]),
                                                  a.change_index, a.since if a.since is not None else a.latched_at,
                                                  int(part["inference_index"][-1])))
            found.append(replace(a, run=run))
    return found


@dataclass
class AnswerTally:
    """The answers since an alarm in the device's current run, per predicted class those at or
    above the ATC level: counted on from the last frame seen at each call, so a live view never
    reads a long run again from the start."""

    key: tuple = ()
    last_id: int = 0
    heard: int = 0
    confident: np.ndarray | None = None
    before: np.ndarray | None = None  # the run's answers before the change point: their classes

    def update(self, conn: sqlite3.Connection, start: int, alarm_at: int, change: int, threshold: int,
               classes: int) -> None:
        if self.key != (start, alarm_at, change, threshold, classes):
            self.key, self.last_id, self.heard = (start, alarm_at, change, threshold, classes), start, 0
            self.confident = np.zeros(classes, np.int64)
            self.before = np.array([row[0] for row in conn.execute(
                "SELECT predicted_class FROM frames WHERE type=2 AND foreign_model=0 AND id > ? AND inference_index < ?",
                (start, change))], dtype=np.int64)
        top = conn.execute("SELECT COALESCE(MAX(id), 0) FROM frames WHERE type=2").fetchone()[0]
        since = "type=2 AND foreign_model=0 AND id > ? AND id <= ? AND inference_index > ?"
        self.heard += conn.execute(f"SELECT COUNT(*) FROM frames WHERE {since}",
                                   (self.last_id, top, alarm_at)).fetchone()[0]
        for predicted, count in conn.execute(f"SELECT predicted_class, COUNT(*) FROM frames WHERE {since} AND "
                                             "confidence >= ? GROUP BY predicted_class",
                                             (self.last_id, top, alarm_at, threshold)):
            if predicted < classes:
                self.confident[predicted] += count
        self.last_id = max(self.last_id, top)


def severity_now(conn: sqlite3.Connection, last: "P.Inference", accuracy_before: float | None,
                 model: "ModelInfo | None", tally: AnswerTally | None = None,
                 wakes: list[tuple[int, int]] | None = None) -> AlarmSeverity:
    """The severity of the alarms latched in `last` (the newest INFERENCE frame) with "now" as
    alarm_severity reads it: over the answers since the alarm in the device's current run
    (after its latest HELLO: a boot or a RESET), given the model folder's ATC level; the
    device's running ATC without it. The live view and the report so show one figure for one
    capture. `tally` carries the count between calls. A streaming detector's (`wakes`: the
    (frame id, inference index) of every wake the capture holds, None for a classifier):
    its wakes around the alarm instead (WakesAround)."""
    latched = last.alarm_bits & 0x1F
    start = conn.execute("SELECT COALESCE(MAX(id), 0) FROM frames WHERE type=?", (int(P.FrameType.HELLO),)).fetchone()[0]
    # a frame without the alarm's index (protocol 1): the first frame seen to carry an alarm
    alarm_at = last.alarm_index or conn.execute(
        "SELECT MIN(inference_index) FROM frames WHERE type=2 AND foreign_model=0 AND id > ? AND (alarm_bits & 31) != 0",
        (start,)).fetchone()[0] or last.inference_index
    confident, heard, mix = None, 0, None
    if model is not None and model.atc_threshold is not None:
        classes = len(model.class_prior) if model.class_prior is not None else len(model.labels or ()) or 256
        tally = tally if tally is not None else AnswerTally()
        tally.update(conn, start, alarm_at, last.change_index or 0, model.atc_threshold, classes)
        confident, heard = tally.confident, tally.heard
        mix = ClassMix.heard(tally.before, model.class_prior)
    now, answers, too_few = _now_since_alarm(last.atc / 65536, confident, heard, mix, latched)
    around = None
    if wakes is not None:
        first = conn.execute("SELECT MIN(inference_index) FROM frames WHERE type=2 AND foreign_model=0 AND id > ?",
                             (start,)).fetchone()[0] or 1
        around = wakes_around(np.array([index for row, index in wakes if row > start], np.int64), first,
                              last.change_index or None, alarm_at, last.inference_index)
    taken = None
    if latched & (1 << P.ALARM_NAMES.index("ERROR_RATE")):
        # the current run's inferences, as label_runs reads a capture's (one run: after the latest HELLO)
        rows = conn.execute("SELECT inference_index, received_at, predicted_class FROM frames WHERE type=2 AND "
                            "foreign_model=0 AND id > ? ORDER BY id", (start,)).fetchall()
        run = {name: np.array([r[k] for r in rows]) for k, name in
               enumerate(("inference_index", "received_at", "predicted_class"))}
        labels = read_labels(conn)
        taken = labels_since(labels, label_runs(labels, run), 1, last.change_index or alarm_at)
    return AlarmSeverity(", ".join(P.alarm_names(latched)), alarm_at, last.change_index or None,
                         accuracy_before, now.value, now.basis, answers, too_few,
                         max(0, last.inference_index - alarm_at), wakes=around, labels=taken)


def _now_since_alarm(running_atc: float, confident: np.ndarray | None, heard: int, mix: ClassMix | None,
                     alarms: int):
    """A severity line's "now" (estimate_since_alarm) with what AlarmSeverity records of it:
    the answers it is over (0: the running ATC) and, given an ATC level, how few there were
    when too few."""
    now = estimate_since_alarm(running_atc, confident, heard, mix, alarms)
    over = confident is not None and heard >= MIN_ANSWERS
    return (now, *((heard, None) if over else (0, heard if confident is not None else None)))


def summary_channels(model: "ModelInfo | None", hello: "P.Hello | None") -> list[str] | None:
    """The input summary channels' names: the model folder's, else those of the one layout
    HELLO's channel count fits (monitor.channels), else None."""
    from tinydrift.monitor.channels import channel_names

    if model is not None and model.summary_channels:
        return model.summary_channels
    return channel_names(hello.n_channels) if hello is not None else None


def run_starts(index: np.ndarray) -> list[int]:
    """Where each run of the device's inference count begins among frames in arrival order:
    the count starts again after a RESET or a restart (0 for the first run)."""
    return [0, *(np.flatnonzero(np.diff(index) < 0) + 1).tolist()]


def monitor_resets(conn: sqlite3.Connection) -> int:
    """The RESET commands the device accepted (each answered by an ACK): they restart its
    inference count and monitor without a boot, so they are no restart of the device."""
    accepted = 0
    for (raw,) in conn.execute("SELECT raw FROM frames WHERE type=?", (int(P.FrameType.ACK),)):
        frame = P.parse_packet(raw)
        accepted += isinstance(frame, P.Ack) and frame.command_type == P.FrameType.RESET and frame.result == 0
    return accepted


def confident_by_class(data: dict[str, np.ndarray], span: np.ndarray, prior: np.ndarray | None,
                       atc_threshold: int | None) -> np.ndarray | None:
    """Per predicted class, the answers of `span` at or over the ATC level (the class-mix
    excess reads them; as many classes as `prior` has); None without the level."""
    if atc_threshold is None or "confidence" not in data or "predicted_class" not in data:
        return None
    sure = span & (data["confidence"] >= atc_threshold)
    classes = len(prior) if prior is not None else int(data["predicted_class"].max()) + 1
    return np.bincount(data["predicted_class"][sure], minlength=classes)[:classes]


def first_change(run: dict[str, np.ndarray]) -> int | None:
    """The change point the first alarm of one run of the device estimated (None: no alarm,
    or none estimated)."""
    latched = np.flatnonzero(run["alarm_bits"] & 0x1F)
    return (int(run["change_index"][latched[0]]) or None) if latched.size else None


def heard_mix(run: dict[str, np.ndarray], prior: np.ndarray | None) -> ClassMix | None:
    """The class mix one run of the device heard before its first alarm's change point (its
    answers' classes; none before it, or no change point: the reference's, `prior`)."""
    if prior is None or "predicted_class" not in run:
        return None
    change = first_change(run)
    before = run["inference_index"] < change if change else np.zeros(len(run["inference_index"]), bool)
    return ClassMix.heard(run["predicted_class"][before], prior)


def _run_severity(data: dict[str, np.ndarray], prior: np.ndarray | None,
                  atc_threshold: int | None) -> list[AlarmSeverity]:
    """alarm_severity of one run of the device (its inference index only rises)."""
    index, bits, atc = data["inference_index"], data["alarm_bits"], data["atc"] / 65536.0
    latched = np.flatnonzero(bits & 0x1F)
    if not latched.size:
        return []
    alarm_at = int(data["alarm_index"][latched[0]]) or int(index[latched[0]])
    change = first_change(data)
    # The device's running estimate just before the change point, if such a frame arrived.
    before = np.flatnonzero(index[:latched[0]] < change) if change else np.zeros(0, np.int64)
    after = index > alarm_at
    confident, heard = confident_by_class(data, after, prior, atc_threshold), int(after.sum())
    now, answers, too_few = _now_since_alarm(float(atc[-1]), confident, heard, heard_mix(data, prior),
                                             int(bits[-1]) & 0x1F)
    found = []
    for t, name in enumerate(P.ALARM_NAMES):
        hit = np.flatnonzero(bits & (1 << t))
        if not hit.size:
            continue
        first = hit[0]
        latched_at = int(data["alarm_index"][first]) if first == latched[0] else 0
        found.append(AlarmSeverity(name, latched_at or int(index[first]), change,
                                   float(atc[before[-1]]) if before.size else None, now.value, now.basis,
                                   answers, too_few, max(0, int(index[-1]) - alarm_at), since=alarm_at))
    return sorted(found, key=lambda a: a.latched_at)


def latest_frame(conn: sqlite3.Connection, frame_type: P.FrameType, include_foreign: bool = False) -> P.Frame | None:
    where = "" if include_foreign else " AND foreign_model=0"
    row = conn.execute(f"SELECT raw FROM frames WHERE type=?{where} ORDER BY id DESC LIMIT 1",
                       (int(frame_type),)).fetchone()
    if row is None:
        return None
    frame = P.parse_packet(row[0])
    return None if isinstance(frame, P.ProtocolError) else frame


def device_hello(conn: sqlite3.Connection, include_foreign: bool = False) -> P.Hello | None:
    """What the device says of itself: its newest HELLO frame, or the HELLO a STATUS carries
    (protocol 5) where no HELLO frame came (a capture begun after the boot: capture asks for
    a STATUS on connecting) or where a later STATUS names another model, device or boot than
    the newest HELLO (its HELLO was missed). A capture begun at the boot holds the HELLO and
    then its STATUS, which says the same: the HELLO stands. The HELLO frames alone mark where
    the device's inference count restarted."""
    where = "" if include_foreign else " AND foreign_model=0"
    newest_status = None
    for (raw,) in conn.execute(f"SELECT raw FROM frames WHERE type IN (?, ?){where} ORDER BY id DESC",
                               (int(P.FrameType.HELLO), int(P.FrameType.STATUS))):
        frame = P.parse_packet(raw)
        if isinstance(frame, P.Status) and frame.hello is not None and newest_status is None:
            newest_status = frame.hello
        elif isinstance(frame, P.Hello):
            if newest_status is not None and _identity(newest_status) != _identity(frame):
                return newest_status
            return frame
    return newest_status


def _identity(hello: P.Hello) -> tuple:
    return hello.model_hash, hello.device_id or 0, hello.boot_count or 0


def check_model_matches(conn: sqlite3.Connection, model: "ModelInfo") -> None:
    """Refuse a model folder whose hash is not the one the captured device reports (its
    HELLO, else its latest INFERENCE frame): its thresholds and labels would describe another model."""
    for frame_type in (P.FrameType.HELLO, P.FrameType.INFERENCE, P.FrameType.DETECTION):
        frame = (device_hello(conn, include_foreign=True) if frame_type is P.FrameType.HELLO
                 else latest_frame(conn, frame_type, include_foreign=True))
        if frame is None:
            continue
        reported = frame.model_hash if frame_type is P.FrameType.HELLO else frame.model_id
        if model.model_hash[:len(reported)] != reported:
            raise TinydriftError(
                f"the device in this capture runs model {reported.hex()[:16]}, but {model.source} is model "
                f"{model.model_hash.hex()[:16]}: give the model folder the device was flashed with, or omit --model-dir")
        # A wake-word model's hash leaves out its monitor, calibrated apart: the levels the
        # device announced tell whether the folder's calibration is the one it runs.
        if frame_type is P.FrameType.HELLO and model.drift_thresholds is not None and (
                tuple(frame.drift_thresholds) != tuple(model.drift_thresholds)
                or tuple(frame.warning_thresholds) != tuple(model.warning_thresholds)):
            raise TinydriftError(
                f"the device in this capture runs model {reported.hex()[:16]} with other drift levels than "
                f"{model.source}'s monitor config (another calibration, or none): give the folder the device was "
                "built from, or omit --model-dir to read the levels the device announced")
        return


def recent_text(conn: sqlite3.Connection, n: int = 5) -> list[str]:
    rows = conn.execute("SELECT line FROM text_lines ORDER BY id DESC LIMIT ?", (n,)).fetchall()
    return [r[0] for r in reversed(rows)]


def banner_fields(conn: sqlite3.Connection, hello: "P.Hello | None") -> dict[str, str]:
    """The fields of the app's latest boot line ("tinydrift app board=B model=ID classes=a,b,...
    commission=N reference=kept|learning") that names the model `hello` names; {} if none does. HELLO carries the
    class count only: without a model folder, the names and commission_n come from here."""
    if hello is None:
        return {}
    rows = conn.execute("SELECT line, received_at FROM text_lines WHERE line LIKE 'tinydrift app board=%' "
                        "ORDER BY id DESC LIMIT 20").fetchall()
    for line, received_at in rows:
        fields = boot_line_fields(line, hello.model_hash)
        if fields:
            if fields.get("reference") == "kept" and _hellos_since(conn, received_at) > 1:
                # its boot sent one HELLO, a RESET one more: the RESET forgot the kept
                # reference, and the device learns again
                del fields["reference"]
            return fields
    return {}


def reference_in_effect(conn: sqlite3.Connection) -> dict[str, str]:
    """The app's latest line on the reference in effect ("tinydrift app reference=kept|learned
    dead=3.1%"), as fields, if it still holds; {} if none came or a RESET has forgotten it.
    A kept one is printed at its boot, before that boot's HELLO; a learned one after the
    inference that ended commissioning, and a RESET sends a HELLO that starts learning anew."""
    row = conn.execute("SELECT line, received_at FROM text_lines WHERE line LIKE 'tinydrift app reference=%' "
                       "ORDER BY id DESC LIMIT 1").fetchone()
    if row is None:
        return {}
    fields = app_line_fields(row[0])
    if fields.get("reference") == "kept":
        return fields if _hellos_since(conn, row[1]) <= 1 else {}
    # learned mid-run: a HELLO read with it (one read of the port shares its time) came before it
    later = conn.execute("SELECT COUNT(*) FROM frames WHERE type=? AND received_at>?",
                         (int(P.FrameType.HELLO), row[1])).fetchone()[0]
    return fields if later == 0 else {}


def _hellos_since(conn: sqlite3.Connection, since: float) -> int:
    """HELLO frames received from `since` on (what one read of the port brings shares its
    time): one a boot, one more a RESET. Counted, not parsed: the live view asks at each
    refresh."""
    return conn.execute("SELECT COUNT(*) FROM frames WHERE type=? AND received_at>=?",
                        (int(P.FrameType.HELLO), since)).fetchone()[0]


def app_line_fields(line: str) -> dict[str, str]:
    """The key=value fields after "tinydrift app" in one of the app's text lines."""
    return dict(part.split("=", 1) for part in line.strip().split(" ")[2:] if "=" in part)


def boot_line_fields(line: str, model_hash: bytes | None) -> dict[str, str]:
    """The key=value fields of one boot line, if it names the model `model_hash` ({} if not,
    or if `model_hash` is unknown)."""
    if model_hash is None or not line.startswith("tinydrift app board="):
        return {}
    fields = app_line_fields(line)
    shown, model = fields.get("model", ""), model_hash.hex()
    return fields if shown and (model.startswith(shown) or shown.startswith(model)) else {}


def banner_labels(fields: dict[str, str], hello: "P.Hello | None") -> list[str] | None:
    """The class names of a boot line's fields, if there are as many as HELLO's classes."""
    names = fields.get("classes", "").split(",")
    return names if hello is not None and fields and len(names) == hello.n_classes else None


def banner_commission_n(fields: dict[str, str], model_commission_n: int | None = None) -> int | None:
    """The inferences after the boot the monitor learns its reference on: 0 where the boot
    line says it took back one kept from an earlier boot (`reference=kept`), else the model
    folder's `model_commission_n` where given, else the boot line's (None: not said, as when
    the capture began after the boot)."""
    if fields.get("reference") == "kept":
        return 0
    if model_commission_n is not None:
        return model_commission_n
    value = fields.get("commission", "")
    return int(value) if value.isdigit() else None


# ---------------------------------------------------------------------------- model directory

@dataclass
class ModelInfo:
    """What the host knows of the model from its directory (docs/protocol.md §6)."""

    model_hash: bytes | None
    warning_thresholds: tuple[int, ...] | None
    drift_thresholds: tuple[int, ...] | None
    labels: list[str] | None
    source: Path
    detector: dict | None = None  # a streaming detector's detector.json: its wake word, cutoff, window
    class_prior: np.ndarray | None = None  # the reference's predicted-class frequencies
    atc_threshold: int | None = None  # the confidence (0-256) the device's ATC counts as right
    commission_n: int = 0  # inferences after a reset the monitor learns its own reference on, judging none
    summary_channels: list[str] | None = None  # what each input summary channel is (a moved-channel mask's bits)



# Why no alarm can come from a device whose HELLO says it keeps no monitor state (a wake-word
# detector exported without a calibrated monitor): a report saying only "no alarm" read as
# if its drift were watched.
NO_MONITOR = ("no drift monitor on this device (its HELLO says it keeps no monitor state), so no alarm can come: "
              "calibrate one (`tinydrift wakeword calibrate MODEL --out FOLDER`), then build and flash FOLDER again")


def runs_no_monitor(hello: "P.Hello | None") -> bool:
    return hello is not None and hello.state_bytes == 0


def still_commissioning(commission_n: int | None, last_index: int | None, alarmed: bool, what: str,
                        boot_line_seen: bool = True) -> str | None:
    """Why no alarm came in `what` (a capture, a replay) that ends at inference `last_index`:
    the monitor was still learning its reference (frames do not carry commission_n; the
    model folder and the app's boot line do; None: neither was at hand). None if it could
    have alarmed."""
    if alarmed or last_index is None:
        return None
    if commission_n is None:
        # a capture begun after the boot, without the model folder: every score read 0 and "ok"
        # through a device still learning, like one judging a calm stream
        if last_index > MAX_COMMISSION:
            return None
        return (f"perhaps still commissioning: {what} ends at inference {last_index}, and a monitor learns its "
                f"reference on up to its first {MAX_COMMISSION:,} inferences after a reset, judging none of them; "
                "how many, neither a model folder nor the app's boot line here says: give --model-dir")
    if commission_n <= 0 or last_index > commission_n:
        return None
    if not boot_line_seen:
        # a device that took back a reference kept from an earlier boot learns nothing now
        return (f"perhaps still commissioning: the monitor learns its reference on the first {commission_n} "
                f"inferences after a reset or a boot and judges none of them, and {what} ends at inference "
                f"{last_index}; unless it took back a reference kept from an earlier boot, which its boot line, "
                "before this capture began, would say")
    return (f"still commissioning: the monitor learns its reference on the first {commission_n} inferences "
            f"after a reset and judges none of them, and {what} ends at inference {last_index}")


def _pad(values) -> tuple[int, ...]:
    values = [int(v) for v in values][:N_SCORES]
    return tuple(values + [0] * (N_SCORES - len(values)))


def load_model_info(model_dir: str | Path) -> ModelInfo:
    """Hash, thresholds and labels of an exported model folder (its reference.json; a
    streaming detector's detector.json and, once calibrated, monitor.json)."""
    folder = ModelDir(model_dir).require()
    detector = folder.detector() if folder.is_detector else None
    if not folder.has_monitor:
        return ModelInfo(folder.model_hash, None, None, folder.labels, folder.path, detector)
    from tinydrift.monitor.config import MonitorConfig

    # checked as the firmware and `fleet simulate` check it: a config they refuse is not shown as if sound
    config = MonitorConfig.of_model(folder)
    warning, drift = _pad(config.score_warning), _pad(config.score_drift)
    prior = np.asarray(config.prior_q16, dtype=np.float64) / 65536 if len(config.prior_q16) else None
    from tinydrift.monitor.channels import channel_names

    layout = folder.reference().get("input_summary") if folder.reference_json.is_file() else None
    return ModelInfo(folder.model_hash, warning, drift, folder.labels, folder.path, detector, class_prior=prior,
                     atc_threshold=int(config.atc_threshold), commission_n=int(config.commission_n),
                     summary_channels=channel_names(config.n_summary, layout))
