/* Nothing lost (issue 6): retries, dead letters after max_attempts, workers
 * SIGKILLed or hung, the supervisor SIGKILLed, a second SIGTERM, a Redis
 * restart and a SIGHUP reload, all against the real bin/avatarq-worker.
 *
 * A worker is held busy deterministically with the test-only hook
 * AVATARQ_TEST_HANG_SEED (worker.c): the first attempt of a job with that
 * seed hangs. */
#include <check.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "support.h"
#include "support_s3.h"
#include "support_worker.h"

static wh H;
static char *HANG_ENV[] = {"AVATARQ_TEST_HANG_SEED=hang-here", NULL};

static void setup(void)
{
    wh_setup(&H, true, NULL);
}

static void teardown(void)
{
    wh_teardown(&H);
}

/* ---- helpers ---- */

/* Makes every job waiting in NS:delayed due now (ZADD XX score 0), so a test
 * decides when a retry runs instead of the jittered backoff. Returns how many
 * it moved forward. */
static int make_delayed_due(void)
{
    redisReply *rep = redisCommand(H.rc, "ZRANGE " WH_NS ":delayed 0 -1");
    int n = 0;
    for (size_t i = 0; rep && rep->type == REDIS_REPLY_ARRAY && i < rep->elements; i++)
        n += wh_int(&H, "ZADD " WH_NS ":delayed XX CH 0 %b", rep->element[i]->str,
                    rep->element[i]->len) > 0;
    if (rep)
        freeReplyObject(rep);
    return n;
}

/* Waits until job id is retrying after `attempts` attempts. */
static bool wait_retrying(const char *id, int attempts, int timeout_ms)
{
    for (int waited = 0; waited <= timeout_ms; waited += 20) {
        if (strcmp(wh_str(&H, "HGET " WH_NS ":job:%s state", id), "retrying") == 0 &&
            wh_int(&H, "HGET " WH_NS ":job:%s attempts", id) == attempts &&
            wh_int(&H, "ZCARD " WH_NS ":delayed") == 1)
            return true;
        sup_sleep_ms(20);
    }
    return false;
}

/* The pid of the worker running job id (from its job hash). */
static pid_t running_pid(const char *id, int timeout_ms)
{
    if (!wh_wait_state(&H, id, "running", timeout_ms))
        return 0;
    const char *w = wh_str(&H, "HGET " WH_NS ":job:%s worker", id);
    const char *colon = strrchr(w, ':');
    return colon ? (pid_t)atol(colon + 1) : 0;
}

