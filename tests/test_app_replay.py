"""`tinydrift replay` over a real socket into the firmware in QEMU: a WAV folder streamed as
AUDIO frames, the device's answers stored in a capture database and checked against the
twin; and the flow control recovering a lost and a corrupted frame on the link."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from click.testing import CliRunner

from tinydrift.cli.main import TinydriftGroup
from tinydrift.target import emulator, platformio
from tinydrift.link import protocol as P
from tinydrift.logbook.capture import open_port
from tinydrift.cli.device import replay_command
from tinydrift.link.replay import Replayer, load_source
from tinydrift.app import compare, device_inferences, expected_inferences
from tinydrift.logbook.store import open_db
from tinydrift.monitor.config import MonitorConfig
from tinydrift.errors import TinydriftError
from tinydrift.firmware import REPO_ROOT

from conftest import write_wav

pytestmark = pytest.mark.skipif(
    shutil.which(emulator.QEMU) is None or platformio.pio_executable() is None,
    reason="needs qemu-system-arm and PlatformIO (scripts/setup.sh installs both)",
)
MODEL_DIR = REPO_ROOT / "models" / "kws"


@pytest.fixture(scope="module")
def reference():
    import json

    ref = json.loads((MODEL_DIR / "reference.json").read_text())
    return (MODEL_DIR / "model_int8.tflite").read_bytes(), MonitorConfig.from_dict(ref["monitor_config"]), ref


@pytest.fixture(scope="module")
def audio(app_clips):
    return app_clips("accent").audio[:8].reshape(-1)


@pytest.fixture(scope="module")
def elf():
    return emulator.build_firmware()


def replay_cli(source, board, db, *options, model_dir=MODEL_DIR):
    """`tinydrift replay SOURCE` into the board, storing what it answers in db."""
    group = TinydriftGroup()
    group.add_command(replay_command)
    named = ["--model-dir", str(model_dir)] if model_dir is not None else []
    return CliRunner().invoke(group, ["replay", str(source), "--port", board.url, "--db", str(db), *named, "--reset",
                                      *options])


def stored_session(db):
    """The parsed frames the capture database holds, its foreign count and its inference frames."""
    conn = open_db(db)
    raws = [r[0] for r in conn.execute("SELECT raw FROM frames ORDER BY id")]
    foreign, frames = conn.execute('SELECT "foreign", inference_frames FROM sessions').fetchone()
    conn.close()
    return [P.parse_packet(raw) for raw in raws], foreign, frames


def test_replay_command_streams_a_wav_folder_and_stores_what_the_device_answers(elf, audio, reference, tmp_path):
    model, config, ref = reference
    folder = tmp_path / "wavs"
    write_wav(folder / "a_one_second.wav", audio[:16000])
    write_wav(folder / "b_half.wav", audio[16000:24000])
    write_wav(folder / "sub" / "c_two_seconds.wav", audio[24000:56000])
    db = tmp_path / "replay.db"
    with emulator.start(elf) as board:
        result = replay_cli(folder, board, db)
    assert result.exit_code == 0, result.output
    assert "replayed 3 clips (3.5 s of audio" in result.output and "4 inferences" in result.output
    # models/kws learns its reference on its first 300 inferences after the reset: no alarm could come
    assert "still commissioning: the monitor learns its reference on the first 300 inferences" in result.output
    assert "this replay ends at inference 4" in result.output

    items, foreign, frames = stored_session(db)
    assert foreign == 0 and frames == 4
    # without the model folder, the app's boot line says how long the monitor commissions
    with emulator.start(elf) as board:
        unnamed = replay_cli(folder, board, tmp_path / "unnamed.db", model_dir=None)
    assert unnamed.exit_code == 0 and "this replay ends at inference 4" in unnamed.output, unnamed.output
    assert sum(isinstance(i, P.Hello) for i in items) == 2  # boot, and the RESET's
    clips = load_source(folder).clips
    assert [len(c) for c in clips] == [16000, 8000, 32000]
    expected = expected_inferences(clips, model, config, clips=True)
    assert compare(device_inferences(items), expected, bytes.fromhex(ref["model_id"])) == []


def test_replay_command_sends_the_first_limit_clips_of_a_clip_set_stop_and_wait(elf, app_clips, reference, tmp_path):
    """SOURCE a .npz clip set of 3 clips, --limit 1, --window 1 (one AUDIO frame in flight)."""
    model, config, ref = reference
    clip_set = app_clips("accent").select(np.arange(3))
    clip_set.save(tmp_path / "three.npz")
    db = tmp_path / "replay.db"
    with emulator.start(elf) as board:
        result = replay_cli(tmp_path / "three.npz", board, db, "--limit", "1", "--window", "1")
    assert result.exit_code == 0, result.output
    assert "replayed 1 clip (1.0 s of audio" in result.output and ": 1 inference," in result.output
    assert "0 resent (0 gaps, 0 timeouts" in result.output

    items, foreign, frames = stored_session(db)
    assert foreign == 0 and frames == 1
    expected = expected_inferences(list(clip_set.audio[:1]), model, config, clips=True)
    assert compare(device_inferences(items), expected, bytes.fromhex(ref["model_id"])) == []
    # --shuffle draws the order first, then --limit takes the first of it
    from tinydrift.link.replay import load_source

    first = load_source(tmp_path / "three.npz").shuffled(5).clips[0]
    assert not np.array_equal(first, clip_set.audio[0])
    with emulator.start(elf) as board:
        mixed = replay_cli(tmp_path / "three.npz", board, tmp_path / "mixed.db", "--shuffle", "5", "--limit", "1")
    assert mixed.exit_code == 0 and "replayed 1 clip (1.0 s of audio" in mixed.output, mixed.output
    items, _, _ = stored_session(tmp_path / "mixed.db")
    expected = expected_inferences([first], model, config, clips=True)
    assert compare(device_inferences(items), expected, bytes.fromhex(ref["model_id"])) == []


class LossyLink:
    """The real socket port, except that on the way the 5th AUDIO frame is lost and the
    second clip's END frame damaged, as on a noisy UART."""

    def __init__(self, port):
        self.port, self.audio_frames, self.ends = port, 0, 0

    def write(self, data: bytes) -> int:
        frame = P.decode(data)
        if isinstance(frame, P.Audio):
            self.audio_frames += 1
            if self.audio_frames == 5:
                return len(data)
            if frame.flags & P.AUDIO_FLAG_END:
                self.ends += 1
                if self.ends == 2:
                    data = data[:20] + bytes([data[20] ^ 0x10]) + data[21:]
        return self.port.write(data)

    def __getattr__(self, name):
        return getattr(self.port, name)


