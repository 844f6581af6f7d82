/*
 * Input summary of a spectrogram-like model input: the per-channel mean over frames,
 * in units of 2^-TD_SUMMARY_FRAC_BITS of the int8 feature, rounded half up. Exact integer
 * arithmetic, so the host computes the same summary from the same features.
 */
#include "td_monitor.h"
#include "td_monitor_fixed.h"

int td_summarize_frames(const int8_t *features, uint32_t n_frames, uint32_t n_channels,
                        int16_t *summary)
{
    uint32_t c, f;

    if (features == 0 || summary == 0) {
        return TD_MONITOR_ERR_NULL;
    }
    if (n_frames == 0 || n_frames > UINT16_MAX || n_channels == 0) {
        return TD_MONITOR_ERR_ARG;
    }
    for (c = 0; c < n_channels; ++c) {
        int32_t sum = 0;
        for (f = 0; f < n_frames; ++f) {
            sum += features[f * n_channels + c];
        }
        summary[c] = (int16_t)td_floor_div_s64(
            (int64_t)sum * (1 << TD_SUMMARY_FRAC_BITS) + (int64_t)(n_frames / 2), n_frames);
    }
    return TD_MONITOR_OK;
}
