/* The Nano 33 BLE Sense microphone (MP34DT05, PDM) for td_port: the core's PDM library
 * decimates to 16-bit PCM and calls us back from its interrupt; we move the samples into
 * a ring the application drains with td_port_mic_read(). */
#include <Arduino.h>
#include <PDM.h>

extern "C" {
#include "td_pcm_ring.h"
#include "td_port.h"
}

#ifndef TD_NANO33BLE_MIC_GAIN
#define TD_NANO33BLE_MIC_GAIN 20 /* the PDM library's default; raise for quiet rooms */
#endif

static td_pcm_ring td_nano_mic_ring;
static int16_t td_nano_mic_chunk[256];

static void td_nano_mic_on_receive()
{
    int bytes = PDM.available();
    while (bytes > 0) {
        const int take = bytes < (int)sizeof td_nano_mic_chunk ? bytes : (int)sizeof td_nano_mic_chunk;
        const int got = PDM.read(td_nano_mic_chunk, take);
        if (got <= 0) {
            break;
        }
        td_pcm_ring_push(&td_nano_mic_ring, td_nano_mic_chunk, (size_t)got / sizeof(int16_t));
        bytes -= got;
    }
}

extern "C" bool td_port_mic_start(uint32_t sample_rate_hz)
{
    /* The nRF52840 PDM clock gives 16 kHz (or 41.667 kHz) exactly; nothing else. */
    if (sample_rate_hz != 16000u) {
        return false;
    }
    td_pcm_ring_reset(&td_nano_mic_ring);
    PDM.onReceive(td_nano_mic_on_receive);
    PDM.setGain(TD_NANO33BLE_MIC_GAIN);
    return PDM.begin(1, (int)sample_rate_hz) == 1;
}

extern "C" size_t td_port_mic_read(int16_t *samples, size_t capacity)
{
    return td_pcm_ring_pop(&td_nano_mic_ring, samples, capacity);
}

extern "C" uint32_t td_port_mic_dropped(void)
{
    return td_nano_mic_ring.dropped;
}
