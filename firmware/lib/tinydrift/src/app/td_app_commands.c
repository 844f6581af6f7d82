/* Commands from the host (docs/protocol.md §3): every valid command is answered with ACK,
 * after whatever it caused (an AUDIO chunk that completes a window is ACKed after its
 * INFERENCE frame, so a host that waits for ACKs never outruns the device). Corrupt runs
 * are counted (STATUS.rx_errors) and otherwise ignored; text is ignored. */
#include "td_app.h"
#include "td_port.h"

static void td_app_ack(td_app_t *app, uint32_t command_seq, uint8_t command_type, uint8_t result,
                       uint32_t detail)
{
    td_proto_frame_t *frame = &app->reply;
    frame->type = TD_FRAME_ACK;
    frame->body.ack.command_seq = command_seq;
    frame->body.ack.command_type = command_type;
    frame->body.ack.result = result;
    frame->body.ack.detail = detail;
    td_app_send(app, frame);
}

#if TD_APP_IMAGE
/* A camera build hears no audio. */
static void td_app_on_audio(td_app_t *app, const td_proto_frame_t *command)
{
    td_app_ack(app, command->seq, command->type, TD_APP_ACK_UNSUPPORTED, 0);
}

/* A chunk of a replayed image, straight into the model's input as pixels minus 128; the
 * image is checked against the model's shape at every chunk and must be whole at END. */
static void td_app_on_image(td_app_t *app, const td_proto_frame_t *command)
{
    const td_proto_image_t *image = &command->body.image;
    const uint32_t shape = (uint32_t)TD_APP_M_IMAGE_HEIGHT * 65536u + (uint32_t)TD_APP_M_IMAGE_WIDTH * 256u +
                           (uint32_t)TD_APP_M_IMAGE_CHANNELS;
    if (image->height != TD_APP_M_IMAGE_HEIGHT || image->width != TD_APP_M_IMAGE_WIDTH ||
        image->channels != TD_APP_M_IMAGE_CHANNELS) {
        app->clip_open = 0;
        td_app_ack(app, command->seq, command->type, TD_APP_ACK_BAD_IMAGE, shape);
        return;
    }
    if (image->flags & TD_IMAGE_FLAG_START) {
        if (image->byte_offset != 0) {
            td_app_ack(app, command->seq, command->type, TD_APP_ACK_AUDIO_GAP, 0);
            return;
        }
        app->clip_open = 1;
        app->stream_is_clip = 1;
        app->clip_expected_offset = 0;
    }
    if (!app->clip_open || image->byte_offset != app->clip_expected_offset) {
        td_app_ack(app, command->seq, command->type, TD_APP_ACK_AUDIO_GAP,
                   app->clip_open ? app->clip_expected_offset : 0);
        return;
    }
    const uint32_t end = image->byte_offset + image->n_bytes;
    if (end > TD_APP_IMAGE_BYTES || ((image->flags & TD_IMAGE_FLAG_END) && end != TD_APP_IMAGE_BYTES)) {
        app->clip_open = 0; /* more or fewer bytes than the shape holds: start again */
        td_app_ack(app, command->seq, command->type, TD_APP_ACK_BAD_IMAGE, shape);
        return;
    }
    int8_t *input = TD_APP_M_INPUT();
    for (uint32_t i = 0; i < image->n_bytes; ++i) {
        input[image->byte_offset + i] = (int8_t)((int32_t)image->pixels[i] - 128);
    }
    app->clip_expected_offset = end;
    if (image->flags & TD_IMAGE_FLAG_END) {
        td_app_infer(app);
        app->clip_open = 0;
        app->stream_is_clip = 0;
    }
    td_app_ack(app, command->seq, command->type, TD_APP_ACK_OK, app->clip_expected_offset);
}
#else
/* An audio build sees no images. */
static void td_app_on_image(td_app_t *app, const td_proto_frame_t *command)
{
    td_app_ack(app, command->seq, command->type, TD_APP_ACK_UNSUPPORTED, 0);
}

/* The end of a replayed clip. A clip shorter than a window gets one inference, on the clip
 * padded with zeros; a tail shorter than the stride (a streaming build: than a frame) is
 * dropped. */
static void td_app_clip_end(td_app_t *app)
{
#if !TD_APP_STREAMING
    td_app_window_t *window = &app->window;
    if (window->windows == 0 && window->fill > 0) {
        td_app_window_pad(window);
        td_app_infer(app);
    }
#endif
    td_app_restart_stream(app);
}

