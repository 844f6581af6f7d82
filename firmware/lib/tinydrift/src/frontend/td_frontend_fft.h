/* Internal to td_frontend: the FFT stage, kissfft with TensorFlow's tables in flash. */
#ifndef TD_FRONTEND_FFT_H
#define TD_FRONTEND_FFT_H

#include <stddef.h>
#include <stdint.h>

#include "tensorflow/lite/experimental/microfrontend/lib/fft.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Point `fft` at its buffers and at the const kissfft configuration (what the sdist's
 * FftPopulateState does with malloc and cos/sin). */
void td_frontend_fft_bind(struct FftState *fft, int16_t *input, struct complex_int16_t *output);

size_t td_frontend_fft_scratch_bytes(void);
size_t td_frontend_fft_table_bytes(void);

#ifdef __cplusplus
}
#endif

#endif /* TD_FRONTEND_FFT_H */
