/* A generated model on the device, on many inputs: for each of the TD_CHECK_INPUTS inputs
 * of td_check_inputs.h, copies it into td_opt_input(), runs td_opt_invoke() and prints
 *   td_model_check <index> <output bytes in hex>
 * then `td_model_check done cycles=<td_port_cycles() spent in the invokes>`. The host
 * compares every line with TFLite Micro's output (tests/test_kernels_optimized.py; a
 * streaming model's state runs on from one input to the next, tests/test_wakeword_models.py)
 * and, under QEMU's -icount, turns the cycles into instructions. The model is generated as
 * "opt" and compiled with the kernels the build selects (TD_KERNELS_OPTIMIZED, on by
 * default on the M4). */
#include <stdint.h>
#include <string.h>

#include "td_check_inputs.h"
#include "td_model_opt.h"
#include "td_port.h"

static void print_text(const char *text)
{
    td_port_write((const uint8_t *)text, strlen(text));
}

static void print_u32(uint32_t value)
{
    char digits[10];
    int n = 0;
    do {
        digits[n++] = (char)('0' + value % 10u);
        value /= 10u;
    } while (value != 0);
    while (n > 0) {
        td_port_write((const uint8_t *)&digits[--n], 1);
    }
}

static void print_line(uint32_t index, const int8_t *bytes, uint32_t count)
{
    static const char hex[] = "0123456789abcdef";
    print_text("td_model_check ");
    print_u32(index);
    print_text(" ");
    for (uint32_t i = 0; i < count; ++i) {
        const uint8_t byte = (uint8_t)bytes[i];
        const char pair[2] = {hex[byte >> 4], hex[byte & 15u]};
        td_port_write((const uint8_t *)pair, 2);
    }
    print_text("\n");
}

int td_app_main(void)
{
    uint64_t invoke_cycles = 0;
    td_port_init();
    for (uint32_t i = 0; i < TD_CHECK_INPUTS; ++i) {
        memcpy(td_opt_input(), td_check_inputs[i], TD_OPT_INPUT_SIZE);
        const uint64_t start = td_port_cycles();
        if (td_opt_invoke() != 0) {
            print_text("td_model_check: invoke failed\n");
            return 1;
        }
        invoke_cycles += td_port_cycles() - start;
        /* bytes as they are: an int8 or a uint8 output */
        print_line(i, (const int8_t *)td_opt_output(), TD_OPT_OUTPUT_SIZE);
    }
    print_text("td_model_check done cycles=");
    print_u32((uint32_t)invoke_cycles);
    print_text("\n");
    return 0;
}
