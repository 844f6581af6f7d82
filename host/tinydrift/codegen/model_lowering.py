"""Turn each operator of a .tflite graph into one int8 kernel call with precomputed
parameters, or refuse it by name.

Every check that TFLite Micro's Prepare() would make, and every parameter it would compute,
happens here at generation time; the C kernels (firmware/lib/tinydrift/src/kernels/) then
only compute. Anything the kernels cannot reproduce bit-exactly raises TinydriftError naming
the operator, its index and its output tensor.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from tinydrift.errors import TinydriftError
from tinydrift.codegen import model_quant as q
from tinydrift.codegen.tflite_graph import Graph, Operator, Tensor

SUPPORTED_OPS = (
    "CONV_2D",
    "DEPTHWISE_CONV_2D",
    "FULLY_CONNECTED",
    "AVERAGE_POOL_2D",
    "MAX_POOL_2D",
    "SOFTMAX",
    "ADD",
    "RESHAPE",
    "SQUEEZE",
    "EXPAND_DIMS",
)
ALIAS_OPS = ("RESHAPE", "SQUEEZE", "EXPAND_DIMS")  # same bytes, new shape: no kernel
SUPPORTED_ACTIVATIONS = ("NONE", "RELU", "RELU6")
FULL_INT8_HINT = (
    "tinydrift runs full-int8 models only: convert with a representative dataset, "
    "supported_ops=[TFLITE_BUILTINS_INT8] and inference_input_type/output_type=tf.int8"
)


@dataclass
class ConstArray:
    """A `static const` array in the generated C (weights, biases, multipliers)."""

    name: str
    ctype: str  # "int8_t" or "int32_t"
    values: np.ndarray


@dataclass(frozen=True)
class TensorArg:
    """A kernel argument that is a graph tensor: resolved to its arena slice or, for a
    constant, to its const array."""

    index: int


@dataclass(frozen=True)
class ConstArg:
    name: str


NULL_ARG = ConstArg("NULL")


@dataclass
class KernelCall:
    op: Operator
    function: str
    params_type: str
    params: dict[str, object]  # field -> int, list of ints, or ConstArg
    args: list[object]  # TensorArg / ConstArg, after the params pointer
    arrays: list[ConstArray] = field(default_factory=list)
    macs: int = 0


@dataclass
class Alias:
    """RESHAPE and friends: `output` is the same bytes as `input`."""

    op: Operator
    input: int
    output: int


class _OpContext:
    """Checks for one operator; every refusal names it."""

    def __init__(self, graph: Graph, op: Operator):
        self.graph = graph
        self.op = op
        self.prefix = f"op{op.index}"

    def fail(self, message: str) -> TinydriftError:
        return TinydriftError(f"{self.graph.describe(self.op)}: {message}")

    def input(self, position: int, role: str, *, optional: bool = False) -> Tensor | None:
        if position >= len(self.op.inputs) or self.op.inputs[position] < 0:
            if optional:
                return None
            raise self.fail(f"has no {role} input")
        return self.graph.tensors[self.op.inputs[position]]

    def output(self) -> Tensor:
        if len(self.op.outputs) != 1:
            raise self.fail(f"has {len(self.op.outputs)} outputs; tinydrift's kernels produce one")
        return self.graph.tensors[self.op.outputs[0]]

    def activation_tensor(self, tensor: Tensor, role: str) -> Tensor:
        """An int8 tensor quantized per tensor: what every kernel reads and writes."""
        if tensor.dtype != "int8":
            raise self.fail(f"{role} '{tensor.name}' is {tensor.dtype}; {FULL_INT8_HINT}")
        quant = tensor.quantization
        if quant is None:
            raise self.fail(f"{role} '{tensor.name}' has no quantization parameters; {FULL_INT8_HINT}")
        if quant.per_channel:
            raise self.fail(f"{role} '{tensor.name}' is quantized per channel; activations must be per tensor")
        return tensor

    def weights(self, tensor: Tensor, role: str, axis: int, channels: int) -> Tensor:
        if not tensor.is_constant:
            raise self.fail(f"{role} '{tensor.name}' is not a constant; tinydrift needs constant weights")
        if tensor.dtype != "int8":
            raise self.fail(f"{role} '{tensor.name}' is {tensor.dtype}; {FULL_INT8_HINT}")
        quant = tensor.quantization
        if quant is None:
            raise self.fail(f"{role} '{tensor.name}' has no quantization parameters; {FULL_INT8_HINT}")
        if np.any(quant.zero_points != 0):
            raise self.fail(f"{role} '{tensor.name}' has a non-zero zero point; TFLite requires symmetric int8 weights")
        if quant.per_channel and (len(quant.scales) != channels or quant.axis != axis):
            raise self.fail(
                f"{role} '{tensor.name}' has {len(quant.scales)} scales along axis {quant.axis}; "
                f"expected {channels} along axis {axis}"
            )
        return tensor

    def bias(self, tensor: Tensor | None, channels: int) -> np.ndarray | None:
        if tensor is None:
            return None
        if not tensor.is_constant:
            raise self.fail(f"bias '{tensor.name}' is not a constant")
        if tensor.dtype != "int32":
            raise self.fail(f"bias '{tensor.name}' is {tensor.dtype}; int8 kernels take int32 biases")
        if tensor.num_elements != channels:
            raise self.fail(f"bias '{tensor.name}' has {tensor.num_elements} values for {channels} channels")
        return tensor.data.reshape(-1).astype(np.int32)

    def activation(self, output: Tensor) -> tuple[int, int]:
        activation = self.op.options.get("fused_activation_function", "NONE")
        if activation not in SUPPORTED_ACTIVATIONS:
            raise self.fail(
                f"fused activation {activation} is not supported (supported: {', '.join(SUPPORTED_ACTIVATIONS)})"
            )
        quant = output.quantization
        return q.activation_range(activation, quant.scale, quant.zero_point)

    def rank(self, tensor: Tensor, rank: int, role: str) -> None:
        if len(tensor.shape) != rank:
            raise self.fail(f"{role} '{tensor.name}' has shape {list(tensor.shape)}; expected {rank} dimensions")

    def spatial(self, input_size: int, filter_size: int, stride: int, dilation: int, output_size: int, axis: str) -> int:
        """Check the output size against TFLite's formula; return the leading padding."""
        padding = self.op.options.get("padding")
        if padding not in ("SAME", "VALID"):
            raise self.fail(f"padding {padding} is not supported (SAME or VALID)")
        if stride < 1 or dilation < 1:
            raise self.fail(f"stride {stride} / dilation {dilation} along the {axis} is invalid")
        expected = q.compute_out_size(padding, input_size, filter_size, stride, dilation)
        if expected != output_size:
            raise self.fail(
                f"output {axis} {output_size} differs from TFLite's {padding} size {expected} "
                f"(input {input_size}, filter {filter_size}, stride {stride}, dilation {dilation})"
            )
        return q.compute_padding(stride, dilation, input_size, filter_size, output_size)


