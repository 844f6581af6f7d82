/*
 * Input moments: per summary channel, the standardized deviation from the reference,
 * z = (x - mean) / std, optionally decorrelated (z <- W z, W the config's shrunk ZCA
 * matrix: each component stays closest to its own channel), its EWMA (mean shift) and the
 * EWMA of z^2 (spread). Aggregated over components as sum m^2 (with W, a multivariate EWMA
 * statistic: a shift across correlated channels is judged against how they move together)
 * and sum (variance ratio - 1)^2. With commissioning, each component is first learned (its
 * sums kept) and then re-standardized against the device's own mean and spread:
 * z <- (z - mean_c) / sd_c. The moved-channel mask reads each component's EWMA. Where the
 * config has them, the loudness component's z is first read less its predicted class's
 * offset (so td_monitor_update runs the outputs, which find the class, before the moments).
 */

#include "td_dsp.h"
#include "td_monitor.h"
#include "td_monitor_fixed.h"

#define TD_ONE_Q12 (1 << TD_Z_FRAC_BITS)

static int32_t td_abs_s32(int32_t x)
{
    return x < 0 ? -x : x;
}

/* z = (x - mean) / std per channel, Q12, then W z where the config has W. */
static void td_moments_standardize(const td_monitor_config_t *config, const int16_t *summary, int16_t *z)
{
    int16_t standardized[TD_MONITOR_MAX_SUMMARY];
    uint32_t i, j;

    for (j = 0; j < config->n_summary; ++j) {
        /* |deviation| < 2^17 and inv_std <= 2^28: the product fits in 46 bits. */
        const int32_t deviation = (int32_t)summary[j] - (int32_t)config->ref_mean[j];
        const int64_t z_wide =
            td_round_shift_s64((int64_t)deviation * config->inv_std_q28[j], 28 - TD_Z_FRAC_BITS);
        standardized[j] = (int16_t)td_clamp_s64(z_wide, -TD_CHANNEL_Z_MAX, TD_CHANNEL_Z_MAX);
    }
    for (j = 0; j < config->n_summary; ++j) {
        if (config->whiten_q12 == 0) {
            z[j] = standardized[j];
            continue;
        }
        {
            /* |w| < 2^15, |z| < 2^15, <= 2^16 terms: the sum fits in 46 bits. Four products a
             * step, two int16 halves a word, one SMLALD per word on a core with the DSP
             * extension (the n x n multiply is otherwise most of an update with W: 60 values,
             * 29,100 instructions an update, 19,500 with it), then the last n mod 4 one by one. */
            const int16_t *row = config->whiten_q12 + j * config->n_summary;
            int64_t acc = 0;
            i = 0;
#if TD_MONITOR_MAX_SUMMARY >= 4 /* (a smaller build has no whole step, and GCC warns of one) */
            for (; i < (config->n_summary & ~3u); i += 4) {
                /* all four loads before the two SMLALDs: GCC schedules them better */
                const uint32_t w0 = td_read_u32(row + i);
                const uint32_t w1 = td_read_u32(row + i + 2);
                const uint32_t x0 = td_read_u32(standardized + i);
                const uint32_t x1 = td_read_u32(standardized + i + 2);
                acc = td_smlald(w0, x0, acc);
                acc = td_smlald(w1, x1, acc);
            }
#endif
            for (; i < config->n_summary; ++i) {
                acc += (int32_t)row[i] * (int32_t)standardized[i];
            }
            z[j] = (int16_t)td_clamp_s64(td_round_shift_s64(acc, 12), -TD_CHANNEL_Z_MAX,
                                         TD_CHANNEL_Z_MAX);
        }
    }
}

/* The loudness component's two-sided CUSUM and the quiet component's upward one
 * (td_monitor_decide reads them), each side dated by the inference where it last left zero.
 * The quiet level only rising is a change of its own: noise filling the pauses. Falling, it
 * goes with a quieter microphone, which the loudness finds. */
