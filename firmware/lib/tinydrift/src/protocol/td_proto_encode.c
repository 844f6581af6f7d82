/* Frame encoder: packs the fields little-endian and COBS-encodes them on the fly into the
 * caller's buffer, computing the CRC as it goes, so no packet-sized scratch buffer is needed. */
#include "td_protocol.h"

typedef struct {
    uint8_t *out;
    size_t capacity;
    size_t pos;       /* next byte to write */
    size_t code_pos;  /* where the current block's code byte goes */
    uint8_t code;     /* 1 + data bytes in the current block */
    uint8_t block_open;
    uint8_t overflow;
    uint32_t crc;
} td_cobs_writer_t;

static void td_writer_open_block(td_cobs_writer_t *w) {
    if (w->pos >= w->capacity) {
        w->overflow = 1;
        return;
    }
    w->code_pos = w->pos++;
    w->code = 1;
    w->block_open = 1;
}

static void td_writer_close_block(td_cobs_writer_t *w) {
    w->out[w->code_pos] = w->code;
    w->block_open = 0;
}

/* One packet byte through COBS: a zero ends the block; 254 data bytes fill it (code 0xFF,
 * no zero implied) and the next block opens only if more bytes follow. */
static void td_writer_cobs(td_cobs_writer_t *w, uint8_t byte) {
    if (w->overflow) return;
    if (!w->block_open) {
        td_writer_open_block(w);
        if (w->overflow) return;
    }
    if (byte == 0u) {
        td_writer_close_block(w);
        td_writer_open_block(w);
        return;
    }
    if (w->pos >= w->capacity) {
        w->overflow = 1;
        return;
    }
    w->out[w->pos++] = byte;
    if (++w->code == 0xFFu) td_writer_close_block(w);
}

static void td_put_u8(td_cobs_writer_t *w, uint8_t value) {
    w->crc = td_crc32_update(w->crc, &value, 1);
    td_writer_cobs(w, value);
}

static void td_put_u16(td_cobs_writer_t *w, uint16_t value) {
    td_put_u8(w, (uint8_t)(value & 0xFFu));
    td_put_u8(w, (uint8_t)(value >> 8));
}

static void td_put_u32(td_cobs_writer_t *w, uint32_t value) {
    for (unsigned shift = 0; shift < 32u; shift += 8u) td_put_u8(w, (uint8_t)((value >> shift) & 0xFFu));
}

static void td_put_u64(td_cobs_writer_t *w, uint64_t value) {
    td_put_u32(w, (uint32_t)(value & 0xFFFFFFFFu));
    td_put_u32(w, (uint32_t)(value >> 32));
}

static void td_put_bytes(td_cobs_writer_t *w, const uint8_t *data, size_t n) {
    for (size_t i = 0; i < n; ++i) td_put_u8(w, data[i]);
}

static void td_put_scores(td_cobs_writer_t *w, const int32_t *values) {
    for (unsigned i = 0; i < TD_PROTO_N_SCORES; ++i) td_put_u32(w, (uint32_t)values[i]);
}

/* HELLO's payload: the frame's own, and the tail of a STATUS (v5). */
static void td_put_hello(td_cobs_writer_t *w, const td_proto_hello_t *h) {
    td_put_bytes(w, h->model_hash, TD_PROTO_MODEL_HASH_BYTES);
    td_put_u8(w, h->fw_major);
    td_put_u8(w, h->fw_minor);
    td_put_u16(w, h->fw_patch);
    td_put_u32(w, h->state_bytes);
    td_put_u8(w, h->n_classes);
    td_put_u8(w, h->n_channels);
    td_put_u8(w, h->score_frac_bits);
    td_put_u8(w, h->n_scores);
    td_put_scores(w, h->warning_threshold);
    td_put_scores(w, h->drift_threshold);
    td_put_u64(w, h->device_id);
    td_put_u32(w, h->boot_count);
}

