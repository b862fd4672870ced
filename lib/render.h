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

#include "color.h"

#define RENDER_MIN_SIZE 16
#define RENDER_MAX_SIZE 4096 /* hard ceiling; [render] max_size is lower */

/* The resolved request for one avatar, independent of its size. */
typedef struct render_params {
    uint8_t hash[32];      /* SHA-256 of the seed bytes */
    int style;             /* index from render_style_find() */
    aq_rgb primary, foreign;
    int angle_deg100;      /* gradient angle in hundredths of a degree, or -1 = seed decides */
    aq_filter filter;
} render_params;

/* A rendered image: indexed (ncolors 1..256, pixels one byte each, palette
 * already filtered) or truecolour (ncolors 0, pixels RGB 3 bytes each).
 * The pixel memory is owned by the image and reused by render_make(). */
typedef struct render_image {
    int size;              /* width = height */
    int ncolors;
    aq_rgb palette[256];
    uint8_t *pixels;
    size_t cap;            /* bytes allocated in pixels */
} render_image;

#define RENDER_IMAGE_INIT {0, 0, {{0, 0, 0}}, NULL, 0}

/* Resolves colours: explicit primary/foreign (NULL when absent) win over the
 * scheme (NULL when absent), which wins over colours derived from the seed.
 * angle is degrees 0..360, or a negative number when absent. */
void render_params_init(render_params *p, const char *seed, size_t seed_len,
                        int style, const aq_rgb *primary, const aq_rgb *foreign,
                        const color_scheme *scheme, double angle, aq_filter filter);

/* Renders p at size x size pixels (RENDER_MIN_SIZE..RENDER_MAX_SIZE) into img.
 * Returns 0, or -1 when out of memory or size is out of range. */
int render_make(const render_params *p, int size, render_image *img);

/* Frees img's pixel memory. */
void render_image_free(render_image *img);

/* The style table: index of a style name (any case), or -1 when unknown. */
int render_style_find(const char *name);
/* The name of style index style, or NULL when out of range. */
const char *render_style_name(int style);
/* How many styles there are; indexes run 0..count-1. */
int render_style_count(void);

#endif
