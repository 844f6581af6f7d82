/* td_port for STM32F4 boards on the STM32Cube HAL (PlatformIO: platform ststm32, framework
 * stm32cube): Nucleo-F446RE (180 MHz) and STM32F4-Discovery (STM32F407VG, 168 MHz, the
 * board Renode models).
 *
 * Both run from the 16 MHz HSI through the PLL, so no board-specific crystal matters.
 * Console: USART2 on PA2 (TX) / PA3 (RX), 115200 8N1: the ST-LINK virtual COM port on the
 * Nucleo, pins PA2/PA3 on the Discovery. Received bytes go through an interrupt into a
 * ring: a real UART has no back-pressure, so a sender must not outrun the application by
 * more than TD_STM32F4_RX_RING bytes. Cycles: SysTick (1 kHz, HAL's tick) combined with its
 * current count, at the core clock. Microphone: td_mic_stm32f4.c.
 *
 * Written for the boards; it cannot be built in tinydrift's offline environment (no
 * registry platforms there). */
#include "stm32f4xx_hal.h"

#include "td_port.h"

#ifndef TD_STM32F4_SYSCLK_HZ
#error "define TD_STM32F4_SYSCLK_HZ (180000000u for the F446, 168000000u for the F407)"
#endif
#define TD_STM32F4_RX_RING 1024u /* a power of two */

static UART_HandleTypeDef td_stm32_console;
static volatile uint8_t td_stm32_rx_ring[TD_STM32F4_RX_RING];
static volatile uint32_t td_stm32_rx_head; /* written by the interrupt */
static volatile uint32_t td_stm32_rx_tail; /* written by td_port_read */
static volatile uint32_t td_stm32_rx_overflows;
static volatile uint64_t td_stm32_ticks; /* SysTick periods since start-up */

/* 16 MHz HSI / 16 = 1 MHz into the PLL; N and P give the core clock, Q = 7 keeps the
 * 48 MHz domain legal. */
static void td_stm32_clock_config(void)
{
    RCC_OscInitTypeDef oscillator = {0};
    RCC_ClkInitTypeDef clocks = {0};

    __HAL_RCC_PWR_CLK_ENABLE();
    __HAL_PWR_VOLTAGESCALING_CONFIG(PWR_REGULATOR_VOLTAGE_SCALE1);

    oscillator.OscillatorType = RCC_OSCILLATORTYPE_HSI;
    oscillator.HSIState = RCC_HSI_ON;
    oscillator.HSICalibrationValue = RCC_HSICALIBRATION_DEFAULT;
    oscillator.PLL.PLLState = RCC_PLL_ON;
    oscillator.PLL.PLLSource = RCC_PLLSOURCE_HSI;
    oscillator.PLL.PLLM = 16;
    oscillator.PLL.PLLN = (TD_STM32F4_SYSCLK_HZ / 1000000u) * 2u;
    oscillator.PLL.PLLP = RCC_PLLP_DIV2;
    oscillator.PLL.PLLQ = 7;
#if defined(STM32F446xx)
    oscillator.PLL.PLLR = 2;
#endif
    if (HAL_RCC_OscConfig(&oscillator) != HAL_OK) {
        for (;;) {
        }
    }
#if defined(STM32F446xx)
    /* 180 MHz needs the regulator's over-drive mode. */
    if (TD_STM32F4_SYSCLK_HZ > 168000000u && HAL_PWREx_EnableOverDrive() != HAL_OK) {
        for (;;) {
        }
    }
#endif
    clocks.ClockType = RCC_CLOCKTYPE_HCLK | RCC_CLOCKTYPE_SYSCLK | RCC_CLOCKTYPE_PCLK1 |
                       RCC_CLOCKTYPE_PCLK2;
    clocks.SYSCLKSource = RCC_SYSCLKSOURCE_PLLCLK;
    clocks.AHBCLKDivider = RCC_SYSCLK_DIV1;
    clocks.APB1CLKDivider = RCC_HCLK_DIV4; /* <= 45 MHz */
    clocks.APB2CLKDivider = RCC_HCLK_DIV2; /* <= 90 MHz */
    if (HAL_RCC_ClockConfig(&clocks, FLASH_LATENCY_5) != HAL_OK) {
        for (;;) {
        }
    }
}

int main(void)
{
    HAL_Init();
    td_stm32_clock_config();
    td_port_exit(td_app_main());
}

void SysTick_Handler(void);
void SysTick_Handler(void)
{
    td_stm32_ticks++;
    HAL_IncTick();
}

