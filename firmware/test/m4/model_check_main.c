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
#include "td_m4_report.h"
#include "td_port.h"

static void print_line(uint32_t index, const void *bytes, uint32_t count)
{
    td_m4_print_u32("td_model_check ", index);
    td_m4_print_hex(" ", bytes, count);
    td_m4_print_text("\n");
}

int td_app_main(void)
{
    uint64_t invoke_cycles = 0;
    td_port_init();
    for (uint32_t i = 0; i < TD_CHECK_INPUTS; ++i) {
        memcpy(td_opt_input(), td_check_inputs[i], TD_OPT_INPUT_SIZE);
        const uint64_t start = td_port_cycles();
        if (td_opt_invoke() != 0) {
            td_m4_print_text("td_model_check: invoke failed\n");
            return 1;
        }
        invoke_cycles += td_port_cycles() - start;
        /* bytes as they are: an int8 or a uint8 output */
        print_line(i, td_opt_output(), TD_OPT_OUTPUT_SIZE);
    }
    td_m4_print_u32("td_model_check done cycles=", (uint32_t)invoke_cycles);
    td_m4_print_text("\n");
    return 0;
}
