/* An I2S MEMS microphone (INMP441, ICS-43434...) on STM32F4 for td_port, built when
 * TD_STM32F4_I2S_MIC is defined (the Nucleo-F446RE env does; the Discovery's on-board
 * microphone is PDM, which this driver does not decode).
 *
 * Wiring: SPI2 as I2S2 master receiver, PB10 = CK (BCLK), PB12 = WS (LRCLK), PC3 = SD,
 * L/R to GND (left slot). The microphone's 24-bit samples arrive as two half-words per
 * slot; DMA1 stream 3 (channel 0) fills a circular buffer and each half-complete
 * interrupt moves the left slot's upper 16 bits into the ring td_port_mic_read() drains.
 * PLLI2S: 1 MHz x 256 / 2 = 128 MHz, which divides exactly to 16 kHz x 64 bit clocks. */
#include "stm32f4xx_hal.h"

#include "td_pcm_ring.h"
#include "td_port.h"

#if defined(TD_STM32F4_I2S_MIC)

#define TD_STM32_MIC_FRAMES 256u /* stereo frames per DMA half-buffer */
#define TD_STM32_MIC_HALFWORDS_PER_FRAME 4u /* left hi, left lo, right hi, right lo */

static I2S_HandleTypeDef td_stm32_i2s;
static DMA_HandleTypeDef td_stm32_i2s_dma;
static uint16_t td_stm32_mic_dma[2u * TD_STM32_MIC_FRAMES * TD_STM32_MIC_HALFWORDS_PER_FRAME];
static td_pcm_ring td_stm32_mic_ring;

static bool td_stm32_mic_clock(void)
{
    RCC_PeriphCLKInitTypeDef clock = {0};
#if defined(STM32F446xx)
    clock.PeriphClockSelection = RCC_PERIPHCLK_I2S_APB1;
    clock.PLLI2S.PLLI2SM = 16;
    clock.PLLI2S.PLLI2SN = 256;
    clock.PLLI2S.PLLI2SP = RCC_PLLI2SP_DIV2;
    clock.PLLI2S.PLLI2SQ = 2;
    clock.PLLI2S.PLLI2SR = 2;
    clock.I2sApb1ClockSelection = RCC_I2SAPB1CLKSOURCE_PLLI2S;
#else
    clock.PeriphClockSelection = RCC_PERIPHCLK_I2S;
    clock.PLLI2S.PLLI2SN = 256;
    clock.PLLI2S.PLLI2SR = 2;
#endif
    return HAL_RCCEx_PeriphCLKConfig(&clock) == HAL_OK;
}

static void td_stm32_mic_pins(void)
{
    GPIO_InitTypeDef pins = {0};
    __HAL_RCC_GPIOB_CLK_ENABLE();
    __HAL_RCC_GPIOC_CLK_ENABLE();
    pins.Mode = GPIO_MODE_AF_PP;
    pins.Pull = GPIO_NOPULL;
    pins.Speed = GPIO_SPEED_FREQ_HIGH;
    pins.Alternate = GPIO_AF5_SPI2;
    pins.Pin = GPIO_PIN_10 | GPIO_PIN_12;
    HAL_GPIO_Init(GPIOB, &pins);
    pins.Pin = GPIO_PIN_3;
    HAL_GPIO_Init(GPIOC, &pins);
}

static void td_stm32_mic_take(const uint16_t *halfwords)
{
    int16_t pcm[TD_STM32_MIC_FRAMES];
    for (uint32_t frame = 0; frame < TD_STM32_MIC_FRAMES; ++frame) {
        pcm[frame] = (int16_t)halfwords[frame * TD_STM32_MIC_HALFWORDS_PER_FRAME];
    }
    td_pcm_ring_push(&td_stm32_mic_ring, pcm, TD_STM32_MIC_FRAMES);
}

void HAL_I2S_RxHalfCpltCallback(I2S_HandleTypeDef *i2s)
{
    (void)i2s;
    td_stm32_mic_take(td_stm32_mic_dma);
}

