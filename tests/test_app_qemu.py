"""The firmware app in QEMU against the host, bit for bit.

The app (firmware/src/main.c + lib/tinydrift/src/app) runs on the emulated Cortex-M4 with
the project's model (models/kws). It hears in-domain clips (the `test` split) and then
accent-shifted clips (the `accent` split): hundreds through the emulated board's
microphone file (semihosting) and a few dozen replayed over the serial link as AUDIO
frames. Every INFERENCE frame it logs, and the input summary and model output of every
TRACE frame, must equal the host twin's (tinydrift.link.replay.expected_inferences:
features_int8 per window, TFLite Micro, summarize_frames, MonitorTwin), and the first
drift alarm must come after the shift, not before.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from tinydrift.data.clipset import ClipSet
from tinydrift.data.labels import LABELS
from tinydrift.target import emulator, platformio
from tinydrift.link import protocol as P
from tinydrift.logbook.capture import open_port
from tinydrift.link.replay import Replayer, write_pcm
from tinydrift.app import HeartbeatTwin, compare, device_inferences, expected_inferences
from tinydrift.monitor.config import MonitorConfig
from tinydrift.firmware import REPO_ROOT

pytestmark = pytest.mark.skipif(
    shutil.which(emulator.QEMU) is None or platformio.pio_executable() is None,
    reason="needs qemu-system-arm and PlatformIO (scripts/setup.sh installs both)",
)

MODEL_DIR = REPO_ROOT / "models" / "kws"
FULL_DATA = REPO_ROOT / "build" / "data" / "kws"
# Without `tinydrift data kws`'s default set, a small one with the same voices is synthesized
# once (about 600 clips) and cached here.
SMALL_DATA = REPO_ROOT / "build" / "test_data" / "app_qemu"
# In domain: the 300 inferences the device commissions its reference on, and 100 more. The
# small set must hold that many distinct in-domain clips, or commissioning would take in
# shifted ones and learn the shift as normal.
N_IN_DOMAIN, N_SHIFTED = 400, 360
SMALL_PER_CLASS = {"train": 1, "val": 1, "ref": 1, "test": -(-N_IN_DOMAIN // len(LABELS)),
                   "accent": -(-N_SHIFTED // len(LABELS))}
N_SERIAL = 20


@pytest.fixture(scope="module")
def reference():
    ref = json.loads((MODEL_DIR / "reference.json").read_text())
    model = (MODEL_DIR / "model_int8.tflite").read_bytes()
    return model, MonitorConfig.from_dict(ref["monitor_config"]), bytes.fromhex(ref["model_id"])


@pytest.fixture(scope="module")
def splits():
    """(test, accent) clip sets: the default data set when it is there, else a small one."""
    from tinydrift.data.synth import KwsConfig, build_kws

    data = FULL_DATA
    if not all((data / f"{s}.npz").exists() for s in ("test", "accent")):
        data = SMALL_DATA
        build_kws(data, KwsConfig(seed=0, clips_per_class=SMALL_PER_CLASS))
    return ClipSet.load(data / "test.npz"), ClipSet.load(data / "accent.npz")


@pytest.fixture(scope="module")
def elf():
    return emulator.build_firmware()


def shuffled(clips: ClipSet, n: int, seed: int) -> np.ndarray:
    assert len(clips) >= n, f"the data set holds {len(clips)} clips of this split, the test needs {n}"
    order = np.random.default_rng(seed).permutation(len(clips))[:n]
    return clips.audio[order]


def test_file_source_in_qemu_is_bit_exact_and_alarms_only_after_the_shift(elf, splits, reference, tmp_path):
    model, config, model_id = reference
    in_domain, shifted = shuffled(splits[0], N_IN_DOMAIN, 1), shuffled(splits[1], N_SHIFTED, 2)
    stream = np.concatenate([in_domain, shifted])
    pcm = write_pcm(stream, tmp_path / "stream.pcm")
    keep = tmp_path / "board.keep"  # the board's storage that outlives a power cycle
    result = emulator.run(elf, timeout=300, semihosting_args=[emulator.audio_file_argument(pcm, tmp_path),
                                                              emulator.keep_file_argument(keep, tmp_path)])
    items = P.StreamParser().feed(result.output)
    assert result.exit_code == 0, result.output[-500:]
    frames = [i for i in items if not isinstance(i, (P.TextLine, P.Corrupt))]
    assert isinstance(frames[0], P.Hello) and frames[0].model_hash.hex().startswith(model_id.hex())
    assert isinstance(frames[-1], P.Bye) and frames[-1].exit_code == 0 and frames[-1].inferences == len(stream)
    assert not any(isinstance(i, P.Corrupt) for i in items)

    device = device_inferences(items)
    expected = expected_inferences([stream.reshape(-1)], model, config, clips=False)
    assert len(expected) == len(stream)
    assert compare(device, expected, model_id) == []

    latched = [inference for inference, _ in device if inference.alarm_bits & 0x1F]
    assert latched, "no drift alarm after the shift"
    first = latched[0]
    assert first.inference_index > N_IN_DOMAIN
    assert first.alarm_bits & 0x3, P.alarm_names(first.alarm_bits)  # DATA_DRIFT or CONFIDENCE_DRIFT
    assert first.change_index > N_IN_DOMAIN // 2  # the estimated change point is near the shift
    # every frame from then on says when the first alarm latched
    assert {inference.alarm_index for inference in latched} == {first.inference_index}

    # a HEARTBEAT every 100 inferences (the build's default), each what the twin makes of
    # the INFERENCE frames before it, the alarm and its latch times included
    heartbeats = [i for i in items if isinstance(i, P.Heartbeat)]
    twin = HeartbeatTwin(frames[0].drift_thresholds, interval=100)
    predicted = [beat for beat in (twin.add(inference) for inference, _ in device) if beat is not None]
    assert len(heartbeats) == len(stream) // 100 == len(predicted)
    for got, want in zip(heartbeats, predicted):
        want.seq, want.uptime_ms = got.seq, got.uptime_ms
    assert heartbeats == predicted
    # those after the alarm carry it (the full data set's stream alarms 301 inferences after
    # the shift, past the last heartbeat: then the twin's equality above is the check)
    for beat in (h for h in heartbeats if h.inference_index >= first.inference_index):
        assert beat.alarm_index == first.inference_index and beat.latch_delay[0:2].count(0) >= 1

    # A power cycle into loud noise: the board takes back the reference it kept once it had
    # learned it (the `keep` file, through semihosting) and alarms on the noise, where one
    # that kept nothing would learn the noise as its normal.
    rng = np.random.default_rng(3)
    rms = np.sqrt(np.mean(in_domain[:40].astype(np.float64) ** 2))
    noisy = in_domain[:40] + rng.normal(0, rms, (40, in_domain.shape[1]))
    pcm = write_pcm(np.clip(noisy, -32768, 32767).astype(np.int16), tmp_path / "noisy.pcm")
    again = emulator.run(elf, timeout=120, semihosting_args=[emulator.audio_file_argument(pcm, tmp_path),
                                                             emulator.keep_file_argument(keep, tmp_path)])
    items = P.StreamParser().feed(again.output)
    assert again.exit_code == 0, again.output[-500:]
    assert [i.text for i in items if isinstance(i, P.TextLine)][0].endswith(" reference=kept")
    assert any(f.alarm_bits & 0x1 for f, _ in device_inferences(items)), "no DATA_DRIFT after the power cycle"


@pytest.mark.slow  # 30 s in QEMU; the host build replays over a real socket in the default tier (test_app_replay.py)
def test_clips_replayed_over_the_serial_link_are_bit_exact(elf, splits, reference):
    """AUDIO frames through QEMU's TCP serial port with flow control: full clips, a short one
    (padded on the device) and a long one (two windows at the default stride), then the
    commands: STATUS_REQUEST, LABEL, RESET."""
    model, config, model_id = reference
    clips = list(np.concatenate([shuffled(splits[0], N_SERIAL // 2, 3), shuffled(splits[1], N_SERIAL // 2, 4)]))
    clips.insert(3, clips[3][:9000])
    clips.insert(7, np.concatenate([clips[7], clips[8]]))
    with emulator.start(elf) as board:
        port = open_port(board.url, timeout=0.05)
        try:
            replayer = Replayer(port, window=4, keep=True)
            stats = replayer.replay(clips)
            status_ack = replayer.command(P.StatusRequest(0))
            label_ack = replayer.command(P.Label(0, stats.inferences, 2))
            stale_ack = replayer.command(P.Label(0, stats.inferences + 5, 2))
            reset_ack = replayer.command(P.Reset(0))
            replayer.drain(0.3)
        finally:
            port.close()
    items = stats.received
    assert stats.corrupt == 0 and stats.gaps == 0 and stats.timeouts == 0
    expected = expected_inferences(clips, model, config, clips=True)
    assert len(expected) == len(clips) + 1  # the long clip makes two windows, the short one one
    assert compare(device_inferences(items), expected, model_id) == []

    assert [a.result for a in (status_ack, label_ack, stale_ack, reset_ack)] == [0, 0, 2, 0]
    status = next(i for i in items if isinstance(i, P.Status))
    assert status.inferences == len(expected) and status.model_hash[:8] == model_id
    assert status.rx_errors == 0 and status.rx_frames == stats.frames_sent + 1  # + the STATUS_REQUEST
    hellos = [i for i in items if isinstance(i, P.Hello)]
    assert len(hellos) == 2  # at boot and after RESET
    assert hellos[-1].seq > 0 and hellos[-1].state_bytes == hellos[0].state_bytes > 0


def test_instructions_per_inference_under_icount(elf, splits, tmp_path):
    """With -icount shift=0 one cycle is 40 instructions: the TRACE frames count each stage.
    The drift monitor (input summary, update, and sensor health on the PCM) must cost at most
    2 % of the inference."""
    stream = shuffled(splits[0], 4, 5)
    pcm = write_pcm(stream, tmp_path / "four.pcm")
    result = emulator.run(elf, icount_shift=0, timeout=120,
                          semihosting_args=[emulator.audio_file_argument(pcm, tmp_path)])
    traces = [i for i in P.StreamParser().feed(result.output) if isinstance(i, P.Trace)]
    assert result.exit_code == 0 and len(traces) == 4
    stages = np.array([[t.cycles_frontend, t.cycles_model, t.cycles_sensor, t.cycles_monitor] for t in traces])
    instructions = emulator.instructions_from_cycles(stages)
    frontend, model, sensor, monitor = instructions.mean(axis=0)
    print(f"instructions per inference: front end {frontend:,.0f}, model {model:,.0f}, "
          f"sensor health {sensor:,.0f}, summary + monitor update {monitor:,.0f}")
    assert 3e6 < frontend < 6e6  # ~4.16 M per 1 s of audio
    assert model > 1e6
    assert sensor + monitor <= 0.02 * (frontend + model + sensor + monitor)


def test_emulate_serves_the_app_and_its_microphone_file(elf, tmp_path):
    """`tinydrift emulate --serve --audio`: the URL comes first, no frame is lost before the
    client connects, one INFERENCE per second of audio, exit code 0 at the file's end."""
    import socket
    import subprocess
    import sys

    assert emulator.hears_microphone(elf) is True  # --audio is for it (a camera build's is refused)
    rng = np.random.default_rng(5)
    seconds = 3
    pcm = (rng.standard_normal(16000 * seconds) * 2000).astype("<i2")
    audio = tmp_path / "mic.pcm"
    audio.write_bytes(pcm.tobytes())
    command = [sys.executable, "-c", "from tinydrift.cli.device import emulate; emulate()",
               "--elf", str(elf), "--serve", "--audio", str(audio), "--timeout", "60"]
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as proc:
        url = proc.stdout.readline().decode().strip()
        assert url.startswith("socket://127.0.0.1:"), url
        port = int(url.rsplit(":", 1)[1])
        received = bytearray()
        with socket.create_connection(("127.0.0.1", port), timeout=60) as link:
            while chunk := link.recv(65536):
                received += chunk
        assert proc.wait(timeout=60) == 0, proc.stderr.read().decode()
    items = P.StreamParser().feed(bytes(received))
    assert any(isinstance(i, P.Hello) for i in items)
    inferences = [i for i in items if isinstance(i, P.Inference)]
    assert [i.inference_index for i in inferences] == list(range(1, seconds + 1))
    assert any(isinstance(i, P.Bye) for i in items)
    assert not [i for i in items if isinstance(i, P.Corrupt)]


