/* bin/avatarq-worker end to end against a real redis-server: the job path,
 * heartbeats, graceful stop, bad documents, hostile ids, idempotence and
 * delete jobs. */
#include <check.h>
#include <dirent.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "config.h"
#include "meta.h"
#include "pngenc.h"
#include "support.h"
#include "support_worker.h"

static wh H;

static void setup(void)
{
    wh_setup(&H, false, NULL);
}

static void teardown(void)
{
    wh_teardown(&H);
}

/* ---- helpers ---- */

static void assert_png(const char *id, int size)
{
    char path[512];
    wh_png_path(&H, id, size, path, sizeof path);
    buf b = BUF_INIT;
    ck_assert_msg(sup_read_file(path, &b), "missing %s", path);
    uint8_t *rgba = NULL;
    int w = 0, h = 0;
    aq_err e = {0};
    ck_assert_msg(pngenc_decode(b.data, b.len, &rgba, &w, &h, &e) == 0, "%s: %s", path, e.msg);
    ck_assert_int_eq(w, size);
    ck_assert_int_eq(h, size);
    free(rgba);
    buf_free(&b);
}

static void open_meta(meta *m)
{
    static aq_config c;
    aq_err e = {0};
    ck_assert_msg(config_load(&c, H.cfg, &e) == 0, "%s", e.msg);
    ck_assert_msg(meta_open(m, &c, true, &e) == 0, "%s", e.msg);
}

static int64_t meta_rows(void)
{
    meta m;
    open_meta(&m);
    int64_t n = -1;
    aq_err e = {0};
    ck_assert_msg(meta_count(&m, &n, &e) == 0, "%s", e.msg);
    meta_close(&m);
    return n;
}

static void start_and_wait_workers(int n)
{
    wh_start(&H, NULL);
    ck_assert_msg(wh_wait_int(&H, n, 20000, "SCARD " WH_NS ":workers"),
                  "workers did not register");
}

/* ---- the job path ---- */

START_TEST(t_job_done)
{
    start_and_wait_workers(2);
    /* raw LPUSH with redis-cli, as any producer would */
    ck_assert_int_eq(sup_redis_cli(&H.r, NULL,
        "LPUSH " WH_NS ":queue:default '{\"v\":1,\"id\":\"user-42\",\"seed\":\"alice\","
        "\"sizes\":[32,64],\"created_at\":1700000000000}'"), 0);
    ck_assert_msg(wh_wait_state(&H, "user-42", "done", 20000), "job not done");

    /* the job hash */
    ck_assert_str_eq(wh_str(&H, "HGET " WH_NS ":job:user-42 attempts"), "1");
    ck_assert_str_eq(wh_str(&H, "HGET " WH_NS ":job:user-42 queue"), "default");
    char worker[200];
    snprintf(worker, sizeof worker, "%s", wh_str(&H, "HGET " WH_NS ":job:user-42 worker"));
    const char *pid = strrchr(worker, ':'), *nonce = pid ? strchr(pid, '-') : NULL;
    ck_assert_msg(pid && atol(pid + 1) > 0 && nonce && strlen(nonce + 1) == 4 &&
                      strspn(nonce + 1, "0123456789abcdef") == 4,
                  "worker field is not HOST:PID-NONCE: '%s'", worker);
    ck_assert_int_eq(wh_int(&H, "HGET " WH_NS ":job:user-42 created_at"), 1700000000000LL);
    long long started = wh_int(&H, "HGET " WH_NS ":job:user-42 started_at");
    long long finished = wh_int(&H, "HGET " WH_NS ":job:user-42 finished_at");
    ck_assert_int_gt(started, 1700000000000LL);
    ck_assert_int_ge(finished, started);
    ck_assert_int_ge(wh_int(&H, "HGET " WH_NS ":job:user-42 duration_ms"), 0);
    ck_assert_int_gt(wh_int(&H, "TTL " WH_NS ":job:user-42"), 0);
    json_t *out = json_loads(wh_str(&H, "HGET " WH_NS ":job:user-42 outputs"), 0, NULL);
    ck_assert_msg(json_is_object(out), "outputs is not a JSON object");
    ck_assert_str_eq(json_string_value(json_object_get(out, "32")), "avatars/user-42/32.png");
    ck_assert_str_eq(json_string_value(json_object_get(out, "64")), "avatars/user-42/64.png");
    json_decref(out);

    /* the files and the row */
    assert_png("user-42", 32);
    assert_png("user-42", 64);
    meta m;
    meta_row row;
    aq_err e = {0};
    open_meta(&m);
    ck_assert_msg(meta_get(&m, "user-42", &row, &e) == 0, "%s", e.msg);
    ck_assert_str_eq(row.seed, "alice");
    ck_assert_str_eq(row.storage, "local");
    ck_assert_int_eq(row.attempts, 1);
    ck_assert_str_eq(row.worker, worker);
    int64_t n = 0;
    ck_assert(meta_count(&m, &n, &e) == 0);
    ck_assert_int_eq(n, 1);
    meta_close(&m);

    /* events and counters */
    ck_assert_int_ge(wh_int(&H, "XLEN " WH_NS ":events"), 1);
    buf b = BUF_INIT;
    sup_redis_cli(&H.r, &b, "XRANGE " WH_NS ":events - +");
    ck_assert_msg(b.data && strstr((char *)b.data, "user-42") && strstr((char *)b.data, "done"),
                  "no done event for user-42");
    buf_free(&b);
    ck_assert_int_eq(wh_int(&H, "HGET " WH_NS ":stats done"), 1);
    ck_assert_int_eq(wh_int(&H, "HGET " WH_NS ":stats started"), 1);
    ck_assert_int_eq(wh_int(&H, "HGET " WH_NS ":stats enqueued"), 1);
    ck_assert_int_eq(wh_processing(&H), 0);
}
END_TEST

