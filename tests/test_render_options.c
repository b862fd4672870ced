/* test_render_options: issue 15 - the emoji and initials styles and the
 * options every style takes (background, radius, format). Each picture is
 * decoded again (libpng, libwebp - the library dwebp is built on - and
 * librsvg for SVG, plus the real dwebp and rsvg-convert programs on files
 * the CLI wrote) and checked on its pixels; goldens pin a handful. */
#include <check.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <signal.h>

#include "avatar.h"
#include "emoji.h"
#include "hash.h"
#include "initials.h"
#include "job.h"
#include "meta.h"
#include "pngenc.h"
#include "quantize.h"
#include "render.h"
#include "storage.h"
#include "support.h"
#include "webpenc.h"

/* ---- helpers ---- */

static job_limits lim;

static void limits_init(void)
{
    memset(&lim, 0, sizeof lim);
    lim.max_size = 1024;
    lim.default_sizes[0] = 64;
    lim.n_default_sizes = 1;
    lim.default_style = render_style_find("pixel");
}

/* The artwork tests/deps.sh installs in the source tree, unless the
 * environment names another (an installed copy). */
static void emoji_dir_for_tests(void)
{
    char *dir = realpath("data/emoji/node_modules/@twemoji/svg", NULL);
    if (dir)
        setenv("AQ_EMOJI_DIR", dir, 0);
    free(dir);
}

static void parse_ok(const char *doc, job_request *r)
{
    aq_err e = {0};
    int rc = job_parse(doc, strlen(doc), &lim, r, &e);
    ck_assert_msg(rc == 0, "%s: %s", doc, e.msg);
}

/* Renders the first size of doc in its format into out. */
static void make(const char *doc, buf *out)
{
    static job_request r;
    parse_ok(doc, &r);
    avatar_ctx ctx;
    avatar_init(&ctx, NULL, NULL, "", "test");
    aq_err e = {0};
    int rc = avatar_png(&ctx, &r, r.sizes[0], &e);
    ck_assert_msg(rc == 0, "%s: %s", doc, e.msg);
    buf_reset(out);
    buf_append(out, ctx.png.data, ctx.png.len);
    avatar_free(&ctx);
}

typedef struct picture {
    uint8_t *rgba;
    int w, h;
} picture;

/* An SVG drawn by librsvg (loaded as the renderer loads it) at size x size,
 * its premultiplied RGBA turned into plain RGBA; the document must declare
 * that size. rsvg-convert, a separate program, checks files in the CLI
 * test below. */
static picture svg_decode(const buf *svg, int size)
{
    char want[64];
    snprintf(want, sizeof want, "width=\"%d\" height=\"%d\"", size, size);
    ck_assert_msg(memmem(svg->data, svg->len, want, strlen(want)) != NULL, "svg: no %s", want);
    uint8_t *pm;
    char why[256];
    ck_assert_msg(emoji_svg_draw(svg->data, svg->len, size, &pm, why, sizeof why) == 0, "svg: %s", why);
    picture p = {pm, size, size};
    for (int i = 0; i < size * size; i++) {
        uint8_t *o = pm + (size_t)i * 4;
        unsigned a = o[3];
        for (int c = 0; c < 3; c++)
            o[c] = (uint8_t)(a ? (o[c] * 255 + a / 2) / a : 0);
    }
    return p;
}

static picture decode(job_format f, const buf *data, int size)
{
    picture p = {NULL, 0, 0};
    aq_err e = {0};
    if (f == JOB_FORMAT_SVG)
        return svg_decode(data, size);
    int rc = f == JOB_FORMAT_WEBP ? webpenc_decode(data->data, data->len, &p.rgba, &p.w, &p.h, &e)
                                  : pngenc_decode(data->data, data->len, &p.rgba, &p.w, &p.h, &e);
    ck_assert_msg(rc == 0, "decode: %s", e.msg);
    ck_assert_int_eq(p.w, size);
    ck_assert_int_eq(p.h, size);
    return p;
}

static const uint8_t *at(const picture *p, int x, int y)
{
    return p->rgba + ((size_t)y * p->w + x) * 4;
}

/* Pixels of the centre half that differ from the top-left pixel by more
 * than a little: ink on the background. */
static int centre_ink(const picture *p)
{
    const uint8_t *bg = at(p, 0, 0);
    int n = 0;
    for (int y = p->h / 4; y < 3 * p->h / 4; y++)
        for (int x = p->w / 4; x < 3 * p->w / 4; x++) {
            const uint8_t *q = at(p, x, y);
            int d = abs(q[0] - bg[0]) + abs(q[1] - bg[1]) + abs(q[2] - bg[2]) + abs(q[3] - bg[3]);
            n += d > 48;
        }
    return n;
}

/* ---- every style x background x format ---- */

static const char *const backgrounds[] = {NULL, "solid", "linear", "radial", "transparent"};
static const char *const formats[] = {"png", "webp", "svg"};

static void doc_of(char *doc, size_t n, const char *seed, int style, const char *bg,
                   const char *fmt, int size, int radius)
{
    int o = snprintf(doc, n, "{\"seed\":\"%s\",\"style\":\"%s\",\"sizes\":[%d],\"format\":\"%s\"",
                     seed, render_style_name(style), size, fmt);
    if (bg)
        o += snprintf(doc + o, n - (size_t)o, ",\"background\":\"%s\"", bg);
    if (radius)
        o += snprintf(doc + o, n - (size_t)o, ",\"radius\":%d", radius);
    snprintf(doc + o, n - (size_t)o, "}");
}

START_TEST(every_combination)
{
    buf a = BUF_INIT, b = BUF_INIT;
    int made = 0, refused = 0;
    for (int s = 0; s < render_style_count(); s++)
        for (size_t bi = 0; bi < sizeof backgrounds / sizeof *backgrounds; bi++)
            for (int f = 0; f < JOB_FORMAT_COUNT; f++) {
                char doc[256];
                doc_of(doc, sizeof doc, "combo", s, backgrounds[bi], formats[f], 48, 0);
                render_bg bg = backgrounds[bi] ? (render_bg)render_bg_find(backgrounds[bi]) : RENDER_BG_AUTO;
                bool ok = render_style_takes_background(s, bg) &&
                          (f != JOB_FORMAT_SVG || render_style_has_svg(s));
                static job_request r;
                aq_err e = {0};
                int rc = job_parse(doc, strlen(doc), &lim, &r, &e);
                if (!ok) {
                    /* refused up front, naming the field that does not fit */
                    ck_assert_msg(rc == AQ_EPERM, "%s accepted", doc);
                    ck_assert_msg(strncmp(e.msg, "background: ", 12) == 0 || strncmp(e.msg, "format: ", 8) == 0,
                                  "%s: %s", doc, e.msg);
                    refused++;
                    continue;
                }
                make(doc, &a);
                make(doc, &b);
                ck_assert_msg(a.len == b.len && memcmp(a.data, b.data, a.len) == 0, "%s not deterministic", doc);
                picture p = decode((job_format)f, &a, 48);
                bool clear = bg == RENDER_BG_TRANSPARENT;
                int transparent = 0;
                for (int i = 0; i < 48 * 48; i++)
                    transparent += p.rgba[i * 4 + 3] == 0;
                if (clear)
                    ck_assert_msg(transparent > 48 * 48 / 10, "%s: %d transparent pixels", doc, transparent);
                else
                    ck_assert_msg(transparent == 0, "%s: %d transparent pixels", doc, transparent);
                ck_assert_msg(centre_ink(&p) > 0 || strcmp(render_style_name(s), "gradient") == 0,
                              "%s: nothing drawn in the centre", doc);
                free(p.rgba);
                made++;
            }
    /* 6 styles x 5 backgrounds x 3 formats, and both kinds happen */
    ck_assert_int_eq(made + refused, render_style_count() * 5 * 3);
    ck_assert_int_gt(made, 30);
    ck_assert_int_gt(refused, 20);
    buf_free(&a);
    buf_free(&b);
}
END_TEST

