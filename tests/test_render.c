/* test_render: the styles, checked on decoded PNGs (symmetry, dimensions,
 * colours, filters, bit depths), pinned by SHA-256 goldens, plus the
 * offline CLI (render, sheet, schemes) run as a real program. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "hash.h"
#include "job.h"
#include "pngenc.h"
#include "render.h"
#include "support.h"

/* ---- helpers ---- */

/* The artwork tests/deps.sh installs in the source tree, unless the
 * environment names another (an installed copy). */
static void emoji_dir_for_tests(void)
{
    char *dir = realpath("data/emoji/node_modules/@twemoji/svg", NULL);
    if (dir)
        setenv("AQ_EMOJI_DIR", dir, 0);
    free(dir);
}

typedef struct req {
    const char *seed, *style;
    int size;
    const char *primary, *foreign, *scheme;
    double angle;
    const char *filter;
} req;

static void params_of(const req *q, render_params *p)
{
    aq_rgb pc, fc;
    int style = render_style_find(q->style);
    ck_assert_msg(style >= 0, "style %s", q->style);
    if (q->primary)
        ck_assert_int_eq(color_parse(q->primary, &pc), 0);
    if (q->foreign)
        ck_assert_int_eq(color_parse(q->foreign, &fc), 0);
    const color_scheme *sc = q->scheme ? color_scheme_find(q->scheme) : NULL;
    int f = q->filter ? color_filter_find(q->filter) : FILTER_NONE;
    render_params_init(p, q->seed, strlen(q->seed), style, q->primary ? &pc : NULL,
                       q->foreign ? &fc : NULL, sc, q->angle, (aq_filter)f);
}

/* Renders and encodes q into png (reset first). */
static void encode_req(const req *q, render_image *img, buf *png)
{
    render_params p;
    params_of(q, &p);
    ck_assert_int_eq(render_make(&p, q->size, img), 0);
    buf_reset(png);
    aq_err e;
    ck_assert_int_eq(pngenc_encode(img, png, &e), 0);
}

typedef struct picture {
    uint8_t *rgba;
    int w, h;
} picture;

static picture decode_req(const req *q, buf *png_out)
{
    render_image img = RENDER_IMAGE_INIT;
    buf png = BUF_INIT;
    encode_req(q, &img, &png);
    picture pic;
    aq_err e;
    ck_assert_int_eq(pngenc_decode(png.data, png.len, &pic.rgba, &pic.w, &pic.h, &e), 0);
    if (png_out) {
        buf_reset(png_out);
        buf_append(png_out, png.data, png.len);
    }
    render_image_free(&img);
    buf_free(&png);
    return pic;
}

static uint32_t px(const picture *p, int x, int y)
{
    const uint8_t *q = p->rgba + ((size_t)y * p->w + x) * 4;
    return (uint32_t)q[0] << 16 | (uint32_t)q[1] << 8 | q[2];
}

static uint32_t rgb24(aq_rgb c) { return (uint32_t)c.r << 16 | (uint32_t)c.g << 8 | c.b; }

/* Number of distinct colours (up to 300). */
static int count_colours(const picture *p, uint32_t *seen, int max)
{
    int n = 0;
    for (int i = 0; i < p->w * p->h; i++) {
        uint32_t c = px(p, i % p->w, i / p->w);
        int k = 0;
        while (k < n && seen[k] != c)
            k++;
        if (k == n && n < max)
            seen[n++] = c;
    }
    return n;
}

static int luma(uint32_t c)
{
    return (int)(299 * (c >> 16) + 587 * ((c >> 8) & 255) + 114 * (c & 255)) / 1000;
}

/* ---- goldens ---- */

/* SHA-256 of the PNG bytes. Computed once, after looking at each picture
 * (AQ_TEST_DUMP=DIR writes them out); any change to pixels or encoding
 * settings changes these on purpose only. */
