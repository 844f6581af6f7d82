"""The plant-disease data: the procedural leaf generator, its splits and cache, and the
PlantVillage folder loader with its refusals."""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from tinydrift.cli import main
from tinydrift.data.imagefolder import fit_image, load_image_folder
from tinydrift.data.imageset import IMAGE_SIZE, ImageSet
from tinydrift.data.labels import PLANT_LABELS
from tinydrift.data.leaves import (
    BACKGROUNDS, MIN_SEVERITY, SHAPES, SPLITS, LeafSpec, PlantConfig, build_plant, plan_split, render_leaf,
)
from tinydrift.data.sets import load_any
from tinydrift.errors import TinydriftError

SMALL = PlantConfig(seed=3, images_per_class={"train": 24, "val": 6, "ref": 8, "test": 8})


@pytest.fixture(scope="module")
def small_plant(tmp_path_factory):
    out = tmp_path_factory.mktemp("plant")
    build_plant(out, SMALL, workers=1)
    return out


def test_splits_are_balanced_and_record_every_attribute(small_plant):
    for split in SPLITS:
        images = ImageSet.load(small_plant / f"{split}.npz")
        per_class = SMALL.images_per_class[split]
        assert images.label_names == PLANT_LABELS
        assert np.bincount(images.labels, minlength=5).tolist() == [per_class] * 5
        assert images.images.shape == (per_class * 5, IMAGE_SIZE, IMAGE_SIZE, 3)
        assert images.images.dtype == np.uint8
        for column in ("severity", "shape", "background", "light_deg", "brightness", "wb_red", "wb_blue", "noise",
                       "rotation_deg", "plant", "group", "disease", "split"):
            assert len(images.domain[column]) == len(images), column
        healthy = images.labels == 0
        assert np.all(images.domain["severity"][healthy] == 0)
        assert np.all((images.domain["severity"][~healthy] >= MIN_SEVERITY) & (images.domain["severity"][~healthy] <= 1))
        assert set(images.domain["background"]) <= set(BACKGROUNDS)
        assert set(images.domain["shape"]) <= set(SHAPES)
        assert [PLANT_LABELS[k] for k in images.labels] == list(images.domain["disease"])
    manifest = json.loads((small_plant / "manifest.json").read_text())
    assert manifest["labels"] == list(PLANT_LABELS) and manifest["images"]["train"] == 120
    assert "severity" in manifest["attributes"] and manifest["image_shape"] == [IMAGE_SIZE, IMAGE_SIZE, 3]


def test_splits_draw_leaves_of_plants_of_their_own(small_plant):
    plants = {split: set(ImageSet.load(small_plant / f"{split}.npz").domain["plant"]) for split in SPLITS}
    for i, a in enumerate(SPLITS):
        for b in SPLITS[i + 1:]:
            assert not plants[a] & plants[b], (a, b)
    # A plant shows several leaves (calibration resamples whole plants).
    train = ImageSet.load(small_plant / "train.npz")
    assert len(plants["train"]) < len(train) / 4


def test_the_scene_varies_over_its_whole_range(small_plant):
    train = ImageSet.load(small_plant / "train.npz")
    assert set(train.domain["background"]) == set(BACKGROUNDS)
    assert set(train.domain["shape"]) == set(SHAPES)
    pixels = train.images.astype(np.float64)
    # Every image spans a range of values (a leaf on a background), none is flat or saturated.
    spread = pixels.reshape(len(train), -1).std(axis=1)
    assert spread.min() > 8
    assert np.mean(pixels == 255) < 0.02 and np.mean(pixels == 0) < 0.02
    # Brightness is recorded and is what the image shows.
    brightness = pixels.mean(axis=(1, 2, 3))
    assert np.corrcoef(brightness, train.domain["brightness"])[0, 1] > 0.3


def test_generation_is_deterministic_and_seeded():
    specs = plan_split(SMALL, "test")
    assert specs == plan_split(SMALL, "test")
    assert np.array_equal(render_leaf(specs[0]), render_leaf(specs[0]))
    other = plan_split(replace(SMALL, seed=4), "test")
    assert [s.seed for s in other] != [s.seed for s in specs]
    assert not np.array_equal(render_leaf(other[0]), render_leaf(specs[0]))