/* PNG and WebP of one request decode to the same pixels (both lossless). */
START_TEST(webp_is_lossless)
{
    buf png = BUF_INIT, webp = BUF_INIT;
    for (int s = 0; s < render_style_count(); s++) {
        char d1[256], d2[256];
        doc_of(d1, sizeof d1, "same-pixels", s, NULL, "png", 64, 20);
        doc_of(d2, sizeof d2, "same-pixels", s, NULL, "webp", 64, 20);
        make(d1, &png);
        make(d2, &webp);
        picture a = decode(JOB_FORMAT_PNG, &png, 64), b = decode(JOB_FORMAT_WEBP, &webp, 64);
        for (int i = 0; i < 64 * 64; i++) {
            /* colour under alpha 0 is free in WebP (invisible) */
            if (a.rgba[i * 4 + 3] == 0) {
                ck_assert_int_eq(b.rgba[i * 4 + 3], 0);
                continue;
            }
            ck_assert_msg(memcmp(a.rgba + i * 4, b.rgba + i * 4, 4) == 0, "%s: pixel %d differs",
                          render_style_name(s), i);
        }
        free(a.rgba);
        free(b.rgba);
    }
    buf_free(&png);
    buf_free(&webp);
}
END_TEST

/* A WebP is never larger than the PNG of the same picture. */
START_TEST(webp_not_larger)
{
    buf png = BUF_INIT, webp = BUF_INIT;
    static const int sizes[] = {64, 256};
    for (int s = 0; s < render_style_count(); s++)
        for (int z = 0; z < 2; z++)
            for (int k = 0; k < 8; k++) {
                char seed[32], d1[256], d2[256];
                snprintf(seed, sizeof seed, "user-%d", k);
                doc_of(d1, sizeof d1, seed, s, NULL, "png", sizes[z], 0);
                doc_of(d2, sizeof d2, seed, s, NULL, "webp", sizes[z], 0);
                make(d1, &png);
                make(d2, &webp);
                ck_assert_msg(webp.len <= png.len, "%s: webp %zu > png %zu", d2, webp.len, png.len);
            }
    buf_free(&png);
    buf_free(&webp);
}
END_TEST

/* ---- rounding ---- */

START_TEST(round_corners_transparent)
{
    buf out = BUF_INIT;
    for (int s = 0; s < render_style_count(); s++)
        for (int f = 0; f < 2; f++) {
            char doc[256];
            doc_of(doc, sizeof doc, "round", s, NULL, formats[f], 64, 50);
            make(doc, &out);
            picture p = decode((job_format)f, &out, 64);
            /* the corners are gone, the middle is whole, the circle's edge is
             * anti-aliased, and the rounding is symmetric */
            static const int corners[4][2] = {{0, 0}, {63, 0}, {0, 63}, {63, 63}};
            for (int k = 0; k < 4; k++)
                ck_assert_msg(at(&p, corners[k][0], corners[k][1])[3] == 0, "%s: corner %d", doc, k);
            ck_assert_int_eq(at(&p, 32, 32)[3], 255);
            ck_assert_int_eq(at(&p, 32, 0)[3], 255);
            int partial = 0;
            for (int y = 0; y < 64; y++)
                for (int x = 0; x < 64; x++) {
                    int a = at(&p, x, y)[3];
                    partial += a > 0 && a < 255;
                    ck_assert_int_eq(a, at(&p, 63 - x, y)[3]);
                    ck_assert_int_eq(a, at(&p, x, 63 - y)[3]);
                }
            ck_assert_msg(partial >= 40, "%s: only %d edge pixels anti-aliased", doc, partial);
            free(p.rgba);
        }
    buf_free(&out);
}
END_TEST

/* A rounded identicon stays a small palette PNG (colour type 3). */
START_TEST(round_keeps_palette)
{
    buf out = BUF_INIT;
    make("{\"seed\":\"pal\",\"style\":\"pixel\",\"sizes\":[256],\"radius\":25,\"background\":\"transparent\"}", &out);
    ck_assert_int_eq(out.data[25], 3);     /* IHDR colour type: palette */
    ck_assert_int_eq(out.data[24], 8);     /* bit depth */
    ck_assert_uint_lt(out.len, 4000);
    /* an emoji on one colour: the artwork's quantized entries, a palette PNG */
    make("{\"seed\":\"pal\",\"style\":\"emoji\",\"background\":\"solid\",\"sizes\":[256]}", &out);
    ck_assert_int_eq(out.data[25], 3);
    buf_free(&out);
}
END_TEST

/* ---- emoji ---- */

static const struct {
    const char *text, *name; /* name NULL: refused */
} emoji_cases[] = {
    {"\xf0\x9f\x98\x80", "1f600"},                                          /* grinning face */
    {"\xf0\x9f\x87\xba\xf0\x9f\x87\xb8", "1f1fa-1f1f8"},                    /* flag US */
    {"#\xef\xb8\x8f\xe2\x83\xa3", "23-20e3"},                               /* keycap # with FE0F */
    {"#\xe2\x83\xa3", "23-20e3"},                                           /* and without */
    {"\xf0\x9f\x91\x8d\xf0\x9f\x8f\xbd", "1f44d-1f3fd"},                    /* thumbs up, skin tone */
    {"\xf0\x9f\x91\xa9\xe2\x80\x8d\xf0\x9f\x92\xbb", "1f469-200d-1f4bb"},   /* ZWJ: woman technologist */
    {"\xe2\x9d\xa4\xef\xb8\x8f", "2764"},                                   /* heart with FE0F */
    {"\xe2\x9d\xa4", "2764"},                                               /* heart without */
    {"\xe2\x9d\xa4\xef\xb8\x8f\xe2\x80\x8d\xf0\x9f\x94\xa5", "2764-fe0f-200d-1f525"}, /* heart on fire */
    {"\xf0\x9f\x98\x80\xf0\x9f\x98\x80", NULL},                             /* two emoji */
    {"A", NULL},                                                            /* a letter */
    {"", NULL},
    {"\xf0\x9f\x87\xba", "1f1fa"},                                          /* a lone regional indicator has artwork */
    {"\xf0\x9f\x98\x80 ", NULL},                                            /* trailing space */
    {"\xff\xfe", NULL},                                                     /* not UTF-8 */
};

