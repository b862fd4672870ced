/* bin/avatarq-http end to end: a real server process, real HTTP requests
 * (libcurl), a real Redis and worker fleet where jobs must run. Stored
 * images with their caching headers and 304s, /render giving the stored
 * bytes, the JSON API, auth, CORS, limits, timeouts, Redis down, and
 * /metrics checked by promtool. */
#include <arpa/inet.h>
#include <check.h>
#include <jansson.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "emoji.h"
#include "pngenc.h"
#include "support_http.h"

static hx H;

static void setup(void)
{
    hx_setup(&H, "cors_origins = https://app.example\n");
}

static void teardown(void)
{
    hx_teardown(&H);
}

static void start_workers(void)
{
    wh_start(&H.w, NULL);
    ck_assert_msg(wh_wait_int(&H.w, 1, 20000, "SCARD " WH_NS ":workers"), "workers did not register");
}

/* POST /v1/jobs?wait=1 with doc; asserts it is done and returns its id. */
static void post_and_wait(const char *doc, char id[65])
{
    hx_resp r;
    ck_assert_int_eq(hx_req(&H, &r, "POST", "/v1/jobs?wait=1&timeout=60", doc, HX_AUTH, NULL), 200);
    json_t *j = hx_json(&r);
    json_t *job = json_array_get(json_object_get(j, "jobs"), 0);
    ck_assert_str_eq(json_string_value(json_object_get(job, "state")), "done");
    snprintf(id, 65, "%s", json_string_value(json_array_get(json_object_get(j, "ids"), 0)));
    json_decref(j);
    hx_free(&r);
}

/* ---- images ---- */

START_TEST(t_stored_avatar_caching)
{
    start_workers();
    char id[65], path[512], url[256];
    post_and_wait("{\"id\":\"user-1\",\"seed\":\"alice\",\"sizes\":[64,128]}", id);
    ck_assert_str_eq(id, "user-1");

    /* the recorded digest, from the API */
    hx_resp r;
    ck_assert_int_eq(hx_req(&H, &r, "GET", "/v1/avatars/user-1", NULL, HX_AUTH, NULL), 200);
    json_t *row = hx_json(&r);
    char want_etag[80];
    snprintf(want_etag, sizeof want_etag, "\"%s\"",
             json_string_value(json_object_get(json_object_get(row, "sha256"), "128")));
    ck_assert_str_eq(json_string_value(json_object_get(json_object_get(row, "urls"), "128")),
                     "/avatars/user-1/128.png");
    json_decref(row);
    hx_free(&r);

    /* the image: the file's bytes, with its caching headers (no token needed) */
    ck_assert_int_eq(hx_req(&H, &r, "GET", "/avatars/user-1/128.png", NULL, NULL), 200);
    wh_png_path(&H.w, "user-1", 128, path, sizeof path);
    buf file = BUF_INIT;
    ck_assert(sup_read_file(path, &file));
    ck_assert_uint_eq(r.body.len, file.len);
    ck_assert(memcmp(r.body.data, file.data, file.len) == 0);
    ck_assert_str_eq(hx_header(&r, "Content-Type"), "image/png");
    ck_assert_str_eq(hx_header(&r, "ETag"), want_etag);
    ck_assert_str_eq(hx_header(&r, "Cache-Control"), "public, max-age=31536000, immutable");
    char lm[80];
    ck_assert_ptr_nonnull(hx_header(&r, "Last-Modified"));
    snprintf(lm, sizeof lm, "%s", hx_header(&r, "Last-Modified"));
    hx_free(&r);

    /* conditional requests */
    char inm[120], ims[120];
    snprintf(inm, sizeof inm, "If-None-Match: \"nope\", %s", want_etag);
    snprintf(ims, sizeof ims, "If-Modified-Since: %s", lm);
    ck_assert_int_eq(hx_req(&H, &r, "GET", "/avatars/user-1/128.png", NULL, inm, NULL), 304);
    ck_assert_uint_eq(r.body.len, 0);
    ck_assert_str_eq(hx_header(&r, "ETag"), want_etag);
    hx_free(&r);
    ck_assert_int_eq(hx_req(&H, &r, "GET", "/avatars/user-1/128.png", NULL, ims, NULL), 304);
    hx_free(&r);
    ck_assert_int_eq(hx_req(&H, &r, "GET", "/avatars/user-1/128.png", NULL,
                            "If-None-Match: \"other\"", ims, NULL), 200); /* INM decides */
    hx_free(&r);
    ck_assert_int_eq(hx_req(&H, &r, "GET", "/avatars/user-1/128.png", NULL,
                            "If-Modified-Since: Mon, 01 Jan 2001 00:00:00 GMT", NULL), 200);
    hx_free(&r);

    /* HEAD: headers, no body */
    ck_assert_int_eq(hx_req(&H, &r, "HEAD", "/avatars/user-1/128.png", NULL, NULL), 200);
    snprintf(url, sizeof url, "%zu", file.len);
    ck_assert_str_eq(hx_header(&r, "Content-Length"), url);
    ck_assert_uint_eq(r.body.len, 0);
    hx_free(&r);

    /* unknown id or size: JSON 404; bad id or size: 400 naming it */
    ck_assert_int_eq(hx_req(&H, &r, "GET", "/avatars/nobody/128.png", NULL, NULL), 404);
    ck_assert_ptr_nonnull(strstr(hx_error(&r), "nobody"));
    hx_free(&r);
    ck_assert_int_eq(hx_req(&H, &r, "GET", "/avatars/user-1/256.png", NULL, NULL), 404);
    hx_free(&r);
    ck_assert_int_eq(hx_req(&H, &r, "GET", "/avatars/user-1/9.png", NULL, NULL), 400);
    ck_assert_msg(strncmp(hx_error(&r), "size:", 5) == 0, "%s", hx_error(&r));
    hx_free(&r);
    ck_assert_int_eq(hx_req(&H, &r, "GET", "/avatars/user-1/12x.png", NULL, NULL), 400);
    hx_free(&r);
    ck_assert_int_eq(hx_req(&H, &r, "GET", "/avatars/.hidden/64.png", NULL, NULL), 400);
    ck_assert_msg(strncmp(hx_error(&r), "id:", 3) == 0, "%s", hx_error(&r));
    hx_free(&r);
    /* traversal, raw and percent-encoded: never a file outside the root */
    sup_write_file("/tmp/aq-http-secret.png", "TOPSECRET-BYTES");
    static const char *const evil[] = {
        "/avatars/..%2F..%2F..%2F..%2F..%2F..%2Ftmp%2Faq-http-secret/64.png",
        "/avatars/../../../../../../tmp/aq-http-secret/64.png",
        "/avatars/%2E%2E/64.png",
    };
    for (size_t i = 0; i < sizeof evil / sizeof *evil; i++) {
        long st = hx_req(&H, &r, "GET", evil[i], NULL, NULL);
        ck_assert_msg(st == 400 || st == 404, "%s: %ld", evil[i], st);
        ck_assert_ptr_null(strstr((const char *)r.body.data, "TOPSECRET"));
        hx_free(&r);
    }
    unlink("/tmp/aq-http-secret.png");

    /* the same id made again from another seed: new bytes, new ETag, at once */
    post_and_wait("{\"id\":\"user-1\",\"seed\":\"bob\",\"sizes\":[64,128]}", id);
    ck_assert(sup_read_file(path, &file));
    ck_assert_int_eq(hx_req(&H, &r, "GET", "/avatars/user-1/128.png", NULL, NULL), 200);
    ck_assert_uint_eq(r.body.len, file.len);
    ck_assert(memcmp(r.body.data, file.data, file.len) == 0);
    ck_assert_str_ne(hx_header(&r, "ETag"), want_etag);
    hx_free(&r);
    ck_assert_int_eq(hx_req(&H, &r, "GET", "/avatars/user-1/128.png", NULL, inm, NULL), 200);
    hx_free(&r);
    /* removed behind the server's back: 404, not the cached file */
    ck_assert_int_eq(unlink(path), 0);
    ck_assert_int_eq(hx_req(&H, &r, "GET", "/avatars/user-1/128.png", NULL, NULL), 404);
    hx_free(&r);
    buf_free(&file);
}
END_TEST

