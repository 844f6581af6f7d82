/* DEPTHWISE_CONV_2D, int8, with a depth multiplier and per-channel requantization:
 * TFLite Micro's reference DepthwiseConvPerChannel. */
#include "td_kernels.h"
#include "td_requant.h"

void td_depthwise_conv_s8(const td_depthwise_conv_params_t *params, const int8_t *input,
                          const int8_t *filter, const int32_t *bias, int8_t *output)
{
    const int32_t input_height = params->input_height;
    const int32_t input_width = params->input_width;
    const int32_t input_depth = params->input_depth;
    const int32_t filter_width = params->filter_width;
    const int32_t depth_multiplier = params->depth_multiplier;
    const int32_t output_depth = params->output_depth;

    for (int32_t batch = 0; batch < params->batches; ++batch) {
        const int8_t *input_image = input + batch * input_height * input_width * input_depth;
        for (int32_t out_y = 0; out_y < params->output_height; ++out_y) {
            const int32_t in_y_origin = out_y * params->stride_height - params->pad_height;
            for (int32_t out_x = 0; out_x < params->output_width; ++out_x) {
                const int32_t in_x_origin = out_x * params->stride_width - params->pad_width;
                int8_t *out = output + ((batch * params->output_height + out_y) * params->output_width + out_x) *
                                           output_depth;
                for (int32_t in_channel = 0; in_channel < input_depth; ++in_channel) {
                    for (int32_t m = 0; m < depth_multiplier; ++m) {
                        const int32_t out_channel = in_channel * depth_multiplier + m;
                        int32_t acc = 0;
                        for (int32_t filter_y = 0; filter_y < params->filter_height; ++filter_y) {
                            const int32_t in_y = in_y_origin + params->dilation_height * filter_y;
                            if (in_y < 0 || in_y >= input_height) {
                                continue; /* zero padding: the term is omitted */
                            }
                            for (int32_t filter_x = 0; filter_x < filter_width; ++filter_x) {
                                const int32_t in_x = in_x_origin + params->dilation_width * filter_x;
                                if (in_x < 0 || in_x >= input_width) {
                                    continue;
                                }
                                const int32_t input_value =
                                    input_image[(in_y * input_width + in_x) * input_depth + in_channel];
                                const int32_t filter_value =
                                    filter[(filter_y * filter_width + filter_x) * output_depth + out_channel];
                                acc += filter_value * (input_value + params->input_offset);
                            }
                        }
                        if (bias != 0) {
                            acc += bias[out_channel];
                        }
                        acc = td_multiply_by_quantized_multiplier(acc, params->output_multiplier[out_channel],
                                                                  params->output_shift[out_channel]);
                        acc += params->output_offset;
                        acc = td_clamp_s32(acc, params->activation_min, params->activation_max);
                        out[out_channel] = (int8_t)acc;
                    }
                }
            }
        }
    }
}
