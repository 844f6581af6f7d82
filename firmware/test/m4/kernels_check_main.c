/* Optimized kernels against the reference kernels on random operators: shapes, strides,
 * dilations, paddings, offsets, multipliers, shifts, biases and activation ranges drawn
 * from a fixed-seed generator, random weights and inputs, every output byte compared (both
 * output buffers poisoned before each case, so a skipped write cannot pass on a stale value).
 *
 * The same program runs on the host (port/host: the optimized kernels' plain-C DSP
 * helpers, under AddressSanitizer and UBSan) and on QEMU's mps2-an386 (the DSP
 * instructions and asm blocks), so both arithmetic paths meet the reference on the same
 * cases. Prints one line per kernel:
 *   td_kernels_check <kernel> cases=N mismatches=M fast=F
 * (F: cases whose parameters take the narrow requantization with the full int8 range, the
 * path of real models and of the M4's asm loops), then `td_kernels_check done`, and
 * exits with 1 if any output differed. TD_CHECK_CASES sets the cases per kernel.
 */
#include <stdint.h>
#include <string.h>

#include "kernels/optimized/td_kernels_m4.h"
#include "kernels/optimized/td_nn_m4.h"
#include "kernels/optimized/td_requant_fast.h"
#include "kernels/td_kernels.h"
#include "td_m4_report.h"
#include "td_port.h"

#ifndef TD_CHECK_CASES
#define TD_CHECK_CASES 2000
#endif

#define CHECK_TENSOR_BYTES 24576
#define CHECK_FILTER_BYTES 16384
#define CHECK_CHANNELS 96

static int8_t check_input[CHECK_TENSOR_BYTES];
static int8_t check_filter[CHECK_FILTER_BYTES];
static int32_t check_bias[CHECK_CHANNELS];
static int32_t check_multiplier[CHECK_CHANNELS];
static int32_t check_shift[CHECK_CHANNELS];
static int8_t check_expected[CHECK_TENSOR_BYTES];
static int8_t check_actual[CHECK_TENSOR_BYTES];
static uint32_t check_state = 0x2545F491u;

static uint32_t next_random(void)
{
    /* xorshift32 */
    check_state ^= check_state << 13;
    check_state ^= check_state >> 17;
    check_state ^= check_state << 5;
    return check_state;
}

/* Uniform in [low, high]. */
static int32_t uniform(int32_t low, int32_t high)
{
    const uint64_t span = (uint64_t)((int64_t)high - (int64_t)low + 1);
    return (int32_t)((int64_t)low + (int64_t)(next_random() % span));
}

static void fill_s8(int8_t *values, int32_t count)
{
    for (int32_t i = 0; i < count; ++i) {
        values[i] = (int8_t)uniform(-128, 127);
    }
}

typedef struct {
    int32_t input_offset, output_offset, activation_min, activation_max;
} check_quant_t;

/* Offsets, requantization and activation as converters produce them, plus the corners:
 * left shifts, large biases (accumulators beyond 2^30: the exact slow requantization),
 * narrow activation ranges. */
static check_quant_t random_quantization(int32_t channels, int32_t terms)
{
    check_quant_t q;
    q.input_offset = uniform(-127, 128);
    q.output_offset = uniform(-128, 127);
    const int32_t kind = uniform(0, 9);
    if (kind < 4) { /* no activation */
        q.activation_min = -128;
        q.activation_max = 127;
    } else if (kind < 8) { /* ReLU: the zero point up; often -128, the full range */
        q.output_offset = uniform(0, 1) ? -128 : q.output_offset;
        q.activation_min = q.output_offset;
        q.activation_max = 127;
    } else { /* ReLU6-like, or anything inside the range */
        q.activation_min = uniform(-128, 0);
        q.activation_max = uniform(q.activation_min, 127);
    }
    const int32_t left_shifts = uniform(0, 9) == 0;
    const int32_t large_bias = !left_shifts && uniform(0, 15) == 0; /* not both: the reference would overflow */
    for (int32_t c = 0; c < channels; ++c) {
        check_multiplier[c] = uniform(0, 31) == 0 ? 0 : (int32_t)(0x40000000u + (next_random() & 0x3FFFFFFFu));
        /* Scales that keep outputs inside the int8 range most of the time: ~1 / (terms * 64). */
        int32_t scale_bits = 0;
        while ((1 << scale_bits) < terms * 64 && scale_bits < 30) {
            ++scale_bits;
        }
        check_shift[c] = left_shifts ? uniform(-2, 3) : -uniform(scale_bits > 4 ? scale_bits - 4 : 1, scale_bits + 2);
        check_bias[c] = large_bias ? uniform(-(1 << 30), 1 << 30) : uniform(-terms * 2000, terms * 2000);
    }
    return q;
}