/* The URL of a stored avatar follows the format it was made in: WebP at
 * /avatars/ID/SIZE.webp, SVG at /avatars/ID/avatar.svg (one file for every
 * size), each with its type; asking with the wrong format or size names
 * the right URL. The bytes are the worker's files, and decode (dwebp) or
 * parse and draw (librsvg). avatarq get finds both too. */
static void save(const char *path, const hx_resp *r)
{
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(r->body.data, 1, r->body.len, f), r->body.len);
    fclose(f);
}

/* GET path: 200, the bytes of the stored file, the type and headers. */
static void get_stored(const char *path, const char *file, const char *type, hx_resp *r)
{
    ck_assert_int_eq(hx_req(&H, r, "GET", path, NULL, NULL), 200);
    buf want = BUF_INIT;
    ck_assert_msg(sup_read_file(file, &want), "%s not stored", file);
    ck_assert_uint_eq(r->body.len, want.len);
    ck_assert(memcmp(r->body.data, want.data, want.len) == 0);
    buf_free(&want);
    ck_assert_str_eq(hx_header(r, "Content-Type"), type);
    ck_assert_str_eq(hx_header(r, "X-Content-Type-Options"), "nosniff");
    ck_assert_str_eq(hx_header(r, "Cache-Control"), "public, max-age=31536000, immutable");
}

/* A 404 whose message holds want. */
static void missing(const char *path, const char *want)
{
    hx_resp r;
    ck_assert_int_eq(hx_req(&H, &r, "GET", path, NULL, NULL), 404);
    ck_assert_msg(strstr(hx_error(&r), want), "%s: '%s' lacks '%s'", path, hx_error(&r), want);
    hx_free(&r);
}

/* The API row's url and digest for size. */
static void api_row(const char *id, const char *size, char url[128], char etag[80])
{
    hx_resp r;
    char path[128];
    snprintf(path, sizeof path, "/v1/avatars/%s", id);
    ck_assert_int_eq(hx_req(&H, &r, "GET", path, NULL, HX_AUTH, NULL), 200);
    json_t *row = hx_json(&r);
    snprintf(url, 128, "%s", json_string_value(json_object_get(json_object_get(row, "urls"), size)));
    snprintf(etag, 80, "\"%s\"", json_string_value(json_object_get(json_object_get(row, "sha256"), size)));
    json_decref(row);
    hx_free(&r);
}

