"""The gateway: devices on serial ports -> the outbox on disk -> an MQTT 5 broker.

Frames enter through a `Feed`: the outbox, the counts and the events shared with the
publisher. The serial ports are one kind of source (a `PortReader` thread each); simulated
devices (fleet/simulate.py) are another, put into the same outbox in the same envelopes, so
everything after the read is the same path. One thread a port reads it as capture does (open_port, read_available, reopen_port, the
LinkTracker's sequence books) and puts every device frame, in its envelope, into the outbox
in one transaction per read. The publisher sends what the outbox holds with QoS 1 and
deletes a message when its PUBACK comes. The broker being down changes nothing for the
readers: frames wait in the outbox and go out when it is back (paho re-sends those in
flight itself, the outbox the rest). A PUBACK saying "no matching subscribers" means the
broker dropped the message: it stays in the outbox and is sent again until a collector
subscribes.
"""

from __future__ import annotations

import collections
import hashlib
import logging
import signal
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import serial

from tinydrift.errors import TinydriftError
from tinydrift.fleet import envelope as E
from tinydrift.fleet import mqtt
from tinydrift.fleet.outbox import KEEP_SENT_S, Outbox
from tinydrift.link import protocol as P
from tinydrift.link.port import LinkTracker, open_port, read_available, reopen_port
from tinydrift.logbook.store import StoreFull

logger = logging.getLogger("tinydrift.gateway")

MAX_IN_FLIGHT = 1000  # published, PUBACK not yet back (also paho's window)
NO_SUBSCRIBER_RETRY_S = 1.0
REASON_NO_MATCHING_SUBSCRIBERS = 0x10
DRAIN_TIMEOUT_S = 5.0
READ_TIMEOUT_S = 0.02


@dataclass
class GatewayStats:
    frames: int = 0  # device frames read and put into the outbox
    published: int = 0  # acknowledged by the broker, deleted from the outbox
    lost: int = 0  # sequence numbers never read (the devices' own counts, LinkTracker)
    corrupt: int = 0
    restarts: int = 0
    reopens: int = 0
    redelivered: int = 0  # sent again: no subscriber took them yet, or the broker refused


@dataclass
class GatewaySummary:
    duration_s: float
    end_reason: str
    stats: GatewayStats
    left_in_outbox: int
    outbox: Path
    failed: bool = False
    broker_never_reached: bool = False  # no connection in the whole run: a wrong --broker, most likely

    def line(self) -> str:
        s = self.stats
        left = (f"; {self.left_in_outbox} frames wait in {self.outbox} for the next gateway"
                if self.left_in_outbox else "")
        if self.broker_never_reached:
            left += "; the broker was never reached"
        return (f"gateway read {s.frames} frames ({s.lost} lost on the links, {s.corrupt} corrupt, "
                f"{s.restarts} device restarts, {s.reopens} reopens), the broker acknowledged {s.published} "
                f"sends in {self.duration_s:.1f} s{self.repeats()}; stopped: {self.end_reason}{left}")

    def repeats(self) -> str:
        """Why the broker can acknowledge more than was read: a frame goes again after each
        connect (the resend window) and while no collector subscribes."""
        n = self.stats.redelivered
        return f" ({n} sends repeated a frame: after a connect, or while no collector subscribed)" if n else ""


@dataclass
class Feed:
    """What the sources of device frames share with the publisher: the outbox they store
    into, the counts, the event that wakes the publisher and the one that stops them."""

    outbox: Outbox
    fleet: str
    stats: GatewayStats
    stats_lock: threading.Lock
    wake: threading.Event
    stop: threading.Event
    log: Callable[[str], None]

    def put(self, messages: list[tuple[str, bytes]]) -> None:
        """Store envelopes made elsewhere (E.topic, E.pack) in one transaction, count them,
        and wake the publisher. Raises StoreFull, as the outbox does."""
        self.outbox.add(messages)
        with self.stats_lock:
            self.stats.frames += len(messages)
        if messages:
            self.wake.set()


