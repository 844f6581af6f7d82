"""A model meets data of its kind and of its classes, or a one-line refusal before any work:
eval and export on the other kind of data (images for the keyword model, clips for the
camera model), a data set of other classes than the model's outputs, a one-output model."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner

from helpers_tflite import tflite_models
from tinydrift.cli import main
from tinydrift.data.imageset import ImageSet
from tinydrift.data.labels import PLANT_LABELS
from tinydrift.errors import TinydriftError
from tinydrift.model.quantize import check_device_model
from tinydrift.modeldir import INT8_MODEL

from conftest import REPO_ROOT


def _one_line_error(result) -> str:
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    return lines[0]


@pytest.fixture
def leaves(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "leaves.npz"
    ImageSet(images=rng.integers(0, 256, (6, 48, 48, 3), dtype=np.uint8),
             labels=np.arange(6, dtype=np.int16) % len(PLANT_LABELS), label_names=PLANT_LABELS).save(path)
    return path


def test_eval_refuses_images_for_the_keyword_model(leaves):
    """Once an 11-frame traceback: cannot reshape array of size 6912 into shape (1,49,40,1)."""
    line = _one_line_error(CliRunner().invoke(main, ["eval", str(REPO_ROOT / "models" / "kws"), str(leaves)]))
    assert line == (f"error: {leaves} holds images, and the model takes keyword audio (the front end's 49x40 "
                    "features): give data of the model's kind")


def test_eval_refuses_clips_for_the_camera_model(small_kws):
    data = small_kws / "test.npz"
    line = _one_line_error(CliRunner().invoke(main, ["eval", str(REPO_ROOT / "models" / "plant"), str(data)]))
    assert line == f"error: {data} holds audio clips, and the model takes 48x48 images: give data of the model's kind"


def test_eval_refuses_a_set_whose_class_names_are_not_the_model_s(tmp_path):
    """A set of the camera model's five classes in another order: once scored each class
    against another one's output, and printed it under the set's names, exit 0."""
    data = tmp_path / "reordered.npz"
    ImageSet(images=np.zeros((5, 48, 48, 3), np.uint8), labels=np.arange(5, dtype=np.int16),
             label_names=PLANT_LABELS[::-1]).save(data)
    line = _one_line_error(CliRunner().invoke(main, ["eval", str(REPO_ROOT / "models" / "plant"), str(data)]))
    assert line == (f"error: {data}: classes {', '.join(PLANT_LABELS[::-1])}, and the model's outputs are "
                    f"{', '.join(PLANT_LABELS)}: give data of the model's classes, in its output order")


def test_export_refuses_a_data_set_of_other_classes_than_the_model_s_outputs(tmp_path, small_kws):
    """A 4-class keyword model and the 12-class set: once a 12-label header beside a 4-class
    monitor, exit 0."""
    spec = {"kind": "dense", "input_shape": [49, 40, 1], "flatten": True, "units": 4, "activation": "softmax",
            "use_bias": True, "seed": 3}
    (tmp_path / INT8_MODEL).write_bytes(tflite_models([spec])[0])
    result = CliRunner().invoke(main, ["export", "--model", str(tmp_path), "--data", str(small_kws)])
    assert _one_line_error(result).startswith(
        f"error: {small_kws}: 12 classes (_silence_, _unknown_, yes, no, up, down, ...), and the model has 4 outputs")
    assert not (tmp_path / "reference.json").exists() and not (tmp_path / "include").exists()


def test_a_one_output_model_is_refused(tmp_path):
    spec = {"kind": "dense", "input_shape": [49, 40, 1], "flatten": True, "units": 1, "activation": "softmax",
            "use_bias": True, "seed": 4}
    with pytest.raises(TinydriftError, match=r"one\.tflite: one output; the drift monitor reads a probability per "
                                             r"class and needs two classes or more"):
        check_device_model(tflite_models([spec])[0], tmp_path / "one.tflite")


def test_export_refuses_a_reference_set_too_small_before_running_the_model(tmp_path, leaves):
    """Once it ran the model first, then advised to "push more held-out data through the int8 model"."""
    import shutil

    data = tmp_path / "plant"
    data.mkdir()
    for split in ("ref", "test"):
        shutil.copy(leaves, data / f"{split}.npz")
    model = tmp_path / "model"
    model.mkdir()
    shutil.copy(REPO_ROOT / "models" / "plant" / INT8_MODEL, model / INT8_MODEL)
    result = CliRunner().invoke(main, ["export", "--model", str(model), "--data", str(data), "--name", "plant"])
    assert _one_line_error(result) == (f"error: {data}: ref.npz holds 6; the monitor's reference statistics need at "
                                       "least 1000: build the set again with more (`tinydrift data plant "
                                       "--images-per-class N`)")
    assert not (model / "include").exists()


def test_export_refuses_an_image_set_whose_class_names_are_not_the_model_s(tmp_path):
    """export once wrote the set's own class names into the header and the model card, in
    the set's order, beside a model trained with them in another."""
    import shutil

    model = tmp_path / "plant"
    shutil.copytree(REPO_ROOT / "models" / "plant", model, ignore=shutil.ignore_patterns("*.keras", "include"))
    data = tmp_path / "data"
    data.mkdir()
    for split in ("ref", "test"):
        ImageSet(images=np.zeros((5, 48, 48, 3), np.uint8), labels=np.arange(5, dtype=np.int16),
                 label_names=PLANT_LABELS[::-1]).save(data / f"{split}.npz")
    result = CliRunner().invoke(main, ["export", "--model", str(model), "--data", str(data), "--name", "plant"])
    assert _one_line_error(result) == (f"error: {data}: classes {', '.join(PLANT_LABELS[::-1])}, and the model's "
                                       f"outputs are {', '.join(PLANT_LABELS)}: give data of the model's classes, "
                                       "in its output order")
    assert not (model / "include").exists()


