/*
 * Long-run spread: how far a score's z wanders from one stretch of inferences to the next on
 * this device, against what the calibration's streams showed.
 *
 * The CUSUM levels were set on streams where speakers come and go as in the calibration data.
 * A device that hears one person for tens of commands at a time sees a harder voice lower its
 * confidence for as long as that person talks: consecutive z values move together, the CUSUM
 * climbs as on a change, and false alarms come several times as often. Over blocks of
 * 2^TD_SPREAD_BLOCK_SHIFT inferences the device learns half the squared difference of
 * consecutive block means times the block length (the block-to-block spread of z, which a
 * one-off change of level moves by one block's worth only) and, where it is wider than the
 * calibration's, draws each z toward its no-drift centre by sqrt(spread_ref / spread), so the
 * CUSUM sees increments as wide as those its levels were set for. Never the other way: a calm
 * device keeps the calibrated sensitivity.
 *
 * A block in which the score's CUSUM is at its warning level, or its alarm is latched, is not
 * learned: a drift under way must not teach the device that drift is normal. A reset keeps
 * what was learned (how a deployment's speakers take turns does not change when its reference
 * is learned again); only td_monitor_init forgets it.
 *
 * How fast it learns bounds what it can do for a device that hears one voice. Measured on the
 * keyword bench (quick, Scottish one-voice control, 2 M inferences in streams of 10,000 from
 * init): its confidence alarms come mostly in a stream's first 4,000 inferences; with the
 * gain held from the start at what the device learns by the end (0.71), 77 alarms fall to 24,
 * 3 of them the confidence score's. Learning faster does not reach that: a prior of 16 blocks,
 * learning through warnings too, gave 51 alarms (8 blocks: 49), the noisy block estimate
 * shrinking the gain on drifting devices as well: an accent found after 188 (194) inferences
 * instead of 177, reverberation 88.5 (97) instead of 78. Not kept.
 */
#include "td_monitor.h"
#include "td_monitor_fixed.h"

void td_monitor_spread_init(td_monitor_state_t *state, const td_monitor_config_t *config)
{
    uint32_t i;

    for (i = 0; i < TD_SCORE_COUNT; ++i) {
        state->spread[i] = config->score[i].spread_ref;
        state->spread_gain[i] = (uint16_t)(1u << TD_Z_FRAC_BITS);
    }
    state->spread_blocks = 0;
    td_monitor_spread_restart(state);
}

void td_monitor_spread_restart(td_monitor_state_t *state)
{
    uint32_t i;

    for (i = 0; i < TD_SCORE_COUNT; ++i) {
        state->spread_sum[i] = 0;
        state->spread_last[i] = 0;
    }
    state->spread_n = 0;
    state->status &= (uint8_t)~TD_STATE_SPREAD_LAST;
}

int32_t td_monitor_spread_apply(const td_monitor_state_t *state, const td_score_params_t *params,
                                uint32_t score, int32_t z)
{
    if (params->spread_ref == 0) {
        return z;
    }
    /* |z - centre| <= 2^17 and gain <= 2^12: the result lies between centre and z */
    return params->spread_centre +
           (int32_t)td_round_shift_s64(((int64_t)z - params->spread_centre) * state->spread_gain[score],
                                       TD_Z_FRAC_BITS);
}

void td_monitor_spread_learn(td_monitor_state_t *state, const td_monitor_config_t *config, const int32_t *z,
                             uint32_t calm)
{
    const uint32_t weight = TD_SPREAD_PRIOR_BLOCKS + state->spread_blocks;
    uint32_t learned = 0;
    uint32_t i;

    for (i = 0; i < TD_SCORE_COUNT; ++i) {
        state->spread_sum[i] += z[i]; /* 2^TD_SPREAD_BLOCK_SHIFT x 2^16 at most */
    }
    state->spread_n += 1;
    if (state->spread_n < (1u << TD_SPREAD_BLOCK_SHIFT)) {
        return;
    }
    for (i = 0; i < TD_SCORE_COUNT; ++i) {
        const int32_t ref = config->score[i].spread_ref;
        const int32_t mean = td_round_shift_s32(state->spread_sum[i], TD_SPREAD_BLOCK_SHIFT);

        if (ref > 0 && (state->status & TD_STATE_SPREAD_LAST) != 0 && (calm & (1u << i)) != 0) {
            /* diff^2 x block length / 2, back to Q12: (2^17)^2 >> 7 stays below 2^28 */
            const int64_t diff = (int64_t)mean - state->spread_last[i];
            const int32_t d = (int32_t)td_round_shift_s64(diff * diff, TD_Z_FRAC_BITS + 1 - TD_SPREAD_BLOCK_SHIFT);
            state->spread[i] += (int32_t)td_div_round_s64((int64_t)d - state->spread[i], weight);
            state->spread_gain[i] = (uint16_t)td_isqrt_u32((uint32_t)td_div_round_s64(
                (int64_t)ref << (2 * TD_Z_FRAC_BITS), state->spread[i] > ref ? state->spread[i] : ref));
            learned = 1;
        }
        state->spread_last[i] = mean;
        state->spread_sum[i] = 0;
    }
    if (learned && state->spread_blocks < TD_SPREAD_PRIOR_BLOCKS) {
        state->spread_blocks += 1;
    }
    state->status |= TD_STATE_SPREAD_LAST;
    state->spread_n = 0;
}
