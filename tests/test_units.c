/* The systemd units, sysusers.d and tmpfiles.d entries of systemd/:
 * `systemd-analyze verify` accepts them without a single diagnostic, the
 * hardening rates 2.0 or lower with `systemd-analyze security --offline=yes`,
 * the template stays in step with the plain unit, the settings the worker
 * relies on are there, and systemd-sysusers / systemd-tmpfiles create the
 * user and directories in a scratch root, and the worker, run under strace
 * as an unprivileged user without capabilities, processes jobs, reloads and
 * stops using only system calls, socket families and mappings the unit's
 * sandbox allows. Without systemd-analyze (a host without systemd) or strace
 * the checks that need them are skipped with a note. */
#include <check.h>
#include <errno.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "buf.h"
#include "config.h"
#include "support.h"
#include "support_pg.h"
#include "support_s3.h"
#include "support_units.h"

#define UNIT "avatarq-worker.service"
#define TEMPLATE "avatarq-worker@.service"

/* snprintf into an array, failing the test rather than truncating a path. */
#define FMT(arr, ...)                                                          \
    ck_assert_msg(snprintf(arr, sizeof arr, __VA_ARGS__) < (int)sizeof arr,  \
                  "too long for " #arr)

static char root[PATH_MAX];   /* the source tree (holds systemd/install.sh) */
static char bindir[PATH_MAX]; /* absolute directory of the programs under test */
static char tmp[PATH_MAX];

/* ---- helpers ---- */

static bool is_tree(const char *dir)
{
    char p[PATH_MAX + 32];
    FMT(p, "%s/systemd/install.sh", dir);
    return access(p, R_OK) == 0;
}

/* The source tree: the working directory (tests/run.sh runs from the repo
 * root) or an ancestor of it or of $AQ_BIN_DIR. */
static void find_root(void)
{
    char start[2][PATH_MAX];
    ck_assert_ptr_nonnull(getcwd(start[0], sizeof start[0]));
    if (!realpath(sup_bin(""), start[1]))
        FMT(start[1], "%s", start[0]);
    for (int i = 0; i < 2; i++) {
        char d[PATH_MAX];
        FMT(d, "%s", start[i]);
        for (;;) {
            if (is_tree(d)) {
                FMT(root, "%s", d);
                return;
            }
            char *slash = strrchr(d, '/');
            if (!slash || slash == d)
                break;
            *slash = '\0';
        }
    }
    ck_abort_msg("cannot find the source tree (systemd/install.sh) from %s or %s",
                 start[0], start[1]);
}

static char *read_text(const char *path)
{
    FILE *f = fopen(path, "r");
    ck_assert_msg(f != NULL, "open %s: %s", path, strerror(errno));
    buf b = BUF_INIT;
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        buf_append(&b, chunk, n);
    buf_append(&b, "", 1);
    fclose(f);
    return (char *)b.data;
}

/* Replaces every occurrence of from by to in s (malloc'd result; frees s). */
static char *replace_all(char *s, const char *from, const char *to)
{
    buf b = BUF_INIT;
    size_t fl = strlen(from);
    const char *p = s, *hit;
    while ((hit = strstr(p, from)) != NULL) {
        buf_append(&b, p, (size_t)(hit - p));
        buf_append(&b, to, strlen(to));
        p = hit + fl;
    }
    buf_append(&b, p, strlen(p) + 1);
    free(s);
    return (char *)b.data;
}

/* True when s still holds an @UPPER_CASE@ placeholder. */
static bool has_placeholder(const char *s)
{
    for (const char *at = strchr(s, '@'); at; at = strchr(at + 1, '@')) {
        size_t n = strspn(at + 1, "ABCDEFGHIJKLMNOPQRSTUVWXYZ_");
        if (n > 0 && at[1 + n] == '@')
            return true;
    }
    return false;
}

/* Writes systemd/NAME with its @VARIABLES@ filled in as install.sh does,
 * but with ExecStart pointing at the programs under test, to dir/as. */
static void render_unit(const char *name, const char *dir, const char *as)
{
    char src[PATH_MAX + 32], dst[PATH_MAX + 64];
    FMT(src, "%s/systemd/%s", root, name);
    FMT(dst, "%s/%s", dir, as);
    char *s = read_text(src);
    s = replace_all(s, "@BINDIR@", bindir);
    s = replace_all(s, "@SYSCONFDIR@", "/etc");
    ck_assert_msg(!has_placeholder(s), "%s: an unfilled @VARIABLE@ is left", name);
    sup_write_file(dst, s);
    free(s);
}

/* The value of the first "Key=" line of a unit text, or NULL (static). */
static const char *unit_value(const char *text, const char *key)
{
    static char val[512];
    size_t kl = strlen(key);
    for (const char *l = text; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
        if (strncmp(l, key, kl) == 0 && l[kl] == '=') {
            const char *v = l + kl + 1, *end = strchr(v, '\n');
            size_t n = end ? (size_t)(end - v) : strlen(v);
            if (n >= sizeof val)
                n = sizeof val - 1;
            memcpy(val, v, n);
            val[n] = '\0';
            return val;
        }
    }
    return NULL;
}

/* ---- fixture ---- */

static void setup(void)
{
    find_root();
    un_fixture(bindir, tmp, root);
}

static void teardown(void)
{
    sup_rmtree(tmp);
}

/* ---- tests ---- */

START_TEST(units_verify_cleanly)
{
    if (un_missing("systemd-analyze", "verify"))
        return;
    render_unit(UNIT, tmp, UNIT);
    render_unit(TEMPLATE, tmp, TEMPLATE);
    render_unit(TEMPLATE, tmp, "avatarq-worker@thumbs.service");
    const char *units[] = {UNIT, TEMPLATE, "avatarq-worker@thumbs.service"};
    char p[PATH_MAX + 64];
    for (size_t i = 0; i < sizeof units / sizeof *units; i++) {
        FMT(p, "%s/%s", tmp, units[i]);
        buf out = BUF_INIT;
        ck_assert_msg(un_verify(tmp, p, &out), "verify %s:\n%s", units[i],
                      out.data ? (char *)out.data : "");
        buf_free(&out);
    }
    FMT(p, "%s/%s", tmp, UNIT);
    un_verify_catches(tmp, p, "KillMode");
}
END_TEST

START_TEST(units_exposure_at_most_2)
{
    if (un_missing("systemd-analyze", "security"))
        return;
    render_unit(UNIT, tmp, UNIT);
    render_unit(TEMPLATE, tmp, "avatarq-worker@thumbs.service");
    const char *units[] = {UNIT, "avatarq-worker@thumbs.service"};
    for (size_t i = 0; i < 2; i++) {
        char p[PATH_MAX + 64];
        FMT(p, "%s/%s", tmp, units[i]);
        double level = un_exposure(p);
        fprintf(stderr, "%s: exposure %.1f\n", units[i], level);
        ck_assert_msg(level >= 0, "%s: no exposure figure", units[i]);
        ck_assert_msg(level <= 2.0, "%s: exposure %.1f is above 2.0", units[i], level);
    }
}
END_TEST

/* The template is the plain unit with %i naming the config; everything else
 * (hardening, timeouts) must not drift apart. */
START_TEST(template_matches_unit)
{
    char p[PATH_MAX + 32];
    FMT(p, "%s/systemd/%s", root, UNIT);
    char *unit = read_text(p);
    FMT(p, "%s/systemd/%s", root, TEMPLATE);
    char *tpl = read_text(p);
    ck_assert_ptr_nonnull(strstr(tpl, "-c @SYSCONFDIR@/avatarq/%i.ini"));
    tpl = replace_all(tpl, "%i.ini", "config.ini");
    tpl = replace_all(tpl, "%i.env", "worker.env");
    tpl = replace_all(tpl, " (%i)", "");
    tpl = replace_all(tpl, "avatarq-worker@%i", "avatarq-worker");
    /* Compare the non-comment lines one by one. */
    const char *a = unit, *b = tpl;
    int line = 0;
    for (;;) {
        while (*a == '#')
            a = strchr(a, '\n') ? strchr(a, '\n') + 1 : a + strlen(a);
        while (*b == '#')
            b = strchr(b, '\n') ? strchr(b, '\n') + 1 : b + strlen(b);
        if (!*a || !*b)
            break;
        size_t la = strcspn(a, "\n"), lb = strcspn(b, "\n");
        line++;
        ck_assert_msg(la == lb && memcmp(a, b, la) == 0,
                      "setting %d differs: unit '%.*s' vs template '%.*s'", line, (int)la, a,
                      (int)lb, b);
        a += la + (a[la] == '\n');
        b += lb + (b[lb] == '\n');
    }
    ck_assert_msg(!*a && !*b, "one unit has more settings than the other");
    ck_assert_int_gt(line, 40);
    free(unit);
    free(tpl);
}
END_TEST

/* Seconds of a systemd time span such as "45s", "1min 30s" or "90". */
static long span_s(const char *v)
{
    long total = 0;
    while (v && *v) {
        char *end;
        long n = strtol(v, &end, 10);
        while (*end == ' ')
            end++;
        long mul = 1;
        if (strncmp(end, "min", 3) == 0)
            mul = 60, end += 3;
        else if (*end == 'h')
            mul = 3600, end += 1;
        else if (*end == 's')
            end += 1;
        total += n * mul;
        while (*end == ' ')
            end++;
        if (end == v)
            break;
        v = end;
    }
    return total;
}

/* What the supervisor's contract with systemd depends on. */
START_TEST(unit_settings_the_worker_relies_on)
{
    char p[PATH_MAX + 32];
    FMT(p, "%s/systemd/%s", root, UNIT);
    char *u = read_text(p);
    static const struct { const char *key, *want; } exact[] = {
        {"Type", "notify"},          /* READY=1 after Redis and the pool are up */
        {"NotifyAccess", "main"},    /* only the supervisor speaks to systemd */
        {"KillMode", "mixed"},       /* SIGTERM to the supervisor alone */
        {"Restart", "on-failure"},
        {"ExecReload", "/bin/kill -HUP $MAINPID"},
        {"User", "avatarq"},
        {"StateDirectory", "avatarq"},
        {"WorkingDirectory", "/var/lib/avatarq"},
        {"ProtectSystem", "strict"},
        {"NoNewPrivileges", "yes"},
        {"CapabilityBoundingSet", ""},
        {"RestrictAddressFamilies", "AF_UNIX AF_INET AF_INET6"},
        {"SystemCallFilter", "@system-service"},
        {"OOMPolicy", "continue"},
        {"LimitCORE", "0"},          /* no core dump holds the secrets */
        {"MemoryMax", "2G"},
    };
    for (size_t i = 0; i < sizeof exact / sizeof *exact; i++) {
        const char *v = unit_value(u, exact[i].key);
        ck_assert_msg(v && strcmp(v, exact[i].want) == 0, "%s=%s, want %s", exact[i].key,
                      v ? v : "(absent)", exact[i].want);
    }
    ck_assert_ptr_nonnull(strstr(u, "ExecStart=@BINDIR@/avatarq-worker -c @SYSCONFDIR@/avatarq/config.ini\n"));
    ck_assert_ptr_nonnull(strstr(u, "ExecStartPre=-@BINDIR@/avatarq -c @SYSCONFDIR@/avatarq/config.ini health\n"));
    /* The watchdog must allow a few missed heartbeats of the supervisor loop. */
    long wd = span_s(unit_value(u, "WatchdogSec"));
    ck_assert_msg(wd >= 10, "WatchdogSec %ld s is too tight", wd);
    /* systemd's SIGKILL must come after the worker's own graceful deadline. */
    aq_config c;
    config_defaults(&c);
    long stop = span_s(unit_value(u, "TimeoutStopSec"));
    ck_assert_msg(stop > c.worker.shutdown_timeout_s, "TimeoutStopSec %ld s <= shutdown_timeout_s %d",
                  stop, c.worker.shutdown_timeout_s);
    free(u);
}
END_TEST

/* sysusers.d and tmpfiles.d applied to a scratch root make the user, the
 * state directories and the config's permissions the unit expects. */
START_TEST(sysusers_and_tmpfiles_apply)
{
    if (un_missing("systemd-sysusers", "sysusers") || un_missing("systemd-tmpfiles", "tmpfiles"))
        return;
    if (geteuid() != 0) {
        fprintf(stderr, "note: not root, tmpfiles cannot chown; skipped\n");
        return;
    }
    char cmd[6 * PATH_MAX], sr[PATH_MAX + 16];
    FMT(sr, "%s/root", tmp);
    FMT(cmd, "{ mkdir -p '%s/etc/avatarq' && echo '[redis]' > '%s/etc/avatarq/config.ini' && "
             "echo 'A=1' > '%s/etc/avatarq/thumbs.env' && "
             "chmod 0644 '%s/etc/avatarq/config.ini' '%s/etc/avatarq/thumbs.env' && "
             "sed 's#@SYSCONFDIR@#/etc#g' '%s/systemd/avatarq.tmpfiles' > '%s/avatarq-tmpfiles.conf' && "
             "systemd-sysusers --root='%s' '%s/systemd/avatarq.sysusers' && "
             "systemd-tmpfiles --root='%s' --create '%s/avatarq-tmpfiles.conf'; }",
             sr, sr, sr, sr, sr, root, tmp, sr, root, sr, tmp);
    buf out = BUF_INIT;
    int rc = sup_run(cmd, &out, true);
    ck_assert_msg(rc == 0, "sysusers/tmpfiles: exit %d: %s", rc, out.data ? (char *)out.data : "");
    buf_free(&out);

    /* The user: a system account with its home in the state directory. */
    FMT(cmd, "%s/etc/passwd", sr);
    char *passwd = read_text(cmd);
    const char *line = strstr(passwd, "avatarq:");
    ck_assert_msg(line == passwd || (line && line[-1] == '\n'), "no avatarq user in %s", passwd);
    unsigned uid = 0, gid = 0;
    char home[128] = "", shell[128] = "";
    ck_assert_int_eq(sscanf(line, "avatarq:x:%u:%u:%*[^:]:%127[^:]:%127[^\n]", &uid, &gid, home, shell), 4);
    ck_assert_str_eq(home, "/var/lib/avatarq");
    ck_assert_msg(uid > 0 && uid < 1000, "uid %u is not a system uid", uid);
    ck_assert_ptr_nonnull(strstr(shell, "nologin"));
    free(passwd);

    /* The avatars' readers have a group of their own, not the one that
     * reads the secrets. */
    FMT(cmd, "%s/etc/group", sr);
    char *group = read_text(cmd);
    const char *gl = strstr(group, "avatarq-data:");
    ck_assert_msg(gl && (gl == group || gl[-1] == '\n'), "no avatarq-data group in %s", group);
    unsigned data_gid = 0;
    ck_assert_int_eq(sscanf(gl, "avatarq-data:x:%u:", &data_gid), 1);
    ck_assert_uint_ne(data_gid, gid);
    free(group);
    static const struct { const char *path; unsigned mode; bool owner_is_avatarq, data; } want[] = {
        {"/var/lib/avatarq", 0751, true, false},
        {"/var/lib/avatarq/avatars", 02750, true, true},
        {"/etc/avatarq", 0750, false, false},
        {"/etc/avatarq/config.ini", 0640, false, false},
        {"/etc/avatarq/thumbs.env", 0640, false, false},
    };
    for (size_t i = 0; i < sizeof want / sizeof *want; i++) {
        char p[2 * PATH_MAX];
        FMT(p, "%s%s", sr, want[i].path);
        struct stat st;
        ck_assert_msg(stat(p, &st) == 0, "%s: %s", want[i].path, strerror(errno));
        ck_assert_msg((st.st_mode & 07777) == want[i].mode, "%s: mode %o, want %o", want[i].path,
                      st.st_mode & 07777, want[i].mode);
        ck_assert_msg(st.st_gid == (want[i].data ? data_gid : gid), "%s: group %u, want %s",
                      want[i].path, (unsigned)st.st_gid, want[i].data ? "avatarq-data" : "avatarq");
        ck_assert_msg(st.st_uid == (want[i].owner_is_avatarq ? uid : 0), "%s: owner %u",
                      want[i].path, (unsigned)st.st_uid);
    }
}
END_TEST

/* ---- the worker inside the sandbox's limits ----
 * No systemd runs as PID 1 here, so the unit's seccomp filter cannot be
 * applied for real. Instead the worker runs as nobody with no capabilities
 * and no_new_privs (what User=, CapabilityBoundingSet= and NoNewPrivileges=
 * give it), on a read-only / but for its data directory (ProtectSystem=
 * strict), under strace, and every system call it makes while taking jobs,
 * reloading on SIGHUP and stopping on SIGTERM must be in the unit's
 * SystemCallFilter=@system-service ~@privileged @resources; its sockets must be of the
 * RestrictAddressFamilies= families, no mapping may be writable and
 * executable (MemoryDenyWriteExecute=), no write may hit the read-only
 * system, and it may read only per-process files of /proc (ProcSubset=pid). */

static sup_redis redis;

static void redis_up(void)
{
    sup_redis_start(&redis, false);
}

static void redis_down(void)
{
    sup_redis_stop(&redis);
    sup_rmtree(redis.dir);
}

/* Polls NS:job:id until its state is done (true) or the deadline passes. */
static bool job_done(const char *id, int timeout_ms)
{
    for (int waited = 0; waited < timeout_ms; waited += 50) {
        if (strcmp(sup_redis_str(&redis, "HGET audit:job:%s state", id), "done") == 0)
            return true;
        sup_sleep_ms(50);
    }
    return false;
}

static void push_job(const char *id, const char *style)
{
    buf out = BUF_INIT;
    int rc = sup_redis_cli(&redis, &out,
                           "LPUSH audit:queue:default '{\"v\":1,\"id\":\"%s\",\"seed\":\"%s\","
                           "\"style\":\"%s\",\"sizes\":[32,64]}'",
                           id, id, style);
    ck_assert_msg(rc == 0, "LPUSH: %s", out.data ? (char *)out.data : "");
    buf_free(&out);
}

/* True when the file at path contains needle. */
static bool file_has(const char *path, const char *needle)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return false;
    fclose(f);
    char *t = read_text(path);
    bool has = strstr(t, needle) != NULL;
    free(t);
    return has;
}

