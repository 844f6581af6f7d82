"""Labels through a running capture: `tinydrift label --db` queues a label in the capture
database, and the capture that holds the device's port sends it and stores the device's
answer. End to end against the app built for this host (the firmware's own C) over a real
TCP socket; the queue's states on their own."""

from __future__ import annotations

import contextlib
import os
import select
import socket
import sqlite3
import threading
import time

import pytest
from click.testing import CliRunner

from tinydrift.cli.main import main
from tinydrift.errors import TinydriftError
from tinydrift.link import protocol as P
from tinydrift.firmware import REPO_ROOT
from tinydrift.link.replay import ACK_OK, ACK_UNKNOWN_INFERENCE
from tinydrift.logbook.capture import capture
from tinydrift.logbook.report import write_report
from tinydrift.logbook.store import LABEL_MAX_ATTEMPTS, CaptureStore, open_db, queue_label, read_labels

from test_app_host import HostApp, app_gcc, clips, reference  # noqa: F401 (fixtures)


class SocketBridge:
    """The host app's stdin and stdout as a TCP server on 127.0.0.1, one connection at a
    time, as QEMU's -serial tcp carries a board's UART: what the app writes while no one is
    connected is dropped, as on a UART. `said_before` is what the first connection reads
    first: what the device said before anyone connected, kept for it (QEMU's wait=on)."""

    def __init__(self, app: HostApp, said_before: bytes = b""):
        self.app = app
        self.said_before = said_before
        self.server = socket.create_server(("127.0.0.1", 0))
        self.url = f"socket://127.0.0.1:{self.server.getsockname()[1]}"
        self.conn: socket.socket | None = None
        self.stopping = threading.Event()
        self.threads = [threading.Thread(target=self._accept, daemon=True),
                        threading.Thread(target=self._from_app, daemon=True)]
        for thread in self.threads:
            thread.start()

    def _accept(self):
        self.server.settimeout(0.1)
        while not self.stopping.is_set():
            try:
                conn, _ = self.server.accept()
            except socket.timeout:
                continue
            conn.sendall(self.said_before)
            self.said_before = b""
            self.conn = conn
            try:
                while chunk := conn.recv(4096):
                    self.app.port.write(chunk)
            except OSError:
                pass
            self.conn = None
            conn.close()

    def _from_app(self):
        out = self.app.process.stdout.fileno()
        while not self.stopping.is_set():
            if not select.select([out], [], [], 0.05)[0]:
                continue
            data = os.read(out, 4096)
            if self.conn is not None:
                try:
                    self.conn.sendall(data)
                except OSError:
                    pass

    def close(self):
        self.stopping.set()
        for thread in self.threads:
            thread.join(timeout=5)
        self.server.close()


@contextlib.contextmanager
def running_capture(url: str, db):
    """A capture on `url` into `db` in a thread while the block runs; yields the list its
    summary lands in when the block ends."""
    stop = threading.Event()
    summaries = []
    running = threading.Thread(target=lambda: summaries.append(
        capture(url, db, stop_event=stop, reconnect_timeout=0)))
    running.start()
    try:
        yield summaries
    finally:
        stop.set()
        running.join(timeout=20)


def _label(db, *args):
    return CliRunner().invoke(main, ["label", *map(str, args), "--db", str(db)])


