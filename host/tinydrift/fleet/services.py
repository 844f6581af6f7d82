"""A private MQTT broker (Debian's mosquitto) and a private PostgreSQL, run as ordinary child
processes in a temporary folder: for the tests, the benchmark and `tinydrift fleet up`.
Nothing here touches a system service.

PostgreSQL refuses to run as root, so when tinydrift runs as root both servers run as the
unprivileged `nobody` (Popen's user/group switch, no external tool), in a folder made for
them and owned by that user; as an ordinary user they run as that user.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from tinydrift.child import tied_to_this_process
from tinydrift.errors import TinydriftError

SERVICE_USER = "nobody"
DATABASE = "tinydrift"
DB_USER = "tinydrift"
START_TIMEOUT_S = 30.0


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def mosquitto_binary() -> Path:
    found = shutil.which("mosquitto") or next((p for p in ("/usr/sbin/mosquitto",) if os.access(p, os.X_OK)), None)
    if found is None:
        raise TinydriftError("mosquitto is not installed: run scripts/setup.sh (or apt-get install mosquitto)")
    return Path(found)


def postgres_bindir() -> Path:
    """Where initdb and postgres live: `pg_config --bindir`, else the newest
    /usr/lib/postgresql/N/bin (Debian keeps them off PATH)."""
    candidates = []
    pg_config = shutil.which("pg_config")
    if pg_config:
        with contextlib.suppress(OSError, subprocess.CalledProcessError):
            candidates.append(Path(subprocess.run([pg_config, "--bindir"], capture_output=True, text=True,
                                                  check=True).stdout.strip()))
    candidates += sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: int(p.parent.name)
                         if p.parent.name.isdigit() else 0, reverse=True)
    for folder in candidates:
        if (folder / "initdb").is_file() and (folder / "postgres").is_file():
            return folder
    raise TinydriftError("PostgreSQL's initdb/postgres were not found (pg_config --bindir, /usr/lib/postgresql/*/bin): "
                         "run scripts/setup.sh (or apt-get install postgresql)")


def _run_as() -> dict:
    """Popen keyword arguments that drop root to SERVICE_USER; nothing for an ordinary user."""
    if os.geteuid() != 0:
        return {}
    user = pwd.getpwnam(SERVICE_USER)
    return {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}


@contextlib.contextmanager
def _service_folder(prefix: str, made: list[Path] | None = None) -> Iterator[Path]:
    """A fresh folder in the system's temporary folder, owned by whoever runs the servers,
    removed again if making what goes in it fails or is interrupted; also added to `made`,
    for a caller that must remove it if interrupted before it holds the service. (A folder
    under, say, pytest's tmp_path would not do: its parents are private to root.)"""
    # Ctrl-C is held while the folder is made and named, so that it lands inside the block
    # that removes it, not between the two.
    held = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        folder = Path(tempfile.mkdtemp(prefix=prefix))
        if made is not None:
            made.append(folder)
    except BaseException:
        signal.pthread_sigmask(signal.SIG_SETMASK, held)
        raise
    try:
        signal.pthread_sigmask(signal.SIG_SETMASK, held)
        if os.geteuid() == 0:
            user = pwd.getpwnam(SERVICE_USER)
            os.chown(folder, user.pw_uid, user.pw_gid)
        yield folder
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise


def _run_to_its_end(args: list[str], log: Path, cwd: Path) -> int:
    """Run a command as the service user, output to `log`; its exit code. Interrupted, it is
    killed with every process it started, and this returns only when none is left: initdb's
    own postgres child went on writing into a folder being removed, and left it behind."""
    with open(log, "wb") as out:
        process = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=out, stderr=out, cwd=cwd,
                                   start_new_session=True, **_run_as())
    try:
        return process.wait()
    except BaseException:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        deadline = time.monotonic() + 10.0
        while _group_runs(process.pid) and time.monotonic() < deadline:
            time.sleep(0.01)
        raise


def _group_runs(group: int) -> bool:
    """Whether a process of process group `group` still runs (a zombie does not: it writes
    nothing, and an init that never reaps would keep it for ever)."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = stat.read_text().rsplit(")", 1)[1].split()  # after "pid (comm)": state ppid pgrp
            if int(fields[2]) == group and fields[0] != "Z":
                return True
    return False


def _require_free(port: int, what: str, option: str) -> None:
    """One line when something already listens on the port: the server would fail to bind and
    exit, while the port answered for it (clients would talk to the other one)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the servers bind: TIME_WAIT does not count
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            raise TinydriftError(f"127.0.0.1:{port} is already in use (another {what}?): give another {option}, "
                                 "or none for a free port") from None


