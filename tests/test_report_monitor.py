"""monitor --once: one rendered snapshot of a capture database, or of a port it captures;
and the live view following a capture that runs meanwhile."""

from __future__ import annotations

import io
import re
import threading
import time

import numpy as np
import pytest
from click.testing import CliRunner
from rich.console import Console

from tinydrift.link import protocol as P
from tinydrift.cli.main import main
from tinydrift.logbook.capture import capture
from tinydrift.logbook.live import run_monitor

from test_capture import MODEL_HASH, TcpDevice, _wait_for
from test_report import DRIFT_AT, drifting_device_stream, make_drift_db


def _render(**kwargs):
    buffer = io.StringIO()
    snap = run_monitor(once=True, console=Console(file=buffer, width=120, color_system=None), **kwargs)
    return snap, buffer.getvalue()


def test_once_shows_scores_thresholds_alarm_and_counts(tmp_path):
    db, facts = make_drift_db(tmp_path)
    snap, out = _render(db_path=db)
    assert snap.last.inference_index == 1200 and snap.last.alarm_bits & 1
    for name in ("mean", "var", "confidence", "entropy", "label"):
        assert name in out
    assert "DRIFT" in out and "DATA_DRIFT" in out and f"change point ~inference {DRIFT_AT}" in out
    # severity: the device's accuracy estimate before the change point (0.93) and now (0.75)
    assert re.search(r"estimated accuracy 9[23]\.\d % before the change", out), out
    assert re.search(r"7[45]\.\d % now", out) and re.search(r"device's running ATC; estimated impact: -1[78]\.\d points\)", out), out
    assert f"{facts['lost']} / {facts['corrupt']} / 0" in out
    assert "8.00" in out and "4.00" in out  # the drift and warning levels from HELLO, in σ
    assert "boot: tinydrift demo" in out  # the device's text line
    assert "1.2.3" in out


def test_a_wake_word_device_s_live_severity_is_its_wakes(tmp_path):
    """The live view reads a streaming detector's alarm as the report does: its wakes before
    the change point and since the alarm, no accuracy verdict (trial 17)."""
    from test_report import N_INFERENCES

    stream, _ = drifting_device_stream()
    wakes = [P.Detection(N_INFERENCES + 2 + k, at, MODEL_HASH[:8], 240, 230, P.DETECTION_FLAG_WAKE, at * 480)
             for k, at in enumerate((100, 300, 500, 900))]
    stream += b"".join(P.encode(w) for w in wakes)
    device = TcpDevice(lambda conn: conn.sendall(stream))
    capture(device.url, tmp_path / "wake.db")
    snap, out = _render(db_path=tmp_path / "wake.db")
    text = " ".join(out.split())
    assert snap.severity is not None and snap.severity.wakes is not None, out
    assert "3 wakes in the" in text and "before the change point, 1 wake in the" in text, text
    assert "estimated impact" not in text and "harmless" not in text


def test_once_on_a_port_captures_then_renders(tmp_path):
    stream, _ = drifting_device_stream(seed=42)
    device = TcpDevice(lambda conn: conn.sendall(stream))
    snap, out = _render(port_url=device.url, duration=1.0)
    assert snap.summary.frames > 1000 and "DATA_DRIFT" in out


def test_without_a_model_folder_the_classes_are_named_from_the_app_s_boot_line(tmp_path):
    """HELLO carries the class count only: without --model-dir the view said "prediction 1"
    while the app's boot line, on the same screen, named every class. A boot line of another
    model, or with another count of classes, names none."""
    import random

    from test_capture import hello

    rng = random.Random(3)
    names = ["_silence_", "_unknown_", "yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go"]

    def boot_line(model: bytes, classes: list[str]) -> bytes:
        return f"tinydrift app board=mps2_an386 model={model[:8].hex()} classes={','.join(classes)}\n".encode()

    for line, named in ((boot_line(MODEL_HASH, names), True), (boot_line(bytes(8), names), False),
                        (boot_line(MODEL_HASH, names[:11]), False)):
        frames = [hello(0)] + [P.typical_inference(k, k, MODEL_HASH[:8], rng) for k in range(1, 41)]
        stream = line + b"".join(P.encode(f) for f in frames)
        device = TcpDevice(lambda conn: conn.sendall(stream))
        db = tmp_path / f"boot{len(list(tmp_path.iterdir()))}.db"
        capture(device.url, db, reconnect_timeout=0)
        snap, out = _render(db_path=db)
        assert (snap.labels == names) is named and (snap.labels is None) is not named
        assert snap.commission_n is None  # the line says no commission=N: unknown
        shown = names[snap.last.predicted_class] if named else str(snap.last.predicted_class)
        assert f"prediction                {shown} " in out, out


