/* support_worker: see support_worker.h. */
#include "support_worker.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>

#include "config.h"
#include "queue.h"

#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>



/* The harness of the running test, for the atexit handler. */
static wh *wh_current;

/* The wh_ names of the tracking in support_common.c, which the worker
 * tests call. */
void wh_track(pid_t pid)
{
    sup_track(pid);
}

void wh_untrack(pid_t pid)
{
    sup_untrack(pid);
}

void wh_kill_listed(pid_t runner)
{
    sup_kill_listed(runner);
}

void wh_reap_strays(void)
{
    sup_reap_strays();
}

void wh_atexit(void)
{
    if (wh_current && wh_current->pid > 0) {
        kill(wh_current->pid, SIGKILL);
        waitpid(wh_current->pid, NULL, 0);
    }
    sup_kill_listed(getppid());
}

/* Default [worker] keys; a test's worker_extra replaces any of them
 * (config.c refuses a key set twice). */
static const char *const WH_WORKER_DEFAULTS[][2] = {
    {"processes", "2"},           {"heartbeat_interval_s", "1"}, {"heartbeat_ttl_s", "3"},
    {"job_timeout_s", "30"},      {"shutdown_timeout_s", "20"},  {"max_attempts", "3"},
    {"backoff_base_ms", "50"},    {"backoff_max_ms", "200"},
};