static const struct golden {
    req q;
    const char *sha256;
} goldens[] = {
    {{"alice", "pixel", 64, NULL, NULL, NULL, -1, NULL},
     "5db31777296619cbc98f91f8416ac598673d4a650b1cc580ddfba60fb681073e"},
    {{"alice", "pixel", 17, NULL, NULL, NULL, -1, NULL},
     "13ecd49b79a240ca95b672c346ab41f7bbf84344718ae7b05621d3bf1d968f2a"},
    {{"erin", "pixel", 33, NULL, NULL, "green", -1, "grayscale"},
     "f01ae46b289aa8c5729cd54a1c1397c54589558b9a8eda6cd5f2334f31b17df5"},
    {{"bob", "classic", 100, NULL, NULL, "ocean", -1, NULL},
     "2a89724c5b6db1fbc25e2682647826fb14657e9552653e8442399579dadc8191"},
    {{"frank", "classic", 256, "#ff0000", "#000", NULL, -1, "negative"},
     "c4838e966f2b5ee2b3d6c3fe05518b52eccc8136a877f5dc39d5ef7a7d9e2ebd"},
    {{"carol", "wave", 128, NULL, NULL, NULL, -1, NULL},
     "2e2089fb2c191b81ccb513cef80fe1d3951d98048e2d81b9b413a4011774ec67"},
    {{"grace", "wave", 50, NULL, NULL, "sunset", -1, "sepia"},
     "c64a8e9770dc07f4b0650e7e21dccc065786454de69f145b0d29fff49b2f7f78"},
    {{"dave", "gradient", 256, NULL, NULL, NULL, 45, NULL},
     "31d0ebba629766b235c7544c16770055635437f8cfa175176ecfab67937f26ec"},
    {{"dave", "gradient", 97, NULL, NULL, NULL, -1, NULL},
     "21583f615a0ea41efd98dac4af088f2ce02fe57d67789a8e72625f237b854ebf"},
    {{"heidi", "gradient", 31, NULL, NULL, "royal", 200.5, NULL},
     "a139b6fe8cc5086d86c3531387a82fadf7b0b802a4ecbf4bdc609e545bbc8267"},
};

START_TEST(golden)
{
    const struct golden *g = &goldens[_i];
    render_image img = RENDER_IMAGE_INIT;
    buf png = BUF_INIT;
    encode_req(&g->q, &img, &png);
    char hex[65];
    hash_sha256_hex(png.data, png.len, hex);
    const char *dump = getenv("AQ_TEST_DUMP");
    if (dump && *dump) {
        char path[512];
        snprintf(path, sizeof path, "%s/golden-%d-%s-%d.png", dump, _i, g->q.style, g->q.size);
        FILE *f = fopen(path, "wb");
        if (f) {
            fwrite(png.data, 1, png.len, f);
            fclose(f);
        }
    }
    ck_assert_msg(strcmp(hex, g->sha256) == 0, "golden %d (%s %s %d): got %s", _i, g->q.seed,
                  g->q.style, g->q.size, hex);
    render_image_free(&img);
    buf_free(&png);
}
END_TEST

/* ---- pixel ---- */

/* Loops over pixels compare first and assert once: Check records every
 * passing assertion, which is slow per pixel under the sanitizers. */
static void check_mirror(const picture *p)
{
    int bad = -1;
    for (int y = 0; y < p->h && bad < 0; y++)
        for (int x = 0; x < p->w / 2 && bad < 0; x++)
            if (px(p, x, y) != px(p, p->w - 1 - x, y))
                bad = y * p->w + x;
    ck_assert_msg(bad < 0, "%d px: (%d,%d) breaks the mirror", p->w, bad % p->w, bad / p->w);
}

/* Columns (or rows) where the colour changes: few, and placed symmetrically,
 * which is what crisp, evenly shared cells look like. */
static void check_cells(const picture *p)
{
    int changes = 0;
    for (int x = 1; x < p->w; x++) {
        bool change = false;
        for (int y = 0; y < p->h && !change; y++)
            change = px(p, x, y) != px(p, x - 1, y);
        if (change) {
            changes++;
            /* the mirror edge exists too */
            bool twin = false;
            int mx = p->w - x;
            for (int y = 0; y < p->h && !twin; y++)
                twin = px(p, mx, y) != px(p, mx - 1, y);
            if (!twin)
                ck_assert_msg(twin, "%d px: edge at x=%d has no mirror edge", p->w, x);
        }
    }
    ck_assert_msg(changes <= 6, "%d px: %d vertical edges for 5 cells", p->w, changes);
}

START_TEST(pixel_mirror_and_size)
{
    static const int sizes[] = {16, 17, 18, 19, 20, 21, 31, 64, 100, 101, 255, 1000};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        for (int s = 0; s < 4; s++) {
            char seed[32];
            snprintf(seed, sizeof seed, "seed-%d", s);
            req q = {seed, "pixel", sizes[i], NULL, NULL, NULL, -1, NULL};
            picture p = decode_req(&q, NULL);
            ck_assert_int_eq(p.w, sizes[i]);
            ck_assert_int_eq(p.h, sizes[i]);
            check_mirror(&p);
            check_cells(&p);
            uint32_t seen[4];
            ck_assert_int_eq(count_colours(&p, seen, 4), 2);
            /* the margin is background */
            int margin_ok = 1;
            for (int k = 0; k < p.w; k++)
                margin_ok &= px(&p, k, 0) == px(&p, 0, 0) && px(&p, 0, k) == px(&p, 0, 0);
            ck_assert(margin_ok);
            free(p.rgba);
        }
    }
}
END_TEST

