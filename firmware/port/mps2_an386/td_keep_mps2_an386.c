/* The emulated board's storage that outlives a power cycle: a host file named by the
 * `keep=PATH` option on QEMU's semihosting command line, read and written whole through
 * semihosting (the board's own memory is gone when QEMU stops). Without the option the
 * board keeps nothing, as a board without flash. */
#include <string.h>

#include "td_mps2_an386.h"
#include "td_port.h"

#define TD_MPS2_NO_FILE 0xFFFFFFFFu

static uint32_t td_mps2_keep_open(uint32_t mode)
{
    const char *path = td_mps2_option("keep");
    if (path == NULL) {
        return TD_MPS2_NO_FILE;
    }
    const uint32_t parameters[3] = {(uint32_t)(uintptr_t)path, mode, (uint32_t)strlen(path)};
    return td_mps2_semihosting(TD_SEMIHOSTING_SYS_OPEN, parameters);
}

static void td_mps2_keep_close(uint32_t handle)
{
    const uint32_t parameters[1] = {handle};
    td_mps2_semihosting(TD_SEMIHOSTING_SYS_CLOSE, parameters);
}

bool td_port_keep_save(const void *data, size_t size)
{
    const uint32_t handle = td_mps2_keep_open(TD_SEMIHOSTING_OPEN_WRITE_BINARY);
    if (handle == TD_MPS2_NO_FILE) {
        return false;
    }
    const uint32_t parameters[3] = {handle, (uint32_t)(uintptr_t)data, (uint32_t)size};
    /* SYS_WRITE returns how many bytes it did NOT write. */
    const uint32_t missing = td_mps2_semihosting(TD_SEMIHOSTING_SYS_WRITE, parameters);
    td_mps2_keep_close(handle);
    return missing == 0u;
}

bool td_port_keep_load(void *data, size_t size)
{
    const uint32_t handle = td_mps2_keep_open(TD_SEMIHOSTING_OPEN_READ_BINARY);
    if (handle == TD_MPS2_NO_FILE) {
        return false; /* no option, or nothing saved yet */
    }
    const uint32_t parameters[3] = {handle, (uint32_t)(uintptr_t)data, (uint32_t)size};
    const uint32_t missing = td_mps2_semihosting(TD_SEMIHOSTING_SYS_READ, parameters);
    td_mps2_keep_close(handle);
    return missing == 0u;
}
