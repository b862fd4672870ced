/* The worker engine v2 (issue 10) against the real bin/avatarq-worker: many
 * jobs in flight per process, what a kill -9 of such a process returns, a
 * job timeout among several jobs in flight, a 200 MB document that must
 * never be held whole, and the batched records (one `done` event for many
 * ids, the duration histogram in NS:metrics).
 *
 * Jobs are held deterministically with the test-only hook
 * AVATARQ_TEST_HANG_SEED (worker.c): the first attempt of a job with that
 * seed hangs until its process dies. */
#include <check.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hash.h"
#include "queue.h"
#include "support.h"
#include "support_worker.h"

static wh H;
#define HANG_SEED "hang-here"
static char *HANG_ENV[] = {"AVATARQ_TEST_HANG_SEED=" HANG_SEED, NULL};

static void setup(void)
{
    wh_setup(&H, true, NULL);
}

static void teardown(void)
{
    wh_teardown(&H);
}

/* The one worker process of a processes = 1 fleet, once registered. */
static pid_t only_worker(void)
{
    ck_assert(wh_wait_int(&H, 1, 20000, "SCARD " WH_NS ":workers"));
    pid_t pids[4];
    ck_assert_int_eq(wh_worker_pids(&H, pids, 4), 1);
    return pids[0];
}

/* Length of the processing list of worker process pid. */
static long long held_by(pid_t pid)
{
    char key[256];
    wh_worker_key(pid, key, sizeof key);
    return wh_int(&H, "LLEN " WH_NS ":processing:%s", key + strlen(WH_NS ":worker:"));
}

static bool wait_held(pid_t pid, long long n, int timeout_ms)
{
    for (int waited = 0; waited <= timeout_ms; waited += 20) {
        if (held_by(pid) == n)
            return true;
        sup_sleep_ms(20);
    }
    return false;
}

/* Pushes n documents prefix-0 .. prefix-(n-1) with the given seed (NULL:
 * each its own id; HANG_SEED: each hangs on its first attempt). */
static void push_jobs(const char *prefix, int n, const char *seed)
{
    for (int i = 0; i < n; i++) {
        char id[32], doc[200];
        snprintf(id, sizeof id, "%s-%d", prefix, i);
        snprintf(doc, sizeof doc, "{\"id\":\"%s\",\"seed\":\"%s\",\"sizes\":[32]}", id,
                 seed ? seed : id);
        wh_push_str(&H, doc);
    }
}

/* Waits until jobs prefix-0 .. prefix-(n-1) are all running. */
static void wait_running(const char *prefix, int n)
{
    for (int i = 0; i < n; i++) {
        char id[32];
        snprintf(id, sizeof id, "%s-%d", prefix, i);
        ck_assert_msg(wh_wait_state(&H, id, "running", 20000), "%s not running", id);
    }
}

/* A process with 4 threads holds 8 jobs (4 running, 4 prefetched: taken,
 * not yet started, as no thread is about to be free) and takes no more; a
 * kill -9 returns each of the 8 exactly once, the 12 jobs queued behind
 * them are untouched, and then every job is done once, with its file: the
 * 4 that hung on a second attempt, the 4 prefetched ones on their first. */