/* A chunk of a replayed clip: the clip is a stream of its own, from START to END. */
static void td_app_on_audio(td_app_t *app, const td_proto_frame_t *command)
{
    const td_proto_audio_t *audio = &command->body.audio;
    if (audio->flags & TD_AUDIO_FLAG_START) {
        if (audio->sample_offset != 0) {
            td_app_ack(app, command->seq, command->type, TD_APP_ACK_AUDIO_GAP, 0);
            return;
        }
        td_app_restart_stream(app);
        app->clip_open = 1;
        app->stream_is_clip = 1;
        app->clip_expected_offset = 0;
    }
    if (!app->clip_open || audio->sample_offset != app->clip_expected_offset) {
        /* Lost or repeated chunks: the host resends from the offset in `detail` (0: the
         * whole clip, with START). */
        td_app_ack(app, command->seq, command->type, TD_APP_ACK_AUDIO_GAP,
                   app->clip_open ? app->clip_expected_offset : 0);
        return;
    }
    td_app_feed(app, audio->samples, audio->n_samples);
    app->clip_expected_offset += audio->n_samples;
    if (audio->flags & TD_AUDIO_FLAG_END) {
        td_app_clip_end(app);
        app->clip_open = 0;
        app->stream_is_clip = 0;
    }
    td_app_ack(app, command->seq, command->type, TD_APP_ACK_OK, app->clip_expected_offset);
}
#endif

#if TD_APP_HAS_MONITOR
/* 1 if the monitor took a label for this inference among the latest ones kept. */
static int td_app_label_taken(const td_app_t *app, uint32_t index)
{
    const td_app_labels_t *taken = &app->labels_taken;
    const uint32_t kept = taken->count < TD_APP_LABELS_KEPT ? taken->count : TD_APP_LABELS_KEPT;
    for (uint32_t k = 0; k < kept; ++k) {
        if (taken->index[k] == index) {
            return 1;
        }
    }
    return 0;
}

/* The label's class goes to the error-rate test once per inference. */
static void td_app_take_label(td_app_t *app, uint32_t index, int32_t predicted, int32_t label)
{
    if (td_app_label_taken(app, index)) {
        return;
    }
    td_monitor_label_feedback(&app->monitor, td_app_monitor_config(), predicted, label, 0);
    app->labels_taken.index[app->labels_taken.count % TD_APP_LABELS_KEPT] = index;
    app->labels_taken.count += 1;
}
#endif

#if TD_APP_STREAMING
#if TD_APP_HAS_MONITOR
/* Whether the wake word was said (1) or not (0) at an inference the detector still knows:
 * against whether it woke there, so a rejected wake and a miss both count as errors. */
static void td_app_on_label(td_app_t *app, const td_proto_frame_t *command)
{
    const td_monitor_config_t *config = td_app_monitor_config();
    const uint32_t index = command->body.label.inference_index;
    const uint32_t label = command->body.label.label;
    const int32_t woke = td_app_stream_woke_at(app, index);
    uint8_t result = TD_APP_ACK_OK;
    if (woke < 0) {
        result = TD_APP_ACK_UNKNOWN_INFERENCE;
    } else if (label >= config->n_classes) {
        result = TD_APP_ACK_BAD_LABEL;
    } else {
        td_app_take_label(app, index, woke, (int32_t)label);
    }
    td_app_ack(app, command->seq, command->type, result, index);
}
#else
/* Without a monitor there is no error-rate test to take labels. */
static void td_app_on_label(td_app_t *app, const td_proto_frame_t *command)
{
    td_app_ack(app, command->seq, command->type, TD_APP_ACK_UNSUPPORTED, 0);
}
#endif

/* The inference index restarts, and the monitor with it; the stream and its detector run on. */
static void td_app_on_reset(td_app_t *app, const td_proto_frame_t *command)
{
    app->inferences = 0;
    app->wakes.count = 0;
#if TD_APP_HAS_MONITOR
    td_monitor_reset(&app->monitor, td_app_monitor_config());
    td_app_keep_forget(app);
    td_app_heartbeat_clear(&app->heartbeat);
    app->labels_taken.count = 0;
#endif
    td_app_ack(app, command->seq, command->type, TD_APP_ACK_OK, 0);
    td_app_send_hello(app);
}

static void td_app_status_counts(const td_app_t *app, td_proto_status_t *status)
{
    status->state_bytes = TD_APP_HAS_MONITOR ? td_monitor_state_size() : 0u;
    status->inferences = app->inferences;
#if TD_APP_HAS_MONITOR
    status->labels = app->monitor.labels;
    status->label_errors = app->monitor.errors;
#else
    status->labels = 0;
    status->label_errors = 0;
#endif
}
#else
static void td_app_on_label(td_app_t *app, const td_proto_frame_t *command)
{
    const td_monitor_config_t *config = td_app_monitor_config();
    const uint32_t index = command->body.label.inference_index;
    const uint32_t label = command->body.label.label;
    const uint32_t now = app->monitor.t;
    uint8_t result = TD_APP_ACK_OK;
    if (index == 0 || index > now || now - index >= TD_APP_LABEL_HISTORY) {
        result = TD_APP_ACK_UNKNOWN_INFERENCE;
    } else if (label >= config->n_classes) {
        result = TD_APP_ACK_BAD_LABEL;
    } else {
        td_app_take_label(app, index, app->predicted_history[index % TD_APP_LABEL_HISTORY], (int32_t)label);
    }
    td_app_ack(app, command->seq, command->type, result, index);
}