def _sign_strength(spec: LeafSpec, disease: str, severity: float) -> float:
    """Mean absolute difference between a leaf with the disease and the same leaf healthy."""
    healthy = render_leaf(replace(spec, label=0, severity=0.0)).astype(np.float64)
    sick = render_leaf(replace(spec, label=PLANT_LABELS.index(disease), severity=severity)).astype(np.float64)
    return float(np.abs(sick - healthy).mean())


@pytest.mark.parametrize("disease", PLANT_LABELS[1:])
def test_each_disease_shows_and_grows_with_its_severity(disease):
    specs = [s for s in plan_split(SMALL, "val")][:6]
    weak = [_sign_strength(s, disease, MIN_SEVERITY) for s in specs]
    strong = [_sign_strength(s, disease, 1.0) for s in specs]
    assert min(weak) > 0.5, weak  # visible even at the weakest severity drawn
    assert all(s > w for w, s in zip(weak, strong)), (weak, strong)
    assert np.mean(strong) > 1.3 * np.mean(weak), (weak, strong)


def test_signs_have_their_colours():
    spec = replace(plan_split(SMALL, "val")[0], background="bench", brightness=1.0, wb_red=1.0, wb_blue=1.0,
                   light_strength=0.0, noise=0.0)

    def share(disease, test):
        image = render_leaf(replace(spec, label=PLANT_LABELS.index(disease), severity=1.0)).astype(np.int32)
        r, g, b = image[..., 0], image[..., 1], image[..., 2]
        return float(np.mean(test(r, g, b)))

    yellow = lambda r, g, b: (r > 0.8 * g) & (g > 1.6 * b) & (g > 90)  # noqa: E731
    brown = lambda r, g, b: (r > 1.1 * g) & (g > 1.1 * b) & (r < 150)  # noqa: E731
    assert share("leaf_spot", yellow) > share("healthy", yellow) + 0.01
    assert share("blight", brown) > share("healthy", brown) + 0.01


def test_a_second_build_reuses_the_cache(small_plant):
    before = {p.name: p.stat().st_mtime_ns for p in small_plant.iterdir()}
    build_plant(small_plant, SMALL)
    assert {p.name: p.stat().st_mtime_ns for p in small_plant.iterdir()} == before


def test_data_plant_command_writes_four_splits_and_a_manifest(tmp_path):
    result = CliRunner().invoke(main, ["data", "plant", "--out", str(tmp_path), "--images-per-class", "8",
                                       "--workers", "1"])
    assert result.exit_code == 0, result.output
    for split in SPLITS:
        assert f"{split}: {tmp_path / (split + '.npz')}" in result.output
        assert len(ImageSet.load(tmp_path / f"{split}.npz")) > 0
    assert json.loads((tmp_path / "manifest.json").read_text())["kind"] == "plant-procedural"
    assert not list(tmp_path.glob(".*.tmp"))  # written atomically


# -- the PlantVillage folder loader ------------------------------------------------------------

def _save(path, array, format=None):
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, format=format)


def test_fit_image_takes_the_centred_square_and_resizes_it():
    wide = np.zeros((48, 96, 3), np.uint8)
    wide[:, :24] = (255, 0, 0)
    wide[:, 24:72] = (0, 0, 255)
    wide[:, 72:] = (255, 0, 0)
    assert np.array_equal(fit_image(wide), np.broadcast_to(np.array([0, 0, 255], np.uint8), (48, 48, 3)))
    quadrants = np.zeros((200, 200, 3), np.uint8)
    quadrants[:100, 100:] = 200
    quadrants[100:, :100] = 100
    fitted = fit_image(quadrants)
    assert fitted.shape == (48, 48, 3)
    assert np.all(fitted[:24, 24:] == 200) and np.all(fitted[24:, :24] == 100) and np.all(fitted[:24, :24] == 0)
    small = fit_image(np.full((20, 30, 3), 77, np.uint8))  # enlarged
    assert small.shape == (48, 48, 3) and np.all(small == 77)


