/* The application's state, its frames to the host and the continuous audio stream.
 * Commands from the host are in td_app_commands.c, the inference in td_app_infer.c (a
 * streaming build's in td_app_stream.c). */
#include "td_app.h"
#include "td_port.h"

/* The generated reference data (and monitor config): included in this one file. */
#include TD_APP_REFERENCE_HEADER

#if TD_APP_STREAMING
#if TD_APP_M_NUM_CHANNELS != TD_FRONTEND_NUM_CHANNELS
#error "the streaming model's frames are not the front end's 40 channels"
#endif
/* The monitor reads a binary detector's probability as two classes, [1 - p, p], and its
 * input block as the channel means, the channel pairs' at-floor counts and the loudness
 * (td_app_stream.c). */
#define TD_APP_MONITOR_CLASSES 2u
#define TD_APP_SUMMARY_LENGTH TD_APP_STREAM_SUMMARY
#else
#if TD_APP_IMAGE
#if TD_APP_IMAGE_BYTES != TD_APP_M_INPUT_SIZE || TD_APP_M_IMAGE_HEIGHT > 255 || TD_APP_M_IMAGE_WIDTH > 255
#error "the model's input is not its reference header's image, or is too large for IMAGE frames"
#endif
#define TD_APP_SUMMARY_LENGTH TD_SUMMARY_IMAGE_LENGTH(TD_APP_M_SUMMARY_GRID)
#else
#if TD_APP_M_NUM_FRAMES != TD_FRONTEND_NUM_FRAMES || TD_APP_M_NUM_CHANNELS != TD_FRONTEND_NUM_CHANNELS
#error "the model's input shape is not the front end's 49x40"
#endif
#define TD_APP_SUMMARY_LENGTH TD_APP_WINDOW_SUMMARY
#endif
#define TD_APP_MONITOR_CLASSES TD_APP_M_OUTPUT_SIZE
#endif

#if TD_APP_HAS_MONITOR
#include TD_APP_MONITOR_CONFIG_HEADER
#if TD_APP_PASTE(TD_MONITOR_CONFIG_, TD_APP_MODEL_UPPER, _N_SUMMARY) != TD_APP_SUMMARY_LENGTH
#error "the monitor config's input summary is not this app's (a keyword export from before the window's quiet level has 40 or 41 values, not 42): run tinydrift export on the model folder again"
#endif

const td_monitor_config_t *td_app_monitor_config(void)
{
    return &TD_APP_M_MONITOR_CONFIG;
}
#endif

td_app_options_t td_app_default_options(void)
{
    td_app_options_t options;
    options.stride_samples = TD_APP_DEFAULT_STRIDE;
    options.trace = 1;
    options.heartbeat_interval = TD_APP_HEARTBEAT_INTERVAL;
    options.heartbeat_only = TD_APP_HEARTBEAT_ONLY;
    return options;
}

static int td_app_hex_digit(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    return -1;
}

/* The generated hash is 64 lower-case hex digits: the bytes HELLO and STATUS carry. */
static int td_app_parse_model_hash(uint8_t hash[TD_PROTO_MODEL_HASH_BYTES])
{
    static const char text[] = TD_APP_M_MODEL_HASH;
    if (sizeof text != 2u * TD_PROTO_MODEL_HASH_BYTES + 1u) {
        return -1;
    }
    for (unsigned i = 0; i < TD_PROTO_MODEL_HASH_BYTES; ++i) {
        const int high = td_app_hex_digit(text[2u * i]);
        const int low = td_app_hex_digit(text[2u * i + 1u]);
        if (high < 0 || low < 0) {
            return -1;
        }
        hash[i] = (uint8_t)(high * 16 + low);
    }
    /* The model id the generated header declares must be the hash's first bytes. */
    for (unsigned i = 0; i < TD_APP_M_MODEL_ID_BYTES && i < TD_PROTO_MODEL_HASH_BYTES; ++i) {
        if (hash[i] != TD_APP_M_MODEL_ID[i]) {
            return -1;
        }
    }
    return 0;
}

void td_app_send(td_app_t *app, td_proto_frame_t *frame)
{
    frame->seq = app->tx_seq++;
    const int32_t length = td_proto_encode(frame, app->wire, sizeof app->wire);
    if (length > 0) {
        td_port_write(app->wire, (size_t)length);
    }
}

