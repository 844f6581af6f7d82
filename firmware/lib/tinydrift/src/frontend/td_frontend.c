/* td_frontend: state, streaming and whole-clip processing around the microfrontend lib's
 * FrontendProcessSamples (frontend.c, unchanged), with TensorFlow's tables in flash. */
#include "td_frontend.h"

#include <string.h>

#include "td_frontend_fft.h"
#include "td_frontend_tables.h"

#if TD_FRONTEND_TABLES_SAMPLE_RATE != TD_FRONTEND_SAMPLE_RATE ||         \
    TD_FRONTEND_TABLES_WINDOW_SIZE != TD_FRONTEND_WINDOW_SAMPLES ||     \
    TD_FRONTEND_TABLES_FFT_SIZE != TD_FRONTEND_FFT_SIZE ||              \
    TD_FRONTEND_TABLES_NUM_CHANNELS != TD_FRONTEND_NUM_CHANNELS ||      \
    TD_FRONTEND_TABLES_PCAN_ENABLE != 1
#error "td_frontend_tables.h does not match td_frontend.h: regenerate it (tinydrift frontend-tables)"
#endif

static const int16_t kWindowCoefficients[TD_FRONTEND_WINDOW_SAMPLES] =
    TD_FRONTEND_TABLES_WINDOW_COEFFICIENTS;
static const int16_t kChannelFrequencyStarts[TD_FRONTEND_NUM_CHANNELS + 1] =
    TD_FRONTEND_TABLES_CHANNEL_FREQUENCY_STARTS;
static const int16_t kChannelWeightStarts[TD_FRONTEND_NUM_CHANNELS + 1] =
    TD_FRONTEND_TABLES_CHANNEL_WEIGHT_STARTS;
static const int16_t kChannelWidths[TD_FRONTEND_NUM_CHANNELS + 1] =
    TD_FRONTEND_TABLES_CHANNEL_WIDTHS;
static const int16_t kWeights[TD_FRONTEND_TABLES_FILTERBANK_NUM_WEIGHTS] =
    TD_FRONTEND_TABLES_FILTERBANK_WEIGHTS;
static const int16_t kUnweights[TD_FRONTEND_TABLES_FILTERBANK_NUM_WEIGHTS] =
    TD_FRONTEND_TABLES_FILTERBANK_UNWEIGHTS;
static const int16_t kPcanGainLut[TD_FRONTEND_TABLES_PCAN_GAIN_LUT_SIZE] =
    TD_FRONTEND_TABLES_PCAN_GAIN_LUT;

/* The microfrontend's state holds non-const table pointers but its per-frame code only
 * reads through them: the casts below drop const, the tables stay in flash. */
void td_frontend_reset(td_frontend_t *frontend) {
  struct FrontendState *state;
  if (frontend == NULL) {
    return;
  }
  state = &frontend->state;
  memset(state, 0, sizeof(*state));

  state->window.size = TD_FRONTEND_WINDOW_SAMPLES;
  state->window.step = TD_FRONTEND_STEP_SAMPLES;
  state->window.coefficients = (int16_t *)kWindowCoefficients;
  state->window.input = frontend->window_input;
  state->window.output = frontend->window_output;

  td_frontend_fft_bind(&state->fft, frontend->fft_input, frontend->fft_output);

  state->filterbank.num_channels = TD_FRONTEND_NUM_CHANNELS;
  state->filterbank.start_index = TD_FRONTEND_TABLES_FILTERBANK_START_INDEX;
  state->filterbank.end_index = TD_FRONTEND_TABLES_FILTERBANK_END_INDEX;
  state->filterbank.channel_frequency_starts = (int16_t *)kChannelFrequencyStarts;
  state->filterbank.channel_weight_starts = (int16_t *)kChannelWeightStarts;
  state->filterbank.channel_widths = (int16_t *)kChannelWidths;
  state->filterbank.weights = (int16_t *)kWeights;
  state->filterbank.unweights = (int16_t *)kUnweights;
  state->filterbank.work = frontend->filterbank_work;

  state->noise_reduction.smoothing_bits = TD_FRONTEND_TABLES_NOISE_SMOOTHING_BITS;
  state->noise_reduction.even_smoothing = TD_FRONTEND_TABLES_NOISE_EVEN_SMOOTHING;
  state->noise_reduction.odd_smoothing = TD_FRONTEND_TABLES_NOISE_ODD_SMOOTHING;
  state->noise_reduction.min_signal_remaining = TD_FRONTEND_TABLES_NOISE_MIN_SIGNAL_REMAINING;
  state->noise_reduction.num_channels = TD_FRONTEND_NUM_CHANNELS;
  state->noise_reduction.estimate = frontend->noise_estimate;

  state->pcan_gain_control.enable_pcan = TD_FRONTEND_TABLES_PCAN_ENABLE;
  state->pcan_gain_control.noise_estimate = frontend->noise_estimate;
  state->pcan_gain_control.num_channels = TD_FRONTEND_NUM_CHANNELS;
  state->pcan_gain_control.gain_lut = (int16_t *)kPcanGainLut;
  state->pcan_gain_control.snr_shift = TD_FRONTEND_TABLES_PCAN_SNR_SHIFT;

  state->log_scale.enable_log = TD_FRONTEND_TABLES_LOG_ENABLE;
  state->log_scale.scale_shift = TD_FRONTEND_TABLES_LOG_SCALE_SHIFT;

  /* Zeroes the window history, FFT buffers, filterbank work and noise estimate. */
  FrontendReset(state);
}