def _wait_for_port(port: int, process: subprocess.Popen, log: Path, what: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise TinydriftError(f"{what} exited at start (code {process.returncode}): {log_tail(log)}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return
        time.sleep(0.05)
    raise TinydriftError(f"{what} did not listen on 127.0.0.1:{port} within {START_TIMEOUT_S:g} s: {log_tail(log)}")


def log_tail(log: Path, lines: int = 3) -> str:
    try:
        return " | ".join(log.read_text(errors="replace").strip().splitlines()[-lines:]) or "(no output)"
    except OSError:
        return "(no log)"


def _stop(process: subprocess.Popen | None, sig: int, timeout: float = 20.0) -> None:
    if process is None or process.poll() is not None:
        return
    process.send_signal(sig)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@dataclass
class Broker:
    """mosquitto on 127.0.0.1:port with persistence in `folder`: stop() and start() again
    keep its sessions and queued messages (it saves them on SIGTERM)."""

    folder: Path
    port: int
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    @classmethod
    def create(cls, port: int | None = None, made: list[Path] | None = None) -> "Broker":
        with _service_folder("tinydrift-mqtt-", made) as folder:
            config = folder / "mosquitto.conf"
            user = SERVICE_USER if os.geteuid() == 0 else pwd.getpwuid(os.geteuid()).pw_name
            port = port or free_port()
            config.write_text("\n".join([
                f"listener {port} 127.0.0.1",
                "allow_anonymous true",
                f"user {user}",
                "persistence true",
                f"persistence_location {folder}/",
                # saved every 15 s, not mosquitto's 30 min: a broker that crashes loses what came
                # since, which gateways send again for KEEP_SENT_S (fleet.outbox)
                "autosave_interval 15",
                # A collector that is slow or down must not make the broker drop what it queued for it.
                "max_queued_messages 0",
                "max_queued_bytes 0",
                "max_inflight_messages 1000",
                "log_dest stderr",
                "log_type error",
                "log_type warning",
                "log_type notice",
                "",
            ]))
        return cls(folder, port)

    def start(self) -> "Broker":
        if self.process is not None and self.process.poll() is None:
            return self
        _require_free(self.port, "broker", "--broker-port")
        log = self.folder / "mosquitto.log"
        with open(log, "ab") as out:
            # Started as the service user, not left to drop root itself (its `user` line): the
            # kernel forgets a process's death signal when it changes its own user, and a
            # mosquitto that had done so outlived a `fleet up` killed with SIGKILL.
            self.process = subprocess.Popen([str(mosquitto_binary()), "-c", str(self.folder / "mosquitto.conf")],
                                            stdin=subprocess.DEVNULL, stdout=out, stderr=out, **_run_as(),
                                            **tied_to_this_process())
        _wait_for_port(self.port, self.process, log, "mosquitto")
        return self

    def stop(self) -> None:
        _stop(self.process, signal.SIGTERM)

    def kill(self) -> None:
        """Stop at once, saving nothing (what it had not yet saved is lost with it)."""
        _stop(self.process, signal.SIGKILL)

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.folder, ignore_errors=True)


@dataclass
class Database:
    """PostgreSQL with its cluster in `folder`/data, on 127.0.0.1:port and a Unix socket in
    `folder`; trust authentication for user `tinydrift`, database `tinydrift`."""

    folder: Path
    port: int
    process: subprocess.Popen | None = None

    @property
    def dsn(self) -> str:
        return f"postgresql://{DB_USER}@127.0.0.1:{self.port}/{DATABASE}"

    @classmethod
    def create(cls, port: int | None = None, made: list[Path] | None = None) -> "Database":
        with _service_folder("tinydrift-pg-", made) as folder:
            log = folder / "initdb.log"
            code = _run_to_its_end([str(postgres_bindir() / "initdb"), "-D", str(folder / "data"), "-U", DB_USER,
                                    "--auth=trust", "-E", "UTF8", "--locale=C", "--no-sync"], log, folder)
            if code != 0:
                raise TinydriftError(f"initdb failed (code {code}): {log_tail(log)}")
        return cls(folder, port or free_port())

    def start(self) -> "Database":
        if self.process is not None and self.process.poll() is None:
            return self
        _require_free(self.port, "database", "--db-port")
        log = self.folder / "postgres.log"
        settings = {
            "listen_addresses": "127.0.0.1", "port": str(self.port), "unix_socket_directories": str(self.folder),
            # a private instance on one machine: durability against power loss is not its job
            # (fsync off), but a commit a collector acknowledged to the broker must survive the
            # postgres process crashing: synchronous_commit stays on (off lost 26 of 2,259
            # acknowledged frames to a kill -QUIT in a new user's trial)
            "fsync": "off", "full_page_writes": "off",
            "max_connections": "50", "shared_buffers": "64MB",
        }
        args = [str(postgres_bindir() / "postgres"), "-D", str(self.folder / "data")]
        for key, value in settings.items():
            args += ["-c", f"{key}={value}"]
        with open(log, "ab") as out:
            self.process = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=out, stderr=out, cwd=self.folder,
                                            **_run_as(), **tied_to_this_process())
        _wait_for_port(self.port, self.process, log, "postgres")
        self.new_database(DATABASE)
        return self

    def new_database(self, name: str) -> str:
        """Make database `name` if it is not there yet (each test its own); returns its URL."""
        import psycopg

        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            try:
                with psycopg.connect(f"postgresql://{DB_USER}@127.0.0.1:{self.port}/postgres",
                                     autocommit=True, connect_timeout=2) as conn:
                    if conn.execute("SELECT 1 FROM pg_database WHERE datname=%s", (name,)).fetchone() is None:
                        conn.execute(f'CREATE DATABASE "{name}"')
                    return f"postgresql://{DB_USER}@127.0.0.1:{self.port}/{name}"
            except psycopg.OperationalError as exc:  # still starting up
                if time.monotonic() > deadline:
                    raise TinydriftError(f"postgres did not accept connections: {exc}") from None
                time.sleep(0.1)

    def stop(self) -> None:
        _stop(self.process, signal.SIGINT)  # fast shutdown: ends sessions, writes a checkpoint

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.folder, ignore_errors=True)


