/*
 * A sensor that fails on and off: a Bernoulli CUSUM of dropouts, inferences whose every
 * sensor block lost the signal (stuck, flat or offset; TD_SENSOR_INPUT_DROPOUT), which
 * td_monitor_update holds out of the scores.
 *
 * A flagged run becomes a fault only when it lasts persist_blocks blocks, and a held
 * inference enters no score, so a microphone dead three seconds of every four, or a camera
 * black one frame in five, would otherwise raise nothing at all. Each inference adds 1 if a
 * dropout, 0 if not, less an allowance: the share of dropouts while commissioning plus
 * dropout_margin. A healthy device's share is its own (a quiet room whose noise sits under
 * one level reads stuck through some of its pauses), so the test runs once commissioning has
 * learned it; a device without commissioning allows dropout_margin alone. Reaching
 * dropout_limit latches SENSOR_FAULT, dated where the CUSUM last left zero.
 *
 * Saturation alone is no dropout: an overexposed camera's brightest frames, or a microphone
 * turned up into the rail, still carry the scene or the speech, and are an upstream change
 * (DATA_DRIFT) unless they persist into the clipping fault.
 */
#include "td_monitor.h"
#include "td_monitor_fixed.h"

void td_sensor_intermittent(td_monitor_state_t *state, const td_monitor_config_t *config, int dropout)
{
    int32_t share = 0;

    if (config->dropout_limit == 0) {
        return;
    }
    if (config->commission_n > 0) {
        if (td_monitor_commissioning(state, config)) {
            return;
        }
        share = td_round_shift_s32(state->commission.dropouts, TD_PROB_FRAC_BITS - TD_Z_FRAC_BITS);
    }
    (void)td_cusum_step(&state->dropout_cusum, &state->dropout_start,
                        (dropout ? (1 << TD_Z_FRAC_BITS) : 0) - share - (int32_t)config->dropout_margin,
                        TD_CUSUM_MAX, state->t);
    if (state->dropout_cusum >= config->dropout_limit) {
        td_monitor_latch(state, TD_ALARM_SENSOR_FAULT, state->dropout_start);
    }
}
