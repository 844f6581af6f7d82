"""The collector: one fleet's frames from the broker into PostgreSQL.

Several collectors of one group share the fleet's traffic through an MQTT 5 shared
subscription ($share/GROUP/tinydrift/FLEET/+/+): the broker gives each message to one of them.
A collector writes what it received in batches (one transaction, COPY) and acknowledges a
message (PUBACK, paho's manual ack) only after the batch that holds it is committed. So a
collector killed mid-batch acknowledged nothing of that batch and the broker delivers it
again; a database that is down gets nothing acknowledged until it is back. Copies are
harmless: the store keeps one row per (device, boot, seq).

Each collector keeps its own persistent session (its --name, kept across restarts): what
the broker had given it and it had not acknowledged comes back when it reconnects.
"""

from __future__ import annotations

import logging
import queue
import signal
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from tinydrift.fleet import envelope as E
from tinydrift.fleet import mqtt
from tinydrift.fleet.store import FleetStore, StoreDown
from tinydrift.modeldir import ModelDir
from tinydrift.link import protocol as P

logger = logging.getLogger("tinydrift.collect")

BATCH_SIZE = 500
BATCH_WAIT_S = 0.2
RETRY_S = 1.0


@dataclass
class CollectStats:
    received: int = 0  # messages delivered by the broker (copies included)
    stored: int = 0  # new rows
    duplicates: int = 0  # copies of rows already stored
    rejected: int = 0  # not a tinydrift envelope: acknowledged and dropped, with a line
    batches: int = 0


@dataclass
class CollectSummary:
    duration_s: float
    end_reason: str
    stats: CollectStats
    unacknowledged: int  # received but not committed when it stopped: the broker sends them again
    database_down: bool = False  # the database was unreachable when it stopped
    broker_never_reached: bool = False  # no connection to the broker in the whole run
    name: str = ""  # the collector's name in its group: its session, which the broker keeps
    joined: bool = False  # subscribed to the group (or the broker held its session): it now has a share
    taken_over: bool = False  # another client with its client id kept taking the session: it gave way
    left: bool = False  # it left the group (--leave): stored what it was sent, and its session ended
    leave_failed: str = ""  # why a --leave could not be done (the session and its share stay)

    @property
    def failed(self) -> bool:
        return self.database_down or self.broker_never_reached or self.taken_over or bool(self.leave_failed)

    def line(self) -> str:
        s = self.stats
        later = f"; {self.unacknowledged} not acknowledged (the broker delivers them again)" if self.unacknowledged else ""
        if self.database_down:
            later += "; the database was unreachable"
        if self.broker_never_reached:
            later += "; the broker was never reached"
        return (f"collected {s.stored} frames in {s.batches} batches ({s.duplicates} copies dropped, "
                f"{s.rejected} rejected) in {self.duration_s:.1f} s; stopped: {self.end_reason}{later}")


@dataclass(slots=True)
class Received:
    generation: int  # the connection it came on: an ack is only valid on that one
    mid: int
    topic: str
    payload: bytes
    qos: int = 1  # 0: sent at most once, with nothing to acknowledge


def known_model_ids(model_dirs: list[str | Path]) -> set[bytes] | None:
    """The model ids (first 8 bytes of each hash) the fleet should run, or None: any."""
    if not model_dirs:
        return None
    return {ModelDir(d).require().model_hash[:P.MODEL_ID_BYTES] for d in model_dirs}


