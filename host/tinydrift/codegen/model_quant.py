"""Requantization parameters computed the way TFLite Micro's Prepare() computes them.

Bit-exactness depends on repeating TFLite's arithmetic to the last bit: which products are
taken in float32 and which in double, std::round's halves away from zero, frexp. Python
floats are IEEE doubles and numpy float32 operations round like C floats, so each function
below spells out the precision of every step.
"""

from __future__ import annotations

import math

import numpy as np

from tinydrift.errors import TinydriftError

INT8_MIN, INT8_MAX = -128, 127
SOFTMAX_SCALED_DIFF_INTEGER_BITS = 5  # TFLite's kScaledDiffIntegerBits: exp input is Q5.26
LOGISTIC_INPUT_INTEGER_BITS = 4  # TFLite's kInputIntegerBits for int8 LOGISTIC: Q4.27
ADD_LEFT_SHIFT = 20  # TFLite's headroom shift for int8 ADD


def round_half_away(x: float) -> int:
    """std::round: to nearest, halves away from zero (Python's round() goes to even)."""
    magnitude = math.floor(abs(x))
    if abs(x) - magnitude >= 0.5:
        magnitude += 1
    return magnitude if x >= 0 else -magnitude


def quantize_multiplier(real: float) -> tuple[int, int]:
    """TFLite's QuantizeMultiplier: real ~= multiplier * 2^(shift - 31), multiplier a Q0.31
    value in [2^30, 2^31) (or 0). Returns (multiplier, shift); shift > 0 shifts left."""
    if real == 0.0:
        return 0, 0
    fraction, shift = math.frexp(real)
    q_fixed = round_half_away(fraction * (1 << 31))
    if q_fixed == 1 << 31:
        q_fixed //= 2
        shift += 1
    if shift < -31:  # every bit would shift out: TFLite flushes to zero
        return 0, 0
    return int(q_fixed), int(shift)


def quantize_activation_value(value: float, scale: float, zero_point: int) -> int:
    """TFLite's Quantize() in CalculateActivationRangeQuantized: float32 division."""
    return zero_point + round_half_away(float(np.float32(value) / np.float32(scale)))


def activation_range(activation: str, scale: float, zero_point: int) -> tuple[int, int]:
    """The int8 clamp a fused activation becomes (CalculateActivationRangeQuantized)."""
    if activation == "NONE":
        return INT8_MIN, INT8_MAX
    if activation == "RELU":
        return max(INT8_MIN, quantize_activation_value(0.0, scale, zero_point)), INT8_MAX
    if activation == "RELU6":
        return (
            max(INT8_MIN, quantize_activation_value(0.0, scale, zero_point)),
            min(INT8_MAX, quantize_activation_value(6.0, scale, zero_point)),
        )
    raise ValueError(f"unsupported fused activation {activation}")


def per_channel_multipliers(
    input_scale: float, filter_scales: np.ndarray, output_scale: float, channels: int
) -> tuple[list[int], list[int]]:
    """The output multipliers of CONV_2D, DEPTHWISE_CONV_2D and FULLY_CONNECTED: in double,
    input_scale * filter_scale / output_scale, per channel; a single filter scale is
    repeated for every channel.

    TFLite's source takes the per-tensor FULLY_CONNECTED product in float32
    (GetQuantizedConvolutionMultipler), but the pinned TFLite Micro binary computes it in
    double (its code converts both scales, then mulsd), and its outputs follow the double
    product: tests/test_kernels.py aims at accumulator values where the two differ."""
    multipliers, shifts = [], []
    for channel in range(channels):
        filter_scale = float(filter_scales[channel if len(filter_scales) > 1 else 0])
        effective = float(input_scale) * filter_scale / float(output_scale)
        multiplier, shift = quantize_multiplier(effective)
        multipliers.append(multiplier)
        shifts.append(shift)
    return multipliers, shifts


