"""The fleet path end to end with the real parts: simulated devices on pseudo-terminals ->
`tinydrift gateway` -> a private mosquitto -> two `tinydrift collect` -> a private
PostgreSQL, each command its own process. Every frame a device sent must be stored exactly
once, also when the broker restarts mid-run, a collector is killed mid-batch, the database
goes down, the gateway is killed with frames in its outbox, or the broker is down at start.
"""

from __future__ import annotations

import dataclasses
import os
import pty
import resource
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import tty
from pathlib import Path

import pytest

from test_capture import TcpDevice, write_all
from tinydrift.fleet import envelope as E
from tinydrift.fleet.services import Broker, missing_binaries
from tinydrift.fleet.simulate import SimulatedDevice
from tinydrift.fleet.store import SCHEMA_VERSION
from tinydrift.link import protocol as P

pytestmark = pytest.mark.skipif(missing_binaries() is not None, reason=f"{missing_binaries()}")

psycopg = pytest.importorskip("psycopg")


@pytest.fixture
def services(fleet_services):
    return fleet_services


@pytest.fixture
def dsn(fleet_dsn):
    return fleet_dsn


@pytest.fixture(autouse=True)
def fleet(request, monkeypatch):
    """A fleet (topic tree) of the test's own: the broker keeps an earlier test's collector
    sessions, and a shared subscription gives absent members their share (see collect --help)."""
    name = request.node.name.lower()[5:45]
    monkeypatch.setattr(sys.modules[__name__], "FLEET", name)
    return name


FLEET = "default"
STARTED: list["Command"] = []  # this test's commands, killed at its end if still running


@pytest.fixture(autouse=True)
def no_command_outlives_its_test():
    """A failed assertion leaves its test's gateways and collectors running (they would hold
    broker sessions and CPU for the rest of the run): kill what is left."""
    yield
    while STARTED:
        command = STARTED.pop()
        if command.process.poll() is None:
            command.kill()


def threads_of(pid: int) -> str:
    """Each thread's name, state (R, S, D, T: stopped) and kernel wait channel, from /proc."""
    found = []
    for task in sorted(Path(f"/proc/{pid}/task").glob("*")):
        try:
            stat = (task / "stat").read_text()
            wchan = (task / "wchan").read_text()
        except OSError:
            continue
        name, state = stat[stat.index("(") + 1:stat.rindex(")")], stat[stat.rindex(")") + 2]
        found.append(f"{name}:{state}:{wchan or '-'}")
    return ", ".join(found) or "(gone)"