static void td_put_payload(td_cobs_writer_t *w, const td_proto_frame_t *f) {
    switch (f->type) {
    case TD_FRAME_HELLO:
        td_put_hello(w, &f->body.hello);
        break;
    case TD_FRAME_INFERENCE: {
        const td_proto_inference_t *r = &f->body.inference;
        td_put_u32(w, r->inference_index);
        td_put_bytes(w, r->model_id, TD_PROTO_MODEL_ID_BYTES);
        td_put_u8(w, r->predicted_class);
        td_put_u8(w, r->confidence);
        td_put_u16(w, r->alarm_bits);
        td_put_u32(w, r->entropy);
        td_put_u32(w, r->atc);
        td_put_u64(w, r->moved_channels);
        td_put_u32(w, r->change_index);
        td_put_scores(w, r->scores);
        td_put_u32(w, r->alarm_index);
        break;
    }
    case TD_FRAME_STATUS: {
        const td_proto_status_t *s = &f->body.status;
        td_put_u32(w, s->uptime_ms);
        td_put_u32(w, s->state_bytes);
        td_put_u32(w, s->inferences);
        td_put_u32(w, s->rx_frames);
        td_put_u32(w, s->rx_errors);
        td_put_bytes(w, s->model_hash, TD_PROTO_MODEL_HASH_BYTES);
        td_put_u32(w, s->labels);
        td_put_u32(w, s->label_errors);
        td_put_hello(w, &s->hello);
        break;
    }
    case TD_FRAME_ACK:
        td_put_u32(w, f->body.ack.command_seq);
        td_put_u32(w, f->body.ack.detail);
        td_put_u8(w, f->body.ack.command_type);
        td_put_u8(w, f->body.ack.result);
        break;
    case TD_FRAME_BYE:
        td_put_u32(w, f->body.bye.exit_code);
        td_put_u32(w, f->body.bye.inferences);
        break;
    case TD_FRAME_TRACE: {
        const td_proto_trace_t *r = &f->body.trace;
        td_put_u32(w, r->inference_index);
        td_put_u8(w, r->n_summary);
        td_put_u8(w, r->n_outputs);
        td_put_u16(w, 0u); /* reserved */
        td_put_u32(w, r->window_end);
        td_put_u32(w, r->cycles_frontend);
        td_put_u32(w, r->cycles_model);
        td_put_u32(w, r->cycles_sensor);
        td_put_u32(w, r->cycles_monitor);
        for (unsigned i = 0; i < TD_PROTO_TRACE_SUMMARY; ++i) td_put_u16(w, (uint16_t)r->summary[i]);
        for (unsigned i = 0; i < TD_PROTO_TRACE_OUTPUTS; ++i) td_put_u8(w, (uint8_t)r->outputs[i]);
        break;
    }
    case TD_FRAME_HEARTBEAT: {
        const td_proto_heartbeat_t *h = &f->body.heartbeat;
        td_put_u32(w, h->inference_index);
        td_put_u32(w, h->uptime_ms);
        td_put_u32(w, h->alarm_index);
        td_put_u32(w, h->change_index);
        td_put_u64(w, h->moved_channels);
        td_put_u16(w, h->alarm_bits);
        td_put_u16(w, h->window);
        for (unsigned i = 0; i < TD_PROTO_ALARM_TYPES; ++i) td_put_u16(w, h->latch_delay[i]);
        for (unsigned i = 0; i < TD_PROTO_ALARM_TYPES; ++i) td_put_u16(w, h->cusum_max[i]);
        td_put_u16(w, h->mean_entropy);
        td_put_u8(w, h->atc);
        td_put_u8(w, h->mean_confidence);
        td_put_bytes(w, h->class_share, TD_PROTO_HEARTBEAT_CLASSES);
        break;
    }
    case TD_FRAME_DETECTION: {
        const td_proto_detection_t *d = &f->body.detection;
        td_put_u32(w, d->inference_index);
        td_put_bytes(w, d->model_id, TD_PROTO_MODEL_ID_BYTES);
        td_put_u8(w, d->probability);
        td_put_u8(w, d->window_mean);
        td_put_u8(w, d->flags);
        td_put_u8(w, 0u); /* reserved */
        td_put_u32(w, d->stream_position);
        break;
    }
    case TD_FRAME_CONFIG:
        td_put_u16(w, f->body.config.heartbeat_interval);
        td_put_u16(w, f->body.config.flags);
        break;
    case TD_FRAME_LABEL:
        td_put_u32(w, f->body.label.inference_index);
        td_put_u8(w, f->body.label.label);
        break;
    case TD_FRAME_AUDIO: {
        const td_proto_audio_t *a = &f->body.audio;
        td_put_u32(w, a->sample_offset);
        td_put_u16(w, a->n_samples);
        td_put_u16(w, a->flags);
        for (unsigned i = 0; i < a->n_samples; ++i) td_put_u16(w, (uint16_t)a->samples[i]);
        break;
    }
    case TD_FRAME_IMAGE: {
        const td_proto_image_t *m = &f->body.image;
        td_put_u32(w, m->byte_offset);
        td_put_u16(w, m->n_bytes);
        td_put_u16(w, m->flags);
        td_put_u8(w, m->height);
        td_put_u8(w, m->width);
        td_put_u8(w, m->channels);
        td_put_u8(w, 0u); /* reserved */
        td_put_bytes(w, m->pixels, m->n_bytes);
        break;
    }
    default: /* RESET, STATUS_REQUEST: no payload */
        break;
    }
}

int32_t td_proto_encode(const td_proto_frame_t *frame, uint8_t *out, size_t capacity) {
    if (td_proto_payload_bytes(frame->type) < 0) return TD_PROTO_ERR_TYPE;
    if (frame->type == TD_FRAME_AUDIO && frame->body.audio.n_samples > TD_PROTO_AUDIO_MAX_SAMPLES) {
        return TD_PROTO_ERR_LENGTH;
    }
    if (frame->type == TD_FRAME_IMAGE && frame->body.image.n_bytes > TD_PROTO_IMAGE_MAX_BYTES) {
        return TD_PROTO_ERR_LENGTH;
    }
    if (capacity < 2u) return TD_PROTO_ERR_BUFFER;
    td_cobs_writer_t w = {out, capacity, 0, 0, 0, 0, 0, 0};
    out[w.pos++] = 0x00u; /* leading delimiter: ends any text or noise before the frame */
    td_writer_open_block(&w);
    td_put_u8(&w, 0x00u); /* sync: makes the first COBS byte 0x01 */
    td_put_u8(&w, (uint8_t)TD_PROTO_VERSION_OF(frame->type));
    td_put_u8(&w, frame->type);
    td_put_u32(&w, frame->seq);
    td_put_payload(&w, frame);
    uint32_t crc = w.crc;
    for (unsigned shift = 0; shift < 32u; shift += 8u) td_writer_cobs(&w, (uint8_t)((crc >> shift) & 0xFFu));
    if (w.overflow) return TD_PROTO_ERR_BUFFER;
    if (w.block_open) td_writer_close_block(&w);
    if (w.pos >= w.capacity) return TD_PROTO_ERR_BUFFER;
    out[w.pos++] = 0x00u;
    return (int32_t)w.pos;
}
