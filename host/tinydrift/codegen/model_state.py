"""A streaming model's state: the resource variables of a .tflite and their initial values.

Streaming models (microWakeWord's, for one) keep what they have heard in resource
variables: VAR_HANDLE names a variable, READ_VARIABLE copies it into a tensor,
ASSIGN_VARIABLE copies a tensor into it, and a CALL_ONCE operator runs an init subgraph
(made of VAR_HANDLE and ASSIGN_VARIABLE of constants) before the first inference. The
generator folds that init subgraph into the generated reset function, so the only
subgraphs tinydrift accepts besides the main one are such CALL_ONCE initialisers.

As in TFLite Micro, a variable is one buffer named by (container, shared name), as large
as the first tensor assigned to it; before any assignment it holds that tensor's zero
point.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from tinydrift.errors import TinydriftError
from tinydrift.codegen.tflite_graph import Graph, Operator, Tensor

VARIABLE_OPS = ("VAR_HANDLE", "READ_VARIABLE", "ASSIGN_VARIABLE", "CALL_ONCE")
# Option fields through which an operator runs another subgraph (IF, WHILE, CALL_ONCE, ...).
_SUBGRAPH_OPTIONS = ("init_subgraph_index", "then_subgraph_index", "else_subgraph_index",
                     "cond_subgraph_index", "body_subgraph_index", "subgraph", "decomposition_subgraph_index")


@dataclass
class Variable:
    """One resource variable: a static buffer of the generated model."""

    number: int  # in order of first appearance in the main graph
    name: str  # the shared name (container-qualified when it has one)
    nbytes: int
    initial: np.ndarray  # int8 bytes the reset writes

    @property
    def c_name(self) -> str:
        return f"state{self.number}_" + re.sub(r"[^0-9a-zA-Z]+", "_", self.name).strip("_").lower()


@dataclass
class ModelState:
    variables: list[Variable]
    handles: dict[int, Variable]  # main-graph resource tensor -> its variable

    @property
    def nbytes(self) -> int:
        return sum(variable.nbytes for variable in self.variables)


def _subgraph_users(graph: Graph) -> dict[int, tuple[Operator, str]]:
    """Subgraph index -> (the main-graph operator that runs it, the option naming it)."""
    users = {}
    for op in graph.operators:
        for key in _SUBGRAPH_OPTIONS:
            value = op.options.get(key)
            if isinstance(value, int) and not isinstance(value, bool):
                users.setdefault(value, (op, key))
    return users


def _variable_key(op: Operator) -> str:
    container = op.options.get("container") or ""
    shared_name = op.options.get("shared_name") or ""
    return f"{container}/{shared_name}" if container else shared_name


def _int8_variable_tensor(graph: Graph, tensor: Tensor, op: Operator, source: str) -> Tensor:
    if tensor.dtype != "int8":
        raise TinydriftError(
            f"{source}: {graph.describe(op)} moves a {tensor.dtype} tensor '{tensor.name}' through a resource "
            "variable; tinydrift's streaming state is int8"
        )
    return tensor


def read_state(graph: Graph, source: str = "model") -> ModelState:
    """The resource variables of the main graph, with the initial values that the CALL_ONCE
    init subgraphs assign; refuses any other use of subgraphs in one line."""
    subgraphs = graph.subgraphs or [graph]
    users = _subgraph_users(graph)
    init_indices = []
    for index in range(1, len(subgraphs)):
        name = f"subgraph {index} ('{subgraphs[index].name}')"
        if index not in users:
            raise TinydriftError(
                f"{source} has {len(subgraphs)} subgraphs and {name} is not run by a CALL_ONCE of the main graph; "
                "tinydrift runs single-graph models and streaming models with CALL_ONCE initialisers"
            )
        op, _ = users[index]
        if op.opcode != "CALL_ONCE":
            raise TinydriftError(
                f"{source}: {graph.describe(op)} runs {name}; tinydrift supports no control flow, only "
                "CALL_ONCE initialisers of resource variables"
            )
        init_indices.append(index)
    for index, (op, _) in users.items():
        if not 0 < index < len(subgraphs):
            raise TinydriftError(f"{source}: {graph.describe(op)} names subgraph {index}, which the model lacks")

    handles: dict[int, str] = {}  # main-graph resource tensor -> variable key
    order: list[str] = []
    for op in graph.operators:
        if op.opcode == "VAR_HANDLE":
            key = _variable_key(op)
            handles[op.outputs[0]] = key
            if key not in order:
                order.append(key)

    def variable_of(g: Graph, op: Operator, g_handles: dict[int, str]) -> str:
        handle = op.inputs[0] if op.inputs else -1
        if handle not in g_handles:
            raise TinydriftError(
                f"{source}: {g.describe(op)} takes a resource that no VAR_HANDLE of its subgraph made; "
                "tinydrift needs every variable named by a VAR_HANDLE"
            )
        return g_handles[handle]

    sizes: dict[str, int] = {}
    defaults: dict[str, int] = {}  # TFLite Micro's fill before any assignment: a zero point

    def note_size(key: str, tensor: Tensor, g: Graph, op: Operator) -> None:
        if key not in sizes:
            sizes[key] = tensor.nbytes
            defaults[key] = tensor.quantization.zero_point if tensor.quantization is not None else 0
        elif sizes[key] != tensor.nbytes:
            raise TinydriftError(
                f"{source}: {g.describe(op)} moves {tensor.nbytes} bytes through variable '{key}', "
                f"which holds {sizes[key]}"
            )

    for op in graph.operators:  # TFLite Micro sizes a variable by its main graph's first assignment
        if op.opcode == "ASSIGN_VARIABLE":
            key = variable_of(graph, op, handles)
            note_size(key, _int8_variable_tensor(graph, graph.tensors[op.inputs[1]], op, source), graph, op)

    initial: dict[str, np.ndarray] = {}
    for index in init_indices:
        init = subgraphs[index]
        init_handles: dict[int, str] = {}
        for op in init.operators:
            where = f"{source}: the CALL_ONCE init subgraph {index} ('{init.name}'), {init.describe(op)}"
            if op.opcode == "VAR_HANDLE":
                key = _variable_key(op)
                init_handles[op.outputs[0]] = key
                continue
            if op.opcode != "ASSIGN_VARIABLE":
                raise TinydriftError(
                    f"{where}: tinydrift folds init subgraphs of VAR_HANDLE and constant ASSIGN_VARIABLE only"
                )
            key = variable_of(init, op, init_handles)
            value = _int8_variable_tensor(init, init.tensors[op.inputs[1]], op, source)
            if not value.is_constant:
                raise TinydriftError(f"{where}: assigns a computed value; tinydrift folds constant initial values only")
            if key not in order:
                continue  # a variable the main graph never touches
            note_size(key, value, init, op)
            initial[key] = value.data.reshape(-1).astype(np.int8)

    for op in graph.operators:
        if op.opcode == "READ_VARIABLE":
            key = variable_of(graph, op, handles)
            output = _int8_variable_tensor(graph, graph.tensors[op.outputs[0]], op, source)
            if key not in sizes:
                raise TinydriftError(
                    f"{source}: {graph.describe(op)} reads variable '{key}', which nothing assigns"
                )
            note_size(key, output, graph, op)

    variables = []
    for number, key in enumerate(k for k in order if k in sizes):
        values = initial.get(key)
        if values is None:
            values = np.full(sizes[key], defaults[key], dtype=np.int8)
        variables.append(Variable(number, key, sizes[key], values))
    by_key = {variable.name: variable for variable in variables}
    return ModelState(variables, {tensor: by_key[key] for tensor, key in handles.items() if key in by_key})
