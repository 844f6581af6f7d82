/* td_port for QEMU's mps2-an386: CMSDK UART0 console, SysTick time base, semihosting exit.
 * The microphone (a host file read through semihosting) is in td_mic_mps2_an386.c.
 *
 * QEMU must run with `-semihosting-config enable=on,target=native` for td_port_exit:
 * without it the semihosting call is a breakpoint that faults.
 */
#include "td_port.h"

#include "td_mps2_an386.h"

/* SysTick counts down from TD_MPS2_SYSTICK_RELOAD at the processor clock; its interrupt
 * adds one period to this count. The longest period keeps interrupts rare (one per
 * 0.67 s of emulated time), so they barely disturb instruction counts. */
#define TD_MPS2_SYSTICK_RELOAD 0x00FFFFFFu
static volatile uint64_t td_mps2_elapsed_periods_cycles;

/* Semihosting operation and reason that make QEMU exit with a status of our choosing. */
#define TD_SEMIHOSTING_SYS_EXIT_EXTENDED 0x20u
#define TD_SEMIHOSTING_ADP_STOPPED_APPLICATION_EXIT 0x20026u

void td_mps2_uart_enable(void)
{
    TD_MPS2_UART0_BAUDDIV = TD_MPS2_SYSCLK_HZ / TD_MPS2_UART_BAUD;
    TD_MPS2_UART0_CTRL = TD_MPS2_UART_CTRL_TX_ENABLE | TD_MPS2_UART_CTRL_RX_ENABLE;
}

void td_mps2_print_hex(uint32_t value, int digits)
{
    static const char hex[] = "0123456789abcdef";
    char text[8];
    if (digits > 8) {
        digits = 8;
    }
    for (int i = 0; i < digits; ++i) {
        text[i] = hex[(value >> (4 * (digits - 1 - i))) & 0xFu];
    }
    td_port_write((const uint8_t *)text, (size_t)digits);
}

void td_systick_handler(void);
void td_systick_handler(void)
{
    td_mps2_elapsed_periods_cycles += (uint64_t)TD_MPS2_SYSTICK_RELOAD + 1u;
}

/* A wait for the link sleeps (wfi) until a byte comes or timer 0 ends the wait: a polling
 * loop kept one host core busy in QEMU for as long as the board waited. These interrupts
 * only wake the core; td_port_read looks at the UART itself. */
void td_uart0_rx_handler(void);
void td_uart0_rx_handler(void)
{
    TD_MPS2_UART0_INTCLEAR = TD_MPS2_UART_INT_RX;
}

void td_timer0_handler(void);
void td_timer0_handler(void)
{
    TD_MPS2_TIMER0_CTRL = 0;
    TD_MPS2_TIMER0_INTCLEAR = 1u;
}

void td_port_init(void)
{
    td_mps2_uart_enable();
    td_mps2_elapsed_periods_cycles = 0;
    TD_MPS2_SYST_CSR = 0;
    TD_MPS2_SYST_RVR = TD_MPS2_SYSTICK_RELOAD;
    TD_MPS2_SYST_CVR = 0; /* any write clears the counter; it reloads on the next tick */
    TD_MPS2_SYST_CSR =
        TD_MPS2_SYST_CSR_PROCESSOR_CLOCK | TD_MPS2_SYST_CSR_TICKINT | TD_MPS2_SYST_CSR_ENABLE;
    /* The cleared counter reloads on the first tick; until then it would read as a full
     * period already elapsed. */
    while (TD_MPS2_SYST_CVR == 0) {
    }
    TD_MPS2_NVIC_ISER0 = (1u << TD_MPS2_IRQ_UART0_RX) | (1u << TD_MPS2_IRQ_TIMER0);
    __asm volatile("cpsie i" ::: "memory");
}

void td_port_write(const uint8_t *data, size_t length)
{
    for (size_t i = 0; i < length; ++i) {
        while (TD_MPS2_UART0_STATE & TD_MPS2_UART_STATE_TX_FULL) {
        }
        TD_MPS2_UART0_DATA = data[i];
    }
}

