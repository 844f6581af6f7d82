/* td_multiply_by_quantized_multiplier (td_requant.h) in fewer instructions, same bits.
 *
 * Why it is the same: gemmlowp's SaturatingRoundingDoublingHighMul nudges a*b by +2^30
 * (a*b >= 0) or 1 - 2^30 (a*b < 0) and truncates toward zero after dividing by 2^31; for a
 * negative product, truncating (p + 1 - 2^30) / 2^31 toward zero is flooring (p + 2^30) /
 * 2^31, so both signs give floor((a*b + 2^30) / 2^31). The one exception, a = b = INT32_MIN
 * (which saturates), cannot happen for multipliers QuantizeMultiplier gives ([2^30, 2^31)
 * or 0). RoundingDivideByPOT(x, e), halves away from zero, is floor((x + 2^(e-1)) / 2^e) for
 * x >= 0 and floor((x + 2^(e-1) - 1) / 2^e) for x < 0.
 *
 * Two forms. td_requantize_fast is exact for any accumulator (64-bit product, the x >= 0
 * sum taken unsigned so nothing overflows). td_requantize_narrow_offset is exact when
 * |acc| < 2^30 and the shift is negative (a right shift e >= 1), which covers the layers of
 * real models (a scale below 0.5, accumulators of a few million), and adds the output
 * offset on the way: 2 * acc fits, so SMMULR(2 * acc, m) = floor((acc * m + 2^30) / 2^31)
 * = high; with u = high - (high < 0), the rounding division is floor((u + 2^(e-1)) / 2^e)
 * = floor((floor(u / 2^(e-1)) + 1) / 2) (nested floors), and adding the offset inside the
 * last halving costs nothing: (floor(u / 2^(e-1)) + 2 * offset + 1) >> 1. Nothing
 * overflows (|high| <= 2^30). td_requant_mode() checks once per kernel call, from the
 * parameters alone (bias and the number of terms bound every accumulator), which form
 * applies.
 *
 * Loops that load per-channel words anyway take a third form, with the offset folded into
 * one word when the kernel is prepared, K = offset * 2^e + 2^(e-1)
 * (td_requant_folded_offset): SMMLAR(2 * acc, m, K) = high + K, and the rounding division
 * plus the offset is floor((high - [high < 0] + K) / 2^e). [acc < 0] may stand for
 * [high < 0]: they differ only when high = 0 > acc, where both give
 * floor((2^(e-1) - 0 or 1) / 2^e) = 0. So td_requantize_narrow_folded is SMMLAR, an add of
 * acc's sign and a shift: 3 instructions where the form above takes 5. It is exact under the
 * narrow conditions, which include (|offset| + 1) * 2^e <= 2^30 (the sum stays in int32).
 */
#ifndef TD_REQUANT_FAST_H
#define TD_REQUANT_FAST_H

#include <stdint.h>

#include "td_dsp.h"

static inline int32_t td_requantize_fast(int32_t acc, int32_t multiplier, int32_t shift)
{
    const int32_t left_shift = shift > 0 ? shift : 0;
    const int32_t right_shift = shift > 0 ? 0 : -shift;
    /* Through uint32_t: the reference's x * (1 << left_shift) wraps the same way. */
    const int64_t product = (int64_t)(int32_t)((uint32_t)acc << left_shift) * multiplier;
    const int32_t high = (int32_t)((product + ((int64_t)1 << 30)) >> 31);
    if (right_shift == 0) {
        return high;
    }
    const uint32_t half = (uint32_t)1 << (right_shift - 1);
    return high >= 0 ? (int32_t)(((uint32_t)high + half) >> right_shift)
                     : (high + (int32_t)(half - 1u)) >> right_shift;
}

/* Requantized accumulator plus the output offset. Exact when |acc| < 2^30 and
 * right_shift >= 1 (see above); takes right_shift - 1 and 2 * output_offset + 1. */
