"""Accuracy, per-class accuracy, confusion and output entropy of an int8 model on a clip set
or an image set."""

from __future__ import annotations

import numpy as np

from tinydrift.data.clipset import ClipSet
from tinydrift.data.imageset import ImageSet
from tinydrift.data.labels import LABELS
from tinydrift.model.runtimes import run


def probabilities(outputs_int8: np.ndarray) -> np.ndarray:
    """Softmax outputs as probabilities: int8 with scale 1/256 and zero point -128."""
    return (outputs_int8.astype(np.float64) + 128.0) / 256.0


def mean_entropy(outputs_int8: np.ndarray) -> float:
    p = probabilities(outputs_int8)
    with np.errstate(divide="ignore", invalid="ignore"):
        h = -np.where(p > 0, p * np.log(p), 0.0).sum(axis=1)
    return float(h.mean()) if len(h) else float("nan")


def summarize(predicted: np.ndarray, labels: np.ndarray, outputs_int8: np.ndarray | None = None,
              label_names: tuple[str, ...] = LABELS) -> dict:
    n = len(labels)
    k = len(label_names)
    confusion = np.zeros((k, k), dtype=np.int64)
    np.add.at(confusion, (labels.astype(np.int64), predicted.astype(np.int64)), 1)
    per_class = {}
    for i, name in enumerate(label_names):
        total = int(confusion[i].sum())
        if total:
            per_class[name] = {"n": total, "accuracy": float(confusion[i, i] / total)}
    result = {
        "n": int(n),
        "accuracy": float((predicted == labels).mean()) if n else float("nan"),
        "per_class": per_class,
        "confusion": confusion.tolist(),
        "labels": list(label_names),
    }
    if outputs_int8 is not None:
        result["mean_entropy"] = mean_entropy(outputs_int8)
        result["mean_confidence"] = float(probabilities(outputs_int8).max(axis=1).mean()) if n else float("nan")
    return result


def check_fits(model: bytes, data: ClipSet | ImageSet, where, label_names: tuple[str, ...] | None = None) -> None:
    """Refuse, naming `where` (the data's path), data the model cannot read (the other kind of
    input, images of another size) or whose classes are not its outputs: as many, and, when
    the model's `label_names` are known, the same names in its output order."""
    from tinydrift.errors import TinydriftError
    from tinydrift.model.quantize import describe, is_image_input

    if len(data) == 0:  # once a traceback from numpy's argmax (or reshape) of nothing
        unit = "images" if isinstance(data, ImageSet) else "clips"
        raise TinydriftError(f"{where} holds no {unit}: give a set with at least one")
    info = describe(model)
    shape = tuple(int(d) for d in info["inputs"][0]["shape"])
    image_model = is_image_input(shape)
    if isinstance(data, ImageSet) != image_model:
        held = "images" if isinstance(data, ImageSet) else "audio clips"
        takes = f"{shape[1]}x{shape[2]} images" if image_model else "keyword audio (the front end's 49x40 features)"
        raise TinydriftError(f"{where} holds {held}, and the model takes {takes}: give data of the model's kind")
    if image_model and tuple(data.images.shape[1:]) != shape[1:]:
        raise TinydriftError(f"{where}: images {'x'.join(map(str, data.images.shape[1:]))}, and the model takes "
                             f"{'x'.join(map(str, shape[1:]))}: give images of its size")
    outputs = int(info["outputs"][0]["shape"][-1])
    if outputs != len(data.label_names):
        names = ", ".join(data.label_names[:6]) + (", ..." if len(data.label_names) > 6 else "")
        raise TinydriftError(f"{where}: {len(data.label_names)} classes ({names}), and the model has {outputs} "
                             "outputs: give data of the model's classes")
    # a set's labels are indices into its own names: other names, or another order, would score
    # every class against another one's output
    if label_names is not None and tuple(label_names) != tuple(data.label_names):
        raise TinydriftError(f"{where}: classes {', '.join(data.label_names)}, and the model's outputs are "
                             f"{', '.join(label_names)}: give data of the model's classes, in its output order")


def evaluate(model: bytes, clips: ClipSet | ImageSet, runtime: str, progress_factory=None) -> dict:
    advance = progress_factory("features", len(clips)) if progress_factory and clips.features is None else None
    features = clips.ensure_features(progress=advance)
    advance = progress_factory(f"inference ({runtime})", len(clips)) if progress_factory else None
    outputs = run(runtime, model, features, progress=advance)
    result = summarize(outputs.argmax(axis=1), clips.labels, outputs, clips.label_names)
    result["runtime"] = runtime
    return result