def softmax_input_params(beta: float, input_scale: float) -> tuple[int, int, int]:
    """PreprocessSoftmaxScaling and CalculateInputRadius for int8 SOFTMAX.

    Returns (input_multiplier, input_left_shift, diff_min)."""
    integer_bits = SOFTMAX_SCALED_DIFF_INTEGER_BITS
    max_real_multiplier = float((1 << 31) - 1)
    real = min(float(beta) * float(input_scale) * float(1 << (31 - integer_bits)), max_real_multiplier)
    if not real > 1.0:
        raise TinydriftError(
            f"softmax beta * input scale = {float(beta) * float(input_scale):g} is too small for TFLite's int8 softmax"
        )
    multiplier, left_shift = quantize_multiplier(real)
    return multiplier, left_shift, -input_radius(integer_bits, left_shift)


def input_radius(integer_bits: int, left_shift: int) -> int:
    """CalculateInputRadius (total_signed_bits 31), in double as TFLite computes it."""
    return math.floor(1.0 * ((1 << integer_bits) - 1) * (1 << (31 - integer_bits)) / (1 << left_shift))


def logistic_input_params(input_scale: float) -> tuple[int, int, int]:
    """CalculateArithmeticOpDataLogistic for int8: the input scale times 2^27 as a Q0.31
    multiplier and a left shift (frexp, rounded as TfLiteRound), and the input radius.

    Returns (input_multiplier, input_left_shift, input_range_radius)."""
    integer_bits = LOGISTIC_INPUT_INTEGER_BITS
    real = float(input_scale) * float(1 << (31 - integer_bits))
    fraction, left_shift = math.frexp(real)
    multiplier = round_half_away(fraction * (1 << 31))
    if not 0 <= left_shift <= 31 or multiplier >= 1 << 31:
        raise TinydriftError(
            f"LOGISTIC input scale {float(input_scale):g} is outside what TFLite's int8 logistic can rescale"
        )
    return multiplier, left_shift, input_radius(integer_bits, left_shift)


def requantize_params(input_scale: float, output_scale: float) -> tuple[int, int]:
    """PrepareQuantizeReference for integer to integer QUANTIZE: the ratio of the scales,
    in double. Returns (multiplier, shift)."""
    return quantize_multiplier(float(input_scale) / float(output_scale))


def add_params(input1_scale: float, input2_scale: float, output_scale: float) -> dict[str, int]:
    """CalculateOpDataAdd for int8: both inputs to twice the larger scale, then the output."""
    twice_max_input_scale = 2 * float(max(np.float32(input1_scale), np.float32(input2_scale)))
    real_input1 = float(input1_scale) / twice_max_input_scale
    real_input2 = float(input2_scale) / twice_max_input_scale
    real_output = twice_max_input_scale / ((1 << ADD_LEFT_SHIFT) * float(output_scale))
    result = {"left_shift": ADD_LEFT_SHIFT}
    for key, real in (("input1", real_input1), ("input2", real_input2), ("output", real_output)):
        if not 0.0 < real < 1.0:
            raise TinydriftError(f"ADD rescale factor {real:g} for {key} is outside (0, 1), which TFLite refuses")
        multiplier, shift = quantize_multiplier(real)
        result[f"{key}_multiplier"] = multiplier
        result[f"{key}_shift"] = shift
    return result


def compute_out_size(padding: str, image_size: int, filter_size: int, stride: int, dilation: int = 1) -> int:
    """TFLite's ComputeOutSize."""
    effective_filter_size = (filter_size - 1) * dilation + 1
    if padding == "SAME":
        return (image_size + stride - 1) // stride
    return (image_size + stride - effective_filter_size) // stride


def compute_padding(stride: int, dilation: int, in_size: int, filter_size: int, out_size: int) -> int:
    """TFLite's ComputePadding: the leading half of the total padding, rounded down."""
    effective_filter_size = (filter_size - 1) * dilation + 1
    total = (out_size - 1) * stride + effective_filter_size - in_size
    return max(total, 0) // 2