def test_once_on_a_silent_port_fails_saying_nothing_came(tmp_path):
    """A device that accepts and says nothing showed an empty snapshot, exit 0, where capture
    exits 1 with the reason; into a database that holds an earlier capture, too."""
    db, _ = make_drift_db(tmp_path)
    for where in ([], ["--db", str(db)]):
        device = TcpDevice(lambda conn: time.sleep(3))
        result = CliRunner().invoke(main, ["monitor", "--port", device.url, "--once", "--duration", "0.5", *where])
        assert result.exit_code == 1 and result.output.startswith(f"error: nothing received from {device.url} in 0."), \
            result.output
        assert "is another program holding the port" in result.output


def test_monitor_command_once_and_its_errors(tmp_path):
    db, _ = make_drift_db(tmp_path)
    runner = CliRunner()
    result = runner.invoke(main, ["monitor", "--db", str(db), "--once"])
    assert result.exit_code == 0 and "Drift scores" in result.output
    result = runner.invoke(main, ["monitor", "--once"])
    assert result.exit_code != 0 and "give --db FILE, --port URL" in result.output
    result = runner.invoke(main, ["monitor", "--db", str(tmp_path / "none.db"), "--once"])
    assert result.exit_code != 0 and "does not exist: give an existing capture database" in result.output
    result = runner.invoke(main, ["monitor", "--port", "/dev/tinydrift-no-such-port", "--once"])
    assert result.exit_code != 0 and "cannot open port" in result.output
    # once ignored without a word: how long to capture means nothing without a port
    result = runner.invoke(main, ["monitor", "--db", str(db), "--once", "--duration", "5"])
    assert result.exit_code == 2 and "--duration (how long to capture first) needs --port" in result.output


def test_monitor_reads_an_archive_on_read_only_media(tmp_path):
    """--db was checked as a file to write, so a database on a read-only disk was refused."""
    import subprocess

    db, _ = make_drift_db(tmp_path)
    media = tmp_path / "media"
    media.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(media)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here (not root)")
    try:
        assert CliRunner().invoke(main, ["archive", str(db), str(media / "run.db")]).exit_code == 0
        subprocess.run(["mount", "-o", "remount,ro", str(media)], check=True)
        result = CliRunner().invoke(main, ["monitor", "--db", str(media / "run.db"), "--once"])
        assert result.exit_code == 0 and "Drift scores" in result.output, result.output
    finally:
        subprocess.run(["umount", "-l", str(media)], check=True)


def test_empty_database_renders_without_inferences(tmp_path):
    device = TcpDevice(lambda conn: conn.sendall(b"hello\n" + P.encode(P.Bye(0, 0, 0))))
    from tinydrift.logbook.capture import capture

    db = tmp_path / "e.db"
    capture(device.url, db)
    _, out = _render(db_path=db)
    assert "no inference frames yet" in out and "hello" in out
    # nothing says whether it alarms: a trial's idle device with DATA_DRIFT latched read "none"
    assert re.search(r"alarms\s+unknown until the device's next inference frame", out), out


