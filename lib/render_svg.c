/* render_svg: the styles that are vector by nature, as SVG documents:
 * pixel (rectangles on a 12 x 12 grid: half-cell margins) and emoji (the
 * Twemoji artwork nested in a solid, linear or radial background). One
 * document serves every size: width and height are the requested size,
 * the viewBox scales the rest.
 *
 * Every number is an integer or a fixed-point decimal printed from
 * integers, so the text is the same on every machine. Colours are the
 * filtered ones (the same integer filter as the PNGs); the artwork's own
 * colours are filtered by an SVG colour matrix. Corner rounding is a clip
 * path, a transparent background simply no background. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "emoji.h"
#include "render_style.h"

typedef struct svg_out {
    buf *b;
    int failed;
} svg_out;

__attribute__((format(printf, 2, 3)))
static void put(svg_out *o, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (buf_vprintf(o->b, fmt, ap) < 0)
        o->failed = 1;
    va_end(ap);
}

static void hex_of(const render_params *p, aq_rgb c, char out[8])
{
    color_hex(color_filter_apply(p->filter, c), out);
}

/* Q14 -> "0.1234" style decimal with 4 places, from integers only. */
static void fixed4(int32_t q14, int scale, char *out, size_t n)
{
    int64_t v = (int64_t)q14 * scale * 10000 / 16384; /* value * 10^4 */
    const char *sign = v < 0 ? "-" : "";
    if (v < 0)
        v = -v;
    snprintf(out, n, "%s%lld.%04lld", sign, (long long)(v / 10000), (long long)(v % 10000));
}

/* <svg> with a clip path for the rounding; the caller closes with end(). */
static void begin(svg_out *o, const render_params *p, int size, int box)
{
    put(o, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\">",
        size, size, box, box);
    if (p->radius > 0) {
        /* the same radius as the PNG's: radius percent of the side */
        int r100 = box * p->radius; /* hundredths of a unit */
        put(o, "<clipPath id=\"aq-round\"><rect width=\"%d\" height=\"%d\" rx=\"%d.%02d\"/></clipPath>"
               "<g clip-path=\"url(#aq-round)\">", box, box, r100 / 100, r100 % 100);
    } else {
        put(o, "<g>");
    }
}

static void end(svg_out *o) { put(o, "</g></svg>"); }

static int svg_pixel(const render_params *p, int size, svg_out *o)
{
    char fg[8], bg[8];
    hex_of(p, p->primary, fg);
    hex_of(p, p->foreign, bg);
    begin(o, p, size, 12);
    if (p->background != RENDER_BG_TRANSPARENT)
        put(o, "<rect width=\"12\" height=\"12\" fill=\"%s\"/>", bg);
    uint32_t cells = render_pixel_cells(p);
    put(o, "<path fill=\"%s\" shape-rendering=\"crispEdges\" d=\"", fg);
    for (int row = 0; row < 5; row++)
        for (int col = 0; col < 5; col++) {
            int src = col < 3 ? col : 4 - col;
            if (cells >> (row * 3 + src) & 1)
                put(o, "M%d %dh2v2h-2z", 1 + 2 * col, 1 + 2 * row);
        }
    put(o, "\"/>");
    end(o);
    return 0;
}

