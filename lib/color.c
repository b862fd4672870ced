/* color: CSS colour names, #hex parsing, named schemes and the standard
 * filters, all with integer maths so that every machine agrees. */
#include "color.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

typedef struct named_color {
    const char *name;
    aq_rgb rgb;
} named_color;

/* The 148 CSS Color Module 4 named colours, sorted for bsearch. */
static const named_color css_colors[] = {
    {"aliceblue", {0xf0, 0xf8, 0xff}},
    {"antiquewhite", {0xfa, 0xeb, 0xd7}},
    {"aqua", {0x00, 0xff, 0xff}},
    {"aquamarine", {0x7f, 0xff, 0xd4}},
    {"azure", {0xf0, 0xff, 0xff}},
    {"beige", {0xf5, 0xf5, 0xdc}},
    {"bisque", {0xff, 0xe4, 0xc4}},
    {"black", {0x00, 0x00, 0x00}},
    {"blanchedalmond", {0xff, 0xeb, 0xcd}},
    {"blue", {0x00, 0x00, 0xff}},
    {"blueviolet", {0x8a, 0x2b, 0xe2}},
    {"brown", {0xa5, 0x2a, 0x2a}},
    {"burlywood", {0xde, 0xb8, 0x87}},
    {"cadetblue", {0x5f, 0x9e, 0xa0}},
    {"chartreuse", {0x7f, 0xff, 0x00}},
    {"chocolate", {0xd2, 0x69, 0x1e}},
    {"coral", {0xff, 0x7f, 0x50}},
    {"cornflowerblue", {0x64, 0x95, 0xed}},
    {"cornsilk", {0xff, 0xf8, 0xdc}},
    {"crimson", {0xdc, 0x14, 0x3c}},
    {"cyan", {0x00, 0xff, 0xff}},
    {"darkblue", {0x00, 0x00, 0x8b}},
    {"darkcyan", {0x00, 0x8b, 0x8b}},
    {"darkgoldenrod", {0xb8, 0x86, 0x0b}},
    {"darkgray", {0xa9, 0xa9, 0xa9}},
    {"darkgreen", {0x00, 0x64, 0x00}},
    {"darkgrey", {0xa9, 0xa9, 0xa9}},
    {"darkkhaki", {0xbd, 0xb7, 0x6b}},
    {"darkmagenta", {0x8b, 0x00, 0x8b}},
    {"darkolivegreen", {0x55, 0x6b, 0x2f}},
    {"darkorange", {0xff, 0x8c, 0x00}},
    {"darkorchid", {0x99, 0x32, 0xcc}},
    {"darkred", {0x8b, 0x00, 0x00}},
    {"darksalmon", {0xe9, 0x96, 0x7a}},
    {"darkseagreen", {0x8f, 0xbc, 0x8f}},
    {"darkslateblue", {0x48, 0x3d, 0x8b}},
    {"darkslategray", {0x2f, 0x4f, 0x4f}},
    {"darkslategrey", {0x2f, 0x4f, 0x4f}},
    {"darkturquoise", {0x00, 0xce, 0xd1}},
    {"darkviolet", {0x94, 0x00, 0xd3}},
    {"deeppink", {0xff, 0x14, 0x93}},
    {"deepskyblue", {0x00, 0xbf, 0xff}},
    {"dimgray", {0x69, 0x69, 0x69}},
    {"dimgrey", {0x69, 0x69, 0x69}},
    {"dodgerblue", {0x1e, 0x90, 0xff}},
    {"firebrick", {0xb2, 0x22, 0x22}},
    {"floralwhite", {0xff, 0xfa, 0xf0}},
    {"forestgreen", {0x22, 0x8b, 0x22}},
    {"fuchsia", {0xff, 0x00, 0xff}},
    {"gainsboro", {0xdc, 0xdc, 0xdc}},
    {"ghostwhite", {0xf8, 0xf8, 0xff}},
    {"gold", {0xff, 0xd7, 0x00}},
    {"goldenrod", {0xda, 0xa5, 0x20}},
    {"gray", {0x80, 0x80, 0x80}},
    {"green", {0x00, 0x80, 0x00}},
    {"greenyellow", {0xad, 0xff, 0x2f}},
    {"grey", {0x80, 0x80, 0x80}},
    {"honeydew", {0xf0, 0xff, 0xf0}},
    {"hotpink", {0xff, 0x69, 0xb4}},
    {"indianred", {0xcd, 0x5c, 0x5c}},
    {"indigo", {0x4b, 0x00, 0x82}},
    {"ivory", {0xff, 0xff, 0xf0}},
    {"khaki", {0xf0, 0xe6, 0x8c}},
    {"lavender", {0xe6, 0xe6, 0xfa}},
    {"lavenderblush", {0xff, 0xf0, 0xf5}},
    {"lawngreen", {0x7c, 0xfc, 0x00}},
    {"lemonchiffon", {0xff, 0xfa, 0xcd}},
    {"lightblue", {0xad, 0xd8, 0xe6}},
    {"lightcoral", {0xf0, 0x80, 0x80}},
    {"lightcyan", {0xe0, 0xff, 0xff}},
    {"lightgoldenrodyellow", {0xfa, 0xfa, 0xd2}},
    {"lightgray", {0xd3, 0xd3, 0xd3}},
    {"lightgreen", {0x90, 0xee, 0x90}},
    {"lightgrey", {0xd3, 0xd3, 0xd3}},
    {"lightpink", {0xff, 0xb6, 0xc1}},
    {"lightsalmon", {0xff, 0xa0, 0x7a}},
    {"lightseagreen", {0x20, 0xb2, 0xaa}},
    {"lightskyblue", {0x87, 0xce, 0xfa}},
    {"lightslategray", {0x77, 0x88, 0x99}},
    {"lightslategrey", {0x77, 0x88, 0x99}},
    {"lightsteelblue", {0xb0, 0xc4, 0xde}},
    {"lightyellow", {0xff, 0xff, 0xe0}},
    {"lime", {0x00, 0xff, 0x00}},
    {"limegreen", {0x32, 0xcd, 0x32}},
    {"linen", {0xfa, 0xf0, 0xe6}},
    {"magenta", {0xff, 0x00, 0xff}},
    {"maroon", {0x80, 0x00, 0x00}},
    {"mediumaquamarine", {0x66, 0xcd, 0xaa}},
    {"mediumblue", {0x00, 0x00, 0xcd}},
    {"mediumorchid", {0xba, 0x55, 0xd3}},
    {"mediumpurple", {0x93, 0x70, 0xdb}},
    {"mediumseagreen", {0x3c, 0xb3, 0x71}},
    {"mediumslateblue", {0x7b, 0x68, 0xee}},
    {"mediumspringgreen", {0x00, 0xfa, 0x9a}},
    {"mediumturquoise", {0x48, 0xd1, 0xcc}},
    {"mediumvioletred", {0xc7, 0x15, 0x85}},
    {"midnightblue", {0x19, 0x19, 0x70}},
    {"mintcream", {0xf5, 0xff, 0xfa}},
    {"mistyrose", {0xff, 0xe4, 0xe1}},
    {"moccasin", {0xff, 0xe4, 0xb5}},
    {"navajowhite", {0xff, 0xde, 0xad}},
    {"navy", {0x00, 0x00, 0x80}},
    {"oldlace", {0xfd, 0xf5, 0xe6}},
    {"olive", {0x80, 0x80, 0x00}},
    {"olivedrab", {0x6b, 0x8e, 0x23}},
    {"orange", {0xff, 0xa5, 0x00}},
    {"orangered", {0xff, 0x45, 0x00}},
    {"orchid", {0xda, 0x70, 0xd6}},
    {"palegoldenrod", {0xee, 0xe8, 0xaa}},
    {"palegreen", {0x98, 0xfb, 0x98}},
    {"paleturquoise", {0xaf, 0xee, 0xee}},
    {"palevioletred", {0xdb, 0x70, 0x93}},
    {"papayawhip", {0xff, 0xef, 0xd5}},
    {"peachpuff", {0xff, 0xda, 0xb9}},
    {"peru", {0xcd, 0x85, 0x3f}},
    {"pink", {0xff, 0xc0, 0xcb}},
    {"plum", {0xdd, 0xa0, 0xdd}},
    {"powderblue", {0xb0, 0xe0, 0xe6}},
    {"purple", {0x80, 0x00, 0x80}},
    {"rebeccapurple", {0x66, 0x33, 0x99}},
    {"red", {0xff, 0x00, 0x00}},
    {"rosybrown", {0xbc, 0x8f, 0x8f}},
    {"royalblue", {0x41, 0x69, 0xe1}},
    {"saddlebrown", {0x8b, 0x45, 0x13}},
    {"salmon", {0xfa, 0x80, 0x72}},
    {"sandybrown", {0xf4, 0xa4, 0x60}},
    {"seagreen", {0x2e, 0x8b, 0x57}},
    {"seashell", {0xff, 0xf5, 0xee}},
    {"sienna", {0xa0, 0x52, 0x2d}},
    {"silver", {0xc0, 0xc0, 0xc0}},
    {"skyblue", {0x87, 0xce, 0xeb}},
    {"slateblue", {0x6a, 0x5a, 0xcd}},
    {"slategray", {0x70, 0x80, 0x90}},
    {"slategrey", {0x70, 0x80, 0x90}},
    {"snow", {0xff, 0xfa, 0xfa}},
    {"springgreen", {0x00, 0xff, 0x7f}},
    {"steelblue", {0x46, 0x82, 0xb4}},
    {"tan", {0xd2, 0xb4, 0x8c}},
    {"teal", {0x00, 0x80, 0x80}},
    {"thistle", {0xd8, 0xbf, 0xd8}},
    {"tomato", {0xff, 0x63, 0x47}},
    {"turquoise", {0x40, 0xe0, 0xd0}},
    {"violet", {0xee, 0x82, 0xee}},
    {"wheat", {0xf5, 0xde, 0xb3}},
    {"white", {0xff, 0xff, 0xff}},
    {"whitesmoke", {0xf5, 0xf5, 0xf5}},
    {"yellow", {0xff, 0xff, 0x00}},
    {"yellowgreen", {0x9a, 0xcd, 0x32}},
};

