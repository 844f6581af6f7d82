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
from tinydrift.firmware import MODEL_OPS
from tinydrift.codegen import model_quant as q
from tinydrift.codegen.model_state import VARIABLE_OPS, ModelState
from tinydrift.codegen.tflite_graph import Graph, Operator, Tensor

SUPPORTED_OPS = (*MODEL_OPS, *VARIABLE_OPS)
ALIAS_OPS = ("RESHAPE", "SQUEEZE", "EXPAND_DIMS")  # same bytes, new shape: no kernel
CONTROL_FLOW_OPS = ("IF", "WHILE", "CALL")  # run other subgraphs: refused as a model structure
SUPPORTED_ACTIVATIONS = ("NONE", "RELU", "RELU6")
FULL_INT8_HINT = (
    "tinydrift runs full-int8 models only: convert with a representative dataset, "
    "supported_ops=[TFLITE_BUILTINS_INT8] and inference_input_type/output_type=tf.int8"
)


@dataclass
class ConstArray:
    """A `static const` array in the generated C (weights, biases, multipliers)."""

    name: str
    ctype: str  # "int8_t", "int32_t" or "uint32_t"
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


@dataclass(frozen=True)
class InPlace:
    """The kernel's contract with aliasing: its output may overlay the bytes of its input
    `input` when the output starts at least `lead` bytes before the input, by a multiple of
    `granule` bytes (so each output value lands on an input value it alone reads: a
    channel over the same channel). Every kernel with this contract reads the input values
    an output value needs before writing that value, and writes in increasing address
    order, so a larger lead is as safe as the least one."""

    input: int  # tensor index
    lead: int  # bytes
    granule: int = 1  # bytes
    # A view: the output is exactly the input's bytes from -lead on (a contiguous slice), so
    # at exactly that place it may share them for as long as both live, and needs no code.
    view: bool = False


@dataclass
class KernelCall:
    op: Operator
    function: str
    params_type: str
    params: dict[str, object]  # field -> int, list of ints, or ConstArg
    args: list[object]  # TensorArg / ConstArg, after the params pointer
    arrays: list[ConstArray] = field(default_factory=list)
    macs: int = 0
    in_place: InPlace | None = None  # None: the output must not share the input's bytes
    # What a build with TD_KERNELS_OPTIMIZED calls instead: a kernel with its own weight
    # layout (its arrays replace those of the same role), the same params and contract.
    optimized: KernelCall | None = None


@dataclass(frozen=True)
class TensorListArg:
    """A C array of tensor pointers (CONCATENATION's inputs, SPLIT_V's outputs)."""

    indices: tuple[int, ...]
    writable: bool


@dataclass
class Alias:
    """RESHAPE and friends: `output` is the same bytes as `input`."""

    op: Operator
    input: int
    output: int


@dataclass
class StateRead:
    """READ_VARIABLE: `output` gets the variable's bytes (see model_c for when it simply
    shares them)."""

    op: Operator
    variable: int  # Variable.number
    output: int


@dataclass
class StateAssign:
    """ASSIGN_VARIABLE: the variable gets `value`'s bytes."""

    op: Operator
    variable: int
    value: int


@dataclass
class Folded:
    """VAR_HANDLE and CALL_ONCE: resolved at generation time, no code."""

    op: Operator


Step = KernelCall | Alias | StateRead | StateAssign | Folded


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


def unsupported_op(graph: Graph) -> Operator | None:
    """The first operator tinydrift has no kernel for, if any."""
    return next((op for op in graph.operators if op.opcode not in SUPPORTED_OPS), None)


def lower(graph: Graph, state: ModelState | None = None) -> list[Step]:
    """Lower every operator, in order; the first unsupported one raises TinydriftError.
    `state` (model_state.read_state) resolves the resource variables of a streaming model."""
    op = unsupported_op(graph)
    if op is not None and op.opcode in CONTROL_FLOW_OPS:
        raise _OpContext(graph, op).fail(
            "control flow is not supported; tinydrift runs single-graph models and streaming models whose "
            "other subgraphs are CALL_ONCE initialisers"
        )
    if op is not None:
        raise _OpContext(graph, op).fail(
            f"this operator is not supported by tinydrift's int8 kernels (supported: {', '.join(SUPPORTED_OPS)})"
        )
    return [lower_op(graph, op, state) for op in graph.operators]


