/* CONV_2D, int8, optimized for the Cortex-M4's dual 16-bit MACs; bit-exact with the
 * reference td_conv_s8 (same parameters, same results for every input).
 *
 * im2col: for two output pixels at a time, the filter's receptive field of each becomes
 * one q15 column (input offset added, so that padding, filled with the zero point, adds
 * 0 as the reference's skipped terms do), multiplied by all output channels' weight rows
 * (td_mat_mult_s8). Columns come three ways: a 1x1 filter without padding (pointwise)
 * widens the input pixel itself; a window whose rows are whole groups of four values (the
 * KWS stem: 4 wide, 1 deep) widens its rows in place, with the zero point for the cells of
 * an edge window outside the input; any other window is gathered first. Grouped convolutions, columns longer than TD_KERNELS_COLUMN_MAX and
 * multipliers QuantizeMultiplier never produces run the reference kernel. */
#include "../td_kernels.h"
#include "td_dsp.h"
#include "td_kernels_m4.h"
#include "td_nn_m4.h"

/* Copies `count` bytes: the receptive field's rows are short (a few bytes), where a call to
 * the C library's memcpy would cost more than the copy. */
static void copy_bytes(int8_t *destination, const int8_t *source, int32_t count)
{
    int32_t i = 0;
    for (; i + 4 <= count; i += 4) {
        td_write_u32(destination + i, td_read_u32(source + i));
    }
    for (; i < count; ++i) {
        destination[i] = source[i];
    }
}

static void fill_bytes(int8_t *destination, int8_t value, int32_t count)
{
    for (int32_t i = 0; i < count; ++i) {
        destination[i] = value;
    }
}

/* The receptive field of output pixel (out_y, out_x) of one image, as int8 in filter order
 * [filter_y][filter_x][channel]; cells outside the input hold the zero point. */
static void td_gather_receptive_field(const td_conv_params_t *params, const int8_t *image, int32_t out_y,
                                   int32_t out_x, int8_t *field)
{
    const int32_t depth = params->input_depth;
    const int32_t filter_width = params->filter_width;
    const int8_t zero_point = (int8_t)(-params->input_offset);
    const int32_t in_y_origin = out_y * params->stride_height - params->pad_height;
    const int32_t in_x_origin = out_x * params->stride_width - params->pad_width;
    const int32_t row_span = (filter_width - 1) * params->dilation_width + 1;
    const int32_t row_inside = in_x_origin >= 0 && in_x_origin + row_span <= params->input_width;
    const int32_t row_bytes = filter_width * depth;
    for (int32_t filter_y = 0; filter_y < params->filter_height; ++filter_y, field += row_bytes) {
        const int32_t in_y = in_y_origin + params->dilation_height * filter_y;
        if (in_y < 0 || in_y >= params->input_height) {
            fill_bytes(field, zero_point, row_bytes);
            continue;
        }
        const int8_t *row = image + (in_y * params->input_width + in_x_origin) * depth;
        if (row_inside && params->dilation_width == 1) {
            copy_bytes(field, row, row_bytes); /* the row of the window is contiguous */
            continue;
        }
        for (int32_t filter_x = 0; filter_x < filter_width; ++filter_x) {
            const int32_t in_x = in_x_origin + params->dilation_width * filter_x;
            int8_t *cell = field + filter_x * depth;
            if (in_x < 0 || in_x >= params->input_width) {
                fill_bytes(cell, zero_point, depth);
            } else {
                copy_bytes(cell, row + params->dilation_width * filter_x * depth, depth);
            }
        }
    }
}

/* A window over the edge whose rows are whole groups of four values, widened straight into
 * column `which` as td_column_pair_fill_rows widens a window inside the input: each group
 * of four is read as one word when its cells are inside, else made from the zero point
 * and the cells that are (the gather and its byte copies cost more than the product on
 * the KWS stem's edge windows). */
static void fill_rows_clipped(td_column_pair_t *pair, int32_t which, const td_conv_params_t *params,
                              const int8_t *image, int32_t in_y_origin, int32_t in_x_origin, int32_t offset)
{
    const int32_t depth = params->input_depth;
    const int32_t input_width = params->input_width;
    const int32_t row_bytes = params->filter_width * depth;
    const uint32_t zero_points = (uint32_t)(uint8_t)(int8_t)(-params->input_offset) * 0x01010101u;
    const uint32_t offsets = td_dup_half(offset);
    /* The bytes [first, end) of every window row are inside the input (the same for all
     * rows: no division per cell). */
    const int32_t first = in_x_origin < 0 ? -in_x_origin * depth : 0;
    const int32_t end_inside = (input_width - in_x_origin) * depth;
    const int32_t end = end_inside < row_bytes ? end_inside : row_bytes;
    uint32_t *words = pair->words + 2 * which;
    for (int32_t filter_y = 0; filter_y < params->filter_height; ++filter_y) {
        const int32_t in_y = in_y_origin + params->dilation_height * filter_y;
        const int32_t row_inside = in_y >= 0 && in_y < params->input_height;
        const int32_t row_start = (in_y * input_width + in_x_origin) * depth; /* an index: may be < 0 */
        for (int32_t i = 0; i < row_bytes; i += 4, words += 4) {
            uint32_t x = zero_points;
            if (row_inside && i >= first && i + 4 <= end) {
                x = td_read_u32(image + row_start + i);
            } else if (row_inside && i + 4 > first && i < end) {
                for (int32_t b = 0; b < 4; ++b) {
                    if (i + b >= first && i + b < end) {
                        const uint32_t value = (uint8_t)image[row_start + i + b];
                        x = (x & ~(0xFFu << (8 * b))) | (value << (8 * b));
                    }
                }
            }
            words[0] = td_sxtab16(offsets, x);
            words[1] = td_sxtab16_ror8(offsets, x);
        }
    }
}

