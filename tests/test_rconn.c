/* lib/rconn on its own against real redis-servers: a unix socket, AUTH with
 * an ACL user and SELECT from the URL, a deep pipeline and a value of
 * several MB over TLS (partial reads and writes), timeouts, reconnecting
 * after a restart, the describe line, and a replica found directly (role
 * shown, not refused) versus through a mode that needs a master. */
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "rconn.h"
#include "support.h"
#include "support_rtopo.h"

static void setup(void)
{
    rt_begin();
}

static void teardown(void)
{
    rt_end();
}

static rconn *open_text(const char *text, aq_err *e)
{
    static aq_config c;
    ck_assert_msg(config_load_string(&c, text, "test", e) == 0, "%s", e->msg);
    return rconn_open(&c, e);
}

/* One command as words; the reply's string or integer as text. */
static const char *run(rconn *r, const char *words)
{
    static char out[256];
    char copy[512];
    const char *argv[16];
    int argc = 0;
    snprintf(copy, sizeof copy, "%s", words);
    for (char *save = NULL, *t = strtok_r(copy, " ", &save); t && argc < 16; t = strtok_r(NULL, " ", &save))
        argv[argc++] = t;
    redisReply *rep = NULL;
    aq_err e = {0};
    ck_assert_msg(rconn_command(r, argc, argv, NULL, &rep, &e) == 0, "%s: %s", words, e.msg);
    if (rep->type == REDIS_REPLY_INTEGER)
        snprintf(out, sizeof out, "%lld", rep->integer);
    else
        snprintf(out, sizeof out, "%.*s", rep->str ? (int)rep->len : 0, rep->str ? rep->str : "");
    freeReplyObject(rep);
    return out;
}

START_TEST(t_unix_auth_select)
{
    rt_srv s;
    char lines[600];
    snprintf(lines, sizeof lines, "unixsocket %s/r.sock\nunixsocketperm 700\n"
             "user default on nopass ~* &* +@all\nuser alice on >s3cret ~* &* +@all\n", rt_dir());
    rt_server(&s, "unix", false, lines);
    char text[800];
    aq_err e = {0};
    snprintf(text, sizeof text, "[redis]\nurl = unix://alice:s3cret@%s/r.sock?db=3\n", rt_dir());
    rconn *r = open_text(text, &e);
    ck_assert_msg(r != NULL, "%s", e.msg);
    ck_assert_str_eq(run(r, "SET k v"), "OK");
    ck_assert_str_eq(run(r, "ACL WHOAMI"), "alice");
    ck_assert_str_eq(rt_cli("-p %d -n 3 get k", s.port), "v"); /* SELECT 3 happened */
    ck_assert_str_eq(rconn_mode(r), "direct");
    ck_assert(!rconn_tls(r));
    ck_assert_msg(strstr(rconn_describe(r), "/r.sock master plain"), "%s", rconn_describe(r));
    ck_assert_int_ge(rconn_fd(r), 0);
    rconn_close(r);
    /* a wrong password: refused for good, the password never shown */
    snprintf(text, sizeof text, "[redis]\nurl = redis://alice:wrongpw@127.0.0.1:%d/0\n", s.port);
    ck_assert_ptr_null(open_text(text, &e));
    ck_assert_int_eq(e.code, AQ_EPERM);
    ck_assert_msg(strstr(e.msg, "AUTH") && !strstr(e.msg, "wrongpw"), "%s", e.msg);
}
END_TEST

