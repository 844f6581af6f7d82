/* tinydrift's firmware application: the board glue around the portable app (lib/tinydrift/
 * src/app). It polls the serial link for the host's commands and the microphone for audio,
 * and hands both to td_app, which runs one inference per 1 s window, the drift monitor on
 * each, and logs framed results (docs/protocol.md, docs/app.md).
 *
 * A camera model's build takes images instead: the board's camera (td_port_camera_*) and
 * images the host replays over the link (IMAGE frames: `tinydrift replay`); it runs until
 * the board stops.
 *
 * Audio sources: the board's microphone (td_port_mic_*), clips the host replays over the
 * link (AUDIO frames: `tinydrift replay`), and on the emulated board a host file read
 * through semihosting (`audio=PATH` on QEMU's command line), which also carries the options
 * `stride=SAMPLES`, `trace=0|1`, `heartbeat=INFERENCES` and `heartbeat_only=0|1`. When that file ends the app sends BYE and exits with 0.
 * Exit code 2: the build's options or model config are invalid (a text line says which).
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "app/td_app.h"
#include "td_port.h"

#if defined(TD_BOARD_MPS2_AN386)
#include "td_mps2_an386.h"
#endif

#define TD_MAIN_EXIT_BAD_SETUP 2
#define TD_MAIN_IDLE_WAIT_MS 10u /* without a microphone the link is all there is to wait for */
#define TD_MAIN_MIC_BLOCK 320u   /* 20 ms */

static td_app_t td_main_app;

static bool td_main_parse_u32(const char *text, uint32_t *value)
{
    uint32_t result = 0;
    if (text == NULL || *text == '\0') {
        return false;
    }
    for (; *text != '\0'; ++text) {
        if (*text < '0' || *text > '9' || result > (0xFFFFFFFFu - 9u) / 10u) {
            return false;
        }
        result = result * 10u + (uint32_t)(*text - '0');
    }
    *value = result;
    return true;
}

/* Options this board can take at start-up; false when one is malformed. */
static bool td_main_options(td_app_options_t *options)
{
    *options = td_app_default_options();
#if defined(TD_BOARD_MPS2_AN386)
    uint32_t value;
    const char *stride = td_mps2_option("stride");
    if (stride != NULL) {
        if (!td_main_parse_u32(stride, &value)) {
            return false;
        }
        options->stride_samples = value;
    }
    const char *trace = td_mps2_option("trace");
    if (trace != NULL) {
        if (!td_main_parse_u32(trace, &value) || value > 1u) {
            return false;
        }
        options->trace = (uint8_t)value;
    }
    const char *heartbeat = td_mps2_option("heartbeat");
    if (heartbeat != NULL) {
        if (!td_main_parse_u32(heartbeat, &value) || value > 0xFFFFu) {
            return false;
        }
        options->heartbeat_interval = (uint16_t)value;
    }
    const char *heartbeat_only = td_mps2_option("heartbeat_only");
    if (heartbeat_only != NULL) {
        if (!td_main_parse_u32(heartbeat_only, &value) || value > 1u) {
            return false;
        }
        options->heartbeat_only = (uint8_t)value;
    }
#else
    (void)td_main_parse_u32;
#endif
    return true;
}

static bool td_main_mic_ended(void)
{
#if defined(TD_BOARD_MPS2_AN386)
    return td_mps2_mic_ended();
#else
    return false; /* a real microphone never runs out */
#endif
}

#if TD_APP_IMAGE
/* The camera (if the board has one) and the link, polled in turn, for as long as the board runs. */
static void td_main_images(void)
{
    static uint8_t frame[TD_APP_IMAGE_BYTES];
    const bool camera = td_port_camera_start(TD_APP_M_IMAGE_HEIGHT, TD_APP_M_IMAGE_WIDTH);
    uint8_t received[64];
    for (;;) {
        const size_t count = td_port_read(received, sizeof received, camera ? 0u : TD_MAIN_IDLE_WAIT_MS);
        td_app_receive(&td_main_app, received, count);
        if (camera && td_port_camera_read(frame, sizeof frame)) {
            td_app_push_image(&td_main_app, frame);
        }
    }
}
#endif

int td_app_main(void)
{
    td_port_init();
    td_app_options_t options;
    if (!td_main_options(&options) || td_app_init(&td_main_app, &options) != 0) {
        td_port_print("tinydrift app: invalid options (stride must be 1..16000, trace 0 or 1, heartbeat "
                      "0..65535, heartbeat_only 0 or 1 and then heartbeat > 0) or a model config this build "
                      "cannot hold\n");
        return TD_MAIN_EXIT_BAD_SETUP;
    }
#if TD_APP_IMAGE
    td_main_images();
    return 0;
#endif
    const bool microphone = td_port_mic_start(TD_FRONTEND_SAMPLE_RATE);
    uint8_t received[64];
    int16_t samples[TD_MAIN_MIC_BLOCK];
    for (;;) {
        const size_t count = td_port_read(received, sizeof received, microphone ? 0u : TD_MAIN_IDLE_WAIT_MS);
        td_app_receive(&td_main_app, received, count);
        if (!microphone) {
            continue;
        }
        const size_t taken = td_port_mic_read(samples, TD_MAIN_MIC_BLOCK);
        td_app_push_samples(&td_main_app, samples, taken);
        if (taken == 0 && td_main_mic_ended()) {
            td_app_bye(&td_main_app, 0);
            return 0;
        }
    }
}