/* True when text has a line starting with "key =" or "key=". */
bool wh_has_key(const char *text, const char *key)
{
    size_t n = strlen(key);
    for (const char *p = text; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
        if (strncmp(p, key, n) == 0 && (p[n] == ' ' || p[n] == '='))
            return true;
    return false;
}

/* Writes config.ini: [worker] comes last so worker_extra (lines "key = v")
 * lands in it; other_sections is inserted before it (new sections only). */
void wh_write_config(wh *h, const char *worker_extra, const char *other_sections)
{
    char text[4096], worker[1024] = "";
    const char *extra = worker_extra ? worker_extra : "";
    for (size_t i = 0; i < sizeof WH_WORKER_DEFAULTS / sizeof *WH_WORKER_DEFAULTS; i++)
        if (!wh_has_key(extra, WH_WORKER_DEFAULTS[i][0]))
            snprintf(worker + strlen(worker), sizeof worker - strlen(worker), "%s = %s\n",
                     WH_WORKER_DEFAULTS[i][0], WH_WORKER_DEFAULTS[i][1]);
    snprintf(text, sizeof text,
             "[redis]\nurl = %s\nnamespace = " WH_NS "\nqueue = default\n"
             "[storage]\nbackend = %s\nprefix = avatars\n"
             "[storage.local]\nroot = %s\nfsync = false\n"
             "[database]\nbackend = sqlite\n"
             "[database.sqlite]\npath = %s\n"
             "[log]\nlevel = debug\n"
             "%s"
             "[worker]\n%s%s",
             h->r.url, h->backend ? h->backend : "local", h->root, h->db,
             other_sections ? other_sections : "", worker, extra);
    sup_write_file(h->cfg, text);
}

void wh_connect(wh *h)
{
    if (h->rc)
        redisFree(h->rc);
    struct timeval tv = {5, 0};
    h->rc = redisConnectWithTimeout("127.0.0.1", h->r.port, tv);
    ck_assert_msg(h->rc && !h->rc->err, "connect to test redis");
    redisSetTimeout(h->rc, tv);
}

void wh_setup(wh *h, bool aof, const char *worker_extra)
{
    memset(h, 0, sizeof *h);
    wh_current = h;
    atexit(wh_atexit);
    sup_tmpdir(h->dir, sizeof h->dir);
    sup_redis_start(&h->r, aof);
    sup_track(h->r.pid);
    snprintf(h->cfg, sizeof h->cfg, "%s/config.ini", h->dir);
    snprintf(h->log, sizeof h->log, "%s/worker.log", h->dir);
    snprintf(h->root, sizeof h->root, "%s/root", h->dir);
    snprintf(h->db, sizeof h->db, "%s/meta.db", h->dir);
    wh_write_config(h, worker_extra, NULL);
    wh_connect(h);
}

/* Prints the worker log's tail (for a failing test's story). */
void wh_show_log(const wh *h, int lines)
{
    char cmd[400];
    snprintf(cmd, sizeof cmd, "tail -n %d '%s' >&2", lines, h->log);
    if (system(cmd) != 0)
        fprintf(stderr, "(no worker log)\n");
}

/* Starts bin/avatarq-worker -c config.ini with extra "K=V" env entries. */
pid_t wh_start(wh *h, char *const env[])
{
    char *argv[] = {(char *)sup_test_bin("avatarq-worker"), "-c", h->cfg, NULL};
    h->pid = sup_spawn(argv, env, h->log);
    sup_track(h->pid);
    return h->pid;
}

/* Signals the supervisor and waits; returns the raw wait status (-1: had to
 * be killed). */
int wh_stop(wh *h, int sig, int timeout_ms)
{
    int st = sup_stop_tracked(h->pid, sig, timeout_ms);
    h->pid = 0;
    return st;
}

/* sup_redis_stop/restart that keep the pid list right. */
void wh_redis_stop(wh *h)
{
    pid_t pid = h->r.pid;
    sup_redis_stop(&h->r);
    if (pid > 0)
        sup_untrack(pid);
}

void wh_redis_restart(wh *h)
{
    sup_redis_restart(&h->r);
    sup_track(h->r.pid);
    wh_connect(h);
}

void wh_teardown(wh *h)
{
    if (h->pid > 0) {
        if (getenv("AQ_TEST_VERBOSE"))
            wh_show_log(h, 60);
        wh_stop(h, SIGKILL, 5000);
    }
    if (h->rc)
        redisFree(h->rc);
    h->rc = NULL;
    wh_redis_stop(h);
    sup_rmtree(h->r.dir);
    /* what is still listed was left by an earlier test that failed (Check
     * skips the teardown of a failed test): stop it now */
    sup_kill_listed(getppid());
    if (!getenv("AQ_TEST_KEEP"))
        sup_rmtree(h->dir);
    wh_current = NULL;
}

/* ---- Redis access ---- */

redisReply *wh_cmdv(wh *h, const char *fmt, va_list ap)
{
    redisReply *rep = redisvCommand(h->rc, fmt, ap);
    if (!rep) { /* the test restarted Redis: reconnect once */
        wh_connect(h);
        return NULL;
    }
    return rep;
}

/* A command's reply as a string (integers formatted; nil and errors ""),
 * in a static buffer valid until the next call. */
const char *wh_str(wh *h, const char *fmt, ...)
{
    static char out[65536];
    va_list ap;
    va_start(ap, fmt);
    redisReply *rep = wh_cmdv(h, fmt, ap);
    va_end(ap);
    out[0] = '\0';
    if (!rep)
        return out;
    if (rep->type == REDIS_REPLY_STRING || rep->type == REDIS_REPLY_STATUS)
        snprintf(out, sizeof out, "%.*s", (int)rep->len, rep->str);
    else if (rep->type == REDIS_REPLY_INTEGER)
        snprintf(out, sizeof out, "%lld", rep->integer);
    freeReplyObject(rep);
    return out;
}

long long wh_int(wh *h, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *rep = wh_cmdv(h, fmt, ap);
    va_end(ap);
    long long v = -1;
    if (rep && rep->type == REDIS_REPLY_INTEGER)
        v = rep->integer;
    else if (rep && rep->type == REDIS_REPLY_STRING)
        v = atoll(rep->str);
    else if (rep && rep->type == REDIS_REPLY_NIL)
        v = 0;
    if (rep)
        freeReplyObject(rep);
    return v;
}

/* LPUSH of any bytes onto the configured queue. */
void wh_push(wh *h, const char *doc, size_t len)
{
    redisReply *rep = redisCommand(h->rc, "LPUSH " WH_NS ":queue:default %b", doc, len);
    ck_assert_msg(rep && rep->type == REDIS_REPLY_INTEGER, "LPUSH failed");
    freeReplyObject(rep);
}

void wh_push_str(wh *h, const char *doc)
{
    wh_push(h, doc, strlen(doc));
}

/* Keys matching pattern (KEYS is fine on a test instance). */
long long wh_count_keys(wh *h, const char *pattern)
{
    redisReply *rep = redisCommand(h->rc, "KEYS %s", pattern);
    long long n = rep && rep->type == REDIS_REPLY_ARRAY ? (long long)rep->elements : -1;
    if (rep)
        freeReplyObject(rep);
    return n;
}

/* Total length of every NS:processing:* list. */
long long wh_processing(wh *h)
{
    redisReply *rep = redisCommand(h->rc, "KEYS " WH_NS ":processing:*");
    long long n = 0;
    for (size_t i = 0; rep && rep->type == REDIS_REPLY_ARRAY && i < rep->elements; i++)
        n += wh_int(h, "LLEN %s", rep->element[i]->str);
    if (rep)
        freeReplyObject(rep);
    return n;
}

bool wh_wait_state(wh *h, const char *id, const char *state, int timeout_ms)
{
    for (int waited = 0; waited <= timeout_ms; waited += 50) {
        if (strcmp(wh_str(h, "HGET " WH_NS ":job:%s state", id), state) == 0)
            return true;
        sup_sleep_ms(50);
    }
    return false;
}

/* A command given as one string of space-separated words (no quoting), its
 * reply as an integer (nil 0, errors -1). */
long long wh_int_words(wh *h, const char *cmd)
{
    char copy[512];
    const char *argv[16];
    int argc = 0;
    snprintf(copy, sizeof copy, "%s", cmd);
    for (char *save = NULL, *t = strtok_r(copy, " ", &save); t && argc < 16;
         t = strtok_r(NULL, " ", &save))
        argv[argc++] = t;
    redisReply *rep = redisCommandArgv(h->rc, argc, argv, NULL);
    if (!rep) {
        wh_connect(h);
        return -1;
    }
    long long v = rep->type == REDIS_REPLY_INTEGER ? rep->integer
                : rep->type == REDIS_REPLY_STRING  ? atoll(rep->str)
                : rep->type == REDIS_REPLY_NIL     ? 0 : -1;
    freeReplyObject(rep);
    return v;
}

/* Waits until the integer reply of cmd (words, see wh_int_words) reaches at
 * least target. */
bool wh_wait_int(wh *h, long long target, int timeout_ms, const char *cmd)
{
    for (int waited = 0; waited <= timeout_ms; waited += 50) {
        if (wh_int_words(h, cmd) >= target)
            return true;
        sup_sleep_ms(50);
    }
    return false;
}

/* Pids of the live worker processes from their heartbeat hashes (up to max). */
int wh_worker_pids(wh *h, pid_t *out, int max)
{
    redisReply *rep = redisCommand(h->rc, "KEYS " WH_NS ":worker:*");
    int n = 0;
    for (size_t i = 0; rep && rep->type == REDIS_REPLY_ARRAY && i < rep->elements && n < max; i++) {
        long long pid = wh_int(h, "HGET %s pid", rep->element[i]->str);
        if (pid > 0)
            out[n++] = (pid_t)pid;
    }
    if (rep)
        freeReplyObject(rep);
    return n;
}

/* NS:worker:HOST:PID-NONCE of a worker process of this host (the nonce
 * found among the registered workers; "-0000" when it is not registered). */
void wh_worker_key(pid_t pid, char *out, size_t n)
{
    char host[128] = "";
    if (gethostname(host, sizeof host - 1) != 0 || !host[0])
        snprintf(host, sizeof host, "localhost");
    char prefix[200];
    snprintf(prefix, sizeof prefix, "%s:%d-", host, (int)pid);
    snprintf(out, n, WH_NS ":worker:%s0000", prefix);
    redisReply *rep = wh_current && wh_current->rc
                          ? redisCommand(wh_current->rc, "SMEMBERS " WH_NS ":workers")
                          : NULL;
    for (size_t i = 0; rep && rep->type == REDIS_REPLY_ARRAY && i < rep->elements; i++)
        if (strncmp(rep->element[i]->str, prefix, strlen(prefix)) == 0)
            snprintf(out, n, WH_NS ":worker:%s", rep->element[i]->str);
    if (rep)
        freeReplyObject(rep);
}

/* "s/ID/SIZE.png" below the storage root. */
void wh_png_path(const wh *h, const char *id, int size, char *out, size_t n)
{
    snprintf(out, n, "%s/avatars/%s/%d.png", h->root, id, size);
}

bool wh_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

long wh_log_size(const wh *h)
{
    struct stat st;
    return stat(h->log, &st) == 0 ? (long)st.st_size : 0;
}

/* True when the log from byte `from` holds needle. */
static bool log_has(const wh *h, const char *needle, long from)
{
    FILE *f = fopen(h->log, "r");
    if (!f)
        return false;
    bool found = false;
    char line[8192];
    if (fseek(f, from, SEEK_SET) == 0)
        while (!found && fgets(line, sizeof line, f))
            found = strstr(line, needle) != NULL;
    fclose(f);
    return found;
}

bool wh_wait_log(const wh *h, const char *needle, long from, int timeout_ms)
{
    for (int waited = 0; waited <= timeout_ms; waited += 50) {
        if (log_has(h, needle, from))
            return true;
        sup_sleep_ms(50);
    }
    return false;
}

/* True when pid is one of the nold pids in old. */
static bool pid_in(pid_t pid, const pid_t *old, int nold)
{
    for (int i = 0; i < nold; i++)
        if (old[i] == pid)
            return true;
    return false;
}

bool wh_wait_new_workers(wh *h, int want, const pid_t *old, int nold, pid_t *out,
                         int timeout_ms)
{
    for (int waited = 0; waited <= timeout_ms; waited += 50) {
        pid_t pids[64];
        int n = wh_worker_pids(h, pids, 64), fresh = 0;
        for (int i = 0; i < n; i++)
            if (kill(pids[i], 0) == 0 && !pid_in(pids[i], old, nold) && fresh < want)
                out[fresh++] = pids[i];
        bool stale = false;
        for (int i = 0; i < n; i++)
            stale = stale || pid_in(pids[i], old, nold);
        if (fresh == want && n == want && !stale)
            return true;
        sup_sleep_ms(50);
    }
    return false;
}

/* ---- fleets for benchmarks ---- */

int wh_fleet_dir(wh_fleet *f, const char *base, const char *tag)
{
    memset(f, 0, sizeof *f);
    const char *tmp = getenv("TMPDIR");
    if (!base || !*base)
        base = tmp && *tmp ? tmp : "/tmp";
    snprintf(f->dir, sizeof f->dir, "%s/avatarq-bench-%s-XXXXXX", base, tag);
    if (!mkdtemp(f->dir)) {
        fprintf(stderr, "bench: mkdtemp %s: %s\n", f->dir, strerror(errno));
        f->dir[0] = '\0';
        return -1;
    }
    snprintf(f->cfg, sizeof f->cfg, "%s/config.ini", f->dir);
    snprintf(f->log, sizeof f->log, "%s/worker.log", f->dir);
    return 0;
}

/* Live workers of the fleet's namespace (alive heartbeats). */
static int count_live(const queue_worker_info *w, void *ud)
{
    *(int *)ud += w->alive;
    return 0;
}

static int fleet_config(wh_fleet *f, const char *text)
{
    int fd = open(f->cfg, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    size_t len = strlen(text);
    bool ok = fd >= 0 && write(fd, text, len) == (ssize_t)len;
    if (fd >= 0)
        close(fd);
    aq_err e = {0};
    f->c = ok ? calloc(1, sizeof *f->c) : NULL;
    if (!f->c || config_load(f->c, f->cfg, &e) != 0 || !(f->q = queue_open(f->c, &e))) {
        fprintf(stderr, "bench: %s: %s\n", f->cfg, ok ? e.msg : strerror(errno));
        return -1;
    }
    return 0;
}

int wh_fleet_start(wh_fleet *f, const char *config_text, int live, int timeout_ms)
{
    if (fleet_config(f, config_text) != 0)
        return -1;
    char *argv[] = {(char *)sup_bin("avatarq-worker"), "-c", f->cfg, NULL};
    f->pid = sup_spawn(argv, NULL, f->log);
    for (int waited = 0; waited <= timeout_ms; waited += 100) {
        int n = 0;
        aq_err e = {0};
        if (queue_workers(f->q, count_live, &n, &e) == 0 && n >= live)
            return 0;
        if (sup_wait(f->pid, 0) != -1) {   /* it exited: no point waiting */
            f->pid = 0;
            break;
        }
        sup_sleep_ms(100);
    }
    fprintf(stderr, "bench: the worker did not come up (see %s)\n", f->log);
    return -1;
}

int64_t wh_fleet_finished(wh_fleet *f)
{
    queue_stats st;
    memset(&st, 0, sizeof st);
    aq_err e = {0};
    return f->q && queue_stats_get(f->q, &st, &e) == 0 ? st.done + st.dead_total : -1;
}

void wh_fleet_stop(wh_fleet *f, bool keep)
{
    if (f->pid > 0)
        sup_stop(f->pid, SIGTERM, 30000);
    f->pid = 0;
    if (f->q)
        queue_close(f->q);
    f->q = NULL;
    free(f->c);
    f->c = NULL;
    if (!keep && f->dir[0]) {
        char cmd[400];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->dir);
        if (strstr(f->dir, "/avatarq-bench-") && !strchr(f->dir, '\'') && system(cmd) != 0)
            fprintf(stderr, "bench: could not remove %s\n", f->dir);
    }
}

bool wh_alive(pid_t pid)
{
    return pid > 0 && kill(pid, 0) == 0;
}

bool wh_wait_gone(pid_t pid, int timeout_ms)
{
    for (int waited = 0; waited <= timeout_ms; waited += 20) {
        if (!wh_alive(pid))
            return true;
        sup_sleep_ms(20);
    }
    return false;
}

void wh_stop_clean(wh *h)
{
    int st = wh_stop(h, SIGTERM, 30000);
    ck_assert_msg(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0,
                  "supervisor did not exit 0 after SIGTERM (status %d)", st);
}
