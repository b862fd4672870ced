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
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
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
 * pixels), so row y + |a| is row y moved sideways by b pixels and the
 * compressor codes most rows as one long match. u -> ramp position -> step (map) is one
 * table (lut, 2 * size * 2 * MAX_DIR + 1 bytes). */
static void linear_plane(int size, uint32_t phase, const uint8_t *map, uint8_t *t, uint8_t *lut)
{
    int a = 0, b = -1;
    integer_direction(render_sin(phase), -render_cos(phase), &a, &b);
    int64_t half = (int64_t)size * ((a < 0 ? -a : a) + (b < 0 ? -b : b)); /* |u| <= half */
    /* lut[u] = map[u * (RAMP - 1) / (2 * half)], the quotient kept as it
     * grows instead of a 64-bit division per entry */
    int64_t q = 0, r = 0;
    for (int64_t u = 0; u <= 2 * half; u++, r += RAMP - 1) {
        for (; r >= 2 * half; r -= 2 * half)
            q++;
        lut[u] = map[q];
    }
    /* row y + |a| is row y moved sideways by sh pixels: copy what it
     * shares and look up only the new pixels (a = 0: every row is one
     * value) */
    int k = a < 0 ? -a : a, sh = a < 0 ? -b : b;
    for (int y = 0; y < size; y++) {
        int64_t u0 = (int64_t)a * (1 - size) + (int64_t)b * (2 * y + 1 - size) + half;
        uint8_t *o = t + (size_t)y * (size_t)size;
        int from = 0, to = size; /* the columns still to look up */
        if (k == 0) {
            memset(o, lut[u0], (size_t)size);
            continue;
        }
        if (y >= k && sh > -size && sh < size) {
            const uint8_t *src = o - (size_t)k * (size_t)size;
            if (sh >= 0) {
                memcpy(o, src + sh, (size_t)(size - sh));
                from = size - sh;
            } else {
                memcpy(o - sh, src, (size_t)(size + sh));
                to = -sh;
            }
        }
        for (int64_t x = from, u = u0 + 2 * a * from; x < to; x++, u += 2 * a)
            o[x] = lut[u];
    }
}

/* Radial: the ramp position grows with the distance from the centre,
 * reaching the end in the corners. Squared distances against a table of
 * squared thresholds, walked outwards from the centre of each row: no
 * square root per pixel. Into t, size x size. */
static void radial_ramp(int size, uint8_t *t)
{
    int64_t thr[RAMP];          /* thr[k]: smallest squared distance of position k */
    int64_t rmax2 = 2 * (int64_t)size * size; /* corner, in half pixels squared */
    for (int k = 0; k < RAMP; k++)
        thr[k] = rmax2 * k * k / ((RAMP - 1) * (RAMP - 1));
    for (int y = 0; y < size; y++) {
        int64_t dy = 2 * y + 1 - size;
        int k = 0;
        uint8_t *row = t + (size_t)y * (size_t)size;
        for (int x = size / 2; x < size; x++) { /* the right half ... */
            int64_t dx = 2 * x + 1 - size, d2 = dx * dx + dy * dy;
            while (k < RAMP - 1 && thr[k + 1] <= d2)
                k++;
            row[x] = (uint8_t)k;
        }
        /* ... mirrored, in a loop of its own: with both stores in the loop
         * above, GCC 12.2 at -O2 produced a wrong plane (right at -O1 with
         * the sanitizers); two loops are right at every level */
        for (int x = 0; x < size / 2; x++)
            row[x] = row[size - 1 - x];
    }
}

/* The radial ramp depends on the size alone, and a worker draws a few
 * sizes over and over: the process keeps the ramps of the first RADIAL_SLOTS
 * sizes up to RADIAL_MAX px (at most 8 MB), shared by its threads. A slot,
 * once filled, is never changed or freed, so readers need the lock only to
 * find it. */
#define RADIAL_SLOTS 8
#define RADIAL_MAX 1024

static struct {
    int size;
    uint8_t *ramp;
} radial_slots[RADIAL_SLOTS];
static pthread_mutex_t radial_mu = PTHREAD_MUTEX_INITIALIZER;

