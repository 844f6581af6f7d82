/* The one porting header: everything board-specific that tinydrift needs.
 *
 * Each platform implements these functions in its own folder, firmware/port/<platform>/
 * (mps2_an386 for QEMU, host for POSIX processes, real boards beside them). The portable
 * code calls nothing else that depends on the board: no HAL, no printf, no heap.
 *
 * The application defines `int td_app_main(void)` and calls td_port_init() first. Each
 * port's own entry point (the reset handler, main(), Arduino's setup()) does the board's
 * start-up (clocks, memory), calls td_app_main() and passes its result to td_port_exit().
 *
 * Time comes in two units. Milliseconds are for timeouts and human-readable logs.
 * Cycles count the port's fastest steady clock, for benchmarks: the core clock on a real
 * board (DWT or the CPU counter), SysTick's 25 MHz clock on mps2-an386, nanoseconds on the
 * host. Under QEMU with `-icount shift=0` every instruction lasts 1 ns, so one SysTick
 * cycle is exactly 40 instructions there: cycles are an instruction counter (the host
 * converts, see tinydrift.target.emulator).
 */
#ifndef TD_PORT_H
#define TD_PORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Exit codes the port itself uses; applications choose their own below these. */
#define TD_PORT_EXIT_FAULT 127 /* a CPU fault (bad address, undefined instruction...) */

/* Brings up the console serial link and the time base. The application calls it once,
 * before any other td_port function. */
void td_port_init(void);

/* Sends every byte over the console serial link, in order. Blocks while the link pushes
 * back (a full transmitter), never drops a byte. */
void td_port_write(const uint8_t *data, size_t length);

/* Receives up to `capacity` bytes: waits up to `timeout_ms` for the first byte (0 = do not
 * wait), then takes only what has already arrived. Returns how many bytes were stored. */
size_t td_port_read(uint8_t *buffer, size_t capacity, uint32_t timeout_ms);

/* Milliseconds since td_port_init; wraps after 49 days. */
uint32_t td_port_millis(void);

/* Cycles of the port's benchmark clock since td_port_init (see the top of this file). */
uint64_t td_port_cycles(void);

/* Frequency of the clock td_port_cycles counts, in Hz. */
uint32_t td_port_cycle_hz(void);

/* A short name for the board, e.g. "mps2_an386", for the hello line and logs. */
const char *td_port_board_name(void);

/* A number that names this board among others, for HELLO: the board's silicon serial
 * number where it has one (or one the host set once and the port keeps); 0 = unknown.
 * A port without one leaves it out and gets the build's -DTD_PORT_DEVICE_ID=N (default 0). */
uint64_t td_port_device_id(void);

/* This board's boots so far, for HELLO, from a counter the port keeps in persistent
 * storage; 0 = unknown. A port without storage leaves it out and gets the build's
 * -DTD_PORT_BOOT_COUNT=N (default 0). */
uint32_t td_port_boot_count(void);

/* A few hundred bytes kept across power cycles (a flash page, EEPROM, a file): the drift
 * monitor's reference, learned where the device was installed, so that a reboot does not
 * learn whatever it hears then as normal. Save replaces what was kept by `size` bytes; load
 * reads back exactly `size` bytes of the last save. Both return false where the board
 * keeps nothing (the weak default) or nothing was saved: the device then learns its
 * reference anew after every boot, and its boot line says so. A port that has them may
 * write in the background, but a load after a save must read what was saved. */
bool td_port_keep_save(const void *data, size_t size);
bool td_port_keep_load(void *data, size_t size);

/* Ends the program with `code` as the exit status where there is one (the host process,
 * QEMU through semihosting); a real board stops in a low-power loop. */
#if defined(__GNUC__)
__attribute__((noreturn))
#endif
void td_port_exit(int code);

/* Starts the board's microphone: 16-bit mono PCM at `sample_rate_hz`, captured in the
 * background. False when the board has none (QEMU, the host: audio is replayed over the
 * serial link there) or cannot run at that rate. */
bool td_port_mic_start(uint32_t sample_rate_hz);

/* Takes up to `capacity` captured samples, oldest first, without waiting. Returns how many
 * were stored; 0 when none are ready or no microphone runs. When the application does not
 * take samples in time the port's buffer fills, and newer samples are dropped and counted
 * by td_port_mic_dropped(). */
size_t td_port_mic_read(int16_t *samples, size_t capacity);

/* Samples dropped because the application read too slowly, since td_port_mic_start. */
uint32_t td_port_mic_dropped(void);

/* Starts the board's camera for frames of `height` x `width` RGB pixels (3 bytes a pixel,
 * R G B, rows top to bottom: the model's input plus 128), scaled and cropped by the port
 * or the sensor from whatever it captures. False when the board has none (QEMU, the host:
 * images are replayed over the serial link there, IMAGE frames). A port without a camera
 * leaves both camera functions out: weak defaults answer "none". */
bool td_port_camera_start(uint32_t height, uint32_t width);

/* Copies the newest whole frame taken since the last call into `pixels` (`capacity` is
 * height x width x 3 bytes) without waiting; false when no new frame is ready. The port
 * keeps at most one frame aside, so a slow application skips frames rather than lagging. */
bool td_port_camera_read(uint8_t *pixels, size_t capacity);

/* The application's entry point, called by the port after start-up; its result becomes the
 * exit code. */
int td_app_main(void);

/* Sends a NUL-terminated string. */
static inline void td_port_print(const char *text)
{
    size_t length = 0;
    while (text[length] != '\0') {
        length++;
    }
    td_port_write((const uint8_t *)text, length);
}

#ifdef __cplusplus
}
#endif

#endif /* TD_PORT_H */
