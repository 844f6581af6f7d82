/* The FFT stage of the microfrontend lib, in C, with its configuration in flash.
 *
 * The sdist's fft.cc is C++ only to wrap kissfft in a namespace; this file is the same
 * FftCompute and FftReset (the interface fft.h declares and frontend.c calls) over kissfft
 * compiled as C. What the sdist's FftPopulateState builds at init with malloc and cos/sin
 * (kiss_fftr_alloc) is TensorFlow's configuration from td_frontend_tables.h, const.
 */
#if !defined(FIXED_POINT) || FIXED_POINT != 16
#error "compile the front end with -DFIXED_POINT=16 (kissfft's 16-bit fixed point)"
#endif

#include "td_frontend_fft.h"

#include <stddef.h>
#include <string.h>

#include "_kiss_fft_guts.h"
#include "kiss_fftr.h"
#include "td_frontend_tables.h"

/* kiss_fftr.c's private configuration: same tag and members, hence the same type. */
struct kiss_fftr_state {
  kiss_fft_cfg substate;
  kiss_fft_cpx *tmpbuf;
  kiss_fft_cpx *super_twiddles;
};

/* kissfft allocates its twiddles past the end of struct kiss_fft_state, whose last member
 * is twiddles[1]: this struct lays out the same bytes as one const object. */
struct td_kiss_fft_substate {
  struct kiss_fft_state head;
  kiss_fft_cpx other_twiddles[TD_FRONTEND_TABLES_KISS_NFFT - 1];
};

/* C99 compile-time check that other_twiddles continues head.twiddles without a gap. */
typedef char td_kiss_twiddles_are_contiguous
    [(offsetof(struct td_kiss_fft_substate, other_twiddles) ==
      offsetof(struct kiss_fft_state, twiddles) + sizeof(kiss_fft_cpx))
         ? 1
         : -1];

static const struct td_kiss_fft_substate kSubstate = {
    {TD_FRONTEND_TABLES_KISS_NFFT, 0, TD_FRONTEND_TABLES_KISS_FACTORS,
     TD_FRONTEND_TABLES_KISS_FIRST_TWIDDLE},
    TD_FRONTEND_TABLES_KISS_OTHER_TWIDDLES};

static const kiss_fft_cpx kSuperTwiddles[TD_FRONTEND_TABLES_KISS_NFFT / 2] =
    TD_FRONTEND_TABLES_KISS_SUPER_TWIDDLES;

/* kiss_fft's output inside kiss_fftr: rewritten whole by every transform, so it carries
 * nothing between frames and one buffer serves every td_frontend_t (one FFT at a time). */
static kiss_fft_cpx sFftScratch[TD_FRONTEND_TABLES_KISS_NFFT];

/* kissfft only reads through substate and super_twiddles: the casts drop const for its
 * non-const parameter types, the tables stay in flash. */
static const struct kiss_fftr_state kFftrConfig = {
    (kiss_fft_cfg)&kSubstate.head,
    sFftScratch,
    (kiss_fft_cpx *)kSuperTwiddles,
};

void FftCompute(struct FftState *state, const int16_t *input, int input_scale_shift) {
  const size_t input_size = state->input_size;
  const size_t fft_size = state->fft_size;
  int16_t *fft_input = state->input;
  size_t i;
  /* Scale the window up so the fixed-point FFT keeps as much resolution as it can. */
  for (i = 0; i < input_size; ++i) {
    fft_input[i] = (int16_t)((uint16_t)input[i] << input_scale_shift);
  }
  for (; i < fft_size; ++i) {
    fft_input[i] = 0;
  }
  kiss_fftr((kiss_fftr_cfg)state->scratch, state->input, (kiss_fft_cpx *)state->output);
}

void FftReset(struct FftState *state) {
  memset(state->input, 0, state->fft_size * sizeof(*state->input));
  memset(state->output, 0, (state->fft_size / 2 + 1) * sizeof(*state->output));
}

void td_frontend_fft_bind(struct FftState *fft, int16_t *input, struct complex_int16_t *output) {
  fft->input = input;
  fft->output = output;
  fft->fft_size = TD_FRONTEND_TABLES_FFT_SIZE;
  fft->input_size = TD_FRONTEND_TABLES_WINDOW_SIZE;
  fft->scratch = (void *)&kFftrConfig;
  fft->scratch_size = sizeof(kFftrConfig);
}

size_t td_frontend_fft_scratch_bytes(void) { return sizeof(sFftScratch); }

size_t td_frontend_fft_table_bytes(void) {
  return sizeof(kSubstate) + sizeof(kSuperTwiddles) + sizeof(kFftrConfig);
}