class Command:
    """`tinydrift ARGS` as a child process, its stderr in a file."""

    def __init__(self, folder: Path, name: str, *args: str, file_size_limit: int | None = None,
                 env: dict | None = None) -> None:
        self.log = folder / f"{name}.log"
        self.out = folder / f"{name}.out"

        def limit_file_size():  # SQLite then sees a short write, as on a full disk
            if file_size_limit is not None:
                resource.setrlimit(resource.RLIMIT_FSIZE, (file_size_limit, file_size_limit))
                signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a failed write, not a killed process

        with open(self.log, "ab") as err, open(self.out, "ab") as out:
            self.process = subprocess.Popen([sys.executable, "-m", "tinydrift", *args], stdin=subprocess.DEVNULL,
                                            stdout=out, stderr=err, preexec_fn=limit_file_size,
                                            env=None if env is None else {**os.environ, **env})
        STARTED.append(self)

    def stop(self, timeout: float = 20.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:  # say where it hangs: it happened once, in a CI run
            where = threads_of(self.process.pid)
            self.kill()
            tail = " | ".join(self.log.read_text(errors="replace").splitlines()[-4:])
            raise AssertionError(f"{self.process.args[3]} did not stop within {timeout:g} s of SIGTERM; "
                                 f"its threads (state, kernel wait): {where}; its log ends: {tail}") from None

    def kill(self) -> None:
        self.process.kill()
        self.process.wait()

    @property
    def text(self) -> str:
        return self.log.read_text() + self.out.read_text()


class Devices:
    """Simulated boards, each on a pseudo-terminal; a gateway opens the slave side's path."""

    def __init__(self, n: int, first_id: int, **options) -> None:
        self.boards = [SimulatedDevice(first_id + k, seed=k, **options) for k in range(n)]
        self.ptys = []
        for _ in range(n):
            master, slave = pty.openpty()
            tty.setraw(slave)  # before any byte: the line discipline must not touch frames
            self.ptys.append((master, slave))
        self.sent: list[tuple[int, int, P.Frame]] = []  # (device_id, boot_count, frame)

    @property
    def paths(self) -> list[str]:
        return [os.ttyname(slave) for _, slave in self.ptys]

    def send(self, frames_of) -> None:
        """frames_of(board) -> its frames; written to its pty."""
        for board, (master, _) in zip(self.boards, self.ptys):
            frames = frames_of(board)
            self.sent += [(board.device_id, board.boot_count, f) for f in frames]
            write_all(master, b"".join(P.encode(f) for f in frames))

    def close(self) -> None:
        for master, slave in self.ptys:
            os.close(master)
            os.close(slave)


@pytest.fixture
def devices_factory():
    made = []

    def make(n: int, first_id: int, **options) -> Devices:
        made.append(Devices(n, first_id, **options))
        return made[-1]

    yield make
    for devices in made:
        devices.close()


def gateway(tmp_path: Path, broker_url: str, devices: Devices, name: str = "gateway", outbox: str = "outbox.sqlite",
            **options):
    args = ["gateway", "--broker", broker_url, "--outbox", str(tmp_path / outbox), "--fleet", FLEET,
            "--progress-interval", "1"]
    for path in devices.paths:
        args += ["--port", path]
    return Command(tmp_path, name, *args, **options)


def collector(tmp_path: Path, broker_url: str, dsn: str, name: str, *extra: str) -> Command:
    return Command(tmp_path, f"collect-{name}", "collect", "--broker", broker_url, "--db", dsn, "--fleet", FLEET,
                   "--name", name, "--progress-interval", "1", *extra)


def subscribed(*collectors: Command, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not all("subscribed to $share/" in c.log.read_text() for c in collectors):
        assert time.monotonic() < deadline, "\n".join(c.text[-1000:] for c in collectors)
        time.sleep(0.05)


def stored(dsn: str) -> tuple[int, int]:
    """(rows, distinct (device, boot, seq)) in the fleet store."""
    with psycopg.connect(dsn) as conn:
        try:
            return conn.execute("SELECT count(*), count(DISTINCT (device_id, boot_count, seq)) FROM frames").fetchone()
        except psycopg.errors.UndefinedTable:
            return 0, 0


def wait_stored(dsn: str, expected: int, timeout: float = 30.0, commands=()) -> tuple[int, int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = stored(dsn)
        if got[0] >= expected:
            time.sleep(0.3)  # a copy arriving late would show now
            return stored(dsn)
        time.sleep(0.1)
    logs = "\n".join(f"--- {c.log.name}\n{c.text[-1500:]}" for c in commands)
    raise AssertionError(f"{stored(dsn)} rows after {timeout:g} s, expected {expected}\n{logs}")


def check_exactly_once(dsn: str, devices: Devices) -> None:
    """Every frame sent is stored once, with its device, boot and raw packet."""
    with psycopg.connect(dsn) as conn:
        rows = conn.execute("SELECT device_id, boot_count, seq, raw FROM frames").fetchall()
    got = sorted((d, b, s, bytes(r)) for d, b, s, r in rows)
    want = sorted((d, b, f.seq, P.encode_packet(f)) for d, b, f in devices.sent)
    assert len(got) == len(want) and got == want


def test_three_devices_two_collectors_every_frame_once_with_heartbeats_decoded(services, dsn, tmp_path,
                                                                            devices_factory):
    broker, _ = services
    devices = devices_factory(3, 0xA100, boot_count=7, heartbeat_interval=10)
    collectors = [collector(tmp_path, broker.url, dsn, name) for name in ("c1", "c2")]
    subscribed(*collectors)  # before the gateway sends (else it holds frames back: another test)
    gw = gateway(tmp_path, broker.url, devices)
    devices.send(lambda board: board.run(1000))
    total = len(devices.sent)
    rows, distinct = wait_stored(dsn, total, commands=[gw, *collectors])
    assert (rows, distinct) == (total, total)  # 0 lost, 0 duplicated
    check_exactly_once(dsn, devices)
    assert gw.stop() == 0 and all(c.stop() == 0 for c in collectors)
    shares = [int(c.out.read_text().split("collected ")[1].split()[0]) for c in collectors]
    assert sum(shares) == total and min(shares) > 0, shares  # the shared subscription split the traffic
    assert f"gateway read {total} frames (0 lost" in gw.out.read_text()

    with psycopg.connect(dsn) as conn:
        devices_rows = conn.execute("SELECT device_id, boot_count, model_id, frames, hello_at IS NOT NULL "
                                    "FROM devices ORDER BY device_id").fetchall()
        beats = conn.execute("SELECT device_id, seq, inference_index, window_size, accuracy, confidence, entropy, "
                             "class_share, cusum_max, latch_delay FROM frames WHERE type = 7").fetchall()
        partitions = conn.execute("SELECT count(*) FROM pg_inherits WHERE inhparent = 'frames'::regclass").fetchone()[0]
        versions = [v for (v,) in conn.execute("SELECT version FROM schema_version ORDER BY version")]
    per_device = total // 3
    assert devices_rows == [(b.device_id, 7, b.model_hash[:8], per_device, True) for b in devices.boards]
    assert partitions >= 1 and versions == list(range(1, SCHEMA_VERSION + 1))
    sent_beats = {(d, f.seq): f for d, _, f in devices.sent if isinstance(f, P.Heartbeat)}
    assert len(beats) == len(sent_beats) == 300
    for device, seq, index, window, accuracy, confidence, entropy, shares_, maxima, delays in beats:
        beat = sent_beats[(device, seq)]
        assert (index, window) == (beat.inference_index, 10)
        assert accuracy == pytest.approx(beat.atc / 256) and confidence == pytest.approx(beat.mean_confidence / 256)
        assert entropy == pytest.approx(beat.mean_entropy / 4096)
        assert tuple(shares_) == beat.class_share and tuple(maxima) == beat.cusum_max
        assert tuple(delays) == beat.latch_delay


def running_fleet(services, dsn: str, tmp_path: Path, devices_factory, first_id: int, inferences: int,
                  wait: bool = True):
    """Two devices through a gateway and two collectors, their first `inferences` each sent
    and (`wait`) stored: (broker, devices, collectors, gateway)."""
    broker, _ = services
    devices = devices_factory(2, first_id)
    collectors = [collector(tmp_path, broker.url, dsn, name) for name in ("c1", "c2")]
    subscribed(*collectors)
    gw = gateway(tmp_path, broker.url, devices)
    devices.send(lambda board: board.run(inferences))
    if wait:
        wait_stored(dsn, len(devices.sent), commands=[gw, *collectors])
    return broker, devices, collectors, gw


def test_broker_restarted_mid_run_loses_and_duplicates_nothing(services, dsn, tmp_path, devices_factory):
    broker, devices, collectors, gw = running_fleet(services, dsn, tmp_path, devices_factory, 0xB200, 400)
    broker.stop()  # SIGTERM: mosquitto saves its sessions and queues, as on a restart
    devices.send(lambda board: [f for _ in range(400) for f in board.infer()])  # read into the outbox meanwhile
    time.sleep(1.0)
    broker.start()
    devices.send(lambda board: [f for _ in range(200) for f in board.infer()])
    rows, distinct = wait_stored(dsn, len(devices.sent), commands=[gw, *collectors])
    assert rows == distinct == len(devices.sent)
    check_exactly_once(dsn, devices)
    assert gw.stop() == 0 and all(c.stop() == 0 for c in collectors)
    said = [line for line in gw.log.read_text().splitlines() if "unreachable" in line]
    assert len(said) == 1 and "frames wait in the outbox" in said[0]
    # paho calls it "Unspecified error"; a gateway that had connected just before the stop
    # was once told another client had taken its session over
    assert "the connection was lost without a word from the broker: it stopped" in said[0], said
    # the frames sent again after the reconnect are acknowledged again: the summary says why
    # the broker acknowledged more sends than the gateway read (trial 16 read it as a miscount)
    summary = gw.out.read_text()
    read = int(summary.split("gateway read ")[1].split()[0])
    acknowledged = int(summary.split("the broker acknowledged ")[1].split()[0])
    repeats = int(summary.split(" sends repeated a frame")[0].rsplit("(", 1)[1])
    assert acknowledged > read and repeats >= acknowledged - read, summary


def test_broker_crashed_mid_run_loses_nothing_the_gateway_kept(services, dsn, tmp_path, devices_factory):
    """A broker killed (no save: what it acknowledged and queued for the collectors since its
    last save is gone; a new user's trial lost 124 frames so) comes back: the gateway sends
    what it acknowledged in the last KEEP_SENT_S again, and the collectors, back later, store
    every frame once."""
    broker, devices, collectors, gw = running_fleet(services, dsn, tmp_path, devices_factory, 0xB300, 200)
    assert all(c.stop() == 0 for c in collectors)  # the broker queues the fleet's frames for them now
    devices.send(lambda board: [f for _ in range(300) for f in board.infer()])
    outbox = sqlite3.connect(tmp_path / "outbox.sqlite")
    deadline = time.monotonic() + 30
    while outbox.execute("SELECT count(*) FROM outbox WHERE sent_at IS NULL").fetchone()[0] or \
            outbox.execute("SELECT count(*) FROM outbox").fetchone()[0] < len(devices.sent) - 400:
        assert time.monotonic() < deadline, gw.text[-1500:]
        time.sleep(0.1)
    outbox.close()
    broker.kill()  # SIGKILL: nothing saved; every frame it acknowledged since its start is gone
    broker.start()
    collectors = [collector(tmp_path, broker.url, dsn, name) for name in ("c1", "c2")]
    subscribed(*collectors)
    rows, distinct = wait_stored(dsn, len(devices.sent), commands=[gw, *collectors])
    assert rows == distinct == len(devices.sent)
    check_exactly_once(dsn, devices)
    assert gw.stop() == 0 and all(c.stop() == 0 for c in collectors)
    assert "are sent again, in case it lost them" in gw.log.read_text()


def test_database_crashed_right_after_its_commits_keeps_every_one(services, dsn, tmp_path, devices_factory):
    """`fleet up`'s PostgreSQL ran with synchronous_commit off: a commit returned (and the
    collector acknowledged its frames to the broker) before its WAL was written, and an
    immediate shutdown (SIGQUIT, as a crash) lost the last ones: 26 of 2,259 in a new user's
    trial. Every commit a reader can see now survives the crash."""
    database = services[1]
    _, devices, collectors, gw = running_fleet(services, dsn, tmp_path, devices_factory, 0xB400, 600, wait=False)
    deadline = time.monotonic() + 30
    while stored(dsn)[0] < len(devices.sent):  # no settling pause: the crash follows the last commit
        assert time.monotonic() < deadline, stored(dsn)
        time.sleep(0.01)
    database.process.send_signal(signal.SIGQUIT)  # immediate shutdown: nothing written on the way out
    database.process.wait(20)
    database.start()
    assert stored(dsn) == (len(devices.sent),) * 2
    check_exactly_once(dsn, devices)
    assert gw.stop() == 0 and all(c.stop() == 0 for c in collectors)


def test_collector_killed_mid_batch_loses_nothing(services, dsn, tmp_path, devices_factory):
    broker, _ = services
    devices = devices_factory(2, 0xC300)
    # A long batch wait: the killed collector holds every frame it got in a batch not yet written.
    slow = collector(tmp_path, broker.url, dsn, "c2", "--batch", "100000", "--batch-wait", "30")
    subscribed(slow)
    gw = gateway(tmp_path, broker.url, devices)
    devices.send(lambda board: board.run(500))
    n = len(devices.sent)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and f"read={n} acknowledged={n} in_outbox=0" not in gw.log.read_text():
        time.sleep(0.1)
    # The broker has them all (it acknowledged each to the gateway) and gave them to the only
    # member of the group; none is stored yet.
    assert f"read={n} acknowledged={n} in_outbox=0" in gw.log.read_text(), gw.text[-2000:]
    time.sleep(0.5)
    assert stored(dsn) == (0, 0)
    slow.kill()  # SIGKILL mid-batch: nothing was committed, nothing acknowledged
    restarted = collector(tmp_path, broker.url, dsn, "c2")  # same name: its session, its unacknowledged frames
    other = collector(tmp_path, broker.url, dsn, "c1")
    rows, distinct = wait_stored(dsn, len(devices.sent), commands=[gw, restarted, other])
    assert rows == distinct == len(devices.sent)
    check_exactly_once(dsn, devices)
    assert gw.stop() == 0 and restarted.stop() == 0 and other.stop() == 0


def test_database_down_collector_acknowledges_nothing_and_catches_up(services, dsn, tmp_path, devices_factory):
    broker, database = services
    devices = devices_factory(1, 0xD400)
    c1 = collector(tmp_path, broker.url, dsn, "c1")
    subscribed(c1)
    gw = gateway(tmp_path, broker.url, devices)
    devices.send(lambda board: board.run(200))
    wait_stored(dsn, len(devices.sent), commands=[gw, c1])
    database.stop()
    try:
        devices.send(lambda board: [f for _ in range(300) for f in board.infer()])
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and "database unreachable" not in c1.log.read_text():
            time.sleep(0.1)
    finally:
        database.start()
    rows, distinct = wait_stored(dsn, len(devices.sent), commands=[gw, c1])
    assert rows == distinct == len(devices.sent)
    check_exactly_once(dsn, devices)
    assert c1.stop() == 0 and gw.stop() == 0
    down = [line for line in c1.log.read_text().splitlines() if "database unreachable" in line]
    assert len(down) == 1 and "not acknowledged" in down[0]
    assert "database back after" in c1.log.read_text()


def test_broker_down_at_start_then_no_collector_yet_the_outbox_holds_everything(dsn, tmp_path, devices_factory):
    late = Broker.create()  # not started: the gateway meets no broker
    try:
        devices = devices_factory(2, 0xE500)
        gw = gateway(tmp_path, late.url, devices)
        devices.send(lambda board: board.run(300))
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and "in_outbox=" not in gw.log.read_text():
            time.sleep(0.1)
        assert f"in_outbox={len(devices.sent)}" in gw.log.read_text()
        late.start()  # ... and no collector has ever subscribed: the broker would drop the frames
        time.sleep(2.5)
        c1 = collector(tmp_path, late.url, dsn, "c1")
        rows, distinct = wait_stored(dsn, len(devices.sent), commands=[gw, c1])
        assert rows == distinct == len(devices.sent)
        check_exactly_once(dsn, devices)
        assert gw.stop() == 0 and c1.stop() == 0
        log = gw.log.read_text()
        assert "unreachable" in log and "no collector subscribes to this fleet yet" in log
    finally:
        late.remove()


def test_a_gateway_without_ports_empties_its_outbox_and_stops(services, dsn, tmp_path, devices_factory):
    """The outbox of a gateway whose devices are gone (or a simulation's leftovers) is sent by
    `gateway` without --port, which stops when the broker has it all; with the broker away
    it keeps every frame and exits 1, with ports or without. (Once the only advice was a
    command that needed --port.)"""
    broker, _ = services
    away = Broker.create()  # never started
    try:
        devices = devices_factory(1, 0xE700)
        first = gateway(tmp_path, away.url, devices)
        devices.send(lambda board: board.run(100))
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and f"in_outbox={len(devices.sent)}" not in first.log.read_text():
            time.sleep(0.1)
        # one gateway an outbox: a second would publish every frame twice under the same client id
        second = Command(tmp_path, "second", "gateway", "--broker", away.url, "--outbox", str(tmp_path / "outbox.sqlite"))
        assert second.process.wait(30) == 1
        assert second.log.read_text().strip().splitlines() == [
            f"error: {tmp_path / 'outbox.sqlite'} is the outbox of a gateway (or fleet simulate) that is running: stop it "
            "first, or give this one another --outbox"]
        # its broker never reached in the whole run: a mistyped --broker, which exited 0 and went
        # unnoticed by a script, where collect exits 1 (trial 16)
        assert first.stop() == 1 and "the broker was never reached" in first.text, first.text
        assert not (tmp_path / "outbox.sqlite.lock").exists()  # released with the outbox
    finally:
        away.remove()
    outbox = str(tmp_path / "outbox.sqlite")
    still_away = Command(tmp_path, "drain-away", "gateway", "--broker", away.url, "--outbox", outbox, "--duration", "2",
                         "--progress-interval", "0")
    assert still_away.process.wait(30) == 1
    assert f"{len(devices.sent)} frames wait in" in still_away.out.read_text()
    assert "read=" not in still_away.log.read_text()  # --progress-interval 0: no progress lines
    c1 = collector(tmp_path, broker.url, dsn, "c1")
    subscribed(c1)
    drain = Command(tmp_path, "drain", "gateway", "--broker", broker.url, "--outbox", outbox, "--fleet", FLEET)
    assert drain.process.wait(30) == 0, drain.text
    assert "stopped: the outbox is empty" in drain.out.read_text()
    rows, distinct = wait_stored(dsn, len(devices.sent), commands=[c1])
    assert rows == distinct == len(devices.sent)
    check_exactly_once(dsn, devices)
    assert c1.stop() == 0


def test_gateway_killed_with_frames_in_its_outbox_a_new_one_sends_them(services, dsn, tmp_path, devices_factory):
    """The first gateway reads a HELLO and frames while the broker is away, and is killed. The
    next one on the same outbox sends them, and knows whose frames it reads before any HELLO."""
    _, _ = services
    away = Broker.create()
    try:
        devices = devices_factory(1, 0xF600, boot_count=2)
        first = gateway(tmp_path, away.url, devices, name="gateway-1")
        devices.send(lambda board: board.run(300))
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and f"read={len(devices.sent)}" not in first.log.read_text():
            time.sleep(0.1)
        first.kill()
        away.start()
        c1 = collector(tmp_path, away.url, dsn, "c1")
        subscribed(c1)
        second = gateway(tmp_path, away.url, devices, name="gateway-2")
        devices.send(lambda board: [f for _ in range(100) for f in board.infer()])  # no HELLO
        rows, distinct = wait_stored(dsn, len(devices.sent), commands=[second, c1])
        assert rows == distinct == len(devices.sent)
        check_exactly_once(dsn, devices)  # device id and boot right on the frames after the restart too
        assert second.stop() == 0 and c1.stop() == 0
        assert "wait in" in second.log.read_text()  # it said it had an earlier run's frames to send
    finally:
        away.remove()


def test_unknown_model_and_a_contradicting_hello_are_said_and_kept(services, dsn, tmp_path, devices_factory):
    from tinydrift.firmware import REPO_ROOT

    broker, _ = services
    devices = devices_factory(1, 0x1700, boot_count=5)
    c1 = collector(tmp_path, broker.url, dsn, "c1", "--model-dir", str(REPO_ROOT / "models" / "kws"))
    subscribed(c1)
    gw = gateway(tmp_path, broker.url, devices)
    devices.send(lambda board: board.run(50))
    wait_stored(dsn, len(devices.sent), commands=[gw, c1])
    devices.boards[0].boot_count = 3  # it reboots saying an earlier boot count than before
    devices.send(lambda board: board.run(50))
    wait_stored(dsn, len(devices.sent), commands=[gw, c1])
    assert gw.stop() == 0 and c1.stop() == 0
    check_exactly_once(dsn, devices)
    with psycopg.connect(dsn) as conn:
        flags = conn.execute("SELECT DISTINCT known_model FROM frames").fetchall()
        events = conn.execute("SELECT kind FROM device_events ORDER BY id").fetchall()
        boot = conn.execute("SELECT boot_count FROM devices").fetchall()
    assert flags == [(False,)] and events == [("unknown_model",), ("boot_went_back",)] and boot == [(3,)]
    log = c1.log.read_text()
    assert log.count("which no --model-dir names") == 1 and log.count("says boot 3 after boot 5") == 1
    assert "says boot 3 after boot 5" in gw.log.read_text()


def test_envelope_round_trip_and_topic():
    frame = P.Heartbeat(9, 100, 5000, 0, 0, 0, 0, 10, (P.NOT_LATCHED,) * 5, (1, 2, 3, 4, 5), 100, 200, 150,
                        (21,) * 12)
    frame = P.parse_packet(P.encode_packet(frame))
    who = E.Identity(0xFEDCBA9876543210, 41, bytes(range(8)))
    payload = E.pack(who, 1_700_000_000_123_456, frame.raw)
    assert len(payload) == E.HEAD_BYTES + len(frame.raw)
    back = E.unpack(payload)
    assert (back.identity, back.received_us, back.frame) == (who, 1_700_000_000_123_456, frame)
    assert E.topic("kws-eu", who.device_id, P.FrameType.HEARTBEAT) == "tinydrift/kws-eu/fedcba9876543210/heartbeat"
    with pytest.raises(ValueError, match="corrupt"):
        E.unpack(payload[:-1] + bytes([payload[-1] ^ 1]))
    with pytest.raises(ValueError, match="envelope version"):
        E.unpack(b"\x09" + payload[1:])
    # a stamp no store can hold (its frame intact): refused as not a gateway's, not a crash later
    E.unpack(E.pack(who, E.MAX_RECEIVED_US, frame.raw))
    with pytest.raises(ValueError, match="past the year 9999"):
        E.unpack(E.pack(who, 2**64 - 1, frame.raw))


def test_a_message_with_an_impossible_stamp_is_dropped_and_the_collector_goes_on(services, dsn, tmp_path,
                                                                                 devices_factory):
    """A message whose frame is sound but whose gateway stamp is past what a timestamp holds
    (anyone who can publish can send one) is said and acknowledged; it neither stops the
    collector nor comes back to stop it again."""
    import paho.mqtt.client as mqtt

    broker, _ = services
    c1 = collector(tmp_path, broker.url, dsn, "c1")
    subscribed(c1)
    frame = P.parse_packet(P.encode_packet(P.Heartbeat(9, 100, 5000, 0, 0, 0, 0, 10, (P.NOT_LATCHED,) * 5,
                                                      (1, 2, 3, 4, 5), 100, 200, 150, (21,) * 12)))
    poison = E.pack(E.Identity(0xD500, 1, bytes(8)), 2**64 - 1, frame.raw)
    # the last stamp a store holds is stored (its day once had no partition end: a crash
    # on every restart of the collector)
    last_day = E.pack(E.Identity(0xD502, 1, bytes(8)), E.MAX_RECEIVED_US, frame.raw)
    publisher = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    publisher.connect("127.0.0.1", broker.port)
    publisher.loop_start()
    try:
        publisher.publish(E.topic(FLEET, 0xD500, P.FrameType.HEARTBEAT), poison, qos=1).wait_for_publish(10)
        publisher.publish(E.topic(FLEET, 0xD502, P.FrameType.HEARTBEAT), last_day, qos=1).wait_for_publish(10)
    finally:
        publisher.loop_stop()
        publisher.disconnect()
    devices = devices_factory(1, 0xD501)
    gw = gateway(tmp_path, broker.url, devices)
    devices.send(lambda board: board.run(50))
    rows, distinct = wait_stored(dsn, len(devices.sent) + 1, commands=[gw, c1])
    assert rows == distinct == len(devices.sent) + 1
    assert c1.stop() == 0 and gw.stop() == 0
    assert "Traceback" not in c1.text
    assert "rejected a message" in c1.log.read_text() and "past the year 9999" in c1.log.read_text()
    # a collector that leaves says that its session, and its share of the frames, stay behind
    assert "the broker keeps the session of collector 'c1' in group 'collectors' for 7 days" in c1.text
    # ...and how to take it up again: the session is the fleet's, so the command names it
    assert f"`tinydrift collect --fleet {FLEET} --group collectors --name c1` (and its --broker and --db)" in c1.text


def test_qos_0_messages_are_stored_without_an_acknowledgement_that_would_drop_the_collector(services, dsn,
                                                                                          tmp_path):
    """A QoS 0 message (mosquitto_pub's default) has no PUBACK. The collector acknowledged
    every message it stored, so the broker dropped it for a protocol error after each one;
    after a few it exited 1 saying another collector had taken its session (trial 16). A
    QoS 0 frame is stored and the collector stays on its one connection."""
    import paho.mqtt.client as mqtt

    broker, _ = services
    c1 = collector(tmp_path, broker.url, dsn, "c1")
    subscribed(c1)
    publisher = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    publisher.connect("127.0.0.1", broker.port)
    publisher.loop_start()
    try:
        for seq in range(10):
            frame = P.parse_packet(P.encode_packet(P.Heartbeat(seq, 100, 5000, 0, 0, 0, 0, 10, (P.NOT_LATCHED,) * 5,
                                                              (1, 2, 3, 4, 5), 100, 200, 150, (21,) * 12)))
            message = E.pack(E.Identity(0xD600, 1, bytes(8)), 1_700_000_000_000_000 + seq, frame.raw)
            publisher.publish(E.topic(FLEET, 0xD600, P.FrameType.HEARTBEAT), message, qos=0).wait_for_publish(10)
            time.sleep(0.3)  # each its own batch: one ack each, as the trial's did
        publisher.publish(E.topic(FLEET, 0xD600, P.FrameType.HELLO), b"test", qos=0).wait_for_publish(10)
    finally:
        publisher.loop_stop()
        publisher.disconnect()
    rows, distinct = wait_stored(dsn, 10, commands=[c1])
    assert rows == distinct == 10
    # an idle collector still says its count each interval (it printed only with a batch
    # stored, so its last count stood still while others of its group stored on: trial 16)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and "stored_here=10 " not in c1.log.read_text():
        time.sleep(0.1)
    assert "stored_here=10 " in c1.log.read_text(), c1.text
    assert c1.process.poll() is None, c1.text  # still running
    assert c1.stop() == 0, c1.text
    log = c1.log.read_text()
    assert "unreachable" not in log and "took this session over" not in log, log
    assert "rejected a message" in log  # the one that is no envelope, acknowledged by no one


def test_collector_with_the_database_down_at_start_says_so_once_and_exits_1(services, tmp_path):
    from tinydrift.fleet.services import free_port

    broker, _ = services
    nowhere = f"postgresql://tinydrift@127.0.0.1:{free_port()}/tinydrift"
    c1 = collector(tmp_path, broker.url, nowhere, "c1", "--duration", "2")
    assert c1.process.wait(20) == 1
    lines = c1.log.read_text().splitlines()
    assert len([line for line in lines if "database unreachable" in line]) == 1
    assert "Traceback" not in c1.text and "the database was unreachable" in c1.out.read_text()


def test_a_collector_that_never_reached_its_database_takes_no_share_of_the_fleet(services, dsn, tmp_path,
                                                                                devices_factory):
    """A one-off collector with a mistyped --db once joined the group before failing, and its
    session went on taking a share of the frames (a third of them, for 7 days); a new member
    now joins only once its database answers, and joins then."""
    from tinydrift.fleet.services import free_port

    broker, database = services
    nowhere = f"postgresql://tinydrift@127.0.0.1:{free_port()}/tinydrift"
    typo = collector(tmp_path, broker.url, nowhere, "typo", "--duration", "3")
    assert typo.process.wait(20) == 1
    assert "not subscribing to $share/" in typo.log.read_text() and "subscribed to" not in typo.log.read_text()
    database.stop()  # a collector started before its database: it joins once the database is up
    try:
        c1 = collector(tmp_path, broker.url, dsn, "c1")
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and "not subscribing" not in c1.log.read_text():
            time.sleep(0.1)
        assert "not subscribing" in c1.log.read_text()
    finally:
        database.start()
    subscribed(c1)
    assert "database reached: subscribing" in c1.log.read_text()
    devices = devices_factory(1, 0xD600)
    gw = gateway(tmp_path, broker.url, devices)
    devices.send(lambda board: board.run(200))
    rows, distinct = wait_stored(dsn, len(devices.sent), commands=[gw, c1])  # every frame to c1: none held for typo
    assert rows == distinct == len(devices.sent)
    assert gw.stop() == 0 and c1.stop() == 0


def test_collector_that_never_reaches_its_broker_says_so_and_exits_1(services, dsn, tmp_path):
    """A run whose broker never answered stored nothing it could have: like a database that
    stayed down, it ends with 1, not 0."""
    from tinydrift.fleet.services import free_port

    c1 = collector(tmp_path, f"mqtt://127.0.0.1:{free_port()}", dsn, "c1", "--duration", "2")
    assert c1.process.wait(20) == 1
    assert "Traceback" not in c1.text and "the broker was never reached" in c1.out.read_text()


def test_collector_that_never_joined_its_group_does_not_say_its_share_waits(services, tmp_path):
    """A collector whose database was never reached never subscribed, yet its last line said
    the broker kept its share of the fleet's frames for 7 days."""
    from tinydrift.fleet.services import free_port

    broker, _ = services
    c1 = collector(tmp_path, broker.url, f"postgresql://tinydrift@127.0.0.1:{free_port()}/tinydrift", "never",
                   "--duration", "3")
    assert c1.process.wait(30) == 1
    assert "not subscribing" in c1.text and "broker keeps collector" not in c1.text, c1.text


def test_a_collector_that_leaves_stores_what_waited_for_it_and_ends_its_session(services, dsn, tmp_path,
                                                                                 devices_factory):
    """A short look (`collect --duration`) stays a member of the group: the broker keeps its
    share of the frames for 7 days, and no command removed it (trial 16). `--leave` stores
    what waits for it and ends its session; the broker then keeps nothing for that name."""
    broker, _ = services
    look = collector(tmp_path, broker.url, dsn, "look", "--duration", "2")
    assert look.process.wait(30) == 0, look.text
    assert "the broker keeps the session of collector 'look'" in look.text and "add --leave" in look.text
    devices = devices_factory(1, 0xD700)
    gw = gateway(tmp_path, broker.url, devices)
    devices.send(lambda board: board.run(60))
    n = len(devices.sent)  # sent while the group's one member is away: the broker keeps them for it
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and f"read={n} acknowledged={n} in_outbox=0" not in gw.log.read_text():
        time.sleep(0.1)
    assert f"read={n} acknowledged={n} in_outbox=0" in gw.log.read_text(), gw.text[-2000:]
    assert stored(dsn) == (0, 0)
    leave = Command(tmp_path, "collect-look-leave", "collect", "--broker", broker.url, "--db", dsn, "--fleet", FLEET,
                    "--name", "look", "--leave", "--duration", "1")
    assert leave.process.wait(60) == 0, leave.text
    assert stored(dsn) == (n, n)
    assert "collector 'look' left group 'collectors' and the broker ended its session" in leave.text, leave.text
    assert "the broker keeps the session" not in leave.text
    # the broker kept nothing for it: a client of that name finds no session
    from tinydrift.fleet import mqtt

    probe = mqtt.client(mqtt.BrokerUrl.parse(broker.url), f"tinydrift-collector-{FLEET}-collectors-look")
    present = []
    probe.on_connect = lambda _c, _u, flags, _rc, _p: present.append(flags.session_present)
    probe.loop_start()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not present:
        time.sleep(0.05)
    probe.disconnect(properties=mqtt.session_end())
    probe.loop_stop()
    assert present == [False]
    assert gw.stop() == 0


def test_fleet_up_runs_a_broker_a_database_and_collectors_until_stopped(tmp_path):
    up = Command(tmp_path, "up", "fleet", "up", "--collectors", "2", "--fleet", FLEET)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and "database" not in up.out.read_text():
        time.sleep(0.1)
    urls = dict(line.split() for line in up.out.read_text().splitlines())
    with psycopg.connect(urls["database"]) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
    port = int(urls["broker"].rsplit(":", 1)[1])
    import socket

    socket.create_connection(("127.0.0.1", port), timeout=2).close()
    logs = [Path(p) for p in up.log.read_text().split("their logs: ")[1].split(")")[0].split(", ")]
    assert len(logs) == 2
    while time.monotonic() < deadline and not all("subscribed to $share/" in p.read_text() for p in logs):
        time.sleep(0.1)
    assert all(f"subscribed to $share/collectors/tinydrift/{FLEET}/" in p.read_text() for p in logs)
    from tinydrift.fleet.store import FleetStore

    board = SimulatedDevice(0x42)
    frames = board.boot() + [f for _ in range(20) for f in board.infer()]
    who, now = E.Identity.of_hello(frames[0]), int(time.time() * 1e6)
    store = FleetStore(urls["database"])  # as a collector stores them (the collectors' own path is tested above)
    store.migrate()
    store.write(FLEET, [E.Envelope(who, now + i, P.parse_packet(P.encode_packet(f))) for i, f in enumerate(frames)])
    store.close()
    assert up.stop() == 0  # SIGTERM: collectors and both servers stopped, their folder removed
    last = up.log.read_text().strip().splitlines()[-1]
    assert last == (f"stopped the broker, the database and 2 collectors ({len(frames)} frames of 1 device were "
                    "stored); removed their files"), last
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    folders = [line.split(" in ", 1)[1] for line in up.log.read_text().splitlines() if line.startswith("files in ")]
    assert folders and not any(Path(f).exists() for f in folders[0].split(", "))


@pytest.mark.parametrize("moment", ["initdb.log", "data/base/1"])
def test_fleet_up_interrupted_while_its_servers_start_removes_what_it_made(tmp_path, moment):
    """Ctrl-C a second into `fleet up` went unheard: it started both servers, printed their
    URLs and stopped with exit 0. Sent while initdb makes PostgreSQL's folder, it now ends
    the start: "interrupted", exit 130, both folders gone. Sent while initdb's own postgres
    child writes the template database (data/base/1), that child once went on writing into the
    folder being removed, and left it behind."""
    import shutil
    import tempfile

    # A temporary folder of its own (open to the servers' user), so that another run's
    # servers starting meanwhile are not taken for this one's leftovers.
    temp = Path(tempfile.mkdtemp(prefix="fleet-up-interrupted-"))
    try:
        temp.chmod(0o755)
        up = Command(tmp_path, "up", "fleet", "up", env={"TMPDIR": str(temp)})
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not any((p / moment).exists() for p in temp.glob("tinydrift-pg-*")):
            time.sleep(0.005)
        up.process.send_signal(signal.SIGINT)
        assert up.process.wait(60) == 130
        assert up.log.read_text().strip().splitlines()[-1] == "interrupted" and up.out.read_text() == ""
        assert list(temp.iterdir()) == []
    finally:
        shutil.rmtree(temp, ignore_errors=True)


def test_fleet_up_restarts_a_collector_that_dies_and_keeps_the_files_when_a_service_does(tmp_path):
    """Once `fleet up` went on saying only "running" after its database or a collector had
    died; later it stopped everything on any exit, a killed collector included, and removed
    both folders: the stored frames and the broker's queue were gone."""
    import shutil

    up = Command(tmp_path, "up", "fleet", "up", "--collectors", "1", "--fleet", FLEET)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and "running;" not in up.log.read_text():
        time.sleep(0.1)
    folders = [Path(f) for line in up.log.read_text().splitlines() if line.startswith("files in ")
               for f in line.split(" in ", 1)[1].split(", ")]
    log = Path(up.log.read_text().split("their logs: ")[1].split(")")[0])
    try:
        while time.monotonic() < deadline and "subscribed to $share/" not in log.read_text():
            time.sleep(0.1)
        collector = next(int(line.split()[0]) for line in subprocess.run(
            ["pgrep", "-af", "tinydrift collect"], capture_output=True, text=True).stdout.splitlines()
            if dict(row.split() for row in up.out.read_text().splitlines())["broker"] in line)
        os.kill(collector, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and log.read_text().count("subscribed to $share/") < 2:
            time.sleep(0.1)
        assert "collector c1 exited (code -9); its log ended: " in up.log.read_text()
        assert log.read_text().count("subscribed to $share/") == 2 and up.process.poll() is None
        postmaster = int((folders[1] / "data" / "postmaster.pid").read_text().split()[0])
        os.kill(postmaster, signal.SIGKILL)
        assert up.process.wait(30) == 1
        last = up.log.read_text().strip().splitlines()[-1]
        assert last.startswith("error: the database exited (code -9); its log ended: ")
        assert last.endswith(f": stopped everything; kept their files in {folders[0]}, {folders[1]} (remove them when done)")
        assert all(f.is_dir() for f in folders) and (folders[1] / "data" / "PG_VERSION").is_file()
    finally:
        for folder in folders:
            shutil.rmtree(folder, ignore_errors=True)


def test_fleet_up_on_a_port_something_else_holds_refuses_in_one_line(tmp_path):
    """A busy port once let `fleet up` say "running" while its own mosquitto had died at bind
    and the port answered for another one."""
    import socket

    for option in ("--broker-port", "--db-port"):
        with socket.socket() as held:
            held.bind(("127.0.0.1", 0))
            held.listen()
            port = held.getsockname()[1]
            done = subprocess.run([sys.executable, "-m", "tinydrift", "fleet", "up", option, str(port),
                                   "--duration", "1"], capture_output=True, text=True, timeout=60)
        assert done.returncode == 1 and "running" not in done.stderr, done.stderr
        assert done.stderr.strip().splitlines() == [f"error: 127.0.0.1:{port} is already in use (another "
                                                    f"{'broker' if option == '--broker-port' else 'database'}?): "
                                                    f"give another {option}, or none for a free port"]


def test_fleet_up_with_one_port_for_both_refuses_and_a_failed_start_leaves_no_folder(tmp_path, monkeypatch):
    """--broker-port X --db-port X once said "another database?" after initdb, and left the
    39 MB cluster folder behind, as did any database that failed to start."""
    from tinydrift.errors import TinydriftError
    from tinydrift.fleet import services as S

    done = subprocess.run([sys.executable, "-m", "tinydrift", "fleet", "up", "--broker-port", "47801",
                           "--db-port", "47801", "--duration", "1"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and done.stderr.strip().splitlines() == [
        "error: --broker-port and --db-port are both 47801: give each service its own port"]
    made = []
    create = S.Database.create.__func__

    def record(cls, port=None, folders=None):
        made.append(create(cls, port, folders))
        return made[-1]

    def fail(self):
        raise TinydriftError("the database would not start")

    monkeypatch.setattr(S.Database, "create", classmethod(record))
    monkeypatch.setattr(S.Database, "start", fail)
    with pytest.raises(TinydriftError, match="would not start"):
        with S.private_services():
            pass
    assert made and not made[0].folder.exists()


def test_ctrl_c_as_a_service_folder_is_made_leaves_no_folder(monkeypatch):
    """Ctrl-C landing just after Database.create returned, before private_services held the
    database, left its folder (initdb's cluster) behind: the folders are named as made."""
    from tinydrift.fleet import services as S

    made = []
    create = S.Database.create.__func__

    def interrupted(cls, port=None, folders=None):
        made.append(create(cls, port, folders))
        raise KeyboardInterrupt

    monkeypatch.setattr(S.Database, "create", classmethod(interrupted))
    with pytest.raises(KeyboardInterrupt):
        with S.private_services():
            pass
    assert made and not made[0].folder.exists()


def test_an_outbox_that_cannot_grow_stops_the_gateway_with_what_it_holds_intact(tmp_path, devices_factory):
    away = Broker.create()  # never started: everything stays in the outbox
    devices = devices_factory(1, 0x2800)
    gw = gateway(tmp_path, away.url, devices, file_size_limit=600_000)
    # A writer of its own: once the gateway stops reading, the pty's buffer fills and the write
    # blocks until the test closes the pty.
    def write():
        try:
            devices.send(lambda board: board.run(20_000))
        except OSError:
            pass  # the pty was closed under the blocked write: the test is over

    threading.Thread(target=write, daemon=True).start()
    assert gw.process.wait(30) == 1
    said = gw.out.read_text()
    assert "Traceback" not in gw.text and "cannot write to" in said and "not kept" in said, gw.text
    read = int(said.split("gateway read ")[1].split()[0])
    conn = sqlite3.connect(tmp_path / "outbox.sqlite")
    assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    assert conn.execute("SELECT count(*) FROM outbox").fetchone() == (read,) and read > 100
    away.remove()


def _damage(path: Path) -> None:
    """Overwrite pages in the middle of an SQLite file, as a failing disk or a bad copy would."""
    with open(path, "r+b") as f:
        f.seek(20_000)
        f.write(b"\xab" * 8_000)


def test_a_damaged_or_missing_outbox_is_said_in_one_line_and_nothing_is_made(tmp_path):
    """A damaged outbox once ended in a traceback when its frames were counted, and a cut one
    was told to "choose another --outbox" (leaving its waiting frames behind); draining a
    mistyped path made an empty outbox and said all was sent."""
    from click.testing import CliRunner

    from tinydrift.cli import main
    from tinydrift.fleet.outbox import Outbox

    outbox = Outbox(tmp_path / "held.sqlite")
    outbox.add([("tinydrift/f/1/inference", bytes(200))] * 3000)
    outbox.close()
    _damage(tmp_path / "held.sqlite")
    away = "mqtt://127.0.0.1:1"
    damaged = CliRunner().invoke(main, ["gateway", "--broker", away, "--outbox", str(tmp_path / "held.sqlite")])
    missing = CliRunner().invoke(main, ["gateway", "--broker", away, "--outbox", str(tmp_path / "no" / "typo.sqlite")])
    for result in (damaged, missing):
        assert result.exit_code == 1 and isinstance(result.exception, SystemExit), result.output
        assert len(result.output.strip().splitlines()) == 1, result.output
    assert f"the outbox {tmp_path / 'held.sqlite'} is damaged (" in damaged.output and ".recover" in damaged.output
    assert f"no outbox at {tmp_path / 'no' / 'typo.sqlite'}" in missing.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["held.sqlite"]  # no lock, no typo.sqlite, no folder


def test_a_device_that_says_goodbye_and_closes_ends_the_gateway_cleanly(tmp_path):
    """An emulated board that finishes sends BYE and closes its socket: the gateway once
    called its port lost, waited for it 10 s and exited 1."""
    import random

    from test_capture import hello, inference

    rng = random.Random(3)
    said = hello(0)
    # the STATUS the gateway asks for repeats the HELLO (no id): the missing id is said once, not again
    status = P.Status(11, 1000, 412, 10, 1, 0, said.model_hash, 0, 0, dataclasses.replace(said, seq=11))
    frames = ([said] + [inference(k, k, rng) for k in range(1, 11)] + [status]
              + [inference(k, k, rng) for k in range(12, 21)] + [P.Bye(21, 0, 20)])
    device = TcpDevice(lambda conn: conn.sendall(b"".join(P.encode(f) for f in frames)))
    away = Broker.create()  # never started: the frames stay in the outbox
    try:
        started = time.monotonic()
        done = subprocess.run([sys.executable, "-m", "tinydrift", "gateway", "--port", device.url, "--broker", away.url,
                               "--outbox", str(tmp_path / "gw.sqlite"), "--reconnect-timeout", "30"],
                              capture_output=True, text=True, timeout=60)
    finally:
        away.remove()
    # exit 1 only for the broker it never reached (a gateway's own failure since trial 16),
    # not for the port: that one ended cleanly, at once
    assert done.returncode == 1 and time.monotonic() - started < 20, done.stdout + done.stderr
    assert done.stdout.rstrip().endswith("the broker was never reached") and "lost" not in done.stderr
    assert "the device said goodbye (exit code 0) and closed" in done.stderr
    assert "gateway read 22 frames" in done.stdout and "stopped: every port closed" in done.stdout
    # its HELLO came, with no id: a restart would not give it one, so that is not the advice
    assert done.stderr.count("its HELLO gives no device id (0, the build's default)") == 1, done.stderr
    assert "no HELLO or STATUS with a device id seen yet" not in done.stderr


def test_a_gateway_started_after_the_boot_names_the_device_from_its_status(tmp_path):
    """A gateway that opened a port after the device's boot never saw its HELLO and sent
    every frame as device 0000000000000000, advising a restart. It asks for a STATUS on
    opening the port; from protocol 5 that carries the HELLO, and its device id names every
    frame from then on."""
    import random

    from test_capture import hello, inference

    rng = random.Random(4)
    device_id, boot = 0x00C0FFEE12345678, 7
    said = dataclasses.replace(hello(0), device_id=device_id, boot_count=boot)

    def running(conn):
        conn.sendall(b"".join(P.encode(inference(k, 400 + k, rng)) for k in range(500, 503)))  # mid-stream
        deadline = time.monotonic() + 10
        while not P.StreamParser().feed(bytes(device.received)) and time.monotonic() < deadline:
            time.sleep(0.01)  # the device reads its input on its own thread
        # the ACK of that request, then the STATUS: one write, as the device sends them
        status = P.Status(504, 9_000, 412, 402, 1, 0, said.model_hash, 0, 0, said)
        conn.sendall(P.encode(P.Ack(503, 0, 0, int(P.FrameType.STATUS_REQUEST), 0)) + P.encode(status)
                     + b"".join(P.encode(inference(k, 400 + k, rng)) for k in range(505, 515))
                     + P.encode(P.Bye(515, 0, 413)))

    device = TcpDevice(running)
    away = Broker.create()  # never started: the frames stay in the outbox
    try:
        done = subprocess.run([sys.executable, "-m", "tinydrift", "gateway", "--port", device.url, "--broker", away.url,
                               "--outbox", str(tmp_path / "gw.sqlite"), "--reconnect-timeout", "30"],
                              capture_output=True, text=True, timeout=60)
    finally:
        away.remove()
    assert done.returncode == 1 and "the broker was never reached" in done.stdout, done.stdout + done.stderr
    assert P.StreamParser().feed(bytes(device.received))[0] == P.StatusRequest(seq=0)
    with sqlite3.connect(tmp_path / "gw.sqlite") as db:
        topics = [t for (t,) in db.execute("SELECT topic FROM outbox ORDER BY id")]
    # the request's ACK (which a trial's gateway sent as device 0), the STATUS and all after
    # them named; the three frames before went out unnamed, or named when one read brought
    # them with the STATUS (the same boot)
    assert len(topics) == 16 and all(f"/{device_id:016x}/" in t for t in topics[3:]), topics
    assert len({t.split("/")[2] for t in topics[:3]}) == 1, topics


def test_two_gateways_with_one_client_id_are_told_so_not_that_the_broker_is_unreachable(tmp_path):
    """mosquitto drops the older of two clients with one id without a word, and each
    reconnects and drops the other: both once said "broker unreachable (Unspecified error)"
    every second."""
    devices = [TcpDevice(lambda conn: time.sleep(10)) for _ in range(2)]  # quiet devices that stay
    broker = Broker.create().start()
    try:
        gateways = [subprocess.Popen([sys.executable, "-m", "tinydrift", "gateway", "--broker", broker.url, "--outbox",
                                      str(tmp_path / f"g{k}.sqlite"), "--client-id", "same", "--duration", "6",
                                      "--port", device.url], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                    for k, device in enumerate(devices)]
        said = "".join(g.communicate(timeout=60)[1] for g in gateways)
    finally:
        broker.remove()
    assert "most likely because another client connected with the same client id and took this session over" in said
    assert "Unspecified error" not in said


def test_fleet_up_killed_with_sigkill_takes_its_broker_and_database_along(tmp_path):
    """mosquitto, left to drop root itself, lost the death signal that ties it to `fleet up`
    and went on listening after a SIGKILL of it."""
    import shutil
    import socket

    up = Command(tmp_path, "up", "fleet", "up")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and "running;" not in up.log.read_text():
        time.sleep(0.1)
    urls = dict(line.split() for line in up.out.read_text().splitlines())
    folders = [Path(f) for line in up.log.read_text().splitlines() if line.startswith("files in ")
               for f in line.split(" in ", 1)[1].split(", ")]
    ports = [int(urls["broker"].rsplit(":", 1)[1]), int(urls["database"].split(":")[2].split("/")[0])]
    try:
        up.process.kill()
        up.process.wait(10)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                for port in ports:
                    socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            except OSError:
                if all(_closed(port) for port in ports):
                    break
            time.sleep(0.2)
        assert all(_closed(port) for port in ports)
    finally:
        for folder in folders:
            shutil.rmtree(folder, ignore_errors=True)


def _closed(port: int) -> bool:
    import socket

    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
    except OSError:
        return True
    return False


def test_mqtts_to_a_plain_port_is_refused_in_one_line_not_retried_as_an_outage(tmp_path, services, dsn):
    """mqtts:// at a plain MQTT port connected, failed the TLS handshake and was retried
    forever as "broker unreachable (cannot connect)" (new-user trial 12)."""
    from click.testing import CliRunner

    from tinydrift.cli.main import main

    broker, _ = services
    tls = broker.url.replace("mqtt://", "mqtts://")
    for args in (["collect", "--broker", tls, "--db", dsn, "--name", "tls", "--duration", "30"],
                 ["gateway", "--broker", tls, "--outbox", str(tmp_path / "gw.sqlite"), "--port", "socket://127.0.0.1:9"]):
        started = time.monotonic()
        result = CliRunner().invoke(main, args)
        lines = result.output.strip().splitlines()
        assert result.exit_code == 1 and len(lines) == 1 and time.monotonic() - started < 10, result.output
        assert f"broker {tls}: no TLS handshake on that port" in lines[0] and "give mqtt://" in lines[0], lines
    assert not (tmp_path / "gw.sqlite").exists()


def test_two_collectors_of_one_name_settle_the_later_keeps_the_session(services, dsn, tmp_path):
    """Two `collect` with the default --name on one host took the session from each other
    every second for as long as they ran, both exiting 0 (new-user trial 12): the one
    dropped twice gives way, says why, and exits 1; the other keeps collecting."""
    broker, _ = services
    first = collector(tmp_path, broker.url, dsn, "same", "--duration", "25")
    subscribed(first)
    second = Command(tmp_path, "collect-same-2", "collect", "--broker", broker.url, "--db", dsn, "--fleet", FLEET,
                     "--name", "same", "--progress-interval", "1", "--duration", "25")
    codes = {}
    deadline = time.monotonic() + 20
    while not codes and time.monotonic() < deadline:
        codes = {c.log.name: c.process.poll() for c in (first, second) if c.process.poll() is not None}
        time.sleep(0.1)
    assert list(codes.values()) == [1], (codes, first.text[-800:], second.text[-800:])
    gave_way = first if first.process.poll() is not None else second
    kept = second if gave_way is first else first
    assert "another client connected with the same client id" in gave_way.text and "this one gave way" in gave_way.text
    time.sleep(3)
    assert kept.process.poll() is None  # not knocked off again
    assert kept.stop() == 0