START_TEST(t_stored_webp_and_svg)
{
    start_workers();
    char id[65], file[512], url[128], etag[80], inm[120], cmd[1400];
    hx_resp r;
    buf out = BUF_INIT;

    /* WebP */
    post_and_wait("{\"id\":\"w1\",\"seed\":\"alice\",\"style\":\"wave\",\"format\":\"webp\",\"sizes\":[64,128]}", id);
    api_row("w1", "128", url, etag);
    ck_assert_str_eq(url, "/avatars/w1/128.webp");
    snprintf(file, sizeof file, "%s/avatars/w1/128.webp", H.w.root);
    get_stored(url, file, "image/webp", &r);
    ck_assert_str_eq(hx_header(&r, "ETag"), etag);
    ck_assert_ptr_null(strstr(r.headers, "Content-Security-Policy"));
    char got[600], png[600];
    snprintf(got, sizeof got, "%s/got.webp", H.w.dir);
    snprintf(png, sizeof png, "%s/got.png", H.w.dir);
    save(got, &r);
    hx_free(&r);
    snprintf(cmd, sizeof cmd, "dwebp -quiet '%s' -o '%s'", got, png);
    ck_assert_int_eq(sup_run(cmd, &out, true), 0);
    ck_assert(sup_read_file(png, &out));
    uint8_t *rgba;
    int w, h;
    aq_err e;
    err_clear(&e);
    ck_assert_msg(pngenc_decode(out.data, out.len, &rgba, &w, &h, &e) == 0, "%s", e.msg);
    ck_assert_int_eq(w, 128);
    ck_assert_int_eq(h, 128);
    free(rgba);
    snprintf(inm, sizeof inm, "If-None-Match: %s", etag);
    ck_assert_int_eq(hx_req(&H, &r, "GET", url, NULL, inm, NULL), 304);
    hx_free(&r);
    ck_assert_int_eq(hx_req(&H, &r, "HEAD", "/avatars/w1/64.webp", NULL, NULL), 200);
    ck_assert_str_eq(hx_header(&r, "Content-Type"), "image/webp");
    ck_assert_uint_eq(r.body.len, 0);
    hx_free(&r);
    /* the wrong format or size: 404 naming what is stored and where */
    missing("/avatars/w1/128.png", "avatar w1 is stored as webp, not png: GET /avatars/w1/128.webp");
    missing("/avatars/w1/avatar.svg", "avatar w1 is stored as webp, not svg: GET /avatars/w1/64.webp");
    missing("/avatars/w1/256.webp", "no avatar w1 at size 256 (sizes stored: [64,128]");

    /* SVG: one file for every size, at avatar.svg */
    post_and_wait("{\"id\":\"s1\",\"seed\":\"bob\",\"style\":\"pixel\",\"format\":\"svg\",\"radius\":20,"
                  "\"sizes\":[64,128]}", id);
    api_row("s1", "64", url, etag);
    ck_assert_str_eq(url, "/avatars/s1/avatar.svg");
    snprintf(file, sizeof file, "%s/avatars/s1/avatar.svg", H.w.root);
    get_stored(url, file, "image/svg+xml", &r);
    ck_assert_str_eq(hx_header(&r, "Content-Security-Policy"), "default-src 'none'; style-src 'unsafe-inline'");
    ck_assert_str_eq(hx_header(&r, "ETag"), etag);
    ck_assert_ptr_nonnull(strstr((const char *)r.body.data, "<svg"));
    uint8_t *pm = NULL;
    char why[256];
    ck_assert_msg(emoji_svg_draw(r.body.data, r.body.len, 64, &pm, why, sizeof why) == 0, "svg: %s", why);
    int ink = 0;
    for (int i = 0; i < 64 * 64; i++)
        ink += pm[4 * i + 3] == 255;
    free(pm);
    ck_assert_int_gt(ink, 64 * 64 / 2); /* drawn: an opaque picture with rounded corners */
    snprintf(got, sizeof got, "%s/got.svg", H.w.dir);
    save(got, &r);
    hx_free(&r);
    snprintf(cmd, sizeof cmd, "xmllint --noout '%s'", got);
    ck_assert_int_eq(sup_run(cmd, &out, true), 0);
    snprintf(inm, sizeof inm, "If-None-Match: %s", etag);
    ck_assert_int_eq(hx_req(&H, &r, "GET", url, NULL, inm, NULL), 304);
    hx_free(&r);
    missing("/avatars/s1/64.png", "avatar s1 is stored as svg, not png: GET /avatars/s1/avatar.svg");
    missing("/avatars/s1/64.webp", "avatar s1 is stored as svg, not webp: GET /avatars/s1/avatar.svg");
    /* a PNG avatar asked as SVG, and an id nobody made */
    post_and_wait("{\"id\":\"p1\",\"seed\":\"carol\",\"sizes\":[64]}", id);
    missing("/avatars/p1/avatar.svg", "avatar p1 is stored as png, not svg: GET /avatars/p1/64.png");
    missing("/avatars/nobody/avatar.svg", "no avatar nobody");
    missing("/avatars/nobody/64.webp", "no avatar nobody at size 64");
    ck_assert_int_eq(hx_req(&H, &r, "GET", "/avatars/.x/avatar.svg", NULL, NULL), 400);
    hx_free(&r);

    /* avatarq get follows the stored format as well */
    snprintf(got, sizeof got, "%s/cli.out", H.w.dir);
    static const struct {
        const char *id, *size, *file;
    } gets[] = {{"w1", "128", "w1/128.webp"}, {"s1", "64", "s1/avatar.svg"}};
    for (size_t i = 0; i < sizeof gets / sizeof *gets; i++) {
        snprintf(cmd, sizeof cmd, "'%s' -c '%s' get %s --size %s -o '%s'", sup_bin("avatarq"), H.w.cfg, gets[i].id,
                 gets[i].size, got);
        ck_assert_int_eq(sup_run(cmd, &out, true), 0);
        buf a = BUF_INIT, b = BUF_INIT;
        snprintf(file, sizeof file, "%s/avatars/%s", H.w.root, gets[i].file);
        ck_assert(sup_read_file(got, &a) && sup_read_file(file, &b));
        ck_assert(a.len == b.len && memcmp(a.data, b.data, a.len) == 0);
        buf_free(&a), buf_free(&b);
    }
    buf_free(&out);
}
END_TEST

