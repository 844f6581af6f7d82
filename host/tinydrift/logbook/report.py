"""`tinydrift report`: plots and one HTML page from a capture database.

Scores over the inference index with their warning and drift levels and the alarms marked;
the label-free accuracy estimate (ATC); confidence and entropy. Thresholds come from the
model directory's JSON when given, else from the device's last HELLO. Where the truth of a
test stream is known (`--truth`: where the shift began and the true label of each
inference), it is marked beside what the device saw: the true shift, the alarm's delay, and
the true accuracy beside the estimate. A streaming detector's DETECTION frames (a wake-word
model) add its probability and sliding-window mean against the cutoff, and a table of its
wake events.
"""

from __future__ import annotations

import html
import json
import os
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from tinydrift.atomic import all_or_nothing, atomic_path, write_text  # noqa: E402
from tinydrift.errors import TinydriftError  # noqa: E402
from tinydrift.link import protocol as P  # noqa: E402
from tinydrift.link.replay import ACK_RESULTS  # noqa: E402
from tinydrift.frontend import SAMPLE_RATE  # noqa: E402
from tinydrift.monitor.channels import moved_text  # noqa: E402
from tinydrift.monitor.accuracy_estimate import accuracy_estimate  # noqa: E402
from tinydrift.logbook.store import AlarmSeverity, DbSummary, alarm_severity, banner_commission_n, banner_fields, check_model_matches, confident_by_class, device_hello, heard_mix, label_runs, LABEL_STATES, load_model_info, ModelInfo, open_db, read_detections, read_inferences, read_labels, read_summary, monitor_resets, reference_in_effect, run_starts, runs_no_monitor, still_commissioning, summary_channels, NO_MONITOR  # noqa: E402

DEFAULT_FRAC_BITS = 12  # td_monitor's CUSUMs are Q12
NO_LEVEL = 1 << 30  # td_monitor's "never" level (TD_CUSUM_MAX)
ALARM_COLOURS = ("#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f")


@dataclass
class Thresholds:
    warning: tuple[int, ...] | None
    drift: tuple[int, ...] | None
    frac_bits: int
    n_scores: int | None
    source: str
    detector: dict | None = None  # a streaming detector's parameters (detector.json), from --model-dir


@dataclass
class Truth:
    """What a test stream really held: the inference index (1-based, since the device's
    reset) where the shift began, and the true class of inference i at labels[i - 1]."""
    shift_index: int | None
    labels: np.ndarray | None

    @classmethod
    def load(cls, path: str | Path) -> "Truth":
        """From JSON: {"shift_index": 301, "labels": [3, 0, 11, ...]} (either may be null)."""
        path = Path(path)
        try:
            data = json.loads(path.read_text())
            if not isinstance(data, dict):
                raise ValueError(f"a JSON {type(data).__name__}, not an object")
            unknown = sorted(set(data) - {"shift_index", "labels"})
            if unknown:  # a misspelt key ("shift") once gave a report without any truth, and exit 0
                raise ValueError(f"unknown key{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))}")
            shift = data.get("shift_index")
            labels = data.get("labels")
            if shift is not None and (not isinstance(shift, int) or isinstance(shift, bool) or shift < 1):
                raise ValueError("shift_index must be an inference index >= 1")
            if labels is not None:
                if not isinstance(labels, list) or not all(type(v) is int and v >= -1 for v in labels):
                    raise ValueError("labels must be a list of class indices (-1 where the class is not known)")
                labels = np.asarray(labels, dtype=np.int64).reshape(-1)
        except (OSError, ValueError, TypeError, AttributeError) as exc:
            raise TinydriftError(f"truth file {path}: {exc} (expected JSON like "
                                 '{"shift_index": 301, "labels": [3, 0, 11]})') from exc
        return cls(shift, labels)

    def check(self, last_index: int, n_classes: int | None, top_predicted: int) -> None:
        """Refuse a truth that cannot be this capture's: a shift after its last inference,
        a class its model does not have, fewer labels than inferences. Without `n_classes`
        (no HELLO, no model folder) only a class the device predicted (0..`top_predicted`)
        is surely one of its model's."""
        if self.shift_index is not None and self.shift_index > last_index:
            raise TinydriftError(f"--truth: shift_index {self.shift_index} is after the capture's last inference "
                                 f"({last_index}): give the truth file of this capture")
        top = int(self.labels.max()) if self.labels is not None and self.labels.size else -1
        if n_classes is not None and top >= n_classes:
            raise TinydriftError(f"--truth: label {top} is not a class of the captured model "
                                 f"(0-{n_classes - 1}): give the truth file of this capture")
        if n_classes is None and top > top_predicted:
            # counted as wrong on every inference it labels, it would lower the true accuracy unseen
            raise TinydriftError(f"--truth: label {top} is beyond the classes the device predicted (0-{top_predicted}), "
                                 "and the capture has no HELLO frame (sent at boot) to give its model's class count: "
                                 "give --model-dir, the model folder the device runs")
        if self.labels is not None and len(self.labels) < last_index:
            raise TinydriftError(f"--truth: labels for {len(self.labels)} inferences, and the capture holds {last_index}: "
                                 "give one label per inference (-1 where the class is not known)")

    def to_json(self) -> str:
        labels = None if self.labels is None else [int(v) for v in self.labels]
        return json.dumps({"shift_index": self.shift_index, "labels": labels})