def test_labels_queued_in_the_capture_database_reach_the_device_and_its_answers_are_stored(app_gcc, clips, tmp_path):
    db = tmp_path / "capture.sqlite"
    with HostApp(app_gcc) as app:
        for clip in clips[:3]:  # inferences 1, 2, 3
            app.replayer.replay_clip(clip)
        app.replayer.drain(0.2)
        predicted = {i.inference_index: i.predicted_class for i in app.frames(P.Inference)}
        assert sorted(predicted) == [1, 2, 3]
        bridge = SocketBridge(app)
        try:
            first = capture(bridge.url, db, duration=0.5, reconnect_timeout=0)  # makes the database
            assert not first.failed, first.line()
            # queued while no capture runs: the next one sends it
            queued = _label(db, 2, predicted[2])
            assert queued.exit_code == 0 and "queued" in queued.output, queued.output

            with running_capture(bridge.url, db) as summaries:
                wrong = (predicted[1] + 1) % 12
                taken = _label(db, 1, wrong, "--wait", "10")
                assert taken.exit_code == 0 and "label %d taken" % wrong in taken.output, taken.output
                # a class the keyword model does not have (refused before it is queued: the capture
                # began after the boot, but the STATUS it asked for carries the HELLO and its class
                # count), an inference it never made (the device refuses it): refused in one line
                for inference, label, why in ((3, 12, "has 12 classes (0..11); give one of them"),
                                              (99, 1, "name one of its recent inferences")):
                    result = _label(db, inference, label, "--wait", "10")
                    lines = result.output.strip().splitlines()
                    assert result.exit_code == 1 and len(lines) == 1 and why in lines[0], result.output
        finally:
            bridge.close()
        status = app.status()  # the device itself counted the two it took
        app.stop()
    assert (status.labels, status.label_errors) == (2, 1), status
    summary = summaries[0]
    assert not summary.failed and (summary.labels_taken, summary.labels_refused) == (2, 1), summary.line()
    assert "3 queued labels sent (1 refused)" in summary.line()

    conn = open_db(db)
    labels = read_labels(conn)
    acks = [P.parse_packet(raw) for (raw,) in conn.execute("SELECT raw FROM frames WHERE type=?",
                                                            (int(P.FrameType.ACK),))]
    conn.close()
    assert [(r["inference_index"], r["state"], r["result"], r["attempts"], r["session_id"]) for r in labels] == [
        (2, "taken", ACK_OK, 1, summary.session_id), (1, "taken", ACK_OK, 1, summary.session_id),
        (99, "refused", ACK_UNKNOWN_INFERENCE, 1, summary.session_id)]
    label_acks = [a for a in acks if a.command_type == P.FrameType.LABEL]
    assert sorted(a.command_seq for a in label_acks) == sorted(r["command_seq"] for r in labels)

    # the report says what became of each label
    page = (write_report(db, tmp_path / "report").out_dir / "index.html").read_text()
    assert "<th>labels queued for the device</th><td>2 taken, 1 refused</td>" in page
    assert "<td>99</td><td>1</td><td>refused</td><td>1</td><td>unknown inference</td>" in page


def test_a_label_queued_before_the_device_restarted_its_count_is_never_sent(app_gcc, clips, tmp_path):
    """The device restarts its inference count with each HELLO (a boot, or RESET). A label
    queued before a restart would label whatever inference has its index in the new count,
    and the device would take it: the capture that hears the HELLO marks it restarted
    instead, and sends only labels queued after it."""
    db = tmp_path / "capture.sqlite"
    CaptureStore(db).close()
    with HostApp(app_gcc) as app:
        for clip in clips[:3]:
            app.replayer.replay_clip(clip)
        app.replayer.drain(0.2)
        before = _label(db, 2, 0)  # for inference 2 of the count that is about to end
        assert before.exit_code == 0 and "queued" in before.output, before.output
        assert app.command(P.Reset(0)).result == ACK_OK  # the count restarts, with a HELLO
        for clip in clips[3:6]:  # inferences 1, 2, 3 again
            app.replayer.replay_clip(clip)
        app.replayer.drain(0.2)
        hello = app.frames(P.Hello)[-1]
        bridge = SocketBridge(app, said_before=P.encode(hello))  # the capture reads the HELLO first, as if kept
        try:
            with running_capture(bridge.url, db) as summaries:
                assert wait_for_hello(db)
                after = _label(db, 2, 0, "--wait", "10")  # for inference 2 of the new count
                assert after.exit_code == 0 and "label 0 taken" in after.output, after.output
        finally:
            bridge.close()
        status = app.status()
        app.stop()
    assert status.labels == 1, status  # the device took only the label queued after its HELLO
    summary = summaries[0]
    assert "1 queued labels sent (0 refused), 1 queued labels not sent (queued before the device restarted its " \
           "count)" in summary.line(), summary.line()
    conn = open_db(db)
    labels = read_labels(conn)
    conn.close()
    assert [(r["state"], r["attempts"]) for r in labels] == [("restarted", 0), ("taken", 1)]
    page = (write_report(db, tmp_path / "report").out_dir / "index.html").read_text()
    assert "<td>restarted</td><td>0</td><td>none: the device restarted its inference count" in page


