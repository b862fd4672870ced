/* The real bin/avatarq-worker with [storage] backend = s3 against the
 * signature-checking S3 test server (issue 4): 200 jobs through S3 outages
 * end done (none dead, none lost, every object and row there); jobs held up
 * by a frozen server (SIGSTOP) time out, retry and finish after SIGCONT;
 * credentials rotated under a running worker make the job dead at once with
 * SignatureDoesNotMatch; a missing bucket, refused credentials or an
 * unreachable endpoint stop the worker at start-up with a clear message. */
#include <check.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "s3.h"
#include "support.h"
#include "support_s3.h"
#include "support_worker.h"

#define SECRET "Sekr1t-original-4711"   /* distinctive: must never be logged */
#define ROTATED "Sekr1t-rotated-0815"

static wh H;
static sup_s3 *S3;

static void setup(void)
{
    /* A failed test never reaches its teardown, and the next passing one
     * only unlinks the pid list: stop what an earlier failure left first. */
    wh_kill_listed(getppid());
    wh_setup(&H, false, NULL);
    S3 = sup_s3_new();
    snprintf(S3->secret, sizeof S3->secret, SECRET);
    sup_s3_start(S3, "avatars");
}

static void teardown(void)
{
    wh_teardown(&H);
    sup_s3_free(S3);
    S3 = NULL;
}

/* config.ini for the S3 backend; bucket and secret as given. [worker]
 * settings other than the harness's come as AVATARQ_WORKER_* environment
 * overrides at wh_start (a key may not appear twice in the file). */
static void use_s3_timeout(const char *bucket, const char *secret, int retries, int timeout_ms);

static void use_s3(const char *bucket, const char *secret, int retries)
{
    use_s3_timeout(bucket, secret, retries, 3000);
}

static void use_s3_timeout(const char *bucket, const char *secret, int retries, int timeout_ms)
{
    char s3[768];
    snprintf(s3, sizeof s3,
             "[storage.s3]\nendpoint = %s\nregion = " SUP_S3_REGION "\nbucket = %s\n"
             "access_key = " SUP_S3_KEY "\nsecret_key = %s\npath_style = true\n"
             "timeout_ms = %d\nretries = %d\n",
             S3->endpoint, bucket, secret, timeout_ms, retries);
    H.backend = "s3";
    wh_write_config(&H, NULL, s3);
}

/* The worker log as one string (malloc'd). */
static char *worker_log(void)
{
    buf b = BUF_INIT;
    char cmd[400];
    snprintf(cmd, sizeof cmd, "cat '%s'", H.log);
    sup_run(cmd, &b, false);
    buf_append(&b, "", 1);
    return (char *)b.data;
}

static s3 *test_client(void)
{
    s3_opts o = {.endpoint = S3->endpoint, .region = SUP_S3_REGION, .bucket = "avatars",
                 .access_key = SUP_S3_KEY, .secret_key = S3->secret, .path_style = true,
                 .timeout_ms = 5000, .retries = 3};
    aq_err e = {0};
    s3 *c = s3_open(&o, &e);
    ck_assert_msg(c != NULL, "%s", e.msg);
    return c;
}

/* Waits until n workers have registered; shows the log when they do not. */
static void wait_workers(int n)
{
    if (!wh_wait_int(&H, n, 30000, "SCARD " WH_NS ":workers")) {
        wh_show_log(&H, 40);
        ck_abort_msg("%d workers never came up (SCARD %lld, keys %lld)", n,
                     wh_int(&H, "SCARD " WH_NS ":workers"), wh_count_keys(&H, "*"));
    }
}

static void push_range(int from, int to)
{
    char doc[256];
    for (int i = from; i < to; i++) {
        snprintf(doc, sizeof doc,
                 "{\"id\":\"s3job-%d\",\"seed\":\"seed-%d\",\"sizes\":[32,64]}", i, i);
        wh_push_str(&H, doc);
    }
}

static long long stat_of(const char *field)
{
    return wh_int(&H, "HGET " WH_NS ":stats %s", field);
}