class PortReader(threading.Thread):
    """Reads one port into the outbox until `stop` is set or the port does not come back."""

    def __init__(self, url: str, port: serial.SerialBase, feed: Feed, *, baudrate: int = 115200,
                 reconnect_timeout: float | None = 10.0, read_timeout: float = READ_TIMEOUT_S) -> None:
        super().__init__(name=f"gateway {url}", daemon=True)
        self.url, self.port, self.outbox, self.fleet = url, port, feed.outbox, feed.fleet
        self.stats, self.stats_lock, self.wake, self.stop, self.log = \
            feed.stats, feed.stats_lock, feed.wake, feed.stop, feed.log
        self.baudrate, self.reconnect_timeout, self.read_timeout = baudrate, reconnect_timeout, read_timeout
        self.identity = E.Identity()
        self.tracker = LinkTracker(None, None)
        self.failure: str | None = None
        earlier = self.outbox.port_state(url)
        if earlier is not None:
            # The device on this port most likely runs on: its frames are its until a HELLO says otherwise.
            self.identity, last_seq, last_at = earlier
            if last_seq is not None:
                self.tracker.resume(last_seq, last_at)
        self._warned_unknown = False
        self._heard_hello = False  # a HELLO came on this port (with or without an id)
        self._lost_seen = self._restarts_seen = 0  # the tracker's counts already added to stats
        self.said_bye: int | None = None  # the exit code of the device's BYE: its port closing is then its end
        self._host_seq = 0  # this reader's host -> device sequence (its STATUS_REQUESTs)

    def _ask_status(self) -> None:
        """Ask the device for a STATUS: from protocol 5 it carries the device's HELLO, so a
        gateway started (or a port reopened) after the boot learns the device id at once."""
        try:
            self.port.write(P.encode(P.StatusRequest(seq=self._host_seq)))
            self._host_seq = (self._host_seq + 1) & 0xFFFFFFFF
        except (serial.SerialException, OSError) as exc:
            self.log(f"{self.url}: could not send STATUS_REQUEST: {exc}")

    def run(self) -> None:
        parser = P.StreamParser()
        self._ask_status()
        try:
            while not self.stop.is_set():
                try:
                    data = read_available(self.port)
                except (serial.SerialException, OSError) as exc:
                    if self.said_bye is not None:  # an emulated board that finished: not a lost port
                        self.log(f"{self.url}: the device said goodbye (exit code {self.said_bye}) and closed")
                        return
                    self.port, _attempts, _took = reopen_port(self.port, self.url, self.baudrate, self.read_timeout,
                                                              self.reconnect_timeout, exc, self.log, self.stop.is_set)
                    if self.port is None:
                        if not self.stop.is_set():
                            self.failure = f"port {self.url} lost"
                        return
                    with self.stats_lock:
                        self.stats.reopens += 1
                    self._ask_status()
                    continue
                if data:
                    self._store(parser.feed(data))
        except StoreFull as exc:
            self.failure = f"{exc}: frames read after it are not kept"
        finally:
            if self.port is not None:
                try:
                    self.port.close()
                except (serial.SerialException, OSError):
                    pass
            self.wake.set()

    def _store(self, items: list) -> None:
        now = time.time()
        received_us = int(now * 1e6)
        messages, events, corrupt = [], [], 0
        if not self._heard_hello:
            # The device ACKs this reader's STATUS_REQUEST before it sends the STATUS that names
            # it (protocol 5), mostly in the same read: the ACK went out as device 0. Nothing
            # before that STATUS but a HELLO starts another boot, so take its name first.
            for item in items:
                if type(item) is P.Hello:
                    break
                if type(item) is P.Status and item.hello is not None:
                    self._hello(item.hello)
                    break
        for item in items:
            kind = type(item)
            if kind is P.Corrupt:
                corrupt += 1
                continue
            if kind is P.TextLine or item.TYPE >= 0x80:  # text, or host -> device frames (a loopback)
                continue
            self.tracker.observe(item, now, 0, events)
            if item.TYPE is P.FrameType.HELLO:
                self._hello(item)
                self.said_bye = None  # it started again
            elif item.TYPE is P.FrameType.BYE:
                self.said_bye = item.exit_code
            elif item.TYPE is P.FrameType.STATUS and item.hello is not None:
                self._hello(item.hello)  # what the device's HELLO said at its boot, without a new boot
            elif self.identity.device_id == 0 and not self._warned_unknown:
                self._warned_unknown = True
                if self._heard_hello:  # a build without an id: restarting it will not give one
                    self.log(f"{self.url}: its HELLO gives no device id (0, the build's default); its frames go out "
                             f"as device {0:016x}: give the board an id (TD_PORT_DEVICE_ID) to tell it from others")
                else:
                    self.log(f"{self.url}: no HELLO or STATUS with a device id seen yet; its frames go out as device "
                             f"{0:016x} until one comes (restart the device, or give it an id: TD_PORT_DEVICE_ID)")
            messages.append((E.topic(self.fleet, self.identity.device_id, item.TYPE),
                             E.pack(self.identity, received_us, item.raw)))
        for _session, _at, kind, seq, count, detail in events:
            if kind in ("gap", "restart", "bogus_seq"):
                self.log(f"{self.url}: {kind} at seq {seq}" + (f", {count} frames lost" if count else "")
                         + (f" ({detail})" if detail else ""))
        self.outbox.add(messages, self.url, self.identity, self.tracker.last_seq)
        with self.stats_lock:
            s = self.stats
            s.frames += len(messages)
            s.corrupt += corrupt
            s.lost += self.tracker.lost - self._lost_seen
            s.restarts += self.tracker.restarts - self._restarts_seen
        self._lost_seen, self._restarts_seen = self.tracker.lost, self.tracker.restarts
        if messages:
            self.wake.set()

    def _hello(self, hello: P.Hello) -> None:
        new, old = E.Identity.of_hello(hello), self.identity
        if old.device_id and new.device_id and new.device_id != old.device_id:
            self.log(f"{self.url}: now device {new.device_id:016x} (was {old.device_id:016x}): another board "
                     "on this port")
        elif old.device_id and new.device_id == old.device_id and new.boot_count and old.boot_count:
            if new.boot_count < old.boot_count:
                self.log(f"{self.url}: device {new.device_id:016x} says boot {new.boot_count} after boot "
                         f"{old.boot_count}: its boot counter went back (reflashed, or two boards share one id)")
            elif new.boot_count == old.boot_count and new.model_id != old.model_id:
                self.log(f"{self.url}: device {new.device_id:016x} boot {new.boot_count} now runs model "
                         f"{new.model_id.hex()} (was {old.model_id.hex()}) without a new boot")
        if not (self._heard_hello and new.device_id == old.device_id):
            self._warned_unknown = False  # another board, or its first HELLO: a missing id is said anew
        self.identity = new
        self._heard_hello = True


