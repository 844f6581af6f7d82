"""The fleet dashboard: HTML pages over the fleet store, served by the standard library.

    /                      the fleet at a glance: each device's model, boot, when it was last
                           heard, its alarm state and types and its estimated accuracy (from the
                           latest INFERENCE or HEARTBEAT of the model and boot it last named; an
                           alarm a reboot or a reset cleared within the day shows as cleared), a
                           streaming detector's wakes, drifting devices first; and the alarm
                           map: per hour, how many devices show each alarm type, so a type that
                           is rising across the fleet stands out
    /device/<fleet>/<id>   one device: its estimated accuracy over its inferences, where each
                           alarm type latched, a detector's latest wakes, and what the
                           collectors found odd about it

Pages are rendered on the server (no script, nothing fetched from elsewhere) and refresh
themselves. Each request opens its own read-only connection, so a database that restarts
costs one error page.
"""

from __future__ import annotations

import errno
import html
import logging
import re
import socket
import threading
from dataclasses import dataclass
from datetime import datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable

from tinydrift.errors import TinydriftError
from tinydrift.fleet.mqtt import FLEET_EXTRA
from tinydrift.frontend import SAMPLE_RATE
from tinydrift.link import protocol as P
from tinydrift.fleet.store import CLOCK_AHEAD, SCHEMA_VERSION, STATE_TYPES, shown_database
from tinydrift.logbook.store import from_int64, to_int64
from tinydrift.monitor.config import ALARM_SENSOR_FAULT

logger = logging.getLogger("tinydrift.dashboard")

REFRESH_S = 10
MAP_HOURS = 24
RECENT_HOURS = 24  # a board whose alarms cleared within this many hours says so
TIMELINE_FRAMES = 2000  # the newest frames of one device the timeline draws
LATCHED = (1 << len(P.ALARM_NAMES)) - 1
WITHHELD = "withheld (sensor fault)"  # the accuracy shown while SENSOR_FAULT is latched, as `report` does
WAKE_WORD = "none (wake word: see its wakes)"  # a streaming detector's: its severity lines give wakes too
WAKES_SHOWN = 50  # a detector's newest wakes its page lists

# recent: the alarm types each board showed latched in the last RECENT_HOURS (the hourly
# roll-up, by the database's clock), so that one whose alarms a reboot or a reset has cleared
# since still says so. Not for device 0: builds without an id all send as it, from any board.
OVERVIEW_SQL = """
WITH recent AS (
    SELECT fleet, device_id, bit_or(1 << alarm::int) AS recent FROM alarm_hours
    WHERE hour >= date_trunc('hour', now()) - make_interval(hours => %(hours)s - 1) AND device_id <> 0
    GROUP BY 1, 2)
SELECT d.device_id, d.fleet, d.model_id, d.boot_count, d.last_seen, d.frames, d.alarm_bits, d.accuracy, d.wakes,
       d.detector, coalesce(r.recent, 0)
FROM devices d LEFT JOIN recent r USING (fleet, device_id)
WHERE %(fleet)s::text IS NULL OR d.fleet = %(fleet)s
ORDER BY coalesce(d.alarm_bits, 0) & %(latched)s = 0,
         coalesce(r.recent, 0) & ~coalesce(d.alarm_bits, 0) & %(latched)s = 0, d.fleet, d.device_id
"""
# The fleet's newest hours, from the first it was heard in (the newest frame's hour of the
# fleet shown, not of every fleet in the store), with the boards that showed each alarm type.
MAP_SQL = """
WITH heard AS (
    -- the newest hour of the boards whose gateways' clocks are not ahead of this one (one
    -- stamped two days ahead blanked the map of every board drifting today)
    SELECT date_trunc('hour', min(first_seen)) AS first,
           date_trunc('hour', coalesce(max(last_seen) FILTER (WHERE last_seen <= now() + %(ahead)s),
                                       max(last_seen))) AS last FROM devices
    WHERE %(fleet)s::text IS NULL OR fleet = %(fleet)s),
hours AS (
    SELECT generate_series(greatest(first, last - make_interval(hours => %(hours)s - 1)), last, '1 hour') AS hour
    FROM heard WHERE last IS NOT NULL)
SELECT hours.hour, {counts}
FROM hours LEFT JOIN alarm_hours a ON a.hour = hours.hour AND (%(fleet)s::text IS NULL OR a.fleet = %(fleet)s)
GROUP BY 1 ORDER BY 1
"""
WAKES_SQL = """
SELECT * FROM (
    SELECT received_at, boot_count, inference_index, stream_position, window_mean FROM frames
    WHERE fleet = %(fleet)s AND device_id = %(device)s AND wake
    ORDER BY received_at DESC LIMIT %(limit)s) newest
ORDER BY received_at
"""
TIMELINE_SQL = """
SELECT * FROM (
    SELECT received_at, boot_count, inference_index, accuracy, alarm_bits FROM frames
    WHERE fleet = %(fleet)s AND device_id = %(device)s AND type = ANY(%(types)s)
    ORDER BY received_at DESC LIMIT %(limit)s) newest
ORDER BY received_at
"""


