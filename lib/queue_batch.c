/* queue_batch: the worker engine's calls. A worker process holds many jobs;
 * its dispatcher records the outcomes of all finished ones, marks the ones
 * it took last time running and takes new ones in one script
 * (queue_cycle). queue_take_bounded is the blocking take of an idle
 * worker, whose reply rconn reads in pieces so that a document over the
 * protocol's limit is never held whole. */
#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hash.h"
#include "job.h"
#include "queue_int.h"
#include "retry.h"

const int queue_hist_bounds_ms[QUEUE_HIST_N - 1] = {1,   2,    5,    10,   25,    50,    100,  250,
                                                     500, 1000, 2500, 5000, 10000, 30000, 60000};

void queue_hist_add(queue_hist *h, int64_t ms)
{
    int b = 0;
    while (b < QUEUE_HIST_N - 1 && ms > queue_hist_bounds_ms[b])
        b++;
    h->bucket[b]++;
    h->sum_ms += ms;
    h->count++;
}

void queue_taken_free(queue_taken *t)
{
    for (size_t i = 0; i < t->n; i++)
        free(t->doc[i]);
    free(t->doc);
    free(t->len);
    free(t->from);
    free(t->big);
    memset(t, 0, sizeof *t);
}

/* ---- queue_cycle ---- */

static const char *const KIND_CODE[] = {[QUEUE_DONE] = "d", [QUEUE_RETRY] = "r",
                                        [QUEUE_DEAD] = "x", [QUEUE_REFUSED] = "z",
                                        [QUEUE_DROP] = "c"};

static void cycle_outcome(qvec *a, const queue_outcome *o)
{
    qvec_s(a, KIND_CODE[o->kind]);
    qvec_b(a, o->doc, o->len);
    qvec_s(a, o->id ? o->id : "");
    switch (o->kind) {
    case QUEUE_DONE:
        qvec_i(a, o->duration_ms);
        qvec_s(a, o->outputs ? o->outputs : "");
        qvec_s(a, "");
        break;
    case QUEUE_RETRY:
        qvec_s(a, o->error);
        qvec_s(a, o->retry_doc);
        qvec_i(a, o->due_ms);
        break;
    case QUEUE_DEAD:
    case QUEUE_REFUSED:
        qvec_s(a, o->error);
        qvec_s(a, o->dead_doc);
        qvec_s(a, "");
        break;
    case QUEUE_DROP:
        qvec_s(a, "");
        qvec_s(a, "");
        qvec_s(a, "");
        break;
    }
    qvec_s(a, o->callback ? o->callback : "");
    qvec_s(a, o->batch ? o->batch : "");
}

/* Field names of the histogram, built once. */
static const char *hist_field(int b)
{
    static char names[QUEUE_HIST_N][40];
    if (!names[b][0]) {
        if (b < QUEUE_HIST_N - 1)
            snprintf(names[b], sizeof names[b], "job_duration_ms_le_%d", queue_hist_bounds_ms[b]);
        else
            snprintf(names[b], sizeof names[b], "job_duration_ms_le_inf");
    }
    return names[b];
}

static int cycle_metrics(qvec *a, const queue_hist *h)
{
    int n = 0;
    for (int b = 0; h && b < QUEUE_HIST_N; b++)
        if (h->bucket[b]) {
            qvec_s(a, hist_field(b));
            qvec_i(a, h->bucket[b]);
            n++;
        }
    if (h && h->count) {
        qvec_s(a, "job_duration_ms_sum");
        qvec_i(a, h->sum_ms);
        qvec_s(a, "job_duration_ms_count");
        qvec_i(a, h->count);
        n += 2;
    }
    return n;
}

