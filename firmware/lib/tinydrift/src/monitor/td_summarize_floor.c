/*
 * At-floor counts of a spectrogram-like model input: per group of `group` adjacent
 * channels, how many of its values over the frames sit at the int8 floor (-128), times
 * 2^TD_SUMMARY_FRAC_BITS. A front end that clips quiet bins to the floor (microWakeWord's)
 * leaves most channel means of a short block at the floor too, where a mean cannot tell
 * how much of the block was quiet; noise filling the floor, or a quieter microphone
 * emptying it, moves these counts first.
 */
#include "td_monitor.h"

int td_summarize_floor(const int8_t *features, uint32_t n_frames, uint32_t n_channels, uint32_t group,
                       int16_t *counts)
{
    uint32_t g, c, f;

    if (features == 0 || counts == 0) {
        return TD_MONITOR_ERR_NULL;
    }
    /* a count of n_frames * group values times 2^7 stays within int16 */
    if (n_frames == 0 || group == 0 || n_channels == 0 || n_channels % group != 0 ||
        n_frames * group > TD_SUMMARY_FLOOR_MAX_VALUES) {
        return TD_MONITOR_ERR_ARG;
    }
    for (g = 0; g < n_channels / group; ++g) {
        int32_t at_floor = 0;
        for (f = 0; f < n_frames; ++f) {
            for (c = g * group; c < (g + 1) * group; ++c) {
                at_floor += features[f * n_channels + c] == -128;
            }
        }
        counts[g] = (int16_t)(at_floor * (1 << TD_SUMMARY_FRAC_BITS));
    }
    return TD_MONITOR_OK;
}
