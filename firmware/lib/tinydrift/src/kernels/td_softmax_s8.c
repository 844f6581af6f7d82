/* SOFTMAX, int8 in, int8 out (scale 1/256, zero point -128): TFLite Micro's reference
 * quantized Softmax, with gemmlowp's fixed-point exp and reciprocal.
 *
 * Differences from the row maximum are scaled (input_multiplier, input_left_shift) into
 * Q5.26, exponentiated into Q0.31, summed in Q12.19, and each exp is divided by the sum
 * through a Newton-Raphson reciprocal. */
#include "td_kernels.h"
#include "td_fixedpoint.h"
#include "td_requant.h"

#define SCALED_DIFF_INTEGER_BITS 5  /* Q5.26 input to exp */
#define ACCUMULATION_INTEGER_BITS 12 /* Q12.19 sum of exps */

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
                sum_of_exps += td_rounding_divide_by_pot(td_exp_on_negative_values(scaled_diff, SCALED_DIFF_INTEGER_BITS),
                                                         ACCUMULATION_INTEGER_BITS);
            }
        }

        /* 1 / sum as a Q0.31 value in (0.5, 1] times 2^-num_bits_over_unit. */
        const int32_t headroom_plus_one = count_leading_zeros((uint32_t)sum_of_exps);
        const int32_t num_bits_over_unit = ACCUMULATION_INTEGER_BITS - headroom_plus_one;
        const int32_t shifted_sum_minus_one =
            (int32_t)(((uint32_t)sum_of_exps << headroom_plus_one) - ((uint32_t)1 << 31));
        const int32_t shifted_scale = td_one_over_one_plus_x_for_x_in_0_1(shifted_sum_minus_one);
        const int32_t exponent = num_bits_over_unit + 31 - 8;

        for (int32_t c = 0; c < depth; ++c) {
            const int32_t input_diff = (int32_t)in[c] - max_in_row;
            if (input_diff >= params->diff_min) {
                const int32_t scaled_diff = td_saturating_rounding_doubling_high_mul(
                    (int32_t)((uint32_t)input_diff << params->input_left_shift), params->input_multiplier);
                const int32_t exp_in_0 = td_exp_on_negative_values(scaled_diff, SCALED_DIFF_INTEGER_BITS);
                const int32_t unsaturated = td_rounding_divide_by_pot(td_fixed_mul(shifted_scale, exp_in_0), exponent);
                out[c] = (int8_t)td_clamp_s32(unsaturated + INT8_MIN, INT8_MIN, INT8_MAX);
            } else {
                out[c] = INT8_MIN;
            }
        }
    }
}