START_TEST(emoji_text_to_names)
{
    for (size_t i = 0; i < sizeof emoji_cases / sizeof *emoji_cases; i++) {
        char name[RENDER_EMOJI_MAX], why[200];
        int rc = emoji_name_of(emoji_cases[i].text, strlen(emoji_cases[i].text), name, sizeof name, why, sizeof why);
        if (emoji_cases[i].name) {
            ck_assert_msg(rc == 0, "case %zu: %s", i, why);
            ck_assert_str_eq(name, emoji_cases[i].name);
        } else {
            ck_assert_msg(rc == -1, "case %zu accepted as %s", i, name);
        }
    }
    ck_assert(emoji_known("1f600"));
    ck_assert(!emoji_known("1f600-1f600"));
    ck_assert_int_gt(emoji_names_count, 3000);
}
END_TEST

/* Two spellings of one emoji are one request: one id. */
START_TEST(emoji_spellings_share_an_id)
{
    static job_request a, b;
    parse_ok("{\"seed\":\"x\",\"style\":\"emoji\",\"emoji\":\"\xe2\x9d\xa4\xef\xb8\x8f\"}", &a);
    parse_ok("{\"seed\":\"x\",\"style\":\"emoji\",\"emoji\":\"\xe2\x9d\xa4\"}", &b);
    ck_assert_str_eq(a.id, b.id);
    ck_assert_str_eq(a.render.emoji, "2764");
    /* and requests without the new options keep their old ids */
    parse_ok("{\"seed\":\"alice\"}", &a);
    parse_ok("{\"seed\":\"alice\",\"radius\":0,\"format\":\"png\"}", &b);
    ck_assert_str_eq(a.id, b.id);
}
END_TEST

/* Crisp at 512 px: the artwork is drawn at the size asked for, so its edges
 * are about one pixel wide. Scaling up a 136 px bitmap (Noto's CBDT strike)
 * would make them about four pixels wide; the count of partly covered
 * pixels against the count of covered ones tells the two apart. */
START_TEST(emoji_crisp_at_512)
{
    buf out = BUF_INIT;
    make("{\"seed\":\"crisp\",\"style\":\"emoji\",\"emoji\":\"\xf0\x9f\xa6\x8a\",\"background\":\"transparent\","
         "\"emoji_size\":\"large\",\"sizes\":[512]}", &out);
    picture p = decode(JOB_FORMAT_PNG, &out, 512);
    int partial = 0, covered = 0;
    for (int i = 0; i < 512 * 512; i++) {
        int a = p.rgba[i * 4 + 3];
        partial += a > 0 && a < 255;
        covered += a > 0;
    }
    ck_assert_int_gt(covered, 512 * 512 / 5);
    ck_assert_msg(partial * 100 < covered * 3, "%d partial of %d covered: blurry edges", partial, covered);
    free(p.rgba);
    buf_free(&out);
}
END_TEST

/* The emoji sizes are 40, 60 and 80 % of the avatar: the ink's width. */
START_TEST(emoji_sizes)
{
    static const struct { const char *name; int pct; } sizes[] = {{"small", 40}, {"medium", 60}, {"large", 80}};
    buf out = BUF_INIT;
    for (size_t i = 0; i < 3; i++) {
        char doc[256];
        /* a full circle emoji (U+1F535 large blue circle) spans its artwork box */
        snprintf(doc, sizeof doc, "{\"seed\":\"sz\",\"style\":\"emoji\",\"emoji\":\"\xf0\x9f\x94\xb5\","
                 "\"background\":\"transparent\",\"emoji_size\":\"%s\",\"sizes\":[200]}", sizes[i].name);
        make(doc, &out);
        picture p = decode(JOB_FORMAT_PNG, &out, 200);
        int x0 = 200, x1 = -1;
        for (int x = 0; x < 200; x++)
            if (at(&p, x, 100)[3] > 128)
                x0 = x < x0 ? x : x0, x1 = x;
        int width = x1 - x0 + 1, want = 200 * sizes[i].pct / 100;
        /* the artwork's circle leaves a small margin in its 36-unit box */
        ck_assert_msg(width <= want && width >= want * 85 / 100, "%s: ink %d px, box %d", sizes[i].name, width, want);
        ck_assert_int_lt(abs((x0 + x1) / 2 - 100), 2);
        free(p.rgba);
    }
    buf_free(&out);
}
END_TEST

/* ---- initials ---- */

static const struct {
    const char *name, *letters;
} names[] = {
    {"\xd0\x98\xd0\xb2\xd0\xb0\xd0\xbd \xd0\x9f\xd0\xb5\xd1\x82\xd1\x80\xd0\xbe\xd0\xb2", "\xd0\x98\xd0\x9f"}, /* Иван Петров -> ИП */
    {"\xe6\x9d\x8e\xe5\xb0\x8f\xe9\xbe\x99", "\xe6\x9d\x8e"},                                                   /* 李小龙 -> 李 */
    {"\xd9\x85\xd8\xad\xd9\x85\xd8\xaf \xd8\xb9\xd9\x84\xd9\x8a", "\xd9\x85\xd8\xb9"},                           /* محمد علي -> مع */
    {"Zo\xc3\xab \xc3\x85ngstr\xc3\xb6m", "Z\xc3\x85"},                                                         /* Zoë Ångström -> ZÅ */
    {"\xce\xa9", "\xce\xa9"},                                                                                   /* Ω */
    {"jane.doe@example.com", "JD"},
    {"zo\xc3\xab", "Z"},
    {"\xc3\xa5sa \xc3\xb6" "berg", "\xc3\x85\xc3\x96"},                                                            /* åsa öberg -> ÅÖ */
    {"\xcf\x89\xce\xbc\xce\xad\xce\xb3\xce\xb1", "\xce\xa9"},                                                   /* ωμέγα -> Ω */
    {"e\xcc\x81mile zola", "E\xcc\x81Z"},                                                                       /* decomposed É keeps its accent */
};

/* The emoji raster cache is one per process (a worker's job threads share
 * it): four threads drawing the same and different emoji at once get the
 * bytes one thread alone gets. */
typedef struct emoji_run {
    int first;
    uint8_t sums[24][32];
    int failed;
} emoji_run;

