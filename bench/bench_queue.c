/* bench_queue: what lib/queue costs per job against the Redis of
 * AQ_BENCH_REDIS_URL, without rendering: enqueue (one round trip each, and
 * pipelined batches), the worker engine's take + start + ack with one and
 * two processes, and promoting due retries. The take + start + ack loop is
 * the worker's: each queue_cycle records the batch it started last time
 * done, starts the batch it took last time and takes the next one (one
 * round trip per batch), in batches of 1 (one round trip per job; the
 * first engine's one-job calls took three) and of BATCH_ENGINE (what a
 * worker holding that many jobs sends). Prints figures; never passes or
 * fails. Uses a namespace of its own and deletes it afterwards. */
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "config.h"
#include "job.h"
#include "queue.h"
#include "retry.h"

#define N_SINGLE 20000
#define N_BATCH 100000
#define BATCH 1000
#define N_CYCLE 20000
#define N_PROMOTE 20000
/* Jobs per take of the batched rows: the dispatcher of a worker process at
 * the default [worker] concurrency (16) holds up to twice that. */
#define BATCH_ENGINE 32

static aq_config CFG;

static queue *open_q(void)
{
    aq_err e = {0};
    queue *q = queue_open(&CFG, &e);
    if (!q) {
        fprintf(stderr, "bench_queue: %s\n", e.msg);
        exit(1);
    }
    return q;
}

static void doc_for(char *out, size_t n, const char *tag, long i)
{
    snprintf(out, n, "{\"v\":1,\"id\":\"%s%ld\",\"seed\":\"%s%ld\",\"sizes\":[128]}", tag, i, tag, i);
}

static void rate(const char *what, long n, int64_t ms)
{
    printf("%-44s %8ld jobs in %6.2f s  %9.0f jobs/s\n", what, n, (double)ms / 1000.0,
           ms > 0 ? (double)n * 1000.0 / (double)ms : 0.0);
}

static void bench_enqueue_single(queue *q)
{
    char doc[160], id[32];
    aq_err e = {0};
    int64_t t0 = mono_ms();
    for (long i = 0; i < N_SINGLE; i++) {
        doc_for(doc, sizeof doc, "s", i);
        snprintf(id, sizeof id, "s%ld", i);
        if (queue_enqueue(q, NULL, id, doc, strlen(doc), 0, &e) < 0) {
            fprintf(stderr, "enqueue: %s\n", e.msg);
            return;
        }
    }
    rate("enqueue, one round trip each", N_SINGLE, mono_ms() - t0);
}

static void bench_enqueue_batch(queue *q)
{
    static char docs[BATCH][160], ids[BATCH][32];
    queue_item items[BATCH];
    aq_err e = {0};
    int64_t t0 = mono_ms();
    for (long done = 0; done < N_BATCH; done += BATCH) {
        for (int i = 0; i < BATCH; i++) {
            doc_for(docs[i], sizeof docs[i], "b", done + i);
            snprintf(ids[i], sizeof ids[i], "b%ld", done + i);
            items[i] = (queue_item){ids[i], docs[i], strlen(docs[i]), 0};
        }
        if (queue_enqueue_many(q, NULL, items, BATCH, &e) < 0) {
            fprintf(stderr, "enqueue_many: %s\n", e.msg);
            return;
        }
    }
    rate("enqueue_many, pipelines of 1000", N_BATCH, mono_ms() - t0);
}

/* The id of a bench document: it sits between "id":" and the next quote. */
static void id_of(const char *doc, char id[80])
{
    id[0] = '\0';
    const char *p = strstr(doc, "\"id\":\"");
    if (p)
        sscanf(p + 6, "%79[^\"]", id);
}

/* The start items of the batch just taken (ids[i] receives each id). */
static void starts_of(const queue_taken *t, char (*ids)[80], queue_start_item *items)
{
    for (size_t i = 0; i < t->n; i++) {
        id_of(t->doc[i], ids[i]);
        items[i] = (queue_start_item){.id = ids[i]};
    }
}