/* Every size in a range, with its cells: catches remainder handling. */
START_TEST(pixel_every_small_size)
{
    for (int size = 16; size <= 90; size++) {
        req q = {"remainder", "pixel", size, NULL, NULL, NULL, -1, NULL};
        picture p = decode_req(&q, NULL);
        ck_assert_int_eq(p.w, size);
        check_mirror(&p);
        check_cells(&p);
        free(p.rgba);
    }
}
END_TEST

/* ---- every style ---- */

static const struct {
    const char *style;
    int depth;
} style_depths[] = {{"pixel", 1}, {"classic", 4}, {"wave", 4}, {"gradient", 8}};

START_TEST(bit_depths)
{
    for (int s = 0; s < 6; s++) {
        char seed[32];
        snprintf(seed, sizeof seed, "depth-%d", s);
        req q = {seed, style_depths[_i].style, 128, NULL, NULL, NULL, -1, NULL};
        buf png = BUF_INIT;
        picture p = decode_req(&q, &png);
        ck_assert_int_eq(png.data[24], style_depths[_i].depth);
        ck_assert_int_eq(png.data[25], 3); /* palette */
        free(p.rgba);
        buf_free(&png);
    }
}
END_TEST

START_TEST(odd_sizes_exact)
{
    static const int sizes[] = {16, 17, 100, 333, 1000};
    for (int s = 0; s < render_style_count(); s++)
        for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
            req q = {"dims", render_style_name(s), sizes[i], NULL, NULL, NULL, -1, NULL};
            picture p = decode_req(&q, NULL);
            ck_assert_int_eq(p.w, sizes[i]);
            ck_assert_int_eq(p.h, sizes[i]);
            free(p.rgba);
        }
}
END_TEST

/* classic is symmetric about both axes and the diagonal. */
START_TEST(classic_symmetry)
{
    static const int sizes[] = {16, 17, 100, 257};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        req q = {"rings", "classic", sizes[i], NULL, NULL, "blue", -1, NULL};
        picture p = decode_req(&q, NULL);
        int n = p.w, bad = -1;
        for (int y = 0; y < n && bad < 0; y++)
            for (int x = 0; x < n && bad < 0; x++) {
                uint32_t c = px(&p, x, y);
                if (c != px(&p, n - 1 - x, y) || c != px(&p, x, n - 1 - y) || c != px(&p, y, x))
                    bad = y * n + x;
            }
        ck_assert_msg(bad < 0, "%d px: (%d,%d) breaks the symmetry", n, bad % n, bad / n);
        free(p.rgba);
    }
}
END_TEST

START_TEST(scheme_colours_present)
{
    const color_scheme *sc = color_scheme_find("ocean");
    uint32_t pc = rgb24(sc->primary), fc = rgb24(sc->foreign);
    for (int s = 0; s < 5; s++) {
        char seed[32];
        snprintf(seed, sizeof seed, "scheme-%d", s);
        req q = {seed, "pixel", 64, NULL, NULL, "ocean", -1, NULL};
        picture p = decode_req(&q, NULL);
        uint32_t seen[4];
        ck_assert_int_eq(count_colours(&p, seen, 4), 2);
        ck_assert((seen[0] == pc && seen[1] == fc) || (seen[0] == fc && seen[1] == pc));
        free(p.rgba);

        q.style = "classic";
        p = decode_req(&q, NULL);
        uint32_t many[300];
        int n = count_colours(&p, many, 300);
        ck_assert_int_le(n, 16);
        bool has_p = false, has_f = false;
        for (int k = 0; k < n; k++)
            has_p |= many[k] == pc, has_f |= many[k] == fc;
        ck_assert(has_p && has_f);
        ck_assert_uint_eq(px(&p, 0, 0), fc); /* corners are background */
        free(p.rgba);

        q.style = "wave";
        p = decode_req(&q, NULL);
        ck_assert_uint_eq(px(&p, 0, 0), fc); /* the sky */
        ck_assert_uint_eq(px(&p, 63, 0), fc);
        free(p.rgba);

        q.style = "gradient";
        p = decode_req(&q, NULL);
        ck_assert_int_le(count_colours(&p, many, 300), 256);
        free(p.rgba);
    }
}
END_TEST

