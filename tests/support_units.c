/* support_units: see support_units.h. */
#include "support_units.h"

#include <check.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "support.h"

/* snprintf into an array, failing the test rather than truncating a path. */
#define FMT(arr, ...)                                                          \
    ck_assert_msg(snprintf(arr, sizeof arr, __VA_ARGS__) < (int)sizeof arr,  \
                  "too long for " #arr)

bool un_have_tool(const char *name)
{
    char cmd[256];
    FMT(cmd, "command -v %s >/dev/null 2>&1", name);
    return sup_run(cmd, NULL, false) == 0;
}

bool un_missing(const char *tool, const char *what)
{
    if (un_have_tool(tool))
        return false;
    fprintf(stderr, "note: %s not installed; %s skipped\n", tool, what);
    return true;
}

void un_man_dir(const char *dir, const char *root)
{
    char cmd[4 * PATH_MAX];
    FMT(cmd, "mkdir -p '%s/man/man1' '%s/man/man8' && cp '%s'/man/*.1 '%s/man/man1/' && "
             "cp '%s'/man/*.8 '%s/man/man8/'",
        dir, dir, root, dir, root, dir);
    ck_assert_msg(sup_run(cmd, NULL, false) == 0, "cannot copy the man pages of %s", root);
}

void un_fixture(char *bindir, char *tmp, const char *root)
{
    const char *dir = getenv("AQ_BIN_DIR");
    if (!dir || !*dir)
        dir = "bin";
    ck_assert_msg(realpath(dir, bindir) != NULL, "AQ_BIN_DIR %s: %s", dir, strerror(errno));
    sup_tmpdir(tmp, PATH_MAX);
    un_man_dir(tmp, root);
}

bool un_verify(const char *dir, const char *path, buf *out)
{
    char cmd[3 * PATH_MAX];
    FMT(cmd, "MANPATH='%s/man' SYSTEMD_LOG_COLOR=0 systemd-analyze verify '%s'", dir, path);
    int rc = sup_run(cmd, out, true);
    return rc == 0 && out->len == 0;
}

void un_verify_catches(const char *dir, const char *path, const char *key)
{
    char bad[PATH_MAX + 16], cmd[4 * PATH_MAX];
    FMT(bad, "%s/bad.service", dir);
    FMT(cmd, "sed 's/^%s=/%.*s=/' '%s' > '%s'", key, (int)strlen(key) - 1, key, path, bad);
    ck_assert_int_eq(sup_run(cmd, NULL, false), 0);
    buf out = BUF_INIT;
    un_verify(dir, bad, &out);
    char misspelt[128];
    FMT(misspelt, "%.*s", (int)strlen(key) - 1, key);
    ck_assert_msg(out.data && strstr((char *)out.data, misspelt), "verify missed a bad key: %s",
                  out.data ? (char *)out.data : "");
    buf_free(&out);
}

double un_exposure(const char *path)
{
    char cmd[2 * PATH_MAX];
    FMT(cmd, "systemd-analyze security --offline=yes --no-pager '%s'", path);
    buf out = BUF_INIT;
    sup_run(cmd, &out, true);
    double level = -1;
    const char *line = out.data ? strstr((char *)out.data, "Overall exposure level for ") : NULL;
    const char *colon = line ? strchr(line, ':') : NULL;
    if (colon)
        level = strtod(colon + 1, NULL);
    if (level < 0)
        fprintf(stderr, "security output:\n%s\n", out.data ? (char *)out.data : "");
    buf_free(&out);
    return level;
}

bool un_sandbox_possible(void)
{
#if defined(__SANITIZE_ADDRESS__)
    fprintf(stderr, "note: sanitizer build; its runtime makes calls the production build does not; skipped\n");
    return false;
#endif
    if (!un_have_tool("systemd-analyze") || !un_have_tool("strace") || !un_have_tool("setpriv") ||
        !un_have_tool("unshare")) {
        fprintf(stderr, "note: systemd-analyze, strace, setpriv or unshare missing; sandbox audit skipped\n");
        return false;
    }
    if (geteuid() != 0) {
        fprintf(stderr, "note: not root, cannot become nobody; sandbox audit skipped\n");
        return false;
    }
    if (sup_run("strace -f -qq -o /dev/null true", NULL, false) != 0 ||
        sup_run("unshare --mount --propagation private true", NULL, false) != 0) {
        fprintf(stderr, "note: no ptrace or no mount namespaces here; sandbox audit skipped\n");
        return false;
    }
    return true;
}

/* In a mount namespace of its own, / is read-only and only the data
 * directory ($0) is writable (a bind remount changes this namespace's view
 * only); then, as nobody without capabilities, strace runs the program
 * ($2...) and writes its trace to $0/$1. */
static const char SANDBOX[] =
    "d=$0; t=$1; shift; "
    "mount --make-rprivate / && mount --bind \"$d\" \"$d\" && mount -o remount,bind,ro / && "
    "exec setpriv --reuid=65534 --regid=65534 --clear-groups --no-new-privs --inh-caps=-all "
    "--bounding-set=-all -- strace -f -qq -o \"$d/$t\" \"$@\"";

pid_t un_sandbox_spawn(const char *dir, const char *trace, char *const argv[], const char *log)
{
    char *all[32] = {"/usr/bin/unshare", "--mount", "--propagation", "private", "--", "/bin/sh",
                     "-c", (char *)SANDBOX, (char *)dir, (char *)trace};
    size_t n = 10;
    for (size_t i = 0; argv[i]; i++) {
        ck_assert_msg(n + 1 < sizeof all / sizeof *all, "too many arguments for the sandbox");
        all[n++] = argv[i];
    }
    all[n] = NULL;
    return sup_spawn(all, NULL, log);
}

/* One system call name per line: what the filter allows. */
static const char ALLOWED_CMD[] =
    "expand() { systemd-analyze syscall-filter \"$1\" | sed 1d | sed 's/^ *//' | "
    "grep -v '^#' | grep . | while read -r n; do case \"$n\" in @*) expand \"$n\" ;; "
    "*) echo \"$n\" ;; esac; done; }; "
    "comm -23 <(expand @system-service | sort -u) <({ expand @privileged; expand @resources; } | sort -u)";

void un_allowed_syscalls(const char *path)
{
    char script[PATH_MAX + 16], cmd[3 * PATH_MAX];
    FMT(script, "%s.sh", path);
    sup_write_file(script, ALLOWED_CMD);
    FMT(cmd, "bash '%s' > '%s'", script, path);
    ck_assert_int_eq(sup_run(cmd, NULL, false), 0);
    FMT(cmd, "grep -cx read '%s'", path);
    buf out = BUF_INIT;
    sup_run(cmd, &out, false);
    ck_assert_msg(out.data && atoi((char *)out.data) == 1, "could not list the filter's system calls");
    buf_free(&out);
}

/* Each limit of the unit: a shell pipeline over the trace (%1$s; %2$s is
 * the allowed list) that prints what breaks it. */
static const struct {
    const char *what, *fmt;
} LIMITS[] = {
    {"system calls outside @system-service ~@privileged @resources",
     "sed -E 's/^[0-9]+ +//' '%1$s' | grep -oE '^[a-z_0-9]+\\(' | tr -d '(' | sort -u | "
     "comm -23 - '%2$s' | tr '\\n' ' '"},
    {"sockets outside AF_UNIX AF_INET AF_INET6",
     "grep -oE 'socket\\((AF_[A-Z0-9]+|[0-9]+)' '%1$s' | sort -u | grep -vE 'AF_(UNIX|INET|INET6)$' | "
     "tr '\\n' ' '"},
    {"writable and executable mappings",
     "grep -E '(mmap|mprotect|pkey_mprotect)\\(' '%1$s' | grep 'PROT_WRITE' | grep 'PROT_EXEC' | head -3"},
    /* ProtectSystem=strict: nothing it tried to write outside its data
     * directory, not even a failure it shrugged off */
    {"writes on the read-only system", "grep -E '= -1 EROFS' '%1$s' | head -3"},
    {"/proc files outside ProcSubset=pid",
     "grep -oE '\"/proc/[^\"]*\"' '%1$s' | grep -vE '^\"/proc/(self|thread-self|[0-9]+)(/[^\"]*)?\"$' | "
     "sort -u | head -5 | tr '\\n' ' '"},
};

void un_audit_trace(const char *what, const char *trace, const char *allowed, int min_work)
{
    char check[4 * PATH_MAX];
    buf out = BUF_INIT;
    for (size_t i = 0; i < sizeof LIMITS / sizeof *LIMITS; i++) {
        FMT(check, LIMITS[i].fmt, trace, allowed);
        ck_assert_int_eq(sup_run(check, &out, false), 0);
        ck_assert_msg(out.len == 0, "%s: %s: %s", what, LIMITS[i].what, (char *)out.data);
    }
    /* the check is not vacuous: the trace holds the calls of real work */
    FMT(check, "grep -cE '^[0-9]+ +(sendto|write|writev|openat|rename|renameat2)\\(' '%s'", trace);
    sup_run(check, &out, false);
    ck_assert_msg(out.data && atoi((char *)out.data) >= min_work, "%s: trace too thin: %s", what,
                  out.data ? (char *)out.data : "");
    buf_free(&out);
}
