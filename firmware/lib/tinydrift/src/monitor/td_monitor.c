/*
 * Drift monitor entry points: configuration check, reset, and the per-inference update
 * that runs the moments, outputs and decision steps in order.
 *
 * An inference whose every sensor block came with a condition that becomes a fault if it
 * persists (black camera frames, a dead or clipping microphone) is the sensor's, not the
 * population's: its answer is read, reported and shown in the running displays (the accuracy
 * estimate describes the answers given), but it enters no score, no commissioning sum and no
 * CUSUM. A short blink then leaves no trace in the input moments, which would
 * carry it for a hundred inferences; a long one is sensor health's to name (SENSOR_FAULT),
 * and so are many short ones (td_sensor_intermittent.c).
 */
#include "td_monitor.h"
#include "td_monitor_fixed.h"

#define TD_ONE_Q12 (1 << TD_Z_FRAC_BITS)
#define TD_ONE_Q16 (1 << TD_PROB_FRAC_BITS)
#define TD_MAX_SHIFT 15

uint32_t td_monitor_state_size(void)
{
    return (uint32_t)sizeof(td_monitor_state_t);
}

uint32_t td_monitor_commission_size(void)
{
    return (uint32_t)sizeof(td_commission_t);
}

static int td_in_range(int64_t x, int64_t lo, int64_t hi)
{
    return x >= lo && x <= hi;
}

int td_monitor_check_config(const td_monitor_config_t *config)
{
    uint32_t i;

    if (config == 0) {
        return TD_MONITOR_ERR_NULL;
    }
    if (config->abi_version != TD_MONITOR_ABI_VERSION || config->n_summary == 0 ||
        config->n_summary > TD_MONITOR_MAX_SUMMARY || config->n_classes == 0 ||
        config->n_classes > TD_MONITOR_MAX_CLASSES) {
        return TD_MONITOR_ERR_CONFIG;
    }
    if (config->ref_mean == 0 || config->inv_std_q28 == 0 || config->prior_q16 == 0 ||
        config->inv_prior_q8 == 0 || config->entropy_q16 == 0) {
        return TD_MONITOR_ERR_NULL;
    }
    /* The ranges below are what keeps every product inside its integer type. */
    if (config->mean_shift > TD_MAX_SHIFT || config->var_shift > TD_MAX_SHIFT ||
        config->label_shift > TD_MAX_SHIFT || config->display_shift > TD_MAX_SHIFT ||
        !td_in_range(config->atc_threshold, 0, 256) ||
        !td_in_range(config->ref_confidence_q16, 0, TD_ONE_Q16) ||
        !td_in_range(config->ref_entropy_q16, 0, (int64_t)UINT16_MAX * TD_MONITOR_MAX_CLASSES) ||
        !td_in_range(config->ref_accuracy_q16, 0, TD_ONE_Q16) ||
        config->ddm_warning_q8 > UINT16_MAX || config->ddm_drift_q8 > UINT16_MAX ||
        config->ddm_reference_q16 >= TD_ONE_Q16 ||
        !td_in_range(config->clip_level, 1, 32768) || config->clip_rate_q16 > TD_ONE_Q16 ||
        config->clip_drift_q16 > TD_ONE_Q16 || config->clip_drift_blocks == 0 ||
        config->commission_n > TD_MONITOR_MAX_COMMISSION ||
        !td_in_range(config->loudness_limit, 0, TD_CUSUM_MAX) || !td_in_range(config->loudness_k, 0, TD_CHANNEL_Z_MAX) ||
        config->loudness_component >= config->n_summary || !td_in_range(config->quiet_limit, 0, TD_CUSUM_MAX) ||
        config->quiet_component >= config->n_summary || config->dropout_margin > TD_ONE_Q12 ||
        !td_in_range(config->dropout_limit, 0, TD_CUSUM_MAX)) {
        return TD_MONITOR_ERR_CONFIG;
    }
    for (i = 0; i < config->n_summary; ++i) {
        if (!td_in_range(config->inv_std_q28[i], 1, 1 << 28)) {
            return TD_MONITOR_ERR_CONFIG;
        }
    }
    for (i = 0; i < config->n_classes; ++i) {
        if (!td_in_range(config->prior_q16[i], 0, TD_ONE_Q16) ||
            !td_in_range(config->inv_prior_q8[i], 0, 1 << 24) ||
            (config->loudness_class_offset != 0 &&
             !td_in_range(config->loudness_class_offset[i], -TD_CHANNEL_Z_MAX, TD_CHANNEL_Z_MAX))) {
            return TD_MONITOR_ERR_CONFIG;
        }
    }
    for (i = 0; i < TD_SCORE_COUNT; ++i) {
        const td_score_params_t *p = &config->score[i];
        if (!td_in_range(p->offset, -(1 << 30), 1 << 30) ||
            !td_in_range(p->gain_q16, -(1 << 28), 1 << 28) || !td_in_range(p->k, 0, 1 << 24) ||
            !td_in_range(p->warning, 1, TD_CUSUM_MAX) || !td_in_range(p->drift, 1, TD_CUSUM_MAX) ||
            !td_in_range(p->limit, 0, TD_SCORE_Z_MAX) || !td_in_range(p->spread_ref, 0, 1 << 28) ||
            !td_in_range(p->spread_centre, -TD_SCORE_Z_MAX, TD_SCORE_Z_MAX)) {
            return TD_MONITOR_ERR_CONFIG;
        }
    }
    return TD_MONITOR_OK;
}