/* Makes the world-writable data directory dir (below tmp) and its
 * config.ini: our Redis, two processes, and the backends' sections. */
static void sandbox_setup(char *dir, size_t n, const char *backends)
{
    ck_assert(snprintf(dir, n, "%s/audit", tmp) < (int)n);
    ck_assert_int_eq(mkdir(dir, 0777), 0);
    ck_assert_int_eq(chmod(dir, 0777), 0);
    ck_assert_int_eq(chmod(tmp, 0755), 0);
    char conf[PATH_MAX + 32], text[4 * PATH_MAX];
    FMT(conf, "%s/config.ini", dir);
    FMT(text, "[redis]\nurl = %s\nnamespace = audit\n[worker]\nprocesses = 2\n%s", redis.url, backends);
    sup_write_file(conf, text);
    chmod(conf, 0644);
}

/* Runs the worker in the sandbox: two jobs, then (reload) a SIGHUP and one
 * more job, then SIGTERM; asserts every job done and a clean exit. Its trace
 * is dir/worker.trace. */
static void sandboxed_worker(const char *dir, bool reload)
{
    char conf[PATH_MAX + 32], log[PATH_MAX + 32], worker[PATH_MAX + 32];
    FMT(conf, "%s/config.ini", dir);
    FMT(log, "%s/worker.log", dir);
    FMT(worker, "%s/avatarq-worker", bindir);
    char *argv[] = {worker, "-c", conf, NULL};
    pid_t tracer = un_sandbox_spawn(dir, "worker.trace", argv, log);
    push_job("audit-1", "pixel");
    push_job("audit-2", "gradient");
    bool done = job_done("audit-1", 60000) && job_done("audit-2", 60000);
    /* The supervisor is strace's child. */
    char cmd[64];
    FMT(cmd, "pgrep -P %d", (int)tracer);
    buf out = BUF_INIT;
    sup_run(cmd, &out, false);
    pid_t sup = out.data ? (pid_t)atoi((char *)out.data) : 0;
    buf_free(&out);
    if (done && sup > 0 && reload) {
        kill(sup, SIGHUP);
        for (int i = 0; i < 600 && !file_has(log, "reload done"); i++)
            sup_sleep_ms(50);
        push_job("audit-3", "wave");
        done = job_done("audit-3", 60000);
    }
    if (sup > 0)
        kill(sup, SIGTERM);
    int st = sup_stop(tracer, SIGTERM, 60000);
    ck_assert_msg(done && sup > 0, "the worker did not process its jobs; log:\n%s",
                  file_has(log, "") ? read_text(log) : "");
    ck_assert_msg(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0, "worker did not stop cleanly (%d)", st);
    ck_assert_msg(!reload || file_has(log, "reload done"), "no reload in the log");
}

