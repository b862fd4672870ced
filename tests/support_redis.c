#include "support.h"

#include <check.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void redis_spawn(sup_redis *r, bool aof)
{
    char port[16], log[300];
    snprintf(port, sizeof port, "%d", r->port);
    snprintf(log, sizeof log, "%s/redis.log", r->dir);
    char *argv[] = {"/usr/bin/redis-server", "--port", port, "--bind", "127.0.0.1",
                    "--dir", r->dir, "--save", "", "--appendonly", aof ? "yes" : "no",
                    "--appendfsync", aof ? "always" : "everysec", "--daemonize", "no", NULL};
    r->pid = sup_spawn(argv, NULL, log);
    ck_assert_msg(sup_wait_port(r->port, 10000), "redis-server did not start on %d", r->port);
    /* Loading an AOF: wait until it answers PING with PONG. */
    for (int i = 0; i < 500; i++) {
        if (strcmp(sup_redis_str(r, "PING"), "PONG") == 0)
            return;
        sup_sleep_ms(20);
    }
    ck_abort_msg("redis-server on %d never answered PING", r->port);
}

void sup_redis_start(sup_redis *r, bool aof)
{
    memset(r, 0, sizeof *r);
    sup_tmpdir(r->dir, sizeof r->dir);
    r->aof = aof;
    r->port = sup_free_port();
    snprintf(r->url, sizeof r->url, "redis://127.0.0.1:%d/0", r->port);
    redis_spawn(r, aof);
}

void sup_redis_restart(sup_redis *r)
{
    redis_spawn(r, r->aof);
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