def test_loader_reads_plantvillage_layout_of_any_size(tmp_path, small_plant):
    test = ImageSet.load(small_plant / "test.npz")
    from PIL import Image

    for i, (image, label) in enumerate(zip(test.images[:20], test.labels[:20])):
        big = np.asarray(Image.fromarray(image).resize((96 + 8 * (i % 3), 96), Image.Resampling.NEAREST))
        suffix = ".jpg" if i % 2 else ".png"
        _save(tmp_path / "leaves" / PLANT_LABELS[label] / f"leaf{i}{suffix}", big)
    (tmp_path / "leaves" / "healthy" / ".DS_Store").write_bytes(b"\0")  # hidden files are skipped
    loaded = load_any(tmp_path / "leaves", PLANT_LABELS)
    assert isinstance(loaded, ImageSet) and len(loaded) == 20
    assert loaded.images.shape == (20, IMAGE_SIZE, IMAGE_SIZE, 3) and loaded.label_names == PLANT_LABELS
    by_file = {name: k for name, k in zip(loaded.domain["file"], loaded.labels)}
    for i, label in enumerate(test.labels[:20]):
        suffix = ".jpg" if i % 2 else ".png"
        assert by_file[f"{PLANT_LABELS[label]}/leaf{i}{suffix}"] == label
    assert set(loaded.domain["height"]) == {96} and set(loaded.domain["width"]) <= {96, 104, 112}
    # A PNG of exactly twice the size comes back as the image it was made from.
    png = [j for j, name in enumerate(loaded.domain["file"]) if name.endswith("leaf0.png")][0]
    assert np.abs(loaded.images[png].astype(int) - test.images[0].astype(int)).max() <= 1
    # Without the model's classes, labels index the sorted folder names.
    assert load_image_folder(tmp_path / "leaves").label_names == tuple(sorted({name.split("/")[0] for name in by_file}))


def _refusal(folder, label_names=PLANT_LABELS) -> str:
    with pytest.raises(TinydriftError) as info:
        load_image_folder(folder, label_names)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_bad_image_folders_are_refused_in_one_line_naming_the_fix(tmp_path):
    leaf = np.full((64, 64, 3), 90, np.uint8)
    (tmp_path / "empty").mkdir()
    assert "no images in class sub-folders; expected the PlantVillage layout" in _refusal(tmp_path / "empty")

    _save(tmp_path / "one" / "healthy" / "a.png", leaf)
    assert "only one class (healthy)" in _refusal(tmp_path / "one")
    # evaluating the model's known classes, one of them is a set (eval's case)
    assert load_image_folder(tmp_path / "one", PLANT_LABELS, min_classes=1).labels.tolist() == [
        PLANT_LABELS.index("healthy")]
    assert "only one class (healthy)" in _refusal(tmp_path / "one", None)

    for name in ("healthy", "blight"):
        _save(tmp_path / "text" / name / "a.png", leaf)
    (tmp_path / "text" / "blight" / "notes.txt").write_text("field notes")
    assert "notes.txt: not a JPEG or PNG image" in _refusal(tmp_path / "text")

    for name in ("healthy", "blight"):
        _save(tmp_path / "fake" / name / "a.png", leaf)
    (tmp_path / "fake" / "blight" / "b.jpg").write_text("not really a JPEG")
    assert "b.jpg: not a readable JPEG or PNG image" in _refusal(tmp_path / "fake")

    for name in ("healthy", "rust"):
        _save(tmp_path / "foreign" / name / "a.png", leaf)
    assert "class folder(s) rust are not among the model's classes" in _refusal(tmp_path / "foreign")

    _save(tmp_path / "flat" / "a.png", leaf)
    assert "no class sub-folders" in _refusal(tmp_path / "flat")

    _save(tmp_path / "gif" / "healthy" / "a.png", leaf)
    _save(tmp_path / "gif" / "blight" / "b.png", leaf, format="GIF")
    assert "b.png: a GIF image named like a JPEG or PNG" in _refusal(tmp_path / "gif")

    # several bad files are named in one refusal, not one per run (a folder of 1,400 images)
    for k in range(7):
        (tmp_path / "gif" / ("healthy" if k % 2 else "blight") / f"c{k}.jpg").write_bytes(b"\xff\xd8 cut short")
    said = _refusal(tmp_path / "gif")
    assert said.startswith(f"{tmp_path / 'gif'}: 8 files are no image it can read (blight/b.png, blight/c0.jpg, "
                           "blight/c2.jpg, blight/c4.jpg, blight/c6.jpg, ...); the first: "), said
    assert "b.png: a GIF image named like a JPEG or PNG" in said and "\n" not in said