static void *emoji_thread(void *arg)
{
    emoji_run *run = arg;
    job_request r;
    avatar_ctx ctx;
    avatar_init(&ctx, NULL, NULL, "", "test");
    for (int i = 0; i < 24; i++) {
        char doc[160];
        snprintf(doc, sizeof doc, "{\"seed\":\"shared-%d\",\"style\":\"emoji\",\"sizes\":[%d]}",
                 (run->first + i) % 24, 64 + 32 * ((run->first + i) % 3));
        aq_err e = {0};
        memset(&r, 0, sizeof r);
        if (job_parse(doc, strlen(doc), &lim, &r, &e) != 0 ||
            avatar_png(&ctx, &r, r.sizes[0], &e) != 0) {
            run->failed++;
            continue;
        }
        hash_sha256(ctx.png.data, ctx.png.len, run->sums[(run->first + i) % 24]);
    }
    avatar_free(&ctx);
    pngenc_release();
    return NULL;
}

START_TEST(emoji_cache_shared_by_threads)
{
    emoji_release();
    emoji_run alone = {0}, runs[4];
    emoji_thread(&alone);
    ck_assert_int_eq(alone.failed, 0);
    emoji_release();
    pthread_t th[4];
    for (int t = 0; t < 4; t++) {
        runs[t] = (emoji_run){.first = 6 * t};
        ck_assert_int_eq(pthread_create(&th[t], NULL, emoji_thread, &runs[t]), 0);
    }
    for (int t = 0; t < 4; t++)
        pthread_join(th[t], NULL);
    for (int t = 0; t < 4; t++) {
        ck_assert_int_eq(runs[t].failed, 0);
        ck_assert_mem_eq(runs[t].sums, alone.sums, sizeof alone.sums);
    }
}
END_TEST

START_TEST(initials_letters)
{
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        char out[64];
        ck_assert_int_gt(initials_of(names[i].name, strlen(names[i].name), out, sizeof out), 0);
        ck_assert_str_eq(out, names[i].letters);
    }
    char out[64];
    static const char *const invisible[] = {"", "   ", "\xe2\x80\x8b\xe2\x80\x8b", "\xef\xbb\xbf", "..-_", "@x.com"};
    for (size_t i = 0; i < sizeof invisible / sizeof *invisible; i++)
        ck_assert_int_eq(initials_of(invisible[i], strlen(invisible[i]), out, sizeof out), 0);
}
END_TEST

/* Each name of the issue draws glyphs (ink in the centre) and the ink is
 * centred: its box's middle within 2 px of the avatar's. */
START_TEST(initials_draw_centred)
{
    buf out = BUF_INIT;
    for (size_t i = 0; i < 5; i++) {
        char doc[512];
        snprintf(doc, sizeof doc, "{\"seed\":\"n%zu\",\"style\":\"initials\",\"name\":\"%s\",\"sizes\":[128]}",
                 i, names[i].name);
        make(doc, &out);
        picture p = decode(JOB_FORMAT_PNG, &out, 128);
        ck_assert_msg(centre_ink(&p) > 128 * 128 / 4 / 20, "%s: too little ink", names[i].name);
        const uint8_t *bg = at(&p, 0, 0);
        int x0 = 128, y0 = 128, x1 = -1, y1 = -1;
        for (int y = 0; y < 128; y++)
            for (int x = 0; x < 128; x++)
                if (memcmp(at(&p, x, y), bg, 4) != 0) {
                    x0 = x < x0 ? x : x0, y0 = y < y0 ? y : y0;
                    x1 = x > x1 ? x : x1, y1 = y > y1 ? y : y1;
                }
        ck_assert_msg(abs(x0 + x1 + 1 - 128) <= 4 && abs(y0 + y1 + 1 - 128) <= 4,
                      "%s: ink box %d,%d..%d,%d not centred", names[i].name, x0, y0, x1, y1);
        ck_assert_msg(x1 - x0 > 128 / 5 && x1 - x0 < 128 * 3 / 4, "%s: ink %d px wide", names[i].name, x1 - x0);
        free(p.rgba);
    }
    buf_free(&out);
}
END_TEST

/* Scripts beyond the issue's: a font of their own (Ethiopic, Kannada,
 * Khmer) or the CJK font (kana): ink is drawn in the centre. */
START_TEST(initials_more_scripts)
{
    static const char *const more[] = {
        "\xe1\x88\xb0\xe1\x88\x8b\xe1\x88\x9d",  /* Ethiopic */
        "\xe0\xb2\x95\xe0\xb2\xa8",                  /* Kannada */
        "\xe1\x9e\x81\xe1\x9f\x92\xe1\x9e\x98",  /* Khmer */
        "\xe3\x81\xb2\xe3\x82\x89",                  /* hiragana */
    };
    buf out = BUF_INIT;
    for (size_t i = 0; i < sizeof more / sizeof *more; i++) {
        char doc[256];
        snprintf(doc, sizeof doc, "{\"seed\":\"m\",\"style\":\"initials\",\"name\":\"%s\",\"sizes\":[96]}", more[i]);
        make(doc, &out);
        picture p = decode(JOB_FORMAT_PNG, &out, 96);
        int ink = centre_ink(&p);
        ck_assert_msg(ink > 96 * 96 / 4 / 25, "%zu: %d ink pixels", i, ink);
        free(p.rgba);
    }
    buf_free(&out);
}
END_TEST

/* Without a name the seed's part before '@' gives the letters. */
START_TEST(initials_from_seed)
{
    static job_request r;
    parse_ok("{\"seed\":\"grace.hopper@navy.mil\",\"style\":\"initials\"}", &r);
    ck_assert_str_eq(r.render.text, "GH");
    parse_ok("{\"seed\":\"grace.hopper@navy.mil\",\"style\":\"initials\",\"name\":\"Ada Lovelace\"}", &r);
    ck_assert_str_eq(r.render.text, "AL");
}
END_TEST

/* The quantizer (emoji artwork): a picture of few colours keeps them
 * exactly; one of 60,000 distinct colours (its colour table grows many
 * times) gets the most entries allowed, every visible pixel an entry near
 * its colour, equal colours one entry, and the same answer every time. */
