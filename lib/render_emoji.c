/* emoji: one emoji (Twemoji artwork, rasterised by emoji.c) centred on a
 * solid, linear or radial background, at 40, 60 or 80 % of the avatar.
 * The seed picks the emoji (from a curated set), the background kind, the
 * size and the angle whenever the request leaves them open.
 *
 * Backgrounds run from the foreign colour to the primary: solid is the
 * foreign colour, linear goes foreign -> primary along the angle (CSS
 * convention: 0 = towards the top), radial from foreign in the centre to
 * primary in the corners. The ramp position of a pixel is integer maths,
 * so the background is the same on every machine; the artwork's own
 * pixels come from librsvg (the same for a pinned artwork and librsvg). */
#include <string.h>

#include "emoji.h"
#include "render_style.h"

#define RAMP 256

static const int size_pct[] = {
    [RENDER_EMOJI_SMALL] = 40, [RENDER_EMOJI_MEDIUM] = 60, [RENDER_EMOJI_LARGE] = 80,
};

/* The request with the seed's choices filled in. */
typedef struct emoji_plan {
    render_bg bg;
    int pct;
    uint32_t phase;          /* linear: direction, 1/65536 turn */
    const char *name;
} emoji_plan;

static void plan(const render_params *p, emoji_plan *e)
{
    render_rng rng;
    render_rng_init(&rng, p->hash, 0);
    /* draw every choice even when the request fixes it, so one option
     * never changes another's pick */
    render_bg bg = (render_bg)render_rng_range(&rng, RENDER_BG_SOLID, RENDER_BG_RADIAL);
    int es = render_rng_range(&rng, RENDER_EMOJI_MEDIUM, RENDER_EMOJI_LARGE);
    int deg = render_rng_range(&rng, 0, 359);
    uint64_t pick = render_rng_next(&rng);
    e->bg = p->background != RENDER_BG_AUTO ? p->background : bg;
    e->pct = size_pct[p->emoji_size != RENDER_EMOJI_AUTO ? (int)p->emoji_size : es];
    int deg100 = p->angle_deg100 >= 0 ? p->angle_deg100 : deg * 100;
    e->phase = (uint32_t)((int64_t)deg100 * 65536 / 36000);
    e->name = p->emoji[0] ? p->emoji : emoji_pick(pick);
}

#define MAX_DIR 12 /* largest |a| or |b| of the integer direction */

/* The small integer vector (a, b) closest in angle to the unit direction
 * (dx, dy) in Q14: comparing cross^2 / |v|^2 as exact integer fractions. */
static void integer_direction(int32_t dx, int32_t dy, int *ra, int *rb)
{
    int64_t best_c2 = -1, best_n = 1;
    for (int a = -MAX_DIR; a <= MAX_DIR; a++)
        for (int b = -MAX_DIR; b <= MAX_DIR; b++) {
            int64_t dot = (int64_t)a * dx + (int64_t)b * dy;
            if ((a == 0 && b == 0) || dot <= 0)
                continue;
            int64_t cross = (int64_t)a * dy - (int64_t)b * dx, n = (int64_t)a * a + (int64_t)b * b;
            if (best_c2 < 0 || cross * cross * best_n < best_c2 * n) {
                best_c2 = cross * cross, best_n = n;
                *ra = a, *rb = b;
            }
        }
}

/* Linear: the ramp position is u = a*X + b*Y for the integer direction
 * (a, b) nearest the angle (X, Y: pixel centres from the middle, in half
 * pixels), so row y + b is row y moved sideways by a pixels and zlib codes
 * most rows as one long match. u -> colour is one table. */
static int linear_rows(int size, uint32_t phase, const aq_rgb *ramp, uint8_t *out, int bpp,
                       render_image *img)
{
    int a = 0, b = -1;
    integer_direction(render_sin(phase), -render_cos(phase), &a, &b);
    int64_t half = (int64_t)size * ((a < 0 ? -a : a) + (b < 0 ? -b : b)); /* |u| <= half */
    size_t pix = (size_t)size * (size_t)size * (size_t)bpp;
    if (render_reserve(img, pix + (size_t)(2 * half + 1)) < 0)
        return -1;
    uint8_t *idx = img->pixels + pix; /* scratch after the pixels */
    for (int64_t u = 0; u <= 2 * half; u++)
        idx[u] = (uint8_t)(u * (RAMP - 1) / (2 * half));
    out = img->pixels;
    for (int y = 0; y < size; y++) {
        int64_t u = (int64_t)a * (1 - size) + (int64_t)b * (2 * y + 1 - size) + half;
        uint8_t *o = out + (size_t)y * (size_t)size * (size_t)bpp;
        for (int x = 0; x < size; x++, u += 2 * a, o += bpp) {
            aq_rgb c = ramp[idx[u]];
            o[0] = c.r, o[1] = c.g, o[2] = c.b;
        }
    }
    return 0;
}

