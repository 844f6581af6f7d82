"""The firmware app built as a streaming binary detector (a microWakeWord model, okay_nabu)
on the POSIX host port, under ASan and UBSan, and on the emulated Cortex-M4: espeak-ng
speech gives the DETECTION frames the app's twin (tinydrift.app.expected_detections)
predicts, bit for bit, and wakes on the wake phrase and on nothing else. Built with the
monitor config `tinydrift wakeword calibrate` writes, the app runs the drift monitor too:
its INFERENCE and HEARTBEAT frames are the twin's (expected_stream_inferences,
HeartbeatTwin) bit for bit, on the host and in QEMU.

The executable is the very firmware (src/main.c, the app, the 10 ms front end, the kernels,
the protocol) with the C that `tinydrift wakeword export` writes for the model.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import socket
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from test_app_host import HostApp, build_app
from tinydrift import firmware
from tinydrift.app import HeartbeatTwin, expected_detections, expected_stream_inferences
from tinydrift.link import protocol as P
from tinydrift.link.replay import ACK_OK, write_pcm
from tinydrift.monitor.config import ALARM_SENSOR_FAULT
from tinydrift.target import emulator, platformio
from tinydrift.target.flash import flash
from tinydrift.wakeword.config import load_wakeword
from tinydrift.wakeword.export import model_id, write_device_sources, write_monitor
from tinydrift.wakeword.monitor import FLOOR_GROUP, stream_summary, summary_length

pytest.importorskip("pymicro_wakeword", reason="the wakeword extra is not installed (scripts/setup.sh)")

ACK_UNSUPPORTED = 6  # td_app.h TD_APP_ACK_UNSUPPORTED
PHRASES = ("okay nabu", "turn on the kitchen light", "okay nabu", "what time is it")
# espeak-ng voices okay_nabu wakes on (male ones; it hears none of the female ones at pitch 50)
VOICES = (("en", "m1"), ("en-us", "m3"))
GAP = 16000  # 1 s of silence before and after every phrase


def spoken(voice: str, variant: str) -> tuple[np.ndarray, list[tuple[str, int, int]]]:
    """int16 PCM of PHRASES with gaps, and each phrase's (text, first sample, end sample)."""
    from tinydrift.data.synth import speak

    parts, spans, position = [np.zeros(GAP)], [], GAP
    for text in PHRASES:
        speech = speak(text, voice, variant, 50, 160)
        speech = speech / np.abs(speech).max() * 0.5
        parts += [speech, np.zeros(GAP)]
        spans.append((text, position, position + len(speech)))
        position += len(speech) + GAP
    return (np.concatenate(parts) * 32767).astype(np.int16), spans


# The monitor's capacity in a streaming build, as firmware/scripts/tinydrift_build.py sets it:
# the summary's 40 channel means, 20 at-floor counts, the loudness, tilt and quiet level, two classes.
STREAM_SIZES = {"TD_MONITOR_MAX_SUMMARY": summary_length(40), "TD_MONITOR_MAX_CLASSES": 2}


def test_the_streaming_summary_s_shape_is_one_in_the_app_its_build_and_its_twin():
    """The at-floor counts' channel group (td_app.h, tinydrift.wakeword.monitor) and the
    monitor's capacity the PlatformIO build gives a streaming model are the twin's; a change
    to one alone would build an app whose summary its calibration never saw."""
    header = (firmware.LIB_SRC / "app" / "td_app.h").read_text()
    assert int(re.search(r"#define TD_APP_FLOOR_GROUP (\d+)u", header).group(1)) == FLOOR_GROUP
    build = (firmware.FIRMWARE_DIR / "scripts" / "tinydrift_build.py").read_text()
    streaming = build[build.index("def streaming_defines"):]
    assert int(re.search(r'\("TD_MONITOR_MAX_SUMMARY", (\d+)\)', streaming).group(1)) == summary_length(40) == 63
    assert "TD_APP_STREAM_SUMMARY (TD_FRONTEND_NUM_CHANNELS + TD_FRONTEND_NUM_CHANNELS / TD_APP_FLOOR_GROUP + 3u)" in header
    blocks = np.full((4, 3, 40), -128, np.int8)
    summary = stream_summary(blocks, np.stack([np.arange(4), -np.arange(4), 10 + np.arange(4)], axis=1))
    assert summary.shape == (4, 63) and np.all(summary[:, 40:60] == 6 * 128)
    assert summary[:, 60:].T.tolist() == [[0, 1, 2, 3], [0, -1, -2, -3], [10, 11, 12, 13]]


