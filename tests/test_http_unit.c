/* systemd/avatarq-http.service: `systemd-analyze verify` accepts it without
 * a single diagnostic, its hardening rates 2.0 or lower with
 * `systemd-analyze security --offline=yes` (the same bars tests/test_units.c
 * sets for the worker units), it runs the program as the avatarq user with
 * Type=notify, and `make install` (systemd/install.sh into a DESTDIR)
 * installs it filled in, with the program and the man page, and the
 * program does all its work inside the unit's sandbox (emulated: read-only
 * system, nobody, no capabilities, strace checked against the unit's
 * filters). Without systemd-analyze, strace or root the checks that need
 * them are skipped with a note. */
#include <check.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "buf.h"
#include "support.h"
#include "support_units.h"

#define UNIT "avatarq-http.service"

static char tmp[PATH_MAX];
static char bindir[PATH_MAX];

static void setup(void)
{
    un_fixture(bindir, tmp, ".");
    char cmd[8 * PATH_MAX];
    /* the unit filled in as install.sh does */
    snprintf(cmd, sizeof cmd,
             "sed -e 's#@BINDIR@#%s#g' -e 's#@SYSCONFDIR@#/etc#g' systemd/" UNIT " > '%s/" UNIT "'",
             bindir, tmp);
    ck_assert_int_eq(sup_run(cmd, NULL, false), 0);
}

static void teardown(void)
{
    sup_rmtree(tmp);
}

