/* CONV_2D, int8, from weights widened at generation time, for the Cortex-M4's dual 16-bit
 * MACs; bit-exact with the reference td_conv_s8 given the weights it was generated from.
 * The DS-CNNs' pointwise convolutions and their first (10x4) convolution take it.
 *
 * The weights come laid out at generation time for the inner loop
 * (tinydrift.codegen.model_lowering.conv_widened_m4_layout): already widened to 16-bit
 * pairs, so a word loaded is a SMLAD operand with no SXTB16, and the input offset folded
 * into a per-channel bias (sum of w * (x + offset) = sum of w * x + offset * sum of w), so
 * the input is widened without it; a window over the edge gets the zero point in its
 * missing cells (w * zero point + offset * w = 0: the term the reference omits). Each
 * output pixel's column (its receptive field, [filter_y][filter_x][channel]) is widened
 * once (td_column_pair_fill_window; a 1x1 filter without padding widens the pixel). Four output
 * channels by two pixels at a time: per pair of column values, the two pixels' words and
 * the four channels' words feed 8 SMLADs (16 MACs), each input word serving four channels
 * and each weight word two pixels.
 *
 * `layout`, per block of four output channels c..c+3, in the order the loop reads it:
 *   - the four folded biases, doubled;
 *   - per group of four depth values d..d+3, the pairs (d, d+2) then (d+1, d+3) (the order
 *     SXTB16 and SXTB16 ROR 8 widen an input word in), each pair for channels c..c+3: one
 *     word, low half the first value, doubled (so the accumulators are twice the
 *     reference's, as the requantization's SMMULR wants them);
 *   - per channel, its multiplier, K and right shift (td_requantize_narrow_folded's
 *     words: the output offset folded into K).
 * Requires no groups, a column of a multiple of 4 values and at most
 * TD_CONV_WIDENED_COLUMN_MAX, output_depth % 4 == 0, no multiplier INT32_MIN (the generator
 * checks them). Stack: a td_column_pair_t with room to align it (3 KB) and a gathered
 * window (256 B). */
#include "../td_kernels.h"
#include "td_dsp.h"
#include "td_kernels_m4.h"
#include "td_nn_m4.h"
#include "td_requant_fast.h"

/* The columns are a td_column_pair_t (td_nn_m4.h) filled with offset 0. On the M4 the
 * depth loop ends when the column pointer, which stays 16 bytes behind the group it reads,
 * reaches an address that is a multiple of TD_CONV_WIDENED_ALIGN: the fourteen registers of
 * the loop leave none for a counter. The two widened columns take 4 * depth bytes, at most
 * TD_CONV_WIDENED_ALIGN, placed so that they end 16 bytes past such an address. */
#define TD_CONV_WIDENED_ALIGN (4 * TD_CONV_WIDENED_COLUMN_MAX)

#if TD_KERNELS_ASM
/* Every block of four channels of two pixels in one asm block: per block, about 15 cycles
 * to start, 132 per 16 column values (four loads back to back, 8 SMLADs, two loads, 8
 * SMLADs, eight times, then the end test; a column of 16k + 8 values enters halfway), about
 * 65 to requantize and store eight outputs (td_requantize_narrow_folded: SMMLAR, the sign,
 * the shift, SSAT; the accumulators already doubled). Fourteen registers hold the loop, so
 * the call's constants live on the stack: out0, the distance to the second pixel's output,
 * the blocks left (`frame`) and where the columns start; whether a block's column starts
 * halfway is two copies of the loop, not a test per block. */