START_TEST(t_200_jobs_through_s3_outages)
{
    enum { N = 200 };
    use_s3("avatars", SECRET, 2);
    char *env[] = {"AVATARQ_WORKER_PROCESSES=2", "AVATARQ_WORKER_MAX_ATTEMPTS=25",
                   "AVATARQ_WORKER_BACKOFF_BASE_MS=100", "AVATARQ_WORKER_BACKOFF_MAX_MS=1000",
                   NULL};
    wh_start(&H, env);
    wait_workers(2);

    /* Outage 1, deterministic: S3 is down while the first half arrives, so
     * jobs fail, go to the retry path, and wait there. */
    sup_s3_stop(S3);
    push_range(0, N / 2);
    if (!wh_wait_int(&H, 5, 60000, "HGET " WH_NS ":stats retried")) {
        wh_show_log(&H, 30);
        ck_abort_msg("only %lld retries while S3 was down", stat_of("retried"));
    }
    ck_assert_int_eq(wh_int(&H, "LLEN " WH_NS ":dead"), 0);
    sup_s3_restart(S3);

    /* Outage 2, in the middle of the run: the second half arrives, S3 goes
     * away again for a moment while jobs are in flight. */
    push_range(N / 2, N);
    ck_assert(wh_wait_int(&H, N / 2 + 20, 120000, "HGET " WH_NS ":stats done"));
    sup_s3_stop(S3);
    sup_sleep_ms(1000);
    sup_s3_restart(S3);

    ck_assert_msg(wh_wait_int(&H, N, 180000, "HGET " WH_NS ":stats done"),
                  "only %lld of %d done", stat_of("done"), N);
    s3 *c = test_client();
    aq_err e = {0};
    for (int i = 0; i < N; i++) {
        char id[32], key[64];
        snprintf(id, sizeof id, "s3job-%d", i);
        ck_assert_str_eq(wh_str(&H, "HGET " WH_NS ":job:%s state", id), "done");
        for (int size = 32; size <= 64; size *= 2) {
            snprintf(key, sizeof key, "avatars/%s/%d.png", id, size);
            ck_assert_msg(s3_exists(c, key, &e) == 1, "%s missing in S3: %s", key, e.msg);
        }
    }
    /* One object read back: a PNG, stored as image/png. */
    buf png = BUF_INIT;
    char ctype[64];
    ck_assert_int_eq(s3_get(c, "avatars/s3job-7/64.png", &png, ctype, sizeof ctype, &e), 0);
    ck_assert_str_eq(ctype, "image/png");
    ck_assert_uint_gt(png.len, 8);
    ck_assert(memcmp(png.data, "\x89PNG\r\n\x1a\n", 8) == 0);
    buf_free(&png);
    s3_close(c);

    /* Nothing dead, nothing lost, nothing left behind. */
    ck_assert_int_eq(stat_of("done"), N);
    ck_assert_int_eq(stat_of("dead"), 0);
    ck_assert_int_eq(wh_int(&H, "LLEN " WH_NS ":dead"), 0);
    ck_assert_int_eq(wh_int(&H, "LLEN " WH_NS ":queue:default"), 0);
    ck_assert_int_eq(wh_int(&H, "ZCARD " WH_NS ":delayed"), 0);
    ck_assert_int_eq(wh_processing(&H), 0);
    ck_assert_int_ge(stat_of("retried"), 5);
    /* The heartbeats held while workers waited on S3: nobody was declared
     * dead and recovered. */
    ck_assert_int_eq(stat_of("recovered"), 0);

    /* One metadata row per avatar, recording the bucket. */
    buf out = BUF_INIT;
    char cmd[600];
    snprintf(cmd, sizeof cmd,
             "sqlite3 '%s' \"SELECT count(*) FROM avatars WHERE storage='s3' AND "
             "location='avatars'\"", H.db);
    ck_assert_int_eq(sup_run(cmd, &out, true), 0);
    ck_assert_int_eq(atoi((const char *)out.data), N);
    buf_free(&out);

    int st = wh_stop(&H, SIGTERM, 30000);
    ck_assert_msg(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0, "status %d", st);
    char *log = worker_log();
    ck_assert_msg(!strstr(log, SECRET), "the secret is in the worker log");
    free(log);
}
END_TEST

