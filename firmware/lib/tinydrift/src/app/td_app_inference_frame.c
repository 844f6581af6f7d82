/* The INFERENCE frame (docs/protocol.md §3): the monitor's result for one inference, sent by
 * the keyword app (td_app_infer.c) and by a streaming detector with a monitor
 * (td_app_stream.c) alike. */
#include "td_app.h"

#if TD_APP_HAS_MONITOR
void td_app_send_inference(td_app_t *app, const td_monitor_result_t *result)
{
    td_proto_frame_t *frame = &app->reply;
    td_proto_inference_t *out = &frame->body.inference;
    frame->type = TD_FRAME_INFERENCE;
    out->inference_index = result->t;
    for (unsigned i = 0; i < TD_PROTO_MODEL_ID_BYTES; ++i) {
        out->model_id[i] = app->model_hash[i];
    }
    out->predicted_class = (uint8_t)result->predicted;
    out->confidence = (uint8_t)result->confidence;
    out->alarm_bits = (uint16_t)result->alarms;
    out->entropy = (uint32_t)result->entropy_q16;
    out->atc = (uint32_t)result->atc_accuracy_q16;
    out->moved_channels = (uint64_t)result->moved[0];
#if TD_MONITOR_MASK_WORDS > 1
    out->moved_channels |= (uint64_t)result->moved[1] << 32;
#endif
    out->change_index = result->change_time;
    out->alarm_index = result->alarm_time;
    for (unsigned i = 0; i < TD_PROTO_N_SCORES; ++i) {
        out->scores[i] = i < TD_SCORE_COUNT ? result->cusum[i] : 0;
    }
    td_app_send(app, frame);
}

#endif /* TD_APP_HAS_MONITOR */
