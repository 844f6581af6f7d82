/* DEPTHWISE_CONV_2D, int8, optimized for the Cortex-M4; bit-exact with the reference
 * td_depthwise_conv_s8.
 *
 * Depth multiplier 1 (every depthwise layer of a DS-CNN), four channels at a time: per
 * filter tap, one word of input (four channels) widened to halves by two SXTB16s and four
 * SMLABB/SMLATT against weights widened once per call. The channels are processed in
 * chunks of TD_DW_CHUNK_CHANNELS; for each chunk the filter is copied to the stack in the
 * order the loops read it, widened, with what each group of four channels needs around
 * its taps.
 *
 * 3x3 filters (any stride, dilation or padding): the input offset is folded into the bias
 * (sum over taps of w * (x + offset) = sum of w * x + offset * sum of w), which is exact
 * when every tap reads a value: for windows that hang over the edge, the window is first
 * copied to a small buffer with the zero point in the missing cells (w * zero_point +
 * offset * w = 0: the term the reference omits). So every output pixel runs the same
 * straight code; on the M4 that is one asm block per group of four channels (taps and
 * requantization: 128 instructions for 36 MACs). Other filter sizes loop over the taps
 * inside the input. Larger filters than TD_DW_MAX_TAPS, other depth multipliers and
 * multipliers QuantizeMultiplier never produces run the reference kernel.
 */
#include "../td_kernels.h"
#include "../td_requant.h"
#include "td_dsp.h"
#include "td_kernels_m4.h"
#include "td_requant_fast.h"

#define TD_DW_CHUNK_CHANNELS 64
#define TD_DW_CHUNK_GROUPS (TD_DW_CHUNK_CHANNELS / 4)
#define TD_DW_MAX_TAPS 15
/* Words per group: 3x3: 4 biases, 9 taps x 2 weight words, 4 x (multiplier, K, right
 * shift) of td_requantize_narrow_folded; other filters: taps x 2 weight words. */
#define TD_DW_GROUP_WORDS_3X3 (4 + 18 + 12)
#define TD_DW_PACKED_WORDS (TD_DW_CHUNK_GROUPS * TD_DW_GROUP_WORDS_3X3)
/* Both layouts fit the buffer (a negative array size stops the build otherwise). */
typedef char td_dw_packed_words_fit[TD_DW_PACKED_WORDS >= TD_DW_CHUNK_GROUPS * 2 * TD_DW_MAX_TAPS ? 1 : -1];

/* First tap index k in [0, taps) with origin + k * dilation >= 0, and the end of those
 * with origin + k * dilation < size. */
static void tap_range(int32_t origin, int32_t dilation, int32_t taps, int32_t size, int32_t *start, int32_t *end)
{
    int32_t first = 0;
    if (origin < 0) {
        first = (-origin + dilation - 1) / dilation;
    }
    int32_t last = taps;
    if (origin + (taps - 1) * dilation >= size) {
        last = size - origin <= 0 ? 0 : (size - origin + dilation - 1) / dilation;
    }
    *start = first;
    *end = last < first ? first : last;
}

/* acc0..acc3 += the four channels of word x widened with `offsets` added, times (w_02, w_13). */
#define TD_DW_MAC4(offsets, x, w_02, w_13)                          \
    do {                                                            \
        const uint32_t x_02_ = td_sxtab16((offsets), (x));          \
        const uint32_t x_13_ = td_sxtab16_ror8((offsets), (x));     \
        acc0 = td_smlabb(x_02_, (w_02), acc0);                      \
        acc2 = td_smlatt(x_02_, (w_02), acc2);                      \
        acc1 = td_smlabb(x_13_, (w_13), acc1);                      \
        acc3 = td_smlatt(x_13_, (w_13), acc3);                      \
    } while (0)

typedef struct {
    const td_depthwise_conv_params_t *params;
    const int8_t *input;
    const int8_t *filter;
    const int32_t *bias;
    int8_t *output;
    int32_t first_channel; /* of this chunk */
    int32_t groups;        /* groups of four channels in this chunk */
} chunk_t;

/* The groups of four channels of one output pixel's 3x3 window: taps at row + fy * sy +
 * fx * sx (the input offset is already in the packed biases), then requantization into
 * out[0 .. 4 * groups). */