@dataclass
class DeviceRow:
    device_id: int
    fleet: str
    model_id: bytes
    boot_count: int
    last_seen: datetime
    frames: int
    alarm_bits: int | None
    accuracy: float | None
    wakes: int = 0  # a streaming detector's detections (DETECTION frames with WAKE)
    detector: bool = False  # a streaming detector's board (it sent DETECTION frames)
    recent: int = 0  # alarm types it showed latched in the last RECENT_HOURS

    @property
    def cleared(self) -> int:
        """Alarm types latched in the last RECENT_HOURS and not now: a reboot or a RESET
        cleared them (the device finds a drift that lasts again, after its usual delay)."""
        return self.recent & ~(self.alarm_bits or 0) & LATCHED

    @property
    def state(self) -> str:
        bits = self.alarm_bits or 0
        if bits & LATCHED:
            return "drifting"
        if self.cleared:
            return "cleared"
        return "warning" if (bits >> P.WARNING_SHIFT) & LATCHED else "quiet"


def alarm_types(bits: int | None) -> list[str]:
    return [name for k, name in enumerate(P.ALARM_NAMES) if (bits or 0) >> k & 1]


class FleetView:
    """What the pages show, read from the store."""

    def __init__(self, dsn: str, fleet: str | None = None) -> None:
        try:
            import psycopg
        except ImportError:
            raise TinydriftError(f"{FLEET_EXTRA}: psycopg is missing") from None
        self.fleet = fleet
        try:
            self.conn = psycopg.connect(dsn, connect_timeout=5, autocommit=True)
        except psycopg.Error as exc:
            raise TinydriftError(f"cannot read the fleet database {shown_database(dsn)!r}: "
                                 f"{_first_line(exc)}") from None
        self.conn.read_only = True

    def check_schema(self) -> None:
        """The store's schema is the one these pages read (TinydriftError otherwise)."""
        import psycopg

        try:
            found = self.conn.execute("SELECT max(version) FROM schema_version").fetchone()[0]
        except psycopg.Error as exc:
            raise TinydriftError(f"no fleet store here ({_first_line(exc)}): start `tinydrift collect --db` on it "
                                 "first") from None
        if found is None or found < SCHEMA_VERSION:
            raise TinydriftError(f"the fleet store has schema {found}, older than this dashboard's {SCHEMA_VERSION}: "
                                 "start this tinydrift's `tinydrift collect --db` on it once, which upgrades it")
        if found > SCHEMA_VERSION:
            raise TinydriftError(f"the fleet store has schema {found}, newer than this tinydrift's {SCHEMA_VERSION}: "
                                 "upgrade tinydrift")

    def devices(self) -> list[DeviceRow]:
        """Every board of the fleet shown, as its row in `devices` keeps it (the collectors
        fold each frame in as they store it, so no frame is read here)."""
        rows = self.conn.execute(OVERVIEW_SQL, {"fleet": self.fleet, "latched": LATCHED,
                                                "hours": RECENT_HOURS}).fetchall()
        return [DeviceRow(from_int64(r[0]), r[1], bytes(r[2]), *r[3:]) for r in rows]

    def fleets(self) -> list[str]:
        """The fleets the store has devices of."""
        return [r[0] for r in self.conn.execute("SELECT DISTINCT fleet FROM devices ORDER BY fleet").fetchall()]

    def alarm_map(self, hours: int = MAP_HOURS) -> list[tuple[datetime, list[int]]]:
        """Per hour (the fleet's newest `hours` hours): boards showing each alarm type latched."""
        counts = ", ".join(f"count(a.device_id) FILTER (WHERE a.alarm = {k})" for k in range(len(P.ALARM_NAMES)))
        rows = self.conn.execute(MAP_SQL.format(counts=counts), {"hours": hours, "fleet": self.fleet,
                                                                   "ahead": CLOCK_AHEAD}).fetchall()
        return [(r[0], list(r[1:])) for r in rows]

    def latches(self, fleet: str, device_id: int) -> list[tuple] | None:
        """Where each alarm type latched in the board's current boot and model: (alarm, first
        seen, inference, boot) each; None if the store never heard of the board, or it is
        not of the fleet shown."""
        if self.fleet is not None and fleet != self.fleet:
            return None
        row = self.conn.execute("SELECT boot_count, latch_index, latch_at FROM devices WHERE fleet = %s "
                                "AND device_id = %s", (fleet, to_int64(device_id))).fetchone()
        if row is None:
            return None
        boot, index, at = row[0], row[1] or [], row[2] or []
        return sorted((at[k], name, index[k], boot) for k, name in enumerate(P.ALARM_NAMES)
                      if k < len(index) and index[k] is not None)

    def timeline(self, fleet: str, device_id: int) -> list[tuple]:
        """The board's newest INFERENCE and HEARTBEAT frames: (received_at, boot, inference,
        accuracy, alarm_bits)."""
        return self.conn.execute(TIMELINE_SQL, {"fleet": fleet, "device": to_int64(device_id),
                                                "types": list(STATE_TYPES), "limit": TIMELINE_FRAMES}).fetchall()

    def is_detector(self, fleet: str, device_id: int) -> bool:
        """Whether the board is a streaming detector's (it sent DETECTION frames)."""
        row = self.conn.execute("SELECT detector FROM devices WHERE fleet = %s AND device_id = %s",
                                (fleet, to_int64(device_id))).fetchone()
        return bool(row and row[0])

    def wakes(self, fleet: str, device_id: int) -> list[tuple]:
        """A detector's newest wakes: (received_at, boot_count, inference_index, stream_position, window_mean)."""
        return self.conn.execute(WAKES_SQL, {"fleet": fleet, "device": to_int64(device_id),
                                             "limit": WAKES_SHOWN}).fetchall()

    def events(self, fleet: str, device_id: int) -> list[tuple]:
        return self.conn.execute("SELECT at, kind, detail FROM device_events WHERE fleet = %s AND device_id = %s "
                                 "ORDER BY at", (fleet, to_int64(device_id))).fetchall()

    def close(self) -> None:
        self.conn.close()


