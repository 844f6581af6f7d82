/* The tinydrift application, apart from any board: audio in, one inference per 1 s window,
 * the drift monitor on every inference, framed log out, commands in.
 *
 *   PCM --(window assembly)--> 16,000 samples --(td_frontend, reset per window)--> 49x40 int8
 *       --(generated model)--> int8 softmax --(td_monitor: summary, outputs; td_sensor on
 *       the window's new PCM)--> INFERENCE frame (+ TRACE frame)
 *
 * Audio comes from any mix of sources: td_app_push_samples() for a continuous stream (the
 * board's microphone, the emulated board's audio file), and AUDIO frames from the host
 * (replayed clips: each clip is its own stream, START to END). Commands (RESET, LABEL,
 * AUDIO, STATUS_REQUEST) arrive as framed bytes through td_app_receive() and are answered
 * with ACK (docs/protocol.md). Everything lives in one td_app_t the caller allocates
 * statically: no heap. The board glue (firmware/src/main.c) reads the link and the
 * microphone and passes what it gets here; all output goes through td_port_write().
 *
 * Every window is computed from its own 16,000 samples with a freshly reset front end, so
 * its features equal the host's per-clip features (features_int8) bit for bit, whatever
 * the stride; the host twin of this file is tinydrift.app.expected_inferences.
 *
 * A streaming model (its generated header defines TD_<NAME>_STREAMING: state carried from
 * one invoke to the next, e.g. microWakeWord's) makes this a streaming binary detector
 * instead (TD_APP_STREAMING, td_app_stream.c): one front end over the whole stream, every
 * `stride` new 10 ms frames one inference, its uint8 probability into a sliding window, a
 * DETECTION frame per inference. When its folder also holds a monitor config (`tinydrift
 * wakeword calibrate`; the build then defines TD_APP_STREAM_MONITOR=1) the drift monitor runs
 * on every inference too, fed the summary of its frames and the probability p as the two
 * classes [1 - p, p], sensor health on every hop, with INFERENCE and HEARTBEAT frames as
 * above. Twin: tinydrift.app.expected_detections and expected_stream_inferences.
 *
 * A camera model (its reference header defines TD_<NAME>_IMAGE_HEIGHT) makes this an image
 * classifier instead (TD_APP_IMAGE): no audio, no front end; each image, from the board's
 * camera (td_port_camera_read) or replayed by the host (IMAGE frames), goes into the
 * model's input as pixels minus 128, then the model, td_summarize_image and the monitor, as
 * for a window. Twin: tinydrift.app.expected_image_inferences.
 */
#ifndef TD_APP_H
#define TD_APP_H

#include <stddef.h>
#include <stdint.h>

#include "td_app_model.h"
#include "td_frontend.h"
#include "td_monitor.h"
#include "td_protocol.h"

#include TD_APP_MODEL_HEADER
#include TD_APP_REFERENCE_HEADER

#if TD_APP_M_STREAMING
#define TD_APP_STREAMING 1
#else
#define TD_APP_STREAMING 0
#endif
#ifndef TD_APP_STREAM_MONITOR
#define TD_APP_STREAM_MONITOR 0
#endif
/* Every keyword build runs the monitor; a streaming one when its build says it has a config. */
#define TD_APP_HAS_MONITOR (!TD_APP_STREAMING || TD_APP_STREAM_MONITOR)
#if TD_APP_M_IMAGE_HEIGHT
#define TD_APP_IMAGE 1
#define TD_APP_IMAGE_BYTES (TD_APP_M_IMAGE_HEIGHT * TD_APP_M_IMAGE_WIDTH * TD_APP_M_IMAGE_CHANNELS)
#else
#define TD_APP_IMAGE 0
#endif