/* Before every case: an output byte a kernel skips keeps its poison instead of a value from
 * an earlier case that may equal the right one; the two patterns differ, so a byte both
 * kernels skip differs too. */
static void poison_outputs(int32_t bytes)
{
    memset(check_expected, 0x5A, (size_t)bytes);
    memset(check_actual, 0xA5, (size_t)bytes);
}

static int32_t count_mismatches(int32_t bytes)
{
    int32_t mismatches = 0;
    for (int32_t i = 0; i < bytes; ++i) {
        mismatches += check_expected[i] != check_actual[i];
    }
    return mismatches;
}

static int32_t is_fast(const check_quant_t *q, int32_t channels, int32_t terms, const int32_t *bias)
{
    const td_requant_mode_t mode = td_requant_mode(check_multiplier, check_shift, bias, channels, terms,
                                                   q->input_offset, q->output_offset, q->activation_min,
                                                   q->activation_max);
    return mode.narrow && mode.full_range;
}

/* Output size along one axis: rows of implicit zeros `pad` before, enough after. */
static int32_t output_size(int32_t input, int32_t filter, int32_t dilation, int32_t stride, int32_t pad)
{
    const int32_t span = (filter - 1) * dilation + 1;
    const int32_t extent = input + 2 * pad - span;
    return extent < 0 ? 0 : extent / stride + 1;
}

/* Whether td_mat_mult_plan takes a product of `depth` x `channels` with these parameters. */
static int32_t is_planned(const check_quant_t *q, int32_t depth, int32_t channels, const int32_t *bias)
{
    static uint32_t plan[TD_MAT_MULT_PLAN_SIZE];
    td_mat_mult_t mat = {depth, channels, check_filter, bias, check_multiplier, check_shift, q->output_offset,
                         q->activation_min, q->activation_max, {1, 0, 0}, 0};
    mat.mode = td_requant_mode(check_multiplier, check_shift, bias, channels, depth, q->input_offset,
                               q->output_offset, q->activation_min, q->activation_max);
    return td_mat_mult_plan(&mat, plan) != 0;
}

static void report(const char *kernel, int32_t cases, int32_t mismatches, int32_t fast, int32_t planned)
{
    td_m4_print_text("td_kernels_check ");
    td_m4_print_text(kernel);
    td_m4_print_u32(" cases=", (uint32_t)cases);
    td_m4_print_u32(" mismatches=", (uint32_t)mismatches);
    td_m4_print_u32(" fast=", (uint32_t)fast);
    td_m4_print_u32(" planned=", (uint32_t)planned);
    td_m4_print_text("\n");
}

static int32_t check_conv(void)
{
    int32_t mismatches = 0, fast = 0, planned = 0, cases = 0;
    while (cases < TD_CHECK_CASES) {
        td_conv_params_t p;
        const int32_t shape = uniform(0, 3); /* 0: pointwise, 1: the KWS stem's 10x4, else any */
        p.batches = uniform(1, 2);
        p.filter_height = shape == 0 ? 1 : (shape == 1 ? 10 : uniform(1, 5));
        p.filter_width = shape == 0 ? 1 : (shape == 1 ? 4 : uniform(1, 5));
        const int32_t groups = shape >= 2 && uniform(0, 7) == 0 ? 2 : 1;
        p.filter_input_depth = shape == 0 ? (uniform(0, 1) ? 8 * uniform(1, 9) : uniform(1, 72)) : uniform(1, 12);
        p.input_depth = p.filter_input_depth * groups;
        p.output_depth = uniform(1, 20) * groups;
        p.input_height = uniform(1, shape == 1 ? 16 : 10);
        p.input_width = uniform(1, 10);
        p.stride_height = uniform(1, 3);
        p.stride_width = uniform(1, 3);
        p.dilation_height = shape >= 2 && uniform(0, 3) == 0 ? uniform(2, 3) : 1;
        p.dilation_width = shape >= 2 && uniform(0, 3) == 0 ? uniform(2, 3) : 1;
        p.pad_height = shape == 0 ? 0 : uniform(0, p.filter_height - 1);
        p.pad_width = shape == 0 ? 0 : uniform(0, p.filter_width - 1);
        p.output_height = output_size(p.input_height, p.filter_height, p.dilation_height, p.stride_height, p.pad_height);
        p.output_width = output_size(p.input_width, p.filter_width, p.dilation_width, p.stride_width, p.pad_width);
        const int32_t terms = p.filter_height * p.filter_width * p.filter_input_depth;
        const int32_t input_bytes = p.batches * p.input_height * p.input_width * p.input_depth;
        const int32_t output_bytes = p.batches * p.output_height * p.output_width * p.output_depth;
        if (p.output_height < 1 || p.output_width < 1 || input_bytes > CHECK_TENSOR_BYTES ||
            output_bytes > CHECK_TENSOR_BYTES || terms * p.output_depth > CHECK_FILTER_BYTES ||
            (int64_t)output_bytes * terms > 400000) {
            continue; /* draw again */
        }
        const check_quant_t q = random_quantization(p.output_depth, terms);
        p.input_offset = q.input_offset;
        p.output_offset = q.output_offset;
        p.activation_min = q.activation_min;
        p.activation_max = q.activation_max;
        p.output_multiplier = check_multiplier;
        p.output_shift = check_shift;
        fill_s8(check_input, input_bytes);
        fill_s8(check_filter, terms * p.output_depth);
        const int32_t *bias = uniform(0, 5) == 0 ? 0 : check_bias;
        poison_outputs(output_bytes);
        td_conv_s8(&p, check_input, check_filter, bias, check_expected);
        td_conv_s8_m4(&p, check_input, check_filter, bias, check_actual);
        mismatches += count_mismatches(output_bytes);
        fast += groups == 1 && is_fast(&q, p.output_depth, terms, bias);
        planned += groups == 1 && p.output_height * p.output_width > 1 && is_planned(&q, terms, p.output_depth, bias);
        ++cases;
    }
    report("conv", cases, mismatches, fast, planned);
    return mismatches;
}

