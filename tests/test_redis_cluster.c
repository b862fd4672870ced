/* rconn through Redis Cluster against real servers: three masters with one
 * replica each (redis-cli --cluster create, cluster-node-timeout 1000). The
 * URL names the very master that owns the namespace's slot; it is SIGKILLed
 * mid-run, its replica takes over, and the worker follows through the nodes
 * it learnt from CLUSTER SLOTS: every job done once, exact metadata rows,
 * none dead. Bad input: cluster = true with a plain namespace, and a node
 * that is not in cluster mode, are refused with a clear message. */
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "buf.h"
#include "support.h"
#include "support_rtopo.h"

#define JOBS 300
#define NODES 6
#define NS "{aq}"

static rt_srv N[NODES];

static void setup(void)
{
    rt_begin();
    const char *lines = "cluster-enabled yes\ncluster-config-file nodes.conf\n"
                        "cluster-node-timeout 1000\ncluster-replica-validity-factor 0\n";
    char create[1024] = "--cluster create";
    for (int i = 0; i < NODES; i++) {
        char name[16];
        snprintf(name, sizeof name, "n%d", i);
        rt_server(&N[i], name, false, lines);
        snprintf(create + strlen(create), sizeof create - strlen(create), " 127.0.0.1:%d", N[i].port);
    }
    const char *out = rt_cli("%s --cluster-replicas 1 --cluster-yes", create);
    ck_assert_msg(strstr(out, "All 16384 slots covered"), "cluster create: %s", out);
    for (int i = 0; i < NODES; i++)
        ck_assert_msg(rt_cli_wait(30000, "cluster_state:ok", "-p %d cluster info", N[i].port),
                      "node %d never saw the cluster ok", i);
}

static void teardown(void)
{
    rt_end();
}