def test_lost_and_damaged_audio_frames_are_resent_and_the_result_is_unchanged(elf, audio, reference):
    """One frame never arrives (the frames after it are answered with the gap), one END
    arrives damaged (the device drops it silently, nothing follows it: the ACK times out).
    Both are resent; the inferences are the same as over a clean link."""
    model, config, ref = reference
    clips = [audio[k * 16000:(k + 1) * 16000] for k in range(3)]
    with emulator.start(elf) as board:
        port = open_port(board.url, timeout=0.05)
        try:
            replayer = Replayer(LossyLink(port), window=4, ack_timeout=1.0, keep=True)
            stats = replayer.replay(clips)
            replayer.command(P.StatusRequest(0))
            replayer.drain(0.2)
        finally:
            port.close()
    assert stats.gaps >= 1 and stats.timeouts == 1 and stats.resent >= 2
    status = [i for i in stats.received if isinstance(i, P.Status)][-1]
    assert status.rx_errors == 1  # the damaged frame, counted once
    expected = expected_inferences(clips, model, config, clips=True)
    assert compare(device_inferences(stats.received), expected, bytes.fromhex(ref["model_id"])) == []


class PulledCable:
    """The port of a board whose cable is pulled once: the 7th AUDIO frame does not go out
    (the write fails) and the port is dead from then on, as a USB serial device that
    disappears. Plugging it back in gives a new port to the same board."""

    def __init__(self, port, pull_at: int | None = 7):
        self.port, self.pull_at, self.audio_frames, self.dead = port, pull_at, 0, False

    def write(self, data: bytes) -> int:
        if not self.dead and isinstance(P.decode(data), P.Audio):
            self.audio_frames += 1
            self.dead = self.audio_frames == self.pull_at
        if self.dead:
            raise OSError(5, "Input/output error (cable pulled)")
        return self.port.write(data)

    def read(self, size: int = 1) -> bytes:
        if self.dead:
            raise OSError(5, "Input/output error (cable pulled)")
        return self.port.read(size)

    def close(self) -> None:
        self.dead = True  # the board's side stays connected: only this port object is gone

    def __getattr__(self, name):
        return getattr(self.port, name)


