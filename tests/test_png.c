/* test_png: pngenc round trips at every bit depth, the chunks written (no
 * time, smallest depth), byte-identical output, and decoding of broken
 * input without crashing. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pngenc.h"
#include "render.h"
#include "support.h"

/* An indexed test image: index (x*7 + y*3) % ncolors, distinct colours. */
static void make_indexed(render_image *img, int size, int ncolors)
{
    img->size = size;
    img->ncolors = ncolors;
    img->pixels = malloc((size_t)size * size);
    img->cap = (size_t)size * size;
    for (int i = 0; i < ncolors; i++)
        img->palette[i] = (aq_rgb){(uint8_t)i, (uint8_t)(255 - i), (uint8_t)(i * 37)};
    for (int y = 0; y < size; y++)
        for (int x = 0; x < size; x++)
            img->pixels[y * size + x] = (uint8_t)((x * 7 + y * 3) % ncolors);
}

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Appends the chunk types of png to out ("IHDR PLTE IDAT IEND "). */
static void chunk_list(const buf *png, char *out, size_t n)
{
    out[0] = '\0';
    size_t pos = 8;
    while (pos + 12 <= png->len) {
        uint32_t len = be32(png->data + pos);
        size_t used = strlen(out);
        snprintf(out + used, n - used, "%.4s ", (const char *)png->data + pos + 4);
        pos += 12 + len;
    }
}

static const struct {
    int ncolors, depth;
} depths[] = {
    {1, 1}, {2, 1}, {3, 2}, {4, 2}, {5, 4}, {16, 4}, {17, 8}, {200, 8}, {256, 8},
};

START_TEST(indexed_round_trip)
{
    int ncolors = depths[_i].ncolors;
    static const int sizes[] = {16, 17, 33, 100};
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        int size = sizes[s];
        render_image img = RENDER_IMAGE_INIT;
        make_indexed(&img, size, ncolors);
        buf png = BUF_INIT;
        aq_err e;
        ck_assert_int_eq(pngenc_encode(&img, &png, &e), 0);
        ck_assert_int_eq(memcmp(png.data, "\x89PNG\r\n\x1a\n", 8), 0);
        ck_assert_uint_eq(be32(png.data + 16), (uint32_t)size);   /* IHDR width */
        ck_assert_uint_eq(be32(png.data + 20), (uint32_t)size);   /* height */
        ck_assert_int_eq(png.data[24], depths[_i].depth);          /* bit depth */
        ck_assert_int_eq(png.data[25], 3);                         /* palette */
        char chunks[256];
        chunk_list(&png, chunks, sizeof chunks);
        ck_assert_msg(strncmp(chunks, "IHDR PLTE IDAT ", 15) == 0, "chunks: %s", chunks);
        ck_assert_msg(strstr(chunks, "tIME") == NULL, "chunks: %s", chunks);
        ck_assert_msg(strcmp(chunks + strlen(chunks) - 5, "IEND ") == 0, "chunks: %s", chunks);

        uint8_t *rgba;
        int w, h;
        ck_assert_int_eq(pngenc_decode(png.data, png.len, &rgba, &w, &h, &e), 0);
        ck_assert_int_eq(w, size);
        ck_assert_int_eq(h, size);
        /* compare first, assert once: Check records every passing assert */
        int bad = -1;
        for (int i = 0; i < size * size && bad < 0; i++) {
            aq_rgb want = img.palette[img.pixels[i]];
            if (rgba[4 * i] != want.r || rgba[4 * i + 1] != want.g ||
                rgba[4 * i + 2] != want.b || rgba[4 * i + 3] != 255)
                bad = i;
        }
        ck_assert_msg(bad < 0, "pixel %d of %d colours at %d px", bad, ncolors, size);
        free(rgba);
        buf_free(&png);
        render_image_free(&img);
    }
}
END_TEST

START_TEST(truecolour_round_trip)
{
    int size = 37;
    render_image img = RENDER_IMAGE_INIT;
    img.size = size;
    img.pixels = malloc((size_t)size * size * 3);
    for (int i = 0; i < size * size * 3; i++)
        img.pixels[i] = (uint8_t)(i * 31 + i / 7);
    buf png = BUF_INIT;
    aq_err e;
    ck_assert_int_eq(pngenc_encode(&img, &png, &e), 0);
    ck_assert_int_eq(png.data[24], 8);
    ck_assert_int_eq(png.data[25], 2); /* RGB */
    uint8_t *rgba;
    int w, h;
    ck_assert_int_eq(pngenc_decode(png.data, png.len, &rgba, &w, &h, &e), 0);
    ck_assert_int_eq(w, size);
    int same = 1;
    for (int i = 0; i < size * size; i++)
        same &= memcmp(rgba + 4 * i, img.pixels + 3 * i, 3) == 0 && rgba[4 * i + 3] == 255;
    ck_assert(same);
    free(rgba);
    buf_free(&png);
    render_image_free(&img);
}
END_TEST

