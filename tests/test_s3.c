/* lib/s3 and the S3 storage backend against a real signature-checking S3
 * server (tests/s3/server.js): round trips, delete, exists, wrong secret,
 * missing bucket, server stopped / restarted / frozen, key rules, URLs. */
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "hash.h"

#include "s3.h"
#include "storage.h"
#include "support.h"
#include "support_s3.h"

extern const storage_ops storage_s3_ops;

#define BUCKET "avatars"
#define WRONG_SECRET "Wr0ngSecretValue-do-not-print"

static sup_s3 *srv;

/* Each test gets its own server (started in Check's child, killed with it
 * if the test fails); the parent's unchecked teardown removes what is left. */
static void srv_clean(void)
{
    sup_s3_stop(srv);
    if (srv->dir[0])
        sup_rmtree(srv->dir);
    srv->dir[0] = '\0';
}

static void srv_setup(void)
{
    srv_clean(); /* what a failed test left behind */
    srv->secret[0] = srv->tls_dir[0] = '\0';
    sup_s3_start(srv, BUCKET);
}

static void srv_teardown(void)
{
    srv_clean();
}

static void srv_alloc(void)
{
    srv = sup_s3_new();
}

static void srv_free(void)
{
    sup_s3_free(srv);
    srv = NULL;
}

static s3_opts opts_for(const sup_s3 *s)
{
    return (s3_opts){
        .endpoint = s->endpoint,
        .region = SUP_S3_REGION,
        .bucket = s->bucket,
        .access_key = SUP_S3_KEY,
        .secret_key = SUP_S3_SECRET,
        .path_style = true,
        .timeout_ms = 5000,
        .retries = 2,
        .backoff_base_ms = 20,
        .backoff_max_ms = 200,
    };
}

static s3 *client(const s3_opts *o)
{
    aq_err e = {0};
    s3 *c = s3_open(o, &e);
    ck_assert_msg(c != NULL, "s3_open: %s", e.msg);
    return c;
}

/* An aq_config with only what the S3 backend reads. */
static aq_config *s3_config(const sup_s3 *s, const char *bucket, const char *secret)
{
    aq_config *c = calloc(1, sizeof *c);
    ck_assert_ptr_nonnull(c);
    snprintf(c->storage.backend, sizeof c->storage.backend, "s3");
    snprintf(c->storage.prefix, sizeof c->storage.prefix, "avatars");
    snprintf(c->storage.s3.endpoint, sizeof c->storage.s3.endpoint, "%s", s->endpoint);
    snprintf(c->storage.s3.region, sizeof c->storage.s3.region, SUP_S3_REGION);
    snprintf(c->storage.s3.bucket, sizeof c->storage.s3.bucket, "%s", bucket);
    snprintf(c->storage.s3.access_key, sizeof c->storage.s3.access_key, SUP_S3_KEY);
    snprintf(c->storage.s3.secret_key, sizeof c->storage.s3.secret_key, "%s", secret);
    c->storage.s3.path_style = true;
    c->storage.s3.timeout_ms = 5000;
    c->storage.s3.retries = 2;
    return c;
}

static void fill_random(uint8_t *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1103515245u + 12345u;
        p[i] = (uint8_t)(seed >> 16);
    }
}

/* ---- round trips ---- */

START_TEST(test_round_trip_bytes_and_content_type)
{
    s3_opts o = opts_for(srv);
    s3 *c = client(&o);
    aq_err e = {0};
    static const size_t sizes[] = {0, 1, 1000, 100 * 1024};
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
        uint8_t *data = malloc(sizes[i] + 1);
        fill_random(data, sizes[i], (unsigned)i + 7);
        char key[64];
        snprintf(key, sizeof key, "avatars/rt%zu/64.png", i);
        ck_assert_msg(s3_put(c, key, data, sizes[i], "image/png", &e) == 0, "put: %s", e.msg);
        buf out = BUF_INIT;
        char ctype[64] = "unset";
        ck_assert_msg(s3_get(c, key, &out, ctype, sizeof ctype, &e) == 0, "get: %s", e.msg);
        ck_assert_uint_eq(out.len, sizes[i]);
        ck_assert(sizes[i] == 0 || memcmp(out.data, data, sizes[i]) == 0);
        ck_assert_str_eq(ctype, "image/png");
        ck_assert_int_eq(s3_exists(c, key, &e), 1);
        buf_free(&out);
        free(data);
    }
    /* Another Content-Type comes back as stored, not as a default. */
    ck_assert_int_eq(s3_put(c, "misc/readme.txt", "hi\n", 3, "text/plain", &e), 0);
    buf out = BUF_INIT;
    char ctype[64];
    ck_assert_int_eq(s3_get(c, "misc/readme.txt", &out, ctype, sizeof ctype, &e), 0);
    ck_assert_str_eq(ctype, "text/plain");
    buf_free(&out);
    /* The health check holds with many objects in the bucket. */
    ck_assert_msg(s3_check(c, &e) == 0, "check: %s", e.msg);
    /* One keep-alive connection served every request. */
    ck_assert_uint_ge(s3_requests(c), 14);
    ck_assert_uint_le(s3_connections(c), 2);
    s3_close(c);
}
END_TEST

START_TEST(test_overwrite_replaces_bytes)
{
    s3_opts o = opts_for(srv);
    s3 *c = client(&o);
    aq_err e = {0};
    ck_assert_int_eq(s3_put(c, "a/1.png", "first version", 13, "image/png", &e), 0);
    ck_assert_int_eq(s3_put(c, "a/1.png", "second", 6, "image/png", &e), 0);
    buf out = BUF_INIT;
    ck_assert_int_eq(s3_get(c, "a/1.png", &out, NULL, 0, &e), 0);
    ck_assert_uint_eq(out.len, 6);
    ck_assert(memcmp(out.data, "second", 6) == 0);
    buf_free(&out);
    s3_close(c);
}
END_TEST