START_TEST(t_kill_full_prefetch_returns_each_once)
{
    wh_write_config(&H, "processes = 1\nconcurrency = 4\nheartbeat_ttl_s = 60\n", NULL);
    wh_start(&H, HANG_ENV);
    pid_t pid = only_worker();
    push_jobs("held", 4, HANG_SEED);
    wait_running("held", 4);
    push_jobs("pre", 4, NULL);
    ck_assert_msg(wait_held(pid, 8, 20000), "the process did not take a full prefetch of 8");
    for (int i = 0; i < 4; i++) /* never started: no hash (a raw push) */
        ck_assert_int_eq(wh_int(&H, "EXISTS " WH_NS ":job:pre-%d", i), 0);
    push_jobs("behind", 12, NULL);
    ck_assert_int_eq(wh_int(&H, "LLEN " WH_NS ":queue:default"), 12);
    ck_assert_int_eq(held_by(pid), 8);
    kill(pid, SIGKILL);
    ck_assert(wh_wait_gone(pid, 10000));
    const char *prefix[] = {"held", "pre", "behind"};
    int count[] = {4, 4, 12};
    for (int p = 0; p < 3; p++)
        for (int i = 0; i < count[p]; i++) {
            char id[32], path[1024];
            snprintf(id, sizeof id, "%s-%d", prefix[p], i);
            ck_assert_msg(wh_wait_state(&H, id, "done", 30000), "%s not done", id);
            /* hung jobs ran a second attempt (the first hangs), the others one */
            ck_assert_int_eq(wh_int(&H, "HGET " WH_NS ":job:%s attempts", id), p == 0 ? 2 : 1);
            wh_png_path(&H, id, 32, path, sizeof path);
            ck_assert_msg(wh_exists(path), "%s missing", path);
        }
    /* the 8 held jobs were put back once each: recovered exactly 8, none
     * dead, none retried, every job done once */
    ck_assert_int_eq(wh_int(&H, "HGET " WH_NS ":stats recovered"), 8);
    ck_assert_int_eq(wh_int(&H, "HGET " WH_NS ":stats done"), 20);
    ck_assert_int_eq(wh_int(&H, "HGET " WH_NS ":stats dead"), 0);
    ck_assert_int_eq(wh_int(&H, "HGET " WH_NS ":stats retried"), 0);
    ck_assert_int_eq(wh_processing(&H), 0);
    ck_assert_int_eq(wh_int(&H, "LLEN " WH_NS ":queue:default"), 0);
    wh_stop_clean(&H);
}
END_TEST

/* A job timeout with several jobs in flight: the process is killed, the jobs
 * whose work ran past job_timeout_s take the retry path (counted `retried`,
 * error "timed out"), the others (the two prefetched, waiting for a thread)
 * go back to the queue (`recovered`), and all four are done. */
START_TEST(t_timeout_with_jobs_in_flight)
{
    wh_write_config(&H, "processes = 1\nconcurrency = 2\nheartbeat_ttl_s = 60\njob_timeout_s = 2\n"
                        "backoff_base_ms = 10\nbackoff_max_ms = 50\n", NULL);
    wh_start(&H, HANG_ENV);
    pid_t pid = only_worker();
    push_jobs("slow", 2, HANG_SEED);
    wait_running("slow", 2);
    push_jobs("wait", 2, NULL);
    ck_assert_msg(wait_held(pid, 4, 20000), "the process did not take 4 jobs");
    ck_assert_msg(wh_wait_gone(pid, 20000), "the process was not killed at job_timeout_s");
    const char *ids[] = {"slow-0", "slow-1", "wait-0", "wait-1"};
    for (int i = 0; i < 4; i++)
        ck_assert_msg(wh_wait_state(&H, ids[i], "done", 30000), "%s not done", ids[i]);
    /* the two running jobs started within moments of each other: at the
     * kill at least the first is overdue (retried), a second one not yet
     * overdue counts as innocent (recovered); the two waiting for a thread
     * are always recovered */
    long long retried = wh_int(&H, "HGET " WH_NS ":stats retried");
    long long recovered = wh_int(&H, "HGET " WH_NS ":stats recovered");
    ck_assert_msg(retried >= 1 && retried <= 2, "retried %lld", retried);
    ck_assert_int_eq(retried + recovered, 4);
    ck_assert_int_eq(wh_int(&H, "HGET " WH_NS ":stats done"), 4);
    buf b = BUF_INIT;
    sup_redis_cli(&H.r, &b, "XRANGE " WH_NS ":events - +");
    ck_assert_msg(b.data && strstr((char *)b.data, "timed out after 2 s"), "no timeout event");
    buf_free(&b);
    wh_stop_clean(&H);
}
END_TEST

/* Peak resident memory of pid in kB (VmHWM), 0 when unknown. */
static long peak_rss_kb(pid_t pid)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    long kb = 0;
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, "VmHWM:", 6) == 0)
            kb = atol(line + 6);
    if (f)
        fclose(f);
    return kb;
}

/* A raw 200 MB LPUSH: the worker reads it in pieces (its peak RSS stays
 * under 64 MB), buries it as a dead letter under 2 KiB with the head, the
 * size and the SHA-256, and goes on with the next job. */
