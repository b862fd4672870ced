/* The dashboard in a real browser: headless Chromium (Debian package
 * chromium) loads GET / from a running avatarq-http beside a real Redis and
 * worker fleet, runs the page's JavaScript against the JSON API, and the
 * test reads the rendered DOM: the live workers are listed, the counters
 * move after jobs, dead letters show with a retry button, the gallery shows
 * the new avatars. A screenshot is kept in $AQ_ARTIFACTS (default
 * build/test-artifacts/dashboard.png). A second test drives one live page
 * through the DevTools protocol (--remote-debugging-pipe) and clicks it like
 * an operator: counters follow the jobs without a reload, Retry, Quiet,
 * Resume and Stop reach Redis and the fleet. */
#include <check.h>
#include <fcntl.h>
#include <jansson.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "support_http.h"
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

/* False, with a note, on a machine without Chromium (tests/deps.sh installs it). */
/* The fleet up with its two workers; false (the test is skipped, with a
 * note) where chromium is not installed. */
static bool fleet_for_chromium(void)
{
    if (sup_run("command -v chromium >/dev/null 2>&1", NULL, false) != 0) {
        fprintf(stderr, "note: chromium not installed (tests/deps.sh); browser test skipped\n");
        return false;
    }
    wh_start(&H.w, NULL);
    ck_assert(wh_wait_int(&H.w, 2, 20000, "SCARD " WH_NS ":workers"));
    return true;
}

START_TEST(t_dashboard_in_chromium)
{
    if (!fleet_for_chromium())
        return;
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
    ck_assert(wh_wait_int(&H.w, 1, 30000, "LLEN " WH_NS ":dead"));

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

/* ---- driving the page: the DevTools protocol over a pipe ----
 * chromium --remote-debugging-pipe reads commands on fd 3 and writes
 * replies and events on fd 4, each one JSON message ended by a NUL byte. */

typedef struct cdp {
    pid_t pid;
    int to, from;            /* our ends of fd 3 and fd 4 */
    buf in;                  /* bytes read, not yet a whole message */
    int next_id;
    char session[128];
} cdp;

static void cdp_open(cdp *c)
{
    int cmd[2], ev[2];
    ck_assert(pipe(cmd) == 0 && pipe(ev) == 0);
    char profile[400], log[400];
    snprintf(profile, sizeof profile, "--user-data-dir=%s/chrome-cdp", H.w.dir);
    snprintf(log, sizeof log, "%s/chromium.log", H.w.dir);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        setpgid(0, 0);
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        dup2(cmd[0], 3);
        dup2(ev[1], 4);
        for (int i = 5; i < 1024; i++)
            close(i);
        execlp("chromium", "chromium", "--headless=new", "--no-sandbox", "--disable-gpu",
               "--no-first-run", "--disable-extensions", "--remote-debugging-pipe", profile,
               "about:blank", (char *)NULL);
        _exit(127);
    }
    sup_track(pid);
    close(cmd[0]);
    close(ev[1]);
    *c = (cdp){.pid = pid, .to = cmd[1], .from = ev[0], .in = BUF_INIT, .next_id = 1};
}

static void cdp_close(cdp *c)
{
    close(c->to);
    close(c->from);
    if (sup_stop(c->pid, SIGTERM, 10000) == -1)
        kill(-c->pid, SIGKILL);
    kill(-c->pid, SIGKILL); /* its helpers share the process group */
    sup_untrack(c->pid);
    buf_free(&c->in);
}

/* The next whole message (to json_decref), or NULL after timeout_ms. */
static json_t *cdp_read(cdp *c, int timeout_ms)
{
    for (int waited = 0;; waited += 50) {
        char *nul = c->in.len ? memchr(c->in.data, '\0', c->in.len) : NULL;
        if (nul) {
            size_t n = (size_t)(nul - (char *)c->in.data);
            json_t *m = json_loadb((const char *)c->in.data, n, 0, NULL);
            memmove(c->in.data, nul + 1, c->in.len - n - 1);
            c->in.len -= n + 1;
            return m;
        }
        if (waited > timeout_ms)
            return NULL;
        struct pollfd p = {c->from, POLLIN, 0};
        if (poll(&p, 1, 50) > 0) {
            char chunk[65536];
            ssize_t r = read(c->from, chunk, sizeof chunk);
            if (r <= 0)
                return NULL;
            buf_append(&c->in, chunk, (size_t)r);
        }
    }
}