/* Runs ExecStartPre='s avatarq health in the sandbox, as at the next start
 * (on a fresh database it reports the missing schema: the worker migrates
 * it); asserts three ok lines. Its trace is dir/health.trace. */
static void sandboxed_health(const char *dir)
{
    char conf[PATH_MAX + 32], log[PATH_MAX + 32], cli[PATH_MAX + 32];
    FMT(conf, "%s/config.ini", dir);
    FMT(log, "%s/health.log", dir);
    FMT(cli, "%s/avatarq", bindir);
    char *argv[] = {cli, "-c", conf, "health", NULL};
    int st = sup_wait(un_sandbox_spawn(dir, "health.trace", argv, log), 60000);
    ck_assert_msg(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0, "health failed (%d):\n%s", st,
                  file_has(log, "") ? read_text(log) : "");
    ck_assert_msg(file_has(log, "ok redis") && file_has(log, "ok database") && file_has(log, "ok storage"),
                  "health output:\n%s", read_text(log));
}

/* Audits both traces of dir against the filter. */
static void audit_traces(const char *dir)
{
    char names[PATH_MAX + 64];
    FMT(names, "%s/allowed", dir);
    un_allowed_syscalls(names);
    char trace[PATH_MAX + 32];
    FMT(trace, "%s/health.trace", dir);
    un_audit_trace("avatarq health", trace, names, 5);
    FMT(trace, "%s/worker.trace", dir);
    un_audit_trace("avatarq-worker", trace, names, 20);
}

