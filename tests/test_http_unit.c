/* systemd/avatarq-http.service: `systemd-analyze verify` accepts it without
 * a single diagnostic, its hardening rates 2.0 or lower with
 * `systemd-analyze security --offline=yes` (the same bars tests/test_units.c
 * sets for the worker units), it runs the program as the avatarq user with
 * Type=notify, and `make install` (systemd/install.sh into a DESTDIR)
 * installs it filled in, with the program and the man page. Without
 * systemd-analyze the checks that need it are skipped with a note. */
#include <check.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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
        "/usr/local/bin/avatarq-http", "/lib/systemd/system/" UNIT,
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
