/* render: request -> pixels. Styles live one per file (render_pixel.c,
 * render_classic.c, render_wave.c, render_gradient.c) and are chosen from the
 * table in render.c. Everything that decides a pixel comes from the SHA-256
 * of the seed through a seeded PRNG and integer/fixed-point maths, so the
 * same request gives the same pixels on every machine. */
#ifndef AQ_RENDER_H
#define AQ_RENDER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "color.h"

#define RENDER_MIN_SIZE 16
#define RENDER_MAX_SIZE 4096 /* hard ceiling; [render] max_size is lower */

/* What is behind the picture: the style's own (RENDER_BG_AUTO), one colour,
 * a linear or radial gradient (emoji), or nothing (transparent). */
typedef enum {
    RENDER_BG_AUTO = 0,
    RENDER_BG_SOLID,
    RENDER_BG_LINEAR,
    RENDER_BG_RADIAL,
    RENDER_BG_TRANSPARENT,
    RENDER_BG_COUNT
} render_bg;

/* Emoji size: 40, 60 or 80 % of the avatar. */
typedef enum { RENDER_EMOJI_AUTO = 0, RENDER_EMOJI_SMALL, RENDER_EMOJI_MEDIUM, RENDER_EMOJI_LARGE } render_emoji_size;

#define RENDER_EMOJI_MAX 96    /* bytes of an artwork name ("1f469-200d-...") */
#define RENDER_TEXT_MAX 64     /* bytes of the initials (UTF-8) */
#define RENDER_PLANE_KEY 160   /* bytes of render_image.plane_key */

/* The resolved request for one avatar, independent of its size. */
typedef struct render_params {
    uint8_t hash[32];      /* SHA-256 of the seed bytes */
    int style;             /* index from render_style_find() */
    aq_rgb primary, foreign;
    int angle_deg100;      /* gradient angle in hundredths of a degree, or -1 = seed decides */
    aq_filter filter;
    render_bg background;
    render_emoji_size emoji_size;
    int radius;            /* corner rounding, percent of the size 0..50 */
    char emoji[RENDER_EMOJI_MAX]; /* emoji style: artwork name, "" = seed picks */
    char text[RENDER_TEXT_MAX];   /* initials style: the letters, "" = from the seed */
} render_params;

/* A rendered image: indexed (ncolors 1..256, pixels one byte each, palette
 * already filtered, alpha[] the opacity of each entry when has_alpha) or
 * truecolour (ncolors 0, pixels RGB 3 bytes each, or RGBA 4 bytes each,
 * not premultiplied, when has_alpha). The pixel memory is owned by the
 * image and reused by render_make(). */
typedef struct render_image {
    int size;              /* width = height */
    int ncolors;
    aq_rgb palette[256];
    uint8_t *pixels;
    size_t cap;            /* bytes allocated in pixels */
    bool has_alpha;
    uint8_t alpha[256];    /* indexed + has_alpha: opacity of each palette entry */
    int bg_ramp;           /* set by a style: palette entries 0..bg_ramp fade from
                              the background to entry bg_ramp (0: no background
                              that can be made transparent) */
    char plane_key[RENDER_PLANE_KEY]; /* indexed images: a name for the pixel
                              indexes. Two images of one non-empty key have the same
                              size, ncolors and pixels[] (their palettes may differ),
                              so an encoder may reuse what it made of one for the
                              other; "" when the style does not promise that */
} render_image;

#define RENDER_IMAGE_INIT {0, 0, {{0, 0, 0}}, NULL, 0, false, {0}, 0, ""}

/* Bytes per pixel of img (1 indexed, 3 RGB, 4 RGBA). */
static inline int render_image_bpp(const render_image *img)
{
    return img->ncolors ? 1 : img->has_alpha ? 4 : 3;
}

/* Expands img to RGBA (rgba: size*size*4 bytes, not premultiplied). */
void render_image_rgba(const render_image *img, uint8_t *rgba);

/* Resolves colours: explicit primary/foreign (NULL when absent) win over the
 * scheme (NULL when absent), which wins over colours derived from the seed.
 * angle is degrees 0..360, or a negative number when absent. */
void render_params_init(render_params *p, const char *seed, size_t seed_len,
                        int style, const aq_rgb *primary, const aq_rgb *foreign,
                        const color_scheme *scheme, double angle, aq_filter filter);

/* Renders p at size x size pixels (RENDER_MIN_SIZE..RENDER_MAX_SIZE) into img,
 * background, filter and corner rounding applied. Returns 0, or -1 when out
 * of memory, size is out of range or the style's artwork cannot be drawn
 * (emoji artwork missing; render_error() then says why). */
int render_make(const render_params *p, int size, render_image *img);

/* Why the last render_make() of this thread failed ("" when it did not say). */
const char *render_error(void);

/* Whether style can draw background b (transparent needs a background the
 * style can drop; the gradient backgrounds are the emoji style's). */
bool render_style_takes_background(int style, render_bg b);

/* Whether style can be written as SVG (vector by nature). */
bool render_style_has_svg(int style);

/* Background names: "auto" is never written; NULL when out of range. */
const char *render_bg_name(render_bg b);
/* RENDER_BG_* of a name (any case), -1 when unknown. */
int render_bg_find(const char *name);
/* Emoji size names ("small", ...); NULL when out of range or auto. */
const char *render_emoji_size_name(render_emoji_size s);
/* RENDER_EMOJI_* of a name (any case), -1 when unknown. */
int render_emoji_size_find(const char *name);

/* Writes p as an SVG document of size x size user units into out (a
 * growing buffer, see buf.h: the caller's, appended to). Returns 0 or -1
 * (style without SVG, artwork missing, out of memory). */
int render_svg(const render_params *p, int size, buf *out);

/* Fills this thread's caches (emoji artwork) for every picture requests
 * like p can draw at the n sizes, so that processes forked afterwards
 * share them instead of each filling its own. Optional: rendering fills
 * them as it goes. */
void render_warm(const render_params *p, const int *sizes, size_t n);

/* Frees img's pixel memory. */
void render_image_free(render_image *img);

/* The style table: index of a style name (any case), or -1 when unknown. */
int render_style_find(const char *name);
/* The name of style index style, or NULL when out of range. */
const char *render_style_name(int style);
/* How many styles there are; indexes run 0..count-1. */
int render_style_count(void);

#endif
