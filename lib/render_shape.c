/* render_shape: what render_make() does to a style's picture afterwards:
 * dropping the background (transparent), filtering truecolour pixels,
 * and rounding the corners with anti-aliased, transparent edges.
 *
 * An indexed picture stays indexed where it can: a transparent background
 * is the palette's alpha, and a rounded corner adds one palette entry per
 * (colour, coverage) pair that occurs on the edge, so a 2-colour identicon
 * with round corners is still a small palette PNG. Only when that would
 * pass 256 entries does the picture become RGBA. */
#include <stdlib.h>
#include <string.h>

#include "render_style.h"

#define SUB 4                      /* SUB x SUB samples per edge pixel */
#define LEVELS (SUB * SUB)         /* coverage 0..LEVELS */

void render_image_rgba(const render_image *img, uint8_t *rgba)
{
    size_t n = (size_t)img->size * (size_t)img->size;
    const uint8_t *px = img->pixels;
    for (size_t i = 0; i < n; i++, rgba += 4) {
        if (img->ncolors) {
            aq_rgb c = img->palette[px[i]];
            rgba[0] = c.r, rgba[1] = c.g, rgba[2] = c.b;
            rgba[3] = img->has_alpha ? img->alpha[px[i]] : 255;
        } else if (img->has_alpha) {
            memcpy(rgba, px + i * 4, 4);
        } else {
            memcpy(rgba, px + i * 3, 3);
            rgba[3] = 255;
        }
    }
}

int render_drop_background(render_image *img)
{
    int k = img->bg_ramp;
    if (!img->ncolors || k <= 0 || k >= img->ncolors)
        return -1;
    if (!img->has_alpha)
        memset(img->alpha, 255, sizeof img->alpha);
    /* entries 0..k blend background -> entry k: the same colour, fading in */
    for (int i = 0; i <= k; i++) {
        img->alpha[i] = (uint8_t)((255 * i + k / 2) / k);
        img->palette[i] = img->palette[k];
    }
    img->has_alpha = true;
    return 0;
}

void render_filter_pixels(render_image *img, aq_filter f)
{
    if (f == FILTER_NONE)
        return;
    if (img->ncolors) {
        for (int i = 0; i < img->ncolors; i++)
            img->palette[i] = color_filter_apply(f, img->palette[i]);
        return;
    }
    int bpp = render_image_bpp(img);
    size_t n = (size_t)img->size * (size_t)img->size;
    for (uint8_t *px = img->pixels; n--; px += bpp) {
        aq_rgb c = color_filter_apply(f, (aq_rgb){px[0], px[1], px[2]});
        px[0] = c.r, px[1] = c.g, px[2] = c.b;
    }
}

/* Converts an indexed or RGB picture to RGBA in place. */
static int to_rgba(render_image *img)
{
    size_t n = (size_t)img->size * (size_t)img->size;
    if (img->ncolors == 0 && img->has_alpha)
        return 0;
    uint8_t *rgba = malloc(n * 4);
    if (!rgba)
        return -1;
    render_image_rgba(img, rgba);
    if (render_reserve(img, n * 4) < 0) {
        free(rgba);
        return -1;
    }
    memcpy(img->pixels, rgba, n * 4);
    free(rgba);
    img->ncolors = 0;
    img->has_alpha = true;
    return 0;
}

/* How much of pixel (x, y) lies inside the rounded square, 0..LEVELS.
 * Corner circles of radius r px centred r px in from both edges; exact
 * integer tests in 1/(2*SUB) px. */
