/* Start-up for mps2-an386 (Cortex-M4F): vector table, reset, fault reporting.
 *
 * Reset enables the FPU before any C code may touch it, copies initialised data from the
 * code region, zeroes .bss and calls td_app_main(); its result becomes the exit code.
 */
#include <stdint.h>

#include "td_mps2_an386.h"
#include "td_port.h"

/* Symbols from mps2_an386.ld. */
extern uint32_t td_stack_top;
extern uint32_t td_data_load[];
extern uint32_t td_data_start[];
extern uint32_t td_data_end[];
extern uint32_t td_bss_start[];
extern uint32_t td_bss_end[];

void td_reset_handler(void);
void td_fault_handler(void);
void td_systick_handler(void);
void td_uart0_rx_handler(void);
void td_timer0_handler(void);

/* Entry 0 is the initial stack pointer, the rest are handlers: a union keeps both typed. */
typedef union {
    void (*handler)(void);
    const void *stack_top;
} td_vector;

#define TD_MPS2_IRQ_COUNT 32 /* external interrupts QEMU wires on this board */

__attribute__((section(".td_vectors"), used))
const td_vector td_vector_table[16 + TD_MPS2_IRQ_COUNT] = {
    [0] = {.stack_top = &td_stack_top},
    [1] = {.handler = td_reset_handler},
    [2] = {.handler = td_fault_handler},  /* NMI */
    [3] = {.handler = td_fault_handler},  /* HardFault */
    [4] = {.handler = td_fault_handler},  /* MemManage */
    [5] = {.handler = td_fault_handler},  /* BusFault */
    [6] = {.handler = td_fault_handler},  /* UsageFault */
    [11] = {.handler = td_fault_handler}, /* SVCall: unused, so unexpected */
    [12] = {.handler = td_fault_handler}, /* DebugMonitor */
    [14] = {.handler = td_fault_handler}, /* PendSV: unused */
    [15] = {.handler = td_systick_handler},
    /* External interrupts: UART0 receive and timer 0 wake an idle wait (td_port_read); the
     * others stay disabled in the NVIC, and should one fire, it is reported. */
#define TD_FAULT {.handler = td_fault_handler}
#define TD_FAULT_4 TD_FAULT, TD_FAULT, TD_FAULT, TD_FAULT
    [16 + TD_MPS2_IRQ_UART0_RX] = {.handler = td_uart0_rx_handler},
    TD_FAULT, TD_FAULT, TD_FAULT, TD_FAULT_4, /* IRQs 1-7 */
    [16 + TD_MPS2_IRQ_TIMER0] = {.handler = td_timer0_handler},
    TD_FAULT_4, TD_FAULT_4, TD_FAULT_4, TD_FAULT_4, TD_FAULT_4, TD_FAULT, TD_FAULT, TD_FAULT, /* IRQs 9-31 */
#undef TD_FAULT_4
#undef TD_FAULT
};

__attribute__((noreturn)) void td_reset_handler(void)
{
    /* Full access to CP10/CP11 (the FPU) for privileged and user code; the barriers make
     * the next instruction see it. */
    TD_MPS2_SCB_CPACR |= (0xFu << 20);
    __asm volatile("dsb\n\tisb" ::: "memory");

    const uint32_t *source = td_data_load;
    for (uint32_t *target = td_data_start; target < td_data_end; ++target, ++source) {
        *target = *source;
    }
    for (uint32_t *target = td_bss_start; target < td_bss_end; ++target) {
        *target = 0;
    }
    td_port_exit(td_app_main());
}

/* Any fault or stray exception: say which one on the console, then exit with
 * TD_PORT_EXIT_FAULT so a test fails at once instead of hanging. */
__attribute__((noreturn)) void td_fault_handler(void)
{
    uint32_t exception;
    __asm volatile("mrs %0, ipsr" : "=r"(exception));
    td_mps2_uart_enable();
    td_port_print("\r\ntd_port: fault, exception ");
    td_mps2_print_hex(exception, 2);
    td_port_print(" cfsr ");
    td_mps2_print_hex(TD_MPS2_SCB_CFSR, 8);
    td_port_print("\r\n");
    td_port_exit(TD_PORT_EXIT_FAULT);
}