def test_a_port_that_disappears_mid_clip_is_reopened_and_the_clip_sent_again(elf, audio, reference):
    model, config, ref = reference
    clips = [audio[k * 16000:(k + 1) * 16000] for k in range(3)]
    with emulator.start(elf) as board:
        port = open_port(board.url, timeout=0.05)
        reopened = []

        def reopen(old, exc):
            reopened.append(str(exc))
            return PulledCable(port, pull_at=None)

        try:
            replayer = Replayer(PulledCable(port), window=4, keep=True, reopen=reopen)
            stats = replayer.replay(clips)
            replayer.drain(0.2)
        finally:
            port.close()
    assert stats.reconnects == 1 and stats.resent >= 6 and "cable pulled" in reopened[0]
    expected = expected_inferences(clips, model, config, clips=True)
    assert compare(device_inferences(stats.received), expected, bytes.fromhex(ref["model_id"])) == []


def test_replay_refuses_a_device_of_another_model_than_model_dir(elf, audio, tmp_path):
    """Without --db, replay once streamed a camera folder's model number into the keyword
    device and reported its commissioning with the wrong model's figures."""
    from PIL import Image

    write_wav(tmp_path / "wavs" / "a.wav", audio[:16000])
    (tmp_path / "leaves").mkdir()
    Image.fromarray(np.full((48, 48, 3), 90, np.uint8)).save(tmp_path / "leaves" / "a.png")
    group = TinydriftGroup()
    group.add_command(replay_command)
    with emulator.start(elf) as board:
        result = CliRunner().invoke(group, ["replay", str(tmp_path / "leaves"), "--port", board.url, "--model-dir",
                                            str(REPO_ROOT / "models" / "plant")])
        assert result.exit_code == 1
        kws_id = json.loads((MODEL_DIR / "reference.json").read_text())["model_id"]
        assert f"the device runs model {kws_id}, not " in result.output and "models/plant's" in result.output
        result = CliRunner().invoke(group, ["replay", str(tmp_path / "wavs"), "--port", board.url, "--model-dir",
                                            str(MODEL_DIR)])
        assert result.exit_code == 0 and "replayed 1 clip " in result.output, result.output


def test_replay_without_reconnect_names_the_lost_port(elf, audio):
    clips = [audio[:16000]]
    with emulator.start(elf) as board:
        port = open_port(board.url, timeout=0.05)
        try:
            with pytest.raises(TinydriftError, match="port failed .*cable pulled.* did not come back"):
                Replayer(PulledCable(port), window=4).replay(clips)
        finally:
            port.close()


def test_replay_refuses_a_stereo_wav_rather_than_send_one_of_its_channels(tmp_path):
    write_wav(tmp_path / "two.wav", np.arange(32000).reshape(-1, 2))
    with pytest.raises(TinydriftError, match=r"two\.wav: 2 channels; tinydrift reads mono"):
        load_source(tmp_path)


def test_replay_takes_one_wav_file_or_one_image(tmp_path):
    """`replay speech.wav` was refused as "not a folder of WAV files or images", where
    `wakeword detect` and `emulate --audio` take a single file."""
    write_wav(tmp_path / "speech.wav", np.arange(24000) % 2000)
    source = load_source(tmp_path / "speech.wav")
    assert source.names == ["speech.wav"] and [len(c) for c in source.clips] == [24000]
    with pytest.raises(TinydriftError, match=r"speech\.wav: a WAV file, and --model-dir is a camera model"):
        load_source(tmp_path / "speech.wav", fit=(48, 48, 3))
    from PIL import Image

    Image.fromarray(np.full((60, 80, 3), 90, np.uint8)).save(tmp_path / "leaf.png")
    assert [c.shape for c in load_source(tmp_path / "leaf.png").clips] == [(60, 80, 3)]
    assert [c.shape for c in load_source(tmp_path / "leaf.png", fit=(48, 48, 3)).clips] == [(48, 48, 3)]
    (tmp_path / "notes.txt").write_text("words")
    with pytest.raises(TinydriftError, match=r"notes\.txt: not a WAV file or image, a folder of them"):
        load_source(tmp_path / "notes.txt")


def test_the_replay_line_says_an_alarm_latched_before_it_not_a_first_alarm_now():
    """A replay without --reset after one that alarmed at inference 310 said "first alarm ...
    at inference 828": the first latched frame it heard, not the device's first alarm."""
    from tinydrift.link.replay import ReplayStats

    stats = ReplayStats(first_alarm=(310, 0x01), first_inference=801)
    assert "DATA_DRIFT latched since inference 310, before this replay (--reset" in stats.line()
    stats = ReplayStats(first_alarm=(320, 0x01), first_inference=1)
    assert "first alarm DATA_DRIFT at inference 320" in stats.line()