static void blocks_asm(const uint32_t *x, const uint32_t *layout, uint32_t *frame, int32_t halfway)
{
    int32_t a00, a01, a10, a11, a20, a21, a30, a31; /* a<channel><pixel> */
    uint32_t t0 = (uint32_t)frame, t1, t2, t3;
/* Two steps per group of four column values: its words are column 0's (x0, x2), (x1, x3),
 * then column 1's; x moves on by 16 before the first. */
#define TD_WIDENED_STEP(first, second)                 \
    "ldr    %[t0], [%[x], #" first "\n\t"              \
    "ldr    %[t1], [%[x], #" second "\n\t"             \
    "ldr    %[t2], [%[w]], #4\n\t"                     \
    "ldr    %[t3], [%[w]], #4\n\t"                     \
    "smlad  %[a00], %[t2], %[t0], %[a00]\n\t"          \
    "smlad  %[a01], %[t2], %[t1], %[a01]\n\t"          \
    "smlad  %[a10], %[t3], %[t0], %[a10]\n\t"          \
    "smlad  %[a11], %[t3], %[t1], %[a11]\n\t"          \
    "ldr    %[t2], [%[w]], #4\n\t"                     \
    "ldr    %[t3], [%[w]], #4\n\t"                     \
    "smlad  %[a20], %[t2], %[t0], %[a20]\n\t"          \
    "smlad  %[a21], %[t2], %[t1], %[a21]\n\t"          \
    "smlad  %[a30], %[t3], %[t0], %[a30]\n\t"          \
    "smlad  %[a31], %[t3], %[t1], %[a31]\n\t"
    /* td_requantize_narrow_folded of one channel's two outputs, saturated to int8: (m, K,
     * e) from the layout (the accumulators are already twice the reference's: the
     * layout's weights are doubled). */
#define TD_WIDENED_REQUANTIZE(acc0, acc1)                    \
    "ldr    %[t0], [%[w]], #4\n\t"                      \
    "ldr    %[t1], [%[w]], #4\n\t"                      \
    "ldr    %[t2], [%[w]], #4\n\t"                      \
    "smmlar %[t3], " acc0 ", %[t0], %[t1]\n\t"          \
    "add    %[t3], %[t3], " acc0 ", asr #31\n\t"        \
    "asr    " acc0 ", %[t3], %[t2]\n\t"                 \
    "smmlar %[t3], " acc1 ", %[t0], %[t1]\n\t"          \
    "add    %[t3], %[t3], " acc1 ", asr #31\n\t"        \
    "asr    " acc1 ", %[t3], %[t2]\n\t"                 \
    "ssat   " acc0 ", #8, " acc0 "\n\t"                 \
    "ssat   " acc1 ", #8, " acc1 "\n\t"
    /* Registers in LDM/PUSH lists go by number, which the operands do not fix: single loads
     * and stores here (back to back they cost what LDM does). */
#define TD_WIDENED_LOAD4(a, b, c, d)                       \
    "ldr    " a ", [%[w]], #4\n\t"                      \
    "ldr    " b ", [%[w]], #4\n\t"                      \
    "ldr    " c ", [%[w]], #4\n\t"                      \
    "ldr    " d ", [%[w]], #4\n\t"
    /* The blocks' loop; `entry` starts each block's column: nothing, or a branch halfway. */
#define TD_WIDENED_BLOCKS(entry)                                                                          \
    "ldr    %[t1], [%[t0], #4]\n\t"                                                                       \
    "ldr    %[a00], [%[t0], #8]\n\t"                                                                      \
    "ldr    %[t0], [%[t0]]\n\t"                                                                           \
    "sub    sp, sp, #16\n\t"                      /* [sp]: blocks left, the column start, out0, */          \
    "str    %[a00], [sp]\n\t"                     /* pixel step (8-byte aligned) */                         \
    "str    %[x], [sp, #4]\n\t"                                                                           \
    "str    %[t0], [sp, #8]\n\t"                                                                          \
    "str    %[t1], [sp, #12]\n\t"                                                                         \
    "1:\n\t"                                                                                              \
    TD_WIDENED_LOAD4("%[a00]", "%[a10]", "%[a20]", "%[a30]")                                              \
    "mov    %[a01], %[a00]\n\t"                                                                           \
    "mov    %[a11], %[a10]\n\t"                                                                           \
    "mov    %[a21], %[a20]\n\t"                                                                           \
    "mov    %[a31], %[a30]\n\t"                                                                           \
    entry                                                                                                 \
    "2:\n\t"                                                                                              \
    TD_WIDENED_STEP("16]!", "8]") TD_WIDENED_STEP("4]", "12]")                                            \
    TD_WIDENED_STEP("16]!", "8]") TD_WIDENED_STEP("4]", "12]")                                            \
    "3:\n\t"                                                                                              \
    TD_WIDENED_STEP("16]!", "8]") TD_WIDENED_STEP("4]", "12]")                                            \
    TD_WIDENED_STEP("16]!", "8]") TD_WIDENED_STEP("4]", "12]")                                            \
    "tst    %[x], %[end_mask]\n\t"                                                                        \
    "bne    2b\n\t"                                                                                       \
    "ldr    %[x], [sp, #4]\n\t"                   /* back to 16 bytes before the columns */                 \
    TD_WIDENED_REQUANTIZE("%[a00]", "%[a01]") TD_WIDENED_REQUANTIZE("%[a10]", "%[a11]")                   \
    TD_WIDENED_REQUANTIZE("%[a20]", "%[a21]") TD_WIDENED_REQUANTIZE("%[a30]", "%[a31]")                   \
    "ldr    %[t0], [sp, #8]\n\t"                  /* out0 */                                                \
    "ldr    %[t2], [sp, #12]\n\t"                 /* pixel step */                                          \
    "add    %[t3], %[t0], %[t2]\n\t"                                                                      \
    "strb   %[a00], [%[t0]], #4\n\t"                                                                      \
    "strb   %[a10], [%[t0], #-3]\n\t"                                                                     \
    "strb   %[a20], [%[t0], #-2]\n\t"                                                                     \
    "strb   %[a30], [%[t0], #-1]\n\t"                                                                     \
    "strb   %[a01], [%[t3]]\n\t"                                                                          \
    "strb   %[a11], [%[t3], #1]\n\t"                                                                      \
    "strb   %[a21], [%[t3], #2]\n\t"                                                                      \
    "strb   %[a31], [%[t3], #3]\n\t"                                                                      \
    "str    %[t0], [sp, #8]\n\t"                                                                          \
    "ldr    %[t1], [sp]\n\t"                                                                              \
    "subs   %[t1], %[t1], #1\n\t"                                                                         \
    "str    %[t1], [sp]\n\t"                                                                              \
    "bne    1b\n\t"                                                                                       \
    "add    sp, sp, #16\n\t"
#define TD_WIDENED_OPERANDS                                                                               \
    : [a00] "=&r"(a00), [a01] "=&r"(a01), [a10] "=&r"(a10), [a11] "=&r"(a11), [a20] "=&r"(a20),           \
      [a21] "=&r"(a21), [a30] "=&r"(a30), [a31] "=&r"(a31), [x] "+r"(x), [w] "+r"(layout), [t0] "+r"(t0), \
      [t1] "=&r"(t1), [t2] "=&r"(t2), [t3] "=&r"(t3)                                                      \
    : [end_mask] "i"(TD_CONV_WIDENED_ALIGN - 4)                                                           \
    : "cc", "memory"
    if (halfway) { /* a column of 16k + 8 values */
        __asm volatile(TD_WIDENED_BLOCKS("b      3f\n\t") TD_WIDENED_OPERANDS);
    } else {
        __asm volatile(TD_WIDENED_BLOCKS("") TD_WIDENED_OPERANDS);
    }
#undef TD_WIDENED_OPERANDS
#undef TD_WIDENED_BLOCKS
#undef TD_WIDENED_LOAD4
#undef TD_WIDENED_REQUANTIZE
#undef TD_WIDENED_STEP
}
#endif