def test_export_reads_an_image_folder_in_the_model_s_class_order_not_sorted(tmp_path):
    """export --data FOLDER once took the class folders in sorted order whatever the model's
    order (training.json): the header named the wrong classes and the monitor was calibrated
    on scrambled labels, at 1 % accuracy, without a word."""
    from PIL import Image

    from tinydrift.pipeline.export import model_input

    rng = np.random.default_rng(0)
    for name in ("zeta", "alpha"):
        (tmp_path / "own" / name).mkdir(parents=True)
        for i in range(6):
            Image.fromarray(rng.integers(0, 256, (48, 48, 3), dtype=np.uint8)).save(tmp_path / "own" / name / f"{i}.png")
    source = model_input((1, 48, 48, 3))
    for order in (("zeta", "alpha"), None):
        _, splits = source.load_splits(tmp_path / "own", 2, order)
        for split in ("ref", "test"):
            s = splits[split]
            assert s.label_names == (order or ("alpha", "zeta"))
            folders = [Path(str(f)).parent.name for f in s.domain["file"]]
            assert len(folders) == len(s) and [s.label_names[label] for label in s.labels] == folders
        held = np.concatenate([splits["ref"].labels, splits["test"].labels])
        assert sorted(np.bincount(held).tolist()) == [6, 6]


def test_eval_of_a_bare_tflite_reads_the_class_order_beside_it_or_says_it_assumed_one(tmp_path, small_plant):
    """eval models/plant/model_int8.tflite FOLDER once scored the sorted class folders against
    the model's outputs: 1 % accuracy for a 93 % model, and no word of why."""
    import shutil

    from PIL import Image

    from tinydrift.firmware import REPO_ROOT

    images = ImageSet.load(small_plant / "test.npz")
    for i, (image, label) in enumerate(zip(images.images, images.labels)):
        (tmp_path / "leaves" / images.label_names[label]).mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(tmp_path / "leaves" / images.label_names[label] / f"{i}.png")
    (tmp_path / "lone").mkdir()
    shutil.copy(REPO_ROOT / "models" / "plant" / "model_int8.tflite", tmp_path / "lone")

    def accuracy(output: str) -> float:
        return float(output.split("accuracy ", 1)[1].split()[0])

    alone = CliRunner().invoke(main, ["eval", str(tmp_path / "lone" / "model_int8.tflite"), str(tmp_path / "leaves")])
    assert alone.exit_code == 0, alone.output
    assert "nothing beside the model names its classes" in alone.output
    assert "its outputs taken as the class folders in sorted order" in alone.output
    shutil.copy(REPO_ROOT / "models" / "plant" / "training.json", tmp_path / "lone")
    beside = CliRunner().invoke(main, ["eval", str(tmp_path / "lone" / "model_int8.tflite"), str(tmp_path / "leaves")])
    folder = CliRunner().invoke(main, ["eval", str(REPO_ROOT / "models" / "plant"), str(tmp_path / "leaves")])
    assert beside.exit_code == folder.exit_code == 0 and "sorted order" not in beside.output
    assert accuracy(beside.output) == accuracy(folder.output) > 0.6 > accuracy(alone.output)


def _png_header_only(path: Path, width: int, height: int) -> None:
    """A PNG whose header claims width x height: Pillow judges its size before any pixel."""
    import struct
    import zlib as z

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", z.crc32(kind + data))

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
                     + chunk(b"IDAT", z.compress(b"")) + chunk(b"IEND", b""))


