/*
 * Sensor health on a camera frame, the image counterpart of td_sensor.c's PCM blocks: one
 * pass over the frame's int8 values (pixels minus 128) for their sum, sum of squares and
 * saturated count, and TD_SENSOR_IMAGE_PROBES values compared with the previous frame's.
 *   CLIPPING   a saturated share of clip_rate_q16 or more (|value| >= clip_level);
 *   DC_OFFSET  the frame mean at or beyond +-dc_level (0: off);
 *   STUCK      no probe moved by more than stuck_variance levels since the previous frame:
 *              the camera repeats a frame. A live sensor's noise moves some of 32 probes
 *              by a level or more even on a static scene, so a still scene is not stuck;
 *   SILENCE    a flat frame: variance <= silence_variance (dead, black or saturated).
 * A condition that persists for persist_blocks frames is a fault and latches SENSOR_FAULT,
 * as for PCM (td_sensor_conditions_update).
 */
#include "td_monitor.h"
#include "td_monitor_fixed.h"

void td_sensor_image_reset(td_sensor_image_t *camera)
{
    uint32_t i;

    for (i = 0; i < TD_SENSOR_IMAGE_PROBES; ++i) {
        camera->probes[i] = 0;
    }
    camera->frames = 0;
}

int td_sensor_image_update(td_monitor_state_t *state, const td_monitor_config_t *config,
                           td_sensor_image_t *camera, const int8_t *pixels, uint32_t n_values,
                           td_sensor_result_t *out)
{
    int32_t sum = 0;
    int64_t sum_sq = 0;
    uint32_t saturated = 0;
    uint32_t conditions = 0;
    uint32_t moved = 0;
    uint32_t clip_span;
    uint32_t i;
    int32_t mean;
    uint32_t variance;

    if (state == 0 || config == 0 || camera == 0 || pixels == 0) {
        return TD_MONITOR_ERR_NULL;
    }
    /* 255 x 255 RGB at most: the sum stays within int32 and n * sum_sq within 2^63. */
    if (n_values < TD_SENSOR_IMAGE_PROBES || n_values > 255u * 255u * 3u) {
        return TD_MONITOR_ERR_ARG;
    }
    if (!td_monitor_state_marked(state)) { /* the mark alone: this runs on every block */
        return TD_MONITOR_ERR_STATE;
    }
    /* |x| >= clip_level in one unsigned compare, as in td_sensor_update. */
    clip_span = 2u * (uint32_t)config->clip_level - 2u;
    for (i = 0; i < n_values; ++i) {
        const int32_t x = pixels[i];
        sum += x;
        sum_sq += x * x;
        saturated += (uint32_t)(x + config->clip_level - 1) > clip_span;
    }
    mean = (int32_t)td_floor_div_s64(sum, n_values);
    variance = (uint32_t)(((uint64_t)sum_sq * n_values - (uint64_t)((int64_t)sum * sum)) /
                          ((uint64_t)n_values * n_values));

    /* Probe k sits at the middle of the k-th of TD_SENSOR_IMAGE_PROBES equal spans. */
    for (i = 0; i < TD_SENSOR_IMAGE_PROBES; ++i) {
        const int8_t x = pixels[(uint32_t)(((uint64_t)(2u * i + 1u) * n_values) / (2u * TD_SENSOR_IMAGE_PROBES))];
        const int32_t step = (int32_t)x - camera->probes[i];
        moved += (uint32_t)(step < 0 ? -step : step) > config->stuck_variance;
        camera->probes[i] = x;
    }

    if (config->clip_rate_q16 > 0 &&
        ((uint64_t)saturated << TD_PROB_FRAC_BITS) >= (uint64_t)config->clip_rate_q16 * n_values) {
        conditions |= TD_SENSOR_CLIPPING;
    }
    if (config->dc_level > 0 && (mean >= config->dc_level || mean <= -config->dc_level)) {
        conditions |= TD_SENSOR_DC_OFFSET;
    }
    if (camera->frames > 0 && moved == 0) {
        conditions |= TD_SENSOR_STUCK;
    }
    if (variance <= config->silence_variance) {
        conditions |= TD_SENSOR_SILENCE;
    }
    if (camera->frames < UINT32_MAX) {
        ++camera->frames;
    }
    if (out != 0) {
        out->mean = mean;
        out->variance = variance;
        out->clipped = saturated;
    }
    td_sensor_conditions_update(state, config, conditions, out);
    return TD_MONITOR_OK;
}
