/*
 * Integer helpers of the drift monitor. Each has one exact definition that the host twin
 * (tinydrift.monitor.fixed) mirrors; nothing here depends on implementation-defined C
 * behaviour (right shifts of negative values and signed overflow are avoided).
 */
#ifndef TD_MONITOR_FIXED_H
#define TD_MONITOR_FIXED_H

#include <stdint.h>

/* floor(x / 2^s), 0 <= s <= 31. */
static inline int32_t td_asr_s32(int32_t x, unsigned s)
{
    return x >= 0 ? (int32_t)((uint32_t)x >> s) : (int32_t)~((uint32_t)~x >> s);
}

/* floor(x / 2^s), 0 <= s <= 63. */
static inline int64_t td_asr_s64(int64_t x, unsigned s)
{
    return x >= 0 ? (int64_t)((uint64_t)x >> s) : (int64_t)~((uint64_t)~x >> s);
}

/* floor(x / 2^s + 1/2): round half up. The caller leaves 2^(s-1) of headroom in x. */
static inline int32_t td_round_shift_s32(int32_t x, unsigned s)
{
    return s == 0 ? x : td_asr_s32(x + ((int32_t)1 << (s - 1)), s);
}

static inline int64_t td_round_shift_s64(int64_t x, unsigned s)
{
    return s == 0 ? x : td_asr_s64(x + ((int64_t)1 << (s - 1)), s);
}

static inline int32_t td_clamp_s32(int32_t x, int32_t lo, int32_t hi)
{
    return x < lo ? lo : (x > hi ? hi : x);
}

static inline int64_t td_clamp_s64(int64_t x, int64_t lo, int64_t hi)
{
    return x < lo ? lo : (x > hi ? hi : x);
}

static inline int32_t td_sat_s32(int64_t x)
{
    return (int32_t)td_clamp_s64(x, INT32_MIN, INT32_MAX);
}

static inline uint32_t td_sat_inc_u32(uint32_t x)
{
    return x == UINT32_MAX ? x : x + 1u;
}

/* floor(a / b) for b > 0 (C division truncates toward zero). */
static inline int64_t td_floor_div_s64(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && a < 0) ? q - 1 : q;
}

/* a / b rounded half up, for b > 0. */
static inline int64_t td_div_round_s64(int64_t a, int64_t b)
{
    return td_floor_div_s64(2 * a + b, 2 * b);
}

/* floor(sqrt(x)), bit by bit: exact, no floating point. */
static inline uint32_t td_isqrt_u32(uint32_t x)
{
    uint32_t root = 0;
    uint32_t bit = 1u << 30;
    while (bit > x) {
        bit >>= 2;
    }
    while (bit != 0) {
        if (x >= root + bit) {
            x -= root + bit;
            root = (root >> 1) + bit;
        } else {
            root >>= 1;
        }
        bit >>= 2;
    }
    return root;
}

/* EWMA step toward `target` with weight 2^-shift, rounded half up. The caller keeps
 * |target - value| below 2^30. */
static inline int32_t td_ewma_step(int32_t value, int32_t target, unsigned shift)
{
    return value + td_round_shift_s32(target - value, shift);
}

/* One step of a one-sided CUSUM, S = clamp(S + increment, 0, cap), noting in *start the
 * inference t at which S leaves zero (where a change it alarms on is dated). Returns S. */
static inline int32_t td_cusum_step(int32_t *cusum, uint32_t *start, int64_t increment, int32_t cap, uint32_t t)
{
    const int32_t next = (int32_t)td_clamp_s64((int64_t)*cusum + increment, 0, cap);
    if (*cusum == 0 && next > 0) {
        *start = t;
    }
    *cusum = next;
    return next;
}

#endif /* TD_MONITOR_FIXED_H */
