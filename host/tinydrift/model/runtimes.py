"""Run an int8 .tflite on the host: TFLite Micro (the device's truth) or LiteRT (fast).

DESIGN §3: LiteRT's XNNPACK path rounds FULLY_CONNECTED once where TFLite Micro rounds twice,
so their output vectors differ by ±1 on some inputs; the device follows TFLite Micro.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np

from ..errors import TinydriftError

RUNTIMES = ("tflm", "litert")
DEFAULT_ARENA = 512 * 1024


def _tflm_interpreter(model: bytes, arena_size: int = DEFAULT_ARENA, preserve_all: bool = False):
    from tflite_micro.python.tflite_micro import runtime

    kwargs = {}
    if preserve_all:
        # (sic) the keyword is spelled this way in tflite_micro.
        kwargs["intrepreter_config"] = runtime.InterpreterConfig.kPreserveAllTensors
    return runtime.Interpreter.from_bytes(model, arena_size=arena_size, **kwargs)


def run_tflm(model: bytes, inputs: np.ndarray, progress=None) -> np.ndarray:
    """Outputs of TFLite Micro's reference interpreter, one invoke per input."""
    interp = _tflm_interpreter(model)
    details = interp.get_input_details(0)
    shape = tuple(details["shape"])
    outputs = []
    for x in inputs:
        interp.set_input(np.asarray(x, dtype=details["dtype"]).reshape(shape), 0)
        interp.invoke()
        outputs.append(interp.get_output(0).reshape(-1).copy())
        if progress is not None:
            progress(1)
    return np.stack(outputs) if outputs else np.zeros((0, 0), np.int8)


def run_litert(model: bytes, inputs: np.ndarray, progress=None) -> np.ndarray:
    """Outputs of LiteRT's interpreter (XNNPACK where it applies)."""
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_content=model)
    interp.allocate_tensors()
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    outputs = []
    for x in inputs:
        interp.set_tensor(inp["index"], np.asarray(x, dtype=inp["dtype"]).reshape(inp["shape"]))
        interp.invoke()
        outputs.append(interp.get_tensor(out["index"]).reshape(-1).copy())
        if progress is not None:
            progress(1)
    return np.stack(outputs) if outputs else np.zeros((0, 0), np.int8)


def run(runtime: str, model: bytes, inputs: np.ndarray, progress=None) -> np.ndarray:
    if runtime == "tflm":
        return run_tflm(model, inputs, progress)
    if runtime == "litert":
        return run_litert(model, inputs, progress)
    raise TinydriftError(f"unknown runtime {runtime!r}: choose one of {', '.join(RUNTIMES)}")


_ARENA_PROBE = """
import sys
from tinydrift.model.runtimes import _tflm_interpreter
interp = _tflm_interpreter(open(sys.argv[1], "rb").read())
interp.print_allocations()
"""


def tflm_arena_bytes(model_path: Path) -> int:
    """The arena TFLite Micro actually uses for the model (its own allocation report).

    print_allocations() writes to the C stderr, so it runs in a child process.
    """
    proc = subprocess.run([sys.executable, "-c", _ARENA_PROBE, str(model_path)], capture_output=True,
                          text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    match = re.search(r"\[RecordingMicroAllocator\] Arena allocation total (\d+) bytes", proc.stderr)
    if proc.returncode != 0 or match is None:
        raise TinydriftError(f"{model_path}: TFLite Micro could not report its arena:\n{proc.stderr[-2000:]}")
    return int(match.group(1))