START_TEST(test_delete_and_exists)
{
    s3_opts o = opts_for(srv);
    s3 *c = client(&o);
    aq_err e = {0};
    ck_assert_int_eq(s3_exists(c, "avatars/never/32.png", &e), 0);
    ck_assert_int_eq(s3_put(c, "avatars/d/32.png", "png!", 4, "image/png", &e), 0);
    ck_assert_int_eq(s3_exists(c, "avatars/d/32.png", &e), 1);
    ck_assert_msg(s3_delete(c, "avatars/d/32.png", &e) == 0, "delete: %s", e.msg);
    ck_assert_int_eq(s3_exists(c, "avatars/d/32.png", &e), 0);
    buf out = BUF_INIT;
    int rc = s3_get(c, "avatars/d/32.png", &out, NULL, 0, &e);
    ck_assert_int_eq(rc, AQ_ENOTFOUND);
    ck_assert_msg(strstr(e.msg, "NoSuchKey") && strstr(e.msg, "avatars/d/32.png"), "%s", e.msg);
    ck_assert_uint_eq(out.len, 0);
    /* Deleting what is absent is success. */
    ck_assert_int_eq(s3_delete(c, "avatars/d/32.png", &e), 0);
    ck_assert_int_eq(s3_delete(c, "avatars/never/32.png", &e), 0);
    buf_free(&out);
    s3_close(c);
}
END_TEST

START_TEST(test_keys_are_percent_encoded)
{
    char enc[256];
    ck_assert_int_eq(s3_encode_key("a b/c+d%/\xc3\xa9~x_y-z.png", enc, sizeof enc), 0);
    ck_assert_str_eq(enc, "a%20b/c%2Bd%25/%C3%A9~x_y-z.png");
    ck_assert_int_eq(s3_encode_key("abcdef", enc, 4), -1);

    /* Keys that need encoding survive a signed round trip. */
    s3_opts o = opts_for(srv);
    s3 *c = client(&o);
    aq_err e = {0};
    static const char *const keys[] = {"odd keys/a b+c.png", "odd/\xc3\xa9t\xc3\xa9!(1)*.png",
                                       "odd/semi;colon=eq&amp'q.png"};
    for (size_t i = 0; i < sizeof keys / sizeof *keys; i++) {
        ck_assert_msg(s3_put(c, keys[i], "x", 1, "image/png", &e) == 0, "put %s: %s", keys[i],
                      e.msg);
        ck_assert_int_eq(s3_exists(c, keys[i], &e), 1);
        buf out = BUF_INIT;
        ck_assert_msg(s3_get(c, keys[i], &out, NULL, 0, &e) == 0, "get %s: %s", keys[i], e.msg);
        ck_assert_uint_eq(out.len, 1);
        buf_free(&out);
        ck_assert_int_eq(s3_delete(c, keys[i], &e), 0);
        ck_assert_int_eq(s3_exists(c, keys[i], &e), 0);
    }
    s3_close(c);
}
END_TEST

/* ---- permanent failures ---- */

START_TEST(test_wrong_secret_is_permanent)
{
    s3_opts o = opts_for(srv);
    o.secret_key = WRONG_SECRET;
    o.retries = 5;
    s3 *c = client(&o);
    aq_err e = {0};
    int rc = s3_put(c, "avatars/x/64.png", "data", 4, "image/png", &e);
    ck_assert_int_eq(rc, AQ_EPERM);
    ck_assert_msg(strstr(e.msg, "S3 PUT avatars/x/64.png: 403 SignatureDoesNotMatch"), "%s",
                  e.msg);
    ck_assert_msg(!strstr(e.msg, WRONG_SECRET), "secret in message: %s", e.msg);
    ck_assert_uint_eq(s3_requests(c), 1); /* never retried */
    rc = s3_check(c, &e);
    ck_assert_int_eq(rc, AQ_EPERM);
    ck_assert_msg(strstr(e.msg, "SignatureDoesNotMatch"), "%s", e.msg);
    /* HEAD answers carry no body, so no code: still permanent, not "absent". */
    ck_assert_int_eq(s3_exists(c, "avatars/x/64.png", &e), AQ_EPERM);
    ck_assert_msg(strstr(e.msg, "S3 HEAD avatars/x/64.png: 403"), "%s", e.msg);
    buf out = BUF_INIT;
    ck_assert_int_eq(s3_get(c, "avatars/x/64.png", &out, NULL, 0, &e), AQ_EPERM);
    ck_assert_uint_eq(out.len, 0);
    ck_assert_int_eq(s3_delete(c, "avatars/x/64.png", &e), AQ_EPERM);
    ck_assert_uint_eq(s3_requests(c), 5); /* one each, none retried */
    buf_free(&out);
    s3_close(c);

    /* The backend refuses to start with it, clearly, without the secret. */
    aq_config *cfg = s3_config(srv, BUCKET, WRONG_SECRET);
    void *st = NULL;
    rc = storage_s3_ops.open(cfg, &st, &e);
    ck_assert_int_eq(rc, AQ_EPERM);
    ck_assert_ptr_null(st);
    ck_assert_msg(strstr(e.msg, "SignatureDoesNotMatch") && strstr(e.msg, "'" BUCKET "'"), "%s",
                  e.msg);
    ck_assert_msg(!strstr(e.msg, WRONG_SECRET), "secret in message: %s", e.msg);
    free(cfg);
}
END_TEST

START_TEST(test_unknown_access_key_is_permanent)
{
    s3_opts o = opts_for(srv);
    o.access_key = "NOBODY";
    s3 *c = client(&o);
    aq_err e = {0};
    ck_assert_int_eq(s3_check(c, &e), AQ_EPERM);
    ck_assert_msg(strstr(e.msg, "403 InvalidAccessKeyId"), "%s", e.msg);
    s3_close(c);
}
END_TEST

START_TEST(test_missing_bucket_fails_open)
{
    aq_config *cfg = s3_config(srv, "no-such-bucket", SUP_S3_SECRET);
    void *st = NULL;
    aq_err e = {0};
    int rc = storage_s3_ops.open(cfg, &st, &e);
    ck_assert_int_eq(rc, AQ_EPERM);
    ck_assert_ptr_null(st);
    ck_assert_msg(strstr(e.msg, "404 NoSuchBucket") && strstr(e.msg, "'no-such-bucket'") &&
                      strstr(e.msg, srv->endpoint),
                  "%s", e.msg);
    /* A put into it is permanent too (not retried). */
    s3_opts o = opts_for(srv);
    o.bucket = "no-such-bucket";
    s3 *c = client(&o);
    ck_assert_int_eq(s3_put(c, "k.png", "x", 1, "image/png", &e), AQ_EPERM);
    ck_assert_msg(strstr(e.msg, "NoSuchBucket"), "%s", e.msg);
    ck_assert_uint_eq(s3_requests(c), 1);
    s3_close(c);
    free(cfg);
}
END_TEST

