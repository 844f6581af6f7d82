/*
 * Cost of the monitor on the target: td_app_main for any td_port (QEMU's mps2-an386 with
 * -icount shift=0 makes td_port_cycles an instruction counter). Runs each entry point
 * many times on varied inputs and prints one line:
 *   td_monitor_bench cycles_per_update=.. cycles_per_summarize=.. cycles_per_summarize_stream=..
 *   cycles_per_sensor320=.. cycles_per_feedback=.. cycles_per_summarize_image48=..
 *   state_bytes=.. commission_bytes=..
 * The three summaries are the three apps' (a keyword spotter's, a streaming wake-word
 * detector's, a camera's), timed whatever the config, so one run shows each.
 * Build with the generated config: -DTD_MONITOR_CONFIG_HEADER, -DTD_MONITOR_CONFIG_VAR.
 */
#include <stdint.h>

#include "td_monitor.h"
#include "td_port.h"
#include TD_MONITOR_CONFIG_HEADER

#define TD_BENCH_INPUTS 64
#define TD_BENCH_REPEAT 2048
/* The keyword app's summary: 49 frames x 40 channels, then the window's loudness and quiet
 * level (td_app_infer.c). */
#define TD_BENCH_FRAMES 49
#define TD_BENCH_CHANNELS 40
#define TD_BENCH_KEYWORD_SUMMARY (TD_BENCH_CHANNELS + 2)
/* The wake-word app's (td_app_stream.c): the 3 new frames' means, their at-floor counts over
 * channel pairs, the new samples' loudness. */
#define TD_BENCH_STREAM_FRAMES 3
#define TD_BENCH_FLOOR_GROUP 2
#define TD_BENCH_STREAM_SUMMARY (TD_BENCH_CHANNELS + TD_BENCH_CHANNELS / TD_BENCH_FLOOR_GROUP + 3)
/* The camera summary on the plant model's input: 48x48 RGB on a 3x3 grid. */
#define TD_BENCH_IMAGE_SIDE 48
#define TD_BENCH_IMAGE_GRID 3
#define TD_BENCH_IMAGE_REPEAT 64

static td_monitor_state_t bench_state;
static int16_t bench_summaries[TD_BENCH_INPUTS][TD_MONITOR_MAX_SUMMARY];
static int8_t bench_probs[TD_BENCH_INPUTS][TD_MONITOR_MAX_CLASSES];
static int8_t bench_features[TD_BENCH_FRAMES * TD_BENCH_CHANNELS];
static int16_t bench_keyword_summary[TD_BENCH_KEYWORD_SUMMARY];
static int16_t bench_stream_summary[TD_BENCH_STREAM_SUMMARY];
static td_quiet_t bench_quiet;
static int8_t bench_image[TD_BENCH_IMAGE_SIDE * TD_BENCH_IMAGE_SIDE * 3];
static int16_t bench_image_summary[TD_SUMMARY_IMAGE_LENGTH(TD_BENCH_IMAGE_GRID)];
static int16_t bench_pcm[320];
static volatile uint32_t bench_sink;

static uint32_t bench_random(uint32_t *seed)
{
    *seed = *seed * 1664525u + 1013904223u;
    return *seed >> 8;
}

static void bench_print_u32(const char *name, uint32_t value)
{
    char text[12];
    int n = 0, i;
    td_port_print(name);
    do {
        text[n++] = (char)('0' + value % 10u);
        value /= 10u;
    } while (value != 0);
    for (i = n - 1; i >= 0; --i) {
        td_port_write((const uint8_t *)&text[i], 1);
    }
}