static TD_ALWAYS_INLINE void groups_3x3(const int8_t *row, int32_t sx, int32_t sy, const uint32_t *w, int8_t *out,
                                        int32_t groups, const td_depthwise_conv_params_t *params,
                                        int32_t first_channel, const int32_t narrow, const int32_t full_range)
{
#if TD_KERNELS_ASM
    if (narrow && full_range) {
        /* GCC spills this unrolled window heavily; written out, per group of four channels:
         * 4 loads of biases, 9 instructions per tap, 8 per output (three loads,
         * td_requantize_narrow_folded, SSAT, the store; the packed weights and biases are
         * doubled), 4 to step to the next group (121 for 36 MACs). Single loads rather
         * than LDRD: on the M4 a load behind a load takes one cycle, an LDRD always three,
         * so a tap's three loads take 4 cycles instead of 5. */
        int32_t acc0, acc1, acc2, acc3;
        uint32_t x, x_02, w_02, w_13;
#define TD_DW_TAP(address)                                  \
    "ldr     %[x], " address "\n\t"                         \
    "ldr     %[w_02], [%[w]], #4\n\t"                       \
    "ldr     %[w_13], [%[w]], #4\n\t"                       \
    "sxtb16  %[x_02], %[x]\n\t"                             \
    "sxtb16  %[x], %[x], ror #8\n\t"                        \
    "smlabb  %[acc0], %[x_02], %[w_02], %[acc0]\n\t"        \
    "smlatt  %[acc2], %[x_02], %[w_02], %[acc2]\n\t"        \
    "smlabb  %[acc1], %[x], %[w_13], %[acc1]\n\t"           \
    "smlatt  %[acc3], %[x], %[w_13], %[acc3]\n\t"
#define TD_DW_ROW TD_DW_TAP("[%[row]]") TD_DW_TAP("[%[row], %[sx]]") TD_DW_TAP("[%[row], %[sx], lsl #1]")
#define TD_DW_OUTPUT(acc)                                   \
    "ldr     %[w_02], [%[w]], #4\n\t"                       \
    "ldr     %[w_13], [%[w]], #4\n\t"                       \
    "ldr     %[x_02], [%[w]], #4\n\t"                       \
    "smmlar  %[x], " acc ", %[w_02], %[w_13]\n\t"           \
    "add     %[x], %[x], " acc ", asr #31\n\t"              \
    "asr     " acc ", %[x], %[x_02]\n\t"                    \
    "ssat    " acc ", #8, " acc "\n\t"                      \
    "strb    " acc ", [%[out]], #1\n\t"
        __asm volatile("1:\n\t"
                       "ldr     %[acc0], [%[w]], #4\n\t"
                       "ldr     %[acc1], [%[w]], #4\n\t"
                       "ldr     %[acc2], [%[w]], #4\n\t"
                       "ldr     %[acc3], [%[w]], #4\n\t"
                       TD_DW_ROW "add     %[row], %[row], %[sy]\n\t"
                       TD_DW_ROW "add     %[row], %[row], %[sy]\n\t"
                       TD_DW_ROW
                       TD_DW_OUTPUT("%[acc0]") TD_DW_OUTPUT("%[acc1]") TD_DW_OUTPUT("%[acc2]")
                       TD_DW_OUTPUT("%[acc3]")
                       "sub     %[row], %[row], %[sy], lsl #1\n\t"
                       "add     %[row], %[row], #4\n\t"
                       "subs    %[groups], %[groups], #1\n\t"
                       "bne     1b\n\t"
                       : [acc0] "=&r"(acc0), [acc1] "=&r"(acc1), [acc2] "=&r"(acc2), [acc3] "=&r"(acc3),
                         [row] "+r"(row), [w] "+r"(w), [out] "+r"(out), [groups] "+r"(groups), [x] "=&r"(x),
                         [x_02] "=&r"(x_02), [w_02] "=&r"(w_02), [w_13] "=&r"(w_13)
                       : [sx] "r"(sx), [sy] "r"(sy)
                       : "cc", "memory");
#undef TD_DW_OUTPUT
#undef TD_DW_ROW
#undef TD_DW_TAP
        (void)params;
        (void)first_channel;
        return;
    }
#endif
    const int32_t offset = params->output_offset;
    const int32_t act_min = params->activation_min, act_max = params->activation_max;
    for (int32_t group = 0; group < groups; ++group, w += TD_DW_GROUP_WORDS_3X3, out += 4) {
        int32_t acc0 = (int32_t)w[0], acc1 = (int32_t)w[1], acc2 = (int32_t)w[2], acc3 = (int32_t)w[3];
        const int8_t *tap = row + 4 * group;
        const uint32_t *w_tap = w + 4;
        for (int32_t fy = 0; fy < 3; ++fy, tap += sy, w_tap += 6) {
            TD_DW_MAC4(0u, td_read_u32(tap), w_tap[0], w_tap[1]);
            TD_DW_MAC4(0u, td_read_u32(tap + sx), w_tap[2], w_tap[3]);
            TD_DW_MAC4(0u, td_read_u32(tap + 2 * sx), w_tap[4], w_tap[5]);
        }
        acc0 >>= narrow, acc1 >>= narrow, acc2 >>= narrow, acc3 >>= narrow; /* exact: doubled */
        const int32_t *multiplier = params->output_multiplier + first_channel + 4 * group;
        const int32_t *shift = params->output_shift + first_channel + 4 * group;
        out[0] = td_requantize_s8(acc0, multiplier[0], shift[0], offset, act_min, act_max, narrow, full_range);
        out[1] = td_requantize_s8(acc1, multiplier[1], shift[1], offset, act_min, act_max, narrow, full_range);
        out[2] = td_requantize_s8(acc2, multiplier[2], shift[2], offset, act_min, act_max, narrow, full_range);
        out[3] = td_requantize_s8(acc3, multiplier[3], shift[3], offset, act_min, act_max, narrow, full_range);
    }
}

/* Per group: biases with the input offset folded in, widened weights (both doubled with the
 * narrow requantization, whose SMMLAR takes 2 * acc), then (multiplier, K, right shift)
 * per channel for the asm's td_requantize_narrow_folded. */
static void pack_3x3(const chunk_t *chunk, uint32_t *packed, const int32_t narrow)
{
    const td_depthwise_conv_params_t *params = chunk->params;
    const int32_t depth = params->input_depth;
    for (int32_t group = 0; group < chunk->groups; ++group, packed += TD_DW_GROUP_WORDS_3X3) {
        const int32_t channel = chunk->first_channel + 4 * group;
        for (int32_t lane = 0; lane < 4; ++lane) {
            uint32_t sum = 0; /* of the channel's weights; wrapping as the accumulator does */
            for (int32_t tap = 0; tap < 9; ++tap) {
                const int32_t weight = chunk->filter[tap * depth + channel + lane];
                sum += (uint32_t)weight;
            }
            const uint32_t bias = chunk->bias != 0 ? (uint32_t)chunk->bias[channel + lane] : 0u;
            const int32_t shift = params->output_shift[channel + lane];
            packed[lane] = (bias + sum * (uint32_t)params->input_offset) << narrow;
            packed[22 + 3 * lane] = (uint32_t)params->output_multiplier[channel + lane];
            packed[23 + 3 * lane] = narrow ? (uint32_t)td_requant_folded_offset(params->output_offset, shift) : 0u;
            packed[24 + 3 * lane] = (uint32_t)-shift;
        }
        for (int32_t tap = 0; tap < 9; ++tap) {
            const int8_t *w = chunk->filter + tap * depth + channel; /* as SXTB16 and its ROR 8 pair them */
            packed[4 + 2 * tap] = td_pack_halves((1 + narrow) * w[0], (1 + narrow) * w[2]);
            packed[5 + 2 * tap] = td_pack_halves((1 + narrow) * w[1], (1 + narrow) * w[3]);
        }
    }
}

/* An edge window of a chunk that is every channel, with neighbouring taps (dilation 1 across):
 * per window row, the cells inside the input are one run of bytes there, copied at once;
 * the cells outside (and rows outside) get the zero point. */