#define NCSS (sizeof css_colors / sizeof css_colors[0])

/* Schemes: primary is the shape colour, foreign the background. Each pair was
 * picked by eye on the contact sheet (`avatarq sheet`): a saturated mid-tone
 * on a pale tint of the same hue reads well at 16 px and at 512 px. */
static const color_scheme schemes[] = {
    {"default",    {0x5b, 0x6e, 0xe1}, {0xf0, 0xf0, 0xf0}, "indigo-blue on light grey"},
    {"green",      {0x2d, 0xa4, 0x4e}, {0xea, 0xf6, 0xec}, "GitHub green on mint"},
    {"blue",       {0x1f, 0x6f, 0xeb}, {0xe6, 0xf0, 0xfd}, "bright blue on ice"},
    {"red",        {0xdc, 0x3a, 0x3f}, {0xfd, 0xec, 0xec}, "signal red on blush"},
    {"orange",     {0xf0, 0x6a, 0x1a}, {0xff, 0xf0, 0xe4}, "tangerine on cream"},
    {"purple",     {0x8a, 0x4b, 0xc4}, {0xf4, 0xec, 0xfb}, "violet on lilac"},
    {"teal",       {0x0f, 0x9a, 0x8c}, {0xe4, 0xf6, 0xf4}, "teal on pale aqua"},
    {"indigo",     {0x3f, 0x4b, 0xc0}, {0xe9, 0xec, 0xfb}, "deep indigo on periwinkle"},
    {"pink",       {0xd6, 0x3e, 0x98}, {0xfc, 0xeb, 0xf5}, "magenta pink on rose"},
    {"emerald",    {0x0e, 0xa8, 0x72}, {0xe5, 0xf8, 0xf0}, "emerald on mint"},
    {"monochrome", {0x2b, 0x2b, 0x2b}, {0xf2, 0xf2, 0xf2}, "charcoal on off-white"},
    {"vibrant",    {0xff, 0x2e, 0x63}, {0xff, 0xd8, 0x3d}, "hot pink on sunflower"},
    {"pastel",     {0xa7, 0x8b, 0xde}, {0xfd, 0xf3, 0xe3}, "lavender on cream"},
    {"ocean",      {0x00, 0x6d, 0xb0}, {0xc9, 0xee, 0xf7}, "deep sea blue on surf"},
    {"sunset",     {0xe8, 0x55, 0x3a}, {0xff, 0xe0, 0xb8}, "coral on peach"},
    {"forest",     {0x2d, 0x6a, 0x4f}, {0xdc, 0xf0, 0xd8}, "pine on fern"},
    {"royal",      {0x4c, 0x23, 0xa6}, {0xfc, 0xd3, 0x4d}, "royal purple on gold"},
    {"slate",      {0x47, 0x55, 0x69}, {0xe2, 0xe8, 0xf0}, "slate on mist"},
    {"amber",      {0xc2, 0x6a, 0x05}, {0xfe, 0xf3, 0xc7}, "amber on butter"},
    {"night",      {0x8a, 0xb4, 0xf8}, {0x1b, 0x23, 0x36}, "sky blue on midnight (dark mode)"},
};