def test_live_view_follows_a_running_capture_until_its_duration(tmp_path):
    """Not --once: the view keeps reading the database while `capture` writes it. The device
    sends its first third (no drift yet), then, once the view runs, the rest (the drift)."""
    from tinydrift.logbook.capture import capture

    stream, _ = drifting_device_stream(seed=43)
    cut = len(stream) // 3
    view_started = threading.Event()

    def device_script(conn):
        conn.sendall(stream[:cut])
        view_started.wait(timeout=30)
        conn.sendall(stream[cut:])

    device = TcpDevice(device_script)
    db = tmp_path / "live.db"
    capturing = threading.Thread(target=capture, args=(device.url, db), daemon=True)
    capturing.start()
    _wait_for(db, "SELECT COUNT(*) FROM frames WHERE type=2", 300)
    runner = CliRunner()
    before = runner.invoke(main, ["monitor", "--db", str(db), "--once"])
    assert before.exit_code == 0 and "DATA_DRIFT" not in before.output

    threading.Timer(0.5, view_started.set).start()
    started = time.monotonic()
    result = runner.invoke(main, ["monitor", "--db", str(db), "--duration", "2.5", "--refresh", "0.2"])
    took = time.monotonic() - started
    capturing.join(timeout=10)
    assert result.exit_code == 0, result.output
    assert 2.5 <= took < 10
    # A console that is not a terminal shows the view's last state: the frames that came during it.
    assert "Drift scores" in result.output and "DATA_DRIFT" in result.output
    assert f"change point ~inference {DRIFT_AT}" in result.output and "1200  (" in result.output


def test_heartbeats_are_captured_and_shown_and_the_report_takes_them(tmp_path):
    """A heartbeat-only device (protocol 4: HELLO with its id, then HEARTBEAT frames and no
    INFERENCE): capture stores every frame, each raw packet re-decodes to what was sent, the
    live view shows the device and its last heartbeat, and report does not trip on them."""
    import random
    import sqlite3

    from test_capture import MODEL_HASH
    from tinydrift.logbook.capture import capture

    rng = random.Random(3)
    hello = P.random_frame(rng, P.FrameType.HELLO, seq=0)
    hello.model_hash, hello.device_id, hello.boot_count, hello.n_scores = MODEL_HASH, 0xFEDC_BA98_7654_3210, 7, 5
    beats = [P.random_frame(rng, P.FrameType.HEARTBEAT, seq=k) for k in range(1, 6)]
    beats[-1].alarm_bits, beats[-1].class_share = 0x0001, (0,) * 11 + (255,)
    sent = [hello, *beats, P.Bye(6, 0, 500)]  # BYE: the device exits and capture ends
    device = TcpDevice(lambda conn: conn.sendall(b"".join(P.encode(f) for f in sent)))
    db = tmp_path / "beats.db"
    capture(device.url, db)
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT type, raw FROM frames ORDER BY id").fetchall()
    assert [P.parse_packet(raw) for _, raw in rows] == sent
    _, out = _render(db_path=db)
    assert "fedcba9876543210, boot 7" in out and "no inference frames yet" in out
    assert re.search(rf"alarms\s+DATA_DRIFT\s+\(heartbeat at inference {beats[-1].inference_index}\)", out), out
    assert re.search(rf"inference {beats[-1].inference_index}, last {beats[-1].window}: DATA_DRIFT, mostly 11 \(100%\)",
                     out), out
    result = CliRunner().invoke(main, ["report", str(db), "--out", str(tmp_path / "report")])
    assert result.exit_code == 0 and "7 frames (0 inferences)" in result.output, result.output


def test_moved_channels_are_named_by_what_they_summarize(tmp_path):
    """The live view listed moved channels by number only ("3, 17"): with the model folder,
    or from HELLO's channel count where only one of the firmware's layouts has it, by name."""
    from test_report import write_reference

    db, _ = make_drift_db(tmp_path)  # channels 3 and 17 move at the alarm; its HELLO says 40 channels
    _, out = _render(db_path=db)
    assert re.search(r"moved channels +3, 17 +│", out), out  # no layout of 40: numbers
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    write_reference(model_dir, MODEL_HASH.hex())  # the keyword model's config: 42 channels
    snap, out = _render(db_path=db, model_dir=model_dir)
    assert re.search(r"moved channels +band 3, band 17 +│", out), out