class Publisher:
    """Sends the outbox's messages with QoS 1 and marks each one its PUBACK confirms sent
    (Outbox.sent; sent again after each connect while the outbox keeps it)."""

    def __init__(self, outbox: Outbox, broker: mqtt.BrokerUrl, client_id: str, stats: GatewayStats,
                 stats_lock: threading.Lock, wake: threading.Event, log: Callable[[str], None]) -> None:
        self.outbox, self.broker, self.stats, self.stats_lock, self.wake, self.log = \
            outbox, broker, stats, stats_lock, wake, log
        self.in_flight: dict[int, int] = {}  # paho mid -> outbox id
        self.send_kept = False  # set on each connect: what the broker acknowledged lately goes again
        self.acks: collections.deque = collections.deque()  # (mid, reason code), from paho's thread
        self.retry: list[tuple[float, int]] = []  # (when, outbox id) to send again
        self.last_id = 0
        self.connected = threading.Event()
        self.ever_connected = False
        self._down_since: float | None = time.monotonic()
        self._said_down = self._said_no_subscriber = False
        self.stopping = False  # our own disconnect is not an outage
        self.client = mqtt.client(broker, client_id, max_inflight=MAX_IN_FLIGHT)
        self.client.on_connect = self._on_connect
        self.client.on_connect_fail = self._on_connect_fail
        self.client.on_disconnect = self._on_disconnect
        self.watch = mqtt.ConnectionWatch()  # why a connection was dropped
        self.client.on_publish = self._on_publish

    # paho's thread
    def _on_connect(self, _client, _userdata, flags, reason_code, _properties) -> None:
        if reason_code.is_failure:
            self.log(f"broker {self.broker} refused the connection: {reason_code}")
            return
        self.send_kept = True
        self.ever_connected = True
        self.connected.set()
        self.watch.opened()
        if self._said_down:
            self.log(f"broker {self.broker} reached after {time.monotonic() - self._down_since:.1f} s; "
                     "sending what waits in the outbox")
        self._down_since, self._said_down = None, False
        self.wake.set()

    def _on_connect_fail(self, _client, _userdata) -> None:
        self._went_down("cannot connect")

    def _on_disconnect(self, _client, _userdata, flags, reason_code, _properties) -> None:
        self.connected.clear()
        why = self.watch.dropped(reason_code, flags)
        if not self.stopping:
            self._went_down(why)

    def _went_down(self, why: str) -> None:
        if self._down_since is None:
            self._down_since = time.monotonic()
        if not self._said_down:
            self._said_down = True
            self.log(f"broker {self.broker} unreachable ({why}): frames wait in the outbox; reconnecting")

    def _on_publish(self, _client, _userdata, mid, reason_code, _properties) -> None:
        self.acks.append((mid, reason_code.value))
        self.wake.set()

    # the gateway's main thread
    def start(self) -> None:
        self.client.loop_start()

    def step(self) -> None:
        """Handle the PUBACKs that came, then publish what the window allows."""
        done = []
        while self.acks:
            mid, reason = self.acks.popleft()
            row = self.in_flight.pop(mid, None)
            if row is None:
                continue
            if reason == REASON_NO_MATCHING_SUBSCRIBERS or reason >= 0x80:
                if not self._said_no_subscriber:
                    self._said_no_subscriber = True
                    why = ("no collector subscribes to this fleet yet" if reason == REASON_NO_MATCHING_SUBSCRIBERS
                           else f"the broker refused it (reason 0x{reason:02x})")
                    self.log(f"a frame was not delivered: {why}; such frames stay in the outbox and are sent "
                             f"again every {NO_SUBSCRIBER_RETRY_S:g} s")
                self.retry.append((time.monotonic() + NO_SUBSCRIBER_RETRY_S, row))
                with self.stats_lock:
                    self.stats.redelivered += 1
            else:
                done.append(row)
        if done:
            self.outbox.sent(done)
            with self.stats_lock:
                self.stats.published += len(done)
        if not self.connected.is_set():
            return
        if self.send_kept:
            self._send_kept_again()
        room = MAX_IN_FLIGHT - len(self.in_flight)
        now = time.monotonic()
        due = [row for when, row in self.retry if when <= now][:room]
        if due:
            taken = set(due)
            self.retry = [(w, r) for w, r in self.retry if r not in taken]
            for row in self._rows(due):
                self._publish(*row)
            room -= len(due)
        if room > 0:
            flying = set(self.in_flight.values()) | {row for _, row in self.retry}
            for row in self.outbox.after(self.last_id, room):
                if row[0] not in flying:
                    self._publish(*row)
                self.last_id = row[0]

    def _send_kept_again(self) -> None:
        """After a connect: a broker that stopped without saving lost what it acknowledged
        since its last save (and what it held for a collector), so what it acknowledged
        within the outbox's keep_sent_s goes again; the collectors drop the copies they have."""
        self.send_kept = False
        again = self.outbox.send_kept_again()
        if again:
            self.last_id = 0  # walk the outbox from its start: those lie below the ids sent since
            with self.stats_lock:
                self.stats.redelivered += again
            self.log(f"{again} frames the broker acknowledged in the last {self.outbox.keep_sent_s:g} s are sent "
                     "again, in case it lost them (a broker that stops without saving loses what came since its last save); "
                     "the collectors drop the copies they already stored")

    def _rows(self, ids: list[int]) -> list[tuple[int, str, bytes]]:
        wanted = set(ids)
        return [r for r in self.outbox.after(min(ids) - 1, max(ids) - min(ids) + 1) if r[0] in wanted]

    def _publish(self, row_id: int, topic: str, payload: bytes) -> None:
        info = self.client.publish(topic, payload, qos=1)
        self.in_flight[info.mid] = row_id

    def waiting(self) -> int:
        return len(self.in_flight) + len(self.retry)

    def stop(self) -> None:
        self.stopping = True
        self.client.disconnect()
        self.client.loop_stop()


