"""The pipeline's commands, in data-flow order: data -> train -> quantize -> eval -> export
-> verify, and demo, which runs them all and then the firmware in the emulator."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import click

from tinydrift.cli.common import DEFAULT_DATA, DEFAULT_MODEL, DEFAULT_PLANT_DATA, emit_json, progress_bars
from tinydrift.monitor.calibrate import DEFAULT_SIMULATED
from tinydrift.cli.params import (C_NAME_PARAM, COUNT, DATA_FOLDER, OWN_DATA_FOLDER, MODEL_FOLDER, OUTPUT_FOLDER, OUTPUT_SET, SEED,
                                  TARGET_ARL0,
                                  FiniteFloat, commission_option, input_file, input_folder, input_path,
                                  speaker_run_option)
from tinydrift.pipeline.verify import DEFAULT_SAMPLES


@click.group()
def data():
    """Build data sets: `data kws` and `data plant` make them, `data drift` changes one by a
    drift scenario (each has its --help)."""


@data.command("kws")
@click.option("--out", type=OUTPUT_FOLDER, default=DEFAULT_DATA, show_default=True,
              help="Folder for the splits (train/val/ref/test/accent .npz) and manifest.json.")
@click.option("--seed", type=SEED, default=0, show_default=True, help="Everything is deterministic from it.")
@click.option("--clips-per-class", type=COUNT, default=None,
              help="Training clips per class (held-out splits scale with it). Default: 1000.")
@click.option("--workers", type=COUNT, default=None, help="Synthesis processes (default: all cores).")
def data_kws(out: Path, seed: int, clips_per_class: int | None, workers: int | None):
    """Synthesize the 12-class keyword-spotting set with espeak-ng.

    English voices form the training domain. Training hears 64 % of espeak-ng's voice
    variants, `val` another 8 %; `ref` and `test` are two independent samples of the rest
    (the deployment population), and `accent` has those variants speak through other
    languages' voices: the accent-shift drift scenario. Cached by configuration: a second run is instant.

    \b
    Example:
      tinydrift data kws --out build/data/kws
    """
    from tinydrift.data.labels import LABELS
    from tinydrift.data.synth import KwsConfig, build_kws
    from tinydrift.frontend import CLIP_SAMPLES, NUM_CHANNELS, NUM_FRAMES

    config = KwsConfig(seed=seed, clips_per_class=_per_split(KwsConfig().clips_per_class, clips_per_class))
    made = _check_room(out, config.clips_per_class, len(LABELS), 2 * CLIP_SAMPLES + NUM_FRAMES * NUM_CHANNELS,
                       "--clips-per-class", "clips")  # a clip's samples and features
    _build_splits(build_kws, out, config, workers, made)


def _per_split(default: dict[str, int], train: int | None) -> dict[str, int]:
    """Each split's count, scaled so that `train` has the given one (the held-out splits
    keep their ratio to it)."""
    if train is None:
        return dict(default)
    return {split: max(1, round(n * train / default["train"])) for split, n in default.items()}


def _check_room(out: Path, per_class: dict[str, int], n_classes: int, bytes_each: int, option: str,
                unit: str) -> Path | None:
    """Refuse, before any work, a set that cannot be made here: each split is held in memory
    while it is made, and all of them are written to `out` (made now, so that a folder that
    cannot be made fails at once rather than after the first split)."""
    import shutil

    from tinydrift.errors import TinydriftError

    def size(n: int) -> str:
        return f"{n / 1e9:,.1f} GB" if n >= 1e9 else f"{n / 1e6:,.0f} MB"

    total = sum(per_class.values()) * n_classes * bytes_each
    # twice while a split's chunks are joined, and each item's description beside it
    largest = max(per_class.values()) * n_classes * (2 * bytes_each + 1000)
    memory = _available_memory()
    if largest > memory:
        raise TinydriftError(f"{option} {per_class['train']:,}: the largest split needs about {size(largest)} of "
                             f"memory while it is made, and {size(memory)} is available: ask for fewer")
    first_missing = next((p for p in reversed([out, *out.parents]) if not p.exists()), None)
    out.mkdir(parents=True, exist_ok=True)
    disk = shutil.disk_usage(out).free
    if total > disk:
        if first_missing is not None:
            shutil.rmtree(first_missing)  # only the empty folders made just now
        raise TinydriftError(f"{option} {per_class['train']:,}: the set needs about {size(total)} on disk, and "
                             f"{size(disk)} is free at {out}: ask for fewer, or give --out on a larger disk")
    # planning a large set takes a while before its first progress bar: say what is coming
    click.echo(f"{sum(per_class.values()) * n_classes:,} {unit} in {len(per_class)} splits, about {size(total)} "
               f"in {out}", err=True)
    return first_missing


def _available_memory() -> int:
    """Bytes of memory the kernel says a new allocation can have (MemAvailable)."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    import os

    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def _build_splits(build, out: Path, config, workers: int | None, made: Path | None) -> None:
    """build() into `out`; if it fails or is interrupted, the folders _check_room made for it
    (`made`, the first of them) go again while they are still empty."""
    try:
        with progress_bars() as bars:
            paths = build(out, config, workers=workers, progress_factory=bars)
    except BaseException:
        if made is not None and made.is_dir() and not any(p.is_file() for p in made.rglob("*")):
            import shutil

            shutil.rmtree(made)
        raise
    for split, path in paths.items():
        click.echo(f"{split:>7}: {path}")


