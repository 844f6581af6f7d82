"""The PlantVillage folder layout: one sub-folder per class, JPEG or PNG images of any size.

Each image is centre-cropped to its largest part of the model input's shape and resized to it
(`fit_image`, the one resize every image path here takes, the leaf generator's included).
"""

from __future__ import annotations

import warnings
import zlib
from collections import Counter
from pathlib import Path

import numpy as np

from tinydrift.data.imageset import IMAGE_SIZE, ImageSet
from tinydrift.errors import TinydriftError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
LAYOUT = "the PlantVillage layout: one sub-folder per class holding its .jpg/.png images (in folders of its own too)"


def fit_image(image, size: int | tuple[int, int] = IMAGE_SIZE) -> np.ndarray:
    """uint8 [height, width, 3] (`size`: one side, or (height, width)): the centred largest
    crop of `image` (a PIL image or a uint8 array [H, W, 3]) with the model's aspect ratio,
    resized to it; an area average when shrinking (no aliasing of fine leaf texture),
    bilinear when enlarging."""
    from PIL import Image

    height, width = (size, size) if isinstance(size, int) else size
    if isinstance(image, np.ndarray):
        image = Image.fromarray(image)
    image = image.convert("RGB")
    have_width, have_height = image.size
    # The largest crop of the target's shape: full width or full height, whichever binds.
    crop_width = min(have_width, have_height * width // height) or 1
    crop_height = min(have_height, have_width * height // width) or 1
    left, top = (have_width - crop_width) // 2, (have_height - crop_height) // 2
    crop = image.crop((left, top, left + crop_width, top + crop_height))
    resample = Image.Resampling.BOX if crop_width >= width else Image.Resampling.BILINEAR
    return np.asarray(crop.resize((width, height), resample), dtype=np.uint8)


# What a file's Pillow mode is, in a user's words; every image is converted to the 8-bit RGB a
# camera model takes, and a camera that sent such frames would send something else.
MODE_NAMES = {"L": "grey", "LA": "grey with transparency", "1": "black-and-white", "I": "16-bit grey",
              "I;16": "16-bit grey", "I;16B": "16-bit grey", "I;16L": "16-bit grey", "P": "palette",
              "PA": "palette with transparency", "RGBA": "colour with transparency", "CMYK": "CMYK"}


def converted_note(modes) -> str | None:
    """"(images not in 8-bit RGB: 3 grey, 1 16-bit grey; converted to it, as the model takes)",
    or None when every image was 8-bit RGB: a grey or 16-bit camera is an input of its own,
    which the conversion would otherwise hide."""
    counts = Counter(MODE_NAMES.get(str(mode), str(mode)) for mode in modes if str(mode) != "RGB")
    if not counts:
        return None
    kinds = ", ".join(f"{n} {kind}" for kind, n in counts.most_common())
    return f"(images not in 8-bit RGB: {kinds}; converted to it, as the model takes)"


def read_image(path: Path, size: int | tuple[int, int] = IMAGE_SIZE) -> tuple[np.ndarray, tuple[int, int], str]:
    """(fitted image, original (width, height), original Pillow mode) of a JPEG or PNG file, or
    a TinydriftError naming it."""
    from PIL import Image, UnidentifiedImageError

    if path.suffix.lower() not in IMAGE_SUFFIXES:
        raise TinydriftError(f"{path}: not a JPEG or PNG image (by its name); move it out of the class folders")
    try:
        with warnings.catch_warnings():
            # below twice Pillow's limit it only warns: a large photo, loaded like any other
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(path)
        with image:
            if image.format not in ("JPEG", "PNG"):
                raise TinydriftError(f"{path}: a {image.format} image named like a JPEG or PNG; convert it or move it out")
            original, mode = image.size, image.mode
            if image.mode in ("I", "I;16", "I;16B", "I;16L"):  # 16-bit grey: RGB would clip it to white
                image = Image.fromarray((np.asarray(image, dtype=np.uint32) >> 8).clip(0, 255).astype(np.uint8))
            height, width = (size, size) if isinstance(size, int) else size
            image.draft("RGB", (width, height))  # JPEG: decode at a reduced scale that still covers `size`
            return fit_image(image, size), original, mode
    except Image.DecompressionBombError:
        raise TinydriftError(too_many_pixels(path)) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise TinydriftError(f"{path}: not a readable JPEG or PNG image ({e}); remove it or convert it") from None


def too_many_pixels(path: Path) -> str:
    """Pillow refuses to decode images past its limit (a "decompression bomb" guard)."""
    from PIL import Image

    return (f"{path}: more than {2 * Image.MAX_IMAGE_PIXELS // 1_000_000} million pixels, too many to load; "
            "resize it (the model sees a few thousand)")


# What file browsers leave in image folders (hidden dot files are left out anyway).
BROWSER_CLUTTER = frozenset({"thumbs.db", "desktop.ini", "ehthumbs.db"})


def class_files(class_folder: Path) -> list[Path]:
    """Every file under a class folder, in its sub-folders too (a class kept by date or by
    camera), hidden files and folders and a file browser's clutter left out, in a stable order."""
    return sorted(p for p in class_folder.rglob("*")
                  if p.is_file() and p.name.lower() not in BROWSER_CLUTTER
                  and not any(part.startswith(".") for part in p.relative_to(class_folder).parts))


def load_image_folder(folder: str | Path, label_names: tuple[str, ...] | None = None,
                      size: int | tuple[int, int] = IMAGE_SIZE,
                      progress=None, min_classes: int = 2) -> ImageSet:
    """An ImageSet of every image in `folder`'s class sub-folders.

    Labels come from the sub-folders' names: indices into `label_names` (a model's classes,
    which every sub-folder must be one of), or into the sorted folder names when None.
    `min_classes` 1 takes a folder of one class (an evaluation of the model's known classes);
    a set that is to define its classes, or to train or calibrate on, needs two or more.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise TinydriftError(f"{folder}: no such folder (expected {LAYOUT})")
    classes = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    stray = sorted(p.name for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
    if stray and not classes:
        if all(name.lower().endswith(".wav") for name in stray):  # a recordings folder given to a camera model
            raise TinydriftError(f"{folder}: WAV recordings ({', '.join(stray[:3])}), and this is a camera (image) "
                                 f"model, which takes images: give {LAYOUT}")
        raise TinydriftError(f"{folder}: files ({', '.join(stray[:3])}) but no class sub-folders; expected {LAYOUT}")
    files = {c.name: class_files(c) for c in classes}
    files = {name: paths for name, paths in files.items() if paths}
    if not files:
        raise TinydriftError(f"{folder}: no images in class sub-folders; expected {LAYOUT}")
    if not any(p.suffix.lower() in IMAGE_SUFFIXES for paths in files.values() for p in paths):
        # a keyword set's WAV folder given to a camera model: not one stray file to move out
        kinds = sorted({p.suffix.lower() or p.name for paths in files.values() for p in paths})
        raise TinydriftError(f"{folder}: its class folders hold no JPEG or PNG image ({', '.join(kinds[:4])} files): "
                             f"the model takes images; give a folder of images ({LAYOUT})")
    if len(files) < (2 if label_names is None else min_classes):
        raise TinydriftError(f"{folder}: only one class ({next(iter(files))}); a classifier's set needs a sub-folder "
                             "for each of two or more classes")
    if label_names is None:
        label_names = tuple(files)
    unknown = [name for name in files if name not in label_names]
    if unknown:
        raise TinydriftError(f"{folder}: class folder(s) {', '.join(unknown)} are not among the model's classes "
                             f"({', '.join(label_names)}); rename or move them")
    images, labels, names, widths, heights, modes = [], [], [], [], [], []
    unreadable: list[tuple[Path, str]] = []  # all of them named at once: not one fix and rerun each
    for class_name, paths in files.items():
        for path in paths:
            try:
                image, (width, height), mode = read_image(path, size)
            except TinydriftError as exc:
                unreadable.append((path, str(exc)))
                continue
            finally:
                if progress is not None:
                    progress(1)
            modes.append(mode)
            images.append(image)
            labels.append(label_names.index(class_name))
            names.append(f"{class_name}/{path.relative_to(folder / class_name).as_posix()}")
            widths.append(width)
            heights.append(height)
    if len(unreadable) == 1:
        raise TinydriftError(unreadable[0][1])
    if unreadable:
        listed = ", ".join(path.relative_to(folder).as_posix() for path, _ in unreadable[:5])
        raise TinydriftError(f"{folder}: {len(unreadable)} files are no image it can read ({listed}"
                             f"{', ...' if len(unreadable) > 5 else ''}); the first: {unreadable[0][1]}")
    return ImageSet(
        images=np.stack(images),
        labels=np.array(labels, dtype=np.int16),
        label_names=tuple(label_names),
        domain={
            "file": np.array(names),
            "source": np.array([folder.name] * len(names)),
            "width": np.array(widths, dtype=np.int32),
            "height": np.array(heights, dtype=np.int32),
            "mode": np.array(modes),  # the file's Pillow mode (converted_note)
            # Without plant identities, each image is its own group.
            # surrogateescape: a file name need not be UTF-8 (the bytes a disk holds)
            "group": np.array([zlib.crc32(n.encode(errors="surrogateescape")) & 0x7FFFFFFF for n in names],
                              dtype=np.int64),
        },
    )
