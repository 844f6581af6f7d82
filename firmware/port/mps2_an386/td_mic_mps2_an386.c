/* The emulated board's microphone: a raw PCM file on the host (16-bit little-endian mono at
 * 16 kHz), named by the `audio=PATH` option on QEMU's semihosting command line and read
 * through semihosting, far faster than replaying it over the UART (~40 KB/s in QEMU). The
 * file plays once; td_mps2_mic_ended() then tells the application to finish. Without the
 * option the board has no microphone and audio reaches it over the serial link. */
#include <string.h>

#include "td_mps2_an386.h"
#include "td_port.h"

#define TD_MPS2_MIC_SAMPLE_RATE 16000u
#define TD_MPS2_NO_FILE 0xFFFFFFFFu

static uint32_t td_mps2_mic_handle = TD_MPS2_NO_FILE;
static bool td_mps2_mic_at_end;

bool td_port_mic_start(uint32_t sample_rate_hz)
{
    if (sample_rate_hz != TD_MPS2_MIC_SAMPLE_RATE) {
        return false;
    }
    if (td_mps2_mic_handle != TD_MPS2_NO_FILE) {
        return true; /* already playing */
    }
    const char *path = td_mps2_option("audio");
    if (path == NULL) {
        return false;
    }
    const uint32_t parameters[3] = {(uint32_t)(uintptr_t)path, TD_SEMIHOSTING_OPEN_READ_BINARY,
                                    (uint32_t)strlen(path)};
    td_mps2_mic_handle = td_mps2_semihosting(TD_SEMIHOSTING_SYS_OPEN, parameters);
    td_mps2_mic_at_end = false;
    if (td_mps2_mic_handle == TD_MPS2_NO_FILE) {
        td_port_print("td_port: cannot open the audio file ");
        td_port_print(path);
        td_port_print("\n");
        return false;
    }
    return true;
}

size_t td_port_mic_read(int16_t *samples, size_t capacity)
{
    if (td_mps2_mic_handle == TD_MPS2_NO_FILE || td_mps2_mic_at_end || capacity == 0) {
        return 0;
    }
    const uint32_t wanted = (uint32_t)(capacity * sizeof samples[0]);
    const uint32_t parameters[3] = {td_mps2_mic_handle, (uint32_t)(uintptr_t)samples, wanted};
    /* SYS_READ returns how many bytes it did NOT read. */
    const uint32_t missing = td_mps2_semihosting(TD_SEMIHOSTING_SYS_READ, parameters);
    const uint32_t got = missing <= wanted ? wanted - missing : 0u;
    if (got < sizeof samples[0]) {
        /* The end (a last odd byte is not a sample). */
        const uint32_t handle[1] = {td_mps2_mic_handle};
        td_mps2_semihosting(TD_SEMIHOSTING_SYS_CLOSE, handle);
        td_mps2_mic_at_end = true;
        return 0;
    }
    return got / sizeof samples[0];
}

uint32_t td_port_mic_dropped(void)
{
    return 0; /* the application reads the file at its own pace: nothing is ever dropped */
}

bool td_mps2_mic_ended(void)
{
    return td_mps2_mic_at_end;
}
