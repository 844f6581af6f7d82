/* FULLY_CONNECTED, int8, optimized for the Cortex-M4; bit-exact with the reference
 * td_fully_connected_s8. Each input row is widened once to a q15 column, then every output
 * channel is a dual-MAC dot product (td_mat_mult_s8_q15), two rows at a time. Rows longer
 * than TD_KERNELS_COLUMN_MAX, and multipliers QuantizeMultiplier never produces, run the
 * reference. */
#include "../td_kernels.h"
#include "td_dsp.h"
#include "td_kernels_m4.h"
#include "td_nn_m4.h"

void td_fully_connected_s8_m4(const td_fully_connected_params_t *params, const int8_t *input,
                              const int8_t *filter, const int32_t *bias, int8_t *output)
{
    const int32_t depth = params->accum_depth;
    const int32_t output_depth = params->output_depth;
    const td_requant_mode_t mode =
        td_requant_mode(params->output_multiplier, params->output_shift, bias, output_depth, depth,
                        params->input_offset, params->output_offset, params->activation_min, params->activation_max);
    if (depth > TD_KERNELS_COLUMN_MAX || !mode.usable) {
        td_fully_connected_s8(params, input, filter, bias, output);
        return;
    }
    td_mat_mult_t mat = {
        depth,         output_depth, filter, bias, params->output_multiplier, params->output_shift,
        params->output_offset, params->activation_min, params->activation_max, mode, 0,
    };
#if TD_KERNELS_ASM
    uint32_t plan[TD_MAT_MULT_PLAN_SIZE];
    mat.plan = td_mat_mult_plan(&mat, plan);
#endif
    td_column_pair_t pair;
    for (int32_t batch = 0; batch < params->batches; batch += 2) {
        const int32_t columns = batch + 1 < params->batches ? 2 : 1;
        for (int32_t which = 0; which < columns; ++which) {
            td_column_pair_fill(&pair, which, input + (batch + which) * depth, depth, params->input_offset);
        }
        td_mat_mult_s8(&mat, &pair, columns, output + batch * output_depth, output + (batch + 1) * output_depth);
    }
}
