"""Any labelled set a command can be given: a tinydrift .npz (clips or images), a folder of
class sub-folders of images (PlantVillage), or a folder of recordings (Speech Commands, FSDD)."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np

from tinydrift.data.clipset import ClipSet
from tinydrift.data.imagefolder import IMAGE_SUFFIXES, load_image_folder
from tinydrift.data.imageset import ImageSet
from tinydrift.data.npzfile import npz_problem, open_npz
from tinydrift.errors import TinydriftError


MANIFEST = "manifest.json"


def split_paths(out_dir: Path, splits, config_digest: str) -> tuple[dict[str, Path], bool]:
    """Each split's `out_dir/<split>.npz`, and whether all of them exist and were built from
    the configuration whose digest `out_dir/manifest.json` records (then they are reused)."""
    paths = {split: out_dir / f"{split}.npz" for split in splits}
    manifest = out_dir / MANIFEST
    if not (manifest.exists() and all(_whole_archive(p) for p in paths.values())):
        return paths, False
    try:
        return paths, json.loads(manifest.read_text()).get("config_digest") == config_digest
    except json.JSONDecodeError:
        return paths, False


def _whole_archive(path: Path) -> bool:
    """Whether a split's file is there with its zip directory, which sits at its end: a cut
    or emptied split is built again rather than reused."""
    try:
        with zipfile.ZipFile(path):
            return True
    except (OSError, zipfile.BadZipFile):
        return False


def load_npz(path: str | Path) -> ClipSet | ImageSet:
    """A set made by `tinydrift data kws` (clips) or `tinydrift data plant` (images)."""
    path = Path(path)
    if path.is_file():
        try:
            with open_npz(path) as z:
                if "images" in z.files:
                    return ImageSet.load(path)
        except (zipfile.BadZipFile, ValueError, OSError, EOFError) as e:
            # which command made a damaged archive cannot be read from it
            raise TinydriftError(f"{path}: {npz_problem(path, e)}, not a tinydrift data set; rebuild it with the "
                                 "`tinydrift data kws` or `tinydrift data plant` that made it") from e
    return ClipSet.load(path)


def _holds_wavs(folder: Path) -> bool:
    return any(p.suffix.lower() == ".wav" for p in folder.rglob("*"))


def holds_image_classes(folder: Path) -> bool:
    """Whether a folder looks like the PlantVillage layout: images in class sub-folders."""
    return folder.is_dir() and any(p.suffix.lower() in IMAGE_SUFFIXES for p in folder.glob("*/**/*"))


def load_any(path: str | Path, label_names: tuple[str, ...] | None = None, *,
             images: bool | None = None, min_classes: int = 2,
             image_size: tuple[int, int] | None = None) -> ClipSet | ImageSet:
    """The set at `path`; an image folder's classes are indices into `label_names` (a model's).
    `images` says what the model takes: True (a camera model), a folder is read as images
    only, so one without class sub-folders is refused as such, not as a recording folder;
    False (a keyword model), as recordings when it holds any, a stray image among them
    ignored as any other file that is no WAV (a folder of images only is read as one, for
    the caller to refuse by its kind); None, as what the folder holds. `min_classes` as
    load_image_folder's. An image folder's images are fitted to `image_size` (height, width:
    the model's input), else to the default camera model's."""
    from tinydrift.data import wavfolder

    path = Path(path)
    if path.suffix == ".npz":
        return load_npz(path)
    if path.is_dir() and (images or (holds_image_classes(path) and (images is None or not _holds_wavs(path)))):
        return load_image_folder(path, label_names, min_classes=min_classes,
                                 **({} if image_size is None else {"size": tuple(image_size)}))
    if not path.exists():
        raise TinydriftError(f"{path}: no such file or folder")
    return wavfolder.load_any(path)
