/* tinydrift serial protocol: framed, CRC-checked log from the device and commands to it.
 *
 * docs/protocol.md is the specification (byte-by-byte layouts, the text/frame rule, the
 * choice of CRC); host/tinydrift/link/protocol.py is the host twin. Everything here is
 * allocation-free: the encoder writes into a caller buffer, the decoder consumes one byte at
 * a time into a bounded buffer held in its caller-owned state.
 *
 * Wire form of one frame:  0x00, COBS(packet), 0x00
 * packet = sync(0x00) version type seq[u32 LE] payload crc32[u32 LE]
 * The leading sync byte makes the first COBS byte of every frame 0x01, a byte that text never
 * contains, so a receiver knows from the first byte after a 0x00 whether a frame or text
 * follows.
 */
#ifndef TD_PROTOCOL_H
#define TD_PROTOCOL_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define TD_PROTO_VERSION 5u
/* Read as well: version 4 differs in STATUS, which did not end with the device's HELLO (60
 * bytes); version 3 also in HELLO, which had no device_id and boot_count (108 bytes), and had
 * no HEARTBEAT or CONFIG; version 2 also in STATUS, which had no labels and label_errors (52
 * bytes); version 1 also in INFERENCE, which had no alarm_index (68 bytes). */
#define TD_PROTO_VERSION_4 4u
#define TD_PROTO_VERSION_3 3u
/* Commands (host -> device, types from 0x80) go as the newest version whose layouts they all
 * still have, so a device on protocol 4 takes them from a newer host; a frame of the device
 * goes as TD_PROTO_VERSION. */
#define TD_PROTO_COMMAND_VERSION TD_PROTO_VERSION_4
#define TD_PROTO_VERSION_OF(type) ((uint8_t)(type) >= 0x80u ? TD_PROTO_COMMAND_VERSION : TD_PROTO_VERSION)
#define TD_PROTO_VERSION_2 2u
#define TD_PROTO_VERSION_1 1u

#define TD_PROTO_N_SCORES 8u
#define TD_PROTO_MODEL_HASH_BYTES 32u
#define TD_PROTO_MODEL_ID_BYTES 8u /* first bytes of the SHA-256 model hash */
#define TD_PROTO_AUDIO_MAX_SAMPLES 256u /* 512 bytes of PCM per AUDIO frame */
#define TD_PROTO_IMAGE_MAX_BYTES 508u /* pixel bytes per IMAGE frame: its payload is at most AUDIO's */
#define TD_PROTO_TRACE_SUMMARY 64u /* TRACE: input summary slots (td_monitor's maximum) */
#define TD_PROTO_TRACE_OUTPUTS 16u /* TRACE: model output slots */
#define TD_PROTO_HEARTBEAT_CLASSES 12u /* HEARTBEAT: class shares (classes beyond: not reported) */

/* Packet framing. */
#define TD_PROTO_HEADER_BYTES 7u /* sync, version, type, seq */
#define TD_PROTO_CRC_BYTES 4u
#define TD_PROTO_MIN_PACKET (TD_PROTO_HEADER_BYTES + TD_PROTO_CRC_BYTES)

/* Payload sizes, in bytes (fixed per type; AUDIO is 8 + 2 * n_samples, IMAGE 12 + n_bytes). */
#define TD_PROTO_HELLO_BYTES 120u
#define TD_PROTO_HELLO_V3_BYTES 108u
#define TD_PROTO_INFERENCE_BYTES 72u
#define TD_PROTO_INFERENCE_V1_BYTES 68u
#define TD_PROTO_STATUS_BYTES (TD_PROTO_STATUS_V4_BYTES + TD_PROTO_HELLO_BYTES)
#define TD_PROTO_STATUS_V4_BYTES 60u
#define TD_PROTO_STATUS_V2_BYTES 52u
#define TD_PROTO_ACK_BYTES 10u
#define TD_PROTO_BYE_BYTES 8u
#define TD_PROTO_TRACE_BYTES 172u
#define TD_PROTO_HEARTBEAT_BYTES 64u /* fits one BLE, LoRaWAN or cellular-IoT message */
#define TD_PROTO_DETECTION_BYTES 20u
#define TD_PROTO_RESET_BYTES 0u
#define TD_PROTO_LABEL_BYTES 5u
#define TD_PROTO_AUDIO_HEADER_BYTES 8u
#define TD_PROTO_STATUS_REQUEST_BYTES 0u
#define TD_PROTO_CONFIG_BYTES 4u
#define TD_PROTO_IMAGE_HEADER_BYTES 12u
#define TD_PROTO_MAX_PAYLOAD (TD_PROTO_AUDIO_HEADER_BYTES + 2u * TD_PROTO_AUDIO_MAX_SAMPLES)

