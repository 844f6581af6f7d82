/* Packet validation and unpacking. Checks run in a fixed order so that the host twin
 * reports the same error for the same bytes: length, CRC, version, type, payload length. */
#include "td_protocol.h"
#include "td_proto_bytes.h"

#include <string.h>

/* CRC-32 of a message followed by its own CRC (little-endian) is this constant. */
#define TD_CRC32_RESIDUE 0x2144DF1Cu

int td_proto_is_text_byte(uint8_t byte) {
    return byte == 0x09u || byte == 0x0Au || byte == 0x0Du || (byte >= 0x20u && byte <= 0x7Eu);
}

int32_t td_proto_payload_bytes(uint8_t type) {
    switch (type) {
    case TD_FRAME_HELLO: return (int32_t)TD_PROTO_HELLO_BYTES;
    case TD_FRAME_INFERENCE: return (int32_t)TD_PROTO_INFERENCE_BYTES;
    case TD_FRAME_STATUS: return (int32_t)TD_PROTO_STATUS_BYTES;
    case TD_FRAME_ACK: return (int32_t)TD_PROTO_ACK_BYTES;
    case TD_FRAME_BYE: return (int32_t)TD_PROTO_BYE_BYTES;
    case TD_FRAME_TRACE: return (int32_t)TD_PROTO_TRACE_BYTES;
    case TD_FRAME_HEARTBEAT: return (int32_t)TD_PROTO_HEARTBEAT_BYTES;
    case TD_FRAME_DETECTION: return (int32_t)TD_PROTO_DETECTION_BYTES;
    case TD_FRAME_RESET: return (int32_t)TD_PROTO_RESET_BYTES;
    case TD_FRAME_LABEL: return (int32_t)TD_PROTO_LABEL_BYTES;
    case TD_FRAME_AUDIO: return (int32_t)TD_PROTO_AUDIO_HEADER_BYTES;
    case TD_FRAME_STATUS_REQUEST: return (int32_t)TD_PROTO_STATUS_REQUEST_BYTES;
    case TD_FRAME_CONFIG: return (int32_t)TD_PROTO_CONFIG_BYTES;
    case TD_FRAME_IMAGE: return (int32_t)TD_PROTO_IMAGE_HEADER_BYTES;
    default: return -1;
    }
}

static void td_get_scores(const uint8_t *p, int32_t *values) {
    for (unsigned i = 0; i < TD_PROTO_N_SCORES; ++i) values[i] = td_get_i32(p + 4u * i);
}

/* HELLO's payload, with its device_id and boot_count if `v4` (else 0); also a STATUS's tail (v5). */
static void td_unpack_hello(const uint8_t *p, int v4, td_proto_hello_t *h) {
    memcpy(h->model_hash, p, TD_PROTO_MODEL_HASH_BYTES);
    h->fw_major = p[32];
    h->fw_minor = p[33];
    h->fw_patch = td_get_u16(p + 34);
    h->state_bytes = td_get_u32(p + 36);
    h->n_classes = p[40];
    h->n_channels = p[41];
    h->score_frac_bits = p[42];
    h->n_scores = p[43];
    td_get_scores(p + 44, h->warning_threshold);
    td_get_scores(p + 76, h->drift_threshold);
    h->device_id = v4 ? td_get_u64(p + 108) : 0u;
    h->boot_count = v4 ? td_get_u32(p + 116) : 0u;
}