#ifdef __cplusplus
extern "C" {
#endif

#define TD_APP_FW_MAJOR 0u
#define TD_APP_FW_MINOR 1u
#define TD_APP_FW_PATCH 0u

#define TD_APP_WINDOW_SAMPLES TD_FRONTEND_CLIP_SAMPLES /* 1 s at 16 kHz */
#ifndef TD_APP_DEFAULT_STRIDE
#define TD_APP_DEFAULT_STRIDE TD_APP_WINDOW_SAMPLES /* one inference per second, no overlap */
#endif
/* Sensor health runs on the window's new samples in blocks of one front-end step (20 ms). */
#define TD_APP_SENSOR_BLOCK TD_FRONTEND_STEP_SAMPLES
/* LABEL can name any of the last this many inferences (their predicted classes are kept). */
#define TD_APP_LABEL_HISTORY 64u
/* A HEARTBEAT frame every this many inferences (0: none); the host may change it (CONFIG). */
#ifndef TD_APP_HEARTBEAT_INTERVAL
#define TD_APP_HEARTBEAT_INTERVAL 100u
#endif
/* Nonzero: heartbeats only, no INFERENCE or TRACE frames (for BLE, LoRaWAN, cellular). */
#ifndef TD_APP_HEARTBEAT_ONLY
#define TD_APP_HEARTBEAT_ONLY 0u
#endif

/* A keyword window's input summary: the channel means (td_summarize_frames), then the
 * loudness of the window's new samples (td_summarize_level) and the loudness of their
 * quietest sensor block (its quiet level), which the front end's gain control divides out
 * of the features. */
#define TD_APP_WINDOW_SUMMARY (TD_FRONTEND_NUM_CHANNELS + 2u)
/* A streaming build's input summary: the channel means, the values at the int8 floor over
 * pairs of adjacent channels (td_summarize_floor), then the loudness of the inference's new
 * samples (td_summarize_level), their spectral tilt (td_summarize_tilt) and the stream's
 * quiet level (td_summarize_quiet), which the front end's gain control hides from the rest. */
#define TD_APP_FLOOR_GROUP 2u
#define TD_APP_STREAM_SUMMARY (TD_FRONTEND_NUM_CHANNELS + TD_FRONTEND_NUM_CHANNELS / TD_APP_FLOOR_GROUP + 3u)
/* The longest sliding window of probabilities a streaming build keeps (microWakeWord's
 * models use 5 to 10). */
#define TD_APP_MAX_SLIDING_WINDOW 32u
/* After a detection, and when a stream starts, detections are held off until this many
 * front-end frames (10 ms each) whose latest probability was below the cutoff have passed:
 * ESPHome's micro_wake_word's MIN_SLICES_BEFORE_DETECTION, 1 s. */
#define TD_APP_COOLING_FRAMES 100

/* ACK results (docs/protocol.md §3 and docs/app.md). */
#define TD_APP_ACK_OK 0u
#define TD_APP_ACK_AUDIO_GAP 1u       /* AUDIO at another offset: detail = the expected one */
#define TD_APP_ACK_UNKNOWN_INFERENCE 2u /* LABEL for an inference not (or no longer) known */
#define TD_APP_ACK_BAD_LABEL 3u       /* LABEL with a class outside the model's */
#define TD_APP_ACK_NOT_A_COMMAND 4u   /* a device -> host frame type sent to the device */
#define TD_APP_ACK_BAD_CONFIG 5u      /* CONFIG: heartbeats only, but no heartbeats */
#define TD_APP_ACK_UNSUPPORTED 6u     /* LABEL or CONFIG to a streaming build without a monitor;
                                        IMAGE to an audio build, AUDIO to a camera build */
#define TD_APP_ACK_BAD_IMAGE 7u       /* IMAGE of another shape than the model's, or not whole at END:
                                        detail = height * 65536 + width * 256 + channels of the model's */

typedef struct {
    uint32_t stride_samples; /* samples between window starts, 1..TD_APP_WINDOW_SAMPLES */
    uint8_t trace;           /* nonzero: send a TRACE frame after every INFERENCE */
    uint16_t heartbeat_interval; /* inferences per HEARTBEAT frame, 0: none */
    uint8_t heartbeat_only;      /* nonzero: no INFERENCE or TRACE frames, heartbeats only */
} td_app_options_t;

/* One stream's window: the last TD_APP_WINDOW_SAMPLES samples, and how many are new. */
typedef struct {
    int16_t samples[TD_APP_WINDOW_SAMPLES];
    uint32_t fill;     /* valid samples, from samples[0] */
    uint32_t fresh;    /* samples appended since the last window (or the stream's start) */
    uint32_t padding;  /* zeros after the samples (a replayed clip shorter than a window) */
    uint32_t stride;   /* samples the window moves after each inference */
    uint32_t position; /* samples of the stream so far */
    uint32_t windows;  /* windows completed in this stream */
} td_app_window_t;

/* A streaming detector's stream: samples waiting for the front end's next frame, frames
 * waiting for the model, the last probabilities and the hold-off after a detection. */
typedef struct {
    int16_t hop[TD_FRONTEND_WINDOW_SAMPLES]; /* a whole window after a reset, then one step */
    uint32_t fill;             /* samples in hop */
    uint32_t position;         /* samples of the stream so far */
    uint32_t frames;           /* frames in the model's input so far, < its stride */
    uint8_t probabilities[TD_APP_MAX_SLIDING_WINDOW];
    uint32_t latest;           /* index of the latest probability */
    int32_t cooling;           /* < 0: frames still to pass before a detection may count */
    uint64_t energy;           /* the new samples' energy since the last inference (td_summarize_level) */
    uint64_t slope_energy;     /* and the energy of their differences (td_summarize_tilt) */
    int16_t last_sample;       /* the previous hop's last sample, which the next hop's first follows */
    uint8_t has_last_sample;   /* 0 until the stream's first hop */
    td_quiet_t quiet;          /* the last inferences' loudness (td_summarize_quiet) */
} td_app_stream_t;

/* A streaming detector with a monitor takes LABEL frames about its wakes: the label says
 * whether the wake word was said at the named inference (1) or not (0), and the detector's
 * own answer there is whether it woke. So a rejected wake counts as an error (a false wake),
 * and so does a wake word said where it stayed quiet (a miss). It keeps the inference
 * indices of its latest wakes: a LABEL can name one of them, or any inference since the
 * oldest one kept (it did not wake there). */
#define TD_APP_WAKE_HISTORY 8u
typedef struct {
    uint32_t at[TD_APP_WAKE_HISTORY]; /* inference index of wake k at k modulo the history */
    uint32_t count;                   /* wakes since boot or RESET */
} td_app_wakes_t;

/* The inference indices of the latest labels the monitor took: the same LABEL again (a host
 * sending it once more after an ACK it never saw) is acknowledged as before and not counted
 * twice. Index 0 names no inference, so an entry not yet written matches none. */
#define TD_APP_LABELS_KEPT 8u
typedef struct {
    uint32_t index[TD_APP_LABELS_KEPT]; /* label k's inference at k modulo the history */
    uint32_t count;                     /* labels taken since boot or RESET */
} td_app_labels_t;

/* What a HEARTBEAT summarizes: the inferences since the previous one (its window), and when
 * each alarm type latched. Kept by the app, not the monitor, whose state is budgeted. */
typedef struct {
    uint16_t inferences; /* at most the interval, a u16 */
    uint16_t class_counts[TD_PROTO_HEARTBEAT_CLASSES];
    int32_t cusum_max[TD_SCORE_COUNT]; /* CUSUMs are never negative: 0 is a fine start */
    uint32_t confidence_sum;
    uint64_t entropy_sum; /* Q16 nats: 65,535 inferences of up to ln(256) overflow 32 bits */
} td_app_heartbeat_window_t;

typedef struct {
    td_app_heartbeat_window_t window;
    uint32_t latched_at[TD_PROTO_ALARM_TYPES]; /* first inference showing type k latched, 0: not yet */
} td_app_heartbeat_t;

typedef struct {
    td_app_options_t options;
#if TD_APP_STREAMING
    td_app_stream_t stream;
    uint32_t inferences; /* since boot or RESET: the DETECTION frames' index */
    td_app_wakes_t wakes;
#else
#if !TD_APP_IMAGE
    td_app_window_t window;
#endif
#endif
#if TD_APP_HAS_MONITOR
    td_app_heartbeat_t heartbeat;
    td_app_labels_t labels_taken;
#endif
    /* The replayed clip in progress (AUDIO frames; IMAGE frames in a camera build): the
     * offset expected next, in samples (bytes). */
    uint32_t clip_expected_offset;
    uint8_t clip_open;
    uint8_t stream_is_clip; /* the window holds a replayed clip, not the continuous stream */

#if !TD_APP_IMAGE
    td_frontend_t frontend;
#else
    td_sensor_image_t camera_sensor; /* the previous frame, for a stuck camera */
#endif
    int16_t summary[TD_MONITOR_MAX_SUMMARY];
#if TD_APP_HAS_MONITOR
    td_monitor_state_t monitor;
    uint8_t reference_kept; /* this run's monitor reference is in the port's keep (restored or saved) */
    uint8_t reference_restored; /* ...and it came from there at boot */
#endif
#if !TD_APP_STREAMING
    uint8_t predicted_history[TD_APP_LABEL_HISTORY]; /* by inference index modulo */
#endif

    td_proto_decoder_t decoder;
    td_proto_frame_t command; /* the command being decoded (holds up to 256 samples) */
    td_proto_frame_t reply;
    uint8_t wire[TD_PROTO_MAX_WIRE];
    uint8_t model_hash[TD_PROTO_MODEL_HASH_BYTES];
    uint32_t tx_seq;
    uint32_t rx_frames; /* valid commands received */
    uint32_t rx_errors; /* corrupt command runs received */
    uint32_t inferences_total; /* since boot, across resets */
} td_app_t;

/* The defaults: stride TD_APP_DEFAULT_STRIDE, tracing on, a heartbeat every
 * TD_APP_HEARTBEAT_INTERVAL inferences beside them (TD_APP_HEARTBEAT_ONLY: instead). */
td_app_options_t td_app_default_options(void);

/* Checks the options and the generated monitor config, clears every state and sends
 * HELLO. Returns 0, or a negative value (nothing is sent) for invalid options (-1) or a
 * monitor config this build cannot hold (-2). */
int td_app_init(td_app_t *app, const td_app_options_t *options);

/* Bytes received from the host: decodes frames, runs each command (an AUDIO chunk that
 * completes a window runs its inference) and answers with ACK. */
void td_app_receive(td_app_t *app, const uint8_t *bytes, size_t count);

/* Samples of the continuous stream (microphone, audio file): every completed window runs
 * an inference. A replayed clip in progress is abandoned (the stream takes the window).
 * A camera build has no audio stream and takes no samples. */
void td_app_push_samples(td_app_t *app, const int16_t *samples, size_t count);

#if TD_APP_IMAGE
/* One camera frame, TD_APP_IMAGE_BYTES uint8 values (rows of RGB pixels): runs its
 * inference. A replayed image in progress is abandoned. */
void td_app_push_image(td_app_t *app, const uint8_t *pixels);
#endif

/* Sends BYE with `exit_code`; the caller then ends (td_port_exit). */
void td_app_bye(td_app_t *app, uint32_t exit_code);

/* Sends one frame (encoded in app->wire) with the next sequence number. */
void td_app_send(td_app_t *app, td_proto_frame_t *frame);

/* Internal steps, one file each, exposed for tests. */
void td_app_restart_stream(td_app_t *app); /* a new stream starts: no samples of the last one count */
void td_app_feed(td_app_t *app, const int16_t *samples, size_t count); /* the current stream's samples */
#if TD_APP_STREAMING
void td_app_stream_start(td_app_t *app); /* a new stream: front end, model state, detector */
void td_app_stream_push(td_app_t *app, const int16_t *samples, size_t count);
/* Whether the detector woke at inference `index`: 1 or 0, or -1 when it cannot tell (not yet
 * made, or older than the wakes it keeps). */
int32_t td_app_stream_woke_at(const td_app_t *app, uint32_t index);
#else
#if !TD_APP_IMAGE
void td_app_window_start(td_app_window_t *window, uint32_t stride);
size_t td_app_window_append(td_app_window_t *window, const int16_t *samples, size_t count);
int td_app_window_full(const td_app_window_t *window);
void td_app_window_pad(td_app_window_t *window);
void td_app_window_advance(td_app_window_t *window);
#endif
void td_app_infer(td_app_t *app); /* on the window (a camera build: on the model's input as filled) */
#endif
#if TD_APP_HAS_MONITOR
void td_app_send_inference(td_app_t *app, const td_monitor_result_t *result); /* the INFERENCE frame */
void td_app_heartbeat_clear(td_app_heartbeat_t *heartbeat); /* after RESET: latch times too */
void td_app_heartbeat_add(td_app_t *app, const td_monitor_result_t *result); /* may send HEARTBEAT */
const td_monitor_config_t *td_app_monitor_config(void); /* the generated model's */
/* The monitor's reference across power cycles (td_app_keep.c): taken back at boot, kept
 * once commissioning finishes (call after every update), forgotten by RESET. */
void td_app_keep_restore(td_app_t *app);
void td_app_keep_after_update(td_app_t *app);
void td_app_keep_forget(td_app_t *app);
/* A text line for people and the capture once a reference is in effect, kept or just learned:
 * "tinydrift app reference=kept|learned dead=3.1%", the share of the sensor's blocks that
 * were dead while it was learned (the test of a sensor that fails on and off allows that
 * much, plus its margin): a sensor already failing as it was installed shows here. */
void td_app_print_reference(const td_app_t *app, const char *how);
#endif
void td_app_fill_hello(const td_app_t *app, td_proto_hello_t *hello); /* as sent at boot; STATUS's tail too */
void td_app_send_hello(td_app_t *app);

#ifdef __cplusplus
}
#endif

#endif /* TD_APP_H */
