/* FULLY_CONNECTED, int8, per-tensor or per-channel requantization (the generator repeats
 * a per-tensor multiplier for every channel): TFLite Micro's reference FullyConnected /
 * FullyConnectedPerChannel with symmetric weights. */
#include "td_kernels.h"
#include "td_requant.h"

void td_fully_connected_s8(const td_fully_connected_params_t *params, const int8_t *input,
                           const int8_t *filter, const int32_t *bias, int8_t *output)
{
    const int32_t accum_depth = params->accum_depth;
    const int32_t output_depth = params->output_depth;

    for (int32_t batch = 0; batch < params->batches; ++batch) {
        const int8_t *in = input + batch * accum_depth;
        for (int32_t out_channel = 0; out_channel < output_depth; ++out_channel) {
            const int8_t *w = filter + out_channel * accum_depth;
            int32_t acc = 0;
            for (int32_t d = 0; d < accum_depth; ++d) {
                acc += (int32_t)w[d] * ((int32_t)in[d] + params->input_offset);
            }
            if (bias != 0) {
                acc += bias[out_channel];
            }
            acc = td_multiply_by_quantized_multiplier(acc, params->output_multiplier[out_channel],
                                                      params->output_shift[out_channel]);
            acc += params->output_offset;
            acc = td_clamp_s32(acc, params->activation_min, params->activation_max);
            output[batch * output_depth + out_channel] = (int8_t)acc;
        }
    }
}