@data.command("plant")
@click.option("--out", type=OUTPUT_FOLDER, default=DEFAULT_PLANT_DATA, show_default=True,
              help="Folder for the splits (train/val/ref/test .npz) and manifest.json.")
@click.option("--seed", type=SEED, default=0, show_default=True, help="Everything is deterministic from it.")
@click.option("--images-per-class", type=COUNT, default=None,
              help="Training images per class (held-out splits scale with it). Default: 1600.")
@click.option("--workers", type=COUNT, default=None, help="Drawing processes (default: all cores).")
def data_plant(out: Path, seed: int, images_per_class: int | None, workers: int | None):
    """Draw the plant-disease set: 48x48 RGB leaves, healthy or with one of four diseases.

    Classes: healthy, leaf_spot (yellow chlorotic spots), blight (brown necrotic patches
    with darker rims), wilt (curled, drooping, dull) and mosaic (light and dark mottling),
    each sign at a severity in [0.2, 1]. Leaves vary in shape, venation, colour, texture,
    pose, background, lighting and white balance; every image's parameters are stored with
    it. Each split draws leaves of its own plants. Cached by configuration.

    \b
    Example:
      tinydrift data plant --out build/data/plant
    """
    from tinydrift.data.imageset import CHANNELS, IMAGE_SIZE
    from tinydrift.data.labels import PLANT_LABELS
    from tinydrift.data.leaves import PlantConfig, build_plant

    config = PlantConfig(seed=seed, images_per_class=_per_split(PlantConfig().images_per_class, images_per_class))
    made = _check_room(out, config.images_per_class, len(PLANT_LABELS), IMAGE_SIZE * IMAGE_SIZE * CHANNELS,
                "--images-per-class", "images")
    _build_splits(build_plant, out, config, workers, made)


@data.command("drift")
@click.argument("scenario")
@click.argument("source", type=input_path("clip or image set (.npz) or folder of class folders"))
@click.option("--out", type=OUTPUT_SET, required=True,
              help="A .npz set (as `data kws`/`data plant` write), or a new folder of class folders of WAV or PNG "
                   "files.")
@click.option("--severity", type=FiniteFloat(), default=None,
              help="Another severity than the scenario's own, for one whose severity is one number: dB of gain, "
                   "SNR in dB, Hz of a cut-off, seconds of reverberation, clicks a second, pixels of blur, stops, JPEG "
                   "quality, or the share (0.01-1) of clips dead or frames black for microphone_dropouts_30 and "
                   "blinking_camera_20, of clips losing half a second for microphone_dead_half_seconds_50...")
@click.option("--seed", type=SEED, default=0, show_default=True, help="The noise, babble and resampling drawn.")
@click.option("--model-dir", type=MODEL_FOLDER, default=None, metavar="DIR",
              help="For a folder of images: the camera model whose input they are fitted to, as `eval` fits "
                   "them (default: the shipped camera model's 48x48).")