/* Local storage and SQLite, with a reload. */
START_TEST(local_backends_stay_within_the_sandbox)
{
    if (!un_sandbox_possible())
        return;
    char dir[PATH_MAX + 16], backends[3 * PATH_MAX];
    FMT(dir, "%s/audit", tmp);
    FMT(backends, "[storage.local]\nroot = %s/avatars\n[database.sqlite]\npath = %s/avatarq.db\n", dir, dir);
    sandbox_setup(dir, sizeof dir, backends);
    sandboxed_worker(dir, true);
    sandboxed_health(dir);
    audit_traces(dir);
}
END_TEST

/* S3 through libcurl and PostgreSQL through libpq, over TCP. */
static sup_pg pg;
static sup_s3 *s3;
static bool remote_ok;

static void remote_up(void)
{
    redis_up();
    remote_ok = false;
    if (!un_sandbox_possible())
        return;
    if (!sup_pg_available() || !un_have_tool("node")) {
        fprintf(stderr, "note: no PostgreSQL or no node for the S3 server; remote sandbox audit skipped\n");
        return;
    }
    remote_ok = true;
    /* The S3 test server is started from the source tree. */
    find_root();
    ck_assert_int_eq(chdir(root), 0);
    sup_pg_start(&pg);
    s3 = sup_s3_new();
    sup_s3_start(s3, "audit");
}

