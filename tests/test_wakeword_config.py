"""Loading a microWakeWord model and its JSON config: the published ones load, every
mismatch between config and model is named in one line, and so are missing files and WAV
files the wake-word front end cannot take."""

from __future__ import annotations

import json
import shutil
import wave
from pathlib import Path

import numpy as np
import pytest

from tinydrift.errors import TinydriftError
from tinydrift.firmware import REPO_ROOT
from tinydrift.wakeword.config import builtin_models, load_wakeword
from tinydrift.wakeword.stream import read_stream_wav

from conftest import write_wav

pytest.importorskip("pymicro_wakeword", reason="the wakeword extra is not installed (scripts/setup.sh)")

KWS_MODEL = REPO_ROOT / "models" / "kws" / "model_int8.tflite"


@pytest.fixture()
def user_model(tmp_path):
    """A copy of okay_nabu as a user would have it: MODEL.tflite and MODEL.json in a folder.
    Returns a function writing the config with some entries changed."""
    builtin = builtin_models()["okay_nabu"]
    model = tmp_path / "my_word.tflite"
    shutil.copy(builtin.with_suffix(".tflite"), model)
    original = json.loads(builtin.read_text())
    original["model"] = model.name

    def write(micro_changes: dict | None = None, **changes) -> Path:
        config = {**original, **changes, "micro": {**original["micro"], **(micro_changes or {})}}
        config = {k: v for k, v in config.items() if v is not None}
        config["micro"] = {k: v for k, v in config["micro"].items() if v is not None}
        model.with_suffix(".json").write_text(json.dumps(config))
        return model

    return write


def error_of(*args) -> str:
    with pytest.raises(TinydriftError) as caught:
        load_wakeword(*args)
    message = str(caught.value)
    assert "\n" not in message and "Traceback" not in message
    return message


def test_builtin_names_and_paths_load_alike(user_model):
    by_name = load_wakeword("okay_nabu")
    assert by_name.wake_word == "Okay Nabu" and by_name.name == "okay_nabu"
    assert (by_name.probability_cutoff, by_name.sliding_window_size, by_name.tensor_arena_size) == (0.85, 5, 37000)
    assert load_wakeword(by_name.model_path).model == by_name.model
    assert load_wakeword(by_name.config_path).model_path == by_name.model_path
    mine = load_wakeword(user_model())
    assert mine.name == "my_word" and mine.model == by_name.model
    assert load_wakeword(mine.config_path).model_path == mine.model_path


@pytest.mark.parametrize("micro, expected", [
    ({"feature_step_size": 20}, "micro.feature_step_size is 20; the wake-word front end steps 10 ms"),
    ({"feature_step_size": None}, "micro.feature_step_size is missing"),
    ({"probability_cutoff": 0}, "micro.probability_cutoff is 0; it must be in (0, 1]"),
    ({"probability_cutoff": 1.5}, "micro.probability_cutoff is 1.5; it must be in (0, 1]"),
    ({"probability_cutoff": "0.9"}, 'micro.probability_cutoff is "0.9"'),  # as JSON writes it, not Python
    ({"probability_cutoff": True}, "micro.probability_cutoff is true; it must be in (0, 1]"),
    ({"sliding_window_size": 0}, "micro.sliding_window_size is 0; it must be a whole number from 1 to 32"),
    ({"sliding_window_size": 2.5}, "micro.sliding_window_size is 2.5"),
    # once passed by check and export, and refused by the firmware's build (#error) much later
    ({"sliding_window_size": 33}, "micro.sliding_window_size is 33; it must be a whole number from 1 to 32 (the "
                                  "device app's window holds 32 probabilities)"),
    ({"tensor_arena_size": -1}, "micro.tensor_arena_size is -1"),
])
def test_config_mismatches_are_named(user_model, micro, expected):
    message = error_of(user_model(micro))
    assert expected in message and "my_word.json" in message


def test_the_window_limit_is_the_device_app_s():
    from tinydrift.firmware import LIB_SRC
    from tinydrift.wakeword.config import MAX_SLIDING_WINDOW

    assert f"#define TD_APP_MAX_SLIDING_WINDOW {MAX_SLIDING_WINDOW}u" in (LIB_SRC / "app" / "td_app.h").read_text()


def test_every_mismatch_is_named_at_once(user_model):
    message = error_of(user_model({"feature_step_size": 20, "sliding_window_size": 0}))
    assert "feature_step_size is 20" in message and "sliding_window_size is 0" in message


def test_a_model_of_another_kind_is_refused(tmp_path, user_model):
    """A config paired with a model that is not a microWakeWord model (the kws classifier)."""
    config = tmp_path / "kws.json"
    config.write_text(json.dumps({**json.loads(user_model().with_suffix(".json").read_text()), "model": "kws.tflite"}))
    shutil.copy(KWS_MODEL, tmp_path / "kws.tflite")
    message = error_of(tmp_path / "kws.tflite", config)
    assert "input is int8 [1, 49, 40, 1]; the device feeds int8 [1, 3, 40]" in message
    assert "output is int8 [1, 12]; a microWakeWord model gives uint8 [1, 1]" in message


