/* Cortex-M4 DSP helpers for the optimized kernels and the monitor, with plain-C twins.
 *
 * With __ARM_FEATURE_DSP (Cortex-M4/M7/M33 with the DSP extension) each helper is one
 * instruction (SXTB16, SXTAB16, SMLAD, SMLABB...); elsewhere (the host, an M0) it is C that
 * computes the same bits, so the host tests run the very arithmetic of the device. Define
 * TD_DSP_PLAIN_C to force the C twins on an M4 (to test them there).
 *
 * Packed values: a uint32_t holds four int8 lanes b0..b3 (b0 in bits 0-7, the byte at the
 * lowest address: little-endian) or two int16 halves (lo in bits 0-15). Dual 16-bit MACs
 * want halves, so int8 data is widened two lanes at a time: td_sxtb16(x) gives (b0, b2),
 * td_sxtb16_ror8(x) gives (b1, b3). Both operands widened the same way meet lane to lane.
 */
#ifndef TD_DSP_H
#define TD_DSP_H

#include <stdint.h>
#include <string.h>

#if defined(__BYTE_ORDER__) && defined(__ORDER_LITTLE_ENDIAN__) && (__BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__)
#error "the optimized kernels read packed int8/int16 lanes in little-endian order"
#endif

#if defined(__ARM_FEATURE_DSP) && (__ARM_FEATURE_DSP == 1) && !defined(TD_DSP_PLAIN_C)
#define TD_DSP_INSTRUCTIONS 1
#include <arm_acle.h>
#else
#define TD_DSP_INSTRUCTIONS 0
#endif

/* The kernels' asm blocks (their hottest loops) hold 14 registers, which GCC can give only
 * when it omits the frame pointer, as it does at any -O level above -O0. -O0 builds use
 * the C of the same loops; so must builds with -fno-omit-frame-pointer: define
 * TD_KERNELS_ASM=0 there. */
#ifndef TD_KERNELS_ASM
#if TD_DSP_INSTRUCTIONS && defined(__GNUC__) && defined(__OPTIMIZE__)
#define TD_KERNELS_ASM 1
#else
#define TD_KERNELS_ASM 0
#endif
#endif

/* Forces inlining where a loop is specialized on constant flags (one copy per case). */
#if defined(__GNUC__)
#define TD_ALWAYS_INLINE inline __attribute__((always_inline))
#define TD_NOINLINE __attribute__((noinline))
#else
#define TD_ALWAYS_INLINE inline
#define TD_NOINLINE
#endif

/* Four bytes from any address (one LDR on the M4, which allows unaligned word loads). */
static inline uint32_t td_read_u32(const void *address)
{
    uint32_t value;
    memcpy(&value, address, sizeof value);
    return value;
}

static inline void td_write_u32(void *address, uint32_t value)
{
    memcpy(address, &value, sizeof value);
}

/* (low, high) as the halves of a word. */
static inline uint32_t td_pack_halves(int32_t low, int32_t high)
{
    return ((uint32_t)low & 0xFFFFu) | ((uint32_t)high << 16);
}

#if !TD_DSP_INSTRUCTIONS
static inline int32_t td_low_half(uint32_t x)
{
    return (int32_t)(int16_t)(uint16_t)(x & 0xFFFFu);
}

static inline int32_t td_high_half(uint32_t x)
{
    return (int32_t)(int16_t)(uint16_t)(x >> 16);
}

static inline int32_t td_lane(uint32_t x, int lane)
{
    return (int32_t)(int8_t)(uint8_t)(x >> (8 * lane));
}
#endif

/* (b0, b2) sign-extended to halves. */
static inline uint32_t td_sxtb16(uint32_t x)
{
#if TD_DSP_INSTRUCTIONS
    return (uint32_t)__sxtb16((int32_t)x);
#else
    return td_pack_halves(td_lane(x, 0), td_lane(x, 2));
#endif
}

/* (b1, b3) sign-extended to halves. */
static inline uint32_t td_sxtb16_ror8(uint32_t x)
{
#if TD_DSP_INSTRUCTIONS
    uint32_t result;
    __asm("sxtb16 %0, %1, ror #8" : "=r"(result) : "r"(x));
    return result;
#else
    return td_pack_halves(td_lane(x, 1), td_lane(x, 3));
#endif
}

/* halves + (b0, b2), each half modulo 2^16. */
static inline uint32_t td_sxtab16(uint32_t halves, uint32_t x)
{
#if TD_DSP_INSTRUCTIONS
    return (uint32_t)__sxtab16((int32_t)halves, (int32_t)x);
#else
    return td_pack_halves(td_low_half(halves) + td_lane(x, 0), td_high_half(halves) + td_lane(x, 2));
#endif
}