def data_drift(scenario: str, source: Path, out: Path, severity: float | None, seed: int, model_dir: Path | None):
    """Write SOURCE changed by one drift scenario of `tinydrift bench drift`.

    SOURCE is a clip set (`tinydrift data kws`), an image set (`tinydrift data plant`) or a
    folder of class folders (WORD/*.wav, CLASS/*.png|jpg). The drifted copy keeps each
    item's label (where the scenario moves labels, the new ones) and is written as a set
    (--out ending in .npz) or as class folders of WAV or PNG files, numbered in the set's
    order (00000.png, ...), to replay into a device (`tinydrift replay`) or to evaluate a
    model on (`tinydrift eval`). A folder of images is first fitted to a camera model's input
    (centred crop, resize), as `eval` reads it: the drift is measured at the size the model
    sees (--model-dir names the model; default the shipped camera model's 48x48).

    \b
    Recordings: gain_down_20db, gain_up_12db, gain_down_6db, gain_up_6db,
      cheap_mic_lowpass_2k, highpass_800, telephone_band, path_8khz, white_noise_10db,
      white_noise_0db, babble_5db, reverb_0.8s, quiet_but_working_microphone,
      white_noise_0db_filler_room (resampled to five times the fillers, then noise),
      clicks_1_per_s, agc_pumping_6db (a gain swinging 6 dB either way), wind_bursts_0db,
      dead_microphone, microphone_dropouts_30 (each clip dead with chance 0.3),
      microphone_dead_half_seconds_50 (each clip loses half a second with chance 0.5), stuck_microphone,
      dc_offset, clipping_30db (sensor faults),
      unknown_x5, silence_x5, yes_knocked_out (class mixes: the set resampled),
      labels_remapped (concept drift: yes/no, up/down, left/right swapped).
    Images: lens_smudge_1px, lens_smudge_2px, lens_smudge_3px, low_resolution_x2,
      low_resolution_x3, warm_cast, cool_white_balance, underexposed_1stop,
      overexposed_1stop, sensor_noise_12, sensor_noise_25, jpeg_q25, jpeg_q8,
      cheap_camera, dead_camera, blinking_camera_20 (each frame black with chance 0.2),
      stuck_camera (one frame repeated),
      pale_spots_now_leaf_spot (concept drift; the procedural leaves only).
    An accent or other speakers are populations of their own: `tinydrift data kws`
    writes accent.npz.

    \b
    Examples:
      tinydrift data drift lens_smudge_2px build/data/plant/test.npz --out build/smudged/
      tinydrift replay build/smudged/ --port socket://127.0.0.1:PORT --model-dir models/plant
      tinydrift data drift white_noise_10db build/data/kws/test.npz --out build/noisy.npz
      tinydrift data drift gain_down_20db my_words/ --out my_words_quiet/ --severity -12
    """
    from tinydrift.data.drifted import drifted, find_scenario, write_folder
    from tinydrift.data.imageset import ImageSet
    from tinydrift.data.sets import load_any
    from tinydrift.errors import TinydriftError

    if out.resolve() == source.resolve():
        raise TinydriftError(f"--out {out}: that is SOURCE itself, which the drifted copy would replace; "
                             "give another path")
    size = None
    if model_dir is not None:
        from tinydrift.cli.device import _camera_input

        shape = _camera_input(model_dir)
        if shape is None:
            raise TinydriftError(f"--model-dir {model_dir}: not a camera model; it sizes a folder of images only")
        size = tuple(shape[:2])
    data = load_any(source, image_size=size)
    images = isinstance(data, ImageSet)
    unit = "images" if images else "clips"
    if not len(data):
        raise TinydriftError(f"{source}: holds no {unit}; give a set with some")
    chosen = find_scenario(scenario, images, severity)
    changed = drifted(data, chosen, seed)
    if out.suffix == ".npz":
        changed.save(out)
        click.echo(f"{chosen.name}: {len(changed)} {unit} of {source} written to {out}")
    else:
        n = write_folder(changed, out)
        size = f", {data.images.shape[2]}x{data.images.shape[1]} as the model sees them" if images else ""
        click.echo(f"{chosen.name}: {n} {unit} of {source} written to {out}/ "
                   f"({'PNG' if images else 'WAV'} files in class folders{size})")


@click.command("train")
@click.option("--data", "data_dir", type=DATA_FOLDER, default=DEFAULT_DATA, show_default=True,
              help="A folder made by `tinydrift data kws` or `tinydrift data plant` (reads train.npz and val.npz).")
@click.option("--out", "model_dir", type=OUTPUT_FOLDER, default=DEFAULT_MODEL, show_default=True,
              help="Model folder: model_float.keras and training.json are written there.")
@click.option("--epochs", type=COUNT, default=None, help="Training epochs (default 24 for keywords, 30 for images).")
@click.option("--seed", type=SEED, default=0, show_default=True,
              help="Weights' initialization and the batches' order (one seed, one model).")
def train_cmd(data_dir: Path, model_dir: Path, epochs: int | None, seed: int):
    """Train a DS-CNN: on the keyword set's int8 features, or on an image set's pixels
    (48x48 RGB leaves); keep the best validation epoch.

    \b
    Examples:
      tinydrift train --data build/data/kws --out models/kws
      tinydrift train --data build/data/plant --out models/plant
    """
    from dataclasses import replace

    from tinydrift.data.imageset import ImageSet
    from tinydrift.data.sets import load_npz
    from tinydrift.model.train import ImageTrainConfig, TrainConfig, train, train_images

    from tinydrift.errors import TinydriftError
    from tinydrift.modeldir import ModelDir

    folder = ModelDir(model_dir)
    if folder.detector_json.is_file():
        raise TinydriftError(f"{model_dir} holds a wake-word detector's export (detector.json): train into a folder "
                             "of its own")
    if not (data_dir / "train.npz").exists():
        from tinydrift.data.sets import holds_image_classes
        from tinydrift.data.wavfolder import wav_files

        if wav_files(data_dir, "**/*") or holds_image_classes(data_dir):
            raise TinydriftError(f"{data_dir}: a folder of your own recordings or images; train reads the splits "
                                 "`tinydrift data kws` or `tinydrift data plant` writes (train.npz, val.npz). To "
                                 "monitor a model trained elsewhere on your data: `tinydrift adopt MODEL.tflite --out "
                                 f"models/mine`, then `tinydrift export --model models/mine --data {data_dir}`")
    train_set, val_set = load_npz(data_dir / "train.npz"), load_npz(data_dir / "val.npz")
    fit, config = (train_images, ImageTrainConfig(seed=seed)) if isinstance(train_set, ImageSet) else (
        train, TrainConfig(seed=seed))
    if epochs is not None:
        config = replace(config, epochs=epochs)
    with progress_bars() as bars:
        _, history = fit(train_set, val_set, model_dir, config, progress_factory=bars)
    best = max(history, key=lambda h: h["val_accuracy"])
    click.echo(f"best epoch {best['epoch']}: validation accuracy {best['val_accuracy']:.4f} -> {model_dir}")
    stale = folder.remove_derived()
    if stale:
        click.echo(f"removed what the earlier model made ({', '.join(stale)}): quantize and export this one",
                   err=True)


