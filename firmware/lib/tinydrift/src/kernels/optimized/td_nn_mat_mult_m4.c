/* The inner product of the optimized CONV_2D and FULLY_CONNECTED: int8 weight rows against
 * q15 columns with dual 16-bit MACs, two output channels by two columns at a time: per
 * group of four depth values, 2 weight loads widened by 4 SXTB16s and 4 column words feed
 * 8 SMLADs (16 MACs). The C loops are specialized on the requantization mode (constant
 * flags, so each case compiles to its own straight code); on the M4 the inner loop, or
 * with a plan the whole channel loop, is an asm block (TD_KERNELS_ASM). */
#include "td_dsp.h"
#include "td_nn_m4.h"

void td_column_pair_fill(td_column_pair_t *pair, int32_t which, const int8_t *source, int32_t depth, int32_t offset)
{
    const uint32_t offsets = td_dup_half(offset);
    uint32_t *words = pair->words + 2 * which;
    int32_t i = 0;
    for (; i + 8 <= depth; i += 8, words += 8) { /* two groups a pass: the loop's test and branch cost as much */
        const uint32_t x = td_read_u32(source + i), y = td_read_u32(source + i + 4);
        words[0] = td_sxtab16(offsets, x);      /* (x0, x2) */
        words[1] = td_sxtab16_ror8(offsets, x); /* (x1, x3) */
        words[4] = td_sxtab16(offsets, y);
        words[5] = td_sxtab16_ror8(offsets, y);
    }
    for (; i + 4 <= depth; i += 4, words += 4) {
        const uint32_t x = td_read_u32(source + i);
        words[0] = td_sxtab16(offsets, x);
        words[1] = td_sxtab16_ror8(offsets, x);
    }
    for (int32_t r = 0; i < depth; ++i, ++r) {
        pair->tail[which][r] = (int16_t)(source[i] + offset);
    }
}

void td_column_pair_fill_rows(td_column_pair_t *pair, int32_t which, const int8_t *first_row, int32_t rows,
                              int32_t row_bytes, int32_t row_stride, int32_t offset)
{
    const uint32_t offsets = td_dup_half(offset);
    uint32_t *words = pair->words + 2 * which;
    if (row_bytes == 4) { /* one word a row (the KWS stem's 4x1 rows): no inner loop */
        for (int32_t r = 0; r < rows; ++r, first_row += row_stride, words += 4) {
            const uint32_t x = td_read_u32(first_row);
            words[0] = td_sxtab16(offsets, x);
            words[1] = td_sxtab16_ror8(offsets, x);
        }
        return;
    }
    for (int32_t r = 0; r < rows; ++r, first_row += row_stride) {
        for (int32_t i = 0; i < row_bytes; i += 4, words += 4) {
            const uint32_t x = td_read_u32(first_row + i);
            words[0] = td_sxtab16(offsets, x);
            words[1] = td_sxtab16_ror8(offsets, x);
        }
    }
}

const uint32_t *td_mat_mult_plan(const td_mat_mult_t *mat, uint32_t *plan)
{
#if TD_KERNELS_ASM
    const int32_t channels = mat->output_depth;
    if (!mat->mode.narrow || !mat->mode.full_range || mat->depth % 8 != 0 || mat->depth == 0 || channels % 2 != 0 ||
        channels > TD_MAT_MULT_PLAN_CHANNELS) {
        return 0;
    }
    uint32_t *entry = plan;
    for (int32_t channel = 0; channel < channels; channel += 2, entry += TD_MAT_MULT_PLAN_WORDS) {
        entry[0] = mat->bias != 0 ? (uint32_t)mat->bias[channel] : 0u;
        entry[1] = mat->bias != 0 ? (uint32_t)mat->bias[channel + 1] : 0u;
        entry[2] = (uint32_t)(mat->depth / 8);              /* iterations of two groups */
        entry[3] = (uint32_t)channels;                      /* output1 - output0 */
        entry[4] = (uint32_t)(2 * mat->output_offset + 1);
        entry[5] = (uint32_t)mat->output_multiplier[channel];
        entry[6] = (uint32_t)~mat->output_shift[channel];   /* right shift - 1 */
        entry[7] = (uint32_t)mat->output_multiplier[channel + 1];
        entry[8] = (uint32_t)~mat->output_shift[channel + 1];
        entry[9] = (uint32_t)(4 * mat->depth);              /* bytes of the column pair read */
        entry[10] = channel + 2 < channels;                 /* another pair follows */
    }
    return plan;
#else
    (void)mat;
    (void)plan;
    return 0;
#endif
}

