/* rconn over TLS against a real redis-server that only listens on a TLS port
 * (port 0, tls-port, client certificates required): jobs flow through the
 * CLI and a real worker; a wrong CA, a wrong server name, TLS against a
 * plain port and a missing client certificate each stop the programs at
 * start-up with a message that says which. */
#include <check.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "buf.h"
#include "support.h"
#include "support_rtopo.h"

#define JOBS 200

static rt_srv TLS;

static void setup(void)
{
    rt_begin();
    rt_certs();
    char lines[2048];
    snprintf(lines, sizeof lines,
             "tls-port TLSPORT\ntls-cert-file %s\ntls-key-file %s\ntls-ca-cert-file %s\n"
             "tls-auth-clients yes\n",
             rt_path("server.crt"), rt_path("server.key"), rt_path("ca.crt"));
    rt_server(&TLS, "tls", false, lines);
}

static void teardown(void)
{
    rt_end();
}

/* [redis] lines for a rediss:// URL to host with the test CA plus extra. */
static const char *tls_lines(const char *host, int port, const char *extra)
{
    static char out[2048];
    snprintf(out, sizeof out,
             "url = rediss://%s:%d/0\ntls_ca_file = %s\ntls_cert_file = %s\ntls_key_file = %s\n"
             "connect_timeout_ms = 2000\n%s",
             host, port, rt_path("ca.crt"), rt_path("client.crt"), rt_path("client.key"),
             extra ? extra : "");
    return out;
}

START_TEST(t_jobs_flow_over_tls)
{
    const char *cfg = rt_path("config.ini"), *log = rt_path("worker.log");
    rt_config(cfg, "aq", tls_lines("127.0.0.1", TLS.port, NULL), NULL);
    buf out = BUF_INIT;
    ck_assert_msg(rt_batch(cfg, "tls", JOBS, &out) == 0, "batch: %s", (char *)out.data);
    ck_assert_int_eq(rt_stat(cfg, "queued"), JOBS);
    pid_t w = rt_worker(cfg, log);
    bool done = rt_wait_stat(cfg, "counters.done", JOBS, 120000);
    if (!done)
        rt_show(log, 40);
    ck_assert_msg(done, "jobs did not finish over TLS (done %lld)", rt_stat(cfg, "counters.done"));
    ck_assert_int_eq(rt_stat(cfg, "counters.done"), JOBS);
    ck_assert_int_eq(rt_stat(cfg, "dead"), 0);
    ck_assert_int_eq(rt_stat(cfg, "queued"), 0);
    ck_assert_int_eq(rt_meta_rows(cfg), JOBS);
    /* health names the master, its role and TLS; a name checked against
     * the DNS SAN this time (localhost) instead of the IP SAN */
    rt_config(cfg, "aq", tls_lines("localhost", TLS.port, NULL), NULL);
    ck_assert_int_eq(rt_avatarq(&out, cfg, "health"), 0);
    ck_assert_msg(strstr((char *)out.data, "server=localhost:") &&
                      strstr((char *)out.data, "role=master tls=on via=direct"),
                  "health: %s", (char *)out.data);
    ck_assert_int_eq(rt_avatarq(&out, cfg, "workers"), 0);
    ck_assert_msg(strstr((char *)out.data, "role=master tls=on"), "workers: %s", (char *)out.data);
    rt_kill(w, SIGTERM);
    buf_free(&out);
}
END_TEST

/* Each broken setting: the CLI exits non-zero naming the cause. */
START_TEST(t_refusals)
{
    rt_srv plain;
    rt_server(&plain, "plain", false, "");
    char lines[2048];
    const struct {
        const char *name;
        bool plain_port;
        const char *ca;
        bool client_cert;
        const char *extra;
        const char *want;
    } t[] = {
        {"wrong CA", false, "other-ca.crt", true, "", "server certificate not trusted"},
        {"wrong server name", false, "ca.crt", true, "tls_server_name = wrong.example\n",
         "does not match the name 'wrong.example'"},
        {"TLS against a plain port", true, "ca.crt", true, "", "is this a TLS port?"},
        {"no client certificate", false, "ca.crt", false, "", "the server requires a client certificate"},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        snprintf(lines, sizeof lines, "url = rediss://127.0.0.1:%d/0\ntls_ca_file = %s\n%s%s%s%s%s",
                 t[i].plain_port ? plain.port : TLS.port, rt_path(t[i].ca),
                 t[i].client_cert ? "tls_cert_file = " : "", t[i].client_cert ? rt_path("client.crt") : "",
                 t[i].client_cert ? "\ntls_key_file = " : "",
                 t[i].client_cert ? rt_path("client.key") : "", t[i].client_cert ? "\n" : "");
        snprintf(lines + strlen(lines), sizeof lines - strlen(lines), "%s", t[i].extra);
        const char *cfg = rt_path("bad.ini");
        rt_config(cfg, "aq", lines, NULL);
        buf out = BUF_INIT;
        int rc = rt_avatarq(&out, cfg, "stats");
        ck_assert_msg(rc != 0, "%s: stats succeeded", t[i].name);
        ck_assert_msg(out.data && strstr((char *)out.data, t[i].want), "%s: got '%s', want '%s'", t[i].name,
                      out.data ? (char *)out.data : "", t[i].want);
        buf_free(&out);
    }
    /* the worker too stops at once with the reason in its log (no retrying
     * a certificate for the whole start-up window) */
    const char *cfg = rt_path("bad.ini"), *log = rt_path("bad-worker.log");
    snprintf(lines, sizeof lines, "url = rediss://127.0.0.1:%d/0\ntls_ca_file = %s\n"
             "tls_cert_file = %s\ntls_key_file = %s\n", TLS.port, rt_path("other-ca.crt"),
             rt_path("client.crt"), rt_path("client.key"));
    rt_config(cfg, "aq", lines, NULL);
    pid_t w = rt_worker(cfg, log);
    int st = sup_wait(w, 8000);
    rt_kill(w, SIGKILL);
    ck_assert_msg(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) != 0, "worker status %d", st);
    buf text = BUF_INIT;
    char cmd[600];
    snprintf(cmd, sizeof cmd, "cat '%s'", log);
    sup_run(cmd, &text, true);
    ck_assert_msg(strstr((char *)text.data, "server certificate not trusted"), "log: %s", (char *)text.data);
    buf_free(&text);
    /* a certificate file that is not there names the key */
    snprintf(lines, sizeof lines, "url = rediss://127.0.0.1:%d/0\ntls_ca_file = %s\n", TLS.port,
             rt_path("nope.crt"));
    rt_config(cfg, "aq", lines, NULL);
    buf out = BUF_INIT;
    ck_assert_int_ne(rt_avatarq(&out, cfg, "stats"), 0);
    ck_assert_msg(strstr((char *)out.data, "[redis] tls_ca_file"), "got %s", (char *)out.data);
    buf_free(&out);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("redis_tls");
    TCase *tc = tcase_create("tls");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_unchecked_fixture(tc, NULL, rt_reap_strays);
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, t_jobs_flow_over_tls);
    tcase_add_test(tc, t_refusals);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return sup_run_suite(suite());
}