START_TEST(t_huge_document_never_held)
{
    wh_write_config(&H, "processes = 1\nconcurrency = 2\n", NULL);
    wh_start(&H, NULL);
    pid_t pid = only_worker();
    size_t n = 200u * 1024 * 1024;
    char *big = malloc(n);
    ck_assert(big);
    memset(big, 'x', n);
    memcpy(big, "{\"seed\":\"", 9);
    char sum[65];
    hash_sha256_hex(big, n, sum);
    /* its own connection: writing 200 MB may take longer than the
     * harness's 5 s timeout on a busy machine */
    struct timeval tv = {120, 0};
    redisContext *rc = redisConnectWithTimeout("127.0.0.1", H.r.port, tv);
    ck_assert(rc && !rc->err);
    redisSetTimeout(rc, tv);
    redisReply *rep = redisCommand(rc, "LPUSH " WH_NS ":queue:default %b", big, n);
    ck_assert_msg(rep && rep->type == REDIS_REPLY_INTEGER, "LPUSH of 200 MB: %s",
                  rep && rep->type == REDIS_REPLY_ERROR ? rep->str : rc->errstr);
    freeReplyObject(rep);
    redisFree(rc);
    free(big);
    wh_push_str(&H, "{\"id\":\"after-big\",\"seed\":\"fine\",\"sizes\":[32]}");
    ck_assert_msg(wh_wait_state(&H, "after-big", "done", 60000), "job after the big one not done");
    ck_assert_int_eq(wh_int(&H, "LLEN " WH_NS ":dead"), 1);
    const char *dead = wh_str(&H, "LINDEX " WH_NS ":dead 0");
    ck_assert_msg(strlen(dead) < 2048, "dead letter of %zu bytes", strlen(dead));
    json_t *o = json_loads(dead, 0, NULL);
    ck_assert(json_is_object(o));
    ck_assert_int_eq(json_integer_value(json_object_get(o, "raw_bytes")), (json_int_t)n);
    ck_assert_str_eq(json_string_value(json_object_get(o, "raw_sha256")), sum);
    ck_assert_int_eq(json_string_length(json_object_get(o, "raw")), QUEUE_DEAD_RAW_MAX);
    ck_assert_msg(strstr(json_string_value(json_object_get(o, "error")), "more than 65536"),
                  "error: %s", json_string_value(json_object_get(o, "error")));
    json_decref(o);
    long kb = peak_rss_kb(pid);
    ck_assert_msg(kb > 0 && kb < 64 * 1024, "worker peak RSS %ld kB", kb);
    ck_assert_int_eq(wh_int(&H, "HGET " WH_NS ":stats dead"), 1);
    ck_assert_int_eq(wh_processing(&H), 0);
    wh_stop_clean(&H);
}
END_TEST

/* Jobs finished together share one `done` event (field ids), which
 * `avatarq enqueue --wait` understands; durations land in NS:metrics. */