/* Filters on known colours: red/blue grayscale, sepia and negative values
 * worked out by hand (test_color has the arithmetic). */
START_TEST(filter_on_pixels)
{
    static const struct {
        const char *filter, *primary, *foreign;
        uint32_t want_p, want_f;
    } cases[] = {
        {"grayscale", "#ff0000", "#0000ff", 0x4c4c4c, 0x1d1d1d},
        {"sepia", "#6496c8", "#000000", 0xc0ab86, 0x000000},
        {"negative", "#123456", "white", 0xedcba9, 0x000000},
        {"none", "#123456", "white", 0x123456, 0xffffff},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        req q = {"filters", "pixel", 40, cases[i].primary, cases[i].foreign, NULL, -1,
                 cases[i].filter};
        picture p = decode_req(&q, NULL);
        uint32_t seen[4];
        ck_assert_int_eq(count_colours(&p, seen, 4), 2);
        ck_assert_uint_eq(px(&p, 0, 0), cases[i].want_f);  /* margin: background */
        uint32_t other = seen[0] == cases[i].want_f ? seen[1] : seen[0];
        ck_assert_msg(other == cases[i].want_p, "%s: got %06x want %06x", cases[i].filter,
                      other, cases[i].want_p);
        free(p.rgba);
    }
    /* on a many-colour style the filter applies to every colour */
    req q = {"filters", "gradient", 64, NULL, NULL, "vibrant", -1, "grayscale"};
    picture p = decode_req(&q, NULL);
    int grey = 1;
    for (int i = 0; i < 64 * 64; i++) {
        uint32_t c = px(&p, i % 64, i / 64);
        grey &= (c >> 16) == ((c >> 8) & 255) && (c & 255) == (c >> 16);
    }
    ck_assert(grey);
    free(p.rgba);
}
END_TEST

START_TEST(deterministic_and_varied)
{
    for (int s = 0; s < render_style_count(); s++) {
        req a = {"same", render_style_name(s), 80, NULL, NULL, NULL, -1, NULL};
        buf x = BUF_INIT, y = BUF_INIT;
        picture p1 = decode_req(&a, &x), p2 = decode_req(&a, &y);
        ck_assert_uint_eq(x.len, y.len);
        ck_assert_int_eq(memcmp(x.data, y.data, x.len), 0);
        free(p1.rgba);
        free(p2.rgba);
        /* 40 seeds give (nearly) 40 different pictures */
        char hashes[40][65];
        int distinct = 0;
        for (int k = 0; k < 40; k++) {
            char seed[32];
            /* initials show the seed's letters: give them distinct ones */
            if (strcmp(render_style_name(s), "initials") == 0)
                snprintf(seed, sizeof seed, "%c %c", 'a' + k % 26, 'a' + k / 26);
            else
                snprintf(seed, sizeof seed, "user-%d", k);
            req b = {seed, render_style_name(s), 48, NULL, NULL, "blue", -1, NULL};
            render_image img = RENDER_IMAGE_INIT;
            encode_req(&b, &img, &x);
            render_image_free(&img);
            hash_sha256_hex(x.data, x.len, hashes[k]);
            int j = 0;
            while (j < k && strcmp(hashes[j], hashes[k]) != 0)
                j++;
            distinct += j == k;
        }
        ck_assert_msg(distinct >= 38, "%s: only %d distinct of 40", render_style_name(s), distinct);
        buf_free(&x);
        buf_free(&y);
    }
}
END_TEST

START_TEST(reuses_memory)
{
    render_params p;
    req q = {"reuse", "wave", 256, NULL, NULL, NULL, -1, NULL};
    render_image img = RENDER_IMAGE_INIT;
    for (int s = 0; s < render_style_count(); s++) {
        q.style = render_style_name(s);
        params_of(&q, &p);
        ck_assert_int_eq(render_make(&p, 300, &img), 0);
        uint8_t *mem = img.pixels;
        size_t cap = img.cap;
        static const int sizes[] = {16, 64, 299, 300, 128};
        for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
            ck_assert_int_eq(render_make(&p, sizes[i], &img), 0);
            ck_assert_ptr_eq(img.pixels, mem);
            ck_assert_uint_eq(img.cap, cap);
            ck_assert_int_eq(img.size, sizes[i]);
        }
        render_image_free(&img);
    }
}
END_TEST

