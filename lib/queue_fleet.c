/* queue_fleet: heartbeats, registration, recovery of dead workers, the
 * worker list and remote control. */
#include <errno.h>
#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <unistd.h>

#include "hash.h"
#include "queue_int.h"
#include "retry.h"

/* ------------------------------------------------------------------ */
/* heartbeats */

int queue_heartbeat(queue *q, const queue_beat *beats, size_t n, aq_err *e)
{
    int rc = queue_ensure(q, e);
    if (rc < 0)
        return rc;
    int64_t now = now_ms();
    qargs a;
    for (size_t i = 0; i < n; i++) {
        const queue_beat *b = &beats[i];
        arg_cmd(&a, "HSET");
        arg_key(&a, q, "worker:%s", b->worker);
        arg_s(&a, "host");
        arg_s(&a, b->host);
        arg_s(&a, "pid");
        arg_i(&a, b->pid);
        arg_s(&a, "queue");
        arg_s(&a, q->cfg.redis.queue);
        arg_s(&a, "started_at");
        arg_i(&a, b->started_at);
        arg_s(&a, "beat_at");
        arg_i(&a, now);
        arg_s(&a, "state");
        arg_s(&a, b->state ? b->state : "idle");
        arg_s(&a, "job");
        arg_s(&a, b->job);
        arg_s(&a, "done");
        arg_i(&a, b->done);
        arg_s(&a, "failed");
        arg_i(&a, b->failed);
        arg_s(&a, "rss_kb");
        arg_i(&a, b->rss_kb);
        arg_s(&a, "inflight");
        arg_i(&a, b->inflight);
        if ((rc = q_append(q, &a, "heartbeat", e)) < 0)
            return rc;
        arg_cmd(&a, "EXPIRE");
        arg_key(&a, q, "worker:%s", b->worker);
        arg_i(&a, q->cfg.worker.heartbeat_ttl_s > 0 ? q->cfg.worker.heartbeat_ttl_s : 10);
        if ((rc = q_append(q, &a, "heartbeat", e)) < 0)
            return rc;
        arg_cmd(&a, "SADD");
        arg_key(&a, q, "workers");
        arg_s(&a, b->worker);
        if ((rc = q_append(q, &a, "heartbeat", e)) < 0)
            return rc;
    }
    return q_read_all(q, 3 * n, "heartbeat", e);
}

int queue_worker_gone(queue *q, const char *worker, aq_err *e)
{
    int rc = queue_ensure(q, e);
    if (rc < 0)
        return rc;
    qargs a;
    arg_cmd(&a, "DEL");
    arg_key(&a, q, "worker:%s", worker);
    if ((rc = q_append(q, &a, "worker gone", e)) < 0)
        return rc;
    arg_cmd(&a, "SREM");
    arg_key(&a, q, "workers");
    arg_s(&a, worker);
    if ((rc = q_append(q, &a, "worker gone", e)) < 0)
        return rc;
    return q_read_all(q, 2, "worker gone", e);
}

/* ---- the recovery lock ---- */

static int lock_take(queue *q, char token[65], bool *got, aq_err *e)
{
    *got = false;
    uint8_t rnd[32];
    int64_t seedv[3] = {now_ms(), mono_ms(), (int64_t)getpid()};
    hash_sha256(seedv, sizeof seedv, rnd);
    hash_hex(rnd, 16, token);
    qargs a;
    arg_cmd(&a, "SET");
    arg_key(&a, q, "lock:recovery");
    arg_s(&a, token);
    arg_s(&a, "NX");
    arg_s(&a, "PX");
    int64_t ttl = (int64_t)q->cfg.worker.heartbeat_ttl_s * 1000;
    arg_i(&a, ttl > QUEUE_LOCK_MIN_MS ? ttl : QUEUE_LOCK_MIN_MS);
    redisReply *r;
    int rc = q_run(q, &a, "recovery lock", &r, e);
    if (rc < 0)
        return rc;
    *got = r->type == REDIS_REPLY_STATUS;
    freeReplyObject(r);
    return 0;
}