START_TEST(t_render_same_bytes_as_stored)
{
    start_workers();
    char id[65], path[512];
    post_and_wait("{\"id\":\"r1\",\"seed\":\"carol\",\"style\":\"gradient\",\"sizes\":[96],"
                  "\"scheme\":\"ocean\",\"angle\":45,\"filter\":\"sepia\"}", id);
    wh_png_path(&H.w, "r1", 96, path, sizeof path);
    buf file = BUF_INIT;
    ck_assert(sup_read_file(path, &file));

    /* the same options by URL: the same bytes, no token, no Redis needed */
    hx_resp r;
    const char *url = "/render/gradient/carol.png?size=96&scheme=ocean&angle=45&filter=sepia";
    ck_assert_int_eq(hx_req(&H, &r, "GET", url, NULL, NULL), 200);
    ck_assert_uint_eq(r.body.len, file.len);
    ck_assert(memcmp(r.body.data, file.data, file.len) == 0);
    ck_assert_str_eq(hx_header(&r, "Content-Type"), "image/png");
    ck_assert_str_eq(hx_header(&r, "Cache-Control"), "public, max-age=31536000, immutable");
    char etag[80], inm[120];
    snprintf(etag, sizeof etag, "%s", hx_header(&r, "ETag"));
    ck_assert_uint_eq(strlen(etag), 66);
    hx_free(&r);
    snprintf(inm, sizeof inm, "If-None-Match: %s", etag);
    ck_assert_int_eq(hx_req(&H, &r, "GET", url, NULL, inm, NULL), 304);
    hx_free(&r);
    /* another option, another validator */
    ck_assert_int_eq(hx_req(&H, &r, "GET", "/render/gradient/carol.png?size=96&scheme=ocean&angle=46&filter=sepia",
                            NULL, inm, NULL), 200);
    ck_assert_str_ne(hx_header(&r, "ETag"), etag);
    hx_free(&r);
    /* a seed with a slash and a space, percent-encoded */
    ck_assert_int_eq(hx_req(&H, &r, "GET", "/render/pixel/a%2Fb%20c.png", NULL, NULL), 200);
    ck_assert_uint_gt(r.body.len, 8);
    hx_free(&r);

    /* bad options: 400 naming the field */
    static const struct {
        const char *url, *field;
    } bad[] = {
        {"/render/pixel/x.png?size=8", "size:"},
        {"/render/pixel/x.png?size=abc", "size:"},
        {"/render/pixel/x.png?size=99999", "size:"},
        {"/render/nope/x.png", "style:"},
        {"/render/pixel/x.png?primary=notacolour", "primary:"},
        {"/render/pixel/x.png?foreign=%23ggg", "foreign:"},
        {"/render/pixel/x.png?scheme=plaid", "scheme:"},
        {"/render/gradient/x.png?angle=400", "angle:"},
        {"/render/gradient/x.png?angle=east", "angle:"},
        {"/render/pixel/x.png?filter=blur", "filter:"},
        {"/render/pixel/x.png?colour=red", "colour:"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        ck_assert_int_eq(hx_req(&H, &r, "GET", bad[i].url, NULL, NULL), 400);
        ck_assert_msg(strncmp(hx_error(&r), bad[i].field, strlen(bad[i].field)) == 0,
                      "%s: '%s' does not start with %s", bad[i].url, hx_error(&r), bad[i].field);
        hx_free(&r);
    }
    buf_free(&file);
}
END_TEST

/* ---- the JSON API ---- */

START_TEST(t_api_jobs_and_avatars)
{
    hx_resp r;
    /* one bad document in an array: 400 naming index and field, nothing queued */
    ck_assert_int_eq(hx_req(&H, &r, "POST", "/v1/jobs",
                            "[{\"seed\":\"a\"},{\"seed\":\"b\",\"sizes\":[8]}]", HX_AUTH, NULL), 400);
    ck_assert_msg(strncmp(hx_error(&r), "[1] sizes[0]:", 13) == 0, "%s", hx_error(&r));
    hx_free(&r);
    ck_assert_int_eq(wh_int(&H.w, "LLEN " WH_NS ":queue:default"), 0);
    ck_assert_int_eq(hx_req(&H, &r, "POST", "/v1/jobs", "{\"seed\":", HX_AUTH, NULL), 400);
    ck_assert_msg(strncmp(hx_error(&r), "body:", 5) == 0, "%s", hx_error(&r));
    hx_free(&r);
    ck_assert_int_eq(hx_req(&H, &r, "POST", "/v1/jobs", "{\"seed\":\"x\",\"colour\":1}", HX_AUTH, NULL), 400);
    ck_assert_ptr_nonnull(strstr(hx_error(&r), "colour"));
    hx_free(&r);

    /* an array, no worker yet: queued */
    ck_assert_int_eq(hx_req(&H, &r, "POST", "/v1/jobs",
                            "[{\"id\":\"a1\",\"seed\":\"a\",\"sizes\":[32]},{\"id\":\"a2\",\"seed\":\"b\",\"sizes\":[32]},"
                            "{\"id\":\"a3\",\"seed\":\"c\",\"sizes\":[32]}]", HX_AUTH, NULL), 202);
    json_t *j = hx_json(&r);
    ck_assert_uint_eq(json_array_size(json_object_get(j, "ids")), 3);
    ck_assert_str_eq(json_string_value(json_array_get(json_object_get(j, "ids"), 2)), "a3");
    json_decref(j);
    hx_free(&r);
    ck_assert_int_eq(wh_int(&H.w, "LLEN " WH_NS ":queue:default"), 3);
    ck_assert_int_eq(hx_req(&H, &r, "GET", "/v1/jobs/a2", NULL, HX_AUTH, NULL), 200);
    j = hx_json(&r);
    ck_assert_str_eq(json_string_value(json_object_get(j, "state")), "queued");
    json_decref(j);
    hx_free(&r);
    ck_assert_int_eq(hx_req(&H, &r, "GET", "/v1/jobs/zz", NULL, HX_AUTH, NULL), 404);
    hx_free(&r);
    ck_assert_int_eq(hx_req(&H, &r, "GET", "/v1/stats", NULL, HX_AUTH, NULL), 200);
    j = hx_json(&r);
    ck_assert_int_eq(json_integer_value(json_object_get(j, "queued")), 3);
    ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(j, "counters"), "enqueued")), 3);
    json_decref(j);
    hx_free(&r);

    /* the sampler's history: the queue depth seen every 2 s */
    long long seen = 0;
    for (int i = 0; i < 100 && seen != 3; i++) {
        ck_assert_int_eq(hx_req(&H, &r, "GET", "/v1/stats?history=1", NULL, HX_AUTH, NULL), 200);
        j = hx_json(&r);
        json_t *h = json_object_get(j, "history");
        ck_assert(json_is_array(h));
        seen = json_integer_value(json_object_get(json_array_get(h, json_array_size(h) - 1), "queued"));
        json_decref(j);
        hx_free(&r);
        if (seen != 3)
            sup_sleep_ms(100);
    }
    ck_assert_int_eq(seen, 3);

    /* wait with no worker: 202 after the timeout, still queued */
    ck_assert_int_eq(hx_req(&H, &r, "POST", "/v1/jobs?wait=1&timeout=1",
                            "{\"id\":\"a4\",\"seed\":\"d\",\"sizes\":[32]}", HX_AUTH, NULL), 202);
    j = hx_json(&r);
    ck_assert(json_is_true(json_object_get(j, "timed_out")));
    json_decref(j);
    hx_free(&r);
    ck_assert_int_eq(hx_req(&H, &r, "POST", "/v1/jobs?wait=2", "{\"seed\":\"d\"}", HX_AUTH, NULL), 400);
    ck_assert_msg(strncmp(hx_error(&r), "wait:", 5) == 0, "%s", hx_error(&r));
    hx_free(&r);

    /* workers run them; the list pages by id */
    start_workers();
    static const char *const posted[] = {"a1", "a2", "a3", "a4"};
    for (size_t i = 0; i < 4; i++) /* two workers: the order they finish in is theirs */
        ck_assert_msg(wh_wait_state(&H.w, posted[i], "done", 30000), "%s not done", posted[i]);
    ck_assert_int_eq(hx_req(&H, &r, "GET", "/v1/workers", NULL, HX_AUTH, NULL), 200);
    j = hx_json(&r);
    json_t *w0 = json_array_get(json_object_get(j, "workers"), 0);
    ck_assert_ptr_nonnull(w0);
    ck_assert(json_is_true(json_object_get(w0, "alive")));
    ck_assert_int_gt(json_integer_value(json_object_get(w0, "pid")), 0);
    json_decref(j);
    hx_free(&r);
    ck_assert_int_eq(hx_req(&H, &r, "GET", "/v1/avatars?limit=3", NULL, HX_AUTH, NULL), 200);
    j = hx_json(&r);
    ck_assert_uint_eq(json_array_size(json_object_get(j, "avatars")), 3);
    ck_assert_str_eq(json_string_value(json_object_get(j, "next")), "a3");
    json_decref(j);
    hx_free(&r);
    ck_assert_int_eq(hx_req(&H, &r, "GET", "/v1/avatars?limit=3&after=a3", NULL, HX_AUTH, NULL), 200);
    j = hx_json(&r);
    ck_assert_uint_eq(json_array_size(json_object_get(j, "avatars")), 1);
    ck_assert_str_eq(json_string_value(json_object_get(json_array_get(json_object_get(j, "avatars"), 0), "id")), "a4");
    ck_assert(json_is_null(json_object_get(j, "next")));
    json_decref(j);
    hx_free(&r);
    ck_assert_int_eq(hx_req(&H, &r, "GET", "/v1/avatars?limit=0", NULL, HX_AUTH, NULL), 400);
    ck_assert_msg(strncmp(hx_error(&r), "limit:", 6) == 0, "%s", hx_error(&r));
    hx_free(&r);

    /* delete: a job; the file and the row go */
    char path[512];
    wh_png_path(&H.w, "a1", 32, path, sizeof path);
    ck_assert(wh_exists(path));
    ck_assert_int_eq(hx_req(&H, &r, "DELETE", "/v1/avatars/a1", NULL, HX_AUTH, NULL), 202);
    hx_free(&r);
    for (int i = 0; i < 400 && wh_exists(path); i++)
        sup_sleep_ms(50);
    ck_assert_msg(!wh_exists(path), "delete job did not remove the file");
    ck_assert_int_eq(hx_wait_status(&H, "GET", "/v1/avatars/a1", 404, 20000), 404);
    ck_assert_int_eq(hx_req(&H, &r, "DELETE", "/v1/avatars/a1", NULL, HX_AUTH, NULL), 404);
    hx_free(&r);
}
END_TEST

