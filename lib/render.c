/* render: the style table, request resolution (colours, angle) and the
 * helpers every style shares: the seeded PRNG, integer sine and square root,
 * and the reusable pixel memory. */
#include "render.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "hash.h"
#include "render_style.h"

typedef struct render_style {
    const char *name;
    render_style_fn draw;
} render_style;

/* Index order is part of the contract with job.c (render_params.style). */
static const render_style styles[] = {
    {"pixel", render_pixel},
    {"classic", render_classic},
    {"wave", render_wave},
    {"gradient", render_gradient},
};

#define NSTYLES ((int)(sizeof styles / sizeof styles[0]))

int render_style_find(const char *name)
{
    if (!name)
        return -1;
    for (int i = 0; i < NSTYLES; i++)
        if (strcasecmp(name, styles[i].name) == 0)
            return i;
    return -1;
}

const char *render_style_name(int style)
{
    return style >= 0 && style < NSTYLES ? styles[style].name : NULL;
}

int render_style_count(void) { return NSTYLES; }

/* ---- PRNG ---- */

/* Little-endian by construction, so big-endian machines agree. */
static uint64_t load_le64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

void render_rng_init(render_rng *r, const uint8_t hash[32], uint64_t stream)
{
    for (int i = 0; i < 4; i++) {
        uint64_t x = load_le64(hash + 8 * i) ^ (stream * 0xd1b54a32d192ed03ull);
        r->s[i] = prng_splitmix64(&x);
    }
}

uint64_t render_rng_next(render_rng *r)
{
    return prng_next(r);
}

int render_rng_range(render_rng *r, int lo, int hi)
{
    uint64_t span = (uint64_t)((int64_t)hi - lo) + 1;
    /* the 64-bit draw makes the modulo bias negligible (< 2^-32) */
    return (int)((int64_t)lo + (int64_t)(render_rng_next(r) % span));
}

/* ---- integer maths ---- */

/* sin(x) for x in [0, pi/2] given as f in [0, 16384], Q28 Taylor series to
 * x^9 (error below 4e-6, far under one Q14 step). */
static int64_t sin_quarter_q28(int64_t f)
{
    const int64_t x = f * 25736;                 /* (pi/2) / 16384 in Q28 */
    const int64_t one = (int64_t)1 << 28;
    int64_t x2 = (x * x) >> 28;
    int64_t t = one - x2 / 72;
    t = one - ((x2 * t) >> 28) / 42;
    t = one - ((x2 * t) >> 28) / 20;
    t = one - ((x2 * t) >> 28) / 6;
    return (x * t) >> 28;
}

int32_t render_sin(uint32_t phase)
{
    phase &= 0xffff;
    int64_t f = phase & 0x3fff;
    int quadrant = (int)(phase >> 14);
    if (quadrant & 1)
        f = 16384 - f;
    int32_t v = (int32_t)((sin_quarter_q28(f) + (1 << 13)) >> 14);
    if (v > 16384)
        v = 16384;
    return quadrant & 2 ? -v : v;
}

uint32_t render_isqrt(uint64_t v)
{
    /* The double is only a first guess; the integer loops below make the
     * result exact, so no floating-point rounding can decide a pixel. */
    uint64_t s = (uint64_t)sqrt((double)v);
    while (s * s > v)
        s--;
    while ((s + 1) * (s + 1) <= v)
        s++;
    return (uint32_t)s;
}

/* ---- images ---- */

int render_reserve(render_image *img, size_t bytes)
{
    if (bytes <= img->cap)
        return 0;
    uint8_t *p = realloc(img->pixels, bytes);
    if (!p)
        return -1;
    img->pixels = p;
    img->cap = bytes;
    return 0;
}

void render_ramp(render_image *img, aq_rgb a, aq_rgb b, int n)
{
    for (int i = 0; i < n; i++)
        img->palette[i] = color_mix(a, b, i, n - 1);
    img->ncolors = n;
}

aq_rgb render_tint(const render_params *p, int t, int tmax)
{
    const aq_rgb f = p->foreign;
    int luma = (299 * f.r + 587 * f.g + 114 * f.b) / 1000;
    aq_rgb towards = luma >= 128 ? (aq_rgb){255, 255, 255} : f;
    return color_mix(p->primary, towards, t, tmax);
}

void render_image_free(render_image *img)
{
    free(img->pixels);
    img->pixels = NULL;
    img->cap = 0;
    img->size = img->ncolors = 0;
}

int render_make(const render_params *p, int size, render_image *img)
{
    if (size < RENDER_MIN_SIZE || size > RENDER_MAX_SIZE || p->style < 0 || p->style >= NSTYLES)
        return -1;
    img->size = size;
    if (styles[p->style].draw(p, size, img) < 0)
        return -1;
    /* Every style draws an indexed image, so a filter costs one pass over
     * at most 256 palette entries, whatever the size. */
    for (int i = 0; i < img->ncolors && p->filter != FILTER_NONE; i++)
        img->palette[i] = color_filter_apply(p->filter, img->palette[i]);
    return 0;
}

/* ---- request resolution ---- */

/* Colours from the seed alone: a varied hue at a fixed, pleasant saturation
 * and lightness, on a pale tint of the same hue (GitHub identicons do the
 * same with a grey background). */
static void derive_colors(const uint8_t hash[32], aq_rgb *primary, aq_rgb *foreign)
{
    render_rng r;
    render_rng_init(&r, hash, 1);
    int hue = render_rng_range(&r, 0, 359);
    int sat = render_rng_range(&r, 55, 70);
    int light = render_rng_range(&r, 45, 55);
    *primary = color_hsl(hue, sat, light);
    *foreign = color_hsl(hue, 35, 95);
}

void render_params_init(render_params *p, const char *seed, size_t seed_len,
                        int style, const aq_rgb *primary, const aq_rgb *foreign,
                        const color_scheme *scheme, double angle, aq_filter filter)
{
    memset(p, 0, sizeof *p);
    hash_sha256(seed, seed_len, p->hash);
    p->style = style;
    p->filter = filter;
    p->angle_deg100 = angle >= 0 ? (int)(angle * 100.0 + 0.5) % 36000 : -1;

    aq_rgb dp, df;
    derive_colors(p->hash, &dp, &df);
    if (scheme) {
        dp = scheme->primary;
        df = scheme->foreign;
    } else if (primary && !foreign) {
        /* a lone primary gets a pale tint of itself rather than a foreign
         * hue from the seed that may clash with it */
        df = color_mix(*primary, (aq_rgb){255, 255, 255}, 7, 8);
    }
    p->primary = primary ? *primary : dp;
    p->foreign = foreign ? *foreign : df;
}
