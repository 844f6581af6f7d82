/*
 * Host shim of the drift monitor for tests and `verify`: replays an event list on the
 * firmware's C with a generated config compiled in, one result row per event, laid out
 * as tinydrift.monitor.twin.INFERENCE_FIELDS / FEEDBACK_FIELDS / SENSOR_FIELDS.
 *
 * Build with -DTD_MONITOR_CONFIG_HEADER='"name.h"' -DTD_MONITOR_CONFIG_VAR=symbol.
 */
#include <stdint.h>

#include "td_monitor.h"
#include TD_MONITOR_CONFIG_HEADER

/* The row holds the 64-channel mask of the wire format (two words) whatever the build's
 * TD_MONITOR_MAX_SUMMARY; words the build does not have are zero. */
#define TD_HOST_MASK_WORDS 2
#define TD_HOST_ROW_WIDTH (2 + 3 * TD_SCORE_COUNT + 3 + 2 * TD_HOST_MASK_WORDS + 7)

enum { TD_HOST_INFERENCE = 0, TD_HOST_FEEDBACK = 1, TD_HOST_SENSOR = 2, TD_HOST_RESET = 3, TD_HOST_IMAGE_SENSOR = 4 };

const td_monitor_config_t *td_host_config(void)
{
    return &TD_MONITOR_CONFIG_VAR;
}

uint32_t td_host_state_size(void)
{
    return td_monitor_state_size();
}

uint32_t td_host_commission_size(void)
{
    return td_monitor_commission_size();
}

uint32_t td_host_row_width(void)
{
    return TD_HOST_ROW_WIDTH;
}

/* A camera's previous frame, beside the monitor state the host drives (reset with it). */
static td_sensor_image_t td_host_camera;

int td_host_init(td_monitor_state_t *state)
{
    td_sensor_image_reset(&td_host_camera);
    return td_monitor_init(state, &TD_MONITOR_CONFIG_VAR);
}

static void td_host_inference_row(const td_monitor_result_t *r, int64_t *row)
{
    uint32_t i;
    int64_t *p = row;
    *p++ = TD_HOST_INFERENCE;
    *p++ = r->t;
    for (i = 0; i < TD_SCORE_COUNT; ++i) {
        *p++ = r->raw[i];
    }
    for (i = 0; i < TD_SCORE_COUNT; ++i) {
        *p++ = r->z[i];
    }
    for (i = 0; i < TD_SCORE_COUNT; ++i) {
        *p++ = r->cusum[i];
    }
    *p++ = r->alarms;
    *p++ = r->alarm_time;
    *p++ = r->change_time;
    for (i = 0; i < TD_HOST_MASK_WORDS; ++i) {
        *p++ = i < TD_MONITOR_MASK_WORDS ? r->moved[i] : 0;
    }
    for (i = 0; i < TD_HOST_MASK_WORDS; ++i) {
        *p++ = i < TD_MONITOR_MASK_WORDS ? r->moved_at_alarm[i] : 0;
    }
    *p++ = r->predicted;
    *p++ = r->confidence;
    *p++ = r->entropy_q16;
    *p++ = r->confidence_ewma_q16;
    *p++ = r->entropy_ewma_q16;
    *p++ = r->atc_accuracy_q16;
    *p++ = r->sensor_flags;
}

/* A microphone block's or a camera frame's sensor result, as the twin's sensor rows. */
static void td_host_sensor_row(int32_t kind, const td_sensor_result_t *r, int64_t *row)
{
    row[0] = kind;
    row[1] = r->mean;
    row[2] = r->variance;
    row[3] = r->clipped;
    row[4] = r->flags;
    row[5] = r->alarms;
}

/* events: n_events triples (kind, a, b); see tinydrift.monitor.twin.run_events. Returns 0,
 * or the first non-zero status of a monitor call (its event row then holds the status). */
/* Events on PCM blocks (TD_HOST_SENSOR) or camera frames (TD_HOST_IMAGE_SENSOR: a = offset
 * into `frames`, b = the frame's values). */
static int td_host_run_all(td_monitor_state_t *state, const int32_t *events, uint32_t n_events,
                           const int16_t *summaries, const int8_t *probs, const int16_t *pcm,
                           const int8_t *frames, int64_t *rows)
{
    const td_monitor_config_t *config = &TD_MONITOR_CONFIG_VAR;
    uint32_t e, i;

    for (e = 0; e < n_events; ++e) {
        const int32_t kind = events[3 * e];
        const int32_t a = events[3 * e + 1];
        const int32_t b = events[3 * e + 2];
        int64_t *row = rows + (uint64_t)e * TD_HOST_ROW_WIDTH;
        int status = TD_MONITOR_OK;
        for (i = 0; i < TD_HOST_ROW_WIDTH; ++i) {
            row[i] = 0;
        }
        if (kind == TD_HOST_INFERENCE) {
            td_monitor_result_t result;
            status = td_monitor_update(state, config, summaries + (uint64_t)a * config->n_summary,
                                       probs + (uint64_t)a * config->n_classes, &result);
            if (status == TD_MONITOR_OK) {
                td_host_inference_row(&result, row);
            }
        } else if (kind == TD_HOST_FEEDBACK) {
            td_feedback_result_t result;
            status = td_monitor_label_feedback(state, config, a, b, &result);
            row[0] = kind;
            row[1] = result.labels;
            row[2] = result.errors;
            row[3] = result.p_q16;
            row[4] = result.s_q16;
            row[5] = result.alarms;
        } else if (kind == TD_HOST_SENSOR) {
            td_sensor_result_t result;
            status = td_sensor_update(state, config, pcm + a, (uint32_t)b, &result);
            td_host_sensor_row(kind, &result, row);
        } else if (kind == TD_HOST_IMAGE_SENSOR) {
            td_sensor_result_t result;
            status = td_sensor_image_update(state, config, &td_host_camera, frames + a, (uint32_t)b, &result);
            td_host_sensor_row(kind, &result, row);
        } else if (kind == TD_HOST_RESET) {
            td_monitor_reset(state, config);
            td_sensor_image_reset(&td_host_camera);
            row[0] = kind;
        } else {
            status = TD_MONITOR_ERR_ARG;
        }
        if (status != TD_MONITOR_OK) {
            row[0] = -1;
            row[1] = status;
            return status;
        }
    }
    return TD_MONITOR_OK;
}