static int32_t check_depthwise(void)
{
    int32_t mismatches = 0, fast = 0, cases = 0;
    while (cases < TD_CHECK_CASES) {
        td_depthwise_conv_params_t p;
        const int32_t shape = uniform(0, 2); /* 0, 1: 3x3, 2: any */
        p.batches = uniform(1, 2);
        p.filter_height = shape < 2 ? 3 : uniform(1, 5);
        p.filter_width = shape < 2 ? 3 : uniform(1, 5);
        p.depth_multiplier = uniform(0, 7) == 0 ? 2 : 1;
        p.input_depth = uniform(1, p.depth_multiplier == 1 ? 90 : 12); /* over 64: two chunks */
        p.output_depth = p.input_depth * p.depth_multiplier;
        p.input_height = uniform(1, 9);
        p.input_width = uniform(1, 9);
        p.stride_height = uniform(1, 2);
        p.stride_width = uniform(1, 2);
        p.dilation_height = uniform(0, 4) == 0 ? 2 : 1;
        p.dilation_width = uniform(0, 4) == 0 ? uniform(2, 3) : 1;
        p.pad_height = uniform(0, p.filter_height - 1);
        p.pad_width = uniform(0, p.filter_width - 1);
        p.output_height = output_size(p.input_height, p.filter_height, p.dilation_height, p.stride_height, p.pad_height);
        p.output_width = output_size(p.input_width, p.filter_width, p.dilation_width, p.stride_width, p.pad_width);
        const int32_t terms = p.filter_height * p.filter_width;
        const int32_t input_bytes = p.batches * p.input_height * p.input_width * p.input_depth;
        const int32_t output_bytes = p.batches * p.output_height * p.output_width * p.output_depth;
        if (p.output_height < 1 || p.output_width < 1 || input_bytes > CHECK_TENSOR_BYTES ||
            output_bytes > CHECK_TENSOR_BYTES || p.output_depth > CHECK_CHANNELS ||
            terms * p.output_depth > CHECK_FILTER_BYTES) {
            continue;
        }
        const check_quant_t q = random_quantization(p.output_depth, terms);
        p.input_offset = q.input_offset;
        p.output_offset = q.output_offset;
        p.activation_min = q.activation_min;
        p.activation_max = q.activation_max;
        p.output_multiplier = check_multiplier;
        p.output_shift = check_shift;
        fill_s8(check_input, input_bytes);
        fill_s8(check_filter, terms * p.output_depth);
        const int32_t *bias = uniform(0, 5) == 0 ? 0 : check_bias;
        poison_outputs(output_bytes);
        td_depthwise_conv_s8(&p, check_input, check_filter, bias, check_expected);
        td_depthwise_conv_s8_m4(&p, check_input, check_filter, bias, check_actual);
        mismatches += count_mismatches(output_bytes);
        fast += p.depth_multiplier == 1 && is_fast(&q, p.output_depth, terms, bias);
        ++cases;
    }
    report("depthwise", cases, mismatches, fast, 0);
    return mismatches;
}

