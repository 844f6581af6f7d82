/* HEARTBEAT frames (docs/protocol.md §3): every `heartbeat_interval` inferences, a 64-byte
 * summary of the inferences since the previous one, for links too narrow for every
 * INFERENCE frame. Its fields follow from the window's INFERENCE frames alone (apart from
 * the uptime), so the host twin (tinydrift.app.HeartbeatTwin) predicts them bit for bit. */
#include "td_app.h"

#if TD_APP_HAS_MONITOR /* a streaming detector built without a monitor sends none */
#include "td_port.h"

/* HEARTBEAT carries one CUSUM maximum per score slot, as many as alarm types (C99: no
 * static_assert, and TD_SCORE_COUNT is an enumerator the preprocessor cannot see). */
typedef char td_app_heartbeat_slots_check[TD_SCORE_COUNT == TD_PROTO_ALARM_TYPES ? 1 : -1];

void td_app_heartbeat_clear(td_app_heartbeat_t *heartbeat)
{
    *heartbeat = (td_app_heartbeat_t){0};
}

static uint16_t td_app_saturate_u16(uint64_t value)
{
    return value > 0xFFFFu ? 0xFFFFu : (uint16_t)value;
}

/* A score in 1/256 of its drift level: the host reads it without knowing the thresholds. */
static uint16_t td_app_in_drift_units(int32_t score, int32_t drift)
{
    if (score <= 0 || drift <= 0) {
        return 0;
    }
    return td_app_saturate_u16(((uint64_t)(uint32_t)score << 8) / (uint32_t)drift);
}

/* When a type latched, after the first alarm; TD_PROTO_NOT_LATCHED if it has not. */
static uint16_t td_app_latch_delay(uint32_t latched_at, uint32_t alarm_index)
{
    if (latched_at == 0u) {
        return TD_PROTO_NOT_LATCHED;
    }
    /* A latch by label feedback shows from the next inference on, after alarm_index. */
    if (latched_at <= alarm_index) {
        return 0u;
    }
    const uint32_t delay = latched_at - alarm_index;
    return delay >= TD_PROTO_NOT_LATCHED ? (uint16_t)(TD_PROTO_NOT_LATCHED - 1u) : (uint16_t)delay;
}

static void td_app_heartbeat_send(td_app_t *app, const td_monitor_result_t *last)
{
    const td_monitor_config_t *config = td_app_monitor_config();
    const td_app_heartbeat_window_t *window = &app->heartbeat.window;
    const uint32_t n = window->inferences;
    td_proto_frame_t *frame = &app->reply;
    td_proto_heartbeat_t *out = &frame->body.heartbeat;
    frame->type = TD_FRAME_HEARTBEAT;
    out->inference_index = last->t;
    out->uptime_ms = td_port_millis();
    out->alarm_index = last->alarm_time;
    out->change_index = last->change_time;
    out->moved_channels = (uint64_t)last->moved[0];
#if TD_MONITOR_MASK_WORDS > 1
    out->moved_channels |= (uint64_t)last->moved[1] << 32;
#endif
    out->alarm_bits = (uint16_t)last->alarms;
    out->window = (uint16_t)n;
    for (unsigned k = 0; k < TD_PROTO_ALARM_TYPES; ++k) {
        out->latch_delay[k] = td_app_latch_delay(app->heartbeat.latched_at[k], last->alarm_time);
        out->cusum_max[k] = td_app_in_drift_units(window->cusum_max[k], config->score[k].drift);
    }
    out->mean_entropy = td_app_saturate_u16((window->entropy_sum / n) >> 4);
    out->atc = last->atc_accuracy_q16 >= (255 << 8) ? 255u : (uint8_t)((uint32_t)last->atc_accuracy_q16 >> 8);
    out->mean_confidence = (uint8_t)(window->confidence_sum / n);
    for (unsigned c = 0; c < TD_PROTO_HEARTBEAT_CLASSES; ++c) {
        out->class_share[c] = (uint8_t)((255u * window->class_counts[c] + n / 2u) / n);
    }
    td_app_send(app, frame);
}

void td_app_heartbeat_add(td_app_t *app, const td_monitor_result_t *result)
{
    td_app_heartbeat_t *heartbeat = &app->heartbeat;
    for (unsigned k = 0; k < TD_PROTO_ALARM_TYPES; ++k) {
        if ((result->alarms & (1u << k)) && heartbeat->latched_at[k] == 0) {
            heartbeat->latched_at[k] = result->t;
        }
    }
    const uint16_t interval = app->options.heartbeat_interval;
    if (interval == 0u) {
        return; /* no heartbeats: the window stays empty until CONFIG asks for them */
    }
    td_app_heartbeat_window_t *window = &heartbeat->window;
    for (unsigned k = 0; k < TD_SCORE_COUNT; ++k) {
        if (result->cusum[k] > window->cusum_max[k]) {
            window->cusum_max[k] = result->cusum[k];
        }
    }
    if ((uint32_t)result->predicted < TD_PROTO_HEARTBEAT_CLASSES) {
        window->class_counts[result->predicted]++;
    }
    window->confidence_sum += (uint32_t)result->confidence;
    window->entropy_sum += (uint64_t)(uint32_t)result->entropy_q16;
    window->inferences++;
    if (window->inferences >= interval) {
        td_app_heartbeat_send(app, result);
        *window = (td_app_heartbeat_window_t){0};
    }
}

#endif /* TD_APP_HAS_MONITOR */