START_TEST(refuses_bad_sizes_and_styles)
{
    render_params p;
    req q = {"x", "pixel", 64, NULL, NULL, NULL, -1, NULL};
    params_of(&q, &p);
    render_image img = RENDER_IMAGE_INIT;
    ck_assert_int_eq(render_make(&p, RENDER_MIN_SIZE - 1, &img), -1);
    ck_assert_int_eq(render_make(&p, RENDER_MAX_SIZE + 1, &img), -1);
    ck_assert_int_eq(render_make(&p, 0, &img), -1);
    p.style = render_style_count();
    ck_assert_int_eq(render_make(&p, 64, &img), -1);
    p.style = -1;
    ck_assert_int_eq(render_make(&p, 64, &img), -1);
    ck_assert_ptr_null(img.pixels);
}
END_TEST

START_TEST(style_table)
{
    static const char *const names[] = {"pixel", "classic", "wave", "gradient", "emoji", "initials"};
    ck_assert_int_eq(render_style_count(), 6);
    for (int i = 0; i < 6; i++) {
        ck_assert_int_eq(render_style_find(names[i]), i);
        ck_assert_str_eq(render_style_name(i), names[i]);
    }
    ck_assert_int_eq(render_style_find("WAVE"), 2);
    ck_assert_int_eq(render_style_find("identicon"), -1);
    ck_assert_int_eq(render_style_find(NULL), -1);
    ck_assert_ptr_null(render_style_name(6));
}
END_TEST

START_TEST(colour_precedence)
{
    render_params p;
    aq_rgb red = {255, 0, 0}, black = {0, 0, 0};
    const color_scheme *sc = color_scheme_find("forest");
    render_params_init(&p, "s", 1, 0, &red, &black, sc, -1, FILTER_NONE);
    ck_assert(rgb24(p.primary) == 0xff0000 && rgb24(p.foreign) == 0);
    render_params_init(&p, "s", 1, 0, NULL, NULL, sc, -1, FILTER_NONE);
    ck_assert(rgb24(p.primary) == rgb24(sc->primary) && rgb24(p.foreign) == rgb24(sc->foreign));
    render_params_init(&p, "s", 1, 0, NULL, &black, sc, -1, FILTER_NONE);
    ck_assert(rgb24(p.primary) == rgb24(sc->primary) && rgb24(p.foreign) == 0);
    /* a lone primary gets a pale tint of itself */
    render_params_init(&p, "s", 1, 0, &red, NULL, NULL, -1, FILTER_NONE);
    ck_assert(p.foreign.r == 255 && p.foreign.g > 200 && p.foreign.g == p.foreign.b);
    /* from the seed alone: a light background, hues that vary */
    int hues[360] = {0}, distinct = 0;
    for (int k = 0; k < 60; k++) {
        char seed[32];
        int len = snprintf(seed, sizeof seed, "hue-%d", k);
        render_params_init(&p, seed, (size_t)len, 0, NULL, NULL, NULL, -1, FILTER_NONE);
        int h, s, l;
        color_to_hsl(p.foreign, &h, &s, &l);
        ck_assert_int_ge(l, 90);
        color_to_hsl(p.primary, &h, &s, &l);
        ck_assert(s >= 45 && l >= 40 && l <= 60);
        distinct += hues[h / 10 * 10]++ == 0;
    }
    ck_assert_int_ge(distinct, 20);
    /* angle in hundredths, absent = -1 */
    render_params_init(&p, "s", 1, 3, NULL, NULL, NULL, 12.345, FILTER_NONE);
    ck_assert_int_eq(p.angle_deg100, 1235);
    render_params_init(&p, "s", 1, 3, NULL, NULL, NULL, 360, FILTER_NONE);
    ck_assert_int_eq(p.angle_deg100, 0);
    render_params_init(&p, "s", 1, 3, NULL, NULL, NULL, -1, FILTER_NONE);
    ck_assert_int_eq(p.angle_deg100, -1);
    /* the hash is the seed's SHA-256 */
    uint8_t want[32];
    hash_sha256("seed", 4, want);
    render_params_init(&p, "seed", 4, 0, NULL, NULL, NULL, -1, FILTER_NONE);
    ck_assert_int_eq(memcmp(p.hash, want, 32), 0);
}
END_TEST

