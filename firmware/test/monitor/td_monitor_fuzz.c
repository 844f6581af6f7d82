/*
 * libFuzzer target for the monitor: the input bytes script a sequence of inferences
 * (summary and probabilities taken from the bytes), label feedback (valid or not),
 * sensor blocks and resets, on a generated config compiled in. After every call the
 * invariants the firmware relies on are checked; a violation aborts.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "td_monitor.h"
#include "td_monitor_fixed.h"
#include TD_MONITOR_CONFIG_HEADER

#define CONFIG (&TD_MONITOR_CONFIG_VAR)

static void require(int ok)
{
    if (!ok) {
        abort();
    }
}

static const uint8_t *take(const uint8_t **data, size_t *size, size_t n)
{
    const uint8_t *p = *data;
    if (*size < n) {
        return NULL;
    }
    *data += n;
    *size -= n;
    return p;
}

static void check_state(const td_monitor_state_t *s, uint32_t alarms_word)
{
    uint32_t i;
    for (i = 0; i < TD_SCORE_COUNT; ++i) {
        require(s->cusum[i] >= 0 && s->cusum[i] <= TD_CUSUM_MAX);
        require(s->excursion_start[i] <= s->t);
    }
    for (i = 0; i < 2; ++i) {
        require(s->loudness_cusum[i] >= 0 && s->loudness_cusum[i] <= TD_CUSUM_MAX);
        require(s->loudness_start[i] <= s->t);
    }
    require(s->quiet_cusum >= 0 && s->quiet_cusum <= TD_CUSUM_MAX);
    require(s->quiet_start <= s->t);
    require((s->alarms & ~TD_ALARM_TYPES_MASK) == 0);
    require((alarms_word & ~(TD_ALARM_TYPES_MASK | TD_WARNING(TD_ALARM_TYPES_MASK))) == 0);
    /* at most the inference under way: sensor blocks, read before its update, date by t + 1 */
    require(s->change_time <= td_sat_inc_u32(s->t) && s->alarm_time <= td_sat_inc_u32(s->t));
    for (i = 0; i < CONFIG->n_summary; ++i) {
        require(s->mean_ewma[i] >= -TD_CHANNEL_Z_MAX * 256 && s->mean_ewma[i] <= TD_CHANNEL_Z_MAX * 256);
        require(s->sq_ewma[i] >= 0 && s->sq_ewma[i] <= (1 << 18) * 256);
    }
    for (i = 0; i < CONFIG->n_classes; ++i) {
        require(s->class_ewma[i] >= 0 && s->class_ewma[i] <= 65536);
    }
    require(s->atc_ewma >= 0 && s->atc_ewma <= 65536);
    require(s->errors <= s->labels);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static td_monitor_state_t state;
    int16_t summary[TD_MONITOR_MAX_SUMMARY];
    int8_t probs[TD_MONITOR_MAX_CLASSES];
    int16_t pcm[512];
    const uint8_t *op;

    require(td_monitor_init(&state, CONFIG) == TD_MONITOR_OK);
    while ((op = take(&data, &size, 1)) != NULL) {
        const uint8_t *p;
        uint32_t i, n;
        switch (*op % 5) {
        case 0:
        case 1: {
            td_monitor_result_t r;
            p = take(&data, &size, 2u * CONFIG->n_summary + CONFIG->n_classes);
            if (p == NULL) {
                return 0;
            }
            for (i = 0; i < CONFIG->n_summary; ++i) {
                summary[i] = (int16_t)(uint16_t)(p[2 * i] | (p[2 * i + 1] << 8));
            }
            for (i = 0; i < CONFIG->n_classes; ++i) {
                probs[i] = (int8_t)p[2u * CONFIG->n_summary + i];
            }
            require(td_monitor_update(&state, CONFIG, summary, probs, &r) == TD_MONITOR_OK);
            require(r.predicted >= 0 && r.predicted < CONFIG->n_classes);
            require(r.confidence >= 0 && r.confidence <= 255);
            require(r.entropy_q16 >= 0);
            for (i = 0; i < TD_MONITOR_MASK_WORDS; ++i) {
                uint32_t j;
                for (j = 0; j < 32; ++j) {
                    if ((r.moved[i] >> j) & 1u) {
                        require(i * 32 + j < CONFIG->n_summary);
                    }
                }
            }
            check_state(&state, r.alarms);
            break;
        }
        case 2: {
            td_feedback_result_t r;
            int status;
            p = take(&data, &size, 2);
            if (p == NULL) {
                return 0;
            }
            /* Signed bytes: out-of-range labels must be refused, not used. */
            status = td_monitor_label_feedback(&state, CONFIG, (int8_t)p[0], (int8_t)p[1], &r);
            if ((int8_t)p[0] >= 0 && (int8_t)p[0] < CONFIG->n_classes && (int8_t)p[1] >= 0 &&
                (int8_t)p[1] < CONFIG->n_classes) {
                require(status == TD_MONITOR_OK && r.p_q16 <= 65536 && r.s_q16 <= 65536);
                check_state(&state, r.alarms);
            } else {
                require(status == TD_MONITOR_ERR_ARG);
            }
            break;
        }
        case 3: {
            td_sensor_result_t r;
            p = take(&data, &size, 2);
            if (p == NULL) {
                return 0;
            }
            n = 1u + ((uint32_t)p[0] | ((uint32_t)p[1] << 8)) % 512u;
            p = take(&data, &size, 2 * n);
            if (p == NULL) {
                return 0;
            }
            for (i = 0; i < n; ++i) {
                pcm[i] = (int16_t)(uint16_t)(p[2 * i] | (p[2 * i + 1] << 8));
            }
            require(td_sensor_update(&state, CONFIG, pcm, n, &r) == TD_MONITOR_OK);
            require(r.mean >= -32768 && r.mean <= 32767 && r.variance <= (1u << 30) &&
                    r.clipped <= n);
            check_state(&state, r.alarms);
            break;
        }
        default:
            td_monitor_reset(&state, CONFIG);
            check_state(&state, 0);
            break;
        }
    }
    return 0;
}
