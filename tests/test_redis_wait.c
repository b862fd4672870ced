/* [redis] min_replicas_ack against a real master and replica: an enqueue
 * that no replica confirms fails clearly (non-zero exit, the key named);
 * with a replica it succeeds; a worker whose outcome is not confirmed
 * treats it as transient (the job is neither dead nor lost) and finishes
 * once the replica is back. */
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "support.h"
#include "support_rtopo.h"

static rt_srv M, R;

static void setup(void)
{
    rt_begin();
    rt_server(&M, "master", false, "");
}

static void teardown(void)
{
    rt_end();
}

static void start_replica(bool first)
{
    if (first) {
        char lines[128];
        snprintf(lines, sizeof lines, "replicaof 127.0.0.1 %d\n", M.port);
        rt_server(&R, "replica", false, lines);
    } else {
        rt_server_restart(&R, false);
    }
    ck_assert_msg(rt_cli_wait(20000, "master_link_status:up", "-p %d info replication", R.port),
                  "replica never linked");
    /* after a diskless sync the master streams to the replica only from its
     * first REPLCONF ACK (up to a second later): until then WAIT after a
     * write says 0. A write and a WAIT on one connection tell. */
    ck_assert_msg(rt_cli_wait(20000, "OK\n1", "-p %d ping >/dev/null; printf 'SET probe 1\\nWAIT 1 100\\n' | "
                              "redis-cli -p %d", M.port, M.port),
                  "the replica never acknowledged a write");
}

START_TEST(t_wait)
{
    const char *cfg = rt_path("config.ini"), *log = rt_path("worker.log");
    char lines[256];
    snprintf(lines, sizeof lines, "url = redis://127.0.0.1:%d/0\nmin_replicas_ack = 1\n"
             "min_replicas_timeout_ms = 200\n", M.port);
    rt_config(cfg, "aq", lines, NULL);
    buf out = BUF_INIT;
    /* no replica: refused, with the reason */
    ck_assert_int_ne(rt_avatarq(&out, cfg, "enqueue --seed a --id a --sizes 32"), 0);
    ck_assert_msg(strstr((char *)out.data, "only 0 of 1 replicas confirmed") &&
                      strstr((char *)out.data, "min_replicas_ack"),
                  "got %s", (char *)out.data);
    ck_assert_int_ne(rt_batch(cfg, "nb", 5, &out), 0);
    ck_assert_msg(strstr((char *)out.data, "only 0 of 1 replicas confirmed"), "batch: %s", (char *)out.data);
    /* with a replica: accepted, and on the replica */
    start_replica(true);
    ck_assert_msg(rt_avatarq(&out, cfg, "enqueue --seed b --id b --sizes 32") == 0, "%s", (char *)out.data);
    ck_assert_msg(rt_batch(cfg, "wb", 20, &out) == 0, "batch: %s", (char *)out.data);
    ck_assert_str_eq(rt_cli("-p %d hget aq:job:b state", R.port), "queued");
    /* the replica goes away while the worker records outcomes: transient */
    rt_kill(R.pid, SIGTERM);
    ck_assert_msg(rt_cli_wait(20000, "connected_slaves:0", "-p %d info replication", M.port), "still linked");
    pid_t w = rt_worker(cfg, log);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "grep -c 'replicas confirmed' '%s' 2>/dev/null", log);
    bool seen = false;
    for (int i = 0; i < 300 && !seen; i++) {
        seen = sup_run(cmd, &out, false) == 0 && atoi((char *)out.data) > 0;
        if (!seen)
            sup_sleep_ms(100);
    }
    ck_assert_msg(seen, "the worker never reported an unconfirmed outcome");
    ck_assert_int_eq(rt_stat(cfg, "dead"), 0);
    start_replica(false);
    /* 27 jobs: the 6 refused enqueues did happen on the master (WAIT cannot
     * undo a write; it only says it may not survive a failover), so a caller
     * that retries them with the same id gets one job each */
    bool done = rt_wait_stat(cfg, "counters.done", 27, 90000);
    if (!done)
        rt_show(log, 40);
    ck_assert_msg(done, "done %lld of 27", rt_stat(cfg, "counters.done"));
    ck_assert_int_eq(rt_stat(cfg, "counters.done"), 27);
    ck_assert_int_eq(rt_stat(cfg, "dead"), 0);
    ck_assert_int_eq(rt_stat(cfg, "queued"), 0);
    ck_assert_int_eq(rt_meta_rows(cfg), 27);
    rt_kill(w, SIGTERM);
    buf_free(&out);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("redis_wait");
    TCase *tc = tcase_create("wait");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_unchecked_fixture(tc, NULL, rt_reap_strays);
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, t_wait);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return sup_run_suite(suite());
}
