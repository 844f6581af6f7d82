"""capture when things go wrong around it: a database another process holds locked, a disk
that fills up, a capture restarted in the middle of a device run, a bogus sequence number,
a database file that belongs to something else. Nothing received may be lost unannounced,
and the session's counters must always equal the rows stored."""

from __future__ import annotations

import json
import os
import random
import re
import resource
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time

import pytest

from tinydrift.errors import TinydriftError
from tinydrift.firmware import REPO_ROOT
from tinydrift.link import protocol as P
from tinydrift.link.port import LinkTracker
from tinydrift.logbook.capture import capture
from tinydrift.logbook.store import CaptureStore, open_db, read_summary

from test_capture import TcpDevice, hello, inference


def _stream(frames) -> bytes:
    return b"".join(P.encode(f) for f in frames)


def _counters_equal_rows(conn: sqlite3.Connection) -> None:
    for session, frames, texts in conn.execute("SELECT id, frames, text_lines FROM sessions"):
        assert frames == conn.execute("SELECT COUNT(*) FROM frames WHERE session_id=?", (session,)).fetchone()[0]
        assert texts == conn.execute("SELECT COUNT(*) FROM text_lines WHERE session_id=?", (session,)).fetchone()[0]


def test_a_database_locked_by_another_process_loses_nothing(tmp_path):
    """Another writer holds the lock for 2 s while frames keep arriving: capture keeps them in
    memory, says so, and stores every one once the lock is released."""
    rng = random.Random(41)
    frames = [hello()] + [inference(i, i, rng) for i in range(1, 1201)] + [P.Bye(1201, 0, 1200)]
    locked, released = threading.Event(), threading.Event()
    db = tmp_path / "busy.db"

    def device(conn):
        conn.sendall(_stream(frames[:200]))
        locked.wait(10)
        for k in range(200, len(frames), 50):  # arrives while the lock is held
            conn.sendall(_stream(frames[k:k + 50]))
            time.sleep(0.03)
        released.wait(10)

    def stored() -> int:
        if not db.exists():
            return 0
        reader = sqlite3.connect(db)
        try:
            return reader.execute("SELECT COUNT(*) FROM frames").fetchone()[0]
        except sqlite3.OperationalError:  # capture is still creating its tables
            return 0
        finally:
            reader.close()

    def hold_the_lock():
        deadline = time.monotonic() + 10
        while stored() < 200:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        other = sqlite3.connect(db, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        locked.set()
        time.sleep(2.0)
        other.execute("ROLLBACK")
        other.close()
        released.set()

    holder = threading.Thread(target=hold_the_lock)
    holder.start()
    messages: list[str] = []
    summary = capture(TcpDevice(device).url, db, log=messages.append)
    holder.join()
    assert summary.end_reason == "device exit (code 0)" and not summary.failed and summary.not_stored == 0
    assert any("busy" in m for m in messages) and any("free again" in m for m in messages), messages
    conn = open_db(db)
    assert [P.parse_packet(r[0]) for r in conn.execute("SELECT raw FROM frames ORDER BY id")] == frames
    _counters_equal_rows(conn)


def _run_capture(url: str, db, file_size_limit: int | None = None) -> subprocess.CompletedProcess:
    """`tinydrift capture` in its own process, optionally one that may not write files beyond
    `file_size_limit` bytes (SQLite then sees a short write, as on a full disk)."""

    def limit_file_size():
        if file_size_limit is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (file_size_limit, file_size_limit))
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a failed write, not a killed process

    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT / "host"))
    return subprocess.run([sys.executable, "-m", "tinydrift", "capture", "--port", url, "--db", str(db),
                           "--progress-interval", "60"], capture_output=True, text=True, env=env,
                          preexec_fn=limit_file_size, timeout=120)


@pytest.fixture
def small_tmpfs(tmp_path):
    """A 600 KB tmpfs: a disk that really fills up (ENOSPC). Needs the right to mount."""
    mount_point = tmp_path / "small-disk"
    mount_point.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=600k", "tmpfs", str(mount_point)],
                      capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here (not root); the file-size-limit case covers a full disk")
    yield mount_point
    subprocess.run(["umount", "-l", str(mount_point)], check=True)


