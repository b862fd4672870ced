/* The dashboard in a real browser: headless Chromium (Debian package
 * chromium) loads GET / from a running avatarq-http beside a real Redis and
 * worker fleet, runs the page's JavaScript against the JSON API, and the
 * test reads the rendered DOM: the live workers are listed, the counters
 * move after jobs, dead letters show with a retry button, the gallery shows
 * the new avatars. A screenshot is kept in $AQ_ARTIFACTS (default
 * build/test-artifacts/dashboard.png). */
#include <check.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "http_harness.h"
#include "pngenc.h"

static hx H;

static void setup(void)
{
    hx_setup(&H, NULL);
}

static void teardown(void)
{
    hx_teardown(&H);
}

/* Runs headless Chromium on the dashboard with extra flags (a fresh
 * profile in the test's temp dir); the DOM or the program's output in out. */
static int chromium(const char *flags, const char *fragment, buf *out)
{
    char cmd[2048];
    snprintf(cmd, sizeof cmd,
             "timeout 120 chromium --headless=new --no-sandbox --disable-gpu --no-first-run "
             "--disable-extensions --hide-scrollbars --user-data-dir='%s/chrome' "
             "--virtual-time-budget=4000 %s 'http://127.0.0.1:%d/%s' 2>/dev/null",
             H.w.dir, flags, H.port, fragment);
    return sup_run(cmd, out, false);
}

/* The data-value of the element with id in dom, or -1. */
static long counter(const char *dom, const char *id)
{
    char pat[80];
    snprintf(pat, sizeof pat, "id=\"%s\" data-value=\"", id);
    const char *p = strstr(dom, pat);
    return p && p[strlen(pat)] != '"' ? strtol(p + strlen(pat), NULL, 10) : -1;
}

static size_t count_of(const char *dom, const char *needle)
{
    size_t n = 0;
    for (const char *p = dom; (p = strstr(p, needle)); p += strlen(needle))
        n++;
    return n;
}

/* Every member of NS:workers appears as a worker row. */
static void assert_workers_listed(const char *dom)
{
    redisReply *rep = redisCommand(H.w.rc, "SMEMBERS " WH_NS ":workers");
    ck_assert(rep && rep->type == REDIS_REPLY_ARRAY && rep->elements >= 1);
    for (size_t i = 0; i < rep->elements; i++) {
        char pat[300];
        snprintf(pat, sizeof pat, "class=\"worker\" data-id=\"%s\"", rep->element[i]->str);
        ck_assert_msg(strstr(dom, pat), "worker %s not listed", rep->element[i]->str);
    }
    freeReplyObject(rep);
}

START_TEST(t_dashboard_in_chromium)
{
    wh_start(&H.w, NULL);
    ck_assert(wh_wait_int(&H.w, 2, 20000, "SCARD " WH_NS ":workers"));
    char frag[128];
    snprintf(frag, sizeof frag, "#token=%s", HX_TOKEN);

    /* first look: workers listed, nothing done yet */
    buf dom = BUF_INIT;
    ck_assert_int_eq(chromium("--dump-dom", frag, &dom), 0);
    const char *d = (const char *)dom.data;
    ck_assert_msg(strstr(d, "data-loaded=\"1\""), "the page never loaded its data: %.500s", d);
    assert_workers_listed(d);
    ck_assert_int_eq(counter(d, "c-done"), 0);
    ck_assert_int_eq(counter(d, "c-queued"), 0);

    /* jobs through the API, and one document the workers refuse */
    hx_resp r;
    ck_assert_int_eq(hx_req(&H, &r, "POST", "/v1/jobs?wait=1&timeout=60",
                            "[{\"id\":\"g1\",\"seed\":\"one\",\"sizes\":[64]},"
                            "{\"id\":\"g2\",\"seed\":\"two\",\"sizes\":[64]},"
                            "{\"id\":\"g3\",\"seed\":\"three\",\"style\":\"wave\",\"sizes\":[64,128]}]",
                            HX_AUTH, NULL), 200);
    hx_free(&r);
    wh_push_str(&H.w, "{\"v\":1,\"id\":\"broken-1\",\"seed\":\"x\",\"style\":\"cubist\"}");
    ck_assert(wh_wait_state(&H.w, "broken-1", "dead", 30000));

    /* second look: the counters moved, the dead letter and the gallery show */
    ck_assert_int_eq(chromium("--dump-dom", frag, &dom), 0);
    d = (const char *)dom.data;
    ck_assert_int_eq(counter(d, "c-done"), 3);
    ck_assert_int_eq(counter(d, "c-enqueued"), 4);
    ck_assert_int_eq(counter(d, "c-dead"), 1);
    assert_workers_listed(d);
    ck_assert_msg(strstr(d, "class=\"retry\" data-id=\"broken-1\""), "no retry button for the dead letter");
    ck_assert_msg(strstr(d, "cubist"), "dead letter error not shown");
    ck_assert_int_eq(count_of(d, "class=\"avatar\""), 3);
    ck_assert_msg(strstr(d, "src=\"/avatars/g3/64.png\""), "gallery misses g3");

    /* without the token the page says why instead of showing data */
    ck_assert_int_eq(chromium("--dump-dom", "", &dom), 0);
    d = (const char *)dom.data;
    ck_assert_msg(strstr(d, "class=\"err\"") && strstr(d, "401"), "no 401 shown without the token");
    ck_assert_int_eq(counter(d, "c-done"), -1);

    /* a screenshot for people */
    const char *dir = getenv("AQ_ARTIFACTS") ? getenv("AQ_ARTIFACTS") : "build/test-artifacts";
    char path[600], flags[800];
    snprintf(path, sizeof path, "mkdir -p '%s'", dir);
    ck_assert_int_eq(system(path), 0);
    snprintf(path, sizeof path, "%s/dashboard.png", dir);
    unlink(path);
    snprintf(flags, sizeof flags, "--window-size=1280,820 --screenshot='%s'", path);
    ck_assert_int_eq(chromium(flags, frag, &dom), 0);
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f, "no screenshot at %s", path);
    buf png = BUF_INIT;
    char chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        buf_append(&png, chunk, n);
    fclose(f);
    uint8_t *rgba = NULL;
    int w = 0, h = 0;
    aq_err e = {0};
    ck_assert_msg(pngenc_decode(png.data, png.len, &rgba, &w, &h, &e) == 0, "%s", e.msg);
    ck_assert_int_eq(w, 1280);
    free(rgba);
    buf_free(&png);
    buf_free(&dom);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("http_browser");
    TCase *tc = tcase_create("http_browser");
    tcase_add_unchecked_fixture(tc, NULL, wh_reap_strays);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, t_dashboard_in_chromium);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
