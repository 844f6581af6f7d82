/* AVERAGE_POOL_2D, int8: TFLite Micro's reference AveragePool. Padding is not counted:
 * each output averages only the window cells inside the input. */
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

void td_avg_pool_s8(const td_pool_params_t *params, const int8_t *input, int8_t *output)
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
                const int32_t count = (filter_y_end - filter_y_start) * (filter_x_end - filter_x_start);
                int8_t *out = output + ((batch * params->output_height + out_y) * params->output_width + out_x) * depth;
                for (int32_t channel = 0; channel < depth; ++channel) {
                    int32_t acc = 0;
                    for (int32_t filter_y = filter_y_start; filter_y < filter_y_end; ++filter_y) {
                        for (int32_t filter_x = filter_x_start; filter_x < filter_x_end; ++filter_x) {
                            const int32_t in_y = in_y_origin + filter_y;
                            const int32_t in_x = in_x_origin + filter_x;
                            acc += input_image[(in_y * input_width + in_x) * depth + channel];
                        }
                    }
                    /* Round half away from zero; C division truncates toward zero. */
                    acc = acc > 0 ? (acc + count / 2) / count : (acc - count / 2) / count;
                    out[channel] = (int8_t)td_clamp_s32(acc, params->activation_min, params->activation_max);
                }
            }
        }
    }
}