static void copy_window_rows(const chunk_t *chunk, const int8_t *image, int32_t in_y_origin, int32_t in_x_origin,
                             uint32_t zero_points, int8_t *window)
{
    const td_depthwise_conv_params_t *params = chunk->params;
    const int32_t depth = params->input_depth;
    const int32_t row_stride = params->input_width * depth;
    const int32_t first = in_x_origin < 0 ? -in_x_origin : 0;
    const int32_t last_inside = params->input_width - in_x_origin;
    const int32_t last = last_inside < 3 ? last_inside : 3;
    for (int32_t fy = 0; fy < 3; ++fy, window += 3 * depth) {
        const int32_t in_y = in_y_origin + fy * params->dilation_height;
        const int32_t inside = in_y >= 0 && in_y < params->input_height;
        const int32_t start = inside ? first : 3, end = inside && last > first ? last : start;
        for (int32_t i = 0; i < start * depth; i += 4) {
            td_write_u32(window + i, zero_points);
        }
        if (end > start) {
            memcpy(window + start * depth, image + in_y * row_stride + (in_x_origin + start) * depth,
                   (size_t)((end - start) * depth));
        }
        for (int32_t i = end * depth; i < 3 * depth; i += 4) {
            td_write_u32(window + i, zero_points);
        }
    }
}

static TD_ALWAYS_INLINE void chunk_3x3(const chunk_t *chunk, const uint32_t *packed, int8_t *window,
                                       const int32_t narrow, const int32_t full_range)
{
    const td_depthwise_conv_params_t *params = chunk->params;
    const int32_t input_height = params->input_height;
    const int32_t input_width = params->input_width;
    const int32_t depth = params->input_depth;
    const int32_t row_stride = input_width * depth;
    const int32_t tap_stride_y = params->dilation_height * row_stride;
    const int32_t tap_stride_x = params->dilation_width * depth;
    const int32_t span_y = 2 * params->dilation_height + 1;
    const int32_t span_x = 2 * params->dilation_width + 1;
    const int32_t chunk_bytes = 4 * chunk->groups;
    const uint32_t zero_points = (uint32_t)(uint8_t)(int8_t)(-params->input_offset) * 0x01010101u;
    /* The chunk is every channel and taps are neighbours: a window row's cells inside the
     * input are one run of bytes there. */
    const int32_t contiguous_taps = chunk_bytes == depth && params->dilation_width == 1;

    for (int32_t batch = 0; batch < params->batches; ++batch) {
        const int8_t *image = chunk->input + batch * input_height * row_stride + chunk->first_channel;
        for (int32_t out_y = 0; out_y < params->output_height; ++out_y) {
            const int32_t in_y_origin = out_y * params->stride_height - params->pad_height;
            const int32_t rows_inside = in_y_origin >= 0 && in_y_origin + span_y <= input_height;
            for (int32_t out_x = 0; out_x < params->output_width; ++out_x) {
                const int32_t in_x_origin = out_x * params->stride_width - params->pad_width;
                int8_t *out = chunk->output +
                              ((batch * params->output_height + out_y) * params->output_width + out_x) * depth +
                              chunk->first_channel;
                const int8_t *base = image + in_y_origin * row_stride + in_x_origin * depth;
                int32_t sx = tap_stride_x, sy = tap_stride_y;
                if (!rows_inside || in_x_origin < 0 || in_x_origin + span_x > input_width) {
                    /* The window hangs over the edge: copy it, zero point where it is outside. */
                    if (contiguous_taps) {
                        copy_window_rows(chunk, image, in_y_origin, in_x_origin, zero_points, window);
                    } else {
                        for (int32_t tap = 0; tap < 9; ++tap) {
                            const int32_t in_y = in_y_origin + (tap / 3) * params->dilation_height;
                            const int32_t in_x = in_x_origin + (tap % 3) * params->dilation_width;
                            int8_t *cell = window + tap * chunk_bytes;
                            if (in_y < 0 || in_y >= input_height || in_x < 0 || in_x >= input_width) {
                                for (int32_t i = 0; i < chunk_bytes; i += 4) {
                                    td_write_u32(cell + i, zero_points);
                                }
                            } else {
                                const int8_t *source = image + in_y * row_stride + in_x * depth;
                                for (int32_t i = 0; i < chunk_bytes; i += 4) {
                                    td_write_u32(cell + i, td_read_u32(source + i));
                                }
                            }
                        }
                    }
                    base = window;
                    sx = chunk_bytes;
                    sy = 3 * chunk_bytes;
                }
                groups_3x3(base, sx, sy, packed, out, chunk->groups, params, chunk->first_channel, narrow,
                           full_range);
            }
        }
    }
}

/* Per group, per tap: (w0, w2), (w1, w3). */
static void pack_taps(const chunk_t *chunk, uint32_t *packed)
{
    const td_depthwise_conv_params_t *params = chunk->params;
    const int32_t taps = params->filter_height * params->filter_width;
    for (int32_t group = 0; group < chunk->groups; ++group) {
        for (int32_t tap = 0; tap < taps; ++tap, packed += 2) {
            const uint32_t w = td_read_u32(chunk->filter + tap * params->input_depth + chunk->first_channel + 4 * group);
            packed[0] = td_sxtb16(w);
            packed[1] = td_sxtb16_ror8(w);
        }
    }
}

