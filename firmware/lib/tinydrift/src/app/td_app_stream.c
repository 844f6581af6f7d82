/* A streaming binary detector (a microWakeWord model): the app of a build whose model is a
 * streaming one (TD_APP_STREAMING, see td_app.h).
 *
 * One front end runs over the whole stream (reset when a stream starts), 10 ms a frame;
 * every `stride` frames (the model's input, 3 for microWakeWord's: 30 ms) the model runs
 * with its state carried from the previous invoke, and its uint8 probability joins a sliding
 * window. The decision is ESPHome's micro_wake_word's:
 * - a detection when the window's sum exceeds cutoff x window (its mean exceeds the cutoff,
 *   both in 1/256; the cutoff is the config's rounded down, as ESPHome rounds it);
 * - not while cooling: a stream starts cooling, and so does every detection, which also
 *   empties the window; each frame whose latest probability is below the cutoff brings the
 *   cooling TD_APP_COOLING_FRAMES closer to its end.
 * Each inference sends a DETECTION frame (when tracing; otherwise only detections).
 *
 * Built with a monitor config (TD_APP_STREAM_MONITOR), the drift monitor hears the stream
 * too: sensor health on each hop's new samples, and per inference the summary of its frames
 * and of its new samples' loudness (the sum of their hops' variance x samples), spectral
 * tilt (td_summarize_tilt: the energy of their differences against that loudness) and the
 * stream's quiet level (td_summarize_quiet: the lowest loudness of the last 16), with the
 * probability p as the two classes [1 - p, p] (int8 127 - p, p - 128: confidence
 * and entropy then read the sigmoid, the label score the wake rate), then the INFERENCE
 * frame and, every heartbeat interval, a HEARTBEAT, as the keyword app sends them. LABEL
 * frames say whether a wake (or any recent inference) heard the wake word: the monitor's
 * error-rate test counts false wakes and misses (td_app_stream_woke_at).
 * The host twins are tinydrift.app.expected_detections and expected_stream_inferences. */
#include "td_app.h"

#if TD_APP_STREAMING
#include "td_port.h"

#include TD_APP_REFERENCE_HEADER

#define TD_APP_STREAM_STRIDE TD_APP_M_NUM_FRAMES

#if TD_APP_M_INPUT_SIZE != TD_APP_STREAM_STRIDE * TD_FRONTEND_NUM_CHANNELS || TD_APP_M_OUTPUT_SIZE != 1
#error "a streaming detector takes stride x 40 int8 frames and gives one uint8 probability"
#endif
#if TD_APP_M_FEATURE_STEP_MS != TD_FRONTEND_STEP_MS
#error "build the front end with the model's step: -DTD_FRONTEND_STEP_MS=<its feature_step_ms>"
#endif
#if TD_APP_M_SLIDING_WINDOW < 1 || TD_APP_M_SLIDING_WINDOW > TD_APP_MAX_SLIDING_WINDOW
#error "the model's sliding window is longer than TD_APP_MAX_SLIDING_WINDOW"
#endif
#if TD_MONITOR_MAX_SUMMARY < TD_APP_STREAM_SUMMARY
#error "the input summary needs TD_MONITOR_MAX_SUMMARY >= 63"
#endif

void td_app_stream_start(td_app_t *app)
{
    td_app_stream_t *stream = &app->stream;
    td_frontend_reset(&app->frontend);
    TD_APP_M_RESET();
    stream->fill = 0;
    stream->position = 0;
    stream->frames = 0;
    for (unsigned i = 0; i < TD_APP_MAX_SLIDING_WINDOW; ++i) {
        stream->probabilities[i] = 0;
    }
    stream->latest = 0;
    stream->cooling = -TD_APP_COOLING_FRAMES;
    stream->energy = 0;
    stream->slope_energy = 0;
    stream->last_sample = 0;
    stream->has_last_sample = 0;
    td_quiet_reset(&stream->quiet);
}

/* ESPHome counts a frame towards the end of cooling when the latest probability is below
 * the cutoff, so a wake word still sounding does not wake it twice. */
static void td_app_stream_cool(td_app_stream_t *stream)
{
    if (stream->probabilities[stream->latest] < TD_APP_M_PROBABILITY_CUTOFF && stream->cooling < 0) {
        stream->cooling++;
    }
}

static void td_app_stream_send(td_app_t *app, uint8_t probability, uint8_t window_mean, uint8_t flags)
{
    td_proto_frame_t *frame = &app->reply;
    td_proto_detection_t *out = &frame->body.detection;
    frame->type = TD_FRAME_DETECTION;
    out->inference_index = app->inferences;
    for (unsigned i = 0; i < TD_PROTO_MODEL_ID_BYTES; ++i) {
        out->model_id[i] = app->model_hash[i];
    }
    out->probability = probability;
    out->window_mean = window_mean;
    out->flags = flags;
    out->stream_position = app->stream.position;
    td_app_send(app, frame);
}

