/* SPLIT_V (and SPLIT), int8: TFLite Micro's reference split, the reverse of
 * CONCATENATION: for each index before the axis, consecutive blocks of the input go to
 * each output in turn. */
#include <string.h>

#include "td_kernels.h"

void td_split_v_s8(const td_split_params_t *params, const int8_t *input, int8_t *const *outputs)
{
    const int8_t *in = input;
    for (int32_t outer = 0; outer < params->outer_size; ++outer) {
        for (int32_t i = 0; i < params->output_count; ++i) {
            const int32_t copy_size = params->copy_sizes[i];
            memcpy(outputs[i] + outer * copy_size, in, (size_t)copy_size);
            in += copy_size;
        }
    }
}