/* Index in N of the master serving the slot of NS, and of its replica. */
static void owner(int *master, int *replica)
{
    int slot = atoi(rt_cli("-p %d cluster keyslot '%s'", N[0].port, NS));
    char nodes[8192];
    snprintf(nodes, sizeof nodes, "%s", rt_cli("-p %d cluster nodes", N[0].port));
    char master_id[64] = "";
    *master = *replica = -1;
    /* lines: ID HOST:PORT@CPORT FLAGS MASTER_ID PING PONG EPOCH STATE SLOTS... */
    for (int pass = 0; pass < 2; pass++) {
        char copy[8192];
        snprintf(copy, sizeof copy, "%s", nodes);
        for (char *save = NULL, *l = strtok_r(copy, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
            char id[64], addr[128], flags[128], of[64];
            int used = 0;
            if (sscanf(l, "%63s %127s %127s %63s %*s %*s %*s %*s%n", id, addr, flags, of, &used) < 4)
                continue;
            int port = atoi(strchr(addr, ':') ? strchr(addr, ':') + 1 : "0");
            int idx = -1;
            for (int i = 0; i < NODES; i++)
                idx = N[i].port == port ? i : idx;
            if (pass == 0 && strstr(flags, "master")) {
                for (char *r = l + used; *r;) {
                    int lo, hi, k = 0;
                    if (sscanf(r, " %d-%d%n", &lo, &hi, &k) == 2 && slot >= lo && slot <= hi) {
                        *master = idx;
                        snprintf(master_id, sizeof master_id, "%s", id);
                    }
                    if (k == 0)
                        break;
                    r += k;
                }
            } else if (pass == 1 && strstr(flags, "slave") && strcmp(of, master_id) == 0) {
                *replica = idx;
            }
        }
    }
    ck_assert_msg(*master >= 0 && *replica >= 0, "no owner of slot %d in:\n%s", slot, nodes);
}

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

START_TEST(t_master_killed_mid_run)
{
    int m, r;
    owner(&m, &r);
    ck_assert_msg(rt_cli_wait(20000, "master_link_status:up", "-p %d info replication", N[r].port),
                  "replica of the owner never linked");
    /* The worker's URL names the owner itself, so after the kill it must
     * find the cluster through the nodes it learnt. The CLI, a new process
     * each time, names another node (a process that only knows a dead node
     * cannot find the cluster). No min_replicas_ack: after the kill the slot
     * has no replica left to confirm anything. */
    const char *cfg = rt_path("config.ini"), *wcfg = rt_path("worker.ini"), *log = rt_path("worker.log");
    int other = 0;
    while (other == m || other == r)
        other++;
    char lines[512];
    snprintf(lines, sizeof lines, "url = redis://127.0.0.1:%d\ncluster = true\nconnect_timeout_ms = 1000\n",
             N[m].port);
    rt_config(wcfg, NS, lines, NULL);
    snprintf(lines, sizeof lines, "url = redis://127.0.0.1:%d\ncluster = true\nconnect_timeout_ms = 1000\n",
             N[other].port);
    rt_config(cfg, NS, lines, NULL);
    buf out = BUF_INIT;
    ck_assert_msg(rt_batch(cfg, "c", JOBS, &out) == 0, "batch: %s", (char *)out.data);
    ck_assert_int_eq(rt_stat(cfg, "queued"), JOBS);
    rt_avatarq(&out, cfg, "health");
    char want[80];
    snprintf(want, sizeof want, "server=127.0.0.1:%d role=master tls=off via=cluster", N[m].port);
    ck_assert_msg(strstr((char *)out.data, want), "health: %s", (char *)out.data);

    pid_t w = rt_worker(wcfg, log);
    ck_assert_msg(rt_wait_stat(cfg, "counters.done", JOBS / 5, 60000), "no progress before the kill");
    double t0 = now_s();
    rt_kill(N[m].pid, SIGKILL);
    ck_assert_msg(rt_cli_wait(30000, "role:master", "-p %d info replication", N[r].port),
                  "the replica never took over");
    double took = now_s() - t0;
    bool done = rt_wait_stat(cfg, "counters.done", JOBS, 120000);
    if (!done)
        rt_show(log, 60);
    ck_assert_msg(done, "done %lld of %d", rt_stat(cfg, "counters.done"), JOBS);
    ck_assert_int_eq(rt_stat(cfg, "counters.done"), JOBS);
    ck_assert_int_eq(rt_stat(cfg, "queued"), 0);
    ck_assert_int_eq(rt_stat(cfg, "dead"), 0);
    ck_assert_int_eq(rt_meta_rows(cfg), JOBS);
    rt_avatarq(&out, cfg, "health");
    snprintf(want, sizeof want, "server=127.0.0.1:%d role=master", N[r].port);
    ck_assert_msg(strstr((char *)out.data, want), "health after failover: %s", (char *)out.data);
    fprintf(stderr, "cluster failover: replica promoted %.1f s after SIGKILL of the owner\n", took);
    rt_kill(w, SIGTERM);
    buf_free(&out);
}
END_TEST

/* CLUSTER FAILOVER on the owner's replica: the old master turns replica
 * and answers MOVED; the worker and the CLI follow to the new master. */
START_TEST(t_manual_failover_moved)
{
    int m, r;
    owner(&m, &r);
    ck_assert_msg(rt_cli_wait(20000, "master_link_status:up", "-p %d info replication", N[r].port),
                  "replica of the owner never linked");
    const char *cfg = rt_path("config.ini"), *log = rt_path("worker.log");
    char lines[512];
    snprintf(lines, sizeof lines, "url = redis://127.0.0.1:%d\ncluster = true\nconnect_timeout_ms = 1000\n",
             N[m].port);
    rt_config(cfg, NS, lines, NULL);
    buf out = BUF_INIT;
    ck_assert_msg(rt_batch(cfg, "f", JOBS, &out) == 0, "batch: %s", (char *)out.data);
    pid_t w = rt_worker(cfg, log);
    ck_assert_msg(rt_wait_stat(cfg, "counters.done", JOBS / 5, 60000), "no progress before the failover");
    ck_assert_str_eq(rt_cli("-p %d cluster failover", N[r].port), "OK");
    ck_assert_msg(rt_cli_wait(30000, "role:slave", "-p %d info replication", N[m].port),
                  "the old master never turned replica");
    /* a write to the old master is now redirected */
    ck_assert_msg(strstr(rt_cli("-p %d lpush '%s:probe' x", N[m].port, NS), "MOVED"), "no MOVED");
    bool done = rt_wait_stat(cfg, "counters.done", JOBS, 120000);
    if (!done)
        rt_show(log, 60);
    ck_assert_msg(done, "done %lld of %d", rt_stat(cfg, "counters.done"), JOBS);
    ck_assert_int_eq(rt_stat(cfg, "counters.done"), JOBS);
    ck_assert_int_eq(rt_stat(cfg, "dead"), 0);
    ck_assert_int_eq(rt_meta_rows(cfg), JOBS);
    rt_avatarq(&out, cfg, "health");
    char want[80];
    snprintf(want, sizeof want, "server=127.0.0.1:%d role=master", N[r].port);
    ck_assert_msg(strstr((char *)out.data, want), "health after failover: %s", (char *)out.data);
    rt_kill(w, SIGTERM);
    buf_free(&out);
}
END_TEST

START_TEST(t_bad_input)
{
    const char *cfg = rt_path("bad.ini");
    buf out = BUF_INIT;
    char lines[256];
    snprintf(lines, sizeof lines, "url = redis://127.0.0.1:%d\ncluster = true\n", N[0].port);
    rt_config(cfg, "aq", lines, NULL);
    ck_assert_int_ne(rt_avatarq(&out, cfg, "stats"), 0);
    ck_assert_msg(strstr((char *)out.data, "namespace must be a hash tag such as {avatarq}"), "got %s",
                  (char *)out.data);
    rt_srv plain;
    rt_server(&plain, "plain", false, "");
    snprintf(lines, sizeof lines, "url = redis://127.0.0.1:%d\ncluster = true\n", plain.port);
    rt_config(cfg, NS, lines, NULL);
    ck_assert_int_ne(rt_avatarq(&out, cfg, "enqueue --seed x --id x"), 0);
    ck_assert_msg(strstr((char *)out.data, "not in cluster mode"), "got %s", (char *)out.data);
    ck_assert_str_eq(rt_cli("-p %d dbsize", plain.port), "0"); /* nothing written */
    buf_free(&out);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("redis_cluster");
    TCase *tc = tcase_create("cluster");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_unchecked_fixture(tc, NULL, rt_reap_strays);
    tcase_set_timeout(tc, 400);
    tcase_add_test(tc, t_master_killed_mid_run);
    tcase_add_test(tc, t_manual_failover_moved);
    tcase_add_test(tc, t_bad_input);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return sup_run_suite(suite());
}