#define TD_PROTO_MAX_PACKET (TD_PROTO_HEADER_BYTES + TD_PROTO_MAX_PAYLOAD + TD_PROTO_CRC_BYTES)
/* COBS adds one byte per started 254-byte block; plus the two 0x00 delimiters. */
#define TD_PROTO_MAX_WIRE (TD_PROTO_MAX_PACKET + TD_PROTO_MAX_PACKET / 254u + 3u)

/* Frame types: device -> host below 0x80, host -> device from 0x80. */
typedef enum {
    TD_FRAME_HELLO = 0x01,
    TD_FRAME_INFERENCE = 0x02,
    TD_FRAME_STATUS = 0x03,
    TD_FRAME_ACK = 0x04,
    TD_FRAME_BYE = 0x05,
    TD_FRAME_TRACE = 0x06,
    TD_FRAME_HEARTBEAT = 0x07,
    TD_FRAME_DETECTION = 0x08,
    TD_FRAME_RESET = 0x81,
    TD_FRAME_LABEL = 0x82,
    TD_FRAME_AUDIO = 0x83,
    TD_FRAME_STATUS_REQUEST = 0x84,
    TD_FRAME_CONFIG = 0x85,
    TD_FRAME_IMAGE = 0x86
} td_frame_type_t;

/* INFERENCE.scores[i] and the HELLO thresholds of slot i: the drift monitor's CUSUMs in
 * td_monitor.h order (TD_SCORE_MEAN, _VAR, _CONF, _ENTROPY, _LABEL) in Q12; slots from
 * HELLO.n_scores on are application-defined and sent as 0 when unused.
 * INFERENCE.alarm_bits is td_monitor's alarm word: latched alarms by type in bits 0-4
 * (DATA_DRIFT, CONFIDENCE_DRIFT, LABEL_SHIFT, ERROR_RATE, SENSOR_FAULT), live warnings of
 * the same types in bits 8-12. */
#define TD_PROTO_ALARM_TYPES 5u

/* AUDIO flags. */
#define TD_AUDIO_FLAG_START 0x0001u /* first chunk of a clip: sample_offset is 0 */
#define TD_AUDIO_FLAG_END 0x0002u   /* last chunk of a clip: the device may run inference */

/* IMAGE flags. */
#define TD_IMAGE_FLAG_START 0x0001u /* first chunk of an image: byte_offset is 0 */
#define TD_IMAGE_FLAG_END 0x0002u   /* last chunk: the image is whole, the device runs inference */

/* CONFIG flags. */
#define TD_CONFIG_FLAG_HEARTBEAT_ONLY 0x0001u /* no INFERENCE or TRACE frames, heartbeats only */

#define TD_DETECTION_FLAG_WAKE 0x01u    /* the window's mean passed the cutoff: a detection */
#define TD_DETECTION_FLAG_COOLING 0x02u /* after a detection or a stream's start: detections held off */

/* HEARTBEAT.latch_delay: the alarm type has not latched; delays saturate one below. */
#define TD_PROTO_NOT_LATCHED 0xFFFFu

/* Results of the decoder and the encoder. Errors are negative. */
typedef enum {
    TD_PROTO_NEED_MORE = 0, /* byte consumed, nothing complete yet */
    TD_PROTO_FRAME = 1,     /* a valid frame was decoded into *frame */
    TD_PROTO_TEXT = 2,      /* a run of text bytes ended (the device ignores text) */
    TD_PROTO_ERR_OVERFLOW = -1, /* decoded run longer than TD_PROTO_MAX_PACKET */
    TD_PROTO_ERR_COBS = -2,     /* run ended inside a COBS block */
    TD_PROTO_ERR_SHORT = -3,    /* packet shorter than header + CRC */
    TD_PROTO_ERR_CRC = -4,      /* CRC-32 mismatch */
    TD_PROTO_ERR_VERSION = -5,  /* valid CRC, unknown protocol version */
    TD_PROTO_ERR_TYPE = -6,     /* valid CRC, unknown frame type */
    TD_PROTO_ERR_LENGTH = -7,   /* payload length wrong for its type */
    TD_PROTO_ERR_GARBAGE = -8,  /* a run that is neither a frame nor clean text */
    TD_PROTO_ERR_BUFFER = -9    /* encoder: output buffer too small */
} td_proto_result_t;

