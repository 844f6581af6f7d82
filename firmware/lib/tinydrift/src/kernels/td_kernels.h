/* int8 inference kernels: reference math, bit-exact with TFLite Micro's reference kernels.
 *
 * One op per file (td_<op>_s8.c). Every kernel takes a `const` parameter struct that the
 * model generator (tinydrift.codegen.model_c) fills at generation time, the way TFLite
 * Micro's Prepare() does: zero points as offsets, fused activations as clamps, and the
 * requantization multipliers/shifts computed from the tensors' scales. So the structs can
 * live in flash and the kernels do no floating point, no allocation and no checking.
 *
 * Tensors are dense, row-major, NHWC (batch, height, width, channels). Shifts follow
 * TFLite's convention: > 0 shifts left, < 0 rounds right (see td_requant.h).
 *
 * RESHAPE (and SQUEEZE, EXPAND_DIMS) need no kernel: the generator makes the output
 * tensor share the input's bytes in the arena. Nor do a streaming model's resource
 * variables (VAR_HANDLE, READ_VARIABLE, ASSIGN_VARIABLE, CALL_ONCE): the generator gives
 * each variable a static buffer and reads and assigns it with memcpy, or lets the tensor
 * read share the variable's bytes.
 *
 * These are the reference kernels; optimized variants (e.g. Cortex-M4 SIMD) belong in
 * their own files beside them and are tested against them.
 */
#ifndef TD_KERNELS_H
#define TD_KERNELS_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* CONV_2D: filter [output_depth, filter_height, filter_width, filter_input_depth];
 * input_depth / filter_input_depth groups (1 for an ordinary convolution). */
typedef struct {
    int32_t batches;
    int32_t input_height, input_width, input_depth;
    int32_t filter_height, filter_width, filter_input_depth;
    int32_t output_height, output_width, output_depth;
    int32_t stride_height, stride_width;
    int32_t dilation_height, dilation_width;
    int32_t pad_height, pad_width; /* rows/columns of implicit zeros before the input */
    int32_t input_offset;          /* minus the input zero point */
    int32_t output_offset;         /* the output zero point */
    int32_t activation_min, activation_max;
    const int32_t *output_multiplier; /* one per output channel */
    const int32_t *output_shift;      /* one per output channel */
} td_conv_params_t;

void td_conv_s8(const td_conv_params_t *params, const int8_t *input, const int8_t *filter,
                const int32_t *bias, int8_t *output);

/* DEPTHWISE_CONV_2D: filter [1, filter_height, filter_width, output_depth], with
 * output_depth = input_depth * depth_multiplier; output channel c * depth_multiplier + m
 * reads input channel c. */
typedef struct {
    int32_t batches;
    int32_t input_height, input_width, input_depth;
    int32_t filter_height, filter_width;
    int32_t depth_multiplier;
    int32_t output_height, output_width, output_depth;
    int32_t stride_height, stride_width;
    int32_t dilation_height, dilation_width;
    int32_t pad_height, pad_width;
    int32_t input_offset;
    int32_t output_offset;
    int32_t activation_min, activation_max;
    const int32_t *output_multiplier; /* one per output channel */
    const int32_t *output_shift;      /* one per output channel */
} td_depthwise_conv_params_t;

void td_depthwise_conv_s8(const td_depthwise_conv_params_t *params, const int8_t *input,
                          const int8_t *filter, const int32_t *bias, int8_t *output);

/* FULLY_CONNECTED: filter [output_depth, accum_depth]; input [batches, accum_depth]. */
typedef struct {
    int32_t batches;
    int32_t accum_depth;
    int32_t output_depth;
    int32_t input_offset;
    int32_t output_offset;
    int32_t activation_min, activation_max;
    const int32_t *output_multiplier; /* one per output channel */
    const int32_t *output_shift;      /* one per output channel */
} td_fully_connected_params_t;

void td_fully_connected_s8(const td_fully_connected_params_t *params, const int8_t *input,
                           const int8_t *filter, const int32_t *bias, int8_t *output);

/* AVERAGE_POOL_2D and MAX_POOL_2D: input and output share scale and zero point, so the
 * pooling works on the raw int8 values. The generator guarantees that every window
 * overlaps the input. */