def _truth_rows(truth: Truth, data: dict, summary: DbSummary, accuracy: dict,
                true_severity: tuple[float | None, float | None] | None = None,
                prior: np.ndarray | None = None, atc_threshold: int | None = None) -> list[tuple[str, str]]:
    """The HTML rows comparing the device with the truth: shift, delay, accuracy before and
    after (true, and the label-free estimate over the same inferences), and over the first
    severity line's spans."""
    rows = []
    shift = truth.shift_index
    if shift is not None:
        rows.append(("true shift", f"inference {shift}"))
        if summary.first_alarm:
            # counted as the demo and the drift bench count: an alarm on the shift's first
            # inference comes 1 inference after it
            first = summary.first_alarm[0]
            rows.append(("first alarm after the shift", f"{first - shift + 1} inferences" if first >= shift
                         else f"{shift - first} inferences BEFORE it (a false alarm)"))
    for name, (true, known) in accuracy.items():  # true_accuracy's
        rows.append((f"accuracy {name} the shift" if shift is not None else "accuracy",
                     f"true {100 * true:.1f} %, {_span_estimate(data, known, prior, atc_threshold)}"
                     f" over {int(known.sum())} inferences"))
    if true_severity is not None:
        rows.append(("true accuracy beside the severity line", _true_severity_text(true_severity)))
    return rows


def _span_estimate(data: dict, span: np.ndarray, prior: np.ndarray | None, atc_threshold: int | None) -> str:
    """The label-free estimate over the inferences of `span`, made as a severity line makes its
    "now" (accuracy_estimate, the alarms latched at the span's end); without the model
    folder's ATC level, the device's running ATC averaged over them, named as such (it lags,
    and a model confidently wrong keeps it high: a trial's page read 91.6 % beside a true 25 %
    where the severity line, from the folder, read 27.1 %)."""
    confident = confident_by_class(data, span, prior, atc_threshold)
    if confident is None:
        return f"the device's running ATC {100 * float(np.mean(data['atc'][span])) / 65536:.1f} % (averaged)"
    n = int(span.sum())
    last = int(np.flatnonzero(span)[-1])
    alarms = int(data["alarm_bits"][last]) & 0x1F
    # the class mix is the one the span's run heard before its first alarm's change point
    start = max(b for b in run_starts(data["inference_index"]) if b <= last)
    run = {k: v[start:last + 1] for k, v in data.items()}
    return accuracy_estimate(int(confident.sum()) / n, confident, n, heard_mix(run, prior), alarms).text()


def _true_severity_text(true_severity: tuple[float | None, float | None]) -> str:
    """"92.4 % before the estimated change point, 77.1 % since the alarm": the truth over the
    severity line's spans (the estimated change point, not the true shift)."""
    spans = ("before the estimated change point", "since the alarm")
    parts = [f"{100 * t:.1f} % {span}" for t, span in zip(true_severity, spans) if t is not None]
    return ", ".join(parts)


def _true_severity(truth: Truth, data: dict, severity: AlarmSeverity) -> tuple[float | None, float | None] | None:
    """The true accuracy over the first severity line's spans: (before its change point,
    over the answers since its alarm), None where no frame there has a known label."""
    correct = _true_correct(truth, data)
    if correct is None:
        return None
    index = data["inference_index"]
    spans = (index < severity.change_index if severity.change_index else np.zeros(len(index), bool),
             index > severity.latched_at)
    out = tuple(float(correct[m].mean()) if m.any() else None for m in (s & (correct >= 0) for s in spans))
    return None if out == (None, None) else out


def true_accuracy(truth: Truth, data: dict, monotonic: bool) -> dict[str, tuple[float, np.ndarray]]:
    """The device's accuracy against the truth's labels, "before" and "after" its shift (or
    "all"): (accuracy, mask of the frames with a known label), for parts with any."""
    correct = _true_correct(truth, data) if monotonic else None
    if correct is None:
        return {}
    index, shift = data["inference_index"], truth.shift_index
    parts = [("before", index < shift), ("after", index >= shift)] if shift is not None else [("all", index > 0)]
    out = {}
    for name, mask in parts:
        known = mask & (correct >= 0)
        if known.any():
            out[name] = (float(correct[known].mean()), known)
    return out


def _true_correct(truth: Truth, data: dict) -> np.ndarray | None:
    """Per inference frame: 1 right, 0 wrong, -1 no label known."""
    if truth.labels is None or len(truth.labels) == 0:
        return None
    index = data["inference_index"]
    has = (index >= 1) & (index <= len(truth.labels))
    label = np.where(has, truth.labels[np.clip(index - 1, 0, max(len(truth.labels) - 1, 0))], -1)
    return np.where(label < 0, -1, (data["predicted_class"] == label).astype(np.int64))


