/* render_style: what render.c shares with the style files (render_pixel.c,
 * render_classic.c, render_wave.c, render_gradient.c). Private to the
 * renderer; nothing outside lib/render*.c includes it. */
#ifndef AQ_RENDER_STYLE_H
#define AQ_RENDER_STYLE_H

#include <stddef.h>
#include <stdint.h>

#include "prng.h"
#include "render.h"

/* xoshiro256** (prng.h) seeded from the SHA-256 of the seed: the only
 * source of choices in a style, so a seed gives the same picture everywhere. */
typedef prng render_rng;

/* Seeds r from hash; streams with different numbers are independent (styles
 * use stream 0, colour derivation stream 1). */
void render_rng_init(render_rng *r, const uint8_t hash[32], uint64_t stream);
/* The next 64 random bits of r. */
uint64_t render_rng_next(render_rng *r);
/* Uniform in [lo, hi] (inclusive), lo <= hi. */
int render_rng_range(render_rng *r, int lo, int hi);

/* sin of a phase given in 1/65536 of a full turn, in Q14 (-16384..16384),
 * from an integer polynomial: identical on every machine. */
int32_t render_sin(uint32_t phase);
static inline int32_t render_cos(uint32_t phase) { return render_sin(phase + 16384); }

/* floor(sqrt(v)), exact. */
uint32_t render_isqrt(uint64_t v);

/* Makes img->pixels hold at least bytes bytes (keeping memory that is big
 * enough already). Returns 0 or -1. */
int render_reserve(render_image *img, size_t bytes);

/* Fills img->palette[0..n-1] with an even ramp from a to b (n >= 2) and sets
 * img->ncolors = n. */
void render_ramp(render_image *img, aq_rgb a, aq_rgb b, int n);

/* The primary paled t/tmax of the way towards white, or, when the foreign
 * colour is dark, towards the foreign colour: the light end of a style's
 * ramp that stays in the primary's family instead of passing through mud
 * on contrasting pairs (purple on gold). */
aq_rgb render_tint(const render_params *p, int t, int tmax);

/* A style draws p at size x size into img (indexed, unfiltered palette).
 * It may use img->pixels beyond size*size as scratch after reserving it. */
typedef int (*render_style_fn)(const render_params *p, int size, render_image *img);

/* Records why rendering failed (render_error() returns it) and returns -1. */
int render_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* After a style draws (render_shape.c): makes palette entries 0..bg_ramp
 * transparent (fading in up to bg_ramp); -1 when the picture has no such
 * background. */
int render_drop_background(render_image *img);
/* Applies filter f to the palette or to every truecolour pixel. */
void render_filter_pixels(render_image *img, aq_filter f);
/* Rounds the corners (radius_pct 0..50 of the size): coverage-weighted
 * alpha on the edge, transparent outside. Returns 0 or -1 (memory). */
int render_round(render_image *img, int radius_pct);

/* The pixel style's set cells: bit row * 3 + col for the 3 left columns
 * of its 5 x 5 grid (the right two mirror them). render_svg draws them. */
uint32_t render_pixel_cells(const render_params *p);

/* The emoji style's choices for p (the seed's where p leaves them open):
 * background, size in percent, linear direction (1/65536 turn), artwork. */
void render_emoji_plan(const render_params *p, render_bg *bg, int *pct, uint32_t *phase,
                       const char **name);

/* Fills the emoji cache with every artwork p can draw at size. */
void render_emoji_warm(const render_params *p, int size);

/* The styles, one file each (see the top of each file). */
int render_pixel(const render_params *p, int size, render_image *img);
int render_classic(const render_params *p, int size, render_image *img);
int render_wave(const render_params *p, int size, render_image *img);
int render_gradient(const render_params *p, int size, render_image *img);
int render_emoji(const render_params *p, int size, render_image *img);
int render_initials(const render_params *p, int size, render_image *img);

#endif
