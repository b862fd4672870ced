/* bench_e2e: the whole pipeline, end to end. Starts the real avatarq-worker
 * (processes = 2, local storage + SQLite in a temp dir) against the Redis at
 * AQ_BENCH_REDIS_URL, enqueues 10,000 jobs of one 128 px pixel avatar each in
 * pipelined batches while it runs, and reports, with fsync off and on:
 * jobs/s (first enqueue to last finished_at), enqueue-to-done latency p50/p99
 * (from the job hashes' created_at/finished_at), Redis commands and round
 * trips per job (INFO commandstats before/after), RSS per worker process, CPU
 * per job, and the latency at a steady 500 jobs/s.
 * AQ_BENCH_E2E_JOBS overrides the job count; AQ_BENCH_E2E_DIR the directory
 * (default /tmp) that holds storage root and database; AQ_BENCH_E2E_RUNS
 * picks runs (comma list of nofsync, fsync, pg; default all). With
 * AQ_BENCH_PG_CONNINFO set, a third run keeps the metadata in PostgreSQL.
 * Prints figures, never pass/fail. */
#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "config.h"
#include "queue.h"
#include "retry.h"
#include "support_worker.h"

#define BATCH 500

typedef struct run {
    wh_fleet f;          /* the worker, its dir, config and queue client */
    queue *q;            /* f.q */
    redisContext *raw;   /* for INFO commandstats */
} run;

/* Sum of calls of the commands named in `names` (NULL-terminated), or of all
 * commands when names is NULL, from INFO commandstats. */
static long long calls(redisContext *rc, const char *const *names)
{
    redisReply *r = redisCommand(rc, "INFO commandstats");
    long long total = 0;
    if (!r || r->type != REDIS_REPLY_STRING) {
        if (r)
            freeReplyObject(r);
        return -1;
    }
    for (char *line = r->str; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
        if (strncmp(line, "cmdstat_", 8) != 0)
            continue;
        char name[64];
        long long n;
        if (sscanf(line + 8, "%63[^:]:calls=%lld", name, &n) != 2)
            continue;
        bool want = names == NULL;
        for (size_t i = 0; names && names[i]; i++)
            want |= strcmp(name, names[i]) == 0;
        if (want)
            total += n;
    }
    freeReplyObject(r);
    return total;
}

/* Commands a client sends on its own (each one a round trip or part of a
 * pipeline); what scripts call inside Redis is counted apart. */
/* LMOVE is not here: the worker engine calls it inside its scripts */
static const char *const TOP_LEVEL[] = {"evalsha", "eval", "fcall", "blmove", NULL};

/* Redis server CPU seconds (user + sys) from INFO cpu. */
static double redis_cpu(redisContext *rc)
{
    redisReply *r = redisCommand(rc, "INFO cpu");
    double u = 0, sy = 0;
    if (r && r->type == REDIS_REPLY_STRING) {
        const char *p = strstr(r->str, "used_cpu_sys:");
        const char *q = strstr(r->str, "used_cpu_user:");
        if (p)
            sy = atof(p + 13);
        if (q)
            u = atof(q + 14);
    }
    if (r)
        freeReplyObject(r);
    return u + sy;
}

/* CPU seconds (user + sys) a process has used, from /proc/PID/stat. */
static double proc_cpu(pid_t pid)
{
    char path[64], line[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    char *ok = fgets(line, sizeof line, f);
    fclose(f);
    char *p = ok ? strrchr(line, ')') : NULL;
    unsigned long long ut = 0, st = 0;
    if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
        return 0;
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static long rss_kb(pid_t pid, const char *field)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    long kb = -1;
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, field, strlen(field)) == 0)
            kb = atol(line + strlen(field) + 1);
    if (f)
        fclose(f);
    return kb;
}

typedef struct rss_acc {
    char out[512];
    double cpu;      /* CPU seconds of the live workers */
} rss_acc;