static int32_t check_fully_connected(void)
{
    int32_t mismatches = 0, fast = 0, planned = 0, cases = 0;
    while (cases < TD_CHECK_CASES) {
        td_fully_connected_params_t p;
        p.batches = uniform(1, 3);
        /* Mostly short rows, some beyond TD_KERNELS_COLUMN_MAX (the reference runs those). */
        p.accum_depth = uniform(0, 9) == 0 ? uniform(TD_KERNELS_COLUMN_MAX - 8, TD_KERNELS_COLUMN_MAX + 40)
                                           : (uniform(0, 1) ? 8 * uniform(1, 20) : uniform(1, 160));
        p.output_depth = uniform(1, 24);
        const int32_t input_bytes = p.batches * p.accum_depth;
        const int32_t output_bytes = p.batches * p.output_depth;
        if (p.accum_depth * p.output_depth > CHECK_FILTER_BYTES) {
            continue;
        }
        const check_quant_t q = random_quantization(p.output_depth, p.accum_depth);
        p.input_offset = q.input_offset;
        p.output_offset = q.output_offset;
        p.activation_min = q.activation_min;
        p.activation_max = q.activation_max;
        p.output_multiplier = check_multiplier;
        p.output_shift = check_shift;
        fill_s8(check_input, input_bytes);
        fill_s8(check_filter, p.accum_depth * p.output_depth);
        const int32_t *bias = uniform(0, 5) == 0 ? 0 : check_bias;
        poison_outputs(output_bytes);
        td_fully_connected_s8(&p, check_input, check_filter, bias, check_expected);
        td_fully_connected_s8_m4(&p, check_input, check_filter, bias, check_actual);
        mismatches += count_mismatches(output_bytes);
        fast += p.accum_depth <= TD_KERNELS_COLUMN_MAX && is_fast(&q, p.output_depth, p.accum_depth, bias);
        planned += p.batches > 1 && p.accum_depth <= TD_KERNELS_COLUMN_MAX &&
                   is_planned(&q, p.accum_depth, p.output_depth, bias);
        ++cases;
    }
    report("fully_connected", cases, mismatches, fast, planned);
    return mismatches;
}

/* Average pools: windows over the edge (padding not counted), strides, depths that leave
 * channels after the groups of four, activation ranges; some windows over 256 cells (the
 * reference runs those: "fast" counts the others). */
static int32_t check_avg_pool(void)
{
    int32_t mismatches = 0, fast = 0, cases = 0;
    while (cases < TD_CHECK_CASES) {
        td_pool_params_t p;
        const int32_t large = uniform(0, 7) == 0;
        p.batches = uniform(1, 2);
        p.filter_height = large ? uniform(12, 20) : uniform(1, 6);
        p.filter_width = large ? uniform(12, 20) : uniform(1, 6);
        p.input_height = uniform(1, large ? 22 : 12);
        p.input_width = uniform(1, large ? 22 : 12);
        p.depth = uniform(1, 70);
        p.stride_height = uniform(1, 3);
        p.stride_width = uniform(1, 3);
        p.pad_height = uniform(0, p.filter_height - 1); /* every window overlaps the input */
        p.pad_width = uniform(0, p.filter_width - 1);
        p.output_height = output_size(p.input_height, p.filter_height, 1, p.stride_height, p.pad_height);
        p.output_width = output_size(p.input_width, p.filter_width, 1, p.stride_width, p.pad_width);
        p.activation_min = uniform(0, 2) == 0 ? uniform(-128, 0) : -128;
        p.activation_max = uniform(0, 2) == 0 ? uniform(0, 127) : 127;
        const int32_t input_bytes = p.batches * p.input_height * p.input_width * p.depth;
        const int32_t output_bytes = p.batches * p.output_height * p.output_width * p.depth;
        if (p.output_height < 1 || p.output_width < 1 || input_bytes > CHECK_TENSOR_BYTES ||
            output_bytes > CHECK_TENSOR_BYTES) {
            continue;
        }
        const int32_t extreme = uniform(0, 9); /* sums at the ends of the 16-bit range */
        if (extreme < 2) {
            memset(check_input, extreme == 0 ? -128 : 127, (size_t)input_bytes);
        } else {
            fill_s8(check_input, input_bytes);
        }
        poison_outputs(output_bytes);
        td_avg_pool_s8(&p, check_input, check_expected);
        td_avg_pool_s8_m4(&p, check_input, check_actual);
        mismatches += count_mismatches(output_bytes);
        fast += p.filter_height * p.filter_width <= 256;
        ++cases;
    }
    report("avg_pool", cases, mismatches, fast, 0);
    return mismatches;
}

int td_app_main(void)
{
    td_port_init();
    int32_t mismatches = check_conv();
    mismatches += check_depthwise();
    mismatches += check_fully_connected();
    mismatches += check_avg_pool();
    td_m4_print_text("td_kernels_check done\n");
    return mismatches == 0 ? 0 : 1;
}