static uint8_t *radial_find(int size)
{
    uint8_t *r = NULL;
    pthread_mutex_lock(&radial_mu);
    for (int i = 0; i < RADIAL_SLOTS && !r && radial_slots[i].ramp; i++)
        if (radial_slots[i].size == size)
            r = radial_slots[i].ramp;
    pthread_mutex_unlock(&radial_mu);
    return r;
}

/* The ramp at size: the process's, or drawn into scratch (size * size
 * bytes) when there is no slot for it. */
static const uint8_t *radial_ramp_cached(int size, uint8_t *scratch)
{
    uint8_t *r = radial_find(size);
    if (r)
        return r;
    uint8_t *fresh = size <= RADIAL_MAX ? malloc((size_t)size * (size_t)size) : NULL;
    radial_ramp(size, fresh ? fresh : scratch);
    if (!fresh)
        return scratch;
    pthread_mutex_lock(&radial_mu);
    int i = 0;
    while (i < RADIAL_SLOTS && radial_slots[i].ramp && radial_slots[i].size != size)
        i++;
    if (i < RADIAL_SLOTS && !radial_slots[i].ramp)
        radial_slots[i].size = size, radial_slots[i].ramp = fresh, r = fresh;
    else if (i < RADIAL_SLOTS)
        r = radial_slots[i].ramp; /* another thread's, drawn meanwhile */
    pthread_mutex_unlock(&radial_mu);
    if (r != fresh) {
        if (!r) /* every slot taken by other sizes */
            memcpy(r = scratch, fresh, (size_t)size * (size_t)size);
        free(fresh);
    }
    return r;
}

/* Radial, mapped to steps: the ramp is symmetric about the middle row, so
 * the lower half is the upper half's rows copied. */
static void radial_plane(int size, const uint8_t *map, uint8_t *t, uint8_t *scratch)
{
    const uint8_t *r = radial_ramp_cached(size, scratch);
    size_t s = (size_t)size;
    for (size_t y = 0; y < (s + 1) / 2; y++)
        for (size_t x = 0; x < s; x++)
            t[y * s + x] = map[r[y * s + x]];
    for (size_t y = (s + 1) / 2; y < s; y++)
        memcpy(t + y * s, t + (s - 1 - y) * s, s);
}

/* The background step (0..steps-1, foreign -> primary) of every pixel
 * into t: ramp position k (0..RAMP-1) is step k * steps / RAMP. scratch
 * holds lut_bytes(size) bytes. */
static void background_plane(const emoji_plan *e, int size, int steps, uint8_t *t, uint8_t *scratch)
{
    uint8_t map[RAMP];
    for (int k = 0; k < RAMP; k++)
        map[k] = (uint8_t)(k * steps / RAMP);
    if (e->bg == RENDER_BG_LINEAR)
        linear_plane(size, e->phase, map, t, scratch);
    else if (e->bg == RENDER_BG_RADIAL)
        radial_plane(size, map, t, scratch);
    else
        memset(t, 0, (size_t)size * (size_t)size);
}

/* Scratch bytes background_plane() needs beyond the plane. */
static size_t lut_bytes(int size)
{
    size_t lin = (size_t)size * 4 * MAX_DIR + 1, rad = (size_t)size * (size_t)size;
    return lin > rad ? lin : rad;
}

/* ---- the palette picture: what nearly every emoji avatar becomes ---- */

/* A gradient background takes one palette entry per ramp step: about one
 * step per 3 levels of the widest channel difference (no visible bands),
 * at least MIN_STEPS, at most MAX_STEPS. Edge pixels of the artwork blend
 * with one background colour per group of steps, GROUPS groups over the
 * ramp, so that blends stay few. */
#define MIN_STEPS 24
#define MAX_STEPS 96
#define GROUPS 3
#define BG_STEPS MAX_STEPS

typedef struct palette_build {
    render_image *img;
    int16_t opaque[256];                         /* artwork entry -> palette */
    int16_t blend[GROUPS][256];  /* (bg group, artwork entry) -> palette */
    aq_rgb ramp[BG_STEPS];
    int steps, group;            /* ramp steps, steps per group */
} palette_build;

/* Ramp steps for a gradient from a to b (see MIN_STEPS). */
static int ramp_steps(aq_rgb a, aq_rgb b)
{
    int d = abs(a.r - b.r);
    d = abs(a.g - b.g) > d ? abs(a.g - b.g) : d;
    d = abs(a.b - b.b) > d ? abs(a.b - b.b) : d;
    int n = d / 3 + 1;
    return n < MIN_STEPS ? MIN_STEPS : n > MAX_STEPS ? MAX_STEPS : n;
}

