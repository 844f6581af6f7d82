/* SOFTMAX, int8 in, int8 out (scale 1/256, zero point -128): TFLite Micro's reference
 * quantized Softmax, with gemmlowp's fixed-point exp and reciprocal.
 *
 * Differences from the row maximum are scaled (input_multiplier, input_left_shift) into
 * Q5.26, exponentiated into Q0.31, summed in Q12.19, and each exp is divided by the sum
 * through a Newton-Raphson reciprocal. */
#include "td_kernels.h"
#include "td_requant.h"

#define SCALED_DIFF_INTEGER_BITS 5  /* Q5.26 input to exp */
#define ACCUMULATION_INTEGER_BITS 12 /* Q12.19 sum of exps */
#define Q0_ONE INT32_MAX             /* 1.0 in Q0.31, saturated */

/* (a + b) / 2 rounded half away from zero, without overflow. */
static int32_t rounding_half_sum(int32_t a, int32_t b)
{
    const int64_t sum = (int64_t)a + (int64_t)b;
    const int64_t sign = sum >= 0 ? 1 : -1;
    return (int32_t)((sum + sign) / 2);
}

static int32_t mul_q(int32_t a, int32_t b)
{
    return td_saturating_rounding_doubling_high_mul(a, b);
}

/* exp(a) for a in [-1/4, 0), Q0.31 in and out: a 4th-order Taylor series around -1/8. */
static int32_t exp_on_interval_between_negative_one_quarter_and_0_excl(int32_t a)
{
    const int32_t exp_minus_one_eighth = 1895147668;
    const int32_t one_third = 715827883;
    const int32_t x = a + (1 << 28); /* a + 1/8 */
    const int32_t x2 = mul_q(x, x);
    const int32_t x3 = mul_q(x2, x);
    const int32_t x4 = mul_q(x2, x2);
    const int32_t x4_over_4 = td_rounding_divide_by_pot(x4, 2);
    const int32_t x4_over_24_plus_x3_over_6_plus_x2_over_2 =
        td_rounding_divide_by_pot(mul_q(x4_over_4 + x3, one_third) + x2, 1);
    return exp_minus_one_eighth + mul_q(exp_minus_one_eighth, x + x4_over_24_plus_x3_over_6_plus_x2_over_2);
}

/* exp(a) for a <= 0 given in Q5.26, result in Q0.31: the fractional quarter by the
 * series above, then one factor exp(-2^k) for each bit k of the rest. */
static int32_t exp_on_negative_values_q5_26(int32_t a)
{
    enum { FRACTIONAL_BITS = 31 - SCALED_DIFF_INTEGER_BITS };
    static const int32_t exp_of_minus_pow2[7] = {
        1672461947, /* exp(-1/4) */
        1302514674, /* exp(-1/2) */
        790015084,  /* exp(-1) */
        290630308,  /* exp(-2) */
        39332535,   /* exp(-4) */
        720401,     /* exp(-8) */
        242,        /* exp(-16) */
    };
    const int32_t one_quarter = 1 << (FRACTIONAL_BITS - 2);
    const int32_t mask = one_quarter - 1;
    const int32_t a_mod_quarter_minus_one_quarter = (a & mask) - one_quarter;
    int32_t result = exp_on_interval_between_negative_one_quarter_and_0_excl(
        td_saturating_rounding_multiply_by_pot(a_mod_quarter_minus_one_quarter, SCALED_DIFF_INTEGER_BITS));
    const int32_t remainder = a_mod_quarter_minus_one_quarter - a;
    for (int32_t k = 0; k < 7; ++k) {
        const int32_t exponent = k - 2; /* the factor is exp(-2^exponent) */
        if (remainder & (1 << (FRACTIONAL_BITS + exponent))) {
            result = mul_q(result, exp_of_minus_pow2[k]);
        }
    }
    return a == 0 ? Q0_ONE : result;
}