static void td_app_on_reset(td_app_t *app, const td_proto_frame_t *command)
{
    td_monitor_reset(&app->monitor, td_app_monitor_config());
    td_app_keep_forget(app);
#if TD_APP_IMAGE
    td_sensor_image_reset(&app->camera_sensor);
#endif
    for (unsigned i = 0; i < TD_APP_LABEL_HISTORY; ++i) {
        app->predicted_history[i] = 0;
    }
    td_app_heartbeat_clear(&app->heartbeat); /* the indices restart: so do the window and latches */
    app->labels_taken.count = 0;
    td_app_ack(app, command->seq, command->type, TD_APP_ACK_OK, 0);
    td_app_send_hello(app);
}

static void td_app_status_counts(const td_app_t *app, td_proto_status_t *status)
{
    status->state_bytes = td_monitor_state_size();
    status->inferences = app->monitor.t;
    status->labels = app->monitor.labels;
    status->label_errors = app->monitor.errors;
}
#endif

#if TD_APP_HAS_MONITOR
/* How the device reports from now on; the heartbeat window runs on. */
static void td_app_on_config(td_app_t *app, const td_proto_frame_t *command)
{
    const td_proto_config_t *config = &command->body.config;
    const uint8_t only = (config->flags & TD_CONFIG_FLAG_HEARTBEAT_ONLY) != 0u;
    if (only && config->heartbeat_interval == 0u) {
        td_app_ack(app, command->seq, command->type, TD_APP_ACK_BAD_CONFIG, app->options.heartbeat_interval);
        return;
    }
    app->options.heartbeat_interval = config->heartbeat_interval;
    app->options.heartbeat_only = only;
    if (config->heartbeat_interval == 0u) {
        app->heartbeat.window = (td_app_heartbeat_window_t){0};
    }
    td_app_ack(app, command->seq, command->type, TD_APP_ACK_OK, app->options.heartbeat_interval);
}
#else
/* No heartbeats to configure in a detector built without a monitor. */
static void td_app_on_config(td_app_t *app, const td_proto_frame_t *command)
{
    td_app_ack(app, command->seq, command->type, TD_APP_ACK_UNSUPPORTED, 0);
}
#endif

static void td_app_on_status_request(td_app_t *app, const td_proto_frame_t *command)
{
    td_app_ack(app, command->seq, command->type, TD_APP_ACK_OK, 0);
    td_proto_frame_t *frame = &app->reply;
    td_proto_status_t *status = &frame->body.status;
    frame->type = TD_FRAME_STATUS;
    status->uptime_ms = td_port_millis();
    td_app_status_counts(app, status);
    status->rx_frames = app->rx_frames;
    status->rx_errors = app->rx_errors;
    for (unsigned i = 0; i < TD_PROTO_MODEL_HASH_BYTES; ++i) {
        status->model_hash[i] = app->model_hash[i];
    }
    td_app_fill_hello(app, &status->hello);
    td_app_send(app, frame);
}

static void td_app_dispatch(td_app_t *app, const td_proto_frame_t *command)
{
    switch (command->type) {
    case TD_FRAME_AUDIO:
        td_app_on_audio(app, command);
        break;
    case TD_FRAME_IMAGE:
        td_app_on_image(app, command);
        break;
    case TD_FRAME_LABEL:
        td_app_on_label(app, command);
        break;
    case TD_FRAME_RESET:
        td_app_on_reset(app, command);
        break;
    case TD_FRAME_STATUS_REQUEST:
        td_app_on_status_request(app, command);
        break;
    case TD_FRAME_CONFIG:
        td_app_on_config(app, command);
        break;
    default: /* a device -> host frame: an echo or a confused host */
        td_app_ack(app, command->seq, command->type, TD_APP_ACK_NOT_A_COMMAND, 0);
        break;
    }
}

void td_app_receive(td_app_t *app, const uint8_t *bytes, size_t count)
{
    for (size_t i = 0; i < count; ++i) {
        const td_proto_result_t result = td_proto_decoder_push(&app->decoder, bytes[i], &app->command);
        if (result == TD_PROTO_FRAME) {
            app->rx_frames++;
            td_app_dispatch(app, &app->command);
        } else if (result < 0) {
            app->rx_errors++;
        }
    }
}
