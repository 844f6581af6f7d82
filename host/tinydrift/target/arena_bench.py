"""The arena of the generated C against TFLite Micro's for the same model, for every model
the project has: each folder of models/ with a model_int8.tflite, MLPerf Tiny's keyword
DS-CNN (when tinydrift.model.mlperf_dscnn is there to build it) and the microWakeWord
models pymicro-wakeword ships (when installed). Part of `tinydrift bench device`.

Per model: the generated C's arena (input kept for the monitor, as the firmware builds it),
TFLite Micro's (its RecordingMicroAllocator's total: planned tensors plus persistent data,
how tinydrift measures it everywhere), their ratio, the kernels that run in place and the
slices that are views, and two bounds for this operator order: the most bytes alive at one
operator with every tensor in its own bytes (`order_bound_bytes`: what placement alone can
reach) and with the chosen in-place pairs and views counted by the bytes they span
(`bound_bytes`).

    figures = arena_figures()     # {"arena_ratio_to_tflm": {name: ratio}, "arenas": {name: {...}}}
"""

from __future__ import annotations

import importlib.util
from dataclasses import replace
from pathlib import Path

from tinydrift import firmware

MODELS_DIR = firmware.REPO_ROOT / "models"


def project_models(models_dir: Path = MODELS_DIR) -> dict[str, bytes]:
    """Name -> .tflite bytes: the folders of models/, MLPerf Tiny's keyword DS-CNN when the
    package builds it (tinydrift.model.mlperf_dscnn), then pymicro-wakeword's models."""
    from tinydrift.wakeword.config import builtin_models, load_wakeword

    models = {path.parent.name: path.read_bytes() for path in sorted(Path(models_dir).glob("*/model_int8.tflite"))}
    if importlib.util.find_spec("tinydrift.model.mlperf_dscnn") is not None:
        from tinydrift.model.mlperf_dscnn import mlperf_dscnn_int8

        models["mlperf_dscnn"] = mlperf_dscnn_int8()
    for name in sorted(builtin_models()):
        models.setdefault(name, load_wakeword(name).model)
    return models


def model_arena(tflite: bytes, name: str) -> dict:
    from tinydrift.codegen.model_arena import peak_live_bytes
    from tinydrift.codegen.model_c import plan_model
    from tinydrift.model.runtimes import tflm_arena_report

    plan = plan_model(tflite, name)
    tflm = tflm_arena_report(tflite)
    untied = [replace(buffer, anchor=None, anchor_offset=0) for buffer in plan.buffers]
    return {
        "arena_bytes": plan.arena_bytes,
        "tflm_arena_bytes": tflm["total"],
        "tflm_tensor_bytes": tflm["head"],
        "tflm_persistent_bytes": tflm["tail"],
        "arena_ratio_to_tflm": plan.arena_bytes / tflm["total"],
        "bound_bytes": peak_live_bytes(plan.buffers),
        "order_bound_bytes": peak_live_bytes(untied),
        "in_place_kernels": len(plan.overlays) - len(plan.views),
        "views": len(plan.views),
        "state_bytes": plan.state_bytes,
    }


def arena_figures(models: dict[str, bytes] | None = None) -> dict:
    arenas = {name: model_arena(data, name) for name, data in (project_models() if models is None else models).items()}
    return {"arena_ratio_to_tflm": {name: figures["arena_ratio_to_tflm"] for name, figures in arenas.items()},
            "arenas": arenas}


def format_arenas(figures: dict) -> list[str]:
    lines = ["  arenas (generated C, input kept / TFLite Micro: tensors + persistent):"]
    for name, arena in figures["arenas"].items():
        lines.append(
            f"    {name:<14} {arena['arena_bytes']:>7,} B / {arena['tflm_arena_bytes']:>7,} B "
            f"= {arena['arena_ratio_to_tflm']:.3f}x   bound {arena['bound_bytes']:,} B "
            f"(none in place: {arena['order_bound_bytes']:,} B), {arena['in_place_kernels']} kernels in place, "
            f"{arena['views']} views")
    return lines