START_TEST(t_heartbeat)
{
    start_and_wait_workers(2);
    ck_assert_int_eq(wh_count_keys(&H, WH_NS ":worker:*"), 2);
    pid_t pids[4];
    ck_assert_int_eq(wh_worker_pids(&H, pids, 4), 2);
    for (int i = 0; i < 2; i++) {
        char key[256];
        wh_worker_key(pids[i], key, sizeof key);
        long long ttl = wh_int(&H, "TTL %s", key);
        ck_assert_msg(ttl > 0 && ttl <= 3, "heartbeat TTL of %s is %lld", key, ttl);
        ck_assert_str_eq(wh_str(&H, "HGET %s state", key), "idle");
        ck_assert(kill(pids[i], 0) == 0); /* a real, live process */
    }
    /* the supervisor keeps beating past the TTL */
    sup_sleep_ms(4000);
    ck_assert_int_eq(wh_count_keys(&H, WH_NS ":worker:*"), 2);
    wh_stop_clean(&H);
    ck_assert_int_eq(wh_count_keys(&H, WH_NS ":worker:*"), 0);
    ck_assert_int_eq(wh_int(&H, "SCARD " WH_NS ":workers"), 0);
    for (int i = 0; i < 2; i++)
        ck_assert_msg(kill(pids[i], 0) != 0, "worker %d still alive after stop", (int)pids[i]);
}
END_TEST

START_TEST(t_sigterm_finishes_jobs_in_hand)
{
    enum { N = 60 };
    start_and_wait_workers(2);
    char doc[256];
    for (int i = 0; i < N; i++) {
        snprintf(doc, sizeof doc,
                 "{\"id\":\"t-%d\",\"seed\":\"s%d\",\"style\":\"pixel\",\"sizes\":[512,1024]}", i, i);
        wh_push_str(&H, doc);
    }
    ck_assert(wh_wait_int(&H, 1, 30000, "HGET " WH_NS ":stats done"));
    wh_stop_clean(&H);
    long long done = wh_int(&H, "HGET " WH_NS ":stats done");
    long long queued = wh_int(&H, "LLEN " WH_NS ":queue:default");
    /* nothing abandoned: every job is either done or still queued */
    ck_assert_int_eq(wh_processing(&H), 0);
    ck_assert_int_eq(done + queued, N);
    for (int i = 0; i < N; i++) {
        const char *st = wh_str(&H, "HGET " WH_NS ":job:t-%d state", i);
        ck_assert_msg(strcmp(st, "running") != 0, "t-%d left running", i);
    }
    ck_assert_int_eq(meta_rows(), done);
}
END_TEST

