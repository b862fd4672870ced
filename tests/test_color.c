/* test_color: colour parsing (hex, every CSS name, bad input), schemes,
 * filters with their standard formulas, and the integer HSL conversions. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "color.h"
#include "support.h"

static int same(aq_rgb a, aq_rgb b) { return a.r == b.r && a.g == b.g && a.b == b.b; }

static const struct {
    const char *in;
    aq_rgb want;
} good[] = {
    {"#000", {0, 0, 0}},
    {"#fff", {255, 255, 255}},
    {"#F0a", {0xff, 0x00, 0xaa}},
    {"#123456", {0x12, 0x34, 0x56}},
    {"#ABCDEF", {0xab, 0xcd, 0xef}},
    {"red", {255, 0, 0}},
    {"RED", {255, 0, 0}},
    {"RebeccaPurple", {0x66, 0x33, 0x99}},
    {"aliceblue", {0xf0, 0xf8, 0xff}},
    {"yellowgreen", {0x9a, 0xcd, 0x32}},
    {"grey", {0x80, 0x80, 0x80}},
    {"gray", {0x80, 0x80, 0x80}},
    {"lightgoldenrodyellow", {0xfa, 0xfa, 0xd2}},
};

START_TEST(parse_good)
{
    aq_rgb c;
    ck_assert_msg(color_parse(good[_i].in, &c) == 0, "%s rejected", good[_i].in);
    ck_assert_msg(same(c, good[_i].want), "%s -> %d,%d,%d", good[_i].in, c.r, c.g, c.b);
}
END_TEST

static const char *const bad[] = {
    "", "#", "#ff", "#ffff", "#fffff", "#fffffff", "#ggg", "#12345g", "fff", "123456",
    "redd", "re d", " red", "red ", "transparent", "currentColor", "rgb(1,2,3)", "#-12",
    "#+12", "#0x1", "reallyreallyreallylongcolourname",
};

START_TEST(parse_bad)
{
    aq_rgb c = {1, 2, 3};
    ck_assert_msg(color_parse(bad[_i], &c) == -1, "'%s' accepted", bad[_i]);
    ck_assert_msg(c.r == 1 && c.g == 2 && c.b == 3, "'%s' wrote output", bad[_i]);
}
END_TEST

START_TEST(parse_null)
{
    aq_rgb c;
    ck_assert_int_eq(color_parse(NULL, &c), -1);
}
END_TEST

/* Every CSS name (the 148 of CSS Color 4) parses, in any case. */
static const char *const css_names[] = {
    "aliceblue", "antiquewhite", "aqua", "aquamarine", "azure", "beige", "bisque", "black",
    "blanchedalmond", "blue", "blueviolet", "brown", "burlywood", "cadetblue", "chartreuse",
    "chocolate", "coral", "cornflowerblue", "cornsilk", "crimson", "cyan", "darkblue",
    "darkcyan", "darkgoldenrod", "darkgray", "darkgreen", "darkgrey", "darkkhaki",
    "darkmagenta", "darkolivegreen", "darkorange", "darkorchid", "darkred", "darksalmon",
    "darkseagreen", "darkslateblue", "darkslategray", "darkslategrey", "darkturquoise",
    "darkviolet", "deeppink", "deepskyblue", "dimgray", "dimgrey", "dodgerblue", "firebrick",
    "floralwhite", "forestgreen", "fuchsia", "gainsboro", "ghostwhite", "gold", "goldenrod",
    "gray", "green", "greenyellow", "grey", "honeydew", "hotpink", "indianred", "indigo",
    "ivory", "khaki", "lavender", "lavenderblush", "lawngreen", "lemonchiffon", "lightblue",
    "lightcoral", "lightcyan", "lightgoldenrodyellow", "lightgray", "lightgreen", "lightgrey",
    "lightpink", "lightsalmon", "lightseagreen", "lightskyblue", "lightslategray",
    "lightslategrey", "lightsteelblue", "lightyellow", "lime", "limegreen", "linen",
    "magenta", "maroon", "mediumaquamarine", "mediumblue", "mediumorchid", "mediumpurple",
    "mediumseagreen", "mediumslateblue", "mediumspringgreen", "mediumturquoise",
    "mediumvioletred", "midnightblue", "mintcream", "mistyrose", "moccasin", "navajowhite",
    "navy", "oldlace", "olive", "olivedrab", "orange", "orangered", "orchid", "palegoldenrod",
    "palegreen", "paleturquoise", "palevioletred", "papayawhip", "peachpuff", "peru", "pink",
    "plum", "powderblue", "purple", "rebeccapurple", "red", "rosybrown", "royalblue",
    "saddlebrown", "salmon", "sandybrown", "seagreen", "seashell", "sienna", "silver",
    "skyblue", "slateblue", "slategray", "slategrey", "snow", "springgreen", "steelblue",
    "tan", "teal", "thistle", "tomato", "turquoise", "violet", "wheat", "white", "whitesmoke",
    "yellow", "yellowgreen",
};

