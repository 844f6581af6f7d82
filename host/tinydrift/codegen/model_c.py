"""Generate C for an int8 .tflite model: weights and precomputed requantization parameters
as `static const` data, one kernel call per operator, and one statically planned arena.

    header, source = generate_model_c(tflite_bytes, "kws")
    write_model_c(tflite_bytes, "kws", "models/kws/")   # td_model_kws.h / td_model_kws.c

The generated API (name-prefixed, so several models can live in one firmware):

    #define TD_KWS_INPUT_SIZE ... _OUTPUT_SIZE, _ARENA_BYTES, _MACS,
            _INPUT_SCALE, _INPUT_ZERO_POINT, _OUTPUT_SCALE, _OUTPUT_ZERO_POINT
    int8_t *td_kws_input(void);         write the input here, then
    int td_kws_invoke(void);            0 on success;
    const int8_t *td_kws_output(void);  read the output here.

The kernels are firmware/lib/tinydrift/src/kernels/ (compile with that src/ directory on the
include path). The input buffer is kept intact by td_<name>_invoke (the drift monitor reads
the features after inference) unless `preserve_input=False`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tinydrift import atomic
from tinydrift.errors import TinydriftError
from tinydrift.modeldir import C_NAME
from tinydrift.codegen.model_arena import Buffer, plan_arena
from tinydrift.codegen.model_lowering import Alias, ConstArg, ConstArray, KernelCall, TensorArg, lower
from tinydrift.codegen.tflite_graph import Graph, read_tflite

ARENA_ALIGNMENT = 16
_VALUES_PER_LINE = {"int8_t": 20, "int32_t": 8}


@dataclass
class ModelPlan:
    """Everything decided about a model before any C is written."""

    name: str
    graph: Graph
    steps: list[KernelCall | Alias]
    root: dict[int, int]  # tensor -> the tensor whose bytes it uses (aliases resolved)
    offsets: dict[int, int]  # root tensor -> arena offset
    arena_bytes: int
    macs: int
    preserve_input: bool = True

    @property
    def input(self):
        return self.graph.tensors[self.graph.inputs[0]]

    @property
    def output(self):
        return self.graph.tensors[self.graph.outputs[0]]


def check_name(name: str) -> str:
    if not (isinstance(name, str) and C_NAME.fullmatch(name)):
        raise TinydriftError(
            f"model name '{name}' is not usable in C identifiers: use lower-case letters, digits and '_', "
            "starting with a letter"
        )
    return name


def plan_model(tflite_bytes: bytes, name: str, *, preserve_input: bool = True, source: str = "model") -> ModelPlan:
    """Read, check and lower the model, and plan its arena."""
    check_name(name)
    graph = read_tflite(tflite_bytes, source)
    if graph.subgraph_count != 1:
        raise TinydriftError(f"{source} has {graph.subgraph_count} subgraphs; tinydrift runs single-graph models")
    steps = lower(graph)  # refuses unsupported ops by name, before anything else
    for role, indices in (("input", graph.inputs), ("output", graph.outputs)):
        if len(indices) != 1:
            raise TinydriftError(f"{source} has {len(indices)} {role}s; tinydrift's model API takes exactly one")
        tensor = graph.tensors[indices[0]]
        if tensor.dtype != "int8" or tensor.quantization is None:
            raise TinydriftError(
                f"{source}: model {role} '{tensor.name}' is {tensor.dtype}; convert with inference_{role}_type=tf.int8"
            )
        if tensor.is_constant:
            raise TinydriftError(f"{source}: model {role} '{tensor.name}' is a constant")

    root = _resolve_aliases(graph, steps)
    buffers = _buffers(graph, steps, root, preserve_input)
    offsets, arena_bytes = plan_arena(buffers, ARENA_ALIGNMENT)
    macs = sum(step.macs for step in steps if isinstance(step, KernelCall))
    return ModelPlan(name, graph, steps, root, offsets, arena_bytes, macs, preserve_input)


def _resolve_aliases(graph: Graph, steps) -> dict[int, int]:
    root = {index: index for index in range(len(graph.tensors))}
    for step in steps:
        if isinstance(step, Alias):
            root[step.output] = root[step.input]
    return root


def _buffers(graph: Graph, steps, root: dict[int, int], preserve_input: bool) -> list[Buffer]:
    """One buffer per group of tensors sharing bytes, alive from its first write to its last read."""
    first: dict[int, int] = {}
    last: dict[int, int] = {}

    def touch(tensor_index: int, step: int) -> None:
        key = root[tensor_index]
        if graph.tensors[key].is_constant:
            return  # constants live in flash
        first[key] = min(first.get(key, step), step)
        last[key] = max(last.get(key, step), step)

    end = len(steps)
    for tensor_index in graph.inputs:
        touch(tensor_index, 0)
        if preserve_input:
            touch(tensor_index, end)
    for step_index, step in enumerate(steps):
        if isinstance(step, Alias):
            touch(step.input, step_index)
            touch(step.output, step_index)
            continue
        for arg in step.args:
            if isinstance(arg, TensorArg):
                touch(arg.index, step_index)
    for tensor_index in graph.outputs:
        touch(tensor_index, end)
    return [Buffer(key, graph.tensors[key].nbytes, first[key], last[key]) for key in sorted(first)]


def generate_model_c(tflite_bytes: bytes, name: str, *, preserve_input: bool = True) -> tuple[str, str]:
    """Return (header_text, source_text) for the model; the source includes
    `td_model_<name>.h` and `kernels/td_kernels_select.h`."""
    plan = plan_model(tflite_bytes, name, preserve_input=preserve_input)
    digest = hashlib.sha256(bytes(tflite_bytes)).hexdigest()[:16]
    return _header(plan, digest), _source(plan, digest)


def write_model_c(tflite_bytes: bytes, name: str, out_dir: str | Path, *, preserve_input: bool = True) -> tuple[Path, Path]:
    """Write td_model_<name>.h and .c into out_dir (atomically); return their paths."""
    header, source = generate_model_c(tflite_bytes, name, preserve_input=preserve_input)
    out_dir = Path(out_dir)
    header_path = out_dir / f"td_model_{name}.h"
    source_path = out_dir / f"td_model_{name}.c"
    atomic.write_text(header_path, header)
    atomic.write_text(source_path, source)
    return header_path, source_path


def _c_float(value: float) -> str:
    text = f"{float(np.float32(value)):.9g}"  # 9 significant digits round-trip a float32
    if not any(c in text for c in ".en"):
        text += ".0"
    return f"{text}f"


def _header(plan: ModelPlan, digest: str) -> str:
    upper = plan.name.upper()
    inp, out = plan.input, plan.output
    guard = f"TD_MODEL_{upper}_H"
    input_note = (
        f"td_{plan.name}_invoke() leaves it intact"
        if plan.preserve_input
        else f"td_{plan.name}_invoke() overwrites it"
    )
    return f"""/* Generated by tinydrift (tinydrift.codegen.model_c) from a .tflite model
 * (sha256 {digest}...): do not edit, generate again.
 *
 * Input  '{inp.name}' {list(inp.shape)} int8, output '{out.name}' {list(out.shape)} int8.
 * Usage: fill td_{plan.name}_input(), call td_{plan.name}_invoke(), read td_{plan.name}_output().
 */