def missing_binaries() -> str | None:
    """Why the servers cannot start here, or None."""
    try:
        mosquitto_binary()
        postgres_bindir()
    except TinydriftError as exc:
        return str(exc)
    return None


@contextlib.contextmanager
def private_services(broker_port: int | None = None, db_port: int | None = None, *,
                     keep_on_error: bool = False) -> Iterator[tuple[Broker, Database]]:
    """A running broker and database; both stopped and their folders removed on the way out.
    With `keep_on_error`, an error raised while they run leaves their folders (the stored
    frames, the broker's queue) for the user to look into; one while starting never does."""
    broker = database = None
    started = False
    made: list[Path] = []  # the folders, named as they are made: Ctrl-C as create() returns leaves none
    if broker_port and broker_port == db_port:
        raise TinydriftError(f"--broker-port and --db-port are both {db_port}: give each service its own port")
    for port, what, option in ((broker_port, "broker", "--broker-port"), (db_port, "database", "--db-port")):
        if port:  # before initdb's seconds of work
            _require_free(port, what, option)
    try:
        # made, then started: a service that fails to start still has its folder removed
        broker = Broker.create(broker_port, made)
        broker.start()
        database = Database.create(db_port, made)
        database.start()
        started = True
        yield broker, database
    except BaseException as error:
        if started and keep_on_error and not isinstance(error, KeyboardInterrupt):  # Ctrl-C: nothing to look into
            for service in (database, broker):
                service.stop()
            broker = database = None
            made.clear()
        raise
    finally:
        for service in (database, broker):
            if service is not None:
                service.remove()
        for folder in made:
            shutil.rmtree(folder, ignore_errors=True)


class TinydriftProcess:
    """`tinydrift ARGS` as a child process, its output in `log`: collectors beside a private
    broker and database (`fleet up --collectors`), and the fleet benchmark's parts."""

    def __init__(self, args: list[str], log: Path) -> None:
        self.args, self.log = list(args), Path(log)
        self.process: subprocess.Popen | None = None
        self._cpu_before = 0.0  # CPU of earlier runs (a restarted process)
        self._cpu_last = 0.0  # of the current or latest run

    def start(self) -> "TinydriftProcess":
        if self.process is not None and self.process.poll() is None:
            return self
        if self.process is not None:
            self._cpu_before += self._cpu_last
        self._cpu_last = 0.0
        with open(self.log, "ab") as out:
            self.process = subprocess.Popen([sys.executable, "-m", "tinydrift", *self.args], stdin=subprocess.DEVNULL,
                                            stdout=out, stderr=out, **tied_to_this_process())
        return self

    def cpu_seconds(self) -> float:
        """User and system CPU of this command so far, over its runs (from /proc while it runs)."""
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(OSError, ValueError, IndexError):
                fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
                self._cpu_last = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        return self._cpu_before + self._cpu_last

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM (the command's own clean stop); its exit code."""
        self.cpu_seconds()
        _stop(self.process, signal.SIGTERM, timeout)
        return None if self.process is None else self.process.returncode

    def kill(self) -> None:
        self.cpu_seconds()
        _stop(self.process, signal.SIGKILL)

    def text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


def collector_process(broker_url: str, dsn: str, fleet: str, name: str, folder: Path, *extra: str) -> TinydriftProcess:
    return TinydriftProcess(["collect", "--broker", broker_url, "--db", dsn, "--fleet", fleet, "--name", name, *extra],
                            Path(folder) / f"collect-{name}.log")
