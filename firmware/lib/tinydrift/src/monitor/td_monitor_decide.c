/*
 * Decision: each raw score is standardized with the calibrated offset and gain and fed
 * to a one-sided CUSUM. Warnings are live; drift alarms latch with the change point
 * estimated as the inference where the CUSUM last left zero, when the CUSUM reaches its
 * drift level or a single z its limit (a Shewhart limit beside the CUSUM).
 *
 * A fixed model's outputs move only because its inputs did: when CONFIDENCE_DRIFT latches,
 * DATA_DRIFT latches with it unless the class mix explains the change (LABEL_SHIFT latched;
 * a label score merely at its warning level moves with babble too), or, when it does, if
 * the input summary shows the change itself (an input score at its warning level, or
 * attribute_moved components moved). A new accent or a room lowers the model's confidence
 * long before it moves a 40-value summary; it is still data drift, and the moved mask
 * recorded with it (empty, or nearly) says that only the model saw it.
 *
 * The input's loudness, where the summary carries one, has a two-sided CUSUM of its own
 * (td_monitor_moments keeps it; DATA_DRIFT at once, dated by that side's excursion): a gain
 * change moves that one value, and the mean score sums it with every other component's
 * wander. So has the quiet level, upward: noise added to the room.
 *
 * Where the device's own long-run spread of a score is wider than the calibration's, its z
 * is drawn toward the no-drift centre before the CUSUM takes it (td_monitor_spread.c).
 */
#include "td_monitor.h"
#include "td_monitor_fixed.h"

static const uint32_t td_score_alarm[TD_SCORE_COUNT] = {
    TD_ALARM_DATA_DRIFT,       /* TD_SCORE_MEAN */
    TD_ALARM_DATA_DRIFT,       /* TD_SCORE_VAR */
    TD_ALARM_CONFIDENCE_DRIFT, /* TD_SCORE_CONF */
    TD_ALARM_CONFIDENCE_DRIFT, /* TD_SCORE_ENTROPY */
    TD_ALARM_LABEL_SHIFT,      /* TD_SCORE_LABEL */
};

void td_monitor_latch_at(td_monitor_state_t *state, uint32_t alarm, uint32_t alarm_time, uint32_t change_time)
{
    if ((state->alarms & alarm) != 0) {
        return;
    }
    if (state->alarms == 0) {
        state->alarm_time = alarm_time;
        state->change_time = change_time;
    }
    state->alarms |= alarm;
}

void td_monitor_latch(td_monitor_state_t *state, uint32_t alarm, uint32_t change_time)
{
    td_monitor_latch_at(state, alarm, state->t, change_time);
}

/* 1 while a sensor condition that becomes a fault if it persists is under way: an input
 * shift is then the sensor's doing (black frames, a clipping microphone), and the score
 * limits leave it to sensor health to name it as SENSOR_FAULT. */
static int td_sensor_fault_pending(const td_monitor_state_t *state, const td_monitor_config_t *config)
{
    uint32_t c;

    for (c = 0; c < TD_SENSOR_CONDITION_COUNT; ++c) {
        if (config->persist_blocks[c] > 0 && state->sensor_run[c] > 0) {
            return 1;
        }
    }
    return 0;
}

static uint32_t td_moved_count(const uint32_t *moved)
{
    uint32_t count = 0;
    uint32_t w;

    for (w = 0; w < TD_MONITOR_MASK_WORDS; ++w) {
        uint32_t bits = moved[w];
        while (bits != 0) {
            bits &= bits - 1u;
            ++count;
        }
    }
    return count;
}