static TD_ALWAYS_INLINE void chunk_any(const chunk_t *chunk, const uint32_t *packed, const int32_t narrow,
                                       const int32_t full_range)
{
    const td_depthwise_conv_params_t *params = chunk->params;
    const int32_t input_height = params->input_height;
    const int32_t input_width = params->input_width;
    const int32_t depth = params->input_depth;
    const int32_t filter_width = params->filter_width;
    const int32_t taps = params->filter_height * filter_width;
    const uint32_t offsets = td_dup_half(params->input_offset);
    const int32_t row_stride = input_width * depth;
    const int32_t tap_stride_y = params->dilation_height * row_stride;
    const int32_t tap_stride_x = params->dilation_width * depth;

    for (int32_t batch = 0; batch < params->batches; ++batch) {
        const int8_t *image = chunk->input + batch * input_height * row_stride;
        for (int32_t out_y = 0; out_y < params->output_height; ++out_y) {
            const int32_t in_y_origin = out_y * params->stride_height - params->pad_height;
            int32_t fy_start, fy_end;
            tap_range(in_y_origin, params->dilation_height, params->filter_height, input_height, &fy_start, &fy_end);
            for (int32_t out_x = 0; out_x < params->output_width; ++out_x) {
                const int32_t in_x_origin = out_x * params->stride_width - params->pad_width;
                int32_t fx_start, fx_end;
                tap_range(in_x_origin, params->dilation_width, filter_width, input_width, &fx_start, &fx_end);
                int8_t *out = chunk->output + ((batch * params->output_height + out_y) * params->output_width + out_x) * depth;
                const uint32_t *w = packed;
                for (int32_t group = 0; group < chunk->groups; ++group, w += 2 * taps) {
                    const int32_t channel = chunk->first_channel + 4 * group;
                    int32_t acc0 = 0, acc1 = 0, acc2 = 0, acc3 = 0;
                    if (chunk->bias != 0) {
                        acc0 = chunk->bias[channel];
                        acc1 = chunk->bias[channel + 1];
                        acc2 = chunk->bias[channel + 2];
                        acc3 = chunk->bias[channel + 3];
                    }
                    for (int32_t fy = fy_start; fy < fy_end; ++fy) {
                        const int8_t *in_tap = image + (in_y_origin + fy * params->dilation_height) * row_stride +
                                               (in_x_origin + fx_start * params->dilation_width) * depth + channel;
                        const uint32_t *w_tap = w + 2 * (fy * filter_width + fx_start);
                        for (int32_t fx = fx_start; fx < fx_end; ++fx, in_tap += tap_stride_x, w_tap += 2) {
                            TD_DW_MAC4(offsets, td_read_u32(in_tap), w_tap[0], w_tap[1]);
                        }
                    }
                    const int32_t *multiplier = params->output_multiplier + channel;
                    const int32_t *shift = params->output_shift + channel;
                    const int32_t offset = params->output_offset;
                    const int32_t act_min = params->activation_min, act_max = params->activation_max;
                    out[channel] = td_requantize_s8(acc0, multiplier[0], shift[0], offset, act_min, act_max, narrow,
                                                    full_range);
                    out[channel + 1] = td_requantize_s8(acc1, multiplier[1], shift[1], offset, act_min, act_max,
                                                        narrow, full_range);
                    out[channel + 2] = td_requantize_s8(acc2, multiplier[2], shift[2], offset, act_min, act_max,
                                                        narrow, full_range);
                    out[channel + 3] = td_requantize_s8(acc3, multiplier[3], shift[3], offset, act_min, act_max,
                                                        narrow, full_range);
                }
            }
        }
    }
    (void)tap_stride_y;
}

/* 3x3, stride 1, no dilation, padding 0 or 1 (a DS-CNN's depthwise layers): channel by
 * channel through a widened copy of the channel, its plane, stored column by column (x
 * outer, y inner, as 16-bit values) with the zero point around it. A word of the plane is
 * two vertical neighbours, so one SMLAD takes two taps of a filter column: for four
 * outputs stacked along y, a filter column (w0, w1, w2 from top) reads the plane words
 * P0 = (p0, p1), P1 = (p2, p3), P2 = (p4, p5) and
 *   out0 += SMLAD(P0, (w0, w1)) + SMLABB(P1, (w2, w0)),
 *   out1 += SMLAD(P1, (w1, w2)) + SMLATT(P0, (w2, w0)),
 *   out2 += SMLAD(P1, (w0, w1)) + SMLABB(P2, (w2, w0)),
 *   out3 += SMLAD(P2, (w1, w2)) + SMLATT(P1, (w2, w0)):
 * 8 multiply instructions for 12 MACs and 6 loads, no widening in the loop (the plane is
 * widened once per channel: each value serves 9 MACs). The input offset is folded into the
 * bias and the border holds the zero point, so edge outputs run the same code. The plane
 * is filled from the whole channel before any of its outputs is written, and an output
 * channel overlays only the same input channel: the kernel's in-place contract holds. */
/* A plane column is TD_DW_PLANE_COLUMN halves (output heights up to 28), a constant so that
 * the asm reaches the three columns of a window by immediate offsets. Four channels' planes
 * are filled at once from the input's words; they take at most TD_DW_PLANE_HALVES (3 KB of
 * stack: 12 columns, an MLPerf DS-CNN layer's 5 and its padding; wider inputs take the
 * window path below). */
#define TD_DW_PLANE_COLUMN 32
#define TD_DW_PLANE_HALVES (4 * 12 * TD_DW_PLANE_COLUMN)

static int32_t planes_apply(const td_depthwise_conv_params_t *params)
{
    const int32_t pad_h = params->pad_height, pad_w = params->pad_width;
    return params->filter_height == 3 && params->filter_width == 3 && params->stride_height == 1 &&
           params->stride_width == 1 && params->dilation_height == 1 && params->dilation_width == 1 &&
           (pad_h == 0 || pad_h == 1) && (pad_w == 0 || pad_w == 1) &&
           params->output_height == params->input_height + 2 * pad_h - 2 &&
           params->output_width == params->input_width + 2 * pad_w - 2 && params->output_height > 0 &&
           params->output_width > 0 && 4 * ((params->output_height + 3) / 4) + 2 <= TD_DW_PLANE_COLUMN &&
           4 * (params->input_width + 2 * pad_w) * TD_DW_PLANE_COLUMN <= TD_DW_PLANE_HALVES &&
           params->input_depth % 4 == 0;
}

/* Per channel, what the plane loop reads: per filter column fx, (w0, w1), (w2, w0),
 * (w1, w2); the bias with the input offset folded in; the multiplier, K and right shift
 * of td_requantize_narrow_folded. With the narrow requantization (accumulators below
 * 2^30) the weights and the bias are doubled, so that the accumulators are the 2 * acc its
 * SMMLAR takes. */
#define TD_DW_PLANE_WORDS 13

/* Four channels' column of the input (`height` words `row_bytes` apart) into their planes'
 * columns (`plane_halves` apart) from half `pad`: per two rows, two word loads, widened and
 * regrouped into one word per channel. */