static void td_unpack(const uint8_t *p, size_t payload, td_proto_frame_t *f) {
    switch (f->type) {
    case TD_FRAME_HELLO:
        td_unpack_hello(p, payload == TD_PROTO_HELLO_BYTES, &f->body.hello);
        break;
    case TD_FRAME_INFERENCE: {
        td_proto_inference_t *r = &f->body.inference;
        r->inference_index = td_get_u32(p);
        memcpy(r->model_id, p + 4, TD_PROTO_MODEL_ID_BYTES);
        r->predicted_class = p[12];
        r->confidence = p[13];
        r->alarm_bits = td_get_u16(p + 14);
        r->entropy = td_get_u32(p + 16);
        r->atc = td_get_u32(p + 20);
        r->moved_channels = td_get_u64(p + 24);
        r->change_index = td_get_u32(p + 32);
        td_get_scores(p + 36, r->scores);
        r->alarm_index = payload == TD_PROTO_INFERENCE_BYTES ? td_get_u32(p + 68) : 0u;
        break;
    }
    case TD_FRAME_STATUS: {
        td_proto_status_t *s = &f->body.status;
        s->uptime_ms = td_get_u32(p);
        s->state_bytes = td_get_u32(p + 4);
        s->inferences = td_get_u32(p + 8);
        s->rx_frames = td_get_u32(p + 12);
        s->rx_errors = td_get_u32(p + 16);
        memcpy(s->model_hash, p + 20, TD_PROTO_MODEL_HASH_BYTES);
        const int v3 = payload >= TD_PROTO_STATUS_V4_BYTES;
        s->labels = v3 ? td_get_u32(p + 52) : 0u;
        s->label_errors = v3 ? td_get_u32(p + 56) : 0u;
        if (payload == TD_PROTO_STATUS_BYTES) {
            td_unpack_hello(p + TD_PROTO_STATUS_V4_BYTES, 1, &s->hello);
        } else {
            memset(&s->hello, 0, sizeof s->hello);
        }
        break;
    }
    case TD_FRAME_ACK:
        f->body.ack.command_seq = td_get_u32(p);
        f->body.ack.detail = td_get_u32(p + 4);
        f->body.ack.command_type = p[8];
        f->body.ack.result = p[9];
        break;
    case TD_FRAME_BYE:
        f->body.bye.exit_code = td_get_u32(p);
        f->body.bye.inferences = td_get_u32(p + 4);
        break;
    case TD_FRAME_TRACE: {
        td_proto_trace_t *r = &f->body.trace;
        r->inference_index = td_get_u32(p);
        r->n_summary = p[4];
        r->n_outputs = p[5];
        r->window_end = td_get_u32(p + 8);
        r->cycles_frontend = td_get_u32(p + 12);
        r->cycles_model = td_get_u32(p + 16);
        r->cycles_sensor = td_get_u32(p + 20);
        r->cycles_monitor = td_get_u32(p + 24);
        for (unsigned i = 0; i < TD_PROTO_TRACE_SUMMARY; ++i) r->summary[i] = td_get_i16(p + 28u + 2u * i);
        for (unsigned i = 0; i < TD_PROTO_TRACE_OUTPUTS; ++i) r->outputs[i] = td_get_i8(p + 156u + i);
        break;
    }
    case TD_FRAME_HEARTBEAT: {
        td_proto_heartbeat_t *h = &f->body.heartbeat;
        h->inference_index = td_get_u32(p);
        h->uptime_ms = td_get_u32(p + 4);
        h->alarm_index = td_get_u32(p + 8);
        h->change_index = td_get_u32(p + 12);
        h->moved_channels = td_get_u64(p + 16);
        h->alarm_bits = td_get_u16(p + 24);
        h->window = td_get_u16(p + 26);
        for (unsigned i = 0; i < TD_PROTO_ALARM_TYPES; ++i) h->latch_delay[i] = td_get_u16(p + 28u + 2u * i);
        for (unsigned i = 0; i < TD_PROTO_ALARM_TYPES; ++i) h->cusum_max[i] = td_get_u16(p + 38u + 2u * i);
        h->mean_entropy = td_get_u16(p + 48);
        h->atc = p[50];
        h->mean_confidence = p[51];
        memcpy(h->class_share, p + 52, TD_PROTO_HEARTBEAT_CLASSES);
        break;
    }
    case TD_FRAME_DETECTION: {
        td_proto_detection_t *d = &f->body.detection;
        d->inference_index = td_get_u32(p);
        memcpy(d->model_id, p + 4, TD_PROTO_MODEL_ID_BYTES);
        d->probability = p[12];
        d->window_mean = p[13];
        d->flags = p[14];
        d->stream_position = td_get_u32(p + 16); /* p[15] is reserved */
        break;
    }
    case TD_FRAME_CONFIG:
        f->body.config.heartbeat_interval = td_get_u16(p);
        f->body.config.flags = td_get_u16(p + 2);
        break;
    case TD_FRAME_LABEL:
        f->body.label.inference_index = td_get_u32(p);
        f->body.label.label = p[4];
        break;
    case TD_FRAME_AUDIO: {
        td_proto_audio_t *a = &f->body.audio;
        a->sample_offset = td_get_u32(p);
        a->n_samples = td_get_u16(p + 4);
        a->flags = td_get_u16(p + 6);
        for (unsigned i = 0; i < a->n_samples; ++i) a->samples[i] = td_get_i16(p + 8u + 2u * i);
        break;
    }
    case TD_FRAME_IMAGE: {
        td_proto_image_t *m = &f->body.image;
        m->byte_offset = td_get_u32(p);
        m->n_bytes = td_get_u16(p + 4);
        m->flags = td_get_u16(p + 6);
        m->height = p[8];
        m->width = p[9];
        m->channels = p[10]; /* p[11] is reserved */
        for (unsigned i = 0; i < m->n_bytes; ++i) m->pixels[i] = p[TD_PROTO_IMAGE_HEADER_BYTES + i];
        break;
    }
    default:
        break;
    }
}