@pytest.mark.parametrize("disk", ["tmpfs", "file_size_limit"])
def test_a_full_disk_stops_cleanly_and_counts_what_was_not_stored(tmp_path, disk, request):
    rng = random.Random(42)
    frames = [hello()] + [inference(i, i, rng) for i in range(1, 20001)] + [P.Bye(20001, 0, 20000)]
    stream = _stream(frames)

    def device(conn):
        for k in range(0, len(stream), 4096):
            try:
                conn.sendall(stream[k:k + 4096])
            except OSError:
                return  # capture stopped: its choice
            time.sleep(0.001)

    url = TcpDevice(device).url
    if disk == "tmpfs":
        db = request.getfixturevalue("small_tmpfs") / "full.db"
        proc = _run_capture(url, db)
    else:
        db = tmp_path / "full.db"
        proc = _run_capture(url, db, file_size_limit=600_000)
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    match = re.search(r"captured (\d+) frames .* stopped: cannot write to .*: (the disk is full|disk I/O error "
                      r"\(the disk is full, or failing\)); (\d+) received frames NOT stored", proc.stdout)
    assert match, proc.stdout
    stored, not_stored = int(match.group(1)), int(match.group(3))
    assert stored > 100 and not_stored > 0
    # the last progress line says the same: what is stored, and what is not
    last = [line for line in proc.stderr.splitlines() if line.startswith("stored frames=")][-1]
    assert f"stored frames={stored} " in last and last.endswith(f" not_stored={not_stored}"), last
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    _counters_equal_rows(conn)
    ended, reason, counted = conn.execute("SELECT ended_at, end_reason, frames FROM sessions").fetchone()
    assert ended is not None and "cannot write to" in reason and counted == stored, proc.stderr
    seqs = [s for (s,) in conn.execute("SELECT seq FROM frames ORDER BY id")]
    assert seqs == list(range(stored))  # what is stored is a clean prefix of what was sent


def test_frames_lost_between_two_captures_of_one_device_run_are_counted(tmp_path):
    """Capture stops at frame 99; the device keeps counting; the next capture on the same port
    starts at seq 150: the 50 frames in between are lost, and said to be."""
    rng = random.Random(43)
    first = [hello()] + [inference(i, i, rng) for i in range(1, 100)]
    second = [inference(i, i, rng) for i in range(150, 200)] + [P.Bye(200, 0, 199)]
    device = TcpDevice(lambda conn: (conn.sendall(_stream(first)), time.sleep(0.3)),
                       lambda conn: conn.sendall(_stream(second)))
    db = tmp_path / "two.db"
    assert capture(device.url, db, max_frames=len(first)).stats.lost == 0
    summary = capture(device.url, db)
    assert summary.stats.lost == 50
    conn = open_db(db)
    assert read_summary(conn).lost == 50
    gap = conn.execute("SELECT seq, count, detail FROM events WHERE kind='gap'").fetchall()
    assert gap == [(100, 50, "between capture sessions")]


def test_another_device_run_on_the_port_is_a_restart_not_a_loss(tmp_path):
    rng = random.Random(44)
    first = [hello()] + [inference(i, i, rng) for i in range(1, 100)]
    rebooted = [hello()] + [inference(i, i, rng) for i in range(1, 20)] + [P.Bye(20, 0, 19)]
    device = TcpDevice(lambda conn: (conn.sendall(_stream(first)), time.sleep(0.3)),
                       lambda conn: conn.sendall(_stream(rebooted)))
    db = tmp_path / "reboot.db"
    capture(device.url, db, max_frames=len(first))
    summary = capture(device.url, db)
    assert (summary.stats.lost, summary.stats.restarts) == (0, 1)


def _follow(tracker: LinkTracker, seqs, start: float = 1000.0, step: float = 0.01) -> list:
    events, rng = [], random.Random(45)
    for k, seq in enumerate(seqs):
        frame = hello(seq) if seq == 0 else inference(seq, k, rng)
        tracker.observe(frame, start + k * step, 1, events)
    return events