START_TEST(t_frozen_s3_jobs_finish_after_thaw)
{
    enum { N = 20 };
    use_s3_timeout("avatars", SECRET, 1, 700);
    char *env[] = {"AVATARQ_WORKER_PROCESSES=2", "AVATARQ_WORKER_MAX_ATTEMPTS=25",
                   "AVATARQ_WORKER_BACKOFF_BASE_MS=100", "AVATARQ_WORKER_BACKOFF_MAX_MS=500",
                   NULL};
    wh_start(&H, env);
    wait_workers(2);
    sup_s3_freeze(S3); /* connections are accepted, nothing answers */
    push_range(0, N);
    /* the worker engine holds many at once (2 processes x 16 threads): many
     * uploads hang together, and none is lost (half of them, so that the
     * first ones timing out under load cannot make this flaky) */
    bool many = false;
    for (int waited = 0; waited <= 30000 && !many; waited += 20) {
        many = wh_processing(&H) >= N / 2;
        if (!many)
            sup_sleep_ms(20);
    }
    if (!many)
        sup_s3_thaw(S3);
    ck_assert_msg(many, "fewer than %d of the %d jobs were in flight at once", N / 2, N);
    if (!wh_wait_int(&H, 2, 60000, "HGET " WH_NS ":stats retried")) {
        sup_s3_thaw(S3);
        wh_show_log(&H, 30);
        ck_abort_msg("no job timed out into the retry path while S3 was frozen");
    }
    char *log = worker_log();
    ck_assert_msg(strstr(log, "timed out"), "no timeout in the worker log");
    free(log);
    sup_s3_thaw(S3);
    ck_assert_msg(wh_wait_int(&H, N, 120000, "HGET " WH_NS ":stats done"),
                  "only %lld of %d done after the thaw", stat_of("done"), N);
    ck_assert_int_eq(stat_of("dead"), 0);
    ck_assert_int_eq(stat_of("recovered"), 0);
    ck_assert_int_eq(wh_processing(&H), 0);
    ck_assert_int_eq(wh_int(&H, "ZCARD " WH_NS ":delayed"), 0);
    wh_stop(&H, SIGTERM, 30000);
}
END_TEST

START_TEST(t_rotated_secret_makes_the_job_dead)
{
    use_s3("avatars", SECRET, 3);
    char *env[] = {"AVATARQ_WORKER_PROCESSES=1", "AVATARQ_WORKER_MAX_ATTEMPTS=5", NULL};
    wh_start(&H, env);
    wait_workers(1);
    /* The server's credentials change under the running worker. */
    sup_s3_stop(S3);
    snprintf(S3->secret, sizeof S3->secret, ROTATED);
    sup_s3_restart(S3);
    wh_push_str(&H, "{\"id\":\"sigjob\",\"seed\":\"sig\",\"sizes\":[32]}");
    ck_assert_msg(wh_wait_state(&H, "sigjob", "dead", 60000), "job not dead (state '%s')",
                  wh_str(&H, "HGET " WH_NS ":job:sigjob state"));
    const char *err = wh_str(&H, "HGET " WH_NS ":job:sigjob error");
    ck_assert_msg(strstr(err, "SignatureDoesNotMatch") && strstr(err, "403"), "error: %s", err);
    ck_assert_msg(!strstr(err, SECRET), "secret in the job error");
    /* Permanent: dead at the first attempt, never retried. */
    ck_assert_int_eq(wh_int(&H, "HGET " WH_NS ":job:sigjob attempts"), 1);
    ck_assert_int_eq(stat_of("retried"), 0);
    json_t *o = json_loads(wh_str(&H, "LINDEX " WH_NS ":dead 0"), 0, NULL);
    ck_assert(json_is_object(o));
    ck_assert_str_eq(json_string_value(json_object_get(o, "id")), "sigjob");
    ck_assert_msg(strstr(json_string_value(json_object_get(o, "error")), "SignatureDoesNotMatch"),
                  "dead letter error: %s", json_string_value(json_object_get(o, "error")));
    json_decref(o);
    wh_stop(&H, SIGTERM, 30000);
    char *log = worker_log();
    ck_assert_msg(!strstr(log, SECRET) && !strstr(log, ROTATED), "a secret is in the log");
    free(log);
}
END_TEST

/* Runs `avatarq -c CONFIG args`; returns its exit status, output in out. */
static int cli(buf *out, const char *args)
{
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "'%s' -c '%s' %s", sup_bin("avatarq"), H.cfg, args);
    return sup_run(cmd, out, true);
}