/* Copies the docs of an array reply into t. */
static int taken_from(queue *q, const redisReply *arr, queue_taken *t, aq_err *e)
{
    size_t n = arr && arr->type == REDIS_REPLY_ARRAY ? arr->elements : 0;
    if (n == 0)
        return 0;
    t->doc = calloc(n, sizeof *t->doc);
    t->len = calloc(n, sizeof *t->len);
    t->from = calloc(n, sizeof *t->from);
    if (!t->doc || !t->len || !t->from)
        return err_set(e, AQ_EAGAIN, "take: out of memory");
    for (size_t i = 0; i < n; i++) {
        const redisReply *d = arr->element[i];
        if (d->type != REDIS_REPLY_STRING)
            return err_set(e, AQ_EPERM, "redis %s: take: unexpected reply", q->where);
        if (!(t->doc[i] = malloc(d->len + 1)))
            return err_set(e, AQ_EAGAIN, "take: out of memory");
        memcpy(t->doc[i], d->str, d->len);
        t->doc[i][d->len] = '\0';
        t->len[i] = d->len;
        t->n++;
    }
    return 0;
}

/* Whether r is an array of exactly n elements (Lua gives an empty table
 * as an empty array). */
static bool array_of(const redisReply *r, size_t n)
{
    return r->type == REDIS_REPLY_ARRAY && r->elements == n;
}

static int cycle_reply(queue *q, redisReply *r, queue_outcome *outs, size_t n,
                       queue_start_item *starts, size_t nstarts, queue_taken *t, aq_err *e)
{
    if (!array_of(r, 5) || !array_of(r->element[0], n) || !array_of(r->element[4], nstarts))
        return err_set(e, AQ_EPERM, "redis %s: cycle: unexpected reply", q->where);
    for (size_t i = 0; i < n; i++) {
        int64_t c = reply_int(r->element[0]->element[i]);
        outs[i].stale = c == 0;
        outs[i].cancelled = c == 2;
    }
    for (size_t i = 0; i < nstarts; i++)
        starts[i].attempts = (int)reply_int(r->element[4]->element[i]);
    int64_t over = reply_int(r->element[2]);
    t->oversized = over > 0;
    t->oversized_from = over > 0 ? (int)over - 1 : 0;
    int rc = taken_from(q, r->element[1], t, e);
    const redisReply *from = r->element[3];
    for (size_t i = 0; rc == 0 && i < t->n; i++)
        t->from[i] = from->type == REDIS_REPLY_ARRAY && i < from->elements
                         ? (int)reply_int(from->element[i])
                         : 0;
    if (rc < 0)
        queue_taken_free(t);
    return rc;
}

/* ---- several queues ---- */

int queue_set_takes(queue *q, const char *const *names, const int *weights, int n, bool strict,
                    aq_err *e)
{
    if (n < 0 || n > QUEUE_TAKE_MAX)
        return err_set(e, AQ_EPERM, "queues: %d queues, at most %d", n, QUEUE_TAKE_MAX);
    for (int i = 0; i < n; i++) {
        if (!job_queue_valid(names[i]))
            return err_set(e, AQ_EPERM, "queues: '%.70s' is not a queue name", names[i]);
        if (!strict && (!weights || weights[i] < 1))
            return err_set(e, AQ_EPERM, "queues: %s: weight must be at least 1", names[i]);
    }
    q->ntake = n;
    q->take_strict = strict;
    for (int i = 0; i < n; i++) {
        snprintf(q->take_name[i], sizeof q->take_name[i], "%s", names[i]);
        q->take_weight[i] = strict || !weights ? 1 : weights[i];
        q->take_credit[i] = 0;
    }
    return 0;
}

const char *queue_take_name(const queue *q, int idx)
{
    return idx >= 1 && idx <= q->ntake ? q->take_name[idx - 1] : q->cfg.redis.queue;
}

int queue_take_count(const queue *q)
{
    return q->ntake;
}

int queue_take_first(const queue *q)
{
    if (q->ntake == 0)
        return 0;
    int best = 0;
    for (int i = 1; !q->take_strict && i < q->ntake; i++)
        if (q->take_weight[i] > q->take_weight[best])
            best = i;
    return best + 1;
}