def test_the_live_view_and_the_report_give_one_accuracy_figure_now(tmp_path):
    """With the model folder, the report read "now" over the answers since the alarm and the
    live view the device's running ATC: two figures for one capture (new-user trial 7)."""
    from test_report import write_reference
    from tinydrift.logbook.report import write_report

    db, _ = make_drift_db(tmp_path)
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    write_reference(model_dir, MODEL_HASH.hex())
    snap, out = _render(db_path=db, model_dir=model_dir)
    report = write_report(db, tmp_path / "r", model_dir=model_dir).severities[0]
    assert snap.severity.answers == report.answers > 0 and "answers received of 448 since the alarm" in report.basis_text()
    assert snap.severity.impact() == report.impact() and f"{100 * report.accuracy_now:.1f} % now" in out
    without, _ = _render(db_path=db)  # no folder, no ATC level: the running ATC, said so
    assert without.severity.answers == 0 and without.severity.basis_text() == "the device's running ATC"


def test_the_answers_since_the_alarm_are_counted_on_not_read_again(tmp_path):
    """The live view refreshes twice a second: it counts the answers since the alarm from the
    frames it has not seen yet, and its count equals one read from the start."""
    from test_report import Q12, write_reference
    from tinydrift.logbook.store import AnswerTally, latest_frame, load_model_info, open_db, severity_now

    levels = (4 * Q12,) * 5 + (0,) * 3
    seq = iter(range(10_000))

    def frames(first: int, last: int) -> bytes:
        return b"".join(P.encode(P.Inference(next(seq), t, MODEL_HASH[:8], t % 12, 120 + t % 130, int(t >= 150), 20_000,
                                             int(0.9 * 65536), 0, 120 if t >= 150 else 0, (0,) * 8,
                                             150 if t >= 150 else 0)) for t in range(first, last + 1))

    db, model_dir = tmp_path / "live.db", tmp_path / "model"
    model_dir.mkdir()
    write_reference(model_dir, MODEL_HASH.hex())
    model = load_model_info(model_dir)
    hello = P.encode(P.Hello(next(seq), MODEL_HASH, 1, 2, 3, 412, 12, 40, 12, 5, levels, levels))
    capture(TcpDevice(lambda conn: conn.sendall(hello + frames(1, 300))).url, db)
    tally = AnswerTally()
    conn = open_db(db)
    try:
        first = severity_now(conn, latest_frame(conn, P.FrameType.INFERENCE), None, model, tally)
        assert first.answers == 150 and severity_now(conn, latest_frame(conn, P.FrameType.INFERENCE), None, model,
                                                     tally).answers == 150  # not counted twice
    finally:
        conn.close()
    capture(TcpDevice(lambda conn: conn.sendall(frames(301, 500))).url, db)  # the device ran on
    conn = open_db(db)
    try:
        last, anew = latest_frame(conn, P.FrameType.INFERENCE), AnswerTally()
        on, fresh = severity_now(conn, last, None, model, tally), severity_now(conn, last, None, model, anew)
    finally:
        conn.close()
    assert on.answers == fresh.answers == 350 and np.array_equal(tally.confident, anew.confident)
    assert on.accuracy_now == fresh.accuracy_now and on.impact() == fresh.impact()


def test_every_summary_layout_names_each_of_its_channels():
    from tinydrift.monitor.channels import channel_names, moved_text
    from tinydrift.monitor.twin import image_summary_length
    from tinydrift.wakeword.monitor import summary_length

    keyword, stream, camera = channel_names(42), channel_names(summary_length(40)), channel_names(image_summary_length(3))
    assert keyword[40:] == ["loudness", "quiet level"] and stream[60:] == ["loudness", "spectral tilt", "quiet level"]
    assert camera[:3] == ["top-left red", "top-left green", "top-left blue"] and camera[12:15] == [
        "middle-middle red", "middle-middle green", "middle-middle blue"]
    assert camera[27:] == [f"{what} {colour}" for what in ("contrast", "sharpness", "crispness")
                           for colour in ("red", "green", "blue")]
    assert all(len(set(names)) == len(names) for names in (keyword, stream, camera))
    assert channel_names(36, {"kind": "image", "grid": 3}) == camera and channel_names(42, {"kind": "image"}) is None
    assert moved_text(0, keyword) == "none"
    assert moved_text(1 << 29 | 1 << 13 | 1 << 50, camera) == "middle-middle green, contrast blue, 50"


