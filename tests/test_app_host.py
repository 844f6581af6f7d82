"""The firmware app on the POSIX host port, under ASan and UBSan: command handling, window
assembly from AUDIO frames, and malformed input.

The executable is the very firmware (src/main.c, lib/tinydrift/src/app, the front end, the
kernels, the monitor, the protocol, the generated model) linked with port/host: stdin is
its serial receiver, stdout its transmitter. The host side is the real one too:
tinydrift.link.replay's Replayer over the process's pipes, and the app's twin
(expected_inferences) for what every inference must log.
"""

from __future__ import annotations

import array
import dataclasses
import fcntl
import json
import os
import random
import select
import shutil
import signal
import struct
import subprocess
import termios
import time
import zlib
from pathlib import Path

import numpy as np
import pytest

from tinydrift import firmware
from tinydrift.link import protocol as P
from tinydrift.link.replay import (ACK_AUDIO_GAP, ACK_BAD_CONFIG, ACK_BAD_LABEL, ACK_NOT_A_COMMAND, ACK_OK,
                                   ACK_UNKNOWN_INFERENCE, Replayer)
from tinydrift.app import HeartbeatTwin, compare, device_inferences, expected_inferences
from tinydrift.monitor.config import ALARM_ERROR_RATE, MonitorConfig
from tinydrift.firmware import REPO_ROOT

MODEL_DIR = REPO_ROOT / "models" / "kws"


def build_app(compiler: str = "gcc", defines: dict | None = None, firmware_dir: Path = firmware.FIRMWARE_DIR,
              model_dir: Path = MODEL_DIR, model: str = "kws", step_ms: int | None = None):
    """The app on the host port; firmware_dir: another copy of firmware/ (tests build mutated ones);
    model_dir/include holds the generated files of `model`; step_ms: the front end's step."""
    lib = firmware_dir / firmware.LIB_SRC.relative_to(firmware.FIRMWARE_DIR)
    fe_sources, fe_includes, fe_defines = firmware.frontend_build_inputs(step_ms)
    fe_sources = [lib / s.relative_to(firmware.LIB_SRC) if s.is_relative_to(firmware.LIB_SRC) else s
                  for s in fe_sources]
    sources = [firmware_dir / "src" / "main.c", *sorted((lib / "app").glob("*.c")), *fe_sources,
               *sorted((lib / "kernels").glob("*.c")), *sorted((lib / "monitor").glob("*.c")),
               *sorted((lib / "protocol").glob("*.c")), model_dir / "include" / f"td_model_{model}.c",
               firmware_dir / "port" / "host" / "td_port_host.c", firmware_dir / "port" / "host" / "td_host_main.c"]
    includes = [lib, lib / "frontend", lib / "monitor", lib / "protocol", *fe_includes, model_dir / "include"]
    all_defines = {**fe_defines, "TD_MONITOR_MAX_SUMMARY": 42, "TD_MONITOR_MAX_CLASSES": 12,
                   "TD_APP_MODEL": model, "TD_APP_MODEL_UPPER": model.upper(), **(defines or {})}
    return firmware.compile_host(sources, include_dirs=includes, defines=all_defines, shared=False, sanitize=True,
                     compiler=compiler)


class PipePort:
    """The app process as a serial port: write() to its stdin, read() from its stdout with
    a timeout, fileno() for the pending-bytes query of capture.read_available. `received`
    keeps every byte the app sent, as a port would carry them to a capture."""

    def __init__(self, process: subprocess.Popen, timeout: float = 0.05):
        self.process = process
        self.timeout = timeout
        self._out = process.stdout.fileno()
        self.received = bytearray()

    def write(self, data: bytes) -> int:
        self.process.stdin.write(data)
        self.process.stdin.flush()
        return len(data)

    def read(self, size: int = 1) -> bytes:
        if not select.select([self._out], [], [], self.timeout)[0]:
            return b""
        data = os.read(self._out, size)
        self.received += data
        return data

    def fileno(self) -> int:
        return self._out

    @property
    def in_waiting(self) -> int:
        count = array.array("i", [0])
        fcntl.ioctl(self._out, termios.FIONREAD, count)
        return count[0]


