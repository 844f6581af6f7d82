"""Run a .tflite model two ways and compare: the generated C (built for this host, the
same kernels the device runs) and TFLite Micro's Python interpreter (the int8 truth).

    outputs = run_generated_model(tflite_bytes, inputs)   # int8 (or uint8) [N, K]
    expected = run_tflm(tflite_bytes, inputs)             # the same
    tflm_arena_bytes(tflite_bytes)                        # TFLite Micro's arena, in bytes

`tinydrift verify` and the model evaluation use these; the tests compare them element by
element.
"""

from __future__ import annotations

import ctypes
import hashlib
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tinydrift import atomic, firmware
from tinydrift.errors import TinydriftError
from tinydrift.model.runtimes import run_tflm
from tinydrift.codegen.model_c import generate_model_c, plan_model

GENERATED_DIR = firmware.HOST_BUILD_DIR / "models"

_loaded: dict[str, ctypes.CDLL] = {}


def _digest(tflite_bytes: bytes) -> str:
    return hashlib.sha256(bytes(tflite_bytes)).hexdigest()[:12]


def _batch_harness(name: str) -> str:
    upper = name.upper()
    return f"""/* Host-only harness: runs td_model_{name} on many inputs in one call (for ctypes). */
#include <string.h>

#include "td_model_{name}.h"

int td_{name}_run_batch(int32_t count, const int8_t *inputs, int8_t *outputs);

int td_{name}_run_batch(int32_t count, const int8_t *inputs, int8_t *outputs)
{{
    for (int32_t i = 0; i < count; ++i) {{
        memcpy(td_{name}_input(), inputs + (size_t)i * TD_{upper}_INPUT_SIZE, TD_{upper}_INPUT_SIZE);
        const int status = td_{name}_invoke();
        if (status != 0) {{
            return status;
        }}
        memcpy(outputs + (size_t)i * TD_{upper}_OUTPUT_SIZE, td_{name}_output(), TD_{upper}_OUTPUT_SIZE);
    }}
    return 0;
}}
"""


def _file_main(name: str) -> str:
    upper = name.upper()
    return f"""/* Host-only test program: int8 inputs from a file, int8 outputs to a file. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "td_model_{name}.h"

int main(int argc, char **argv)
{{
    if (argc != 3) {{
        fprintf(stderr, "usage: %s INPUTS.bin OUTPUTS.bin\\n", argv[0]);
        return 2;
    }}
    FILE *in = fopen(argv[1], "rb");
    FILE *out = fopen(argv[2], "wb");
    if (in == NULL || out == NULL) {{
        fprintf(stderr, "cannot open %s or %s\\n", argv[1], argv[2]);
        return 2;
    }}
    int8_t *input = malloc(TD_{upper}_INPUT_SIZE);
    long count = 0;
    while (input != NULL && fread(input, 1, TD_{upper}_INPUT_SIZE, in) == TD_{upper}_INPUT_SIZE) {{
        memcpy(td_{name}_input(), input, TD_{upper}_INPUT_SIZE);
        if (td_{name}_invoke() != 0) {{
            fprintf(stderr, "invoke failed on input %ld\\n", count);
            return 1;
        }}
        fwrite(td_{name}_output(), 1, TD_{upper}_OUTPUT_SIZE, out);
        ++count;
    }}
    free(input);
    fclose(in);
    fclose(out);
    return 0;
}}
"""


def _write_sources(models: dict[str, bytes], extra: dict[str, str], *,
                   preserve_input: bool = True) -> tuple[Path, list[Path]]:
    """Generate each model's C (plus host-only files) under build/host/models/<hash>/."""
    digest = hashlib.sha256(b"" if preserve_input else b"input not kept")
    for name in sorted(models):
        digest.update(name.encode() + b"\0" + _digest(models[name]).encode())
    for filename in sorted(extra):
        digest.update(filename.encode() + extra[filename].encode())
    out_dir = GENERATED_DIR / digest.hexdigest()[:16]
    sources = []
    for name, tflite_bytes in models.items():
        header, source = generate_model_c(tflite_bytes, name, preserve_input=preserve_input)
        atomic.write_text(out_dir / f"td_model_{name}.h", header)
        atomic.write_text(out_dir / f"td_model_{name}.c", source)
        sources.append(out_dir / f"td_model_{name}.c")
    for filename, text in extra.items():
        atomic.write_text(out_dir / filename, text)
        sources.append(out_dir / filename)
    return out_dir, sources


@dataclass
class HostModel:
    """A generated model compiled into a shared library on this host."""

    library: ctypes.CDLL
    name: str
    input_size: int
    output_size: int
    output_dtype: type = np.int8  # np.uint8 for a model with a uint8 output
    stateful: bool = False  # a streaming model: td_<name>_reset() exists

    def reset(self) -> None:
        """A streaming model back to its initial state (td_<name>_reset)."""
        if self.stateful:
            getattr(self.library, f"td_{self.name}_reset")()

    def run(self, inputs: np.ndarray, *, reset: bool = True) -> np.ndarray:
        """int8 inputs [N, ...] (N x input_size values) -> outputs [N, output_size], one
        invoke per input, in order. A streaming model carries its state from one input to
        the next, starting from its initial state unless reset=False (then it goes on from
        where the last run left it)."""
        batch = _as_batch(inputs, self.input_size)
        outputs = np.zeros((len(batch), self.output_size), dtype=self.output_dtype)
        if reset:
            self.reset()
        function = getattr(self.library, f"td_{self.name}_run_batch")
        function.restype = ctypes.c_int
        status = function(
            ctypes.c_int32(len(batch)),
            batch.ctypes.data_as(ctypes.POINTER(ctypes.c_int8)),
            outputs.ctypes.data_as(ctypes.POINTER(ctypes.c_int8)),
        )
        if status != 0:
            raise TinydriftError(f"td_{self.name}_invoke returned {status}")
        return outputs


