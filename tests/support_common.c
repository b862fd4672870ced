#include "support.h"

#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

/* Every temp dir of one test (or bench) binary lives below one base dir,
 * made when the binary starts ($TMPDIR points there from then on) and
 * removed when its main process exits. Check skips the teardown of a failed
 * checked fixture, so without this a failing test left its folders in /tmp.
 * AQ_TEST_KEEP=1 keeps the base for a look. */
static char run_base[256];
static pid_t run_owner;

static void run_base_remove(void)
{
    if (getpid() != run_owner || !run_base[0] || getenv("AQ_TEST_KEEP"))
        return;
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", run_base);
    if (!strchr(run_base, '\'') && system(cmd) != 0)
        fprintf(stderr, "warning: could not remove %s\n", run_base);
}

__attribute__((constructor)) static void run_base_make(void)
{
    const char *t = getenv("TMPDIR");
    snprintf(run_base, sizeof run_base, "%s/avatarq-run-XXXXXX", t && *t ? t : "/tmp");
    if (!mkdtemp(run_base)) {
        run_base[0] = '\0';
        return;
    }
    chmod(run_base, 0755);   /* servers run as postgres or nobody below it */
    setenv("TMPDIR", run_base, 1);
    run_owner = getpid();
    atexit(run_base_remove);
}

void sup_tmpdir(char *out, size_t n)
{
    const char *base = getenv("TMPDIR");
    snprintf(out, n, "%s/avatarq-test-XXXXXX", base && *base ? base : "/tmp");
    ck_assert_msg(mkdtemp(out) != NULL, "mkdtemp: %s", strerror(errno));
}

/* True when path names something strictly inside dir ("dir/x..."), never
 * dir itself: a test's empty or truncated path must not remove /tmp. */
static bool strictly_below(const char *path, const char *dir)
{
    size_t n = strlen(dir);
    while (n > 1 && dir[n - 1] == '/')
        n--;
    if (strncmp(path, dir, n) != 0 || path[n] != '/')
        return false;
    const char *rest = path + n + 1;
    return rest[0] != '\0' && rest[0] != '/' && rest[0] != '.';
}

void sup_rmtree(const char *path)
{
    const char *base = getenv("TMPDIR");
    if (!path || !*path || strstr(path, "..") || strchr(path, '\''))
        return;
    if (!strictly_below(path, "/tmp") && !(base && *base && strictly_below(path, base)))
        return;
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", path);
    if (system(cmd) != 0)
        fprintf(stderr, "warning: could not remove %s\n", path);
}

int sup_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    /* ck_abort only on failure (see sup_spawn_in: benchmarks call this) */
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) != 0)
        ck_abort_msg("no free port: %s", strerror(errno));
    close(fd);
    return ntohs(a.sin_port);
}

bool sup_wait_port(int port, int timeout_ms)
{
    for (int waited = 0; waited <= timeout_ms; waited += 20) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port),
                                .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        int ok = connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
        close(fd);
        if (ok)
            return true;
        sup_sleep_ms(20);
    }
    return false;
}

void sup_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

void sup_child_stdio(const char *log_path)
{
    if (log_path) {
        int fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
            close(fd);
        }
    }
    int devnull = open("/dev/null", O_RDONLY);
    if (devnull >= 0) {
        dup2(devnull, 0);
        close(devnull);
    }
}

pid_t sup_spawn(char *const argv[], char *const env[], const char *log_path)
{
    return sup_spawn_in(NULL, argv, env, log_path);
}

pid_t sup_spawn_in(const char *cwd, char *const argv[], char *const env[], const char *log_path)
{
    pid_t pid = fork();
    /* ck_abort only on failure: a passing ck_assert records a mark point,
     * which exits a process that is not a Check test (the benchmarks link
     * this support too). */
    if (pid < 0)
        ck_abort_msg("fork: %s", strerror(errno));
    if (pid == 0) {
        setpgid(0, 0);
        sup_child_stdio(log_path);
        for (size_t i = 0; env && env[i]; i++)
            putenv(env[i]);
        if (cwd && chdir(cwd) != 0) {
            fprintf(stderr, "chdir %s: %s\n", cwd, strerror(errno));
            _exit(126);
        }
        execvp(argv[0], argv);
        fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    return pid;
}

int sup_wait(pid_t pid, int timeout_ms)
{
    int st;
    for (int waited = 0; waited <= timeout_ms; waited += 10) {
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid)
            return st;
        if (r < 0)
            return -1;
        sup_sleep_ms(10);
    }
    return -1;
}

int sup_stop(pid_t pid, int sig, int timeout_ms)
{
    if (pid <= 0)
        return -1;
    kill(pid, sig);
    int st = sup_wait(pid, timeout_ms);
    if (st == -1) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
    }
    return st;
}

/* ---- processes that must not outlive their test ---- */

void sup_pidfile(char *out, size_t n, pid_t runner)
{
    snprintf(out, n, "/tmp/avatarq-test-%d.pids", (int)runner);
}

