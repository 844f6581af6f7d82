/*
 * Standalone host runner of the monitor (for sanitizer builds, where ctypes cannot load
 * an instrumented library): replays an event file and writes the result rows.
 *
 * usage: td_monitor_host events.bin summaries.bin probs.bin pcm.bin rows.bin
 * (int32 event triples, int16 summaries, int8 probs, int16 pcm; int64 rows out)
 *    or: td_monitor_host image HEIGHT WIDTH GRID pixels.bin summaries.bin
 * (td_summarize_image on each int8 image of the file, each in a buffer of its exact size,
 * so a read past the image is caught; int16 summaries out)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "td_monitor.h"

uint32_t td_host_row_width(void);
int td_host_init(td_monitor_state_t *state);
int td_host_run(td_monitor_state_t *state, const int32_t *events, uint32_t n_events,
                const int16_t *summaries, const int8_t *probs, const int16_t *pcm, int64_t *rows);

static void *read_file(const char *path, size_t *size)
{
    FILE *f = fopen(path, "rb");
    void *data;
    long length;
    if (f == NULL || fseek(f, 0, SEEK_END) != 0 || (length = ftell(f)) < 0 ||
        fseek(f, 0, SEEK_SET) != 0) {
        fprintf(stderr, "cannot read %s\n", path);
        exit(2);
    }
    data = malloc((size_t)length + 1);
    if (data == NULL || fread(data, 1, (size_t)length, f) != (size_t)length) {
        fprintf(stderr, "cannot read %s\n", path);
        exit(2);
    }
    fclose(f);
    *size = (size_t)length;
    return data;
}

static int summarize_images(char **argv)
{
    const uint32_t height = (uint32_t)atoi(argv[2]), width = (uint32_t)atoi(argv[3]), grid = (uint32_t)atoi(argv[4]);
    const size_t image_bytes = (size_t)height * width * 3u, length = TD_SUMMARY_IMAGE_LENGTH(grid);
    size_t n_bytes, i;
    int8_t *pixels = read_file(argv[5], &n_bytes);
    int16_t *summaries = calloc(n_bytes / image_bytes * length + 1, sizeof(int16_t));
    FILE *out;

    for (i = 0; i < n_bytes / image_bytes; ++i) {
        int8_t *image = malloc(image_bytes);
        int status;
        if (image == NULL) {
            return 2;
        }
        memcpy(image, pixels + i * image_bytes, image_bytes);
        status = td_summarize_image(image, height, width, grid, summaries + i * length);
        free(image);
        if (status != TD_MONITOR_OK) {
            fprintf(stderr, "td_summarize_image: status %d\n", status);
            return 1;
        }
    }
    out = fopen(argv[6], "wb");
    if (out == NULL || fwrite(summaries, sizeof(int16_t), n_bytes / image_bytes * length, out) !=
                           n_bytes / image_bytes * length) {
        fprintf(stderr, "cannot write %s\n", argv[6]);
        return 2;
    }
    fclose(out);
    free(pixels);
    free(summaries);
    return 0;
}

int main(int argc, char **argv)
{
    static td_monitor_state_t state;
    size_t n_events_bytes, n_summary_bytes, n_probs_bytes, n_pcm_bytes;
    int32_t *events;
    int16_t *summaries;
    int8_t *probs;
    int16_t *pcm;
    int64_t *rows;
    uint32_t n_events;
    int status;
    FILE *out;

    if (argc == 7 && strcmp(argv[1], "image") == 0) {
        return summarize_images(argv);
    }
    if (argc != 6) {
        fprintf(stderr, "usage: %s events summaries probs pcm rows\n", argv[0]);
        return 2;
    }
    events = read_file(argv[1], &n_events_bytes);
    summaries = read_file(argv[2], &n_summary_bytes);
    probs = read_file(argv[3], &n_probs_bytes);
    pcm = read_file(argv[4], &n_pcm_bytes);
    n_events = (uint32_t)(n_events_bytes / (3 * sizeof(int32_t)));
    rows = calloc((size_t)n_events * td_host_row_width() + 1, sizeof(int64_t));
    if (rows == NULL || td_host_init(&state) != TD_MONITOR_OK) {
        fprintf(stderr, "init failed\n");
        return 2;
    }
    status = td_host_run(&state, events, n_events, summaries, probs, pcm, rows);
    out = fopen(argv[5], "wb");
    if (out == NULL ||
        fwrite(rows, sizeof(int64_t), (size_t)n_events * td_host_row_width(), out) !=
            (size_t)n_events * td_host_row_width()) {
        fprintf(stderr, "cannot write %s\n", argv[5]);
        return 2;
    }
    fclose(out);
    free(events);
    free(summaries);
    free(probs);
    free(pcm);
    free(rows);
    return status == TD_MONITOR_OK ? 0 : 1;
}