/* The same arithmetic in C: one block of four channels for two pixels. */
static TD_ALWAYS_INLINE const uint32_t *block_c(const td_conv_params_t *params, const uint32_t *x,
                                                const uint32_t *w, int32_t c, int8_t *out0, int8_t *out1,
                                                const int32_t narrow, const int32_t full_range)
{
    int32_t a00 = (int32_t)w[0], a10 = (int32_t)w[1], a20 = (int32_t)w[2], a30 = (int32_t)w[3]; /* a<ch><px> */
    int32_t a01 = a00, a11 = a10, a21 = a20, a31 = a30;
    w += 4;
    const int32_t depth = params->filter_height * params->filter_width * params->input_depth;
    for (int32_t k = 0; k < depth / 2; ++k, w += 4) {
        const uint32_t xa = x[(k >> 1) * 4 + (k & 1)], xb = x[(k >> 1) * 4 + 2 + (k & 1)];
        a00 = td_smlad(w[0], xa, a00);
        a01 = td_smlad(w[0], xb, a01);
        a10 = td_smlad(w[1], xa, a10);
        a11 = td_smlad(w[1], xb, a11);
        a20 = td_smlad(w[2], xa, a20);
        a21 = td_smlad(w[2], xb, a21);
        a30 = td_smlad(w[3], xa, a30);
        a31 = td_smlad(w[3], xb, a31);
    }
    /* Twice the reference's accumulators (doubled weights; the generator keeps them below
     * 2^31): halved exactly. The layout's multipliers and shifts are the narrow folded
     * form's; the params' serve all. */
    a00 >>= 1, a01 >>= 1, a10 >>= 1, a11 >>= 1, a20 >>= 1, a21 >>= 1, a30 >>= 1, a31 >>= 1;
    const int32_t *m = params->output_multiplier + c, *s = params->output_shift + c;
    const int32_t offset = params->output_offset, lo = params->activation_min, hi = params->activation_max;
    out0[0] = td_requantize_s8(a00, m[0], s[0], offset, lo, hi, narrow, full_range);
    out0[1] = td_requantize_s8(a10, m[1], s[1], offset, lo, hi, narrow, full_range);
    out0[2] = td_requantize_s8(a20, m[2], s[2], offset, lo, hi, narrow, full_range);
    out0[3] = td_requantize_s8(a30, m[3], s[3], offset, lo, hi, narrow, full_range);
    out1[0] = td_requantize_s8(a01, m[0], s[0], offset, lo, hi, narrow, full_range);
    out1[1] = td_requantize_s8(a11, m[1], s[1], offset, lo, hi, narrow, full_range);
    out1[2] = td_requantize_s8(a21, m[2], s[2], offset, lo, hi, narrow, full_range);
    out1[3] = td_requantize_s8(a31, m[3], s[3], offset, lo, hi, narrow, full_range);
    return w + 12;
}

