"""capture on real transports: a pseudo-terminal, a TCP socket, a port that vanishes and
returns, and a capture process killed with SIGKILL."""

from __future__ import annotations

import json

import os
import pty
import random
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import tty
from pathlib import Path

import pytest

from tinydrift.link import protocol as P
from tinydrift.logbook.capture import capture
from tinydrift.logbook.store import from_int64, open_db, read_summary
from tinydrift.errors import TinydriftError
from tinydrift.firmware import REPO_ROOT

MODEL_HASH = bytes(range(32))
OTHER_HASH = bytes(range(100, 132))


def hello(seq: int = 0, model_hash: bytes = MODEL_HASH) -> P.Hello:
    return P.Hello(seq, model_hash, 0, 1, 0, 412, 12, 40, 12, 5,
                   (8 << 12,) * 5 + (0,) * 3, (16 << 12,) * 5 + (0,) * 3)


def inference(seq: int, index: int, rng: random.Random, model_hash: bytes = MODEL_HASH) -> P.Inference:
    return P.typical_inference(seq, index, model_hash[:8], rng)


class TcpDevice:
    """A TCP server on 127.0.0.1 playing the device: each accepted connection runs the next
    script, a function of the connected socket."""

    def __init__(self, *scripts):
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.url = f"socket://127.0.0.1:{self.port}"
        self.scripts = list(scripts)
        self.received = bytearray()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        for script in self.scripts:
            conn, _ = self.server.accept()
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            reader = threading.Thread(target=self._drain, args=(conn,), daemon=True)
            reader.start()
            try:
                script(conn)
            finally:
                # Close as a device does: FIN after the last byte, then wait for the host to
                # hang up (closing with unread input would send RST and destroy data in flight).
                try:
                    conn.shutdown(socket.SHUT_WR)
                except OSError:
                    pass
                reader.join(timeout=10)
                conn.close()
        self.server.close()

    def _drain(self, conn):
        try:
            while chunk := conn.recv(4096):
                self.received += chunk
        except OSError:
            pass


