/*
 * Sensor health on raw PCM blocks: clipping share, DC offset (block mean, or a stuck block
 * held away from zero), stuck signal (exact variance at most stuck_variance: at the default
 * 0, every sample the same) and silence (low variance). A condition that persists for
 * persist_blocks consecutive blocks is a fault and latches SENSOR_FAULT, with the change
 * point at the inference whose blocks began the run. Blocks come before the monitor update
 * of the inference they belong to (the app's window, a streaming build's hops, a camera
 * frame), while t still counts the inferences before it: they are dated t + 1, the index
 * that inference's INFERENCE frame carries, as a score's latch is. Clipping that never persists
 * (a gain set too high clips the loudest syllables only) is light clipping: an EWMA of the
 * share of clipping blocks that holds its level latches DATA_DRIFT, an upstream change, at
 * a block that clips (the clipping still going on).
 * An inference whose every block came with a condition that can become a fault enters no
 * score (td_monitor_update): what the sensor spoiled is sensor health's to judge; the share of
 * its blocks that lost the signal (stuck or flat) is dead time (td_sensor_intermittent.c).
 */
#include "td_monitor.h"
#include "td_monitor_fixed.h"

int td_sensor_update(td_monitor_state_t *state, const td_monitor_config_t *config,
                     const int16_t *pcm, uint32_t n_samples, td_sensor_result_t *out)
{
    int32_t sum = 0;
    int64_t sum_sq = 0;
    uint32_t clipped = 0;
    uint32_t clip_offset;
    uint32_t clip_span;
    uint32_t conditions = 0;
    uint32_t i;
    int32_t mean;
    uint64_t spread;
    uint64_t square;
    uint32_t variance;

    if (state == 0 || config == 0 || pcm == 0) {
        return TD_MONITOR_ERR_NULL;
    }
    if (n_samples == 0 || n_samples > TD_SENSOR_MAX_BLOCK) {
        return TD_MONITOR_ERR_ARG;
    }
    if (!td_monitor_state_marked(state)) { /* the mark alone: this runs on every block */
        return TD_MONITOR_ERR_STATE;
    }
    /* |x| >= clip_level exactly when x + clip_level - 1, as unsigned, passes 2 clip_level - 2:
     * one add and one compare per sample. -2^31 <= sum < 2^31 for n <= 2^16, and x * x
     * accumulates in one multiply-accumulate (SMLAL on the M4). Two samples a pass: the
     * loop's compare and branch are paid once a pair (this loop is most of the monitor's
     * cost on the M4: 50 blocks of 320 samples an inference). */
    clip_offset = (uint32_t)config->clip_level - 1u;
    clip_span = 2u * (uint32_t)config->clip_level - 2u;
    for (i = 0; i + 1u < n_samples; i += 2u) {
        const int32_t a = pcm[i];
        const int32_t b = pcm[i + 1u];
        sum += a + b;
        sum_sq += (int64_t)a * a;
        sum_sq += (int64_t)b * b;
        if ((uint32_t)a + clip_offset > clip_span) {
            ++clipped;
        }
        if ((uint32_t)b + clip_offset > clip_span) {
            ++clipped;
        }
    }
    if (i < n_samples) {
        const int32_t x = pcm[i];
        sum += x;
        sum_sq += (int64_t)x * x;
        clipped += (uint32_t)x + clip_offset > clip_span;
    }
    mean = (int32_t)td_floor_div_s64(sum, n_samples);
    /* n * sum(x^2) - sum(x)^2 <= 2^62: the exact population variance is spread / n^2. */
    spread = (uint64_t)sum_sq * n_samples - (uint64_t)((int64_t)sum * sum);
    square = (uint64_t)n_samples * n_samples;
    variance = (uint32_t)(spread / square);

    if (config->clip_rate_q16 > 0 &&
        ((uint64_t)clipped << TD_PROB_FRAC_BITS) >= (uint64_t)config->clip_rate_q16 * n_samples) {
        conditions |= TD_SENSOR_CLIPPING;
    }
    if (config->dc_level > 0 && (mean >= config->dc_level || mean <= -config->dc_level)) {
        conditions |= TD_SENSOR_DC_OFFSET;
    }
    /* Stuck on the exact variance, not the floored one: a working microphone in a quiet
     * room moves by a level or so (floored variance 0), a stuck or dead one not at all. */
    if (variance < config->stuck_variance || (variance == config->stuck_variance && spread % square == 0u)) {
        conditions |= TD_SENSOR_STUCK;
        /* Held away from zero, the whole block is offset: a quiet working microphone sits at
         * zero through its pauses (why stuck alone waits long), never still at a value
         * farther out than a silent block's spread. */
        if (config->dc_level > 0 && (int64_t)mean * mean > (int64_t)config->silence_variance) {
            conditions |= TD_SENSOR_DC_OFFSET;
        }
    } else if (variance <= config->silence_variance) {
        conditions |= TD_SENSOR_SILENCE;
    }
    if (out != 0) {
        out->mean = mean;
        out->variance = variance;
        out->clipped = clipped;
    }
    td_sensor_conditions_update(state, config, conditions, out);
    return TD_MONITOR_OK;
}

