/* What the Cortex-M4 test and bench images share: printing numbers and bytes to the port
 * without printf (newlib's would dwarf what is measured), an FNV-1a checksum the host
 * recomputes, and a painted stack whose deepest use can be read back. */
#ifndef TD_M4_REPORT_H
#define TD_M4_REPORT_H

#include <stdint.h>
#include <string.h>

#include "td_port.h"

#define TD_M4_STACK_PAINT 0xA5A5A5A5u
#define TD_M4_FNV1A_START 2166136261u

/* From mps2_an386.ld: the stack section's top and size (an absolute symbol). */
extern uint32_t td_stack_top;
extern char td_stack_size[];

static inline void td_m4_print_text(const char *text)
{
    td_port_write((const uint8_t *)text, strlen(text));
}

/* `name` then `value` in decimal. */
static inline void td_m4_print_u32(const char *name, uint32_t value)
{
    char digits[10];
    int count = 0;
    td_m4_print_text(name);
    do {
        digits[count++] = (char)('0' + value % 10u);
        value /= 10u;
    } while (value != 0);
    while (count > 0) {
        td_port_write((const uint8_t *)&digits[--count], 1);
    }
}

/* `name` then the bytes in lower-case hex, two digits each. */
static inline void td_m4_print_hex(const char *name, const void *bytes, uint32_t count)
{
    static const char hex[] = "0123456789abcdef";
    const uint8_t *b = (const uint8_t *)bytes;
    td_m4_print_text(name);
    for (uint32_t i = 0; i < count; ++i) {
        const char pair[2] = {hex[b[i] >> 4], hex[b[i] & 15u]};
        td_port_write((const uint8_t *)pair, 2);
    }
}

/* FNV-1a over bytes as they lie in memory, continuing from `hash` (TD_M4_FNV1A_START). */
static inline uint32_t td_m4_fnv1a(uint32_t hash, const void *bytes, uint32_t count)
{
    const uint8_t *b = (const uint8_t *)bytes;
    for (uint32_t i = 0; i < count; ++i) {
        hash = (hash ^ b[i]) * 16777619u;
    }
    return hash;
}

static inline uint32_t *td_m4_stack_bottom(void)
{
    return (uint32_t *)((uintptr_t)&td_stack_top - (uintptr_t)td_stack_size);
}

/* Fills the unused stack below the caller's frame with a pattern, so the deepest use shows later. */
static inline void td_m4_paint_stack(void)
{
    uint32_t here;
    __asm volatile("mov %0, sp" : "=r"(here));
    for (uint32_t *word = td_m4_stack_bottom(); (uintptr_t)word < here - 256u; ++word) {
        *word = TD_M4_STACK_PAINT;
    }
}

static inline uint32_t td_m4_stack_used_bytes(void)
{
    const uint32_t *word = td_m4_stack_bottom();
    while ((uintptr_t)word < (uintptr_t)&td_stack_top && *word == TD_M4_STACK_PAINT) {
        ++word;
    }
    return (uint32_t)((uintptr_t)&td_stack_top - (uintptr_t)word);
}

#endif
