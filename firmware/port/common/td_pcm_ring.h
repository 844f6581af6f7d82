/* A lock-free ring of PCM samples between one producer (a microphone interrupt, DMA
 * callback or driver task) and one consumer (td_port_mic_read in the application).
 * Static storage, no heap. When the ring is full, new samples are dropped and counted:
 * only the producer writes `head` and `dropped`, only the consumer writes `tail`, so no
 * lock is needed; full barriers order the samples against the indices, also between the
 * two cores of an ESP32-S3. Header-only and shared by the board ports. */
#ifndef TD_PCM_RING_H
#define TD_PCM_RING_H

#include <stddef.h>
#include <stdint.h>

#define TD_PCM_RING_CAPACITY 8192u /* 0.5 s at 16 kHz; a power of two */

typedef struct {
    int16_t samples[TD_PCM_RING_CAPACITY];
    volatile uint32_t head;    /* total samples written, wraps */
    volatile uint32_t tail;    /* total samples read, wraps */
    volatile uint32_t dropped; /* samples lost because the ring was full */
} td_pcm_ring;

static inline void td_pcm_ring_reset(td_pcm_ring *ring)
{
    ring->head = 0;
    ring->tail = 0;
    ring->dropped = 0;
}

/* Producer side. */
static inline void td_pcm_ring_push(td_pcm_ring *ring, const int16_t *samples, size_t count)
{
    uint32_t head = ring->head;
    const uint32_t free_slots = TD_PCM_RING_CAPACITY - (head - ring->tail);
    size_t accepted = count < free_slots ? count : free_slots;
    for (size_t i = 0; i < accepted; ++i) {
        ring->samples[(head + (uint32_t)i) & (TD_PCM_RING_CAPACITY - 1u)] = samples[i];
    }
    __sync_synchronize(); /* the samples are in place before the new head is seen */
    ring->head = head + (uint32_t)accepted;
    ring->dropped += (uint32_t)(count - accepted);
}

/* Consumer side. */
static inline size_t td_pcm_ring_pop(td_pcm_ring *ring, int16_t *samples, size_t capacity)
{
    const uint32_t tail = ring->tail;
    const uint32_t available = ring->head - tail;
    size_t taken = capacity < available ? capacity : available;
    __sync_synchronize(); /* read the samples only after the head that covers them */
    for (size_t i = 0; i < taken; ++i) {
        samples[i] = ring->samples[(tail + (uint32_t)i) & (TD_PCM_RING_CAPACITY - 1u)];
    }
    __sync_synchronize(); /* done reading before the slots are handed back */
    ring->tail = tail + (uint32_t)taken;
    return taken;
}

#endif /* TD_PCM_RING_H */
