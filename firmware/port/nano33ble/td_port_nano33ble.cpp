/* td_port for the Arduino Nano 33 BLE Sense (nRF52840, Cortex-M4F at 64 MHz), on the
 * Arduino mbed core (PlatformIO: platform nordicnrf52, framework arduino).
 *
 * Console: the USB serial port (Serial) by default; Serial1 (UARTE0, pins TX/RX) when built
 * with TD_NANO33BLE_CONSOLE_SERIAL1, which is also what Renode models. Cycles: the DWT
 * cycle counter at the core clock. Microphone: the on-board MP34DT05 through the core's
 * PDM library, see td_mic_nano33ble.cpp.
 *
 * Written for the board; it cannot be built in tinydrift's offline environment (no
 * registry platforms there). */
#include <Arduino.h>

extern "C" {
#include "td_port.h"
}

#if defined(TD_NANO33BLE_CONSOLE_SERIAL1)
#define TD_CONSOLE Serial1
#else
#define TD_CONSOLE Serial
#endif

#ifndef TD_NANO33BLE_USB_WAIT_MS
/* How long start-up waits for a host to open the USB port, so the hello line is seen;
 * a board running without a host goes on after this. */
#define TD_NANO33BLE_USB_WAIT_MS 5000u
#endif

#define TD_CORE_HZ 64000000u

/* Data Watchpoint and Trace unit: a 32-bit cycle counter, extended to 64 bits below. */
#define TD_DEMCR (*(volatile uint32_t *)0xE000EDFCu)
#define TD_DEMCR_TRCENA (1u << 24)
#define TD_DWT_CTRL (*(volatile uint32_t *)0xE0001000u)
#define TD_DWT_CTRL_CYCCNTENA (1u << 0)
#define TD_DWT_CYCCNT (*(volatile uint32_t *)0xE0001004u)

static uint32_t td_nano_last_cyccnt;
static uint64_t td_nano_cycles_high;

extern "C" void td_port_init(void)
{
    TD_CONSOLE.begin(115200);
#if !defined(TD_NANO33BLE_CONSOLE_SERIAL1)
    const unsigned long start = millis();
    while (!TD_CONSOLE && millis() - start < TD_NANO33BLE_USB_WAIT_MS) {
        delay(10);
    }
#endif
    TD_DEMCR |= TD_DEMCR_TRCENA;
    TD_DWT_CYCCNT = 0;
    TD_DWT_CTRL |= TD_DWT_CTRL_CYCCNTENA;
    td_nano_last_cyccnt = 0;
    td_nano_cycles_high = 0;
}

extern "C" void td_port_write(const uint8_t *data, size_t length)
{
    while (length > 0) {
        const size_t written = TD_CONSOLE.write(data, length);
        data += written;
        length -= written;
        if (written == 0) {
            yield();
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
        yield();
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

/* The counter wraps every 67 s at 64 MHz; the extension sees every wrap as long as this
 * is called at least that often (a benchmark or the monitor loop does). */
extern "C" uint64_t td_port_cycles(void)
{
    noInterrupts();
    const uint32_t now = TD_DWT_CYCCNT;
    if (now < td_nano_last_cyccnt) {
        td_nano_cycles_high += 1ull << 32;
    }
    td_nano_last_cyccnt = now;
    const uint64_t cycles = td_nano_cycles_high | now;
    interrupts();
    return cycles;
}

extern "C" uint32_t td_port_cycle_hz(void)
{
    return TD_CORE_HZ;
}

extern "C" const char *td_port_board_name(void)
{
    return "nano33ble";
}

extern "C" void td_port_exit(int code)
{
    (void)code; /* nobody to hand it to: stay idle, the console stays readable */
    TD_CONSOLE.flush();
    for (;;) {
        delay(1000);
    }
}

/* The Arduino entry points: the whole application runs from setup(). */
void setup()
{
    td_port_exit(td_app_main());
}

void loop()
{
}