size_t td_port_read(uint8_t *buffer, size_t capacity, uint32_t timeout_ms)
{
    if (capacity == 0) {
        return 0;
    }
    if (!(TD_MPS2_UART0_STATE & TD_MPS2_UART_STATE_RX_FULL) && timeout_ms > 0) {
        const uint64_t start = td_port_cycles();
        const uint64_t wait = (uint64_t)timeout_ms * (TD_MPS2_SYSCLK_HZ / 1000u);
        /* The receive interrupt only while waiting: at any other time each byte of a replay
         * would cost an interrupt in the middle of the work being timed. */
        TD_MPS2_UART0_CTRL |= TD_MPS2_UART_CTRL_RX_INTERRUPT;
        for (;;) {
            /* Interrupts stay masked from the test to the wfi, so a byte arriving between
             * them still wakes it (a pending interrupt ends wfi even while masked). */
            __asm volatile("cpsid i" ::: "memory");
            const uint64_t elapsed = td_port_cycles() - start;
            if ((TD_MPS2_UART0_STATE & TD_MPS2_UART_STATE_RX_FULL) || elapsed >= wait) {
                __asm volatile("cpsie i" ::: "memory");
                break;
            }
            const uint64_t left = wait - elapsed;
            TD_MPS2_TIMER0_CTRL = 0;
            TD_MPS2_TIMER0_RELOAD = left > 0xFFFFFFFFu ? 0xFFFFFFFFu : (uint32_t)left;
            TD_MPS2_TIMER0_VALUE = TD_MPS2_TIMER0_RELOAD;
            TD_MPS2_TIMER0_CTRL = TD_MPS2_TIMER_CTRL_ENABLE | TD_MPS2_TIMER_CTRL_INTERRUPT;
            __asm volatile("wfi\n\tcpsie i" ::: "memory"); /* the waking interrupt runs here */
        }
        TD_MPS2_TIMER0_CTRL = 0;
        TD_MPS2_UART0_CTRL &= ~TD_MPS2_UART_CTRL_RX_INTERRUPT;
        TD_MPS2_UART0_INTCLEAR = TD_MPS2_UART_INT_RX;
    }
    size_t count = 0;
    while (count < capacity && (TD_MPS2_UART0_STATE & TD_MPS2_UART_STATE_RX_FULL)) {
        buffer[count++] = (uint8_t)TD_MPS2_UART0_DATA;
    }
    return count;
}

uint64_t td_port_cycles(void)
{
    uint32_t primask;
    __asm volatile("mrs %0, primask\n\tcpsid i" : "=r"(primask)::"memory");
    uint32_t remaining = TD_MPS2_SYST_CVR;
    uint64_t periods = td_mps2_elapsed_periods_cycles;
    /* The counter wrapped but its interrupt has not run yet (interrupts are off here, or
     * it wrapped a moment ago): count that period, and read the counter again in case
     * the first read came from just before the wrap. */
    if (TD_MPS2_SCB_ICSR & TD_MPS2_SCB_ICSR_PENDSTSET) {
        remaining = TD_MPS2_SYST_CVR;
        periods += (uint64_t)TD_MPS2_SYSTICK_RELOAD + 1u;
    }
    __asm volatile("msr primask, %0" ::"r"(primask) : "memory");
    return periods + (TD_MPS2_SYSTICK_RELOAD - remaining);
}

uint32_t td_port_cycle_hz(void)
{
    return TD_MPS2_SYSCLK_HZ;
}

uint32_t td_port_millis(void)
{
    return (uint32_t)(td_port_cycles() / (TD_MPS2_SYSCLK_HZ / 1000u));
}

const char *td_port_board_name(void)
{
    return "mps2_an386";
}

void td_port_exit(int code)
{
    /* Let the last byte leave the transmitter: QEMU drops it if we exit first. */
    if (TD_MPS2_UART0_CTRL & TD_MPS2_UART_CTRL_TX_ENABLE) {
        while (TD_MPS2_UART0_STATE & TD_MPS2_UART_STATE_TX_FULL) {
        }
    }
    const uint32_t parameters[2] = {TD_SEMIHOSTING_ADP_STOPPED_APPLICATION_EXIT, (uint32_t)code};
    register uint32_t operation __asm("r0") = TD_SEMIHOSTING_SYS_EXIT_EXTENDED;
    register const uint32_t *argument __asm("r1") = parameters;
    __asm volatile("bkpt 0xab" : : "r"(operation), "r"(argument) : "memory");
    for (;;) {
        __asm volatile("wfi");
    }
}