@click.command("quantize")
@click.option("--data", "data_dir", type=DATA_FOLDER, default=DEFAULT_DATA, show_default=True,
              help="Representative inputs come from its train.npz (the training domain).")
@click.option("--model", "model_dir", type=input_folder("model folder made by `tinydrift train`"),
              default=DEFAULT_MODEL, show_default=True,
              help="Model folder `tinydrift train` wrote (model_float.keras); model_int8.tflite goes beside it.")
def quantize_cmd(data_dir: Path, model_dir: Path):
    """Convert the float model to full-int8 TFLite (int8 in and out, batch 1) for TFLite Micro.

    The result is checked as the device will need it: int8 input of 49x40 features or a
    48x48 RGB image with scale 1 and zero point 0, softmax output with scale 1/256, only ops
    the firmware implements.

    \b
    Examples:
      tinydrift quantize --data build/data/kws --model models/kws
      tinydrift quantize --data build/data/plant --model models/plant
    """
    from tinydrift.data.sets import load_npz
    from tinydrift.model.quantize import describe, quantize

    path = quantize(model_dir, load_npz(data_dir / "train.npz").ensure_features())
    info = describe(path.read_bytes())
    click.echo(f"{path}: {path.stat().st_size} bytes, ops {', '.join(info['ops'])}")


@click.command("adopt")
@click.argument("tflite", type=input_file("full-int8 .tflite classifier"))
@click.option("--out", "model_dir", type=OUTPUT_FOLDER, required=True, metavar="DIR",
              help="The model folder to make (then `tinydrift export --model DIR --data FOLDER`).")
@click.option("--labels", "labels_text", default=None, metavar="A,B,...",
              help="An image model's class names in its output order, comma-separated, as its class folders are "
                   "named (default: the folders' names sorted, which must then be the output order).")
def adopt_cmd(tflite: Path, model_dir: Path, labels_text: str | None):
    """Make a model folder for your own full-int8 classifier, trained anywhere.

    The model must take the front end's 49x40 int8 features (1, 49, 40, 1) or an RGB image
    (1, H, W, 3) of 8 to 255 pixels a side, which the device fills with pixels minus 128;
    give int8 out of a softmax (scale 1/256, zero point -128); and use only the ops the
    firmware implements. What it cannot run is refused by name. A keyword model's outputs
    are the 12 classes `tinydrift data kws` and WAV folders are labelled with (_silence_,
    _unknown_, yes, no, up, down, left, right, on, off, stop, go, in that order); an image
    model's are its class folders, sorted by name, unless --labels names them in output order.

    \b
    Monitor your own model in four commands:
      tinydrift adopt my_model.tflite --out models/mine
      tinydrift export --model models/mine --data my_images/ --name mine
      tinydrift flash --env mps2_an386 --model models/mine --build-only
      tinydrift demo --model models/mine --data my_images/
    """
    from tinydrift.model.quantize import adopt

    from tinydrift.model.quantize import is_image_input

    from tinydrift.codegen.model_c import plan_model

    # what the generated C refuses (an op's scales) is refused now, not at export
    labels = None
    if labels_text is not None:
        labels = [name.strip() for name in labels_text.split(",")]
        if not all(labels) or len(set(labels)) != len(labels):
            raise click.BadParameter("give distinct, non-empty class names separated by commas", param_hint="'--labels'")
        # each names a class folder: a name no folder can have would only be refused at export
        unnamable = next((name for name in labels if name in (".", "..") or any(c in name for c in "/\\")
                          or any(ord(c) < 32 or ord(c) == 127 for c in name)), None)
        if unnamable is not None:
            raise click.BadParameter(f"{unnamable!r} cannot name a class folder (no '/', '\\', control characters, "
                                     "'.' or '..'); give the class folders' names", param_hint="'--labels'")
    info = adopt(tflite, model_dir, lowers=lambda model, path: plan_model(model, "adopted", source=str(path)),
                 labels=labels)
    shape = tuple(int(d) for d in info["inputs"][0]["shape"])
    click.echo(f"{model_dir}: input {shape}, {int(info['outputs'][0]['shape'][-1])} classes, "
               f"ops {', '.join(info['ops'])}")
    if is_image_input(shape):
        # What the model will see: check it is the scaling it was trained on.
        scale, zero_point = info["inputs"][0]["quantization"]
        black, white = (scale * (pixel - 128 - zero_point) for pixel in (0, 255))
        click.echo(f"the device feeds pixels minus 128: your model reads a pixel of 0 as {black:.4g} and 255 as "
                   f"{white:.4g} (trained on another scaling? convert with a representative set that spans it)")
    else:
        scale, zero_point = info["inputs"][0]["quantization"]
        low, high = (scale * (q - zero_point) for q in (-128, 127))
        # scale 1, zero point 0 reads the features as the numbers they are: nothing to ask then
        hint = ("" if (scale, zero_point) == (1.0, 0) else " (trained on the features as numbers? convert with a "
                "representative set that holds both -128 and 127, for scale 1 and zero point 0)")
        click.echo(f"the device feeds the front end's int8 features as they are (-128..127): your model reads "
                   f"-128 as {low:.4g} and 127 as {high:.4g}{hint}")