int td_app_main(void)
{
    const td_monitor_config_t *config = &TD_MONITOR_CONFIG_VAR;
    td_monitor_result_t result;
    uint32_t seed = 12345u, i, j;
    uint64_t start, update, summarize, summarize_stream, sensor, feedback, summarize_image;

    td_port_init();
    for (i = 0; i < TD_BENCH_INPUTS; ++i) {
        for (j = 0; j < config->n_summary; ++j) {
            bench_summaries[i][j] = (int16_t)(config->ref_mean[j] + (int32_t)(bench_random(&seed) % 2001u) - 1000);
        }
        for (j = 0; j < config->n_classes; ++j) {
            bench_probs[i][j] = (int8_t)(-128 + (int32_t)(bench_random(&seed) % 40u));
        }
        bench_probs[i][bench_random(&seed) % config->n_classes] = (int8_t)(bench_random(&seed) % 256u - 128);
    }
    for (i = 0; i < sizeof bench_features; ++i) {
        bench_features[i] = (int8_t)(bench_random(&seed) % 256u - 128);
    }
    for (i = 0; i < sizeof bench_image; ++i) {
        bench_image[i] = (int8_t)(bench_random(&seed) % 256u - 128);
    }
    for (i = 0; i < 320; ++i) {
        bench_pcm[i] = (int16_t)(bench_random(&seed) % 8001u - 4000);
    }
    if (td_monitor_init(&bench_state, config) != TD_MONITOR_OK) {
        td_port_print("td_monitor_bench: config refused\n");
        return 1;
    }

    /* Commissioning first, untimed: the steady state is what every later inference costs. */
    for (i = 0; i < config->commission_n; ++i) {
        td_monitor_update(&bench_state, config, bench_summaries[i % TD_BENCH_INPUTS],
                          bench_probs[i % TD_BENCH_INPUTS], &result);
    }
    start = td_port_cycles();
    for (i = 0; i < TD_BENCH_REPEAT; ++i) {
        td_monitor_update(&bench_state, config, bench_summaries[i % TD_BENCH_INPUTS],
                          bench_probs[i % TD_BENCH_INPUTS], &result);
        bench_sink += result.alarms;
    }
    update = td_port_cycles() - start;

    start = td_port_cycles();
    for (i = 0; i < TD_BENCH_REPEAT; ++i) {
        bench_features[i % sizeof bench_features] = (int8_t)i; /* other features each call */
        td_summarize_frames(bench_features, TD_BENCH_FRAMES, TD_BENCH_CHANNELS, bench_keyword_summary);
        /* the loudness of a window's 16,000 new samples, another energy each call */
        bench_keyword_summary[TD_BENCH_CHANNELS] = td_summarize_level(((uint64_t)i << 24) + 16000u * 3000u);
        /* ...and of its quietest block */
        bench_keyword_summary[TD_BENCH_CHANNELS + 1] = td_summarize_level(((uint64_t)i << 12) + 320u * 30u);
        bench_sink += (uint32_t)bench_keyword_summary[0] + (uint32_t)bench_keyword_summary[TD_BENCH_CHANNELS] +
                      (uint32_t)bench_keyword_summary[TD_BENCH_CHANNELS + 1];
    }
    summarize = td_port_cycles() - start;

    td_quiet_reset(&bench_quiet);
    start = td_port_cycles();
    for (i = 0; i < TD_BENCH_REPEAT; ++i) {
        /* a different 3-frame block of the features each call, another loudness, and the
         * slope energy of an inference's 480 new samples (three hops of 160) */
        const int8_t *block = &bench_features[(i % (TD_BENCH_FRAMES / TD_BENCH_STREAM_FRAMES)) *
                                              TD_BENCH_STREAM_FRAMES * TD_BENCH_CHANNELS];
        const uint64_t energy = ((uint64_t)bench_random(&seed) << 16) + 12345u;
        const uint64_t slope = td_slope_energy(bench_pcm, 320u, bench_pcm[319]) +
                               td_slope_energy(bench_pcm, 160u, bench_pcm[319]);
        td_summarize_frames(block, TD_BENCH_STREAM_FRAMES, TD_BENCH_CHANNELS, bench_stream_summary);
        td_summarize_floor(block, TD_BENCH_STREAM_FRAMES, TD_BENCH_CHANNELS, TD_BENCH_FLOOR_GROUP,
                           &bench_stream_summary[TD_BENCH_CHANNELS]);
        bench_stream_summary[TD_BENCH_STREAM_SUMMARY - 3u] = td_summarize_level(energy);
        bench_stream_summary[TD_BENCH_STREAM_SUMMARY - 2u] = td_summarize_tilt(slope, energy);
        bench_stream_summary[TD_BENCH_STREAM_SUMMARY - 1u] =
            td_summarize_quiet(&bench_quiet, bench_stream_summary[TD_BENCH_STREAM_SUMMARY - 3u]);
        bench_sink += (uint32_t)bench_stream_summary[TD_BENCH_STREAM_SUMMARY - 1u];
    }
    summarize_stream = td_port_cycles() - start;

    start = td_port_cycles();
    for (i = 0; i < TD_BENCH_REPEAT; ++i) {
        td_sensor_update(&bench_state, config, bench_pcm, 320, 0);
    }
    sensor = td_port_cycles() - start;

    start = td_port_cycles();
    for (i = 0; i < TD_BENCH_REPEAT; ++i) {
        td_monitor_label_feedback(&bench_state, config, (int32_t)(i % config->n_classes),
                                  (int32_t)((i / 7u) % config->n_classes), 0);
    }
    feedback = td_port_cycles() - start;

    start = td_port_cycles();
    for (i = 0; i < TD_BENCH_IMAGE_REPEAT; ++i) {
        bench_image[i] = (int8_t)i; /* a different image each call */
        td_summarize_image(bench_image, TD_BENCH_IMAGE_SIDE, TD_BENCH_IMAGE_SIDE, TD_BENCH_IMAGE_GRID,
                           bench_image_summary);
        bench_sink += (uint32_t)bench_image_summary[0];
    }
    summarize_image = td_port_cycles() - start;

    /* Cycles per call in 1/1000 units, so the host keeps the resolution of the counter. */
    bench_print_u32("td_monitor_bench milli_cycles_per_update=", (uint32_t)(update * 1000u / TD_BENCH_REPEAT));
    bench_print_u32(" milli_cycles_per_summarize=", (uint32_t)(summarize * 1000u / TD_BENCH_REPEAT));
    bench_print_u32(" milli_cycles_per_summarize_stream=", (uint32_t)(summarize_stream * 1000u / TD_BENCH_REPEAT));
    bench_print_u32(" milli_cycles_per_sensor320=", (uint32_t)(sensor * 1000u / TD_BENCH_REPEAT));
    bench_print_u32(" milli_cycles_per_feedback=", (uint32_t)(feedback * 1000u / TD_BENCH_REPEAT));
    bench_print_u32(" milli_cycles_per_summarize_image48=",
                    (uint32_t)(summarize_image * 1000u / TD_BENCH_IMAGE_REPEAT));
    bench_print_u32(" state_bytes=", td_monitor_state_size());
    bench_print_u32(" commission_bytes=", td_monitor_commission_size());
    td_port_print("\n");
    return (int)(bench_sink & 0u);
}