class Collector:
    def __init__(self, broker: mqtt.BrokerUrl, fleet: str, group: str, name: str, batch_size: int,
                 log: Callable[[str], None]) -> None:
        self.broker, self.fleet, self.group, self.log = broker, fleet, group, log
        self.inbox: queue.Queue[Received] = queue.Queue()
        self.generation = 0
        self.connected = threading.Event()
        self.ever_connected = False
        self._said_down = False
        self.stopping = False  # our own disconnect is not an outage
        self.taken_over: str | None = None  # why, once another client with its id took the session over
        # The broker sends at most this many unacknowledged messages: a batch waiting on the
        # database holds the rest back at the broker, not in this process's memory.
        self.client = mqtt.client(broker, f"tinydrift-collector-{fleet}-{group}-{name}", manual_ack=True,
                                  receive_maximum=min(2 * batch_size, mqtt.RECEIVE_MAXIMUM_LIMIT))
        self.client.on_connect = self._on_connect
        self.client.on_connect_fail = self._on_connect_fail
        self.client.on_disconnect = self._on_disconnect
        self.watch = mqtt.ConnectionWatch()  # why a connection was dropped
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe
        self.client.on_unsubscribe = lambda *_args: self.unsubscribed.set()
        self.unsubscribed = threading.Event()
        self._said_subscribed = False
        self.joined = False  # its session holds the group's subscription: the broker keeps its share
        # A member of the shared subscription takes a share of the fleet's frames, and its
        # session keeps taking it after it exits: one that has never reached its database
        # (a mistyped --db) joins only once it has, unless the broker already holds its session.
        self.may_subscribe = threading.Event()
        self._join_lock = threading.Lock()  # paho's thread connects, the main one reaches the database
        self._held_back = False  # connected and not subscribed, for want of the database
        self._said_held_back = False

    @property
    def subscription(self) -> str:
        return f"$share/{self.group}/{E.subscription(self.fleet)}"

    def _on_connect(self, client, _userdata, flags, reason_code, _properties) -> None:
        if reason_code.is_failure:
            self.log(f"broker {self.broker} refused the connection: {reason_code}")
            return
        self.generation += 1
        self.ever_connected = True
        self.watch.opened()
        with self._join_lock:
            self.joined = self.joined or flags.session_present
            self._held_back = not (self.may_subscribe.is_set() or flags.session_present)
            if not self._held_back:
                client.subscribe(self.subscription, qos=1)
            elif not self._said_held_back:
                self._said_held_back = True
                self.log(f"not subscribing to {self.subscription} until the database is reached: a member that "
                         "cannot store its share would hold it back")
        self.connected.set()
        if self._said_down:
            self.log(f"broker {self.broker} reached again")
        self._said_down = False

    def allow_subscribing(self) -> None:
        """The database has been reached: join the group (now, if connected and held back;
        else at the next connection)."""
        with self._join_lock:
            self.may_subscribe.set()
            if self._held_back:
                self._held_back = False
                self.client.subscribe(self.subscription, qos=1)

    def _on_subscribe(self, _client, _userdata, _mid, reason_codes, _properties) -> None:
        failed = [code for code in reason_codes if code.is_failure]
        if failed:
            self.log(f"broker {self.broker} refused the subscription {self.subscription}: {failed[0]} (a broker "
                     "without MQTT 5 shared subscriptions cannot split a fleet between collectors)")
        else:
            self.joined = True
        if not failed and not self._said_subscribed:
            self._said_subscribed = True
            self.log(f"subscribed to {self.subscription} on {self.broker}")

    def _on_connect_fail(self, _client, _userdata) -> None:
        self._down("cannot connect")

    def _on_disconnect(self, _client, _userdata, flags, reason_code, _properties) -> None:
        self.connected.clear()
        with self._join_lock:
            self._held_back = False  # the next connection decides again
        why = self.watch.dropped(reason_code, flags)
        if mqtt.TAKEN_OVER in why and not self.stopping:
            # Two collectors of one --name take the session from each other forever: this one
            # gives way (the other keeps the session and what the broker holds for it).
            self.taken_over = why
            return
        if not self.stopping:
            self._down(why)

    def _down(self, why: str) -> None:
        if not self._said_down:
            self._said_down = True
            self.log(f"broker {self.broker} unreachable ({why}); reconnecting")

    def _on_message(self, _client, _userdata, message) -> None:
        self.inbox.put(Received(self.generation, message.mid, message.topic, message.payload, message.qos))

    def take(self, limit: int, wait: float) -> list[Received]:
        """Up to `limit` messages: the first within `wait` seconds, then what comes within
        `wait` more."""
        out: list[Received] = []
        deadline = time.monotonic() + wait
        while len(out) < limit:
            try:
                out.append(self.inbox.get(timeout=max(0.0, deadline - time.monotonic())))
            except queue.Empty:
                break
        return out

    def ack(self, batch: list[Received]) -> None:
        """PUBACK for every message of a committed batch that came on the current connection
        (those from an earlier one are the broker's to send again; a stale id could name
        another message now). A QoS 0 message (a `mosquitto_pub` without -q) has no PUBACK:
        one sent for it is a protocol error, on which the broker drops the connection."""
        current = self.generation
        for item in batch:
            if item.generation == current and item.qos > 0:
                self.client.ack(item.mid, item.qos)


