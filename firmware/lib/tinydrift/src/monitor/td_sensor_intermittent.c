/*
 * A sensor that fails on and off: a CUSUM of dead time, the share of each inference's sensor
 * blocks that lost the signal (stuck or flat; see TD_SENSOR_INPUT_MAX_BLOCKS).
 *
 * A flagged run becomes a fault only when it lasts persist_blocks blocks, and an inference
 * without a sound block enters no score, so a microphone dead three seconds of every four, or
 * a camera black one frame in five, would otherwise raise nothing at all. Each inference adds
 * its dead share, 1 for a whole dropout, 0.5 for one dead half of its time, less an allowance:
 * the dead share while commissioning plus dropout_margin. Counting blocks, not whole
 * inferences, a dead stretch counts the same wherever it falls against the inference windows
 * (half a second dead of every second is half of each, never a whole one). A healthy
 * device's share is its own (a quiet room whose noise sits under one level reads stuck
 * through some of its pauses), so the test runs once commissioning has learned it; a device
 * without commissioning allows dropout_margin alone. Reaching dropout_limit latches
 * SENSOR_FAULT, dated where the CUSUM last left zero.
 *
 * Saturation or an offset alone is no dead time: an overexposed camera's brightest frames, a
 * microphone turned up into the rail, or loud speech whose 20 ms blocks read as offset now
 * and then, still carry the scene or the speech, and are an upstream change (DATA_DRIFT)
 * unless they persist into the clipping or offset fault.
 */
#include "td_monitor.h"
#include "td_monitor_fixed.h"

void td_sensor_intermittent(td_monitor_state_t *state, const td_monitor_config_t *config, int32_t dead_q12)
{
    int32_t share = 0;

    if (config->dropout_limit == 0) {
        return;
    }
    if (config->commission_n > 0) {
        if (td_monitor_commissioning(state, config)) {
            return;
        }
        share = td_round_shift_s32(state->commission.dead, TD_PROB_FRAC_BITS - TD_Z_FRAC_BITS);
    }
    (void)td_cusum_step(&state->dropout_cusum, &state->dropout_start,
                        dead_q12 - share - (int32_t)config->dropout_margin, TD_CUSUM_MAX, state->t);
    if (state->dropout_cusum >= config->dropout_limit) {
        td_monitor_latch(state, TD_ALARM_SENSOR_FAULT, state->dropout_start);
    }
}