def test_an_input_quantized_otherwise_is_refused(user_model):
    """The device's fixed feature map stands for scale 26/255, zero point -128: a model
    quantized otherwise (here its input scale halved in the flatbuffer) is refused."""
    model = user_model()
    data = model.read_bytes()
    scale = np.float32(26 / 255).tobytes()
    assert scale in data
    model.write_bytes(data.replace(scale, np.float32(13 / 255).tobytes()))
    message = error_of(model)
    assert "input is quantized with scale 0.0509804, zero point -128; the device's feature map assumes " \
           "scale 26/255 = 0.101961, zero point -128" in message


def test_a_config_made_for_another_model_is_refused(tmp_path, user_model):
    """A config names its model's file: given beside another model (or with another model's
    name) it would lend that one its cutoff, window and arena, so it is refused."""
    config = user_model().with_suffix(".json")
    other = tmp_path / "other_word.tflite"
    shutil.copy(config.with_suffix(".tflite"), other)
    error = error_of(other, config)
    assert "is the config of my_word.tflite (its \"model\" entry), not of other_word.tflite" in error
    # a renamed model (its config copied beside it) is told which entry to edit
    assert error.endswith('if you renamed the model, set "model" to "other_word.tflite"')


def test_a_json_model_with_another_config_is_refused(tmp_path, user_model):
    """MODEL given as its JSON config and --config naming another: the other one was used,
    silently (check printed hey_jarvis for okay_nabu.json). The same file twice is fine."""
    config = user_model().with_suffix(".json")
    other = tmp_path / "other.json"
    shutil.copy(config, other)
    assert error_of(config, other).endswith("give one of them (--config is for a .tflite whose config is not "
                                             "beside it)")
    assert load_wakeword(config, config).name == "my_word"


def test_missing_and_damaged_files(tmp_path, user_model):
    assert "no such model file" in error_of(tmp_path / "absent.tflite")
    model = user_model()
    model.with_suffix(".json").unlink()
    assert "my_word.json: no such file" in error_of(model)
    model.with_suffix(".json").write_text("{not json")
    assert "not valid JSON (line 1" in error_of(model)
    model.with_suffix(".json").write_text("[1, 2]")
    assert "not a microWakeWord config (its top level is not an object)" in error_of(model)
    model.with_suffix(".json").write_text('{"micro": [1]}')  # once called missing
    assert 'not a microWakeWord config (its "micro" section is a list, not an object)' in error_of(model)
    model.with_suffix(".json").write_text('{"type": "micro"}')
    assert 'not a microWakeWord config (no "micro" section)' in error_of(model)
    user_model(model="gone.tflite")
    assert "gone.tflite: cannot read the model" in error_of(model.with_suffix(".json"))
    user_model()
    model.write_bytes(b"not a model at all")
    assert "is not a TFLite model" in error_of(model)


def test_unknown_model_name_lists_the_published_ones():
    message = error_of("okay_google")
    assert "okay_google: no such file nor a model pymicro-wakeword ships" in message
    assert "alexa, hey_jarvis, hey_mycroft, okay_nabu" in message
    assert error_of("Okay-Nabu") == "Okay-Nabu: no such file; the model pymicro-wakeword ships is named okay_nabu"


def write_raw_wav(path, rate: int, channels: int, width: int, frames: int = 1600) -> None:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(width)
        w.setframerate(rate)
        w.writeframes(bytes(frames * channels * width))


@pytest.mark.parametrize("rate, channels, width, what", [
    (8000, 1, 2, "is 8000 Hz mono 16-bit"),
    (16000, 2, 2, "is 16000 Hz stereo 16-bit"),
    (16000, 1, 1, "is 16000 Hz mono 8-bit"),
    (44100, 2, 2, "is 44100 Hz stereo 16-bit"),
])
def test_wav_the_front_end_cannot_take(tmp_path, rate, channels, width, what):
    path = tmp_path / "in.wav"
    write_raw_wav(path, rate, channels, width)
    with pytest.raises(TinydriftError) as caught:
        read_stream_wav(path)
    assert str(caught.value) == (f"{path} {what}; the wake-word front end needs 16-bit integer PCM WAV, mono, 16000 Hz: "
                                 "convert it")


def test_wav_the_front_end_takes(tmp_path):
    samples = (np.arange(4000) % 200 - 100).astype(np.int16)
    write_wav(tmp_path / "ok.wav", samples)
    assert np.array_equal(read_stream_wav(tmp_path / "ok.wav"), samples)


def test_a_folder_named_like_a_published_model_does_not_hide_it(tmp_path, monkeypatch):
    """`tinydrift wakeword export okay_nabu --out okay_nabu` made a folder okay_nabu/, and
    every later command naming okay_nabu then read the folder: "give a .tflite model"."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "okay_nabu").mkdir()
    assert load_wakeword("okay_nabu").model_path == builtin_models()["okay_nabu"].with_suffix(".tflite")
    (tmp_path / "alexa").write_text("a file of that name is not the model")
    assert error_of("alexa") == "alexa: give a .tflite model or its .json config"