td_proto_result_t td_proto_parse_packet(const uint8_t *packet, size_t length,
                                        td_proto_frame_t *frame) {
    if (length < TD_PROTO_MIN_PACKET) return TD_PROTO_ERR_SHORT;
    if (length > TD_PROTO_MAX_PACKET) return TD_PROTO_ERR_OVERFLOW;
    if (td_crc32_update(0, packet, length) != TD_CRC32_RESIDUE) return TD_PROTO_ERR_CRC;
    const uint8_t version = packet[1];
    if (version < TD_PROTO_VERSION_1 || version > TD_PROTO_VERSION) return TD_PROTO_ERR_VERSION;
    uint8_t type = packet[2];
    int32_t expected = td_proto_payload_bytes(type);
    if (expected < 0) return TD_PROTO_ERR_TYPE;
    if (version == TD_PROTO_VERSION_1 && type == TD_FRAME_INFERENCE) {
        expected = (int32_t)TD_PROTO_INFERENCE_V1_BYTES;
    }
    if (version < TD_PROTO_VERSION && type == TD_FRAME_STATUS) {
        expected = (int32_t)(version < TD_PROTO_VERSION_3 ? TD_PROTO_STATUS_V2_BYTES : TD_PROTO_STATUS_V4_BYTES);
    }
    if (version < TD_PROTO_VERSION_4 && type == TD_FRAME_HELLO) {
        expected = (int32_t)TD_PROTO_HELLO_V3_BYTES;
    }
    size_t payload = length - TD_PROTO_MIN_PACKET;
    const uint8_t *p = packet + TD_PROTO_HEADER_BYTES;
    if (type == TD_FRAME_AUDIO) {
        if (payload < TD_PROTO_AUDIO_HEADER_BYTES) return TD_PROTO_ERR_LENGTH;
        uint16_t n = td_get_u16(p + 4);
        if (n > TD_PROTO_AUDIO_MAX_SAMPLES || payload != TD_PROTO_AUDIO_HEADER_BYTES + 2u * (size_t)n) {
            return TD_PROTO_ERR_LENGTH;
        }
    } else if (type == TD_FRAME_IMAGE) {
        if (payload < TD_PROTO_IMAGE_HEADER_BYTES) return TD_PROTO_ERR_LENGTH;
        uint16_t n = td_get_u16(p + 4);
        if (n > TD_PROTO_IMAGE_MAX_BYTES || payload != TD_PROTO_IMAGE_HEADER_BYTES + (size_t)n) {
            return TD_PROTO_ERR_LENGTH;
        }
    } else if (payload != (size_t)expected) {
        return TD_PROTO_ERR_LENGTH;
    }
    frame->type = type;
    frame->seq = td_get_u32(packet + 3);
    td_unpack(p, payload, frame);
    return TD_PROTO_FRAME;
}
