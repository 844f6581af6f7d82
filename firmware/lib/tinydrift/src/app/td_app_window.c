/* Window assembly: a stream of samples becomes 1 s windows, one every `stride` samples.
 *
 * The first window of a stream ends at sample 16,000, the next ones `stride` samples
 * later; after an inference the window keeps its last 16,000 - stride samples (the overlap)
 * and `fresh` counts the samples added since, which sensor health has not seen yet: they
 * end `padding` samples before the window's end (zeros after a short replayed clip). */
#include <string.h>

#include "td_app.h"

#if !TD_APP_STREAMING && !TD_APP_IMAGE /* a streaming build runs td_app_stream.c, a camera build no windows */

void td_app_window_start(td_app_window_t *window, uint32_t stride)
{
    window->fill = 0;
    window->fresh = 0;
    window->padding = 0;
    window->stride = stride;
    window->position = 0;
    window->windows = 0;
}

size_t td_app_window_append(td_app_window_t *window, const int16_t *samples, size_t count)
{
    size_t room = TD_APP_WINDOW_SAMPLES - window->fill;
    size_t taken = count < room ? count : room;
    memcpy(&window->samples[window->fill], samples, taken * sizeof samples[0]);
    window->fill += (uint32_t)taken;
    window->fresh += (uint32_t)taken;
    window->position += (uint32_t)taken;
    return taken;
}

int td_app_window_full(const td_app_window_t *window)
{
    return window->fill == TD_APP_WINDOW_SAMPLES;
}

/* A replayed clip shorter than a window: zeros after its end make the one window it gets.
 * `fresh` keeps counting only real samples, so sensor health never sees the padding. */
void td_app_window_pad(td_app_window_t *window)
{
    window->padding = TD_APP_WINDOW_SAMPLES - window->fill;
    memset(&window->samples[window->fill], 0,
           (TD_APP_WINDOW_SAMPLES - window->fill) * sizeof window->samples[0]);
    window->fill = TD_APP_WINDOW_SAMPLES;
}

void td_app_window_advance(td_app_window_t *window)
{
    const uint32_t kept = TD_APP_WINDOW_SAMPLES - window->stride;
    memmove(window->samples, &window->samples[window->stride], kept * sizeof window->samples[0]);
    window->fill = kept;
    window->fresh = 0;
    window->padding = 0;
    window->windows++;
}

#endif /* !TD_APP_STREAMING && !TD_APP_IMAGE */