void td_sensor_conditions_update(td_monitor_state_t *state, const td_monitor_config_t *config,
                                 uint32_t conditions, td_sensor_result_t *out)
{
    /* the inference these blocks feed, not yet counted in t (td_monitor_update counts it) */
    const uint32_t now = td_sat_inc_u32(state->t);
    uint32_t faults = 0;
    uint32_t pending = 0;
    uint32_t c;

    for (c = 0; c < TD_SENSOR_CONDITION_COUNT; ++c) {
        if (config->persist_blocks[c] > 0) {
            pending |= conditions & (1u << c);
        }
        if ((conditions & (1u << c)) == 0) {
            state->sensor_run[c] = 0;
            continue;
        }
        if (state->sensor_run[c] == 0) {
            state->sensor_run_start[c] = now;
        }
        if (state->sensor_run[c] < UINT16_MAX) {
            ++state->sensor_run[c];
        }
        if (config->persist_blocks[c] > 0 && state->sensor_run[c] >= config->persist_blocks[c]) {
            faults |= 1u << c;
            td_monitor_latch_at(state, TD_ALARM_SENSOR_FAULT, now, state->sensor_run_start[c]);
        }
    }
    if (config->clip_drift_q16 > 0) {
        const int32_t clips = (conditions & TD_SENSOR_CLIPPING) != 0 ? 1 << (TD_PROB_FRAC_BITS + 8) : 0;
        state->clip_ewma = td_ewma_step(state->clip_ewma, clips, TD_CLIP_EWMA_SHIFT);
        if (td_round_shift_s32(state->clip_ewma, 8) < (int32_t)config->clip_drift_q16) {
            state->clip_drift_run = 0;
        } else if (state->clip_drift_run < UINT16_MAX) {
            ++state->clip_drift_run;
        }
        /* latched at a clipping block: a gain set too high goes on clipping, while a burst that
         * has passed (a shout, a knock) leaves the EWMA above the level for minutes after it */
        if (state->clip_drift_run >= config->clip_drift_blocks && (conditions & TD_SENSOR_CLIPPING) != 0 &&
            (state->alarms & TD_ALARM_SENSOR_FAULT) == 0) {
            td_monitor_latch_at(state, TD_ALARM_DATA_DRIFT, now, now);
        }
    }
    /* counted for the inference this block feeds (see TD_SENSOR_INPUT_MAX_BLOCKS) */
    if (state->input_blocks == TD_SENSOR_INPUT_MAX_BLOCKS) {
        state->input_blocks = (uint8_t)((state->input_blocks + 1u) >> 1);
        state->input_dead = (uint8_t)((state->input_dead + 1u) >> 1);
    }
    state->input_blocks += 1;
    if ((pending & (TD_SENSOR_STUCK | TD_SENSOR_SILENCE)) != 0) {
        state->input_dead += 1;
    } else if (pending == 0) {
        state->input_sound = 1;
    }
    state->sensor_flags = (uint8_t)(conditions | (faults << TD_SENSOR_FAULT_SHIFT));
    if (out != 0) {
        out->flags = state->sensor_flags;
        out->alarms = td_monitor_live_alarms(state, config);
    }
}