def lower(graph: Graph) -> list[KernelCall | Alias]:
    """Lower every operator, in order; the first unsupported one raises TinydriftError."""
    return [lower_op(graph, op) for op in graph.operators]


def lower_op(graph: Graph, op: Operator) -> KernelCall | Alias:
    ctx = _OpContext(graph, op)
    if op.opcode not in SUPPORTED_OPS:
        raise ctx.fail(f"this operator is not supported by tinydrift's int8 kernels (supported: {', '.join(SUPPORTED_OPS)})")
    if op.opcode in ALIAS_OPS:
        return _lower_alias(ctx)
    return _LOWERINGS[op.opcode](ctx)


def _conv_common(ctx: _OpContext, filter_axis: int):
    """What CONV_2D and DEPTHWISE_CONV_2D share: geometry, padding, per-channel requantization."""
    input_tensor = ctx.activation_tensor(ctx.input(0, "input"), "input")
    output = ctx.activation_tensor(ctx.output(), "output")
    ctx.rank(input_tensor, 4, "input")
    ctx.rank(output, 4, "output")
    output_channels = output.shape[3]
    filter_tensor = ctx.input(1, "filter")
    ctx.rank(filter_tensor, 4, "filter")
    ctx.weights(filter_tensor, "filter", filter_axis, output_channels)
    bias = ctx.bias(ctx.input(2, "bias", optional=True), output_channels)
    if input_tensor.shape[0] != output.shape[0]:
        raise ctx.fail(f"input batch {input_tensor.shape[0]} differs from output batch {output.shape[0]}")
    options = ctx.op.options
    stride_h, stride_w = int(options.get("stride_h", 1)), int(options.get("stride_w", 1))
    dilation_h = int(options.get("dilation_h_factor", 1))
    dilation_w = int(options.get("dilation_w_factor", 1))
    pad_h = ctx.spatial(input_tensor.shape[1], filter_tensor.shape[1], stride_h, dilation_h, output.shape[1], "height")
    pad_w = ctx.spatial(input_tensor.shape[2], filter_tensor.shape[2], stride_w, dilation_w, output.shape[2], "width")
    act_min, act_max = ctx.activation(output)
    multipliers, shifts = q.per_channel_multipliers(
        input_tensor.quantization.scale, filter_tensor.quantization.scales, output.quantization.scale, output_channels
    )
    geometry = {
        "batches": output.shape[0],
        "input_height": input_tensor.shape[1],
        "input_width": input_tensor.shape[2],
        "input_depth": input_tensor.shape[3],
        "filter_height": filter_tensor.shape[1],
        "filter_width": filter_tensor.shape[2],
    }
    tail = {
        "output_height": output.shape[1],
        "output_width": output.shape[2],
        "output_depth": output.shape[3],
        "stride_height": stride_h,
        "stride_width": stride_w,
        "dilation_height": dilation_h,
        "dilation_width": dilation_w,
        "pad_height": pad_h,
        "pad_width": pad_w,
        "input_offset": -input_tensor.quantization.zero_point,
        "output_offset": output.quantization.zero_point,
        "activation_min": act_min,
        "activation_max": act_max,
        "output_multiplier": ConstArg(f"{ctx.prefix}_output_multiplier"),
        "output_shift": ConstArg(f"{ctx.prefix}_output_shift"),
    }
    arrays = [
        ConstArray(f"{ctx.prefix}_filter", "int8_t", filter_tensor.data.reshape(-1)),
        ConstArray(f"{ctx.prefix}_output_multiplier", "int32_t", np.asarray(multipliers, dtype=np.int64)),
        ConstArray(f"{ctx.prefix}_output_shift", "int32_t", np.asarray(shifts, dtype=np.int64)),
    ]
    bias_arg = NULL_ARG
    if bias is not None:
        arrays.append(ConstArray(f"{ctx.prefix}_bias", "int32_t", bias))
        bias_arg = ConstArg(f"{ctx.prefix}_bias")
    args = [TensorArg(input_tensor.index), ConstArg(f"{ctx.prefix}_filter"), bias_arg, TensorArg(output.index)]
    return input_tensor, filter_tensor, output, geometry, tail, arrays, args


