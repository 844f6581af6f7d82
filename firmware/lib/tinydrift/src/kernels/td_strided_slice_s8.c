/* STRIDED_SLICE, int8, up to 4 dimensions: TFLite Micro's reference StridedSlice with the
 * begin/end masks, negative indices, clamping and shrinking resolved by the generator into
 * a first element and, per axis, a count and a step (negative steps walk backwards). */
#include "td_kernels.h"

void td_strided_slice_s8(const td_strided_slice_params_t *params, const int8_t *input, int8_t *output)
{
    const int32_t *count = params->count;
    const int32_t *step = params->step;
    int32_t out_index = 0;

    for (int32_t i0 = 0; i0 < count[0]; ++i0) {
        const int32_t at0 = params->first + i0 * step[0];
        for (int32_t i1 = 0; i1 < count[1]; ++i1) {
            const int32_t at1 = at0 + i1 * step[1];
            for (int32_t i2 = 0; i2 < count[2]; ++i2) {
                const int32_t at2 = at1 + i2 * step[2];
                for (int32_t i3 = 0; i3 < count[3]; ++i3) {
                    output[out_index++] = input[at2 + i3 * step[3]];
                }
            }
        }
    }
}
