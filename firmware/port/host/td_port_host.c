/* td_port for a POSIX process: stdout is the transmitter, stdin the receiver, the
 * monotonic clock the time base. The same application then runs as a host executable
 * in tests, byte for byte as on the board. */
#define _POSIX_C_SOURCE 200809L

#include "td_port.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static uint64_t td_host_start_ns;

static uint64_t td_host_now_ns(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (uint64_t)now.tv_sec * 1000000000u + (uint64_t)now.tv_nsec;
}

void td_port_init(void)
{
    td_host_start_ns = td_host_now_ns();
}

void td_port_write(const uint8_t *data, size_t length)
{
    while (length > 0) {
        ssize_t written = write(STDOUT_FILENO, data, length);
        if (written < 0) {
            if (errno == EINTR) {
                continue;
            }
            /* The reader went away: nobody is left to talk to. */
            exit(EXIT_FAILURE);
        }
        data += written;
        length -= (size_t)written;
    }
}

size_t td_port_read(uint8_t *buffer, size_t capacity, uint32_t timeout_ms)
{
    if (capacity == 0) {
        return 0;
    }
    struct pollfd input = {.fd = STDIN_FILENO, .events = POLLIN, .revents = 0};
    const uint64_t deadline = td_host_now_ns() + (uint64_t)timeout_ms * 1000000u;
    for (;;) {
        const uint64_t now = td_host_now_ns();
        const int wait_ms = now >= deadline ? 0 : (int)((deadline - now + 999999u) / 1000000u);
        const int ready = poll(&input, 1, wait_ms);
        if (ready < 0 && errno == EINTR) {
            continue;
        }
        if (ready <= 0) {
            return 0;
        }
        ssize_t count = read(STDIN_FILENO, buffer, capacity);
        if (count > 0) {
            return (size_t)count;
        }
        if (count < 0 && errno == EINTR) {
            continue;
        }
        /* End of input: a silent link, as a board sees when nothing is sent. Sleep out
         * the timeout rather than spin on a descriptor that stays readable. */
        const uint64_t left = deadline > td_host_now_ns() ? deadline - td_host_now_ns() : 0;
        const struct timespec pause = {.tv_sec = (time_t)(left / 1000000000u),
                                       .tv_nsec = (long)(left % 1000000000u)};
        nanosleep(&pause, NULL);
        return 0;
    }
}

uint32_t td_port_millis(void)
{
    return (uint32_t)((td_host_now_ns() - td_host_start_ns) / 1000000u);
}

uint64_t td_port_cycles(void)
{
    return td_host_now_ns() - td_host_start_ns;
}

uint32_t td_port_cycle_hz(void)
{
    return 1000000000u;
}

const char *td_port_board_name(void)
{
    return "host";
}

void td_port_exit(int code)
{
    exit(code);
}

/* A host process has no microphone of its own here: tests feed audio through stdin. */
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

/* Storage that outlives the process: the file named by the environment's TD_PORT_KEEP,
 * replaced whole through a temporary file beside it (a killed process leaves the last
 * save, never half of one). Without it the process keeps nothing. */
bool td_port_keep_save(const void *data, size_t size)
{
    const char *path = getenv("TD_PORT_KEEP");
    char temporary[4096];
    if (path == NULL || strlen(path) + 5u > sizeof temporary) {
        return false;
    }
    strcpy(temporary, path);
    strcat(temporary, ".new");
    FILE *file = fopen(temporary, "wb");
    if (file == NULL) {
        return false;
    }
    const bool written = fwrite(data, 1, size, file) == size;
    if (fclose(file) != 0 || !written || rename(temporary, path) != 0) {
        remove(temporary);
        return false;
    }
    return true;
}

bool td_port_keep_load(void *data, size_t size)
{
    const char *path = getenv("TD_PORT_KEEP");
    FILE *file = path != NULL ? fopen(path, "rb") : NULL;
    if (file == NULL) {
        return false;
    }
    const bool read = fread(data, 1, size, file) == size;
    fclose(file);
    return read;
}