START_TEST(t_api_dead_and_control)
{
    start_workers();
    /* a document the workers refuse (raw push): a dead letter (and no job
     * hash: a refused document touches only the dead list) */
    wh_push_str(&H.w, "{\"v\":1,\"id\":\"bad-1\",\"seed\":\"x\",\"sizes\":[7]}");
    ck_assert(wh_wait_int(&H.w, 1, 30000, "LLEN " WH_NS ":dead"));
    hx_resp r;
    ck_assert_int_eq(hx_req(&H, &r, "GET", "/v1/dead", NULL, HX_AUTH, NULL), 200);
    json_t *j = hx_json(&r);
    ck_assert_int_eq(json_integer_value(json_object_get(j, "total")), 1);
    json_t *d0 = json_array_get(json_object_get(j, "dead"), 0);
    ck_assert_str_eq(json_string_value(json_object_get(d0, "id")), "bad-1");
    ck_assert_ptr_nonnull(strstr(json_string_value(json_object_get(d0, "error")), "sizes[0]"));
    json_decref(j);
    hx_free(&r);
    ck_assert_int_eq(hx_req(&H, &r, "POST", "/v1/dead/nobody/retry", NULL, HX_AUTH, NULL), 404);
    hx_free(&r);
    long long dead_before = wh_int(&H.w, "HGET " WH_NS ":stats dead");
    ck_assert_int_eq(hx_req(&H, &r, "POST", "/v1/dead/bad-1/retry", NULL, HX_AUTH, NULL), 200);
    hx_free(&r);
    /* back in the queue, refused again: the dead counter moves */
    ck_assert(wh_wait_int(&H.w, dead_before + 1, 30000, "HGET " WH_NS ":stats dead"));

    /* control: into the stream the supervisors read; bad input named */
    ck_assert_int_eq(hx_req(&H, &r, "POST", "/v1/control", "{\"cmd\":\"quiet\"}", HX_AUTH, NULL), 202);
    hx_free(&r);
    ck_assert_int_eq(wh_int(&H.w, "XLEN " WH_NS ":control"), 1);
    ck_assert_int_eq(hx_req(&H, &r, "POST", "/v1/control", "{\"cmd\":\"explode\"}", HX_AUTH, NULL), 400);
    ck_assert_msg(strncmp(hx_error(&r), "cmd:", 4) == 0, "%s", hx_error(&r));
    hx_free(&r);
    ck_assert_int_eq(hx_req(&H, &r, "POST", "/v1/control", "{\"cmd\":\"stop\",\"target\":\"moon\"}", HX_AUTH, NULL), 400);
    ck_assert_msg(strncmp(hx_error(&r), "target:", 7) == 0, "%s", hx_error(&r));
    hx_free(&r);
    ck_assert_int_eq(wh_int(&H.w, "XLEN " WH_NS ":control"), 1);
    /* stop reaches the fleet: the supervisor exits */
    ck_assert_int_eq(hx_req(&H, &r, "POST", "/v1/control", "{\"cmd\":\"stop\",\"target\":\"all\"}", HX_AUTH, NULL), 202);
    hx_free(&r);
    int st = sup_wait(H.w.pid, 30000);
    ck_assert_msg(st != -1, "the fleet did not stop on a posted stop");
    sup_untrack(H.w.pid);
    H.w.pid = 0;
}
END_TEST

