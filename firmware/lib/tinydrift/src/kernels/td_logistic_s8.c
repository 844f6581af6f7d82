/* LOGISTIC, int8 in, int8 out (scale 1/256, zero point -128): TFLite Micro's reference
 * integer Logistic. Inputs beyond +-input_range_radius saturate; the others are rescaled
 * into Q4.27, gemmlowp's logistic gives Q0.31, and that is rounded to 8 bits. */
#include "td_kernels.h"
#include "td_fixedpoint.h"
#include "td_requant.h"

#define INPUT_INTEGER_BITS 4 /* Q4.27: logistic's input range is [-16, 16) */
#define OUTPUT_INTEGER_BITS 8

/* gemmlowp's logistic(a) for a in Q4.27: 1 / (1 + exp(-|a|)), mirrored for a < 0. */
static int32_t logistic_q4_27(int32_t a)
{
    if (a == 0) {
        return 1 << 30; /* one half */
    }
    const int32_t magnitude = a > 0 ? a : -a;
    const int32_t result_if_positive =
        td_one_over_one_plus_x_for_x_in_0_1(td_exp_on_negative_values(-magnitude, INPUT_INTEGER_BITS));
    return a > 0 ? result_if_positive : TD_Q0_ONE - result_if_positive;
}

void td_logistic_s8(const td_logistic_params_t *params, const int8_t *input, int8_t *output)
{
    for (int32_t i = 0; i < params->size; ++i) {
        const int32_t centred = (int32_t)input[i] - params->input_zero_point;
        if (centred <= -params->input_range_radius) {
            output[i] = INT8_MIN;
        } else if (centred >= params->input_range_radius) {
            output[i] = INT8_MAX;
        } else {
            const int32_t input_in_q4 =
                td_multiply_by_quantized_multiplier(centred, params->input_multiplier, params->input_left_shift);
            const int32_t output_in_q0 = logistic_q4_27(input_in_q4);
            const int32_t rounded = td_rounding_divide_by_pot(output_in_q0, 31 - OUTPUT_INTEGER_BITS);
            output[i] = (int8_t)td_clamp_s32(rounded + INT8_MIN, INT8_MIN, INT8_MAX);
        }
    }
}