/* The gradient runs light -> dark along its angle (CSS: 90 = to the right). */
START_TEST(gradient_angle)
{
    static const struct {
        double angle;
        int dx, dy; /* direction of travel */
    } cases[] = {{90, 1, 0}, {270, -1, 0}, {0, 0, -1}, {180, 0, 1}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        req q = {"angles", "gradient", 64, NULL, NULL, "blue", cases[i].angle, NULL};
        picture p = decode_req(&q, NULL);
        long start = 0, end = 0;
        for (int k = 0; k < 64; k++) {
            int sx = cases[i].dx ? (cases[i].dx > 0 ? 0 : 63) : k;
            int sy = cases[i].dy ? (cases[i].dy > 0 ? 0 : 63) : k;
            int ex = cases[i].dx ? 63 - sx : k, ey = cases[i].dy ? 63 - sy : k;
            start += luma(px(&p, sx, sy));
            end += luma(px(&p, ex, ey));
            /* lines across the direction of travel are one colour */
            ck_assert_uint_eq(px(&p, sx, sy), px(&p, cases[i].dx ? sx : 0, cases[i].dy ? sy : 0));
        }
        ck_assert_msg(start > end + 64 * 40, "angle %g: start %ld end %ld", cases[i].angle,
                      start, end);
        free(p.rgba);
    }
}
END_TEST

/* ---- the CLI ---- */

static char tmp[256], conf[320];

static void cli_setup(void)
{
    sup_tmpdir(tmp, sizeof tmp);
    snprintf(conf, sizeof conf, "%s/empty.ini", tmp);
    sup_write_file(conf, "");
}

static void cli_teardown(void) { sup_rmtree(tmp); }

/* Runs avatarq with args (shell words) in tmp; returns the exit status and
 * the merged output in out. */
static int run_cli(buf *out, const char *args)
{
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "cd '%s' && '%s' -c '%s' %s", tmp, sup_bin("avatarq"), conf, args);
    buf_reset(out);
    return sup_run(cmd, out, true);
}

static const struct {
    const char *args, *error;
} bad_cli[] = {
    {"render", "missing -o FILE"},
    {"render -o a.png", "missing --seed"},
    {"render --seed x", "missing -o FILE"},
    {"render --seed x -o a.png -d dir", "exclude each other"},
    {"render --seed x --seeds s.txt -d dir", "exclude each other"},
    {"render --seeds s.txt -o a.png", "--seeds needs -d DIR"},
    {"render --seed '' -o a.png", "--seed: empty"},
    {"render --seed x --size 15 -o a.png", "--size: 15 is below 16"},
    {"render --seed x --size 99999 -o a.png", "--size: 99999 is above"},
    {"render --seed x --size ten -o a.png", "--size: 'ten' is not an integer"},
    {"render --seed x --sizes 32,64 -o a.png", "-o FILE takes one size"},
    {"render --seed x --style cubist -o a.png", "--style: 'cubist' is not a style"},
    {"render --seed x --primary '#12' -o a.png", "--primary: '#12' is not a colour"},
    {"render --seed x --foreign nocolour -o a.png", "--foreign: 'nocolour' is not a colour"},
    {"render --seed x --scheme plaid -o a.png", "--scheme: 'plaid' is not a colour scheme"},
    {"render --seed x --angle 361 -o a.png", "--angle: 361 is outside 0..360"},
    {"render --seed x --angle north -o a.png", "--angle: 'north' is not a number"},
    {"render --seed x --filter blur -o a.png", "--filter: 'blur' is not a filter"},
    {"render --seed x --id .hidden -o a.png", "--id: '.hidden' is not a valid id"},
    {"render --seed x --queue q -o a.png", "--queue: only for queued jobs"},
    {"render --seed x --bogus -o a.png", "unknown option --bogus"},
    {"render --seed x -o a.png extra", "unexpected argument 'extra'"},
    {"sheet", "missing -o FILE.png"},
    {"sheet -o s.png --size 8", "--size: 8 is below 16"},
    {"schemes extra", "unexpected argument 'extra'"},
};

START_TEST(cli_bad_input)
{
    buf out = BUF_INIT;
    int rc = run_cli(&out, bad_cli[_i].args);
    ck_assert_msg(rc == 2, "'%s' exited %d: %s", bad_cli[_i].args, rc, (char *)out.data);
    ck_assert_msg(strstr((char *)out.data, bad_cli[_i].error) != NULL, "'%s' said: %s",
                  bad_cli[_i].args, (char *)out.data);
    /* one line, and no file left behind */
    ck_assert_msg(strchr((char *)out.data, '\n') == (char *)out.data + out.len - 1,
                  "not one line: %s", (char *)out.data);
    char path[400];
    snprintf(path, sizeof path, "%s/a.png", tmp);
    struct stat st;
    ck_assert_int_ne(stat(path, &st), 0);
    buf_free(&out);
}
END_TEST

