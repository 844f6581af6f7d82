/* The echo app: proves a port works end to end, before the real application (src/main.c)
 * runs on it. Built by the env mps2_an386_echo (platformio.ini), and on the host port by
 * the port tests.
 *
 * At boot it prints a hello line and three counter lines, then echoes every byte it
 * receives. ESC (0x1B) starts a command, so the host can drive it through the same link:
 *   ESC ESC            echo one 0x1B byte
 *   ESC 'c'            print the next counter line: "count <n> ms=<ms> cycles=<cycles>"
 *   ESC 's' <u32 LE>   spin a loop of that many iterations (2 instructions each on Arm)
 *                      and print "spin iterations=<n> cycles=<cycles taken>"
 *   ESC 'w' <u32 LE>   wait up to that many milliseconds for input (td_port_read's timeout)
 *                      and print "wait ms=<ms> received=<bytes> cycles=<cycles taken>";
 *                      the bytes that ended the wait are counted, not echoed
 *   ESC 'x' <code>     print "bye code=<code>" and exit with that code
 *   ESC 'u'            execute an undefined instruction (checks the port's fault report)
 * Any other command byte prints "unknown command 0x<hex>".
 */
#include <stddef.h>
#include <stdint.h>

#include "td_port.h"

#define TD_APP_ESCAPE 0x1Bu
#define TD_APP_BOOT_COUNTS 3u
#define TD_APP_READ_TIMEOUT_MS 100u

/* A fixed buffer for one output line; no printf, no heap. */
typedef struct {
    char text[96];
    size_t length;
} td_app_line;

static void td_app_append_text(td_app_line *line, const char *text)
{
    while (*text != '\0' && line->length < sizeof line->text) {
        line->text[line->length++] = *text++;
    }
}

static void td_app_append_u64(td_app_line *line, uint64_t value)
{
    char digits[20];
    size_t count = 0;
    do {
        digits[count++] = (char)('0' + value % 10u);
        value /= 10u;
    } while (value != 0);
    while (count > 0 && line->length < sizeof line->text) {
        line->text[line->length++] = digits[--count];
    }
}

static void td_app_send_line(td_app_line *line)
{
    td_app_append_text(line, "\n");
    td_port_write((const uint8_t *)line->text, line->length);
    line->length = 0;
}

static uint32_t td_app_counter;

static void td_app_print_count(void)
{
    td_app_line line = {.length = 0};
    td_app_counter++;
    td_app_append_text(&line, "count ");
    td_app_append_u64(&line, td_app_counter);
    td_app_append_text(&line, " ms=");
    td_app_append_u64(&line, td_port_millis());
    td_app_append_text(&line, " cycles=");
    td_app_append_u64(&line, td_port_cycles());
    td_app_send_line(&line);
}

/* A loop whose instruction count is known exactly on Arm (SUBS + BNE per iteration), so
 * the host can check the cycle counter against QEMU's instruction counting. */
static void td_app_spin(uint32_t iterations)
{
    if (iterations == 0) {
        return;
    }
#if defined(__arm__) && defined(__thumb2__)
    __asm volatile("1:\n\tsubs %0, %0, #1\n\tbne 1b" : "+r"(iterations) : : "cc");
#else
    volatile uint32_t remaining = iterations;
    while (remaining != 0) {
        remaining = remaining - 1u;
    }
#endif
}

static void td_app_print_wait(uint32_t timeout_ms)
{
    uint8_t input[16];
    const uint64_t start = td_port_cycles();
    const size_t received = td_port_read(input, sizeof input, timeout_ms);
    const uint64_t taken = td_port_cycles() - start;
    td_app_line line = {.length = 0};
    td_app_append_text(&line, "wait ms=");
    td_app_append_u64(&line, timeout_ms);
    td_app_append_text(&line, " received=");
    td_app_append_u64(&line, received);
    td_app_append_text(&line, " cycles=");
    td_app_append_u64(&line, taken);
    td_app_send_line(&line);
}