uint32_t td_monitor_decide(td_monitor_state_t *state, const td_monitor_config_t *config,
                           const int32_t *raw, int32_t *z, const uint32_t *moved)
{
    const int limits_on = !td_sensor_fault_pending(state, config);
    uint32_t warnings = 0;
    uint32_t latched_now = 0;
    uint32_t calm = 0;
    int32_t z_raw[TD_SCORE_COUNT];
    uint32_t i, w;

    for (i = 0; i < TD_SCORE_COUNT; ++i) {
        const td_score_params_t *params = &config->score[i];
        const uint32_t alarm = td_score_alarm[i];
        int32_t next;

        if ((config->enabled_scores & (1u << i)) == 0) {
            z[i] = 0;
            z_raw[i] = 0;
            state->cusum[i] = 0;
            continue;
        }
        /* |raw - offset| < 2^32 and |gain| <= 2^28: the product fits in 61 bits. */
        z_raw[i] = (int32_t)td_clamp_s64(
            td_round_shift_s64(((int64_t)raw[i] - params->offset) * params->gain_q16, 16),
            -TD_SCORE_Z_MAX, TD_SCORE_Z_MAX);
        z[i] = td_monitor_spread_apply(state, params, i, z_raw[i]);
        next = td_cusum_step(&state->cusum[i], &state->excursion_start[i], (int64_t)z[i] - params->k, TD_CUSUM_MAX,
                             state->t);
        if (next >= params->warning) {
            warnings |= alarm;
        }
        if ((next >= params->drift || (limits_on && params->limit > 0 && z[i] >= params->limit)) &&
            (state->alarms & alarm) == 0) {
            td_monitor_latch(state, alarm, state->excursion_start[i]);
            latched_now |= alarm;
            if (alarm == TD_ALARM_DATA_DRIFT) {
                for (w = 0; w < TD_MONITOR_MASK_WORDS; ++w) {
                    state->moved_at_alarm[w] = moved[w];
                }
            }
        }
    }
    /* held, too, while the recent share of clipping blocks is at the light-clipping level: a
     * gain turned up until the microphone clips is sensor health's to name */
    if (config->loudness_limit > 0 && limits_on && state->clip_drift_run == 0 &&
        (state->alarms & TD_ALARM_DATA_DRIFT) == 0) {
        for (i = 0; i < 2; ++i) {
            if (state->loudness_cusum[i] >= config->loudness_limit) {
                td_monitor_latch(state, TD_ALARM_DATA_DRIFT, state->loudness_start[i]);
                for (w = 0; w < TD_MONITOR_MASK_WORDS; ++w) {
                    state->moved_at_alarm[w] = moved[w];
                }
                break;
            }
        }
    }
    if (config->quiet_limit > 0 && limits_on && state->clip_drift_run == 0 &&
        (state->alarms & TD_ALARM_DATA_DRIFT) == 0 && state->quiet_cusum >= config->quiet_limit) {
        td_monitor_latch(state, TD_ALARM_DATA_DRIFT, state->quiet_start);
        for (w = 0; w < TD_MONITOR_MASK_WORDS; ++w) {
            state->moved_at_alarm[w] = moved[w];
        }
    }
    if ((latched_now & TD_ALARM_CONFIDENCE_DRIFT) != 0 && (state->alarms & TD_ALARM_DATA_DRIFT) == 0 &&
        ((state->alarms & TD_ALARM_LABEL_SHIFT) == 0 || (warnings & TD_ALARM_DATA_DRIFT) != 0 ||
         (config->attribute_moved > 0 && td_moved_count(moved) >= config->attribute_moved))) {
        /* dated by the mean score's excursion when it is at its warning level, else the
         * variance score's */
        i = state->cusum[TD_SCORE_MEAN] >= config->score[TD_SCORE_MEAN].warning &&
                    (config->enabled_scores & (1u << TD_SCORE_MEAN)) != 0
                ? TD_SCORE_MEAN
                : TD_SCORE_VAR;
        td_monitor_latch(state, TD_ALARM_DATA_DRIFT, state->excursion_start[i]);
        for (w = 0; w < TD_MONITOR_MASK_WORDS; ++w) {
            state->moved_at_alarm[w] = moved[w];
        }
    }
    for (i = 0; i < TD_SCORE_COUNT; ++i) {
        if (state->cusum[i] < config->score[i].warning && (state->alarms & td_score_alarm[i]) == 0) {
            calm |= 1u << i;
        }
    }
    td_monitor_spread_learn(state, config, z_raw, calm);
    td_monitor_commission_refine(state, config, raw, calm);
    state->warnings = warnings;
    return warnings;
}
