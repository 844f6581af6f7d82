/* ADD, int8, with broadcasting up to 4 dimensions: TFLite Micro's reference int8 Add.
 * Both inputs are shifted left by left_shift (20) for headroom, rescaled to twice the
 * larger input scale, summed, then rescaled to the output. */
#include "td_kernels.h"
#include "td_requant.h"

static int8_t add_one(const td_add_params_t *params, int8_t x, int8_t y)
{
    const int32_t shifted_x = ((int32_t)x + params->input1_offset) * ((int32_t)1 << params->left_shift);
    const int32_t shifted_y = ((int32_t)y + params->input2_offset) * ((int32_t)1 << params->left_shift);
    const int32_t scaled_x =
        td_multiply_by_quantized_multiplier(shifted_x, params->input1_multiplier, params->input1_shift);
    const int32_t scaled_y =
        td_multiply_by_quantized_multiplier(shifted_y, params->input2_multiplier, params->input2_shift);
    const int32_t raw_output = td_multiply_by_quantized_multiplier(scaled_x + scaled_y, params->output_multiplier,
                                                                   params->output_shift) +
                               params->output_offset;
    return (int8_t)td_clamp_s32(raw_output, params->activation_min, params->activation_max);
}

void td_add_s8(const td_add_params_t *params, const int8_t *input1, const int8_t *input2,
               int8_t *output)
{
    const int32_t *dims = params->output_dims;
    const int32_t *s1 = params->input1_strides;
    const int32_t *s2 = params->input2_strides;
    int32_t out_index = 0;

    for (int32_t i0 = 0; i0 < dims[0]; ++i0) {
        for (int32_t i1 = 0; i1 < dims[1]; ++i1) {
            for (int32_t i2 = 0; i2 < dims[2]; ++i2) {
                const int32_t base1 = i0 * s1[0] + i1 * s1[1] + i2 * s1[2];
                const int32_t base2 = i0 * s2[0] + i1 * s2[1] + i2 * s2[2];
                for (int32_t i3 = 0; i3 < dims[3]; ++i3) {
                    output[out_index++] = add_one(params, input1[base1 + i3 * s1[3]], input2[base2 + i3 * s2[3]]);
                }
            }
        }
    }
}
