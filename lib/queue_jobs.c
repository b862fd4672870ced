/* queue_jobs: the job lifecycle outside the worker engine: enqueue, cancel,
 * the job hash, promote, requeue. (The worker's take, start and outcomes
 * are queue_batch.c.) */
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

#include "fate.h"
#include "hash.h"
#include "job.h"
#include "queue_int.h"
#include "retry.h"

/* ------------------------------------------------------------------ */
/* producers */

/* The LUA_ENQUEUE vector of one job (doc and the strings stay the
 * caller's until the call is sent). */
static void enqueue_args(queue *q, qargs *a, const char *qname, const char *id, const char *doc,
                         size_t len, int64_t created_at, int64_t run_at, bool always,
                         const char *batch)
{
    int64_t now = now_ms();
    arg_script(a, q, S_ENQUEUE, 6);
    arg_key(a, q, "queue:%s", qname);
    arg_key(a, q, "job:%s", id);
    arg_key(a, q, "stats");
    arg_key(a, q, "events");
    arg_key(a, q, "delayed");
    arg_key(a, q, "cancelled");
    arg_b(a, doc, len);
    arg_s(a, id);
    arg_s(a, qname);
    arg_i(a, created_at > 0 ? created_at : now);
    arg_i(a, events_max(q));
    arg_i(a, q->cfg.redis.max_queue_length);
    arg_i(a, run_at > 0 ? run_at : 0);
    arg_i(a, now);
    arg_s(a, always ? "1" : "0");
    arg_s(a, batch ? batch : "");
    arg_ns(a, q);
}

static const char *const ENQ_NAMES[] = {
    [QUEUE_ENQ_DONE] = "enqueued",
    [QUEUE_ENQ_EXISTS] = "exists",
    [QUEUE_ENQ_REVIVED] = "revived",
    [QUEUE_ENQ_FULL] = "full",
};

const char *queue_enq_status_name(queue_enq_status s)
{
    return (unsigned)s < sizeof ENQ_NAMES / sizeof ENQ_NAMES[0] ? ENQ_NAMES[s] : "unknown";
}

/* {status, state} of LUA_ENQUEUE into j. */
static int enq_reply(queue *q, const redisReply *r, queue_enq *j, aq_err *e)
{
    if (r->type == REDIS_REPLY_ERROR)
        return reply_error(q, r, "enqueue", e);
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
        r->element[0]->type != REDIS_REPLY_STRING || r->element[1]->type != REDIS_REPLY_STRING)
        return err_set(e, AQ_EPERM, "redis %s: enqueue: unexpected reply", q->where);
    j->status = QUEUE_ENQ_DONE;
    for (size_t i = 0; i < sizeof ENQ_NAMES / sizeof ENQ_NAMES[0]; i++)
        if (strcmp(r->element[0]->str, ENQ_NAMES[i]) == 0)
            j->status = (queue_enq_status)i;
    snprintf(j->state, sizeof j->state, "%s", r->element[1]->str);
    return 0;
}

static int enq_check(const queue_enq *j, aq_err *e)
{
    if (!j->doc)
        return err_set(e, AQ_EPERM, "enqueue: no document");
    if (j->qname && *j->qname && !job_queue_valid(j->qname))
        return err_set(e, AQ_EPERM, "queue: '%.70s' is not a queue name ([A-Za-z0-9._-]{1,64})",
                       j->qname);
    return check_id(j->id, true, e);
}

int queue_enqueue_ex(queue *q, queue_enq *j, aq_err *e)
{
    j->status = QUEUE_ENQ_DONE;
    j->state[0] = '\0';
    int rc = enq_check(j, e);
    if (rc < 0)
        return rc;
    qargs a;
    enqueue_args(q, &a, qname_or_default(q, j->qname), j->id ? j->id : "", j->doc,
                 j->len, j->created_at, j->run_at, j->always, j->batch);
    redisReply *r;
    if ((rc = q_script(q, S_ENQUEUE, &a, "enqueue", &r, e)) < 0)
        return rc;
    rc = enq_reply(q, r, j, e);
    freeReplyObject(r);
    return rc;
}

/* The old contract of queue_enqueue: a full queue is a failure. */
static int full_error(const queue *q, const char *qname, aq_err *e)
{
    return err_set(e, AQ_EAGAIN, "queue %s is full (max_queue_length %" PRId64 "): try later",
                   qname_or_default(q, qname), (int64_t)q->cfg.redis.max_queue_length);
}