@pytest.fixture(scope="module")
def model():
    return load_wakeword("okay_nabu")


@pytest.fixture(scope="module")
def stream_model(model, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("okay_nabu")
    write_device_sources(model, folder)
    return folder


@pytest.fixture(scope="module")
def app_stream(model, stream_model):
    return build_app("gcc", model_dir=stream_model, model=model.name, step_ms=model.feature_step_ms,
                     defines=STREAM_SIZES)


@pytest.fixture(scope="module")  # ~25 s (2 loaded cores, sessions cached) the first time: TFLite Micro, calibration
def monitor_config(model):
    """okay_nabu's monitor calibrated on six 40 s espeak-ng sessions (the first six of
    tests/test_wakeword_monitor.py's reference, so synthesized once) for a short run length
    (300 inferences, 9 s) and short averages, so that this test's speech raises alarms and
    the latches, change points and heartbeats' delays are compared too. The device and the
    twin run the same config: these tests check them against each other, not the
    calibration, so it is cached (helpers_wakeword.calibrated_once). 300,000 simulated
    inferences: with the summary's 20 at-floor counts, 100,000 on these few sessions left
    the variance score's alarm counts too flat to place its level."""
    from tinydrift.data.wakeword_audio import cached_sessions, plan_sessions

    from helpers_wakeword import SESSIONS_DIR, calibrated_once, session_samples_once

    sessions = cached_sessions(plan_sessions(model.wake_word, 6, 40, seed=0), SESSIONS_DIR, workers=2)
    return calibrated_once(session_samples_once(model, [pcm for pcm, _ in sessions]), target_arl0=300,
                           n_inferences=300_000, commission_n=100, mean_shift=5, var_shift=6, label_shift=6)


def monitored_folder(model, config, folder):
    """A model folder as `tinydrift wakeword export` and then `calibrate` leave it."""
    write_device_sources(model, folder)
    write_monitor(model, config, folder)
    return folder


@pytest.fixture(scope="module")
def monitored_model(model, monitor_config) -> Path:
    """One folder from run to run: the same generated files give the same host build, which
    compile_host then reuses instead of spending ~15 s on ASan again."""
    return monitored_folder(model, monitor_config, firmware.BUILD_ROOT / "test_models" / "okay_nabu_monitored_host")


@pytest.fixture(scope="module")
def app_monitored(model, monitored_model):
    return build_app("gcc", model_dir=monitored_model, model=model.name, step_ms=model.feature_step_ms,
                     defines={**STREAM_SIZES, "TD_APP_STREAM_MONITOR": 1})


def check_monitor_frames(device_items, model, config, clips, interval: int = 100, labels=None) -> tuple:
    """The device's INFERENCE and HEARTBEAT frames against the twins' (given the LABEL frames
    sent, as expected_stream_inferences takes them); returns the expected inferences and the
    heartbeats."""
    inferences = [i for i in device_items if isinstance(i, P.Inference)]
    heartbeats = [i for i in device_items if isinstance(i, P.Heartbeat)]
    expected = expected_stream_inferences(clips, model, config, labels)
    ident = model_id(model)
    assert len(inferences) == len(expected) > 0
    want_inferences = [expected.inference_frame(i, ident) for i in range(len(expected))]
    for got, want in zip(inferences, want_inferences):
        want.seq = got.seq
    mismatches = [i for i, (got, want) in enumerate(zip(inferences, want_inferences)) if got != want]
    assert mismatches == [], f"{len(mismatches)} differ, the first: {inferences[mismatches[0]]} vs {want_inferences[mismatches[0]]}"
    twin = HeartbeatTwin(tuple(int(v) for v in config.score_drift), interval=interval)
    want = [h for h in (twin.add(expected.inference_frame(i, ident)) for i in range(len(expected))) if h is not None]
    for got, beat in zip(heartbeats, want):
        beat.seq, beat.uptime_ms = got.seq, got.uptime_ms
    assert heartbeats == want and len(want) == len(expected) // interval
    return expected, heartbeats


@dataclass
class MonitoredRun:
    """What the monitored app sent for both voices' speech and then 6 s of a dead microphone."""

    app: HostApp
    clips: list
    status: P.Status
    stderr: str
    folder: Path


@pytest.fixture(scope="module")
def monitored_run(app_monitored, monitored_model, speech) -> MonitoredRun:
    clips = [pcm for pcm, _ in speech] + [np.zeros(6 * 16000, np.int16)]
    app, status, stderr = replay_all(app_monitored, clips)
    return MonitoredRun(app, clips, status, stderr, monitored_model)


def replay_all(app_binary, clips) -> tuple:
    """Every clip into a fresh app, then its STATUS and what it wrote on stderr once stopped."""
    with HostApp(app_binary) as app:
        app.replayer.drain(0.3)
        for clip in clips:
            app.replayer.replay_clip(clip)
        app.replayer.drain(0.1)
        status = app.status()
        stderr = app.stop()
    return app, status, stderr


def wakes_on_the_phrase_only(speech, per_clip) -> list[list[int]]:
    """Each clip's wakes (stream positions): one on each "okay nabu" (by 0.5 s after it ends),
    none on the other phrases."""
    wakes_at = []
    for (_, spans), frames in zip(speech, per_clip):
        wakes_at.append([d.stream_position for d in frames if d.wake])
        for text, start, end in spans:
            heard = [at for at in wakes_at[-1] if start <= at <= end + 8000]
            assert len(heard) == (text == "okay nabu"), f"{text!r} ({start}-{end}): wakes at {wakes_at[-1]}"
        assert len(wakes_at[-1]) == PHRASES.count("okay nabu")
    return wakes_at


def test_streaming_app_with_its_monitor_sends_the_twin_s_inference_and_heartbeat_frames(
        monitored_run, model, monitor_config, speech):
    """Both voices' speech, then 6 s of a dead microphone, which latches SENSOR_FAULT. The
    detector beside the monitor sends the twin's DETECTION frames and wakes on the phrase only."""
    app, clips, status, stderr = monitored_run.app, monitored_run.clips, monitored_run.status, monitored_run.stderr
    hello = app.frames(P.Hello)[0]
    assert (hello.n_classes, hello.n_channels, hello.n_scores) == (2, 63, 5) and hello.state_bytes > 0  # 40 means, 20 counts, loudness, tilt, quiet
    assert hello.drift_thresholds[:5] == tuple(int(v) for v in monitor_config.score_drift)
    # the detector is unchanged by the monitor beside it
    detections = app.frames(P.Detection)
    per_clip = []
    for clip in clips:
        per_clip.append(expected_detections([clip], model, model_id(model), first_index=1 + sum(map(len, per_clip))))
    expected_detection = [frame for frames in per_clip for frame in frames]
    for got, want in zip(detections, expected_detection):
        want.seq = got.seq
    assert detections == expected_detection
    wakes_on_the_phrase_only(speech, per_clip)
    expected, heartbeats = check_monitor_frames(app.items, model, monitor_config, clips)
    assert status.inferences == len(expected) and status.state_bytes == hello.state_bytes
    alarms = [i for i in app.frames(P.Inference) if i.alarm_bits]
    print(f"{len(expected)} inferences, {len(heartbeats)} heartbeats, {len(alarms)} with alarms or warnings "
          f"({sorted({'+'.join(P.alarm_names(i.alarm_bits)) for i in alarms})}), bit-exact")
    assert any(i.alarm_bits & ALARM_SENSOR_FAULT for i in alarms), "the dead microphone latches SENSOR_FAULT"
    assert any(h.latch_delay[ALARM_SENSOR_FAULT.bit_length() - 1] != P.NOT_LATCHED for h in heartbeats)
    # the reference line once commissioning ends, saying whether the dead-time test is on
    said = [line.text for line in app.frames(P.TextLine) if line.text.startswith("tinydrift app reference=")]
    assert len(said) == 1 and said[0].startswith("tinydrift app reference=learned dead=")
    assert said[0].endswith("% dead_test=off") == (monitor_config.dropout_limit == 0), said
    assert stderr == ""


def device_frames(run: MonitoredRun) -> list:
    """Every frame the device sent, parsed from the bytes it wrote (independently of the replayer)."""
    items = P.StreamParser().feed(bytes(run.app.port.received))
    assert not any(isinstance(i, P.Corrupt) for i in items)
    return [i for i in items if not isinstance(i, P.TextLine)]


def test_capture_report_and_live_view_take_every_frame_of_the_streaming_device(monitored_run, model, tmp_path):
    """The bytes the monitored app wrote, played to `capture` over a socket as a board's port
    carries them: every DETECTION, INFERENCE and HEARTBEAT frame is stored (none lost, corrupt
    or foreign, the model told by the folder's detector.json), the report lists the device's
    wakes and its SENSOR_FAULT, and the live view counts the wakes."""
    from rich.console import Console
    from test_capture import TcpDevice

    from tinydrift.logbook.capture import capture
    from tinydrift.logbook.live import render, take_snapshot
    from tinydrift.logbook.report import write_report
    from tinydrift.logbook.store import load_model_info, open_db, read_detections, read_summary

    sent = device_frames(monitored_run)
    wakes = [f.inference_index for f in sent if isinstance(f, P.Detection) and f.wake]
    kinds = {kind: sum(isinstance(f, kind) for f in sent) for kind in (P.Detection, P.Inference, P.Heartbeat)}
    assert len(wakes) == 2 * PHRASES.count("okay nabu") and all(kinds.values())
    data = bytes(monitored_run.app.port.received)
    db = tmp_path / "stream.db"
    summary = capture(TcpDevice(lambda conn: conn.sendall(data)).url, db, model_dir=monitored_run.folder,
                      max_frames=len(sent), reconnect_timeout=0, request_status=False)
    s = summary.stats
    assert (s.frames, s.lost, s.corrupt, s.foreign, summary.not_stored) == (len(sent), 0, 0, 0, 0)
    assert (s.inference_frames, s.detection_frames, s.wakes) == (kinds[P.Inference], kinds[P.Detection], len(wakes))
    assert (summary.stored["detection_frames"], summary.stored["wakes"]) == (kinds[P.Detection], len(wakes))
    assert f"{kinds[P.Detection]} detections, {len(wakes)} wakes)" in summary.line()
    conn = open_db(db)
    assert (read_summary(conn).detection_frames, read_summary(conn).wakes) == (kinds[P.Detection], len(wakes))
    stored = conn.execute("SELECT raw, model FROM frames ORDER BY id").fetchall()
    assert [bytes(raw) for raw, _ in stored] == [f.raw for f in sent]
    ident = model_id(model).hex()
    assert {m for (raw, m), f in zip(stored, sent) if isinstance(f, (P.Detection, P.Inference))} == {ident}
    detections = read_detections(conn)
    assert list(detections["inference_index"][detections["wake"]]) == wakes

    report = write_report(db, tmp_path / "report", model_dir=monitored_run.folder)
    assert [w.inference_index for w in report.wakes] == wakes and report.detection_frames == kinds[P.Detection]
    assert report.inference_frames == kinds[P.Inference]
    assert "SENSOR_FAULT" in report.summary.first_alarm[1] or any(a.name == "SENSOR_FAULT" for a in report.severities)
    page = (tmp_path / "report" / "index.html").read_text()
    assert page.count("</tr>", page.index("id='wakes'")) - page.count("</tr>", page.index("<figure")) == len(wakes) + 1
    assert (tmp_path / "report" / "detections.png").stat().st_size > 10_000
    assert f"{len(wakes)} wakes" in report.line()

    snap = take_snapshot(conn, load_model_info(monitored_run.folder))
    assert (snap.detections.frames, snap.detections.wakes) == (kinds[P.Detection], len(wakes))
    assert snap.labels == ["not Okay Nabu", "Okay Nabu"] and snap.last.predicted_class in (0, 1)
    console = Console(record=True, width=160)
    console.print(render(snap))
    shown = console.export_text()
    assert f"{len(wakes)} in {kinds[P.Detection]} detector frames; the last at inference {wakes[-1]}" in shown
    assert "SENSOR_FAULT" in shown
    assert "no id (its port defines no td_port_device_id)" in shown  # the emulated board has none


def test_the_fleet_store_and_dashboard_take_every_frame_of_the_streaming_device(monitored_run, fleet_dsn):
    """The same frames through the gateway's envelopes into the fleet store: stored once each,
    DETECTION's fields in their columns, the dashboard's overview counting the wakes beside the
    SENSOR_FAULT the monitor latched, the device's page listing each wake."""
    import datetime as dt

    import psycopg

    from tinydrift.fleet import envelope as E
    from tinydrift.fleet.dashboard import FleetView, device_page, overview_page
    from tinydrift.fleet.store import FleetStore

    sent = device_frames(monitored_run)
    hello = next(f for f in sent if isinstance(f, P.Hello))
    who = E.Identity.of_hello(hello)
    start = int((dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=5)).timestamp() * 1e6)
    envelopes = [E.unpack(E.pack(who, start + 1000 * i, f.raw)) for i, f in enumerate(sent)]
    store = FleetStore(fleet_dsn)
    store.migrate()
    result = store.write("voice", envelopes)
    store.close()
    assert (result.inserted, result.duplicates) == (len(sent), 0)
    detections = [f for f in sent if isinstance(f, P.Detection)]
    with psycopg.connect(fleet_dsn) as conn:
        rows = conn.execute("SELECT seq, inference_index, probability, window_mean, wake, stream_position FROM frames "
                            "WHERE type = %s ORDER BY seq", (int(P.FrameType.DETECTION),)).fetchall()
    assert rows == [(d.seq, d.inference_index, d.probability / 256, d.window_mean / 256, d.wake, d.stream_position)
                    for d in detections]
    wakes = [d for d in detections if d.wake]
    view = FleetView(fleet_dsn)
    try:
        (device,) = view.devices()
        page = device_page("voice", who.device_id, view.timeline("voice", who.device_id),
                           view.latches("voice", who.device_id), view.events("voice", who.device_id),
                           view.wakes("voice", who.device_id), view.is_detector("voice", who.device_id)).decode()
        overview = overview_page([device], view.alarm_map()).decode()
    finally:
        view.close()
    assert (device.frames, device.wakes, device.state) == (len(sent), len(wakes), "drifting")
    assert "SENSOR_FAULT" in overview and f"<td class='wakes'>{len(wakes)}</td>" in overview
    listed = re.findall(r"<tr><td>[^<]+</td><td>\d+</td><td>(\d+)</td><td>([\d.]+)</td>", page[page.index("id='wakes'"):])
    assert [(int(i), float(p)) for i, p in listed] == [(d.inference_index, round(d.stream_position / 16000, 2))
                                                       for d in wakes]