void HAL_I2S_RxCpltCallback(I2S_HandleTypeDef *i2s)
{
    (void)i2s;
    td_stm32_mic_take(td_stm32_mic_dma + TD_STM32_MIC_FRAMES * TD_STM32_MIC_HALFWORDS_PER_FRAME);
}

void DMA1_Stream3_IRQHandler(void);
void DMA1_Stream3_IRQHandler(void)
{
    HAL_DMA_IRQHandler(&td_stm32_i2s_dma);
}

bool td_port_mic_start(uint32_t sample_rate_hz)
{
    if (sample_rate_hz != 16000u || !td_stm32_mic_clock()) {
        return false;
    }
    td_stm32_mic_pins();
    __HAL_RCC_SPI2_CLK_ENABLE();
    __HAL_RCC_DMA1_CLK_ENABLE();

    td_stm32_i2s_dma.Instance = DMA1_Stream3;
    td_stm32_i2s_dma.Init.Channel = DMA_CHANNEL_0;
    td_stm32_i2s_dma.Init.Direction = DMA_PERIPH_TO_MEMORY;
    td_stm32_i2s_dma.Init.PeriphInc = DMA_PINC_DISABLE;
    td_stm32_i2s_dma.Init.MemInc = DMA_MINC_ENABLE;
    td_stm32_i2s_dma.Init.PeriphDataAlignment = DMA_PDATAALIGN_HALFWORD;
    td_stm32_i2s_dma.Init.MemDataAlignment = DMA_MDATAALIGN_HALFWORD;
    td_stm32_i2s_dma.Init.Mode = DMA_CIRCULAR;
    td_stm32_i2s_dma.Init.Priority = DMA_PRIORITY_HIGH;
    td_stm32_i2s_dma.Init.FIFOMode = DMA_FIFOMODE_DISABLE;
    if (HAL_DMA_Init(&td_stm32_i2s_dma) != HAL_OK) {
        return false;
    }
    __HAL_LINKDMA(&td_stm32_i2s, hdmarx, td_stm32_i2s_dma);
    HAL_NVIC_SetPriority(DMA1_Stream3_IRQn, 2, 0);
    HAL_NVIC_EnableIRQ(DMA1_Stream3_IRQn);

    td_stm32_i2s.Instance = SPI2;
    td_stm32_i2s.Init.Mode = I2S_MODE_MASTER_RX;
    td_stm32_i2s.Init.Standard = I2S_STANDARD_PHILIPS;
    td_stm32_i2s.Init.DataFormat = I2S_DATAFORMAT_24B;
    td_stm32_i2s.Init.MCLKOutput = I2S_MCLKOUTPUT_DISABLE;
    td_stm32_i2s.Init.AudioFreq = I2S_AUDIOFREQ_16K;
    td_stm32_i2s.Init.CPOL = I2S_CPOL_LOW;
    td_stm32_i2s.Init.ClockSource = I2S_CLOCK_PLL;
    td_stm32_i2s.Init.FullDuplexMode = I2S_FULLDUPLEXMODE_DISABLE;
    if (HAL_I2S_Init(&td_stm32_i2s) != HAL_OK) {
        return false;
    }
    td_pcm_ring_reset(&td_stm32_mic_ring);
    /* The size counts 24-bit data items, two per frame; HAL moves two half-words each. */
    return HAL_I2S_Receive_DMA(&td_stm32_i2s, td_stm32_mic_dma, 2u * 2u * TD_STM32_MIC_FRAMES) ==
           HAL_OK;
}

size_t td_port_mic_read(int16_t *samples, size_t capacity)
{
    return td_pcm_ring_pop(&td_stm32_mic_ring, samples, capacity);
}

uint32_t td_port_mic_dropped(void)
{
    return td_stm32_mic_ring.dropped;
}

#else /* no I2S microphone wired on this board */

bool td_port_mic_start(uint32_t sample_rate_hz)
{
    (void)sample_rate_hz;
    return false;
}

size_t td_port_mic_read(int16_t *samples, size_t capacity)
{
    (void)samples;
    (void)capacity;
    return 0;
}

uint32_t td_port_mic_dropped(void)
{
    return 0;
}

#endif
