/*
 * Spectral tilt of the audio behind one inference: log2 of the energy of its sample-to-sample
 * differences minus log2 of its energy, both as td_summarize_level gives them (x 2^7). A first
 * difference weighs a sine of frequency f by 4 sin^2(pi f / rate), so the value rises with the
 * share of high frequencies and falls when a microphone loses its top band (a telephone
 * path, a cheap or covered capsule, a low-pass). A front end with per-channel gain control
 * (microWakeWord's PCAN) normalises each band by its own noise floor and so hides band
 * limits from its features; this value sees them. Measured on okay_nabu's monitor over 32
 * held-out sessions: a 300-3400 Hz band was found in 18 of them after a median 59 s without
 * it, in 25 after 18 s with it.
 */
#include "td_monitor.h"

uint64_t td_slope_energy(const int16_t *pcm, uint32_t n_samples, int16_t previous)
{
    /* |difference| <= 65535, so each square < 2^32 and a block of up to 2^16 samples < 2^48;
     * each square accumulates in one SMLAL on the M4. Two samples a pass, as td_sensor's
     * loop: 5 instructions a sample instead of 6. */
    int64_t energy = 0;
    int32_t last = previous;
    uint32_t i;
    for (i = 0; i + 1u < n_samples; i += 2u) {
        const int32_t a = pcm[i];
        const int32_t b = pcm[i + 1u];
        energy += (int64_t)(a - last) * (a - last);
        energy += (int64_t)(b - a) * (b - a);
        last = b;
    }
    if (i < n_samples) {
        energy += (int64_t)(pcm[i] - last) * (pcm[i] - last);
    }
    return (uint64_t)energy;
}

int16_t td_summarize_tilt(uint64_t slope_energy, uint64_t energy)
{
    /* Both levels lie in 0..48 x 2^7, so their difference fits in int16. */
    return (int16_t)(td_summarize_level(slope_energy) - td_summarize_level(energy));
}