#if TD_KERNELS_ASM
/* Every output channel of two columns in one asm block (see td_mat_mult_plan): per pair of
 * channels, 38 instructions per 8 depth values and 51 to start, requantize, store and step
 * on (GCC's code around the inner loop alone took twice that). Fourteen registers hold
 * the block's values, so the plan and output pointers go to the stack for the inner loop
 * and serve there as the second column's words: each group then loads its five words back
 * to back (6 cycles on the M4, where a load behind a load takes one) and never reloads a
 * column. */
static void two_columns_planned(const td_mat_mult_t *mat, const td_column_pair_t *pair, int8_t *output0)
{
    const int8_t *w = mat->weights;
    const uint32_t *x = pair->words;
    const uint32_t *plan = mat->plan;
    const int32_t next_row = mat->depth - 4; /* from w after its post-increment */
    int32_t a00, a01, a10, a11, pairs;
    uint32_t wa, wt, x0, x1;
    /* a<channel><column>; column 0's words in x0, x1, column 1's in plan, out */
#define TD_MM_GROUP                                     \
    "ldr    %[wa], [%[w]], #4\n\t"                      \
    "ldr    %[x1], [%[x], #4]\n\t"                      \
    "ldr    %[plan], [%[x], #8]\n\t"                    \
    "ldr    %[out], [%[x], #12]\n\t"                    \
    "ldr    %[x0], [%[x]], #16\n\t"                     \
    "sxtb16 %[wt], %[wa], ror #8\n\t"                   \
    "sxtb16 %[wa], %[wa]\n\t"                           \
    "smlad  %[a00], %[wa], %[x0], %[a00]\n\t"           \
    "smlad  %[a01], %[wa], %[plan], %[a01]\n\t"         \
    "smlad  %[a00], %[wt], %[x1], %[a00]\n\t"           \
    "smlad  %[a01], %[wt], %[out], %[a01]\n\t"          \
    "ldr    %[wa], [%[w], %[next_row]]\n\t"             \
    "sxtb16 %[wt], %[wa], ror #8\n\t"                   \
    "sxtb16 %[wa], %[wa]\n\t"                           \
    "smlad  %[a10], %[wa], %[x0], %[a10]\n\t"           \
    "smlad  %[a11], %[wa], %[plan], %[a11]\n\t"         \
    "smlad  %[a10], %[wt], %[x1], %[a10]\n\t"           \
    "smlad  %[a11], %[wt], %[out], %[a11]\n\t"
    /* acc = ((SMMULR(2 acc, m) + (its sign)) >> (e - 1)) + 2 offset + 1) >> 1, as
     * td_requantize_narrow_offset; m in wa, e - 1 in wt, 2 offset + 1 in x1. */
#define TD_MM_REQUANTIZE(acc)                           \
    "lsl    " acc ", " acc ", #1\n\t"                   \
    "smmulr " acc ", " acc ", %[wa]\n\t"                \
    "add    " acc ", " acc ", " acc ", asr #31\n\t"     \
    "asr    " acc ", " acc ", %[wt]\n\t"                \
    "add    " acc ", " acc ", %[x1]\n\t"                \
    "asr    " acc ", " acc ", #1\n\t"                   \
    "ssat   " acc ", #8, " acc "\n\t"
    __asm volatile("1:\n\t"
                   "ldrd   %[a00], %[a10], [%[plan]], #8\n\t"
                   "ldr    %[pairs], [%[plan]], #4\n\t"
                   "mov    %[a01], %[a00]\n\t"
                   "mov    %[a11], %[a10]\n\t"
                   "strd   %[plan], %[out], [sp, #-8]!\n\t"
                   "2:\n\t"
                   TD_MM_GROUP TD_MM_GROUP
                   "subs   %[pairs], %[pairs], #1\n\t"
                   "bne    2b\n\t"
                   "ldrd   %[plan], %[out], [sp], #8\n\t"
                   "ldrd   %[x0], %[x1], [%[plan]], #8\n\t"     /* output stride, 2 offset + 1 */
                   "ldrd   %[wa], %[wt], [%[plan]], #8\n\t"     /* channel c */
                   TD_MM_REQUANTIZE("%[a00]") TD_MM_REQUANTIZE("%[a01]")
                   "strb   %[a00], [%[out]]\n\t"
                   "strb   %[a01], [%[out], %[x0]]\n\t"
                   "ldrd   %[wa], %[wt], [%[plan]], #8\n\t"     /* channel c + 1 */
                   TD_MM_REQUANTIZE("%[a10]") TD_MM_REQUANTIZE("%[a11]")
                   "strb   %[a10], [%[out], #1]!\n\t"
                   "strb   %[a11], [%[out], %[x0]]\n\t"
                   "add    %[out], %[out], #1\n\t"
                   "ldrd   %[wa], %[wt], [%[plan]], #8\n\t"     /* column bytes, more */
                   "sub    %[x], %[x], %[wa]\n\t"
                   "add    %[w], %[w], %[next_row]\n\t"
                   "add    %[w], %[w], #4\n\t"
                   "cmp    %[wt], #0\n\t"
                   "bne    1b\n\t"
                   : [a00] "=&r"(a00), [a01] "=&r"(a01), [a10] "=&r"(a10), [a11] "=&r"(a11), [pairs] "=&r"(pairs),
                     [w] "+r"(w), [x] "+r"(x), [plan] "+r"(plan), [out] "+r"(output0), [wa] "=&r"(wa),
                     [wt] "=&r"(wt), [x0] "=&r"(x0), [x1] "=&r"(x1)
                   : [next_row] "r"(next_row)
                   : "cc", "memory");
#undef TD_MM_REQUANTIZE
#undef TD_MM_GROUP
}
#endif

