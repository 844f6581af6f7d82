/*
 * Input summary of a camera model's int8 input [height][width][3] (pixels minus 128), in
 * units of 2^-TD_SUMMARY_FRAC_BITS of the int8 pixel, all rounded half up:
 *   [0, 3 grid^2)        each block's mean per colour channel, blocks row-major on a
 *                        grid x grid split of the image (lighting, white balance, framing);
 *   [3 grid^2, +3)       each channel's standard deviation over the image (contrast);
 *   [3 grid^2 + 3, +3)   each channel's mean absolute difference between horizontal and
 *                        vertical neighbours (sharpness: what a smudged lens or defocus lowers);
 *   [3 grid^2 + 6, +3)   crispness, in Q12 (not 2^7): each channel's sum of absolute second
 *                        differences (horizontal and vertical) over its sum of absolute first
 *                        differences, 0..2. A blur lowers it whatever the scene's texture, so it
 *                        moves by several reference spreads where sharpness moves by one or two.
 * Exact integer arithmetic, so the host computes the same summary from the same pixels.
 */
#include "td_monitor.h"
#include "td_monitor_fixed.h"

#define TD_IMAGE_CHANNELS 3u
#define TD_CRISPNESS_FRAC_BITS 12

static int16_t td_scaled_mean(int64_t sum, int64_t count)
{
    return (int16_t)td_floor_div_s64(sum * (1 << TD_SUMMARY_FRAC_BITS) + count / 2, count);
}

static int32_t td_abs_s32(int32_t x)
{
    return x < 0 ? -x : x;
}

/* Per-block totals of one channel; a block holds at most 65535 pixels, so int32 holds them. */
typedef struct {
    int32_t sum, sum_sq, diff, diff2;
} td_image_terms_t;

/* Pixels x0..x1-1 of one row of one channel (p = the row's first value of that channel,
 * stride 3), with their right-hand neighbours in the row and, when below / below2 are
 * not NULL, the pixels under them. Loops split at the image's edge, not tested per pixel. */
static void td_row_terms(const int8_t *p, const int8_t *below, const int8_t *below2, uint32_t x0,
                         uint32_t x1, uint32_t width, td_image_terms_t *t)
{
    const uint32_t pair_end = x1 < width - 1u ? x1 : width - 1u;
    const uint32_t triple_end = width < 2u ? 0u : (x1 < width - 2u ? x1 : width - 2u);
    uint32_t x;

    for (x = x0; x < x1; ++x) {
        const int32_t v = p[x * TD_IMAGE_CHANNELS];
        t->sum += v;
        t->sum_sq += v * v;
    }
    for (x = x0; x < pair_end; ++x) {
        t->diff += td_abs_s32(p[(x + 1u) * TD_IMAGE_CHANNELS] - p[x * TD_IMAGE_CHANNELS]);
    }
    for (x = x0; x < triple_end; ++x) {
        t->diff2 += td_abs_s32(p[(x + 2u) * TD_IMAGE_CHANNELS] - 2 * p[(x + 1u) * TD_IMAGE_CHANNELS] +
                               p[x * TD_IMAGE_CHANNELS]);
    }
    if (below != 0) {
        for (x = x0; x < x1; ++x) {
            t->diff += td_abs_s32(below[x * TD_IMAGE_CHANNELS] - p[x * TD_IMAGE_CHANNELS]);
        }
    }
    if (below2 != 0) {
        for (x = x0; x < x1; ++x) {
            t->diff2 += td_abs_s32(below2[x * TD_IMAGE_CHANNELS] - 2 * below[x * TD_IMAGE_CHANNELS] +
                                   p[x * TD_IMAGE_CHANNELS]);
        }
    }
}

int td_summarize_image(const int8_t *pixels, uint32_t height, uint32_t width, uint32_t grid,
                       int16_t *summary)
{
    const uint32_t n_pixels = height * width;
    const uint32_t stride = width * TD_IMAGE_CHANNELS;
    int64_t sum[TD_IMAGE_CHANNELS] = {0, 0, 0};
    int64_t sum_sq[TD_IMAGE_CHANNELS] = {0, 0, 0};
    int64_t diff[TD_IMAGE_CHANNELS] = {0, 0, 0};
    int64_t diff2[TD_IMAGE_CHANNELS] = {0, 0, 0};
    uint32_t gy, gx, y, c;
    int16_t *spread = summary + TD_IMAGE_CHANNELS * grid * grid;
    int16_t *sharpness = spread + TD_IMAGE_CHANNELS;
    int16_t *crispness = sharpness + TD_IMAGE_CHANNELS;

    if (pixels == 0 || summary == 0) {
        return TD_MONITOR_ERR_NULL;
    }
    /* At least one neighbour pair, and sums of squares that fit int64 with the 2^14 scale. */
    if (height == 0 || width == 0 || height > UINT16_MAX || width > UINT16_MAX ||
        (uint64_t)height * width > UINT16_MAX || height * width < 2 || grid == 0 ||
        grid > height || grid > width) {
        return TD_MONITOR_ERR_ARG;
    }
    for (gy = 0; gy < grid; ++gy) {
        const uint32_t y0 = gy * height / grid, y1 = (gy + 1) * height / grid;
        for (gx = 0; gx < grid; ++gx) {
            const uint32_t x0 = gx * width / grid, x1 = (gx + 1) * width / grid;
            for (c = 0; c < TD_IMAGE_CHANNELS; ++c) {
                td_image_terms_t t = {0, 0, 0, 0};
                for (y = y0; y < y1; ++y) {
                    const int8_t *row = pixels + y * stride + c;
                    td_row_terms(row, y + 1 < height ? row + stride : 0, y + 2 < height ? row + 2 * stride : 0,
                                 x0, x1, width, &t);
                }
                sum[c] += t.sum;
                sum_sq[c] += t.sum_sq;
                diff[c] += t.diff;
                diff2[c] += t.diff2;
                summary[(gy * grid + gx) * TD_IMAGE_CHANNELS + c] =
                    td_scaled_mean(t.sum, (int64_t)(y1 - y0) * (x1 - x0));
            }
        }
    }
    for (c = 0; c < TD_IMAGE_CHANNELS; ++c) {
        /* n^2 var = n sum(v^2) - sum(v)^2; std * 2^7 = sqrt(var * 2^14), floored. */
        const int64_t n = n_pixels;
        const int64_t scaled_var = td_div_round_s64((n * sum_sq[c] - sum[c] * sum[c]) << (2 * TD_SUMMARY_FRAC_BITS), n * n);
        const int64_t pairs = (int64_t)height * (width - 1) + (int64_t)(height - 1) * width;
        spread[c] = (int16_t)td_isqrt_u32((uint32_t)scaled_var);
        sharpness[c] = td_scaled_mean(diff[c], pairs);
        crispness[c] = diff[c] == 0 ? 0 : (int16_t)td_div_round_s64(diff2[c] << TD_CRISPNESS_FRAC_BITS, diff[c]);
    }
    return TD_MONITOR_OK;
}