static void fill_plane_columns(int16_t *column, int32_t plane_halves, int32_t pad, const int8_t *source,
                               int32_t row_bytes, int32_t height)
{
    int32_t y = 0;
    if (pad) {
        const uint32_t x = td_read_u32(source);
        const uint32_t x02 = td_sxtb16(x), x13 = td_sxtb16_ror8(x);
        column[1] = (int16_t)x02;
        column[plane_halves + 1] = (int16_t)x13;
        column[2 * plane_halves + 1] = (int16_t)(x02 >> 16);
        column[3 * plane_halves + 1] = (int16_t)(x13 >> 16);
        source += row_bytes;
        y = 1;
    }
    uint32_t *words = (uint32_t *)(void *)(column + pad + y); /* an even half of the planes' words */
    const int32_t plane_words = plane_halves / 2;
    for (; y + 2 <= height; y += 2, source += 2 * row_bytes, ++words) {
        const uint32_t upper = td_read_u32(source), lower = td_read_u32(source + row_bytes);
        const uint32_t upper02 = td_sxtb16(upper), lower02 = td_sxtb16(lower);
        const uint32_t upper13 = td_sxtb16_ror8(upper), lower13 = td_sxtb16_ror8(lower);
        words[0] = td_pack_low_halves(upper02, lower02);
        words[plane_words] = td_pack_low_halves(upper13, lower13);
        words[2 * plane_words] = td_pack_high_halves(upper02, lower02);
        words[3 * plane_words] = td_pack_high_halves(upper13, lower13);
    }
    if (y < height) {
        const uint32_t x = td_read_u32(source);
        const uint32_t x02 = td_sxtb16(x), x13 = td_sxtb16_ror8(x);
        column[pad + y] = (int16_t)x02;
        column[plane_halves + pad + y] = (int16_t)x13;
        column[2 * plane_halves + pad + y] = (int16_t)(x02 >> 16);
        column[3 * plane_halves + pad + y] = (int16_t)(x13 >> 16);
    }
}

#if TD_KERNELS_ASM
/* Four outputs along y per pass down one plane column, 51 cycles of loads and multiplies
 * for 36 MACs (the bias loaded with the first filter column's words), then
 * td_requantize_narrow_folded's 3 instructions and SSAT per output. `rows`: a multiple
 * of 4. */
static void column_asm(const uint32_t *top, const uint32_t *w, int8_t *out, int32_t out_row_bytes, int32_t rows)
{
    int32_t acc0, acc1, acc2, acc3;
    uint32_t p0, p1, p2, a, e;
#define TD_DW_FX(w_at, top_at)                                  \
    "ldr     %[a], [%[w], #" #w_at "]\n\t"                      \
    "ldr     %[e], [%[w], #" #w_at " + 4]\n\t"                  \
    "ldr     %[p0], [%[top], #" #top_at "]\n\t"                 \
    "ldr     %[p1], [%[top], #" #top_at " + 4]\n\t"             \
    "smlad   %[acc0], %[p0], %[a], %[acc0]\n\t"                 \
    "smlabb  %[acc0], %[p1], %[e], %[acc0]\n\t"                 \
    "smlatt  %[acc1], %[p0], %[e], %[acc1]\n\t"                 \
    "smlad   %[acc2], %[p1], %[a], %[acc2]\n\t"                 \
    "ldr     %[p2], [%[top], #" #top_at " + 8]\n\t"             \
    "ldr     %[a], [%[w], #" #w_at " + 8]\n\t"                  \
    "smlabb  %[acc2], %[p2], %[e], %[acc2]\n\t"                 \
    "smlad   %[acc1], %[p1], %[a], %[acc1]\n\t"                 \
    "smlad   %[acc3], %[p2], %[a], %[acc3]\n\t"                 \
    "smlatt  %[acc3], %[p1], %[e], %[acc3]\n\t"
/* The first filter column starts the accumulators from the bias, loaded into acc3. */
#define TD_DW_FX_FIRST                                          \
    "ldr     %[acc3], [%[w], #36]\n\t"                          \
    "ldr     %[a], [%[w]]\n\t"                                  \
    "ldr     %[e], [%[w], #4]\n\t"                              \
    "ldr     %[p0], [%[top]]\n\t"                               \
    "ldr     %[p1], [%[top], #4]\n\t"                           \
    "smlad   %[acc0], %[p0], %[a], %[acc3]\n\t"                 \
    "smlabb  %[acc0], %[p1], %[e], %[acc0]\n\t"                 \
    "smlatt  %[acc1], %[p0], %[e], %[acc3]\n\t"                 \
    "smlad   %[acc2], %[p1], %[a], %[acc3]\n\t"                 \
    "ldr     %[p2], [%[top], #8]\n\t"                           \
    "ldr     %[a], [%[w], #8]\n\t"                              \
    "smlabb  %[acc2], %[p2], %[e], %[acc2]\n\t"                 \
    "smlad   %[acc1], %[p1], %[a], %[acc1]\n\t"                 \
    "smlad   %[acc3], %[p2], %[a], %[acc3]\n\t"                 \
    "smlatt  %[acc3], %[p1], %[e], %[acc3]\n\t"
#define TD_DW_REQUANTIZE(acc)                                   \
    "smmlar  %[a], " acc ", %[p0], %[p1]\n\t"                   \
    "add     %[a], %[a], " acc ", asr #31\n\t"                  \
    "asr     " acc ", %[a], %[p2]\n\t"                          \
    "ssat    " acc ", #8, " acc "\n\t"
    __asm volatile("1:\n\t"
                   TD_DW_FX_FIRST TD_DW_FX(12, 64) TD_DW_FX(24, 128)
                   "ldr     %[p0], [%[w], #40]\n\t"
                   "ldr     %[p1], [%[w], #44]\n\t"
                   "ldr     %[p2], [%[w], #48]\n\t"
                   TD_DW_REQUANTIZE("%[acc0]") TD_DW_REQUANTIZE("%[acc1]")
                   TD_DW_REQUANTIZE("%[acc2]") TD_DW_REQUANTIZE("%[acc3]")
                   "strb    %[acc0], [%[out]]\n\t"
                   "strb    %[acc1], [%[out], %[stride]]\n\t"
                   "add     %[out], %[out], %[stride], lsl #1\n\t"
                   "strb    %[acc2], [%[out]]\n\t"
                   "strb    %[acc3], [%[out], %[stride]]\n\t"
                   "add     %[out], %[out], %[stride], lsl #1\n\t"
                   "add     %[top], %[top], #8\n\t"
                   "subs    %[rows], %[rows], #4\n\t"
                   "bgt     1b\n\t"
                   : [acc0] "=&r"(acc0), [acc1] "=&r"(acc1), [acc2] "=&r"(acc2), [acc3] "=&r"(acc3),
                     [p0] "=&r"(p0), [p1] "=&r"(p1), [p2] "=&r"(p2), [a] "=&r"(a), [e] "=&r"(e),
                     [top] "+r"(top), [out] "+r"(out), [rows] "+r"(rows)
                   : [w] "r"(w), [stride] "r"(out_row_bytes)
                   : "cc", "memory");
#undef TD_DW_REQUANTIZE
#undef TD_DW_FX_FIRST
#undef TD_DW_FX
}

