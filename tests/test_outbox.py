"""The gateway's outbox (tinydrift.fleet.outbox) on its own: what waits, what is kept after
the broker acknowledged it, and an outbox an earlier tinydrift wrote."""

from __future__ import annotations

import sqlite3

from tinydrift.fleet.outbox import KEEP_SENT_S, SCHEMA_VERSION, Outbox


def test_acknowledged_messages_are_kept_for_a_while_and_can_go_again(tmp_path):
    outbox = Outbox(tmp_path / "o.sqlite")
    try:
        outbox.add([(f"t/{k}", bytes([k])) for k in range(5)])
        rows = outbox.after(0, 10)
        assert [r[0] for r in rows] == [1, 2, 3, 4, 5] and outbox.count() == 5
        outbox.sent([1, 2], now=1000.0)
        outbox.sent([3], now=1000.0 + KEEP_SENT_S - 1)
        assert outbox.count() == 2 and [r[0] for r in outbox.after(0, 10)] == [4, 5]
        # after a connect, what the broker acknowledged lately goes again; older ones are gone
        assert outbox.send_kept_again(now=1000.0 + KEEP_SENT_S + 0.5) == 1
        assert [r[0] for r in outbox.after(0, 10)] == [3, 4, 5] and outbox.count() == 3
    finally:
        outbox.close()


def test_an_outbox_of_schema_1_opens_with_every_message_waiting(tmp_path):
    path = tmp_path / "old.sqlite"
    old = sqlite3.connect(path)
    old.executescript("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
                      "INSERT INTO meta VALUES ('schema_version', '1');"
                      "CREATE TABLE outbox (id INTEGER PRIMARY KEY AUTOINCREMENT, topic TEXT NOT NULL, payload BLOB NOT NULL);"
                      "INSERT INTO outbox (topic, payload) VALUES ('a', x'01'), ('b', x'02');")
    old.commit()
    old.close()
    outbox = Outbox(path)
    try:
        assert outbox.count() == 2 and [r[1] for r in outbox.after(0, 10)] == ["a", "b"]
        version = outbox.conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0]
        assert version == str(SCHEMA_VERSION) == "2"
    finally:
        outbox.close()


def test_a_resend_window_of_0_keeps_nothing_acknowledged(tmp_path):
    outbox = Outbox(tmp_path / "o.sqlite", keep_sent_s=0)
    try:
        outbox.add([("t", b"x"), ("t", b"y")])
        outbox.sent([1, 2], now=1000.0)
        assert outbox.conn.execute("SELECT count(*) FROM outbox").fetchone()[0] == 0
        assert outbox.send_kept_again(now=1000.0) == 0
    finally:
        outbox.close()
