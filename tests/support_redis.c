#include "support.h"

#include <check.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* True once the child pid has exited (it is reaped then). */
static bool exited(pid_t pid)
{
    int st;
    return waitpid(pid, &st, WNOHANG) == pid;
}

/* Whether the server answering on r->port is the one we spawned, not a
 * process that took the port between sup_free_port and our bind (ours
 * then exits with "Address already in use"). */
static bool redis_is_ours(const sup_redis *r)
{
    return sup_redis_info_is(sup_redis_str(r, "INFO server"), r->pid);
}

bool sup_redis_info_is(const char *info, pid_t pid)
{
    char want[32];
    int n = snprintf(want, sizeof want, "process_id:%d", (int)pid);
    const char *at = strstr(info, want);
    return at && (at[n] < '0' || at[n] > '9');
}

/* Spawns redis-server on r->port and waits until it answers PING (an AOF
 * may take a while to load). False when it could not have the port. */
static bool redis_spawn(sup_redis *r, bool aof)
{
    char port[16], log[300];
    snprintf(port, sizeof port, "%d", r->port);
    snprintf(log, sizeof log, "%s/redis.log", r->dir);
    char *argv[] = {"/usr/bin/redis-server", "--port", port, "--bind", "127.0.0.1",
                    "--dir", r->dir, "--save", "", "--appendonly", aof ? "yes" : "no",
                    "--appendfsync", aof ? "always" : "everysec", "--daemonize", "no", NULL};
    r->pid = sup_spawn(argv, NULL, log);
    /* the port first, quietly (redis-cli complains on stderr until then) */
    for (int i = 0; i < 1500 && !sup_wait_port(r->port, 0); i++) {
        if (exited(r->pid)) {
            r->pid = 0;
            return false;
        }
        sup_sleep_ms(20);
    }
    for (int i = 0; i < 1500; i++) {
        if (exited(r->pid)) {
            r->pid = 0;
            return false;
        }
        if (strcmp(sup_redis_str(r, "PING"), "PONG") == 0) {
            if (redis_is_ours(r))
                return true;
            sup_redis_stop(r);
            return false;
        }
        sup_sleep_ms(20);
    }
    ck_abort_msg("redis-server on %d never answered PING", r->port);
    return false;
}

void sup_redis_start(sup_redis *r, bool aof)
{
    memset(r, 0, sizeof *r);
    sup_tmpdir(r->dir, sizeof r->dir);
    r->aof = aof;
    for (int tries = 0; tries < 5; tries++) {
        r->port = sup_free_port();
        snprintf(r->url, sizeof r->url, "redis://127.0.0.1:%d/0", r->port);
        if (redis_spawn(r, aof))
            return;
    }
    ck_abort_msg("redis-server could not get a free port in 5 tries (see %s/redis.log)", r->dir);
}

void sup_redis_restart(sup_redis *r)
{
    ck_assert_msg(redis_spawn(r, r->aof), "redis-server could not have port %d again (see %s/redis.log)",
                  r->port, r->dir);
}

void sup_redis_stop(sup_redis *r)
{
    if (r->pid > 0)
        sup_stop(r->pid, SIGTERM, 10000);
    r->pid = 0;
}

static int cli_v(const sup_redis *r, buf *out, const char *fmt, va_list ap)
{
    char args[4096], cmd[4300];
    vsnprintf(args, sizeof args, fmt, ap);
    snprintf(cmd, sizeof cmd, "redis-cli -p %d %s", r->port, args);
    return sup_run(cmd, out, false);
}

int sup_redis_cli(const sup_redis *r, buf *out, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = cli_v(r, out, fmt, ap);
    va_end(ap);
    return rc;
}

static const char *trimmed(buf *b)
{
    if (!b->data)
        return "";
    while (b->len && (b->data[b->len - 1] == '\n' || b->data[b->len - 1] == '\r' ||
                      b->data[b->len - 1] == ' '))
        b->data[--b->len] = '\0';
    return (const char *)b->data;
}

const char *sup_redis_str(const sup_redis *r, const char *fmt, ...)
{
    static buf out;
    va_list ap;
    va_start(ap, fmt);
    cli_v(r, &out, fmt, ap);
    va_end(ap);
    return trimmed(&out);
}

long long sup_redis_int(const sup_redis *r, const char *fmt, ...)
{
    static buf out;
    va_list ap;
    va_start(ap, fmt);
    cli_v(r, &out, fmt, ap);
    va_end(ap);
    return atoll(trimmed(&out));
}

/* The file where sup_redis_note_pid leaves the pid. */
static void noted_path(const sup_redis *r, char *path, size_t n)
{
    snprintf(path, n, "%s/current.pid", r->dir);
}

void sup_redis_note_pid(const sup_redis *r)
{
    char path[300], text[32];
    noted_path(r, path, sizeof path);
    snprintf(text, sizeof text, "%d\n", (int)r->pid);
    sup_write_file(path, text);
}

void sup_redis_stop_noted(const sup_redis *r)
{
    char path[300], comm[64] = "";
    noted_path(r, path, sizeof path);
    int pid = (int)sup_read_pid(path);
    snprintf(path, sizeof path, "/proc/%d/comm", pid);
    FILE *f = pid > 0 ? fopen(path, "r") : NULL;
    if (f) {
        if (!fgets(comm, sizeof comm, f))
            comm[0] = '\0';
        fclose(f);
    }
    if (strncmp(comm, "redis-server", 12) != 0)
        return; /* none noted, or gone and its pid reused */
    kill(pid, SIGTERM);
    for (int i = 0; i < 500 && kill(pid, 0) == 0; i++)
        sup_sleep_ms(20);
    kill(pid, SIGKILL);
}