static int add_worker(const queue_worker_info *w, void *ud)
{
    rss_acc *a = ud;
    if (!w->alive)
        return 0;
    size_t n = strlen(a->out);
    a->cpu += proc_cpu((pid_t)w->pid);
    snprintf(a->out + n, sizeof a->out - n, "%s pid %ld: RSS %ld kB (peak %ld kB)",
             n ? ";" : "", w->pid, rss_kb((pid_t)w->pid, "VmRSS:"), rss_kb((pid_t)w->pid, "VmHWM:"));
    return 0;
}

/* pg: a libpq conninfo for the metadata, or NULL for SQLite in the temp dir.
 * Starts the worker (support_worker's fleet) and waits for its 2 workers. */
static int setup(run *r, const char *url, bool fsync, const char *pg)
{
    const char *base = getenv("AQ_BENCH_E2E_DIR"); /* e.g. /dev/shm: takes the disk out */
    if (wh_fleet_dir(&r->f, base, "e2e") != 0)
        return -1;
    char db[1200], text[3072];
    if (pg)
        snprintf(db, sizeof db, "[database]\nbackend = postgresql\n[database.postgresql]\nconninfo = %s\n", pg);
    else
        snprintf(db, sizeof db, "[database]\nbackend = sqlite\n[database.sqlite]\npath = %s/meta.db\n", r->f.dir);
    snprintf(text, sizeof text,
             "[redis]\nurl = %s\nnamespace = bench-e2e-%d-%s-%s\n"
             "[worker]\nprocesses = 2\nheartbeat_interval_s = 2\nheartbeat_ttl_s = 10\n"
             "[storage]\nbackend = local\n[storage.local]\nroot = %s/root\nfsync = %s\n"
             "%s[log]\nlevel = warn\n",
             url, (int)getpid(), fsync ? "fsync" : "nofsync", pg ? "pg" : "sqlite", r->f.dir,
             fsync ? "true" : "false", db);
    if (wh_fleet_start(&r->f, text, 2, 30000) != 0)
        return -1;
    r->q = r->f.q;
    const aq_config *c = r->f.c;
    struct timeval tv = {10, 0};
    r->raw = c->redis.unix_path[0] ? redisConnectUnixWithTimeout(c->redis.unix_path, tv)
                                   : redisConnectWithTimeout(c->redis.host, c->redis.port, tv);
    if (!r->raw || r->raw->err)
        return -1;
    if (c->redis.password[0]) {
        redisReply *a = c->redis.user[0]
            ? redisCommand(r->raw, "AUTH %s %s", c->redis.user, c->redis.password)
            : redisCommand(r->raw, "AUTH %s", c->redis.password);
        if (a)
            freeReplyObject(a);
    }
    return 0;
}

static void teardown(run *r, bool keep)
{
    if (r->raw)
        redisFree(r->raw);
    r->raw = NULL;
    wh_fleet_stop(&r->f, keep);
}

static int64_t stat_done(run *r)
{
    return wh_fleet_finished(&r->f);
}

/* Latency at a steady rate well below capacity: n jobs, `rate` per second,
 * enqueued in small batches every 20 ms; p50/p99 of finished_at - created_at. */
