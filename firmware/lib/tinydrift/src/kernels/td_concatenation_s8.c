/* CONCATENATION, int8: TFLite Micro's reference Concatenation. The inputs share the
 * output's scale and zero point (TFLite Micro requires it), so this only moves bytes: for
 * each index before the axis, each input's block in turn. */
#include <string.h>

#include "td_kernels.h"

void td_concatenation_s8(const td_concatenation_params_t *params, const int8_t *const *inputs, int8_t *output)
{
    int8_t *out = output;
    for (int32_t outer = 0; outer < params->outer_size; ++outer) {
        for (int32_t i = 0; i < params->input_count; ++i) {
            const int32_t copy_size = params->copy_sizes[i];
            memcpy(out, inputs[i] + outer * copy_size, (size_t)copy_size);
            out += copy_size;
        }
    }
}
