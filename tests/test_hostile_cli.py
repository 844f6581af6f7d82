"""Every command against the input a hostile or careless user gives: it must refuse in one
line naming the bad value, exit non-zero, leave no output behind, and do it fast (before
any real work). A traceback anywhere fails the test.

Tests run as root, so "unwritable" is a regular file standing where a parent folder should
be, not a chmod. Tampered-JSON and damaged-tflite cases use copies of the committed
models/kws (a real exported model)."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import sqlite3
import struct
import subprocess
import sys
import wave
from pathlib import Path

import click
import numpy as np
import pytest
from click.testing import CliRunner

from tinydrift.cli.main import main

REPO_ROOT = Path(__file__).resolve().parents[1]
COMMITTED_MODEL = REPO_ROOT / "models" / "kws"
CASE_SECONDS = 30  # every case fails in validation or on its first read: far below this
PORT = "socket://127.0.0.1:9"  # well formed; never reached, the cases fail before connecting


def _wav(path: Path, frames: int = 1600, rate: int = 16000, channels: int = 1) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(np.zeros(frames * channels, "<i2").tobytes())
    return path


def _float_wav(path: Path, frames: int = 1600) -> Path:
    """A 32-bit float WAV (format 3), as many editors export: the wave module reads integer PCM only."""
    import struct

    data = np.zeros(frames, "<f4").tobytes()
    fmt = struct.pack("<HHIIHH", 3, 1, 16000, 16000 * 4, 4, 32)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"RIFF" + struct.pack("<I", 4 + 8 + len(fmt) + 8 + len(data)) + b"WAVE" + b"fmt "
                     + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", len(data)) + data)
    return path


def _png(path: Path) -> Path:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(path)
    return path


def _append_partial_frame(path: Path) -> None:
    """One byte more in the data chunk, with the RIFF and data sizes saying so: a file padded
    or cut mid-sample."""
    data = bytearray(path.read_bytes()) + b"\x01"
    struct.pack_into("<I", data, 4, len(data) - 8)
    struct.pack_into("<I", data, 40, struct.unpack_from("<I", data, 40)[0] + 1)
    path.write_bytes(bytes(data))


def _tamper_reference(folder: Path, change) -> None:
    reference = json.loads((folder / "reference.json").read_text())
    change(reference)
    (folder / "reference.json").write_text(json.dumps(reference))


def _damage_tensor_name(folder: Path) -> None:
    """Invalid UTF-8 inside a tensor name: the flatbuffer still parses, its text does not."""
    data = bytearray((folder / "model_int8.tflite").read_bytes())
    at = data.find(b"dscnn_1/probs_1/BiasAdd")
    assert at > 0, "the committed model's tensor names changed: pick another name to damage"
    data[at:at + 2] = b"\xff\xfe"
    (folder / "model_int8.tflite").write_bytes(bytes(data))


def _damage_constant(folder: Path, how: str) -> None:
    """A depthwise filter (a constant of shape [1, h, w, c]) damaged as a flipped byte leaves
    it: a negative width ("shape"), or seven of its values gone ("size"). The flatbuffer still
    parses; model-c once wrote C with a kernel -419,430,397 columns wide, and exited 0."""
    import flatbuffers

    from tinydrift.codegen.tflite_graph import _schema

    schema = _schema()
    data = (folder / "model_int8.tflite").read_bytes()
    model = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(data, 0))
    depthwise = next(t for t in model.subgraphs[0].tensors if len(t.shape) == 4 and t.shape[0] == 1
                     and model.buffers[t.buffer].data is not None and len(model.buffers[t.buffer].data) > 0)
    if how == "shape":
        shape = np.array(depthwise.shape)
        shape[2] = -419430397
        depthwise.shape = shape
    else:
        model.buffers[depthwise.buffer].data = np.array(model.buffers[depthwise.buffer].data[:-7])
    builder = flatbuffers.Builder(len(data))
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    (folder / "model_int8.tflite").write_bytes(bytes(builder.Output()))


@pytest.fixture(scope="module")
def hostile(tmp_path_factory) -> Path:
    """A folder of bad inputs, named as the cases spell them."""
    root = tmp_path_factory.mktemp("hostile")
    (root / "afile").write_text("a regular file")
    (root / "adir").mkdir()
    (root / "blocker").write_text("a file where a parent folder should be")

    _wav(root / "wav_good" / "a.wav")
    _float_wav(root / "wav_float" / "a.wav")
    _append_partial_frame(_wav(root / "wav_truncated" / "yes" / "a_nohash_0.wav"))
    (root / "wav_empty" / "yes").mkdir(parents=True)
    (root / "wav_empty" / "yes" / "a_nohash_0.wav").write_bytes(b"")
    _wav(root / "fsdd_stray" / "recordings" / "0_jackson_0.wav", rate=8000)
    _wav(root / "fsdd_stray" / "recordings" / "notes_about_it.wav", rate=8000)
    _wav(root / "wav_stereo" / "a.wav", channels=2)
    _png(root / "leaves_one_class" / "healthy" / "a.png")
    (root / "bare_plant").mkdir()  # a model no file beside it names the classes of
    (root / "song.flac").write_bytes(b"fLaC" + bytes(4096))
    (root / "monitor_only").mkdir()  # `wakeword calibrate --out` into a folder nothing was exported to
    (root / "monitor_only" / "monitor.json").write_text("{}")
    shutil.copy(REPO_ROOT / "models" / "plant" / "model_int8.tflite", root / "bare_plant")
    _png(root / "leaves_flat" / "a.png")  # images without class folders: not taken for recordings
    _png(root / "leaves_text" / "healthy" / "a.png")
    _png(root / "leaves_text" / "blight" / "b.png")
    (root / "leaves_text" / "blight" / "notes.txt").write_text("field notes")
    (root / "no_images").mkdir()
    (root / "no_images" / "notes.txt").write_text("no image here")
    (root / "image_damaged").mkdir()
    (root / "image_damaged" / "leaf.png").write_bytes(b"\x89PNG not really")

    shutil.copytree(COMMITTED_MODEL, root / "model")
    shutil.copytree(COMMITTED_MODEL, root / "model_tampered")
    _tamper_reference(root / "model_tampered", lambda r: r["monitor_config"].update(score_drift="high"))
    # an edited training.json: a label too few (once blamed on the data folder), a string for a list
    from tinydrift.data.labels import LABELS
    shutil.copytree(COMMITTED_MODEL, root / "model_labels_short", ignore=shutil.ignore_patterns("*.keras"))
    (root / "model_labels_short" / "training.json").write_text(json.dumps({"labels": list(LABELS[:-1])}))
    shutil.copytree(COMMITTED_MODEL, root / "model_labels_text", ignore=shutil.ignore_patterns("*.keras"))
    (root / "model_labels_text" / "training.json").write_text(json.dumps({"labels": ",".join(LABELS)}))
    shutil.copytree(COMMITTED_MODEL, root / "model_labels")
    _tamper_reference(root / "model_labels", lambda r: r.update(labels=["yes"]))
    shutil.copytree(COMMITTED_MODEL, root / "model_own_classes")
    _tamper_reference(root / "model_own_classes", lambda r: r.update(labels=r["labels"][::-1]))
    shutil.copytree(COMMITTED_MODEL, root / "model_include_file")
    shutil.rmtree(root / "model_include_file" / "include")
    (root / "model_include_file" / "include").write_text("a file where the headers' folder should be")
    (root / "set_without_ref").mkdir()
    np.savez(root / "set_without_ref" / "train.npz", audio=np.zeros((2, 16000), np.int16))
    shutil.copytree(COMMITTED_MODEL, root / "model_damaged")
    _damage_tensor_name(root / "model_damaged")
    for how in ("shape", "size"):
        (root / f"model_bad_{how}").mkdir()
        shutil.copy(COMMITTED_MODEL / "model_int8.tflite", root / f"model_bad_{how}")
        _damage_constant(root / f"model_bad_{how}", how)
    # include/ exported by an older tinydrift: its config header's #error stops the build
    shutil.copytree(COMMITTED_MODEL, root / "model_old_abi")
    header = root / "model_old_abi" / "include" / "td_monitor_config_kws.h"
    header.write_text(re.sub(r"(?m)^#if TD_MONITOR_ABI_VERSION != \d+$", "#if TD_MONITOR_ABI_VERSION != 6",
                             header.read_text()))

    config = json.loads((COMMITTED_MODEL / "reference.json").read_text())["monitor_config"]
    reference = json.loads((COMMITTED_MODEL / "reference.json").read_text())
    (root / "reference_no_monitor.json").write_text(json.dumps({k: v for k, v in reference.items() if k != "monitor_config"}))
    (root / "reference_text_monitor.json").write_text(json.dumps({**reference, "monitor_config": "hello"}))
    (root / "config_list.json").write_text(json.dumps([config]))
    (root / "config_partial.json").write_text(json.dumps({"abi_version": config["abi_version"]}))
    (root / "config_types.json").write_text(json.dumps({**config, "ref_mean": "zero", "mean_shift": "5"}))
    (root / "config_no_drift_level.json").write_text(json.dumps({k: v for k, v in config.items() if k != "score_drift"}))
    (root / "config.json").write_text(json.dumps(config))
    # a matrix where a vector goes; whole numbers past int64 (numpy holds them as objects)
    (root / "config_nested.json").write_text(json.dumps({**config, "ref_mean": [[v] for v in config["ref_mean"]]}))
    (root / "config_huge.json").write_text(json.dumps({**config, "score_gain_q16": [10 ** 30] * 5}))
    # a model folder whose include/ is a file
    (root / "ww_detector").mkdir()  # what `tinydrift wakeword export` leaves, as far as these checks read
    (root / "ww_detector" / "detector.json").write_text(json.dumps({"name": "okay_nabu", "model_hash": "0" * 64}))
    (root / "ww_include_file").mkdir()
    (root / "ww_include_file" / "include").write_text("a file where the headers' folder should be")
    # a wake-word folder calibrated on another form of the input summary (an older version's)
    (root / "ww_stale").mkdir()
    (root / "ww_stale" / "monitor.json").write_text(json.dumps({"monitor_config": config, "model_hash": "0" * 64}))
    np.savez(root / "samples_ragged.npz", summaries=np.zeros(3), probs=np.zeros(2), groups=np.zeros(5))
    # model inputs as the keyword model takes them, [N, 49, 40, 1] (a traceback once), and with 2 channels
    for channels in (1, 2):
        np.savez(root / f"samples_features_{channels}ch.npz", features=np.zeros((8, 49, 40, channels), np.int8),
                 probs=np.zeros((8, 3), np.int8), groups=np.arange(8) % 2, labels=np.arange(8) % 3)
    np.savez(root / "samples_misfit.npz", summaries=np.arange(40.0).reshape(8, 5), probs=np.zeros((8, 3), np.int8),
             groups=np.arange(8))
    # probabilities as floats, labels beyond the classes, features another model's size
    np.savez(root / "samples_float_probs.npz", summaries=np.zeros((8, 5), np.int16), groups=np.arange(8),
             probs=np.full((8, 3), 1 / 3, np.float32))
    np.savez(root / "samples_labels.npz", summaries=np.zeros((8, 5), np.int16), probs=np.zeros((8, 3), np.int8),
             groups=np.arange(8), labels=np.arange(8))
    np.savez(root / "clips_other_size.npz", features=np.zeros((8, 7, 7), np.int8), groups=np.arange(8))
    # a keyword model's features and probs without the audio the summary's loudness comes from
    np.savez(root / "features_no_audio.npz", features=np.zeros((8, 49, 40), np.int8), groups=np.arange(8),
             probs=np.zeros((8, 12), np.int8))
    # features no int8 cast keeps (int16 wraps, floats of -1..1 become zeros), features of no clip
    np.savez(root / "features_int16.npz", features=np.full((8, 49, 40), 3000, np.int16), groups=np.arange(8),
             probs=np.zeros((8, 3), np.int8))
    np.savez(root / "features_float.npz", features=np.full((8, 49, 40), 0.5, np.float32), groups=np.arange(8))
    np.savez(root / "features_none.npz", features=np.zeros((0, 49, 40), np.int8), groups=np.zeros(0, np.int64))
    np.savez(root / "audio_only.npz", audio=np.zeros((8, 16000), np.int16), labels=np.zeros(8, np.int64),
             meta_group=np.arange(8))
    # summaries that a cast to int16 would silently turn into zeros or wrap; summaries that never move
    varied = np.arange(40, dtype=np.float64).reshape(8, 5)
    np.savez(root / "samples_nan_summaries.npz", summaries=np.where(varied == 3, np.nan, varied),
             probs=np.zeros((8, 3), np.int8), groups=np.arange(8))
    np.savez(root / "samples_huge_summaries.npz", summaries=varied * 1e9, probs=np.zeros((8, 3), np.int8),
             groups=np.arange(8))
    np.savez(root / "samples_constant.npz", summaries=np.full((8, 5), 7, np.int16), probs=np.zeros((8, 3), np.int8),
             groups=np.arange(8))
    (root / "truth_list.json").write_text("[301]")
    (root / "truth_misspelt.json").write_text('{"shift": 301}')
    # arrays of Python objects: numpy's refusal advises allow_pickle, which runs what the file holds
    objects = np.array([None, 1], dtype=object)
    np.savez(root / "objects.npz", label_names=objects, summaries=objects, probs=objects, groups=objects)
    # sets whose labels are no class index (once an IndexError, or -1 counted as "go"), sets of nothing
    clips = np.zeros((4, 16000), np.int16)
    np.savez(root / "clips_label_past.npz", audio=clips, labels=np.array([0, 1, 2, 50], np.int16), label_names=LABELS)
    np.savez(root / "clips_label_negative.npz", audio=clips, labels=np.array([0, 1, 2, -1], np.int16), label_names=LABELS)
    np.savez(root / "clips_ok.npz", audio=clips, labels=np.arange(4, dtype=np.int16), label_names=LABELS)
    np.savez(root / "clips_none.npz", audio=clips[:0], labels=np.zeros(0, np.int16), label_names=LABELS)
    np.savez(root / "clips_yes.npz", audio=clips, labels=np.full(4, LABELS.index("yes"), np.int16), label_names=LABELS)
    plant_labels = json.loads((REPO_ROOT / "models" / "plant" / "training.json").read_text())["labels"]
    np.savez(root / "images_none.npz", images=np.zeros((0, 48, 48, 3), np.uint8), labels=np.zeros(0, np.int16),
             label_names=plant_labels)
    np.savez(root / "images_ok.npz", images=np.zeros((4, 48, 48, 3), np.uint8), labels=np.arange(4, dtype=np.int16),
             label_names=plant_labels)
    np.savez(root / "images_labels_2d.npz", images=np.zeros((4, 48, 48, 3), np.uint8), labels=np.zeros((4, 2), np.int16),
             label_names=plant_labels)

    (root / "not_elf.elf").write_text("#!/bin/sh\necho not firmware\n")
    # a 32-bit ARM ELF whose one loadable segment lies past its end: a copy cut short
    elf = struct.pack("<16sHHIIIIIHHHHHH", b"\x7fELF\x01\x01\x01" + bytes(9), 2, 40, 1, 0, 52, 0, 0, 52, 32, 1, 40, 0, 0)
    (root / "cut.elf").write_bytes(elf + struct.pack("<IIIIIIII", 1, 0x1000, 0, 0, 0x2000, 0x2000, 5, 4))
    # empty files where a set or a model should be (np.load meets EOF: click's bare "Aborted!")
    (root / "empty.npz").write_bytes(b"")
    (root / "empty.tflite").write_bytes(b"")
    (root / "empty_set").mkdir()
    for split in ("train", "val"):
        (root / "empty_set" / f"{split}.npz").write_bytes(b"")
    (root / "odd.pcm").write_bytes(b"\x00\x01\x02")
    (root / "even.txt").write_text("{\"notes\": \"not audio, but an even number of bytes\"}\n" * 20)
    (root / "stuck.pcm").write_bytes(b"AA" * 4000)  # a sensor stuck at 0x4141: printable, yet audio
    (root / "not_a.wav").write_bytes(b"\x00\x01" * 800)  # even-sized: once played as raw PCM
    shutil.copy("/bin/true", root / "x86.elf")  # an ELF, for this machine's CPU
    return root


# (class of bad input, command, arguments, what the one error line must contain). {r} is the
# hostile folder; {blocked} a path below a regular file.
CASES = [
    # paths that are not there, or not of the kind wanted
    ("missing-path", "eval", ["{r}/model", "{r}/nothing.npz"], "nothing.npz"),
    ("missing-path", "quantize", ["--model", "{r}/nothing", "--data", "{r}/adir"], "nothing"),
    ("missing-path", "export", ["--model", "{r}/nothing", "--data", "{r}/adir"], "nothing"),
    ("missing-path", "adopt", ["{r}/nothing.tflite", "--out", "{r}/adopted"], "nothing.tflite"),
    ("not-a-model", "adopt", ["{r}/afile", "--out", "{r}/adopted"], "not a valid .tflite"),
    ("empty-file", "adopt", ["{r}/empty.tflite", "--out", "{r}/adopted"], "empty.tflite: the file is empty"),
    ("empty-file", "eval", ["{r}/model", "{r}/empty.npz"], "empty.npz: the file is empty"),
    ("one-wav", "eval", ["{r}/model", "{r}/wav_good/a.wav"], "a.wav: a single file; give the folder"),
    ("empty-file", "verify", ["{r}/model", "--data", "{r}/empty.npz"], "empty.npz: the file is empty"),
    ("empty-file", "replay", ["{r}/empty.npz", "--port", PORT], "empty.npz: the file is empty"),
    ("empty-file", "train", ["--data", "{r}/empty_set", "--out", "{r}/train_out"], "train.npz: the file is empty"),
    ("blocked-output", "adopt", ["{r}/model/model_int8.tflite", "--out", "{blocked}"], "blocker"),
    ("missing-path", "verify", ["{r}/nothing"], "nothing"),
    # a wake-word detector's folder where a classifier's goes: once "run `tinydrift quantize` first"
    ("detector-folder", "verify", ["{r}/ww_detector"], "is a wake-word detector's folder"),
    ("detector-folder", "eval", ["{r}/ww_detector", "{r}/wav_good"], "is a wake-word detector's folder"),
    ("missing-path", "demo", ["--model", "{r}/nothing", "--out", "{r}/demo_out"], "nothing"),
    ("missing-path", "flash", ["--env", "mps2_an386", "--build-only", "--model", "{r}/nothing"], "nothing"),
    ("unused", "flash", ["--env", "mps2_an386", "--build-only", "--port", "/dev/ttyACM0"], "--build-only uploads nothing"),
    # a folder exported for the previous monitor ABI: once pio's whole output around the compiler's #error
    ("old-abi-header", "flash", ["--env", "mps2_an386", "--build-only", "--model", "{r}/model_old_abi"],
     "td_monitor_config_kws.h was generated for the drift monitor's ABI version 6"),
    ("old-abi-header", "emulate", ["--model", "{r}/model_old_abi"], "run `tinydrift export --model"),
    # calibrated but never exported: once "make it with tinydrift quantize", a keyword model's advice
    ("calibrated-only", "emulate", ["--model", "{r}/monitor_only", "--audio", "{r}/wav_good/a.wav"],
     "(a wake-word model: `tinydrift wakeword export MODEL --out"),
    # found only after minutes of data synthesis, once
    ("old-abi-header", "demo", ["--model", "{r}/model_old_abi", "--out", "{r}/demo_out"], "ABI version 6"),
    ("missing-path", "emulate", ["--elf", "{r}/nothing.elf"], "nothing.elf"),
    ("missing-path", "replay", ["{r}/nothing", "--port", PORT], "nothing"),
    ("missing-path", "capture", ["--port", PORT, "--db", "{r}/c.db", "--model-dir", "{r}/nothing"], "nothing"),
    ("missing-path", "report", ["{r}/nothing.db", "--out", "{r}/report_out"], "nothing.db"),
    ("missing-path", "archive", ["{r}/nothing.db", "{r}/archive.db"], "nothing.db"),
    ("missing-path", "model-c", ["{r}/nothing.tflite", "--out", "{r}/c_out"], "nothing.tflite"),
    ("missing-path", "drift-calibrate", ["{r}/nothing.npz", "--out", "{r}/cal_out"], "nothing.npz"),
    ("missing-path", "drift-header", ["{r}/nothing.json", "{r}/out.h"], "nothing.json"),
    ("missing-path", "drift-check-arl", ["{r}/nothing.json", "{r}/samples_misfit.npz"], "nothing.json"),
    ("missing-path", "drift-heldout", ["{r}/nothing.npz", "{r}/samples_misfit.npz"], "nothing.npz"),
    ("missing-path", "drift-verify", ["{r}/nothing.json"], "nothing.json"),
    ("missing-path", "drift-cost", ["{r}/nothing.json"], "nothing.json"),
    ("missing-path", "bench-device", ["--model-dir", "{r}/nothing"], "nothing"),
    ("camera-model", "bench-device", ["--model-dir", str(REPO_ROOT / "models" / "plant")], "bench device measures keyword models"),
    ("missing-path", "bench-drift", ["--model-dir", "{r}/nothing", "--out", "{r}/bench_out"], "nothing"),
    ("missing-path", "bench-fleet", ["--model-dir", "{r}/nothing", "--out", "{r}/bench_out"], "nothing"),
    ("folder-for-file", "emulate", ["--elf", "{r}/adir"], "adir"),
    ("folder-for-file", "report", ["{r}/adir", "--out", "{r}/report_out"], "adir"),
    ("folder-for-file", "drift-verify", ["{r}/adir"], "adir"),
    ("folder-for-file", "model-c", ["{r}/adir", "--out", "{r}/c_out"], "adir"),
    ("file-for-folder", "train", ["--data", "{r}/afile", "--out", "{r}/train_out"], "afile"),
    ("file-for-folder", "data-kws", ["--out", "{r}/afile"], "afile"),
    ("file-for-folder", "data-plant", ["--out", "{r}/afile"], "afile"),
    ("file-for-folder", "monitor", ["--db", "{r}/c.db", "--model-dir", "{r}/afile", "--once"], "afile"),
    ("file-for-folder", "export", ["--model", "{r}/model", "--data", "{r}/adir", "--real-data", "{r}/afile"], "afile"),
    ("device-for-file", "emulate", ["--audio", "/dev/null"], "/dev/null"),
    # a fleet's database URL where a capture file goes: Path() folded it into a missing file,
    # and showed its password (trial 16)
    ("url-for-file", "report", ["postgresql://fleet:s3cret@127.0.0.1:5433/tinydrift", "--out", "{r}/out"],
     "'postgresql://fleet@127.0.0.1:5433/tinydrift' is a URL, not a path"),
    ("url-for-file", "monitor", ["--db", "postgresql://fleet@127.0.0.1:5433/tinydrift", "--once"],
     "is shown by `tinydrift fleet serve --db URL`"),
    # outputs that cannot be written
    ("output-blocked", "data-kws", ["--out", "{blocked}"], "blocker"),
    ("output-blocked", "data-plant", ["--out", "{blocked}"], "blocker"),
    ("output-blocked", "train", ["--data", "{r}/adir", "--out", "{blocked}"], "blocker"),
    ("output-blocked", "demo", ["--model", "{r}/model", "--out", "{blocked}"], "blocker"),
    ("output-blocked", "replay", ["{r}/adir", "--port", PORT, "--db", "{blocked}/c.db"], "blocker"),
    # a --db that is no database, refused before the port (whose opening starts an emulated board)
    ("not-a-database", "replay", ["{r}/wav_good", "--port", PORT, "--db", "{r}/afile"], "cannot write capture database"),
    ("output-blocked", "capture", ["--port", PORT, "--db", "{blocked}/c.db"], "blocker"),
    ("output-blocked", "monitor", ["--port", PORT, "--db", "{blocked}/c.db", "--once"], "blocker"),
    ("output-blocked", "report", ["{r}/afile", "--out", "{blocked}"], "blocker"),
    ("output-blocked", "archive", ["{r}/afile", "{blocked}/archive.db"], "blocker"),
    ("not-a-database", "archive", ["{r}/afile", "{r}/archive.db"], "afile"),
    ("output-blocked", "model-c", ["{r}/model/model_int8.tflite", "--out", "{blocked}"], "blocker"),
    ("output-blocked", "frontend-tables", ["--output", "{blocked}/tables.h"], "blocker"),
    ("output-blocked", "drift-calibrate", ["{r}/samples_misfit.npz", "--out", "{blocked}"], "blocker"),
    ("output-blocked", "drift-header", ["{r}/config.json", "{blocked}/out.h"], "blocker"),
    ("output-blocked", "bench-drift", ["--model-dir", "{r}/model", "--out", "{blocked}"], "blocker"),
    ("output-blocked", "bench-fleet", ["--model-dir", "{r}/model", "--out", "{blocked}"], "blocker"),
    ("output-is-folder", "frontend-tables", ["--output", "{r}/adir"], "adir"),
    ("output-not-a-header", "frontend-tables", ["--output", "{r}/afile"], "afile' is no C header's name"),
    ("output-not-a-header", "drift-header", ["{r}/config.json", "{r}/afile"], "afile' is no C header's name"),
    ("output-is-folder", "drift-header", ["{r}/config.json", "{r}/adir"], "adir"),
    ("output-is-folder", "capture", ["--port", PORT, "--db", "{r}/adir"], "adir"),
    ("output-is-file", "model-c", ["{r}/model/model_int8.tflite", "--out", "{r}/afile"], "afile"),
    ("output-is-file", "demo", ["--model", "{r}/model", "--out", "{r}/afile"], "afile"),
    # numbers out of range, or not numbers at all
    ("nan", "export", ["--model", "{r}/model", "--data", "{r}/adir", "--target-arl0", "nan"], "nan"),
    ("huge", "export", ["--model", "{r}/model", "--data", "{r}/adir", "--target-arl0", "1e300"], "1e+300"),
    # found only after a minute of calibration, once
    ("file-in-the-way", "export", ["--model", "{r}/model_include_file", "--data", "{r}/adir"], "include: is a file where a folder goes"),
    ("set-without-ref", "export", ["--model", "{r}/model", "--data", "{r}/set_without_ref"], "but no ref.npz"),
    ("label-count", "export", ["--model", "{r}/model_labels_short", "--data", "{r}/set_without_ref"],
     "training.json: labels names 11 classes (_silence_, _unknown_, yes, no, up, down, left, right, on, off, stop), but "
     "the model has 12 outputs: list one class name per output, in output order"),
    ("labels-text", "export", ["--model", "{r}/model_labels_text", "--data", "{r}/set_without_ref"],
     "training.json: labels is not a list; fix it (its labels: a list of class names"),
    ("nan", "emulate", ["--timeout", "nan"], "nan"),
    ("nan", "label", ["5", "1", "--db", "{r}/afile", "--wait", "nan"], "nan"),
    ("npz-as-audio", "emulate", ["--audio", "{r}/samples_misfit.npz"], "is a .npz archive, not audio"),
    # played as raw PCM once, exit 0
    ("png-as-audio", "emulate", ["--audio", "{r}/leaves_flat/a.png"], "is a PNG image, not audio"),
    ("model-as-audio", "emulate", ["--audio", str(REPO_ROOT / "models" / "plant" / "model_int8.tflite")],
     "is a TFLite model, not audio"),
    ("text-as-audio", "emulate", ["--audio", "{r}/even.txt"], "is a text file, not audio"),
    # once "is a FLAC file, not audio": it is audio, in a form to convert
    ("flac-as-audio", "emulate", ["--audio", "{r}/song.flac"], "is a FLAC file, compressed audio the board's"),
    ("nan", "capture", ["--port", PORT, "--db", "{r}/c.db", "--duration", "nan"], "nan"),
    ("nan", "monitor", ["--db", "{r}/c.db", "--refresh", "nan"], "nan"),
    ("nan", "drift-check-arl", ["{r}/config.json", "{r}/samples_misfit.npz", "--within", "nan"], "nan"),
    ("nan", "drift-heldout", ["{r}/samples_misfit.npz", "{r}/samples_misfit.npz", "--target-arl0", "nan"], "nan"),
    ("inf", "capture", ["--port", PORT, "--db", "{r}/c.db", "--reconnect-timeout", "inf"], "inf"),
    ("inf", "drift-calibrate", ["{r}/samples_misfit.npz", "--out", "{r}/cal_out", "--target-arl0", "inf"], "inf"),
    ("zero", "data-kws", ["--out", "{r}/data_out", "--clips-per-class", "0"], "0"),
    ("zero", "data-plant", ["--out", "{r}/data_out", "--images-per-class", "0"], "0"),
    ("zero", "train", ["--data", "{r}/adir", "--out", "{r}/train_out", "--epochs", "0"], "0"),
    ("zero", "demo", ["--model", "{r}/model", "--out", "{r}/demo_out", "--shifted", "0"], "0"),
    ("zero", "emulate", ["--timeout", "0"], "0"),
    ("zero", "replay", ["{r}/adir", "--port", PORT, "--limit", "0"], "0"),
    ("zero", "replay", ["{r}/adir", "--port", PORT, "--window", "0"], "0"),
    ("zero", "label", ["0", "1", "--port", PORT], "0"),
    ("zero", "capture", ["--port", PORT, "--db", "{r}/c.db", "--frames", "0"], "0"),
    ("zero", "monitor", ["--port", PORT, "--duration", "0", "--once"], "0"),
    ("zero", "verify", ["{r}/model", "--samples", "0"], "0"),
    ("zero", "drift-verify", ["{r}/config.json", "--inferences", "0"], "0"),
    # past int64, numpy's sizes overflow (a ValueError traceback), and verify's stream grew until
    # memory ran out
    # a reference.json without its monitor read as a config of 21 unknown fields
    ("no-monitor", "drift-header", ["{r}/reference_no_monitor.json", "{r}/o.h"], "it holds no monitor config"),
    ("no-monitor", "drift-cost", ["{r}/reference_no_monitor.json"], "it holds no monitor config"),
    ("no-monitor", "drift-header", ["{r}/reference_text_monitor.json", "{r}/o.h"],
     "its monitor_config is not a JSON object"),
    # the results and pools of a bench would land among the model folder's files
    ("output-in-input", "bench-drift", ["--model-dir", "{r}/model", "--out", "{r}/model/include"],
     "overlaps the model folder"),
    # demo --clean deleted OUT first, and an OUT holding --model took the shipped model folder with it
    ("output-in-input", "demo", ["--model", "{r}/model", "--out", "{r}", "--clean"], "overlaps the model folder"),
    ("output-in-input", "demo", ["--model", "{r}/model", "--out", "{r}/model/include"], "overlaps the model folder"),
    # the summary replaced the model's reference.json, or the outbox's frames, even on a failed run
    ("output-in-input", "fleet-simulate", ["--devices", "1", "--broker", "mqtt://127.0.0.1:9", "--model-dir",
                                           "{r}/model", "--summary", "{r}/model/reference.json"], "inside the model folder"),
    ("output-in-input", "fleet-simulate", ["--devices", "1", "--broker", "mqtt://127.0.0.1:9", "--outbox",
                                           "{r}/o.sqlite", "--summary", "{r}/o.sqlite"], "it is the --outbox"),
    ("output-in-input", "bench-fleet", ["--model-dir", "{r}/model", "--out", "{r}/model"], "overlaps the model folder"),
    ("model-input-shape", "drift-calibrate", ["{r}/samples_features_1ch.npz", "--out", "{r}/cal_out"],
     "features without the clips' audio"),
    ("model-input-shape", "drift-calibrate", ["{r}/samples_features_2ch.npz", "--out", "{r}/cal_out"],
     "features (8, 49, 40, 2); expected the model's int8 inputs"),
    ("huge", "drift-verify", ["{r}/config.json", "--inferences", "99999999999999999999999"], "--inferences"),
    ("huge", "drift-check-arl", ["{r}/config.json", "{r}/samples_misfit.npz", "--n-inferences",
                                 "99999999999999999999999"], "--n-inferences"),
    ("huge", "drift-calibrate", ["{r}/samples_misfit.npz", "--out", "{r}/cal_out", "--n-inferences",
                                 "99999999999999999999999"], "--n-inferences"),
    ("huge", "model-c", ["{r}/model/model_int8.tflite", "--out", "{r}/c_out", "--check", "99999999999999999999999"],
     "--check"),
    ("zero", "drift-check-arl", ["{r}/config.json", "{r}/samples_misfit.npz", "--n-inferences", "0"], "0"),
    ("zero", "bench-device", ["--model-dir", "{r}/model", "--parse-frames", "0"], "0"),
    ("zero", "bench-frontend-stream", ["--step-ms", "0"], "0"),
    ("zero", "bench-frontend-stream", ["--seconds", "0"], "0"),
    ("negative", "data-kws", ["--out", "{r}/data_out", "--workers", "-2"], "-2"),
    ("negative", "data-plant", ["--out", "{r}/data_out", "--seed", "-1"], "-1"),
    ("one-class", "eval", ["{r}/bare_plant/model_int8.tflite", "{r}/leaves_one_class"], "only one class (healthy)"),
    # recordings given to a camera model: once "files but no class sub-folders", nothing of audio
    ("audio-for-camera", "eval", ["{r}/bare_plant/model_int8.tflite", "{r}/wav_good"],
     "WAV recordings (a.wav), and this is a camera (image) model"),
    ("other-classes", "eval", ["{r}/model", "{r}/leaves_one_class"], "healthy are not among the model's classes"),
    ("flat-images", "eval", [str(REPO_ROOT / "models" / "plant"), "{r}/leaves_flat"], "but no class sub-folders; expected the PlantVillage layout"),
    ("not-an-image", "eval", [str(REPO_ROOT / "models" / "plant"), "{r}/leaves_text"], "notes.txt"),
    ("negative", "train", ["--data", "{r}/adir", "--out", "{r}/train_out", "--seed", "-1"], "-1"),
    ("negative", "demo", ["--model", "{r}/model", "--out", "{r}/demo_out", "--in-domain", "-5"], "-5"),
    ("negative", "export", ["--model", "{r}/model", "--data", "{r}/adir", "--target-arl0", "-1"], "-1"),
    ("negative", "capture", ["--port", PORT, "--db", "{r}/c.db", "--baud", "-9600"], "-9600"),
    ("negative", "capture", ["--port", PORT, "--db", "{r}/c.db", "--progress-interval", "-1"], "-1"),
    ("negative", "replay", ["{r}/adir", "--port", PORT, "--baud", "-1"], "-1"),
    ("negative", "label", ["12", "-1", "--port", PORT], "-1: a negative number"),
    ("negative", "model-c", ["{r}/model/model_int8.tflite", "--out", "{r}/c_out", "--check", "-1"], "-1"),
    ("negative", "drift-calibrate", ["{r}/samples_misfit.npz", "--out", "{r}/cal_out", "--n-inferences", "-1"], "-1"),
    ("negative", "drift-heldout", ["{r}/samples_misfit.npz", "{r}/samples_misfit.npz", "--splits", "-1"], "-1"),
    ("zero", "drift-heldout", ["{r}/samples_misfit.npz", "{r}/samples_misfit.npz", "--n-inferences", "0"], "0"),
    # too few to calibrate for the target: once found after the model ran on every set
    ("too-few", "drift-heldout", ["{r}/clips_other_size.npz", "{r}/clips_other_size.npz", "--model", "{r}/model",
                                  "--n-inferences", "1000"], "and 1,000 were asked for"),
    ("too-few", "drift-heldout", ["{r}/clips_other_size.npz", "{r}/clips_other_size.npz", "--model", "{r}/model",
                                  "--target-arl0", "1e7"], "raise --n-inferences or lower --target-arl0"),
    ("not-a-number", "drift-verify", ["{r}/config.json", "--seed", "one"], "one"),
    ("bad-choice", "c-sources", ["--stage", "app"], "'app' is not one of"),
    ("missing-folder", "emulate", ["--keep", "{r}/nothing/board.keep"], "nothing/board.keep: its folder"),
    ("folder-for-file", "emulate", ["--keep", "{r}/adir"], "adir is a folder"),
    ("empty-path", "emulate", ["--keep", ""], "an empty path"),
    # names and URLs
    ("bad-name", "model-c", ["{r}/model/model_int8.tflite", "--out", "{r}/c_out", "--name", "../kws"], "../kws"),
    ("long-name", "model-c", ["{r}/model/model_int8.tflite", "--out", "{r}/c_out", "--name", "a" * 5000],
     "a name of 5,000 characters (aaaaaaaaaaaaaaaa...) is too long"),
    ("long-name", "drift-calibrate", ["{r}/samples_misfit.npz", "--out", "{r}/cal_out", "--name", "k" * 222],
     "give at most 221"),
    ("bad-name", "export", ["--model", "{r}/model", "--data", "{r}/adir", "--name", "KWS-1"], "KWS-1"),
    ("bad-name", "drift-calibrate", ["{r}/samples_misfit.npz", "--out", "{r}/cal_out", "--name", "a b"], "a b"),
    ("bad-url", "capture", ["--port", "socket://127.0.0.1:99999", "--db", "{r}/c.db"], "99999"),
    ("bad-url", "replay", ["{r}/adir", "--port", "bogus://device"], "bogus"),
    ("bad-url", "label", ["12", "1", "--port", "bogus://device"], "bogus"),
    ("missing", "label", ["12", "1", "--db", "{r}/no_capture.sqlite"], "no_capture.sqlite"),
    ("wait-without-db", "label", ["12", "1", "--port", PORT, "--wait", "5"], "--wait is for --db"),
    ("not-a-database", "label", ["12", "1", "--db", "{r}/samples_misfit.npz"], "samples_misfit.npz"),
    ("range", "label", ["12", "256", "--db", "{r}/no_capture.sqlite"], "256"),
    ("both", "label", ["12", "1", "--port", PORT, "--db", "{r}/no_capture.sqlite"], "--db"),
    ("bad-url", "monitor", ["--port", "socket://:4321", "--once"], "socket://:4321"),
    ("bad-url", "gateway", ["--port", PORT, "--broker", "http://broker:80", "--outbox", "{r}/o.sqlite"],
     "http://broker:80"),
    ("bad-url", "collect", ["--broker", "mqtt://127.0.0.1:9", "--db", "mysql://db/fleet"], "mysql://db/fleet"),
    ("bad-url", "collect", ["--broker", "mqtt://127.0.0.1:9", "--db", "postgresql://tinydrift@127.0.0.1:abc/fleet"],
     "127.0.0.1:abc"),
    ("bad-name", "gateway", ["--port", PORT, "--broker", "mqtt://127.0.0.1:9", "--outbox", "{r}/o.sqlite",
                             "--fleet", "kws/eu"], "kws/eu"),
    ("bad-name", "collect", ["--broker", "mqtt://127.0.0.1:9", "--db", "postgresql://u@h/db", "--group", "a+b"],
     "group name 'a+b'"),
    # past what a CONNECT packet carries: once a traceback in paho's network thread, then exit 0
    ("huge-client-id", "gateway", ["--port", PORT, "--broker", "mqtt://127.0.0.1:9", "--outbox", "{r}/o.sqlite",
                                   "--client-id", "x" * 70000], "MQTT client id of 70,000 bytes"),
    ("huge-client-id", "collect", ["--broker", "mqtt://127.0.0.1:9", "--db", "postgresql://u@h/db", "--name",
                                   "x" * 65500], "collector name of 65,500 bytes"),
    ("huge-client-id", "fleet-simulate", ["--devices", "3", "--broker", "mqtt://127.0.0.1:9", "--client-id", "ü" * 40000],
     "MQTT client id of 80,000 bytes"),
    ("not-utf8-client-id", "gateway", ["--port", PORT, "--broker", "mqtt://127.0.0.1:9", "--outbox", "{r}/o.sqlite",
                                       "--client-id", "a\udcffb"], "is not valid UTF-8"),
    ("bad-name", "collect", ["--broker", "mqtt://127.0.0.1:9", "--db", "postgresql://u@h/db", "--fleet", "kws eu"],
     "kws eu"),
    ("not-a-database", "gateway", ["--port", "loop://", "--broker", "mqtt://127.0.0.1:9", "--outbox", "{r}/afile"],
     "afile"),
    ("unreachable-port", "gateway", ["--port", PORT, "--broker", "mqtt://127.0.0.1:9", "--outbox", "{r}/o.sqlite"],
     PORT),
    ("output-blocked", "gateway", ["--port", PORT, "--broker", "mqtt://127.0.0.1:9", "--outbox", "{blocked}/o.sqlite"],
     "blocker"),
    ("missing-path", "collect", ["--broker", "mqtt://127.0.0.1:9", "--db", "postgresql://u@h/db",
                                 "--model-dir", "{r}/nothing"], "nothing"),
    ("zero", "collect", ["--broker", "mqtt://127.0.0.1:9", "--db", "postgresql://u@h/db", "--batch", "0"], "0"),
    ("negative", "fleet-up", ["--broker-port", "-1"], "-1"),
    ("bad-url", "fleet-serve", ["--db", "sqlite:///fleet.db"], "sqlite:///fleet.db"),
    ("bad-url", "fleet-simulate", ["--devices", "3", "--broker", "http://broker:80"], "http://broker:80"),
    ("bad-name", "fleet-simulate", ["--devices", "3", "--broker", "mqtt://127.0.0.1:9", "--scenario", "nope"], "nope"),
    ("zero", "fleet-simulate", ["--devices", "0", "--broker", "mqtt://127.0.0.1:9"], "0"),
    # files whose content is damaged
    ("truncated-wav", "eval", ["{r}/model", "{r}/wav_truncated"], "a_nohash_0.wav"),
    ("labels-past-classes", "eval", ["{r}/model", "{r}/clips_label_past.npz"], "labels must be class indices 0..11"),
    ("negative-labels", "eval", ["{r}/model", "{r}/clips_label_negative.npz"], "found -1..2"),
    ("labels-2d", "eval", [str(REPO_ROOT / "models" / "plant"), "{r}/images_labels_2d.npz"],
     "labels must be one integer class index per item"),
    ("empty-set", "eval", ["{r}/model", "{r}/clips_none.npz"], "clips_none.npz holds no clips"),
    ("empty-set", "eval", [str(REPO_ROOT / "models" / "plant"), "{r}/images_none.npz"], "images_none.npz holds no images"),
    ("truncated-wav", "replay", ["{r}/wav_truncated", "--port", PORT], "a_nohash_0.wav"),
    ("empty-wav", "eval", ["{r}/model", "{r}/wav_empty"], "a_nohash_0.wav"),
    ("empty-wav", "replay", ["{r}/wav_empty", "--port", PORT], "a_nohash_0.wav"),
    ("no-images", "replay", ["{r}/no_images", "--port", PORT], "no_images"),
    ("damaged-image", "replay", ["{r}/image_damaged", "--port", PORT], "leaf.png"),
    # refused before the port (whose opening starts an emulated board), not frame by frame by the device
    ("other-kind", "replay", ["{r}/clips_none.npz", "--port", PORT], "clips_none.npz holds no clips or images"),
    ("other-kind", "replay", ["{r}/wav_good", "--port", PORT, "--model-dir", str(REPO_ROOT / "models" / "plant")],
     "WAV files and no images, and --model-dir is a camera model"),
    ("other-kind", "replay", ["{r}/clips_ok.npz", "--port", PORT, "--model-dir",
                              str(REPO_ROOT / "models" / "plant")], "audio clips, and --model-dir"),
    ("other-kind", "replay", ["{r}/leaves_one_class", "--port", PORT, "--model-dir", "{r}/model"],
     "images, and --model-dir"),
    ("truncated-pcm", "emulate", ["--audio", "{r}/odd.pcm"], "odd.pcm"),
    ("stray-files", "eval", ["{r}/model", "{r}/fsdd_stray"], "notes_about_it.wav"),
    ("tampered-json", "verify", ["{r}/model_tampered"], "score_drift"),
    ("tampered-json", "demo", ["--model", "{r}/model_tampered", "--out", "{r}/demo_out"], "score_drift"),
    ("tampered-json", "demo", ["--model", "{r}/model_labels", "--out", "{r}/demo_out"], "labels"),
    ("tampered-json", "capture", ["--port", PORT, "--db", "{r}/c.db", "--model-dir", "{r}/model_labels"], "labels"),
    ("tampered-json", "replay", ["{r}/wav_good", "--port", PORT, "--db", "{r}/c.db", "--model-dir", "{r}/model_tampered"],
     "score_drift"),
    ("tampered-json", "bench-drift", ["--model-dir", "{r}/model_tampered", "--out", "{r}/bench_out"], "score_drift"),
    ("tampered-json", "bench-fleet", ["--model-dir", "{r}/model_tampered", "--out", "{r}/bench_out"], "score_drift"),
    ("tampered-json", "fleet-simulate", ["--devices", "3", "--broker", "mqtt://127.0.0.1:9",
                                         "--model-dir", "{r}/model_tampered"], "score_drift"),
    ("wrong-shape-json", "drift-header", ["{r}/config_list.json", "{r}/out.h"], "config_list.json"),
    ("wrong-shape-json", "drift-verify", ["{r}/config_partial.json"], "config_partial.json"),
    ("wrong-shape-json", "drift-cost", ["{r}/config_types.json"], "config_types.json"),
    # once read as a drift level never reached
    ("missing-field-json", "drift-header", ["{r}/config_no_drift_level.json", "{r}/out.h"], "missing fields ['score_drift']"),
    ("wrong-shape-json", "drift-check-arl", ["{r}/config_list.json", "{r}/samples_misfit.npz"], "config_list.json"),
    ("wrong-shape-json", "drift-header", ["{r}/config_nested.json", "{r}/out.h"], "ref_mean must be a vector of integers, got shape (42, 1)"),
    ("huge-json", "drift-header", ["{r}/config_huge.json", "{r}/out.h"], "score_gain_q16 out of the range of int32"),
    ("wrong-shape-json", "report", ["{r}/afile", "--out", "{r}/report_out", "--truth", "{r}/truth_list.json"],
     "truth_list.json"),
    # once a report without any truth, and exit 0 (trial 19)
    ("misspelt-key", "report", ["{r}/afile", "--out", "{r}/report_out", "--truth", "{r}/truth_misspelt.json"],
     "truth_misspelt.json: unknown key 'shift'"),
    ("wrong-shape-samples", "drift-check-arl", ["{r}/config.json", "{r}/samples_misfit.npz"], "samples_misfit.npz"),
    ("wrong-shape-samples", "drift-calibrate", ["{r}/samples_ragged.npz", "--out", "{r}/cal_out"], "samples_ragged.npz"),
    ("object-array", "drift-calibrate", ["{r}/objects.npz", "--out", "{r}/cal_out"], "it holds an array of Python objects"),
    ("object-array", "eval", ["{r}/model", "{r}/objects.npz"], "it holds an array of Python objects"),
    ("wrong-shape-samples", "drift-heldout", ["{r}/samples_ragged.npz", "{r}/samples_ragged.npz"], "samples_ragged.npz"),
    ("float-probs", "drift-calibrate", ["{r}/samples_float_probs.npz", "--out", "{r}/cal_out"], "expected the model's int8 softmax"),
    ("nan-summaries", "drift-calibrate", ["{r}/samples_nan_summaries.npz", "--out", "{r}/cal_out"], "expected the device's int16 input summaries"),
    ("huge-summaries", "drift-calibrate", ["{r}/samples_huge_summaries.npz", "--out", "{r}/cal_out"], "expected the device's int16 input summaries"),
    ("constant-summaries", "drift-calibrate", ["{r}/samples_constant.npz", "--out", "{r}/cal_out"], "every summary value is the same"),
    ("labels-beyond-classes", "drift-calibrate", ["{r}/samples_labels.npz", "--out", "{r}/cal_out"], "class indices 0..2"),
    ("features-misfit", "drift-heldout", ["{r}/clips_other_size.npz", "{r}/clips_other_size.npz", "--model", "{r}/model"],
     "features of 7x7, and the model takes 49x40x1"),
    ("no-probs", "drift-heldout", ["{r}/clips_other_size.npz", "{r}/clips_other_size.npz"], "give --model MODEL_DIR"),
    ("no-audio", "drift-calibrate", ["{r}/features_no_audio.npz", "--out", "{r}/dc_out"],
     "features without the clips' audio"),
    ("features-past-int8", "drift-calibrate", ["{r}/features_int16.npz", "--out", "{r}/cal_out"],
     "features of int16 from 3000 to 3000; expected the model's int8 inputs"),
    ("features-float", "drift-heldout", ["{r}/features_float.npz", "{r}/features_float.npz", "--model", "{r}/model"],
     "features of float32 from 0.5 to 0.5"),
    ("features-none", "drift-heldout", ["{r}/features_none.npz", "{r}/features_none.npz", "--model", "{r}/model"],
     "features_none.npz: features (0, 49, 40)"),
    ("audio-without-features", "drift-heldout", ["{r}/audio_only.npz", "{r}/audio_only.npz", "--model", "{r}/model"],
     "a clip set of audio without the front end's features"),
    # calibrate has no --model: it once said to give one
    ("no-probs", "drift-calibrate", ["{r}/clips_other_size.npz", "--out", "{r}/dc_out"], "`drift heldout --model` runs one"),
    ("damaged-tflite", "model-c", ["{r}/model_damaged/model_int8.tflite", "--out", "{r}/c_out"], "model_int8.tflite"),
    ("damaged-tflite", "model-c", ["{r}/model_bad_shape/model_int8.tflite", "--out", "{r}/c_out"],
     "is a damaged TFLite model (tensor "),
    ("damaged-tflite", "model-c", ["{r}/model_bad_size/model_int8.tflite", "--out", "{r}/c_out"],
     "values for its shape [1, 3, 3, 64]): convert it again"),
    ("damaged-tflite", "demo", ["--model", "{r}/model_damaged", "--out", "{r}/demo_out"], "model_int8.tflite"),
    ("damaged-tflite", "eval", ["{r}/model_damaged", "{r}/wav_truncated"], "model_int8.tflite"),
    ("damaged-tflite", "drift-heldout", ["{r}/samples_misfit.npz", "{r}/samples_misfit.npz",
                                         "--model", "{r}/model_damaged"], "model_int8.tflite"),
    ("damaged-tflite", "bench-drift", ["--model-dir", "{r}/model_damaged", "--out", "{r}/bench_out"], "model_int8.tflite"),
    ("other-classes", "bench-drift", ["--model-dir", "{r}/model_own_classes", "--out", "{r}/bench_out"],
     "the bench draws the keyword set's clips"),
    # wake-word models (by path or by the name of one pymicro-wakeword ships)
    ("missing-path", "wakeword-check", ["{r}/nothing.tflite"], "nothing.tflite"),
    ("unknown-name", "wakeword-check", ["okay_google"], "okay_google"),
    # an export folder given as the model: once "give a .tflite model or its .json config" only
    ("export-folder", "wakeword-check", ["{r}/ww_detector"], "is a folder `tinydrift wakeword export` or `calibrate` wrote"),
    ("wrong-shape-json", "wakeword-check", ["{r}/config_list.json"], "config_list.json"),
    ("not-a-wakeword-model", "wakeword-check", ["{r}/model/model_int8.tflite"], "model_int8.json"),
    ("missing-path", "wakeword-detect", ["okay_nabu", "{r}/nothing.wav"], "nothing.wav"),
    ("no-wavs", "wakeword-detect", ["okay_nabu", "{r}/no_images"], "no_images: a folder without .wav files"),
    ("truncated-wav", "wakeword-detect", ["okay_nabu", "{r}/wav_truncated/yes/a_nohash_0.wav"], "a_nohash_0.wav"),
    ("float-wav", "wakeword-detect", ["okay_nabu", "{r}/wav_float/a.wav"],
     "not a readable WAV file (its samples are floating point); convert it to 16-bit integer PCM"),
    ("empty-path", "wakeword-export", ["okay_nabu", "--out", ""], "empty path"),
    ("wrong-rate-wav", "wakeword-detect", ["okay_nabu", "{r}/fsdd_stray/recordings/0_jackson_0.wav"], "8000 Hz"),
    ("missing-path", "wakeword-detect", ["{r}/nothing.tflite", "{r}/wav_good/a.wav"], "nothing.tflite"),
    ("output-blocked", "wakeword-export", ["okay_nabu", "--out", "{blocked}"], "blocker"),
    # a folder no one can make, though access() says yes to root: once found only when writing
    ("output-impossible", "wakeword-export", ["okay_nabu", "--out", "/proc/tinydrift_out"], "'/proc/tinydrift_out' cannot be created"),
    ("bad-name", "wakeword-export", ["okay_nabu", "--out", "{r}/ww_out", "--name", "../nabu"], "../nabu"),
    ("file-in-the-way", "wakeword-export", ["okay_nabu", "--out", "{r}/ww_include_file"], "include"),
    ("output-blocked", "wakeword-calibrate", ["okay_nabu", "--out", "{blocked}"], "blocker"),
    # one session once ran for 40 s, said "calibrated", then failed: calibration resamples sessions
    ("one-session", "wakeword-calibrate", ["okay_nabu", "--out", "{r}/ww_out", "--sessions", "1"], "1"),
    ("missing-path", "wakeword-calibrate", ["okay_nabu", "--out", "{r}/ww_out", "--wavs", "{r}/nothing"], "nothing"),
    ("truncated-wav", "wakeword-calibrate", ["okay_nabu", "--out", "{r}/ww_out", "--wavs", "{r}/wav_truncated/yes"],
     "a_nohash_0.wav"),
    ("too-few-recordings", "wakeword-calibrate", ["okay_nabu", "--out", "{r}/ww_out", "--wavs", "{r}/wav_good"],
     "1 .wav file (sub-folders searched)"),
    ("unknown-name", "bench-wakeword", ["--model", "okay_google", "--out", "{r}/bench_out"], "okay_google"),
    ("missing-path", "bench-wakeword", ["--model", "{r}/nothing.tflite", "--out", "{r}/bench_out"], "nothing.tflite"),
    ("not-calibrated", "bench-wakeword", ["--model", "okay_nabu", "--monitor-dir", "{r}/wav_good",
                                          "--out", "{r}/bench_out"], "no monitor.json"),
    ("stale-calibration", "bench-wakeword", ["--model", "okay_nabu", "--monitor-dir", "{r}/ww_stale",
                                             "--out", "{r}/bench_out"], "input summary of 42 values"),
    ("output-blocked", "bench-wakeword", ["--model", "okay_nabu", "--out", "{blocked}"], "blocker"),
    # once found after the bench's minutes of work
    ("no-recordings", "bench-wakeword", ["--model", "okay_nabu", "--recorded-speech", "{r}/no_images", "--out",
                                         "{r}/bench_out"], "no_images: neither fsdd/ nor speech_commands_v0.01_subset/"),
    ("unknown-name", "wakeword-demo", ["okay_google", "--out", "{r}/demo_out"], "okay_google"),
    ("unknown-change", "wakeword-demo", ["okay_nabu", "--change", "earthquake", "--out", "{r}/demo_out"], "earthquake"),
    ("output-blocked", "wakeword-demo", ["okay_nabu", "--out", "{blocked}"], "blocker"),
    ("not-elf", "emulate", ["--elf", "{r}/not_elf.elf"], "not_elf.elf"),
    ("cut-elf", "emulate", ["--elf", "{r}/cut.elf"], "cut.elf' is cut short (its program headers point past its end)"),
    ("other-cpu-elf", "emulate", ["--elf", "{r}/x86.elf"], "is an ELF image for another CPU"),
    ("not-a-wav", "emulate", ["--audio", "{r}/not_a.wav"], "is named .wav but is no WAV file"),
    ("not-elf", "bench-device", ["--model-dir", "{r}/model", "--app-elf", "{r}/not_elf.elf"], "not_elf.elf"),
    ("own-recordings", "train", ["--data", "{r}/wav_good", "--out", "{r}/train_out"],
     "a folder of your own recordings or images; train reads the splits"),
    ("missing-path", "data-drift", ["gain_up_6db", "{r}/nothing.npz", "--out", "{r}/drifted.npz"], "nothing.npz"),
    ("empty-set", "data-drift", ["gain_up_6db", "{r}/clips_none.npz", "--out", "{r}/drifted.npz"], "holds no clips"),
    ("unknown-name", "data-drift", ["earthquake", "{r}/clips_ok.npz", "--out", "{r}/drifted.npz"],
     "earthquake: no such drift scenario for a clip set (scenarios: gain_down_20db"),
    ("other-kind", "data-drift", ["lens_smudge_2px", "{r}/clips_ok.npz", "--out", "{r}/drifted.npz"],
     "it is a camera scenario, for image sets"),
    ("population", "data-drift", ["accent", "{r}/clips_ok.npz", "--out", "{r}/drifted.npz"],
     "another population of speakers, not a change of a given set; `tinydrift data kws` writes the accent split"),
    ("no-severity", "data-drift", ["telephone_band", "{r}/clips_ok.npz", "--out", "{r}/drifted.npz", "--severity", "3"],
     "telephone_band takes no other severity"),
    # past a transform's range it failed with a traceback (a blur of 0 divided by it), or wrote
    # the set unchanged under a new name (a blur of -3)
    ("severity-out-of-range", "data-drift", ["lens_smudge_2px", "{r}/images_ok.npz", "--out", "{r}/drifted.npz",
                                              "--severity", "-3"],
     "--severity: lens_smudge_2px takes a blur of 0.1 to 10 pixels, not -3"),
    ("severity-out-of-range", "data-drift", ["jpeg_q8", "{r}/images_ok.npz", "--out", "{r}/drifted.npz",
                                              "--severity", "500"], "takes a JPEG quality of 1 to 100, not 500"),
    ("severity-out-of-range", "data-drift", ["cheap_mic_lowpass_2k", "{r}/clips_ok.npz", "--out", "{r}/drifted.npz",
                                              "--severity", "9000"], "takes a cut-off of 50 to 7,900 Hz, not 9000"),
    # the opposite change under the scenario's name (trial 21: underexposed by +4 stops overexposed)
    ("severity-other-sign", "data-drift", ["underexposed_1stop", "{r}/images_ok.npz", "--out", "{r}/drifted.npz",
                                            "--severity", "4"], "is the opposite change: give -4"),
    ("severity-other-sign", "data-drift", ["gain_down_20db", "{r}/clips_ok.npz", "--out", "{r}/drifted.npz",
                                            "--severity", "12"], "is the opposite change: give -12"),
    ("overwrites-source", "data-drift", ["gain_up_6db", "{r}/clips_ok.npz", "--out", "{r}/clips_ok.npz"],
     "that is SOURCE itself, which the drifted copy would replace"),
    ("nothing-left", "data-drift", ["yes_knocked_out", "{r}/clips_yes.npz", "--out", "{r}/drifted.npz"],
     "the set holds only classes the scenario knocks out"),
    ("no-attribute", "data-drift", ["pale_spots_now_leaf_spot", "{r}/images_ok.npz", "--out", "{r}/drifted"],
     "picks leaves by their recorded texture, which only the procedural leaves carry"),
    ("not-empty", "data-drift", ["gain_up_6db", "{r}/clips_ok.npz", "--out", "{r}/wav_good"],
     "already exists and is not an empty folder"),
    ("output-blocked", "data-drift", ["gain_up_6db", "{r}/clips_ok.npz", "--out", "{blocked}"], "blocker"),
]


def _argv(command: str, args: list[str], root: Path) -> list[str]:
    words = {"data-kws": ["data", "kws"], "data-plant": ["data", "plant"], "data-drift": ["data", "drift"]}.get(command) or (
        command.split("-", 1) if command.startswith(("drift-", "bench-", "fleet-", "wakeword-")) else [command])
    blocked = root / "blocker" / "out"
    return words + [a.format(r=root, blocked=blocked) for a in args]


def _tree(root: Path) -> dict[str, tuple[int, int]]:
    """Every path below root with its size and modification time: what a command left."""
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*")}


class _Hang(Exception):
    pass


def _on_alarm(signum, frame):
    raise _Hang(f"no answer within {CASE_SECONDS} s")


def _invoke(argv: list[str]):
    previous = signal.signal(signal.SIGALRM, _on_alarm)
    signal.alarm(CASE_SECONDS)
    try:
        return CliRunner().invoke(main, argv)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@pytest.mark.parametrize("klass, command, args, named", [
    pytest.param(*case, id=f"{case[0]}-{case[1]}") for case in CASES])
def test_bad_input_is_refused_in_one_line(hostile, klass, command, args, named):
    named = named.format(r=hostile)
    before = _tree(hostile)
    result = _invoke(_argv(command, args, hostile))
    exception = result.exception
    assert exception is None or isinstance(exception, SystemExit), (
        f"traceback: {exception!r}\n{result.output}")
    assert result.exit_code != 0, result.output
    errors = [line for line in result.output.splitlines() if line.startswith(("error:", "Error:"))]
    assert len(errors) == 1, result.output
    assert named in errors[0], f"the error does not name {named!r}: {errors[0]}"
    assert _tree(hostile) == before, "the command left or changed files"


@pytest.mark.parametrize("command, args", [
    ("export", ["--model", "{r}/ww_detector", "--data", "{r}/adir"]),
    ("drift-calibrate", ["{r}/samples_misfit.npz", "--out", "{r}/cal_out"]),
])
def test_a_refusal_inside_a_progress_display_is_the_only_line(hostile, command, args):
    """Refused after the progress display opened but before its first bar: the display,
    stopped with nothing in it, once printed an empty line above the error."""
    result = _invoke(_argv(command, args, hostile))
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit), result.output
    assert result.output.startswith("error: ") and result.output.count("\n") == 1, repr(result.output)


def test_off_a_terminal_each_progress_bar_is_a_line_written_when_it_completes(capsys):
    """Trial 13 redirected `wakeword demo` into a log: rich drew every bar when the display
    stopped, below the lines the command had written after them."""
    import click

    from tinydrift.cli.common import progress_bars

    with progress_bars() as bars:
        synthesizing = bars("synthesizing", 3)
        for _ in range(3):
            synthesizing()
        click.echo("150 s of audio in QEMU", err=True)
        simulating = bars("simulating", 2)
        simulating(2)
        simulating()  # past its total: no second line
        bars("interrupted", 5)(1)
    assert capsys.readouterr().err.splitlines() == [f"{'synthesizing':<24} 3/3", "150 s of audio in QEMU",
                                                    f"{'simulating':<24} 2/2"]
    # a bar still running says how far it got now and then (trial 15's replay: 10 silent minutes)
    with progress_bars(line_every_s=0.0) as bars:
        replaying = bars("replaying", 3)
        for _ in range(3):
            replaying()
    assert capsys.readouterr().err.splitlines() == [f"{'replaying':<24} {n}/3" for n in (1, 2, 3)]


@pytest.mark.parametrize("model, audio, named", [
    # a camera build never reads the microphone: the audio went unheard, the app never exited
    (REPO_ROOT / "models" / "plant", "wav_good/a.wav", "is a camera model, whose board hears nothing"),
    # refused before the firmware's build (minutes, the first time), not after it
    (COMMITTED_MODEL, "wav_float/a.wav", "its samples are floating point"),
    (COMMITTED_MODEL, "fsdd_stray/recordings/0_jackson_0.wav", "is 8000 Hz mono 16-bit"),
    (COMMITTED_MODEL, "wav_stereo/a.wav", "is 16000 Hz stereo 16-bit"),
])
def test_emulate_refuses_audio_before_building_the_firmware(hostile, monkeypatch, model, audio, named):
    import tinydrift.target.flash

    def build(*args, **kwargs):
        raise AssertionError("the firmware was built before the audio was checked")

    monkeypatch.setattr(tinydrift.target.flash, "flash", build)
    result = _invoke(["emulate", "--model", str(model), "--audio", str(hostile / audio)])
    # a usage error, as every other refused --audio is
    assert isinstance(result.exception, SystemExit) and result.exit_code == 2, (result.exit_code, result.output)
    assert named in result.output and "Traceback" not in result.output, result.output


def test_an_unknown_wakeword_demo_change_is_a_usage_error(hostile):
    """A --change no scenario has is a bad value (exit 2, as other bad values are), named
    with the ones there are, before any model or build is touched."""
    result = _invoke(["wakeword", "demo", "okay_nabu", "--change", "earthquake", "--out", str(hostile / "demo_out")])
    assert result.exit_code == 2, result.output
    assert "'--change': earthquake: no such change; give one of white_noise_20db" in result.output


def _leaf_commands(group: click.Group, prefix: str = "") -> set[str]:
    names = set()
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            names |= _leaf_commands(command, f"{prefix}{name}-")
        else:
            names.add(prefix + name)
    return names


def test_every_command_meets_hostile_input():
    tried = {command for _, command, _, _ in CASES}
    assert _leaf_commands(main) - tried == set()


# The real executable: its exit code and stderr, as a shell sees them.
SUBPROCESS_CASES = [
    (["emulate", "--elf", "{r}/not_elf.elf"], 2, "not_elf.elf"),
    (["capture", "--port", "socket://127.0.0.1:0", "--db", "{r}/c.db"], 2, "socket://127.0.0.1:0"),
    (["eval", "{r}/model", "{r}/wav_empty"], 1, "a_nohash_0.wav"),
    (["drift", "verify", "{r}/config_list.json"], 1, "config_list.json"),
    (["demo", "--model", "{r}/model_labels", "--out", "{r}/demo_out"], 1, "labels"),
]


@pytest.mark.parametrize("args, code, named", SUBPROCESS_CASES, ids=lambda v: v[0] if isinstance(v, list) else None)
def test_real_executable_exits_without_traceback(hostile, args, code, named):
    executable = Path(sys.executable).with_name("tinydrift")
    if not executable.exists():
        pytest.skip(f"{executable} is not installed (pip install -e .)")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT / "host"),
                                                                     os.environ.get("PYTHONPATH")]))}
    run = subprocess.run([str(executable), *[a.format(r=hostile) for a in args]], capture_output=True, text=True,
                         timeout=120, env=env, stdin=subprocess.DEVNULL)
    assert "Traceback" not in run.stderr, run.stderr
    assert run.returncode == code, run.stderr
    assert named.format(r=hostile) in run.stderr
    assert not (hostile / "demo_out").exists()


@contextlib.contextmanager
def silent_port():
    """A device port on 127.0.0.1 that takes the connection and never answers: its
    socket:// URL, and a list that holds the connection once taken."""
    import socket
    import threading

    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        held = []
        threading.Thread(target=lambda: held.append(server.accept()), daemon=True).start()
        yield f"socket://127.0.0.1:{server.getsockname()[1]}", held