static int coverage(int x, int y, int size, int r)
{
    /* mirror into the top-left corner */
    if (x >= size - r)
        x = size - 1 - x;
    if (y >= size - r)
        y = size - 1 - y;
    if (x >= r || y >= r)
        return LEVELS;
    const int64_t u = 2 * SUB;                    /* units per pixel */
    int64_t c = (int64_t)r * u, r2 = c * c;
    /* the pixel's nearest and farthest points from the centre */
    int64_t nx = c - (int64_t)(x + 1) * u, ny = c - (int64_t)(y + 1) * u;
    int64_t fx = c - (int64_t)x * u, fy = c - (int64_t)y * u;
    nx = nx < 0 ? 0 : nx, ny = ny < 0 ? 0 : ny;
    if (fx * fx + fy * fy <= r2)
        return LEVELS;
    if (nx * nx + ny * ny >= r2)
        return 0;
    int in = 0;
    for (int j = 0; j < SUB; j++)
        for (int i = 0; i < SUB; i++) {
            int64_t dx = c - ((int64_t)x * u + 2 * i + 1), dy = c - ((int64_t)y * u + 2 * j + 1);
            in += dx * dx + dy * dy <= r2;
        }
    return in;
}

/* Rounds an indexed picture through palette entries; -1 when it would need
 * more than 256 of them (the caller then goes RGBA). */
static int round_indexed(render_image *img, int r)
{
    int16_t (*map)[LEVELS + 1] = malloc(sizeof(int16_t[256][LEVELS + 1]));
    if (!map)
        return -1;
    memset(map, 0xff, sizeof(int16_t[256][LEVELS + 1]));
    aq_rgb pal[256];
    uint8_t alpha[256];
    memcpy(pal, img->palette, sizeof pal);
    for (int i = 0; i < 256; i++)
        alpha[i] = img->has_alpha ? img->alpha[i] : 255;
    int n = img->ncolors, size = img->size, rc = 0;
    for (int y = 0; y < size && rc == 0; y++) {
        if (y >= r && y < size - r)
            continue; /* no corner in this row */
        for (int x = 0; x < size; x++) {
            if (x >= r && x < size - r)
                continue;
            int cov = coverage(x, y, size, r);
            uint8_t *p = &img->pixels[(size_t)y * (size_t)size + (size_t)x];
            if (cov == LEVELS)
                continue;
            int16_t *m = &map[cov == 0 ? 0 : *p][cov];
            if (*m < 0) {
                if (n == 256) {
                    rc = -1;
                    break;
                }
                pal[n] = cov == 0 ? img->palette[0] : img->palette[*p];
                alpha[n] = (uint8_t)(cov == 0 ? 0 : (alpha[*p] * cov + LEVELS / 2) / LEVELS);
                *m = (int16_t)n++;
            }
            *p = (uint8_t)*m;
        }
    }
    free(map);
    if (rc == 0) {
        memcpy(img->palette, pal, sizeof pal);
        memcpy(img->alpha, alpha, sizeof alpha);
        img->ncolors = n;
        img->has_alpha = true;
    }
    return rc;
}

static void round_rgba(render_image *img, int r)
{
    int size = img->size;
    for (int y = 0; y < size; y++) {
        if (y >= r && y < size - r)
            continue;
        for (int x = 0; x < size; x++) {
            if (x >= r && x < size - r)
                continue;
            int cov = coverage(x, y, size, r);
            uint8_t *a = &img->pixels[((size_t)y * (size_t)size + (size_t)x) * 4 + 3];
            *a = (uint8_t)((*a * cov + LEVELS / 2) / LEVELS);
        }
    }
}

int render_round(render_image *img, int radius_pct)
{
    int r = img->size * radius_pct / 100;
    if (r <= 0)
        return 0;
    if (img->ncolors) {
        /* round_indexed changes pixels only once it knows it fits: keep a
         * copy to restart from when it does not */
        size_t n = (size_t)img->size * (size_t)img->size;
        uint8_t *copy = malloc(n);
        if (!copy)
            return -1;
        memcpy(copy, img->pixels, n);
        if (round_indexed(img, r) == 0) {
            free(copy);
            return 0;
        }
        memcpy(img->pixels, copy, n);
        free(copy);
    }
    if (to_rgba(img) < 0)
        return -1;
    round_rgba(img, r);
    return 0;
}
