/* color: colour values, CSS names, #rgb/#rrggbb, named schemes, and the
 * standard filters. */
#ifndef AQ_COLOR_H
#define AQ_COLOR_H

#include <stddef.h>
#include <stdint.h>

typedef struct aq_rgb {
    uint8_t r, g, b;
} aq_rgb;

typedef enum {
    FILTER_NONE = 0,
    FILTER_GRAYSCALE,
    FILTER_SEPIA,
    FILTER_NEGATIVE,
    FILTER_COUNT
} aq_filter;

/* In every style, primary is the colour of the shapes (the identicon cells,
 * the rings, the deepest wave, the far end of a gradient) and foreign the
 * colour around them (the background). */
typedef struct color_scheme {
    const char *name;
    aq_rgb primary, foreign;
    const char *about; /* a few words for `avatarq schemes` */
} color_scheme;

/* Parses "#rgb", "#rrggbb" or a CSS named colour (case-insensitive);
 * returns 0, or -1 when s is none of those. */
int color_parse(const char *s, aq_rgb *out);

/* Formats c as "#rrggbb" into out (8 bytes). */
void color_hex(aq_rgb c, char out[8]);

/* The scheme called name, or NULL. */
const color_scheme *color_scheme_find(const char *name);
/* All schemes, in display order; *n receives their count. */
const color_scheme *color_schemes(size_t *n);

/* "none", "grayscale", ... (any case) -> FILTER_*, or -1 when unknown. */
int color_filter_find(const char *name);
/* The name of filter f ("none", ...); "?" for a value out of range. */
const char *color_filter_name(aq_filter f);

/* Applies filter f to one colour, with integer maths so every machine
 * agrees: grayscale = Rec. 601 luma (0.299, 0.587, 0.114); sepia = the usual
 * (0.393 0.769 0.189 / 0.349 0.686 0.168 / 0.272 0.534 0.131) clamped to 255;
 * negative = 255 - x. */
aq_rgb color_filter_apply(aq_filter f, aq_rgb c);

/* The colour t/tmax of the way from a to b (t = 0 gives a, t = tmax gives b),
 * rounded to nearest; tmax > 0, 0 <= t <= tmax. */
aq_rgb color_mix(aq_rgb a, aq_rgb b, int t, int tmax);

/* HSL to RGB with integer maths: hue in degrees (any integer, wrapped),
 * saturation and lightness in percent (0..100). */
aq_rgb color_hsl(int hue, int sat, int light);

/* RGB to HSL with integer maths, the inverse of color_hsl to within a
 * percent: hue 0..359 degrees, sat and light 0..100 percent. */
void color_to_hsl(aq_rgb c, int *hue, int *sat, int *light);

#endif