void td_monitor_reset(td_monitor_state_t *state, const td_monitor_config_t *config)
{
    uint32_t i;

    if (state == 0 || config == 0) {
        return;
    }
    state->t = 0;
    for (i = 0; i < TD_MONITOR_MAX_SUMMARY; ++i) {
        state->mean_ewma[i] = 0;
        /* Start at the reference: z^2 averages one, so the variance ratio starts at one. */
        state->sq_ewma[i] = TD_ONE_Q12 << TD_EWMA_EXTRA_BITS;
    }
    for (i = 0; i < 2; ++i) {
        state->loudness_cusum[i] = 0;
        state->loudness_start[i] = 0;
    }
    state->quiet_cusum = 0;
    state->quiet_start = 0;
    for (i = 0; i < TD_MONITOR_MAX_CLASSES; ++i) {
        state->class_ewma[i] = i < config->n_classes ? config->prior_q16[i] : 0;
    }
    state->confidence_ewma = config->ref_confidence_q16;
    state->entropy_ewma = config->ref_entropy_q16;
    state->atc_ewma = config->ref_accuracy_q16;
    for (i = 0; i < TD_SCORE_COUNT; ++i) {
        state->cusum[i] = 0;
        state->excursion_start[i] = 0;
    }
    state->alarms = 0;
    state->warnings = 0;
    state->alarm_time = 0;
    state->change_time = 0;
    for (i = 0; i < TD_MONITOR_MASK_WORDS; ++i) {
        state->moved_at_alarm[i] = 0;
    }
    state->labels = 0;
    state->errors = 0;
    td_monitor_ddm_seed(state, config);
    state->ddm_in_warning = 0;
    state->ddm_warning_time = 0;
    state->sensor_flags = 0;
    state->input_blocks = 0;
    state->input_dead = 0;
    state->input_sound = 0;
    state->clip_ewma = 0;
    state->clip_drift_run = 0;
    for (i = 0; i < TD_SENSOR_CONDITION_COUNT; ++i) {
        state->sensor_run[i] = 0;
        state->sensor_run_start[i] = 0;
    }
    state->dropout_cusum = 0;
    state->dropout_start = 0;
    state->commission.count = 0;
    state->commission.dead = 0;
    for (i = 0; i < TD_MONITOR_MAX_SUMMARY; ++i) {
        state->commission.z_mean[i] = 0;
        state->commission.z_scale[i] = 0;
    }
    state->commission.confidence = 0;
    state->commission.entropy = 0;
    for (i = 0; i < TD_MONITOR_MAX_CLASSES; ++i) {
        state->commission.prior_q16[i] = 0;
    }
    state->commission.centre_weight[0] = 0;
    state->commission.centre_weight[1] = 0;
    td_monitor_spread_restart(state);
}

int td_monitor_init_checked(td_monitor_state_t *state, const td_monitor_config_t *config, uint32_t state_size)
{
    int status;

    if (state == 0) {
        return TD_MONITOR_ERR_NULL;
    }
    if (state_size != (uint32_t)sizeof(td_monitor_state_t)) {
        return TD_MONITOR_ERR_BUILD;
    }
    status = td_monitor_check_config(config);
    if (status != TD_MONITOR_OK) {
        return status;
    }
    td_monitor_spread_init(state, config);
    td_monitor_reset(state, config);
    state->status = TD_STATE_MARK; /* after the reset: a reset alone does not make a state */
    return TD_MONITOR_OK;
}

int td_monitor_state_check(const td_monitor_state_t *state, const td_monitor_config_t *config)
{
    if ((state->status & TD_STATE_MARK_MASK) != TD_STATE_MARK ||
        (state->status & (uint8_t)~(TD_STATE_MARK_MASK | TD_STATE_SPREAD_LAST)) != 0 ||
        state->spread_n >= (1u << TD_SPREAD_BLOCK_SHIFT) || state->spread_blocks > TD_SPREAD_PRIOR_BLOCKS ||
        (state->alarms & ~TD_ALARM_TYPES_MASK) != 0 || (state->warnings & ~TD_ALARM_TYPES_MASK) != 0 ||
        state->commission.count > config->commission_n) {
        return TD_MONITOR_ERR_STATE;
    }
    return TD_MONITOR_OK;
}