def test_eval_fits_an_image_folder_to_the_model_s_own_size(tmp_path):
    """A user's 24x32 image model and a folder of photos of any size: eval once fitted them to
    the default camera model's 48x48 and refused them as not the model's size, where export
    and demo read the same folder."""
    from PIL import Image

    spec = {"kind": "dense", "input_shape": [24, 32, 3], "flatten": True, "units": 3, "activation": "softmax",
            "use_bias": True, "seed": 4}
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / INT8_MODEL).write_bytes(tflite_models([spec])[0])
    rng = np.random.default_rng(1)
    for name in ("cats", "dogs", "zebra"):
        (tmp_path / "photos" / name).mkdir(parents=True)
        for k, (height, width) in enumerate([(60, 80), (24, 32), (100, 40)]):
            Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)).save(
                tmp_path / "photos" / name / f"{k}.png")
    result = CliRunner().invoke(main, ["eval", str(tmp_path / "model"), str(tmp_path / "photos"), "--json"])
    assert result.exit_code == 0, result.output
    import json
    assert json.loads(result.output)["n"] == 9


def test_grey_16_bit_and_transparent_images_are_converted_and_counted_aloud(tmp_path):
    """Grey and 16-bit PNGs went through eval and replay --model-dir converted to RGB without
    a word: a camera that sends grey frames is an input of its own, not the model's."""
    from PIL import Image

    from tinydrift.link.replay import load_source

    spec = {"kind": "dense", "input_shape": [24, 32, 3], "flatten": True, "units": 3, "activation": "softmax",
            "use_bias": True, "seed": 4}
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / INT8_MODEL).write_bytes(tflite_models([spec])[0])
    rng = np.random.default_rng(2)
    made = {"rgb": rng.integers(0, 256, (30, 40, 3), dtype=np.uint8), "grey": rng.integers(0, 256, (30, 40), dtype=np.uint8),
            "deep": rng.integers(0, 65536, (30, 40), dtype=np.uint16),
            "clear": rng.integers(0, 256, (30, 40, 4), dtype=np.uint8)}
    for name in ("cats", "dogs", "zebra"):
        (tmp_path / "photos" / name).mkdir(parents=True)
        for kind, pixels in made.items():
            Image.fromarray(pixels).save(tmp_path / "photos" / name / f"{kind}.png")
    result = CliRunner().invoke(main, ["eval", str(tmp_path / "model"), str(tmp_path / "photos")])
    assert result.exit_code == 0, result.output
    assert ("(images not in 8-bit RGB: 3 colour with transparency, 3 16-bit grey, 3 grey; converted to it, as the "
            "model takes)") in result.output
    said = []
    source = load_source(tmp_path / "photos" / "cats", fit=(24, 32, 3), log=said.append)
    assert len(source) == 4 and said[-1] == (
        "(images not in 8-bit RGB: 1 colour with transparency, 1 16-bit grey, 1 grey; converted to it, as the model takes)")
    said.clear()
    load_source(tmp_path / "photos" / "cats" / "rgb.png", fit=(24, 32, 3), log=said.append)
    assert not any("8-bit RGB" in line for line in said)  # an RGB image is what the model takes: nothing to say


def test_a_stray_image_in_a_recordings_folder_is_no_image_set_for_the_keyword_model(tmp_path):
    """One PNG dropped among a keyword model's WAV folders made eval read the whole folder
    as images: "yes/a.wav: not a JPEG or PNG image; move it out of the class folders", as
    if the recordings were the stray files. And a WAV folder given to a camera model was
    refused by its first file, not as audio."""
    from PIL import Image

    from conftest import write_wav

    rng = np.random.default_rng(0)
    for word in ("yes", "no"):
        for k in range(3):
            write_wav(tmp_path / "mixed" / word / f"s{k}_nohash_0.wav", rng.integers(-3000, 3000, 16000))
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "mixed" / "yes" / "photo.png")
    result = CliRunner().invoke(main, ["eval", str(REPO_ROOT / "models" / "kws"), str(tmp_path / "mixed"), "--json"])
    assert result.exit_code == 0, result.output
    (tmp_path / "mixed" / "yes" / "photo.png").unlink()
    line = _one_line_error(CliRunner().invoke(main, ["eval", str(REPO_ROOT / "models" / "plant"),
                                                     str(tmp_path / "mixed")]))
    assert "its class folders hold no JPEG or PNG image (.wav files): the model takes images" in line, line
