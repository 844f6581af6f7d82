/* An I2S MEMS microphone (INMP441, ICS-43434, SPH0645...) on the ESP32-S3 for td_port.
 *
 * Wiring (override with -D): SCK/BCLK GPIO 4, WS/LRCLK GPIO 5, SD GPIO 6, L/R to GND (the
 * left slot). The microphone sends 24-bit samples left-aligned in 32-bit slots; a driver
 * task keeps the top bits (TD_ESP32S3_MIC_SHIFT sets the gain) and fills the ring that
 * td_port_mic_read() drains. Uses the I2S driver of the Arduino core's ESP-IDF 4.4
 * (driver/i2s.h). */
#include <Arduino.h>
#include <driver/i2s.h>

extern "C" {
#include "td_pcm_ring.h"
#include "td_port.h"
}

#ifndef TD_ESP32S3_MIC_BCLK
#define TD_ESP32S3_MIC_BCLK 4
#endif
#ifndef TD_ESP32S3_MIC_WS
#define TD_ESP32S3_MIC_WS 5
#endif
#ifndef TD_ESP32S3_MIC_DATA
#define TD_ESP32S3_MIC_DATA 6
#endif
#ifndef TD_ESP32S3_MIC_SHIFT
#define TD_ESP32S3_MIC_SHIFT 14 /* 16 keeps the 16 most significant bits; 14 adds 12 dB */
#endif

#define TD_ESP32S3_MIC_PORT I2S_NUM_0
#define TD_ESP32S3_MIC_CHUNK 256u

static td_pcm_ring td_esp_mic_ring;
static bool td_esp_mic_running;
static StaticTask_t td_esp_mic_task;
static StackType_t td_esp_mic_stack[4096];

static int16_t td_esp_mic_to_pcm(int32_t raw)
{
    const int32_t scaled = raw >> TD_ESP32S3_MIC_SHIFT;
    if (scaled > INT16_MAX) {
        return INT16_MAX;
    }
    if (scaled < INT16_MIN) {
        return INT16_MIN;
    }
    return (int16_t)scaled;
}

static void td_esp_mic_task_body(void *unused)
{
    (void)unused;
    static int32_t raw[TD_ESP32S3_MIC_CHUNK];
    static int16_t pcm[TD_ESP32S3_MIC_CHUNK];
    for (;;) {
        size_t bytes = 0;
        if (i2s_read(TD_ESP32S3_MIC_PORT, raw, sizeof raw, &bytes, portMAX_DELAY) != ESP_OK) {
            continue;
        }
        const size_t count = bytes / sizeof raw[0];
        for (size_t i = 0; i < count; ++i) {
            pcm[i] = td_esp_mic_to_pcm(raw[i]);
        }
        td_pcm_ring_push(&td_esp_mic_ring, pcm, count);
    }
}

extern "C" bool td_port_mic_start(uint32_t sample_rate_hz)
{
    if (td_esp_mic_running) {
        return false; /* one rate per boot: the driver owns the I2S port from here */
    }
    i2s_config_t config = {};
    config.mode = (i2s_mode_t)(I2S_MODE_MASTER | I2S_MODE_RX);
    config.sample_rate = (int)sample_rate_hz;
    config.bits_per_sample = I2S_BITS_PER_SAMPLE_32BIT;
    config.channel_format = I2S_CHANNEL_FMT_ONLY_LEFT;
    config.communication_format = I2S_COMM_FORMAT_STAND_I2S;
    config.intr_alloc_flags = ESP_INTR_FLAG_LEVEL1;
    config.dma_buf_count = 4;
    config.dma_buf_len = (int)TD_ESP32S3_MIC_CHUNK;
    config.use_apll = false;

    i2s_pin_config_t pins = {};
    pins.mck_io_num = I2S_PIN_NO_CHANGE;
    pins.bck_io_num = TD_ESP32S3_MIC_BCLK;
    pins.ws_io_num = TD_ESP32S3_MIC_WS;
    pins.data_out_num = I2S_PIN_NO_CHANGE;
    pins.data_in_num = TD_ESP32S3_MIC_DATA;

    if (i2s_driver_install(TD_ESP32S3_MIC_PORT, &config, 0, NULL) != ESP_OK) {
        return false;
    }
    if (i2s_set_pin(TD_ESP32S3_MIC_PORT, &pins) != ESP_OK) {
        i2s_driver_uninstall(TD_ESP32S3_MIC_PORT);
        return false;
    }
    td_pcm_ring_reset(&td_esp_mic_ring);
    /* On the other core than the application (Arduino's loop runs on core 1). */
    xTaskCreateStaticPinnedToCore(td_esp_mic_task_body, "td_mic",
                                  sizeof td_esp_mic_stack / sizeof td_esp_mic_stack[0], NULL,
                                  configMAX_PRIORITIES - 2, td_esp_mic_stack, &td_esp_mic_task, 0);
    td_esp_mic_running = true;
    return true;
}

extern "C" size_t td_port_mic_read(int16_t *samples, size_t capacity)
{
    return td_pcm_ring_pop(&td_esp_mic_ring, samples, capacity);
}

extern "C" uint32_t td_port_mic_dropped(void)
{
    return td_esp_mic_ring.dropped;
}