/* ---- auth, CORS, limits ---- */

START_TEST(t_auth_cors_limits)
{
    hx_resp r;
    ck_assert_int_eq(hx_req(&H, &r, "GET", "/v1/stats", NULL, NULL), 401);
    ck_assert_ptr_nonnull(hx_header(&r, "WWW-Authenticate"));
    hx_free(&r);
    ck_assert_int_eq(hx_req(&H, &r, "GET", "/v1/stats", NULL, "Authorization: Bearer test-token-0123456789abcdeX", NULL), 401);
    hx_free(&r);
    ck_assert_int_eq(hx_req(&H, &r, "POST", "/v1/jobs", "{\"seed\":\"a\"}", NULL), 401);
    hx_free(&r);
    ck_assert_int_eq(wh_int(&H.w, "LLEN " WH_NS ":queue:default"), 0);
    ck_assert_int_eq(hx_req(&H, &r, "GET", "/metrics", NULL, NULL), 401);
    hx_free(&r);
    ck_assert_int_eq(hx_req(&H, &r, "GET", "/metrics", NULL, HX_AUTH, NULL), 200);
    hx_free(&r);
    ck_assert_int_eq(hx_req(&H, &r, "GET", "/health", NULL, NULL), 200);
    hx_free(&r);
    ck_assert_int_eq(hx_req(&H, &r, "GET", "/", NULL, NULL), 200);
    ck_assert_ptr_nonnull(strstr((const char *)r.body.data, "<html"));
    hx_free(&r);

    /* unknown route 404, wrong method 405 with Allow */
    ck_assert_int_eq(hx_req(&H, &r, "GET", "/v2/nothing", NULL, HX_AUTH, NULL), 404);
    hx_error(&r);
    hx_free(&r);
    ck_assert_int_eq(hx_req(&H, &r, "PUT", "/v1/jobs", "{}", HX_AUTH, NULL), 405);
    ck_assert_ptr_nonnull(strstr(hx_header(&r, "Allow"), "POST"));
    hx_free(&r);
    ck_assert_int_eq(hx_req(&H, &r, "DELETE", "/avatars/x/64.png", NULL, NULL), 405);
    hx_free(&r);

    /* CORS: the listed origin gets the headers, another does not */
    ck_assert_int_eq(hx_req(&H, &r, "OPTIONS", "/v1/jobs", NULL, "Origin: https://app.example",
                            "Access-Control-Request-Method: POST", NULL), 204);
    ck_assert_str_eq(hx_header(&r, "Access-Control-Allow-Origin"), "https://app.example");
    ck_assert_ptr_nonnull(strstr(hx_header(&r, "Access-Control-Allow-Headers"), "Authorization"));
    hx_free(&r);
    ck_assert_int_eq(hx_req(&H, &r, "GET", "/render/pixel/a.png", NULL, "Origin: https://evil.example", NULL), 200);
    ck_assert_ptr_null(hx_header(&r, "Access-Control-Allow-Origin"));
    hx_free(&r);

    /* bodies over the limit: 413 */
    size_t big = 2 * 1024 * 1024;
    char *body = malloc(big + 1);
    memset(body, ' ', big);
    body[0] = '[';
    body[big - 1] = ']';
    body[big] = '\0';
    ck_assert_int_eq(hx_req(&H, &r, "POST", "/v1/jobs", body, HX_AUTH, NULL), 413);
    hx_free(&r);
    free(body);
    ck_assert_int_eq(wh_int(&H.w, "LLEN " WH_NS ":queue:default"), 0);
}
END_TEST

/* A client that opens a connection and sends half a request is cut off
 * after [http] timeout_s (2 s here), and the server keeps serving. */
START_TEST(t_slow_client_times_out)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)H.port)};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    const char *half = "GET /health HTTP/1.1\r\nHost: x\r\n";
    ck_assert_int_eq(write(fd, half, strlen(half)), (ssize_t)strlen(half));
    bool closed = false;
    for (int waited = 0; waited < 30000 && !closed; waited += 100) {
        struct pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, 100) > 0) {
            char b[256];
            closed = read(fd, b, sizeof b) <= 0;
        }
    }
    close(fd);
    ck_assert_msg(closed, "a half request was never timed out");
    hx_resp r;
    ck_assert_int_eq(hx_req(&H, &r, "GET", "/health", NULL, NULL), 200);
    hx_free(&r);
}
END_TEST

/* Sends raw bytes on a fresh connection; the status of the reply, 0 when
 * the server closed without one. */
static int raw_status(const char *req, size_t len)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)H.port)};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    for (size_t off = 0; off < len;) {
        ssize_t w = write(fd, req + off, len - off);
        if (w <= 0)
            break; /* the server may cut a bomb short */
        off += (size_t)w;
    }
    shutdown(fd, SHUT_WR);
    char b[64] = "";
    size_t got = 0;
    struct pollfd p = {fd, POLLIN, 0};
    while (got < sizeof b - 1 && poll(&p, 1, 10000) > 0) {
        ssize_t n = read(fd, b + got, sizeof b - 1 - got);
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    close(fd);
    return strncmp(b, "HTTP/1.", 7) == 0 ? atoi(b + 9) : 0;
}

/* Malformed and oversized requests get a 4xx or a closed connection, never
 * a crash: the server answers normally afterwards. */