static int add_colour(palette_build *pb, aq_rgb c)
{
    render_image *img = pb->img;
    if (img->ncolors == 256)
        return -1;
    img->palette[img->ncolors] = c;
    return img->ncolors++;
}

/* Premultiplied artwork colour s of alpha a over background d. */
static aq_rgb over(const uint8_t s[4], aq_rgb d)
{
    unsigned k = 255 - s[3];
    return (aq_rgb){(uint8_t)(s[0] + (d.r * k + 127) / 255), (uint8_t)(s[1] + (d.g * k + 127) / 255),
                    (uint8_t)(s[2] + (d.b * k + 127) / 255)};
}

/* The palette entry of artwork entry a on background step b. */
static int entry_of(palette_build *pb, const emoji_art *art, int a, int b)
{
    const uint8_t *s = art->pal[a];
    if (s[3] == 255) {
        if (pb->opaque[a] < 0)
            pb->opaque[a] = (int16_t)add_colour(pb, (aq_rgb){s[0], s[1], s[2]});
        return pb->opaque[a];
    }
    int g = b / pb->group;
    if (pb->blend[g][a] < 0) {
        int mid = g * pb->group + pb->group / 2;
        aq_rgb d = pb->ramp[mid < pb->steps ? mid : pb->steps - 1];
        pb->blend[g][a] = (int16_t)add_colour(pb, over(s, d));
    }
    return pb->blend[g][a];
}

/* Draws into an indexed image: the background as ramp_steps() entries
 * (one for solid), the artwork by its quantized entries, edge pixels as
 * blends. -1 when that would take more than 256 entries (the caller then
 * draws truecolour). */
static int draw_indexed(const render_params *p, const emoji_plan *e, int size, const emoji_art *art,
                        render_image *img)
{
    size_t n = (size_t)size * (size_t)size;
    if (render_reserve(img, n + lut_bytes(size)) < 0)
        return -1;
    palette_build *pb = malloc(sizeof *pb);
    if (!pb)
        return -1;
    memset(pb, 0xff, sizeof *pb);
    pb->img = img;
    img->ncolors = 0;
    img->has_alpha = false;
    uint8_t *px = img->pixels;
    pb->steps = e->bg == RENDER_BG_SOLID ? 1 : ramp_steps(p->foreign, p->primary);
    background_plane(e, size, pb->steps, px, px + n);
    pb->group = (pb->steps + GROUPS - 1) / GROUPS;
    for (int i = 0; i < pb->steps; i++)
        pb->ramp[i] = pb->steps == 1 ? p->foreign : color_mix(p->foreign, p->primary, i, pb->steps - 1);
    for (int i = 0; i < pb->steps; i++)
        add_colour(pb, pb->ramp[i]);
    int off = (size - art->px) / 2, rc = 0;
    for (int y = 0; y < art->px && rc == 0; y++) {
        const uint8_t *a = art->idx + (size_t)y * (size_t)art->px;
        uint8_t *d = px + (size_t)(y + off) * (size_t)size + (size_t)off;
        for (int x = 0; x < art->px; x++) {
            if (!a[x])
                continue;
            /* an opaque entry met before has its palette entry already: the
             * inside of the artwork takes only this test */
            int k = pb->opaque[a[x]];
            if (k < 0)
                k = entry_of(pb, art, a[x], d[x]);
            if (k < 0) {
                rc = -1;
                break;
            }
            d[x] = (uint8_t)k;
        }
    }
    /* the indexes follow from the artwork, its place, the background's
     * kind, steps and (linear) direction: not from the colours */
    if (rc == 0)
        snprintf(img->plane_key, sizeof img->plane_key, "emoji %s %d/%d bg %d steps %d phase %u", e->name,
                 art->px, size, (int)e->bg, pb->steps, e->bg == RENDER_BG_LINEAR ? (unsigned)e->phase : 0u);
    free(pb);
    return rc;
}

