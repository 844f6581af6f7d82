"""The gateway's outbox: MQTT messages on disk (SQLite, WAL) until the broker has them.

A frame read from a port goes in with the read that brought it, in one transaction, before
anything is published; it is marked sent only when the broker's PUBACK for it arrives. So a
broker that is down, or a gateway that is killed, loses nothing the gateway read: a new
gateway on the same outbox publishes what is still in it, again if need be (the collector
knows a frame it already has by its device, boot and sequence number).

A PUBACK is not the end of the road: a broker keeps what it queued for a collector in memory
and saves it now and then (mosquitto: every autosave_interval, and when it stops cleanly), so
one that crashes loses what came since its last save. Sent messages therefore stay for
KEEP_SENT_S more seconds (the gateway's --resend-window), and whenever the gateway connects (after an outage, or at its
start) it sends those again: the collectors drop the copies they already stored.

Beside the messages, each port's last identity (device id, boot count, model) and sequence:
a gateway restarted while the device runs on knows whose frames it reads before the next HELLO.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from pathlib import Path

from tinydrift.atomic import try_hold
from tinydrift.errors import TinydriftError
from tinydrift.fleet.envelope import Identity
from tinydrift.logbook.store import damage, damaged, from_int64, is_corrupt, sqlite_write_error, to_int64

SCHEMA_VERSION = 2  # 2: sent_at (version 1 outboxes are brought up to it as they open)
# How long a message the broker acknowledged stays, to be sent again when the gateway next
# connects: longer than the broker's save interval (`fleet up` runs mosquitto with
# autosave_interval 15 s; mosquitto's own default is 1,800 s: set it below this).
KEEP_SENT_S = 60.0
SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,  -- never reused: the publisher walks ids upwards
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    sent_at REAL  -- when the broker acknowledged it (NULL: not yet)
);
CREATE TABLE IF NOT EXISTS ports (
    url TEXT PRIMARY KEY,
    device_id INTEGER NOT NULL,
    boot_count INTEGER NOT NULL,
    model_id BLOB NOT NULL,
    last_seq INTEGER,
    last_at REAL
);
"""
OUR_TABLES = {"meta", "outbox", "ports", "sqlite_sequence"}

class _Owner:
    """An exclusive lock on PATH.lock while the gateway (or simulation) runs: one writer an
    outbox, since two would publish every frame twice under one MQTT client id, each taking
    the session from the other. (A file of its own: closing any descriptor of the database
    file would drop SQLite's own locks on it.) The file is removed on release."""

    def __init__(self, path: Path) -> None:
        import os

        self.path = path.with_name(path.name + ".lock")
        while True:
            try:
                self.file = open(self.path, "a")
            except OSError as exc:
                raise TinydriftError(f"cannot open the outbox {path}: {exc} (choose another --outbox)") from exc
            if not try_hold(self.file):
                self.file.close()
                raise TinydriftError(f"{path} is the outbox of a gateway (or fleet simulate) that is running: stop it "
                                     "first, or give this one another --outbox")
            try:  # the file locked is still the one at the path (not one a releasing owner removed)
                if os.stat(self.path).st_ino == os.fstat(self.file.fileno()).st_ino:
                    return
            except FileNotFoundError:
                pass
            self.file.close()

    def release(self) -> None:
        self.path.unlink(missing_ok=True)  # before the lock goes: a waiting owner then finds it gone
        self.file.close()