@click.command("eval")
@click.argument("model_dir", type=input_path("model folder or .tflite file"))
@click.argument("data", type=input_path("clip or image set (.npz), WAV folder or image class folders"))
@click.option("--runtime", type=click.Choice(["tflm", "litert"]), default="tflm", show_default=True,
              help="tflm: TFLite Micro's reference kernels (what the device computes); litert: fast.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (accuracy, n, per_class, confusion).")
def eval_cmd(model_dir: Path, data: Path, runtime: str, as_json: bool):
    """Accuracy of the int8 model on a clip or image set.

    DATA is a split made by `tinydrift data kws` or `tinydrift data plant` (e.g.
    build/data/kws/test.npz), a folder in the Speech Commands layout (WORD/*.wav, 16 kHz), an
    FSDD folder (8 kHz, resampled), or a folder in the PlantVillage layout (CLASS/*.jpg or
    .png, in a class's sub-folders too, any size: centre-cropped and resized; the class folders
    are named by the model's classes, as its training.json lists them).

    \b
    Examples:
      tinydrift eval models/kws build/data/kws/accent.npz
      tinydrift eval models/kws ../shared/data/speech_commands_v0.01_subset --json
      tinydrift eval models/plant my_leaves/    # my_leaves/healthy/*.jpg, my_leaves/blight/*.jpg ...
    """
    from tinydrift.data.imagefolder import converted_note
    from tinydrift.data.sets import load_any
    from tinydrift.data.wavfolder import word_folders_note
    from tinydrift.frontend import CLIP_SAMPLES
    from tinydrift.model.evaluate import check_fits, evaluate
    from tinydrift.model.quantize import input_shape, load_int8
    from tinydrift.modeldir import ModelDir
    from tinydrift.pipeline.export import model_input

    model, _ = load_int8(model_dir)
    # the classes in the model's output order, as its folder (a bare .tflite's too) says
    labels = ModelDir(model_dir if model_dir.is_dir() else model_dir.parent).output_labels()
    # with the model's classes known, one class folder is an evaluation of that class
    shape = input_shape(model)
    image = model_input(shape).is_image
    clips = load_any(data, labels, images=image, min_classes=1 if labels else 2,
                     image_size=tuple(shape[1:3]) if image else None)
    check_fits(model, clips, data, labels)
    if not labels and hasattr(clips, "images") and not as_json:
        click.echo(f"(nothing beside the model names its classes (training.json's labels, or the reference.json "
                   "`tinydrift export --data` writes): its outputs taken as the class folders in sorted order, "
                   f"{', '.join(clips.label_names)})", err=True)
    if as_json:
        emit_json(evaluate(model, clips, runtime))
        return
    with progress_bars() as bars:
        result = evaluate(model, clips, runtime, progress_factory=bars)
    unit = "clips" if hasattr(clips, "audio") else "images"
    click.echo(f"{data}: accuracy {result['accuracy']:.4f} on {result['n']} {unit} ({runtime}), "
               f"mean entropy {result['mean_entropy']:.3f}")
    for name, r in result["per_class"].items():
        click.echo(f"  {name:>10}: {r['accuracy']:.3f} ({r['n']})")
    lengths = getattr(clips, "domain", {}).get("samples")
    if lengths is not None and (lengths != CLIP_SAMPLES).any():
        # a recording folder's clips of other lengths count like the rest: say how many were fitted
        click.echo(f"  (recordings not 1 s long: {int((lengths < CLIP_SAMPLES).sum())} shorter, padded with silence; "
                   f"{int((lengths > CLIP_SAMPLES).sum())} longer, cut to their middle second)")
    note = converted_note(clips.domain.get("mode", ())) if image else word_folders_note(clips)
    if note:
        click.echo(f"  {note}")
    if len(result["per_class"]) == 1:
        # FSDD's digits on the keyword model: all of them are the catch-all class
        click.echo(f"  (every one of these {unit} is labelled {next(iter(result['per_class']))}: "
                   "the figure says nothing of the model's other classes)")