static void paced(run *r, int n, int rate)
{
    int per_tick = rate / 50 > 0 ? rate / 50 : 1;
    queue_item *items = calloc((size_t)n, sizeof *items);
    char (*ids)[32] = calloc((size_t)n, sizeof *ids);
    char (*docs)[160] = calloc((size_t)n, sizeof *docs);
    int64_t base_done = stat_done(r);
    for (int i = 0; i < n; i += per_tick) {
        int m = n - i < per_tick ? n - i : per_tick;
        int64_t now = now_ms();
        for (int k = i; k < i + m; k++) {
            snprintf(ids[k], sizeof ids[k], "paced-%d", k);
            int len = snprintf(docs[k], sizeof docs[k],
                               "{\"v\":1,\"id\":\"%s\",\"seed\":\"paced-%d\",\"style\":\"pixel\","
                               "\"sizes\":[128]}", ids[k], k);
            items[k] = (queue_item){.id = ids[k], .doc = docs[k], .len = (size_t)len, .created_at = now};
        }
        aq_err e = {0};
        if (queue_enqueue_many(r->q, NULL, items + i, (size_t)m, &e) != 0) {
            printf("paced enqueue failed: %s\n", e.msg);
            break;
        }
        usleep(20000);
    }
    int64_t t0 = now_ms();
    while (stat_done(r) < base_done + n && now_ms() - t0 < 60000)
        usleep(50000);
    int64_t *lat = calloc((size_t)n, sizeof *lat);
    int got = 0;
    for (int i = 0; i < n; i++) {
        queue_job j;
        aq_err e = {0};
        memset(&j, 0, sizeof j);
        if (queue_job_get(r->q, ids[i], &j, &e) == 0 && strcmp(j.state, "done") == 0)
            lat[got++] = j.finished_at - j.created_at;
        queue_job_free(&j);
    }
    qsort(lat, (size_t)got, sizeof *lat, cmp_i64);
    if (got)
        printf("enqueue-to-done latency at %d jobs/s steady: p50 %" PRId64 " ms, p99 %" PRId64
               " ms (%d jobs)\n", rate, lat[got / 2], lat[(got * 99) / 100], got);
    free(lat);
    free(items);
    free(ids);
    free(docs);
}