def default_client_id(fleet: str, outbox_path: str | Path) -> str:
    """Stable for one outbox on one machine (its session outlives a restart), distinct for two."""
    where = hashlib.sha256(str(Path(outbox_path).resolve()).encode()).hexdigest()[:8]
    return f"tinydrift-gateway-{fleet}-{socket.gethostname()}-{where}"


def run_gateway(ports: list[str], broker_url: str, outbox_path: str | Path, *, fleet: str = "default",
                client_id: str | None = None, baudrate: int = 115200, reconnect_timeout: float | None = 10.0,
                duration: float | None = None, stop_event: threading.Event | None = None,
                durable: bool = False, resend_window: float = KEEP_SENT_S, log: Callable[[str], None] | None = None,
                progress: Callable[[GatewayStats, int], None] | None = None,
                progress_interval: float = 5.0) -> GatewaySummary:
    """Run until Ctrl-C/SIGTERM, `duration`, `stop_event`, or every port lost for good.
    Without ports, send what the outbox holds and stop once it is empty (a gateway whose
    devices are away, or a simulation's leftovers)."""
    E.check_fleet_name(fleet)
    broker = mqtt.BrokerUrl.parse(broker_url)
    mqtt.check_tls(broker)
    if not ports:
        outbox = Outbox(outbox_path, durable=durable, keep_sent_s=resend_window)
        return forward(lambda feed: [], outbox, broker, fleet=fleet, client_id=client_id, duration=duration,
                       stop_event=stop_event, log=log, progress=progress, progress_interval=progress_interval,
                       until_empty=True)
    if len(set(ports)) != len(ports):
        raise TinydriftError("a port is given twice: give each --port once")
    opened: list[serial.SerialBase] = []
    try:  # every port first: a bad one fails the start before the outbox is made
        for url in ports:
            opened.append(open_port(url, baudrate, READ_TIMEOUT_S))
        outbox = Outbox(outbox_path, durable=durable, keep_sent_s=resend_window)
    except TinydriftError:
        for port in opened:
            port.close()
        raise

    def readers(feed: Feed) -> list[PortReader]:
        return [PortReader(url, port, feed, baudrate=baudrate, reconnect_timeout=reconnect_timeout)
                for url, port in zip(ports, opened)]

    return forward(readers, outbox, broker, fleet=fleet, client_id=client_id, duration=duration,
                   stop_event=stop_event, log=log, progress=progress, progress_interval=progress_interval,
                   ended="every port closed")