/* The outcomes (done) of the batch just started, for the next cycle. */
static void outcomes_of(const queue_taken *t, char (*ids)[80], queue_outcome *outs,
                        queue_hist *h)
{
    for (size_t i = 0; i < t->n; i++) {
        outs[i] = (queue_outcome){.doc = t->doc[i], .len = t->len[i], .id = ids[i],
                                  .kind = QUEUE_DONE, .outputs = "{\"128\":\"k\"}",
                                  .duration_ms = 1};
        queue_hist_add(h, 1);
    }
}

/* The worker engine's take + start + ack, batch jobs at a time, until the
 * queue is empty: each queue_cycle records the batch started by the
 * previous call done (and its duration histogram, as the worker does),
 * starts the batch the previous call took, and takes the next. Returns
 * the jobs recorded done. */
static long drain(const char *worker, int batch)
{
    queue *q = open_q();
    aq_err e = {0};
    queue_outcome *outs = calloc((size_t)batch, sizeof *outs);
    queue_start_item *items = calloc((size_t)batch, sizeof *items);
    char(*ids)[80] = calloc((size_t)batch, sizeof *ids);   /* of the batch to start */
    char(*rids)[80] = calloc((size_t)batch, sizeof *rids); /* of the batch running */
    queue_taken run = {0}, took = {0};
    queue_hist h = {0};
    long done = 0;
    while (outs && items && ids && rids) {
        queue_taken next;
        starts_of(&took, ids, items);
        if (queue_cycle(q, worker, outs, run.n, &h, items, took.n, batch, JOB_MAX_DOC, &next,
                        &e) < 0) {
            fprintf(stderr, "cycle: %s\n", e.msg);
            break;
        }
        for (size_t i = 0; i < run.n; i++)
            done += !outs[i].stale;
        memset(&h, 0, sizeof h);
        queue_taken_free(&run);
        run = took; /* started now: done in the next call */
        took = next;
        char(*swap)[80] = rids;
        rids = ids;
        ids = swap;
        outcomes_of(&run, rids, outs, &h);
        if (run.n == 0 && took.n == 0)
            break;
    }
    queue_taken_free(&run);
    queue_taken_free(&took);
    free(outs);
    free(items);
    free(ids);
    free(rids);
    queue_close(q);
    return done;
}

static void bench_cycle(queue *q, int procs, int batch)
{
    aq_err e = {0};
    static char docs[BATCH][160], ids[BATCH][32];
    queue_item items[BATCH];
    char tag[16];
    snprintf(tag, sizeof tag, "c%d.%d.", procs, batch);
    for (long done = 0; done < N_CYCLE; done += BATCH) {
        for (int i = 0; i < BATCH; i++) {
            doc_for(docs[i], sizeof docs[i], tag, done + i);
            snprintf(ids[i], sizeof ids[i], "%s%ld", tag, done + i);
            items[i] = (queue_item){ids[i], docs[i], strlen(docs[i]), 0};
        }
        if (queue_enqueue_many(q, NULL, items, BATCH, &e) < 0)
            return;
    }
    int64_t t0 = mono_ms();
    pid_t pids[8];
    int fds[8][2];
    for (int p = 0; p < procs; p++) {
        if (pipe(fds[p]) < 0)
            return;
        pids[p] = fork();
        if (pids[p] == 0) {
            char w[32];
            snprintf(w, sizeof w, "bench:%d", (int)getpid());
            long n = drain(w, batch);
            _exit(write(fds[p][1], &n, sizeof n) == sizeof n ? 0 : 1);
        }
        close(fds[p][1]);
    }
    long total = 0;
    for (int p = 0; p < procs; p++) {
        long n = 0;
        if (read(fds[p][0], &n, sizeof n) == sizeof n)
            total += n;
        close(fds[p][0]);
        waitpid(pids[p], NULL, 0);
    }
    int64_t ms = mono_ms() - t0;
    char what[80];
    snprintf(what, sizeof what, "take+start+ack, batches of %d, %d proc%s", batch, procs,
             procs == 1 ? "" : "s");
    rate(what, total, ms);
    if (total != N_CYCLE)
        printf("  (%ld of %d jobs recorded done)\n", total, N_CYCLE);
}