typedef struct {
    uint8_t model_hash[TD_PROTO_MODEL_HASH_BYTES];
    uint8_t fw_major;
    uint8_t fw_minor;
    uint16_t fw_patch;
    uint32_t state_bytes; /* RAM held by the drift monitor's state */
    uint8_t n_classes;
    uint8_t n_channels;      /* summary channels (<= 64, one bit each in moved_channels) */
    uint8_t score_frac_bits; /* scores and thresholds are fixed point with this many fraction bits */
    uint8_t n_scores;        /* score slots in use, from slot 0 */
    int32_t warning_threshold[TD_PROTO_N_SCORES];
    int32_t drift_threshold[TD_PROTO_N_SCORES];
    uint64_t device_id;  /* names the board among others, 0 = unknown (v4) */
    uint32_t boot_count; /* boots of this board, 0 = unknown (v4) */
} td_proto_hello_t;

typedef struct {
    uint32_t inference_index; /* td_monitor's t: 1 for the first inference after a reset */
    uint8_t model_id[TD_PROTO_MODEL_ID_BYTES];
    uint8_t predicted_class;
    uint8_t confidence;  /* top softmax output in 1/256 (0..255) */
    uint16_t alarm_bits; /* latched alarms by type (bits 0-4), warnings (bits 8-12) */
    uint32_t entropy;    /* entropy of this output, Q16 nats */
    uint32_t atc;        /* label-free accuracy estimate, Q16 (65536 = 1.0) */
    uint64_t moved_channels; /* bit c: summary channel c moved */
    uint32_t change_index;   /* estimated change point (an inference index), 0 if none */
    int32_t scores[TD_PROTO_N_SCORES];
    uint32_t alarm_index;    /* inference index at which the first alarm latched, 0 if none (v2) */
} td_proto_inference_t;

typedef struct {
    uint32_t uptime_ms;
    uint32_t state_bytes;
    uint32_t inferences;
    uint32_t rx_frames; /* valid command frames received */
    uint32_t rx_errors; /* corrupt command frames received */
    uint8_t model_hash[TD_PROTO_MODEL_HASH_BYTES];
    uint32_t labels;       /* label feedback the monitor took since reset (v3) */
    uint32_t label_errors; /* ... of which disagreed with the prediction (v3) */
    /* The HELLO the device would send now (v5; zero in older frames): a host that connects
     * after the boot learns the firmware, thresholds and device id from its first STATUS. */
    td_proto_hello_t hello;
} td_proto_status_t;

typedef struct {
    uint32_t command_seq; /* seq of the command answered */
    uint32_t detail;      /* e.g. the sample offset expected after an AUDIO gap */
    uint8_t command_type;
    uint8_t result; /* 0 accepted, else an application error code */
} td_proto_ack_t;

typedef struct {
    uint32_t exit_code;
    uint32_t inferences;
} td_proto_bye_t;

/* What one inference computed, for checking the device against the host bit for bit and
 * for counting its cost: sent after its INFERENCE frame when tracing is on. */
typedef struct {
    uint32_t inference_index; /* as in the INFERENCE frame it follows */
    uint8_t n_summary;        /* summary values in use (<= TD_PROTO_TRACE_SUMMARY) */
    uint8_t n_outputs;        /* model outputs in use (<= TD_PROTO_TRACE_OUTPUTS) */
    uint32_t window_end;      /* samples of the current stream up to this window's end */
    uint32_t cycles_frontend; /* td_port_cycles() spent in the front end */
    uint32_t cycles_model;    /* ... in the model */
    uint32_t cycles_sensor;   /* ... in sensor health on the window's new samples */
    uint32_t cycles_monitor;  /* ... in the input summary and the monitor update */
    int16_t summary[TD_PROTO_TRACE_SUMMARY]; /* the monitor's input summary; unused slots 0 */
    int8_t outputs[TD_PROTO_TRACE_OUTPUTS];  /* the model's int8 output; unused slots 0 */
} td_proto_trace_t;

/* A compact drift summary of the inferences since the previous heartbeat (its window), for
 * links that cannot carry every inference (docs/protocol.md §3 gives every field's units). */
typedef struct {
    uint32_t inference_index; /* the monitor's t at the window's last inference */
    uint32_t uptime_ms;
    uint32_t alarm_index;     /* inference of the first latched alarm, 0 if none */
    uint32_t change_index;    /* its estimated change point, 0 if none */
    uint64_t moved_channels;  /* at the window's last inference */
    uint16_t alarm_bits;      /* at the window's last inference */
    uint16_t window;          /* inferences summarized (since the previous heartbeat or reset) */
    uint16_t latch_delay[TD_PROTO_ALARM_TYPES]; /* type k latched at alarm_index + this */
    uint16_t cusum_max[TD_PROTO_ALARM_TYPES];   /* max of score slot k, 256 = its drift level */
    uint16_t mean_entropy;    /* Q12 nats */
    uint8_t atc;              /* last label-free accuracy estimate, 1/256 */
    uint8_t mean_confidence;  /* 1/256 */
    uint8_t class_share[TD_PROTO_HEARTBEAT_CLASSES]; /* predictions per class, 255 = all */
} td_proto_heartbeat_t;

