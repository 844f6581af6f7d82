/* Defaults for the port functions a board may lack: its identity for HELLO, storage that
 * outlives a power cycle and a camera. A port that knows better (a silicon serial number, a
 * boot counter in flash, a flash page, a camera driver) defines the function itself; these
 * weak definitions then give way at link time. */
#include "td_port.h"

#ifndef TD_PORT_DEVICE_ID
#define TD_PORT_DEVICE_ID 0u /* unknown */
#endif
#ifndef TD_PORT_BOOT_COUNT
#define TD_PORT_BOOT_COUNT 0u /* unknown: no persistent storage */
#endif

#if defined(__GNUC__) || defined(__clang__)
#define TD_PORT_WEAK __attribute__((weak))
#else
#define TD_PORT_WEAK
#endif

TD_PORT_WEAK uint64_t td_port_device_id(void)
{
    return (uint64_t)TD_PORT_DEVICE_ID;
}

TD_PORT_WEAK uint32_t td_port_boot_count(void)
{
    return (uint32_t)TD_PORT_BOOT_COUNT;
}

/* Nothing kept across power cycles: the monitor learns its reference after every boot. */
TD_PORT_WEAK bool td_port_keep_save(const void *data, size_t size)
{
    (void)data;
    (void)size;
    return false;
}

TD_PORT_WEAK bool td_port_keep_load(void *data, size_t size)
{
    (void)data;
    (void)size;
    return false;
}

/* No camera: images come over the serial link (IMAGE frames). */
TD_PORT_WEAK bool td_port_camera_start(uint32_t height, uint32_t width)
{
    (void)height;
    (void)width;
    return false;
}

TD_PORT_WEAK bool td_port_camera_read(uint8_t *pixels, size_t capacity)
{
    (void)pixels;
    (void)capacity;
    return false;
}