/* The take order of one call: for each wanted document, the queue to try
 * first ('a' + index - 1). Weighted: smooth weighted round robin (each pick
 * adds every queue's weight to its credit and takes the largest credit,
 * which then pays the total), its credits kept across calls. Strict: always
 * the first queue. */
static void take_order(queue *q, char *out, int want)
{
    int64_t total = 0;
    for (int i = 0; i < q->ntake; i++)
        total += q->take_weight[i];
    for (int k = 0; k < want; k++) {
        int best = 0;
        for (int i = 0; !q->take_strict && i < q->ntake; i++) {
            q->take_credit[i] += q->take_weight[i];
            if (q->take_credit[i] > q->take_credit[best])
                best = i;
        }
        if (!q->take_strict)
            q->take_credit[best] -= total;
        out[k] = (char)('a' + best);
    }
    out[want] = '\0';
}

/* The starts of a cycle, after its metrics: the default queue, m, and m
 * triples (id, created_at, queue or ""). */
static void cycle_starts(queue *q, qvec *a, const queue_start_item *starts, size_t m)
{
    qvec_s(a, q->cfg.redis.queue);
    qvec_i(a, (int64_t)m);
    for (size_t i = 0; i < m; i++) {
        qvec_s(a, starts[i].id ? starts[i].id : "");
        qvec_i(a, starts[i].created_at);
        qvec_s(a, starts[i].queue ? starts[i].queue : "");
    }
}

int queue_cycle(queue *q, const char *worker, queue_outcome *outs, size_t n,
                const queue_hist *hist, queue_start_item *starts, size_t nstarts, int want,
                size_t limit, queue_taken *taken, aq_err *e)
{
    memset(taken, 0, sizeof *taken);
    for (size_t i = 0; i < n; i++)
        if (check_id(outs[i].id, true, e) < 0)
            return err_prefix(e, "outcome %zu: ", i);
    for (size_t i = 0; i < nstarts; i++)
        if (check_id(starts[i].id, true, e) < 0)
            return err_prefix(e, "start %zu: ", i);
    if (want < 0)
        want = 0;
    int nkeys = 8 + q->ntake;
    char keys[8 + QUEUE_TAKE_MAX][QUEUE_KEY_MAX], ns[80];
    queue_keyf(q, keys[0], QUEUE_KEY_MAX, "processing:%s", worker);
    queue_keyf(q, keys[1], QUEUE_KEY_MAX, "queue:%s", q->cfg.redis.queue);
    queue_keyf(q, keys[2], QUEUE_KEY_MAX, "stats");
    queue_keyf(q, keys[3], QUEUE_KEY_MAX, "events");
    queue_keyf(q, keys[4], QUEUE_KEY_MAX, "delayed");
    queue_keyf(q, keys[5], QUEUE_KEY_MAX, "dead");
    queue_keyf(q, keys[6], QUEUE_KEY_MAX, "metrics");
    queue_keyf(q, keys[7], QUEUE_KEY_MAX, "cancelled");
    for (int i = 0; i < q->ntake; i++)
        queue_keyf(q, keys[8 + i], QUEUE_KEY_MAX, "queue:%s", q->take_name[i]);
    ns_prefix(q, ns, sizeof ns);
    char *order = malloc((size_t)want + 1);
    qvec a = {0};
    if (!order || qvec_grow(&a, 42 + 8 * (int)n + 2 * (QUEUE_HIST_N + 2) + 3 * (int)nstarts) < 0) {
        free(order);
        qvec_free(&a);
        return err_set(e, AQ_EAGAIN, "cycle: out of memory");
    }
    if (q->ntake)
        take_order(q, order, want);
    else
        order[0] = '\0';
    qvec_head(&a, keys, nkeys);
    qvec_s(&a, ns);
    qvec_s(&a, worker);
    qvec_i(&a, now_ms());
    qvec_i(&a, result_ttl(q));
    qvec_i(&a, events_max(q));
    qvec_i(&a, dead_max(q));
    qvec_i(&a, (int64_t)n);
    qvec_i(&a, want);
    qvec_i(&a, (int64_t)limit);
    int nm_at = a.n;
    qvec_i(&a, 0);
    qvec_s(&a, order);
    qvec_s(&a, q->cfg.callbacks.publish ? "1" : "0");
    for (size_t i = 0; i < n; i++)
        cycle_outcome(&a, &outs[i]);
    int nm = cycle_metrics(&a, hist);
    snprintf(a.num[nm_at], sizeof a.num[nm_at], "%d", nm);
    a.l[nm_at] = strlen(a.num[nm_at]);
    cycle_starts(q, &a, starts, nstarts);
    qvec_fix(&a);
    redisReply *r;
    int rc = q_script_argv(q, S_CYCLE, a.n, a.v, a.l, "cycle", &r, e);
    qvec_free(&a);
    free(order);
    if (rc < 0)
        return rc;
    rc = cycle_reply(q, r, outs, n, starts, nstarts, taken, e);
    freeReplyObject(r);
    return rc;
}