def _as_batch(inputs: np.ndarray, input_size: int) -> np.ndarray:
    inputs = np.asarray(inputs)
    if inputs.dtype != np.int8:
        raise TinydriftError(f"model inputs must be int8, got {inputs.dtype}")
    if inputs.size % input_size:
        raise TinydriftError(f"{inputs.size} input values are not a whole number of inputs of {input_size}")
    return np.ascontiguousarray(inputs.reshape(-1, input_size))


def build_host_models(models: dict[str, bytes], *, preserve_input: bool = True,
                      kernels_optimized: bool = False) -> dict[str, HostModel]:
    """Generate and compile several models into one shared library (they coexist through
    their name prefixes); returns a runner per name. preserve_input=False lets inference
    overwrite the input (and kernels run in place on it); kernels_optimized builds the
    optimized kernels' C (their DSP helpers in plain C) instead of the reference."""
    extra = {f"run_batch_{name}.c": _batch_harness(name) for name in models}
    out_dir, sources = _write_sources(models, extra, preserve_input=preserve_input)
    # -O3 vectorizes the reference loops (~3x faster on the host); integer code, same results.
    library_path = firmware.compile_host(sources + firmware.stage_sources("kernels"), include_dirs=[*firmware.include_dirs(), out_dir], optimize="-O3",
                                         defines={"TD_KERNELS_OPTIMIZED": 1} if kernels_optimized else None)
    key = str(library_path)
    if key not in _loaded:
        _loaded[key] = ctypes.CDLL(key)
    result = {}
    for name, tflite_bytes in models.items():
        plan = plan_model(tflite_bytes, name, preserve_input=preserve_input)
        result[name] = HostModel(_loaded[key], name, plan.input.num_elements, plan.output.num_elements,
                                 np.dtype(plan.output.dtype).type, plan.state is not None)
    return result


def run_generated_model(tflite_bytes: bytes, inputs: np.ndarray) -> np.ndarray:
    """Run the generated C for the model (built for this host) on int8 inputs [N, ...];
    returns outputs [N, K] of the model's output type (a streaming model: one stream from
    its initial state)."""
    name = f"m{_digest(tflite_bytes)}"
    return build_host_models({name: tflite_bytes})[name].run(inputs)


def run_generated_and_tflm(tflite_bytes: bytes, inputs: np.ndarray, progress=None,
                           chunk: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """(run_generated_model, run_tflm) on the same inputs, side by side on two cores: the
    generated C runs in a thread (ctypes releases the GIL) while TFLite Micro runs here.
    Chunk by chunk, a streaming model's state carried across them: `progress(n)` after each,
    and Ctrl-C waits for at most one chunk of the C."""
    from concurrent.futures import ThreadPoolExecutor

    from tinydrift.model.runtimes import TflmStream

    name = f"m{_digest(tflite_bytes)}"
    host = build_host_models({name: tflite_bytes})[name]
    tflm = TflmStream(tflite_bytes)
    batch = _as_batch(inputs, host.input_size)
    ours, expected = [], []
    host.reset()
    with ThreadPoolExecutor(max_workers=1) as pool:
        for start in range(0, len(batch), chunk):
            part = batch[start:start + chunk]
            generated = pool.submit(host.run, part, reset=False)
            expected.append(tflm(part))
            ours.append(generated.result())
            if progress is not None:
                progress(len(part))
    if not ours:
        return host.run(batch), run_tflm(tflite_bytes, batch)
    return np.concatenate(ours), np.concatenate(expected)


def build_model_executable(tflite_bytes: bytes, *, sanitize: bool = False) -> Path:
    """A standalone host program: `prog INPUTS.bin OUTPUTS.bin` (raw int8, one input after
    another). With sanitize=True it runs under AddressSanitizer and UBSan, which cannot be
    loaded through ctypes."""
    name = f"m{_digest(tflite_bytes)}"
    out_dir, sources = _write_sources({name: tflite_bytes}, {f"main_{name}.c": _file_main(name)})
    return firmware.compile_host(
        sources + firmware.stage_sources("kernels"),
        include_dirs=[*firmware.include_dirs(), out_dir],
        shared=False,
        sanitize=sanitize,
        optimize="-O1" if sanitize else "-O2",
    )


def run_model_executable(executable: Path, tflite_bytes: bytes, inputs: np.ndarray) -> np.ndarray:
    plan = plan_model(tflite_bytes, "model")
    batch = _as_batch(inputs, plan.input.num_elements)
    with tempfile.TemporaryDirectory() as tmp:
        in_path, out_path = Path(tmp) / "inputs.bin", Path(tmp) / "outputs.bin"
        in_path.write_bytes(batch.tobytes())
        proc = subprocess.run([str(executable), str(in_path), str(out_path)], capture_output=True, text=True)
        if proc.returncode != 0:
            raise TinydriftError(f"{executable.name} failed ({proc.returncode}):\n{proc.stderr}")
        outputs = np.frombuffer(out_path.read_bytes(), dtype=np.dtype(plan.output.dtype))
    return outputs.reshape(len(batch), plan.output.num_elements)
