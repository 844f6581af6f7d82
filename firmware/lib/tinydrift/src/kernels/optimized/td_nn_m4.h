/* Building blocks shared by the optimized kernels (not part of the kernel API).
 *
 * Columns: im2col columns of `depth` int8 values, widened to int16 with the input offset
 * added (so padding, filled with the zero point, contributes 0) and laid out for
 * td_smlad against int8 weights widened by td_sxtb16 / td_sxtb16_ror8: each full group of
 * four values x0..x3 becomes the words (x0, x2), (x1, x3). Two columns are interleaved per
 * group, so that one pointer walks both: words [4g .. 4g+3] are column 0's two words then
 * column 1's. The depth % 4 values left at the end go to `tail`, in order.
 */
#ifndef TD_NN_M4_H
#define TD_NN_M4_H

#include <stdint.h>

#include "../td_kernels.h"
#include "td_requant_fast.h"

/* Longest im2col column (filter_height * filter_width * input_depth, or a fully connected
 * layer's depth) the optimized kernels build; larger ones run the reference kernel. The
 * columns live on the stack: 5 bytes per value (td_column_pair_t and one int8 gather). */
#ifndef TD_KERNELS_COLUMN_MAX
#define TD_KERNELS_COLUMN_MAX 512
#endif

typedef struct {
    uint32_t words[TD_KERNELS_COLUMN_MAX]; /* 2 columns x depth / 2 words (full groups) */
    int16_t tail[2][4];
} td_column_pair_t;

/* Column `which` (0 or 1) of `pair`: source[i] + offset for i < depth. */
void td_column_pair_fill(td_column_pair_t *pair, int32_t which, const int8_t *source, int32_t depth, int32_t offset);

/* The same from `rows` rows of `row_bytes` values each, `row_stride` bytes apart (a filter
 * window entirely inside the input, without gathering it first); row_bytes % 4 == 0. */
void td_column_pair_fill_rows(td_column_pair_t *pair, int32_t which, const int8_t *first_row, int32_t rows,
                              int32_t row_bytes, int32_t row_stride, int32_t offset);

/* Column `which` of `pair` for output pixel (out_y, out_x) of one image (ungrouped CONV_2D,
 * a column of at most TD_KERNELS_COLUMN_MAX values): its receptive field plus `offset`, the
 * zero point where the window leaves the input. A pointwise filter widens the pixel, a
 * window whose rows are groups of four values its rows (clipped at the edges), others are
 * gathered into `field` first. */
void td_column_pair_fill_window(td_column_pair_t *pair, int32_t which, const td_conv_params_t *params,
                                const int8_t *image, int32_t out_y, int32_t out_x, int32_t offset, int8_t *field);

/* One matrix product with its requantization: weights [output_depth][depth] int8 rows. */
typedef struct {
    int32_t depth;
    int32_t output_depth;
    const int8_t *weights;
    const int32_t *bias; /* NULL: no bias */
    const int32_t *output_multiplier;
    const int32_t *output_shift;
    int32_t output_offset;
    int32_t activation_min, activation_max;
    td_requant_mode_t mode;
    const uint32_t *plan; /* from td_mat_mult_plan, or NULL */
} td_mat_mult_t;

/* On the M4, the whole channel loop of two columns runs as one asm block when the
 * parameters allow it (narrow requantization to the full int8 range, depth a multiple of
 * 8, an even number of at most TD_MAT_MULT_PLAN_CHANNELS output channels); it reads, per
 * pair of channels, TD_MAT_MULT_PLAN_WORDS words prepared once per kernel call. */
#define TD_MAT_MULT_PLAN_CHANNELS 64
#define TD_MAT_MULT_PLAN_WORDS 11
#define TD_MAT_MULT_PLAN_SIZE (TD_MAT_MULT_PLAN_CHANNELS / 2 * TD_MAT_MULT_PLAN_WORDS)

/* Fills `plan` (TD_MAT_MULT_PLAN_SIZE words) for `mat` and returns it, or returns NULL when
 * the asm channel loop does not apply (always, without the DSP instructions). */
const uint32_t *td_mat_mult_plan(const td_mat_mult_t *mat, uint32_t *plan);

/* output0[c] = requantized(bias[c] + weights[c] . column 0) for every output channel c,
 * and column 1 into output1 when `columns` is 2 (each weight load serves both). */
void td_mat_mult_s8(const td_mat_mult_t *mat, const td_column_pair_t *pair, int32_t columns, int8_t *output0,
                    int8_t *output1);

#endif /* TD_NN_M4_H */