/* ---- queue_start_many ---- */

int queue_start_many(queue *q, const char *worker, queue_start_item *items, size_t n,
                     aq_err *e)
{
    if (n == 0)
        return 0;
    queue_taken t;
    int rc = queue_cycle(q, worker, NULL, 0, NULL, items, n, 0, 0, &t, e);
    queue_taken_free(&t);
    return rc;
}

/* ---- queue_take_bounded: a document over the limit is never held ---- */

/* Where the pieces of an oversized document go: its SHA-256 and head. */
typedef struct big_sink {
    EVP_MD_CTX *md;
    queue_big *big;
} big_sink;

static void big_piece(void *ud, const char *p, size_t n)
{
    big_sink *s = ud;
    EVP_DigestUpdate(s->md, p, n);
    size_t room = QUEUE_DEAD_RAW_MAX - s->big->head_len;
    size_t keep = n < room ? n : room;
    memcpy(s->big->head + s->big->head_len, p, keep);
    s->big->head_len += keep;
}

/* Copies a bulk reply into a malloc'd NUL-terminated doc; returns 1. */
static int take_doc(queue *q, redisReply *r, char **doc, size_t *len, aq_err *e)
{
    if (r->type != REDIS_REPLY_STRING)
        return err_set(e, AQ_EPERM, "redis %s: take: unexpected reply", q->where);
    if (!(*doc = malloc(r->len + 1)))
        return err_set(e, AQ_EAGAIN, "take: out of memory");
    memcpy(*doc, r->str, r->len);
    (*doc)[r->len] = '\0';
    *len = r->len;
    return 1;
}

int queue_take_bounded(queue *q, const char *worker, int timeout_ms, size_t limit, char **doc,
                       size_t *len, queue_big *big, aq_err *e)
{
    return queue_take_bounded_from(q, 0, worker, timeout_ms, limit, doc, len, big, e);
}

int queue_take_bounded_from(queue *q, int from, const char *worker, int timeout_ms,
                            size_t limit, char **doc, size_t *len, queue_big *big, aq_err *e)
{
    *doc = NULL;
    *len = 0;
    memset(big, 0, sizeof *big);
    int rc = queue_ensure(q, e);
    if (rc < 0)
        return rc;
    if (timeout_ms < 1)
        timeout_ms = 1;
    qargs a;
    arg_cmd(&a, "BLMOVE");
    arg_key(&a, q, "queue:%s", queue_take_name(q, from));
    arg_key(&a, q, "processing:%s", worker);
    arg_s(&a, "RIGHT");
    arg_s(&a, "LEFT");
    arg_secs(&a, timeout_ms);
    if ((rc = q_append(q, &a, "take", e)) < 0)
        return rc;
    big_sink sink = {.md = EVP_MD_CTX_new(), .big = big};
    if (!sink.md)
        return err_set(e, AQ_EAGAIN, "take: out of memory");
    EVP_DigestInit_ex(sink.md, EVP_sha256(), NULL);
    set_timeout(q, timeout_ms);
    redisReply *r = NULL;
    size_t n = 0;
    rc = rconn_reply_bounded(q->rc, limit, big_piece, &sink, &r, &n, e);
    set_timeout(q, 0);
    if (rc < 0) {
        EVP_MD_CTX_free(sink.md);
        return transport_error(q, "take", e);
    }
    if (n > 0) { /* streamed: the head and the digest are all we kept */
        unsigned char sum[32];
        unsigned sl = 0;
        EVP_DigestFinal_ex(sink.md, sum, &sl);
        hash_hex(sum, 32, big->sha256);
        big->head[big->head_len] = '\0';
        big->size = n;
        rc = 1;
    } else if (r->type == REDIS_REPLY_NIL) {
        rc = 0; /* timed out */
    } else if (r->type == REDIS_REPLY_ERROR) {
        rc = reply_error(q, r, "take", e);
    } else {
        rc = take_doc(q, r, doc, len, e);
    }
    EVP_MD_CTX_free(sink.md);
    if (r)
        freeReplyObject(r);
    return rc;
}