/* The last one or two rows of a column (`rows`): two outputs from the first two plane
 * words, about 46 cycles where a pass of four takes 87. */
static void column_tail_asm(const uint32_t *top, const uint32_t *w, int8_t *out, int32_t out_row_bytes, int32_t rows)
{
    int32_t acc0, acc1;
    uint32_t p0, p1, b, a, e;
#define TD_DW_TAIL_FX(w_at, top_at, start)                      \
    "ldr     %[a], [%[w], #" #w_at "]\n\t"                      \
    "ldr     %[e], [%[w], #" #w_at " + 4]\n\t"                  \
    "ldr     %[b], [%[w], #" #w_at " + 8]\n\t"                  \
    "ldr     %[p0], [%[top], #" #top_at "]\n\t"                 \
    "ldr     %[p1], [%[top], #" #top_at " + 4]\n\t"             \
    "smlad   %[acc0], %[p0], %[a], " start "\n\t"               \
    "smlabb  %[acc0], %[p1], %[e], %[acc0]\n\t"                 \
    "smlatt  %[acc1], %[p0], %[e], %[acc1]\n\t"                 \
    "smlad   %[acc1], %[p1], %[b], %[acc1]\n\t"
#define TD_DW_TAIL_REQUANTIZE(acc)                              \
    "smmlar  %[a], " acc ", %[p0], %[p1]\n\t"                   \
    "add     %[a], %[a], " acc ", asr #31\n\t"                  \
    "asr     " acc ", %[a], %[b]\n\t"                           \
    "ssat    " acc ", #8, " acc "\n\t"
    __asm volatile("ldr     %[acc1], [%[w], #36]\n\t"
                   TD_DW_TAIL_FX(0, 0, "%[acc1]") TD_DW_TAIL_FX(12, 64, "%[acc0]") TD_DW_TAIL_FX(24, 128, "%[acc0]")
                   "ldr     %[p0], [%[w], #40]\n\t"
                   "ldr     %[p1], [%[w], #44]\n\t"
                   "ldr     %[b], [%[w], #48]\n\t"
                   TD_DW_TAIL_REQUANTIZE("%[acc0]") TD_DW_TAIL_REQUANTIZE("%[acc1]")
                   "strb    %[acc0], [%[out]]\n\t"
                   "cmp     %[rows], #2\n\t"
                   "it      ge\n\t"
                   "strbge  %[acc1], [%[out], %[stride]]\n\t"
                   : [acc0] "=&r"(acc0), [acc1] "=&r"(acc1), [p0] "=&r"(p0), [p1] "=&r"(p1), [b] "=&r"(b),
                     [a] "=&r"(a), [e] "=&r"(e)
                   : [top] "r"(top), [w] "r"(w), [out] "r"(out), [stride] "r"(out_row_bytes), [rows] "r"(rows)
                   : "cc", "memory");
#undef TD_DW_TAIL_REQUANTIZE
#undef TD_DW_TAIL_FX
}

/* The last row of two neighbouring columns (outputs `out` and `out` + `depth`): their four
 * plane columns' first two words once each, the filter's words shared, about 50 cycles
 * where column_tail_asm takes about 46 for each. */
static void tail_pair_asm(const uint32_t *top, const uint32_t *w, int8_t *out, int32_t depth)
{
    int32_t acc0, acc1;
    uint32_t p0, p1, a, e, b;
/* Plane column `top_at` (bytes): the filter column in a and e so far for output 1, then
 * the filter column at `w_at` for output 0. */
#define TD_DW_PAIR_COLUMN(top_at, w_at)                         \
    "ldr     %[p0], [%[top], #" #top_at "]\n\t"                 \
    "ldr     %[p1], [%[top], #" #top_at " + 4]\n\t"             \
    "smlad   %[acc1], %[p0], %[a], %[acc1]\n\t"                 \
    "smlabb  %[acc1], %[p1], %[e], %[acc1]\n\t"                 \
    "ldr     %[a], [%[w], #" #w_at "]\n\t"                      \
    "ldr     %[e], [%[w], #" #w_at " + 4]\n\t"                  \
    "smlad   %[acc0], %[p0], %[a], %[acc0]\n\t"                 \
    "smlabb  %[acc0], %[p1], %[e], %[acc0]\n\t"
#define TD_DW_PAIR_REQUANTIZE(acc)                              \
    "smmlar  %[a], " acc ", %[p0], %[p1]\n\t"                   \
    "add     %[a], %[a], " acc ", asr #31\n\t"                  \
    "asr     " acc ", %[a], %[b]\n\t"                           \
    "ssat    " acc ", #8, " acc "\n\t"
    __asm volatile("ldr     %[acc0], [%[w], #36]\n\t"
                   "ldr     %[a], [%[w]]\n\t"
                   "ldr     %[e], [%[w], #4]\n\t"
                   "ldr     %[p0], [%[top]]\n\t"
                   "ldr     %[p1], [%[top], #4]\n\t"
                   "mov     %[acc1], %[acc0]\n\t"
                   "smlad   %[acc0], %[p0], %[a], %[acc0]\n\t"
                   "smlabb  %[acc0], %[p1], %[e], %[acc0]\n\t"
                   TD_DW_PAIR_COLUMN(64, 12) TD_DW_PAIR_COLUMN(128, 24)
                   "ldr     %[p0], [%[top], #192]\n\t"
                   "ldr     %[p1], [%[top], #196]\n\t"
                   "smlad   %[acc1], %[p0], %[a], %[acc1]\n\t"
                   "smlabb  %[acc1], %[p1], %[e], %[acc1]\n\t"
                   "ldr     %[p0], [%[w], #40]\n\t"
                   "ldr     %[p1], [%[w], #44]\n\t"
                   "ldr     %[b], [%[w], #48]\n\t"
                   TD_DW_PAIR_REQUANTIZE("%[acc0]") TD_DW_PAIR_REQUANTIZE("%[acc1]")
                   "strb    %[acc0], [%[out]]\n\t"
                   "strb    %[acc1], [%[out], %[depth]]\n\t"
                   : [acc0] "=&r"(acc0), [acc1] "=&r"(acc1), [p0] "=&r"(p0), [p1] "=&r"(p1), [a] "=&r"(a),
                     [e] "=&r"(e), [b] "=&r"(b)
                   : [top] "r"(top), [w] "r"(w), [out] "r"(out), [depth] "r"(depth)
                   : "memory");
#undef TD_DW_PAIR_REQUANTIZE
#undef TD_DW_PAIR_COLUMN
}
#endif

