/* rconn through Sentinel against real servers: one master, one replica,
 * three sentinels on loopback. Jobs flow through the CLI and a real worker
 * while SENTINEL FAILOVER moves the master; every job is done once, the
 * metadata rows are exact, none is dead, and with min_replicas_ack = 1 the
 * jobs the CLI enqueued during the failover (and said it did) are not lost.
 * Bad input: an unknown master name and all sentinels down are refused with
 * a clear message and a non-zero exit. */
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>

#include "buf.h"
#include "support.h"
#include "support_rtopo.h"

#define JOBS 300
#define DURING 60

static rt_srv M, R, S[3];

static void setup(void)
{
    rt_begin();
    rt_server(&M, "master", false, "");
    char lines[600];
    snprintf(lines, sizeof lines, "replicaof 127.0.0.1 %d\n", M.port);
    rt_server(&R, "replica", false, lines);
    ck_assert_msg(rt_cli_wait(20000, "master_link_status:up", "-p %d info replication", R.port),
                  "replica never linked");
    /* and acknowledges writes (WAIT), see test_redis_wait */
    ck_assert_msg(rt_cli_wait(20000, "OK\n1", "-p %d ping >/dev/null; printf 'SET probe 1\\nWAIT 1 100\\n' | "
                              "redis-cli -p %d", M.port, M.port),
                  "the replica never acknowledged a write");
    snprintf(lines, sizeof lines,
             "sentinel monitor mymaster 127.0.0.1 %d 2\n"
             "sentinel down-after-milliseconds mymaster 1000\n"
             "sentinel failover-timeout mymaster 10000\n"
             "sentinel parallel-syncs mymaster 1\n", M.port);
    const char *names[] = {"s1", "s2", "s3"};
    for (int i = 0; i < 3; i++)
        rt_server(&S[i], names[i], true, lines);
    /* every sentinel sees the replica and the two others: a failover can
     * be authorised */
    for (int i = 0; i < 3; i++)
        ck_assert_msg(rt_cli_wait(30000, "slaves=1,sentinels=3", "-p %d info sentinel", S[i].port),
                      "sentinel %d never saw the whole set: %s", i,
                      rt_cli("-p %d info sentinel", S[i].port));
}

static void teardown(void)
{
    rt_end();
}

/* [redis] lines: the URL (scheme redis or rediss) gives no address, only
 * the db; the sentinels give the master. */
static const char *sentinel_lines_s(const char *scheme, const char *master, const char *extra)
{
    static char out[1024];
    snprintf(out, sizeof out,
             "url = %s://127.0.0.1:1/0\nsentinels = 127.0.0.1:%d,127.0.0.1:%d, 127.0.0.1:%d\n"
             "sentinel_master = %s\nconnect_timeout_ms = 1000\n%s",
             scheme, S[0].port, S[1].port, S[2].port, master, extra ? extra : "");
    return out;
}

static const char *sentinel_lines(const char *master, const char *extra)
{
    return sentinel_lines_s("redis", master, extra);
}

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static bool has_row(const char *cfg, const char *id)
{
    return rt_avatarq(NULL, cfg, "show '%s'", id) == 0;
}

