"""The plant-disease model: a DS-CNN for 48x48 RGB leaves, trained, converted to full int8,
evaluated on TFLite Micro (also on a loader-read folder), and run bit-exactly by the
generated C."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from tinydrift.cli import main
from tinydrift.codegen.model_c import plan_model
from tinydrift.data.imageset import IMAGE_SIZE, ImageSet
from tinydrift.data.labels import PLANT_LABELS
from tinydrift.data.leaves import PlantConfig, build_plant, generate_split
from tinydrift.model.evaluate import evaluate
from tinydrift.model.quantize import DEVICE_OPS, IMAGE_INPUT_SHAPE, check_device_model, quantize
from tinydrift.model.train import ImageTrainConfig, train_images
from tinydrift.modeldir import INT8_MODEL, ModelDir
from tinydrift.target.host_model import run_generated_and_tflm

from conftest import REPO_ROOT

PLANT_MODEL = ModelDir(REPO_ROOT / "models" / "plant")
QUICK_DATA = PlantConfig(seed=11, images_per_class={"train": 200, "val": 20, "ref": 4, "test": 40})
QUICK_EPOCHS = 10


@pytest.fixture(scope="module")
def quick_data(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("plant")
    build_plant(out, QUICK_DATA, workers=2)
    return out


@pytest.fixture(scope="module")
def quick_model(quick_data, tmp_path_factory) -> Path:
    """The camera DS-CNN made by the commands, briefly: 10 epochs on 1,000 leaves (~15 s)."""
    model_dir = tmp_path_factory.mktemp("plant_model")
    runner = CliRunner()
    result = runner.invoke(main, ["train", "--data", str(quick_data), "--out", str(model_dir),
                                  "--epochs", str(QUICK_EPOCHS)])
    assert result.exit_code == 0 and "validation accuracy" in result.output, result.output
    result = runner.invoke(main, ["quantize", "--data", str(quick_data), "--model", str(model_dir)])
    assert result.exit_code == 0 and "model_int8.tflite" in result.output, result.output
    return model_dir


def int8_inputs_for(images: ImageSet, random_count: int, seed: int = 0) -> np.ndarray:
    """Leaves as the model sees them, then random pixels and the two flat extremes."""
    rng = np.random.default_rng(seed)
    shape = (IMAGE_SIZE, IMAGE_SIZE, 3)
    return np.concatenate([
        images.features,
        rng.integers(-128, 128, (random_count, *shape), dtype=np.int16).astype(np.int8),
        np.full((1, *shape), -128, np.int8),
        np.full((1, *shape), 127, np.int8),
    ])


def test_image_model_is_what_the_device_runs(quick_model, quick_data):
    model = (quick_model / INT8_MODEL).read_bytes()
    info = check_device_model(model, quick_model / INT8_MODEL, num_classes=len(PLANT_LABELS))
    assert tuple(info["inputs"][0]["shape"]) == IMAGE_INPUT_SHAPE
    assert info["inputs"][0]["quantization"] == (1.0, 0)  # the device feeds pixels minus 128
    assert set(info["ops"]) <= DEVICE_OPS
    training = ModelDir(quick_model).training()
    assert training["labels"] == list(PLANT_LABELS) and training["train_clips"] == 1000
    assert training["config"]["widths"] == list(ImageTrainConfig().widths) and len(training["history"]) == QUICK_EPOCHS
    test = ImageSet.load(quick_data / "test.npz")
    result = evaluate(model, test, "tflm")
    # Ten epochs on 1,000 leaves: well above chance (1/5), nowhere near the real model
    # (measured: about 0.5).
    assert result["n"] == 200 and result["accuracy"] > 0.35, result["accuracy"]
    assert result["labels"] == list(PLANT_LABELS) and set(result["per_class"]) == set(PLANT_LABELS)


def test_generated_c_equals_tflite_micro_on_the_quick_model(quick_model, quick_data):
    model = (quick_model / INT8_MODEL).read_bytes()
    inputs = int8_inputs_for(ImageSet.load(quick_data / "test.npz"), 300)
    ours, expected = run_generated_and_tflm(model, inputs)
    assert ours.shape == expected.shape == (len(inputs), len(PLANT_LABELS))
    assert int((ours != expected).sum()) == 0


def test_eval_on_a_plantvillage_folder_matches_the_image_set(quick_model, quick_data, tmp_path):
    """Test leaves saved as 96x96 PNGs in class folders come back through the loader as the
    same pixels (2x nearest up, 2x area down), so eval's confusion is the image set's."""
    from PIL import Image

    test = ImageSet.load(quick_data / "test.npz")
    for i, (image, label) in enumerate(zip(test.images, test.labels)):
        path = tmp_path / "leaves" / PLANT_LABELS[label] / f"leaf{i:03d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).resize((96, 96), Image.Resampling.NEAREST).save(path)
    result = CliRunner().invoke(main, ["eval", str(quick_model), str(tmp_path / "leaves"), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    expected = evaluate((quick_model / INT8_MODEL).read_bytes(), test, "tflm")
    assert report["n"] == len(test) and report["labels"] == list(PLANT_LABELS)
    assert report["confusion"] == expected["confusion"]


def test_eval_refuses_a_bad_image_folder_in_one_line(quick_model, tmp_path):
    from PIL import Image

    for name in ("healthy", "blight"):
        (tmp_path / "leaves" / name).mkdir(parents=True)
        Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "leaves" / name / "a.png")
    (tmp_path / "leaves" / "blight" / "b.png").write_bytes(b"\x89PNG broken")
    result = CliRunner().invoke(main, ["eval", str(quick_model), str(tmp_path / "leaves")])
    assert result.exit_code == 1 and "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "b.png: not a readable JPEG or PNG image" in lines[0]


def test_export_of_an_image_model_says_when_ref_is_too_small(quick_model, quick_data):
    """The quick set's ref holds 20 leaves: too few for reference statistics, said in one
    line, and nothing written (tests/test_plant_export.py exports an image model whole)."""
    result = CliRunner().invoke(main, ["export", "--model", str(quick_model), "--data", str(quick_data)])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert ("ref.npz holds 20; the monitor's reference statistics need at least 1000: build the set again with more "
            "(`tinydrift data plant --images-per-class N`)") in result.output, result.output
    assert not (quick_model / "reference.json").exists()


# -- the committed model (models/plant) --------------------------------------------------------

@pytest.fixture(scope="module")
def heldout_leaves() -> ImageSet:
    """The default set's test split: leaves of plants training never saw (built if absent)."""
    path = REPO_ROOT / "build" / "data" / "plant" / "test.npz"
    if path.exists() and ImageSet.load(path).domain.get("split") is not None:
        built = json.loads((path.parent / "manifest.json").read_text())
        if built.get("config_digest") == PlantConfig().digest():
            return ImageSet.load(path)
    return generate_split(PlantConfig(), "test", workers=2)