def write_all(fd: int, data: bytes) -> None:
    """os.write on a pty master may take only part of the data (its buffer is a few KB)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _send_in_pieces(send, data: bytes, rng: random.Random, pause: float = 0.0):
    offset = 0
    while offset < len(data):
        n = rng.randrange(1, 3000)
        send(data[offset:offset + n])
        offset += n
        if pause:
            time.sleep(pause)


def test_socket_capture_stores_every_frame_and_counts_loss_corruption_and_foreign(tmp_path):
    rng = random.Random(31)
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    (model_dir / "reference.json").write_text(json.dumps({
        "name": "fake", "model_hash": MODEL_HASH.hex(), "labels": ["a", "b"],
        "monitor_config": {"score_warning": [1, 2, 3, 4, 5], "score_drift": [6, 7, 8, 9, 10]}}))
    sent, pieces = [], []
    dropped = corrupted = foreign = texts = 0
    h = hello()
    pieces.append(P.encode(h))
    sent.append(h)
    for seq in range(1, 3001):
        frame = inference(seq, seq, rng)
        if 1000 <= seq < 1005:
            frame = inference(seq, seq, rng, OTHER_HASH)
            foreign += 1
        if seq % 300 == 0:  # never sent: a lost frame
            dropped += 1
            continue
        wire = P.encode(frame)
        if seq % 111 == 0:  # damaged on the way: corrupt, and so also missing from the sequence
            bad = bytearray(wire)
            bad[rng.randrange(3, len(bad) - 1)] ^= 0x10
            if 0 in bad[1:-1]:
                bad[rng.randrange(3, len(bad) - 1)] = 0x33
            pieces.append(bytes(bad))
            corrupted += 1
            continue
        pieces.append(wire)
        sent.append(frame)
        if seq % 250 == 0:
            pieces.append(f"note {seq}\r\n".encode())
            texts += 1
    bye = P.Bye(3001, 0, 3000)
    pieces.append(P.encode(bye))
    sent.append(bye)
    stream = b"".join(pieces)
    device = TcpDevice(lambda conn: _send_in_pieces(conn.sendall, stream, rng))

    db = tmp_path / "run.db"
    summary = capture(device.url, db, model_dir=model_dir)

    assert summary.end_reason == "device exit (code 0)"
    conn = open_db(db)
    raws = [r[0] for r in conn.execute("SELECT raw FROM frames ORDER BY id")]
    assert [P.parse_packet(r) for r in raws] == sent
    s = read_summary(conn)
    assert (s.frames, s.lost, s.corrupt, s.foreign, s.text_lines) == (len(sent), dropped + corrupted,
                                                                      corrupted, foreign, texts)
    assert s.expected_hash == MODEL_HASH.hex()
    assert conn.execute("SELECT COUNT(*) FROM corrupt").fetchone()[0] == corrupted
    assert conn.execute("SELECT SUM(count) FROM events WHERE kind='gap'").fetchone()[0] == dropped + corrupted
    # The decoded columns hold the frame's values.
    row = conn.execute("SELECT inference_index, atc, moved_channels, alarm_index, score0, score4 FROM frames "
                       "WHERE type=2 AND seq=7").fetchone()
    f7 = next(f for f in sent if f.seq == 7)
    assert row == (7, f7.atc, from_int64(f7.moved_channels), f7.alarm_index, f7.scores[0], f7.scores[4])
    # The host asked for STATUS when it connected.
    assert P.StreamParser().feed(bytes(device.received))[0] == P.StatusRequest(seq=0)


def test_pty_capture_stores_all_frames(tmp_path):
    rng = random.Random(32)
    master, slave = pty.openpty()
    tty.setraw(slave)  # before any byte is written: the line discipline must not touch frames
    try:
        frames = [hello()] + [inference(i, i, rng) for i in range(1, 2001)]
        stream = b"".join(P.encode(f) + (b"tick\n" if f.seq % 100 == 0 else b"") for f in frames)
        writer = threading.Thread(target=_send_in_pieces, args=(lambda b: write_all(master, b), stream, rng, 0.001))
        writer.start()
        db = tmp_path / "pty.db"
        summary = capture(os.ttyname(slave), db, max_frames=len(frames), duration=30)
        writer.join()
    finally:
        os.close(master)
        os.close(slave)
    assert summary.end_reason == f"{len(frames)} frames"
    conn = open_db(db)
    assert [P.parse_packet(r[0]) for r in conn.execute("SELECT raw FROM frames ORDER BY id")] == frames
    s = read_summary(conn)
    assert (s.lost, s.corrupt, s.text_lines) == (0, 0, 21)  # seq 0, 100, ..., 2000


def _wait_for(db: Path, sql: str, n: int, timeout: float = 20.0) -> None:
    """Poll the capture database (as a second reader, which WAL allows) until `sql` >= n."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if db.exists():
            try:
                conn = sqlite3.connect(db)
                try:
                    if (conn.execute(sql).fetchone()[0] or 0) >= n:
                        return
                finally:
                    conn.close()
            except sqlite3.Error:
                pass
        time.sleep(0.02)
    raise AssertionError(f"{db}: {sql} never reached {n}")





def test_pty_that_disappears_and_returns_is_reopened(tmp_path):
    """Like a USB serial adapter unplugged and plugged back: the device path is a symlink
    (as /dev/serial/by-id/... is) that vanishes with the first pty and points to a new one."""
    rng = random.Random(33)
    link = tmp_path / "ttyDEVICE"
    db = tmp_path / "replug.db"
    frames = [hello()] + [inference(i, i, rng) for i in range(1, 600)] + [P.Bye(600, 0, 599)]
    first, second = frames[:300], frames[300:]
    result = {}

    master, slave = pty.openpty()
    tty.setraw(slave)
    link.symlink_to(os.ttyname(slave))
    runner = threading.Thread(target=lambda: result.setdefault(
        "summary", capture(str(link), db, reconnect_timeout=20, read_timeout=0.02)))
    runner.start()
    write_all(master, b"".join(P.encode(f) for f in first))
    _wait_for(db, "SELECT COUNT(*) FROM frames", len(first))
    link.unlink()  # unplugged: the device node goes away...
    os.close(master)  # ...and the open port reports an error
    os.close(slave)
    time.sleep(0.5)
    master2, slave2 = pty.openpty()
    tty.setraw(slave2)
    try:
        link.symlink_to(os.ttyname(slave2))  # plugged back
        write_all(master2, b"\n".join(P.encode(f) for f in second))
        runner.join(timeout=30)
    finally:
        os.close(master2)
        os.close(slave2)
    assert not runner.is_alive()
    summary = result["summary"]
    assert summary.end_reason == "device exit (code 0)"
    conn = open_db(db)
    assert [P.parse_packet(r[0]) for r in conn.execute("SELECT raw FROM frames ORDER BY id")] == frames
    s = read_summary(conn)
    assert (s.reopens, s.lost, s.corrupt) == (1, 0, 0)
    kinds = [k for (k,) in conn.execute("SELECT kind FROM events ORDER BY id")]
    assert kinds.index("port_lost") < kinds.index("reopen") < kinds.index("bye")