static void lock_release(queue *q, const char *token)
{
    qargs a;
    arg_script(&a, q, S_UNLOCK, 1);
    arg_key(&a, q, "lock:recovery");
    arg_s(&a, token);
    /* Failing to release only delays the next recovery by the lock's TTL. */
    queue_ensure(q, NULL);
    q_script_int(q, S_UNLOCK, &a, "recovery unlock", NULL, NULL);
}

/* SMEMBERS NS:workers, then `cmd NS:worker:<id>` pipelined for each member.
 * *members receives the SMEMBERS reply (free it) and *n its size; the caller
 * then reads exactly *n replies with q_read, in member order. */
static int worker_keys_pipeline(queue *q, const char *cmd, const char *what,
                                redisReply **members, size_t *n, aq_err *e)
{
    qargs a;
    arg_cmd(&a, "SMEMBERS");
    arg_key(&a, q, "workers");
    int rc = q_run(q, &a, what, members, e);
    if (rc < 0)
        return rc;
    redisReply *m = *members;
    *n = m->type == REDIS_REPLY_ARRAY ? m->elements : 0;
    for (size_t i = 0; i < *n && rc == 0; i++) {
        arg_cmd(&a, cmd);
        arg_key(&a, q, "worker:%s", m->element[i]->str);
        rc = q_append(q, &a, what, e);
    }
    return rc;
}

/* Members of NS:workers whose heartbeat key is gone, as one malloc'd array
 * of malloc'd strings. */
static int silent_workers(queue *q, char ***out, size_t *n, aq_err *e)
{
    *out = NULL;
    *n = 0;
    redisReply *m;
    size_t count = 0;
    int rc = worker_keys_pipeline(q, "EXISTS", "recovery", &m, &count, e);
    if (rc < 0 && !m)
        return rc;
    char **list = calloc(count ? count : 1, sizeof *list);
    if (!list && rc == 0)
        rc = err_set(e, AQ_EAGAIN, "recovery: out of memory");
    for (size_t i = 0; i < count && rc == 0; i++) {
        redisReply *r;
        if ((rc = q_read(q, "recovery", &r, e)) < 0)
            break;
        if (r->type == REDIS_REPLY_INTEGER && r->integer == 0)
            list[(*n)++] = strdup(m->element[i]->str);
        freeReplyObject(r);
    }
    freeReplyObject(m);
    if (rc < 0) {
        for (size_t i = 0; list && i < *n; i++)
            free(list[i]);
        free(list);
        *n = 0;
        return rc;
    }
    *out = list;
    return 0;
}

static int forget_worker(queue *q, const char *worker, aq_err *e)
{
    qargs a;
    arg_script(&a, q, S_FORGET, 3);
    arg_key(&a, q, "worker:%s", worker);
    arg_key(&a, q, "processing:%s", worker);
    arg_key(&a, q, "workers");
    arg_s(&a, worker);
    return q_script_int(q, S_FORGET, &a, "forget worker", NULL, e);
}

int queue_recover_dead(queue *q, const queue_requeue *how, int *recovered, int *dead,
                       aq_err *e)
{
    if (recovered)
        *recovered = 0;
    if (dead)
        *dead = 0;
    char token[65];
    bool got;
    int rc = lock_take(q, token, &got, e);
    if (rc < 0 || !got)
        return rc;
    char **silent;
    size_t n;
    rc = silent_workers(q, &silent, &n, e);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        int r1 = 0, d1 = 0;
        rc = queue_requeue_worker(q, silent[i], how, &r1, &d1, e);
        if (recovered)
            *recovered += r1;
        if (dead)
            *dead += d1;
        if (rc == 0)
            rc = forget_worker(q, silent[i], e);
    }
    if (rc == 0 || !q->broken)
        lock_release(q, token);
    for (size_t i = 0; i < n; i++)
        free(silent[i]);
    free(silent);
    return rc;
}

static const field_spec worker_fields[] = {
    FIELD_STR(queue_worker_info, host),
    FIELD(queue_worker_info, pid, F_LONG),
    FIELD_STR(queue_worker_info, state),
    FIELD_STR(queue_worker_info, job),
    FIELD_STR(queue_worker_info, queue),
    FIELD(queue_worker_info, started_at, F_I64),
    FIELD(queue_worker_info, beat_at, F_I64),
    FIELD(queue_worker_info, done, F_I64),
    FIELD(queue_worker_info, failed, F_I64),
    FIELD(queue_worker_info, rss_kb, F_I64),
};