def test_a_bogus_sequence_number_is_named_and_loses_nothing():
    """One frame whose seq is garbage (here 4,294,967,000 amid 1..150) once made `lost` read
    4,294,967,349; and a duplicate seq is no restart either."""
    tracker = LinkTracker(None, None)
    events = _follow(tracker, [0, *range(1, 101), 4_294_967_000, *range(101, 120), 119, *range(120, 150)])
    assert (tracker.lost, tracker.restarts) == (0, 0)
    bogus = [e for e in events if e[2] == "bogus_seq"]
    assert [e[3] for e in bogus] == [4_294_967_000, 119] and "no frames lost" in bogus[0][5]
    # A plausible gap is still loss: 30 frames missing, 0.3 s later.
    tracker.observe(inference(180, 180, random.Random(1)), 1003.0, 1, events)
    assert tracker.lost == 30


def test_a_restart_whose_hello_was_lost_is_a_restart():
    tracker = LinkTracker(None, None)
    events = _follow(tracker, [0, *range(1, 101), *range(5, 40)])
    assert (tracker.lost, tracker.restarts) == (5, 1)  # seq 0..4 of the new run never came
    assert [e[3:5] for e in events if e[2] == "restart"] == [(5, 5)]
    tracker = LinkTracker(None, None)
    _follow(tracker, [0, *range(1, 101), *range(3_000_000, 3_000_010)])  # a far jump, then followed
    assert (tracker.lost, tracker.restarts) == (0, 1)


def test_capture_refuses_an_sqlite_file_of_something_else(tmp_path):
    other = tmp_path / "inventory.sqlite"
    conn = sqlite3.connect(other)
    conn.execute("CREATE TABLE parts (id INTEGER PRIMARY KEY, name TEXT)")
    conn.commit()
    conn.close()
    before = other.read_bytes()
    device = TcpDevice(lambda conn: time.sleep(0.5))
    with pytest.raises(TinydriftError, match="database of something else .*parts.*choose another --db"):
        capture(device.url, other)
    assert other.read_bytes() == before and not (tmp_path / "inventory.sqlite-wal").exists()


def _captured_db(path, n: int = 3000):
    rng = random.Random(46)
    frames = [hello()] + [inference(i, i, rng) for i in range(1, n)] + [P.Bye(n, 0, n - 1)]
    capture(TcpDevice(lambda conn: conn.sendall(_stream(frames))).url, path)
    return path


def _tinydrift(*args) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT / "host"))
    return subprocess.run([sys.executable, "-m", "tinydrift", *map(str, args)], capture_output=True, text=True,
                          env=env, timeout=120)


def test_a_damaged_page_is_a_clear_error_in_report_and_monitor(tmp_path):
    db = _captured_db(tmp_path / "damaged.db")
    data = bytearray(db.read_bytes())
    page = 4096
    middle = (len(data) // page // 2) * page  # a page of the frames table, header and all
    data[middle:middle + 64] = bytes(range(64, 128))
    db.write_bytes(bytes(data))
    for command in (["report", db, "--out", tmp_path / "report"], ["monitor", "--db", db, "--once"]):
        proc = _tinydrift(*command)
        assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
        assert f"capture database {db} is damaged" in proc.stderr and ".recover" in proc.stderr
    assert not (tmp_path / "report").exists()


@pytest.fixture
def read_only_folder(tmp_path):
    """A folder on read-only media: a tmpfs remounted read-only (as root, whom permissions do
    not stop), else a folder without write permission."""
    folder = tmp_path / "media"
    folder.mkdir()
    if os.geteuid() != 0:
        yield folder, lambda: folder.chmod(0o555)
        folder.chmod(0o755)
        return
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(folder)],
                      capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here as root")
    yield folder, lambda: subprocess.run(["mount", "-o", "remount,ro", str(folder)], check=True)
    subprocess.run(["umount", "-l", str(folder)], check=True)