static TD_ALWAYS_INLINE void two_columns(const td_mat_mult_t *mat, const td_column_pair_t *pair, int8_t *output0,
                                         int8_t *output1, const int32_t narrow, const int32_t full_range)
{
    const int32_t depth = mat->depth;
    const int32_t groups = depth >> 2;
    const int32_t rest = depth & 3;
    const int32_t output_offset = mat->output_offset;
    const int32_t act_min = mat->activation_min, act_max = mat->activation_max;
    const int8_t *row = mat->weights;
    int32_t channel = 0;
    for (; channel + 2 <= mat->output_depth; channel += 2, row += 2 * depth) {
        const int32_t bias0 = mat->bias != 0 ? mat->bias[channel] : 0;
        const int32_t bias1 = mat->bias != 0 ? mat->bias[channel + 1] : 0;
        int32_t a00 = bias0, a01 = bias0, a10 = bias1, a11 = bias1; /* a<channel><column> */
        const uint32_t *x = pair->words;
        const int8_t *w = row;
        int32_t g = groups;
#if TD_KERNELS_ASM
        if (g >= 2) {
            /* Two groups per iteration, 38 instructions for 32 MACs; the five loads of a
             * group back to back (6 cycles on the M4, where LDRDs took 8). GCC's
             * allocation of the C below spills a pointer in this loop, so on the M4 it is
             * written out. */
            int32_t pairs = g >> 1;
            const int32_t next_row = depth - 4; /* from w after its post-increment */
            uint32_t wa, wt, x0, x1, x2, x3;
#define TD_MAT_MULT_GROUP                          \
    "ldr    %[wa], [%[w]], #4\n\t"                 \
    "ldr    %[x0], [%[x]], #4\n\t"                 \
    "ldr    %[x1], [%[x]], #4\n\t"                 \
    "ldr    %[x2], [%[x]], #4\n\t"                 \
    "ldr    %[x3], [%[x]], #4\n\t"                 \
    "sxtb16 %[wt], %[wa], ror #8\n\t"              \
    "sxtb16 %[wa], %[wa]\n\t"                      \
    "smlad  %[a00], %[wa], %[x0], %[a00]\n\t"      \
    "smlad  %[a01], %[wa], %[x2], %[a01]\n\t"      \
    "smlad  %[a00], %[wt], %[x1], %[a00]\n\t"      \
    "smlad  %[a01], %[wt], %[x3], %[a01]\n\t"      \
    "ldr    %[wa], [%[w], %[next_row]]\n\t"        \
    "sxtb16 %[wt], %[wa], ror #8\n\t"              \
    "sxtb16 %[wa], %[wa]\n\t"                      \
    "smlad  %[a10], %[wa], %[x0], %[a10]\n\t"      \
    "smlad  %[a11], %[wa], %[x2], %[a11]\n\t"      \
    "smlad  %[a10], %[wt], %[x1], %[a10]\n\t"      \
    "smlad  %[a11], %[wt], %[x3], %[a11]\n\t"
            __asm volatile("1:\n\t" TD_MAT_MULT_GROUP TD_MAT_MULT_GROUP
                           "subs   %[pairs], %[pairs], #1\n\t"
                           "bne    1b\n\t"
                           : [a00] "+r"(a00), [a01] "+r"(a01), [a10] "+r"(a10), [a11] "+r"(a11), [w] "+r"(w),
                             [x] "+r"(x), [pairs] "+r"(pairs), [wa] "=&r"(wa), [wt] "=&r"(wt), [x0] "=&r"(x0),
                             [x1] "=&r"(x1), [x2] "=&r"(x2), [x3] "=&r"(x3)
                           : [next_row] "r"(next_row)
                           : "cc", "memory");
#undef TD_MAT_MULT_GROUP
            g &= 1;
        }
#endif
        for (; g > 0; --g) {
            const uint32_t wa = td_read_u32(w);
            const uint32_t wb = td_read_u32(w + depth);
            const uint32_t x0_02 = x[0], x0_13 = x[1], x1_02 = x[2], x1_13 = x[3];
            const uint32_t wa_02 = td_sxtb16(wa), wa_13 = td_sxtb16_ror8(wa);
            const uint32_t wb_02 = td_sxtb16(wb), wb_13 = td_sxtb16_ror8(wb);
            w += 4;
            x += 4;
            a00 = td_smlad(wa_02, x0_02, a00);
            a00 = td_smlad(wa_13, x0_13, a00);
            a01 = td_smlad(wa_02, x1_02, a01);
            a01 = td_smlad(wa_13, x1_13, a01);
            a10 = td_smlad(wb_02, x0_02, a10);
            a10 = td_smlad(wb_13, x0_13, a10);
            a11 = td_smlad(wb_02, x1_02, a11);
            a11 = td_smlad(wb_13, x1_13, a11);
        }
        for (int32_t r = 0; r < rest; ++r) {
            a00 += w[r] * pair->tail[0][r];
            a01 += w[r] * pair->tail[1][r];
            a10 += w[depth + r] * pair->tail[0][r];
            a11 += w[depth + r] * pair->tail[1][r];
        }
        const int32_t m0 = mat->output_multiplier[channel], s0 = mat->output_shift[channel];
        const int32_t m1 = mat->output_multiplier[channel + 1], s1 = mat->output_shift[channel + 1];
        output0[channel] = td_requantize_s8(a00, m0, s0, output_offset, act_min, act_max, narrow, full_range);
        output1[channel] = td_requantize_s8(a01, m0, s0, output_offset, act_min, act_max, narrow, full_range);
        output0[channel + 1] = td_requantize_s8(a10, m1, s1, output_offset, act_min, act_max, narrow, full_range);
        output1[channel + 1] = td_requantize_s8(a11, m1, s1, output_offset, act_min, act_max, narrow, full_range);
    }
    if (channel < mat->output_depth) { /* an odd last channel */
        int32_t a00 = mat->bias != 0 ? mat->bias[channel] : 0;
        int32_t a01 = a00;
        const uint32_t *x = pair->words;
        for (int32_t g = 0; g < groups; ++g, x += 4) {
            const uint32_t wa = td_read_u32(row + 4 * g);
            const uint32_t wa_02 = td_sxtb16(wa), wa_13 = td_sxtb16_ror8(wa);
            a00 = td_smlad(wa_13, x[1], td_smlad(wa_02, x[0], a00));
            a01 = td_smlad(wa_13, x[3], td_smlad(wa_02, x[2], a01));
        }
        for (int32_t r = 0; r < rest; ++r) {
            a00 += row[4 * groups + r] * pair->tail[0][r];
            a01 += row[4 * groups + r] * pair->tail[1][r];
        }
        const int32_t m0 = mat->output_multiplier[channel], s0 = mat->output_shift[channel];
        output0[channel] = td_requantize_s8(a00, m0, s0, output_offset, act_min, act_max, narrow, full_range);
        output1[channel] = td_requantize_s8(a01, m0, s0, output_offset, act_min, act_max, narrow, full_range);
    }
}