class Outbox:
    """One connection shared by the gateway's threads (a lock serializes them): the port
    readers add, the publisher reads and removes."""

    def __init__(self, path: str | Path, durable: bool = False, keep_sent_s: float = KEEP_SENT_S) -> None:
        self.path = Path(path)
        self.keep_sent_s = float(keep_sent_s)  # 0: an acknowledged message goes at once
        self._lock = threading.Lock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise TinydriftError(f"cannot open the outbox {self.path}: {exc} (choose another --outbox)") from exc
        self._owner = _Owner(self.path)
        try:
            self.conn = sqlite3.connect(str(self.path), isolation_level=None, check_same_thread=False)
            tables = {r[0] for r in self.conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            problem = damage(self.conn)
            if problem is not None:  # its waiting frames are worth saving: not "choose another"
                self.conn.close()
                raise damaged(f"the outbox {self.path}", self.path, problem)
            if tables - OUR_TABLES:
                self.conn.close()
                raise TinydriftError(f"{self.path} is an SQLite database of something else (tables "
                                     f"{', '.join(sorted(tables - OUR_TABLES)[:5])}), not a gateway outbox: "
                                     "choose another --outbox")
            self.conn.execute("PRAGMA busy_timeout=5000")
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
            self.conn.executescript(SCHEMA)
            self.conn.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
            version = self.conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0]
            if version == "1":  # every message in it waits: none was acknowledged yet
                self.conn.executescript("BEGIN IMMEDIATE; ALTER TABLE outbox ADD COLUMN sent_at REAL; "
                                        f"UPDATE meta SET value='{SCHEMA_VERSION}' WHERE key='schema_version'; COMMIT;")
                version = str(SCHEMA_VERSION)
            if version == str(SCHEMA_VERSION):  # what waits, and what was sent long enough ago, found without a scan
                self.conn.execute("CREATE INDEX IF NOT EXISTS outbox_sent ON outbox (sent_at)")
        except sqlite3.Error as exc:
            self._owner.release()
            if is_corrupt(exc):
                raise damaged(f"the outbox {self.path}", self.path, str(exc)) from exc
            raise TinydriftError(f"cannot open the outbox {self.path}: {exc} (choose another --outbox)") from exc
        except TinydriftError:
            self._owner.release()
            raise
        if version != str(SCHEMA_VERSION):
            self.close()
            raise TinydriftError(f"{self.path} has outbox schema {version}, this tinydrift writes {SCHEMA_VERSION}: "
                                 "publish it with the tinydrift that wrote it, or choose another --outbox")

    def add(self, messages: list[tuple[str, bytes]], port: str | None = None, identity: Identity | None = None,
            last_seq: int | None = None) -> None:
        """One read's messages and the port's identity and sequence after it (no port: messages
        of simulated devices, whose envelopes name them), in one transaction. Raises
        StoreFull when the outbox cannot grow (nothing written)."""
        with self._lock:
            c = self.conn
            try:
                c.execute("BEGIN IMMEDIATE")
                if messages:
                    c.executemany("INSERT INTO outbox (topic, payload) VALUES (?, ?)", messages)
                if port is not None:
                    c.execute("INSERT OR REPLACE INTO ports VALUES (?, ?, ?, ?, ?, ?)",
                              (port, to_int64(identity.device_id), identity.boot_count, identity.model_id, last_seq,
                               time.time()))
                c.execute("COMMIT")
            except sqlite3.Error as exc:
                if c.in_transaction:
                    c.execute("ROLLBACK")
                raise sqlite_write_error(self.path, exc) from exc

    def port_state(self, port: str) -> tuple[Identity, int | None, float | None] | None:
        """The identity and last sequence number stored for `port` by an earlier run."""
        with self._lock:
            row = self.conn.execute("SELECT device_id, boot_count, model_id, last_seq, last_at FROM ports WHERE url=?",
                                    (port,)).fetchone()
        if row is None:
            return None
        return Identity(from_int64(row[0]), row[1], bytes(row[2])), row[3], row[4]

    def after(self, last_id: int, limit: int) -> list[tuple[int, str, bytes]]:
        """Up to `limit` unsent messages with ids above `last_id`, oldest first."""
        with self._lock:
            return self.conn.execute("SELECT id, topic, payload FROM outbox WHERE id > ? AND sent_at IS NULL "
                                     "ORDER BY id LIMIT ?", (last_id, limit)).fetchall()

    def _write(self, *statements: tuple[str, tuple]) -> int:
        """The statements in one transaction; the rows the last one changed."""
        with self._lock:
            c = self.conn
            try:
                c.execute("BEGIN IMMEDIATE")
                for sql, args in statements:
                    changed = c.execute(sql, args).rowcount
                c.execute("COMMIT")
                return changed
            except sqlite3.Error as exc:
                if c.in_transaction:
                    c.execute("ROLLBACK")
                raise sqlite_write_error(self.path, exc) from exc

    def sent(self, ids: list[int], now: float | None = None) -> None:
        """Mark messages the broker acknowledged, and delete those acknowledged over
        keep_sent_s ago."""
        if not ids:
            return
        now = time.time() if now is None else now
        # One statement for the lot: each step of an executemany gives up the GIL and waits to
        # get it back from the busy port readers (10 ports, 55,010 frames: 3,700 frames/s end
        # to end with executemany, 4,300 with this).
        self._write(("UPDATE outbox SET sent_at=? WHERE id IN (SELECT value FROM json_each(?))", (now, json.dumps(ids))),
                    ("DELETE FROM outbox WHERE sent_at <= ?", (now - self.keep_sent_s,)))

    def send_kept_again(self, now: float | None = None) -> int:
        """Mark the messages acknowledged within keep_sent_s unsent again (the broker may have
        lost them); returns how many."""
        now = time.time() if now is None else now
        return self._write(("DELETE FROM outbox WHERE sent_at <= ?", (now - self.keep_sent_s,)),
                           ("UPDATE outbox SET sent_at=NULL WHERE sent_at IS NOT NULL", ()))

    def count(self) -> int:
        """The messages not yet acknowledged."""
        with self._lock:
            return self.conn.execute("SELECT count(*) FROM outbox WHERE sent_at IS NULL").fetchone()[0]

    def close(self) -> None:
        with self._lock:
            self.conn.close()
            self._owner.release()  # the outbox is free for the next gateway