def wait_for_hello(db, patience: float = 10.0) -> bool:
    """Whether a HELLO is stored within `patience` s (the capture has heard the restart)."""
    deadline = time.monotonic() + patience
    while time.monotonic() < deadline:
        conn = open_db(db)
        try:
            if conn.execute("SELECT 1 FROM frames WHERE type=?", (int(P.FrameType.HELLO),)).fetchone():
                return True
        finally:
            conn.close()
        time.sleep(0.05)
    return False


def test_a_replay_sends_queued_labels_and_knows_an_unheard_restart_by_the_count(app_gcc, clips, tmp_path):
    """`label --db` during `replay --db` was never sent (only capture sent labels), while the
    label command said the running session would send it. And a restart no session heard
    (RESET while nothing held the database) let a label queued at count 5 for inference 4
    label the new count's inference 4. The replay now sends labels as capture does; a label
    queued at a count higher than the device's now is marked restarted."""
    from tinydrift.logbook.capture import DatabaseSink

    db = tmp_path / "replay.sqlite"
    with HostApp(app_gcc) as app:
        first = DatabaseSink(db, "pipe", send_labels=app.replayer.send)
        app.replayer.on_items = first
        for clip in clips[:5]:
            app.replayer.replay_clip(clip)
        while len(app.frames(P.Inference)) < 5:  # the database knows the count reached 5
            app.replayer.drain(0.1)
        app.replayer.on_items = None
        first.close("replay done")
        assert queue_label(db, 4, 1) == 1  # inference 4 of a count the database saw reach 5
        assert app.command(P.Reset(0)).result == ACK_OK  # heard by no session
        for clip in clips[5:9]:  # the new count's 1..4
            app.replayer.replay_clip(clip)
        app.replayer.drain(0.2)
        second = DatabaseSink(db, "pipe", send_labels=app.replayer.send)
        app.replayer.on_items = second
        app.replayer.check_device()  # STATUS: the device counts 4
        for clip in clips[9:11]:
            app.replayer.replay_clip(clip)
        assert queue_label(db, 5, 0) == 2  # inference 5 of the new count
        for clip in clips[11:14]:
            app.replayer.replay_clip(clip)
            app.replayer.drain(0.3)
        app.replayer.on_items = None
        second.close("replay done")
        status = app.status()
        app.stop()
    assert status.labels == 1, status  # the new count's inference 4 was not labelled
    conn = open_db(db)
    labels = [(r["state"], r["attempts"], r["result"], r["session_id"]) for r in read_labels(conn)]
    conn.close()
    assert labels == [("restarted", 0, None, None), ("taken", 1, ACK_OK, second.session)]


def test_a_second_capture_into_a_held_database_is_refused(tmp_path):
    """Two captures of two devices into one database mixed their sessions, and a queued
    label went to whichever looked first."""
    db = tmp_path / "capture.sqlite"
    holder = CaptureStore(db)
    holder.start_session("socket://127.0.0.1:1", None, None)
    with pytest.raises(TinydriftError, match="another capture or replay is writing .* its own --db"):
        CaptureStore(db).start_session("socket://127.0.0.1:2", None, None)
    queued = _label(db, 5, 1)
    assert queued.exit_code == 0 and "the capture or replay holding the device's port sends it" in queued.output
    holder.close()
    queued = _label(db, 6, 1)  # the session row is left open, as by a killed capture: nobody sends it now
    assert queued.exit_code == 0 and "no capture or replay runs on it now" in queued.output, queued.output
    again = CaptureStore(db)
    assert again.start_session("socket://127.0.0.1:2", None, None) == 2  # once the first let go
    again.close()