class HostApp:
    def __init__(self, executable, keep: Path | None = None):
        """keep: the file the host port keeps what outlives a power cycle in (TD_PORT_KEEP)."""
        env = dict(os.environ, ASAN_OPTIONS="abort_on_error=1:detect_leaks=0", UBSAN_OPTIONS="halt_on_error=1")
        if keep is not None:
            env["TD_PORT_KEEP"] = str(keep)
        self.process = subprocess.Popen([str(executable)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, env=env)
        self.port = PipePort(self.process)
        self.replayer = Replayer(self.port, window=4, keep=True, ack_timeout=20.0)

    @property
    def items(self) -> list:
        return self.replayer.stats.received

    def frames(self, kind) -> list:
        return [i for i in self.items if isinstance(i, kind)]

    def command(self, frame) -> P.Ack:
        return self.replayer.command(frame)

    def status(self) -> P.Status:
        before = len(self.frames(P.Status))
        assert self.command(P.StatusRequest(0)).result == ACK_OK
        deadline = time.monotonic() + 5
        while len(self.frames(P.Status)) == before and time.monotonic() < deadline:
            self.replayer.drain(0.05)
        return self.frames(P.Status)[-1]

    def stop(self) -> str:
        """Ends the app (it runs until killed, as a board does); returns its stderr, where the
        sanitizers would have reported. A crash before this point fails here."""
        alive = self.process.poll() is None
        self.process.send_signal(signal.SIGTERM)
        out, stderr = self.process.communicate(timeout=10)
        self.port.received += out
        assert alive, f"the app died (code {self.process.returncode}): {stderr.decode(errors='replace')[-2000:]}"
        return stderr.decode(errors="replace")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


@pytest.fixture(scope="module")
def reference():
    ref = json.loads((MODEL_DIR / "reference.json").read_text())
    model = (MODEL_DIR / "model_int8.tflite").read_bytes()
    return model, MonitorConfig.from_dict(ref["monitor_config"]), ref


@pytest.fixture(scope="module")
def app_gcc():
    return build_app("gcc")


@pytest.fixture(scope="module")
def clips(app_clips):
    """Real clips: the default data set's test split if built, else espeak-ng speech made here."""
    return app_clips("test").audio[:40]


# clang's build of the same app in the slow tier (13 s): gcc's keeps the default tier's check
@pytest.mark.parametrize("compiler", ["gcc", pytest.param("clang", marks=pytest.mark.slow)])
def test_boot_hello_status_reset_and_labels(compiler, reference):
    if shutil.which(compiler) is None:
        pytest.skip(f"{compiler} not installed")
    _, config, ref = reference
    with HostApp(build_app(compiler)) as app:
        app.replayer.drain(0.3)
        lines = app.frames(P.TextLine)
        assert lines and lines[0].text.startswith(f"tinydrift app board=host model={ref['model_id']} classes=_silence_,")
        # how long the monitor commissions: a host without the model folder reads it there
        assert lines[0].text.endswith(f",go commission={ref['monitor_config']['commission_n']} reference=learning")
        hello = app.frames(P.Hello)[0]
        assert hello.seq == 0 and hello.model_hash.hex() == ref["model_hash"]
        assert (hello.n_classes, hello.n_channels, hello.score_frac_bits, hello.n_scores) == (12, 42, 12, 5)
        assert hello.warning_thresholds[:5] == tuple(int(v) for v in config.score_warning)
        assert hello.drift_thresholds[:5] == tuple(int(v) for v in config.score_drift)
        assert hello.warning_thresholds[5:] == (0, 0, 0)

        status = app.status()
        assert status.model_hash == hello.model_hash and status.state_bytes == hello.state_bytes
        assert (status.inferences, status.rx_frames, status.rx_errors, status.labels, status.label_errors) == (0, 1, 0, 0, 0)
        # protocol 5: the STATUS ends with the HELLO, for a host that connects after the boot
        assert status.hello == dataclasses.replace(hello, seq=status.seq)

        # LABEL before any inference, a device -> host frame, RESET (ACK then HELLO)
        assert app.command(P.Label(0, 1, 3)).result == ACK_UNKNOWN_INFERENCE
        assert app.command(P.Label(0, 0, 3)).result == ACK_UNKNOWN_INFERENCE
        not_command = app.command(P.Bye(0, 1, 2))
        assert (not_command.result, not_command.command_type) == (ACK_NOT_A_COMMAND, P.FrameType.BYE)
        assert app.command(P.Reset(0)).result == ACK_OK
        app.replayer.drain(0.1)
        assert len(app.frames(P.Hello)) == 2 and app.frames(P.Hello)[1].seq > 0
        # sequence numbers run on without a gap across every frame the app sent
        seqs = [f.seq for f in app.items if not isinstance(f, (P.TextLine, P.Corrupt))]
        assert seqs == list(range(len(seqs)))
        assert app.stop() == ""


def test_a_class_name_beyond_ascii_leaves_the_banner_a_text_line(tmp_path):
    """A class folder named "ring ümlaut" went into the banner as UTF-8, which the host read
    as a damaged frame: every boot counted a corrupt frame and `demo` failed. The banner's
    non-ASCII bytes now go as '?'."""
    include = tmp_path / "include"
    shutil.copytree(MODEL_DIR / "include", include)
    header = include / "td_reference_kws.h"
    text = header.read_text()
    assert '"_silence_"' in text
    header.write_text(text.replace('"_silence_"', '"ring \\303\\274mlaut"', 1))
    with HostApp(build_app("gcc", model_dir=tmp_path)) as app:
        app.replayer.drain(0.3)
        banner = app.frames(P.TextLine)
        assert not app.frames(P.Corrupt) and app.replayer.stats.corrupt == 0
        assert len(banner) == 1 and " classes=ring ??mlaut,_unknown_,yes," in banner[0].text, banner
        assert app.stop() == ""


def test_window_assembly_from_audio_frames_matches_the_twin(app_gcc, clips, reference):
    """Clips of many lengths in chunks of random sizes: empty, shorter than a window (padded),
    exactly one, one sample over (the tail dropped), two and a half windows."""
    model, config, ref = reference
    rng = np.random.default_rng(3)
    lengths = [0, 1, 100, 15999, 16000, 16001, 40000, 16000, 320, 32000]
    stream = clips.reshape(-1)
    replayed, offset = [], 0
    for n in lengths:
        replayed.append(stream[offset:offset + n])
        offset += n
    with HostApp(app_gcc) as app:
        for clip in replayed:
            app.replayer.chunk = int(rng.integers(1, P.AUDIO_MAX_SAMPLES + 1))
            app.replayer.replay_clip(clip)
        app.replayer.drain(0.1)
        status = app.status()
        stderr = app.stop()
    expected = expected_inferences(replayed, model, config, clips=True)
    assert len(expected) == 1 + 1 + 1 + 1 + 1 + 2 + 1 + 1 + 2  # per clip, in order
    assert compare(device_inferences(app.items), expected, bytes.fromhex(ref["model_id"])) == []
    assert status.inferences == len(expected) and status.rx_errors == 0
    assert stderr == ""


def test_label_feedback_reaches_the_monitor(app_gcc, clips, reference):
    """LABEL for recent inferences: accepted, counted by the monitor's error-rate test (the
    twin fed the same feedback agrees on every later INFERENCE); too old, future or
    out-of-range labels are refused."""
    from tinydrift.monitor.twin import MonitorTwin, window_energies, window_summary
    from tinydrift.frontend import features_int8
    from tinydrift.model.runtimes import run_tflm

    model, config, ref = reference
    n = 12
    with HostApp(app_gcc) as app:
        acks = []
        for i in range(n):
            app.replayer.replay_clip(clips[i])
            # a wrong label for every inference: the error rate climbs
            acks.append(app.command(P.Label(0, i + 1, (int(clips[i][0]) & 7) + 2)).result)
        bad_class = app.command(P.Label(0, n, 12)).result
        future = app.command(P.Label(0, n + 1, 0)).result
        app.replayer.drain(0.1)
        stderr = app.stop()
    assert acks == [ACK_OK] * n and bad_class == ACK_BAD_LABEL and future == ACK_UNKNOWN_INFERENCE
    features = np.stack([features_int8(c) for c in clips[:n]])
    outputs = run_tflm(model, features)
    twin = MonitorTwin(config, 1)
    device = device_inferences(app.items)
    for i in range(n):
        for start in range(0, 16000, 320):
            twin.sensor_update(clips[i][None, start:start + 320])
        summary = window_summary(features[i:i + 1], window_energies(clips[i][None], 320))
        result = twin.update(summary, outputs[i:i + 1])
        assert device[i][0].alarm_bits == int(result["alarms"][0]), i
        assert device[i][0].scores[:5] == tuple(int(v) for v in result["cusum"][0])
        twin.label_feedback(int(result["predicted"][0]), (int(clips[i][0]) & 7) + 2)
    assert stderr == ""


def test_a_dc_offset_is_dated_by_the_first_inference_that_hears_it(app_gcc, clips, reference):
    """Clips replayed one per inference, a DC offset on every clip from the 21st: the app runs
    sensor health on a window's blocks before the monitor update that counts the window, so
    the fault's run begins in inference 21, not 20 (whose audio was clean), and SENSOR_FAULT,
    which latches on the window's 50th block, is dated 21 too (alarm_index, change_index: the
    first INFERENCE frame showing it, as a score's latch is). After RESET, an offset from the
    first clip is dated 1, not 0 (which the protocol reads as no alarm). Device and twin agree."""
    from tinydrift.monitor.config import ALARM_SENSOR_FAULT

    model, config, ref = reference
    offset = 2 * int(config.dc_level)
    shifted = np.clip(clips.astype(np.int32) + offset, -32768, 32767).astype(np.int16)
    first_run = [*clips[:20], *shifted[20:24]]
    second_run = list(shifted[24:26])
    with HostApp(app_gcc) as app:
        app.replayer.replay(first_run)
        app.replayer.drain(0.1)
        before_reset = len(device_inferences(app.items))
        assert app.command(P.Reset(0)).result == ACK_OK
        app.replayer.replay(second_run)
        app.replayer.drain(0.1)
        stderr = app.stop()
    device = device_inferences(app.items)
    model_id = bytes.fromhex(ref["model_id"])
    for run, frames in ((first_run, device[:before_reset]), (second_run, device[before_reset:])):
        expected = expected_inferences(run, model, config, clips=True)
        assert compare(frames, expected, model_id) == []
    first = [f for f, _ in device[:before_reset] if f.alarm_bits & ALARM_SENSOR_FAULT]
    assert first[0].inference_index == 21 and (first[0].alarm_index, first[0].change_index) == (21, 21)
    again = device[before_reset][0]
    assert again.inference_index == 1 and again.alarm_bits & ALARM_SENSOR_FAULT
    assert (again.alarm_index, again.change_index) == (1, 1)
    assert stderr == ""


def test_a_reboot_keeps_the_reference_so_a_drift_across_it_still_alarms(app_gcc, clips, reference, tmp_path):
    """Commissioned on clean clips, the device keeps its reference (TD_PORT_KEEP) and, booted
    again into a room of loud noise, takes it back (`reference=kept`, bit for bit what the
    twin given the twin's kept reference logs) and raises DATA_DRIFT within 30 inferences; a
    board that keeps nothing learns the noise as its normal and stays quiet. A RESET forgets
    what was kept, and a torn record is not taken."""
    from tinydrift.monitor.config import ALARM_DATA_DRIFT
    from tinydrift.monitor.twin import MonitorTwin

    model, config, ref = reference
    clean = np.tile(clips, (config.commission_n // len(clips) + 2, 1))[:config.commission_n + 10]
    rng = np.random.default_rng(5)
    rms = np.sqrt(np.mean(clips.astype(np.float64) ** 2))
    noisy = np.clip(clips + rng.normal(0, rms, clips.shape), -32768, 32767).astype(np.int16)[:30]
    keep = tmp_path / "board.keep"

    def boot(keep_file, audio, reset_after=False, twin=None):
        with HostApp(app_gcc, keep=keep_file) as app:
            app.replayer.replay(list(audio))
            app.replayer.drain(0.1)
            if reset_after:
                assert app.command(P.Reset(0)).result == ACK_OK
                app.replayer.drain(0.1)
            assert app.stop() == ""
        lines = [line.text for line in app.frames(P.TextLine)]
        device = device_inferences(app.items)
        if twin is not None:
            assert compare(device, expected_inferences(list(audio), model, config, twin=twin),
                           bytes.fromhex(ref["model_id"])) == []
        frames = [f for f, _ in device]
        first_drift = next((f.inference_index for f in frames if f.alarm_bits & ALARM_DATA_DRIFT), None)
        said.append(lines[1:])
        return lines[0].rsplit(" ", 1)[-1], first_drift

    said = []

    first = MonitorTwin(config, 1)
    assert boot(keep, clean, twin=first) == ("reference=learning", None)
    assert keep.stat().st_size > config.n_summary * 8  # the reference, saved once learned
    kept = keep.read_bytes()
    learned = MonitorTwin(config, 1)  # the reference as saved: the moment it is learned
    expected_inferences(list(clean[:config.commission_n]), model, config, twin=learned)
    rebooted = MonitorTwin(config, 1)
    rebooted.restore_commission(learned.kept_commission())
    reference_kept, alarm = boot(keep, noisy, twin=rebooted)
    assert reference_kept == "reference=kept" and alarm is not None  # within its 30 noisy clips
    # the reference in effect, as the app says once it is: learned, then kept, the same share
    dead = dead_share_text(int(learned.comm_dead[0]))
    assert said == [[f"tinydrift app reference=learned dead={dead}"], [f"tinydrift app reference=kept dead={dead}"]]
    assert boot(None, noisy) == ("reference=learning", None)  # nothing kept: the noise is learned
    keep.write_bytes(kept[:40] + bytes([kept[40] ^ 1]) + kept[41:])
    assert boot(keep, noisy[:5]) == ("reference=learning", None)  # torn: not taken
    keep.write_bytes(kept)
    assert boot(keep, noisy[:1], reset_after=True)[0] == "reference=kept"
    assert boot(keep, noisy[:1])[0] == "reference=learning"  # the RESET forgot it


def dead_share_text(share_q16: int) -> str:
    """A dead share (Q16) as the app prints it: tenths of a percent, rounded."""
    tenths = (share_q16 * 1000 + 32768) >> 16
    return f"{tenths // 10}.{tenths % 10}%"


def test_the_app_says_how_much_of_its_sensor_was_dead_while_it_learned(app_gcc, clips, reference):
    """A sensor already failing on and off as the device learns its reference is learned as
    normal (trial 22: nothing said so): once commissioning ends, the app's line gives the
    dead share it learned, as the twin learns it."""
    from tinydrift.monitor.twin import MonitorTwin

    model, config, ref = reference
    audio = np.tile(clips, (config.commission_n // len(clips) + 2, 1))[:config.commission_n + 2]
    audio[::3, -4000:] = 0  # a quarter second dead in every third clip
    twin = MonitorTwin(config, 1)
    with HostApp(app_gcc) as app:
        app.replayer.replay(list(audio))
        app.replayer.drain(0.1)
        assert app.stop() == ""
    assert compare(device_inferences(app.items), expected_inferences(list(audio), model, config, twin=twin),
                   bytes.fromhex(ref["model_id"])) == []
    dead = dead_share_text(int(twin.comm_dead[0]))
    assert 0.05 < float(dead[:-1]) / 100 < 0.1
    assert [line.text for line in app.frames(P.TextLine)][1:] == [f"tinydrift app reference=learned dead={dead}"]


def check_labels_latch_error_rate(executable, clips: np.ndarray, config: MonitorConfig) -> None:
    """LABEL frames past the model config's ddm_min_labels, one for each inference as it
    comes: right ones first (the error rate settles low), then wrong ones, as many as the
    twin's error-rate test needs to latch ERROR_RATE. The device must take every label, count
    them in STATUS (labels, label_errors), take a label sent again (its ACK lost on the way)
    without counting it twice, and report ERROR_RATE latched in the next INFERENCE, not before."""
    from tinydrift.monitor.twin import MonitorTwin

    right = config.ddm_min_labels + 10
    twin = MonitorTwin(config, 1)
    for _ in range(right):
        twin.label_feedback(0, 0)
    wrong = 0
    while not twin.label_feedback(0, 1)["alarms"][0] & ALARM_ERROR_RATE:
        wrong += 1
    wrong += 1
    n_labels = right + wrong
    with HostApp(executable) as app:
        acks, labels = [], []
        for k in range(n_labels):
            app.replayer.replay_clip(clips[k % len(clips)])
            inference = app.frames(P.Inference)[-1]
            # the device's own prediction, or another class once the right ones are in
            labels.append(P.Label(0, inference.inference_index,
                                  (inference.predicted_class + (k >= right)) % config.n_classes))
            acks.append(app.command(labels[-1]).result)
            if k == right - 1:
                again = [app.command(labels[j]).result for j in (-1, -2, -1)]
                status_again = app.status()
        labelled = app.frames(P.Inference)
        status = app.status()
        config_ack = app.command(P.Config(0, 1, 0))  # a heartbeat after every inference from now on
        app.replayer.replay_clip(clips[n_labels % len(clips)])
        app.replayer.drain(0.1)
        after = app.frames(P.Inference)[-1]
        heartbeats = app.frames(P.Heartbeat)
        hello = app.frames(P.Hello)[0]
        stderr = app.stop()
    assert len(labelled) == n_labels and not any(i.alarm_bits & ALARM_ERROR_RATE for i in labelled)
    assert acks == [ACK_OK] * n_labels and again == [ACK_OK] * 3
    assert (status.labels, status.label_errors) == (right + wrong, wrong), "the device did not count the labels"
    assert (status_again.labels, status_again.label_errors) == (right, 0), "a label sent again counted twice"
    assert after.inference_index == n_labels + 1
    assert after.alarm_bits & ALARM_ERROR_RATE, f"no ERROR_RATE after {wrong} wrong labels: {P.alarm_names(after.alarm_bits)}"
    # the heartbeat names the alarm and when it showed, as the twin reads the INFERENCE frames
    assert config_ack.result == ACK_OK and len(heartbeats) == 1
    twin = HeartbeatTwin(hello.drift_thresholds)  # the build's default interval, until CONFIG
    assert [twin.add(i) for i in labelled] == [None] * n_labels
    twin.interval = 1
    want = twin.add(after)
    want.seq, want.uptime_ms = heartbeats[0].seq, heartbeats[0].uptime_ms
    assert heartbeats[0] == want and want.window == n_labels + 1  # CONFIG kept the window running
    error_rate = ALARM_ERROR_RATE.bit_length() - 1
    assert want.latch_delay[error_rate] == after.inference_index - after.alarm_index
    assert [d for k, d in enumerate(want.latch_delay) if k != error_rate and not after.alarm_bits >> k & 1] \
        == [P.NOT_LATCHED] * (P.ALARM_TYPES - bin(after.alarm_bits & 0x1F).count("1"))
    assert stderr == ""


def test_labels_past_the_minimum_latch_error_rate_on_the_device(app_gcc, clips, reference):
    _, config, _ = reference
    check_labels_latch_error_rate(app_gcc, clips, config)


def _corrupt_runs(rng: random.Random) -> list[bytes]:
    """Wire bytes that must be refused: CRC, COBS, SHORT, VERSION, TYPE, LENGTH errors,
    garbage text, an overlong run, and random noise."""
    def frame_of(packet: bytes) -> bytes:
        return b"\x00" + P.cobs_encode(packet + zlib.crc32(packet).to_bytes(4, "little")) + b"\x00"

    runs = []
    good = bytearray(P.encode(P.Audio(0, 0, P.AUDIO_FLAG_START, tuple(range(100)))))
    good[10] ^= 0x20
    runs.append(bytes(good))  # CRC
    runs.append(b"\x00\x01\x05\x02\x03\x00")  # COBS (run ends inside a block) or SHORT
    runs.append(frame_of(struct.pack("<BBBI", 0, P.VERSION + 1, P.FrameType.RESET, 1)))  # VERSION
    runs.append(frame_of(struct.pack("<BBBI", 0, 1, 0x99, 1)))  # TYPE
    runs.append(frame_of(struct.pack("<BBBI", 0, 1, P.FrameType.LABEL, 1) + b"\x01\x00"))  # LENGTH
    runs.append(frame_of(struct.pack("<BBBIIHH", 0, 1, P.FrameType.AUDIO, 1, 0, 300, 3) + bytes(600)))  # LENGTH
    runs.append(b"\x00hello\x07world\x00")  # GARBAGE
    runs.append(b"\x00\x01" + b"\xff" * 2000 + b"\x00")  # OVERFLOW
    for _ in range(20):  # noise in a frame's place (0x01 first: a frame, not text)
        runs.append(b"\x00\x01" + bytes(rng.randrange(1, 256) for _ in range(rng.randrange(0, 700))) + b"\x00")
    return runs


def test_malformed_input_is_counted_and_never_acted_on(app_gcc, clips, reference):
    """Corrupt frames of every kind and random noise between valid commands: none is
    answered or acted on, each is counted once in STATUS.rx_errors, and the app keeps
    working (a clip replayed afterwards is still bit-exact). Also AUDIO out of order: a
    chunk without START, a START at another offset, a lost chunk, a repeated chunk."""
    model, config, ref = reference
    rng = random.Random(9)
    runs = _corrupt_runs(rng)
    with HostApp(app_gcc) as app:
        app.replayer.drain(0.2)
        for run in runs:
            app.replayer.port.write(run)
        after = app.status()
        # AUDIO out of order, answered with the offset the app expects
        chunk = tuple(int(s) for s in clips[0][:256])
        assert (app.command(P.Audio(0, 0, 0, chunk)).result, ) == (ACK_AUDIO_GAP,)
        start_elsewhere = app.command(P.Audio(0, 256, P.AUDIO_FLAG_START, chunk))
        assert (start_elsewhere.result, start_elsewhere.detail) == (ACK_AUDIO_GAP, 0)
        assert app.command(P.Audio(0, 0, P.AUDIO_FLAG_START, chunk)).result == ACK_OK
        skipped = app.command(P.Audio(0, 512, 0, chunk))
        assert (skipped.result, skipped.detail) == (ACK_AUDIO_GAP, 256)
        repeated = app.command(P.Audio(0, 0, 0, chunk))
        assert (repeated.result, repeated.detail) == (ACK_AUDIO_GAP, 256)
        # the clip restarts cleanly and is still computed right
        app.replayer.replay_clip(clips[1])
        app.replayer.drain(0.1)
        final = app.status()
        stderr = app.stop()
    acked = [a.command_seq for a in app.frames(P.Ack)]  # only our commands were answered, once each
    assert len(set(acked)) == len(acked) == app.replayer.seq
    assert after.rx_errors == len(runs) and after.rx_frames == 1
    assert final.rx_errors == len(runs)
    expected = expected_inferences([clips[1]], model, config, clips=True)
    assert compare(device_inferences(app.items), expected, bytes.fromhex(ref["model_id"])) == []
    assert stderr == ""


@pytest.mark.slow  # ~11 s; window assembly at the default stride stays in the default tier
def test_overlapping_windows_with_a_shorter_stride(clips, reference):
    """Built with -DTD_APP_DEFAULT_STRIDE=5000: a 3 s clip gives windows ending at 16,000,
    21,000, ..., 46,000, each from its own samples, as the twin computes them."""
    model, config, ref = reference
    with HostApp(build_app("gcc", {"TD_APP_DEFAULT_STRIDE": 5000})) as app:
        long_clip = clips[:3].reshape(-1)
        app.replayer.replay_clip(long_clip)
        app.replayer.drain(0.1)
        stderr = app.stop()
    expected = expected_inferences([long_clip], model, config, stride=5000, clips=True)
    assert list(expected.window_end) == [16000, 21000, 26000, 31000, 36000, 41000, 46000]
    assert compare(device_inferences(app.items), expected, bytes.fromhex(ref["model_id"])) == []
    assert stderr == ""


def test_heartbeats_every_n_inferences_and_heartbeat_only_mode(clips, reference):
    """Built with a device id, a boot count and a heartbeat every 4 inferences: HELLO names
    the board; after every 4th INFERENCE comes a HEARTBEAT whose inference count, class
    shares, means and maxima are those of the 4 INFERENCE frames before it (the twin fed the
    device's own frames). CONFIG then asks for heartbeats only, every 3: no INFERENCE or TRACE
    frame follows, and the heartbeats are what the twin predicts from the audio."""
    model, config, ref = reference
    model_id = bytes.fromhex(ref["model_id"])
    defines = {"TD_PORT_DEVICE_ID": "0xfedcba9876543210u", "TD_PORT_BOOT_COUNT": 41, "TD_APP_HEARTBEAT_INTERVAL": 4}
    with HostApp(build_app("gcc", defines)) as app:
        for clip in clips[:9]:
            app.replayer.replay_clip(clip)
        app.replayer.drain(0.1)
        first_part = len(app.items)
        refused = app.command(P.Config(0, 0, P.CONFIG_FLAG_HEARTBEAT_ONLY))
        accepted = app.command(P.Config(0, 3, P.CONFIG_FLAG_HEARTBEAT_ONLY))
        for clip in clips[9:16]:
            app.replayer.replay_clip(clip)
        app.replayer.drain(0.1)
        stderr = app.stop()
    hello = app.frames(P.Hello)[0]
    assert (hello.device_id, hello.boot_count) == (0xFEDCBA9876543210, 41)
    assert (refused.result, accepted.result, accepted.detail) == (ACK_BAD_CONFIG, ACK_OK, 3)

    # part 1: INFERENCE frames and a HEARTBEAT after every 4th, summarizing those 4
    items = app.items[:first_part]
    inferences = [i for i in items if isinstance(i, P.Inference)]
    heartbeats = [i for i in items if isinstance(i, P.Heartbeat)]
    assert len(inferences) == 9 and len(heartbeats) == 2
    twin = HeartbeatTwin(hello.drift_thresholds, interval=4)
    kinds = [type(i).__name__ for i in items if isinstance(i, (P.Inference, P.Heartbeat))]
    assert kinds == ["Inference"] * 4 + ["Heartbeat"] + ["Inference"] * 4 + ["Heartbeat", "Inference"]
    predicted = [h for h in map(twin.add, inferences) if h is not None]
    for got, want, window in zip(heartbeats, predicted, (inferences[:4], inferences[4:8])):
        assert got.inference_index == window[-1].inference_index and got.window == 4
        shares = [255 * sum(f.predicted_class == c for f in window) / 4 for c in range(12)]
        assert all(abs(a - b) <= 0.5 for a, b in zip(got.class_share, shares))
        assert got.mean_confidence == sum(f.confidence for f in window) // 4
        want.seq, want.uptime_ms = got.seq, got.uptime_ms
        assert got == want
    assert 0 < heartbeats[0].uptime_ms <= heartbeats[1].uptime_ms

    # part 2: heartbeats only, every 3 inferences, as the twin predicts them from the audio
    rest = app.items[first_part:]
    assert not [i for i in rest if isinstance(i, (P.Inference, P.Trace))]
    got = [i for i in rest if isinstance(i, P.Heartbeat)]
    expected = expected_inferences(list(clips[:16]), model, config, clips=True)
    twin = HeartbeatTwin(hello.drift_thresholds, interval=4)
    want = []
    for i in range(len(expected)):
        if i == 9:
            twin.interval = 3
        beat = twin.add(expected.inference_frame(i, model_id))
        if beat is not None and i >= 9:
            want.append(beat)
    assert len(got) == 2 == len(want)  # the window held inference 9 at CONFIG: 9-11, 12-14
    assert [g.inference_index for g in got] == [11, 14]
    for g, w in zip(got, want):
        w.seq, w.uptime_ms = g.seq, g.uptime_ms
    assert got == want
    assert stderr == ""


def test_a_keyword_config_of_another_summary_length_does_not_build(tmp_path):
    """A keyword export from before the window's quiet level (41 summary values) against this
    app (42): the build stops with what to do, rather than a board that refuses to start."""
    from tinydrift.errors import TinydriftError

    old = tmp_path / "old"
    shutil.copytree(MODEL_DIR / "include", old / "include")
    header = old / "include" / "td_monitor_config_kws.h"
    header.write_text(header.read_text().replace("_N_SUMMARY 42\n", "_N_SUMMARY 41\n"))
    with pytest.raises(TinydriftError, match=r"(?s)C build failed.*not this app's.*run tinydrift export"):
        build_app(model_dir=old)


def test_a_keep_file_is_one_board_s_and_nothing_else_is_taken_for_one(tmp_path):
    """emulate --keep (trial 21): a file that holds something else is refused, not overwritten
    (a 640 KB WAV became a 444-byte record); so is a pipe (the board hung at boot reading it);
    and a second board on a file one already holds is refused (board A took board B's noisy
    room as its reference and false-alarmed)."""
    from tinydrift.errors import TinydriftError
    from tinydrift.target import emulator

    wav = tmp_path / "speech.wav"
    wav.write_bytes(b"RIFF" + bytes(range(256)) * 10)
    with pytest.raises(TinydriftError, match="2,564 bytes that are no board's kept reference"):
        emulator.keep_file_argument(wav, tmp_path)
    assert wav.read_bytes()[:4] == b"RIFF"
    pipe = tmp_path / "pipe"
    os.mkfifo(pipe)
    with pytest.raises(TinydriftError, match="not a regular file"):
        emulator.keep_file_argument(pipe, tmp_path)
    for fine in (b"", bytes(444), emulator.KEEP_MAGIC + bytes(440)):  # nothing yet, forgotten, a record
        keep = tmp_path / f"board-{len(fine)}-{fine[:1].hex()}.keep"
        keep.write_bytes(fine)
        assert emulator.keep_file_argument(keep, tmp_path) == f"keep={keep.resolve()}"
    keep = tmp_path / "shared.keep"
    with emulator.keep_file_held(keep):
        with pytest.raises(TinydriftError, match="another emulated board keeps its reference there"):
            with emulator.keep_file_held(keep):
                pass
    with emulator.keep_file_held(keep):  # let go: the next boot of the same board takes it
        pass