int queue_enqueue(queue *q, const char *qname, const char *id, const char *doc, size_t len,
                  int64_t created_at, aq_err *e)
{
    queue_enq j = {.qname = qname, .id = id, .doc = doc, .len = len, .created_at = created_at};
    int rc = queue_enqueue_ex(q, &j, e);
    if (rc == 0 && j.status == QUEUE_ENQ_FULL)
        return full_error(q, qname, e);
    return rc;
}

int queue_enqueue_many_ex(queue *q, queue_enq *jobs, size_t n, aq_err *e)
{
    for (size_t i = 0; i < n; i++) {
        int rc = enq_check(&jobs[i], e);
        if (rc < 0)
            return err_prefix(e, "item %zu: ", i);
    }
    int rc = queue_ensure(q, e);
    if (rc < 0)
        return rc;
    qargs a;
    for (size_t i = 0; i < n; i++) {
        const queue_enq *j = &jobs[i];
        enqueue_args(q, &a, qname_or_default(q, j->qname), j->id ? j->id : "", j->doc,
                     j->len, j->created_at, j->run_at, j->always, j->batch);
        if ((rc = q_append(q, &a, "enqueue", e)) < 0)
            return rc;
    }
    /* Read every reply; items refused with NOSCRIPT (scripts flushed under
     * us) are sent again one by one with EVAL. */
    bool *again = calloc(n ? n : 1, sizeof *again);
    if (!again)
        return err_set(e, AQ_EAGAIN, "enqueue: out of memory");
    int first = 0;
    for (size_t i = 0; i < n; i++) {
        redisReply *r;
        if ((rc = q_read(q, "enqueue", &r, e)) < 0) {
            free(again);
            return rc;
        }
        if (is_noscript(r))
            again[i] = true;
        else if (first == 0)
            first = enq_reply(q, r, &jobs[i], e);
        freeReplyObject(r);
    }
    for (size_t i = 0; i < n && first == 0; i++)
        if (again[i])
            first = queue_enqueue_ex(q, &jobs[i], e);
    free(again);
    return first == 0 ? q_wait(q, "enqueue", e) : first;
}

int queue_enqueue_many(queue *q, const char *qname, const queue_item *items, size_t n,
                       aq_err *e)
{
    queue_enq *jobs = calloc(n ? n : 1, sizeof *jobs);
    if (!jobs)
        return err_set(e, AQ_EAGAIN, "enqueue: out of memory");
    for (size_t i = 0; i < n; i++)
        jobs[i] = (queue_enq){.qname = qname, .id = items[i].id, .doc = items[i].doc,
                              .len = items[i].len, .created_at = items[i].created_at};
    int rc = queue_enqueue_many_ex(q, jobs, n, e);
    size_t full = 0;
    for (size_t i = 0; rc == 0 && i < n; i++)
        full += jobs[i].status == QUEUE_ENQ_FULL;
    free(jobs);
    if (rc == 0 && full)
        return err_prefix(e, "%zu of %zu jobs refused: ", full, n), full_error(q, qname, e);
    return rc;
}

int queue_cancel(queue *q, const char *id, char *before, aq_err *e)
{
    if (before)
        before[0] = '\0';
    int rc = check_id(id, false, e);
    if (rc < 0)
        return rc;
    qargs a;
    arg_script(&a, q, S_CANCEL, 4);
    arg_key(&a, q, "job:%s", id);
    arg_key(&a, q, "stats");
    arg_key(&a, q, "events");
    arg_key(&a, q, "cancelled");
    arg_s(&a, id);
    arg_i(&a, now_ms());
    arg_i(&a, events_max(q));
    arg_ns(&a, q);
    arg_i(&a, result_ttl(q));
    arg_s(&a, q->cfg.callbacks.publish ? "1" : "0");
    redisReply *r;
    if ((rc = q_script(q, S_CANCEL, &a, "cancel", &r, e)) < 0)
        return rc;
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
        r->element[0]->type != REDIS_REPLY_STRING || r->element[1]->type != REDIS_REPLY_STRING)
        rc = err_set(e, AQ_EPERM, "redis %s: cancel: unexpected reply", q->where);
    else if (strcmp(r->element[0]->str, "notfound") == 0)
        rc = err_set(e, AQ_ENOTFOUND, "job %s: not found", id);
    else
        rc = strcmp(r->element[0]->str, "final") == 0;
    if (rc >= 0 && before)
        snprintf(before, 16, "%s", r->element[1]->str);
    freeReplyObject(r);
    return rc;
}

