/* support_http: see support_http.h. */
#include "support_http.h"

#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

void hx_show_log(const hx *h)
{
    char cmd[400];
    snprintf(cmd, sizeof cmd, "tail -n 30 '%s' >&2", h->log);
    if (system(cmd) != 0)
        fprintf(stderr, "(no http log)\n");
}

/* Writes config.ini with an [http] section (listen on a fresh port, the
 * token, short timeouts) plus http_extra lines, then starts avatarq-http
 * and waits until it accepts connections. */
void hx_start(hx *h, const char *http_extra)
{
    h->port = sup_free_port();
    snprintf(h->base, sizeof h->base, "http://127.0.0.1:%d", h->port);
    snprintf(h->log, sizeof h->log, "%s/http.log", h->w.dir);
    char sect[1024];
    snprintf(sect, sizeof sect,
             "[http]\nlisten = 127.0.0.1:%d\nthreads = 2\ntimeout_s = 2\n"
             "auth_token = " HX_TOKEN "\n%s%s",
             h->port, http_extra ? http_extra : "", h->sections ? h->sections : "");
    wh_write_config(&h->w, NULL, sect);
    /* the schema, as an operator would create it before starting anything */
    char cmd[800];
    buf out = BUF_INIT;
    snprintf(cmd, sizeof cmd, "'%s' -c '%s' migrate", sup_bin("avatarq"), h->w.cfg);
    int st = sup_run(cmd, &out, true);
    ck_assert_msg(st == 0, "migrate: %s", out.len ? (char *)out.data : "");
    buf_free(&out);
    char *argv[] = {(char *)sup_bin("avatarq-http"), "-c", h->w.cfg, NULL};
    h->pid = sup_spawn(argv, NULL, h->log);
    sup_track(h->pid);
    if (!sup_wait_port(h->port, 20000)) {
        hx_show_log(h);
        ck_abort_msg("avatarq-http did not listen on %d", h->port);
    }
}

/* SIGTERM; returns the raw wait status (-1: had to be killed). */
int hx_stop(hx *h)
{
    if (h->pid <= 0)
        return 0;
    int st = sup_stop_tracked(h->pid, SIGTERM, 10000);
    h->pid = 0;
    return st;
}

/* A test that fails ends its process at once (Check's _exit), so neither
 * its teardown nor an atexit handler runs: every temp dir a test makes is
 * listed in a file named after the Check runner, and the runner's unchecked
 * teardown (hx_reap_strays) removes what is left, after killing what is
 * left (sup_reap_strays). */
static void hx_dirfile(char *out, size_t n, pid_t runner)
{
    snprintf(out, n, "/tmp/avatarq-hx-%d.dirs", (int)runner);
}

void hx_track_dir(const char *dir)
{
    char path[64];
    hx_dirfile(path, sizeof path, getppid());
    FILE *f = fopen(path, "a");
    if (f) {
        fprintf(f, "%s\n", dir);
        fclose(f);
    }
}

void hx_reap_strays(void)
{
    sup_reap_strays();
    char path[64], line[512];
    hx_dirfile(path, sizeof path, getpid());
    FILE *f = fopen(path, "r");
    while (f && fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = '\0';
        if (line[0] && !getenv("AQ_TEST_KEEP"))
            sup_rmtree(line);
    }
    if (f)
        fclose(f);
    unlink(path);
}

/* Redis and the temp dir, nothing started yet (then hx_start). */
void hx_prepare(hx *h)
{
    memset(h, 0, sizeof *h);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    wh_setup(&h->w, false, NULL);
    hx_track_dir(h->w.dir);
    hx_track_dir(h->w.r.dir);
}

void hx_setup(hx *h, const char *http_extra)
{
    hx_prepare(h);
    hx_start(h, http_extra);
}

/* Stops everything; the server must exit 0 on SIGTERM (under ASan that
 * also means: no leak), else the test fails with its log. */
void hx_teardown(hx *h)
{
    if (getenv("AQ_TEST_VERBOSE"))
        hx_show_log(h);
    bool was_running = h->pid > 0;
    int st = hx_stop(h);
    bool clean = !was_running || (st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0);
    if (!clean)
        hx_show_log(h);
    wh_teardown(&h->w);
    ck_assert_msg(clean, "avatarq-http did not exit 0 on SIGTERM (status %d)", st);
}

static size_t hx_on_body(char *p, size_t size, size_t n, void *ud)
{
    buf_append(ud, p, size * n);
    return size * n;
}

static size_t hx_on_header(char *p, size_t size, size_t n, void *ud)
{
    hx_resp *r = ud;
    size_t have = strlen(r->headers), add = size * n;
    if (have + add + 1 < sizeof r->headers) {
        memcpy(r->headers + have, p, add);
        r->headers[have + add] = '\0';
    }
    return add;
}

/* One request: method, path (appended to the base URL as is: no
 * normalisation of "..") and body (NULL: none), then extra header lines
 * ending with NULL. Fills out (free with hx_free); returns the status. */
long hx_req(hx *h, hx_resp *out, const char *method, const char *path, const char *body,
                  ...)
{
    memset(out, 0, sizeof *out);
    char url[2048];
    snprintf(url, sizeof url, "%s%s", h->base, path);
    CURL *c = curl_easy_init();
    struct curl_slist *hdrs = NULL;
    va_list ap;
    va_start(ap, body);
    for (const char *x; (x = va_arg(ap, const char *));)
        hdrs = curl_slist_append(hdrs, x);
    va_end(ap);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_PATH_AS_IS, 1L);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    if (strcmp(method, "HEAD") == 0)
        curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    if (body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
    }
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, hx_on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &out->body);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, hx_on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, out);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 60L);
    CURLcode rc = curl_easy_perform(c);
    if (rc == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &out->status);
    else
        out->status = -1;
    buf_append(&out->body, "", 1);
    out->body.len--;
    curl_slist_free_all(hdrs);
    curl_easy_cleanup(c);
    return out->status;
}

long hx_wait_status(hx *h, const char *method, const char *path, long want, int timeout_ms)
{
    long st = -1;
    for (int waited = 0; waited <= timeout_ms; waited += 50) {
        hx_resp r;
        st = hx_req(h, &r, method, path, NULL, HX_AUTH, NULL);
        hx_free(&r);
        if (st == want)
            break;
        sup_sleep_ms(50);
    }
    return st;
}

void hx_free(hx_resp *r)
{
    buf_free(&r->body);
}

/* The value of header name in r (static buffer), or NULL. */
const char *hx_header(const hx_resp *r, const char *name)
{
    static char v[1024];
    size_t n = strlen(name);
    for (const char *p = r->headers; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) {
        if (strncasecmp(p, name, n) == 0 && p[n] == ':') {
            const char *s = p + n + 1;
            s += strspn(s, " ");
            size_t l = strcspn(s, "\r\n");
            snprintf(v, sizeof v, "%.*s", (int)l, s);
            return v;
        }
    }
    return NULL;
}

/* The body parsed as JSON (to json_decref); aborts the test when it is not. */
json_t *hx_json(const hx_resp *r)
{
    json_error_t je;
    json_t *j = json_loadb((const char *)r->body.data, r->body.len, 0, &je);
    ck_assert_msg(j, "reply is not JSON (%s): %.300s", je.text, (const char *)r->body.data);
    return j;
}

/* The "error" of a JSON error reply (static copy). */
const char *hx_error(const hx_resp *r)
{
    static char msg[1024];
    json_t *j = hx_json(r);
    snprintf(msg, sizeof msg, "%s", json_string_value(json_object_get(j, "error")) ?: "");
    json_decref(j);
    return msg;
}
