/* One inference on a full window (a camera build: on a whole image in the model's input):
 * front end, model, drift monitor, then the INFERENCE frame (and the TRACE frame when
 * tracing). A camera build has no front end: its image is already the model's input,
 * summarized by td_summarize_image, and sensor health looks at that frame
 * (td_sensor_image_update: dead, saturated, stuck).
 *
 * Order, mirrored by the host twin (tinydrift.app.expected_inferences):
 * 1. front end, reset for this window: 49x40 int8 straight into the model's input tensor;
 * 2. the model (it leaves its input intact);
 * 3. the input summary (td_summarize_frames of the model input);
 * 4. sensor health on the window's new samples, 320 at a time (the last block may be short),
 *    and from it their loudness and the loudness of the quietest whole block (td_summarize_level
 *    of the energies), the summary's last two values;
 * 5. td_monitor_update with the summary and the int8 output;
 * 6. INFERENCE and TRACE (unless heartbeats only), then HEARTBEAT when its window is full. */
#include "td_app.h"

#if !TD_APP_STREAMING /* a streaming build runs td_app_stream.c instead */
#include "td_app_model.h"
#include "td_port.h"

#include TD_APP_MODEL_HEADER

#if TD_APP_IMAGE
#if TD_SUMMARY_IMAGE_LENGTH(TD_APP_M_SUMMARY_GRID) > TD_MONITOR_MAX_SUMMARY
#error "the image summary does not fit the monitor: build with a larger TD_MONITOR_MAX_SUMMARY"
#endif
#elif TD_APP_M_INPUT_SIZE != TD_FRONTEND_FEATURES
#error "the model's input is not the front end's 49x40 features"
#elif TD_APP_WINDOW_SUMMARY > TD_MONITOR_MAX_SUMMARY
#error "the keyword summary needs TD_MONITOR_MAX_SUMMARY >= 42"
#endif
#if TD_APP_M_OUTPUT_SIZE > TD_PROTO_TRACE_OUTPUTS || TD_MONITOR_MAX_SUMMARY > TD_PROTO_TRACE_SUMMARY
#error "the TRACE frame cannot carry this model's outputs or summary"
#endif

static uint32_t td_app_cycles_between(uint64_t start, uint64_t end)
{
    const uint64_t elapsed = end - start;
    return elapsed > 0xFFFFFFFFu ? 0xFFFFFFFFu : (uint32_t)elapsed;
}

static void td_app_send_trace(td_app_t *app, const td_monitor_result_t *result,
                              const int8_t *outputs, const uint32_t cycles[4])
{
    const td_monitor_config_t *config = td_app_monitor_config();
    td_proto_frame_t *frame = &app->reply;
    td_proto_trace_t *out = &frame->body.trace;
    frame->type = TD_FRAME_TRACE;
    out->inference_index = result->t;
    out->n_summary = (uint8_t)config->n_summary;
    out->n_outputs = (uint8_t)TD_APP_M_OUTPUT_SIZE;
#if TD_APP_IMAGE
    out->window_end = app->inferences_total; /* images since boot, this one included */
#else
    out->window_end = app->window.position;
#endif
    out->cycles_frontend = cycles[0];
    out->cycles_model = cycles[1];
    out->cycles_sensor = cycles[2];
    out->cycles_monitor = cycles[3];
    for (unsigned i = 0; i < TD_PROTO_TRACE_SUMMARY; ++i) {
        out->summary[i] = i < config->n_summary ? app->summary[i] : 0;
    }
    for (unsigned i = 0; i < TD_PROTO_TRACE_OUTPUTS; ++i) {
        out->outputs[i] = i < TD_APP_M_OUTPUT_SIZE ? outputs[i] : 0;
    }
    td_app_send(app, frame);
}

void td_app_infer(td_app_t *app)
{
    const td_monitor_config_t *config = td_app_monitor_config();
    int8_t *input = TD_APP_M_INPUT();
    td_monitor_result_t result;
    uint32_t cycles[4];

    const uint64_t start = td_port_cycles();
#if !TD_APP_IMAGE
    const td_app_window_t *window = &app->window;
    td_frontend_process_clip(&app->frontend, window->samples, input);
#endif
    const uint64_t after_frontend = td_port_cycles();
    if (TD_APP_M_INVOKE() != 0) {
        td_port_print("td_app: the model failed on a window; skipped\n");
        return;
    }
    const uint64_t after_model = td_port_cycles();
    const int8_t *outputs = TD_APP_M_OUTPUT();

#if TD_APP_IMAGE
    td_summarize_image(input, TD_APP_M_IMAGE_HEIGHT, TD_APP_M_IMAGE_WIDTH, TD_APP_M_SUMMARY_GRID, app->summary);
    const uint64_t after_summary = td_port_cycles();
    td_sensor_image_update(&app->monitor, config, &app->camera_sensor, input, TD_APP_IMAGE_BYTES, 0);
#else
    td_summarize_frames(input, TD_FRONTEND_NUM_FRAMES, TD_FRONTEND_NUM_CHANNELS, app->summary);
    const uint64_t after_summary = td_port_cycles();
    const uint32_t end = TD_APP_WINDOW_SAMPLES - window->padding;
    uint64_t energy = 0;
    uint32_t quietest = UINT32_MAX;
    for (uint32_t at = end - window->fresh; at < end; at += TD_APP_SENSOR_BLOCK) {
        const uint32_t block = end - at < TD_APP_SENSOR_BLOCK ? end - at : TD_APP_SENSOR_BLOCK;
        td_sensor_result_t sensed = {0, 0, 0, 0, 0};
        td_sensor_update(&app->monitor, config, &window->samples[at], block, &sensed);
        energy += (uint64_t)sensed.variance * block;
        /* whole blocks only (a few samples read as still), unless a short one is all there is */
        if ((block == TD_APP_SENSOR_BLOCK || quietest == UINT32_MAX) && sensed.variance < quietest) {
            quietest = sensed.variance;
        }
    }
    app->summary[TD_FRONTEND_NUM_CHANNELS] = td_summarize_level(energy);
    app->summary[TD_FRONTEND_NUM_CHANNELS + 1u] =
        td_summarize_level(window->fresh > 0u ? (uint64_t)quietest * TD_APP_SENSOR_BLOCK : 0u);
#endif
    const uint64_t after_sensor = td_port_cycles();
    td_monitor_update(&app->monitor, config, app->summary, outputs, &result);
    td_app_keep_after_update(app);
    const uint64_t after_monitor = td_port_cycles();

    app->predicted_history[result.t % TD_APP_LABEL_HISTORY] = (uint8_t)result.predicted;
    app->inferences_total++;
    cycles[0] = td_app_cycles_between(start, after_frontend);
    cycles[1] = td_app_cycles_between(after_frontend, after_model);
    cycles[2] = td_app_cycles_between(after_summary, after_sensor);
    cycles[3] = td_app_cycles_between(after_model, after_summary) + td_app_cycles_between(after_sensor, after_monitor);
    if (!app->options.heartbeat_only) {
        td_app_send_inference(app, &result);
        if (app->options.trace) {
            td_app_send_trace(app, &result, outputs, cycles);
        }
    }
    td_app_heartbeat_add(app, &result);
}

#endif /* !TD_APP_STREAMING */