START_TEST(test_missing_settings_fail_open)
{
    aq_config *cfg = s3_config(srv, BUCKET, "");
    void *st = NULL;
    aq_err e = {0};
    ck_assert_int_eq(storage_s3_ops.open(cfg, &st, &e), AQ_EPERM);
    ck_assert_msg(strstr(e.msg, "secret_key"), "%s", e.msg);
    snprintf(cfg->storage.s3.secret_key, sizeof cfg->storage.s3.secret_key, SUP_S3_SECRET);
    cfg->storage.s3.endpoint[0] = '\0';
    ck_assert_int_eq(storage_s3_ops.open(cfg, &st, &e), AQ_EPERM);
    ck_assert_msg(strstr(e.msg, "[storage.s3] endpoint"), "%s", e.msg);
    snprintf(cfg->storage.s3.endpoint, sizeof cfg->storage.s3.endpoint, "ftp://127.0.0.1:1");
    ck_assert_int_eq(storage_s3_ops.open(cfg, &st, &e), AQ_EPERM);
    ck_assert_msg(strstr(e.msg, "ftp://127.0.0.1:1") && strstr(e.msg, "http or https"), "%s",
                  e.msg);
    free(cfg);
}
END_TEST

/* ---- transient failures ---- */

START_TEST(test_server_stopped_gives_eagain_after_retries)
{
    sup_s3_stop(srv);
    s3_opts o = opts_for(srv);
    o.retries = 3;
    s3 *c = client(&o);
    aq_err e = {0};
    int rc = s3_put(c, "avatars/s/64.png", "data", 4, "image/png", &e);
    ck_assert_int_eq(rc, AQ_EAGAIN);
    ck_assert_msg(strstr(e.msg, "S3 PUT avatars/s/64.png: gave up after 4 attempts"), "%s",
                  e.msg);
    ck_assert_uint_eq(s3_requests(c), 4);
    s3_close(c);

    /* Start-up against an unreachable endpoint is a clear, transient error. */
    aq_config *cfg = s3_config(srv, BUCKET, SUP_S3_SECRET);
    cfg->storage.s3.retries = 1;
    void *st = NULL;
    rc = storage_s3_ops.open(cfg, &st, &e);
    ck_assert_int_eq(rc, AQ_EAGAIN);
    ck_assert_msg(strstr(e.msg, srv->endpoint) && strstr(e.msg, "gave up after 2 attempts"),
                  "%s", e.msg);
    free(cfg);
}
END_TEST

START_TEST(test_put_while_stopped_succeeds_when_server_returns)
{
    s3_opts o = opts_for(srv);
    o.retries = 40;
    o.backoff_base_ms = 50;
    o.backoff_max_ms = 500;
    s3 *c = client(&o);
    aq_err e = {0};
    ck_assert_int_eq(s3_put(c, "avatars/w/1.png", "before", 6, "image/png", &e), 0);
    sup_s3_stop(srv);
    sup_s3_restart_after(srv, 1500);
    uint8_t data[4096];
    fill_random(data, sizeof data, 99);
    unsigned long before = s3_requests(c);
    int rc = s3_put(c, "avatars/w/2.png", data, sizeof data, "image/png", &e);
    ck_assert_msg(rc == 0, "put: %s", e.msg);
    ck_assert_uint_gt(s3_requests(c) - before, 1); /* it did fail and retry */
    buf out = BUF_INIT;
    ck_assert_int_eq(s3_get(c, "avatars/w/2.png", &out, NULL, 0, &e), 0);
    ck_assert_uint_eq(out.len, sizeof data);
    ck_assert(memcmp(out.data, data, sizeof data) == 0);
    /* What was stored before the restart is still there (same dir). */
    buf_reset(&out);
    ck_assert_int_eq(s3_get(c, "avatars/w/1.png", &out, NULL, 0, &e), 0);
    ck_assert_uint_eq(out.len, 6);
    buf_free(&out);
    s3_close(c);
}
END_TEST

START_TEST(test_frozen_server_times_out_and_retries)
{
    s3_opts o = opts_for(srv);
    o.timeout_ms = 500;
    o.retries = 40;
    o.backoff_base_ms = 50;
    o.backoff_max_ms = 300;
    s3 *c = client(&o);
    aq_err e = {0};
    ck_assert_int_eq(s3_put(c, "avatars/f/1.png", "warm", 4, "image/png", &e), 0);
    sup_s3_freeze(srv);
    /* A helper thaws the server after a while; the put is under way. */
    pid_t server = srv->pid;
    pid_t helper = fork();
    ck_assert_int_ge(helper, 0);
    if (helper == 0) {
        sup_sleep_ms(2500);
        kill(server, SIGCONT);
        _exit(0);
    }
    unsigned long before = s3_requests(c);
    int rc = s3_put(c, "avatars/f/2.png", "after thaw", 10, "image/png", &e);
    waitpid(helper, NULL, 0);
    ck_assert_msg(rc == 0, "put: %s", e.msg);
    ck_assert_uint_gt(s3_requests(c) - before, 1); /* timed out at least once */
    buf out = BUF_INIT;
    ck_assert_int_eq(s3_get(c, "avatars/f/2.png", &out, NULL, 0, &e), 0);
    ck_assert_uint_eq(out.len, 10);
    buf_free(&out);
    s3_close(c);
}
END_TEST

START_TEST(test_frozen_server_without_retries_times_out)
{
    s3_opts o = opts_for(srv);
    o.timeout_ms = 300;
    o.retries = 1;
    s3 *c = client(&o);
    aq_err e = {0};
    sup_s3_freeze(srv);
    int rc = s3_exists(c, "avatars/f/1.png", &e);
    sup_s3_thaw(srv);
    ck_assert_int_eq(rc, AQ_EAGAIN);
    ck_assert_msg(strstr(e.msg, "gave up after 2 attempts") && strstr(e.msg, "timed out"), "%s",
                  e.msg);
    s3_close(c);
}
END_TEST


START_TEST(test_time_budget_ends_retries)
{
    s3_opts o = opts_for(srv);
    o.timeout_ms = 300;
    o.retries = 50;
    o.backoff_base_ms = 10;
    o.backoff_max_ms = 20;
    o.budget_ms = 1000; /* room for about three attempts, not fifty */
    s3 *c = client(&o);
    aq_err e = {0};
    sup_s3_freeze(srv);
    int rc = s3_put(c, "avatars/b/1.png", "x", 1, "image/png", &e);
    sup_s3_thaw(srv);
    ck_assert_int_eq(rc, AQ_EAGAIN);
    ck_assert_msg(strstr(e.msg, "(time budget spent)"), "%s", e.msg);
    ck_assert_uint_ge(s3_requests(c), 1);
    ck_assert_uint_le(s3_requests(c), 4);
    s3_close(c);
}
END_TEST

