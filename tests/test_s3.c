/* lib/s3 and the S3 storage backend against a real signature-checking S3
 * server (tests/s3/server.js): round trips, delete, exists, wrong secret,
 * missing bucket, server stopped / restarted / frozen, key rules, URLs. */
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

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
    /* One keep-alive connection served every request. */
    ck_assert_uint_ge(s3_requests(c), 13);
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

/* ---- the storage backend ---- */

START_TEST(test_backend_ops)
{
    aq_config *cfg = s3_config(srv, BUCKET, SUP_S3_SECRET);
    void *st = NULL;
    aq_err e = {0};
    ck_assert_msg(storage_s3_ops.open(cfg, &st, &e) == 0, "open: %s", e.msg);
    ck_assert_str_eq(storage_s3_ops.name, "s3");
    ck_assert_str_eq(storage_s3_ops.location(st), BUCKET);
    ck_assert_int_eq(storage_s3_ops.put(st, "avatars/b/32.png", "\x89PNG", 4, "image/png", &e), 0);
    ck_assert_int_eq(storage_s3_ops.exists(st, "avatars/b/32.png", &e), 1);
    buf out = BUF_INIT;
    ck_assert_int_eq(storage_s3_ops.get(st, "avatars/b/32.png", &out, &e), 0);
    ck_assert_uint_eq(out.len, 4);
    ck_assert_int_eq(storage_s3_ops.get(st, "avatars/none/32.png", &out, &e), AQ_ENOTFOUND);
    ck_assert_int_eq(storage_s3_ops.del(st, "avatars/b/32.png", &e), 0);
    ck_assert_int_eq(storage_s3_ops.exists(st, "avatars/b/32.png", &e), 0);
    /* The health check writes and removes a probe. */
    ck_assert_msg(storage_s3_ops.check(st, &e) == 0, "check: %s", e.msg);
    char probe[300], host[64] = "host";
    gethostname(host, sizeof host - 1);
    snprintf(probe, sizeof probe, "avatars/.health/%s-%ld", host, (long)getpid());
    ck_assert_int_eq(storage_s3_ops.exists(st, probe, &e), 0);
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
        ck_assert_int_lt(storage_s3_ops.exists(st, bad[i], &e), 0);
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
    ck_assert_int_eq(s3_url(c, NULL, "list-type=2&max-keys=1", url, sizeof url, &e), 0);
    ck_assert_str_eq(url, "https://s3.example.com:9000/pics?list-type=2&max-keys=1");
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
    tcase_add_test(live, test_backend_ops);
    tcase_add_test(live, test_bad_keys_refused_before_sending);
    suite_add_tcase(s, live);

    TCase *offline = tcase_create("offline");
    tcase_add_test(offline, test_urls_path_and_virtual_hosted);
    tcase_add_test(offline, test_bad_options_refused);
    suite_add_tcase(s, offline);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(s3_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
