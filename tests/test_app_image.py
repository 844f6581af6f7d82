"""The firmware app as a camera model's build (models/plant) on the POSIX host port under
ASan and UBSan: images replayed as IMAGE frames through the real Replayer go through the
model's input, td_summarize_image, the generated model and the monitor, and every INFERENCE
and TRACE frame equals the app twin's (expected_image_inferences: TFLite Micro, the summary
twin, MonitorTwin) bit for bit; images of another shape, audio, lost and stray chunks are
refused with the ACK results docs/protocol.md names."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from click.testing import CliRunner

from test_app_host import HostApp, build_app
from tinydrift.app import compare, device_inferences, expected_image_inferences
from tinydrift.data import camera_scenarios as cs
from tinydrift.errors import TinydriftError
from tinydrift.cli.main import main
from tinydrift.firmware import REPO_ROOT
from tinydrift.link import protocol as P
from tinydrift.link.port import open_port
from tinydrift.link.replay import (ACK_AUDIO_GAP, ACK_BAD_IMAGE, ACK_OK, ACK_UNSUPPORTED, Replayer, image_chunks,
                                   load_source)
from tinydrift.monitor.config import MonitorConfig
from tinydrift.target import emulator, platformio
from tinydrift.target.flash import flash

PLANT = REPO_ROOT / "models" / "plant"


@pytest.fixture(scope="module")
def plant():
    ref = json.loads((PLANT / "reference.json").read_text())
    model = (PLANT / "model_int8.tflite").read_bytes()
    return model, MonitorConfig.from_dict(ref["monitor_config"]), ref


@pytest.fixture(scope="module")
def app_plant():
    return build_app("gcc", model_dir=PLANT, model="plant")


@pytest.fixture(scope="module")
def leaves() -> np.ndarray:
    """Fresh leaves, then the same leaves through a smudged lens: a stream whose second half
    moves the image summary."""
    images = cs.draw_population(cs.DEPLOYMENT, 6, seed=21, workers=1).images
    return np.concatenate([images, cs.smudge(images, None, 2.0)])


def test_replayed_images_are_bit_exact_with_the_twin(app_plant, plant, leaves):
    model, config, ref = plant
    with HostApp(app_plant) as app:
        app.replayer.drain(0.3)
        stats = app.replayer.replay(list(leaves))
        app.replayer.drain(0.1)
        status = app.status()
        stderr = app.stop()
    hello = app.frames(P.Hello)[0]
    assert hello.model_hash.hex() == ref["model_hash"] and (hello.n_classes, hello.n_channels) == (5, 36)
    assert app.frames(P.TextLine)[0].text.startswith("tinydrift app board=host model=")
    expected = expected_image_inferences(leaves, model, config, ref["input_summary"]["grid"])
    assert len(expected) == len(leaves) == stats.images == stats.inferences
    assert compare(device_inferences(app.items), expected, bytes.fromhex(ref["model_id"])) == []
    assert stats.frames_sent == len(leaves) * len(image_chunks(leaves[0])) == len(leaves) * 14
    assert stats.gaps == stats.timeouts == stats.corrupt == 0
    assert status.inferences == len(leaves) and status.rx_errors == 0
    assert stderr == ""


def test_wrong_shapes_audio_and_lost_chunks_are_refused(app_plant, plant, leaves):
    model, config, ref = plant
    shape = 48 * 65536 + 48 * 256 + 3
    image = leaves[0]
    chunks = image_chunks(image)
    with HostApp(app_plant) as app:
        app.replayer.drain(0.3)
        # another size, another channel count: refused at the first chunk, the model's shape in detail
        for h, w, c in ((64, 64, 3), (48, 48, 1)):
            ack = app.command(P.Image(0, 0, P.IMAGE_FLAG_START, h, w, c, bytes(100)))
            assert (ack.result, ack.detail) == (ACK_BAD_IMAGE, shape)
        # an END before the image is whole
        ack = app.command(P.Image(0, 0, P.IMAGE_FLAG_START | P.IMAGE_FLAG_END, 48, 48, 3, bytes(508)))
        assert (ack.result, ack.detail) == (ACK_BAD_IMAGE, shape)
        # a chunk without START, and one skipping ahead: a gap, the offset expected in detail
        assert app.command(P.Image(0, 508, 0, 48, 48, 3, bytes(508))).result == ACK_AUDIO_GAP
        offset, data, flags = chunks[0]
        assert app.command(P.Image(0, offset, flags, 48, 48, 3, data)).result == ACK_OK
        ack = app.command(P.Image(0, 1016, 0, 48, 48, 3, bytes(508)))
        assert (ack.result, ack.detail) == (ACK_AUDIO_GAP, 508)
        # audio to a camera build
        assert app.command(P.Audio(0, 0, P.AUDIO_FLAG_START | P.AUDIO_FLAG_END, (1, 2, 3))).result == ACK_UNSUPPORTED
        # the Replayer turns a refused shape into one line naming both shapes
        with pytest.raises(TinydriftError, match=r"takes 48x48x3 images, this one is 32x32x3: resize it, replay with --model-dir MODEL to fit"):
            app.replayer.replay_image(image[:32, :32], "small.png")
        # a grey image of the right size wants converting, not resizing
        with pytest.raises(TinydriftError, match=r"this one is 48x48x1: convert it to 3 channels \(RGB\), replay with --model-dir"):
            app.replayer.replay_image(image[:, :, :1], "grey.png")
        # and a whole image still goes through afterwards
        app.replayer.replay_image(image)
        app.replayer.drain(0.1)
        stderr = app.stop()
    expected = expected_image_inferences(image[None], model, config, ref["input_summary"]["grid"])
    assert compare(device_inferences(app.items), expected, bytes.fromhex(ref["model_id"])) == []
    assert stderr == ""


def test_an_audio_build_refuses_images():
    with HostApp(build_app("gcc")) as app:
        app.replayer.drain(0.3)
        assert app.command(P.Image(0, 0, P.IMAGE_FLAG_START, 48, 48, 3, bytes(10))).result == ACK_UNSUPPORTED
        assert app.stop() == ""


def test_image_sources_for_replay(tmp_path, leaves):
    from PIL import Image

    folder = tmp_path / "leaves"
    (folder / "healthy").mkdir(parents=True)
    for k in range(3):
        Image.fromarray(leaves[k]).save(folder / "healthy" / f"{k}.png")
    Image.fromarray(leaves[0][:, :, 0]).save(folder / "grey.png")
    source = load_source(folder)
    assert [s.shape for s in source.clips] == [(48, 48, 1), (48, 48, 3), (48, 48, 3), (48, 48, 3)]
    assert np.array_equal(source.clips[1], leaves[0]) and source.names[1] == "healthy/0.png"
    # with the camera model's folder, replay reads each image as eval does: a photo of another
    # size, a grey one, a palette one; hidden files left out
    from tinydrift.cli.device import _camera_input
    from tinydrift.data.imagefolder import load_image_folder

    shape = _camera_input(REPO_ROOT / "models" / "plant")
    assert shape == (48, 48, 3) and _camera_input(REPO_ROOT / "models" / "kws") is None
    Image.fromarray(leaves[1]).resize((256, 192)).save(folder / "healthy" / "photo.jpg", quality=90)
    Image.fromarray(leaves[2]).convert("P").save(folder / "healthy" / "palette.png")
    Image.fromarray(leaves[3]).save(folder / "healthy" / ".hidden.png")
    (folder / "healthy" / "notes.txt").write_text("taken on Tuesday")  # eval refuses it; replay says so (trial 18)
    said = []
    fitted = load_source(folder, fit=shape, log=said.append)
    assert fitted.names == ["grey.png", "healthy/0.png", "healthy/1.png", "healthy/2.png", "healthy/palette.png",
                            "healthy/photo.jpg"]
    assert all(c.shape == shape for c in fitted.clips)
    (tmp_path / "as_eval" / "healthy").mkdir(parents=True)
    for name in ("0.png", "palette.png", "photo.jpg"):
        shutil.copy(folder / "healthy" / name, tmp_path / "as_eval" / "healthy" / name)
    (tmp_path / "as_eval" / "blight").mkdir()
    shutil.copy(folder / "grey.png", tmp_path / "as_eval" / "blight" / "grey.png")
    evaluated = load_image_folder(tmp_path / "as_eval")
    by_name = dict(zip(evaluated.domain["file"], evaluated.images))
    for name, image in zip(fitted.names, fitted.clips):  # pixel for pixel what eval reads
        key = "blight/grey.png" if name == "grey.png" else name
        if key in by_name:
            assert np.array_equal(image, by_name[key]), name
    assert said == [f"1 file in {folder} left out, neither images nor WAV files (e.g. healthy/notes.txt)",
                    "images fitted to the model's 48x48x3 input as `tinydrift eval` reads them (centred crop, resize, "
                    "RGB)", "(images not in 8-bit RGB: 1 grey, 1 palette; converted to it, as the model takes)"]
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("no images")
    with pytest.raises(TinydriftError, match="no .wav, .jpg or .png files"):
        load_source(empty)


@pytest.mark.slow  # 59-81 s measured (60 images through the emulated UART), plus the plant firmware's build
@pytest.mark.skipif(shutil.which("qemu-system-arm") is None or platformio.pio_executable() is None,
                    reason="QEMU or PlatformIO is not installed (scripts/setup.sh)")
def test_images_replayed_into_qemu_are_bit_exact(plant, leaves, tmp_path):
    """The firmware `tinydrift flash` builds for the emulated Cortex-M4 with models/plant:
    IMAGE frames through QEMU's TCP serial port with flow control give the twin's INFERENCE
    and TRACE frames bit for bit, in-domain leaves and then smudged ones; the TRACE frames
    count the instructions of each stage."""
    model, config, ref = plant
    elf = flash(platformio.EMULATED_ENV, PLANT, build_only=True).elf
    # its board hears nothing: --audio once left it waiting for frames until --timeout
    assert emulator.hears_microphone(elf) is False
    (tmp_path / "hum.raw").write_bytes(np.zeros(16000, "<i2").tobytes())
    refused = CliRunner().invoke(main, ["emulate", "--elf", str(elf), "--audio", str(tmp_path / "hum.raw")])
    assert refused.exit_code == 2 and "is a camera model's build, whose board hears nothing" in refused.output
    with emulator.start(elf, icount_shift=0) as board:
        port = open_port(board.url, timeout=0.05)
        try:
            replayer = Replayer(port, window=4, keep=True)
            stats = replayer.replay(list(leaves))
            status_ack = replayer.command(P.StatusRequest(0))
            replayer.drain(0.3)
        finally:
            port.close()
    assert stats.corrupt == stats.gaps == stats.timeouts == 0 and status_ack.result == ACK_OK
    expected = expected_image_inferences(leaves, model, config, ref["input_summary"]["grid"])
    assert compare(device_inferences(stats.received), expected, bytes.fromhex(ref["model_id"])) == []
    status = next(i for i in stats.received if isinstance(i, P.Status))
    assert status.inferences == len(leaves) and status.rx_errors == 0
    # the TRACE frames count each stage's instructions (-icount shift=0): no front end (two
    # clock reads), the model, the frame's sensor health (69,920 measured: ~10 a value of
    # the 6,912), then the summary and the monitor
    traces = [i for i in stats.received if isinstance(i, P.Trace)]
    per_stage = np.array([[emulator.instructions_from_cycles(c) for c in
                           (t.cycles_frontend, t.cycles_model, t.cycles_sensor, t.cycles_monitor)] for t in traces])
    print("instructions per image (frontend, model, sensor, summary + monitor), median:", np.median(per_stage, 0))
    assert len(traces) == len(leaves) and per_stage[:, 0].max() < 1_000
    assert np.all((per_stage[:, 2] > 30_000) & (per_stage[:, 2] < 150_000))
    assert np.all((per_stage[:, 1] > 2_000_000) & (per_stage[:, 1] < 4_000_000))
    assert np.all((per_stage[:, 3] > 300_000) & (per_stage[:, 3] < 1_500_000))


def test_a_dead_then_stuck_camera_is_a_sensor_fault_bit_exactly(app_plant, plant, leaves):
    """Four live frames, twelve black ones (a dead camera), then one leaf twelve times (a
    stuck one) from a fresh device: SENSOR_FAULT latches at the tenth black frame, with the
    change where the black began, and the device's log equals the twin's throughout."""
    from tinydrift.monitor.config import ALARM_SENSOR_FAULT

    model, config, ref = plant
    frames = np.concatenate([leaves[:4], np.zeros((12, *leaves.shape[1:]), np.uint8), np.repeat(leaves[5:6], 12, axis=0)])
    with HostApp(app_plant) as app:
        app.replayer.drain(0.3)
        stats = app.replayer.replay(list(frames))
        app.replayer.drain(0.1)
        app.stop()
    expected = expected_image_inferences(frames, model, config, ref["input_summary"]["grid"])
    assert stats.inferences == len(frames)
    assert compare(device_inferences(app.items), expected, bytes.fromhex(ref["model_id"])) == []
    latched = (expected.alarm_bits & ALARM_SENSOR_FAULT) != 0
    assert not latched[:13].any() and latched[13:].all()
    assert expected.change_index[13] == 5 and expected.alarm_index[13] == 14  # black from inference 5, shown at 14
