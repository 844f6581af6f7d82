/*
 * The quiet level of a stream: the lowest loudness (td_summarize_level) of its last
 * TD_SUMMARY_QUIET_SPAN inferences, this one included (of those since the stream began, when
 * fewer). Half a second of a wake-word stream almost always holds a pause between words, so
 * this follows the room's floor: what noise, babble or a reverberant tail raise between the
 * words, while the mean loudness mixes them with the speech. Measured on okay_nabu's monitor
 * over 32 held-out sessions (beside the tilt; detected of 32, median delay): a 0.4 s room 4
 * (33 s) -> 17 (38 s), a 0.8 s room 21 (22 s) -> 26 (13 s), babble at 10 dB 25 (11 s) -> 25
 * (6.4 s), white noise at 20 dB 23 (7.4 s) -> 26 (4.4 s), at a held-out ARL0 of x1.8 instead of
 * x2.1; spans of 8, 24 and 33 gave x1.9, x1.6 and x1.2, the longer ones sooner.
 */
#include "td_monitor.h"

void td_quiet_reset(td_quiet_t *quiet)
{
    quiet->next = 0;
    quiet->filled = 0;
}

int16_t td_summarize_quiet(td_quiet_t *quiet, int16_t level)
{
    int16_t lowest = level;
    quiet->levels[quiet->next] = level;
    quiet->next = (quiet->next + 1u) % TD_SUMMARY_QUIET_SPAN;
    if (quiet->filled < TD_SUMMARY_QUIET_SPAN) {
        quiet->filled++;
    }
    for (uint32_t i = 0; i < quiet->filled; ++i) {
        if (quiet->levels[i] < lowest) {
            lowest = quiet->levels[i];
        }
    }
    return lowest;
}
