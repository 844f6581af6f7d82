/* Little-endian field access shared by the packer and the parser (private to protocol/). */
#ifndef TD_PROTO_BYTES_H
#define TD_PROTO_BYTES_H

#include <stdint.h>

static inline uint16_t td_get_u16(const uint8_t *p) {
    return (uint16_t)((uint16_t)p[0] | (uint16_t)((uint16_t)p[1] << 8));
}

static inline uint32_t td_get_u32(const uint8_t *p) {
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

static inline uint64_t td_get_u64(const uint8_t *p) {
    return (uint64_t)td_get_u32(p) | ((uint64_t)td_get_u32(p + 4) << 32);
}

/* Two's complement reinterpretation without implementation-defined conversion. */
static inline int32_t td_get_i32(const uint8_t *p) {
    uint32_t u = td_get_u32(p);
    return (u & 0x80000000u) ? -(int32_t)(~u) - 1 : (int32_t)u;
}

static inline int16_t td_get_i16(const uint8_t *p) {
    uint16_t u = td_get_u16(p);
    return (u & 0x8000u) ? (int16_t)(-(int32_t)(uint16_t)(~u) - 1) : (int16_t)u;
}

static inline int8_t td_get_i8(const uint8_t *p) {
    uint8_t u = p[0];
    return (u & 0x80u) ? (int8_t)(-(int32_t)(uint8_t)(~u) - 1) : (int8_t)u;
}

#endif /* TD_PROTO_BYTES_H */
