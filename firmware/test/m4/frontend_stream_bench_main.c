/* The streaming front end's cost on the emulated Cortex-M4: one reset, then hop after hop
 * over a fixed stream, as a wake-word device runs it (build with TD_FRONTEND_STEP_MS=10 for
 * microWakeWord's models; any step works). Counted in instructions on QEMU's mps2-an386
 * with -icount shift=0, like bench_main.c.
 *
 * Prints one line for the host (tinydrift.target.bench.run_frontend_stream_bench): the
 * frames, the first frame's cycles (it waits for a whole window), the total and the
 * largest of the later frames' cycles, the stack depth reached, and FNV-1a over every
 * frame's uint16 output, so the host can check the run against its own front end.
 *
 * Built with the generated td_bench_pcm.h (the stream).
 */
#include <stdint.h>
#include <string.h>

#include "td_bench_pcm.h"
#include "td_frontend.h"
#include "td_port.h"

#define TD_BENCH_STREAM_SAMPLES (sizeof td_bench_pcm / sizeof td_bench_pcm[0])
#define TD_BENCH_STACK_PAINT 0xA5A5A5A5u

/* From mps2_an386.ld: the stack section's top and size (an absolute symbol). */
extern uint32_t td_stack_top;
extern char td_stack_size[];

static td_frontend_t bench_frontend;

static void print_text(const char *text)
{
    td_port_write((const uint8_t *)text, strlen(text));
}

static void print_u32(const char *name, uint32_t value)
{
    char digits[10];
    int count = 0;
    print_text(name);
    do {
        digits[count++] = (char)('0' + value % 10u);
        value /= 10u;
    } while (value != 0);
    while (count > 0) {
        td_port_write((const uint8_t *)&digits[--count], 1);
    }
}

/* FNV-1a over the frames' bytes as they lie in memory (little-endian uint16). */
static uint32_t fnv1a(uint32_t hash, const uint16_t *values, uint32_t count)
{
    const uint8_t *bytes = (const uint8_t *)values;
    for (uint32_t i = 0; i < count * 2u; ++i) {
        hash = (hash ^ bytes[i]) * 16777619u;
    }
    return hash;
}

static uint32_t *stack_bottom(void)
{
    return (uint32_t *)((uintptr_t)&td_stack_top - (uintptr_t)td_stack_size);
}

/* Fills the unused stack below this frame with a pattern, so the deepest use shows later. */
static void paint_stack(void)
{
    uint32_t here;
    __asm volatile("mov %0, sp" : "=r"(here));
    for (uint32_t *word = stack_bottom(); (uintptr_t)word < here - 256u; ++word) {
        *word = TD_BENCH_STACK_PAINT;
    }
}

static uint32_t stack_used_bytes(void)
{
    const uint32_t *word = stack_bottom();
    while ((uintptr_t)word < (uintptr_t)&td_stack_top && *word == TD_BENCH_STACK_PAINT) {
        ++word;
    }
    return (uint32_t)((uintptr_t)&td_stack_top - (uintptr_t)word);
}

int td_app_main(void)
{
    uint16_t raw[TD_FRONTEND_NUM_CHANNELS];
    uint32_t hash = 2166136261u;
    uint32_t frames = 0, first_cycles = 0, later_cycles = 0, max_cycles = 0;
    size_t position = 0;

    td_port_init();
    paint_stack();
    td_frontend_reset(&bench_frontend);
    while (position + td_frontend_hop_samples(&bench_frontend) <= TD_BENCH_STREAM_SAMPLES) {
        const size_t hop = td_frontend_hop_samples(&bench_frontend);
        const uint64_t start = td_port_cycles();
        const int status = td_frontend_process_hop_raw(&bench_frontend, &td_bench_pcm[position], hop, raw);
        const uint32_t cycles = (uint32_t)(td_port_cycles() - start);
        if (status != TD_FRONTEND_OK) {
            print_text("td_bench: a hop was refused\n");
            return 1;
        }
        if (frames == 0) {
            first_cycles = cycles;
        } else {
            later_cycles += cycles;
            max_cycles = cycles > max_cycles ? cycles : max_cycles;
        }
        hash = fnv1a(hash, raw, TD_FRONTEND_NUM_CHANNELS);
        position += hop;
        ++frames;
    }
    print_u32("td_bench frames=", frames);
    print_u32(" step_samples=", TD_FRONTEND_STEP_SAMPLES);
    print_u32(" first_cycles=", first_cycles);
    print_u32(" later_cycles=", later_cycles);
    print_u32(" max_frame_cycles=", max_cycles);
    print_u32(" stack_used_bytes=", stack_used_bytes());
    print_u32(" raw_fnv1a=", hash);
    print_text("\n");
    return 0;
}
