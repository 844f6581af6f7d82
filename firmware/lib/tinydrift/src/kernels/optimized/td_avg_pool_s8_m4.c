/* AVERAGE_POOL_2D, int8, optimized for the Cortex-M4; bit-exact with the reference
 * td_avg_pool_s8.
 *
 * Four channels at a time: each window cell is one word of input, added by two SXTAB16s
 * into two words of 16-bit sums (channels 0 and 2, 1 and 3), so a cell costs a load and
 * two additions where the reference loads and adds each channel alone. A 16-bit sum of at
 * most 256 int8 values is exact (256 x -128 = -32768), so larger windows, and the depth % 4
 * channels left after the groups, run the reference arithmetic. The division rounds half
 * away from zero as the reference does.
 */
#include "../td_kernels.h"
#include "../td_requant.h"
#include "td_dsp.h"
#include "td_kernels_m4.h"

#define TD_POOL_MAX_CELLS 256

static int32_t max_s32(int32_t a, int32_t b)
{
    return a > b ? a : b;
}

static int32_t min_s32(int32_t a, int32_t b)
{
    return a < b ? a : b;
}

static int8_t average(int32_t sum, int32_t count, const td_pool_params_t *params)
{
    /* Round half away from zero; C division truncates toward zero. */
    const int32_t mean = sum > 0 ? (sum + count / 2) / count : (sum - count / 2) / count;
    return (int8_t)td_clamp_s32(mean, params->activation_min, params->activation_max);
}

static int32_t low_half(uint32_t halves)
{
    return (int32_t)(int16_t)(uint16_t)(halves & 0xFFFFu);
}

static int32_t high_half(uint32_t halves)
{
    return (int32_t)(int16_t)(uint16_t)(halves >> 16);
}

void td_avg_pool_s8_m4(const td_pool_params_t *params, const int8_t *input, int8_t *output)
{
    const int32_t input_height = params->input_height;
    const int32_t input_width = params->input_width;
    const int32_t depth = params->depth;
    const int32_t row_stride = input_width * depth;
    if (params->filter_height * params->filter_width > TD_POOL_MAX_CELLS) {
        td_avg_pool_s8(params, input, output);
        return;
    }
    for (int32_t batch = 0; batch < params->batches; ++batch) {
        const int8_t *image = input + batch * input_height * row_stride;
        for (int32_t out_y = 0; out_y < params->output_height; ++out_y) {
            const int32_t in_y_origin = out_y * params->stride_height - params->pad_height;
            const int32_t y_start = max_s32(0, in_y_origin);
            const int32_t y_end = min_s32(input_height, in_y_origin + params->filter_height);
            for (int32_t out_x = 0; out_x < params->output_width; ++out_x) {
                const int32_t in_x_origin = out_x * params->stride_width - params->pad_width;
                const int32_t x_start = max_s32(0, in_x_origin);
                const int32_t x_end = min_s32(input_width, in_x_origin + params->filter_width);
                const int32_t count = (y_end - y_start) * (x_end - x_start);
                const int8_t *corner = image + y_start * row_stride + x_start * depth;
                int8_t *out = output + ((batch * params->output_height + out_y) * params->output_width + out_x) * depth;
                int32_t channel = 0;
                for (; channel + 4 <= depth; channel += 4) {
                    uint32_t sums_02 = 0, sums_13 = 0;
                    const int8_t *row = corner + channel;
                    for (int32_t y = y_start; y < y_end; ++y, row += row_stride) {
                        const int8_t *cell = row;
                        for (int32_t x = x_start; x < x_end; ++x, cell += depth) {
                            const uint32_t word = td_read_u32(cell);
                            sums_02 = td_sxtab16(sums_02, word);
                            sums_13 = td_sxtab16_ror8(sums_13, word);
                        }
                    }
                    out[channel] = average(low_half(sums_02), count, params);
                    out[channel + 1] = average(low_half(sums_13), count, params);
                    out[channel + 2] = average(high_half(sums_02), count, params);
                    out[channel + 3] = average(high_half(sums_13), count, params);
                }
                for (; channel < depth; ++channel) {
                    int32_t sum = 0;
                    const int8_t *row = corner + channel;
                    for (int32_t y = y_start; y < y_end; ++y, row += row_stride) {
                        for (int32_t x = 0; x < x_end - x_start; ++x) {
                            sum += row[x * depth];
                        }
                    }
                    out[channel] = average(sum, count, params);
                }
            }
        }
    }
}