/* The model's input is complete: invoke, then decide. */
static void td_app_stream_infer(td_app_t *app)
{
    td_app_stream_t *stream = &app->stream;
    const uint64_t energy = stream->energy;
    const uint64_t slope_energy = stream->slope_energy;
    stream->energy = 0;
    stream->slope_energy = 0;
    if (TD_APP_M_INVOKE() != 0) {
        td_port_print("td_app: the model failed on a frame block; skipped\n");
        return;
    }
    const uint8_t probability = TD_APP_M_OUTPUT()[0];
    td_summarize_frames(TD_APP_M_INPUT(), TD_APP_STREAM_STRIDE, TD_FRONTEND_NUM_CHANNELS, app->summary);
    td_summarize_floor(TD_APP_M_INPUT(), TD_APP_STREAM_STRIDE, TD_FRONTEND_NUM_CHANNELS, TD_APP_FLOOR_GROUP,
                       app->summary + TD_FRONTEND_NUM_CHANNELS);
    const int16_t level = td_summarize_level(energy);
    app->summary[TD_APP_STREAM_SUMMARY - 3u] = level;
    app->summary[TD_APP_STREAM_SUMMARY - 2u] = td_summarize_tilt(slope_energy, energy);
    app->summary[TD_APP_STREAM_SUMMARY - 1u] = td_summarize_quiet(&stream->quiet, level);
#if TD_APP_HAS_MONITOR
    const int8_t classes[2] = {(int8_t)(127 - (int)probability), (int8_t)((int)probability - 128)};
    td_monitor_result_t result;
    td_monitor_update(&app->monitor, td_app_monitor_config(), app->summary, classes, &result);
    td_app_keep_after_update(app);
#endif

    stream->latest = (stream->latest + 1u) % TD_APP_M_SLIDING_WINDOW;
    stream->probabilities[stream->latest] = probability;
    td_app_stream_cool(stream);
    uint32_t sum = 0;
    for (unsigned i = 0; i < TD_APP_M_SLIDING_WINDOW; ++i) {
        sum += stream->probabilities[i];
    }
    uint8_t flags = stream->cooling < 0 ? TD_DETECTION_FLAG_COOLING : 0u;
    if (stream->cooling >= 0 && sum > (uint32_t)TD_APP_M_PROBABILITY_CUTOFF * TD_APP_M_SLIDING_WINDOW) {
        flags |= TD_DETECTION_FLAG_WAKE;
        for (unsigned i = 0; i < TD_APP_M_SLIDING_WINDOW; ++i) {
            stream->probabilities[i] = 0;
        }
        stream->cooling = -TD_APP_COOLING_FRAMES;
    }
    app->inferences++;
    app->inferences_total++;
    if (flags & TD_DETECTION_FLAG_WAKE) {
        app->wakes.at[app->wakes.count % TD_APP_WAKE_HISTORY] = app->inferences;
        app->wakes.count++;
    }
    if (app->options.trace || (flags & TD_DETECTION_FLAG_WAKE)) {
        td_app_stream_send(app, probability, (uint8_t)(sum / TD_APP_M_SLIDING_WINDOW), flags);
    }
#if TD_APP_HAS_MONITOR
    if (!app->options.heartbeat_only) {
        td_app_send_inference(app, &result);
    }
    td_app_heartbeat_add(app, &result);
#endif
}

int32_t td_app_stream_woke_at(const td_app_t *app, uint32_t index)
{
    const td_app_wakes_t *wakes = &app->wakes;
    if (index == 0u || index > app->inferences) {
        return -1;
    }
    const uint32_t kept = wakes->count < TD_APP_WAKE_HISTORY ? wakes->count : TD_APP_WAKE_HISTORY;
    for (uint32_t k = 0; k < kept; ++k) {
        if (wakes->at[k] == index) {
            return 1;
        }
    }
    /* Every wake since RESET is kept, or the index is past the oldest one kept. */
    if (wakes->count <= TD_APP_WAKE_HISTORY || index > wakes->at[wakes->count % TD_APP_WAKE_HISTORY]) {
        return 0;
    }
    return -1;
}

/* One front-end frame from the samples in hop, into its row of the model's input. */
static void td_app_stream_frame(td_app_t *app)
{
    td_app_stream_t *stream = &app->stream;
    int8_t *row = TD_APP_M_INPUT() + stream->frames * TD_FRONTEND_NUM_CHANNELS;
#if TD_APP_HAS_MONITOR
    td_sensor_result_t sensed = {0, 0, 0, 0, 0};
    td_sensor_update(&app->monitor, td_app_monitor_config(), stream->hop, stream->fill, &sensed);
    stream->energy += (uint64_t)sensed.variance * stream->fill;
    /* A stream's first sample has none before it: it follows itself (a difference of 0). */
    const int16_t previous = stream->has_last_sample ? stream->last_sample : stream->hop[0];
    stream->slope_energy += td_slope_energy(stream->hop, stream->fill, previous);
    stream->last_sample = stream->hop[stream->fill - 1u];
    stream->has_last_sample = 1;
#endif
    td_frontend_process_hop(&app->frontend, stream->hop, stream->fill, row);
    stream->fill = 0;
    if (++stream->frames == TD_APP_STREAM_STRIDE) {
        stream->frames = 0;
        td_app_stream_infer(app);
    } else {
        td_app_stream_cool(stream);
    }
}

void td_app_stream_push(td_app_t *app, const int16_t *samples, size_t count)
{
    td_app_stream_t *stream = &app->stream;
    while (count > 0) {
        const size_t need = td_frontend_hop_samples(&app->frontend) - stream->fill;
        const size_t taken = count < need ? count : need;
        for (size_t i = 0; i < taken; ++i) {
            stream->hop[stream->fill + i] = samples[i];
        }
        stream->fill += (uint32_t)taken;
        stream->position += (uint32_t)taken;
        samples += taken;
        count -= taken;
        if (taken == need) {
            td_app_stream_frame(app);
        }
    }
}

#endif /* TD_APP_STREAMING */