def test_label_wait_says_why_a_label_was_not_sent_after_a_restart(tmp_path):
    """`label --wait` on a label the capture marks restarted fails in one line that says why."""
    db = tmp_path / "capture.sqlite"
    CaptureStore(db).close()

    def mark_restarted():
        conn = sqlite3.connect(db, timeout=5, isolation_level=None)  # autocommit: no lock held between tries
        try:
            for _ in range(200):
                if conn.execute("UPDATE labels SET state='restarted' WHERE state='queued'").rowcount:
                    return
                threading.Event().wait(0.05)
        finally:
            conn.close()

    marker = threading.Thread(target=mark_restarted)
    marker.start()
    result = _label(db, 4, 1, "--wait", "10")
    marker.join()
    lines = result.output.strip().splitlines()
    assert result.exit_code == 1 and len(lines) == 1, result.output
    assert "not sent, the device restarted its inference count" in lines[0]


def test_a_second_label_for_one_inference_is_refused_until_the_device_restarts_its_count(tmp_path):
    """The device takes the first label of an inference and answers a second as it did the
    first: a trial's second label was said "taken" and ignored (its STATUS counted one). The
    same index after a restart of the count (a HELLO) is another inference."""
    from test_capture import TcpDevice, hello

    db = tmp_path / "capture.sqlite"
    CaptureStore(db).close()
    assert _label(db, 16, 2).exit_code == 0
    again = _label(db, 16, 5)
    lines = again.output.strip().splitlines()
    assert again.exit_code == 1 and len(lines) == 1, again.output
    assert "inference 16 already has label 2 (queued)" in lines[0] and "nothing queued" in lines[0]
    assert _label(db, 17, 5).exit_code == 0  # another inference
    # the device restarted its count (a HELLO came): index 16 is another inference now
    device = TcpDevice(lambda conn: conn.sendall(P.encode(hello(0)) + P.encode(P.Bye(1, 0, 0))))
    assert not capture(device.url, db, reconnect_timeout=0).failed
    assert _label(db, 16, 5).exit_code == 0


def test_a_label_never_answered_is_sent_again_a_few_times_then_given_up(tmp_path):
    db = tmp_path / "capture.sqlite"
    store = CaptureStore(db)
    session = store.start_session("socket://127.0.0.1:9", None, None)
    label_id = queue_label(db, 5, 1)
    for attempt in range(LABEL_MAX_ATTEMPTS):
        assert [(i, inference, label) for i, _at, inference, label in store.queued_labels()] == [(label_id, 5, 1)], \
            attempt
        store.labels_sent(session, [(label_id, attempt)])
        assert store.queued_labels() == [] and store.labels_left_sent() == [label_id]
        store.labels_unanswered([label_id])
    assert store.queued_labels() == []
    store.close()
    conn = open_db(db)
    (row,) = read_labels(conn)
    conn.close()
    assert (row["state"], row["attempts"]) == ("unanswered", LABEL_MAX_ATTEMPTS)
    page = (write_report(db, tmp_path / "report").out_dir / "index.html").read_text()
    assert "<th>labels queued for the device</th><td>1 unanswered</td>" in page


def test_a_capture_database_held_by_another_writer_is_said_to_be_held_not_the_wrong_file(tmp_path):
    """A lock held past the wait once said "database is locked; give the file `tinydrift
    capture --db` writes", though the file was the right one."""
    db = tmp_path / "capture.sqlite"
    CaptureStore(db).close()
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(TinydriftError) as caught:
            queue_label(db, 5, 1, patience=0.2)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert "another process held its write lock for 0.2 s" in str(caught.value)
    assert "give the file" not in str(caught.value)
    assert queue_label(db, 5, 1, patience=0.2) == 1  # once released, it queues


