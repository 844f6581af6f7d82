/* Fixed-point helpers shared by the int8 kernels: gemmlowp's integer arithmetic as
 * TFLite Micro uses it (double rounding, the default build), so the kernels round exactly
 * as the reference does.
 *
 * A multiplier is a Q0.31 value in [0.5, 1) (or 0); a real scale M is represented as
 * multiplier * 2^shift. Both come from tinydrift.codegen (QuantizeMultiplier).
 */
#ifndef TD_REQUANT_H
#define TD_REQUANT_H

#include <stdint.h>

/* round(a * b / 2^31), halves away from zero, saturating the one overflow (-1 * -1). */
static inline int32_t td_saturating_rounding_doubling_high_mul(int32_t a, int32_t b)
{
    if (a == b && a == INT32_MIN) {
        return INT32_MAX;
    }
    const int64_t product = (int64_t)a * (int64_t)b;
    const int64_t nudge = product >= 0 ? ((int64_t)1 << 30) : (1 - ((int64_t)1 << 30));
    const int64_t nudged = product + nudge;
    /* The reference divides by 2^31, truncating toward zero (which with the nudge rounds
     * halves away from zero); shifting the magnitude gives the same quotient without a
     * 64-bit division call on the Cortex-M4. |nudged| < 2^62, so negating it is safe. */
    return (int32_t)(nudged >= 0 ? (nudged >> 31) : -((-nudged) >> 31));
}

/* x / 2^exponent rounded to nearest, halves away from zero; 0 <= exponent <= 31. */
static inline int32_t td_rounding_divide_by_pot(int32_t x, int32_t exponent)
{
    const int32_t mask = (int32_t)(((int64_t)1 << exponent) - 1);
    const int32_t remainder = x & mask;
    const int32_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
    return (x >> exponent) + (remainder > threshold ? 1 : 0);
}

/* x * 2^exponent, saturating; exponent may be negative (then a rounding division). */
static inline int32_t td_saturating_rounding_multiply_by_pot(int32_t x, int32_t exponent)
{
    if (exponent < 0) {
        return td_rounding_divide_by_pot(x, -exponent);
    }
    if (exponent == 0) {
        return x;
    }
    const int32_t threshold = (int32_t)((((int64_t)1) << (31 - exponent)) - 1);
    if (x > threshold) {
        return INT32_MAX;
    }
    if (x < -threshold) {
        return INT32_MIN;
    }
    return (int32_t)((uint32_t)x << exponent);
}

/* x * multiplier * 2^shift, TFLite's MultiplyByQuantizedMultiplier: a left shift before
 * the high multiply, a rounding right shift after it (two roundings). */
static inline int32_t td_multiply_by_quantized_multiplier(int32_t x, int32_t multiplier,
                                                          int32_t shift)
{
    const int32_t left_shift = shift > 0 ? shift : 0;
    const int32_t right_shift = shift > 0 ? 0 : -shift;
    /* Through uint32_t: the reference's x * (1 << left_shift) wraps the same way. */
    const int32_t shifted = (int32_t)((uint32_t)x << left_shift);
    return td_rounding_divide_by_pot(td_saturating_rounding_doubling_high_mul(shifted, multiplier),
                                     right_shift);
}

static inline int32_t td_clamp_s32(int32_t x, int32_t low, int32_t high)
{
    return x < low ? low : (x > high ? high : x);
}

#endif /* TD_REQUANT_H */
