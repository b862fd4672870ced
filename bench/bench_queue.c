/* bench_queue: what lib/queue costs per job against the Redis of
 * AQ_BENCH_REDIS_URL, without rendering: enqueue (one round trip each, and
 * pipelined batches), the worker's take + start + ack cycle with one and two
 * processes (three round trips per job), and promoting due retries. Prints
 * figures; never passes or fails. Uses a namespace of its own and deletes it
 * afterwards. */
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "config.h"
#include "queue.h"
#include "retry.h"

#define N_SINGLE 20000
#define N_BATCH 100000
#define BATCH 1000
#define N_CYCLE 20000
#define N_PROMOTE 20000

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

/* take + start + ack until the queue is empty; returns jobs done. */
static long cycle(const char *worker)
{
    queue *q = open_q();
    aq_err e = {0};
    long n = 0;
    char *doc;
    size_t len;
    while (queue_take(q, worker, 0, &doc, &len, &e) == 1) {
        /* the id sits between "id":" and the next quote */
        char id[80] = "";
        const char *p = strstr(doc, "\"id\":\"");
        if (p)
            sscanf(p + 6, "%79[^\"]", id);
        int attempts;
        bool stale;
        if (queue_start(q, worker, id, 0, &attempts, &e) < 0 ||
            queue_ack(q, worker, doc, len, id, "{\"128\":\"k\"}", 1, &stale, &e) < 0) {
            fprintf(stderr, "cycle: %s\n", e.msg);
            free(doc);
            break;
        }
        free(doc);
        n++;
    }
    queue_close(q);
    return n;
}

static void bench_cycle(queue *q, int procs)
{
    aq_err e = {0};
    static char docs[BATCH][160], ids[BATCH][32];
    queue_item items[BATCH];
    for (long done = 0; done < N_CYCLE; done += BATCH) {
        for (int i = 0; i < BATCH; i++) {
            doc_for(docs[i], sizeof docs[i], procs == 1 ? "c" : "d", done + i);
            snprintf(ids[i], sizeof ids[i], "%s%ld", procs == 1 ? "c" : "d", done + i);
            items[i] = (queue_item){ids[i], docs[i], strlen(docs[i]), 0};
        }
        if (queue_enqueue_many(q, NULL, items, BATCH, &e) < 0)
            return;
    }
    int64_t t0 = mono_ms();
    pid_t pids[8];
    for (int p = 0; p < procs; p++) {
        pids[p] = fork();
        if (pids[p] == 0) {
            char w[32];
            snprintf(w, sizeof w, "bench:%d", (int)getpid());
            cycle(w);
            _exit(0);
        }
    }
    for (int p = 0; p < procs; p++)
        waitpid(pids[p], NULL, 0);
    char what[80];
    snprintf(what, sizeof what, "take+start+ack, %d process%s (3 round trips)", procs,
             procs == 1 ? "" : "es");
    rate(what, N_CYCLE, mono_ms() - t0);
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
    bench_cycle(q, 1);
    cleanup(raw, CFG.redis.ns);
    bench_cycle(q, 2);
    cleanup(raw, CFG.redis.ns);
    bench_promote(q, raw);
    cleanup(raw, CFG.redis.ns);
    redisFree(raw);
    queue_close(q);
    return 0;
}