@pytest.mark.skipif(not PLANT_MODEL.int8_model.is_file(), reason="models/plant has no int8 model")
def test_committed_model_is_95_percent_right_on_tflite_micro(heldout_leaves):
    result = evaluate(PLANT_MODEL.read_int8(), heldout_leaves, "tflm")
    assert result["n"] == 1500
    assert result["accuracy"] >= 0.95, result["accuracy"]
    assert min(r["accuracy"] for r in result["per_class"].values()) >= 0.85, result["per_class"]


@pytest.mark.skipif(not PLANT_MODEL.int8_model.is_file(), reason="models/plant has no int8 model")
def test_committed_model_c_equals_tflite_micro_on_over_1000_inputs(heldout_leaves):
    model = PLANT_MODEL.read_int8()
    inputs = int8_inputs_for(heldout_leaves.select(np.arange(len(heldout_leaves)) % 2 == 0), 300, seed=2026)
    assert len(inputs) >= 1000
    ours, expected = run_generated_and_tflm(model, inputs)
    assert int((ours != expected).sum()) == 0, f"{int((ours != expected).sum())} of {expected.size} values differ"
    # The inputs exercise the model: every class comes out, in hundreds of different output
    # vectors (a confident model saturates many leaves to the same one).
    assert set(expected.argmax(1)) == set(range(len(PLANT_LABELS)))
    assert len({row.tobytes() for row in expected}) > len(inputs) // 5
    plan = plan_model(model, "plant")
    assert plan.macs < 2_000_000 and plan.arena_bytes < 48 * 1024


