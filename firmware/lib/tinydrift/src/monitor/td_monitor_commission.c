/*
 * Commissioning: a device's own reference, learned from its first commission_n inferences
 * after a reset. The training reference says how far a deployment is from what the model
 * was trained on; this one says whether the deployment has changed since it was installed,
 * which is what the data, confidence and label alarms judge once it is learned.
 *
 * While commissioning, td_monitor_moments and td_monitor_outputs add each inference's
 * per-channel z and z^2, confidence, entropy and predicted class into the state; here the
 * sums become the reference, in place: mean z and 2^24 / sd(z) per channel, mean
 * confidence (Q8) and entropy, class frequencies (floored at half a count) and their
 * inverses, and the mean share of each inference's sensor blocks that lost the signal.
 *
 * A few hundred inferences hold few speakers' turns: where one person talks tens of commands
 * at a time, the mean confidence they give is off by as much as a harder voice lowers it, and
 * the CUSUM then climbs on every later run of ordinary speech. So the confidence and entropy
 * centres go on learning from calm inferences (as the long-run spread does) until their weight
 * reaches centre_n, the commissioning ones weighing 2^TD_CENTRE_COMMISSION_SHIFT each: a change
 * right after commissioning moves the centre little before its CUSUM warns.
 *
 * A learned reference can be kept across power cycles (td_monitor_commission_restore takes
 * it back after a boot): a device rebooted while its world has drifted would otherwise learn
 * the drift as its normal and never alarm on it.
 */
#include "td_monitor.h"
#include "td_monitor_fixed.h"

int td_monitor_commissioning(const td_monitor_state_t *state, const td_monitor_config_t *config)
{
    return config->commission_n > 0 && state->commission.count < config->commission_n;
}

int td_monitor_commissioned(const td_monitor_state_t *state, const td_monitor_config_t *config)
{
    return config->commission_n > 0 && state->commission.count == config->commission_n;
}

int td_monitor_commission_restore(td_monitor_state_t *state, const td_monitor_config_t *config,
                                  const td_commission_t *kept)
{
    uint32_t j, k;

    if (state == 0 || config == 0 || kept == 0) {
        return TD_MONITOR_ERR_NULL;
    }
    if (td_monitor_state_check(state, config) != TD_MONITOR_OK) {
        return TD_MONITOR_ERR_STATE;
    }
    if (config->commission_n == 0 || kept->count != config->commission_n ||
        kept->confidence < 0 || kept->confidence > 255 * 256 || kept->entropy < 0 ||
        kept->entropy > (int32_t)UINT16_MAX * TD_MONITOR_MAX_CLASSES) {
        return TD_MONITOR_ERR_ARG;
    }
    /* what td_monitor_commission_finish can give: the moments' products rely on it */
    for (j = 0; j < config->n_summary; ++j) {
        if (kept->z_mean[j] < -TD_CHANNEL_Z_MAX || kept->z_mean[j] > TD_CHANNEL_Z_MAX || kept->z_scale[j] < 1 ||
            kept->z_scale[j] > (1 << 15)) {
            return TD_MONITOR_ERR_ARG;
        }
    }
    for (k = 0; k < config->n_classes; ++k) {
        if (kept->prior_q16[k] < 1 || kept->prior_q16[k] > (1 << TD_PROB_FRAC_BITS)) {
            return TD_MONITOR_ERR_ARG;
        }
    }
    state->commission = *kept;
    for (k = 0; k < config->n_classes; ++k) {
        state->class_ewma[k] = kept->prior_q16[k];
    }
    return TD_MONITOR_OK;
}

void td_monitor_commission_finish(td_monitor_state_t *state, const td_monitor_config_t *config)
{
    const int64_t n = config->commission_n;
    uint32_t j, k;

    for (j = 0; j < config->n_summary; ++j) {
        const int32_t mean = (int32_t)td_div_round_s64(state->commission.z_mean[j], n);
        const int64_t mean_sq = td_div_round_s64(state->commission.z_scale[j], n);
        int64_t variance = mean_sq - td_round_shift_s64((int64_t)mean * mean, TD_Z_FRAC_BITS);
        uint32_t sd;
        if (variance < TD_COMMISSION_MIN_VAR_Q12) {
            variance = TD_COMMISSION_MIN_VAR_Q12;
        }
        /* variance <= 2^18 (Q12 of z clipped at 8 sd): variance << 12 fits in 32 bits. */
        sd = td_isqrt_u32((uint32_t)(variance << TD_Z_FRAC_BITS));
        state->commission.z_mean[j] = mean;
        state->commission.z_scale[j] = (int32_t)td_div_round_s64((int64_t)1 << 24, sd);
    }
    state->commission.confidence = (int32_t)td_div_round_s64((int64_t)state->commission.confidence * 256, n);
    state->commission.entropy = (int32_t)td_div_round_s64(state->commission.entropy, n);
    for (k = 0; k < config->n_classes; ++k) {
        /* A class never predicted while commissioning counts as half a prediction. */
        const int64_t twice = state->commission.prior_q16[k] > 0 ? 2 * (int64_t)state->commission.prior_q16[k] : 1;
        const int32_t prior = (int32_t)td_div_round_s64(twice << TD_PROB_FRAC_BITS, 2 * n);
        state->commission.prior_q16[k] = prior;
        /* The label score starts from the learned frequencies. */
        state->class_ewma[k] = prior;
    }
    /* the dead share of all inferences meanwhile, which td_sensor_intermittent allows for:
     * t counts them since the reset that began commissioning, held ones too */
    {
        const int64_t share = td_div_round_s64((int64_t)state->commission.dead
                                                   << (TD_PROB_FRAC_BITS - TD_COMMISSION_DEAD_BITS),
                                               (int64_t)state->t);
        state->commission.dead = (uint16_t)(share < UINT16_MAX ? share : UINT16_MAX);
    }
    state->commission.centre_weight[0] = (uint16_t)(n << TD_CENTRE_COMMISSION_SHIFT);
    state->commission.centre_weight[1] = state->commission.centre_weight[0];
}

void td_monitor_commission_refine(td_monitor_state_t *state, const td_monitor_config_t *config, const int32_t *raw,
                                  uint32_t calm)
{
    static const uint32_t score[2] = {TD_SCORE_CONF, TD_SCORE_ENTROPY};
    int32_t *const centre[2] = {&state->commission.confidence, &state->commission.entropy};
    uint32_t s;

    if (config->commission_n == 0) {
        return;
    }
    for (s = 0; s < 2; ++s) {
        uint16_t *const weight = &state->commission.centre_weight[s];
        if (*weight >= config->centre_n || (calm & (1u << score[s])) == 0) {
            continue;
        }
        *weight += 1;
        /* raw is the inference less the centre (under 2^18 either way): the centre stays
         * between the values it learned from */
        *centre[s] += (int32_t)td_div_round_s64(raw[score[s]], *weight);
    }
}
