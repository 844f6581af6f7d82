/*
 * Model outputs. The answer (td_monitor_answer, every inference): predicted class,
 * confidence (max probability), entropy from the exact 256-entry table, and the running
 * displays of them, the ATC accuracy estimate among them. The scores (td_monitor_outputs,
 * inferences the sensor did not spoil): confidence and entropy, and the chi-square of the
 * EWMA predicted-class histogram against the reference priors (label shift). With commissioning, the first
 * inferences only add to the device's reference; afterwards confidence (in Q8) and
 * entropy are centred on its means and the histogram is compared with its frequencies.
 */
#include "td_monitor.h"
#include "td_monitor_fixed.h"

#define TD_ONE_Q16 (1 << TD_PROB_FRAC_BITS)

/* round(2^24 / frequency) of class k: the config's for the training priors; of the device's
 * own, worked out each time (frequency 1..2^16, so one 32-bit division): not kept in the
 * state, which stays within 1 KB. */
static int32_t td_inv_prior_q8(const td_monitor_config_t *config, const td_monitor_state_t *state, uint32_t k)
{
    if (config->commission_n == 0) {
        return config->inv_prior_q8[k];
    }
    {
        const uint32_t learned = (uint32_t)state->commission.prior_q16[k];
        const uint32_t prior = learned > 0u ? learned : 1u;
        return (int32_t)(((2u << 24) + prior) / (2u * prior)); /* td_div_round_s64(2^24, prior) */
    }
}

void td_monitor_answer(td_monitor_state_t *state, const td_monitor_config_t *config, const int8_t *probs,
                       td_monitor_result_t *out)
{
    int32_t predicted = 0;
    int32_t best = probs[0];
    int32_t entropy = 0;
    int32_t confidence;
    uint32_t k;

    for (k = 0; k < config->n_classes; ++k) {
        const int32_t q = probs[k];
        entropy += config->entropy_q16[q + 128];
        if (q > best) {
            best = q;
            predicted = (int32_t)k;
        }
    }
    confidence = best + 128;
    out->predicted = predicted;
    out->confidence = confidence;
    out->entropy_q16 = entropy;

    state->atc_ewma = td_ewma_step(state->atc_ewma, confidence >= config->atc_threshold ? TD_ONE_Q16 : 0,
                                   config->display_shift);
    state->confidence_ewma = td_ewma_step(state->confidence_ewma, confidence * 256, config->display_shift);
    state->entropy_ewma = td_ewma_step(state->entropy_ewma, entropy, config->display_shift);
}

void td_monitor_outputs(td_monitor_state_t *state, const td_monitor_config_t *config,
                        const td_monitor_result_t *answer, int32_t *raw)
{
    const int32_t predicted = answer->predicted;
    const int32_t confidence = answer->confidence;
    const int32_t entropy = answer->entropy_q16;
    int64_t label_stat = 0;
    const int commissioning = td_monitor_commissioning(state, config);
    const int32_t *prior = config->commission_n > 0 ? state->commission.prior_q16 : config->prior_q16;
    uint32_t k;

    if (commissioning) {
        state->commission.confidence += confidence;
        state->commission.entropy += entropy;
        state->commission.prior_q16[predicted] += 1;
        raw[TD_SCORE_CONF] = 0;
        raw[TD_SCORE_ENTROPY] = 0;
        raw[TD_SCORE_LABEL] = 0;
        return;
    }
    for (k = 0; k < config->n_classes; ++k) {
        int32_t excess;
        int64_t excess_sq;
        state->class_ewma[k] = td_ewma_step(state->class_ewma[k],
                                            (int32_t)k == predicted ? TD_ONE_Q16 : 0,
                                            config->label_shift);
        excess = state->class_ewma[k] - prior[k];
        excess_sq = td_round_shift_s64((int64_t)excess * excess, TD_PROB_FRAC_BITS);
        /* (f - prior)^2 / prior in Q12: Q16 * Q8 -> Q24, minus 12 bits. */
        label_stat += td_round_shift_s64(excess_sq * td_inv_prior_q8(config, state, k), 12);
    }

    if (config->commission_n > 0) {
        raw[TD_SCORE_CONF] = confidence * 256 - state->commission.confidence;
        raw[TD_SCORE_ENTROPY] = entropy - state->commission.entropy;
    } else {
        raw[TD_SCORE_CONF] = confidence;
        raw[TD_SCORE_ENTROPY] = entropy;
    }
    raw[TD_SCORE_LABEL] = td_sat_s32(label_stat);
}