/* A streaming binary detector's inference (a wake-word model's, every 30 ms). */
typedef struct {
    uint32_t inference_index; /* 1 for the first inference after boot or RESET */
    uint8_t model_id[TD_PROTO_MODEL_ID_BYTES];
    uint8_t probability;      /* the model's uint8 output, 1/256 */
    uint8_t window_mean;      /* the sliding window's mean probability, rounded down */
    uint8_t flags;            /* TD_DETECTION_FLAG_* */
    uint32_t stream_position; /* samples of the current stream up to this inference's last frame */
} td_proto_detection_t;

typedef struct {
    uint32_t inference_index;
    uint8_t label;
} td_proto_label_t;

typedef struct {
    uint16_t heartbeat_interval; /* inferences per heartbeat, 0 = no heartbeats */
    uint16_t flags;              /* TD_CONFIG_FLAG_* */
} td_proto_config_t;

typedef struct {
    uint32_t sample_offset; /* position of samples[0] in the clip, in samples */
    uint16_t n_samples;     /* <= TD_PROTO_AUDIO_MAX_SAMPLES */
    uint16_t flags;
    int16_t samples[TD_PROTO_AUDIO_MAX_SAMPLES];
} td_proto_audio_t;

/* A chunk of one camera image: uint8 values, row by row, `channels` per pixel. */
typedef struct {
    uint32_t byte_offset; /* position of pixels[0] in the image, in bytes */
    uint16_t n_bytes;     /* <= TD_PROTO_IMAGE_MAX_BYTES */
    uint16_t flags;
    uint8_t height;
    uint8_t width;
    uint8_t channels;
    uint8_t pixels[TD_PROTO_IMAGE_MAX_BYTES];
} td_proto_image_t;

typedef struct {
    uint8_t type; /* td_frame_type_t */
    uint32_t seq;
    union {
        td_proto_hello_t hello;
        td_proto_inference_t inference;
        td_proto_status_t status;
        td_proto_ack_t ack;
        td_proto_bye_t bye;
        td_proto_trace_t trace;
        td_proto_heartbeat_t heartbeat;
        td_proto_detection_t detection;
        td_proto_label_t label;
        td_proto_config_t config;
        td_proto_audio_t audio;
        td_proto_image_t image;
    } body;
} td_proto_frame_t;

/* Streaming decoder state; one per input stream, owned by the caller. */
typedef struct {
    uint8_t packet[TD_PROTO_MAX_PACKET];
    uint16_t length;     /* decoded bytes held in packet */
    uint8_t block_left;  /* data bytes still expected in the current COBS block */
    uint8_t zero_pending; /* the current block ends in an implicit 0x00 */
    uint8_t mode;        /* what the current run is: none yet, frame or text */
    int8_t error;        /* first error of the current run, reported at its end */
} td_proto_decoder_t;

/* CRC-32 (IEEE 802.3 / zlib): td_crc32_update(0, data, n) equals zlib.crc32(data). */
uint32_t td_crc32_update(uint32_t crc, const uint8_t *data, size_t length);

/* 1 if the byte may appear in a text line: TAB, LF, CR, 0x20..0x7E. */
int td_proto_is_text_byte(uint8_t byte);

/* Payload length of a type, or -1 for an unknown type (AUDIO, IMAGE: their header only). */
int32_t td_proto_payload_bytes(uint8_t type);

/* Encode one frame (0x00, COBS(packet), 0x00) into out. Returns the number of bytes written,
 * or TD_PROTO_ERR_TYPE, TD_PROTO_ERR_LENGTH (AUDIO n_samples, IMAGE n_bytes too large) or
 * TD_PROTO_ERR_BUFFER. TD_PROTO_MAX_WIRE bytes always suffice. */
int32_t td_proto_encode(const td_proto_frame_t *frame, uint8_t *out, size_t capacity);

/* Validate a decoded packet (CRC, version, type, length) and unpack it into *frame. */
td_proto_result_t td_proto_parse_packet(const uint8_t *packet, size_t length,
                                        td_proto_frame_t *frame);

void td_proto_decoder_init(td_proto_decoder_t *decoder);

/* Feed one received byte. Returns TD_PROTO_FRAME when a valid frame ends with this byte
 * (then *frame holds it), TD_PROTO_TEXT when a clean text run ends, a negative error when a
 * corrupt run ends, TD_PROTO_NEED_MORE otherwise. Every run yields at most one result, at
 * the 0x00 that ends it. */
td_proto_result_t td_proto_decoder_push(td_proto_decoder_t *decoder, uint8_t byte,
                                        td_proto_frame_t *frame);

#ifdef __cplusplus
}
#endif

#endif /* TD_PROTOCOL_H */
