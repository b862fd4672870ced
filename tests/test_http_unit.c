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

#define UNIT "avatarq-http.service"

static char tmp[PATH_MAX];
static char bindir[PATH_MAX];

static bool have_tool(const char *name)
{
    char cmd[8 * PATH_MAX];
    snprintf(cmd, sizeof cmd, "command -v %s >/dev/null 2>&1", name);
    return sup_run(cmd, NULL, false) == 0;
}

static void setup(void)
{
    const char *dir = getenv("AQ_BIN_DIR");
    ck_assert_msg(realpath(dir && *dir ? dir : "bin", bindir), "no bin dir");
    sup_tmpdir(tmp, sizeof tmp);
    char cmd[8 * PATH_MAX];
    /* the unit filled in as install.sh does; our man pages where man looks */
    snprintf(cmd, sizeof cmd,
             "mkdir -p '%s/man/man1' '%s/man/man8' && cp man/avatarq.1 '%s/man/man1/' && "
             "cp man/avatarq-http.8 man/avatarq-worker.8 '%s/man/man8/' && "
             "sed -e 's#@BINDIR@#%s#g' -e 's#@SYSCONFDIR@#/etc#g' systemd/" UNIT " > '%s/" UNIT "'",
             tmp, tmp, tmp, tmp, bindir, tmp);
    ck_assert_int_eq(sup_run(cmd, NULL, false), 0);
}

static void teardown(void)
{
    sup_rmtree(tmp);
}

START_TEST(t_verify_cleanly)
{
    if (!have_tool("systemd-analyze")) {
        fprintf(stderr, "note: systemd-analyze not installed; verify skipped\n");
        return;
    }
    char cmd[8 * PATH_MAX];
    buf out = BUF_INIT;
    snprintf(cmd, sizeof cmd, "MANPATH='%s/man' SYSTEMD_LOG_COLOR=0 systemd-analyze verify '%s/" UNIT "'",
             tmp, tmp);
    int rc = sup_run(cmd, &out, true);
    ck_assert_msg(rc == 0 && out.len == 0, "verify: exit %d: %s", rc, out.len ? (char *)out.data : "");
    /* not vacuous: a misspelt key is reported */
    snprintf(cmd, sizeof cmd, "sed 's/^NotifyAccess=/NotifyAcces=/' '%s/" UNIT "' > '%s/bad.service' && "
             "MANPATH='%s/man' systemd-analyze verify '%s/bad.service'", tmp, tmp, tmp, tmp);
    sup_run(cmd, &out, true);
    ck_assert_msg(out.len && strstr((char *)out.data, "NotifyAcces"), "verify missed a bad key");
    buf_free(&out);
}
END_TEST

START_TEST(t_exposure_at_most_2)
{
    if (!have_tool("systemd-analyze")) {
        fprintf(stderr, "note: systemd-analyze not installed; security skipped\n");
        return;
    }
    char cmd[8 * PATH_MAX];
    buf out = BUF_INIT;
    snprintf(cmd, sizeof cmd, "systemd-analyze security --offline=yes --no-pager '%s/" UNIT "'", tmp);
    sup_run(cmd, &out, true);
    const char *line = out.len ? strstr((char *)out.data, "Overall exposure level for ") : NULL;
    const char *colon = line ? strchr(line, ':') : NULL;
    double level = colon ? strtod(colon + 1, NULL) : -1;
    fprintf(stderr, UNIT ": exposure %.1f\n", level);
    ck_assert_msg(level >= 0, "no exposure figure: %s", out.len ? (char *)out.data : "");
    ck_assert_msg(level <= 2.0, "exposure %.1f is above 2.0", level);
    buf_free(&out);
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
 * writable+executable mapping (MemoryDenyWriteExecute=) and no write refused
 * by the read-only system. */

static const char ALLOWED_CMD[] =
    "expand() { systemd-analyze syscall-filter \"$1\" | sed 1d | sed 's/^ *//' | "
    "grep -v '^#' | grep . | while read -r n; do case \"$n\" in @*) expand \"$n\" ;; "
    "*) echo \"$n\" ;; esac; done; }; "
    "comm -23 <(expand @system-service | sort -u) <({ expand @privileged; expand @resources; } | sort -u)";

static const char SANDBOX[] =
    "d=$0; t=$1; shift; "
    "mount --make-rprivate / && mount --bind \"$d\" \"$d\" && mount -o remount,bind,ro / && "
    "exec setpriv --reuid=65534 --regid=65534 --clear-groups --no-new-privs --inh-caps=-all "
    "--bounding-set=-all -- strace -f -qq -o \"$d/$t\" \"$@\"";

static bool sandbox_possible(void)
{
#if defined(__SANITIZE_ADDRESS__)
    fprintf(stderr, "note: sanitizer build; its runtime makes calls the production build does not; skipped\n");
    return false;
#endif
    if (!have_tool("systemd-analyze") || !have_tool("strace") || !have_tool("setpriv") ||
        !have_tool("unshare") || geteuid() != 0 ||
        sup_run("strace -f -qq -o /dev/null true", NULL, false) != 0 ||
        sup_run("unshare --mount --propagation private true", NULL, false) != 0) {
        fprintf(stderr, "note: no root, strace, setpriv, unshare or mount namespaces; sandbox audit skipped\n");
        return false;
    }
    return true;
}

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
    if (!sandbox_possible())
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
    char *argv[] = {"/usr/bin/unshare", "--mount", "--propagation", "private", "--", "/bin/sh",
                    "-c", (char *)SANDBOX, dir, "http.trace", prog, "-c", conf, NULL};
    pid_t tracer = prepared == 0 ? sup_spawn(argv, NULL, log) : 0;
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
    snprintf(cmd, sizeof cmd, "bash -c \"$(cat <<'EOS'\n%s\nEOS\n)\" > '%s'", ALLOWED_CMD, allowed);
    ck_assert_int_eq(sup_run(cmd, NULL, false), 0);
    static const struct {
        const char *what, *fmt;
    } checks[] = {
        {"system calls outside @system-service ~@privileged @resources",
         "sed -E 's/^[0-9]+ +//' '%1$s' | grep -oE '^[a-z_0-9]+\\(' | tr -d '(' | sort -u | comm -23 - '%2$s' | tr '\\n' ' '"},
        {"sockets outside AF_UNIX AF_INET AF_INET6",
         "grep -oE 'socket\\((AF_[A-Z0-9]+|[0-9]+)' '%1$s' | sort -u | grep -vE 'AF_(UNIX|INET|INET6)$' | tr '\\n' ' '"},
        {"writable and executable mappings",
         "grep -E '(mmap|mprotect|pkey_mprotect)\\(' '%1$s' | grep PROT_WRITE | grep PROT_EXEC | head -3"},
        {"writes on the read-only system", "grep -E '= -1 EROFS' '%1$s' | head -3"},
    };
    for (size_t i = 0; i < sizeof checks / sizeof *checks; i++) {
        snprintf(cmd, sizeof cmd, checks[i].fmt, trace, allowed);
        ck_assert_int_eq(sup_run(cmd, &out, false), 0);
        ck_assert_msg(out.len == 0, "%s: %s", checks[i].what, (char *)out.data);
    }
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
    SRunner *sr = srunner_create(suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
