"""Read a .tflite flatbuffer into plain Python objects: operators, tensors, shapes,
quantization (per-tensor and per-channel), options and constant buffers.

Uses the flatbuffer schema module that the tflite-micro package ships (it imports in a
fraction of a second, where TensorFlow takes seconds), so reading a model needs neither
TensorFlow nor a new dependency.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tinydrift.errors import TinydriftError

TFLITE_IDENTIFIER = b"TFL3"

_NUMPY_DTYPES = {
    "float32": np.float32,
    "float16": np.float16,
    "float64": np.float64,
    "int8": np.int8,
    "uint8": np.uint8,
    "int16": np.int16,
    "uint16": np.uint16,
    "int32": np.int32,
    "uint32": np.uint32,
    "int64": np.int64,
    "uint64": np.uint64,
    "bool": np.bool_,
}

# Option fields whose integer values are enums: shown by name.
_ENUM_OPTIONS = {
    "padding": "Padding",
    "fused_activation_function": "ActivationFunctionType",
    "weights_format": "FullyConnectedOptionsWeightsFormat",
}


def _schema():
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated

    return schema_py_generated


def _enum_names(enum_class) -> dict[int, str]:
    return {value: name for name, value in vars(enum_class).items() if not name.startswith("_")}


def _snake_case(name: str) -> str:
    return re.sub(r"(?<!^)([A-Z])", r"_\1", name).lower()


@dataclass(frozen=True)
class Quantization:
    """Affine quantization: real = scale * (q - zero_point), per tensor or per channel."""

    scales: np.ndarray  # float32, one per channel (or one)
    zero_points: np.ndarray  # int64, as many as scales
    axis: int  # the channel dimension when per channel

    @property
    def per_channel(self) -> bool:
        return len(self.scales) > 1

    @property
    def scale(self) -> float:
        """The single scale of a per-tensor quantization (as the float32 value, widened)."""
        return float(self.scales[0])

    @property
    def zero_point(self) -> int:
        return int(self.zero_points[0])


@dataclass
class Tensor:
    index: int
    name: str
    shape: tuple[int, ...]
    dtype: str  # lower-case TFLite type name: "int8", "float32", "int32", ...
    quantization: Quantization | None
    data: np.ndarray | None = None  # the constant's contents, shaped; None for activations
    is_variable: bool = False

    @property
    def is_constant(self) -> bool:
        return self.data is not None

    @property
    def num_elements(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) if self.shape else 1

    @property
    def nbytes(self) -> int:
        itemsize = np.dtype(_NUMPY_DTYPES[self.dtype]).itemsize if self.dtype in _NUMPY_DTYPES else 1
        return self.num_elements * itemsize


@dataclass
class Operator:
    index: int
    opcode: str  # builtin operator name, e.g. "CONV_2D"; "CUSTOM:<name>" for custom ops
    inputs: tuple[int, ...]  # tensor indices; -1 marks an absent optional input
    outputs: tuple[int, ...]
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class Graph:
    """One subgraph of a model; read_tflite returns the main one (subgraph 0), whose
    `subgraphs` lists every subgraph of the file in order (itself first)."""

    tensors: list[Tensor]
    operators: list[Operator]
    inputs: list[int]
    outputs: list[int]
    subgraph_count: int = 1
    description: str = ""
    name: str = ""
    subgraphs: list["Graph"] = field(default_factory=list, repr=False, compare=False)

    def tensor(self, index: int) -> Tensor | None:
        return None if index < 0 else self.tensors[index]

    def describe(self, op: Operator) -> str:
        """How error messages name an operator: its index, type and first output (its
        first input for ops without outputs, such as ASSIGN_VARIABLE)."""
        if op.outputs:
            return f"op {op.index} {op.opcode} (output '{self.tensors[op.outputs[0]].name}')"
        if op.inputs and op.inputs[0] >= 0:
            return f"op {op.index} {op.opcode} (input '{self.tensors[op.inputs[0]].name}')"
        return f"op {op.index} {op.opcode}"


def _text(value: bytes | str | None, what: str, source: str) -> str:
    """A string of the flatbuffer; invalid UTF-8 means the file was damaged after conversion."""
    if not isinstance(value, bytes):
        return value or ""
    try:
        return value.decode()
    except UnicodeDecodeError:
        raise TinydriftError(f"{source} is a damaged TFLite model ({what} is not UTF-8 text): convert it again") from None


def read_tflite(data: bytes, source: str = "model") -> Graph:
    """Parse a .tflite model; `source` names it in error messages (e.g. its path)."""
    data = bytes(data)
    if len(data) < 8 or data[4:8] != TFLITE_IDENTIFIER:
        raise TinydriftError(f"{source} is not a TFLite model (no 'TFL3' identifier): give a .tflite file")
    schema = _schema()
    try:
        model = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(data, 0))
    except Exception as exc:  # a corrupt flatbuffer raises anything from struct to IndexError
        raise TinydriftError(f"{source} is a damaged TFLite model ({exc}): convert it again") from exc
    if not model.subgraphs:
        raise TinydriftError(f"{source} has no subgraph: convert the model again")

    type_names = {value: name.lower() for value, name in _enum_names(schema.TensorType).items()}
    op_names = _enum_names(schema.BuiltinOperator)
    description = _text(model.description, "description", source)
    subgraphs = [
        _subgraph(model, data, index, schema, type_names, op_names, source) for index in range(len(model.subgraphs))
    ]
    for graph in subgraphs:
        graph.subgraph_count = len(subgraphs)
        graph.description = description
    main = subgraphs[0]
    main.subgraphs = subgraphs
    return main


def _subgraph(model, data: bytes, subgraph_index: int, schema, type_names, op_names, source: str) -> Graph:
    subgraph = model.subgraphs[subgraph_index]
    where = f"subgraph {subgraph_index}'s " if subgraph_index else ""
    tensors = []
    for index, t in enumerate(subgraph.tensors or []):
        dtype = type_names.get(t.type, f"type{t.type}")
        shape = tuple(int(d) for d in (t.shape if t.shape is not None else ()))
        name = _text(t.name, f"{where}tensor {index}'s name", source)
        named = name if len(name) <= 48 else f"{name[:45]}..."
        # A flipped byte in a shape once became C with a kernel of -419,430,397 columns
        # (exit 0): no converter writes a negative size, nor a constant of another size
        if any(d < 0 for d in shape):
            raise TinydriftError(f"{source} is a damaged TFLite model ({where}tensor {index} '{named}' has shape "
                                 f"{list(shape)}): convert it again")
        constant = _constant(model, data, t.buffer, dtype, shape)
        if constant is not None and dtype in _NUMPY_DTYPES and constant.shape != shape:
            raise TinydriftError(f"{source} is a damaged TFLite model ({where}tensor {index} '{named}' holds "
                                 f"{constant.size:,} values for its shape {list(shape)}): convert it again")
        tensors.append(
            Tensor(
                index=index,
                name=name,
                shape=shape,
                dtype=dtype,
                quantization=_quantization(t.quantization),
                data=constant,
                is_variable=bool(t.isVariable),
            )
        )

    operators = []
    for index, op in enumerate(subgraph.operators or []):
        code = model.operatorCodes[op.opcodeIndex]
        builtin = max(code.builtinCode, code.deprecatedBuiltinCode)
        opcode = op_names.get(builtin, f"BUILTIN_{builtin}")
        if opcode == "CUSTOM":
            custom = _text(code.customCode, f"{where}op {index}'s custom code", source)
            opcode = f"CUSTOM:{custom}"
        operators.append(
            Operator(
                index=index,
                opcode=opcode,
                inputs=tuple(int(i) for i in (op.inputs if op.inputs is not None else ())),
                outputs=tuple(int(i) for i in (op.outputs if op.outputs is not None else ())),
                options=_options(schema, op.builtinOptions, f"{where}op {index}'s options", source),
            )
        )

    return Graph(
        tensors=tensors,
        operators=operators,
        inputs=[int(i) for i in (subgraph.inputs if subgraph.inputs is not None else ())],
        outputs=[int(i) for i in (subgraph.outputs if subgraph.outputs is not None else ())],
        name=_text(subgraph.name, f"subgraph {subgraph_index}'s name", source),
    )


def _quantization(q) -> Quantization | None:
    if q is None or q.scale is None or len(q.scale) == 0:
        return None
    scales = np.asarray(q.scale, dtype=np.float32)
    zero_points = np.asarray(q.zeroPoint if q.zeroPoint is not None else np.zeros(len(scales)), dtype=np.int64)
    return Quantization(scales=scales, zero_points=zero_points, axis=int(q.quantizedDimension))


def _constant(model, raw: bytes, buffer_index: int, dtype: str, shape: tuple[int, ...]) -> np.ndarray | None:
    if buffer_index <= 0 or buffer_index >= len(model.buffers):
        return None  # buffer 0 is the empty sentinel: an activation
    buffer = model.buffers[buffer_index]
    if buffer.offset and buffer.offset > 1:  # large models keep data after the flatbuffer
        payload = np.frombuffer(raw[buffer.offset : buffer.offset + buffer.size], dtype=np.uint8)
    elif buffer.data is not None and len(buffer.data) > 0:
        payload = np.asarray(buffer.data, dtype=np.uint8)
    else:
        return None
    if dtype not in _NUMPY_DTYPES:
        return payload.copy()  # packed types (int4...) stay raw bytes
    values = np.frombuffer(payload.tobytes(), dtype=np.dtype(_NUMPY_DTYPES[dtype]).newbyteorder("<"))
    if values.size == int(np.prod(shape, dtype=np.int64)):
        return values.reshape(shape).astype(_NUMPY_DTYPES[dtype])
    return values.astype(_NUMPY_DTYPES[dtype])


def _options(schema, options, what: str, source: str) -> dict[str, Any]:
    if options is None:
        return {}
    result: dict[str, Any] = {}
    for key, value in vars(options).items():
        name = _snake_case(key)
        if name in _ENUM_OPTIONS:
            value = _enum_names(getattr(schema, _ENUM_OPTIONS[name])).get(value, value)
        elif isinstance(value, np.ndarray):
            value = value.tolist()
        elif isinstance(value, bytes):  # VAR_HANDLE's container and shared_name
            value = _text(value, what, source)
        result[name] = value
    return result


def count_macs(model: bytes | Graph) -> int:
    """Multiply-accumulates of one inference: convolutions, depthwise convolutions and
    fully connected layers (pooling, ADD and SOFTMAX do no multiply-accumulate)."""
    graph = model if isinstance(model, Graph) else read_tflite(model)
    total = 0
    for op in graph.operators:
        if op.opcode not in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"):
            continue
        output = graph.tensors[op.outputs[0]]
        weights = graph.tensors[op.inputs[1]]
        if op.opcode == "CONV_2D":
            # every output element sums filter_height * filter_width * filter_input_depth terms
            total += output.num_elements * int(np.prod(weights.shape[1:]))
        elif op.opcode == "DEPTHWISE_CONV_2D":
            total += output.num_elements * weights.shape[1] * weights.shape[2]
        else:
            total += output.num_elements * weights.shape[-1]
    return total