START_TEST(quantize_few_and_many)
{
    enum { N = 240 * 250 };
    uint8_t *rgba = malloc(N * 4), *idx = malloc(N), *idx2 = malloc(N);
    uint8_t pal[256][4], pal2[256][4];
    static const uint8_t five[5][4] = {{255, 0, 0, 255}, {0, 255, 0, 255}, {0, 0, 255, 128}, {9, 9, 9, 255}, {0, 0, 0, 0}};
    uint64_t x = 88172645463325252ull;
    for (int i = 0; i < N; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        memcpy(rgba + 4 * i, five[x % 5], 4);
    }
    ck_assert_int_eq(quantize_rgba(rgba, N, 96, pal, idx), 5); /* 4 colours + the transparent entry */
    for (int i = 0; i < N; i++)
        ck_assert(rgba[4 * i + 3] ? memcmp(pal[idx[i]], rgba + 4 * i, 4) == 0 : idx[i] == 0);
    for (int i = 0; i < N; i++) { /* 60,000 distinct opaque colours, shuffled, some twice */
        int c = i < 60000 ? i * 7919 % 60000 : i % 997;
        rgba[4 * i] = (uint8_t)(c * 37), rgba[4 * i + 1] = (uint8_t)(c >> 3), rgba[4 * i + 2] = (uint8_t)(c * 11 >> 4);
        rgba[4 * i + 3] = 255;
    }
    ck_assert_int_eq(quantize_rgba(rgba, N, 96, pal, idx), 96);
    ck_assert_int_eq(quantize_rgba(rgba, N, 96, pal2, idx2), 96);
    ck_assert(memcmp(pal, pal2, 96 * 4) == 0 && memcmp(idx, idx2, N) == 0);
    long err = 0;
    for (int i = 0; i < N; i++) {
        ck_assert_int_ne(idx[i], 0);
        for (int k = 0; k < 3; k++)
            err += abs(rgba[4 * i + k] - pal[idx[i]][k]);
    }
    ck_assert_msg(err / (3L * N) < 24, "mean error %ld per channel", err / (3L * N));
    static int first[997];
    for (int i = 0; i < 60000; i++)
        if (i * 7919 % 60000 < 997)
            first[i * 7919 % 60000] = i;
    for (int i = 60000; i < N; i++) /* the repeats: the entry of the first pixel of their colour */
        ck_assert_int_eq(idx[i], idx[first[i % 997]]);
    free(rgba), free(idx), free(idx2);
}
END_TEST

/* Emoji avatars on one colour share their pixel indexes (render.h,
 * plane_key), and the PNG encoder reuses the compressed data it made for
 * the first for the next ones. Each must still be its own picture, the one
 * its lossless WebP shows (WebP is encoded from the pixels, never from that
 * cache), and its bytes those of a fresh encode. Rounded corners change
 * the indexes: that one must not take the shared data. */
START_TEST(emoji_plane_cache)
{
    static const char *const looks[] = {
        "\"primary\":\"#ff0000\",\"foreign\":\"#123456\"",
        "\"primary\":\"#00ff00\",\"foreign\":\"#fedcba\"",
        "\"scheme\":\"ocean\",\"filter\":\"sepia\"",
        "\"primary\":\"#00ff00\",\"foreign\":\"#fedcba\",\"radius\":30",
    };
    enum { N = sizeof looks / sizeof *looks };
    buf png[N], fresh = BUF_INIT, webp = BUF_INIT;
    char doc[400];
    pngenc_forget();
    for (int pass = 0; pass < 2; pass++)
        for (int i = 0; i < N; i++) {
            snprintf(doc, sizeof doc,
                     "{\"seed\":\"pc%d\",\"style\":\"emoji\",\"emoji\":\"\xf0\x9f\xa6\x8a\",\"background\":\"solid\","
                     "\"emoji_size\":\"large\",\"sizes\":[128],%s%s}",
                     i, looks[i], pass ? ",\"format\":\"webp\"" : "");
            if (pass == 0) {
                png[i] = (buf)BUF_INIT;
                make(doc, &png[i]); /* i > 0: the first one's data, from the cache */
                continue;
            }
            make(doc, &webp);
            picture a = decode(JOB_FORMAT_PNG, &png[i], 128), b = decode(JOB_FORMAT_WEBP, &webp, 128);
            int differ = 0;
            for (int k = 0; k < 128 * 128; k++) /* colour under alpha 0 is free in WebP */
                differ += a.rgba[4 * k + 3] ? memcmp(a.rgba + 4 * k, b.rgba + 4 * k, 4) != 0 : b.rgba[4 * k + 3] != 0;
            ck_assert_msg(differ == 0, "look %d: %d pixels of the PNG and the WebP differ", i, differ);
            free(a.rgba), free(b.rgba);
            /* the same request with nothing cached: the same bytes */
            doc[strlen(doc) - strlen(",\"format\":\"webp\"}")] = '\0';
            strcat(doc, "}");
            pngenc_forget();
            make(doc, &fresh);
            ck_assert_msg(fresh.len == png[i].len && memcmp(fresh.data, png[i].data, fresh.len) == 0,
                          "look %d: cached bytes differ from a fresh encode", i);
        }
    ck_assert_msg(png[0].len != png[1].len || memcmp(png[0].data, png[1].data, png[0].len) != 0,
                  "two colourings gave one file");
    for (int i = 0; i < N; i++)
        buf_free(&png[i]);
    buf_free(&fresh), buf_free(&webp);
}
END_TEST

/* ---- goldens ---- */

/* SHA-256 of the bytes, looked at once (AQ_TEST_DUMP=DIR writes them).
 * They pin the artwork (@twemoji/svg 15.0.0), the Noto fonts, librsvg 2.54,
 * FreeType 2.12, HarfBuzz 6.0, libpng 1.6, libdeflate 1.14 and libwebp 1.2 of Debian 12. */
static const struct {
    const char *doc, *sha256;
} goldens[] = {
    {"{\"seed\":\"g1\",\"style\":\"emoji\",\"emoji\":\"\xf0\x9f\xa6\x8a\",\"background\":\"radial\",\"sizes\":[64]}",
     "d357aeb1c1f0385c714cc21cdf518770e53cd2cfcbb3e0de63960ea8dd5b6c45"},
    {"{\"seed\":\"g2\",\"style\":\"emoji\",\"background\":\"linear\",\"angle\":30,\"radius\":50,\"sizes\":[64],"
     "\"format\":\"webp\"}",
     "0013cc033104d3fd3c68080579f92aa5baccc65b421e79daaf75d35422b9641d"},
    {"{\"seed\":\"g3\",\"style\":\"initials\",\"name\":\"Zo\xc3\xab \xc3\x85ngstr\xc3\xb6m\",\"sizes\":[64]}", "826bf750a430498e4ae3cd2369501458f90b2ef2ea46e5aaafdfe18a6d047d85"},
    {"{\"seed\":\"g4\",\"style\":\"pixel\",\"background\":\"transparent\",\"radius\":25,\"sizes\":[64]}", "ca2e15496fcf8680f3dcc5d1354c68ce887c54308b619faec17f7bab6f5e4005"},
    {"{\"seed\":\"g5\",\"style\":\"pixel\",\"format\":\"svg\",\"radius\":10,\"sizes\":[64]}", "31afb0a6cf05033f7b6edf34a239a7fc52ca21da387f8c276e185831a854f500"},
    {"{\"seed\":\"g6\",\"style\":\"wave\",\"background\":\"transparent\",\"sizes\":[64]}", "4b6a78d698e6e1f362160230a3a2a492864e1b2a0801409db384a0c95b1f9af0"},
};

START_TEST(golden_bytes)
{
    const char *dump = getenv("AQ_TEST_DUMP");
    buf out = BUF_INIT;
    for (size_t i = 0; i < sizeof goldens / sizeof *goldens; i++) {
        make(goldens[i].doc, &out);
        char sum[65];
        hash_sha256_hex(out.data, out.len, sum);
        if (dump) {
            char path[512];
            snprintf(path, sizeof path, "%s/golden-%zu", dump, i);
            FILE *f = fopen(path, "wb");
            if (f) {
                fwrite(out.data, 1, out.len, f);
                fclose(f);
            }
        }
        if (dump)
            printf("golden %zu: %s\n", i, sum);
        else
            ck_assert_msg(strcmp(sum, goldens[i].sha256) == 0, "golden %zu: got %s", i, sum);
    }
    buf_free(&out);
}
END_TEST