START_TEST(t_batched_events_and_metrics)
{
    wh_write_config(&H, "processes = 1\nconcurrency = 8\n", NULL);
    wh_start(&H, NULL);
    only_worker();
    push_jobs("b", 200, NULL);
    ck_assert(wh_wait_int(&H, 200, 30000, "HGET " WH_NS ":stats done"));
    /* every id is named by exactly one done event */
    redisReply *r = redisCommand(H.rc, "XRANGE " WH_NS ":events - +");
    ck_assert(r && r->type == REDIS_REPLY_ARRAY);
    int named[200] = {0}, done_events = 0;
    for (size_t i = 0; i < r->elements; i++) {
        redisReply *f = r->element[i]->element[1];
        const char *ids = NULL, *state = NULL;
        for (size_t k = 0; k + 1 < f->elements; k += 2) {
            if (strcmp(f->element[k]->str, "ids") == 0)
                ids = f->element[k + 1]->str;
            if (strcmp(f->element[k]->str, "state") == 0)
                state = f->element[k + 1]->str;
        }
        if (!ids || !state || strcmp(state, "done") != 0)
            continue;
        done_events++;
        char *copy = strdup(ids), *save = NULL;
        for (char *t = strtok_r(copy, " ", &save); t; t = strtok_r(NULL, " ", &save))
            named[atoi(t + 2)]++;
        free(copy);
    }
    freeReplyObject(r);
    for (int i = 0; i < 200; i++)
        ck_assert_msg(named[i] == 1, "b-%d named by %d done events", i, named[i]);
    ck_assert_msg(done_events < 200, "no grouping: %d done events for 200 jobs", done_events);
    /* the histogram counts every job once */
    ck_assert_int_eq(wh_int(&H, "HGET " WH_NS ":metrics job_duration_ms_count"), 200);
    long long sum = 0;
    const char *bounds[] = {"1", "2", "5", "10", "25", "50", "100", "250", "500", "1000",
                            "2500", "5000", "10000", "30000", "60000", "inf"};
    for (size_t b = 0; b < sizeof bounds / sizeof *bounds; b++)
        sum += wh_int(&H, "HGET " WH_NS ":metrics job_duration_ms_le_%s", bounds[b]);
    ck_assert_int_eq(sum, 200);
    wh_stop_clean(&H);
}
END_TEST

/* An invalid document that carries the id of a valid job leaves that job's
 * hash alone (issue 13, item 7): it only adds a dead letter. */
START_TEST(t_invalid_document_leaves_job_hash_alone)
{
    wh_write_config(&H, "processes = 1\n", NULL);
    wh_start(&H, NULL);
    only_worker();
    wh_push_str(&H, "{\"id\":\"keep\",\"seed\":\"keep\",\"sizes\":[32]}");
    ck_assert(wh_wait_state(&H, "keep", "done", 20000));
    long long attempts = wh_int(&H, "HGET " WH_NS ":job:keep attempts");
    wh_push_str(&H, "{\"id\":\"keep\",\"seed\":17}");
    ck_assert(wh_wait_int(&H, 1, 20000, "LLEN " WH_NS ":dead"));
    ck_assert_str_eq(wh_str(&H, "HGET " WH_NS ":job:keep state"), "done");
    ck_assert_str_eq(wh_str(&H, "HGET " WH_NS ":job:keep error"), "");
    ck_assert_int_eq(wh_int(&H, "HGET " WH_NS ":job:keep attempts"), attempts);
    ck_assert_msg(strstr(wh_str(&H, "LINDEX " WH_NS ":dead 0"), "\"id\":\"keep\""),
                  "dead letter lost the document");
    wh_stop_clean(&H);
}
END_TEST

/* The worker that `make install` ships has no test hook: a job of the hang
 * seed simply runs (issue 13). */
START_TEST(t_production_build_has_no_test_hook)
{
    wh_write_config(&H, "processes = 1\n", NULL);
    char *argv[] = {(char *)sup_bin("avatarq-worker"), "-c", H.cfg, NULL};
    ck_assert_str_ne(sup_bin("avatarq-worker"), sup_test_bin("avatarq-worker"));
    H.pid = sup_spawn(argv, HANG_ENV, H.log);
    wh_track(H.pid);
    ck_assert(H.pid > 0);
    only_worker();
    wh_push_str(&H, "{\"id\":\"plain\",\"seed\":\"hang-here\",\"sizes\":[32]}");
    ck_assert_msg(wh_wait_state(&H, "plain", "done", 20000), "hang seed hung a production worker");
    ck_assert_int_eq(wh_int(&H, "HGET " WH_NS ":job:plain attempts"), 1);
    wh_stop_clean(&H);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("engine");
    TCase *tc = tcase_create("engine");
    tcase_add_unchecked_fixture(tc, NULL, wh_reap_strays);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 180);
    tcase_add_test(tc, t_kill_full_prefetch_returns_each_once);
    tcase_add_test(tc, t_timeout_with_jobs_in_flight);
    tcase_add_test(tc, t_huge_document_never_held);
    tcase_add_test(tc, t_batched_events_and_metrics);
    tcase_add_test(tc, t_invalid_document_leaves_job_hash_alone);
    tcase_add_test(tc, t_production_build_has_no_test_hook);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return sup_run_suite(suite());
}
