/* td_frontend: TFLite Micro's micro_speech audio front end, bit-exact with the host's
 * (host/tinydrift/frontend/features.py): 30 ms Hann window every TD_FRONTEND_STEP_MS,
 * 512-point fixed-point FFT, 40 mel channels, noise reduction, PCAN, log; then
 * micro_speech's integer map to the model's int8 input.
 *
 * The per-frame arithmetic is the microfrontend lib's own C (extracted at build time from
 * the pinned pymicro-features sdist, see firmware/scripts/td_third_party.py); its
 * init tables are TensorFlow's, generated into td_frontend_tables.h. No heap, no floating
 * point, no init beyond td_frontend_reset: all state lives in a td_frontend_t the caller
 * allocates (statically), plus one FFT scratch buffer shared by all instances.
 *
 * Build: C99, with the include directories of the extracted sources and -DFIXED_POINT=16
 * for every file that includes kissfft (td_frontend_fft.c and kissfft itself).
 */
#ifndef TD_FRONTEND_H
#define TD_FRONTEND_H

#include <stddef.h>
#include <stdint.h>

#include "tensorflow/lite/experimental/microfrontend/lib/frontend.h"

#ifdef __cplusplus
extern "C" {
#endif

#define TD_FRONTEND_SAMPLE_RATE 16000
#define TD_FRONTEND_CLIP_SAMPLES 16000
#define TD_FRONTEND_WINDOW_SAMPLES 480 /* 30 ms */
/* The step between frames, chosen at build time (-DTD_FRONTEND_STEP_MS=10): 20 ms, the
 * default, for the kws models' 1 s clips; 10 ms for microWakeWord's streaming models. A
 * build serves one model family, and nothing else depends on it: no table (they are the
 * same for every step), not the size of td_frontend_t. */
#ifndef TD_FRONTEND_STEP_MS
#define TD_FRONTEND_STEP_MS 20
#endif
#if TD_FRONTEND_STEP_MS < 1 || TD_FRONTEND_STEP_MS > 30
#error "TD_FRONTEND_STEP_MS must be 1 to 30 (a step longer than the 30 ms window skips audio)"
#endif
#define TD_FRONTEND_STEP_SAMPLES (TD_FRONTEND_SAMPLE_RATE / 1000 * TD_FRONTEND_STEP_MS)
#define TD_FRONTEND_FFT_SIZE 512
#define TD_FRONTEND_NUM_CHANNELS 40
/* 49 at 20 ms, 98 at 10 ms: the op pads nothing, samples past the last whole window make
 * no frame. */
#define TD_FRONTEND_NUM_FRAMES \
  (1 + (TD_FRONTEND_CLIP_SAMPLES - TD_FRONTEND_WINDOW_SAMPLES) / TD_FRONTEND_STEP_SAMPLES)
#define TD_FRONTEND_FEATURES (TD_FRONTEND_NUM_FRAMES * TD_FRONTEND_NUM_CHANNELS)

typedef enum {
  TD_FRONTEND_OK = 0,
  TD_FRONTEND_ERR_NULL = -1,     /* a pointer argument is NULL */
  TD_FRONTEND_ERR_HOP_SIZE = -2  /* num_samples != td_frontend_hop_samples() */
} td_frontend_status_t;

typedef struct td_frontend {
  /* The microfrontend's state: its table pointers point to const data in flash (never
   * written through), its buffers into the arrays below. */
  struct FrontendState state;
  int16_t window_input[TD_FRONTEND_WINDOW_SAMPLES];
  int16_t window_output[TD_FRONTEND_WINDOW_SAMPLES];
  int16_t fft_input[TD_FRONTEND_FFT_SIZE];
  /* Twice the FFT's output: the filterbank reuses it as int32 energies. */
  struct complex_int16_t fft_output[2 * (TD_FRONTEND_FFT_SIZE / 2 + 1)];
  uint64_t filterbank_work[TD_FRONTEND_NUM_CHANNELS + 1];
  /* Noise reduction's running estimate; PCAN reads it too. */
  uint32_t noise_estimate[TD_FRONTEND_NUM_CHANNELS];
} td_frontend_t;

/* Start a new stream (or clip): wires the state to the tables and zeroes the history,
 * the noise estimate and PCAN's included. Between resets they carry over from frame to
 * frame however long the stream runs, as on the device. */
void td_frontend_reset(td_frontend_t *frontend);

/* Samples the next frame needs (of a reset td_frontend_t): TD_FRONTEND_WINDOW_SAMPLES after a reset, then
 * TD_FRONTEND_STEP_SAMPLES (the window keeps the rest). */
size_t td_frontend_hop_samples(const td_frontend_t *frontend);

/* Streaming: consume exactly td_frontend_hop_samples() samples, produce one frame.
 * The _raw variant gives the front end's uint16 output (what frontend_uint16 returns). */
td_frontend_status_t td_frontend_process_hop_raw(td_frontend_t *frontend, const int16_t *samples,
                                                 size_t num_samples,
                                                 uint16_t raw[TD_FRONTEND_NUM_CHANNELS]);
td_frontend_status_t td_frontend_process_hop(td_frontend_t *frontend, const int16_t *samples,
                                             size_t num_samples,
                                             int8_t frame[TD_FRONTEND_NUM_CHANNELS]);

/* One clip as the host does it (reset, feed all 16000 samples, no padding):
 * TD_FRONTEND_NUM_FRAMES x 40 values, frame-major. The int8 variant is the model's input (features_int8). */
td_frontend_status_t td_frontend_process_clip_raw(td_frontend_t *frontend,
                                                  const int16_t pcm[TD_FRONTEND_CLIP_SAMPLES],
                                                  uint16_t raw[TD_FRONTEND_FEATURES]);
td_frontend_status_t td_frontend_process_clip(td_frontend_t *frontend,
                                              const int16_t pcm[TD_FRONTEND_CLIP_SAMPLES],
                                              int8_t features[TD_FRONTEND_FEATURES]);

/* micro_speech's map from front-end output to int8: round(v * 256 / 666) - 128, saturated. */
void td_frontend_raw_to_int8(const uint16_t *raw, int8_t *features, size_t count);

/* Memory, for the size report: one td_frontend_t, the FFT scratch shared by all
 * instances (RAM), and the const tables (flash). */
size_t td_frontend_state_bytes(void);
size_t td_frontend_scratch_bytes(void);
size_t td_frontend_table_bytes(void);

#ifdef __cplusplus
}
#endif

#endif /* TD_FRONTEND_H */