/* ---- bad input ---- */

static const struct {
    const char *doc, *want;
} bad[] = {
    {"{\"seed\":\"a\",\"style\":\"emoji\",\"emoji\":\"A\"}", "emoji: 'A' is not exactly one emoji"},
    {"{\"seed\":\"a\",\"style\":\"emoji\",\"emoji\":\"\xf0\x9f\x98\x80\xf0\x9f\x98\x80\"}", "emoji: "},
    {"{\"seed\":\"a\",\"style\":\"emoji\",\"emoji\":5}", "emoji: expected a string, got integer 5"},
    {"{\"seed\":\"a\",\"style\":\"pixel\",\"emoji\":\"\xf0\x9f\x98\x80\"}", "emoji: only the emoji style"},
    {"{\"seed\":\"a\",\"style\":\"emoji\",\"background\":\"plaid\"}", "background: 'plaid' is not a background"},
    {"{\"seed\":\"a\",\"style\":\"pixel\",\"background\":\"linear\"}", "background: style pixel cannot draw a linear"},
    {"{\"seed\":\"a\",\"style\":\"gradient\",\"background\":\"transparent\"}", "background: style gradient cannot"},
    {"{\"seed\":\"a\",\"style\":\"emoji\",\"emoji_size\":\"huge\"}", "emoji_size: 'huge' is not an emoji size"},
    {"{\"seed\":\"a\",\"style\":\"wave\",\"emoji_size\":\"small\"}", "emoji_size: only the emoji style"},
    {"{\"seed\":\"a\",\"radius\":51}", "radius: 51 is outside 0..50"},
    {"{\"seed\":\"a\",\"radius\":-1}", "radius: -1 is outside 0..50"},
    {"{\"seed\":\"a\",\"radius\":12.5}", "radius: expected an integer, got real 12.5"},
    {"{\"seed\":\"a\",\"format\":\"gif\"}", "format: 'gif' is not a format (png, webp, svg)"},
    {"{\"seed\":\"a\",\"style\":\"wave\",\"format\":\"svg\"}", "format: style wave cannot be written as svg"},
    {"{\"seed\":\"a\",\"style\":\"initials\",\"name\":\"\xe2\x80\x8b \xe2\x80\x8b\"}", "name: "},
    {"{\"seed\":\"a\",\"style\":\"initials\",\"name\":\"\"}", "name: '' has no visible letter"},
    {"{\"seed\":\"a\",\"style\":\"pixel\",\"name\":\"Ada\"}", "name: only the initials style"},
    {"{\"seed\":\"a\",\"style\":\"initials\",\"name\":[\"Ada\"]}", "name: expected a string, got an array"},
};

START_TEST(bad_documents)
{
    job_request *r = malloc(sizeof *r);
    aq_err e = {0};
    const char *doc = bad[_i].doc;
    ck_assert_int_eq(job_parse(doc, strlen(doc), &lim, r, &e), AQ_EPERM);
    ck_assert_msg(strncmp(e.msg, bad[_i].want, strlen(bad[_i].want)) == 0, "%s:\n  got  %s\n  want %s", doc,
                  e.msg, bad[_i].want);
    free(r);
}
END_TEST

/* ---- metadata and storage ---- */

static char tmp[256];

static void tmp_setup(void) { sup_tmpdir(tmp, sizeof tmp); }
static void tmp_teardown(void) { sup_rmtree(tmp); }

START_TEST(stored_with_format)
{
    aq_config c;
    config_defaults(&c);
    snprintf(c.database.backend, sizeof c.database.backend, "sqlite");
    snprintf(c.database.sqlite.path, sizeof c.database.sqlite.path, "%s/meta.db", tmp);
    char root[300];
    snprintf(root, sizeof root, "%s/store", tmp);
    aq_err e = {0};
    meta m;
    ck_assert_msg(meta_open(&m, &c, false, &e) == 0, "%s", e.msg);
    storage st;
    ck_assert_msg(storage_open_local(&st, root, true, &e) == 0, "%s", e.msg);
    avatar_ctx ctx;
    avatar_init(&ctx, &st, &m, "avatars", "test");
    static job_request r;
    static const struct { const char *doc, *fmt, *key; } cases[] = {
        {"{\"id\":\"w\",\"seed\":\"s\",\"style\":\"initials\",\"format\":\"webp\",\"sizes\":[32,64]}", "webp", "avatars/w/64.webp"},
        {"{\"id\":\"v\",\"seed\":\"s\",\"style\":\"pixel\",\"format\":\"svg\",\"sizes\":[32,64]}", "svg", "avatars/v/avatar.svg"},
        {"{\"id\":\"p\",\"seed\":\"s\",\"style\":\"wave\",\"sizes\":[32,64]}", "png", "avatars/p/64.png"},
    };
    for (size_t i = 0; i < 3; i++) {
        parse_ok(cases[i].doc, &r);
        char *outputs = NULL;
        ck_assert_msg(avatar_generate(&ctx, &r, 1, &outputs, &e) == 0, "%s", e.msg);
        ck_assert_msg(strstr(outputs, cases[i].key) != NULL, "%s", outputs);
        free(outputs);
        meta_row *row = malloc(sizeof *row);
        ck_assert_int_eq(meta_get(&m, r.id, row, &e), 0);
        ck_assert_str_eq(row->format, cases[i].fmt);
        free(row);
        char path[600];
        snprintf(path, sizeof path, "%s/%s", root, cases[i].key);
        FILE *f = fopen(path, "rb");
        ck_assert_msg(f != NULL, "%s missing", path);
        fclose(f);
        /* delete removes what was written */
        ck_assert_int_eq(avatar_delete(&ctx, &r, &e), 0);
        ck_assert_ptr_null(fopen(path, "rb"));
    }
    avatar_free(&ctx);
    storage_close(&st);
    meta_close(&m);
}
END_TEST

/* ---- the CLI, as a real program ---- */

static int run(buf *out, const char *fmt, const char *args)
{
    char cmd[2048];
    snprintf(cmd, sizeof cmd, fmt, tmp, sup_bin("avatarq"), tmp, args);
    buf_reset(out);
    return sup_run(cmd, out, true);
}

#define AQ "cd '%s' && touch empty.ini && '%s' -c '%s/empty.ini' %s"