static TD_ALWAYS_INLINE void planes_3x3(const td_depthwise_conv_params_t *params, const int8_t *input,
                                        const int8_t *filter, const int32_t *bias, int8_t *output,
                                        const int32_t narrow, const int32_t full_range)
{
    const int32_t height = params->input_height, width = params->input_width, depth = params->input_depth;
    const int32_t out_h = params->output_height, out_w = params->output_width;
    const int32_t pad_h = params->pad_height, pad_w = params->pad_width;
    const int32_t columns = width + 2 * pad_w;
    const int32_t row_bytes = width * depth;
    const int32_t out_row_bytes = out_w * depth;
    const int32_t offset = params->output_offset;
    const int32_t act_min = params->activation_min, act_max = params->activation_max;
    uint32_t plane_words[TD_DW_PLANE_HALVES / 2];
    int16_t *planes = (int16_t *)plane_words;
    const int32_t plane_halves = columns * TD_DW_PLANE_COLUMN;
    uint32_t w[TD_DW_PLANE_WORDS];
    /* The border and the rows past the input keep the zero point; the inside is each
     * group of channels' in turn. */
    const uint32_t zero_points = td_dup_half(-params->input_offset);
    for (int32_t i = 0; i < 2 * plane_halves; ++i) { /* plane_halves is even: whole words */
        plane_words[i] = zero_points;
    }
    for (int32_t batch = 0; batch < params->batches; ++batch) {
        const int8_t *image = input + batch * height * row_bytes;
        int8_t *out_image = output + batch * out_h * out_row_bytes;
        for (int32_t channel = 0; channel < depth; ++channel) {
            /* channel c's plane is the (c % 4)-th: fill_plane_columns writes them in lane order */
            const int32_t lane = channel & 3;
            const int16_t *plane = planes + lane * plane_halves;
            if (lane == 0) {
                for (int32_t x = 0; x < width; ++x) {
                    fill_plane_columns(planes + (x + pad_w) * TD_DW_PLANE_COLUMN, plane_halves, pad_h,
                                       image + x * depth + channel, row_bytes, height);
                }
            }
            uint32_t sum = 0; /* of the channel's weights; wrapping as the accumulator does */
            for (int32_t fx = 0; fx < 3; ++fx) {
                const int32_t w0 = (1 + narrow) * filter[fx * depth + channel];
                const int32_t w1 = (1 + narrow) * filter[(3 + fx) * depth + channel];
                const int32_t w2 = (1 + narrow) * filter[(6 + fx) * depth + channel];
                w[3 * fx] = td_pack_halves(w0, w1);
                w[3 * fx + 1] = td_pack_halves(w2, w0);
                w[3 * fx + 2] = td_pack_halves(w1, w2);
                sum += (uint32_t)(w0 + w1 + w2);
            }
            w[9] = ((bias != 0 ? (uint32_t)bias[channel] : 0u) << narrow) + sum * (uint32_t)params->input_offset;
            const int32_t multiplier = params->output_multiplier[channel], shift = params->output_shift[channel];
            w[10] = (uint32_t)multiplier;
            w[11] = narrow ? (uint32_t)td_requant_folded_offset(offset, shift) : 0u;
            w[12] = (uint32_t)-shift;
            int32_t first_y = 0; /* of the C passes below */
#if TD_KERNELS_ASM
            if (narrow && full_range) {
                const int32_t full = out_h & ~3, left = out_h - full;
                for (int32_t x = 0; full > 0 && x < out_w; ++x) {
                    column_asm((const uint32_t *)(const void *)(plane + x * TD_DW_PLANE_COLUMN), w,
                               out_image + x * depth + channel, out_row_bytes, full);
                }
                if (left == 1 || left == 2) {
                    int32_t x = 0;
                    /* One row: two columns at once, an odd last column with its left neighbour
                     * again (the same value written twice; the plane holds the input), so that
                     * the channel's loop runs no third kind of pass: its code stays within an
                     * instruction cache of 1 KB (mlperf_dscnn_fetch_misses). */
                    for (; left == 1 && out_w >= 2 && x < out_w; x += 2) {
                        const int32_t first = x + 2 <= out_w ? x : out_w - 2;
                        tail_pair_asm((const uint32_t *)(const void *)(plane + first * TD_DW_PLANE_COLUMN + full), w,
                                      out_image + full * out_row_bytes + first * depth + channel, depth);
                    }
                    for (; x < out_w; ++x) {
                        column_tail_asm((const uint32_t *)(const void *)(plane + x * TD_DW_PLANE_COLUMN + full), w,
                                        out_image + full * out_row_bytes + x * depth + channel, out_row_bytes,
                                        left);
                    }
                    continue;
                }
                first_y = full;
            }
#endif
            for (int32_t x = 0; x < out_w; ++x) {
                const uint32_t *top = (const uint32_t *)(const void *)(plane + x * TD_DW_PLANE_COLUMN + first_y);
                int8_t *out = out_image + x * depth + channel;
                for (int32_t y = first_y; y < out_h; y += 4, top += 2) { /* (on the M4, a last pass of three rows) */
                    int32_t acc0 = (int32_t)w[9], acc1 = acc0, acc2 = acc0, acc3 = acc0;
                    const uint32_t *p = top;
                    for (int32_t fx = 0; fx < 3; ++fx, p += TD_DW_PLANE_COLUMN / 2) {
                        const uint32_t a = w[3 * fx], e = w[3 * fx + 1], b = w[3 * fx + 2];
                        const uint32_t p0 = p[0], p1 = p[1], p2 = p[2];
                        acc0 = td_smlabb(p1, e, td_smlad(p0, a, acc0));
                        acc1 = td_smlatt(p0, e, td_smlad(p1, b, acc1));
                        acc2 = td_smlabb(p2, e, td_smlad(p1, a, acc2));
                        acc3 = td_smlatt(p1, e, td_smlad(p2, b, acc3));
                    }
                    acc0 >>= narrow, acc1 >>= narrow, acc2 >>= narrow, acc3 >>= narrow; /* exact: doubled */
                    int8_t *o = out + y * out_row_bytes;
                    o[0] = td_requantize_s8(acc0, multiplier, shift, offset, act_min, act_max, narrow, full_range);
                    if (y + 1 < out_h) {
                        o[out_row_bytes] =
                            td_requantize_s8(acc1, multiplier, shift, offset, act_min, act_max, narrow, full_range);
                    }
                    if (y + 2 < out_h) {
                        o[2 * out_row_bytes] =
                            td_requantize_s8(acc2, multiplier, shift, offset, act_min, act_max, narrow, full_range);
                    }
                    if (y + 3 < out_h) {
                        o[3 * out_row_bytes] =
                            td_requantize_s8(acc3, multiplier, shift, offset, act_min, act_max, narrow, full_range);
                    }
                }
            }
        }
    }
}