#define NSCHEMES (sizeof schemes / sizeof schemes[0])

static const char *const filter_names[FILTER_COUNT] = {
    [FILTER_NONE] = "none",
    [FILTER_GRAYSCALE] = "grayscale",
    [FILTER_SEPIA] = "sepia",
    [FILTER_NEGATIVE] = "negative",
};

static int hex_digit(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c |= 0x20; /* ASCII lower case */
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* "#rgb" or "#rrggbb": each digit of the short form stands for itself twice. */
static int parse_hex(const char *s, aq_rgb *out)
{
    size_t n = strlen(s + 1);
    if (n != 3 && n != 6)
        return -1;
    int d[6];
    for (size_t i = 0; i < n; i++)
        if ((d[i] = hex_digit((unsigned char)s[1 + i])) < 0)
            return -1;
    if (n == 3) {
        out->r = (uint8_t)(d[0] * 17);
        out->g = (uint8_t)(d[1] * 17);
        out->b = (uint8_t)(d[2] * 17);
    } else {
        out->r = (uint8_t)(d[0] * 16 + d[1]);
        out->g = (uint8_t)(d[2] * 16 + d[3]);
        out->b = (uint8_t)(d[4] * 16 + d[5]);
    }
    return 0;
}

static int cmp_name(const void *key, const void *elem)
{
    return strcasecmp(key, ((const named_color *)elem)->name);
}

int color_parse(const char *s, aq_rgb *out)
{
    if (!s || !*s)
        return -1;
    if (s[0] == '#')
        return parse_hex(s, out);
    const named_color *c = bsearch(s, css_colors, NCSS, sizeof css_colors[0], cmp_name);
    if (!c)
        return -1;
    *out = c->rgb;
    return 0;
}

void color_hex(aq_rgb c, char out[8])
{
    static const char hex[] = "0123456789abcdef";
    const uint8_t v[3] = {c.r, c.g, c.b};
    out[0] = '#';
    for (int i = 0; i < 3; i++) {
        out[1 + 2 * i] = hex[v[i] >> 4];
        out[2 + 2 * i] = hex[v[i] & 15];
    }
    out[7] = '\0';
}

const color_scheme *color_scheme_find(const char *name)
{
    if (!name)
        return NULL;
    for (size_t i = 0; i < NSCHEMES; i++)
        if (strcasecmp(name, schemes[i].name) == 0)
            return &schemes[i];
    return NULL;
}

const color_scheme *color_schemes(size_t *n)
{
    *n = NSCHEMES;
    return schemes;
}

int color_filter_find(const char *name)
{
    if (!name)
        return -1;
    for (int i = 0; i < FILTER_COUNT; i++)
        if (strcasecmp(name, filter_names[i]) == 0)
            return i;
    return -1;
}

const char *color_filter_name(aq_filter f)
{
    return (unsigned)f < FILTER_COUNT ? filter_names[f] : "?";
}

static uint8_t clamp255(int v) { return (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v); }

/* Weights in thousandths, rounded to nearest by the +500. */
static uint8_t weigh(aq_rgb c, int wr, int wg, int wb)
{
    return clamp255((wr * c.r + wg * c.g + wb * c.b + 500) / 1000);
}

static aq_rgb filter_none(aq_rgb c) { return c; }

static aq_rgb filter_grayscale(aq_rgb c)
{
    uint8_t y = weigh(c, 299, 587, 114);
    return (aq_rgb){y, y, y};
}

static aq_rgb filter_sepia(aq_rgb c)
{
    return (aq_rgb){weigh(c, 393, 769, 189), weigh(c, 349, 686, 168), weigh(c, 272, 534, 131)};
}

static aq_rgb filter_negative(aq_rgb c)
{
    return (aq_rgb){(uint8_t)(255 - c.r), (uint8_t)(255 - c.g), (uint8_t)(255 - c.b)};
}

static aq_rgb (*const filter_fns[FILTER_COUNT])(aq_rgb) = {
    [FILTER_NONE] = filter_none,
    [FILTER_GRAYSCALE] = filter_grayscale,
    [FILTER_SEPIA] = filter_sepia,
    [FILTER_NEGATIVE] = filter_negative,
};

aq_rgb color_filter_apply(aq_filter f, aq_rgb c)
{
    return (unsigned)f < FILTER_COUNT ? filter_fns[f](c) : c;
}

static uint8_t mix1(int a, int b, int t, int tmax)
{
    int d = (b - a) * t;
    /* round half away from zero so that mixing a into b mirrors b into a */
    int q = d >= 0 ? (d + tmax / 2) / tmax : -((-d + tmax / 2) / tmax);
    return (uint8_t)(a + q);
}

aq_rgb color_mix(aq_rgb a, aq_rgb b, int t, int tmax)
{
    return (aq_rgb){mix1(a.r, b.r, t, tmax), mix1(a.g, b.g, t, tmax), mix1(a.b, b.b, t, tmax)};
}

/* Which of chroma (C), second component (X) and 0 each channel takes in the
 * six 60-degree sectors of the hue circle. */
enum { HC, HX, H0 };
static const uint8_t hsl_sector[6][3] = {
    {HC, HX, H0}, {HX, HC, H0}, {H0, HC, HX}, {H0, HX, HC}, {HX, H0, HC}, {HC, H0, HX},
};

aq_rgb color_hsl(int hue, int sat, int light)
{
    int h = ((hue % 360) + 360) % 360;
    sat = sat < 0 ? 0 : sat > 100 ? 100 : sat;
    light = light < 0 ? 0 : light > 100 ? 100 : light;
    /* everything in thousandths */
    int c = (1000 - abs(20 * light - 1000)) * sat / 100;
    int x = c * (60 - abs(h % 120 - 60)) / 60;
    int m = 10 * light - c / 2;
    const int val[3] = {[HC] = c, [HX] = x, [H0] = 0};
    const uint8_t *sec = hsl_sector[h / 60];
    return (aq_rgb){clamp255(((val[sec[0]] + m) * 255 + 500) / 1000),
                    clamp255(((val[sec[1]] + m) * 255 + 500) / 1000),
                    clamp255(((val[sec[2]] + m) * 255 + 500) / 1000)};
}

void color_to_hsl(aq_rgb c, int *hue, int *sat, int *light)
{
    int r = c.r, g = c.g, b = c.b;
    int mx = r > g ? (r > b ? r : b) : (g > b ? g : b);
    int mn = r < g ? (r < b ? r : b) : (g < b ? g : b);
    int d = mx - mn, sum = mx + mn;
    *light = (sum * 100 + 255) / 510;
    if (d == 0) {
        *hue = *sat = 0;
        return;
    }
    int den = sum <= 255 ? sum : 510 - sum;
    *sat = (d * 100 + den / 2) / den;
    int h; /* in sixtieths of a degree over 60 degree sectors */
    if (mx == r)
        h = 60 * (g - b) / d;
    else if (mx == g)
        h = 120 + 60 * (b - r) / d;
    else
        h = 240 + 60 * (r - g) / d;
    *hue = (h % 360 + 360) % 360;
}