#if !TD_APP_HAS_MONITOR
/* A detector built without a monitor: no state, scores or thresholds; one class, the wake word. */
static void td_app_hello_monitor(td_proto_hello_t *hello)
{
    hello->state_bytes = 0;
    hello->n_classes = (uint8_t)TD_APP_M_NUM_CLASSES;
    hello->n_channels = 0;
    hello->score_frac_bits = 0;
    hello->n_scores = 0;
    for (unsigned i = 0; i < TD_PROTO_N_SCORES; ++i) {
        hello->warning_threshold[i] = 0;
        hello->drift_threshold[i] = 0;
    }
}
#else
static void td_app_hello_monitor(td_proto_hello_t *hello)
{
    const td_monitor_config_t *config = &TD_APP_M_MONITOR_CONFIG;
    hello->state_bytes = td_monitor_state_size();
    hello->n_classes = (uint8_t)config->n_classes;
    hello->n_channels = (uint8_t)config->n_summary;
    hello->score_frac_bits = TD_Z_FRAC_BITS;
    hello->n_scores = TD_SCORE_COUNT;
    for (unsigned i = 0; i < TD_PROTO_N_SCORES; ++i) {
        hello->warning_threshold[i] = i < TD_SCORE_COUNT ? config->score[i].warning : 0;
        hello->drift_threshold[i] = i < TD_SCORE_COUNT ? config->score[i].drift : 0;
    }
}
#endif

void td_app_fill_hello(const td_app_t *app, td_proto_hello_t *hello)
{
    for (unsigned i = 0; i < TD_PROTO_MODEL_HASH_BYTES; ++i) {
        hello->model_hash[i] = app->model_hash[i];
    }
    hello->fw_major = TD_APP_FW_MAJOR;
    hello->fw_minor = TD_APP_FW_MINOR;
    hello->fw_patch = TD_APP_FW_PATCH;
    td_app_hello_monitor(hello);
    hello->device_id = td_port_device_id();
    hello->boot_count = td_port_boot_count();
}

void td_app_send_hello(td_app_t *app)
{
    td_proto_frame_t *frame = &app->reply;
    frame->type = TD_FRAME_HELLO;
    td_app_fill_hello(app, &frame->body.hello);
    td_app_send(app, frame);
}

/* A text line of the link carries printable ASCII only (a byte above it reads as frame
 * data): a label's other bytes, such as the UTF-8 of a class folder's name, go as '?'. */
static void td_app_print_ascii(const char *text)
{
    char chunk[33];
    unsigned n = 0;
    for (; *text != '\0'; ++text) {
        const unsigned char c = (unsigned char)*text;
        chunk[n++] = (c >= 0x20u && c < 0x7Fu) ? (char)c : '?';
        if (n == sizeof chunk - 1u) {
            chunk[n] = '\0';
            td_port_print(chunk);
            n = 0;
        }
    }
    chunk[n] = '\0';
    td_port_print(chunk);
}

#if TD_APP_HAS_MONITOR
static void td_app_print_u32(uint32_t value)
{
    char digits[11];
    unsigned n = sizeof digits - 1u;
    digits[n] = '\0';
    do {
        digits[--n] = (char)('0' + value % 10u);
        value /= 10u;
    } while (value != 0u && n > 0u);
    td_port_print(&digits[n]);
}
#endif

/* A text line for people watching the port: the model, its classes and how many inferences
 * after a reset the monitor learns its reference on (a host without the model folder reads
 * both from it; HELLO carries neither). */
static void td_app_print_banner(const td_app_t *app)
{
    static const char hex[] = "0123456789abcdef";
    char id[2u * TD_PROTO_MODEL_ID_BYTES + 1u];
    for (unsigned i = 0; i < TD_PROTO_MODEL_ID_BYTES; ++i) {
        id[2u * i] = hex[app->model_hash[i] >> 4];
        id[2u * i + 1u] = hex[app->model_hash[i] & 0xFu];
    }
    id[sizeof id - 1u] = '\0';
    td_port_print("tinydrift app board=");
    td_port_print(td_port_board_name());
    td_port_print(" model=");
    td_port_print(id);
    td_port_print(" classes=");
    for (unsigned i = 0; i < TD_APP_M_NUM_CLASSES; ++i) {
        td_port_print(i == 0 ? "" : ",");
        td_app_print_ascii(TD_APP_M_LABELS[i]);
    }
#if TD_APP_HAS_MONITOR
    td_port_print(" commission=");
    td_app_print_u32(TD_APP_M_MONITOR_CONFIG.commission_n);
    if (TD_APP_M_MONITOR_CONFIG.commission_n > 0u) {
        td_port_print(app->reference_restored ? " reference=kept" : " reference=learning");
    }
#endif
    td_port_print("\n");
}

