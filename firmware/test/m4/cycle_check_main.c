/* Loops whose Cortex-M4 cycles are counted by hand from the Technical Reference Manual's
 * timing table, to check the cycle estimate (tinydrift.target.m4_cycles, run by
 * tests/test_m4_cycles.py on QEMU's execution log). Written in assembly so the compiler
 * cannot change what is counted. Prints `td_cycle_check dot=<sum> mix=<sum>`.
 *
 * td_cycle_check_dot(a, b, n): sum of int16 pair products over n words (SMLAD), P = the
 * pipeline refill:
 *     push {r4, r5, lr}            1 + 3
 *     movs r3, #0                  1
 *   1: ldr r4, [r0], #4            2
 *     ldr r5, [r1], #4             1   pipelined behind a load not feeding its address
 *     smlad r3, r4, r5, r3         1
 *     subs r2, r2, #1              1
 *     bne 1b                       1 + P taken (n - 1 times), 1 not taken (once)
 *     mov r0, r3                   1
 *     pop {r4, r5, pc}             1 + 3 + P
 *   = 11 + 5 n + (n - 1)(1 + P) + P
 *
 * td_cycle_check_mix(a, b, offset): the rules a straight line exercises:
 *     push {r4, r5, r6, lr}        1 + 4
 *     add r6, r0, #8               1
 *     ldr r4, [r6]                 2 + 1   its address from the instruction before
 *     ldrd r4, r5, [r1]            3       never pipelined
 *     str r4, [r1, #8]             1       immediate offset: the write buffer
 *     str r5, [r1, r2]             2       register offset, not behind a load
 *     udiv r0, r5, r4              D       2-12 by operands: the estimate takes `divide`
 *     mul r0, r0, r4               1
 *     pop {r4, r5, r6, pc}         1 + 4 + P
 *   = 21 + D + P
 */
#include <stdint.h>

#include "td_m4_report.h"
#include "td_port.h"

int32_t td_cycle_check_dot(const int32_t *a, const int32_t *b, int32_t n);
int32_t td_cycle_check_mix(const int32_t *a, int32_t *b, int32_t offset);

__asm__(
    ".syntax unified\n"
    ".thumb\n"
    ".global td_cycle_check_dot\n"
    ".type td_cycle_check_dot, %function\n"
    ".thumb_func\n"
    "td_cycle_check_dot:\n"
    "    push {r4, r5, lr}\n"
    "    movs r3, #0\n"
    "1:  ldr r4, [r0], #4\n"
    "    ldr r5, [r1], #4\n"
    "    smlad r3, r4, r5, r3\n"
    "    subs r2, r2, #1\n"
    "    bne 1b\n"
    "    mov r0, r3\n"
    "    pop {r4, r5, pc}\n"
    ".size td_cycle_check_dot, . - td_cycle_check_dot\n"
    ".global td_cycle_check_mix\n"
    ".type td_cycle_check_mix, %function\n"
    ".thumb_func\n"
    "td_cycle_check_mix:\n"
    "    push {r4, r5, r6, lr}\n"
    "    add r6, r0, #8\n"
    "    ldr r4, [r6]\n"
    "    ldrd r4, r5, [r1]\n"
    "    str r4, [r1, #8]\n"
    "    str r5, [r1, r2]\n"
    "    udiv r0, r5, r4\n"
    "    mul r0, r0, r4\n"
    "    pop {r4, r5, r6, pc}\n"
    ".size td_cycle_check_mix, . - td_cycle_check_mix\n");

#ifndef TD_CYCLE_CHECK_WORDS
#define TD_CYCLE_CHECK_WORDS 10
#endif

static int32_t check_a[TD_CYCLE_CHECK_WORDS];
static int32_t check_b[TD_CYCLE_CHECK_WORDS];
static int32_t check_scratch[64];

int td_app_main(void)
{
    td_port_init();
    for (int32_t i = 0; i < TD_CYCLE_CHECK_WORDS; ++i) {
        check_a[i] = (i + 1) * 0x00010003;
        check_b[i] = (i + 2) * 0x00020001;
    }
    check_scratch[0] = 5;
    check_scratch[1] = 1000;
    const int32_t dot = td_cycle_check_dot(check_a, check_b, TD_CYCLE_CHECK_WORDS);
    const int32_t mix = td_cycle_check_mix(check_a, check_scratch, 12); /* 1000 / 5 * 5 */
    td_m4_print_u32("td_cycle_check dot=", (uint32_t)dot);
    td_m4_print_u32(" mix=", (uint32_t)mix);
    td_m4_print_text("\n");
    return 0;
}
