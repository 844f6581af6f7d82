"""`tinydrift monitor`: a live terminal view of a capture (rich): the latest scores against
their thresholds, the alarm state and the link counts, and a streaming detector's wakes. It
reads the capture database, so it can follow a `capture` running elsewhere; given a port it
runs the capture itself."""

from __future__ import annotations

import sqlite3
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from tinydrift.errors import TinydriftError
from tinydrift.frontend import SAMPLE_RATE
from tinydrift.link import protocol as P
from tinydrift.logbook.store import (AlarmSeverity, AnswerTally, DbSummary, ModelInfo, banner_commission_n, banner_fields, banner_labels,
                                     capture_ready, check_model_matches, device_hello, latest_frame, load_model_info, open_db,
                                     read_summary, recent_text, runs_no_monitor, severity_now, still_commissioning,
                                     summary_channels,
                                     NO_MONITOR)
from tinydrift.monitor.channels import moved_text
from tinydrift.monitor.config import ALARM_SENSOR_FAULT

NO_LEVEL = 1 << 30
DEFAULT_FRAC_BITS = 12


@dataclass
class WakeTally:
    """A streaming detector's DETECTION frames counted so far: read on from the last one seen
    at each refresh, so a long capture is never read again from the start."""

    last_id: int = 0
    frames: int = 0
    wakes: int = 0
    latest: P.Detection | None = None
    last_wake: P.Detection | None = None
    wake_at: list[tuple[int, int]] = field(default_factory=list)  # (frame id, inference index) of each wake

    def update(self, conn: sqlite3.Connection) -> "WakeTally":
        rows = conn.execute("SELECT id, raw FROM frames WHERE type=? AND foreign_model=0 AND id > ? ORDER BY id",
                            (int(P.FrameType.DETECTION), self.last_id)).fetchall()
        for row_id, raw in rows:
            frame = P.parse_packet(raw)
            self.last_id, self.frames, self.latest = row_id, self.frames + 1, frame
            if frame.wake:
                self.wakes += 1
                self.last_wake = frame
                self.wake_at.append((row_id, frame.inference_index))
        return self


@dataclass
class Snapshot:
    summary: DbSummary
    hello: P.Hello | None
    last: P.Inference | None
    warning: tuple[int, ...] | None
    drift: tuple[int, ...] | None
    frac_bits: int
    n_scores: int
    labels: list[str] | None
    text: list[str]
    rate: float  # inference frames per second over the last 10 s
    accuracy_before: float | None = None  # the device's estimate just before its change point
    heartbeat: P.Heartbeat | None = None  # the latest (the only summary a heartbeat-only device sends)
    detections: WakeTally = field(default_factory=WakeTally)  # a streaming detector's frames and wakes
    commission_n: int | None = 0  # inferences after a reset the monitor learns on (--model-dir, else the boot line; None: neither)
    channels: list[str] | None = None  # the input summary channels' names (--model-dir, else HELLO's count)
    severity: AlarmSeverity | None = None  # the latched alarms' impact, "now" as the report reads it
    boot_line_seen: bool = True  # the device's boot line is in the capture (it says whether a kept reference was taken)


def _heard(summary: DbSummary) -> int:
    """Everything a database holds that came from a port: frames, text lines, damaged bytes."""
    return summary.frames + summary.text_lines + summary.corrupt