@dataclass
class WakeEvent:
    """One detection of a streaming detector, as its DETECTION frame reported it."""

    inference_index: int
    stream_seconds: float  # where in its stream (since boot, or since a replayed clip's START)
    window_mean: int  # the sliding window's mean probability, 1/256
    received_at: float  # Unix s


@dataclass
class ReportResult:
    out_dir: Path
    files: list[Path]
    summary: DbSummary
    inference_frames: int
    severities: list[AlarmSeverity]
    detection_frames: int = 0
    wakes: list[WakeEvent] = field(default_factory=list)
    true_accuracy: dict[str, float] = field(default_factory=dict)  # with a truth: "before"/"after" its shift
    commissioning: str | None = None  # why no alarm could come yet (the capture ends while the monitor learns)
    true_severity: tuple[float | None, float | None] | None = None  # with a truth: over the first severity line's spans
    runs: int = 1  # runs of the device's inference count (it starts again after a RESET or a restart)
    first_alarm_run: int = 1  # the run the first alarm latched in
    truth_unread: str | None = None  # why a truth given was not read against the inferences
    reference: str | None = None  # the reference in effect, as the app's line said (reference_text)

    def line(self) -> str:
        s = self.summary
        alarm = (f"first alarm at inference {s.first_alarm[0]}{_of_run(self.first_alarm_run, self.runs)} "
                 f"({', '.join(s.first_alarm[1])})" if s.first_alarm else "no alarm")
        if self.severities:
            alarm += f": {self.severities[0].impact()}"
            if self.true_severity is not None:
                alarm += f"; true accuracy {_true_severity_text(self.true_severity)}"
        detections = (f", {self.detection_frames} detector frames with {len(self.wakes)} "
                      f"wake{'' if len(self.wakes) == 1 else 's'}"
                      if self.detection_frames else "")
        if self.commissioning:
            alarm += f" ({self.commissioning})"
        if self.truth_unread:
            alarm += f"; {self.truth_unread}"
        return (f"report {self.out_dir / 'index.html'}: {s.frames} frames ({self.inference_frames} inferences"
                f"{detections}), {s.lost} lost, {s.corrupt} corrupt, {s.foreign} foreign; {alarm}")


# A dead share the report points out: a sensor failing on and off as the device learned
# its reference is learned as normal. Working microphones read this much only where the
# room's pauses fall to exact zeros: 6 of the wake-word bench's 64 held-out rooms (up to 36 %),
# real recordings turned down 36 dB (14 %); the keyword bench's rooms none.
DEAD_SHARE_NOTED = 10.0


def reference_text(fields: dict[str, str]) -> str | None:
    """What the app's reference line says, for people: kept or learned, and the share of the
    sensor's blocks dead while it was learned, which the test of a sensor that fails on and
    off allows for (unless the line says that test is off); None without such a line."""
    how = {"kept": "kept from an earlier boot", "learned": "learned on the device"}.get(fields.get("reference", ""))
    dead = fields.get("dead", "")
    try:
        share = float(dead.rstrip("%"))
    except ValueError:
        return None
    if how is None:
        return None
    test = ("the test of a sensor that fails on and off is off on this device" if fields.get("dead_test") == "off"
            else "the test of a sensor that fails on and off allows that share, plus its margin")
    text = f"{how}; {share:.1f} % of the sensor's blocks were dead while it was learned ({test})"
    if share >= DEAD_SHARE_NOTED:
        text += ("; a working microphone reads that much only in a room so quiet that its pauses fall to exact zeros, "
                 "and a sensor already failing as the device learned is taken as normal: unless the room is that "
                 "quiet, check the sensor, and reset the monitor (`tinydrift replay --reset`) once it is mended")
    return text


def _of_run(run: int, runs: int) -> str:
    """" of run 2 of 3" where the capture holds more than one run of the inference count."""
    return f" of run {run} of {runs}" if runs > 1 else ""


def _restart_text(runs: int, resets: int, restarts: int) -> str:
    """Why the device's inference count started again, for a plot's axis."""
    why = ", ".join(f"{k} {what}{'' if k == 1 else 's'}" for k, what in ((resets, "monitor reset"),
                                                                        (restarts, "device restart")) if k)
    return (f"inference (arrival order; the device's count starts again at each grey line: "
            f"{runs - 1} time{'' if runs == 2 else 's'}{f', {why}' if why else ''})")


def _moved_at_alarm(data: dict, info: ModelInfo | None, hello) -> str | None:
    """The input summary channels the first alarm's frame marks as moved, named where the
    model folder or HELLO's channel count tells their layout."""
    latched = np.flatnonzero(data["alarm_bits"] & 0x1F)
    if not latched.size:
        return None
    return moved_text(int(data["moved_channels"][latched[0]]), summary_channels(info, hello))