START_TEST(test_https_round_trip_and_untrusted_certificate)
{
    char tls[256];
    sup_tmpdir(tls, sizeof tls);
    sup_s3_make_cert(tls);
    srv_clean();
    snprintf(srv->tls_dir, sizeof srv->tls_dir, "%s", tls);
    sup_s3_start(srv, BUCKET);
    ck_assert(strncmp(srv->endpoint, "https://", 8) == 0);

    char ca[300];
    snprintf(ca, sizeof ca, "%s/cert.pem", tls);
    s3_opts o = opts_for(srv);
    o.ca_file = ca;
    s3 *c = client(&o);
    aq_err e = {0};
    ck_assert_msg(s3_check(c, &e) == 0, "check over https: %s", e.msg);
    ck_assert_msg(s3_put(c, "avatars/tls/64.png", "secure", 6, "image/png", &e) == 0, "%s",
                  e.msg);
    buf out = BUF_INIT;
    ck_assert_int_eq(s3_get(c, "avatars/tls/64.png", &out, NULL, 0, &e), 0);
    ck_assert_uint_eq(out.len, 6);
    ck_assert(memcmp(out.data, "secure", 6) == 0);
    ck_assert_uint_le(s3_connections(c), 1); /* TLS session kept alive too */
    /* The server goes away under the kept-alive TLS connection: the next
     * request gets through on a new one, and no SIGPIPE (default action
     * here: death) reaches this process. */
    sup_s3_stop(srv);
    sup_s3_restart(srv);
    ck_assert_msg(s3_put(c, "avatars/tls/32.png", "again", 5, "image/png", &e) == 0, "%s",
                  e.msg);
    ck_assert_uint_ge(s3_connections(c), 2);
    buf_free(&out);
    s3_close(c);

    /* Without our CA the certificate is refused: permanent, not retried. */
    o.ca_file = NULL;
    o.retries = 3;
    c = client(&o);
    ck_assert_int_eq(s3_check(c, &e), AQ_EPERM);
    ck_assert_msg(strstr(e.msg, "certificate"), "%s", e.msg);
    ck_assert_uint_eq(s3_requests(c), 1);
    s3_close(c);
    sup_rmtree(tls);
}
END_TEST

static volatile int stop_flag;

static void on_alarm(int sig)
{
    (void)sig;
    stop_flag = 1;
}

START_TEST(test_stop_flag_ends_retries)
{
    sup_s3_stop(srv);
    s3_opts o = opts_for(srv);
    o.retries = 100; /* about 15 s of backoff: far longer than the alarm */
    o.backoff_base_ms = 100;
    o.backoff_max_ms = 200;
    stop_flag = 0;
    o.stop = &stop_flag;
    s3 *c = client(&o);
    struct sigaction sa = {.sa_handler = on_alarm};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGALRM, &sa, NULL);
    alarm(1); /* a shutdown request arrives while the put is retrying */
    aq_err e = {0};
    int rc = s3_put(c, "avatars/stop/1.png", "x", 1, "image/png", &e);
    alarm(0);
    ck_assert_int_eq(rc, AQ_EAGAIN);
    ck_assert_msg(strstr(e.msg, "stopped while retrying"), "%s", e.msg);
    ck_assert_int_eq(stop_flag, 1);
    s3_close(c);
}
END_TEST

/* ---- answers s3rver cannot give (5xx, 429, SlowDown, RequestTimeout) ----
 * A forked responder on a loopback socket answers each request with the next
 * canned HTTP response and appends each request head to a log, so these
 * tests see both how the client classifies answers and what it sent. */

typedef struct canned {
    pid_t pid;
    int port;
    char dir[256], log[300];
} canned;

static void canned_read_request(int fd, FILE *log)
{
    char req[16384];
    size_t n = 0;
    char *end = NULL;
    while (n < sizeof req - 1 && !end) {
        ssize_t k = read(fd, req + n, sizeof req - 1 - n);
        if (k <= 0)
            return;
        n += (size_t)k;
        req[n] = '\0';
        end = strstr(req, "\r\n\r\n");
    }
    if (!end)
        return;
    fwrite(req, 1, (size_t)(end - req) + 4, log);
    fputs("----\n", log);
    fflush(log);
    /* Drain the body (we send no Expect: 100-continue below 1 MiB). */
    const char *cl = strcasestr(req, "\r\ncontent-length:");
    size_t body = cl ? strtoul(cl + 17, NULL, 10) : 0, have = n - (size_t)(end + 4 - req);
    while (have < body) {
        ssize_t k = read(fd, req, sizeof req);
        if (k <= 0)
            return;
        have += (size_t)k;
    }
}

/* The responder's loop: takes rounds[r] connections (1 when rounds is NULL
 * or spent), reads a request on each, then answers them in turn with the
 * next rounds[r] responses; again until the responses run out. A round of
 * several proves requests were in flight at once: a client that sends one
 * at a time never gets an answer. */
static void canned_serve(int ls, const char *path, const size_t *rounds,
                         const char *const *responses)
{
    FILE *log = fopen(path, "w");
    int fds[16];
    for (size_t i = 0, together = 1; log && responses[i]; i += together) {
        together = rounds && *rounds ? *rounds++ : 1;
        for (size_t j = 0; j < together; j++) {
            if ((fds[j] = accept(ls, NULL, NULL)) < 0)
                _exit(1);
            canned_read_request(fds[j], log);
        }
        for (size_t j = 0; j < together && responses[i + j]; j++) {
            ssize_t w = write(fds[j], responses[i + j], strlen(responses[i + j]));
            (void)w;
            shutdown(fds[j], SHUT_WR);
            close(fds[j]);
        }
    }
    _exit(0);
}

/* Starts the responder (see canned_serve) on a free loopback port; rounds
 * is 0-terminated, each at most 16. */