/* Its own frame: the plane is not on the stack beside the other paths' buffers. */
static TD_NOINLINE void planes_3x3_call(const td_depthwise_conv_params_t *params,
                                                      const int8_t *input, const int8_t *filter,
                                                      const int32_t *bias, int8_t *output, td_requant_mode_t mode)
{
    if (mode.narrow && mode.full_range) {
        planes_3x3(params, input, filter, bias, output, 1, 1);
    } else if (mode.narrow) {
        planes_3x3(params, input, filter, bias, output, 1, 0);
    } else {
        planes_3x3(params, input, filter, bias, output, 0, mode.full_range);
    }
}

/* The depth % 4 channels left after the groups: the reference arithmetic, channel by channel. */
static void last_channels(const td_depthwise_conv_params_t *params, const int8_t *input, const int8_t *filter,
                          const int32_t *bias, int8_t *output, int32_t first_channel)
{
    const int32_t input_height = params->input_height;
    const int32_t input_width = params->input_width;
    const int32_t depth = params->input_depth;
    for (int32_t batch = 0; batch < params->batches; ++batch) {
        const int8_t *image = input + batch * input_height * input_width * depth;
        for (int32_t out_y = 0; out_y < params->output_height; ++out_y) {
            const int32_t in_y_origin = out_y * params->stride_height - params->pad_height;
            for (int32_t out_x = 0; out_x < params->output_width; ++out_x) {
                const int32_t in_x_origin = out_x * params->stride_width - params->pad_width;
                int8_t *out = output + ((batch * params->output_height + out_y) * params->output_width + out_x) * depth;
                for (int32_t channel = first_channel; channel < depth; ++channel) {
                    int32_t acc = bias != 0 ? bias[channel] : 0;
                    for (int32_t fy = 0; fy < params->filter_height; ++fy) {
                        const int32_t in_y = in_y_origin + params->dilation_height * fy;
                        for (int32_t fx = 0; fx < params->filter_width; ++fx) {
                            const int32_t in_x = in_x_origin + params->dilation_width * fx;
                            if (in_y >= 0 && in_y < input_height && in_x >= 0 && in_x < input_width) {
                                acc += filter[(fy * params->filter_width + fx) * depth + channel] *
                                       (image[(in_y * input_width + in_x) * depth + channel] + params->input_offset);
                            }
                        }
                    }
                    acc = td_multiply_by_quantized_multiplier(acc, params->output_multiplier[channel],
                                                              params->output_shift[channel]);
                    out[channel] = (int8_t)td_clamp_s32(acc + params->output_offset, params->activation_min,
                                                        params->activation_max);
                }
            }
        }
    }
}

void td_depthwise_conv_s8_m4(const td_depthwise_conv_params_t *params, const int8_t *input, const int8_t *filter,
                             const int32_t *bias, int8_t *output)
{
    const int32_t taps = params->filter_height * params->filter_width;
    const int32_t depth = params->input_depth;
    const int32_t is_3x3 = params->filter_height == 3 && params->filter_width == 3;
    const td_requant_mode_t mode =
        td_requant_mode(params->output_multiplier, params->output_shift, bias, params->output_depth, taps,
                        params->input_offset, params->output_offset, params->activation_min, params->activation_max);
    if (params->depth_multiplier != 1 || !mode.usable || taps > TD_DW_MAX_TAPS) {
        td_depthwise_conv_s8(params, input, filter, bias, output);
        return;
    }
    if (planes_apply(params)) {
        planes_3x3_call(params, input, filter, bias, output, mode);
        return;
    }
    uint32_t packed[TD_DW_PACKED_WORDS];
    int8_t window[9 * TD_DW_CHUNK_CHANNELS];
    const int32_t full_groups = depth >> 2;
    for (int32_t group = 0; group < full_groups; group += TD_DW_CHUNK_GROUPS) {
        const int32_t groups = full_groups - group < TD_DW_CHUNK_GROUPS ? full_groups - group : TD_DW_CHUNK_GROUPS;
        const chunk_t chunk = {params, input, filter, bias, output, 4 * group, groups};
        if (is_3x3) {
            pack_3x3(&chunk, packed, mode.narrow);
            if (mode.narrow && mode.full_range) {
                chunk_3x3(&chunk, packed, window, 1, 1);
            } else if (mode.narrow) {
                chunk_3x3(&chunk, packed, window, 1, 0);
            } else {
                chunk_3x3(&chunk, packed, window, 0, mode.full_range);
            }
        } else {
            pack_taps(&chunk, packed);
            if (mode.narrow && mode.full_range) {
                chunk_any(&chunk, packed, 1, 1);
            } else if (mode.narrow) {
                chunk_any(&chunk, packed, 1, 0);
            } else {
                chunk_any(&chunk, packed, 0, mode.full_range);
            }
        }
    }
    if (4 * full_groups < depth) {
        last_channels(params, input, filter, bias, output, 4 * full_groups);
    }
}