static TD_ALWAYS_INLINE void one_column(const td_mat_mult_t *mat, const td_column_pair_t *pair, int8_t *output0,
                                        const int32_t narrow, const int32_t full_range)
{
    const int32_t depth = mat->depth;
    const int32_t groups = depth >> 2;
    const int32_t rest = depth & 3;
    const int8_t *row = mat->weights;
    for (int32_t channel = 0; channel < mat->output_depth; ++channel, row += depth) {
        int32_t acc = mat->bias != 0 ? mat->bias[channel] : 0;
        const uint32_t *x = pair->words;
        for (int32_t g = 0; g < groups; ++g, x += 4) {
            const uint32_t wa = td_read_u32(row + 4 * g);
            acc = td_smlad(td_sxtb16_ror8(wa), x[1], td_smlad(td_sxtb16(wa), x[0], acc));
        }
        for (int32_t r = 0; r < rest; ++r) {
            acc += row[4 * groups + r] * pair->tail[0][r];
        }
        output0[channel] = td_requantize_s8(acc, mat->output_multiplier[channel], mat->output_shift[channel],
                                            mat->output_offset, mat->activation_min, mat->activation_max, narrow,
                                            full_range);
    }
}

void td_mat_mult_s8(const td_mat_mult_t *mat, const td_column_pair_t *pair, int32_t columns, int8_t *output0,
                    int8_t *output1)
{
    const int32_t narrow = mat->mode.narrow, full_range = mat->mode.full_range;
#if TD_KERNELS_ASM
    if (columns == 2 && mat->plan != 0 && output1 - output0 == mat->output_depth) {
        two_columns_planned(mat, pair, output0);
        return;
    }
#endif
    if (columns == 2) {
        if (narrow && full_range) {
            two_columns(mat, pair, output0, output1, 1, 1);
        } else if (narrow) {
            two_columns(mat, pair, output0, output1, 1, 0);
        } else {
            two_columns(mat, pair, output0, output1, 0, full_range);
        }
    } else if (narrow) {
        one_column(mat, pair, output0, 1, full_range);
    } else {
        one_column(mat, pair, output0, 0, full_range);
    }
}
