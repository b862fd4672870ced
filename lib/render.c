/* render: the style table, request resolution (colours, angle) and the
 * helpers every style shares: the seeded PRNG, integer sine and square root,
 * and the reusable pixel memory. */
#include "render.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "hash.h"
#include "initials.h"
#include "render_style.h"

typedef struct render_style {
    const char *name;
    render_style_fn draw;
    bool transparent;      /* has a background it can drop */
    bool gradients;        /* draws linear/radial backgrounds itself */
    bool svg;              /* vector by nature: render_svg() writes it */
} render_style;

/* Index order is part of the contract with job.c (render_params.style). */
static const render_style styles[] = {
    {"pixel", render_pixel, true, false, true},
    {"classic", render_classic, true, false, false},
    {"wave", render_wave, true, false, false},
    {"gradient", render_gradient, false, false, false},
    {"emoji", render_emoji, true, true, true},
    {"initials", render_initials, true, false, false},
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

bool render_style_takes_background(int style, render_bg b)
{
    if (style < 0 || style >= NSTYLES)
        return false;
    switch (b) {
    case RENDER_BG_AUTO:
    case RENDER_BG_SOLID: return true;
    case RENDER_BG_TRANSPARENT: return styles[style].transparent;
    case RENDER_BG_LINEAR:
    case RENDER_BG_RADIAL: return styles[style].gradients;
    default: return false;
    }
}

bool render_style_has_svg(int style)
{
    return style >= 0 && style < NSTYLES && styles[style].svg;
}

static const char *const bg_names[RENDER_BG_COUNT] = {
    [RENDER_BG_AUTO] = "auto", [RENDER_BG_SOLID] = "solid", [RENDER_BG_LINEAR] = "linear",
    [RENDER_BG_RADIAL] = "radial", [RENDER_BG_TRANSPARENT] = "transparent",
};

static const char *const emoji_size_names[] = {
    [RENDER_EMOJI_SMALL] = "small", [RENDER_EMOJI_MEDIUM] = "medium", [RENDER_EMOJI_LARGE] = "large",
};

#define NEMOJI_SIZES ((int)(sizeof emoji_size_names / sizeof emoji_size_names[0]))

const char *render_bg_name(render_bg b)
{
    return (unsigned)b < RENDER_BG_COUNT ? bg_names[b] : NULL;
}

int render_bg_find(const char *name)
{
    for (int i = RENDER_BG_SOLID; name && i < RENDER_BG_COUNT; i++)
        if (strcasecmp(name, bg_names[i]) == 0)
            return i;
    return -1;
}

const char *render_emoji_size_name(render_emoji_size s)
{
    return (int)s > 0 && (int)s < NEMOJI_SIZES ? emoji_size_names[s] : NULL;
}

int render_emoji_size_find(const char *name)
{
    for (int i = 1; name && i < NEMOJI_SIZES; i++)
        if (strcasecmp(name, emoji_size_names[i]) == 0)
            return i;
    return -1;
}

/* ---- errors ---- */

static _Thread_local char last_error[256];

int render_fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error, sizeof last_error, fmt, ap);
    va_end(ap);
    return -1;
}

const char *render_error(void) { return last_error; }

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

void render_warm(const render_params *p, const int *sizes, size_t n)
{
    const char *name = render_style_name(p->style);
    for (size_t i = 0; name && strcmp(name, "emoji") == 0 && i < n; i++)
        render_emoji_warm(p, sizes[i]);
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
    last_error[0] = '\0';
    if (size < RENDER_MIN_SIZE || size > RENDER_MAX_SIZE || p->style < 0 || p->style >= NSTYLES)
        return render_fail("size %d or style %d out of range", size, p->style);
    if (!render_style_takes_background(p->style, p->background))
        return render_fail("background: style %s cannot draw %s", styles[p->style].name,
                           render_bg_name(p->background));
    img->size = size;
    img->has_alpha = false;
    img->bg_ramp = 0;
    img->plane_key[0] = '\0';
    if (styles[p->style].draw(p, size, img) < 0)
        return -1;
    /* rounding adds palette entries where corners cut pixels: the indexes
     * then depend on more than the style's key (dropping the background
     * and filtering change the palette only) */
    if (p->radius > 0)
        img->plane_key[0] = '\0';
    if (p->background == RENDER_BG_TRANSPARENT && img->ncolors && !img->has_alpha &&
        render_drop_background(img) < 0)
        return render_fail("background: style %s has no background to drop", styles[p->style].name);
    /* Indexed styles filter their palette (at most 256 entries whatever the
     * size); truecolour ones (emoji) every pixel. */
    render_filter_pixels(img, p->filter);
    if (p->radius > 0 && render_round(img, p->radius) < 0)
        return render_fail("out of memory rounding corners");
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
    /* the initials style's letters, from the seed unless a name replaces them */
    if (initials_of(seed, seed_len, p->text, sizeof p->text) == 0)
        snprintf(p->text, sizeof p->text, "?");
}
