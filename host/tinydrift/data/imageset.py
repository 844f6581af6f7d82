"""A set of small RGB images with labels and per-image attributes, in one .npz.

The camera models' counterpart of ClipSet: `images` are uint8 [N, H, W, 3] as a camera
gives them; the model's int8 input is each pixel minus 128 (scale 1, zero point 0 once
quantized), so a device feeds its frame buffer to the model with one subtraction.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tinydrift.atomic import atomic_path
from tinydrift.data.clipset import META_PREFIX, check_label_indices
from tinydrift.data.npzfile import npz_problem, open_npz
from tinydrift.errors import TinydriftError

# 48x48 RGB: 6.9 KB of input, a DS-CNN of about 1 M multiply-accumulates and an arena near
# 20 KB fit a Cortex-M4's RAM and a frame budget of tens of ms; the disease signs (spots of
# a few pixels, a necrotic patch's darker rim, a mosaic's mottling) survive at 48 px but
# blur into their surroundings at 32. See models/plant/README.md for the measured figures.
IMAGE_SIZE = 48
CHANNELS = 3


def pixels_to_int8(images_uint8: np.ndarray) -> np.ndarray:
    """The model's int8 input for camera pixels: each value minus 128."""
    return (images_uint8.astype(np.int16) - 128).astype(np.int8)


@dataclass
class ImageSet:
    """Images with labels (indices into `label_names`) and one array per attribute in
    `domain` (severity, background, lighting, plant, group, ...), each of length N, so drift
    scenarios can select images by it. `group` is the unit calibration resamples: a plant."""

    images: np.ndarray  # uint8 [N, H, W, 3]
    labels: np.ndarray  # int16 [N]
    label_names: tuple[str, ...]
    domain: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self):
        n = len(self.images)
        if self.images.dtype != np.uint8 or self.images.ndim != 4 or self.images.shape[-1] != CHANNELS:
            raise ValueError(f"images must be uint8 [N, H, W, {CHANNELS}], got {self.images.dtype} {self.images.shape}")
        if len(self.labels) != n or any(len(v) != n for v in self.domain.values()):
            raise ValueError("labels and every domain column need one entry per image")
        self.label_names = tuple(self.label_names)
        check_label_indices(self.labels, len(self.label_names))

    def __len__(self) -> int:
        return len(self.images)

    @property
    def features(self) -> np.ndarray:
        """The model's int8 input [N, H, W, 3] (ClipSet's name for what the model reads)."""
        return pixels_to_int8(self.images)

    def ensure_features(self, progress=None) -> np.ndarray:
        if progress is not None:
            progress(len(self))
        return self.features

    def select(self, mask: np.ndarray) -> "ImageSet":
        return ImageSet(images=self.images[mask], labels=self.labels[mask], label_names=self.label_names,
                        domain={k: v[mask] for k, v in self.domain.items()})

    def save(self, path: str | Path) -> None:
        arrays = {"images": self.images, "labels": self.labels, "label_names": np.array(self.label_names)}
        arrays.update({META_PREFIX + k: v for k, v in self.domain.items()})
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, **arrays)

    @staticmethod
    def load(path: str | Path) -> "ImageSet":
        path = Path(path)
        if not path.is_file():
            raise TinydriftError(f"{path}: no such image set; build one with `tinydrift data plant`")
        if path.stat().st_size == 0:
            raise TinydriftError(f"{path}: the file is empty; build the image set again with `tinydrift data plant`")
        try:
            with open_npz(path) as z:
                if "images" not in z.files:
                    raise TinydriftError(f"{path}: not an image set (it holds {', '.join(sorted(z.files)[:4])}); "
                                         "build one with `tinydrift data plant`")
                return ImageSet(
                    images=z["images"],
                    labels=z["labels"],
                    label_names=tuple(str(s) for s in z["label_names"]),
                    domain={k[len(META_PREFIX):]: z[k] for k in z.files if k.startswith(META_PREFIX)},
                )
        except (zipfile.BadZipFile, KeyError, ValueError, OSError, EOFError) as e:
            raise TinydriftError(f"{path}: not a tinydrift image set ({npz_problem(path, e)}); rebuild it with `tinydrift data plant`") from e