# How long a leaving collector waits for the broker: to connect, to confirm the unsubscribe,
# and, between two of the messages it was still sent, before it takes the last as the last.
LEAVE_WAIT_S = 10.0
LEAVE_QUIET_S = 1.0


def _leave_group(collector: Collector, store: FleetStore, dsn: str, fleet: str, known: set[bytes] | None,
                 stats: CollectStats, log: Callable[[str], None], batch_size: int) -> str:
    """Unsubscribe from the group, store and acknowledge what the broker still sends (what it
    had sent, and what it kept for this session while it was away), so that ending the
    session loses nothing. '' once done, else why not."""
    if not collector.connected.wait(LEAVE_WAIT_S):
        return f"the broker was not reached within {LEAVE_WAIT_S:g} s"
    collector.unsubscribed.clear()
    collector.client.unsubscribe(collector.subscription)
    if not collector.unsubscribed.wait(LEAVE_WAIT_S):
        return f"the broker did not confirm the unsubscribe within {LEAVE_WAIT_S:g} s"
    while batch := collector.take(batch_size, LEAVE_QUIET_S):
        stats.received += len(batch)
        if _store_batch(store, dsn, fleet, batch, known, stats, log, lambda: True) is None:
            return "the database went away while it stored what was left"
        collector.ack(batch)
    return ""