# ---------------------------------------------------------------------------- pages

STYLE = """
body { font-family: sans-serif; margin: 1.5em; color: #222; }
table { border-collapse: collapse; margin-bottom: 1.5em; }
th, td { padding: 0.25em 0.7em; border-bottom: 1px solid #ddd; text-align: left; }
tr.drifting td.state { color: #b00020; font-weight: bold; }
tr.warning td.state, tr.cleared td.state { color: #b36b00; }
tr.quiet td.state { color: #1b7a1b; }
td.map { text-align: center; }
td.map.rising { font-weight: bold; text-decoration: underline; }
td.map.dark { color: #fff; }
"""
# The alarm map's cells shade toward this red with the share of devices showing the type; from
# DARK_SHARE on, their count is written in white, below it in the page's near-black (3.5:1 or
# more either way). A rising count was red text: on a fleet alarming whole, red on the same red.
MAP_RED = (176, 0, 32)
DARK_SHARE = 0.6


def _page(title: str, body: str) -> bytes:
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<meta http-equiv='refresh' content='{REFRESH_S}'><style>{STYLE}</style></head>"
            f"<body><h1>{html.escape(title)}</h1>{body}</body></html>").encode()


def _when(at: datetime | None) -> str:
    return at.strftime("%Y-%m-%d %H:%M:%S") if at else "-"


