/* Optimized int8 kernels for the Cortex-M4 (DSP extension: dual 16-bit MACs), one op per
 * file beside this header. Each takes the reference kernel's parameters (td_kernels.h)
 * and gives bit-identical outputs for every input; shapes or parameters a fast path does
 * not cover fall back to the reference kernel inside the call. They are portable C: on a
 * core without the DSP extension (and on the host, where the tests run them) the DSP
 * helpers of td_dsp.h are plain C with the same arithmetic.
 *
 * A generated model selects them through td_kernels_select.h (TD_KERNELS_OPTIMIZED).
 * Stack, no static RAM: CONV_2D keeps two im2col columns and a gather buffer (5 bytes per
 * column value, TD_KERNELS_COLUMN_MAX = 512 values: 2.6 KB) and, on the M4, a per-call
 * plan of 1.4 KB; td_conv_widened_s8_m4 an aligned column pair and a gathered window
 * (3.4 KB); DEPTHWISE_CONV_2D a widened copy of 64 channels' filter and one window
 * (2.6 KB), or on its plane path four channels' planes (up to 3 KB); the app with the KWS
 * model peaks at 6.5 KB of stack (`tinydrift bench device`: stack_used_bytes). Design and
 * figures: README.md beside this header.
 */
#ifndef TD_KERNELS_M4_H
#define TD_KERNELS_M4_H

#include "../td_kernels.h"

#ifdef __cplusplus
extern "C" {
#endif

void td_conv_s8_m4(const td_conv_params_t *params, const int8_t *input, const int8_t *filter,
                   const int32_t *bias, int8_t *output);

void td_depthwise_conv_s8_m4(const td_depthwise_conv_params_t *params, const int8_t *input,
                             const int8_t *filter, const int32_t *bias, int8_t *output);

void td_fully_connected_s8_m4(const td_fully_connected_params_t *params, const int8_t *input,
                              const int8_t *filter, const int32_t *bias, int8_t *output);

/* CONV_2D (no groups) from weights the generator laid out for it (td_conv_widened_s8_m4.c;
 * tinydrift.codegen.model_lowering.conv_widened_m4_layout): 16-bit weight pairs with the
 * folded biases and the requantization per block of four output channels. Not a drop-in
 * for td_conv_s8: a generated model calls it by name where TD_KERNELS_OPTIMIZED. */
#define TD_CONV_WIDENED_COLUMN_MAX 256
void td_conv_widened_s8_m4(const td_conv_params_t *params, const int8_t *input, const uint32_t *layout,
                           int8_t *output);

void td_avg_pool_s8_m4(const td_pool_params_t *params, const int8_t *input, int8_t *output);

#ifdef __cplusplus
}
#endif

#endif /* TD_KERNELS_M4_H */