static void canned_start_rounds(canned *cs, const size_t *rounds, const char *const *responses)
{
    for (const size_t *r = rounds; r && *r; r++)
        ck_assert_uint_le(*r, 16);
    memset(cs, 0, sizeof *cs);
    sup_tmpdir(cs->dir, sizeof cs->dir);
    snprintf(cs->log, sizeof cs->log, "%s/requests.log", cs->dir);
    int ls = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge(ls, 0);
    int one = 1;
    setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    ck_assert_int_eq(bind(ls, (struct sockaddr *)&a, sizeof a), 0);
    socklen_t len = sizeof a;
    ck_assert_int_eq(getsockname(ls, (struct sockaddr *)&a, &len), 0);
    ck_assert_int_eq(listen(ls, 16), 0);
    cs->port = ntohs(a.sin_port);
    pid_t parent = getpid();
    cs->pid = fork();
    ck_assert_int_ge(cs->pid, 0);
    if (cs->pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(1);
        canned_serve(ls, cs->log, rounds, responses);
    }
    close(ls);
}

static void canned_start(canned *cs, const char *const *responses)
{
    canned_start_rounds(cs, NULL, responses);
}

static void canned_stop(canned *cs)
{
    if (cs->pid > 0)
        sup_stop(cs->pid, SIGKILL, 5000);
    cs->pid = 0;
    sup_rmtree(cs->dir);
}

static int canned_requests(const canned *cs)
{
    FILE *f = fopen(cs->log, "r");
    int n = 0;
    char line[4096];
    while (f && fgets(line, sizeof line, f))
        n += strcmp(line, "----\n") == 0;
    if (f)
        fclose(f);
    return n;
}

#define XML_ERROR(status, reason, code)                                                   \
    "HTTP/1.1 " status " " reason "\r\nContent-Type: application/xml\r\n"                 \
    "Connection: close\r\nContent-Length: " XML_LEN_##code "\r\n\r\n"                     \
    "<Error><Code>" #code "</Code><Message>canned</Message></Error>"
/* Content-Length: 53 + strlen(code) */
#define XML_LEN_SlowDown "61"
#define XML_LEN_InternalError "66"
#define XML_LEN_RequestTimeout "67"
#define XML_LEN_AccessDenied "65"
#define XML_LEN_InvalidArgument "68"
#define XML_LEN_NoSuchKey "62"
#define XML_LEN_BadDigest "62"
#define OK_EMPTY "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
#define TOO_MANY "HTTP/1.1 429 Too Many Requests\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"

static s3 *canned_client(const canned *cs, int retries)
{
    char endpoint[64];
    snprintf(endpoint, sizeof endpoint, "http://127.0.0.1:%d", cs->port);
    s3_opts o = {.endpoint = endpoint, .region = "eu-central-1", .bucket = "bkt",
                 .access_key = "AKIDEXAMPLE", .secret_key = "canned-secret",
                 .path_style = true, .timeout_ms = 5000, .retries = retries,
                 .backoff_base_ms = 10, .backoff_max_ms = 50};
    return client(&o);
}

START_TEST(test_transient_answers_are_retried)
{
    static const char *const answers[] = {
        XML_ERROR("503", "Slow Down", SlowDown),
        XML_ERROR("500", "Internal Server Error", InternalError),
        TOO_MANY,
        XML_ERROR("400", "Bad Request", RequestTimeout),
        XML_ERROR("400", "Bad Request", BadDigest),
        OK_EMPTY,
        NULL,
    };
    canned cs;
    canned_start(&cs, answers);
    s3 *c = canned_client(&cs, 5);
    aq_err e = {0};
    int rc = s3_put(c, "avatars/t/64.png", "tiny", 4, "image/png", &e);
    ck_assert_msg(rc == 0, "put: %s", e.msg);
    ck_assert_uint_eq(s3_requests(c), 6);
    ck_assert_int_eq(canned_requests(&cs), 6);
    s3_close(c);
    canned_stop(&cs);
}
END_TEST

START_TEST(test_transient_answers_run_out_as_eagain)
{
    static const char *const answers[] = {
        XML_ERROR("503", "Slow Down", SlowDown),
        XML_ERROR("503", "Slow Down", SlowDown),
        XML_ERROR("503", "Slow Down", SlowDown),
        NULL,
    };
    canned cs;
    canned_start(&cs, answers);
    s3 *c = canned_client(&cs, 2);
    aq_err e = {0};
    int rc = s3_put(c, "avatars/t/64.png", "tiny", 4, "image/png", &e);
    ck_assert_int_eq(rc, AQ_EAGAIN);
    ck_assert_msg(strstr(e.msg, "gave up after 3 attempts: 503 SlowDown"), "%s", e.msg);
    s3_close(c);
    canned_stop(&cs);
}
END_TEST

START_TEST(test_permanent_answers_are_not_retried)
{
    static const struct {
        const char *answer, *want;
        int rc;
    } cases[] = {
        {XML_ERROR("403", "Forbidden", AccessDenied), "S3 GET k.png: 403 AccessDenied: canned",
         AQ_EPERM},
        {XML_ERROR("400", "Bad Request", InvalidArgument), "400 InvalidArgument", AQ_EPERM},
        {XML_ERROR("404", "Not Found", NoSuchKey), "404 NoSuchKey", AQ_ENOTFOUND},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        const char *answers[] = {cases[i].answer, OK_EMPTY, NULL};
        canned cs;
        canned_start(&cs, answers);
        s3 *c = canned_client(&cs, 5);
        aq_err e = {0};
        buf out = BUF_INIT;
        int rc = s3_get(c, "k.png", &out, NULL, 0, &e);
        ck_assert_int_eq(rc, cases[i].rc);
        ck_assert_msg(strstr(e.msg, cases[i].want), "case %zu: %s", i, e.msg);
        ck_assert_uint_eq(s3_requests(c), 1);
        ck_assert_uint_eq(out.len, 0); /* an error body is not the object */
        buf_free(&out);
        s3_close(c);
        canned_stop(&cs);
    }
}
END_TEST