void td_column_pair_fill_window(td_column_pair_t *pair, int32_t which, const td_conv_params_t *params,
                                const int8_t *image, int32_t out_y, int32_t out_x, int32_t offset, int8_t *field)
{
    const int32_t column_depth = params->filter_height * params->filter_width * params->input_depth;
    const int32_t in_y = out_y * params->stride_height - params->pad_height;
    const int32_t in_x = out_x * params->stride_width - params->pad_width;
    const int8_t *corner = image + (in_y * params->input_width + in_x) * params->input_depth;
    /* Windows whose rows are whole groups of four values skip the gather. */
    const int32_t row_bytes = params->filter_width * params->input_depth;
    const int32_t rows_direct = params->dilation_width == 1 && row_bytes % 4 == 0;
    const int32_t span_y = (params->filter_height - 1) * params->dilation_height + 1;
    if (params->filter_height == 1 && params->filter_width == 1 && params->pad_height == 0 && params->pad_width == 0) {
        td_column_pair_fill(pair, which, corner, column_depth, offset); /* pointwise: the pixel itself */
    } else if (rows_direct && in_y >= 0 && in_y + span_y <= params->input_height && in_x >= 0 &&
               in_x + params->filter_width <= params->input_width) {
        /* The window is inside the input: its rows are contiguous, convert them in place. */
        td_column_pair_fill_rows(pair, which, corner, params->filter_height, row_bytes,
                                 params->dilation_height * params->input_width * params->input_depth, offset);
    } else if (rows_direct) {
        fill_rows_clipped(pair, which, params, image, in_y, in_x, offset);
    } else {
        td_gather_receptive_field(params, image, out_y, out_x, field);
        td_column_pair_fill(pair, which, field, column_depth, offset);
    }
}

void td_conv_s8_m4(const td_conv_params_t *params, const int8_t *input, const int8_t *filter,
                   const int32_t *bias, int8_t *output)
{
    const int32_t column_depth = params->filter_height * params->filter_width * params->filter_input_depth;
    const td_requant_mode_t mode =
        td_requant_mode(params->output_multiplier, params->output_shift, bias, params->output_depth, column_depth,
                        params->input_offset, params->output_offset, params->activation_min, params->activation_max);
    if (params->filter_input_depth != params->input_depth || column_depth > TD_KERNELS_COLUMN_MAX || !mode.usable) {
        td_conv_s8(params, input, filter, bias, output);
        return;
    }
    td_mat_mult_t mat = {
        column_depth,          params->output_depth,  filter, bias, params->output_multiplier,
        params->output_shift,  params->output_offset, params->activation_min, params->activation_max,
        mode,                  0,
    };
#if TD_KERNELS_ASM
    uint32_t plan[TD_MAT_MULT_PLAN_SIZE];
    mat.plan = td_mat_mult_plan(&mat, plan);
#endif
    const int32_t output_width = params->output_width;
    const int32_t output_depth = params->output_depth;
    const int32_t pixels = params->output_height * output_width;
    const int32_t image_bytes = params->input_height * params->input_width * params->input_depth;
    td_column_pair_t pair;
    int8_t field[TD_KERNELS_COLUMN_MAX];

    for (int32_t batch = 0; batch < params->batches; ++batch) {
        const int8_t *image = input + batch * image_bytes;
        int8_t *out = output + batch * pixels * output_depth;
        for (int32_t pixel = 0; pixel < pixels; pixel += 2) {
            const int32_t columns = pixel + 1 < pixels ? 2 : 1;
            for (int32_t which = 0; which < columns; ++which) {
                const int32_t out_y = (pixel + which) / output_width;
                const int32_t out_x = (pixel + which) - out_y * output_width;
                td_column_pair_fill_window(&pair, which, params, image, out_y, out_x, params->input_offset, field);
            }
            td_mat_mult_s8(&mat, &pair, columns, out + pixel * output_depth, out + (pixel + 1) * output_depth);
        }
    }
}