def test_streaming_app_with_its_monitor_commands(app_monitored, model, monitor_config, speech):
    """CONFIG sets the heartbeat interval, RESET starts the monitor afresh (indices from 1, as
    at boot); a clip that ends short of a frame block gives only its whole blocks."""
    clip = speech[0][0]
    short = clip[:16000 + 123]  # 1 s and a bit
    with HostApp(app_monitored) as app:
        app.replayer.replay_clip(clip)
        config = app.command(P.Config(0, 10, 0))
        reset = app.command(P.Reset(0))
        mark = len(app.items)
        app.replayer.replay_clip(short)
        app.replayer.drain(0.1)
        status = app.status()
        stderr = app.stop()
    assert (config.result, config.detail, reset.result) == (ACK_OK, 10, ACK_OK)
    expected, heartbeats = check_monitor_frames(app.items[mark:], model, monitor_config, [short], interval=10)
    assert len(expected) == (1 + (len(short) - 480) // 160) // 3 == 32  # 98 frames, 2 left over
    device = [d for d in app.items[mark:] if isinstance(d, P.Detection)]
    want = expected_detections([short], model, model_id(model))
    for got, frame in zip(device, want):
        frame.seq = got.seq
    assert device == want and all(d.flags == P.DETECTION_FLAG_COOLING for d in device)  # 1 s: cooling throughout
    assert heartbeats and status.inferences == len(expected) and len(app.frames(P.Hello)) == 2
    assert stderr == ""


ACK_UNKNOWN_INFERENCE, ACK_BAD_LABEL = 2, 3  # td_app.h


@contextlib.contextmanager
def served(app: HostApp):
    """The host build's pipes behind a TCP port, as `tinydrift emulate --serve` serves the
    emulated board: a command-line tool connects to the socket:// URL (one connection at a
    time) and talks to the very app the test drives."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.05)
    stop = threading.Event()

    def run():
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except socket.timeout:
                continue
            conn.settimeout(0.02)
            with conn:
                while not stop.is_set():
                    data = app.port.read(4096)
                    if data:
                        conn.sendall(data)
                    try:
                        got = conn.recv(4096)
                    except socket.timeout:
                        continue
                    if not got:
                        break
                    app.port.write(got)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield f"socket://127.0.0.1:{server.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(timeout=5)
        server.close()


def tinydrift_label(url: str, index: int, label: int):
    from click.testing import CliRunner

    from tinydrift.cli.main import main

    return CliRunner().invoke(main, ["label", str(index), str(label), "--port", url])


def test_labels_of_wakes_and_misses_latch_the_monitor_s_error_rate(app_monitored, model, monitor_config, speech):
    """A user confirms or rejects each wake ("that was not me calling it") and says when it
    missed: LABEL frames name an inference and whether the wake word was said there (1) or not
    (0), and the monitor's error-rate test takes each against whether the detector woke
    there. Five clips of speech (ten wakes): right labels past the config's ddm_min_labels
    (wakes confirmed, quiet stretches confirmed), then false wakes and misses until the twin
    latches ERROR_RATE; the device takes every one, counts them in STATUS and shows
    ERROR_RATE from its next INFERENCE on, every frame bit for bit with the twin. A label it
    cannot place is refused: inference 0, one not yet made, one older than its latest 8
    wakes; so is a class outside 0..1. Each inference is labelled once: the device takes a
    label sent again without counting it (test_app_host)."""
    from tinydrift.app import WAKE_HISTORY
    from tinydrift.monitor.config import ALARM_ERROR_RATE
    from tinydrift.monitor.twin import MonitorTwin

    clips = [speech[i % 2][0] for i in range(5)] + [speech[0][0][:2 * 16000]]
    twin = MonitorTwin(monitor_config, 1)
    right = monitor_config.ddm_min_labels + 10
    for _ in range(right):
        twin.label_feedback(0, 0)
    wrong = 1
    while not twin.label_feedback(0, 1)["alarms"][0] & ALARM_ERROR_RATE:
        wrong += 1
    with HostApp(app_monitored) as app:
        for clip in clips[:5]:
            app.replayer.replay_clip(clip)
        detections = app.frames(P.Detection)
        wakes = [d.inference_index for d in detections if d.wake]
        now = detections[-1].inference_index
        kept = wakes[-WAKE_HISTORY:]
        quiet = [i for i in range(kept[0] + 1, now + 1) if i not in kept]
        refused = [app.command(P.Label(0, index, label)).result
                   for index, label in ((0, 0), (now + 1, 1), (wakes[0], 0), (kept[0] - 1, 1), (kept[-1], 2))]
        # each inference labelled once (the device counts a repeated label once): half the
        # wakes confirmed and quiet stretches confirmed, then the other wakes rejected and misses
        newest_quiet = iter(quiet[::-1])
        plan = [(w, 1) for w in kept[:4]] + [(next(newest_quiet), 0) for _ in range(right - 4)]
        false_wakes = [(w, 0) for w in kept[4:]][:wrong]
        plan += false_wakes + [(next(newest_quiet), 1) for _ in range(wrong - len(false_wakes))]
        with served(app) as url:  # the first label as a user sends it, and one the device cannot place
            by_hand = tinydrift_label(url, *plan[0])
            too_new = tinydrift_label(url, now + 1, 1)
        acks = [app.command(P.Label(0, index, label)) for index, label in plan[1:]]
        status = app.status()
        app.replayer.replay_clip(clips[5])
        app.replayer.drain(0.1)
        stderr = app.stop()
    assert len(wakes) == 5 * PHRASES.count("okay nabu") > WAKE_HISTORY
    assert refused == [ACK_UNKNOWN_INFERENCE] * 4 + [ACK_BAD_LABEL]
    assert by_hand.exit_code == 0 and by_hand.output == f"inference {plan[0][0]}: label {plan[0][1]} taken\n"
    assert too_new.exit_code == 1 and too_new.output.count("error:") == 1, too_new.output
    assert f"refused label 1 for inference {now + 1} (unknown inference): name one of its recent" in too_new.output
    assert [(a.result, a.detail) for a in acks] == [(ACK_OK, index) for index, _ in plan[1:]]
    assert (status.labels, status.label_errors) == (right + wrong, wrong), "the device did not count the labels"
    inferences = app.frames(P.Inference)
    assert not any(i.alarm_bits & ALARM_ERROR_RATE for i in inferences[:now])
    assert inferences[now].alarm_bits & ALARM_ERROR_RATE, P.alarm_names(inferences[now].alarm_bits)
    check_monitor_frames(app.items, model, monitor_config, clips, labels={now: plan})
    print(f"{len(wakes)} wakes; ERROR_RATE after {right} right labels and {wrong} false wakes and misses")
    assert stderr == ""


@pytest.fixture(scope="module")
def speech():
    return [spoken(voice, variant) for voice, variant in VOICES]


# The build without a monitor (~15-20 s of ASan build on 2 loaded cores): the default tier
# checks the same detector, frames and commands on the monitored build (above).
@pytest.mark.slow
def test_streaming_app_detects_like_its_twin_and_wakes_on_the_phrase(app_stream, stream_model, model, speech, tmp_path):
    clips = [pcm for pcm, _ in speech]
    app, status, stderr = replay_all(app_stream, clips)
    hello = app.frames(P.Hello)[0]
    device = app.frames(P.Detection)
    per_clip = []  # each clip's expected frames; the index runs on from clip to clip
    for clip in clips:
        per_clip.append(expected_detections([clip], model, model_id(model), first_index=1 + sum(map(len, per_clip))))
    expected = [frame for frames in per_clip for frame in frames]
    assert hello.model_hash[:P.MODEL_ID_BYTES] == model_id(model)
    assert (hello.n_classes, hello.n_scores, hello.state_bytes) == (1, 0, 0)
    assert app.frames(P.TextLine)[0].text.endswith("classes=Okay Nabu")
    assert len(device) == len(expected) == status.inferences
    for got, want in zip(device, expected):
        want.seq = got.seq
    mismatches = [i for i, (got, want) in enumerate(zip(device, expected)) if got != want]
    assert mismatches == [], f"{len(mismatches)} differ, the first: {device[mismatches[0]]} vs {expected[mismatches[0]]}"
    assert stderr == ""

    wakes_at = wakes_on_the_phrase_only(speech, per_clip)
    print(f"{len(device)} inferences, bit-exact; wakes at samples {wakes_at}")

    # what it sent, captured (the folder, without a monitor, names the model) and reported: its wakes
    from test_capture import TcpDevice

    from tinydrift.logbook.capture import capture
    from tinydrift.logbook.report import write_report

    data = bytes(app.port.received)
    sent = [i for i in P.StreamParser().feed(data) if not isinstance(i, P.TextLine)]
    summary = capture(TcpDevice(lambda conn: conn.sendall(data)).url, tmp_path / "detector.db", model_dir=stream_model,
                      max_frames=len(sent), reconnect_timeout=0, request_status=False)
    assert (summary.stats.frames, summary.stats.lost, summary.stats.foreign) == (len(sent), 0, 0)
    report = write_report(tmp_path / "detector.db", tmp_path / "report", model_dir=stream_model)
    assert [w.inference_index for w in report.wakes] == [d.inference_index for d in device if d.wake]
    assert [round(w.stream_seconds * 16000) for w in report.wakes] == [at for clip in wakes_at for at in clip]
    assert report.inference_frames == 0 and report.detection_frames == len(device)


@pytest.mark.slow  # the build without a monitor, as above
def test_streaming_app_commands(app_stream, model, speech):
    """RESET restarts the inference index (the stream runs on); LABEL and CONFIG are refused
    as unsupported (no monitor, no heartbeats yet); a clip that ends short of a frame block
    gives only its whole blocks."""
    clip = speech[0][0][:16000 + 123]  # 1 s and a bit
    with HostApp(app_stream) as app:
        app.replayer.replay_clip(clip)
        label = app.command(P.Label(0, 1, 0))
        config = app.command(P.Config(0, 10, 0))
        reset = app.command(P.Reset(0))
        app.replayer.replay_clip(clip)
        app.replayer.drain(0.1)
        status = app.status()
        stderr = app.stop()
    assert (label.result, config.result, reset.result) == (ACK_UNSUPPORTED, ACK_UNSUPPORTED, ACK_OK)
    device = app.frames(P.Detection)
    expected = expected_detections([clip], model, model_id(model))
    assert len(expected) == (1 + (len(clip) - 480) // 160) // 3 == 32  # 98 frames, 2 left over
    assert [d.inference_index for d in device] == [d.inference_index for d in expected] * 2
    assert [(d.probability, d.window_mean, d.flags, d.stream_position) for d in device] == \
        [(d.probability, d.window_mean, d.flags, d.stream_position) for d in expected] * 2
    assert all(d.flags == P.DETECTION_FLAG_COOLING for d in device)  # 1 s: cooling throughout
    assert status.inferences == len(expected) and len(app.frames(P.Hello)) == 2
    assert stderr == ""


# ~8 s on 2 loaded cores with the firmware built, more without: the host build checks the same
# frames bit for bit in the default tier, and the models' streams run in QEMU there
# (tests/test_wakeword_models.py)
@pytest.mark.slow
@pytest.mark.skipif(shutil.which("qemu-system-arm") is None or platformio.pio_executable() is None,
                    reason="QEMU or PlatformIO is not installed (scripts/setup.sh)")
def test_streaming_app_in_qemu_from_the_microphone_file(model, speech, tmp_path):
    """The firmware `tinydrift flash` builds for the emulated Cortex-M4 with okay_nabu's
    exported C: both voices' speech as the microphone's file (one stream from boot) gives
    the twin's DETECTION frames bit for bit, a wake on each "okay nabu" and nothing else,
    and BYE when the file ends; without tracing, the detections alone."""
    folder = firmware.BUILD_ROOT / "test_models" / "okay_nabu_stream"  # one place: pio keeps one build folder for it
    write_device_sources(model, folder)
    elf = flash(platformio.EMULATED_ENV, folder, build_only=True).elf
    pcm = np.concatenate([clip for clip, _ in speech])
    result = emulator.run(elf, timeout=300, semihosting_args=[
        emulator.audio_file_argument(write_pcm([pcm], tmp_path / "speech.pcm"), tmp_path)])
    items = P.StreamParser().feed(result.output)
    assert result.exit_code == 0 and not any(isinstance(i, P.Corrupt) for i in items), result.output[-500:]
    device = [i for i in items if isinstance(i, P.Detection)]
    expected = expected_detections([pcm], model, model_id(model))
    for got, want in zip(device, expected):
        want.seq = got.seq
    assert len(device) == len(expected) and device == expected
    bye = [i for i in items if isinstance(i, P.Bye)]
    assert bye and bye[-1].inferences == len(expected)
    assert sum(d.wake for d in device) == 2 * PHRASES.count("okay nabu")

    # without tracing (trace=0), only the detections are sent
    first = speech[0][0]
    quiet = emulator.run(elf, timeout=300, semihosting_args=[
        emulator.audio_file_argument(write_pcm([first], tmp_path / "first.pcm"), tmp_path), "trace=0"])
    sent = [i for i in P.StreamParser().feed(quiet.output) if isinstance(i, P.Detection)]
    wakes = expected_detections([first], model, model_id(model), trace=False)
    for got, want in zip(sent, wakes):
        want.seq = got.seq
    assert quiet.exit_code == 0 and sent == wakes and len(wakes) == PHRASES.count("okay nabu")


@pytest.mark.slow  # ~60 s on 2 loaded cores: the firmware's build and 31 s of audio in QEMU
@pytest.mark.skipif(shutil.which("qemu-system-arm") is None or platformio.pio_executable() is None,
                    reason="QEMU or PlatformIO is not installed (scripts/setup.sh)")
def test_streaming_app_with_its_monitor_in_qemu(model, monitor_config, speech, tmp_path):
    """The folder `tinydrift wakeword calibrate` completes, flashed for the emulated
    Cortex-M4: the speech and a dead microphone as one stream from boot give the twin's
    DETECTION, INFERENCE and HEARTBEAT frames bit for bit."""
    folder = monitored_folder(model, monitor_config, firmware.BUILD_ROOT / "test_models" / "okay_nabu_monitored")
    elf = flash(platformio.EMULATED_ENV, folder, build_only=True).elf
    pcm = np.concatenate([clip for clip, _ in speech] + [np.zeros(6 * 16000, np.int16)])
    result = emulator.run(elf, timeout=300, semihosting_args=[
        emulator.audio_file_argument(write_pcm([pcm], tmp_path / "speech.pcm"), tmp_path)])
    items = P.StreamParser().feed(result.output)
    assert result.exit_code == 0 and not any(isinstance(i, P.Corrupt) for i in items), result.output[-500:]
    hello = next(i for i in items if isinstance(i, P.Hello))
    assert (hello.n_classes, hello.n_scores) == (2, 5)
    device = [i for i in items if isinstance(i, P.Detection)]
    expected = expected_detections([pcm], model, model_id(model))
    for got, want in zip(device, expected):
        want.seq = got.seq
    assert device == expected
    inferences, _ = check_monitor_frames(items, model, monitor_config, [pcm])
    assert any(i.alarm_bits & ALARM_SENSOR_FAULT for i in items if isinstance(i, P.Inference))
    bye = [i for i in items if isinstance(i, P.Bye)]
    assert bye and bye[-1].inferences == len(inferences)