START_TEST(test_headers_sent_with_an_upload)
{
    static const char *const answers[] = {OK_EMPTY, OK_EMPTY, NULL};
    canned cs;
    canned_start(&cs, answers);
    s3 *c = canned_client(&cs, 0);
    aq_err e = {0};
    static const char body[] = "\x89PNG\r\n\x1a\n fake image body";
    ck_assert_int_eq(s3_put(c, "avatars/h/32.png", body, sizeof body - 1, "image/png", &e), 0);
    ck_assert_int_eq(s3_exists(c, "avatars/h/32.png", &e), 1);
    s3_close(c);

    buf log = BUF_INIT;
    char cmd[400];
    snprintf(cmd, sizeof cmd, "cat '%s'", cs.log);
    ck_assert_int_eq(sup_run(cmd, &log, false), 0);
    const char *t = (const char *)log.data;
    char sha[65], md5[25], line[200], empty[65];
    hash_sha256_hex(body, sizeof body - 1, sha);
    hash_md5_base64(body, sizeof body - 1, md5);
    hash_sha256_hex("", 0, empty);
    const char *head_req = strstr(t, "HEAD /bkt/avatars/h/32.png HTTP/1.1");
    ck_assert_msg(strstr(t, "PUT /bkt/avatars/h/32.png HTTP/1.1") && head_req, "%s", t);
    snprintf(line, sizeof line, "x-amz-content-sha256: %s", sha);
    ck_assert_msg(strstr(t, line), "no body hash in %s", t);
    snprintf(line, sizeof line, "Content-MD5: %s", md5);
    ck_assert_msg(strstr(t, line), "no Content-MD5 in %s", t);
    ck_assert_msg(strstr(t, "Content-Type: image/png"), "%s", t);
    /* Signed by curl with the configured region, checksums inside the signature. */
    ck_assert_msg(strstr(t, "Authorization: AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/"), "%s", t);
    ck_assert_msg(strstr(t, "/eu-central-1/s3/aws4_request"), "%s", t);
    ck_assert_msg(strstr(t, "SignedHeaders=content-md5;content-type;host;x-amz-content-sha256;"
                            "x-amz-date"),
                  "%s", t);
    /* The HEAD carries the empty-body hash. */
    snprintf(line, sizeof line, "x-amz-content-sha256: %s", empty);
    ck_assert_msg(strstr(head_req, line), "%s", head_req);
    ck_assert_msg(!strstr(t, "canned-secret"), "secret on the wire");
    buf_free(&log);
    canned_stop(&cs);
}
END_TEST

/* Five objects named avatars/p/SIZE.png, for the put_many tests. */
typedef struct five {
    char keys[5][32];
    s3_object objs[5];
} five;

static void five_fill(five *f)
{
    for (size_t i = 0; i < 5; i++) {
        snprintf(f->keys[i], sizeof f->keys[i], "avatars/p/%zu.png", (size_t)32 << i);
        f->objs[i] = (s3_object){f->keys[i], "data", 4, "image/png"};
    }
}

/* What put_five saw: the call's result and message, the index it named,
 * the requests the client sent and those the responder read. */
typedef struct put_seen {
    int rc;
    aq_err e;
    size_t failed;
    unsigned long sent;
    int read;
} put_seen;

/* s3_put_many of f's five objects against a responder that answers in
 * rounds (see canned_serve), with retries. */
static put_seen put_five(const char *const *answers, const size_t *rounds, int retries, five *f)
{
    canned cs;
    canned_start_rounds(&cs, rounds, answers);
    s3 *c = canned_client(&cs, retries);
    five_fill(f);
    put_seen r = {.failed = 99};
    r.rc = s3_put_many(c, f->objs, 5, &r.failed, &r.e);
    r.sent = s3_requests(c);
    s3_close(c);
    r.read = canned_requests(&cs);
    canned_stop(&cs);
    return r;
}

/* The five uploads of one call reach the server at the same time: the
 * responder answers none until all five requests are in. */
START_TEST(test_put_many_sends_in_parallel)
{
    static const char *const answers[] = {OK_EMPTY, OK_EMPTY, OK_EMPTY, OK_EMPTY, OK_EMPTY, NULL};
    static const size_t rounds[] = {5, 0};
    five f;
    put_seen r = put_five(answers, rounds, 0, &f);
    ck_assert_msg(r.rc == 0, "put_many: %s", r.e.msg);
    ck_assert_uint_eq(r.sent, 5);
    ck_assert_int_eq(r.read, 5);
}
END_TEST

/* Only the uploads that failed go again, together: two of the first five
 * are throttled, and the responder's second round wants exactly two. */
START_TEST(test_put_many_retries_only_the_failed)
{
    static const char *const answers[] = {
        XML_ERROR("503", "Slow Down", SlowDown), OK_EMPTY, TOO_MANY, OK_EMPTY, OK_EMPTY,
        OK_EMPTY, OK_EMPTY, NULL,
    };
    static const size_t rounds[] = {5, 2, 0};
    five f;
    put_seen r = put_five(answers, rounds, 3, &f);
    ck_assert_msg(r.rc == 0, "put_many: %s", r.e.msg);
    ck_assert_uint_eq(r.sent, 7);
    ck_assert_int_eq(r.read, 7);
}
END_TEST

/* A permanent answer to one upload fails the call at once, naming that
 * upload's key and index; nothing is retried. */
START_TEST(test_put_many_names_the_refused_upload)
{
    static const char *const answers[] = {
        OK_EMPTY, OK_EMPTY, XML_ERROR("403", "Forbidden", AccessDenied), OK_EMPTY, OK_EMPTY, NULL,
    };
    static const size_t rounds[] = {5, 0};
    five f;
    put_seen r = put_five(answers, rounds, 3, &f);
    ck_assert_int_eq(r.rc, AQ_EPERM);
    ck_assert_uint_lt(r.failed, 5);
    char want[96];
    snprintf(want, sizeof want, "S3 PUT %s: 403 AccessDenied", f.keys[r.failed]);
    ck_assert_msg(strstr(r.e.msg, want), "%s (want %s)", r.e.msg, want);
    ck_assert_uint_eq(r.sent, 5);
}
END_TEST

/* More objects than run at once (8) all arrive, byte for byte, at the real
 * server, over at most one keep-alive connection per parallel slot. */
START_TEST(test_put_many_round_trip_past_one_wave)
{
    s3_opts o = opts_for(srv);
    s3 *c = client(&o);
    enum { N = 11 };
    s3_object objs[N];
    char keys[N][32];
    uint8_t data[N][300];
    for (size_t i = 0; i < N; i++) {
        snprintf(keys[i], sizeof keys[i], "avatars/w/%zu.png", 16 + i);
        fill_random(data[i], sizeof data[i], (unsigned)i + 1);
        objs[i] = (s3_object){keys[i], data[i], sizeof data[i], "image/png"};
    }
    aq_err e = {0};
    size_t failed = 99;
    for (int pass = 0; pass < 2; pass++)
        ck_assert_msg(s3_put_many(c, objs, N, &failed, &e) == 0, "put_many: %s", e.msg);
    ck_assert_uint_eq(s3_requests(c), 2 * N);
    ck_assert_uint_le(s3_connections(c), 8); /* the second pass reused them */
    for (size_t i = 0; i < N; i++) {
        buf out = BUF_INIT;
        ck_assert_msg(s3_get(c, keys[i], &out, NULL, 0, &e) == 0, "get: %s", e.msg);
        ck_assert_uint_eq(out.len, sizeof data[i]);
        ck_assert(memcmp(out.data, data[i], sizeof data[i]) == 0);
        buf_free(&out);
    }
    s3_close(c);
}
END_TEST