int td_host_run(td_monitor_state_t *state, const int32_t *events, uint32_t n_events,
                const int16_t *summaries, const int8_t *probs, const int16_t *pcm, int64_t *rows)
{
    return td_host_run_all(state, events, n_events, summaries, probs, pcm, 0, rows);
}

int td_host_run_frames(td_monitor_state_t *state, const int32_t *events, uint32_t n_events,
                       const int16_t *summaries, const int8_t *probs, const int8_t *frames, int64_t *rows)
{
    return td_host_run_all(state, events, n_events, summaries, probs, 0, frames, rows);
}

/* td_summarize_image on n_images images of [height][width][3]; summaries of
 * TD_SUMMARY_IMAGE_LENGTH(grid) each. */
int td_host_summarize_image(const int8_t *pixels, uint32_t n_images, uint32_t height, uint32_t width,
                            uint32_t grid, int16_t *summaries)
{
    uint32_t i;
    for (i = 0; i < n_images; ++i) {
        int status = td_summarize_image(pixels + (uint64_t)i * height * width * 3u, height, width, grid,
                                        summaries + (uint64_t)i * TD_SUMMARY_IMAGE_LENGTH(grid));
        if (status != TD_MONITOR_OK) {
            return status;
        }
    }
    return TD_MONITOR_OK;
}

/* td_summarize_floor on n_clips clips of [n_frames][n_channels]. */
int td_host_summarize_floor(const int8_t *features, uint32_t n_clips, uint32_t n_frames,
                            uint32_t n_channels, uint32_t group, int16_t *counts)
{
    uint32_t c;
    if (group == 0) {
        return TD_MONITOR_ERR_ARG; /* before the stride below divides by it */
    }
    for (c = 0; c < n_clips; ++c) {
        int status = td_summarize_floor(features + (uint64_t)c * n_frames * n_channels, n_frames,
                                        n_channels, group, counts + (uint64_t)c * (n_channels / group));
        if (status != TD_MONITOR_OK) {
            return status;
        }
    }
    return TD_MONITOR_OK;
}

/* td_summarize_level on n energies. */
void td_host_summarize_level(const uint64_t *energy, uint32_t n, int16_t *levels)
{
    uint32_t i;
    for (i = 0; i < n; ++i) {
        levels[i] = td_summarize_level(energy[i]);
    }
}

/* td_slope_energy on n_blocks blocks of block_samples samples, each after its own previous
 * sample, and td_summarize_tilt on n (slope energy, energy) pairs. */
void td_host_slope_energy(const int16_t *pcm, const int16_t *previous, uint32_t n_blocks, uint32_t block_samples,
                          uint64_t *energy)
{
    uint32_t i;
    for (i = 0; i < n_blocks; ++i) {
        energy[i] = td_slope_energy(pcm + (uint64_t)i * block_samples, block_samples, previous[i]);
    }
}

void td_host_summarize_tilt(const uint64_t *slope_energy, const uint64_t *energy, uint32_t n, int16_t *tilts)
{
    uint32_t i;
    for (i = 0; i < n; ++i) {
        tilts[i] = td_summarize_tilt(slope_energy[i], energy[i]);
    }
}

/* td_summarize_quiet over one stream's n levels, from a reset. */
void td_host_summarize_quiet(const int16_t *levels, uint32_t n, int16_t *quiet_levels)
{
    td_quiet_t quiet;
    uint32_t i;
    td_quiet_reset(&quiet);
    for (i = 0; i < n; ++i) {
        quiet_levels[i] = td_summarize_quiet(&quiet, levels[i]);
    }
}

/* td_summarize_frames on n_clips clips of [n_frames][n_channels]. */
int td_host_summarize(const int8_t *features, uint32_t n_clips, uint32_t n_frames,
                      uint32_t n_channels, int16_t *summaries)
{
    uint32_t c;
    for (c = 0; c < n_clips; ++c) {
        int status = td_summarize_frames(features + (uint64_t)c * n_frames * n_channels, n_frames,
                                         n_channels, summaries + (uint64_t)c * n_channels);
        if (status != TD_MONITOR_OK) {
            return status;
        }
    }
    return TD_MONITOR_OK;
}
