/* Streaming decoder: one byte at a time, COBS decoded in place into a bounded buffer. A run
 * (the bytes between two 0x00) is a frame if its first byte is 0x01, text otherwise; each run
 * yields one result at the 0x00 that ends it, so a corrupt frame is counted exactly once. */
#include "td_protocol.h"

enum { TD_RUN_NONE = 0, TD_RUN_FRAME = 1, TD_RUN_TEXT = 2 };

void td_proto_decoder_init(td_proto_decoder_t *decoder) {
    decoder->length = 0;
    decoder->block_left = 0;
    decoder->zero_pending = 0;
    decoder->mode = TD_RUN_NONE;
    decoder->error = 0;
}

static td_proto_result_t td_decoder_end_run(td_proto_decoder_t *d, td_proto_frame_t *frame) {
    switch (d->mode) {
    case TD_RUN_TEXT:
        return d->error ? (td_proto_result_t)d->error : TD_PROTO_TEXT;
    case TD_RUN_FRAME:
        if (d->error) return (td_proto_result_t)d->error;
        if (d->block_left != 0u) return TD_PROTO_ERR_COBS;
        /* the zero implied by the last block is not data: the packet ends here */
        return td_proto_parse_packet(d->packet, d->length, frame);
    default:
        return TD_PROTO_NEED_MORE; /* empty run, e.g. the two 0x00 between frames */
    }
}

static void td_decoder_append(td_proto_decoder_t *d, uint8_t byte) {
    if (d->length >= TD_PROTO_MAX_PACKET) {
        d->error = (int8_t)TD_PROTO_ERR_OVERFLOW;
        return;
    }
    d->packet[d->length++] = byte;
}

td_proto_result_t td_proto_decoder_push(td_proto_decoder_t *decoder, uint8_t byte,
                                        td_proto_frame_t *frame) {
    td_proto_decoder_t *d = decoder;
    if (byte == 0x00u) {
        td_proto_result_t result = td_decoder_end_run(d, frame);
        td_proto_decoder_init(d);
        return result;
    }
    if (d->mode == TD_RUN_NONE) d->mode = (byte == 0x01u) ? TD_RUN_FRAME : TD_RUN_TEXT;
    if (d->mode == TD_RUN_TEXT) {
        if (!td_proto_is_text_byte(byte)) d->error = (int8_t)TD_PROTO_ERR_GARBAGE;
        return TD_PROTO_NEED_MORE;
    }
    if (d->error) return TD_PROTO_NEED_MORE; /* skip to the end of a broken run */
    if (d->block_left == 0u) {
        /* a COBS code byte: the block before it, unless full, ended in a zero */
        if (d->zero_pending) td_decoder_append(d, 0x00u);
        d->block_left = (uint8_t)(byte - 1u);
        d->zero_pending = (uint8_t)(byte != 0xFFu);
    } else {
        td_decoder_append(d, byte);
        d->block_left--;
    }
    return TD_PROTO_NEED_MORE;
}
