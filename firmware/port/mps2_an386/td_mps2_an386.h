/* Registers of QEMU's mps2-an386 that this port uses, and helpers shared by its files. */
#ifndef TD_MPS2_AN386_H
#define TD_MPS2_AN386_H

#include <stdbool.h>
#include <stdint.h>

#define TD_MPS2_REG(address) (*(volatile uint32_t *)(address))

/* Every clock on the board (core, SysTick's processor clock, APB) runs at SYSCLK. */
#define TD_MPS2_SYSCLK_HZ 25000000u

/* CMSDK APB UART0: one-byte transmit and receive buffers, no FIFO. QEMU stops taking
 * input from its chardev while the receive buffer is full, so a slow reader loses
 * nothing: the host's writes block instead. */
#define TD_MPS2_UART0_DATA TD_MPS2_REG(0x40004000u)
#define TD_MPS2_UART0_STATE TD_MPS2_REG(0x40004004u)
#define TD_MPS2_UART0_CTRL TD_MPS2_REG(0x40004008u)
#define TD_MPS2_UART0_BAUDDIV TD_MPS2_REG(0x40004010u)
#define TD_MPS2_UART_STATE_TX_FULL (1u << 0)
#define TD_MPS2_UART_STATE_RX_FULL (1u << 1)
#define TD_MPS2_UART0_INTCLEAR TD_MPS2_REG(0x4000400Cu)
#define TD_MPS2_UART_CTRL_TX_ENABLE (1u << 0)
#define TD_MPS2_UART_CTRL_RX_ENABLE (1u << 1)
#define TD_MPS2_UART_CTRL_RX_INTERRUPT (1u << 3)
#define TD_MPS2_UART_INT_RX (1u << 1)
#define TD_MPS2_UART_BAUD 115200u

/* CMSDK APB timer 0: counts down from VALUE at SYSCLK, interrupts at zero. */
#define TD_MPS2_TIMER0_CTRL TD_MPS2_REG(0x40000000u)
#define TD_MPS2_TIMER0_VALUE TD_MPS2_REG(0x40000004u)
#define TD_MPS2_TIMER0_RELOAD TD_MPS2_REG(0x40000008u)
#define TD_MPS2_TIMER0_INTCLEAR TD_MPS2_REG(0x4000000Cu)
#define TD_MPS2_TIMER_CTRL_ENABLE (1u << 0)
#define TD_MPS2_TIMER_CTRL_INTERRUPT (1u << 3)

/* External interrupt numbers QEMU wires to them, and the NVIC's set-enable register. */
#define TD_MPS2_IRQ_UART0_RX 0u
#define TD_MPS2_IRQ_TIMER0 8u
#define TD_MPS2_NVIC_ISER0 TD_MPS2_REG(0xE000E100u)

/* SysTick and the System Control Block. */
#define TD_MPS2_SYST_CSR TD_MPS2_REG(0xE000E010u)
#define TD_MPS2_SYST_RVR TD_MPS2_REG(0xE000E014u)
#define TD_MPS2_SYST_CVR TD_MPS2_REG(0xE000E018u)
#define TD_MPS2_SYST_CSR_ENABLE (1u << 0)
#define TD_MPS2_SYST_CSR_TICKINT (1u << 1)
#define TD_MPS2_SYST_CSR_PROCESSOR_CLOCK (1u << 2)
#define TD_MPS2_SCB_ICSR TD_MPS2_REG(0xE000ED04u)
#define TD_MPS2_SCB_ICSR_PENDSTSET (1u << 26)
#define TD_MPS2_SCB_CFSR TD_MPS2_REG(0xE000ED28u)
#define TD_MPS2_SCB_CPACR TD_MPS2_REG(0xE000ED88u)

/* Turns UART0 on; safe to call again (the fault handler does, in case init never ran). */
void td_mps2_uart_enable(void);

/* Prints the low `digits` hex digits of `value`. */
void td_mps2_print_hex(uint32_t value, int digits);

/* Semihosting (td_semihosting_mps2_an386.c): QEMU serves these with
 * `-semihosting-config enable=on,target=native`. */
#define TD_SEMIHOSTING_SYS_OPEN 0x01u
#define TD_SEMIHOSTING_SYS_CLOSE 0x02u
#define TD_SEMIHOSTING_SYS_WRITE 0x05u
#define TD_SEMIHOSTING_SYS_READ 0x06u
#define TD_SEMIHOSTING_SYS_GET_CMDLINE 0x15u
#define TD_SEMIHOSTING_OPEN_READ_BINARY 1u  /* SYS_OPEN mode "rb" */
#define TD_SEMIHOSTING_OPEN_WRITE_BINARY 5u /* SYS_OPEN mode "wb" */

/* One semihosting call: `operation` with its parameter block; returns what r0 holds after. */
uint32_t td_mps2_semihosting(uint32_t operation, const void *parameters);

/* The value of `name=value` on QEMU's semihosting command line
 * (`-semihosting-config ...,arg=firmware,arg=audio=/tmp/clips.pcm,arg=stride=8000`), or NULL.
 * Values hold no spaces: QEMU joins the arguments with single spaces. */
const char *td_mps2_option(const char *name);

/* The emulated board's microphone is the raw PCM file named by the `audio` option (16-bit
 * little-endian mono at 16 kHz): true once td_port_mic_read has reached its end. The
 * application then says goodbye and exits, so a run over a file terminates. */
bool td_mps2_mic_ended(void);

#endif /* TD_MPS2_AN386_H */