def overview_page(devices: list[DeviceRow], alarm_map: list[tuple[datetime, list[int]]], fleet: str | None = None,
                  fleets: list[str] = ()) -> bytes:
    """The fleet at a glance; `fleet` the one shown (None: all), `fleets` those the store holds,
    named when the one shown has no device."""
    drifting = sum(d.state == "drifting" for d in devices)
    rows = []
    for d in devices:
        name = f"{d.device_id:016x}"
        page = f"/device/{d.fleet}/{name}"
        accuracy = "-" if d.accuracy is None else f"{100 * d.accuracy:.1f} %"
        if (d.alarm_bits or 0) & ALARM_SENSOR_FAULT:  # the model hears no sound: no estimate to believe
            accuracy = WITHHELD
        if d.detector:  # nearly all its inferences are "not said": the share of confident ones hides missed wakes
            accuracy = WAKE_WORD
        rows.append(
            f"<tr class='{d.state}' data-fleet='{d.fleet}' data-device='{name}' data-state='{d.state}'>"
            f"<td><a href='{page}'>{name}</a></td><td>{html.escape(d.fleet)}</td><td>{d.model_id.hex()}</td>"
            f"<td>{d.boot_count}</td><td>{_when(d.last_seen)}</td><td class='state'>{d.state}</td>"
            f"<td class='alarms'>{' '.join(alarm_types(d.alarm_bits)) or '-'}{_cleared_text(d)}</td>"
            f"<td class='accuracy'>{accuracy}</td><td class='wakes'>{d.wakes:,}</td><td>{d.frames:,}</td></tr>")
    devices_table = ("<table id='devices'><tr><th>device</th><th>fleet</th><th>model</th><th>boot</th>"
                     "<th>last seen (UTC)</th><th>state</th><th>alarms latched</th><th>estimated accuracy</th>"
                     f"<th>wakes</th><th>frames</th></tr>{''.join(rows)}</table>")
    head = "".join(f"<th>{name}</th>" for name in P.ALARM_NAMES)
    map_rows = []
    for i, (hour, counts) in enumerate(alarm_map):
        before = alarm_map[i - 1][1] if i else [0] * len(counts)
        shares = [min(1.0, n / max(1, len(devices))) for n in counts]
        cells = "".join(
            f"<td class='map{' rising' if n > b else ''}{' dark' if share >= DARK_SHARE else ''}' data-type='{name}' "
            f"style='background: rgba({', '.join(map(str, MAP_RED))}, {share:.2f})'>{n}</td>"
            for name, n, b, share in zip(P.ALARM_NAMES, counts, before, shares))
        map_rows.append(f"<tr><td>{_when(hour)[:13]}h</td>{cells}</tr>")
    map_table = (f"<table id='alarm-map'><tr><th>hour (UTC)</th>{head}</tr>{''.join(map_rows)}</table>"
                 if map_rows else "<p>No frames yet.</p>")
    summary = f"{len(devices)} device{'' if len(devices) == 1 else 's'}, {drifting} drifting."
    if cleared := sum(d.state == "cleared" for d in devices):
        summary += (f" {cleared} cleared: an alarm latched in the last {RECENT_HOURS} h and not now (a reboot or "
                    "a reset since; a drift that lasts is found again after the usual delay).")
    if not devices:
        held = ", ".join(html.escape(f) for f in fleets) or "none yet"
        summary = (f"No device {'in the fleet store' if fleet is None else 'of fleet ' + html.escape(fleet)} yet "
                   f"(fleets there: {held}). Devices appear as the collectors store their frames.")
    body = (f"<p id='summary'>{summary}</p>{devices_table}"
            f"<h2>Alarm map: devices showing each alarm type, per hour (red numbers: more than the hour "
            f"before)</h2>{map_table}")
    return _page("tinydrift fleet", body)


def _cleared_text(device: DeviceRow) -> str:
    names = alarm_types(device.cleared)
    return f" (cleared: {' '.join(names)})" if names else ""