/* Runs a shell command line in tmp. */
static int run_sh(buf *out, const char *line)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "cd '%s' && %s", tmp, line);
    buf_reset(out);
    return sup_run(cmd, out, true);
}

static void read_file(const char *path, buf *out)
{
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "%s missing", path);
    buf_reset(out);
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        buf_append(out, chunk, n);
    fclose(f);
}

/* What the worker would store for the same request. */
static void worker_bytes(const char *seed, const char *style, int size, const char *scheme,
                         buf *out)
{
    job_limits l;
    aq_config cfg;
    config_defaults(&cfg);
    aq_err e;
    ck_assert_int_eq(job_limits_from_config(&l, &cfg, &e), 0);
    static job_request r;
    job_init(&r, &l);
    snprintf(r.seed, sizeof r.seed, "%s", seed);
    r.seed_len = strlen(seed);
    r.style = render_style_find(style);
    r.sizes[0] = size;
    r.nsizes = 1;
    snprintf(r.scheme, sizeof r.scheme, "%s", scheme ? scheme : "");
    ck_assert_int_eq(job_finish(&r, &l, &e), 0);
    render_image img = RENDER_IMAGE_INIT;
    ck_assert_int_eq(render_make(&r.render, size, &img), 0);
    buf_reset(out);
    ck_assert_int_eq(pngenc_encode(&img, out, &e), 0);
    render_image_free(&img);
}

START_TEST(cli_render_file_matches_worker)
{
    buf out = BUF_INIT, file = BUF_INIT, want = BUF_INIT;
    ck_assert_int_eq(run_cli(&out, "render --seed 'jo bloggs' --style wave --size 77 "
                                   "--scheme teal -o jo.png"), 0);
    char path[400];
    snprintf(path, sizeof path, "%s/jo.png", tmp);
    read_file(path, &file);
    worker_bytes("jo bloggs", "wave", 77, "teal", &want);
    ck_assert_uint_eq(file.len, want.len);
    ck_assert_int_eq(memcmp(file.data, want.data, want.len), 0);
    /* no temporary file left beside it */
    ck_assert_int_eq(run_sh(&out, "ls"), 0);
    ck_assert_msg(strstr((char *)out.data, "tmp") == NULL, "left: %s", (char *)out.data);
    /* default size 256 */
    ck_assert_int_eq(run_cli(&out, "render --seed x -o x.png"), 0);
    snprintf(path, sizeof path, "%s/x.png", tmp);
    read_file(path, &file);
    worker_bytes("x", "pixel", 256, NULL, &want);
    ck_assert(file.len == want.len && memcmp(file.data, want.data, want.len) == 0);
    buf_free(&out);
    buf_free(&file);
    buf_free(&want);
}
END_TEST

START_TEST(cli_render_batch)
{
    char seeds[400];
    snprintf(seeds, sizeof seeds, "%s/seeds.txt", tmp);
    sup_write_file(seeds, "u1\tfirst seed\n"
                          "\n"
                          "plain seed\r\n"
                          ".bad\tx\n"
                          "u2\t\n"
                          "u3\tthird\n");
    buf out = BUF_INIT, file = BUF_INIT, want = BUF_INIT;
    int rc = run_cli(&out, "render --seeds seeds.txt -d out --sizes 32,48 --style classic");
    ck_assert_msg(rc == 1, "exit %d: %s", rc, (char *)out.data);
    const char *o = (char *)out.data;
    ck_assert_msg(strstr(o, "line 4: id: '.bad'") != NULL, "%s", o);
    ck_assert_msg(strstr(o, "line 5: seed: 0 bytes") != NULL, "%s", o);
    ck_assert_msg(strstr(o, "rendered 3 avatars (6 files)") != NULL, "%s", o);
    ck_assert_msg(strstr(o, "2 failed") != NULL, "%s", o);
    char path[512];
    snprintf(path, sizeof path, "%s/out/u1/48.png", tmp);
    read_file(path, &file);
    worker_bytes("first seed", "classic", 48, NULL, &want);
    ck_assert(file.len == want.len && memcmp(file.data, want.data, want.len) == 0);
    snprintf(path, sizeof path, "%s/out/u3/32.png", tmp);
    read_file(path, &file);
    /* the plain seed lands under its derived id (64 hex digits) */
    ck_assert_int_eq(run_sh(&out, "ls out"), 0);
    int lines = 0, hexname = 0;
    for (char *line = strtok((char *)out.data, "\n"); line; line = strtok(NULL, "\n")) {
        lines++;
        hexname += strlen(line) == 64;
    }
    ck_assert_int_eq(lines, 3);
    ck_assert_int_eq(hexname, 1);
    /* all good lines: exit 0 */
    sup_write_file(seeds, "a\tone\nb\ttwo\n");
    ck_assert_int_eq(run_cli(&out, "render --seeds seeds.txt -d out2 --size 20"), 0);
    buf_free(&out);
    buf_free(&file);
    buf_free(&want);
}
END_TEST