def test_an_image_too_large_to_load_and_a_file_name_not_in_utf8_are_no_tracebacks(tmp_path):
    """Pillow's decompression-bomb guard once surfaced as its own traceback, and a file name
    of non-UTF-8 bytes as a UnicodeEncodeError."""
    leaf = np.full((64, 64, 3), 90, np.uint8)
    _save(tmp_path / "bomb" / "healthy" / "a.png", leaf)
    _png_header_only(tmp_path / "bomb" / "blight" / "huge.png", 20_000, 20_000)
    assert "huge.png: more than 178 million pixels, too many to load; resize it" in _refusal(tmp_path / "bomb")

    for name in ("healthy", "blight"):
        _save(tmp_path / "names" / name / "a.png", leaf)
    odd = os.fsdecode(b"x\xff\xfe.png")  # the bytes a disk may hold, not UTF-8
    _save(tmp_path / "names" / "blight" / odd, leaf)
    images = load_image_folder(tmp_path / "names", PLANT_LABELS)
    assert len(images) == 3 and len(set(images.domain["group"].tolist())) == 3


def test_a_cut_split_is_built_again_not_reused_and_its_error_names_both_data_commands(tmp_path, small_plant):
    """A split cut short was once reported as cached and never rebuilt, and reading it
    advised `tinydrift data kws` for a plant set."""
    import shutil

    from tinydrift.data.sets import load_npz, split_paths

    folder = tmp_path / "plant"
    shutil.copytree(small_plant, folder)
    digest = json.loads((folder / "manifest.json").read_text())["config_digest"]
    assert split_paths(folder, SPLITS, digest)[1]
    whole = (folder / "test.npz").read_bytes()
    (folder / "test.npz").write_bytes(whole[:1000])
    assert not split_paths(folder, SPLITS, digest)[1]
    with pytest.raises(TinydriftError, match="rebuild it with the `tinydrift data kws` or `tinydrift data plant`"):
        load_npz(folder / "test.npz")


def test_images_in_sub_folders_of_a_class_folder_are_read_not_skipped(tmp_path):
    """A class kept by date (healthy/2026-11/a.png) was once skipped without a word; hidden
    files and folders stay out, and each image is named by its path under its class."""
    from tinydrift.data.sets import holds_image_classes

    leaf = np.full((64, 64, 3), 90, np.uint8)
    _save(tmp_path / "dated" / "healthy" / "2026-11" / "a.png", leaf)
    _save(tmp_path / "dated" / "healthy" / "2026-12" / "deep" / "b.png", leaf)
    _save(tmp_path / "dated" / "blight" / "c.png", leaf)
    _save(tmp_path / "dated" / "blight" / ".thumbnails" / "c.png", leaf)
    _save(tmp_path / "dated" / "blight" / ".d.png", leaf)
    (tmp_path / "dated" / "blight" / "Thumbs.db").write_bytes(b"\xd0\xcf\x11\xe0")  # Windows' thumbnail cache
    assert holds_image_classes(tmp_path / "dated")
    images = load_image_folder(tmp_path / "dated", PLANT_LABELS)
    assert sorted(images.domain["file"].tolist()) == ["blight/c.png", "healthy/2026-11/a.png",
                                                      "healthy/2026-12/deep/b.png"]
    assert len(set(images.domain["group"].tolist())) == 3
    # only nested: still found as an image folder
    _save(tmp_path / "nested" / "healthy" / "day1" / "a.png", leaf)
    _save(tmp_path / "nested" / "blight" / "day1" / "b.png", leaf)
    assert holds_image_classes(tmp_path / "nested")
    assert len(load_image_folder(tmp_path / "nested", PLANT_LABELS)) == 2


def test_a_16_bit_grey_png_is_read_at_its_level_not_as_white(tmp_path):
    """eval read every 16-bit grey PNG as pure white (RGB conversion clips 16-bit values) and
    reported chance accuracy without a word."""
    from PIL import Image

    from tinydrift.data.imagefolder import read_image

    level = np.full((64, 64), 0x5A00, np.uint16)  # 90 in 8 bits
    Image.fromarray(level).save(tmp_path / "deep.png")
    assert Image.open(tmp_path / "deep.png").mode.startswith("I")
    image, size, mode = read_image(tmp_path / "deep.png", 48)
    assert size == (64, 64) and image.shape == (48, 48, 3) and np.all(image == 90) and mode.startswith("I")