START_TEST(cli_formats_and_tools)
{
    buf out = BUF_INIT;
    int rc = run(&out, AQ, "render --seed cli --style emoji --emoji \xf0\x9f\x90\x99 --background radial "
                           "--emoji-size large --radius 50 --format webp --id oct -d d --sizes 64,128");
    ck_assert_msg(rc == 0, "%s", (char *)out.data);
    ck_assert_ptr_nonnull(strstr((char *)out.data, "d/oct/64.webp\nd/oct/128.webp\n"));
    /* the real dwebp decodes it */
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "cd '%s' && dwebp -quiet d/oct/128.webp -o oct.png && echo decoded", tmp);
    ck_assert_int_eq(sup_run(cmd, &out, true), 0);
    ck_assert_ptr_nonnull(strstr((char *)out.data, "decoded"));

    rc = run(&out, AQ, "render --seed cli --style pixel --format svg --id vec -d d --sizes 32,64");
    ck_assert_msg(rc == 0, "%s", (char *)out.data);
    ck_assert_str_eq((char *)out.data, "d/vec/avatar.svg\n");
    snprintf(cmd, sizeof cmd, "cd '%s' && rsvg-convert -w 64 -h 64 d/vec/avatar.svg -o vec.png && echo drawn", tmp);
    ck_assert_int_eq(sup_run(cmd, &out, true), 0);

    rc = run(&out, AQ, "render --seed 'Grace Hopper' --style initials --name '\xce\xa9' -o i.png --size 96");
    ck_assert_msg(rc == 0, "%s", (char *)out.data);

    /* get finds each avatar in the format it was made in: d/ is a local
     * storage root with prefix "avatars" */
    snprintf(cmd, sizeof cmd, "cd '%s' && mkdir -p st && mv d st/avatars && printf '[storage]\nprefix = avatars\n"
             "[storage.local]\nroot = %s/st\n' > st.ini", tmp, tmp);
    ck_assert_int_eq(sup_run(cmd, &out, true), 0);
    static const struct { const char *args, *key; } gets[] = {
        {"get oct --size 128 -o g1", "avatars/oct/128.webp"},
        {"get vec --size 64 -o g2", "avatars/vec/avatar.svg"},
        {"get vec --size 64 --format svg -o g3", "avatars/vec/avatar.svg"},
    };
    for (size_t i = 0; i < 3; i++) {
        rc = run(&out, "cd '%s' && '%s' -c '%s/st.ini' %s", gets[i].args);
        ck_assert_msg(rc == 0 && strstr((char *)out.data, gets[i].key), "%s: %s", gets[i].args, (char *)out.data);
    }
    rc = run(&out, "cd '%s' && '%s' -c '%s/st.ini' %s", "get oct --size 128 --format png -o g4");
    ck_assert_msg(rc == 1 && strstr((char *)out.data, "avatars/oct/128.png is not stored"), "%s", (char *)out.data);
    buf_free(&out);
}
END_TEST

/* render --seeds -j N: N processes write exactly the files one does. */
START_TEST(cli_parallel_bulk)
{
    buf out = BUF_INIT;
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "cd '%s' && for i in $(seq 1 40); do echo \"seed-$i\"; done > seeds && "
             "printf 'named\\tjoe\\n' >> seeds", tmp);
    ck_assert_int_eq(sup_run(cmd, &out, true), 0);
    int rc = run(&out, AQ, "render --seeds seeds -d one -j 1 --style emoji --sizes 32,48");
    ck_assert_msg(rc == 0 && strstr((char *)out.data, "rendered 41 avatars (82 files)"), "%s", (char *)out.data);
    rc = run(&out, AQ, "render --seeds seeds -d three -j 3 --style emoji --sizes 32,48");
    ck_assert_msg(rc == 0 && strstr((char *)out.data, "rendered 41 avatars (82 files)"), "%s", (char *)out.data);
    snprintf(cmd, sizeof cmd, "cd '%s' && diff -r one three && test -f three/named/48.png && echo same", tmp);
    ck_assert_int_eq(sup_run(cmd, &out, true), 0);
    ck_assert_str_eq((char *)out.data, "same\n");
    rc = run(&out, AQ, "render --seed x -d d -j 2");
    ck_assert_msg(rc == 2 && strstr((char *)out.data, "--jobs: only with --seeds FILE"), "%s", (char *)out.data);
    buf_free(&out);
}
END_TEST

/* enqueue and batch carry the options into the queued document, with the
 * same checks (a real Redis, read back with redis-cli). */
/* Redis is an unchecked fixture: started and stopped in the parent, so it
 * is stopped even when a check fails in the test's own process. */
static sup_redis redis;

static void redis_setup(void) { sup_redis_start(&redis, false); }

static void redis_teardown(void)
{
    sup_redis_stop(&redis);
    sup_rmtree(redis.dir);
}

START_TEST(cli_enqueue_carries_options)
{
    char conf[600], args[1200];
    snprintf(conf, sizeof conf, "%s/q.ini", tmp);
    char text[300];
    snprintf(text, sizeof text, "[redis]\nurl = %s\nnamespace = t\n", redis.url);
    sup_write_file(conf, text);
    buf out = BUF_INIT;
    snprintf(args, sizeof args, "'%s' -c '%s' enqueue --seed q --style emoji --emoji '\xf0\x9f\xa6\x8a' "
             "--background radial --emoji-size small --radius 20 --format webp --id e1", sup_bin("avatarq"), conf);
    int rc = sup_run(args, &out, true);
    ck_assert_msg(rc == 0, "%s", (char *)out.data);
    snprintf(args, sizeof args, "printf '%%s\n' '{\"id\":\"b1\",\"seed\":\"b\",\"style\":\"initials\","
             "\"name\":\"Ada L\",\"format\":\"webp\"}' | '%s' -c '%s' batch -", sup_bin("avatarq"), conf);
    rc = sup_run(args, &out, true);
    ck_assert_msg(rc == 0, "%s", (char *)out.data);
    const char *q = sup_redis_str(&redis, "LRANGE t:queue:default 0 -1");
    ck_assert_msg(strstr(q, "\"background\":\"radial\"") && strstr(q, "\"emoji_size\":\"small\"") &&
                  strstr(q, "\"radius\":20") && strstr(q, "\"format\":\"webp\"") &&
                  strstr(q, "\"name\":\"Ada L\""), "%s", q);
    /* a bad value is refused before anything is queued, naming the field */
    snprintf(args, sizeof args, "'%s' -c '%s' enqueue --seed q --style wave --format svg", sup_bin("avatarq"), conf);
    rc = sup_run(args, &out, true);
    ck_assert_msg(rc == 2 && strstr((char *)out.data, "format: style wave cannot be written as svg"), "%d %s", rc,
                  (char *)out.data);
    ck_assert_int_eq(sup_redis_int(&redis, "LLEN t:queue:default"), 2);
    buf_free(&out);
}
END_TEST

/* The real worker: an emoji WebP job is stored as ID/SIZE.webp with its
 * format in the metadata; a document with a bad option goes dead with the
 * field named. The worker is stopped before any check can fail. */