START_TEST(t_tls_pipeline_big_values)
{
    rt_certs();
    rt_srv s;
    char lines[1200];
    snprintf(lines, sizeof lines, "tls-port TLSPORT\ntls-cert-file %s\ntls-key-file %s\ntls-ca-cert-file %s\n"
             "tls-auth-clients no\n", rt_path("server.crt"), rt_path("server.key"), rt_path("ca.crt"));
    rt_server(&s, "tls", false, lines);
    char text[800];
    snprintf(text, sizeof text, "[redis]\nurl = rediss://localhost:%d\ntls_ca_file = %s\n", s.port,
             rt_path("ca.crt"));
    aq_err e = {0};
    rconn *r = open_text(text, &e);
    ck_assert_msg(r != NULL, "%s", e.msg);
    ck_assert(rconn_tls(r));
    /* 5 MB out and back: many partial SSL writes and reads */
    size_t big = 5u << 20;
    char *v = malloc(big);
    for (size_t i = 0; i < big; i++)
        v[i] = (char)('a' + i % 26);
    const char *set[] = {"SET", "big", v};
    size_t setl[] = {3, 3, big};
    redisReply *rep;
    ck_assert_msg(rconn_command(r, 3, set, setl, &rep, &e) == 0, "%s", e.msg);
    freeReplyObject(rep);
    const char *get[] = {"GET", "big"};
    ck_assert_msg(rconn_command(r, 2, get, NULL, &rep, &e) == 0, "%s", e.msg);
    ck_assert_uint_eq(rep->len, big);
    ck_assert(memcmp(rep->str, v, big) == 0);
    freeReplyObject(rep);
    free(v);
    /* 5000 commands buffered, then 5000 replies read in order */
    for (int i = 0; i < 5000; i++) {
        char n[16];
        snprintf(n, sizeof n, "%d", i);
        const char *argv[] = {"RPUSH", "l", n};
        ck_assert_int_eq(rconn_append(r, 3, argv, NULL, &e), 0);
    }
    for (int i = 0; i < 5000; i++) {
        ck_assert_msg(rconn_reply(r, &rep, &e) == 0, "%s", e.msg);
        ck_assert_int_eq(rep->integer, i + 1);
        freeReplyObject(rep);
    }
    /* a read timeout is a transport failure; reconnecting works */
    rconn_set_timeout(r, 200);
    const char *blk[] = {"BLPOP", "nothing", "5"};
    ck_assert_int_eq(rconn_command(r, 3, blk, NULL, &rep, &e), AQ_EAGAIN);
    ck_assert_msg(strstr(e.msg, "timed out"), "%s", e.msg);
    ck_assert_int_eq(rconn_reconnect(r, &e), 0);
    ck_assert_str_eq(run(r, "LLEN l"), "5000");
    /* the server restarts: the next call fails, a reconnect finds it again */
    rt_kill(s.pid, SIGTERM);
    const char *ping[] = {"PING"};
    ck_assert_int_eq(rconn_command(r, 1, ping, NULL, &rep, &e), AQ_EAGAIN);
    ck_assert_int_eq(rconn_reconnect(r, &e), AQ_EAGAIN);
    rt_server_restart(&s, false);
    ck_assert_msg(rconn_reconnect(r, &e) == 0, "%s", e.msg);
    ck_assert_str_eq(run(r, "PING"), "PONG");
    rconn_close(r);
}
END_TEST

START_TEST(t_roles)
{
    rt_srv m, rep;
    rt_server(&m, "m", false, "");
    char lines[128];
    snprintf(lines, sizeof lines, "replicaof 127.0.0.1 %d\n", m.port);
    rt_server(&rep, "r", false, lines);
    char text[300];
    snprintf(text, sizeof text, "[redis]\nurl = redis://127.0.0.1:%d\n", rep.port);
    aq_err e = {0};
    rconn *r = open_text(text, &e);
    ck_assert_msg(r != NULL, "%s", e.msg); /* direct: what the URL names, shown as it is */
    ck_assert_str_eq(rconn_role(r), "slave");
    ck_assert_msg(strstr(rconn_describe(r), "slave plain"), "%s", rconn_describe(r));
    /* a write there says READONLY: a reply that asks to find the master again */
    const char *w[] = {"SET", "x", "1"};
    redisReply *rp;
    ck_assert_int_eq(rconn_command(r, 3, w, NULL, &rp, &e), 0);
    ck_assert(rconn_reply_moves(rp));
    freeReplyObject(rp);
    rconn_close(r);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("rconn");
    TCase *tc = tcase_create("rconn");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_unchecked_fixture(tc, NULL, rt_reap_strays);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, t_unix_auth_select);
    tcase_add_test(tc, t_tls_pipeline_big_values);
    tcase_add_test(tc, t_roles);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return sup_run_suite(suite());
}
