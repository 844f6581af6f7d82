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
#include "td_m4_report.h"
#include "td_port.h"

#define TD_BENCH_STREAM_SAMPLES (sizeof td_bench_pcm / sizeof td_bench_pcm[0])

static td_frontend_t bench_frontend;

int td_app_main(void)
{
    uint16_t raw[TD_FRONTEND_NUM_CHANNELS];
    uint32_t hash = TD_M4_FNV1A_START;
    uint32_t frames = 0, first_cycles = 0, later_cycles = 0, max_cycles = 0;
    size_t position = 0;

    td_port_init();
    td_m4_paint_stack();
    td_frontend_reset(&bench_frontend);
    while (position + td_frontend_hop_samples(&bench_frontend) <= TD_BENCH_STREAM_SAMPLES) {
        const size_t hop = td_frontend_hop_samples(&bench_frontend);
        const uint64_t start = td_port_cycles();
        const int status = td_frontend_process_hop_raw(&bench_frontend, &td_bench_pcm[position], hop, raw);
        const uint32_t cycles = (uint32_t)(td_port_cycles() - start);
        if (status != TD_FRONTEND_OK) {
            td_m4_print_text("td_bench: a hop was refused\n");
            return 1;
        }
        if (frames == 0) {
            first_cycles = cycles;
        } else {
            later_cycles += cycles;
            max_cycles = cycles > max_cycles ? cycles : max_cycles;
        }
        hash = td_m4_fnv1a(hash, raw, sizeof raw);
        position += hop;
        ++frames;
    }
    td_m4_print_u32("td_bench frames=", frames);
    td_m4_print_u32(" step_samples=", TD_FRONTEND_STEP_SAMPLES);
    td_m4_print_u32(" first_cycles=", first_cycles);
    td_m4_print_u32(" later_cycles=", later_cycles);
    td_m4_print_u32(" max_frame_cycles=", max_cycles);
    td_m4_print_u32(" stack_used_bytes=", td_m4_stack_used_bytes());
    td_m4_print_u32(" raw_fnv1a=", hash);
    td_m4_print_text("\n");
    return 0;
}
