/* CRC-32 (IEEE 802.3, reflected polynomial 0xEDB88320, as in zlib) with a 16-entry table:
 * 64 bytes of flash instead of 1 KB, two lookups per byte. */
#include "td_protocol.h"

static const uint32_t td_crc32_nibble[16] = {
    0x00000000U, 0x1DB71064U, 0x3B6E20C8U, 0x26D930ACU, 0x76DC4190U, 0x6B6B51F4U,
    0x4DB26158U, 0x5005713CU, 0xEDB88320U, 0xF00F9344U, 0xD6D6A3E8U, 0xCB61B38CU,
    0x9B64C2B0U, 0x86D3D2D4U, 0xA00AE278U, 0xBDBDF21CU,
};

uint32_t td_crc32_update(uint32_t crc, const uint8_t *data, size_t length) {
    uint32_t reg = ~crc;
    for (size_t i = 0; i < length; ++i) {
        reg ^= data[i];
        reg = (reg >> 4) ^ td_crc32_nibble[reg & 0x0Fu];
        reg = (reg >> 4) ^ td_crc32_nibble[reg & 0x0Fu];
    }
    return ~reg;
}