def _lower_conv(ctx: _OpContext) -> KernelCall:
    input_tensor, filter_tensor, output, geometry, tail, arrays, args = _conv_common(ctx, filter_axis=0)
    output_channels = output.shape[3]
    if filter_tensor.shape[0] != output_channels:
        raise ctx.fail(f"filter has {filter_tensor.shape[0]} output channels, output has {output_channels}")
    input_depth, filter_input_depth = input_tensor.shape[3], filter_tensor.shape[3]
    if input_depth % filter_input_depth or output_channels % (input_depth // filter_input_depth):
        raise ctx.fail(f"input depth {input_depth} does not split into groups of filter depth {filter_input_depth}")
    params = {**geometry, "filter_input_depth": filter_input_depth, **tail}
    macs = output.num_elements * int(np.prod(filter_tensor.shape[1:]))
    return KernelCall(ctx.op, "td_conv_s8", "td_conv_params_t", params, args, arrays, macs)


def _lower_depthwise_conv(ctx: _OpContext) -> KernelCall:
    input_tensor, filter_tensor, output, geometry, tail, arrays, args = _conv_common(ctx, filter_axis=3)
    output_channels = output.shape[3]
    if filter_tensor.shape[0] != 1 or filter_tensor.shape[3] != output_channels:
        raise ctx.fail(f"filter shape {list(filter_tensor.shape)} does not match {output_channels} output channels")
    input_depth = input_tensor.shape[3]
    if output_channels % input_depth:
        raise ctx.fail(f"output depth {output_channels} is not a multiple of input depth {input_depth}")
    params = {**geometry, "depth_multiplier": output_channels // input_depth, **tail}
    macs = output.num_elements * filter_tensor.shape[1] * filter_tensor.shape[2]
    return KernelCall(ctx.op, "td_depthwise_conv_s8", "td_depthwise_conv_params_t", params, args, arrays, macs)


def _lower_fully_connected(ctx: _OpContext) -> KernelCall:
    input_tensor = ctx.activation_tensor(ctx.input(0, "input"), "input")
    output = ctx.activation_tensor(ctx.output(), "output")
    if ctx.op.options.get("weights_format", "DEFAULT") != "DEFAULT":
        raise ctx.fail(f"weights format {ctx.op.options['weights_format']} is not supported (DEFAULT only)")
    filter_tensor = ctx.input(1, "filter")
    ctx.rank(filter_tensor, 2, "filter")
    output_depth, accum_depth = filter_tensor.shape
    ctx.weights(filter_tensor, "filter", 0, output_depth)
    bias = ctx.bias(ctx.input(2, "bias", optional=True), output_depth)
    if input_tensor.num_elements % accum_depth:
        raise ctx.fail(f"input of {input_tensor.num_elements} values does not split into rows of {accum_depth}")
    batches = input_tensor.num_elements // accum_depth
    if not output.shape or output.shape[-1] != output_depth or output.num_elements != batches * output_depth:
        raise ctx.fail(f"output shape {list(output.shape)} does not match {batches} x {output_depth}")
    act_min, act_max = ctx.activation(output)
    multipliers, shifts = q.per_channel_multipliers(
        input_tensor.quantization.scale, filter_tensor.quantization.scales, output.quantization.scale, output_depth
    )
    prefix = ctx.prefix
    params = {
        "batches": batches,
        "accum_depth": accum_depth,
        "output_depth": output_depth,
        "input_offset": -input_tensor.quantization.zero_point,
        "output_offset": output.quantization.zero_point,
        "activation_min": act_min,
        "activation_max": act_max,
        "output_multiplier": ConstArg(f"{prefix}_output_multiplier"),
        "output_shift": ConstArg(f"{prefix}_output_shift"),
    }
    arrays = [
        ConstArray(f"{prefix}_filter", "int8_t", filter_tensor.data.reshape(-1)),
        ConstArray(f"{prefix}_output_multiplier", "int32_t", np.asarray(multipliers, dtype=np.int64)),
        ConstArray(f"{prefix}_output_shift", "int32_t", np.asarray(shifts, dtype=np.int64)),
    ]
    bias_arg = NULL_ARG
    if bias is not None:
        arrays.append(ConstArray(f"{prefix}_bias", "int32_t", bias))
        bias_arg = ConstArg(f"{prefix}_bias")
    args = [TensorArg(input_tensor.index), ConstArg(f"{prefix}_filter"), bias_arg, TensorArg(output.index)]
    macs = batches * output_depth * accum_depth
    return KernelCall(ctx.op, "td_fully_connected_s8", "td_fully_connected_params_t", params, args, arrays, macs)


def _lower_pool(ctx: _OpContext) -> KernelCall:
    input_tensor = ctx.activation_tensor(ctx.input(0, "input"), "input")
    output = ctx.activation_tensor(ctx.output(), "output")
    ctx.rank(input_tensor, 4, "input")
    ctx.rank(output, 4, "output")
    if input_tensor.shape[0] != output.shape[0] or input_tensor.shape[3] != output.shape[3]:
        raise ctx.fail(f"input shape {list(input_tensor.shape)} and output shape {list(output.shape)} disagree")
    in_q, out_q = input_tensor.quantization, output.quantization
    # TFLite Micro's PoolingPrepare: the same scale (to 1e-6, in float) and zero point
    if abs(float(np.float32(in_q.scale) - np.float32(out_q.scale))) > 1.0e-6 or in_q.zero_point != out_q.zero_point:
        raise ctx.fail("input and output quantization differ; TFLite pools int8 values without rescaling")
    options = ctx.op.options
    filter_h, filter_w = int(options.get("filter_height", 1)), int(options.get("filter_width", 1))
    stride_h, stride_w = int(options.get("stride_h", 1)), int(options.get("stride_w", 1))
    pad_h = ctx.spatial(input_tensor.shape[1], filter_h, stride_h, 1, output.shape[1], "height")
    pad_w = ctx.spatial(input_tensor.shape[2], filter_w, stride_w, 1, output.shape[2], "width")
    for size_in, size_out, filt, stride, pad, axis in (
        (input_tensor.shape[1], output.shape[1], filter_h, stride_h, pad_h, "height"),
        (input_tensor.shape[2], output.shape[2], filter_w, stride_w, pad_w, "width"),
    ):
        for out_pos in range(size_out):  # TFLite's AveragePool fails on an empty window
            origin = out_pos * stride - pad
            if min(filt, size_in - origin) <= max(0, -origin):
                raise ctx.fail(f"window {out_pos} along the {axis} lies entirely in the padding")
    act_min, act_max = ctx.activation(output)
    params = {
        "batches": output.shape[0],
        "input_height": input_tensor.shape[1],
        "input_width": input_tensor.shape[2],
        "depth": input_tensor.shape[3],
        "output_height": output.shape[1],
        "output_width": output.shape[2],
        "filter_height": filter_h,
        "filter_width": filter_w,
        "stride_height": stride_h,
        "stride_width": stride_w,
        "pad_height": pad_h,
        "pad_width": pad_w,
        "activation_min": act_min,
        "activation_max": act_max,
    }
    function = "td_avg_pool_s8" if ctx.op.opcode == "AVERAGE_POOL_2D" else "td_max_pool_s8"
    return KernelCall(ctx.op, function, "td_pool_params_t", params, [TensorArg(input_tensor.index), TensorArg(output.index)])


def _lower_softmax(ctx: _OpContext) -> KernelCall:
    input_tensor = ctx.activation_tensor(ctx.input(0, "input"), "input")
    output = ctx.activation_tensor(ctx.output(), "output")
    if input_tensor.num_elements != output.num_elements or not input_tensor.shape:
        raise ctx.fail("input and output sizes differ")
    out_q = output.quantization
    if np.float32(out_q.scale) != np.float32(1.0 / 256) or out_q.zero_point != -128:
        raise ctx.fail(
            f"output scale {out_q.scale:g} / zero point {out_q.zero_point}: TFLite's int8 softmax needs 1/256 and -128"
        )
    beta = float(ctx.op.options.get("beta", 1.0))
    try:
        multiplier, left_shift, diff_min = q.softmax_input_params(beta, input_tensor.quantization.scale)
    except TinydriftError as exc:
        raise ctx.fail(str(exc)) from None
    depth = input_tensor.shape[-1]
    params = {
        "outer_size": input_tensor.num_elements // depth,
        "depth": depth,
        "input_multiplier": multiplier,
        "input_left_shift": left_shift,
        "diff_min": diff_min,
    }
    return KernelCall(ctx.op, "td_softmax_s8", "td_softmax_params_t", params, [TensorArg(input_tensor.index), TensorArg(output.index)])


def _broadcast_strides(shape: tuple[int, ...], output_dims: list[int]) -> list[int]:
    padded = [1] * (4 - len(shape)) + list(shape)
    strides, running = [0] * 4, 1
    for axis in range(3, -1, -1):
        strides[axis] = 0 if padded[axis] == 1 and output_dims[axis] != 1 else running
        running *= padded[axis]
    return strides


def _lower_add(ctx: _OpContext) -> KernelCall:
    input1 = ctx.input(0, "first")
    input2 = ctx.input(1, "second")
    output = ctx.activation_tensor(ctx.output(), "output")
    for tensor, role in ((input1, "first input"), (input2, "second input")):
        ctx.activation_tensor(tensor, role)
    shapes = [input1.shape, input2.shape, output.shape]
    if max(len(s) for s in shapes) > 4:
        raise ctx.fail("broadcasting over more than 4 dimensions is not supported")
    output_dims = [1] * (4 - len(output.shape)) + list(output.shape)
    for tensor in (input1, input2):
        padded = [1] * (4 - len(tensor.shape)) + list(tensor.shape)
        if any(a != b and a != 1 for a, b in zip(padded, output_dims)):
            raise ctx.fail(f"input shape {list(tensor.shape)} does not broadcast to {list(output.shape)}")
    try:
        rescale = q.add_params(input1.quantization.scale, input2.quantization.scale, output.quantization.scale)
    except TinydriftError as exc:
        raise ctx.fail(str(exc)) from None
    act_min, act_max = ctx.activation(output)
    params = {
        "input1_offset": -input1.quantization.zero_point,
        "input2_offset": -input2.quantization.zero_point,
        "output_offset": output.quantization.zero_point,
        "left_shift": rescale["left_shift"],
        "input1_multiplier": rescale["input1_multiplier"],
        "input1_shift": rescale["input1_shift"],
        "input2_multiplier": rescale["input2_multiplier"],
        "input2_shift": rescale["input2_shift"],
        "output_multiplier": rescale["output_multiplier"],
        "output_shift": rescale["output_shift"],
        "activation_min": act_min,
        "activation_max": act_max,
        "output_dims": output_dims,
        "input1_strides": _broadcast_strides(input1.shape, output_dims),
        "input2_strides": _broadcast_strides(input2.shape, output_dims),
    }
    args = [TensorArg(input1.index), TensorArg(input2.index), TensorArg(output.index)]
    return KernelCall(ctx.op, "td_add_s8", "td_add_params_t", params, args)


def _lower_alias(ctx: _OpContext) -> Alias:
    input_tensor = ctx.input(0, "input")
    output = ctx.output()
    if input_tensor.dtype != "int8" or output.dtype != "int8":
        raise ctx.fail(f"{input_tensor.dtype} -> {output.dtype}: {FULL_INT8_HINT}")
    if input_tensor.num_elements != output.num_elements:
        raise ctx.fail(f"input has {input_tensor.num_elements} values, output {output.num_elements}")
    return Alias(ctx.op, input_tensor.index, output.index)


_LOWERINGS = {
    "CONV_2D": _lower_conv,
    "DEPTHWISE_CONV_2D": _lower_depthwise_conv,
    "FULLY_CONNECTED": _lower_fully_connected,
    "AVERAGE_POOL_2D": _lower_pool,
    "MAX_POOL_2D": _lower_pool,
    "SOFTMAX": _lower_softmax,
    "ADD": _lower_add,
}