size_t td_frontend_hop_samples(const td_frontend_t *frontend) {
  return frontend->state.window.size - frontend->state.window.input_used;
}

td_frontend_status_t td_frontend_process_hop_raw(td_frontend_t *frontend, const int16_t *samples,
                                                 size_t num_samples,
                                                 uint16_t raw[TD_FRONTEND_NUM_CHANNELS]) {
  struct FrontendOutput output;
  size_t samples_read = 0;
  if (frontend == NULL || samples == NULL || raw == NULL) {
    return TD_FRONTEND_ERR_NULL;
  }
  if (num_samples != td_frontend_hop_samples(frontend)) {
    return TD_FRONTEND_ERR_HOP_SIZE;
  }
  /* Exactly the missing samples: the window fills, so a frame always comes out. */
  output = FrontendProcessSamples(&frontend->state, samples, num_samples, &samples_read);
  memcpy(raw, output.values, TD_FRONTEND_NUM_CHANNELS * sizeof(*raw));
  return TD_FRONTEND_OK;
}

td_frontend_status_t td_frontend_process_hop(td_frontend_t *frontend, const int16_t *samples,
                                             size_t num_samples,
                                             int8_t frame[TD_FRONTEND_NUM_CHANNELS]) {
  uint16_t raw[TD_FRONTEND_NUM_CHANNELS];
  td_frontend_status_t status;
  if (frame == NULL) {
    return TD_FRONTEND_ERR_NULL;
  }
  status = td_frontend_process_hop_raw(frontend, samples, num_samples, raw);
  if (status == TD_FRONTEND_OK) {
    td_frontend_raw_to_int8(raw, frame, TD_FRONTEND_NUM_CHANNELS);
  }
  return status;
}

/* The host op's loop: reset, then hand FrontendProcessSamples all that is left until it
 * has taken the whole clip; it returns a frame whenever a window fills. Writes each frame
 * to `raw` and/or `features` (either may be NULL) as it comes, so no clip-sized buffer. */
static td_frontend_status_t process_clip(td_frontend_t *frontend, const int16_t *pcm,
                                         uint16_t *raw, int8_t *features) {
  size_t remaining = TD_FRONTEND_CLIP_SAMPLES;
  size_t frames = 0;
  if (frontend == NULL || pcm == NULL) {
    return TD_FRONTEND_ERR_NULL;
  }
  td_frontend_reset(frontend);
  while (remaining > 0) {
    size_t samples_read = 0;
    const struct FrontendOutput output =
        FrontendProcessSamples(&frontend->state, pcm, remaining, &samples_read);
    pcm += samples_read;
    remaining -= samples_read;
    if (output.values != NULL && frames < TD_FRONTEND_NUM_FRAMES) {
      if (raw != NULL) {
        memcpy(raw + frames * TD_FRONTEND_NUM_CHANNELS, output.values,
               TD_FRONTEND_NUM_CHANNELS * sizeof(*raw));
      }
      if (features != NULL) {
        td_frontend_raw_to_int8(output.values, features + frames * TD_FRONTEND_NUM_CHANNELS,
                                TD_FRONTEND_NUM_CHANNELS);
      }
      ++frames;
    }
  }
  return TD_FRONTEND_OK;
}

td_frontend_status_t td_frontend_process_clip_raw(td_frontend_t *frontend,
                                                  const int16_t pcm[TD_FRONTEND_CLIP_SAMPLES],
                                                  uint16_t raw[TD_FRONTEND_FEATURES]) {
  if (raw == NULL) {
    return TD_FRONTEND_ERR_NULL;
  }
  return process_clip(frontend, pcm, raw, NULL);
}

td_frontend_status_t td_frontend_process_clip(td_frontend_t *frontend,
                                              const int16_t pcm[TD_FRONTEND_CLIP_SAMPLES],
                                              int8_t features[TD_FRONTEND_FEATURES]) {
  if (features == NULL) {
    return TD_FRONTEND_ERR_NULL;
  }
  return process_clip(frontend, pcm, NULL, features);
}

size_t td_frontend_state_bytes(void) { return sizeof(td_frontend_t); }

size_t td_frontend_scratch_bytes(void) { return td_frontend_fft_scratch_bytes(); }

size_t td_frontend_table_bytes(void) {
  return sizeof(kWindowCoefficients) + sizeof(kChannelFrequencyStarts) +
         sizeof(kChannelWeightStarts) + sizeof(kChannelWidths) + sizeof(kWeights) +
         sizeof(kUnweights) + sizeof(kPcanGainLut) + td_frontend_fft_table_bytes();
}