static inline int32_t td_requantize_narrow_offset(int32_t acc, int32_t multiplier, int32_t right_shift_minus_1,
                                                  int32_t twice_offset_plus_1)
{
    const int32_t high = td_smmulr(acc * 2, multiplier);
    return (((high + (high >> 31)) >> right_shift_minus_1) + twice_offset_plus_1) >> 1;
}

/* K of td_requantize_narrow_folded for a right shift of -shift >= 1. */
static inline int32_t td_requant_folded_offset(int32_t output_offset, int32_t shift)
{
    const int32_t right_shift = -shift;
    return (int32_t)(((uint32_t)output_offset << right_shift) + ((uint32_t)1 << (right_shift - 1)));
}

/* Requantized accumulator plus the output offset, from the doubled accumulator `acc2`, the
 * multiplier, K (td_requant_folded_offset) and the right shift. Exact under the narrow
 * conditions (see above). */
static inline int32_t td_requantize_narrow_folded(int32_t acc2, int32_t multiplier, int32_t folded_offset,
                                                  int32_t right_shift)
{
    return (td_smmlar(acc2, multiplier, folded_offset) + (acc2 >> 31)) >> right_shift;
}

/* How a kernel call may requantize, decided once from its parameters. */
typedef struct {
    int32_t usable;     /* 0: a multiplier is INT32_MIN (never from QuantizeMultiplier): use the reference */
    int32_t narrow;     /* every shift < 0, every accumulator provably within +-(2^30 - 1), and
                           (|output offset| + 1) << -shift <= 2^30 */
    int32_t full_range; /* activation range [-128, 127]: the clamp is one SSAT */
} td_requant_mode_t;

/* `terms`: products summed into one accumulator; each is at most 128 * 255 in magnitude
 * (int8 weight times int8 input plus an offset in [-127, 128]). */
static inline td_requant_mode_t td_requant_mode(const int32_t *multiplier, const int32_t *shift, const int32_t *bias,
                                                int32_t channels, int32_t terms, int32_t input_offset,
                                                int32_t output_offset, int32_t activation_min,
                                                int32_t activation_max)
{
    td_requant_mode_t mode = {1, 1, activation_min == -128 && activation_max == 127};
    const int64_t products = (int64_t)terms * 128 * 255;
    mode.narrow = input_offset >= -127 && input_offset <= 128 && output_offset >= -(1 << 24) &&
                  output_offset <= (1 << 24);
    for (int32_t c = 0; c < channels; ++c) {
        const int64_t bias_magnitude = bias != 0 ? (bias[c] < 0 ? -(int64_t)bias[c] : bias[c]) : 0;
        if (multiplier[c] == INT32_MIN) {
            mode.usable = 0;
        }
        if (shift[c] >= 0 || shift[c] < -31 || bias_magnitude + products >= ((int64_t)1 << 30)) {
            mode.narrow = 0;
        } else if ((((int64_t)(output_offset < 0 ? -output_offset : output_offset) + 1) << -shift[c]) >
                   ((int64_t)1 << 30)) {
            mode.narrow = 0; /* td_requantize_narrow_folded's K + high could leave int32 */
        }
    }
    return mode;
}

/* The requantized int8 output of an accumulator: offset, then the activation's clamp.
 * `narrow` and `full_range` are constants in the kernels' specialized loops. */
static inline int8_t td_requantize_s8(int32_t acc, int32_t multiplier, int32_t shift, int32_t output_offset,
                                      int32_t activation_min, int32_t activation_max, int32_t narrow,
                                      int32_t full_range)
{
    /* -shift - 1 is ~shift: one instruction. */
    int32_t value = narrow ? td_requantize_narrow_offset(acc, multiplier, ~shift, 2 * output_offset + 1)
                           : td_requantize_fast(acc, multiplier, shift) + output_offset;
    if (full_range) {
        return (int8_t)td_ssat8(value);
    }
    value = value < activation_min ? activation_min : value;
    value = value > activation_max ? activation_max : value;
    return (int8_t)value;
}

#endif /* TD_REQUANT_FAST_H */