typedef struct {
    int32_t batches;
    int32_t input_height, input_width, depth;
    int32_t output_height, output_width;
    int32_t filter_height, filter_width;
    int32_t stride_height, stride_width;
    int32_t pad_height, pad_width;
    int32_t activation_min, activation_max;
} td_pool_params_t;

void td_avg_pool_s8(const td_pool_params_t *params, const int8_t *input, int8_t *output);
void td_max_pool_s8(const td_pool_params_t *params, const int8_t *input, int8_t *output);

/* SOFTMAX over the last dimension; output scale 1/256, zero point -128. */
typedef struct {
    int32_t outer_size; /* rows */
    int32_t depth;      /* elements per row */
    int32_t input_multiplier;
    int32_t input_left_shift;
    int32_t diff_min; /* inputs further than this below the row maximum give -128 */
} td_softmax_params_t;

void td_softmax_s8(const td_softmax_params_t *params, const int8_t *input, int8_t *output);

/* ADD with both inputs rescaled to a common scale, then to the output's. Broadcasting up
 * to 4 dimensions: element [i0][i1][i2][i3] of the output reads input k at
 * sum(i_d * input<k>_strides[d]); a stride of 0 repeats that input along the dimension. */
typedef struct {
    int32_t input1_offset, input2_offset;
    int32_t output_offset;
    int32_t left_shift;
    int32_t input1_multiplier, input1_shift;
    int32_t input2_multiplier, input2_shift;
    int32_t output_multiplier, output_shift;
    int32_t activation_min, activation_max;
    int32_t output_dims[4];
    int32_t input1_strides[4];
    int32_t input2_strides[4];
} td_add_params_t;

void td_add_s8(const td_add_params_t *params, const int8_t *input1, const int8_t *input2,
               int8_t *output);

/* LOGISTIC, int8 in and out; the output has scale 1/256 and zero point -128. */
typedef struct {
    int32_t size;
    int32_t input_zero_point;
    int32_t input_range_radius; /* |input - zero point| at or beyond this saturates */
    int32_t input_multiplier;   /* input scale * 2^27 as multiplier * 2^input_left_shift */
    int32_t input_left_shift;
} td_logistic_params_t;

void td_logistic_s8(const td_logistic_params_t *params, const int8_t *input, int8_t *output);

/* QUANTIZE from int8 to int8 or uint8: (x + input_offset) rescaled by the ratio of the
 * scales, plus the output zero point, clamped to the output type. */
typedef struct {
    int32_t size;
    int32_t input_offset; /* minus the input zero point */
    int32_t output_multiplier, output_shift;
    int32_t output_offset; /* the output zero point */
} td_quantize_params_t;

void td_quantize_s8(const td_quantize_params_t *params, const int8_t *input, int8_t *output);
void td_quantize_s8_u8(const td_quantize_params_t *params, const int8_t *input, uint8_t *output);

/* CONCATENATION along one axis: outer_size is the product of the dimensions before it;
 * input i gives copy_sizes[i] bytes per outer index (its size along the axis times the
 * product of the dimensions after it). */
typedef struct {
    int32_t input_count;
    int32_t outer_size;
    const int32_t *copy_sizes; /* one per input */
} td_concatenation_params_t;

void td_concatenation_s8(const td_concatenation_params_t *params, const int8_t *const *inputs,
                         int8_t *output);

/* SPLIT_V and SPLIT, the reverse: output i takes copy_sizes[i] bytes per outer index. */
typedef struct {
    int32_t output_count;
    int32_t outer_size;
    const int32_t *copy_sizes; /* one per output */
} td_split_params_t;

void td_split_v_s8(const td_split_params_t *params, const int8_t *input, int8_t *const *outputs);

/* STRIDED_SLICE over (up to) 4 dimensions, padded in front with size-1 axes: output
 * element [i0][i1][i2][i3] is input[first + sum(i_d * step[d])]. */
typedef struct {
    int32_t first;    /* input index of the first element taken */
    int32_t count[4]; /* output size along each axis */
    int32_t step[4];  /* input elements between neighbours along each axis (may be < 0) */
} td_strided_slice_params_t;

void td_strided_slice_s8(const td_strided_slice_params_t *params, const int8_t *input, int8_t *output);

#ifdef __cplusplus
}
#endif

#endif /* TD_KERNELS_H */