START_TEST(every_css_name)
{
    ck_assert_int_eq(sizeof css_names / sizeof css_names[0], 148);
    for (size_t i = 0; i < 148; i++) {
        aq_rgb lower, upper;
        char up[64];
        size_t n = strlen(css_names[i]);
        for (size_t k = 0; k <= n; k++)
            up[k] = (char)(css_names[i][k] >= 'a' && css_names[i][k] <= 'z'
                               ? css_names[i][k] - 32 : css_names[i][k]);
        ck_assert_msg(color_parse(css_names[i], &lower) == 0, "%s", css_names[i]);
        ck_assert_msg(color_parse(up, &upper) == 0, "%s", up);
        ck_assert(same(lower, upper));
    }
}
END_TEST

START_TEST(hex_format)
{
    char out[8];
    color_hex((aq_rgb){0x0a, 0xbc, 0xff}, out);
    ck_assert_str_eq(out, "#0abcff");
    aq_rgb back;
    ck_assert_int_eq(color_parse(out, &back), 0);
    ck_assert(same(back, (aq_rgb){0x0a, 0xbc, 0xff}));
}
END_TEST

static const char *const protocol_schemes[] = {
    "green", "blue", "red", "orange", "purple", "teal", "indigo", "pink", "emerald",
    "default", "monochrome", "vibrant", "pastel", "ocean", "sunset", "forest", "royal",
};

START_TEST(schemes_of_protocol)
{
    size_t n;
    const color_scheme *all = color_schemes(&n);
    ck_assert_uint_ge(n, 17);
    for (size_t i = 0; i < 17; i++) {
        const color_scheme *s = color_scheme_find(protocol_schemes[i]);
        ck_assert_msg(s != NULL, "scheme %s missing", protocol_schemes[i]);
        ck_assert_str_eq(s->name, protocol_schemes[i]);
        ck_assert_msg(!same(s->primary, s->foreign), "%s: one colour twice", s->name);
        ck_assert(s->about && *s->about);
    }
    /* names are unique and each is found by name, in any case */
    for (size_t i = 0; i < n; i++) {
        ck_assert_ptr_eq(color_scheme_find(all[i].name), &all[i]);
        for (size_t k = i + 1; k < n; k++)
            ck_assert_str_ne(all[i].name, all[k].name);
    }
    ck_assert_ptr_eq(color_scheme_find("OCEAN"), color_scheme_find("ocean"));
    ck_assert_ptr_null(color_scheme_find("nosuch"));
    ck_assert_ptr_null(color_scheme_find(""));
    ck_assert_ptr_null(color_scheme_find(NULL));
}
END_TEST

START_TEST(filter_names)
{
    ck_assert_int_eq(color_filter_find("none"), FILTER_NONE);
    ck_assert_int_eq(color_filter_find("grayscale"), FILTER_GRAYSCALE);
    ck_assert_int_eq(color_filter_find("Sepia"), FILTER_SEPIA);
    ck_assert_int_eq(color_filter_find("negative"), FILTER_NEGATIVE);
    ck_assert_int_eq(color_filter_find("greyscale"), -1);
    ck_assert_int_eq(color_filter_find(""), -1);
    ck_assert_int_eq(color_filter_find(NULL), -1);
    for (int f = 0; f < FILTER_COUNT; f++)
        ck_assert_int_eq(color_filter_find(color_filter_name((aq_filter)f)), f);
}
END_TEST

/* Known values worked out by hand from the formulas in color.h. */
static const struct {
    aq_filter f;
    aq_rgb in, want;
} filters[] = {
    {FILTER_NONE, {12, 34, 56}, {12, 34, 56}},
    /* 0.299*255 = 76.245 -> 76; 0.587*255 = 149.685 -> 150; 0.114*255 = 29.07 -> 29 */
    {FILTER_GRAYSCALE, {255, 0, 0}, {76, 76, 76}},
    {FILTER_GRAYSCALE, {0, 255, 0}, {150, 150, 150}},
    {FILTER_GRAYSCALE, {0, 0, 255}, {29, 29, 29}},
    {FILTER_GRAYSCALE, {255, 255, 255}, {255, 255, 255}},
    /* .299*100 + .587*150 + .114*200 = 29.9 + 88.05 + 22.8 = 140.75 -> 141 */
    {FILTER_GRAYSCALE, {100, 150, 200}, {141, 141, 141}},
    /* sepia of (100,150,200): r = 39.3+115.35+37.8 = 192.45 -> 192;
     * g = 34.9+102.9+33.6 = 171.4 -> 171; b = 27.2+80.1+26.2 = 133.5 -> 134 */
    {FILTER_SEPIA, {100, 150, 200}, {192, 171, 134}},
    /* white saturates: 1.351*255, 1.203*255 clamp; 0.937*255 = 238.935 -> 239 */
    {FILTER_SEPIA, {255, 255, 255}, {255, 255, 239}},
    {FILTER_SEPIA, {0, 0, 0}, {0, 0, 0}},
    {FILTER_NEGATIVE, {0, 100, 255}, {255, 155, 0}},
    {FILTER_NEGATIVE, {18, 52, 86}, {237, 203, 169}},
};