/* ---- bad documents ---- */

typedef struct bad_doc {
    const char *doc;   /* NULL: built by the test */
    const char *why;   /* a substring the dead letter's error must contain */
    const char *id;    /* job hash that must end dead, or NULL */
} bad_doc;

static const bad_doc BAD[] = {
    {"not json", "", NULL},
    {"[1,2,3]", "", NULL},
    {"42", "", NULL},
    {"{\"seed\":", "", NULL},
    {"{}", "seed", NULL},
    {"{\"v\":2,\"seed\":\"x\"}", "v", NULL},
    {"{\"v\":\"1\",\"seed\":\"x\"}", "v", NULL},
    {"{\"seed\":\"\"}", "seed", NULL},
    {"{\"seed\":7}", "seed", NULL},
    {"{\"id\":\"bad-size\",\"seed\":\"x\",\"sizes\":[0]}", "sizes", "bad-size"},
    {"{\"id\":\"bad-big\",\"seed\":\"x\",\"sizes\":[1000000000]}", "sizes", "bad-big"},
    {"{\"seed\":\"x\",\"sizes\":\"64\"}", "sizes", NULL},
    {"{\"seed\":\"x\",\"style\":\"cubist\"}", "style", NULL},
    {"{\"seed\":\"x\",\"type\":\"explode\"}", "type", NULL},
    {"{\"seed\":\"x\",\"primary\":\"#zzzzzz\"}", "primary", NULL},
    {"{\"seed\":\"x\",\"filter\":\"blur\"}", "filter", NULL},
    {"{\"seed\":\"x\",\"angle\":720}", "angle", NULL},
    {"{\"seed\":\"x\",\"max_attempts\":0}", "max_attempts", NULL},
    {"{\"seed\":\"x\",\"angle\":NaN}", "", NULL},
    {"{\"id\":\"../x\",\"seed\":\"x\"}", "id", NULL},
    {"{\"id\":\"a/b\",\"seed\":\"x\"}", "id", NULL},
    {"{\"id\":\".hidden\",\"seed\":\"x\"}", "id", NULL},
    {"{\"id\":\"\",\"seed\":\"x\"}", "id", NULL},
    {"{\"seed\":\"\xff\xfe\"}", "", NULL},
};

/* Documents too odd for a C string literal table. */
static char *big_seed_doc(size_t *len)
{
    size_t n = 1 << 20;
    char *d = malloc(n + 32);
    strcpy(d, "{\"seed\":\"");
    memset(d + 9, 'a', n);
    strcpy(d + 9 + n, "\"}");
    *len = strlen(d);
    return d;
}

static char *depth_bomb(size_t *len)
{
    size_t depth = 100000;
    char *d = malloc(2 * depth + 1);
    memset(d, '[', depth);
    memset(d + depth, ']', depth);
    d[2 * depth] = '\0';
    *len = 2 * depth;
    return d;
}