START_TEST(test_virtual_hosted_request_on_the_wire)
{
    /* s3rver signs virtual-hosted requests over "/BUCKET/KEY" (its bug), so
     * the shape of what we send is checked here: bucket in Host, key as the
     * path, reached through CONNECT_TO without DNS. */
    static const char *const answers[] = {OK_EMPTY, NULL};
    canned cs;
    canned_start(&cs, answers);
    char endpoint[64], connect_to[64];
    snprintf(endpoint, sizeof endpoint, "http://s3.example.test:%d", cs.port);
    snprintf(connect_to, sizeof connect_to, "::127.0.0.1:%d", cs.port);
    s3_opts o = {.endpoint = endpoint, .region = "us-east-1", .bucket = "bkt",
                 .access_key = "AK", .secret_key = "SK", .path_style = false,
                 .timeout_ms = 5000, .retries = 0, .connect_to = connect_to};
    s3 *c = client(&o);
    aq_err e = {0};
    ck_assert_msg(s3_put(c, "avatars/v/1.png", "v", 1, "image/png", &e) == 0, "%s", e.msg);
    s3_close(c);
    buf log = BUF_INIT;
    char cmd[400], host[96];
    snprintf(cmd, sizeof cmd, "cat '%s'", cs.log);
    ck_assert_int_eq(sup_run(cmd, &log, false), 0);
    snprintf(host, sizeof host, "Host: bkt.s3.example.test:%d", cs.port);
    ck_assert_msg(strstr((char *)log.data, "PUT /avatars/v/1.png HTTP/1.1"), "%s", log.data);
    ck_assert_msg(strstr((char *)log.data, host), "%s", log.data);
    buf_free(&log);
    canned_stop(&cs);
}
END_TEST

/* ---- the storage backend ---- */

START_TEST(test_backend_ops)
{
    aq_config *cfg = s3_config(srv, BUCKET, SUP_S3_SECRET);
    void *st = NULL;
    aq_err e = {0};
    ck_assert_ptr_eq(storage_find("s3"), &storage_s3_ops);
    storage via = {0};
    ck_assert_msg(storage_open(&via, cfg, &e) == 0, "storage_open: %s", e.msg);
    ck_assert_str_eq(storage_name(&via), "s3");
    ck_assert_str_eq(storage_location(&via), BUCKET);
    storage_close(&via);
    ck_assert_msg(storage_s3_ops.open(cfg, &st, &e) == 0, "open: %s", e.msg);
    ck_assert_str_eq(storage_s3_ops.name, "s3");
    ck_assert_str_eq(storage_s3_ops.location(st), BUCKET);
    ck_assert_int_eq(storage_s3_ops.put(st, "avatars/b/32.png", "\x89PNG", 4, "image/png", &e), 0);
    buf out = BUF_INIT;
    ck_assert_int_eq(storage_s3_ops.get(st, "avatars/b/32.png", &out, &e), 0);
    ck_assert_uint_eq(out.len, 4);
    ck_assert_int_eq(storage_s3_ops.get(st, "avatars/none/32.png", &out, &e), AQ_ENOTFOUND);
    ck_assert_int_eq(storage_s3_ops.del(st, "avatars/b/32.png", &e), 0);
    ck_assert_int_eq(storage_s3_ops.get(st, "avatars/b/32.png", &out, &e), AQ_ENOTFOUND);
    /* The health check writes and removes a probe. */
    ck_assert_msg(storage_s3_ops.check(st, &e) == 0, "check: %s", e.msg);
    char probe[300], host[64] = "host";
    gethostname(host, sizeof host - 1);
    snprintf(probe, sizeof probe, "avatars/.health/%s-%ld", host, (long)getpid());
    ck_assert_int_eq(storage_s3_ops.get(st, probe, &out, &e), AQ_ENOTFOUND);
    buf_free(&out);
    storage_s3_ops.close(st);
    free(cfg);
}
END_TEST

START_TEST(test_bad_keys_refused_before_sending)
{
    aq_config *cfg = s3_config(srv, BUCKET, SUP_S3_SECRET);
    void *st = NULL;
    aq_err e = {0};
    ck_assert_msg(storage_s3_ops.open(cfg, &st, &e) == 0, "open: %s", e.msg);
    static const char *const bad[] = {"", "/abs.png", "a/../b.png", "..", "a//b.png", "a/b/"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        ck_assert_msg(storage_s3_ops.put(st, bad[i], "x", 1, "image/png", &e) == AQ_EPERM,
                      "put '%s' accepted", bad[i]);
        buf out = BUF_INIT;
        ck_assert_int_eq(storage_s3_ops.get(st, bad[i], &out, &e), AQ_EPERM);
        ck_assert_int_eq(storage_s3_ops.del(st, bad[i], &e), AQ_EPERM);
    }
    /* Nothing reached the server under a traversal name. */
    char path[400];
    snprintf(path, sizeof path, "%s/data/b.png", srv->dir);
    ck_assert_int_ne(access(path, F_OK), 0);
    storage_s3_ops.close(st);
    free(cfg);
}
END_TEST

/* ---- options and URLs (no server) ---- */