@click.command("export")
@click.option("--model", "model_dir", type=input_folder("model folder made by `tinydrift quantize` or `tinydrift adopt`"),
              default=DEFAULT_MODEL, show_default=True,
              help="Model folder holding model_int8.tflite (`tinydrift quantize`, or `tinydrift adopt` for a model "
                   "trained elsewhere); include/, reference.json and README.md are written into it.")
@click.option("--data", "data_dir", type=OWN_DATA_FOLDER, default=DEFAULT_DATA, show_default=True,
              help="Reads ref.npz (reference statistics, calibration), test.npz and accent.npz (checks); an image "
                   "model's set (`tinydrift data plant`): ref.npz and test.npz, blurred for the shift check. Or your "
                   "own reference data: image class folders (CLASS/*.jpg|png, sub-folders read too) or WAV word "
                   "folders (WORD/*.wav), "
                   "30 % of it held out for the checks (blurred images; clips under noise at SNR 10 dB).")
@click.option("--name", type=C_NAME_PARAM, default=None,
              help="C name of the model: td_<name>_invoke() etc. Default: the name the folder was exported under "
                   "before, else the folder's own name (models/kws: kws; my-model: my_model).")
@click.option("--target-arl0", type=TARGET_ARL0, default=100_000, show_default=True,
              help="Inferences between false alarms, all scores together.")
@click.option("--fleet-size", type=COUNT, default=None, metavar="D",
              help="Devices in the fleet that will run this model (with --fleet-false-alarms-per-day: the "
                   "target ARL0 comes from the fleet's budget, see above).")
@click.option("--fleet-false-alarms-per-day", "fleet_false_alarms", type=FiniteFloat(min=0, min_open=True),
              default=None, metavar="F", help="False alarms a day allowed across the whole fleet.")
@click.option("--inferences-per-day", type=FiniteFloat(min=0, min_open=True), default=86_400, show_default=True,
              metavar="R", help="Inferences one device makes a day (86,400: one a second), for the fleet budget.")
@commission_option
@speaker_run_option
@click.option("--simulated", type=COUNT, default=DEFAULT_SIMULATED, show_default=True,
              help="No-drift inferences calibration simulates: at least 8 per inference of the target ARL0 "
                   "(more: slower, more memory).")
@click.option("--real-data", "real_data", type=input_folder("Speech Commands or FSDD folder"), multiple=True,
              help="Also report accuracy on real recordings (Speech Commands or FSDD folder); repeatable.")