def run_collector(broker_url: str, dsn: str, *, fleet: str = "default", group: str = "collectors",
                  name: str | None = None, model_dirs: list[str | Path] = (), batch_size: int = BATCH_SIZE,
                  batch_wait: float = BATCH_WAIT_S, duration: float | None = None, leave: bool = False,
                  stop_event: threading.Event | None = None, log: Callable[[str], None] | None = None,
                  progress: Callable[[CollectStats], None] | None = None,
                  progress_interval: float = 5.0) -> CollectSummary:
    """Collect until Ctrl-C/SIGTERM, `duration` or `stop_event`; a batch being written is
    finished (and acknowledged) first. With `leave`, then leave the group (_leave_group) and
    end the session, so the group's other members take its share from then on."""
    log = log or logger.info
    E.check_fleet_name(fleet)
    E.check_fleet_name(group)
    broker = mqtt.BrokerUrl.parse(broker_url)
    mqtt.check_tls(broker)
    known = known_model_ids(list(model_dirs))
    name = name or socket.gethostname()
    try:
        store: FleetStore | None = FleetStore(dsn)
        store.migrate()
    except StoreDown as exc:  # a member the broker knows keeps its share waiting there; a new one waits to join
        log(f"database unreachable ({exc}): storing and acknowledging nothing until it is up")
        store = None
    collector = Collector(broker, fleet, group, name, batch_size, log)
    if store is not None:
        collector.allow_subscribing()
    stats = CollectStats()
    stop_reason: list[str] = []
    previous_handlers = {}
    if threading.current_thread() is threading.main_thread():
        def on_signal(signum, _frame):
            if stop_reason:
                raise KeyboardInterrupt
            stop_reason.append("interrupted" if signum == signal.SIGINT else "terminated")
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous_handlers[sig] = signal.signal(sig, on_signal)
    started = last_progress = time.monotonic()
    next_try = started + RETRY_S
    batch: list[Received] = []
    leave_failed = "interrupted before it left" if leave else ""
    try:
        collector.client.loop_start()
        while True:
            if not stop_reason:
                if collector.taken_over:
                    stop_reason.append(f"{collector.taken_over} (--name {name}); this one gave way")
                elif stop_event is not None and stop_event.is_set():
                    stop_reason.append("stopped")
                elif duration is not None and time.monotonic() - started >= duration:
                    stop_reason.append(f"duration {duration:g} s")
            if stop_reason:
                break
            if store is None and not collector.may_subscribe.is_set() and time.monotonic() >= next_try:
                store = _reach_store(dsn, log)  # nothing to store yet: only whether it can be
                next_try = time.monotonic() + RETRY_S
                if store is not None:
                    collector.allow_subscribing()
            batch = collector.take(batch_size, batch_wait)
            if progress is not None and time.monotonic() - last_progress >= progress_interval:
                progress(stats)  # idle too: a count that stops moving once read as frames not arriving
                last_progress = time.monotonic()
            if not batch:
                continue
            stats.received += len(batch)
            store = _store_batch(store, dsn, fleet, batch, known, stats, log,
                                 lambda: bool(stop_reason) or (stop_event is not None and stop_event.is_set())
                                 or (duration is not None and time.monotonic() - started >= duration))
            if store is None:  # stopped while the database was down: nothing acknowledged
                if not stop_reason:
                    stop_reason.append("stopped" if duration is None else f"duration {duration:g} s")
                break
            collector.ack(batch)
            batch = []
        if leave:
            leave_failed = ("another collector of its --name holds the session" if collector.taken_over else
                            "the database was unreachable" if store is None else
                            _leave_group(collector, store, dsn, fleet, known, stats, log, batch_size))
    finally:
        for sig, handler in previous_handlers.items():
            signal.signal(sig, handler)
        collector.stopping = True
        if leave and not leave_failed:  # left the group: the broker drops the session now
            collector.client.disconnect(properties=mqtt.session_end())
        else:
            collector.client.disconnect()
        collector.client.loop_stop()
        if store is not None:
            store.close()
    unacknowledged = len(batch) + collector.inbox.qsize()
    left = leave and not leave_failed
    return CollectSummary(time.monotonic() - started, stop_reason[0] if stop_reason else "error", stats,
                          unacknowledged, database_down=store is None,
                          broker_never_reached=not collector.ever_connected, name=name,
                          joined=collector.joined and not left, taken_over=collector.taken_over is not None,
                          left=left, leave_failed=leave_failed)


def _reach_store(dsn: str, log: Callable[[str], None]) -> FleetStore | None:
    """The store if the database answers now (said once), else None."""
    try:
        store = FleetStore(dsn)
        store.migrate()
    except StoreDown:
        return None
    log("database reached: subscribing")
    return store


def _store_batch(store: FleetStore | None, dsn: str, fleet: str, batch: list[Received], known: set[bytes] | None,
                 stats: CollectStats, log: Callable[[str], None], should_stop: Callable[[], bool]) -> FleetStore | None:
    """Write one batch, retrying (reconnecting) while the database is down; returns the
    store to go on with, or None if told to stop before the batch could be written."""
    envelopes = []
    for item in batch:
        try:
            envelopes.append(E.unpack(item.payload))
        except ValueError as exc:
            stats.rejected += 1
            log(f"rejected a message on {item.topic}: {exc} (not a tinydrift gateway's frame)")
    down_since = None
    while True:
        try:
            if store is None:
                store = FleetStore(dsn)
                store.migrate()
            result = store.write(fleet, envelopes, known) if envelopes else None
            break
        except StoreDown as exc:
            if store is not None:
                store.close()
                store = None
            if down_since is None:
                down_since = time.monotonic()
                log(f"database unreachable ({exc}): {len(batch)} messages not acknowledged, retrying every "
                    f"{RETRY_S:g} s")
            if should_stop():
                return None
            time.sleep(RETRY_S)
    if down_since is not None:
        log(f"database back after {time.monotonic() - down_since:.1f} s: the waiting batch is stored")
    if result is not None:
        stats.stored += result.inserted
        stats.duplicates += result.duplicates
        for device, kind, detail in result.events:
            log(f"device {device & 0xFFFFFFFFFFFFFFFF:016x}: {detail} ({kind})")
    stats.batches += 1
    return store