START_TEST(t_failover_mid_run)
{
    const char *cfg = rt_path("config.ini"), *log = rt_path("worker.log");
    rt_config(cfg, "aq", sentinel_lines("mymaster", "min_replicas_ack = 1\nmin_replicas_timeout_ms = 500\n"),
              NULL);
    buf out = BUF_INIT;
    ck_assert_msg(rt_batch(cfg, "pre", JOBS, &out) == 0, "batch: %s", (char *)out.data);
    rt_avatarq(&out, cfg, "health"); /* fails on the database: no worker has migrated it yet */
    char want[64];
    snprintf(want, sizeof want, "server=127.0.0.1:%d role=master tls=off via=sentinel", M.port);
    ck_assert_msg(strstr((char *)out.data, want), "health: %s", (char *)out.data);

    pid_t w = rt_worker(cfg, log);
    ck_assert_msg(rt_wait_stat(cfg, "counters.done", JOBS / 5, 60000), "no progress before failover");
    /* CLI enqueues while the master moves, from a shell loop running beside
     * the failover; the ids whose enqueue said OK must all be done */
    const char *okfile = rt_path("ok.txt");
    char script[1024];
    snprintf(script, sizeof script,
             "i=0; while [ $i -lt %d ]; do '%s' -c '%s' enqueue --seed during-$i --id during-$i "
             "--sizes 32 >/dev/null 2>&1 && echo during-$i >> '%s'; i=$((i+1)); done",
             DURING, sup_bin("avatarq"), cfg, okfile);
    char *sh_argv[] = {"/bin/sh", "-c", script, NULL};
    pid_t loop = rt_spawn(sh_argv, rt_path("loop.log"));
    double t0 = now_s();
    ck_assert_str_eq(rt_cli("-p %d sentinel failover mymaster", S[0].port), "OK");
    ck_assert_msg(rt_cli_wait(30000, "role:master", "-p %d info replication", R.port),
                  "the replica was never promoted");
    double switched = now_s() - t0; /* within 100 ms (the poll) */
    ck_assert_msg(rt_cli_wait(30000, "role:slave", "-p %d info replication", M.port),
                  "the old master never became a replica");
    ck_assert_msg(sup_wait(loop, 120000) != -1, "the enqueue loop did not end");
    rt_kill(loop, SIGKILL);
    char ok_ids[DURING][32];
    int ok = 0;
    FILE *f = fopen(okfile, "r");
    while (f && ok < DURING && fscanf(f, "%31s", ok_ids[ok]) == 1)
        ok++;
    if (f)
        fclose(f);
    /* every id whose enqueue said OK gets its row; the counters alone cannot
     * say so (an enqueue that failed may have landed too, and counts) */
    double deadline = now_s() + 120;
    for (int i = 0; i < ok; i++)
        while (!has_row(cfg, ok_ids[i]) && now_s() < deadline)
            sup_sleep_ms(100);
    bool done = rt_wait_stat(cfg, "counters.done", JOBS + ok, 120000);
    if (!done)
        rt_show(log, 60);
    ck_assert_msg(done, "done %lld of %d", rt_stat(cfg, "counters.done"), JOBS + ok);
    ck_assert_int_eq(rt_stat(cfg, "queued"), 0);
    long long rows = rt_meta_rows(cfg);
    /* an enqueue that reported a failure may still have landed */
    ck_assert_msg(rows >= JOBS + ok && rows <= JOBS + DURING, "rows %lld, ok %d", rows, ok);
    /* each job counted done once at most: a job whose enqueue failed during
     * the switch may have been rendered on the old master (a row) and then
     * vanished with that master's unreplicated writes (not counted) */
    long long done_n = rt_stat(cfg, "counters.done");
    ck_assert_msg(done_n >= JOBS + ok && done_n <= rows, "done %lld, rows %lld, ok %d", done_n, rows, ok);
    fprintf(stderr, "sentinel failover: replica promoted %.1f s after SENTINEL FAILOVER; %d of %d "
            "CLI enqueues around it succeeded, %lld rows, %lld done\n", switched, ok, DURING, rows, done_n);
    ck_assert_int_eq(rt_stat(cfg, "dead"), 0);
    ck_assert_int_eq(rt_stat(cfg, "counters.dead"), 0);
    for (int i = 0; i < ok; i++)
        ck_assert_msg(has_row(cfg, ok_ids[i]), "%s was enqueued (exit 0) but never stored", ok_ids[i]);
    /* the CLI now names the new master */
    ck_assert_int_eq(rt_avatarq(&out, cfg, "health"), 0);
    snprintf(want, sizeof want, "server=127.0.0.1:%d role=master", R.port);
    ck_assert_msg(strstr((char *)out.data, want), "health after failover: %s", (char *)out.data);
    rt_kill(w, SIGTERM);
    buf_free(&out);
}
END_TEST

START_TEST(t_bad_input)
{
    const char *cfg = rt_path("bad.ini");
    buf out = BUF_INIT;
    rt_config(cfg, "aq", sentinel_lines("nosuchmaster", NULL), NULL);
    ck_assert_int_ne(rt_avatarq(&out, cfg, "stats"), 0);
    ck_assert_msg(strstr((char *)out.data, "knows a master named 'nosuchmaster'"), "got %s",
                  (char *)out.data);
    /* the worker stops at once too, non-zero, and the queue is untouched */
    const char *log = rt_path("bad-worker.log");
    pid_t w = rt_worker(cfg, log);
    int st = sup_wait(w, 8000);
    rt_kill(w, SIGKILL);
    ck_assert_msg(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) != 0, "worker status %d", st);
    /* all sentinels down */
    for (int i = 0; i < 3; i++)
        rt_kill(S[i].pid, SIGTERM);
    rt_config(cfg, "aq", sentinel_lines("mymaster", NULL), NULL);
    ck_assert_int_ne(rt_avatarq(&out, cfg, "stats"), 0);
    ck_assert_msg(strstr((char *)out.data, "no sentinel reachable"), "got %s", (char *)out.data);
    ck_assert_str_eq(rt_cli("-p %d keys 'aq:*'", M.port), ""); /* nothing written */
    buf_free(&out);
}
END_TEST