def _wakes_table(wakes: list[tuple]) -> str:
    if not wakes:
        return ""
    rows = "".join(f"<tr><td>{_when(at)}</td><td>{boot}</td><td>{index}</td><td>{position / SAMPLE_RATE:.2f}</td>"
                   f"<td>{mean:.2f}</td></tr>" for at, boot, index, position, mean in wakes)
    return (f"<h2>Wake events (the newest {WAKES_SHOWN})</h2><table id='wakes'><tr><th>received (UTC)</th><th>boot</th>"
            f"<th>inference</th><th>stream position (s)</th><th>window mean</th></tr>{rows}</table>")


def device_page(fleet: str, device_id: int, timeline: list[tuple], latches: list[tuple], events: list[tuple],
                wakes: list[tuple] = (), detector: bool = False) -> bytes:
    """One board's page: `timeline`, its newest frames (received_at, boot, inference, accuracy,
    alarm_bits);
    `latches`, where each alarm type latched in its current boot (FleetView.latches). A
    streaming detector's (`detector`) draws its alarms without an accuracy line (WAKE_WORD)."""
    title = f"device {device_id:016x} of fleet {fleet}"
    latched = "".join(f"<tr><td>{alarm}</td><td>{_when(at)}</td><td>{index}</td><td>{boot}</td></tr>"
                      for at, alarm, index, boot in latches)
    latched_table = ("<table id='latched'><tr><th>alarm</th><th>first seen (UTC)</th><th>inference</th><th>boot</th></tr>"
                     f"{latched}</table>" if latches else "<p id='latched'>No alarm latched.</p>")
    if not timeline:
        return _page(title, "<p>No INFERENCE or HEARTBEAT frames from this device yet.</p>"
                            f"<h2>Alarms</h2>{latched_table}" + _wakes_table(list(wakes)))
    width, height, pad = 800, 240, 30
    first, last = timeline[0][0], timeline[-1][0]
    span = max((last - first).total_seconds(), 1e-9)

    def x(at) -> float:
        return pad + (width - 2 * pad) * (at - first).total_seconds() / span

    def y(accuracy: float) -> float:
        return height - pad - (height - 2 * pad) * max(0.0, min(1.0, accuracy))

    # One line per run of frames with an estimate: none under a sensor fault (nothing heard).
    runs: list[list[str]] = [[]]
    for at, _, _, accuracy, bits in timeline:
        if accuracy is not None and not (bits or 0) & ALARM_SENSOR_FAULT and not detector:
            runs[-1].append(f"{x(at):.1f},{y(accuracy):.1f}")
        elif runs[-1]:
            runs.append([])
    polylines = "".join(f"<polyline fill='none' stroke='#1f5fa8' stroke-width='1.5' points='{' '.join(r)}'/>"
                        for r in runs if r)
    drawn = [(at, alarm) for at, alarm, _, _ in latches if first <= at <= last]  # older ones: in the table only
    lines = "".join(
        f"<line class='alarm' data-type='{alarm}' x1='{x(at):.1f}' x2='{x(at):.1f}' y1='{pad}' y2='{height - pad}' "
        f"stroke='#b00020' stroke-dasharray='4 3'/><text x='{x(at) + 3:.1f}' y='{pad + 12 + 14 * i}' "
        f"fill='#b00020' font-size='12'>{alarm}</text>" for i, (at, alarm) in enumerate(drawn))
    svg = (f"<svg id='timeline' width='{width}' height='{height}' xmlns='http://www.w3.org/2000/svg'>"
           f"<rect x='{pad}' y='{pad}' width='{width - 2 * pad}' height='{height - 2 * pad}' fill='none' stroke='#ccc'/>"
           f"<text x='{pad}' y='{pad - 8}' font-size='12'>"
           f"{'alarms (estimated accuracy: ' + WAKE_WORD + ')' if detector else 'estimated accuracy (0-100 %)'}, "
           f"{_when(first)} to {_when(last)} UTC</text>"
           f"{polylines}{lines}</svg>")
    odd = "".join(f"<tr><td>{_when(at)}</td><td>{html.escape(kind)}</td><td>{html.escape(detail)}</td></tr>"
                  for at, kind, detail in events)
    events_table = f"<h2>Found odd</h2><table id='events'>{odd}</table>" if odd else ""
    return _page(title, f"<p><a href='/'>the fleet</a></p>{svg}<h2>Alarms</h2>{latched_table}"
                        f"{_wakes_table(list(wakes))}{events_table}")