def _wake_events(detections: dict) -> list[WakeEvent]:
    return [WakeEvent(int(detections["inference_index"][i]), detections["stream_position"][i] / SAMPLE_RATE,
                      int(detections["window_mean"][i]), float(detections["received_at"][i]))
            for i in np.flatnonzero(detections["wake"])]


def _broken_at_gaps(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(x, y) with a NaN wherever inferences are missing (frames lost on the link), so that a
    line is not drawn across what was never received."""
    gaps = np.flatnonzero(np.diff(x) > 1) + 1
    return (np.insert(np.asarray(x, dtype=np.float64), gaps, np.nan),
            np.insert(np.asarray(y, dtype=np.float64), gaps, np.nan))


def _plot_detections(detections: dict, thresholds: Thresholds, out_dir: Path, resets: int, restarts: int) -> Path:
    """The detector's probability and its window's mean over the inferences, the cutoff, and
    each wake marked."""
    index = detections["inference_index"]
    starts = run_starts(index)
    monotonic = len(starts) == 1
    x = index.astype(np.float64) if monotonic else np.arange(len(index), dtype=np.float64)
    fig, ax = plt.subplots(figsize=(10, 3.2))
    ax.plot(*_broken_at_gaps(x, detections["probability"] / 256.0), lw=0.6, color="#9ecae1", label="probability")
    ax.plot(*_broken_at_gaps(x, detections["window_mean"] / 256.0), lw=1.2, color="#1f77b4", label="sliding-window mean")
    if thresholds.detector is not None:
        ax.axhline(thresholds.detector["probability_cutoff"] / 256.0, color="#d62728", ls="--", lw=1, label="cutoff")
    for k, at in enumerate(x[detections["wake"]]):
        ax.axvline(at, color="#2ca02c", lw=1.2, alpha=0.8, label="wake" if k == 0 else None)
    _mark_alarms(ax, [], None, label=True, run_x=[x[k] - 0.5 for k in starts[1:]])
    ax.set_ylim(0, 1)
    ax.set_ylabel("wake-word probability")
    ax.set_xlabel("inference index" if monotonic else _restart_text(len(starts), resets, restarts))
    ax.set_title("Streaming detector: probability, sliding-window mean and wakes")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", fontsize=7, ncol=4)
    fig.tight_layout()
    return _save(fig, out_dir / "detections.png")


def _thresholds(conn, info: ModelInfo | None) -> Thresholds:
    hello = device_hello(conn)
    frac = hello.score_frac_bits if hello else DEFAULT_FRAC_BITS
    n_scores = hello.n_scores if hello else None
    if info is not None:
        check_model_matches(conn, info)
        if info.warning_thresholds or info.drift_thresholds:
            return Thresholds(info.warning_thresholds, info.drift_thresholds, frac, n_scores, f"model dir {info.source}",
                              info.detector)
        detector = info.detector
    else:
        detector = None
    if runs_no_monitor(hello):
        return Thresholds(None, None, frac, n_scores, "none: the device runs no drift monitor", detector)
    if hello is not None:
        # a HELLO read from a STATUS is no frame of its own (raw empty): the capture began after the boot
        said = "device HELLO" if hello.raw else "device STATUS (the capture began after its boot)"
        return Thresholds(hello.warning_thresholds, hello.drift_thresholds, frac, n_scores, said, detector)
    return Thresholds(None, None, frac, n_scores, "none known", detector)


def _alarm_onsets(alarm_bits: np.ndarray, x: np.ndarray, starts: list[int]) -> list[tuple[float, str, int]]:
    """(x, name, type) where each latched alarm type first appears in each run of the
    inference count (a reset clears the alarms, and a later run may latch them again)."""
    onsets = []
    for start, end in zip(starts, [*starts[1:], len(alarm_bits)]):
        for t, name in enumerate(P.ALARM_NAMES):
            hit = np.flatnonzero(alarm_bits[start:end] & (1 << t))
            if hit.size:
                onsets.append((float(x[start + hit[0]]), name, t))
    return onsets


def _change_x(data: dict, x: np.ndarray, starts: list[int]) -> tuple[float | None, int]:
    """Where the plots draw the first alarm's estimated change point (None: nowhere), and
    the run of the inference count that alarm latched in. A change point before the run's
    first captured frame (a capture begun late) has no place on the axis: drawn at that
    frame, it read as a change there (the page says where it was)."""
    index = data["inference_index"]
    latched = np.flatnonzero(data["alarm_bits"] & 0x1F)
    if not latched.size:
        return None, 1
    run = int(np.searchsorted(starts, latched[0], side="right"))
    change, start = int(data["change_index"][latched[0]]), starts[run - 1]
    if change <= 0 or change < index[start]:
        return None, run
    return float(x[start + np.searchsorted(index[start:latched[0] + 1], change)]), run


def _mark_alarms(ax, onsets, change_x, label: bool, true_shift: float | None = None, run_x=()) -> None:
    for k, x in enumerate(run_x):
        ax.axvline(x, color="grey", lw=1.2, ls="-.", alpha=0.7,
                   label="inference count starts again" if label and k == 0 else None)
    for k, (x, name, t) in enumerate(onsets):
        first = all(other != name for _, other, _ in onsets[:k])  # one legend entry a type
        # alarms latched at one inference share a line: dashes of each colour in turn, so
        # that none hides under another
        together = [other for at, other, _ in onsets if at == x]
        style = "-" if len(together) == 1 else (4 * together.index(name), (4, 4 * (len(together) - 1)))
        ax.axvline(x, color=ALARM_COLOURS[t % len(ALARM_COLOURS)], lw=1.5, alpha=0.9, ls=style,
                   label=f"{name} alarm" if label and first else None)
    if change_x is not None:
        ax.axvline(change_x, color="black", lw=1, ls=":", label="estimated change point" if label else None)
    if true_shift is not None:
        ax.axvline(true_shift, color="#2ca02c", lw=2, ls="--", alpha=0.8, label="true shift" if label else None)


def _save(fig, path: Path) -> Path:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    return path


# Every file a report may write into its folder.
REPORT_FILES = {"scores.png", "atc.png", "confidence.png", "detections.png", "index.html"}


def write_report(db_path: str | Path, out_dir: str | Path, model_dir: str | Path | None = None,
                 truth: Truth | None = None) -> ReportResult:
    """The report's images and page in `out_dir`, all of them or, on an error or Ctrl-C,
    none (an interrupted report once left images without their page)."""
    conn = open_db(db_path)
    try:
        with all_or_nothing():
            result = _write_report(conn, db_path, out_dir, model_dir, truth)
    finally:
        conn.close()  # a reader's last close removes the -wal and -shm files SQLite made
    # an earlier report's plots this one did not make (a detector's beside a classifier's)
    # would stand beside it as if they were its own
    for name in sorted(REPORT_FILES - {f.name for f in result.files}):
        (Path(out_dir) / name).unlink(missing_ok=True)
    return result


def _write_report(conn: sqlite3.Connection, db_path: str | Path, out_dir: str | Path, model_dir: str | Path | None,
                  truth: Truth | None) -> ReportResult:
    out_dir = Path(out_dir)
    summary = read_summary(conn)
    data = read_inferences(conn)
    info = load_model_info(model_dir) if model_dir is not None else None
    thresholds = _thresholds(conn, info)
    hello = device_hello(conn)
    files: list[Path] = []
    n = len(data["inference_index"])
    if truth is not None and not n:
        # the truth speaks of inferences and their classes: a detector's capture (DETECTION
        # frames) or one without inferences has nothing to hold it against
        raise TinydriftError("--truth: the capture holds no INFERENCE frames (a wake-word detector sends DETECTION "
                             "frames, with no class per inference), so there is nothing to compare a truth with: "
                             "drop --truth")
    if truth is not None and n:
        # a capture begun after the device's boot has no HELLO: the model folder knows the classes too
        n_classes = (hello.n_classes if hello is not None else
                     len(info.labels) if info is not None and info.labels else None)
        truth.check(int(data["inference_index"].max()), n_classes, int(data["predicted_class"].max()))

    index = data["inference_index"]
    # The device's count starts again at a RESET or a restart: then the plots run in arrival
    # order, a grey line where each run begins, and the page names each alarm's run.
    starts = run_starts(index) if n else [0]
    runs = len(starts)
    monotonic = runs == 1
    x = index.astype(np.float64) if monotonic else np.arange(n, dtype=np.float64)
    resets = monitor_resets(conn)  # parses every ACK frame: once a report
    x_label = "inference index" if monotonic else _restart_text(runs, resets, summary.restarts)
    run_x = [x[k] - 0.5 for k in starts[1:]]
    onsets = _alarm_onsets(data["alarm_bits"], x, starts) if n else []
    change_x, first_alarm_run = _change_x(data, x, starts) if n else (None, 1)
    true_shift = float(truth.shift_index) if truth is not None and truth.shift_index and monotonic else None
    labels = read_labels(conn)
    taken_in = label_runs(labels, data) if n else [None] * len(labels)

    if n:
        scale = float(1 << thresholds.frac_bits)
        used = [k for k in range(P.N_SCORES)
                if (thresholds.n_scores is not None and k < thresholds.n_scores)
                or np.any(data["scores"][:, k] != 0)]
        if not used:
            used = [0]
        label_x, label_wrong, label_share = label_points(labels, taken_in, data, x, starts)
        rows = len(used) + (1 if len(label_x) else 0)
        fig, axes = plt.subplots(rows, 1, figsize=(10, 1.9 * rows + 1.0), sharex=True, squeeze=False)
        for row, k in enumerate(used):
            ax = axes[row, 0]
            ax.plot(*_broken_at_gaps(x, data["scores"][:, k] / scale), lw=1, color="#1f77b4", label="score (CUSUM)")
            for levels, colour, name in ((thresholds.warning, "#ff7f0e", "warning"), (thresholds.drift, "#d62728", "drift")):
                if levels is not None and 0 < levels[k] < NO_LEVEL:
                    ax.axhline(levels[k] / scale, color=colour, ls="--", lw=1, label=f"{name} level")
            _mark_alarms(ax, onsets, change_x, label=(row == 0), true_shift=true_shift, run_x=run_x)
            ax.set_ylabel(P.SCORE_NAMES[k])
            ax.grid(alpha=0.3)
        if len(label_x):
            # what the ERROR_RATE test reads: the labels sent back against the model's answers
            ax = axes[-1, 0]
            ax.step(label_x, 100 * label_share, where="post", color="#8c564b", lw=1.2,
                    label="labels that disagreed, share so far this run")
            ax.plot(label_x[label_wrong], np.full(int(label_wrong.sum()), 100.0), "x", color="#d62728", ms=4,
                    label="a label that disagreed")
            ax.plot(label_x[~label_wrong], np.zeros(int((~label_wrong).sum())), "|", color="#2ca02c", ms=6,
                    label="a label that agreed")
            _mark_alarms(ax, onsets, change_x, label=False, true_shift=true_shift, run_x=run_x)
            ax.set_ylabel("labels wrong (%)")
            ax.set_ylim(-5, 105)
            ax.grid(alpha=0.3)
            ax.legend(loc="center left", fontsize=7, ncol=3)  # the marks sit at 0 and 100
        axes[0, 0].legend(loc="upper left", fontsize=7, ncol=3)
        axes[0, 0].set_title(f"Drift scores (thresholds: {thresholds.source}; units of σ, Q{thresholds.frac_bits})")
        axes[-1, 0].set_xlabel(x_label)
        fig.tight_layout()
        files.append(_save(fig, out_dir / "scores.png"))

        fig, ax = plt.subplots(figsize=(10, 3.2))
        ax.plot(*_broken_at_gaps(x, data["atc"] / 65536.0 * 100), color="#2ca02c", lw=1.2, label="ATC accuracy estimate")
        correct = _true_correct(truth, data) if truth is not None and monotonic else None
        if correct is not None and (correct >= 0).any():
            # the true accuracy over the same horizon the device's running estimate sees
            window = max(1, min(64, n // 10))
            known = (correct >= 0).astype(np.float64)
            hits = np.convolve(np.where(correct > 0, 1.0, 0.0), np.ones(window), mode="full")[:n]
            seen = np.convolve(known, np.ones(window), mode="full")[:n]
            with np.errstate(invalid="ignore", divide="ignore"):
                ax.plot(*_broken_at_gaps(x, 100 * hits / seen), color="black", lw=1, alpha=0.8, label=f"true accuracy (last {window})")
        _mark_alarms(ax, onsets, change_x, label=True, true_shift=true_shift, run_x=run_x)
        ax.set_ylabel("estimated accuracy (%)")
        ax.set_xlabel(x_label)
        ax.set_ylim(0, 100)
        ax.set_title("Label-free accuracy estimate (share of confident inferences, ATC)")
        ax.grid(alpha=0.3)
        ax.legend(loc="lower left", fontsize=7)
        fig.tight_layout()
        files.append(_save(fig, out_dir / "atc.png"))

        fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(10, 4.6), sharex=True)
        window = max(1, min(50, n // 10))
        kernel = np.ones(window) / window
        confidence = data["confidence"] / 256.0
        entropy = data["entropy"] / 65536.0
        for ax, values, name, colour in ((ax1, confidence, "confidence", "#1f77b4"), (ax2, entropy, "entropy (nats)", "#9467bd")):
            ax.plot(x, values, ".", ms=2, alpha=0.25, color=colour, label="per inference")
            if n >= window:
                ax.plot(x[window - 1:], np.convolve(values, kernel, mode="valid"), color=colour, lw=1.5,
                        label=f"mean of {window}")
            _mark_alarms(ax, onsets, change_x, label=False, true_shift=true_shift, run_x=run_x)
            ax.set_ylabel(name)
            ax.grid(alpha=0.3)
            ax.legend(loc="upper left", fontsize=7)
        ax1.set_title("Model output: top-class confidence and entropy")
        ax2.set_xlabel(x_label)
        fig.tight_layout()
        files.append(_save(fig, out_dir / "confidence.png"))

    detections = read_detections(conn)
    wakes = _wake_events(detections)
    if len(detections["id"]):
        files.append(_plot_detections(detections, thresholds, out_dir, resets, summary.restarts))

    files.append(out_dir / "index.html")
    accuracy = true_accuracy(truth, data, monotonic) if truth is not None and n else {}
    prior, atc_threshold = (info.class_prior, info.atc_threshold) if info is not None else (None, None)
    banner = banner_fields(conn, hello)
    reference = None if runs_no_monitor(hello) else reference_text(reference_in_effect(conn))
    commission_n = banner_commission_n(banner, info.commission_n if info is not None else None)
    commissioning = NO_MONITOR if runs_no_monitor(hello) else (
        still_commissioning(commission_n, int(index[-1]), bool(np.any(data["alarm_bits"][starts[-1]:] & 0x1F)),
                            "this capture" if runs == 1 else f"its last run of the inference count (run {runs})",
                            boot_line_seen=bool(banner))
        if n else None)
    severities = alarm_severity(data, prior, atc_threshold, detections, labels) if n else []
    true_severity = (_true_severity(truth, data, severities[0])
                     if truth is not None and severities and monotonic else None)
    # a truth file describes one stream from a reset: read against several runs of the count, its
    # accuracy rows once just vanished (trial 19)
    truth_unread = (f"--truth not read against the inferences: the capture holds {runs} runs of the device's "
                    "inference count (a RESET or a restart starts one), and a truth file describes one; capture "
                    "that run into a database of its own" if truth is not None and runs > 1 else None)
    truth_rows = (([("truth", truth_unread)] if truth_unread else [])
                  + _truth_rows(truth, data, summary, accuracy, true_severity, prior, atc_threshold)
                  if truth is not None else [])
    answers = [None if found is None else found[1] for found in taken_in]
    write_text(out_dir / "index.html", _html(db_path, summary, thresholds, hello, files[:-1], n, truth_rows,
                                             severities, len(detections["id"]), wakes, labels, commissioning,
                                             runs, first_alarm_run, resets,
                                             _moved_at_alarm(data, info, hello),
                                             tuple(info.labels) if info is not None else None, answers,
                                             reference))
    return ReportResult(out_dir, files, summary, n, severities, len(detections["id"]), wakes,
                        {name: true for name, (true, _) in accuracy.items()}, commissioning, true_severity,
                        runs, first_alarm_run, truth_unread, reference)


def _wakes_html(detection_frames: int, wakes: list[WakeEvent]) -> str:
    if not detection_frames:
        return ""
    if not wakes:
        return f"<h2>Wake events</h2><p id='wakes'>None in {detection_frames} detector frames.</p>"
    rows = "".join(f"<tr><td>{w.inference_index}</td><td>{w.stream_seconds:.2f}</td><td>{w.window_mean / 256:.2f}</td>"
                   f"<td>{html.escape(time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(w.received_at)))}</td></tr>"
                   for w in wakes)
    return ("<h2>Wake events</h2><table id='wakes'><tr><th>inference</th><th>stream position (s)</th>"
            f"<th>window mean</th><th>received</th></tr>{rows}</table>")


def _label_counts(labels: list[dict], answers: list[int | None] = ()) -> str:
    """"3 taken, 1 refused": the labels in each state, in the order a label goes through them;
    given the device's `answers` (label_runs'), how many taken ones disagreed with it."""
    states = [r["state"] for r in labels]
    counts = ", ".join(f"{states.count(state)} {state}" for state in LABEL_STATES if state in states)
    known = [(r["label"], a) for r, a in zip(labels, answers) if a is not None]
    if known:
        wrong = sum(label != answer for label, answer in known)
        counts += (f"; of the {len(known)} taken whose answer the capture holds, {wrong} disagreed with the model "
                   f"({100 * wrong / len(known):.0f} %)")
    return counts


def label_points(labels: list[dict], taken_in: list[tuple[int, int] | None], data: dict[str, np.ndarray],
                 x: np.ndarray, starts: list[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For the scores plot's labels row: per label the device took whose inference the
    capture holds (`taken_in`, label_runs'), in plot order, its x (that inference's),
    whether it disagreed with the model's answer there, and the share of its run's labels
    so far that did."""
    bounds = [*starts, len(data["inference_index"])]
    points = []
    for row, found in zip(labels, taken_in):
        if found is None:
            continue
        run, answer = found
        lo, hi = bounds[run - 1], bounds[run]
        at = np.flatnonzero(data["inference_index"][lo:hi] == row["inference_index"])
        points.append((float(x[lo + at[0]]), run, int(row["label"]) != answer))
    points.sort()
    xs = np.array([p[0] for p in points], dtype=np.float64)
    wrong = np.array([p[2] for p in points], dtype=bool)
    share = np.zeros(len(points))
    for run in {p[1] for p in points}:
        mine = np.array([p[1] == run for p in points], dtype=bool)
        share[mine] = np.cumsum(wrong[mine]) / np.arange(1, int(mine.sum()) + 1)
    return xs, wrong, share


