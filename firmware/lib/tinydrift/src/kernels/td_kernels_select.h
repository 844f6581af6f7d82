/* The kernels a generated model calls (td_model_<name>.c includes this header).
 *
 * TD_KERNELS_OPTIMIZED=1 sends the model's td_conv_s8, td_depthwise_conv_s8,
 * td_fully_connected_s8 and td_avg_pool_s8 calls to the optimized variants
 * (optimized/td_kernels_m4.h): same parameters, bit-identical outputs, fewer instructions
 * on a Cortex-M4. It defaults to 1
 * where the compiler targets the DSP extension (__ARM_FEATURE_DSP) and to 0 elsewhere;
 * -DTD_KERNELS_OPTIMIZED=0 keeps the reference kernels on an M4, =1 runs the optimized C
 * on the host. The selection is per translation unit, so a firmware can hold one model
 * built each way (the benchmark compares them in one run). Ops without an optimized
 * variant always run the reference.
 */
#ifndef TD_KERNELS_SELECT_H
#define TD_KERNELS_SELECT_H

#include "td_kernels.h"
#include "optimized/td_kernels_m4.h"

#ifndef TD_KERNELS_OPTIMIZED
#if defined(__ARM_FEATURE_DSP) && (__ARM_FEATURE_DSP == 1)
#define TD_KERNELS_OPTIMIZED 1
#else
#define TD_KERNELS_OPTIMIZED 0
#endif
#endif

#if TD_KERNELS_OPTIMIZED
#define td_conv_s8 td_conv_s8_m4
#define td_depthwise_conv_s8 td_depthwise_conv_s8_m4
#define td_fully_connected_s8 td_fully_connected_s8_m4
#define td_avg_pool_s8 td_avg_pool_s8_m4
#endif

#endif /* TD_KERNELS_SELECT_H */