/* CPU time (user + system) of pid in clock ticks, from /proc/PID/stat. */
static long long cpu_ticks(pid_t pid)
{
    char path[64], line[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    char *ok = fgets(line, sizeof line, f);
    fclose(f);
    char *p = ok ? strrchr(line, ')') : NULL;
    unsigned long long ut = 0, st = 0;
    if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
        return -1;
    return (long long)(ut + st);
}

static void push_n(const char *prefix, int n, const char *sizes)
{
    char doc[256];
    for (int i = 0; i < n; i++) {
        snprintf(doc, sizeof doc, "{\"id\":\"%s-%d\",\"seed\":\"%s%d\",\"sizes\":%s}", prefix, i,
                 prefix, i, sizes);
        wh_push_str(&H, doc);
    }
}

static void assert_all_done(const char *prefix, int n, int timeout_ms)
{
    for (int i = 0; i < n; i++) {
        char id[64];
        snprintf(id, sizeof id, "%s-%d", prefix, i);
        ck_assert_msg(wh_wait_state(&H, id, "done", timeout_ms), "%s not done (state '%s')", id,
                      wh_str(&H, "HGET " WH_NS ":job:%s state", id));
    }
}

/* ---- retries and dead letters (S3 storage that is down) ---- */

static sup_s3 *S3;

static void use_s3(const char *worker_extra)
{
    S3 = sup_s3_new();
    sup_s3_start(S3, "avatars");
    char s3[512];
    snprintf(s3, sizeof s3,
             "[storage.s3]\nendpoint = %s\nregion = " SUP_S3_REGION "\nbucket = avatars\n"
             "access_key = " SUP_S3_KEY "\nsecret_key = " SUP_S3_SECRET "\npath_style = true\n"
             "timeout_ms = 3000\nretries = 0\n", S3->endpoint);
    H.backend = "s3";
    wh_write_config(&H, worker_extra, s3);
}

/* Starts the worker and waits until its process is past start-up (which
 * checks the bucket): the supervisor registers a slot's process as soon as
 * it forks it, so NS:workers alone does not say that. A warm-up job done
 * through S3 does. */
static void start_with_s3_ready(void)
{
    wh_start(&H, NULL);
    wh_push_str(&H, "{\"id\":\"warm-up\",\"seed\":\"warm-up\",\"sizes\":[16]}");
    ck_assert_msg(wh_wait_state(&H, "warm-up", "done", 60000), "worker never got past start-up");
}

START_TEST(t_storage_fails_twice_then_succeeds)
{
    /* a long backoff keeps each retry waiting until the test makes it due */
    use_s3("processes = 1\nmax_attempts = 5\nbackoff_base_ms = 600000\nbackoff_max_ms = 600000\n");
    start_with_s3_ready();
    sup_s3_stop(S3);
    wh_push_str(&H, "{\"id\":\"flaky\",\"seed\":\"flaky\",\"sizes\":[32]}");
    ck_assert_msg(wait_retrying("flaky", 1, 30000), "no retry after attempt 1");
    ck_assert_msg(strlen(wh_str(&H, "HGET " WH_NS ":job:flaky error")) > 0, "no error recorded");
    ck_assert_int_eq(make_delayed_due(), 1);
    ck_assert_msg(wait_retrying("flaky", 2, 30000), "no retry after attempt 2");
    sup_s3_restart(S3);
    ck_assert_int_eq(make_delayed_due(), 1);
    ck_assert_msg(wh_wait_state(&H, "flaky", "done", 30000), "not done after storage came back");
    ck_assert_int_eq(wh_int(&H, "HGET " WH_NS ":job:flaky attempts"), 3);
    ck_assert_int_eq(wh_int(&H, "HGET " WH_NS ":stats retried"), 2);
    ck_assert_int_eq(wh_int(&H, "LLEN " WH_NS ":dead"), 0);
    ck_assert_int_eq(wh_processing(&H), 0);
    wh_stop_clean(&H);
    sup_s3_free(S3);
}
END_TEST

START_TEST(t_always_failing_job_ends_dead)
{
    use_s3("processes = 1\nmax_attempts = 3\nbackoff_base_ms = 20\nbackoff_max_ms = 50\n");
    start_with_s3_ready();
    sup_s3_stop(S3);
    wh_push_str(&H, "{\"id\":\"doomed\",\"seed\":\"doomed\",\"sizes\":[32]}");
    ck_assert_msg(wh_wait_state(&H, "doomed", "dead", 60000), "job never went dead");
    ck_assert_int_eq(wh_int(&H, "HGET " WH_NS ":job:doomed attempts"), 3);
    ck_assert_int_eq(wh_int(&H, "LLEN " WH_NS ":dead"), 1);
    json_t *o = json_loads(wh_str(&H, "LINDEX " WH_NS ":dead 0"), 0, NULL);
    ck_assert(json_is_object(o));
    ck_assert_str_eq(json_string_value(json_object_get(o, "id")), "doomed");
    ck_assert_int_eq(json_integer_value(json_object_get(o, "attempts")), 3);
    const char *err = json_string_value(json_object_get(o, "error"));
    ck_assert_msg(err && strlen(err) > 0, "dead letter without the last error");
    ck_assert_int_gt(json_integer_value(json_object_get(o, "failed_at")), 0);
    json_decref(o);
    ck_assert_int_eq(wh_int(&H, "HGET " WH_NS ":stats retried"), 2);
    ck_assert_int_eq(wh_int(&H, "ZCARD " WH_NS ":delayed"), 0);
    ck_assert_int_eq(wh_processing(&H), 0);
    wh_stop_clean(&H);
    sup_s3_free(S3);
}
END_TEST

/* ---- dead and hung workers ---- */

START_TEST(t_sigkilled_worker_job_done_by_another)
{
    /* a long TTL: only the supervisor's immediate requeue can save the job */
    wh_write_config(&H, "heartbeat_ttl_s = 60\n", NULL);
    wh_start(&H, HANG_ENV);
    ck_assert(wh_wait_int(&H, 2, 20000, "SCARD " WH_NS ":workers"));
    wh_push_str(&H, "{\"id\":\"victim\",\"seed\":\"hang-here\",\"sizes\":[32]}");
    pid_t pid = running_pid("victim", 20000);
    ck_assert_msg(wh_alive(pid), "no worker running the job");
    char key[256]; /* NS:worker:HOST:PID-NONCE of the victim's process */
    snprintf(key, sizeof key, WH_NS ":worker:%s", wh_str(&H, "HGET " WH_NS ":job:victim worker"));
    ck_assert_int_eq(wh_int(&H, "EXISTS %s", key), 1);
    kill(pid, SIGKILL);
    ck_assert_msg(wh_wait_state(&H, "victim", "done", 20000), "killed worker's job not done");
    ck_assert_int_eq(wh_int(&H, "HGET " WH_NS ":job:victim attempts"), 2);
    ck_assert_str_ne(wh_str(&H, "HGET " WH_NS ":job:victim worker"), "");
    ck_assert_int_ge(wh_int(&H, "HGET " WH_NS ":stats recovered"), 1);
    ck_assert_int_eq(wh_processing(&H), 0);
    /* the pool is whole again, without the dead one */
    ck_assert(wh_wait_int(&H, 2, 20000, "SCARD " WH_NS ":workers"));
    ck_assert_int_eq(wh_int(&H, "EXISTS %s", key), 0);
    ck_assert_int_eq(wh_int(&H, "SISMEMBER " WH_NS ":workers %s", key + strlen(WH_NS ":worker:")), 0);
    wh_stop_clean(&H);
}
END_TEST

START_TEST(t_stopped_worker_killed_at_job_timeout)
{
    wh_write_config(&H, "heartbeat_ttl_s = 60\njob_timeout_s = 2\n", NULL);
    wh_start(&H, HANG_ENV);
    ck_assert(wh_wait_int(&H, 2, 20000, "SCARD " WH_NS ":workers"));
    wh_push_str(&H, "{\"id\":\"stuck\",\"seed\":\"hang-here\",\"sizes\":[32]}");
    pid_t pid = running_pid("stuck", 20000);
    ck_assert(wh_alive(pid));
    kill(pid, SIGSTOP); /* wedged for good: only SIGKILL moves it */
    ck_assert_msg(wh_wait_gone(pid, 20000), "hung worker was not killed");
    ck_assert_msg(wh_wait_state(&H, "stuck", "done", 30000), "timed-out job not done by another");
    ck_assert_int_eq(wh_int(&H, "HGET " WH_NS ":job:stuck attempts"), 2);
    ck_assert_int_ge(wh_int(&H, "HGET " WH_NS ":stats retried"), 1);
    buf b = BUF_INIT;
    sup_redis_cli(&H.r, &b, "XRANGE " WH_NS ":events - +");
    ck_assert_msg(b.data && strstr((char *)b.data, "timed out after 2 s"), "no timeout event");
    buf_free(&b);
    ck_assert(wh_wait_int(&H, 2, 20000, "SCARD " WH_NS ":workers"));
    wh_stop_clean(&H);
}
END_TEST

START_TEST(t_timeout_at_max_attempts_goes_dead)
{
    wh_write_config(&H, "heartbeat_ttl_s = 60\njob_timeout_s = 2\n", NULL);
    wh_start(&H, HANG_ENV);
    ck_assert(wh_wait_int(&H, 2, 20000, "SCARD " WH_NS ":workers"));
    wh_push_str(&H, "{\"id\":\"last-try\",\"seed\":\"hang-here\",\"sizes\":[32],\"max_attempts\":1}");
    pid_t pid = running_pid("last-try", 20000);
    ck_assert(wh_alive(pid));
    ck_assert_msg(wh_wait_state(&H, "last-try", "dead", 30000), "timed-out last attempt not dead");
    ck_assert_msg(strstr(wh_str(&H, "HGET " WH_NS ":job:last-try error"), "timed out after 2 s"),
                  "error: %s", wh_str(&H, "HGET " WH_NS ":job:last-try error"));
    json_t *o = json_loads(wh_str(&H, "LINDEX " WH_NS ":dead 0"), 0, NULL);
    ck_assert(json_is_object(o));
    ck_assert_str_eq(json_string_value(json_object_get(o, "id")), "last-try");
    ck_assert_int_eq(json_integer_value(json_object_get(o, "attempts")), 1);
    json_decref(o);
    ck_assert(!wh_alive(pid));
    ck_assert_int_eq(wh_processing(&H), 0);
    wh_stop_clean(&H);
}
END_TEST

START_TEST(t_poison_pill_killing_its_worker_goes_dead)
{
    /* a job whose worker dies on its last attempt is not requeued for ever */
    wh_write_config(&H, "heartbeat_ttl_s = 60\n", NULL);
    wh_start(&H, HANG_ENV);
    ck_assert(wh_wait_int(&H, 2, 20000, "SCARD " WH_NS ":workers"));
    wh_push_str(&H, "{\"id\":\"pill\",\"seed\":\"hang-here\",\"sizes\":[32],\"max_attempts\":1}");
    pid_t pid = running_pid("pill", 20000);
    ck_assert(wh_alive(pid));
    kill(pid, SIGKILL);
    ck_assert_msg(wh_wait_state(&H, "pill", "dead", 20000), "poison pill not dead");
    ck_assert_int_eq(wh_int(&H, "LLEN " WH_NS ":dead"), 1);
    ck_assert_int_eq(wh_int(&H, "LLEN " WH_NS ":queue:default"), 0);
    ck_assert_int_eq(wh_processing(&H), 0);
    /* and the pool carries on */
    wh_push_str(&H, "{\"id\":\"after-pill\",\"seed\":\"fine\",\"sizes\":[32]}");
    ck_assert(wh_wait_state(&H, "after-pill", "done", 20000));
    wh_stop_clean(&H);
}
END_TEST

START_TEST(t_supervisor_sigkill_orphans_recovered)
{
    enum { N = 30 };
    wh_write_config(&H, "heartbeat_ttl_s = 3\n", NULL);
    wh_start(&H, HANG_ENV);
    ck_assert(wh_wait_int(&H, 2, 20000, "SCARD " WH_NS ":workers"));
    wh_push_str(&H, "{\"id\":\"orphaned\",\"seed\":\"hang-here\",\"sizes\":[32]}");
    pid_t hung = running_pid("orphaned", 20000);
    ck_assert(wh_alive(hung));
    push_n("o", N, "[64,128]");
    ck_assert(wh_wait_int(&H, 1, 20000, "HGET " WH_NS ":stats done"));
    ck_assert_int_eq(wh_stop(&H, SIGKILL, 5000), SIGKILL);
    /* orphans finish what they hold and leave */
    ck_assert_msg(wh_wait_gone(hung, 10000), "orphaned worker did not exit");
    wh_start(&H, NULL);
    ck_assert_msg(wh_wait_state(&H, "orphaned", "done", 30000), "orphan's job never recovered");
    assert_all_done("o", N, 30000);
    ck_assert_int_ge(wh_int(&H, "HGET " WH_NS ":stats recovered"), 1);
    ck_assert_int_eq(wh_processing(&H), 0);
    ck_assert_int_eq(wh_int(&H, "LLEN " WH_NS ":queue:default"), 0);
    ck_assert_int_eq(wh_int(&H, "LLEN " WH_NS ":dead"), 0);
    wh_stop_clean(&H);
    /* only live workers stay registered: the orphans were recovered away */
    ck_assert_int_eq(wh_int(&H, "SCARD " WH_NS ":workers"), 0);
}
END_TEST

START_TEST(t_shutdown_timeout_puts_job_back)
{
    wh_write_config(&H, "shutdown_timeout_s = 2\n", NULL);
    wh_start(&H, HANG_ENV);
    ck_assert(wh_wait_int(&H, 2, 20000, "SCARD " WH_NS ":workers"));
    wh_push_str(&H, "{\"id\":\"slow\",\"seed\":\"hang-here\",\"sizes\":[32]}");
    pid_t pid = running_pid("slow", 20000);
    ck_assert(wh_alive(pid));
    /* one SIGTERM: the job in hand does not finish within 2 s, so it is put back */
    int st = wh_stop(&H, SIGTERM, 30000);
    ck_assert_msg(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0, "status %d", st);
    ck_assert(!wh_alive(pid));
    ck_assert_int_eq(wh_processing(&H), 0);
    ck_assert_str_eq(wh_str(&H, "HGET " WH_NS ":job:slow state"), "queued");
    ck_assert_int_eq(wh_int(&H, "LLEN " WH_NS ":queue:default"), 1);
    ck_assert_int_eq(wh_int(&H, "SCARD " WH_NS ":workers"), 0);
}
END_TEST

START_TEST(t_second_sigterm_stops_at_once)
{
    wh_write_config(&H, "shutdown_timeout_s = 300\n", NULL);
    wh_start(&H, HANG_ENV);
    ck_assert(wh_wait_int(&H, 2, 20000, "SCARD " WH_NS ":workers"));
    wh_push_str(&H, "{\"id\":\"held\",\"seed\":\"hang-here\",\"sizes\":[32]}");
    pid_t pid = running_pid("held", 20000);
    ck_assert(wh_alive(pid));
    kill(H.pid, SIGTERM);
    /* the first SIGTERM waits for the job in hand (here: for ever) */
    sup_sleep_ms(1500);
    ck_assert_msg(wh_alive(H.pid), "supervisor did not wait for the job in hand");
    int st = wh_stop(&H, SIGTERM, 20000);
    ck_assert_msg(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0,
                  "second SIGTERM: status %d", st);
    ck_assert(!wh_alive(pid));
    /* the job was put back, not lost */
    ck_assert_int_eq(wh_processing(&H), 0);
    ck_assert_str_eq(wh_str(&H, "HGET " WH_NS ":job:held state"), "queued");
    ck_assert_int_eq(wh_int(&H, "LLEN " WH_NS ":queue:default"), 1);
    ck_assert_int_eq(wh_int(&H, "SCARD " WH_NS ":workers"), 0);
    /* and a new supervisor does it */
    wh_start(&H, NULL);
    ck_assert(wh_wait_state(&H, "held", "done", 20000));
    wh_stop_clean(&H);
}
END_TEST

START_TEST(t_redis_restart)
{
    enum { N = 200 };
    wh_start(&H, NULL);
    ck_assert(wh_wait_int(&H, 2, 20000, "SCARD " WH_NS ":workers"));
    pid_t before[2];
    ck_assert_int_eq(wh_worker_pids(&H, before, 2), 2);
    push_n("r", N, "[256,512]");
    ck_assert(wh_wait_int(&H, 5, 30000, "HGET " WH_NS ":stats done"));
    wh_redis_stop(&H);
    long long cpu0 = cpu_ticks(before[0]) + cpu_ticks(before[1]) + cpu_ticks(H.pid);
    sup_sleep_ms(3000);
    long long cpu1 = cpu_ticks(before[0]) + cpu_ticks(before[1]) + cpu_ticks(H.pid);
    /* no spinning while Redis is away: well under a second of CPU in 3 s */
    ck_assert_msg(cpu1 - cpu0 < sysconf(_SC_CLK_TCK), "burned %lld ticks during the outage",
                  cpu1 - cpu0);
    wh_redis_restart(&H);
    assert_all_done("r", N, 60000);
    ck_assert(wh_alive(H.pid));
    ck_assert(wh_alive(before[0]) && wh_alive(before[1]));
    ck_assert_int_eq(wh_processing(&H), 0);
    ck_assert_int_eq(wh_int(&H, "LLEN " WH_NS ":dead"), 0);
    wh_stop_clean(&H);
}
END_TEST

START_TEST(t_sighup_reload)
{
    enum { N = 40 };
    wh_write_config(&H, "processes = 1\n", NULL);
    wh_start(&H, NULL);
    ck_assert(wh_wait_int(&H, 1, 20000, "SCARD " WH_NS ":workers"));
    pid_t old[1];
    ck_assert_int_eq(wh_worker_pids(&H, old, 1), 1);
    /* a broken config is refused and the pool keeps running: wait for the
     * supervisor to say so rather than for a guessed time */
    long from = wh_log_size(&H);
    sup_write_file(H.cfg, "[worker]\nprocesses = lots\n");
    kill(H.pid, SIGHUP);
    ck_assert_msg(wh_wait_log(&H, "reload failed", from, 20000), "no reload failure logged");
    ck_assert(wh_alive(H.pid) && wh_alive(old[0]));
    ck_assert_int_eq(wh_int(&H, "SCARD " WH_NS ":workers"), 1);
    /* a good one replaces the process while jobs flow */
    push_n("h", N, "[128,256]");
    from = wh_log_size(&H);
    wh_write_config(&H, "processes = 2\n", NULL);
    kill(H.pid, SIGHUP);
    ck_assert_msg(wh_wait_gone(old[0], 20000), "old worker not replaced");
    ck_assert_msg(wh_wait_log(&H, "reload done", from, 30000), "reload never finished");
    /* the workers set may still name the old worker for a moment after it
     * exits (the race this test used to lose under load): wait for exactly
     * two live, new heartbeats instead of counting the set once */
    pid_t now[2];
    ck_assert_msg(wh_wait_new_workers(&H, 2, old, 1, now, 20000), "no two new workers");
    ck_assert(now[0] != old[0] && now[1] != old[0]);
    push_n("h2", N, "[64]");
    assert_all_done("h", N, 60000);
    assert_all_done("h2", N, 60000);
    ck_assert_int_eq(wh_processing(&H), 0);
    ck_assert_int_eq(wh_int(&H, "HGET " WH_NS ":stats done"), 2 * N);
    ck_assert(wh_alive(H.pid));
    wh_stop_clean(&H);
}
END_TEST


/* The chaos test (random SIGKILLs, a supervisor kill, a Redis restart over
 * 5,000 jobs) lives in tests/test_chaos.c. */

static Suite *suite(void)
{
    Suite *s = suite_create("worker_faults");
    TCase *tc = tcase_create("faults");
    tcase_add_unchecked_fixture(tc, NULL, wh_reap_strays);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 180);
    tcase_add_test(tc, t_storage_fails_twice_then_succeeds);
    tcase_add_test(tc, t_always_failing_job_ends_dead);
    tcase_add_test(tc, t_sigkilled_worker_job_done_by_another);
    tcase_add_test(tc, t_stopped_worker_killed_at_job_timeout);
    tcase_add_test(tc, t_timeout_at_max_attempts_goes_dead);
    tcase_add_test(tc, t_poison_pill_killing_its_worker_goes_dead);
    tcase_add_test(tc, t_supervisor_sigkill_orphans_recovered);
    tcase_add_test(tc, t_shutdown_timeout_puts_job_back);
    tcase_add_test(tc, t_second_sigterm_stops_at_once);
    tcase_add_test(tc, t_redis_restart);
    tcase_add_test(tc, t_sighup_reload);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return sup_run_suite(suite());
}