def take_snapshot(conn: sqlite3.Connection, model: ModelInfo | None = None,
                  before_cache: dict[int, float | None] | None = None, wakes: WakeTally | None = None,
                  answers: AnswerTally | None = None) -> Snapshot:
    """The view's data now. `before_cache` keeps the accuracy estimate found before each
    change point between refreshes: finding it walks back over every frame since; `wakes`
    the detector frames counted so far; `answers` the answers since the alarm."""
    summary = read_summary(conn)
    hello = device_hello(conn)
    last = latest_frame(conn, P.FrameType.INFERENCE)
    warning = drift = None
    if model is not None and (model.warning_thresholds or model.drift_thresholds):
        warning, drift = model.warning_thresholds, model.drift_thresholds
    elif hello is not None:
        warning, drift = hello.warning_thresholds, hello.drift_thresholds
    accuracy_before = None
    if last is not None and last.alarm_bits & 0x1F and last.change_index:
        cache = {} if before_cache is None else before_cache
        if last.change_index not in cache:
            row = conn.execute("SELECT atc FROM frames WHERE type=2 AND foreign_model=0 AND inference_index < ? "
                               "ORDER BY id DESC LIMIT 1", (last.change_index,)).fetchone()
            cache[last.change_index] = row[0] / 65536.0 if row else None
        accuracy_before = cache[last.change_index]
    recent = conn.execute("SELECT COUNT(*), MIN(received_at), MAX(received_at) FROM frames WHERE type=2 AND "
                          "received_at >= (SELECT MAX(received_at) FROM frames) - 10").fetchone()
    rate = (recent[0] - 1) / (recent[2] - recent[1]) if recent[0] > 1 and recent[2] > recent[1] else 0.0
    n_scores = hello.n_scores if hello else (5 if last else 0)
    tally = (wakes or WakeTally()).update(conn)
    detector = tally.frames > 0 or (model is not None and model.detector is not None)
    banner = banner_fields(conn, hello)
    return Snapshot(summary, hello, last, warning, drift, hello.score_frac_bits if hello else DEFAULT_FRAC_BITS,
                    n_scores, model.labels if model and model.labels else banner_labels(banner, hello),
                    recent_text(conn, 5), rate, accuracy_before,
                    latest_frame(conn, P.FrameType.HEARTBEAT), tally,
                    banner_commission_n(banner, model.commission_n if model is not None else None),
                    summary_channels(model, hello),
                    severity_now(conn, last, accuracy_before, model, answers, tally.wake_at if detector else None)
                    if last is not None and last.alarm_bits & 0x1F
                    else None,
                    bool(banner))


def _state(value: int, warning: int | None, drift: int | None) -> Text:
    if drift is not None and 0 < drift < NO_LEVEL and value >= drift:
        return Text("DRIFT", style="bold white on red")
    if warning is not None and 0 < warning < NO_LEVEL and value >= warning:
        return Text("warning", style="bold yellow")
    return Text("ok", style="green")