def forward(make_sources: Callable[[Feed], list[threading.Thread]], outbox: Outbox, broker: mqtt.BrokerUrl, *,
            fleet: str, client_id: str | None = None, duration: float | None = None,
            stop_event: threading.Event | None = None, log: Callable[[str], None] | None = None,
            progress: Callable[[GatewayStats, int], None] | None = None, progress_interval: float = 5.0,
            ended: str = "every source ended", drain_timeout: float = DRAIN_TIMEOUT_S,
            until_empty: bool = False) -> GatewaySummary:
    """Publish what the sources put into `outbox` until Ctrl-C/SIGTERM, `duration`,
    `stop_event`, or every source thread ended (`ended` says how; a source's `failure`
    says why it failed); then give the broker up to `drain_timeout` s for what is left.
    until_empty (no sources): until the broker has acknowledged everything the outbox held."""
    log = log or logger.info
    stats, stats_lock, wake, stop = GatewayStats(), threading.Lock(), threading.Event(), threading.Event()
    sources = make_sources(Feed(outbox, fleet, stats, stats_lock, wake, stop, log))
    waiting = outbox.count()
    if waiting:
        log(f"{waiting} frames from an earlier run wait in {outbox.path}: sending them first")
    publisher = Publisher(outbox, broker, client_id or default_client_id(fleet, outbox.path), stats, stats_lock,
                          wake, log)
    stop_reason: list[str] = []
    previous_handlers = {}
    if threading.current_thread() is threading.main_thread():
        def on_signal(signum, _frame):
            if stop_reason:
                raise KeyboardInterrupt
            stop_reason.append("interrupted" if signum == signal.SIGINT else "terminated")
            wake.set()
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous_handlers[sig] = signal.signal(sig, on_signal)
    started = last_progress = time.monotonic()
    failed = False
    try:
        publisher.start()
        for source in sources:
            source.start()
        while not stop_reason:
            if stop_event is not None and stop_event.is_set():
                stop_reason.append("stopped")
            elif duration is not None and time.monotonic() - started >= duration:
                stop_reason.append(f"duration {duration:g} s")
            elif until_empty and not outbox.count():
                stop_reason.append("the outbox is empty")
            elif sources and not any(s.is_alive() for s in sources):
                failures = [s.failure for s in sources if s.failure]
                stop_reason.append("; ".join(failures) or ended)
                failed = bool(failures)
            if stop_reason:
                break
            wake.wait(0.05)
            wake.clear()
            publisher.step()
            if progress is not None and time.monotonic() - last_progress >= progress_interval:
                progress(stats, outbox.count())
                last_progress = time.monotonic()
        stop.set()
        for source in sources:
            source.join(timeout=10)
        failed = failed or any(s.failure for s in sources)
        # What was read is in the outbox whatever happens now; give the broker a moment for the rest.
        pending = outbox.count()
        if pending and publisher.connected.is_set() and drain_timeout > 0:
            log(f"stopping ({stop_reason[0] if stop_reason else 'error'}): giving the broker up to {drain_timeout:g} s "
                f"for the {pending} frames it has not acknowledged yet (Ctrl-C again stops at once; they stay in "
                "the outbox)")
        deadline = time.monotonic() + drain_timeout
        while publisher.connected.is_set() and time.monotonic() < deadline:
            publisher.step()
            if not publisher.waiting() and not outbox.after(publisher.last_id, 1):
                break
            wake.wait(0.05)
            wake.clear()
    finally:
        for sig, handler in previous_handlers.items():
            signal.signal(sig, handler)
        stop.set()
        publisher.stop()
        left = outbox.count()
        outbox.close()
    return GatewaySummary(time.monotonic() - started, stop_reason[0] if stop_reason else "error", stats, left,
                          outbox.path, failed, broker_never_reached=not publisher.ever_connected)