static void bench(const char *url, bool fsync, int n, const char *pg)
{
    run r;
    memset(&r, 0, sizeof r);
    printf("-- fsync %s: %d jobs, pixel 128 px, processes 2, local storage + %s\n",
           fsync ? "on" : "off", n, pg ? "PostgreSQL" : "SQLite");
    if (setup(&r, url, fsync, pg) != 0) {
        printf("skipped: could not set up (redis at AQ_BENCH_REDIS_URL? worker log %s)\n", r.f.log);
        teardown(&r, true);
        return;
    }
    char **docs = calloc((size_t)n, sizeof *docs);
    char (*ids)[32] = calloc((size_t)n, sizeof *ids);
    queue_item *items = calloc((size_t)n, sizeof *items);
    for (int i = 0; i < n; i++) {
        snprintf(ids[i], sizeof ids[i], "e2e-%d", i);
        char doc[160];
        int len = snprintf(doc, sizeof doc,
                           "{\"v\":1,\"id\":\"%s\",\"seed\":\"user-%d@example.com\",\"style\":\"pixel\","
                           "\"sizes\":[128]}", ids[i], i);
        docs[i] = strdup(doc);
        items[i] = (queue_item){.id = ids[i], .doc = docs[i], .len = (size_t)len};
    }
    long long all0 = calls(r.raw, NULL), top0 = calls(r.raw, TOP_LEVEL);
    double rcpu0 = redis_cpu(r.raw);
    int64_t t0 = now_ms();
    for (int i = 0; i < n; i += BATCH) {
        int m = n - i < BATCH ? n - i : BATCH;
        int64_t now = now_ms();
        for (int k = 0; k < m; k++)
            items[i + k].created_at = now;
        aq_err e = {0};
        if (queue_enqueue_many(r.q, NULL, items + i, (size_t)m, &e) != 0) {
            printf("enqueue failed: %s\n", e.msg);
            break;
        }
    }
    int64_t enq_ms = now_ms() - t0;
    int polls = 0;
    while (stat_done(&r) < n && now_ms() - t0 < 600000) {
        usleep(50000);
        polls++;
    }
    long long all1 = calls(r.raw, NULL), top1 = calls(r.raw, TOP_LEVEL);
    double rcpu1 = redis_cpu(r.raw);
    rss_acc rss = {"", 0};
    aq_err e = {0};
    queue_workers(r.q, add_worker, &rss, &e);

    int64_t *lat = calloc((size_t)n, sizeof *lat);
    int64_t last = 0;
    int got = 0;
    for (int i = 0; i < n; i++) {
        queue_job j;
        memset(&j, 0, sizeof j);
        if (queue_job_get(r.q, ids[i], &j, &e) == 0 && strcmp(j.state, "done") == 0) {
            lat[got++] = j.finished_at - j.created_at;
            if (j.finished_at > last)
                last = j.finished_at;
        }
        queue_job_free(&j);
    }
    qsort(lat, (size_t)got, sizeof *lat, cmp_i64);
    double secs = (double)(last - t0) / 1000.0;
    printf("done %d/%d in %.2f s: %.0f jobs/s (enqueue of all took %" PRId64 " ms)\n", got, n,
           secs, secs > 0 ? got / secs : 0.0, enq_ms);
    if (got)
        printf("enqueue-to-done latency (burst): p50 %" PRId64 " ms, p99 %" PRId64 " ms, max %" PRId64 " ms\n",
               lat[got / 2], lat[(got * 99) / 100 < got ? (got * 99) / 100 : got - 1], lat[got - 1]);
    /* the bench's own traffic: one EVALSHA per enqueued job, a stats read
     * (pipeline) per poll, and the commandstats reads */
    double top = (double)(top1 - top0 - n) / n;
    printf("redis per job (worker side): %.2f top-level round trips (EVALSHA/BLMOVE), "
           "%.1f commands incl. inside scripts and the bench's own\n",
           top, (double)(all1 - all0) / n);
    printf("workers: %s\n", rss.out[0] ? rss.out : "(none alive)");
    /* CPU per job does not depend on what else the machine runs: it tells
     * what two idle cores could do */
    double wus = rss.cpu * 1e6 / n, rus = (rcpu1 - rcpu0) * 1e6 / n;
    printf("CPU per job: workers %.0f us + redis %.0f us = %.0f us -> about %.0f jobs/s "
           "if 2 cores did nothing else\n", wus, rus, wus + rus,
           wus + rus > 0 ? 2e6 / (wus + rus) : 0.0);
    (void)polls;
    paced(&r, 2000, 500);
    free(lat);
    for (int i = 0; i < n; i++)
        free(docs[i]);
    free(docs);
    free(ids);
    free(items);
    teardown(&r, false);
}

/* Whether AQ_BENCH_E2E_RUNS (a comma list of nofsync, fsync, pg; unset:
 * all three) asks for this run. bench/engine.sh wants only nofsync. */
static bool wanted(const char *run)
{
    const char *list = getenv("AQ_BENCH_E2E_RUNS");
    if (!list || !*list)
        return true;
    size_t n = strlen(run);
    for (const char *p = list; p; p = strchr(p, ',') ? strchr(p, ',') + 1 : NULL)
        if (strncmp(p, run, n) == 0 && (p[n] == ',' || p[n] == '\0'))
            return true;
    return false;
}

int main(void)
{
    const char *url = getenv("AQ_BENCH_REDIS_URL");
    if (!url || !*url) {
        printf("skipped: no redis (AQ_BENCH_REDIS_URL)\n");
        return 0;
    }
    const char *nenv = getenv("AQ_BENCH_E2E_JOBS");
    int n = nenv && atoi(nenv) > 0 ? atoi(nenv) : 10000;
    if (wanted("nofsync"))
        bench(url, false, n, NULL);
    if (wanted("fsync"))
        bench(url, true, n, NULL);
    const char *pg = getenv("AQ_BENCH_PG_CONNINFO");
    if (pg && *pg && wanted("pg"))
        bench(url, false, n, pg);
    else if (wanted("pg"))
        printf("-- PostgreSQL: skipped: no PostgreSQL (AQ_BENCH_PG_CONNINFO)\n");
    return 0;
}