static void remote_down(void)
{
    if (remote_ok) {
        sup_s3_free(s3);
        sup_pg_destroy(&pg);
    }
    redis_down();
}

START_TEST(remote_backends_stay_within_the_sandbox)
{
    if (!remote_ok)
        return; /* the fixture said why */
    char dir[PATH_MAX + 16], backends[2048];
    FMT(backends,
        "[storage]\nbackend = s3\n[storage.s3]\nendpoint = %s\nbucket = %s\naccess_key = %s\n"
        "secret_key = %s\nregion = %s\npath_style = true\n"
        "[database]\nbackend = postgresql\n[database.postgresql]\nconninfo = %s\n",
        s3->endpoint, s3->bucket, SUP_S3_KEY, SUP_S3_SECRET, SUP_S3_REGION, pg.conninfo);
    sandbox_setup(dir, sizeof dir, backends);
    sandboxed_worker(dir, false);
    sandboxed_health(dir);
    audit_traces(dir);
}
END_TEST

/* ---- man pages ---- */

START_TEST(man_pages_format_without_warnings)
{
    if (un_missing("groff", "man page check"))
        return;
    static const char *const pages[] = {"man/avatarq.1", "man/avatarq-worker.8"};
    for (size_t i = 0; i < 2; i++) {
        char cmd[PATH_MAX + 128];
        FMT(cmd, "groff -man -Tutf8 -ww -z '%s/%s'", root, pages[i]);
        buf out = BUF_INIT;
        int rc = sup_run(cmd, &out, true);
        ck_assert_msg(rc == 0 && out.len == 0, "%s: exit %d:\n%s", pages[i], rc,
                      out.data ? (char *)out.data : "");
        buf_free(&out);
    }
}
END_TEST

