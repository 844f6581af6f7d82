/* A generated model on the device, on many inputs: for each of the TD_CHECK_INPUTS inputs
 * of td_check_inputs.h, copies it into td_opt_input(), runs td_opt_invoke() and prints
 *   td_model_check <index> <output bytes in hex>
 * then `td_model_check invoke_cycles=<td_port_cycles() over all invokes>` and
 * `td_model_check done`. The host compares every line with TFLite Micro's output
 * (tests/test_kernels_optimized.py); under QEMU's -icount shift=0 the cycles count
 * instructions (tinydrift.target.emulator converts). The model is generated as "opt" and compiled with
 * the kernels the build selects (TD_KERNELS_OPTIMIZED, on by default on the M4). */
#include <stdint.h>
#include <string.h>

#include "td_check_inputs.h"
#include "td_model_opt.h"
#include "td_port.h"

static void print_text(const char *text)
{
    td_port_write((const uint8_t *)text, strlen(text));
}

static void print_line(uint32_t index, const int8_t *bytes, uint32_t count)
{
    static const char hex[] = "0123456789abcdef";
    char digits[10];
    int n = 0;
    print_text("td_model_check ");
    do {
        digits[n++] = (char)('0' + index % 10u);
        index /= 10u;
    } while (index != 0);
    while (n > 0) {
        td_port_write((const uint8_t *)&digits[--n], 1);
    }
    print_text(" ");
    for (uint32_t i = 0; i < count; ++i) {
        const uint8_t byte = (uint8_t)bytes[i];
        const char pair[2] = {hex[byte >> 4], hex[byte & 15u]};
        td_port_write((const uint8_t *)pair, 2);
    }
    print_text("\n");
}

static void print_u64(uint64_t value)
{
    char digits[20];
    int n = 0;
    do {
        digits[n++] = (char)('0' + value % 10u);
        value /= 10u;
    } while (value != 0);
    while (n > 0) {
        td_port_write((const uint8_t *)&digits[--n], 1);
    }
}

int td_app_main(void)
{
    td_port_init();
    uint64_t invoke_cycles = 0;
    for (uint32_t i = 0; i < TD_CHECK_INPUTS; ++i) {
        memcpy(td_opt_input(), td_check_inputs[i], TD_OPT_INPUT_SIZE);
        const uint64_t start = td_port_cycles();
        if (td_opt_invoke() != 0) {
            print_text("td_model_check: invoke failed\n");
            return 1;
        }
        invoke_cycles += td_port_cycles() - start;
        print_line(i, td_opt_output(), TD_OPT_OUTPUT_SIZE);
    }
    print_text("td_model_check invoke_cycles=");
    print_u64(invoke_cycles);
    print_text("\n");
    print_text("td_model_check done\n");
    return 0;
}