/* halves + (b1, b3), each half modulo 2^16. */
static inline uint32_t td_sxtab16_ror8(uint32_t halves, uint32_t x)
{
#if TD_DSP_INSTRUCTIONS
    uint32_t result;
    __asm("sxtab16 %0, %1, %2, ror #8" : "=r"(result) : "r"(halves), "r"(x));
    return result;
#else
    return td_pack_halves(td_low_half(halves) + td_lane(x, 1), td_high_half(halves) + td_lane(x, 3));
#endif
}

/* acc + x.lo * y.lo + x.hi * y.hi, wrapping modulo 2^32 as the instruction does (int32
 * sums of int8 products wrap the same way in any order, so results equal the reference's). */
static inline int32_t td_smlad(uint32_t x, uint32_t y, int32_t acc)
{
#if TD_DSP_INSTRUCTIONS
    return __smlad((int32_t)x, (int32_t)y, acc);
#else
    return (int32_t)((uint32_t)acc + (uint32_t)(td_low_half(x) * td_low_half(y)) +
                     (uint32_t)(td_high_half(x) * td_high_half(y)));
#endif
}

/* acc + x.lo * y.lo + x.hi * y.hi into a 64-bit sum (SMLALD): exact, no wrap. */
static inline int64_t td_smlald(uint32_t x, uint32_t y, int64_t acc)
{
#if TD_DSP_INSTRUCTIONS
    return __smlald((int32_t)x, (int32_t)y, acc);
#else
    return acc + (int64_t)(td_low_half(x) * td_low_half(y)) + (int64_t)(td_high_half(x) * td_high_half(y));
#endif
}

/* acc + x.lo * y.lo */
static inline int32_t td_smlabb(uint32_t x, uint32_t y, int32_t acc)
{
#if TD_DSP_INSTRUCTIONS
    return __smlabb((int32_t)x, (int32_t)y, acc);
#else
    return (int32_t)((uint32_t)acc + (uint32_t)(td_low_half(x) * td_low_half(y)));
#endif
}

/* (x.lo, y.lo): PKHBT */
static inline uint32_t td_pack_low_halves(uint32_t x, uint32_t y)
{
#if TD_DSP_INSTRUCTIONS
    uint32_t result;
    __asm("pkhbt %0, %1, %2, lsl #16" : "=r"(result) : "r"(x), "r"(y));
    return result;
#else
    return (x & 0xFFFFu) | (y << 16);
#endif
}

/* (x.hi, y.hi): PKHTB */
static inline uint32_t td_pack_high_halves(uint32_t x, uint32_t y)
{
#if TD_DSP_INSTRUCTIONS
    uint32_t result;
    __asm("pkhtb %0, %1, %2, asr #16" : "=r"(result) : "r"(y), "r"(x));
    return result;
#else
    return (x >> 16) | (y & 0xFFFF0000u);
#endif
}

/* acc + x.hi * y.hi */
static inline int32_t td_smlatt(uint32_t x, uint32_t y, int32_t acc)
{
#if TD_DSP_INSTRUCTIONS
    return __smlatt((int32_t)x, (int32_t)y, acc);
#else
    return (int32_t)((uint32_t)acc + (uint32_t)(td_high_half(x) * td_high_half(y)));
#endif
}

/* round(a * b / 2^32), halves up: (a * b + 2^31) >> 32. */
static inline int32_t td_smmulr(int32_t a, int32_t b)
{
#if TD_DSP_INSTRUCTIONS
    int32_t result;
    __asm("smmulr %0, %1, %2" : "=r"(result) : "r"(a), "r"(b));
    return result;
#else
    return (int32_t)(((int64_t)a * b + ((int64_t)1 << 31)) >> 32);
#endif
}

/* c + round(a * b / 2^32), halves up: ((c << 32) + a * b + 2^31) >> 32, the sum wrapping
 * at 32 bits as SMMLAR's does. */
static inline int32_t td_smmlar(int32_t a, int32_t b, int32_t c)
{
#if TD_DSP_INSTRUCTIONS
    int32_t result;
    __asm("smmlar %0, %1, %2, %3" : "=r"(result) : "r"(a), "r"(b), "r"(c));
    return result;
#else
    return (int32_t)((uint32_t)c + (uint32_t)(int32_t)(((int64_t)a * b + ((int64_t)1 << 31)) >> 32));
#endif
}

/* x clamped to the int8 range (SSAT #8). */
static inline int32_t td_ssat8(int32_t x)
{
#if TD_DSP_INSTRUCTIONS
    int32_t result;
    __asm("ssat %0, #8, %1" : "=r"(result) : "r"(x));
    return result;
#else
    return x < -128 ? -128 : (x > 127 ? 127 : x);
#endif
}

/* The same value in both halves: an offset to add with td_sxtab16. */
static inline uint32_t td_dup_half(int32_t value)
{
    return ((uint32_t)value & 0xFFFFu) * 0x00010001u;
}

#endif /* TD_DSP_H */
