/* tinydrift's device benchmark: the pipeline's stages on fixed inputs, counted in
 * instructions on QEMU's mps2-an386 (-icount shift=0 makes td_port_cycles() advance once
 * per 40 instructions; the host converts).
 *
 * Stages: the front end on a 1 s clip (49 frames), the model with the optimized kernels
 * (td_opt_*, generated with TD_KERNELS_OPTIMIZED=1) and the same model with the reference
 * kernels (td_ref_*), then the drift monitor: sensor health on the clip's 50 blocks of 320
 * samples (as the app runs it on a window's new samples), td_summarize_frames and
 * td_monitor_update, the last two averaged over TD_BENCH_MONITOR_REPEAT calls after the
 * commissioning inferences (untimed: every later inference costs the steady state). Prints one line for the host
 * (tinydrift.target.bench) with the counts, the stack depth reached, the features'
 * checksum and both models' outputs, so the host can check them against its own front end
 * and TFLite Micro before it reports anything.
 *
 * Built by tinydrift.target.bench (see firmware/bench/README.md) with the generated files
 * td_model_opt.h, td_model_ref.h, td_bench_pcm.h, and the model's monitor config named by
 * TD_BENCH_MONITOR_CONFIG_HEADER / TD_BENCH_MONITOR_CONFIG_VAR. Without TD_BENCH_REFERENCE
 * the reference model is left out: that image is the pipeline the size report measures.
 */
#include <stdint.h>
#include <string.h>

#include "td_bench_pcm.h"
#include "td_frontend.h"
#include "td_model_opt.h"
#include "td_monitor.h"
#include "td_m4_report.h"
#include "td_port.h"
#include TD_BENCH_MONITOR_CONFIG_HEADER
#if TD_BENCH_REFERENCE
#include "td_model_ref.h"
#endif

#ifndef TD_BENCH_MONITOR_REPEAT
#define TD_BENCH_MONITOR_REPEAT 64
#endif

#define TD_BENCH_CLIP_SAMPLES (sizeof td_bench_pcm / sizeof td_bench_pcm[0])

static td_frontend_t bench_frontend;
static int8_t bench_features[TD_FRONTEND_FEATURES];
static int16_t bench_summary[TD_MONITOR_MAX_SUMMARY];
static td_monitor_state_t bench_monitor;
static volatile uint32_t bench_sink;

static uint32_t cycles_since(uint64_t start)
{
    return (uint32_t)(td_port_cycles() - start);
}

int td_app_main(void)
{
    const td_monitor_config_t *config = &TD_BENCH_MONITOR_CONFIG_VAR;
    td_monitor_result_t result;
    uint64_t start;

    td_port_init();
    td_m4_paint_stack();
    if (td_monitor_init(&bench_monitor, config) != TD_MONITOR_OK) {
        td_m4_print_text("td_bench: monitor config refused\n");
        return 1;
    }

    start = td_port_cycles();
    td_frontend_reset(&bench_frontend);
    const int frontend_status = td_frontend_process_clip(&bench_frontend, td_bench_pcm, bench_features);
    const uint32_t frontend_cycles = cycles_since(start);

    memcpy(td_opt_input(), bench_features, TD_OPT_INPUT_SIZE);
    start = td_port_cycles();
    const int model_status = td_opt_invoke();
    const uint32_t model_cycles = cycles_since(start);

#if TD_BENCH_REFERENCE
    memcpy(td_ref_input(), bench_features, TD_REF_INPUT_SIZE);
    start = td_port_cycles();
    const int reference_status = td_ref_invoke();
    const uint32_t reference_cycles = cycles_since(start);
#else
    const int reference_status = 0;
#endif

    start = td_port_cycles();
    for (uint32_t at = 0; at < TD_BENCH_CLIP_SAMPLES; at += TD_FRONTEND_STEP_SAMPLES) {
        td_sensor_update(&bench_monitor, config, &td_bench_pcm[at], TD_FRONTEND_STEP_SAMPLES, 0);
    }
    const uint32_t sensor_cycles = cycles_since(start);

    start = td_port_cycles();
    for (uint32_t i = 0; i < TD_BENCH_MONITOR_REPEAT; ++i) {
        td_summarize_frames(td_opt_input(), TD_FRONTEND_NUM_FRAMES, config->n_summary, bench_summary);
    }
    const uint32_t summarize_cycles = cycles_since(start);

    for (uint32_t i = 0; i < config->commission_n; ++i) {
        td_monitor_update(&bench_monitor, config, bench_summary, td_opt_output(), &result);
    }
    start = td_port_cycles();
    for (uint32_t i = 0; i < TD_BENCH_MONITOR_REPEAT; ++i) {
        td_monitor_update(&bench_monitor, config, bench_summary, td_opt_output(), &result);
        bench_sink += result.alarms;
    }
    const uint32_t update_cycles = cycles_since(start);

    if (frontend_status != 0 || model_status != 0 || reference_status != 0) {
        td_m4_print_text("td_bench: a stage failed\n");
        return 2;
    }
    /* Milli-cycles per monitor call keep the counter's resolution over the repeats. */
    td_m4_print_u32("td_bench frontend_cycles=", frontend_cycles);
    td_m4_print_u32(" model_cycles=", model_cycles);
#if TD_BENCH_REFERENCE
    td_m4_print_u32(" reference_model_cycles=", reference_cycles);
#endif
    td_m4_print_u32(" sensor_cycles=", sensor_cycles);
    td_m4_print_u32(" summarize_millicycles=", (uint32_t)((uint64_t)summarize_cycles * 1000u / TD_BENCH_MONITOR_REPEAT));
    td_m4_print_u32(" update_millicycles=", (uint32_t)((uint64_t)update_cycles * 1000u / TD_BENCH_MONITOR_REPEAT));
    td_m4_print_u32(" stack_used_bytes=", td_m4_stack_used_bytes());
    td_m4_print_u32(" monitor_state_bytes=", td_monitor_state_size());
    td_m4_print_u32(" monitor_commission_bytes=", td_monitor_commission_size());
    td_m4_print_u32(" features_fnv1a=", td_m4_fnv1a(TD_M4_FNV1A_START, bench_features, TD_FRONTEND_FEATURES));
    td_m4_print_hex(" output=", td_opt_output(), TD_OPT_OUTPUT_SIZE);
#if TD_BENCH_REFERENCE
    td_m4_print_hex(" reference_output=", td_ref_output(), TD_REF_OUTPUT_SIZE);
#endif
    td_m4_print_text("\n");
    return (int)(bench_sink & 0u);
}