def export_cmd(model_dir: Path, data_dir: Path, name: str | None, target_arl0: float, fleet_size: int | None,
               fleet_false_alarms: float | None, inferences_per_day: float, commission_n: int,
               speaker_run: int | None, simulated: int, real_data: tuple[Path, ...]):
    """C headers for the firmware and their JSON twin.

    Writes MODEL/include/ (the model as C with a static arena, the monitor config with the
    reference statistics and calibrated thresholds, labels and the model hash),
    MODEL/reference.json (what the host reads) and MODEL/README.md (the model card).

    A fleet's false-alarm budget instead of --target-arl0: devices raise false alarms
    independently, so D devices making R inferences a day each, at ARL0 inferences between
    false alarms, raise D x R / ARL0 false alarms a day. To allow F a day across the fleet,
    each device needs

    \b
      ARL0 = D x R / F
      e.g. 5,000 devices x 86,400 inferences a day / 10 false alarms a day = ARL0 43,200,000

    --fleet-size D and --fleet-false-alarms-per-day F set it (with --inferences-per-day R);
    reference.json and the model card record the budget beside the thresholds. Calibration
    simulates at least 8 inferences per inference of the target (--simulated): the default
    8,000,000 reach ARL0 1,000,000; the 43,200,000 above would need 345,600,000. The ARL0
    check simulates 100 x ARL0 inferences, at most 20,000,000 (fewer alarms to count for a
    larger target).

    Your own reference data (--data FOLDER, in-domain examples of what the device will see):
    30 % of it (whole speakers; single images) is held out for the checks, and the monitor's
    reference needs at least 2,000 clips or 1,000 images of the rest: about 2,860 recordings
    (WORD/*.wav) or about 1,430 images (CLASS/*.jpg|png), every class among them.

    A speaker who talks for a while moves the monitor's scores as a small change does: a new
    voice moves the input summary, a voice the model finds harder lowers its confidence.
    The device learns how far its own confidence wanders (over a few thousand inferences)
    and judges against that, which cut the false alarms of such runs by a third to a half on
    the keyword bench. Where one person gives tens of commands in a row after the device
    learned others, --speaker-run 45 calibrates for that from the start: fewer false alarms
    still, but a change that only lowers confidence (a foreign accent) is found later.
    `tinydrift bench drift --speaker-run N` measures both sides for a model folder.

    \b
    Examples:
      tinydrift export --model models/kws --real-data ../shared/data/speech_commands_v0.01_subset
      tinydrift export --model models/kws --fleet-size 200 --fleet-false-alarms-per-day 20
      tinydrift export --model models/kws --speaker-run 45
      tinydrift export --model models/mine --data my_images/    # after `tinydrift adopt`
    """
    from tinydrift.errors import TinydriftError
    from tinydrift.monitor.calibrate import FleetBudget, TooFewSimulated, require_simulated
    from tinydrift.pipeline.export import export

    budget = None
    ctx = click.get_current_context()
    if (fleet_size is None) != (fleet_false_alarms is None):
        raise click.UsageError("give --fleet-size and --fleet-false-alarms-per-day together (the fleet's budget)")
    if fleet_size is not None:
        if ctx.get_parameter_source("target_arl0") is not click.core.ParameterSource.DEFAULT:
            raise click.UsageError("give --target-arl0 or a fleet budget (--fleet-size, --fleet-false-alarms-per-day), "
                                   "not both: the budget sets the target")
        budget = FleetBudget(fleet_size, inferences_per_day, fleet_false_alarms)
    target = budget.per_device_arl0 if budget is not None else target_arl0
    try:
        require_simulated(simulated, target)  # before the model runs and calibration starts
    except TooFewSimulated as e:
        lower = ("lower the fleet's ARL0 (fewer devices, more false alarms a day)" if budget is not None
                 else "lower --target-arl0")
        raise TinydriftError(f"{e}: raise --simulated or {lower}") from None

    real = {}
    for path in real_data:
        label = "fsdd" if "fsdd" in path.name.lower() else "speech_commands" if "speech" in path.name.lower() else path.name
        real[label] = path
    from tinydrift.modeldir import ModelDir

    with progress_bars() as bars:
        ref = export(model_dir, data_dir, name=name or ModelDir(model_dir).default_c_name(), target_arl0=target_arl0,
                     commission_n=commission_n, real_data=real,
                     fleet_budget=budget, simulated_inferences=simulated, speaker_run=speaker_run,
                     progress_factory=bars, log=lambda m: click.echo(m, err=True))
    arl = ref["arl0_check"]
    shift = ref["shift"]["split"]
    click.echo(f"{model_dir}: hash {ref['model_id']}, TFLite Micro accuracy {ref['accuracy']['test']['tflm']['accuracy']:.4f} "
               f"({shift} {ref['accuracy'][shift]['tflm']['accuracy']:.4f}), arena {ref['arena_bytes']} B "
               f"(TFLite Micro {ref['tflm_arena']['total']} B), ARL0 check {arl['arl0']:,.0f}")


@click.command("verify")
@click.argument("model_dir", type=MODEL_FOLDER)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object: per stage, inputs and mismatches.")
@click.option("--samples", type=COUNT, default=DEFAULT_SAMPLES, show_default=True,
              help="Clips or images to run (and as many random int8 model inputs).")
@click.option("--data", type=input_path("clip or image set (.npz), WAV folder or image class folders"), default=None,
              help="Clip set (.npz) or WAV folder; for a camera model an image set (.npz) or image class folders. "
                   "Default: build/data/kws/test.npz (build/data/plant/test.npz), else ../shared/data "
                   "recordings, else synthesized noise and tones (gradients, noise, flat frames).")
@click.option("--seed", type=SEED, default=0, show_default=True, help="Which clips, random inputs and event stream.")
def verify(model_dir: Path, as_json: bool, samples: int, data: Path | None, seed: int):
    """Check the C generated for MODEL_DIR against its references: C front end vs the host
    front end, the folder's include/ files vs what `tinydrift export` writes from its .tflite
    and reference.json (a header edited by hand, another model's, or none), generated model
    C vs TFLite Micro, C monitor vs the Python twin. A camera model: the same but the front
    end, and td_summarize_image vs the twin's.

    Exit code 1 if any element of any stage differs.

    \b
    Examples:
      tinydrift verify models/kws                       # the shipped keyword model
      tinydrift verify models/plant --samples 200       # the camera model, more images
      tinydrift verify models/kws --data ../shared/data/speech_commands_v0.01_subset --json"""
    from tinydrift.pipeline.verify import format_report, verify_model

    report = verify_model(model_dir, samples=samples, data=data, seed=seed)
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=1))
    else:
        click.echo(format_report(report))
    if not report.ok:
        sys.exit(1)