# the cleanly closed database in the slow tier: the killed one (with its write-ahead log) is the harder case
@pytest.mark.parametrize("pending_wal", [pytest.param(False, marks=pytest.mark.slow), True], ids=["closed", "killed_with_wal"])
def test_a_capture_on_read_only_media_can_be_reported(tmp_path, read_only_folder, pending_wal):
    folder, make_read_only = read_only_folder
    db = _captured_db(tmp_path / "run.db")
    (folder / "run.db").write_bytes(db.read_bytes())
    if pending_wal:  # as kill -9 leaves it: frames in the -wal file, not yet in the .db
        writer = sqlite3.connect(folder / "run.db", isolation_level=None)
        writer.execute("PRAGMA wal_autocheckpoint=0")
        writer.execute("INSERT INTO text_lines (session_id, received_at, line) VALUES (1, 0, 'after the kill')")
        (folder / "copy.db").write_bytes((folder / "run.db").read_bytes())
        (folder / "copy.db-wal").write_bytes((folder / "run.db-wal").read_bytes())
        writer.close()  # checkpoints run.db; copy.db keeps its content in the WAL
        name = "copy.db"
    else:
        name = "run.db"
    make_read_only()
    proc = _tinydrift("report", folder / name, "--out", tmp_path / "report")
    assert proc.returncode == 0, proc.stderr
    assert "3001 frames" in proc.stdout or "3001" in (tmp_path / "report" / "index.html").read_text()
    conn = open_db(folder / name)
    assert read_summary(conn).frames == 3001
    lines = [r[0] for r in conn.execute("SELECT line FROM text_lines")]
    assert lines == (["after the kill"] if pending_wal else [])


@pytest.mark.parametrize("pending_wal", [False, True], ids=["closed", "killed_with_wal"])
def test_another_user_s_capture_can_be_reported(tmp_path, pending_wal):
    """report, monitor and archive once said a capture in a folder this user may not write
    was "not a tinydrift capture database (attempt to write a readonly database)": SQLite
    could not make the -shm file a WAL database needs beside it."""
    import shutil
    import tempfile
    from pathlib import Path

    db = _captured_db(tmp_path / "run.db")
    if pending_wal:
        writer = sqlite3.connect(db, isolation_level=None)
        writer.execute("PRAGMA wal_autocheckpoint=0")
        writer.execute("INSERT INTO text_lines (session_id, received_at, line) VALUES (1, 0, 'after the kill')")
        wal = db.read_bytes(), (tmp_path / "run.db-wal").read_bytes()
        writer.close()
    theirs = Path(tempfile.mkdtemp(prefix="tinydrift-theirs-"))  # outside tmp_path, which only its owner may enter
    out = Path(tempfile.mkdtemp(prefix="tinydrift-mine-"))
    try:
        if pending_wal:
            (theirs / "run.db").write_bytes(wal[0])
            (theirs / "run.db-wal").write_bytes(wal[1])
        else:
            shutil.copyfile(db, theirs / "run.db")
        for f in theirs.iterdir():
            f.chmod(0o644)
        theirs.chmod(0o755)
        out.chmod(0o777)
        command = [sys.executable, "-m", "tinydrift", "report", str(theirs / "run.db"), "--out", str(out / "report")]
        if os.geteuid() == 0:  # root may write anywhere: read as nobody
            if shutil.which("setpriv") is None:
                pytest.skip("setpriv is needed to read as another user")
            command = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *command]
        else:
            theirs.chmod(0o555)
        proc = subprocess.run(command, capture_output=True, text=True, timeout=120,
                              env=dict(os.environ, PYTHONPATH=str(REPO_ROOT / "host"), HOME=str(out)))
        assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
        assert "3001 frames" in proc.stdout
        assert sorted(p.name for p in theirs.iterdir()) == (["run.db", "run.db-wal"] if pending_wal else ["run.db"])
    finally:
        theirs.chmod(0o755)
        shutil.rmtree(theirs, ignore_errors=True)
        shutil.rmtree(out, ignore_errors=True)


