/*
 * A sensor that fails on and off: a Bernoulli CUSUM of the inferences held out of the scores
 * because every one of their sensor blocks was flagged (td_monitor_update).
 *
 * A flagged run becomes a fault only when it lasts persist_blocks blocks, and a held
 * inference enters no score, so a microphone dead three seconds of every four, or a camera
 * black one frame in five, would otherwise raise nothing at all. Each inference adds 1 if
 * held, 0 if not, less an allowance: the share of inferences held while commissioning plus
 * held_margin. A healthy device's share is its own (a quiet room whose noise sits under one
 * level holds some of its pauses), so the test runs once commissioning has learned it; a
 * device without commissioning allows held_margin alone. Reaching held_limit latches
 * SENSOR_FAULT, dated where the CUSUM last left zero.
 */
#include "td_monitor.h"
#include "td_monitor_fixed.h"

void td_sensor_intermittent(td_monitor_state_t *state, const td_monitor_config_t *config, int held)
{
    int32_t share = 0;

    if (config->held_limit == 0) {
        return;
    }
    if (config->commission_n > 0) {
        if (td_monitor_commissioning(state, config)) {
            return;
        }
        share = td_round_shift_s32(state->commission.held, TD_PROB_FRAC_BITS - TD_Z_FRAC_BITS);
    }
    (void)td_cusum_step(&state->held_cusum, &state->held_start,
                        (held ? (1 << TD_Z_FRAC_BITS) : 0) - share - (int32_t)config->held_margin, TD_CUSUM_MAX,
                        state->t);
    if (state->held_cusum >= config->held_limit) {
        td_monitor_latch(state, TD_ALARM_SENSOR_FAULT, state->held_start);
    }
}