static const field_spec job_fields[] = {
    FIELD_STR(queue_job, state),
    FIELD_STR(queue_job, queue),
    FIELD_STR(queue_job, worker),
    FIELD_STR(queue_job, error),
    FIELD(queue_job, attempts, F_INT),
    FIELD(queue_job, created_at, F_I64),
    FIELD(queue_job, started_at, F_I64),
    FIELD(queue_job, finished_at, F_I64),
    FIELD(queue_job, duration_ms, F_I64),
    FIELD(queue_job, outputs, F_DUP),
};

int queue_job_get(queue *q, const char *id, queue_job *j, aq_err *e)
{
    memset(j, 0, sizeof *j);
    return q_hash_get(q, "job", id, job_fields, FIELDS_N(job_fields), j, e);
}

void queue_job_free(queue_job *j)
{
    if (!j)
        return;
    free(j->outputs);
    j->outputs = NULL;
}

/* ------------------------------------------------------------------ */
/* supervisor duties */

int queue_promote_due_next(queue *q, int64_t now, int limit, int *moved, int64_t *next_due,
                           aq_err *e)
{
    if (moved)
        *moved = 0;
    if (next_due)
        *next_due = -1;
    qargs a;
    arg_script(&a, q, S_PROMOTE, 3);
    arg_key(&a, q, "delayed");
    arg_key(&a, q, "queue:%s", q->cfg.redis.queue);
    arg_key(&a, q, "events");
    arg_i(&a, now);
    arg_i(&a, limit > 0 ? limit : 100);
    arg_ns(&a, q);
    arg_i(&a, events_max(q));
    arg_i(&a, result_ttl(q));
    redisReply *r;
    int rc = q_script(q, S_PROMOTE, &a, "promote", &r, e);
    if (rc < 0)
        return rc;
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 2) {
        freeReplyObject(r);
        return err_set(e, AQ_EPERM, "redis %s: promote: unexpected reply", q->where);
    }
    if (moved)
        *moved = (int)reply_int(r->element[0]);
    if (next_due)
        *next_due = reply_int(r->element[1]);
    freeReplyObject(r);
    return 0;
}

int queue_promote_due(queue *q, int64_t now, int limit, int *moved, aq_err *e)
{
    return queue_promote_due_next(q, now, limit, moved, NULL, e);
}

/* Reads the attempts of each job in one pipeline, for the dead documents
 * requeue may have to build. */
static int read_attempts(queue *q, char (*ids)[65], size_t n, int *attempts, aq_err *e)
{
    qargs a;
    int rc;
    for (size_t i = 0; i < n; i++) {
        arg_cmd(&a, "HGET");
        arg_key(&a, q, "job:%s", ids[i]);
        arg_s(&a, "attempts");
        if ((rc = q_append(q, &a, "requeue", e)) < 0)
            return rc;
    }
    for (size_t i = 0; i < n; i++) {
        redisReply *r;
        if ((rc = q_read(q, "requeue", &r, e)) < 0)
            return rc;
        attempts[i] = r->type == REDIS_REPLY_STRING ? atoi(r->str) : 0;
        freeReplyObject(r);
    }
    return 0;
}

typedef struct requeue_doc {
    const char *doc;
    size_t len;
    char id[65];
    int max_attempts;
    char why[256];   /* ident's refusal, "" when it accepted the doc */
    int attempts;
} requeue_doc;

static bool timed_out(const queue_requeue *how, const char *id)
{
    for (size_t i = 0; id[0] && i < how->n_timed_out; i++)
        if (strcmp(how->timed_out[i], id) == 0)
            return true;
    return false;
}

/* What becomes of one document (fate.c decides): mode for LUA_REQUEUE, the
 * error it records, and the due time of a delayed retry. */
static const char *requeue_mode(const queue *q, const queue_requeue *how, const requeue_doc *d,
                                char *err, size_t errlen, int64_t *due)
{
    *due = 0;
    if (d->why[0]) {
        snprintf(err, errlen, "%s", d->why);
        return "dead";
    }
    bool slow = timed_out(how, d->id);
    fate f = fate_decide(&q->cfg, d->max_attempts, d->attempts,
                         slow ? FATE_TRANSIENT : FATE_DIED, now_ms());
    if (slow)
        snprintf(err, errlen, "%s", how->timeout_error ? how->timeout_error : "timed out");
    else
        snprintf(err, errlen, "worker died %d times while running it", d->attempts);
    if (!f.retry)
        return "dead";
    *due = f.due_ms;
    return slow ? "delay" : "queue";
}