/* Sends method with params (a JSON object, taken) in the attached page's
 * session (or the browser's when none yet); returns the "result" (to
 * json_decref), failing the test on an error reply or no reply. */
static json_t *cdp_call(cdp *c, const char *method, json_t *params)
{
    int id = c->next_id++;
    json_t *msg = json_pack("{s:i, s:s, s:o}", "id", id, "method", method, "params",
                            params ? params : json_object());
    if (c->session[0])
        json_object_set_new(msg, "sessionId", json_string(c->session));
    char *text = json_dumps(msg, JSON_COMPACT);
    json_decref(msg);
    size_t n = strlen(text) + 1; /* the NUL ends the message */
    ck_assert_int_eq(write(c->to, text, n), (ssize_t)n);
    free(text);
    for (;;) {
        json_t *m = cdp_read(c, 30000);
        ck_assert_msg(m, "no reply from chromium to %s", method);
        if (json_integer_value(json_object_get(m, "id")) != id) {
            json_decref(m); /* an event */
            continue;
        }
        json_t *err = json_object_get(m, "error");
        ck_assert_msg(!err, "%s: %s", method, json_string_value(json_object_get(err, "message")));
        json_t *res = json_incref(json_object_get(m, "result"));
        json_decref(m);
        return res;
    }
}

/* Opens url in a new tab and attaches to it. */
static void cdp_page(cdp *c, const char *url)
{
    json_t *t = cdp_call(c, "Target.createTarget", json_pack("{s:s}", "url", url));
    json_t *a = cdp_call(c, "Target.attachToTarget",
                         json_pack("{s:s, s:b}", "targetId",
                                   json_string_value(json_object_get(t, "targetId")), "flatten", 1));
    snprintf(c->session, sizeof c->session, "%s", json_string_value(json_object_get(a, "sessionId")));
    json_decref(t);
    json_decref(a);
}

/* Evaluates expr in the page; its value as a string (static copy; "" for
 * undefined or null, numbers and booleans formatted). */
static const char *cdp_eval(cdp *c, const char *expr)
{
    static char out[4096];
    json_t *r = cdp_call(c, "Runtime.evaluate",
                         json_pack("{s:s, s:b, s:b}", "expression", expr, "returnByValue", 1,
                                   "awaitPromise", 1));
    json_t *v = json_object_get(json_object_get(r, "result"), "value");
    if (json_is_string(v))
        snprintf(out, sizeof out, "%s", json_string_value(v));
    else if (json_is_integer(v) || json_is_real(v))
        snprintf(out, sizeof out, "%g", json_number_value(v));
    else if (json_is_boolean(v))
        snprintf(out, sizeof out, "%s", json_is_true(v) ? "true" : "false");
    else
        out[0] = '\0';
    json_decref(r);
    return out;
}

/* Polls expr in the page until it gives want (the page polls the API
 * every 2 s by itself); true when it did within timeout_ms. */
static bool cdp_wait(cdp *c, const char *expr, const char *want, int timeout_ms)
{
    for (int waited = 0; waited <= timeout_ms; waited += 200) {
        if (strcmp(cdp_eval(c, expr), want) == 0)
            return true;
        sup_sleep_ms(200);
    }
    fprintf(stderr, "page: %s is '%s', want '%s'\n", expr, cdp_eval(c, expr), want);
    return false;
}

/* The cmd of the newest NS:control entry ("" when none). */
static const char *last_control(void)
{
    static char cmd[32];
    cmd[0] = '\0';
    redisReply *rep = redisCommand(H.w.rc, "XREVRANGE " WH_NS ":control + - COUNT 1");
    if (rep && rep->type == REDIS_REPLY_ARRAY && rep->elements == 1) {
        const redisReply *f = rep->element[0]->element[1];
        for (size_t i = 0; i + 1 < f->elements; i += 2)
            if (strcmp(f->element[i]->str, "cmd") == 0)
                snprintf(cmd, sizeof cmd, "%s", f->element[i + 1]->str);
    }
    if (rep)
        freeReplyObject(rep);
    return cmd;
}