def test_emulate_on_a_terminal_shows_frames_as_lines_and_takes_a_wav(elf, splits, tmp_path):
    """`tinydrift emulate` attached to a terminal (a pty here) once printed the app's binary
    frames as they were; a WAV given to --audio was read as raw PCM, header and all."""
    import os
    import pty
    import subprocess
    import sys
    import wave

    clips = shuffled(splits[0], 3, 6)
    wav = tmp_path / "three clips.wav"
    with wave.open(str(wav), "wb") as w:
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(16000)
        w.writeframes(np.concatenate(clips).astype("<i2").tobytes())
    master, slave = pty.openpty()
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT / "host"))
    proc = subprocess.Popen([sys.executable, "-m", "tinydrift", "emulate", "--elf", str(elf), "--audio", str(wav),
                             "--timeout", "60"], stdin=subprocess.DEVNULL, stdout=slave, stderr=subprocess.PIPE,
                            env=env)
    os.close(slave)
    shown = bytearray()
    try:
        while chunk := os.read(master, 4096):
            shown += chunk
    except OSError:  # the pty's far end closed: the command exited
        pass
    finally:
        os.close(master)
    assert proc.wait(timeout=60) == 0, proc.stderr.read()
    lines = shown.decode().splitlines()
    assert lines[0].startswith("tinydrift app board=mps2_an386 model=")  # the app's text line, as it is
    assert lines[1].startswith("[HELLO model ") and lines[1].endswith(f"{len(LABELS)} classes]")
    inferences = [line for line in lines if line.startswith("[INFERENCE ")]
    assert [line.split(":")[0] for line in inferences] == ["[INFERENCE 1", "[INFERENCE 2", "[INFERENCE 3"]
    assert lines[-1] == "[BYE exit code 0 after 3 inferences]"
    assert all(0x20 <= b < 0x7F or b in b"\r\n" for b in shown)  # nothing binary reaches the terminal