static TD_ALWAYS_INLINE void convolution(const td_conv_params_t *params, const int8_t *input,
                                         const uint32_t *layout, int8_t *output, td_column_pair_t *pair,
                                         const int32_t narrow, const int32_t full_range)
{
    const int32_t depth = params->filter_height * params->filter_width * params->input_depth;
    int8_t field[TD_CONV_WIDENED_COLUMN_MAX];
    const int32_t pointwise = params->filter_height == 1 && params->filter_width == 1 && params->pad_height == 0 &&
                              params->pad_width == 0;
    const int32_t output_depth = params->output_depth;
    const int32_t output_width = params->output_width;
    const int32_t pixels = params->output_height * output_width;
    const int32_t image_bytes = params->input_height * params->input_width * params->input_depth;
#if TD_KERNELS_ASM
    const int32_t use_asm = narrow && full_range && depth % 8 == 0;
#endif
    for (int32_t batch = 0; batch < params->batches; ++batch) {
        const int8_t *image = input + batch * image_bytes;
        int8_t *out = output + batch * pixels * output_depth;
        for (int32_t pixel = 0; pixel < pixels; pixel += 2) {
            const int32_t both = pixel + 1 < pixels;
            for (int32_t which = 0; which < 2; ++which) {
                /* A last odd pixel fills both columns and writes its outputs twice. */
                const int32_t p = both ? pixel + which : pixel;
                const int32_t out_y = p / output_width, out_x = p - out_y * output_width;
                if (pointwise) { /* the pixel itself, without the window's bookkeeping */
                    td_column_pair_fill(pair, which,
                                        image + (out_y * params->stride_height * params->input_width +
                                                 out_x * params->stride_width) * depth, depth, 0);
                } else {
                    td_column_pair_fill_window(pair, which, params, image, out_y, out_x, 0, field);
                }
            }
            int8_t *out0 = out + pixel * output_depth;
            const int32_t step = both ? output_depth : 0;
#if TD_KERNELS_ASM
            if (use_asm) {
                uint32_t frame[3] = {(uint32_t)out0, (uint32_t)step, (uint32_t)(output_depth / 4)};
                blocks_asm(pair->words - 4, layout, frame, depth % 16 != 0);
                continue;
            }
#endif
            const uint32_t *w = layout;
            for (int32_t c = 0; c < output_depth; c += 4) {
                w = block_c(params, pair->words, w, c, out0 + c, out0 + step + c, narrow, full_range);
            }
        }
    }
}

/* td_requant_mode for the folded biases in the layout: the accumulators are the
 * reference's, bounded by |folded bias| + depth * 128 * 128 (int8 products). */
static td_requant_mode_t narrow_mode(const td_conv_params_t *params, const uint32_t *layout)
{
    const int32_t depth = params->filter_height * params->filter_width * params->input_depth;
    td_requant_mode_t mode =
        td_requant_mode(params->output_multiplier, params->output_shift, 0, params->output_depth, depth,
                        params->input_offset, params->output_offset, params->activation_min,
                        params->activation_max);
    const int64_t products = (int64_t)depth * 128 * 128;
    const int32_t block_words = 4 + 2 * depth + 12;
    for (int32_t c = 0; c < params->output_depth; c += 4, layout += block_words) {
        for (int32_t j = 0; j < 4; ++j) {
            const int64_t bias = (int32_t)layout[j] / 2; /* the layout's are doubled */
            if ((bias < 0 ? -bias : bias) + products >= ((int64_t)1 << 30)) {
                mode.narrow = 0;
            }
        }
    }
    return mode;
}

void td_conv_widened_s8_m4(const td_conv_params_t *params, const int8_t *input, const uint32_t *layout,
                           int8_t *output)
{
    const td_requant_mode_t mode = narrow_mode(params, layout);
    uint32_t space[(TD_CONV_WIDENED_ALIGN + sizeof(td_column_pair_t)) / 4 + 4];
    /* The columns end 16 bytes past a multiple of TD_CONV_WIDENED_ALIGN (see above). */
    const uintptr_t bytes = 4u * (uintptr_t)(params->filter_height * params->filter_width * params->input_depth);
    const uintptr_t mark = ((uintptr_t)space + bytes - 16 + (TD_CONV_WIDENED_ALIGN - 1)) &
                           ~(uintptr_t)(TD_CONV_WIDENED_ALIGN - 1);
    td_column_pair_t *pair = (td_column_pair_t *)(mark + 16 - bytes);
    if (mode.narrow && mode.full_range) {
        convolution(params, input, layout, output, pair, 1, 1);
    } else if (mode.narrow) {
        convolution(params, input, layout, output, pair, 1, 0);
    } else {
        convolution(params, input, layout, output, pair, 0, mode.full_range);
    }
}