START_TEST(t_cli_and_delete_jobs_on_s3)
{
    use_s3("avatars", SECRET, 3);
    char *env[] = {"AVATARQ_WORKER_PROCESSES=1", NULL};
    wh_start(&H, env);
    wait_workers(1);
    wh_push_str(&H, "{\"id\":\"cli1\",\"seed\":\"cli\",\"sizes\":[32,64]}");
    wh_push_str(&H, "{\"id\":\"cli2\",\"seed\":\"cli2\",\"sizes\":[32]}");
    ck_assert(wh_wait_state(&H, "cli1", "done", 60000));
    ck_assert(wh_wait_state(&H, "cli2", "done", 60000));

    /* avatarq get reads the object through the S3 backend. */
    s3 *c = test_client();
    aq_err e = {0};
    buf want = BUF_INIT, got = BUF_INIT, out = BUF_INIT;
    ck_assert_int_eq(s3_get(c, "avatars/cli1/64.png", &want, NULL, 0, &e), 0);
    char args[600], file[400];
    snprintf(file, sizeof file, "%s/cli1-64.png", H.dir);
    snprintf(args, sizeof args, "get cli1 --size 64 -o '%s'", file);
    ck_assert_msg(cli(&out, args) == 0, "avatarq get: %s", out.data);
    char cat[500];
    snprintf(cat, sizeof cat, "cat '%s'", file);
    sup_run(cat, &got, false);
    ck_assert_uint_eq(got.len, want.len);
    ck_assert(memcmp(got.data, want.data, want.len) == 0);
    /* health checks the bucket (list, then a probe written and removed). */
    ck_assert_msg(cli(&out, "health") == 0, "avatarq health: %s", out.data);

    /* delete --now removes the objects here; a delete job through the worker. */
    ck_assert_msg(cli(&out, "delete cli1 --now") == 0, "avatarq delete: %s", out.data);
    ck_assert_int_eq(s3_exists(c, "avatars/cli1/32.png", &e), 0);
    ck_assert_int_eq(s3_exists(c, "avatars/cli1/64.png", &e), 0);
    snprintf(args, sizeof args, "get cli1 --size 64 -o '%s'", file);
    ck_assert_int_eq(cli(&out, args), 1);
    ck_assert_int_eq(s3_exists(c, "avatars/cli2/32.png", &e), 1);
    wh_push_str(&H, "{\"type\":\"delete\",\"id\":\"cli2\",\"sizes\":[32]}");
    ck_assert(wh_wait_int(&H, 3, 60000, "HGET " WH_NS ":stats done"));
    ck_assert_int_eq(s3_exists(c, "avatars/cli2/32.png", &e), 0);
    ck_assert_int_eq(wh_int(&H, "LLEN " WH_NS ":dead"), 0);
    buf_free(&want);
    buf_free(&got);
    buf_free(&out);
    s3_close(c);
    wh_stop(&H, SIGTERM, 30000);
}
END_TEST

/* Starts the worker, expects it to exit non-zero at start-up, and returns
 * its log (malloc'd). */
static char *failed_startup(void)
{
    wh_start(&H, NULL);
    int st = sup_wait(H.pid, 60000);
    H.pid = st == -1 ? H.pid : 0;
    ck_assert_msg(st != -1, "the worker kept running");
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) != 0, "exit status %d", st);
    ck_assert_int_eq(wh_int(&H, "SCARD " WH_NS ":workers"), 0);
    return worker_log();
}

START_TEST(t_missing_bucket_stops_startup)
{
    use_s3("no-such-bucket", SECRET, 1);
    char *log = failed_startup();
    ck_assert_msg(strstr(log, "NoSuchBucket") && strstr(log, "no-such-bucket"), "log: %s", log);
    free(log);
}
END_TEST

START_TEST(t_refused_credentials_stop_startup)
{
    use_s3("avatars", ROTATED, 1);
    char *log = failed_startup();
    ck_assert_msg(strstr(log, "SignatureDoesNotMatch"), "log: %s", log);
    ck_assert_msg(!strstr(log, ROTATED), "the secret is in the log");
    free(log);
}
END_TEST

START_TEST(t_unreachable_endpoint_stops_startup)
{
    use_s3("avatars", SECRET, 1);
    sup_s3_stop(S3);
    char *log = failed_startup();
    ck_assert_msg(strstr(log, S3->endpoint) && strstr(log, "gave up after 2 attempts"), "log: %s",
                  log);
    free(log);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("s3_worker");
    TCase *tc = tcase_create("s3_worker");
    tcase_add_unchecked_fixture(tc, NULL, wh_reap_strays);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, t_200_jobs_through_s3_outages);
    tcase_add_test(tc, t_frozen_s3_jobs_finish_after_thaw);
    tcase_add_test(tc, t_rotated_secret_makes_the_job_dead);
    tcase_add_test(tc, t_cli_and_delete_jobs_on_s3);
    tcase_add_test(tc, t_missing_bucket_stops_startup);
    tcase_add_test(tc, t_refused_credentials_stop_startup);
    tcase_add_test(tc, t_unreachable_endpoint_stops_startup);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return sup_run_suite(suite());
}