int queue_bury_oversized(queue *q, const char *worker, const queue_big *big, size_t limit,
                         const char *error, aq_err *e)
{
    char *dead = queue_dead_doc_big(big->head, big->head_len, big->size, big->sha256, error,
                                    now_ms(), 1);
    if (!dead)
        return err_set(e, AQ_EAGAIN, "bury: out of memory");
    qargs a;
    arg_script(&a, q, S_BURY_BIG, 4);
    arg_key(&a, q, "processing:%s", worker);
    arg_key(&a, q, "stats");
    arg_key(&a, q, "events");
    arg_key(&a, q, "dead");
    arg_i(&a, (int64_t)big->size);
    arg_i(&a, (int64_t)limit);
    arg_s(&a, dead);
    arg_i(&a, events_max(q));
    arg_i(&a, dead_max(q));
    arg_s(&a, worker);
    arg_s(&a, error);
    int rc = q_script_int(q, S_BURY_BIG, &a, "bury", NULL, e);
    free(dead);
    return rc;
}

/* The larger documents of a LUA_HELD reply (sizes, heads) into out->big. */
static int held_big(const redisReply *sizes, const redisReply *heads, queue_taken *out, aq_err *e)
{
    size_t n = sizes->type == REDIS_REPLY_ARRAY ? sizes->elements : 0;
    if (n == 0)
        return 0;
    if (heads->type != REDIS_REPLY_ARRAY || heads->elements != n)
        return err_set(e, AQ_EPERM, "processing: unexpected reply");
    if (!(out->big = calloc(n, sizeof *out->big)))
        return err_set(e, AQ_EAGAIN, "processing: out of memory");
    for (size_t i = 0; i < n; i++) {
        queue_big *g = &out->big[i];
        g->size = (size_t)reply_int(sizes->element[i]);
        g->head_len = heads->element[i]->len < QUEUE_DEAD_RAW_MAX ? heads->element[i]->len
                                                                   : QUEUE_DEAD_RAW_MAX;
        memcpy(g->head, heads->element[i]->str, g->head_len);
    }
    out->nbig = n;
    return 0;
}

int queue_processing(queue *q, const char *worker, size_t limit, queue_taken *out, aq_err *e)
{
    memset(out, 0, sizeof *out);
    qargs a;
    arg_script(&a, q, S_HELD, 1);
    arg_key(&a, q, "processing:%s", worker);
    arg_i(&a, (int64_t)limit);
    redisReply *r;
    int rc = q_script(q, S_HELD, &a, "processing", &r, e);
    if (rc < 0)
        return rc;
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 3)
        rc = err_set(e, AQ_EPERM, "redis %s: processing: unexpected reply", q->where);
    if (rc == 0)
        rc = taken_from(q, r->element[0], out, e);
    if (rc == 0)
        rc = held_big(r->element[1], r->element[2], out, e);
    freeReplyObject(r);
    if (rc < 0)
        queue_taken_free(out);
    return rc;
}
