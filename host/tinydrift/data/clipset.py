"""A set of 1 s clips with labels, per-clip domain and (once computed) features, in one .npz."""

from __future__ import annotations

import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tinydrift.atomic import atomic_path
from tinydrift.data.npzfile import npz_problem, open_npz
from tinydrift.errors import TinydriftError
from tinydrift.frontend import CLIP_SAMPLES, NUM_CHANNELS, NUM_FRAMES
from tinydrift.data.labels import LABELS

META_PREFIX = "meta_"


@dataclass
class ClipSet:
    """Clips of CLIP_SAMPLES int16 samples at 16 kHz.

    `domain` holds one array per attribute (voice, language, pitch, speed, noise, snr_db,
    speaker, group, ...), each of length N, so drift scenarios can select clips by it.
    `group` identifies the recording unit (a synthetic voice setting, a real speaker):
    calibration bootstraps over whole groups.
    """

    audio: np.ndarray  # int16 [N, CLIP_SAMPLES]
    labels: np.ndarray  # int16 [N], index into LABELS
    domain: dict[str, np.ndarray] = field(default_factory=dict)
    features: np.ndarray | None = None  # int8 [N, NUM_FRAMES, NUM_CHANNELS]

    def __post_init__(self):
        n = len(self.audio)
        if self.audio.dtype != np.int16 or self.audio.shape[1:] != (CLIP_SAMPLES,):
            raise ValueError(f"audio must be int16 [N, {CLIP_SAMPLES}], got {self.audio.dtype} {self.audio.shape}")
        if len(self.labels) != n or any(len(v) != n for v in self.domain.values()):
            raise ValueError("labels and every domain column need one entry per clip")
        # an index past the classes once ended eval in an IndexError, a negative one counted as
        # the last class (-1 as "go")
        check_label_indices(self.labels, len(LABELS))
        if self.features is not None and self.features.shape != (n, NUM_FRAMES, NUM_CHANNELS):
            raise ValueError(f"features must be [N, {NUM_FRAMES}, {NUM_CHANNELS}], got {self.features.shape}")

    def __len__(self) -> int:
        return len(self.audio)

    @property
    def label_names(self) -> tuple[str, ...]:
        return LABELS

    def select(self, mask: np.ndarray) -> "ClipSet":
        return ClipSet(
            audio=self.audio[mask],
            labels=self.labels[mask],
            domain={k: v[mask] for k, v in self.domain.items()},
            features=None if self.features is None else self.features[mask],
        )

    @staticmethod
    def concat(sets: list["ClipSet"]) -> "ClipSet":
        keys = set.intersection(*(set(s.domain) for s in sets))
        with_features = all(s.features is not None for s in sets)
        return ClipSet(
            audio=np.concatenate([s.audio for s in sets]),
            labels=np.concatenate([s.labels for s in sets]),
            domain={k: np.concatenate([s.domain[k] for s in sets]) for k in sorted(keys)},
            features=np.concatenate([s.features for s in sets]) if with_features else None,
        )

    def ensure_features(self, progress=None) -> np.ndarray:
        if self.features is None:
            from tinydrift.frontend import features_batch

            self.features = features_batch(self.audio, progress=progress)
        return self.features

    def save(self, path: str | Path) -> None:
        arrays = {"audio": self.audio, "labels": self.labels, "label_names": np.array(LABELS)}
        if self.features is not None:
            arrays["features"] = self.features
        arrays.update({META_PREFIX + k: v for k, v in self.domain.items()})
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, **arrays)

    @staticmethod
    def load(path: str | Path) -> "ClipSet":
        path = Path(path)
        if not path.is_file():
            raise TinydriftError(f"{path}: no such clip set; build one with `tinydrift data kws`")
        if path.stat().st_size == 0:
            raise TinydriftError(f"{path}: the file is empty; build the clip set again with `tinydrift data kws`")
        try:
            with open_npz(path) as z:
                names = tuple(str(s) for s in z["label_names"])
                if names != LABELS:
                    raise TinydriftError(f"{path}: labels {names} are not the 12-class convention {LABELS}")
                return ClipSet(
                    audio=z["audio"],
                    labels=z["labels"],
                    domain={k[len(META_PREFIX):]: z[k] for k in z.files if k.startswith(META_PREFIX)},
                    features=z["features"] if "features" in z.files else None,
                )
        except (zipfile.BadZipFile, KeyError, ValueError, OSError, EOFError) as e:
            raise TinydriftError(f"{path}: not a tinydrift clip set ({npz_problem(path, e)}); rebuild it with `tinydrift data kws`") from e


def check_label_indices(labels: np.ndarray, classes: int) -> None:
    """Raise ValueError unless `labels` is one integer class index in 0..classes-1 per item."""
    if labels.ndim != 1 or not (np.issubdtype(labels.dtype, np.integer) or len(labels) == 0):
        raise ValueError(f"labels must be one integer class index per item, got {labels.dtype} {labels.shape}")
    if len(labels) and (labels.min() < 0 or labels.max() >= classes):
        raise ValueError(f"labels must be class indices 0..{classes - 1}, found {int(labels.min())}..{int(labels.max())}")


def fit_to_clip(samples: np.ndarray, offset: int = 0) -> np.ndarray:
    """Place `samples` in a 1 s int16 clip starting at `offset` (negative trims the start)."""
    clip = np.zeros(CLIP_SAMPLES, dtype=np.int16)
    src = samples[max(0, -offset):]
    start = max(0, offset)
    n = min(len(src), CLIP_SAMPLES - start)
    if n > 0:
        clip[start:start + n] = src[:n]
    return clip
