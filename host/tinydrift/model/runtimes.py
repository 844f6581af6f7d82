"""Run an int8 .tflite on the host: TFLite Micro (the device's truth) or LiteRT (fast).

LiteRT's XNNPACK path rounds FULLY_CONNECTED once where TFLite Micro rounds twice,
so their output vectors differ by ±1 on some inputs; the device follows TFLite Micro.
"""

from __future__ import annotations

import os
import re
import tempfile

import numpy as np

from tinydrift.errors import TinydriftError
from tinydrift.quiet import held_back

RUNTIMES = ("tflm", "litert")
TFLM_ARENA_PATTERN = re.compile(r"Arena allocation (total|head|tail) (\d+) bytes")


def _tflm_interpreter(model: bytes, *, arena_size: int | None = None):
    from tflite_micro import runtime

    size = arena_size if arena_size is not None else 10 * len(model) + (1 << 20)
    try:
        return runtime.Interpreter.from_bytes(bytes(model), arena_size=size)
    except Exception as exc:  # the binding raises bare RuntimeError/ValueError alike
        raise TinydriftError(f"TFLite Micro cannot load the model: {exc}") from exc


def run_tflm(model: bytes, inputs: np.ndarray, progress=None) -> np.ndarray:
    """Outputs [N, K] of TFLite Micro's reference interpreter, one invoke per input, in the
    model's output type (int8; uint8 for e.g. microWakeWord's probability). A streaming
    model carries its state from one input to the next, from a fresh interpreter."""
    return TflmStream(model)(inputs, progress)


class TflmStream:
    """One TFLite Micro interpreter called batch after batch: a streaming model's state goes
    on from one call to the next, as if the batches were one (run_tflm: a single batch)."""

    def __init__(self, model: bytes) -> None:
        self.interp = _tflm_interpreter(model)
        details = self.interp.get_input_details(0)
        self.shape = tuple(int(d) for d in details["shape"])
        if details["dtype"] != np.int8:
            raise TinydriftError(f"model input is {np.dtype(details['dtype']).name}, not int8")

    def __call__(self, inputs: np.ndarray, progress=None) -> np.ndarray:
        batch = np.asarray(inputs, dtype=np.int8).reshape(len(inputs), -1)
        outputs = []
        for x in batch:
            self.interp.set_input(x.reshape(self.shape), 0)
            self.interp.invoke()
            outputs.append(np.asarray(self.interp.get_output(0)).reshape(-1).copy())
            if progress is not None:
                progress(1)
        return np.stack(outputs) if outputs else np.zeros((0, 0), np.int8)


def run_litert(model: bytes, inputs: np.ndarray, progress=None) -> np.ndarray:
    """Outputs [N, K] of LiteRT's interpreter (XNNPACK where it applies)."""
    from ai_edge_litert.interpreter import Interpreter

    with held_back():  # "Created TensorFlow Lite XNNPACK delegate": LiteRT's own log line
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


def tflm_arena_report(model: bytes) -> dict[str, int]:
    """TFLite Micro's arena use after one inference, from its RecordingMicroAllocator:
    total (what the arena must hold), head (planned tensor buffers) and tail (persistent
    data: tensor structs, node data, per-channel multipliers)."""
    interp = _tflm_interpreter(model)
    details = interp.get_input_details(0)
    interp.set_input(np.zeros(tuple(details["shape"]), dtype=details["dtype"]), 0)
    interp.invoke()
    text = _capture_c_stderr(interp.print_allocations)
    report = {kind: int(value) for kind, value in TFLM_ARENA_PATTERN.findall(text)}
    if "total" not in report:
        raise TinydriftError(f"TFLite Micro printed no arena total:\n{text}")
    return report


def tflm_arena_bytes(model: bytes) -> int:
    """The arena TFLite Micro needs for the model (its 'Arena allocation total')."""
    return tflm_arena_report(model)["total"]


def _capture_c_stderr(function) -> str:
    """Run `function` with file descriptor 2 sent to a temporary file (C++ writes there,
    below Python's sys.stderr); return what it wrote."""
    saved = os.dup(2)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            function()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        sink.seek(0)
        return sink.read().decode(errors="replace")