/* 1 / (1 + x) for x in [0, 1), Q0.31 in and out: Newton-Raphson on (1 + x) / 2 in Q2.29. */
static int32_t one_over_one_plus_x_for_x_in_0_1(int32_t a)
{
    const int32_t half_denominator = rounding_half_sum(a, Q0_ONE);
    const int32_t constant_48_over_17 = 1515870810;
    const int32_t constant_neg_32_over_17 = -1010580540;
    const int32_t q2_one = 1 << 29;
    int32_t x = constant_48_over_17 + mul_q(half_denominator, constant_neg_32_over_17);
    for (int32_t i = 0; i < 3; ++i) {
        const int32_t half_denominator_times_x = mul_q(half_denominator, x);
        const int32_t one_minus_half_denominator_times_x = q2_one - half_denominator_times_x;
        x = x + td_saturating_rounding_multiply_by_pot(mul_q(x, one_minus_half_denominator_times_x), 2);
    }
    /* x approximates 2 / (1 + a) in Q2.29; halving it is reading it as Q1.30. */
    return td_saturating_rounding_multiply_by_pot(x, 1);
}

static int32_t count_leading_zeros(uint32_t x)
{
    int32_t count = 0;
    if (x == 0) {
        return 32;
    }
    while ((x & 0x80000000u) == 0) {
        x <<= 1;
        ++count;
    }
    return count;
}

void td_softmax_s8(const td_softmax_params_t *params, const int8_t *input, int8_t *output)
{
    const int32_t depth = params->depth;

    for (int32_t row = 0; row < params->outer_size; ++row) {
        const int8_t *in = input + row * depth;
        int8_t *out = output + row * depth;

        int32_t max_in_row = INT8_MIN;
        for (int32_t c = 0; c < depth; ++c) {
            max_in_row = in[c] > max_in_row ? in[c] : max_in_row;
        }

        int32_t sum_of_exps = 0; /* Q12.19 */
        for (int32_t c = 0; c < depth; ++c) {
            const int32_t input_diff = (int32_t)in[c] - max_in_row;
            if (input_diff >= params->diff_min) {
                const int32_t scaled_diff = td_saturating_rounding_doubling_high_mul(
                    (int32_t)((uint32_t)input_diff << params->input_left_shift), params->input_multiplier);
                sum_of_exps += td_rounding_divide_by_pot(exp_on_negative_values_q5_26(scaled_diff),
                                                         ACCUMULATION_INTEGER_BITS);
            }
        }

        /* 1 / sum as a Q0.31 value in (0.5, 1] times 2^-num_bits_over_unit. */
        const int32_t headroom_plus_one = count_leading_zeros((uint32_t)sum_of_exps);
        const int32_t num_bits_over_unit = ACCUMULATION_INTEGER_BITS - headroom_plus_one;
        const int32_t shifted_sum_minus_one =
            (int32_t)(((uint32_t)sum_of_exps << headroom_plus_one) - ((uint32_t)1 << 31));
        const int32_t shifted_scale = one_over_one_plus_x_for_x_in_0_1(shifted_sum_minus_one);
        const int32_t exponent = num_bits_over_unit + 31 - 8;

        for (int32_t c = 0; c < depth; ++c) {
            const int32_t input_diff = (int32_t)in[c] - max_in_row;
            if (input_diff >= params->diff_min) {
                const int32_t scaled_diff = td_saturating_rounding_doubling_high_mul(
                    (int32_t)((uint32_t)input_diff << params->input_left_shift), params->input_multiplier);
                const int32_t exp_in_0 = exp_on_negative_values_q5_26(scaled_diff);
                const int32_t unsaturated = td_rounding_divide_by_pot(mul_q(shifted_scale, exp_in_0), exponent);
                out[c] = (int8_t)td_clamp_s32(unsaturated + INT8_MIN, INT8_MIN, INT8_MAX);
            } else {
                out[c] = INT8_MIN;
            }
        }
    }
}