/* ---- the same over TLS: master, replica and sentinels on TLS ports only ---- */

static char TLSCLI[700];

static void setup_tls(void)
{
    rt_begin();
    rt_certs();
    char tls[1400], lines[2000];
    snprintf(tls, sizeof tls,
             "tls-port TLSPORT\ntls-cert-file %s\ntls-key-file %s\ntls-ca-cert-file %s\n"
             "tls-auth-clients no\ntls-replication yes\n",
             rt_path("server.crt"), rt_path("server.key"), rt_path("ca.crt"));
    snprintf(TLSCLI, sizeof TLSCLI, "--tls --cacert %s", rt_path("ca.crt"));
    rt_server(&M, "master", false, tls);
    snprintf(lines, sizeof lines, "%sreplicaof 127.0.0.1 %d\n", tls, M.port);
    rt_server(&R, "replica", false, lines);
    ck_assert_msg(rt_cli_wait(20000, "master_link_status:up", "%s -p %d info replication", TLSCLI, R.port),
                  "replica never linked over TLS");
    snprintf(lines, sizeof lines,
             "%ssentinel monitor mymaster 127.0.0.1 %d 2\nsentinel down-after-milliseconds mymaster 1000\n"
             "sentinel failover-timeout mymaster 10000\n", tls, M.port);
    const char *names[] = {"s1", "s2", "s3"};
    for (int i = 0; i < 3; i++)
        rt_server(&S[i], names[i], true, lines);
    for (int i = 0; i < 3; i++)
        ck_assert_msg(rt_cli_wait(30000, "slaves=1,sentinels=3", "%s -p %d info sentinel", TLSCLI, S[i].port),
                      "TLS sentinel %d never saw the whole set", i);
}

/* rediss:// reaches the sentinels and the master over TLS; jobs flow; a
 * failover is followed. */
START_TEST(t_tls_sentinel)
{
    const char *cfg = rt_path("config.ini"), *log = rt_path("worker.log");
    char extra[600];
    snprintf(extra, sizeof extra, "tls_ca_file = %s\n", rt_path("ca.crt"));
    rt_config(cfg, "aq", sentinel_lines_s("rediss", "mymaster", extra), NULL);
    buf out = BUF_INIT;
    ck_assert_msg(rt_batch(cfg, "t", 100, &out) == 0, "batch: %s", (char *)out.data);
    rt_avatarq(&out, cfg, "health");
    char want[80];
    snprintf(want, sizeof want, "server=127.0.0.1:%d role=master tls=on via=sentinel", M.port);
    ck_assert_msg(strstr((char *)out.data, want), "health: %s", (char *)out.data);
    pid_t w = rt_worker(cfg, log);
    ck_assert_msg(rt_wait_stat(cfg, "counters.done", 20, 60000), "no progress");
    ck_assert_str_eq(rt_cli("%s -p %d sentinel failover mymaster", TLSCLI, S[1].port), "OK");
    ck_assert_msg(rt_cli_wait(30000, "role:master", "%s -p %d info replication", TLSCLI, R.port),
                  "the replica was never promoted");
    ck_assert_msg(rt_cli_wait(30000, "role:slave", "%s -p %d info replication", TLSCLI, M.port),
                  "the old master never became a replica");
    bool done = rt_wait_stat(cfg, "counters.done", 100, 120000);
    if (!done)
        rt_show(log, 40);
    ck_assert_msg(done, "done %lld of 100", rt_stat(cfg, "counters.done"));
    ck_assert_int_eq(rt_meta_rows(cfg), 100);
    ck_assert_int_eq(rt_stat(cfg, "dead"), 0);
    rt_avatarq(&out, cfg, "health");
    snprintf(want, sizeof want, "server=127.0.0.1:%d role=master tls=on via=sentinel", R.port);
    ck_assert_msg(strstr((char *)out.data, want), "health after failover: %s", (char *)out.data);
    rt_kill(w, SIGTERM);
    buf_free(&out);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("redis_sentinel");
    TCase *tc = tcase_create("sentinel");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_unchecked_fixture(tc, NULL, rt_reap_strays);
    tcase_set_timeout(tc, 400);
    tcase_add_test(tc, t_failover_mid_run);
    tcase_add_test(tc, t_bad_input);
    suite_add_tcase(s, tc);
    TCase *tls = tcase_create("sentinel_tls");
    tcase_add_checked_fixture(tls, setup_tls, teardown);
    tcase_add_unchecked_fixture(tls, NULL, rt_reap_strays);
    tcase_set_timeout(tls, 400);
    tcase_add_test(tls, t_tls_sentinel);
    suite_add_tcase(s, tls);
    return s;
}

int main(void)
{
    return sup_run_suite(suite());
}