@pytest.mark.parametrize("sig, code, said", [(signal.SIGINT, 130, "interrupted"), (signal.SIGTERM, 143, "terminated")])
def test_replay_interrupted_says_what_it_kept(hostile, tmp_path, sig, code, said):
    """Ctrl-C during a replay (here to a port that never answers) ends with one line saying
    where the frames received so far are, and the shell's code 130, not click's bare
    "Aborted!". SIGTERM printed nothing and recorded the session as an error (trial 19)."""
    import time

    executable = Path(sys.executable).with_name("tinydrift")
    if not executable.exists():
        pytest.skip(f"{executable} is not installed (pip install -e .)")
    with silent_port() as (url, held):
        db = tmp_path / "replay.sqlite"
        replay = subprocess.Popen([str(executable), "replay", str(hostile / "wav_good"), "--port", url, "--db", str(db)],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while not held and time.monotonic() < deadline:  # the port is open: past imports and checks
            time.sleep(0.05)
        time.sleep(1.0)  # its database session opens right after the port
        replay.send_signal(sig)
        _, err = replay.communicate(timeout=60)
    assert replay.returncode == code and "Traceback" not in err and "Aborted" not in err, err
    assert err.strip().splitlines()[-1] == f"replay {said}; the frames received so far are stored in {db}"
    conn = sqlite3.connect(db)
    assert conn.execute("SELECT end_reason FROM sessions").fetchall() == [(said,)]
    conn.close()


def test_a_replay_to_a_port_that_never_answers_leaves_no_database(hostile, tmp_path):
    """It left a new database holding one empty session ended "error" (trial 19), where
    capture leaves none."""
    with silent_port() as (url, _):
        db = tmp_path / "replay.sqlite"
        result = CliRunner().invoke(main, ["replay", str(hostile / "wav_good"), "--port", url, "--db", str(db)])
    assert result.exit_code == 1 and "did not answer" in result.output, result.output
    assert not db.exists() and not list(tmp_path.glob("replay.sqlite*"))


def test_files_that_are_no_npz_archive_are_named_without_numpy_s_unsafe_advice(hostile, tmp_path):
    """numpy calls a text file "pickled (object) data" and suggests allow_pickle; a cut
    archive reached the drift commands as a BadZipFile traceback."""
    (tmp_path / "notes.npz").write_text("not an archive\n")
    whole = (hostile / "samples_misfit.npz").read_bytes()
    (tmp_path / "cut.npz").write_bytes(whole[:len(whole) // 2])
    for name, says in (("notes.npz", "not a numpy .npz archive"), ("cut.npz", "a damaged or cut .npz archive")):
        for argv in (["drift", "calibrate", str(tmp_path / name), "--out", str(tmp_path / "out")],
                     ["eval", str(hostile / "model"), str(tmp_path / name)]):
            result = CliRunner().invoke(main, argv)
            assert result.exit_code == 1 and result.exception is not None and isinstance(result.exception, SystemExit)
            assert says in result.output and "pickle" not in result.output and "Traceback" not in result.output, \
                result.output


def test_a_lone_npy_array_or_an_archive_of_other_files_is_named_not_a_traceback(hostile, tmp_path):
    """A trial's hostile input: np.save's single .npy array (under its own name or named
    .npz) reached `with np.load(...)` as a bare array, a TypeError traceback; a zip whose
    members are no .npy files reached the drift commands as bytes, an AttributeError."""
    import zipfile

    np.save(tmp_path / "lone.npy", np.zeros(3))
    (tmp_path / "lone_named.npz").write_bytes((tmp_path / "lone.npy").read_bytes())
    with zipfile.ZipFile(tmp_path / "members.npz", "w") as archive:
        for name in ("summaries", "probs", "groups"):
            archive.writestr(f"{name}.npy", b"not an npy")
    reference = str(COMMITTED_MODEL / "reference.json")
    for name, says in (("lone.npy", "not a numpy .npz archive"), ("lone_named.npz", "not a numpy .npz archive"),
                       ("members.npz", "a damaged .npz archive (groups, probs, summaries: not numpy arrays)")):
        path = str(tmp_path / name)
        for argv in (["drift", "check-arl", reference, path], ["drift", "calibrate", path, "--out", str(tmp_path / "out")],
                     ["drift", "heldout", path, path], ["eval", str(hostile / "model"), path],
                     ["data", "drift", "gain_up_6db", path, "--out", str(tmp_path / "drifted.npz")]):
            if name == "lone.npy" and argv[0] in ("eval", "data"):
                continue  # a lone file that is no .npz is a WAV question there (named otherwise)
            result = CliRunner().invoke(main, argv)
            assert result.exit_code == 1 and isinstance(result.exception, SystemExit), (argv, result.output)
            if name == "members.npz" and argv[0] in ("eval", "data"):
                continue  # read as a clip set: it has no label names, which is said
            assert says in result.output, (argv, result.output)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lone.npy", "lone_named.npz", "members.npz"]


def _options_where(keep) -> list[str]:
    """'command --option' for every option of every command (sub-groups too) that keep(param) takes."""
    from tinydrift.cli import main

    def commands(group, path=()):
        for name, command in group.commands.items():
            yield path + (name,), command
            if isinstance(command, click.Group):
                yield from commands(command, path + (name,))

    return [f"{' '.join(path)} {param.opts[0] if param.opts else param.name}"
            for path, command in commands(main) for param in command.params if keep(param)]


def test_every_number_option_refuses_nan():
    """NaN passes every comparison, so click's FloatRange lets it through its bounds (fleet
    simulate --drift-share nan once ended in a traceback): every float option of every
    command is a FiniteFloat (or a type of ours that checks it)."""
    from tinydrift.cli.params import FiniteFloat

    loose = _options_where(lambda param: isinstance(param.type, click.types.FloatParamType)
                           and not isinstance(param.type, FiniteFloat))
    assert not loose, loose


def test_every_count_option_has_a_ceiling():
    """A count past int64 overflowed numpy's sizes (a traceback), and some took unbounded
    work first (`drift verify --inferences 1e23` grew its stream until memory ran out, `bench
    device --parse-frames 1e23` ran on): every integer option of every command has an upper
    bound, except seeds (numpy takes any size) and a serial port's speed."""
    from tinydrift.cli.params import BAUD, SEED

    unbounded = _options_where(lambda param: isinstance(param.type, click.types.IntParamType)
                               and getattr(param.type, "max", None) is None and param.type not in (SEED, BAUD))
    assert not unbounded, unbounded


def test_ctrl_c_while_the_commands_load_is_an_interruption_not_a_traceback():
    """Ctrl-C in a command's first half second (numpy, click and the commands' modules still
    loading) printed a Python traceback and died by the signal. The interrupt is made to
    arrive exactly there: an import hook raises it as tinydrift.cli is imported."""
    done = run_after(("class Interrupt:\n"
                      "    def find_spec(self, name, path=None, target=None):\n"
                      "        if name == 'tinydrift.cli':\n"
                      "            raise KeyboardInterrupt\n"
                      "sys.meta_path.insert(0, Interrupt())\n"),
                     ["capture", "--port", "socket://127.0.0.1:9", "--db", "x.sqlite"])
    assert (done.returncode, done.stderr, done.stdout) == (130, "interrupted\n", "")


def run_after(prelude: str, args: list[str]) -> subprocess.CompletedProcess:
    """`tinydrift ARGS` through the installed command's entry point, after `prelude` (Python
    that sets up where an interrupt lands) has run in the same process."""
    script = f"import sys\n{prelude}sys.argv = {['tinydrift', *args]!r}\nfrom tinydrift.__main__ import run\nrun()\n"
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)


def test_ctrl_c_after_the_command_ended_leaves_its_exit_code():
    """Ctrl-C as `report` exited, its page written, killed it by the signal (exit -2): Python
    puts the default handler back while it exits. Sent after run() has ended, it now changes
    nothing: the command's own exit code, no traceback."""
    script = ("import os, signal, sys, time\n"
              "sys.argv = ['tinydrift', '--version']\n"
              "from tinydrift.__main__ import run\n"
              "try:\n"
              "    run()\n"
              "except SystemExit:\n"
              "    os.kill(os.getpid(), signal.SIGINT)\n"
              "    time.sleep(0.2)\n"
              "    raise\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stderr) == (0, "") and done.stdout.startswith("tinydrift, version")


def test_ctrl_c_landing_in_a_garbage_collector_callback_still_ends_the_command():
    """Ctrl-C landing in a weakref callback while `report` ran printed "Exception ignored
    in ... KeyboardInterrupt" and the report went on to exit 0: Python drops exceptions
    there. The interrupt is made to land there: an object whose __del__ raises it, while the
    command still has seconds of work ahead (here a sleep: with none, a loaded machine could
    finish the command before the interrupt is delivered again, a few ms later)."""
    done = run_after(("import time\n"
                      "import tinydrift.codegen.frontend_tables as tables\n"
                      "class Dropped:\n"
                      "    def __del__(self):\n"
                      "        raise KeyboardInterrupt\n"
                      "computed = tables.compute_tables\n"
                      "def interrupted_in_a_finalizer():\n"
                      "    Dropped()\n"
                      "    for _ in range(500):\n"
                      "        time.sleep(0.01)  # short steps: a delivered interrupt is taken between them\n"
                      "    return computed()\n"
                      "tables.compute_tables = interrupted_in_a_finalizer\n"),
                     ["frontend-tables", "-o", "-"])
    assert (done.returncode, done.stderr, done.stdout) == (130, "interrupted\n", "")


def test_raw_pcm_that_happens_to_be_printable_is_still_audio(hostile):
    """The text check must not refuse a stuck sensor's recording whose bytes are letters."""
    from tinydrift.cli.params import _not_pcm

    assert _not_pcm(hostile / "stuck.pcm") is None
    assert _not_pcm(hostile / "even.txt").startswith("is a text file")