/* The SENSOR_FAULT warning: a condition that becomes a fault has lasted half the blocks that
 * make it one, or the CUSUM of dead time is half way to its limit. Half way, not at the first
 * flagged block: loud speech reads as offset in one 20 ms block now and then, and a warning
 * that flickers on a healthy microphone teaches its user to ignore it. */
static int td_sensor_warning(const td_monitor_state_t *state, const td_monitor_config_t *config)
{
    uint32_t c;

    for (c = 0; c < TD_SENSOR_CONDITION_COUNT; ++c) {
        if (config->persist_blocks[c] > 0 && 2u * state->sensor_run[c] >= config->persist_blocks[c]) {
            return 1;
        }
    }
    return config->dropout_limit > 0 && state->dropout_cusum >= config->dropout_limit - config->dropout_limit / 2;
}

uint32_t td_monitor_live_alarms(const td_monitor_state_t *state, const td_monitor_config_t *config)
{
    uint32_t warnings = state->warnings;

    if (state->ddm_in_warning) {
        warnings |= TD_ALARM_ERROR_RATE;
    }
    if (td_sensor_warning(state, config)) {
        warnings |= TD_ALARM_SENSOR_FAULT;
    }
    return state->alarms | TD_WARNING(warnings);
}

/* One inference into the scores: the outputs first (the moments read the predicted class;
 * their state is apart), then the moments, then commissioning or the decision. */
static void td_monitor_score(td_monitor_state_t *state, const td_monitor_config_t *config, const int16_t *summary,
                             td_monitor_result_t *result)
{
    uint32_t w;

    td_monitor_outputs(state, config, result, result->raw);
    td_monitor_moments(state, config, summary, result->predicted, &result->raw[TD_SCORE_MEAN],
                       &result->raw[TD_SCORE_VAR], result->moved);
    if (td_monitor_commissioning(state, config)) {
        /* Learning the device's reference: no score moves, no alarm but the sensor's and
         * the error rate's, which need no reference of the population. */
        for (w = 0; w < TD_SCORE_COUNT; ++w) {
            result->z[w] = 0;
        }
        state->commission.count += 1;
        if (state->commission.count == config->commission_n) {
            td_monitor_commission_finish(state, config);
        }
    } else {
        td_monitor_decide(state, config, result->raw, result->z, result->moved);
    }
}

int td_monitor_update(td_monitor_state_t *state, const td_monitor_config_t *config,
                      const int16_t *summary, const int8_t *probs, td_monitor_result_t *out)
{
    td_monitor_result_t local;
    td_monitor_result_t *result = out != 0 ? out : &local;
    int held;
    int32_t dead_q12 = 0;
    uint32_t w;

    if (state == 0 || config == 0 || summary == 0 || probs == 0) {
        return TD_MONITOR_ERR_NULL;
    }
    if (td_monitor_state_check(state, config) != TD_MONITOR_OK) {
        return TD_MONITOR_ERR_STATE;
    }
    state->t = td_sat_inc_u32(state->t);
    /* what its sensor blocks said: none sound, held out of the scores; the share dead */
    held = state->input_blocks > 0 && state->input_sound == 0;
    if (state->input_blocks > 0) {
        dead_q12 = (int32_t)(((uint32_t)state->input_dead << TD_Z_FRAC_BITS) / state->input_blocks);
    }
    state->input_blocks = 0;
    state->input_dead = 0;
    state->input_sound = 0;
    if (td_monitor_commissioning(state, config)) {
        /* before the scores: this inference may be the one that finishes commissioning */
        const uint32_t sum = (uint32_t)state->commission.dead +
                             (uint32_t)td_round_shift_s32(dead_q12, TD_Z_FRAC_BITS - TD_COMMISSION_DEAD_BITS);
        state->commission.dead = (uint16_t)(sum < UINT16_MAX ? sum : UINT16_MAX);
    }
    td_monitor_answer(state, config, probs, result);
    if (held) {
        for (w = 0; w < TD_SCORE_COUNT; ++w) {
            result->raw[w] = 0;
            result->z[w] = 0;
        }
        for (w = 0; w < TD_MONITOR_MASK_WORDS; ++w) {
            result->moved[w] = 0;
        }
    } else {
        td_monitor_score(state, config, summary, result);
    }
    td_sensor_intermittent(state, config, dead_q12);

    result->t = state->t;
    for (w = 0; w < TD_SCORE_COUNT; ++w) {
        result->cusum[w] = state->cusum[w];
    }
    result->alarms = td_monitor_live_alarms(state, config);
    result->alarm_time = state->alarm_time;
    result->change_time = state->change_time;
    for (w = 0; w < TD_MONITOR_MASK_WORDS; ++w) {
        result->moved_at_alarm[w] = state->moved_at_alarm[w];
    }
    result->confidence_ewma_q16 = state->confidence_ewma;
    result->entropy_ewma_q16 = state->entropy_ewma;
    result->atc_accuracy_q16 = state->atc_ewma;
    result->sensor_flags = state->sensor_flags;
    return TD_MONITOR_OK;
}