def test_socket_reconnects_after_the_device_side_closes(tmp_path):
    rng = random.Random(34)
    frames = [hello()] + [inference(i, i, rng) for i in range(1, 400)]
    first, second = frames[:200], frames[200:] + [P.Bye(400, 3, 399)]

    def script(part):
        return lambda conn: (conn.sendall(b"".join(P.encode(f) for f in part)), time.sleep(0.1))

    device = TcpDevice(script(first), script(second))
    db = tmp_path / "sock.db"
    summary = capture(device.url, db, reconnect_timeout=10)
    assert summary.end_reason == "device exit (code 3)"
    conn = open_db(db)
    assert [P.parse_packet(r[0]) for r in conn.execute("SELECT raw FROM frames ORDER BY id")] == first + second
    s = read_summary(conn)
    assert (s.reopens, s.lost, s.corrupt) == (1, 0, 0)


def test_device_restart_is_not_counted_as_loss(tmp_path):
    rng = random.Random(35)
    boot1 = [hello()] + [inference(i, i, rng) for i in range(1, 50)]
    boot2 = [hello()] + [inference(i, i, rng) for i in range(1, 50)] + [P.Bye(50, 0, 49)]
    device = TcpDevice(lambda conn: conn.sendall(b"".join(P.encode(f) for f in boot1 + boot2)))
    db = tmp_path / "restart.db"
    capture(device.url, db)
    s = read_summary(open_db(db))
    assert (s.frames, s.lost, s.restarts) == (len(boot1) + len(boot2), 0, 1)