START_TEST(t_bad_documents_go_dead)
{
    wh_write_config(&H, "processes = 1\n", NULL);
    start_and_wait_workers(1);
    const char *before = wh_str(&H, "SRANDMEMBER " WH_NS ":workers");
    char worker[200];
    snprintf(worker, sizeof worker, "%s", before);
    size_t nbad = sizeof BAD / sizeof *BAD;
    for (size_t i = 0; i < nbad; i++)
        wh_push_str(&H, BAD[i].doc);
    size_t len;
    char *big = big_seed_doc(&len);
    wh_push(&H, big, len);
    free(big);
    char *bomb = depth_bomb(&len);
    wh_push(&H, bomb, len);
    free(bomb);
    wh_push(&H, "{\"seed\":\"x\",\"nul\":\"a\\u0000b\"}\0tail", 34);
    size_t total = nbad + 3;
    wh_push_str(&H, "{\"id\":\"good-after\",\"seed\":\"still-works\",\"sizes\":[32]}");
    ck_assert_msg(wh_wait_state(&H, "good-after", "done", 30000), "good job after bad ones not done");
    ck_assert_int_eq(wh_int(&H, "LLEN " WH_NS ":dead"), (long long)total);
    /* the same worker process did it all: nothing crashed */
    ck_assert_int_eq(wh_int(&H, "SCARD " WH_NS ":workers"), 1);
    ck_assert_str_eq(wh_str(&H, "SRANDMEMBER " WH_NS ":workers"), worker);
    /* NS:dead is LPUSHed: entry 0 is the last bad doc; the table is FIFO */
    for (size_t i = 0; i < nbad; i++) {
        long idx = (long)(total - 1 - i);
        const char *dead = wh_str(&H, "LINDEX " WH_NS ":dead %ld", idx);
        json_error_t je;
        json_t *o = json_loads(dead, 0, &je);
        ck_assert_msg(json_is_object(o), "dead[%ld] for %s is not a JSON object: %s", idx,
                      BAD[i].doc, dead);
        const char *err = json_string_value(json_object_get(o, "error"));
        ck_assert_msg(err && *err, "dead letter of %s has no error", BAD[i].doc);
        ck_assert_msg(strstr(err, BAD[i].why), "error for %s is '%s', wanted '%s'",
                      BAD[i].doc, err, BAD[i].why);
        ck_assert_msg(json_integer_value(json_object_get(o, "failed_at")) > 0, "no failed_at");
        ck_assert_msg(json_is_integer(json_object_get(o, "attempts")), "no attempts");
        json_decref(o);
        if (BAD[i].id) /* an invalid document touches only the dead list */
            ck_assert_int_eq(wh_int(&H, "EXISTS " WH_NS ":job:%s", BAD[i].id), 0);
    }
    /* a 1 MB document is not kept whole in Redis */
    ck_assert_int_lt((long long)strlen(wh_str(&H, "LINDEX " WH_NS ":dead 2")), 8192);
    ck_assert_int_eq(wh_processing(&H), 0);
    ck_assert_int_eq(wh_int(&H, "HGET " WH_NS ":stats dead"), (long long)total);
}
END_TEST

/* Counts files below dir (recursively) whose path is not under keep. */
static int files_outside(const char *dir, const char *keep)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "find '%s' -type f ! -path '%s/*' ! -name config.ini ! -name worker.log "
             "! -name 'meta.db*' | wc -l", dir, keep);
    buf b = BUF_INIT;
    sup_run(cmd, &b, false);
    int n = atoi((char *)b.data);
    buf_free(&b);
    return n;
}

START_TEST(t_hostile_ids_stay_inside_root)
{
    start_and_wait_workers(2);
    static const char *ids[] = {"../x", "a/b", ".hidden", "..", "/etc/x", "a\\\\b", "%2e%2e",
                                "x/../../y"};
    char doc[256];
    for (size_t i = 0; i < sizeof ids / sizeof *ids; i++) {
        snprintf(doc, sizeof doc, "{\"id\":\"%s\",\"seed\":\"evil\",\"sizes\":[32]}", ids[i]);
        wh_push_str(&H, doc);
    }
    wh_push_str(&H, "{\"id\":\"fine\",\"seed\":\"evil\",\"sizes\":[32]}");
    ck_assert(wh_wait_state(&H, "fine", "done", 20000));
    ck_assert(wh_wait_int(&H, (long long)(sizeof ids / sizeof *ids), 20000,
                          "LLEN " WH_NS ":dead"));
    ck_assert_int_eq(files_outside(H.dir, H.root), 0);
    /* and inside root only the good one */
    char cmd[600];
    snprintf(cmd, sizeof cmd, "find '%s' -type f | wc -l", H.root);
    buf b = BUF_INIT;
    sup_run(cmd, &b, false);
    ck_assert_int_eq(atoi((char *)b.data), 1);
    buf_free(&b);
    ck_assert_int_eq(meta_rows(), 1);
}
END_TEST

START_TEST(t_same_job_twice)
{
    start_and_wait_workers(2);
    const char *doc = "{\"id\":\"twice\",\"seed\":\"same\",\"style\":\"wave\",\"sizes\":[64,128]}";
    wh_push_str(&H, doc);
    ck_assert(wh_wait_state(&H, "twice", "done", 20000));
    char path[512];
    wh_png_path(&H, "twice", 128, path, sizeof path);
    buf first = BUF_INIT, second = BUF_INIT;
    ck_assert(sup_read_file(path, &first));
    wh_push_str(&H, doc);
    ck_assert(wh_wait_int(&H, 2, 20000, "HGET " WH_NS ":stats done"));
    ck_assert(wh_wait_state(&H, "twice", "done", 20000));
    ck_assert(sup_read_file(path, &second));
    ck_assert_int_eq(first.len, second.len);
    ck_assert(memcmp(first.data, second.data, first.len) == 0);
    ck_assert_int_eq(meta_rows(), 1);
    buf_free(&first);
    buf_free(&second);
}
END_TEST