START_TEST(cli_render_unwritable)
{
    buf out = BUF_INIT;
    int rc = run_cli(&out, "render --seed x -o nodir/a.png");
    ck_assert_msg(rc == 1, "exit %d: %s", rc, (char *)out.data);
    ck_assert_msg(strstr((char *)out.data, "nodir/a.png: No such file or directory") != NULL, "%s",
                  (char *)out.data);
    buf_free(&out);
}
END_TEST

START_TEST(cli_render_dir_single)
{
    buf out = BUF_INIT;
    ck_assert_int_eq(run_cli(&out, "render --seed solo --id me -d d --sizes 16,40"), 0);
    ck_assert_msg(strstr((char *)out.data, "d/me/16.png\nd/me/40.png\n") != NULL, "%s",
                  (char *)out.data);
    buf_free(&out);
}
END_TEST

START_TEST(cli_sheet_and_schemes)
{
    buf out = BUF_INIT, file = BUF_INIT;
    ck_assert_int_eq(run_cli(&out, "sheet -o sheet.png --size 32"), 0);
    char path[400];
    snprintf(path, sizeof path, "%s/sheet.png", tmp);
    read_file(path, &file);
    uint8_t *rgba;
    int w, h;
    aq_err e;
    ck_assert_int_eq(pngenc_decode(file.data, file.len, &rgba, &w, &h, &e), 0);
    ck_assert_int_gt(w, 10 * 32);
    ck_assert_int_gt(h, render_style_count() * 32);
    free(rgba);

    ck_assert_int_eq(run_cli(&out, "schemes"), 0);
    size_t n;
    const color_scheme *all = color_schemes(&n);
    size_t lines = 0;
    for (size_t i = 0; i < out.len; i++)
        lines += out.data[i] == '\n';
    ck_assert_uint_eq(lines, n);
    ck_assert_ptr_null(memchr(out.data, '\033', out.len)); /* no colours off a terminal */
    for (size_t i = 0; i < n; i++) {
        char hex[8];
        color_hex(all[i].primary, hex);
        ck_assert_ptr_nonnull(strstr((char *)out.data, all[i].name));
        ck_assert_ptr_nonnull(strstr((char *)out.data, hex));
    }
    buf_free(&out);
    buf_free(&file);
}
END_TEST

int main(void)
{
    emoji_dir_for_tests();
    Suite *s = suite_create("render");
    TCase *tc = tcase_create("styles");
    tcase_set_timeout(tc, 300);
    tcase_add_loop_test(tc, golden, 0, sizeof goldens / sizeof goldens[0]);
    tcase_add_test(tc, pixel_mirror_and_size);
    tcase_add_test(tc, pixel_every_small_size);
    tcase_add_loop_test(tc, bit_depths, 0, sizeof style_depths / sizeof style_depths[0]);
    tcase_add_test(tc, odd_sizes_exact);
    tcase_add_test(tc, classic_symmetry);
    tcase_add_test(tc, scheme_colours_present);
    tcase_add_test(tc, filter_on_pixels);
    tcase_add_test(tc, deterministic_and_varied);
    tcase_add_test(tc, reuses_memory);
    tcase_add_test(tc, refuses_bad_sizes_and_styles);
    tcase_add_test(tc, style_table);
    tcase_add_test(tc, colour_precedence);
    tcase_add_test(tc, gradient_angle);
    suite_add_tcase(s, tc);

    TCase *cli = tcase_create("cli");
    tcase_set_timeout(cli, 300);
    tcase_add_checked_fixture(cli, cli_setup, cli_teardown);
    tcase_add_loop_test(cli, cli_bad_input, 0, sizeof bad_cli / sizeof bad_cli[0]);
    tcase_add_test(cli, cli_render_file_matches_worker);
    tcase_add_test(cli, cli_render_batch);
    tcase_add_test(cli, cli_render_unwritable);
    tcase_add_test(cli, cli_render_dir_single);
    tcase_add_test(cli, cli_sheet_and_schemes);
    suite_add_tcase(s, cli);

    return sup_run_suite(s);
}