START_TEST(rgb_not_square)
{
    int w = 40, h = 17;
    uint8_t *rgb = malloc((size_t)w * h * 3);
    for (int i = 0; i < w * h * 3; i++)
        rgb[i] = (uint8_t)(i ^ (i >> 3));
    buf png = BUF_INIT;
    aq_err e;
    ck_assert_int_eq(pngenc_encode_rgb(rgb, w, h, &png, &e), 0);
    uint8_t *rgba;
    int dw, dh;
    ck_assert_int_eq(pngenc_decode(png.data, png.len, &rgba, &dw, &dh, &e), 0);
    ck_assert_int_eq(dw, w);
    ck_assert_int_eq(dh, h);
    int same = 1;
    for (int i = 0; i < w * h; i++)
        same &= memcmp(rgba + 4 * i, rgb + 3 * i, 3) == 0;
    ck_assert(same);
    ck_assert_int_eq(pngenc_encode_rgb(rgb, 0, h, &png, &e), AQ_EPERM);
    free(rgba);
    free(rgb);
    buf_free(&png);
}
END_TEST

START_TEST(same_input_same_bytes)
{
    render_image img = RENDER_IMAGE_INIT;
    make_indexed(&img, 64, 13);
    buf a = BUF_INIT, b = BUF_INIT;
    aq_err e;
    ck_assert_int_eq(pngenc_encode(&img, &a, &e), 0);
    pngenc_release(); /* a fresh allocation must not change the bytes */
    ck_assert_int_eq(pngenc_encode(&img, &b, &e), 0);
    ck_assert_uint_eq(a.len, b.len);
    ck_assert_int_eq(memcmp(a.data, b.data, a.len), 0);
    /* encode appends: a second image after the first leaves the first intact */
    size_t first = a.len;
    ck_assert_int_eq(pngenc_encode(&img, &a, &e), 0);
    ck_assert_uint_eq(a.len, 2 * first);
    ck_assert_int_eq(memcmp(a.data, a.data + first, first), 0);
    /* and one changed pixel changes the bytes */
    img.pixels[100] = (uint8_t)((img.pixels[100] + 1) % 13);
    buf_reset(&b);
    ck_assert_int_eq(pngenc_encode(&img, &b, &e), 0);
    ck_assert(b.len != first || memcmp(a.data, b.data, first) != 0);
    buf_free(&a);
    buf_free(&b);
    render_image_free(&img);
}
END_TEST

START_TEST(refuses_bad_images)
{
    render_image img = RENDER_IMAGE_INIT;
    buf png = BUF_INIT;
    aq_err e;
    ck_assert_int_eq(pngenc_encode(&img, &png, &e), AQ_EPERM); /* no pixels, size 0 */
    ck_assert(strlen(e.msg) > 0);
    make_indexed(&img, 16, 4);
    img.ncolors = 257;
    ck_assert_int_eq(pngenc_encode(&img, &png, &e), AQ_EPERM);
    ck_assert_ptr_nonnull(strstr(e.msg, "257"));
    ck_assert_uint_eq(png.len, 0);
    render_image_free(&img);
    buf_free(&png);
}
END_TEST

/* A valid small PNG to break in various ways. */
static void sample(buf *png)
{
    render_image img = RENDER_IMAGE_INIT;
    make_indexed(&img, 24, 6);
    aq_err e;
    ck_assert_int_eq(pngenc_encode(&img, png, &e), 0);
    render_image_free(&img);
}

static void expect_refused(const uint8_t *data, size_t len, const char *what)
{
    uint8_t *rgba = (uint8_t *)1;
    int w = -1, h = -1;
    aq_err e;
    err_clear(&e);
    int rc = pngenc_decode(data, len, &rgba, &w, &h, &e);
    if (rc == 0) {
        free(rgba); /* libpng may accept some damage (e.g. in ancillary bits) */
        return;
    }
    ck_assert_msg(rc == AQ_EPERM, "%s: rc %d", what, rc);
    ck_assert_msg(rgba == NULL, "%s: output left set", what);
    ck_assert_msg(strlen(e.msg) > 0, "%s: no message", what);
}

START_TEST(decode_garbage)
{
    uint8_t *rgba;
    int w, h;
    aq_err e;
    ck_assert_int_eq(pngenc_decode((const uint8_t *)"", 0, &rgba, &w, &h, &e), AQ_EPERM);
    ck_assert_int_eq(pngenc_decode((const uint8_t *)"hello, world", 12, &rgba, &w, &h, &e),
                     AQ_EPERM);
    ck_assert_ptr_null(rgba);
    buf png = BUF_INIT;
    sample(&png);
    /* every truncation of a valid file is refused, never a crash */
    for (size_t n = 0; n < png.len - 12; n++) {
        ck_assert_int_eq(pngenc_decode(png.data, n, &rgba, &w, &h, &e), AQ_EPERM);
        ck_assert_ptr_null(rgba);
    }
    /* flipped bytes anywhere: refused or decoded, never a crash */
    for (size_t i = 0; i < png.len; i++) {
        png.data[i] ^= 0x5a;
        expect_refused(png.data, png.len, "flipped byte");
        png.data[i] ^= 0x5a;
    }
    buf_free(&png);
}
END_TEST

