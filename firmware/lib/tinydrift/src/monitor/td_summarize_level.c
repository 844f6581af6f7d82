/*
 * Loudness of the audio behind one inference: log2(energy + 1) of its new samples (the sum,
 * over the blocks sensor health saw, of each block's variance times its samples) times
 * 2^TD_SUMMARY_FRAC_BITS: the top bit's position, then the next 7 bits of the mantissa
 * (Mitchell's approximation: monotonic, exact in integers, within 0.1 of log2).
 * A front end with per-channel gain control (microWakeWord's PCAN) divides the level out of
 * its features by design, so a microphone 20 dB quieter barely moves their summary; it
 * moves this value by 6.6 (x 2^7).
 */
#include "td_monitor.h"

int16_t td_summarize_level(uint64_t energy)
{
    /* energy + 1 >= 1 has its top bit at `top`; energy < 2^48 keeps the result in int16 */
    const uint64_t x = (energy < TD_SUMMARY_LEVEL_MAX_ENERGY ? energy : TD_SUMMARY_LEVEL_MAX_ENERGY) + 1u;
    uint32_t top = 0;
    uint32_t fraction;

    while (top < 63u && (x >> (top + 1u)) != 0u) {
        ++top;
    }
    fraction = top >= TD_SUMMARY_FRAC_BITS ? (uint32_t)(x >> (top - TD_SUMMARY_FRAC_BITS))
                                           : (uint32_t)(x << (TD_SUMMARY_FRAC_BITS - top));
    fraction &= (1u << TD_SUMMARY_FRAC_BITS) - 1u;
    return (int16_t)((top << TD_SUMMARY_FRAC_BITS) + fraction);
}