#ifndef {guard}
#define {guard}

#include <stdint.h>

#ifdef __cplusplus
extern "C" {{
#endif

#define TD_{upper}_INPUT_SIZE {inp.num_elements}
#define TD_{upper}_OUTPUT_SIZE {out.num_elements}
#define TD_{upper}_ARENA_BYTES {plan.arena_bytes}
#define TD_{upper}_MACS {plan.macs}
#define TD_{upper}_INPUT_SCALE {_c_float(inp.quantization.scale)}
#define TD_{upper}_INPUT_ZERO_POINT ({inp.quantization.zero_point})
#define TD_{upper}_OUTPUT_SCALE {_c_float(out.quantization.scale)}
#define TD_{upper}_OUTPUT_ZERO_POINT ({out.quantization.zero_point})

/* The input tensor (TD_{upper}_INPUT_SIZE values) inside the arena; {input_note}. */
int8_t *td_{plan.name}_input(void);

/* The output tensor (TD_{upper}_OUTPUT_SIZE values), valid after td_{plan.name}_invoke(). */
const int8_t *td_{plan.name}_output(void);

/* Runs the model on the input; returns 0 on success. */
int td_{plan.name}_invoke(void);

#ifdef __cplusplus
}}
#endif

#endif /* {guard} */
"""


def _format_array(array: ConstArray) -> str:
    values = np.asarray(array.values).reshape(-1)
    per_line = _VALUES_PER_LINE[array.ctype]
    lines = []
    for start in range(0, len(values), per_line):
        lines.append("    " + ", ".join(_c_int(int(v), array.ctype) for v in values[start : start + per_line]) + ",")
    attribute = " __attribute__((aligned(4)))" if array.ctype == "int8_t" else ""
    body = "\n".join(lines) if lines else "    0,"
    return f"static const {array.ctype} {array.name}[{max(len(values), 1)}]{attribute} = {{\n{body}\n}};\n"


def _c_int(value: int, ctype: str = "int32_t") -> str:
    if ctype == "int32_t" and value == -(1 << 31):
        return "INT32_MIN"  # -2147483648 is not an int literal in C
    return str(value)


def _c_value(value) -> str:
    if isinstance(value, ConstArg):
        return value.name
    if isinstance(value, (list, tuple)):
        return "{" + ", ".join(_c_int(int(v)) for v in value) + "}"
    return _c_int(int(value))


def _source(plan: ModelPlan, digest: str) -> str:
    graph, name = plan.graph, plan.name
    constant_tensors: dict[int, str] = {}  # graph constants passed to kernels as tensors

    def tensor_expr(index: int) -> str:
        key = plan.root[index]
        tensor = graph.tensors[key]
        if tensor.is_constant:
            if tensor.dtype != "int8":
                raise TinydriftError(f"constant tensor '{tensor.name}' is {tensor.dtype}, not int8")
            constant_tensors.setdefault(key, f"tensor{key}_data")
            return constant_tensors[key]
        return f"(arena + {plan.offsets[key]})"

    data_blocks: list[str] = []
    param_blocks: list[str] = []
    calls: list[str] = []
    for step in plan.steps:
        op = step.op
        out_tensor = graph.tensors[op.outputs[0]]
        comment = f"/* op {op.index} {op.opcode} -> '{out_tensor.name}' {list(out_tensor.shape)} */"
        if isinstance(step, Alias):
            calls.append(f"    {comment}\n    /* shares the bytes of '{graph.tensors[step.input].name}': no code */")
            continue
        for array in step.arrays:
            data_blocks.append(_format_array(array))
        fields = ",\n".join(f"    .{key} = {_c_value(value)}" for key, value in step.params.items())
        param_blocks.append(f"static const {step.params_type} op{op.index}_params = {{\n{fields},\n}};\n")
        args = []
        for arg in step.args:
            args.append(tensor_expr(arg.index) if isinstance(arg, TensorArg) else arg.name)
        calls.append(f"    {comment}\n    {step.function}(&op{op.index}_params, {', '.join(args)});")

    for key, array_name in constant_tensors.items():
        data_blocks.append(_format_array(ConstArray(array_name, "int8_t", graph.tensors[key].data)))

    input_expr = tensor_expr(graph.inputs[0])
    output_expr = tensor_expr(graph.outputs[0])
    layout = "\n".join(
        f" *   [{plan.offsets[key]:6d}, {plan.offsets[key] + graph.tensors[key].nbytes:6d}) '{graph.tensors[key].name}'"
        for key in sorted(plan.offsets, key=lambda k: plan.offsets[k])
    )
    return f"""/* Generated by tinydrift (tinydrift.codegen.model_c) from a .tflite model
 * (sha256 {digest}...): do not edit, generate again.
 *
 * {len(graph.operators)} operators, {plan.macs} multiply-accumulates per inference.
 * Arena of {plan.arena_bytes} bytes (offsets, planned statically):
{layout}
 */
#include "td_model_{name}.h"

#include <stddef.h>

/* td_kernels_select.h picks the kernels: the optimized variants where TD_KERNELS_OPTIMIZED
 * (default: on a core with the DSP extension), the reference kernels otherwise. */
#include "kernels/td_kernels_select.h"

static int8_t arena[{max(plan.arena_bytes, ARENA_ALIGNMENT)}] __attribute__((aligned({ARENA_ALIGNMENT})));

{chr(10).join(data_blocks)}
{chr(10).join(param_blocks)}
int8_t *td_{name}_input(void)
{{
    return {input_expr};
}}

const int8_t *td_{name}_output(void)
{{
    return {output_expr};
}}

int td_{name}_invoke(void)
{{
{chr(10).join(calls)}
    return 0;
}}
"""