/* Every command and option the programs' --help lists, and every
 * configuration key avatarq-worker --help names, is documented. Prints what
 * is missing, one word per line. */
static const char MAN_COVERAGE[] =
    "set -u; B=$1; M=$2; miss=0\n"
    "text() { groff -man -Tascii -P-cbu \"$1\" 2>/dev/null; }\n"
    "opts() { grep -oE -- '(^|[^a-z-])--?[a-z][a-z-]*' | grep -oE -- '--?[a-z][a-z-]*'; }\n"
    "one=$(text \"$M/avatarq.1\"); eight=$(text \"$M/avatarq-worker.8\")\n"
    "cmds=$(\"$B/avatarq\" --help | awk '/^Commands:/{f=1;next} /^$/{f=0} f && /^  [a-z]/{print $1}')\n"
    "[ -n \"$cmds\" ] || { echo 'avatarq --help lists no commands'; exit 1; }\n"
    "words=$( { \"$B/avatarq\" --help | opts; echo \"$cmds\";\n"
    "  for c in $cmds; do \"$B/avatarq\" \"$c\" --help | opts; done; } | sort -u)\n"
    "for w in $words; do grep -qF -e \"$w\" <<<\"$one\" || { echo \"avatarq.1: $w\"; miss=1; }; done\n"
    "help=$(\"$B/avatarq-worker\" --help)\n"
    "keys=$(sed -n '/^configuration keys/,/^Every key/p' <<<\"$help\" | sed '1d;$d' |\n"
    "  sed -E 's/^ *\\[[^]]*\\]//; s/\\([^)]*\\)//g' | tr ',' '\\n' | tr -d ' ' | grep -E '^[a-z_]+$')\n"
    "sections=$(grep -oE '^ *\\[[a-z.]+\\]' <<<\"$help\" | tr -d ' ')\n"
    "[ -n \"$keys\" ] && [ -n \"$sections\" ] || { echo 'avatarq-worker --help lists no keys'; exit 1; }\n"
    "for w in $(opts <<<\"$help\" | sort -u) $keys $sections; do\n"
    "  grep -qF -e \"$w\" <<<\"$eight\" || { echo \"avatarq-worker.8: $w\"; miss=1; }; done\n"
    "exit $miss\n";