/* Radial: the ramp index grows with the distance from the centre, reaching
 * the end in the corners. Squared distances against a table of squared
 * thresholds, walked outwards from the centre of each row: no square root
 * per pixel. */
static void radial_rows(int size, const aq_rgb *ramp, uint8_t *out, int bpp)
{
    int64_t thr[RAMP];          /* thr[k]: smallest squared distance of index k */
    int64_t rmax2 = 2 * (int64_t)size * size; /* corner, in half pixels squared */
    for (int k = 0; k < RAMP; k++)
        thr[k] = rmax2 * k * k / ((RAMP - 1) * (RAMP - 1));
    for (int y = 0; y < size; y++) {
        int64_t dy = 2 * y + 1 - size;
        int k = 0;
        for (int x = size / 2; x < size; x++) { /* right half, mirrored */
            int64_t dx = 2 * x + 1 - size, d2 = dx * dx + dy * dy;
            while (k < RAMP - 1 && thr[k + 1] <= d2)
                k++;
            uint8_t *o = out + ((size_t)y * (size_t)size + (size_t)x) * (size_t)bpp;
            uint8_t *m = out + ((size_t)y * (size_t)size + (size_t)(size - 1 - x)) * (size_t)bpp;
            o[0] = m[0] = ramp[k].r, o[1] = m[1] = ramp[k].g, o[2] = m[2] = ramp[k].b;
        }
    }
}

static int fill_background(const render_params *p, const emoji_plan *e, int size, render_image *img, int bpp)
{
    uint8_t *px = img->pixels;
    size_t n = (size_t)size * (size_t)size;
    if (e->bg == RENDER_BG_TRANSPARENT) {
        memset(px, 0, n * (size_t)bpp);
        return 0;
    }
    if (e->bg == RENDER_BG_SOLID) {
        for (size_t i = 0; i < n; i++)
            px[i * 3] = p->foreign.r, px[i * 3 + 1] = p->foreign.g, px[i * 3 + 2] = p->foreign.b;
        return 0;
    }
    aq_rgb ramp[RAMP];
    for (int i = 0; i < RAMP; i++)
        ramp[i] = color_mix(p->foreign, p->primary, i, RAMP - 1);
    if (e->bg == RENDER_BG_LINEAR)
        return linear_rows(size, e->phase, ramp, px, bpp, img);
    radial_rows(size, ramp, px, bpp);
    return 0;
}

/* Premultiplied artwork over the background: over an opaque one the colour
 * is src + dst * (255 - a) / 255; over nothing the artwork unpremultiplied. */
static void composite(const uint8_t *art, int apx, int size, uint8_t *px, int bpp)
{
    int off = (size - apx) / 2;
    for (int y = 0; y < apx; y++) {
        const uint8_t *s = art + (size_t)y * (size_t)apx * 4;
        uint8_t *d = px + ((size_t)(y + off) * (size_t)size + (size_t)off) * (size_t)bpp;
        for (int x = 0; x < apx; x++, s += 4, d += bpp) {
            unsigned a = s[3];
            if (a == 0)
                continue;
            if (bpp == 3) {
                unsigned k = 255 - a;
                for (int c = 0; c < 3; c++)
                    d[c] = (uint8_t)(s[c] + (d[c] * k + 127) / 255);
            } else {
                for (int c = 0; c < 3; c++)
                    d[c] = (uint8_t)((s[c] * 255 + a / 2) / a);
                d[3] = (uint8_t)a;
            }
        }
    }
}

void render_emoji_plan(const render_params *p, render_bg *bg, int *pct, uint32_t *phase,
                       const char **name)
{
    emoji_plan e;
    plan(p, &e);
    *bg = e.bg, *pct = e.pct, *phase = e.phase, *name = e.name;
}

int render_emoji(const render_params *p, int size, render_image *img)
{
    emoji_plan e;
    plan(p, &e);
    int bpp = e.bg == RENDER_BG_TRANSPARENT ? 4 : 3;
    if (render_reserve(img, (size_t)size * (size_t)size * (size_t)bpp) < 0)
        return render_fail("out of memory");
    img->ncolors = 0;
    img->has_alpha = bpp == 4;
    img->bg_ramp = 0;
    if (fill_background(p, &e, size, img, bpp) < 0)
        return render_fail("out of memory");
    int apx = size * e.pct / 100;
    char why[256];
    const uint8_t *art = emoji_raster(e.name, apx, why, sizeof why);
    if (!art)
        return render_fail("emoji: %s", why);
    composite(art, apx, size, img->pixels, bpp);
    return 0;
}