@pytest.mark.skipif(not PLANT_MODEL.int8_model.is_file(), reason="models/plant has no int8 model")
def test_committed_c_is_what_model_c_generates_and_builds_for_cortex_m4(tmp_path):
    import shutil
    import subprocess

    from tinydrift import firmware
    from tinydrift.codegen.model_c import generate_model_c

    from test_model_codegen import ARM_FLAGS

    header, source = generate_model_c(PLANT_MODEL.read_int8(), "plant")
    committed_header, committed_source = PLANT_MODEL.model_c("plant")
    assert committed_header.read_text() == header and committed_source.read_text() == source, \
        "models/plant/include is stale: run scripts/plant_model.sh"
    if shutil.which("arm-none-eabi-gcc") is None:
        pytest.skip("arm-none-eabi-gcc not installed")
    cmd = ["arm-none-eabi-gcc", *ARM_FLAGS, *[f"-I{d}" for d in firmware.include_dirs()], f"-I{PLANT_MODEL.include}",
           "-c", str(committed_source), "-o", str(tmp_path / "td_model_plant.o")]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.skipif(not PLANT_MODEL.int8_model.is_file(), reason="models/plant has no int8 model")
def test_committed_model_on_the_emulated_cortex_m4_equals_tflite_micro(heldout_leaves):
    """Built for the M4, the generated C runs the optimized (DSP) kernels, not the reference
    ones the host build runs: every output of 64 inputs is still TFLite Micro's. Counted in
    instructions (-icount shift=0), an inference costs about as much per multiply-accumulate
    as the keyword model's in `tinydrift bench device`."""
    import re
    import subprocess

    from tinydrift.model.runtimes import run_tflm
    from tinydrift.target import emulator

    from test_kernels_optimized import needs_arm
    from tinydrift.target.bench import build_model_check

    if needs_arm.args[0]:
        pytest.skip(needs_arm.kwargs["reason"])
    model = PLANT_MODEL.read_int8()
    inputs = int8_inputs_for(heldout_leaves.select(np.arange(len(heldout_leaves)) < 50), 12, seed=4)
    elf, _ = build_model_check(model, inputs.reshape(len(inputs), -1))
    names = subprocess.run(["arm-none-eabi-nm", str(elf)], capture_output=True, text=True, check=True).stdout
    assert "td_conv_s8_m4" in names and "td_depthwise_conv_s8_m4" in names
    result = emulator.run(elf, timeout=120, icount_shift=0)
    text = result.output.decode(errors="replace")
    assert result.exit_code == 0 and "td_model_check done" in text, text[-1000:]
    lines = re.findall(r"^td_model_check (\d+) ([0-9a-f]+)$", text, re.MULTILINE)
    device = np.stack([np.frombuffer(bytes.fromhex(h), dtype=np.int8) for _, h in lines])
    assert len(lines) == len(inputs) == 64
    assert np.array_equal(device, run_tflm(model, inputs))
    cycles = int(re.search(r"^td_model_check done cycles=(\d+)$", text, re.MULTILINE).group(1))
    per_inference = emulator.instructions_from_cycles(cycles) / len(inputs)
    per_mac = per_inference / plan_model(model, "plant").macs
    kws_per_mac = json.loads((REPO_ROOT / "docs" / "figures" / "bench_device.json").read_text())["instructions_per_mac"]
    print(f"plant model on the emulated M4: {per_inference:,.0f} instructions an inference, {per_mac:.2f} a MAC")
    assert 0.5 * kws_per_mac < per_mac < 2 * kws_per_mac, (per_mac, kws_per_mac)


@pytest.mark.slow  # ~7 minutes on 2 cores: the default set drawn and the model trained from scratch
def test_training_from_scratch_reaches_95_percent_on_tflite_micro(tmp_path):
    from PIL import Image

    data = tmp_path / "data"
    build_plant(data, PlantConfig(), workers=2)
    train_images(ImageSet.load(data / "train.npz"), ImageSet.load(data / "val.npz"), tmp_path / "model")
    quantize(tmp_path / "model", ImageSet.load(data / "train.npz").features)
    model = (tmp_path / "model" / INT8_MODEL).read_bytes()
    test = ImageSet.load(data / "test.npz")
    assert evaluate(model, test, "tflm")["accuracy"] >= 0.95
    # The same leaves as 256x256 JPEGs (PlantVillage's size and format) through the loader.
    for i, (image, label) in enumerate(zip(test.images, test.labels)):
        path = tmp_path / "leaves" / PLANT_LABELS[label] / f"leaf{i:04d}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).resize((256, 256), Image.Resampling.BICUBIC).save(path, quality=90)
    from tinydrift.data.imagefolder import load_image_folder

    loaded = load_image_folder(tmp_path / "leaves", PLANT_LABELS)
    assert evaluate(model, loaded, "tflm")["accuracy"] >= 0.93