def _labels_html(labels: list[dict], class_names: tuple[str, ...] | None = None,
                 answers: list[int | None] | None = None) -> str:
    """The labels queued for the device through this database (`tinydrift label --db`): what
    became of each, so a label the device refused or never answered is seen, not assumed,
    and the model's answer at that inference (`answers`, label_runs') beside it, where the
    capture holds it. With the model's `class_names` (--model-dir), each class is named
    beside its index."""
    if not labels:
        return ""
    answers = answers if answers is not None else [None] * len(labels)

    def named(label: int) -> str:
        known = class_names is not None and 0 <= label < len(class_names)
        return f"{label} ({html.escape(class_names[label])})" if known else str(label)

    def answer(row: dict) -> str:
        if row["state"] == "restarted":
            return "none: the device restarted its inference count before it was sent"
        return "" if row["result"] is None else ACK_RESULTS.get(row["result"], f"code {row['result']}")

    def model_said(said: int | None, label: int) -> str:
        return "" if said is None else f"{named(said)}{'' if said == label else ' (disagrees)'}"

    rows = "".join(
        f"<tr><td>{r['inference_index']}</td><td>{named(r['label'])}</td><td>{html.escape(r['state'])}</td>"
        f"<td>{r['attempts']}</td><td>{html.escape(answer(r))}</td><td>{model_said(said, r['label'])}</td>"
        f"<td>{html.escape(time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(r['queued_at'])))}</td></tr>"
        for r, said in zip(labels, answers))
    return ("<h2>Labels sent to the device</h2><table id='labels'><tr><th>inference</th><th>label</th><th>state</th>"
            f"<th>sends</th><th>device's answer</th><th>model's answer there</th><th>queued</th></tr>{rows}</table>")