def test_the_replay_line_counts_a_wake_word_device_s_wakes():
    """Replaying into a wake-word device said how many inferences it ran, not how many wakes."""
    from tinydrift.link.replay import ReplayStats

    assert "wake" not in ReplayStats(inferences=40).line()  # a classifier sends no DETECTION frame
    assert ": 400 inferences, 3 wakes, no alarm" in ReplayStats(inferences=400, wakes=3).line()
    assert ": 400 inferences, 1 wake, no alarm" in ReplayStats(inferences=400, wakes=1).line()
    # a detector built without a monitor sends DETECTION frames alone: "0 inferences, 0 wakes" once
    assert ": 2066 detections, 0 wakes, no alarm" in ReplayStats(detections=2066, wakes=0).line()


def test_the_replay_says_when_no_alarm_could_come_while_the_monitor_commissions():
    from tinydrift.logbook.store import load_model_info, still_commissioning

    n = load_model_info(MODEL_DIR).commission_n  # commissions on its first 300 inferences after a reset
    assert "this replay ends at inference 120" in still_commissioning(n, 120, False, "this replay")
    assert still_commissioning(n, 301, False, "this replay") is None  # it judged one
    assert still_commissioning(n, 120, True, "this replay") is None  # a fault came
    assert still_commissioning(n, None, False, "this replay") is None  # nothing heard
    assert still_commissioning(0, 120, False, "this replay") is None  # no commissioning
    # neither the model folder nor the boot line (a capture begun after the boot): every score
    # read 0 and "ok" through a device still learning, with nothing said
    assert "perhaps still commissioning: this replay ends at inference 40" in still_commissioning(
        None, 40, False, "this replay")
    assert still_commissioning(None, 1025, False, "this replay") is None  # past any commissioning
    assert still_commissioning(None, 40, True, "this replay") is None


def test_a_folder_of_wavs_and_images_is_never_split_silently(tmp_path):
    """A folder with both kinds sent one kind and skipped the other without a word (which
    one depended on --model-dir). Without a model it is refused; with one, the kind the
    model takes is sent and the rest is counted out loud."""
    from PIL import Image

    write_wav(tmp_path / "a.wav", np.arange(16000) % 2000)
    for i in range(2):
        Image.fromarray(np.full((48, 48, 3), 90 + i, np.uint8)).save(tmp_path / f"leaf{i}.png")
    with pytest.raises(TinydriftError) as refused:
        load_source(tmp_path)
    assert str(refused.value) == (f"{tmp_path} holds both WAV files (1, e.g. a.wav) and images (2, e.g. leaf0.png): "
                                  "give --model-dir to send the kind its model takes, or a folder of one kind")
    said = []
    audio = load_source(tmp_path, log=said.append, audio_model=True)
    assert audio.names == ["a.wav"] and said == [f"2 images in {tmp_path} left out: the model takes recordings"]
    said.clear()
    images = load_source(tmp_path, fit=(48, 48, 3), log=said.append)
    assert images.names == ["leaf0.png", "leaf1.png"]
    assert said[0] == f"1 WAV file in {tmp_path} left out: the model takes images"


def test_a_folder_of_class_folders_is_sent_class_by_class_unless_shuffled():
    """Replayed in sorted order, a folder of class folders commissioned the device on its first
    class, and the next read as a change (trial 18: its own clean reference raised DATA_DRIFT).
    replay says so, and --shuffle SEED mixes them."""
    from tinydrift.link.replay import ReplaySource

    names = ["blight/0.png", "blight/1.png", "healthy/0.png", "healthy/1.png", "wilt/0.png"]
    source = ReplaySource([np.full((2, 2, 3), k, np.uint8) for k in range(5)], names, np.array([0, 0, 1, 1, 2]))
    assert source.one_class_after_another()
    mixed = source.shuffled(3)
    assert sorted(mixed.names) == names and mixed.names != names and not mixed.one_class_after_another()
    assert all(int(c[0, 0, 0]) == names.index(n) for c, n in zip(mixed.clips, mixed.names))
    assert mixed.labels.tolist() == [source.labels[names.index(n)] for n in mixed.names]
    assert not ReplaySource(source.clips[:2], ["a.png", "b.png"]).one_class_after_another()