void sup_track(pid_t pid)
{
    char path[64];
    sup_pidfile(path, sizeof path, getppid());
    FILE *f = fopen(path, "a");
    if (f) {
        fprintf(f, "%d\n", (int)pid);
        fclose(f);
    }
}

void sup_untrack(pid_t pid)
{
    char path[64], tmp[80];
    sup_pidfile(path, sizeof path, getppid());
    snprintf(tmp, sizeof tmp, "%s.new", path);
    FILE *in = fopen(path, "r"), *out = in ? fopen(tmp, "w") : NULL;
    int p;
    while (in && out && fscanf(in, "%d", &p) == 1)
        if (p != (int)pid)
            fprintf(out, "%d\n", p);
    if (out) {
        fclose(out);
        rename(tmp, path);
    }
    if (in)
        fclose(in);
}

/* The parent pid of process pid (from /proc/PID/stat), or 0. */
static pid_t parent_of(int pid)
{
    char path[64], stat[512];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    size_t n = fread(stat, 1, sizeof stat - 1, f);
    fclose(f);
    stat[n] = '\0';
    const char *rp = strrchr(stat, ')'); /* the name may hold spaces */
    int ppid = 0;
    return rp && sscanf(rp + 2, "%*c %d", &ppid) == 1 ? (pid_t)ppid : 0;
}

void sup_kill_tree(pid_t pid)
{
    DIR *d = opendir("/proc");
    struct dirent *de;
    while (d && (de = readdir(d))) {
        int child = atoi(de->d_name);
        if (child > 1 && parent_of(child) == pid) {
            kill(-child, SIGKILL);
            kill(child, SIGKILL);
        }
    }
    if (d)
        closedir(d);
    kill(-pid, SIGKILL); /* sup_spawn made it a group leader */
    kill(pid, SIGKILL);
}

void sup_kill_listed(pid_t runner)
{
    char path[64];
    sup_pidfile(path, sizeof path, runner);
    FILE *f = fopen(path, "r");
    if (!f)
        return;
    int pid;
    while (fscanf(f, "%d", &pid) == 1)
        if (pid > 1) {
            sup_kill_tree(pid);
            waitpid(pid, NULL, WNOHANG);
        }
    fclose(f);
    unlink(path);
}

void sup_reap_strays(void)
{
    sup_kill_listed(getpid());
}

static void kill_listed_of_runner(void)
{
    sup_kill_listed(getppid());
}

void sup_kill_listed_at_exit(void)
{
    static pid_t installed;
    if (installed != getpid())
        atexit(kill_listed_of_runner);
    installed = getpid();
}

int sup_stop_tracked(pid_t pid, int sig, int timeout_ms)
{
    int st = sup_stop(pid, sig, timeout_ms);
    if (pid > 0)
        sup_untrack(pid); /* reaped either way (sup_stop SIGKILLs a laggard) */
    return st;
}

int sup_run(const char *cmdline, buf *out, bool merge_stderr)
{
    char full[8192];
    snprintf(full, sizeof full, "%s%s", cmdline, merge_stderr ? " 2>&1" : "");
    FILE *p = popen(full, "r");
    if (!p)
        return -1;
    if (out) {
        buf_reset(out);
        char chunk[4096];
        size_t n;
        while ((n = fread(chunk, 1, sizeof chunk, p)) > 0)
            buf_append(out, chunk, n);
        buf_append(out, "", 1);
        out->len--;
    } else {
        char chunk[4096];
        while (fread(chunk, 1, sizeof chunk, p) > 0)
            ;
    }
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

const char *sup_bin(const char *name)
{
    static char path[4][1024];
    static int slot;
    const char *dir = getenv("AQ_BIN_DIR");
    char *p = path[slot++ % 4];
    snprintf(p, sizeof path[0], "%s/%s", dir && *dir ? dir : "bin", name);
    return p;
}

const char *sup_test_bin(const char *name)
{
    const char *dir = getenv("AQ_TEST_BIN_DIR");
    if (!dir || !*dir)
        return sup_bin(name);
    static char path[2][1024];
    static int slot;
    char *p = path[slot++ % 2];
    snprintf(p, sizeof path[0], "%s/%s", dir, name);
    return p;
}

void sup_write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (!f) /* ck_abort only on failure (see sup_spawn_in) */
        ck_abort_msg("open %s: %s", path, strerror(errno));
    fputs(text, f);
    fclose(f);
}

bool sup_read_file(const char *path, buf *out)
{
    buf_reset(out);
    FILE *f = fopen(path, "rb");
    if (!f)
        return false;
    char chunk[8192];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        buf_append(out, chunk, n);
    fclose(f);
    return true;
}

int sup_run_suite(Suite *s)
{
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}

pid_t sup_read_pid(const char *path)
{
    FILE *f = fopen(path, "r");
    long pid = 0;
    if (f) {
        if (fscanf(f, "%ld", &pid) != 1)
            pid = 0;
        fclose(f);
    }
    return pid > 0 ? (pid_t)pid : 0;
}