/* One live page, clicked like an operator would: the counters follow the
 * jobs without a reload, Retry sends a dead letter back, and the Quiet,
 * Resume and Stop buttons reach the fleet. */
START_TEST(t_dashboard_buttons)
{
    if (!fleet_for_chromium())
        return;
    wh_push_str(&H.w, "{\"v\":1,\"id\":\"broken-2\",\"seed\":\"x\",\"filter\":\"blur\"}");
    ck_assert(wh_wait_int(&H.w, 1, 30000, "LLEN " WH_NS ":dead"));

    cdp c;
    cdp_open(&c);
    char url[200];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/#token=%s", H.port, HX_TOKEN);
    cdp_page(&c, url);
    ck_assert(cdp_wait(&c, "document.body.dataset.loaded || ''", "1", 30000));
    ck_assert(cdp_wait(&c, "document.getElementById('c-done').dataset.value", "0", 10000));
    ck_assert(cdp_wait(&c, "document.querySelectorAll('tr.worker').length", "2", 10000));

    /* counters move in the open page as jobs finish */
    hx_resp r;
    ck_assert_int_eq(hx_req(&H, &r, "POST", "/v1/jobs",
                            "[{\"seed\":\"p1\",\"sizes\":[32]},{\"seed\":\"p2\",\"sizes\":[32]},"
                            "{\"seed\":\"p3\",\"sizes\":[32]},{\"seed\":\"p4\",\"sizes\":[32]}]",
                            HX_AUTH, NULL), 202);
    hx_free(&r);
    ck_assert(cdp_wait(&c, "document.getElementById('c-done').dataset.value", "4", 30000));
    ck_assert(cdp_wait(&c, "document.querySelectorAll('figure.avatar').length", "4", 10000));

    /* Retry: the dead letter goes back, is refused again, and dead counts it */
    long long dead = wh_int(&H.w, "HGET " WH_NS ":stats dead");
    ck_assert_str_eq(cdp_eval(&c, "(() => { const b = document.querySelector('button.retry[data-id=\"broken-2\"]');"
                                  " if (!b) return 'no button'; b.click(); return 'clicked'; })()"), "clicked");
    ck_assert_msg(wh_wait_int(&H.w, dead + 1, 30000, "HGET " WH_NS ":stats dead"), "retry did not run");

    /* Quiet, Resume, Stop (its confirm() answered yes) */
    ck_assert_str_eq(cdp_eval(&c, "document.getElementById('btn-quiet').click(), 'ok'"), "ok");
    for (int i = 0; i < 200 && strcmp(last_control(), "quiet") != 0; i++)
        sup_sleep_ms(50);
    ck_assert_str_eq(last_control(), "quiet");
    ck_assert_str_eq(cdp_eval(&c, "document.getElementById('btn-resume').click(), 'ok'"), "ok");
    for (int i = 0; i < 200 && strcmp(last_control(), "resume") != 0; i++)
        sup_sleep_ms(50);
    ck_assert_str_eq(last_control(), "resume");
    ck_assert_str_eq(cdp_eval(&c, "window.confirm = () => true, document.getElementById('btn-stop').click(), 'ok'"), "ok");
    int st = sup_wait(H.w.pid, 30000);
    ck_assert_msg(st != -1, "the fleet did not stop from the Stop button");
    sup_untrack(H.w.pid);
    H.w.pid = 0;
    ck_assert_str_eq(last_control(), "stop");
    cdp_close(&c);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("http_browser");
    TCase *tc = tcase_create("http_browser");
    tcase_add_unchecked_fixture(tc, NULL, hx_reap_strays);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, t_dashboard_in_chromium);
    tcase_add_test(tc, t_dashboard_buttons);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return sup_run_suite(suite());
}
