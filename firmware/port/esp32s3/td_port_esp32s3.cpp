/* td_port for an ESP32-S3 board (DevKitC-1: Xtensa LX7 at 240 MHz), on the Arduino core
 * (PlatformIO: platform espressif32, framework arduino).
 *
 * Console: UART0 (Serial), which the DevKitC-1 bridges to its "UART" USB port. Cycles: the
 * CPU's cycle counter (CCOUNT) at the core clock. Microphone: an I2S MEMS microphone, see
 * td_mic_esp32s3.cpp.
 *
 * Written for the board; it cannot be built in tinydrift's offline environment (no
 * registry platforms there). */
#include <Arduino.h>

extern "C" {
#include "td_port.h"
}

#define TD_CONSOLE Serial
#define TD_ESP32S3_RX_BUFFER 4096u /* bytes the UART driver holds while the app is busy */

static uint32_t td_esp_last_ccount;
static uint64_t td_esp_cycles_high;
static portMUX_TYPE td_esp_cycles_lock = portMUX_INITIALIZER_UNLOCKED;

extern "C" void td_port_init(void)
{
    TD_CONSOLE.setRxBufferSize(TD_ESP32S3_RX_BUFFER);
    TD_CONSOLE.begin(115200);
    td_esp_last_ccount = ESP.getCycleCount();
    td_esp_cycles_high = 0;
}

extern "C" void td_port_write(const uint8_t *data, size_t length)
{
    while (length > 0) {
        const size_t written = TD_CONSOLE.write(data, length);
        data += written;
        length -= written;
        if (written == 0) {
            delay(1);
        }
    }
}

extern "C" size_t td_port_read(uint8_t *buffer, size_t capacity, uint32_t timeout_ms)
{
    if (capacity == 0) {
        return 0;
    }
    const unsigned long start = millis();
    while (TD_CONSOLE.available() <= 0) {
        if (millis() - start >= timeout_ms) {
            return 0;
        }
        delay(1); /* let the idle task run: the task watchdog watches it */
    }
    size_t count = 0;
    while (count < capacity && TD_CONSOLE.available() > 0) {
        buffer[count++] = (uint8_t)TD_CONSOLE.read();
    }
    return count;
}

extern "C" uint32_t td_port_millis(void)
{
    return (uint32_t)millis();
}

/* CCOUNT wraps every 17.9 s at 240 MHz; the extension sees every wrap as long as this is
 * called at least that often, from the core the application runs on. */
extern "C" uint64_t td_port_cycles(void)
{
    portENTER_CRITICAL(&td_esp_cycles_lock);
    const uint32_t now = ESP.getCycleCount();
    if (now < td_esp_last_ccount) {
        td_esp_cycles_high += 1ull << 32;
    }
    td_esp_last_ccount = now;
    const uint64_t cycles = td_esp_cycles_high | now;
    portEXIT_CRITICAL(&td_esp_cycles_lock);
    return cycles;
}

extern "C" uint32_t td_port_cycle_hz(void)
{
    return getCpuFrequencyMhz() * 1000000u;
}

extern "C" const char *td_port_board_name(void)
{
    return "esp32s3";
}

extern "C" void td_port_exit(int code)
{
    (void)code; /* nobody to hand it to: stay idle, the console stays readable */
    TD_CONSOLE.flush();
    for (;;) {
        delay(1000);
    }
}

/* The Arduino entry points: the whole application runs from setup(), in the loop task
 * (its stack: CONFIG_ARDUINO_LOOP_STACK_SIZE, 8 KB by default). */
void setup()
{
    td_port_exit(td_app_main());
}

void loop()
{
}