def _bar(value: int, drift: int | None, width: int = 24) -> Text:
    if drift is None or not 0 < drift < NO_LEVEL:
        return Text("")
    filled = max(0, min(width, round(width * value / drift)))
    style = "red" if value >= drift else ("yellow" if filled > width // 2 else "green")
    return Text("█" * filled + "·" * (width - filled), style=style)


def render(snap: Snapshot) -> Group:
    scale = float(1 << snap.frac_bits)
    scores = Table(title="Drift scores (CUSUM, units of σ)", expand=False)
    for column in ("score", "value", "warning", "drift", "to drift level", "state"):
        scores.add_column(column, justify="right" if column in ("value", "warning", "drift") else "left")

    def level(levels, k):
        return levels[k] if levels is not None else None

    def fmt(v):
        return "—" if v is None or not 0 < v < NO_LEVEL else f"{v / scale:.2f}"

    if snap.last is not None:
        for k in range(max(1, snap.n_scores)):
            value = snap.last.scores[k]
            w, d = level(snap.warning, k), level(snap.drift, k)
            scores.add_row(P.SCORE_NAMES[k], f"{value / scale:.2f}", fmt(w), fmt(d), _bar(value, d), _state(value, w, d))

    s = snap.summary
    link = Table.grid(padding=(0, 2))
    link.add_column(style="bold")
    link.add_column()
    alarm_text = Text("none", style="green")
    last = snap.last
    if last is not None and last.alarm_bits:
        names = P.alarm_names(last.alarm_bits)
        latched = last.alarm_bits & 0x1F
        alarm_text = Text(", ".join(names), style="bold red" if latched else "bold yellow")
        if latched and last.alarm_index:
            alarm_text.append(f"  latched at inference {last.alarm_index}", style="red")
        if latched and snap.severity is not None:
            alarm_text.append(f"\n{snap.severity.impact()}", style="red")
    if last is None and not snap.detections.frames:
        # nothing says yet whether it alarms: a capture begun on an idle device held only its
        # STATUS, which carries no alarm bits, and the view said "none" of a latched DATA_DRIFT
        beat = snap.heartbeat
        alarm_text = (Text(", ".join(P.alarm_names(beat.alarm_bits)) or "none", style="bold red" if beat.alarm_bits & 0x1F
                           else "green") + Text(f"  (heartbeat at inference {beat.inference_index})")
                      if beat is not None else Text("unknown until the device's next inference frame", style="dim"))
    if runs_no_monitor(snap.hello):
        alarm_text = Text(NO_MONITOR, style="yellow")
    link.add_row("alarms", alarm_text)
    if last is not None:
        label = (snap.labels[last.predicted_class] if snap.labels and last.predicted_class < len(snap.labels)
                 else str(last.predicted_class))
        link.add_row("inference", f"{last.inference_index}  ({snap.rate:.1f}/s)")
        if (snap.commission_n is not None and 0 < last.inference_index <= snap.commission_n
                and not last.alarm_bits & 0x1F):
            unless = ("" if snap.boot_line_seen else " (unless it took back a reference kept from an earlier boot: "
                      "the boot line, which says, came before this capture)")
            link.add_row("commissioning", Text(f"learning this device's reference{unless}: inference "
                                               f"{last.inference_index} of {snap.commission_n} since the reset; the "
                                               "scores judge none of them (sensor faults and label feedback do)",
                                               style="cyan"))
        elif snap.commission_n is None and not runs_no_monitor(snap.hello):
            perhaps = still_commissioning(None, last.inference_index, bool(last.alarm_bits & 0x1F), "the capture so far")
            if perhaps:
                link.add_row("commissioning", Text(perhaps, style="cyan"))
        link.add_row("prediction", f"{label}  confidence {last.confidence / 256:.0%}  entropy {last.entropy / 65536:.2f} nats")
        link.add_row("ATC accuracy", "withheld (sensor fault)" if last.alarm_bits & ALARM_SENSOR_FAULT
                     else f"{last.atc / 65536:.1%}")
        link.add_row("moved channels", moved_text(last.moved_channels, snap.channels))
    tally = snap.detections
    if tally.frames:
        detection = tally.latest
        cooling = ", cooling" if detection.flags & P.DETECTION_FLAG_COOLING else ""
        link.add_row("detector", f"inference {detection.inference_index}: probability {detection.probability / 256:.2f}, "
                     f"window mean {detection.window_mean / 256:.2f}{cooling}")
        woke = Text(f"{tally.wakes} in {tally.frames} detector frames", style="bold" if tally.wakes else "")
        if tally.last_wake is not None:
            woke.append(f"; the last at inference {tally.last_wake.inference_index} "
                        f"({tally.last_wake.stream_position / SAMPLE_RATE:.1f} s into its stream)")
        link.add_row("wakes", woke)
    link.add_row("frames", f"{s.frames}  (inferences {s.inference_frames})")
    link.add_row("lost / corrupt / foreign", f"{s.lost} / {s.corrupt} / {s.foreign}")
    link.add_row("restarts / reopens", f"{s.restarts} / {s.reopens}")
    link.add_row("model", (s.expected_hash or "unknown")[:16])
    if snap.hello is not None:
        link.add_row("firmware", f"{snap.hello.fw_version}, monitor state {snap.hello.state_bytes} B")
        link.add_row("device", snap.hello.device_text)
    beat = snap.heartbeat
    if beat is not None:
        top = max(range(P.HEARTBEAT_CLASSES), key=lambda c: beat.class_share[c])
        top_name = snap.labels[top] if snap.labels and top < len(snap.labels) else str(top)
        link.add_row("heartbeat", f"inference {beat.inference_index}, last {beat.window}: "
                     f"{', '.join(P.alarm_names(beat.alarm_bits)) or 'no alarm'}, mostly {top_name} "
                     f"({beat.class_share[top] / 255:.0%}), confidence {beat.mean_confidence / 256:.0%}")
    idle = "no monitor on this detector: wakes below" if tally.frames else "no inference frames yet"
    parts = [scores if snap.last is not None else Text(idle, style="dim"),
             Panel(link, title="alarm and link", expand=False)]
    if snap.text:
        parts.append(Panel("\n".join(snap.text), title="device text", expand=False, style="dim"))
    return Group(*parts)


def run_monitor(db_path: str | Path | None = None, port_url: str | None = None, model_dir: str | Path | None = None,
                once: bool = False, duration: float | None = None, refresh: float = 0.5,
                console: Console | None = None) -> Snapshot:
    """Show the view; with `once`, print one snapshot and return it. With a port, capture
    into `db_path` (or a temporary file) in a background thread meanwhile."""
    console = console or Console()
    model = load_model_info(model_dir) if model_dir is not None else None
    stop = threading.Event()
    worker = None
    failure: list[BaseException] = []
    tmp = None
    heard_before = 0  # what the database held from earlier sessions: --once says if nothing came
    if port_url is not None:
        from tinydrift.logbook.capture import capture

        if db_path is None:
            tmp = tempfile.TemporaryDirectory(prefix="tinydrift-monitor-")
            db_path = Path(tmp.name) / "monitor.db"
        elif capture_ready(db_path):
            earlier = open_db(db_path)
            try:
                heard_before = _heard(read_summary(earlier))
            finally:
                earlier.close()

        def run():
            try:
                summary = capture(port_url, db_path, model_dir=model_dir, stop_event=stop, reconnect_timeout=None,
                                  log=lambda m: None)
                if summary.problem is not None and not stop.is_set():  # e.g. the device runs another model
                    failure.append(TinydriftError(summary.problem))
            except BaseException as exc:  # shown by the foreground loop
                failure.append(exc)

        worker = threading.Thread(target=run, daemon=True)
        worker.start()
        # capture makes the database, then opens the port: a bad URL shows up as a failure,
        # and the database is read once its tables are there (the file comes a moment before)
        deadline = time.monotonic() + 5
        while not capture_ready(db_path) and time.monotonic() < deadline and not failure:
            time.sleep(0.02)
        waited = time.monotonic()
        if once and not failure:
            time.sleep(duration if duration is not None else 2.0)
        waited = time.monotonic() - waited
    conn = None
    try:
        if failure:
            raise failure[0]
        conn = open_db(db_path)
        if model is not None and port_url is None:
            check_model_matches(conn, model)  # with a port, capture sets other models' frames apart itself
        if once:
            snap = take_snapshot(conn, model)
            if port_url is not None and _heard(snap.summary) == heard_before:
                from tinydrift.logbook.capture import SILENT_PORT

                raise TinydriftError(f"nothing received from {port_url} in {waited:.1f} s: {SILENT_PORT}")
            console.print(render(snap))
            return snap
        started = time.monotonic()
        before_cache: dict[int, float | None] = {}
        wakes, answers = WakeTally(), AnswerTally()
        snap = take_snapshot(conn, model, before_cache, wakes, answers)
        with Live(render(snap), console=console, refresh_per_second=max(1, int(1 / refresh))) as live:
            try:
                while duration is None or time.monotonic() - started < duration:
                    time.sleep(refresh)
                    if failure:
                        raise failure[0]
                    snap = take_snapshot(conn, model, before_cache, wakes, answers)
                    live.update(render(snap))
            except KeyboardInterrupt:
                pass
        return snap
    finally:
        if conn is not None:
            conn.close()  # a reader's last close removes the -wal and -shm files SQLite made
        stop.set()
        if worker is not None:
            worker.join(timeout=5)
        if tmp is not None:
            tmp.cleanup()