/* PNG's CRC-32 (bitwise; zlib is not linked into the tests). */
static uint32_t crc32_png(const uint8_t *p, size_t n)
{
    uint32_t c = 0xffffffffu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++)
            c = c & 1 ? 0xedb88320u ^ (c >> 1) : c >> 1;
    }
    return c ^ 0xffffffffu;
}

/* Replaces IHDR's width/height and fixes its CRC, so only the size is bad. */
static void set_dimensions(buf *png, uint32_t w, uint32_t h)
{
    uint8_t *ihdr = png->data + 8;
    for (int i = 0; i < 4; i++) {
        ihdr[8 + i] = (uint8_t)(w >> (24 - 8 * i));
        ihdr[12 + i] = (uint8_t)(h >> (24 - 8 * i));
    }
    uint32_t crc = crc32_png(ihdr + 4, 17);
    for (int i = 0; i < 4; i++)
        ihdr[21 + i] = (uint8_t)(crc >> (24 - 8 * i));
}

START_TEST(decode_huge_header)
{
    buf png = BUF_INIT;
    sample(&png);
    set_dimensions(&png, 100000, 100000);
    uint8_t *rgba;
    int w, h;
    aq_err e;
    ck_assert_int_eq(pngenc_decode(png.data, png.len, &rgba, &w, &h, &e), AQ_EPERM);
    ck_assert_ptr_null(rgba);
    /* a plausible size that the data does not fill is refused too */
    set_dimensions(&png, 2000, 2000);
    ck_assert_int_eq(pngenc_decode(png.data, png.len, &rgba, &w, &h, &e), AQ_EPERM);
    ck_assert_ptr_null(rgba);
    buf_free(&png);
}
END_TEST

/* Palette entries with alpha become a tRNS chunk listing entries up to the
 * last one that is not opaque; the decoded alpha is the entry's. */
START_TEST(indexed_alpha_round_trip)
{
    render_image img = RENDER_IMAGE_INIT;
    make_indexed(&img, 40, 6);
    img.has_alpha = true;
    static const uint8_t alpha[6] = {0, 128, 255, 17, 255, 255};
    memcpy(img.alpha, alpha, sizeof alpha);
    buf png = BUF_INIT;
    aq_err e;
    ck_assert_int_eq(pngenc_encode(&img, &png, &e), 0);
    char chunks[128];
    chunk_list(&png, chunks, sizeof chunks);
    ck_assert_str_eq(chunks, "IHDR PLTE tRNS IDAT IEND ");
    /* signature 8, IHDR 12 + 13, PLTE 12 + 18: then the tRNS length */
    ck_assert_uint_eq(be32(png.data + 8 + 25 + 30), 4); /* entries 0..3 */
    uint8_t *rgba;
    int w, h;
    ck_assert_int_eq(pngenc_decode(png.data, png.len, &rgba, &w, &h, &e), 0);
    for (int i = 0; i < 40 * 40; i++)
        ck_assert_int_eq(rgba[i * 4 + 3], alpha[img.pixels[i]]);
    free(rgba);
    buf_free(&png);
    render_image_free(&img);
}
END_TEST

/* RGBA pictures (emoji after rounding) keep every byte, alpha included. */
START_TEST(rgba_round_trip)
{
    render_image img = RENDER_IMAGE_INIT;
    img.size = 33;
    img.has_alpha = true;
    img.pixels = malloc(33 * 33 * 4);
    img.cap = 33 * 33 * 4;
    for (int i = 0; i < 33 * 33 * 4; i++)
        img.pixels[i] = (uint8_t)(i * 31 + i / 7);
    buf png = BUF_INIT;
    aq_err e;
    ck_assert_int_eq(pngenc_encode(&img, &png, &e), 0);
    ck_assert_int_eq(png.data[25], 6); /* colour type RGBA */
    uint8_t *rgba;
    int w, h;
    ck_assert_int_eq(pngenc_decode(png.data, png.len, &rgba, &w, &h, &e), 0);
    ck_assert_int_eq(memcmp(rgba, img.pixels, 33 * 33 * 4), 0);
    free(rgba);
    buf_free(&png);
    render_image_free(&img);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("png");
    TCase *tc = tcase_create("png");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, indexed_round_trip, 0, sizeof depths / sizeof depths[0]);
    tcase_add_test(tc, truecolour_round_trip);
    tcase_add_test(tc, indexed_alpha_round_trip);
    tcase_add_test(tc, rgba_round_trip);
    tcase_add_test(tc, rgb_not_square);
    tcase_add_test(tc, same_input_same_bytes);
    tcase_add_test(tc, refuses_bad_images);
    tcase_add_test(tc, decode_garbage);
    tcase_add_test(tc, decode_huge_header);
    suite_add_tcase(s, tc);
    int rc = sup_run_suite(s);
    pngenc_release();
    return rc;
}