static void bench_promote(queue *q, redisContext *raw)
{
    char key[300];
    queue_keyf(q, key, sizeof key, "delayed");
    for (long i = 0; i < N_PROMOTE; i++)
        redisAppendCommand(raw, "ZADD %s %ld {\"id\":\"p%ld\"}", key, i, i);
    for (long i = 0; i < N_PROMOTE; i++) {
        void *r;
        if (redisGetReply(raw, &r) != REDIS_OK)
            return;
        freeReplyObject(r);
    }
    aq_err e = {0};
    int moved, total = 0;
    int64_t t0 = mono_ms();
    do {
        if (queue_promote_due(q, now_ms(), 100, &moved, &e) < 0)
            return;
        total += moved;
    } while (moved > 0);
    rate("promote_due, 100 per call", total, mono_ms() - t0);
}

/* Deletes every key of the namespace. */
static void cleanup(redisContext *raw, const char *ns)
{
    redisReply *r = redisCommand(raw,
        "EVAL %s 0 %s:*",
        "local c = '0' repeat local r = redis.call('SCAN', c, 'MATCH', ARGV[1], 'COUNT', 1000) "
        "c = r[1] for _, k in ipairs(r[2]) do redis.call('UNLINK', k) end until c == '0'",
        ns);
    if (r)
        freeReplyObject(r);
}

int main(void)
{
    const char *url = getenv("AQ_BENCH_REDIS_URL");
    if (!url || !*url) {
        printf("skipped: no redis (AQ_BENCH_REDIS_URL)\n");
        return 0;
    }
    char text[700];
    snprintf(text, sizeof text, "[redis]\nurl = %s\nnamespace = benchq%d\n", url, (int)getpid());
    aq_err e = {0};
    if (config_load_string(&CFG, text, "bench", &e) < 0) {
        fprintf(stderr, "bench_queue: %s\n", e.msg);
        return 1;
    }
    queue *q = open_q();
    redisContext *raw = CFG.redis.unix_path[0] ? redisConnectUnix(CFG.redis.unix_path)
                                               : redisConnect(CFG.redis.host, CFG.redis.port);
    if (!raw || raw->err) {
        printf("skipped: no redis at the configured address\n");
        return 0;
    }
    if (CFG.redis.password[0]) {
        redisReply *r = CFG.redis.user[0]
                            ? redisCommand(raw, "AUTH %s %s", CFG.redis.user, CFG.redis.password)
                            : redisCommand(raw, "AUTH %s", CFG.redis.password);
        if (r)
            freeReplyObject(r);
    }
    if (CFG.redis.db) {
        redisReply *r = redisCommand(raw, "SELECT %d", CFG.redis.db);
        if (r)
            freeReplyObject(r);
    }
    bench_enqueue_single(q);
    cleanup(raw, CFG.redis.ns);
    bench_enqueue_batch(q);
    cleanup(raw, CFG.redis.ns);
    printf("take+start+ack: the worker engine's queue_cycle, one round trip per batch\n"
           "(a batch's start and then its ack ride with the next takes)\n");
    const int batches[] = {1, BATCH_ENGINE};
    for (int procs = 1; procs <= 2; procs++)
        for (size_t b = 0; b < sizeof batches / sizeof batches[0]; b++) {
            bench_cycle(q, procs, batches[b]);
            cleanup(raw, CFG.redis.ns);
        }
    bench_promote(q, raw);
    cleanup(raw, CFG.redis.ns);
    redisFree(raw);
    queue_close(q);
    return 0;
}