void USART2_IRQHandler(void);
void USART2_IRQHandler(void)
{
    const uint32_t status = USART2->SR;
    if (status & (USART_SR_RXNE | USART_SR_ORE)) {
        const uint8_t byte = (uint8_t)USART2->DR; /* reading DR also clears an overrun */
        const uint32_t head = td_stm32_rx_head;
        if (head - td_stm32_rx_tail < TD_STM32F4_RX_RING) {
            td_stm32_rx_ring[head & (TD_STM32F4_RX_RING - 1u)] = byte;
            td_stm32_rx_head = head + 1u;
        } else {
            td_stm32_rx_overflows++;
        }
    }
}

void td_port_init(void)
{
    GPIO_InitTypeDef pins = {0};
    __HAL_RCC_GPIOA_CLK_ENABLE();
    __HAL_RCC_USART2_CLK_ENABLE();
    pins.Pin = GPIO_PIN_2 | GPIO_PIN_3;
    pins.Mode = GPIO_MODE_AF_PP;
    pins.Pull = GPIO_PULLUP;
    pins.Speed = GPIO_SPEED_FREQ_VERY_HIGH;
    pins.Alternate = GPIO_AF7_USART2;
    HAL_GPIO_Init(GPIOA, &pins);

    td_stm32_console.Instance = USART2;
    td_stm32_console.Init.BaudRate = 115200;
    td_stm32_console.Init.WordLength = UART_WORDLENGTH_8B;
    td_stm32_console.Init.StopBits = UART_STOPBITS_1;
    td_stm32_console.Init.Parity = UART_PARITY_NONE;
    td_stm32_console.Init.Mode = UART_MODE_TX_RX;
    td_stm32_console.Init.HwFlowCtl = UART_HWCONTROL_NONE;
    td_stm32_console.Init.OverSampling = UART_OVERSAMPLING_16;
    if (HAL_UART_Init(&td_stm32_console) != HAL_OK) {
        for (;;) {
        }
    }
    td_stm32_rx_head = 0;
    td_stm32_rx_tail = 0;
    USART2->CR1 |= USART_CR1_RXNEIE;
    HAL_NVIC_SetPriority(USART2_IRQn, 1, 0);
    HAL_NVIC_EnableIRQ(USART2_IRQn);
}

void td_port_write(const uint8_t *data, size_t length)
{
    for (size_t i = 0; i < length; ++i) {
        while (!(USART2->SR & USART_SR_TXE)) {
        }
        USART2->DR = data[i];
    }
}

size_t td_port_read(uint8_t *buffer, size_t capacity, uint32_t timeout_ms)
{
    if (capacity == 0) {
        return 0;
    }
    const uint32_t start = HAL_GetTick();
    while (td_stm32_rx_head == td_stm32_rx_tail) {
        if (HAL_GetTick() - start >= timeout_ms) {
            return 0;
        }
    }
    size_t count = 0;
    uint32_t tail = td_stm32_rx_tail;
    const uint32_t head = td_stm32_rx_head;
    while (count < capacity && tail != head) {
        buffer[count++] = td_stm32_rx_ring[tail & (TD_STM32F4_RX_RING - 1u)];
        tail++;
    }
    td_stm32_rx_tail = tail;
    return count;
}

uint32_t td_port_millis(void)
{
    return HAL_GetTick();
}

uint64_t td_port_cycles(void)
{
    const uint32_t primask = __get_PRIMASK();
    __disable_irq();
    uint32_t remaining = SysTick->VAL;
    uint64_t periods = td_stm32_ticks;
    /* Wrapped, interrupt not yet taken: count the period and re-read the counter. */
    if (SCB->ICSR & SCB_ICSR_PENDSTSET_Msk) {
        remaining = SysTick->VAL;
        periods++;
    }
    __set_PRIMASK(primask);
    const uint32_t reload = SysTick->LOAD;
    return periods * ((uint64_t)reload + 1u) + (reload - remaining);
}

uint32_t td_port_cycle_hz(void)
{
    return HAL_RCC_GetHCLKFreq();
}

const char *td_port_board_name(void)
{
#if defined(STM32F446xx)
    return "nucleo_f446re";
#elif defined(STM32F407xx)
    return "disco_f407vg";
#else
    return "stm32f4";
#endif
}

void td_port_exit(int code)
{
    (void)code; /* nobody to hand it to: stay idle, the console stays readable */
    while (!(USART2->SR & USART_SR_TC)) {
    }
    for (;;) {
        __WFI();
    }
}