def _spawn_capture(url: str, db: Path) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT / "host"))
    return subprocess.Popen([sys.executable, "-m", "tinydrift", "capture", "--port", url,
                             "--db", str(db), "--progress-interval", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def _endless_device(stop: threading.Event, rng: random.Random):
    def script(conn):
        seq = 0
        conn.sendall(P.encode(hello()))
        while not stop.is_set():
            burst = b"".join(P.encode(inference(seq + k + 1, seq + k + 1, rng)) for k in range(50))
            try:
                conn.sendall(burst)
            except OSError:
                return
            seq += 50
            time.sleep(0.005)
    return script


def _read_progress_until(proc: subprocess.Popen, frames: int) -> int:
    """Read the capture's progress lines until it reports `frames` stored; return that count."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            raise AssertionError(f"capture ended early: {proc.stdout.read()}")
        if line.startswith("stored frames="):
            stored = int(line.split()[1].split("=")[1])
            if stored >= frames:
                return stored
    raise AssertionError("no progress")


def test_kill_9_keeps_every_frame_already_reported_stored(tmp_path):
    stop = threading.Event()
    device = TcpDevice(_endless_device(stop, random.Random(36)))
    db = tmp_path / "killed.db"
    proc = _spawn_capture(device.url, db)
    try:
        acknowledged = _read_progress_until(proc, 3000)
        os.kill(proc.pid, signal.SIGKILL)  # mid-stream: frames are arriving every 5 ms
        proc.wait(timeout=10)
    finally:
        stop.set()
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    seqs = [s for (s,) in conn.execute("SELECT seq FROM frames ORDER BY id")]
    assert len(seqs) >= acknowledged
    assert seqs == list(range(len(seqs)))  # a clean prefix: nothing missing, nothing doubled
    assert conn.execute("SELECT ended_at FROM sessions").fetchone()[0] is None


def test_sigint_stops_with_a_summary_and_closes_the_session(tmp_path):
    stop = threading.Event()
    device = TcpDevice(_endless_device(stop, random.Random(37)))
    db = tmp_path / "interrupted.db"
    proc = _spawn_capture(device.url, db)
    try:
        _read_progress_until(proc, 500)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=20)
    finally:
        stop.set()
    assert proc.returncode == 0, err
    assert out.startswith("captured ") and "stopped: interrupted" in out
    conn = open_db(db)
    row = conn.execute("SELECT ended_at, end_reason, frames FROM sessions").fetchone()
    assert row[0] is not None and row[1] == "interrupted"
    assert row[2] == conn.execute("SELECT COUNT(*) FROM frames").fetchone()[0] >= 500


def test_duration_stops_a_silent_capture(tmp_path):
    device = TcpDevice(lambda conn: time.sleep(1.5))
    t0 = time.monotonic()
    summary = capture(device.url, tmp_path / "quiet.db", duration=0.3)
    assert summary.end_reason == "duration 0.3 s" and time.monotonic() - t0 < 1.4
    assert summary.stats.frames == 0


@pytest.mark.parametrize("url", ["socket://127.0.0.1:1", "/dev/tinydrift-no-such-port", "nonsense://x"])
def test_unknown_port_is_a_clear_error_and_leaves_not_even_the_folders_made(tmp_path, url):
    """The database was removed, the folders made for it stayed, empty."""
    (tmp_path / "kept").mkdir()
    with pytest.raises(TinydriftError, match="cannot open port") as refused:
        capture(url, tmp_path / "kept" / "new" / "deeper" / "x.db")
    assert [p.name for p in tmp_path.rglob("*")] == ["kept"]
    # pyserial's own "could not open port URL:" once named the port a second time
    assert str(refused.value).lower().count(url.split("://")[-1]) == 1, refused.value


def test_cli_reports_bad_input_without_traceback(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT / "host"))
    proc = subprocess.run([sys.executable, "-m", "tinydrift", "capture", "--port",
                           "/dev/tinydrift-no-such-port", "--db", str(tmp_path / "x.db")],
                          capture_output=True, text=True, env=env)
    assert proc.returncode != 0 and "cannot open port" in proc.stderr and "Traceback" not in proc.stderr
    not_db = tmp_path / "notes.txt"
    not_db.write_text("hello")
    proc = subprocess.run([sys.executable, "-m", "tinydrift", "report", str(not_db),
                           "--out", str(tmp_path / "r")], capture_output=True, text=True, env=env)
    assert proc.returncode != 0 and "not a tinydrift capture database" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_schema_1_database_is_read_as_it_is_and_upgraded_by_the_next_capture(tmp_path):
    """A database from protocol 1 devices has no frames.alarm_index: report's reader takes it
    read-only (the column reads as unknown), and the next capture adds the column in place,
    keeping every stored row, so old and new frames sit in one file."""
    from tinydrift.logbook import store

    db = tmp_path / "old.db"
    old = sqlite3.connect(db)
    old.executescript(store.SCHEMA.replace("alarm_index INTEGER, ", ""))
    assert "alarm_index" not in {r[1] for r in old.execute("PRAGMA table_info(frames)")}
    old.execute("INSERT INTO meta VALUES ('schema_version', '1')")
    old.execute("INSERT INTO sessions (started_at, port) VALUES (1.0, 'old')")
    v1 = P.Inference(seq=3, inference_index=40, model_id=MODEL_HASH[:8], predicted_class=2, confidence=200,
                     alarm_bits=1, entropy=9000, atc=50000, moved_channels=0, change_index=31,
                     scores=(1, 2, 3, 4, 5, 0, 0, 0))
    columns = [c for c in store.FRAME_COLUMNS if c != "alarm_index"]
    row = [v for c, v in zip(store.FRAME_COLUMNS, store.frame_row(1, 1.0, v1, False)) if c != "alarm_index"]
    old.execute(f"INSERT INTO frames ({', '.join(columns)}) VALUES ({', '.join('?' * len(row))})", row)
    old.commit()
    old.close()

    conn = open_db(db)
    assert store.read_inferences(conn)["inference_index"].tolist() == [40]
    assert read_summary(conn).first_alarm == (40, ["DATA_DRIFT"])  # the frame's own index: all it knew
    conn.close()

    writer = store.CaptureStore(db)
    frame = P.Inference(seq=4, inference_index=41, model_id=MODEL_HASH[:8], predicted_class=2, confidence=200,
                        alarm_bits=1, entropy=9000, atc=50000, moved_channels=0, change_index=31,
                        scores=(1, 2, 3, 4, 5, 0, 0, 0), alarm_index=39)
    writer.commit(1, [store.frame_row(1, 2.0, frame, False)], [], [], [], {c: 0 for c in store.COUNTERS})
    writer.close()
    conn = open_db(db)
    assert conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0] == str(store.SCHEMA_VERSION)
    assert conn.execute("SELECT inference_index, alarm_index FROM frames ORDER BY id").fetchall() == [(40, None), (41, 39)]


def test_schema_2_database_gets_its_sessions_detection_counts_from_the_frames_it_holds(tmp_path):
    """A database from before sessions counted DETECTION frames: read-only, it counts none
    (no such columns); the next capture adds the counters and fills each old session's from
    the DETECTION frames it stored, so its summary counts the wakes too."""
    from tinydrift.logbook import store

    db = tmp_path / "old.db"
    old = sqlite3.connect(db)
    old.executescript(store.SCHEMA.replace(', "detection_frames" INTEGER NOT NULL DEFAULT 0', "")
                      .replace(', "wakes" INTEGER NOT NULL DEFAULT 0', ""))
    assert "wakes" not in {r[1] for r in old.execute("PRAGMA table_info(sessions)")}
    old.execute("INSERT INTO meta VALUES ('schema_version', '2')")
    old.execute("INSERT INTO sessions (started_at, port) VALUES (1.0, 'old')")
    frames = [P.decode(P.encode(P.Detection(seq, seq, MODEL_HASH[:8], 230 if seq == 3 else 20, 100,
                                            P.DETECTION_FLAG_WAKE if seq == 3 else 0, 480 * seq)))
              for seq in range(1, 6)]
    columns = store.FRAME_COLUMNS
    old.executemany(f"INSERT INTO frames ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})",
                    [store.frame_row(1, 1.0, f, False) for f in frames])
    old.commit()
    old.close()

    conn = open_db(db)
    summary = read_summary(conn)
    assert (summary.frames, summary.detection_frames, summary.wakes) == (0, 0, 0)  # the old counters
    conn.close()
    store.CaptureStore(db).close()
    conn = open_db(db)
    assert conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0] == str(store.SCHEMA_VERSION)
    summary = read_summary(conn)
    assert (summary.detection_frames, summary.wakes) == (5, 1)


def test_durable_capture_syncs_every_commit_and_stores_everything(tmp_path, monkeypatch):
    """--durable: the writer's connection runs with synchronous=FULL (WAL then fsyncs every
    commit), and the capture still stores every frame and closes its session."""
    from click.testing import CliRunner

    from tinydrift.cli import main

    # The setting lives only on the writer's connection: trace the SQL it runs.
    statements = []
    connect = sqlite3.connect

    def traced_connect(*args, **kwargs):
        conn = connect(*args, **kwargs)
        conn.set_trace_callback(statements.append)
        return conn

    monkeypatch.setattr(sqlite3, "connect", traced_connect)
    rng = random.Random(38)
    frames = [hello()] + [inference(i, i, rng) for i in range(1, 300)] + [P.Bye(300, 0, 299)]
    device = TcpDevice(lambda conn: conn.sendall(b"".join(P.encode(f) for f in frames)))
    db = tmp_path / "durable.db"
    result = CliRunner().invoke(main, ["capture", "--port", device.url, "--db", str(db), "--durable"])
    assert result.exit_code == 0, result.output
    synchronous = [s.upper() for s in statements if "SYNCHRONOUS" in s.upper()]
    assert synchronous and synchronous[-1] == "PRAGMA SYNCHRONOUS=FULL", synchronous
    conn = open_db(db)
    assert [P.parse_packet(r[0]) for r in conn.execute("SELECT raw FROM frames ORDER BY id")] == frames
    ended_at, reason = conn.execute("SELECT ended_at, end_reason FROM sessions").fetchone()
    assert ended_at is not None and reason == "device exit (code 0)"


def test_a_capture_of_nothing_but_garbage_says_the_port_is_not_a_tinydrift_device(tmp_path):
    """Wrong device or wrong speed: every run is corrupt. The capture stores them (nothing
    received is lost), ends as asked and says in a warning line what to check."""
    from click.testing import CliRunner

    from tinydrift.cli.main import main

    garbage = b"".join(b"\x00" + bytes([1 + (i * 37) % 250, 0xFF, 0x13 + i % 7, 0x80]) for i in range(40)) + b"\x00"
    device = TcpDevice(lambda conn: (conn.sendall(garbage), time.sleep(2.5)))  # still there at --duration
    db = tmp_path / "garbage.db"
    result = CliRunner().invoke(main, ["capture", "--port", device.url, "--db", str(db), "--duration", "1"])
    assert result.exit_code == 0, result.output
    warning = [line for line in result.output.splitlines() if line.startswith("warning:")]
    assert len(warning) == 1 and "not one valid frame" in warning[0] and "--baud" in warning[0], result.output
    s = read_summary(open_db(db))
    assert s.frames == 0 and s.corrupt == 40


def test_a_label_outside_the_captured_model_s_classes_is_refused_before_it_is_queued(tmp_path):
    """The capture database knows the device's classes from its HELLO: `label --db` refuses
    a class the model does not have at once, instead of queueing it for the device to refuse."""
    from click.testing import CliRunner

    from tinydrift.cli.main import main

    device = TcpDevice(lambda conn: conn.sendall(P.encode(hello())))
    db = tmp_path / "hello.db"
    capture(device.url, db, reconnect_timeout=0)  # the device hangs up: no waiting for it to come back
    refused = CliRunner().invoke(main, ["label", "5", "12", "--db", str(db)])
    errors = [line for line in refused.output.splitlines() if line.startswith("error:")]
    assert refused.exit_code == 1 and len(errors) == 1 and "12 classes (0..11)" in errors[0], refused.output
    taken = CliRunner().invoke(main, ["label", "5", "11", "--db", str(db)])
    assert taken.exit_code == 0 and "queued" in taken.output, taken.output
    # that capture has ended: the label waits for the next one, and is said to
    assert f"no capture or replay runs on it now: the next `tinydrift capture --db {db}`" in taken.output, taken.output
    conn = open_db(db)
    assert [tuple(r) for r in conn.execute("SELECT inference_index, label FROM labels")] == [(5, 11)]
    conn.close()


def test_a_database_that_cannot_take_the_capture_is_refused_before_the_port_is_opened(tmp_path):
    """Opening the port starts an emulated board: a --db refused after it once lost the whole
    run (80 clips played to no one)."""
    server = socket.create_server(("127.0.0.1", 0))
    url = f"socket://127.0.0.1:{server.getsockname()[1]}"
    server.settimeout(0.5)
    not_a_db = tmp_path / "notes.sqlite"
    not_a_db.write_text("these are notes, not a database\n" * 40)
    with pytest.raises(TinydriftError, match="cannot write capture database"):
        capture(url, not_a_db)
    with pytest.raises(socket.timeout):
        server.accept()  # nobody connected
    server.close()
    # a new database whose port then fails is not left behind, empty
    with pytest.raises(TinydriftError, match="cannot open port"):
        capture("socket://127.0.0.1:1", tmp_path / "new.db")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.sqlite"]


def test_a_database_holds_one_model_s_captures(tmp_path):
    """Once a capture of another model's device went into a database silently ("0 foreign"),
    and monitor and report then showed one model's scores against the other's thresholds."""
    rng = random.Random(36)
    db = tmp_path / "run.db"
    first = [hello()] + [inference(i, i, rng) for i in range(1, 30)] + [P.Bye(30, 0, 29)]
    capture(TcpDevice(lambda conn: conn.sendall(b"".join(P.encode(f) for f in first))).url, db)
    other = [hello(model_hash=OTHER_HASH)] + [inference(i, i, rng, OTHER_HASH) for i in range(1, 30)]
    device = TcpDevice(lambda conn: (conn.sendall(b"".join(P.encode(f) for f in other)), time.sleep(1.0)))
    summary = capture(device.url, db, reconnect_timeout=0)
    assert summary.failed and summary.stats.foreign > 0
    assert summary.problem == (f"the device runs model {OTHER_HASH.hex()[:16]}, but the model {db} holds is "
                               f"model {MODEL_HASH.hex()[:16]}: capture into another --db")
    assert summary.forgotten and summary.line().endswith(f"none kept: db {db} is as it was")
    # and the database is left as it was: one session, none of the other device's frames
    # (counted in, they once made the report's loss count one of two devices' seqs)
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT COUNT(*) FROM sessions").fetchone()[0] == 1
        assert conn.execute("SELECT COUNT(*), SUM(foreign_model) FROM frames").fetchone() == (len(first), 0)
        assert conn.execute("SELECT COUNT(*) FROM events WHERE session_id > 1").fetchone()[0] == 0
    # a new database for a model named that the device does not run is not left behind
    device = TcpDevice(lambda conn: (conn.sendall(b"".join(P.encode(f) for f in other)), time.sleep(1.0)))
    summary = capture(device.url, tmp_path / "new.db", expected_hash=MODEL_HASH, reconnect_timeout=0)
    assert summary.failed and summary.problem.startswith(f"the device runs model {OTHER_HASH.hex()[:16]}")
    assert not any(p.name.startswith("new.db") for p in tmp_path.iterdir())
    # named by the caller, a model that is not the database's is refused before the port
    # (here one that would refuse the connection, were it tried)
    with pytest.raises(TinydriftError, match=f"{db.name} holds captures of model {MODEL_HASH.hex()[:16]}, and the "
                                             f"expected model is model {OTHER_HASH.hex()[:16]}: capture into another --db"):
        capture("socket://127.0.0.1:1", db, expected_hash=OTHER_HASH)


def test_a_reader_waits_for_the_capture_s_tables_not_just_its_file(tmp_path):
    # SQLite creates the file when capture connects, before its schema: the live view
    # opening it in between once said "no such table: meta"
    from tinydrift.logbook.store import CaptureStore, capture_ready

    path = tmp_path / "cap.db"
    assert not capture_ready(path)
    sqlite3.connect(str(path)).close()
    assert path.is_file() and not capture_ready(path)
    (tmp_path / "text.db").write_text("not a database")
    assert not capture_ready(tmp_path / "text.db")
    CaptureStore(path).conn.close()
    assert capture_ready(path)


def test_a_damaged_database_is_refused_in_one_line_before_the_port(tmp_path):
    """capture once opened the device's port, then met the damage in a traceback: the
    emulated board's run played out to nobody, and a reserve file was left behind."""
    from tinydrift.logbook.store import CaptureStore

    store = CaptureStore(tmp_path / "cap.db")
    store.conn.execute("CREATE TABLE filler (x BLOB)")
    store.conn.executemany("INSERT INTO filler VALUES (?)", [(bytes(500),)] * 2000)
    store.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    store.conn.close()
    store.release_reserve()
    with open(tmp_path / "cap.db", "r+b") as f:
        f.seek(20_000)
        f.write(b"\xab" * 8_000)
    with socket.socket() as listener:  # a device that would answer: it must not be reached
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        done = subprocess.run([sys.executable, "-m", "tinydrift", "capture", "--port", f"socket://127.0.0.1:{port}",
                               "--db", str(tmp_path / "cap.db")], capture_output=True, text=True, timeout=60)
        listener.settimeout(0.5)
        with pytest.raises(socket.timeout):
            listener.accept()
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith(f"error: capture database {tmp_path / 'cap.db'} is damaged (")
    assert not (tmp_path / "cap.db-reserve").exists()


def test_a_label_for_a_device_without_a_monitor_is_refused_before_it_is_queued(tmp_path):
    """A wake-word build without a monitor (HELLO: one class, no monitor state) answers every
    LABEL with result 6; `label --db` once queued any label for it, even 2, exit 0."""
    from click.testing import CliRunner

    from tinydrift.cli.main import main

    bare = P.Hello(0, MODEL_HASH, 0, 1, 0, 0, 1, 0, 12, 0, (0,) * 8, (0,) * 8)
    device = TcpDevice(lambda conn: conn.sendall(P.encode(bare)))
    db = tmp_path / "detector.db"
    capture(device.url, db, reconnect_timeout=0)  # the device hangs up: no waiting for it to come back
    for label in ("1", "2"):
        refused = CliRunner().invoke(main, ["label", "5", label, "--db", str(db)])
        assert refused.exit_code == 1 and "runs no drift monitor" in refused.output, refused.output
    assert [tuple(r) for r in open_db(db).execute("SELECT * FROM labels")] == []