START_TEST(t_verify_cleanly)
{
    if (un_missing("systemd-analyze", "verify"))
        return;
    char path[PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/" UNIT, tmp);
    buf out = BUF_INIT;
    ck_assert_msg(un_verify(tmp, path, &out), "verify: %s", out.len ? (char *)out.data : "");
    buf_free(&out);
    un_verify_catches(tmp, path, "NotifyAccess");
}
END_TEST

START_TEST(t_exposure_at_most_2)
{
    if (un_missing("systemd-analyze", "security"))
        return;
    char path[PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/" UNIT, tmp);
    double level = un_exposure(path);
    fprintf(stderr, UNIT ": exposure %.1f\n", level);
    ck_assert_msg(level >= 0, "no exposure figure");
    ck_assert_msg(level <= 2.0, "exposure %.1f is above 2.0", level);
}
END_TEST

START_TEST(t_settings)
{
    char path[PATH_MAX + 32], cmd[8 * PATH_MAX];
    snprintf(path, sizeof path, "%s/" UNIT, tmp);
    static const char *const want[] = {
        "Type=notify", "NotifyAccess=main", "User=avatarq", "ProtectSystem=strict",
        "NoNewPrivileges=yes", "CapabilityBoundingSet=", "SystemCallFilter=@system-service",
    };
    for (size_t i = 0; i < sizeof want / sizeof *want; i++) {
        snprintf(cmd, sizeof cmd, "grep -qx '%s' '%s'", want[i], path);
        ck_assert_msg(sup_run(cmd, NULL, false) == 0, "%s lacks %s", UNIT, want[i]);
    }
    snprintf(cmd, sizeof cmd, "grep -q '^ExecStart=%s/avatarq-http -c /etc/avatarq/config.ini$' '%s'",
             bindir, path);
    ck_assert_msg(sup_run(cmd, NULL, false) == 0, "ExecStart is not the program with the config");
}
END_TEST

/* make install into a DESTDIR puts the program, the unit (filled in) and
 * the man page in place, and uninstall takes them away again. */
START_TEST(t_install)
{
    char cmd[8 * PATH_MAX];
    buf out = BUF_INIT;
    snprintf(cmd, sizeof cmd,
             "UNITDIR=/lib/systemd/system SYSUSERSDIR=/lib/sysusers.d TMPFILESDIR=/lib/tmpfiles.d "
             "bash systemd/install.sh install '%s/root' /usr/local 0.1.0", tmp);
    int rc = sup_run(cmd, &out, true);
    ck_assert_msg(rc == 0, "install: %s", out.len ? (char *)out.data : "");
    static const char *const files[] = {
        "/usr/local/bin/avatarq-http", ("/lib/systemd/system/" UNIT),
        "/usr/local/share/man/man8/avatarq-http.8",
    };
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
        snprintf(cmd, sizeof cmd, "%s/root%s", tmp, files[i]);
        ck_assert_msg(access(cmd, R_OK) == 0, "not installed: %s", files[i]);
    }
    snprintf(cmd, sizeof cmd, "grep -q '^ExecStart=/usr/local/bin/avatarq-http ' '%s/root/lib/systemd/system/" UNIT "'", tmp);
    ck_assert_msg(sup_run(cmd, NULL, false) == 0, "installed unit not filled in");
    snprintf(cmd, sizeof cmd,
             "UNITDIR=/lib/systemd/system SYSUSERSDIR=/lib/sysusers.d TMPFILESDIR=/lib/tmpfiles.d "
             "bash systemd/install.sh uninstall '%s/root' /usr/local 0.1.0", tmp);
    ck_assert_int_eq(sup_run(cmd, &out, true), 0);
    snprintf(cmd, sizeof cmd, "%s/root/usr/local/bin/avatarq-http", tmp);
    ck_assert_msg(access(cmd, F_OK) != 0, "uninstall left the program");
    buf_free(&out);
}
END_TEST

/* ---- the program inside the unit's sandbox ----
 * As in tests/test_units.c for the worker: in a mount namespace where / is
 * read-only and only the data directory is writable (ProtectSystem=strict +
 * StateDirectory=), as nobody without capabilities (User=, empty
 * CapabilityBoundingSet=), under strace; every kind of request is made, and
 * the trace must hold only system calls of SystemCallFilter=@system-service
 * ~@privileged @resources, sockets of RestrictAddressFamilies=, no
 * writable+executable mapping (MemoryDenyWriteExecute=), no write refused
 * by the read-only system and only per-process files of /proc
 * (ProcSubset=pid): tests/support_units.c. */

static long get(int port, const char *path, const char *method)
{
    char cmd[600];
    buf out = BUF_INIT;
    snprintf(cmd, sizeof cmd,
             "curl -s -o /dev/null -w '%%{http_code}' -X %s -H 'Authorization: Bearer "
             "sandbox-token-0123456789' -d '{\"seed\":\"sb\"}' 'http://127.0.0.1:%d%s'",
             method, port, path);
    if (strcmp(method, "GET") == 0)
        snprintf(cmd, sizeof cmd,
                 "curl -s -o /dev/null -w '%%{http_code}' -H 'Authorization: Bearer "
                 "sandbox-token-0123456789' 'http://127.0.0.1:%d%s'", port, path);
    sup_run(cmd, &out, false);
    long code = out.len ? atol((char *)out.data) : -1;
    buf_free(&out);
    return code;
}

START_TEST(t_sandboxed_server)
{
    if (!un_sandbox_possible())
        return;
    char dir[PATH_MAX + 16], conf[PATH_MAX + 64], text[4 * PATH_MAX], cmd[8 * PATH_MAX];
    snprintf(dir, sizeof dir, "%s/audit", tmp);
    ck_assert_int_eq(mkdir(dir, 0777), 0);
    chmod(dir, 0777);
    chmod(tmp, 0755);
    int port = sup_free_port();
    snprintf(conf, sizeof conf, "%s/config.ini", dir);
    /* no assertion between starting Redis and stopping it below: a failed
     * one would leave it running */
    sup_redis r;
    sup_redis_start(&r, false);
    snprintf(text, sizeof text,
             "[redis]\nurl = %s\nnamespace = audit\n[storage.local]\nroot = %s/root\nfsync = false\n"
             "[database.sqlite]\npath = %s/meta.db\n[http]\nlisten = 127.0.0.1:%d\nthreads = 2\n"
             "auth_token = sandbox-token-0123456789\n",
             r.url, dir, dir, port);
    sup_write_file(conf, text);
    /* the schema and one stored image, made beforehand as the fleet would */
    snprintf(cmd, sizeof cmd,
             "'%s/avatarq' -c '%s' migrate >/dev/null && mkdir -p '%s/root/avatars' && '%s/avatarq' render --seed sb --id sb-1 "
             "--sizes 64 -d '%s/root/avatars' >/dev/null && chmod -R a+rwX '%s' && chmod 0644 '%s'",
             bindir, conf, dir, bindir, dir, dir, conf);
    int prepared = sup_run(cmd, NULL, false);

    char log[PATH_MAX + 32], prog[PATH_MAX + 32];
    snprintf(log, sizeof log, "%s/http.log", dir);
    snprintf(prog, sizeof prog, "%s/avatarq-http", bindir);
    char *argv[] = {prog, "-c", conf, NULL};
    pid_t tracer = prepared == 0 ? un_sandbox_spawn(dir, "http.trace", argv, log) : 0;
    bool up = tracer > 0 && sup_wait_port(port, 30000);
    static const struct {
        const char *method, *path;
        long want;
    } reqs[] = {
        {"GET", "/avatars/sb-1/64.png", 200}, {"GET", "/avatars/sb-1/64.png", 200},
        {"GET", "/avatars/none/64.png", 404}, {"GET", "/render/wave/sb.png?size=96", 200},
        {"POST", "/v1/jobs", 202},            {"GET", "/v1/stats?history=1", 200},
        {"GET", "/v1/workers", 200},          {"GET", "/v1/avatars?latest=5", 200},
        {"GET", "/metrics", 200},             {"GET", "/health", 200},
        {"GET", "/", 200},
    };
    long got[sizeof reqs / sizeof *reqs] = {0};
    for (size_t i = 0; up && i < sizeof reqs / sizeof *reqs; i++)
        got[i] = get(port, reqs[i].path, reqs[i].method);
    /* the program is strace's child */
    snprintf(cmd, sizeof cmd, "pgrep -P %d", (int)tracer);
    buf out = BUF_INIT;
    if (tracer > 0)
        sup_run(cmd, &out, false);
    pid_t srv = out.len ? (pid_t)atoi((char *)out.data) : 0;
    if (srv > 0)
        kill(srv, SIGTERM);
    int st = tracer > 0 ? sup_stop(tracer, SIGTERM, 30000) : -1;
    sup_redis_stop(&r);
    sup_rmtree(r.dir);
    ck_assert_msg(prepared == 0, "migrate or render failed");
    ck_assert_msg(up, "avatarq-http did not start in the sandbox");
    for (size_t i = 0; i < sizeof reqs / sizeof *reqs; i++)
        ck_assert_msg(got[i] == reqs[i].want, "%s %s: %ld, want %ld", reqs[i].method, reqs[i].path,
                      got[i], reqs[i].want);
    ck_assert_msg(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0, "no clean stop (%d)", st);

    char allowed[PATH_MAX + 32], trace[PATH_MAX + 32];
    snprintf(allowed, sizeof allowed, "%s/allowed.txt", tmp);
    snprintf(trace, sizeof trace, "%s/http.trace", dir);
    un_allowed_syscalls(allowed);
    un_audit_trace("avatarq-http", trace, allowed, 10);
    /* not vacuous: the image went out with sendfile, as nobody */
    snprintf(cmd, sizeof cmd, "grep -c 'sendfile(' '%s'", trace);
    sup_run(cmd, &out, false);
    ck_assert_msg(out.len && atoi((char *)out.data) >= 1, "no sendfile in the trace");
    buf_free(&out);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("http_unit");
    TCase *tc = tcase_create("http_unit");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, t_verify_cleanly);
    tcase_add_test(tc, t_exposure_at_most_2);
    tcase_add_test(tc, t_settings);
    tcase_add_test(tc, t_install);
    tcase_add_test(tc, t_sandboxed_server);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return sup_run_suite(suite());
}
