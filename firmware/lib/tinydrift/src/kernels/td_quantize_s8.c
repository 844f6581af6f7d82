/* QUANTIZE between integer types: TFLite Micro's reference Requantize, int8 to int8 (a new
 * scale or zero point, e.g. before a CONCATENATION) and int8 to uint8 (the microWakeWord
 * models' probability output). With equal scales and zero points 128 apart, TFLite takes a
 * fast path (x ^ 0x80) that gives the same bytes as this arithmetic. */
#include "td_kernels.h"
#include "td_requant.h"

static int32_t requantize(const td_quantize_params_t *params, int8_t x)
{
    return td_multiply_by_quantized_multiplier((int32_t)x + params->input_offset, params->output_multiplier,
                                               params->output_shift) +
           params->output_offset;
}

void td_quantize_s8(const td_quantize_params_t *params, const int8_t *input, int8_t *output)
{
    for (int32_t i = 0; i < params->size; ++i) {
        output[i] = (int8_t)td_clamp_s32(requantize(params, input[i]), INT8_MIN, INT8_MAX);
    }
}

void td_quantize_s8_u8(const td_quantize_params_t *params, const int8_t *input, uint8_t *output)
{
    for (int32_t i = 0; i < params->size; ++i) {
        output[i] = (uint8_t)td_clamp_s32(requantize(params, input[i]), 0, UINT8_MAX);
    }
}