static void emoji_background(svg_out *o, const render_params *p, render_bg bg, uint32_t phase)
{
    char from[8], to[8];
    hex_of(p, p->foreign, from);
    hex_of(p, p->primary, to);
    if (bg == RENDER_BG_TRANSPARENT)
        return;
    if (bg == RENDER_BG_SOLID) {
        put(o, "<rect width=\"100\" height=\"100\" fill=\"%s\"/>", from);
        return;
    }
    if (bg == RENDER_BG_LINEAR) {
        /* from the centre, half the projected extent each way along the angle */
        int32_t dx = render_sin(phase), dy = -render_cos(phase);
        int32_t half = ((dx < 0 ? -dx : dx) + (dy < 0 ? -dy : dy)) / 2; /* Q14, x 100 below */
        char x1[24], y1[24], x2[24], y2[24];
        fixed4(8192 - (int32_t)((int64_t)dx * half / 16384), 100, x1, sizeof x1);
        fixed4(8192 - (int32_t)((int64_t)dy * half / 16384), 100, y1, sizeof y1);
        fixed4(8192 + (int32_t)((int64_t)dx * half / 16384), 100, x2, sizeof x2);
        fixed4(8192 + (int32_t)((int64_t)dy * half / 16384), 100, y2, sizeof y2);
        put(o, "<linearGradient id=\"aq-bg\" gradientUnits=\"userSpaceOnUse\" x1=\"%s\" y1=\"%s\" "
               "x2=\"%s\" y2=\"%s\">", x1, y1, x2, y2);
    } else {
        /* corners at the far end: r = 50 * sqrt(2) */
        put(o, "<radialGradient id=\"aq-bg\" gradientUnits=\"userSpaceOnUse\" cx=\"50\" cy=\"50\" "
               "r=\"70.7107\">");
    }
    put(o, "<stop offset=\"0\" stop-color=\"%s\"/><stop offset=\"1\" stop-color=\"%s\"/>", from, to);
    put(o, bg == RENDER_BG_LINEAR ? "</linearGradient>" : "</radialGradient>");
    put(o, "<rect width=\"100\" height=\"100\" fill=\"url(#aq-bg)\"/>");
}

/* Colour matrices of the filters (the coefficients color.h names). */
static const char *const filter_matrix[FILTER_COUNT] = {
    [FILTER_GRAYSCALE] = "0.299 0.587 0.114 0 0 0.299 0.587 0.114 0 0 0.299 0.587 0.114 0 0 0 0 0 1 0",
    [FILTER_SEPIA] = "0.393 0.769 0.189 0 0 0.349 0.686 0.168 0 0 0.272 0.534 0.131 0 0 0 0 0 1 0",
    [FILTER_NEGATIVE] = "-1 0 0 0 1 0 -1 0 0 1 0 0 -1 0 1 0 0 0 1 0",
};

static int svg_emoji(const render_params *p, int size, svg_out *o)
{
    render_bg bg;
    int pct;
    uint32_t phase;
    const char *name;
    render_emoji_plan(p, &bg, &pct, &phase, &name);
    buf art = BUF_INIT;
    char why[256];
    if (emoji_svg(name, &art, why, sizeof why) != 0) {
        buf_free(&art);
        return render_fail("emoji: %s", why);
    }
    begin(o, p, size, 100);
    emoji_background(o, p, bg, phase);
    if (p->filter != FILTER_NONE && (unsigned)p->filter < FILTER_COUNT)
        put(o, "<filter id=\"aq-filter\" color-interpolation-filters=\"sRGB\"><feColorMatrix "
               "type=\"matrix\" values=\"%s\"/></filter><g filter=\"url(#aq-filter)\">",
            filter_matrix[p->filter]);
    else
        put(o, "<g>");
    /* the artwork's own <svg> element, placed: nested <svg> keeps its viewBox */
    const char *text = (const char *)art.data;
    size_t len = art.len;
    if (len < 5 || memcmp(text, "<svg ", 5) != 0) {
        buf_free(&art);
        return render_fail("emoji: artwork %s does not start with <svg", name);
    }
    int off = (100 - pct) / 2;
    put(o, "<svg x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" ", off, off, pct, pct);
    if (buf_append(o->b, text + 5, len - 5) < 0)
        o->failed = 1;
    put(o, "</g>");
    end(o);
    buf_free(&art);
    return 0;
}

typedef int (*svg_fn)(const render_params *p, int size, svg_out *o);

static const struct {
    const char *style;
    svg_fn fn;
} writers[] = {
    {"pixel", svg_pixel},
    {"emoji", svg_emoji},
};

int render_svg(const render_params *p, int size, buf *out)
{
    const char *style = render_style_name(p->style);
    if (!style || !render_style_has_svg(p->style))
        return render_fail("format: style %s has no svg form", style ? style : "?");
    if (!render_style_takes_background(p->style, p->background))
        return render_fail("background: style %s cannot draw %s", style, render_bg_name(p->background));
    svg_out o = {out, 0};
    for (size_t i = 0; i < sizeof writers / sizeof writers[0]; i++)
        if (strcmp(writers[i].style, style) == 0) {
            if (writers[i].fn(p, size, &o) != 0)
                return -1;
            if (o.failed)
                return render_fail("out of memory writing svg");
            return 0;
        }
    return render_fail("format: style %s has no svg writer", style);
}
