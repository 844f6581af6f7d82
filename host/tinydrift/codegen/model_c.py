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

A model whose output is uint8 (microWakeWord's probability) gets `const uint8_t
*td_<name>_output(void)`.

Streaming models (resource variables set up by a CALL_ONCE init subgraph, see
model_state.py) also get

    #define TD_KWS_STATE_BYTES ...      their variables, static buffers outside the arena
    void td_kws_reset(void);            back to the initial state (the init subgraph's
                                        values); td_kws_invoke() runs it before its first
                                        inference, as TFLite Micro runs CALL_ONCE.

Their state is carried from one td_<name>_invoke() to the next; the arena only holds what
one invoke needs. A READ_VARIABLE whose tensor is used up before the variable is assigned
again reads the variable's buffer in place; other reads and every ASSIGN_VARIABLE copy.

The kernels are firmware/lib/tinydrift/src/kernels/ (compile with that src/ directory on the
include path). A kernel whose contract allows it (model_lowering.InPlace) writes its output
over the input it reads last, where that makes the arena smaller; the generated C says so
at the call. The input buffer is kept intact by td_<name>_invoke (the drift monitor reads
the features after inference) unless `preserve_input=False`.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from tinydrift import atomic
from tinydrift.errors import TinydriftError
from tinydrift.modeldir import C_NAME
from tinydrift.codegen.model_arena import Buffer, plan_arena
from tinydrift.codegen.model_lowering import (
    Alias,
    ConstArg,
    ConstArray,
    Folded,
    KernelCall,
    StateAssign,
    StateRead,
    Step,
    TensorArg,
    TensorListArg,
    lower,
    unsupported_op,
)
from tinydrift.codegen.model_state import VARIABLE_OPS, ModelState, read_state
from tinydrift.codegen.tflite_graph import Graph, read_tflite

ARENA_ALIGNMENT = 16
VIEW_ALIGNMENT = 4  # a view starts on a word: the optimized kernels load activations a word at a time
_C_TYPES = {"int8": "int8_t", "uint8": "uint8_t"}
_VALUES_PER_LINE = {"int8_t": 20, "int32_t": 8, "uint32_t": 8}


@dataclass
class ModelPlan:
    """Everything decided about a model before any C is written."""

    name: str
    graph: Graph
    steps: list[Step]
    root: dict[int, int]  # tensor -> the tensor whose bytes it uses (aliases resolved)
    offsets: dict[int, int]  # root tensor -> arena offset
    arena_bytes: int
    macs: int
    preserve_input: bool = True
    state: ModelState | None = None  # a streaming model's resource variables
    in_state: dict[int, int] = field(default_factory=dict)  # root tensor -> variable it reads in place
    buffers: list[Buffer] = field(default_factory=list)  # what the arena was planned from
    overlays: dict[int, int] = field(default_factory=dict)  # root tensor -> the input root it overwrites in place
    views: set[int] = field(default_factory=set)  # overlays that are views (contiguous slices): no code

    @property
    def state_bytes(self) -> int:
        return self.state.nbytes if self.state is not None else 0

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
            "starting with a letter (give one with --name, e.g. --name my_model)"
        )
    return name


def plan_model(tflite_bytes: bytes, name: str, *, preserve_input: bool = True, source: str = "model") -> ModelPlan:
    """Read, check and lower the model, and plan its arena."""
    check_name(name)
    graph = read_tflite(tflite_bytes, source)
    try:
        if unsupported_op(graph) is not None:
            lower(graph)  # refuses the unsupported op by name, before anything else
        stateful = graph.subgraph_count > 1 or any(op.opcode in VARIABLE_OPS for op in graph.operators)
        state = read_state(graph, source) if stateful else None
        steps = lower(graph, state)
    except TinydriftError as exc:
        message = str(exc)
        raise TinydriftError(message if message.startswith(source) else f"{source}: {message}") from None
    for role, indices in (("input", graph.inputs), ("output", graph.outputs)):
        if len(indices) != 1:
            raise TinydriftError(f"{source} has {len(indices)} {role}s; tinydrift's model API takes exactly one")
        tensor = graph.tensors[indices[0]]
        allowed = ("int8", "uint8") if role == "output" else ("int8",)
        if tensor.dtype not in allowed or tensor.quantization is None:
            raise TinydriftError(
                f"{source}: model {role} '{tensor.name}' is {tensor.dtype}; convert with inference_{role}_type=tf.int8"
            )
        if tensor.is_constant:
            raise TinydriftError(f"{source}: model {role} '{tensor.name}' is a constant")

    root = _resolve_aliases(graph, steps)
    in_state = _reads_in_place(graph, steps, root)
    separate = _buffers(graph, steps, root, preserve_input, in_state)
    buffers, offsets, arena_bytes = _plan_with_in_place(separate, _in_place_candidates(steps, root, separate))
    overlays = {b.key: b.anchor for b in buffers if b.anchor is not None}
    macs = sum(step.macs for step in steps if isinstance(step, KernelCall))
    return ModelPlan(name, graph, steps, root, offsets, arena_bytes, macs, preserve_input, state, in_state,
                     buffers, overlays, {b.key for b in buffers if b.view})


def _resolve_aliases(graph: Graph, steps) -> dict[int, int]:
    root = {index: index for index in range(len(graph.tensors))}
    for step in steps:
        if isinstance(step, Alias):
            root[step.output] = root[step.input]
    return root


def _step_tensors(step: Step) -> list[int]:
    """The graph tensors a step reads or writes."""
    if isinstance(step, Alias):
        return [step.input, step.output]
    if isinstance(step, StateRead):
        return [step.output]
    if isinstance(step, StateAssign):
        return [step.value]
    if isinstance(step, Folded):
        return []
    tensors: list[int] = []
    for arg in step.args:
        if isinstance(arg, TensorArg):
            tensors.append(arg.index)
        elif isinstance(arg, TensorListArg):
            tensors.extend(arg.indices)
    return tensors


def _reads_in_place(graph: Graph, steps: list[Step], root: dict[int, int]) -> dict[int, int]:
    """READ_VARIABLE outputs that can be the variable's own bytes (root tensor -> variable
    number): every use of the tensor comes before the next ASSIGN_VARIABLE of that
    variable, and it is not the model's input or output."""
    uses: dict[int, list[int]] = {}
    assigns: dict[int, list[int]] = {}
    for step_index, step in enumerate(steps):
        for tensor_index in _step_tensors(step):
            uses.setdefault(root[tensor_index], []).append(step_index)
        if isinstance(step, StateAssign):
            assigns.setdefault(step.variable, []).append(step_index)
    boundary = {root[i] for i in (*graph.inputs, *graph.outputs)}
    in_place: dict[int, int] = {}
    for step_index, step in enumerate(steps):
        if not isinstance(step, StateRead) or root[step.output] in boundary or root[step.output] in in_place:
            continue
        next_assign = min((a for a in assigns.get(step.variable, []) if a > step_index), default=len(steps))
        if max(uses[root[step.output]]) < next_assign:
            in_place[root[step.output]] = step.variable
    return in_place


def _buffers(graph: Graph, steps, root: dict[int, int], preserve_input: bool, in_state: dict[int, int]) -> list[Buffer]:
    """One buffer per group of tensors sharing bytes, alive from its first write to its last read."""
    first: dict[int, int] = {}
    last: dict[int, int] = {}

    def touch(tensor_index: int, step: int) -> None:
        key = root[tensor_index]
        if graph.tensors[key].is_constant or key in in_state:
            return  # constants live in flash, variables in their own static buffers
        first[key] = min(first.get(key, step), step)
        last[key] = max(last.get(key, step), step)

    end = len(steps)
    for tensor_index in graph.inputs:
        touch(tensor_index, 0)
        if preserve_input:
            touch(tensor_index, end)
    for step_index, step in enumerate(steps):
        for tensor_index in _step_tensors(step):
            touch(tensor_index, step_index)
    for tensor_index in graph.outputs:
        touch(tensor_index, end)
    return [Buffer(key, graph.tensors[key].nbytes, first[key], last[key]) for key in sorted(first)]


def _in_place_candidates(steps: list[Step], root: dict[int, int], buffers: list[Buffer]) -> list[Buffer]:
    """Each output of a kernel that can run in place (KernelCall.in_place) whose input is read
    for the last time by that kernel, tied to that input: it starts the kernel's lead before
    the input, rounded up to a multiple of its granule and of the arena's alignment."""
    by_key = {buffer.key: buffer for buffer in buffers}
    calls = [(index, step) for index, step in enumerate(steps) if isinstance(step, KernelCall) and step.in_place]
    views = []
    for step_index, step in calls:
        source, target = root[step.in_place.input], root[step.op.outputs[0]]
        if (step.in_place.view and source in by_key and target in by_key and by_key[target].first == step_index
                and step.in_place.lead % VIEW_ALIGNMENT == 0):
            views.append(replace(by_key[target], anchor=source, anchor_offset=-step.in_place.lead, view=True))
    shown = {view.anchor for view in views} | {view.key for view in views}
    candidates = []
    for step_index, step in calls:
        source, target = root[step.in_place.input], root[step.op.outputs[0]]
        before, after = by_key.get(source), by_key.get(target)
        if step.in_place.view or before is None or after is None:
            continue  # a view (above), or the input is a constant or a variable
        if before.last != step_index or after.first != step_index:
            continue  # the input is read later or kept (the model's input)
        if source in shown:
            continue  # writing over bytes a view (or its source) still shows
        unit = math.lcm(step.in_place.granule, ARENA_ALIGNMENT)
        lead = -(-step.in_place.lead // unit) * unit
        candidates.append(replace(after, anchor=source, anchor_offset=-lead))
    return views + candidates


def _plan_with_in_place(buffers: list[Buffer], candidates: list[Buffer]) -> tuple[list[Buffer], dict[int, int], int]:
    """Which kernels run in place. Tied buffers move as one block, and a chain of ties
    drifts by each kernel's lead: tying everything can make a block wider than the peak,
    while a peak repeated at several operators only falls once every one of them is tied.
    So a local search from no ties and from all of them: toggle one tie at a time (largest
    saving first), keep a removal that shrinks the arena and an addition that does not grow
    it; then drop every tie the arena does not need. The smaller plan wins."""
    untied = {buffer.key: buffer for buffer in buffers}
    order = sorted(candidates, key=lambda b: -min(b.size, untied[b.anchor].size))
    tied = {candidate.key: candidate for candidate in order}

    def plan(ties: set[int]) -> tuple[dict[int, int], int]:
        return plan_arena([tied[key] if key in ties else buffer for key, buffer in untied.items()], ARENA_ALIGNMENT)

    best: tuple[int, set[int], dict[int, int]] | None = None
    for start in (set(), {c.key for c in order}):
        ties = set(start)
        offsets, size = plan(ties)
        changed = True
        while changed:
            changed = False
            for candidate in order:
                trial = ties ^ {candidate.key}
                trial_offsets, trial_size = plan(trial)
                if trial_size < size or (trial_size == size and len(trial) > len(ties)):
                    ties, offsets, size, changed = trial, trial_offsets, trial_size, True
        for candidate in reversed(order):  # keep only the ties that pay: fewer kernels in place
            if candidate.key in ties:
                trial_offsets, trial_size = plan(ties - {candidate.key})
                if trial_size <= size:
                    ties, offsets, size = ties - {candidate.key}, trial_offsets, trial_size
        if best is None or size < best[0]:
            best = (size, ties, offsets)
    size, ties, offsets = best
    return [tied[buffer.key] if buffer.key in ties else buffer for buffer in buffers], offsets, size


def generate_model_c(tflite_bytes: bytes, name: str, *, preserve_input: bool = True) -> tuple[str, str]:
    """Return (header_text, source_text) for the model; the source includes
    `td_model_<name>.h` and `kernels/td_kernels_select.h`."""
    plan = plan_model(tflite_bytes, name, preserve_input=preserve_input)
    digest = hashlib.sha256(bytes(tflite_bytes)).hexdigest()[:16]
    return _header(plan, digest), _source(plan, digest)


def write_model_c(tflite_bytes: bytes, name: str, out_dir: str | Path, *, preserve_input: bool = True) -> tuple[Path, Path]:
    """Write td_model_<name>.h and .c into out_dir, both or neither; return their paths."""
    header, source = generate_model_c(tflite_bytes, name, preserve_input=preserve_input)
    out_dir = Path(out_dir)
    header_path = out_dir / f"td_model_{name}.h"
    source_path = out_dir / f"td_model_{name}.c"
    with atomic.all_or_nothing():  # a header without its source once stayed after a failed write
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
    out_ctype = _C_TYPES[out.dtype]
    state_api = ""
    if plan.state is not None:
        state_api = f"""
/* The streaming state: {len(plan.state.variables)} resource variables in static buffers of
 * TD_{upper}_STATE_BYTES bytes in all (outside the arena), carried from one
 * td_{plan.name}_invoke() to the next. Resets them to the model's initial values; the first
 * td_{plan.name}_invoke() does so itself. */
void td_{plan.name}_reset(void);
"""
    # STREAMING: the firmware app reads it to run the model as a streaming detector (td_app.h).
    state_define = (f"#define TD_{upper}_STREAMING 1\n#define TD_{upper}_STATE_BYTES {plan.state_bytes}\n"
                    if plan.state is not None else "")
    return f"""/* Generated by tinydrift (tinydrift.codegen.model_c) from a .tflite model
 * (sha256 {digest}...): do not edit, generate again.
 *
 * Input  '{inp.name}' {list(inp.shape)} int8, output '{out.name}' {list(out.shape)} {out.dtype}.
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
{state_define}#define TD_{upper}_INPUT_SCALE {_c_float(inp.quantization.scale)}
#define TD_{upper}_INPUT_ZERO_POINT ({inp.quantization.zero_point})
#define TD_{upper}_OUTPUT_SCALE {_c_float(out.quantization.scale)}
#define TD_{upper}_OUTPUT_ZERO_POINT ({out.quantization.zero_point})

/* The input tensor (TD_{upper}_INPUT_SIZE values) inside the arena; {input_note}. */
int8_t *td_{plan.name}_input(void);

/* The output tensor (TD_{upper}_OUTPUT_SIZE values), valid after td_{plan.name}_invoke(). */
const {out_ctype} *td_{plan.name}_output(void);

/* Runs the model on the input; returns 0 on success. */
int td_{plan.name}_invoke(void);
{state_api}
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
    if ctype == "uint32_t":
        return f"0x{value:08x}u"
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
    variables = {variable.number: variable for variable in (plan.state.variables if plan.state else [])}

    def tensor_expr(index: int) -> str:
        key = plan.root[index]
        tensor = graph.tensors[key]
        if tensor.is_constant:
            if tensor.dtype != "int8":
                raise TinydriftError(f"constant tensor '{tensor.name}' is {tensor.dtype}, not int8")
            constant_tensors.setdefault(key, f"tensor{key}_data")
            return constant_tensors[key]
        if key in plan.in_state:
            return variables[plan.in_state[key]].c_name
        return f"(arena + {plan.offsets[key]})"

    def typed_expr(index: int) -> str:
        expression = tensor_expr(index)
        ctype = _C_TYPES.get(graph.tensors[index].dtype, "int8_t")
        return expression if ctype == "int8_t" else f"({ctype} *){expression}"

    def arg_expr(arg) -> str:
        if isinstance(arg, TensorArg):
            return typed_expr(arg.index)
        if isinstance(arg, TensorListArg):
            pointer = "int8_t *const[]" if arg.writable else "const int8_t *const[]"
            return f"({pointer}){{{', '.join(tensor_expr(i) for i in arg.indices)}}}"
        return arg.name

    data_blocks: list[str] = []
    param_blocks: list[str] = []
    calls: list[str] = []
    for step in plan.steps:
        op = step.op
        if isinstance(step, Folded):
            calls.append(f"    {_folded_comment(plan, op)}")
            continue
        calls.append(f"    {_step_comment(graph, op)}")
        if isinstance(step, Alias):
            calls.append(f"    /* shares the bytes of '{graph.tensors[step.input].name}': no code */")
            continue
        if isinstance(step, StateRead):
            variable = variables[step.variable]
            if plan.root[step.output] in plan.in_state:
                calls.append(f"    /* reads {variable.c_name} in place: no code */")
            else:
                calls.append(f"    memcpy({tensor_expr(step.output)}, {variable.c_name}, {variable.nbytes});")
            continue
        if isinstance(step, StateAssign):
            variable = variables[step.variable]
            calls[-1] = f"    /* op {op.index} ASSIGN_VARIABLE '{variable.name}' <- '{graph.tensors[step.value].name}' */"
            source_expr = tensor_expr(step.value)
            if source_expr == variable.c_name:
                calls.append("    /* assigns the variable its own bytes: no code */")
            else:
                calls.append(f"    memcpy({variable.c_name}, {source_expr}, {variable.nbytes});")
            continue
        data_blocks.extend(_arrays_blocks(step))
        overlaid = plan.overlays.get(plan.root[op.outputs[0]]) if op.outputs else None
        if overlaid is not None and plan.root[op.outputs[0]] in plan.views:
            start = plan.offsets[plan.root[op.outputs[0]]] - plan.offsets[overlaid]
            calls.append(f"    /* a view of '{graph.tensors[overlaid].name}' from byte {start}: no code */")
            continue
        if overlaid is not None:
            lead = plan.offsets[overlaid] - plan.offsets[plan.root[op.outputs[0]]]
            calls.append(f"    /* in place: the output overwrites '{graph.tensors[overlaid].name}', "
                         f"starting {lead} bytes before it */")
        fields = ",\n".join(f"    .{key} = {_c_value(value)}" for key, value in step.params.items())
        param_blocks.append(f"static const {step.params_type} op{op.index}_params = {{\n{fields},\n}};\n")

        def call_line(call: KernelCall) -> str:
            return f"    {call.function}(&op{op.index}_params, {', '.join(arg_expr(arg) for arg in call.args)});"

        if step.optimized is None:
            calls.append(call_line(step))
        else:
            calls += ["#if TD_KERNELS_OPTIMIZED", call_line(step.optimized), "#else", call_line(step), "#endif"]

    for key, array_name in constant_tensors.items():
        data_blocks.append(_format_array(ConstArray(array_name, "int8_t", graph.tensors[key].data)))

    input_expr = tensor_expr(graph.inputs[0])
    output_tensor = graph.tensors[graph.outputs[0]]
    out_ctype = _C_TYPES[output_tensor.dtype]
    output_expr = tensor_expr(graph.outputs[0])
    if out_ctype != "int8_t":
        output_expr = f"(const {out_ctype} *){output_expr}"
    layout = "\n".join(
        f" *   [{plan.offsets[key]:6d}, {plan.offsets[key] + graph.tensors[key].nbytes:6d}) '{graph.tensors[key].name}'"
        for key in sorted(plan.offsets, key=lambda k: plan.offsets[k])
    )
    state_comment, state_blocks, state_includes, first_reset = "", "", "", ""
    if plan.state is not None:
        state_comment = f"""
 * State of {plan.state_bytes} bytes (static, kept between invokes):
""" + "\n".join(f" *   {v.c_name}[{v.nbytes}] '{v.name}'" for v in plan.state.variables)
        state_blocks, reset_body = _state_blocks(plan)
        data_blocks.extend(state_blocks)
        state_includes = "#include <string.h>\n"
        first_reset = f"""    if (!state_ready) {{ /* CALL_ONCE: the initial state before the first inference */
        td_{name}_reset();
    }}
"""
        state_blocks = f"""
void td_{name}_reset(void)
{{
{reset_body}
    state_ready = 1;
}}
"""
    return f"""/* Generated by tinydrift (tinydrift.codegen.model_c) from a .tflite model
 * (sha256 {digest}...): do not edit, generate again.
 *
 * {len(graph.operators)} operators, {plan.macs} multiply-accumulates per inference.
 * Arena of {plan.arena_bytes} bytes (offsets, planned statically):
{layout}{state_comment}
 */
#include "td_model_{name}.h"

#include <stddef.h>
{state_includes}
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

const {out_ctype} *td_{name}_output(void)
{{
    return {output_expr};
}}
{state_blocks}
int td_{name}_invoke(void)
{{
{first_reset}{chr(10).join(calls)}
    return 0;
}}
"""


def _arrays_blocks(step: KernelCall) -> list[str]:
    """The step's const arrays; with an optimized variant (its own weight layout), the
    arrays only one build reads under TD_KERNELS_OPTIMIZED or its negation."""
    if step.optimized is None:
        return [_format_array(array) for array in step.arrays]
    reference = {array.name for array in step.arrays}
    optimized = {array.name for array in step.optimized.arrays}
    blocks = [_format_array(array) for array in step.arrays if array.name in optimized]
    blocks.append("#if TD_KERNELS_OPTIMIZED")
    blocks += [_format_array(array) for array in step.optimized.arrays if array.name not in reference]
    blocks.append("#else")
    blocks += [_format_array(array) for array in step.arrays if array.name not in optimized]
    blocks.append("#endif")
    return blocks


def _step_comment(graph: Graph, op) -> str:
    if op.outputs:
        tensor = graph.tensors[op.outputs[0]]
        return f"/* op {op.index} {op.opcode} -> '{tensor.name}' {list(tensor.shape)} */"
    return f"/* op {op.index} {op.opcode} */"


def _folded_comment(plan: ModelPlan, op) -> str:
    if op.opcode == "CALL_ONCE":
        return (f"/* op {op.index} CALL_ONCE: subgraph {op.options.get('init_subgraph_index')} is folded into "
                f"td_{plan.name}_reset(): no code */")
    variable = plan.state.handles.get(op.outputs[0]) if plan.state is not None and op.outputs else None
    target = variable.c_name if variable is not None else "unused"
    return f"/* op {op.index} {op.opcode} '{plan.graph.tensors[op.outputs[0]].name}': {target}, no code */"


def _state_blocks(plan: ModelPlan) -> tuple[list[str], str]:
    """The variables' static buffers, the const initial values that are not one repeated
    byte, and the reset function's body."""
    blocks = ["static int state_ready; /* 0 until the first reset */\n"]
    body = []
    for variable in plan.state.variables:
        blocks.append(
            f"static int8_t {variable.c_name}[{variable.nbytes}] __attribute__((aligned({ARENA_ALIGNMENT})));\n"
        )
        values = variable.initial
        if np.all(values == values[0]):
            body.append(f"    memset({variable.c_name}, {int(values[0])}, sizeof {variable.c_name});")
        else:
            initial_name = f"{variable.c_name}_initial"
            blocks.append(_format_array(ConstArray(initial_name, "int8_t", values)))
            body.append(f"    memcpy({variable.c_name}, {initial_name}, sizeof {variable.c_name});")
    return blocks, "\n".join(body)
