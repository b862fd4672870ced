/* avatarq-http with [storage] backend = s3: stored avatars come from the
 * signature-checking S3 test server through the server (streamed, not
 * redirected), with the recorded SHA-256 as ETag and 304s, the same bytes
 * /render gives; WebP and SVG avatars at the paths their format implies,
 * with their types; an unknown size or the wrong format is 404; the S3
 * server down is 503 naming the storage while /render still works. */
#include <check.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hash.h"
#include "support_http.h"
#include "support_s3.h"

static hx H;
static sup_s3 *S3;
static char s3conf[768];

static void setup(void)
{
    sup_kill_listed(getppid());
    hx_prepare(&H);
    S3 = sup_s3_new();
    sup_s3_start(S3, "avatars");
    hx_track_dir(S3->dir);
    snprintf(s3conf, sizeof s3conf,
             "[storage.s3]\nendpoint = %s\nregion = " SUP_S3_REGION "\nbucket = avatars\n"
             "access_key = " SUP_S3_KEY "\nsecret_key = " SUP_S3_SECRET "\npath_style = true\n"
             "timeout_ms = 3000\nretries = 1\n",
             S3->endpoint);
    H.w.backend = "s3";
    H.sections = s3conf;
    hx_start(&H, NULL);
}

static void teardown(void)
{
    hx_teardown(&H);
    sup_s3_free(S3);
    S3 = NULL;
}

START_TEST(t_s3_images)
{
    wh_start(&H.w, NULL);
    ck_assert(wh_wait_int(&H.w, 1, 20000, "SCARD " WH_NS ":workers"));
    hx_resp r;
    ck_assert_int_eq(hx_req(&H, &r, "POST", "/v1/jobs?wait=1&timeout=60",
                            "{\"id\":\"s3-1\",\"seed\":\"dora\",\"style\":\"classic\",\"sizes\":[64]}",
                            HX_AUTH, NULL), 200);
    hx_free(&r);
    ck_assert_int_eq(hx_req(&H, &r, "GET", "/v1/avatars/s3-1", NULL, HX_AUTH, NULL), 200);
    json_t *row = hx_json(&r);
    ck_assert_str_eq(json_string_value(json_object_get(row, "storage")), "s3");
    char etag[80];
    snprintf(etag, sizeof etag, "\"%s\"",
             json_string_value(json_object_get(json_object_get(row, "sha256"), "64")));
    json_decref(row);
    hx_free(&r);

    hx_resp img, ren;
    ck_assert_int_eq(hx_req(&H, &img, "GET", "/avatars/s3-1/64.png", NULL, NULL), 200);
    ck_assert_str_eq(hx_header(&img, "ETag"), etag);
    ck_assert_str_eq(hx_header(&img, "Cache-Control"), "public, max-age=31536000, immutable");
    ck_assert_ptr_nonnull(hx_header(&img, "Last-Modified"));
    ck_assert_int_eq(hx_req(&H, &ren, "GET", "/render/classic/dora.png?size=64", NULL, NULL), 200);
    ck_assert_uint_eq(img.body.len, ren.body.len);
    ck_assert(memcmp(img.body.data, ren.body.data, img.body.len) == 0);
    hx_free(&img);
    hx_free(&ren);
    char inm[120];
    snprintf(inm, sizeof inm, "If-None-Match: %s", etag);
    ck_assert_int_eq(hx_req(&H, &r, "GET", "/avatars/s3-1/64.png", NULL, inm, NULL), 304);
    hx_free(&r);
    ck_assert_int_eq(hx_req(&H, &r, "GET", "/avatars/s3-1/128.png", NULL, NULL), 404);
    hx_free(&r);

    /* WebP and SVG: the object whose digest the row recorded, typed */
    static const struct {
        const char *doc, *id, *size, *url, *type, *wrong, *says;
    } fmts[] = {
        {"{\"id\":\"s3-w\",\"seed\":\"eve\",\"style\":\"wave\",\"format\":\"webp\",\"sizes\":[64]}", "s3-w",
         "64", "/avatars/s3-w/64.webp", "image/webp", "/avatars/s3-w/64.png",
         "avatar s3-w is stored as webp, not png: GET /avatars/s3-w/64.webp"},
        {"{\"id\":\"s3-s\",\"seed\":\"eve\",\"style\":\"pixel\",\"format\":\"svg\",\"sizes\":[64,96]}", "s3-s",
         "96", "/avatars/s3-s/avatar.svg", "image/svg+xml", "/avatars/s3-s/96.webp",
         "avatar s3-s is stored as svg, not webp: GET /avatars/s3-s/avatar.svg"},
    };
    for (size_t i = 0; i < sizeof fmts / sizeof *fmts; i++) {
        ck_assert_int_eq(hx_req(&H, &r, "POST", "/v1/jobs?wait=1&timeout=60", fmts[i].doc, HX_AUTH, NULL), 200);
        hx_free(&r);
        char path[100], hex[65];
        snprintf(path, sizeof path, "/v1/avatars/%s", fmts[i].id);
        ck_assert_int_eq(hx_req(&H, &r, "GET", path, NULL, HX_AUTH, NULL), 200);
        row = hx_json(&r);
        snprintf(etag, sizeof etag, "\"%s\"",
                 json_string_value(json_object_get(json_object_get(row, "sha256"), fmts[i].size)));
        ck_assert_str_eq(json_string_value(json_object_get(json_object_get(row, "urls"), fmts[i].size)), fmts[i].url);
        json_decref(row);
        hx_free(&r);
        ck_assert_int_eq(hx_req(&H, &img, "GET", fmts[i].url, NULL, NULL), 200);
        ck_assert_str_eq(hx_header(&img, "Content-Type"), fmts[i].type);
        ck_assert_str_eq(hx_header(&img, "X-Content-Type-Options"), "nosniff");
        ck_assert_str_eq(hx_header(&img, "ETag"), etag);
        hash_sha256_hex(img.body.data, img.body.len, hex);
        ck_assert_msg(strncmp(etag + 1, hex, 64) == 0, "%s: body digest %s, ETag %s", fmts[i].url, hex, etag);
        bool svg = strcmp(fmts[i].type, "image/svg+xml") == 0;
        const char *csp = hx_header(&img, "Content-Security-Policy");
        ck_assert_msg(svg ? csp && strcmp(csp, "default-src 'none'; style-src 'unsafe-inline'") == 0 : !csp,
                      "%s: CSP %s", fmts[i].url, csp ? csp : "(none)");
        hx_free(&img);
        ck_assert_int_eq(hx_req(&H, &r, "GET", fmts[i].wrong, NULL, NULL), 404);
        ck_assert_msg(strstr(hx_error(&r), fmts[i].says), "%s: %s", fmts[i].wrong, hx_error(&r));
        hx_free(&r);
    }

    /* the S3 server gone: 503 naming the storage; renders go on */
    ck_assert(wh_stop(&H.w, SIGTERM, 30000) != -1);
    sup_s3_stop(S3);
    ck_assert_int_eq(hx_req(&H, &r, "GET", "/avatars/s3-1/64.png", NULL, NULL), 503);
    ck_assert_msg(strstr(hx_error(&r), "storage"), "%s", hx_error(&r));
    hx_free(&r);
    ck_assert_int_eq(hx_req(&H, &r, "GET", "/render/classic/dora.png?size=64", NULL, NULL), 200);
    hx_free(&r);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("http_s3");
    TCase *tc = tcase_create("http_s3");
    tcase_add_unchecked_fixture(tc, NULL, hx_reap_strays);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 180);
    tcase_add_test(tc, t_s3_images);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return sup_run_suite(suite());
}