def test_emulate_builds_and_boots_a_model_folder_s_firmware(elf, splits, tmp_path):
    """The README booted a wake-word model with `--elf firmware/.pio/build/...`: the image the
    default model built last, not the folder's. `emulate --model DIR` builds the folder's."""
    import subprocess
    import sys
    import wave

    wav = tmp_path / "two.wav"
    with wave.open(str(wav), "wb") as w:
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(16000)
        w.writeframes(np.concatenate(shuffled(splits[0], 2, 7)).astype("<i2").tobytes())
    env = dict(__import__("os").environ, PYTHONPATH=str(REPO_ROOT / "host"))
    done = subprocess.run([sys.executable, "-m", "tinydrift", "emulate", "--model", str(MODEL_DIR), "--audio", str(wav),
                           "--timeout", "60"], stdin=subprocess.DEVNULL, capture_output=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    hellos = [f for f in P.StreamParser().feed(done.stdout) if isinstance(f, P.Hello)]
    model_id = json.loads((MODEL_DIR / "reference.json").read_text())["model_id"]
    assert hellos and hellos[0].model_hash[:8].hex() == model_id
    assert b"nothing was heard" not in done.stderr
    both = subprocess.run([sys.executable, "-m", "tinydrift", "emulate", "--model", str(MODEL_DIR), "--elf", str(elf)],
                          capture_output=True, env=env, timeout=60)
    assert both.returncode == 2 and b"give one of them" in both.stderr


def test_emulate_says_when_the_audio_ended_before_the_first_inference(elf, tmp_path):
    """Trial 13: 100 samples into the board exited 0 without a word, where `wakeword detect`
    says nothing was heard."""
    import subprocess
    import sys

    from tinydrift.data.wavfolder import write_wav

    write_wav(tmp_path / "tiny.wav", np.zeros(100, dtype=np.int16))
    env = dict(__import__("os").environ, PYTHONPATH=str(REPO_ROOT / "host"))
    done = subprocess.run([sys.executable, "-m", "tinydrift", "emulate", "--elf", str(elf), "--audio",
                           str(tmp_path / "tiny.wav"), "--timeout", "60"], stdin=subprocess.DEVNULL,
                          capture_output=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    assert [f.inferences for f in P.StreamParser().feed(done.stdout) if isinstance(f, P.Bye)] == [0]
    assert (f"warning: {tmp_path / 'tiny.wav'} (0.006 s) ended before the board's first inference: nothing was "
            "heard").encode() in done.stderr, done.stderr