def _html(db_path, s: DbSummary, thresholds: Thresholds, hello, images: list[Path], n: int,
          truth_rows: list[tuple[str, str]], severities: list[AlarmSeverity], detection_frames: int = 0,
          wakes: list[WakeEvent] = (), labels: list[dict] = (), commissioning: str | None = None,
          runs: int = 1, first_alarm_run: int = 1, resets: int = 0, moved_at_alarm: str | None = None,
          class_names: tuple[str, ...] | None = None, answers: list[int | None] | None = None,
          reference: str | None = None) -> str:
    esc = html.escape
    first_alarm = (f"inference {s.first_alarm[0]}{_of_run(first_alarm_run, runs)}: {', '.join(s.first_alarm[1])}"
                   + (f" (estimated change point {s.first_change})" if s.first_change else "")
                   if s.first_alarm else "none")
    rows = [
        # a path's bytes need not be UTF-8: shown with a replacement character, the page stays UTF-8
        ("capture database", os.fsencode(db_path).decode("utf-8", "replace")), ("sessions", s.sessions), ("frames", s.frames),
        ("inference frames (this model)", n), ("lost frames (sequence gaps)", s.lost),
        ("corrupt frames", s.corrupt), ("foreign-model frames", s.foreign), ("text lines", s.text_lines),
        *((("detector frames (DETECTION)", detection_frames), ("wakes", len(wakes))) if detection_frames else ()),
        ("device restarts", s.restarts), ("monitor resets (RESET accepted)", resets), ("port reopens", s.reopens),
        *((("runs of the inference count", f"{runs}: it starts again at each reset or restart"),) if runs > 1 else ()),
        *((("labels queued for the device", _label_counts(labels, answers or ())),) if labels else ()),
        ("model hash", s.expected_hash or "unknown"),
        ("firmware", hello.fw_version if hello else "no HELLO received"),
        *((("device", hello.device_text),) if hello else ()),
        ("thresholds from", thresholds.source), ("first alarm", first_alarm),
        *((("input channels moved at the first alarm", moved_at_alarm),) if moved_at_alarm else ()),
        *((("monitor", commissioning),) if commissioning else ()),
        *((("monitor reference", reference),) if reference else ()),
        *((f"alarm {a.name}{f' (run {a.run})' if runs > 1 else ''}", a.line()) for a in severities), *truth_rows,
    ]
    table = "\n".join(f"<tr><th>{esc(str(k))}</th><td>{esc(str(v))}</td></tr>" for k, v in rows)
    figures = "\n".join(f'<figure><img src="{esc(p.name)}" alt="{esc(p.stem)}"></figure>' for p in images)
    if not images:
        figures = "<p>No inference or detector frames from the expected model in this database: nothing to plot.</p>"
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>tinydrift report</title>
<style>body{{font-family:sans-serif;max-width:1150px;margin:2em auto;color:#222}}
table{{border-collapse:collapse}}th,td{{padding:3px 12px;border-bottom:1px solid #ddd;text-align:left}}
img{{max-width:100%}}figure{{margin:1.5em 0}}</style></head>
<body>
<h1>tinydrift capture report</h1>
<p>Generated {esc(time.strftime('%Y-%m-%d %H:%M:%S'))}. Lost frames are sequence numbers never received
intact (corrupt frames included); foreign frames come from another model than the expected one
and are left out of the plots.</p>
<table>
{table}
</table>
{_wakes_html(detection_frames, list(wakes))}
{_labels_html(list(labels), class_names, answers)}
{figures}
</body></html>
"""