/* One script for one document: LREM, then back to its queue, delayed or
 * dead. */
static int requeue_one(queue *q, const char *worker, const queue_requeue *how, requeue_doc *d,
                       int *recovered, int *dead, aq_err *e)
{
    char err[300];
    int64_t due;
    const char *mode = requeue_mode(q, how, d, err, sizeof err, &due);
    char *dead_doc = strcmp(mode, "dead") != 0 ? strdup("")
                     : d->why[0] ? queue_dead_doc_refused(d->doc, d->len, err, now_ms())
                                 : queue_dead_doc(d->doc, d->len, err, now_ms(), d->attempts);
    if (!dead_doc)
        return err_set(e, AQ_EAGAIN, "requeue: out of memory");
    qargs a;
    arg_script(&a, q, S_REQUEUE, 7);
    arg_key(&a, q, "processing:%s", worker);
    arg_key(&a, q, "job:%s", d->id);
    arg_key(&a, q, "queue:%s", q->cfg.redis.queue);
    arg_key(&a, q, "dead");
    arg_key(&a, q, "stats");
    arg_key(&a, q, "events");
    arg_key(&a, q, "delayed");
    arg_b(&a, d->doc, d->len);
    arg_s(&a, d->id);
    arg_s(&a, mode);
    arg_s(&a, dead_doc);
    arg_ns(&a, q);
    arg_s(&a, worker);
    arg_i(&a, now_ms());
    arg_i(&a, result_ttl(q));
    arg_i(&a, events_max(q));
    arg_i(&a, dead_max(q));
    arg_s(&a, err);
    arg_i(&a, due);
    arg_s(&a, q->cfg.callbacks.url);
    arg_s(&a, q->cfg.callbacks.publish ? "1" : "0");
    long long res = 0;
    int rc = q_script_int(q, S_REQUEUE, &a, "requeue", &res, e);
    free(dead_doc);
    if (rc == 0 && (res == 1 || res == 3))
        (*recovered)++; /* 4: cancelled meanwhile, dropped */
    if (rc == 0 && res == 2)
        (*dead)++;
    return rc;
}

int queue_requeue_worker(queue *q, const char *worker, const queue_requeue *how, int *recovered,
                         int *dead, aq_err *e)
{
    int rec = 0, dd = 0;
    if (recovered)
        *recovered = 0;
    if (dead)
        *dead = 0;
    if (!how || !how->ident)
        return err_set(e, AQ_EPERM, "requeue: no ident function given");
    qargs a;
    arg_cmd(&a, "LRANGE");
    arg_key(&a, q, "processing:%s", worker);
    arg_s(&a, "0");
    arg_s(&a, "-1");
    redisReply *r;
    int rc = q_run(q, &a, "requeue", &r, e);
    if (rc < 0)
        return rc;
    size_t n = r->type == REDIS_REPLY_ARRAY ? r->elements : 0;
    requeue_doc *docs = calloc(n ? n : 1, sizeof *docs);
    char(*ids)[65] = calloc(n ? n : 1, sizeof *ids);
    int *attempts = calloc(n ? n : 1, sizeof *attempts);
    if (!docs || !ids || !attempts) {
        rc = err_set(e, AQ_EAGAIN, "requeue: out of memory");
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        requeue_doc *d = &docs[i];
        d->doc = r->element[i]->str;
        d->len = r->element[i]->len;
        if (how->ident(how->ud, d->doc, d->len, d->id, &d->max_attempts, d->why,
                       sizeof d->why) != 0) {
            if (!d->why[0])
                snprintf(d->why, sizeof d->why, "unreadable job document");
            d->id[0] = '\0';
        } else {
            d->why[0] = '\0';
            if (check_id(d->id, true, NULL) < 0)
                d->id[0] = '\0';
        }
        memcpy(ids[i], d->id, 65);
    }
    /* the callbacks it was sending go back too (its sender thread is gone) */
    if ((rc = queue_callback_return(q, worker, NULL, e)) < 0)
        goto out;
    if (n && (rc = read_attempts(q, ids, n, attempts, e)) < 0)
        goto out;
    for (size_t i = 0; i < n; i++) {
        docs[i].attempts = attempts[i];
        if ((rc = requeue_one(q, worker, how, &docs[i], &rec, &dd, e)) < 0)
            goto out;
    }
out:
    free(docs);
    free(ids);
    free(attempts);
    freeReplyObject(r);
    if (recovered)
        *recovered = rec;
    if (dead)
        *dead = dd;
    return rc;
}

