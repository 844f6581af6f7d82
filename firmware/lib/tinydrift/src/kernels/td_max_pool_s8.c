/* MAX_POOL_2D, int8: TFLite Micro's reference MaxPool (padding cells are ignored). */
#include "td_kernels.h"
#include "td_requant.h"

static int32_t max_s32(int32_t a, int32_t b)
{
    return a > b ? a : b;
}

static int32_t min_s32(int32_t a, int32_t b)
{
    return a < b ? a : b;
}

void td_max_pool_s8(const td_pool_params_t *params, const int8_t *input, int8_t *output)
{
    const int32_t input_height = params->input_height;
    const int32_t input_width = params->input_width;
    const int32_t depth = params->depth;

    for (int32_t batch = 0; batch < params->batches; ++batch) {
        const int8_t *input_image = input + batch * input_height * input_width * depth;
        for (int32_t out_y = 0; out_y < params->output_height; ++out_y) {
            const int32_t in_y_origin = out_y * params->stride_height - params->pad_height;
            const int32_t filter_y_start = max_s32(0, -in_y_origin);
            const int32_t filter_y_end = min_s32(params->filter_height, input_height - in_y_origin);
            for (int32_t out_x = 0; out_x < params->output_width; ++out_x) {
                const int32_t in_x_origin = out_x * params->stride_width - params->pad_width;
                const int32_t filter_x_start = max_s32(0, -in_x_origin);
                const int32_t filter_x_end = min_s32(params->filter_width, input_width - in_x_origin);
                int8_t *out = output + ((batch * params->output_height + out_y) * params->output_width + out_x) * depth;
                for (int32_t channel = 0; channel < depth; ++channel) {
                    int32_t max = INT8_MIN;
                    for (int32_t filter_y = filter_y_start; filter_y < filter_y_end; ++filter_y) {
                        for (int32_t filter_x = filter_x_start; filter_x < filter_x_end; ++filter_x) {
                            const int32_t in_y = in_y_origin + filter_y;
                            const int32_t in_x = in_x_origin + filter_x;
                            max = max_s32(max, input_image[(in_y * input_width + in_x) * depth + channel]);
                        }
                    }
                    out[channel] = (int8_t)td_clamp_s32(max, params->activation_min, params->activation_max);
                }
            }
        }
    }
}