def _one_wav_folder(tmp_path):
    import wave

    clips = tmp_path / "clips"
    clips.mkdir()
    with wave.open(str(clips / "a.wav"), "wb") as w:
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(16000)
        w.writeframes(bytes(32000))
    return clips


def test_replay_with_a_bad_port_leaves_no_half_made_session(tmp_path):
    db = tmp_path / "replay.db"
    proc = _tinydrift("replay", _one_wav_folder(tmp_path), "--port", "/dev/tinydrift-no-such-port", "--db", db)
    assert proc.returncode == 1 and "cannot open port" in proc.stderr and "Traceback" not in proc.stderr
    assert not db.exists()


def test_archive_takes_the_frames_still_in_the_wal_into_one_file(tmp_path):
    """After kill -9 the newest frames live in DB-wal; `archive` folds them into one file
    that needs no companion, and refuses to overwrite anything."""
    db = _captured_db(tmp_path / "run.db", n=500)
    writer = sqlite3.connect(db, isolation_level=None)
    writer.execute("PRAGMA wal_autocheckpoint=0")
    writer.execute("INSERT INTO text_lines (session_id, received_at, line) VALUES (1, 0, 'only in the wal')")
    killed = tmp_path / "killed"
    killed.mkdir()
    for suffix in ("", "-wal"):  # what a copy taken while the writer lives holds
        (killed / f"run.db{suffix}").write_bytes((tmp_path / f"run.db{suffix}").read_bytes())
    writer.close()
    proc = _tinydrift("archive", killed / "run.db", tmp_path / "out.db")
    assert proc.returncode == 0 and proc.stdout.startswith("archived 501 frames"), proc.stderr
    assert "1 session) into" in proc.stdout, proc.stdout  # once "1 sessions"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("out.db")) == ["out.db"]
    alone = tmp_path / "alone"
    alone.mkdir()
    (alone / "out.db").write_bytes((tmp_path / "out.db").read_bytes())
    conn = open_db(alone / "out.db")
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    assert [r[0] for r in conn.execute("SELECT line FROM text_lines")] == ["only in the wal"]
    again = _tinydrift("archive", killed / "run.db", tmp_path / "out.db")
    assert again.returncode == 1 and "already exists" in again.stderr
    # opening the capture makes its -wal, which "already exists" once blamed on the user
    for suffix in ("-wal", "-shm", "-journal"):
        named = _tinydrift("archive", alone / "out.db", alone / f"out.db{suffix}")
        assert named.returncode == 1 and "a file SQLite keeps beside out.db" in named.stderr, named.stderr


def test_a_database_locked_when_capture_starts_is_waited_for(tmp_path):
    """Another program holds the write lock as capture opens its database (a `tinydrift
    label --db` queueing, a shell): capture waits for it instead of refusing the database."""
    rng = random.Random(46)
    frames = [hello()] + [inference(i, i, rng) for i in range(1, 101)] + [P.Bye(101, 0, 100)]
    db = tmp_path / "locked.db"
    capture(TcpDevice(lambda conn: conn.sendall(_stream([hello(), P.Bye(1, 0, 0)]))).url, db)
    other = sqlite3.connect(db, isolation_level=None, check_same_thread=False)  # released by the timer's thread
    other.execute("BEGIN EXCLUSIVE")
    threading.Timer(1.5, lambda: (other.execute("ROLLBACK"), other.close())).start()
    started = time.monotonic()
    summary = capture(TcpDevice(lambda conn: conn.sendall(_stream(frames))).url, db)
    assert time.monotonic() - started >= 1.4
    assert not summary.failed and summary.not_stored == 0 and summary.problem is None
    conn = open_db(db)
    assert conn.execute("SELECT COUNT(*) FROM frames WHERE session_id=2").fetchone()[0] == len(frames)
    _counters_equal_rows(conn)


def _fake_model_dir(folder, model_hash: bytes):
    folder.mkdir()
    (folder / "reference.json").write_text(json.dumps({
        "name": "fake", "model_hash": model_hash.hex(), "labels": ["a", "b"],
        "monitor_config": {"score_warning": [1, 2, 3, 4, 5], "score_drift": [6, 7, 8, 9, 10]}}))
    return folder


