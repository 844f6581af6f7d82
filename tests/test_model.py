"""Training, int8 conversion and the two runtimes, end to end on a small set."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from click.testing import CliRunner

from tinydrift.cli import main
from tinydrift.data.clipset import ClipSet
from tinydrift.data.labels import KEYWORDS, LABELS, SILENCE
from tinydrift.errors import TinydriftError
from tinydrift.modeldir import FLOAT_MODEL, INT8_MODEL
from tinydrift.model.evaluate import evaluate
from tinydrift.model.quantize import check_device_model, describe, quantize
from tinydrift.model.runtimes import run_litert, run_tflm, tflm_arena_bytes
from tinydrift.model.train import TrainConfig, train

from conftest import write_wav


# The briefly trained model is far better than chance (1/12) on held-out voices. Its exact
# accuracy depends on the CPU (TensorFlow's kernels differ by instruction set): 0.58 on one
# machine, above 0.6 on others; 0.4 is still five times chance.
BRIEF_MODEL_FLOOR = 0.4


@pytest.fixture(scope="module")
def small_model(small_kws, tmp_path_factory):
    model_dir = tmp_path_factory.mktemp("model")
    train(ClipSet.load(small_kws / "train.npz"), ClipSet.load(small_kws / "val.npz"), model_dir,
          TrainConfig(epochs=12, batch_size=32, filters=32, blocks=3))
    quantize(model_dir, ClipSet.load(small_kws / "train.npz").features)
    return model_dir


def test_int8_model_is_what_the_device_runs(small_model):
    model = (small_model / INT8_MODEL).read_bytes()
    info = check_device_model(model, small_model / INT8_MODEL, num_classes=12)
    assert info["inputs"][0]["quantization"] == (1.0, 0)
    assert info["outputs"][0]["quantization"] == (1.0 / 256, -128)
    assert {"SHAPE", "STRIDED_SLICE", "PACK"}.isdisjoint(info["ops"])
    assert tflm_arena_bytes((small_model / INT8_MODEL).read_bytes()) > 1000


def test_tflm_and_litert_agree_on_argmax(small_model, small_kws):
    model = (small_model / INT8_MODEL).read_bytes()
    clips = ClipSet.concat([ClipSet.load(small_kws / f"{s}.npz") for s in ("ref", "test", "accent")])
    tflm, litert = run_tflm(model, clips.features), run_litert(model, clips.features)
    assert tflm.shape == litert.shape == (len(clips), 12)
    # Not element for element: FULLY_CONNECTED rounds once in LiteRT and twice in TFLite
    # Micro. Where two classes tie at the top of an int8 output, argmax is a set
    # (a briefly trained model ties on ~1 % of clips, the reference model on far fewer): a
    # runtime agrees when its choice is among the other's top classes.
    rows = np.arange(len(clips))
    tflm_choice, litert_choice = tflm.argmax(1), litert.argmax(1)
    agree = ((tflm[rows, litert_choice] == tflm.max(1)) | (litert[rows, tflm_choice] == litert.max(1))).mean()
    assert agree >= 0.99, agree
    assert (tflm_choice == litert_choice).mean() >= 0.97


def test_eval_json_reports_accuracy_and_n(small_model, small_kws):
    result = CliRunner().invoke(main, ["eval", str(small_model), str(small_kws / "test.npz"), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["n"] == 240 and 0.0 <= report["accuracy"] <= 1.0
    assert sum(map(sum, report["confusion"])) == 240
    assert report["accuracy"] > BRIEF_MODEL_FLOOR


def eval_json(*args) -> dict:
    result = CliRunner().invoke(main, ["eval", *map(str, args), "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_eval_on_litert_is_close_to_tflite_micro(small_model, small_kws):
    tflm = eval_json(small_model, small_kws / "test.npz")
    litert = eval_json(small_model, small_kws / "test.npz", "--runtime", "litert")
    assert (tflm["runtime"], litert["runtime"]) == ("tflm", "litert")
    assert litert["n"] == tflm["n"] == 240
    # The runtimes differ only where FULLY_CONNECTED's rounding breaks a tie (see above).
    assert abs(litert["accuracy"] - tflm["accuracy"]) <= 0.03, (litert["accuracy"], tflm["accuracy"])


def test_eval_on_a_wav_folder_takes_each_clip_s_label_from_its_word_folder(small_model, small_kws, tmp_path):
    clips = ClipSet.load(small_kws / "test.npz")
    picked = clips.select(np.concatenate([np.flatnonzero(clips.labels == k)[:3] for k in range(len(LABELS))]))
    # Speech Commands layout: a folder per keyword, `_silence_`, and any other word is `_unknown_`.
    folder_of = {LABELS.index(w): w for w in (SILENCE, *KEYWORDS)} | {LABELS.index("_unknown_"): "bird"}
    for i, (audio, label) in enumerate(zip(picked.audio, picked.labels)):
        write_wav(tmp_path / "words" / folder_of[int(label)] / f"speaker{i}_nohash_0.wav", audio)
    report = eval_json(small_model, tmp_path / "words")
    assert report["n"] == 36 and {name: r["n"] for name, r in report["per_class"].items()} == dict.fromkeys(LABELS, 3)
    # The same clips with their labels from the clip set: the same predictions, class by class.
    expected = evaluate((small_model / INT8_MODEL).read_bytes(), picked, "tflm")
    assert report["confusion"] == expected["confusion"]


def test_eval_says_when_every_clip_is_of_one_class(small_model, small_kws, tmp_path):
    # FSDD's digits on the keyword model: every clip is `_unknown_`, so the accuracy is that
    # class's alone, and the output says so rather than leaving a low figure unexplained.
    clips = ClipSet.load(small_kws / "test.npz")
    for i, audio in enumerate(clips.audio[:4]):
        # one recording half a second long, one two seconds: fitted to 1 s, and counted as fitted
        audio = audio[:8000] if i == 0 else np.concatenate([audio, audio]) if i == 1 else audio
        write_wav(tmp_path / "words" / "seven" / f"speaker{i}_nohash_0.wav", audio)
    result = CliRunner().invoke(main, ["eval", str(small_model), str(tmp_path / "words")])
    assert result.exit_code == 0, result.output
    assert "_unknown_: " in result.output and "(4)" in result.output
    assert "every one of these clips is labelled _unknown_" in result.output
    assert "recordings not 1 s long: 1 shorter, padded with silence; 1 longer, cut to their middle second" in result.output
    # what became of the word folders, said (a user's own words once went to _unknown_ unsaid)
    missing = ", ".join(label for label in LABELS if label != "_unknown_")
    assert (f"(word folders counted as _unknown_, not among the model's classes: seven 4; no clips of {missing})"
            in result.output)
    # a macOS copy's metadata file beside a recording is no recording
    (tmp_path / "words" / "seven" / "._speaker0_nohash_0.wav").write_bytes(b"\x00\x05\x16\x07 AppleDouble")
    again = CliRunner().invoke(main, ["eval", str(small_model), str(tmp_path / "words")])
    assert again.exit_code == 0 and "(4)" in again.output, again.output


def test_quantize_command_writes_an_int8_model_tflite_micro_runs(small_model, small_kws, tmp_path):
    shutil.copy(small_model / FLOAT_MODEL, tmp_path / FLOAT_MODEL)
    result = CliRunner().invoke(main, ["quantize", "--data", str(small_kws), "--model", str(tmp_path)])
    assert result.exit_code == 0, result.output
    path = tmp_path / INT8_MODEL
    assert f"{path}: {path.stat().st_size} bytes, ops " in result.output
    model = path.read_bytes()
    check_device_model(model, path, num_classes=12)
    test = ClipSet.load(small_kws / "test.npz")
    assert (run_tflm(model, test.features).argmax(1) == test.labels).mean() > BRIEF_MODEL_FLOOR


def test_bad_models_are_refused_with_the_reason(tmp_path, small_model):
    import keras
    import tensorflow as tf

    with pytest.raises(TinydriftError, match="not a valid .tflite"):
        check_device_model(b"garbage", tmp_path / "g.tflite")

    inputs = keras.Input((49, 40, 1), batch_size=1)
    x = keras.layers.Flatten()(inputs)
    x = keras.layers.Dense(12, activation="tanh")(x)
    float_model = tf.lite.TFLiteConverter.from_keras_model(keras.Model(inputs, x)).convert()
    with pytest.raises(TinydriftError, match="input is float32, not int8"):
        check_device_model(float_model, tmp_path / "f.tflite")

    # An op the device has no kernel for, inside an otherwise well-formed int8 model.
    x = keras.layers.Dense(12, activation="softmax")(x)
    converter = tf.lite.TFLiteConverter.from_keras_model(keras.Model(inputs, x))
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    rng = np.random.default_rng(0)

    def representative():
        for _ in range(20):
            sample = rng.integers(-128, 128, (1, 49, 40, 1)).astype(np.float32)
            sample[0, 0, 0, 0], sample[0, 0, 1, 0] = -128, 127
            yield [sample]

    converter.representative_dataset = representative
    converter.inference_input_type = converter.inference_output_type = tf.int8
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    with pytest.raises(TinydriftError, match="ops the device cannot run: TANH"):
        check_device_model(converter.convert(), tmp_path / "t.tflite")


def test_unexpected_input_shape_is_refused(tmp_path):
    import keras
    import tensorflow as tf

    inputs = keras.Input((40, 49, 1), batch_size=1)  # channels and frames swapped
    x = keras.layers.Dense(12, activation="softmax")(keras.layers.Flatten()(inputs))
    converter = tf.lite.TFLiteConverter.from_keras_model(keras.Model(inputs, x))
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    rng = np.random.default_rng(1)
    converter.representative_dataset = lambda: ([rng.integers(-128, 128, (1, 40, 49, 1)).astype(np.float32)]
                                                for _ in range(10))
    converter.inference_input_type = converter.inference_output_type = tf.int8
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    with pytest.raises(TinydriftError, match=r"s\.tflite: input shape \(1, 40, 49, 1\), expected \(1, 49, 40, 1\)"):
        check_device_model(converter.convert(), tmp_path / "s.tflite")


def test_cli_errors_are_one_line_without_traceback(tmp_path):
    runner = CliRunner()
    (tmp_path / "clips.npz").write_bytes(b"")  # there, so the missing model is what is refused
    result = runner.invoke(main, ["eval", str(tmp_path), str(tmp_path / "clips.npz")])
    assert result.exit_code == 1
    assert "model_int8.tflite: no int8 model; run `tinydrift quantize` first" in result.output
    assert "Traceback" not in result.output
    result = runner.invoke(main, ["train", "--data", str(tmp_path)])
    assert result.exit_code == 1 and "train.npz: no such clip set" in result.output


def test_training_into_a_used_folder_removes_what_the_earlier_model_made(small_kws, tmp_path):
    """Once a model trained into a copy of models/plant left the plant's int8 model,
    reference.json and C beside it, and verify called the folder bit-exact, flash built it."""
    import json

    from tinydrift.modeldir import ModelDir

    used = tmp_path / "used"
    from tinydrift.firmware import REPO_ROOT

    shutil.copytree(REPO_ROOT / "models" / "kws", used)
    result = CliRunner().invoke(main, ["train", "--data", str(small_kws), "--out", str(used), "--epochs", "1"])
    assert result.exit_code == 0, result.output
    assert "removed what the earlier model made (model_int8.tflite, reference.json, README.md, include/td_model_kws.h" \
        in result.output
    assert not ModelDir(used).int8_model.exists() and not ModelDir(used).exported_names()
    assert json.loads(ModelDir(used).training_json.read_text())  # the new model's own record
    detector = tmp_path / "detector"
    detector.mkdir()
    (detector / "detector.json").write_text("{}")
    result = CliRunner().invoke(main, ["train", "--data", str(small_kws), "--out", str(detector), "--epochs", "1"])
    assert result.exit_code == 1 and "holds a wake-word detector's export (detector.json)" in result.output


def test_a_model_folder_names_its_outputs_from_training_else_from_its_export(tmp_path):
    """eval read the classes from training.json alone: an exported folder without one (the
    keyword model, an adopted model) had its set's class names taken on trust."""
    from tinydrift.firmware import REPO_ROOT
    from tinydrift.modeldir import ModelDir

    folder = tmp_path / "m"
    shutil.copytree(REPO_ROOT / "models" / "kws", folder, ignore=shutil.ignore_patterns("*.keras", "include"))
    (folder / "training.json").unlink()
    assert ModelDir(folder).output_labels() == tuple(LABELS)
    (folder / "training.json").write_text(json.dumps({"labels": list(LABELS[::-1])}))
    assert ModelDir(folder).output_labels() == tuple(LABELS[::-1])
    assert ModelDir(tmp_path / "empty").output_labels() is None