START_TEST(test_urls_path_and_virtual_hosted)
{
    s3_opts o = {.endpoint = "https://s3.example.com:9000/", .region = "eu-west-1",
                 .bucket = "pics", .access_key = "AK", .secret_key = "SK",
                 .path_style = true, .timeout_ms = 1000, .retries = 0};
    s3 *c = client(&o);
    char url[512];
    aq_err e = {0};
    ck_assert_int_eq(s3_url(c, "avatars/a b/64.png", NULL, url, sizeof url, &e), 0);
    ck_assert_str_eq(url, "https://s3.example.com:9000/pics/avatars/a%20b/64.png");
    ck_assert_int_eq(s3_url(c, NULL, "list-type=2&max-keys=0", url, sizeof url, &e), 0);
    ck_assert_str_eq(url, "https://s3.example.com:9000/pics?list-type=2&max-keys=0");
    ck_assert_str_eq(s3_bucket(c), "pics");
    s3_close(c);

    o.path_style = false;
    o.endpoint = "http://minio.local";
    c = client(&o);
    ck_assert_int_eq(s3_url(c, "avatars/x/64.png", NULL, url, sizeof url, &e), 0);
    ck_assert_str_eq(url, "http://pics.minio.local/avatars/x/64.png");
    ck_assert_int_eq(s3_url(c, NULL, "list-type=2&max-keys=1", url, sizeof url, &e), 0);
    ck_assert_str_eq(url, "http://pics.minio.local/?list-type=2&max-keys=1");
    s3_close(c);

    o.endpoint = "http://[::1]:9000";
    o.path_style = true;
    c = client(&o);
    ck_assert_int_eq(s3_url(c, "k.png", NULL, url, sizeof url, &e), 0);
    ck_assert_str_eq(url, "http://[::1]:9000/pics/k.png");
    s3_close(c);

    o.endpoint = "http://store.example/s3/";
    o.path_style = true;
    c = client(&o);
    ck_assert_int_eq(s3_url(c, "k.png", NULL, url, sizeof url, &e), 0);
    ck_assert_str_eq(url, "http://store.example/s3/pics/k.png");
    s3_close(c);
}
END_TEST

START_TEST(test_bad_options_refused)
{
    s3_opts good = {.endpoint = "http://127.0.0.1:9000", .region = "us-east-1",
                    .bucket = "b", .access_key = "AK", .secret_key = "SK",
                    .path_style = true, .timeout_ms = 1000, .retries = 3};
    static const struct {
        const char *endpoint, *bucket, *region;
        bool path_style;
        int timeout_ms;
        const char *want;
    } cases[] = {
        {"ftp://127.0.0.1", NULL, NULL, true, 1000, "http or https"},
        {"", NULL, NULL, true, 1000, "endpoint is empty"},
        {"http://", NULL, NULL, true, 1000, "endpoint"},
        {"http://127.0.0.1:9000", NULL, NULL, false, 1000, "IP address"},
        {NULL, "bad/bucket", NULL, true, 1000, "bucket 'bad/bucket'"},
        {NULL, "", NULL, true, 1000, "bucket ''"},
        {NULL, NULL, "us east", true, 1000, "region 'us east'"},
        {NULL, NULL, NULL, true, 0, "timeout_ms 0"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        s3_opts o = good;
        if (cases[i].endpoint)
            o.endpoint = cases[i].endpoint;
        if (cases[i].bucket)
            o.bucket = cases[i].bucket;
        if (cases[i].region)
            o.region = cases[i].region;
        o.path_style = cases[i].path_style;
        o.timeout_ms = cases[i].timeout_ms;
        aq_err e = {0};
        s3 *c = s3_open(&o, &e);
        ck_assert_msg(c == NULL, "case %zu accepted", i);
        ck_assert_int_eq(e.code, AQ_EPERM);
        ck_assert_msg(strstr(e.msg, cases[i].want), "case %zu: '%s' lacks '%s'", i, e.msg,
                      cases[i].want);
    }
    /* Credentials inside the endpoint are refused and never echoed. */
    s3_opts o = good;
    o.endpoint = "http://user:hunter2@127.0.0.1:9000";
    aq_err e = {0};
    ck_assert_ptr_null(s3_open(&o, &e));
    ck_assert_msg(!strstr(e.msg, "hunter2"), "%s", e.msg);
    o.endpoint = "http://user:hunter2@127.0.0.1:notaport"; /* does not even parse */
    ck_assert_ptr_null(s3_open(&o, &e));
    ck_assert_msg(!strstr(e.msg, "hunter2") && strstr(e.msg, "not a URL"), "%s", e.msg);
    o = good;
    o.secret_key = "";
    ck_assert_ptr_null(s3_open(&o, &e));
    ck_assert_msg(strstr(e.msg, "secret key is empty"), "%s", e.msg);
}
END_TEST

static Suite *s3_suite(void)
{
    Suite *s = suite_create("s3");
    TCase *live = tcase_create("live");
    tcase_add_unchecked_fixture(live, srv_alloc, srv_free);
    tcase_add_checked_fixture(live, srv_setup, srv_teardown);
    tcase_set_timeout(live, 120);
    tcase_add_test(live, test_round_trip_bytes_and_content_type);
    tcase_add_test(live, test_overwrite_replaces_bytes);
    tcase_add_test(live, test_delete_and_exists);
    tcase_add_test(live, test_keys_are_percent_encoded);
    tcase_add_test(live, test_wrong_secret_is_permanent);
    tcase_add_test(live, test_unknown_access_key_is_permanent);
    tcase_add_test(live, test_missing_bucket_fails_open);
    tcase_add_test(live, test_missing_settings_fail_open);
    tcase_add_test(live, test_server_stopped_gives_eagain_after_retries);
    tcase_add_test(live, test_put_while_stopped_succeeds_when_server_returns);
    tcase_add_test(live, test_frozen_server_times_out_and_retries);
    tcase_add_test(live, test_frozen_server_without_retries_times_out);
    tcase_add_test(live, test_time_budget_ends_retries);
    tcase_add_test(live, test_stop_flag_ends_retries);
    tcase_add_test(live, test_https_round_trip_and_untrusted_certificate);
    tcase_add_test(live, test_backend_ops);
    tcase_add_test(live, test_bad_keys_refused_before_sending);
    tcase_add_test(live, test_put_many_round_trip_past_one_wave);
    suite_add_tcase(s, live);

    TCase *answers = tcase_create("answers");
    tcase_set_timeout(answers, 60);
    tcase_add_test(answers, test_transient_answers_are_retried);
    tcase_add_test(answers, test_transient_answers_run_out_as_eagain);
    tcase_add_test(answers, test_permanent_answers_are_not_retried);
    tcase_add_test(answers, test_headers_sent_with_an_upload);
    tcase_add_test(answers, test_virtual_hosted_request_on_the_wire);
    tcase_add_test(answers, test_put_many_sends_in_parallel);
    tcase_add_test(answers, test_put_many_retries_only_the_failed);
    tcase_add_test(answers, test_put_many_names_the_refused_upload);
    suite_add_tcase(s, answers);

    TCase *offline = tcase_create("offline");
    tcase_add_test(offline, test_urls_path_and_virtual_hosted);
    tcase_add_test(offline, test_bad_options_refused);
    suite_add_tcase(s, offline);
    return s;
}

int main(void)
{
    return sup_run_suite(s3_suite());
}