/* Transparent background: the artwork's own entries, unpremultiplied. */
static int draw_clear(int size, const char *art_name, const emoji_art *art, render_image *img)
{
    size_t n = (size_t)size * (size_t)size;
    if (render_reserve(img, n) < 0)
        return -1;
    memset(img->pixels, 0, n);
    img->ncolors = art->npal;
    img->has_alpha = true;
    for (int i = 0; i < art->npal; i++) {
        const uint8_t *s = art->pal[i];
        unsigned a = s[3];
        img->palette[i] = a ? (aq_rgb){(uint8_t)((s[0] * 255 + a / 2) / a), (uint8_t)((s[1] * 255 + a / 2) / a),
                                       (uint8_t)((s[2] * 255 + a / 2) / a)}
                            : (aq_rgb){0, 0, 0};
        img->alpha[i] = (uint8_t)a;
    }
    int off = (size - art->px) / 2;
    for (int y = 0; y < art->px; y++)
        memcpy(img->pixels + (size_t)(y + off) * (size_t)size + (size_t)off, art->idx + (size_t)y * (size_t)art->px,
               (size_t)art->px);
    snprintf(img->plane_key, sizeof img->plane_key, "emoji %s %d/%d clear", art_name, art->px, size);
    return 0;
}

/* ---- truecolour: every background step, when 256 entries do not suffice ---- */

static int draw_truecolour(const render_params *p, const emoji_plan *e, int size, const emoji_art *art,
                           render_image *img)
{
    size_t n = (size_t)size * (size_t)size;
    if (render_reserve(img, n * 4 + lut_bytes(size)) < 0)
        return -1;
    uint8_t *t = img->pixels + n * 3; /* the plane after the RGB pixels */
    background_plane(e, size, RAMP, t, t + n);
    aq_rgb ramp[RAMP];
    for (int i = 0; i < RAMP; i++)
        ramp[i] = color_mix(p->foreign, p->primary, i, RAMP - 1);
    uint8_t *px = img->pixels;
    for (size_t i = 0; i < n; i++) {
        aq_rgb c = e->bg == RENDER_BG_SOLID ? p->foreign : ramp[t[i]];
        px[3 * i] = c.r, px[3 * i + 1] = c.g, px[3 * i + 2] = c.b;
    }
    int off = (size - art->px) / 2;
    for (int y = 0; y < art->px; y++) {
        const uint8_t *a = art->idx + (size_t)y * (size_t)art->px;
        uint8_t *d = px + ((size_t)(y + off) * (size_t)size + (size_t)off) * 3;
        for (int x = 0; x < art->px; x++, d += 3)
            if (a[x]) {
                aq_rgb c = over(art->pal[a[x]], (aq_rgb){d[0], d[1], d[2]});
                d[0] = c.r, d[1] = c.g, d[2] = c.b;
            }
    }
    img->ncolors = 0;
    img->has_alpha = false;
    return 0;
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
    img->bg_ramp = 0;
    char why[256];
    emoji_art art;
    if (emoji_art_get(e.name, size * e.pct / 100, &art, why, sizeof why) != 0)
        return render_fail("emoji: %s", why);
    int rc = e.bg == RENDER_BG_TRANSPARENT ? draw_clear(size, e.name, &art, img)
             : draw_indexed(p, &e, size, &art, img) == 0 ? 0
                                                          : draw_truecolour(p, &e, size, &art, img);
    emoji_art_put(&art);
    return rc < 0 ? render_fail("out of memory") : 0;
}

void render_emoji_warm(const render_params *p, int size)
{
    char why[256];
    emoji_art art;
    for (int z = RENDER_EMOJI_SMALL; z <= RENDER_EMOJI_LARGE; z++) {
        if (p->emoji_size != RENDER_EMOJI_AUTO ? z != (int)p->emoji_size : z == RENDER_EMOJI_SMALL)
            continue; /* the sizes this request can draw: the seed picks medium or large */
        int px = size * size_pct[z] / 100;
        if (p->emoji[0]) {
            if (emoji_art_get(p->emoji, px, &art, why, sizeof why) == 0)
                emoji_art_put(&art);
            continue;
        }
        for (uint64_t k = 0;; k++) {
            const char *name = emoji_pick(k);
            if (k > 0 && name == emoji_pick(0))
                break; /* the curated set, once round */
            if (emoji_art_get(name, px, &art, why, sizeof why) == 0)
                emoji_art_put(&art);
        }
    }
}