START_TEST(t_hostile_requests)
{
    static const char *const reqs[] = {
        "GARBAGE\r\n\r\n",
        "GET /health HTTP/9.9\r\nHost: x\r\n\r\n",
        "GET /avatars/a%00b/64.png HTTP/1.1\r\nHost: x\r\n\r\n",
        "GET /render/pixel/%ff%fe.png HTTP/1.1\r\nHost: x\r\n\r\n",
        "GET /v1/jobs/x HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \r\n\r\n",
        "POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n",
        "POST /v1/jobs HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    };
    for (size_t i = 0; i < sizeof reqs / sizeof *reqs; i++) {
        int st = raw_status(reqs[i], strlen(reqs[i]));
        /* 505 is the right answer to an unknown HTTP version */
        ck_assert_msg(st == 0 || (st >= 400 && st < 500) || (i == 1 && st == 505),
                      "request %zu: status %d", i, st);
    }
    /* a 100 KB URL and 200 KB of headers */
    size_t big = 200 * 1024;
    char *bomb = malloc(big + 64);
    int n = snprintf(bomb, 64, "GET /render/pixel/");
    memset(bomb + n, 'a', 100 * 1024);
    strcpy(bomb + n + 100 * 1024, ".png HTTP/1.1\r\n\r\n");
    int st = raw_status(bomb, strlen(bomb));
    ck_assert_msg(st == 0 || (st >= 400 && st < 500), "long URL: %d", st);
    n = snprintf(bomb, 64, "GET /health HTTP/1.1\r\nX-Fill: ");
    memset(bomb + n, 'h', big - (size_t)n - 8);
    strcpy(bomb + big - 8, "\r\n\r\n");
    st = raw_status(bomb, strlen(bomb));
    ck_assert_msg(st == 0 || (st >= 400 && st < 500), "header bomb: %d", st);
    free(bomb);
    hx_resp r;
    ck_assert_int_eq(hx_req(&H, &r, "GET", "/health", NULL, NULL), 200);
    hx_free(&r);
}
END_TEST

/* ---- Redis down ---- */

START_TEST(t_redis_down)
{
    start_workers();
    char id[65];
    post_and_wait("{\"id\":\"kept\",\"seed\":\"k\",\"sizes\":[64]}", id);
    ck_assert_int_eq(wh_stop(&H.w, SIGTERM, 30000) != -1, 1);
    wh_redis_stop(&H.w);

    hx_resp r;
    ck_assert_int_eq(hx_req(&H, &r, "GET", "/avatars/kept/64.png", NULL, NULL), 200);
    ck_assert_uint_gt(r.body.len, 8);
    hx_free(&r);
    ck_assert_int_eq(hx_req(&H, &r, "GET", "/render/pixel/k.png", NULL, NULL), 200);
    hx_free(&r);
    ck_assert_int_eq(hx_req(&H, &r, "GET", "/v1/stats", NULL, HX_AUTH, NULL), 503);
    ck_assert_msg(strstr(hx_error(&r), "redis"), "%s", hx_error(&r));
    hx_free(&r);
    ck_assert_int_eq(hx_req(&H, &r, "POST", "/v1/jobs", "{\"seed\":\"z\"}", HX_AUTH, NULL), 503);
    hx_free(&r);
    ck_assert_int_eq(hx_req(&H, &r, "GET", "/health", NULL, NULL), 503);
    json_t *j = hx_json(&r);
    ck_assert(json_is_false(json_object_get(json_object_get(json_object_get(j, "checks"), "redis"), "ok")));
    ck_assert(json_is_true(json_object_get(json_object_get(json_object_get(j, "checks"), "storage"), "ok")));
    json_decref(j);
    hx_free(&r);
    ck_assert_int_eq(hx_req(&H, &r, "GET", "/metrics", NULL, HX_AUTH, NULL), 200);
    ck_assert_ptr_nonnull(strstr((const char *)r.body.data, "avatarq_redis_up 0"));
    hx_free(&r);

    /* Redis back: the API recovers without a restart */
    wh_redis_restart(&H.w);
    ck_assert_int_eq(hx_wait_status(&H, "GET", "/v1/stats", 200, 10000), 200);
}
END_TEST

/* ---- /metrics ---- */

/* The value of one sample line "name{labels} value" in text, or -1. */
static double sample(const char *text, const char *series)
{
    char pat[300];
    snprintf(pat, sizeof pat, "\n%s ", series);
    const char *p = strstr(text, pat);
    return p ? strtod(p + strlen(pat), NULL) : -1;
}

START_TEST(t_metrics)
{
    hx_resp r;
    /* a second queue, there when the server starts (queues are found by a
     * SCAN at start and then once a minute) */
    ck_assert_int_eq(hx_req(&H, &r, "POST", "/v1/jobs?queue=other",
                            "[{\"seed\":\"o1\",\"created_at\":2000},{\"seed\":\"o2\"}]", HX_AUTH, NULL), 202);
    hx_free(&r);
    ck_assert_int_eq(hx_stop(&H), 0);
    hx_start(&H, "cors_origins = https://app.example\n");
    for (int i = 0; i < 100; i++) { /* the sampler's first SCAN runs as it starts */
        ck_assert_int_eq(hx_req(&H, &r, "GET", "/metrics", NULL, HX_AUTH, NULL), 200);
        bool seen = strstr((const char *)r.body.data, "queue=\"other\"") != NULL;
        hx_free(&r);
        if (seen)
            break;
        sup_sleep_ms(50);
    }
    /* the workers' histogram, written as they do (non-cumulative, ms) */
    wh_int_words(&H.w, "HINCRBY " WH_NS ":metrics job_duration_ms_le_1 2");
    wh_int_words(&H.w, "HINCRBY " WH_NS ":metrics job_duration_ms_le_5 3");
    wh_int_words(&H.w, "HINCRBY " WH_NS ":metrics job_duration_ms_le_inf 1");
    wh_int_words(&H.w, "HINCRBY " WH_NS ":metrics job_duration_ms_sum 61010");
    wh_int_words(&H.w, "HINCRBY " WH_NS ":metrics job_duration_ms_count 6");
    ck_assert_int_eq(hx_req(&H, &r, "POST", "/v1/jobs",
                            "{\"seed\":\"m\",\"created_at\":1000}", HX_AUTH, NULL), 202);
    hx_free(&r);
    ck_assert_int_eq(hx_req(&H, &r, "GET", "/render/pixel/zz.png?size=7", NULL, NULL), 400);
    hx_free(&r);
    ck_assert_int_eq(hx_req(&H, &r, "GET", "/metrics", NULL, HX_AUTH, NULL), 200);
    ck_assert_ptr_nonnull(strstr(hx_header(&r, "Content-Type"), "text/plain; version=0.0.4"));
    const char *t = (const char *)r.body.data;
    ck_assert(sample(t, "avatarq_job_duration_seconds_bucket{le=\"0.001\"}") == 2);
    ck_assert(sample(t, "avatarq_job_duration_seconds_bucket{le=\"0.002\"}") == 2);
    ck_assert(sample(t, "avatarq_job_duration_seconds_bucket{le=\"0.005\"}") == 5);
    ck_assert(sample(t, "avatarq_job_duration_seconds_bucket{le=\"60\"}") == 5);
    ck_assert(sample(t, "avatarq_job_duration_seconds_bucket{le=\"+Inf\"}") == 6);
    ck_assert(sample(t, "avatarq_job_duration_seconds_sum") == 61.01);
    ck_assert(sample(t, "avatarq_job_duration_seconds_count") == 6);
    ck_assert(sample(t, "avatarq_queue_jobs{queue=\"default\"}") == 1);
    ck_assert(sample(t, "avatarq_queue_jobs{queue=\"other\"}") == 2);
    ck_assert(sample(t, "avatarq_queue_oldest_job_age_seconds{queue=\"other\"}") > 1e9);
    /* created_at 1000 ms after the epoch: decades old */
    ck_assert(sample(t, "avatarq_queue_oldest_job_age_seconds{queue=\"default\"}") > 1e9);
    ck_assert(sample(t, "avatarq_jobs_total{event=\"enqueued\"}") == 3);
    ck_assert(sample(t, "avatarq_redis_up") == 1);
    ck_assert(sample(t, "avatarq_http_requests_total{route=\"/render/{style}/{seed*}.png\",code=\"400\"}") == 1);
    ck_assert(sample(t, "avatarq_http_requests_total{route=\"/v1/jobs\",code=\"202\"}") == 1);

    /* promtool (Debian package prometheus) finds nothing to say */
    if (sup_run("command -v promtool >/dev/null 2>&1", NULL, false) != 0) {
        fprintf(stderr, "note: promtool not installed (tests/deps.sh); lint skipped\n");
        hx_free(&r);
        return;
    }
    char file[400], cmd[600];
    snprintf(file, sizeof file, "%s/metrics.txt", H.w.dir);
    FILE *f = fopen(file, "w");
    fwrite(r.body.data, 1, r.body.len, f);
    fclose(f);
    hx_free(&r);
    buf out = BUF_INIT;
    snprintf(cmd, sizeof cmd, "promtool check metrics < '%s'", file);
    int st = sup_run(cmd, &out, true);
    ck_assert_msg(st == 0 && out.len == 0, "promtool (exit %d): %s", st, out.len ? (char *)out.data : "");
    buf_free(&out);
}
END_TEST

/* ---- configuration ---- */

START_TEST(t_config_errors)
{
    buf out = BUF_INIT;
    char cmd[900];
    snprintf(cmd, sizeof cmd, "AVATARQ_HTTP_LISTEN=0.0.0.0:1 AVATARQ_HTTP_AUTH_TOKEN= '%s' -c '%s' --check",
             sup_bin("avatarq-http"), H.w.cfg);
    ck_assert_int_eq(sup_run(cmd, &out, true), 2);
    ck_assert_msg(strstr((char *)out.data, "auth_token"), "%s", (char *)out.data);
    snprintf(cmd, sizeof cmd, "AVATARQ_HTTP_LISTEN=nohost '%s' -c '%s' --check", sup_bin("avatarq-http"), H.w.cfg);
    ck_assert_int_eq(sup_run(cmd, &out, true), 2);
    ck_assert_msg(strstr((char *)out.data, "listen"), "%s", (char *)out.data);
    snprintf(cmd, sizeof cmd, "AVATARQ_HTTP_AUTH_TOKEN=tiny '%s' -c '%s' --check", sup_bin("avatarq-http"), H.w.cfg);
    ck_assert_int_eq(sup_run(cmd, &out, true), 2);
    ck_assert_msg(strstr((char *)out.data, "auth_token") && !strstr((char *)out.data, "tiny"),
                  "%s", (char *)out.data);
    snprintf(cmd, sizeof cmd, "'%s' --bogus", sup_bin("avatarq-http"));
    ck_assert_int_eq(sup_run(cmd, &out, true), 2);
    snprintf(cmd, sizeof cmd, "'%s' -c '%s' --check", sup_bin("avatarq-http"), H.w.cfg);
    ck_assert_int_eq(sup_run(cmd, &out, true), 0);
    /* a clean stop on SIGTERM */
    int st = hx_stop(&H);
    ck_assert_msg(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0, "status %d", st);
    buf_free(&out);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("http");
    TCase *tc = tcase_create("http");
    tcase_add_unchecked_fixture(tc, NULL, hx_reap_strays);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 180);
    tcase_add_test(tc, t_stored_avatar_caching);
    tcase_add_test(tc, t_stored_webp_and_svg);
    tcase_add_test(tc, t_render_same_bytes_as_stored);
    tcase_add_test(tc, t_api_jobs_and_avatars);
    tcase_add_test(tc, t_api_dead_and_control);
    tcase_add_test(tc, t_auth_cors_limits);
    tcase_add_test(tc, t_slow_client_times_out);
    tcase_add_test(tc, t_hostile_requests);
    tcase_add_test(tc, t_redis_down);
    tcase_add_test(tc, t_metrics);
    tcase_add_test(tc, t_config_errors);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return sup_run_suite(suite());
}