START_TEST(t_delete_job)
{
    start_and_wait_workers(2);
    wh_push_str(&H, "{\"id\":\"gone\",\"seed\":\"bye\",\"sizes\":[32,64]}");
    ck_assert(wh_wait_state(&H, "gone", "done", 20000));
    char p32[512], p64[512];
    wh_png_path(&H, "gone", 32, p32, sizeof p32);
    wh_png_path(&H, "gone", 64, p64, sizeof p64);
    ck_assert(wh_exists(p32) && wh_exists(p64));
    ck_assert_int_eq(meta_rows(), 1);
    wh_push_str(&H, "{\"id\":\"gone\",\"type\":\"delete\"}");
    ck_assert(wh_wait_int(&H, 2, 20000, "HGET " WH_NS ":stats done"));
    ck_assert(!wh_exists(p32) && !wh_exists(p64));
    ck_assert_int_eq(meta_rows(), 0);
}
END_TEST

START_TEST(t_cli_errors)
{
    buf b = BUF_INIT;
    char cmd[600];
    snprintf(cmd, sizeof cmd, "%s --bogus", sup_bin("avatarq-worker"));
    ck_assert_int_ne(sup_run(cmd, &b, true), 0);
    ck_assert_msg(strstr((char *)b.data, "--bogus"), "error does not name the option: %s", b.data);
    snprintf(cmd, sizeof cmd, "%s -c /nonexistent/avatarq.ini", sup_bin("avatarq-worker"));
    ck_assert_int_ne(sup_run(cmd, &b, true), 0);
    ck_assert_msg(strstr((char *)b.data, "/nonexistent/avatarq.ini"), "%s", b.data);
    snprintf(cmd, sizeof cmd, "%s --processes 0", sup_bin("avatarq-worker"));
    ck_assert_int_ne(sup_run(cmd, &b, true), 0);
    /* --help lists the keys and the environment rule, and no secret */
    wh_write_config(&H, NULL, "");
    snprintf(cmd, sizeof cmd,
             "AVATARQ_REDIS_URL=redis://:hunter2@127.0.0.1:1/0 %s --help", sup_bin("avatarq-worker"));
    ck_assert_int_eq(sup_run(cmd, &b, true), 0);
    ck_assert(strstr((char *)b.data, "AVATARQ_<SECTION>_<KEY>"));
    ck_assert(strstr((char *)b.data, "heartbeat_interval_s"));
    ck_assert(!strstr((char *)b.data, "hunter2"));
    /* a start-up error names the problem and never the password */
    snprintf(cmd, sizeof cmd,
             "AVATARQ_REDIS_URL=redis://:hunter2@127.0.0.1:1/0 AVATARQ_REDIS_CONNECT_TIMEOUT_MS=100 "
             "timeout 60 %s -c '%s'", sup_bin("avatarq-worker"), H.cfg);
    ck_assert_int_eq(sup_run(cmd, &b, true), 1);
    ck_assert(!strstr((char *)b.data, "hunter2"));
    ck_assert_msg(strstr((char *)b.data, "redis"), "%s", b.data);
    buf_free(&b);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("worker");
    TCase *tc = tcase_create("worker");
    tcase_add_unchecked_fixture(tc, NULL, wh_reap_strays);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, t_job_done);
    tcase_add_test(tc, t_heartbeat);
    tcase_add_test(tc, t_sigterm_finishes_jobs_in_hand);
    tcase_add_test(tc, t_bad_documents_go_dead);
    tcase_add_test(tc, t_hostile_ids_stay_inside_root);
    tcase_add_test(tc, t_same_job_twice);
    tcase_add_test(tc, t_delete_job);
    tcase_add_test(tc, t_cli_errors);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return sup_run_suite(suite());
}