static void td_level_cusum_step(td_monitor_state_t *state, const td_monitor_config_t *config, const int16_t *z)
{
    const int32_t loudness = z[config->loudness_component];

    (void)td_cusum_step(&state->loudness_cusum[0], &state->loudness_start[0], (int64_t)loudness - config->loudness_k,
                        TD_CUSUM_MAX, state->t);
    (void)td_cusum_step(&state->loudness_cusum[1], &state->loudness_start[1], -(int64_t)loudness - config->loudness_k,
                        TD_CUSUM_MAX, state->t);
    (void)td_cusum_step(&state->quiet_cusum, &state->quiet_start, (int64_t)z[config->quiet_component] - config->loudness_k,
                        TD_CUSUM_MAX, state->t);
}

void td_monitor_moments(td_monitor_state_t *state, const td_monitor_config_t *config,
                        const int16_t *summary, int32_t predicted, int32_t *raw_mean, int32_t *raw_var,
                        uint32_t *moved)
{
    int64_t mean_stat = 0;
    int64_t var_stat = 0;
    int16_t z_all[TD_MONITOR_MAX_SUMMARY];
    uint32_t j;

    for (j = 0; j < TD_MONITOR_MASK_WORDS; ++j) {
        moved[j] = 0;
    }
    td_moments_standardize(config, summary, z_all);
    if (config->loudness_class_offset != 0) {
        const uint32_t c = config->loudness_component;
        z_all[c] = (int16_t)td_clamp_s64((int64_t)z_all[c] - config->loudness_class_offset[predicted],
                                         -TD_CHANNEL_Z_MAX, TD_CHANNEL_Z_MAX);
    }
    if (td_monitor_commissioning(state, config)) {
        /* |z| < 2^15, z^2 in Q12 < 2^18, <= TD_MONITOR_MAX_COMMISSION terms: int32 sums. */
        for (j = 0; j < config->n_summary; ++j) {
            const int32_t z = z_all[j];
            state->commission.z_mean[j] += z;
            state->commission.z_scale[j] += td_round_shift_s32(z * z, TD_Z_FRAC_BITS);
        }
        *raw_mean = 0;
        *raw_var = 0;
        return;
    }
    if (config->commission_n > 0) {
        /* |z - mean| < 2^16, scale <= 2^15 (variance floor): the product fits in 32 bits. */
        for (j = 0; j < config->n_summary; ++j) {
            const int64_t centred = (int64_t)z_all[j] - state->commission.z_mean[j];
            z_all[j] = (int16_t)td_clamp_s64(
                td_round_shift_s64(centred * state->commission.z_scale[j], TD_Z_FRAC_BITS),
                -TD_CHANNEL_Z_MAX, TD_CHANNEL_Z_MAX);
        }
    }
    td_level_cusum_step(state, config, z_all);
    for (j = 0; j < config->n_summary; ++j) {
        const int32_t z = z_all[j];
        const int32_t z_sq = td_round_shift_s32(z * z, TD_Z_FRAC_BITS);
        int32_t mean, mean_sq, variance_excess;

        state->mean_ewma[j] = td_ewma_step(state->mean_ewma[j], z * (1 << TD_EWMA_EXTRA_BITS),
                                           config->mean_shift);
        state->sq_ewma[j] = td_ewma_step(state->sq_ewma[j], z_sq * (1 << TD_EWMA_EXTRA_BITS),
                                         config->var_shift);
        mean = td_round_shift_s32(state->mean_ewma[j], TD_EWMA_EXTRA_BITS);
        mean_sq = td_round_shift_s32(mean * mean, TD_Z_FRAC_BITS);
        /* EWMA variance in units of the reference variance, minus one. */
        variance_excess = td_round_shift_s32(state->sq_ewma[j], TD_EWMA_EXTRA_BITS) - mean_sq -
                          TD_ONE_Q12;

        mean_stat += mean_sq;
        var_stat += td_round_shift_s64((int64_t)variance_excess * variance_excess, TD_Z_FRAC_BITS);
        if ((config->moved_mean_level > 0 && td_abs_s32(mean) >= config->moved_mean_level) ||
            (config->moved_var_level > 0 &&
             td_abs_s32(variance_excess) >= config->moved_var_level)) {
            moved[j / 32] |= 1u << (j % 32);
        }
    }
    *raw_mean = td_sat_s32(mean_stat);
    *raw_var = td_sat_s32(var_stat);
}