def test_a_device_of_another_model_is_refused_and_the_database_left_as_it_was(tmp_path):
    rng = random.Random(47)
    other_hash = bytes(range(100, 132))
    frames = [hello(model_hash=other_hash)] + [inference(i, i, rng, other_hash) for i in range(1, 200)]
    model_dir = _fake_model_dir(tmp_path / "model", bytes(range(32)))
    db = tmp_path / "foreign.db"
    summary = capture(TcpDevice(lambda conn: (conn.sendall(_stream(frames)), time.sleep(5))).url, db,
                      model_dir=model_dir, duration=20)
    assert summary.failed and summary.end_reason == "another model on the port"
    assert summary.duration_s < 4  # refused at the first frame, not after the whole run
    assert summary.problem.startswith(f"the device runs model {other_hash.hex()[:16]}, but {model_dir} is model "
                                      f"{bytes(range(32)).hex()[:16]}")
    # what it sent belongs in another database; this run created this one, so it is gone
    assert not any(p.name.startswith("foreign.db") for p in tmp_path.iterdir())


def test_a_device_reflashed_during_the_capture_is_counted_not_refused(tmp_path):
    rng = random.Random(48)
    other_hash = bytes(range(100, 132))
    frames = ([hello()] + [inference(i, i, rng) for i in range(1, 50)]
              + [inference(i, i, rng, other_hash) for i in range(50, 60)] + [P.Bye(60, 0, 59)])
    summary = capture(TcpDevice(lambda conn: conn.sendall(_stream(frames))).url, tmp_path / "reflashed.db",
                      model_dir=_fake_model_dir(tmp_path / "model", bytes(range(32))))
    assert not summary.failed and summary.problem is None and summary.stats.foreign == 10


@pytest.fixture
def held_port():
    """The URL of a port another client holds: the emulator serves one client, and the
    kernel accepts a second connection for it that nothing ever answers."""
    held = socket.create_server(("127.0.0.1", 0))  # listens, never accepts
    yield f"socket://127.0.0.1:{held.getsockname()[1]}"
    held.close()


def test_a_port_lost_before_a_byte_came_leaves_no_new_database(tmp_path):
    """A device that hung up at once left a new database holding one empty "port lost"
    session (a refused connection, or replay, left none)."""
    device = TcpDevice(lambda conn: None)
    proc = _tinydrift("capture", "--port", device.url, "--db", tmp_path / "new" / "cap.db", "--reconnect-timeout", "0")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stdout.rstrip().endswith(f"nothing stored, db {tmp_path / 'new' / 'cap.db'} not written"), proc.stdout
    assert "did not come back" in proc.stderr, proc.stderr
    assert list(tmp_path.iterdir()) == []


def test_a_silent_port_is_warned_of_while_listening_and_refused_once_at_the_end(tmp_path, held_port, monkeypatch):
    """The warning while capture still listens and the error it ends with say different
    things (trial 19 read "nothing received" twice)."""
    from click.testing import CliRunner

    from tinydrift.cli.main import main
    from tinydrift.logbook import capture as capture_module

    monkeypatch.setattr(capture_module, "SILENCE_WARNING_S", 0.3)
    result = CliRunner().invoke(main, ["capture", "--port", held_port, "--db", str(tmp_path / "silent.db"),
                                       "--duration", "1"])
    assert result.exit_code == 1
    assert f"still listening: nothing from {held_port} in its first 0.3 s" in result.output
    assert result.output.count("nothing received") == 1, result.output