def test_the_live_view_says_when_the_monitor_is_still_commissioning(tmp_path):
    """The live view showed scores at zero through the first inferences after a reset with
    no word why; with the model folder it knows how many the monitor learns on."""
    from test_report import early_capture

    db, model_dir, commission_n = early_capture(tmp_path, 120)
    snap, out = _render(db_path=db, model_dir=model_dir)
    assert snap.commission_n == commission_n > 120
    # no boot line in the capture: whether the device took back a kept reference is unknown
    shown = " ".join(out.split())
    assert "learning this device's reference (unless it took back a reference kept" in shown
    assert f"inference 120 of {commission_n}" in shown
    # Without the folder (and no boot line: a capture begun after the boot) the view said
    # nothing, and every score read 0 and "ok" like a device judging a calm stream.
    _, without = _render(db_path=db)
    assert "perhaps still commissioning: the capture so far ends at inference 120" in " ".join(without.split())
    assert "give --model-dir" in " ".join(without.split())


@pytest.mark.parametrize("after_change", ["the room's own mix", "piled on one class"])
def test_the_estimate_reads_the_class_mix_against_what_the_device_heard_before_the_change(tmp_path, after_change):
    """A keyword spotter in a room of mostly other words (class 1, 60 % of its answers): read
    against the training mix, its confident fillers came off the estimate as wrong answers
    once DATA_DRIFT latched (about half the answers). Against the mix it heard before the
    change point, only what moved since comes off; the live view and the report agree."""
    from test_report import Q12, write_reference
    from tinydrift.logbook.report import write_report
    from tinydrift.logbook.store import latest_frame, load_model_info, open_db, severity_now
    from tinydrift.monitor.accuracy_estimate import CAPPED

    warning, drift = (4 * Q12,) * 5 + (0,) * 3, (8 * Q12,) * 5 + (0,) * 3  # write_reference's levels
    seq = iter(range(10_000))

    def answer(t: int) -> int:
        if after_change == "piled on one class" and t >= 150:
            return 7
        return 1 if t % 5 < 3 else t % 12

    frames = b"".join(P.encode(P.Inference(next(seq), t, MODEL_HASH[:8], answer(t), 250, int(t >= 200), 20_000,
                                           int(0.99 * 65536), 0, 150 if t >= 200 else 0, (0,) * 8,
                                           200 if t >= 200 else 0)) for t in range(1, 401))
    db, model_dir = tmp_path / "room.db", tmp_path / "model"
    model_dir.mkdir()
    write_reference(model_dir, MODEL_HASH.hex())
    hello = P.encode(P.Hello(next(seq), MODEL_HASH, 1, 2, 3, 412, 12, 40, 12, 5, warning, drift))
    capture(TcpDevice(lambda conn: conn.sendall(hello + frames)).url, db)
    conn = open_db(db)
    try:
        live = severity_now(conn, latest_frame(conn, P.FrameType.INFERENCE), None, load_model_info(model_dir))
    finally:
        conn.close()
    report = write_report(db, tmp_path / "r", model_dir=model_dir).severities[0]
    assert live.answers == report.answers == 200 and live.accuracy_now == pytest.approx(report.accuracy_now)
    if after_change == "the room's own mix":
        assert report.accuracy_now > 0.95 and report.basis == "ATC", report.line()
    else:  # all 200 confident answers on class 7, heard in 1 of 12 before: 1/12 of them may be right
        assert report.basis == CAPPED and 0.05 < report.accuracy_now < 0.15, report.line()