/* A dead worker has no hash left: host and pid come from its id
 * HOST:PID-NONCE. */
static void worker_from_id(queue_worker_info *w, const char *id)
{
    snprintf(w->id, sizeof w->id, "%s", id);
    const char *colon = strrchr(id, ':');
    size_t hl = colon ? (size_t)(colon - id) : strlen(id);
    snprintf(w->host, sizeof w->host, "%.*s", (int)hl, id);
    w->pid = colon ? strtol(colon + 1, NULL, 10) : 0;
}

int queue_workers(queue *q, int (*fn)(const queue_worker_info *w, void *ud), void *ud, aq_err *e)
{
    redisReply *m;
    size_t n = 0;
    int rc = worker_keys_pipeline(q, "HGETALL", "workers", &m, &n, e);
    if (rc < 0 && !m)
        return rc;
    /* Read every reply even after fn stops us, so the pipeline stays in step. */
    int stop = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        redisReply *r;
        if ((rc = q_read(q, "workers", &r, e)) < 0)
            break;
        queue_worker_info w;
        memset(&w, 0, sizeof w);
        worker_from_id(&w, m->element[i]->str);
        w.alive = r->type == REDIS_REPLY_ARRAY && r->elements > 0;
        if (w.alive)
            store_fields(&w, worker_fields, FIELDS_N(worker_fields), r);
        freeReplyObject(r);
        if (!stop && fn)
            stop = fn(&w, ud);
    }
    freeReplyObject(m);
    return rc;
}

/* ------------------------------------------------------------------ */
/* remote control */

int queue_control_post(queue *q, const char *target, const char *cmd, aq_err *e)
{
    qargs a;
    arg_cmd(&a, "XADD");
    arg_key(&a, q, "control");
    arg_s(&a, "MAXLEN");
    arg_s(&a, "~");
    arg_s(&a, QUEUE_CONTROL_MAXLEN);
    arg_s(&a, "*");
    arg_s(&a, "target");
    arg_s(&a, target);
    arg_s(&a, "cmd");
    arg_s(&a, cmd);
    redisReply *r;
    int rc = q_run(q, &a, "control post", &r, e);
    if (rc == 0)
        freeReplyObject(r);
    return rc;
}

/* One stream entry [id, [field, value, ...]] into a queue_control. */
static void control_from_entry(const redisReply *ent, queue_control *c)
{
    memset(c, 0, sizeof *c);
    if (ent->type != REDIS_REPLY_ARRAY || ent->elements < 2)
        return;
    snprintf(c->id, sizeof c->id, "%s", ent->element[0]->str);
    const redisReply *f = ent->element[1];
    for (size_t j = 0; f->type == REDIS_REPLY_ARRAY && j + 1 < f->elements; j += 2) {
        const char *k = f->element[j]->str, *v = f->element[j + 1]->str;
        if (strcmp(k, "target") == 0)
            snprintf(c->target, sizeof c->target, "%s", v);
        else if (strcmp(k, "cmd") == 0)
            snprintf(c->cmd, sizeof c->cmd, "%s", v);
    }
}

int queue_control_read(queue *q, char last_id[48], queue_control *out, size_t max, size_t *n,
                       aq_err *e)
{
    *n = 0;
    if (max == 0)
        return 0;
    char from[64];
    snprintf(from, sizeof from, "(%s", last_id[0] ? last_id : "0");
    qargs a;
    arg_cmd(&a, "XRANGE");
    arg_key(&a, q, "control");
    arg_s(&a, from);
    arg_s(&a, "+");
    arg_s(&a, "COUNT");
    arg_i(&a, (int64_t)max);
    redisReply *r;
    int rc = q_run(q, &a, "control read", &r, e);
    if (rc < 0)
        return rc;
    for (size_t i = 0; r->type == REDIS_REPLY_ARRAY && i < r->elements && *n < max; i++) {
        control_from_entry(r->element[i], &out[*n]);
        snprintf(last_id, 48, "%s", out[*n].id);
        (*n)++;
    }
    freeReplyObject(r);
    return 0;
}