def test_a_capture_database_of_schema_3_takes_labels_and_is_upgraded_by_the_next_capture(tmp_path):
    """A database an earlier tinydrift wrote (schema 3, no labels table): queueing adds the
    table, and capture upgrades the schema's version as before."""
    db = tmp_path / "old.sqlite"
    CaptureStore(db).close()
    conn = sqlite3.connect(db)
    conn.execute("DROP TABLE labels")
    conn.execute("UPDATE meta SET value='3' WHERE key='schema_version'")
    conn.commit()
    conn.close()
    assert queue_label(db, 7, 0) == 1
    CaptureStore(db).close()
    conn = open_db(db)
    assert conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0] == "4"
    assert [r["state"] for r in read_labels(conn)] == ["queued"]
    conn.close()


def test_a_label_given_by_class_name_is_queued_as_its_index_and_reported_by_name(tmp_path):
    """Trial 14 labelled an image model's inference `label 140 'red ball'`: refused as "not a
    valid integer range", and the report's table showed the index alone."""
    from tinydrift.logbook.report import _labels_html

    db = tmp_path / "capture.sqlite"
    CaptureStore(db).close()
    model_dir = REPO_ROOT / "models" / "kws"
    queued = _label(db, 4, "left", "--model-dir", model_dir)
    assert queued.exit_code == 0 and "queued" in queued.output, queued.output
    for label, why in (("red ball", "to give a class name, add --model-dir DIR"), ("256", "not a class index (0-255)")):
        refused = _label(db, 5, label)
        assert refused.exit_code == 2 and why in refused.output, refused.output
    unknown = _label(db, 5, "red ball", "--model-dir", model_dir)
    assert unknown.exit_code == 2 and "'red ball' is not a class of" in unknown.output, unknown.output
    conn = open_db(db)
    labels = read_labels(conn)
    conn.close()
    assert [(r["inference_index"], r["label"]) for r in labels] == [(4, 6)]
    page = _labels_html(labels, ("_silence_", "_unknown_", "yes", "no", "up", "down", "left"))
    assert "<td>4</td><td>6 (left)</td><td>queued</td>" in page
    assert "<td>4</td><td>6</td><td>queued</td>" in _labels_html(labels)


def test_label_port_says_a_second_label_for_an_inference_was_not_counted_and_refuses_another_model(app_gcc, clips,
                                                                                                   tmp_path):
    """`label --port` said "taken" for a second label of one inference, which the device
    acknowledges without counting (the first one counts), and took a class name read in
    another model's classes (trial 19). The device's STATUS counts say which; a --model-dir
    the device does not run is refused, through --port or the capture's database."""
    with HostApp(app_gcc) as app:
        for clip in clips[:2]:
            app.replayer.replay_clip(clip)
        app.replayer.drain(0.2)
        bridge = SocketBridge(app)
        try:
            first = CliRunner().invoke(main, ["label", "2", "3", "--port", bridge.url])
            assert first.exit_code == 0 and first.output.strip() == "inference 2: label 3 taken", first.output
            again = CliRunner().invoke(main, ["label", "2", "4", "--port", bridge.url])
            assert again.exit_code == 0 and "acknowledged but not counted" in again.output, again.output
            other = CliRunner().invoke(main, ["label", "1", "blight", "--port", bridge.url, "--model-dir",
                                              str(REPO_ROOT / "models" / "plant")])
            assert other.exit_code == 1 and "the device runs model" in other.output, other.output
            db = tmp_path / "capture.sqlite"
            assert not capture(bridge.url, db, duration=0.5, reconnect_timeout=0).failed
        finally:
            bridge.close()
        status = app.status()
        app.stop()
    assert status.labels == 1
    queued = _label(db, 1, "blight", "--model-dir", REPO_ROOT / "models" / "plant")
    assert queued.exit_code == 1 and "its device runs model" in queued.output, queued.output
    conn = open_db(db)
    assert read_labels(conn) == []
    conn.close()