def lower_op(graph: Graph, op: Operator, state: ModelState | None = None) -> Step:
    ctx = _OpContext(graph, op)
    if op.opcode not in SUPPORTED_OPS:
        raise ctx.fail(f"this operator is not supported by tinydrift's int8 kernels (supported: {', '.join(SUPPORTED_OPS)})")
    if op.opcode in ALIAS_OPS:
        return _lower_alias(ctx)
    if op.opcode in VARIABLE_OPS:
        return _lower_variable_op(ctx, state)
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
    call = KernelCall(ctx.op, "td_conv_s8", "td_conv_params_t", params, args, arrays, macs,
                      _conv_in_place(input_tensor, params))
    call.optimized = _conv_widened_m4_call(ctx, call, filter_tensor, arrays)
    return call


# td_conv_widened_s8_m4's limit (TD_CONV_WIDENED_COLUMN_MAX in kernels/optimized/td_kernels_m4.h).
CONV_WIDENED_COLUMN_MAX = 256


def conv_widened_m4_layout(filter_values: np.ndarray, bias: np.ndarray | None, input_offset: int,
                           multipliers: np.ndarray, shifts: np.ndarray, output_offset: int) -> np.ndarray:
    """A convolution laid out for td_conv_widened_s8_m4's loop, as uint32 words (in int64).
    filter_values: [output_channels, column] int8 (the column is [filter_y][filter_x][channel]),
    both multiples of 4.

    Per block of four output channels, in the order the kernel reads it: the four biases
    with the input offset folded in (bias + offset * sum of w); per group of four depth
    values d..d+3, the pairs (d, d+2) then (d+1, d+3) (the halves SXTB16 and SXTB16 ROR 8
    make of an input word), each for the block's four channels, a word with the pair's
    first value in its low half; per channel its multiplier, K = output_offset * 2^e +
    2^(e-1) and the right shift e = -shift (td_requantize_narrow_folded's words; 0 for K
    where the shift is not a right shift: the kernel then requantizes from its parameters).
    Weights and biases are doubled: the kernel's accumulators are twice the reference's,
    which the requantization's SMMLAR takes as they are (its caller checks they stay below
    2^31)."""
    weights = np.asarray(filter_values, dtype=np.int64)
    channels, depth = weights.shape
    blocks = channels // 4
    folded = (np.zeros(channels, dtype=np.int64) if bias is None else np.asarray(bias, dtype=np.int64))
    folded = folded + input_offset * weights.sum(axis=1)
    groups = weights.reshape(blocks, 4, depth // 4, 4)  # block, channel, group, value
    low = groups[..., [0, 1]]  # pairs (d, d+2) then (d+1, d+3): low halves d, d+1
    high = groups[..., [2, 3]]
    low, high = 2 * low, 2 * high
    pairs = ((low & 0xFFFF) | ((high & 0xFFFF) << 16)).transpose(0, 2, 3, 1).reshape(blocks, -1)
    right_shifts = -np.asarray(shifts, dtype=np.int64)
    folded_offsets = np.where(right_shifts >= 1, (int(output_offset) << np.maximum(right_shifts, 0))
                              + (1 << np.maximum(right_shifts - 1, 0)), 0)
    requant = np.stack([np.asarray(multipliers, dtype=np.int64), folded_offsets, right_shifts], axis=1)
    words = np.concatenate([2 * folded.reshape(blocks, 4), pairs, requant.reshape(blocks, 12)], axis=1)
    return words.reshape(-1) & 0xFFFFFFFF


def _conv_widened_m4_call(ctx: _OpContext, call: KernelCall, filter_tensor: Tensor, arrays: list[ConstArray]
                          ) -> KernelCall | None:
    """td_conv_widened_s8_m4 for a convolution it covers, else None (td_conv_s8_m4)."""
    params = call.params
    depth = params["filter_height"] * params["filter_width"] * params["input_depth"]
    channels = params["output_depth"]
    by_name = {array.name: array.values for array in arrays}
    multipliers = np.asarray(by_name[f"{ctx.prefix}_output_multiplier"])
    if params["filter_input_depth"] != params["input_depth"] or depth % 4 or depth > CONV_WIDENED_COLUMN_MAX \
            or channels % 4 or (multipliers == -(1 << 31)).any():
        return None
    bias = by_name.get(f"{ctx.prefix}_bias")
    folded = (0 if bias is None else np.asarray(bias, dtype=np.int64)) \
        + params["input_offset"] * filter_tensor.data.reshape(channels, depth).astype(np.int64).sum(axis=1)
    if np.abs(folded).max() + depth * 128 * 128 >= 1 << 30:  # twice every accumulator fits int32
        return None
    layout = ConstArray(f"{ctx.prefix}_layout_m4", "uint32_t", conv_widened_m4_layout(
        filter_tensor.data.reshape(channels, depth), bias, params["input_offset"], multipliers,
        np.asarray(by_name[f"{ctx.prefix}_output_shift"]), params["output_offset"]))
    shared = [a for a in arrays if a.name not in (f"{ctx.prefix}_filter", f"{ctx.prefix}_bias")]
    return KernelCall(call.op, "td_conv_widened_s8_m4", call.params_type, call.params,
                      [call.args[0], ConstArg(layout.name), call.args[3]], [*shared, layout], call.macs,
                      call.in_place)


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
    in_place = _window_in_place(input_tensor, params) if params["depth_multiplier"] == 1 else None
    return KernelCall(ctx.op, "td_depthwise_conv_s8", "td_depthwise_conv_params_t", params, args, arrays, macs,
                      in_place)


_NO_READ = np.iinfo(np.int64).max


def _first_pixels_read(params: dict) -> np.ndarray:
    """Per output pixel (raster order, batches included), the first input pixel (same
    order) its window reads; _NO_READ for a window wholly in the padding."""
    in_h, in_w = params["input_height"], params["input_width"]
    out_h, out_w = params["output_height"], params["output_width"]

    def first_inside(out_size: int, stride: int, pad: int, dilation: int, taps: int, size: int) -> np.ndarray:
        origin = np.arange(out_size, dtype=np.int64) * stride - pad
        tap = np.maximum(0, -(origin // dilation))  # the first tap at or after 0
        first = origin + tap * dilation
        return np.where((tap >= taps) | (first >= size), -1, first)

    first_y = first_inside(out_h, params["stride_height"], params["pad_height"], params.get("dilation_height", 1),
                           params["filter_height"], in_h)
    first_x = first_inside(out_w, params["stride_width"], params["pad_width"], params.get("dilation_width", 1),
                           params["filter_width"], in_w)
    image = first_y[:, None] * in_w + first_x[None, :]
    image = np.where((first_y[:, None] < 0) | (first_x[None, :] < 0), _NO_READ, image).reshape(-1)
    return np.concatenate([np.where(image == _NO_READ, _NO_READ, image + batch * in_h * in_w)
                           for batch in range(params["batches"])])


def _window_in_place(input_tensor: Tensor, params: dict) -> InPlace:
    """Depthwise convolution (depth multiplier 1) and pooling compute channel c of an output
    pixel from channel c of its window only, pixels in raster order (per channel, whatever
    the channel blocking). So output pixel p may overlay input pixel p - k for any k with no
    later pixel q reading an input pixel before q - k: k = max over q of q - (the first
    input pixel q's window reads)."""
    first = _first_pixels_read(params)
    reads = first != _NO_READ
    pixels = np.arange(first.size, dtype=np.int64)
    lead_pixels = max(0, int((pixels - first)[reads].max())) if reads.any() else 0
    depth = input_tensor.shape[3]
    return InPlace(input_tensor.index, lead_pixels * depth, depth)


def _conv_in_place(input_tensor: Tensor, params: dict) -> InPlace:
    """Both convolution kernels write output pixels in raster order, and only after reading
    the windows of all earlier pixels: the reference reads pixel p's window while writing
    pixel p, the M4 kernel reads two pixels' windows before writing both. So output pixel p
    may overlay no byte of the window of p or of a later pixel: the lead is the most by
    which pixel p's end passes the first byte those windows read."""
    first = _first_pixels_read(params)
    later_first = np.minimum.accumulate(first[::-1])[::-1]  # the first pixel read by p or any later pixel
    reads = later_first != _NO_READ
    if not reads.any():
        return InPlace(input_tensor.index, 0)
    ends = (np.arange(first.size, dtype=np.int64) + 1) * params["output_depth"]
    lead = int((ends - later_first * input_tensor.shape[3])[reads].max())
    return InPlace(input_tensor.index, max(0, lead))


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
    args = [TensorArg(input_tensor.index), TensorArg(output.index)]
    return KernelCall(ctx.op, function, "td_pool_params_t", params, args, in_place=_window_in_place(input_tensor, params))


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
    # Row by row, each value read (after the row's maximum and sum) just before it is written.
    args = [TensorArg(input_tensor.index), TensorArg(output.index)]
    return KernelCall(ctx.op, "td_softmax_s8", "td_softmax_params_t", params, args, in_place=InPlace(input_tensor.index, 0))


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
    # Value by value in the output's order: an input of the output's shape may be overlaid.
    same_shape = next((t for t in (input1, input2)
                       if tuple(t.shape) == tuple(output.shape) and not t.is_constant), None)
    in_place = InPlace(same_shape.index, 0) if same_shape is not None else None
    return KernelCall(ctx.op, "td_add_s8", "td_add_params_t", params, args, in_place=in_place)


def _lower_alias(ctx: _OpContext) -> Alias:
    input_tensor = ctx.input(0, "input")
    output = ctx.output()
    if input_tensor.dtype != "int8" or output.dtype != "int8":
        raise ctx.fail(f"{input_tensor.dtype} -> {output.dtype}: {FULL_INT8_HINT}")
    if input_tensor.num_elements != output.num_elements:
        raise ctx.fail(f"input has {input_tensor.num_elements} values, output {output.num_elements}")
    return Alias(ctx.op, input_tensor.index, output.index)


def _lower_variable_op(ctx: _OpContext, state: ModelState | None) -> Step:
    op = ctx.op
    if op.opcode in ("VAR_HANDLE", "CALL_ONCE"):
        return Folded(op)
    if state is None:
        raise ctx.fail("resource variables need the model's state (model_state.read_state)")
    handle = op.inputs[0] if op.inputs else -1
    if handle not in state.handles:
        raise ctx.fail("takes a resource that no VAR_HANDLE made")
    variable = state.handles[handle]
    if op.opcode == "READ_VARIABLE":
        return StateRead(op, variable.number, ctx.output().index)
    value = ctx.input(1, "value")
    return StateAssign(op, variable.number, value.index)


def _same_quantization(ctx: _OpContext, tensor: Tensor, reference: Tensor, why: str) -> None:
    a, b = tensor.quantization, reference.quantization
    if np.float32(a.scale) != np.float32(b.scale) or a.zero_point != b.zero_point:
        raise ctx.fail(
            f"'{tensor.name}' (scale {a.scale:g}, zero point {a.zero_point}) and '{reference.name}' "
            f"(scale {b.scale:g}, zero point {b.zero_point}) differ; {why}"
        )


def _axis(ctx: _OpContext, axis: int, rank: int) -> int:
    if not -rank <= axis < rank:
        raise ctx.fail(f"axis {axis} is outside a tensor of {rank} dimensions")
    return axis + rank if axis < 0 else axis


def _outer_inner(shape: tuple[int, ...], axis: int) -> tuple[int, int]:
    return int(np.prod(shape[:axis], dtype=np.int64)), int(np.prod(shape[axis + 1 :], dtype=np.int64))


def _lower_logistic(ctx: _OpContext) -> KernelCall:
    input_tensor = ctx.activation_tensor(ctx.input(0, "input"), "input")
    output = ctx.activation_tensor(ctx.output(), "output")
    if input_tensor.num_elements != output.num_elements:
        raise ctx.fail("input and output sizes differ")
    out_q = output.quantization
    if out_q.zero_point != -128 or np.float32(out_q.scale) != np.float32(1.0 / 256):
        raise ctx.fail(
            f"output scale {out_q.scale:g} / zero point {out_q.zero_point}: TFLite's int8 logistic writes 1/256 and -128"
        )
    try:
        multiplier, left_shift, radius = q.logistic_input_params(input_tensor.quantization.scale)
    except TinydriftError as exc:
        raise ctx.fail(str(exc)) from None
    params = {
        "size": output.num_elements,
        "input_zero_point": input_tensor.quantization.zero_point,
        "input_range_radius": radius,
        "input_multiplier": multiplier,
        "input_left_shift": left_shift,
    }
    args = [TensorArg(input_tensor.index), TensorArg(output.index)]
    # Value by value, each read just before it is written.
    return KernelCall(ctx.op, "td_logistic_s8", "td_logistic_params_t", params, args,
                      in_place=InPlace(input_tensor.index, 0))


def _lower_quantize(ctx: _OpContext) -> KernelCall:
    input_tensor = ctx.input(0, "input")
    if input_tensor.dtype != "int8":
        raise ctx.fail(
            f"input '{input_tensor.name}' is {input_tensor.dtype}; tinydrift requantizes int8 only (a float model "
            f"input is quantized on the host). {FULL_INT8_HINT}"
        )
    ctx.activation_tensor(input_tensor, "input")
    output = ctx.output()
    if output.dtype not in ("int8", "uint8") or output.quantization is None or output.quantization.per_channel:
        raise ctx.fail(f"output '{output.name}' is {output.dtype}; tinydrift requantizes int8 to int8 or uint8")
    if input_tensor.num_elements != output.num_elements:
        raise ctx.fail("input and output sizes differ")
    multiplier, shift = q.requantize_params(input_tensor.quantization.scale, output.quantization.scale)
    params = {
        "size": output.num_elements,
        "input_offset": -input_tensor.quantization.zero_point,
        "output_multiplier": multiplier,
        "output_shift": shift,
        "output_offset": output.quantization.zero_point,
    }
    function = "td_quantize_s8_u8" if output.dtype == "uint8" else "td_quantize_s8"
    # Value by value (one byte each way), each read just before it is written.
    return KernelCall(ctx.op, function, "td_quantize_params_t", params, [TensorArg(input_tensor.index), TensorArg(output.index)],
                      in_place=InPlace(input_tensor.index, 0))


def _lower_concatenation(ctx: _OpContext) -> KernelCall:
    output = ctx.activation_tensor(ctx.output(), "output")
    if ctx.op.options.get("fused_activation_function", "NONE") != "NONE":
        raise ctx.fail("a fused activation on CONCATENATION is not supported (TFLite Micro refuses it too)")
    axis = _axis(ctx, int(ctx.op.options.get("axis", 0)), len(output.shape))
    inputs = [ctx.activation_tensor(ctx.input(i, f"input {i}"), f"input {i}") for i in range(len(ctx.op.inputs))]
    if not inputs:
        raise ctx.fail("has no inputs")
    for tensor in inputs:
        _same_quantization(ctx, tensor, output, "TFLite Micro's int8 concatenation does not rescale")
        if len(tensor.shape) != len(output.shape) or any(
            a != b for d, (a, b) in enumerate(zip(tensor.shape, output.shape)) if d != axis
        ):
            raise ctx.fail(f"input shape {list(tensor.shape)} does not fit output {list(output.shape)} along axis {axis}")
    if sum(tensor.shape[axis] for tensor in inputs) != output.shape[axis]:
        raise ctx.fail(f"inputs do not add up to the output's {output.shape[axis]} along axis {axis}")
    outer, inner = _outer_inner(output.shape, axis)
    name = f"{ctx.prefix}_copy_sizes"
    params = {"input_count": len(inputs), "outer_size": outer, "copy_sizes": ConstArg(name)}
    arrays = [ConstArray(name, "int32_t", np.array([t.shape[axis] * inner for t in inputs], dtype=np.int64))]
    args = [TensorListArg(tuple(t.index for t in inputs), writable=False), TensorArg(output.index)]
    return KernelCall(ctx.op, "td_concatenation_s8", "td_concatenation_params_t", params, args, arrays)


def _constant_ints(ctx: _OpContext, position: int, role: str) -> np.ndarray:
    tensor = ctx.input(position, role)
    if not tensor.is_constant or tensor.dtype not in ("int32", "int64"):
        raise ctx.fail(f"{role} '{tensor.name}' must be a constant integer tensor")
    return tensor.data.reshape(-1).astype(np.int64)


def _lower_split_v(ctx: _OpContext) -> KernelCall:
    input_tensor = ctx.activation_tensor(ctx.input(0, "input"), "input")
    size_splits = _constant_ints(ctx, 1, "size_splits")
    axis_values = _constant_ints(ctx, 2, "axis")
    if axis_values.size != 1:
        raise ctx.fail("axis must be a single value")
    axis = _axis(ctx, int(axis_values[0]), len(input_tensor.shape))
    outputs = [ctx.graph.tensors[i] for i in ctx.op.outputs]
    if len(outputs) != len(size_splits):
        raise ctx.fail(f"{len(outputs)} outputs for {len(size_splits)} split sizes")
    for tensor in outputs:
        ctx.activation_tensor(tensor, "output")
        if len(tensor.shape) != len(input_tensor.shape) or any(
            a != b for d, (a, b) in enumerate(zip(tensor.shape, input_tensor.shape)) if d != axis
        ):
            raise ctx.fail(f"output shape {list(tensor.shape)} does not fit input {list(input_tensor.shape)} along axis {axis}")
    sizes = [tensor.shape[axis] for tensor in outputs]
    if sum(sizes) != input_tensor.shape[axis] or any(s not in (-1, size) for s, size in zip(size_splits, sizes)):
        raise ctx.fail(f"outputs of {sizes} along axis {axis} do not split the input's {input_tensor.shape[axis]} "
                       f"as size_splits {size_splits.tolist()} says")
    outer, inner = _outer_inner(input_tensor.shape, axis)
    name = f"{ctx.prefix}_copy_sizes"
    params = {"output_count": len(outputs), "outer_size": outer, "copy_sizes": ConstArg(name)}
    arrays = [ConstArray(name, "int32_t", np.array([size * inner for size in sizes], dtype=np.int64))]
    args = [TensorArg(input_tensor.index), TensorListArg(tuple(t.index for t in outputs), writable=True)]
    return KernelCall(ctx.op, "td_split_v_s8", "td_split_params_t", params, args, arrays)


def _slice_bounds(begin: int, end: int, stride: int, size: int, begin_masked: bool, end_masked: bool,
                  shrink: bool) -> tuple[int, int]:
    """TFLite's StridedSliceStartForAxis and StridedSliceEndForAxis (offset false)."""

    def clamp(value: int, low: int, high: int) -> int:
        return max(low, min(high, value))

    start = begin + size if begin < 0 else begin
    start = clamp(start, 0, size) if stride > 0 else clamp(start, -1, size - 1)
    if begin_masked:
        start = 0 if stride > 0 else size - 1
    if shrink:
        return start, (start if start >= size else start + 1)
    stop = end + size if end < 0 else end
    stop = clamp(stop, 0, size) if stride > 0 else clamp(stop, -1, size - 1)
    if end_masked:
        stop = size if stride > 0 else -1
    return start, stop


def _lower_strided_slice(ctx: _OpContext) -> KernelCall:
    input_tensor = ctx.activation_tensor(ctx.input(0, "input"), "input")
    output = ctx.activation_tensor(ctx.output(), "output")
    options = ctx.op.options
    for key in ("ellipsis_mask", "new_axis_mask"):
        if int(options.get(key, 0)):
            raise ctx.fail(f"{key} {options[key]} is not supported (TFLite Micro ignores it)")
    if options.get("offset"):
        raise ctx.fail("offset=true is not supported (TFLite Micro ignores it)")
    rank = len(input_tensor.shape)
    if rank > 4:
        raise ctx.fail(f"input has {rank} dimensions; TFLite Micro's strided slice takes at most 4")
    begins, ends, strides = (_constant_ints(ctx, i, role) for i, role in ((1, "begin"), (2, "end"), (3, "strides")))
    if not len(begins) == len(ends) == len(strides) == rank:
        raise ctx.fail(f"begin, end and strides must have {rank} values each")
    if np.any(strides == 0):
        raise ctx.fail("a stride is 0")
    begin_mask, end_mask = int(options.get("begin_mask", 0)), int(options.get("end_mask", 0))
    shrink_mask = int(options.get("shrink_axis_mask", 0))
    element_strides = [int(np.prod(input_tensor.shape[d + 1 :], dtype=np.int64)) for d in range(rank)]
    first, counts, steps, kept_shape = 0, [], [], []
    for d in range(rank):
        bit = 1 << d
        start, stop = _slice_bounds(int(begins[d]), int(ends[d]), int(strides[d]), input_tensor.shape[d],
                                    bool(begin_mask & bit), bool(end_mask & bit), bool(shrink_mask & bit))
        stride = int(strides[d])
        count = max(0, -(-(stop - start) // stride)) if stride > 0 else max(0, -(-(start - stop) // -stride))
        if not shrink_mask & bit:
            kept_shape.append(count)
        first += start * element_strides[d]
        counts.append(count)
        steps.append(stride * element_strides[d])
    if tuple(kept_shape) != tuple(output.shape):
        raise ctx.fail(f"output shape {list(output.shape)} differs from the slice's {kept_shape}")
    pad = 4 - rank  # TFLite Micro copies the bytes whatever the quantization says, and so do we
    params = {
        "first": first if output.num_elements else 0,
        "count": [1] * pad + counts,
        "step": [0] * pad + steps,
    }
    args = [TensorArg(input_tensor.index), TensorArg(output.index)]
    # The copy walks forward through the input value by value: a contiguous slice is a view.
    picked = params["first"] + sum(
        np.arange(count, dtype=np.int64).reshape([-1 if d == axis else 1 for d in range(4)]) * step
        for axis, (count, step) in enumerate(zip(params["count"], params["step"])))
    contiguous = output.num_elements > 0 and np.array_equal(
        picked.reshape(-1), params["first"] + np.arange(output.num_elements))
    in_place = InPlace(input_tensor.index, -params["first"], view=True) if contiguous else None
    return KernelCall(ctx.op, "td_strided_slice_s8", "td_strided_slice_params_t", params, args, in_place=in_place)


_LOWERINGS = {
    "CONV_2D": _lower_conv,
    "DEPTHWISE_CONV_2D": _lower_depthwise_conv,
    "FULLY_CONNECTED": _lower_fully_connected,
    "AVERAGE_POOL_2D": _lower_pool,
    "MAX_POOL_2D": _lower_pool,
    "SOFTMAX": _lower_softmax,
    "ADD": _lower_add,
    "LOGISTIC": _lower_logistic,
    "QUANTIZE": _lower_quantize,
    "CONCATENATION": _lower_concatenation,
    "SPLIT_V": _lower_split_v,
    "STRIDED_SLICE": _lower_strided_slice,
}