#if TD_APP_HAS_MONITOR
void td_app_print_reference(const td_app_t *app, const char *how)
{
    /* the dead share (Q16) in tenths of a percent, rounded */
    const uint32_t tenths = ((uint32_t)app->monitor.commission.dead * 1000u + 32768u) >> 16;
    td_port_print("tinydrift app reference=");
    td_port_print(how);
    td_port_print(" dead=");
    td_app_print_u32(tenths / 10u);
    td_port_print(".");
    td_app_print_u32(tenths % 10u);
    /* a model whose dead-time test is off (dropout_limit 0) learns the share all the same */
    td_port_print(TD_APP_M_MONITOR_CONFIG.dropout_limit == 0 ? "% dead_test=off\n" : "%\n");
}
#endif

int td_app_init(td_app_t *app, const td_app_options_t *options)
{
    if (options->stride_samples < 1u || options->stride_samples > TD_APP_WINDOW_SAMPLES ||
        (options->heartbeat_only && options->heartbeat_interval == 0u)) {
        return -1;
    }
    if (td_app_parse_model_hash(app->model_hash) != 0) {
        return -2;
    }
#if TD_APP_HAS_MONITOR
    if (td_monitor_init(&app->monitor, &TD_APP_M_MONITOR_CONFIG) != TD_MONITOR_OK ||
        TD_APP_M_MONITOR_CONFIG.n_classes != TD_APP_MONITOR_CLASSES ||
        TD_APP_M_MONITOR_CONFIG.n_summary != TD_APP_SUMMARY_LENGTH) {
        return -2;
    }
    td_app_heartbeat_clear(&app->heartbeat);
    app->labels_taken.count = 0;
    td_app_keep_restore(app);
#endif
#if TD_APP_IMAGE
    td_sensor_image_reset(&app->camera_sensor);
#endif
    app->options = *options;
#if TD_APP_STREAMING
    app->inferences = 0;
    app->wakes.count = 0;
#else
    for (unsigned i = 0; i < TD_APP_LABEL_HISTORY; ++i) {
        app->predicted_history[i] = 0;
    }
#endif
    td_app_restart_stream(app);
    app->clip_expected_offset = 0;
    app->clip_open = 0;
    app->stream_is_clip = 0;
    td_proto_decoder_init(&app->decoder);
    app->tx_seq = 0;
    app->rx_frames = 0;
    app->rx_errors = 0;
    app->inferences_total = 0;
    td_app_print_banner(app);
#if TD_APP_HAS_MONITOR
    if (app->reference_restored) {
        td_app_print_reference(app, "kept");
    }
#endif
    td_app_send_hello(app);
    return 0;
}

void td_app_restart_stream(td_app_t *app)
{
#if TD_APP_STREAMING
    td_app_stream_start(app);
#elif TD_APP_IMAGE
    (void)app; /* every image is a stream of its own: nothing carries over */
#else
    td_app_window_start(&app->window, app->options.stride_samples);
#endif
}

void td_app_feed(td_app_t *app, const int16_t *samples, size_t count)
{
#if TD_APP_STREAMING
    td_app_stream_push(app, samples, count);
#elif TD_APP_IMAGE
    (void)app; /* a camera build has no audio stream */
    (void)samples;
    (void)count;
#else
    while (count > 0) {
        const size_t taken = td_app_window_append(&app->window, samples, count);
        samples += taken;
        count -= taken;
        if (td_app_window_full(&app->window)) {
            td_app_infer(app);
            td_app_window_advance(&app->window);
        }
    }
#endif
}

void td_app_push_samples(td_app_t *app, const int16_t *samples, size_t count)
{
    if (app->stream_is_clip) {
        /* A clip left unfinished by the host: the continuous stream starts over. */
        td_app_restart_stream(app);
        app->stream_is_clip = 0;
        app->clip_open = 0;
    }
    td_app_feed(app, samples, count);
}

#if TD_APP_IMAGE
void td_app_push_image(td_app_t *app, const uint8_t *pixels)
{
    app->clip_open = 0; /* a replayed image in progress is abandoned: the camera's frame takes the input */
    app->stream_is_clip = 0;
    int8_t *input = TD_APP_M_INPUT();
    for (uint32_t i = 0; i < TD_APP_IMAGE_BYTES; ++i) {
        input[i] = (int8_t)((int32_t)pixels[i] - 128);
    }
    td_app_infer(app);
}
#endif

void td_app_bye(td_app_t *app, uint32_t exit_code)
{
    td_proto_frame_t *frame = &app->reply;
    frame->type = TD_FRAME_BYE;
    frame->body.bye.exit_code = exit_code;
#if TD_APP_STREAMING
    frame->body.bye.inferences = app->inferences;
#else
    frame->body.bye.inferences = app->monitor.t;
#endif
    td_app_send(app, frame);
}