START_TEST(man_pages_cover_every_option_and_key)
{
    if (un_missing("groff", "man page coverage"))
        return;
    char script[PATH_MAX + 32], cmd[3 * PATH_MAX];
    FMT(script, "%s/coverage.sh", tmp);
    sup_write_file(script, MAN_COVERAGE);
    FMT(cmd, "bash '%s' '%s' '%s/man'", script, bindir, root);
    buf out = BUF_INIT;
    int rc = sup_run(cmd, &out, true);
    ck_assert_msg(rc == 0 && out.len == 0, "undocumented (exit %d):\n%s", rc,
                  out.data ? (char *)out.data : "");
    buf_free(&out);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("units");
    TCase *tc = tcase_create("systemd");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, units_verify_cleanly);
    tcase_add_test(tc, units_exposure_at_most_2);
    tcase_add_test(tc, template_matches_unit);
    tcase_add_test(tc, unit_settings_the_worker_relies_on);
    tcase_add_test(tc, sysusers_and_tmpfiles_apply);
    suite_add_tcase(s, tc);

    TCase *man = tcase_create("man");
    tcase_add_checked_fixture(man, setup, teardown);
    tcase_set_timeout(man, 60);
    tcase_add_test(man, man_pages_format_without_warnings);
    tcase_add_test(man, man_pages_cover_every_option_and_key);
    suite_add_tcase(s, man);

    TCase *sb = tcase_create("sandbox");
    tcase_add_unchecked_fixture(sb, redis_up, redis_down);
    tcase_add_checked_fixture(sb, setup, teardown);
    tcase_set_timeout(sb, 240);
    tcase_add_test(sb, local_backends_stay_within_the_sandbox);
    suite_add_tcase(s, sb);

    TCase *rb = tcase_create("sandbox-remote");
    tcase_add_unchecked_fixture(rb, remote_up, remote_down);
    tcase_add_checked_fixture(rb, setup, teardown);
    tcase_set_timeout(rb, 240);
    tcase_add_test(rb, remote_backends_stay_within_the_sandbox);
    suite_add_tcase(s, rb);
    return sup_run_suite(s);
}