@click.command("demo")
@click.option("--out", "out_dir", type=OUTPUT_FOLDER, default=Path("build/demo"),
              show_default=True, help="Everything goes here: data, model, firmware image, capture, report.")
@click.option("--model", "model_dir", type=MODEL_FOLDER, default=None, metavar="DIR",
              help="Use this model (made by `tinydrift export`, e.g. models/kws) instead of training one.")
@click.option("--data", "data_dir", type=OWN_DATA_FOLDER, default=None, metavar="DIR",
              help="Use this data set (made by `tinydrift data kws`) instead of synthesizing the demo's own; "
                   "with a camera model, images from these class folders (CLASS/*.jpg|png, sub-folders read too) "
                   "instead of drawn leaves; "
                   "with your own keyword model (--model), clips from these WAV word folders (WORD/*.wav), then the "
                   "same kind under white noise.")
@click.option("--epochs", type=COUNT, default=None, help="Training epochs (default 12; `tinydrift train` uses 24).")
@click.option("--clips-per-class", type=COUNT, default=None, metavar="N",
              help="Training clips per class (default 400; held-out splits keep their demo sizes).")
@click.option("--in-domain", type=COUNT, default=300, show_default=True, help="Inferences before the shift.")
@click.option("--shifted", type=COUNT, default=None,
              help="Inferences after the shift (default 600; 100 for a camera model, whose images cross the "
                   "emulated UART at 2-4 a second).")
@click.option("--seed", type=SEED, default=0, show_default=True,
              help="Every step is deterministic from it: data, training, streams.")
@click.option("--no-verify", is_flag=True, help="Skip checking the device's log against the host twin.")
@click.option("--clean", is_flag=True, help="Delete OUT first: run from cold caches.")
def demo_command(out_dir: Path, model_dir: Path | None, data_dir: Path | None, epochs: int | None,
                 clips_per_class: int | None, in_domain: int, shifted: int, seed: int, no_verify: bool, clean: bool):
    """Drift detected on an emulated microcontroller, from nothing, in minutes.

    data (espeak-ng) -> model (train, int8) -> C headers -> firmware (PlatformIO) ->
    QEMU's Cortex-M4 hears in-domain speech, then the same words with foreign accents ->
    every frame captured into SQLite -> report (HTML + plots). Ends by saying where the
    report is, when the drift alarm came and of what type, and whether the device matched
    the host twin bit for bit. Cached under --out: a second run takes about a minute.

    With a camera model (--model models/plant) the device sees fresh leaves, then leaves
    through a smudged lens, replayed as IMAGE frames; with --data, images from your class
    folders instead.

    \b
    Examples:
      tinydrift demo
      tinydrift demo --model models/plant
      tinydrift demo --model models/mine --data my_images/ --in-domain 400 --shifted 200
      tinydrift demo --model models/my_kws --data my_recordings/ --in-domain 500 --shifted 600

    The monitor learns its reference on the first inferences after a reset (300 unless the
    export said otherwise) and judges none of them: a shift among them is learned as normal.
    """
    import os

    # TensorFlow's C++ logging (a line per epoch) would bury the progress bars; set the
    # variable yourself to see it. Failures still raise.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from tinydrift.pipeline.demo import (DEFAULT_SHIFTED, DEMO_CLIPS_PER_CLASS, DEMO_EPOCHS, DemoConfig,
                                         clean as clean_out, run_demo)

    from tinydrift.cli.common import refuse_output_inside

    for given, what in ((model_dir, "the model folder"), (data_dir, "the data folder")):
        if given is not None:  # checked before --clean deletes OUT
            refuse_output_inside(out_dir, given, what)
    if clean:
        clean_out(out_dir)
    clips = dict(DEMO_CLIPS_PER_CLASS)
    if clips_per_class is not None:
        clips["train"] = clips_per_class
        clips["val"] = max(1, clips_per_class // 10)
    config = DemoConfig(out_dir=out_dir, data_dir=data_dir, model_dir=model_dir,
                        epochs=DEMO_EPOCHS if epochs is None else epochs, clips_per_class=clips,
                        in_domain=in_domain, shifted=DEFAULT_SHIFTED if shifted is None else shifted, seed=seed,
                        verify=not no_verify, shifted_given=shifted is not None)
    started = time.monotonic()
    with progress_bars() as bars:
        result = run_demo(config, progress_factory=bars, log=lambda m: click.echo(m, err=True))
    for line in result.lines():
        click.echo(line)
    click.echo(f"total wall time {time.monotonic() - started:.0f} s")
    if result.mismatches:  # the device and its twin disagree: the run's figures cannot be trusted
        from tinydrift.errors import TinydriftError

        raise TinydriftError(f"the device's log differs from the host twin's on {result.mismatches} inferences: "
                             f"see {out_dir / 'capture.db'} and the report; the firmware and the host are out of "
                             "step (rebuild both from this checkout)")