static void td_app_print_spin(uint32_t iterations)
{
    const uint64_t start = td_port_cycles();
    td_app_spin(iterations);
    const uint64_t taken = td_port_cycles() - start;
    td_app_line line = {.length = 0};
    td_app_append_text(&line, "spin iterations=");
    td_app_append_u64(&line, iterations);
    td_app_append_text(&line, " cycles=");
    td_app_append_u64(&line, taken);
    td_app_send_line(&line);
}

static void td_app_undefined_instruction(void)
{
#if defined(__arm__)
    __asm volatile("udf #0");
#else
    __builtin_trap();
#endif
}

/* Where the command decoder is between bytes. */
typedef enum {
    TD_APP_ECHOING,
    TD_APP_AFTER_ESCAPE,
    TD_APP_SPIN_ARGUMENT,
    TD_APP_WAIT_ARGUMENT,
    TD_APP_EXIT_ARGUMENT,
} td_app_state;

int td_app_main(void)
{
    td_port_init();

    td_app_line line = {.length = 0};
    td_app_append_text(&line, "tinydrift hello board=");
    td_app_append_text(&line, td_port_board_name());
    td_app_append_text(&line, " cycle_hz=");
    td_app_append_u64(&line, td_port_cycle_hz());
    td_app_send_line(&line);
    for (uint32_t i = 0; i < TD_APP_BOOT_COUNTS; ++i) {
        td_app_print_count();
    }

    td_app_state state = TD_APP_ECHOING;
    uint32_t argument = 0; /* a command's u32, its bytes least significant first */
    unsigned argument_bytes = 0;
    uint8_t input[256];
    uint8_t echo[sizeof input];
    for (;;) {
        const size_t received = td_port_read(input, sizeof input, TD_APP_READ_TIMEOUT_MS);
        size_t echoed = 0;
        for (size_t i = 0; i < received; ++i) {
            const uint8_t byte = input[i];
            switch (state) {
            case TD_APP_ECHOING:
                if (byte == TD_APP_ESCAPE) {
                    state = TD_APP_AFTER_ESCAPE;
                } else {
                    echo[echoed++] = byte;
                }
                break;
            case TD_APP_AFTER_ESCAPE:
                /* Replies must follow the bytes echoed before the command. */
                td_port_write(echo, echoed);
                echoed = 0;
                state = TD_APP_ECHOING;
                if (byte == TD_APP_ESCAPE) {
                    echo[echoed++] = byte;
                } else if (byte == 'c') {
                    td_app_print_count();
                } else if (byte == 's' || byte == 'w') {
                    argument = 0;
                    argument_bytes = 0;
                    state = byte == 's' ? TD_APP_SPIN_ARGUMENT : TD_APP_WAIT_ARGUMENT;
                } else if (byte == 'x') {
                    state = TD_APP_EXIT_ARGUMENT;
                } else if (byte == 'u') {
                    td_app_undefined_instruction();
                } else {
                    static const char hex[] = "0123456789abcdef";
                    td_app_append_text(&line, "unknown command 0x");
                    line.text[line.length++] = hex[byte >> 4];
                    line.text[line.length++] = hex[byte & 0xFu];
                    td_app_send_line(&line);
                }
                break;
            case TD_APP_SPIN_ARGUMENT:
            case TD_APP_WAIT_ARGUMENT:
                argument |= (uint32_t)byte << (8u * argument_bytes);
                if (++argument_bytes == 4u) {
                    if (state == TD_APP_SPIN_ARGUMENT) {
                        td_app_print_spin(argument);
                    } else {
                        td_app_print_wait(argument);
                    }
                    state = TD_APP_ECHOING;
                }
                break;
            case TD_APP_EXIT_ARGUMENT:
                td_app_append_text(&line, "bye code=");
                td_app_append_u64(&line, byte);
                td_app_send_line(&line);
                td_port_exit(byte);
            }
        }
        td_port_write(echo, echoed);
    }
}