START_TEST(filter_maths)
{
    aq_rgb got = color_filter_apply(filters[_i].f, filters[_i].in);
    ck_assert_msg(same(got, filters[_i].want), "%s(%d,%d,%d) = %d,%d,%d, want %d,%d,%d",
                  color_filter_name(filters[_i].f), filters[_i].in.r, filters[_i].in.g,
                  filters[_i].in.b, got.r, got.g, got.b, filters[_i].want.r,
                  filters[_i].want.g, filters[_i].want.b);
}
END_TEST

START_TEST(negative_is_an_involution)
{
    for (int v = 0; v < 256; v += 5) {
        aq_rgb c = {(uint8_t)v, (uint8_t)(255 - v), (uint8_t)(v / 2)};
        aq_rgb twice = color_filter_apply(FILTER_NEGATIVE, color_filter_apply(FILTER_NEGATIVE, c));
        ck_assert(same(twice, c));
    }
}
END_TEST

START_TEST(hsl_known)
{
    ck_assert(same(color_hsl(0, 100, 50), (aq_rgb){255, 0, 0}));
    ck_assert(same(color_hsl(120, 100, 50), (aq_rgb){0, 255, 0}));
    ck_assert(same(color_hsl(240, 100, 50), (aq_rgb){0, 0, 255}));
    ck_assert(same(color_hsl(240, 100, 25), (aq_rgb){0, 0, 128}));
    ck_assert(same(color_hsl(60, 100, 50), (aq_rgb){255, 255, 0}));
    ck_assert(same(color_hsl(0, 0, 100), (aq_rgb){255, 255, 255}));
    ck_assert(same(color_hsl(0, 0, 0), (aq_rgb){0, 0, 0}));
    ck_assert(same(color_hsl(360 + 120, 100, 50), color_hsl(120, 100, 50)));
    ck_assert(same(color_hsl(-240, 100, 50), color_hsl(120, 100, 50)));
}
END_TEST

START_TEST(hsl_round_trip)
{
    for (int h = 0; h < 360; h += 7)
        for (int s = 20; s <= 100; s += 20)
            for (int l = 20; l <= 80; l += 15) {
                int h2, s2, l2;
                color_to_hsl(color_hsl(h, s, l), &h2, &s2, &l2);
                int dh = abs(h - h2);
                if (dh > 180)
                    dh = 360 - dh;
                ck_assert_msg(dh <= 2 && abs(s - s2) <= 2 && abs(l - l2) <= 1,
                              "hsl(%d,%d,%d) came back as (%d,%d,%d)", h, s, l, h2, s2, l2);
            }
}
END_TEST

START_TEST(mix_ends_and_middle)
{
    aq_rgb a = {0, 100, 255}, b = {255, 0, 55};
    ck_assert(same(color_mix(a, b, 0, 10), a));
    ck_assert(same(color_mix(a, b, 10, 10), b));
    ck_assert(same(color_mix(a, b, 1, 2), (aq_rgb){128, 50, 155}));
    /* symmetric rounding: a->b at t equals b->a at tmax - t */
    for (int t = 0; t <= 15; t++)
        ck_assert(same(color_mix(a, b, t, 15), color_mix(b, a, 15 - t, 15)));
}
END_TEST

int main(void)
{
    Suite *s = suite_create("color");
    TCase *tc = tcase_create("color");
    tcase_add_loop_test(tc, parse_good, 0, sizeof good / sizeof good[0]);
    tcase_add_loop_test(tc, parse_bad, 0, sizeof bad / sizeof bad[0]);
    tcase_add_test(tc, parse_null);
    tcase_add_test(tc, every_css_name);
    tcase_add_test(tc, hex_format);
    tcase_add_test(tc, schemes_of_protocol);
    tcase_add_test(tc, filter_names);
    tcase_add_loop_test(tc, filter_maths, 0, sizeof filters / sizeof filters[0]);
    tcase_add_test(tc, negative_is_an_involution);
    tcase_add_test(tc, hsl_known);
    tcase_add_test(tc, hsl_round_trip);
    tcase_add_test(tc, mix_ends_and_middle);
    suite_add_tcase(s, tc);
    return sup_run_suite(s);
}