def test_a_port_on_which_nothing_arrives_is_an_error_not_an_empty_success(tmp_path, held_port):
    """Once that printed "captured 0 frames" and exited 0. A database (and its folder) the run
    made for nothing is not left behind, an empty session in a new file; one that was there
    keeps the attempt as a session of its own."""
    proc = _tinydrift("capture", "--port", held_port, "--db", tmp_path / "new" / "silent.db", "--duration", "1.5")
    assert proc.returncode == 1, proc.stderr
    assert "captured 0 frames" in proc.stdout
    assert proc.stdout.rstrip().endswith(f"nothing stored, db {tmp_path / 'new' / 'silent.db'} not written"), proc.stdout
    assert proc.stderr.strip().splitlines()[-1].startswith(f"error: nothing received from {held_port} in ")
    assert "another program holding the port" in proc.stderr and "Traceback" not in proc.stderr
    assert list(tmp_path.iterdir()) == []
    CaptureStore(tmp_path / "kept.db").close()
    kept = _tinydrift("capture", "--port", held_port, "--db", tmp_path / "kept.db", "--duration", "1")
    assert kept.returncode == 1 and kept.stdout.rstrip().endswith(f"db {tmp_path / 'kept.db'}"), kept.stdout
    assert open_db(tmp_path / "kept.db").execute("SELECT COUNT(*) FROM sessions").fetchone()[0] == 1


def test_replay_to_a_port_nobody_answers_on_fails_in_seconds(tmp_path, held_port):
    """Once it waited out every AUDIO frame's ACK timeout (41 s) before saying so."""
    started = time.monotonic()
    proc = _tinydrift("replay", _one_wav_folder(tmp_path), "--port", held_port)
    assert proc.returncode == 1 and time.monotonic() - started < 20
    assert proc.stderr.strip().splitlines()[-1] == (
        "error: the device did not answer within 5 s: is another program holding its port (the emulator serves "
        "one client at a time), or is the device not running the tinydrift app?")


def test_a_replay_whose_port_fails_keeps_what_the_device_sent(tmp_path):
    """A replay that ended on a lost port forgot its whole session, frames and all: the rule
    that forgets a session which heard nothing counted bytes, and replay never counts bytes
    (it hands over parsed frames). What came is kept; a session that heard nothing is not."""
    from tinydrift.logbook.capture import DatabaseSink

    sink = DatabaseSink(tmp_path / "replay.db", "socket://test", bytes(range(32)))
    sink([hello()])
    rng = random.Random(5)
    sink([inference(i + 1, i + 1, rng) for i in range(5)])
    assert sink.close("error") is None
    conn = open_db(tmp_path / "replay.db")
    assert conn.execute("SELECT COUNT(*) FROM frames").fetchone()[0] == 6
    assert conn.execute("SELECT COUNT(*) FROM sessions").fetchone()[0] == 1
    conn.close()
    silent = DatabaseSink(tmp_path / "silent.db", "socket://test", bytes(range(32)))
    assert silent.close("error") is None
    assert not any(p.name.startswith("silent.db") for p in tmp_path.iterdir())


def test_replay_refuses_a_device_of_another_model_and_leaves_the_database_as_it_was(tmp_path):
    """A refused replay (or monitor --port) once stored the other device's frames and a session
    of its own in the database: the report then counted two devices' seqs as lost frames."""
    from tinydrift.logbook.capture import DatabaseSink

    other_hash = bytes(range(100, 132))
    sink = DatabaseSink(tmp_path / "replay.db", "socket://test", bytes(range(32)), named_as="models/kws")
    with pytest.raises(TinydriftError, match=r"^the device runs model 6465666768696a6b, but models/kws is model "
                                             r"0001020304050607: give the model folder"):
        sink([hello(model_hash=other_hash)])
    assert sink.close("error") is None
    assert not any(p.name.startswith("replay.db") for p in tmp_path.iterdir())  # it made the file: gone
    kept = DatabaseSink(tmp_path / "kept.db", "socket://test", bytes(range(32)))
    kept([hello()])
    assert kept.close("done") is None
    sink = DatabaseSink(tmp_path / "kept.db", "socket://test")
    with pytest.raises(TinydriftError, match=r"^the device runs model 6465666768696a6b, but the model .*kept.db holds"):
        sink([hello(model_hash=other_hash)])
    assert sink.close("error") is None
    conn = open_db(tmp_path / "kept.db")
    assert conn.execute("SELECT COUNT(*), SUM(foreign_model) FROM frames").fetchone() == (1, 0)
    assert conn.execute("SELECT COUNT(*) FROM sessions").fetchone()[0] == 1