START_TEST(worker_end_to_end)
{
    char conf[600], text[1200], cmd[1600], logp[600];
    snprintf(conf, sizeof conf, "%s/w.ini", tmp);
    snprintf(text, sizeof text,
             "[redis]\nurl = %s\nnamespace = w\n[storage.local]\nroot = %s/store\nfsync = false\n"
             "[database.sqlite]\npath = %s/avatarq.db\n", redis.url, tmp, tmp);
    sup_write_file(conf, text);
    snprintf(logp, sizeof logp, "%s/worker.log", tmp);
    char *argv[] = {(char *)sup_bin("avatarq-worker"), "-c", conf, NULL};
    char *env[] = {"AVATARQ_WORKER_PROCESSES=1", NULL};
    pid_t w = sup_spawn(argv, env, logp);

    buf good = BUF_INIT, shown = BUF_INIT;
    snprintf(cmd, sizeof cmd, "'%s' -c '%s' enqueue --seed wk --style emoji --emoji '\xf0\x9f\x90\x99' "
             "--format webp --radius 50 --sizes 32,64 --id wk1 --wait --timeout 60", sup_bin("avatarq"), conf);
    int rc_good = sup_run(cmd, &good, true);
    snprintf(cmd, sizeof cmd, "'%s' -c '%s' show wk1", sup_bin("avatarq"), conf);
    int rc_show = sup_run(cmd, &shown, true);
    /* a document no producer of ours would send */
    sup_redis_str(&redis, "LPUSH w:queue:default '{\"v\":1,\"id\":\"bad1\",\"seed\":\"x\",\"radius\":99}'");
    long long dead = 0;
    for (int i = 0; i < 600 && dead == 0; i++) { /* up to 60 s */
        dead = sup_redis_int(&redis, "LLEN w:dead");
        if (dead == 0)
            sup_sleep_ms(100);
    }
    char reason[4096];
    snprintf(reason, sizeof reason, "%s", sup_redis_str(&redis, "LRANGE w:dead 0 -1"));
    int st = sup_stop(w, SIGTERM, 30000);

    ck_assert_msg(rc_good == 0, "enqueue --wait: %d\n%s", rc_good, (char *)good.data);
    ck_assert_msg(strstr((char *)good.data, "64 avatars/wk1/64.webp"), "%s", (char *)good.data);
    ck_assert_msg(rc_show == 0 && strstr((char *)shown.data, "format         webp\n"), "%s", (char *)shown.data);
    char path[700];
    snprintf(path, sizeof path, "%s/store/avatars/wk1/64.webp", tmp);
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "%s missing", path);
    buf data = BUF_INIT;
    char chunk[4096];
    size_t got;
    while ((got = fread(chunk, 1, sizeof chunk, f)) > 0)
        buf_append(&data, chunk, got);
    fclose(f);
    picture p = decode(JOB_FORMAT_WEBP, &data, 64);
    ck_assert_int_eq(at(&p, 0, 0)[3], 0);      /* round: the corner is gone */
    ck_assert_int_eq(at(&p, 32, 32)[3], 255);
    free(p.rgba);
    ck_assert_msg(dead == 1 && strstr(reason, "radius: 99 is outside 0..50"), "dead %lld: %s", dead, reason);
    ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    buf_free(&good);
    buf_free(&shown);
    buf_free(&data);
}
END_TEST

static const struct {
    const char *args, *want;
} bad_cli[] = {
    {"render --seed a --style emoji --emoji x -o a.png", "avatarq render: emoji: 'x' is not exactly one emoji"},
    {"render --seed a --radius 60 -o a.png", "avatarq render: radius: 60 is outside 0..50"},
    {"render --seed a --radius ten -o a.png", "avatarq render: radius: expected an integer, got string 'ten'"},
    {"render --seed a --format gif -o a.png", "avatarq render: format: 'gif' is not a format"},
    {"render --seed a --style wave --format svg -o a.svg", "avatarq render: format: style wave cannot"},
    {"render --seed a --background plaid -o a.png", "avatarq render: background: 'plaid' is not a background"},
    {"render --seed a --style emoji --emoji-size huge -o a.png", "avatarq render: emoji_size: 'huge'"},
    {"render --seed a --style initials --name ' ' -o a.png", "avatarq render: name: ' ' has no visible letter"},
    {"render --seed a --style pixel --name Ada -o a.png", "avatarq render: name: only the initials style"},
};

START_TEST(cli_bad_options)
{
    buf out = BUF_INIT;
    int rc = run(&out, AQ, bad_cli[_i].args);
    ck_assert_msg(rc == 2, "%s: exit %d: %s", bad_cli[_i].args, rc, (char *)out.data);
    ck_assert_msg(strstr((char *)out.data, bad_cli[_i].want) != NULL, "%s:\n  got  %s  want %s",
                  bad_cli[_i].args, (char *)out.data, bad_cli[_i].want);
    buf_free(&out);
}
END_TEST

int main(void)
{
    emoji_dir_for_tests();
    limits_init();
    Suite *s = suite_create("render_options");
    TCase *tc = tcase_create("pictures");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, every_combination);
    tcase_add_test(tc, emoji_cache_shared_by_threads);
    tcase_add_test(tc, webp_is_lossless);
    tcase_add_test(tc, webp_not_larger);
    tcase_add_test(tc, round_corners_transparent);
    tcase_add_test(tc, round_keeps_palette);
    tcase_add_test(tc, emoji_text_to_names);
    tcase_add_test(tc, emoji_spellings_share_an_id);
    tcase_add_test(tc, emoji_crisp_at_512);
    tcase_add_test(tc, emoji_sizes);
    tcase_add_test(tc, initials_letters);
    tcase_add_test(tc, initials_draw_centred);
    tcase_add_test(tc, initials_from_seed);
    tcase_add_test(tc, initials_more_scripts);
    tcase_add_test(tc, golden_bytes);
    tcase_add_test(tc, emoji_plane_cache);
    tcase_add_test(tc, quantize_few_and_many);
    tcase_add_loop_test(tc, bad_documents, 0, (int)(sizeof bad / sizeof *bad));
    suite_add_tcase(s, tc);
    TCase *io = tcase_create("storage and cli");
    tcase_set_timeout(io, 120);
    tcase_add_checked_fixture(io, tmp_setup, tmp_teardown);
    tcase_add_test(io, stored_with_format);
    tcase_add_test(io, cli_formats_and_tools);
    tcase_add_test(io, cli_parallel_bulk);
    tcase_add_loop_test(io, cli_bad_options, 0, (int)(sizeof bad_cli / sizeof *bad_cli));
    suite_add_tcase(s, io);
    TCase *queue = tcase_create("queue");
    tcase_set_timeout(queue, 120);
    tcase_add_unchecked_fixture(queue, redis_setup, redis_teardown);
    tcase_add_checked_fixture(queue, tmp_setup, tmp_teardown);
    tcase_add_test(queue, cli_enqueue_carries_options);
    tcase_add_test(queue, worker_end_to_end);
    suite_add_tcase(s, queue);
    return sup_run_suite(s);
}
