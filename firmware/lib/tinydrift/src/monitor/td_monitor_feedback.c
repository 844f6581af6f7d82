/*
 * Error rate on label feedback, DDM-style (Gama et al. 2004): with p the error rate and
 * s = sqrt(p (1 - p) / n), warn when p + s >= p_min + w s_min and declare drift at
 * p_min + d s_min, (p_min, s_min) taken where p + s was lowest. p is Laplace-smoothed,
 * (errors + 1) / (labels + 2), so a run of correct answers cannot drive s_min to zero and
 * make the first error an alarm.
 *
 * Given the reference's error rate (ddm_reference_q16), the best starts where it would be had
 * the first ddm_min_labels labels come at that rate: labels that begin only after a drift are
 * judged against the model's known error rate, where they once set a drifted rate as the best
 * and never alarmed (65 % wrong against the 18 % the export measured, no ERROR_RATE). A device
 * whose labels run below the reference still lowers its best as before.
 */
#include "td_monitor.h"
#include "td_monitor_fixed.h"

#define TD_ONE_Q16 (1u << TD_PROB_FRAC_BITS)

void td_monitor_ddm_seed(td_monitor_state_t *state, const td_monitor_config_t *config)
{
    const uint64_t trials = (uint64_t)config->ddm_min_labels + 2u;
    uint32_t p, s;

    state->ddm_p_min_q16 = 0; /* no best yet: the smoothed p is never 0 */
    state->ddm_s_min_q16 = 0;
    if (config->ddm_reference_q16 == 0) {
        return;
    }
    /* (errors + 1) / (labels + 2) at errors = reference x ddm_min_labels, as the test smooths p */
    p = (uint32_t)(((uint64_t)config->ddm_reference_q16 * config->ddm_min_labels + TD_ONE_Q16) / trials);
    s = td_isqrt_u32((uint32_t)(((uint64_t)p * (TD_ONE_Q16 - p)) / trials));
    state->ddm_p_min_q16 = p;
    state->ddm_s_min_q16 = s;
}

int td_monitor_label_feedback(td_monitor_state_t *state, const td_monitor_config_t *config,
                              int32_t predicted, int32_t true_label, td_feedback_result_t *out)
{
    uint64_t trials;
    uint32_t p, s;

    if (state == 0 || config == 0) {
        return TD_MONITOR_ERR_NULL;
    }
    if (predicted < 0 || predicted >= (int32_t)config->n_classes || true_label < 0 ||
        true_label >= (int32_t)config->n_classes) {
        return TD_MONITOR_ERR_ARG;
    }
    if (td_monitor_state_check(state, config) != TD_MONITOR_OK) {
        return TD_MONITOR_ERR_STATE;
    }
    state->labels = td_sat_inc_u32(state->labels);
    if (predicted != true_label) {
        state->errors = td_sat_inc_u32(state->errors);
    }
    trials = (uint64_t)state->labels + 2u;
    p = (uint32_t)((((uint64_t)state->errors + 1u) << TD_PROB_FRAC_BITS) / trials);
    /* p (1 - p) <= 2^30 in Q32, divided by n, then the root is in Q16. */
    s = td_isqrt_u32((uint32_t)(((uint64_t)p * (TD_ONE_Q16 - p)) / trials));

    if (state->labels >= config->ddm_min_labels) {
        const uint64_t level = (uint64_t)(p + s) << 8;
        const uint64_t base = (uint64_t)state->ddm_p_min_q16 << 8;
        if (state->ddm_p_min_q16 == 0 || p + s < state->ddm_p_min_q16 + state->ddm_s_min_q16) {
            state->ddm_p_min_q16 = p;
            state->ddm_s_min_q16 = s;
            state->ddm_in_warning = 0;
        } else if (level >= base + (uint64_t)config->ddm_warning_q8 * state->ddm_s_min_q16) {
            if (!state->ddm_in_warning) {
                state->ddm_in_warning = 1;
                state->ddm_warning_time = state->t;
            }
            if (level >= base + (uint64_t)config->ddm_drift_q8 * state->ddm_s_min_q16) {
                td_monitor_latch(state, TD_ALARM_ERROR_RATE, state->ddm_warning_time);
            }
        } else {
            state->ddm_in_warning = 0;
        }
    }
    if (out != 0) {
        out->labels = state->labels;
        out->errors = state->errors;
        out->p_q16 = p;
        out->s_q16 = s;
        out->alarms = td_monitor_live_alarms(state, config);
    }
    return TD_MONITOR_OK;
}