# ---------------------------------------------------------------------------- server

# /device/<fleet>/<id>: the id in hex, as the overview writes it or shorter
_DEVICE_PATH = re.compile(r"^/device/([A-Za-z0-9_-]{1,64})/([0-9a-fA-F]{1,16})$")


def make_server(dsn: str, host: str = "127.0.0.1", port: int = 8050, fleet: str | None = None,
                log: Callable[[str], None] | None = None) -> ThreadingHTTPServer:
    """A server for the pages (port 0: a free one, see server_address); serve_forever() runs it."""
    log = log or logger.info

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (the standard library's name)
            path = self.path.split("?", 1)[0]
            device = _DEVICE_PATH.match(path)
            if path != "/" and device is None:
                self._send(HTTPStatus.NOT_FOUND, _page("not found", "<p><a href='/'>the fleet</a></p>"))
                return
            try:
                view = FleetView(dsn, fleet)
                try:
                    if device is None:
                        body = overview_page(view.devices(), view.alarm_map(), fleet, view.fleets())
                    else:
                        board_fleet, device_id = device.group(1), int(device.group(2), 16)
                        latches = view.latches(board_fleet, device_id)
                        if latches is None:
                            shown = "" if fleet is None else f" (this dashboard shows fleet {html.escape(fleet)})"
                            self._send(HTTPStatus.NOT_FOUND, _page(
                                "no such device", f"<p>No device {device_id:016x} of fleet {board_fleet} in the "
                                f"fleet store{shown}. <a href='/'>the fleet</a></p>"))
                            return
                        body = device_page(board_fleet, device_id, view.timeline(board_fleet, device_id), latches,
                                           view.events(board_fleet, device_id), view.wakes(board_fleet, device_id),
                                           view.is_detector(board_fleet, device_id))
                finally:
                    view.close()
            except Exception as exc:  # noqa: BLE001 (a database that went away mid-page: the same page)
                self._send(HTTPStatus.SERVICE_UNAVAILABLE,
                           _page("database unreachable", f"<p>{html.escape(_first_line(exc))}</p>"))
                return
            self._send(HTTPStatus.OK, body)

        def _send(self, status: HTTPStatus, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_args) -> None:  # requests are not news
            pass

    try:
        return ThreadingHTTPServer((host, port), Handler)
    except OSError as exc:
        fix = "check --host: an address of this machine" if isinstance(exc, socket.gaierror) or \
            exc.errno == errno.EADDRNOTAVAIL else "choose another --port"
        raise TinydriftError(f"cannot serve on {host}:{port}: {exc.strerror} ({fix})") from None


def serve(dsn: str, host: str = "127.0.0.1", port: int = 8050, *, fleet: str | None = None,
          stop_event: threading.Event | None = None, log: Callable[[str], None] | None = None) -> None:
    """Serve until `stop_event` (or Ctrl-C)."""
    log = log or logger.info
    view = FleetView(dsn, fleet)  # a database that cannot be read fails the start, not the first page
    try:
        view.check_schema()
        held = view.fleets()
        if fleet is not None and fleet not in held:  # a misspelt --fleet would show an empty page, silently
            log(f"fleet {fleet!r} has no device in the fleet store yet (fleets there: {', '.join(held) or 'none'}); "
                "its devices appear as the collectors store their frames")
    finally:
        view.close()
    server = make_server(dsn, host, port, fleet, log)
    log(f"dashboard on http://{server.server_address[0]}:{server.server_address[1]}/")
    stopper = None
    if stop_event is not None:
        stopper = threading.Thread(target=lambda: (stop_event.wait(), server.shutdown()), daemon=True)
        stopper.start()
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()


def _first_line(exc: Exception) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
